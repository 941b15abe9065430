/*
 * x86/avx512_rows_other.c -- AVX-512 VNNI integer kernels for the weight types
 * that x86/avx512_rows.c does not cover: Q4_1, Q5_0, Q5_1 (32-value blocks)
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
 * differs. Every kernel prefetches its weight rows MORE_PF bytes ahead.
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
 * The last 1..3 blocks of a row go through zero-padded copies.
 *
 *   activations, per quad (128 values, 320 bytes): int8 lo[64] (values
 *   0..15 of the four blocks), int8 hi[64] (values 16..31), int32 corr[16]
 *   (-16 * sum of the 8 values that meet in lane k), float dx[16] (block
 *   scale of lane k), float sx[16] (dx * that lane sum, for the min term).
 *
 * K-quants, one super-block per step: the codes go in four 64-byte
 * vectors; vpdpbusd gives dword sums of 4 products, each dword inside one
 * sub-block and small enough for int16, so two vectors' sums are packed to
 * int16 (vpackssdw) and one vpmaddwd / vpdpwssd per pair applies the
 * sub-block scales; a super-block accumulates in int32 and is scaled in
 * float once.
 *   Q2_K/Q3_K: the 64 code bytes are one zmm; plane p (bits 2p..2p+1)
 *     holds values 32p..32p+31 of each half, so activation vector p is
 *     [x[32p..32p+31], x[128+32p..128+32p+31]]. Codes are taken as z&3,
 *     z&12, (z>>4)&3, (z>>4)&12 (the second and fourth 4x, paired so each
 *     pair has one factor). Q3_K's high bit by vptestmb + masked add, its
 *     -4 offset through the accumulator start values. A prepass per group
 *     of 8 super-blocks unpacks scales, mins and f16 factors four
 *     super-blocks per zmm operation (see below).
 *   Q5_K: as Q4_K in x86/avx512_rows.c (activation sub-blocks in the order
 *     0,2,1,3,4,6,5,7 so a 64-byte load of qs gives two aligned nibble
 *     planes), the fifth bit by vptestmb + masked add of 16.
 */
#include "kernels/kern_impl.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

/* Software prefetch distance in bytes along each weight row: decode reads
 * every weight once from DRAM, and the hardware prefetcher alone leaves
 * these kernels waiting (measured, one thread: 1.3-1.9x more GB/s with
 * 8-16 KB than without). */
#ifndef MORE_PF
#define MORE_PF 16384
#endif
#define PF(p) _mm_prefetch((const char *)(p) + MORE_PF, _MM_HINT_T0)
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

/* Weights of one full quad of one row: low/high code vectors and the lane
 * scales (dw) and mins (mw). */
