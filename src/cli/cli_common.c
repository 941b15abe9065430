/*
 * cli_common.c -- helpers shared by the ds8b commands: error and usage
 * messages, reading stdin, id arrays, loading a model, session params from
 * the common sampling options.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

double cli_now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double cli_peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0);
}

int cli_fail(const char *what, int rc) {
    fprintf(stderr, "ds8b: %s: %s (%s)\n", what, ds8b_errmsg(), ds8b_errstr(rc));
    return 1;
}

int cli_usage(const cli_args *a, const char *fmt, ...) {
    const char *name = a->cmd->name;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ds8b: %s: ", name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'ds8b help %s' for usage.\n", name);
    return 2;
}

/* ================================================================== */
/* Parsed options                                                      */
/* ================================================================== */
const char *cli_opt_nth(const cli_args *a, const char *name, int i) {
    for (int k = 0; k < a->n; k++)
        if (strcmp(a->given[k].def->name, name) == 0 && i-- == 0) return a->given[k].value;
    return NULL;
}

const char *cli_opt(const cli_args *a, const char *name) { return cli_opt_nth(a, name, 0); }

bool cli_flag(const cli_args *a, const char *name) {
    for (int k = 0; k < a->n; k++)
        if (strcmp(a->given[k].def->name, name) == 0) return true;
    return false;
}

bool cli_int(const cli_args *a, const char *name, int64_t *v) {
    const char *s = cli_opt(a, name);
    if (!s) return false;
    *v = strtoll(s, NULL, 10);
    return true;
}

bool cli_float(const cli_args *a, const char *name, double *v) {
    const char *s = cli_opt(a, name);
    return s && cli_num(s, v);
}

int cli_parse_ints(const char *s, int64_t *out, int max) {
    int n = 0;
    while (s && *s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || (*end && *end != ',') || n >= max) return -1;
        out[n++] = v;
        s = *end ? end + 1 : end;
        if (*end && !*s) return -1; /* a trailing comma */
    }
    return n;
}

bool cli_num(const char *s, double *v) {
    if (!s) return false;
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return errno == 0 && end != s && *end == 0;
}

