/*
 * cmd_model.c -- commands about model files: ds8b info, estimate, quantize,
 * convert and make-random. info reads model internals (matrix dtypes).
 */
#include "cli.h"

#include "kernels/kernels.h"
#include "model/model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ================================================================== */
/* estimate                                                            */
/* ================================================================== */
/* info and estimate: the model as PATH or -m PATH */
const cli_optdef info_opts[] = {
    {"-m", CLI_STR, "PATH"},
    {0},
};

static const char *model_path(const cli_args *a) {
    const char *path = a->npos > 0 ? a->pos[0] : cli_opt(a, "-m");
    const char *why = !path ? "needs a model PATH (or -m PATH)"
                    : a->npos > 0 && cli_opt(a, "-m") ? "takes the model as PATH or as -m PATH, not both" : NULL;
    if (!why) return path;
    cli_usage(a, "%s", why);
    return NULL;
}

static void print_estimate(const char *path, const cli_args *a) {
    static const char *const schemes[] = {"", "f16", "q8_0", "q4_0", "q4_k_m", "w4a16"};
    static const char *const cats[] = {"weights (heap)", "KV cache", "scratch", "tokenizer", "session", "threads",
                                       "other", "mapped (file)"};
    int64_t est[6][DS8B_MEM__COUNT];
    bool ok[6];
    ds8b_params *p = cli_session_params(a);
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

int cmd_estimate(const cli_args *a) {
    const char *path = model_path(a);
    if (!path) return 2;
    print_estimate(path, a);
    return 0;
}

/* What info adds from the model internals: weight types, the estimate table. */
static void print_internals(const ds8b_model *m, const cli_args *a) {
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
    print_estimate(m->path, a);
}

/* ================================================================== */
/* info                                                                */
/* ================================================================== */
int cmd_info(const cli_args *a) {
    const char *path = model_path(a);
    if (!path) return 2;
    ds8b_model *m;
    if (cli_load(a, path, &m)) return 1;
    static const struct { ds8b_model_key k; const char *name; } keys[] = {
        {DS8B_MODEL_N_VOCAB, "vocab"}, {DS8B_MODEL_N_EMBD, "n_embd"}, {DS8B_MODEL_N_LAYER, "n_layer"},
        {DS8B_MODEL_N_HEAD, "n_head"}, {DS8B_MODEL_N_HEAD_KV, "n_head_kv"}, {DS8B_MODEL_HEAD_DIM, "head_dim"},
        {DS8B_MODEL_N_FF, "n_ff"}, {DS8B_MODEL_N_CTX_TRAIN, "n_ctx_train"}, {DS8B_MODEL_N_TENSORS, "tensors"},
        {DS8B_MODEL_N_PARAMS, "parameters"}, {DS8B_MODEL_WEIGHT_BYTES, "weight_bytes"},
    };
    int64_t arch = 0;
    ds8b_model_info(m, DS8B_MODEL_ARCH, &arch);
    printf("path:          %s\n", path);
    printf("architecture:  %s\n", arch == DS8B_ARCH_QWEN3 ? "qwen3" : "llama");
    printf("description:   %s\n", ds8b_model_desc(m));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t v = 0;
        ds8b_model_info(m, keys[i].k, &v);
        printf("%-14s %lld\n", keys[i].name, (long long)v);
    }
    print_internals(m, a);
    ds8b_model_free(m);
    return 0;
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

/* quantize and convert */
const cli_optdef quantize_opts[] = {
    {"--threads", CLI_INT, "N"},
    {"--imatrix", CLI_STR, "FILE"},
    {"--calibrate", CLI_STR, "TEXT_FILE"},
    {"--save-imatrix", CLI_STR, "FILE"},
    {0},
};

/* An importance matrix from --imatrix FILE, or computed over --calibrate
 * TEXT_FILE with the float model at in (saved to --save-imatrix FILE when
 * given). *im stays NULL when neither is given. Returns a process status. */
static int get_imatrix(const cli_args *a, const char *in, ds8b_params *p, ds8b_imatrix **im) {
    const char *ipath = cli_opt(a, "--imatrix"), *cpath = cli_opt(a, "--calibrate"), *spath = cli_opt(a, "--save-imatrix");
    *im = NULL;
    if (ipath && cpath) return cli_usage(a, "give --imatrix or --calibrate, not both");
    if (spath && !cpath) return cli_usage(a, "--save-imatrix needs --calibrate");
    int rc;
    if (ipath) {
        if ((rc = ds8b_imatrix_load(ipath, im))) return cli_fail("reading the importance matrix", rc);
    } else if (cpath) {
        size_t len;
        char *text = cli_read_file(cpath, &len);
        if (!text) return 1;
        ds8b_model *m = NULL;
        if ((rc = ds8b_model_load(in, p, &m))) {
            free(text);
            return cli_fail("loading the model to calibrate", rc);
        }
        double t0 = cli_now_s();
        rc = ds8b_imatrix_compute(m, text, len, p, im);
        free(text);
        ds8b_model_free(m);
        fputc('\n', stderr);
        if (rc) return cli_fail("calibrating", rc);
        int64_t ch = 0;
        ds8b_imatrix_info(*im, DS8B_IMATRIX_CHUNKS, &ch);
        fprintf(stderr, "ds8b: importance matrix from %lld chunks of %s in %.1f s\n", (long long)ch, cpath,
                cli_now_s() - t0);
        if (spath && (rc = ds8b_imatrix_save(*im, spath))) {
            ds8b_imatrix_free(*im);
            *im = NULL;
            return cli_fail("writing the importance matrix", rc);
        }
    }
    if (*im) ds8b_params_set_imatrix(p, *im);
    return 0;
}

static int quantize(const cli_args *a, const char *fixed_scheme) {
    const char *in = a->pos[0], *out = a->pos[1];
    const char *scheme = a->npos >= 3 ? a->pos[2] : fixed_scheme;
    ds8b_params *p;
    if (ds8b_params_create(&p)) return 1;
    int64_t th;
    if (cli_int(a, "--threads", &th) && ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, th)) {
        fprintf(stderr, "ds8b: --threads %lld: %s\n", (long long)th, ds8b_errmsg());
        ds8b_params_free(p);
        return 2;
    }
    double last = -1;
    ds8b_params_set_progress(p, on_progress, &last);
    ds8b_imatrix *im = NULL;
    int st_im = get_imatrix(a, in, p, &im);
    if (st_im) {
        ds8b_params_free(p);
        return st_im;
    }
    last = -1;
    double t0 = cli_now_s();
    int rc = ds8b_quantize(in, out, scheme, p);
    double dt = cli_now_s() - t0;
    ds8b_params_free(p);
    ds8b_imatrix_free(im);
    fputc('\n', stderr);
    if (rc) return cli_fail("quantizing", rc);
    struct stat st;
    stat(out, &st);
    fprintf(stderr, "ds8b: wrote %s (%s%s, %.1f MB) in %.1f s, peak RSS %.2f GB\n", out, scheme,
            im ? " with an importance matrix" : "", (double)st.st_size / 1e6, dt, cli_peak_rss_gb());
    return 0;
}

