"""Tests of the ds8b Python binding against the bundled demo model.

Environment: DS8B_LIBRARY (the library under test), DS8B_ROOT (repository
root; default: three levels up from this file), DS8B_SHARED (the project's
shared test data; default: <root>/../shared).
"""

import gc
import json
import os
import threading
import time

import pytest

import ds8b

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("DS8B_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SHARED = os.environ.get("DS8B_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")


def _first_dir(*paths):
    for p in paths:
        if os.path.isdir(p):
            return p
    return paths[0]


MODEL_DIR = _first_dir(os.path.join(ROOT, "models", "demo-llama"),
                       os.path.join(SHARED, "models", "demo-llama"))
REF_PATH = os.path.join(SHARED, "testdata", "reference", "demo-llama.json")

# Sessions stay small so that the suite is quick on a busy 2-core machine.
SESSION = dict(n_ctx=512, n_threads=2)


@pytest.fixture(scope="module")
def model():
    m = ds8b.Model(MODEL_DIR)
    yield m
    m.close()


@pytest.fixture(scope="module")
def ref():
    if not os.path.exists(REF_PATH):
        pytest.skip("reference data not found: %s" % REF_PATH)
    with open(REF_PATH, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture
def session(model):
    s = model.session(**SESSION)
    yield s
    s.close()


# ---------------------------------------------------------------------------
# Library and versions
# ---------------------------------------------------------------------------
def test_library_version():
    n = ds8b.version_number()
    assert n // 10000 == ds8b.EXPECTED_MAJOR
    assert ds8b.version().count(".") == 2
    assert ds8b.version() == "%d.%d.%d" % (n // 10000, n // 100 % 100, n % 100)


def test_library_path_from_env():
    want = os.environ.get("DS8B_LIBRARY")
    if not want:
        pytest.skip("DS8B_LIBRARY not set")
    assert ds8b.library_path() == want


def test_version_check_accepts_same_major():
    assert ds8b.check_version(100) == 0
    assert ds8b.check_version(9999) == 0
    assert ds8b.check_version(10203, expected_major=1) == 1


def test_version_check_refuses_other_major():
    with pytest.raises(ds8b.VersionMismatch) as ei:
        ds8b.check_version(10100, path="/x/libds8b.so.1")
    msg = str(ei.value)
    assert "1.1.0" in msg and "/x/libds8b.so.1" in msg and "major" in msg
    assert isinstance(ei.value, ds8b.Error) and isinstance(ei.value, ImportError)
    with pytest.raises(ds8b.VersionMismatch):
        ds8b.check_version(100, expected_major=2)
    with pytest.raises(ds8b.VersionMismatch):
        ds8b.check_version(-5)


def test_missing_library_is_reported(monkeypatch, tmp_path):
    from ds8b import _lib
    monkeypatch.setenv("DS8B_LIBRARY", str(tmp_path / "nope" / "libds8b.so.0"))
    assert _lib.candidates() == [(str(tmp_path / "nope" / "libds8b.so.0"), "DS8B_LIBRARY")]
    with pytest.raises(ds8b.LibraryError) as ei:
        _lib.load(str(tmp_path / "nope" / "libds8b.so.0"))
    assert "nope" in str(ei.value)


def test_error_classes():
    for code in range(-1, -15, -1):
        cls = ds8b.error_class(code)
        assert issubclass(cls, ds8b.Error) and cls.code == code
    assert ds8b.error_class(-99) is ds8b.Error
    assert issubclass(ds8b.InvalidArgument, ValueError)
    assert issubclass(ds8b.OutOfMemory, MemoryError)
    e = ds8b.FileError(-4, "x: no such file")
    assert e.code == -4 and e.message == "x: no such file" and str(e) == "x: no such file"


# ---------------------------------------------------------------------------
# Model, tokenizer
# ---------------------------------------------------------------------------
def test_model_info(model):
    info = model.info
    assert info["vocab"] == 8192
    assert info["n_embd"] == 256
    assert info["layers"] == 6
    assert info["arch"] == "llama"
    assert info["params"] > 1000000
    assert isinstance(model.desc, str) and model.desc
    assert "demo-llama" in repr(model)


def test_tokenize_matches_reference(model, ref):
    for p in ref["prompts"]:
        ids = model.tokenize(p["text"], add_special=p["add_special_tokens"])
        assert ids == p["ids"], p["name"]


def test_tokenize_flags(model):
    bos = model.tokenizer.bos
    assert bos == 8184
    plain = model.tokenize("hello world")
    assert model.tokenize("hello world", add_special=True) == [bos] + plain
    special = "<｜User｜>"
    assert model.tokenize(special) == [8187]
    assert 8187 not in model.tokenize(special, parse_special=False)
    assert model.tokenizer.is_special(8187)
    assert not model.tokenizer.is_special(plain[0])
    assert model.tokenizer.vocab_size == 8192


def test_detokenize_round_trip(model, ref):
    for p in ref["prompts"]:
        ids = model.tokenize(p["text"])
        assert model.detokenize(ids) == p["text"], p["name"]
    ids = model.tokenize("The Python interpreter", add_special=True)
    assert model.detokenize(ids, skip_special=True) == "The Python interpreter"
    assert model.detokenize(ids).startswith("<｜begin▁of▁sentence｜>")
    assert model.detokenize([]) == ""


def test_tokenize_bytes_and_invalid_utf8(model):
    assert model.tokenize(b"The Python") == model.tokenize("The Python")
    ids = model.tokenize(b"ab\xff\xfecd\xc3")
    assert ids
    text = model.detokenize(ids)
    assert "\ufffd" in text and text.startswith("ab") and "cd" in text
    # a lone surrogate in a str goes through as invalid UTF-8, replaced too
    assert "\ufffd" in model.detokenize(model.tokenize("x\ud800y"))
    # embedded NUL is text like any other
    assert model.detokenize(model.tokenize("a\0b")) == "a\0b"


def test_standalone_tokenizer(model, ref):
    with ds8b.Tokenizer(os.path.join(MODEL_DIR, "tokenizer.json")) as tok:
        for p in ref["prompts"][:5]:
            assert tok.tokenize(p["text"], add_special=p["add_special_tokens"]) == p["ids"]
        assert tok.vocab_size == 8192
    with pytest.raises(ds8b.Misuse):
        tok.tokenize("x")
    tok.close()
    with ds8b.Tokenizer(MODEL_DIR) as tok2:
        assert tok2.tokenize("hello") == model.tokenize("hello")


def test_wrong_types(model, session):
    with pytest.raises(TypeError):
        model.tokenize(123)
    with pytest.raises(TypeError):
        model.tokenize(None)
    with pytest.raises(TypeError):
        model.detokenize("abc")
    with pytest.raises(TypeError):
        model.detokenize([1.5, 2])
    with pytest.raises(TypeError):
        model.detokenize(["a"])
    with pytest.raises(TypeError):
        model.detokenize(7)
    with pytest.raises(TypeError):
        ds8b.Model(12345)
    with pytest.raises(TypeError):
        model.session(n_ctx="big")
    with pytest.raises(TypeError):
        model.session(no_such_param=1)
    with pytest.raises(TypeError):
        session.generate(42)
    with pytest.raises(TypeError):
        session.generate("x", stop=[1])
    with pytest.raises(TypeError):
        session.eval("abc")
    with pytest.raises(TypeError):
        ds8b.memory_used("kv")


def test_huge_and_bad_ids(model, session):
    with pytest.raises(ds8b.InvalidArgument):
        model.detokenize([2**40])
    # ids outside the vocabulary are skipped by the library's detokenizer
    assert model.detokenize([10**6, -1]) == ""
    assert model.detokenize([8184, 10**6], skip_special=True) == ""
    with pytest.raises(ds8b.Error):
        session.eval([10**6])
    with pytest.raises(ds8b.InvalidArgument):
        session.eval([2**33])
    with pytest.raises(ds8b.InvalidArgument):
        session.eval([])
    assert session.n_past == 0


def test_bad_path_names_the_path(tmp_path):
    missing = str(tmp_path / "no-such-model-dir")
    with pytest.raises(ds8b.Error) as ei:
        ds8b.Model(missing)
    assert missing in str(ei.value)
    assert ei.value.code < 0
    with pytest.raises(ds8b.Error) as ei:
        ds8b.Tokenizer(missing)
    assert missing in str(ei.value)
    with pytest.raises(ds8b.InvalidArgument):
        ds8b.Model("a\0b")
    with pytest.raises(ds8b.InvalidArgument):
        ds8b.Model("")


def test_garbage_model_file(tmp_path):
    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ds8b.Error) as ei:
        ds8b.Model(str(bad))
    assert not isinstance(ei.value, ds8b.InternalError)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + os.urandom(200))
    with pytest.raises(ds8b.Error):
        ds8b.Model(str(junk))


def test_load_log_callback(tmp_path):
    lines = []
    with pytest.raises(ds8b.Error):
        ds8b.Model(str(tmp_path / "missing"), log=lambda level, msg: lines.append((level, msg)))
    assert any(level == ds8b.LOG_ERROR and "missing" in msg for level, msg in lines)

    def bad_log(level, msg):
        raise RuntimeError("log callback failure must not escape into C")
    with pytest.raises(ds8b.Error):
        ds8b.Model(str(tmp_path / "missing"), log=bad_log)


def test_progress_callback_cancels_or_is_unused():
    calls = []

    def progress(fraction, stage):
        calls.append((fraction, stage))
        return True  # cancel at once
    try:
        m = ds8b.Model(MODEL_DIR, progress=progress)
    except ds8b.Cancelled:
        assert calls
    else:
        assert not calls  # the loader reports no progress
        m.close()


def test_progress_exception_propagates():
    class Boom(Exception):
        pass

    def progress(fraction, stage):
        raise Boom("stop loading")
    try:
        m = ds8b.Model(MODEL_DIR, progress=progress)
    except Boom:
        pass
    else:
        m.close()  # the loader never called it


# ---------------------------------------------------------------------------
# Sessions: eval, generate
# ---------------------------------------------------------------------------
def _argmax(row):
    best = max(range(len(row)), key=row.__getitem__)
    return best


def test_eval_logits(model, session, ref):
    p = ref["prompts"][0]
    last = session.eval(p["ids"])
    assert len(last) == 8192 and last.typecode == "f"
    assert _argmax(last) == p["greedy"][0]
    assert session.n_past == len(p["ids"])
    assert list(session.logits()) == list(last)
    tok = session.sample()
    assert 0 <= tok < 8192
    session.reset()
    assert session.n_past == 0
    rows = session.eval(p["ids"], all_logits=True)
    assert len(rows) == len(p["ids"]) and all(len(r) == 8192 for r in rows)
    # the batched path may round differently from the one-row path
    assert max(abs(a - b) for a, b in zip(rows[-1], last)) < 1e-3
    assert _argmax(rows[-1]) == p["greedy"][0]
    session.truncate(2)
    assert session.n_past == 2
    with pytest.raises(ds8b.InvalidArgument):
        session.truncate(99)


def test_greedy_matches_reference(model, ref):
    p = ref["prompts"][0]
    with model.session(**SESSION) as s:
        gen = s.generate(p["text"], max_tokens=len(p["greedy"]), temperature=0)
        pieces = list(gen)
        text = "".join(pieces)
        assert all(isinstance(x, str) for x in pieces)
        assert all(x.channel == ds8b.Channel.ANSWER for x in pieces)
        assert text[:20] == p["greedy_text"][:20]
        assert gen.n_tokens == len(p["greedy"])
        assert gen.finish_reason == "length"
        assert s.n_past == len(p["ids"]) + len(p["greedy"])
    with model.session(temperature=0, **SESSION) as s:
        c = s.complete(p["text"], max_tokens=len(p["greedy"]))
        assert c.text == text and c.n_tokens == len(p["greedy"]) and c.reasoning == ""


def test_seed_is_deterministic(model):
    opts = dict(max_tokens=24, temperature=0.9, top_k=0, top_p=1.0, min_p=0.0)
    with model.session(**SESSION) as s:
        a = "".join(s.generate("The Python interpreter", seed=1234, **opts))
        s.reset()
        b = "".join(s.generate("The Python interpreter", seed=1234, **opts))
    with model.session(seed=1234, **SESSION) as s2:
        c = s2.complete("The Python interpreter", **opts).text
    assert a == b == c
    assert len(a) > 10


def test_per_call_overrides_do_not_stick(model):
    with model.session(temperature=0, max_tokens=5, **SESSION) as s:
        g = s.generate("The Python interpreter", max_tokens=3)
        g.text()
        assert g.n_tokens == 3
        s.reset()
        g = s.generate("The Python interpreter")
        g.text()
        assert g.n_tokens == 5


def test_stop_strings(model, ref):
    p = ref["prompts"][0]
    greedy = p["greedy_text"]
    word = "Launcher"
    assert word in greedy
    want = greedy[:greedy.index(word)]
    with model.session(temperature=0, **SESSION) as s:
        gen = s.generate(p["text"], max_tokens=len(p["greedy"]), stop=[word, "zzzz-not-there"])
        assert gen.text() == want
        assert gen.finish_reason == "stop"
        s.reset()
        # the stop applied to that call only
        full = s.complete(p["text"], max_tokens=len(p["greedy"]))
        assert full.text.startswith(want + word)
        s.reset()
        c = s.complete(p["text"], max_tokens=len(p["greedy"]), stop="\n")
        assert c.text == greedy[:greedy.index("\n")] and c.finish_reason == "stop"
    # session-wide stop strings go through the library's own matcher
    with model.session(temperature=0, stop=[word], **SESSION) as s:
        assert "".join(s.generate(p["text"], max_tokens=len(p["greedy"]))) == want
    with pytest.raises(ds8b.InvalidArgument):
        model.session(stop=[""])


def test_reasoning_channel(model, ref):
    chat = [p for p in ref["prompts"] if p["name"] == "chat"][0]
    with model.session(temperature=0, **SESSION) as s:
        pairs = list(s.chat(chat["text"], max_tokens=len(chat["greedy"])))
        assert pairs
        assert pairs[0][0] == ds8b.Channel.REASONING
        assert all(isinstance(t, str) and t for _, t in pairs)
        joined = "".join(t for ch, t in pairs)
        assert "<think>" not in joined
        s.reset()
        c = s.complete(chat["text"], max_tokens=len(chat["greedy"]), reasoning=True)
        assert c.reasoning
        s.reset()
        pieces = list(s.generate(chat["text"], max_tokens=5, reasoning=True))
        assert pieces[0].channel == ds8b.Channel.REASONING


CHAT_MESSAGES = [{"role": "user", "content": "What is a list comprehension?"}]


def test_render_chat(model, ref):
    chat = [p for p in ref["prompts"] if p["name"] == "chat"][0]
    rendered = model.render_chat(CHAT_MESSAGES)
    # the reference prompt also opens the <think> block
    assert rendered + "<think>\n" == chat["text"]
    no_gen = model.render_chat(CHAT_MESSAGES, add_generation_prompt=False)
    assert chat["text"].startswith(no_gen) and "<｜Assistant｜>" not in no_gen
    with pytest.raises(TypeError):
        model.render_chat("hello")
    with pytest.raises(TypeError):
        model.render_chat([{"role": "user"}])
    with pytest.raises(TypeError):
        model.render_chat([{"role": "user", "content": object()}])


def test_chat_messages(model):
    with model.session(temperature=0, **SESSION) as s:
        a = list(s.chat(CHAT_MESSAGES, max_tokens=12))
        s.reset()
        b = list(s.chat(model.render_chat(CHAT_MESSAGES), max_tokens=12))
        assert a == b and a
        assert all(ch in (ds8b.Channel.ANSWER, ds8b.Channel.REASONING) for ch, _ in a)


def test_conversation(model):
    with model.session(temperature=0, **SESSION) as s:
        with s.conversation([{"role": "system", "content": "Be brief."}]) as conv:
            assert len(conv) == 1
            conv.add("user", "Hello")
            gen = conv.reply(max_tokens=10)
            pairs = list(gen)
            assert pairs and gen.n_tokens == 10
            assert len(conv) == 3  # the answer was appended
            assert conv.last_reasoning == "".join(
                t for ch, t in pairs if ch == ds8b.Channel.REASONING)
            n1 = s.n_past
            c = conv.say("And then?", max_tokens=6)
            assert c.n_tokens == 6 and len(conv) == 5
            assert c.text == conv.last_reply and c.reasoning == conv.last_reasoning
            assert s.n_past > n1
            with pytest.raises(TypeError):
                conv.add("user", 5)
            conv.clear()
            assert len(conv) == 0
        assert conv.closed
        with pytest.raises(ds8b.Misuse):
            conv.add("user", "x")
        conv2 = s.conversation()
    assert conv2.closed  # closed with its session


def test_chat_messages_and_pop(model):
    with model.session(temperature=0, **SESSION) as s, s.conversation() as conv:
        assert conv.messages == []
        with pytest.raises(ds8b.InvalidArgument):
            conv.pop()
        conv.add("system", "Be brief.")
        conv.add("user", "Hello, caf\u00e9 \u2603")
        assert conv.messages == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "Hello, caf\u00e9 \u2603"}]
        gen = conv.reply(max_tokens=8)
        gen.text()
        msgs = conv.messages
        assert len(msgs) == 3 == len(conv)
        assert msgs[2] == {"role": "assistant", "content": conv.last_reply}
        msgs.append({"role": "user", "content": "not added"})  # a copy
        assert len(conv) == 3
        reply = conv.last_reply
        # undo the exchange, then ask again: the same reply from the cached prefix
        assert conv.pop() == {"role": "assistant", "content": reply}
        assert conv.pop() == {"role": "user", "content": "Hello, caf\u00e9 \u2603"}
        assert conv.messages == [{"role": "system", "content": "Be brief."}]
        conv.add("user", "Hello, caf\u00e9 \u2603")
        list(conv.reply(max_tokens=8))
        assert conv.last_reply == reply
        assert conv.messages[-1]["content"] == reply
        conv.clear()
        assert conv.messages == []
    with pytest.raises(ds8b.Misuse):
        conv.messages
    with pytest.raises(ds8b.Misuse):
        conv.pop()


