/*
 * matmul.c -- Y = X W^T over a thread pool.
 *
 * Work is cut into chunks whose shape depends only on the matrix sizes
 * (never on the thread count) and handed out through an atomic counter;
 * every output element is computed by exactly one chunk with a fixed
 * instruction sequence, so results are bit-identical for any number of
 * threads.
 *
 * Paths:
 *   integer weights: X is quantized once into the workspace (the level's
 *     activation format), then integer block dots. For n > 1, a type whose
 *     level has no batched kernel goes through the float path below.
 *   float path, n == 1: one SIMD dot per row (F32/F16/BF16/W4A16).
 *   float path, n > 1: each chunk of rows is converted to f32 in the
 *     thread's scratch (not needed for F32), then the level's register-
 *     tiled float kernel (cblas_sgemm at the scalar level: OpenBLAS may
 *     not recognise the CPU and fall back to slow SSE kernels, as it does
 *     on the development machine).
 */
#include "kernels/kernels.h"
#include "kernels/kern_impl.h"
#include "kernels/packing.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>

enum { P_INT, P_INTP, P_DOT, P_GEMM, P_GRP };
#ifndef GEMM_RC
#define GEMM_RC 32
#endif
#ifndef GEMM_CC
#define GEMM_CC 64
#endif

typedef struct mm_job {
    const ds8b__kops *k;
    const ds8b__qkern *qk;
    int type, path;
    const uint8_t *w;
    size_t wstride;
    int64_t rows, cols, n;
    const float *x;
    float *y;
    uint8_t *act;       /* quantized activations, n rows of astride */
    size_t astride;
    float *scratch;     /* per-thread f32 row tiles (P_GEMM) */
    size_t scratch_per; /* floats per thread (P_GEMM) */
    uint8_t *kscratch;  /* per-thread kernel scratch (P_INTP) */
    size_t kscratch_per;
    uint8_t *wscr;      /* per-thread weight scratch: one packed group (P_GRP) or
                           rchunk unpacked rows (other paths on packed weights) */
    size_t wscr_per;
    bool packed;        /* w is in the row-group layout */
    int64_t nb;         /* 32-blocks per row (P_GRP) */
    int64_t rchunk, cchunk, nrc, ncc;
    _Atomic int64_t next;
} mm_job;

/* Smallest batch for the prompt kernels of types that also have batched
 * decode tiles: the prompt kernels unpack every weight row once per call,
 * which pays off from about 16-24 activation rows (measured for Q4_0 and
 * Q4_K at 4096x4096). */
enum { PROMPT_MIN_N = 16 };

static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) { openblas_set_num_threads(1); }

bool ds8b__matmul_supports(int type) {
    switch (type) {
    case DS8B_T_F32: case DS8B_T_F16: case DS8B_T_BF16: case DS8B_T_W4A16:
    case DS8B_T_Q4_0: case DS8B_T_Q4_1: case DS8B_T_Q5_0: case DS8B_T_Q5_1:
    case DS8B_T_Q8_0: case DS8B_T_Q2_K: case DS8B_T_Q3_K: case DS8B_T_Q4_K:
    case DS8B_T_Q5_K: case DS8B_T_Q6_K:
        return true;
    default: return false;
    }
}

/* Converts nr row-major rows at wr to f32 (cols per row). */
static void rows_to_f32(const mm_job *j, const uint8_t *wr, int64_t nr, float *dst) {
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *src = wr + (size_t)r * j->wstride;
        float *d = dst + (size_t)r * (size_t)j->cols;
        switch (j->type) {
        case DS8B_T_F16: j->k->f16_to_f32((const uint16_t *)src, d, j->cols); break;
        case DS8B_T_BF16: j->k->bf16_to_f32((const uint16_t *)src, d, j->cols); break;
        case DS8B_T_W4A16: j->k->w4a16_to_f32(src, d, j->cols / 32); break;
        default: ds8b__dequant_row(j->type, src, d, j->cols); break;
        }
    }
}

static void act_task(void *ctx, int ith, int nth) {
    mm_job *j = ctx;
    void (*quant)(const float *, uint8_t *, int64_t) =
        j->path == P_INTP ? j->qk->pact_quant
        : j->path == P_GRP ? (ds8b__gact_is_k(j->type) ? ds8b__gact_quant_k : j->k->gact_quant)
                           : j->qk->act_quant;
    for (int64_t i = ith; i < j->n; i += nth)
        quant(j->x + (size_t)i * (size_t)j->cols, j->act + (size_t)i * j->astride,
                         j->cols);
}

