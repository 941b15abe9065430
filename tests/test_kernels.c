/* test_kernels.c -- matmul at every ISA level this CPU has, for every
 * weight type and odd shapes, against (a) a float reference with an error
 * bound derived from 8-bit activation rounding and (b) the scalar level's
 * integer kernels with a tight tolerance; bit-identical results for 1, 2
 * and 3 threads; the float vector helpers. */
#include "t.h"
#include "internal.h"
#include "quant/quant.h"
#include "kernels/kernels.h"
#include "kernels/kern_impl.h"
#include "kernels/packing.h"

#include <math.h>
#include <stdint.h>

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint32_t rnd32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float rndu(void) { return (float)(rnd32() & 0xFFFFFF) / 16777216.0f; }
static float rndn(void) { return (rndu() + rndu() + rndu() - 1.5f) * 2.0f; }

static const int k_types[] = {DS8B_T_F32,  DS8B_T_F16,  DS8B_T_BF16, DS8B_T_Q4_0, DS8B_T_Q4_1,
                              DS8B_T_Q5_0, DS8B_T_Q5_1, DS8B_T_Q8_0, DS8B_T_Q2_K, DS8B_T_Q3_K,
                              DS8B_T_Q4_K, DS8B_T_Q5_K, DS8B_T_Q6_K, DS8B_T_W4A16};
#define NT (int)(sizeof k_types / sizeof k_types[0])

static bool is_float_type(int t) {
    return t == DS8B_T_F32 || t == DS8B_T_F16 || t == DS8B_T_BF16 || t == DS8B_T_W4A16;
}
static bool is_k(int t) { return t >= DS8B_T_Q2_K && t <= DS8B_T_Q6_K; }

/* Makes a rows x cols weight tensor of the type from random floats (or
 * random bytes with sane scales for types without a quantizer). */
static void make_weights(int type, int64_t rows, int64_t cols, ds8b__tensor *t) {
    size_t rb;
    ds8b__row_bytes(type, cols, &rb);
    uint8_t *data = malloc(rb * (size_t)rows + 64);
    float *f = malloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *dst = data + (size_t)r * rb;
        if (type == DS8B_T_Q2_K || type == DS8B_T_Q3_K) {
            for (size_t i = 0; i < rb; i++) dst[i] = (uint8_t)rnd32();
            for (int64_t b = 0; b < cols / 256; b++) {
                uint8_t *blk = dst + b * (type == DS8B_T_Q2_K ? 84 : 110);
                uint16_t h = ds8b__f32_to_f16(0.01f + 0.02f * rndu());
                uint16_t m = ds8b__f32_to_f16(0.01f * rndu());
                if (type == DS8B_T_Q2_K) { memcpy(blk + 80, &h, 2); memcpy(blk + 82, &m, 2); }
                else memcpy(blk + 108, &h, 2);
            }
        } else {
            float sc = 0.2f + rndu();
            for (int64_t i = 0; i < cols; i++) f[i] = rndn() * sc + (r % 3 == 0 ? 0.3f : 0.0f);
            ds8b__quant_row(type, f, dst, cols);
        }
    }
    free(f);
    memset(t, 0, sizeof *t);
    t->type = type;
    t->n_dims = 2;
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->ne[2] = t->ne[3] = 1;
    t->data = data;
    t->nbytes = rb * (size_t)rows;
}

static int levels_available(void) { return ds8b__isa_max_level() + 1; }

typedef struct {
    int64_t rows, cols, n;
} shape;

static void check_one(int type, shape s, ds8b__pool **pools, double *worst_ref, double *worst_isa) {
    ds8b__tensor w;
    make_weights(type, s.rows, s.cols, &w);
    float *x = malloc((size_t)(s.n * s.cols) * sizeof(float));
    for (int64_t i = 0; i < s.n * s.cols; i++) x[i] = rndn() * (i % 97 == 0 ? 4.0f : 1.0f);
    size_t ny = (size_t)(s.n * s.rows);
    float *y = malloc(ny * sizeof(float)), *ys = malloc(ny * sizeof(float));
    float *yt = malloc(ny * sizeof(float));
    float *wf = malloc((size_t)(s.rows * s.cols) * sizeof(float));
    size_t rb;
    ds8b__row_bytes(type, s.cols, &rb);
    for (int64_t r = 0; r < s.rows; r++)
        ds8b__dequant_row(type, (const uint8_t *)w.data + r * rb, wf + r * s.cols, s.cols);
    ds8b__workspace ws = {0};
    ds8b__err e = {0};
    const char *tn = ds8b__type_info(type)->name;
    int blk = is_k(type) ? 256 : 32;

    /* scalar level result */
    ds8b__isa_force(0);
    int rc = ds8b__matmul(pools[0], &w, x, s.n, ys, &ws, &e);
    CHECK(rc == 0, "%s scalar: %s", tn, e.msg);
    for (int lvl = 0; lvl < levels_available(); lvl++) {
        ds8b__isa_force(lvl);
        const ds8b__kops *k = ds8b__kops_get();
        /* level avx512-bf16 runs W4A16/BF16 on bf16-rounded activations
         * (test_bf16_level checks it bit for bit against its reference) */
        bool bf16_act = is_float_type(type) && k->q[type].mm;
        bool same_algo = !bf16_act && (is_float_type(type) || s.n == 1 || lvl == 0 || (k->q[type].batched && !k->q[type].mmp));
        rc = ds8b__matmul(pools[0], &w, x, s.n, y, &ws, &e);
        CHECK(rc == 0, "%s lvl %d: %s", tn, lvl, e.msg);
        for (int64_t c = 0; c < s.n; c++)
            for (int64_t r = 0; r < s.rows; r++) {
                const float *xr = x + c * s.cols, *wr = wf + r * s.cols;
                double ref = 0, mag = 0, qerr = 0;
                for (int64_t b = 0; b < s.cols; b += blk) {
                    float amax = 0;
                    for (int i = 0; i < blk; i++) amax = fmaxf(amax, fabsf(xr[b + i]));
                    for (int i = 0; i < blk; i++) {
                        ref += (double)wr[b + i] * xr[b + i];
                        mag += fabs((double)wr[b + i] * xr[b + i]);
                        qerr += fabs((double)wr[b + i]) * amax / 127.0 * 0.5;
                    }
                }
                double got = y[c * s.rows + r];
                /* (a) float reference: activation rounding bound + float slack */
                double bound = (is_float_type(type) ? 0 : qerr * 1.001) + (bf16_act ? 4e-3 : 2e-5) * mag + 1e-6;
                double err = fabs(got - ref);
                if (err / bound > *worst_ref) *worst_ref = err / bound;
                if (!(err <= bound)) {
                    CHECK(0, "%s lvl %d rows %lld cols %lld n %lld [%lld,%lld]: got %g ref %g bound %g",
                          tn, lvl, (long long)s.rows, (long long)s.cols, (long long)s.n,
                          (long long)c, (long long)r, got, ref, bound);
                    goto out;
                }
                /* (b) same algorithm as the scalar level: tight */
                if (same_algo) {
                    double d = fabs(got - ys[c * s.rows + r]);
                    double tb = 2e-5 * (mag + qerr) + 1e-6;
                    if (d / tb > *worst_isa) *worst_isa = d / tb;
                    if (!(d <= tb)) {
                        CHECK(0, "%s lvl %d rows %lld cols %lld n %lld [%lld,%lld]: got %g scalar %g",
                              tn, lvl, (long long)s.rows, (long long)s.cols, (long long)s.n,
                              (long long)c, (long long)r, got, ys[c * s.rows + r]);
                        goto out;
                    }
                }
            }
        /* DS8B_MM_ROWWISE: each row exactly as a one-row call computes it */
        if (s.n > 1) {
            rc = ds8b__matmul_ex(pools[1], &w, x, s.n, yt, &ws, DS8B_MM_ROWWISE, &e);
            CHECK(rc == 0, "%s lvl %d rowwise: %s", tn, lvl, e.msg);
            for (int64_t c = 0; c < s.n && rc == 0; c++) {
                float *one = y + 0; /* reuse y: recomputed below */
                rc = ds8b__matmul(pools[0], &w, x + c * s.cols, 1, one, &ws, &e);
                if (rc || memcmp(one, yt + c * s.rows, (size_t)s.rows * sizeof(float))) {
                    CHECK(0, "%s lvl %d rows %lld cols %lld n %lld: rowwise row %lld differs from n=1", tn, lvl,
                          (long long)s.rows, (long long)s.cols, (long long)s.n, (long long)c);
                    break;
                }
            }
            ds8b__matmul(pools[0], &w, x, s.n, y, &ws, &e);
        }
        /* bit-identical across thread counts */
        for (int p = 1; p < 3; p++) {
            rc = ds8b__matmul(pools[p], &w, x, s.n, yt, &ws, &e);
            CHECK(rc == 0 && memcmp(y, yt, ny * sizeof(float)) == 0,
                  "%s lvl %d rows %lld cols %lld n %lld: %d threads differ", tn, lvl,
                  (long long)s.rows, (long long)s.cols, (long long)s.n, p + 1);
        }
    }
out:
    ds8b__isa_force(-1);
    ds8b__free(ws.buf);
    free((void *)w.data);
    free(x);
    free(y);
    free(ys);
    free(yt);
    free(wf);
}

