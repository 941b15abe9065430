/*
 * cmd_bench.c -- ds8b bench: prompt and decode speed on a model, with the
 * memory-bandwidth roofline; --seqs for batched decoding; --kernels hands
 * over to cli_kbench.c. Uses internals (bandwidth probe, bytes per token).
 */
#include "cli.h"

#include "kernels/kernels.h"
#include "model/model.h"
#include "session/session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ================================================================== */
/* bench                                                               */
/* ================================================================== */
static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* Weight bytes one decoded token reads: every matrix once, one embedding row. */
static double bytes_per_token(const ds8b_model *m) {
    double b = (double)m->weight_bytes;
    if (!m->output_is_embd) b -= (double)m->tok_embd.nbytes;
    return b;
}

/* Aggregate decoding speed of `seqs` sequences generating tg tokens each
 * together in one ds8b_batch: tokens of all sequences per second. */
static int bench_seqs(ds8b_model *m, int seqs, int tg, int threads, double *tps) {
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, tg + 16);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, threads);
    ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, tg);
    ds8b_params_set_int(p, DS8B_PARAM_STOP_AT_EOS, 0);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0.8);
    ds8b_session **ss = calloc((size_t)seqs, sizeof *ss);
    ds8b_batch *b = NULL;
    int rc = ss ? ds8b_batch_create(m, p, &b) : DS8B_E_NOMEM;
    int64_t vocab = m->hp.n_vocab;
    for (int i = 0; i < seqs && !rc; i++) {
        ds8b_params_set_int(p, DS8B_PARAM_SEED, 1000 + i);
        rc = ds8b_session_create(m, p, &ss[i]);
        /* a different one-token prompt per sequence, evaluated before timing */
        int32_t id = (int32_t)((i * 7919 + 11) % vocab);
        if (!rc) rc = ds8b_eval(ss[i], &id, 1, NULL);
        if (!rc) rc = ds8b_batch_add(b, ss[i], "", 0, 0, NULL, NULL);
    }
    int64_t active = seqs;
    double t0 = cli_now_s();
    while (!rc && active > 0) rc = ds8b_batch_step(b, &active);
    double dt = cli_now_s() - t0;
    int64_t total = 0;
    for (int i = 0; i < seqs; i++) total += ss[i] ? ds8b_session_n_generated(ss[i]) : 0;
    *tps = dt > 0 ? (double)total / dt : 0;
    ds8b_batch_free(b);
    for (int i = 0; i < seqs; i++) ds8b_session_free(ss[i]);
    free(ss);
    ds8b_params_free(p);
    return rc;
}

static int cmd_bench_seqs(ds8b_model *m, const int64_t *list, int nlist, int tg, int reps, int threads) {
    int rc = 0;
    double base = 0;
    int nth = threads;
    if (nth <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nth = c > 0 ? (int)c : 1;
    }
    printf("| model | scheme | threads | isa | sequences | test | t/s (all sequences) | t/s per sequence | vs 1 sequence |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (int li = 0; li < nlist && !rc; li++) {
        long seqs = (long)list[li];
        double warm, *x = calloc((size_t)reps, sizeof *x), mean, sd;
        rc = bench_seqs(m, (int)seqs, 4, threads, &warm);
        for (int r = 0; r < reps && !rc; r++) rc = bench_seqs(m, (int)seqs, tg, threads, &x[r]);
        if (!rc) {
            mean_sd(x, reps, &mean, &sd);
            if (seqs == 1 || base == 0) base = mean / (double)seqs;
            printf("| %s | %s | %d | %s | %ld | tg%d | %.2f ± %.2f | %.2f | %.2fx |\n", m->desc,
                   m->scheme ? m->scheme : "?", nth, ds8b__isa_name(), seqs, tg, mean, sd, mean / (double)seqs,
                   mean / base);
            fflush(stdout);
        }
        free(x);
    }
    if (rc) return cli_fail("benchmarking batched decoding", rc);
    double bw = ds8b__measure_read_bandwidth(nth);
    printf("\nmemory read bandwidth: %.1f GB/s (%d threads); one sequence's roofline: %.2f t/s\n", bw, nth,
           bw * 1e9 / bytes_per_token(m));
    return 0;
}

/* Multiply-adds per token in the layers' weight matrices (what a prompt
 * batch spends its arithmetic on; the output matrix runs for one row). */
