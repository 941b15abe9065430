#!/usr/bin/env bash
# `make check`: what CI runs (.ci/run). The whole suite (`make test`), then
# the whole suite again under ASan + UBSan (`make test-asan`, built in
# build-asan/ at -O2 and run with DS8B_QUICK=1; see docs/reliability.md).
# Builds use one job per core. The last line sums both runs:
# "N passed, N failed, N skipped"; the exit status is nonzero if anything failed.
set -u
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
pass=0 fail=0 skip=0
summary=()

# stage NAME TARGET: runs `make TARGET`, adds its "N passed, N failed"
# line to the totals; a build that fails or gives no such line is one
# failure, and so is a nonzero exit without a failed test.
stage() {
  local name=$1 target=$2 t0 log rc line p=0 f=0 k=0
  t0=$(date +%s)
  log=$(mktemp)
  make --no-print-directory -j"$jobs" "$target" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -1)
  rm -f "$log"
  if [ -n "$line" ]; then
    p=${line%% passed*}
    f=${line#*passed, }; f=${f%% failed*}
    case $line in *skipped) k=${line##*failed, }; k=${k%% skipped} ;; esac
  fi
  if [ -z "$line" ] || { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; }; then
    f=$((f + 1))
    line="${line:-no test results}; make exited with status $rc"
  fi
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + k))
  summary+=("# $name: $line ($(( $(date +%s) - t0 )) s)")
}

stage "make test" test
stage "make test-asan" test-asan
# DS8B_CHECK_ARM64=1 (.ci/run): then the aarch64 build and its part of the
# suite under qemu-aarch64 (make check-arm64, tests/arm/check-arm64.sh).
if [ "${DS8B_CHECK_ARM64:-0}" = 1 ]; then
  stage "make check-arm64" check-arm64
fi
echo
printf '%s\n' "${summary[@]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
