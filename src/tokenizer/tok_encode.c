/*
 * tok_encode.c -- encoding (added tokens, normalization, pre-tokenization,
 * BPE, post-processing), decoding and streaming detokenization.
 *
 * Everything mutable lives in a per-call `enc` scratch struct, so one
 * tokenizer serves any number of threads at once.
 */
#include "tokenizer/tok_internal.h"

#include <utf8proc.h>

int ds8b__tok_normalize(const ds8b_tokenizer *t, const char *s, size_t n, char **out, size_t *out_len,
                        ds8b__err *e);

/* ================================================================== */
/* Growable vectors                                                    */
/* ================================================================== */
typedef struct span { size_t off, len; } span;
typedef struct mspan { size_t off, len; bool match; } mspan;

#define VEC(T) struct { T *v; size_t n, cap; }
typedef VEC(int32_t) idvec;
typedef VEC(span) spanvec;
typedef VEC(mspan) mspanvec;

static bool vec_grow(void **v, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 16, bytes;
    while (nc < need) { if (nc > SIZE_MAX / 4) return false; nc *= 2; }
    if (!ds8b__mul_ok(nc, elem, &bytes)) return false;
    void *p = ds8b__realloc(DS8B_MEM_OTHER, *v, bytes);
    if (!p) return false;
    *v = p;
    *cap = nc;
    return true;
}
#define VPUSH(vec, x) (vec_grow((void **)&(vec)->v, &(vec)->cap, (vec)->n + 1, sizeof *(vec)->v) ? ((vec)->v[(vec)->n++] = (x), true) : false)

/* ================================================================== */
/* Per-call scratch                                                    */
/* ================================================================== */
typedef struct heap_ent { uint32_t rank, pos; int32_t new_id; } heap_ent;

typedef struct enc {
    const ds8b_tokenizer *t;
    ds8b__err *e;
    int flags;
    idvec ids;
    pcre2_match_data *md;
    /* BPE scratch */
    int32_t *sid, *sprev, *snext;
    heap_ent *heap;
    size_t bpe_cap, heap_cap;
    char *blbuf;
    size_t blcap;
} enc;

static int enc_nomem(enc *c) { return ds8b__seterr(c->e, DS8B_E_NOMEM, "%s: out of memory while encoding", c->t->name); }

static void enc_free(enc *c) {
    ds8b__free(c->ids.v);
    if (c->md) pcre2_match_data_free(c->md);
    ds8b__free(c->sid);
    ds8b__free(c->sprev);
    ds8b__free(c->snext);
    ds8b__free(c->heap);
    ds8b__free(c->blbuf);
}

