/*
 * kernels.h -- matrix multiplication and small vector kernels.
 *
 * The kernels come in three ISA levels (scalar reference, AVX2+FMA+F16C,
 * AVX-512 with VNNI) chosen once at run time from cpuid; DS8B_ISA=scalar|
 * avx2|avx512 in the environment forces a lower level. Every kernel is
 * deterministic: an output element is always computed by the same
 * instruction sequence, whatever the thread count or tiling.
 */
#ifndef DS8B_KERNELS_H
#define DS8B_KERNELS_H

#include "internal.h"
#include "threads/pool.h"

/* Scratch memory of matmul, owned by the caller, grown on demand with
 * ds8b__realloc(DS8B_MEM_SCRATCH). Zero-initialise; free buf with
 * ds8b__free. Not shared between concurrent calls. */
typedef struct ds8b__workspace {
    void *buf;
    size_t cap;
} ds8b__workspace;

/* Y[n][rows] = X[n][cols] * W^T, W with ne[0] = cols, ne[1] = rows, of type
 * F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K or W4A16.
 * pool may be NULL (single thread). Integer-weight types quantize X on the
 * fly (to 8 bits, per block of 32, or Q8_K for K-quants); F32/F16/BF16/
 * W4A16 keep X in float. Results are bit-identical for every thread count.
 * Returns 0 or DS8B_E_INVALID / DS8B_E_UNSUPPORTED / DS8B_E_NOMEM. */
int ds8b__matmul(ds8b__pool *pool, const ds8b__tensor *w, const float *x, int64_t n, float *y,
                 ds8b__workspace *ws, ds8b__err *e);
/* ds8b__matmul with flags. DS8B_MM_ROWWISE: compute every activation row
 * exactly as a call with n == 1 would (same kernels, bit-identical rows),
 * reading each weight chunk once for all n rows: batched decoding, where a
 * sequence's results must not depend on what else is in the batch. */
enum { DS8B_MM_ROWWISE = 1 };
int ds8b__matmul_ex(ds8b__pool *pool, const ds8b__tensor *w, const float *x, int64_t n, float *y,
                    ds8b__workspace *ws, int flags, ds8b__err *e);
/* y[i] = matmul_ex(w[i], x) for nw <= 4 matrices with the same columns
 * (Q/K/V, gate/up), bit-identical to nw separate calls. When every matrix
 * runs on the level's row-group kernels (n < 4, decode), the activations
 * are quantized once and the chunks of all matrices go through one pool
 * job, so threads do not wait at a barrier after each matrix; otherwise
 * it makes the separate calls. */
int ds8b__matmul_multi(ds8b__pool *pool, const ds8b__tensor *const *w, int nw, const float *x, int64_t n,
                       float *const *y, ds8b__workspace *ws, int flags, ds8b__err *e);
/* True if ds8b__matmul accepts weights of this type. */
bool ds8b__matmul_supports(int type);

/* Name of the level in use: "amx", "avx512-bf16", "avx512-vnni", "avx2" or
 * "scalar" (x86), "i8mm", "dotprod", "neon" or "scalar" (aarch64). */
const char *ds8b__isa_name(void);
/* Why a level the CPU has is not used (AMX without the OS's tile state or
 * the kernel's permission), or NULL. */
const char *ds8b__isa_note(void);
/* True if the level in use runs W4A16/BF16/F16 weights on bf16-rounded
 * activations (x86 avx512-bf16 and amx); false elsewhere. */
bool ds8b__isa_bf16_act(void);
/* Level in use: 0 scalar, 1 avx2, 2 avx512-vnni, 3 avx512-bf16, 4 amx (x86;
 * ARM: 0 scalar, 1 neon, 2 dotprod, 3 i8mm). */
int ds8b__isa_level(void);
/* Highest level this CPU supports (ignoring DS8B_ISA). */
int ds8b__isa_max_level(void);
/* Forces a level (clamped to what the CPU supports; -1 = back to the
 * default). Not thread-safe against running kernels: for tests/benchmarks.
 * Returns the level now in use. */
