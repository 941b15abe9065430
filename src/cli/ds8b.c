/*
 * ds8b -- the command-line tool of libds8b: main, the command table, the
 * one option parser all commands share, and `ds8b help`. The commands live
 * in cmd_*.c, one file per group.
 *
 * Exit status: 0 on success, 1 on a library error (message on stderr),
 * 2 on a usage error: an unknown command or option, an option without its
 * value, a value that is not the number it must be, a required option or
 * argument missing, an option given twice, an argument too many.
 *
 * Syntax every command shares: options and positionals in any order; a
 * value follows its option ("--temp 0.7") or, for long options, an "="
 * ("--temp=0.7"); a value is missing when the option ends the line or is
 * followed by another option of the command (a negative number excepted);
 * "--" ends the options; "-h"/"--help" prints the command's usage.
 *
 * Adding an option: one line in the command's option array in its cmd_*.c
 * file, e.g. in generate_opts
 *     {"--grammar-file", CLI_STR, "FILE"},
 * (name, CLI_FLAG/CLI_STR/CLI_INT/CLI_FLOAT/CLI_INTS, the value's name for
 * help, then optionally CLI_REQ|CLI_MULTI and an alias such as "-t"); the
 * handler reads it with cli_opt/cli_flag/cli_int/cli_float(a, "--grammar-file").
 * The parser has already refused anything undeclared, a missing value and
 * a bad number, and `ds8b help` lists the new option. A sampling/session
 * option that every generating command takes is one line in
 * cli_session_opts (cli_common.c), with the ds8b_param it sets.
 *
 * Adding a command: write `int cmd_NAME(const cli_args *a)` and its
 * `const cli_optdef NAME_opts[]` (ending with {0}) in the cmd_*.c file of
 * its group, or in a new cmd_GROUP.c (the Makefile builds every .c file in
 * src/cli); declare both in cli.h; add its row to `commands` below: name,
 * handler, group, options, shared option sets (CLI_SET_SESSION for the
 * sampling options, CLI_SET_LOAD for -v), positionals ("IN OUT [TYPE]":
 * bracketed ones optional, "..." after the last for any number) and a
 * help note.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmd_help(const cli_args *a);

static int cmd_version(const cli_args *a) {
    printf("ds8b %s\n", ds8b_version());
    return 0;
}

/* ================================================================== */
/* The command table                                                   */
/* ================================================================== */
enum { S = CLI_SET_SESSION, L = CLI_SET_LOAD };

