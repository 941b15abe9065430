/*
 * x86/avx512_rows.c -- AVX-512 F/BW/VL/DQ + VNNI kernels (compiled with those
 * flags; only called when cpuid reports them).
 *
 * Integer kernels work on register tiles of R weight rows x C activation
 * rows; each output element has its own accumulator and the same
 * instruction sequence whatever the tile, so results never depend on the
 * tiling or thread count. Products of unsigned weights and signed 8-bit
 * activations use vpdpbusd (32-blocks) or vpmaddubsw + vpdpwssd with the
 * sub-block scales folded into the second step (K-quants); the offsets of
 * the formats are applied through per-block activation sums.
 *
 * These tiles serve decoding (one activation row, or DS8B_MM_ROWWISE);
 * prompts (n > 1) go through x86/avx512_prompt.c for every integer type.
 *
 * Activation formats of this level (per activation row):
 *   Q4_0  pairs of blocks (64 values): int8 qs[64], int32 corr[16] (lane k
 *         = -8 * sum of qs[4k..4k+3]), float dx[16] (d of block 0 in lanes
 *         0..7, block 1 in 8..15). 192 bytes.
 *   Q8_0  pairs: uint8 xu[64] = qs + 128, float dx[16]. 128 bytes.
 *   Q4_K  per super-block: int8 qs[256] with the 32-value sub-blocks in
 *         order 0,2,1,3,4,6,5,7; int16 sums[16] (sums of sub-blocks 0..7 in
 *         natural order, then zeros); float d. 320 bytes.
 *   Q6_K  per super-block: int8 qs[256] natural; int16 sums[16] per 16
 *         values; float d. 320 bytes.
 */
#include "kernels/kern_impl.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

/* Software prefetch distance along each weight row in the decode tiles.
 * Decoding streams every weight byte once from DRAM, and the hardware
 * prefetcher alone left these tiles waiting: a 14336x4096 Q4_0 decode
 * matmul went from 6.6 to 12.2 GB/s on one thread and from 12.5 to 21 GB/s
 * on two with 8 KB of lookahead (4, 16 and 32 KB measured worse or equal;
 * `ds8b bench --kernels`, 2-core Xeon). */
#ifndef DEC_PF
#define DEC_PF 8192
#endif
#define DPF(p, off) _mm_prefetch((const char *)(p) + DEC_PF + (off), _MM_HINT_T0)

/* ================================================================== */
/* Float helpers                                                       */
/* ================================================================== */
static inline __mmask16 tailmask(int64_t n) { return (__mmask16)((1u << n) - 1u); }