def test_callback_return_true_stops(session):
    got = []

    def cb(text, channel):
        got.append(text)
        return len(got) >= 3
    c = session.complete("The Python interpreter", cb, max_tokens=50, temperature=0)
    assert len(got) == 3
    assert c.finish_reason == "callback"
    assert c.text == "".join(got)


def test_keyboard_interrupt_in_callback(session):
    got = []

    def cb(text, channel):
        got.append(text)
        if len(got) == 2:
            raise KeyboardInterrupt
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        session.complete("The Python interpreter", cb, max_tokens=400, temperature=0)
    assert len(got) == 2
    assert time.monotonic() - t0 < 30
    # the session is still usable and consistent
    n = session.n_past
    assert 0 < n < 50
    assert "".join(session.generate(" and", max_tokens=3, temperature=0))
    assert session.n_past > n


def test_exception_in_callback_propagates(session):
    class Boom(Exception):
        pass

    def cb(text, channel):
        raise Boom("from the callback")
    with pytest.raises(Boom, match="from the callback"):
        session.complete("The Python interpreter", cb, max_tokens=20)
    with pytest.raises(TypeError):
        session.complete("x", callback=42)


def _long_session(model):
    s = model.session(n_ctx=2048, n_threads=2, stop_at_eos=0, temperature=0)
    return s


