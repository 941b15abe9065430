#!/usr/bin/env python3
"""Formats the JSON lines of docs/quant_table.sh as the markdown tables of
docs/quantization-table.md. usage: quant_table.py RESULTS.jsonl [SHARED_DIR]"""
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bf16 = {m: sum(os.path.getsize(os.path.join((sys.argv[2] if len(sys.argv) > 2 else '../shared'), 'models', m, f))
               for f in os.listdir(os.path.join((sys.argv[2] if len(sys.argv) > 2 else '../shared'), 'models', m)) if f.endswith('.safetensors'))
        for m in ('demo-llama', 'demo-qwen3')}
print("| model | scheme | imatrix | file MB | size vs bf16 | ppl | ppl change | NLL change en / zh / ja | mean KLD | top-1 agreement |")
print("|---|---|---|---|---|---|---|---|---|---|")
for x in rows:
    if x['tool'] != 'ds8b': continue
    r = x['r']
    d = ' / '.join(f"{r['langs'][l]['mean_nll'] - r['langs'][l]['base_mean_nll']:+.4f}" for l in ('en', 'zh', 'ja'))
    print(f"| {x['model']} | {x['scheme']} | {'yes' if x['imatrix'] else 'no'} | {x['bytes']/1e6:.2f} | "
          f"{100*x['bytes']/bf16[x['model']]:.1f}% | {r['ppl']:.3f} | {r['ppl_change_pct']:+.2f}% | {d} | "
          f"{r['mean_kld']:.5f} | {100*r['top1_agreement']:.2f}% |")
lc = {(x['model'], x['scheme'], x['imatrix']): x for x in rows if x['tool'] == 'llama.cpp'}
if lc:
    print()
    print("Mean-NLL increase over the float model per language, ours against llama.cpp's files of the same scheme "
          "(both scored by our engine), without and with the same importance matrix; mean KLD over all 24 windows "
          "in brackets.")
    print()
    print("| model | scheme | lang | ours | llama.cpp | ours, imatrix | llama.cpp, imatrix |")
    print("|---|---|---|---|---|---|---|")
    ours = {(x['model'], x['scheme'], x['imatrix']): x for x in rows if x['tool'] == 'ds8b'}
    for (m, s, w), x in sorted(ours.items(), key=lambda kv: (kv[0][0], rows.index(kv[1]))):
        if w or (m, s, False) not in lc: continue
        for l in ('en', 'zh', 'ja'):
            cells = []
            for t in (ours.get((m, s, False)), lc.get((m, s, False)), ours.get((m, s, True)), lc.get((m, s, True))):
                if not t: cells.append('–'); continue
                q = t['r']['langs'][l]
                cells.append(f"{q['mean_nll'] - q['base_mean_nll']:+.4f}" + (f" ({t['r']['mean_kld']:.4f})" if l == 'en' else ''))
            print(f"| {m} | {s} | {l} | " + ' | '.join(cells) + " |")
