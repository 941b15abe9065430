/*
 * spec.c -- speculative decoding.
 *
 * Each step of plain decoding samples a token from the current logits,
 * streams it and evaluates it (one position: every weight read once for
 * one token). With speculation, a drafter guesses the k tokens that follow
 * the sampled one; one forward pass evaluates the sampled token and the k
 * guesses (k+1 positions, weights read once), and the guesses are then
 * checked in order by sampling each position exactly as plain decoding
 * would:
 *
 *   t  = sample(logits)                       (plain decoding does this too)
 *   d1..dk = draft(context + t)
 *   rows R0..Rk = forward([t, d1..dk])         one pass, DS8B_MM_ROWWISE
 *   for i = 1..k: u = sample(R(i-1)); if u != di: u is the next token, stop
 *   all accepted: the next token is sampled from Rk
 *
 * Exactness. Every position is sampled by ds8b__gen_next with the
 * session's sampler, in order, with the token history and the cache length
 * of that position, so each sample consumes the very RNG draw that plain
 * decoding would use at that position (the sampler takes one draw per
 * token, none when greedy). The pass runs with DS8B_MM_ROWWISE, whose
 * contract is that each row is computed exactly as a one-row call computes
 * it (the batched decode tiles that ds8b_batch uses), and attention,
 * norms and RoPE are per row, so row i holds bit for bit the logits that a
 * one-token ds8b_eval of that position gives. A rejected position is
 * rolled back by cache length alone: n_past excludes it, the cache rows
 * beyond n_past are never read or saved, and s->sc.logits holds the row of
 * the last accepted position. The output, the cache, the logits, the RNG
 * and ds8b_session_save bytes are therefore those of plain decoding.
 *
 * Drafters: the host's text (ds8b_session_set_draft), a draft model
 * (ds8b_session_set_draft_model, greedy over its own session) and prompt
 * lookup (the most recent earlier occurrence of the context's last n
 * tokens, n = DS8B_PARAM_SPEC_NGRAM down to 2, in the host text and in the
 * session's tokens).
 *
 * When it pays. Tokens per pass with per-token acceptance p and k drafts
 * are E(k) = 1 + p + ... + p^k; the pass costs C(k) + gamma k plain steps,
 * where C(k) is the measured cost of a pass with k drafts (the last
 * measurements of that size, else 1 + beta k with beta the measured extra
 * cost per position: passes are not linear in k, the decode tiles take
 * rows in groups) and gamma the measured cost of drafting a token. p, C,
 * beta and gamma are learned online (decayed counts and moving averages of
 * wall time). auto
 * speculates with the k that maximises E(k) / cost(k) when that beats a
 * plain step by 3%; on: always, with that k. While auto decodes plainly,
 * the lookup draft's first token is still compared with the token that
 * plain decoding then samples (free), so acceptance keeps being measured,
 * and a pass is tried now and then to re-measure its cost.
 */
#include "session/spec.h"

#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <time.h>

enum { DRAFT_NONE, DRAFT_LOOKUP, DRAFT_MODEL };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ================================================================== */
/* Lifetime and parameters                                             */
/* ================================================================== */
int ds8b__spec_init(ds8b_session *s, const ds8b_params *p, ds8b__err *e) {
    ds8b__spec *sp = ds8b__xmalloc(DS8B_MEM_SESSION, sizeof *sp, "speculation state", e);
    if (!sp) return DS8B_E_NOMEM;
    memset(sp, 0, sizeof *sp);
    sp->mode = (int)p->i[DS8B_PARAM_SPEC];
    sp->max_draft = (int)p->i[DS8B_PARAM_SPEC_MAX_DRAFT];
    sp->ngram = (int)p->i[DS8B_PARAM_SPEC_NGRAM];
    sp->acc_a = 1.0; /* prior: one accepted, one rejected */
    sp->acc_f = 1.0;
    sp->beta = 0.3;
    sp->gamma = 0.5;
    sp->shadow = -1;
    s->spec = sp;
    return DS8B_OK;
}

static void drop_draft_model(ds8b__spec *sp) {
    if (sp->ds) ds8b_session_free(sp->ds);
    sp->ds = NULL;
    sp->dm = NULL;
}

