#!/usr/bin/env bash
# The ds8b command line's option parsing (src/cli/ds8b.c): every command
# refuses an unknown option, an option without its value and a value that
# is not the number it must be, with exit status 2 and the option named on
# stderr; and a good invocation of every command still works.
# Every command that `ds8b help` lists must have its lines in CASES and
# GOOD below: a new command without them fails cli_every_command_tested.
set -u
cd "${DS8B_ROOT:-$(dirname "$0")/..}"
BUILD=${DS8B_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
CLI=$BUILD/ds8b
M=models/demo-llama
SH=${DS8B_SHARED:-../shared}
tmp=$(mktemp -d /tmp/ds8b-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok $1"; }
bad() { echo "not ok $1"; shift; for l in "$@"; do echo "  # $l"; done; }
if [ ! -x "$CLI" ]; then echo "not ok cli_built (not built: $CLI)"; exit 1; fi

# expect_usage NAME WORD ARGS...: exit 2, WORD on stderr, nothing on stdout
expect_usage() {
  local name=$1 word=$2; shift 2
  timeout 60 "$CLI" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -eq 2 ] && grep -qF -- "$word" "$tmp/err" && [ ! -s "$tmp/out" ]; then
    ok "$name"
  else
    bad "$name" "ds8b $* -> exit $rc (want 2, '$word' on stderr)" "stderr: $(head -c 300 "$tmp/err")" \
      "stdout: $(head -c 200 "$tmp/out")"
  fi
}

# ------------------------------------------------------------ refusals
# COMMAND | ARGS that are otherwise complete | an option taking a value | a numeric option
CASES="generate|-m $M -p Hi|-p|-n
chat|-m $M|--system|--temp
tokenize|-m $M|-m|
detokenize|-m $M|-m|
chat-template|-m $M|-m|
eval|-m $M --ids [1,2] --logits-out $tmp/l.f32|--ids|--ctx
perplexity|-m $M --windows $tmp/w.json|--windows|--top-k
kld|-m $M --base $M --windows $tmp/w.json|--base|--seed
info|$M|-m|--ctx
estimate|$M|--kv-type|--batch
quantize|$M $tmp/q.gguf q8_0||--threads
imatrix|-m $M -f $tmp/cal.txt -o $tmp/im.gguf|-f|--threads
convert|$M $tmp/c.gguf||--threads
make-random|$M/config.json $tmp/rnd|--tokenizer|--shard-gb
bench|-m $M -p 8 -n 4 -r 1|-m|-r
grammar|--check $SH/testdata/grammars/json.gbnf|--json-schema|
help|||
version|||"
echo '[[1, 2, 3, 4], [5, 6, 7]]' >"$tmp/w.json"
printf 'The quick brown fox jumps over the lazy dog. Calibration text for the importance matrix.\n' >"$tmp/cal.txt"
while IFS='|' read -r cmd args vopt nopt; do
  # shellcheck disable=SC2086
  expect_usage "cli_${cmd}_unknown_option" "'--no-such-option'" $cmd $args --no-such-option
  # shellcheck disable=SC2086
  expect_usage "cli_${cmd}_unknown_short_option" "'-Z'" $cmd -Z $args
  if [ -n "$vopt" ]; then
    # at the end, and followed by another of the command's options
    # shellcheck disable=SC2086
    expect_usage "cli_${cmd}_missing_value" "$vopt needs a value" $cmd $args $vopt
    if [ -n "$nopt" ]; then
      # shellcheck disable=SC2086
      expect_usage "cli_${cmd}_missing_value_before_option" "$vopt needs a value" $cmd $vopt $nopt 1 $args
    fi
  fi
  if [ -n "$nopt" ]; then
    # shellcheck disable=SC2086
    expect_usage "cli_${cmd}_bad_number" "$nopt needs" $cmd $args $nopt 12x
    # shellcheck disable=SC2086
    expect_usage "cli_${cmd}_missing_number" "$nopt needs a value" $cmd $args $nopt
    # shellcheck disable=SC2086
    expect_usage "cli_${cmd}_given_twice" "$nopt given twice" $cmd $args $nopt 1 $nopt 2
  fi
done <<<"$CASES"

# the issue's examples, and more of the parser's rules
expect_usage cli_issue_bogus "'--bogus'" generate -m $M -p Hi --temp 0.1 --bogus
expect_usage cli_issue_temp_without_value "--temp needs a value" generate -m $M -p Hi --temp
expect_usage cli_n_not_whole "-n needs a whole number" generate -m $M -p Hi -n 2.5
expect_usage cli_temp_not_finite "--temp needs a number" generate -m $M -p Hi --temp nan
expect_usage cli_flag_with_value "--raw takes no value" generate -m $M -p Hi --raw=yes
expect_usage cli_required_missing "needs -p" generate -m $M
expect_usage cli_positional_missing "needs IN OUT SCHEME" quantize $M "$tmp/q.gguf"
expect_usage cli_quantize_imatrix_and_calibrate "not both" quantize $M "$tmp/q.gguf" q4_0 --imatrix "$tmp/im.gguf" --calibrate "$tmp/cal.txt"
expect_usage cli_quantize_save_needs_calibrate "needs --calibrate" quantize $M "$tmp/q.gguf" q4_0 --save-imatrix "$tmp/im.gguf"
expect_usage cli_positional_extra "unexpected argument 'extra'" info $M extra
expect_usage cli_path_twice "not both" info $M -m $M
expect_usage cli_bench_kernels_only "--types" bench -m $M --types q4_0
expect_usage cli_bench_model_only "-m" bench --kernels -m $M
expect_usage cli_bench_list "--threads" bench --kernels --threads 1,x
expect_usage cli_unknown_command "'nosuch'" nosuch
expect_usage cli_help_unknown_command "'nosuch'" help nosuch

# ------------------------------------------------------- good invocations
# NAME | stdin | ARGS | a regex the output (stdout+stderr) must match
GOOD="generate||generate -m $M -p Hi -n 4 --temp=0 -t 1 --stop zzz --stop yyy --no-echo --stats|tokens in
chat|Hello|chat -m $M -n 4 --temp 0 --threads 1 --system Be-brief|^> 
tokenize|Hello world|tokenize -m $M --special|^\[[0-9]+(, [0-9]+)*\]
detokenize|[7658, 8047]|detokenize -m $M --skip-special|Hello world
chat-template|[{\"role\":\"user\",\"content\":\"Hi\"}]|chat-template -m $M --no-generation-prompt|Hi
eval||eval -m $M --ids [1,2,3] --logits-out $tmp/l.f32 -c 64|
perplexity||perplexity -m $M --windows $tmp/w.json --threads 1|\"ppl\": [0-9.]+
kld||kld -m $M --base $M --windows $tmp/w.json|\"mean_kld\": 0.0
info||info $M --ctx 256|n_layer +6
estimate||estimate -m $M --kv-type q8_0 --ctx 512|n_ctx 512
quantize||quantize $M $tmp/q.gguf q8_0 --threads 1|wrote .*q8_0
imatrix||imatrix -m $M -f $tmp/cal.txt -o $tmp/im.gguf --threads 1|wrote .*43 matrices
quantize_imatrix||quantize $M $tmp/qi.gguf q4_0 --imatrix $tmp/im.gguf --threads 1|q4_0 with an importance matrix
quantize_calibrate||quantize $M $tmp/qc.gguf q2_k --calibrate $tmp/cal.txt --save-imatrix $tmp/im2.gguf --threads 1|q2_k with an importance matrix
convert||convert $M $tmp/c.gguf bf16|wrote .*bf16
make-random||make-random $M/config.json $tmp/rnd --tokenizer $M --seed 3 --shard-gb 0.01|random llama checkpoint
bench||bench -m $M -p 8 -n 4 -r 1 --threads 1|\| tg4 \|
bench_kernels||bench --kernels --types q4_0 --shapes 256x256 --n 1 --threads 1 --runs 1 -r 1|\| q4_0 \| 256x256
grammar|{\"text\": \"1+2=3\\n\"}|grammar --check $SH/testdata/grammars/arithmetic.gbnf|^\\{\"accept\": true\\}
help||help generate|--no-echo
version||--version|^ds8b [0-9]"
while IFS='|' read -r name input args want; do
  # shellcheck disable=SC2086
  printf '%s\n' "$input" | timeout 120 "$CLI" $args >"$tmp/out" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && { [ -z "$want" ] || grep -Eq -- "$want" "$tmp/out"; }; then
    ok "cli_${name}_works"
  else
    bad "cli_${name}_works" "ds8b $args -> exit $rc, want output matching '$want'" "$(head -c 400 "$tmp/out")"
  fi
done <<<"$GOOD"
if [ -s "$tmp/l.f32" ] && [ $(( $(stat -c %s "$tmp/l.f32") % (3 * 4) )) -eq 0 ]; then ok cli_eval_wrote_logits
else bad cli_eval_wrote_logits "$(stat -c %s "$tmp/l.f32" 2>&1)"; fi

# A checkpoint whose tokenizer is larger than its embedding table cannot
# become a GGUF (llama.cpp refuses such a file): quantize says so, exit 1,
# and leaves no file.
mis="$tmp/mismatch"; mkdir -p "$mis"
for f in "$M"/*; do ln -sf "$(readlink -f "$f")" "$mis/"; done
ln -sf "$(readlink -f "$SH/tokenizers/deepseek-v3/tokenizer.json")" "$mis/tokenizer.json"
ln -sf "$(readlink -f "$SH/tokenizers/deepseek-v3/tokenizer_config.json")" "$mis/tokenizer_config.json"
timeout 120 "$CLI" quantize "$mis" "$tmp/mis.gguf" q8_0 --threads 1 >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q 'tokenizer has 128815 tokens but the model.s vocabulary (embedding rows) is 8192' "$tmp/out" &&
   [ ! -e "$tmp/mis.gguf" ]; then ok cli_quantize_tokenizer_too_large
else bad cli_quantize_tokenizer_too_large "exit $rc" "$(head -c 400 "$tmp/out")"; fi

timeout 60 "$CLI" make-random "$M/config.json" "$tmp/rnd-mis" --tokenizer "$SH/tokenizers/deepseek-v3" >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q 'has 128815 tokens, more than the config.s vocab_size 8192' "$tmp/out" && [ ! -e "$tmp/rnd-mis" ]
then ok cli_make_random_tokenizer_too_large
else bad cli_make_random_tokenizer_too_large "exit $rc" "$(head -c 400 "$tmp/out")"; fi

# ------------------------------------------------- DS8B_ISA caps the level
# On a CPU with AVX512-BF16 the default level is avx512-bf16 and
# DS8B_ISA=avx512 falls back to avx512-vnni (float activations for W4A16).
isa_of() { DS8B_ISA=$1 timeout 60 "$CLI" bench --kernels --types w4a16 --shapes 64x64 --n 1 --threads 1 --runs 1 -r 1 2>&1 | sed -n 's/^isa \([a-z0-9-]*\);.*/\1/p'; }
top=$(isa_of "")
case $top in
  avx512-bf16|amx)
    a=$(isa_of avx512); b=$(isa_of avx512-vnni); c=$(isa_of avx512-bf16)
    if [ "$a" = avx512-vnni ] && [ "$b" = avx512-vnni ] && [ "$c" = avx512-bf16 ]; then ok cli_isa_caps_bf16
    else bad cli_isa_caps_bf16 "DS8B_ISA=avx512 -> $a, avx512-vnni -> $b, avx512-bf16 -> $c"; fi ;;
  "") bad cli_isa_caps_bf16 "no isa line from bench --kernels" ;;
  *) echo "ok cli_isa_caps_bf16 # SKIP this CPU's top level is $top, not avx512-bf16" ;;
esac

# ------------------------------------------------- every command covered
"$CLI" help >"$tmp/help" 2>&1
listed=$(sed -nE 's/^  ([a-z][a-z-]*)  .*/\1/p' "$tmp/help" | sort -u)
missing=""
for c in $listed; do
  grep -q "^$c|" <<<"$CASES" || missing="$missing $c(refusals)"
  grep -q "^$c|" <<<"$GOOD" || missing="$missing $c(good)"
done
if [ -n "$listed" ] && [ -z "$missing" ]; then ok cli_every_command_tested
else bad cli_every_command_tested "help lists: $(echo $listed)" "without test lines:$missing"; fi

# help lists every declared option of every command: each option named in
# a refusal above appears in `ds8b help`
missing=""
for o in --temp --system --ids --ctx --windows --top-k --base --seed --kv-type --batch --threads --tokenizer \
         --shard-gb --no-echo --skip-special --no-generation-prompt --kernels --rowwise --verbose --stop; do
  grep -qF -- "$o" "$tmp/help" || missing="$missing $o"
done
if [ -z "$missing" ]; then ok cli_help_lists_options; else bad cli_help_lists_options "not in help:$missing"; fi
