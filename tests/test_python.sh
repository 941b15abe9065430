#!/usr/bin/env bash
# The Python binding: installs bindings/python the way its README says, with
# no package index (pip install --no-index; the package builds with its own
# standard-library backend, _build/ds8b_build.py: no setuptools, no wheel),
# into a bare venv and into one that sees Debian's pytest; runs the pytest
# suite against the library under test, and prints one "ok NAME" /
# "not ok NAME" line per test.
set -u
cd "$(dirname "$0")/.."
ROOT=${DS8B_ROOT:-$(pwd)}
LIBDIR=${DS8B_LIBDIR:-lib}
case $LIBDIR in /*) ;; *) LIBDIR=$ROOT/$LIBDIR ;; esac
MAJOR=$(sed -n 's/^#define DS8B_VERSION_MAJOR \([0-9]*\)/\1/p' include/ds8b.h)
LIB=$LIBDIR/libds8b.so.$MAJOR
PY=/usr/bin/python3   # Debian's interpreter: the one python3-pytest belongs to

# 1. Debian packages: python3-venv (venv's pip), python3-pytest (the suite).
need=""
for p in python3-venv python3-pytest; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get install -y -q $need || { apt-get update -q && apt-get install -y -q $need; }; } >/dev/null 2>&1
  fi
  for p in $need; do
    if ! dpkg -s "$p" >/dev/null 2>&1; then
      echo "not ok python_setup: missing Debian package $p (apt-get install$need)"
      exit 1
    fi
  done
fi
if [ ! -e "$LIB" ]; then
  echo "not ok python_setup: $LIB not built"
  exit 1
fi

# 2. A private venv and a private copy of the sources, so that concurrent
#    runs never share setuptools' in-tree build directory.
tmp=$(mktemp -d /tmp/ds8b-python.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
(cd bindings/python && tar cf - --exclude=build --exclude='*.egg-info' \
   --exclude=__pycache__ --exclude='libds8b.so*' .) | (cd "$tmp/src" && tar xf -)
# 2a. The README's command in a bare venv with setuptools taken out, so
#     that nothing but pip and the package's own backend can build it.
if "$PY" -m venv "$tmp/bare" >"$tmp/bare.log" 2>&1 &&
   { "$tmp/bare/bin/python" -m pip uninstall -q -y setuptools >>"$tmp/bare.log" 2>&1; true; } &&
   ! "$tmp/bare/bin/python" -c "import setuptools" 2>/dev/null &&
   ! "$tmp/bare/bin/python" -c "import wheel" 2>/dev/null &&
   "$tmp/bare/bin/pip" install -q --no-index --disable-pip-version-check "$tmp/src" >>"$tmp/bare.log" 2>&1 &&
   (cd "$tmp" && "$tmp/bare/bin/python" -c "import ds8b, sys; sys.exit(not ds8b.__file__.startswith(sys.prefix))"); then
  echo "ok python_install_offline_without_setuptools_or_wheel"
else
  echo "not ok python_install_offline_without_setuptools_or_wheel"
  sed 's/^/  # /' "$tmp/bare.log" | tail -20
fi
# 2b. The venv the suite runs in: it sees Debian's pytest.
if "$PY" -m venv --system-site-packages "$tmp/venv" >"$tmp/venv.log" 2>&1 &&
   "$tmp/venv/bin/pip" install -q --no-index --disable-pip-version-check "$tmp/src" >"$tmp/pip.log" 2>&1; then
  echo "ok python_install_offline"
else
  echo "not ok python_install_offline"
  sed 's/^/  # /' "$tmp/venv.log" "$tmp/pip.log" | tail -20
  exit 1
fi

# 3. The suite, from an empty directory so that only the installed package
#    can be imported. A library built with ASan (make test-asan) needs the
#    ASan runtime loaded first: preload the one the library links to; the
#    interpreter's own allocations at exit are not ours to report.
if nm -D "$LIB" 2>/dev/null | grep -q ' U __asan_init'; then
  asan_rt=$(ldd "$LIB" | sed -n 's/^[[:space:]]*libasan\.so[^ ]* => \([^ ]*\).*/\1/p' | head -1)
  [ -n "$asan_rt" ] || asan_rt=$(gcc -print-file-name=libasan.so)
  export LD_PRELOAD="$asan_rt${LD_PRELOAD:+ $LD_PRELOAD}"
  export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  echo "# library built with ASan: LD_PRELOAD=$asan_rt ASAN_OPTIONS=$ASAN_OPTIONS"
fi
mkdir -p "$tmp/run"
(cd "$tmp/run" &&
 DS8B_LIBRARY=$LIB DS8B_ROOT=$ROOT DS8B_SHARED=${DS8B_SHARED:-$(dirname "$ROOT")/shared} \
 PYTHONDONTWRITEBYTECODE=1 timeout 300 "$tmp/venv/bin/python" -m pytest -q \
   -p no:cacheprovider --junitxml="$tmp/junit.xml" "$tmp/src/tests" >"$tmp/pytest.log" 2>&1)
rc=$?

# 4. One line per test case.
"$tmp/venv/bin/python" - "$tmp/junit.xml" "$tmp/src" <<'EOF'
import sys
import xml.etree.ElementTree as ET
try:
    cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
except (OSError, ET.ParseError) as e:
    print("not ok python_pytest: no test report (%s)" % e)
    sys.exit(0)
import ds8b
if not ds8b.__file__.startswith(sys.prefix) or ds8b.__file__.startswith(sys.argv[2]):
    print("not ok python_installed_package: imported %s" % ds8b.__file__)
else:
    print("ok python_installed_package")
for c in cases:
    name = "python_" + c.get("name", "?")
    bad = c.find("failure")
    if bad is None:
        bad = c.find("error")
    skip = c.find("skipped")
    if bad is not None:
        print("not ok %s" % name)
        text = (bad.get("message") or "") + "\n" + (bad.text or "")
        for line in [ln for ln in text.splitlines() if ln.strip()][-12:]:
            print("  # " + line[:200])
    elif skip is not None:
        print("ok %s # SKIP %s" % (name, (skip.get("message") or "")[:120]))
    else:
        print("ok %s" % name)
EOF
if [ $rc -ne 0 ]; then
  tail -25 "$tmp/pytest.log" | sed 's/^/  # /'
  if [ $rc -eq 124 ]; then echo "not ok python_pytest_timeout"; fi
fi
exit $rc
