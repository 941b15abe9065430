/*
 * x86/amx_bf16.c -- AMX-BF16 prompt kernels (n > 1 activation rows) for
 * every integer weight type: the "amx" level, above avx512-vnni.
 *
 * Built with the AMX and AVX512-BF16 flags (the file name contains "amx");
 * only called when the dispatcher found AMX-TILE, AMX-BF16, AVX512-BF16,
 * the XCR0 tile-state bits and the kernel's permission to use tile data
 * (dispatch.c).
 *
 * Why bf16 and not int8 tiles: GGUF blocks carry a scale every 32 values,
 * so int8 tiles would have to stop every K = 32 and apply 16 x 16 scales
 * in AVX-512 (llama.cpp's AMX path does that). Here each chunk of 16
 * weight rows is dequantized once, scales applied, to bf16 in the tile
 * layout, and reused for all activation rows of the call; tiles then run
 * over the whole K without stopping, and activations are rounded to bf16
 * instead of quantized to int8 per block (a smaller error).
 *
 * Tiles: C[16 act rows][16 weight rows] f32 += A[16 act rows][32 bf16] x
 * B[16 pairs][16 weight rows][2 bf16]. A is read straight from the
 * activation rows (bf16, stride = the row stride). B is built per call:
 * for each 32-value k-chunk, the 16 rows' 32 bf16 (one zmm per row) are
 * transposed as 16 x 16 dwords, so dword (i, r) is the pair (2i, 2i+1) of
 * row r. Four C tiles (64 activation rows) share each B load.
 *
 * Numerics: every weight is d * q computed in f32 exactly as
 * ds8b__dequant_row does, then rounded to bf16 (round to nearest even,
 * vcvtne2ps2bf16); activations the same. Each output element is the same
 * sequence of tdpbf16ps over k-chunks in order, whatever the tile it falls
 * in, the tail handling or the thread: results depend only on the data
 * and cols (thread-count invariant, independent of the other rows).
 *
 * Tile configuration is per thread: each call loads it (ldtilecfg through
 * asm: GCC 12's _tile_loadconfig declares an 8-byte operand, so the
 * compiler may drop the stores that fill the 64-byte config) and releases
 * the tiles before returning.
 */
#include "kernels/kern_impl.h"
#include "quant/quant.h"

#include <immintrin.h>

typedef struct tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;
_Static_assert(sizeof(tilecfg) == 64, "tilecfg");

static void cfg_load(void) {
    tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = 16;
    }
    __asm__ volatile("ldtilecfg %0" ::"m"(c) : "memory");
}

/* ------------------------------------------------------------------ */
/* Weights -> B tiles                                                   */
/* ------------------------------------------------------------------ */

/* o[i] = dword i of every a[r] (16 x 16 transpose of dwords). */
static inline void transpose16(__m512i a[16]) {
    __m512i t[16], u[16];
    for (int p = 0; p < 8; p++) {
        t[2 * p] = _mm512_unpacklo_epi32(a[2 * p], a[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_epi32(a[2 * p], a[2 * p + 1]);
    }
    for (int g = 0; g < 4; g++) {
        __m512i t0 = t[4 * g], t1 = t[4 * g + 1], t2 = t[4 * g + 2], t3 = t[4 * g + 3];
        u[4 * g + 0] = _mm512_unpacklo_epi64(t0, t2);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t0, t2);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t1, t3);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t1, t3);
    }
    /* u[4g + j] lane L: element j + 4L of rows 4g..4g+3 */
    for (int j = 0; j < 4; j++) {
        __m512i v = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), w = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
        __m512i w2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
        a[j] = _mm512_shuffle_i32x4(v, v2, 0x88);
        a[j + 8] = _mm512_shuffle_i32x4(v, v2, 0xdd);
        a[j + 4] = _mm512_shuffle_i32x4(w, w2, 0x88);
        a[j + 12] = _mm512_shuffle_i32x4(w, w2, 0xdd);
    }
}

static inline __m512i pack_bf16(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

static inline float f16s(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return ds8b__f16_to_f32(h);
}

/* 32 values of one Q4_0 block (d, qs[16]) as bf16. */
static inline __m512i q4_0_block(const uint8_t *b) {
    __m128i v = _mm_loadu_si128((const __m128i *)(b + 2)), m = _mm_set1_epi8(0x0F);
    __m512i lo = _mm512_cvtepu8_epi32(_mm_and_si128(v, m));
    __m512i hi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), m));
    __m512i eight = _mm512_set1_epi32(8);
    __m512 d = _mm512_set1_ps(f16s(b));
    return pack_bf16(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(lo, eight)), d),
                     _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(hi, eight)), d));
}

