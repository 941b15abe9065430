/* gram_impl.h -- the compiled grammar's layout, shared by the compiler,
 * the matcher and the sampler glue (internal). */
#ifndef DS8B_GRAM_IMPL_H
#define DS8B_GRAM_IMPL_H

#include "grammar/grammar.h"

#include <stdatomic.h>

enum {
    G_END = 0,   /* end of a rule's last alternative */
    G_ALT = 1,   /* end of an alternative, another follows */
    G_REF = 2,   /* a = rule id */
    G_CHAR = 3,  /* one code point in ranges[a .. a+b) (pairs lo, hi; sorted, disjoint) */
    G_NCHAR = 4  /* one code point outside them (b == 0: any character) */
};

typedef struct ds8b__gel {
    uint8_t type;
    uint32_t a, b;
} ds8b__gel;

#define DS8B_GRAMMAR_MAGIC 0x6a7a3b01u

struct ds8b_grammar {
    uint32_t magic;
    _Atomic int refs;        /* sessions with this grammar attached */
    uint32_t n_rules, n_el, n_alts, n_ranges, root;
    ds8b__gel *el;           /* (n_el) every rule's elements, END-terminated */
    uint32_t *alt_first;     /* (n_rules + 1) rule i's alternatives: alts[alt_first[i] .. alt_first[i+1]) */
    uint32_t *alts;          /* (n_alts) element index where each alternative starts */
    uint32_t *ranges;        /* (2 * n_ranges) */
    uint64_t fp;
};

static inline bool ds8b__gel_is_end(const ds8b__gel *x) { return x->type == G_END || x->type == G_ALT; }

/* ---- matcher internals shared with the vocabulary walk (gmatch.c) ---- */
typedef struct ds8b__gscr ds8b__gscr;
ds8b__gscr *ds8b__gscr_new(ds8b__err *e);
void ds8b__gscr_free(ds8b__gscr *s);
/* out = the start set of g / in advanced by code point cp (out != in). */
int ds8b__gset_start(const ds8b_grammar *g, ds8b__gset *out, ds8b__gscr *sc, ds8b__err *e);
int ds8b__gset_step(const ds8b_grammar *g, const ds8b__gset *in, uint32_t cp, ds8b__gset *out, ds8b__gscr *sc,
                    ds8b__err *e);
/* Some stack can take a code point in [lo, hi]. */
bool ds8b__gset_prefix_ok(const ds8b_grammar *g, const ds8b__gset *in, uint32_t lo, uint32_t hi);
bool ds8b__gset_has_empty(const ds8b__gset *in);
uint64_t ds8b__gset_hash(const ds8b__gset *s);
/* Transition cache for the vocabulary walk (gmatch.c). */
int ds8b__gscr_cache_begin(ds8b__gscr *sc, const ds8b_grammar *g, ds8b__err *e);
int ds8b__gset_step_cached(const ds8b_grammar *g, const ds8b__gset *in, uint64_t in_hash, uint32_t cp,
                           ds8b__gset *view, ds8b__gset *spare, uint64_t *out_hash, ds8b__gscr *sc, ds8b__err *e);
/* Per-depth buffers for the vocabulary walk (kept in the scratch). */
int ds8b__gscr_levels(ds8b__gscr *sc, size_t n, ds8b__gset **lv, ds8b__gset **views, uint64_t **hs,
                      const ds8b__gset ***cur, uint32_t **cp, uint8_t **st, ds8b__err *e);
/* UTF-8 decoding one byte at a time: 0 rejected, 1 pending, 2 *out complete. */
int ds8b__utf8_byte(uint32_t *cp, uint8_t *need, uint8_t *nbytes, uint8_t *lead, uint8_t b, uint32_t *out);
void ds8b__utf8_partial_range(uint32_t cp, uint8_t need, uint8_t nbytes, uint8_t lead, uint32_t *lo, uint32_t *hi);

#endif