static float v_dot_f32(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = tailmask(n - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}
static void v_axpy(float *y, const float *x, float a, int64_t n) {
    __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tailmask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i),
                                                        _mm512_maskz_loadu_ps(m, y + i)));
    }
}
static void v_scale(float *y, float s, int64_t n) {
    __m512 vs = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), vs));
    if (i < n) {
        __mmask16 m = tailmask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + i), vs));
    }
}
AI __m512 ld_f16(const uint16_t *h) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h)); }
AI __m512 ld_f16_m(const uint16_t *h, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h));
}
AI __m512 ld_bf16(const uint16_t *h) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)h)), 16));
}
AI __m512 ld_bf16_m(const uint16_t *h, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, h)), 16));
}
static float v_dot_f16(const uint16_t *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(ld_f16(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(ld_f16(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(ld_f16(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = tailmask(n - i);
        s1 = _mm512_fmadd_ps(ld_f16_m(a + i, m), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}
static float v_dot_bf16(const uint16_t *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(ld_bf16(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(ld_bf16(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(ld_bf16(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = tailmask(n - i);
        s1 = _mm512_fmadd_ps(ld_bf16_m(a + i, m), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}
/* Four activation rows against one weight row: per output the very
 * instruction sequence of v_dot_f16 / v_dot_bf16 (two accumulators, the
 * same tail, the same reduction), with the weights converted once. */
#define DOT4_FMA(S, W, OFF)                                                                  \
    S##0 = _mm512_fmadd_ps(W, _mm512_loadu_ps(b0 + (OFF)), S##0);                            \
    S##1 = _mm512_fmadd_ps(W, _mm512_loadu_ps(b1 + (OFF)), S##1);                            \
    S##2 = _mm512_fmadd_ps(W, _mm512_loadu_ps(b2 + (OFF)), S##2);                            \
    S##3 = _mm512_fmadd_ps(W, _mm512_loadu_ps(b3 + (OFF)), S##3)
#define DEF_DOT4(NAME, LD, LDM)                                                              \
    static void NAME(const uint16_t *a, const float *const *b, int64_t n, float *out) {     \
        const float *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];                          \
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                          \
        __m512 t0 = s0, t1 = s0, t2 = s0, t3 = s0;                                           \
        int64_t i = 0;                                                                       \
        for (; i + 32 <= n; i += 32) {                                                       \
            __m512 w0 = LD(a + i), w1 = LD(a + i + 16);                                      \
            DOT4_FMA(s, w0, i);                                                              \
            DOT4_FMA(t, w1, i + 16);                                                         \
        }                                                                                    \
        for (; i + 16 <= n; i += 16) {                                                       \
            __m512 w0 = LD(a + i);                                                           \
            DOT4_FMA(s, w0, i);                                                              \
        }                                                                                    \
        if (i < n) {                                                                         \
            __mmask16 m = tailmask(n - i);                                                   \
            __m512 w0 = LDM(a + i, m);                                                       \
            t0 = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, b0 + i), t0);                  \
            t1 = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, b1 + i), t1);                  \
            t2 = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, b2 + i), t2);                  \
            t3 = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, b3 + i), t3);                  \
        }                                                                                    \
        out[0] = _mm512_reduce_add_ps(_mm512_add_ps(s0, t0));                                \
        out[1] = _mm512_reduce_add_ps(_mm512_add_ps(s1, t1));                                \
        out[2] = _mm512_reduce_add_ps(_mm512_add_ps(s2, t2));                                \
        out[3] = _mm512_reduce_add_ps(_mm512_add_ps(s3, t3));                                \
    }
DEF_DOT4(v_dot4_f16, ld_f16, ld_f16_m)
DEF_DOT4(v_dot4_bf16, ld_bf16, ld_bf16_m)
static void v_axpy_f16(float *y, const uint16_t *h, float a, int64_t n) {
    __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, ld_f16(h + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tailmask(n - i);
        _mm512_mask_storeu_ps(y + i, m,
                              _mm512_fmadd_ps(va, ld_f16_m(h + i, m), _mm512_maskz_loadu_ps(m, y + i)));
    }
}
static void v_f16_to_f32(const uint16_t *h, float *f, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(f + i, ld_f16(h + i));
    if (i < n) _mm512_mask_storeu_ps(f + i, tailmask(n - i), ld_f16_m(h + i, tailmask(n - i)));
}
static void v_f32_to_f16(const float *f, uint16_t *h, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(h + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(f + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) h[i] = ds8b__f32_to_f16(f[i]);
}
static void v_bf16_to_f32(const uint16_t *h, float *f, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(f + i, ld_bf16(h + i));
    if (i < n) _mm512_mask_storeu_ps(f + i, tailmask(n - i), ld_bf16_m(h + i, tailmask(n - i)));
}
AI __m512 bcast_f16(uint16_t h) { return _mm512_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(h))); }
static void v_w4a16_to_f32(const void *wv, float *f, int64_t nb) {
    const ds8b__blk_w4a16 *w = wv;
    const __m512i m0f = _mm512_set1_epi32(0xF);
    for (int64_t b = 0; b < nb; b++, f += 32) {
        __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)w[b].qs));
        __m512 d = bcast_f16(w[b].d), m = bcast_f16(w[b].m);
        _mm512_storeu_ps(f, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(q, m0f)), d, m));
        _mm512_storeu_ps(f + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(q, 4)), d, m));
    }
}
/* One w4a16 row against float activations. Two blocks per step with
 * independent accumulators, the row prefetched ahead as in the integer
 * decode tiles (a single unprefetched stream left decode at half the
 * bandwidth roofline). The block scale and min are converted together. */
