/*
 * x86/avx512bf16_w4a16.c -- level avx512-bf16: W4A16 and bf16 weights
 * against bf16-rounded activations on vdpbf16ps (AVX512-BF16; built with
 * -mavx512bf16 on top of the AVX-512 flags, only called when cpuid leaf 7
 * subleaf 1 reports it).
 *
 * Numerics: bf16_ref.c, bit for bit. Each output element is one chain of
 * vdpbf16ps over its whole row into 16 lanes, then a fixed tree sum, so a
 * result depends only on (weight row, activation row): not on the tile, the
 * thread count, nor on which other rows share the call. Decode (mm) and
 * prompt (mmp) kernels give the same bits.
 *
 * Activation format (both types): the row rounded to bf16, in chunks of 32
 * values (64 bytes); W4A16 chunks in the order of ds8b__w4a16_pos, bf16
 * chunks natural with the last one zero-padded.
 *
 * W4A16 weights are expanded in registers, per 32-block: the 16 nibble
 * bytes broadcast to the four 128-bit lanes, shifted by 0/4/8/12 bits per
 * lane (vpsrlvw), and looked up with vpermw in a 16-entry table of
 * bf16(fmaf(d, q, m)), q = 0..15, built with one fma and one vcvtneps2bf16
 * (duplicated to 32 entries, so the bit above the nibble does not matter).
 * Decode does that per block and weight row, shared by the activation rows
 * of the tile; the prompt kernel expands a chunk of rows once into scratch
 * and runs register tiles of 4 weight rows x 6 activation rows on it.
 */
#include "kernels/kern_impl.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

#ifndef BF_PF
#define BF_PF 8192
#endif

/* Fixed tree: v[i]+v[i+8], +[i+4], +[i+2], +[i+1] (bf16_ref.c). */
AI float hsum(__m512 v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

AI __m512 dp(__m512 acc, __m512i w, __m512i x) { return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x); }

/* ================================================================== */
/* Activations                                                         */
/* ================================================================== */
static size_t w4_act_size(int64_t cols) { return (size_t)cols * 2; }
static void w4_act(const float *x, uint8_t *dst, int64_t cols) {
    /* natural bf16 order -> ds8b__w4a16_pos order */
    static const uint16_t pos[32] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30,
                                     1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
    const __m512i perm = _mm512_loadu_si512(pos);
    for (int64_t b = 0; b < cols / 32; b++) {
        __m512i h = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 32 * b + 16), _mm512_loadu_ps(x + 32 * b));
        _mm512_storeu_si512(dst + 64 * b, _mm512_permutexvar_epi16(perm, h));
    }
}
static size_t bf_act_size(int64_t cols) { return (size_t)((cols + 31) / 32) * 64; }
static void bf_act(const float *x, uint8_t *dst, int64_t cols) {
    int64_t i = 0;
    for (; i + 32 <= cols; i += 32)
        _mm512_storeu_si512(dst + 2 * i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i)));
    if (i < cols) {
        int64_t t = cols - i;
        __mmask16 m0 = (__mmask16)(t >= 16 ? 0xFFFF : (1u << t) - 1u);
        __mmask16 m1 = (__mmask16)(t > 16 ? (1u << (t - 16)) - 1u : 0);
        __m512 lo = _mm512_maskz_loadu_ps(m0, x + i), hi = _mm512_maskz_loadu_ps(m1, x + i + 16);
        _mm512_storeu_si512(dst + 2 * i, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

/* ================================================================== */
/* W4A16 expansion                                                     */
/* ================================================================== */
AI __m512i w4_expand(const ds8b__blk_w4a16 *b, __m512 iota, __m512i sh) {
    __m512i idx = _mm512_srlv_epi16(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)b->qs)), sh);
    uint32_t dm;
    memcpy(&dm, b, 4); /* d, then m: converted as d, m, d, m, ... */
    __m512 f = _mm512_cvtph_ps(_mm256_set1_epi32((int)dm));
    __m512 l = _mm512_fmadd_ps(iota, _mm512_moveldup_ps(f), _mm512_movehdup_ps(f));
    __m512i lut = _mm512_broadcast_i64x4((__m256i)_mm512_cvtneps_pbh(l));
    return _mm512_permutexvar_epi16(idx, lut);
}
#define W4_CONSTS                                                                                      \
    const __m512 iota = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);          \
    const __m512i sh = _mm512_set_epi64(0x000c000c000c000cLL, 0x000c000c000c000cLL, 0x0008000800080008LL, \
                                        0x0008000800080008LL, 0x0004000400040004LL, 0x0004000400040004LL, \
                                        0, 0)