/* 32 values of one Q8_0 block (d, qs[32]) as bf16. */
static inline __m512i q8_0_block(const uint8_t *b) {
    __m512i lo = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
    __m512i hi = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)));
    __m512 d = _mm512_set1_ps(f16s(b));
    return pack_bf16(_mm512_mul_ps(_mm512_cvtepi32_ps(lo), d), _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
}

/* 32 values of one Q4_1 / W4A16 block (d, m, qs[16]) as bf16, as dq_q4_1
 * computes them (q * d + m). */
static inline __m512i q4_1_block(const uint8_t *b) {
    __m128i v = _mm_loadu_si128((const __m128i *)(b + 4)), m4 = _mm_set1_epi8(0x0F);
    __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(v, m4)));
    __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), m4)));
    __m512 d = _mm512_set1_ps(f16s(b)), m = _mm512_set1_ps(f16s(b + 2));
    return pack_bf16(_mm512_add_ps(_mm512_mul_ps(lo, d), m), _mm512_add_ps(_mm512_mul_ps(hi, d), m));
}

/* 32 F16 values as bf16 (each rounded once: f16 -> f32 is exact). */
static inline __m512i f16_block(const uint8_t *p) {
    return pack_bf16(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)),
                     _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32))));
}

/* Q4_K: 32-value chunk c (0..7) of a super-block, as dq_q4_k computes it
 * (d * scale first, then d_j * q - dmin * min). */
static inline __m512i q4_k_chunk(const ds8b__blk_q4_k *b, int c) {
    uint8_t s, m;
    ds8b__k4_scale_min(b->scales, c, &s, &m);
    float d = ds8b__f16_to_f32(b->d), dmin = ds8b__f16_to_f32(b->dmin);
    __m512 dj = _mm512_set1_ps(d * s), nj = _mm512_set1_ps(dmin * m);
    const uint8_t *q = b->qs + 32 * (c / 2);
    __m128i m4 = _mm_set1_epi8(0x0F);
    __m128i v0 = _mm_loadu_si128((const __m128i *)q), v1 = _mm_loadu_si128((const __m128i *)(q + 16));
    if (c & 1) {
        v0 = _mm_srli_epi16(v0, 4);
        v1 = _mm_srli_epi16(v1, 4);
    }
    __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(v0, m4)));
    __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(v1, m4)));
    return pack_bf16(_mm512_sub_ps(_mm512_mul_ps(dj, f0), nj), _mm512_sub_ps(_mm512_mul_ps(dj, f1), nj));
}

/* Q6_K: chunk c (0..7) = half h = c / 4, part j = c % 4, as dq_q6_k
 * computes it ((d * scale) * q, one scale per 16 values). */
static inline __m512i q6_k_chunk(const ds8b__blk_q6_k *b, int c) {
    int h = c / 4, j = c % 4;
    const uint8_t *ql = b->ql + 64 * h + (j & 1) * 32, *qh = b->qh + 32 * h;
    float d = ds8b__f16_to_f32(b->d);
    const int8_t *sc = b->scales + 8 * h + 2 * j;
    __m512 out[2];
    for (int half = 0; half < 2; half++) {
        __m512i l = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + 16 * half)));
        __m512i hb = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + 16 * half)));
        l = (j & 2) ? _mm512_srli_epi32(l, 4) : _mm512_and_si512(l, _mm512_set1_epi32(0x0F));
        hb = _mm512_and_si512(_mm512_srli_epi32(hb, 2 * j), _mm512_set1_epi32(3));
        __m512i q = _mm512_sub_epi32(_mm512_or_si512(l, _mm512_slli_epi32(hb, 4)), _mm512_set1_epi32(32));
        out[half] = _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[half]), _mm512_cvtepi32_ps(q));
    }
    return pack_bf16(out[0], out[1]);
}

/* One weight row as bf16 (cols values) at dst, for the types without a
 * direct path (has_direct): ds8b__dequant_row into f32 (a row of
 * scratch), then rounded. */
static void row_bf16(int type, const uint8_t *w, int64_t cols, uint8_t *dst, float *f32) {
    ds8b__dequant_row(type, w, f32, cols);
    for (int64_t k = 0; k < cols / 32; k++)
        _mm512_storeu_si512(dst + k * 64, pack_bf16(_mm512_loadu_ps(f32 + k * 32), _mm512_loadu_ps(f32 + k * 32 + 16)));
}

