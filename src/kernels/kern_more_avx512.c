/*
 * kern_more_avx512.c -- AVX-512 VNNI integer kernels for the weight types
 * that kern_avx512.c does not cover: Q4_1, Q5_0, Q5_1 (32-value blocks)
 * and Q2_K, Q3_K, Q5_K (256-value super-blocks). Compiled with the AVX-512
 * flags; registered by ds8b__kops_fill_more_avx512, which is only called on
 * CPUs that have them.
 *
 * Like the other tiles of this level, a kernel works on R weight rows x C
 * activation rows, every output element with its own accumulators and the
 * same instruction sequence whatever the tile (so results depend only on
 * cols and the data, never on the thread count or the batch). The integer
 * products are exactly the scalar level's (activations quantized by
 * ds8b__quant_i8_32 / ds8b__quant_q8_k); only the float summation order
 * differs.
 *
 * 32-value blocks, four blocks ("a quad") per step: one zmm of the four
 * blocks' 16 nibble bytes (three 128-bit inserts) gives the low nibbles
 * (values 0..15 of each block) and the high nibbles (values 16..31); two
 * vpdpbusd against activations laid out to match leave int32 lane k with
 * values of block k/4 only. One convert and one FMA (two with a min) per
 * quad apply the per-block scales, gathered into lanes with one vpermps.
 * The fifth bits of Q5_0/Q5_1 become two 64-bit masks (pext of the four
 * qh words) and one masked byte add each. The -16 offset of Q5_0 starts
 * the integer accumulator (-16 * the lane's activation sum, precomputed).
 *
 *   activations, per quad (128 values, 320 bytes): int8 lo[64] (values
 *   0..15 of the four blocks), int8 hi[64] (values 16..31), int32 corr[16]
 *   (-16 * sum of the 8 values that meet in lane k), float dx[16] (block
 *   scale of lane k), float sx[16] (dx * that lane sum, for the min term).
 *
 * K-quants, one super-block per step: vpmaddubsw of unsigned codes with
 * signed activations, then vpdpwssd with the sub-block scales as int16
 * multipliers, so a super-block accumulates in int32 and is scaled in
 * float once.
 *   Q2_K/Q3_K: the 64 code bytes are one zmm; plane p (bits 2p..2p+1)
 *     holds values 32p..32p+31 of each half, so activation vector p is
 *     [x[32p..32p+31], x[128+32p..128+32p+31]]; 16-value sub-block scales
 *     are spread over int16 lanes by vpermw. Q3_K's high bit comes from a
 *     vptestmb mask and a masked add (codes 0..7), its -4 offset from
 *     4 * sum(scale * bsum). Q2_K's mins through vpmaddwd with the bsums.
 *   Q5_K: as Q4_K (activation sub-blocks in the order 0,2,1,3,4,6,5,7 so a
 *     64-byte load of qs gives two aligned nibble planes), the fifth bit by
 *     vptestmb + masked add of 16.
 *   activations, per super-block (320 bytes): int8 qs[256] in the order
 *   above, int16 sums[16] (Q2_K/Q3_K: per 16 values; Q5_K: per 32 values,
 *   then zeros), float d.
 */
#include "kernels/kern_impl.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

static inline uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ================================================================== */
/* 32-value blocks: Q4_1, Q5_0, Q5_1                                   */
/* ================================================================== */
typedef struct {
    int8_t lo[64];
    int8_t hi[64];
    int32_t corr[16];
    float dx[16];
    float sx[16];
} a_quad;
_Static_assert(sizeof(a_quad) == 320, "a_quad");

static size_t quad_act_size(int64_t cols) { return (size_t)((cols / 32 + 3) / 4) * sizeof(a_quad); }