def test_cancel_from_other_thread_iterator(model):
    with _long_session(model) as s:
        gen = s.generate("The Python interpreter", max_tokens=1500)
        first = next(gen)
        assert first
        t = threading.Timer(0.05, s.cancel)
        t.start()
        t0 = time.monotonic()
        with pytest.raises(ds8b.Cancelled):
            for _ in gen:
                pass
        t.join()
        assert time.monotonic() - t0 < 30
        assert gen.n_tokens < 1500
        # usable afterwards
        s.reset()
        assert len(list(s.generate("Hi", max_tokens=2))) >= 1


def test_cancel_from_other_thread_sync(model):
    with _long_session(model) as s:
        started = threading.Event()

        def cb(text, channel):
            started.set()

        def canceller():
            started.wait(30)
            s.cancel()
        t = threading.Thread(target=canceller)
        t.start()
        with pytest.raises(ds8b.Cancelled):
            s.complete("The Python interpreter", cb, max_tokens=1500)
        t.join()
        assert s.n_past < 1500


def test_break_and_close_stop_generation(model):
    with _long_session(model) as s:
        for piece in s.generate("The Python interpreter", max_tokens=1500):
            break
        gc.collect()
        # a new call on the session waits for / stops the abandoned one
        s.reset()
        n0 = s.n_past
        assert n0 == 0
        gen = s.generate("The Python interpreter", max_tokens=1500)
        next(gen)
        gen.close()
        gen.close()
        assert gen.finish_reason in ("closed", "length", "eos")
        assert s.n_past < 1500
        assert list(gen) == []
        # abandoning a generation then starting another is fine too
        g1 = s.generate("A", max_tokens=1500)
        next(g1)
        g2 = s.generate("B", max_tokens=2)
        assert len("".join(g2)) > 0
        del g1


