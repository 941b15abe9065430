"""Imatrix: importance matrices for quantization (llama.cpp's "imatrix").

    im = ds8b.Imatrix.compute(model, open("calib.txt").read())   # float model over text
    im.save("model.imatrix.gguf")                                 # llama.cpp's GGUF format
    im = ds8b.Imatrix.load("downloaded.imatrix")                  # GGUF or the older .dat
    ds8b.quantize("ckpt/", "out.gguf", "q4_k_m", imatrix=im)
    q = model.quantize("q4_0", imatrix=im)

See docs/quantization.md ("Importance matrices").
"""

from ctypes import POINTER, byref, c_char_p, c_int, c_int64, c_size_t, c_void_p

from ._errors import Misuse, make_error
from ._util import _Handle, _L, _OK, _Trap, _last_message, _path_bytes, _text_bytes

# Declared here (the rest of the library's functions are in _lib).
_SIGNATURES = {
    "ds8b_imatrix_load": (c_int, [c_char_p, POINTER(c_void_p)]),
    "ds8b_imatrix_compute": (c_int, [c_void_p, c_void_p, c_size_t, c_void_p, POINTER(c_void_p)]),
    "ds8b_imatrix_save": (c_int, [c_void_p, c_char_p]),
    "ds8b_imatrix_free": (None, [c_void_p]),
    "ds8b_imatrix_info": (c_int, [c_void_p, c_int, POINTER(c_int64)]),
    "ds8b_params_set_imatrix": (c_int, [c_void_p, c_void_p]),
}
_fns = {}


def _fn(name):
    f = _fns.get(name)
    if f is None:
        lib = _L()
        try:
            f = getattr(lib.cdll, name)
        except AttributeError:
            from ._errors import Unsupported
            raise Unsupported(-6, "%s does not export %s (the library is older than importance matrices)"
                              % (lib.path, name)) from None
        f.restype, f.argtypes = _SIGNATURES[name]
        _fns[name] = f
    return f


def _check(rc):
    if rc != _OK:
        raise make_error(rc, _last_message())


class Imatrix(_Handle):
    """Per-column activation statistics of each matrix of a model. Build one
    with Imatrix.load(path) or Imatrix.compute(model, text). Context
    manager; close() frees it."""

    def __init__(self):
        raise TypeError("use Imatrix.load(path) or Imatrix.compute(model, text)")

    @classmethod
    def _adopt(cls, h):
        im = cls.__new__(cls)
        im._h = h
        return im

    @classmethod
    def load(cls, path):
        """Reads llama.cpp's GGUF imatrix file or its older .dat file. A
        malformed file raises FormatError naming what is wrong."""
        h = c_void_p()
        _check(_fn("ds8b_imatrix_load")(_path_bytes(path, "path"), byref(h)))
        return cls._adopt(h)

    @classmethod
    def compute(cls, model, text, threads=None, progress=None):
        """Runs the float model over text (str or UTF-8 bytes) in chunks of
        512 tokens and gathers the statistics. progress(fraction, stage)
        may return True to cancel."""
        from .params import _Params
        tb = _text_bytes(text, "text")
        trap = _Trap()
        h = c_void_p()
        values = {"n_threads": threads} if threads is not None else {}
        with _Params(values, ("n_threads",), "Imatrix.compute()", progress=progress, trap=trap) as bag:
            rc = _fn("ds8b_imatrix_compute")(model._handle(), tb, len(tb), bag.h, byref(h))
            msg = _last_message() if rc != _OK else ""
        trap.raise_()
        if rc != _OK:
            raise make_error(rc, msg)
        return cls._adopt(h)

    def _handle(self):
        if self._h is None:
            raise Misuse(-2, "the imatrix is closed")
        return self._h

    def save(self, path):
        """Writes it in llama.cpp's GGUF imatrix format."""
        _check(_fn("ds8b_imatrix_save")(self._handle(), _path_bytes(path, "path")))

    def _info(self, key):
        v = c_int64()
        _check(_fn("ds8b_imatrix_info")(self._handle(), key, byref(v)))
        return v.value

    @property
    def entries(self):
        """How many matrices it has statistics for."""
        return self._info(1)

    @property
    def chunks(self):
        """Chunks of text the statistics were gathered over (0 if unknown)."""
        return self._info(2)

    @property
    def chunk_size(self):
        """Tokens per chunk (0 if unknown)."""
        return self._info(3)

    def close(self):
        h = getattr(self, "_h", None)
        if h is not None:
            self._h = None
            _fn("ds8b_imatrix_free")(h)


def _set_on(bag_h, imatrix):
    """Sets imatrix (an Imatrix or None) on a params bag."""
    if imatrix is None:
        return
    if not isinstance(imatrix, Imatrix):
        raise TypeError("imatrix must be an ds8b.Imatrix, not %s" % type(imatrix).__name__)
    _check(_fn("ds8b_params_set_imatrix")(bag_h, imatrix._handle()))
