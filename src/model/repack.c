/*
 * repack.c -- moves a loaded model's matrices into the row-group layout
 * (src/kernels/packing.h) as private heap copies.
 *
 * Each matrix of a packable type is copied from the file mapping into a
 * DS8B_MEM_WEIGHTS block in the new layout, then its pages of the mapping
 * are dropped from this process's resident set (madvise MADV_DONTNEED on
 * the read-only file mapping: they stay in the page cache and would be
 * re-read from it if touched), so the peak RSS is the weights plus one
 * matrix, not twice the weights. The file stays plain GGUF. The token
 * embedding stays mapped (rows are looked up, not multiplied); a tied
 * output matrix therefore stays row-major too.
 */
#include "model/model.h"
#include "kernels/packing.h"
#include "session/session.h"

#include "threads/pool.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

static void drop_pages(const void *p, size_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || !p || !n) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t b = ((uintptr_t)p + n) & ~((uintptr_t)pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static void want_huge(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    const uintptr_t h = (uintptr_t)2 << 20;
    uintptr_t a = ((uintptr_t)p + h - 1) & ~(h - 1), b = ((uintptr_t)p + n) & ~(h - 1);
    if (b > a) madvise((void *)a, b - a, MADV_HUGEPAGE);
#else
    (void)p, (void)n;
#endif
}

bool ds8b__repack_wanted(const ds8b__tensor *t) {
    return t && t->data && !t->owned && t->layout == DS8B_LAYOUT_ROWS && ds8b__pack_supported(t->type) &&
           t->n_dims == 2 && t->ne[0] > 0 && t->ne[0] % 32 == 0 && t->ne[1] >= DS8B_G;
}

/* One matrix to repack: its new block, and the chunks of whole groups it
 * is cut into (work items [first, first + nchunk) of the job). */
typedef struct rp_mat {
    ds8b__tensor *t;
    uint8_t *buf;
    size_t rb, need;
    int64_t ng, gchunk, nchunk, first;
} rp_mat;

typedef struct rp_job {
    rp_mat *mats;
    int nm;
    int64_t total;          /* work items */
    _Atomic int64_t next;   /* next work item */
    _Atomic int64_t done;   /* bytes packed so far (progress) */
    _Atomic int cancel;
    int64_t bytes;          /* bytes to pack in all */
    ds8b_progress_fn progress;
    void *progress_user;
    double t_last;          /* caller thread only */
} rp_job;

/* about 1 MiB of weights per work item (tests make it smaller) */
size_t ds8b__repack_chunk_bytes = (size_t)1 << 20;

/* Work item: groups [g0, g0 + gn) of one matrix, packed from the mapping
 * into the new block (destination written in address order), then those
 * file pages dropped from the resident set. The last item of a matrix
 * also copies its row-major tail rows and drops the rest of its pages. */
static void rp_item(rp_job *j, int64_t it) {
    int i = 0;
    while (i + 1 < j->nm && it >= j->mats[i + 1].first) i++;
    rp_mat *m = &j->mats[i];
    ds8b__tensor *t = m->t;
    int64_t c = it - m->first, g0 = c * m->gchunk;
    int64_t gn = m->ng - g0 < m->gchunk ? m->ng - g0 : m->gchunk;
    size_t gbytes = m->rb * DS8B_G, off = (size_t)g0 * gbytes, len = (size_t)gn * gbytes;
    const uint8_t *src = (const uint8_t *)t->data;
    int64_t nb = t->ne[0] / 32;
    for (int64_t g = 0; g < gn; g++)
        ds8b__pack_group(t->type, src + off + (size_t)g * gbytes, m->rb, DS8B_G, nb, m->buf + off + (size_t)g * gbytes);
    if (c == m->nchunk - 1) {
        size_t done = (size_t)m->ng * gbytes;
        if (t->nbytes > done) memcpy(m->buf + done, src + done, t->nbytes - done);
        len = t->nbytes - off;
        drop_pages(src, t->nbytes);
    } else {
        drop_pages(src + off, len);
    }
    atomic_fetch_add_explicit(&j->done, (int64_t)len, memory_order_relaxed);
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void rp_task(void *ctx, int ith, int nth) {
    rp_job *j = ctx;
    (void)nth;
    for (;;) {
        if (atomic_load_explicit(&j->cancel, memory_order_relaxed)) break;
        int64_t it = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (it >= j->total) break;
        rp_item(j, it);
        /* the caller's thread (ith 0) reports progress, about 10 times a
         * second at most */
        if (ith == 0 && j->progress) {
            double now = mono_s();
            if (now - j->t_last >= 0.1) {
                j->t_last = now;
                double f = j->bytes > 0 ? (double)atomic_load_explicit(&j->done, memory_order_relaxed) / (double)j->bytes : 1.0;
                if (j->progress(j->progress_user, f > 1.0 ? 1.0 : f, "repacking weights"))
                    atomic_store_explicit(&j->cancel, 1, memory_order_relaxed);
            }
        }
    }
}

int ds8b__model_repack(ds8b_model *m, ds8b__err *e) { return ds8b__model_repack_ex(m, 1, NULL, NULL, e); }

int ds8b__model_repack_ex(ds8b_model *m, int n_threads, ds8b_progress_fn progress, void *user, ds8b__err *e) {
    /* saved session state must match across both layouts: fingerprint the
     * weights as stored */
    m->fingerprint = ds8b__model_fingerprint(m);
    m->fingerprint_set = true;
    /* Huge pages: off unless DS8B_HUGEPAGES=1. Measured on the development
     * VM (docs/performance.md), the first touch of fresh memory, which the
     * hypervisor backs on demand, ran at 0.3-0.5 GB/s in 2 MiB pages and
     * 1.3-2.1 GB/s in 4 KiB pages (two threads), and decode did not gain. */
    int huge = 0;
    const char *env = getenv("DS8B_HUGEPAGES");
    if (env && *env == '1') huge = 1;
    int64_t cnt = 0;
    for (int64_t i = 0; i < m->hp.n_layer; i++) cnt += 7;
    cnt += 1;
    size_t arr;
    if (!ds8b__mul_ok((size_t)cnt, sizeof(rp_mat), &arr))
        return ds8b__seterr(e, DS8B_E_LIMIT, "too many matrices to repack");
    ds8b__memscope *old = ds8b__memscope_enter(&m->mem);
    rp_mat *mats = ds8b__xmalloc(DS8B_MEM_OTHER, arr, "the repacking table", e);
    int rc = mats ? DS8B_OK : DS8B_E_NOMEM;
    rp_job j;
    memset(&j, 0, sizeof j);
    j.mats = mats;
    for (int64_t i = 0; i <= m->hp.n_layer && !rc; i++) {
        ds8b__tensor *ts[7];
        int nt = 0;
        if (i < m->hp.n_layer) {
            ds8b__layer *L = &m->layers[i];
            ds8b__tensor *lt[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (int k = 0; k < 7; k++) ts[nt++] = lt[k];
        } else if (!m->output_is_embd) {
            ts[nt++] = &m->output;
        }
        for (int k = 0; k < nt && !rc; k++) {
            ds8b__tensor *t = ts[k];
            if (!ds8b__repack_wanted(t)) continue;
            rp_mat *r = &mats[j.nm];
            memset(r, 0, sizeof *r);
            if (!ds8b__row_bytes(t->type, t->ne[0], &r->rb) || !ds8b__mul_ok(r->rb, (size_t)t->ne[1], &r->need) ||
                r->need > t->nbytes) {
                rc = ds8b__seterr(e, DS8B_E_INVALID, "tensor %s: bad shape for repacking", t->name ? t->name : "?");
                break;
            }
            /* allocated, not yet touched: the pages are faulted in by the
             * packing threads, in parallel */
            r->buf = ds8b__xmalloc(DS8B_MEM_WEIGHTS, t->nbytes, t->name ? t->name : "a repacked matrix", e);
            if (!r->buf) {
                rc = DS8B_E_NOMEM;
                break;
            }
            if (huge) want_huge(r->buf, t->nbytes);
            r->t = t;
            r->ng = t->ne[1] / DS8B_G;
            r->gchunk = (int64_t)(ds8b__repack_chunk_bytes / (r->rb * DS8B_G));
            if (r->gchunk < 1) r->gchunk = 1;
            r->nchunk = (r->ng + r->gchunk - 1) / r->gchunk;
            r->first = j.total;
            j.total += r->nchunk;
            j.bytes += (int64_t)t->nbytes;
            j.nm++;
        }
    }
    ds8b__pool *pool = NULL;
    if (!rc && j.nm > 0) {
        if (n_threads <= 0) {
            long nc = sysconf(_SC_NPROCESSORS_ONLN);
            n_threads = nc < 1 ? 1 : nc > 64 ? 64 : (int)nc;
        }
        if (n_threads > 64) n_threads = 64;
        if (n_threads > 1 && ds8b__pool_create(n_threads, &pool, e) != DS8B_OK) pool = NULL; /* one thread then */
        atomic_init(&j.next, 0);
        atomic_init(&j.done, 0);
        atomic_init(&j.cancel, 0);
        j.progress = progress;
        j.progress_user = user;
        j.t_last = mono_s();
        if (pool) ds8b__pool_run(pool, rp_task, &j);
        else rp_task(&j, 0, 1);
        ds8b__pool_free(pool);
        if (atomic_load(&j.cancel)) rc = ds8b__seterr(e, DS8B_E_CANCELLED, "cancelled by the progress callback while repacking weights");
        else if (progress && progress(user, 1.0, "repacking weights"))
            rc = ds8b__seterr(e, DS8B_E_CANCELLED, "cancelled by the progress callback while repacking weights");
    }
    for (int i = 0; mats && i < j.nm; i++) {
        rp_mat *r = &mats[i];
        if (rc) {
            ds8b__free(r->buf);
            continue;
        }
        r->t->data = r->buf;
        r->t->owned = r->buf;
        r->t->layout = DS8B_LAYOUT_G16;
    }
    ds8b__free(mats);
    ds8b__memscope_leave(old);
    return rc;
}

int64_t ds8b__repack_bytes(const ds8b__tensor *t) { return ds8b__repack_wanted(t) ? (int64_t)t->nbytes : 0; }

int ds8b__tensor_rowmajor(const ds8b__tensor *t, ds8b__tensor *out, ds8b__err *e) {
    *out = *t;
    out->owned = NULL;
    if (t->layout != DS8B_LAYOUT_G16) return DS8B_OK;
    uint8_t *buf = ds8b__xmalloc(DS8B_MEM_SCRATCH, t->nbytes, "an unpacked matrix", e);
    if (!buf) return DS8B_E_NOMEM;
    size_t rb;
    ds8b__row_bytes(t->type, t->ne[0], &rb);
    int64_t rows = t->ne[1], ng = rows / DS8B_G;
    const uint8_t *src = t->data;
    for (int64_t g = 0; g < ng; g++)
        ds8b__unpack_group(t->type, src + (size_t)g * DS8B_G * rb, t->ne[0] / 32, buf + (size_t)g * DS8B_G * rb, rb,
                           DS8B_G);
    size_t done = (size_t)ng * DS8B_G * rb;
    memcpy(buf + done, src + done, t->nbytes - done);
    out->data = buf;
    out->owned = buf;
    out->layout = DS8B_LAYOUT_ROWS;
    return DS8B_OK;
}
