/*
 * ds8b -- the command-line tool of libds8b.
 *
 *   ds8b generate -m PATH -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P]
 *                 [--min-p P] [--repeat-penalty R] [--seed S] [--threads N]
 *                 [--ctx N] [--stop STR] [--special] [--reasoning]
 *   ds8b tokenize -m PATH [--special] [--jsonl]
 *   ds8b detokenize -m PATH
 *   ds8b eval -m PATH --ids JSON_ARRAY --logits-out FILE
 *   ds8b perplexity -m PATH --windows FILE [--base FLOAT_MODEL]
 *   ds8b info PATH
 *
 * Exit status: 0 on success, 1 on a library error (message on stderr),
 * 2 on a usage error.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ================================================================== */
/* Shared helpers                                                      */
/* ================================================================== */
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
        {"--spec", DS8B_PARAM_SPEC, false},         {"--max-draft", DS8B_PARAM_SPEC_MAX_DRAFT, false},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *v = cli_opt(argc, argv, map[i].opt);
        if (!v) continue;
        double d;
        if (strcmp(map[i].opt, "--kv-type") == 0) {
            d = strcmp(v, "f32") == 0 ? DS8B_KV_F32 : strcmp(v, "f16") == 0 ? DS8B_KV_F16
              : strcmp(v, "q8_0") == 0 ? DS8B_KV_Q8_0 : -1;
        } else if (strcmp(map[i].opt, "--spec") == 0) {
            d = strcmp(v, "off") == 0 ? DS8B_SPEC_OFF : strcmp(v, "auto") == 0 ? DS8B_SPEC_AUTO
              : strcmp(v, "on") == 0 ? DS8B_SPEC_ON : -1;
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

/* ================================================================== */
/* generate                                                            */
/* ================================================================== */
typedef struct gen_state {
    int last_channel;
    bool color;
} gen_state;

static int on_piece(void *user, const char *piece, size_t len, int channel) {
    gen_state *g = user;
    if (g->color && channel != g->last_channel)
        fputs(channel == DS8B_CHANNEL_REASONING ? "\x1b[2m" : "\x1b[0m", stdout);
    g->last_channel = channel;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int cmd_generate(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m"), *prompt = cli_opt(argc, argv, "-p");
    if (!path || !prompt) return cli_usage("generate needs -m PATH and -p TEXT");
    ds8b_params *p = cli_session_params(argc, argv);
    if (!p) return 2;
    ds8b_model *m;
    if (cli_load(argc, argv, path, &m)) { ds8b_params_free(p); return 1; }
    ds8b_session *s;
    int rc = ds8b_session_create(m, p, &s);
    ds8b_params_free(p);
    if (rc) { ds8b_model_free(m); return cli_fail("creating the session", rc); }
    ds8b_model *dm = NULL; /* --draft-model: drafts for speculative decoding */
    const char *dpath = cli_opt(argc, argv, "--draft-model");
    if (dpath && (cli_load(argc, argv, dpath, &dm) ||
                  (rc = ds8b_session_set_draft_model(s, dm)) != DS8B_OK)) {
        if (dm) cli_fail("--draft-model", rc);
        ds8b_session_free(s);
        ds8b_model_free(dm);
        ds8b_model_free(m);
        return 1;
    }
    int flags = cli_flag(argc, argv, "--raw") ? 0 : DS8B_GEN_ADD_SPECIAL;
    if (cli_flag(argc, argv, "--reasoning")) flags |= DS8B_GEN_REASONING;
    gen_state g = {DS8B_CHANNEL_ANSWER, cli_flag(argc, argv, "--color")};
    int64_t ng = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!cli_flag(argc, argv, "--no-echo")) fputs(prompt, stdout);
    rc = ds8b_generate(s, prompt, strlen(prompt), flags, on_piece, &g, &ng);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (g.color) fputs("\x1b[0m", stdout);
    fputc('\n', stdout);
    int ret = 0;
    if (rc) ret = cli_fail("generating", rc);
    if (cli_flag(argc, argv, "--stats")) {
        double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        fprintf(stderr, "ds8b: %lld tokens in %.2f s\n", (long long)ng, sec);
        int64_t drafted = 0, accepted = 0, passes = 0;
        ds8b_session_spec_stats(s, &drafted, &accepted, &passes);
        fprintf(stderr, "speculation: drafted %lld, accepted %lld, passes %lld\n", (long long)drafted,
                (long long)accepted, (long long)passes);
    }
    ds8b_session_free(s);
    ds8b_model_free(dm);
    ds8b_model_free(m);
    return ret;
}

/* ================================================================== */
/* tokenize / detokenize                                               */
/* ================================================================== */
static int print_ids(const ds8b_tokenizer *t, const char *text, size_t len, int flags) {
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return 1;
    int rc = ds8b_tokenize(t, text, len, flags, ids, cap, &n);
    if (rc == DS8B_E_BUFFER) {
        free(ids);
        ids = malloc((n + 1) * sizeof *ids);
        cap = n + 1;
        rc = ids ? ds8b_tokenize(t, text, len, flags, ids, cap, &n) : DS8B_E_NOMEM;
    }
    if (rc) { free(ids); return cli_fail("tokenizing", rc); }
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    putchar(']');
    free(ids);
    return 0;
}

static int cmd_tokenize(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("tokenize needs -m PATH");
    ds8b_tokenizer *t;
    int rc = ds8b_tokenizer_load(path, &t);
    if (rc) return cli_fail("loading the tokenizer", rc);
    int flags = 0;
    if (cli_flag(argc, argv, "--special")) flags |= DS8B_TOKENIZE_ADD_SPECIAL;
    if (cli_flag(argc, argv, "--no-parse-special")) flags |= DS8B_TOKENIZE_NO_PARSE_SPECIAL;
    int ret = 0;
    if (cli_flag(argc, argv, "--jsonl")) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t l;
        long lineno = 0;
        while ((l = getline(&line, &cap, stdin)) > 0) {
            lineno++;
            cJSON *o = cJSON_ParseWithLength(line, (size_t)l);
            cJSON *tx = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
            if (!cJSON_IsString(tx)) {
                fprintf(stderr, "ds8b: line %ld: expected {\"text\": ...}\n", lineno);
                cJSON_Delete(o);
                ret = 1;
                break;
            }
            fputs("{\"ids\": ", stdout);
            if (print_ids(t, tx->valuestring, strlen(tx->valuestring), flags)) { cJSON_Delete(o); ret = 1; break; }
            fputs("}\n", stdout);
            cJSON_Delete(o);
        }
        free(line);
    } else {
        size_t len;
        char *text = cli_read_all(stdin, &len);
        if (!text) ret = 1;
        else {
            ret = print_ids(t, text, len, flags);
            putchar('\n');
        }
        free(text);
    }
    ds8b_tokenizer_free(t);
    return ret;
}

