#!/usr/bin/env bash
# ABI checks of the shared library:
#  1. abidiff of the built library against the committed baseline
#     tests/abi/libds8b.abi: removals or incompatible changes fail unless
#     DS8B_VERSION_MAJOR in include/ds8b.h was bumped past the baseline's
#     SONAME; additions pass with a reminder to refresh the baseline.
#  2. every pinned constant of the 0.1.0 header (tests/abi/ds8b_v0_1_0.h)
#     still has its value in include/ds8b.h.
#  3. tests/abi/old_client.c, built against the 0.1.0 header, runs against
#     the new library.
# Refresh the baseline (in the same commit as an ABI addition) with:
#   make lib && abidw --headers-dir include --drop-private-types --no-show-locs \
#     --no-corpus-path lib/libds8b.so.$(sed -n 's/^#define DS8B_VERSION_MAJOR //p' include/ds8b.h).*.* \
#     > tests/abi/libds8b.abi
set -u
cd "$(dirname "$0")/.."
LIBDIR=${DS8B_LIBDIR:-lib}
export DS8B_SHARED=${DS8B_SHARED:-$(cd .. && pwd)/shared}
ok() { echo "ok $1${2:+ # $2}"; }
nok() { echo "not ok $1${2:+: $2}"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

MAJ=$(sed -n 's/^#define DS8B_VERSION_MAJOR \([0-9]*\).*/\1/p' include/ds8b.h)
SO=$(ls "$LIBDIR"/libds8b.so."$MAJ".*.* 2>/dev/null | head -1)
BASE=tests/abi/libds8b.abi
# The aarch64 build (make check-arm64) has its own baseline; DS8B_CC and
# DS8B_RUN build and run the old client for it (cross compiler, qemu).
CC_ABI=${DS8B_CC:-gcc}
RUN=${DS8B_RUN:-}
if [ -n "$SO" ] && readelf -h "$SO" 2>/dev/null | grep -q 'Machine:.*AArch64'; then
  BASE=tests/abi/libds8b-aarch64.abi
fi

# abigail-tools: installed on demand when running as root on Debian/Ubuntu
if ! command -v abidw >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q abigail-tools >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q abigail-tools >/dev/null 2>&1; }
fi

# ---------------------------------------------------------------- 1. abidiff
if [ -z "$SO" ]; then
  nok abi_baseline "no $LIBDIR/libds8b.so.$MAJ.*.*: build the library first"
elif ! command -v abidw >/dev/null 2>&1 || ! command -v abidiff >/dev/null 2>&1; then
  ok abi_baseline "SKIP abigail-tools (abidw, abidiff) not installed"
elif [ ! -f "$BASE" ]; then
  nok abi_baseline "no $BASE; create it with the command at the top of tests/test_abi.sh"