AI void quad_weights(const uint8_t *bp, const int T, __m512i *lo, __m512i *hi, __m512 *dw, __m512 *mw) {
    const int BS = QB_BYTES(T), QS = QB_QS(T);
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(bp + QS)));
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(bp + BS + QS)), 1);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(bp + 2 * BS + QS)), 2);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(bp + 3 * BS + QS)), 3);
    *lo = _mm512_and_si512(z, m0f);
    *hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m0f);
    if (QB_HASQH(T)) {
        /* bit j of block b's qh -> byte 16b + j of lo (j < 16) or of hi */
        const uint64_t M = 0x0000FFFF0000FFFFull;
        uint64_t q01 = (uint64_t)rd32(bp + QB_QH(T)) | (uint64_t)rd32(bp + BS + QB_QH(T)) << 32;
        uint64_t q23 = (uint64_t)rd32(bp + 2 * BS + QB_QH(T)) | (uint64_t)rd32(bp + 3 * BS + QB_QH(T)) << 32;
        __mmask64 klo = _cvtu64_mask64(_pext_u64(q01, M) | _pext_u64(q23, M) << 32);
        __mmask64 khi = _cvtu64_mask64(_pext_u64(q01, ~M) | _pext_u64(q23, ~M) << 32);
        const __m512i b16 = _mm512_set1_epi8(16);
        *lo = _mm512_mask_add_epi8(*lo, klo, *lo, b16);
        *hi = _mm512_mask_add_epi8(*hi, khi, *hi, b16);
    }
    if (QB_HASM(T)) {
        /* f16 words d0 m0 d1 m1 d2 m2 d3 m3 */
        uint64_t h01 = (uint64_t)rd32(bp) | (uint64_t)rd32(bp + BS) << 32;
        uint64_t h23 = (uint64_t)rd32(bp + 2 * BS) | (uint64_t)rd32(bp + 3 * BS) << 32;
        __m512 f = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_set_epi64x((long long)h23, (long long)h01)));
        const __m512i ie = _mm512_set_epi32(6, 6, 6, 6, 4, 4, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0);
        *dw = _mm512_permutexvar_ps(ie, f);
        *mw = _mm512_permutexvar_ps(_mm512_add_epi32(ie, _mm512_set1_epi32(1)), f);
    } else {
        uint64_t dd = (uint64_t)rd16(bp) | (uint64_t)rd16(bp + BS) << 16 | (uint64_t)rd16(bp + 2 * BS) << 32 |
                      (uint64_t)rd16(bp + 3 * BS) << 48;
        __m512 f = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)dd)));
        const __m512i ie = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        *dw = _mm512_permutexvar_ps(ie, f);
        *mw = _mm512_setzero_ps();
    }
}

/* One quad step of an R x C tile; weight row r of the quad at wq + r * wst. */
AI void quad_step(const uint8_t *wq, size_t wst, const uint8_t *xq, size_t ast, __m512 acc[4][4], const int R,
                  const int C, const int T) {
    __m512i lo[4], hi[4];
    __m512 dw[4], mw[4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) quad_weights(wq + (size_t)r * wst, T, &lo[r], &hi[r], &dw[r], &mw[r]);
    #pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
        const a_quad *a = (const a_quad *)(xq + (size_t)c * ast);
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

AI void quad_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nb, float *y,
                  int64_t ldy, const int R, const int C, const int T) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const int BS = QB_BYTES(T);
    int64_t nfull = nb / 4;
    for (int64_t q = 0; q < nfull; q++) {
        const uint8_t *wq = w + (size_t)(4 * q) * BS;
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            PF(wq + (size_t)r * wst);
            PF(wq + (size_t)r * wst + 64);
        }
        quad_step(wq, wst, xa + (size_t)q * sizeof(a_quad), ast, acc, R, C, T);
    }
    if (nb % 4) {
        /* last 1..3 blocks: copied into zero blocks (scales 0, codes 0),
         * which add exact zeros against the zero activation blocks */
        uint8_t tmp[4][4 * 24];
        memset(tmp, 0, sizeof tmp);
        for (int r = 0; r < R; r++)
            memcpy(tmp[r], w + (size_t)r * wst + (size_t)(4 * nfull) * BS, (size_t)(nb % 4) * BS);
        quad_step(tmp[0], sizeof tmp[0], xa + (size_t)nfull * sizeof(a_quad), ast, acc, R, C, T);
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
    float d4; /* d / 4 (exact) */
    uint8_t pad[24];
} a_kq;
_Static_assert(sizeof(a_kq) == 320, "a_kq");

static size_t kq_act_size(int64_t cols) { return (size_t)(cols / 256) * sizeof(a_kq); }

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
        a->d4 = t.d * 0.25f;
        memset(a->pad, 0, sizeof a->pad);
    }
}

/* The K-quant tiles below take four code vectors u[0..3] per row (one per
 * 64-byte activation vector), get per-dword sums with vpdpbusd (each dword
 * inside one sub-block; small enough for int16), pack two vectors' sums to
 * int16 with vpackssdw and apply the sub-block scales with one vpmaddwd /
 * vpdpwssd per pair. packs(a, b) puts, in 128-bit lane j, dwords 4j..4j+3
 * of a in int16 lanes 8j..8j+3 and those of b in 8j+4..8j+7. */
