#!/usr/bin/env python3
"""Builds calibration text for `ds8b quantize --calibrate` / `ds8b imatrix`
on the demo models from material on this machine: English from the
docstrings of Python standard-library modules (pydoc), Chinese and
Japanese from the man pages under /usr/share/man/zh_CN and ja.

The demo models were trained on the Python documentation and on man pages,
and their held-out evaluation windows (../shared/testdata/reference) come
from the same kinds of text, so calibration text must not overlap them:
pages whose names appear in the held-out text are skipped, and every
paragraph that shares a 24-character run with any held-out text is
dropped.

usage: python3 docs/calib_text.py OUT.txt [SHARED_DIR]
"""
import glob, gzip, json, os, pydoc, re, sys

out = sys.argv[1]
shared = sys.argv[2] if len(sys.argv) > 2 else '../shared'
held = ''
for m in ('demo-llama', 'demo-qwen3'):
    h = json.load(open(f'{shared}/testdata/reference/{m}.json'))['heldout_text']
    held += ''.join(''.join(v) for v in h.values())
K = 24
grams = set(held[i:i + K] for i in range(len(held) - K))

def keep(text):
    out = []
    for para in text.split('\n\n'):
        p = para.strip()
        if p and not any(p[i:i + K] in grams for i in range(max(1, len(p) - K))):
            out.append(p)
    return '\n\n'.join(out)

def man_text(path):
    lines = []
    for l in gzip.open(path).read().decode('utf-8', 'replace').split('\n'):
        if l.startswith('.\\"') or l.startswith("'\\\""):
            continue
        if l.startswith('.'):
            m = re.match(r'\.(SH|SS|B|I|BR|IR|BI|IP|TP)\s+(.*)', l)
            if not m:
                if l.strip() in ('.PP', '.LP', '.P', '.sp'):
                    lines.append('')
                continue
            l = m.group(2).replace('"', '')
        lines.append(re.sub(r'\\f[BIRP]|\\f\(..|\\\*\(..|\\&|\\e', '', l).replace('\\-', '-'))
    return '\n'.join(lines)

# pages the held-out windows are from (samba, coreutils' tsort..uniq, ul, megatron)
skip = re.compile(r'(smb|nmb|samba|tsort|tty|uname|unexpand|uniq|ul\.|megatron)')
parts = {}
for lang, d in (('zh', '/usr/share/man/zh_CN'), ('ja', '/usr/share/man/ja')):
    pages = [man_text(f) for f in sorted(glob.glob(d + '/man*/*.gz')) if not skip.match(os.path.basename(f))]
    parts[lang] = keep('\n\n'.join(pages))
mods = ['json', 'collections', 'itertools', 'functools', 'pathlib', 'argparse', 'string', 'textwrap', 'heapq',
        'bisect', 'csv', 'datetime', 'enum', 'dataclasses', 'contextlib', 'shutil', 'tempfile', 'glob', 'fnmatch',
        'statistics', 'fractions', 'decimal', 'random', 'typing', 'abc', 'copy', 'pprint', 'queue', 'threading',
        'subprocess']
docs = []
for m in mods:
    try:
        docs.append(pydoc.render_doc(__import__(m), renderer=pydoc.plaintext))
    except Exception:
        pass
parts['en'] = keep('\n\n'.join(docs))
text = parts['en'][:60000] + '\n\n' + parts['zh'][:40000] + '\n\n' + parts['ja'][:50000]
open(out, 'w').write(text)
print(f'{out}: {len(text)} characters (en {min(60000, len(parts["en"]))}, zh {min(40000, len(parts["zh"]))}, '
      f'ja {min(50000, len(parts["ja"]))})', file=sys.stderr)
