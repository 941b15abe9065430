/* session.h -- sessions: KV cache, scratch, sampler and generation state. */
#ifndef DS8B_SESSION_H
#define DS8B_SESSION_H

#include "internal.h"
#include "mem.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "threads/pool.h"
#include "session/params.h"

#include <stdatomic.h>

/* ------------------------------------------------------------------ */
/* KV cache                                                            */
/* ------------------------------------------------------------------ */
typedef struct ds8b__kv {
    int type;          /* DS8B_KV_F32 / F16 / Q8_0 */
    int64_t n_ctx;     /* positions held */
    int64_t n_layer;
    int64_t kvd;       /* n_head_kv * head_dim */
    size_t row_bytes;  /* bytes of one position's K (or V) row */
    uint8_t *k;        /* (n_layer, n_ctx, kvd) in type */
    uint8_t *v;        /* (n_layer, n_ctx, kvd) in type */
} ds8b__kv;

int ds8b__kv_init(ds8b__kv *kv, int type, int64_t n_layer, int64_t n_ctx, int64_t kvd, ds8b__err *e);
void ds8b__kv_free(ds8b__kv *kv);
/* Bytes the cache needs (for estimates). */
bool ds8b__kv_bytes(int type, int64_t n_layer, int64_t n_ctx, int64_t kvd, size_t *bytes);
/* Stores/loads one row of kvd floats at (layer, pos). */
void ds8b__kv_put(ds8b__kv *kv, uint8_t *base, int64_t layer, int64_t pos, const float *src);
void ds8b__kv_get(const ds8b__kv *kv, const uint8_t *base, int64_t layer, int64_t pos, float *dst);

/* ------------------------------------------------------------------ */
/* Scratch for one forward micro-batch                                 */
/* ------------------------------------------------------------------ */
typedef struct ds8b__scratch {
    int64_t n_batch;   /* rows the buffers hold */
    float *x;          /* (n_batch, n_embd) residual stream */
    float *xb;         /* (n_batch, n_embd) normed input */
    float *q;          /* (n_batch, n_head*head_dim) */
    float *k;          /* (n_batch, n_head_kv*head_dim) */
    float *v;          /* (n_batch, n_head_kv*head_dim) */
    float *att;        /* (n_batch, n_head*head_dim) attention output */
    float *o;          /* (n_batch, n_embd) projection output */
    float *gate;       /* (n_batch, n_ff) */
    float *up;         /* (n_batch, n_ff) */
    float *scores;     /* (n_threads, att_floats) per-thread attention scratch */
    size_t att_floats; /* ds8b__attn_scratch_floats() of the model */
    int32_t *att_tiles;/* (n_batch + 1) first row of each attention tile */
    int64_t n_scores;  /* the longest context served */
    float *kvrow;      /* (n_threads, 2*kvd) per-thread dequantized K/V rows */
    float *logits;     /* (n_vocab) last row */
    ds8b__workspace ws;
} ds8b__scratch;

/* Allocates the buffers for nb rows, n_threads threads and attention over
 * up to n_scores positions (zeroes sc first; free with ds8b__scratch_free
 * even on failure). */
int ds8b__scratch_alloc(ds8b__scratch *sc, const ds8b__hparams *hp, int64_t nb, int n_threads,
                        int64_t n_scores, ds8b__err *e);
void ds8b__scratch_free(ds8b__scratch *sc);

/* ------------------------------------------------------------------ */
/* Sampler                                                             */
/* ------------------------------------------------------------------ */
typedef struct ds8b__sampler_params {
    double temperature, top_p, min_p, repeat_penalty;
    int64_t top_k, repeat_last_n;
    uint64_t seed;
} ds8b__sampler_params;

typedef struct ds8b__sampler {
    ds8b__sampler_params p;
    uint64_t rng[2];   /* xoroshiro128+ state */
    int32_t *idx;      /* (n_vocab) candidate ids */
    float *prob;       /* (n_vocab) candidate values */
    int64_t n_vocab;
} ds8b__sampler;

int ds8b__sampler_init(ds8b__sampler *s, int64_t n_vocab, const ds8b__sampler_params *p, ds8b__err *e);
void ds8b__sampler_free(ds8b__sampler *s);
void ds8b__sampler_seed(ds8b__sampler *s, uint64_t seed);
/* Picks a token from logits (n_vocab); history is the recent context. */
int32_t ds8b__sample(ds8b__sampler *s, const float *logits, const int32_t *history, int64_t n_history);
double ds8b__rng_uniform(uint64_t st[2]);