AI __m512i kq_pair_sums(__m512i ua, __m512i xa_, __m512i ub, __m512i xb) {
    __m512i ea = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ua, xa_);
    __m512i eb = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ub, xb);
    return _mm512_packs_epi32(ea, eb);
}

/* Q2_K/Q3_K: 128-bit lane j of plane p is sub-block 8*(j/2) + 2p + j%2.
 * Plane codes are taken as u0 = z&3, u1 = z&0xC (4x), u2 = (z>>4)&3,
 * u3 = (z>>4)&0xC (4x): pairs (0,2) and (1,3) have one factor each. */
#define KQ_IDX(a0, a1, a2, a3, b0, b1, b2, b3)                                                   \
    _mm512_set_epi16(b3, b3, b3, b3, a3, a3, a3, a3, b2, b2, b2, b2, a2, a2, a2, a2, b1, b1, b1, b1, \
                     a1, a1, a1, a1, b0, b0, b0, b0, a0, a0, a0, a0)

/* ------------------------------------------------------------------ */
/* Q2_K and Q3_K work on groups of up to KG super-blocks. Per weight row  */
/* and group, a prepass unpacks the scales of four super-blocks per zmm   */
/* operation and converts the group's f16 d (dmin) at once; the float     */
/* factors d * dx of the group are formed with one multiply and read back */
/* as embedded broadcasts. The activation row is laid out as arrays:      */
/*   int8 qs[nsb][256] (plane order)                                      */
/*   Q2_K: int16 sums[np][16], super-blocks 2i and 2i+1 interleaved by    */
/*         dword (dword k of the pair belongs to super-block 2i + k%2),   */
/*         so one vpmaddwd gives both mins and one broadcast of two       */
/*         floats scales them                                             */
/*   Q3_K: int32 corr[nsb][4][16]: start values of the plane sums,        */
/*         -4 * f * (sum of the 4 activations of the dword), f = 1 for    */
/*         planes 0 and 2, 4 for planes 1 and 3 (the code scaling below)  */
/*   float d4[np] = d / 4                                                 */
/* with np = nsb rounded up to KG (zero padding).                         */
/* ------------------------------------------------------------------ */
enum { KG = 8 };
static int64_t kg_pad(int64_t nsb) { return (nsb + KG - 1) / KG * KG; }

