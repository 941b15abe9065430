/*
 * gsample.c -- grammars in sessions: the vocabulary trie, the session's
 * grammar state, the token filter used by ds8b__sample_filtered, and
 * ds8b_session_set_grammar.
 *
 * The vocabulary trie holds the byte string of every non-special token,
 * as a trie flattened in preorder: node i has a byte, a depth, the tokens
 * that end there and `end`, the index just past its subtree. The full mask
 * walks it once, carrying the grammar state per depth; a byte the grammar
 * cannot take skips the whole subtree, so the cost follows the number of
 * prefixes the grammar allows, not the vocabulary size. It is built on
 * first use for a tokenizer, published with a compare-and-swap in the
 * model's shared tokenizer holder (a loser frees its copy), read-only
 * afterwards, and charged to that holder's memory scope.
 */
#include "grammar/gram_impl.h"

#include "mem.h"
#include "model/model.h"
#include "session/session.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <time.h>

#define VT_MAX_TOKEN 1024 /* longer tokens are never allowed under a grammar */

typedef struct vnode {
    uint32_t end;       /* index past this node's subtree */
    uint32_t tok_first; /* tokens ending here: ids[tok_first .. tok_first + ntok) */
    uint16_t ntok;
    uint16_t depth;     /* 1 for a first byte */
    uint8_t byte;
} vnode;

struct ds8b__vtrie {
    vnode *nodes;
    uint32_t n_nodes;
    int32_t *ids;       /* token ids in trie order */
    uint32_t n_ids;
    uint8_t *pool;      /* token bytes */
    uint32_t *tok_off;  /* (n_tok) offset in pool */
    uint16_t *tok_len;  /* (n_tok) length; UINT16_MAX: not in the trie (special, empty, too long) */
    int32_t n_tok;
    uint16_t max_depth;
};

typedef struct ventry {
    const uint8_t *p;
    uint32_t len;
    int32_t id;
} ventry;

