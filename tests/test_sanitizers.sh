#!/usr/bin/env bash
# Sanitizer checks that the normal build cannot make:
#  1. tests/test_concurrency.c under ThreadSanitizer (library and test built
#     with -fsanitize=thread in $BUILD/tsan, incremental between runs);
#  2. a load + generate + free cycle under valgrind memcheck (no invalid
#     access, no uninitialised use, no leak).
# ASan + UBSan over the whole suite is `make test-asan` (not run here: `make
# check`, what CI runs, runs it after `make test`; see docs/reliability.md).
# Prints "ok NAME" / "not ok NAME" lines; missing tools give "# SKIP".
set -u
cd "$(dirname "$0")/.."
BUILD=${DS8B_BUILD:-build}
LIBDIR=${DS8B_LIBDIR:-lib}
export DS8B_SHARED=${DS8B_SHARED:-$(cd .. && pwd)/shared}
ok() { echo "ok $1${2:+ # $2}"; }
nok() { echo "not ok $1${2:+: $2}"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Inside `make test-asan` the library carries ASan: valgrind cannot run it,
# and a second sanitizer build would only double that run's time.
if [ -f "$LIBDIR/libds8b.a" ] && nm "$LIBDIR/libds8b.a" 2>/dev/null | grep -q ' U __asan_'; then
  ok tsan_concurrency "SKIP the suite runs under ASan"
  ok valgrind_cycle "SKIP the suite runs under ASan"
  exit 0
fi

# ---------------------------------------------------------------- TSan
# gcc by default (clang works too: TSAN_CC=clang); -O1 keeps it quick.
TSAN_CC=${TSAN_CC:-gcc}
TB=$BUILD/tsan
t0=$(date +%s)
if ! echo 'int main(void){return 0;}' | $TSAN_CC -fsanitize=thread -x c - -o "$tmp/probe" 2>/dev/null; then
  ok tsan_concurrency "SKIP $TSAN_CC cannot build with -fsanitize=thread"
elif ! make -s BUILD="$TB" LIBDIR="$TB/lib" CC="$TSAN_CC" SAN=thread OPT=-O1 -j2 \
       "$TB/tests/test_concurrency" >"$tmp/tsan-build.log" 2>&1; then
  nok tsan_build "$(grep -m3 -E 'error|Error' "$tmp/tsan-build.log" | tr '\n' ' ')"
else
  echo "# TSan build: $(( $(date +%s) - t0 )) s"
  # halt_on_error: the first race fails the run; second_deadlock_stack for
  # readable lock-order reports.
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=4" DS8B_QUICK=1 \
    timeout 600 "$TB/tests/test_concurrency" >"$tmp/tsan.log" 2>&1
  rc=$?
  sed -n 's/^\(ok\|not ok\) /  tsan: &/p' "$tmp/tsan.log"
  if [ $rc -eq 0 ] && ! grep -q 'WARNING: ThreadSanitizer' "$tmp/tsan.log"; then
    ok tsan_concurrency
  else
    nok tsan_concurrency "exit $rc"
    grep -A30 -m1 'WARNING: ThreadSanitizer' "$tmp/tsan.log" | sed 's/^/  # /'
  fi
  echo "# TSan total: $(( $(date +%s) - t0 )) s"
fi

# ---------------------------------------------------------------- valgrind
t0=$(date +%s)
if ! command -v valgrind >/dev/null 2>&1; then
  ok valgrind_cycle "SKIP valgrind not installed"
elif [ ! -f "$LIBDIR/libds8b.a" ]; then
  nok valgrind_cycle "no $LIBDIR/libds8b.a: build the library first"
else
  cat >"$tmp/cycle.c" <<'EOF'
/* load + generate + free, for valgrind */
#include "ds8b.h"
#include <stdio.h>
#include <string.h>
static int piece(void *u, const char *p, size_t n, int ch) { (void)ch; *(size_t *)u += n; (void)p; return 0; }
int main(int argc, char **argv) {
    ds8b_model *m = NULL;
    ds8b_params *p = NULL;
    ds8b_session *s = NULL;
    size_t bytes = 0;
    int64_t ng = 0;
    int rc = ds8b_model_load(argv[1], NULL, &m);
    if (!rc) rc = ds8b_params_create(&p);
    if (!rc) {
        ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 128);
        ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, argc > 2 ? 2 : 1);
        ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, 8);
        ds8b_params_set_int(p, DS8B_PARAM_STOP_AT_EOS, 0);
        rc = ds8b_session_create(m, p, &s);
    }
    if (!rc) rc = ds8b_generate(s, "The Python interpreter", 22, DS8B_GEN_ADD_SPECIAL, piece, &bytes, &ng);
    size_t need = 0;
    if (!rc && ds8b_session_save(s, NULL, 0, &need) == DS8B_E_BUFFER) {
        static char buf[1 << 20];
        if (need <= sizeof buf && ds8b_session_save(s, buf, sizeof buf, &need) == 0)
            rc = ds8b_session_load(s, buf, need);
    }
    if (rc) fprintf(stderr, "error: %s\n", ds8b_errmsg());
    printf("%lld tokens, %zu bytes, %lld heap bytes left\n", (long long)ng, bytes, (long long)ds8b_memory_used(-1));
    ds8b_session_free(s);
    ds8b_params_free(p);
    ds8b_model_free(m);
    return rc || ng != 8 || ds8b_memory_used(-1) != 0;
}
EOF
  DEPS_CF=$(pkg-config --cflags openblas libcjson zlib libpcre2-8 libutf8proc)
  DEPS_LD="$(pkg-config --libs openblas libcjson zlib libpcre2-8 libutf8proc) -lpthread -lm"
  if ! gcc -std=gnu11 -O1 -g -Iinclude $DEPS_CF -o "$tmp/cycle" "$tmp/cycle.c" "$LIBDIR/libds8b.a" $DEPS_LD 2>"$tmp/cc.log"; then
    nok valgrind_cycle "build: $(head -3 "$tmp/cc.log" | tr '\n' ' ')"
  else
    for m in demo-llama:1 demo-qwen3:2; do
      name=${m%%:*}; thr=${m##*:}
      args=("$DS8B_SHARED/models/$name"); [ "$thr" = 2 ] && args+=(threads)
      timeout 300 valgrind -q --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect "$tmp/cycle" "${args[@]}" >"$tmp/vg.log" 2>&1
      rc=$?
      if [ $rc -eq 0 ]; then ok "valgrind_cycle_${name//-/_}" "$(head -1 "$tmp/vg.log")"
      else nok "valgrind_cycle_${name//-/_}" "exit $rc"; head -40 "$tmp/vg.log" | sed 's/^/  # /'; fi
    done
  fi
  echo "# valgrind: $(( $(date +%s) - t0 )) s"
fi
