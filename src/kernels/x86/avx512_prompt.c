/*
 * x86/avx512_prompt.c -- AVX-512 VNNI prompt kernels (n > 1 activation
 * rows) for every integer weight type, in one layout.
 *
 * The decode kernels scale and accumulate in float after every one or two
 * vpdpbusd. Here a 512-bit vector holds 16 different "lanes" (a lane is a
 * 32-value block or sub-block, or a 16-value sub-block for the K-quants
 * whose scales cover 16 values), and vector s holds values 4s..4s+3 of
 * each lane: NS vpdpbusd (NS = 8 for 32-value lanes, 4 for 16-value lanes)
 * finish 16 lanes, then one convert, one multiply and one FMA (plus one
 * FMA for formats with a min) apply all 16 scales.
 *
 * Every format is reduced to unsigned values u, a scale dw and a min mw
 * per lane, and an offset o: weight = dw * (u - o) + mw. Activations are
 * quantized to int8 per 32 values (ds8b__quant_i8_32, so the integers are
 * the ones every other kernel sees) with scale dx:
 *   sum over a lane = dw*dx * (sum u*q - o * sum q) + mw * dx * sum q
 * corr = -o * sum q starts the integer accumulator, sx = dx * sum q feeds
 * the min term.
 *
 * Layouts, per group of 16 lanes (lane p holds natural lane 4*(p%4) + p/4
 * of the group: the order a 4x4 dword transpose of four registers of four
 * lanes produces; lanes past the row's end are zero):
 *   activations: int8 qs[NS][64], int32 corr[16], float dx[16], float sx[16]
 *   weights (unpacked per row into the calling thread's scratch):
 *                uint8 u[NS][64], float dw[16], float mw[16]
 * A weight row is unpacked once per matmul chunk and used for up to 256
 * activation rows. Each output element is computed by the same sequence
 * whatever the tile or thread, so results are bit-identical for any
 * thread count.
 */
#include "kernels/kern_impl.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

enum { P_ROWS = 16, P_COLS = 64 };

typedef struct pk_fmt {
    int ns;       /* vectors per group: 8 (32-value lanes) or 4 (16-value lanes) */
    int offset;   /* o */
    bool affine;  /* has a min term */
    /* Writes lane li (< nl) of row into u (4*ns bytes) and its scale/min. */
    void (*lane)(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw);
} pk_fmt;

static inline int perm_lane(int p) { return 4 * (p % 4) + p / 4; }
static size_t act_group(int ns) { return (size_t)ns * 64 + 192; }
static size_t w_group(int ns) { return (size_t)ns * 64 + 128; }

/* ================================================================== */
/* Lanes of each format                                                */
/* ================================================================== */
static const __m128i *c128(const void *p) { return (const __m128i *)p; }

