/*
 * x86/avx512_decode.c -- decode kernels on the row-group layout
 * (packing.h), AVX-512 F/BW/VL + VNNI. Built with the AVX-512 flags (the
 * file name contains "avx512"); only called when cpuid reports them.
 *
 * One group = 16 weight rows. Per 32-value block column: K loads of one
 * zmm each give dword k of all 16 rows; vpdpbusd against the activation's
 * dword k broadcast (embedded broadcast) accumulates 4 products of every
 * row; the format's offset (-8 for Q4_0, -128 for the unsigned-stored
 * Q8_0) starts the accumulator as offset * sum(activation block). Then one
 * f16 convert, one multiply by the activation scale and one FMA scale and
 * add the 16 rows' block sums. Per row this is exactly ds8b__mmg_ref's
 * arithmetic (exact integer sums, then acc = fma(isum, dw * dx, acc) in
 * block order), so the result is bit-identical to the reference, to the
 * AVX2 group kernels and across tilings and thread counts.
 */
#include "kernels/kern_impl.h"
#include "kernels/packing.h"
#include "kernels/x86/grp_cols.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

#define PF(p, off) _mm_prefetch((const char *)(p) + ds8b__grp_pf + (off), _MM_HINT_T0)

AI __m512i bc32(const int8_t *q, int k) {
    int32_t v;
    memcpy(&v, q + 4 * k, 4);
    return _mm512_set1_epi32(v);
}

AI __m512 zero512(void) { return _mm512_setzero_ps(); }
AI void store512(float *y, __m512 acc, int nr) { _mm512_mask_storeu_ps(y, (__mmask16)((1u << nr) - 1u), acc); }

/* Q4_0 unpacks each record once for up to four activation rows (the
 * nibble masks and shifts are a third of the work of one row); the rest is
 * DEF_GRP's loop with the step below. */
AI void q4_0_cols(const uint8_t *g, int64_t m, const uint8_t *xa, size_t astride, float *y, int64_t ldy, int nr,
                  const int C) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const ds8b__act32 *a[DS8B_GRP_COLS];
    __m512 acc[DS8B_GRP_COLS];
    #pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
        a[c] = (const ds8b__act32 *)(xa + (size_t)c * astride);
        acc[c] = _mm512_setzero_ps();
    }
    const uint8_t *o = g;
    for (int64_t b = 0; b < m; b++, o += 288) {
        PF(o, 0); PF(o, 64); PF(o, 128); PF(o, 192); PF(o, 256);
        __m512i lo[4], hi[4];
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m512i v = _mm512_loadu_si512(o + 32 + 64 * k);
            lo[k] = _mm512_and_si512(v, m4);
            hi[k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)o));
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const ds8b__act32 *ab = &a[c][b];
            const int8_t *q = ab->qs;
            __m512i s0 = _mm512_set1_epi32(-8 * ab->sum), s1 = _mm512_setzero_si512();
            s0 = _mm512_dpbusd_epi32(s0, lo[0], bc32(q, 0));
            s1 = _mm512_dpbusd_epi32(s1, hi[0], bc32(q, 4));
            s0 = _mm512_dpbusd_epi32(s0, lo[1], bc32(q, 1));
            s1 = _mm512_dpbusd_epi32(s1, hi[1], bc32(q, 5));
            s0 = _mm512_dpbusd_epi32(s0, lo[2], bc32(q, 2));
            s1 = _mm512_dpbusd_epi32(s1, hi[2], bc32(q, 6));
            s0 = _mm512_dpbusd_epi32(s0, lo[3], bc32(q, 3));
            s1 = _mm512_dpbusd_epi32(s1, hi[3], bc32(q, 7));
            __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(ab->d));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), d, acc[c]);
        }
    }
    #pragma GCC unroll 4
    for (int c = 0; c < C; c++) store512(y + (size_t)c * (size_t)ldy, acc[c], nr);
}
static void mmg_q4_0(const uint8_t *g, int64_t nb, const uint8_t *xa, size_t astride, int64_t ncols, float *y,
                     int64_t ldy, int nr) {
    for (int64_t c = 0; c < ncols;) {
        int64_t cc = ncols - c < DS8B_GRP_COLS ? ncols - c : DS8B_GRP_COLS;
        const uint8_t *xc = xa + (size_t)c * astride;
        float *yc = y + (size_t)c * (size_t)ldy;
        switch (cc) {
        case 1: q4_0_cols(g, nb, xc, astride, yc, ldy, nr, 1); break;
        case 2: q4_0_cols(g, nb, xc, astride, yc, ldy, nr, 2); break;
        case 3: q4_0_cols(g, nb, xc, astride, yc, ldy, nr, 3); break;
        default: q4_0_cols(g, nb, xc, astride, yc, ldy, nr, 4); break;
        }
        c += cc;
    }
}