def test_context_full(model):
    with model.session(n_ctx=16, n_threads=2, stop_at_eos=0, temperature=0) as s:
        with pytest.raises(ds8b.ContextFull):
            s.complete("The Python interpreter", max_tokens=100)


def test_param_validation(model, session):
    with pytest.raises(ds8b.InvalidArgument):
        model.session(temperature=-1.0)
    with pytest.raises(ds8b.InvalidArgument):
        model.session(kv_type="q3")
    with model.session(kv_type="q8_0", ctx_policy="stop", **SESSION) as s:
        assert s.n_past == 0
    with pytest.raises(ds8b.InvalidArgument):
        session.complete("x", top_p=5.0)
    with pytest.raises(TypeError):
        session.set(n_ctx=10)
    session.set(temperature=0.0, max_tokens=2)
    assert session.complete("The Python interpreter").n_tokens == 2
    lo, hi = ds8b.param_bounds("top_p")
    assert lo == 0 and hi == 1


def test_state_save_load_fork(model):
    with model.session(temperature=0.9, seed=7, **SESSION) as s:
        s.eval(model.tokenize("The Python interpreter", add_special=True))
        state = s.save()
        assert isinstance(state, bytes) and len(state) > 100
        a = s.complete("", max_tokens=12, add_special=False).text
        s.load(state)
        b = s.complete("", max_tokens=12, add_special=False).text
        assert a == b
        s.load(state)
        with s.fork() as f:
            assert f.n_past == s.n_past
            c = f.complete("", max_tokens=12, add_special=False).text
        assert c == a
        with pytest.raises(ds8b.Error):
            s.load(state[:50])
        with pytest.raises(ds8b.Error):
            s.load(b"\0" * 64)
        with pytest.raises(TypeError):
            s.load("text")


