/*
 * scalar.c -- reference kernels in plain C: integer block dots
 * against quantized activations, and the float helpers. Other levels are
 * tested against these.
 */
#include "kernels/kern_impl.h"

/* ================================================================== */
/* Activation formats                                                  */
/* ================================================================== */
static size_t act32_size(int64_t cols) { return (size_t)(cols / 32) * sizeof(ds8b__act32); }
static void act32_quant(const float *x, uint8_t *dst, int64_t cols) {
    ds8b__act32 *a = (ds8b__act32 *)dst;
    for (int64_t b = 0; b < cols / 32; b++, a++, x += 32) {
        a->d = ds8b__quant_i8_32(x, a->qs);
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += a->qs[j];
        a->sum = s;
    }
}
static size_t actk_size(int64_t cols) { return (size_t)(cols / 256) * sizeof(ds8b__blk_q8_k); }
static void actk_quant(const float *x, uint8_t *dst, int64_t cols) {
    ds8b__quant_q8_k(x, (ds8b__blk_q8_k *)dst, cols);
}

/* ================================================================== */
/* Row dots: one weight row against one activation row                 */
/* ================================================================== */
static float dot_q4_0(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q4_0 *w = wv;
    const ds8b__act32 *a = (const ds8b__act32 *)av;
    float acc = 0;
    for (int64_t b = 0; b < cols / 32; b++) {
        int32_t s = 0;
        for (int j = 0; j < 16; j++)
            s += (w[b].qs[j] & 0xF) * a[b].qs[j] + (w[b].qs[j] >> 4) * a[b].qs[j + 16];
        s -= 8 * a[b].sum;
        acc += ds8b__f16_to_f32(w[b].d) * a[b].d * (float)s;
    }
    return acc;
}
static float dot_q4_1(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q4_1 *w = wv;
    const ds8b__act32 *a = (const ds8b__act32 *)av;
    float acc = 0;
    for (int64_t b = 0; b < cols / 32; b++) {
        int32_t s = 0;
        for (int j = 0; j < 16; j++)
            s += (w[b].qs[j] & 0xF) * a[b].qs[j] + (w[b].qs[j] >> 4) * a[b].qs[j + 16];
        acc += ds8b__f16_to_f32(w[b].d) * a[b].d * (float)s +
               ds8b__f16_to_f32(w[b].m) * a[b].d * (float)a[b].sum;
    }
    return acc;
}
static inline uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static float dot_q5_0(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q5_0 *w = wv;
    const ds8b__act32 *a = (const ds8b__act32 *)av;
    float acc = 0;
    for (int64_t b = 0; b < cols / 32; b++) {
        uint32_t qh = le32(w[b].qh);
        int32_t s = 0;
        for (int j = 0; j < 16; j++) {
            int v0 = (w[b].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int v1 = (w[b].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            s += v0 * a[b].qs[j] + v1 * a[b].qs[j + 16];
        }
        s -= 16 * a[b].sum;
        acc += ds8b__f16_to_f32(w[b].d) * a[b].d * (float)s;
    }
    return acc;
}
static float dot_q5_1(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q5_1 *w = wv;
    const ds8b__act32 *a = (const ds8b__act32 *)av;
    float acc = 0;
    for (int64_t b = 0; b < cols / 32; b++) {
        uint32_t qh = le32(w[b].qh);
        int32_t s = 0;
        for (int j = 0; j < 16; j++) {
            int v0 = (w[b].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int v1 = (w[b].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            s += v0 * a[b].qs[j] + v1 * a[b].qs[j + 16];
        }
        acc += ds8b__f16_to_f32(w[b].d) * a[b].d * (float)s +
               ds8b__f16_to_f32(w[b].m) * a[b].d * (float)a[b].sum;
    }
    return acc;
}
static float dot_q8_0(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q8_0 *w = wv;
    const ds8b__act32 *a = (const ds8b__act32 *)av;
    float acc = 0;
    for (int64_t b = 0; b < cols / 32; b++) {
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += w[b].qs[j] * a[b].qs[j];
        acc += ds8b__f16_to_f32(w[b].d) * a[b].d * (float)s;
    }
    return acc;
}
static float dot_q2_k(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q2_k *w = wv;
    const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)av;
    float acc = 0;
    for (int64_t b = 0; b < cols / 256; b++) {
        int32_t isum = 0, msum = 0;
        for (int s = 0; s < 16; s++) {
            int h = s / 8, pl = (s % 8) / 2, half = s % 2;
            const uint8_t *q = w[b].qs + 32 * h + 16 * half;
            const int8_t *x = a[b].qs + 16 * s;
            int32_t t = 0;
            for (int l = 0; l < 16; l++) t += ((q[l] >> (2 * pl)) & 3) * x[l];
            isum += (w[b].scales[s] & 0xF) * t;
            msum += (w[b].scales[s] >> 4) * a[b].bsums[s];
        }
        acc += a[b].d * (ds8b__f16_to_f32(w[b].d) * (float)isum -
                         ds8b__f16_to_f32(w[b].dmin) * (float)msum);
    }
    return acc;
}
static float dot_q3_k(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q3_k *w = wv;
    const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)av;
    float acc = 0;
    for (int64_t b = 0; b < cols / 256; b++) {
        int8_t sc[16];
        ds8b__k3_scales(w[b].scales, sc);
        int32_t isum = 0;
        for (int s = 0; s < 16; s++) {
            int h = s / 8, pl = (s % 8) / 2, half = s % 2;
            const uint8_t *q = w[b].qs + 32 * h + 16 * half;
            const uint8_t *hm = w[b].hmask + 16 * half;
            int bit = 4 * h + pl;
            const int8_t *x = a[b].qs + 16 * s;
            int32_t t = 0;
            for (int l = 0; l < 16; l++) {
                int v = ((q[l] >> (2 * pl)) & 3) - (((hm[l] >> bit) & 1) ? 0 : 4);
                t += v * x[l];
            }
            isum += sc[s] * t;
        }
        acc += a[b].d * ds8b__f16_to_f32(w[b].d) * (float)isum;
    }
    return acc;
}
static float dot_q4_k(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q4_k *w = wv;
    const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)av;
    float acc = 0;
    for (int64_t b = 0; b < cols / 256; b++) {
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            ds8b__k4_scale_min(w[b].scales, j, &sc, &m);
            const uint8_t *q = w[b].qs + 32 * (j / 2);
            int sh = 4 * (j & 1);
            const int8_t *x = a[b].qs + 32 * j;
            int32_t t = 0;
            for (int l = 0; l < 32; l++) t += ((q[l] >> sh) & 0xF) * x[l];
            isum += sc * t;
            msum += m * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
        }
        acc += a[b].d * (ds8b__f16_to_f32(w[b].d) * (float)isum -
                         ds8b__f16_to_f32(w[b].dmin) * (float)msum);
    }
    return acc;
}
static float dot_q5_k(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q5_k *w = wv;
    const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)av;
    float acc = 0;
    for (int64_t b = 0; b < cols / 256; b++) {
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            ds8b__k4_scale_min(w[b].scales, j, &sc, &m);
            const uint8_t *q = w[b].qs + 32 * (j / 2);
            int sh = 4 * (j & 1);
            const int8_t *x = a[b].qs + 32 * j;
            int32_t t = 0;
            for (int l = 0; l < 32; l++)
                t += (((q[l] >> sh) & 0xF) | (((w[b].qh[l] >> j) & 1) << 4)) * x[l];
            isum += sc * t;
            msum += m * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
        }
        acc += a[b].d * (ds8b__f16_to_f32(w[b].d) * (float)isum -
                         ds8b__f16_to_f32(w[b].dmin) * (float)msum);
    }
    return acc;
}
static float dot_q6_k(const void *wv, const uint8_t *av, int64_t cols) {
    const ds8b__blk_q6_k *w = wv;
    const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)av;
    float acc = 0;
    for (int64_t b = 0; b < cols / 256; b++) {
        int32_t isum = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[b].ql + 64 * h, *qh = w[b].qh + 32 * h;
            for (int k = 0; k < 4; k++) {
                for (int half = 0; half < 2; half++) {
                    int32_t t = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        int lo = (k & 1) ? ql[l + 32] : ql[l];
                        int nib = k < 2 ? (lo & 0xF) : (lo >> 4);
                        int v = (nib | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
                        t += v * a[b].qs[128 * h + 32 * k + l];
                    }
                    isum += w[b].scales[8 * h + 2 * k + half] * t;
                }
            }
        }
        acc += a[b].d * ds8b__f16_to_f32(w[b].d) * (float)isum;
    }
    return acc;
}

