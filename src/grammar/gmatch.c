/*
 * gmatch.c -- the grammar matcher: a set of parse stacks advanced one code
 * point at a time, fed bytes with UTF-8 decoded at the byte level.
 *
 * A stack lists element positions; its top is the character element to
 * match next and the entries below it are where to continue when the rule
 * above finishes (positions that are the end of an alternative are never
 * pushed, so right recursion such as x* does not grow the stack). After a
 * code point is matched, the stack is "expanded": references on top are
 * replaced by each alternative of the rule until every stack has a
 * character on top or is empty (the parse is complete). Left recursion is
 * refused at compile time, so expansion terminates; the work per code
 * point is still bounded (DS8B__GM_MAX_STACKS distinct stacks, depth
 * DS8B__GM_MAX_DEPTH, and a budget of expansion steps) so that a highly
 * ambiguous grammar gives DS8B_E_LIMIT instead of running away.
 *
 * Bytes of a multi-byte character are held as a partial code point; each
 * byte is checked at once against the range of code points that could
 * still follow (so a token ending inside a character is refused as soon as
 * no stack could take any completion of it), and the character is matched
 * when its last byte arrives. Overlong forms, surrogates and code points
 * above U+10FFFF are refused.
 */
#include "grammar/gram_impl.h"

#include <stdio.h>

#define HT_CAP (2u * DS8B__GM_MAX_STACKS) /* power of two */
#define WORK_BUDGET (64u * DS8B__GM_MAX_STACKS)

struct ds8b__gscr {
    uint32_t *work;        /* stacks to expand: [e_0 .. e_{n-1}, n] each, LIFO */
    size_t wlen, wcap;
    uint32_t *tmp;         /* the base of the stack being expanded */
    size_t tcap;
    uint64_t ht[HT_CAP];   /* dedup of output stacks: stamp << 32 | (offset + 1) */
    uint32_t stamp;
    ds8b__gset alt;        /* the other buffer of a step */
    ds8b__gmatch probe;    /* for ds8b__gm_allows */
    bool probe_init;
    ds8b__gset *lv;        /* vocabulary walk: a set per depth */
    ds8b__gset *views;     /* the set of each depth (into lv or the cache) */
    uint64_t *hs;          /* its hash */
    const ds8b__gset **cur;
    uint32_t *lcp;
    uint8_t *lst;          /* need, nbytes, lead per depth */
    size_t nlv;
    /* transition cache of the vocabulary walk: (set, code point) -> set */
    const ds8b_grammar *tc_g;
    uint64_t tc_fp;
    uint32_t *tc_words;    /* arena, fixed size: pointers into it stay valid */
    size_t tc_len;
    struct tc_entry *tc_ent;
    uint32_t tc_n;
    uint32_t *tc_tab;      /* entry index + 1, open addressing */
    bool tc_full;
};

#define TC_WORDS (1u << 18)
#define TC_ENTRIES 8192u
#define TC_TAB (2u * TC_ENTRIES)

struct tc_entry {
    uint64_t key;          /* hash of (input set, cp) */
    uint64_t out_hash;
    uint32_t cp, in_off, in_len, in_n, out_off, out_len, out_n;
};

int ds8b__gscr_levels(ds8b__gscr *sc, size_t n, ds8b__gset **lv, ds8b__gset **views, uint64_t **hs,
                      const ds8b__gset ***cur, uint32_t **cp, uint8_t **st, ds8b__err *e) {
    if (sc->nlv < n) {
        ds8b__gset *l = ds8b__realloc(DS8B_MEM_SESSION, sc->lv, n * sizeof *l);
        if (!l) return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory for the grammar mask");
        memset(l + sc->nlv, 0, (n - sc->nlv) * sizeof *l);
        sc->lv = l;
        ds8b__gset *v = ds8b__realloc(DS8B_MEM_SESSION, sc->views, n * sizeof *v);
        if (!v) return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory for the grammar mask");
        sc->views = v;
        uint64_t *h = ds8b__realloc(DS8B_MEM_SESSION, sc->hs, n * sizeof *h);
        if (!h) return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory for the grammar mask");
        sc->hs = h;
        const ds8b__gset **c = ds8b__realloc(DS8B_MEM_SESSION, (void *)sc->cur, n * sizeof *c);
        if (!c) return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory for the grammar mask");
        sc->cur = c;
        uint32_t *q = ds8b__realloc(DS8B_MEM_SESSION, sc->lcp, n * sizeof *q);
        if (!q) return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory for the grammar mask");
        sc->lcp = q;
        uint8_t *t = ds8b__realloc(DS8B_MEM_SESSION, sc->lst, n * 3);
        if (!t) return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory for the grammar mask");
        sc->lst = t;
        sc->nlv = n;
    }
    *lv = sc->lv;
    *views = sc->views;
    *hs = sc->hs;
    *cur = sc->cur;
    *cp = sc->lcp;
    *st = sc->lst;
    return 0;
}