/* ------------------------------------------------------------------ */
/* Session                                                             */
/* ------------------------------------------------------------------ */
#define DS8B_SESSION_MAGIC 0x5e55b0d1u

struct ds8b_session {
    uint32_t magic;
    ds8b_model *model;
    ds8b__memscope mem;
    ds8b__pool *pool;
    int n_threads;
    int64_t n_ctx, n_batch;
    int ctx_policy;
    int64_t n_sink;
    int64_t max_tokens;
    bool stop_at_eos;
    char *stops[DS8B_MAX_STOPS];
    int n_stops;

    ds8b__kv kv;
    ds8b__scratch sc;
    ds8b__sampler sampler;
    int32_t *tokens;   /* (n_ctx) tokens in the cache, in order */
    int64_t n_past;
    bool have_logits;

    _Atomic int cancel;      /* set by ds8b_session_cancel, consumed by the call that sees it */
    _Atomic int n_chats;     /* ds8b_chat handles bound to this session */
    int finish;              /* DS8B_FINISH_* of the last generation */
    struct ds8b_batch *batch; /* the batch generating on this session, or NULL */
    int64_t n_generated;      /* tokens of the current or last generation */
    bool in_gen;              /* inside ds8b_generate: its callback may run */
    bool free_deferred;       /* ds8b_session_free was called from that callback */
    struct ds8b__spec *spec;  /* speculative decoding (session/spec.h) */
    struct ds8b__gsess *gram; /* grammar attached by ds8b_session_set_grammar, or NULL (src/grammar) */
    struct ds8b__imat_acc *imat; /* set only while ds8b_imatrix_compute runs (model/imatrix.c) */
    ds8b__err err;
};

/* True for a live session handle. */
static inline bool ds8b__sess_ok(const ds8b_session *s) { return s && s->magic == DS8B_SESSION_MAGIC; }
/* Records an error on the session (when given) and on the thread; returns its code. */
static inline int ds8b__sess_fail(ds8b_session *s, ds8b__err *e) {
    if (s) s->err = *e;
    ds8b__set_last_error(e);
    return e->code;
}

/* Refuses (DS8B_E_MISUSE, returns true) calls that change a session
 * while it generates in a batch, or from inside its own stream callback. */
static inline bool ds8b__sess_busy(const ds8b_session *s, const char *fn, ds8b__err *e) {
    if (s->in_gen) {
        ds8b__seterr(e, DS8B_E_MISUSE,
                     "%s: called from inside the session's own stream callback; return nonzero from the "
                     "callback to stop instead", fn);
        return true;
    }
    if (!s->batch) return false;
    ds8b__seterr(e, DS8B_E_MISUSE, "%s: the session is generating in a batch; remove it from the batch first", fn);
    return true;
}

/* Runs the model over ids[0..n) at positions n_past.., appending to the
 * cache. logits_all: NULL or (n, n_vocab) out. The last row always goes to
 * s->sc.logits. Handles micro-batching, cancellation and context policy. */
int ds8b__session_eval(ds8b_session *s, const int32_t *ids, int64_t n, float *logits_all,
                       ds8b__err *e);
/* One forward pass of n <= n_batch tokens at position pos. want_logits:
 * 0 none, 1 last row into sc->logits, 2 every row into logits_all. */
int ds8b__forward(ds8b_session *s, const int32_t *ids, int64_t n, int64_t pos, int want_logits,
                  float *logits_all, ds8b__err *e);

/* One forward micro-batch over rows of tokens. Each row is appended to a
 * KV cache at a position: either one cache for all rows at positions
 * pos, pos+1, ... (a sequence's prompt), or a cache and position per row
 * (batched decoding of several sequences). */