static int cmd_detokenize(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("detokenize needs -m PATH");
    size_t len, n;
    char *in = cli_read_all(stdin, &len);
    int32_t *ids = in ? cli_parse_ids(in, &n) : NULL;
    free(in);
    if (!ids) return cli_usage("detokenize reads a JSON array of integer ids on stdin");
    ds8b_tokenizer *t;
    int rc = ds8b_tokenizer_load(path, &t);
    if (rc) { free(ids); return cli_fail("loading the tokenizer", rc); }
    int flags = cli_flag(argc, argv, "--skip-special") ? DS8B_DETOKENIZE_SKIP_SPECIAL : 0;
    size_t out_len = 0;
    rc = ds8b_detokenize(t, ids, n, flags, NULL, 0, &out_len);
    char *out = NULL;
    if (rc == DS8B_OK || rc == DS8B_E_BUFFER) {
        out = malloc(out_len + 1);
        rc = out ? ds8b_detokenize(t, ids, n, flags, out, out_len + 1, &out_len) : DS8B_E_NOMEM;
    }
    int ret = 0;
    if (rc) ret = cli_fail("detokenizing", rc);
    else fwrite(out, 1, out_len, stdout);
    free(out);
    free(ids);
    ds8b_tokenizer_free(t);
    return ret;
}

/* ================================================================== */
/* eval and perplexity                                                 */
/* ================================================================== */
static int cmd_eval(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m"), *ids_json = cli_opt(argc, argv, "--ids");
    const char *out_path = cli_opt(argc, argv, "--logits-out");
    if (!path || !ids_json || !out_path) return cli_usage("eval needs -m PATH --ids JSON --logits-out FILE");
    size_t n;
    int32_t *ids = cli_parse_ids(ids_json, &n);
    if (!ids || n == 0) { free(ids); return cli_usage("--ids must be a non-empty JSON array of integers"); }
    ds8b_params *p = cli_session_params(argc, argv);
    ds8b_model *m;
    if (!p) { free(ids); return 2; }
    if ((int64_t)n > 4096) ds8b_params_set_int(p, DS8B_PARAM_N_CTX, (int64_t)n);
    if (cli_load(argc, argv, path, &m)) { free(ids); ds8b_params_free(p); return 1; }
    ds8b_session *s;
    int rc = ds8b_session_create(m, p, &s);
    ds8b_params_free(p);
    int64_t vocab = 0;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &vocab);
    float *logits = rc ? NULL : malloc(n * (size_t)vocab * sizeof(float));
    int ret = 0;
    if (rc) ret = cli_fail("creating the session", rc);
    else if (!logits) ret = cli_fail("allocating logits", DS8B_E_NOMEM);
    else if ((rc = ds8b_eval(s, ids, n, logits))) ret = cli_fail("evaluating", rc);
    else {
        FILE *f = fopen(out_path, "wb");
        if (!f || fwrite(logits, sizeof(float), n * (size_t)vocab, f) != n * (size_t)vocab) {
            fprintf(stderr, "ds8b: cannot write %s: %s\n", out_path, strerror(errno));
            ret = 1;
        }
        if (f && fclose(f) != 0) ret = 1;
    }
    free(logits);
    free(ids);
    ds8b_session_free(s);
    ds8b_model_free(m);
    return ret;
}

