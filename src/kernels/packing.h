/*
 * packing.h -- the interleaved row-group weight layout (DS8B_LAYOUT_G16).
 *
 * A matrix of a supported block type is stored as groups of 16 consecutive
 * rows. Within a group, block column b (the b-th 32-value block of each of
 * the 16 rows) is one contiguous record:
 *
 *   uint16 d[16]              the 16 rows' f16 block scales, row order
 *   uint32 q[K][16]           dword k of row r at q[k][r]
 *
 * Q4_0 (K = 4, 288 bytes = 16 x 18): dword k holds bytes qs[4k..4k+3] of
 *   the GGUF block unchanged, so its low nibbles are values 4k..4k+3 and its
 *   high nibbles values 16+4k..16+4k+3.
 * Q8_0 (K = 8, 544 bytes = 16 x 34): dword k holds values 4k..4k+3, each
 *   byte stored as q + 128 (unsigned), so one vpdpbusd takes it directly.
 *
 * One load of q[k] therefore gives dword k of 16 rows (one zmm) or of 8
 * rows (one ymm), and a broadcast dword of the activation serves all of
 * them: 16 output rows per vpdpbusd, 16 scales per convert + FMA. The same
 * records are the natural input of AMX tiles (16 rows x 64 bytes of K per
 * tile row pair after a 4-record interleave), the reason for 16 rows.
 *
 * K-quants: block column b is the b-th 256-value super-block of the 16
 * rows; the same principle (every scale array and every code dword k laid
 * out [k][16 rows]), fields in this order:
 *
 * Q4_K (2304 bytes = 16 x 144):
 *   uint16 d[16], uint16 dmin[16]
 *   uint32 sc[3][16]          the GGUF 12 scale bytes, dword s = bytes 4s..4s+3
 *   uint32 q[32][16]          the GGUF qs dwords unchanged (dword k: low
 *                             nibbles values 64(k/8) + 4(k%8) + 0..3, high
 *                             nibbles the same + 32)
 * Q5_K (2816 = 16 x 176): as Q4_K, then uint32 qh[8][16] (GGUF qh dwords:
 *   bit j of byte i of dword k is the fifth bit of value 32j + 4k + i).
 * Q6_K (3360 = 16 x 210):
 *   uint16 d[16]
 *   uint16 sp[8][16]          scale pair p of row r: bytes (sc[2p], sc[2p+1]),
 *                             so one 32-byte load + sign extension gives the
 *                             int16 pairs vpmaddwd / vpdpwssd take
 *   uint32 ql[32][16], uint32 qh[16][16]   the GGUF ql / qh dwords unchanged
 *
 * A matrix with rows % 16 != 0 keeps its last rows % 16 rows row-major
 * after the full groups, so a packed tensor has exactly the bytes of the
 * plain one (ds8b__tensor.nbytes and the memory estimate do not change).
 *
 * Everywhere below, nb counts 32-value units of a row (cols / 32), for the
 * K-quants too (their kernels take nb / 8 super-blocks).
 *
 * Activations of the group kernels: ds8b__act32 per 32 values for the
 * 32-block types, ds8b__blk_q8_k per 256 for the K-quants (the scalar
 * ds8b__quant_q8_k at every level), ds8b__gact_row_bytes(type, cols) bytes
 * per row.
 */
#ifndef DS8B_PACKING_H
#define DS8B_PACKING_H

#include "internal.h"

enum { DS8B_G = 16 };

/* True if the type has the row-group layout. */
bool ds8b__pack_supported(int type);
/* True if the type's group kernels take ds8b__blk_q8_k activations. */
bool ds8b__gact_is_k(int type);
/* Bytes of one activation row of the type's group kernels (0 if cols <= 0). */
size_t ds8b__gact_row_bytes(int type, int64_t cols);
/* The K-quants' group activations (ds8b__quant_q8_k). */
void ds8b__gact_quant_k(const float *x, uint8_t *dst, int64_t cols);
/* Packs n (1..16) rows of nb blocks each (row stride wstride) into one
 * group record sequence at dst (16 * row bytes); rows n..15 are zero. */
void ds8b__pack_group(int type, const uint8_t *src, size_t wstride, int n, int64_t nb, uint8_t *dst);
/* Inverse: writes rows 0..n-1 of a packed group back row-major. */
void ds8b__unpack_group(int type, const uint8_t *g, int64_t nb, uint8_t *dst, size_t wstride, int n);
/* Packs a whole matrix (rows x nb blocks) from src into dst (same size;
 * dst != src), with the tail rows row-major. */
void ds8b__pack_matrix(int type, const uint8_t *src, int64_t rows, int64_t nb, uint8_t *dst);

/* Reference group kernel in plain C (the arithmetic every SIMD group kernel
 * reproduces bit for bit): y[c*ldy + r] for r < nr, c < ncols, against
 * activation rows in the type's group format (astride bytes apart). Per
 * row: acc = 0; for each block b: acc = fma((float)isum_b, d_w * d_x, acc),
 * with isum_b the exact integer dot product (offsets and sub-block scales
 * included); types with mins (Q4_K, Q5_K) then add
 * acc = fma(-(float)msum_b, dmin_w * d_x, acc), msum_b = sum of min x
 * sub-block activation sums. */
void ds8b__mmg_ref(int type, const uint8_t *g, int64_t nb, const uint8_t *xa, size_t astride,
                   int64_t ncols, float *y, int64_t ldy, int nr);

#endif