static size_t q2_act_size(int64_t cols) {
    int64_t nsb = cols / 256, np = kg_pad(nsb);
    return (size_t)(nsb * 256 + np * 32 + np * 4);
}
static size_t q3_act_size(int64_t cols) {
    int64_t nsb = cols / 256, np = kg_pad(nsb);
    return (size_t)(nsb * 256 + nsb * 256 + np * 4);
}
static void planes_copy(const ds8b__blk_q8_k *t, int8_t *qs) {
    for (int p = 0; p < 4; p++) {
        memcpy(qs + 64 * p, t->qs + 32 * p, 32);
        memcpy(qs + 64 * p + 32, t->qs + 128 + 32 * p, 32);
    }
}
static void q2_act_quant(const float *x, uint8_t *dst, int64_t cols) {
    int64_t nsb = cols / 256, np = kg_pad(nsb);
    int8_t *qs = (int8_t *)dst;
    int16_t *sums = (int16_t *)(dst + nsb * 256);
    float *d4 = (float *)(dst + nsb * 256 + np * 32);
    memset(sums, 0, (size_t)np * 32);
    ds8b__blk_q8_k t;
    for (int64_t b = 0; b < np; b++) {
        if (b >= nsb) {
            d4[b] = 0;
            continue;
        }
        ds8b__quant_q8_k(x + 256 * b, &t, 256);
        planes_copy(&t, qs + 256 * b);
        int16_t *pr = sums + 32 * (b / 2);
        for (int k = 0; k < 8; k++) { /* dword k of the super-block */
            pr[2 * (2 * k + b % 2)] = t.bsums[2 * k];
            pr[2 * (2 * k + b % 2) + 1] = t.bsums[2 * k + 1];
        }
        d4[b] = t.d * 0.25f;
    }
}
static void q3_act_quant(const float *x, uint8_t *dst, int64_t cols) {
    int64_t nsb = cols / 256, np = kg_pad(nsb);
    int8_t *qs = (int8_t *)dst;
    int32_t *corr = (int32_t *)(dst + nsb * 256);
    float *d4 = (float *)(dst + nsb * 512);
    ds8b__blk_q8_k t;
    for (int64_t b = 0; b < np; b++) {
        if (b >= nsb) {
            d4[b] = 0;
            continue;
        }
        ds8b__quant_q8_k(x + 256 * b, &t, 256);
        planes_copy(&t, qs + 256 * b);
        for (int p = 0; p < 4; p++)
            for (int k = 0; k < 16; k++) {
                const int8_t *q = qs + 256 * b + 64 * p + 4 * k;
                corr[64 * b + 16 * p + k] = -4 * ((p & 1) ? 4 : 1) * (q[0] + q[1] + q[2] + q[3]);
            }
        d4[b] = t.d * 0.25f;
    }
}

typedef struct {
    uint8_t s8[KG][16];      /* Q2_K: sub-block scales */
    uint8_t s8x4[KG][16];    /* Q2_K: 4 * sub-block scales */
    int16_t m16[KG][16];     /* Q2_K: 4 * mins, pairs interleaved by dword */
    int16_t s16[KG + 1][16]; /* Q3_K: signed scales (vpermw tables read 64 bytes wide) */
    float dw[KG], dm[KG];    /* d, dmin */
} kq_prep;

/* Four 16-byte fields at src, src + stride, ... (n <= 4 of them; the
 * rest zero) as the four 128-bit lanes of a zmm. */
AI __m512i gather4x16(const uint8_t *src, size_t stride, int n) {
    if (n == 4) {
        __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)src));
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(src + stride)), 1);
        z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(src + 2 * stride)), 2);
        return _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(src + 3 * stride)), 3);
    }
    uint8_t t[64];
    memset(t, 0, sizeof t);
    for (int i = 0; i < n; i++) memcpy(t + 16 * i, src + (size_t)i * stride, 16);
    return _mm512_loadu_si512(t);
}
/* f16 d (and dmin, pairs = 1) of n <= KG super-blocks at src + j * stride
 * to p->dw (p->dm); zero past n. */
AI void kq_prep_d(const uint8_t *src, size_t stride, int n, kq_prep *p, const int pairs) {
    uint32_t t[KG] = {0};
    for (int j = 0; j < n; j++) t[j] = pairs ? rd32(src + (size_t)j * stride) : rd16(src + (size_t)j * stride);
    __m512 f = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)t));
    f = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15), f);
    _mm256_storeu_ps(p->dw, _mm512_castps512_ps256(f));
    _mm256_storeu_ps(p->dm, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)));
}

static void q2_k_prep(const ds8b__blk_q2_k *b, int n, kq_prep *p) {
    const __m512i m0f = _mm512_set1_epi8(0x0F), m3c = _mm512_set1_epi8(0x3C);
    /* dword i of a pair: super-block i % 2, its dword i / 2 */
    const __m512i ilv = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    for (int j = 0; j < n; j += 4) {
        __m512i z = gather4x16(b[j].scales, sizeof *b, n - j < 4 ? n - j : 4);
        _mm512_storeu_si512(p->s8[j], _mm512_and_si512(z, m0f));
        _mm512_storeu_si512(p->s8x4[j], _mm512_and_si512(_mm512_slli_epi16(z, 2), m3c));
        __m512i m4 = _mm512_and_si512(_mm512_srli_epi16(z, 2), m3c); /* 4 * min */
        _mm512_storeu_si512(p->m16[j], _mm512_permutexvar_epi32(ilv, _mm512_cvtepu8_epi16(_mm512_castsi512_si256(m4))));
        _mm512_storeu_si512(p->m16[j + 2],
                            _mm512_permutexvar_epi32(ilv, _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(m4, 1))));
    }
    kq_prep_d((const uint8_t *)&b[0].d, sizeof *b, n, p, 1);
}

