#!/usr/bin/env bash
# Build-level checks: exported symbols, SONAME, header in C and C++ mode,
# pkg-config install, out-of-tree build of examples/simple.c.
set -u
cd "$(dirname "$0")/.."
LIBDIR=${DS8B_LIBDIR:-lib}
BUILD=${DS8B_BUILD:-build}
ok() { echo "ok $1"; }
nok() { echo "not ok $1${2:+: $2}"; }
SO=$(ls "$LIBDIR"/libds8b.so.*.*.* 2>/dev/null | head -1)

# 1. only ds8b_* symbols are exported
bad=$(nm -D --defined-only "$SO" | awk '{print $3}' | sed 's/@.*//' | grep -v '^ds8b_' | grep -v '^DS8B_' | grep -v '^$')
[ -n "$SO" ] && [ -z "$bad" ] && ok exports_only_ds8b || nok exports_only_ds8b "unexpected: $bad"

# 2. every exported function is declared in the header, and vice versa
exp=$(nm -D --defined-only "$SO" | awk '$2=="T"{print $3}' | sed 's/@.*//' | sort)
dec=$(grep -oE 'DS8B_API [^(]*\b(ds8b_[a-z0-9_]+)\(' include/ds8b.h | grep -oE 'ds8b_[a-z0-9_]+\($' | tr -d '(' | sort)
[ "$exp" = "$dec" ] && ok exports_match_header || nok exports_match_header "$(diff <(echo "$exp") <(echo "$dec") | head -5 | tr '\n' ' ')"

# 3. SONAME
sn=$(readelf -d "$SO" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
maj=$(sed -n 's/^#define DS8B_VERSION_MAJOR \([0-9]*\)/\1/p' include/ds8b.h)
[ "$sn" = "libds8b.so.$maj" ] && ok soname || nok soname "$sn"

# 4. the header compiles as C99, C11 and C++
tmp=$(mktemp -d)
printf '#include "ds8b.h"\nint main(void){return ds8b_version_number()==DS8B_VERSION_NUMBER?0:1;}\n' > "$tmp/h.c"
cp "$tmp/h.c" "$tmp/h.cpp"
gcc -std=c99 -Wall -Wextra -pedantic -Werror -Iinclude -c "$tmp/h.c" -o "$tmp/a.o" && ok header_c99 || nok header_c99
g++ -std=c++11 -Wall -Wextra -pedantic -Werror -Iinclude -c "$tmp/h.cpp" -o "$tmp/b.o" && ok header_cxx || nok header_cxx

# 5. make install + pkg-config + out-of-tree build of the simple example
# DS8B_ARCH, DS8B_CC, DS8B_RUN, DS8B_PKG_CONFIG_LIBDIR: the aarch64 build
# (make check-arm64): its make flags, cross compiler, qemu, arm64 .pc files.
if make -s install ${DS8B_ARCH:+ARCH=$DS8B_ARCH} PREFIX="$tmp/prefix" BUILD="$BUILD" LIBDIR="$LIBDIR" >/dev/null 2>&1 &&
   [ -f "$tmp/prefix/lib/pkgconfig/ds8b.pc" ]; then ok make_install; else nok make_install; fi
# a library built with ASan (make test-asan) needs the runtime in the program
SANFLAGS=
if [ -n "$SO" ] && nm -D "$SO" 2>/dev/null | grep -q ' U __asan_init'; then
  SANFLAGS="-fsanitize=address,undefined"
fi
if [ -f examples/simple.c ]; then
  export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
  [ -n "${DS8B_PKG_CONFIG_LIBDIR:-}" ] && export PKG_CONFIG_LIBDIR="$DS8B_PKG_CONFIG_LIBDIR"
  if ${DS8B_CC:-gcc} $SANFLAGS -o "$tmp/simple" examples/simple.c $(pkg-config --cflags --libs ds8b) 2>"$tmp/err"; then
    out=$(LD_LIBRARY_PATH="$tmp/prefix/lib" ${DS8B_RUN:-} "$tmp/simple" models/demo-llama "The Python interpreter" 2>&1)
    rc=$?
    [ $rc -eq 0 ] && [ ${#out} -gt 20 ] && ok example_simple_out_of_tree || nok example_simple_out_of_tree "rc=$rc $out"
    lines=$(wc -l < examples/simple.c)
    [ "$lines" -lt 60 ] && ok example_simple_short || nok example_simple_short "$lines lines"
  else
    nok example_simple_out_of_tree "$(head -5 "$tmp/err")"
  fi
fi
rm -rf "$tmp"

# 6. docs/api.md documents every exported function and is current
missing=""
for f in $exp; do grep -q "\b$f(" docs/api.md || missing="$missing $f"; done
[ -z "$missing" ] && ok api_doc_complete || nok api_doc_complete "not in docs/api.md:$missing"
if command -v python3 >/dev/null; then
  python3 docs/gen_api.py | cmp -s - docs/api.md && ok api_doc_current || nok api_doc_current "run: python3 docs/gen_api.py > docs/api.md"
fi