/* Rows [r0, r0+nr) of packed weights, row-major into dst. */
static void unpack_rows(const mm_job *j, int64_t r0, int64_t nr, uint8_t *dst) {
    int64_t full = j->rows / DS8B_G * DS8B_G, nb = j->cols / 32; /* 32-value units (packing.h) */
    for (int64_t r = r0; r < r0 + nr; r += DS8B_G) {
        int64_t n = r0 + nr - r < DS8B_G ? r0 + nr - r : DS8B_G;
        uint8_t *d = dst + (size_t)(r - r0) * j->wstride;
        if (r < full) ds8b__unpack_group(j->type, j->w + (size_t)r * j->wstride, nb, d, j->wstride, (int)n);
        else memcpy(d, j->w + (size_t)r * j->wstride, (size_t)n * j->wstride);
    }
}

/* Row groups [r0, r0+nr) of one matrix against nc activation rows. A group
 * that is not stored packed (row-major weights, or the tail rows of a
 * packed matrix) is packed into the thread's scratch s first, so both
 * layouts run the same kernel on the same bytes: bit-identical results. */
static void grp_rows(ds8b__mmg_fn fn, int type, const uint8_t *w, size_t wstride, int64_t rows, bool packed,
                     int64_t nb, const uint8_t *act, size_t astride, int64_t nc, float *y, uint8_t *s, int64_t r0,
                     int64_t nr) {
    int64_t full = packed ? rows / DS8B_G * DS8B_G : 0;
    for (int64_t r = r0; r < r0 + nr; r += DS8B_G) {
        int n = r0 + nr - r < DS8B_G ? (int)(r0 + nr - r) : DS8B_G;
        const uint8_t *g = w + (size_t)r * wstride;
        if (r >= full) {
            ds8b__pack_group(type, g, wstride, n, nb, s);
            g = s;
        }
        fn(g, nb, act, astride, nc, y + r, rows, n);
    }
}

/* P_GRP: one chunk of the job's matrix. */
static void grp_chunk(const mm_job *j, int ith, int64_t r0, int64_t nr, int64_t c0, int64_t nc) {
    grp_rows(j->k->mmg[j->type], j->type, j->w, j->wstride, j->rows, j->packed, j->nb,
             j->act + (size_t)c0 * j->astride, j->astride, nc, j->y + (size_t)c0 * (size_t)j->rows,
             j->wscr + (size_t)ith * j->wscr_per, r0, nr);
}

