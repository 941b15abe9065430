"""Grammar: GBNF grammars and JSON Schema grammars for constrained generation.

    g = ds8b.Grammar.from_json_schema({"type": "object",
                                       "properties": {"ok": {"type": "boolean"}},
                                       "required": ["ok"]})
    s.generate("Answer: ", grammar=g)             # or json_schema={...} directly
    s.chat([{"role": "user", "content": "Hi"}], json_schema={...})   # -> the parsed value

A Grammar is compiled once and read-only: any number of sessions may use it at once.
See docs/grammars.md and docs/json-schema.md.
"""

import json
from ctypes import POINTER, byref, c_char_p, c_int, c_size_t, c_void_p, create_string_buffer

from ._errors import Error, InternalError, InvalidArgument, Misuse, _BY_CODE, make_error
from ._util import _E_BUFFER, _Handle, _L, _OK, _last_message, _text_bytes


class GrammarError(Error):
    """DS8B_E_GRAMMAR: a GBNF grammar that does not compile (the message
    gives "line L, column C: ...")."""
    code = -15


_BY_CODE.setdefault(GrammarError.code, GrammarError)

# The grammar functions, declared here (the rest of the library's are in _lib).
_SIGNATURES = {
    "ds8b_grammar_compile": (c_int, [c_void_p, c_size_t, c_char_p, POINTER(c_void_p)]),
    "ds8b_grammar_free": (None, [c_void_p]),
    "ds8b_grammar_accepts": (c_int, [c_void_p, c_void_p, c_size_t, POINTER(c_int)]),
    "ds8b_grammar_from_json_schema": (c_int, [c_void_p, c_size_t, POINTER(c_void_p)]),
    "ds8b_grammar_any_json": (c_int, [POINTER(c_void_p)]),
    "ds8b_json_schema_to_gbnf": (c_int, [c_void_p, c_size_t, c_void_p, c_size_t,
                                         POINTER(c_size_t)]),
    "ds8b_session_set_grammar": (c_int, [c_void_p, c_void_p]),
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
            raise Unsupported(-6, "%s does not export %s (the library is older than grammars)"
                              % (lib.path, name)) from None
        f.restype, f.argtypes = _SIGNATURES[name]
        _fns[name] = f
    return f


def _check(rc):
    if rc != _OK:
        raise make_error(rc, _last_message())


def _schema_bytes(schema):
    """A JSON Schema given as a dict, list or bool (serialised) or as JSON text."""
    if isinstance(schema, (bytes, bytearray, memoryview)):
        return bytes(schema)
    if isinstance(schema, str):
        return schema.encode("utf-8")
    if isinstance(schema, (dict, bool)):
        return json.dumps(schema, ensure_ascii=False).encode("utf-8")
    raise TypeError("a JSON Schema is a dict, a bool or JSON text, not %s" % type(schema).__name__)


def json_schema_to_gbnf(schema):
    """The GBNF text a JSON Schema converts to (start rule "root")."""
    sb = _schema_bytes(schema)
    f = _fn("ds8b_json_schema_to_gbnf")
    n = c_size_t()
    rc = f(sb, len(sb), None, 0, byref(n))
    if rc != _E_BUFFER:
        _check(rc)
    for _ in range(3):
        buf = create_string_buffer(n.value + 1)
        rc = f(sb, len(sb), buf, len(buf), byref(n))
        if rc == _E_BUFFER:
            continue
        _check(rc)
        return buf.raw[:n.value].decode("utf-8")
    raise InternalError(-14, "ds8b_json_schema_to_gbnf kept asking for a bigger buffer")


class Grammar(_Handle):
    """A compiled grammar. Grammar(gbnf_text, root=None) compiles GBNF
    (llama.cpp's format); Grammar.from_json_schema(schema) and
    Grammar.any_json() make JSON grammars. Context manager; close() frees it
    (refused by the library while a session still uses it)."""

    def __init__(self, gbnf, root=None):
        self._h = None
        gb = _text_bytes(gbnf, "gbnf")
        h = c_void_p()
        _check(_fn("ds8b_grammar_compile")(gb, len(gb), root.encode("utf-8") if root else None,
                                           byref(h)))
        self._h = h
        self._gbnf = gb.decode("utf-8", "replace")
        self.schema = None

    @classmethod
    def _adopt(cls, h, gbnf, schema=None):
        g = cls.__new__(cls)
        g._h, g._gbnf, g.schema = h, gbnf, schema
        return g

    @classmethod
    def from_gbnf(cls, gbnf, root=None):
        return cls(gbnf, root)

    @classmethod
    def from_json_schema(cls, schema):
        """A grammar whose sentences are the JSON texts valid under schema (a
        dict, a bool or JSON text). Unsupported keywords raise Unsupported
        naming the keyword and its path."""
        sb = _schema_bytes(schema)
        h = c_void_p()
        _check(_fn("ds8b_grammar_from_json_schema")(sb, len(sb), byref(h)))
        try:
            text = json_schema_to_gbnf(sb)
        except Exception:
            _fn("ds8b_grammar_free")(h)
            raise
        return cls._adopt(h, text, schema if not isinstance(schema, (bytes, bytearray,
                                                                      memoryview, str))
                          else json.loads(bytes(sb).decode("utf-8")))

    @classmethod
    def any_json(cls):
        """The grammar of any JSON value (whitespace bounded)."""
        h = c_void_p()
        _check(_fn("ds8b_grammar_any_json")(byref(h)))
        return cls._adopt(h, json_schema_to_gbnf(b"true"), True)

    def _handle(self):
        if self._h is None:
            raise Misuse(-2, "the grammar is closed")
        return self._h

    @property
    def gbnf(self):
        """The GBNF text of this grammar."""
        return self._gbnf

    def accepts(self, text):
        """True when the whole text is a complete sentence of the grammar."""
        tb = _text_bytes(text, "text")
        a = c_int()
        _check(_fn("ds8b_grammar_accepts")(self._handle(), tb, len(tb), byref(a)))
        return bool(a.value)

    def close(self):
        h = getattr(self, "_h", None)
        if h is None:
            return
        self._h = None
        _fn("ds8b_grammar_free")(h)

    def __repr__(self):
        if self.closed:
            return "<ds8b.Grammar closed>"
        return "<ds8b.Grammar %s>" % ("JSON Schema" if self.schema is not None else "GBNF")


def _resolve(grammar, json_schema):
    """The Grammar for a call's grammar= (a Grammar or GBNF text) and
    json_schema= (a dict, bool or JSON text) arguments, or None."""
    if grammar is not None and json_schema is not None:
        raise InvalidArgument(-1, "give grammar= or json_schema=, not both")
    if json_schema is not None:
        return Grammar.from_json_schema(json_schema)
    if grammar is None or isinstance(grammar, Grammar):
        return grammar
    if isinstance(grammar, (str, bytes, bytearray, memoryview)):
        return Grammar(grammar)
    raise TypeError("grammar must be a ds8b.Grammar or GBNF text, not %s" % type(grammar).__name__)


def _attach(session_h, grammar):
    """ds8b_session_set_grammar(session, grammar or NULL)."""
    rc = _fn("ds8b_session_set_grammar")(session_h, grammar._handle() if grammar is not None
                                         else None)
    if rc != _OK:
        raise make_error(rc, _last_message())


class IncompleteAnswer(Error, ValueError):
    """A chat(json_schema=...) answer that ended before the JSON value was
    complete (token limit, stop string, context): .text holds what was
    generated, .finish_reason why it ended."""
    code = 0

    def __init__(self, text, finish_reason):
        Error.__init__(self, 0, "the answer ended (%s) before the JSON value was complete: %r"
                       % (finish_reason, text[:200]))
        self.text, self.finish_reason = text, finish_reason


def _parse_json_answer(completion):
    """The parsed value of a Completion generated under a JSON grammar."""
    if completion.finish_reason not in ("grammar", "eos"):
        raise IncompleteAnswer(completion.text, completion.finish_reason)
    try:
        return json.loads(completion.text)
    except ValueError:
        raise IncompleteAnswer(completion.text, completion.finish_reason) from None
