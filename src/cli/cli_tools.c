/*
 * cli_tools.c -- ds8b subcommands for quantization and benchmarking:
 *
 *   ds8b quantize IN OUT SCHEME [--threads N]
 *   ds8b convert IN OUT [f16|bf16|f32]
 *   ds8b make-random CONFIG.json OUTDIR [--tokenizer DIR] [--seed S] [--shard-gb G]
 *   ds8b bench -m PATH [-p 512] [-n 128] [-r 3] [--threads N] [--batch N] [--seqs 1,2,4,8,16]
 *
 * These link the static library and may use internal helpers (kernels'
 * bandwidth probe, model internals for the bytes read per token).
 */
#include "cli.h"

#include "kernels/kernels.h"
#include "model/model.h"
#include "session/session.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0);
}

/* ================================================================== */
/* quantize / convert                                                  */
/* ================================================================== */
static int on_progress(void *user, double frac, const char *stage) {
    double *last = user;
    if (frac - *last >= 0.02 || frac >= 1.0) {
        fprintf(stderr, "\rds8b: %5.1f%%  %-40.40s", frac * 100.0, stage);
        fflush(stderr);
        *last = frac;
    }
    return 0;
}

static int cmd_quantize(int argc, char **argv, const char *fixed_scheme) {
    if (argc < (fixed_scheme ? 2 : 3)) return cli_usage(fixed_scheme ? "convert needs IN OUT [f16|bf16|f32]" : "quantize needs IN OUT SCHEME");
    const char *scheme = fixed_scheme ? (argc >= 3 && argv[2][0] != '-' ? argv[2] : fixed_scheme) : argv[2];
    ds8b_params *p;
    if (ds8b_params_create(&p)) return 1;
    const char *th = cli_opt(argc, argv, "--threads");
    double v;
    if (th && cli_num(th, &v)) ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, (int64_t)v);
    double last = -1;
    ds8b_params_set_progress(p, on_progress, &last);
    double t0 = now_s();
    int rc = ds8b_quantize(argv[0], argv[1], scheme, p);
    double dt = now_s() - t0;
    ds8b_params_free(p);
    fputc('\n', stderr);
    if (rc) return cli_fail("quantizing", rc);
    struct stat st;
    stat(argv[1], &st);
    fprintf(stderr, "ds8b: wrote %s (%s, %.1f MB) in %.1f s, peak RSS %.2f GB\n", argv[1], scheme,
            (double)st.st_size / 1e6, dt, peak_rss_gb());
    return 0;
}

/* ================================================================== */
/* make-random: a full-size bf16 checkpoint with random weights         */
/* ================================================================== */
typedef struct rt { char name[96]; int64_t rows, cols; bool norm; } rt;

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int json_int(cJSON *o, const char *k, int64_t *v) {
    cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(it)) return -1;
    *v = (int64_t)it->valuedouble;
    return 0;
}

static int copy_file(const char *src, const char *dst) {
    FILE *a = fopen(src, "rb"), *b = a ? fopen(dst, "wb") : NULL;
    if (!a || !b) { if (a) fclose(a); return -1; }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    fclose(a);
    return fclose(b);
}