static void quad_act_quant(const float *x, uint8_t *dst, int64_t cols) {
    int64_t nb = cols / 32;
    a_quad *a = (a_quad *)dst;
    int8_t t[32];
    for (int64_t q = 0; q < (nb + 3) / 4; q++, a++) {
        for (int b = 0; b < 4; b++) {
            int64_t i = 4 * q + b;
            float d = 0;
            if (i < nb) d = ds8b__avx512_quant_i8_32(x + 32 * i, t);
            else memset(t, 0, sizeof t);
            memcpy(a->lo + 16 * b, t, 16);
            memcpy(a->hi + 16 * b, t + 16, 16);
            for (int k = 0; k < 4; k++) {
                int32_t s = 0;
                for (int j = 0; j < 4; j++) s += t[4 * k + j] + t[16 + 4 * k + j];
                a->corr[4 * b + k] = -16 * s;
                a->dx[4 * b + k] = d;
                a->sx[4 * b + k] = d * (float)s;
            }
        }
    }
}

/* Layout of each block type: bytes, offset of qs, of m (-1: none), of qh
 * (-1: none), and whether the codes carry the -16 offset. */
enum { T41, T50, T51 };
#define QB_BYTES(T) ((T) == T41 ? 20 : (T) == T50 ? 22 : 24)
#define QB_QS(T) ((T) == T41 ? 4 : (T) == T50 ? 6 : 8)
#define QB_HASM(T) ((T) != T50)
#define QB_QH(T) ((T) == T50 ? 2 : 4)
#define QB_HASQH(T) ((T) != T41)

/* Weights of one quad of one row: low/high code vectors and the lane
 * scales (dw) and mins (mw); blocks past nq are zero. */
AI void quad_weights(const uint8_t *bp, int nq, const int T, __m512i *lo, __m512i *hi, __m512 *dw,
                     __m512 *mw) {
    const int BS = QB_BYTES(T), QS = QB_QS(T);
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    __m512i z;
    uint32_t h[4] = {0, 0, 0, 0}, qh[4] = {0, 0, 0, 0};
    if (nq == 4) {
        z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(bp + QS)));
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(bp + BS + QS)), 1);
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(bp + 2 * BS + QS)), 2);
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(bp + 3 * BS + QS)), 3);
        #pragma GCC unroll 4
        for (int b = 0; b < 4; b++) {
            h[b] = QB_HASM(T) ? rd32(bp + b * BS) : rd16(bp + b * BS);
            if (QB_HASQH(T)) qh[b] = rd32(bp + b * BS + QB_QH(T));
        }
    } else {
        uint8_t tmp[64];
        memset(tmp, 0, sizeof tmp);
        for (int b = 0; b < nq; b++) {
            memcpy(tmp + 16 * b, bp + b * BS + QS, 16);
            h[b] = QB_HASM(T) ? rd32(bp + b * BS) : rd16(bp + b * BS);
            if (QB_HASQH(T)) qh[b] = rd32(bp + b * BS + QB_QH(T));
        }
        z = _mm512_loadu_si512(tmp);
    }
    *lo = _mm512_and_si512(z, m0f);
    *hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m0f);
    if (QB_HASQH(T)) {
        const uint64_t M = 0x0000FFFF0000FFFFull;
        uint64_t q01 = (uint64_t)qh[0] | (uint64_t)qh[1] << 32;
        uint64_t q23 = (uint64_t)qh[2] | (uint64_t)qh[3] << 32;
        __mmask64 klo = _cvtu64_mask64(_pext_u64(q01, M) | _pext_u64(q23, M) << 32);
        __mmask64 khi = _cvtu64_mask64(_pext_u64(q01, ~M) | _pext_u64(q23, ~M) << 32);
        const __m512i b16 = _mm512_set1_epi8(16);
        *lo = _mm512_mask_add_epi8(*lo, klo, *lo, b16);
        *hi = _mm512_mask_add_epi8(*hi, khi, *hi, b16);
    }
    if (QB_HASM(T)) {
        /* words d0 m0 d1 m1 d2 m2 d3 m3 */
        __m128i hv = _mm_set_epi32((int)h[3], (int)h[2], (int)h[1], (int)h[0]);
        __m512 f = _mm512_castps256_ps512(_mm256_cvtph_ps(hv));
        const __m512i ie = _mm512_set_epi32(6, 6, 6, 6, 4, 4, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0);
        *dw = _mm512_permutexvar_ps(ie, f);
        *mw = _mm512_permutexvar_ps(_mm512_add_epi32(ie, _mm512_set1_epi32(1)), f);
    } else {
        uint64_t dd = (uint64_t)h[0] | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 32 | (uint64_t)h[3] << 48;
        __m512 f = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)dd)));
        const __m512i ie = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        *dw = _mm512_permutexvar_ps(ie, f);
        *mw = _mm512_setzero_ps();
    }
}

