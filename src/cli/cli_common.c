/*
 * cli_common.c -- helpers shared by the ds8b commands: error and usage
 * messages, reading stdin, id arrays, loading a model, session params from
 * the common sampling options.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
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

int cli_usage(const char *msg) {
    fprintf(stderr, "ds8b: %s\nRun 'ds8b help' for usage.\n", msg);
    return 2;
}

const char *cli_opt(int argc, char **argv, const char *name) {
    for (int i = 0; i < argc - 1; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

bool cli_flag(int argc, char **argv, const char *name) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return true;
    return false;
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
int cli_load(int argc, char **argv, const char *path, ds8b_model **m) {
    ds8b_params *p;
    if (ds8b_params_create(&p)) return 1;
    g_verbose = cli_flag(argc, argv, "-v") || cli_flag(argc, argv, "--verbose");
    ds8b_params_set_log(p, log_stderr, &g_verbose);
    int rc = ds8b_model_load(path, p, m);
    ds8b_params_free(p);
    return rc ? cli_fail("loading the model", rc) : 0;
}

/* Session params from common options. Returns NULL after printing on error. */
ds8b_params *cli_session_params(int argc, char **argv) {
    ds8b_params *p;
    if (ds8b_params_create(&p)) return NULL;
    struct { const char *opt; ds8b_param key; bool is_float; } map[] = {
        {"-n", DS8B_PARAM_MAX_TOKENS, false},      {"--temp", DS8B_PARAM_TEMPERATURE, true},
        {"--top-k", DS8B_PARAM_TOP_K, false},       {"--top-p", DS8B_PARAM_TOP_P, true},
        {"--min-p", DS8B_PARAM_MIN_P, true},        {"--repeat-penalty", DS8B_PARAM_REPEAT_PENALTY, true},
        {"--repeat-last-n", DS8B_PARAM_REPEAT_LAST_N, false}, {"--seed", DS8B_PARAM_SEED, false},
        {"--threads", DS8B_PARAM_N_THREADS, false}, {"-t", DS8B_PARAM_N_THREADS, false},
        {"--ctx", DS8B_PARAM_N_CTX, false},         {"-c", DS8B_PARAM_N_CTX, false},
        {"--batch", DS8B_PARAM_N_BATCH, false},     {"--kv-type", DS8B_PARAM_KV_TYPE, false},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *v = cli_opt(argc, argv, map[i].opt);
        if (!v) continue;
        double d;
        if (strcmp(map[i].opt, "--kv-type") == 0) {
            d = strcmp(v, "f32") == 0 ? DS8B_KV_F32 : strcmp(v, "f16") == 0 ? DS8B_KV_F16
              : strcmp(v, "q8_0") == 0 ? DS8B_KV_Q8_0 : -1;
        } else if (!cli_num(v, &d)) {
            fprintf(stderr, "ds8b: %s needs a number, got '%s'\n", map[i].opt, v);
            ds8b_params_free(p);
            return NULL;
        }
        int rc = map[i].is_float ? ds8b_params_set_float(p, map[i].key, d)
                                 : ds8b_params_set_int(p, map[i].key, (int64_t)d);
        if (rc) {
            fprintf(stderr, "ds8b: %s %s: %s\n", map[i].opt, v, ds8b_errmsg());
            ds8b_params_free(p);
            return NULL;
        }
    }
    for (int i = 0; i < argc - 1; i++)
        if (strcmp(argv[i], "--stop") == 0 && ds8b_params_add_stop(p, argv[i + 1])) {
            fprintf(stderr, "ds8b: --stop: %s\n", ds8b_errmsg());
            ds8b_params_free(p);
            return NULL;
        }
    return p;
}

