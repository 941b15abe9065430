/*
 * quant.c -- scalar reference dequantizers (every GGUF block type we know)
 * and error-minimising quantizers.
 *
 * Quantizers search per block: several candidate scales are tried, the
 * integer codes for each are fixed, the best scale (and offset) for those
 * codes is solved by weighted least squares, and the candidate with the
 * smallest weighted squared error is kept. K-quants then quantize the
 * per-sub-block scales to 6 (or 8) bits and re-round every code against
 * the scale that will actually be stored.
 */
#include "quant/quant.h"

#include "kernels/kernels.h"

#include <math.h>

/* ================================================================== */
/* Small helpers                                                       */
/* ================================================================== */
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
/* Rounds half away from zero and clamps to [lo, hi] in the float domain,
 * so huge or NaN values never reach an out-of-range int conversion. */
static inline int qround(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)(v >= 0.0f ? v + 0.5f : v - 0.5f);
}
static inline float finite_or0(float v) { return isfinite(v) ? v : 0.0f; }
static inline float f16r(float v) { return ds8b__f16_to_f32(ds8b__f32_to_f16(v)); }

/* ================================================================== */
/* Dequantizers                                                        */
/* ================================================================== */
static void dq_q4_0(const ds8b__blk_q4_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += 32) {
        float d = ds8b__f16_to_f32(b->d);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((b->qs[j] & 0xF) - 8) * d;
            y[j + 16] = (float)((b->qs[j] >> 4) - 8) * d;
        }
    }
}
static void dq_q4_1(const ds8b__blk_q4_1 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += 32) {
        float d = ds8b__f16_to_f32(b->d), m = ds8b__f16_to_f32(b->m);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(b->qs[j] & 0xF) * d + m;
            y[j + 16] = (float)(b->qs[j] >> 4) * d + m;
        }
    }
}
static inline uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void dq_q5_0(const ds8b__blk_q5_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += 32) {
        float d = ds8b__f16_to_f32(b->d);
        uint32_t qh = le32(b->qh);
        for (int j = 0; j < 16; j++) {
            int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
            y[j] = (float)(((b->qs[j] & 0xF) | (h0 << 4)) - 16) * d;
            y[j + 16] = (float)(((b->qs[j] >> 4) | (h1 << 4)) - 16) * d;
        }
    }
}
static void dq_q5_1(const ds8b__blk_q5_1 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += 32) {
        float d = ds8b__f16_to_f32(b->d), m = ds8b__f16_to_f32(b->m);
        uint32_t qh = le32(b->qh);
        for (int j = 0; j < 16; j++) {
            int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
            y[j] = (float)((b->qs[j] & 0xF) | (h0 << 4)) * d + m;
            y[j + 16] = (float)((b->qs[j] >> 4) | (h1 << 4)) * d + m;
        }
    }
}
static void dq_q8_0(const ds8b__blk_q8_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += 32) {
        float d = ds8b__f16_to_f32(b->d);
        for (int j = 0; j < 32; j++) y[j] = (float)b->qs[j] * d;
    }
}
static void dq_q8_1(const ds8b__blk_q8_1 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += 32) {
        float d = ds8b__f16_to_f32(b->d);
        for (int j = 0; j < 32; j++) y[j] = (float)b->qs[j] * d;
    }
}
static void dq_q2_k(const ds8b__blk_q2_k *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        float d = ds8b__f16_to_f32(b->d), dmin = ds8b__f16_to_f32(b->dmin);
        int is = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = b->qs + 32 * h;
            for (int pl = 0; pl < 4; pl++) {
                int sh = 2 * pl;
                for (int half = 0; half < 2; half++) {
                    uint8_t sc = b->scales[is++];
                    float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * (float)((q[16 * half + l] >> sh) & 3) - ml;
                }
            }
        }
    }
}
static void dq_q3_k(const ds8b__blk_q3_k *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        float d = ds8b__f16_to_f32(b->d);
        int8_t sc[16];
        ds8b__k3_scales(b->scales, sc);
        int is = 0;
        unsigned bit = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = b->qs + 32 * h;
            for (int pl = 0; pl < 4; pl++, bit++) {
                int sh = 2 * pl;
                for (int half = 0; half < 2; half++) {
                    float dl = d * (float)sc[is++];
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        int v = (q[l] >> sh) & 3;
                        if (!((b->hmask[l] >> bit) & 1)) v -= 4;
                        *y++ = dl * (float)v;
                    }
                }
            }
        }
    }
}
static void dq_q4_k(const ds8b__blk_q4_k *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        float d = ds8b__f16_to_f32(b->d), dmin = ds8b__f16_to_f32(b->dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t s0, m0, s1, m1;
            ds8b__k4_scale_min(b->scales, 2 * c, &s0, &m0);
            ds8b__k4_scale_min(b->scales, 2 * c + 1, &s1, &m1);
            float d0 = d * s0, n0 = dmin * m0, d1 = d * s1, n1 = dmin * m1;
            const uint8_t *q = b->qs + 32 * c;
            for (int l = 0; l < 32; l++) y[l] = d0 * (float)(q[l] & 0xF) - n0;
            for (int l = 0; l < 32; l++) y[32 + l] = d1 * (float)(q[l] >> 4) - n1;
            y += 64;
        }
    }
}
static void dq_q5_k(const ds8b__blk_q5_k *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        float d = ds8b__f16_to_f32(b->d), dmin = ds8b__f16_to_f32(b->dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t s0, m0, s1, m1;
            ds8b__k4_scale_min(b->scales, 2 * c, &s0, &m0);
            ds8b__k4_scale_min(b->scales, 2 * c + 1, &s1, &m1);
            float d0 = d * s0, n0 = dmin * m0, d1 = d * s1, n1 = dmin * m1;
            const uint8_t *q = b->qs + 32 * c;
            for (int l = 0; l < 32; l++) {
                int v = (q[l] & 0xF) | (((b->qh[l] >> (2 * c)) & 1) << 4);
                y[l] = d0 * (float)v - n0;
            }
            for (int l = 0; l < 32; l++) {
                int v = (q[l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4);
                y[32 + l] = d1 * (float)v - n1;
            }
            y += 64;
        }
    }
}
static void dq_q6_k(const ds8b__blk_q6_k *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++) {
        float d = ds8b__f16_to_f32(b->d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
            const int8_t *sc = b->scales + 8 * h;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q0 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q1 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q0;
                y[l + 32] = d * (float)sc[is + 2] * (float)q1;
                y[l + 64] = d * (float)sc[is + 4] * (float)q2;
                y[l + 96] = d * (float)sc[is + 6] * (float)q3;
            }
            y += 128;
        }
    }
}
static void dq_q8_k(const ds8b__blk_q8_k *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b++, y += 256)
        for (int j = 0; j < 256; j++) y[j] = b->d * (float)b->qs[j];
}

