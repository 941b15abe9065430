/*
 * cmd_grammar.c -- ds8b grammar --check (GBNF acceptance of lines of
 * JSON on stdin), the --grammar-file option of generate, and bench's
 * --grammar (decode speed with and without a grammar, same run).
 */
#include "cli.h"

#include "grammar/grammar.h"
#include "model/model.h"
#include "session/session.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a GBNF file (schema 0) or a JSON Schema file (schema 1) and
 * compiles it; prints why and returns NULL on failure. */
static ds8b_grammar *load(const char *path, int schema) {
    size_t n = 0;
    char *src = cli_read_file(path, &n);
    if (!src) return NULL;
    ds8b_grammar *g = NULL;
    int rc = schema ? ds8b_grammar_from_json_schema(src, n, &g) : ds8b_grammar_compile(src, n, NULL, &g);
    free(src);
    if (rc) {
        fprintf(stderr, "ds8b: %s: %s\n", path, ds8b_errmsg());
        return NULL;
    }
    return g;
}

ds8b_grammar *cli_grammar_load(const char *path) { return load(path, 0); }
ds8b_grammar *cli_schema_load(const char *path) { return load(path, 1); }

/* ds8b grammar --check FILE.gbnf, or [--check] --json-schema FILE.json:
 * --check is the command's one mode (a flag, so that "--check --json-schema
 * F" reads as it is written); the GBNF file is the positional argument. */
const cli_optdef grammar_opts[] = {
    {"--check", CLI_FLAG},
    {"--json-schema", CLI_STR, "FILE.json"},
    {0},
};

int cmd_grammar(const cli_args *a) {
    const char *schema = cli_opt(a, "--json-schema");
    const char *path = a->npos > 0 ? a->pos[0] : NULL;
    if (path && schema) return cli_usage(a, "a GBNF file and --json-schema FILE.json exclude each other");
    if (!path && !schema) return cli_usage(a, "needs --check FILE.gbnf or --json-schema FILE.json");
    ds8b_grammar *g = schema ? cli_schema_load(schema) : cli_grammar_load(path);
    if (!g) return 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t l;
    int ret = 0;
    long lineno = 0;
    while ((l = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
        if (!l) continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)l);
        cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
        if (!cJSON_IsString(t)) {
            fprintf(stderr, "ds8b: stdin line %ld: expected a JSON object {\"text\": STRING}\n", lineno);
            cJSON_Delete(j);
            ret = 1;
            break;
        }
        int accept = 0;
        int rc = ds8b_grammar_accepts(g, t->valuestring, strlen(t->valuestring), &accept);
        cJSON_Delete(j);
        if (rc) {
            ret = cli_fail("matching", rc);
            break;
        }
        printf("{\"accept\": %s}\n", accept ? "true" : "false");
        fflush(stdout);
    }
    free(line);
    ds8b_grammar_free(g);
    return ret;
}

/* ------------------------------------------------------------------ */
/* bench --grammar FILE                                                */
/* ------------------------------------------------------------------ */
typedef struct gstats {
    double sec;
    int64_t tokens, fast, full;
    double fast_ms, full_ms;
} gstats;

/* tg tokens from s (one token evaluated), restarting the grammar when it
 * completes, so that every run decodes the same number of tokens. */
static int decode_run(ds8b_session *s, const ds8b_grammar *g, int tg, gstats *st) {
    int32_t id = 11;
    ds8b_session_reset(s);
    int rc = ds8b_eval(s, &id, 1, NULL);
    rc = rc ? rc : ds8b_session_set_grammar(s, g);
    if (s->gram) {
        s->gram->n_fast = s->gram->n_full = 0;
        s->gram->ms_fast = s->gram->ms_full = 0;
    }
    double t0 = cli_now_s();
    int64_t done = 0;
    while (!rc && done < tg) {
        ds8b_session_set_int(s, DS8B_PARAM_MAX_TOKENS, tg - done);
        int64_t n = 0;
        rc = ds8b_generate(s, "", 0, 0, NULL, NULL, &n);
        done += n;
        if (!rc && n == 0 && ds8b_session_finish_reason(s) != DS8B_FINISH_GRAMMAR) break;
    }
    st->sec = cli_now_s() - t0;
    st->tokens = done;
    if (s->gram) {
        st->fast = s->gram->n_fast;
        st->full = s->gram->n_full;
        st->fast_ms = s->gram->ms_fast;
        st->full_ms = s->gram->ms_full;
    }
    ds8b_session_set_grammar(s, NULL);
    return rc;
}

