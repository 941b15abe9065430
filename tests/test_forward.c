/* test_forward.c -- forward pass and generation against Hugging Face
 * reference outputs in ../shared/testdata/reference. */
#include "t.h"
#include "ds8b.h"

#include "t_json.h"
#include "t_levels.h"
#include <limits.h>
#include <stdlib.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>


static float *load_f32(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *b = malloc((size_t)sz);
    *n = fread(b, 4, (size_t)sz / 4, f);
    fclose(f);
    return b;
}


static ds8b_session *new_session(ds8b_model *m, int64_t n_ctx, int threads, int kv_type) {
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, n_ctx);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, threads);
    ds8b_params_set_int(p, DS8B_PARAM_KV_TYPE, kv_type);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0.0);
    ds8b_session *s = NULL;
    int rc = ds8b_session_create(m, p, &s);
    CHECK(rc == 0, "session: %s", ds8b_errmsg());
    ds8b_params_free(p);
    return s;
}

/* Checks every stored logit row and the greedy continuation of each
 * prompt of a reference file against a model at model_path. */
static void check_reference_at(const char *model_path, const char *json_path, const char *f32_path, int threads,
                               int kv_type, float tol, double gap_tol) {
    cJSON *ref = t_load_json(json_path);
    size_t nref = 0;
    float *want = load_f32(f32_path, &nref);
    CHECK(ref && want, "reference %s", json_path);
    if (!ref || !want) { cJSON_Delete(ref); free(want); return; }
    ds8b_model *m = NULL;
    int rc = ds8b_model_load(model_path, NULL, &m);
    CHECK(rc == 0, "load %s: %s", model_path, ds8b_errmsg());
    if (rc) { cJSON_Delete(ref); free(want); return; }
    int64_t vocab = 0;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &vocab);
    const cJSON *prompts = cJSON_GetObjectItem(ref, "prompts");
    int np = 0;
    for (const cJSON *pr = prompts->child; pr; pr = pr->next, np++) {
        size_t n;
        int32_t *ids = t_ids_of(cJSON_GetObjectItem(pr, "ids"), &n);
        int64_t first = (int64_t)cJSON_GetObjectItem(pr, "logits_first_pos")->valuedouble;
        int64_t rows = (int64_t)cJSON_GetObjectItem(pr, "logits_rows")->valuedouble;
        size_t off = (size_t)cJSON_GetObjectItem(pr, "logits_offset_floats")->valuedouble;
        const cJSON *greedy = cJSON_GetObjectItem(pr, "greedy");
        const cJSON *gaps = cJSON_GetObjectItem(pr, "greedy_top2_gap");
        int n_greedy = cJSON_GetArraySize(greedy);
        ds8b_session *s = new_session(m, (int64_t)n + n_greedy + 8, threads, kv_type);
        if (!s) { free(ids); continue; }
        float *lg = malloc(n * (size_t)vocab * sizeof(float));
        rc = ds8b_eval(s, ids, n, lg);
        CHECK(rc == 0, "eval: %s", ds8b_errmsg());
        double maxd = 0;
        CHECK(off + (size_t)(rows * vocab) <= nref, "reference offsets");
        for (int64_t r = 0; r < rows && rc == 0 && off + (size_t)(rows * vocab) <= nref; r++)
            for (int64_t k = 0; k < vocab; k++) {
                double d = fabs(lg[(size_t)(first + r) * vocab + k] - want[off + (size_t)r * vocab + k]);
                if (d > maxd) maxd = d;
            }
        CHECK(maxd <= tol, "%s prompt %d: max |logit diff| %.3g > %.3g", json_path, np, maxd, tol);
        /* greedy continuation, exact up to the first near-tie */
        int step = 0;
        for (const cJSON *g = greedy->child, *gap = gaps->child; g && gap && rc == 0;
             g = g->next, gap = gap->next, step++) {
            int32_t t;
            ds8b_sample(s, &t);
            if (t != (int32_t)g->valuedouble) {
                CHECK(gap->valuedouble < gap_tol, "%s prompt %d greedy step %d: got %d want %d (gap %.4f)", json_path,
                      np, step, t, (int)g->valuedouble, gap->valuedouble);
                break;
            }
            if (gap->valuedouble < gap_tol) break;
            rc = ds8b_eval(s, &t, 1, NULL);
            CHECK(rc == 0, "eval step: %s", ds8b_errmsg());
        }
        printf("  # %s prompt %d: %lld rows, max diff %.2e, greedy matched %d steps\n", strrchr(json_path, '/') + 1, np,
               (long long)rows, maxd, step);
        free(lg);
        free(ids);
        ds8b_session_free(s);
    }
    ds8b_model_free(m);
    cJSON_Delete(ref);
    free(want);
}

