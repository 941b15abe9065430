"""Locating, loading and declaring libds8b.

Nothing here runs at import time: the shared library is found and checked on
the first call that needs it (``get()``), so ``import ds8b`` works even where
the library is missing, and the version check can be tested on its own.

Search order:

1. ``DS8B_LIBRARY``: the full path of the library to use (nothing else is tried).
2. Next to the package: ``ds8b/libds8b.so.<major>``, ``ds8b/libds8b.so``,
   ``ds8b/libds8b.so.*``.
3. A source checkout: ``<repo>/lib/libds8b.so.<major>`` when this package is
   ``<repo>/bindings/python/ds8b``.
4. The system: ``ctypes.util.find_library("ds8b")``, then ``libds8b.so.<major>``
   through the dynamic loader's search path.
"""

import ctypes
import ctypes.util
import glob
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, c_char_p, c_double, c_int, c_int32, c_int64,
                    c_size_t, c_void_p)

from ._errors import LibraryError, VersionMismatch

#: The major version of libds8b this binding was written for.
EXPECTED_MAJOR = 0
#: ABI generations never change inside one major version.
SONAME = "libds8b.so.%d" % EXPECTED_MAJOR

# Callback types of ds8b.h. Text pointers that are not NUL-terminated travel
# as c_void_p so that ctypes never runs strlen() over them.
STREAM_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t, c_int)
PROGRESS_FN = CFUNCTYPE(c_int, c_void_p, c_double, c_char_p)
LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)

_h = c_void_p  # every opaque handle

