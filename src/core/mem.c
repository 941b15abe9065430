/*
 * mem.c -- memory accounting: the one chokepoint for heap allocation.
 *
 * Every allocation carries a 64-byte header in front of the user block:
 * the raw pointer the allocator returned, the size requested, the category
 * and the owning scope (a model or session, for per-handle accounting).
 * Counters are atomic so sessions on several threads can allocate at once.
 */
#include "internal.h"
#include "mem.h"

#include <stdatomic.h>
#include <stdlib.h>

#define HDR 64u
#define MAGIC 0xd58b3e11u

typedef struct hdr {
    void *raw;
    size_t size;      /* bytes requested */
    size_t reserved;  /* bytes obtained from the allocator */
    ds8b__memscope *scope;
    int cat;
    uint32_t magic;
} hdr;
_Static_assert(sizeof(hdr) <= HDR, "allocation header fits in 64 bytes");

static _Atomic int64_t g_cur[DS8B_MEM__COUNT];
static _Atomic int64_t g_peak[DS8B_MEM__COUNT];
static _Atomic int64_t g_total_cur, g_total_peak, g_reserved;
static _Atomic int64_t g_soft, g_hard;
static _Atomic int64_t g_nalloc;
static _Thread_local ds8b__memscope *tl_scope;

static ds8b_malloc_fn g_malloc;
static ds8b_free_fn g_free;
static void *g_user;

/* Fault injection for tests: fail the N-th allocation (1-based), 0 = off. */
static _Atomic int64_t g_fail_at;

static void bump_peak(_Atomic int64_t *peak, int64_t v) {
    int64_t p = atomic_load(peak);
    while (v > p && !atomic_compare_exchange_weak(peak, &p, v)) {}
}

static void account(int cat, ds8b__memscope *sc, int64_t d, int64_t reserved) {
    int64_t v = atomic_fetch_add(&g_cur[cat], d) + d;
    if (d > 0) bump_peak(&g_peak[cat], v);
    int64_t t = atomic_fetch_add(&g_total_cur, d) + d;
    if (d > 0) bump_peak(&g_total_peak, t);
    atomic_fetch_add(&g_reserved, reserved);
    for (; sc; sc = sc->parent) {
        int64_t s = atomic_fetch_add(&sc->cur[cat], d) + d;
        if (d > 0) bump_peak(&sc->peak[cat], s);
    }
}

void ds8b__memscope_init(ds8b__memscope *s, ds8b__memscope *parent) {
    for (int i = 0; i < DS8B_MEM__COUNT; i++) {
        atomic_init(&s->cur[i], 0);
        atomic_init(&s->peak[i], 0);
    }
    s->parent = parent;
}

ds8b__memscope *ds8b__memscope_enter(ds8b__memscope *s) {
    ds8b__memscope *old = tl_scope;
    tl_scope = s;
    return old;
}

void ds8b__memscope_leave(ds8b__memscope *old) { tl_scope = old; }

void ds8b__memscope_mapped(ds8b__memscope *s, int64_t d) {
    for (; s; s = s->parent) {
        int64_t v = atomic_fetch_add(&s->cur[DS8B_MEM_MAPPED], d) + d;
        if (d > 0) bump_peak(&s->peak[DS8B_MEM_MAPPED], v);
    }
}

void *ds8b__malloc(int cat, size_t n) {
    if (cat < 0 || cat >= DS8B_MEM_MAPPED) cat = DS8B_MEM_OTHER;
    if (n > (SIZE_MAX >> 2)) return NULL;
    int64_t fa = atomic_load(&g_fail_at);
    if (fa > 0) {
        int64_t k = atomic_fetch_add(&g_nalloc, 1) + 1;
        if (k == fa) return NULL;
    }
    int64_t hard = atomic_load(&g_hard);
    if (hard > 0 && atomic_load(&g_total_cur) + (int64_t)n > hard) return NULL;
    size_t total = n + HDR + HDR; /* room to align the user block to 64 */
    void *raw = g_malloc ? g_malloc(g_user, total) : malloc(total);
    if (!raw) return NULL;
    uintptr_t u = ((uintptr_t)raw + HDR + (HDR - 1)) & ~(uintptr_t)(HDR - 1);
    hdr *h = (hdr *)(u - HDR);
    h->raw = raw;
    h->size = n;
    h->reserved = total;
    h->scope = tl_scope;
    h->cat = cat;
    h->magic = MAGIC;
    account(cat, h->scope, (int64_t)n, (int64_t)total);
    return (void *)u;
}

void *ds8b__calloc(int cat, size_t count, size_t size) {
    size_t n;
    if (!ds8b__mul_ok(count, size, &n)) return NULL;
    void *p = ds8b__malloc(cat, n);
    if (p) memset(p, 0, n);
    return p;
}

static hdr *header_of(const void *p) {
    hdr *h = (hdr *)((uintptr_t)p - HDR);
    return h->magic == MAGIC ? h : NULL;
}

