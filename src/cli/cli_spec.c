/*
 * cli_spec.c -- benchmarks of speculative decoding:
 *
 *   ds8b bench -m PATH --pass-cost [--k 16] [-p DEPTH] [-r 7] [--threads N]
 *       The cost of one verification pass over k+1 positions against a
 *       one-position decode step, k = 0..K, at context depth DEPTH (default
 *       128), median of -r runs; then the effective decode rate that
 *       follows for per-token acceptance rates 0.5..0.9 (best k for each).
 *       The ISA level is the one in use (DS8B_ISA=avx2 etc. caps it).
 *
 *   ds8b bench -m PATH --spec-prompt FILE [--draft-file FILE | --draft-self] [--draft-model PATH]
 *       [--spec auto|on] [-n 128] [-r 3] [--threads N] [--temp T] [--seed S]
 *       End to end: generates from FILE's text with speculation off, then
 *       with the mode given (default on), and reports tokens/s of each,
 *       tokens drafted and accepted, acceptance rate, tokens per pass and
 *       the speedup (medians of -r runs). --draft-file: the host draft text;
 *       --draft-self: the plain run's own output as the host draft (the
 *       upper bound: an editor asking again for a completion it has shown).
 */
#include "cli.h"

#include "session/spec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int opt_int(const cli_args *a, const char *name, int def, int lo, int hi, int *out) {
    const char *s = cli_opt(a, name);
    if (!s) { *out = def; return 0; }
    char *end;
    long long v = strtoll(s, &end, 10); /* the parser checked it is a number (or a list: one here) */
    if (end == s || *end || v < lo || v > hi) {
        cli_usage(a, "%s must be one whole number in %d..%d", name, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* ================================================================== */
/* --pass-cost                                                         */
/* ================================================================== */
int cli_bench_pass_cost(const cli_args *a, ds8b_model *m) {
    int kmax, depth, reps, threads;
    if (opt_int(a, "--k", 16, 1, 63, &kmax) || opt_int(a, "-p", 128, 1, 1 << 20, &depth) ||
        opt_int(a, "-r", 7, 1, 1000, &reps) || opt_int(a, "--threads", 0, 0, 512, &threads))
        return 2;
    ds8b_params *p;
    if (ds8b_params_create(&p)) return cli_fail("params", DS8B_E_NOMEM);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, depth + kmax + 8);
    ds8b_params_set_int(p, DS8B_PARAM_N_BATCH, kmax + 1 > 64 ? kmax + 1 : 64);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, threads);
    ds8b_session *s;
    int rc = ds8b_session_create(m, p, &s);
    ds8b_params_free(p);
    if (rc) return cli_fail("creating the session", rc);
    int64_t vocab = m->hp.n_vocab;
    int32_t *ids = malloc((size_t)depth * sizeof *ids);
    double *sec = calloc((size_t)kmax + 1, sizeof *sec);
    if (!ids || !sec) { free(ids); free(sec); ds8b_session_free(s); return cli_fail("allocating", DS8B_E_NOMEM); }
    for (int i = 0; i < depth; i++) ids[i] = (int32_t)((i * 7919 + 11) % vocab);
    rc = ds8b_eval(s, ids, (size_t)depth, NULL);
    ds8b__err e = {0};
    /* warm-up */
    for (int k = 0; !rc && k <= kmax; k += 4) rc = ds8b__spec_bench_pass(s, k + 1, depth, 1, &sec[0], NULL, &e);
    /* interleave the sizes across rounds so drift on a shared machine hits all alike */
    double *all = calloc((size_t)(kmax + 1) * (size_t)reps, sizeof *all);
    double *cpu = calloc((size_t)(kmax + 1) * (size_t)reps, sizeof *cpu);
    if (!all || !cpu) rc = DS8B_E_NOMEM;
    for (int r = 0; !rc && r < reps; r++) {
        for (int k = 0; !rc && k <= kmax; k++)
            rc = ds8b__spec_bench_pass(s, k + 1, depth, 1, &all[(size_t)k * reps + r], &cpu[(size_t)k * reps + r], &e);
        /* each round on stderr as it ends: a run stopped early (a slow,
         * shared machine) still leaves what it measured */
        if (!rc) {
            fprintf(stderr, "round %d ms/pass (k = 0..%d):", r + 1, kmax);
            for (int k = 0; k <= kmax; k++) fprintf(stderr, " %.2f", all[(size_t)k * reps + r] * 1e3);
            fprintf(stderr, "\n");
            fflush(stderr);
        }
    }
    if (rc) {
        fprintf(stderr, "ds8b: bench --pass-cost: %s\n", e.msg[0] ? e.msg : ds8b_errmsg());
        free(ids); free(sec); free(all); free(cpu);
        ds8b_session_free(s);
        return 1;
    }
    double *lo = calloc((size_t)kmax + 1, sizeof *lo), *cs = calloc((size_t)kmax + 1, sizeof *cs);
    for (int k = 0; k <= kmax && lo && cs; k++) {
        cs[k] = median(cpu + (size_t)k * reps, reps);
        lo[k] = all[(size_t)k * reps];
        for (int r = 1; r < reps; r++)
            if (all[(size_t)k * reps + r] < lo[k]) lo[k] = all[(size_t)k * reps + r];
        sec[k] = median(all + (size_t)k * reps, reps);
    }
    printf("pass cost: %s, %s, %d threads, isa %s, depth %d, median of %d\n", m->desc, m->scheme ? m->scheme : "?",
           s->n_threads, ds8b__isa_name(), depth, reps);
    printf("%4s %6s %10s %10s %12s %10s %10s %10s %10s\n", "k", "rows", "ms/pass", "cost/step", "ms/position",
           "min ms", "min cost", "cpu ms", "cpu cost");
    for (int k = 0; k <= kmax; k++)
        printf("%4d %6d %10.2f %10.3f %12.2f %10.2f %10.3f %10.2f %10.3f\n", k, k + 1, sec[k] * 1e3, sec[k] / sec[0],
               sec[k] * 1e3 / (k + 1), lo ? lo[k] * 1e3 : 0, lo ? lo[k] / lo[0] : 0, cs ? cs[k] * 1e3 : 0,
               cs ? cs[k] / cs[0] : 0);
    printf("(cpu: process CPU time, all threads, spinning included; on a shared machine it is the\n"
           " cost without the waits for a core)\n");
    free(lo);
    printf("plain decode: %.2f tokens/s\n", 1.0 / sec[0]);
    printf("effective rate with per-token acceptance p (best k; tokens/pass = 1 + p + ... + p^k),\n"
           "from the wall-time medians and from the CPU-time medians:\n");
    printf("%6s %4s %12s %12s %9s %7s %12s %9s\n", "p", "k", "tokens/pass", "tokens/s", "speedup", "cpu k", "tokens/cpu-s",
           "speedup");
    for (int pi = 5; pi <= 9; pi++) {
        double pr = pi / 10.0, best = 0, bt = 0, cbest = 0;
        int bk = 0, ck = 0;
        for (int k = 1; k <= kmax; k++) {
            double tok = (1 - pow(pr, k + 1)) / (1 - pr), rate = tok / sec[k];
            if (rate > best) { best = rate; bk = k; bt = tok; }
            if (cs && tok / cs[k] > cbest) { cbest = tok / cs[k]; ck = k; }
        }
        printf("%6.1f %4d %12.2f %12.2f %8.2fx %7d %12.2f %8.2fx\n", pr, bk, bt, best, best * sec[0], ck, cbest,
               cs ? cbest * cs[0] : 0);
    }
    free(cs);
    free(ids);
    free(sec);
    free(all);
    free(cpu);
    ds8b_session_free(s);
    return 0;
}

