/*
 * x86/avx2_rows.c -- AVX2 + FMA + F16C kernels (compiled with those flags;
 * only called when cpuid reports them).
 *
 * Integer kernels are per-element row dots against the scalar level's
 * activation formats (ds8b__act32 per 32 values, Q8_K per 256), so they
 * compute exactly the scalar level's integers: unsigned weight codes times
 * signed 8-bit activations with vpmaddubsw, widened with vpmaddwd (the
 * K-quant sub-block scales ride in the vpmaddwd multiplier). Batches of
 * those types go through dequantize + the float GEMM tile below.
 */
#include "kernels/kern_impl.h"

#include <immintrin.h>
#include <math.h>

#define AI static inline __attribute__((always_inline))

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
AI __m256i tail_mask8(int64_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

/* ================================================================== */
/* Float helpers                                                       */
/* ================================================================== */
static float v_dot_f32(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < n) {
        __m256i m = tail_mask8(n - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum8(_mm256_add_ps(s0, s1));
}
static void v_axpy(float *y, const float *x, float a, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}
static void v_scale(float *y, float s, int64_t n) {
    __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), vs));
    for (; i < n; i++) y[i] *= s;
}
AI __m256 ld_f16(const uint16_t *h) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)); }
AI __m256 ld_bf16(const uint16_t *h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)h)), 16));
}
static float v_dot_f16(const uint16_t *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(ld_f16(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(ld_f16(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(ld_f16(a + i), _mm256_loadu_ps(b + i), s0);
    float t = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) t += ds8b__f16_to_f32(a[i]) * b[i];
    return t;
}
static float v_dot_bf16(const uint16_t *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(ld_bf16(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(ld_bf16(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(ld_bf16(a + i), _mm256_loadu_ps(b + i), s0);
    float t = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) t += ds8b__bf16_to_f32(a[i]) * b[i];
    return t;
}
/* Four activation rows against one weight row: per output the very
 * instruction sequence of v_dot_f16 / v_dot_bf16 (two accumulators, the
 * same reduction and scalar tail), with the weights converted once. */
#define DOT4_FMA(S, W, OFF)                                                                  \
    S##0 = _mm256_fmadd_ps(W, _mm256_loadu_ps(b0 + (OFF)), S##0);                            \
    S##1 = _mm256_fmadd_ps(W, _mm256_loadu_ps(b1 + (OFF)), S##1);                            \
    S##2 = _mm256_fmadd_ps(W, _mm256_loadu_ps(b2 + (OFF)), S##2);                            \
    S##3 = _mm256_fmadd_ps(W, _mm256_loadu_ps(b3 + (OFF)), S##3)
#define DEF_DOT4(NAME, LD, CVT)                                                              \
    static void NAME(const uint16_t *a, const float *const *b, int64_t n, float *out) {     \
        const float *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];                          \
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                          \
        __m256 t0 = s0, t1 = s0, t2 = s0, t3 = s0;                                           \
        int64_t i = 0;                                                                       \
        for (; i + 16 <= n; i += 16) {                                                       \
            __m256 w0 = LD(a + i), w1 = LD(a + i + 8);                                       \
            DOT4_FMA(s, w0, i);                                                              \
            DOT4_FMA(t, w1, i + 8);                                                          \
        }                                                                                    \
        for (; i + 8 <= n; i += 8) {                                                         \
            __m256 w0 = LD(a + i);                                                           \
            DOT4_FMA(s, w0, i);                                                              \
        }                                                                                    \
        float r0 = hsum8(_mm256_add_ps(s0, t0)), r1 = hsum8(_mm256_add_ps(s1, t1));          \
        float r2 = hsum8(_mm256_add_ps(s2, t2)), r3 = hsum8(_mm256_add_ps(s3, t3));          \
        for (; i < n; i++) {                                                                 \
            float w = CVT(a[i]);                                                             \
            r0 += w * b0[i];                                                                 \
            r1 += w * b1[i];                                                                 \
            r2 += w * b2[i];                                                                 \
            r3 += w * b3[i];                                                                 \
        }                                                                                    \
        out[0] = r0;                                                                         \
        out[1] = r1;                                                                         \
        out[2] = r2;                                                                         \
        out[3] = r3;                                                                         \
    }
DEF_DOT4(v_dot4_f16, ld_f16, ds8b__f16_to_f32)
DEF_DOT4(v_dot4_bf16, ld_bf16, ds8b__bf16_to_f32)
static void v_axpy_f16(float *y, const uint16_t *h, float a, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, ld_f16(h + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, ds8b__f16_to_f32(h[i]), y[i]);
}
static void v_f16_to_f32(const uint16_t *h, float *f, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(f + i, ld_f16(h + i));
    for (; i < n; i++) f[i] = ds8b__f16_to_f32(h[i]);
}
static void v_f32_to_f16(const float *f, uint16_t *h, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(f + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) h[i] = ds8b__f32_to_f16(f[i]);
}
static void v_bf16_to_f32(const uint16_t *h, float *f, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(f + i, ld_bf16(h + i));
    for (; i < n; i++) f[i] = ds8b__bf16_to_f32(h[i]);
}
AI __m256 bcast_f16(uint16_t h) { return _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(h))); }
static void v_w4a16_to_f32(const void *wv, float *f, int64_t nb) {
    const ds8b__blk_w4a16 *w = wv;
    const __m256i m0f = _mm256_set1_epi32(0xF);
    for (int64_t b = 0; b < nb; b++, f += 32) {
        __m256 d = bcast_f16(w[b].d), m = bcast_f16(w[b].m);
        for (int h = 0; h < 2; h++) {
            __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(w[b].qs + 8 * h)));
            _mm256_storeu_ps(f + 8 * h, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(q, m0f)), d, m));
            _mm256_storeu_ps(f + 16 + 8 * h, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(q, 4)), d, m));
        }
    }
}
static float v_dot_w4a16(const void *wv, const float *x, int64_t nb) {
    const ds8b__blk_w4a16 *w = wv;
    const __m256i m0f = _mm256_set1_epi32(0xF);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, x += 32) {
        __m256 t = _mm256_setzero_ps(), sx = _mm256_setzero_ps();
        for (int h = 0; h < 2; h++) {
            __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(w[b].qs + 8 * h)));
            __m256 x0 = _mm256_loadu_ps(x + 8 * h), x1 = _mm256_loadu_ps(x + 16 + 8 * h);
            t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(q, m0f)), x0, t);
            t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(q, 4)), x1, t);
            sx = _mm256_add_ps(sx, _mm256_add_ps(x0, x1));
        }
        acc = _mm256_fmadd_ps(t, bcast_f16(w[b].d), acc);
        accm = _mm256_fmadd_ps(sx, bcast_f16(w[b].m), accm);
    }
    return hsum8(_mm256_add_ps(acc, accm));
}

