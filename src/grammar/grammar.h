/*
 * grammar.h -- GBNF grammars (internal API): the compiler, the byte-level
 * matcher, the vocabulary trie and grammar-constrained sampling.
 *
 * A compiled grammar (struct ds8b_grammar, public opaque handle) is
 * immutable after ds8b__grammar_compile returns, so any number of sessions
 * and threads may read it at once. It counts the sessions attached to it
 * (refs); ds8b_grammar_free refuses while refs > 0.
 *
 * The matcher (ds8b__gmatch) holds the set of parse stacks reached after
 * the bytes fed so far, plus a partial UTF-8 code point when the bytes end
 * inside one. It is a plain value: copy with ds8b__gm_copy, serialise with
 * ds8b__gm_save / ds8b__gm_load. Work per byte is bounded: more than
 * DS8B__GM_MAX_STACKS stacks or a stack deeper than DS8B__GM_MAX_DEPTH
 * gives DS8B_E_LIMIT instead of running away on an ambiguous grammar.
 */
#ifndef DS8B_GRAMMAR_H
#define DS8B_GRAMMAR_H

#include "internal.h"

/* ---- Limits on grammars (input) ---------------------------------- */
#define DS8B__GRAMMAR_MAX_BYTES   (1u << 20)   /* GBNF text */
#define DS8B__GRAMMAR_MAX_RULES   65536u       /* rules incl. generated ones */
#define DS8B__GRAMMAR_MAX_ELEMS   (1u << 21)   /* elements after expansion */
#define DS8B__GRAMMAR_MAX_NEST    128          /* nested groups */
#define DS8B__GRAMMAR_MAX_REPEAT  1000         /* n in {m,n} */
/* ---- Limits on matching ------------------------------------------ */
#define DS8B__GM_MAX_STACKS 4096
#define DS8B__GM_MAX_DEPTH  1024

/* Compiles GBNF text (len bytes, need not be NUL-terminated). root NULL
 * means "root". Errors: DS8B_E_GRAMMAR with "line L, column C: ..." for
 * syntax and semantic errors (undefined rule, missing root, left recursion),
 * DS8B_E_LIMIT past a limit above, DS8B_E_NOMEM. */
int ds8b__grammar_compile(const char *gbnf, size_t len, const char *root, ds8b_grammar **out,
                          ds8b__err *e);
void ds8b__grammar_destroy(ds8b_grammar *g);
/* A hash of the compiled grammar (rules and root), stored with saved
 * session states to detect a state restored under another grammar. */
uint64_t ds8b__grammar_fingerprint(const ds8b_grammar *g);
/* Reference counting by sessions (set_grammar). */
void ds8b__grammar_ref(const ds8b_grammar *g);
void ds8b__grammar_unref(const ds8b_grammar *g);

/* ---- Matcher ------------------------------------------------------ */
/* A set of parse stacks, flat: [n, e_0 .. e_{n-1}] per stack, e_{n-1} the
 * top (always a character element; n == 0 is the completed parse). */
typedef struct ds8b__gset {
    uint32_t *buf;
    size_t len, cap;      /* uint32 words used / allocated */
    uint32_t n;           /* stacks */
} ds8b__gset;

struct ds8b__gscr;
typedef struct ds8b__gmatch {
    const ds8b_grammar *g;
    ds8b__gset set;       /* n == 0: the input was rejected (dead) */
    uint32_t cp;          /* bits of a partial code point */
    uint8_t need;         /* continuation bytes it still needs (0: none pending) */
    uint8_t nbytes;       /* bytes of the partial sequence seen so far */
    uint8_t lead;         /* its first byte */
    struct ds8b__gscr *scr; /* scratch, owned, never copied or saved */
} ds8b__gmatch;

/* Sets m to the start of g (stacks of root's alternatives). m may be
 * zeroed or already initialised (its buffer is reused). */
int ds8b__gm_init(ds8b__gmatch *m, const ds8b_grammar *g, ds8b__err *e);
void ds8b__gm_free(ds8b__gmatch *m);
int ds8b__gm_copy(ds8b__gmatch *dst, const ds8b__gmatch *src, ds8b__err *e);
/* Feeds n bytes. When the bytes cannot continue any sentence, m becomes
 * dead (no stacks) and DS8B_OK is still returned; errors are limits and
 * memory only. */