static ds8b__pool *g_pools[3];

static void test_matmul_all(void) {
    static const int64_t rows_list[] = {1, 3, 17, 67};
    static const int64_t cols32[] = {32, 96, 256, 768};
    static const int64_t colsk[] = {256, 768};
    static const int64_t ns[] = {1, 2, 5, 9, 19};
    for (int ti = 0; ti < NT; ti++) {
        int type = k_types[ti];
        double wr = 0, wi = 0;
        const int64_t *cl = is_k(type) ? colsk : cols32;
        int ncl = is_k(type) ? 2 : 4;
        /* DS8B_QUICK (sanitizers, qemu): rows 3 and 17, n 1, 5 and 19 --
         * still decode, small batches, the prompt path and odd tiles */
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < ncl; b++)
                for (int c = 0; c < 5; c++) {
                    if (t_quick() && (a == 0 || a == 3 || c == 1 || c == 3)) continue;
                    shape s = {rows_list[a], cl[b], ns[c]};
                    check_one(type, s, g_pools, &wr, &wi);
                }
        printf("  # %-6s worst err/bound: vs float ref %.3f, vs scalar level %.3f\n",
               ds8b__type_info(type)->name, wr, wi);
    }
}

/* Larger shapes exercise chunking (several chunks per thread). */
static void test_matmul_large(void) {
    static const int types[] = {DS8B_T_Q4_0, DS8B_T_Q8_0, DS8B_T_Q4_K, DS8B_T_Q6_K, DS8B_T_W4A16,
                                DS8B_T_F16, DS8B_T_F32, DS8B_T_Q5_K, DS8B_T_Q4_1, DS8B_T_Q5_0,
                                DS8B_T_Q5_1, DS8B_T_Q2_K, DS8B_T_Q3_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        double wr = 0, wi = 0;
        shape s1 = {300, 1024, 1}, s2 = {150, 512, 70};
        if (t_quick()) s1.rows = 100, s2.rows = 40, s2.n = 33; /* still several chunks */
        check_one(types[i], s1, g_pools, &wr, &wi);
        check_one(types[i], s2, g_pools, &wr, &wi);
    }
}

/* Random block bytes (every code, scale and high-bit pattern) with small
 * finite f16 scales where each format keeps them. */
static void random_blocks(int type, uint8_t *p, size_t bytes) {
    for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)rnd32();
    const ds8b__type_traits *t = ds8b__type_info(type);
    int off[2] = {-1, -1};
    switch (type) {
    case DS8B_T_Q4_0: case DS8B_T_Q5_0: case DS8B_T_Q8_0: off[0] = 0; break;
    case DS8B_T_Q4_1: case DS8B_T_Q5_1: case DS8B_T_Q4_K: case DS8B_T_Q5_K: off[0] = 0; off[1] = 2; break;
    case DS8B_T_Q2_K: off[0] = 80; off[1] = 82; break;
    case DS8B_T_Q3_K: off[0] = 108; break;
    case DS8B_T_Q6_K: off[0] = 208; break;
    }
    for (size_t b = 0; b < bytes; b += (size_t)t->block_bytes)
        for (int k = 0; k < 2; k++)
            if (off[k] >= 0) {
                uint16_t h = ds8b__f32_to_f16((0.002f + 0.02f * rndu()) * (rnd32() & 1 ? 1.0f : -1.0f));
                memcpy(p + b + off[k], &h, 2);
            }
}

/* Every SIMD integer decode kernel (a level's own q[type].mm with its own
 * activation format), called directly with 1..9 activation rows and odd
 * row / block counts, against the scalar level's kernel on the same data:
 * same integers, so only float summation order may differ (tolerance
 * 2e-5 of the sum of |terms|); and each element bit-identical to the
 * kernel computing it alone (1 weight row x 1 activation row). */
