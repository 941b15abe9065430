#!/usr/bin/env bash
# JSON Schema grammars checked by an independent validator (python3-jsonschema):
#  1. corpus: each schema's "valid" texts validate and its "invalid" ones do
#     not (so the corpus itself is right); "rejected" texts are valid JSON
#     that the grammar leaves out on purpose (docs/json-schema.md).
#  2. generations: build/tests/test_json_schema --dump generates with the
#     demo model (temperature 1, several seeds) under every corpus schema;
#     every generation that completed must parse as JSON and validate.
#  3. CLI: `ds8b grammar --check --json-schema F` accepts the valid texts and
#     rejects the invalid ones; `ds8b generate --json-schema F --no-echo`
#     prints text that validates.
# python3-jsonschema is installed on demand when running as root on Debian.
set -u
cd "$(dirname "$0")/.."
BUILD=${DS8B_BUILD:-build}
export DS8B_SHARED=${DS8B_SHARED:-$(cd .. && pwd)/shared}
ok() { echo "ok $1${2:+ # $2}"; }
nok() { echo "not ok $1${2:+: $2}"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have_js() { python3 -c 'import jsonschema' >/dev/null 2>&1; }
if ! have_js && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q python3-jsonschema >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q python3-jsonschema >/dev/null 2>&1; }
fi

# validate.py --corpus CASE_FILE...: each case's texts against its schema.
# validate.py CASE_FILE TEXT_FILE...: each text must validate; prints the failures.
cat > "$tmp/validate.py" <<'EOF'
import json, sys
import jsonschema

def validator(case_file):
    schema = json.load(open(case_file, encoding="utf-8"))["schema"]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    fc = getattr(cls, "FORMAT_CHECKER", None) or jsonschema.FormatChecker()
    return cls(schema, format_checker=fc)

def check(v, text):
    try:
        x = json.loads(text)
    except Exception as e:
        return "not JSON: %s" % e
    errs = list(v.iter_errors(x))
    return "ok" if not errs else errs[0].message

bad = 0
if sys.argv[1] == "--corpus":
    for f in sys.argv[2:]:
        case, v = json.load(open(f, encoding="utf-8")), validator(f)
        for t in case["valid"]:
            r = check(v, t)
            if r != "ok": print("%s: valid text fails: %r: %s" % (f, t, r)); bad += 1
        for t in case["invalid"]:
            if check(v, t) == "ok": print("%s: invalid text validates: %r" % (f, t)); bad += 1
        for t in case.get("rejected", []):
            if check(v, t).startswith("not JSON"): print("%s: rejected text is not JSON: %r" % (f, t)); bad += 1
else:
    v = validator(sys.argv[1])
    for f in sys.argv[2:]:
        t = open(f, encoding="utf-8").read()
        r = check(v, t)
        if r != "ok": print("%s: %r: %s" % (f, t, r)); bad += 1
sys.exit(1 if bad else 0)
EOF

if ! have_js; then
  ok json_schema_corpus "SKIP python3-jsonschema not installed"
  ok json_schema_generations "SKIP python3-jsonschema not installed"
  ok json_schema_cli_check "SKIP python3-jsonschema not installed"
  exit 0
fi