void ds8b__spec_free(ds8b_session *s) {
    ds8b__spec *sp = s->spec;
    if (!sp) return;
    drop_draft_model(sp);
    ds8b__free(sp->host);
    ds8b__free(sp->logits);
    ds8b__free(sp->ids);
    ds8b__free(sp);
    s->spec = NULL;
}

void ds8b__spec_set_param(ds8b_session *s, int key, int64_t value) {
    ds8b__spec *sp = s->spec;
    if (key == DS8B_PARAM_SPEC) sp->mode = (int)value;
    else if (key == DS8B_PARAM_SPEC_MAX_DRAFT) sp->max_draft = (int)value;
    else if (key == DS8B_PARAM_SPEC_NGRAM) sp->ngram = (int)value;
}

bool ds8b__spec_enabled(const ds8b_session *s) {
    /* every sampler setting is seed-exact (one draw per sampled position,
     * taken in order), so only the mode decides */
    return s->spec && s->spec->mode != DS8B_SPEC_OFF && s->spec->max_draft > 0 && s->n_batch > 1;
}

void ds8b__spec_gen_done(ds8b_session *s) {
    ds8b__spec *sp = s->spec;
    if (!sp) return;
    /* the pass buffers live for one generation, so a session's memory
     * between calls is what it was before (they are small next to a pass) */
    ds8b__free(sp->logits);
    ds8b__free(sp->ids);
    sp->logits = NULL;
    sp->ids = NULL;
    sp->cap = 0;
    ds8b__free(sp->host);
    sp->host = NULL;
    sp->n_host = 0;
    sp->host_pos = 0;
    sp->host_live = false;
}

/* ================================================================== */
/* Drafters                                                            */
/* ================================================================== */
/* The context: the session's tokens followed by the pending token. */
typedef struct ctxv {
    const int32_t *tok;
    int64_t n_past;
    int32_t last;
} ctxv;
static inline int32_t cx(const ctxv *c, int64_t i) { return i < c->n_past ? c->tok[i] : c->last; }

/* Host draft: follows the generated tokens while they match the text. */
static void host_advance(ds8b__spec *sp, int32_t t) {
    if (!sp->host_live) return;
    if (sp->host_pos < sp->n_host && sp->host[sp->host_pos] == t) sp->host_pos++;
    else sp->host_live = false;
}

/* Prompt lookup in corpus[0..nc) for the last n tokens of the context
 * (len N), n from ngram down to 2; the most recent match wins. self: the
 * corpus is the context itself (a match must end before its last token).
 * Writes up to k following tokens; returns how many. */
static int64_t lookup(const ctxv *c, int64_t N, const int32_t *corpus, int64_t nc, bool self, int ngram,
                      int64_t k, int32_t *out) {
    for (int64_t n = ngram; n >= 2; n--) {
        if (N < n + (self ? 1 : 0)) continue;
        int64_t end_max = self ? N - 2 : nc - 2; /* index of a match's last token; a token must follow */
        for (int64_t j = end_max; j >= n - 1; j--) {
            int64_t q = 0;
            while (q < n) {
                int32_t a = self ? cx(c, j - q) : corpus[j - q];
                if (a != cx(c, N - 1 - q)) break;
                q++;
            }
            if (q < n) continue;
            int64_t m = 0, lim = self ? N : nc;
            while (m < k && j + 1 + m < lim) {
                out[m] = self ? cx(c, j + 1 + m) : corpus[j + 1 + m];
                m++;
            }
            return m;
        }
    }
    return 0;
}

static int64_t draft_lookup(ds8b_session *s, const ctxv *c, int64_t k, int32_t *out) {
    ds8b__spec *sp = s->spec;
    int64_t N = c->n_past + 1;
    if (sp->host_live && sp->host_pos < sp->n_host) {
        int64_t m = 0;
        while (m < k && sp->host_pos + m < sp->n_host) {
            out[m] = sp->host[sp->host_pos + m];
            m++;
        }
        return m;
    }
    int64_t m = 0;
    if (sp->n_host) m = lookup(c, N, sp->host, sp->n_host, false, sp->ngram, k, out);
    if (!m) m = lookup(c, N, NULL, 0, true, sp->ngram, k, out);
    return m;
}

