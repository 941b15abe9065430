/*
 * kern_arm.h -- the AArch64 integer and float kernels, one body compiled
 * three times (kern_arm_neon.c, kern_arm_dotprod.c, kern_arm_i8mm.c) with
 * DS8B_ARM_LEVEL 1, 2 or 3 and the matching -march (mk/arch.mk).
 *
 * Integer kernels use the scalar level's activation formats (ds8b__act32
 * per 32 values, ds8b__blk_q8_k per 256), so a level replaces only mm.
 * For every (weight row, activation row) element:
 *   1. each block's integer sum is computed exactly in int32 (the same
 *      integers as scalar.c, however the lanes are added up):
 *        neon:    SMULL/SMULL2 + SADALP      (16 products per 3 instrs)
 *        dotprod: SDOT                       (16 products per instr)
 *        i8mm:    SMMLA on 2 weight rows x 2 activation rows
 *                 (32 products per instr), SDOT for the odd row/column;
 *   2. the block's float term is added to the element's accumulator with
 *      the same scalar float expression as the reference, in block order
 *      (files built with -ffp-contract=off: no fusing that could depend on
 *      the context).
 * So an element's result depends only on its own data, never on the tile
 * it was computed in or the thread count, and differs from the scalar
 * level only where gcc fused the reference's multiply-adds.
 *
 * Weight blocks are unpacked to signed int8 once per tile and reused for
 * every activation row of the tile (4 at the neon/dotprod levels, 2x2 at
 * i8mm), so batched = true: prompts run through the same kernels.
 */
#include "kernels/kern_impl.h"

#include <arm_neon.h>

#ifndef DS8B_ARM_LEVEL
#error "define DS8B_ARM_LEVEL"
#endif

/* f16 -> f32 of a block scale: FCVT, base ARMv8 (same values as
 * ds8b__f16_to_f32 for every non-NaN input). */
static inline float h2f(uint16_t h) {
    __fp16 f;
    memcpy(&f, &h, 2);
    return (float)f;
}

/* acc + the 16 products a[i]*b[i] spread over 4 int32 lanes. */
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if DS8B_ARM_LEVEL >= 2
    return vdotq_s32(acc, a, b);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
#endif
}

#if DS8B_ARM_LEVEL >= 3
/* 2x2 tile of 16-value dots: rows (w0, w1) x columns (a0, a1), lanes
 * [w0.a0, w0.a1, w1.a0, w1.a1], added to acc. */
static inline int32x4_t mm2x2_16(int32x4_t acc, int8x16_t w0, int8x16_t w1, int8x16_t a0,
                                 int8x16_t a1) {
    int64x2_t W0 = vreinterpretq_s64_s8(w0), W1 = vreinterpretq_s64_s8(w1);
    int64x2_t A0 = vreinterpretq_s64_s8(a0), A1 = vreinterpretq_s64_s8(a1);
    acc = vmmlaq_s32(acc, vreinterpretq_s8_s64(vzip1q_s64(W0, W1)),
                     vreinterpretq_s8_s64(vzip1q_s64(A0, A1)));
    return vmmlaq_s32(acc, vreinterpretq_s8_s64(vzip2q_s64(W0, W1)),
                      vreinterpretq_s8_s64(vzip2q_s64(A0, A1)));
}
#endif

/* ================================================================== */
/* 32-value block types                                                */
/* ================================================================== */
/* An unpacked block: 32 signed weights (lo = values 0..15, hi = 16..31)
 * and the block's float scale(s). */
typedef struct {
    int8x16_t lo, hi;
    float d, m;
} ub32;

/* 16 bytes of 0x10 where bit i of the 32-bit qh is set, for values
 * base..base+15 (base 0 or 16). */
static inline uint8x16_t qh_bits(const uint8_t *qh, int base) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    uint32_t h;
    memcpy(&h, qh, 4);
    uint8x16_t b = vreinterpretq_u8_u32(vdupq_n_u32(h));
    static const uint8_t idx_lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint8_t idx_hi[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    uint8x16_t s = vqtbl1q_u8(b, vld1q_u8(base ? idx_hi : idx_lo));
    return vandq_u8(vtstq_u8(s, vld1q_u8(bit)), vdupq_n_u8(0x10));
}

