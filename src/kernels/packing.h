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
 * A matrix with rows % 16 != 0 keeps its last rows % 16 rows row-major
 * after the full groups, so a packed tensor has exactly the bytes of the
 * plain one (ds8b__tensor.nbytes and the memory estimate do not change).
 */
#ifndef DS8B_PACKING_H
#define DS8B_PACKING_H

#include "internal.h"

enum { DS8B_G = 16 };

/* True if the type has the row-group layout. */
bool ds8b__pack_supported(int type);
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
 * activation rows in the ds8b__act32 format (astride bytes apart). Per row:
 * acc = 0; for each block b: acc = fma((float)isum_b, d_w * d_x, acc), with
 * isum_b the exact integer dot product. */
void ds8b__mmg_ref(int type, const uint8_t *g, int64_t nb, const uint8_t *xa, size_t astride,
                   int64_t ncols, float *y, int64_t ldy, int nr);

#endif
