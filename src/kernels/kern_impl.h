/*
 * kern_impl.h -- the per-ISA function table behind kernels.h.
 *
 * Each level fills a ds8b__kops. Integer-weight types have an entry in q[]
 * with the level's own activation format: act_size(cols) bytes per
 * activation row, written by act_quant, consumed by mm. A level that has
 * no kernel of its own for a type inherits the lower level's whole entry
 * (kernel and activation format together).
 *
 * Every mm kernel must compute each output element with an instruction
 * sequence that depends only on (cols, the element's data), never on
 * nrows/ncols or the element's position in a tile: that is what makes
 * matmul bit-identical for any thread count.
 */
#ifndef DS8B_KERN_IMPL_H
#define DS8B_KERN_IMPL_H

#include "internal.h"
#include "quant/quant.h"

/* y[c*ldy + r] = dot(row r of w, activation row c), r < nrows, c < ncols. */
typedef void (*ds8b__mm_fn)(const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa,
                            size_t astride, int64_t ncols, int64_t cols, float *y, int64_t ldy);

/* Prompt kernel: like ds8b__mm_fn, on activations in the kernel's own
 * prompt format, with `scratch` (mmp_scratch(cols) bytes, 64-aligned) of
 * its own per calling thread. */
typedef void (*ds8b__mmp_fn)(const uint8_t *w, size_t wstride, int64_t nrows, const uint8_t *xa,
                             size_t astride, int64_t ncols, int64_t cols, float *y, int64_t ldy,
                             uint8_t *scratch);

/* Row-group kernel (packing.h): one group of 16 weight rows (nb units of
 * 32 values per row, also for the K-quants) against ncols activation rows
 * in the type's group format (ds8b__act32, or ds8b__blk_q8_k for the
 * K-quants: ds8b__gact_is_k); writes y[c*ldy + r] for r < nr. */
typedef void (*ds8b__mmg_fn)(const uint8_t *g, int64_t nb, const uint8_t *xa, size_t astride,
                             int64_t ncols, float *y, int64_t ldy, int nr);

typedef struct ds8b__qkern {
    ds8b__mm_fn mm;                          /* NULL: no integer kernel */
    size_t (*act_size)(int64_t cols);        /* bytes of one activation row */
    void (*act_quant)(const float *x, uint8_t *dst, int64_t cols);
    bool batched;                            /* efficient for n > 1 */
    /* Optional prompt path, used for n > 1 outside DS8B_MM_ROWWISE: the
     * same integer products in a layout that amortises the float scale
     * work over many blocks (so results differ from mm's in the last
     * float bits, never across thread counts). */
    ds8b__mmp_fn mmp;
    size_t (*pact_size)(int64_t cols);
    void (*pact_quant)(const float *x, uint8_t *dst, int64_t cols);
    size_t (*mmp_scratch)(int64_t cols);
    /* Optional: weight rows per mmp call for rows of `cols` values (a
     * multiple of 16; NULL: 16), and activation rows per call (0: 256). */
    int64_t (*mmp_rows_for)(int64_t cols);
    int64_t mmp_cols;
} ds8b__qkern;

/* The attention primitives (attn.c drives them; kernels.h's
 * ds8b__attention). B = DS8B_ATT_BLOCK positions per block; ld = head_dim
 * rounded up to 16; row pointers are 64-byte aligned.
 *  load:    dst[c*ld + i] = value off+i of cached row c (src + c*stride)
 *           in f32, i < hd, c < nc; zeroes i in hd..ld-1 and the rows
 *           nc..round4(nc)-1.
 *  scores:  S[r*lds + c] = dot(Q + r*ld, K + c*ld) over ld values, for
 *           r < nr and c < nc (both multiples of 4); each score's
 *           summation order is fixed by ld alone.
 *  softmax: one query row's block: s holds B scores (base 2), the first
 *           nv valid (1 <= nv <= B); sets m = max(m, max s), returns
 *           alpha = 2^(m_old - m_new), l = l*alpha + sum p, writes
 *           p = 2^(s - m_new) into s (0 for lanes nv..B-1).
 *  pv:      A[r*ld + i] = A[r*ld + i]*alpha[r] + sum over c < nc (in
 *           order) of P[r*lds + c] * V[c*ld + i]; nr a multiple of 4. */