static inline ub32 un_q4_0(const uint8_t *p) {
    const ds8b__blk_q4_0 *b = (const ds8b__blk_q4_0 *)p;
    uint8x16_t q = vld1q_u8(b->qs);
    ub32 u;
    u.lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0xF))), vdupq_n_s8(8));
    u.hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));
    u.d = h2f(b->d);
    u.m = 0;
    return u;
}
static inline ub32 un_q4_1(const uint8_t *p) {
    const ds8b__blk_q4_1 *b = (const ds8b__blk_q4_1 *)p;
    uint8x16_t q = vld1q_u8(b->qs);
    ub32 u;
    u.lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0xF)));
    u.hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
    u.d = h2f(b->d);
    u.m = h2f(b->m);
    return u;
}
static inline ub32 un_q5_0(const uint8_t *p) {
    const ds8b__blk_q5_0 *b = (const ds8b__blk_q5_0 *)p;
    uint8x16_t q = vld1q_u8(b->qs);
    ub32 u;
    u.lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q, vdupq_n_u8(0xF)), qh_bits(b->qh, 0))),
                    vdupq_n_s8(16));
    u.hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q, 4), qh_bits(b->qh, 16))),
                    vdupq_n_s8(16));
    u.d = h2f(b->d);
    u.m = 0;
    return u;
}
static inline ub32 un_q5_1(const uint8_t *p) {
    const ds8b__blk_q5_1 *b = (const ds8b__blk_q5_1 *)p;
    uint8x16_t q = vld1q_u8(b->qs);
    ub32 u;
    u.lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q, vdupq_n_u8(0xF)), qh_bits(b->qh, 0)));
    u.hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q, 4), qh_bits(b->qh, 16)));
    u.d = h2f(b->d);
    u.m = h2f(b->m);
    return u;
}
static inline ub32 un_q8_0(const uint8_t *p) {
    const ds8b__blk_q8_0 *b = (const ds8b__blk_q8_0 *)p;
    ub32 u;
    u.lo = vld1q_s8(b->qs);
    u.hi = vld1q_s8(b->qs + 16);
    u.d = h2f(b->d);
    u.m = 0;
    return u;
}

/* The float term of one block, as in scalar.c: with a min (Q4_1,
 * Q5_1) d*ad*s + m*ad*sum, without (Q4_0, Q5_0, Q8_0; the offset is
 * already in the signed weights) d*ad*s. */
static inline float fin32(const ub32 *u, const ds8b__act32 *a, int32_t s, int has_m) {
    if (has_m) return u->d * a->d * (float)s + u->m * a->d * (float)a->sum;
    return u->d * a->d * (float)s;
}

static inline int32_t idot32(const ub32 *u, const ds8b__act32 *a) {
    int32x4_t acc = dot16(vdupq_n_s32(0), u->lo, vld1q_s8(a->qs));
    acc = dot16(acc, u->hi, vld1q_s8(a->qs + 16));
    return vaddvq_s32(acc);
}

/* One weight row x up to 4 activation rows (the columns cs[0..nc-1]). */
#define DEF_ROW32(NAME, BLK, UNPACK, HAS_M)                                                     \
    static inline void NAME##_row(const uint8_t *w, const uint8_t *xa, size_t as, int64_t nc,  \
                                  int64_t nb, float *out) {                                     \
        float acc[4] = {0, 0, 0, 0};                                                            \
        for (int64_t b = 0; b < nb; b++) {                                                      \
            ub32 u = UNPACK(w + (size_t)b * sizeof(BLK));                                       \
            for (int64_t c = 0; c < nc; c++) {                                                  \
                const ds8b__act32 *a = (const ds8b__act32 *)(xa + (size_t)c * as) + b;          \
                acc[c] = acc[c] + fin32(&u, a, idot32(&u, a), HAS_M);                           \
            }                                                                                   \
        }                                                                                       \
        for (int64_t c = 0; c < nc; c++) out[c] = acc[c];                                       \
    }

#if DS8B_ARM_LEVEL >= 3
/* Two weight rows x two activation rows with SMMLA; every element gets
 * the integers and float steps of NAME##_row. */