static int32_t argmax(const float *v, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int32_t)best;
}

/* Draft model: brings its session to the context (reusing the common
 * prefix), then decodes k tokens greedily. Returns how many it drafted
 * (0 when it cannot: no room). */
static int draft_model(ds8b_session *s, const ctxv *c, int64_t k, int32_t *out, int64_t *n_out, ds8b__err *e) {
    ds8b_session *ds = s->spec->ds;
    int64_t N = c->n_past + 1;
    *n_out = 0;
    if (N + k > ds->n_ctx) return DS8B_OK;
    int64_t common = 0;
    while (common < ds->n_past && common < N && ds->tokens[common] == cx(c, common)) common++;
    int rc = DS8B_OK;
    ds8b__memscope *old = ds8b__memscope_enter(&ds->mem);
    if (common == N && ds->n_past == N && ds->have_logits) {
        /* already there */
    } else {
        if (common >= N) common = N - 1; /* re-evaluate the last token for its logits */
        ds->n_past = common;
        ds->have_logits = false;
        int64_t need = N - common;
        int32_t *ids = ds8b__xmalloc(DS8B_MEM_SCRATCH, (size_t)need * sizeof *ids, "draft context", e);
        if (!ids) rc = DS8B_E_NOMEM;
        for (int64_t i = 0; !rc && i < need; i++) ids[i] = cx(c, common + i);
        if (!rc) rc = ds8b__session_eval(ds, ids, need, NULL, e);
        ds8b__free(ids);
    }
    int64_t vocab = ds->model->hp.n_vocab;
    for (int64_t i = 0; !rc && i < k; i++) {
        out[i] = argmax(ds->sc.logits, vocab);
        *n_out = i + 1;
        if (i + 1 < k) rc = ds8b__session_eval(ds, &out[i], 1, NULL, e);
    }
    ds8b__memscope_leave(old);
    if (rc) {
        /* the draft session is only a helper: start it over next time */
        ds->n_past = 0;
        ds->have_logits = false;
        *n_out = 0;
        if (rc == DS8B_E_NOMEM) return rc;
        return DS8B_OK;
    }
    return DS8B_OK;
}

/* ================================================================== */
/* Cost model                                                          */
/* ================================================================== */
static double accept_p(const ds8b__spec *sp) { return sp->acc_a / (sp->acc_a + sp->acc_f); }
double ds8b__spec_accept_p(const ds8b_session *s) { return accept_p(s->spec); }

static void observe(ds8b__spec *sp, int64_t accepted, bool rejected) {
    sp->acc_a = 0.9 * sp->acc_a + (double)accepted;
    sp->acc_f = 0.9 * sp->acc_f + (rejected ? 1.0 : 0.0);
    if (sp->acc_a + sp->acc_f < 1e-3) sp->acc_f = 1e-3;
}

static double ewma(double old, double obs) { return old > 0 ? 0.8 * old + 0.2 * obs : obs; }

/* The k in 1..kmax with the best tokens per unit cost, and that gain
 * (tokens per plain-step cost; plain decoding is 1). */
static int64_t best_k(const ds8b__spec *sp, int64_t kmax, bool with_model, double *gain) {
    double p = accept_p(sp), draft = with_model ? sp->gamma : 0.0;
    double best = 0.0, tokens = 1.0, pk = 1.0;
    int64_t bk = 0;
    for (int64_t k = 1; k <= kmax; k++) {
        pk *= p;
        tokens += pk;
        /* a pass of this size measured recently, else the linear model: the
         * cost is not linear in k (the decode tiles take rows in groups) */
        double pass = k < DS8B__SPEC_KCOST && sp->kcost[k] > 0 ? sp->kcost[k] : 1.0 + sp->beta * (double)k;
        double g = tokens / (pass + draft * (double)k);
        if (g > best) { best = g; bk = k; }
    }
    *gain = best;
    return bk;
}

