/*
 * x86/avx2_attn.c -- the attention primitives (kern_impl.h,
 * ds8b__attn_ops) in AVX2 + FMA + F16C. Built with the AVX2 flags (the
 * file name contains "avx2"); only called when cpuid reports them.
 *
 * scores: a register tile of 2 query rows x 4 positions = 8 ymm
 *   accumulators; per 8-value chunk, 2 Q loads and 4 K loads feed 8 FMAs.
 *   The 8 accumulators are reduced by one fixed hadd/permute tree into
 *   one ymm of the 8 scores, the same tree for every score.
 * softmax: 32 lanes in four ymm, exp2 as in avx512_attn.c with the
 *   exponent added in the integer domain.
 * pv: a register tile of 4 rows x 2 chunks (16 values) = 8 accumulators.
 */
#include "kernels/kernels.h"
#include "kernels/kern_impl.h"

#include <immintrin.h>
#include <math.h>

#define AI static inline __attribute__((always_inline))
#define B DS8B_ATT_BLOCK

static void load256(int type, const uint8_t *src, size_t stride, int64_t off, int64_t hd, int64_t nc, float *dst,
                    int64_t ld) {
    if (hd % 8 || (type == DS8B_KV_Q8_0 && (off % 32 || hd % 32))) {
        ds8b__attn_load_ref(type, src, stride, off, hd, nc, dst, ld);
        return;
    }
    int64_t nc4 = (nc + 3) & ~(int64_t)3;
    const __m256 z = _mm256_setzero_ps();
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
            for (int64_t i = 0; i < ld; i += 8) _mm256_store_ps(d + i, z);
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
            for (int64_t i = 0; i < hd; i += 8)
                _mm256_store_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
        } else if (type == DS8B_KV_F32) {
            const float *f = (const float *)row + off;
            for (int64_t i = 0; i < hd; i += 8) _mm256_store_ps(d + i, _mm256_loadu_ps(f + i));
        } else {
            const ds8b__blk_q8_0 *blk = (const ds8b__blk_q8_0 *)row + off / 32;
            for (int64_t j = 0; j < hd / 32; j++) {
                __m256 s = _mm256_set1_ps(ds8b__f16_to_f32(blk[j].d));
                for (int u = 0; u < 4; u++) {
                    __m128i q = _mm_loadl_epi64((const __m128i *)(blk[j].qs + 8 * u));
                    _mm256_store_ps(d + 32 * j + 8 * u, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
                }
            }
        }
        for (int64_t i = hd; i < ld; i += 8) _mm256_store_ps(d + i, z);
    }
}