int ds8b__gm_feed(ds8b__gmatch *m, const uint8_t *p, size_t n, ds8b__err *e);
static inline bool ds8b__gm_dead(const ds8b__gmatch *m) { return m->set.n == 0; }
/* The bytes so far form a complete sentence. */
bool ds8b__gm_can_end(const ds8b__gmatch *m);
/* Complete and nothing can follow: the only stack is the empty one. */
bool ds8b__gm_must_end(const ds8b__gmatch *m);
/* Serialised size and (de)serialisation (little-endian words). load checks
 * every stack against m's grammar: DS8B_E_FORMAT when corrupt. */
size_t ds8b__gm_saved_size(const ds8b__gmatch *m);
void ds8b__gm_save(const ds8b__gmatch *m, uint8_t *out);
int ds8b__gm_load(ds8b__gmatch *m, const ds8b_grammar *g, const uint8_t *p, size_t n, ds8b__err *e);

/* ---- Vocabulary trie: token byte strings, built once per tokenizer --- */
typedef struct ds8b__vtrie ds8b__vtrie;
/* The trie of tok (not special tokens), built on first use and kept in
 * the model's shared tokenizer holder (thread-safe, accounted to it). */
struct ds8b__tokref;
int ds8b__vtrie_get(struct ds8b__tokref *tr, const ds8b__vtrie **out, ds8b__err *e);
void ds8b__vtrie_free(ds8b__vtrie *t);

/* Allowed tokens after state m: sets allow[id] to 1 or 0 for every id of
 * the trie (special tokens 0; the caller decides end-of-generation). */
int ds8b__gm_mask(const ds8b__gmatch *m, const ds8b__vtrie *t, uint8_t *allow, int64_t n_vocab,
                  ds8b__err *e);
/* Does the token byte string p[0..n) keep m alive? (m unchanged) */
int ds8b__gm_allows(const ds8b__gmatch *m, const uint8_t *p, size_t n, bool *ok, ds8b__err *e);

/* ---- A session's grammar (gsample.c) ------------------------------ */
typedef struct ds8b__gsess {
    const ds8b_grammar *g;  /* attached (holds a reference), or NULL */
    ds8b__gmatch m;         /* state of the current generation */
    bool live;              /* m belongs to a generation not yet ended by EOS or the grammar */
    uint8_t *allow;         /* (n_vocab) mask scratch */
    int force_full;         /* tests: always compute the full mask */
    int64_t n_fast, n_full; /* tokens sampled by each path */
    double ms_fast, ms_full; /* time spent sampling on each path */
} ds8b__gsess;
struct ds8b_session;
void ds8b__gsess_free(ds8b__gsess *gs);
int ds8b__gsess_attach(struct ds8b_session *s, const ds8b_grammar *g, ds8b__err *e);
/* At the start of a generation: restart from the root unless may_continue
 * and the state is live. */
int ds8b__gsess_begin(struct ds8b_session *s, bool may_continue, ds8b__err *e);
/* Samples from s's logits over the tokens the grammar allows. */
int ds8b__gsess_sample(struct ds8b_session *s, int32_t *out, ds8b__err *e);
/* Advances the grammar by token id (EOG: no change). */
int ds8b__gsess_accept(struct ds8b_session *s, int32_t id, ds8b__err *e);
/* dst gets src's grammar and state (fork). */
int ds8b__gsess_copy(struct ds8b_session *dst, const struct ds8b_session *src, ds8b__err *e);

/* ---- Sampling over allowed tokens (sampler.c) ---------------------- */
typedef struct ds8b__tfilter {
    int (*allows)(void *ctx, int32_t id, bool *ok, ds8b__err *e);
    int (*mask)(void *ctx, uint8_t *allow, ds8b__err *e); /* allow[0..n_vocab) */
    void *ctx;
    uint8_t *allow;         /* (n_vocab) */
    int force_full;
    int64_t n_fast, n_full;
} ds8b__tfilter;
struct ds8b__sampler;
/* Exactly the session sampler over the allowed tokens only; see sampler.c. */
int ds8b__sample_filtered(struct ds8b__sampler *s, const float *logits, const int32_t *history,
                          int64_t n_history, ds8b__tfilter *f, int32_t *out, ds8b__err *e);

/* ---- Generation hooks (generate.c), for speculative decoding too ----
 * With the session's grammar active in generation g: *ok = token t may be
 * sampled now (always true when no grammar is active); accept advances the
 * grammar by t (t must be allowed). */
struct ds8b__gen;
int ds8b__gen_grammar_allows(struct ds8b__gen *g, int32_t t, bool *ok, ds8b__err *e);
int ds8b__gen_grammar_accept(struct ds8b__gen *g, int32_t t, ds8b__err *e);

#endif /* DS8B_GRAMMAR_H */