#define DEF_TILE32(NAME, BLK, UNPACK, HAS_M)                                                    \
    static inline void NAME##_2x2(const uint8_t *w0, const uint8_t *w1, const uint8_t *x0,     \
                                  const uint8_t *x1, int64_t nb, float out[4]) {                \
        float acc[4] = {0, 0, 0, 0};                                                            \
        for (int64_t b = 0; b < nb; b++) {                                                      \
            ub32 u0 = UNPACK(w0 + (size_t)b * sizeof(BLK));                                     \
            ub32 u1 = UNPACK(w1 + (size_t)b * sizeof(BLK));                                     \
            const ds8b__act32 *a0 = (const ds8b__act32 *)x0 + b, *a1 = (const ds8b__act32 *)x1 + b; \
            int32x4_t t = mm2x2_16(vdupq_n_s32(0), u0.lo, u1.lo, vld1q_s8(a0->qs),             \
                                   vld1q_s8(a1->qs));                                           \
            t = mm2x2_16(t, u0.hi, u1.hi, vld1q_s8(a0->qs + 16), vld1q_s8(a1->qs + 16));        \
            acc[0] = acc[0] + fin32(&u0, a0, vgetq_lane_s32(t, 0), HAS_M);                      \
            acc[1] = acc[1] + fin32(&u0, a1, vgetq_lane_s32(t, 1), HAS_M);                      \
            acc[2] = acc[2] + fin32(&u1, a0, vgetq_lane_s32(t, 2), HAS_M);                      \
            acc[3] = acc[3] + fin32(&u1, a1, vgetq_lane_s32(t, 3), HAS_M);                      \
        }                                                                                       \
        for (int i = 0; i < 4; i++) out[i] = acc[i];                                            \
    }
#else
#define DEF_TILE32(NAME, BLK, UNPACK, HAS_M)
#endif

/* The mm entry: y[c*ldy + r] for r < nr, c < nc. */
#if DS8B_ARM_LEVEL >= 3
#define DEF_MM_BODY(NAME, NBLK)                                                                 \
    static void NAME(const uint8_t *w, size_t ws, int64_t nr, const uint8_t *xa, size_t as,    \
                     int64_t nc, int64_t cols, float *y, int64_t ldy) {                         \
        int64_t nb = cols / (NBLK), r = 0;                                                      \
        float o[4];                                                                             \
        for (; r + 2 <= nr; r += 2) {                                                           \
            const uint8_t *w0 = w + (size_t)r * ws, *w1 = w0 + ws;                              \
            int64_t c = 0;                                                                      \
            for (; c + 2 <= nc; c += 2) {                                                       \
                NAME##_2x2(w0, w1, xa + (size_t)c * as, xa + (size_t)(c + 1) * as, nb, o);      \
                y[c * ldy + r] = o[0];                                                          \
                y[(c + 1) * ldy + r] = o[1];                                                    \
                y[c * ldy + r + 1] = o[2];                                                      \
                y[(c + 1) * ldy + r + 1] = o[3];                                                \
            }                                                                                   \
            for (; c < nc; c++)                                                                 \
                for (int k = 0; k < 2; k++) {                                                   \
                    NAME##_row(w0 + (size_t)k * ws, xa + (size_t)c * as, as, 1, nb, o);         \
                    y[c * ldy + r + k] = o[0];                                                  \
                }                                                                               \
        }                                                                                       \
        for (; r < nr; r++)                                                                     \
            for (int64_t c = 0; c < nc; c += 4) {                                               \
                int64_t m = nc - c < 4 ? nc - c : 4;                                            \
                NAME##_row(w + (size_t)r * ws, xa + (size_t)c * as, as, m, nb, o);              \
                for (int64_t k = 0; k < m; k++) y[(c + k) * ldy + r] = o[k];                    \
            }                                                                                   \
    }
#else
#define DEF_MM_BODY(NAME, NBLK)                                                                 \
    static void NAME(const uint8_t *w, size_t ws, int64_t nr, const uint8_t *xa, size_t as,    \
                     int64_t nc, int64_t cols, float *y, int64_t ldy) {                         \
        int64_t nb = cols / (NBLK);                                                             \
        float o[4];                                                                             \
        for (int64_t r = 0; r < nr; r++)                                                        \
            for (int64_t c = 0; c < nc; c += 4) {                                               \
                int64_t m = nc - c < 4 ? nc - c : 4;                                            \
                NAME##_row(w + (size_t)r * ws, xa + (size_t)c * as, as, m, nb, o);              \
                for (int64_t k = 0; k < m; k++) y[(c + k) * ldy + r] = o[k];                    \
            }                                                                                   \
    }