static int cmp_entry(const void *a, const void *b) {
    const ventry *x = a, *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

void ds8b__vtrie_free(ds8b__vtrie *t) {
    if (!t) return;
    ds8b__free(t->nodes);
    ds8b__free(t->ids);
    ds8b__free(t->pool);
    ds8b__free(t->tok_off);
    ds8b__free(t->tok_len);
    ds8b__free(t);
}

static int vtrie_build(const ds8b_tokenizer *tok, ds8b__vtrie **out, ds8b__err *e) {
    int32_t n = ds8b__tok_n_vocab(tok);
    ds8b__vtrie *t = ds8b__xmalloc(DS8B_MEM_TOKENIZER, sizeof *t, "vocabulary trie", e);
    if (!t) return DS8B_E_NOMEM;
    memset(t, 0, sizeof *t);
    t->n_tok = n;
    ventry *ent = NULL;
    uint32_t *open = NULL;
    size_t pool_len = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t l = 0;
        ds8b__tok_token_bytes(tok, i, NULL, 0, &l);
        if (l <= VT_MAX_TOKEN) pool_len += l;
    }
    t->pool = ds8b__malloc(DS8B_MEM_TOKENIZER, pool_len ? pool_len : 1);
    t->tok_off = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? (size_t)n : 1, sizeof *t->tok_off);
    t->tok_len = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? (size_t)n : 1, sizeof *t->tok_len);
    ent = ds8b__calloc(DS8B_MEM_OTHER, n ? (size_t)n : 1, sizeof *ent);
    open = ds8b__calloc(DS8B_MEM_OTHER, VT_MAX_TOKEN + 2, sizeof *open);
    if (!t->pool || !t->tok_off || !t->tok_len || !ent || !open) goto nomem;
    size_t off = 0, n_ent = 0, n_nodes_max = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t l = 0;
        t->tok_len[i] = UINT16_MAX;
        ds8b__tok_token_bytes(tok, i, NULL, 0, &l);
        if (l == 0 || l > VT_MAX_TOKEN || ds8b__tok_is_special(tok, i)) continue;
        if (!ds8b__tok_token_bytes(tok, i, (char *)t->pool + off, pool_len - off, &l)) continue;
        t->tok_off[i] = (uint32_t)off;
        t->tok_len[i] = (uint16_t)l;
        ent[n_ent].p = t->pool + off;
        ent[n_ent].len = (uint32_t)l;
        ent[n_ent].id = i;
        n_ent++;
        n_nodes_max += l;
        off += l;
    }
    qsort(ent, n_ent, sizeof *ent, cmp_entry);
    t->ids = ds8b__calloc(DS8B_MEM_TOKENIZER, n_ent ? n_ent : 1, sizeof *t->ids);
    /* nodes: at most one per byte of every token; shrunk afterwards */
    t->nodes = ds8b__calloc(DS8B_MEM_OTHER, n_nodes_max ? n_nodes_max : 1, sizeof *t->nodes);
    if (!t->ids || !t->nodes) goto nomem;
    uint32_t nn = 0, depth = 0; /* open[d]: the open node at depth d (1-based) */
    for (size_t k = 0; k < n_ent; k++) {
        const ventry *x = &ent[k];
        uint32_t lcp = 0;
        if (k) {
            const ventry *y = &ent[k - 1];
            uint32_t m = x->len < y->len ? x->len : y->len;
            while (lcp < m && x->p[lcp] == y->p[lcp]) lcp++;
        }
        if (lcp > depth) lcp = depth;
        for (uint32_t d = depth; d > lcp; d--) t->nodes[open[d]].end = nn;
        depth = lcp;
        for (uint32_t d = lcp; d < x->len; d++) {
            vnode *v = &t->nodes[nn];
            v->byte = x->p[d];
            v->depth = (uint16_t)(d + 1);
            v->tok_first = t->n_ids;
            v->ntok = 0;
            open[d + 1] = nn++;
        }
        depth = x->len;
        vnode *v = &t->nodes[open[depth]];
        if (v->ntok == 0) v->tok_first = t->n_ids;
        if (v->ntok < UINT16_MAX) {
            v->ntok++;
            t->ids[t->n_ids++] = x->id;
        }
        if (depth > t->max_depth) t->max_depth = (uint16_t)depth;
    }
    for (uint32_t d = depth; d > 0; d--) t->nodes[open[d]].end = nn;
    t->n_nodes = nn;
    {
        vnode *q = ds8b__malloc(DS8B_MEM_TOKENIZER, (nn ? nn : 1) * sizeof *q);
        if (!q) goto nomem;
        memcpy(q, t->nodes, nn * sizeof *q);
        ds8b__free(t->nodes);
        t->nodes = q;
    }
    ds8b__free(ent);
    ds8b__free(open);
    *out = t;
    return DS8B_OK;
nomem:
    ds8b__free(ent);
    ds8b__free(open);
    ds8b__vtrie_free(t);
    return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory building the vocabulary trie");
}

int ds8b__vtrie_get(struct ds8b__tokref *tr, const ds8b__vtrie **out, ds8b__err *e) {
    ds8b__vtrie *t = atomic_load_explicit(&tr->gtrie, memory_order_acquire);
    if (t) { *out = t; return 0; }
    ds8b__memscope *old = ds8b__memscope_enter(&tr->mem);
    int rc = vtrie_build(tr->tok, &t, e);
    ds8b__memscope_leave(old);
    if (rc) return rc;
    ds8b__vtrie *expect = NULL;
    if (!atomic_compare_exchange_strong(&tr->gtrie, &expect, t)) {
        old = ds8b__memscope_enter(&tr->mem);
        ds8b__vtrie_free(t);
        ds8b__memscope_leave(old);
        t = expect;
    }
    *out = t;
    return 0;
}

