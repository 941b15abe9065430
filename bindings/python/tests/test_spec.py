"""Speculative decoding through the ds8b Python binding: spec= as a session
parameter (by name), set_draft / set_draft_model / spec_stats, and output
equal to plain decoding. Environment as test_ds8b.py."""
import os

import pytest

import ds8b

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("DS8B_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SHARED = os.environ.get("DS8B_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
MODEL_DIR = os.path.join(ROOT, "models", "demo-llama")
PROMPT = ("The list type is a mutable sequence. The list type supports indexing. "
          "The tuple type is an immutable sequence. The tuple type")


@pytest.fixture(scope="module")
def model():
    m = ds8b.Model(MODEL_DIR)
    yield m
    m.close()


def run(model, spec, draft=None, draft_model=None, **kw):
    with model.session(n_threads=1, temperature=kw.pop("temperature", 0.0), max_tokens=40, spec=spec, **kw) as s:
        if draft is not None:
            s.set_draft(draft)
        if draft_model is not None:
            s.set_draft_model(draft_model)
        text = "".join(s.generate(PROMPT))
        return text, s.spec_stats()


def test_spec_same_text_greedy_and_sampled(model):
    plain, st = run(model, "off")
    assert st == (0, 0, 0)
    on, st = run(model, "on")
    assert on == plain and st[0] > 0 and st[2] > 0
    hosted, st = run(model, "on", draft=plain)
    assert hosted == plain and st[1] > 0
    wrong, _ = run(model, "on", draft="zebra " * 20)
    assert wrong == plain
    for seed in (1, 2, 3):
        a, _ = run(model, "off", temperature=0.8, seed=seed)
        b, _ = run(model, "on", temperature=0.8, seed=seed, draft=a)
        assert a == b


def test_spec_param_and_draft_model(model):
    with pytest.raises(ds8b.InvalidArgument):
        model.session(spec="sometimes")
    with model.session(spec=2) as s:
        s.set(spec="off", spec_max_draft=4)
        s.set_draft(None)
        with pytest.raises(TypeError):
            s.set_draft_model("not a model")
    q = model.quantize("q4_0")
    try:
        plain, _ = run(model, "off")
        text, st = run(model, "on", draft_model=q)
        assert text == plain and st[2] > 0
    finally:
        q.close()