static void test_int_kernels_direct(void) {
    static const int types[] = {DS8B_T_Q4_0, DS8B_T_Q4_1, DS8B_T_Q5_0, DS8B_T_Q5_1, DS8B_T_Q8_0,
                                DS8B_T_Q2_K, DS8B_T_Q3_K, DS8B_T_Q4_K, DS8B_T_Q5_K, DS8B_T_Q6_K};
    static const int64_t rows_l[] = {1, 6, 13};
    static const int64_t cols32[] = {32, 96, 160, 416, 1056}, colsk[] = {256, 768, 2304};
    static const int64_t ns[] = {1, 2, 3, 4, 5, 9};
    ds8b__isa_force(0);
    const ds8b__kops *sk = ds8b__kops_get();
    int checked = 0;
    for (int lvl = 1; lvl < levels_available(); lvl++) {
        ds8b__isa_force(lvl);
        const ds8b__kops *k = ds8b__kops_get();
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            int type = types[ti];
            const ds8b__qkern *q = &k->q[type], *q0 = &sk->q[type];
            if (!q->mm || q->mm == q0->mm) continue; /* inherits the scalar kernel */
            const char *tn = ds8b__type_info(type)->name;
            const int64_t *cl = is_k(type) ? colsk : cols32;
            int ncl = is_k(type) ? 3 : 5;
            double worst = 0;
            int bad = 0;
            for (int ci = 0; ci < ncl; ci++)
                for (int ri = 0; ri < 3; ri++)
                    for (int ni = 0; ni < 6 && !bad; ni++) {
                        int64_t cols = cl[ci], rows = rows_l[ri], n = ns[ni];
                        size_t rb;
                        ds8b__row_bytes(type, cols, &rb);
                        uint8_t *w = malloc(rb * (size_t)rows);
                        random_blocks(type, w, rb * (size_t)rows);
                        float *x = malloc((size_t)(n * cols) * sizeof(float));
                        for (int64_t i = 0; i < n * cols; i++)
                            x[i] = rndn() * (i % 61 == 0 ? 8.0f : 1.0f) * (i / cols == 2 ? 0.0f : 1.0f);
                        size_t as = (q->act_size(cols) + 63) & ~(size_t)63;
                        size_t as0 = (q0->act_size(cols) + 63) & ~(size_t)63;
                        uint8_t *xa = aligned_alloc(64, as * (size_t)n), *xa0 = aligned_alloc(64, as0 * (size_t)n);
                        for (int64_t c = 0; c < n; c++) {
                            q->act_quant(x + c * cols, xa + c * as, cols);
                            q0->act_quant(x + c * cols, xa0 + c * as0, cols);
                        }
                        float *y = malloc((size_t)(n * rows) * sizeof(float));
                        float *y0 = malloc((size_t)(n * rows) * sizeof(float));
                        float *wf = malloc((size_t)cols * sizeof(float));
                        q->mm(w, rb, rows, xa, as, n, cols, y, rows);
                        q0->mm(w, rb, rows, xa0, as0, n, cols, y0, rows);
                        for (int64_t r = 0; r < rows && !bad; r++) {
                            ds8b__dequant_row(type, w + r * rb, wf, cols);
                            for (int64_t c = 0; c < n && !bad; c++) {
                                double mag = 0;
                                for (int64_t i = 0; i < cols; i++) mag += fabs((double)wf[i] * x[c * cols + i]);
                                double got = y[c * rows + r], ref = y0[c * rows + r];
                                double tb = 2e-5 * mag + 1e-6, d = fabs(got - ref);
                                if (d / tb > worst) worst = d / tb;
                                float one;
                                q->mm(w + r * rb, rb, 1, xa + c * as, as, 1, cols, &one, 1);
                                if (!(d <= tb) || memcmp(&one, &y[c * rows + r], sizeof one)) {
                                    CHECK(0, "%s lvl %d rows %lld cols %lld n %lld [%lld,%lld]: got %.9g scalar %.9g alone %.9g",
                                          tn, lvl, (long long)rows, (long long)cols, (long long)n, (long long)c,
                                          (long long)r, got, ref, one);
                                    bad = 1;
                                }
                            }
                        }
                        checked++;
                        free(w), free(x), free(xa), free(xa0), free(y), free(y0), free(wf);
                    }
            printf("  # %-5s %-11s direct kernel worst diff/tolerance vs scalar: %.3f\n", tn, k->name, worst);
        }
    }
    ds8b__isa_force(-1);
    CHECK(checked > 0 || levels_available() == 1, "no SIMD integer kernel checked");
}

/* The SIMD activation quantizer gives exactly the reference's values. */
static void test_quant_i8_32(void) {
#if !defined(__x86_64__)
    SKIP("ds8b__avx512_quant_i8_32 is x86 only");
    return;
#else
    if (ds8b__isa_max_level() < 2) {
        SKIP("this CPU has no AVX-512 VNNI");
        return;
    }
    float x[32];
    int8_t a[32], b[32];
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        int kind = it % 7;
        for (int i = 0; i < 32; i++) {
            x[i] = rndn() * (kind == 1 ? 1e-30f : kind == 2 ? 1e30f : 1.0f);
            /* exact halves after scaling: multiples of amax/254 */
            if (kind == 3) x[i] = (float)((int)(rnd32() % 255) - 127) * (1.0f / 254.0f);
        }
        if (kind == 4) x[rnd32() % 32] = NAN;
        if (kind == 5) x[rnd32() % 32] = INFINITY;
        if (kind == 6) memset(x, 0, sizeof x), x[3] = -0.0f;
        float da = ds8b__quant_i8_32(x, a), db = ds8b__avx512_quant_i8_32(x, b);
        if (memcmp(&da, &db, sizeof da) || memcmp(a, b, 32)) bad++;
    }
    CHECK(bad == 0, "%d of 20000 blocks differ from ds8b__quant_i8_32", bad);
#endif
}

static void test_errors(void) {
    ds8b__tensor w;
    make_weights(DS8B_T_Q4_0, 4, 64, &w);
    float x[64] = {0}, y[4];
    ds8b__workspace ws = {0};
    ds8b__err e = {0};
    ds8b__tensor b = w;
    b.ne[0] = 48;
    CHECK(ds8b__matmul(NULL, &b, x, 1, y, &ws, &e) == DS8B_E_INVALID, "cols not block multiple");
    b = w;
    b.nbytes = 10;
    CHECK(ds8b__matmul(NULL, &b, x, 1, y, &ws, &e) == DS8B_E_INVALID, "short data");
    b = w;
    b.type = DS8B_T_Q8_K;
    CHECK(ds8b__matmul(NULL, &b, x, 1, y, &ws, &e) == DS8B_E_UNSUPPORTED, "q8_k weights");
    CHECK(ds8b__matmul(NULL, &w, x, 0, y, &ws, &e) == 0, "n = 0");
    CHECK(ds8b__matmul(NULL, &w, NULL, 1, y, &ws, &e) == DS8B_E_INVALID, "null x");
    ds8b__free(ws.buf);
    free((void *)w.data);
}

static void test_vec_helpers(void) {
    enum { N = 1000 };
    float a[N], b[N], y0[N], y1[N];
    uint16_t h[N], h2[N];
    for (int i = 0; i < N; i++) {
        a[i] = rndn();
        b[i] = rndn();
        h[i] = ds8b__f32_to_f16(a[i]);
    }
    for (int lvl = 0; lvl < levels_available(); lvl++) {
        ds8b__isa_force(lvl);
        for (int n = 0; n <= N; n += (n < 40 ? 1 : 97)) {
            double ref = 0, mag = 0, refh = 0;
            for (int i = 0; i < n; i++) {
                ref += (double)a[i] * b[i];
                refh += (double)ds8b__f16_to_f32(h[i]) * b[i];
                mag += fabs((double)a[i] * b[i]);
            }
            float d = ds8b__vec_dot_f32(a, b, n);
            CHECK(fabs(d - ref) <= 1e-5 * mag + 1e-6, "lvl %d dot n=%d: %g vs %g", lvl, n, d, ref);
            float dh = ds8b__vec_dot_f16f32(h, b, n);
            CHECK(fabs(dh - refh) <= 1e-5 * mag + 1e-6, "lvl %d dot_f16 n=%d", lvl, n);
            for (int i = 0; i < n; i++) y0[i] = y1[i] = b[i];
            ds8b__vec_axpy(y1, a, 0.37f, n);
            int bad = 0;
            for (int i = 0; i < n; i++) bad += fabsf(y1[i] - (y0[i] + 0.37f * a[i])) > 1e-6f * (1 + fabsf(y1[i]));
            CHECK(bad == 0, "lvl %d axpy n=%d", lvl, n);
            for (int i = 0; i < n; i++) y1[i] = b[i];
            ds8b__vec_axpy_f16(y1, h, -1.5f, n);
            bad = 0;
            for (int i = 0; i < n; i++)
                bad += fabsf(y1[i] - (b[i] - 1.5f * ds8b__f16_to_f32(h[i]))) > 1e-6f * (1 + fabsf(y1[i]));
            CHECK(bad == 0, "lvl %d axpy_f16 n=%d", lvl, n);
            for (int i = 0; i < n; i++) y1[i] = b[i];
            ds8b__vec_scale(y1, 0.5f, n);
            bad = 0;
            for (int i = 0; i < n; i++) bad += y1[i] != b[i] * 0.5f;
            CHECK(bad == 0, "lvl %d scale n=%d", lvl, n);
            ds8b__vec_f16_to_f32(h, y1, n);
            bad = 0;
            for (int i = 0; i < n; i++) bad += y1[i] != ds8b__f16_to_f32(h[i]);
            CHECK(bad == 0, "lvl %d f16_to_f32 n=%d", lvl, n);
            ds8b__vec_f32_to_f16(b, h2, n);
            bad = 0;
            for (int i = 0; i < n; i++) bad += h2[i] != ds8b__f32_to_f16(b[i]);
            CHECK(bad == 0, "lvl %d f32_to_f16 n=%d", lvl, n);
        }
    }
    ds8b__isa_force(-1);
}


