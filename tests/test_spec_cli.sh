#!/usr/bin/env bash
# The speculative-decoding options of the ds8b tool on the demo model:
# generate --spec off|auto|on and --draft-model print the same text, --stats
# prints the "speculation: drafted N, accepted M" line, bad values are usage
# errors, and bench --pass-cost / --spec-prompt run and report their tables.
set -u
cd "${DS8B_ROOT:-$(dirname "$0")/..}"
BUILD=${DS8B_BUILD:-build}
DS8B=$BUILD/ds8b
MODEL=models/demo-llama
SHARED=${DS8B_SHARED:-$(cd .. && pwd)/shared}
tmp=$(mktemp -d /tmp/ds8b-spec.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok $1"; }
bad() { echo "not ok $1"; shift; for l in "$@"; do echo "  # $l"; done; }
if [ ! -x "$DS8B" ]; then bad spec_cli "not built: $DS8B"; exit 1; fi

P='The list type is a mutable sequence. The list type supports indexing. The tuple type is an immutable sequence. The tuple type'
for mode in off auto on; do
  "$DS8B" generate -m $MODEL -p "$P" -n 48 --temp 0 --threads 1 --spec $mode --stats --no-echo >"$tmp/$mode.out" 2>"$tmp/$mode.err"
  echo "rc=$?" >>"$tmp/$mode.out"
done
"$DS8B" generate -m $MODEL -p "$P" -n 48 --temp 0 --threads 1 --spec on --draft-model "$SHARED/models/demo-qwen3" \
  --stats --no-echo >"$tmp/dm.out" 2>"$tmp/dm.err"
echo "rc=$?" >>"$tmp/dm.out"
if cmp -s "$tmp/off.out" "$tmp/on.out" && cmp -s "$tmp/off.out" "$tmp/auto.out" && cmp -s "$tmp/off.out" "$tmp/dm.out" &&
   grep -q "rc=0" "$tmp/off.out"; then ok spec_cli_same_text
else bad spec_cli_same_text "$(head -c 300 "$tmp/off.out")" "vs on: $(head -c 300 "$tmp/on.out")" "vs dm: $(head -c 300 "$tmp/dm.out")"; fi

on=$(sed -nE 's/^speculation: drafted ([0-9]+), accepted ([0-9]+).*/\1 \2/p' "$tmp/on.err")
off=$(sed -nE 's/^speculation: drafted ([0-9]+), accepted ([0-9]+).*/\1 \2/p' "$tmp/off.err")
dm=$(sed -nE 's/^speculation: drafted ([0-9]+), accepted ([0-9]+).*/\1 \2/p' "$tmp/dm.err")
if [ "$off" = "0 0" ] && [ -n "$on" ] && [ "${on%% *}" -gt 0 ] && [ -n "$dm" ] && [ "${dm%% *}" -gt 0 ]; then
  ok spec_cli_stats_line
else bad spec_cli_stats_line "off: '$off' on: '$on' draft model: '$dm'" "$(cat "$tmp/on.err")"; fi

"$DS8B" generate -m $MODEL -p x -n 2 --spec maybe >/dev/null 2>"$tmp/bad.err"; rc1=$?
"$DS8B" generate -m $MODEL -p x -n 2 --max-draft 99 >/dev/null 2>>"$tmp/bad.err"; rc2=$?
"$DS8B" generate -m $MODEL -p x -n 2 --draft-model /nonexistent >/dev/null 2>>"$tmp/bad.err"; rc3=$?
if [ $rc1 = 2 ] && [ $rc2 = 2 ] && [ $rc3 = 1 ]; then ok spec_cli_bad_values
else bad spec_cli_bad_values "rc $rc1 $rc2 $rc3" "$(cat "$tmp/bad.err")"; fi

"$DS8B" bench -m $MODEL --pass-cost --k 3 -r 1 -p 16 --threads 1 >"$tmp/pc.out" 2>&1
if [ $? = 0 ] && grep -qE "^ +3 +4 " "$tmp/pc.out" && grep -q "plain decode:" "$tmp/pc.out" && grep -qE "^ +0\.9 " "$tmp/pc.out"; then
  ok spec_cli_pass_cost
else bad spec_cli_pass_cost "$(cat "$tmp/pc.out")"; fi

printf '%s' "$P" >"$tmp/prompt.txt"
printf '%s' " supports indexing. The range type is an immutable sequence." >"$tmp/host.txt"
"$DS8B" bench -m $MODEL --spec-prompt "$tmp/prompt.txt" --draft-file "$tmp/host.txt" -n 24 -r 1 --threads 1 >"$tmp/sb.out" 2>&1
if [ $? = 0 ] && grep -q "tokens per pass" "$tmp/sb.out" && grep -q "speedup" "$tmp/sb.out" && ! grep -q "differ" "$tmp/sb.out"; then
  ok spec_cli_bench_spec
else bad spec_cli_bench_spec "$(cat "$tmp/sb.out")"; fi
