/* test_attn.c -- the blocked attention (src/kernels/attn.c) at every ISA
 * level this CPU has, for the F32, F16 and Q8_0 KV caches, odd head dims,
 * GQA group sizes and lengths that end inside a block: against a double
 * two-pass softmax on the same (dequantized) cache rows, against the
 * scalar level with a tight tolerance, and bit-identical per token however
 * tokens are grouped into tiles (the property batching, speculation and
 * thread-count invariance rest on). The forward pass's thread invariance
 * with the new attention is checked on the demo model: 1, 2 and 3
 * threads, a prompt spanning several KV blocks and tiles. */
#include "t.h"
#include "internal.h"
#include "kernels/kernels.h"
#include "kernels/kern_impl.h"
#include "session/session.h"
#include "model/model.h"

#include <math.h>
#include <stdint.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float rndn(void) { return ((float)(rnd32() & 0xFFFFFF) / 16777216.0f - 0.5f) * 4.0f; }

typedef struct setup {
    int type;
    int64_t hd, nkv, group, n_ctx;
    ds8b__kv kv;
    float *q;   /* (n_ctx, nkv*group*hd) */
    float *out; /* same shape */
    float *ws;
} setup;

static bool setup_make(setup *s, int type, int64_t hd, int64_t nkv, int64_t group, int64_t n_ctx) {
    memset(s, 0, sizeof *s);
    s->type = type;
    s->hd = hd;
    s->nkv = nkv;
    s->group = group;
    s->n_ctx = n_ctx;
    int64_t kvd = nkv * hd, qd = kvd * group;
    ds8b__err e = {0};
    if (ds8b__kv_init(&s->kv, type, 1, n_ctx, kvd, &e)) return false;
    float *row = malloc((size_t)kvd * sizeof(float));
    for (int64_t p = 0; p < n_ctx; p++) {
        for (int64_t i = 0; i < kvd; i++) row[i] = rndn();
        ds8b__kv_put(&s->kv, s->kv.k, 0, p, row);
        for (int64_t i = 0; i < kvd; i++) row[i] = rndn();
        ds8b__kv_put(&s->kv, s->kv.v, 0, p, row);
    }
    free(row);
    s->q = malloc((size_t)(n_ctx * qd) * sizeof(float));
    s->out = malloc((size_t)(n_ctx * qd) * sizeof(float));
    for (int64_t i = 0; i < n_ctx * qd; i++) s->q[i] = rndn() * 2.0f;
    size_t nf = 0;
    if (!ds8b__attn_scratch_floats(hd, group, &nf)) return false;
    s->ws = malloc(nf * sizeof(float));
    return s->q && s->out && s->ws;
}

static void setup_free(setup *s) {
    ds8b__kv_free(&s->kv);
    free(s->q);
    free(s->out);
    free(s->ws);
}

/* Runs tokens t0..t0+n-1 (token t attends to 0..pos[t]) of KV head g. */
static void run_tile(setup *s, int64_t g, int64_t t0, int64_t n, const int64_t *pos) {
    int64_t qd = s->nkv * s->group * s->hd;
    ds8b__attn_args a = {
        .kv_type = s->type,
        .k = s->kv.k,
        .v = s->kv.v,
        .stride = s->kv.row_bytes,
        .off = g * s->hd,
        .hd = s->hd,
        .n_tok = n,
        .n_head = s->group,
        .q = s->q + t0 * qd + g * s->group * s->hd,
        .ldq = qd,
        .out = s->out + t0 * qd + g * s->group * s->hd,
        .ldo = qd,
        .pos = pos,
    };
    ds8b__attention(&a, s->ws);
}

