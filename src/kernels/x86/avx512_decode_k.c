/*
 * x86/avx512_decode_k.c -- row-group decode kernels of the K-quants
 * (Q4_K, Q5_K, Q6_K; records in packing.h), AVX-512 F/BW/VL + VNNI. Built
 * with the AVX-512 flags (the file name contains "avx512"); registered by
 * ds8b__kops_fill_decode_avx512.
 *
 * Activations are ds8b__blk_q8_k (one float scale per 256 values, int8
 * codes, int16 sums per 16). Per super-block and group of 16 rows:
 *   - each code dword k of the 16 rows is one zmm load; vpdpbusd against
 *     the broadcast activation dword adds 4 products to every row's
 *     sub-block sum (Q4_K/Q5_K: a 32-value sub-block per nibble plane;
 *     Q6_K: a 16-value sub-block per 2-bit plane);
 *   - the sub-block sums are multiplied by the 16 rows' integer scales
 *     (vpmulld) and added: the exact integer isum of ds8b__mmg_ref;
 *   - mins (Q4_K/Q5_K) and Q6_K's -32 offset: vpdpwssd of the rows' int16
 *     mins/scales against the activation's int16 block sums;
 *   - then two f16 converts (d, dmin), two multiplies by the activation
 *     scale and one or two FMAs for all 16 rows, in ds8b__mmg_ref's order.
 * Integer sums are exact and the float sequence per row is the
 * reference's, so results are bit-identical to it, to the AVX2 kernels and
 * across tilings and thread counts.
 *
 * Q4_K high nibbles are taken as v & 0xF0 (16 times the code, one op
 * instead of two) and the sub-block sum shifted right by 4 afterwards:
 * exact, every product being a multiple of 16 (|sum| <= 16 * 60960).
 */
#include "kernels/kern_impl.h"
#include "kernels/packing.h"
#include "kernels/x86/grp_cols.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

#define PF(p, off) _mm_prefetch((const char *)(p) + ds8b__grp_pf + (off), _MM_HINT_T0)

AI __m512i bc32(const int8_t *q, int k) {
    int32_t v;
    memcpy(&v, q + k, 4);
    return _mm512_set1_epi32(v);
}
AI __m512i ld(const uint8_t *p) { return _mm512_loadu_si512(p); }
/* dword j of the int16 block sums: (bsums[2j], bsums[2j+1]) */
AI __m512i bsd(const ds8b__blk_q8_k *a, int j) {
    int32_t v;
    memcpy(&v, a->bsums + 2 * j, 4);
    return _mm512_set1_epi32(v);
}
/* vpshufb controls: byte j of every dword, zero-extended to 32 bits
 * (pick32) or to both 16-bit halves (pick16) */
AI __m512i pick32(int j) {
    return _mm512_broadcast_i32x4(_mm_setr_epi8((char)j, -1, -1, -1, (char)(4 + j), -1, -1, -1, (char)(8 + j), -1, -1,
                                                -1, (char)(12 + j), -1, -1, -1));
}
AI __m512i pick16(int j) {
    return _mm512_broadcast_i32x4(_mm_setr_epi8((char)j, -1, (char)j, -1, (char)(4 + j), -1, (char)(4 + j), -1,
                                                (char)(8 + j), -1, (char)(8 + j), -1, (char)(12 + j), -1,
                                                (char)(12 + j), -1));
}

/* The 16 rows' 6-bit scales and mins of a Q4_K/Q5_K record as bytes:
 * s[0] = sc0..3, s[1] = sc4..7, m[0] = min0..3, m[1] = min4..7 (byte j of
 * each row's dword). */
AI void k4_scales(const uint8_t *o, __m512i s[2], __m512i m[2]) {
    const __m512i m6 = _mm512_set1_epi8(0x3F), m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    __m512i A = ld(o + 64), B = ld(o + 128), C = ld(o + 192);
    s[0] = _mm512_and_si512(A, m6);
    m[0] = _mm512_and_si512(B, m6);
    s[1] = _mm512_or_si512(_mm512_and_si512(C, m4), _mm512_and_si512(_mm512_srli_epi32(A, 2), m30));
    m[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(C, 4), m4),
                           _mm512_and_si512(_mm512_srli_epi32(B, 2), m30));
}

/* Q4_K (five == 0) and Q5_K (five == 1): one record at o against one
 * activation block; adds the integer sums into *is, *ms. */