static void lane_q4_0(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw) {
    const ds8b__blk_q4_0 *b = (const ds8b__blk_q4_0 *)row + li;
    __m128i q = _mm_loadu_si128(c128(b->qs)), m = _mm_set1_epi8(0x0F);
    _mm_storeu_si128((__m128i *)u, _mm_and_si128(q, m));
    _mm_storeu_si128((__m128i *)(u + 16), _mm_and_si128(_mm_srli_epi16(q, 4), m));
    *dw = ds8b__f16_to_f32(b->d);
    *mw = 0;
}
static void lane_q4_1(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw) {
    const ds8b__blk_q4_1 *b = (const ds8b__blk_q4_1 *)row + li;
    __m128i q = _mm_loadu_si128(c128(b->qs)), m = _mm_set1_epi8(0x0F);
    _mm_storeu_si128((__m128i *)u, _mm_and_si128(q, m));
    _mm_storeu_si128((__m128i *)(u + 16), _mm_and_si128(_mm_srli_epi16(q, 4), m));
    *dw = ds8b__f16_to_f32(b->d);
    *mw = ds8b__f16_to_f32(b->m);
}
/* nibbles of qs plus the fifth bit from the 32 bits of qh */
AI void five_bits(const uint8_t *qs, const uint8_t *qh4, uint8_t *u) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    __m128i q = _mm_loadu_si128(c128(qs)), m = _mm_set1_epi8(0x0F), b4 = _mm_set1_epi8(0x10);
    __m128i lo = _mm_and_si128(q, m), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m);
    lo = _mm_or_si128(lo, _mm_and_si128(_mm_movm_epi8((__mmask16)(qh & 0xFFFF)), b4));
    hi = _mm_or_si128(hi, _mm_and_si128(_mm_movm_epi8((__mmask16)(qh >> 16)), b4));
    _mm_storeu_si128((__m128i *)u, lo);
    _mm_storeu_si128((__m128i *)(u + 16), hi);
}
static void lane_q5_0(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw) {
    const ds8b__blk_q5_0 *b = (const ds8b__blk_q5_0 *)row + li;
    five_bits(b->qs, b->qh, u);
    *dw = ds8b__f16_to_f32(b->d);
    *mw = 0;
}
static void lane_q5_1(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw) {
    const ds8b__blk_q5_1 *b = (const ds8b__blk_q5_1 *)row + li;
    five_bits(b->qs, b->qh, u);
    *dw = ds8b__f16_to_f32(b->d);
    *mw = ds8b__f16_to_f32(b->m);
}
static void lane_q8_0(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw) {
    const ds8b__blk_q8_0 *b = (const ds8b__blk_q8_0 *)row + li;
    __m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
    _mm256_storeu_si256((__m256i *)u, _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)));
    *dw = ds8b__f16_to_f32(b->d);
    *mw = 0;
}
/* Q4_K / Q5_K: lane = 32-value sub-block s of super-block li / 8 */
static void lane_q4_k(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw) {
    const ds8b__blk_q4_k *b = (const ds8b__blk_q4_k *)row + li / 8;
    int s = (int)(li % 8);
    __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (s / 2)));
    if (s & 1) q = _mm256_srli_epi16(q, 4);
    _mm256_storeu_si256((__m256i *)u, _mm256_and_si256(q, _mm256_set1_epi8(0x0F)));
    uint8_t sc, m;
    ds8b__k4_scale_min(b->scales, s, &sc, &m);
    *dw = ds8b__f16_to_f32(b->d) * (float)sc;
    *mw = -(ds8b__f16_to_f32(b->dmin) * (float)m);
}
static void lane_q5_k(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw) {
    const ds8b__blk_q5_k *b = (const ds8b__blk_q5_k *)row + li / 8;
    int s = (int)(li % 8);
    __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (s / 2)));
    if (s & 1) q = _mm256_srli_epi16(q, 4);
    q = _mm256_and_si256(q, _mm256_set1_epi8(0x0F));
    __m256i h = _mm256_loadu_si256((const __m256i *)b->qh);
    h = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(s)), _mm256_set1_epi8(1));
    q = _mm256_or_si256(q, _mm256_slli_epi16(h, 4));
    _mm256_storeu_si256((__m256i *)u, q);
    uint8_t sc, m;
    ds8b__k4_scale_min(b->scales, s, &sc, &m);
    *dw = ds8b__f16_to_f32(b->d) * (float)sc;
    *mw = -(ds8b__f16_to_f32(b->dmin) * (float)m);
}
/* Q2_K / Q3_K / Q6_K: lane = 16-value sub-block i of super-block li / 16.
 * Q2_K/Q3_K: half h = i/8, bit-plane pl = (i%8)/2, bytes 16*(i%2).. */