# ---------------------------------------------------------------- 1. corpus
n=$(ls tests/data/schemas/*.json | wc -l)
if [ "$n" -lt 25 ]; then nok json_schema_corpus "only $n schemas"
elif out=$(python3 "$tmp/validate.py" --corpus tests/data/schemas/*.json 2>&1); then
  ok json_schema_corpus; echo "  # $n schemas agree with jsonschema"
else nok json_schema_corpus "the corpus disagrees with jsonschema"; echo "$out" | head -20 | sed 's/^/  # /'; fi
# ---------------------------------------------------------------- 2. generations
if [ ! -d "$DS8B_SHARED/models/demo-llama" ]; then
  ok json_schema_generations "SKIP no demo model in $DS8B_SHARED"
else
  mkdir -p "$tmp/gen"
  if ! res=$("$BUILD/tests/test_json_schema" --dump "$tmp/gen" 2>&1); then
    nok json_schema_generations "generation failed: $res"
  else
    bad=0; total=0
    for f in tests/data/schemas/*.json; do
      b=$(basename "$f" .json)
      outs=$(ls "$tmp/gen/$b".*.json 2>/dev/null)
      k=$(echo "$outs" | grep -c . || true)
      total=$((total+k))
      echo "  # $b: $k completed generations validated"
      [ "$k" -eq 0 ] && continue
      # shellcheck disable=SC2086
      out=$(python3 "$tmp/validate.py" "$f" $outs 2>&1) || { bad=$((bad+1)); echo "  # $out" | head -5; }
    done
    if [ "$total" -lt 50 ]; then nok json_schema_generations "only $total completed generations ($res)"
    elif [ $bad -eq 0 ]; then ok json_schema_generations; echo "  # $total generations validate ($res completed/total)"
    else nok json_schema_generations "$bad schemas with generations that do not validate"; fi
  fi
fi

# ---------------------------------------------------------------- 3. CLI
CLI=$BUILD/ds8b
if ! "$CLI" help 2>&1 | grep -q -- "--json-schema"; then
  nok json_schema_cli_check "$CLI help lists no --json-schema"
else
  bad=0
  for f in tests/data/schemas/*.json; do
    b=$(basename "$f" .json)
    python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1]))["schema"], open(sys.argv[2],"w"))' "$f" "$tmp/$b.schema.json"
    python3 -c '
import json,sys
c=json.load(open(sys.argv[1]))
for k in ("valid","invalid","rejected"):
    for t in c.get(k,[]): print(json.dumps({"text":t}))' "$f" > "$tmp/$b.in"
    python3 -c '
import json,sys
c=json.load(open(sys.argv[1]))
for k in ("valid","invalid","rejected"):
    for t in c.get(k,[]): print(json.dumps({"accept": k=="valid"}))' "$f" > "$tmp/$b.want"
    if ! "$CLI" grammar --check --json-schema "$tmp/$b.schema.json" < "$tmp/$b.in" > "$tmp/$b.got" 2>"$tmp/$b.err"; then
      bad=$((bad+1)); echo "  # $b: exit status: $(head -c 300 "$tmp/$b.err")"; continue
    fi
    if ! python3 -c '
import json,sys
a=[json.loads(l) for l in open(sys.argv[1])]; b=[json.loads(l) for l in open(sys.argv[2])]
sys.exit(0 if a==b else 1)' "$tmp/$b.got" "$tmp/$b.want"; then
      bad=$((bad+1)); echo "  # $b: --check answers differ"; diff "$tmp/$b.got" "$tmp/$b.want" | head -5 | sed 's/^/  # /'
    fi
  done
  # A schema that does not convert: non-zero exit and the error on stderr.
  echo '{"type":"object","properties":{"a":{"not":{}}}}' > "$tmp/bad.json"
  if echo '{"text":"{}"}' | "$CLI" grammar --check --json-schema "$tmp/bad.json" >/dev/null 2>"$tmp/bad.err"; then
    bad=$((bad+1)); echo "  # unsupported schema accepted"
  elif ! grep -q "unsupported keyword 'not' at /properties/a" "$tmp/bad.err"; then
    bad=$((bad+1)); echo "  # error message: $(cat "$tmp/bad.err")"
  fi
  if [ $bad -eq 0 ]; then ok json_schema_cli_check; else nok json_schema_cli_check "$bad failures"; fi

  # generate --json-schema --no-echo: stdout is the JSON text only.
  if [ -d "$DS8B_SHARED/models/demo-llama" ]; then
    bad=0; k=0
    for b in 06_object_required 17_enum 23_ref_recursive 28_integer_range; do
      for seed in 1 2 3; do
        if "$CLI" generate -m "$DS8B_SHARED/models/demo-llama" -p "JSON: " -n 96 --temp 1 --seed $seed \
             --json-schema "$tmp/$b.schema.json" --no-echo > "$tmp/cli.$b.$seed.out" 2>/dev/null; then
          # Only completed generations must validate: a complete one is
          # accepted by --check (MAX_TOKENS cuts leave an incomplete text).
          t=$(python3 -c 'import json,sys; print(json.dumps({"text":open(sys.argv[1]).read()}))' "$tmp/cli.$b.$seed.out")
          if echo "$t" | "$CLI" grammar --check --json-schema "$tmp/$b.schema.json" | grep -q true; then
            k=$((k+1))
            python3 "$tmp/validate.py" "tests/data/schemas/$b.json" "$tmp/cli.$b.$seed.out" >/dev/null || bad=$((bad+1))
          fi
        else bad=$((bad+1)); fi
      done
    done
    if [ $bad -eq 0 ] && [ $k -gt 0 ]; then ok json_schema_cli_generate; echo "  # $k CLI generations validate"
    else nok json_schema_cli_generate "$bad failures, $k completed"; fi
  fi
fi