/* Mean NLL of each window; optional KL divergence and top-1 agreement
 * against a base model evaluated on the same windows. */
static int cmd_perplexity(int argc, char **argv, bool kld) {
    const char *path = cli_opt(argc, argv, "-m"), *wpath = cli_opt(argc, argv, "--windows");
    const char *base_path = cli_opt(argc, argv, "--base");
    if (!path || !wpath) return cli_usage("perplexity needs -m PATH --windows FILE");
    if (kld && !base_path) return cli_usage("kld needs --base FLOAT_MODEL");
    FILE *wf = fopen(wpath, "rb");
    if (!wf) { fprintf(stderr, "ds8b: cannot open %s: %s\n", wpath, strerror(errno)); return 1; }
    size_t len;
    char *js = cli_read_all(wf, &len);
    fclose(wf);
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    free(js);
    /* accept a bare array of windows, an object with "windows", or a
     * reference file with "perplexity": {LANG: {"windows": ...}} (--lang
     * picks one language; default: all of them) */
    cJSON *wins = root;
    const char *lang = cli_opt(argc, argv, "--lang");
    if (root && cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, "perplexity")) {
        cJSON *ppl = cJSON_GetObjectItemCaseSensitive(root, "perplexity");
        cJSON *all = cJSON_CreateArray();
        for (cJSON *l = ppl ? ppl->child : NULL; l; l = l->next) {
            if (lang && strcmp(l->string, lang) != 0) continue;
            cJSON *w = cJSON_GetObjectItemCaseSensitive(l, "windows");
            for (cJSON *x = w ? w->child : NULL; x; x = x->next) cJSON_AddItemToArray(all, cJSON_Duplicate(x, 1));
        }
        cJSON_AddItemToObject(root, "__all", all);
        wins = all;
    } else if (root && cJSON_IsObject(root)) {
        wins = cJSON_GetObjectItemCaseSensitive(root, "windows");
    }
    if (!wins || !cJSON_IsArray(wins) || cJSON_GetArraySize(wins) == 0) {
        cJSON_Delete(root);
        return cli_usage("--windows must hold a JSON array of id arrays");
    }
    ds8b_params *p = cli_session_params(argc, argv);
    if (!p) { cJSON_Delete(root); return 2; }
    ds8b_model *m = NULL, *bm = NULL;
    ds8b_session *s = NULL, *bs = NULL;
    int ret = 1, rc;
    int64_t maxlen = 0;
    for (cJSON *w = wins->child; w; w = w->next) if (cJSON_GetArraySize(w) > maxlen) maxlen = cJSON_GetArraySize(w);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, maxlen > 0 ? maxlen : 1);
    if (cli_load(argc, argv, path, &m)) goto out;
    if ((rc = ds8b_session_create(m, p, &s))) { cli_fail("creating the session", rc); goto out; }
    if (base_path) {
        if (cli_load(argc, argv, base_path, &bm)) goto out;
        if ((rc = ds8b_session_create(bm, p, &bs))) { cli_fail("creating the base session", rc); goto out; }
    }
    int64_t vocab = 0;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &vocab);
    float *lg = malloc((size_t)maxlen * (size_t)vocab * sizeof(float));
    float *blg = bm ? malloc((size_t)maxlen * (size_t)vocab * sizeof(float)) : NULL;
    double sum_nll = 0, sum_kl = 0, sum_base_nll = 0;
    int64_t n_kl = 0, n_agree = 0;
    int nw = 0;
    for (cJSON *w = wins->child; w; w = w->next) {
        char *wj = cJSON_PrintUnformatted(w);
        size_t n;
        int32_t *ids = wj ? cli_parse_ids(wj, &n) : NULL;
        free(wj);
        if (!ids || n < 2) { free(ids); cli_usage("each window needs at least 2 integer ids"); goto out2; }
        ds8b_session_reset(s);
        if ((rc = ds8b_eval(s, ids, n, lg))) { free(ids); cli_fail("evaluating", rc); goto out2; }
        if (bs) {
            ds8b_session_reset(bs);
            if ((rc = ds8b_eval(bs, ids, n, blg))) { free(ids); cli_fail("evaluating the base", rc); goto out2; }
        }
        double wn = 0, wbn = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const float *r = lg + i * (size_t)vocab;
            double mx = r[0];
            int64_t am = 0;
            for (int64_t k = 1; k < vocab; k++) if (r[k] > mx) { mx = r[k]; am = k; }
            double z = 0;
            for (int64_t k = 0; k < vocab; k++) z += exp(r[k] - mx);
            double lz = mx + log(z);
            wn += lz - r[ids[i + 1]];
            if (bs) {
                const float *b = blg + i * (size_t)vocab;
                double bmx = b[0];
                int64_t bam = 0;
                for (int64_t k = 1; k < vocab; k++) if (b[k] > bmx) { bmx = b[k]; bam = k; }
                double bz = 0;
                for (int64_t k = 0; k < vocab; k++) bz += exp(b[k] - bmx);
                double blz = bmx + log(bz), kl = 0;
                for (int64_t k = 0; k < vocab; k++) {
                    double lp = b[k] - blz, lq = r[k] - lz;
                    kl += exp(lp) * (lp - lq);
                }
                sum_kl += kl;
                n_kl++;
                n_agree += am == bam;
                wbn += blz - b[ids[i + 1]];
            }
        }
        sum_nll += wn / (double)(n - 1);
        sum_base_nll += wbn / (double)(n - 1);
        nw++;
        free(ids);
    }
    double mean = sum_nll / nw;
    printf("{\"windows\": %d, \"mean_nll\": %.6f, \"ppl\": %.4f", nw, mean, exp(mean));
    if (bs) {
        double bmean = sum_base_nll / nw;
        printf(", \"base_mean_nll\": %.6f, \"base_ppl\": %.4f, \"ppl_change_pct\": %.3f, \"mean_kld\": %.6f, "
               "\"top1_agreement\": %.4f",
               bmean, exp(bmean), 100.0 * (exp(mean) / exp(bmean) - 1.0), sum_kl / (double)n_kl,
               (double)n_agree / (double)n_kl);
    }
    printf("}\n");
    ret = 0;