AI void k45_block(const uint8_t *o, const ds8b__blk_q8_k *a, int five, __m512i *is, __m512i *ms) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
    __m512i S[2], M[2];
    k4_scales(o, S, M);
    const int8_t *x = a->qs;
    const uint8_t *w = o + 256, *qh = o + 2304;
    __m512i isum = *is, msum = *ms;
    #pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
        #pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            __m512i v = ld(w + 64 * (8 * p + i));
            if (five) {
                __m512i h = ld(qh + 64 * i), hl, hh;
                /* bit 2p (low-nibble value) and 2p+1 (high) of each byte to bit 4 */
                switch (p) {
                case 0: hl = _mm512_slli_epi32(h, 4); hh = _mm512_slli_epi32(h, 3); break;
                case 1: hl = _mm512_slli_epi32(h, 2); hh = _mm512_slli_epi32(h, 1); break;
                case 2: hl = h; hh = _mm512_srli_epi32(h, 1); break;
                default: hl = _mm512_srli_epi32(h, 2); hh = _mm512_srli_epi32(h, 3); break;
                }
                __m512i vl = _mm512_or_si512(_mm512_and_si512(v, m4), _mm512_and_si512(hl, b4));
                __m512i vh = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), _mm512_and_si512(hh, b4));
                lo = _mm512_dpbusd_epi32(lo, vl, bc32(x, 64 * p + 4 * i));
                hi = _mm512_dpbusd_epi32(hi, vh, bc32(x, 64 * p + 32 + 4 * i));
            } else {
                lo = _mm512_dpbusd_epi32(lo, _mm512_and_si512(v, m4), bc32(x, 64 * p + 4 * i));
                hi = _mm512_dpbusd_epi32(hi, _mm512_andnot_si512(m4, v), bc32(x, 64 * p + 32 + 4 * i));
            }
        }
        if (!five) hi = _mm512_srai_epi32(hi, 4);
        const __m512i sc = S[p >> 1], mn = M[p >> 1];
        const int j0 = (2 * p) & 3, j1 = (2 * p + 1) & 3;
        isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(lo, _mm512_shuffle_epi8(sc, pick32(j0))));
        isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(hi, _mm512_shuffle_epi8(sc, pick32(j1))));
        msum = _mm512_dpwssd_epi32(msum, _mm512_shuffle_epi8(mn, pick16(j0)), bsd(a, 2 * p));
        msum = _mm512_dpwssd_epi32(msum, _mm512_shuffle_epi8(mn, pick16(j1)), bsd(a, 2 * p + 1));
    }
    *is = isum;
    *ms = msum;
}

AI __m512 zero512(void) { return _mm512_setzero_ps(); }
AI void store512(float *y, __m512 acc, int nr) { _mm512_mask_storeu_ps(y, (__mmask16)((1u << nr) - 1u), acc); }

AI __m512 k45_step(const uint8_t *o, const ds8b__blk_q8_k *a, __m512 acc, int five) {
    __m512i isum = _mm512_setzero_si512(), msum = _mm512_setzero_si512();
    k45_block(o, a, five, &isum, &msum);
    const __m512 dx = _mm512_set1_ps(a->d);
    __m512 dw = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)o)), dx);
    __m512 dm = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(o + 32))), dx);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dw, acc);
    return _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), dm, acc);
}
AI __m512 q4_k_step(const uint8_t *o, const ds8b__blk_q8_k *a, __m512 acc) { return k45_step(o, a, acc, 0); }
AI __m512 q5_k_step(const uint8_t *o, const ds8b__blk_q8_k *a, __m512 acc) { return k45_step(o, a, acc, 1); }
DEF_GRP(mmg_q4_k, ds8b__blk_q8_k, __m512, zero512, store512, q4_k_step, 2304, DS8B_GRP_UNIT256)
DEF_GRP(mmg_q5_k, ds8b__blk_q8_k, __m512, zero512, store512, q5_k_step, 2816, DS8B_GRP_UNIT256)

