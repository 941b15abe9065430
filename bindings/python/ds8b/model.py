"""Models and tokenizers: Model (loading, information, its tokenizer,
chat-template rendering, in-memory quantization), Tokenizer, and
quantize() to a GGUF file."""

import ctypes
import json
import os
import weakref
from ctypes import byref, c_int32, c_int64, c_size_t, c_void_p

from ._errors import InternalError, Misuse
from ._util import (_Handle, _DETOKENIZE_SKIP_SPECIAL, _E_BUFFER, _OK, _TOKENIZE_ADD_SPECIAL,
                    _TOKENIZE_NO_PARSE_SPECIAL, _L, _category, _check, _cstr, _id_array,
                    _int32_ptr, _last_message, _make_log_cb, _path_bytes, _raise, _text_bytes,
                    _Trap, InvalidArgument)
from .params import _LOAD_KEYS, _Params

# ---------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------
def _tokenize(h, text, add_special, parse_special):
    lib = _L()
    b = _text_bytes(text)
    flags = (_TOKENIZE_ADD_SPECIAL if add_special else 0) | \
            (0 if parse_special else _TOKENIZE_NO_PARSE_SPECIAL)
    cap = len(b) + 8
    n = c_size_t()
    for _ in range(3):
        buf = (c_int32 * cap)()
        rc = lib.ds8b_tokenize(h, b, len(b), flags, buf, cap, byref(n))
        if rc == _E_BUFFER or (rc == _OK and n.value > cap):
            cap = n.value + 1
            continue
        _check(rc)
        return list(buf[:n.value])
    raise InternalError(-14, "ds8b_tokenize kept asking for a bigger buffer")


def _detokenize(h, ids, skip_special):
    lib = _L()
    a = _id_array(ids)
    p, n = _int32_ptr(a)
    flags = _DETOKENIZE_SKIP_SPECIAL if skip_special else 0
    cap = 16 * n + 16
    length = c_size_t()
    for _ in range(3):
        buf = ctypes.create_string_buffer(cap)
        rc = lib.ds8b_detokenize(h, p, n, flags, buf, cap, byref(length))
        if rc == _E_BUFFER or (rc == _OK and length.value > cap):
            cap = length.value + 1
            continue
        _check(rc)
        return buf.raw[:length.value].decode("utf-8", "replace")
    raise InternalError(-14, "ds8b_detokenize kept asking for a bigger buffer")


class _TokenizerOps:
    """Tokenizer methods shared by Tokenizer and the model's tokenizer."""

    def _tok(self):
        raise NotImplementedError

    def tokenize(self, text, add_special=False, parse_special=True):
        """Token ids of text (str or UTF-8 bytes; invalid UTF-8 becomes U+FFFD).
        add_special applies the post-processor (BOS); parse_special=False
        treats special-token text as plain text."""
        return _tokenize(self._tok(), text, add_special, parse_special)

    def detokenize(self, ids, skip_special=False):
        """Text of a sequence of token ids."""
        return _detokenize(self._tok(), ids, skip_special)

    @property
    def vocab_size(self):
        return _L().ds8b_tokenizer_vocab_size(self._tok())

    @property
    def bos(self):
        """BOS id, or None."""
        v = _L().ds8b_tokenizer_bos(self._tok())
        return None if v < 0 else v

    @property
    def eos(self):
        """EOS id, or None."""
        v = _L().ds8b_tokenizer_eos(self._tok())
        return None if v < 0 else v

    def is_special(self, token_id):
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise TypeError("token id must be an int")
        if not -2**31 <= token_id < 2**31:
            raise InvalidArgument(-1, "token id %d is out of range" % token_id)
        return bool(_L().ds8b_tokenizer_is_special(self._tok(), token_id))


class Tokenizer(_TokenizerOps, _Handle):
    """A tokenizer loaded on its own: tokenizer.json, a directory holding one,
    or a GGUF file. Context manager; close() frees it."""

    def __init__(self, path):
        b = _path_bytes(path)
        lib = _L()
        h = c_void_p()
        rc = lib.ds8b_tokenizer_load(b, byref(h))
        if rc != _OK:
            _raise(rc)
        self._h = h
        self.path = os.fsdecode(b)

    def _tok(self):
        if self._h is None:
            raise Misuse(-2, "the tokenizer is closed")
        return self._h

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            _L().ds8b_tokenizer_free(h)

    def __repr__(self):
        return "<ds8b.Tokenizer %r%s>" % (self.path, " closed" if self.closed else "")


class _ModelTokenizer(_TokenizerOps):
    """The tokenizer owned by a Model (valid while the model is open)."""

    def __init__(self, model):
        self._model = model

    def _tok(self):
        return _L().ds8b_model_tokenizer(self._model._handle())

    def __repr__(self):
        return "<ds8b tokenizer of %r>" % (self._model,)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
