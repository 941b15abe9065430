"""ds8b_build -- the binding's own PEP 517 build backend (standard library only).

The package is pure Python, so building it is copying files into a zip: this
backend needs neither setuptools nor wheel, and pip needs no package index to
build it (pyproject.toml: requires = []). It builds

  - wheels: ds8b/*.py plus any libds8b.so* copied into ds8b/ (shipped in the
    package and found first after DS8B_LIBRARY, see ds8b/_lib.py);
  - editable wheels (pip install -e): a .pth file naming this directory;
  - sdists: the sources as a .tar.gz.

Name, version and the rest of the metadata come from pyproject.toml's
[project] table.
"""

import base64
import glob
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "ds8b"
TAG = "py3-none-any"


# ---------------------------------------------------------------------------
# pyproject.toml's [project] table
# ---------------------------------------------------------------------------
def _project():
    path = os.path.join(HERE, "pyproject.toml")
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        tomllib = None
    if tomllib is not None:
        with open(path, "rb") as f:
            return tomllib.load(f)["project"]
    # Python 3.8-3.10: the simple keys this file uses (strings, one list of strings).
    with open(path, encoding="utf-8") as f:
        text = f.read()
    table = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S).group(1)
    out = {}
    for m in re.finditer(r'^(\w[\w-]*)\s*=\s*"([^"]*)"', table, re.M):
        out[m.group(1)] = m.group(2)
    m = re.search(r'^license\s*=\s*\{\s*text\s*=\s*"([^"]*)"', table, re.M)
    if m:
        out["license"] = {"text": m.group(1)}
    m = re.search(r"^classifiers\s*=\s*\[(.*?)\]", table, re.M | re.S)
    if m:
        out["classifiers"] = re.findall(r'"([^"]*)"', m.group(1))
    return out


def _metadata(p):
    lines = ["Metadata-Version: 2.1", "Name: %s" % p["name"], "Version: %s" % p["version"]]
    if p.get("description"):
        lines.append("Summary: %s" % p["description"])
    if p.get("requires-python"):
        lines.append("Requires-Python: %s" % p["requires-python"])
    lic = p.get("license")
    if isinstance(lic, dict) and lic.get("text"):
        lines.append("License: %s" % lic["text"])
    lines += ["Classifier: %s" % c for c in p.get("classifiers", ())]
    body = ""
    readme = p.get("readme")
    if isinstance(readme, str):
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(HERE, readme), encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _dist(p):
    """The name-version stem of the wheel and sdist file names."""
    return "%s-%s" % (re.sub(r"[-_.]+", "_", p["name"]).lower(), p["version"])


# ---------------------------------------------------------------------------
# Wheels
# ---------------------------------------------------------------------------
def _package_files():
    """(path in the wheel, path on disk) of the package: its .py files and
    any libds8b.so* placed next to them."""
    pkg = os.path.join(HERE, PACKAGE)
    files = sorted(glob.glob(os.path.join(pkg, "*.py")) + glob.glob(os.path.join(pkg, "libds8b.so*")))
    return [("%s/%s" % (PACKAGE, os.path.basename(f)), f) for f in files if os.path.isfile(f)]


def _write_wheel(wheel_directory, contents):
    """Writes the wheel holding contents ((name, bytes) pairs) plus its
    dist-info; returns the wheel's file name."""
    p = _project()
    dist = _dist(p)
    info = "%s.dist-info" % dist
    contents = list(contents) + [
        ("%s/METADATA" % info, _metadata(p).encode("utf-8")),
        ("%s/WHEEL" % info, ("Wheel-Version: 1.0\nGenerator: ds8b_build\nRoot-Is-Purelib: true\n"
                             "Tag: %s\n" % TAG).encode()),
        ("%s/top_level.txt" % info, (PACKAGE + "\n").encode()),
    ]
    record = []
    for name, data in contents:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (name, digest, len(data)))
    record.append("%s/RECORD,," % info)
    contents.append(("%s/RECORD" % info, ("\n".join(record) + "\n").encode()))
    fname = "%s-%s.whl" % (dist, TAG)
    with zipfile.ZipFile(os.path.join(wheel_directory, fname), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in contents:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    return fname


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [(n, _read(f)) for n, f in _package_files()])


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth line puts this directory on sys.path: edits take effect at once.
    return _write_wheel(wheel_directory, [("%s_editable.pth" % PACKAGE, (HERE + "\n").encode())])


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


# ---------------------------------------------------------------------------
# Source distributions
# ---------------------------------------------------------------------------
def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    dist = _dist(p)
    fname = dist + ".tar.gz"
    keep = ["pyproject.toml", "README.md"] + sorted(
        glob.glob(os.path.join(HERE, "_build", "*.py")) + glob.glob(os.path.join(HERE, PACKAGE, "*.py")) +
        glob.glob(os.path.join(HERE, "tests", "*.py")) + glob.glob(os.path.join(HERE, "examples", "*.py")))
    with tarfile.open(os.path.join(sdist_directory, fname), "w:gz", format=tarfile.PAX_FORMAT) as t:
        for f in keep:
            path = os.path.join(HERE, f)
            t.add(path, arcname="%s/%s" % (dist, os.path.relpath(path, HERE)))
        pkg_info = _metadata(p).encode("utf-8")
        ti = tarfile.TarInfo("%s/PKG-INFO" % dist)
        ti.size = len(pkg_info)
        t.addfile(ti, io.BytesIO(pkg_info))
    return fname
