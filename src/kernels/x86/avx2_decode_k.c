/*
 * x86/avx2_decode_k.c -- row-group decode kernels of the K-quants (Q4_K,
 * Q5_K, Q6_K; records in packing.h), AVX2 + FMA + F16C (no VNNI). Built
 * with the AVX2 flags (the file name contains "avx2"); registered by
 * ds8b__kops_fill_decode_avx2.
 *
 * A group of 16 rows is two halves of 8 (one ymm holds dword k of 8 rows,
 * 32 bytes into each 64-byte [k][16] slab). Products go through vpmaddubsw
 * (unsigned code x signed activation, pairs summed in int16); the int16
 * partial sums of a sub-block are added in int16 only as far as they
 * cannot saturate, then one vpmaddwd per partial multiplies by the row's
 * scale (duplicated into both int16 halves of its dword) and widens:
 *   Q4_K: 8 vpmaddubsw per 32-value sub-block, 16 products of a 4-bit
 *         code and |x| <= 127 per lane: <= 30480;
 *   Q5_K: 5-bit codes, two partials of 4 vpmaddubsw: <= 31496 each;
 *   Q6_K: 6-bit codes, two partials of 2 vpmaddubsw per 16-value
 *         sub-block: <= 32004 each.
 * Mins and Q6_K's -32 offset: vpmaddwd of the rows' int16 mins/scales
 * against the activation's int16 block sums. The integer sums are the
 * AVX-512 kernels' and ds8b__mmg_ref's exactly, and the float steps per
 * super-block are the same convert / multiply / FMA sequence: results are
 * bit-identical to both.
 */
#include "kernels/kern_impl.h"
#include "kernels/packing.h"
#include "kernels/x86/grp_cols.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

#define PF(p, off) _mm_prefetch((const char *)(p) + ds8b__grp_pf + (off), _MM_HINT_T0)

AI __m256i bc32(const int8_t *q, int k) {
    int32_t v;
    memcpy(&v, q + k, 4);
    return _mm256_set1_epi32(v);
}
AI __m256i ld(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
AI __m256i bsd(const ds8b__blk_q8_k *a, int j) {
    int32_t v;
    memcpy(&v, a->bsums + 2 * j, 4);
    return _mm256_set1_epi32(v);
}
/* vpshufb control: byte j of every dword into both 16-bit halves */
AI __m256i pick16(int j) {
    return _mm256_broadcastsi128_si256(_mm_setr_epi8((char)j, -1, (char)j, -1, (char)(4 + j), -1, (char)(4 + j), -1,
                                                     (char)(8 + j), -1, (char)(8 + j), -1, (char)(12 + j), -1,
                                                     (char)(12 + j), -1));
}
/* vpshufb control: int16 half e (0, 1) of every dword into both halves */
AI __m256i dup16(int e) {
    const char a = (char)(2 * e), b = (char)(2 * e + 1);
    return _mm256_broadcastsi128_si256(_mm_setr_epi8(a, b, a, b, (char)(4 + a), (char)(4 + b), (char)(4 + a),
                                                     (char)(4 + b), (char)(8 + a), (char)(8 + b), (char)(8 + a),
                                                     (char)(8 + b), (char)(12 + a), (char)(12 + b), (char)(12 + a),
                                                     (char)(12 + b)));
}

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

/* Q4_K (five == 0) / Q5_K (five == 1): half hf of the record at o; returns
 * the integer sums in *is, *ms. */
AI void k45_half(const uint8_t *o, int hf, const ds8b__blk_q8_k *a, int five, __m256i *is, __m256i *ms) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m6 = _mm256_set1_epi8(0x3F), m30 = _mm256_set1_epi8(0x30),
                  b4 = _mm256_set1_epi8(0x10);
    const int hb = 32 * hf;
    __m256i A = ld(o + 64 + hb), B = ld(o + 128 + hb), C = ld(o + 192 + hb);
    __m256i S[2], M[2];
    S[0] = _mm256_and_si256(A, m6);
    M[0] = _mm256_and_si256(B, m6);
    S[1] = _mm256_or_si256(_mm256_and_si256(C, m4), _mm256_and_si256(_mm256_srli_epi32(A, 2), m30));
    M[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(C, 4), m4), _mm256_and_si256(_mm256_srli_epi32(B, 2), m30));
    const int8_t *x = a->qs;
    const uint8_t *w = o + 256 + hb, *qh = o + 2304 + hb;
    __m256i isum = _mm256_setzero_si256(), msum = _mm256_setzero_si256();
    #pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        const int j0 = (2 * p) & 3, j1 = (2 * p + 1) & 3;
        const __m256i s0 = _mm256_shuffle_epi8(S[p >> 1], pick16(j0)), s1 = _mm256_shuffle_epi8(S[p >> 1], pick16(j1));
        if (!five) {
            __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
            #pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                __m256i v = ld(w + 64 * (8 * p + i));
                lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(_mm256_and_si256(v, m4), bc32(x, 64 * p + 4 * i)));
                hi = _mm256_add_epi16(
                    hi, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), bc32(x, 64 * p + 32 + 4 * i)));
            }
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(lo, s0));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(hi, s1));
        } else {
            #pragma GCC unroll 2
            for (int q2 = 0; q2 < 2; q2++) {
                __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
                #pragma GCC unroll 4
                for (int ii = 0; ii < 4; ii++) {
                    const int i = 4 * q2 + ii;
                    __m256i v = ld(w + 64 * (8 * p + i)), h = ld(qh + 64 * i), hl, hh;
                    switch (p) {
                    case 0: hl = _mm256_slli_epi32(h, 4); hh = _mm256_slli_epi32(h, 3); break;
                    case 1: hl = _mm256_slli_epi32(h, 2); hh = _mm256_slli_epi32(h, 1); break;
                    case 2: hl = h; hh = _mm256_srli_epi32(h, 1); break;
                    default: hl = _mm256_srli_epi32(h, 2); hh = _mm256_srli_epi32(h, 3); break;
                    }
                    __m256i vl = _mm256_or_si256(_mm256_and_si256(v, m4), _mm256_and_si256(hl, b4));
                    __m256i vh = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), _mm256_and_si256(hh, b4));
                    lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(vl, bc32(x, 64 * p + 4 * i)));
                    hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(vh, bc32(x, 64 * p + 32 + 4 * i)));
                }
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(lo, s0));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(hi, s1));
            }
        }
        msum = _mm256_add_epi32(msum, _mm256_madd_epi16(_mm256_shuffle_epi8(M[p >> 1], pick16(j0)), bsd(a, 2 * p)));
        msum = _mm256_add_epi32(msum, _mm256_madd_epi16(_mm256_shuffle_epi8(M[p >> 1], pick16(j1)), bsd(a, 2 * p + 1)));
    }
    *is = isum;
    *ms = msum;
}

