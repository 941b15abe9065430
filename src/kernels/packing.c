/*
 * packing.c -- the interleaved row-group layout (see packing.h): packing,
 * unpacking and the reference group kernel.
 */
#include "kernels/packing.h"
#include "kernels/kern_impl.h"

#include <math.h>

bool ds8b__pack_supported(int type) { return type == DS8B_T_Q4_0 || type == DS8B_T_Q8_0; }

/* dwords of codes per row and block, block bytes */
static int kdw(int type) { return type == DS8B_T_Q4_0 ? 4 : 8; }
static size_t bbytes(int type) { return type == DS8B_T_Q4_0 ? 18 : 34; }

void ds8b__pack_group(int type, const uint8_t *src, size_t wstride, int n, int64_t nb, uint8_t *dst) {
    const int K = kdw(type);
    const size_t bb = bbytes(type), rec = (size_t)DS8B_G * bb;
    const uint32_t flip = type == DS8B_T_Q8_0 ? 0x80808080u : 0u;
    if (n < DS8B_G) memset(dst, 0, rec * (size_t)nb);
    /* row by row: sequential reads of each row, 4-byte stores (this also
     * runs on the fly for row-major weights in decode, so it is kept to
     * one load and one store per dword) */
    for (int r = 0; r < n; r++) {
        const uint8_t *blk = src + (size_t)r * wstride;
        uint8_t *o = dst;
        for (int64_t b = 0; b < nb; b++, blk += bb, o += rec) {
            memcpy(o + 2 * r, blk, 2);
            uint8_t *q = o + 2 * DS8B_G + 4 * (size_t)r;
            for (int k = 0; k < K; k++) {
                uint32_t v;
                memcpy(&v, blk + 2 + 4 * k, 4);
                v ^= flip;
                memcpy(q + (size_t)k * DS8B_G * 4, &v, 4);
            }
        }
    }
}

void ds8b__unpack_group(int type, const uint8_t *g, int64_t nb, uint8_t *dst, size_t wstride, int n) {
    const int K = kdw(type);
    const size_t bb = bbytes(type), rec = (size_t)DS8B_G * bb;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *o = g + (size_t)b * rec;
        const uint8_t *q = o + 2 * DS8B_G;
        for (int r = 0; r < n; r++) {
            uint8_t *blk = dst + (size_t)r * wstride + (size_t)b * bb;
            memcpy(blk, o + 2 * r, 2);
            for (int k = 0; k < K; k++) {
                uint8_t *qd = blk + 2 + 4 * k;
                memcpy(qd, q + ((size_t)k * DS8B_G + r) * 4, 4);
                if (type == DS8B_T_Q8_0)
                    for (int i = 0; i < 4; i++) qd[i] ^= 0x80;
            }
        }
    }
}

void ds8b__pack_matrix(int type, const uint8_t *src, int64_t rows, int64_t nb, uint8_t *dst) {
    size_t wstride = (size_t)nb * bbytes(type), gbytes = wstride * DS8B_G;
    int64_t ng = rows / DS8B_G;
    for (int64_t gi = 0; gi < ng; gi++)
        ds8b__pack_group(type, src + (size_t)gi * gbytes, wstride, DS8B_G, nb, dst + (size_t)gi * gbytes);
    size_t done = (size_t)ng * gbytes;
    memcpy(dst + done, src + done, (size_t)(rows - ng * DS8B_G) * wstride);
}

void ds8b__mmg_ref(int type, const uint8_t *g, int64_t nb, const uint8_t *xa, size_t astride,
                   int64_t ncols, float *y, int64_t ldy, int nr) {
    const int K = kdw(type);
    const size_t rec = (size_t)DS8B_G * bbytes(type);
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

void ds8b__gact_quant_scalar(const float *x, uint8_t *dst, int64_t cols) {
    ds8b__act32 *a = (ds8b__act32 *)dst;
    for (int64_t b = 0; b < cols / 32; b++, a++, x += 32) {
        a->d = ds8b__quant_i8_32(x, a->qs);
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += a->qs[j];
        a->sum = s;
    }
}