#endif

#define DEF32(NAME, BLK, UNPACK, HAS_M)  \
    DEF_ROW32(NAME, BLK, UNPACK, HAS_M)  \
    DEF_TILE32(NAME, BLK, UNPACK, HAS_M) \
    DEF_MM_BODY(NAME, 32)

DEF32(mm_q4_0, ds8b__blk_q4_0, un_q4_0, 0)
DEF32(mm_q4_1, ds8b__blk_q4_1, un_q4_1, 1)
DEF32(mm_q5_0, ds8b__blk_q5_0, un_q5_0, 0)
DEF32(mm_q5_1, ds8b__blk_q5_1, un_q5_1, 1)
DEF32(mm_q8_0, ds8b__blk_q8_0, un_q8_0, 0)

/* ================================================================== */
/* K-quants (256-value blocks against Q8_K activations)               */
/* ================================================================== */
/* An unpacked K block: 256 signed weights in 16 groups of 16 (group s
 * pairs with activations 16s..16s+15), an integer scale per group, the
 * integer min per group (0 where the type has none) and the float scales. */
typedef struct {
    int8x16_t q[16];
    int16_t sc[16];
    int16_t mn[16];
    float d, dmin;
} ubk;

static inline void un_q2_k(const uint8_t *p, ubk *u) {
    const ds8b__blk_q2_k *b = (const ds8b__blk_q2_k *)p;
    for (int h = 0; h < 2; h++) {
        uint8x16_t q0 = vld1q_u8(b->qs + 32 * h), q1 = vld1q_u8(b->qs + 32 * h + 16);
        uint8x16_t m3 = vdupq_n_u8(3);
        u->q[8 * h + 0] = vreinterpretq_s8_u8(vandq_u8(q0, m3));
        u->q[8 * h + 1] = vreinterpretq_s8_u8(vandq_u8(q1, m3));
        u->q[8 * h + 2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(q0, 2), m3));
        u->q[8 * h + 3] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(q1, 2), m3));
        u->q[8 * h + 4] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(q0, 4), m3));
        u->q[8 * h + 5] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(q1, 4), m3));
        u->q[8 * h + 6] = vreinterpretq_s8_u8(vshrq_n_u8(q0, 6));
        u->q[8 * h + 7] = vreinterpretq_s8_u8(vshrq_n_u8(q1, 6));
    }
    uint8x16_t s = vld1q_u8(b->scales);
    uint8x16_t sc = vandq_u8(s, vdupq_n_u8(0xF)), mn = vshrq_n_u8(s, 4);
    vst1q_s16(u->sc, vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(sc))));
    vst1q_s16(u->sc + 8, vreinterpretq_s16_u16(vmovl_high_u8(sc)));
    vst1q_s16(u->mn, vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mn))));
    vst1q_s16(u->mn + 8, vreinterpretq_s16_u16(vmovl_high_u8(mn)));
    u->d = h2f(b->d);
    u->dmin = h2f(b->dmin);
}
static inline void un_q3_k(const uint8_t *p, ubk *u) {
    const ds8b__blk_q3_k *b = (const ds8b__blk_q3_k *)p;
    uint8x16_t hm0 = vld1q_u8(b->hmask), hm1 = vld1q_u8(b->hmask + 16);
    uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    for (int h = 0; h < 2; h++) {
        uint8x16_t q0 = vld1q_u8(b->qs + 32 * h), q1 = vld1q_u8(b->qs + 32 * h + 16);
        for (int pl = 0; pl < 4; pl++) {
            uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << (4 * h + pl)));
            int8x16_t shift = vdupq_n_s8((int8_t)(-2 * pl));
            uint8x16_t v0 = vandq_u8(vshlq_u8(q0, shift), m3);
            uint8x16_t v1 = vandq_u8(vshlq_u8(q1, shift), m3);
            /* minus 4 where the high bit is clear */
            uint8x16_t s0 = vbicq_u8(four, vtstq_u8(hm0, bit));
            uint8x16_t s1 = vbicq_u8(four, vtstq_u8(hm1, bit));
            u->q[8 * h + 2 * pl] = vsubq_s8(vreinterpretq_s8_u8(v0), vreinterpretq_s8_u8(s0));
            u->q[8 * h + 2 * pl + 1] = vsubq_s8(vreinterpretq_s8_u8(v1), vreinterpretq_s8_u8(s1));
        }
    }
    int8_t sc[16];
    ds8b__k3_scales(b->scales, sc);
    int8x16_t s = vld1q_s8(sc);
    vst1q_s16(u->sc, vmovl_s8(vget_low_s8(s)));
    vst1q_s16(u->sc + 8, vmovl_high_s8(s));
    memset(u->mn, 0, sizeof u->mn);
    u->d = h2f(b->d);
    u->dmin = 0;
}
static inline void k4_scales(const uint8_t *scales, ubk *u) {
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        ds8b__k4_scale_min(scales, j, &sc, &m);
        u->sc[2 * j] = u->sc[2 * j + 1] = sc;
        u->mn[2 * j] = u->mn[2 * j + 1] = m;
    }
}
static inline void un_q4_k(const uint8_t *p, ubk *u) {
    const ds8b__blk_q4_k *b = (const ds8b__blk_q4_k *)p;
    uint8x16_t mf = vdupq_n_u8(0xF);
    for (int g = 0; g < 4; g++) {
        uint8x16_t q0 = vld1q_u8(b->qs + 32 * g), q1 = vld1q_u8(b->qs + 32 * g + 16);
        u->q[4 * g + 0] = vreinterpretq_s8_u8(vandq_u8(q0, mf));
        u->q[4 * g + 1] = vreinterpretq_s8_u8(vandq_u8(q1, mf));
        u->q[4 * g + 2] = vreinterpretq_s8_u8(vshrq_n_u8(q0, 4));
        u->q[4 * g + 3] = vreinterpretq_s8_u8(vshrq_n_u8(q1, 4));
    }
    k4_scales(b->scales, u);
    u->d = h2f(b->d);
    u->dmin = h2f(b->dmin);
}
static inline void un_q5_k(const uint8_t *p, ubk *u) {
    const ds8b__blk_q5_k *b = (const ds8b__blk_q5_k *)p;
    uint8x16_t mf = vdupq_n_u8(0xF), x10 = vdupq_n_u8(0x10);
    uint8x16_t h0 = vld1q_u8(b->qh), h1 = vld1q_u8(b->qh + 16);
    for (int g = 0; g < 4; g++) {
        uint8x16_t q0 = vld1q_u8(b->qs + 32 * g), q1 = vld1q_u8(b->qs + 32 * g + 16);
        uint8x16_t blo = vdupq_n_u8((uint8_t)(1u << (2 * g))), bhi = vdupq_n_u8((uint8_t)(2u << (2 * g)));
        u->q[4 * g + 0] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q0, mf), vandq_u8(vtstq_u8(h0, blo), x10)));
        u->q[4 * g + 1] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q1, mf), vandq_u8(vtstq_u8(h1, blo), x10)));
        u->q[4 * g + 2] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q0, 4), vandq_u8(vtstq_u8(h0, bhi), x10)));
        u->q[4 * g + 3] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q1, 4), vandq_u8(vtstq_u8(h1, bhi), x10)));
    }
    k4_scales(b->scales, u);
    u->d = h2f(b->d);
    u->dmin = h2f(b->dmin);
}
static inline void un_q6_k(const uint8_t *p, ubk *u) {
    const ds8b__blk_q6_k *b = (const ds8b__blk_q6_k *)p;
    uint8x16_t mf = vdupq_n_u8(0xF), m3 = vdupq_n_u8(3);
    int8x16_t m32 = vdupq_n_s8(32);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int half = 0; half < 2; half++) {
            uint8x16_t l0 = vld1q_u8(ql + 16 * half), l1 = vld1q_u8(ql + 32 + 16 * half);
            uint8x16_t hh = vld1q_u8(qh + 16 * half);
            uint8x16_t nib[4] = {vandq_u8(l0, mf), vandq_u8(l1, mf), vshrq_n_u8(l0, 4),
                                 vshrq_n_u8(l1, 4)};
            uint8x16_t hb[4] = {vshlq_n_u8(vandq_u8(hh, m3), 4),
                                vshlq_n_u8(vandq_u8(vshrq_n_u8(hh, 2), m3), 4),
                                vshlq_n_u8(vandq_u8(vshrq_n_u8(hh, 4), m3), 4),
                                vshlq_n_u8(vshrq_n_u8(hh, 6), 4)};
            for (int k = 0; k < 4; k++)
                u->q[8 * h + 2 * k + half] =
                    vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(nib[k], hb[k])), m32);
        }
    }
    int8x16_t s = vld1q_s8(b->scales);
    vst1q_s16(u->sc, vmovl_s8(vget_low_s8(s)));
    vst1q_s16(u->sc + 8, vmovl_high_s8(s));
    memset(u->mn, 0, sizeof u->mn);
    u->d = h2f(b->d);
    u->dmin = 0;
}