def test_session_finish_reason_and_n_generated(model, ref):
    p = ref["prompts"][0]
    word = "Launcher"
    with model.session(temperature=0, **SESSION) as s:
        assert s.finish_reason is None and s.n_generated == 0
        c = s.complete(p["text"], max_tokens=5)
        assert c.finish_reason == s.finish_reason == "length" and s.n_generated == 5
        s.reset()
        # a per-call stop string is matched by the binding: the library saw a callback stop
        c = s.complete(p["text"], max_tokens=len(p["greedy"]), stop=word)
        assert c.finish_reason == "stop" and s.finish_reason == "cancelled"
    # the session's own stop strings are the library's
    with model.session(temperature=0, stop=[word], **SESSION) as s:
        c = s.complete(p["text"], max_tokens=len(p["greedy"]))
        assert c.finish_reason == s.finish_reason == "stop"
    with model.session(n_ctx=16, n_threads=2, stop_at_eos=0, temperature=0,
                       ctx_policy="stop") as s:
        c = s.complete("The Python interpreter", max_tokens=100)
        assert c.finish_reason == s.finish_reason == "context"
        assert s.n_past == 16


# ---------------------------------------------------------------------------
# Batched generation
# ---------------------------------------------------------------------------
BATCH_PROMPTS = ["The blacksmith said", "Once upon a time", "The Python interpreter"]
BATCH_SEEDS = [11, 22, 33]
SAMPLING = dict(temperature=0.9, top_k=0, top_p=1.0, min_p=0.0)


def _sessions(model, n=3, **params):
    opts = dict(SESSION)
    opts.update(params)
    return [model.session(**opts) for _ in range(n)]


def _close_all(sessions):
    for s in sessions:
        s.close()


def test_batch_matches_alone(model):
    # the third character gets its seed and temperature per call
    per_call = [{}, {}, dict(seed=44, temperature=0.7)]
    alone = []
    for p, seed, extra in zip(BATCH_PROMPTS, BATCH_SEEDS, per_call):
        with model.session(seed=seed, **SAMPLING, **SESSION) as s:
            c = s.complete(p, max_tokens=16, **extra)
            alone.append((c, s.n_past, s.logits()))
    assert len({c.text for c, _, _ in alone}) == 3
    sessions = [model.session(seed=seed, **SAMPLING, **SESSION) for seed in BATCH_SEEDS]
    pieces = [[] for _ in sessions]
    try:
        with model.batch(n_threads=2) as batch:
            members = []
            for i, (s, p, extra) in enumerate(zip(sessions, BATCH_PROMPTS, per_call)):
                def cb(text, channel, i=i):
                    pieces[i].append((channel, text))
                members.append(batch.add(s, p, cb, max_tokens=16, **extra))
                assert s.batch is batch and s in batch and s.finish_reason is None
            assert len(batch) == 3 and batch.members == members
            assert batch.step() == 3
            assert [m.n_tokens for m in members] == [1, 1, 1]
            assert not any(m.done for m in members)
            with pytest.raises(ds8b.Misuse):
                members[0].result()
            assert batch.run() == members
            assert len(batch) == 0 and batch.members == []
            assert batch.step() == 0
        for (c, n_past, logits), m, s, got in zip(alone, members, sessions, pieces):
            assert c.n_tokens == 16 and c.finish_reason == "length"
            assert m.result() == c
            assert m.text == c.text and m.reasoning == ""
            assert "".join(t for _, t in got) == c.text
            assert all(ch == ds8b.Channel.ANSWER for ch, _ in got)
            assert s.n_past == n_past and s.n_generated == 16 and s.finish_reason == "length"
            assert s.logits() == logits  # bit for bit
            assert m.batch is None and s.batch is None
    finally:
        _close_all(sessions)


def test_batch_member_cancelled(model):
    sessions = _sessions(model, stop_at_eos=0, **SAMPLING)
    try:
        with model.batch(n_threads=2) as batch:
            members = [batch.add(s, p, max_tokens=24, seed=i)
                       for i, (s, p) in enumerate(zip(sessions, BATCH_PROMPTS))]
            for _ in range(3):
                assert batch.step() == 3
            sessions[1].cancel()
            assert batch.step() == 2
            assert members[1].finish_reason == "cancelled" and members[1].n_tokens == 3
            assert sessions[1].finish_reason == "cancelled"
            assert sessions[1] not in batch
            batch.run()
        assert [m.finish_reason for m in members] == ["length", "cancelled", "length"]
        assert members[0].n_tokens == members[2].n_tokens == 24
        assert members[1].result().finish_reason == "cancelled"
        # the cancel request was consumed: the session generates normally again
        assert sessions[1].complete(" and", max_tokens=3).n_tokens == 3
    finally:
        _close_all(sessions)