static void mm_task(void *ctx, int ith, int nth) {
    mm_job *j = ctx;
    (void)nth;
    int64_t total = j->nrc * j->ncc;
    for (;;) {
        int64_t it = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (it >= total) break;
        int64_t rc = it / j->ncc, cc = it % j->ncc;
        int64_t r0 = rc * j->rchunk, nr = j->rows - r0 < j->rchunk ? j->rows - r0 : j->rchunk;
        int64_t c0 = cc * j->cchunk, nc = j->n - c0 < j->cchunk ? j->n - c0 : j->cchunk;
        const uint8_t *wr = j->w + (size_t)r0 * j->wstride;
        if (j->path == P_GRP) {
            grp_chunk(j, ith, r0, nr, c0, nc);
            continue;
        }
        if (j->packed) {
            /* row-major kernels on packed weights: unpack the chunk's rows
             * (whole groups: chunks start at multiples of 16) */
            uint8_t *s = j->wscr + (size_t)ith * j->wscr_per;
            unpack_rows(j, r0, nr, s);
            wr = s;
        }
        switch (j->path) {
        case P_INT:
            j->qk->mm(wr, j->wstride, nr, j->act + (size_t)c0 * j->astride, j->astride, nc,
                      j->cols, j->y + (size_t)c0 * (size_t)j->rows + (size_t)r0, j->rows);
            break;
        case P_INTP:
            j->qk->mmp(wr, j->wstride, nr, j->act + (size_t)c0 * j->astride, j->astride, nc, j->cols,
                       j->y + (size_t)c0 * (size_t)j->rows + (size_t)r0, j->rows,
                       j->kscratch + (size_t)ith * j->kscratch_per);
            break;
        case P_DOT:
            for (int64_t r = 0; r < nr; r++) {
                const uint8_t *row = wr + (size_t)r * j->wstride;
                int64_t c = c0;
                /* four activation rows per weight load (same results) */
                void (*dot4)(const uint16_t *, const float *const *, int64_t, float *) =
                    j->type == DS8B_T_BF16 ? j->k->dot4_bf16 : j->type == DS8B_T_F16 ? j->k->dot4_f16 : NULL;
                for (; dot4 && c + 4 <= c0 + nc; c += 4) {
                    const float *xs[4];
                    float v4[4];
                    for (int q = 0; q < 4; q++) xs[q] = j->x + (size_t)(c + q) * (size_t)j->cols;
                    dot4((const uint16_t *)row, xs, j->cols, v4);
                    for (int q = 0; q < 4; q++) j->y[(size_t)(c + q) * (size_t)j->rows + (size_t)(r0 + r)] = v4[q];
                }
                for (; c < c0 + nc; c++) {
                    const float *xc = j->x + (size_t)c * (size_t)j->cols;
                    float v;
                    switch (j->type) {
                    case DS8B_T_F32: v = j->k->dot_f32((const float *)row, xc, j->cols); break;
                    case DS8B_T_F16: v = j->k->dot_f16((const uint16_t *)row, xc, j->cols); break;
                    case DS8B_T_BF16: v = j->k->dot_bf16((const uint16_t *)row, xc, j->cols); break;
                    default: v = j->k->dot_w4a16(row, xc, j->cols / 32); break;
                    }
                    j->y[(size_t)c * (size_t)j->rows + (size_t)(r0 + r)] = v;
                }
            }
            break;
        case P_GEMM: {
            const float *wf;
            if (j->type == DS8B_T_F32) {
                wf = (const float *)wr;
            } else {
                float *s = j->scratch + (size_t)ith * j->scratch_per;
                rows_to_f32(j, wr, nr, s);
                wf = s;
            }
            if (j->k->gemm_f32) {
                j->k->gemm_f32(wf, nr, j->x + (size_t)c0 * (size_t)j->cols, nc, j->cols,
                               j->y + (size_t)c0 * (size_t)j->rows + (size_t)r0, j->rows);
                break;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)nc, (blasint)nr,
                        (blasint)j->cols, 1.0f, j->x + (size_t)c0 * (size_t)j->cols,
                        (blasint)j->cols, wf, (blasint)j->cols, 0.0f,
                        j->y + (size_t)c0 * (size_t)j->rows + (size_t)r0, (blasint)j->rows);
            break;
        }
        }
    }
}

static int ws_reserve(ds8b__workspace *ws, size_t need, ds8b__err *e) {
    if (ws->cap >= need && ws->buf) return DS8B_OK;
    void *p = ds8b__realloc(DS8B_MEM_SCRATCH, ws->buf, need);
    if (!p)
        return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory for %zu bytes of matmul workspace",
                            need);
    ws->buf = p;
    ws->cap = need;
    return DS8B_OK;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

int ds8b__matmul(ds8b__pool *pool, const ds8b__tensor *w, const float *x, int64_t n, float *y,
                 ds8b__workspace *ws, ds8b__err *e) {
    return ds8b__matmul_ex(pool, w, x, n, y, ws, 0, e);
}