/* Q6_K: record d[16] | scale pairs [8][16] | ql [32][16] | qh [16][16]. */
AI __m512 q6_k_step(const uint8_t *o, const ds8b__blk_q8_k *a, __m512 acc) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const int8_t *x = a->qs;
    const uint8_t *ql = o + 288, *qh = o + 2336;
    /* scale pairs as int16: dword = (sc[2p], sc[2p+1]) per row */
    __m512i P[8];
    __m512i isum = _mm512_setzero_si512(), osum = _mm512_setzero_si512();
    #pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        P[p] = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(o + 32 + 32 * p)));
        osum = _mm512_dpwssd_epi32(osum, P[p], bsd(a, p));
    }
    #pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
        #pragma GCC unroll 2
        for (int g4 = 0; g4 < 2; g4++) {
            __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
            #pragma GCC unroll 4
            for (int ii = 0; ii < 4; ii++) {
                const int i = 4 * g4 + ii;
                __m512i l0 = ld(ql + 64 * (16 * h + i)), l1 = ld(ql + 64 * (16 * h + 8 + i));
                __m512i hb = ld(qh + 64 * (8 * h + i));
                __m512i v0 = _mm512_or_si512(_mm512_and_si512(l0, m4), _mm512_and_si512(_mm512_slli_epi32(hb, 4), m30));
                __m512i v1 = _mm512_or_si512(_mm512_and_si512(l1, m4), _mm512_and_si512(_mm512_slli_epi32(hb, 2), m30));
                __m512i v2 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(l0, 4), m4), _mm512_and_si512(hb, m30));
                __m512i v3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(l1, 4), m4),
                                             _mm512_and_si512(_mm512_srli_epi32(hb, 2), m30));
                s0 = _mm512_dpbusd_epi32(s0, v0, bc32(x, 128 * h + 4 * i));
                s1 = _mm512_dpbusd_epi32(s1, v1, bc32(x, 128 * h + 32 + 4 * i));
                s2 = _mm512_dpbusd_epi32(s2, v2, bc32(x, 128 * h + 64 + 4 * i));
                s3 = _mm512_dpbusd_epi32(s3, v3, bc32(x, 128 * h + 96 + 4 * i));
            }
            /* sub-block 8h + 2k + g4 has scale pair p = 4h + k, half g4 */
            __m512i s[4] = {s0, s1, s2, s3};
            #pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m512i pp = P[4 * h + k];
                __m512i sc = g4 ? _mm512_srai_epi32(pp, 16) : _mm512_srai_epi32(_mm512_slli_epi32(pp, 16), 16);
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(s[k], sc));
            }
        }
    isum = _mm512_sub_epi32(isum, _mm512_slli_epi32(osum, 5));
    __m512 dw = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)o)), _mm512_set1_ps(a->d));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dw, acc);
    return acc;
}
DEF_GRP(mmg_q6_k, ds8b__blk_q8_k, __m512, zero512, store512, q6_k_step, 3360, DS8B_GRP_UNIT256)

/* Q2_K: record d[16] | dmin[16] | scale bytes [16][16] | q[16][16].
 * Sub-block s = 8h + 2pl + half takes plane pl (bits 2pl, 2pl+1) of code
 * dwords 8h + 4half .. +3; its sum (|t| <= 16*3*127) fits int16, so
 * vpmaddwd against the zero-extended 4-bit scale multiplies it (and the
 * 4-bit min against the int16 block sum). */
AI __m512 q2_k_step(const uint8_t *o, const ds8b__blk_q8_k *a, __m512 acc) {
    const __m512i m2 = _mm512_set1_epi8(3), m4d = _mm512_set1_epi32(0xF);
    const int8_t *x = a->qs;
    __m512i isum = _mm512_setzero_si512(), msum = _mm512_setzero_si512();
    #pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
        #pragma GCC unroll 2
        for (int half = 0; half < 2; half++) {
            __m512i t[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                            _mm512_setzero_si512()};
            #pragma GCC unroll 4
            for (int kk = 0; kk < 4; kk++) {
                __m512i v = ld(o + 320 + 64 * (8 * h + 4 * half + kk));
                #pragma GCC unroll 4
                for (int pl = 0; pl < 4; pl++)
                    t[pl] = _mm512_dpbusd_epi32(t[pl], _mm512_and_si512(_mm512_srli_epi32(v, 2 * pl), m2),
                                                bc32(x, 128 * h + 32 * pl + 16 * half + 4 * kk));
            }
            #pragma GCC unroll 4
            for (int pl = 0; pl < 4; pl++) {
                const int sb = 8 * h + 2 * pl + half;
                __m512i sm = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(o + 64 + 16 * sb)));
                isum = _mm512_add_epi32(isum, _mm512_madd_epi16(t[pl], _mm512_and_si512(sm, m4d)));
                msum = _mm512_add_epi32(
                    msum, _mm512_madd_epi16(_mm512_srli_epi32(sm, 4), _mm512_set1_epi16(a->bsums[sb])));
            }
        }
    const __m512 dx = _mm512_set1_ps(a->d);
    __m512 dw = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)o)), dx);
    __m512 dm = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(o + 32))), dx);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dw, acc);
    acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), dm, acc);
    return acc;
}
DEF_GRP(mmg_q2_k, ds8b__blk_q8_k, __m512, zero512, store512, q2_k_step, 1344, DS8B_GRP_UNIT256)

