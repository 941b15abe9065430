"""ds8b -- Python binding for libds8b (DeepSeek 8B models on CPUs), over ctypes.

    import ds8b
    with ds8b.Model("models/demo-llama") as model, model.session(n_ctx=512) as s:
        for piece in s.generate("The Python interpreter", max_tokens=32, temperature=0):
            print(piece, end="", flush=True)

The shared library is found on first use; see ds8b._lib for the search order
(DS8B_LIBRARY overrides it). Failures raise ds8b.Error subclasses carrying the
library's code and message.
"""

import atexit
import collections
import contextlib
import ctypes
import enum
import json
import os
import queue
import sys
import threading
import weakref
from array import array
from ctypes import byref, c_double, c_int32, c_int64, c_size_t, c_void_p

from . import _lib
from ._errors import (BufferTooSmall, Cancelled, ChecksumError, ContextFull, Error, FileError,
                      FormatError, InternalError, InvalidArgument, LibraryError, LimitExceeded,
                      Mismatch, Misuse, OutOfMemory, TemplateError, Unsupported,
                      VersionMismatch, error_class)
from ._lib import EXPECTED_MAJOR, check_version

__version__ = "0.1.0"

__all__ = [
    "Model", "Tokenizer", "Session", "Chat", "Batch", "BatchMember", "Generation",
    "Completion", "Piece", "Channel",
    "Mem", "quantize", "estimate", "param_bounds", "memory_used", "memory_highwater",
    "memory_reserved", "soft_heap_limit", "hard_heap_limit",
    "version", "version_number", "library_path", "check_version", "EXPECTED_MAJOR",
    "Error", "InvalidArgument", "Misuse", "OutOfMemory", "FileError", "FormatError",
    "Unsupported", "ContextFull", "Cancelled", "BufferTooSmall", "TemplateError",
    "LimitExceeded", "ChecksumError", "Mismatch", "InternalError", "VersionMismatch",
    "LibraryError", "error_class",
]

# ---------------------------------------------------------------------------
# Constants of ds8b.h
# ---------------------------------------------------------------------------
_OK = 0
_E_BUFFER = -9
_E_CANCELLED = -8

_TOKENIZE_ADD_SPECIAL = 1
_TOKENIZE_NO_PARSE_SPECIAL = 2
_DETOKENIZE_SKIP_SPECIAL = 1
_GEN_ADD_SPECIAL = 1
_GEN_REASONING = 2
_GEN_START_REASONING = 4

# DS8B_FINISH_* -> the finish_reason strings of the binding.
_FINISH_NAMES = {0: None, 1: "eos", 2: "length", 3: "stop", 4: "context", 5: "cancelled",
                 6: "error"}
_FINISH_NONE, _FINISH_CANCELLED, _FINISH_ERROR = 0, 5, 6


class Channel(enum.IntEnum):
    """Channel of a generated piece (DS8B_CHANNEL_*)."""
    ANSWER = 0
    REASONING = 1


class Mem(enum.IntEnum):
    """Memory accounting categories (DS8B_MEM_*)."""
    WEIGHTS = 0
    KV = 1
    SCRATCH = 2
    TOKENIZER = 3
    SESSION = 4
    THREADS = 5
    OTHER = 6
    MAPPED = 7


MEM_WEIGHTS, MEM_KV, MEM_SCRATCH, MEM_TOKENIZER = Mem.WEIGHTS, Mem.KV, Mem.SCRATCH, Mem.TOKENIZER
MEM_SESSION, MEM_THREADS, MEM_OTHER, MEM_MAPPED = Mem.SESSION, Mem.THREADS, Mem.OTHER, Mem.MAPPED
CHANNEL_ANSWER, CHANNEL_REASONING = Channel.ANSWER, Channel.REASONING

LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG = 0, 1, 2, 3

# Keyword parameters -> (ds8b_param key, is_float). Values of kv_type and
# ctx_policy may also be given by name.
_PARAMS = {
    "n_ctx": (1, False), "n_threads": (2, False), "n_batch": (3, False),
    "kv_type": (4, False), "ctx_policy": (5, False), "n_sink": (6, False),
    "temperature": (20, True), "top_k": (21, False), "top_p": (22, True),
    "min_p": (23, True), "repeat_penalty": (24, True), "repeat_last_n": (25, False),
    "seed": (26, False), "max_tokens": (27, False), "stop_at_eos": (28, False),
    "use_mmap": (40, False), "verify_crc": (41, False),
}
_NAMED_VALUES = {
    "kv_type": {"f32": 0, "f16": 1, "q8_0": 2},
    "ctx_policy": {"error": 0, "stop": 1, "slide": 2},
}
_LOAD_KEYS = ("use_mmap", "verify_crc")
_SESSION_KEYS = ("n_ctx", "n_threads", "n_batch", "kv_type", "ctx_policy", "n_sink",
                 "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n",
                 "seed", "max_tokens", "stop_at_eos")
# Keys a live session accepts (ds8b_session_set_*), restored after a call
# that overrides them (except seed, which reseeds the sampler on purpose).
_LIVE_KEYS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n",
              "seed", "max_tokens", "stop_at_eos", "ctx_policy", "n_sink")


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def _L():
    return _lib.get()


def _cstr(p):
    return p.decode("utf-8", "replace") if p else ""


def _last_message():
    return _cstr(_L().ds8b_errmsg())


def _raise(code, message=None):
    if message is None:
        message = _last_message()
    if not message:
        message = _cstr(_L().ds8b_errstr(code))
    raise error_class(code)(code, message)


def _check(code):
    if code != _OK:
        _raise(code)


def _text_bytes(text, what="text"):
    """str (UTF-8; lone surrogates pass through and become U+FFFD in the
    library) or a bytes-like object (taken as UTF-8, invalid sequences
    replaced by the library)."""
    if isinstance(text, str):
        return text.encode("utf-8", "surrogatepass")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError("%s must be str or bytes, not %s" % (what, type(text).__name__))


def _path_bytes(path, what="path"):
    try:
        b = os.fsencode(path)
    except TypeError:
        raise TypeError("%s must be str, bytes or os.PathLike, not %s"
                        % (what, type(path).__name__)) from None
    if b"\0" in b:
        raise InvalidArgument(-1, "%s contains a NUL character: %r" % (what, path))
    if not b:
        raise InvalidArgument(-1, "%s is empty" % what)
    return b


def _id_array(ids):
    """A contiguous int32 array of token ids (list/tuple/array/iterable of ints)."""
    if isinstance(ids, (str, bytes, bytearray)):
        raise TypeError("token ids must be a sequence of ints, not %s" % type(ids).__name__)
    if isinstance(ids, int):
        raise TypeError("token ids must be a sequence of ints, not a single int")
    try:
        a = array("i", ids)
    except OverflowError:
        bad = next((i for i in ids if not -2**31 <= i < 2**31), None)
        raise InvalidArgument(-1, "token id %r is out of range" % (bad,)) from None
    except TypeError as e:
        raise TypeError("token ids must be ints: %s" % e) from None
    if a.itemsize != 4:  # not on any platform this library supports
        a = array("l", ids)
    return a


def _ptr(a):
    """(address or None, length) of an array.array."""
    return (a.buffer_info()[0] if len(a) else None), len(a)


def _int32_ptr(a):
    addr, n = _ptr(a)
    return ctypes.cast(addr, ctypes.POINTER(c_int32)) if addr else None, n


def _unraisable(what):
    """Reports an exception that cannot propagate (raised in a log callback)."""
    try:
        import traceback
        sys.stderr.write("ds8b: exception in %s ignored:\n" % what)
        traceback.print_exc()
    except Exception:
        pass


def _make_log_cb(log):
    if log is None:
        return None
    if not callable(log):
        raise TypeError("log must be callable as log(level, message)")

    def cb(user, level, message):
        try:
            log(level, _cstr(message))
        except BaseException:  # noqa: B036 -- nothing may escape into C
            _unraisable("log callback")
    return _lib.LOG_FN(cb)


class _Trap:
    """Runs Python callbacks from C: any exception (KeyboardInterrupt too) is
    caught, the callback returns nonzero so the C call stops, and raise_()
    re-raises it once the C call has returned."""

    def __init__(self):
        self.exc = None
        _install_unraisable_hook()

    def catch(self, exc):
        if self.exc is None:
            self.exc = exc

    def raise_(self):
        exc, self.exc = self.exc, None
        if exc is not None:
            raise exc