int ds8b__isa_force(int level);

/* Float helpers for the forward pass (deterministic for a given level). */
float ds8b__vec_dot_f32(const float *a, const float *b, int64_t n);
/* y[i] += a * x[i] */
void ds8b__vec_axpy(float *y, const float *x, float a, int64_t n);
/* y[i] = y[i] * s */
void ds8b__vec_scale(float *y, float s, int64_t n);
/* dot of n f16 values with n floats */
float ds8b__vec_dot_f16f32(const uint16_t *a, const float *b, int64_t n);
/* y[i] += a * h[i] (h f16) */
void ds8b__vec_axpy_f16(float *y, const uint16_t *h, float a, int64_t n);
/* f16 <-> f32 conversion of n values */
void ds8b__vec_f16_to_f32(const uint16_t *h, float *f, int64_t n);
void ds8b__vec_f32_to_f16(const float *f, uint16_t *h, int64_t n);

/* Attention over the KV cache (attn.c): one tile of n_tok tokens x n_head
 * query heads of one KV group; token t attends to positions 0..pos[t].
 * Head h of token t reads q[t*ldq + h*hd ..] and writes out[t*ldo + h*hd ..].
 * k and v point at position 0 of the layer's cached rows (stride bytes
 * apart, of DS8B_KV_* type kv_type); the group's head is values
 * off..off+hd-1 of a row. Each output is a function of its own query and
 * position only (bit-identical for any tiling and thread), for a given
 * level. n_tok <= ds8b__attn_tile_tokens(n_head); scratch holds
 * ds8b__attn_scratch_floats() floats. */
enum { DS8B_ATT_BLOCK = 32, DS8B_ATT_ROWS = 64 };
typedef struct ds8b__attn_args {
    int kv_type;
    const uint8_t *k, *v;
    size_t stride;
    int64_t off, hd;
    int64_t n_tok, n_head;
    const float *q;
    int64_t ldq;
    float *out;
    int64_t ldo;
    const int64_t *pos;
} ds8b__attn_args;
void ds8b__attention(const ds8b__attn_args *a, float *scratch);
/* Tokens one tile may hold for n_head_group query heads per KV head. */
int64_t ds8b__attn_tile_tokens(int64_t n_head_group);
/* Floats of scratch one ds8b__attention call needs; false on overflow. */
bool ds8b__attn_scratch_floats(int64_t hd, int64_t n_head_group, size_t *floats);

/* Benchmarks (bench_kernels.c), for `ds8b bench`. */
/* Times ds8b__matmul on random weights of the type (rows x cols) against
 * n random activation rows with a pool of `threads`, best of reps runs.
 * gflops: 2*rows*cols*n / time (GOPS for integer kernels); gbps: weight
 * bytes / time. Either pointer may be NULL. Returns 0 or DS8B_E_*. */
int ds8b__bench_matmul(int type, int64_t rows, int64_t cols, int64_t n, int threads, int reps,
                       double *gflops, double *gbps);
/* Same with ds8b__matmul_ex flags (DS8B_MM_ROWWISE: batched decoding, whose
 * weights are also rotated past the LLC). */
int ds8b__bench_matmul_ex(int type, int64_t rows, int64_t cols, int64_t n, int threads, int reps,
                          int flags, double *gflops, double *gbps);
/* Streaming read bandwidth in GB/s (1e9 bytes/s) with `threads` threads
 * over a 1 GiB buffer, median of several passes; 0 on failure. */
double ds8b__measure_read_bandwidth(int threads);
/* Peak int8 multiply-accumulates of a tight vpdpbusd loop, in GOPS
 * (2 ops per multiply-add), with `threads` threads; 0 without VNNI. */
double ds8b__measure_vnni_peak(int threads);
/* GFLOPS of a tight tdpbf16ps loop on that many threads (0 without the
 * amx level). */
double ds8b__measure_amx_bf16_peak(int threads);

#endif