size_t ds8b__alloc_size(const void *p) {
    if (!p) return 0;
    hdr *h = header_of(p);
    return h ? h->size : 0;
}

void ds8b__free(void *p) {
    if (!p) return;
    hdr *h = header_of(p);
    if (!h) return; /* not ours: ignore rather than corrupt the heap */
    account(h->cat, h->scope, -(int64_t)h->size, -(int64_t)h->reserved);
    h->magic = 0;
    void *raw = h->raw;
    if (g_free) g_free(g_user, raw);
    else free(raw);
}

void *ds8b__realloc(int cat, void *p, size_t n) {
    if (!p) return ds8b__malloc(cat, n);
    hdr *h = header_of(p);
    if (!h) return NULL;
    if (n <= h->size && n >= h->size / 2) return p;
    ds8b__memscope *old = ds8b__memscope_enter(h->scope);
    void *q = ds8b__malloc(h->cat, n);
    ds8b__memscope_leave(old);
    if (!q) return NULL;
    memcpy(q, p, h->size < n ? h->size : n);
    ds8b__free(p);
    return q;
}

char *ds8b__strndup(int cat, const char *s, size_t n) {
    char *p = ds8b__malloc(cat, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *ds8b__strdup(int cat, const char *s) { return ds8b__strndup(cat, s, strlen(s)); }

void *ds8b__xmalloc(int cat, size_t n, const char *what, ds8b__err *e) {
    void *p = ds8b__malloc(cat, n);
    if (!p) {
        int64_t hard = atomic_load(&g_hard);
        if (hard > 0 && atomic_load(&g_total_cur) + (int64_t)n > hard)
            ds8b__seterr(e, DS8B_E_NOMEM,
                         "allocating %zu bytes for %s would pass the hard heap limit of %lld bytes by %lld",
                         n, what, (long long)hard,
                         (long long)(atomic_load(&g_total_cur) + (int64_t)n - hard));
        else
            ds8b__seterr(e, DS8B_E_NOMEM, "cannot allocate %zu bytes for %s", n, what);
    }
    return p;
}

void ds8b__mem_mapped_add(int64_t d) {
    int64_t v = atomic_fetch_add(&g_cur[DS8B_MEM_MAPPED], d) + d;
    if (d > 0) bump_peak(&g_peak[DS8B_MEM_MAPPED], v);
    ds8b__memscope_mapped(tl_scope, d);
}

bool ds8b__mem_over_soft(size_t extra) {
    int64_t soft = atomic_load(&g_soft);
    return soft > 0 && atomic_load(&g_total_cur) + (int64_t)extra > soft;
}

int64_t ds8b__mem_reserved(void) { return atomic_load(&g_reserved); }

void ds8b__mem_fail_at(int64_t n) {
    atomic_store(&g_nalloc, 0);
    atomic_store(&g_fail_at, n);
}

int64_t ds8b__mem_alloc_count(void) { return atomic_load(&g_nalloc); }

/* ---------------------------------------------------------------- */
/* Public API                                                        */
/* ---------------------------------------------------------------- */
DS8B_API int64_t ds8b_memory_used(int cat) {
    if (cat == -1) return atomic_load(&g_total_cur);
    if (cat < 0 || cat >= DS8B_MEM__COUNT) return -1;
    return atomic_load(&g_cur[cat]);
}

DS8B_API int64_t ds8b_memory_highwater(int cat, int reset) {
    _Atomic int64_t *peak, *cur;
    if (cat == -1) { peak = &g_total_peak; cur = &g_total_cur; }
    else if (cat >= 0 && cat < DS8B_MEM__COUNT) { peak = &g_peak[cat]; cur = &g_cur[cat]; }
    else return -1;
    int64_t v = atomic_load(peak);
    if (reset) atomic_store(peak, atomic_load(cur));
    return v;
}

DS8B_API int64_t ds8b_soft_heap_limit(int64_t n) {
    if (n < 0) return atomic_load(&g_soft);
    return atomic_exchange(&g_soft, n);
}

DS8B_API int64_t ds8b_hard_heap_limit(int64_t n) {
    if (n < 0) return atomic_load(&g_hard);
    return atomic_exchange(&g_hard, n);
}

DS8B_API int ds8b_set_allocator(ds8b_malloc_fn m, ds8b_free_fn f, void *user) {
    if ((m == NULL) != (f == NULL)) {
        ds8b__err e;
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_set_allocator: give both functions or neither");
        ds8b__set_last_error(&e);
        return DS8B_E_INVALID;
    }
    if (atomic_load(&g_total_cur) != 0) {
        ds8b__err e;
        ds8b__seterr(&e, DS8B_E_MISUSE,
                     "ds8b_set_allocator: %lld bytes are still allocated; free all handles first",
                     (long long)atomic_load(&g_total_cur));
        ds8b__set_last_error(&e);
        return DS8B_E_MISUSE;
    }
    g_malloc = m;
    g_free = f;
    g_user = user;
    return DS8B_OK;
}