# A signal's KeyboardInterrupt can be raised on the very first instruction of
# a callback, before its try block: ctypes then reports the exception as
# "unraisable" and returns 0 to C. This hook routes such exceptions to the
# callback's _Trap instead, so that the next callback stops the C call and
# the exception is re-raised when the call returns.
_prev_unraisablehook = None


def _unraisable_hook(u):
    obj = getattr(u, "object", None)
    trap = getattr(obj, "_ds8b_trap", None)
    if trap is None and getattr(obj, "__func__", None) is _Run._on_piece:
        trap = obj.__self__.trap
    if isinstance(trap, _Trap) and u.exc_value is not None:
        trap.catch(u.exc_value)
        return
    (_prev_unraisablehook or sys.__unraisablehook__)(u)


def _install_unraisable_hook():
    global _prev_unraisablehook
    if sys.unraisablehook is not _unraisable_hook:
        _prev_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _unraisable_hook


def _make_progress_cb(progress, trap):
    if progress is None:
        return None
    if not callable(progress):
        raise TypeError("progress must be callable as progress(fraction, stage)")

    def cb(user, fraction, stage):
        if trap.exc is not None:
            return 1
        try:
            return 1 if progress(fraction, _cstr(stage)) else 0
        except BaseException as e:  # noqa: B036
            trap.catch(e)
            return 1
    cb._ds8b_trap = trap
    return _lib.PROGRESS_FN(cb)


def _check_value(name, value):
    key, is_float = _PARAMS[name]
    if isinstance(value, str) and name in _NAMED_VALUES:
        try:
            value = _NAMED_VALUES[name][value.lower()]
        except KeyError:
            raise InvalidArgument(-1, "%s must be one of %s, not %r"
                                  % (name, ", ".join(_NAMED_VALUES[name]), value)) from None
    if is_float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("%s must be a number, not %s" % (name, type(value).__name__))
        return key, True, float(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__))
    if not -2**63 <= value < 2**63:
        raise InvalidArgument(-1, "%s=%d is out of range" % (name, value))
    return key, False, int(value)


class _Params:
    """A ds8b_params bag built from keyword arguments; freed on exit."""

    def __init__(self, values, allowed, what, stops=(), log=None, progress=None, trap=None):
        unknown = [k for k in values if k not in allowed]
        if unknown:
            raise TypeError("%s got unexpected parameter(s) %s; known: %s"
                            % (what, ", ".join(sorted(unknown)), ", ".join(allowed)))
        self.checked = {k: _check_value(k, v) for k, v in values.items() if v is not None}
        self.stops = [_stop_bytes(s) for s in stops]
        self.trap = trap or _Trap()
        self.log_cb = _make_log_cb(log)
        self.progress_cb = _make_progress_cb(progress, self.trap)
        self.h = None

    def __enter__(self):
        lib = _L()
        h = c_void_p()
        _check(lib.ds8b_params_create(byref(h)))
        self.h = h
        try:
            for name, (key, is_float, v) in self.checked.items():
                if is_float:
                    _check(lib.ds8b_params_set_float(h, key, v))
                else:
                    _check(lib.ds8b_params_set_int(h, key, v))
            for s in self.stops:
                _check(lib.ds8b_params_add_stop(h, s))
            if self.log_cb is not None:
                _check(lib.ds8b_params_set_log(h, self.log_cb, None))
            if self.progress_cb is not None:
                _check(lib.ds8b_params_set_progress(h, self.progress_cb, None))
        except BaseException:
            self.__exit__()
            raise
        return self

    def get(self, name):
        lib = _L()
        key, is_float = _PARAMS[name]
        if is_float:
            v = c_double()
            _check(lib.ds8b_params_get_float(self.h, key, byref(v)))
        else:
            v = c_int64()
            _check(lib.ds8b_params_get_int(self.h, key, byref(v)))
        return v.value

    def __exit__(self, *exc):
        if self.h is not None:
            _L().ds8b_params_free(self.h)
            self.h = None


def _stop_bytes(s):
    if not isinstance(s, str):
        raise TypeError("stop strings must be str, not %s" % type(s).__name__)
    b = s.encode("utf-8", "surrogatepass")
    if not b or b"\0" in b:
        raise InvalidArgument(-1, "stop strings must be non-empty and contain no NUL: %r" % s)
    return b


def _stop_list(stop):
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    stop = list(stop)
    for s in stop:
        _stop_bytes(s)
    return stop


def param_bounds(name):
    """(lo, hi) accepted for a keyword parameter, as the library reports it."""
    if name not in _PARAMS:
        raise InvalidArgument(-1, "unknown parameter %r" % (name,))
    lo, hi = c_double(), c_double()
    _check(_L().ds8b_param_bounds(_PARAMS[name][0], byref(lo), byref(hi)))
    return lo.value, hi.value


# ---------------------------------------------------------------------------
# Versions, memory
# ---------------------------------------------------------------------------
def version():
    """The library's version string, e.g. "0.1.0"."""
    return _cstr(_L().ds8b_version())


def version_number():
    """The library's version as major*10000 + minor*100 + patch."""
    return _L().ds8b_version_number()


def library_path():
    """The path (or name) libds8b was loaded from."""
    return _L().path


def _category(category):
    if category is None:
        return -1
    if isinstance(category, bool) or not isinstance(category, int):
        raise TypeError("category must be a ds8b.Mem value or None, not %s"
                        % type(category).__name__)
    if not 0 <= category < len(Mem):
        raise InvalidArgument(-1, "unknown memory category %d" % category)
    return int(category)


def memory_used(category=None):
    """Bytes in use in a category (ds8b.Mem), or on the whole heap when None."""
    return _L().ds8b_memory_used(_category(category))


def memory_highwater(category=None, reset=False):
    """Peak bytes since the last reset; reset=True resets it to the current use."""
    return _L().ds8b_memory_highwater(_category(category), 1 if reset else 0)


def _limit(fn, n):
    if n is None:
        return fn(-1)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError("a heap limit must be an int number of bytes or None")
    if n < 0:
        raise InvalidArgument(-1, "a heap limit must be >= 0 (0 disables it), not %d" % n)
    return fn(n)


def soft_heap_limit(n=None):
    """Queries (n=None) or sets the soft heap limit (0 disables); returns the
    previous limit. Past it the library logs a warning."""
    return _limit(_L().ds8b_soft_heap_limit, n)


def hard_heap_limit(n=None):
    """Queries (n=None) or sets the hard heap limit (0 disables); returns the
    previous limit. Past it allocations fail with OutOfMemory."""
    return _limit(_L().ds8b_hard_heap_limit, n)


# ---------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------
def _tokenize(h, text, add_special, parse_special):
    lib = _L()
    b = _text_bytes(text)
    flags = (_TOKENIZE_ADD_SPECIAL if add_special else 0) | \
            (0 if parse_special else _TOKENIZE_NO_PARSE_SPECIAL)
    cap = len(b) + 8
    n = c_size_t()
    for _ in range(3):
        buf = (c_int32 * cap)()
        rc = lib.ds8b_tokenize(h, b, len(b), flags, buf, cap, byref(n))
        if rc == _E_BUFFER or (rc == _OK and n.value > cap):
            cap = n.value + 1
            continue
        _check(rc)
        return list(buf[:n.value])
    raise InternalError(-14, "ds8b_tokenize kept asking for a bigger buffer")


def _detokenize(h, ids, skip_special):
    lib = _L()
    a = _id_array(ids)
    p, n = _int32_ptr(a)
    flags = _DETOKENIZE_SKIP_SPECIAL if skip_special else 0
    cap = 16 * n + 16
    length = c_size_t()
    for _ in range(3):
        buf = ctypes.create_string_buffer(cap)
        rc = lib.ds8b_detokenize(h, p, n, flags, buf, cap, byref(length))
        if rc == _E_BUFFER or (rc == _OK and length.value > cap):
            cap = length.value + 1
            continue
        _check(rc)
        return buf.raw[:length.value].decode("utf-8", "replace")
    raise InternalError(-14, "ds8b_detokenize kept asking for a bigger buffer")