/* All tokens 0..n_ctx-1 (token t at position t), tiles of `tile` tokens. */
static void run_all(setup *s, int64_t tile) {
    int64_t pos[DS8B_ATT_ROWS];
    int64_t cap = ds8b__attn_tile_tokens(s->group);
    if (tile > cap) tile = cap;
    for (int64_t g = 0; g < s->nkv; g++)
        for (int64_t t = 0; t < s->n_ctx; t += tile) {
            int64_t n = s->n_ctx - t < tile ? s->n_ctx - t : tile;
            for (int64_t i = 0; i < n; i++) pos[i] = t + i;
            run_tile(s, g, t, n, pos);
        }
}

/* Double-precision reference on the dequantized rows; returns the largest
 * error over all outputs relative to the largest |V| value. */
static double check_ref(setup *s) {
    int64_t hd = s->hd, kvd = s->nkv * hd, qd = kvd * s->group;
    float *K = malloc((size_t)(s->n_ctx * kvd) * sizeof(float));
    float *V = malloc((size_t)(s->n_ctx * kvd) * sizeof(float));
    double *w = malloc((size_t)s->n_ctx * sizeof(double)), *o = malloc((size_t)hd * sizeof(double));
    double vmax = 0, err = 0;
    for (int64_t p = 0; p < s->n_ctx; p++) {
        ds8b__kv_get(&s->kv, s->kv.k, 0, p, K + p * kvd);
        ds8b__kv_get(&s->kv, s->kv.v, 0, p, V + p * kvd);
    }
    for (int64_t i = 0; i < s->n_ctx * kvd; i++) vmax = fmax(vmax, fabs(V[i]));
    for (int64_t t = 0; t < s->n_ctx; t++)
        for (int64_t h = 0; h < s->nkv * s->group; h++) {
            int64_t g = h / s->group;
            const float *q = s->q + t * qd + h * hd;
            double mx = -INFINITY, sum = 0;
            for (int64_t c = 0; c <= t; c++) {
                double d = 0;
                for (int64_t i = 0; i < hd; i++) d += (double)q[i] * K[c * kvd + g * hd + i];
                w[c] = d / sqrt((double)hd);
                mx = fmax(mx, w[c]);
            }
            for (int64_t i = 0; i < hd; i++) o[i] = 0;
            for (int64_t c = 0; c <= t; c++) {
                double e = exp(w[c] - mx);
                sum += e;
                for (int64_t i = 0; i < hd; i++) o[i] += e * V[c * kvd + g * hd + i];
            }
            for (int64_t i = 0; i < hd; i++)
                err = fmax(err, fabs(o[i] / sum - s->out[t * qd + h * hd + i]) / vmax);
        }
    free(K);
    free(V);
    free(w);
    free(o);
    return err;
}

static const int kv_types[3] = {DS8B_KV_F32, DS8B_KV_F16, DS8B_KV_Q8_0};
static const char *const kv_names[3] = {"f32", "f16", "q8_0"};

/* {hd, nkv, group, n_ctx}: odd dims (hd 40 and 24 are not multiples of
 * 16; 48 splits Q8_0 blocks across heads), lengths inside a block */
