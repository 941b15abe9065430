/* test_quant.c -- block formats: struct sizes, dequantizers against an
 * independent per-element decode written from the format definitions,
 * quantize/dequantize round trips with error bounds. */
#include "t.h"
#include "internal.h"
#include "quant/quant.h"

#include <math.h>
#include <stdint.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float rndu(void) { return (float)(rnd32() & 0xFFFFFF) / 16777216.0f; }
static float rndn(void) { /* approx normal: sum of 4 uniforms */
    return (rndu() + rndu() + rndu() + rndu() - 2.0f) * 1.7320508f;
}
static uint16_t rnd_f16_scale(void) { return ds8b__f32_to_f16((rndu() * 2.0f - 1.0f) * 0.05f); }

static float h2f(const uint8_t *p) { return ds8b__f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static void put_h(uint8_t *p, uint16_t h) { p[0] = (uint8_t)h; p[1] = (uint8_t)(h >> 8); }

/* ---- independent decode of element i of one block (from the spec) ---- */
static float ref_elem(int type, const uint8_t *b, int i) {
    switch (type) {
    case DS8B_T_Q4_0: {
        int q = i < 16 ? (b[2 + i] & 15) : (b[2 + i - 16] >> 4);
        return (float)(q - 8) * h2f(b);
    }
    case DS8B_T_Q4_1:
    case DS8B_T_W4A16: {
        int q = i < 16 ? (b[4 + i] & 15) : (b[4 + i - 16] >> 4);
        return (float)q * h2f(b) + h2f(b + 2);
    }
    case DS8B_T_Q5_0: {
        uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
        int q = (i < 16 ? (b[6 + i] & 15) : (b[6 + i - 16] >> 4)) | (int)(((qh >> i) & 1) << 4);
        return (float)(q - 16) * h2f(b);
    }
    case DS8B_T_Q5_1: {
        uint32_t qh = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
        int q = (i < 16 ? (b[8 + i] & 15) : (b[8 + i - 16] >> 4)) | (int)(((qh >> i) & 1) << 4);
        return (float)q * h2f(b) + h2f(b + 2);
    }
    case DS8B_T_Q8_0: return (float)(int8_t)b[2 + i] * h2f(b);
    case DS8B_T_Q8_1: return (float)(int8_t)b[4 + i] * h2f(b);
    case DS8B_T_Q2_K: { /* scales[16] qs[64] d dmin */
        int h = i / 128, r = i % 128, plane = r / 32, l = r % 32;
        int q = (b[16 + 32 * h + l] >> (2 * plane)) & 3;
        int sc = b[i / 16] & 15, m = b[i / 16] >> 4;
        return h2f(b + 80) * (float)sc * (float)q - h2f(b + 82) * (float)m;
    }
    case DS8B_T_Q3_K: { /* hmask[32] qs[64] scales[12] d */
        int h = i / 128, r = i % 128, plane = r / 32, l = r % 32;
        int q = (b[32 + 32 * h + l] >> (2 * plane)) & 3;
        int hb = (b[l] >> (4 * h + plane)) & 1;
        q -= hb ? 0 : 4;
        /* scales: 32-bit words a0,a1,a2 (bytes 96..107); low nibbles of
         * a0/a1 give scales 0..7, high nibbles 8..15; a2's 2-bit fields
         * give the top bits: scale s takes bits 2*(s/4) of byte s%4 of a2 */
        const uint8_t *s = b + 96;
        int sub = i / 16;
        int low = sub < 8 ? (s[sub] & 15) : (s[sub - 8] >> 4);
        uint32_t a2 = (uint32_t)s[8] | (uint32_t)s[9] << 8 | (uint32_t)s[10] << 16 | (uint32_t)s[11] << 24;
        int top = (int)((a2 >> (8 * (sub % 4) + 2 * (sub / 4))) & 3);
        int scale = (low | (top << 4)) - 32;
        return h2f(b + 108) * (float)scale * (float)q;
    }
    case DS8B_T_Q4_K:
    case DS8B_T_Q5_K: { /* d dmin scales[12] (qh[32]) qs[128] */
        int c = i / 64, r = i % 64, l = r % 32, hi = r >= 32, sub = i / 32;
        const uint8_t *s = b + 4;
        const uint8_t *qs = b + (type == DS8B_T_Q4_K ? 16 : 48);
        int q = hi ? (qs[32 * c + l] >> 4) : (qs[32 * c + l] & 15);
        if (type == DS8B_T_Q5_K) q |= ((b[16 + l] >> sub) & 1) << 4;
        int sc, m;
        if (sub < 4) {
            sc = s[sub] & 63;
            m = s[sub + 4] & 63;
        } else {
            sc = (s[sub + 4] & 15) | ((s[sub - 4] >> 6) << 4);
            m = (s[sub + 4] >> 4) | ((s[sub] >> 6) << 4);
        }
        return h2f(b) * (float)sc * (float)q - h2f(b + 2) * (float)m;
    }
    case DS8B_T_Q6_K: { /* ql[128] qh[64] scales[16] d */
        int h = i / 128, r = i % 128, k = r / 32, l = r % 32;
        int byte = b[64 * h + l + 32 * (k & 1)];
        int nib = k >= 2 ? byte >> 4 : byte & 15;
        int q = (nib | (((b[128 + 32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
        return h2f(b + 208) * (float)(int8_t)b[192 + i / 16] * (float)q;
    }
    case DS8B_T_Q8_K: {
        float d;
        memcpy(&d, b, 4);
        return d * (float)(int8_t)b[4 + i];
    }
    }
    return NAN;
}

/* Random block bytes with valid (finite, small) scales. */
static void rand_block(int type, uint8_t *b, int bytes) {
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)rnd32();
    switch (type) {
    case DS8B_T_Q4_0: case DS8B_T_Q5_0: case DS8B_T_Q8_0: put_h(b, rnd_f16_scale()); break;
    case DS8B_T_Q4_1: case DS8B_T_Q5_1: case DS8B_T_Q8_1: case DS8B_T_W4A16:
    case DS8B_T_Q4_K: case DS8B_T_Q5_K:
        put_h(b, rnd_f16_scale());
        put_h(b + 2, rnd_f16_scale());
        break;
    case DS8B_T_Q2_K: put_h(b + 80, rnd_f16_scale()); put_h(b + 82, rnd_f16_scale()); break;
    case DS8B_T_Q3_K: put_h(b + 108, rnd_f16_scale()); break;
    case DS8B_T_Q6_K: put_h(b + 208, rnd_f16_scale()); break;
    case DS8B_T_Q8_K: { float d = rndu() * 0.01f; memcpy(b, &d, 4); break; }
    }
}

static const int k_qtypes[] = {DS8B_T_Q4_0, DS8B_T_Q4_1, DS8B_T_Q5_0, DS8B_T_Q5_1, DS8B_T_Q8_0,
                               DS8B_T_Q8_1, DS8B_T_Q2_K, DS8B_T_Q3_K, DS8B_T_Q4_K, DS8B_T_Q5_K,
                               DS8B_T_Q6_K, DS8B_T_Q8_K, DS8B_T_W4A16};
#define NQT (int)(sizeof k_qtypes / sizeof k_qtypes[0])

static void test_sizes(void) {
    for (int k = 0; k < NQT; k++) {
        const ds8b__type_traits *t = ds8b__type_info(k_qtypes[k]);
        CHECK(t != NULL, "type %d", k_qtypes[k]);
    }
    CHECK(sizeof(ds8b__blk_q4_k) == (size_t)ds8b__type_info(DS8B_T_Q4_K)->block_bytes, "q4_k");
    CHECK(sizeof(ds8b__blk_q6_k) == (size_t)ds8b__type_info(DS8B_T_Q6_K)->block_bytes, "q6_k");
    CHECK(sizeof(ds8b__blk_q8_k) == (size_t)ds8b__type_info(DS8B_T_Q8_K)->block_bytes, "q8_k");
    CHECK(sizeof(ds8b__blk_q2_k) == (size_t)ds8b__type_info(DS8B_T_Q2_K)->block_bytes, "q2_k");
    CHECK(sizeof(ds8b__blk_q3_k) == (size_t)ds8b__type_info(DS8B_T_Q3_K)->block_bytes, "q3_k");
    CHECK(sizeof(ds8b__blk_q5_k) == (size_t)ds8b__type_info(DS8B_T_Q5_K)->block_bytes, "q5_k");
    CHECK(sizeof(ds8b__blk_q5_0) == (size_t)ds8b__type_info(DS8B_T_Q5_0)->block_bytes, "q5_0");
    CHECK(sizeof(ds8b__blk_w4a16) == (size_t)ds8b__type_info(DS8B_T_W4A16)->block_bytes, "w4a16");
}

static void test_dequant_vs_spec(void) {
    for (int k = 0; k < NQT; k++) {
        int type = k_qtypes[k];
        const ds8b__type_traits *t = ds8b__type_info(type);
        int be = t->block_elems, bb = t->block_bytes, nb = 3;
        uint8_t buf[3 * 300];
        float out[3 * 256];
        int bad = 0;
        for (int rep = 0; rep < 40; rep++) {
            for (int b = 0; b < nb; b++) rand_block(type, buf + b * bb, bb);
            ds8b__dequant_row(type, buf, out, (int64_t)nb * be);
            for (int b = 0; b < nb; b++)
                for (int i = 0; i < be; i++) {
                    float r = ref_elem(type, buf + b * bb, i);
                    float g = out[b * be + i];
                    if (!(fabsf(r - g) <= 1e-6f * fabsf(r) + 1e-12f)) {
                        if (bad++ < 3) CHECK(0, "%s block %d elem %d: got %g want %g", t->name, b, i, g, r);
                    }
                }
        }
        CHECK(bad == 0, "%s: %d mismatches", t->name, bad);
    }
    /* float types */
    uint16_t h[64];
    float f[64];
    for (int i = 0; i < 64; i++) h[i] = (uint16_t)rnd32();
    ds8b__dequant_row(DS8B_T_BF16, h, f, 64);
    for (int i = 0; i < 64; i++) {
        float r = ds8b__bf16_to_f32(h[i]);
        CHECK(memcmp(&r, &f[i], 4) == 0 || (isnan(r) && isnan(f[i])), "bf16 %d", i);
    }
}

/* Naive reference quantizer for Q4_0 (scale from the largest magnitude),
 * to check that the search does at least as well. */
static double naive_q4_0_err(const float *x, int n) {
    double e = 0;
    for (int b = 0; b < n; b += 32) {
        float amax = 0, mx = 0;
        for (int i = 0; i < 32; i++)
            if (fabsf(x[b + i]) > amax) { amax = fabsf(x[b + i]); mx = x[b + i]; }
        float d = ds8b__f16_to_f32(ds8b__f32_to_f16(mx / -8.0f));
        float id = d != 0 ? 1.0f / d : 0;
        for (int i = 0; i < 32; i++) {
            float v = x[b + i] * id + 8.5f;
            int q = v < 0 ? 0 : v > 15 ? 15 : (int)v;
            double r = x[b + i] - (q - 8) * d;
            e += r * r;
        }
    }
    return e;
}

static void test_roundtrip(void) {
    static const struct { int type; double bound; } cases[] = {
        {DS8B_T_Q8_0, 0.006}, {DS8B_T_Q4_0, 0.105}, {DS8B_T_Q4_1, 0.095}, {DS8B_T_Q5_0, 0.052},
        {DS8B_T_Q5_1, 0.047}, {DS8B_T_Q4_K, 0.10},  {DS8B_T_Q5_K, 0.05},  {DS8B_T_Q6_K, 0.026},
        {DS8B_T_W4A16, 0.095}, {DS8B_T_Q8_K, 0.010}, {DS8B_T_F16, 0.001}, {DS8B_T_BF16, 0.004},
        {DS8B_T_Q3_K, 0.17},  {DS8B_T_Q2_K, 0.31},
    };
    enum { N = 256 * 64 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (int i = 0; i < N; i++) x[i] = rndn() * (i % 512 < 256 ? 1.0f : 0.01f);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int type = cases[c].type;
        CHECK(ds8b__type_can_quantize(type), "%d", type);
        int rc = ds8b__quant_row(type, x, q, N);
        CHECK(rc == 0, "quant %d rc %d", type, rc);
        ds8b__dequant_row(type, q, y, N);
        /* error relative to the rms of each 256-value region */
        double worst = 0;
        for (int r = 0; r < N; r += 256) {
            double se = 0, sx = 0;
            for (int i = r; i < r + 256; i++) {
                se += (double)(x[i] - y[i]) * (x[i] - y[i]);
                sx += (double)x[i] * x[i];
            }
            double rel = sqrt(se / sx);
            if (rel > worst) worst = rel;
        }
        CHECK(worst <= cases[c].bound, "%s: relative rms error %.4f > %.4f",
              ds8b__type_info(type)->name, worst, cases[c].bound);
        printf("  # %-6s worst relative rms error %.4f\n", ds8b__type_info(type)->name, worst);
    }
    /* the Q4_0 search beats the naive max/-8 scale */
    ds8b__quant_row(DS8B_T_Q4_0, x, q, N);
    ds8b__dequant_row(DS8B_T_Q4_0, q, y, N);
    double e = 0;
    for (int i = 0; i < N; i++) e += (double)(x[i] - y[i]) * (x[i] - y[i]);
    double en = naive_q4_0_err(x, N);
    CHECK(e < en * 0.97, "q4_0 search error %g vs naive %g", e, en);
    printf("  # q4_0 squared error: search %.4g, naive %.4g (%.1f%% less)\n", e, en, 100 * (1 - e / en));
}

static void test_edge_inputs(void) {
    static const int types[] = {DS8B_T_Q8_0, DS8B_T_Q4_0, DS8B_T_Q4_1, DS8B_T_Q5_0, DS8B_T_Q5_1,
                                DS8B_T_Q4_K, DS8B_T_Q5_K, DS8B_T_Q6_K, DS8B_T_W4A16, DS8B_T_Q8_K,
                                DS8B_T_Q3_K, DS8B_T_Q2_K};
    float x[512], y[512];
    uint8_t q[2048];
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        int type = types[k];
        /* zeros, a constant, NaN/inf, huge, tiny */
        for (int mode = 0; mode < 5; mode++) {
            for (int i = 0; i < 512; i++) {
                switch (mode) {
                case 0: x[i] = 0; break;
                case 1: x[i] = 0.75f; break;
                case 2: x[i] = i % 7 == 0 ? NAN : i % 11 == 0 ? INFINITY : rndn(); break;
                case 3: x[i] = rndn() * 1e30f; break;
                default: x[i] = rndn() * 1e-30f; break;
                }
            }
            CHECK(ds8b__quant_row(type, x, q, 512) == 0, "type %d mode %d", type, mode);
            ds8b__dequant_row(type, q, y, 512);
            int nonfin = 0;
            for (int i = 0; i < 512; i++) nonfin += !isfinite(y[i]) && mode != 3;
            CHECK(nonfin == 0, "type %d mode %d: %d non-finite outputs", type, mode, nonfin);
            if (mode == 0) {
                int nz = 0;
                for (int i = 0; i < 512; i++) nz += y[i] != 0;
                CHECK(nz == 0, "type %d zeros -> %d nonzero", type, nz);
            }
            if (mode == 1 && type != DS8B_T_Q8_K) {
                double worst = 0;
                for (int i = 0; i < 512; i++) worst = fmax(worst, fabs(y[i] - 0.75));
                CHECK(worst < 0.01, "type %d constant: err %g", type, worst);
            }
        }
    }
    CHECK(ds8b__quant_row(DS8B_T_Q8_1, x, q, 256) == DS8B_E_UNSUPPORTED, "q8_1 (activations only)");
    CHECK(ds8b__quant_row(DS8B_T_Q4_0, x, q, 33) == DS8B_E_INVALID, "bad n");
    CHECK(ds8b__quant_row(12345, x, q, 32) == DS8B_E_UNSUPPORTED, "bad type");
}

/* W4A16 is byte-identical to Q4_1. */
static void test_w4a16_is_q4_1(void) {
    float x[256], a[256], b[256];
    uint8_t qa[200], qb[200];
    for (int i = 0; i < 256; i++) x[i] = rndn();
    ds8b__quant_row(DS8B_T_W4A16, x, qa, 256);
    ds8b__quant_row(DS8B_T_Q4_1, x, qb, 256);
    CHECK(memcmp(qa, qb, 160) == 0, "bytes differ");
    ds8b__dequant_row(DS8B_T_W4A16, qa, a, 256);
    ds8b__dequant_row(DS8B_T_Q4_1, qb, b, 256);
    CHECK(memcmp(a, b, sizeof a) == 0, "values differ");
}

int main(void) {
    RUN(test_sizes);
    RUN(test_dequant_vs_spec);
    RUN(test_roundtrip);
    RUN(test_edge_inputs);
    RUN(test_w4a16_is_q4_1);
    T_EXIT();
}