/* ================================================================== */
/* The verification pass                                               */
/* ================================================================== */
static int reserve(ds8b_session *s, int64_t rows, ds8b__err *e) {
    ds8b__spec *sp = s->spec;
    if (sp->cap >= rows) return DS8B_OK;
    size_t lb;
    if (!ds8b__mul_ok((size_t)rows * sizeof(float), (size_t)s->model->hp.n_vocab, &lb))
        return ds8b__seterr(e, DS8B_E_LIMIT, "speculation logits size overflows");
    float *l = ds8b__xmalloc(DS8B_MEM_SCRATCH, lb, "speculation logits", e);
    int32_t *ids = ds8b__xmalloc(DS8B_MEM_SCRATCH, (size_t)rows * sizeof *ids, "speculation rows", e);
    if (!l || !ids) {
        ds8b__free(l);
        ds8b__free(ids);
        return DS8B_E_NOMEM;
    }
    ds8b__free(sp->logits);
    ds8b__free(sp->ids);
    sp->logits = l;
    sp->ids = ids;
    sp->cap = rows;
    return DS8B_OK;
}

/* Evaluates ids[0..n) at n_past.. with every row computed as a one-row
 * step computes it. lazy: no logits yet (they are computed as the check
 * needs them, from the pass f), else every row's logits into sp->logits.
 * On success the tokens are appended (n_past advances by n); on failure
 * n_past is unchanged and there are no logits, as after a failed
 * ds8b__session_eval. */
static int verify_pass(ds8b_session *s, const int32_t *ids, int64_t n, bool lazy, ds8b__fwd *f,
                       ds8b__err *e) {
    s->have_logits = false;
    if (atomic_load(&s->cancel))
        return ds8b__seterr(e, DS8B_E_CANCELLED, "cancelled before a speculation pass");
    memset(f, 0, sizeof *f);
    f->m = s->model;
    f->pool = s->pool;
    f->sc = &s->sc;
    f->n = n;
    f->ids = ids;
    f->kv = &s->kv;
    f->pos = s->n_past;
    f->cancel = &s->cancel;
    f->flags = DS8B_MM_ROWWISE;
    int rc = ds8b__forward_rows(f, lazy ? 3 : 2, s->spec->logits, e);
    if (rc) return rc;
    memcpy(s->tokens + s->n_past, ids, (size_t)n * sizeof(int32_t));
    s->n_past += n;
    return DS8B_OK;
}


/* ================================================================== */
/* Drafting and checking, shared by the loop below and ds8b_batch      */
/* ================================================================== */
void ds8b__spec_begin(ds8b_session *s) {
    ds8b__spec *sp = s->spec;
    sp->host_pos = 0;
    sp->host_live = sp->n_host > 0;
    sp->shadow = -1;
    sp->plain_run = 0;
}

void ds8b__spec_keep(ds8b_session *s, int32_t t) {
    ds8b__spec *sp = s->spec;
    host_advance(sp, t);
    if (sp->shadow >= 0) { /* auto, backed off: was the draft right? */
        observe(sp, sp->shadow == t, sp->shadow != t);
        sp->shadow = -1;
    }
}

void ds8b__spec_unused(ds8b_session *s, const int32_t *drafts, int64_t k) {
    if (k > 0) s->spec->shadow = drafts[0];
}