class _TokenizerOps:
    """Tokenizer methods shared by Tokenizer and the model's tokenizer."""

    def _tok(self):
        raise NotImplementedError

    def tokenize(self, text, add_special=False, parse_special=True):
        """Token ids of text (str or UTF-8 bytes; invalid UTF-8 becomes U+FFFD).
        add_special applies the post-processor (BOS); parse_special=False
        treats special-token text as plain text."""
        return _tokenize(self._tok(), text, add_special, parse_special)

    def detokenize(self, ids, skip_special=False):
        """Text of a sequence of token ids."""
        return _detokenize(self._tok(), ids, skip_special)

    @property
    def vocab_size(self):
        return _L().ds8b_tokenizer_vocab_size(self._tok())

    @property
    def bos(self):
        """BOS id, or None."""
        v = _L().ds8b_tokenizer_bos(self._tok())
        return None if v < 0 else v

    @property
    def eos(self):
        """EOS id, or None."""
        v = _L().ds8b_tokenizer_eos(self._tok())
        return None if v < 0 else v

    def is_special(self, token_id):
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise TypeError("token id must be an int")
        if not -2**31 <= token_id < 2**31:
            raise InvalidArgument(-1, "token id %d is out of range" % token_id)
        return bool(_L().ds8b_tokenizer_is_special(self._tok(), token_id))


class Tokenizer(_TokenizerOps):
    """A tokenizer loaded on its own: tokenizer.json, a directory holding one,
    or a GGUF file. Context manager; close() frees it."""

    def __init__(self, path):
        b = _path_bytes(path)
        lib = _L()
        h = c_void_p()
        rc = lib.ds8b_tokenizer_load(b, byref(h))
        if rc != _OK:
            _raise(rc)
        self._h = h
        self.path = os.fsdecode(b)

    def _tok(self):
        if self._h is None:
            raise Misuse(-2, "the tokenizer is closed")
        return self._h

    @property
    def closed(self):
        return self._h is None

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            _L().ds8b_tokenizer_free(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "<ds8b.Tokenizer %r%s>" % (self.path, " closed" if self.closed else "")


class _ModelTokenizer(_TokenizerOps):
    """The tokenizer owned by a Model (valid while the model is open)."""

    def __init__(self, model):
        self._model = model

    def _tok(self):
        return _L().ds8b_model_tokenizer(self._model._handle())

    def __repr__(self):
        return "<ds8b tokenizer of %r>" % (self._model,)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
_INFO_KEYS = (("arch", 1), ("vocab", 2), ("n_embd", 3), ("layers", 4), ("heads", 5),
              ("kv_heads", 6), ("head_dim", 7), ("n_ff", 8), ("n_ctx_train", 9),
              ("params", 10), ("tensors", 11), ("weight_bytes", 12))
_ARCH_NAMES = {1: "llama", 2: "qwen3"}


class Model:
    """A loaded model: a Hugging Face checkpoint directory or a GGUF file.

    Model(path, use_mmap=True, verify_crc=True, progress=None, log=None)

    progress(fraction, stage) is called during loading; return True to
    cancel (Cancelled is raised). log(level, message) receives the library's
    log lines for the life of the model. Context manager; close() frees the
    model after closing any session still open on it.
    """

    def __init__(self, path, *, progress=None, log=None, **params):
        self._h = None
        self._sessions = weakref.WeakSet()
        b = _path_bytes(path)
        self.path = os.fsdecode(b)
        lib = _L()
        trap = _Trap()
        bag = _Params(params, _LOAD_KEYS, "Model()", log=log, progress=progress, trap=trap)
        # The model keeps the log callback: hold it as long as the model.
        self._log_cb = bag.log_cb
        h = c_void_p()
        with bag:
            rc = lib.ds8b_model_load(b, bag.h, byref(h))
            msg = _last_message() if rc != _OK else ""
        if trap.exc is not None:
            if rc == _OK:
                lib.ds8b_model_free(h)
            trap.raise_()
        if rc != _OK:
            _raise(rc, msg)
        self._h = h

    @classmethod
    def _adopt(cls, h, path, log_cb=None):
        m = cls.__new__(cls)
        m._h, m._sessions, m.path, m._log_cb = h, weakref.WeakSet(), path, log_cb
        return m

    def _handle(self):
        h = self._h
        if h is None:
            raise Misuse(-2, "the model is closed")
        return h

    @property
    def closed(self):
        return self._h is None

    def close(self):
        """Closes every session and batch on the model, then frees it. Safe
        to repeat."""
        if getattr(self, "_h", None) is None:
            return
        for s in list(self._sessions):
            s.close()
        h, self._h = self._h, None
        _L().ds8b_model_free(h)
        self._log_cb = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        if self.closed:
            return "<ds8b.Model %r closed>" % (self.path,)
        return "<ds8b.Model %r: %s>" % (self.path, self.desc)

    # -- information -------------------------------------------------------
    @property
    def desc(self):
        """One-line description, e.g. "llama 6L 256d bf16"."""
        return _cstr(_L().ds8b_model_desc(self._handle()))

    @property
    def info(self):
        """A dict: arch, vocab, n_embd, layers, heads, kv_heads, head_dim,
        n_ff, n_ctx_train, params, tensors, weight_bytes."""
        lib = _L()
        h = self._handle()
        out = {}
        for name, key in _INFO_KEYS:
            v = c_int64()
            rc = lib.ds8b_model_info(h, key, byref(v))
            if rc == _OK:
                out[name] = v.value
        if "arch" in out:
            out["arch"] = _ARCH_NAMES.get(out["arch"], out["arch"])
        return out

    @property
    def n_vocab(self):
        v = c_int64()
        _check(_L().ds8b_model_info(self._handle(), 2, byref(v)))
        return v.value

    def set_log(self, log):
        """Replaces the log callback (None silences the model)."""
        cb = _make_log_cb(log)
        _check(_L().ds8b_model_set_log(self._handle(), cb, None))
        self._log_cb = cb

    # -- tokenizer -----------------------------------------------------------
    @property
    def tokenizer(self):
        return _ModelTokenizer(self)

    def tokenize(self, text, add_special=False, parse_special=True):
        """See Tokenizer.tokenize."""
        return self.tokenizer.tokenize(text, add_special, parse_special)

    def detokenize(self, ids, skip_special=False):
        """See Tokenizer.detokenize."""
        return self.tokenizer.detokenize(ids, skip_special)

    # -- sessions and quantization -------------------------------------------
    def session(self, *, stop=None, log=None, **params):
        """A new Session on this model; see Session."""
        return Session(self, stop=stop, log=log, **params)

    def batch(self, n_threads=None, *, threads=None):
        """A new Batch on this model, for sessions generating together; see Batch."""
        return Batch(self, n_threads, threads=threads)

    def quantize(self, scheme):
        """A new in-memory Model with the weights quantized to scheme
        ("q8_0", "q4_0", "q4_k_m", "f16", ...)."""
        if not isinstance(scheme, str):
            raise TypeError("scheme must be str")
        h = c_void_p()
        rc = _L().ds8b_model_quantize(self._handle(), scheme.encode(), None, byref(h))
        if rc != _OK:
            _raise(rc)
        return Model._adopt(h, "%s [%s]" % (self.path, scheme))


def quantize(in_path, out_path, scheme, progress=None, log=None):
    """Converts a checkpoint directory or model file into a GGUF file at
    out_path with the given scheme ("f32", "f16", "bf16", "q8_0", "q4_0",
    "q4_k_m", "w4a16"). progress(fraction, stage) may return True to cancel;
    an exception it raises is re-raised here."""
    bin_, bout = _path_bytes(in_path, "in_path"), _path_bytes(out_path, "out_path")
    if not isinstance(scheme, str):
        raise TypeError("scheme must be str, not %s" % type(scheme).__name__)
    trap = _Trap()
    with _Params({}, (), "quantize()", log=log, progress=progress, trap=trap) as bag:
        rc = _L().ds8b_quantize(bin_, bout, scheme.encode("utf-8"), bag.h)
        msg = _last_message() if rc != _OK else ""
    trap.raise_()
    if rc != _OK:
        _raise(rc, msg)


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------
class Piece(str):
    """A piece of generated text (a str) that also knows its channel."""

    def __new__(cls, text, channel=Channel.ANSWER):
        s = super().__new__(cls, text)
        s.channel = Channel(channel)
        return s


Completion = collections.namedtuple("Completion", "text reasoning n_tokens finish_reason")
Completion.__doc__ = """Result of Session.complete(): the answer text, the reasoning
text ("" unless reasoning=True), the number of generated tokens, and why it
ended: "eos", "length", "stop" (a stop string), "context" (a full context
under ctx_policy="stop") or "callback". BatchMember.result() adds
"cancelled", "closed" and "error"."""


class _StopMatcher:
    """Per-call stop strings, matched in the binding so that they apply to one
    call only (a session's own stop list can only grow). Text that may be the
    start of a stop string is held back until it is decided."""

    def __init__(self, stops):
        self.stops = stops
        self.held = ""
        self.ch = Channel.ANSWER
        self.matched = False

    def feed(self, ch, text):
        if not self.stops:
            return [(ch, text)]
        out = []
        if ch != self.ch and self.held:
            out.append((self.ch, self.held))
            self.held = ""
        self.ch = ch
        buf = self.held + text
        best = -1
        for s in self.stops:
            i = buf.find(s)
            if i >= 0 and (best < 0 or i < best):
                best = i
        if best >= 0:
            self.matched = True
            self.held = ""
            if best:
                out.append((ch, buf[:best]))
            return out
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:k]):
                    keep = k
                    break
        if len(buf) > keep:
            out.append((ch, buf[:len(buf) - keep]))
        self.held = buf[len(buf) - keep:]
        return out

    def flush(self):
        held, self.held = self.held, ""
        return [(self.ch, held)] if held and not self.matched else []


