/*
 * x86/avx2_rows_other.c -- AVX2 + FMA + F16C integer row dots for Q4_1, Q5_0,
 * Q5_1, Q2_K, Q3_K and Q5_K (compiled with those flags; registered by
 * ds8b__kops_fill_more_avx2, only called when cpuid reports them).
 *
 * Like x86/avx2_rows.c, these are per-element row dots against the scalar
 * level's activation formats (ds8b__act32 per 32 values, Q8_K per 256), so
 * they compute exactly the scalar level's integers: unsigned codes times
 * signed 8-bit activations with vpmaddubsw, widened with vpmaddwd (the
 * sub-block scales of the K-quants ride in the vpmaddwd multiplier), and
 * one float scale step per block or super-block. Batches of these types
 * at this level go through dequantize + the float GEMM tile.
 *
 * Fifth bits (Q5_*): a byte of qh is spread over eight code bytes with
 * vpshufb and picked with a per-byte bit mask. Q3_K's high bit likewise,
 * its -4 offset as 4 * sum(scale * bsum). The rows are prefetched
 * MORE2_PF bytes ahead.
 */
#include "kernels/kern_impl.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

#ifndef MORE2_PF
#define MORE2_PF 4096
#endif
#define PF2(p) _mm_prefetch((const char *)(p) + MORE2_PF, _MM_HINT_T0)

static inline uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
/* 16 nibble bytes -> 32 codes in element order (low nibbles first) */
AI __m256i nib32(const uint8_t *qs) {
    __m128i q = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}
/* 0x10 in byte i where bit i of the 32-bit qh is set */
AI __m256i bit5(uint32_t qh) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread);
    b = _mm256_cmpeq_epi8(_mm256_and_si256(b, bits), bits);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x10));
}
AI __m256i sum_i16_pairs(__m256i p16) { return _mm256_madd_epi16(p16, _mm256_set1_epi16(1)); }
/* (d, m) f16 pair at p -> two floats */
AI __m128 f16x2(const uint8_t *p) { return _mm_cvtph_ps(_mm_cvtsi32_si128((int)rd32(p))); }

/* ================================================================== */
/* 32-value blocks                                                     */
/* ================================================================== */
static float dot_q4_1(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q4_1 *w = wv;
    const ds8b__act32 *a = (const ds8b__act32 *)av;
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t b = 0; b < cols / 32; b++) {
        PF2(&w[b]);
        __m256i s = sum_i16_pairs(_mm256_maddubs_epi16(nib32(w[b].qs), _mm256_loadu_si256((const __m256i *)a[b].qs)));
        __m128 dm = f16x2((const uint8_t *)&w[b].d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(_mm_cvtss_f32(dm) * a[b].d), acc);
        accm += _mm_cvtss_f32(_mm_movehdup_ps(dm)) * (a[b].d * (float)a[b].sum);
    }
    return hsum8(acc) + accm;
}
static float dot_q5_0(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q5_0 *w = wv;
    const ds8b__act32 *a = (const ds8b__act32 *)av;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 32; b++) {
        PF2(&w[b]);
        __m256i u = _mm256_or_si256(nib32(w[b].qs), bit5(rd32(w[b].qh)));
        __m256i s = sum_i16_pairs(_mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)a[b].qs)));
        /* the -16 offset: 16 * sum in lane 0 */
        s = _mm256_sub_epi32(s, _mm256_setr_epi32(16 * a[b].sum, 0, 0, 0, 0, 0, 0, 0));
        float d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(w[b].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * a[b].d), acc);
    }
    return hsum8(acc);
}
static float dot_q5_1(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q5_1 *w = wv;
    const ds8b__act32 *a = (const ds8b__act32 *)av;
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t b = 0; b < cols / 32; b++) {
        PF2(&w[b]);
        __m256i u = _mm256_or_si256(nib32(w[b].qs), bit5(rd32(w[b].qh)));
        __m256i s = sum_i16_pairs(_mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)a[b].qs)));
        __m128 dm = f16x2((const uint8_t *)&w[b].d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(_mm_cvtss_f32(dm) * a[b].d), acc);
        accm += _mm_cvtss_f32(_mm_movehdup_ps(dm)) * (a[b].d * (float)a[b].sum);
    }
    return hsum8(acc) + accm;
}

/* ================================================================== */
/* K-quants                                                            */
/* ================================================================== */
/* vpshufb control giving int16 lanes 0..7 = word i0 and 8..15 = word i1
 * of a 128-bit lane (both 128-bit lanes alike) */
