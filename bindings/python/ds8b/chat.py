"""Chat: a multi-turn conversation on a session (ds8b_chat)."""

import collections
import ctypes
import json
from ctypes import byref, c_size_t, c_void_p

from ._errors import InvalidArgument, Misuse
from ._stream import _Collector, _overrides, stream
from . import _lib
from ._util import _E_BUFFER, _Handle, _L, _OK, _check, _cstr, _raise
from .model import _check_messages, _check_messages_any, _json_bytes

ToolCall = collections.namedtuple("ToolCall", "name arguments arguments_json")
ToolCall.__doc__ = """A tool call parsed from a reply: the function's name, its
arguments as a dict, and the same arguments as the JSON text the model wrote."""

class Chat(_Handle):
    """A conversation bound to a session (ds8b_chat): add() messages, then
    reply() (an iterator of (Channel, text) pairs) or say(). Each reply
    re-renders the conversation with the model's chat template and reuses
    the session's KV cache of the shared prefix; the answer is appended to
    the conversation. Context manager; closed with its session.

    tools: a list of OpenAI-style tool definitions ({"type": "function",
    "function": {"name", "description", "parameters"}}) rendered by the
    template and enabling tool-call parsing of replies (tool_calls; their
    text streams on Channel.TOOL_CALL). variables: extra template
    variables, e.g. {"enable_thinking": False}. messages may be any message
    dicts (tool_calls, role "tool", reasoning_content, content None)."""

    def __init__(self, session, messages=None, *, tools=None, variables=None):
        from .session import Session  # session.py imports this module
        if not isinstance(session, Session):
            raise TypeError("session must be a ds8b.Session")
        msgs = _check_messages_any(messages) if messages is not None else []
        lib = _L()
        sh = session._idle()
        h = c_void_p()
        rc = lib.ds8b_chat_create(sh, byref(h))
        if rc != _OK:
            _raise(rc)
        self._h, self.session = h, session
        session._chats.add(self)
        try:
            if tools is not None:
                self.set_tools(tools)
            if variables is not None:
                self.set_variables(variables)
            for m in msgs:
                self.add_message(m)
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

    def add_message(self, message):
        """Appends any message dict, e.g. {"role": "tool", "name": ...,
        "content": ...} or an assistant message with "tool_calls"."""
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise TypeError("a message is a dict with a str 'role'")
        if set(message) == {"role", "content"} and isinstance(message["content"], str):
            return self.add(message["role"], message["content"])
        js = _json_bytes(message, "message")
        self._check_err(_L().ds8b_chat_add_json(self._handle(), js, len(js)))

    def add_tool_result(self, content, name=None):
        """Appends a tool result: {"role": "tool", "name": name, "content":
        content}; content that is not a str is sent as JSON text."""
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        if name is not None and not isinstance(name, str):
            raise TypeError("name must be str or None")
        cb = _stop_free(content, "content")
        nb = _stop_free(name, "name") if name is not None else None
        self._check_err(_L().ds8b_chat_add_tool_result(self._handle(), nb, cb))

    def set_tools(self, tools):
        """Sets the tool definitions (a list of dicts), or removes them (None)."""
        if tools is not None and not isinstance(tools, (list, tuple)):
            raise TypeError("tools must be a list of tool definitions or None")
        js = _json_bytes(list(tools), "tools") if tools is not None else None
        self._check_err(_L().ds8b_chat_set_tools(self._handle(), js, len(js) if js else 0))

    def set_variables(self, variables):
        """Sets extra template variables (a dict), or removes them (None)."""
        if variables is not None and not isinstance(variables, dict):
            raise TypeError("variables must be a dict or None")
        js = _json_bytes(variables, "variables") if variables is not None else None
        self._check_err(_L().ds8b_chat_set_vars(self._handle(), js, len(js) if js else 0))

    @property
    def tool_calls(self):
        """The tool calls of the last reply (or add_output): a list of ToolCall."""
        lib = _L()
        h = self._handle()
        out = []
        for i in range(max(0, lib.ds8b_chat_n_tool_calls(h))):
            name, args = ctypes.c_char_p(), ctypes.c_char_p()
            _check(lib.ds8b_chat_tool_call(h, i, byref(name), byref(args)))
            text = _cstr(args.value)
            out.append(ToolCall(_cstr(name.value), json.loads(text), text))
        return out

    def add_output(self, text, callback=None):
        """Appends text as the assistant's reply, as if the model had written
        it: split into channels (callback(text, channel) sees each piece),
        parsed for tool calls, nothing evaluated. Returns tool_calls."""
        if not isinstance(text, str):
            raise TypeError("text must be str")
        b = text.encode("utf-8", "surrogatepass")
        err = []

        def on_piece(user, ptr, n, channel):
            try:
                if callback is not None:
                    from ._util import Channel
                    t = ctypes.string_at(ptr, n).decode("utf-8", "replace") if n else ""
                    return 1 if callback(t, Channel(channel) if channel in (0, 1, 2) else channel) else 0
                return 0
            except BaseException as e:  # noqa: B036
                err.append(e)
                return 1
        cb = _lib.STREAM_FN(on_piece)
        rc = _L().ds8b_chat_add_output(self._handle(), b, len(b), cb, None)
        if err:
            raise err[0]
        self._check_err(rc)
        return self.tool_calls

    def __len__(self):
        return max(0, _L().ds8b_chat_n_messages(self._handle()))

    def _message(self, h, i):
        role, content = ctypes.c_char_p(), ctypes.c_char_p()
        # ds8b_chat_message reports through ds8b_errmsg(), not the chat's message
        _check(_L().ds8b_chat_message(h, i, byref(role), byref(content)))
        return {"role": _cstr(role.value), "content": _cstr(content.value)}

    @property
    def messages(self):
        """The conversation so far, replies included: a new list of message
        dicts ({"role": ..., "content": ...}, plus tool_calls and the like
        where present; changing it changes nothing; use add() and pop())."""
        lib = _L()
        h = self._handle()
        n = c_size_t()
        cap = 4096
        for _ in range(3):
            buf = ctypes.create_string_buffer(cap)
            rc = lib.ds8b_chat_messages_json(h, buf, cap, byref(n))
            if rc == _E_BUFFER:
                cap = n.value + 1
                continue
            _check(rc)
            return json.loads(buf.raw[:n.value].decode("utf-8", "replace"))
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

    def _reply(self, max_tokens, stop, opts, pairs, close_after=False, collector=None,
               grammar=None):
        """stream() of ds8b_chat_reply; close_after closes the chat once it ends."""
        lib = _L()
        h = self._handle()
        self.session._idle()

        def invoke(cb, ng):
            return lib.ds8b_chat_reply(h, cb, None, ng)
        done = (lambda rc: self.close()) if close_after else None
        return stream(self.session, invoke, lambda: _cstr(lib.ds8b_chat_errmsg(h)), max_tokens,
                      stop, opts, pairs=pairs, collector=collector, done=done, grammar=grammar)

    def reply(self, max_tokens=None, *, temperature=None, top_k=None, top_p=None, min_p=None,
              repeat_penalty=None, seed=None, stop=None):
        """Generates the assistant's reply: a Generation of (Channel, text)."""
        return self._reply(max_tokens, stop,
                           _overrides(temperature, top_k, top_p, min_p, repeat_penalty, seed),
                           pairs=True)

    def say(self, content, callback=None, max_tokens=None, **opts):
        """Adds a user message, generates the reply on the calling thread and
        returns a Completion; callback(text, channel) as in Session.complete."""
        stop = opts.pop("stop", None)
        unknown = set(opts) - {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed"}
        if unknown:
            raise TypeError("say() got unexpected parameter(s) %s" % ", ".join(sorted(unknown)))
        self.add("user", content)
        return self._reply(max_tokens, stop, opts, pairs=True, collector=_Collector(callback))

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            _L().ds8b_chat_free(h)
            try:
                self.session._chats.discard(self)
            except Exception:
                pass


def _stop_free(s, what):
    b = s.encode("utf-8", "surrogatepass")
    if b"\0" in b:
        raise InvalidArgument(-1, "%s contains a NUL character" % what)
    return b
