/*
 * packing.c -- the interleaved row-group layout (see packing.h): packing,
 * unpacking and the reference group kernels.
 */
#include "kernels/packing.h"
#include "kernels/kern_impl.h"

#include <math.h>

/* A record is described by its fields: n units of u bytes taken from byte
 * src of the GGUF block; unit i of row r is stored at dst + (i*16 + r)*u.
 * xf: a reversible transform applied to each unit on the way in. */
enum { XF_NONE, XF_FLIP8, XF_QH5 };
typedef struct { uint16_t src, dst, n; uint8_t u, xf; } fld;
typedef struct { int type, nf; uint16_t bb; uint8_t k; fld f[5]; } lay;

static const lay g_lays[] = {
    /* Q4_0: d, qs dwords (unchanged) */
    {DS8B_T_Q4_0, 2, 18, 0, {{0, 0, 1, 2, 0}, {2, 32, 4, 4, 0}}},
    /* Q8_0: d, qs dwords as q + 128 */
    {DS8B_T_Q8_0, 2, 34, 0, {{0, 0, 1, 2, 0}, {2, 32, 8, 4, XF_FLIP8}}},
    /* Q4_1: d, m, qs dwords */
    {DS8B_T_Q4_1, 3, 20, 0, {{0, 0, 1, 2, 0}, {2, 32, 1, 2, 0}, {4, 64, 4, 4, 0}}},
    /* Q5_0: d, qh bit-transposed (XF_QH5), qs dwords */
    {DS8B_T_Q5_0, 3, 22, 0, {{0, 0, 1, 2, 0}, {2, 32, 1, 4, XF_QH5}, {6, 96, 4, 4, 0}}},
    /* Q5_1: d, m, qh bit-transposed, qs dwords */
    {DS8B_T_Q5_1, 4, 24, 0, {{0, 0, 1, 2, 0}, {2, 32, 1, 2, 0}, {4, 64, 1, 4, XF_QH5}, {8, 128, 4, 4, 0}}},
    /* Q2_K: d, dmin, scale bytes [16][16], qs dwords */
    {DS8B_T_Q2_K, 4, 84, 1, {{80, 0, 1, 2, 0}, {82, 32, 1, 2, 0}, {0, 64, 16, 1, 0}, {16, 320, 16, 4, 0}}},
    /* Q3_K: d, the 12 GGUF scale bytes as 3 dwords, hmask dwords, qs dwords */
    {DS8B_T_Q3_K, 4, 110, 1, {{108, 0, 1, 2, 0}, {96, 32, 3, 4, 0}, {0, 224, 8, 4, 0}, {32, 736, 16, 4, 0}}},
    /* Q4_K: d, dmin, the 12 scale bytes as 3 dwords, qs dwords */
    {DS8B_T_Q4_K, 4, 144, 1, {{0, 0, 1, 2, 0}, {2, 32, 1, 2, 0}, {4, 64, 3, 4, 0}, {16, 256, 32, 4, 0}}},
    /* Q5_K: as Q4_K, then the qh dwords */
    {DS8B_T_Q5_K, 5, 176, 1,
     {{0, 0, 1, 2, 0}, {2, 32, 1, 2, 0}, {4, 64, 3, 4, 0}, {48, 256, 32, 4, 0}, {16, 2304, 8, 4, 0}}},
    /* Q6_K: d, scale pairs (sc[2p], sc[2p+1]) as 16-bit units, ql dwords, qh dwords */
    {DS8B_T_Q6_K, 4, 210, 1, {{208, 0, 1, 2, 0}, {192, 32, 8, 2, 0}, {0, 288, 32, 4, 0}, {128, 2336, 16, 4, 0}}},
};

static const lay *find(int type) {
    for (size_t i = 0; i < sizeof g_lays / sizeof g_lays[0]; i++)
        if (g_lays[i].type == type) return &g_lays[i];
    return NULL;
}

bool ds8b__pack_supported(int type) { return find(type) != NULL; }
bool ds8b__gact_is_k(int type) {
    const lay *l = find(type);
    return l && l->k;
}
size_t ds8b__gact_row_bytes(int type, int64_t cols) {
    if (cols <= 0) return 0;
    return ds8b__gact_is_k(type) ? (size_t)(cols / 256) * sizeof(ds8b__blk_q8_k)
                                 : (size_t)(cols / 32) * sizeof(ds8b__act32);
}
void ds8b__gact_quant_k(const float *x, uint8_t *dst, int64_t cols) {
    ds8b__quant_q8_k(x, (ds8b__blk_q8_k *)dst, cols);
}

/* blocks of the type per nb 32-value units */
static int64_t nblk(const lay *l, int64_t nb) { return l->k ? nb / 8 : nb; }

