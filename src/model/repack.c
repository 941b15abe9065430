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

#include <stdlib.h>
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

static int repack_one(ds8b__tensor *t, int *huge, ds8b__err *e) {
    if (!ds8b__repack_wanted(t)) return DS8B_OK;
    size_t rb, need;
    if (!ds8b__row_bytes(t->type, t->ne[0], &rb) || !ds8b__mul_ok(rb, (size_t)t->ne[1], &need) || need > t->nbytes)
        return ds8b__seterr(e, DS8B_E_INVALID, "tensor %s: bad shape for repacking", t->name ? t->name : "?");
    uint8_t *buf = ds8b__xmalloc(DS8B_MEM_WEIGHTS, t->nbytes, t->name ? t->name : "a repacked matrix", e);
    if (!buf) return DS8B_E_NOMEM;
    if (*huge) want_huge(buf, t->nbytes);
    ds8b__pack_matrix(t->type, t->data, t->ne[1], t->ne[0] / 32, buf);
    if (t->nbytes > need) memcpy(buf + need, (const uint8_t *)t->data + need, t->nbytes - need);
    drop_pages(t->data, t->nbytes);
    t->data = buf;
    t->owned = buf;
    t->layout = DS8B_LAYOUT_G16;
    return DS8B_OK;
}

int ds8b__model_repack(ds8b_model *m, ds8b__err *e) {
    /* saved session state must match across both layouts: fingerprint the
     * weights as stored */
    m->fingerprint = ds8b__model_fingerprint(m);
    m->fingerprint_set = true;
    int huge = 1;
    const char *env = getenv("DS8B_HUGEPAGES");
    if (env && *env == '0') huge = 0;
    ds8b__memscope *old = ds8b__memscope_enter(&m->mem);
    int rc = DS8B_OK;
    for (int64_t i = 0; i < m->hp.n_layer && !rc; i++) {
        ds8b__layer *L = &m->layers[i];
        ds8b__tensor *ts[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < 7 && !rc; k++) rc = repack_one(ts[k], &huge, e);
    }
    if (!rc && !m->output_is_embd) rc = repack_one(&m->output, &huge, e);
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