class _Run:
    """One streaming call (ds8b_generate or ds8b_chat_reply): per-call
    overrides, stop strings, the stream trampoline, and the outcome. Used on
    the caller's thread (complete) or on a worker thread (Generation).

    invoke(cb, n_generated_ref) makes the C call; errmsg() reads the
    handle's message after a failure; done() runs after the call."""

    def __init__(self, session, invoke, errmsg, emit, max_tokens, stop, overrides,
                 done=None):
        self.session = session
        self.h = session._handle()
        self.invoke, self.errmsg, self.done = invoke, errmsg, done
        self.emit = emit                  # emit(channel, text) -> truthy to stop
        self.stops = _StopMatcher(_stop_list(stop))
        if max_tokens is not None:
            overrides["max_tokens"] = max_tokens
        self.overrides = {k: _check_value(k, v) for k, v in overrides.items() if v is not None}
        self.trap = _Trap()
        self.stop_requested = None        # None, "callback", "closed" or "cancel"
        self.finished = threading.Event()
        self.rc = None
        self.message = ""
        self.n_tokens = 0
        self.finish_reason = None
        self.lib_finish = None            # ds8b_session_finish_reason() after the call
        self.cb = _lib.STREAM_FN(self._on_piece)

    def _on_piece(self, user, ptr, n, channel):
        if self.stop_requested or self.trap.exc is not None:
            return 1
        try:
            text = ctypes.string_at(ptr, n).decode("utf-8", "replace") if n else ""
            ch = Channel(channel) if channel in (0, 1) else channel
            for c, t in self.stops.feed(ch, text):
                if self.emit(c, t):
                    self.stop_requested = self.stop_requested or "callback"
                    return 1
                if self.stop_requested:
                    return 1
            return 1 if (self.stops.matched or self.stop_requested) else 0
        except BaseException as e:  # noqa: B036 -- KeyboardInterrupt included
            self.trap.catch(e)
            return 1

    def stop(self, reason):
        """Asks the call to stop (any thread): the next piece returns nonzero,
        and ds8b_session_cancel() covers prompt evaluation."""
        if not self.stop_requested:
            self.stop_requested = reason
        if not self.finished.is_set():
            try:
                _L().ds8b_session_cancel(self.h)
            except Exception:
                pass

    def _apply(self, values):
        lib = _L()
        for name, (key, is_float, v) in values.items():
            if name not in _LIVE_KEYS:
                raise TypeError("%s cannot be changed per call; give it to model.session()"
                                % name)
            rc = (lib.ds8b_session_set_float if is_float else lib.ds8b_session_set_int)(
                self.h, key, v)
            if rc != _OK:
                _raise(rc, _cstr(lib.ds8b_session_errmsg(self.h)))

    def run(self):
        """Runs the call; returns normally or raises (restoring overrides)."""
        try:
            try:
                self._apply(self.overrides)
                ng = c_int64()
                rc = self.invoke(self.cb, byref(ng))
                self.rc = rc
                self.n_tokens = ng.value
                if rc != _OK:
                    self.message = self.errmsg()
                if rc == _OK:
                    self.lib_finish = self.finish_of_library()
                    for c, t in self.stops.flush():
                        if self.emit(c, t):
                            self.stop_requested = self.stop_requested or "callback"
                            break
            finally:
                try:
                    self.restore()
                finally:
                    try:
                        if self.done is not None:
                            self.done(self.rc)
                    finally:
                        self.finished.set()
        except BaseException as e:  # noqa: B036 -- re-raised below
            self.trap.catch(e)
        self.trap.raise_()
        rc = self.rc
        if rc == _E_CANCELLED and self.stop_requested == "cancel":
            raise Cancelled(-8, "generation was cancelled (Session.cancel()) after %d tokens"
                            % self.n_tokens)
        if rc == _E_CANCELLED and self.stops.matched:
            self.finish_reason = "stop"
        elif rc == _E_CANCELLED and self.stop_requested in ("callback", "closed"):
            self.finish_reason = self.stop_requested
        elif rc != _OK:
            _raise(rc, self.message)
        elif self.lib_finish in ("eos", "length", "stop", "context"):
            self.finish_reason = self.lib_finish
        else:  # a library without ds8b_session_finish_reason
            mt = self.overrides.get("max_tokens", (0, 0, self.session._base["max_tokens"]))[2]
            self.finish_reason = "length" if mt and self.n_tokens >= mt else "eos"

    def finish_of_library(self):
        """The session's ds8b_session_finish_reason() as a string (None if
        the library lacks it). Called while the session is known to be open."""
        lib = _L()
        if not lib.has("ds8b_session_finish_reason"):
            return None
        v = lib.ds8b_session_finish_reason(self.h)
        return _FINISH_NAMES.get(v)

    def restore(self):
        """Puts the session's own values back for the parameters this call
        overrode (seed excepted: a per-call seed reseeds on purpose)."""
        self._apply({k: v for k, v in self.session._base_checked().items()
                     if k in self.overrides and k != "seed"})


_END = object()
_live_runs = weakref.WeakSet()