typedef struct ds8b__attn_ops {
    void (*load)(int type, const uint8_t *src, size_t stride, int64_t off, int64_t hd, int64_t nc, float *dst,
                 int64_t ld);
    void (*scores)(const float *Q, const float *K, int64_t ld, int64_t nr, int64_t nc, float *S, int64_t lds);
    float (*softmax)(float *s, int nv, float *m, float *l);
    void (*pv)(float *A, const float *alpha, const float *P, int64_t lds, const float *V, int64_t ld, int64_t nr,
               int64_t nc);
} ds8b__attn_ops;
void ds8b__attn_fill_scalar(ds8b__attn_ops *o);
void ds8b__attn_fill_avx2(ds8b__attn_ops *o);   /* x86/avx2_attn.c */
void ds8b__attn_fill_avx512(ds8b__attn_ops *o); /* x86/avx512_attn.c */
/* The scalar load (the SIMD levels fall back to it for head segments
 * that do not start on a 32-value block of a Q8_0 row). */
void ds8b__attn_load_ref(int type, const uint8_t *src, size_t stride, int64_t off, int64_t hd, int64_t nc,
                         float *dst, int64_t ld);

typedef struct ds8b__kops {
    const char *name;
    ds8b__attn_ops attn;
    ds8b__qkern q[DS8B_T__COUNT];
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    void (*axpy)(float *y, const float *x, float a, int64_t n);
    void (*scale)(float *y, float s, int64_t n);
    float (*dot_f16)(const uint16_t *a, const float *b, int64_t n);
    float (*dot_bf16)(const uint16_t *a, const float *b, int64_t n);
    /* out[r] = dot_f16 / dot_bf16 (a, b[r], n) for r = 0..3, each bit for
     * bit what the one-row function returns (the same instructions per
     * output; the weight row is loaded and converted once for the four).
     * NULL: one call per row. Batched decoding (DS8B_MM_ROWWISE). */
    void (*dot4_f16)(const uint16_t *a, const float *const *b, int64_t n, float *out);
    void (*dot4_bf16)(const uint16_t *a, const float *const *b, int64_t n, float *out);
    float (*dot_w4a16)(const void *w, const float *x, int64_t nb);
    void (*axpy_f16)(float *y, const uint16_t *h, float a, int64_t n);
    void (*f16_to_f32)(const uint16_t *h, float *f, int64_t n);
    void (*f32_to_f16)(const float *f, uint16_t *h, int64_t n);
    void (*bf16_to_f32)(const uint16_t *h, float *f, int64_t n);
    void (*w4a16_to_f32)(const void *w, float *f, int64_t nb);
    /* y[c*ldy + r] = dot(w + r*cols, x + c*cols, cols), r < nr, c < nc:
     * register-tiled float GEMM (NULL at the scalar level: cblas_sgemm). */
    void (*gemm_f32)(const float *w, int64_t nr, const float *x, int64_t nc, int64_t cols,
                     float *y, int64_t ldy);
    /* Decode kernels on the row-group layout (NULL: none at this level;
     * the scalar level has none and stays the row-major reference), and
     * the ds8b__act32 quantizer they use (the same integers at every
     * level). */
    ds8b__mmg_fn mmg[DS8B_T__COUNT];
    void (*gact_quant)(const float *x, uint8_t *dst, int64_t cols);
} ds8b__kops;

/* Prefetch distance of the row-group decode kernels (bytes; dispatch.c
 * picks it per CPU vendor at init, DS8B_GRP_PF overrides). */
extern size_t ds8b__grp_pf;

void ds8b__kops_fill_scalar(ds8b__kops *k);
void ds8b__kops_fill_avx2(ds8b__kops *k);   /* overrides entries of a filled table */
void ds8b__kops_fill_avx512(ds8b__kops *k);
/* Decode kernels (mm, act format, batched) of Q4_1, Q5_0, Q5_1, Q2_K, Q3_K,
 * Q5_K (x86/avx512_rows_other.c, x86/avx2_rows_other.c); leave the mmp fields alone. */
