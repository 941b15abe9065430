#!/usr/bin/env python3
"""Interactive chat with a DeepSeek-R1 style model; the reasoning is shown dimmed.

    python3 bindings/python/examples/chat.py -m models/demo-llama

The conversation is rendered by the library with the model's own chat
template (ds8b.Chat); the session's KV cache is reused from turn to turn.
Type /reset to start over, /quit (or Ctrl-D) to leave; Ctrl-C interrupts
the current reply.
"""

import argparse
import os
import sys

try:
    import ds8b
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import ds8b

DIM, RESET = "\033[2m", "\033[0m"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", required=True, help="checkpoint directory or GGUF file")
    ap.add_argument("-s", "--system", default=None, help="system prompt")
    ap.add_argument("-n", "--max-tokens", type=int, default=512)
    ap.add_argument("--temp", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--hide-reasoning", action="store_true")
    ap.add_argument("-t", "--threads", type=int, default=0)
    args = ap.parse_args()
    color = sys.stdout.isatty()

    model = ds8b.Model(args.model)
    session = model.session(n_ctx=args.ctx, n_threads=args.threads, temperature=args.temp,
                            ctx_policy="stop")
    chat = session.conversation()
    if args.system:
        chat.add("system", args.system)
    print("%s -- /reset, /quit" % model.desc)
    with model, session, chat:
        while True:
            try:
                line = input("\n> ")
            except (EOFError, KeyboardInterrupt):
                print()
                break
            if line.strip() == "/quit":
                break
            if line.strip() == "/reset":
                chat.clear()
                session.reset()
                if args.system:
                    chat.add("system", args.system)
                continue
            if not line.strip():
                continue
            chat.add("user", line)
            channel = None
            gen = chat.reply(args.max_tokens, seed=args.seed)
            try:
                for ch, text in gen:
                    if ch == ds8b.Channel.REASONING and args.hide_reasoning:
                        continue
                    if ch != channel:
                        if color:
                            sys.stdout.write(DIM if ch == ds8b.Channel.REASONING else RESET)
                        if channel is not None:
                            sys.stdout.write("\n")
                        channel = ch
                    sys.stdout.write(text)
                    sys.stdout.flush()
            except KeyboardInterrupt:
                gen.close()
                sys.stdout.write(" [interrupted]")
            except ds8b.Error as e:
                sys.stdout.write(" [error: %s]" % e)
            if color:
                sys.stdout.write(RESET)
            print()


if __name__ == "__main__":
    main()
