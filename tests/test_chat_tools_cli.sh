#!/usr/bin/env bash
# ds8b chat-template with --tools, --vars and --no-generation-prompt:
# conversations of testdata/chat-template-tools-cases.jsonl.gz render
# exactly as the reference, or exit non-zero where transformers' template
# raises: all 40 with the demo tokenizer (it loads in milliseconds), and a
# sample (with errors, tools null, enable_thinking true and false) with the
# other three, whose 128k-token tokenizers take half a second a run; the C
# test (test_chat_tools) renders every case with every tokenizer. Bad
# --tools / --vars input is refused. Prints "ok NAME" / "not ok NAME".
set -u
cd "${DS8B_ROOT:-$(dirname "$0")/..}"
BUILD=${DS8B_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
DS8B=$BUILD/ds8b
SHARED=${DS8B_SHARED:-../shared}
CASES=$SHARED/testdata/chat-template-tools-cases.jsonl.gz
tmp=$(mktemp -d /tmp/ds8b-tools-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok $1${2:+ # $2}"; }
bad() { echo "not ok $1"; shift; for l in "$@"; do echo "  # $l"; done; }

if [ ! -x "$DS8B" ]; then bad chat_template_tools_cli "not built: $DS8B"; exit 1; fi
if ! command -v python3 >/dev/null; then ok chat_template_tools_cli "SKIP no python3 to read the cases"; exit 0; fi
if [ ! -f "$CASES" ]; then bad chat_template_tools_cli "missing $CASES"; exit 1; fi

# one directory per case: messages.json, tools.json (if any), vars.json,
# and the expected render (or error marker) per tokenizer and setting
python3 - "$CASES" "$tmp" <<'PY'
import gzip, json, os, sys
src, out = sys.argv[1], sys.argv[2]
for k, line in enumerate(gzip.open(src, "rt", encoding="utf-8")):
    c = json.loads(line)
    d = os.path.join(out, "%02d" % k)
    os.makedirs(d)
    json.dump(c["messages"], open(os.path.join(d, "messages.json"), "w", encoding="utf-8"), ensure_ascii=False)
    if c["tools"] is not None:
        json.dump(c["tools"], open(os.path.join(d, "tools.json"), "w", encoding="utf-8"), ensure_ascii=False)
    open(os.path.join(d, "vars.json"), "w", encoding="utf-8").write(json.dumps(c["kwargs"], ensure_ascii=False))
    for key, r in c["render"].items():
        name, agp = key.split("|add_generation_prompt=")
        f = os.path.join(d, "%s.%s" % (name, agp))
        if isinstance(r, dict):
            open(f + ".error", "w").write(r["error"])
        else:
            open(f + ".want", "wb").write(r.encode("utf-8"))
PY

fails=0
SAMPLE="00 02 05 11"
for tok in llama3.1 qwen3 deepseek-v3 demo; do
  n=0; m=0; first=""
  if [ $tok = demo ]; then dirs=$(ls -d "$tmp"/[0-9]*); want=80
  else dirs=$(for k in $SAMPLE; do echo "$tmp/$k"; done); want=8; fi
  for d in $dirs; do
    for agp in true false; do
      n=$((n + 1))
      args=(chat-template -m "$SHARED/tokenizers/$tok" --vars "$(cat "$d/vars.json")")
      [ -f "$d/tools.json" ] && args+=(--tools "$d/tools.json")
      [ $agp = false ] && args+=(--no-generation-prompt)
      "$DS8B" "${args[@]}" <"$d/messages.json" >"$d/got" 2>"$d/err"
      rc=$?
      if [ -f "$d/$tok.$agp.error" ]; then
        if [ $rc -ne 0 ] && grep -q . "$d/err"; then m=$((m + 1)); else first=${first:-"$(basename "$d") agp=$agp: want an error, got rc $rc"}; fi
      elif [ $rc -eq 0 ] && cmp -s "$d/got" "$d/$tok.$agp.want"; then
        m=$((m + 1))
      else
        first=${first:-"$(basename "$d") agp=$agp: rc $rc $(head -c 200 "$d/err")"}
      fi
    done
  done
  if [ $m -eq $n ] && [ $n -eq $want ]; then ok "chat_template_tools_cli_$tok" "$m/$n exact"
  else bad "chat_template_tools_cli_$tok" "$m/$n exact" "$first"; fails=$((fails + 1)); fi
done

# refused input: tools not an array, unreadable tools file, vars not an object, vars naming tools
echo '[{"role": "user", "content": "hi"}]' >"$tmp/m.json"
echo '{"name": "x"}' >"$tmp/obj.json"
T=$SHARED/tokenizers/demo
refused() {
  local name=$1; shift
  if "$DS8B" chat-template -m "$T" "$@" <"$tmp/m.json" >"$tmp/out" 2>"$tmp/err"; then
    bad "$name" "exit 0 for bad input: $*"; fails=$((fails + 1))
  elif ! grep -q . "$tmp/err"; then
    bad "$name" "no message on stderr"; fails=$((fails + 1))
  else ok "$name"; fi
}
refused chat_template_tools_not_array --tools "$tmp/obj.json"
refused chat_template_tools_missing_file --tools "$tmp/none.json"
refused chat_template_vars_not_object --vars '[1]'
refused chat_template_vars_bad_json --vars '{'
refused chat_template_vars_reserved --vars '{"tools": []}'
# the same conversation without --tools renders as before, and with tools the system turn lists them
T=$SHARED/tokenizers/qwen3
"$DS8B" chat-template -m "$T" <"$tmp/m.json" >"$tmp/plain" 2>&1
echo '[{"type": "function", "function": {"name": "wave", "description": "Wave.", "parameters": {}}}]' >"$tmp/t.json"
"$DS8B" chat-template -m "$T" --tools "$tmp/t.json" <"$tmp/m.json" >"$tmp/withtools" 2>&1
if grep -q '<tools>' "$tmp/withtools" && grep -q '"name": "wave"' "$tmp/withtools" && ! grep -q '<tools>' "$tmp/plain"; then
  ok chat_template_tools_listed
else bad chat_template_tools_listed "$(head -c 300 "$tmp/withtools")"; fails=$((fails + 1)); fi
exit $((fails > 0))
