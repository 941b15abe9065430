#!/usr/bin/env bash
# `make check-arm64`: the aarch64 build and a chosen part of the suite.
#
# On an x86-64 host it cross-builds (make ARCH=aarch64: build-arm64/,
# lib-arm64/) and runs the programs under qemu-aarch64 (qemu-user, with
# the arm64 glibc of multiarch (libc6:arm64, /lib/ld-linux-aarch64.so.1);
# tests/run.sh and the scripts honour DS8B_RUN). Not -L /usr/aarch64-linux-gnu:
# that glibc (libc6-arm64-cross 2.36-8cross1) hangs in pthread_create under
# Debian 12's qemu-user 7.2, while libc6:arm64 2.36-9+deb12u14 does not.
# On an aarch64 host it builds natively (build/, lib/) and runs them
# directly.
#
# Stages (each a tests/run.sh run; its counts are summed):
#   kernels on three emulated CPUs, each checking that dispatch finds the
#   right highest level and that every level up to it matches the scalar
#   reference: cortex-a53 (neon), neoverse-n1 (dotprod), max (i8mm). On an
#   aarch64 host: the CPU itself, with the level it has.
#   then, on `max`: the forward pass against the reference logits of both
#   demo models (2e-3) and their greedy runs, the tokenizer cases (exact),
#   sessions (save/restore), batch, formats, the examples, and the ABI and
#   export-list checks against tests/abi/libds8b-aarch64.abi.
# DS8B_QUICK=1 throughout (the shrunken workloads of tests/t.h; time limits
# are not checked: under emulation they would measure the emulator).
# The last line is "N passed, N failed, N skipped"; the exit status is
# nonzero if anything failed.
set -u
cd "$(dirname "$0")/../.."
jobs=$(nproc 2>/dev/null || echo 2)
t0=$(date +%s)
host=$(uname -m)
if [ "$host" = aarch64 ] || [ "$host" = arm64 ]; then
  BUILD=build LIBDIR=lib RUN=
else
  BUILD=build-arm64 LIBDIR=lib-arm64 RUN="qemu-aarch64"
fi
pass=0 fail=0 skip=0
summary=()
add() { # NAME LOGFILE RC: add the run's final counts
  local line p=0 f=0 k=0
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$2" | tail -1)
  if [ -n "$line" ]; then
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}; k=${line##*failed, }; k=${k%% skipped}
  fi
  if [ -z "$line" ] || { [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; }; then f=$((f + 1)); line="${line:-no results}; exit $3"; fi
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + k))
  summary+=("# $1: $line")
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# ---------------------------------------------------------------- build
# Only what the stages run (the whole suite's build under qemu-less cross
# compiling is fine, but running it all would not fit the time).
TESTS_ARM="test_forward test_tokenizer test_session test_batch test_formats test_quant"
targets="lib $BUILD/ds8b examples $BUILD/tests/test_kernels"
for t in $TESTS_ARM; do targets="$targets $BUILD/tests/$t"; done
if ! make --no-print-directory -j"$jobs" ARCH=aarch64 $targets >"$log" 2>&1; then
  tail -30 "$log"
  echo "not ok arm64_build"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
echo "ok arm64_build ($(( $(date +%s) - t0 )) s)"
pass=1
summary+=("# build: ok ($(( $(date +%s) - t0 )) s)")

export DS8B_QUICK=1 DS8B_RUN="$RUN" BUILD LIBDIR DS8B_ARCH=aarch64
if [ -n "$RUN" ]; then
  export DS8B_CC=aarch64-linux-gnu-gcc
  export DS8B_PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
fi
runstage() { # NAME QEMU_CPU EXPECT_ISA TESTS...
  local name=$1 cpu=$2 want=$3 rc t1=$(date +%s)
  shift 3
  QEMU_CPU=$cpu DS8B_EXPECT_ISA=$want DS8B_TESTS="$*" DS8B_TAG=${cpu:+@$cpu} \
    bash tests/run.sh 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  add "$name" "$log" "$rc"
  summary[-1]="${summary[-1]} ($(( $(date +%s) - t1 )) s)"
}

# ---------------------------------------------------------------- kernels per level
if [ -n "$RUN" ]; then
  runstage "kernels, cortex-a53 (neon)" cortex-a53 neon test_kernels
  runstage "kernels, neoverse-n1 (dotprod)" neoverse-n1 dotprod test_kernels
  runstage "kernels, max (i8mm)" max i8mm test_kernels
else
  runstage "kernels, this CPU" "" "" test_kernels
fi
# ---------------------------------------------------------------- the rest, on max
runstage "forward, tokenizer, sessions, batch, examples, ABI" "${RUN:+max}" "" \
  $TESTS_ARM test_examples test_abi test_build

echo
printf '%s\n' "${summary[@]}"
echo "# check-arm64 took $(( $(date +%s) - t0 )) s"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
