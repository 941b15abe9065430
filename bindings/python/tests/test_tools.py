"""Tool calls in chat through the ds8b Python binding: renders with tools
against transformers' reference renders, Chat(tools=...), parsed tool calls,
tool results and the conversation kept for the next render.
Environment as test_ds8b.py (DS8B_LIBRARY, DS8B_ROOT, DS8B_SHARED)."""
import gzip
import json
import os

import pytest

import ds8b

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("DS8B_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SHARED = os.environ.get("DS8B_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
MODEL_DIR = os.path.join(ROOT, "models", "demo-llama")
CASES = os.path.join(SHARED, "testdata", "chat-template-tools-cases.jsonl.gz")

BEGIN = "<\uff5ctool\u2581calls\u2581begin\uff5c>"
END = "<\uff5ctool\u2581calls\u2581end\uff5c>"
CALL = "<\uff5ctool\u2581call\u2581begin\uff5c>"
CALL_END = "<\uff5ctool\u2581call\u2581end\uff5c>"
SEP = "<\uff5ctool\u2581sep\uff5c>"


@pytest.fixture(scope="module")
def model():
    m = ds8b.Model(MODEL_DIR)
    yield m
    m.close()


@pytest.fixture(scope="module")
def cases():
    if not os.path.exists(CASES):
        pytest.skip("reference data not found: %s" % CASES)
    with gzip.open(CASES, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_render_tools_matches_reference(model, cases):
    """demo-llama carries the demo tokenizer's template: every case, both
    generation-prompt settings, exact or TemplateError where transformers raises."""
    exact = 0
    for c in cases:
        for agp in (True, False):
            want = c["render"]["demo|add_generation_prompt=%s" % ("true" if agp else "false")]
            if isinstance(want, dict):
                with pytest.raises(ds8b.TemplateError):
                    model.render_chat(c["messages"], agp, tools=c["tools"], **c["kwargs"])
            else:
                assert model.render_chat(c["messages"], agp, tools=c["tools"], **c["kwargs"]) == want
            exact += 1
    assert exact == 2 * len(cases) == 80


def test_render_tools_argument_checks(model):
    with pytest.raises(TypeError):
        model.render_chat([{"role": "user", "content": "x"}], tools={"not": "a list"})
    with pytest.raises(TypeError):
        model.render_chat([{"content": "x"}], tools=[])
    with pytest.raises(TypeError):
        model.render_chat([{"role": "user", "content": "x"}], tools=[], x=object())
    # enable_thinking and the like reach the template; without tools or variables
    # the render is the plain one
    plain = model.render_chat([{"role": "user", "content": "x"}])
    assert model.render_chat([{"role": "user", "content": "x"}], tools=None, enable_thinking=False) == plain


TOOLS = [{"type": "function", "function": {"name": "give_item", "description": "Hand an item over.",
          "parameters": {"type": "object", "properties": {"item": {"type": "string"}}}}}]


def test_chat_tool_loop(model, cases):
    """Case 0 rebuilt through a Chat: the call parsed from DeepSeek-format
    output, the tool result added, the conversation renders as the reference."""
    c = cases[0]
    with model.session(n_ctx=512, n_threads=2) as s:
        chat = ds8b.Chat(s, [c["messages"][0]], tools=c["tools"], variables=c["kwargs"])
        seen = []
        out = (BEGIN + CALL + "function" + SEP + "give_item\n```json\n" + '{"item": "sword", "count": 1}'
               + "\n```" + CALL_END + END)
        calls = chat.add_output(out, lambda t, ch: seen.append((ch, t)))
        assert calls == [ds8b.ToolCall("give_item", {"item": "sword", "count": 1}, '{"item": "sword", "count": 1}')]
        assert chat.tool_calls == calls
        assert all(ch == ds8b.Channel.TOOL_CALL for ch, _ in seen) and "".join(t for _, t in seen) == out
        assert chat.last_reply == ""
        last = chat.messages[-1]
        assert last["role"] == "assistant" and last["content"] is None
        assert last["tool_calls"][0]["function"]["name"] == "give_item"
        tool = c["messages"][2]
        chat.add_tool_result(tool["content"], name=tool["name"])
        for m in c["messages"][3:]:
            chat.add_message(m)
        for agp in (True, False):
            want = c["render"]["demo|add_generation_prompt=%s" % ("true" if agp else "false")]
            assert model.render_chat(chat.messages, agp, tools=c["tools"], **c["kwargs"]) == want
        chat.close()


def test_chat_malformed_call_and_reply(model):
    with model.session(n_ctx=512, n_threads=2) as s:
        chat = ds8b.Chat(s, tools=TOOLS)
        chat.add("user", "A sword, please.")
        bad = "Hm." + BEGIN + CALL + "function" + SEP + "give_item\n```json\n{\"item\": \n```" + CALL_END + END
        assert chat.add_output(bad) == []
        assert chat.last_reply.startswith("Hm." + CALL)
        chat.add_tool_result({"ok": False}, name="give_item")
        assert chat.messages[-1] == {"role": "tool", "name": "give_item", "content": '{"ok": false}'}
        # a real reply with tools set: every piece on a known channel
        chat.add("user", "Well?")
        r = chat.say("And now?", max_tokens=8, temperature=0)
        assert r.n_tokens > 0
        assert isinstance(chat.tool_calls, list)
        with pytest.raises(TypeError):
            chat.set_tools("nope")
        with pytest.raises(TypeError):
            chat.add_message({"content": "no role"})
        with pytest.raises(ds8b.InvalidArgument):
            chat.set_variables({"tools": []})
        chat.set_tools(None)
        chat.set_variables(None)
        chat.close()
    assert ds8b.CHANNEL_TOOL_CALL == ds8b.Channel.TOOL_CALL == 2