/* ================================================================== */
/* UTF-8 repair                                                        */
/* ================================================================== */
static const char FFFD[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Length of the repaired text (invalid subsequences -> U+FFFD), or n when
 * the text is valid. *valid tells which. */
static size_t utf8_repaired_len(const unsigned char *s, size_t n, bool *valid) {
    size_t i = 0, out = 0;
    *valid = true;
    while (i < n) {
        if (s[i] < 0x80) { i++; out++; continue; }
        uint32_t cp;
        size_t bad;
        int l = ds8b__utf8_scan(s + i, n - i, &cp, &bad);
        if (l > 0) { i += (size_t)l; out += (size_t)l; }
        else { *valid = false; i += bad; out += 3; }
    }
    return out;
}

static void utf8_repair(const unsigned char *s, size_t n, char *o) {
    size_t i = 0, k = 0;
    while (i < n) {
        uint32_t cp;
        size_t bad;
        int l = s[i] < 0x80 ? 1 : ds8b__utf8_scan(s + i, n - i, &cp, &bad);
        if (l > 0) { memcpy(o + k, s + i, (size_t)l); i += (size_t)l; k += (size_t)l; }
        else { memcpy(o + k, FFFD, 3); k += 3; i += bad; }
    }
}

/* ================================================================== */
/* Normalization                                                       */
/* ================================================================== */
int ds8b__tok_normalize(const ds8b_tokenizer *t, const char *s, size_t n, char **out, size_t *out_len,
                        ds8b__err *e) {
    char *cur = ds8b__malloc(DS8B_MEM_OTHER, n + 1);
    if (!cur) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory normalizing %zu bytes", t->name, n);
    memcpy(cur, s, n);
    cur[n] = 0;
    size_t len = n;
    bool ascii = true;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    for (int k = 0; k < t->n_norm && !ascii; k++) {
        int opts = t->norm_opts[k];
        utf8proc_ssize_t cnt = utf8proc_decompose((const utf8proc_uint8_t *)cur, (utf8proc_ssize_t)len, NULL, 0,
                                                  (utf8proc_option_t)opts);
        if (cnt < 0) continue; /* cannot happen on repaired text; keep it as is */
        size_t bytes;
        if (!ds8b__mul_ok((size_t)cnt + 1, sizeof(utf8proc_int32_t), &bytes)) {
            ds8b__free(cur);
            return ds8b__seterr(e, DS8B_E_LIMIT, "%s: text too long to normalize", t->name);
        }
        utf8proc_int32_t *buf = ds8b__malloc(DS8B_MEM_OTHER, bytes);
        if (!buf) { ds8b__free(cur); return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory normalizing", t->name); }
        utf8proc_ssize_t got = utf8proc_decompose((const utf8proc_uint8_t *)cur, (utf8proc_ssize_t)len, buf, cnt,
                                                  (utf8proc_option_t)opts);
        if (got < 0 || got > cnt) { ds8b__free(buf); continue; }
        utf8proc_ssize_t bl = utf8proc_reencode(buf, got, (utf8proc_option_t)opts);
        if (bl < 0) { ds8b__free(buf); continue; }
        ds8b__free(cur);
        cur = (char *)buf; /* reencode wrote UTF-8 in place, NUL-terminated */
        len = (size_t)bl;
    }
    *out = cur;
    *out_len = len;
    return DS8B_OK;
}

/* ================================================================== */
/* BPE                                                                 */
/* ================================================================== */
static bool heap_less(const heap_ent *a, const heap_ent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}
static void heap_push(heap_ent *h, size_t *n, heap_ent x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}
static heap_ent heap_pop(heap_ent *h, size_t *n) {
    heap_ent top = h[0];
    heap_ent x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m) break;
        size_t r = l + 1, c = (r < m && heap_less(&h[r], &h[l])) ? r : l;
        if (!heap_less(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = x;
    return top;
}

static int bpe_scratch(enc *c, size_t n) {
    if (n > c->bpe_cap) {
        size_t nc = n < 256 ? 256 : n, hc;
        if (!ds8b__mul_ok(nc, 3, &hc)) return enc_nomem(c);
        ds8b__free(c->sid); ds8b__free(c->sprev); ds8b__free(c->snext); ds8b__free(c->heap);
        c->sid = ds8b__calloc(DS8B_MEM_OTHER, nc, sizeof(int32_t));
        c->sprev = ds8b__calloc(DS8B_MEM_OTHER, nc, sizeof(int32_t));
        c->snext = ds8b__calloc(DS8B_MEM_OTHER, nc, sizeof(int32_t));
        c->heap = ds8b__calloc(DS8B_MEM_OTHER, hc, sizeof(heap_ent));
        c->bpe_cap = c->sid && c->sprev && c->snext && c->heap ? nc : 0;
        c->heap_cap = hc;
        if (!c->bpe_cap) return enc_nomem(c);
    }
    return DS8B_OK;
}

/* Byte-level string of a piece into c->blbuf. */
static int byte_level(enc *c, const unsigned char *p, size_t n, size_t *out_len) {
    size_t need;
    if (!ds8b__mul_ok(n, 2, &need) || !vec_grow((void **)&c->blbuf, &c->blcap, need + 1, 1)) return enc_nomem(c);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t cp = ds8b__bl_byte2cp[p[i]];
        if (cp < 0x80) c->blbuf[k++] = (char)cp;
        else { c->blbuf[k++] = (char)(0xC0 | (cp >> 6)); c->blbuf[k++] = (char)(0x80 | (cp & 0x3F)); }
    }
    *out_len = k;
    return DS8B_OK;
}

static int bpe(enc *c, const unsigned char *p, size_t n) {
    const ds8b_tokenizer *t = c->t;
    if (n == 0) return DS8B_OK;
    int rc;
    if (t->ignore_merges) {
        /* ignore_merges: a pre-token found whole in the vocab is one token */
        size_t bl = 0;
        if ((rc = byte_level(c, p, n, &bl))) return rc;
        int32_t id = ds8b__tok_vocab_lookup(t, c->blbuf, bl);
        if (id >= 0) return VPUSH(&c->ids, id) ? DS8B_OK : enc_nomem(c);
    }
    if ((rc = bpe_scratch(c, n))) return rc;
    int32_t *sid = c->sid, *prev = c->sprev, *next = c->snext;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[p[i]];
        if (id < 0) id = t->unk_id;
        if (id < 0) continue; /* HF drops a character that is neither in the vocab nor unk */
        sid[m] = id;
        prev[m] = (int32_t)m - 1;
        next[m] = (int32_t)m + 1;
        m++;
    }
    if (m == 0) return DS8B_OK;
    next[m - 1] = -1;
    heap_ent *h = c->heap;
    size_t hn = 0;
    for (size_t i = 0; i + 1 < m; i++) {
        int32_t nw;
        int32_t r = ds8b__tok_merge_lookup(t, sid[i], sid[i + 1], &nw);
        if (r >= 0) heap_push(h, &hn, (heap_ent){(uint32_t)r, (uint32_t)i, nw});
    }
    while (hn) {
        heap_ent top = heap_pop(h, &hn);
        uint32_t i = top.pos;
        if (sid[i] < 0) continue;          /* merged away */
        int32_t j = next[i];
        if (j < 0) continue;
        int32_t nw;
        if (ds8b__tok_merge_lookup(t, sid[i], sid[j], &nw) < 0 || nw != top.new_id) continue;
        sid[i] = top.new_id;
        sid[j] = -1;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = (int32_t)i;
        if (hn + 2 > c->heap_cap) return ds8b__seterr(c->e, DS8B_E_INTERNAL, "%s: BPE queue overflow", t->name);
        if (prev[i] >= 0) {
            int32_t r = ds8b__tok_merge_lookup(t, sid[prev[i]], sid[i], &nw);
            if (r >= 0) heap_push(h, &hn, (heap_ent){(uint32_t)r, (uint32_t)prev[i], nw});
        }
        if (next[i] >= 0) {
            int32_t r = ds8b__tok_merge_lookup(t, sid[i], sid[next[i]], &nw);
            if (r >= 0) heap_push(h, &hn, (heap_ent){(uint32_t)r, i, nw});
        }
    }
    for (int32_t i = 0; i >= 0; i = next[i])
        if (!VPUSH(&c->ids, sid[i])) return enc_nomem(c);
    return DS8B_OK;
}

/* ================================================================== */
/* Pre-tokenization                                                    */
/* ================================================================== */
/* Splits s[0..n) into matched / unmatched segments. */
static int regex_segments(enc *c, pcre2_code *re, const char *s, size_t n, mspanvec *out) {
    out->n = 0;
    if (!c->md) {
        c->md = pcre2_match_data_create(4, c->t->gctx);
        if (!c->md) return enc_nomem(c);
    }
    size_t pos = 0, last = 0;
    while (pos <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, c->md, NULL);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
            rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, c->md, NULL);
        if (rc < 0) break; /* no match, or a resource limit: the rest is one gap */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (ms < pos || me < ms || me > n) break;
        if (me == ms) { /* empty match: step over one character */
            if (ms >= n) break;
            size_t k = ms + 1;
            while (k < n && ((unsigned char)s[k] & 0xC0) == 0x80) k++;
            pos = k;
            continue;
        }
        if (ms > last && !VPUSH(out, ((mspan){last, ms - last, false}))) return enc_nomem(c);
        if (!VPUSH(out, ((mspan){ms, me - ms, true}))) return enc_nomem(c);
        last = pos = me;
    }
    if (n > last && !VPUSH(out, ((mspan){last, n - last, false}))) return enc_nomem(c);
    return DS8B_OK;
}

