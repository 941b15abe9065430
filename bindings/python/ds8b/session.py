"""Session: a KV cache and a sampler on a Model; evaluation, sampling,
state save/restore and fork, and generation (generate, complete, chat)."""

import ctypes
import weakref
from array import array
from ctypes import byref, c_int32, c_int64, c_size_t, c_void_p

from ._errors import InternalError, InvalidArgument, Misuse
from ._util import (_Handle, _E_BUFFER, _GEN_ADD_SPECIAL, _GEN_REASONING, _GEN_START_REASONING, _L, _OK,
                    _FINISH_NAMES, _category, _cstr, _id_array, _int32_ptr, _last_message,
                    _path_bytes, _raise, _text_bytes)
from ._stream import _Collector, _overrides, stream
from .chat import Chat
from .grammar import _attach, _parse_json_answer, _resolve
from .model import Model
from .params import _LIVE_KEYS, _PARAMS, _SESSION_KEYS, _Params, _check_value, _stop_bytes, _stop_list

# ---------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------
class Session(_Handle):
    """A KV cache and a sampler on a Model. Create with model.session(**params):

    n_ctx, n_threads, n_batch, kv_type ("f32"/"f16"/"q8_0"), ctx_policy
    ("error"/"stop"/"slide"), n_sink, temperature, top_k, top_p, min_p,
    repeat_penalty, repeat_last_n, seed, max_tokens, stop_at_eos, spec
    ("off"/"auto"/"on": speculative decoding, default auto), spec_max_draft,
    spec_ngram; stop=[...] adds stop strings for the session's whole life.

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

    # -- speculative decoding -------------------------------------------------
    def set_draft(self, text):
        """The text expected right after the next generation's prompt (an
        editor's text after the cursor): a draft for speculative decoding,
        consumed by the next generation. None or "" clears it. A wrong draft
        costs time, never output."""
        b = _text_bytes(text if text is not None else "")
        self._check_err(_L().ds8b_session_set_draft(self._idle(), b, len(b)))

    def set_draft_model(self, model):
        """A smaller Model with the same vocabulary that drafts greedily for
        this session (None detaches). Closing that model closes this session."""
        if model is not None and not isinstance(model, Model):
            raise TypeError("model must be a ds8b.Model or None")
        h = self._idle()
        self._check_err(_L().ds8b_session_set_draft_model(h, model._handle() if model is not None else None))
        old = getattr(self, "_draft_model", None)
        if old is not None and old is not model:
            old._sessions.discard(self)
        self._draft_model = model
        if model is not None:
            model._sessions.add(self)

    def spec_stats(self):
        """(drafted, accepted, passes) since the session was created."""
        d, a, p = c_int64(), c_int64(), c_int64()
        self._check_err(_L().ds8b_session_spec_stats(self._handle(), byref(d), byref(a), byref(p)))
        return d.value, a.value, p.value

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

    def _prompt_run(self, prompt, max_tokens, stop, reasoning, start_reasoning, add_special,
                    overrides, pairs=False, collector=None, grammar=None):
        """stream() of ds8b_generate on prompt after what the session holds."""
        h = self._idle()
        pb, flags = self._prompt_flags(prompt, reasoning, start_reasoning, add_special)
        lib = _L()

        def invoke(cb, ng):
            return lib.ds8b_generate(h, pb, len(pb), flags, cb, None, ng)
        return stream(self, invoke, lambda: _cstr(lib.ds8b_session_errmsg(h)), max_tokens, stop,
                      overrides, pairs=pairs, collector=collector, grammar=grammar)

    def generate(self, prompt, max_tokens=None, *, temperature=None, top_k=None, top_p=None,
                 min_p=None, repeat_penalty=None, seed=None, stop=None, reasoning=False,
                 start_reasoning=False, add_special=None, grammar=None, json_schema=None):
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
        from the iterator. grammar= (a ds8b.Grammar or GBNF text) or
        json_schema= (a dict) constrains this call's text (finish_reason
        "grammar" when it is complete)."""
        return self._prompt_run(prompt, max_tokens, stop, reasoning, start_reasoning, add_special,
                                _overrides(temperature, top_k, top_p, min_p, repeat_penalty, seed),
                                grammar=_resolve(grammar, json_schema))

    def complete(self, prompt, callback=None, max_tokens=None, *, temperature=None,
                 top_k=None, top_p=None, min_p=None, repeat_penalty=None, seed=None,
                 stop=None, reasoning=False, start_reasoning=False, add_special=None,
                 grammar=None, json_schema=None):
        """Generates on the calling thread and returns a Completion.

        callback(text, channel), if given, is called with each piece; a
        truthy return stops generation (finish_reason "callback"). An
        exception raised by the callback -- KeyboardInterrupt from Ctrl-C
        included -- stops generation and is re-raised here."""
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable as callback(text, channel)")
        return self._prompt_run(prompt, max_tokens, stop, reasoning, start_reasoning, add_special,
                                _overrides(temperature, top_k, top_p, min_p, repeat_penalty, seed),
                                collector=_Collector(callback), grammar=_resolve(grammar, json_schema))

    def chat(self, messages, max_tokens=None, *, temperature=None, top_k=None, top_p=None,
             min_p=None, repeat_penalty=None, seed=None, stop=None, add_special=None,
             grammar=None, json_schema=None):
        """One assistant reply; returns a Generation of (Channel, text) pairs,
        the reasoning (inside <think>...</think>) tagged Channel.REASONING.

        grammar= (a ds8b.Grammar or GBNF text) constrains the answer (after
        the reasoning). json_schema= (a dict) does too, runs the reply to its
        end and returns the parsed answer (json.loads) instead of a
        Generation; an answer cut off before it is complete raises
        ds8b.IncompleteAnswer (carrying .text and .finish_reason).

        messages: a list of {"role": ..., "content": ...} dicts, rendered with
        the model's chat template by the library (the session's KV cache of
        the shared prefix is reused); or a str, taken as an already rendered
        prompt. For a conversation kept across turns, see Session.conversation()."""
        opts = _overrides(temperature, top_k, top_p, min_p, repeat_penalty, seed)
        g = _resolve(grammar, json_schema)
        collector = _Collector() if json_schema is not None else None
        if isinstance(messages, (str, bytes, bytearray, memoryview)):
            out = self._prompt_run(messages, max_tokens, stop, True, False, add_special, opts,
                                   pairs=True, collector=collector, grammar=g)
        else:
            conv = Chat(self, messages)
            out = conv._reply(max_tokens, stop, opts, pairs=True, close_after=True,
                              collector=collector, grammar=g)
        return _parse_json_answer(out) if collector is not None else out

    def set_grammar(self, grammar=None, *, json_schema=None):
        """Constrains every later generation of this session by grammar (a
        ds8b.Grammar or GBNF text) or json_schema (a dict); no argument
        removes it. A per-call grammar= or json_schema= takes its place for
        that call only."""
        g = _resolve(grammar, json_schema)
        _attach(self._idle(), g)
        self._grammar = g

    @property
    def grammar(self):
        """The Grammar set by set_grammar(), or None."""
        return getattr(self, "_grammar", None)

    def conversation(self, messages=None):
        """A Chat (multi-turn conversation) bound to this session."""
        return Chat(self, messages)