static void lane_q2_k(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw) {
    const ds8b__blk_q2_k *b = (const ds8b__blk_q2_k *)row + li / 16;
    int i = (int)(li % 16), h = i / 8, pl = (i % 8) / 2, half = i % 2;
    __m128i q = _mm_loadu_si128(c128(b->qs + 32 * h + 16 * half));
    q = _mm_and_si128(_mm_srl_epi16(q, _mm_cvtsi32_si128(2 * pl)), _mm_set1_epi8(3));
    _mm_storeu_si128((__m128i *)u, q);
    *dw = ds8b__f16_to_f32(b->d) * (float)(b->scales[i] & 0xF);
    *mw = -(ds8b__f16_to_f32(b->dmin) * (float)(b->scales[i] >> 4));
}
static void lane_q3_k(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw) {
    const ds8b__blk_q3_k *b = (const ds8b__blk_q3_k *)row + li / 16;
    int i = (int)(li % 16), h = i / 8, pl = (i % 8) / 2, half = i % 2;
    __m128i q = _mm_loadu_si128(c128(b->qs + 32 * h + 16 * half));
    q = _mm_and_si128(_mm_srl_epi16(q, _mm_cvtsi32_si128(2 * pl)), _mm_set1_epi8(3));
    __m128i hm = _mm_loadu_si128(c128(b->hmask + 16 * half));
    hm = _mm_and_si128(_mm_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + pl)), _mm_set1_epi8(1));
    _mm_storeu_si128((__m128i *)u, _mm_or_si128(q, _mm_slli_epi16(hm, 2)));
    int8_t sc[16];
    ds8b__k3_scales(b->scales, sc);
    *dw = ds8b__f16_to_f32(b->d) * (float)sc[i];
    *mw = 0;
}
/* Q6_K: half h = i/8, k = (i%8)/2 picks ql[l] or ql[l+32] (k odd) and the
 * low (k < 2) or high nibble, bits 2k..2k+1 of qh[l]; l = 16*(i%2).. */
static void lane_q6_k(const uint8_t *row, int64_t li, uint8_t *u, float *dw, float *mw) {
    const ds8b__blk_q6_k *b = (const ds8b__blk_q6_k *)row + li / 16;
    int i = (int)(li % 16), h = i / 8, k = (i % 8) / 2, l0 = 16 * (i % 2);
    __m128i ql = _mm_loadu_si128(c128(b->ql + 64 * h + 32 * (k & 1) + l0));
    if (k >= 2) ql = _mm_srli_epi16(ql, 4);
    ql = _mm_and_si128(ql, _mm_set1_epi8(0x0F));
    __m128i qh = _mm_loadu_si128(c128(b->qh + 32 * h + l0));
    qh = _mm_and_si128(_mm_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)), _mm_set1_epi8(3));
    _mm_storeu_si128((__m128i *)u, _mm_or_si128(ql, _mm_slli_epi16(qh, 4)));
    *dw = ds8b__f16_to_f32(b->d) * (float)b->scales[i];
    *mw = 0;
}

static const pk_fmt f_q4_0 = {8, 8, false, lane_q4_0};
static const pk_fmt f_q4_1 = {8, 0, true, lane_q4_1};
static const pk_fmt f_q5_0 = {8, 16, false, lane_q5_0};
static const pk_fmt f_q5_1 = {8, 0, true, lane_q5_1};
static const pk_fmt f_q8_0 = {8, 128, false, lane_q8_0};
static const pk_fmt f_q4_k = {8, 0, true, lane_q4_k};
static const pk_fmt f_q5_k = {8, 0, true, lane_q5_k};
static const pk_fmt f_q2_k = {4, 0, true, lane_q2_k};
static const pk_fmt f_q3_k = {4, 4, false, lane_q3_k};
static const pk_fmt f_q6_k = {4, 32, false, lane_q6_k};

/* ================================================================== */
/* Unpacking a weight row                                              */
/* ================================================================== */
/* nat: 16 lanes of 4*ns bytes in natural order -> out: ns vectors of 16
 * lanes (4 bytes each) in the permuted order. */