# name: (restype, argtypes). Every function the binding calls is listed here
# and gets both attributes set before use.
_SIGNATURES = {
    "ds8b_version_number": (c_int, []),
    "ds8b_version": (c_char_p, []),
    "ds8b_errstr": (c_char_p, [c_int]),
    "ds8b_errmsg": (c_char_p, []),
    # params
    "ds8b_params_create": (c_int, [POINTER(_h)]),
    "ds8b_params_free": (None, [_h]),
    "ds8b_params_set_int": (c_int, [_h, c_int, c_int64]),
    "ds8b_params_set_float": (c_int, [_h, c_int, c_double]),
    "ds8b_params_get_int": (c_int, [_h, c_int, POINTER(c_int64)]),
    "ds8b_params_get_float": (c_int, [_h, c_int, POINTER(c_double)]),
    "ds8b_param_bounds": (c_int, [c_int, POINTER(c_double), POINTER(c_double)]),
    "ds8b_params_add_stop": (c_int, [_h, c_char_p]),
    "ds8b_params_clear_stops": (c_int, [_h]),
    "ds8b_params_set_log": (c_int, [_h, LOG_FN, c_void_p]),
    "ds8b_params_set_progress": (c_int, [_h, PROGRESS_FN, c_void_p]),
    # tokenizer
    "ds8b_tokenizer_load": (c_int, [c_char_p, POINTER(_h)]),
    "ds8b_tokenizer_free": (None, [_h]),
    "ds8b_tokenize": (c_int, [_h, c_void_p, c_size_t, c_int, POINTER(c_int32), c_size_t,
                              POINTER(c_size_t)]),
    "ds8b_detokenize": (c_int, [_h, POINTER(c_int32), c_size_t, c_int, c_void_p, c_size_t,
                                POINTER(c_size_t)]),
    "ds8b_tokenizer_vocab_size": (c_int32, [_h]),
    "ds8b_tokenizer_bos": (c_int32, [_h]),
    "ds8b_tokenizer_eos": (c_int32, [_h]),
    "ds8b_tokenizer_is_special": (c_int, [_h, c_int32]),
    # model
    "ds8b_model_load": (c_int, [c_char_p, _h, POINTER(_h)]),
    "ds8b_model_free": (None, [_h]),
    "ds8b_model_tokenizer": (_h, [_h]),
    "ds8b_model_info": (c_int, [_h, c_int, POINTER(c_int64)]),
    "ds8b_model_desc": (c_char_p, [_h]),
    "ds8b_model_set_log": (c_int, [_h, LOG_FN, c_void_p]),
    # quantization
    "ds8b_model_quantize": (c_int, [_h, c_char_p, _h, POINTER(_h)]),
    "ds8b_quantize": (c_int, [c_char_p, c_char_p, c_char_p, _h]),
    # session
    "ds8b_session_create": (c_int, [_h, _h, POINTER(_h)]),
    "ds8b_session_free": (None, [_h]),
    "ds8b_session_errmsg": (c_char_p, [_h]),
    "ds8b_session_set_int": (c_int, [_h, c_int, c_int64]),
    "ds8b_session_set_float": (c_int, [_h, c_int, c_double]),
    "ds8b_session_add_stop": (c_int, [_h, c_char_p]),
    "ds8b_session_n_past": (c_int64, [_h]),
    "ds8b_session_truncate": (c_int, [_h, c_int64]),
    "ds8b_session_reset": (c_int, [_h]),
    "ds8b_eval": (c_int, [_h, POINTER(c_int32), c_size_t, c_void_p]),
    "ds8b_session_logits": (c_void_p, [_h]),
    "ds8b_sample": (c_int, [_h, POINTER(c_int32)]),
    "ds8b_generate": (c_int, [_h, c_void_p, c_size_t, c_int, STREAM_FN, c_void_p,
                              POINTER(c_int64)]),
    "ds8b_session_cancel": (c_int, [_h]),
    "ds8b_session_finish_reason": (c_int, [_h]),
    "ds8b_session_n_generated": (c_int64, [_h]),
    # batched generation
    "ds8b_batch_create": (c_int, [_h, _h, POINTER(_h)]),
    "ds8b_batch_free": (None, [_h]),
    "ds8b_batch_errmsg": (c_char_p, [_h]),
    "ds8b_batch_add": (c_int, [_h, _h, c_void_p, c_size_t, c_int, STREAM_FN, c_void_p]),
    "ds8b_batch_step": (c_int, [_h, POINTER(c_int64)]),
    "ds8b_batch_remove": (c_int, [_h, _h]),
    "ds8b_batch_size": (c_int64, [_h]),
    # chat
    "ds8b_chat_render": (c_int, [_h, c_char_p, c_size_t, c_int, c_void_p, c_size_t,
                                 POINTER(c_size_t)]),
    "ds8b_chat_create": (c_int, [_h, POINTER(_h)]),
    "ds8b_chat_free": (None, [_h]),
    "ds8b_chat_errmsg": (c_char_p, [_h]),
    "ds8b_chat_add": (c_int, [_h, c_char_p, c_char_p]),
    "ds8b_chat_n_messages": (c_int64, [_h]),
    "ds8b_chat_message": (c_int, [_h, c_int64, POINTER(c_char_p), POINTER(c_char_p)]),
    "ds8b_chat_pop": (c_int, [_h]),
    "ds8b_chat_clear": (c_int, [_h]),
    "ds8b_chat_reply": (c_int, [_h, STREAM_FN, c_void_p, POINTER(c_int64)]),
    "ds8b_chat_last_reply": (c_char_p, [_h]),
    "ds8b_chat_last_reasoning": (c_char_p, [_h]),
    # tools in chat
    "ds8b_chat_render_tools": (c_int, [_h, c_char_p, c_size_t, c_char_p, c_size_t, c_char_p, c_size_t,
                                       c_int, c_void_p, c_size_t, POINTER(c_size_t)]),
    "ds8b_chat_set_tools": (c_int, [_h, c_char_p, c_size_t]),
    "ds8b_chat_set_vars": (c_int, [_h, c_char_p, c_size_t]),
    "ds8b_chat_add_json": (c_int, [_h, c_char_p, c_size_t]),
    "ds8b_chat_add_tool_result": (c_int, [_h, c_char_p, c_char_p]),
    "ds8b_chat_n_tool_calls": (c_int64, [_h]),
    "ds8b_chat_tool_call": (c_int, [_h, c_int64, POINTER(c_char_p), POINTER(c_char_p)]),
    "ds8b_chat_add_output": (c_int, [_h, c_char_p, c_size_t, STREAM_FN, c_void_p]),
    "ds8b_chat_messages_json": (c_int, [_h, c_void_p, c_size_t, POINTER(c_size_t)]),
    # session state
    "ds8b_session_save": (c_int, [_h, c_void_p, c_size_t, POINTER(c_size_t)]),
    "ds8b_session_save_file": (c_int, [_h, c_char_p]),
    "ds8b_session_load": (c_int, [_h, c_void_p, c_size_t]),
    "ds8b_session_load_file": (c_int, [_h, c_char_p]),
    "ds8b_session_fork": (c_int, [_h, POINTER(_h)]),
    # memory
    "ds8b_memory_reserved": (c_int64, []),
    "ds8b_model_memory": (c_int, [_h, c_int, POINTER(c_int64), POINTER(c_int64)]),
    "ds8b_session_memory": (c_int, [_h, c_int, POINTER(c_int64), POINTER(c_int64)]),
    "ds8b_estimate": (c_int, [c_char_p, c_char_p, _h, POINTER(c_int64), c_size_t]),
    "ds8b_memory_used": (c_int64, [c_int]),
    "ds8b_memory_highwater": (c_int64, [c_int, c_int]),
    "ds8b_soft_heap_limit": (c_int64, [c_int64]),
    "ds8b_hard_heap_limit": (c_int64, [c_int64]),
}