AI __m512 q8_0_step(const uint8_t *o, const ds8b__act32 *a, __m512 acc) {
    const int8_t *q = a->qs;
    const uint8_t *w = o + 32;
    __m512i s0 = _mm512_set1_epi32(-128 * a->sum), s1 = _mm512_setzero_si512();
    s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(w + 0), bc32(q, 0));
    s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(w + 64), bc32(q, 1));
    s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(w + 128), bc32(q, 2));
    s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(w + 192), bc32(q, 3));
    s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(w + 256), bc32(q, 4));
    s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(w + 320), bc32(q, 5));
    s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(w + 384), bc32(q, 6));
    s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(w + 448), bc32(q, 7));
    __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)o)), _mm512_set1_ps(a->d));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), d, acc);
}
DEF_GRP(mmg_q8_0, ds8b__act32, __m512, zero512, store512, q8_0_step, 544, DS8B_GRP_UNIT32)

/* Q4_1 (five 0, mins 1), Q5_0 (1, 0), Q5_1 (1, 1): d[16] | m[16] (mins) |
 * qh[16] transposed (five: bit b of byte i = fifth bit of value 4b + i) |
 * q[4][16]. The fifth bits of value dword b reach bit 4 of their bytes by
 * one dword shift; Q5_0's -16 starts the accumulator at -16 * sum(x);
 * mins: acc = fma(m_w, d_x * sum(x), acc) after the block's FMA. */
AI __m512 q45_step(const uint8_t *o, const ds8b__act32 *a, __m512 acc, int five, int mins) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
    const size_t hoff = mins ? 64 : 32, qoff = 32 + (mins ? 32 : 0) + (five ? 64 : 0);
    const int8_t *q = a->qs;
    __m512i s0 = _mm512_set1_epi32(five && !mins ? -16 * a->sum : 0), s1 = _mm512_setzero_si512();
    __m512i H = five ? _mm512_loadu_si512(o + hoff) : _mm512_setzero_si512();
    #pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m512i v = _mm512_loadu_si512(o + qoff + 64 * k);
        __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        if (five) {
            __m512i hl, hh;
            switch (k) {
            case 0: hl = _mm512_slli_epi32(H, 4); hh = H; break;
            case 1: hl = _mm512_slli_epi32(H, 3); hh = _mm512_srli_epi32(H, 1); break;
            case 2: hl = _mm512_slli_epi32(H, 2); hh = _mm512_srli_epi32(H, 2); break;
            default: hl = _mm512_slli_epi32(H, 1); hh = _mm512_srli_epi32(H, 3); break;
            }
            lo = _mm512_or_si512(lo, _mm512_and_si512(hl, b4));
            hi = _mm512_or_si512(hi, _mm512_and_si512(hh, b4));
        }
        s0 = _mm512_dpbusd_epi32(s0, lo, bc32(q, k));
        s1 = _mm512_dpbusd_epi32(s1, hi, bc32(q, 4 + k));
    }
    __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)o)), _mm512_set1_ps(a->d));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), d, acc);
    if (mins)
        acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(o + 32))),
                              _mm512_set1_ps(a->d * (float)a->sum), acc);
    return acc;
}
AI __m512 q4_1_step(const uint8_t *o, const ds8b__act32 *a, __m512 acc) { return q45_step(o, a, acc, 0, 1); }
AI __m512 q5_0_step(const uint8_t *o, const ds8b__act32 *a, __m512 acc) { return q45_step(o, a, acc, 1, 0); }
AI __m512 q5_1_step(const uint8_t *o, const ds8b__act32 *a, __m512 acc) { return q45_step(o, a, acc, 1, 1); }
/* records: qoff + 256 bytes */
DEF_GRP(mmg_q4_1, ds8b__act32, __m512, zero512, store512, q4_1_step, 320, DS8B_GRP_UNIT32)
DEF_GRP(mmg_q5_0, ds8b__act32, __m512, zero512, store512, q5_0_step, 352, DS8B_GRP_UNIT32)
DEF_GRP(mmg_q5_1, ds8b__act32, __m512, zero512, store512, q5_1_step, 384, DS8B_GRP_UNIT32)

/* ds8b__act32 rows with the AVX-512 quantizer (bit-identical to the
 * scalar one, tested in test_kernels). */
static void gact_quant(const float *x, uint8_t *dst, int64_t cols) {
    ds8b__act32 *a = (ds8b__act32 *)dst;
    for (int64_t b = 0; b < cols / 32; b++, a++, x += 32) {
        a->d = ds8b__avx512_quant_i8_32(x, a->qs);
        __m256i q = _mm256_loadu_si256((const __m256i *)a->qs);
        __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
        __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
        a->sum = _mm_cvtsi128_si32(t);
    }
}

void ds8b__kops_fill_decode_avx512(ds8b__kops *k) {
    k->mmg[DS8B_T_Q4_0] = mmg_q4_0;
    k->mmg[DS8B_T_Q8_0] = mmg_q8_0;
    k->mmg[DS8B_T_Q4_1] = mmg_q4_1;
    k->mmg[DS8B_T_Q5_0] = mmg_q5_0;
    k->mmg[DS8B_T_Q5_1] = mmg_q5_1;
    ds8b__kops_fill_decode_k_avx512(k);
    k->gact_quant = gact_quant;
}