int cli_bench_grammar(ds8b_model *m, const char *gpath, int tg, int reps, int threads) {
    ds8b_grammar *g = cli_grammar_load(gpath);
    if (!g) return 1;
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, tg + 16);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, threads);
    ds8b_params_set_int(p, DS8B_PARAM_STOP_AT_EOS, 0);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0.8);
    ds8b_session *s = NULL;
    int rc = ds8b_session_create(m, p, &s);
    ds8b_params_free(p);
    if (rc) {
        ds8b_grammar_free(g);
        return cli_fail("creating the session", rc);
    }
    gstats warm = {0};
    rc = decode_run(s, g, 4, &warm);
    double tps0[64], tps1[64];
    gstats tot = {0};
    if (reps > 64) reps = 64;
    for (int r = 0; r < reps && !rc; r++) {
        gstats a = {0}, b = {0};
        /* alternate the order so that drift hits both alike */
        if (r % 2 == 0) {
            rc = decode_run(s, NULL, tg, &a);
            if (!rc) rc = decode_run(s, g, tg, &b);
        } else {
            rc = decode_run(s, g, tg, &b);
            if (!rc) rc = decode_run(s, NULL, tg, &a);
        }
        tps0[r] = a.tokens / a.sec;
        tps1[r] = b.tokens / b.sec;
        tot.fast += b.fast;
        tot.full += b.full;
        tot.fast_ms += b.fast_ms;
        tot.full_ms += b.full_ms;
        tot.tokens += b.tokens;
        tot.sec += b.sec;
    }
    if (rc) {
        ds8b_session_free(s);
        ds8b_grammar_free(g);
        return cli_fail("benchmarking with the grammar", rc);
    }
    /* medians */
    for (int i = 0; i < reps; i++)
        for (int j = i + 1; j < reps; j++) {
            if (tps0[j] < tps0[i]) { double t = tps0[i]; tps0[i] = tps0[j]; tps0[j] = t; }
            if (tps1[j] < tps1[i]) { double t = tps1[i]; tps1[i] = tps1[j]; tps1[j] = t; }
        }
    double m0 = reps % 2 ? tps0[reps / 2] : (tps0[reps / 2 - 1] + tps0[reps / 2]) / 2;
    double m1 = reps % 2 ? tps1[reps / 2] : (tps1[reps / 2 - 1] + tps1[reps / 2]) / 2;
    printf("| model | scheme | threads | isa | test | t/s no grammar | t/s grammar | overhead |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    printf("| %s | %s | %d | %s | tg%d | %.2f | %.2f | %.1f%% |\n", m->desc, m->scheme ? m->scheme : "?",
           s->n_threads, ds8b__isa_name(), tg, m0, m1, 100.0 * (m0 / m1 - 1.0));
    printf("\nmedians of %d runs each; grammar %s; temperature 0.8\n", reps, gpath);
    printf("grammar sampling: %lld tokens by the fast path (%.3f ms each), %lld by the full mask (%.3f ms each)\n",
           (long long)tot.fast, tot.fast ? tot.fast_ms / (double)tot.fast : 0.0, (long long)tot.full,
           tot.full ? tot.full_ms / (double)tot.full : 0.0);
    printf("decode step without grammar: %.1f ms\n", 1000.0 / m0);
    ds8b_session_free(s);
    ds8b_grammar_free(g);
    return 0;
}
