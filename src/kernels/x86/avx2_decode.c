/*
 * x86/avx2_decode.c -- decode kernels on the row-group layout
 * (packing.h), AVX2 + FMA + F16C (no VNNI). Built with the AVX2 flags (the
 * file name contains "avx2").
 *
 * A group of 16 rows is two halves of 8 (one ymm holds dword k of 8 rows).
 * Products go through vpmaddubsw (unsigned weight x signed activation,
 * pairs summed in int16) and the 8 int16 partial vectors of a block are
 * added in int16 before a single vpmaddwd: every int16 lane then holds 16
 * products of a 4-bit code (<= 15) and an activation in [-127, 127], at
 * most 30480 in magnitude, so nothing saturates and the block sums are the
 * exact integers of the AVX-512 kernels. Q8_0's unsigned bytes (q + 128)
 * are split into nibbles, each summed that way, and recombined as
 * lo + 16 * hi by the vpmaddwd multipliers. Then the same f16 convert,
 * multiply and FMA per block as ds8b__mmg_ref: results are bit-identical
 * to the AVX-512 level's. The group is prefetched 8 KB ahead like the
 * AVX-512 kernels.
 */
#include "kernels/kern_impl.h"
#include "kernels/packing.h"
#include "kernels/x86/grp_cols.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

#define PF(p, off) _mm_prefetch((const char *)(p) + ds8b__grp_pf + (off), _MM_HINT_T0)

AI __m256i bc32(const int8_t *q, int k) {
    int32_t v;
    memcpy(&v, q + 4 * k, 4);
    return _mm256_set1_epi32(v);
}
AI __m256i ld(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

static void store_nr(float *y, const __m256 lo, const __m256 hi, int nr) {
    if (nr == 16) {
        _mm256_storeu_ps(y, lo);
        _mm256_storeu_ps(y + 8, hi);
        return;
    }
    float t[16];
    _mm256_storeu_ps(t, lo);
    _mm256_storeu_ps(t + 8, hi);
    memcpy(y, t, (size_t)nr * sizeof(float));
}

typedef struct { __m256 v[2]; } acc2; /* rows 0..7, 8..15 */
AI acc2 zero2(void) { return (acc2){{_mm256_setzero_ps(), _mm256_setzero_ps()}}; }
AI void store2(float *y, acc2 acc, int nr) { store_nr(y, acc.v[0], acc.v[1], nr); }

/* One record (block column b of the 16 rows) against activation block a. */
AI acc2 q4_0_step(const uint8_t *o, const ds8b__act32 *a, acc2 acc) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    const int8_t *q = a->qs;
    __m256i x[8];
    for (int k = 0; k < 8; k++) x[k] = bc32(q, k);
    const __m256i off = _mm256_set1_epi32(-8 * a->sum);
    const __m256 dx = _mm256_set1_ps(a->d);
    for (int h = 0; h < 2; h++) {
        const uint8_t *w = o + 32 + 32 * h;
        __m256i s = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m256i v = ld(w + 64 * k);
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(_mm256_and_si256(v, m4), x[k]));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), x[4 + k]));
        }
        __m256i is = _mm256_add_epi32(off, _mm256_madd_epi16(s, ones));
        __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16 * h))), dx);
        acc.v[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), d, acc.v[h]);
    }
    return acc;
}
DEF_GRP(mmg_q4_0, ds8b__act32, acc2, zero2, store2, q4_0_step, 288, DS8B_GRP_UNIT32)

AI acc2 q8_0_step(const uint8_t *o, const ds8b__act32 *a, acc2 acc) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi16(16);
    const int8_t *q = a->qs;
    const __m256i off = _mm256_set1_epi32(-128 * a->sum);
    const __m256 dx = _mm256_set1_ps(a->d);
    for (int h = 0; h < 2; h++) {
        const uint8_t *w = o + 32 + 32 * h;
        __m256i sl = _mm256_setzero_si256(), sh = _mm256_setzero_si256();
        #pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            __m256i v = ld(w + 64 * k), xk = bc32(q, k);
            sl = _mm256_add_epi16(sl, _mm256_maddubs_epi16(_mm256_and_si256(v, m4), xk));
            sh = _mm256_add_epi16(sh, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), xk));
        }
        __m256i is =
            _mm256_add_epi32(off, _mm256_add_epi32(_mm256_madd_epi16(sl, ones), _mm256_madd_epi16(sh, sixteen)));
        __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16 * h))), dx);
        acc.v[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), d, acc.v[h]);
    }
    return acc;
}
DEF_GRP(mmg_q8_0, ds8b__act32, acc2, zero2, store2, q8_0_step, 544, DS8B_GRP_UNIT32)