/* The walk: grammar state per depth; a dead byte skips its subtree. */
int ds8b__gm_mask(const ds8b__gmatch *m, const ds8b__vtrie *t, uint8_t *allow, int64_t n_vocab, ds8b__err *e) {
    memset(allow, 0, (size_t)n_vocab);
    if (ds8b__gm_dead(m) || !t->n_nodes) return 0;
    ds8b__gmatch *mm = (ds8b__gmatch *)m;
    if (!mm->scr && !(mm->scr = ds8b__gscr_new(e))) return DS8B_E_NOMEM;
    ds8b__gset *lv, *views;
    uint64_t *hs;
    const ds8b__gset **cur;
    uint32_t *pcp;
    uint8_t *pst;
    int rc = ds8b__gscr_levels(mm->scr, (size_t)t->max_depth + 1, &lv, &views, &hs, &cur, &pcp, &pst, e);
    if (!rc) rc = ds8b__gscr_cache_begin(mm->scr, m->g, e);
    if (rc) return rc;
    cur[0] = &m->set;
    hs[0] = ds8b__gset_hash(&m->set);
    pcp[0] = m->cp;
    pst[0] = m->need;
    pst[1] = m->nbytes;
    pst[2] = m->lead;
    const ds8b_grammar *g = m->g;
    uint32_t i = 0;
    while (i < t->n_nodes) {
        const vnode *v = &t->nodes[i];
        uint32_t d = v->depth;
        uint32_t cp = pcp[d - 1], got;
        uint8_t need = pst[3 * (d - 1)], nb = pst[3 * (d - 1) + 1], lead = pst[3 * (d - 1) + 2];
        int r = ds8b__utf8_byte(&cp, &need, &nb, &lead, v->byte, &got);
        if (r == 0) { i = v->end; continue; }
        if (r == 1) {
            uint32_t lo, hi;
            ds8b__utf8_partial_range(cp, need, nb, lead, &lo, &hi);
            if (!ds8b__gset_prefix_ok(g, cur[d - 1], lo, hi)) { i = v->end; continue; }
            cur[d] = cur[d - 1];
            hs[d] = hs[d - 1];
        } else {
            rc = ds8b__gset_step_cached(g, cur[d - 1], hs[d - 1], got, &views[d], &lv[d], &hs[d], mm->scr, e);
            if (rc) return rc;
            if (!views[d].n) { i = v->end; continue; }
            cur[d] = &views[d];
        }
        pcp[d] = cp;
        pst[3 * d] = need;
        pst[3 * d + 1] = nb;
        pst[3 * d + 2] = lead;
        for (uint32_t k = 0; k < v->ntok; k++) {
            int32_t id = t->ids[v->tok_first + k];
            if (id < n_vocab) allow[id] = 1;
        }
        i++;
    }
    return 0;
}

/* ================================================================== */
/* The session's grammar                                               */
/* ================================================================== */
void ds8b__gsess_free(ds8b__gsess *gs) {
    if (!gs) return;
    ds8b__grammar_unref(gs->g);
    ds8b__gm_free(&gs->m);
    ds8b__free(gs->allow);
    ds8b__free(gs);
}

static int gsess_ensure(ds8b_session *s, ds8b__err *e) {
    if (s->gram) return 0;
    ds8b__gsess *gs = ds8b__xmalloc(DS8B_MEM_SESSION, sizeof *gs, "grammar state", e);
    if (!gs) return DS8B_E_NOMEM;
    memset(gs, 0, sizeof *gs);
    s->gram = gs;
    return 0;
}

int ds8b__gsess_attach(ds8b_session *s, const ds8b_grammar *g, ds8b__err *e) {
    if (!g && !s->gram) return 0;
    int rc = gsess_ensure(s, e);
    if (rc) return rc;
    ds8b__gsess *gs = s->gram;
    if (g) ds8b__grammar_ref(g);
    ds8b__grammar_unref(gs->g);
    gs->g = g;
    gs->live = false;
    return 0;
}

int ds8b__gsess_begin(ds8b_session *s, bool may_continue, ds8b__err *e) {
    ds8b__gsess *gs = s->gram;
    if (!gs || !gs->g) return 0;
    if (may_continue && gs->live) return 0;
    gs->live = false;
    int rc = ds8b__gm_init(&gs->m, gs->g, e);
    if (rc) return rc;
    gs->live = true;
    return 0;
}

/* Filter callbacks for ds8b__sample_filtered. */
static int f_allows(void *ctx, int32_t id, bool *ok, ds8b__err *e) {
    ds8b_session *s = ctx;
    ds8b__gsess *gs = s->gram;
    const ds8b_tokenizer *tok = s->model->tok->tok;
    *ok = false;
    if (ds8b__tok_is_eog(tok, id)) {
        *ok = s->stop_at_eos && ds8b__gm_can_end(&gs->m);
        return 0;
    }
    const ds8b__vtrie *t;
    int rc = ds8b__vtrie_get(s->model->tok, &t, e);
    if (rc) return rc;
    if (id < 0 || id >= t->n_tok || t->tok_len[id] == UINT16_MAX) return 0;
    return ds8b__gm_allows(&gs->m, t->pool + t->tok_off[id], t->tok_len[id], ok, e);
}