/* Float GEMM tile (see the AVX-512 level): each element its own 8-lane
 * accumulator over the whole K. */
AI void f32_tile(const float *w, const float *x, int64_t cols, float *y, int64_t ldy, const int R,
                 const int C) {
    __m256 acc[3][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= cols; k += 8) {
        __m256 wv[3];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = _mm256_loadu_ps(w + r * cols + k);
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m256 xv = _mm256_loadu_ps(x + c * cols + k);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][c]);
        }
    }
    if (k < cols) {
        __m256i m = tail_mask8(cols - k);
        __m256 wv[3];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = _mm256_maskload_ps(w + r * cols + k, m);
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m256 xv = _mm256_maskload_ps(x + c * cols + k, m);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][c]);
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ldy + r] = hsum8(acc[r][c]);
}
static void v_gemm_f32(const float *w, int64_t nr, const float *x, int64_t nc, int64_t cols,
                       float *y, int64_t ldy) {
    for (int64_t c = 0; c < nc; c += 4) {
        int64_t cc = nc - c >= 4 ? 4 : nc - c;
        for (int64_t r = 0; r < nr; r += 3) {
            int64_t rr = nr - r >= 3 ? 3 : nr - r;
            const float *wr = w + r * cols, *xc = x + c * cols;
            float *yy = y + c * ldy + r;
            switch (rr * 8 + cc) {
            case 1 * 8 + 1: f32_tile(wr, xc, cols, yy, ldy, 1, 1); break;
            case 2 * 8 + 1: f32_tile(wr, xc, cols, yy, ldy, 2, 1); break;
            case 3 * 8 + 1: f32_tile(wr, xc, cols, yy, ldy, 3, 1); break;
            case 1 * 8 + 2: f32_tile(wr, xc, cols, yy, ldy, 1, 2); break;
            case 2 * 8 + 2: f32_tile(wr, xc, cols, yy, ldy, 2, 2); break;
            case 3 * 8 + 2: f32_tile(wr, xc, cols, yy, ldy, 3, 2); break;
            case 1 * 8 + 3: f32_tile(wr, xc, cols, yy, ldy, 1, 3); break;
            case 2 * 8 + 3: f32_tile(wr, xc, cols, yy, ldy, 2, 3); break;
            case 3 * 8 + 3: f32_tile(wr, xc, cols, yy, ldy, 3, 3); break;
            case 1 * 8 + 4: f32_tile(wr, xc, cols, yy, ldy, 1, 4); break;
            case 2 * 8 + 4: f32_tile(wr, xc, cols, yy, ldy, 2, 4); break;
            default: f32_tile(wr, xc, cols, yy, ldy, 3, 4); break;
            }
        }
    }
}

/* ================================================================== */
/* Integer row dots                                                    */
/* ================================================================== */
AI __m256i q4_unpack(const uint8_t *qs) { /* 16 bytes -> 32 codes in element order */
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}
AI __m256i madd1(__m256i p16) { return _mm256_madd_epi16(p16, _mm256_set1_epi16(1)); }

