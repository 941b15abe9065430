/*
 * x86/avx512_attn.c -- the attention primitives (kern_impl.h,
 * ds8b__attn_ops) in AVX-512 F/BW/VL/DQ. Built with the AVX-512 flags (the
 * file name contains "avx512"); only called when cpuid reports them.
 *
 * scores: a register tile of 4 query rows x 4 positions = 16 zmm
 *   accumulators; per 16-value chunk of the head, 4 Q loads and 4 K loads
 *   feed 16 FMAs (each K row load serves the 4 rows: the GQA heads of one
 *   KV head, or tokens of a prompt tile). The 16 accumulators are then
 *   reduced by one transpose-and-add tree (45 instructions) into one zmm
 *   of the 16 scores; every score goes through the same tree, so its
 *   value depends on ld and its own data only.
 * softmax: 32 lanes in two zmm, exp2 by range reduction to [-1/2, 1/2],
 *   a degree-7 polynomial and vscalefps.
 * pv: a register tile of 4 rows x 4 chunks (64 values) = 16 accumulators;
 *   per position 4 V loads and 4 broadcasts of P feed 16 FMAs.
 */
#include "kernels/kernels.h"
#include "kernels/kern_impl.h"

#include <immintrin.h>
#include <math.h>

#define AI static inline __attribute__((always_inline))
#define B DS8B_ATT_BLOCK

static void load512(int type, const uint8_t *src, size_t stride, int64_t off, int64_t hd, int64_t nc, float *dst,
                    int64_t ld) {
    if (type == DS8B_KV_Q8_0 && (off % 32 || hd % 32)) {
        ds8b__attn_load_ref(type, src, stride, off, hd, nc, dst, ld);
        return;
    }
    int64_t nc4 = (nc + 3) & ~(int64_t)3;
    const __m512 z = _mm512_setzero_ps();
    int64_t esz = type == DS8B_KV_F32 ? 4 : 2, pf_off, pf_len;
    if (type == DS8B_KV_Q8_0) {
        pf_off = off / 32 * 34;
        pf_len = hd / 32 * 34;
    } else {
        pf_off = off * esz;
        pf_len = hd * esz;
    }
    pf_len += pf_off & 63; /* from the first line the segment touches */
    pf_off &= ~(int64_t)63;
    for (int64_t c = 0; c < nc4; c++) {
        float *d = dst + c * ld;
        if (c >= nc) {
            for (int64_t i = 0; i < ld; i += 16) _mm512_store_ps(d + i, z);
            continue;
        }
        const uint8_t *row = src + (size_t)c * stride;
        /* the same row of the next block: the segment's cache lines, a
         * block (DS8B_ATT_BLOCK rows) ahead; a prefetch past the cache's
         * end is a hint and never faults */
        {
            const char *nx = (const char *)(row + (size_t)B * stride) + pf_off;
            for (int64_t o = 0; o < pf_len; o += 64) _mm_prefetch(nx + o, _MM_HINT_T0);
        }
        if (type == DS8B_KV_F16) {
            const uint16_t *h = (const uint16_t *)row + off;
            int64_t i = 0;
            for (; i + 16 <= hd; i += 16)
                _mm512_store_ps(d + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
            if (i < ld) {
                __mmask16 k = (__mmask16)(hd - i >= 16 ? 0xFFFF : (1u << (hd - i)) - 1u);
                __m256i x = _mm256_maskz_loadu_epi16(k, h + i);
                _mm512_store_ps(d + i, _mm512_maskz_mov_ps(k, _mm512_cvtph_ps(x)));
            }
        } else if (type == DS8B_KV_F32) {
            const float *f = (const float *)row + off;
            int64_t i = 0;
            for (; i + 16 <= hd; i += 16) _mm512_store_ps(d + i, _mm512_loadu_ps(f + i));
            if (i < ld) {
                __mmask16 k = (__mmask16)(hd - i >= 16 ? 0xFFFF : (1u << (hd - i)) - 1u);
                _mm512_store_ps(d + i, _mm512_maskz_loadu_ps(k, f + i));
            }
        } else {
            const ds8b__blk_q8_0 *blk = (const ds8b__blk_q8_0 *)row + off / 32;
            for (int64_t j = 0; j < hd / 32; j++) {
                __m512 s = _mm512_set1_ps(ds8b__f16_to_f32(blk[j].d));
                __m128i lo = _mm_loadu_si128((const __m128i *)blk[j].qs);
                __m128i hi = _mm_loadu_si128((const __m128i *)(blk[j].qs + 16));
                _mm512_store_ps(d + 32 * j, _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo))));
                _mm512_store_ps(d + 32 * j + 16, _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))));
            }
            /* hd is a multiple of 32 here, so ld == hd */
        }
    }
}