/* Offsets of the f16 scale fields (d, dmin) in a block of the type, for
 * weights made of raw bytes; -1: none. */
static void scale_fields(int type, int *d, int *dm) {
    *d = 0, *dm = -1;
    switch (type) {
    case DS8B_T_Q4_1: case DS8B_T_Q5_1: case DS8B_T_Q4_K: case DS8B_T_Q5_K: *dm = 2; break;
    case DS8B_T_Q2_K: *d = 80, *dm = 82; break;
    case DS8B_T_Q3_K: *d = 108; break;
    case DS8B_T_Q6_K: *d = 208; break;
    default: break;
    }
}

/* Row-group layout (packing.h): pack/unpack round trip; every level's
 * group kernel directly against ds8b__mmg_ref (bit-identical: same
 * integers, same float sequence) and against the scalar level's row
 * kernel (tolerance, different float order), with 1..16 rows in a group,
 * odd block counts and 1..9 activation rows (the kernels take them in fours). Weights: quantized normals,
 * then raw random bytes, then all-0xFF codes and scales against
 * activations of one magnitude (every code +-127): the largest integer
 * sums, where an int16 partial of the AVX2 kernels would saturate. */
static void test_group_kernels(void) {
    static const int types[] = {DS8B_T_Q4_0, DS8B_T_Q8_0, DS8B_T_Q4_1, DS8B_T_Q5_0, DS8B_T_Q5_1,
                                DS8B_T_Q2_K, DS8B_T_Q3_K, DS8B_T_Q4_K, DS8B_T_Q5_K, DS8B_T_Q6_K};
    static const int64_t nbs[] = {1, 3, 5, 13, 33, 128};
    static const int nrs[] = {1, 7, 15, 16};
    const int ntypes = (int)(sizeof types / sizeof types[0]);
    int tested = 0;
    for (int ti = 0; ti < ntypes; ti++) {
        int type = types[ti];
        const char *tn = ds8b__type_info(type)->name;
        const bool kq = ds8b__gact_is_k(type);
        CHECK(ds8b__pack_supported(type), "%s: not packable", tn);
        for (int mode = 0; mode < 3; mode++)
        for (int a = 0; a < 6; a++)
            for (int b = 0; b < 4; b++) {
                if (mode && (a + b) % 2) continue; /* raw and extreme weights: half the shapes */
                /* K-quants: nbs[] super-blocks (8 units of 32 each) */
                int64_t nb = kq ? 8 * (nbs[a] > 40 ? 16 : nbs[a]) : nbs[a], cols = nb * 32;
                int nr = nrs[b];
                ds8b__tensor w;
                make_weights(type, nr, cols, &w);
                size_t rb;
                ds8b__row_bytes(type, cols, &rb);
                if (mode) {
                    int od, om;
                    scale_fields(type, &od, &om);
                    size_t bb = ds8b__type_info(type)->block_bytes;
                    uint8_t *wd = (uint8_t *)w.data;
                    for (size_t i = 0; i < rb * (size_t)nr; i++) wd[i] = mode == 1 ? (uint8_t)rnd32() : 0xFF;
                    for (size_t o = 0; o < rb * (size_t)nr; o += bb) {
                        uint16_t h = ds8b__f32_to_f16(0.01f + 0.02f * rndu()), m = ds8b__f32_to_f16(0.01f * rndu());
                        memcpy(wd + o + od, &h, 2);
                        if (om >= 0) memcpy(wd + o + om, &m, 2);
                    }
                }
                uint8_t *g = malloc(rb * DS8B_G), *back = malloc(rb * DS8B_G);
                ds8b__pack_group(type, w.data, rb, nr, nb, g);
                ds8b__unpack_group(type, g, nb, back, rb, nr);
                CHECK(memcmp(back, w.data, rb * (size_t)nr) == 0, "%s nb %lld nr %d: unpack(pack) differs", tn,
                      (long long)nb, nr);
                int nc = 1 + (a + b + mode) % 9;
                float *x = malloc((size_t)(nc * cols) * sizeof(float));
                for (int64_t i = 0; i < nc * cols; i++)
                    x[i] = mode == 2 ? (rnd32() & 1 ? 1.0f : -1.0f) : rndn() * (i % 89 == 0 ? 5.0f : 1.0f);
                size_t as = ds8b__gact_row_bytes(type, cols);
                uint8_t *act = malloc(as * (size_t)nc), *act2 = malloc(as * (size_t)nc);
                for (int c = 0; c < nc; c++) {
                    if (kq) ds8b__gact_quant_k(x + c * cols, act + c * as, cols);
                    else ds8b__gact_quant_scalar(x + c * cols, act + c * as, cols);
                }
                float yref[9 * 16], y[9 * 16], ys[9 * 16];
                ds8b__mmg_ref(type, g, nb, act, as, nc, yref, 16, nr);
                /* the scalar row kernel on the same activations (the scalar
                 * level's formats are the group formats) */
                ds8b__isa_force(0);
                const ds8b__kops *k0 = ds8b__kops_get();
                for (int c = 0; c < nc; c++)
                    k0->q[type].mm(w.data, rb, nr, act + c * as, as, 1, cols, ys + c * 16, 16);
                float *wf = malloc((size_t)cols * sizeof(float));
                for (int r = 0; r < nr; r++) {
                    ds8b__dequant_row(type, (const uint8_t *)w.data + (size_t)r * rb, wf, cols);
                    for (int c = 0; c < nc; c++) {
                        /* sum |w| |x| (x from its codes): the scale of the rounding */
                        double mag = 0;
                        for (int64_t i = 0; i < cols; i++) {
                            double xv = kq ? ((const ds8b__blk_q8_k *)(act + c * as))[i / 256].d *
                                                 ((const ds8b__blk_q8_k *)(act + c * as))[i / 256].qs[i % 256]
                                           : ((const ds8b__act32 *)(act + c * as))[i / 32].d *
                                                 ((const ds8b__act32 *)(act + c * as))[i / 32].qs[i % 32];
                            mag += fabs((double)wf[i] * xv);
                        }
                        double d = fabs((double)yref[c * 16 + r] - ys[c * 16 + r]);
                        CHECK(d <= 1e-5 * mag + 1e-6, "%s mode %d nb %lld nr %d [%d,%d]: ref %g scalar row kernel %g",
                              tn, mode, (long long)nb, nr, c, r, yref[c * 16 + r], ys[c * 16 + r]);
                    }
                }
                free(wf);
                for (int lvl = 1; lvl < levels_available(); lvl++) {
                    ds8b__isa_force(lvl);
                    const ds8b__kops *k = ds8b__kops_get();
                    if (!k->mmg[type]) continue;
                    tested++;
                    /* the level's activation quantizer gives the same bytes */
                    if (!kq) {
                        for (int c = 0; c < nc; c++) k->gact_quant(x + c * cols, act2 + c * as, cols);
                        CHECK(memcmp(act, act2, as * (size_t)nc) == 0, "%s lvl %d: gact_quant differs from scalar",
                              tn, lvl);
                    }
                    memset(y, 0x7f, sizeof y);
                    k->mmg[type](g, nb, act, as, nc, y, 16, nr);
                    for (int c = 0; c < nc; c++) {
                        CHECK(memcmp(y + c * 16, yref + c * 16, (size_t)nr * sizeof(float)) == 0,
                              "%s lvl %d mode %d nb %lld nr %d row %d: group kernel differs from reference (%g vs %g)",
                              tn, lvl, mode, (long long)nb, nr, c, y[c * 16], yref[c * 16]);
                        for (int r = nr; r < 16; r++) {
                            uint32_t u;
                            memcpy(&u, &y[c * 16 + r], 4);
                            CHECK(u == 0x7f7f7f7fu, "%s lvl %d: wrote past nr", tn, lvl);
                        }
                    }
                }
                ds8b__isa_force(-1);
                free(x);
                free(act);
                free(act2);
                free(g);
                free(back);
                free((void *)w.data);
            }
    }
    if (!tested) SKIP("no level with row-group kernels on this CPU (needs AVX2)");
}