int ds8b__spec_draft(ds8b__gen *g, int32_t t, int64_t cap, bool shared, int32_t *out, int64_t *k_out,
                     double *gain_out, ds8b__err *e) {
    ds8b_session *s = ds8b__gen_session(g);
    ds8b__spec *sp = s->spec;
    *k_out = 0;
    if (gain_out) *gain_out = 0;
    /* how many drafts could be used */
    int64_t kmax = cap - 1;
    if (kmax > sp->max_draft) kmax = sp->max_draft;
    int64_t room = s->n_ctx - s->n_past - 1;
    if (kmax > room) kmax = room;
    if (s->max_tokens > 0) {
        int64_t left = s->max_tokens - ds8b__gen_count(g);
        if (kmax > left) kmax = left;
    }
    if (kmax <= 0) return DS8B_OK;
    ctxv c = {s->tokens, s->n_past, t};
    double gain = 0;
    int64_t k = 0;
    bool live_host = sp->host_live && sp->host_pos < sp->n_host;
    if (sp->ds && !live_host) {
        k = best_k(sp, kmax, true, &gain);
        bool pays = sp->mode == DS8B_SPEC_ON || gain > 1.03 || shared;
        if (!pays && ++sp->plain_run >= 32) pays = true, k = k < 2 ? (kmax < 2 ? kmax : 2) : k; /* probe */
        if (!pays) k = 0;
        if (k > 0) {
            double t0 = now_s();
            int64_t got = 0;
            int rc = draft_model(s, &c, k, out, &got, e);
            if (rc) return rc;
            if (got > 0 && sp->t1 > 0) sp->gamma = ewma(sp->gamma, (now_s() - t0) / ((double)got * sp->t1));
            k = got;
        }
    } else {
        int64_t avail = draft_lookup(s, &c, kmax, out);
        k = best_k(sp, avail, false, &gain);
        bool pays = sp->mode == DS8B_SPEC_ON || gain > 1.03 || shared;
        if (!pays && avail > 0 && ++sp->plain_run >= 64) pays = true; /* re-measure the pass */
        if (!pays) {
            if (avail > 0) sp->shadow = out[0];
            k = 0;
        }
    }
    /* Grammars: every verified position is sampled by ds8b__gen_next,
     * which samples under the grammar and advances it with the token
     * actually kept, so a draft token is accepted only if the grammar
     * allows it and grammar state never needs a rollback. A draft whose
     * first token the grammar refuses cannot be accepted: no pass. */
    if (k > 0) {
        bool ok = true;
        ds8b__err ge = {0}; /* a failed check only costs the shortcut */
        if (ds8b__gen_grammar_allows(g, out[0], &ok, &ge) == DS8B_OK && !ok) k = 0;
    }
    *k_out = k;
    if (gain_out) *gain_out = gain;
    return DS8B_OK;
}

/* Makes row i of a pass current: the cache holds the pass's first i+1
 * tokens, the logits are row i's. */
static void take_row(ds8b_session *s, const float *rows, int64_t base, int64_t i) {
    int64_t vocab = s->model->hp.n_vocab;
    memcpy(s->sc.logits, rows + (size_t)i * (size_t)vocab, (size_t)vocab * sizeof(float));
    s->n_past = base + i + 1;
    s->have_logits = true;
}

/* Row i of R has its logits (computing them with the next rows, four at
 * a time, when the pass left them to the check). */
static int need_row(ds8b__spec_rows *R, int64_t i, int64_t rows, ds8b__err *e) {
    if (i < R->have) return DS8B_OK;
    int64_t nr = rows - R->have < 4 ? rows - R->have : 4;
    if (nr < i + 1 - R->have) nr = i + 1 - R->have;
    double t0 = now_s();
    int rc = ds8b__forward_logits(R->f, R->first + R->have, nr, R->logits, e);
    R->sec += now_s() - t0;
    if (!rc) R->have += nr;
    return rc;
}

int ds8b__spec_check(ds8b__gen *g, ds8b__spec_rows *R, int64_t base, const int32_t *ids, int64_t k,
                     int32_t *next, bool *have_next, bool *done, ds8b__err *e) {
    ds8b_session *s = ds8b__gen_session(g);
    ds8b__spec *sp = s->spec;
    *have_next = false;
    *done = false;
    sp->passes++;
    sp->drafted += k;
    int64_t acc = 0;
    int rc = DS8B_OK;
    const float *rows = R->logits + (size_t)R->first * (size_t)s->model->hp.n_vocab;
    for (int64_t i = 0; i < k; i++) {
        if ((rc = need_row(R, i, k + 1, e))) break;
        take_row(s, rows, base, i);
        int32_t u = 0;
        if ((rc = ds8b__gen_next(g, &u, done, e)) || *done) break;
        if (u == ids[1 + i]) {
            acc++;
            host_advance(sp, u);
            continue;
        }
        *next = u;
        *have_next = true;
        break;
    }
    sp->accepted += acc;
    observe(sp, acc, !rc && !*done && *have_next);
    if (!rc && !*done && !*have_next) { /* all accepted: the last row is current */
        if (!(rc = need_row(R, k, k + 1, e))) take_row(s, rows, base, k);
        else s->n_past = base + k; /* as after a failed one-token step */
    }
    return rc;
}