AI void quad_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nb, float *y,
                  int64_t ldy, const int R, const int C, const int T) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const int BS = QB_BYTES(T);
    int64_t nquads = (nb + 3) / 4;
    for (int64_t q = 0; q < nquads; q++) {
        int nq = nb - 4 * q >= 4 ? 4 : (int)(nb - 4 * q);
        __m512i lo[4], hi[4];
        __m512 dw[4], mw[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            quad_weights(w + (size_t)r * wst + (size_t)(4 * q) * BS, nq, T, &lo[r], &hi[r], &dw[r], &mw[r]);
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const a_quad *a = (const a_quad *)(xa + (size_t)c * ast) + q;
            __m512i xl = _mm512_loadu_si512(a->lo), xh = _mm512_loadu_si512(a->hi);
            __m512i init = T == T50 ? _mm512_loadu_si512(a->corr) : _mm512_setzero_si512();
            __m512 dx = _mm512_loadu_ps(a->dx);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i s = _mm512_dpbusd_epi32(init, lo[r], xl);
                s = _mm512_dpbusd_epi32(s, hi[r], xh);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[r], dx), acc[r][c]);
                if (QB_HASM(T)) acc[r][c] = _mm512_fmadd_ps(mw[r], _mm512_loadu_ps(a->sx), acc[r][c]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}
AI void q4_1_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nb, float *y,
                  int64_t ldy, const int R, const int C) {
    quad_tile(w, wst, xa, ast, nb, y, ldy, R, C, T41);
}
AI void q5_0_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nb, float *y,
                  int64_t ldy, const int R, const int C) {
    quad_tile(w, wst, xa, ast, nb, y, ldy, R, C, T50);
}
AI void q5_1_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nb, float *y,
                  int64_t ldy, const int R, const int C) {
    quad_tile(w, wst, xa, ast, nb, y, ldy, R, C, T51);
}

/* ================================================================== */
/* K-quants: Q2_K, Q3_K, Q5_K                                          */
/* ================================================================== */
typedef struct {
    int8_t qs[256];
    int16_t sums[16];
    float d;
    uint8_t pad[28];
} a_kq;
_Static_assert(sizeof(a_kq) == 320, "a_kq");

static size_t kq_act_size(int64_t cols) { return (size_t)(cols / 256) * sizeof(a_kq); }

/* Q2_K / Q3_K: plane order, sums per 16 values */
static void planes_act_quant(const float *x, uint8_t *dst, int64_t cols) {
    a_kq *a = (a_kq *)dst;
    ds8b__blk_q8_k t;
    for (int64_t b = 0; b < cols / 256; b++, a++) {
        ds8b__quant_q8_k(x + 256 * b, &t, 256);
        for (int p = 0; p < 4; p++) {
            memcpy(a->qs + 64 * p, t.qs + 32 * p, 32);
            memcpy(a->qs + 64 * p + 32, t.qs + 128 + 32 * p, 32);
        }
        memcpy(a->sums, t.bsums, sizeof a->sums);
        a->d = t.d;
        memset(a->pad, 0, sizeof a->pad);
    }
}
/* Q5_K: 32-value sub-blocks in the order 0,2,1,3,4,6,5,7; sums per 32 */
static void nib_act_quant(const float *x, uint8_t *dst, int64_t cols) {
    static const int order[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    a_kq *a = (a_kq *)dst;
    ds8b__blk_q8_k t;
    for (int64_t b = 0; b < cols / 256; b++, a++) {
        ds8b__quant_q8_k(x + 256 * b, &t, 256);
        for (int k = 0; k < 8; k++) memcpy(a->qs + 32 * k, t.qs + 32 * order[k], 32);
        for (int j = 0; j < 16; j++) a->sums[j] = j < 8 ? (int16_t)(t.bsums[2 * j] + t.bsums[2 * j + 1]) : 0;
        a->d = t.d;
        memset(a->pad, 0, sizeof a->pad);
    }
}

/* int16 lane L of plane 0's scale vector takes 16-value sub-block
 * 8*(L/16) + (L/8)%2 (Q2_K/Q3_K); plane p adds 2p. */
AI __m512i plane_scale_idx0(void) {
    return _mm512_set_epi16(9, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 8,
                            1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
}

AI __m512 bcast_h(uint16_t h) { return _mm512_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(h))); }

