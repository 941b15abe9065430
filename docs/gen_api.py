#!/usr/bin/env python3
"""Writes docs/api.md from include/ds8b.h: every section banner, every
comment block and the declarations that follow it, in header order.
Run: python3 docs/gen_api.py > docs/api.md"""
import re
import sys

src = open(sys.argv[1] if len(sys.argv) > 1 else "include/ds8b.h", encoding="utf-8").read()
body = src[src.index("extern \"C\" {"):] if "extern \"C\" {" in src else src
lines = body.splitlines()
out = ["# libds8b API reference", "",
       "Generated from `include/ds8b.h` by `docs/gen_api.py`; the header is the source of truth.",
       "Conventions and thread-safety rules are in the header's opening comment, repeated here:", ""]
head = src[:src.index("#ifndef DS8B_H")]
out += ["```", head.strip(), "```", ""]
i = 0
pending = []
decl = []
def flush():
    global pending, decl
    if decl:
        if pending:
            out.append("\n".join(pending))
            out.append("")
        out.append("```c")
        out.extend(decl)
        out.append("```")
        out.append("")
    pending, decl = [], []

while i < len(lines):
    ln = lines[i]
    s = ln.strip()
    m = re.match(r"/\* -+ \*/", s)
    if m and i + 1 < len(lines) and lines[i + 1].strip().startswith("/*"):
        flush()
        title = lines[i + 1].strip().strip("/*").strip()
        out.append(f"## {title}")
        out.append("")
        i += 3
        continue
    if s.startswith("/*"):
        flush()
        block = [ln]
        while "*/" not in lines[i]:
            i += 1
            block.append(lines[i])
        text = "\n".join(block)
        text = text.replace("*/", "")
        text = re.sub(r"^\s*/?\*+ ?", "", text, flags=re.M).strip()
        pending = [text]
        i += 1
        continue
    if s.startswith(("DS8B_API", "typedef", "enum", "#define DS8B_VERSION")) or (decl and s and not s.startswith("#")):
        decl.append(ln)
        # keep multi-line declarations and enums together
        while not (lines[i].rstrip().endswith(";") or lines[i].strip().startswith("#define")) and i + 1 < len(lines):
            i += 1
            decl.append(lines[i])
        i += 1
        continue
    if not s:
        flush()
    i += 1
flush()
print("\n".join(out))