AI void w4a16_blk(const ds8b__blk_w4a16 *w, const float *x, __m512 *acc, __m512 *accm) {
    const __m512i m0f = _mm512_set1_epi32(0xF);
    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)w->qs));
    __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(q, m0f)), x0);
    t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(q, 4)), x1, t);
    uint32_t dm;
    memcpy(&dm, w, 4); /* d, then m */
    __m128 dm2 = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dm));
    *acc = _mm512_fmadd_ps(t, _mm512_broadcastss_ps(dm2), *acc);
    *accm = _mm512_fmadd_ps(_mm512_add_ps(x0, x1), _mm512_broadcastss_ps(_mm_movehdup_ps(dm2)), *accm);
}
static float v_dot_w4a16(const void *wv, const float *x, int64_t nb) {
    const ds8b__blk_w4a16 *w = wv;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, m0 = a0, m1 = a0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        DPF(w + b, 0);
        w4a16_blk(w + b, x + 32 * b, &a0, &m0);
        w4a16_blk(w + b + 1, x + 32 * b + 32, &a1, &m1);
    }
    if (b < nb) w4a16_blk(w + b, x + 32 * b, &a0, &m0);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(m0, m1)));
}

/* Float GEMM tile: R weight rows x C activation rows, each element its
 * own 16-lane accumulator over the whole K (so tiling never changes a
 * result). */
AI void f32_tile(const float *w, const float *x, int64_t cols, float *y, int64_t ldy, const int R,
                 const int C) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= cols; k += 16) {
        __m512 wv[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = _mm512_loadu_ps(w + r * cols + k);
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m512 xv = _mm512_loadu_ps(x + c * cols + k);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);
        }
    }
    if (k < cols) {
        __mmask16 m = tailmask(cols - k);
        __m512 wv[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = _mm512_maskz_loadu_ps(m, w + r * cols + k);
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + c * cols + k);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}
static void v_gemm_f32(const float *w, int64_t nr, const float *x, int64_t nc, int64_t cols,
                       float *y, int64_t ldy) {
    for (int64_t c = 0; c < nc; c += 4) {
        int64_t cc = nc - c >= 4 ? 4 : nc - c;
        for (int64_t r = 0; r < nr; r += 4) {
            int64_t rr = nr - r >= 4 ? 4 : nr - r;
            const float *wr = w + r * cols, *xc = x + c * cols;
            float *yy = y + c * ldy + r;
            switch (rr * 8 + cc) {
            case 1 * 8 + 1: f32_tile(wr, xc, cols, yy, ldy, 1, 1); break;
            case 2 * 8 + 1: f32_tile(wr, xc, cols, yy, ldy, 2, 1); break;
            case 3 * 8 + 1: f32_tile(wr, xc, cols, yy, ldy, 3, 1); break;
            case 4 * 8 + 1: f32_tile(wr, xc, cols, yy, ldy, 4, 1); break;
            case 1 * 8 + 2: f32_tile(wr, xc, cols, yy, ldy, 1, 2); break;
            case 2 * 8 + 2: f32_tile(wr, xc, cols, yy, ldy, 2, 2); break;
            case 3 * 8 + 2: f32_tile(wr, xc, cols, yy, ldy, 3, 2); break;
            case 4 * 8 + 2: f32_tile(wr, xc, cols, yy, ldy, 4, 2); break;
            case 1 * 8 + 3: f32_tile(wr, xc, cols, yy, ldy, 1, 3); break;
            case 2 * 8 + 3: f32_tile(wr, xc, cols, yy, ldy, 2, 3); break;
            case 3 * 8 + 3: f32_tile(wr, xc, cols, yy, ldy, 3, 3); break;
            case 4 * 8 + 3: f32_tile(wr, xc, cols, yy, ldy, 4, 3); break;
            case 1 * 8 + 4: f32_tile(wr, xc, cols, yy, ldy, 1, 4); break;
            case 2 * 8 + 4: f32_tile(wr, xc, cols, yy, ldy, 2, 4); break;
            case 3 * 8 + 4: f32_tile(wr, xc, cols, yy, ldy, 3, 4); break;
            default: f32_tile(wr, xc, cols, yy, ldy, 4, 4); break;
            }
        }
    }
}