/* Applies a split behaviour to the segments of a piece starting at base. */
static int apply_behavior(enc *c, mspanvec *seg, int behavior, bool invert, size_t base, spanvec *out) {
    if (invert) for (size_t i = 0; i < seg->n; i++) seg->v[i].match = !seg->v[i].match;
    mspan *v = seg->v;
    size_t n = seg->n;
    switch (behavior) {
    case DS8B__SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            if (!VPUSH(out, ((span){base + v[i].off, v[i].len}))) return enc_nomem(c);
        return DS8B_OK;
    case DS8B__SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!v[i].match && !VPUSH(out, ((span){base + v[i].off, v[i].len}))) return enc_nomem(c);
        return DS8B_OK;
    case DS8B__SPLIT_CONTIGUOUS: {
        size_t start = out->n;
        bool prev_match = false;
        for (size_t i = 0; i < n; i++) {
            if (v[i].match && prev_match && out->n > start) out->v[out->n - 1].len += v[i].len;
            else if (!VPUSH(out, ((span){base + v[i].off, v[i].len}))) return enc_nomem(c);
            prev_match = v[i].match;
        }
        return DS8B_OK;
    }
    case DS8B__SPLIT_MERGED_PREV: {
        size_t start = out->n;
        bool prev_match = false;
        for (size_t i = 0; i < n; i++) {
            if (v[i].match && !prev_match && out->n > start) out->v[out->n - 1].len += v[i].len;
            else if (!VPUSH(out, ((span){base + v[i].off, v[i].len}))) return enc_nomem(c);
            prev_match = v[i].match;
        }
        return DS8B_OK;
    }
    case DS8B__SPLIT_MERGED_NEXT: {
        /* walk backwards, then reverse what was added */
        size_t start = out->n;
        bool prev_match = false;
        for (size_t k = n; k-- > 0;) {
            if (v[k].match && !prev_match && out->n > start) {
                span *l = &out->v[out->n - 1];
                l->len += v[k].len;
                l->off = base + v[k].off;
            } else if (!VPUSH(out, ((span){base + v[k].off, v[k].len}))) return enc_nomem(c);
            prev_match = v[k].match;
        }
        for (size_t a = start, b = out->n; a + 1 < b; a++, b--) {
            span tmp = out->v[a];
            out->v[a] = out->v[b - 1];
            out->v[b - 1] = tmp;
        }
        return DS8B_OK;
    }
    }
    return DS8B_OK;
}