/* The reference check, float tolerances (tol, near-ties below 0.01). At
 * the level avx512-bf16 the demo checkpoints' BF16 weights run on
 * bf16-rounded activations: the strict check runs at the level below
 * (float activations), then again at avx512-bf16 with a tolerance for
 * bf16 rounding (logits measured up to 0.12 off; near-ties below it). */
typedef struct ref_job {
    const char *model_path, *json_path, *f32_path;
    int threads, kv_type;
    float tol;
} ref_job;
static void ref_check(void *ctx, int bf16) {
    const ref_job *r = ctx;
    if (bf16) check_reference_at(r->model_path, r->json_path, r->f32_path, r->threads, r->kv_type, 0.25f, 0.25);
    else check_reference_at(r->model_path, r->json_path, r->f32_path, r->threads, r->kv_type, r->tol, 0.01);
}
static void check_reference_paths(const char *model_path, const char *json_path, const char *f32_path,
                                  int threads, int kv_type, float tol) {
    ref_job r = {model_path, json_path, f32_path, threads, kv_type, tol};
    t_float_then_bf16(ref_check, &r);
}

static void check_reference(const char *model_dir, const char *ref_name, int threads, int kv_type) {
    char mp[1024], jp[1024], fp[1024], rel[256];
    t_path(mp, sizeof mp, model_dir);
    snprintf(rel, sizeof rel, "testdata/reference/%s.json", ref_name);
    t_path(jp, sizeof jp, rel);
    snprintf(rel, sizeof rel, "testdata/reference/%s.f32", ref_name);
    t_path(fp, sizeof fp, rel);
    check_reference_paths(mp, jp, fp, threads, kv_type, 2e-3f);
}

static void test_llama_logits(void) { check_reference("models/demo-llama", "demo-llama", 2, DS8B_KV_F32); }
static void test_qwen3_logits(void) { check_reference("models/demo-qwen3", "demo-qwen3", 2, DS8B_KV_F32); }

