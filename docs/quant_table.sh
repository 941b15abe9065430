#!/usr/bin/env bash
# Produces docs/quantization.md's measured tables:
#   make quant-table      (or: bash docs/quant_table.sh > docs/quantization-table.md)
# For each demo model: an importance matrix from calibration text (`ds8b
# imatrix`; the text from docs/calib_text.py unless CALIB names a file),
# then each scheme written to GGUF without and with it, scored against the
# float model over the held-out windows of ../shared/testdata/reference:
# perplexity and its change, mean-NLL change per language, mean KL
# divergence and top-1 agreement, and the file size against the bf16
# checkpoint. With LLAMA_QUANTIZE=/path/to/llama-quantize, llama.cpp's
# files of the same schemes (from an f16 GGUF `ds8b convert` writes;
# without and with the same imatrix) are scored by our engine beside ours.
# The two models run in parallel (JOBS=1 for one at a time).
set -eu
cd "$(dirname "$0")/.."
DS8B=${DS8B:-build/ds8b}
SHARED=${DS8B_SHARED:-../shared}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
CALIB=${CALIB:-}
if [ -z "$CALIB" ]; then CALIB=$TMP/calib.txt; python3 docs/calib_text.py "$CALIB" "$SHARED"; fi
SCHEMES=${SCHEMES:-"f16 q8_0 q6_k q5_k_m q5_0 q4_k_m w4a16 q4_0 q3_k_m q2_k"}
LLAMA_QUANTIZE=${LLAMA_QUANTIZE:-}
JOBS=${JOBS:-2}

score() { # model dir file tool scheme imatrix
  local r
  r=$("$DS8B" kld -m "$3" --base "$2" --windows "$SHARED/testdata/reference/$1.json" --kv-type f32 --threads 1)
  printf '{"model": "%s", "tool": "%s", "scheme": "%s", "imatrix": %s, "bytes": %s, "r": %s}\n' \
    "$1" "$4" "$5" "$6" "$(wc -c < "$3")" "$r"
}

one_model() {
  local model=$1 dir=$SHARED/models/$1 out=$TMP/$1.jsonl im=$TMP/$1.imatrix.gguf
  "$DS8B" imatrix -m "$dir" -f "$CALIB" -o "$im" --threads 1 2>/dev/null
  for scheme in $SCHEMES; do
    for w in false true; do
      [ "$w" = true ] && [ "$scheme" = f16 ] && continue
      local f=$TMP/$model-$scheme-$w.gguf
      if [ "$w" = true ]; then "$DS8B" quantize "$dir" "$f" "$scheme" --imatrix "$im" --threads 1 2>/dev/null
      else "$DS8B" quantize "$dir" "$f" "$scheme" --threads 1 2>/dev/null; fi
      score "$model" "$dir" "$f" ds8b "$scheme" "$w" >> "$out"
      rm -f "$f"
    done
  done
  if [ -n "$LLAMA_QUANTIZE" ]; then
    "$DS8B" convert "$dir" "$TMP/$model-f16.gguf" 2>/dev/null
    for scheme in $SCHEMES; do
      case $scheme in f16|w4a16) continue;; esac
      local S
      S=$(echo "$scheme" | tr a-z A-Z)
      for w in false true; do
        local f=$TMP/$model-lc-$S-$w.gguf
        if [ "$w" = true ]; then "$LLAMA_QUANTIZE" --imatrix "$im" "$TMP/$model-f16.gguf" "$f" "$S" 1 >/dev/null 2>&1
        else "$LLAMA_QUANTIZE" "$TMP/$model-f16.gguf" "$f" "$S" 1 >/dev/null 2>&1; fi
        score "$model" "$dir" "$f" llama.cpp "$scheme" "$w" >> "$out"
        rm -f "$f"
      done
    done
  fi
}

pids=()
for model in demo-llama demo-qwen3; do
  if [ "$JOBS" -gt 1 ]; then one_model "$model" & pids+=($!); else one_model "$model"; fi
done
for p in "${pids[@]}"; do wait "$p"; done
cat "$TMP"/demo-llama.jsonl "$TMP"/demo-qwen3.jsonl > "$TMP/all.jsonl"
[ -n "${JSONL:-}" ] && cp "$TMP/all.jsonl" "$JSONL"
python3 docs/quant_table.py "$TMP/all.jsonl" "$SHARED"
