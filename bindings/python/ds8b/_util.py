"""Helpers every module of the binding shares: the constants of ds8b.h,
the Channel and Mem enums, error raising, argument conversion, and the
trampolines that run Python callbacks from C (_Trap)."""

import ctypes
import enum
import os
import sys
from array import array
from ctypes import c_int32

from . import _lib
from ._errors import InvalidArgument, error_class

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
                 6: "error", 7: "grammar"}
_FINISH_NONE, _FINISH_CANCELLED, _FINISH_ERROR = 0, 5, 6


class Channel(enum.IntEnum):
    """Channel of a generated piece (DS8B_CHANNEL_*)."""
    ANSWER = 0
    REASONING = 1
    TOOL_CALL = 2  # tool-call markup and JSON of a chat with tools


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
CHANNEL_TOOL_CALL = Channel.TOOL_CALL

LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG = 0, 1, 2, 3

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


class _Closing:
    """What every closable object of the binding does alike: a context
    manager whose exit, like garbage collection, calls close()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class _Handle(_Closing):
    """A _Closing object owning a C handle in self._h (None once closed)."""

    @property
    def closed(self):
        return getattr(self, "_h", None) is None


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
    if trap is None and getattr(obj, "__func__", None) is _run_on_piece():
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


def _category(category):
    if category is None:
        return -1
    if isinstance(category, bool) or not isinstance(category, int):
        raise TypeError("category must be a ds8b.Mem value or None, not %s"
                        % type(category).__name__)
    if not 0 <= category < len(Mem):
        raise InvalidArgument(-1, "unknown memory category %d" % category)
    return int(category)


def _run_on_piece():
    from ._stream import _Run  # _stream imports this module
    return _Run._on_piece