char *cli_read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ds8b: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = cli_read_all(f, len);
    if (!buf || ferror(f)) {
        fprintf(stderr, "ds8b: cannot read %s\n", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* Parses a JSON array of integers. */
int32_t *cli_parse_ids(const char *json, size_t *n) {
    cJSON *a = cJSON_Parse(json);
    if (!a || !cJSON_IsArray(a)) { cJSON_Delete(a); return NULL; }
    int cnt = cJSON_GetArraySize(a);
    int32_t *ids = malloc((size_t)(cnt ? cnt : 1) * sizeof *ids);
    int i = 0;
    for (cJSON *it = a->child; it && ids; it = it->next) {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
            it->valuedouble < INT32_MIN || it->valuedouble > INT32_MAX) {
            free(ids);
            ids = NULL;
            break;
        }
        ids[i++] = (int32_t)it->valuedouble;
    }
    cJSON_Delete(a);
    *n = (size_t)i;
    return ids;
}

static void log_stderr(void *user, int level, const char *msg) {
    int verbose = *(int *)user;
    if (level <= DS8B_LOG_WARN || verbose) fprintf(stderr, "ds8b: %s\n", msg);
}
static int g_verbose;

/* Loads a model with params built from the common options. */
int cli_load(const cli_args *a, const char *path, ds8b_model **m) {
    ds8b_params *p;
    if (ds8b_params_create(&p)) return 1;
    g_verbose = cli_flag(a, "--verbose");
    ds8b_params_set_log(p, log_stderr, &g_verbose);
    int64_t mm;
    if (cli_int(a, "--mmap", &mm)) ds8b_params_set_int(p, DS8B_PARAM_USE_MMAP, mm);
    int rc = ds8b_model_load(path, p, m);
    ds8b_params_free(p);
    return rc ? cli_fail("loading the model", rc) : 0;
}

/* ================================================================== */
/* The shared option sets                                              */
/* ================================================================== */
const cli_optdef cli_load_opts[] = {
    {"--verbose", CLI_FLAG, NULL, 0, "-v"},
    {0},
};

/* Sampling and session options: each sets the ds8b_param in its last field. */
const cli_optdef cli_session_opts[] = {
    {"-n", CLI_INT, "N", 0, NULL, DS8B_PARAM_MAX_TOKENS},
    {"--temp", CLI_FLOAT, "T", 0, NULL, DS8B_PARAM_TEMPERATURE},
    {"--top-k", CLI_INT, "K", 0, NULL, DS8B_PARAM_TOP_K},
    {"--top-p", CLI_FLOAT, "P", 0, NULL, DS8B_PARAM_TOP_P},
    {"--min-p", CLI_FLOAT, "P", 0, NULL, DS8B_PARAM_MIN_P},
    {"--repeat-penalty", CLI_FLOAT, "R", 0, NULL, DS8B_PARAM_REPEAT_PENALTY},
    {"--repeat-last-n", CLI_INT, "N", 0, NULL, DS8B_PARAM_REPEAT_LAST_N},
    {"--seed", CLI_INT, "S", 0, NULL, DS8B_PARAM_SEED},
    {"--threads", CLI_INT, "N", 0, "-t", DS8B_PARAM_N_THREADS},
    {"--ctx", CLI_INT, "N", 0, "-c", DS8B_PARAM_N_CTX},
    {"--batch", CLI_INT, "N", 0, NULL, DS8B_PARAM_N_BATCH},
    {"--kv-type", CLI_STR, "f32|f16|q8_0", 0, NULL, DS8B_PARAM_KV_TYPE},
    {"--spec", CLI_STR, "off|auto|on", 0, NULL, DS8B_PARAM_SPEC},
    {"--max-draft", CLI_INT, "K", 0, NULL, DS8B_PARAM_SPEC_MAX_DRAFT},
    {"--stop", CLI_STR, "STR", CLI_MULTI},
    {0},
};

int cli_open(const cli_args *a, const char *path, ds8b_model **m, ds8b_session **s) {
    ds8b_params *p = cli_session_params(a);
    if (!p) return 2;
    if (cli_load(a, path, m)) { ds8b_params_free(p); return 1; }
    int rc = ds8b_session_create(*m, p, s);
    ds8b_params_free(p);
    if (rc) {
        ds8b_model_free(*m);
        *m = NULL;
        return cli_fail("creating the session", rc);
    }
    return 0;
}

/* Session params from the session options given. Returns NULL after
 * printing on error. */
ds8b_params *cli_session_params(const cli_args *a) {
    ds8b_params *p;
    if (ds8b_params_create(&p)) return NULL;
    for (int k = 0; k < a->n; k++) {
        const cli_optdef *d = a->given[k].def;
        const char *v = a->given[k].value;
        int rc = DS8B_OK;
        if (d->param == DS8B_PARAM_KV_TYPE) {
            int kv = strcmp(v, "f32") == 0 ? DS8B_KV_F32 : strcmp(v, "f16") == 0 ? DS8B_KV_F16
                   : strcmp(v, "q8_0") == 0 ? DS8B_KV_Q8_0 : -1;
            rc = ds8b_params_set_int(p, d->param, kv);
        } else if (d->param == DS8B_PARAM_SPEC) {
            int sp = strcmp(v, "off") == 0 ? DS8B_SPEC_OFF : strcmp(v, "auto") == 0 ? DS8B_SPEC_AUTO
                   : strcmp(v, "on") == 0 ? DS8B_SPEC_ON : -1;
            rc = ds8b_params_set_int(p, d->param, sp);
        } else if (d->param && d->type == CLI_FLOAT) {
            rc = ds8b_params_set_float(p, d->param, strtod(v, NULL));
        } else if (d->param && d->type == CLI_INT) {
            rc = ds8b_params_set_int(p, d->param, strtoll(v, NULL, 10));
        } else if (strcmp(d->name, "--stop") == 0) {
            rc = ds8b_params_add_stop(p, v);
        }
        if (rc) {
            fprintf(stderr, "ds8b: %s %s: %s\n", d->name, v, ds8b_errmsg());
            ds8b_params_free(p);
            return NULL;
        }
    }
    return p;
}