static const int64_t shapes[][4] = {
    {128, 2, 4, 75}, {64, 2, 1, 33}, {40, 3, 3, 37}, {48, 2, 2, 70}, {24, 1, 5, 17}, {128, 1, 4, 1}, {32, 2, 8, 40},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

static void test_attn_vs_reference(void) {
    int maxl = ds8b__isa_max_level();
    for (int lvl = 0; lvl <= maxl; lvl++) {
        ds8b__isa_force(lvl);
        for (int ti = 0; ti < 3; ti++)
            for (int si = 0; si < NSHAPES; si++) {
                const int64_t *sh = shapes[si];
                if (kv_types[ti] == DS8B_KV_Q8_0 && (sh[0] * sh[1]) % 32) continue;
                setup s;
                CHECK(setup_make(&s, kv_types[ti], sh[0], sh[1], sh[2], sh[3]), "setup");
                run_all(&s, 7);
                double err = check_ref(&s);
                /* f32 accumulation over <= 75 positions and head dims <= 128 */
                CHECK(err < 2e-5, "level %s kv %s hd %lld group %lld n %lld: error %.3g", ds8b__isa_name(), kv_names[ti],
                      (long long)sh[0], (long long)sh[2], (long long)sh[3], err);
                setup_free(&s);
            }
    }
    ds8b__isa_force(-1);
}

/* Each level against the scalar level, with a long context (several
 * hundred positions, many blocks) and 8B-like heads. */
static void test_attn_vs_scalar(void) {
    int maxl = ds8b__isa_max_level();
    if (maxl < 1) {
        SKIP("no SIMD level on this CPU");
        return;
    }
    for (int ti = 0; ti < 3; ti++) {
        setup s;
        CHECK(setup_make(&s, kv_types[ti], 128, 2, 4, 300), "setup");
        int64_t qd = 2 * 4 * 128, n = 300 * qd;
        float *ref = malloc((size_t)n * sizeof(float));
        ds8b__isa_force(0);
        run_all(&s, 16);
        memcpy(ref, s.out, (size_t)n * sizeof(float));
        for (int lvl = 1; lvl <= maxl; lvl++) {
            ds8b__isa_force(lvl);
            run_all(&s, 16);
            double err = 0;
            for (int64_t i = 0; i < n; i++) err = fmax(err, fabs(ref[i] - s.out[i]));
            CHECK(err < 1e-5, "level %s kv %s: max difference to scalar %.3g", ds8b__isa_name(), kv_names[ti], err);
        }
        ds8b__isa_force(-1);
        free(ref);
        setup_free(&s);
    }
}

/* A token's result is bit-identical alone, in tiles of any size, or with
 * gaps and repeats in the positions of its tile mates. */
static void test_attn_tiling(void) {
    int maxl = ds8b__isa_max_level();
    for (int lvl = 0; lvl <= maxl; lvl++) {
        ds8b__isa_force(lvl);
        for (int ti = 0; ti < 3; ti++)
            for (int si = 0; si < NSHAPES; si++) {
                const int64_t *sh = shapes[si];
                if (kv_types[ti] == DS8B_KV_Q8_0 && (sh[0] * sh[1]) % 32) continue;
                setup s;
                CHECK(setup_make(&s, kv_types[ti], sh[0], sh[1], sh[2], sh[3]), "setup");
                int64_t qd = sh[0] * sh[1] * sh[2], n = sh[3] * qd;
                float *alone = malloc((size_t)n * sizeof(float));
                run_all(&s, 1);
                memcpy(alone, s.out, (size_t)n * sizeof(float));
                static const int64_t tiles[] = {2, 3, 5, 16, 64};
                for (int k = 0; k < 5; k++) {
                    memset(s.out, 0, (size_t)n * sizeof(float));
                    run_all(&s, tiles[k]);
                    CHECK(memcmp(alone, s.out, (size_t)n * sizeof(float)) == 0,
                          "level %s kv %s shape %d: tiles of %lld differ from single tokens", ds8b__isa_name(),
                          kv_names[ti], si, (long long)tiles[k]);
                }
                /* a tile of scattered positions (as a batch of sequences or
                 * a repeated row gives): token t with mates far before and after */
                if (sh[3] >= 3 && ds8b__attn_tile_tokens(sh[2]) >= 3) {
                    int64_t t = sh[3] / 2, pos[3] = {sh[3] - 1, t, 0};
                    float *keep = malloc((size_t)qd * sizeof(float));
                    memset(s.out, 0, (size_t)n * sizeof(float));
                    /* q rows: copy token t's query to the tile's middle slot */
                    float *q3 = malloc((size_t)(3 * qd) * sizeof(float));
                    memcpy(q3, s.q + (sh[3] - 1) * qd, (size_t)qd * sizeof(float));
                    memcpy(q3 + qd, s.q + t * qd, (size_t)qd * sizeof(float));
                    memcpy(q3 + 2 * qd, s.q, (size_t)qd * sizeof(float));
                    float *save_q = s.q;
                    s.q = q3;
                    for (int64_t g = 0; g < sh[1]; g++) run_tile(&s, g, 0, 3, pos);
                    memcpy(keep, s.out + qd, (size_t)qd * sizeof(float));
                    s.q = save_q;
                    CHECK(memcmp(keep, alone + t * qd, (size_t)qd * sizeof(float)) == 0,
                          "level %s kv %s shape %d: scattered tile mates change a token", ds8b__isa_name(),
                          kv_names[ti], si);
                    free(q3);
                    free(keep);
                }
                free(alone);
                setup_free(&s);
            }
    }
    ds8b__isa_force(-1);
}

static void test_scratch_size(void) {
    size_t f = 0;
    CHECK(ds8b__attn_scratch_floats(128, 4, &f) && f > 0 && f < 200000, "8B shapes: %zu floats", f);
    CHECK(!ds8b__attn_scratch_floats(0, 4, &f), "head dim 0 refused");
    CHECK(!ds8b__attn_scratch_floats(128, 0, &f), "group 0 refused");
    CHECK(!ds8b__attn_scratch_floats(INT64_MAX / 2, 4, &f), "a huge head dim refused");
    CHECK(ds8b__attn_tile_tokens(4) * 4 <= DS8B_ATT_ROWS && ds8b__attn_tile_tokens(100) == 1, "tile tokens");
}

/* The forward pass on the demo model: a 150-token prompt (five KV blocks,
 * several tiles) gives bit-identical logits with 1, 2 and 3 threads, for
 * each KV type. */
static void test_forward_threads(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/testdata/gguf/demo-llama-Q8_0.gguf", t_shared());
    ds8b_model *m = NULL;
    if (ds8b_model_load(path, NULL, &m) != DS8B_OK) {
        SKIP("no demo model at %s", path);
        return;
    }
    int64_t nv = m->hp.n_vocab;
    int32_t ids[150];
    for (int i = 0; i < 150; i++) ids[i] = (int32_t)((i * 7919 + 3) % nv);
    for (int ti = 0; ti < 3; ti++) {
        float *l1 = malloc((size_t)nv * 2 * sizeof(float));
        for (int th = 1; th <= 3; th++) {
            ds8b_params *p;
            ds8b_params_create(&p);
            ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, th);
            ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 256);
            ds8b_params_set_int(p, DS8B_PARAM_KV_TYPE, kv_types[ti]);
            ds8b_session *s = NULL;
            CHECK(ds8b_session_create(m, p, &s) == DS8B_OK, "session");
            ds8b_params_free(p);
            if (!s) continue;
            CHECK(ds8b_eval(s, ids, 150, NULL) == DS8B_OK, "eval");
            const float *lg = ds8b_session_logits(s);
            if (th == 1) memcpy(l1, lg, (size_t)nv * sizeof(float));
            else CHECK(memcmp(l1, lg, (size_t)nv * sizeof(float)) == 0, "kv %s: prompt logits differ at %d threads", kv_names[ti], th);
            int32_t one = 5;
            CHECK(ds8b_eval(s, &one, 1, NULL) == DS8B_OK, "decode");
            lg = ds8b_session_logits(s);
            if (th == 1) memcpy(l1 + nv, lg, (size_t)nv * sizeof(float));
            else CHECK(memcmp(l1 + nv, lg, (size_t)nv * sizeof(float)) == 0, "kv %s: decode logits differ at %d threads", kv_names[ti], th);
            ds8b_session_free(s);
        }
        free(l1);
    }
    ds8b_model_free(m);
}

int main(void) {
    RUN(test_scratch_size);
    RUN(test_attn_vs_reference);
    RUN(test_attn_vs_scalar);
    RUN(test_attn_tiling);
    RUN(test_forward_threads);
    T_EXIT();
}