class Generation:
    """Iterator over the pieces of one generation, produced by
    Session.generate() or Session.chat(). ds8b_generate runs on a worker
    thread that feeds a queue; close() (or break + garbage collection, or
    leaving a ``with`` block) cancels it. After the end, n_tokens and
    finish_reason tell how it went."""

    def __init__(self, run, pairs):
        self._run = run
        self._pairs = pairs
        self._q = q = queue.SimpleQueue()
        self._done = False
        run.emit = lambda ch, text: q.put((ch, text))
        self._thread = threading.Thread(target=self._work, args=(run, q), daemon=True,
                                        name="ds8b-generate")
        _live_runs.add(run)
        self._thread.start()

    @staticmethod
    def _work(run, q):
        # Holds the run (and through it the session), never the Generation,
        # so that dropping the iterator lets __del__ cancel the work.
        try:
            run.run()
            q.put((_END, None))
        except BaseException as e:  # noqa: B036
            q.put((_END, e))

    @property
    def n_tokens(self):
        return self._run.n_tokens

    @property
    def finish_reason(self):
        return self._run.finish_reason

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        try:
            while True:
                ch, item = self._q.get()
                if ch is _END:
                    self._finish()
                    if item is not None:
                        raise item
                    raise StopIteration
                if item:
                    return (ch, item) if self._pairs else Piece(item, ch)
        except StopIteration:
            raise
        except BaseException:
            # KeyboardInterrupt while waiting, or an error: stop the worker.
            self.close()
            raise

    def _finish(self):
        self._done = True
        self._thread.join()
        sess = self._run.session
        if sess._active is self._run:
            sess._active = None

    def cancel(self):
        """Stops the generation from any thread; the iterator then raises
        Cancelled (as after Session.cancel())."""
        self._run.stop("cancel")

    def close(self):
        """Stops the generation if it is still running and waits for it;
        the iterator then simply ends."""
        if self._done:
            return
        self._run.stop("closed")
        while True:
            ch, _ = self._q.get()
            if ch is _END:
                break
        self._finish()

    def text(self):
        """Consumes the rest of the generation and returns it as one string."""
        return "".join(t if not self._pairs else t[1] for t in self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


@atexit.register
def _stop_all():
    """Stops worker threads still generating when the interpreter exits."""
    for run in list(_live_runs):
        try:
            run.stop("closed")
            run.finished.wait(5)
        except Exception:
            pass


# ---------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------
class Session:
    """A KV cache and a sampler on a Model. Create with model.session(**params):

    n_ctx, n_threads, n_batch, kv_type ("f32"/"f16"/"q8_0"), ctx_policy
    ("error"/"stop"/"slide"), n_sink, temperature, top_k, top_p, min_p,
    repeat_penalty, repeat_last_n, seed, max_tokens, stop_at_eos; stop=[...]
    adds stop strings for the session's whole life.

    A session runs one call at a time. Only cancel() may be called from
    another thread. Context manager; close() frees it.
    """

    def __init__(self, model, *, stop=None, log=None, **params):
        self._h = None
        self._active = None
        self._member = None  # the BatchMember while the session generates in a Batch
        if not isinstance(model, Model):
            raise TypeError("model must be a ds8b.Model")
        mh = model._handle()
        self.model = model
        bag = _Params(params, _SESSION_KEYS, "session()", stops=_stop_list(stop), log=log)
        self._log_cb = bag.log_cb
        lib = _L()
        h = c_void_p()
        with bag:
            rc = lib.ds8b_session_create(mh, bag.h, byref(h))
            msg = _last_message() if rc != _OK else ""
            if rc == _OK:
                # The base values of the per-call parameters, restored after
                # a call overrides them.
                self._base = {k: bag.get(k) for k in _LIVE_KEYS}
        if rc != _OK:
            _raise(rc, msg)
        self._h = h
        self._n_vocab = model.n_vocab
        self._bos_text = None
        self._chats = weakref.WeakSet()
        model._sessions.add(self)

    def _handle(self):
        h = self._h
        if h is None:
            raise Misuse(-2, "the session is closed")
        if self.model._h is None:
            raise Misuse(-2, "the model of this session is closed")
        return h

    def _idle(self):
        """Stops a generation still running on the session (an abandoned
        Generation) before another call uses the session."""
        h = self._handle()
        run = self._active
        if run is not None:
            run.stop("closed")
            run.finished.wait()
            self._active = None
        return h

    def _check_err(self, rc):
        if rc != _OK:
            _raise(rc, _cstr(_L().ds8b_session_errmsg(self._h)))

    @property
    def closed(self):
        return self._h is None

    def close(self):
        """Cancels a running generation, then frees the session. Safe to repeat.
        A session generating in a Batch leaves it (finish_reason "closed");
        from another thread, this waits for the batch's step to end."""
        if getattr(self, "_h", None) is None:
            return
        run, self._active = self._active, None
        if run is not None:
            run.stop("closed")
            run.finished.wait()
        for c in list(self._chats):
            c.close()
        member = getattr(self, "_member", None)
        batch = member._batch() if member is not None else None
        if batch is not None:
            with batch._guard("close a member's session"):
                if self._h is None:
                    return
                member._snapshot()
                h, self._h = self._h, None
                try:
                    _L().ds8b_session_free(h)  # the library takes it out of the batch
                finally:
                    if self._member is member:
                        batch._left(member, "closed")
        else:
            h, self._h = self._h, None
            _L().ds8b_session_free(h)
        self._log_cb = None
        try:
            self.model._sessions.discard(self)
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        if self.closed:
            return "<ds8b.Session closed>"
        return "<ds8b.Session n_past=%d on %r>" % (self.n_past, self.model)

    # -- state ---------------------------------------------------------------
    @property
    def n_past(self):
        """Number of tokens held in the context."""
        return _L().ds8b_session_n_past(self._handle())

    @property
    def n_generated(self):
        """Tokens generated so far by the current or last generation
        (generate, complete, a chat reply or a Batch)."""
        return _L().ds8b_session_n_generated(self._handle())

    @property
    def finish_reason(self):
        """Why the library's last generation on this session ended: "eos",
        "length", "stop" (one of the session's own stop strings), "context",
        "cancelled" or "error"; None before any, and while the session
        generates in a Batch. This is the library's view: when a per-call
        stop= string or a callback ended the call, the binding stopped it
        and this says "cancelled" (the Completion, Generation or
        BatchMember says "stop" or "callback")."""
        v = _L().ds8b_session_finish_reason(self._handle())
        if v < 0:
            self._check_err(v)
        return _FINISH_NAMES.get(v, v)

    @property
    def batch(self):
        """The Batch this session generates in, or None."""
        m = self._member
        return m.batch if m is not None else None

    def truncate(self, n):
        """Drops everything after the first n tokens."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError("n must be an int")
        self._check_err(_L().ds8b_session_truncate(self._idle(), n))

    def reset(self):
        """Drops all tokens and reseeds the sampler."""
        self._check_err(_L().ds8b_session_reset(self._idle()))

    def set(self, **params):
        """Changes sampling/generation parameters for the rest of the session."""
        lib = _L()
        h = self._idle()
        for name, value in params.items():
            if name not in _LIVE_KEYS:
                raise TypeError("%s cannot be changed on a live session (known: %s)"
                                % (name, ", ".join(_LIVE_KEYS)))
            key, is_float, v = _check_value(name, value)
            self._check_err((lib.ds8b_session_set_float if is_float else
                             lib.ds8b_session_set_int)(h, key, v))
            self._base[name] = v

    def add_stop(self, stop):
        """Adds a stop string for the rest of the session."""
        self._check_err(_L().ds8b_session_add_stop(self._idle(), _stop_bytes(stop)))

    def cancel(self):
        """Stops the running eval/generate call; safe from any thread. The
        call raises Cancelled; a session generating in a Batch leaves it at
        the next step (finish_reason "cancelled")."""
        h = self._h
        if h is None:
            return
        run = self._active
        if run is not None:
            run.stop("cancel")
        else:
            _L().ds8b_session_cancel(h)

    # -- evaluation ------------------------------------------------------------
    def eval(self, ids, all_logits=False):
        """Appends ids to the context and runs the model. Returns the logits
        of the last position as an array('f') of n_vocab floats, or with
        all_logits=True a list of one such array per input position.
        (numpy: np.frombuffer(arr, dtype=np.float32) shares the memory.)"""
        lib = _L()
        h = self._idle()
        a = _id_array(ids)
        p, n = _int32_ptr(a)
        if n == 0:
            raise InvalidArgument(-1, "no tokens to evaluate")
        V = self._n_vocab
        if all_logits:
            out = array("f", bytes(4 * n * V))
            self._check_err(lib.ds8b_eval(h, p, n, out.buffer_info()[0]))
            return [out[i * V:(i + 1) * V] for i in range(n)]
        self._check_err(lib.ds8b_eval(h, p, n, None))
        return self.logits()

    def logits(self):
        """Logits of the last evaluated position (array('f')), or None."""
        addr = _L().ds8b_session_logits(self._handle())
        if not addr:
            return None
        out = array("f")
        out.frombytes(ctypes.string_at(addr, 4 * self._n_vocab))
        return out

    def sample(self):
        """Samples a token id from the current logits."""
        t = c_int32()
        self._check_err(_L().ds8b_sample(self._idle(), byref(t)))
        return t.value


    # -- state -------------------------------------------------------------------
    def save(self):
        """The session's state (tokens, KV cache, sampler) as bytes."""
        lib = _L()
        h = self._idle()
        n = c_size_t()
        rc = lib.ds8b_session_save(h, None, 0, byref(n))
        if rc not in (_OK, _E_BUFFER):
            self._check_err(rc)
        for _ in range(3):
            buf = ctypes.create_string_buffer(max(n.value, 1))
            rc = lib.ds8b_session_save(h, buf, len(buf), byref(n))
            if rc == _E_BUFFER:
                continue
            self._check_err(rc)
            return buf.raw[:n.value]
        raise InternalError(-14, "ds8b_session_save kept asking for a bigger buffer")

    def load(self, state):
        """Restores a state made by save() (same model, same KV type)."""
        if not isinstance(state, (bytes, bytearray, memoryview)):
            raise TypeError("state must be bytes, not %s" % type(state).__name__)
        b = bytes(state)
        self._check_err(_L().ds8b_session_load(self._idle(), b, len(b)))

    def save_file(self, path):
        self._check_err(_L().ds8b_session_save_file(self._idle(), _path_bytes(path)))

    def load_file(self, path):
        self._check_err(_L().ds8b_session_load_file(self._idle(), _path_bytes(path)))

    def fork(self):
        """A new Session on the same model holding a copy of this one's state."""
        h = c_void_p()
        self._check_err(_L().ds8b_session_fork(self._idle(), byref(h)))
        return Session._adopt(self.model, h, dict(self._base))

    @classmethod
    def _adopt(cls, model, h, base):
        s = cls.__new__(cls)
        s._h, s._active, s.model, s._log_cb = h, None, model, None
        s._member = None
        s._base, s._n_vocab, s._bos_text = base, model.n_vocab, None
        s._chats = weakref.WeakSet()
        model._sessions.add(s)
        return s

    def memory(self, category=None):
        """(current, peak) bytes this session owns in a category (None: all heap)."""
        cur, peak = c_int64(), c_int64()
        self._check_err(_L().ds8b_session_memory(self._handle(), _category(category),
                                                 byref(cur), byref(peak)))
        return cur.value, peak.value

    # -- generation -------------------------------------------------------------
    def _base_checked(self):
        return {k: (_PARAMS[k][0], _PARAMS[k][1], v) for k, v in self._base.items()}

    def _auto_bos(self, prompt_bytes):
        """BOS is added when the context is empty and the prompt does not
        already start with the BOS token's text."""
        if self.n_past != 0:
            return False
        if self._bos_text is None:
            tok = self.model.tokenizer
            bos = tok.bos
            self._bos_text = tok.detokenize([bos]).encode("utf-8") if bos is not None else b""
        return not (self._bos_text and prompt_bytes.startswith(self._bos_text))

    def _prompt_flags(self, prompt, reasoning, start_reasoning, add_special):
        """(prompt bytes, DS8B_GEN_* flags) for ds8b_generate or ds8b_batch_add."""
        pb = _text_bytes(prompt, "prompt")
        if add_special is None:
            add_special = self._auto_bos(pb)
        flags = (_GEN_ADD_SPECIAL if add_special else 0) | (_GEN_REASONING if reasoning else 0)
        if reasoning and start_reasoning:
            flags |= _GEN_START_REASONING
        return pb, flags

    def _prompt_run(self, prompt, emit, max_tokens, stop, reasoning, start_reasoning,
                    add_special, overrides):
        h = self._idle()
        pb, flags = self._prompt_flags(prompt, reasoning, start_reasoning, add_special)
        lib = _L()

        def invoke(cb, ng):
            return lib.ds8b_generate(h, pb, len(pb), flags, cb, None, ng)

        def errmsg():
            return _cstr(lib.ds8b_session_errmsg(h))
        return _Run(self, invoke, errmsg, emit, max_tokens, stop, overrides)

    def generate(self, prompt, max_tokens=None, *, temperature=None, top_k=None, top_p=None,
                 min_p=None, repeat_penalty=None, seed=None, stop=None, reasoning=False,
                 start_reasoning=False, add_special=None):
        """Generates from prompt (str or UTF-8 bytes) after what the session
        holds; returns a Generation: an iterator of Piece (str) objects.

        Keyword arguments override the session's parameters for this call
        only (seed= reseeds the sampler). stop: a string or list of strings;
        generation ends before the first one and it is not returned.
        reasoning=True splits <think>...</think> into Channel.REASONING
        (see Piece.channel); start_reasoning=True starts inside it.
        add_special: add BOS (default: only when the context is empty and
        the prompt does not start with it). Breaking out of the loop,
        close(), or Session.cancel() stop it; the last raises Cancelled
        from the iterator."""
        run = self._prompt_run(prompt, None, max_tokens, stop, reasoning, start_reasoning,
                               add_special,
                               dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                    min_p=min_p, repeat_penalty=repeat_penalty, seed=seed))
        self._active = run
        return Generation(run, pairs=False)

    def complete(self, prompt, callback=None, max_tokens=None, *, temperature=None,
                 top_k=None, top_p=None, min_p=None, repeat_penalty=None, seed=None,
                 stop=None, reasoning=False, start_reasoning=False, add_special=None):
        """Generates on the calling thread and returns a Completion.

        callback(text, channel), if given, is called with each piece; a
        truthy return stops generation (finish_reason "callback"). An
        exception raised by the callback -- KeyboardInterrupt from Ctrl-C
        included -- stops generation and is re-raised here."""
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable as callback(text, channel)")
        answer, thinking = [], []

        def emit(ch, text):
            (thinking if ch == Channel.REASONING else answer).append(text)
            return callback(text, ch) if callback is not None else None

        run = self._prompt_run(prompt, emit, max_tokens, stop, reasoning, start_reasoning,
                               add_special,
                               dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                    min_p=min_p, repeat_penalty=repeat_penalty, seed=seed))
        self._active = run
        try:
            run.run()
        finally:
            if self._active is run:
                self._active = None
        return Completion("".join(answer), "".join(thinking), run.n_tokens, run.finish_reason)

    def chat(self, messages, max_tokens=None, *, temperature=None, top_k=None, top_p=None,
             min_p=None, repeat_penalty=None, seed=None, stop=None, add_special=None):
        """One assistant reply; returns a Generation of (Channel, text) pairs,
        the reasoning (inside <think>...</think>) tagged Channel.REASONING.

        messages: a list of {"role": ..., "content": ...} dicts, rendered with
        the model's chat template by the library (the session's KV cache of
        the shared prefix is reused); or a str, taken as an already rendered
        prompt. For a conversation kept across turns, see Session.conversation()."""
        opts = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                    repeat_penalty=repeat_penalty, seed=seed)
        if isinstance(messages, (str, bytes, bytearray, memoryview)):
            run = self._prompt_run(messages, None, max_tokens, stop, True, False, add_special,
                                   opts)
            self._active = run
            return Generation(run, pairs=True)
        conv = Chat(self, messages)
        return conv._reply(max_tokens, stop, opts, pairs=True, close_after=True)

    def conversation(self, messages=None):
        """A Chat (multi-turn conversation) bound to this session."""
        return Chat(self, messages)