/* Q4_1 (five 0, mins 1), Q5_0 (1, 0), Q5_1 (1, 1): the AVX-512 records
 * and arithmetic in halves of 8 rows. Q4_1's 8 vpmaddubsw of a block are
 * summed in int16 (16 products of 4-bit codes: <= 30480); the 5-bit types
 * sum the low and high value planes separately (8 products of codes <= 31:
 * <= 31496 each). */
AI acc2 q45_step(const uint8_t *o, const ds8b__act32 *a, acc2 acc, int five, int mins) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10), ones = _mm256_set1_epi16(1);
    const size_t hoff = mins ? 64 : 32, qoff = 32 + (mins ? 32 : 0) + (five ? 64 : 0);
    const int8_t *q = a->qs;
    __m256i x[8];
    for (int k = 0; k < 8; k++) x[k] = bc32(q, k);
    const __m256i off = _mm256_set1_epi32(five && !mins ? -16 * a->sum : 0);
    const __m256 dx = _mm256_set1_ps(a->d), dxs = _mm256_set1_ps(a->d * (float)a->sum);
    for (int h = 0; h < 2; h++) {
        __m256i H = five ? ld(o + hoff + 32 * h) : _mm256_setzero_si256();
        __m256i sl = _mm256_setzero_si256(), sh = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m256i v = ld(o + qoff + 32 * h + 64 * k);
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            if (five) {
                __m256i hl, hh;
                switch (k) {
                case 0: hl = _mm256_slli_epi32(H, 4); hh = H; break;
                case 1: hl = _mm256_slli_epi32(H, 3); hh = _mm256_srli_epi32(H, 1); break;
                case 2: hl = _mm256_slli_epi32(H, 2); hh = _mm256_srli_epi32(H, 2); break;
                default: hl = _mm256_slli_epi32(H, 1); hh = _mm256_srli_epi32(H, 3); break;
                }
                lo = _mm256_or_si256(lo, _mm256_and_si256(hl, b4));
                hi = _mm256_or_si256(hi, _mm256_and_si256(hh, b4));
            }
            sl = _mm256_add_epi16(sl, _mm256_maddubs_epi16(lo, x[k]));
            if (five) sh = _mm256_add_epi16(sh, _mm256_maddubs_epi16(hi, x[4 + k]));
            else sl = _mm256_add_epi16(sl, _mm256_maddubs_epi16(hi, x[4 + k]));
        }
        __m256i is = _mm256_add_epi32(off, _mm256_madd_epi16(sl, ones));
        if (five) is = _mm256_add_epi32(is, _mm256_madd_epi16(sh, ones));
        __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16 * h))), dx);
        acc.v[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), d, acc.v[h]);
        if (mins)
            acc.v[h] =
                _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 32 + 16 * h))), dxs, acc.v[h]);
    }
    return acc;
}
AI acc2 q4_1_step(const uint8_t *o, const ds8b__act32 *a, acc2 acc) { return q45_step(o, a, acc, 0, 1); }
AI acc2 q5_0_step(const uint8_t *o, const ds8b__act32 *a, acc2 acc) { return q45_step(o, a, acc, 1, 0); }
AI acc2 q5_1_step(const uint8_t *o, const ds8b__act32 *a, acc2 acc) { return q45_step(o, a, acc, 1, 1); }
DEF_GRP(mmg_q4_1, ds8b__act32, acc2, zero2, store2, q4_1_step, 320, DS8B_GRP_UNIT32)
DEF_GRP(mmg_q5_0, ds8b__act32, acc2, zero2, store2, q5_0_step, 352, DS8B_GRP_UNIT32)
DEF_GRP(mmg_q5_1, ds8b__act32, acc2, zero2, store2, q5_1_step, 384, DS8B_GRP_UNIT32)

void ds8b__kops_fill_decode_avx2(ds8b__kops *k) {
    k->mmg[DS8B_T_Q4_0] = mmg_q4_0;
    k->mmg[DS8B_T_Q8_0] = mmg_q8_0;
    k->mmg[DS8B_T_Q4_1] = mmg_q4_1;
    k->mmg[DS8B_T_Q5_0] = mmg_q5_0;
    k->mmg[DS8B_T_Q5_1] = mmg_q5_1;
    ds8b__kops_fill_decode_k_avx2(k);
    /* activations: the scalar quantizer (ds8b__act32 of scalar.c) */
}