static double layer_macs(const ds8b_model *m) {
    double t = 0;
    for (int64_t l = 0; l < m->hp.n_layer; l++) {
        const ds8b__layer *L = &m->layers[l];
        const ds8b__tensor *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) t += (double)ws[i]->ne[0] * (double)ws[i]->ne[1];
    }
    return t;
}

/* bench and bench --kernels (cli_kbench.c): the options of each mode are
 * refused in the other. --threads is a list for --kernels, one number else. */
const cli_optdef bench_opts[] = {
    {"-m", CLI_STR, "PATH"},
    {"-p", CLI_INT, "512"},
    {"-n", CLI_INT, "128"},
    {"-r", CLI_INT, "3"},
    {"--depth", CLI_INT, "D", 0, "-d"},
    {"--threads", CLI_INTS, "N", 0, "-t"},
    {"--batch", CLI_INT, "N"},
    {"--seqs", CLI_INTS, "1,2,4,8,16"},
    {"--kernels", CLI_FLAG},
    {"--types", CLI_STR, "q4_0,q2_k,..."},
    {"--shapes", CLI_STR, "4096x4096,..."},
    {"--n", CLI_INTS, "1,16"},
    {"--runs", CLI_INT, "5"},
    {"--rowwise", CLI_FLAG},
    /* speculative decoding (cli_spec.c) */
    {"--pass-cost", CLI_FLAG},
    {"--k", CLI_INT, "16"},
    {"--spec-prompt", CLI_STR, "FILE"},
    {"--spec", CLI_STR, "on|auto"},
    {"--draft-file", CLI_STR, "FILE"},
    {"--draft-self", CLI_FLAG},
    {"--draft-model", CLI_STR, "PATH"},
    {"--temp", CLI_FLOAT, "T"},
    {"--seed", CLI_INT, "S"},
    {"--mmap", CLI_INT, "0|1"},
    {"--grammar", CLI_STR, "FILE.gbnf"},
    {0},
};

static int refuse(const cli_args *a, const char *const *names, const char *mode) {
    for (int i = 0; names[i]; i++)
        if (cli_flag(a, names[i])) {
            return cli_usage(a, "%s is not an option %s", names[i], mode);
        }
    return 0;
}

