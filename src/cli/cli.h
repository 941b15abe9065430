/* cli.h -- what the ds8b command-line tool's source files share: option
 * declarations and parsed arguments, the commands (one group per cmd_*.c
 * file) and the helpers of cli_common.c. ds8b.c says how to add a command
 * or an option. */
#ifndef DS8B_CLI_H
#define DS8B_CLI_H

#include "ds8b.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Option and command rows leave their trailing fields out ({"--raw",
 * CLI_FLAG}): they are zero, which is what they mean. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */
typedef enum cli_type {
    CLI_FLAG,   /* no value */
    CLI_STR,    /* any value */
    CLI_INT,    /* a whole number (int64) */
    CLI_FLOAT,  /* a finite number */
    CLI_INTS,   /* whole numbers separated by commas: 1,2,4 */
} cli_type;

enum {
    CLI_REQ = 1,    /* must be given */
    CLI_MULTI = 2,  /* may be given more than once (else twice is an error) */
};

/* One option of a command: {"--temp", CLI_FLOAT, "T"}. An array of them
 * ends with {0}. */
typedef struct cli_optdef {
    const char *name;   /* "--threads": the name handlers ask for */
    cli_type type;
    const char *meta;   /* the value's name in help: "N", "FILE"; NULL for flags */
    int flags;          /* CLI_REQ, CLI_MULTI */
    const char *alias;  /* another spelling: "-t"; or NULL */
    int param;          /* ds8b_param that cli_session_params() sets from it; 0: none */
} cli_optdef;

/* Option sets shared by several commands (a command's `sets` bits). */
enum {
    CLI_SET_SESSION = 1,  /* sampling and session params: cli_session_params() */
    CLI_SET_LOAD = 2,     /* loading a model: cli_load() (-v) */
};

struct cli_args;

/* One row of the command table in ds8b.c. */
typedef struct cli_command {
    const char *name;                       /* as typed: "generate" */
    int (*run)(const struct cli_args *a);
    const char *group;                      /* heading in `ds8b help` */
    const cli_optdef *opts;                 /* its own options, or NULL */
    int sets;                               /* CLI_SET_* it accepts too */
    const char *args;                       /* positionals: "IN OUT [TYPE]", or NULL */
    const char *note;                       /* a line for help, or NULL */
} cli_command;

/* What the shared parser made of one command line. */
typedef struct cli_given {
    const cli_optdef *def;
    const char *value;  /* NULL for flags */
} cli_given;

typedef struct cli_args {
    const cli_command *cmd;
    int npos;
    char **pos;         /* positionals, in order */
    int n;
    cli_given *given;   /* options, in the order given */
} cli_args;

/* The value of option `name` (its declared name, not an alias), or NULL
 * when it was not given; cli_opt_nth walks a CLI_MULTI option's values. */
const char *cli_opt(const cli_args *a, const char *name);
const char *cli_opt_nth(const cli_args *a, const char *name, int i);
bool cli_flag(const cli_args *a, const char *name);
/* true and *v set when given (the parser checked that it is a number) */
bool cli_int(const cli_args *a, const char *name, int64_t *v);
bool cli_float(const cli_args *a, const char *name, double *v);
/* Parses "1,2,4" into out[0..max); returns the count, or -1. */
int cli_parse_ints(const char *s, int64_t *out, int max);
bool cli_num(const char *s, double *v);

/* ------------------------------------------------------------------ */
/* Commands, by file                                                   */
/* ------------------------------------------------------------------ */
extern const cli_optdef cli_session_opts[], cli_load_opts[];  /* cli_common.c */

extern const cli_optdef generate_opts[], chat_opts[];                 /* cmd_generate.c */
int cmd_generate(const cli_args *a);
int cmd_chat(const cli_args *a);
extern const cli_optdef tokenize_opts[], detokenize_opts[];           /* cmd_tokens.c */
int cmd_tokenize(const cli_args *a);
int cmd_detokenize(const cli_args *a);
extern const cli_optdef chat_template_opts[];                         /* cmd_template.c */
int cmd_chat_template(const cli_args *a);
extern const cli_optdef eval_opts[], perplexity_opts[];               /* cmd_eval.c */
int cmd_eval(const cli_args *a);
int cmd_perplexity(const cli_args *a);
int cmd_kld(const cli_args *a);
extern const cli_optdef info_opts[], quantize_opts[], imatrix_opts[], make_random_opts[];  /* cmd_model.c */
int cmd_info(const cli_args *a);
int cmd_estimate(const cli_args *a);
int cmd_quantize(const cli_args *a);
int cmd_imatrix(const cli_args *a);
int cmd_convert(const cli_args *a);
int cmd_make_random(const cli_args *a);
extern const cli_optdef bench_opts[];                                 /* cmd_bench.c */
int cmd_bench(const cli_args *a);
int cli_bench_kernels(const cli_args *a);                             /* cli_kbench.c */
/* cli_spec.c: bench --pass-cost and --spec-prompt FILE (speculative decoding) */
int cli_bench_pass_cost(const cli_args *a, ds8b_model *m);
int cli_bench_spec(const cli_args *a, ds8b_model *m);
/* cmd_grammar.c: ds8b grammar --check; generate --grammar-file/--json-schema; bench --grammar */
extern const cli_optdef grammar_opts[];
int cmd_grammar(const cli_args *a);
ds8b_grammar *cli_grammar_load(const char *path);
ds8b_grammar *cli_schema_load(const char *path);
int cli_bench_grammar(ds8b_model *m, const char *gpath, int tg, int reps, int threads);

/* ------------------------------------------------------------------ */
/* Helpers (cli_common.c)                                              */
/* ------------------------------------------------------------------ */
int cli_fail(const char *what, int rc);   /* prints the library error; returns 1 */
/* Prints "ds8b: COMMAND: message" and where help is; returns 2 (usage error). */
int cli_usage(const cli_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents of a file (NUL-terminated), or NULL after printing why. */
char *cli_read_file(const char *path, size_t *len);
char *cli_read_all(FILE *f, size_t *len);
int32_t *cli_parse_ids(const char *json, size_t *n);
int cli_load(const cli_args *a, const char *path, ds8b_model **m);
/* The model at path and a session on it with the session options given:
 * returns 0, or the exit status after printing why. */
int cli_open(const cli_args *a, const char *path, ds8b_model **m, ds8b_session **s);
ds8b_params *cli_session_params(const cli_args *a);
double cli_now_s(void);
double cli_peak_rss_gb(void);

#endif