/* isum = sum over groups of sc[s] * (16-value dot of group s). */
static inline int32_t kdot(const ubk *u, const ds8b__blk_q8_k *a) {
    int32x4_t acc = vdupq_n_s32(0);
    for (int s = 0; s < 16; s++) {
        int32x4_t t = dot16(vdupq_n_s32(0), u->q[s], vld1q_s8(a->qs + 16 * s));
        acc = vmlaq_n_s32(acc, t, u->sc[s]);
    }
    return vaddvq_s32(acc);
}
/* msum = sum over groups of mn[s] * bsums[s]. */
static inline int32_t kmins(const ubk *u, const ds8b__blk_q8_k *a) {
    int16x8_t m0 = vld1q_s16(u->mn), m1 = vld1q_s16(u->mn + 8);
    int16x8_t b0 = vld1q_s16(a->bsums), b1 = vld1q_s16(a->bsums + 8);
    int32x4_t acc = vmull_s16(vget_low_s16(m0), vget_low_s16(b0));
    acc = vmlal_high_s16(acc, m0, b0);
    acc = vmlal_s16(acc, vget_low_s16(m1), vget_low_s16(b1));
    acc = vmlal_high_s16(acc, m1, b1);
    return vaddvq_s32(acc);
}
/* The float term of one block, as in scalar.c. */
static inline float fink(const ubk *u, const ds8b__blk_q8_k *a, int32_t isum, int has_m) {
    if (has_m) return a->d * (u->d * (float)isum - u->dmin * (float)kmins(u, a));
    return a->d * u->d * (float)isum;
}

