/*
 * bf16_ref.c -- plain-C reference of the bf16-activation kernels (level
 * avx512-bf16, x86/avx512bf16_w4a16.c), bit for bit.
 *
 * Numerics (docs/quantization.md, "bf16 activations"):
 *   - activations are rounded to bf16 once per matmul call, round to
 *     nearest even with denormal inputs read as zero (vcvtneps2bf16);
 *   - W4A16 weights are expanded per value to bf16(fmaf(d, q, m)) (d, m the
 *     block's f16 scale and min, q the nibble), rounded the same way; bf16
 *     weights are used as stored;
 *   - a dot runs over chunks of 32 values (the last one zero-padded) into
 *     16 fp32 lanes: lane i of a chunk does acc += w[2i+1]*x[2i+1], then
 *     acc += w[2i]*x[2i], each product exact and each sum rounded to
 *     nearest even, denormal inputs read as zero and denormal sums flushed
 *     to zero (what vdpbf16ps does, checked on the hardware by
 *     tests/test_kernels.c); the 16 lanes are summed as a fixed tree:
 *     v[i] + v[i+8], then + [i+4], + [i+2], + [i+1].
 *   - W4A16 stores each 32-block of activations (and of expanded weights)
 *     in the order the SIMD nibble expansion produces (ds8b__w4a16_pos):
 *     the pairing of values in lanes, hence the rounding, depends on it.
 */
#include "kernels/kern_impl.h"

#include <math.h>

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

uint16_t ds8b__bf16_rne_daz(float f) {
    uint32_t u = f_bits(f);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u); /* zero or denormal */
    return ds8b__f32_to_bf16(f);
}

/* Element of a 32-block stored at position p (0..31): positions 8L+j hold
 * element 2j (L=0), 16+2j (L=1), 2j+1 (L=2), 17+2j (L=3). */
int ds8b__w4a16_pos(int p) {
    int L = p >> 3, j = p & 7;
    static const int base[4] = {0, 16, 1, 17};
    return base[L] + 2 * j;
}

void ds8b__w4a16_bf16_act_ref(const float *x, uint16_t *dst, int64_t cols) {
    for (int64_t b = 0; b < cols / 32; b++)
        for (int p = 0; p < 32; p++) dst[32 * b + p] = ds8b__bf16_rne_daz(x[32 * b + ds8b__w4a16_pos(p)]);
}

void ds8b__w4a16_bf16_wrow_ref(const void *wv, uint16_t *dst, int64_t nb) {
    const ds8b__blk_w4a16 *w = wv;
    for (int64_t b = 0; b < nb; b++) {
        float d = ds8b__f16_to_f32(w[b].d), m = ds8b__f16_to_f32(w[b].m);
        for (int p = 0; p < 32; p++) {
            int e = ds8b__w4a16_pos(p);
            int q = e < 16 ? (w[b].qs[e] & 0xF) : (w[b].qs[e - 16] >> 4);
            dst[32 * b + p] = ds8b__bf16_rne_daz(fmaf(d, (float)q, m));
        }
    }
}

void ds8b__bf16_act_ref(const float *x, uint16_t *dst, int64_t cols) {
    int64_t pad = (cols + 31) / 32 * 32;
    for (int64_t i = 0; i < pad; i++) dst[i] = i < cols ? ds8b__bf16_rne_daz(x[i]) : 0;
}

static float daz(uint16_t h) {
    return (h & 0x7f80u) ? ds8b__bf16_to_f32(h) : bits_f((uint32_t)(h & 0x8000u) << 16);
}
static float ftz(float f) {
    uint32_t u = f_bits(f);
    return (u & 0x7f800000u) ? f : bits_f(u & 0x80000000u);
}

float ds8b__bf16_dot_ref(const uint16_t *w, const uint16_t *x, int64_t nchunk) {
    float acc[16] = {0};
    for (int64_t k = 0; k < nchunk; k++, w += 32, x += 32)
        for (int i = 0; i < 16; i++) {
            acc[i] = ftz(acc[i] + daz(w[2 * i + 1]) * daz(x[2 * i + 1]));
            acc[i] = ftz(acc[i] + daz(w[2 * i]) * daz(x[2 * i]));
        }
    float h[8], q[4], r[2];
    for (int i = 0; i < 8; i++) h[i] = acc[i] + acc[i + 8];
    for (int i = 0; i < 4; i++) q[i] = h[i] + h[i + 4];
    for (int i = 0; i < 2; i++) r[i] = q[i] + q[i + 2];
    return r[0] + r[1];
}