#define DEF_MM(NAME, DOT)                                                                  \
    static void NAME(const uint8_t *w, size_t ws, int64_t nr, const uint8_t *xa, size_t as, \
                     int64_t nc, int64_t cols, float *y, int64_t ldy) {                     \
        for (int64_t r = 0; r < nr; r++)                                                    \
            for (int64_t c = 0; c < nc; c++)                                                \
                y[c * ldy + r] = DOT(w + (size_t)r * ws, xa + (size_t)c * as, cols);        \
    }
DEF_MM(mm_q4_0, dot_q4_0)
DEF_MM(mm_q4_1, dot_q4_1)
DEF_MM(mm_q5_0, dot_q5_0)
DEF_MM(mm_q5_1, dot_q5_1)
DEF_MM(mm_q8_0, dot_q8_0)
DEF_MM(mm_q2_k, dot_q2_k)
DEF_MM(mm_q3_k, dot_q3_k)
DEF_MM(mm_q4_k, dot_q4_k)
DEF_MM(mm_q5_k, dot_q5_k)
DEF_MM(mm_q6_k, dot_q6_k)

/* ================================================================== */
/* Float helpers                                                       */
/* ================================================================== */
/* Fixed 8-way interleaved sums so the order is independent of
 * alignment and matches what a vector unit would roughly do. */
