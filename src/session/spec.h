/* spec.h -- speculative decoding: drafters, the verification pass and the
 * cost model that decides when it pays (spec.c). */
#ifndef DS8B_SPEC_H
#define DS8B_SPEC_H

#include "session/session.h"

/* Speculation state of one session (s->spec), created with the session. */
typedef struct ds8b__spec {
    int mode;           /* DS8B_SPEC_OFF / AUTO / ON */
    int max_draft;      /* longest draft (DS8B_PARAM_SPEC_MAX_DRAFT) */
    int ngram;          /* longest n-gram the lookup drafter matches (DS8B_PARAM_SPEC_NGRAM) */

    /* host-supplied draft: the text expected after the prompt of the next
     * generation, tokenized; consumed by that generation */
    int32_t *host;      /* (n_host) */
    int64_t n_host;
    int64_t host_pos;   /* next host token expected while generation follows it */
    bool host_live;     /* generation has followed host[0..host_pos) so far */
    int64_t gen_base;   /* n_past when the current generation's first token was sampled */

    /* draft model: its own session over the same tokens */
    ds8b_model *dm;
    ds8b_session *ds;

    /* the verification pass: (cap, n_vocab) logits and (cap) ids */
    float *logits;
    int32_t *ids;
    int64_t cap;

    /* cost model (decayed counts and moving averages) */
    double acc_a, acc_f;  /* accepted draft tokens / rejections seen */
    double t1;            /* seconds of a one-position step (0: not measured yet) */
    double beta;          /* extra cost of each extra position, as a fraction of t1 */
#define DS8B__SPEC_KCOST 64
    double kcost[DS8B__SPEC_KCOST]; /* measured cost of a pass with k drafts, in steps (0: none yet) */
    double gamma;         /* cost of drafting one token, as a fraction of t1 */
    int64_t plain_run;    /* plain steps since the last pass (auto: probing) */
    int32_t shadow;       /* auto, backed off: first token of the draft not verified, or -1 */

    /* statistics since the session was created */
    int64_t drafted, accepted, passes;
} ds8b__spec;

/* Creates s->spec from the session parameters (mode, max draft, n-gram). */
int ds8b__spec_init(ds8b_session *s, const ds8b_params *p, ds8b__err *e);
/* Frees s->spec and everything it holds (the draft session). NULL-safe. */
void ds8b__spec_free(ds8b_session *s);
/* Live parameter change of keys DS8B_PARAM_SPEC*; value already checked. */
void ds8b__spec_set_param(ds8b_session *s, int key, int64_t value);
/* True when generation on s may speculate (mode, sampler settings). */
bool ds8b__spec_enabled(const ds8b_session *s);
/* The generation loop with speculation, after ds8b__gen_start: like the
 * plain loop of generate.c (sample, stream, evaluate) but verifying drafted
 * tokens k+1 positions at a time. Output, cache, logits, sampler state and
 * saved bytes are exactly those of the plain loop. */
int ds8b__spec_generate(ds8b__gen *g, ds8b__err *e);
/* The pieces of that loop, also used by ds8b_batch (batch.c), whose
 * members draft and check on their own and share the pass:
 *   begin  when a generation starts (after ds8b__gen_start);
 *   keep   once for every token t that generation keeps and will evaluate
 *          (sampled and streamed by ds8b__gen_next), before drafting;
 *   draft  the drafts that follow t into out[0..*k) (*k 0: a plain step),
 *          k+1 <= cap; shared: the pass is shared with other sessions,
 *          which decide themselves whether it pays (*gain: this session's
 *          estimate, tokens per plain-step cost);
 *   unused the drafts were not verified after all (auto keeps measuring);
 *   check  after a pass evaluated ids[0..k] (t and the drafts) at
 *          positions base..base+k, appending them to s->tokens, with the
 *          rows' logits in R (or computed into it as needed): samples each position
 *          in order as plain decoding would and rolls back the rejected
 *          ones. *done: generation ended. *have_next: the token sampled at
 *          the first rejected position is in *next (kept, not evaluated);
 *          otherwise every draft was accepted and the last row's logits
 *          are current (the next token is still to be sampled). */
typedef struct ds8b__spec_rows {
    const ds8b__fwd *f; /* the pass, when it left the logits to the check (want_logits 3) */
    float *logits;      /* the pass's logits, (rows of the pass) x n_vocab */
    int64_t first;      /* this session's first row in the pass */
    int64_t have;       /* rows from `first` on that have their logits */
    double sec;         /* wall time the check spent computing logits */
} ds8b__spec_rows;
void ds8b__spec_begin(ds8b_session *s);
void ds8b__spec_keep(ds8b_session *s, int32_t t);
int ds8b__spec_draft(ds8b__gen *g, int32_t t, int64_t cap, bool shared, int32_t *out, int64_t *k, double *gain,
                     ds8b__err *e);
/* The session's measured per-token acceptance (decayed), 0..1. */
double ds8b__spec_accept_p(const ds8b_session *s);
void ds8b__spec_unused(ds8b_session *s, const int32_t *drafts, int64_t k);
int ds8b__spec_check(ds8b__gen *g, ds8b__spec_rows *R, int64_t base, const int32_t *ids, int64_t k,
                     int32_t *next, bool *have_next, bool *done, ds8b__err *e);
/* Called when a generation ends (clears the host draft). */
void ds8b__spec_gen_done(ds8b_session *s);

/* Benchmark: median seconds of one verification pass of `rows` positions
 * (rows == 1: a decode step) at position `pos` on s, over reps runs: wall
 * time in *sec, process CPU time in *cpu (may be NULL). */
int ds8b__spec_bench_pass(ds8b_session *s, int64_t rows, int64_t pos, int reps, double *sec, double *cpu,
                          ds8b__err *e);

#endif