else
  abidw --headers-dir include --drop-private-types --no-show-locs --no-corpus-path "$SO" >"$tmp/cur.abi" 2>"$tmp/abidw.err"
  if [ $? -ne 0 ]; then
    nok abi_baseline "abidw failed: $(head -3 "$tmp/abidw.err" | tr '\n' ' ')"
  else
    abidiff --no-show-locs "$BASE" "$tmp/cur.abi" >"$tmp/diff.txt" 2>&1
    rc=$?
    base_so=$(sed -n "1s/.*soname='\([^']*\)'.*/\1/p" "$BASE")
    base_maj=${base_so##*.so.}
    if [ $((rc & 3)) -ne 0 ]; then
      nok abi_baseline "abidiff failed (status $rc)"; head -20 "$tmp/diff.txt" | sed 's/^/  # /'
    elif [ $((rc & 8)) -ne 0 ]; then
      if [ -n "$base_maj" ] && [ "$MAJ" -gt "$base_maj" ] 2>/dev/null; then
        ok abi_baseline "incompatible changes with SONAME major bumped $base_maj -> $MAJ: regenerate $BASE"
      else
        nok abi_baseline "incompatible ABI change without bumping DS8B_VERSION_MAJOR (SONAME $base_so)"
        head -60 "$tmp/diff.txt" | sed 's/^/  # /'
      fi
    elif [ $((rc & 4)) -ne 0 ]; then
      ok abi_baseline "compatible changes (additions)"
      echo "# reminder: the ABI grew; update $BASE in the same commit:"
      echo "#   abidw --headers-dir include --drop-private-types --no-show-locs --no-corpus-path $SO > $BASE"
      grep -E '^(Functions|Variables) changes summary|^  \[A\]' "$tmp/diff.txt" | head -20 | sed 's/^/#   /'
    else
      ok abi_baseline
    fi
  fi
fi

# ---------------------------------------------------------------- 2. pinned values
# "NAME = value" enumerators and "#define NAME number" of the frozen header.
pins() { grep -oE '\bDS8B_[A-Z0-9_]+ = -?[0-9]+' "$1" | tr -s ' ' | sort -u; }
missing=$(comm -23 <(pins tests/abi/ds8b_v0_1_0.h) <(pins include/ds8b.h))
if [ -z "$(pins tests/abi/ds8b_v0_1_0.h)" ]; then nok abi_pinned_values "no constants found in the frozen header"
elif [ -z "$missing" ]; then ok abi_pinned_values
else nok abi_pinned_values "changed or removed: $(echo "$missing" | head -5 | tr '\n' ' ')"; fi

# ---------------------------------------------------------------- 3. old client
# a library built with ASan (make test-asan) needs the runtime in the program
SANFLAGS=
if [ -n "$SO" ] && nm -D "$SO" 2>/dev/null | grep -q ' U __asan_init'; then
  SANFLAGS="-fsanitize=address,undefined"
fi
OLD_MAJ=$(sed -n 's/^#define DS8B_VERSION_MAJOR \([0-9]*\).*/\1/p' tests/abi/ds8b_v0_1_0.h)
if [ -z "$SO" ]; then
  nok abi_old_client "no shared library"
elif [ "$OLD_MAJ" != "$MAJ" ]; then
  ok abi_old_client "SKIP SONAME major changed ($OLD_MAJ -> $MAJ): 0.1.0 clients are not expected to load this library"
elif ! $CC_ABI -std=c99 -Wall -Wextra -Werror $SANFLAGS -Itests/abi -o "$tmp/old_client" tests/abi/old_client.c \
       -L"$LIBDIR" -l:libds8b.so."$MAJ" 2>"$tmp/cc.log"; then
  nok abi_old_client "build: $(head -3 "$tmp/cc.log" | tr '\n' ' ')"
else
  # the program must bind to the library just built, not an installed one
  libpath=$(cd "$LIBDIR" && pwd)
  if [ -n "$RUN" ]; then # ldd cannot trace a foreign binary: ask its own loader
    ldso=$(readelf -l "$tmp/old_client" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
    got=$($RUN "$ldso" --library-path "$libpath" --list "$tmp/old_client" 2>/dev/null | sed -n 's/.*libds8b\.so[^ ]* => \([^ ]*\).*/\1/p')
  else
    got=$(LD_LIBRARY_PATH="$libpath" ldd "$tmp/old_client" | sed -n 's/.*libds8b\.so[^ ]* => \([^ ]*\).*/\1/p')
  fi
  if [ "$(cd "$(dirname "$got")" 2>/dev/null && pwd)" != "$libpath" ]; then
    nok abi_old_client "resolves libds8b to '$got', not $libpath"
  else
    LD_LIBRARY_PATH="$libpath" timeout 120 $RUN "$tmp/old_client" "$DS8B_SHARED/models/demo-llama" >"$tmp/run.log" 2>&1
    rc=$?
    grep -E '^(ok|not ok) ' "$tmp/run.log"
    if [ $rc -eq 0 ] && ! grep -q '^not ok' "$tmp/run.log"; then ok abi_old_client
    else nok abi_old_client "exit $rc"; grep -vE '^(ok|not ok) ' "$tmp/run.log" | head -10 | sed 's/^/  # /'; fi
  fi
fi