int ds8b__matmul_ex(ds8b__pool *pool, const ds8b__tensor *w, const float *x, int64_t n, float *y,
                    ds8b__workspace *ws, int flags, ds8b__err *e) {
    if (!w || !ws || n < 0 || (n > 0 && (!x || !y)))
        return ds8b__seterr(e, DS8B_E_INVALID, "matmul: bad arguments");
    const char *nm = w->name ? w->name : "(unnamed)";
    if (!ds8b__matmul_supports(w->type))
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "matmul: tensor %s has unsupported type %d",
                            nm, w->type);
    int64_t cols = w->ne[0], rows = w->n_dims >= 2 ? w->ne[1] : 1;
    size_t wstride, wbytes;
    if (cols <= 0 || rows <= 0 || cols > INT32_MAX || rows > INT32_MAX ||
        !ds8b__row_bytes(w->type, cols, &wstride) ||
        !ds8b__mul_ok(wstride, (size_t)rows, &wbytes) || wbytes > w->nbytes || !w->data)
        return ds8b__seterr(e, DS8B_E_INVALID,
                            "matmul: tensor %s has bad shape %lld x %lld for type %d", nm,
                            (long long)cols, (long long)rows, w->type);
    if (n == 0) return DS8B_OK;
    if (n > INT32_MAX) return ds8b__seterr(e, DS8B_E_INVALID, "matmul: batch too large");

    mm_job j;
    memset(&j, 0, sizeof j);
    j.k = ds8b__kops_get();
    j.type = w->type;
    j.w = w->data;
    j.wstride = wstride;
    j.rows = rows;
    j.cols = cols;
    j.n = n;
    j.x = x;
    j.y = y;
    atomic_init(&j.next, 0);
    int nth = ds8b__pool_size(pool);
    const ds8b__qkern *qk = &j.k->q[w->type];
    j.qk = qk;
    /* The scalar level is the reference: it keeps integer kernels for
     * every n. Higher levels send batches of types without a batched
     * kernel through dequantize + sgemm. */
    bool rowwise = n == 1 || (flags & DS8B_MM_ROWWISE);
    if (qk->mm && (rowwise || qk->batched ||
                   !strcmp(j.k->name, "scalar")))
        j.path = P_INT;
    else if (rowwise) j.path = P_DOT;
    else j.path = P_GEMM;
    if (!rowwise && qk->mmp && strcmp(j.k->name, "scalar") && (n >= PROMPT_MIN_N || !qk->batched))
        j.path = P_INTP;
    /* Row-group kernels only on weights repacked at load: packing row-major
     * groups on the fly measured far slower than the row-major tiles
     * (2.6 vs 41 GB/s in cache, Q4_0, one thread), so mapped weights keep
     * the row-major decode tiles (different float order: the two layouts
     * agree to rounding, not bit for bit, at the AVX2/AVX-512 levels). */
    if (rowwise && j.k->mmg[w->type] && j.k->gact_quant && w->layout == DS8B_LAYOUT_G16) j.path = P_GRP;
    j.packed = w->layout == DS8B_LAYOUT_G16 && ds8b__pack_supported(w->type);

    size_t need = 0, off_scratch = 0;
    if (j.path == P_GRP) {
        j.nb = cols / 32;
        j.astride = (ds8b__gact_row_bytes(w->type, cols) + 63) & ~(size_t)63;
        j.wscr_per = (wstride * DS8B_G + 63) & ~(size_t)63;
        size_t acts, ks;
        if (!ds8b__mul_ok(j.astride, (size_t)n, &acts) ||
            !ds8b__mul_ok(j.wscr_per, (size_t)nth, &ks) || !ds8b__add_ok(acts, ks, &need))
            return ds8b__seterr(e, DS8B_E_LIMIT, "matmul: workspace size overflows");
        off_scratch = acts;
        /* ~64 KiB of weights per chunk, whole groups */
        j.rchunk = clamp64((int64_t)(65536 / wstride), DS8B_G, 256) & ~(int64_t)(DS8B_G - 1);
        j.cchunk = n;
    } else if (j.path == P_INT) {
        j.astride = (qk->act_size(cols) + 63) & ~(size_t)63;
        if (!ds8b__mul_ok(j.astride, (size_t)n, &need))
            return ds8b__seterr(e, DS8B_E_LIMIT, "matmul: workspace size overflows");
        /* Chunks: ~64 KiB of weights per chunk for decode; for batches
         * 32 rows x 64 activation rows. */
        if (rowwise && n <= 64) {
            /* decode: every weight chunk is read once for all rows */
            j.rchunk = clamp64((int64_t)(65536 / wstride), 4, 256) & ~(int64_t)3;
            j.cchunk = n;
        } else {
            j.rchunk = 32;
            j.cchunk = 64;
        }
    } else if (j.path == P_INTP) {
        size_t acts, ks;
        j.astride = (qk->pact_size(cols) + 63) & ~(size_t)63;
        j.kscratch_per = (qk->mmp_scratch(cols) + 63) & ~(size_t)63;
        if (!ds8b__mul_ok(j.astride, (size_t)n, &acts) ||
            !ds8b__mul_ok(j.kscratch_per, (size_t)nth, &ks) || !ds8b__add_ok(acts, ks, &need))
            return ds8b__seterr(e, DS8B_E_LIMIT, "matmul: workspace size overflows");
        off_scratch = acts;
        /* the kernel unpacks each weight row once per chunk */
        j.rchunk = qk->mmp_rows_for ? qk->mmp_rows_for(cols) : 16;
        j.cchunk = qk->mmp_cols > 0 ? qk->mmp_cols : 256;
    } else if (j.path == P_DOT) {
        j.rchunk = clamp64((int64_t)(65536 / wstride), 4, 256) & ~(int64_t)3;
        j.cchunk = n < 64 ? n : 64;
    } else {
        if (j.k->gemm_f32) {
            /* own register-tiled kernel: GEMM_RC rows x GEMM_CC activation rows */
            j.rchunk = GEMM_RC;
            j.cchunk = GEMM_CC;
        } else {
            pthread_once(&g_blas_once, blas_init);
            j.rchunk = 128;
            j.cchunk = n;
        }
        if (w->type != DS8B_T_F32) {
            size_t per, all;
            if (!ds8b__mul_ok((size_t)j.rchunk, (size_t)cols, &per) ||
                !ds8b__mul_ok(per, (size_t)nth * sizeof(float), &all) ||
                !ds8b__add_ok(all, 64, &need))
                return ds8b__seterr(e, DS8B_E_LIMIT, "matmul: workspace size overflows");
            j.scratch_per = per;
        }
    }
    size_t off_wscr = 0;
    if (j.path != P_GRP && ds8b__pack_supported(w->type)) {
        /* Packed weights on a row-major path: chunks of whole groups and
         * an unpack scratch per thread. Reserved for every matrix of a
         * packable type, packed or not, so the workspace depends only on
         * (type, cols, n, threads), as ds8b_estimate assumes. */
        j.rchunk = (j.rchunk + DS8B_G - 1) / DS8B_G * DS8B_G;
        size_t per, all;
        if (!ds8b__mul_ok((size_t)j.rchunk, wstride, &per) || !ds8b__add_ok(per, 63, &per) ||
            !ds8b__mul_ok(per & ~(size_t)63, (size_t)nth, &all) || !ds8b__add_ok(need, 63, &off_wscr) ||
            !ds8b__add_ok(off_wscr & ~(size_t)63, all, &need))
            return ds8b__seterr(e, DS8B_E_LIMIT, "matmul: workspace size overflows");
        j.wscr_per = per & ~(size_t)63;
        off_wscr &= ~(size_t)63;
    }
    if (j.rchunk > rows) j.rchunk = rows;
    if (j.rchunk < 1) j.rchunk = 1;
    j.nrc = (rows + j.rchunk - 1) / j.rchunk;
    j.ncc = (n + j.cchunk - 1) / j.cchunk;
    if (need) {
        int rc = ws_reserve(ws, need, e);
        if (rc) return rc;
        if (j.path == P_INT) j.act = ws->buf;
        else if (j.path == P_GRP) {
            j.act = ws->buf;
            j.wscr = (uint8_t *)ws->buf + off_scratch;
        } else if (j.path == P_INTP) {
            j.act = ws->buf;
            j.kscratch = (uint8_t *)ws->buf + off_scratch;
        } else j.scratch = (float *)((uint8_t *)ws->buf + off_scratch);
        if (j.path != P_GRP && ds8b__pack_supported(w->type)) j.wscr = (uint8_t *)ws->buf + off_wscr;
    }
    if (j.path == P_INT || j.path == P_INTP || j.path == P_GRP) {
        if (n < 4 || nth == 1) act_task(&j, 0, 1);
        else ds8b__pool_run(pool, act_task, &j);
    }
    if (nth == 1 || j.nrc * j.ncc == 1) mm_task(&j, 0, 1);
    else ds8b__pool_run(pool, mm_task, &j);
    return DS8B_OK;
}