void ds8b__kops_fill_more_avx512(ds8b__kops *k);
void ds8b__kops_fill_more_avx2(ds8b__kops *k);
/* Row-group decode kernels (x86/avx2_decode.c, x86/avx512_decode.c). */
void ds8b__kops_fill_decode_avx2(ds8b__kops *k);
void ds8b__kops_fill_decode_avx512(ds8b__kops *k);
/* ... of the K-quants (x86/avx2_decode_k.c, x86/avx512_decode_k.c), called by the two above. */
void ds8b__kops_fill_decode_k_avx2(ds8b__kops *k);
void ds8b__kops_fill_decode_k_avx512(ds8b__kops *k);
/* ds8b__act32 rows with the scalar quantizer (packing.c). */
void ds8b__gact_quant_scalar(const float *x, uint8_t *dst, int64_t cols);
/* Sets the prompt kernels (mmp) of every integer type (x86/avx512_prompt.c). */
void ds8b__kops_fill_prompt_avx512(ds8b__kops *k);
/* The amx level (x86/amx_bf16.c): AMX-BF16 prompt kernels of every
 * integer type; ds8b__amx_bf16_loop runs iters x 4 tdpbf16ps (the peak
 * probe). AMX CPUs whose OS granted tile data only. */
void ds8b__kops_fill_amx(ds8b__kops *k);
int64_t ds8b__amx_bf16_loop(int64_t iters);
/* Runs iters iterations of a tight loop of 12 independent 512-bit
 * vpdpbusd; returns a value to keep the work alive. AVX-512 VNNI only. */
int64_t ds8b__avx512_vnni_loop(int64_t iters);
/* ds8b__quant_i8_32 in AVX-512, bit-identical to it (for act formats;
 * tested against it). AVX-512 CPUs only. */
float ds8b__avx512_quant_i8_32(const float *x, int8_t *q);
#if defined(__aarch64__)
/* ARM (src/kernels/arm/): the highest level of this CPU from the hwcaps
 * (0 scalar, 1 neon, 2 dotprod, 3 i8mm); fills tab[1..max] (tab[0] is
 * the scalar table, each level starts as a copy of the one below); the
 * level DS8B_ISA=scalar|neon|dotprod|i8mm caps max to. */
int ds8b__arm_cpu_level(void);
void ds8b__arm_fill_levels(ds8b__kops *tab, int max_level);
int ds8b__arm_env_cap(const char *env, int max_level);
void ds8b__kops_fill_neon(ds8b__kops *k);
void ds8b__kops_fill_dotprod(ds8b__kops *k);
void ds8b__kops_fill_i8mm(ds8b__kops *k);
#endif
/* Level avx512-bf16 (x86/avx512bf16_w4a16.c): W4A16 and BF16 weights on
 * vdpbf16ps with bf16-rounded activations; overrides q[W4A16], q[BF16].
 * AVX512-BF16 CPUs only. The helpers expose its activation rounding and
 * W4A16 expansion to the tests. */
void ds8b__kops_fill_avx512bf16(ds8b__kops *k);
void ds8b__avx512bf16_w4a16_row(const void *w, uint16_t *dst, int64_t nb);
void ds8b__avx512bf16_w4a16_act(const float *x, uint16_t *dst, int64_t cols);
void ds8b__avx512bf16_act(const float *x, uint16_t *dst, int64_t cols);
/* Plain-C reference of that level, bit for bit (bf16_ref.c): bf16 round
 * to nearest even, denormals to zero; the element stored at position p of
 * a W4A16 32-chunk; a W4A16 activation row (cols/32 chunks) and weight row
 * (nb blocks) in that order; a bf16 activation row padded with zeros to
 * whole chunks; the dot of nchunk chunks as vdpbf16ps + the fixed tree. */
uint16_t ds8b__bf16_rne_daz(float f);
int ds8b__w4a16_pos(int p);
void ds8b__w4a16_bf16_act_ref(const float *x, uint16_t *dst, int64_t cols);
void ds8b__w4a16_bf16_wrow_ref(const void *w, uint16_t *dst, int64_t nb);
void ds8b__bf16_act_ref(const float *x, uint16_t *dst, int64_t cols);
float ds8b__bf16_dot_ref(const uint16_t *w, const uint16_t *x, int64_t nchunk);
/* Table of the level in use. */
const ds8b__kops *ds8b__kops_get(void);

/* Scalar activation format for the 32-blocks (also used by levels that
 * inherit scalar kernels): one of these per 32 values. */
typedef struct ds8b__act32 {
    float d;       /* x ~= d * qs */
    int32_t sum;   /* sum of qs */
    int8_t qs[32];
} ds8b__act32;
_Static_assert(sizeof(ds8b__act32) == 40, "act32");

#endif