AI void q2_k_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nsb, float *y,
                  int64_t ldy, const int R, const int C) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m128i m0f = _mm_set1_epi8(0x0F);
    const __m512i ix0 = plane_scale_idx0(), two = _mm512_set1_epi16(2);
    for (int64_t sb = 0; sb < nsb; sb++) {
        __m512i s16[4], z[4];
        __m256i mn16[4];
        __m512 dw[4], dm[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const ds8b__blk_q2_k *b = (const ds8b__blk_q2_k *)(w + (size_t)r * wst) + sb;
            __m128i sc = _mm_loadu_si128((const __m128i *)b->scales);
            s16[r] = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sc, m0f)));
            mn16[r] = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m0f));
            __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128((int)rd32((const uint8_t *)&b->d)));
            dw[r] = _mm512_broadcastss_ps(dd);
            dm[r] = _mm512_broadcastss_ps(_mm_sub_ps(_mm_setzero_ps(), _mm_movehdup_ps(dd)));
            z[r] = _mm512_loadu_si512(b->qs);
        }
        __m512i is[4][4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) is[r][c] = _mm512_setzero_si512();
        __m512i ix = ix0;
        #pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m512i u[4], sv[4];
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                u[r] = _mm512_and_si512(p ? _mm512_srli_epi16(z[r], 2 * p) : z[r], m3);
                sv[r] = _mm512_permutexvar_epi16(ix, s16[r]);
            }
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const a_kq *a = (const a_kq *)(xa + (size_t)c * ast) + sb;
                __m512i xv = _mm512_loadu_si512(a->qs + 64 * p);
                #pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    is[r][c] = _mm512_dpwssd_epi32(is[r][c], _mm512_maddubs_epi16(u[r], xv), sv[r]);
            }
            ix = _mm512_add_epi16(ix, two);
        }
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const a_kq *a = (const a_kq *)(xa + (size_t)c * ast) + sb;
            __m512 dx = _mm512_set1_ps(a->d);
            __m256i sums = _mm256_loadu_si256((const __m256i *)a->sums);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[r][c]), _mm512_mul_ps(dw[r], dx), acc[r][c]);
                __m256 ms = _mm256_cvtepi32_ps(_mm256_madd_epi16(sums, mn16[r]));
                acc[r][c] = _mm512_fmadd_ps(_mm512_zextps256_ps512(ms), _mm512_mul_ps(dm[r], dx), acc[r][c]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* The 16 signed Q3_K scales (minus 32 applied) as int8 in an xmm. */
AI __m128i q3_scales(const uint8_t *s) {
    uint64_t lo8;
    memcpy(&lo8, s, 8);
    uint32_t h4 = rd32(s + 8);
    const __m128i m0f = _mm_set1_epi8(0x0F), m30 = _mm_set1_epi8(0x30);
    __m128i v = _mm_cvtsi64_si128((long long)lo8);
    __m128i lo = _mm_and_si128(_mm_unpacklo_epi64(v, _mm_srli_epi16(v, 4)), m0f);
    __m128i hi = _mm_srlv_epi32(_mm_set1_epi32((int)h4), _mm_setr_epi32(0, 2, 4, 6));
    hi = _mm_and_si128(_mm_slli_epi16(hi, 4), m30);
    return _mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32));
}

