"""Keyword parameters: their ds8b_param keys, checking, and _Params, the
ds8b_params bag a call builds from them; stop strings; param_bounds()."""

from ctypes import byref, c_double, c_int64, c_void_p

from ._errors import InvalidArgument
from ._util import _L, _check, _make_log_cb, _make_progress_cb, _Trap

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