typedef struct { __m256 v[2]; } acc2; /* rows 0..7, 8..15 */
AI acc2 zero2(void) { return (acc2){{_mm256_setzero_ps(), _mm256_setzero_ps()}}; }
AI void store2(float *y, acc2 acc, int nr) { store_nr(y, acc.v[0], acc.v[1], nr); }

AI acc2 k45_step(const uint8_t *o, const ds8b__blk_q8_k *a, acc2 acc, int five) {
    const __m256 dx = _mm256_set1_ps(a->d);
    for (int hf = 0; hf < 2; hf++) {
        __m256i isum, msum;
        k45_half(o, hf, a, five, &isum, &msum);
        __m256 dw = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16 * hf))), dx);
        __m256 dm = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 32 + 16 * hf))), dx);
        acc.v[hf] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), dw, acc.v[hf]);
        acc.v[hf] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), dm, acc.v[hf]);
    }
    return acc;
}
AI acc2 q4_k_step(const uint8_t *o, const ds8b__blk_q8_k *a, acc2 acc) { return k45_step(o, a, acc, 0); }
AI acc2 q5_k_step(const uint8_t *o, const ds8b__blk_q8_k *a, acc2 acc) { return k45_step(o, a, acc, 1); }
DEF_GRP(mmg_q4_k, ds8b__blk_q8_k, acc2, zero2, store2, q4_k_step, 2304, DS8B_GRP_UNIT256)
DEF_GRP(mmg_q5_k, ds8b__blk_q8_k, acc2, zero2, store2, q5_k_step, 2816, DS8B_GRP_UNIT256)