AI void transpose_store(const uint8_t *nat, int ns, uint8_t *out) {
    int lb = 4 * ns; /* bytes per lane */
    for (int hq = 0; hq < ns / 4; hq++) {
        __m512i z[4];
        for (int a = 0; a < 4; a++) {
            __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(c128(nat + (4 * a + 0) * lb + 16 * hq)));
            v = _mm512_inserti32x4(v, _mm_loadu_si128(c128(nat + (4 * a + 1) * lb + 16 * hq)), 1);
            v = _mm512_inserti32x4(v, _mm_loadu_si128(c128(nat + (4 * a + 2) * lb + 16 * hq)), 2);
            v = _mm512_inserti32x4(v, _mm_loadu_si128(c128(nat + (4 * a + 3) * lb + 16 * hq)), 3);
            z[a] = v;
        }
        __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
        __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
        _mm512_storeu_si512(out + 64 * (4 * hq + 0), _mm512_unpacklo_epi64(t0, t2));
        _mm512_storeu_si512(out + 64 * (4 * hq + 1), _mm512_unpackhi_epi64(t0, t2));
        _mm512_storeu_si512(out + 64 * (4 * hq + 2), _mm512_unpacklo_epi64(t1, t3));
        _mm512_storeu_si512(out + 64 * (4 * hq + 3), _mm512_unpackhi_epi64(t1, t3));
    }
}

static void unpack_row(const pk_fmt *f, const uint8_t *row, int64_t nl, uint8_t *dst) {
    int64_t ng = (nl + 15) / 16;
    size_t wg = w_group(f->ns);
    uint8_t nat[16 * 32] __attribute__((aligned(64)));
    float dwn[16], mwn[16];
    for (int64_t g = 0; g < ng; g++) {
        uint8_t *o = dst + (size_t)g * wg;
        for (int l = 0; l < 16; l++) {
            int64_t li = 16 * g + l;
            if (li < nl) {
                f->lane(row, li, nat + l * 4 * f->ns, &dwn[l], &mwn[l]);
            } else {
                memset(nat + l * 4 * f->ns, 0, (size_t)(4 * f->ns));
                dwn[l] = mwn[l] = 0;
            }
        }
        transpose_store(nat, f->ns, o);
        float *dw = (float *)(o + 64 * f->ns), *mw = dw + 16;
        for (int p = 0; p < 16; p++) {
            dw[p] = dwn[perm_lane(p)];
            mw[p] = mwn[perm_lane(p)];
        }
    }
}

/* ================================================================== */
/* Activations                                                         */
/* ================================================================== */
static size_t pact_size_ns(int64_t cols, int ns) {
    int64_t nl = cols / (4 * ns);
    return (size_t)((nl + 15) / 16) * act_group(ns);
}

static void pact_quant_fmt(const pk_fmt *f, const float *x, uint8_t *dst, int64_t cols) {
    int ns = f->ns, lv = 4 * ns;               /* values per lane */
    int64_t nl = cols / lv, ng = (nl + 15) / 16;
    int8_t q[512];
    float d32[16];
    for (int64_t g = 0; g < ng; g++) {
        uint8_t *a = dst + (size_t)g * act_group(ns);
        int8_t *qs = (int8_t *)a;
        int32_t *corr = (int32_t *)(a + 64 * ns);
        float *dx = (float *)(a + 64 * ns + 64), *sx = dx + 16;
        /* the group's values, quantized per 32 */
        int64_t v0 = g * 16 * lv, nv = cols - v0 < 16 * lv ? cols - v0 : 16 * lv;
        for (int64_t b = 0; b < (16 * lv) / 32; b++) {
            if (32 * b < nv) d32[b] = ds8b__avx512_quant_i8_32(x + v0 + 32 * b, q + 32 * b);
            else {
                memset(q + 32 * b, 0, 32);
                d32[b] = 0;
            }
        }
        for (int p = 0; p < 16; p++) {
            int ln = perm_lane(p);
            const int8_t *lq = q + ln * lv;
            int32_t sum = 0;
            for (int i = 0; i < lv; i++) sum += lq[i];
            float d = d32[(ln * lv) / 32];
            corr[p] = -f->offset * sum;
            dx[p] = d;
            sx[p] = d * (float)sum;
            for (int s = 0; s < ns; s++) memcpy(qs + 64 * s + 4 * p, lq + 4 * s, 4);
        }
    }
}