static float s_dot_f32(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    for (; i < n; i++) acc[0] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}
static void s_axpy(float *y, const float *x, float a, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}
static void s_scale(float *y, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] *= s;
}
static float s_dot_f16(const uint16_t *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += ds8b__f16_to_f32(a[i + k]) * b[i + k];
    for (; i < n; i++) acc[0] += ds8b__f16_to_f32(a[i]) * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}
static float s_dot_bf16(const uint16_t *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += ds8b__bf16_to_f32(a[i + k]) * b[i + k];
    for (; i < n; i++) acc[0] += ds8b__bf16_to_f32(a[i]) * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}
static float s_dot_w4a16(const void *wv, const float *x, int64_t nb) {
    const ds8b__blk_w4a16 *w = wv;
    float acc = 0;
    for (int64_t b = 0; b < nb; b++, x += 32) {
        float d = ds8b__f16_to_f32(w[b].d), m = ds8b__f16_to_f32(w[b].m);
        float sq = 0, sx = 0;
        for (int j = 0; j < 16; j++) {
            sq += (float)(w[b].qs[j] & 0xF) * x[j] + (float)(w[b].qs[j] >> 4) * x[j + 16];
            sx += x[j] + x[j + 16];
        }
        acc += d * sq + m * sx;
    }
    return acc;
}
static void s_axpy_f16(float *y, const uint16_t *h, float a, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * ds8b__f16_to_f32(h[i]);
}
static void s_f16_to_f32(const uint16_t *h, float *f, int64_t n) {
    for (int64_t i = 0; i < n; i++) f[i] = ds8b__f16_to_f32(h[i]);
}
static void s_f32_to_f16(const float *f, uint16_t *h, int64_t n) {
    for (int64_t i = 0; i < n; i++) h[i] = ds8b__f32_to_f16(f[i]);
}
static void s_bf16_to_f32(const uint16_t *h, float *f, int64_t n) {
    for (int64_t i = 0; i < n; i++) f[i] = ds8b__bf16_to_f32(h[i]);
}
static void s_w4a16_to_f32(const void *w, float *f, int64_t nb) {
    ds8b__dequant_row(DS8B_T_W4A16, w, f, nb * 32);
}

void ds8b__kops_fill_scalar(ds8b__kops *k) {
    memset(k, 0, sizeof *k);
    k->name = "scalar";
    static const struct { int t; ds8b__mm_fn mm; bool k; } tab[] = {
        {DS8B_T_Q4_0, mm_q4_0, false}, {DS8B_T_Q4_1, mm_q4_1, false},
        {DS8B_T_Q5_0, mm_q5_0, false}, {DS8B_T_Q5_1, mm_q5_1, false},
        {DS8B_T_Q8_0, mm_q8_0, false}, {DS8B_T_Q2_K, mm_q2_k, true},
        {DS8B_T_Q3_K, mm_q3_k, true},  {DS8B_T_Q4_K, mm_q4_k, true},
        {DS8B_T_Q5_K, mm_q5_k, true},  {DS8B_T_Q6_K, mm_q6_k, true},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        ds8b__qkern *q = &k->q[tab[i].t];
        q->mm = tab[i].mm;
        q->act_size = tab[i].k ? actk_size : act32_size;
        q->act_quant = tab[i].k ? actk_quant : act32_quant;
        q->batched = false;
    }
    k->dot_f32 = s_dot_f32;
    k->axpy = s_axpy;
    k->scale = s_scale;
    k->dot_f16 = s_dot_f16;
    k->dot_bf16 = s_dot_bf16;
    k->dot_w4a16 = s_dot_w4a16;
    k->axpy_f16 = s_axpy_f16;
    k->f16_to_f32 = s_f16_to_f32;
    k->f32_to_f16 = s_f32_to_f16;
    k->bf16_to_f32 = s_bf16_to_f32;
    k->w4a16_to_f32 = s_w4a16_to_f32;
}