/* Sums of 16 vectors, lane i = sum of v[i]'s lanes, in one fixed tree. */
AI __m512 pair1(__m512 a, __m512 b) { return _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b)); }
AI __m512 pair2(__m512 a, __m512 b) {
    __m512d x = _mm512_castps_pd(a), y = _mm512_castps_pd(b);
    return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
}
AI __m512 pair4(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
}
#define R16_ARGS __m512 v0, __m512 v1, __m512 v2, __m512 v3, __m512 v4, __m512 v5, __m512 v6, __m512 v7, \
                 __m512 v8, __m512 v9, __m512 v10, __m512 v11, __m512 v12, __m512 v13, __m512 v14, __m512 v15
AI __m512 reduce16(R16_ARGS) {
    __m512 x0 = pair1(v0, v1), x1 = pair1(v2, v3), x2 = pair1(v4, v5), x3 = pair1(v6, v7);
    __m512 x4 = pair1(v8, v9), x5 = pair1(v10, v11), x6 = pair1(v12, v13), x7 = pair1(v14, v15);
    __m512 y0 = pair2(x0, x1), y1 = pair2(x2, x3), y2 = pair2(x4, x5), y3 = pair2(x6, x7);
    return pair4(pair4(y0, y1), pair4(y2, y3));
}

/* 16 accumulators: row j (q j) x position u (k u) in a##j##u */
#define FMA4(j)                                                                                                   \
    a##j##0 = _mm512_fmadd_ps(q##j, b0, a##j##0);                                                                 \
    a##j##1 = _mm512_fmadd_ps(q##j, b1, a##j##1);                                                                 \
    a##j##2 = _mm512_fmadd_ps(q##j, b2, a##j##2);                                                                 \
    a##j##3 = _mm512_fmadd_ps(q##j, b3, a##j##3);

static void scores512(const float *Q, const float *K, int64_t ld, int64_t nr, int64_t nc, float *S, int64_t lds) {
    for (int64_t r = 0; r < nr; r += 4) {
        const float *q0p = Q + r * ld, *q1p = q0p + ld, *q2p = q1p + ld, *q3p = q2p + ld;
        for (int64_t c = 0; c < nc; c += 4) {
            const float *k0 = K + c * ld, *k1 = k0 + ld, *k2 = k1 + ld, *k3 = k2 + ld;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00,
                   a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            for (int64_t i = 0; i < ld; i += 16) {
                __m512 b0 = _mm512_load_ps(k0 + i), b1 = _mm512_load_ps(k1 + i);
                __m512 b2 = _mm512_load_ps(k2 + i), b3 = _mm512_load_ps(k3 + i);
                __m512 q0 = _mm512_load_ps(q0p + i), q1 = _mm512_load_ps(q1p + i);
                __m512 q2 = _mm512_load_ps(q2p + i), q3 = _mm512_load_ps(q3p + i);
                FMA4(0) FMA4(1) FMA4(2) FMA4(3)
            }
            /* lane 4*row + position */
            __m512 s = reduce16(a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
            _mm_storeu_ps(S + (r + 0) * lds + c, _mm512_extractf32x4_ps(s, 0));
            _mm_storeu_ps(S + (r + 1) * lds + c, _mm512_extractf32x4_ps(s, 1));
            _mm_storeu_ps(S + (r + 2) * lds + c, _mm512_extractf32x4_ps(s, 2));
            _mm_storeu_ps(S + (r + 3) * lds + c, _mm512_extractf32x4_ps(s, 3));
        }
    }
}

/* 2^x for x <= 0 (x >= -125 after clamping; -inf gives 2^-125). */
AI __m512 exp2v(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-125.0f));
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.525273380405984e-05f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402265069591007e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static float softmax512(float *s, int nv, float *m, float *l) {
    __mmask16 k0 = (__mmask16)(nv >= 16 ? 0xFFFF : (1u << nv) - 1u);
    __mmask16 k1 = (__mmask16)(nv >= 32 ? 0xFFFF : nv > 16 ? (1u << (nv - 16)) - 1u : 0);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 s0 = _mm512_mask_loadu_ps(ninf, k0, s), s1 = _mm512_mask_loadu_ps(ninf, k1, s + 16);
    float mb = _mm512_reduce_max_ps(_mm512_max_ps(s0, s1));
    float mn = *m > mb ? *m : mb;
    float alpha = exp2f(*m - mn);
    __m512 vm = _mm512_set1_ps(mn);
    __m512 p0 = _mm512_maskz_mov_ps(k0, exp2v(_mm512_sub_ps(s0, vm)));
    __m512 p1 = _mm512_maskz_mov_ps(k1, exp2v(_mm512_sub_ps(s1, vm)));
    _mm512_storeu_ps(s, p0);
    _mm512_storeu_ps(s + 16, p1);
    *l = *l * alpha + _mm512_reduce_add_ps(_mm512_add_ps(p0, p1));
    *m = mn;
    return alpha;
}