/* Q6_K: half hf of the record at o; returns the integer sum. */
AI __m256i q6_half(const uint8_t *o, int hf, const ds8b__blk_q8_k *a) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const int hb = 32 * hf;
    const int8_t *x = a->qs;
    const uint8_t *ql = o + 288 + hb, *qh = o + 2336 + hb;
    __m256i P[8], isum = _mm256_setzero_si256(), osum = _mm256_setzero_si256();
    #pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        P[p] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(o + 32 + 32 * p + 16 * hf)));
        osum = _mm256_add_epi32(osum, _mm256_madd_epi16(P[p], bsd(a, p)));
    }
    #pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
        #pragma GCC unroll 2
        for (int g4 = 0; g4 < 2; g4++) {
            const __m256i ctl = dup16(g4);
            #pragma GCC unroll 2
            for (int q2 = 0; q2 < 2; q2++) {
                __m256i u[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                                _mm256_setzero_si256()};
                #pragma GCC unroll 2
                for (int i2 = 0; i2 < 2; i2++) {
                    const int i = 4 * g4 + 2 * q2 + i2;
                    __m256i l0 = ld(ql + 64 * (16 * h + i)), l1 = ld(ql + 64 * (16 * h + 8 + i));
                    __m256i hb2 = ld(qh + 64 * (8 * h + i));
                    __m256i v0 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi32(hb2, 4), m30));
                    __m256i v1 = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi32(hb2, 2), m30));
                    __m256i v2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(l0, 4), m4), _mm256_and_si256(hb2, m30));
                    __m256i v3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(l1, 4), m4),
                                                 _mm256_and_si256(_mm256_srli_epi32(hb2, 2), m30));
                    u[0] = _mm256_add_epi16(u[0], _mm256_maddubs_epi16(v0, bc32(x, 128 * h + 4 * i)));
                    u[1] = _mm256_add_epi16(u[1], _mm256_maddubs_epi16(v1, bc32(x, 128 * h + 32 + 4 * i)));
                    u[2] = _mm256_add_epi16(u[2], _mm256_maddubs_epi16(v2, bc32(x, 128 * h + 64 + 4 * i)));
                    u[3] = _mm256_add_epi16(u[3], _mm256_maddubs_epi16(v3, bc32(x, 128 * h + 96 + 4 * i)));
                }
                #pragma GCC unroll 4
                for (int k = 0; k < 4; k++)
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(u[k], _mm256_shuffle_epi8(P[4 * h + k], ctl)));
            }
        }
    return _mm256_sub_epi32(isum, _mm256_slli_epi32(osum, 5));
}

AI acc2 q6_k_step(const uint8_t *o, const ds8b__blk_q8_k *a, acc2 acc) {
    const __m256 dx = _mm256_set1_ps(a->d);
    for (int hf = 0; hf < 2; hf++) {
        __m256i isum = q6_half(o, hf, a);
        __m256 dw = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16 * hf))), dx);
        acc.v[hf] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), dw, acc.v[hf]);
    }
    return acc;
}
DEF_GRP(mmg_q6_k, ds8b__blk_q8_k, acc2, zero2, store2, q6_k_step, 3360, DS8B_GRP_UNIT256)

/* Q2_K: the AVX-512 record and sums in halves of 8 rows; the 4
 * vpmaddubsw of a sub-block add in int16 (8 products of 2-bit codes:
 * <= 3048), then vpmaddwd against the zero-extended scale. */
AI acc2 q2_k_step(const uint8_t *o, const ds8b__blk_q8_k *a, acc2 acc) {
    const __m256i m2 = _mm256_set1_epi8(3), m4d = _mm256_set1_epi32(0xF);
    const int8_t *x = a->qs;
    const __m256 dx = _mm256_set1_ps(a->d);
    for (int hf = 0; hf < 2; hf++) {
        __m256i isum = _mm256_setzero_si256(), msum = _mm256_setzero_si256();
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++)
            #pragma GCC unroll 2
            for (int half = 0; half < 2; half++) {
                __m256i t[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                                _mm256_setzero_si256()};
                #pragma GCC unroll 4
                for (int kk = 0; kk < 4; kk++) {
                    __m256i v = ld(o + 320 + 64 * (8 * h + 4 * half + kk) + 32 * hf);
                    #pragma GCC unroll 4
                    for (int pl = 0; pl < 4; pl++)
                        t[pl] = _mm256_add_epi16(
                            t[pl], _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi32(v, 2 * pl), m2),
                                                        bc32(x, 128 * h + 32 * pl + 16 * half + 4 * kk)));
                }
                #pragma GCC unroll 4
                for (int pl = 0; pl < 4; pl++) {
                    const int sb = 8 * h + 2 * pl + half;
                    __m256i sm = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(o + 64 + 16 * sb + 8 * hf)));
                    __m256i sc = _mm256_and_si256(sm, m4d);
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(t[pl], _mm256_or_si256(sc, _mm256_slli_epi32(sc, 16))));
                    msum = _mm256_add_epi32(
                        msum, _mm256_madd_epi16(_mm256_srli_epi32(sm, 4), _mm256_set1_epi16(a->bsums[sb])));
                }
            }
        __m256 dw = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16 * hf))), dx);
        __m256 dm = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 32 + 16 * hf))), dx);
        acc.v[hf] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), dw, acc.v[hf]);
        acc.v[hf] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), dm, acc.v[hf]);
    }
    return acc;
}
DEF_GRP(mmg_q2_k, ds8b__blk_q8_k, acc2, zero2, store2, q2_k_step, 1344, DS8B_GRP_UNIT256)