#define DEF_ROWK(NAME, BLK, UNPACK, HAS_M)                                                      \
    static inline void NAME##_row(const uint8_t *w, const uint8_t *xa, size_t as, int64_t nc,  \
                                  int64_t nb, float *out) {                                     \
        float acc[4] = {0, 0, 0, 0};                                                            \
        ubk u;                                                                                  \
        for (int64_t b = 0; b < nb; b++) {                                                      \
            UNPACK(w + (size_t)b * sizeof(BLK), &u);                                            \
            for (int64_t c = 0; c < nc; c++) {                                                  \
                const ds8b__blk_q8_k *a = (const ds8b__blk_q8_k *)(xa + (size_t)c * as) + b;    \
                acc[c] = acc[c] + fink(&u, a, kdot(&u, a), HAS_M);                              \
            }                                                                                   \
        }                                                                                       \
        for (int64_t c = 0; c < nc; c++) out[c] = acc[c];                                       \
    }

#if DS8B_ARM_LEVEL >= 3
#define DEF_TILEK(NAME, BLK, UNPACK, HAS_M)                                                     \
    static inline void NAME##_2x2(const uint8_t *w0, const uint8_t *w1, const uint8_t *x0,     \
                                  const uint8_t *x1, int64_t nb, float out[4]) {                \
        float acc[4] = {0, 0, 0, 0};                                                            \
        ubk u0, u1;                                                                             \
        for (int64_t b = 0; b < nb; b++) {                                                      \
            UNPACK(w0 + (size_t)b * sizeof(BLK), &u0);                                          \
            UNPACK(w1 + (size_t)b * sizeof(BLK), &u1);                                          \
            const ds8b__blk_q8_k *a0 = (const ds8b__blk_q8_k *)x0 + b;                          \
            const ds8b__blk_q8_k *a1 = (const ds8b__blk_q8_k *)x1 + b;                          \
            int32x4_t is = vdupq_n_s32(0);                                                      \
            for (int s = 0; s < 16; s++) {                                                      \
                int32x4_t t = vdupq_n_s32(0);                                                   \
                t = mm2x2_16(t, u0.q[s], u1.q[s], vld1q_s8(a0->qs + 16 * s),                    \
                             vld1q_s8(a1->qs + 16 * s));                                        \
                int32_t scv[4] = {u0.sc[s], u0.sc[s], u1.sc[s], u1.sc[s]};                      \
                is = vmlaq_s32(is, t, vld1q_s32(scv));                                          \
            }                                                                                   \
            acc[0] = acc[0] + fink(&u0, a0, vgetq_lane_s32(is, 0), HAS_M);                      \
            acc[1] = acc[1] + fink(&u0, a1, vgetq_lane_s32(is, 1), HAS_M);                      \
            acc[2] = acc[2] + fink(&u1, a0, vgetq_lane_s32(is, 2), HAS_M);                      \
            acc[3] = acc[3] + fink(&u1, a1, vgetq_lane_s32(is, 3), HAS_M);                      \
        }                                                                                       \
        for (int i = 0; i < 4; i++) out[i] = acc[i];                                            \
    }