/* XF_QH5: the 32 fifth bits of a Q5_0/Q5_1 block (bit v of the LE
 * dword: value v) stored with bit b of byte i = bit 4b + i, so the bits
 * of value dword b (values 4b..4b+3: low nibbles of qs dword b for b < 4,
 * high nibbles of qs dword b - 4 otherwise) reach bit 4 of their bytes by
 * one shift of the whole dword. */
static uint32_t qh5_fwd(uint32_t q) {
    uint32_t h = 0;
    for (int b = 0; b < 8; b++)
        for (int i = 0; i < 4; i++) h |= ((q >> (4 * b + i)) & 1u) << (8 * i + b);
    return h;
}
static uint32_t qh5_inv(uint32_t h) {
    uint32_t q = 0;
    for (int b = 0; b < 8; b++)
        for (int i = 0; i < 4; i++) q |= ((h >> (8 * i + b)) & 1u) << (4 * b + i);
    return q;
}
static void xform(int xf, uint8_t *d, int u, bool inv) {
    if (xf == XF_FLIP8) {
        for (int b = 0; b < u; b++) d[b] ^= 0x80;
    } else if (xf == XF_QH5) {
        uint32_t v = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
        v = inv ? qh5_inv(v) : qh5_fwd(v);
        for (int b = 0; b < 4; b++) d[b] = (uint8_t)(v >> (8 * b));
    }
}
static void put_unit(const fld *f, const uint8_t *blk, uint8_t *rec, int r) {
    for (int i = 0; i < f->n; i++) {
        uint8_t *d = rec + f->dst + ((size_t)i * DS8B_G + (size_t)r) * f->u;
        memcpy(d, blk + f->src + (size_t)i * f->u, f->u);
        xform(f->xf, d, f->u, false);
    }
}
static void get_unit(const fld *f, const uint8_t *rec, int r, uint8_t *blk) {
    for (int i = 0; i < f->n; i++) {
        uint8_t *d = blk + f->src + (size_t)i * f->u;
        memcpy(d, rec + f->dst + ((size_t)i * DS8B_G + (size_t)r) * f->u, f->u);
        xform(f->xf, d, f->u, true);
    }
}

void ds8b__pack_group(int type, const uint8_t *src, size_t wstride, int n, int64_t nb, uint8_t *dst) {
    const lay *l = find(type);
    if (!l || n < 0 || n > DS8B_G || nb <= 0) return;
    const int64_t m = nblk(l, nb);
    const size_t rec = (size_t)DS8B_G * l->bb;
    if (n < DS8B_G) memset(dst, 0, rec * (size_t)m);
    /* row by row: sequential reads of each row (this also runs on the fly
     * for the row-major tail rows of a packed matrix) */
    for (int r = 0; r < n; r++) {
        const uint8_t *blk = src + (size_t)r * wstride;
        uint8_t *o = dst;
        for (int64_t b = 0; b < m; b++, blk += l->bb, o += rec)
            for (int fi = 0; fi < l->nf; fi++) put_unit(&l->f[fi], blk, o, r);
    }
}

void ds8b__unpack_group(int type, const uint8_t *g, int64_t nb, uint8_t *dst, size_t wstride, int n) {
    const lay *l = find(type);
    if (!l || n < 0 || n > DS8B_G || nb <= 0) return;
    const int64_t m = nblk(l, nb);
    const size_t rec = (size_t)DS8B_G * l->bb;
    for (int64_t b = 0; b < m; b++) {
        const uint8_t *o = g + (size_t)b * rec;
        for (int r = 0; r < n; r++) {
            uint8_t *blk = dst + (size_t)r * wstride + (size_t)b * l->bb;
            for (int fi = 0; fi < l->nf; fi++) get_unit(&l->f[fi], o, r, blk);
        }
    }
}

void ds8b__pack_matrix(int type, const uint8_t *src, int64_t rows, int64_t nb, uint8_t *dst) {
    const lay *l = find(type);
    if (!l || rows <= 0 || nb <= 0) return;
    size_t wstride = (size_t)nblk(l, nb) * l->bb, gbytes = wstride * DS8B_G;
    int64_t ng = rows / DS8B_G;
    for (int64_t gi = 0; gi < ng; gi++)
        ds8b__pack_group(type, src + (size_t)gi * gbytes, wstride, DS8B_G, nb, dst + (size_t)gi * gbytes);
    size_t done = (size_t)ng * gbytes;
    memcpy(dst + done, src + done, (size_t)(rows - ng * DS8B_G) * wstride);
}