/* ================================================================== */
/* The generation loop                                                 */
/* ================================================================== */
int ds8b__spec_generate(ds8b__gen *g, ds8b__err *e) {
    ds8b_session *s = ds8b__gen_session(g);
    ds8b__spec *sp = s->spec;
    int64_t cap = sp->max_draft + 1;
    if (cap > s->n_batch) cap = s->n_batch;
    /* out of memory for the pass buffers: decode plainly (cap 1: no drafts) */
    if (reserve(s, cap, e)) cap = 1;
    int rc = DS8B_OK;
    ds8b__spec_begin(s);
    int32_t *ids = sp->ids;
    int32_t t = 0;
    bool done = false;
    rc = ds8b__gen_next(g, &t, &done, e);
    while (!rc && !done) {
        ds8b__spec_keep(s, t);
        int64_t k = 0;
        if ((rc = ds8b__spec_draft(g, t, cap, false, ids + 1, &k, NULL, e))) break;
        if (k == 0) { /* a plain step */
            double t0 = now_s();
            if ((rc = ds8b__session_eval(s, &t, 1, NULL, e))) break;
            sp->t1 = ewma(sp->t1, now_s() - t0);
            rc = ds8b__gen_next(g, &t, &done, e);
            continue;
        }
        sp->plain_run = 0;
        ids[0] = t;
        int64_t base = s->n_past;
        double t0 = now_s();
        ds8b__fwd f;
        if ((rc = verify_pass(s, ids, k + 1, true, &f, e))) break;
        double tpass = now_s() - t0;
        /* forget the per-size costs now and then: one slow measurement
         * (another process on the core) must not rule a size out for good */
        if (sp->passes % 256 == 255) memset(sp->kcost, 0, sizeof sp->kcost);
        bool have_next = false;
        ds8b__spec_rows R = {&f, sp->logits, 0, 0, 0};
        rc = ds8b__spec_check(g, &R, base, ids, k, &t, &have_next, &done, e);
        /* the cost of the pass: its layers and the logits the check needed */
        if (sp->t1 > 0) {
            double c = (tpass + R.sec) / sp->t1, b = (c - 1.0) / (double)k;
            sp->beta = ewma(sp->beta, b < 0 ? 0 : b > 4 ? 4 : b);
            if (k < DS8B__SPEC_KCOST) sp->kcost[k] = ewma(sp->kcost[k], c < 1 ? 1 : c);
        }
        if (rc || done) break;
        if (!have_next) rc = ds8b__gen_next(g, &t, &done, e);
    }
    return rc;
}

/* ================================================================== */
/* Benchmark                                                           */
/* ================================================================== */
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int ds8b__spec_bench_pass(ds8b_session *s, int64_t rows, int64_t pos, int reps, double *sec, double *cpu,
                          ds8b__err *e) {
    if (rows < 1 || rows > s->n_batch || pos < 0 || pos + rows > s->n_ctx || pos > s->n_past || reps < 1 ||
        reps > 1000)
        return ds8b__seterr(e, DS8B_E_INVALID, "bench pass: bad rows/pos/reps");
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    int rc = reserve(s, rows, e);
    double *t = rc ? NULL : ds8b__xmalloc(DS8B_MEM_SCRATCH, 2 * (size_t)reps * sizeof *t, "bench times", e);
    if (!rc && !t) rc = DS8B_E_NOMEM;
    double *c = t ? t + reps : NULL;
    int64_t vocab = s->model->hp.n_vocab;
    for (int r = 0; !rc && r < reps; r++) {
        for (int64_t i = 0; i < rows; i++) s->spec->ids[i] = (int32_t)((i * 7919 + 13 + r) % vocab);
        s->n_past = pos;
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        double t0 = now_s();
        if (rows == 1) rc = ds8b__session_eval(s, s->spec->ids, 1, NULL, e);
        else {
            ds8b__fwd f;
            rc = verify_pass(s, s->spec->ids, rows, false, &f, e); /* every row's logits: all accepted */
        }
        t[r] = now_s() - t0;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        c[r] = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
    }
    if (!rc) {
        qsort(t, (size_t)reps, sizeof *t, cmp_d);
        qsort(c, (size_t)reps, sizeof *c, cmp_d);
        *sec = t[reps / 2];
        if (cpu) *cpu = c[reps / 2];
    }
    s->n_past = pos;
    s->have_logits = false;
    ds8b__free(t);
    ds8b__memscope_leave(old);
    return rc;
}