/* Block k (32 values) of one weight row, as bf16, for the types with a
 * direct path (has_direct). */
static inline int has_direct(int type) {
    return type == DS8B_T_Q4_0 || type == DS8B_T_Q8_0 || type == DS8B_T_Q4_K || type == DS8B_T_Q6_K ||
           type == DS8B_T_Q4_1 || type == DS8B_T_W4A16 || type == DS8B_T_BF16 || type == DS8B_T_F16;
}
static inline __m512i blk_bf16(int type, const uint8_t *w, int64_t k) {
    switch (type) {
    case DS8B_T_Q4_0: return q4_0_block(w + k * 18);
    case DS8B_T_Q8_0: return q8_0_block(w + k * 34);
    case DS8B_T_Q4_K: return q4_k_chunk((const ds8b__blk_q4_k *)w + k / 8, (int)(k % 8));
    case DS8B_T_Q4_1:
    case DS8B_T_W4A16: return q4_1_block(w + k * 20);
    case DS8B_T_BF16: return _mm512_loadu_si512(w + k * 64);
    case DS8B_T_F16: return f16_block(w + k * 64);
    default: return q6_k_chunk((const ds8b__blk_q6_k *)w + k / 8, (int)(k % 8));
    }
}

/* B tiles of weight rows 0..nrows-1 (nrows <= AMX_ROWS; rows up to the
 * next multiple of 16 are zero): tile t, k-chunk k at B + (t * nk + k) KiB.
 * The direct types are dequantized straight into the transposes; the
 * others go through rows (nrows x cols bf16 of scratch) and f32 (one row
 * of floats). */
static void build_b(int type, const uint8_t *w, size_t wstride, int64_t nrows, int64_t cols, uint8_t *B,
                    uint8_t *rows, float *f32) {
    int64_t nk = cols / 32, nt = (nrows + 15) / 16;
    size_t rb = (size_t)cols * 2;
    int direct = has_direct(type);
    if (!direct)
        for (int64_t r = 0; r < nrows; r++) row_bf16(type, w + (size_t)r * wstride, cols, rows + (size_t)r * rb, f32);
    __m512i z[16];
    /* the direct path reads 16 rows side by side, which the hardware
     * prefetchers follow poorly (the weights come from DRAM): while tile t
     * is built, the rows of tile t + 1 are prefetched, spread over its
     * k-chunks */
    const size_t lines = (wstride + 63) / 64; /* per row */
    const size_t per_k = direct ? (16 * lines + (size_t)nk - 1) / (size_t)nk : 0;
    if (direct)
        for (int64_t r = 0; r < 16 && r < nrows; r++)
            for (size_t l = 0; l < lines; l++) _mm_prefetch((const char *)(w + (size_t)r * wstride + l * 64), _MM_HINT_T0);
    for (int64_t t = 0; t < nt; t++)
        for (int64_t k = 0; k < nk; k++) {
            if (per_k && t + 1 < nt)
                for (size_t j = 0; j < per_k; j++) {
                    size_t idx = (size_t)k * per_k + j, r = idx / lines;
                    int64_t row = (t + 1) * 16 + (int64_t)r;
                    if (r < 16 && row < nrows)
                        _mm_prefetch((const char *)(w + (size_t)row * wstride + (idx % lines) * 64), _MM_HINT_T0);
                }
            for (int r = 0; r < 16; r++) {
                int64_t row = t * 16 + r;
                if (row >= nrows) z[r] = _mm512_setzero_si512();
                else if (direct) z[r] = blk_bf16(type, w + (size_t)row * wstride, k);
                else z[r] = _mm512_loadu_si512(rows + (size_t)row * rb + (size_t)k * 64);
            }
            transpose16(z);
            uint8_t *o = B + ((size_t)t * (size_t)nk + (size_t)k) * 1024;
            for (int i = 0; i < 16; i++) _mm512_storeu_si512(o + (size_t)i * 64, z[i]);
        }
}

/* ------------------------------------------------------------------ */
/* Activations: bf16 rows                                               */
/* ------------------------------------------------------------------ */
static size_t pact_size(int64_t cols) { return (size_t)cols * 2; }

static void pact_quant(const float *x, uint8_t *dst, int64_t cols) {
    for (int64_t i = 0; i < cols; i += 32)
        _mm512_storeu_si512(dst + (size_t)i * 2, pack_bf16(_mm512_loadu_ps(x + i), _mm512_loadu_ps(x + i + 16)));
}