_INFO_KEYS = (("arch", 1), ("vocab", 2), ("n_embd", 3), ("layers", 4), ("heads", 5),
              ("kv_heads", 6), ("head_dim", 7), ("n_ff", 8), ("n_ctx_train", 9),
              ("params", 10), ("tensors", 11), ("weight_bytes", 12))
_ARCH_NAMES = {1: "llama", 2: "qwen3"}


class Model(_Handle):
    """A loaded model: a Hugging Face checkpoint directory or a GGUF file.

    Model(path, use_mmap=True, verify_crc=True, progress=None, log=None)

    progress(fraction, stage) is called during loading; return True to
    cancel (Cancelled is raised). log(level, message) receives the library's
    log lines for the life of the model. Context manager; close() frees the
    model after closing any session still open on it.
    """

    def __init__(self, path, *, progress=None, log=None, **params):
        self._h = None
        self._sessions = weakref.WeakSet()
        b = _path_bytes(path)
        self.path = os.fsdecode(b)
        lib = _L()
        trap = _Trap()
        bag = _Params(params, _LOAD_KEYS, "Model()", log=log, progress=progress, trap=trap)
        # The model keeps the log callback: hold it as long as the model.
        self._log_cb = bag.log_cb
        h = c_void_p()
        with bag:
            rc = lib.ds8b_model_load(b, bag.h, byref(h))
            msg = _last_message() if rc != _OK else ""
        if trap.exc is not None:
            if rc == _OK:
                lib.ds8b_model_free(h)
            trap.raise_()
        if rc != _OK:
            _raise(rc, msg)
        self._h = h

    @classmethod
    def _adopt(cls, h, path, log_cb=None):
        m = cls.__new__(cls)
        m._h, m._sessions, m.path, m._log_cb = h, weakref.WeakSet(), path, log_cb
        return m

    def _handle(self):
        h = self._h
        if h is None:
            raise Misuse(-2, "the model is closed")
        return h

    def close(self):
        """Closes every session and batch on the model, then frees it. Safe
        to repeat."""
        if getattr(self, "_h", None) is None:
            return
        for s in list(self._sessions):
            s.close()
        h, self._h = self._h, None
        _L().ds8b_model_free(h)
        self._log_cb = None

    def __repr__(self):
        if self.closed:
            return "<ds8b.Model %r closed>" % (self.path,)
        return "<ds8b.Model %r: %s>" % (self.path, self.desc)

    # -- information -------------------------------------------------------
    @property
    def desc(self):
        """One-line description, e.g. "llama 6L 256d bf16"."""
        return _cstr(_L().ds8b_model_desc(self._handle()))

    @property
    def info(self):
        """A dict: arch, vocab, n_embd, layers, heads, kv_heads, head_dim,
        n_ff, n_ctx_train, params, tensors, weight_bytes."""
        lib = _L()
        h = self._handle()
        out = {}
        for name, key in _INFO_KEYS:
            v = c_int64()
            rc = lib.ds8b_model_info(h, key, byref(v))
            if rc == _OK:
                out[name] = v.value
        if "arch" in out:
            out["arch"] = _ARCH_NAMES.get(out["arch"], out["arch"])
        return out

    @property
    def n_vocab(self):
        v = c_int64()
        _check(_L().ds8b_model_info(self._handle(), 2, byref(v)))
        return v.value

    def set_log(self, log):
        """Replaces the log callback (None silences the model)."""
        cb = _make_log_cb(log)
        _check(_L().ds8b_model_set_log(self._handle(), cb, None))
        self._log_cb = cb

    # -- tokenizer -----------------------------------------------------------
    @property
    def tokenizer(self):
        return _ModelTokenizer(self)

    def tokenize(self, text, add_special=False, parse_special=True):
        """See Tokenizer.tokenize."""
        return self.tokenizer.tokenize(text, add_special, parse_special)

    def detokenize(self, ids, skip_special=False):
        """See Tokenizer.detokenize."""
        return self.tokenizer.detokenize(ids, skip_special)

    # -- sessions and quantization -------------------------------------------
    def session(self, *, stop=None, log=None, **params):
        """A new Session on this model; see Session."""
        from .session import Session
        return Session(self, stop=stop, log=log, **params)

    def batch(self, n_threads=None, *, threads=None):
        """A new Batch on this model, for sessions generating together; see Batch."""
        from .batch import Batch
        return Batch(self, n_threads, threads=threads)

    def render_chat(self, messages, add_generation_prompt=True, *, tools=None, **variables):
        """The prompt text of messages rendered with the model's chat template,
        as transformers' apply_chat_template(messages, tools=tools,
        add_generation_prompt=..., **variables). With tools (a list of
        {"type": "function", "function": {...}} dicts) or variables (e.g.
        enable_thinking=False), messages may carry tool_calls, role "tool"
        results, reasoning_content and content None; a template that raises
        on them raises TemplateError."""
        if tools is None and not variables:
            return _render_chat(self, messages, add_generation_prompt)
        return _render_chat_tools(self, messages, add_generation_prompt, tools, variables)

    def memory(self, category=None):
        """(current, peak) bytes this model and its sessions own in a category."""
        cur, peak = c_int64(), c_int64()
        _check(_L().ds8b_model_memory(self._handle(), _category(category), byref(cur),
                                      byref(peak)))
        return cur.value, peak.value

    def quantize(self, scheme, imatrix=None):
        """A new in-memory Model with the weights quantized to scheme
        ("q8_0", "q4_0", "q4_k_m", "q3_k_m", "q2_k", "f16", ...); imatrix
        (an ds8b.Imatrix) weighs the error by the columns' activations."""
        if not isinstance(scheme, str):
            raise TypeError("scheme must be str")
        h = c_void_p()
        if imatrix is None:
            rc = _L().ds8b_model_quantize(self._handle(), scheme.encode(), None, byref(h))
        else:
            from .imatrix import _set_on
            with _Params({}, (), "Model.quantize()") as bag:
                _set_on(bag.h, imatrix)
                rc = _L().ds8b_model_quantize(self._handle(), scheme.encode(), bag.h, byref(h))
        if rc != _OK:
            _raise(rc)
        return Model._adopt(h, "%s [%s]" % (self.path, scheme))