/* ds8b imatrix: an importance matrix of a float model over text, written
 * in llama.cpp's GGUF imatrix format. */
const cli_optdef imatrix_opts[] = {
    {"-m", CLI_STR, "MODEL", CLI_REQ},
    {"-f", CLI_STR, "TEXT_FILE", CLI_REQ},
    {"-o", CLI_STR, "OUT.gguf", CLI_REQ},
    {"--threads", CLI_INT, "N"},
    {0},
};

int cmd_imatrix(const cli_args *a) {
    const char *mpath = cli_opt(a, "-m"), *tpath = cli_opt(a, "-f"), *opath = cli_opt(a, "-o");
    ds8b_params *p;
    if (ds8b_params_create(&p)) return 1;
    int64_t th;
    if (cli_int(a, "--threads", &th) && ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, th)) {
        fprintf(stderr, "ds8b: --threads %lld: %s\n", (long long)th, ds8b_errmsg());
        ds8b_params_free(p);
        return 2;
    }
    double last = -1;
    ds8b_params_set_progress(p, on_progress, &last);
    size_t len;
    char *text = cli_read_file(tpath, &len);
    if (!text) {
        ds8b_params_free(p);
        return 1;
    }
    ds8b_model *m = NULL;
    ds8b_imatrix *im = NULL;
    int ret = 0, rc;
    double t0 = cli_now_s();
    if ((rc = ds8b_model_load(mpath, p, &m))) ret = cli_fail("loading the model", rc);
    else if ((rc = ds8b_imatrix_compute(m, text, len, p, &im))) ret = cli_fail("calibrating", rc);
    else if ((rc = ds8b_imatrix_save(im, opath))) ret = cli_fail("writing the importance matrix", rc);
    fputc('\n', stderr);
    if (!ret) {
        int64_t n = 0, ch = 0;
        ds8b_imatrix_info(im, DS8B_IMATRIX_ENTRIES, &n);
        ds8b_imatrix_info(im, DS8B_IMATRIX_CHUNKS, &ch);
        fprintf(stderr, "ds8b: wrote %s (%lld matrices, %lld chunks) in %.1f s\n", opath, (long long)n, (long long)ch,
                cli_now_s() - t0);
    }
    free(text);
    ds8b_imatrix_free(im);
    ds8b_model_free(m);
    ds8b_params_free(p);
    return ret;
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