def test_batch_cancel_from_other_thread(model):
    sessions = _sessions(model, stop_at_eos=0, temperature=0)
    talking = threading.Event()

    def first(text, channel):
        if members and members[0].n_tokens >= 2:
            talking.set()
    members = []
    try:
        with model.batch(n_threads=2) as batch:
            members.append(batch.add(sessions[0], BATCH_PROMPTS[0], first, max_tokens=400))
            members += [batch.add(s, p, max_tokens=400)
                        for s, p in zip(sessions[1:], BATCH_PROMPTS[1:])]
            out = []
            worker = threading.Thread(target=lambda: out.append(batch.run()))
            worker.start()
            assert talking.wait(60)
            sessions[0].cancel()  # from the main thread while the worker steps
            worker.join(120)
            assert not worker.is_alive() and out == [members]
        assert members[0].finish_reason == "cancelled" and members[0].n_tokens < 400
        assert [m.finish_reason for m in members[1:]] == ["length", "length"]
    finally:
        _close_all(sessions)


def test_batch_callback_raises(model):
    class Boom(Exception):
        pass
    calls = []

    def bad(text, channel):
        calls.append(text)
        if len(calls) == 2:
            raise Boom("from a batch callback")
    sessions = _sessions(model, 4, temperature=0)
    try:
        with model.batch(n_threads=2) as batch:
            fine = batch.add(sessions[0], BATCH_PROMPTS[0], max_tokens=12)
            raiser = batch.add(sessions[1], BATCH_PROMPTS[1], bad, max_tokens=12)
            stopper = batch.add(sessions[2], BATCH_PROMPTS[2], lambda t, ch: True, max_tokens=12)
            with pytest.raises(Boom, match="from a batch callback"):
                batch.run()
            assert len(calls) == 2
            assert raiser.finish_reason == "error" and isinstance(raiser.error, Boom)
            assert sessions[1].finish_reason == "cancelled" and sessions[1] not in batch
            with pytest.raises(Boom):
                raiser.result()
            assert stopper.finish_reason == "callback" and stopper.n_tokens == 1
            assert stopper.result().text == stopper.text and stopper.text
            # Ctrl-C in a callback comes out of step() too
            def interrupt(text, channel):
                raise KeyboardInterrupt
            batch.add(sessions[3], "Hello", interrupt, max_tokens=12)
            with pytest.raises(KeyboardInterrupt):
                batch.run()
            # the others carried on, untouched
            assert not fine.done
            batch.run()
        assert fine.finish_reason == "length" and fine.n_tokens == 12
        with model.session(temperature=0, **SESSION) as s:
            assert s.complete(BATCH_PROMPTS[0], max_tokens=12).text == fine.text
        # the sessions whose callbacks raised are usable
        assert sessions[1].complete(" and", max_tokens=3).n_tokens == 3
        assert sessions[3].complete(" and", max_tokens=3).n_tokens == 3
    finally:
        _close_all(sessions)


def test_batch_stop_strings_reasoning_errors(model, ref):
    p = ref["prompts"][0]
    word = "Launcher"
    chat = [q for q in ref["prompts"] if q["name"] == "chat"][0]
    with model.session(temperature=0, **SESSION) as s:
        think = s.complete(chat["text"], max_tokens=len(chat["greedy"]), reasoning=True)
    assert think.reasoning
    a, b = _sessions(model, 2, temperature=0)
    small = model.session(n_ctx=16, n_threads=2, stop_at_eos=0, temperature=0)
    stopping = model.session(n_ctx=16, n_threads=2, stop_at_eos=0, temperature=0,
                             ctx_policy="stop")
    try:
        with model.batch(n_threads=2) as batch:
            ma = batch.add(a, p["text"], max_tokens=len(p["greedy"]), stop=[word, "zzzz"])
            mb = batch.add(b, chat["text"], max_tokens=len(chat["greedy"]), reasoning=True)
            full = batch.add(small, "The Python interpreter", max_tokens=100)
            ctx = batch.add(stopping, "The Python interpreter", max_tokens=100)
            batch.run()
        assert ma.text == p["greedy_text"][:p["greedy_text"].index(word)]
        assert ma.finish_reason == "stop"
        assert (mb.text, mb.reasoning) == (think.text, think.reasoning)
        assert mb.result() == think
        assert full.finish_reason == "error" and isinstance(full.error, ds8b.Error)
        assert "context" in str(full.error) and small.finish_reason == "error"
        with pytest.raises(ds8b.Error):
            full.result()
        assert ctx.finish_reason == "context" and stopping.n_past == 16
    finally:
        _close_all([a, b, small, stopping])