/* ------------------------------------------------------------------ */
/* Reference group kernels                                             */
/* ------------------------------------------------------------------ */
static void ref_32(int type, const uint8_t *g, int64_t nb, const uint8_t *xa, size_t astride, int64_t ncols,
                   float *y, int64_t ldy, int nr) {
    const int K = type == DS8B_T_Q4_0 ? 4 : 8;
    const size_t rec = (size_t)DS8B_G * find(type)->bb;
    for (int64_t c = 0; c < ncols; c++) {
        const ds8b__act32 *a = (const ds8b__act32 *)(xa + (size_t)c * astride);
        for (int r = 0; r < nr; r++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *o = g + (size_t)b * rec;
                uint16_t dh;
                memcpy(&dh, o + 2 * r, 2);
                const uint8_t *q = o + 2 * DS8B_G;
                int32_t s = (type == DS8B_T_Q4_0 ? -8 : -128) * a[b].sum;
                for (int k = 0; k < K; k++) {
                    const uint8_t *qd = q + ((size_t)k * DS8B_G + r) * 4;
                    for (int i = 0; i < 4; i++) {
                        if (type == DS8B_T_Q4_0) {
                            s += (qd[i] & 15) * a[b].qs[4 * k + i];
                            s += (qd[i] >> 4) * a[b].qs[16 + 4 * k + i];
                        } else {
                            s += qd[i] * a[b].qs[4 * k + i];
                        }
                    }
                }
                float dd = ds8b__f16_to_f32(dh) * a[b].d;
                acc = fmaf((float)s, dd, acc);
            }
            y[c * ldy + r] = acc;
        }
    }
}

/* Q4_1, Q5_0, Q5_1, per row and block (a = the activation block, codes
 * q in 0..15 or 0..31 with Q5_0's -16 folded into isum):
 *   acc = fma((float)isum, d_w * d_x, acc)
 *   acc = fma(m_w, d_x * (float)sum_x, acc)       (Q4_1, Q5_1)
 * in block order, from acc = 0. */
static void ref_32x(int type, const uint8_t *g, int64_t nb, const uint8_t *xa, size_t astride, int64_t ncols,
                    float *y, int64_t ldy, int nr) {
    const lay *l = find(type);
    const size_t rec = (size_t)DS8B_G * l->bb;
    const bool mins = type != DS8B_T_Q5_0, five = type != DS8B_T_Q4_1;
    uint8_t blk[32];
    for (int64_t c = 0; c < ncols; c++) {
        const ds8b__act32 *a = (const ds8b__act32 *)(xa + (size_t)c * astride);
        for (int r = 0; r < nr; r++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *o = g + (size_t)b * rec;
                for (int fi = 0; fi < l->nf; fi++) get_unit(&l->f[fi], o, r, blk);
                const uint8_t *qs = blk + l->bb - 16;
                uint32_t qh = 0;
                if (five) memcpy(&qh, blk + l->bb - 20, 4);
                int32_t s = type == DS8B_T_Q5_0 ? -16 * a[b].sum : 0;
                for (int j = 0; j < 16; j++) {
                    int v0 = (qs[j] & 15) | (int)(((qh >> j) & 1) << 4);
                    int v1 = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                    s += v0 * a[b].qs[j] + v1 * a[b].qs[j + 16];
                }
                uint16_t dh, mh;
                memcpy(&dh, blk, 2);
                acc = fmaf((float)s, ds8b__f16_to_f32(dh) * a[b].d, acc);
                if (mins) {
                    memcpy(&mh, blk + 2, 2);
                    acc = fmaf(ds8b__f16_to_f32(mh), a[b].d * (float)a[b].sum, acc);
                }
            }
            y[c * ldy + r] = acc;
        }
    }
}

/* The exact integer sums of one GGUF K block against one Q8_K block:
 * *isum = sum over sub-blocks of scale * (codes . x) (with the type's
 * offset folded in: Q6_K's -32, Q3_K's -4 per missing high bit),
 * *msum = sum over sub-blocks of min * (sum of x) (0 for the types
 * without mins). */