def quantize(in_path, out_path, scheme, progress=None, log=None, imatrix=None):
    """Converts a checkpoint directory or model file into a GGUF file at
    out_path with the given scheme ("f32", "f16", "bf16", "q8_0", "q6_k",
    "q5_k_m", "q5_0", "q4_k_m", "q4_0", "q3_k_m", "q2_k", "w4a16"). imatrix
    (an ds8b.Imatrix) weighs the quantization error by the columns'
    activations. progress(fraction, stage) may return True to cancel; an
    exception it raises is re-raised here."""
    bin_, bout = _path_bytes(in_path, "in_path"), _path_bytes(out_path, "out_path")
    if not isinstance(scheme, str):
        raise TypeError("scheme must be str, not %s" % type(scheme).__name__)
    trap = _Trap()
    with _Params({}, (), "quantize()", log=log, progress=progress, trap=trap) as bag:
        if imatrix is not None:
            from .imatrix import _set_on
            _set_on(bag.h, imatrix)
        rc = _L().ds8b_quantize(bin_, bout, scheme.encode("utf-8"), bag.h)
        msg = _last_message() if rc != _OK else ""
    trap.raise_()
    if rc != _OK:
        _raise(rc, msg)


def _check_messages(messages):
    if isinstance(messages, dict) or not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for m in messages:
        if not isinstance(m, dict):
            raise TypeError("each message must be a dict, not %s" % type(m).__name__)
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise TypeError("each message needs str 'role' and 'content': %r" % (m,))
        out.append(m)
    return out


def _check_messages_any(messages):
    """Messages of any shape the templates accept: dicts with a str role."""
    if isinstance(messages, dict) or not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list of message dicts")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise TypeError("each message must be a dict with a str 'role': %r" % (m,))
    return list(messages)


def _json_bytes(value, what):
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError) as e:
        raise TypeError("%s must be JSON-serialisable: %s" % (what, e)) from None


def _render_chat_tools(model, messages, add_generation_prompt, tools, variables):
    lib = _L()
    js = _json_bytes(_check_messages_any(messages), "messages")
    if tools is not None and not isinstance(tools, (list, tuple)):
        raise TypeError("tools must be a list of tool definitions")
    tj = _json_bytes(list(tools), "tools") if tools is not None else None
    vj = _json_bytes(dict(variables), "variables") if variables else None
    h = model._handle()
    cap = 2 * len(js) + (2 * len(tj) if tj else 0) + 1024
    n = c_size_t()
    for _ in range(3):
        buf = ctypes.create_string_buffer(cap)
        rc = lib.ds8b_chat_render_tools(h, js, len(js), tj, len(tj) if tj else 0, vj,
                                        len(vj) if vj else 0, 1 if add_generation_prompt else 0,
                                        buf, cap, byref(n))
        if rc == _E_BUFFER:
            cap = n.value + 1
            continue
        _check(rc)
        return buf.raw[:n.value].decode("utf-8", "replace")
    raise InternalError(-14, "ds8b_chat_render_tools kept asking for a bigger buffer")


def _render_chat(model, messages, add_generation_prompt):
    lib = _L()
    js = json.dumps(_check_messages(messages), ensure_ascii=False).encode("utf-8")
    h = model._handle()
    cap = 2 * len(js) + 256
    n = c_size_t()
    for _ in range(3):
        buf = ctypes.create_string_buffer(cap)
        rc = lib.ds8b_chat_render(h, js, len(js), 1 if add_generation_prompt else 0, buf, cap,
                                  byref(n))
        if rc == _E_BUFFER:
            cap = n.value + 1
            continue
        _check(rc)
        return buf.raw[:n.value].decode("utf-8", "replace")
    raise InternalError(-14, "ds8b_chat_render kept asking for a bigger buffer")