def test_batch_lifetimes_and_misuse(model):
    s1, s2, s3 = _sessions(model, stop_at_eos=0, temperature=0)
    try:
        batch = model.batch(threads=2)
        m1, m2, m3 = [batch.add(s, p, max_tokens=50) for s, p in zip((s1, s2, s3), BATCH_PROMPTS)]
        assert batch.step() == 3
        # a member refuses calls that change it, with the library's message
        with pytest.raises(ds8b.Misuse, match="batch"):
            s1.complete("x")
        with pytest.raises(ds8b.Misuse, match="batch"):
            s1.eval([8184])
        with pytest.raises(ds8b.Misuse):
            batch.add(s1, "again")
        # a session freed while a member leaves the batch
        s2.close()
        assert m2.finish_reason == "closed" and m2.n_tokens == 1
        assert len(batch) == 2 and batch.step() == 2
        assert batch.remove(s3) is m3
        assert m3.finish_reason == "cancelled" and s3.finish_reason == "cancelled"
        with pytest.raises(ds8b.InvalidArgument):
            batch.remove(s3)
        # a batch freed with a member still generating
        batch.close()
        batch.close()
        assert batch.closed and m1.finish_reason == "closed" and m1.n_tokens == 2
        assert s1.finish_reason == "cancelled" and s1.batch is None
        with pytest.raises(ds8b.Misuse):
            batch.step()
        with pytest.raises(ds8b.Misuse):
            len(batch)
        with pytest.raises(ds8b.Misuse):
            batch.add(s1, "x")
        assert s1.complete(" and", max_tokens=2).n_tokens == 2
        # dropping a batch with members frees it
        b2 = model.batch(n_threads=1)
        m4 = b2.add(s1, " then", max_tokens=50)
        b2.step()
        del b2
        gc.collect()
        assert m4.finish_reason == "closed" and s1.batch is None
        # batch operations from a stream callback are refused
        with model.batch(n_threads=1) as b3:
            m5 = b3.add(s1, " so", lambda t, ch: b3.remove(s1), max_tokens=5)
            with pytest.raises(ds8b.Misuse, match="callback"):
                b3.step()
            assert m5.finish_reason == "error" and len(b3) == 0
        with pytest.raises(TypeError):
            model.batch(n_threads="two")
        with pytest.raises(TypeError):
            model.batch(1, threads=2)
        with pytest.raises(TypeError):
            ds8b.Batch("model")
        with model.batch(n_threads=1) as b4:
            with pytest.raises(TypeError):
                b4.add("session", "x")
            with pytest.raises(TypeError):
                b4.add(s1, "x", callback=5)
    finally:
        _close_all([s1, s2, s3])


def test_batch_other_model_and_model_close():
    with ds8b.Model(MODEL_DIR) as m1, ds8b.Model(MODEL_DIR) as m2:
        with m2.session(**SESSION) as other, m1.batch(n_threads=1) as b:
            with pytest.raises(ds8b.Misuse, match="another model"):
                b.add(other, "x")
            assert len(b) == 0
        # closing a model closes its batches and sessions first
        s = m1.session(**SESSION)
        b = m1.batch(n_threads=1)
        m = b.add(s, "x", max_tokens=50)
        b.step()
        m1.close()
        assert m1.closed and b.closed and s.closed and m.done
        assert m.finish_reason == "closed"


# ---------------------------------------------------------------------------
# Memory accounting and limits
# ---------------------------------------------------------------------------
def test_memory_queries(model):
    with model.session(**SESSION) as s:
        s.eval([8184, 521])
        total = ds8b.memory_used()
        assert total > 0
        assert ds8b.memory_used(ds8b.Mem.KV) > 0
        assert ds8b.memory_used(ds8b.MEM_TOKENIZER) > 0
        parts = sum(ds8b.memory_used(c) for c in ds8b.Mem if c != ds8b.Mem.MAPPED)
        assert parts == total
        assert ds8b.memory_used(ds8b.Mem.WEIGHTS) + ds8b.memory_used(ds8b.Mem.MAPPED) > 1000000
        assert ds8b.memory_highwater() >= total
        assert ds8b.memory_highwater(ds8b.Mem.KV) >= ds8b.memory_used(ds8b.Mem.KV)
        kv = ds8b.memory_used(ds8b.Mem.KV)
    assert ds8b.memory_used(ds8b.Mem.KV) < kv
    ds8b.memory_highwater(reset=True)
    assert ds8b.memory_highwater() <= ds8b.memory_used() + 1
    with pytest.raises(ds8b.InvalidArgument):
        ds8b.memory_used(99)
    assert ds8b.memory_reserved() >= ds8b.memory_used()
    cur, peak = model.memory()
    assert 0 < cur <= peak
    with model.session(**SESSION) as s:
        kv, kv_peak = s.memory(ds8b.Mem.KV)
        assert kv > 0 and kv_peak >= kv
    est = ds8b.estimate(MODEL_DIR, n_ctx=512)
    assert set(est) == set(ds8b.Mem) and est[ds8b.Mem.KV] > 0


def test_heap_limits(model):
    old_soft = ds8b.soft_heap_limit()
    old_hard = ds8b.hard_heap_limit()
    assert old_soft >= 0 and old_hard >= 0
    try:
        assert ds8b.soft_heap_limit(1 << 40) == old_soft
        assert ds8b.soft_heap_limit() == 1 << 40
        ds8b.hard_heap_limit(ds8b.memory_used() + 4096)
        with pytest.raises(ds8b.OutOfMemory):
            model.session(n_ctx=4096, n_threads=2, kv_type="f32")
    finally:
        ds8b.soft_heap_limit(old_soft)
        ds8b.hard_heap_limit(old_hard)
    with pytest.raises(ds8b.InvalidArgument):
        ds8b.hard_heap_limit(-5)
    with model.session(**SESSION) as s:
        assert s.n_past == 0


# ---------------------------------------------------------------------------
# Lifetimes
# ---------------------------------------------------------------------------
def test_close_twice_and_use_after_close():
    m = ds8b.Model(MODEL_DIR)
    s = m.session(**SESSION)
    s2 = m.session(**SESSION)
    s.close()
    s.close()
    with pytest.raises(ds8b.Misuse):
        s.eval([1, 2])
    with pytest.raises(ds8b.Misuse):
        s.generate("x")
    assert s.closed and "closed" in repr(s)
    tok = m.tokenizer
    m.close()  # closes s2 first
    m.close()
    assert m.closed and s2.closed
    with pytest.raises(ds8b.Misuse):
        m.tokenize("x")
    with pytest.raises(ds8b.Misuse):
        tok.tokenize("x")
    with pytest.raises(ds8b.Misuse):
        m.info
    with pytest.raises(ds8b.Misuse):
        m.session()
    with pytest.raises(ds8b.Misuse):
        s2.n_past
    s.cancel()  # harmless on a closed session