static void k_sums(int type, const uint8_t *blk, const ds8b__blk_q8_k *a, int32_t *isum, int32_t *msum) {
    int32_t is = 0, ms = 0;
    if (type == DS8B_T_Q4_K || type == DS8B_T_Q5_K) {
        const ds8b__blk_q4_k *w4 = (const ds8b__blk_q4_k *)blk;
        const ds8b__blk_q5_k *w5 = (const ds8b__blk_q5_k *)blk;
        const uint8_t *scales = type == DS8B_T_Q4_K ? w4->scales : w5->scales;
        const uint8_t *qs = type == DS8B_T_Q4_K ? w4->qs : w5->qs;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            ds8b__k4_scale_min(scales, j, &sc, &m);
            const uint8_t *q = qs + 32 * (j / 2);
            int sh = 4 * (j & 1);
            int32_t t = 0;
            for (int l = 0; l < 32; l++) {
                int v = (q[l] >> sh) & 0xF;
                if (type == DS8B_T_Q5_K) v |= ((w5->qh[l] >> j) & 1) << 4;
                t += v * a->qs[32 * j + l];
            }
            is += sc * t;
            ms += m * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
        }
    } else if (type == DS8B_T_Q2_K) {
        const ds8b__blk_q2_k *w = (const ds8b__blk_q2_k *)blk;
        for (int sb = 0; sb < 16; sb++) {
            int h = sb / 8, pl = (sb % 8) / 2, half = sb % 2;
            const uint8_t *q = w->qs + 32 * h + 16 * half;
            int32_t t = 0;
            for (int l = 0; l < 16; l++) t += ((q[l] >> (2 * pl)) & 3) * a->qs[16 * sb + l];
            is += (w->scales[sb] & 0xF) * t;
            ms += (w->scales[sb] >> 4) * a->bsums[sb];
        }
    } else if (type == DS8B_T_Q3_K) {
        const ds8b__blk_q3_k *w = (const ds8b__blk_q3_k *)blk;
        int8_t sc[16];
        ds8b__k3_scales(w->scales, sc);
        for (int sb = 0; sb < 16; sb++) {
            int h = sb / 8, pl = (sb % 8) / 2, half = sb % 2, bit = 4 * h + pl;
            const uint8_t *q = w->qs + 32 * h + 16 * half, *hm = w->hmask + 16 * half;
            int32_t t = 0;
            for (int l = 0; l < 16; l++) {
                int v = ((q[l] >> (2 * pl)) & 3) - (((hm[l] >> bit) & 1) ? 0 : 4);
                t += v * a->qs[16 * sb + l];
            }
            is += sc[sb] * t;
        }
    } else if (type == DS8B_T_Q6_K) {
        const ds8b__blk_q6_k *w = (const ds8b__blk_q6_k *)blk;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w->ql + 64 * h, *qh = w->qh + 32 * h;
            for (int k = 0; k < 4; k++)
                for (int half = 0; half < 2; half++) {
                    int32_t t = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        int lo = (k & 1) ? ql[l + 32] : ql[l];
                        int nib = k < 2 ? (lo & 0xF) : (lo >> 4);
                        int v = (nib | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
                        t += v * a->qs[128 * h + 32 * k + l];
                    }
                    is += w->scales[8 * h + 2 * k + half] * t;
                }
        }
    }
    *isum = is;
    *msum = ms;
}

/* K types, per row and super-block (a = the activation block):
 *   acc = fma((float)isum, d_w * d_x, acc)
 *   acc = fma(-(float)msum, dmin_w * d_x, acc)     (types with mins)
 * in super-block order, from acc = 0. */
static void ref_k(int type, const uint8_t *g, int64_t nb, const uint8_t *xa, size_t astride, int64_t ncols,
                  float *y, int64_t ldy, int nr) {
    const lay *l = find(type);
    const int64_t m = nb / 8;
    const size_t rec = (size_t)DS8B_G * l->bb;
    const bool mins = type != DS8B_T_Q6_K && type != DS8B_T_Q3_K;
    uint8_t blk[256];
    for (int64_t c = 0; c < ncols; c++) {
        const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)(xa + (size_t)c * astride);
        for (int r = 0; r < nr; r++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < m; b++) {
                const uint8_t *o = g + (size_t)b * rec;
                for (int fi = 0; fi < l->nf; fi++) get_unit(&l->f[fi], o, r, blk);
                int32_t is, ms;
                k_sums(type, blk, &a[b], &is, &ms);
                uint16_t dh, mh;
                memcpy(&dh, o + 2 * r, 2);
                acc = fmaf((float)is, ds8b__f16_to_f32(dh) * a[b].d, acc);
                if (mins) {
                    memcpy(&mh, o + 2 * DS8B_G + 2 * r, 2);
                    acc = fmaf(-(float)ms, ds8b__f16_to_f32(mh) * a[b].d, acc);
                }
            }
            y[c * ldy + r] = acc;
        }
    }
}

void ds8b__mmg_ref(int type, const uint8_t *g, int64_t nb, const uint8_t *xa, size_t astride,
                   int64_t ncols, float *y, int64_t ldy, int nr) {
    const lay *l = find(type);
    if (!l) return;
    if (l->k) ref_k(type, g, nb, xa, astride, ncols, y, ldy, nr);
    else if (type == DS8B_T_Q4_0 || type == DS8B_T_Q8_0) ref_32(type, g, nb, xa, astride, ncols, y, ldy, nr);
    else ref_32x(type, g, nb, xa, astride, ncols, y, ldy, nr);
}

void ds8b__gact_quant_scalar(const float *x, uint8_t *dst, int64_t cols) {
    ds8b__act32 *a = (ds8b__act32 *)dst;
    for (int64_t b = 0; b < cols / 32; b++, a++, x += 32) {
        a->d = ds8b__quant_i8_32(x, a->qs);
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += a->qs[j];
        a->sum = s;
    }
}