/* Packed tensors through ds8b__matmul against the same weights row-major:
 * bit-identical on the paths that read row-major rows (scalar level,
 * prompt batches); to rounding on decode at the SIMD levels (row-group
 * kernels vs row-major tiles); bit-identical for 1, 2 and 3 threads; rows
 * not a multiple of 16 (row-major tail). */
static void test_packed_matmul(void) {
    static const int types[] = {DS8B_T_Q4_0, DS8B_T_Q8_0, DS8B_T_Q4_1, DS8B_T_Q5_0, DS8B_T_Q5_1,
                                DS8B_T_Q2_K, DS8B_T_Q3_K, DS8B_T_Q4_K, DS8B_T_Q5_K, DS8B_T_Q6_K};
    static const int64_t rows_list[] = {16, 37, 160};
    static const int64_t cols_list[] = {96, 4096};
    static const int64_t ns[] = {1, 3, 7, 20};
    for (int ti = 0; ti < (int)(sizeof types / sizeof types[0]); ti++) {
        int type = types[ti];
        const char *tn = ds8b__type_info(type)->name;
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 2; b++) {
                int64_t rows = rows_list[a], cols = cols_list[b];
                if (ds8b__gact_is_k(type) && cols % 256) cols = 768; /* 3 super-blocks */
                ds8b__tensor w, p;
                make_weights(type, rows, cols, &w);
                p = w;
                uint8_t *pd = malloc(w.nbytes);
                ds8b__pack_matrix(type, w.data, rows, cols / 32, pd);
                p.data = pd;
                p.layout = DS8B_LAYOUT_G16;
                float *x = malloc((size_t)(20 * cols) * sizeof(float));
                for (int64_t i = 0; i < 20 * cols; i++) x[i] = rndn();
                float *y0 = malloc((size_t)(20 * rows) * sizeof(float)), *y1 = malloc((size_t)(20 * rows) * sizeof(float));
                ds8b__workspace ws = {0};
                ds8b__err e = {0};
                for (int lvl = 0; lvl < levels_available(); lvl++) {
                    ds8b__isa_force(lvl);
                    for (int c = 0; c < 4; c++)
                        for (int fl = 0; fl < 2; fl++) {
                            int64_t n = ns[c];
                            int flags = fl ? DS8B_MM_ROWWISE : 0;
                            if (fl && n == 1) continue;
                            int rc = ds8b__matmul_ex(g_pools[0], &w, x, n, y0, &ws, flags, &e);
                            CHECK(rc == 0, "%s: %s", tn, e.msg);
                            /* decode on the row-group kernels vs the row-major tiles:
                             * same integers, another float order; everything else
                             * reads the same row-major bytes: bit-identical */
                            bool grp = lvl > 0 && (n == 1 || fl) && ds8b__kops_get()->mmg[type];
                            float *yt1 = malloc((size_t)(n * rows) * sizeof(float));
                            for (int t = 0; t < 3; t++) {
                                rc = ds8b__matmul_ex(g_pools[t], &p, x, n, t ? yt1 : y1, &ws, flags, &e);
                                CHECK(rc == 0, "%s: %s", tn, e.msg);
                                if (t) CHECK(memcmp(y1, yt1, (size_t)(n * rows) * sizeof(float)) == 0,
                                             "%s lvl %d n %lld: %d threads differ on packed weights", tn, lvl,
                                             (long long)n, t + 1);
                            }
                            free(yt1);
                            bool same = true;
                            for (int64_t i = 0; i < n * rows; i++) {
                                double d = fabs((double)y0[i] - y1[i]);
                                if (grp ? !(d <= 1e-5 * (fabs(y0[i]) + 1.0) * sqrt((double)cols)) : y0[i] != y1[i])
                                    same = false;
                            }
                            CHECK(same, "%s lvl %d rows %lld cols %lld n %lld flags %d: packed differs%s", tn, lvl,
                                  (long long)rows, (long long)cols, (long long)n, flags,
                                  grp ? " beyond rounding" : " (should be bit-identical)");
                        }
                }
                ds8b__isa_force(-1);
                ds8b__free(ws.buf);
                free(x);
                free(y0);
                free(y1);
                free(pd);
                free((void *)w.data);
            }
    }
}

/* ds8b__matmul_multi equals separate calls bit for bit (one job over
 * several matrices, mixed types and layouts; fallback with a type that
 * has no row-group kernel), for 1-3 threads at every level. */