/* ================================================================== */
/* Tiles                                                               */
/* ================================================================== */
AI void pk_tile(const uint8_t *ws, size_t wrs, const uint8_t *xa, size_t ast, int64_t ng, float *y,
                int64_t ldy, const int NS, const bool AFF, const int R, const int C) {
    const size_t AG = (size_t)NS * 64 + 192, WG = (size_t)NS * 64 + 128;
    __m512 fa[4][3];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 3
        for (int c = 0; c < C; c++) fa[r][c] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *xg = xa + (size_t)g * AG, *wg = ws + (size_t)g * WG;
        __m512i ia[4][3];
        #pragma GCC unroll 3
        for (int c = 0; c < C; c++) {
            __m512i corr = _mm512_loadu_si512(xg + (size_t)c * ast + 64 * NS);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) ia[r][c] = corr;
        }
        #pragma GCC unroll 8
        for (int v = 0; v < NS; v++) {
            __m512i xv[3];
            #pragma GCC unroll 3
            for (int c = 0; c < C; c++) xv[c] = _mm512_loadu_si512(xg + (size_t)c * ast + 64 * v);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i wv = _mm512_loadu_si512(wg + (size_t)r * wrs + 64 * v);
                #pragma GCC unroll 3
                for (int c = 0; c < C; c++) ia[r][c] = _mm512_dpbusd_epi32(ia[r][c], wv, xv[c]);
            }
        }
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 dw = _mm512_loadu_ps((const float *)(wg + (size_t)r * wrs + 64 * NS));
            #pragma GCC unroll 3
            for (int c = 0; c < C; c++) {
                __m512 dx = _mm512_loadu_ps((const float *)(xg + (size_t)c * ast + 64 * NS + 64));
                fa[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r][c]), _mm512_mul_ps(dw, dx), fa[r][c]);
                if (AFF) {
                    __m512 mw = _mm512_loadu_ps((const float *)(wg + (size_t)r * wrs + 64 * NS + 64));
                    __m512 sx = _mm512_loadu_ps((const float *)(xg + (size_t)c * ast + 64 * NS + 128));
                    fa[r][c] = _mm512_fmadd_ps(mw, sx, fa[r][c]);
                }
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 3
        for (int c = 0; c < C; c++) y[c * ldy + r] = _mm512_reduce_add_ps(fa[r][c]);
}

#define PK_TILES(NAME, NS, AFF)                                                                   \
    static void NAME(const uint8_t *ws, size_t wrs, const uint8_t *xa, size_t ast, int64_t ng,    \
                     float *y, int64_t ldy, int64_t rr, int64_t cc) {                             \
        switch (rr * 8 + cc) {                                                                    \
        case 1 * 8 + 1: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 1, 1); break;              \
        case 2 * 8 + 1: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 2, 1); break;              \
        case 3 * 8 + 1: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 3, 1); break;              \
        case 4 * 8 + 1: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 4, 1); break;              \
        case 1 * 8 + 2: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 1, 2); break;              \
        case 2 * 8 + 2: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 2, 2); break;              \
        case 3 * 8 + 2: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 3, 2); break;              \
        case 4 * 8 + 2: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 4, 2); break;              \
        case 1 * 8 + 3: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 1, 3); break;              \
        case 2 * 8 + 3: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 2, 3); break;              \
        case 3 * 8 + 3: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 3, 3); break;              \
        default: pk_tile(ws, wrs, xa, ast, ng, y, ldy, NS, AFF, 4, 3); break;                     \
        }                                                                                         \
    }
PK_TILES(tiles_8, 8, false)
PK_TILES(tiles_8a, 8, true)
PK_TILES(tiles_4, 4, false)
PK_TILES(tiles_4a, 4, true)

/* ================================================================== */
/* Driver                                                              */
/* ================================================================== */
static size_t scratch_ns(int64_t cols, int ns) {
    int64_t nl = cols / (4 * ns);
    return (size_t)P_ROWS * (size_t)((nl + 15) / 16) * w_group(ns);
}

