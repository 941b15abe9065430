/*
 * bench_kernels.c -- timing helpers for `ds8b bench`: matmul throughput on
 * random weights, streaming read bandwidth, and the VNNI peak.
 */
#include "kernels/kernels.h"
#include "kernels/kern_impl.h"
#include "quant/quant.h"

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#else
/* The few SSE2 names the bandwidth probe uses, over GCC vector types. */
typedef unsigned long long ds8b__v2u64 __attribute__((vector_size(16), aligned(16)));
#define __m128i ds8b__v2u64
#define _mm_setzero_si128() ((ds8b__v2u64){0, 0})
#define _mm_add_epi64(a, b) ((a) + (b))
#define _mm_load_si128(p) (*(p))
#define _mm_prefetch(p, h) __builtin_prefetch((p), 0, 3)
#define _mm_cvtsi128_si64(a) ((long long)(a)[0])
#endif
#include <stdatomic.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t xs_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random block bytes with small finite f16/f32 scales at the places each
 * format keeps them. */
static void fill_block(int type, uint8_t *b, int bytes, uint64_t *s) {
    for (int i = 0; i < bytes; i += 8) {
        uint64_t v = xs_next(s);
        for (int k = 0; k < 8 && i + k < bytes; k++) b[i + k] = (uint8_t)(v >> (8 * k));
    }
    uint16_t h = ds8b__f32_to_f16(0.001f + (float)(xs_next(s) % 1000) * 1e-5f);
    int off[2] = {-1, -1};
    switch (type) {
    case DS8B_T_Q4_0: case DS8B_T_Q5_0: case DS8B_T_Q8_0: off[0] = 0; break;
    case DS8B_T_Q4_1: case DS8B_T_Q5_1: case DS8B_T_W4A16: case DS8B_T_Q4_K: case DS8B_T_Q5_K:
        off[0] = 0; off[1] = 2; break;
    case DS8B_T_Q2_K: off[0] = 80; off[1] = 82; break;
    case DS8B_T_Q3_K: off[0] = 108; break;
    case DS8B_T_Q6_K: off[0] = 208; break;
    }
    for (int k = 0; k < 2; k++)
        if (off[k] >= 0) memcpy(b + off[k], &h, 2);
}

int ds8b__bench_matmul(int type, int64_t rows, int64_t cols, int64_t n, int threads, int reps,
                       double *gflops, double *gbps) {
    return ds8b__bench_matmul_ex(type, rows, cols, n, threads, reps, 0, gflops, gbps);
}

