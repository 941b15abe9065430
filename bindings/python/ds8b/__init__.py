"""ds8b -- Python binding for libds8b (DeepSeek 8B models on CPUs), over ctypes.

    import ds8b
    with ds8b.Model("models/demo-llama") as model, model.session(n_ctx=512) as s:
        for piece in s.generate("The Python interpreter", max_tokens=32, temperature=0):
            print(piece, end="", flush=True)

The shared library is found on first use; see ds8b._lib for the search order
(DS8B_LIBRARY overrides it). Failures raise ds8b.Error subclasses carrying the
library's code and message.
"""

# The package, by module (each imports only modules listed above it; model.py
# and chat.py import session.py and batch.py inside the functions that need them):
#   _lib.py      loading libds8b and declaring its functions
#   _errors.py   Error and its subclasses, one per DS8B_E_* code
#   _util.py     constants of ds8b.h, Channel, Mem, argument conversion, callbacks
#   params.py    keyword parameters -> ds8b_params; param_bounds()
#   library.py   versions, heap accounting and limits, estimate()
#   model.py     Model, Tokenizer, quantize(), chat-template rendering
#   imatrix.py   Imatrix: importance matrices for quantization
#   _stream.py   the one streaming path: _Run, stream(), Generation, Completion, Piece
#   chat.py      Chat
#   session.py   Session
#   batch.py     Batch, BatchMember
#   grammar.py   Grammar (GBNF, JSON Schema), json_schema_to_gbnf (imported by _stream.py)
# A new handle gets its own module here (e.g. grammar.py) and a line below.

from ._errors import (BufferTooSmall, Cancelled, ChecksumError, ContextFull, Error, FileError,
                      FormatError, InternalError, InvalidArgument, LibraryError, LimitExceeded,
                      Mismatch, Misuse, OutOfMemory, TemplateError, Unsupported,
                      VersionMismatch, error_class)
from ._lib import EXPECTED_MAJOR, check_version
from ._util import (CHANNEL_ANSWER, CHANNEL_REASONING, CHANNEL_TOOL_CALL, LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_WARN,
                    MEM_KV, MEM_MAPPED, MEM_OTHER, MEM_SCRATCH, MEM_SESSION, MEM_THREADS,
                    MEM_TOKENIZER, MEM_WEIGHTS, Channel, Mem)
from .params import param_bounds
from .library import (estimate, hard_heap_limit, library_path, memory_highwater, memory_reserved,
                      memory_used, soft_heap_limit, version, version_number)
from .model import Model, Tokenizer, quantize
from .imatrix import Imatrix
from ._stream import Completion, Generation, Piece
from .chat import Chat, ToolCall
from .session import Session
from .batch import Batch, BatchMember
from .grammar import Grammar, GrammarError, IncompleteAnswer, json_schema_to_gbnf

__version__ = "0.1.0"

__all__ = [
    "Model", "Tokenizer", "Session", "Chat", "ToolCall", "Batch", "BatchMember", "Generation",
    "Completion", "Piece", "Channel",
    "Mem", "quantize", "Imatrix", "estimate", "param_bounds", "memory_used", "memory_highwater",
    "memory_reserved", "soft_heap_limit", "hard_heap_limit",
    "version", "version_number", "library_path", "check_version", "EXPECTED_MAJOR",
    "Error", "InvalidArgument", "Misuse", "OutOfMemory", "FileError", "FormatError",
    "Unsupported", "ContextFull", "Cancelled", "BufferTooSmall", "TemplateError",
    "LimitExceeded", "ChecksumError", "Mismatch", "InternalError", "VersionMismatch",
    "LibraryError", "error_class",
    "Grammar", "GrammarError", "IncompleteAnswer", "json_schema_to_gbnf",
]

# The classes live in the modules above; they present themselves as ds8b's
# (help(), repr of the class, pickling of Completion) as they always have.
for _cls in (Channel, Mem, Model, Tokenizer, Piece, Completion, Generation, Chat, ToolCall, Session, Batch,
             BatchMember, Grammar, GrammarError,
             IncompleteAnswer):
    _cls.__module__ = __name__
del _cls