/* ds8b__quant_i8_32 with the same results (amax skipping NaN, d =
 * amax / 127, round half away from zero of x * 127 / amax, NaN to -127),
 * in SIMD. */
float ds8b__avx512_quant_i8_32(const float *x, int8_t *q) {
    __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    __m512 m = _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps());
    m = _mm512_max_ps(_mm512_abs_ps(x1), m);
    float amax = _mm512_reduce_max_ps(m);
    if (!(amax > 0.0f) || !(amax <= 3.402823466e38f)) {
        memset(q, 0, 32);
        return 0.0f;
    }
    float d = amax / 127.0f;
    __m512 id = _mm512_set1_ps(127.0f / amax), half = _mm512_set1_ps(0.5f), nhalf = _mm512_set1_ps(-0.5f);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (int h = 0; h < 2; h++) {
        __m512 v = _mm512_mul_ps(h ? x1 : x0, id);
        __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ);
        __m512 t = _mm512_add_ps(v, _mm512_mask_blend_ps(pos, nhalf, half));
        __m512i qi = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvttps_epi32(t), lo), hi);
        _mm_storeu_si128((__m128i *)(q + 16 * h), _mm512_cvtepi32_epi8(qi));
    }
    return d;
}

/* ================================================================== */
/* Q4_0                                                                */
/* ================================================================== */
typedef struct { int8_t qs[64]; int32_t corr[16]; float dx[16]; } a_q4p;
_Static_assert(sizeof(a_q4p) == 192, "a_q4p");
typedef struct { uint8_t xu[64]; float dx[16]; } a_q8p;
_Static_assert(sizeof(a_q8p) == 128, "a_q8p");

static size_t q4_0_act_size(int64_t cols) { return (size_t)((cols / 32 + 1) / 2) * sizeof(a_q4p); }
static void q4_0_act_quant(const float *x, uint8_t *dst, int64_t cols) {
    int64_t nb = cols / 32;
    a_q4p *a = (a_q4p *)dst;
    for (int64_t p = 0; p < (nb + 1) / 2; p++, a++) {
        for (int h = 0; h < 2; h++) {
            int64_t b = 2 * p + h;
            float d = 0;
            if (b < nb) d = ds8b__avx512_quant_i8_32(x + 32 * b, a->qs + 32 * h);
            else memset(a->qs + 32 * h, 0, 32);
            for (int k = 0; k < 8; k++) {
                const int8_t *q = a->qs + 32 * h + 4 * k;
                a->corr[8 * h + k] = -8 * (q[0] + q[1] + q[2] + q[3]);
                a->dx[8 * h + k] = d;
            }
        }
    }
}
static size_t q8_0_act_size(int64_t cols) { return (size_t)((cols / 32 + 1) / 2) * sizeof(a_q8p); }
static void q8_0_act_quant(const float *x, uint8_t *dst, int64_t cols) {
    int64_t nb = cols / 32;
    a_q8p *a = (a_q8p *)dst;
    int8_t q[32];
    for (int64_t p = 0; p < (nb + 1) / 2; p++, a++) {
        for (int h = 0; h < 2; h++) {
            int64_t b = 2 * p + h;
            float d = 0;
            if (b < nb) d = ds8b__avx512_quant_i8_32(x + 32 * b, q);
            else memset(q, 0, 32);
            for (int j = 0; j < 32; j++) a->xu[32 * h + j] = (uint8_t)(q[j] + 128);
            for (int k = 0; k < 8; k++) a->dx[8 * h + k] = d;
        }
    }
}

/* Two f16 scales -> lanes 0..7 = a, 8..15 = b. */
AI __m512 pair_scales(uint16_t a, uint16_t b) {
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m128 d2 = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)a | ((uint32_t)b << 16))));
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(d2));
}

