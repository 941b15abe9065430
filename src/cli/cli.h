/* cli.h -- helpers shared by the ds8b command-line tool's source files. */
#ifndef DS8B_CLI_H
#define DS8B_CLI_H

#include "ds8b.h"

#include <stdbool.h>
#include <stdio.h>

int cli_fail(const char *what, int rc);
int cli_usage(const char *msg);
const char *cli_opt(int argc, char **argv, const char *name);
bool cli_flag(int argc, char **argv, const char *name);
bool cli_num(const char *s, double *v);
char *cli_read_all(FILE *f, size_t *len);
int32_t *cli_parse_ids(const char *json, size_t *n);
int cli_load(int argc, char **argv, const char *path, ds8b_model **m);
ds8b_params *cli_session_params(int argc, char **argv);

/* cli_tools.c: quantize, bench, make-random, estimate, chat... Returns -1
 * for an unknown command. */
int cli_dispatch_extra(const char *cmd, int argc, char **argv);
void cli_usage_extra(void);
void cli_info_extra(const ds8b_model *m, int argc, char **argv);
/* cli_kbench.c: `ds8b bench --kernels` (matmul throughput per weight type). */
int cli_bench_kernels(int argc, char **argv);
/* cli_spec.c: `ds8b bench --pass-cost` and `ds8b bench --spec-prompt FILE`. */
int cli_bench_pass_cost(int argc, char **argv, ds8b_model *m);
int cli_bench_spec(int argc, char **argv, ds8b_model *m);

#endif