void ds8b__dequant_row(int type, const void *src, float *dst, int64_t n) {
    const ds8b__type_traits *t = ds8b__type_info(type);
    if (!t || n <= 0 || n % t->block_elems) {
        if (n > 0) memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
    int64_t nb = n / t->block_elems;
    switch (type) {
    case DS8B_T_F32: memcpy(dst, src, (size_t)n * 4); break;
    case DS8B_T_F16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = ds8b__f16_to_f32(h[i]);
        break;
    }
    case DS8B_T_BF16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) dst[i] = ds8b__bf16_to_f32(h[i]);
        break;
    }
    case DS8B_T_Q4_0: dq_q4_0(src, dst, nb); break;
    case DS8B_T_Q4_1:
    case DS8B_T_W4A16: dq_q4_1(src, dst, nb); break;
    case DS8B_T_Q5_0: dq_q5_0(src, dst, nb); break;
    case DS8B_T_Q5_1: dq_q5_1(src, dst, nb); break;
    case DS8B_T_Q8_0: dq_q8_0(src, dst, nb); break;
    case DS8B_T_Q8_1: dq_q8_1(src, dst, nb); break;
    case DS8B_T_Q2_K: dq_q2_k(src, dst, nb); break;
    case DS8B_T_Q3_K: dq_q3_k(src, dst, nb); break;
    case DS8B_T_Q4_K: dq_q4_k(src, dst, nb); break;
    case DS8B_T_Q5_K: dq_q5_k(src, dst, nb); break;
    case DS8B_T_Q6_K: dq_q6_k(src, dst, nb); break;
    case DS8B_T_Q8_K: dq_q8_k(src, dst, nb); break;
    default: memset(dst, 0, (size_t)n * sizeof(float)); break;
    }
}

/* ================================================================== */
/* Scale searches                                                      */
/* ================================================================== */
/* Symmetric: x ~= d*q with q in [qmin, qmax]; the best d of one block (its
 * sign is free). The largest value is mapped onto (near) either end of the
 * code range: 14 candidate scales, each refined once against the scale
 * fitted to its codes. The weighted error of a fitted scale d = sxq/sqq
 * has the closed form sxx - sxq*d, so each candidate costs one pass.
 *
 * This scalar search is the reference: quant_avx2.c and quant_avx512.c run
 * it on 8 or 16 blocks at once, one block per vector lane, with the same
 * operations in the same order (no fused multiply-add), so they return the
 * same scales bit for bit (tests/test_quantizer.c checks). Written so that
 * every step has a lane equivalent: max/min with NaN going to the bound
 * (x86 max/min semantics), truncation through int. */
