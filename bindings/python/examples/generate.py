#!/usr/bin/env python3
"""Streams a completion from a prompt.

    python3 bindings/python/examples/generate.py -m models/demo-llama \
        -p "The Python interpreter" -n 64 --temp 0

Ctrl-C stops generation cleanly (the session is cancelled and the program
prints how many tokens it got).
"""

import argparse
import os
import sys
import time

try:
    import ds8b
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import ds8b


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", required=True, help="checkpoint directory or GGUF file")
    ap.add_argument("-p", "--prompt", default="The Python interpreter")
    ap.add_argument("-n", "--max-tokens", type=int, default=128)
    ap.add_argument("--temp", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("-t", "--threads", type=int, default=0)
    args = ap.parse_args()

    try:
        model = ds8b.Model(args.model)
    except ds8b.Error as e:
        sys.exit("cannot load %s: %s" % (args.model, e))
    with model, model.session(n_ctx=args.ctx, n_threads=args.threads) as session:
        print("%s (libds8b %s)" % (model.desc, ds8b.version()), file=sys.stderr)
        t0 = time.monotonic()
        gen = session.generate(args.prompt, args.max_tokens, temperature=args.temp,
                               top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                               stop=args.stop)
        sys.stdout.write(args.prompt)
        try:
            for piece in gen:
                sys.stdout.write(piece)
                sys.stdout.flush()
        except KeyboardInterrupt:
            gen.close()
            print("\n[interrupted]", file=sys.stderr)
        dt = time.monotonic() - t0
        print("\n[%d tokens, %.1f tokens/s, %s]" % (gen.n_tokens, gen.n_tokens / max(dt, 1e-9),
                                                   gen.finish_reason or "interrupted"),
              file=sys.stderr)


if __name__ == "__main__":
    main()