/* Weight rows per kernel call (the matmul driver's chunk, rows_for):
 * up to AMX_ROWS, and no more than AMX_B_VALUES weights, so that the bf16
 * B tiles of a call (2 bytes a weight) stay within about 1 MiB of L2 with
 * the activation tiles streaming past them: 128 rows of 4096, 32 of
 * 14336. Activation rows per call: AMX_COLS, each chunk's B tiles built
 * once for all of them (the matmul driver's column chunk). */
enum { AMX_ROWS = 128, AMX_B_VALUES = 128 * 4096, AMX_COLS = 512 };

static int64_t rows_for(int64_t cols) {
    int64_t r = AMX_ROWS;
    while (r > 16 && r * cols > AMX_B_VALUES) r -= 16;
    return r;
}

/* scratch: B (rows_for(cols) * cols * 2 bytes), the bf16 rows (the same), one
 * f32 row, a padded tail of 16 activation rows (16 * cols * 2), one C
 * tile (1 KiB), alignment */
static size_t mmp_scratch(int64_t cols) { return (size_t)cols * (4 * (size_t)rows_for(cols) + 4 + 32) + 1024 + 5 * 64; }

static inline size_t al64(size_t v) { return (v + 63) & ~(size_t)63; }

/* ------------------------------------------------------------------ */
/* The kernel                                                           */
/* ------------------------------------------------------------------ */

/* 16 activation rows at a (stride as) x nt (1..4) B tiles of 16 weight
 * rows -> C tiles 0..nt-1: one A load per k-chunk serves all of them. */
static inline void run_tile(const uint8_t *a, size_t as, const uint8_t *B, int64_t nk, int nt) {
    const size_t tb = (size_t)nk * 1024;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    if (nt == 4) {
        for (int64_t k = 0; k < nk; k++) {
            const uint8_t *bk = B + (size_t)k * 1024;
            _tile_loadd(4, a + (size_t)k * 64, as);
            _tile_loadd(5, bk, 64);
            _tile_dpbf16ps(0, 4, 5);
            _tile_loadd(6, bk + tb, 64);
            _tile_dpbf16ps(1, 4, 6);
            _tile_loadd(7, bk + 2 * tb, 64);
            _tile_dpbf16ps(2, 4, 7);
            _tile_loadd(5, bk + 3 * tb, 64);
            _tile_dpbf16ps(3, 4, 5);
        }
        return;
    }
    for (int64_t k = 0; k < nk; k++) {
        const uint8_t *bk = B + (size_t)k * 1024;
        _tile_loadd(4, a + (size_t)k * 64, as);
        _tile_loadd(5, bk, 64);
        _tile_dpbf16ps(0, 4, 5);
        if (nt > 1) {
            _tile_loadd(6, bk + tb, 64);
            _tile_dpbf16ps(1, 4, 6);
        }
        if (nt > 2) {
            _tile_loadd(7, bk + 2 * tb, 64);
            _tile_dpbf16ps(2, 4, 7);
        }
    }
}

/* C tile t: 16 activation rows x weight rows 16t.. (nr of the call) ->
 * rows n16 (<= 16) of y from yc (stride ldy floats); a full tile goes
 * straight to y, a partial one through ct. */
#define STORE_C(t)                                                                                   \
    do {                                                                                             \
        if ((t) < ntq) {                                                                             \
            int64_t w0 = 16 * (q + (t)), wn = nr - w0 < 16 ? nr - w0 : 16;                           \
            if (wn == 16 && n16 == 16) {                                                             \
                _tile_stored(t, yc + w0, (size_t)ldy * 4);                                           \
            } else {                                                                                 \
                _tile_stored(t, ct, 64);                                                             \
                for (int64_t i = 0; i < n16; i++)                                                    \
                    memcpy(yc + (size_t)i * (size_t)ldy + w0, ct + i * 16, (size_t)wn * 4);          \
            }                                                                                        \
        }                                                                                            \
    } while (0)

