"""Chat: a multi-turn conversation on a session (ds8b_chat)."""

import ctypes
from ctypes import byref, c_void_p

from ._errors import InvalidArgument, Misuse
from ._stream import _Collector, _overrides, stream
from ._util import _Handle, _L, _OK, _check, _cstr, _raise
from .model import _check_messages

class Chat(_Handle):
    """A conversation bound to a session (ds8b_chat): add() messages, then
    reply() (an iterator of (Channel, text) pairs) or say(). Each reply
    re-renders the conversation with the model's chat template and reuses
    the session's KV cache of the shared prefix; the answer is appended to
    the conversation. Context manager; closed with its session."""

    def __init__(self, session, messages=None):
        from .session import Session  # session.py imports this module
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

    def _reply(self, max_tokens, stop, opts, pairs, close_after=False, collector=None):
        """stream() of ds8b_chat_reply; close_after closes the chat once it ends."""
        lib = _L()
        h = self._handle()
        self.session._idle()

        def invoke(cb, ng):
            return lib.ds8b_chat_reply(h, cb, None, ng)
        done = (lambda rc: self.close()) if close_after else None
        return stream(self.session, invoke, lambda: _cstr(lib.ds8b_chat_errmsg(h)), max_tokens,
                      stop, opts, pairs=pairs, collector=collector, done=done)

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
