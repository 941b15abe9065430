#!/usr/bin/env python3
"""spec_measure.py -- acceptance and end-to-end speed of speculative decoding on
the demo model, per task and drafter (the tables of docs/performance.md,
"Speculative decoding").

    python3 docs/spec_measure.py [--model models/demo-llama] [-n 128] [-r 3] [--threads 2]

Tasks, on held-out text the demo models were not trained on (the
`heldout_text.en` passages of ../shared/testdata/reference/demo-llama.json) and
on code written for this script:
  complete  the first half of a paragraph is the prompt; the model continues.
            host draft: the paragraph's true second half.
  rewrite   the paragraph, then "Revised:" and the paragraph again up to a word
            that was changed; the model continues. host draft: the rest of the
            original paragraph (what an editor has after the cursor).
  code      the first 60% of a Python module; host draft: the rest.
  free      a short prompt, sampled at temperature 0.8: drafts mostly fail.
  again     the complete prompts with the model's own greedy continuation as
            the host draft: the upper bound (everything accepted).
Drafters: lookup (spec on and auto), host (on), draft model: demo-qwen3 and a
q4_0 copy of the model (on). Each row: `ds8b bench --spec-prompt`, greedy
unless noted, plain and speculative runs alternating, medians of -r runs.
"""
import argparse, json, os, re, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("DS8B_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))

CODE = '''import os
import sys


class Stack:
    """A last-in, first-out stack."""

    def __init__(self):
        self.items = []

    def push(self, item):
        """Push an item onto the stack."""
        self.items.append(item)

    def pop(self):
        """Remove and return the top item."""
        if not self.items:
            raise IndexError("pop from an empty stack")
        return self.items.pop()

    def peek(self):
        """Return the top item without removing it."""
        if not self.items:
            raise IndexError("peek at an empty stack")
        return self.items[-1]

    def __len__(self):
        return len(self.items)


class Queue:
    """A first-in, first-out queue."""

    def __init__(self):
        self.items = []

    def push(self, item):
        """Push an item onto the queue."""
        self.items.append(item)

    def pop(self):
        """Remove and return the first item."""
        if not self.items:
            raise IndexError("pop from an empty queue")
        return self.items.pop(0)

    def peek(self):
        """Return the first item without removing it."""
        if not self.items:
            raise IndexError("peek at an empty queue")
        return self.items[0]

    def __len__(self):
        return len(self.items)
'''


def cut(text, n):
    """text[:n] ending at a line break (or a space)."""
    i = text.rfind("\n", 0, n)
    if i < n // 2:
        i = text.rfind(" ", 0, n)
    return text[: i + 1] if i > 0 else text[:n]


def tasks():
    ref = json.load(open(os.path.join(SHARED, "testdata/reference/demo-llama.json")))
    out = []
    for i, t in enumerate(ref["heldout_text"]["en"]):
        # start at a line
        t = t[t.find("\n") + 1 :]
        para = cut(t, 1400)
        half = cut(para, len(para) // 2)
        out.append(("complete", i, half, para[len(half) :], 0.0))
        # one word changed a third of the way in
        m = list(re.finditer(r"[A-Za-z]{5,}", para))
        w = m[len(m) // 3]
        changed = para[: w.start()] + "modified" + para[w.end() :]
        prompt = para + "\nRevised:\n" + changed[: w.start() + len("modified")]
        out.append(("rewrite", i, prompt, para[w.end() :], 0.0))
    split = cut(CODE, int(len(CODE) * 0.6))
    out.append(("code", 0, split, CODE[len(split) :], 0.0))
    out.append(("free", 0, "The", None, 0.8))
    return out


def bench(ds8b, model, prompt, host, dm, mode, n, r, threads, temp, tmp):
    pf = os.path.join(tmp, "prompt.txt")
    open(pf, "w").write(prompt)
    cmd = [ds8b, "bench", "-m", model, "--spec-prompt", pf, "--spec", mode, "-n", str(n), "-r", str(r),
           "--threads", str(threads), "--temp", str(temp), "--seed", "7"]
    if host == "SELF":
        cmd += ["--draft-self"]
    elif host is not None:
        hf = os.path.join(tmp, "host.txt")
        open(hf, "w").write(host)
        cmd += ["--draft-file", hf]
    if dm:
        cmd += ["--draft-model", dm]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), res.stderr))
    o = res.stdout
    g = lambda rx: float(re.search(rx, o).group(1))
    return dict(plain=g(r"plain ([\d.]+) tokens/s"), spec=g(r"speculative ([\d.]+) tokens/s"),
                speedup=g(r"speedup ([\d.]+)x"), drafted=g(r"drafted (\d+)"), accepted=g(r"accepted (\d+)"),
                acc=g(r"acceptance ([\d.]+)%"), tpp=g(r"tokens per pass ([\d.]+)"),
                cpu=g(r"ratio ([\d.]+)x"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models/demo-llama"))
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ds8b", default=os.path.join(ROOT, "build/ds8b"))
    ap.add_argument("--only", default="")
    ap.add_argument("--no-models", action="store_true", help="skip the draft-model rows")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="spec_measure")
    q4 = os.path.join(tmp, "q4_0.gguf")
    subprocess.run([a.ds8b, "quantize", a.model, q4, "q4_0"], check=True, capture_output=True)
    drafters = [("lookup", "on", False, None), ("lookup", "auto", False, None), ("host", "on", True, None),
                ("model: demo-qwen3", "on", False, os.path.join(SHARED, "models/demo-qwen3")),
                ("model: own q4_0", "on", False, q4)]
    if a.no_models:
        drafters = [d for d in drafters if not d[3]]
    rows = {}
    todo = tasks()
    # upper bound: the host draft is the model's own greedy continuation (an
    # editor asking again for a completion it has shown): --draft-self
    for name, i, prompt, host, temp in list(todo):
        if name == "complete":
            todo.append(("again", i, prompt, "SELF", 0.0))
    for name, i, prompt, host, temp in todo:
        if a.only and name not in a.only.split(","):
            continue
        for dname, mode, use_host, dm in drafters:
            if name == "free" and (use_host or dm):
                continue
            if name == "again" and not use_host:
                continue
            r = bench(a.ds8b, a.model, prompt, host if use_host else None, dm, mode, a.n, a.r, a.threads, temp, tmp)
            rows.setdefault((name, dname, mode), []).append(r)
            print("%-8s %d %-18s %-4s acc %5.1f%% tpp %.2f plain %.0f spec %.0f speedup %.2f cpu %.2f" %
                  (name, i, dname, mode, r["acc"], r["tpp"], r["plain"], r["spec"], r["speedup"], r["cpu"]), flush=True)
    print("\n| task | drafter | mode | drafted | accepted | acceptance | tokens/pass | plain tok/s | spec tok/s | speedup (wall) | speedup (CPU time) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, dname, mode), rs in rows.items():
        d = sum(x["drafted"] for x in rs)
        acc = sum(x["accepted"] for x in rs)
        sp = sorted(x["speedup"] for x in rs)
        med = sp[len(sp) // 2]
        cp = sorted(x["cpu"] for x in rs)[len(rs) // 2]
        print("| %s | %s | %s | %d | %d | %.0f%% | %.2f | %.0f | %.0f | %.2fx | %.2fx%s |" %
              (name, dname, mode, d, acc, 100.0 * acc / d if d else 0, sum(x["tpp"] for x in rs) / len(rs),
               sum(x["plain"] for x in rs) / len(rs), sum(x["spec"] for x in rs) / len(rs), med, cp,
               "" if len(rs) == 1 else " (median of %d texts)" % len(rs)))


if __name__ == "__main__":
    main()