static void mmp_amx(int type, const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa, size_t astride,
                    int64_t ncols, int64_t cols, float *y, int64_t ldy, uint8_t *scratch) {
    int64_t nk = cols / 32;
    const int64_t rchunk = rows_for(cols);
    size_t bbytes = al64((size_t)rchunk * (size_t)cols * 2);
    uint8_t *B = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    uint8_t *rows = B + bbytes;
    float *f32 = (float *)(rows + bbytes);
    uint8_t *apad = (uint8_t *)f32 + al64((size_t)cols * 4);
    float *ct = (float *)(apad + al64((size_t)cols * 32));
    for (int64_t r0 = 0; r0 < nrows; r0 += rchunk) {
        int64_t nr = nrows - r0 < rchunk ? nrows - r0 : rchunk;
        int nt = (int)((nr + 15) / 16);
        build_b(type, w + (size_t)r0 * wstride, wstride, nr, cols, B, rows, f32);
        cfg_load();
        for (int64_t c = 0; c < ncols; c += 16) {
            int64_t n16 = ncols - c < 16 ? ncols - c : 16;
            const uint8_t *a = xa + (size_t)c * astride;
            size_t as = astride;
            if (n16 < 16) {
                /* the last < 16 activation rows, zero-padded to a whole tile */
                size_t rb = (size_t)cols * 2;
                for (int64_t i = 0; i < 16; i++) {
                    if (i < n16) memcpy(apad + (size_t)i * rb, xa + (size_t)(c + i) * astride, rb);
                    else memset(apad + (size_t)i * rb, 0, rb);
                }
                a = apad;
                as = rb;
            }
            float *yc = y + (size_t)c * (size_t)ldy + r0;
            for (int q = 0; q < nt; q += 4) { /* four B tiles at a time */
                int ntq = nt - q < 4 ? nt - q : 4;
                run_tile(a, as, B + (size_t)q * (size_t)nk * 1024, nk, ntq);
                STORE_C(0);
                STORE_C(1);
                STORE_C(2);
                STORE_C(3);
            }
        }
        _tile_release();
    }
}

#define MMP(name, T)                                                                                      \
    static void name(const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa, size_t astride,  \
                     int64_t ncols, int64_t cols, float *y, int64_t ldy, uint8_t *scratch) {              \
        mmp_amx(T, w, wstride, nrows, xa, astride, ncols, cols, y, ldy, scratch);                         \
    }
MMP(mmp_q4_0, DS8B_T_Q4_0)
MMP(mmp_q4_1, DS8B_T_Q4_1)
MMP(mmp_q5_0, DS8B_T_Q5_0)
MMP(mmp_q5_1, DS8B_T_Q5_1)
MMP(mmp_q8_0, DS8B_T_Q8_0)
MMP(mmp_q2_k, DS8B_T_Q2_K)
MMP(mmp_q3_k, DS8B_T_Q3_K)
MMP(mmp_q4_k, DS8B_T_Q4_K)
MMP(mmp_q5_k, DS8B_T_Q5_K)
MMP(mmp_q6_k, DS8B_T_Q6_K)
MMP(mmp_w4a16, DS8B_T_W4A16)
MMP(mmp_bf16, DS8B_T_BF16)
MMP(mmp_f16, DS8B_T_F16)

void ds8b__kops_fill_amx(ds8b__kops *k) {
    static const struct {
        int type;
        ds8b__mmp_fn fn;
    } tab[] = {{DS8B_T_Q4_0, mmp_q4_0}, {DS8B_T_Q4_1, mmp_q4_1}, {DS8B_T_Q5_0, mmp_q5_0},
               {DS8B_T_Q5_1, mmp_q5_1}, {DS8B_T_Q8_0, mmp_q8_0}, {DS8B_T_Q2_K, mmp_q2_k},
               {DS8B_T_Q3_K, mmp_q3_k}, {DS8B_T_Q4_K, mmp_q4_k}, {DS8B_T_Q5_K, mmp_q5_k},
               {DS8B_T_Q6_K, mmp_q6_k}, {DS8B_T_W4A16, mmp_w4a16}, {DS8B_T_BF16, mmp_bf16},
               {DS8B_T_F16, mmp_f16}};
    k->name = "amx";
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        ds8b__qkern *q = &k->q[tab[i].type];
        if (!q->mm) continue;
        q->mmp = tab[i].fn;
        q->pact_size = pact_size;
        q->pact_quant = pact_quant;
        q->mmp_scratch = mmp_scratch;
        q->mmp_rows_for = rows_for;
        q->mmp_cols = AMX_COLS;
    }
}

/* A tight loop of independent tdpbf16ps (4 accumulators, 2 x 2 tiles):
 * iters x 4 x 16 x 16 x 32 multiply-adds. For ds8b bench's peak probe. */
int64_t ds8b__amx_bf16_loop(int64_t iters) {
    static const uint8_t zero[1024] __attribute__((aligned(64)));
    cfg_load();
    _tile_loadd(4, zero, 64);
    _tile_loadd(5, zero, 64);
    _tile_loadd(6, zero, 64);
    _tile_loadd(7, zero, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    float out[256] __attribute__((aligned(64)));
    _tile_stored(0, out, 64);
    _tile_release();
    return (int64_t)out[0];
}