/* vpshufb controls making int16 lanes of the scale bytes: in 128-bit lane
 * L, int16 lanes 0..3 take sub-block a_L and 4..7 b_L (Q2_K planes) */
#define PS_LANE(a, b) a, -128, a, -128, a, -128, a, -128, b, -128, b, -128, b, -128, b, -128
static const int8_t ps_c02[64] __attribute__((aligned(64))) = {PS_LANE(0, 4), PS_LANE(1, 5), PS_LANE(8, 12),
                                                                PS_LANE(9, 13)};
static const int8_t ps_c13[64] __attribute__((aligned(64))) = {PS_LANE(2, 6), PS_LANE(3, 7), PS_LANE(10, 14),
                                                                PS_LANE(11, 15)};

AI void q2_k_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nsb, float *y,
                  int64_t ldy, const int R, const int C) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const __m512i m3 = _mm512_set1_epi8(3), mc = _mm512_set1_epi8(0x0C);
    const __m512i c02 = _mm512_load_si512(ps_c02), c13 = _mm512_load_si512(ps_c13);
    const int64_t np = kg_pad(nsb);
    kq_prep pr[4];
    float fdw[4][4][KG], fdm[4][4][KG];
    for (int64_t g = 0; g < nsb; g += KG) {
        int ng = nsb - g < KG ? (int)(nsb - g) : KG;
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) q2_k_prep((const ds8b__blk_q2_k *)(w + (size_t)r * wst) + g, ng, &pr[r]);
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m256 dx = _mm256_loadu_ps((const float *)(xa + (size_t)c * ast + nsb * 256 + np * 32) + g);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                _mm256_storeu_ps(fdw[r][c], _mm256_mul_ps(_mm256_loadu_ps(pr[r].dw), dx));
                _mm256_storeu_ps(fdm[r][c], _mm256_mul_ps(_mm256_loadu_ps(pr[r].dm), dx));
            }
        }
        for (int j = 0; j < ng; j++) {
            int64_t sb = g + j;
            __m512i u[4][4], sv02[4], sv13[4];
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const ds8b__blk_q2_k *b = (const ds8b__blk_q2_k *)(w + (size_t)r * wst) + sb;
                PF(b);
                PF((const uint8_t *)b + 64);
                /* pair (0,2) has codes 1x, pair (1,3) 4x: scales 4x and 1x */
                sv02[r] = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)pr[r].s8x4[j])), c02);
                sv13[r] = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)pr[r].s8[j])), c13);
                __m512i z = _mm512_loadu_si512(b->qs), z4 = _mm512_srli_epi16(z, 4);
                u[r][0] = _mm512_and_si512(z, m3);
                u[r][1] = _mm512_and_si512(z, mc);
                u[r][2] = _mm512_and_si512(z4, m3);
                u[r][3] = _mm512_and_si512(z4, mc);
            }
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const int8_t *q = (const int8_t *)(xa + (size_t)c * ast) + 256 * sb;
                __m512i x0 = _mm512_loadu_si512(q), x1 = _mm512_loadu_si512(q + 64);
                __m512i x2 = _mm512_loadu_si512(q + 128), x3 = _mm512_loadu_si512(q + 192);
                #pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    /* 4x the scaled code sum */
                    __m512i is = _mm512_madd_epi16(kq_pair_sums(u[r][0], x0, u[r][2], x2), sv02[r]);
                    is = _mm512_dpwssd_epi32(is, kq_pair_sums(u[r][1], x1, u[r][3], x3), sv13[r]);
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_set1_ps(fdw[r][c][j]), acc[r][c]);
                }
            }
        }
        /* mins, two super-blocks per step (padding adds zeros) */
        for (int j = 0; j < ng; j += 2) {
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const int16_t *sm = (const int16_t *)(xa + (size_t)c * ast + nsb * 256) + 16 * (g + j);
                __m512i sums = _mm512_loadu_si512(sm);
                #pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    __m512i ms = _mm512_madd_epi16(sums, _mm512_loadu_si512(pr[r].m16[j]));
                    double f2;
                    memcpy(&f2, &fdm[r][c][j], sizeof f2);
                    acc[r][c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_castpd_ps(_mm512_set1_pd(f2)), acc[r][c]);
                }
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* Q3_K: 16 signed 6-bit scales of each of up to four super-blocks. The
 * 16 bytes loaded per super-block end with its 12 scale bytes (s[i] at
 * byte 4 + i), so nothing past the block is read. */