def _check_messages(messages):
    if isinstance(messages, dict) or not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for m in messages:
        if not isinstance(m, dict):
            raise TypeError("each message must be a dict, not %s" % type(m).__name__)
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise TypeError("each message needs str 'role' and 'content': %r" % (m,))
        out.append(m)
    return out


def _render_chat(model, messages, add_generation_prompt):
    lib = _L()
    js = json.dumps(_check_messages(messages), ensure_ascii=False).encode("utf-8")
    h = model._handle()
    cap = 2 * len(js) + 256
    n = c_size_t()
    for _ in range(3):
        buf = ctypes.create_string_buffer(cap)
        rc = lib.ds8b_chat_render(h, js, len(js), 1 if add_generation_prompt else 0, buf, cap,
                                  byref(n))
        if rc == _E_BUFFER:
            cap = n.value + 1
            continue
        _check(rc)
        return buf.raw[:n.value].decode("utf-8", "replace")
    raise InternalError(-14, "ds8b_chat_render kept asking for a bigger buffer")


def _model_render_chat(self, messages, add_generation_prompt=True):
    """The prompt text of messages rendered with the model's chat template."""
    return _render_chat(self, messages, add_generation_prompt)


Model.render_chat = _model_render_chat


class Chat:
    """A conversation bound to a session (ds8b_chat): add() messages, then
    reply() (an iterator of (Channel, text) pairs) or say(). Each reply
    re-renders the conversation with the model's chat template and reuses
    the session's KV cache of the shared prefix; the answer is appended to
    the conversation. Context manager; closed with its session."""

    def __init__(self, session, messages=None):
        if not isinstance(session, Session):
            raise TypeError("session must be a ds8b.Session")
        msgs = _check_messages(messages) if messages is not None else []
        lib = _L()
        sh = session._idle()
        h = c_void_p()
        rc = lib.ds8b_chat_create(sh, byref(h))
        if rc != _OK:
            _raise(rc)
        self._h, self.session = h, session
        session._chats.add(self)
        try:
            for m in msgs:
                self.add(m["role"], m["content"])
        except BaseException:
            self.close()
            raise

    def _handle(self):
        if self._h is None:
            raise Misuse(-2, "the chat is closed")
        self.session._handle()
        return self._h

    def _check_err(self, rc):
        if rc != _OK:
            _raise(rc, _cstr(_L().ds8b_chat_errmsg(self._h)))

    def add(self, role, content):
        """Appends a message; role is "system", "user" or "assistant"."""
        if not isinstance(role, str) or not isinstance(content, str):
            raise TypeError("role and content must be str")
        rb, cb = _stop_free(role, "role"), _stop_free(content, "content")
        self._check_err(_L().ds8b_chat_add(self._handle(), rb, cb))

    def __len__(self):
        return max(0, _L().ds8b_chat_n_messages(self._handle()))

    def _message(self, h, i):
        role, content = ctypes.c_char_p(), ctypes.c_char_p()
        # ds8b_chat_message reports through ds8b_errmsg(), not the chat's message
        _check(_L().ds8b_chat_message(h, i, byref(role), byref(content)))
        return {"role": _cstr(role.value), "content": _cstr(content.value)}

    @property
    def messages(self):
        """The conversation so far, replies included: a new list of
        {"role": ..., "content": ...} dicts (changing it changes nothing;
        use add() and pop())."""
        h = self._handle()
        return [self._message(h, i) for i in range(len(self))]

    def pop(self):
        """Removes the last message and returns it as a dict (undo a turn:
        after a reply, pop twice to drop the exchange). The next reply
        still reuses the session's cache of the shared prefix. Raises
        InvalidArgument when the conversation is empty."""
        h = self._handle()
        n = len(self)
        last = self._message(h, n - 1) if n else None
        self._check_err(_L().ds8b_chat_pop(h))
        return last

    def clear(self):
        self._check_err(_L().ds8b_chat_clear(self._handle()))

    @property
    def last_reply(self):
        return _cstr(_L().ds8b_chat_last_reply(self._handle()))

    @property
    def last_reasoning(self):
        return _cstr(_L().ds8b_chat_last_reasoning(self._handle()))

    def _reply(self, max_tokens, stop, opts, pairs, close_after=False, emit=None):
        lib = _L()
        h = self._handle()
        sess = self.session
        sess._idle()

        def invoke(cb, ng):
            return lib.ds8b_chat_reply(h, cb, None, ng)

        def errmsg():
            return _cstr(lib.ds8b_chat_errmsg(h))

        done = (lambda rc: self.close()) if close_after else None
        run = _Run(sess, invoke, errmsg, emit, max_tokens, stop, opts, done=done)
        sess._active = run
        if emit is not None:
            return run
        return Generation(run, pairs=pairs)

    def reply(self, max_tokens=None, *, temperature=None, top_k=None, top_p=None, min_p=None,
              repeat_penalty=None, seed=None, stop=None):
        """Generates the assistant's reply: a Generation of (Channel, text)."""
        return self._reply(max_tokens, stop,
                           dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                min_p=min_p, repeat_penalty=repeat_penalty, seed=seed),
                           pairs=True)

    def say(self, content, callback=None, max_tokens=None, **opts):
        """Adds a user message, generates the reply on the calling thread and
        returns a Completion; callback(text, channel) as in Session.complete."""
        stop = opts.pop("stop", None)
        unknown = set(opts) - {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed"}
        if unknown:
            raise TypeError("say() got unexpected parameter(s) %s" % ", ".join(sorted(unknown)))
        self.add("user", content)
        answer, thinking = [], []

        def emit(ch, text):
            (thinking if ch == Channel.REASONING else answer).append(text)
            return callback(text, ch) if callback is not None else None
        run = self._reply(max_tokens, stop, opts, pairs=True, emit=emit)
        try:
            run.run()
        finally:
            if self.session._active is run:
                self.session._active = None
        return Completion("".join(answer), "".join(thinking), run.n_tokens, run.finish_reason)

    @property
    def closed(self):
        return self._h is None

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            _L().ds8b_chat_free(h)
            try:
                self.session._chats.discard(self)
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _stop_free(s, what):
    b = s.encode("utf-8", "surrogatepass")
    if b"\0" in b:
        raise InvalidArgument(-1, "%s contains a NUL character" % what)
    return b


# ---------------------------------------------------------------------------
# Batched generation
# ---------------------------------------------------------------------------
class BatchMember:
    """One session generating in a Batch, as returned by Batch.add().

    text and reasoning grow while the member generates (its callback, if it
    has one, gets the same pieces as they come). Once the member has left
    the batch, done is True, n_tokens is final and finish_reason says why:
    "eos", "length", "stop", "context", "callback" (its callback returned a
    true value), "cancelled" (Session.cancel() or Batch.remove()), "closed"
    (its session or the batch was closed) or "error" (see error: the
    exception its callback raised, or the library's error)."""

    def __init__(self, batch, session, seq, callback):
        self.session = session
        self._batch = weakref.ref(batch)
        self._seq = seq
        self._callback = callback
        self._answer, self._thinking = [], []
        self._run = None
        self._n_tokens = None
        self.finish_reason = None
        self.error = None

    def _emit(self, ch, text):
        (self._thinking if ch == Channel.REASONING else self._answer).append(text)
        cb = self._callback
        return cb(text, ch) if cb is not None else None

    @property
    def batch(self):
        """The Batch while the member generates in it, else None."""
        return None if self.done else self._batch()

    @property
    def done(self):
        return self.finish_reason is not None

    @property
    def text(self):
        """The answer text so far."""
        return "".join(self._answer)

    @property
    def reasoning(self):
        """The reasoning text so far (reasoning=True only)."""
        return "".join(self._thinking)

    @property
    def n_tokens(self):
        """Tokens generated so far."""
        if self._n_tokens is not None:
            return self._n_tokens
        return self.session.n_generated

    def result(self):
        """The member's Completion once it has left the batch (also when it
        was cancelled or closed: finish_reason tells); raises its error if
        it has one, and Misuse while it is still generating."""
        if not self.done:
            raise Misuse(-2, "the member is still generating; step the batch until it is done")
        if self.error is not None:
            raise self.error
        return Completion(self.text, self.reasoning, self.n_tokens, self.finish_reason)

    def _snapshot(self):
        """Reads what must survive the session being freed."""
        try:
            self._n_tokens = self.session.n_generated
        except Error:
            pass

    def _take_exception(self):
        """The exception a callback raised, once (it stays in error)."""
        trap = self._run.trap
        exc, trap.exc = trap.exc, None
        if exc is not None and self.error is None:
            self.error = exc
        return exc

    def _finish(self, why):
        """The library has taken the session out of the batch: flush the
        text held back by per-call stop strings, restore per-call
        parameters, and settle finish_reason. why: None when the member
        left on its own, else "cancelled" or "closed"."""
        run = self._run
        lib = _L()
        reason = None
        h = self.session._h
        if h is not None:
            self._n_tokens = lib.ds8b_session_n_generated(h)
            reason = lib.ds8b_session_finish_reason(h)
            try:
                if why is None and reason not in (_FINISH_CANCELLED, _FINISH_ERROR):
                    for c, t in run.stops.flush():
                        if run.emit(c, t):
                            break
                run.restore()
            except BaseException as e:  # noqa: B036 -- raised by Batch.step()
                run.trap.catch(e)
        if self.error is None and run.trap.exc is not None:
            self.error = run.trap.exc
        if self.error is not None:
            self.finish_reason = "error"
        elif why is not None:
            self.finish_reason = why
        elif reason == _FINISH_CANCELLED:
            if run.stops.matched:
                self.finish_reason = "stop"
            elif run.stop_requested == "callback":
                self.finish_reason = "callback"
            else:
                self.finish_reason = "cancelled"
        elif reason == _FINISH_ERROR:
            # The library keeps the message, not the code, of a member's error.
            msg = _cstr(lib.ds8b_session_errmsg(h))
            self.error = Error(None, msg or "the member's generation failed")
            self.finish_reason = "error"
        else:
            self.finish_reason = _FINISH_NAMES.get(reason) or "error"

    def __repr__(self):
        state = "done: %s" % self.finish_reason if self.done else "generating"
        return "<ds8b.BatchMember %s, %d chars>" % (state, len(self.text))


class Batch:
    """Several sessions of one model generating together (ds8b_batch): each
    step() samples one token for every member and evaluates all of them in
    one forward pass that reads the weights once. A member produces exactly
    the text it would produce generating alone.

        with model.batch(n_threads=2) as batch:
            a = batch.add(s1, "The blacksmith said", callback=show, max_tokens=40)
            b = batch.add(s2, "Once upon a time", max_tokens=40, seed=7)
            while batch.step():       # one token for every member
                pass                  # e.g. one frame of the game
            print(a.text, b.result().finish_reason)

    Batch(model, n_threads=None): the batch's own worker threads for the
    shared steps (None: the library's default, one per CPU); threads= is
    accepted as another name for it. A member joins with add() (which
    evaluates its prompt at once on the session's threads) and leaves on
    its own stop conditions, Session.cancel() (from any thread), remove(),
    or when its session or the batch is closed. Stream callbacks run inside
    step() and must not add, remove, step or close anything of the batch
    (Misuse); returning True ends that member. Use a batch and its sessions
    from one thread at a time; a call from another thread waits for a
    running step. Context manager; closing the batch (or its model) ends
    the members still generating (finish_reason "closed")."""

    def __init__(self, model, n_threads=None, *, threads=None):
        self._h = None
        if not isinstance(model, Model):
            raise TypeError("model must be a ds8b.Model")
        if threads is not None:
            if n_threads is not None:
                raise TypeError("give n_threads or threads, not both")
            n_threads = threads
        mh = model._handle()
        self.model = model
        self._members = {}            # Session -> BatchMember, in join order
        self._lock = threading.Lock()  # held by every call into the C batch
        self._owner = None            # the thread holding _lock
        self._seq = 0
        lib = _L()
        h = c_void_p()
        with _Params({"n_threads": n_threads}, ("n_threads",), "Batch()") as bag:
            rc = lib.ds8b_batch_create(mh, bag.h, byref(h))
            msg = _last_message() if rc != _OK else ""
        if rc != _OK:
            _raise(rc, msg)
        self._h = h
        # The model is not freed while a batch exists: Model.close() closes it.
        model._sessions.add(self)

    @contextlib.contextmanager
    def _guard(self, what):
        me = threading.get_ident()
        if self._owner == me:
            raise Misuse(-2, "cannot %s from inside Batch.step() (a stream callback); return "
                         "True from the callback, or call Session.cancel(), to end a member"
                         % what)
        with self._lock:
            self._owner = me
            try:
                yield
            finally:
                self._owner = None

    def _handle(self):
        h = self._h
        if h is None:
            raise Misuse(-2, "the batch is closed")
        if self.model._h is None:
            raise Misuse(-2, "the model of this batch is closed")
        return h

    def _forget(self, m):
        self._members.pop(m.session, None)
        if m.session._member is m:
            m.session._member = None

    def _left(self, m, why):
        """m's session is no longer in the C batch: settle m."""
        self._forget(m)
        m._finish(why)

    def add(self, session, prompt="", callback=None, max_tokens=None, *, temperature=None,
            top_k=None, top_p=None, min_p=None, repeat_penalty=None, seed=None, stop=None,
            reasoning=False, start_reasoning=False, add_special=None):
        """Starts a generation on session, as Session.complete() would, and
        makes it a member; returns its BatchMember. The prompt is evaluated
        now; tokens come with step().

        callback(text, channel), if given, is called from step() with each
        piece of this member's text; a true return value ends the member
        (finish_reason "callback"), and an exception it raises ends the
        member and is re-raised from step(). The other arguments are those
        of Session.complete(): per-call overrides (restored when the member
        leaves; seed= reseeds), stop strings, reasoning, add_special.
        While a member, the session refuses calls that change it (Misuse)."""
        if not isinstance(session, Session):
            raise TypeError("session must be a ds8b.Session")
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable as callback(text, channel)")
        overrides = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                         repeat_penalty=repeat_penalty, seed=seed)
        lib = _L()
        with self._guard("add a member"):
            bh = self._handle()
            sh = session._idle()
            if session._member is not None:
                raise Misuse(-2, "the session already generates in a batch; remove it first")
            pb, flags = session._prompt_flags(prompt, reasoning, start_reasoning, add_special)
            self._seq += 1
            m = BatchMember(self, session, self._seq, callback)
            run = _Run(session, None, None, m._emit, max_tokens, stop, overrides)
            m._run = run
            # Registered before the call: once added, the library holds run.cb.
            self._members[session] = m
            session._member = m
            try:
                run._apply(run.overrides)
                rc = lib.ds8b_batch_add(bh, sh, pb, len(pb), flags, run.cb, None)
                msg = _cstr(lib.ds8b_batch_errmsg(bh)) if rc != _OK else ""
            except BaseException:
                # e.g. KeyboardInterrupt: take the session out again if it got in
                if lib.ds8b_batch_remove(bh, sh) == _OK:
                    self._left(m, "cancelled")
                else:
                    self._forget(m)
                    run.restore()
                raise
            if rc != _OK:
                self._forget(m)
                run.restore()
                _raise(rc, msg)
        return m

    def step(self):
        """Generates one token for every member (their callbacks run here)
        and returns the number of members still generating.

        Raises the exception a member's callback raised (that member has
        left; the others carry on with the next step), or the error of the
        shared forward pass (the batch stays usable and the next step
        evaluates the tokens already sampled)."""
        lib = _L()
        with self._guard("step the batch"):
            h = self._handle()
            n = c_int64()
            rc = lib.ds8b_batch_step(h, byref(n))
            msg = _cstr(lib.ds8b_batch_errmsg(h)) if rc != _OK else ""
            stepped = list(self._members.values())
            for m in stepped:
                sh = m.session._h
                if sh is None:  # not expected: closing a session goes through _left
                    self._left(m, "closed")
                elif lib.ds8b_session_finish_reason(sh) != _FINISH_NONE:
                    self._left(m, None)
            errors = []
            for m in stepped:
                exc = m._take_exception()
                if exc is not None:
                    errors.append(exc)
                    if not m.done:  # routed here by the unraisable hook: end it too
                        m._run.stop("error")
        if errors:
            errors.sort(key=lambda e: not isinstance(e, KeyboardInterrupt))
            raise errors[0]
        if rc != _OK:
            _raise(rc, msg)
        return n.value

    def run(self):
        """Steps until no member is left; returns the members that finished
        meanwhile, in the order they joined."""
        done = []
        while True:
            before = list(self._members.values())
            n = self.step()
            done.extend(m for m in before if m.done)
            if n <= 0:
                break
        done.sort(key=lambda m: m._seq)
        return done

    def remove(self, session):
        """Takes session out of the batch: its generation ends with
        finish_reason "cancelled". Returns its BatchMember; InvalidArgument
        if the session is not a member."""
        if not isinstance(session, Session):
            raise TypeError("session must be a ds8b.Session")
        lib = _L()
        with self._guard("remove a member"):
            bh = self._handle()
            rc = lib.ds8b_batch_remove(bh, session._handle())
            if rc != _OK:
                _raise(rc, _cstr(lib.ds8b_batch_errmsg(bh)))
            m = self._members.get(session)
            if m is not None:
                self._left(m, "cancelled")
                m._take_exception()
        return m

    @property
    def members(self):
        """The BatchMembers still generating, in the order they joined."""
        return list(self._members.values())

    def __contains__(self, session):
        return session in self._members

    def __len__(self):
        """Members still generating (ds8b_batch_size)."""
        if self._owner == threading.get_ident():
            return max(0, _L().ds8b_batch_size(self._handle()))
        with self._lock:
            return max(0, _L().ds8b_batch_size(self._handle()))

    @property
    def closed(self):
        return self._h is None

    def close(self):
        """Frees the batch; members still generating end ("closed") and
        their sessions stay usable. Safe to repeat."""
        if getattr(self, "_h", None) is None:
            return
        with self._guard("close the batch"):
            if self._h is None:
                return
            h, self._h = self._h, None
            try:
                _L().ds8b_batch_free(h)
            finally:
                for m in list(self._members.values()):
                    self._left(m, "closed")
                    m._take_exception()
        try:
            self.model._sessions.discard(self)
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        if self.closed:
            return "<ds8b.Batch closed>"
        return "<ds8b.Batch %d members on %r>" % (len(self._members), self.model)