static const cli_command commands[] = {
    {"generate", cmd_generate, "text", generate_opts, S | L, NULL, NULL},
    {"chat", cmd_chat, "text", chat_opts, S | L, NULL, "a conversation: one user message per line on stdin"},
    {"tokenize", cmd_tokenize, "tokens", tokenize_opts, 0, NULL, "text on stdin; --jsonl: lines {\"text\": ...}"},
    {"detokenize", cmd_detokenize, "tokens", detokenize_opts, 0, NULL, "a JSON array of ids on stdin"},
    {"chat-template", cmd_chat_template, "tokens", chat_template_opts, 0, NULL, "JSON messages on stdin"},
    {"eval", cmd_eval, "evaluation", eval_opts, S | L, NULL, "writes float32 logits, one row per id"},
    {"perplexity", cmd_perplexity, "evaluation", perplexity_opts, S | L, NULL,
     "FILE: JSON array of id arrays, or a reference file with perplexity windows"},
    {"kld", cmd_kld, "evaluation", perplexity_opts, S | L, NULL,
     "-m QUANT --base FLOAT: KL divergence and top-1 agreement against the base"},
    {"info", cmd_info, "model files", info_opts, S | L, "[PATH]", "PATH or -m PATH"},
    {"estimate", cmd_estimate, "model files", info_opts, S, "[PATH]", "memory per category and scheme; PATH or -m PATH"},
    {"quantize", cmd_quantize, "model files", quantize_opts, 0, "IN OUT SCHEME",
     "SCHEME: f32 f16 bf16 q8_0 q6_k q5_k_m q5_0 q4_k_m q4_0 q3_k_m q2_k w4a16; writes GGUF; "
     "--imatrix FILE (llama.cpp's, GGUF or .dat) or --calibrate TEXT_FILE: importance-weighted"},
    {"imatrix", cmd_imatrix, "model files", imatrix_opts, 0, NULL,
     "-m FLOAT_MODEL -f TEXT_FILE -o OUT.gguf: importance matrix in llama.cpp's GGUF imatrix format"},
    {"convert", cmd_convert, "model files", quantize_opts, 0, "IN OUT [f16|bf16|f32]",
     "HF checkpoint to GGUF without quantizing"},
    {"make-random", cmd_make_random, "model files", make_random_opts, 0, "CONFIG.json OUTDIR",
     "a full-size bf16 checkpoint with random weights"},
    {"bench", cmd_bench, "benchmarks", bench_opts, L, NULL,
     "-m PATH: pp/tg speed (--depth D: after D tokens of context, as llama-bench -d; --seqs: batched decoding); --kernels: matmul kernels alone, no model; "
     "--pass-cost: a speculation pass of k+1 positions vs 1; --spec-prompt FILE: speculation end to end; "
     "--grammar FILE.gbnf: decoding with and without the grammar"},
    {"grammar", cmd_grammar, "grammars", grammar_opts, 0, "[FILE.gbnf]",
     "--check FILE.gbnf or --json-schema FILE.json: lines {\"text\": ...} on stdin, one {\"accept\": true|false} per line"},
    {"help", cmd_help, "other", NULL, 0, "[COMMAND]", NULL},
    {"version", cmd_version, "other", NULL, 0, NULL, NULL},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static const struct { int bit; const char *name; const cli_optdef *opts; } sets[] = {
    {CLI_SET_SESSION, "session options", cli_session_opts},
    {CLI_SET_LOAD, "loading options", cli_load_opts},
};
enum { N_SETS = sizeof sets / sizeof sets[0] };

static const cli_command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* ================================================================== */
/* Help                                                                */
/* ================================================================== */
typedef struct line { FILE *f; int col; } line;

/* Appends one word to a help line, wrapping at 100 columns under the indent. */
static void word(line *l, const char *w, int indent) {
    int len = (int)strlen(w);
    if (l->col > indent && l->col + 1 + len > 100) {
        fprintf(l->f, "\n%*s", indent, "");
        l->col = indent;
    }
    if (l->col > indent) { fputc(' ', l->f); l->col++; }
    fputs(w, l->f);
    l->col += len;
}

static void opt_words(line *l, const cli_optdef *d, int indent) {
    char w[160];
    const char *nm = d->name;
    char both[64];
    if (d->alias) { snprintf(both, sizeof both, "%s|%s", d->alias, d->name); nm = both; }
    const char *meta = d->type == CLI_FLAG ? NULL : d->meta ? d->meta : "VALUE";
    snprintf(w, sizeof w, "%s%s%s%s%s%s", d->flags & CLI_REQ ? "" : "[", nm, meta ? " " : "", meta ? meta : "",
             d->flags & CLI_REQ ? "" : "]", d->flags & CLI_MULTI ? "..." : "");
    word(l, w, indent);
}

static void usage_of(FILE *f, const cli_command *c) {
    line l = {f, 0};
    int indent = 17;
    fprintf(f, "  %-14s ", c->name);
    l.col = indent;
    if (c->args) word(&l, c->args, indent);
    for (int pass = 0; pass < 2; pass++) /* required options first */
        for (const cli_optdef *d = c->opts; d && d->name; d++)
            if ((d->flags & CLI_REQ) ? pass == 0 : pass == 1) opt_words(&l, d, indent);
    for (int s = 0; s < N_SETS; s++)
        if (c->sets & sets[s].bit) {
            char w[64];
            snprintf(w, sizeof w, "[%s]", sets[s].name);
            word(&l, w, indent);
        }
    fputc('\n', f);
    if (c->note) fprintf(f, "%*s(%s)\n", indent, "", c->note);
}

static void usage_sets(FILE *f, int bits) {
    for (int s = 0; s < N_SETS; s++) {
        if (!(bits & sets[s].bit)) continue;
        line l = {f, 0};
        fprintf(f, "  %s:", sets[s].name);
        l.col = 3 + (int)strlen(sets[s].name);
        if (l.col < 17) { fprintf(f, "%*s", 17 - l.col, ""); l.col = 17; }
        for (const cli_optdef *d = sets[s].opts; d->name; d++) opt_words(&l, d, 17);
        fputc('\n', f);
    }
}

static void usage(FILE *f) {
    fputs("usage: ds8b COMMAND [options]      (ds8b help COMMAND: one command)\n", f);
    int bits = 0;
    for (int i = 0; i < N_COMMANDS; i++) {
        if (i == 0 || strcmp(commands[i].group, commands[i - 1].group) != 0)
            fprintf(f, "\n%s:\n", commands[i].group);
        usage_of(f, &commands[i]);
        bits |= commands[i].sets;
    }
    fputs("\nshared by the commands that list them:\n", f);
    usage_sets(f, bits);
    fputs("\nexit status: 0 ok, 1 library error, 2 usage error\n", f);
}

static int cmd_help(const cli_args *a) {
    if (a->npos == 0) { usage(stdout); return 0; }
    const cli_command *c = find_command(a->pos[0]);
    if (!c) {
        fprintf(stderr, "ds8b: help: unknown command '%s'\n", a->pos[0]);
        return 2;
    }
    usage_of(stdout, c);
    usage_sets(stdout, c->sets);
    return 0;
}

/* ================================================================== */
/* The option parser                                                   */
/* ================================================================== */
/* The declaration of option `name` (or of its alias) for command c. */
static const cli_optdef *find_opt(const cli_command *c, const char *name, size_t len) {
    for (int s = -1; s < N_SETS; s++) {
        const cli_optdef *d = s < 0 ? c->opts : c->sets & sets[s].bit ? sets[s].opts : NULL;
        for (; d && d->name; d++)
            if ((strlen(d->name) == len && strncmp(d->name, name, len) == 0) ||
                (d->alias && strlen(d->alias) == len && strncmp(d->alias, name, len) == 0))
                return d;
    }
    return NULL;
}

static bool is_int(const char *v) {
    char *end;
    errno = 0;
    (void)strtoll(v, &end, 10);
    return end != v && *end == 0 && errno == 0;
}

static bool value_ok(cli_type t, const char *v) {
    double d;
    switch (t) {
    case CLI_INT: return is_int(v);
    case CLI_FLOAT: return cli_num(v, &d) && isfinite(d);
    case CLI_INTS: {
        /* every comma-separated item a whole number */
        for (const char *p = v;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char item[32];
            if (len == 0 || len >= sizeof item) return false;
            memcpy(item, p, len);
            item[len] = 0;
            if (!is_int(item)) return false;
            if (!comma) break;
            p = comma + 1;
        }
        return true;
    }
    default: return true;
    }
}

static const char *type_name(cli_type t) {
    return t == CLI_INT ? "a whole number" : t == CLI_FLOAT ? "a number" : "whole numbers separated by commas";
}

/* Positionals the command takes: counts the words of c->args; bracketed
 * ones are optional, a trailing "..." allows any number. */
static void arg_counts(const cli_command *c, int *min, int *max) {
    *min = *max = 0;
    for (const char *p = c->args; p && *p;) {
        p += strspn(p, " ");
        if (!*p) break;
        size_t len = strcspn(p, " ");
        if (len == 3 && strncmp(p, "...", 3) == 0) *max = 1 << 30;
        else {
            if (*p != '[') ++*min;
            ++*max;
        }
        p += len;
    }
}

/* Fills a from argv (what follows the command's name). Returns 0, or 2
 * after printing a usage error; -1 when help was asked for. */
static int parse(const cli_command *c, int argc, char **argv, cli_args *a) {
    a->cmd = c;
    a->npos = a->n = 0;
    bool opts_end = false;
    for (int i = 0; i < argc; i++) {
        char *arg = argv[i];
        if (opts_end || arg[0] != '-' || arg[1] == 0) { a->pos[a->npos++] = arg; continue; }
        if (strcmp(arg, "--") == 0) { opts_end = true; continue; }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return -1;
        /* --name=value */
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        const cli_optdef *d = find_opt(c, arg, nlen);
        if (!d) {
            char nm[128];
            snprintf(nm, sizeof nm, "%.*s", (int)(nlen < 100 ? nlen : 100), arg);
            return cli_usage(a, "unknown option '%s'", nm);
        }
        const char *v = NULL;
        if (d->type == CLI_FLAG) {
            if (eq) return cli_usage(a, "%s takes no value", d->name);
        } else if (eq) {
            v = eq + 1;
        } else {
            /* a value is missing at the end, or where an option of this
             * command follows (unless it could be a negative number) */
            if (i + 1 >= argc) return cli_usage(a, "%s needs a value (%s)", arg, d->meta ? d->meta : "VALUE");
            const char *nx = argv[i + 1];
            if (nx[0] == '-' && nx[1] && find_opt(c, nx, strcspn(nx, "=")) && !(d->type != CLI_STR && value_ok(d->type, nx)))
                return cli_usage(a, "%s needs a value (%s)", arg, d->meta ? d->meta : "VALUE");
            v = argv[++i];
        }
        if (v && !value_ok(d->type, v)) {
            return cli_usage(a, "%s needs %s, got '%s'", d->name, type_name(d->type), v);
        }
        if (!(d->flags & CLI_MULTI) && (cli_flag(a, d->name)))
            return cli_usage(a, "%s given twice", d->name);
        a->given[a->n].def = d;
        a->given[a->n].value = v;
        a->n++;
    }
    for (int s = -1; s < N_SETS; s++) {
        const cli_optdef *d = s < 0 ? c->opts : c->sets & sets[s].bit ? sets[s].opts : NULL;
        for (; d && d->name; d++)
            if ((d->flags & CLI_REQ) && !cli_flag(a, d->name))
                return cli_usage(a, "needs %s %s", d->name, d->meta ? d->meta : "");
    }
    int min, max;
    arg_counts(c, &min, &max);
    if (a->npos > max) return cli_usage(a, "unexpected argument '%s'", a->pos[max]);
    if (a->npos < min) return cli_usage(a, "needs %s", c->args);
    return 0;
}

/* ================================================================== */
/* main                                                                */
/* ================================================================== */
int main(int argc, char **argv) {
    const char *name = argc < 2 ? "help" : argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) name = "help";
    if (strcmp(name, "--version") == 0) name = "version";
    const cli_command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "ds8b: unknown command '%s'\n", name);
        usage(stderr);
        return 2;
    }
    int ac = argc < 2 ? 0 : argc - 2;
    cli_args a;
    a.pos = malloc((size_t)(ac + 1) * sizeof *a.pos);
    a.given = malloc((size_t)(ac + 1) * sizeof *a.given);
    if (!a.pos || !a.given) {
        free(a.pos);
        free(a.given);
        fprintf(stderr, "ds8b: out of memory\n");
        return 1;
    }
    int rc = parse(c, ac, argv + 2, &a);
    if (rc < 0) {
        usage_of(stdout, c);
        usage_sets(stdout, c->sets);
        rc = 0;
    } else if (rc == 0) {
        rc = c->run(&a);
    }
    free(a.pos);
    free(a.given);
    return argc < 2 ? 2 : rc;
}