AI void q3_k_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nsb, float *y,
                  int64_t ldy, const int R, const int C) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const __m512i m3 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    const __m512i ix0 = plane_scale_idx0(), two = _mm512_set1_epi16(2);
    for (int64_t sb = 0; sb < nsb; sb++) {
        __m512i s16[4], z[4], hv[4];
        __m512 dw[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const ds8b__blk_q3_k *b = (const ds8b__blk_q3_k *)(w + (size_t)r * wst) + sb;
            s16[r] = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(q3_scales(b->scales)));
            dw[r] = bcast_h(b->d);
            z[r] = _mm512_loadu_si512(b->qs);
            __m256i hm = _mm256_loadu_si256((const __m256i *)b->hmask);
            hv[r] = _mm512_inserti64x4(_mm512_castsi256_si512(hm), _mm256_srli_epi16(hm, 4), 1);
        }
        __m512i is[4][4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) is[r][c] = _mm512_setzero_si512();
        __m512i ix = ix0;
        #pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m512i u[4], sv[4];
            const __m512i bit = _mm512_set1_epi8((char)(1 << p));
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i q2 = _mm512_and_si512(p ? _mm512_srli_epi16(z[r], 2 * p) : z[r], m3);
                __mmask64 k = _mm512_test_epi8_mask(hv[r], bit);
                u[r] = _mm512_mask_add_epi8(q2, k, q2, four);
                sv[r] = _mm512_permutexvar_epi16(ix, s16[r]);
            }
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const a_kq *a = (const a_kq *)(xa + (size_t)c * ast) + sb;
                __m512i xv = _mm512_loadu_si512(a->qs + 64 * p);
                #pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    is[r][c] = _mm512_dpwssd_epi32(is[r][c], _mm512_maddubs_epi16(u[r], xv), sv[r]);
            }
            ix = _mm512_add_epi16(ix, two);
        }
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const a_kq *a = (const a_kq *)(xa + (size_t)c * ast) + sb;
            __m512 dx = _mm512_set1_ps(a->d);
            __m256i sums = _mm256_loadu_si256((const __m256i *)a->sums);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                /* codes are value + 4: take 4 * sum(scale * bsum) back */
                __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sums, _mm512_castsi512_si256(s16[r])), 2);
                __m512i t = _mm512_sub_epi32(is[r][c], _mm512_zextsi256_si512(corr));
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(dw[r], dx), acc[r][c]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

AI void q5_k_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nsb, float *y,
                  int64_t ldy, const int R, const int C) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const __m512i m0f = _mm512_set1_epi8(0x0F), b16 = _mm512_set1_epi8(16);
    /* int16 lane L of activation vector v's scale vector: sub-block
     * 4*(v/2) + v%2, plus 2 for L >= 16 */
    const __m512i ix0 = _mm512_set_epi16(2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int64_t sb = 0; sb < nsb; sb++) {
        __m512i s16[4], hv[4];
        __m128i mn[4];
        __m512 dw[4], dm[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const ds8b__blk_q5_k *b = (const ds8b__blk_q5_k *)(w + (size_t)r * wst) + sb;
            uint32_t u0 = rd32(b->scales), u1 = rd32(b->scales + 4), u2 = rd32(b->scales + 8);
            uint64_t sc = (uint64_t)(u0 & 0x3f3f3f3fu) |
                          (uint64_t)((u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u)) << 32;
            uint64_t m = (uint64_t)(u1 & 0x3f3f3f3fu) |
                         (uint64_t)(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u)) << 32;
            s16[r] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
            mn[r] = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m));
            __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128((int)rd32((const uint8_t *)&b->d)));
            dw[r] = _mm512_broadcastss_ps(dd);
            dm[r] = _mm512_broadcastss_ps(_mm_sub_ps(_mm_setzero_ps(), _mm_movehdup_ps(dd)));
            __m256i h = _mm256_loadu_si256((const __m256i *)b->qh);
            hv[r] = _mm512_inserti64x4(_mm512_castsi256_si512(h), _mm256_srli_epi16(h, 2), 1);
        }
        __m512i is[4][4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) is[r][c] = _mm512_setzero_si512();
        #pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            const int p = v / 2, hi = v % 2;
            const __m512i bit = _mm512_set1_epi8((char)(1 << (4 * p + hi)));
            const __m512i ix = _mm512_add_epi16(ix0, _mm512_set1_epi16((short)(4 * p + hi)));
            __m512i u[4], sv[4];
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const ds8b__blk_q5_k *b = (const ds8b__blk_q5_k *)(w + (size_t)r * wst) + sb;
                __m512i zq = _mm512_loadu_si512(b->qs + 64 * p);
                __m512i nib = _mm512_and_si512(hi ? _mm512_srli_epi16(zq, 4) : zq, m0f);
                u[r] = _mm512_mask_add_epi8(nib, _mm512_test_epi8_mask(hv[r], bit), nib, b16);
                sv[r] = _mm512_permutexvar_epi16(ix, s16[r]);
            }
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const a_kq *a = (const a_kq *)(xa + (size_t)c * ast) + sb;
                __m512i xv = _mm512_loadu_si512(a->qs + 64 * v);
                #pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    is[r][c] = _mm512_dpwssd_epi32(is[r][c], _mm512_maddubs_epi16(u[r], xv), sv[r]);
            }
        }
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const a_kq *a = (const a_kq *)(xa + (size_t)c * ast) + sb;
            __m512 dx = _mm512_set1_ps(a->d);
            __m128i sums = _mm_loadu_si128((const __m128i *)a->sums);
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