/* ================================================================== */
/* Several matrices on the same activations (Q/K/V, gate/up)           */
/* ================================================================== */
enum { MULTI_MAX = 4 };
typedef struct multi_job {
    const ds8b__kops *k;
    int nm;
    struct {
        const ds8b__tensor *t;
        float *y;
        size_t wstride;
        int64_t rows, rchunk, nrc, first;
        bool packed;
    } m[MULTI_MAX];
    int64_t nb, n, total;
    uint8_t *act, *wscr;
    size_t astride, wscr_per;
    _Atomic int64_t next;
} multi_job;

static void multi_task(void *ctx, int ith, int nth) {
    multi_job *j = ctx;
    (void)nth;
    for (;;) {
        int64_t it = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (it >= j->total) break;
        int i = 0;
        while (i + 1 < j->nm && it >= j->m[i + 1].first) i++;
        int64_t r0 = (it - j->m[i].first) * j->m[i].rchunk;
        int64_t nr = j->m[i].rows - r0 < j->m[i].rchunk ? j->m[i].rows - r0 : j->m[i].rchunk;
        int type = j->m[i].t->type;
        grp_rows(j->k->mmg[type], type, j->m[i].t->data, j->m[i].wstride, j->m[i].rows, j->m[i].packed, j->nb,
                 j->act, j->astride, j->n, j->m[i].y, j->wscr + (size_t)ith * j->wscr_per, r0, nr);
    }
}