int cmd_bench(const cli_args *a) {
    static const char *const model_only[] = {"-m", "-p", "-n", "--batch", "--seqs", "--depth", "--verbose", NULL};
    static const char *const kernels_only[] = {"--types", "--shapes", "--n", "--runs", "--rowwise", NULL};
    if (cli_flag(a, "--kernels"))
        return refuse(a, model_only, "of bench --kernels") ? 2 : cli_bench_kernels(a);
    if (refuse(a, kernels_only, "without --kernels")) return 2;
    const char *path = cli_opt(a, "-m");
    if (!path) return cli_usage(a, "needs -m PATH (or --kernels)");
    if (cli_flag(a, "--pass-cost") || cli_opt(a, "--spec-prompt")) { /* cli_spec.c */
        ds8b_model *m;
        if (cli_load(a, path, &m)) return 1;
        int src = cli_flag(a, "--pass-cost") ? cli_bench_pass_cost(a, m) : cli_bench_spec(a, m);
        ds8b_model_free(m);
        return src;
    }
    static const char *const spec_only[] = {"--k", "--spec", "--draft-file", "--draft-self", "--draft-model",
                                            "--temp", "--seed", NULL};
    if (refuse(a, spec_only, "without --pass-cost or --spec-prompt")) return 2;
    int64_t pp64 = 512, tg64 = 128, reps64 = 3, th64 = 0, depth64 = 0;
    cli_int(a, "-p", &pp64);
    cli_int(a, "--depth", &depth64);
    if (depth64 < 0 || depth64 > 10000000) return cli_usage(a, "--depth must be 0..10000000");
    cli_int(a, "-n", &tg64);
    cli_int(a, "-r", &reps64);
    if (cli_opt(a, "--threads") && cli_parse_ints(cli_opt(a, "--threads"), &th64, 1) != 1)
        return cli_usage(a, "--threads takes one number without --kernels");
    if (reps64 < 1) reps64 = 1;
    if (pp64 < 0 || tg64 < 0 || pp64 > 1000000 || tg64 > 1000000 || reps64 > 1000 || th64 < 0 || th64 > 4096)
        return cli_usage(a, "-p and -n must be 0..1000000, -r 1..1000, --threads 0..4096");
    int pp = (int)pp64, tg = (int)tg64, reps = (int)reps64, threads = (int)th64;
    int64_t depth = depth64;
    if (depth > 0 && (cli_opt(a, "--seqs") || cli_opt(a, "--grammar")))
        return cli_usage(a, "--depth goes with the plain pp/tg runs, not --seqs or --grammar");
    if (pp == 0 && tg == 0) return cli_usage(a, "nothing to measure with -p 0 -n 0");
    int64_t seqs[64];
    int nseqs = cli_opt(a, "--seqs") ? cli_parse_ints(cli_opt(a, "--seqs"), seqs, 64) : 0;
    for (int i = 0; i < nseqs; i++)
        if (seqs[i] < 1 || seqs[i] > DS8B_BATCH_MAX) nseqs = -1;
    if (nseqs < 0) {
        return cli_usage(a, "--seqs wants numbers from 1 to %d separated by commas", DS8B_BATCH_MAX);
    }
    ds8b_model *m;
    struct timespec l0, l1;
    clock_gettime(CLOCK_MONOTONIC, &l0);
    if (cli_load(a, path, &m)) return 1;
    clock_gettime(CLOCK_MONOTONIC, &l1);
    fprintf(stderr, "load: %.2f s\n", (double)(l1.tv_sec - l0.tv_sec) + 1e-9 * (double)(l1.tv_nsec - l0.tv_nsec));
    const char *gfile = cli_opt(a, "--grammar");
    if (gfile) {
        int grc = cli_bench_grammar(m, gfile, tg > 0 ? tg : 32, reps, threads);
        ds8b_model_free(m);
        return grc;
    }
    if (nseqs > 0) {
        int brc = cmd_bench_seqs(m, seqs, nseqs, tg, reps, threads);
        ds8b_model_free(m);
        return brc;
    }
    ds8b_params *p;
    ds8b_params_create(&p);
    /* room for the warm-up (32 + 4 tokens) as well */
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, depth + pp + tg + 8 > 64 ? depth + pp + tg + 8 : 64);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, threads);
    int64_t nb;
    if (cli_int(a, "--batch", &nb)) ds8b_params_set_int(p, DS8B_PARAM_N_BATCH, nb);
    else ds8b_params_set_int(p, DS8B_PARAM_N_BATCH, pp > 32 ? pp : 32);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0.0);
    ds8b_session *s;
    int rc = ds8b_session_create(m, p, &s);
    ds8b_params_free(p);
    if (rc) { ds8b_model_free(m); return cli_fail("creating the session", rc); }
    int nth = s->n_threads;
    int64_t vocab = m->hp.n_vocab;
    int nids = pp > tg ? pp : tg;
    if (nids < 32) nids = 32;
    int32_t *ids = malloc((size_t)nids * sizeof *ids);
    if (!ids) { ds8b_session_free(s); ds8b_model_free(m); return cli_fail("allocating the prompt", DS8B_E_NOMEM); }
    for (int i = 0; i < nids; i++) ids[i] = (int32_t)((i * 7919 + 11) % vocab);
    double *tpp = calloc((size_t)reps, sizeof *tpp), *ttg = calloc((size_t)reps, sizeof *ttg);
    /* warm-up: a short prompt and a few generated tokens; with --depth,
     * the D tokens of context, evaluated once (timed and printed), which
     * every test then starts from (ds8b_session_truncate back to D) */
    ds8b_session_reset(s);
    double fill_s = 0;
    if (depth > 0) {
        double f0 = cli_now_s();
        for (int64_t done = 0; done < depth && !rc;) {
            int64_t chunk = depth - done < nids ? depth - done : nids;
            rc = ds8b_eval(s, ids, (size_t)chunk, NULL);
            done += chunk;
        }
        fill_s = cli_now_s() - f0;
    } else {
        rc = ds8b_eval(s, ids, 32, NULL);
        for (int i = 0; i < 4 && !rc; i++) {
            int32_t t;
            ds8b_sample(s, &t);
            rc = ds8b_eval(s, &t, 1, NULL);
        }
    }
    for (int r = 0; r < reps && !rc; r++) {
        if (depth > 0) rc = ds8b_session_truncate(s, depth);
        else ds8b_session_reset(s);
        double t0 = cli_now_s();
        if (pp > 0 && !rc) {
            rc = ds8b_eval(s, ids, (size_t)pp, NULL);
            tpp[r] = pp / (cli_now_s() - t0);
        }
        if (depth > 0) rc = rc ? rc : ds8b_session_truncate(s, depth);
        else ds8b_session_reset(s);
        rc = rc ? rc : ds8b_eval(s, ids, 1, NULL);
        t0 = cli_now_s();
        for (int i = 0; i < tg && !rc; i++) {
            int32_t t;
            ds8b_sample(s, &t);
            rc = ds8b_eval(s, &t, 1, NULL);
        }
        ttg[r] = tg / (cli_now_s() - t0);
    }
    if (rc) {
        cli_fail("benchmarking", rc);
        free(ids);
        free(tpp);
        free(ttg);
        ds8b_session_free(s);
        ds8b_model_free(m);
        return 1;
    }
    double bw = ds8b__measure_read_bandwidth(nth);
    double bpt = bytes_per_token(m);
    double ppm, pps, tgm, tgs;
    mean_sd(tpp, reps, &ppm, &pps);
    mean_sd(ttg, reps, &tgm, &tgs);
    /* KV bytes one decoded token reads: K and V of every cached position
     * in every layer, at the mean depth of the tg run (D + 1 + tg/2) */
    double kvpos = 0, kvread = 0;
    {
        size_t kvb = 0;
        if (ds8b__kv_bytes(s->kv.type, m->hp.n_layer, 1, m->hp.n_head_kv * m->hp.head_dim, &kvb))
            kvpos = (double)kvb;
        kvread = kvpos * ((double)depth + 1.0 + tg / 2.0);
    }
    double roof = bw * 1e9 / (bpt + kvread);
    char at[48] = "";
    if (depth > 0) snprintf(at, sizeof at, " @ d%lld", (long long)depth);
    printf("| model | scheme | threads | isa | test | t/s |\n|---|---|---|---|---|---|\n");
    if (pp > 0)
        printf("| %s | %s | %d | %s | pp%d%s | %.2f ± %.2f |\n", m->desc, m->scheme ? m->scheme : "?", nth,
               ds8b__isa_name(), pp, at, ppm, pps);
    if (tg > 0)
        printf("| %s | %s | %d | %s | tg%d%s | %.2f ± %.2f |\n", m->desc, m->scheme ? m->scheme : "?", nth,
               ds8b__isa_name(), tg, at, tgm, tgs);
    if (depth > 0)
        printf("\ncontext of %lld tokens evaluated once in %.1f s (%.2f t/s)\n", (long long)depth, fill_s,
               (double)depth / fill_s);
    printf("\nmemory read bandwidth: %.1f GB/s (%d threads)\n", bw, nth);
    printf("weight bytes read per token: %.3f GB\n", bpt / 1e9);
    if (depth > 0 || tg > 0)
        printf("KV bytes read per token: %.3f GB (%.0f bytes per cached position, mean depth %.0f)\n",
               kvread / 1e9, kvpos, (double)depth + 1.0 + tg / 2.0);
    if (tg > 0) printf("decode roofline: %.2f t/s; tg%d reaches %.0f%% of it\n", roof, tg, 100.0 * tgm / roof);
    else printf("decode roofline: %.2f t/s\n", roof);
    if (pp > 0) {
        double gops = 2.0 * layer_macs(m) * ppm / 1e9, peak = ds8b__measure_vnni_peak(nth);
        printf("pp%d: %.0f GOPS in the layer matrices", pp, gops);
        if (peak > 0)
            printf(" = %.0f%% of the int8 VNNI peak measured now (%.0f GOPS, %d threads)", 100.0 * gops / peak, peak,
                   nth);
        printf("\n");
        if (!strcmp(ds8b__isa_name(), "amx")) {
            double ap = ds8b__measure_amx_bf16_peak(nth);
            if (ap > 0)
                printf("pp%d: %.0f%% of the AMX-BF16 tile peak measured now (%.0f GFLOPS, %d threads)\n", pp,
                       100.0 * gops / ap, ap, nth);
        }
    }
    free(ids);
    free(tpp);
    free(ttg);
    ds8b_session_free(s);
    ds8b_model_free(m);
    return rc ? 1 : 0;
}


