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
    for (int64_t c = 0; c < nc4; c++) {
        float *d = dst + c * ld;
        if (c >= nc) {
            for (int64_t i = 0; i < ld; i += 8) _mm256_store_ps(d + i, z);
            continue;
        }
        const uint8_t *row = src + (size_t)c * stride;
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
AI __m256 reduce8(const __m256 *v) {
    __m256 h0 = _mm256_hadd_ps(v[0], v[1]), h1 = _mm256_hadd_ps(v[2], v[3]);
    __m256 h2 = _mm256_hadd_ps(v[4], v[5]), h3 = _mm256_hadd_ps(v[6], v[7]);
    __m256 u0 = _mm256_hadd_ps(h0, h1), u1 = _mm256_hadd_ps(h2, h3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

static void scores256(const float *Q, const float *K, int64_t ld, int64_t nr, int64_t nc, float *S, int64_t lds) {
    for (int64_t r = 0; r < nr; r += 2) {
        const float *q0 = Q + r * ld, *q1 = q0 + ld;
        for (int64_t c = 0; c < nc; c += 4) {
            const float *k0 = K + c * ld, *k1 = k0 + ld, *k2 = k1 + ld, *k3 = k2 + ld;
            __m256 acc[8];
            for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
            for (int64_t i = 0; i < ld; i += 8) {
                __m256 a0 = _mm256_load_ps(q0 + i), a1 = _mm256_load_ps(q1 + i);
                __m256 b0 = _mm256_load_ps(k0 + i), b1 = _mm256_load_ps(k1 + i);
                __m256 b2 = _mm256_load_ps(k2 + i), b3 = _mm256_load_ps(k3 + i);
                acc[0] = _mm256_fmadd_ps(a0, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a0, b1, acc[1]);
                acc[2] = _mm256_fmadd_ps(a0, b2, acc[2]);
                acc[3] = _mm256_fmadd_ps(a0, b3, acc[3]);
                acc[4] = _mm256_fmadd_ps(a1, b0, acc[4]);
                acc[5] = _mm256_fmadd_ps(a1, b1, acc[5]);
                acc[6] = _mm256_fmadd_ps(a1, b2, acc[6]);
                acc[7] = _mm256_fmadd_ps(a1, b3, acc[7]);
            }
            __m256 s = reduce8(acc); /* lane 4*row + position */
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

static void pv256(float *A, const float *alpha, const float *P, int64_t lds, const float *V, int64_t ld, int64_t nr,
                  int64_t nc) {
    for (int64_t r = 0; r < nr; r += 4) {
        float *a0 = A + r * ld;
        const float *p0 = P + r * lds;
        __m256 al[4];
        for (int j = 0; j < 4; j++) al[j] = _mm256_set1_ps(alpha[r + j]);
        for (int64_t i = 0; i < ld; i += 16) {
            __m256 acc[8];
            for (int j = 0; j < 4; j++)
                for (int u = 0; u < 2; u++)
                    acc[2 * j + u] = _mm256_mul_ps(_mm256_load_ps(a0 + j * ld + i + 8 * u), al[j]);
            for (int64_t c = 0; c < nc; c++) {
                const float *v = V + c * ld + i;
                __m256 v0 = _mm256_load_ps(v), v1 = _mm256_load_ps(v + 8);
                for (int j = 0; j < 4; j++) {
                    __m256 p = _mm256_broadcast_ss(p0 + j * lds + c);
                    acc[2 * j + 0] = _mm256_fmadd_ps(p, v0, acc[2 * j + 0]);
                    acc[2 * j + 1] = _mm256_fmadd_ps(p, v1, acc[2 * j + 1]);
                }
            }
            for (int j = 0; j < 4; j++)
                for (int u = 0; u < 2; u++) _mm256_store_ps(a0 + j * ld + i + 8 * u, acc[2 * j + u]);
        }
    }
}

void ds8b__attn_fill_avx2(ds8b__attn_ops *o) {
    o->load = load256;
    o->scores = scores256;
    o->softmax = softmax256;
    o->pv = pv256;
}