static void q3_k_prep(const ds8b__blk_q3_k *b, int n, kq_prep *p) {
    /* low 4 bits: s[i] & 15 (i < 8), s[i - 8] >> 4 (i >= 8) */
    const __m512i clo = _mm512_broadcast_i32x4(_mm_setr_epi8(4, 5, 6, 7, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    /* high 2 bits: bits 2(i/4).. of s[8 + i%4] */
    const __m512i chi = _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 12, 13, 14, 15, 12, 13, 14, 15, 12, 13, 14, 15));
    /* dword k: rotate right by 2k - 4 puts bits 2k..2k+1 of each byte at 4..5 */
    const __m512i rot = _mm512_broadcast_i32x4(_mm_setr_epi32(28, 30, 0, 2));
    const __m512i m0f = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30), b32 = _mm512_set1_epi8(32);
    for (int j = 0; j < n; j += 4) {
        __m512i z = gather4x16(b[j].scales - 4, sizeof *b, n - j < 4 ? n - j : 4);
        __m512i lo = _mm512_shuffle_epi8(z, clo);
        lo = _mm512_and_si512(_mm512_mask_srli_epi16(lo, 0xF0F0F0F0u, lo, 4), m0f);
        __m512i hi = _mm512_rorv_epi32(_mm512_shuffle_epi8(z, chi), rot);
        __m512i sc = _mm512_sub_epi8(_mm512_ternarylogic_epi32(lo, hi, m30, 0xF8), b32); /* lo | (hi & m30) */
        _mm512_storeu_si512(p->s16[j], _mm512_cvtepi8_epi16(_mm512_castsi512_si256(sc)));
        _mm512_storeu_si512(p->s16[j + 2], _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(sc, 1)));
    }
    kq_prep_d((const uint8_t *)&b[0].d, sizeof *b, n, p, 0);
}