const cli_optdef make_random_opts[] = {
    {"--tokenizer", CLI_STR, "DIR"},
    {"--seed", CLI_INT, "S"},
    {"--shard-gb", CLI_FLOAT, "G"},
    {0},
};

int cmd_make_random(const cli_args *a) {
    const char *cfg_path = a->pos[0], *outdir = a->pos[1];
    double shard_gb = 4.0;
    if (cli_float(a, "--shard-gb", &shard_gb) && !(shard_gb > 0)) return cli_usage(a, "--shard-gb must be > 0");
    size_t len;
    char *js = cli_read_file(cfg_path, &len);
    if (!js) return 1;
    cJSON *cfg = cJSON_Parse(js);
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
    /* tokenizer: the one given, else the real tokenizer matching the family */
    const char *tokdir = cli_opt(a, "--tokenizer");
    char tdef[4096];
    if (!tokdir) {
        const char *sh = getenv("DS8B_SHARED");
        snprintf(tdef, sizeof tdef, "%s/tokenizers/%s", sh && *sh ? sh : "../shared", qwen3 ? "qwen3" : "llama3.1");
        tokdir = tdef;
    }
    {
        /* the tokenizer must fit the embedding table, or no GGUF can be
         * written from the checkpoint (llama.cpp refuses such files) */
        char s[4096];
        snprintf(s, sizeof s, "%s/tokenizer.json", tokdir);
        ds8b_tokenizer *tk = NULL;
        if (ds8b_tokenizer_load(s, &tk) == DS8B_OK) {
            int32_t nv = ds8b_tokenizer_vocab_size(tk);
            ds8b_tokenizer_free(tk);
            if (nv > vocab) {
                fprintf(stderr, "ds8b: make-random: %s has %d tokens, more than the config's vocab_size %lld\n", s,
                        (int)nv, (long long)vocab);
                cJSON_Delete(cfg);
                free(js);
                return 1;
            }
        }
    }
    mkdir(outdir, 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", outdir);
    FILE *cf = fopen(path, "wb");
    if (!cf) { fprintf(stderr, "ds8b: cannot write %s\n", path); return 1; }
    fwrite(js, 1, len, cf);
    fclose(cf);
    free(js);
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
    uint64_t seed = 1;
    int64_t sv;
    if (cli_int(a, "--seed", &sv)) seed = (uint64_t)sv | 1;
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
    double t0 = cli_now_s(), total = 0;
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
            float amp = sqrtf(3.0f / (float)ts[i].cols);
            while (cnt) {
                size_t c = cnt < ((size_t)1 << 23) ? (size_t)cnt : ((size_t)1 << 23);
                for (size_t k = 0; k < c; k++) {
                    if (ts[i].norm) { buf[k] = 0x3f80; continue; }
                    uint64_t r = rng_next(&seed);
                    float u = (float)(r >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
                    buf[k] = ds8b__f32_to_bf16(u * amp);
                }
                if (fwrite(buf, 2, c, o) != c) { fprintf(stderr, "ds8b: write failed: %s\n", strerror(errno)); fclose(o); return 1; }
                cnt -= c;
                total += (double)c * 2;
            }
        }
        if (fclose(o) != 0) { fprintf(stderr, "ds8b: write failed on %s\n", path); return 1; }
        fprintf(stderr, "ds8b: wrote %s (%.2f GB so far, %.0f s)\n", fname, total / 1e9, cli_now_s() - t0);
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


int cmd_quantize(const cli_args *a) { return quantize(a, NULL); }
int cmd_convert(const cli_args *a) { return quantize(a, "f16"); }