static bool words_reserve(uint32_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 256;
    while (nc < need) nc *= 2;
    uint32_t *q = ds8b__realloc(DS8B_MEM_SESSION, *p, nc * sizeof *q);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

ds8b__gscr *ds8b__gscr_new(ds8b__err *e) {
    ds8b__gscr *s = ds8b__xmalloc(DS8B_MEM_SESSION, sizeof *s, "grammar scratch", e);
    if (s) memset(s, 0, sizeof *s);
    return s;
}

void ds8b__gscr_free(ds8b__gscr *s) {
    if (!s) return;
    ds8b__free(s->work);
    ds8b__free(s->tmp);
    ds8b__free(s->alt.buf);
    if (s->probe_init) ds8b__gm_free(&s->probe);
    for (size_t i = 0; i < s->nlv; i++) ds8b__free(s->lv[i].buf);
    ds8b__free(s->lv);
    ds8b__free(s->views);
    ds8b__free(s->hs);
    ds8b__free((void *)s->cur);
    ds8b__free(s->lcp);
    ds8b__free(s->lst);
    ds8b__free(s->tc_words);
    ds8b__free(s->tc_ent);
    ds8b__free(s->tc_tab);
    ds8b__free(s);
}

/* ------------------------------------------------------------------ */
/* Character matching                                                  */
/* ------------------------------------------------------------------ */
static bool in_ranges(const uint32_t *r, uint32_t n, uint32_t cp) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) { /* first range with hi >= cp */
        uint32_t mid = lo + (hi - lo) / 2;
        if (r[2 * mid + 1] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && r[2 * lo] <= cp;
}

static inline bool char_match(const ds8b_grammar *g, const ds8b__gel *x, uint32_t cp) {
    bool in = in_ranges(g->ranges + 2 * (size_t)x->a, x->b, cp);
    return x->type == G_CHAR ? in : !in;
}

/* Can the element match some code point in [lo, hi]? Ranges are sorted,
 * disjoint and not adjacent, so for a negated class [lo, hi] is excluded
 * only when one range covers it. */
static bool char_match_range(const ds8b_grammar *g, const ds8b__gel *x, uint32_t lo, uint32_t hi) {
    const uint32_t *r = g->ranges + 2 * (size_t)x->a;
    for (uint32_t i = 0; i < x->b; i++) {
        if (x->type == G_CHAR) {
            if (r[2 * i] <= hi && r[2 * i + 1] >= lo) return true;
        } else if (r[2 * i] <= lo && r[2 * i + 1] >= hi) return false;
    }
    return x->type == G_NCHAR;
}

/* ------------------------------------------------------------------ */
/* Expansion                                                           */
/* ------------------------------------------------------------------ */
static uint64_t hash_words(const uint32_t *w, uint32_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (uint32_t i = 0; i < n; i++) h = (h ^ w[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static int add_out(ds8b__gset *out, ds8b__gscr *sc, const uint32_t *w, uint32_t n, ds8b__err *e) {
    uint64_t h = hash_words(w, n);
    size_t j = (size_t)h & (HT_CAP - 1);
    for (;;) {
        uint64_t v = sc->ht[j];
        if ((uint32_t)(v >> 32) != sc->stamp || (uint32_t)v == 0) break;
        size_t off = (uint32_t)v - 1;
        if (out->buf[off] == n && (n == 0 || memcmp(out->buf + off + 1, w, n * sizeof *w) == 0)) return 0; /* seen */
        j = (j + 1) & (HT_CAP - 1);
    }
    if (out->n >= DS8B__GM_MAX_STACKS)
        return ds8b__seterr(e, DS8B_E_LIMIT, "grammar too ambiguous: more than %d parse stacks at once",
                            DS8B__GM_MAX_STACKS);
    if (!words_reserve(&out->buf, &out->cap, out->len + n + 1) || out->len + n + 1 > UINT32_MAX)
        return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory matching the grammar");
    sc->ht[j] = ((uint64_t)sc->stamp << 32) | (uint32_t)(out->len + 1);
    out->buf[out->len] = n;
    if (n) memcpy(out->buf + out->len + 1, w, n * sizeof *w);
    out->len += n + 1;
    out->n++;
    return 0;
}

/* Pushes base[0..nb) + up to two more positions onto the work list. */
static int push_work(ds8b__gscr *sc, const uint32_t *base, uint32_t nb, uint32_t x1, bool has1, uint32_t x2,
                     bool has2, ds8b__err *e) {
    uint32_t n = nb + has1 + has2;
    if (n > DS8B__GM_MAX_DEPTH)
        return ds8b__seterr(e, DS8B_E_LIMIT, "grammar nests deeper than %d rules while matching", DS8B__GM_MAX_DEPTH);
    if (!words_reserve(&sc->work, &sc->wcap, sc->wlen + n + 1))
        return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory matching the grammar");
    /* base never points into sc->work (see expand) */
    if (nb) memcpy(sc->work + sc->wlen, base, nb * sizeof *base);
    size_t w = sc->wlen + nb;
    if (has1) sc->work[w++] = x1;
    if (has2) sc->work[w++] = x2;
    sc->work[w++] = n;
    sc->wlen = w;
    return 0;
}

/* Expands everything on the work list into out. */
static int expand(const ds8b_grammar *g, ds8b__gset *out, ds8b__gscr *sc, ds8b__err *e) {
    uint32_t budget = WORK_BUDGET;
    while (sc->wlen) {
        if (!budget--) {
            sc->wlen = 0;
            return ds8b__seterr(e, DS8B_E_LIMIT, "grammar too ambiguous: expansion budget exhausted");
        }
        uint32_t n = sc->work[sc->wlen - 1];
        size_t start = sc->wlen - 1 - n;
        if (n == 0) {
            sc->wlen = start;
            if (add_out(out, sc, NULL, 0, e)) { sc->wlen = 0; return e ? e->code : DS8B_E_LIMIT; }
            continue;
        }
        uint32_t top = sc->work[start + n - 1];
        const ds8b__gel *x = &g->el[top];
        if (x->type != G_REF) {
            int rc = add_out(out, sc, sc->work + start, n, e);
            sc->wlen = start;
            if (rc) { sc->wlen = 0; return rc; }
            continue;
        }
        /* replace the reference by each alternative of its rule; the
         * popped stack's base stays in place and is copied per alternative */
        uint32_t next = top + 1;
        bool has_next = !ds8b__gel_is_end(&g->el[next]);
        uint32_t rule = x->a, nb = n - 1;
        uint32_t a0 = g->alt_first[rule], a1 = g->alt_first[rule + 1];
        /* the base is copied aside: the first push writes over it */
        if (!words_reserve(&sc->tmp, &sc->tcap, nb ? nb : 1)) {
            sc->wlen = 0;
            return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory matching the grammar");
        }
        memcpy(sc->tmp, sc->work + start, nb * sizeof *sc->tmp);
        sc->wlen = start;
        for (uint32_t ai = a1; ai > a0; ai--) {
            uint32_t a = g->alts[ai - 1];
            bool has_a = !ds8b__gel_is_end(&g->el[a]);
            int rc = push_work(sc, sc->tmp, nb, next, has_next, a, has_a, e);
            if (rc) { sc->wlen = 0; return rc; }
        }
    }
    return 0;
}

/* Starts a step: clears out. */
static void out_begin(ds8b__gset *out, ds8b__gscr *sc) {
    out->len = 0;
    out->n = 0;
    if (++sc->stamp == 0) { /* wrapped: clear the table once */
        memset(sc->ht, 0, sizeof sc->ht);
        sc->stamp = 1;
    }
}

int ds8b__gset_start(const ds8b_grammar *g, ds8b__gset *out, ds8b__gscr *sc, ds8b__err *e) {
    out_begin(out, sc);
    sc->wlen = 0;
    uint32_t a0 = g->alt_first[g->root], a1 = g->alt_first[g->root + 1];
    for (uint32_t ai = a1; ai > a0; ai--) {
        uint32_t a = g->alts[ai - 1];
        int rc = push_work(sc, NULL, 0, a, !ds8b__gel_is_end(&g->el[a]), 0, false, e);
        if (rc) return rc;
    }
    return expand(g, out, sc, e);
}

int ds8b__gset_step(const ds8b_grammar *g, const ds8b__gset *in, uint32_t cp, ds8b__gset *out, ds8b__gscr *sc,
                    ds8b__err *e) {
    out_begin(out, sc);
    sc->wlen = 0;
    size_t off = 0;
    for (uint32_t i = 0; i < in->n; i++) {
        uint32_t n = in->buf[off];
        const uint32_t *w = in->buf + off + 1;
        off += (size_t)n + 1;
        if (n == 0) continue;
        uint32_t top = w[n - 1];
        if (!char_match(g, &g->el[top], cp)) continue;
        uint32_t next = top + 1;
        int rc = push_work(sc, w, n - 1, next, !ds8b__gel_is_end(&g->el[next]), 0, false, e);
        if (!rc) rc = expand(g, out, sc, e);
        if (rc) return rc;
    }
    return 0;
}

bool ds8b__gset_prefix_ok(const ds8b_grammar *g, const ds8b__gset *in, uint32_t lo, uint32_t hi) {
    size_t off = 0;
    for (uint32_t i = 0; i < in->n; i++) {
        uint32_t n = in->buf[off];
        if (n && char_match_range(g, &g->el[in->buf[off + n]], lo, hi)) return true;
        off += (size_t)n + 1;
    }
    return false;
}

bool ds8b__gset_has_empty(const ds8b__gset *in) {
    size_t off = 0;
    for (uint32_t i = 0; i < in->n; i++) {
        if (in->buf[off] == 0) return true;
        off += (size_t)in->buf[off] + 1;
    }
    return false;
}

uint64_t ds8b__gset_hash(const ds8b__gset *s) { return hash_words(s->buf, (uint32_t)s->len) ^ ((uint64_t)s->n << 40); }

static uint64_t tc_key(uint64_t h, uint32_t cp) {
    uint64_t k = (h ^ ((uint64_t)cp * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    return k ^ (k >> 31);
}

/* Prepares the cache for a walk of g: cleared when g changed or it filled
 * up during the last walk (never during a walk, so views stay valid). */
int ds8b__gscr_cache_begin(ds8b__gscr *sc, const ds8b_grammar *g, ds8b__err *e) {
    if (!sc->tc_words) {
        sc->tc_words = ds8b__malloc(DS8B_MEM_SESSION, TC_WORDS * sizeof *sc->tc_words);
        sc->tc_ent = ds8b__malloc(DS8B_MEM_SESSION, TC_ENTRIES * sizeof *sc->tc_ent);
        sc->tc_tab = ds8b__calloc(DS8B_MEM_SESSION, TC_TAB, sizeof *sc->tc_tab);
        if (!sc->tc_words || !sc->tc_ent || !sc->tc_tab) {
            ds8b__free(sc->tc_words);
            ds8b__free(sc->tc_ent);
            ds8b__free(sc->tc_tab);
            sc->tc_words = NULL;
            sc->tc_ent = NULL;
            sc->tc_tab = NULL;
            return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory for the grammar mask cache");
        }
        sc->tc_g = NULL;
    }
    if (sc->tc_g != g || sc->tc_fp != g->fp || sc->tc_full) {
        memset(sc->tc_tab, 0, TC_TAB * sizeof *sc->tc_tab);
        sc->tc_n = 0;
        sc->tc_len = 0;
        sc->tc_full = false;
        sc->tc_g = g;
        sc->tc_fp = g->fp;
    }
    return 0;
}

/* out = in advanced by cp, as a view: into the cache when the transition
 * is known or could be stored, else into spare (computed). *out_hash is the
 * hash of the result. Valid until the next ds8b__gscr_cache_begin. */
int ds8b__gset_step_cached(const ds8b_grammar *g, const ds8b__gset *in, uint64_t in_hash, uint32_t cp,
                           ds8b__gset *view, ds8b__gset *spare, uint64_t *out_hash, ds8b__gscr *sc, ds8b__err *e) {
    uint64_t k = tc_key(in_hash, cp);
    size_t j = (size_t)k & (TC_TAB - 1);
    while (sc->tc_tab[j]) {
        const struct tc_entry *x = &sc->tc_ent[sc->tc_tab[j] - 1];
        if (x->key == k && x->cp == cp && x->in_len == in->len && x->in_n == in->n &&
            memcmp(sc->tc_words + x->in_off, in->buf, in->len * sizeof *in->buf) == 0) {
            view->buf = sc->tc_words + x->out_off;
            view->len = x->out_len;
            view->n = x->out_n;
            view->cap = 0;
            *out_hash = x->out_hash;
            return 0;
        }
        j = (j + 1) & (TC_TAB - 1);
    }
    int rc = ds8b__gset_step(g, in, cp, spare, sc, e);
    if (rc) return rc;
    uint64_t oh = ds8b__gset_hash(spare);
    *out_hash = oh;
    if (!sc->tc_full && sc->tc_n < TC_ENTRIES && sc->tc_n * 2 < TC_TAB && sc->tc_len + in->len + spare->len <= TC_WORDS) {
        struct tc_entry *x = &sc->tc_ent[sc->tc_n];
        x->key = k;
        x->out_hash = oh;
        x->cp = cp;
        x->in_off = (uint32_t)sc->tc_len;
        x->in_len = (uint32_t)in->len;
        x->in_n = in->n;
        if (in->len) memcpy(sc->tc_words + sc->tc_len, in->buf, in->len * sizeof *in->buf);
        sc->tc_len += in->len;
        x->out_off = (uint32_t)sc->tc_len;
        x->out_len = (uint32_t)spare->len;
        x->out_n = spare->n;
        if (spare->len) memcpy(sc->tc_words + sc->tc_len, spare->buf, spare->len * sizeof *spare->buf);
        sc->tc_len += spare->len;
        sc->tc_tab[j] = ++sc->tc_n;
        view->buf = sc->tc_words + x->out_off;
        view->len = x->out_len;
        view->n = x->out_n;
        view->cap = 0;
    } else {
        sc->tc_full = true;
        *view = *spare;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* UTF-8 at the byte level                                             */
/* ------------------------------------------------------------------ */
/* Range of code points that can complete a partial sequence. */
void ds8b__utf8_partial_range(uint32_t cp, uint8_t need, uint8_t nbytes, uint8_t lead, uint32_t *lo, uint32_t *hi) {
    uint32_t sh = 6u * need;
    uint32_t l = cp << sh, h = l | ((1u << sh) - 1);
    if (nbytes == 1) {
        if (lead == 0xE0 && l < 0x800) l = 0x800;
        if (lead == 0xED && h > 0xD7FF) h = 0xD7FF;
        if (lead == 0xF0 && l < 0x10000) l = 0x10000;
        if (lead == 0xF4 && h > 0x10FFFF) h = 0x10FFFF;
    }
    *lo = l;
    *hi = h;
}

/* One byte on (cp, need, nbytes, lead). Returns 0: byte rejected, 1: code
 * point pending, 2: *out holds a complete code point. */
int ds8b__utf8_byte(uint32_t *cp, uint8_t *need, uint8_t *nbytes, uint8_t *lead, uint8_t b, uint32_t *out) {
    if (*need == 0) {
        if (b < 0x80) { *out = b; return 2; }
        if (b >= 0xC2 && b <= 0xDF) { *cp = b & 0x1F; *need = 1; }
        else if (b >= 0xE0 && b <= 0xEF) { *cp = b & 0x0F; *need = 2; }
        else if (b >= 0xF0 && b <= 0xF4) { *cp = b & 0x07; *need = 3; }
        else return 0;
        *nbytes = 1;
        *lead = b;
        return 1;
    }
    if ((b & 0xC0) != 0x80) return 0;
    if (*nbytes == 1) {
        if ((*lead == 0xE0 && b < 0xA0) || (*lead == 0xED && b > 0x9F) || (*lead == 0xF0 && b < 0x90) ||
            (*lead == 0xF4 && b > 0x8F))
            return 0;
    }
    *cp = (*cp << 6) | (b & 0x3F);
    (*need)--;
    (*nbytes)++;
    if (*need == 0) {
        *out = *cp;
        *nbytes = 0;
        *cp = 0;
        *lead = 0;
        return 2;
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* The matcher                                                         */
/* ------------------------------------------------------------------ */
static int ensure_scr(ds8b__gmatch *m, ds8b__err *e) {
    if (m->scr) return 0;
    m->scr = ds8b__gscr_new(e);
    return m->scr ? 0 : DS8B_E_NOMEM;
}

int ds8b__gm_init(ds8b__gmatch *m, const ds8b_grammar *g, ds8b__err *e) {
    m->g = g;
    m->cp = 0;
    m->need = m->nbytes = m->lead = 0;
    int rc = ensure_scr(m, e);
    if (rc) return rc;
    rc = ds8b__gset_start(g, &m->set, m->scr, e);
    if (rc) { m->set.n = 0; m->set.len = 0; }
    return rc;
}

void ds8b__gm_free(ds8b__gmatch *m) {
    if (!m) return;
    ds8b__free(m->set.buf);
    ds8b__gscr_free(m->scr);
    memset(m, 0, sizeof *m);
}

int ds8b__gm_copy(ds8b__gmatch *dst, const ds8b__gmatch *src, ds8b__err *e) {
    if (!words_reserve(&dst->set.buf, &dst->set.cap, src->set.len ? src->set.len : 1))
        return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory copying the grammar state");
    if (src->set.len) memcpy(dst->set.buf, src->set.buf, src->set.len * sizeof *src->set.buf);
    dst->set.len = src->set.len;
    dst->set.n = src->set.n;
    dst->g = src->g;
    dst->cp = src->cp;
    dst->need = src->need;
    dst->nbytes = src->nbytes;
    dst->lead = src->lead;
    return 0;
}

static void kill(ds8b__gmatch *m) {
    m->set.n = 0;
    m->set.len = 0;
    m->need = m->nbytes = m->lead = 0;
    m->cp = 0;
}

int ds8b__gm_feed(ds8b__gmatch *m, const uint8_t *p, size_t n, ds8b__err *e) {
    int rc = ensure_scr(m, e);
    if (rc) return rc;
    for (size_t i = 0; i < n && m->set.n; i++) {
        uint32_t cp;
        int r = ds8b__utf8_byte(&m->cp, &m->need, &m->nbytes, &m->lead, p[i], &cp);
        if (r == 0) { kill(m); break; }
        if (r == 1) {
            uint32_t lo, hi;
            ds8b__utf8_partial_range(m->cp, m->need, m->nbytes, m->lead, &lo, &hi);
            if (!ds8b__gset_prefix_ok(m->g, &m->set, lo, hi)) kill(m);
            continue;
        }
        rc = ds8b__gset_step(m->g, &m->set, cp, &m->scr->alt, m->scr, e);
        if (rc) return rc;
        ds8b__gset t = m->set;
        m->set = m->scr->alt;
        m->scr->alt = t;
        if (!m->set.n) kill(m);
    }
    return 0;
}

bool ds8b__gm_can_end(const ds8b__gmatch *m) { return m->need == 0 && ds8b__gset_has_empty(&m->set); }

bool ds8b__gm_must_end(const ds8b__gmatch *m) {
    return m->need == 0 && m->set.n == 1 && m->set.len >= 1 && m->set.buf[0] == 0;
}

int ds8b__gm_allows(const ds8b__gmatch *m, const uint8_t *p, size_t n, bool *ok, ds8b__err *e) {
    *ok = false;
    ds8b__gmatch *mm = (ds8b__gmatch *)m; /* only its scratch changes */
    int rc = ensure_scr(mm, e);
    if (rc) return rc;
    ds8b__gscr *sc = mm->scr;
    if (!sc->probe_init) {
        memset(&sc->probe, 0, sizeof sc->probe);
        sc->probe_init = true;
    }
    if ((rc = ds8b__gm_copy(&sc->probe, m, e))) return rc;
    if ((rc = ds8b__gm_feed(&sc->probe, p, n, e))) return rc;
    *ok = !ds8b__gm_dead(&sc->probe);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Serialisation: u32 words, little-endian                              */
/*   n_stacks, cp, need | nbytes << 8 | lead << 16, len, buf[len]        */
/* ------------------------------------------------------------------ */
size_t ds8b__gm_saved_size(const ds8b__gmatch *m) { return (4 + m->set.len) * 4; }

static void w32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t r32(const uint8_t *p) { uint32_t v = 0; for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i); return v; }

void ds8b__gm_save(const ds8b__gmatch *m, uint8_t *out) {
    w32(out, m->set.n);
    w32(out + 4, m->cp);
    w32(out + 8, (uint32_t)m->need | (uint32_t)m->nbytes << 8 | (uint32_t)m->lead << 16);
    w32(out + 12, (uint32_t)m->set.len);
    for (size_t i = 0; i < m->set.len; i++) w32(out + 16 + 4 * i, m->set.buf[i]);
}

int ds8b__gm_load(ds8b__gmatch *m, const ds8b_grammar *g, const uint8_t *p, size_t n, ds8b__err *e) {
    if (n < 16) return ds8b__seterr(e, DS8B_E_FORMAT, "grammar state is truncated");
    uint32_t ns = r32(p), cp = r32(p + 4), fl = r32(p + 8), len = r32(p + 12);
    if ((n - 16) / 4 != len || (n - 16) % 4) return ds8b__seterr(e, DS8B_E_FORMAT, "grammar state has the wrong size");
    uint8_t need = fl & 0xff, nb = (fl >> 8) & 0xff, lead = (fl >> 16) & 0xff;
    if (ns > DS8B__GM_MAX_STACKS || need > 3 || nb > 3 || (need && !nb) || (fl >> 24))
        return ds8b__seterr(e, DS8B_E_FORMAT, "grammar state is corrupt");
    /* every stack: top a character element, the rest continuation points */
    size_t off = 0;
    for (uint32_t i = 0; i < ns; i++) {
        if (off >= len) return ds8b__seterr(e, DS8B_E_FORMAT, "grammar state is corrupt");
        uint32_t k = r32(p + 16 + 4 * off);
        if (k > DS8B__GM_MAX_DEPTH || k > len - off - 1) return ds8b__seterr(e, DS8B_E_FORMAT, "grammar state is corrupt");
        for (uint32_t j = 0; j < k; j++) {
            uint32_t pos = r32(p + 16 + 4 * (off + 1 + j));
            if (pos >= g->n_el) return ds8b__seterr(e, DS8B_E_FORMAT, "grammar state is corrupt");
            uint8_t t = g->el[pos].type;
            if (j == k - 1 ? (t != G_CHAR && t != G_NCHAR) : ds8b__gel_is_end(&g->el[pos]))
                return ds8b__seterr(e, DS8B_E_FORMAT, "grammar state does not fit this grammar");
        }
        off += (size_t)k + 1;
    }
    if (off != len) return ds8b__seterr(e, DS8B_E_FORMAT, "grammar state is corrupt");
    int rc = ensure_scr(m, e);
    if (rc) return rc;
    if (!words_reserve(&m->set.buf, &m->set.cap, len ? len : 1))
        return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory restoring the grammar state");
    for (uint32_t i = 0; i < len; i++) m->set.buf[i] = r32(p + 16 + 4 * (size_t)i);
    m->set.len = len;
    m->set.n = ns;
    m->g = g;
    m->cp = cp;
    m->need = need;
    m->nbytes = nb;
    m->lead = lead;
    return 0;
}