static float search_sym1(const float *x, const float *w, int n, int qmin, int qmax) {
    float amax = 0.0f, mx = 0.0f, sxx = 0.0f;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax) { amax = a; mx = x[i]; }
        sxx += w[i] * x[i] * x[i];
    }
    if (!(amax > 0.0f)) return 0.0f;
    float best_err = INFINITY, best_d = 0.0f;
    const float lo = (float)qmin, hi = (float)qmax;
    for (int side = 0; side < 2; side++) {
        float end = side == 0 ? lo : hi;
        for (int k = -3; k <= 3; k++) {
            float t = end + 0.15f * (float)k;
            float is = t / mx;
            for (int it = 0; it < 2; it++) {
                float sxq = 0.0f, sqq = 0.0f;
                for (int i = 0; i < n; i++) {
                    float v = x[i] * is;
                    v = v > lo ? v : lo;
                    v = v < hi ? v : hi;
                    v = (float)(int)(v + (v >= 0.0f ? 0.5f : -0.5f));
                    sxq += w[i] * x[i] * v;
                    sqq += w[i] * v * v;
                }
                if (!(sqq > 0.0f)) break;
                float d = sxq / sqq;
                float err = sxx - sxq * d;
                if (err < best_err) {
                    best_err = err;
                    best_d = d;
                }
                if (d == 0.0f) break;
                is = 1.0f / d; /* refine: re-round against the fitted scale */
            }
        }
    }
    return best_d;
}

void ds8b__sym_search_scalar(const float *x, const float *w, int n, int nblk, int qmin, int qmax, float *d) {
    for (int b = 0; b < nblk; b++) d[b] = search_sym1(x + (size_t)b * n, w + (size_t)b * n, n, qmin, qmax);
}

/* The vectorised searches exist for x86 only (quant_avx2.c, quant_avx512.c);
 * on other architectures the kernel levels are not these. */
static ds8b__sym_search_fn sym_search(void) {
#if defined(__x86_64__)
    int lvl = ds8b__isa_level();
    if (lvl >= 2) return ds8b__sym_search_avx512;
    if (lvl >= 1) return ds8b__sym_search_avx2;
#endif
    return ds8b__sym_search_scalar;
}

/* Re-rounds codes against a fixed scale (the one that will be stored). */
static void requant_sym(const float *x, int n, float d, int qmin, int qmax, int *q) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float lo = (float)qmin, hi = (float)qmax;
    /* qround() without branches (vectorisable): the same codes */
    for (int i = 0; i < n; i++) {
        float v = x[i] * id;
        v = v > lo ? v : lo;
        v = v < hi ? v : hi;
        q[i] = (int)(v + (v >= 0.0f ? 0.5f : -0.5f));
    }
}

/* Affine: x ~= d*q + m, q in [0, qmax], d >= 0. With m_nonpos the offset
 * is constrained to m <= 0 (K-quants store it as a non-negative min). */
static void search_affine(const float *x, const float *w, int n, int qmax, bool m_nonpos,
                          int *q, float *pd, float *pm) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (m_nonpos && lo > 0.0f) lo = 0.0f;
    if (hi <= lo) {
        for (int i = 0; i < n; i++) q[i] = 0;
        *pd = 0.0f;
        *pm = lo;
        return;
    }
    int tq[256];
    float best_err = INFINITY;
    double XX = 0;
    for (int i = 0; i < n; i++) XX += (double)w[i] * x[i] * x[i];
    /* the plain candidate (range onto the codes) is the one to beat */
    *pd = (hi - lo) / (float)qmax;
    *pm = lo;
    {
        double err = 0;
        for (int i = 0; i < n; i++) {
            q[i] = qround((x[i] - lo) / *pd, 0, qmax);
            double r = (double)*pd * q[i] + lo - x[i];
            err += w[i] * r * r;
        }
        best_err = (float)err;
    }
    for (int k = -4; k <= 6; k++) {
        float is = ((float)qmax + 0.1f * (float)k) / (hi - lo);
        double A = 0, B = 0, C = 0, X1 = 0, X0 = 0;
        for (int i = 0; i < n; i++) {
            int v = qround((x[i] - lo) * is, 0, qmax);
            tq[i] = v;
            A += (double)w[i] * v * v;
            B += (double)w[i] * v;
            C += w[i];
            X1 += (double)w[i] * x[i] * v;
            X0 += (double)w[i] * x[i];
        }
        double det = A * C - B * B;
        float d, m;
        if (det > 0) {
            d = (float)((C * X1 - B * X0) / det);
            m = (float)((A * X0 - B * X1) / det);
        } else {
            d = 1.0f / is;
            m = lo;
        }
        if (m_nonpos && m > 0.0f) {
            m = 0.0f;
            d = A > 0 ? (float)(X1 / A) : 0.0f;
        }
        if (!(d >= 0.0f)) continue;
        /* sum w (d q + m - x)^2 from the sums, without another pass */
        double dd = d, mm = m;
        double err = dd * dd * A + 2.0 * dd * mm * B + mm * mm * C - 2.0 * (dd * X1 + mm * X0) + XX;
        if (err < best_err) {
            best_err = (float)err;
            *pd = d;
            *pm = m;
            for (int i = 0; i < n; i++) q[i] = tq[i];
        }
    }
}
static void requant_affine(const float *x, int n, float d, float m, int qmax, int *q) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; i++) q[i] = qround((x[i] - m) * id, 0, qmax);
}

