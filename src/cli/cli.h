/* cli.h -- what the ds8b command-line tool's source files share: the
 * command table's entry type, the commands (one group per cmd_*.c file) and
 * the helpers of cli_common.c. ds8b.c says how to add a command. */
#ifndef DS8B_CLI_H
#define DS8B_CLI_H

#include "ds8b.h"

#include <stdbool.h>
#include <stdio.h>

/* One row of the command table in ds8b.c. */
typedef struct cli_command {
    const char *name;                   /* as typed: "generate" */
    int (*run)(int argc, char **argv);  /* argv: what follows the name */
    const char *group;                  /* heading in `ds8b help` */
    const char *usage;                  /* its lines in `ds8b help` */
} cli_command;

/* cmd_generate.c */
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
/* cmd_tokens.c */
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
/* cmd_eval.c */
int cmd_eval(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_kld(int argc, char **argv);
/* cmd_model.c */
int cmd_info(int argc, char **argv);
int cmd_estimate(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_make_random(int argc, char **argv);
/* cmd_bench.c; cli_kbench.c: `ds8b bench --kernels` (matmul throughput per weight type) */
int cmd_bench(int argc, char **argv);
int cli_bench_kernels(int argc, char **argv);
/* cmd_grammar.c: ds8b grammar --check; generate --grammar-file; bench --grammar */
int cmd_grammar(int argc, char **argv);
ds8b_grammar *cli_grammar_load(const char *path);
ds8b_grammar *cli_schema_load(const char *path);
int cli_bench_grammar(ds8b_model *m, const char *gpath, int tg, int reps, int threads);
/* cmd_template.c */
int cmd_chat_template(int argc, char **argv);

/* cli_common.c */
int cli_fail(const char *what, int rc);   /* prints the library error; returns 1 */
int cli_usage(const char *msg);           /* prints a usage error; returns 2 */
const char *cli_opt(int argc, char **argv, const char *name);
bool cli_flag(int argc, char **argv, const char *name);
bool cli_num(const char *s, double *v);
char *cli_read_all(FILE *f, size_t *len);
int32_t *cli_parse_ids(const char *json, size_t *n);
int cli_load(int argc, char **argv, const char *path, ds8b_model **m);
ds8b_params *cli_session_params(int argc, char **argv);
double cli_now_s(void);
double cli_peak_rss_gb(void);

#endif