#else
#define DEF_TILEK(NAME, BLK, UNPACK, HAS_M)
#endif

#define DEFK(NAME, BLK, UNPACK, HAS_M)  \
    DEF_ROWK(NAME, BLK, UNPACK, HAS_M)  \
    DEF_TILEK(NAME, BLK, UNPACK, HAS_M) \
    DEF_MM_BODY(NAME, 256)

DEFK(mm_q2_k, ds8b__blk_q2_k, un_q2_k, 1)
DEFK(mm_q3_k, ds8b__blk_q3_k, un_q3_k, 0)
DEFK(mm_q4_k, ds8b__blk_q4_k, un_q4_k, 1)
DEFK(mm_q5_k, ds8b__blk_q5_k, un_q5_k, 1)
DEFK(mm_q6_k, ds8b__blk_q6_k, un_q6_k, 0)

/* ================================================================== */
/* Float helpers (f32 arithmetic; f16 and bf16 only as storage)        */
/* ================================================================== */
/* 8 lanes in two vectors, summed as scalar.c sums its acc[8]. */
static inline float hsum8(float32x4_t a, float32x4_t b) {
    float32x4_t s = vaddq_f32(a, b); /* (acc0+acc4), (acc1+acc5), ... */
    return (vgetq_lane_f32(s, 0) + vgetq_lane_f32(s, 1)) + (vgetq_lane_f32(s, 2) + vgetq_lane_f32(s, 3));
}
static float n_dot_f32(const float *a, const float *b, int64_t n) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    float t = 0;
    for (; i < n; i++) t = t + a[i] * b[i];
    return hsum8(s0, s1) + t;
}
static void n_axpy(float *y, const float *x, float a, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vmulq_n_f32(vld1q_f32(x + i), a)));
    for (; i < n; i++) y[i] = y[i] + a * x[i];
}
static void n_scale(float *y, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_n_f32(vld1q_f32(y + i), s));
    for (; i < n; i++) y[i] = y[i] * s;
}
static inline float32x4_t h4(const uint16_t *h) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}
static inline float32x4_t bf4(const uint16_t *h) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(h), 16));
}
static float n_dot_f16(const uint16_t *a, const float *b, int64_t n) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, h4(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, h4(a + i + 4), vld1q_f32(b + i + 4));
    }
    float t = 0;
    for (; i < n; i++) t = t + h2f(a[i]) * b[i];
    return hsum8(s0, s1) + t;
}
static float n_dot_bf16(const uint16_t *a, const float *b, int64_t n) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, bf4(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, bf4(a + i + 4), vld1q_f32(b + i + 4));
    }
    float t = 0;
    for (; i < n; i++) t = t + ds8b__bf16_to_f32(a[i]) * b[i];
    return hsum8(s0, s1) + t;
}
/* W4A16: per block d * sum(q*x) + m * sum(x), the q exact in f32. */
static float n_dot_w4a16(const void *wv, const float *x, int64_t nb) {
    const ds8b__blk_w4a16 *w = wv;
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t b = 0; b < nb; b++, x += 32) {
        uint8x16_t q = vld1q_u8(w[b].qs);
        uint8x16_t lo = vandq_u8(q, vdupq_n_u8(0xF)), hi = vshrq_n_u8(q, 4);
        uint16x8_t l0 = vmovl_u8(vget_low_u8(lo)), l1 = vmovl_high_u8(lo);
        uint16x8_t h0 = vmovl_u8(vget_low_u8(hi)), h1 = vmovl_high_u8(hi);
        float32x4_t sq = vdupq_n_f32(0), sx = vdupq_n_f32(0), xv;
#define W4_STEP(K, V)                      \
        xv = vld1q_f32(x + 4 * (K));       \
        sq = vfmaq_f32(sq, vcvtq_f32_u32(V), xv); \
        sx = vaddq_f32(sx, xv);
        W4_STEP(0, vmovl_u16(vget_low_u16(l0)))
        W4_STEP(1, vmovl_high_u16(l0))
        W4_STEP(2, vmovl_u16(vget_low_u16(l1)))
        W4_STEP(3, vmovl_high_u16(l1))
        W4_STEP(4, vmovl_u16(vget_low_u16(h0)))
        W4_STEP(5, vmovl_high_u16(h0))
        W4_STEP(6, vmovl_u16(vget_low_u16(h1)))
        W4_STEP(7, vmovl_high_u16(h1))
#undef W4_STEP
        acc = vfmaq_n_f32(acc, sq, h2f(w[b].d));
        acc = vfmaq_n_f32(acc, sx, h2f(w[b].m));
    }
    return vaddvq_f32(acc);
}
static void n_axpy_f16(float *y, const uint16_t *h, float a, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vmulq_n_f32(h4(h + i), a)));
    for (; i < n; i++) y[i] = y[i] + a * h2f(h[i]);
}
static void n_f16_to_f32(const uint16_t *h, float *f, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(f + i, h4(h + i));
    for (; i < n; i++) f[i] = ds8b__f16_to_f32(h[i]);
}
static void n_bf16_to_f32(const uint16_t *h, float *f, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(f + i, bf4(h + i));
    for (; i < n; i++) f[i] = ds8b__bf16_to_f32(h[i]);
}
static void n_w4a16_to_f32(const void *wv, float *f, int64_t nb) {
    const ds8b__blk_w4a16 *w = wv;
    for (int64_t b = 0; b < nb; b++, f += 32) {
        float d = h2f(w[b].d), m = h2f(w[b].m);
        for (int j = 0; j < 16; j++) {
            f[j] = (float)(w[b].qs[j] & 0xF) * d + m;
            f[j + 16] = (float)(w[b].qs[j] >> 4) * d + m;
        }
    }
}

