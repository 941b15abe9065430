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
    for (int64_t c = 0; c < nc4; c++) {
        float *d = dst + c * ld;
        if (c >= nc) {
            for (int64_t i = 0; i < ld; i += 16) _mm512_store_ps(d + i, z);
            continue;
        }
        const uint8_t *row = src + (size_t)c * stride;
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
AI __m512 reduce16(const __m512 *v) {
    __m512 x[8], y[4], z[2];
    for (int i = 0; i < 8; i++) x[i] = pair1(v[2 * i], v[2 * i + 1]);
    for (int i = 0; i < 4; i++) y[i] = pair2(x[2 * i], x[2 * i + 1]);
    z[0] = pair4(y[0], y[1]);
    z[1] = pair4(y[2], y[3]);
    return pair4(z[0], z[1]);
}

static void scores512(const float *Q, const float *K, int64_t ld, int64_t nr, int64_t nc, float *S, int64_t lds) {
    for (int64_t r = 0; r < nr; r += 4) {
        const float *q0 = Q + r * ld, *q1 = q0 + ld, *q2 = q1 + ld, *q3 = q2 + ld;
        for (int64_t c = 0; c < nc; c += 4) {
            const float *k0 = K + c * ld, *k1 = k0 + ld, *k2 = k1 + ld, *k3 = k2 + ld;
            __m512 acc[16];
            for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
            for (int64_t i = 0; i < ld; i += 16) {
                __m512 a0 = _mm512_load_ps(q0 + i), a1 = _mm512_load_ps(q1 + i);
                __m512 a2 = _mm512_load_ps(q2 + i), a3 = _mm512_load_ps(q3 + i);
                __m512 b0 = _mm512_load_ps(k0 + i), b1 = _mm512_load_ps(k1 + i);
                __m512 b2 = _mm512_load_ps(k2 + i), b3 = _mm512_load_ps(k3 + i);
                acc[0] = _mm512_fmadd_ps(a0, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(a0, b1, acc[1]);
                acc[2] = _mm512_fmadd_ps(a0, b2, acc[2]);
                acc[3] = _mm512_fmadd_ps(a0, b3, acc[3]);
                acc[4] = _mm512_fmadd_ps(a1, b0, acc[4]);
                acc[5] = _mm512_fmadd_ps(a1, b1, acc[5]);
                acc[6] = _mm512_fmadd_ps(a1, b2, acc[6]);
                acc[7] = _mm512_fmadd_ps(a1, b3, acc[7]);
                acc[8] = _mm512_fmadd_ps(a2, b0, acc[8]);
                acc[9] = _mm512_fmadd_ps(a2, b1, acc[9]);
                acc[10] = _mm512_fmadd_ps(a2, b2, acc[10]);
                acc[11] = _mm512_fmadd_ps(a2, b3, acc[11]);
                acc[12] = _mm512_fmadd_ps(a3, b0, acc[12]);
                acc[13] = _mm512_fmadd_ps(a3, b1, acc[13]);
                acc[14] = _mm512_fmadd_ps(a3, b2, acc[14]);
                acc[15] = _mm512_fmadd_ps(a3, b3, acc[15]);
            }
            __m512 s = reduce16(acc); /* lane 4*row + position */
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

static void pv512(float *A, const float *alpha, const float *P, int64_t lds, const float *V, int64_t ld, int64_t nr,
                  int64_t nc) {
    for (int64_t r = 0; r < nr; r += 4) {
        float *a0 = A + r * ld;
        const float *p0 = P + r * lds;
        __m512 al[4];
        for (int j = 0; j < 4; j++) al[j] = _mm512_set1_ps(alpha[r + j]);
        int64_t i = 0;
        for (; i + 64 <= ld; i += 64) {
            __m512 acc[16];
            for (int j = 0; j < 4; j++)
                for (int u = 0; u < 4; u++)
                    acc[4 * j + u] = _mm512_mul_ps(_mm512_load_ps(a0 + j * ld + i + 16 * u), al[j]);
            for (int64_t c = 0; c < nc; c++) {
                const float *v = V + c * ld + i;
                __m512 v0 = _mm512_load_ps(v), v1 = _mm512_load_ps(v + 16);
                __m512 v2 = _mm512_load_ps(v + 32), v3 = _mm512_load_ps(v + 48);
                for (int j = 0; j < 4; j++) {
                    __m512 p = _mm512_set1_ps(p0[j * lds + c]);
                    acc[4 * j + 0] = _mm512_fmadd_ps(p, v0, acc[4 * j + 0]);
                    acc[4 * j + 1] = _mm512_fmadd_ps(p, v1, acc[4 * j + 1]);
                    acc[4 * j + 2] = _mm512_fmadd_ps(p, v2, acc[4 * j + 2]);
                    acc[4 * j + 3] = _mm512_fmadd_ps(p, v3, acc[4 * j + 3]);
                }
            }
            for (int j = 0; j < 4; j++)
                for (int u = 0; u < 4; u++) _mm512_store_ps(a0 + j * ld + i + 16 * u, acc[4 * j + u]);
        }
        for (; i < ld; i += 16) {
            __m512 acc[4];
            for (int j = 0; j < 4; j++) acc[j] = _mm512_mul_ps(_mm512_load_ps(a0 + j * ld + i), al[j]);
            for (int64_t c = 0; c < nc; c++) {
                __m512 v = _mm512_load_ps(V + c * ld + i);
                for (int j = 0; j < 4; j++) acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(p0[j * lds + c]), v, acc[j]);
            }
            for (int j = 0; j < 4; j++) _mm512_store_ps(a0 + j * ld + i, acc[j]);
        }
    }
}

void ds8b__attn_fill_avx512(ds8b__attn_ops *o) {
    o->load = load512;
    o->scores = scores512;
    o->softmax = softmax512;
    o->pv = pv512;
}