static void test_matmul_multi(void) {
    const int64_t cols = 320;
    const int types[4] = {DS8B_T_Q4_0, DS8B_T_Q8_0, DS8B_T_Q4_0, DS8B_T_Q4_K};
    const int64_t rows[4] = {37, 16, 160, 21};
    ds8b__tensor w[4];
    uint8_t *pd = NULL;
    for (int i = 0; i < 4; i++) make_weights(types[i], rows[i], types[i] == DS8B_T_Q4_K ? 256 : cols, &w[i]);
    /* the K-quant needs cols % 256: give it its own width, used only in the fallback set */
    pd = malloc(w[2].nbytes);
    ds8b__pack_matrix(DS8B_T_Q4_0, w[2].data, rows[2], cols / 32, pd);
    ds8b__tensor wp = w[2];
    wp.data = pd;
    wp.layout = DS8B_LAYOUT_G16;
    float *x = malloc(3 * cols * sizeof(float));
    for (int64_t i = 0; i < 3 * cols; i++) x[i] = rndn();
    float *ya[3], *yb[3];
    for (int i = 0; i < 3; i++) {
        ya[i] = malloc(3 * 160 * sizeof(float));
        yb[i] = malloc(3 * 160 * sizeof(float));
    }
    ds8b__workspace ws = {0};
    ds8b__err e = {0};
    const ds8b__tensor *set[3] = {&w[0], &w[1], &wp};
    for (int lvl = 0; lvl < levels_available(); lvl++) {
        ds8b__isa_force(lvl);
        for (int64_t n = 1; n <= 3; n++) {
            int flags = n > 1 ? DS8B_MM_ROWWISE : 0;
            for (int i = 0; i < 3; i++) CHECK(ds8b__matmul_ex(g_pools[0], set[i], x, n, ya[i], &ws, flags, &e) == 0, "%s", e.msg);
            for (int t = 0; t < 3; t++) {
                CHECK(ds8b__matmul_multi(g_pools[t], set, 3, x, n, yb, &ws, flags, &e) == 0, "%s", e.msg);
                for (int i = 0; i < 3; i++)
                    CHECK(memcmp(ya[i], yb[i], (size_t)(n * rows[i == 2 ? 2 : i]) * sizeof(float)) == 0,
                          "lvl %d n %lld threads %d: matrix %d differs from a separate call", lvl, (long long)n, t + 1, i);
            }
        }
        /* fallback: a matrix without a row-group kernel */
        float *x2 = malloc(256 * sizeof(float));
        for (int i = 0; i < 256; i++) x2[i] = rndn();
        ds8b__tensor w0;
        make_weights(DS8B_T_Q4_0, 19, 256, &w0);
        const ds8b__tensor *set2[2] = {&w0, &w[3]};
        float *y2a[2] = {ya[0], ya[1]}, *y2b[2] = {yb[0], yb[1]};
        CHECK(ds8b__matmul(g_pools[0], &w0, x2, 1, ya[0], &ws, &e) == 0, "%s", e.msg);
        CHECK(ds8b__matmul(g_pools[0], &w[3], x2, 1, ya[1], &ws, &e) == 0, "%s", e.msg);
        CHECK(ds8b__matmul_multi(g_pools[1], set2, 2, x2, 1, y2b, &ws, 0, &e) == 0, "%s", e.msg);
        CHECK(memcmp(y2a[0], y2b[0], 19 * sizeof(float)) == 0 && memcmp(y2a[1], y2b[1], 21 * sizeof(float)) == 0,
              "lvl %d: fallback differs", lvl);
        free(x2);
        free((void *)w0.data);
    }
    ds8b__isa_force(-1);
    ds8b__free(ws.buf);
    for (int i = 0; i < 3; i++) {
        free(ya[i]);
        free(yb[i]);
    }
    for (int i = 0; i < 4; i++) free((void *)w[i].data);
    free(pd);
    free(x);
}

/* The amx level's prompt kernels (x86/amx_bf16.c), every integer type,
 * odd row and activation counts (tails of both), against a reference in
 * double over the same bf16-rounded weights and activations: the only
 * difference left is the f32 accumulation inside the tiles. Then 1, 2 and
 * 3 threads bit-identical, and each activation row the same whatever the
 * other rows of the call. */
static float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&f, &u, 4);
    return f;
}

static void test_amx_prompt(void) {
#if !defined(__x86_64__)
    SKIP("AMX is x86 only");
    return;
#else
    if (ds8b__isa_max_level() < 4) {
        const char *why = ds8b__isa_note();
        SKIP("no amx level on this CPU (%s)", why ? why : "cpuid reports no AMX-TILE/AMX-BF16/AVX512-BF16");
        return;
    }
    static const int types[] = {DS8B_T_Q4_0, DS8B_T_Q4_1, DS8B_T_Q5_0, DS8B_T_Q5_1, DS8B_T_Q8_0,
                                DS8B_T_Q2_K, DS8B_T_Q3_K, DS8B_T_Q4_K, DS8B_T_Q5_K, DS8B_T_Q6_K,
                                DS8B_T_W4A16, DS8B_T_BF16, DS8B_T_F16};
    static const shape shapes[] = {{16, 256, 16}, {17, 512, 33}, {45, 256, 70}, {64, 768, 129}, {3, 256, 19}, {100, 256, 40},
                                   /* rows_for(4352) = 112: two chunks; 530 > AMX_COLS: two column chunks */
                                   {150, 4352, 37}, {20, 256, 530}};
    ds8b__isa_force(4);
    CHECK(!strcmp(ds8b__isa_name(), "amx"), "level 4 is %s", ds8b__isa_name());
    double worst = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            int type = types[ti];
            shape sh = shapes[si];
            const char *tn = ds8b__type_info(type)->name;
            ds8b__tensor w;
            make_weights(type, sh.rows, sh.cols, &w);
            size_t ny = (size_t)(sh.n * sh.rows), rb;
            ds8b__row_bytes(type, sh.cols, &rb);
            float *x = malloc((size_t)(sh.n * sh.cols) * sizeof(float));
            float *wf = malloc((size_t)(sh.rows * sh.cols) * sizeof(float));
            float *y = malloc(ny * sizeof(float)), *yt = malloc(ny * sizeof(float));
            for (int64_t i = 0; i < sh.n * sh.cols; i++) x[i] = rndn();
            for (int64_t r = 0; r < sh.rows; r++)
                ds8b__dequant_row(type, (const uint8_t *)w.data + r * rb, wf + r * sh.cols, sh.cols);
            ds8b__workspace ws = {0};
            ds8b__err e = {0};
            int rc = ds8b__matmul(g_pools[0], &w, x, sh.n, y, &ws, &e);
            CHECK(rc == 0, "%s: %s", tn, e.msg);
            for (int64_t c = 0; c < sh.n && rc == 0; c++)
                for (int64_t r = 0; r < sh.rows; r++) {
                    double ref = 0, mag = 0;
                    for (int64_t i = 0; i < sh.cols; i++) {
                        double t = (double)bf16_round(wf[r * sh.cols + i]) * bf16_round(x[c * sh.cols + i]);
                        ref += t;
                        mag += fabs(t);
                    }
                    double err = fabs(y[c * sh.rows + r] - ref), bound = 1e-5 * mag + 1e-6;
                    if (err / bound > worst) worst = err / bound;
                    if (!(err <= bound)) {
                        CHECK(0, "%s rows %lld cols %lld n %lld [%lld,%lld]: got %.9g ref %.9g", tn,
                              (long long)sh.rows, (long long)sh.cols, (long long)sh.n, (long long)c,
                              (long long)r, y[c * sh.rows + r], ref);
                        rc = -1;
                        break;
                    }
                }
            for (int p = 1; p < 3 && rc == 0; p++) {
                rc = ds8b__matmul(g_pools[p], &w, x, sh.n, yt, &ws, &e);
                CHECK(rc == 0 && !memcmp(y, yt, ny * sizeof(float)), "%s n %lld: %d threads differ", tn,
                      (long long)sh.n, p + 1);
            }
            /* the last 16 activation rows alone (a different tiling of them) */
            if (rc == 0 && sh.n > 16) {
                int64_t c0 = sh.n - 16;
                rc = ds8b__matmul(g_pools[1], &w, x + c0 * sh.cols, 16, yt, &ws, &e);
                CHECK(rc == 0 && !memcmp(y + c0 * sh.rows, yt, (size_t)(16 * sh.rows) * sizeof(float)),
                      "%s n %lld: rows computed alone differ", tn, (long long)sh.n);
            }
            ds8b__free(ws.buf);
            free((void *)w.data);
            free(x);
            free(wf);
            free(y);
            free(yt);
        }
    printf("  # amx prompt kernels: worst err/bound %.3f (bound 1e-5 of sum |w x| over bf16 operands)\n", worst);
    ds8b__isa_force(-1);