/* Q3_K: the AVX-512 record and sums in halves of 8 rows; 4 vpmaddubsw of
 * unsigned codes 0..7 per sub-block add in int16 (<= 7112), then
 * vpmaddwd against the scale duplicated into both int16 halves. */
AI acc2 q3_k_step(const uint8_t *o, const ds8b__blk_q8_k *a, acc2 acc) {
    const __m256i m2 = _mm256_set1_epi8(3), b2 = _mm256_set1_epi8(4), m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const int8_t *x = a->qs;
    const __m256 dx = _mm256_set1_ps(a->d);
    for (int hf = 0; hf < 2; hf++) {
        const int hb0 = 32 * hf;
        __m256i D0 = ld(o + 32 + hb0), D1 = ld(o + 96 + hb0), D2 = ld(o + 160 + hb0), U[4];
        U[0] = _mm256_or_si256(_mm256_and_si256(D0, m4), _mm256_and_si256(_mm256_slli_epi32(D2, 4), m30));
        U[1] = _mm256_or_si256(_mm256_and_si256(D1, m4), _mm256_and_si256(_mm256_slli_epi32(D2, 2), m30));
        U[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(D0, 4), m4), _mm256_and_si256(D2, m30));
        U[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(D1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi32(D2, 2), m30));
        __m256i isum = _mm256_setzero_si256(), osum = _mm256_setzero_si256();
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++)
            #pragma GCC unroll 2
            for (int half = 0; half < 2; half++) {
                __m256i t[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                                _mm256_setzero_si256()};
                #pragma GCC unroll 4
                for (int kk = 0; kk < 4; kk++) {
                    __m256i v = ld(o + 736 + 64 * (8 * h + 4 * half + kk) + hb0);
                    __m256i hm = ld(o + 224 + 64 * (4 * half + kk) + hb0);
                    #pragma GCC unroll 4
                    for (int pl = 0; pl < 4; pl++) {
                        const int sh = 4 * h + pl - 2;
                        __m256i hb = sh > 0 ? _mm256_srli_epi32(hm, sh) : sh < 0 ? _mm256_slli_epi32(hm, -sh) : hm;
                        __m256i u = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(v, 2 * pl), m2),
                                                    _mm256_and_si256(hb, b2));
                        t[pl] = _mm256_add_epi16(
                            t[pl], _mm256_maddubs_epi16(u, bc32(x, 128 * h + 32 * pl + 16 * half + 4 * kk)));
                    }
                }
                #pragma GCC unroll 4
                for (int pl = 0; pl < 4; pl++) {
                    const int sb = 8 * h + 2 * pl + half;
                    __m256i sc = _mm256_sub_epi16(_mm256_shuffle_epi8(U[sb >> 2], pick16(sb & 3)),
                                                  _mm256_set1_epi16(32));
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(t[pl], sc));
                    osum = _mm256_add_epi32(
                        osum, _mm256_madd_epi16(sc, _mm256_set1_epi32((int32_t)(uint16_t)a->bsums[sb])));
                }
            }
        isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(osum, 2));
        __m256 dw = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16 * hf))), dx);
        acc.v[hf] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), dw, acc.v[hf]);
    }
    return acc;
}
DEF_GRP(mmg_q3_k, ds8b__blk_q8_k, acc2, zero2, store2, q3_k_step, 1760, DS8B_GRP_UNIT256)

void ds8b__kops_fill_decode_k_avx2(ds8b__kops *k) {
    k->mmg[DS8B_T_Q4_K] = mmg_q4_k;
    k->mmg[DS8B_T_Q5_K] = mmg_q5_k;
    k->mmg[DS8B_T_Q6_K] = mmg_q6_k;
    k->mmg[DS8B_T_Q2_K] = mmg_q2_k;
    k->mmg[DS8B_T_Q3_K] = mmg_q3_k;
}