class _Missing:
    """Stands in for a function the loaded library does not export."""

    def __init__(self, name, path):
        self.name, self.path = name, path

    def __call__(self, *args):
        from ._errors import Unsupported
        raise Unsupported(-6, "%s does not export %s (the library is older or incomplete)"
                          % (self.path, self.name))


class Lib:
    """The loaded library: one attribute per declared function."""

    def __init__(self, cdll, path):
        self.cdll, self.path = cdll, path
        self.missing = []
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                self.missing.append(name)
                setattr(self, name, _Missing(name, path))
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def has(self, name):
        return name not in self.missing


def check_version(number, expected_major=EXPECTED_MAJOR, path="libds8b"):
    """Raises VersionMismatch unless ``number`` (a ds8b_version_number()
    value, major*10000 + minor*100 + patch) has the expected major version."""
    if not isinstance(number, int) or number < 0:
        raise VersionMismatch(-13, "%s reports a nonsensical version number %r" % (path, number))
    major = number // 10000
    if major != expected_major:
        raise VersionMismatch(
            -13,
            "%s is version %d.%d.%d (major %d), but this ds8b Python binding needs major "
            "version %d; install a matching libds8b or point DS8B_LIBRARY at one"
            % (path, major, number // 100 % 100, number % 100, major, expected_major))
    return major


def _package_dir():
    return os.path.dirname(os.path.abspath(__file__))


def candidates():
    """Paths or names to try, in order, with a short note on where each came from."""
    env = os.environ.get("DS8B_LIBRARY")
    if env:
        return [(env, "DS8B_LIBRARY")]
    out = []
    pkg = _package_dir()
    beside = [os.path.join(pkg, SONAME), os.path.join(pkg, "libds8b.so")]
    beside += sorted(glob.glob(os.path.join(pkg, "libds8b.so.*")))
    for p in beside:
        if os.path.exists(p) and (p, "package") not in out:
            out.append((p, "package"))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(pkg)))
    if os.path.isfile(os.path.join(repo, "include", "ds8b.h")):
        for name in (SONAME, "libds8b.so"):
            p = os.path.join(repo, "lib", name)
            if os.path.exists(p):
                out.append((p, "source checkout"))
                break
    found = ctypes.util.find_library("ds8b")
    if found:
        out.append((found, "system (find_library)"))
    out.append((SONAME, "system (loader path)"))
    return out


_lock = threading.Lock()
_lib = None


def load(path):
    """Loads and checks the library at ``path``; returns a Lib."""
    try:
        cdll = ctypes.CDLL(path)
    except OSError as e:
        raise LibraryError(-4, "cannot load libds8b from %s: %s" % (path, e)) from None
    try:
        vn = cdll.ds8b_version_number
    except AttributeError:
        raise LibraryError(-13, "%s is not libds8b (no ds8b_version_number)" % path) from None
    vn.restype = c_int
    vn.argtypes = []
    check_version(vn(), EXPECTED_MAJOR, path)
    return Lib(cdll, path)


def get():
    """The process-wide Lib, loaded on first use."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for path, where in candidates():
            if where.startswith("system") or os.path.exists(path) or where == "DS8B_LIBRARY":
                try:
                    _lib = load(path)
                    return _lib
                except VersionMismatch:
                    raise
                except LibraryError as e:
                    if where == "DS8B_LIBRARY":
                        raise
                    tried.append("%s (%s): %s" % (path, where, e.message))
        raise LibraryError(
            -4, "libds8b not found; tried:\n  " + "\n  ".join(tried) +
            "\nSet DS8B_LIBRARY to the full path of libds8b.so.%d, or install libds8b "
            "(make install)." % EXPECTED_MAJOR)