int ds8b__matmul_multi(ds8b__pool *pool, const ds8b__tensor *const *w, int nw, const float *x, int64_t n,
                       float *const *y, ds8b__workspace *ws, int flags, ds8b__err *e) {
    const ds8b__kops *k = ds8b__kops_get();
    bool ok = nw >= 1 && nw <= MULTI_MAX && n >= 1 && n < 4 && (n == 1 || (flags & DS8B_MM_ROWWISE)) && x && y &&
              ws && k->gact_quant;
    int64_t cols = ok ? w[0]->ne[0] : 0;
    /* one activation format for all: all K-quants or all 32-block types */
    bool kact = ok && ds8b__gact_is_k(w[0]->type);
    for (int i = 0; ok && i < nw; i++) {
        size_t rb, wb;
        ok = w[i] && y[i] && k->mmg[w[i]->type] && w[i]->layout == DS8B_LAYOUT_G16 && w[i]->ne[0] == cols && w[i]->data && w[i]->n_dims >= 2 &&
             w[i]->ne[1] > 0 && w[i]->ne[1] <= INT32_MAX && cols > 0 && cols <= INT32_MAX &&
             ds8b__row_bytes(w[i]->type, cols, &rb) && ds8b__mul_ok(rb, (size_t)w[i]->ne[1], &wb) &&
             wb <= w[i]->nbytes && ds8b__gact_is_k(w[i]->type) == kact;
    }
    if (!ok) { /* not all on the row-group kernels: one call each */
        for (int i = 0; i < nw; i++) {
            int rc = ds8b__matmul_ex(pool, w[i], x, n, y[i], ws, flags, e);
            if (rc) return rc;
        }
        return DS8B_OK;
    }
    multi_job j;
    memset(&j, 0, sizeof j);
    j.k = k;
    j.nm = nw;
    j.n = n;
    j.nb = cols / 32;
    j.astride = (ds8b__gact_row_bytes(w[0]->type, cols) + 63) & ~(size_t)63;
    int nth = ds8b__pool_size(pool);
    size_t maxws = 0;
    for (int i = 0; i < nw; i++) {
        ds8b__row_bytes(w[i]->type, cols, &j.m[i].wstride);
        j.m[i].t = w[i];
        j.m[i].y = y[i];
        j.m[i].rows = w[i]->ne[1];
        j.m[i].packed = w[i]->layout == DS8B_LAYOUT_G16 && ds8b__pack_supported(w[i]->type);
        /* the same chunks as a single call: every output identical */
        j.m[i].rchunk = clamp64((int64_t)(65536 / j.m[i].wstride), DS8B_G, 256) & ~(int64_t)(DS8B_G - 1);
        if (j.m[i].rchunk > j.m[i].rows) j.m[i].rchunk = j.m[i].rows;
        j.m[i].nrc = (j.m[i].rows + j.m[i].rchunk - 1) / j.m[i].rchunk;
        j.m[i].first = j.total;
        j.total += j.m[i].nrc;
        if (j.m[i].wstride > maxws) maxws = j.m[i].wstride;
    }
    j.wscr_per = (maxws * DS8B_G + 63) & ~(size_t)63;
    size_t acts, ks, need;
    if (!ds8b__mul_ok(j.astride, (size_t)n, &acts) || !ds8b__mul_ok(j.wscr_per, (size_t)nth, &ks) ||
        !ds8b__add_ok(acts, ks, &need))
        return ds8b__seterr(e, DS8B_E_LIMIT, "matmul: workspace size overflows");
    int rc = ws_reserve(ws, need, e);
    if (rc) return rc;
    j.act = ws->buf;
    j.wscr = (uint8_t *)ws->buf + acts;
    void (*quant)(const float *, uint8_t *, int64_t) = kact ? ds8b__gact_quant_k : k->gact_quant;
    for (int64_t i = 0; i < n; i++) quant(x + (size_t)i * (size_t)cols, j.act + (size_t)i * j.astride, cols);
    atomic_init(&j.next, 0);
    if (nth == 1) multi_task(&j, 0, 1);
    else ds8b__pool_run(pool, multi_task, &j);
    return DS8B_OK;
}