#endif
}

/* ================================================================== */
/* Level avx512-bf16: W4A16, BF16 and F16 weights on vdpbf16ps             */
/* ================================================================== */
/* The level's own pieces against the plain-C reference (bf16_ref.c), bit
 * for bit: activation rounding, W4A16 expansion, then whole matmuls with
 * odd shapes, every output equal to the reference dot; 1, 2 and 3 threads;
 * prompt (n >= 16), small batches, DS8B_MM_ROWWISE and n = 1 all give the
 * same bits for a row, whatever else is in the call; the level below keeps
 * float activations. */
static void test_bf16_level(void) {
#if !defined(__x86_64__)
    SKIP("the avx512-bf16 level is x86 only");
    return;
#else
    if (ds8b__isa_max_level() < 3) {
        SKIP("this CPU has no AVX512-BF16 (cpuid leaf 7 subleaf 1 EAX bit 5)");
        return;
    }
    ds8b__isa_force(3);
    CHECK(!strcmp(ds8b__isa_name(), "avx512-bf16"), "level 3 is %s", ds8b__isa_name());
    /* activation rounding: odd lengths, ties, tiny, huge, inf, denormal */
    {
        float x[200];
        uint16_t a[224], b[224];
        int bad = 0;
        for (int it = 0; it < 300; it++) {
            int64_t n = 1 + (int64_t)(rnd32() % 200);
            for (int64_t i = 0; i < n; i++) {
                uint32_t u = rnd32() << 8 | (rnd32() & 0xFF);
                switch (rnd32() % 8) {
                case 0: u = (u & 0xFFFF0000u) | 0x8000u; break; /* tie */
                case 1: u &= 0x807FFFFFu; break;                /* denormal */
                case 2: u = (u & 0x80000000u) | 0x7F7FFFFFu; break; /* rounds to inf */
                default: { float f = rndn() * 3.0f; memcpy(&u, &f, 4); } break;
                }
                memcpy(&x[i], &u, 4);
            }
            ds8b__bf16_act_ref(x, a, n);
            memset(b, 0xAB, sizeof b);
            ds8b__avx512bf16_act(x, b, n);
            if (memcmp(a, b, (size_t)(n + 31) / 32 * 64)) bad++;
            int64_t n32 = n / 32 * 32;
            if (n32) {
                ds8b__w4a16_bf16_act_ref(x, a, n32);
                ds8b__avx512bf16_w4a16_act(x, b, n32);
                if (memcmp(a, b, (size_t)n32 * 2)) bad++;
            }
        }
        CHECK(bad == 0, "%d activation rows differ from the reference rounding", bad);
    }
    /* W4A16 expansion of random blocks (every code, both scale signs) */
    {
        uint8_t blk[20 * 13];
        uint16_t a[32 * 13], b[32 * 13];
        int bad = 0;
        for (int it = 0; it < 200; it++) {
            random_blocks(DS8B_T_Q4_1, blk, sizeof blk); /* the same bytes as W4A16 */
            ds8b__w4a16_bf16_wrow_ref(blk, a, 13);
            ds8b__avx512bf16_w4a16_row(blk, b, 13);
            if (memcmp(a, b, sizeof a)) bad++;
        }
        CHECK(bad == 0, "%d W4A16 rows expand differently from the reference", bad);
    }
    static const struct { int type; int64_t rows, cols, n; } sh[] = {
        {DS8B_T_W4A16, 1, 32, 1},    {DS8B_T_W4A16, 3, 96, 2},     {DS8B_T_W4A16, 17, 160, 5},
        {DS8B_T_W4A16, 37, 800, 17}, {DS8B_T_W4A16, 150, 1024, 40}, {DS8B_T_W4A16, 7, 4128, 3},
        {DS8B_T_BF16, 1, 1, 1},      {DS8B_T_BF16, 5, 31, 2},      {DS8B_T_BF16, 3, 33, 7},
        {DS8B_T_BF16, 19, 100, 13},  {DS8B_T_BF16, 45, 513, 19},   {DS8B_T_BF16, 130, 1000, 70},
        {DS8B_T_F16, 1, 1, 1},       {DS8B_T_F16, 5, 31, 2},       {DS8B_T_F16, 3, 33, 7},
        {DS8B_T_F16, 19, 100, 16},   {DS8B_T_F16, 45, 513, 19},    {DS8B_T_F16, 130, 1000, 70},
    };
    int nsh = (int)(sizeof sh / sizeof sh[0]);
    for (int si = 0; si < nsh; si++) {
        int type = sh[si].type;
        int64_t rows = sh[si].rows, cols = sh[si].cols, n = sh[si].n;
        const char *tn = ds8b__type_info(type)->name;
        ds8b__tensor w;
        make_weights(type, rows, cols, &w);
        float *x = malloc((size_t)(n * cols) * sizeof(float));
        for (int64_t i = 0; i < n * cols; i++) x[i] = rndn() * (i % 97 == 0 ? 4.0f : 1.0f);
        int64_t nch = (cols + 31) / 32;
        uint16_t *wb = calloc((size_t)(rows * nch * 32), 2), *xb = calloc((size_t)(n * nch * 32), 2);
        size_t rb;
        ds8b__row_bytes(type, cols, &rb);
        for (int64_t r = 0; r < rows; r++) {
            const uint8_t *src = (const uint8_t *)w.data + r * rb;
            if (type == DS8B_T_W4A16) ds8b__w4a16_bf16_wrow_ref(src, wb + r * nch * 32, nch);
            else if (type == DS8B_T_BF16) memcpy(wb + r * nch * 32, src, (size_t)cols * 2);
            else
                for (int64_t i = 0; i < cols; i++) {
                    uint16_t h;
                    memcpy(&h, src + 2 * i, 2);
                    wb[r * nch * 32 + i] = ds8b__bf16_rne_daz(ds8b__f16_to_f32(h));
                }
        }
        for (int64_t c = 0; c < n; c++) {
            if (type == DS8B_T_W4A16) ds8b__w4a16_bf16_act_ref(x + c * cols, xb + c * nch * 32, cols);
            else ds8b__bf16_act_ref(x + c * cols, xb + c * nch * 32, cols);
        }
        size_t ny = (size_t)(n * rows);
        float *y = malloc(ny * 4), *yt = malloc(ny * 4), *one = malloc((size_t)rows * 4);
        ds8b__workspace ws = {0};
        ds8b__err e = {0};
        int rc = ds8b__matmul(g_pools[0], &w, x, n, y, &ws, &e);
        CHECK(rc == 0, "%s: %s", tn, e.msg);
        int bad = 0;
        for (int64_t c = 0; c < n; c++)
            for (int64_t r = 0; r < rows; r++) {
                float ref = ds8b__bf16_dot_ref(wb + r * nch * 32, xb + c * nch * 32, nch);
                if (memcmp(&ref, &y[c * rows + r], 4)) {
                    if (!bad)
                        printf("  # %s %lldx%lld n %lld [%lld,%lld]: got %.9g ref %.9g\n", tn, (long long)rows,
                               (long long)cols, (long long)n, (long long)c, (long long)r, y[c * rows + r], ref);
                    bad++;
                }
            }
        CHECK(bad == 0, "%s %lldx%lld n %lld: %d outputs differ from the reference", tn, (long long)rows,
              (long long)cols, (long long)n, bad);
        for (int p = 1; p < 3; p++) {
            rc = ds8b__matmul(g_pools[p], &w, x, n, yt, &ws, &e);
            CHECK(rc == 0 && !memcmp(y, yt, ny * 4), "%s n %lld: %d threads differ", tn, (long long)n, p + 1);
        }
        rc = ds8b__matmul_ex(g_pools[1], &w, x, n, yt, &ws, DS8B_MM_ROWWISE, &e);
        CHECK(rc == 0 && !memcmp(y, yt, ny * 4), "%s n %lld: rowwise differs from the batch", tn, (long long)n);
        for (int64_t c = 0; c < n; c++) {
            rc = ds8b__matmul(g_pools[2], &w, x + c * cols, 1, one, &ws, &e);
            CHECK(rc == 0 && !memcmp(one, y + c * rows, (size_t)rows * 4), "%s n %lld: row %lld alone differs", tn,
                  (long long)n, (long long)c);
        }
        /* the level below: float activations (today's path), within the
         * float tolerance of the scalar level, not the bf16 bits */
        ds8b__isa_force(2);
        CHECK(ds8b__kops_get()->q[type].mm == NULL, "%s: avx512-vnni has a bf16 kernel", tn);
        rc = ds8b__matmul(g_pools[0], &w, x, n, yt, &ws, &e);
        CHECK(rc == 0, "%s lvl 2: %s", tn, e.msg);
        ds8b__isa_force(3);
        ds8b__free(ws.buf);
        free((void *)w.data);
        free(x);
        free(wb);
        free(xb);
        free(y);
        free(yt);
        free(one);
    }
    ds8b__isa_force(-1);
#endif
}