# ---------------------------------------------------------------------------
# Estimates and model memory
# ---------------------------------------------------------------------------
def memory_reserved():
    """Bytes obtained from the allocator, overhead included."""
    return _L().ds8b_memory_reserved()


def _model_memory(self, category=None):
    """(current, peak) bytes this model and its sessions own in a category."""
    cur, peak = c_int64(), c_int64()
    _check(_L().ds8b_model_memory(self._handle(), _category(category), byref(cur), byref(peak)))
    return cur.value, peak.value


Model.memory = _model_memory


def estimate(path, scheme=None, **session_params):
    """Estimated bytes per category (a dict keyed by Mem) that loading path
    and one full-context session need, read from headers only.
    session_params: n_ctx, n_batch, kv_type, n_threads."""
    b = _path_bytes(path)
    if scheme is not None and not isinstance(scheme, str):
        raise TypeError("scheme must be str or None")
    out = (c_int64 * len(Mem))()
    with _Params(session_params, ("n_ctx", "n_batch", "kv_type", "n_threads"),
                 "estimate()") as bag:
        rc = _L().ds8b_estimate(b, scheme.encode() if scheme else None, bag.h, out, len(Mem))
        msg = _last_message() if rc != _OK else ""
    if rc != _OK:
        _raise(rc, msg)
    return {Mem(i): out[i] for i in range(len(Mem))}