AI void q3_k_tile(const uint8_t *w, size_t wst, const uint8_t *xa, size_t ast, int64_t nsb, float *y,
                  int64_t ldy, const int R, const int C) {
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    const __m512i m3 = _mm512_set1_epi8(3), mc = _mm512_set1_epi8(0x0C);
    const __m512i b4 = _mm512_set1_epi8(4), b16 = _mm512_set1_epi8(16);
    const __m512i i02 = KQ_IDX(0, 1, 8, 9, 4, 5, 12, 13), i13 = KQ_IDX(2, 3, 10, 11, 6, 7, 14, 15);
    kq_prep pr[4];
    float fdw[4][4][KG];
    for (int64_t g = 0; g < nsb; g += KG) {
        int ng = nsb - g < KG ? (int)(nsb - g) : KG;
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) q3_k_prep((const ds8b__blk_q3_k *)(w + (size_t)r * wst) + g, ng, &pr[r]);
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m256 dx = _mm256_loadu_ps((const float *)(xa + (size_t)c * ast + nsb * 512) + g);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) _mm256_storeu_ps(fdw[r][c], _mm256_mul_ps(_mm256_loadu_ps(pr[r].dw), dx));
        }
        for (int j = 0; j < ng; j++) {
            int64_t sb = g + j;
            __m512i u[4][4], sv02[4], sv13[4];
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const ds8b__blk_q3_k *b = (const ds8b__blk_q3_k *)(w + (size_t)r * wst) + sb;
                PF(b);
                PF((const uint8_t *)b + 64);
                __m512i s16 = _mm512_loadu_si512(pr[r].s16[j]);
                sv02[r] = _mm512_slli_epi16(_mm512_permutexvar_epi16(i02, s16), 2);
                sv13[r] = _mm512_permutexvar_epi16(i13, s16);
                /* codes + 4 where the high bit is set: bit p of hmask (half 0),
                 * bit 4 + p (half 1), so test bit p of [hmask, hmask >> 4] */
                __m256i hm = _mm256_loadu_si256((const __m256i *)b->hmask);
                __m512i hv = _mm512_inserti64x4(_mm512_castsi256_si512(hm), _mm256_srli_epi16(hm, 4), 1);
                __m512i z = _mm512_loadu_si512(b->qs), z4 = _mm512_srli_epi16(z, 4);
                __m512i q0 = _mm512_and_si512(z, m3), q1 = _mm512_and_si512(z, mc);
                __m512i q2 = _mm512_and_si512(z4, m3), q3 = _mm512_and_si512(z4, mc);
                u[r][0] = _mm512_mask_add_epi8(q0, _mm512_test_epi8_mask(hv, _mm512_set1_epi8(1)), q0, b4);
                u[r][1] = _mm512_mask_add_epi8(q1, _mm512_test_epi8_mask(hv, _mm512_set1_epi8(2)), q1, b16);
                u[r][2] = _mm512_mask_add_epi8(q2, _mm512_test_epi8_mask(hv, _mm512_set1_epi8(4)), q2, b4);
                u[r][3] = _mm512_mask_add_epi8(q3, _mm512_test_epi8_mask(hv, _mm512_set1_epi8(8)), q3, b16);
            }
            #pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const int8_t *q = (const int8_t *)(xa + (size_t)c * ast) + 256 * sb;
                const int32_t *cv = (const int32_t *)(xa + (size_t)c * ast + nsb * 256) + 64 * sb;
                __m512i x[4], cr[4];
                #pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    x[k] = _mm512_loadu_si512(q + 64 * k);
                    cr[k] = _mm512_loadu_si512(cv + 16 * k);
                }
                #pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    /* dword sums of (code - 4) * x, the -4 from corr */
                    __m512i p02 = _mm512_packs_epi32(_mm512_dpbusd_epi32(cr[0], u[r][0], x[0]),
                                                     _mm512_dpbusd_epi32(cr[2], u[r][2], x[2]));
                    __m512i p13 = _mm512_packs_epi32(_mm512_dpbusd_epi32(cr[1], u[r][1], x[1]),
                                                     _mm512_dpbusd_epi32(cr[3], u[r][3], x[3]));
                    __m512i is = _mm512_dpwssd_epi32(_mm512_madd_epi16(p02, sv02[r]), p13, sv13[r]);
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_set1_ps(fdw[r][c][j]), acc[r][c]);
                }
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
    /* activation vector v holds 32-value sub-blocks A_v (bytes 0..31) and
     * A_v + 2 (32..63), A = 0, 1, 4, 5; pairs (0,1) and (2,3) */
    const __m512i i01 = KQ_IDX(0, 0, 2, 2, 1, 1, 3, 3), i23 = KQ_IDX(4, 4, 6, 6, 5, 5, 7, 7);
    for (int64_t sb = 0; sb < nsb; sb++) {
        __m512i u[4][4], sva[4], svb[4];
        __m128i mn[4];
        __m512 dw[4], dm[4];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const ds8b__blk_q5_k *b = (const ds8b__blk_q5_k *)(w + (size_t)r * wst) + sb;
            PF(b);
            PF((const uint8_t *)b + 64);
            PF((const uint8_t *)b + 128);
            uint32_t u0 = rd32(b->scales), u1 = rd32(b->scales + 4), u2 = rd32(b->scales + 8);
            uint64_t sc = (uint64_t)(u0 & 0x3f3f3f3fu) |
                          (uint64_t)((u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u)) << 32;
            uint64_t m = (uint64_t)(u1 & 0x3f3f3f3fu) |
                         (uint64_t)(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u)) << 32;
            __m512i s16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
            sva[r] = _mm512_permutexvar_epi16(i01, s16);
            svb[r] = _mm512_permutexvar_epi16(i23, s16);
            mn[r] = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m));
            __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128((int)rd32((const uint8_t *)&b->d)));
            dw[r] = _mm512_broadcastss_ps(dd);
            dm[r] = _mm512_broadcastss_ps(_mm_movehdup_ps(dd));
            /* fifth bit of sub-block j: bit j of qh; [qh, qh >> 2] puts the
             * bits of vector v's two sub-blocks at one position */
            __m256i h = _mm256_loadu_si256((const __m256i *)b->qh);
            __m512i hv = _mm512_inserti64x4(_mm512_castsi256_si512(h), _mm256_srli_epi16(h, 2), 1);
            #pragma GCC unroll 2
            for (int p = 0; p < 2; p++) {
                __m512i zq = _mm512_loadu_si512(b->qs + 64 * p);
                __m512i lo = _mm512_and_si512(zq, m0f), hi = _mm512_and_si512(_mm512_srli_epi16(zq, 4), m0f);
                __mmask64 klo = _mm512_test_epi8_mask(hv, _mm512_set1_epi8((char)(1 << (4 * p))));
                __mmask64 khi = _mm512_test_epi8_mask(hv, _mm512_set1_epi8((char)(2 << (4 * p))));
                u[r][2 * p] = _mm512_mask_add_epi8(lo, klo, lo, b16);
                u[r][2 * p + 1] = _mm512_mask_add_epi8(hi, khi, hi, b16);
            }
        }
        #pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const a_kq *a = (const a_kq *)(xa + (size_t)c * ast) + sb;
            __m512i x0 = _mm512_loadu_si512(a->qs), x1 = _mm512_loadu_si512(a->qs + 64);
            __m512i x2 = _mm512_loadu_si512(a->qs + 128), x3 = _mm512_loadu_si512(a->qs + 192);
            __m128i sums = _mm_loadu_si128((const __m128i *)a->sums);
            __m512 dx = _mm512_set1_ps(a->d);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i is = _mm512_madd_epi16(kq_pair_sums(u[r][0], x0, u[r][1], x1), sva[r]);
                is = _mm512_dpwssd_epi32(is, kq_pair_sums(u[r][2], x2, u[r][3], x3), svb[r]);
                __m128 ms = _mm_cvtepi32_ps(_mm_madd_epi16(sums, mn[r]));
                __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(is), dw[r]);
                t = _mm512_fnmadd_ps(_mm512_zextps128_ps512(ms), dm[r], t);
                acc[r][c] = _mm512_fmadd_ps(t, dx, acc[r][c]);
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
    set_kern(k, DS8B_T_Q2_K, mm_q2_k, q2_act_size, q2_act_quant);
    set_kern(k, DS8B_T_Q3_K, mm_q3_k, q3_act_size, q3_act_quant);
    set_kern(k, DS8B_T_Q5_K, mm_q5_k, kq_act_size, nib_act_quant);
}