static int cmd_make_random(int argc, char **argv) {
    if (argc < 2) return cli_usage("make-random needs CONFIG.json OUTDIR");
    const char *cfg_path = argv[0], *outdir = argv[1];
    FILE *f = fopen(cfg_path, "rb");
    if (!f) { fprintf(stderr, "ds8b: cannot open %s: %s\n", cfg_path, strerror(errno)); return 1; }
    size_t len;
    char *js = cli_read_all(f, &len);
    fclose(f);
    cJSON *cfg = js ? cJSON_Parse(js) : NULL;
    int64_t d, L, nh, nkv, ff, vocab, hd = 0;
    if (!cfg || json_int(cfg, "hidden_size", &d) || json_int(cfg, "num_hidden_layers", &L) ||
        json_int(cfg, "num_attention_heads", &nh) || json_int(cfg, "intermediate_size", &ff) ||
        json_int(cfg, "vocab_size", &vocab)) {
        fprintf(stderr, "ds8b: %s is not a usable config.json\n", cfg_path);
        cJSON_Delete(cfg);
        free(js);
        return 1;
    }
    if (json_int(cfg, "num_key_value_heads", &nkv)) nkv = nh;
    if (json_int(cfg, "head_dim", &hd) || hd <= 0) hd = d / nh;
    cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    bool qwen3 = cJSON_IsString(mt) && strcmp(mt->valuestring, "qwen3") == 0;
    cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    bool tied = cJSON_IsTrue(tie);
    mkdir(outdir, 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", outdir);
    FILE *cf = fopen(path, "wb");
    if (!cf) { fprintf(stderr, "ds8b: cannot write %s\n", path); return 1; }
    fwrite(js, 1, len, cf);
    fclose(cf);
    free(js);
    /* tokenizer: the one given, else the real tokenizer matching the family */
    const char *tokdir = cli_opt(argc, argv, "--tokenizer");
    char tdef[4096];
    if (!tokdir) {
        const char *sh = getenv("DS8B_SHARED");
        snprintf(tdef, sizeof tdef, "%s/tokenizers/%s", sh && *sh ? sh : "../shared", qwen3 ? "qwen3" : "llama3.1");
        tokdir = tdef;
    }
    const char *tf[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char s[4096];
        snprintf(s, sizeof s, "%s/%s", tokdir, tf[i]);
        snprintf(path, sizeof path, "%s/%s", outdir, tf[i]);
        if (copy_file(s, path) != 0 && i == 0) {
            fprintf(stderr, "ds8b: cannot copy %s (use --tokenizer DIR)\n", s);
            cJSON_Delete(cfg);
            return 1;
        }
    }
    /* tensor list in the Hugging Face naming */
    int64_t nt = 3 + L * 11;
    rt *ts = calloc((size_t)nt, sizeof *ts);
    int64_t n = 0;
#define ADD(nm, r, c, isnorm) do { snprintf(ts[n].name, sizeof ts[n].name, "%s", nm); ts[n].rows = r; ts[n].cols = c; ts[n].norm = isnorm; n++; } while (0)
    ADD("model.embed_tokens.weight", vocab, d, false);
    char nm[96];
    for (int64_t i = 0; i < L; i++) {
#define LN(s) (snprintf(nm, sizeof nm, "model.layers.%lld.%s", (long long)i, s), nm)
        ADD(LN("input_layernorm.weight"), 1, d, true);
        ADD(LN("self_attn.q_proj.weight"), nh * hd, d, false);
        ADD(LN("self_attn.k_proj.weight"), nkv * hd, d, false);
        ADD(LN("self_attn.v_proj.weight"), nkv * hd, d, false);
        ADD(LN("self_attn.o_proj.weight"), d, nh * hd, false);
        if (qwen3) {
            ADD(LN("self_attn.q_norm.weight"), 1, hd, true);
            ADD(LN("self_attn.k_norm.weight"), 1, hd, true);
        }
        ADD(LN("post_attention_layernorm.weight"), 1, d, true);
        ADD(LN("mlp.gate_proj.weight"), ff, d, false);
        ADD(LN("mlp.up_proj.weight"), ff, d, false);
        ADD(LN("mlp.down_proj.weight"), d, ff, false);
#undef LN
    }
    ADD("model.norm.weight", 1, d, true);
    if (!tied) ADD("lm_head.weight", vocab, d, false);
#undef ADD
    /* shards of about --shard-gb GB */
    double shard_gb = 4.0;
    const char *sg = cli_opt(argc, argv, "--shard-gb");
    if (sg) cli_num(sg, &shard_gb);
    uint64_t seed = 1;
    const char *ss = cli_opt(argc, argv, "--seed");
    double sv;
    if (ss && cli_num(ss, &sv)) seed = (uint64_t)sv | 1;
    int64_t *shard_of = calloc((size_t)n, sizeof *shard_of);
    int64_t nshards = 0;
    double acc = 0;
    for (int64_t i = 0; i < n; i++) {
        double b = (double)ts[i].rows * (double)ts[i].cols * 2.0;
        if (acc > 0 && acc + b > shard_gb * 1e9) { nshards++; acc = 0; }
        shard_of[i] = nshards;
        acc += b;
    }
    nshards++;
    cJSON *index = cJSON_CreateObject(), *wmap = cJSON_AddObjectToObject(index, "weight_map");
    uint16_t *buf = malloc((size_t)1 << 24);
    double t0 = now_s(), total = 0;
    for (int64_t s = 0; s < nshards; s++) {
        char fname[128];
        snprintf(fname, sizeof fname, "model-%05lld-of-%05lld.safetensors", (long long)s + 1, (long long)nshards);
        cJSON *hdr = cJSON_CreateObject();
        uint64_t off = 0;
        for (int64_t i = 0; i < n; i++) {
            if (shard_of[i] != s) continue;
            cJSON *o = cJSON_AddObjectToObject(hdr, ts[i].name);
            cJSON_AddStringToObject(o, "dtype", "BF16");
            cJSON *shape = cJSON_AddArrayToObject(o, "shape");
            if (!ts[i].norm) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ts[i].rows));
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ts[i].cols));
            uint64_t nb = (uint64_t)ts[i].rows * (uint64_t)ts[i].cols * 2;
            cJSON *offs = cJSON_AddArrayToObject(o, "data_offsets");
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nb)));
            off += nb;
            cJSON_AddStringToObject(wmap, ts[i].name, fname);
        }
        char *h = cJSON_PrintUnformatted(hdr);
        cJSON_Delete(hdr);
        size_t hl = strlen(h), pad = (8 - hl % 8) % 8;
        snprintf(path, sizeof path, "%s/%s", outdir, fname);
        FILE *o = fopen(path, "wb");
        if (!o) { fprintf(stderr, "ds8b: cannot write %s\n", path); return 1; }
        uint64_t hl64 = hl + pad;
        fwrite(&hl64, 8, 1, o);
        fwrite(h, 1, hl, o);
        for (size_t i = 0; i < pad; i++) fputc(' ', o);
        free(h);
        for (int64_t i = 0; i < n; i++) {
            if (shard_of[i] != s) continue;
            uint64_t cnt = (uint64_t)ts[i].rows * (uint64_t)ts[i].cols;
            /* uniform in +-sqrt(3/cols): unit-variance outputs; norms are 1 */
            float a = sqrtf(3.0f / (float)ts[i].cols);
            while (cnt) {
                size_t c = cnt < ((size_t)1 << 23) ? (size_t)cnt : ((size_t)1 << 23);
                for (size_t k = 0; k < c; k++) {
                    if (ts[i].norm) { buf[k] = 0x3f80; continue; }
                    uint64_t r = rng_next(&seed);
                    float u = (float)(r >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
                    buf[k] = ds8b__f32_to_bf16(u * a);
                }
                if (fwrite(buf, 2, c, o) != c) { fprintf(stderr, "ds8b: write failed: %s\n", strerror(errno)); fclose(o); return 1; }
                cnt -= c;
                total += (double)c * 2;
            }
        }
        if (fclose(o) != 0) { fprintf(stderr, "ds8b: write failed on %s\n", path); return 1; }
        fprintf(stderr, "ds8b: wrote %s (%.2f GB so far, %.0f s)\n", fname, total / 1e9, now_s() - t0);
    }
    char *ij = cJSON_Print(index);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", outdir);
    FILE *ixf = fopen(path, "wb");
    if (ixf) { fputs(ij, ixf); fclose(ixf); }
    free(ij);
    cJSON_Delete(index);
    cJSON_Delete(cfg);
    free(buf);
    free(ts);
    free(shard_of);
    fprintf(stderr, "ds8b: random %s checkpoint in %s: %.2f GB\n", qwen3 ? "qwen3" : "llama", outdir, total / 1e9);
    return 0;
}

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
    double t0 = now_s();
    while (!rc && active > 0) rc = ds8b_batch_step(b, &active);
    double dt = now_s() - t0;
    int64_t total = 0;
    for (int i = 0; i < seqs; i++) total += ss[i] ? ds8b_session_n_generated(ss[i]) : 0;
    *tps = dt > 0 ? (double)total / dt : 0;
    ds8b_batch_free(b);
    for (int i = 0; i < seqs; i++) ds8b_session_free(ss[i]);
    free(ss);
    ds8b_params_free(p);
    return rc;
}