static float dot_q4_0(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q4_0 *w = wv;
    const ds8b__act32 *a = (const ds8b__act32 *)av;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 32; b++) {
        __m256i x = _mm256_loadu_si256((const __m256i *)a[b].qs);
        __m256i s = madd1(_mm256_maddubs_epi16(q4_unpack(w[b].qs), x));
        /* the -8 offset: subtract 8*sum in lane 0 */
        s = _mm256_sub_epi32(s, _mm256_setr_epi32(8 * a[b].sum, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(ds8b__f16_to_f32(w[b].d) * a[b].d), acc);
    }
    return hsum8(acc);
}
static float dot_q8_0(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q8_0 *w = wv;
    const ds8b__act32 *a = (const ds8b__act32 *)av;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 32; b++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)w[b].qs);
        __m256i x = _mm256_loadu_si256((const __m256i *)a[b].qs);
        __m256i s = madd1(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(ds8b__f16_to_f32(w[b].d) * a[b].d), acc);
    }
    return hsum8(acc);
}
static float dot_q4_k(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q4_k *w = wv;
    const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)av;
    const __m256i m0f = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 256; b++) {
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++) ds8b__k4_scale_min(w[b].scales, j, &sc[j], &mn[j]);
        __m256i is = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * c));
            __m256i lo = _mm256_and_si256(q, m0f), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m0f);
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(a[b].qs + 64 * c));
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(a[b].qs + 64 * c + 32));
            is = _mm256_add_epi32(is, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_set1_epi16(sc[2 * c])));
            is = _mm256_add_epi32(is, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), _mm256_set1_epi16(sc[2 * c + 1])));
        }
        int32_t msum = 0;
        for (int j = 0; j < 8; j++) msum += mn[j] * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
        float dd = a[b].d * ds8b__f16_to_f32(w[b].d), dm = -a[b].d * ds8b__f16_to_f32(w[b].dmin);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(dd), acc);
        acc = _mm256_fmadd_ps(_mm256_setr_ps((float)msum, 0, 0, 0, 0, 0, 0, 0), _mm256_set1_ps(dm), acc);
    }
    return hsum8(acc);
}
static float dot_q6_k(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q6_k *w = wv;
    const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)av;
    const __m256i m0f = _mm256_set1_epi8(0x0F), m03 = _mm256_set1_epi8(0x03);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 256; b++) {
        __m256i is = _mm256_setzero_si256();
        int32_t corr = 0;
        for (int s = 0; s < 16; s++) corr += w[b].scales[s] * a[b].bsums[s];
        for (int h = 0; h < 2; h++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(w[b].ql + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(w[b].ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m0f), _mm256_slli_epi16(_mm256_and_si256(qh, m03), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m0f),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m03), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m0f),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m03), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m0f),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m03), 4));
            #pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m256i x = _mm256_loadu_si256((const __m256i *)(a[b].qs + 128 * h + 32 * k));
                __m256i p = _mm256_maddubs_epi16(q[k], x);
                const int8_t *sc = w[b].scales + 8 * h + 2 * k;
                __m256i sv = _mm256_setr_m128i(_mm_set1_epi16(sc[0]), _mm_set1_epi16(sc[1]));
                is = _mm256_add_epi32(is, _mm256_madd_epi16(p, sv));
            }
        }
        is = _mm256_sub_epi32(is, _mm256_setr_epi32(32 * corr, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(a[b].d * ds8b__f16_to_f32(w[b].d)), acc);
    }
    return hsum8(acc);
}

#define DEF_MM(NAME, DOT)                                                                  \
    static void NAME(const uint8_t *w, size_t ws, int64_t nr, const uint8_t *xa, size_t as, \
                     int64_t nc, int64_t cols, float *y, int64_t ldy) {                     \
        for (int64_t r = 0; r < nr; r++)                                                    \
            for (int64_t c = 0; c < nc; c++)                                                \
                y[c * ldy + r] = DOT(w + (size_t)r * ws, xa + (size_t)c * as, cols);        \
    }
DEF_MM(mm_q4_0, dot_q4_0)
DEF_MM(mm_q8_0, dot_q8_0)
DEF_MM(mm_q4_k, dot_q4_k)
DEF_MM(mm_q6_k, dot_q6_k)

void ds8b__kops_fill_avx2(ds8b__kops *k) {
    k->name = "avx2";
    k->dot_f32 = v_dot_f32;
    k->axpy = v_axpy;
    k->scale = v_scale;
    k->dot_f16 = v_dot_f16;
    k->dot_bf16 = v_dot_bf16;
    k->dot4_f16 = v_dot4_f16;
    k->dot4_bf16 = v_dot4_bf16;
    k->dot_w4a16 = v_dot_w4a16;
    k->axpy_f16 = v_axpy_f16;
    k->f16_to_f32 = v_f16_to_f32;
    k->f32_to_f16 = v_f32_to_f16;
    k->bf16_to_f32 = v_bf16_to_f32;
    k->w4a16_to_f32 = v_w4a16_to_f32;
    k->gemm_f32 = v_gemm_f32;
    /* same activation formats as the scalar level: keep act_size/act_quant */
    k->q[DS8B_T_Q4_0].mm = mm_q4_0;
    k->q[DS8B_T_Q8_0].mm = mm_q8_0;
    k->q[DS8B_T_Q4_K].mm = mm_q4_k;
    k->q[DS8B_T_Q6_K].mm = mm_q6_k;
    ds8b__kops_fill_more_avx2(k);
}