int ds8b__bench_matmul_ex(int type, int64_t rows, int64_t cols, int64_t n, int threads, int reps,
                          int flags, double *gflops, double *gbps) {
    const ds8b__type_traits *t = ds8b__type_info(type);
    size_t rb, wbytes, xn, yn;
    if (!t || !ds8b__matmul_supports(type) || rows <= 0 || cols <= 0 || n <= 0 || reps <= 0 ||
        !ds8b__row_bytes(type, cols, &rb) || !ds8b__mul_ok(rb, (size_t)rows, &wbytes) ||
        !ds8b__mul_ok((size_t)n, (size_t)cols * 4, &xn) || !ds8b__mul_ok((size_t)n, (size_t)rows * 4, &yn))
        return DS8B_E_INVALID;
    /* Decode reads weights once per token from DRAM; with small n, rotate
     * over enough copies (~640 MB) that they never stay in the LLC. */
    size_t copies = 1;
    if (n <= 4 || (flags & DS8B_MM_ROWWISE)) {
        copies = ((size_t)640 << 20) / wbytes + 1;
        if (copies > 64) copies = 64;
    }
    size_t total;
    if (!ds8b__mul_ok(wbytes, copies, &total)) return DS8B_E_INVALID;
    uint8_t *w = ds8b__malloc(DS8B_MEM_OTHER, total);
    float *x = ds8b__malloc(DS8B_MEM_OTHER, xn), *y = ds8b__malloc(DS8B_MEM_OTHER, yn);
    ds8b__pool *pool = NULL;
    int rc = DS8B_OK;
    if (!w || !x || !y) rc = DS8B_E_NOMEM;
    if (!rc) rc = ds8b__pool_create(threads, &pool, NULL);
    ds8b__workspace ws = {0};
    if (!rc) {
        uint64_t s = 0x1234567887654321ull;
        if (t->block_elems == 1) {
            for (size_t i = 0; i < wbytes / (size_t)t->block_bytes; i++) {
                float v = (float)((int64_t)(xs_next(&s) % 2001) - 1000) * 1e-4f;
                if (type == DS8B_T_F32) memcpy(w + 4 * i, &v, 4);
                else {
                    uint16_t h = type == DS8B_T_F16 ? ds8b__f32_to_f16(v) : ds8b__f32_to_bf16(v);
                    memcpy(w + 2 * i, &h, 2);
                }
            }
        } else {
            for (size_t i = 0; i < wbytes; i += (size_t)t->block_bytes)
                fill_block(type, w + i, t->block_bytes, &s);
        }
        for (size_t c = 1; c < copies; c++) memcpy(w + c * wbytes, w, wbytes);
        for (size_t i = 0; i < xn / 4; i++) x[i] = (float)((int64_t)(xs_next(&s) % 2001) - 1000) * 1e-3f;
        ds8b__tensor tw;
        memset(&tw, 0, sizeof tw);
        tw.type = type;
        tw.n_dims = 2;
        tw.ne[0] = cols;
        tw.ne[1] = rows;
        tw.ne[2] = tw.ne[3] = 1;
        tw.data = w;
        tw.nbytes = wbytes;
        double best = 1e30;
        for (int r = 0; r <= reps && !rc; r++) { /* first run warms up */
            tw.data = w + (size_t)r % copies * wbytes;
            double t0 = now_s();
            rc = ds8b__matmul_ex(pool, &tw, x, n, y, &ws, flags, NULL);
            double dt = now_s() - t0;
            if (r > 0 && dt < best) best = dt;
        }
        if (!rc) {
            if (gflops) *gflops = 2.0 * (double)rows * (double)cols * (double)n / best * 1e-9;
            if (gbps) *gbps = (double)wbytes / best * 1e-9;
        }
    }
    ds8b__free(ws.buf);
    ds8b__pool_free(pool);
    ds8b__free(w);
    ds8b__free(x);
    ds8b__free(y);
    return rc;
}

/* ---- read bandwidth ---- */
typedef struct bw_job {
    const uint8_t *buf;
    size_t bytes;
    int mode; /* 0 write (first touch), 1 plain sequential read, 2 four streams with prefetch */
    _Atomic uint64_t sink;
} bw_job;

#define BW_PF 8192 /* the decode tiles' prefetch distance (x86/avx512_rows.c) */

static void bw_task(void *ctx, int ith, int nth) {
    bw_job *j = ctx;
    size_t per = (j->bytes / (size_t)nth) & ~(size_t)255;
    const uint8_t *p = j->buf + per * (size_t)ith;
    if (j->mode == 0) {
        memset((void *)p, ith + 1, per);
        return;
    }
    __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
    if (j->mode == 1) {
        for (size_t i = 0; i < per; i += 64) {
            a0 = _mm_add_epi64(a0, _mm_load_si128((const __m128i *)(p + i)));
            a1 = _mm_add_epi64(a1, _mm_load_si128((const __m128i *)(p + i + 16)));
            a2 = _mm_add_epi64(a2, _mm_load_si128((const __m128i *)(p + i + 32)));
            a3 = _mm_add_epi64(a3, _mm_load_si128((const __m128i *)(p + i + 48)));
        }
    } else {
        /* the access pattern of a 4-row decode tile: four rows read side by
         * side, each prefetched ahead */
        size_t q = (per / 4) & ~(size_t)63;
        const uint8_t *r0 = p, *r1 = p + q, *r2 = p + 2 * q, *r3 = p + 3 * q;
        for (size_t i = 0; i < q; i += 64) {
            if (i + BW_PF < q) {
                _mm_prefetch((const char *)(r0 + i + BW_PF), _MM_HINT_T0);
                _mm_prefetch((const char *)(r1 + i + BW_PF), _MM_HINT_T0);
                _mm_prefetch((const char *)(r2 + i + BW_PF), _MM_HINT_T0);
                _mm_prefetch((const char *)(r3 + i + BW_PF), _MM_HINT_T0);
            }
            for (int k = 0; k < 64; k += 16) {
                a0 = _mm_add_epi64(a0, _mm_load_si128((const __m128i *)(r0 + i + k)));
                a1 = _mm_add_epi64(a1, _mm_load_si128((const __m128i *)(r1 + i + k)));
                a2 = _mm_add_epi64(a2, _mm_load_si128((const __m128i *)(r2 + i + k)));
                a3 = _mm_add_epi64(a3, _mm_load_si128((const __m128i *)(r3 + i + k)));
            }
        }
    }
    a0 = _mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3));
    atomic_fetch_add(&j->sink, (uint64_t)_mm_cvtsi128_si64(a0));
}