/* The 16 rows' Q3_K scales (6-bit, stored +32) as 4 byte vectors: byte j
 * of u[i] = scale 4i + j + 32 (the GGUF 12-byte packing: low nibbles in
 * bytes 0..7, high 2-bit pairs in bytes 8..11). */
AI void k3_scales(const uint8_t *o, __m512i u[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    __m512i D0 = ld(o + 32), D1 = ld(o + 96), D2 = ld(o + 160);
    u[0] = _mm512_or_si512(_mm512_and_si512(D0, m4), _mm512_and_si512(_mm512_slli_epi32(D2, 4), m30));
    u[1] = _mm512_or_si512(_mm512_and_si512(D1, m4), _mm512_and_si512(_mm512_slli_epi32(D2, 2), m30));
    u[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(D0, 4), m4), _mm512_and_si512(D2, m30));
    u[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(D1, 4), m4),
                           _mm512_and_si512(_mm512_srli_epi32(D2, 2), m30));
}

/* Q3_K: record d[16] | sc[3][16] | hm[8][16] | q[16][16]. Codes are taken
 * unsigned, u = 2 low bits + 4 * hmask bit (0..7), and the -4 is folded
 * in as -4 * sum(sc * bsum). A sub-block sum (|t| <= 16*7*127) fits int16,
 * so vpmaddwd against (sc, 0) multiplies it exactly. */
AI __m512 q3_k_step(const uint8_t *o, const ds8b__blk_q8_k *a, __m512 acc) {
    const __m512i m2 = _mm512_set1_epi8(3), b2 = _mm512_set1_epi8(4), k32 = _mm512_set1_epi32(32);
    const int8_t *x = a->qs;
    __m512i U[4];
    k3_scales(o, U);
    __m512i isum = _mm512_setzero_si512(), osum = _mm512_setzero_si512();
    #pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
        #pragma GCC unroll 2
        for (int half = 0; half < 2; half++) {
            __m512i t[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                            _mm512_setzero_si512()};
            #pragma GCC unroll 4
            for (int kk = 0; kk < 4; kk++) {
                __m512i v = ld(o + 736 + 64 * (8 * h + 4 * half + kk));
                __m512i hm = ld(o + 224 + 64 * (4 * half + kk));
                #pragma GCC unroll 4
                for (int pl = 0; pl < 4; pl++) {
                    const int sh = 4 * h + pl - 2; /* hmask bit 4h + pl to bit 2 */
                    __m512i hb = sh > 0 ? _mm512_srli_epi32(hm, sh) : sh < 0 ? _mm512_slli_epi32(hm, -sh) : hm;
                    __m512i u = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v, 2 * pl), m2),
                                                _mm512_and_si512(hb, b2));
                    t[pl] = _mm512_dpbusd_epi32(t[pl], u, bc32(x, 128 * h + 32 * pl + 16 * half + 4 * kk));
                }
            }
            #pragma GCC unroll 4
            for (int pl = 0; pl < 4; pl++) {
                const int sb = 8 * h + 2 * pl + half;
                /* (sc, 0) per dword: the scale byte zero-extended, minus 32 in the low int16 */
                __m512i sc = _mm512_sub_epi16(_mm512_shuffle_epi8(U[sb >> 2], pick32(sb & 3)), k32);
                isum = _mm512_add_epi32(isum, _mm512_madd_epi16(t[pl], sc));
                osum = _mm512_add_epi32(osum, _mm512_madd_epi16(sc, _mm512_set1_epi16(a->bsums[sb])));
            }
        }
    isum = _mm512_sub_epi32(isum, _mm512_slli_epi32(osum, 2));
    __m512 dw = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)o)), _mm512_set1_ps(a->d));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dw, acc);
    return acc;
}
DEF_GRP(mmg_q3_k, ds8b__blk_q8_k, __m512, zero512, store512, q3_k_step, 1760, DS8B_GRP_UNIT256)

void ds8b__kops_fill_decode_k_avx512(ds8b__kops *k) {
    k->mmg[DS8B_T_Q4_K] = mmg_q4_k;
    k->mmg[DS8B_T_Q5_K] = mmg_q5_k;
    k->mmg[DS8B_T_Q6_K] = mmg_q6_k;
    k->mmg[DS8B_T_Q2_K] = mmg_q2_k;
    k->mmg[DS8B_T_Q3_K] = mmg_q3_k;
}
