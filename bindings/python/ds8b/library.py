"""What concerns the library as a whole: versions, heap accounting and
limits, and estimate() (memory a model and a session would need)."""

from ctypes import c_int64

from ._errors import InvalidArgument
from ._util import Mem, _L, _category, _OK, _cstr, _last_message, _path_bytes, _raise
from .params import _Params

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



def memory_reserved():
    """Bytes obtained from the allocator, overhead included."""
    return _L().ds8b_memory_reserved()



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