#define PV_LD(j)                                                                                                  \
    __m512 al##j = _mm512_set1_ps(alpha[r + j]);                                                                  \
    __m512 c##j##0 = _mm512_mul_ps(_mm512_load_ps(a0 + j * ld + i), al##j);                                       \
    __m512 c##j##1 = _mm512_mul_ps(_mm512_load_ps(a0 + j * ld + i + 16), al##j);                                  \
    __m512 c##j##2 = _mm512_mul_ps(_mm512_load_ps(a0 + j * ld + i + 32), al##j);                                  \
    __m512 c##j##3 = _mm512_mul_ps(_mm512_load_ps(a0 + j * ld + i + 48), al##j);
#define PV_FMA(j)                                                                                                 \
    {                                                                                                             \
        __m512 p = _mm512_set1_ps(p0[j * lds + c]);                                                               \
        c##j##0 = _mm512_fmadd_ps(p, v0, c##j##0);                                                                \
        c##j##1 = _mm512_fmadd_ps(p, v1, c##j##1);                                                                \
        c##j##2 = _mm512_fmadd_ps(p, v2, c##j##2);                                                                \
        c##j##3 = _mm512_fmadd_ps(p, v3, c##j##3);                                                                \
    }
#define PV_ST(j)                                                                                                  \
    _mm512_store_ps(a0 + j * ld + i, c##j##0);                                                                    \
    _mm512_store_ps(a0 + j * ld + i + 16, c##j##1);                                                               \
    _mm512_store_ps(a0 + j * ld + i + 32, c##j##2);                                                               \
    _mm512_store_ps(a0 + j * ld + i + 48, c##j##3);

static void pv512(float *A, const float *alpha, const float *P, int64_t lds, const float *V, int64_t ld, int64_t nr,
                  int64_t nc) {
    for (int64_t r = 0; r < nr; r += 4) {
        float *a0 = A + r * ld;
        const float *p0 = P + r * lds;
        int64_t i = 0;
        for (; i + 64 <= ld; i += 64) {
            PV_LD(0) PV_LD(1) PV_LD(2) PV_LD(3)
            for (int64_t c = 0; c < nc; c++) {
                const float *v = V + c * ld + i;
                __m512 v0 = _mm512_load_ps(v), v1 = _mm512_load_ps(v + 16);
                __m512 v2 = _mm512_load_ps(v + 32), v3 = _mm512_load_ps(v + 48);
                PV_FMA(0) PV_FMA(1) PV_FMA(2) PV_FMA(3)
            }
            PV_ST(0) PV_ST(1) PV_ST(2) PV_ST(3)
        }
        /* the same per-element arithmetic, one 16-value chunk at a time */
        for (; i < ld; i += 16) {
            __m512 e0 = _mm512_mul_ps(_mm512_load_ps(a0 + i), _mm512_set1_ps(alpha[r]));
            __m512 e1 = _mm512_mul_ps(_mm512_load_ps(a0 + ld + i), _mm512_set1_ps(alpha[r + 1]));
            __m512 e2 = _mm512_mul_ps(_mm512_load_ps(a0 + 2 * ld + i), _mm512_set1_ps(alpha[r + 2]));
            __m512 e3 = _mm512_mul_ps(_mm512_load_ps(a0 + 3 * ld + i), _mm512_set1_ps(alpha[r + 3]));
            for (int64_t c = 0; c < nc; c++) {
                __m512 v = _mm512_load_ps(V + c * ld + i);
                e0 = _mm512_fmadd_ps(_mm512_set1_ps(p0[c]), v, e0);
                e1 = _mm512_fmadd_ps(_mm512_set1_ps(p0[lds + c]), v, e1);
                e2 = _mm512_fmadd_ps(_mm512_set1_ps(p0[2 * lds + c]), v, e2);
                e3 = _mm512_fmadd_ps(_mm512_set1_ps(p0[3 * lds + c]), v, e3);
            }
            _mm512_store_ps(a0 + i, e0);
            _mm512_store_ps(a0 + ld + i, e1);
            _mm512_store_ps(a0 + 2 * ld + i, e2);
            _mm512_store_ps(a0 + 3 * ld + i, e3);
        }
    }
}

void ds8b__attn_fill_avx512(ds8b__attn_ops *o) {
    o->load = load512;
    o->scores = scores512;
    o->softmax = softmax512;
    o->pv = pv512;
}
