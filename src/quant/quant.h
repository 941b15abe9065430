/*
 * quant.h -- quantized block formats (GGUF layouts, byte for byte) and the
 * scalar reference quantizers / dequantizers.
 *
 * Every block struct below has exactly the size GGUF gives the type; all
 * multi-byte fields are little-endian (fp16 scales are raw IEEE half bits).
 * A row of a quantized tensor is a whole number of blocks laid end to end.
 *
 * Element order inside a block (i = 0..block_elems-1):
 *   Q4_0   x[j] = (lo(qs[j]) - 8) * d,  x[j+16] = (hi(qs[j]) - 8) * d      j < 16
 *   Q4_1   x[j] = lo(qs[j]) * d + m,    x[j+16] = hi(qs[j]) * d + m
 *   Q5_0   as Q4_0 with a fifth bit: bit j of qh (LE u32) for x[j], bit j+16
 *          for x[j+16]; value (q - 16) * d
 *   Q5_1   as Q5_0 without the offset: q * d + m
 *   Q8_0   x[j] = qs[j] * d;  Q8_1 also stores s = d * sum(qs)
 *   Q2_K   256 values in 2 halves of 128; inside a half, 4 bit-planes
 *          (shift 0,2,4,6) of the 32 bytes qs[32h..32h+31]; each plane is
 *          two sub-blocks of 16 with a 4-bit scale (low) and 4-bit min (high):
 *          x = d*sc*q - dmin*m
 *   Q3_K   same plane order as Q2_K; q = 2 low bits | (hmask bit ? 4 : 0) - 4
 *          with hmask bit (h*4+plane) of hmask[l]; 16 signed 6-bit scales
 *          (stored minus 32) packed in 12 bytes
 *   Q4_K   4 chunks of 64 values: 32 bytes qs, low nibbles = first 32 values
 *          (sub-block 2c), high nibbles = next 32 (sub-block 2c+1); 8 6-bit
 *          scales and mins packed in 12 bytes; x = d*sc*q - dmin*m
 *   Q5_K   as Q4_K plus qh[32]: bit (2c) of qh[l] is the fifth bit of the
 *          low-nibble value l of chunk c, bit (2c+1) of the high-nibble one
 *   Q6_K   2 halves of 128: ql[64h..], qh[32h..]; value l+32k (k=0..3) takes
 *          nibble (k&1 ? ql[l+32] : ql[l]) (k<2 low, else high) and bits
 *          2k..2k+1 of qh[l]; q - 32, times d * scales[8h + l/16 + 2k]
 *   Q8_K   x = d * qs (float d), bsums[i] = sum of qs[16i..16i+15]
 *   W4A16  our own: identical bytes to Q4_1 (f16 d, f16 m, 16 nibble bytes)
 */
#ifndef DS8B_QUANT_H
#define DS8B_QUANT_H

#include "internal.h"

#define DS8B_QK 32    /* elements of the 32-blocks */
#define DS8B_QKK 256  /* elements of a K-quant super-block */

typedef struct { uint16_t d; uint8_t qs[16]; } ds8b__blk_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[16]; } ds8b__blk_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } ds8b__blk_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } ds8b__blk_q5_1;
typedef struct { uint16_t d; int8_t qs[32]; } ds8b__blk_q8_0;
typedef struct { uint16_t d, s; int8_t qs[32]; } ds8b__blk_q8_1;
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } ds8b__blk_q2_k;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } ds8b__blk_q3_k;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } ds8b__blk_q4_k;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } ds8b__blk_q5_k;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } ds8b__blk_q6_k;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } ds8b__blk_q8_k;
typedef ds8b__blk_q4_1 ds8b__blk_w4a16;

_Static_assert(sizeof(ds8b__blk_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(ds8b__blk_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(ds8b__blk_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(ds8b__blk_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(ds8b__blk_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(ds8b__blk_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(ds8b__blk_q2_k) == 84, "q2_k block");
_Static_assert(sizeof(ds8b__blk_q3_k) == 110, "q3_k block");
_Static_assert(sizeof(ds8b__blk_q4_k) == 144, "q4_k block");
_Static_assert(sizeof(ds8b__blk_q5_k) == 176, "q5_k block");
_Static_assert(sizeof(ds8b__blk_q6_k) == 210, "q6_k block");
_Static_assert(sizeof(ds8b__blk_q8_k) == 292, "q8_k block");
_Static_assert(sizeof(ds8b__blk_w4a16) == 20, "w4a16 block");

/* Dequantizes n elements (a whole number of blocks) of any type with a
 * type_info entry, float types included. Unknown types or a bad n write
 * zeros. */
void ds8b__dequant_row(int type, const void *src, float *dst, int64_t n);

/* Quantizes n floats (a whole number of blocks) into dst. Returns 0, or
 * DS8B_E_UNSUPPORTED for a type without a quantizer, or DS8B_E_INVALID
 * for a bad n. Non-finite inputs are treated as 0. */
int ds8b__quant_row(int type, const float *src, void *dst, int64_t n);
/* Same, with per-element importance weights (n of them, >= 0; NULL means
 * the default weighting). Used by the K-quant and 32-block searches. */
int ds8b__quant_row_w(int type, const float *src, const float *imp, void *dst, int64_t n);
bool ds8b__type_can_quantize(int type);

/* Unpacks scale j (0..7) and min j of the 12-byte Q4_K/Q5_K scale field. */
static inline void ds8b__k4_scale_min(const uint8_t *q, int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}
/* Unpacks the 16 signed Q3_K scales (already minus 32). */
static inline void ds8b__k3_scales(const uint8_t *s, int8_t out[16]) {
    for (int i = 0; i < 16; i++) {
        int lo = i < 8 ? (s[i] & 0xF) : (s[i - 8] >> 4);
        int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
        out[i] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

/* The symmetric scale search of the 32-block formats and Q6_K: for nblk
 * blocks of n values (x, weights w, both nblk*n floats, finite, w >= 0),
 * writes each block's best scale for codes in [qmin, qmax] to d[0..nblk).
 * nblk <= 16, n <= 32. The AVX2 and AVX-512 variants return exactly what
 * the scalar one does; call them only on a CPU that has the ISA. */
typedef void (*ds8b__sym_search_fn)(const float *x, const float *w, int n, int nblk, int qmin, int qmax, float *d);
void ds8b__sym_search_scalar(const float *x, const float *w, int n, int nblk, int qmin, int qmax, float *d);
void ds8b__sym_search_avx2(const float *x, const float *w, int n, int nblk, int qmin, int qmax, float *d);
void ds8b__sym_search_avx512(const float *x, const float *w, int n, int nblk, int qmin, int qmax, float *d);

/* Q8_K activation quantization of n floats (n multiple of 256): what the
 * K-quant kernels dot against. */
void ds8b__quant_q8_k(const float *x, ds8b__blk_q8_k *y, int64_t n);
/* Rounds 32 floats to int8 with d = amax/127; returns d. Shared by every
 * activation format so all ISA levels see the same integers. */
float ds8b__quant_i8_32(const float *x, int8_t *q);

#endif /* DS8B_QUANT_H */