/* ================================================================== */
/* --spec-prompt                                                       */
/* ================================================================== */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = cli_read_all(f, len);
    fclose(f);
    return b;
}

/* Collects generated text (--draft-self). */
typedef struct textbuf {
    char *p;
    size_t n, cap;
} textbuf;
static int collect(void *user, const char *piece, size_t len, int channel) {
    textbuf *t = user;
    (void)channel;
    if (t->n + len + 1 > t->cap) {
        size_t cap = (t->n + len + 1) * 2;
        char *q = realloc(t->p, cap);
        if (!q) return 1;
        t->p = q;
        t->cap = cap;
    }
    memcpy(t->p + t->n, piece, len);
    t->n += len;
    t->p[t->n] = 0;
    return 0;
}

/* One timed generation: the prompt is evaluated first, outside the timing. */
static int timed_run(ds8b_model *m, ds8b_model *dm, ds8b_params *p, int mode, const char *prompt, size_t plen,
                     const char *draft, size_t dlen, double *tps, double *cps, int64_t *ng, int64_t st[3],
                     textbuf *text) {
    ds8b_params_set_int(p, DS8B_PARAM_SPEC, mode);
    ds8b_session *s;
    int rc = ds8b_session_create(m, p, &s);
    if (rc) return rc;
    if (dm && mode != DS8B_SPEC_OFF) rc = ds8b_session_set_draft_model(s, dm);
    const ds8b_tokenizer *tok = ds8b_model_tokenizer(m);
    size_t n_ids = 0;
    int32_t *ids = NULL;
    if (!rc) {
        ds8b_tokenize(tok, prompt, plen, DS8B_TOKENIZE_ADD_SPECIAL, NULL, 0, &n_ids);
        ids = malloc((n_ids + 1) * sizeof *ids);
        rc = ids ? ds8b_tokenize(tok, prompt, plen, DS8B_TOKENIZE_ADD_SPECIAL, ids, n_ids + 1, &n_ids) : DS8B_E_NOMEM;
    }
    if (!rc) rc = ds8b_eval(s, ids, n_ids, NULL);
    free(ids);
    if (!rc && draft && mode != DS8B_SPEC_OFF) rc = ds8b_session_set_draft(s, draft, dlen);
    double t0 = now_s(), c0 = cpu_s();
    if (!rc) rc = ds8b_generate(s, "", 0, 0, text ? collect : NULL, text, ng);
    *tps = (double)*ng / (now_s() - t0);
    *cps = (double)*ng / (cpu_s() - c0);
    ds8b_session_spec_stats(s, &st[0], &st[1], &st[2]);
    ds8b_session_free(s);
    return rc;
}

