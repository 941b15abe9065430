#!/usr/bin/env bash
# Produces docs/quantization.md's measured table:
#   make quant-table      (or: bash docs/quant_table.sh > docs/quantization-table.md)
# For each demo model and scheme: quantize to GGUF, then measure perplexity
# and its change against the float model, mean KL divergence and top-1
# agreement over the held-out windows of ../shared/testdata/reference, and
# the file size relative to the bf16 checkpoint.
set -eu
cd "$(dirname "$0")/.."
DS8B=${DS8B:-build/ds8b}
SHARED=${DS8B_SHARED:-../shared}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "| model | scheme | file MB | size vs bf16 | ppl | ppl change | mean KLD | top-1 agreement |"
echo "|---|---|---|---|---|---|---|---|"
for model in demo-llama demo-qwen3; do
  dir=$SHARED/models/$model
  ref=$SHARED/testdata/reference/$model.json
  bf16=$(cat "$dir"/*.safetensors | wc -c)
  for scheme in f16 q8_0 q6_k q5_k_m q5_0 q4_k_m w4a16 q4_0; do
    out=$TMP/$model-$scheme.gguf
    "$DS8B" quantize "$dir" "$out" "$scheme" 2>/dev/null
    size=$(wc -c < "$out")
    "$DS8B" kld -m "$out" --base "$dir" --windows "$ref" --kv-type f32 > "$TMP/r.json"
    python3 - "$model" "$scheme" "$size" "$bf16" "$TMP/r.json" <<'PY'
import json, sys
model, scheme, size, bf16, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = json.load(open(path))
print(f"| {model} | {scheme} | {size/1e6:.2f} | {100*size/bf16:.1f}% | {r['ppl']:.3f} | "
      f"{r['ppl_change_pct']:+.2f}% | {r['mean_kld']:.5f} | {100*r['top1_agreement']:.2f}% |")
PY
    rm -f "$out"
  done
done
