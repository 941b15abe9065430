#!/usr/bin/env bash
# Counts the AArch64 instructions of each kernel's block loop from the
# generated code (aarch64-linux-gnu-objdump -d), for docs/kernels.md.
# For every type and level it builds a probe: the kernel's one weight row x
# one activation row function (what decode runs), and at the i8mm level
# also the 2x2 SMMLA tile, with the flags of mk/arch.mk, and prints the
# instructions between the loop's backward branch and its target: the
# instructions of one block (32 weights; 256 for the K-quants) when the
# body has no inner loop (reported: "inner loops" > 0 means the count is
# of the outer body only).
set -u
cd "$(dirname "$0")/../.."
CC=${CC:-aarch64-linux-gnu-gcc}
OBJDUMP=${OBJDUMP:-aarch64-linux-gnu-objdump}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
CF="-std=gnu11 -O2 -fPIC -Iinclude -Isrc/core -Isrc -ffp-contract=off"
types="q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k"
count() { # OBJ FUNC -> "INSNS INNER_LOOPS": the longest backward-branch loop
  # (a probe that only tail-calls the kernel's out-of-line copy is followed)
  $OBJDUMP -d --no-show-raw-insn "$1" | python3 -c '
import re, sys
lines = sys.stdin.read().split("\n")
def body(f):
    on = False; ins = []
    for line in lines:
        if line.strip().endswith("<%s>:" % f): on = True; continue
        if on and not line.strip(): break
        m = on and re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)", line)
        if m: ins.append((int(m.group(1), 16), m.group(2), m.group(3)))
    return ins
f = sys.argv[1]
ins = body(f)
for _ in range(3):
    if len(ins) > 12: break
    t = [re.search(r"<([^+>]+)>", a) for _, op, a in ins if op in ("b", "bl")]
    t = [m.group(1) for m in t if m and m.group(1) != f]
    if not t: break
    f = t[0]; ins = body(f)
br = []
for a, op, args in ins:
    if op == "b" or op.startswith("b.") or op in ("cbz", "cbnz", "tbz", "tbnz"):
        t = re.search(r"\b([0-9a-f]+) <", args)
        if t and int(t.group(1), 16) < a: br.append((int(t.group(1), 16), a))
if not br: print("? 0"); sys.exit()
lo, hi = max(br, key=lambda b: b[1] - b[0])
n = sum(1 for a, _, _ in ins if lo <= a <= hi)
inner = sum(1 for t, a in br if lo < t and a < hi)
print(n, inner)' "$2"
}
for lvl in 1:neon:armv8-a 2:dotprod:armv8.2-a+dotprod 3:i8mm:armv8.2-a+dotprod+i8mm; do
  IFS=: read -r L name march <<<"$lvl"
  {
    echo "#define DS8B_ARM_LEVEL $L"
    echo '#include "kernels/arm/kern_arm.h"'
    for t in $types; do
      echo "__attribute__((noinline)) void probe_row_$t(const uint8_t *w, const uint8_t *x, int64_t nb, float *o) { mm_${t}_row(w, x, 0, 1, nb, o); }"
      [ "$L" = 3 ] && echo "__attribute__((noinline)) void probe_2x2_$t(const uint8_t *w, const uint8_t *x, int64_t nb, float *o) { mm_${t}_2x2(w, w + 4096, x, x + 4096, nb, o); }"
    done
    echo "void probe_fill(ds8b__kops *k) { arm_fill(k, \"x\"); }"
    echo "__attribute__((noinline)) float probe_w4a16(const void *w, const float *x, int64_t nb) { return n_dot_w4a16(w, x, nb); }"
    echo "__attribute__((noinline)) float probe_f16(const uint16_t *a, const float *b, int64_t n) { return n_dot_f16(a, b, n); }"
  } >"$tmp/p$L.c"
  $CC $CF -march=$march -c "$tmp/p$L.c" -o "$tmp/p$L.o" || exit 1
  for t in $types; do
    echo "$name row $t $(count "$tmp/p$L.o" probe_row_$t)"
    [ "$L" = 3 ] && echo "$name 2x2 $t $(count "$tmp/p$L.o" probe_2x2_$t)"
  done
  echo "$name dot w4a16 $(count "$tmp/p$L.o" probe_w4a16)"
  echo "$name dot f16 $(count "$tmp/p$L.o" probe_f16)"
done

# ---------------------------------------------------------------- executed
# The static counts above miss the inner loops of the K-quant kernels, so
# also count executed instructions: a static probe runs the kernel on NB
# zeroed blocks under qemu-aarch64 -singlestep -d exec,nochain (one log
# line per executed instruction); (count(NB=24) - count(NB=8)) / 16 is the
# instructions of one block, whatever the data (the kernels do not branch
# on it). Printed per 32 weights: one weight row x one activation row (row),
# and per element of the 2x2 SMMLA tile (2x2, i8mm).
echo
echo "executed instructions per 32 weights (level kind type insns)"
for lvl in 1:neon:armv8-a 2:dotprod:armv8.2-a+dotprod 3:i8mm:armv8.2-a+dotprod+i8mm; do
  IFS=: read -r L name march <<<"$lvl"
  for t in $types; do
    per=1; case $t in *_k) per=8 ;; esac
    for kind in row 2x2; do
      [ $kind = 2x2 ] && [ "$L" != 3 ] && continue
      if [ $kind = row ]; then call="mm_${t}_row(W, X, 0, 1, nb, o)"; div=$per
      else call="mm_${t}_2x2(W, W + 32768, X, X + 32768, nb, o)"; div=$((per * 4)); fi
      cat >"$tmp/d.c" <<EOC
#define DS8B_ARM_LEVEL $L
#include "kernels/arm/kern_arm.h"
#include <stdlib.h>
static uint8_t W[1 << 17], X[1 << 17];
int main(int argc, char **argv) { int64_t nb = atoi(argv[1]); float o[4] = {0}; $call; return (int)o[0]; }
EOC
      $CC -static $CF -march=$march "$tmp/d.c" -o "$tmp/d" || exit 1
      c=()
      for nb in 8 24; do
        QEMU_CPU=max qemu-aarch64 -singlestep -d exec,nochain -D "$tmp/d.log" "$tmp/d" $nb
        c+=("$(grep -c '^Trace' "$tmp/d.log")")
      done
      echo "$name $kind $t $(awk -v a="${c[0]}" -v b="${c[1]}" -v d="$div" 'BEGIN { printf "%.1f", (b - a) / 16 / d }')"
    done
  done
done