/* ================================================================== */
/* 32-block quantizers                                                 */
/* ================================================================== */
static void weights_or_ones(const float *imp, float *w, int n) {
    for (int i = 0; i < n; i++) w[i] = imp ? (isfinite(imp[i]) && imp[i] > 0 ? imp[i] : 0.0f) : 1.0f;
    float s = 0;
    for (int i = 0; i < n; i++) s += w[i];
    if (!(s > 0)) for (int i = 0; i < n; i++) w[i] = 1.0f;
}
/* Weights from an importance matrix (imp: the mean square of the input
 * column each value multiplies, so the expected squared error of the
 * matrix product): imp[i] * sqrt(sigma^2 + x[i]^2), sigma^2 the mean
 * square of the value's group of gs (llama.cpp's form). Of the three forms
 * measured on q4_0, q4_k_m and q2_k of both demo models
 * (docs/quantization.md) this one gave the lowest summed mean KL
 * divergence; imp times the format's own weighting (a * rms + |x|) and
 * sqrt(imp) times it were within 1%. All-zero importance (columns the
 * calibration never activated) falls back to the format's own weighting
 * a * rms(group) + |x| (a = 3 for Q4_K/Q5_K, else 1). */
static void imp_weights_a(const float *x, const float *imp, float *w, int n, int gs, float a) {
    float tot = 0;
    for (int g = 0; g < n; g += gs) {
        int m = n - g < gs ? n - g : gs;
        float s = 0;
        for (int i = g; i < g + m; i++) s += x[i] * x[i];
        for (int i = g; i < g + m; i++) {
            float v = isfinite(imp[i]) && imp[i] > 0 ? imp[i] : 0.0f;
            w[i] = v * sqrtf(s / (float)m + x[i] * x[i]);
            tot += w[i];
        }
    }
    if (!(tot > 0) || !isfinite(tot))
        for (int g = 0; g < n; g += gs) {
            int m = n - g < gs ? n - g : gs;
            float s = 0;
            for (int i = g; i < g + m; i++) s += x[i] * x[i];
            float rms = sqrtf(s / (float)m);
            for (int i = g; i < g + m; i++) w[i] = rms > 0 ? a * rms + fabsf(x[i]) : 1.0f;
        }
}
static void imp_weights(const float *x, const float *imp, float *w, int n, int gs) { imp_weights_a(x, imp, w, n, gs, 1.0f); }