/* ================================================================== */
/* Tile drivers                                                        */
/* ================================================================== */
/* Walks a chunk in tiles of up to 2 weight rows (RD <= 4 when there is a
 * single activation row) x up to 4 activation rows, with a fixed-shape
 * instantiation of TILE for each (rows, cols) pair. */
#define MORE_MM(NAME, TILE, BLK, RD)                                                          \
    static void NAME(const uint8_t *w, size_t wst, int64_t nr, const uint8_t *xa, size_t ast,     \
                     int64_t nc, int64_t cols, float *y, int64_t ldy) {                           \
        int64_t nb = cols / (BLK);                                                                \
        for (int64_t c = 0; c < nc;) {                                                            \
            int64_t cc = nc - c >= 4 ? 4 : nc - c;                                                \
            int64_t rb = cc == 1 ? (RD) : 2;                                                   \
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
                case 1 * 8 + 3: TILE(wr, wst, xc, ast, nb, yy, ldy, 1, 3); break;                 \
                case 2 * 8 + 3: TILE(wr, wst, xc, ast, nb, yy, ldy, 2, 3); break;                 \
                case 1 * 8 + 4: TILE(wr, wst, xc, ast, nb, yy, ldy, 1, 4); break;                 \
                default: TILE(wr, wst, xc, ast, nb, yy, ldy, 2, 4); break;                        \
                }                                                                                 \
                r += rr;                                                                          \
            }                                                                                     \
            c += cc;                                                                              \
        }                                                                                         \
    }
#ifndef MORE_DEC_ROWS
#define MORE_DEC_ROWS 4
#endif
MORE_MM(mm_q4_1, q4_1_tile, 32, MORE_DEC_ROWS)
MORE_MM(mm_q5_0, q5_0_tile, 32, MORE_DEC_ROWS)
MORE_MM(mm_q5_1, q5_1_tile, 32, MORE_DEC_ROWS)
MORE_MM(mm_q2_k, q2_k_tile, 256, MORE_DEC_ROWS)
MORE_MM(mm_q3_k, q3_k_tile, 256, MORE_DEC_ROWS)
MORE_MM(mm_q5_k, q5_k_tile, 256, MORE_DEC_ROWS)

static void set_kern(ds8b__kops *k, int type, ds8b__mm_fn mm, size_t (*size)(int64_t),
                     void (*quant)(const float *, uint8_t *, int64_t)) {
    /* only the decode entry: the prompt fields (mmp...) stay as they are */
    k->q[type].mm = mm;
    k->q[type].act_size = size;
    k->q[type].act_quant = quant;
    k->q[type].batched = true;
}

void ds8b__kops_fill_more_avx512(ds8b__kops *k) {
    set_kern(k, DS8B_T_Q4_1, mm_q4_1, quad_act_size, quad_act_quant);
    set_kern(k, DS8B_T_Q5_0, mm_q5_0, quad_act_size, quad_act_quant);
    set_kern(k, DS8B_T_Q5_1, mm_q5_1, quad_act_size, quad_act_quant);
    set_kern(k, DS8B_T_Q2_K, mm_q2_k, kq_act_size, planes_act_quant);
    set_kern(k, DS8B_T_Q3_K, mm_q3_k, kq_act_size, planes_act_quant);
    set_kern(k, DS8B_T_Q5_K, mm_q5_k, kq_act_size, nib_act_quant);
}