AI void q4_0_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nb,
                  float *y, int64_t ldy, const int R, const int C) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const __m512i perm = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0);
    const int64_t S = 0x0004000400040004ll;
    const __m512i shifts = _mm512_set_epi64(S, S, 0, 0, S, S, 0, 0);
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    int64_t np = (nb + 1) / 2;
    for (int64_t p = 0; p < np; p++) {
        bool full = 2 * p + 1 < nb;
        __m512i wq[4];
        __m512 dw[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const ds8b__blk_q4_0 *b = (const ds8b__blk_q4_0 *)(w + (size_t)r * wst) + 2 * p;
            DPF(b, 0);
            __m128i qa = _mm_loadu_si128((const __m128i *)b[0].qs);
            __m128i qb = full ? _mm_loadu_si128((const __m128i *)b[1].qs) : _mm_setzero_si128();
            __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(qa), qb, 1);
            __m512i z = _mm512_permutexvar_epi64(perm, _mm512_castsi256_si512(t));
            wq[r] = _mm512_and_si512(_mm512_srlv_epi16(z, shifts), m0f);
            dw[r] = pair_scales(b[0].d, full ? b[1].d : 0);
        }
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const a_q4p *a = (const a_q4p *)(xa + (size_t)c * ast) + p;
            __m512i xq = _mm512_load_si512(a->qs), corr = _mm512_load_si512(a->corr);
            __m512 dx = _mm512_load_ps(a->dx);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i s = _mm512_dpbusd_epi32(corr, wq[r], xq);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[r], dx), acc[r][c]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

AI void q8_0_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nb,
                  float *y, int64_t ldy, const int R, const int C) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const __m512i ones = _mm512_set1_epi8(1);
    int64_t np = (nb + 1) / 2;
    for (int64_t p = 0; p < np; p++) {
        bool full = 2 * p + 1 < nb;
        __m512i wq[4], cw[4];
        __m512 dw[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const ds8b__blk_q8_0 *b = (const ds8b__blk_q8_0 *)(w + (size_t)r * wst) + 2 * p;
            DPF(b, 0);
            DPF(b, 64);
            __m256i qa = _mm256_loadu_si256((const __m256i *)b[0].qs);
            __m256i qb = full ? _mm256_loadu_si256((const __m256i *)b[1].qs) : _mm256_setzero_si256();
            wq[r] = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);
            __m512i ws = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, wq[r]);
            cw[r] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(ws, 7));
            dw[r] = pair_scales(b[0].d, full ? b[1].d : 0);
        }
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const a_q8p *a = (const a_q8p *)(xa + (size_t)c * ast) + p;
            __m512i xu = _mm512_load_si512(a->xu);
            __m512 dx = _mm512_load_ps(a->dx);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i s = _mm512_dpbusd_epi32(cw[r], xu, wq[r]);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[r], dx), acc[r][c]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* ================================================================== */
/* K-quants                                                            */
/* ================================================================== */
typedef struct { int8_t qs[256]; int16_t sums[16]; float d; uint8_t pad[28]; } a_k;
_Static_assert(sizeof(a_k) == 320, "a_k");

