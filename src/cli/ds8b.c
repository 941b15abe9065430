/*
 * ds8b -- the command-line tool of libds8b: main, the command table and
 * `ds8b help`. The commands live in cmd_*.c, one file per group.
 *
 * Exit status: 0 on success, 1 on a library error (message on stderr),
 * 2 on a usage error.
 *
 * Adding a command: write `int cmd_NAME(int argc, char **argv)` in the
 * cmd_*.c file of its group (or a new cmd_GROUP.c: the Makefile builds every
 * .c file in src/cli), declare it in cli.h, and add its row to `commands` below.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static int cmd_version(int argc, char **argv) {
    printf("ds8b %s\n", ds8b_version());
    return 0;
}

static const cli_command commands[] = {
    {"generate", cmd_generate, "text",
     "-m PATH -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
     "[--repeat-penalty R] [--seed S] [--threads N] [--ctx N] [--stop STR]\n"
     "[--reasoning] [--color] [--raw] [--no-echo] [--stats]\n"
     "[--grammar-file FILE.gbnf | --json-schema FILE.json]"},
    {"chat", cmd_chat, "text", "-m PATH [--system TEXT] [sampling options]"},
    {"tokenize", cmd_tokenize, "tokens", "-m PATH [--special] [--no-parse-special] [--jsonl]   (text on stdin)"},
    {"detokenize", cmd_detokenize, "tokens", "-m PATH [--skip-special]                             (JSON ids on stdin)"},
    {"chat-template", cmd_chat_template, "tokens", "-m PATH [--no-generation-prompt]   (JSON messages on stdin)"},
    {"eval", cmd_eval, "evaluation", "-m PATH --ids JSON_ARRAY --logits-out FILE"},
    {"perplexity", cmd_perplexity, "evaluation", "-m PATH --windows FILE [--lang L] [--base FLOAT_MODEL]"},
    {"kld", cmd_kld, "evaluation",
     "-m QUANT --base FLOAT --windows FILE [--lang L]\n"
     "(FILE: JSON array of id arrays, or a reference file with perplexity windows)"},
    {"info", cmd_info, "model files", "PATH"},
    {"estimate", cmd_estimate, "model files", "PATH [--ctx N] [--batch N] [--kv-type f32|f16|q8_0] [--threads N]"},
    {"quantize", cmd_quantize, "model files", "IN OUT SCHEME [--threads N]     (f32 f16 bf16 q8_0 q4_0 q4_k_m w4a16; writes GGUF)"},
    {"convert", cmd_convert, "model files", "IN OUT [f16|bf16|f32]           (HF checkpoint to GGUF without quantizing)"},
    {"make-random", cmd_make_random, "model files", "CONFIG.json OUTDIR [--tokenizer DIR] [--seed S] [--shard-gb G]"},
    {"bench", cmd_bench, "benchmarks",
     "-m PATH [-p 512] [-n 128] [-r 3] [--threads N] [--seqs 1,2,4,8,16]\n"
     "-m PATH -n 128 -r 3 --grammar FILE.gbnf     (decode with and without the grammar)\n"
     "--kernels [--types q4_0,q2_k,...] [--shapes 4096x4096,...] [--n 1,16] [--threads 1,2] [--rowwise]"},
    {"grammar", cmd_grammar, "grammars", "--check FILE.gbnf | --json-schema FILE.json\n"
     "(lines {\"text\": ...} on stdin; one {\"accept\": true|false} per line)"},
    {"version", cmd_version, "other", ""},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

/* One command's lines: the name, then its usage lines under one another. */
static void usage_of(FILE *f, const cli_command *c) {
    const char *u = c->usage;
    do {
        size_t len = strcspn(u, "\n");
        fprintf(f, "  %-13s %.*s\n", u == c->usage ? c->name : "", (int)len, u);
        u += len + (u[len] == '\n');
    } while (*u);
}

static void usage(FILE *f) {
    fputs("usage: ds8b COMMAND [options]\n", f);
    for (int i = 0; i < N_COMMANDS; i++) {
        if (i == 0 || strcmp(commands[i].group, commands[i - 1].group) != 0)
            fprintf(f, "%s%s:\n", i ? "\n" : "", commands[i].group);
        usage_of(f, &commands[i]);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *name = strcmp(argv[1], "--version") == 0 ? "version" : argv[1];
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "ds8b: unknown command '%s'\n", argv[1]);
    usage(stdout);
    return 2;
}