/* Pre-tokenizes buf[0..n) and runs BPE on every piece. */
static int pretok_and_bpe(enc *c, const char *text, size_t n) {
    const ds8b_tokenizer *t = c->t;
    spanvec a = {0}, b = {0};
    mspanvec seg = {0};
    char *owned = NULL;
    const char *buf = text;
    int rc = DS8B_OK;
    if (!VPUSH(&a, ((span){0, n}))) return enc_nomem(c);
    for (int k = 0; k < t->n_pre && rc == DS8B_OK; k++) {
        const ds8b__tok_pre *p = &t->pre[k];
        if (p->kind == DS8B__PRE_BYTELEVEL && p->add_prefix_space) {
            /* rebuild the buffer with a space before each piece that lacks one */
            size_t total = 0, add = 0;
            for (size_t i = 0; i < a.n; i++) { total += a.v[i].len; if (a.v[i].len == 0 || buf[a.v[i].off] != ' ') add++; }
            char *nb = ds8b__malloc(DS8B_MEM_OTHER, total + add + 1);
            if (!nb) { rc = enc_nomem(c); break; }
            size_t o = 0;
            for (size_t i = 0; i < a.n; i++) {
                size_t st = o;
                if (a.v[i].len == 0 || buf[a.v[i].off] != ' ') nb[o++] = ' ';
                memcpy(nb + o, buf + a.v[i].off, a.v[i].len);
                o += a.v[i].len;
                a.v[i].off = st;
                a.v[i].len = o - st;
            }
            ds8b__free(owned);
            owned = nb;
            buf = nb;
        }
        pcre2_code *re = p->kind == DS8B__PRE_SPLIT ? p->re : (p->use_regex ? p->re : NULL);
        if (!re) continue;
        int beh = p->kind == DS8B__PRE_SPLIT ? p->behavior : DS8B__SPLIT_ISOLATED;
        bool inv = p->kind == DS8B__PRE_SPLIT && p->invert;
        b.n = 0;
        for (size_t i = 0; i < a.n && rc == DS8B_OK; i++) {
            if (a.v[i].len == 0) continue;
            rc = regex_segments(c, re, buf + a.v[i].off, a.v[i].len, &seg);
            if (!rc) rc = apply_behavior(c, &seg, beh, inv, a.v[i].off, &b);
        }
        spanvec tmp = a; a = b; b = tmp;
    }
    for (size_t i = 0; i < a.n && rc == DS8B_OK; i++)
        rc = bpe(c, (const unsigned char *)buf + a.v[i].off, a.v[i].len);
    ds8b__free(a.v);
    ds8b__free(b.v);
    ds8b__free(seg.v);
    ds8b__free(owned);
    return rc;
}