static size_t k_act_size(int64_t cols) { return (size_t)(cols / 256) * sizeof(a_k); }
static void q4_k_act_quant(const float *x, uint8_t *dst, int64_t cols) {
    static const int order[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    a_k *a = (a_k *)dst;
    ds8b__blk_q8_k t;
    for (int64_t b = 0; b < cols / 256; b++, a++) {
        ds8b__quant_q8_k(x + 256 * b, &t, 256);
        for (int k = 0; k < 8; k++) memcpy(a->qs + 32 * k, t.qs + 32 * order[k], 32);
        for (int j = 0; j < 8; j++) a->sums[j] = (int16_t)(t.bsums[2 * j] + t.bsums[2 * j + 1]);
        for (int j = 8; j < 16; j++) a->sums[j] = 0;
        a->d = t.d;
        memset(a->pad, 0, sizeof a->pad);
    }
}
static void q6_k_act_quant(const float *x, uint8_t *dst, int64_t cols) {
    a_k *a = (a_k *)dst;
    ds8b__blk_q8_k t;
    for (int64_t b = 0; b < cols / 256; b++, a++) {
        ds8b__quant_q8_k(x + 256 * b, &t, 256);
        memcpy(a->qs, t.qs, 256);
        memcpy(a->sums, t.bsums, 32);
        a->d = t.d;
        memset(a->pad, 0, sizeof a->pad);
    }
}

AI void q4_k_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nsb,
                  float *y, int64_t ldy, const int R, const int C) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    /* int16 lane L of scale vector k takes sub-block: p=k/2, hi=k&1:
     * L<16 -> 4p+hi, else 4p+2+hi */
    const __m512i ix0 = _mm512_set_epi16(2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i one16 = _mm512_set1_epi16(1), four16 = _mm512_set1_epi16(4);
    for (int64_t sb = 0; sb < nsb; sb++) {
        __m512i scv[4][4];
        __m128i mn[4];
        __m512 dw[4], dm[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const ds8b__blk_q4_k *b = (const ds8b__blk_q4_k *)(w + (size_t)r * wst) + sb;
            DPF(b, 0);
            DPF(b, 64);
            DPF(b, 128);
            uint32_t u0, u1, u2;
            memcpy(&u0, b->scales, 4);
            memcpy(&u1, b->scales + 4, 4);
            memcpy(&u2, b->scales + 8, 4);
            uint64_t sc = (uint64_t)(u0 & 0x3f3f3f3fu) |
                          (uint64_t)((u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u)) << 32;
            uint64_t mm = (uint64_t)(u1 & 0x3f3f3f3fu) |
                          (uint64_t)(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u)) << 32;
            __m512i s16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
            mn[r] = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mm));
            scv[r][0] = _mm512_permutexvar_epi16(ix0, s16);
            scv[r][1] = _mm512_permutexvar_epi16(_mm512_add_epi16(ix0, one16), s16);
            scv[r][2] = _mm512_permutexvar_epi16(_mm512_add_epi16(ix0, four16), s16);
            scv[r][3] = _mm512_permutexvar_epi16(_mm512_add_epi16(ix0, _mm512_add_epi16(four16, one16)), s16);
            __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)b->d | ((uint32_t)b->dmin << 16))));
            dw[r] = _mm512_broadcastss_ps(dd);
            dm[r] = _mm512_broadcastss_ps(_mm_sub_ps(_mm_setzero_ps(), _mm_movehdup_ps(dd)));
        }
        __m512i is[4][4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) is[r][c] = _mm512_setzero_si512();
        #pragma GCC unroll 4
        for (int p = 0; p < 2; p++) {
            __m512i lo[4], hi[4];
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const ds8b__blk_q4_k *b = (const ds8b__blk_q4_k *)(w + (size_t)r * wst) + sb;
                __m512i z = _mm512_loadu_si512(b->qs + 64 * p);
                lo[r] = _mm512_and_si512(z, m0f);
                hi[r] = _mm512_and_si512(_mm512_srli_epi16(z, 4), m0f);
            }
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const a_k *a = (const a_k *)(xa + (size_t)c * ast) + sb;
                __m512i x0 = _mm512_load_si512(a->qs + 128 * p), x1 = _mm512_load_si512(a->qs + 128 * p + 64);
                #pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    is[r][c] = _mm512_dpwssd_epi32(is[r][c], _mm512_maddubs_epi16(lo[r], x0), scv[r][2 * p]);
                    is[r][c] = _mm512_dpwssd_epi32(is[r][c], _mm512_maddubs_epi16(hi[r], x1), scv[r][2 * p + 1]);
                }
            }
        }
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const a_k *a = (const a_k *)(xa + (size_t)c * ast) + sb;
            __m512 dx = _mm512_set1_ps(a->d);
            __m128i sums = _mm_load_si128((const __m128i *)a->sums);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[r][c]), _mm512_mul_ps(dw[r], dx), acc[r][c]);
                __m128 ms = _mm_cvtepi32_ps(_mm_madd_epi16(sums, mn[r]));
                acc[r][c] = _mm512_fmadd_ps(_mm512_zextps128_ps512(ms), _mm512_mul_ps(dm[r], dx), acc[r][c]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

AI void q6_k_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nsb,
                  float *y, int64_t ldy, const int R, const int C) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const __m512i m0f = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    /* scale vector k (p = k/2, h = k&1): int16 lane L -> scale 8p + 4h + L/8 */
    const __m512i ix0 = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2,
                                         1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int64_t sb = 0; sb < nsb; sb++) {
        __m512i scv[4][4];
        __m256i sc32[4];
        __m512 dw[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const ds8b__blk_q6_k *b = (const ds8b__blk_q6_k *)(w + (size_t)r * wst) + sb;
            DPF(b, 0);
            DPF(b, 64);
            DPF(b, 128);
            DPF(b, 192);
            __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
            __m512i s = _mm512_castsi256_si512(s16);
            #pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                scv[r][k] = _mm512_permutexvar_epi16(_mm512_add_epi16(ix0, _mm512_set1_epi16((short)(4 * k))), s);
            sc32[r] = _mm256_slli_epi16(s16, 5);
            dw[r] = bcast_f16(b->d);
        }
        __m512i is[4][4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) is[r][c] = _mm512_setzero_si512();
        #pragma GCC unroll 4
        for (int p = 0; p < 2; p++) {
            __m512i lo[4], hi[4];
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const ds8b__blk_q6_k *b = (const ds8b__blk_q6_k *)(w + (size_t)r * wst) + sb;
                __m512i ql = _mm512_loadu_si512(b->ql + 64 * p);
                __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * p));
                __m512i zh = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
                lo[r] = _mm512_ternarylogic_epi32(ql, _mm512_and_si512(_mm512_slli_epi16(zh, 4), m30), m0f, 0xE4);
                hi[r] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), _mm512_and_si512(zh, m30), m0f, 0xE4);
            }
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const a_k *a = (const a_k *)(xa + (size_t)c * ast) + sb;
                __m512i x0 = _mm512_load_si512(a->qs + 128 * p), x1 = _mm512_load_si512(a->qs + 128 * p + 64);
                #pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    is[r][c] = _mm512_dpwssd_epi32(is[r][c], _mm512_maddubs_epi16(lo[r], x0), scv[r][2 * p]);
                    is[r][c] = _mm512_dpwssd_epi32(is[r][c], _mm512_maddubs_epi16(hi[r], x1), scv[r][2 * p + 1]);
                }
            }
        }
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const a_k *a = (const a_k *)(xa + (size_t)c * ast) + sb;
            __m512 dx = _mm512_set1_ps(a->d);
            __m256i sums = _mm256_load_si256((const __m256i *)a->sums);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i corr = _mm512_zextsi256_si512(_mm256_madd_epi16(sums, sc32[r]));
                __m512i t = _mm512_sub_epi32(is[r][c], corr);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(dw[r], dx), acc[r][c]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* ================================================================== */
