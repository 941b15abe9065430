#!/usr/bin/env bash
# Runs every test program and script; ends with "N passed, N failed, N skipped".
# Each test prints lines "ok NAME" / "not ok NAME"; "ok NAME # SKIP reason"
# is a test that could not run here (no such CPU feature or tool) and counts
# as skipped, not passed. A program that crashes or exits nonzero without
# reporting a failure counts as one failure.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LIBDIR=${LIBDIR:-lib}
export DS8B_SHARED=${DS8B_SHARED:-$(cd .. && pwd)/shared}
export DS8B_ROOT=$(pwd) DS8B_BUILD=$BUILD DS8B_LIBDIR=$LIBDIR
FILTER=${1:-}
# DS8B_RUN: a prefix that runs the test programs (make check-arm64 sets it to
# qemu-aarch64 for the cross-built aarch64 suite); scripts read it too.
# DS8B_TESTS: if set, only the tests of these names (space-separated) run.
# DS8B_TAG: appended to each name in the report (e.g. the emulated CPU).
RUN=${DS8B_RUN:-}
ONLY=${DS8B_TESTS:-}
TAG=${DS8B_TAG:-}
wanted() { [ -z "$ONLY" ] && return 0; [[ " $ONLY " == *" $1 "* ]]; }
pass=0; fail=0; skip=0
# per program: 15 minutes; under emulation (DS8B_RUN, make check-arm64) an hour
TLIMIT=900; [ -n "${DS8B_RUN:-}" ] && TLIMIT=3600
LOG=$BUILD/test-logs; mkdir -p "$LOG"
run_one() {
  local name=$1$TAG; shift
  local out="$LOG/$name.log"
  local t0=$(date +%s)
  timeout "$TLIMIT" "$@" >"$out" 2>&1
  local rc=$?
  local p f k
  k=$(grep -c '^ok .*# SKIP' "$out")
  p=$(( $(grep -c '^ok ' "$out") - k )); f=$(grep -c '^not ok ' "$out")
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok $name (exit status $rc)" >>"$out"; fi
  pass=$((pass+p)); fail=$((fail+f)); skip=$((skip+k))
  printf '%-40s %3d ok %3d failed %3d skipped %4ss\n' "$name" "$p" "$f" "$k" "$(( $(date +%s) - t0 ))"
  if [ "$k" -ne 0 ]; then grep '^ok .*# SKIP' "$out" | head -10 | sed 's/^/    /'; fi
  if [ "$f" -ne 0 ]; then grep -E '^(not ok|  #)' "$out" | head -40 | sed 's/^/    /'; fi
}
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  n=$(basename "$t"); [ -n "$FILTER" ] && [[ "$n" != *$FILTER* ]] && continue
  wanted "$n" || continue
  run_one "$n" $RUN "$t"
done
for r in "$BUILD"/fuzz/replay_*; do
  [ -x "$r" ] || continue
  n=$(basename "$r"); [ -n "$FILTER" ] && [[ "$n" != *$FILTER* ]] && continue
  tgt=${n#replay_fuzz_}
  wanted "$n" || continue
  run_one "$n" $RUN "$r" "tests/fuzz/corpus/$tgt"
done
for s in tests/test_*.sh; do
  [ -f "$s" ] || continue
  n=$(basename "$s" .sh); [ -n "$FILTER" ] && [[ "$n" != *$FILTER* ]] && continue
  wanted "$n" || continue
  run_one "$n" bash "$s"
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