/* ================================================================== */
/* Added tokens                                                        */
/* ================================================================== */
typedef struct amatch { size_t start, stop; int32_t id; } amatch;
typedef VEC(amatch) amatchvec;

static size_t utf8_prev(const char *s, size_t i) {
    while (i > 0 && ((unsigned char)s[--i] & 0xC0) == 0x80) {}
    return i;
}
static uint32_t cp_at(const char *s, size_t n, size_t i, size_t *len) {
    uint32_t cp = 0;
    size_t bad;
    int l = ds8b__utf8_scan((const unsigned char *)s + i, n - i, &cp, &bad);
    *len = l > 0 ? (size_t)l : 1;
    return l > 0 ? cp : 0xFFFD;
}
static bool is_ws(uint32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}
static bool is_word(uint32_t cp) {
    if (cp == '_') return true;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* Leftmost-longest non-overlapping matches of the trie in s, then the
 * per-token rules, as HF's added vocabulary does. */
static int find_added(enc *c, const ds8b__tok_trie *tr, const char *s, size_t n, amatchvec *out) {
    const ds8b_tokenizer *t = c->t;
    out->n = 0;
    if (tr->n == 0) return DS8B_OK;
    size_t pos = 0, last_stop = 0;
    while (pos < n) {
        uint8_t b0 = (uint8_t)s[pos];
        if (!(tr->first_byte[b0 >> 3] & (1u << (b0 & 7)))) { pos++; continue; }
        int32_t node = 0, best = -1;
        size_t best_end = 0;
        for (size_t i = pos; i < n; i++) {
            uint8_t b = (uint8_t)s[i];
            int32_t ch = tr->nodes[node].first;
            while (ch >= 0 && tr->nodes[ch].byte != b) ch = tr->nodes[ch].next;
            if (ch < 0) break;
            node = ch;
            if (tr->nodes[node].added >= 0) { best = tr->nodes[node].added; best_end = i + 1; }
        }
        if (best < 0) { pos++; continue; }
        size_t start = pos, stop = best_end;
        pos = best_end;
        int32_t id = t->added[best].id;
        uint8_t at = t->attr[id];
        if ((at & DS8B__TA_SPECIAL) && (c->flags & DS8B_TOKENIZE_NO_PARSE_SPECIAL)) continue;
        if (at & DS8B__TA_SINGLE_WORD) {
            size_t l;
            bool start_ok = start == 0 || !is_word(cp_at(s, n, utf8_prev(s, start), &l));
            bool stop_ok = stop == n || !is_word(cp_at(s, n, stop, &l));
            if (!start_ok || !stop_ok) continue;
        }
        if (at & DS8B__TA_LSTRIP) {
            size_t ns = start;
            while (ns > last_stop) {
                size_t pv = utf8_prev(s, ns), l;
                if (pv < last_stop || !is_ws(cp_at(s, n, pv, &l))) break;
                ns = pv;
            }
            start = ns;
        }
        if (at & DS8B__TA_RSTRIP) {
            size_t l;
            while (stop < n && is_ws(cp_at(s, n, stop, &l))) stop += l;
            if (stop > pos) pos = stop;
        }
        if (!VPUSH(out, ((amatch){start, stop, id}))) return enc_nomem(c);
        last_stop = stop;
    }
    return DS8B_OK;
}

/* Second stage: normalize a gap, match normalized added tokens, pre-tokenize the rest. */
static int encode_gap(enc *c, const char *s, size_t n) {
    const ds8b_tokenizer *t = c->t;
    if (n == 0) return DS8B_OK;
    char *norm = NULL;
    size_t nl = n;
    const char *p = s;
    int rc;
    if (t->n_norm) {
        if ((rc = ds8b__tok_normalize(t, s, n, &norm, &nl, c->e))) return rc;
        p = norm;
    }
    amatchvec m = {0};
    rc = find_added(c, &t->trie_norm, p, nl, &m);
    size_t last = 0;
    for (size_t i = 0; i < m.n && rc == DS8B_OK; i++) {
        if (m.v[i].start > last) rc = pretok_and_bpe(c, p + last, m.v[i].start - last);
        if (!rc && !VPUSH(&c->ids, m.v[i].id)) rc = enc_nomem(c);
        last = m.v[i].stop;
    }
    if (!rc && nl > last) rc = pretok_and_bpe(c, p + last, nl - last);
    ds8b__free(m.v);
    ds8b__free(norm);
    return rc;
}

int ds8b__tok_encode(const ds8b_tokenizer *t, const char *text, size_t len, int flags, int32_t **ids,
                     size_t *n, ds8b__err *e) {
    if (!ids || !n) return ds8b__seterr(e, DS8B_E_INVALID, "tokenizer: NULL output");
    *ids = NULL;
    *n = 0;
    if (!t || t->magic != DS8B__TOK_MAGIC) return ds8b__seterr(e, DS8B_E_MISUSE, "tokenizer: invalid handle");
    if (!text && len) return ds8b__seterr(e, DS8B_E_INVALID, "%s: NULL text", t->name);
    enc c = {0};
    c.t = t;
    c.e = e;
    c.flags = flags;
    bool valid;
    const char *s = text ? text : "";
    char *fixed = NULL;
    size_t fl = utf8_repaired_len((const unsigned char *)s, len, &valid);
    if (!valid) {
        fixed = ds8b__malloc(DS8B_MEM_OTHER, fl + 1);
        if (!fixed) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory repairing UTF-8", t->name);
        utf8_repair((const unsigned char *)s, len, fixed);
        fixed[fl] = 0;
        s = fixed;
        len = fl;
    }
    int rc = DS8B_OK;
    if ((flags & DS8B_TOKENIZE_ADD_SPECIAL) && t->n_post_prefix) {
        for (uint32_t i = 0; i < t->n_post_prefix && !rc; i++)
            if (!VPUSH(&c.ids, t->post_prefix[i])) rc = enc_nomem(&c);
    }
    amatchvec m = {0};
    if (!rc) rc = find_added(&c, &t->trie_raw, s, len, &m);
    size_t last = 0;
    for (size_t i = 0; i < m.n && rc == DS8B_OK; i++) {
        if (m.v[i].start > last) rc = encode_gap(&c, s + last, m.v[i].start - last);
        if (!rc && !VPUSH(&c.ids, m.v[i].id)) rc = enc_nomem(&c);
        last = m.v[i].stop;
    }
    if (!rc && len > last) rc = encode_gap(&c, s + last, len - last);
    ds8b__free(m.v);
    if (!rc && (flags & DS8B_TOKENIZE_ADD_SPECIAL)) {
        for (uint32_t i = 0; i < t->n_post_suffix && !rc; i++)
            if (!VPUSH(&c.ids, t->post_suffix[i])) rc = enc_nomem(&c);
    }
    ds8b__free(fixed);
    if (rc) { enc_free(&c); return rc; }
    *ids = c.ids.v;
    *n = c.ids.n;
    c.ids.v = NULL;
    enc_free(&c);
    return DS8B_OK;
}

/* ================================================================== */
/* Decoding                                                            */
/* ================================================================== */
static bool id_ok(const ds8b_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->attr[id] & (DS8B__TA_MODEL | DS8B__TA_ADDED));
}