static int f_mask(void *ctx, uint8_t *allow, ds8b__err *e) {
    ds8b_session *s = ctx;
    ds8b__gsess *gs = s->gram;
    const ds8b_tokenizer *tok = s->model->tok->tok;
    const ds8b__vtrie *t;
    int rc = ds8b__vtrie_get(s->model->tok, &t, e);
    if (rc) return rc;
    int64_t nv = s->model->hp.n_vocab;
    if ((rc = ds8b__gm_mask(&gs->m, t, allow, nv, e))) return rc;
    size_t ne = 0;
    const int32_t *eog = ds8b__tok_eog_ids(tok, &ne);
    uint8_t end_ok = s->stop_at_eos && ds8b__gm_can_end(&gs->m);
    for (size_t i = 0; i < ne; i++)
        if (eog[i] >= 0 && eog[i] < nv) allow[eog[i]] = end_ok;
    return 0;
}

int ds8b__gsess_sample(ds8b_session *s, int32_t *out, ds8b__err *e) {
    ds8b__gsess *gs = s->gram;
    int64_t nv = s->model->hp.n_vocab;
    if (!gs->allow) {
        gs->allow = ds8b__xmalloc(DS8B_MEM_SESSION, (size_t)nv, "grammar token mask", e);
        if (!gs->allow) return DS8B_E_NOMEM;
    }
    ds8b__tfilter f = {f_allows, f_mask, s, gs->allow, gs->force_full, 0, 0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = ds8b__sample_filtered(&s->sampler, s->sc.logits, s->tokens, s->n_past, &f, out, e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
    gs->n_fast += f.n_fast;
    gs->n_full += f.n_full;
    if (f.n_full) gs->ms_full += ms;
    else gs->ms_fast += ms;
    return rc;
}

int ds8b__gsess_accept(ds8b_session *s, int32_t id, ds8b__err *e) {
    ds8b__gsess *gs = s->gram;
    if (ds8b__tok_is_eog(s->model->tok->tok, id)) return 0;
    const ds8b__vtrie *t;
    int rc = ds8b__vtrie_get(s->model->tok, &t, e);
    if (rc) return rc;
    if (id < 0 || id >= t->n_tok || t->tok_len[id] == UINT16_MAX)
        return ds8b__seterr(e, DS8B_E_GRAMMAR, "token %d cannot be matched by the grammar", (int)id);
    rc = ds8b__gm_feed(&gs->m, t->pool + t->tok_off[id], t->tok_len[id], e);
    if (rc) return rc;
    if (ds8b__gm_dead(&gs->m))
        return ds8b__seterr(e, DS8B_E_GRAMMAR, "token %d does not continue the grammar", (int)id);
    return 0;
}

int ds8b__gsess_copy(ds8b_session *dst, const ds8b_session *src, ds8b__err *e) {
    if (!src->gram || !src->gram->g) return 0;
    int rc = ds8b__gsess_attach(dst, src->gram->g, e);
    if (rc) return rc;
    if (src->gram->live) {
        if ((rc = ds8b__gm_copy(&dst->gram->m, &src->gram->m, e))) return rc;
        dst->gram->live = true;
    }
    return 0;
}

/* ================================================================== */
/* Public API                                                          */
/* ================================================================== */
DS8B_API int ds8b_session_set_grammar(ds8b_session *s, const ds8b_grammar *g) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    if (ds8b__sess_busy(s, "ds8b_session_set_grammar", &e)) return ds8b__sess_fail(s, &e);
    if (g && g->magic != DS8B_GRAMMAR_MAGIC) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_session_set_grammar: invalid grammar handle");
        return ds8b__sess_fail(s, &e);
    }
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    int rc = ds8b__gsess_attach(s, g, &e);
    ds8b__memscope_leave(old);
    return rc ? ds8b__sess_fail(s, &e) : DS8B_OK;
}