/* Tile drivers                                                        */
/* ================================================================== */
/* Instantiates fixed (R, C) tiles of TILE and walks the chunk: columns in
 * groups of CB, rows in groups of RB (RD rows for single columns). */
#define DEF_MM(NAME, TILE, BLK, RB, CB, RD)                                                      \
    static void NAME(const uint8_t *w, size_t wst, int64_t nr, const uint8_t *xa, size_t ast,     \
                     int64_t nc, int64_t cols, float *y, int64_t ldy) {                           \
        int64_t nb = cols / (BLK);                                                                \
        int64_t c = 0;                                                                            \
        for (; c < nc;) {                                                                         \
            int64_t cc = nc - c >= (CB) ? (CB) : nc - c;                                          \
            int rb = cc == 1 ? (RD) : (RB);                                                       \
            const uint8_t *xc = xa + (size_t)c * ast;                                             \
            for (int64_t r = 0; r < nr;) {                                                        \
                int64_t rr = nr - r >= rb ? rb : nr - r;                                          \
                const uint8_t *wr = w + (size_t)r * wst;                                          \
                float *yy = y + c * ldy + r;                                                      \
                switch (rr * 8 + cc) {                                                            \
                case 1 * 8 + 1: TILE(wr, wst, xc, ast, nb, yy, ldy, 1, 1); break;                 \
                case 2 * 8 + 1: TILE(wr, wst, xc, ast, nb, yy, ldy, 2, 1); break;                 \
                case 3 * 8 + 1: TILE(wr, wst, xc, ast, nb, yy, ldy, 3, 1); break;                 \
                case 4 * 8 + 1: TILE(wr, wst, xc, ast, nb, yy, ldy, 4, 1); break;                 \
                case 1 * 8 + 2: TILE(wr, wst, xc, ast, nb, yy, ldy, 1, 2); break;                 \
                case 2 * 8 + 2: TILE(wr, wst, xc, ast, nb, yy, ldy, 2, 2); break;                 \
                case 3 * 8 + 2: TILE(wr, wst, xc, ast, nb, yy, ldy, 3, 2); break;                 \
                case 4 * 8 + 2: TILE(wr, wst, xc, ast, nb, yy, ldy, 4, 2); break;                 \
                case 1 * 8 + 3: TILE(wr, wst, xc, ast, nb, yy, ldy, 1, 3); break;                 \
                case 2 * 8 + 3: TILE(wr, wst, xc, ast, nb, yy, ldy, 2, 3); break;                 \
                case 3 * 8 + 3: TILE(wr, wst, xc, ast, nb, yy, ldy, 3, 3); break;                 \
                case 4 * 8 + 3: TILE(wr, wst, xc, ast, nb, yy, ldy, 4, 3); break;                 \
                case 1 * 8 + 4: TILE(wr, wst, xc, ast, nb, yy, ldy, 1, 4); break;                 \
                case 2 * 8 + 4: TILE(wr, wst, xc, ast, nb, yy, ldy, 2, 4); break;                 \
                case 3 * 8 + 4: TILE(wr, wst, xc, ast, nb, yy, ldy, 3, 4); break;                 \
                default: TILE(wr, wst, xc, ast, nb, yy, ldy, 4, 4); break;                        \
                }                                                                                 \
                r += rr;                                                                          \
            }                                                                                     \
            c += cc;                                                                              \
        }                                                                                         \
    }