float ds8b__quant_i8_32(const float *x, int8_t *q) {
    float amax = 0.0f;
    for (int i = 0; i < 32; i++) {
        float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    if (!(amax > 0.0f) || !isfinite(amax)) {
        memset(q, 0, 32);
        return 0.0f;
    }
    float d = amax / 127.0f, id = 127.0f / amax;
    for (int i = 0; i < 32; i++) q[i] = (int8_t)qround(x[i] * id, -127, 127);
    return d;
}

static void q_q8_0(const float *x, float d, ds8b__blk_q8_0 *b) {
    int q[32];
    b->d = ds8b__f32_to_f16(d);
    requant_sym(x, 32, ds8b__f16_to_f32(b->d), -127, 127, q);
    for (int j = 0; j < 32; j++) b->qs[j] = (int8_t)q[j];
}
static void q_q4_0(const float *x, float d, ds8b__blk_q4_0 *b) {
    int q[32];
    b->d = ds8b__f32_to_f16(d);
    requant_sym(x, 32, ds8b__f16_to_f32(b->d), -8, 7, q);
    for (int j = 0; j < 16; j++) b->qs[j] = (uint8_t)((q[j] + 8) | ((q[j + 16] + 8) << 4));
}
static void q_q5_0(const float *x, float d, ds8b__blk_q5_0 *b) {
    int q[32];
    b->d = ds8b__f32_to_f16(d);
    requant_sym(x, 32, ds8b__f16_to_f32(b->d), -16, 15, q);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        int a = q[j] + 16, c = q[j + 16] + 16;
        b->qs[j] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
        qh |= (uint32_t)(a >> 4) << j;
        qh |= (uint32_t)(c >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) b->qh[k] = (uint8_t)(qh >> (8 * k));
}
static void q_q4_1(const float *x, const float *imp, ds8b__blk_q4_1 *b) {
    float w[32], d, m;
    int q[32];
    if (imp) imp_weights(x, imp, w, 32, 32);
    else weights_or_ones(NULL, w, 32);
    search_affine(x, w, 32, 15, false, q, &d, &m);
    b->d = ds8b__f32_to_f16(d);
    b->m = ds8b__f32_to_f16(m);
    requant_affine(x, 32, ds8b__f16_to_f32(b->d), ds8b__f16_to_f32(b->m), 15, q);
    for (int j = 0; j < 16; j++) b->qs[j] = (uint8_t)(q[j] | (q[j + 16] << 4));
}
static void q_q5_1(const float *x, const float *imp, ds8b__blk_q5_1 *b) {
    float w[32], d, m;
    int q[32];
    if (imp) imp_weights(x, imp, w, 32, 32);
    else weights_or_ones(NULL, w, 32);
    search_affine(x, w, 32, 31, false, q, &d, &m);
    b->d = ds8b__f32_to_f16(d);
    b->m = ds8b__f32_to_f16(m);
    requant_affine(x, 32, ds8b__f16_to_f32(b->d), ds8b__f16_to_f32(b->m), 31, q);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        b->qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
        qh |= (uint32_t)(q[j] >> 4) << j;
        qh |= (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) b->qh[k] = (uint8_t)(qh >> (8 * k));
}

/* ================================================================== */
/* K-quants                                                            */
/* ================================================================== */
/* Default importance for K-quants: emphasise large magnitudes a little
 * (rms of the super-block plus |x|). */
static void k_weights_g(const float *x, const float *imp, float *w, int n, int gs) {
    if (imp) {
        imp_weights(x, imp, w, n, gs);
        return;
    }
    /* per group of gs: its rms plus |x| */
    for (int g = 0; g < n; g += gs) {
        int m = n - g < gs ? n - g : gs;
        float s = 0;
        for (int i = g; i < g + m; i++) s += x[i] * x[i];
        float rms = sqrtf(s / (float)m);
        for (int i = g; i < g + m; i++) w[i] = rms > 0 ? rms + fabsf(x[i]) : 1.0f;
    }
}
static void k_weights(const float *x, const float *imp, float *w, int n) { k_weights_g(x, imp, w, n, 32); }

/* The affine K-quant fit: ng groups of gs values (x, weights w), codes
 * 0..qmax, x ~= d*ls*q - dmin*lm with the group scales ls and mins lm in
 * 0..smax against f16 super-scales d and dmin. Each group is fitted by
 * search_affine; after the scales are quantized, each group's (ls, lm) is
 * refined against its neighbours (+-1 each) with the codes re-rounded.
 * Q4_K and Q5_K: 8 x 32, smax 63; Q2_K: 16 x 16, smax 15. */
static void affine_groups(const float *x, const float *w, int gs, int ng, int qmax, int smax, uint16_t *pd,
                          uint16_t *pdmin, uint8_t *ls, uint8_t *lm, int *q) {
    float sc[16], mn[16];
    float max_sc = 0, max_mn = 0;
    for (int j = 0; j < ng; j++) {
        float d, m;
        search_affine(x + gs * j, w + gs * j, gs, qmax, true, q + gs * j, &d, &m);
        sc[j] = d;
        mn[j] = -m;
        if (sc[j] > max_sc) max_sc = sc[j];
        if (mn[j] > max_mn) max_mn = mn[j];
    }
    float d = max_sc / (float)smax, dmin = max_mn / (float)smax;
    *pd = ds8b__f32_to_f16(d);
    *pdmin = ds8b__f32_to_f16(dmin);
    float d16 = ds8b__f16_to_f32(*pd), dm16 = ds8b__f16_to_f32(*pdmin);
    for (int j = 0; j < ng; j++) {
        ls[j] = (uint8_t)(d16 > 0 ? qround(sc[j] / d16, 0, smax) : 0);
        lm[j] = (uint8_t)(dm16 > 0 ? qround(mn[j] / dm16, 0, smax) : 0);
    }
    /* The scale and min of each group, rounded to the nearest, are not
     * always the best pair once the codes are re-rounded against them:
     * try the neighbours and keep the pair with the smallest weighted
     * error. */
    for (int j = 0; j < ng; j++) {
        const float *xj = x + gs * j, *wj = w + gs * j;
        int bs = ls[j], bm = lm[j];
        double best = INFINITY;
        for (int a = ls[j] - 1; a <= ls[j] + 1; a++) {
            if (a < 0 || a > smax) continue;
            for (int b = lm[j] - 1; b <= lm[j] + 1; b++) {
                if (b < 0 || b > smax) continue;
                float dj = d16 * (float)a, mj = dm16 * (float)b, id = dj != 0.0f ? 1.0f / dj : 0.0f;
                double err = 0;
                for (int i = 0; i < gs; i++) {
                    int v = qround((xj[i] + mj) * id, 0, qmax);
                    double r = (double)dj * v - mj - xj[i];
                    err += wj[i] * r * r;
                }
                if (err < best) {
                    best = err;
                    bs = a;
                    bm = b;
                }
            }
        }
        ls[j] = (uint8_t)bs;
        lm[j] = (uint8_t)bm;
    }
    for (int j = 0; j < ng; j++) {
        float dj = d16 * ls[j], mj = dm16 * lm[j];
        requant_affine(x + gs * j, gs, dj, -mj, qmax, q + gs * j);
    }
}

/* Shared by Q4_K and Q5_K: 8 sub-blocks of 32 with codes 0..qmax. */
static void k_affine(const float *x, const float *imp, int qmax, uint16_t *pd, uint16_t *pdmin,
                     uint8_t scales[12], int q[256]) {
    float w[256];
    /* Without an importance matrix each value weighs 3*rms(group) + |x|:
     * between plain squared error (best for demo-qwen3 zh) and llama.cpp's
     * rms + |x| (best for demo-llama); measured in docs/quantization.md */
    if (imp) imp_weights_a(x, imp, w, 256, 32, 3.0f);
    else
        for (int g = 0; g < 256; g += 32) {
            float ss = 0;
            for (int i = g; i < g + 32; i++) ss += x[i] * x[i];
            float rms = sqrtf(ss / 32.0f);
            for (int i = g; i < g + 32; i++) w[i] = rms > 0 ? 3.0f * rms + fabsf(x[i]) : 1.0f;
        }
    uint8_t ls[8], lm[8];
    affine_groups(x, w, 32, 8, qmax, 63, pd, pdmin, ls, lm, q);
    memset(scales, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            scales[j] |= ls[j];
            scales[j + 4] |= lm[j];
        } else {
            scales[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* Q2_K: 16 groups of 16, codes 0..3, 4-bit scales and mins. Default
 * weights rms(group of 16) + |x|. */
static void q_q2_k(const float *x, const float *imp, ds8b__blk_q2_k *b) {
    float w[256];
    int q[256];
    uint8_t ls[16], lm[16];
    k_weights_g(x, imp, w, 256, 16);
    affine_groups(x, w, 16, 16, 3, 15, &b->d, &b->dmin, ls, lm, q);
    for (int j = 0; j < 16; j++) b->scales[j] = (uint8_t)(ls[j] | (lm[j] << 4));
    memset(b->qs, 0, sizeof b->qs);
    /* value i: half h = i/128, plane p = (i%128)/32, byte 32h + i%32, bits 2p */
    for (int i = 0; i < 256; i++) b->qs[32 * (i / 128) + i % 32] |= (uint8_t)(q[i] << (2 * ((i % 128) / 32)));
}

/* Q3_K: 16 groups of 16, symmetric codes -4..3 (the scale search of the
 * 32-block formats), 6-bit signed group scales against an f16 super-scale
 * that maps the largest scale onto -32; each group's 6-bit scale is then
 * refined against its neighbours (+-1). Default weights rms(16) + |x|. */
static void q_q3_k(const float *x, const float *imp, ds8b__blk_q3_k *b) {
    float w[256], sc[16];
    int q[256];
    k_weights_g(x, imp, w, 256, 16);
    sym_search()(x, w, 16, 16, -4, 3, sc);
    float amax = 0, smax = 0;
    for (int j = 0; j < 16; j++)
        if (fabsf(sc[j]) > amax) {
            amax = fabsf(sc[j]);
            smax = sc[j];
        }
    b->d = ds8b__f32_to_f16(amax > 0 ? -smax / 32.0f : 0.0f);
    float d16 = ds8b__f16_to_f32(b->d);
    int ls[16];
    for (int j = 0; j < 16; j++) {
        const float *xj = x + 16 * j, *wj = w + 16 * j;
        int l0 = d16 != 0.0f ? qround(sc[j] / d16, -32, 31) : 0, best_l = l0;
        double best = INFINITY;
        for (int l = l0 - 1; l <= l0 + 1; l++) {
            if (l < -32 || l > 31) continue;
            int tq[16];
            float dj = d16 * (float)l;
            requant_sym(xj, 16, dj, -4, 3, tq);
            double err = 0;
            for (int i = 0; i < 16; i++) {
                double r = (double)dj * tq[i] - xj[i];
                err += wj[i] * r * r;
            }
            if (err < best) {
                best = err;
                best_l = l;
            }
        }
        ls[j] = best_l;
        requant_sym(xj, 16, d16 * (float)best_l, -4, 3, q + 16 * j);
    }
    memset(b->scales, 0, sizeof b->scales);
    for (int j = 0; j < 16; j++) {
        int s = ls[j] + 32;
        if (j < 8) b->scales[j] |= (uint8_t)(s & 0xF);
        else b->scales[j - 8] |= (uint8_t)((s & 0xF) << 4);
        b->scales[8 + (j & 3)] |= (uint8_t)((s >> 4) << (2 * (j >> 2)));
    }
    memset(b->qs, 0, sizeof b->qs);
    memset(b->hmask, 0, sizeof b->hmask);
    for (int i = 0; i < 256; i++) {
        int u = q[i] + 4, h = i / 128, p = (i % 128) / 32, l = i % 32;
        b->qs[32 * h + l] |= (uint8_t)((u & 3) << (2 * p));
        if (u & 4) b->hmask[l] |= (uint8_t)(1u << (4 * h + p));
    }
}

static void q_q4_k(const float *x, const float *imp, ds8b__blk_q4_k *b) {
    int q[256];
    k_affine(x, imp, 15, &b->d, &b->dmin, b->scales, q);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b->qs[32 * c + l] = (uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
}
static void q_q5_k(const float *x, const float *imp, ds8b__blk_q5_k *b) {
    int q[256];
    k_affine(x, imp, 31, &b->d, &b->dmin, b->scales, q);
    memset(b->qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int v = q[64 * c + l], u = q[64 * c + 32 + l];
            b->qs[32 * c + l] = (uint8_t)((v & 0xF) | ((u & 0xF) << 4));
            b->qh[l] |= (uint8_t)(((v >> 4) << (2 * c)) | ((u >> 4) << (2 * c + 1)));
        }
}
static void q_q6_k(const float *x, const float *imp, ds8b__blk_q6_k *b) {
    float w[256], sc[16];
    int q[256];
    k_weights(x, imp, w, 256);
    float amax = 0;
    sym_search()(x, w, 16, 16, -32, 31, sc);
    for (int j = 0; j < 16; j++)
        if (fabsf(sc[j]) > amax) amax = fabsf(sc[j]);
    float d = amax / 127.0f;
    b->d = ds8b__f32_to_f16(d);
    float d16 = ds8b__f16_to_f32(b->d);
    for (int j = 0; j < 16; j++) {
        int ls = d16 > 0 ? qround(sc[j] / d16, -128, 127) : 0;
        b->scales[j] = (int8_t)ls;
        requant_sym(x + 16 * j, 16, d16 * (float)ls, -32, 31, q + 16 * j);
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            int v0 = q[128 * h + l] + 32, v1 = q[128 * h + l + 32] + 32;
            int v2 = q[128 * h + l + 64] + 32, v3 = q[128 * h + l + 96] + 32;
            b->ql[64 * h + l] = (uint8_t)((v0 & 0xF) | ((v2 & 0xF) << 4));
            b->ql[64 * h + l + 32] = (uint8_t)((v1 & 0xF) | ((v3 & 0xF) << 4));
            b->qh[32 * h + l] =
                (uint8_t)((v0 >> 4) | ((v1 >> 4) << 2) | ((v2 >> 4) << 4) | ((v3 >> 4) << 6));
        }
}

void ds8b__quant_q8_k(const float *x, ds8b__blk_q8_k *y, int64_t n) {
    for (int64_t i = 0; i < n / 256; i++, x += 256, y++) {
        float amax = 0;
        for (int j = 0; j < 256; j++) {
            float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        if (!(amax > 0.0f) || !isfinite(amax)) {
            memset(y, 0, sizeof *y);
            continue;
        }
        float id = 127.0f / amax;
        y->d = amax / 127.0f;
        for (int j = 0; j < 256; j++) y->qs[j] = (int8_t)qround(x[j] * id, -127, 127);
        for (int s = 0; s < 16; s++) {
            int t = 0;
            for (int j = 0; j < 16; j++) t += y->qs[16 * s + j];
            y->bsums[s] = (int16_t)t;
        }
    }
}

/* ================================================================== */
/* Entry points                                                        */
/* ================================================================== */
bool ds8b__type_can_quantize(int type) {
    switch (type) {
    case DS8B_T_F32: case DS8B_T_F16: case DS8B_T_BF16:
    case DS8B_T_Q4_0: case DS8B_T_Q4_1: case DS8B_T_Q5_0: case DS8B_T_Q5_1:
    case DS8B_T_Q8_0: case DS8B_T_Q2_K: case DS8B_T_Q3_K: case DS8B_T_Q4_K: case DS8B_T_Q5_K: case DS8B_T_Q6_K:
    case DS8B_T_Q8_K: case DS8B_T_W4A16:
        return true;
    default: return false;
    }
}

int ds8b__quant_row_w(int type, const float *src, const float *imp, void *dst, int64_t n) {
    const ds8b__type_traits *t = ds8b__type_info(type);
    if (!t || !ds8b__type_can_quantize(type)) return DS8B_E_UNSUPPORTED;
    if (n < 0 || n % t->block_elems) return DS8B_E_INVALID;
    int be = t->block_elems;
    float buf[256];
    uint8_t *o = dst;
    if (type == DS8B_T_F32) {
        float *f = dst;
        for (int64_t i = 0; i < n; i++) f[i] = src[i];
        return 0;
    }
    if (type == DS8B_T_F16 || type == DS8B_T_BF16) {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++)
            h[i] = type == DS8B_T_F16 ? ds8b__f32_to_f16(src[i]) : ds8b__f32_to_bf16(src[i]);
        return 0;
    }
    if (type == DS8B_T_Q8_K) {
        for (int64_t i = 0; i < n; i += 256) {
            for (int j = 0; j < 256; j++) buf[j] = finite_or0(src[i + j]);
            ds8b__quant_q8_k(buf, (ds8b__blk_q8_k *)(o + (size_t)(i / 256) * 292), 256);
        }
        return 0;
    }
    if (type == DS8B_T_Q8_0 || type == DS8B_T_Q4_0 || type == DS8B_T_Q5_0) {
        /* 16 blocks at a time through the (vectorised) scale search */
        float xb[16 * 32], wb[16 * 32], d[16];
        if (!imp && type == DS8B_T_Q8_0)
            for (int j = 0; j < 16 * 32; j++) wb[j] = 1.0f;
        int qmin = type == DS8B_T_Q8_0 ? -127 : type == DS8B_T_Q4_0 ? -8 : -16;
        ds8b__sym_search_fn search = sym_search();
        for (int64_t i = 0; i < n; i += 16 * 32) {
            int nb = (int)((n - i) / 32 < 16 ? (n - i) / 32 : 16);
            for (int j = 0; j < nb * 32; j++) xb[j] = finite_or0(src[i + j]);
            if (imp)
                for (int k = 0; k < nb; k++) imp_weights(xb + 32 * k, imp + i + 32 * k, wb + 32 * k, 32, 32);
            else if (type != DS8B_T_Q8_0) /* rms + |x|: lower NLL than plain error (Q4_0, Q5_0) */
                for (int k = 0; k < nb; k++) k_weights(xb + 32 * k, NULL, wb + 32 * k, 32);
            search(xb, wb, 32, nb, qmin, -qmin - 1 + (type == DS8B_T_Q8_0), d);
            for (int k = 0; k < nb; k++, o += t->block_bytes) {
                if (type == DS8B_T_Q8_0) q_q8_0(xb + 32 * k, d[k], (void *)o);
                else if (type == DS8B_T_Q4_0) q_q4_0(xb + 32 * k, d[k], (void *)o);
                else q_q5_0(xb + 32 * k, d[k], (void *)o);
            }
        }
        return 0;
    }
    for (int64_t i = 0; i < n; i += be, o += t->block_bytes) {
        for (int j = 0; j < be; j++) buf[j] = finite_or0(src[i + j]);
        const float *w = imp ? imp + i : NULL;
        switch (type) {
        case DS8B_T_Q4_1:
        case DS8B_T_W4A16: q_q4_1(buf, w, (void *)o); break;
        case DS8B_T_Q5_1: q_q5_1(buf, w, (void *)o); break;
        case DS8B_T_Q2_K: q_q2_k(buf, w, (void *)o); break;
        case DS8B_T_Q3_K: q_q3_k(buf, w, (void *)o); break;
        case DS8B_T_Q4_K: q_q4_k(buf, w, (void *)o); break;
        case DS8B_T_Q5_K: q_q5_k(buf, w, (void *)o); break;
        case DS8B_T_Q6_K: q_q6_k(buf, w, (void *)o); break;
        default: return DS8B_E_UNSUPPORTED;
        }
    }
    return 0;
}

int ds8b__quant_row(int type, const float *src, void *dst, int64_t n) {
    return ds8b__quant_row_w(type, src, NULL, dst, n);
}