static void mmp_fmt(const pk_fmt *f, const uint8_t *w, size_t wst, int64_t nr, const uint8_t *xa,
                    size_t ast, int64_t nc, int64_t cols, float *y, int64_t ldy, uint8_t *scratch) {
    int64_t nl = cols / (4 * f->ns), ng = (nl + 15) / 16;
    size_t wrs = (size_t)ng * w_group(f->ns);
    void (*tiles)(const uint8_t *, size_t, const uint8_t *, size_t, int64_t, float *, int64_t, int64_t,
                  int64_t) = f->ns == 8 ? (f->affine ? tiles_8a : tiles_8) : (f->affine ? tiles_4a : tiles_4);
    for (int64_t r0 = 0; r0 < nr; r0 += P_ROWS) {
        int64_t rn = nr - r0 < P_ROWS ? nr - r0 : P_ROWS;
        for (int64_t i = 0; i < rn; i++) unpack_row(f, w + (size_t)(r0 + i) * wst, nl, scratch + (size_t)i * wrs);
        for (int64_t c0 = 0; c0 < nc; c0 += P_COLS) {
            int64_t cn = nc - c0 < P_COLS ? nc - c0 : P_COLS;
            for (int64_t r = 0; r < rn; r += 4) {
                int64_t rr = rn - r < 4 ? rn - r : 4;
                for (int64_t c = c0; c < c0 + cn; c += 3) {
                    int64_t cc = c0 + cn - c < 3 ? c0 + cn - c : 3;
                    tiles(scratch + (size_t)r * wrs, wrs, xa + (size_t)c * ast, ast, ng,
                          y + c * ldy + r0 + r, ldy, rr, cc);
                }
            }
        }
    }
}

#define PK_TYPE(T, F)                                                                              \
    static size_t pact_size_##T(int64_t cols) { return pact_size_ns(cols, F.ns); }                 \
    static void pact_quant_##T(const float *x, uint8_t *dst, int64_t cols) {                       \
        pact_quant_fmt(&F, x, dst, cols);                                                          \
    }                                                                                              \
    static size_t scratch_##T(int64_t cols) { return scratch_ns(cols, F.ns); }                     \
    static void mmp_##T(const uint8_t *w, size_t wst, int64_t nr, const uint8_t *xa, size_t ast,   \
                        int64_t nc, int64_t cols, float *y, int64_t ldy, uint8_t *scratch) {       \
        mmp_fmt(&F, w, wst, nr, xa, ast, nc, cols, y, ldy, scratch);                               \
    }
PK_TYPE(q4_0, f_q4_0)
PK_TYPE(q4_1, f_q4_1)
PK_TYPE(q5_0, f_q5_0)
PK_TYPE(q5_1, f_q5_1)
PK_TYPE(q8_0, f_q8_0)
PK_TYPE(q2_k, f_q2_k)
PK_TYPE(q3_k, f_q3_k)
PK_TYPE(q4_k, f_q4_k)
PK_TYPE(q5_k, f_q5_k)
PK_TYPE(q6_k, f_q6_k)

#define PK_SET(TYPE, T)                                                                            \
    do {                                                                                           \
        k->q[TYPE].mmp = mmp_##T;                                                                  \
        k->q[TYPE].pact_size = pact_size_##T;                                                      \
        k->q[TYPE].pact_quant = pact_quant_##T;                                                    \
        k->q[TYPE].mmp_scratch = scratch_##T;                                                      \
    } while (0)

void ds8b__kops_fill_prompt_avx512(ds8b__kops *k) {
    PK_SET(DS8B_T_Q4_0, q4_0);
    PK_SET(DS8B_T_Q4_1, q4_1);
    PK_SET(DS8B_T_Q5_0, q5_0);
    PK_SET(DS8B_T_Q5_1, q5_1);
    PK_SET(DS8B_T_Q8_0, q8_0);
    PK_SET(DS8B_T_Q2_K, q2_k);
    PK_SET(DS8B_T_Q3_K, q3_k);
    PK_SET(DS8B_T_Q4_K, q4_k);
    PK_SET(DS8B_T_Q5_K, q5_k);
    PK_SET(DS8B_T_Q6_K, q6_k);
}