/* lane i = sum of v[i]'s 8 lanes, one fixed tree for all i */
AI __m256 reduce8(__m256 v0, __m256 v1, __m256 v2, __m256 v3, __m256 v4, __m256 v5, __m256 v6, __m256 v7) {
    __m256 h0 = _mm256_hadd_ps(v0, v1), h1 = _mm256_hadd_ps(v2, v3);
    __m256 h2 = _mm256_hadd_ps(v4, v5), h3 = _mm256_hadd_ps(v6, v7);
    __m256 u0 = _mm256_hadd_ps(h0, h1), u1 = _mm256_hadd_ps(h2, h3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

static void scores256(const float *Q, const float *K, int64_t ld, int64_t nr, int64_t nc, float *S, int64_t lds) {
    for (int64_t r = 0; r < nr; r += 2) {
        const float *q0 = Q + r * ld, *q1 = q0 + ld;
        for (int64_t c = 0; c < nc; c += 4) {
            const float *k0 = K + c * ld, *k1 = k0 + ld, *k2 = k1 + ld, *k3 = k2 + ld;
            __m256 x0 = _mm256_setzero_ps(), x1 = x0, x2 = x0, x3 = x0, x4 = x0, x5 = x0, x6 = x0, x7 = x0;
            for (int64_t i = 0; i < ld; i += 8) {
                __m256 a0 = _mm256_load_ps(q0 + i), a1 = _mm256_load_ps(q1 + i);
                __m256 b0 = _mm256_load_ps(k0 + i), b1 = _mm256_load_ps(k1 + i);
                __m256 b2 = _mm256_load_ps(k2 + i), b3 = _mm256_load_ps(k3 + i);
                x0 = _mm256_fmadd_ps(a0, b0, x0);
                x1 = _mm256_fmadd_ps(a0, b1, x1);
                x2 = _mm256_fmadd_ps(a0, b2, x2);
                x3 = _mm256_fmadd_ps(a0, b3, x3);
                x4 = _mm256_fmadd_ps(a1, b0, x4);
                x5 = _mm256_fmadd_ps(a1, b1, x5);
                x6 = _mm256_fmadd_ps(a1, b2, x6);
                x7 = _mm256_fmadd_ps(a1, b3, x7);
            }
            __m256 s = reduce8(x0, x1, x2, x3, x4, x5, x6, x7); /* lane 4*row + position */
            _mm_storeu_ps(S + (r + 0) * lds + c, _mm256_castps256_ps128(s));
            _mm_storeu_ps(S + (r + 1) * lds + c, _mm256_extractf128_ps(s, 1));
        }
    }
}

/* 2^x for x <= 0 (clamped at -125). */
AI __m256 exp2v(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-125.0f));
    __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(1.525273380405984e-05f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.5403530393381606e-04f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428443e-03f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618129107628477e-03f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550410866482158e-02f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402265069591007e-01f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931471805599453e-01f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
}

static float softmax256(float *s, int nv, float *m, float *l) {
    __m256 v[4], mx = _mm256_set1_ps(-INFINITY);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 ok[4];
    for (int u = 0; u < 4; u++) {
        ok[u] = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nv - 8 * u), lane));
        v[u] = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_loadu_ps(s + 8 * u), ok[u]);
        mx = _mm256_max_ps(mx, v[u]);
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float mb = _mm_cvtss_f32(h);
    float mn = *m > mb ? *m : mb;
    float alpha = exp2f(*m - mn);
    __m256 vm = _mm256_set1_ps(mn), sum = _mm256_setzero_ps();
    for (int u = 0; u < 4; u++) {
        __m256 p = _mm256_and_ps(ok[u], exp2v(_mm256_sub_ps(v[u], vm)));
        _mm256_storeu_ps(s + 8 * u, p);
        sum = _mm256_add_ps(sum, p);
    }
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    *l = *l * alpha + _mm_cvtss_f32(t);
    *m = mn;
    return alpha;
}

#define PV_LD(j)                                                                                                  \
    __m256 al##j = _mm256_set1_ps(alpha[r + j]);                                                                  \
    __m256 c##j##0 = _mm256_mul_ps(_mm256_load_ps(a0 + j * ld + i), al##j);                                       \
    __m256 c##j##1 = _mm256_mul_ps(_mm256_load_ps(a0 + j * ld + i + 8), al##j);
#define PV_FMA(j)                                                                                                 \
    {                                                                                                             \
        __m256 p = _mm256_broadcast_ss(p0 + j * lds + c);                                                         \
        c##j##0 = _mm256_fmadd_ps(p, v0, c##j##0);                                                                \
        c##j##1 = _mm256_fmadd_ps(p, v1, c##j##1);                                                                \
    }
#define PV_ST(j)                                                                                                  \
    _mm256_store_ps(a0 + j * ld + i, c##j##0);                                                                    \
    _mm256_store_ps(a0 + j * ld + i + 8, c##j##1);

static void pv256(float *A, const float *alpha, const float *P, int64_t lds, const float *V, int64_t ld, int64_t nr,
                  int64_t nc) {
    for (int64_t r = 0; r < nr; r += 4) {
        float *a0 = A + r * ld;
        const float *p0 = P + r * lds;
        for (int64_t i = 0; i < ld; i += 16) {
            PV_LD(0) PV_LD(1) PV_LD(2) PV_LD(3)
            for (int64_t c = 0; c < nc; c++) {
                const float *v = V + c * ld + i;
                __m256 v0 = _mm256_load_ps(v), v1 = _mm256_load_ps(v + 8);
                PV_FMA(0) PV_FMA(1) PV_FMA(2) PV_FMA(3)
            }
            PV_ST(0) PV_ST(1) PV_ST(2) PV_ST(3)
        }
    }
}

void ds8b__attn_fill_avx2(ds8b__attn_ops *o) {
    o->load = load256;
    o->scores = scores256;
    o->softmax = softmax256;
    o->pv = pv256;
}