/* The demo-qwen3 weights under the shipped YaRN config (vLLM's attn_factor). */
static void test_qwen3_yarn(void) {
    char src[PATH_MAX], jp[1024], fp[1024], dir[] = "/tmp/ds8b-yarn-XXXXXX";
    char rel_src[1024];
    t_path(rel_src, sizeof rel_src, "models/demo-qwen3");
    CHECK(realpath(rel_src, src) != NULL, "realpath %s", rel_src); /* the links live in /tmp */
    t_path(jp, sizeof jp, "testdata/reference/demo-qwen3-yarn.json");
    t_path(fp, sizeof fp, "testdata/reference/demo-qwen3-yarn.f32");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    const char *files[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                           "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"};
    char a[2048], b[2048];
    for (size_t i = 0; i < 5; i++) {
        snprintf(a, sizeof a, "%s/%s", src, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        CHECK(symlink(a, b) == 0, "symlink %s", b);
    }
    cJSON *ref = t_load_json(jp);
    char *cfg = cJSON_Print(cJSON_GetObjectItem(ref, "config_shipped"));
    snprintf(b, sizeof b, "%s/config.json", dir);
    FILE *f = fopen(b, "w");
    fputs(cfg, f);
    fclose(f);
    free(cfg);
    cJSON_Delete(ref);
    check_reference_paths(dir, jp, fp, 2, DS8B_KV_F32, 2e-3f);
    for (size_t i = 0; i < 5; i++) {
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        unlink(b);
    }
    snprintf(b, sizeof b, "%s/config.json", dir);
    unlink(b);
    rmdir(dir);
}

/* Mean NLL over the held-out windows within 0.05% (as perplexity).
 * DS8B_QUICK: the first two windows of each language, against the
 * reference's NLL of those windows. */
static void check_ppl_at(const char *model_dir, const char *ref_name, double tol) {
    char mp[1024], jp[1024], rel[256];
    t_path(mp, sizeof mp, model_dir);
    snprintf(rel, sizeof rel, "testdata/reference/%s.json", ref_name);
    t_path(jp, sizeof jp, rel);
    cJSON *ref = t_load_json(jp);
    ds8b_model *m = NULL;
    int rc = ds8b_model_load(mp, NULL, &m);
    CHECK(rc == 0 && ref, "load: %s", ds8b_errmsg());
    if (rc || !ref) { cJSON_Delete(ref); return; }
    int64_t vocab;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &vocab);
    ds8b_session *s = new_session(m, 512, 2, DS8B_KV_F32);
    float *lg = malloc(512 * (size_t)vocab * sizeof(float));
    const int quick = t_quick(), max_windows = quick ? 2 : 1 << 30;
    for (const cJSON *lang = cJSON_GetObjectItem(ref, "perplexity")->child; lang && s; lang = lang->next) {
        double sum = 0, want_sum = 0;
        int nw = 0;
        const cJSON *wnll = cJSON_GetObjectItem(lang, "window_nll");
        for (const cJSON *w = cJSON_GetObjectItem(lang, "windows")->child; w && nw < max_windows; w = w->next) {
            size_t n;
            int32_t *ids = t_ids_of(w, &n);
            ds8b_session_reset(s);
            rc = ds8b_eval(s, ids, n, lg);
            CHECK(rc == 0, "eval: %s", ds8b_errmsg());
            double nll = 0;
            for (size_t i = 0; i + 1 < n; i++) {
                const float *r = lg + i * (size_t)vocab;
                double mx = r[0], z = 0;
                for (int64_t k = 1; k < vocab; k++) if (r[k] > mx) mx = r[k];
                for (int64_t k = 0; k < vocab; k++) z += exp(r[k] - mx);
                nll += mx + log(z) - r[ids[i + 1]];
            }
            sum += nll / (double)(n - 1);
            if (quick) {
                const cJSON *wn = cJSON_GetArrayItem(wnll, nw);
                CHECK(wn != NULL, "%s %s: no window_nll[%d] in the reference", ref_name, lang->string, nw);
                want_sum += wn ? wn->valuedouble : NAN;
            }
            nw++;
            free(ids);
        }
        double mean = sum / nw;
        double want = quick ? want_sum / nw : cJSON_GetObjectItem(lang, "mean_nll")->valuedouble;
        double rel_ppl = fabs(exp(mean) / exp(want) - 1.0);
        printf("  # %s %s: mean NLL %.6f (reference %.6f) over %d windows%s, ppl rel diff %.2e\n", ref_name,
               lang->string, mean, want, nw, quick ? " (DS8B_QUICK)" : "", rel_ppl);
        CHECK(rel_ppl <= tol, "%s %s perplexity differs by %.3g%% (limit %.3g%%, level %s)", ref_name, lang->string,
              rel_ppl * 100, tol * 100, ds8b__isa_name());
    }
    free(lg);
    ds8b_session_free(s);
    ds8b_model_free(m);
    cJSON_Delete(ref);
}

/* Float activations within 0.05%; at a level that rounds the bf16
 * checkpoints' activations to bf16 (avx512-bf16, amx) the float path is
 * checked at avx512-vnni, then the level itself within 0.2% (measured up
 * to 0.075% on two windows; docs/quantization.md gives the full-window
 * NLL changes, all within 0.02%). */
typedef struct ppl_job {
    const char *model_dir, *ref_name;
} ppl_job;
static void ppl_check(void *ctx, int bf16) {
    const ppl_job *p = ctx;
    check_ppl_at(p->model_dir, p->ref_name, bf16 ? 2e-3 : 5e-4);
}
static void check_ppl(const char *model_dir, const char *ref_name) {
    ppl_job p = {model_dir, ref_name};
    t_float_then_bf16(ppl_check, &p);
}