static double median7(double *t) {
    for (int a = 0; a < 7; a++)
        for (int b = a + 1; b < 7; b++)
            if (t[b] < t[a]) { double v = t[a]; t[a] = t[b]; t[b] = v; }
    return t[3];
}

/* The read bandwidth a decode step can get: the better median of a plain
 * sequential read and of the decode tiles' pattern (four rows side by
 * side, software prefetch), 7 runs each over 1 GiB. */
double ds8b__measure_read_bandwidth(int threads) {
    const size_t bytes = (size_t)1 << 30;
    bw_job j;
    memset(&j, 0, sizeof j);
    j.bytes = bytes;
    uint8_t *buf = ds8b__malloc(DS8B_MEM_OTHER, bytes);
    ds8b__pool *pool = NULL;
    if (!buf || ds8b__pool_create(threads, &pool, NULL)) {
        ds8b__free(buf);
        return 0;
    }
    j.buf = buf;
    j.mode = 0; /* touch every page from the thread that will read it */
    ds8b__pool_run(pool, bw_task, &j);
    int nt = ds8b__pool_size(pool);
    size_t per = (bytes / (size_t)nt) & ~(size_t)255;
    double best = 0;
    for (int mode = 1; mode <= 2; mode++) {
        j.mode = mode;
        double t[7];
        for (int k = 0; k < 7; k++) {
            double t0 = now_s();
            ds8b__pool_run(pool, bw_task, &j);
            t[k] = now_s() - t0;
        }
        size_t read = mode == 1 ? per : ((per / 4) & ~(size_t)63) * 4;
        double gbs = (double)(read * (size_t)nt) / median7(t) * 1e-9;
        if (gbs > best) best = gbs;
    }
    ds8b__pool_free(pool);
    ds8b__free(buf);
    return best;
}

/* ---- VNNI peak ---- */
#if defined(__x86_64__)
static void vnni_task(void *ctx, int ith, int nth) {
    _Atomic int64_t *sink = ctx;
    atomic_fetch_add(sink, ds8b__avx512_vnni_loop(20000000));
}

double ds8b__measure_vnni_peak(int threads) {
    if (ds8b__isa_max_level() < 2) return 0;
    ds8b__pool *pool = NULL;
    if (ds8b__pool_create(threads, &pool, NULL)) return 0;
    _Atomic int64_t sink = 0;
    double best = 1e30;
    for (int k = 0; k < 3; k++) {
        double t0 = now_s();
        ds8b__pool_run(pool, vnni_task, (void *)&sink);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    int nt = ds8b__pool_size(pool);
    ds8b__pool_free(pool);
    /* 12 vpdpbusd x 64 multiply-adds x 2 ops per iteration */
    return 20000000.0 * 12 * 64 * 2 * nt / best * 1e-9;
}

/* ---- AMX-BF16 peak ---- */
static void amx_task(void *ctx, int ith, int nth) {
    _Atomic int64_t *sink = ctx;
    atomic_fetch_add(sink, ds8b__amx_bf16_loop(2000000));
}

double ds8b__measure_amx_bf16_peak(int threads) {
    if (ds8b__isa_max_level() < 4) return 0; /* level 4 = amx */
    ds8b__pool *pool = NULL;
    if (ds8b__pool_create(threads, &pool, NULL)) return 0;
    _Atomic int64_t sink = 0;
    double best = 1e30;
    for (int k = 0; k < 3; k++) {
        double t0 = now_s();
        ds8b__pool_run(pool, amx_task, (void *)&sink);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    int nt = ds8b__pool_size(pool);
    ds8b__pool_free(pool);
    /* 4 tdpbf16ps x 16 x 16 x 32 multiply-adds x 2 ops per iteration */
    return 2000000.0 * 4 * 16 * 16 * 32 * 2 * nt / best * 1e-9;
}
#else
/* No VNNI or AMX off x86 (the AArch64 levels are neon/dotprod/i8mm). */
double ds8b__measure_vnni_peak(int threads) {
    (void)threads;
    return 0;
}
double ds8b__measure_amx_bf16_peak(int threads) {
    (void)threads;
    return 0;
}
#endif
