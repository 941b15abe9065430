/*
 * quant_avx2.c -- the symmetric scale search of quant.c on 8 blocks at
 * once, one block per lane: exactly the scalar search_sym1()'s operations
 * in the same order (separate multiplies and adds, no floating-point
 * contraction in this file), so the scales are bit-identical.
 */
#pragma GCC optimize("fp-contract=off")
#include "quant/quant.h"

#include <immintrin.h>
#include <math.h>

static void search8(const float *x, const float *w, int n, int nblk, int qmin, int qmax, float *dout) {
    __m256 xt[32], wxt[32], wt[32];
    const __m256 zero = _mm256_setzero_ps();
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i idx = _mm256_mullo_epi32(lane, _mm256_set1_epi32(n));
    __m256 live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nblk), lane));
    __m256 amax = zero, mx = zero, sxx = zero;
    for (int i = 0; i < n; i++) {
        xt[i] = _mm256_mask_i32gather_ps(zero, x + i, idx, live, 4);
        wt[i] = _mm256_mask_i32gather_ps(zero, w + i, idx, live, 4);
        __m256 a = _mm256_and_ps(xt[i], absm);
        __m256 gt = _mm256_cmp_ps(a, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, a, gt);
        mx = _mm256_blendv_ps(mx, xt[i], gt);
        wxt[i] = _mm256_mul_ps(wt[i], xt[i]);
        sxx = _mm256_add_ps(sxx, _mm256_mul_ps(wxt[i], xt[i]));
    }
    __m256 act0 = _mm256_and_ps(live, _mm256_cmp_ps(amax, zero, _CMP_GT_OQ));
    __m256 best_err = _mm256_set1_ps(INFINITY), best_d = zero;
    const float lof = (float)qmin, hif = (float)qmax;
    const __m256 lo = _mm256_set1_ps(lof), hi = _mm256_set1_ps(hif);
    const __m256 half = _mm256_set1_ps(0.5f), mhalf = _mm256_set1_ps(-0.5f), one = _mm256_set1_ps(1.0f);
    for (int side = 0; side < 2; side++) {
        float end = side == 0 ? lof : hif;
        for (int k = -3; k <= 3; k++) {
            float t = end + 0.15f * (float)k;
            __m256 is = _mm256_div_ps(_mm256_set1_ps(t), mx);
            __m256 act = act0;
            for (int it = 0; it < 2 && _mm256_movemask_ps(act); it++) {
                __m256 sxq = zero, sqq = zero;
                for (int i = 0; i < n; i++) {
                    __m256 v = _mm256_mul_ps(xt[i], is);
                    v = _mm256_max_ps(v, lo); /* v > lo ? v : lo */
                    v = _mm256_min_ps(v, hi); /* v < hi ? v : hi */
                    __m256 ge = _mm256_cmp_ps(v, zero, _CMP_GE_OQ);
                    v = _mm256_add_ps(v, _mm256_blendv_ps(mhalf, half, ge));
                    v = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(v));
                    sxq = _mm256_add_ps(sxq, _mm256_mul_ps(wxt[i], v));
                    sqq = _mm256_add_ps(sqq, _mm256_mul_ps(_mm256_mul_ps(wt[i], v), v));
                }
                act = _mm256_and_ps(act, _mm256_cmp_ps(sqq, zero, _CMP_GT_OQ));
                __m256 d = _mm256_div_ps(sxq, sqq);
                __m256 err = _mm256_sub_ps(sxx, _mm256_mul_ps(sxq, d));
                __m256 better = _mm256_and_ps(act, _mm256_cmp_ps(err, best_err, _CMP_LT_OQ));
                best_err = _mm256_blendv_ps(best_err, err, better);
                best_d = _mm256_blendv_ps(best_d, d, better);
                act = _mm256_and_ps(act, _mm256_cmp_ps(d, zero, _CMP_NEQ_UQ));
                is = _mm256_blendv_ps(is, _mm256_div_ps(one, d), act);
            }
        }
    }
    float out[8];
    _mm256_storeu_ps(out, best_d);
    for (int b = 0; b < nblk; b++) dout[b] = out[b];
}

void ds8b__sym_search_avx2(const float *x, const float *w, int n, int nblk, int qmin, int qmax, float *dout) {
    if (n > 32) {
        ds8b__sym_search_scalar(x, w, n, nblk, qmin, qmax, dout);
        return;
    }
    for (int b = 0; b < nblk; b += 8)
        search8(x + (size_t)b * n, w + (size_t)b * n, n, nblk - b < 8 ? nblk - b : 8, qmin, qmax, dout + b);
}