/* Replaces the mm of every integer type (keeping the scalar activation
 * formats the table already holds) and the float helpers. */
static void arm_fill(ds8b__kops *k, const char *name) {
    static const struct { int t; ds8b__mm_fn mm; } tab[] = {
        {DS8B_T_Q4_0, mm_q4_0}, {DS8B_T_Q4_1, mm_q4_1}, {DS8B_T_Q5_0, mm_q5_0},
        {DS8B_T_Q5_1, mm_q5_1}, {DS8B_T_Q8_0, mm_q8_0}, {DS8B_T_Q2_K, mm_q2_k},
        {DS8B_T_Q3_K, mm_q3_k}, {DS8B_T_Q4_K, mm_q4_k}, {DS8B_T_Q5_K, mm_q5_k},
        {DS8B_T_Q6_K, mm_q6_k},
    };
    k->name = name;
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        ds8b__qkern *q = &k->q[tab[i].t];
        q->mm = tab[i].mm;
        q->batched = true;
        q->mmp = NULL;
        q->pact_size = NULL;
        q->pact_quant = NULL;
        q->mmp_scratch = NULL;
    }
    k->dot_f32 = n_dot_f32;
    k->axpy = n_axpy;
    k->scale = n_scale;
    k->dot_f16 = n_dot_f16;
    k->dot_bf16 = n_dot_bf16;
    k->dot_w4a16 = n_dot_w4a16;
    k->axpy_f16 = n_axpy_f16;
    k->f16_to_f32 = n_f16_to_f32;
    k->bf16_to_f32 = n_bf16_to_f32;
    k->w4a16_to_f32 = n_w4a16_to_f32;
}