AI __m256i word_bcast2(int i0, int i1) {
    __m128i c = _mm_setr_epi8((char)(2 * i0), (char)(2 * i0 + 1), (char)(2 * i0), (char)(2 * i0 + 1),
                              (char)(2 * i0), (char)(2 * i0 + 1), (char)(2 * i0), (char)(2 * i0 + 1),
                              (char)(2 * i0), (char)(2 * i0 + 1), (char)(2 * i0), (char)(2 * i0 + 1),
                              (char)(2 * i0), (char)(2 * i0 + 1), (char)(2 * i0), (char)(2 * i0 + 1));
    __m128i d = _mm_setr_epi8((char)(2 * i1), (char)(2 * i1 + 1), (char)(2 * i1), (char)(2 * i1 + 1),
                              (char)(2 * i1), (char)(2 * i1 + 1), (char)(2 * i1), (char)(2 * i1 + 1),
                              (char)(2 * i1), (char)(2 * i1 + 1), (char)(2 * i1), (char)(2 * i1 + 1),
                              (char)(2 * i1), (char)(2 * i1 + 1), (char)(2 * i1), (char)(2 * i1 + 1));
    return _mm256_set_m128i(d, c);
}

/* Q2_K/Q3_K: half h, plane p holds x[128h + 32p .. +31], sub-blocks
 * 8h + 2p (first 16) and 8h + 2p + 1. s16h = the half's 8 int16 scales in
 * both 128-bit lanes. */
AI __m256i k23_plane(__m256i u, const int8_t *x, __m256i s16h, int p) {
    __m256i prod = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_madd_epi16(prod, _mm256_shuffle_epi8(s16h, word_bcast2(2 * p, 2 * p + 1)));
}

static float dot_q2_k(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q2_k *w = wv;
    const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)av;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m0f = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 256; b++) {
        PF2(&w[b]);
        PF2((const uint8_t *)&w[b] + 64);
        __m128i sc = _mm_loadu_si128((const __m128i *)w[b].scales);
        __m256i s16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc, m0f));
        __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m0f));
        __m256i is = _mm256_setzero_si256();
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i z = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * h));
            __m256i s16h = h ? _mm256_permute2x128_si256(s16, s16, 0x11) : _mm256_permute2x128_si256(s16, s16, 0x00);
            #pragma GCC unroll 4
            for (int p = 0; p < 4; p++) {
                __m256i u = _mm256_and_si256(p ? _mm256_srli_epi16(z, 2 * p) : z, m3);
                is = _mm256_add_epi32(is, k23_plane(u, a[b].qs + 128 * h + 32 * p, s16h, p));
            }
        }
        __m256i ms = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)a[b].bsums));
        __m128 dd = f16x2((const uint8_t *)&w[b].d);
        __m256 dx = _mm256_set1_ps(a[b].d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_mul_ps(_mm256_broadcastss_ps(dd), dx), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dd)), dx), acc);
    }
    return hsum8(acc);
}

/* The 16 signed Q3_K scales (minus 32 applied) as int8. */
AI __m128i q3_scales8(const uint8_t *s) {
    uint64_t lo8;
    memcpy(&lo8, s, 8);
    uint32_t h4 = rd32(s + 8);
    const __m128i m0f = _mm_set1_epi8(0x0F), m30 = _mm_set1_epi8(0x30);
    __m128i v = _mm_cvtsi64_si128((long long)lo8);
    __m128i lo = _mm_and_si128(_mm_unpacklo_epi64(v, _mm_srli_epi16(v, 4)), m0f);
    /* dword k = h4 >> 2k: bits 2k..2k+1 of byte j at bits 0..1 */
    __m128i hi = _mm_srlv_epi32(_mm_set1_epi32((int)h4), _mm_setr_epi32(0, 2, 4, 6));
    hi = _mm_and_si128(_mm_slli_epi16(hi, 4), m30);
    return _mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32));
}

static float dot_q3_k(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q3_k *w = wv;
    const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)av;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 256; b++) {
        PF2(&w[b]);
        PF2((const uint8_t *)&w[b] + 64);
        __m256i s16 = _mm256_cvtepi8_epi16(q3_scales8(w[b].scales));
        __m256i hm = _mm256_loadu_si256((const __m256i *)w[b].hmask);
        __m256i is = _mm256_setzero_si256();
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i z = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * h));
            __m256i s16h = h ? _mm256_permute2x128_si256(s16, s16, 0x11) : _mm256_permute2x128_si256(s16, s16, 0x00);
            #pragma GCC unroll 4
            for (int p = 0; p < 4; p++) {
                __m256i q2 = _mm256_and_si256(p ? _mm256_srli_epi16(z, 2 * p) : z, m3);
                /* + 4 where bit 4h + p of hmask is set: code = value + 4 */
                __m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + p)));
                __m256i hb = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), four);
                is = _mm256_add_epi32(is, k23_plane(_mm256_or_si256(q2, hb), a[b].qs + 128 * h + 32 * p, s16h, p));
            }
        }
        /* take 4 * sum(scale * bsum) for the +4 */
        __m256i corr = _mm256_madd_epi16(s16, _mm256_loadu_si256((const __m256i *)a[b].bsums));
        is = _mm256_sub_epi32(is, _mm256_slli_epi32(corr, 2));
        float d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(w[b].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(d * a[b].d), acc);
    }
    return hsum8(acc);
}