static int cmd_bench_seqs(ds8b_model *m, const char *list, int tg, int reps, int threads) {
    int rc = 0;
    double base = 0;
    int nth = threads;
    if (nth <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nth = c > 0 ? (int)c : 1;
    }
    printf("| model | scheme | threads | isa | sequences | test | t/s (all sequences) | t/s per sequence | vs 1 sequence |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    const char *q = list;
    while (*q && !rc) {
        char *end;
        long seqs = strtol(q, &end, 10);
        if (end == q || seqs < 1 || seqs > DS8B_BATCH_MAX) {
            fprintf(stderr, "ds8b: --seqs wants numbers from 1 to %d separated by commas\n", DS8B_BATCH_MAX);
            return 2;
        }
        q = *end == ',' ? end + 1 : end;
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

static int cmd_bench(int argc, char **argv) {
    if (cli_flag(argc, argv, "--kernels")) return cli_bench_kernels(argc, argv);
    const char *path = cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("bench needs -m PATH");
    double v;
    int pp = 512, tg = 128, reps = 3, threads = 0;
    if (cli_opt(argc, argv, "-p") && cli_num(cli_opt(argc, argv, "-p"), &v)) pp = (int)v;
    if (cli_opt(argc, argv, "-n") && cli_num(cli_opt(argc, argv, "-n"), &v)) tg = (int)v;
    if (cli_opt(argc, argv, "-r") && cli_num(cli_opt(argc, argv, "-r"), &v)) reps = (int)v;
    if (cli_opt(argc, argv, "--threads") && cli_num(cli_opt(argc, argv, "--threads"), &v)) threads = (int)v;
    if (cli_opt(argc, argv, "-t") && cli_num(cli_opt(argc, argv, "-t"), &v)) threads = (int)v;
    if (reps < 1) reps = 1;
    if (pp < 0 || tg < 0 || pp > 1000000 || tg > 1000000 || reps > 1000)
        return cli_usage("bench: -p and -n must be 0..1000000, -r 1..1000");
    if (pp == 0 && tg == 0) return cli_usage("bench: nothing to measure with -p 0 -n 0");
    ds8b_model *m;
    if (cli_load(argc, argv, path, &m)) return 1;
    if (cli_flag(argc, argv, "--pass-cost") || cli_opt(argc, argv, "--spec-prompt")) {
        int src = cli_flag(argc, argv, "--pass-cost") ? cli_bench_pass_cost(argc, argv, m) : cli_bench_spec(argc, argv, m);
        ds8b_model_free(m);
        return src;
    }
    const char *seqs = cli_opt(argc, argv, "--seqs");
    if (seqs) {
        int brc = cmd_bench_seqs(m, seqs, tg, reps, threads);
        ds8b_model_free(m);
        return brc;
    }
    ds8b_params *p;
    ds8b_params_create(&p);
    /* room for the warm-up (32 + 4 tokens) as well */
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, pp + tg + 8 > 64 ? pp + tg + 8 : 64);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, threads);
    const char *nb = cli_opt(argc, argv, "--batch");
    if (nb && cli_num(nb, &v)) ds8b_params_set_int(p, DS8B_PARAM_N_BATCH, (int64_t)v);
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
    /* warm-up: a short prompt and a few generated tokens */
    ds8b_session_reset(s);
    rc = ds8b_eval(s, ids, 32, NULL);
    for (int i = 0; i < 4 && !rc; i++) {
        int32_t t;
        ds8b_sample(s, &t);
        rc = ds8b_eval(s, &t, 1, NULL);
    }
    for (int r = 0; r < reps && !rc; r++) {
        ds8b_session_reset(s);
        double t0 = now_s();
        if (pp > 0) {
            rc = ds8b_eval(s, ids, (size_t)pp, NULL);
            tpp[r] = pp / (now_s() - t0);
        }
        ds8b_session_reset(s);
        rc = rc ? rc : ds8b_eval(s, ids, 1, NULL);
        t0 = now_s();
        for (int i = 0; i < tg && !rc; i++) {
            int32_t t;
            ds8b_sample(s, &t);
            rc = ds8b_eval(s, &t, 1, NULL);
        }
        ttg[r] = tg / (now_s() - t0);
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
    double roof = bw * 1e9 / bpt;
    printf("| model | scheme | threads | isa | test | t/s |\n|---|---|---|---|---|---|\n");
    if (pp > 0)
        printf("| %s | %s | %d | %s | pp%d | %.2f ± %.2f |\n", m->desc, m->scheme ? m->scheme : "?", nth,
               ds8b__isa_name(), pp, ppm, pps);
    if (tg > 0)
        printf("| %s | %s | %d | %s | tg%d | %.2f ± %.2f |\n", m->desc, m->scheme ? m->scheme : "?", nth,
               ds8b__isa_name(), tg, tgm, tgs);
    printf("\nmemory read bandwidth: %.1f GB/s (%d threads)\n", bw, nth);
    printf("weight bytes read per token: %.3f GB\n", bpt / 1e9);
    if (tg > 0) printf("decode roofline: %.2f t/s; tg%d reaches %.0f%% of it\n", roof, tg, 100.0 * tgm / roof);
    else printf("decode roofline: %.2f t/s\n", roof);
    if (pp > 0) {
        double gops = 2.0 * layer_macs(m) * ppm / 1e9, peak = ds8b__measure_vnni_peak(nth);
        printf("pp%d: %.0f GOPS in the layer matrices", pp, gops);
        if (peak > 0)
            printf(" = %.0f%% of the int8 VNNI peak measured now (%.0f GOPS, %d threads)", 100.0 * gops / peak, peak,
                   nth);
        printf("\n");
    }
    free(ids);
    free(tpp);
    free(ttg);
    ds8b_session_free(s);
    ds8b_model_free(m);
    return rc ? 1 : 0;
}


/* ================================================================== */
/* chat-template and chat                                              */
/* ================================================================== */
static int cmd_chat_template(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("chat-template needs -m PATH (JSON messages on stdin)");
    size_t len;
    char *msgs = cli_read_all(stdin, &len);
    if (!msgs) return 1;
    ds8b_tokenizer *t = NULL;
    int rc = ds8b_tokenizer_load(path, &t);
    if (rc) { free(msgs); return cli_fail("loading the tokenizer", rc); }
    int add = !cli_flag(argc, argv, "--no-generation-prompt");
    size_t need = 0;
    rc = ds8b_tokenizer_chat_render(t, msgs, len, add, NULL, 0, &need);
    char *out = NULL;
    if (rc == DS8B_E_BUFFER) {
        out = malloc(need + 1);
        rc = out ? ds8b_tokenizer_chat_render(t, msgs, len, add, out, need + 1, &need) : DS8B_E_NOMEM;
    }
    int ret = 0;
    if (rc) ret = cli_fail("rendering the chat template", rc);
    else fwrite(out, 1, need, stdout);
    free(out);
    free(msgs);
    ds8b_tokenizer_free(t);
    return ret;
}

static int chat_piece(void *user, const char *piece, size_t len, int channel) {
    int *last = user;
    if (channel != *last) fputs(channel == DS8B_CHANNEL_REASONING ? "\x1b[2m" : "\x1b[0m", stdout);
    *last = channel;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int cmd_chat(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("chat needs -m PATH");
    ds8b_params *p = cli_session_params(argc, argv);
    if (!p) return 2;
    ds8b_model *m;
    if (cli_load(argc, argv, path, &m)) { ds8b_params_free(p); return 1; }
    ds8b_session *s;
    ds8b_chat *c = NULL;
    int rc = ds8b_session_create(m, p, &s);
    ds8b_params_free(p);
    if (!rc) rc = ds8b_chat_create(s, &c);
    if (rc) { ds8b_model_free(m); return cli_fail("creating the chat", rc); }
    const char *sys = cli_opt(argc, argv, "--system");
    if (sys) ds8b_chat_add(c, "system", sys);
    char *line = NULL;
    size_t cap = 0;
    ssize_t l;
    fputs("> ", stdout);
    fflush(stdout);
    while ((l = getline(&line, &cap, stdin)) > 0) {
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
        if (!l) { fputs("> ", stdout); fflush(stdout); continue; }
        ds8b_chat_add(c, "user", line);
        int last = DS8B_CHANNEL_ANSWER;
        rc = ds8b_chat_reply(c, chat_piece, &last, NULL);
        fputs("\x1b[0m\n> ", stdout);
        fflush(stdout);
        if (rc && rc != DS8B_E_CANCELLED) { cli_fail("replying", rc); break; }
    }
    free(line);
    ds8b_chat_free(c);
    ds8b_session_free(s);
    ds8b_model_free(m);
    return rc && rc != DS8B_E_CANCELLED ? 1 : 0;
}

/* ================================================================== */
/* estimate                                                            */
/* ================================================================== */
static void print_estimate(const char *path, int argc, char **argv) {
    static const char *const schemes[] = {"", "f16", "q8_0", "q4_0", "q4_k_m", "w4a16"};
    static const char *const cats[] = {"weights (heap)", "KV cache", "scratch", "tokenizer", "session", "threads",
                                       "other", "mapped (file)"};
    int64_t est[6][DS8B_MEM__COUNT];
    bool ok[6];
    ds8b_params *p = cli_session_params(argc, argv);
    for (int s = 0; s < 6; s++) ok[s] = ds8b_estimate(path, schemes[s], p, est[s], DS8B_MEM__COUNT) == DS8B_OK;
    if (!ok[0]) fprintf(stderr, "ds8b: estimate: %s\n", ds8b_errmsg());
    int64_t n_ctx = 4096;
    if (p) ds8b_params_get_int(p, DS8B_PARAM_N_CTX, &n_ctx);
    ds8b_params_free(p);
    printf("\nmemory estimate (MB) for one session of n_ctx %lld:\n", (long long)n_ctx);
    printf("%-16s", "category");
    for (int s = 0; s < 6; s++) printf(" %10s", s == 0 ? "as stored" : schemes[s]);
    printf("\n");
    for (int c = 0; c < DS8B_MEM__COUNT; c++) {
        printf("%-16s", cats[c]);
        for (int s = 0; s < 6; s++) printf(" %10.1f", ok[s] ? (double)est[s][c] / 1e6 : -1.0);
        printf("\n");
    }
    printf("%-16s", "total");
    for (int s = 0; s < 6; s++) {
        double t = 0;
        for (int c = 0; c < DS8B_MEM__COUNT; c++) t += ok[s] ? (double)est[s][c] : 0;
        printf(" %10.1f", t / 1e6);
    }
    printf("\n");
}

static int cmd_estimate(int argc, char **argv) {
    const char *path = argc > 0 && argv[0][0] != '-' ? argv[0] : cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("estimate needs a model PATH");
    print_estimate(path, argc, argv);
    return 0;
}

/* ================================================================== */
/* dispatch                                                            */
/* ================================================================== */
int cli_dispatch_extra(const char *cmd, int argc, char **argv) {
    if (strcmp(cmd, "quantize") == 0) return cmd_quantize(argc, argv, NULL);
    if (strcmp(cmd, "convert") == 0) return cmd_quantize(argc, argv, "f16");
    if (strcmp(cmd, "make-random") == 0) return cmd_make_random(argc, argv);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(argc, argv);
    if (strcmp(cmd, "chat-template") == 0) return cmd_chat_template(argc, argv);
    if (strcmp(cmd, "chat") == 0) return cmd_chat(argc, argv);
    if (strcmp(cmd, "estimate") == 0) return cmd_estimate(argc, argv);
    return -1;
}

void cli_usage_extra(void) {
    fputs("  quantize   IN OUT SCHEME [--threads N]     (f32 f16 bf16 q8_0 q4_0 q4_k_m w4a16; writes GGUF)\n"
          "  convert    IN OUT [f16|bf16|f32]           (HF checkpoint to GGUF without quantizing)\n"
          "  make-random CONFIG.json OUTDIR [--tokenizer DIR] [--seed S] [--shard-gb G]\n"
          "  bench      -m PATH [-p 512] [-n 128] [-r 3] [--threads N] [--seqs 1,2,4,8,16]\n"
          "  bench      --kernels [--types q4_0,q2_k,...] [--shapes 4096x4096,...] [--n 1,16] [--threads 1,2] [--rowwise]\n"
          "  bench      -m PATH --pass-cost [--k 16] [-p DEPTH] [-r 7]   (speculation: (k+1)-position pass vs 1)\n"
          "  bench      -m PATH --spec-prompt FILE [--draft-file F] [--draft-model PATH] [--spec on|auto] [-n N]\n"
          "  estimate   PATH [--ctx N] [--batch N] [--kv-type f32|f16|q8_0] [--threads N]\n"
          "  chat-template -m PATH [--no-generation-prompt]   (JSON messages on stdin)\n"
          "  chat       -m PATH [--system TEXT] [sampling options]\n",
          stdout);
}

void cli_info_extra(const ds8b_model *m, int argc, char **argv) {
    const ds8b__type_traits *t = ds8b__type_info(m->layers[0].w_gate.type);
    printf("%-14s %s\n", "weight type", t ? t->name : "?");
    printf("%-14s %s\n", "scheme", m->scheme ? m->scheme : "?");
    /* dtypes of every matrix */
    int counts[DS8B_T__COUNT] = {0};
    for (int64_t i = 0; i < m->hp.n_layer; i++) {
        const ds8b__layer *L = &m->layers[i];
        const ds8b__tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int r = 0; r < 7; r++) counts[ts[r]->type]++;
    }
    counts[m->tok_embd.type]++;
    if (!m->output_is_embd) counts[m->output.type]++;
    printf("%-14s", "matrix dtypes");
    for (int k = 0; k < DS8B_T__COUNT; k++)
        if (counts[k]) printf(" %s x%d", ds8b__type_info(k)->name, counts[k]);
    printf("\n");
    print_estimate(m->path, argc, argv);
}
