"""Exceptions: one ds8b.Error subclass per DS8B_E_* code of ds8b.h."""


class Error(Exception):
    """A libds8b call failed.

    ``code`` is the negative DS8B_E_* value, ``message`` the library's own
    message (ds8b_errmsg() or ds8b_session_errmsg()), ``str(e)`` the same
    message.
    """

    code = None

    def __init__(self, code=None, message=""):
        if code is not None:
            self.code = code
        self.message = message or ""
        super().__init__(self.message or "libds8b error %s" % (self.code,))

    def __str__(self):
        return self.message or "libds8b error %s" % (self.code,)

    def __reduce__(self):
        return (type(self), (self.code, self.message))


class InvalidArgument(Error, ValueError):
    """DS8B_E_INVALID: a bad argument value."""
    code = -1


class Misuse(Error, RuntimeError):
    """DS8B_E_MISUSE: a closed handle, or a call out of order."""
    code = -2


class OutOfMemory(Error, MemoryError):
    """DS8B_E_NOMEM: an allocation failed or the hard heap limit was reached."""
    code = -3


class FileError(Error, OSError):
    """DS8B_E_IO: a file could not be opened, read or written."""
    code = -4


class FormatError(Error):
    """DS8B_E_FORMAT: malformed or corrupt input."""
    code = -5


class Unsupported(Error, NotImplementedError):
    """DS8B_E_UNSUPPORTED: valid input this build cannot handle."""
    code = -6


class ContextFull(Error):
    """DS8B_E_CONTEXT_FULL: the session's context length was reached."""
    code = -7


class Cancelled(Error):
    """DS8B_E_CANCELLED: a callback or Session.cancel() stopped the call."""
    code = -8


class BufferTooSmall(Error):
    """DS8B_E_BUFFER (handled inside the binding; not normally seen)."""
    code = -9


class TemplateError(Error):
    """DS8B_E_TEMPLATE: a chat template error."""
    code = -10


class LimitExceeded(Error):
    """DS8B_E_LIMIT: a sandbox or size bound was exceeded."""
    code = -11


class ChecksumError(Error):
    """DS8B_E_CHECKSUM: a CRC mismatch."""
    code = -12


class Mismatch(Error):
    """DS8B_E_MISMATCH: data belongs to another model or version."""
    code = -13


class InternalError(Error):
    """DS8B_E_INTERNAL: a bug in libds8b."""
    code = -14


class VersionMismatch(Mismatch, ImportError):
    """The loaded libds8b has another major version than this binding."""


class LibraryError(Error, ImportError):
    """libds8b could not be found or loaded."""


_BY_CODE = {c.code: c for c in (InvalidArgument, Misuse, OutOfMemory, FileError, FormatError,
                                 Unsupported, ContextFull, Cancelled, BufferTooSmall,
                                 TemplateError, LimitExceeded, ChecksumError, Mismatch,
                                 InternalError)}


def error_class(code):
    """The Error subclass for a DS8B_E_* code (Error itself for unknown codes)."""
    return _BY_CODE.get(code, Error)


def make_error(code, message):
    return error_class(code)(code, message)