static float dot_q5_k(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q5_k *w = wv;
    const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)av;
    const __m256i m0f = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 256; b++) {
        PF2(&w[b]);
        PF2((const uint8_t *)&w[b] + 64);
        PF2((const uint8_t *)&w[b] + 128);
        uint32_t u0 = rd32(w[b].scales), u1 = rd32(w[b].scales + 4), u2 = rd32(w[b].scales + 8);
        uint64_t sc = (uint64_t)(u0 & 0x3f3f3f3fu) | (uint64_t)((u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u)) << 32;
        uint64_t mn = (uint64_t)(u1 & 0x3f3f3f3fu) | (uint64_t)(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u)) << 32;
        /* int16 scales 0..7 in both 128-bit lanes */
        __m128i s8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc));
        __m256i s16 = _mm256_set_m128i(s8, s8);
        __m256i qh = _mm256_loadu_si256((const __m256i *)w[b].qh);
        __m256i is = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * c));
            #pragma GCC unroll 2
            for (int hi = 0; hi < 2; hi++) {
                const int j = 2 * c + hi; /* sub-block */
                __m256i nib = _mm256_and_si256(hi ? _mm256_srli_epi16(q, 4) : q, m0f);
                __m256i bit = _mm256_and_si256(qh, _mm256_set1_epi8((char)(1 << j)));
                /* the isolated bit j moved to bit 4 of its byte */
                bit = j <= 4 ? _mm256_slli_epi16(bit, 4 - j) : _mm256_srli_epi16(bit, j - 4);
                __m256i prod = _mm256_maddubs_epi16(_mm256_or_si256(nib, bit),
                                                    _mm256_loadu_si256((const __m256i *)(a[b].qs + 32 * j)));
                is = _mm256_add_epi32(is, _mm256_madd_epi16(prod, _mm256_shuffle_epi8(s16, word_bcast2(j, j))));
            }
        }
        /* mins against the sums of 32 (pairs of bsums) */
        __m128i bs = _mm_madd_epi16(_mm256_castsi256_si128(_mm256_loadu_si256((const __m256i *)a[b].bsums)),
                                    _mm_set1_epi16(1));
        __m128i bs2 = _mm_madd_epi16(_mm_loadu_si128((const __m128i *)(a[b].bsums + 8)), _mm_set1_epi16(1));
        __m128i sums32 = _mm_packs_epi32(bs, bs2); /* 8 sums of 32 (|sum| <= 4064) */
        __m128i ms = _mm_madd_epi16(sums32, _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn)));
        __m128 dd = f16x2((const uint8_t *)&w[b].d);
        __m256 dx = _mm256_set1_ps(a[b].d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_mul_ps(_mm256_broadcastss_ps(dd), dx), acc);
        acc = _mm256_fnmadd_ps(_mm256_zextps128_ps256(_mm_cvtepi32_ps(ms)),
                               _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dd)), dx), acc);
    }
    return hsum8(acc);
}

#define MORE2_MM(NAME, DOT)                                                                \
    static void NAME(const uint8_t *w, size_t ws, int64_t nr, const uint8_t *xa, size_t as, \
                     int64_t nc, int64_t cols, float *y, int64_t ldy) {                     \
        for (int64_t r = 0; r < nr; r++)                                                    \
            for (int64_t c = 0; c < nc; c++)                                                \
                y[c * ldy + r] = DOT(w + (size_t)r * ws, xa + (size_t)c * as, cols);        \
    }
MORE2_MM(mm_q4_1, dot_q4_1)
MORE2_MM(mm_q5_0, dot_q5_0)
MORE2_MM(mm_q5_1, dot_q5_1)
MORE2_MM(mm_q2_k, dot_q2_k)
MORE2_MM(mm_q3_k, dot_q3_k)
MORE2_MM(mm_q5_k, dot_q5_k)

void ds8b__kops_fill_more_avx2(ds8b__kops *k) {
    /* same activation formats as the scalar level: keep act_size/act_quant */
    k->q[DS8B_T_Q4_1].mm = mm_q4_1;
    k->q[DS8B_T_Q5_0].mm = mm_q5_0;
    k->q[DS8B_T_Q5_1].mm = mm_q5_1;
    k->q[DS8B_T_Q2_K].mm = mm_q2_k;
    k->q[DS8B_T_Q3_K].mm = mm_q3_k;
    k->q[DS8B_T_Q5_K].mm = mm_q5_k;
}