/* Rows per decode (single activation row) tile, measured: 4 rows beat 1
 * and 2 for every type once the tiles are fully unrolled (4 independent
 * weight streams; 1.1-1.3x over single rows). */
#ifndef DEC_ROWS_32
#define DEC_ROWS_32 4
#endif
#ifndef DEC_ROWS_K
#define DEC_ROWS_K 4
#endif
DEF_MM(mm_q4_0, q4_0_tile, 32, 4, 4, DEC_ROWS_32)
DEF_MM(mm_q8_0, q8_0_tile, 32, 4, 4, 4)
DEF_MM(mm_q4_k, q4_k_tile, 256, 2, 4, DEC_ROWS_K)
DEF_MM(mm_q6_k, q6_k_tile, 256, 2, 4, DEC_ROWS_K)

void ds8b__kops_fill_avx512(ds8b__kops *k) {
    k->name = "avx512-vnni";
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
    k->q[DS8B_T_Q4_0] = (ds8b__qkern){.mm = mm_q4_0, .act_size = q4_0_act_size, .act_quant = q4_0_act_quant, .batched = true};
    k->q[DS8B_T_Q8_0] = (ds8b__qkern){.mm = mm_q8_0, .act_size = q8_0_act_size, .act_quant = q8_0_act_quant, .batched = true};
    k->q[DS8B_T_Q4_K] = (ds8b__qkern){.mm = mm_q4_k, .act_size = k_act_size, .act_quant = q4_k_act_quant, .batched = true};
    k->q[DS8B_T_Q6_K] = (ds8b__qkern){.mm = mm_q6_k, .act_size = k_act_size, .act_quant = q6_k_act_quant, .batched = true};
    ds8b__kops_fill_more_avx512(k);
    ds8b__kops_fill_prompt_avx512(k);
}

/* ================================================================== */
/* Peak probe                                                          */
/* ================================================================== */
int64_t ds8b__avx512_vnni_loop(int64_t iters) {
    __m512i a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_epi32(i);
    __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-2);
    for (int64_t it = 0; it < iters; it++) {
        for (int i = 0; i < 12; i++) a[i] = _mm512_dpbusd_epi32(a[i], u, s);
        __asm__ volatile("" : "+v"(u), "+v"(s));
    }
    __m512i t = a[0];
    for (int i = 1; i < 12; i++) t = _mm512_add_epi32(t, a[i]);
    /* the lanes wrap around by design; sum them without signed overflow */
    uint32_t lanes[16];
    _mm512_storeu_si512(lanes, t);
    uint64_t sum = 0;
    for (int i = 0; i < 16; i++) sum += lanes[i];
    return (int64_t)sum;
}