typedef struct ds8b__fwd {
    const ds8b_model *m;
    ds8b__pool *pool;
    ds8b__scratch *sc;
    int64_t n;                 /* rows, <= sc->n_batch */
    const int32_t *ids;        /* (n) */
    ds8b__kv *kv;              /* the cache of every row ... */
    int64_t pos;               /* ... and the first row's position, or: */
    ds8b__kv *const *row_kv;   /* (n) each row's cache */
    const int64_t *row_pos;    /* (n) each row's position */
    const _Atomic int *cancel; /* checked after each layer; may be NULL */
    int flags;                 /* DS8B_MM_* for every matmul */
    struct ds8b__imat_acc *imat; /* activation statistics to gather (calibration), or NULL */
} ds8b__fwd;
int ds8b__forward_rows(const ds8b__fwd *f, int want_logits, float *logits_all, ds8b__err *e);
/* want_logits 3: no logits yet; the final normed hidden state of every row
 * stays in sc->xb, and ds8b__forward_logits computes the logits of rows
 * [r0, r0+nr) from it into logits_all (rows r0.. of it), each row bit for
 * bit as want_logits 2 (and a one-row step) computes it. Speculation
 * checks drafts in order and stops at the first rejected one: the rows
 * after it need no logits. sc->xb must be left alone in between. */
int ds8b__forward_logits(const ds8b__fwd *f, int64_t r0, int64_t nr, float *logits_all, ds8b__err *e);

/* Context policy SLIDE: drops old tokens (keeping the sinks) so that at
 * least `need` more fit. */
int ds8b__session_slide(ds8b_session *s, int64_t need, ds8b__err *e);
/* ds8b_generate without its checks and reentry guard: the caller has
 * checked s and set s->in_gen around the call. */
int ds8b__generate(ds8b_session *s, const char *prompt, size_t len, int flags, ds8b_stream_fn cb, void *user,
                   int64_t *n_generated, ds8b__err *e);
/* Internal generation flags (masked out of ds8b_generate's): stream the
 * tool-call markup of a template family on DS8B_CHANNEL_TOOL_CALL. */
#define DS8B__GEN_TOOLS_QWEN     (1 << 24) /* <tool_call> ... </tool_call> */
#define DS8B__GEN_TOOLS_DEEPSEEK (1 << 25) /* <｜tool▁calls▁begin｜> ... <｜tool▁calls▁end｜> */
#define DS8B__GEN_INTERNAL       (DS8B__GEN_TOOLS_QWEN | DS8B__GEN_TOOLS_DEEPSEEK)
/* Streams text as if s had generated it (stop strings, the reasoning and
 * tool-call channels as flags ask), step bytes at a time (0: at once, as
 * tokens arrive otherwise), without evaluating anything. */
int ds8b__gen_feed(ds8b_session *s, const char *text, size_t len, size_t step, int flags, ds8b_stream_fn cb,
                   void *user, ds8b__err *e);

/* Generation as a step machine (generate.c). create binds a state to s
 * and the stream callback; start tokenizes and evaluates the prompt; next
 * samples one token, streams its text and checks the stop conditions:
 * *done with s->finish set, or a token for the caller to evaluate; end
 * flushes held-back text. outcome records the finish reason of an error
 * code (and consumes a cancel request). */
typedef struct ds8b__gen ds8b__gen;
int ds8b__gen_create(ds8b_session *s, ds8b_stream_fn cb, void *user, int flags, ds8b__gen **out,
                     ds8b__err *e);
void ds8b__gen_free(ds8b__gen *g);
int ds8b__gen_start(ds8b__gen *g, const char *prompt, size_t len, int flags, ds8b__err *e);
int ds8b__gen_next(ds8b__gen *g, int32_t *token, bool *done, ds8b__err *e);
int ds8b__gen_end(ds8b__gen *g, ds8b__err *e);
int64_t ds8b__gen_count(const ds8b__gen *g);
ds8b_session *ds8b__gen_session(const ds8b__gen *g);
void ds8b__gen_outcome(ds8b_session *s, int rc);

/* Takes s out of batch b (s is being freed): its generation ends as
 * cancelled. */
/* Takes s out of b as its session is freed. Returns true when b is inside
 * ds8b_batch_step (the call came from a stream callback): the step then
 * removes s and frees it itself once the callback has returned. */
bool ds8b__batch_forget(struct ds8b_batch *b, ds8b_session *s);

/* Moves count cached positions from `from` down to `to`, re-rotating keys. */
int ds8b__kv_shift(ds8b_session *s, int64_t from, int64_t to, int64_t count, ds8b__err *e);
/* Model fingerprint for saved state: shapes, types and sampled weight bytes. */
uint64_t ds8b__model_fingerprint(const ds8b_model *m);

#endif