static void w4_expand_row(const ds8b__blk_w4a16 *w, uint16_t *dst, int64_t nb) {
    W4_CONSTS;
    for (int64_t b = 0; b < nb; b++) _mm512_storeu_si512(dst + 32 * b, w4_expand(w + b, iota, sh));
}

/* Decode tile: R weight rows x C activation rows, weights expanded per
 * block in registers. */
AI void w4_tile(const uint8_t *w, size_t wstride, const uint8_t *xa, size_t astride, int64_t nb, float *y,
                int64_t ldy, const int R, const int C) {
    W4_CONSTS;
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    /* two blocks (40 bytes) per step, one prefetch per row and step */
    for (int64_t b = 0; b < nb; b += 2) {
        int nbs = nb - b < 2 ? 1 : 2;
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            _mm_prefetch((const char *)((const ds8b__blk_w4a16 *)(w + (size_t)r * wstride) + b) + BF_PF, _MM_HINT_T0);
        for (int s = 0; s < nbs; s++) {
            __m512i x[4];
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) x[c] = _mm512_loadu_si512(xa + (size_t)c * astride + 64 * (size_t)(b + s));
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i wv = w4_expand((const ds8b__blk_w4a16 *)(w + (size_t)r * wstride) + b + s, iota, sh);
                #pragma GCC unroll 4
                for (int c = 0; c < C; c++) acc[r][c] = dp(acc[r][c], wv, x[c]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[(size_t)c * (size_t)ldy + (size_t)r] = hsum(acc[r][c]);
}

#define TILE_CASES(FN, RR, ...)                                                                        \
    switch (RR * 8 + cc) {                                                                             \
    case RR * 8 + 1: FN(__VA_ARGS__, RR, 1); break;                                                    \
    case RR * 8 + 2: FN(__VA_ARGS__, RR, 2); break;                                                    \
    case RR * 8 + 3: FN(__VA_ARGS__, RR, 3); break;                                                    \
    default: FN(__VA_ARGS__, RR, 4); break;                                                            \
    }

static void mm_w4a16(const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa, size_t astride,
                     int64_t ncols, int64_t cols, float *y, int64_t ldy) {
    int64_t nb = cols / 32;
    for (int64_t r0 = 0; r0 < nrows; r0 += 4) {
        int rr = nrows - r0 < 4 ? (int)(nrows - r0) : 4;
        const uint8_t *wr = w + (size_t)r0 * wstride;
        for (int64_t c0 = 0; c0 < ncols; c0 += 4) {
            int cc = ncols - c0 < 4 ? (int)(ncols - c0) : 4;
            const uint8_t *xc = xa + (size_t)c0 * astride;
            float *yc = y + (size_t)c0 * (size_t)ldy + (size_t)r0;
            switch (rr) {
            case 1: TILE_CASES(w4_tile, 1, wr, wstride, xc, astride, nb, yc, ldy) break;
            case 2: TILE_CASES(w4_tile, 2, wr, wstride, xc, astride, nb, yc, ldy) break;
            case 3: TILE_CASES(w4_tile, 3, wr, wstride, xc, astride, nb, yc, ldy) break;
            default: TILE_CASES(w4_tile, 4, wr, wstride, xc, astride, nb, yc, ldy) break;
            }
        }
    }
}

/* ================================================================== */
/* bf16 GEMM tile (bf16 weights, expanded W4A16 rows)                   */
/* ================================================================== */
/* R weight rows (bf16, wstride bytes apart) x C activation rows: nk full
 * chunks of 32, then one chunk of tail (< 32) values if tail > 0. */
/* 32 weights as bf16: stored bf16, or f16 rounded to bf16 (F16 true). */
AI __m512i ldw(const uint8_t *p, const bool F16) {
    if (!F16) return _mm512_loadu_si512(p);
    __m512 lo = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    __m512 hi = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p + 1));
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}
AI __m512i ldw_m(const uint8_t *p, __mmask32 m, const bool F16) {
    __m512i v = _mm512_maskz_loadu_epi16(m, p);
    if (!F16) return v;
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1)),
                                        _mm512_cvtph_ps(_mm512_castsi512_si256(v)));
}
AI void bf_tile(const uint8_t *w, size_t wstride, const uint8_t *xa, size_t astride, int64_t nk, int tail,
                float *y, int64_t ldy, bool pf, const bool F16, const int R, const int C) {
    __m512 acc[4][6];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 6
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    for (int64_t k = 0; k < nk; k++) {
        __m512i wv[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + (size_t)r * wstride + 64 * (size_t)k;
            if (pf) _mm_prefetch((const char *)p + BF_PF, _MM_HINT_T0);
            wv[r] = ldw(p, F16);
        }
        #pragma GCC unroll 6
        for (int c = 0; c < C; c++) {
            __m512i x = _mm512_loadu_si512(xa + (size_t)c * astride + 64 * (size_t)k);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][c] = dp(acc[r][c], wv[r], x);
        }
    }
    if (tail) {
        __mmask32 m = (__mmask32)((1u << tail) - 1u);
        __m512i wv[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = ldw_m(w + (size_t)r * wstride + 64 * (size_t)nk, m, F16);
        #pragma GCC unroll 6
        for (int c = 0; c < C; c++) {
            __m512i x = _mm512_loadu_si512(xa + (size_t)c * astride + 64 * (size_t)nk);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][c] = dp(acc[r][c], wv[r], x);
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 6
        for (int c = 0; c < C; c++) y[(size_t)c * (size_t)ldy + (size_t)r] = hsum(acc[r][c]);
}

#define BF_CASES(RR, ...)                                                                              \
    switch (cc) {                                                                                      \
    case 1: bf_tile(__VA_ARGS__, RR, 1); break;                                                        \
    case 2: bf_tile(__VA_ARGS__, RR, 2); break;                                                        \
    case 3: bf_tile(__VA_ARGS__, RR, 3); break;                                                        \
    case 4: bf_tile(__VA_ARGS__, RR, 4); break;                                                        \
    case 5: bf_tile(__VA_ARGS__, RR, 5); break;                                                        \
    default: bf_tile(__VA_ARGS__, RR, 6); break;                                                       \
    }

/* All nrows x ncols outputs on bf16 rows: activation tiles of 6 outer,
 * so a chunk of weight rows stays in cache across them. */
AI void bf_rows_t(const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa, size_t astride,
                    int64_t ncols, int64_t cols, float *y, int64_t ldy, bool pf, const bool F16) {
    int64_t nk = cols / 32;
    int tail = (int)(cols % 32);
    for (int64_t c0 = 0; c0 < ncols; c0 += 6) {
        int cc = ncols - c0 < 6 ? (int)(ncols - c0) : 6;
        const uint8_t *xc = xa + (size_t)c0 * astride;
        for (int64_t r0 = 0; r0 < nrows; r0 += 4) {
            int rr = nrows - r0 < 4 ? (int)(nrows - r0) : 4;
            const uint8_t *wr = w + (size_t)r0 * wstride;
            float *yc = y + (size_t)c0 * (size_t)ldy + (size_t)r0;
            switch (rr) {
            case 1: BF_CASES(1, wr, wstride, xc, astride, nk, tail, yc, ldy, pf, F16) break;
            case 2: BF_CASES(2, wr, wstride, xc, astride, nk, tail, yc, ldy, pf, F16) break;
            case 3: BF_CASES(3, wr, wstride, xc, astride, nk, tail, yc, ldy, pf, F16) break;
            default: BF_CASES(4, wr, wstride, xc, astride, nk, tail, yc, ldy, pf, F16) break;
            }
        }
    }
}
static void bf_rows(const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa, size_t astride,
                    int64_t ncols, int64_t cols, float *y, int64_t ldy, bool pf) {
    bf_rows_t(w, wstride, nrows, xa, astride, ncols, cols, y, ldy, pf, false);
}

static void mm_bf16(const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa, size_t astride,
                    int64_t ncols, int64_t cols, float *y, int64_t ldy) {
    /* weights streamed from memory when there are few activation rows */
    bf_rows(w, wstride, nrows, xa, astride, ncols, cols, y, ldy, ncols <= 6);
}

/* F16 weights: each value rounded to bf16 (vcvtph2ps, vcvtne2ps2bf16).
 * Decode converts in registers; the prompt kernel converts slices of 16
 * rows once into scratch (the same bf16 values, so the same bits). */
static void mm_f16(const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa, size_t astride,
                   int64_t ncols, int64_t cols, float *y, int64_t ldy) {
    bf_rows_t(w, wstride, nrows, xa, astride, ncols, cols, y, ldy, ncols <= 6, true);
}
static size_t f16p_scratch(int64_t cols) { return (size_t)16 * (size_t)((cols + 31) / 32) * 64; }
static void mmp_f16(const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa, size_t astride,
                    int64_t ncols, int64_t cols, float *y, int64_t ldy, uint8_t *scratch) {
    int64_t nk = cols / 32, tail = cols % 32;
    size_t srow = (size_t)((cols + 31) / 32) * 64;
    for (int64_t r0 = 0; r0 < nrows; r0 += 16) {
        int64_t nr = nrows - r0 < 16 ? nrows - r0 : 16;
        for (int64_t r = 0; r < nr; r++) {
            const uint8_t *src = w + (size_t)(r0 + r) * wstride;
            uint8_t *d = scratch + (size_t)r * srow;
            for (int64_t k = 0; k < nk; k++) _mm512_storeu_si512(d + 64 * k, ldw(src + 64 * k, true));
            if (tail) _mm512_storeu_si512(d + 64 * nk, ldw_m(src + 64 * nk, (__mmask32)((1u << tail) - 1u), true));
        }
        /* whole chunks now (the tail zero-filled): same products as mm_f16 */
        bf_rows(scratch, srow, nr, xa, astride, ncols, (cols + 31) / 32 * 32, y + r0, ldy, false);
    }
}

/* W4A16 prompt: slices of up to 16 rows expanded once into scratch. */
enum { W4P_ROWS = 16 };
static size_t w4p_scratch(int64_t cols) { return (size_t)W4P_ROWS * (size_t)cols * 2; }
static void mmp_w4a16(const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa, size_t astride,
                      int64_t ncols, int64_t cols, float *y, int64_t ldy, uint8_t *scratch) {
    int64_t nb = cols / 32;
    size_t srow = (size_t)cols * 2;
    for (int64_t r0 = 0; r0 < nrows; r0 += W4P_ROWS) {
        int64_t nr = nrows - r0 < W4P_ROWS ? nrows - r0 : W4P_ROWS;
        for (int64_t r = 0; r < nr; r++)
            w4_expand_row((const ds8b__blk_w4a16 *)(w + (size_t)(r0 + r) * wstride), (uint16_t *)(scratch + (size_t)r * srow), nb);
        bf_rows(scratch, srow, nr, xa, astride, ncols, cols, y + r0, ldy, false);
    }
}

void ds8b__avx512bf16_w4a16_row(const void *w, uint16_t *dst, int64_t nb) { w4_expand_row(w, dst, nb); }
void ds8b__avx512bf16_w4a16_act(const float *x, uint16_t *dst, int64_t cols) { w4_act(x, (uint8_t *)dst, cols); }
void ds8b__avx512bf16_act(const float *x, uint16_t *dst, int64_t cols) { bf_act(x, (uint8_t *)dst, cols); }

void ds8b__kops_fill_avx512bf16(ds8b__kops *k) {
    k->name = "avx512-bf16";
    ds8b__qkern *q = &k->q[DS8B_T_W4A16];
    memset(q, 0, sizeof *q);
    q->mm = mm_w4a16;
    q->act_size = w4_act_size;
    q->act_quant = w4_act;
    q->batched = true;
    q->mmp = mmp_w4a16;
    q->pact_size = w4_act_size;
    q->pact_quant = w4_act;
    q->mmp_scratch = w4p_scratch;
    q = &k->q[DS8B_T_BF16];
    memset(q, 0, sizeof *q);
    q->mm = mm_bf16;
    q->act_size = bf_act_size;
    q->act_quant = bf_act;
    q->batched = true;
    q = &k->q[DS8B_T_F16];
    memset(q, 0, sizeof *q);
    q->mm = mm_f16;
    q->act_size = bf_act_size;
    q->act_quant = bf_act;
    q->batched = true;
    q->mmp = mmp_f16;
    q->pact_size = bf_act_size;
    q->pact_quant = bf_act;
    q->mmp_scratch = f16p_scratch;
}