/* ================================================================== */
/* Public API                                                          */
/* ================================================================== */
static int busy_or_bad(ds8b_session *s, const char *fn, ds8b__err *e) {
    if (!ds8b__sess_ok(s)) {
        ds8b__seterr(e, DS8B_E_MISUSE, "%s: invalid session handle", fn);
        return ds8b__sess_fail(NULL, e);
    }
    if (ds8b__sess_busy(s, fn, e)) return ds8b__sess_fail(s, e);
    return DS8B_OK;
}

DS8B_API int ds8b_session_set_draft(ds8b_session *s, const char *text, size_t len) {
    ds8b__err e = {0};
    int rc = busy_or_bad(s, "ds8b_session_set_draft", &e);
    if (rc) return rc;
    if (!text && len) {
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_session_set_draft: text is NULL");
        return ds8b__sess_fail(s, &e);
    }
    ds8b__spec_gen_done(s); /* drops the old draft */
    if (!len) return DS8B_OK;
    int32_t *ids = NULL;
    size_t n = 0;
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    rc = ds8b__tok_encode(s->model->tok->tok, text, len, 0, &ids, &n, &e);
    ds8b__memscope_leave(old);
    if (rc) return ds8b__sess_fail(s, &e);
    s->spec->host = ids;
    s->spec->n_host = (int64_t)n;
    return DS8B_OK;
}

DS8B_API int ds8b_session_set_draft_model(ds8b_session *s, ds8b_model *draft) {
    ds8b__err e = {0};
    int rc = busy_or_bad(s, "ds8b_session_set_draft_model", &e);
    if (rc) return rc;
    ds8b__spec *sp = s->spec;
    if (!draft) {
        drop_draft_model(sp);
        return DS8B_OK;
    }
    if (draft->magic != DS8B_MODEL_MAGIC) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_session_set_draft_model: invalid model handle");
        return ds8b__sess_fail(s, &e);
    }
    if (draft->hp.n_vocab != s->model->hp.n_vocab) {
        ds8b__seterr(&e, DS8B_E_MISMATCH,
                     "ds8b_session_set_draft_model: the draft model's vocabulary has %lld tokens, the session's "
                     "model %lld",
                     (long long)draft->hp.n_vocab, (long long)s->model->hp.n_vocab);
        return ds8b__sess_fail(s, &e);
    }
    if (draft == sp->dm) return DS8B_OK;
    ds8b_params p;
    ds8b__params_defaults(&p);
    p.i[DS8B_PARAM_N_CTX] = s->n_ctx;
    p.i[DS8B_PARAM_N_THREADS] = s->n_threads;
    p.i[DS8B_PARAM_N_BATCH] = s->n_batch;
    p.i[DS8B_PARAM_SPEC] = DS8B_SPEC_OFF;
    p.f[DS8B_PARAM_TEMPERATURE] = 0.0;
    ds8b_session *ds = NULL;
    rc = ds8b_session_create(draft, &p, &ds);
    if (rc) {
        ds8b__seterr(&e, rc, "ds8b_session_set_draft_model: %s", ds8b_errmsg());
        return ds8b__sess_fail(s, &e);
    }
    /* a draft model with a shorter context simply stops drafting past it */
    drop_draft_model(sp);
    sp->dm = draft;
    sp->ds = ds;
    sp->gamma = 0.5;
    return DS8B_OK;
}

DS8B_API int ds8b_session_spec_stats(const ds8b_session *s, int64_t *drafted, int64_t *accepted, int64_t *passes) {
    if (!ds8b__sess_ok(s)) return DS8B_E_MISUSE;
    if (drafted) *drafted = s->spec->drafted;
    if (accepted) *accepted = s->spec->accepted;
    if (passes) *passes = s->spec->passes;
    return DS8B_OK;
}