int ds8b__tok_decode(const ds8b_tokenizer *t, const int32_t *ids, size_t n, int flags, char **out,
                     size_t *len, ds8b__err *e) {
    if (!out || !len) return ds8b__seterr(e, DS8B_E_INVALID, "tokenizer: NULL output");
    *out = NULL;
    *len = 0;
    if (!t || t->magic != DS8B__TOK_MAGIC) return ds8b__seterr(e, DS8B_E_MISUSE, "tokenizer: invalid handle");
    if (!ids && n) return ds8b__seterr(e, DS8B_E_INVALID, "%s: NULL ids", t->name);
    bool skip = (flags & DS8B_DETOKENIZE_SKIP_SPECIAL) != 0;
    size_t total = 0, cnt = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (!id_ok(t, id) || (skip && (t->attr[id] & DS8B__TA_SPECIAL))) continue;
        if (!ds8b__add_ok(total, t->raw_len[id], &total)) return ds8b__seterr(e, DS8B_E_LIMIT, "%s: decoded text too long", t->name);
        cnt++;
    }
    bool spaces = t->decoder == 0;
    if (spaces && !ds8b__add_ok(total, cnt, &total)) return ds8b__seterr(e, DS8B_E_LIMIT, "%s: decoded text too long", t->name);
    char *raw = ds8b__malloc(DS8B_MEM_OTHER, total + 1);
    if (!raw) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory decoding", t->name);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (!id_ok(t, id) || (skip && (t->attr[id] & DS8B__TA_SPECIAL))) continue;
        if (spaces && k) raw[k++] = ' ';
        memcpy(raw + k, t->arena + t->raw_off[id], t->raw_len[id]);
        k += t->raw_len[id];
    }
    bool valid;
    size_t fl = utf8_repaired_len((const unsigned char *)raw, k, &valid);
    if (valid) {
        raw[k] = 0;
        *out = raw;
        *len = k;
        return DS8B_OK;
    }
    char *fixed = ds8b__malloc(DS8B_MEM_OTHER, fl + 1);
    if (!fixed) { ds8b__free(raw); return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory decoding", t->name); }
    utf8_repair((const unsigned char *)raw, k, fixed);
    fixed[fl] = 0;
    ds8b__free(raw);
    *out = fixed;
    *len = fl;
    return DS8B_OK;
}