int cli_bench_spec(const cli_args *a, ds8b_model *m) {
    const char *pf = cli_opt(a, "--spec-prompt"), *df = cli_opt(a, "--draft-file");
    const char *dmp = cli_opt(a, "--draft-model"), *ms = cli_opt(a, "--spec");
    int tg, reps, threads;
    if (opt_int(a, "-n", 128, 1, 100000, &tg) || opt_int(a, "-r", 3, 1, 100, &reps) ||
        opt_int(a, "--threads", 0, 0, 512, &threads))
        return 2;
    int mode = !ms || !strcmp(ms, "on") ? DS8B_SPEC_ON : !strcmp(ms, "auto") ? DS8B_SPEC_AUTO : -1;
    if (mode < 0) return cli_usage(a, "--spec must be auto or on with --spec-prompt");
    size_t plen = 0, dlen = 0;
    char *prompt = read_file(pf, &plen), *draft = df ? read_file(df, &dlen) : NULL;
    if (!prompt || (df && !draft)) {
        free(prompt);
        free(draft);
        return cli_usage(a, "cannot read --spec-prompt / --draft-file");
    }
    ds8b_model *dm = NULL;
    if (dmp && cli_load(a, dmp, &dm)) { free(prompt); free(draft); return 1; }
    double temp = 0;
    const char *tv = cli_opt(a, "--temp");
    if (tv && !cli_num(tv, &temp)) temp = 0;
    double seed = 1;
    const char *sv = cli_opt(a, "--seed");
    if (sv && !cli_num(sv, &seed)) seed = 1;
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, threads);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 4096);
    ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, tg);
    ds8b_params_set_int(p, DS8B_PARAM_STOP_AT_EOS, 0);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, temp);
    ds8b_params_set_int(p, DS8B_PARAM_SEED, (int64_t)seed);
    double *t_off = calloc((size_t)reps, sizeof(double)), *t_on = calloc((size_t)reps, sizeof(double));
    double *c_off = calloc((size_t)reps, sizeof(double)), *c_on = calloc((size_t)reps, sizeof(double));
    int64_t drafted = 0, accepted = 0, passes = 0, n_on = 0, n_off = 0, st[3];
    bool same = true;
    double warm, cwarm;
    textbuf self = {0};
    int rc = t_off && t_on && c_off && c_on
                 ? timed_run(m, NULL, p, DS8B_SPEC_OFF, prompt, plen, NULL, 0, &warm, &cwarm, &n_off, st, &self)
                 : DS8B_E_NOMEM;
    if (!rc && cli_flag(a, "--draft-self")) { /* the plain output itself as the host draft */
        free(draft);
        draft = self.p;
        dlen = self.n;
        self.p = NULL;
    }
    for (int r = 0; r < reps && !rc; r++) {
        rc = timed_run(m, NULL, p, DS8B_SPEC_OFF, prompt, plen, NULL, 0, &t_off[r], &c_off[r], &n_off, st, NULL);
        if (!rc) rc = timed_run(m, dm, p, mode, prompt, plen, draft, dlen, &t_on[r], &c_on[r], &n_on, st, NULL);
        drafted += st[0];
        accepted += st[1];
        passes += st[2];
        if (n_on != n_off) same = false;
    }
    ds8b_params_free(p);
    if (rc) {
        cli_fail("bench --spec-prompt", rc);
    } else {
        double off = median(t_off, reps), on = median(t_on, reps);
        printf("speculation bench: %s, %s, isa %s, %lld tokens, %s%s%s\n", m->desc, m->scheme ? m->scheme : "?",
               ds8b__isa_name(), (long long)n_on, mode == DS8B_SPEC_ON ? "on" : "auto",
               dm ? ", draft model " : "", dm ? dmp : "");
        printf("plain %.1f tokens/s, speculative %.1f tokens/s, speedup %.2fx%s\n", off, on, on / off,
               same ? "" : " (token counts differ!)");
        double coff = median(c_off, reps), con = median(c_on, reps);
        printf("per CPU second (process CPU time): plain %.1f tokens, speculative %.1f tokens, ratio %.2fx\n", coff,
               con, con / coff);
        printf("drafted %lld, accepted %lld, acceptance %.1f%%, passes %lld, tokens per pass %.2f\n",
               (long long)drafted / reps, (long long)accepted / reps,
               drafted ? 100.0 * (double)accepted / (double)drafted : 0.0, (long long)passes / reps,
               passes ? (double)(accepted + passes) / (double)passes : 0.0);
    }
    free(t_off);
    free(t_on);
    free(c_off);
    free(c_on);
    free(self.p);
    free(prompt);
    free(draft);
    ds8b_model_free(dm);
    return rc ? 1 : 0;
}
