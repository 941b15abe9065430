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
