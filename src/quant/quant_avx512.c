/*
 * quant_avx512.c -- the symmetric scale search of quant.c on 16 blocks at
 * once, one block per lane. Each lane performs the scalar search_sym1()'s
 * operations in the same order (separate multiplies and adds: this file is
 * compiled without floating-point contraction), so the scales are
 * bit-identical to the scalar reference (tests/test_quantizer.c).
 */
#pragma GCC optimize("fp-contract=off")
#include "quant/quant.h"

#include <immintrin.h>
#include <math.h>

/* Code of v = x*is: clamp (NaN to lo, as max/min do), add +-0.5 by the
 * sign (for -0.0 the scalar adds +0.5, this -0.5: both truncate to 0),
 * truncate. Truncation gives -0.0 where the scalar's int conversion gives
 * +0.0: the sums never differ (they start at +0, x + -0 = x, +0 + -0 = +0). */
static inline __m512 code(__m512 x, __m512 is, __m512 lo, __m512 hi) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u), half = _mm512_set1_epi32(0x3f000000);
    __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x, is), lo), hi);
    /* (v & sign) | 0.5 */
    __m512 h = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(v), sign, half, 0xEA));
    return _mm512_roundscale_ps(_mm512_add_ps(v, h), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
}

/* Two candidates per pass over the values. Unit weights: w*x*v = x*v and
 * w*v*v = v*v exactly, so the multiplies by w are left out. */
static inline void pass2(const __m512 *xt, const __m512 *wt, const __m512 *wxt, bool unit, int n, const __m512 *is,
                         __m512 lo, __m512 hi, __m512 *sxq, __m512 *sqq) {
    __m512 a0 = _mm512_setzero_ps(), b0 = a0, a1 = a0, b1 = a0;
    if (unit) {
        for (int i = 0; i < n; i++) {
            __m512 v0 = code(xt[i], is[0], lo, hi), v1 = code(xt[i], is[1], lo, hi);
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(xt[i], v0));
            b0 = _mm512_add_ps(b0, _mm512_mul_ps(v0, v0));
            a1 = _mm512_add_ps(a1, _mm512_mul_ps(xt[i], v1));
            b1 = _mm512_add_ps(b1, _mm512_mul_ps(v1, v1));
        }
    } else {
        for (int i = 0; i < n; i++) {
            __m512 v0 = code(xt[i], is[0], lo, hi), v1 = code(xt[i], is[1], lo, hi);
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(wxt[i], v0));
            b0 = _mm512_add_ps(b0, _mm512_mul_ps(_mm512_mul_ps(wt[i], v0), v0));
            a1 = _mm512_add_ps(a1, _mm512_mul_ps(wxt[i], v1));
            b1 = _mm512_add_ps(b1, _mm512_mul_ps(_mm512_mul_ps(wt[i], v1), v1));
        }
    }
    sxq[0] = a0, sqq[0] = b0, sxq[1] = a1, sqq[1] = b1;
}

void ds8b__sym_search_avx512(const float *x, const float *w, int n, int nblk, int qmin, int qmax, float *dout) {
    if (nblk <= 0) return;
    if (nblk > 16 || n > 32) {
        ds8b__sym_search_scalar(x, w, n, nblk, qmin, qmax, dout);
        return;
    }
    /* transpose: xt[i] lane b = x[b*n + i] */
    __m512 xt[32], wxt[32], wt[32];
    __mmask16 live = (__mmask16)((1u << nblk) - 1u);
    __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                     _mm512_set1_epi32(n));
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    const __m512 absm = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    __m512 amax = zero, mx = zero, sxx = zero;
    bool unit = true;
    for (int i = 0; i < n; i++) {
        xt[i] = _mm512_mask_i32gather_ps(zero, live, idx, x + i, 4);
        wt[i] = _mm512_mask_i32gather_ps(one, live, idx, w + i, 4);
        unit = unit && _mm512_cmp_ps_mask(wt[i], one, _CMP_NEQ_UQ) == 0;
        __m512 a = _mm512_and_ps(xt[i], absm);
        __mmask16 gt = _mm512_cmp_ps_mask(a, amax, _CMP_GT_OQ);
        amax = _mm512_mask_blend_ps(gt, amax, a);
        mx = _mm512_mask_blend_ps(gt, mx, xt[i]);
        wxt[i] = _mm512_mul_ps(wt[i], xt[i]);
        sxx = _mm512_add_ps(sxx, _mm512_mul_ps(wxt[i], xt[i]));
    }
    __mmask16 act0 = _mm512_mask_cmp_ps_mask(live, amax, zero, _CMP_GT_OQ);
    __m512 best_err = _mm512_set1_ps(INFINITY), best_d = zero;
    const float lof = (float)qmin, hif = (float)qmax;
    const __m512 lo = _mm512_set1_ps(lof), hi = _mm512_set1_ps(hif);
    /* the 14 candidates (7 near each end), in the scalar's order */
    __m512 is[14];
    for (int c = 0; c < 14; c++) {
        float end = c < 7 ? lof : hif;
        float t = end + 0.15f * (float)(c % 7 - 3);
        is[c] = _mm512_div_ps(_mm512_set1_ps(t), mx);
    }
    for (int c = 0; c < 14; c += 2) {
        /* each candidate's best over its two rounds first, then merged in
         * the scalar's order: the first minimum wins, as there */
        __m512 cerr[2] = {_mm512_set1_ps(INFINITY), _mm512_set1_ps(INFINITY)}, cd[2] = {zero, zero};
        __mmask16 act[2] = {act0, act0};
        for (int it = 0; it < 2 && (act[0] | act[1]); it++) {
            __m512 sxq[2], sqq[2];
            pass2(xt, wt, wxt, unit, n, is + c, lo, hi, sxq, sqq);
            /* candidate c before c+1, as the scalar loop compares them */
            for (int h = 0; h < 2; h++) {
                act[h] = _mm512_mask_cmp_ps_mask(act[h], sqq[h], zero, _CMP_GT_OQ);
                __m512 d = _mm512_div_ps(sxq[h], sqq[h]);
                __m512 err = _mm512_sub_ps(sxx, _mm512_mul_ps(sxq[h], d));
                __mmask16 better = _mm512_mask_cmp_ps_mask(act[h], err, cerr[h], _CMP_LT_OQ);
                cerr[h] = _mm512_mask_blend_ps(better, cerr[h], err);
                cd[h] = _mm512_mask_blend_ps(better, cd[h], d);
                act[h] = _mm512_mask_cmp_ps_mask(act[h], d, zero, _CMP_NEQ_UQ);
                is[c + h] = _mm512_mask_div_ps(is[c + h], act[h], one, d);
            }
        }
        for (int h = 0; h < 2; h++) {
            __mmask16 better = _mm512_cmp_ps_mask(cerr[h], best_err, _CMP_LT_OQ);
            best_err = _mm512_mask_blend_ps(better, best_err, cerr[h]);
            best_d = _mm512_mask_blend_ps(better, best_d, cd[h]);
        }
    }
    float out[16];
    _mm512_storeu_ps(out, best_d);
    for (int b = 0; b < nblk; b++) dout[b] = out[b];
}