static void test_llama_ppl(void) { check_ppl("models/demo-llama", "demo-llama"); }
static void test_qwen3_ppl(void) { check_ppl("models/demo-qwen3", "demo-qwen3"); }

/* Logits are bit-identical for 1 and 2 threads. */
static void test_thread_determinism(void) {
    char mp[1024];
    t_path(mp, sizeof mp, "models/demo-llama");
    ds8b_model *m = NULL;
    CHECK(ds8b_model_load(mp, NULL, &m) == 0, "load: %s", ds8b_errmsg());
    if (!m) return;
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 977 + 13) % 8000;
    int64_t vocab;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &vocab);
    float *a = malloc(40 * (size_t)vocab * 4), *b = malloc(40 * (size_t)vocab * 4);
    ds8b_session *s1 = new_session(m, 64, 1, DS8B_KV_F16), *s2 = new_session(m, 64, 2, DS8B_KV_F16);
    CHECK(ds8b_eval(s1, ids, 40, a) == 0 && ds8b_eval(s2, ids, 40, b) == 0, "eval");
    CHECK(memcmp(a, b, 40 * (size_t)vocab * 4) == 0, "1 vs 2 threads differ");
    ds8b_session_free(s1);
    ds8b_session_free(s2);
    ds8b_model_free(m);
    free(a);
    free(b);
}

/* Micro-batched prompt evaluation equals token-by-token evaluation. */
static void batch_vs_single_at(double tol) {
    char mp[1024];
    t_path(mp, sizeof mp, "models/demo-qwen3");
    ds8b_model *m = NULL;
    CHECK(ds8b_model_load(mp, NULL, &m) == 0, "load: %s", ds8b_errmsg());
    if (!m) return;
    int64_t vocab;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &vocab);
    int32_t ids[20];
    for (int i = 0; i < 20; i++) ids[i] = (i * 531 + 7) % 8000;
    ds8b_session *s1 = new_session(m, 64, 2, DS8B_KV_F32), *s2 = new_session(m, 64, 2, DS8B_KV_F32);
    float *all = malloc(20 * (size_t)vocab * 4);
    CHECK(ds8b_eval(s1, ids, 20, all) == 0, "eval");
    double maxd = 0;
    for (int i = 0; i < 20; i++) {
        CHECK(ds8b_eval(s2, ids + i, 1, NULL) == 0, "eval 1");
        const float *l = ds8b_session_logits(s2);
        for (int64_t k = 0; k < vocab; k++) {
            double d = fabs(l[k] - all[(size_t)i * vocab + k]);
            if (d > maxd) maxd = d;
        }
    }
    printf("  # level %s: batched vs single max diff %.3g\n", ds8b__isa_name(), maxd);
    CHECK(maxd < tol, "batched vs single max diff %.3g (limit %.3g, level %s)", maxd, tol, ds8b__isa_name());
    free(all);
    ds8b_session_free(s1);
    ds8b_session_free(s2);
    ds8b_model_free(m);
}

/* A 20-token eval against 20 one-token evals. With float activations the
 * prompt and decode paths agree to 1e-3. At amx the prompt runs on
 * AMX-BF16 tiles and decode on vdpbf16ps: both round the activations to
 * bf16 but sum in different orders, and a last-bit difference in one
 * layer's output can move the bf16 rounding of the next layer's input by
 * a whole bf16 step (2^-8 relative); measured 0.095 in the logits on
 * demo-qwen3 (bf16 rounding puts them up to 0.12 from the float
 * reference): the same 0.25 as the reference check at that level. */
static void batch_vs_single_check(void *ctx, int bf16) {
    (void)ctx;
    batch_vs_single_at(bf16 ? 0.25 : 1e-3);
}
static void test_batch_vs_single(void) { t_float_then_bf16(batch_vs_single_check, NULL); }

int main(void) {
    RUN(test_llama_logits);
    RUN(test_qwen3_logits);
    RUN(test_qwen3_yarn);
    RUN(test_llama_ppl);
    RUN(test_qwen3_ppl);
    RUN(test_thread_determinism);
    RUN(test_batch_vs_single);
    T_EXIT();
}