def test_context_managers_and_gc():
    before = ds8b.memory_used(ds8b.Mem.KV)
    with ds8b.Model(MODEL_DIR) as m:
        with m.session(**SESSION) as s:
            s.eval([8184])
        assert s.closed
        s3 = m.session(**SESSION)
        del s3
        gc.collect()
    assert m.closed
    assert ds8b.memory_used(ds8b.Mem.KV) == before


def test_model_close_while_generating():
    m = ds8b.Model(MODEL_DIR)
    s = m.session(n_ctx=2048, n_threads=2, stop_at_eos=0)
    gen = s.generate("The Python interpreter", max_tokens=1500)
    next(gen)
    m.close()
    assert s.closed
    assert gen.n_tokens < 1500


# ---------------------------------------------------------------------------
# Quantization
# ---------------------------------------------------------------------------
def test_quantize_wrapper(tmp_path):
    out = tmp_path / "demo-q8.gguf"
    calls = []
    try:
        ds8b.quantize(MODEL_DIR, str(out), "q8_0", progress=lambda f, s: calls.append(f))
    except ds8b.Error as e:
        assert e.code < 0 and str(e)
        assert not out.exists()
    else:
        assert out.exists() and out.stat().st_size > 0
        with ds8b.Model(str(out)) as q:
            assert q.info["vocab"] == 8192
    with pytest.raises(ds8b.Error):
        ds8b.quantize(MODEL_DIR, str(tmp_path / "x.gguf"), "no-such-scheme")
    with pytest.raises(TypeError):
        ds8b.quantize(MODEL_DIR, str(tmp_path / "x.gguf"), 8)


def test_imatrix(tmp_path):
    """Importance matrices: computed over text, saved in llama.cpp's GGUF
    format and read back, used by quantize(); a corrupt file raises."""
    text = open(os.path.join(ROOT, "docs", "quantization.md"), encoding="utf-8").read()
    with ds8b.Model(MODEL_DIR) as m:
        stages = []
        with ds8b.Imatrix.compute(m, text, threads=1, progress=lambda f, s: stages.append(s)) as im:
            assert im.entries == 7 * m.info["layers"] + 1
            assert im.chunks >= 1 and im.chunk_size == 512
            assert stages and stages[-1] == "calibrating"
            p = tmp_path / "im.gguf"
            im.save(str(p))
            with ds8b.Imatrix.load(str(p)) as back:
                assert back.entries == im.entries
            out_a, out_b = tmp_path / "a.gguf", tmp_path / "b.gguf"
            ds8b.quantize(MODEL_DIR, str(out_a), "q4_0")
            ds8b.quantize(MODEL_DIR, str(out_b), "q4_0", imatrix=im)
            assert out_a.read_bytes() != out_b.read_bytes()
            with m.quantize("q2_k", imatrix=im) as q:
                assert q.info["vocab"] == 8192
        with pytest.raises(ds8b.Misuse):
            im.save(str(tmp_path / "closed.gguf"))
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\x02\x00\x00\x00\xff\xff\xff\x7f")
    with pytest.raises(ds8b.Error) as ei:
        ds8b.Imatrix.load(str(bad))
    assert "name length" in str(ei.value)
    with pytest.raises(TypeError):
        ds8b.quantize(MODEL_DIR, str(tmp_path / "x.gguf"), "q4_0", imatrix="not an imatrix")
    with pytest.raises(TypeError):
        ds8b.Imatrix()


def test_quantize_progress_exception(tmp_path):
    class Boom(Exception):
        pass

    def progress(f, stage):
        raise Boom()
    try:
        ds8b.quantize(MODEL_DIR, str(tmp_path / "y.gguf"), "q8_0", progress=progress)
    except Boom:
        # cancelled from the callback: nothing half-written is left behind
        assert not (tmp_path / "y.gguf").exists()
    except ds8b.Error as e:
        assert e.code < 0  # not implemented in this build, or failed before any progress


# ---------------------------------------------------------------------------
# A real Ctrl-C (SIGINT) in another interpreter
# ---------------------------------------------------------------------------
_SIGINT_SCRIPT = r"""
import sys, ds8b
m = ds8b.Model(sys.argv[1])
s = m.session(n_ctx=4096, n_threads=2, stop_at_eos=0)
first = []
def cb(text, channel):
    if not first:
        first.append(1)
        print("generating", flush=True)
try:
    if sys.argv[2] == "sync":
        s.complete("The Python interpreter", cb, max_tokens=100000)
    else:
        for piece in s.generate("The Python interpreter", max_tokens=100000):
            cb(piece, 0)
except KeyboardInterrupt:
    print("interrupted", s.n_past, flush=True)
    s.close()
    m.close()
    sys.exit(0)
print("finished", flush=True)
sys.exit(1)
"""


@pytest.mark.parametrize("mode", ["sync", "iterator"])
def test_sigint_interrupts_generation(tmp_path, mode):
    import signal
    import subprocess
    import sys
    script = tmp_path / "sigint.py"
    script.write_text(_SIGINT_SCRIPT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(ds8b.__file__)))
    p = subprocess.Popen([sys.executable, str(script), MODEL_DIR, mode], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "generating"
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    words = out.split()
    assert words[0] == "interrupted" and 0 < int(words[1]) < 4096, out