out2:
    free(lg);
    free(blg);
out:
    ds8b_params_free(p);
    ds8b_session_free(s);
    ds8b_session_free(bs);
    ds8b_model_free(m);
    ds8b_model_free(bm);
    cJSON_Delete(root);
    return ret;
}

/* ================================================================== */
/* info                                                                */
/* ================================================================== */
static int cmd_info(int argc, char **argv) {
    const char *path = argc > 0 && argv[0][0] != '-' ? argv[0] : cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("info needs a model PATH");
    ds8b_model *m;
    if (cli_load(argc, argv, path, &m)) return 1;
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
    cli_info_extra(m, argc, argv);
    ds8b_model_free(m);
    return 0;
}

/* ================================================================== */
/* main                                                                */
/* ================================================================== */
static void usage(void) {
    fputs("usage: ds8b COMMAND [options]\n"
          "  generate   -m PATH -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
          "             [--repeat-penalty R] [--seed S] [--threads N] [--ctx N] [--stop STR]\n"
          "             [--reasoning] [--color] [--raw] [--no-echo] [--stats]\n"
          "             [--spec off|auto|on] [--max-draft K] [--draft-model PATH]\n"
          "  tokenize   -m PATH [--special] [--no-parse-special] [--jsonl]   (text on stdin)\n"
          "  detokenize -m PATH [--skip-special]                             (JSON ids on stdin)\n"
          "  eval       -m PATH --ids JSON_ARRAY --logits-out FILE\n"
          "  perplexity -m PATH --windows FILE [--lang L] [--base FLOAT_MODEL]\n"
          "  kld        -m QUANT --base FLOAT --windows FILE [--lang L]\n"
          "             (FILE: JSON array of id arrays, or a reference file with perplexity windows)\n"
          "  info       PATH\n",
          stdout);
    cli_usage_extra();
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int ac = argc - 2;
    char **av = argv + 2;
    if (strcmp(cmd, "generate") == 0) return cmd_generate(ac, av);
    if (strcmp(cmd, "tokenize") == 0) return cmd_tokenize(ac, av);
    if (strcmp(cmd, "detokenize") == 0) return cmd_detokenize(ac, av);
    if (strcmp(cmd, "eval") == 0) return cmd_eval(ac, av);
    if (strcmp(cmd, "perplexity") == 0) return cmd_perplexity(ac, av, false);
    if (strcmp(cmd, "kld") == 0) return cmd_perplexity(ac, av, true);
    if (strcmp(cmd, "info") == 0) return cmd_info(ac, av);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("ds8b %s\n", ds8b_version());
        return 0;
    }
    int rc = cli_dispatch_extra(cmd, ac, av);
    if (rc != -1) return rc;
    fprintf(stderr, "ds8b: unknown command '%s'\n", cmd);
    usage();
    return 2;
}
