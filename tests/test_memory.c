/* test_memory.c -- the memory estimate against what a real load plus a
 * full context measures, per category and in total, for the demo models
 * (as stored and quantized in memory), a GGUF file, and a full-width
 * random-weight model made from the real 8B config (one layer, to keep the
 * file small). Also the soft and hard limits and the host allocator. */
#include "t.h"
#include "ds8b.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const k_cat[DS8B_MEM__COUNT] = {"weights", "kv", "scratch", "tokenizer", "session", "threads",
                                                   "other", "mapped"};

/* Loads, optionally quantizes in memory (freeing the source), fills the
 * whole context, and compares every category with the estimate. */
static void check(const char *path, const char *scheme, int64_t n_ctx, int kv) {
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, n_ctx);
    ds8b_params_set_int(p, DS8B_PARAM_N_BATCH, 64);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 2);
    ds8b_params_set_int(p, DS8B_PARAM_KV_TYPE, kv);
    int64_t est[DS8B_MEM__COUNT], base[DS8B_MEM__COUNT], got[DS8B_MEM__COUNT];
    int rc = ds8b_estimate(path, scheme, p, est, DS8B_MEM__COUNT);
    CHECK(rc == 0, "estimate %s: %s", path, ds8b_errmsg());
    if (rc) { ds8b_params_free(p); return; }
    for (int c = 0; c < DS8B_MEM__COUNT; c++) base[c] = ds8b_memory_used(c);
    ds8b_model *m = NULL;
    rc = ds8b_model_load(path, NULL, &m);
    CHECK(rc == 0, "load %s: %s", path, ds8b_errmsg());
    if (rc) { ds8b_params_free(p); return; }
    if (scheme && *scheme) {
        ds8b_model *q = NULL;
        CHECK(ds8b_model_quantize(m, scheme, NULL, &q) == 0, "quantize: %s", ds8b_errmsg());
        ds8b_model_free(m);
        m = q;
    }
    ds8b_session *s = NULL;
    CHECK(m && ds8b_session_create(m, p, &s) == 0, "session: %s", ds8b_errmsg());
    int64_t V = 0;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &V);
    int32_t *ids = malloc((size_t)n_ctx * 4);
    for (int64_t i = 0; i < n_ctx; i++) ids[i] = (int32_t)((i * 131 + 7) % (V < 8000 ? V : 8000));
    CHECK(s && ds8b_eval(s, ids, (size_t)n_ctx, NULL) == 0, "fill context: %s", ds8b_errmsg());
    free(ids);
    for (int c = 0; c < DS8B_MEM__COUNT; c++) got[c] = ds8b_memory_used(c) - base[c];
    double te = 0, tg = 0;
    printf("  # %s [%s] n_ctx %lld:", path, scheme && *scheme ? scheme : "stored", (long long)n_ctx);
    for (int c = 0; c < DS8B_MEM__COUNT; c++) {
        te += (double)est[c];
        tg += (double)got[c];
        printf(" %s %.2f/%.2f", k_cat[c], est[c] / 1e6, got[c] / 1e6);
        /* every category within 5%, or within 64 KiB for the small ones */
        double tol = fmax(0.05 * (double)got[c], 65536.0);
        CHECK(fabs((double)est[c] - (double)got[c]) <= tol, "%s: %s estimated %lld, measured %lld", path, k_cat[c],
              (long long)est[c], (long long)got[c]);
    }
    printf(" MB (estimate/measured)\n");
    CHECK(fabs(te - tg) <= 0.05 * tg, "%s: total estimated %.0f, measured %.0f", path, te, tg);
    ds8b_session_free(s);
    ds8b_model_free(m);
    ds8b_params_free(p);
}

static void test_demo_models(void) {
    char a[1024], b[1024];
    t_path(a, sizeof a, "models/demo-llama");
    t_path(b, sizeof b, "models/demo-qwen3");
    check(a, NULL, 512, DS8B_KV_F16);
    check(b, NULL, 1024, DS8B_KV_F32);
    check(a, "q4_0", 512, DS8B_KV_Q8_0);
    check(b, "q4_k_m", 512, DS8B_KV_F16);
    check(a, "w4a16", 256, DS8B_KV_F16);
}

static void test_gguf_file(void) {
    char a[1024];
    check(t_path(a, sizeof a, "testdata/gguf/demo-qwen3-Q4_K_M.gguf"), NULL, 512, DS8B_KV_F16);
}

/* The real DeepSeek-R1-Distill-Llama-8B widths (4096 wide, 14336 FFN,
 * 128256 vocab), one layer, random bf16 weights: about 2.5 GB on disk. */
static void test_full_width(void) {
    const char *ds8b = getenv("DS8B_BUILD");
    char cfg[1024], cmd[4096], dir[] = "/tmp/ds8b-fullwidth-XXXXXX";
    t_path(cfg, sizeof cfg, "configs/deepseek-r1-distill-llama-8b.json");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    /* a copy of the config with one layer */
    FILE *f = fopen(cfg, "rb");
    char buf[8192];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    cJSON_ReplaceItemInObject(j, "num_hidden_layers", cJSON_CreateNumber(1));
    char *txt = cJSON_Print(j);
    char c1[1100];
    snprintf(c1, sizeof c1, "%s/config-1layer.json", dir);
    f = fopen(c1, "wb");
    fputs(txt, f);
    fclose(f);
    free(txt);
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "%s/ds8b make-random %s %s/model >/dev/null 2>&1", ds8b && *ds8b ? ds8b : "build", c1, dir);
    int rc = system(cmd);
    CHECK(rc == 0, "make-random failed: %s", cmd);
    char model[1100];
    snprintf(model, sizeof model, "%s/model", dir);
    if (rc == 0) {
        /* a full context of 256 keeps the fill quick on 2 cores; the KV
         * cache is the part that grows with n_ctx and is exact anyway */
        check(model, NULL, 256, DS8B_KV_F16);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

static void test_limits(void) {
    char a[1024];
    t_path(a, sizeof a, "models/demo-llama");
    int64_t used = ds8b_memory_used(-1);
    /* a hard limit below what a session needs: the session fails cleanly and says what */
    ds8b_model *m = NULL;
    CHECK(ds8b_model_load(a, NULL, &m) == 0, "load");
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 4096);
    int64_t after_load = ds8b_memory_used(-1);
    ds8b_hard_heap_limit(after_load + 100000);
    ds8b_session *s = NULL;
    int rc = ds8b_session_create(m, p, &s);
    CHECK(rc == DS8B_E_NOMEM && s == NULL, "rc %d", rc);
    CHECK(strstr(ds8b_errmsg(), "hard heap limit") && strstr(ds8b_errmsg(), "KV"), "message: %s", ds8b_errmsg());
    CHECK(ds8b_hard_heap_limit(0) == after_load + 100000, "previous value returned");
    CHECK(ds8b_memory_used(-1) == after_load, "nothing leaked by the failed session");
    ds8b_params_free(p);
    ds8b_model_free(m);
    CHECK(ds8b_memory_used(-1) == used, "model memory released");
}

int main(void) {
    RUN(test_demo_models);
    RUN(test_gguf_file);
    RUN(test_limits);
    RUN(test_full_width);
    T_EXIT();
}