/* ds8b__matmul_multi on packed K-quants (one job, Q8_K activations) and on
 * a set mixing the two activation formats (falls back to separate calls):
 * bit-identical to separate calls, 1-3 threads, every level. */
static void test_matmul_multi_k(void) {
    const int64_t cols = 512;
    const int types[4] = {DS8B_T_Q4_K, DS8B_T_Q6_K, DS8B_T_Q4_K, DS8B_T_Q4_0};
    const int64_t rows[4] = {48, 37, 160, 32};
    ds8b__tensor w[4];
    uint8_t *pd[4];
    for (int i = 0; i < 4; i++) {
        make_weights(types[i], rows[i], cols, &w[i]);
        pd[i] = malloc(w[i].nbytes);
        ds8b__pack_matrix(types[i], w[i].data, rows[i], cols / 32, pd[i]);
        free((void *)w[i].data);
        w[i].data = pd[i];
        w[i].layout = DS8B_LAYOUT_G16;
    }
    float *x = malloc(3 * cols * sizeof(float));
    for (int64_t i = 0; i < 3 * cols; i++) x[i] = rndn();
    float *ya[3], *yb[3];
    for (int i = 0; i < 3; i++) {
        ya[i] = malloc(3 * 160 * sizeof(float));
        yb[i] = malloc(3 * 160 * sizeof(float));
    }
    ds8b__workspace ws = {0};
    ds8b__err e = {0};
    const ds8b__tensor *sets[2][3] = {{&w[0], &w[1], &w[2]}, {&w[3], &w[0], &w[1]}};
    for (int lvl = 0; lvl < levels_available(); lvl++) {
        ds8b__isa_force(lvl);
        for (int si = 0; si < 2; si++)
            for (int64_t n = 1; n <= 3; n++) {
                int flags = n > 1 ? DS8B_MM_ROWWISE : 0;
                for (int i = 0; i < 3; i++)
                    CHECK(ds8b__matmul_ex(g_pools[0], sets[si][i], x, n, ya[i], &ws, flags, &e) == 0, "%s", e.msg);
                for (int t = 0; t < 3; t++) {
                    CHECK(ds8b__matmul_multi(g_pools[t], sets[si], 3, x, n, yb, &ws, flags, &e) == 0, "%s", e.msg);
                    for (int i = 0; i < 3; i++)
                        CHECK(memcmp(ya[i], yb[i], (size_t)(n * sets[si][i]->ne[1]) * sizeof(float)) == 0,
                              "lvl %d set %d n %lld threads %d: matrix %d differs from a separate call", lvl, si,
                              (long long)n, t + 1, i);
                }
            }
    }
    ds8b__isa_force(-1);
    ds8b__free(ws.buf);
    for (int i = 0; i < 3; i++) {
        free(ya[i]);
        free(yb[i]);
    }
    for (int i = 0; i < 4; i++) free(pd[i]);
    free(x);
}

/* DS8B_EXPECT_ISA=NAME (make check-arm64, which runs this program on
 * emulated CPUs with and without each extension): the highest level the
 * dispatcher found is NAME. */
static void test_expected_level(void) {
    const char *want = getenv("DS8B_EXPECT_ISA");
    ds8b__isa_force(ds8b__isa_max_level());
    const char *got = ds8b__isa_name();
    CHECK(!strcmp(got, want), "highest level %s, expected %s", got, want);
    ds8b__isa_force(-1);
    printf("  # highest level %s (expected %s)\n", got, want);
}

int main(void) {
    printf("  # isa: %s (max level %d)\n", ds8b__isa_name(), ds8b__isa_max_level());
    if (getenv("DS8B_EXPECT_ISA") && *getenv("DS8B_EXPECT_ISA")) RUN(test_expected_level);
    for (int i = 0; i < 3; i++) ds8b__pool_create(i + 1, &g_pools[i], NULL);
    RUN(test_vec_helpers);
    RUN(test_quant_i8_32);
    RUN(test_errors);
    RUN(test_int_kernels_direct);
    RUN(test_matmul_all);
    RUN(test_bf16_level);
    RUN(test_matmul_large);
    RUN(test_group_kernels);
    RUN(test_packed_matmul);
    RUN(test_matmul_multi);
    RUN(test_amx_prompt);
    RUN(test_matmul_multi_k);
    for (int i = 0; i < 3; i++) ds8b__pool_free(g_pools[i]);
    T_EXIT();
}