/* ================================================================== */
/* Streaming detokenizer                                               */
/* ================================================================== */
/* Emits the complete characters of pend+tok, holding a trailing valid
 * prefix. Counts only when o is NULL. Returns output length. */
static size_t stream_run(const unsigned char *pend, size_t np, const unsigned char *tok, size_t nt,
                         char *o, unsigned char *hold, int *nhold) {
    /* Work on a window: the held bytes plus up to 3 bytes of the token
     * cover every sequence that crosses the seam. */
    unsigned char seam[16];
    size_t k = 0, i = 0, tot = np + nt;
    #define BYTE_AT(x) ((x) < np ? pend[(x)] : tok[(x) - np])
    while (i < tot) {
        const unsigned char *ptr;
        size_t avail;
        if (i < np) {
            size_t w = 0;
            for (size_t x = i; x < tot && w < 8; x++) seam[w++] = BYTE_AT(x);
            ptr = seam;
            avail = w;
        } else {
            ptr = tok + (i - np);
            avail = tot - i;
        }
        uint32_t cp;
        size_t bad;
        int l = ptr[0] < 0x80 ? 1 : ds8b__utf8_scan(ptr, avail, &cp, &bad);
        if (l > 0) {
            if (o) memcpy(o + k, ptr, (size_t)l);
            k += (size_t)l;
            i += (size_t)l;
        } else if (l < 0) { /* incomplete at the end: hold */
            if (hold) {
                for (size_t x = 0; x < bad; x++) hold[x] = BYTE_AT(i + x);
                *nhold = (int)bad;
            }
            return k;
        } else {
            if (o) memcpy(o + k, FFFD, 3);
            k += 3;
            i += bad;
        }
    }
    #undef BYTE_AT
    if (hold) *nhold = 0;
    return k;
}

int ds8b__detok_push(const ds8b_tokenizer *t, ds8b__detok_stream *s, int32_t id, int flags, char *out,
                     size_t cap, size_t *len) {
    if (len) *len = 0;
    if (!t || t->magic != DS8B__TOK_MAGIC || !s || !len) return DS8B_E_MISUSE;
    if (s->npend < 0 || s->npend > 3) s->npend = 0;
    if (!id_ok(t, id)) return DS8B_E_INVALID;
    if ((flags & DS8B_DETOKENIZE_SKIP_SPECIAL) && (t->attr[id] & DS8B__TA_SPECIAL)) return DS8B_OK;
    const unsigned char *tok = (const unsigned char *)t->arena + t->raw_off[id];
    size_t nt = t->raw_len[id];
    size_t need = stream_run(s->pend, (size_t)s->npend, tok, nt, NULL, NULL, NULL);
    *len = need;
    if (need > cap || (!out && need)) return DS8B_E_BUFFER;
    unsigned char pend[8];
    memcpy(pend, s->pend, sizeof pend);
    int np;
    stream_run(pend, (size_t)s->npend, tok, nt, out, s->pend, &np);
    s->npend = np;
    return DS8B_OK;
}

int ds8b__detok_flush(ds8b__detok_stream *s, char *out, size_t cap, size_t *len) {
    if (len) *len = 0;
    if (!s || !len) return DS8B_E_MISUSE;
    if (s->npend <= 0) { s->npend = 0; return DS8B_OK; }
    *len = 3;
    if (cap < 3 || !out) return DS8B_E_BUFFER;
    memcpy(out, FFFD, 3);
    s->npend = 0;
    return DS8B_OK;
}
