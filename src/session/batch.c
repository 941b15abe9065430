/*
 * batch.c -- batched generation: several sessions of one model decoded in
 * lockstep, one shared forward pass per step.
 *
 * Each member keeps its own KV cache, sampler and generation state (the
 * step machine of generate.c); the batch owns the threads and the scratch
 * of the shared pass. The pass runs with DS8B_MM_ROWWISE, so every row is
 * computed exactly as a one-token ds8b_eval of that session would compute
 * it: a member's tokens do not depend on the rest of the batch.
 *
 * Speculation: a member with speculation enabled drafts after its pending
 * token (spec.c: prompt lookup, its host text, its draft model) and puts
 * the token and its k drafts into the same pass, as k+1 rows at
 * consecutive positions of its own cache (each row attends to the rows
 * before it, written earlier in the same layer). After the pass the member
 * checks its drafts exactly as ds8b_generate does (ds8b__spec_check: every
 * position sampled in order with the draw plain decoding would use) and
 * rolls back the rejected rows by cache length. So a member's output is
 * that of generating alone, with speculation on or off.
 *
 * When it pays. The drafts of auto members enter a pass only when the
 * expected tokens per unit of pass time beat plain steps by 3%: expected
 * tokens from each member's measured acceptance, pass time from this
 * batch's measured wall time per total row count (an untried count is
 * tried, and measurements decay, so a slow outlier does not rule a size
 * out for good). On members always put their drafts in.
 */
#include "session/session.h"
#include "session/spec.h"

#include <math.h>
#include <time.h>

#include <unistd.h>

#define DS8B_BATCH_MAGIC 0xba7c4e55u
/* rows of one pass (members and their drafts) and drafts per member */
#define DS8B__BATCH_ROWS 64
#define DS8B__BATCH_DRAFT 16

typedef struct member {
    ds8b_session *s;
    ds8b__gen *g;
    bool pending;   /* tok is sampled and streamed but not yet evaluated */
    bool zap;       /* removed from inside a stream callback: drop at the next safe point */
    bool free_s;    /* ... and ds8b_session_free was called on it */
    int32_t tok;
    bool kept;      /* tok went through ds8b__spec_keep */
    int64_t k;      /* drafts of this step (rows k+1 in the pass) */
    int64_t row;    /* its first row in the pass */
    int32_t draft[DS8B__BATCH_DRAFT];
} member;

struct ds8b_batch {
    uint32_t magic;
    ds8b_model *model;
    ds8b__memscope mem;
    ds8b__pool *pool;
    int n_threads;
    ds8b__scratch sc;
    int64_t cap;            /* rows sc, logits and the row arrays hold */
    float *logits;          /* (cap, n_vocab) */
    int32_t *ids;           /* (cap) */
    ds8b__kv **kv;          /* (cap) */
    int64_t *pos;           /* (cap) */
    member m[DS8B_BATCH_MAX];
    int64_t n;
    double tpass[DS8B__BATCH_ROWS + 1]; /* measured seconds of a pass of that many rows (0: none yet) */
    int64_t steps;
    bool stepping;       /* inside ds8b_batch_step: stream callbacks may run */
    bool free_deferred;  /* ds8b_batch_free was called from one of them */
    ds8b__err err;
};

static bool batch_ok(const ds8b_batch *b) { return b && b->magic == DS8B_BATCH_MAGIC; }

static int bfail(ds8b_batch *b, ds8b__err *e) {
    if (b) b->err = *e;
    ds8b__set_last_error(e);
    return e->code;
}

static void free_rows(ds8b_batch *b) {
    ds8b__scratch_free(&b->sc);
    ds8b__free(b->logits);
    ds8b__free(b->ids);
    ds8b__free(b->kv);
    ds8b__free(b->pos);
    b->logits = NULL;
    b->ids = NULL;
    b->kv = NULL;
    b->pos = NULL;
    b->cap = 0;
}

/* Grows the shared buffers to hold rows members attending over up to
 * n_ctx positions. Called in b's memory scope. */
static int reserve(ds8b_batch *b, int64_t rows, int64_t n_ctx, ds8b__err *e) {
    if (rows <= b->cap && n_ctx <= b->sc.n_scores) return DS8B_OK;
    int64_t cap = b->cap ? b->cap : 4;
    while (cap < rows) cap *= 2;
    if (cap > DS8B__BATCH_ROWS) cap = DS8B__BATCH_ROWS;
    int64_t ctx = n_ctx > b->sc.n_scores ? n_ctx : b->sc.n_scores;
    const ds8b__hparams *hp = &b->model->hp;
    size_t lb;
    if (!ds8b__mul_ok((size_t)cap * sizeof(float), (size_t)hp->n_vocab, &lb))
        return ds8b__seterr(e, DS8B_E_LIMIT, "batch logits size overflows");
    ds8b_batch old = *b;
    b->sc.ws = (ds8b__workspace){0};
    int rc = ds8b__scratch_alloc(&b->sc, hp, cap, b->n_threads, ctx, e);
    if (!rc) {
        b->logits = ds8b__xmalloc(DS8B_MEM_SCRATCH, lb, "batch logits", e);
        b->ids = ds8b__xmalloc(DS8B_MEM_SCRATCH, (size_t)cap * sizeof *b->ids, "batch rows", e);
        b->kv = ds8b__xmalloc(DS8B_MEM_SCRATCH, (size_t)cap * sizeof *b->kv, "batch rows", e);
        b->pos = ds8b__xmalloc(DS8B_MEM_SCRATCH, (size_t)cap * sizeof *b->pos, "batch rows", e);
        if (!b->logits || !b->ids || !b->kv || !b->pos) rc = DS8B_E_NOMEM;
    }
    if (rc) {
        free_rows(b);
        b->sc = old.sc; /* keep the old buffers: the batch stays usable */
        b->logits = old.logits;
        b->ids = old.ids;
        b->kv = old.kv;
        b->pos = old.pos;
        b->cap = old.cap;
        return rc;
    }
    b->cap = cap;
    /* the old buffers go; keep the grown matmul workspace */
    ds8b__free(b->sc.ws.buf);
    b->sc.ws = old.sc.ws;
    old.sc.ws = (ds8b__workspace){0};
    ds8b__scratch_free(&old.sc);
    ds8b__free(old.logits);
    ds8b__free(old.ids);
    ds8b__free(old.kv);
    ds8b__free(old.pos);
    return DS8B_OK;
}

DS8B_API int ds8b_batch_create(ds8b_model *m, const ds8b_params *params, ds8b_batch **out) {
    ds8b__err e = {0};
    if (!out) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_batch_create: out is NULL"); return bfail(NULL, &e); }
    *out = NULL;
    if (!m || m->magic != DS8B_MODEL_MAGIC) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_batch_create: invalid model handle");
        return bfail(NULL, &e);
    }
    if (params && params->magic != DS8B_PARAMS_MAGIC) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_batch_create: invalid params handle");
        return bfail(NULL, &e);
    }
    ds8b_params defaults;
    if (!params) {
        ds8b__params_defaults(&defaults);
        params = &defaults;
    }
    ds8b__memscope *old = ds8b__memscope_enter(&m->mem);
    ds8b_batch *b = ds8b__xmalloc(DS8B_MEM_SESSION, sizeof *b, "the batch handle", &e);
    ds8b__memscope_leave(old);
    if (!b) return bfail(NULL, &e);
    memset(b, 0, sizeof *b);
    b->magic = DS8B_BATCH_MAGIC;
    b->model = m;
    atomic_fetch_add(&m->n_sessions, 1); /* the model must outlive the batch */
    ds8b__memscope_init(&b->mem, &m->mem);
    old = ds8b__memscope_enter(&b->mem);
    int nt = (int)params->i[DS8B_PARAM_N_THREADS];
    if (nt <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nt = c > 0 ? (int)c : 1;
    }
    int rc = ds8b__pool_create(nt, &b->pool, &e);
    if (!rc) b->n_threads = ds8b__pool_size(b->pool);
    ds8b__memscope_leave(old);
    if (rc) {
        ds8b_batch_free(b);
        return bfail(NULL, &e);
    }
    *out = b;
    return DS8B_OK;
}

/* Ends member i's generation with rc (DS8B_OK: a normal stop, whose
 * finish reason is already set) and removes it, keeping the order. */
static void drop(ds8b_batch *b, int64_t i, int rc, ds8b__err *e) {
    ds8b_session *s = b->m[i].s;
    bool free_s = b->m[i].free_s; /* ds8b_session_free was called from a callback */
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    ds8b__gen_free(b->m[i].g);
    ds8b__spec_gen_done(s); /* a host draft serves one generation */
    ds8b__memscope_leave(old);
    if (rc) {
        s->err = *e;
        ds8b__gen_outcome(s, rc);
    }
    s->batch = NULL;
    memmove(&b->m[i], &b->m[i + 1], (size_t)(b->n - i - 1) * sizeof b->m[0]);
    b->n--;
    if (free_s) ds8b_session_free(s); /* no longer a member: freed at once */
}

static int64_t find(const ds8b_batch *b, const ds8b_session *s) {
    for (int64_t i = 0; i < b->n; i++)
        if (b->m[i].s == s) return i;
    return -1;
}

static void cancel_member(ds8b_batch *b, int64_t i) {
    ds8b__err e = {0};
    ds8b__seterr(&e, DS8B_E_CANCELLED, "removed from the batch after %lld tokens",
                 (long long)b->m[i].s->n_generated);
    drop(b, i, DS8B_E_CANCELLED, &e);
}

/* Drops the members removed or freed from inside stream callbacks. */
static void sweep(ds8b_batch *b) {
    for (int64_t i = 0; i < b->n;) {
        if (b->m[i].zap) cancel_member(b, i);
        else i++;
    }
}

DS8B_API void ds8b_batch_free(ds8b_batch *b) {
    if (!batch_ok(b)) return;
    if (b->stepping) { /* from a stream callback: ds8b_batch_step frees b on return */
        b->free_deferred = true;
        return;
    }
    while (b->n) cancel_member(b, b->n - 1);
    ds8b__memscope *old = ds8b__memscope_enter(&b->mem);
    ds8b__pool_free(b->pool);
    free_rows(b);
    ds8b__memscope_leave(old);
    atomic_fetch_sub(&b->model->n_sessions, 1);
    b->magic = 0;
    ds8b__free(b);
}

bool ds8b__batch_forget(struct ds8b_batch *b, ds8b_session *s) {
    if (!batch_ok(b)) return false;
    int64_t i = find(b, s);
    if (i < 0) return false;
    if (b->stepping) {
        b->m[i].zap = true;
        b->m[i].free_s = true;
        return true;
    }
    cancel_member(b, i);
    return false;
}

DS8B_API const char *ds8b_batch_errmsg(const ds8b_batch *b) {
    return batch_ok(b) ? b->err.msg : "invalid batch handle";
}

DS8B_API int64_t ds8b_batch_size(const ds8b_batch *b) { return batch_ok(b) ? b->n : -1; }

DS8B_API int ds8b_batch_add(ds8b_batch *b, ds8b_session *s, const char *prompt, size_t len, int flags,
                            ds8b_stream_fn cb, void *user) {
    ds8b__err e = {0};
    if (!batch_ok(b)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid batch handle"); return bfail(NULL, &e); }
    if (b->stepping) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_batch_add: called from inside a stream callback of ds8b_batch_step; add after the step returns");
        return bfail(b, &e);
    }
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_batch_add: invalid session handle"); return bfail(b, &e); }
    if (s->model != b->model) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_batch_add: the session belongs to another model");
        return bfail(b, &e);
    }
    if (s->batch) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_batch_add: the session already generates in a batch");
        return bfail(b, &e);
    }
    if (!prompt && len) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_batch_add: prompt is NULL"); return bfail(b, &e); }
    if (b->n >= DS8B_BATCH_MAX) {
        ds8b__seterr(&e, DS8B_E_LIMIT, "ds8b_batch_add: a batch holds at most %d sessions", DS8B_BATCH_MAX);
        return bfail(b, &e);
    }
    ds8b__memscope *old = ds8b__memscope_enter(&b->mem);
    int rc = reserve(b, b->n + 1, s->n_ctx, &e);
    ds8b__memscope_leave(old);
    if (rc) return bfail(b, &e);

    old = ds8b__memscope_enter(&s->mem);
    ds8b__gen *g = NULL;
    rc = ds8b__gen_create(s, cb, user, flags, &g, &e);
    if (!rc) rc = ds8b__gen_start(g, prompt ? prompt : "", len, flags, &e);
    if (!rc && s->spec) ds8b__spec_begin(s);
    if (rc) {
        ds8b__gen_free(g);
        ds8b__spec_gen_done(s);
    }
    ds8b__memscope_leave(old);
    if (rc) {
        ds8b__gen_outcome(s, rc);
        s->err = e;
        return bfail(b, &e);
    }
    b->m[b->n] = (member){.s = s, .g = g};
    b->n++;
    s->batch = b;
    return DS8B_OK;
}

DS8B_API int ds8b_batch_remove(ds8b_batch *b, ds8b_session *s) {
    ds8b__err e = {0};
    if (!batch_ok(b)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid batch handle"); return bfail(NULL, &e); }
    int64_t i = ds8b__sess_ok(s) ? find(b, s) : -1;
    if (i < 0 || b->m[i].zap) {
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_batch_remove: the session is not in this batch");
        return bfail(b, &e);
    }
    if (b->stepping) b->m[i].zap = true; /* from a stream callback: dropped once it returns */
    else cancel_member(b, i);
    return DS8B_OK;
}

static int batch_step(ds8b_batch *b, int64_t *n_active);

DS8B_API int ds8b_batch_step(ds8b_batch *b, int64_t *n_active) {
    ds8b__err e = {0};
    if (n_active) *n_active = batch_ok(b) ? b->n : 0;
    if (!batch_ok(b)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid batch handle"); return bfail(NULL, &e); }
    if (b->stepping) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_batch_step: called from inside a stream callback of the same batch");
        return bfail(b, &e);
    }
    b->stepping = true;
    int rc = batch_step(b, n_active);
    b->stepping = false;
    sweep(b); /* after an error of the shared pass, members removed by callbacks */
    if (n_active) *n_active = b->n;
    if (b->free_deferred) { /* a callback freed the batch */
        b->free_deferred = false;
        ds8b_batch_free(b);
    }
    return rc;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Expected tokens of a member's pass with k drafts at per-token
 * acceptance p: 1 + p + ... + p^k. */
static double expect(double p, int64_t k) {
    double t = 1, pk = 1;
    for (int64_t i = 0; i < k; i++) t += (pk *= p);
    return t;
}

/* Seconds of a pass of `rows` rows: measured, else (a guess until it is
 * tried) the plain pass of n rows plus 0.3 of it per extra row. */
static double pass_time(const ds8b_batch *b, int64_t rows, int64_t n) {
    if (b->tpass[rows] > 0) return b->tpass[rows];
    double t = b->tpass[n] > 0 ? b->tpass[n] : 1.0;
    return t * (1.0 + 0.3 * (double)(rows - n) / (double)n);
}

/* Which members' drafts go into this pass (members drafted already). */
static void choose_drafts(ds8b_batch *b) {
    int64_t n = b->n, rows = n, rows_auto = 0;
    double tok = 0, tok_auto = 0;
    for (int64_t i = 0; i < n; i++) {
        member *mb = &b->m[i];
        if (!mb->k) { tok += 1; continue; }
        double p = ds8b__spec_accept_p(mb->s), t = expect(p, mb->k);
        if (mb->s->spec->mode == DS8B_SPEC_ON) {
            rows += mb->k;
            tok += t;
        } else {
            rows_auto += mb->k;
            tok_auto += t;
        }
    }
    if (!rows_auto) return;
    int64_t n_auto_rows = 0;
    for (int64_t i = 0; i < n; i++)
        if (b->m[i].k && b->m[i].s->spec->mode != DS8B_SPEC_ON) n_auto_rows++;
    /* with the auto drafts: tok + tok_auto tokens in pass_time(rows + rows_auto);
     * without: tok + (their pending tokens) in pass_time(rows) */
    double with = (tok + tok_auto) / pass_time(b, rows + rows_auto, n);
    double without = (tok + (double)n_auto_rows) / pass_time(b, rows, n);
    bool untried = b->tpass[rows + rows_auto] <= 0;
    if (with > 1.03 * without || (untried && b->steps % 16 == 0) || b->steps % 64 == 63) return;
    for (int64_t i = 0; i < n; i++) {
        member *mb = &b->m[i];
        if (mb->k && mb->s->spec->mode != DS8B_SPEC_ON) {
            ds8b__spec_unused(mb->s, mb->draft, mb->k);
            mb->k = 0;
        }
    }
}

static int batch_step(ds8b_batch *b, int64_t *n_active) {
    ds8b__err e = {0};
    /* drafts fit when every member can have some: at most
     * DS8B__BATCH_ROWS rows in all */
    bool spec = b->n * 2 <= DS8B__BATCH_ROWS;
    /* 1. every member without a pending token samples and streams one,
     *    then drafts what may follow it */
    for (int64_t i = 0; i < b->n;) {
        member *mb = &b->m[i];
        ds8b_session *s = mb->s;
        if (mb->zap) {
            i++; /* removed by a callback: swept below */
            continue;
        }
        ds8b__err me = {0};
        int rc = DS8B_OK;
        bool done = false;
        ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
        if (!mb->pending) {
            rc = ds8b__gen_next(mb->g, &mb->tok, &done, &me);
            if (!rc && done) rc = ds8b__gen_end(mb->g, &me);
            if (!rc && !done) {
                mb->pending = true;
                mb->kept = false;
            }
        }
        /* make room under the slide policy (the others were checked by next) */
        if (!rc && !done && s->n_past >= s->n_ctx) rc = ds8b__session_slide(s, 1, &me);
        /* drafts that follow the pending token */
        mb->k = 0;
        if (!rc && !done && spec && ds8b__spec_enabled(s) && !mb->zap) {
            if (!mb->kept) ds8b__spec_keep(s, mb->tok);
            mb->kept = true;
            int64_t cap = DS8B__BATCH_DRAFT + 1;
            if (cap > s->n_batch) cap = s->n_batch;
            rc = ds8b__spec_draft(mb->g, mb->tok, cap, true, mb->draft, &mb->k, NULL, &me);
        }
        ds8b__memscope_leave(old);
        if (rc || done) {
            drop(b, i, rc, &me);
            continue;
        }
        i++;
    }
    sweep(b); /* members removed from inside the callbacks leave before the pass */
    if (n_active) *n_active = b->n;
    if (!b->n) return DS8B_OK;

    /* 2. one forward pass over all pending tokens and the drafts */
    int64_t n = b->n, vocab = b->model->hp.n_vocab;
    if (spec) {
        /* the rows the drafts may take, shared out in member order */
        int64_t left = DS8B__BATCH_ROWS - n;
        for (int64_t i = 0; i < n; i++) {
            member *mb = &b->m[i];
            int64_t share = left / (n - i);
            if (mb->k > share) {
                ds8b__spec_unused(mb->s, mb->draft, mb->k);
                mb->k = share;
            }
            left -= mb->k;
        }
        choose_drafts(b);
    }
    int64_t rows = 0;
    for (int64_t i = 0; i < n; i++) rows += 1 + b->m[i].k;
    ds8b__memscope *old = ds8b__memscope_enter(&b->mem);
    int rc = rows > n ? reserve(b, rows, 0, &e) : DS8B_OK;
    ds8b__memscope_leave(old);
    if (rc) { /* no room for the drafts: a plain step */
        for (int64_t i = 0; i < n; i++) {
            ds8b__spec_unused(b->m[i].s, b->m[i].draft, b->m[i].k);
            b->m[i].k = 0;
        }
        rows = n;
    }
    int64_t r = 0;
    for (int64_t i = 0; i < n; i++) {
        member *mb = &b->m[i];
        mb->row = r;
        for (int64_t j = 0; j <= mb->k; j++, r++) {
            b->ids[r] = j ? mb->draft[j - 1] : mb->tok;
            b->kv[r] = &mb->s->kv;
            b->pos[r] = mb->s->n_past + j;
        }
    }
    ds8b__fwd f = {0};
    f.m = b->model;
    f.pool = b->pool;
    f.sc = &b->sc;
    f.n = rows;
    f.ids = b->ids;
    f.row_kv = b->kv;
    f.row_pos = b->pos;
    f.flags = DS8B_MM_ROWWISE;
    old = ds8b__memscope_enter(&b->mem);
    double t0 = now_s();
    rc = ds8b__forward_rows(&f, 2, b->logits, &e);
    if (!rc) {
        double dt = now_s() - t0;
        b->tpass[rows] = b->tpass[rows] > 0 ? 0.8 * b->tpass[rows] + 0.2 * dt : dt;
        if (++b->steps % 512 == 0) memset(b->tpass, 0, sizeof b->tpass);
    }
    ds8b__memscope_leave(old);
    if (rc) {
        for (int64_t i = 0; i < n; i++) { /* the pending tokens stay; drafts are made again */
            ds8b__spec_unused(b->m[i].s, b->m[i].draft, b->m[i].k);
            b->m[i].k = 0;
        }
        return bfail(b, &e);
    }

    /* 3. each member takes its rows: a plain member its token and logits;
     *    a speculating one checks its drafts */
    for (int64_t i = 0; i < b->n;) {
        member *mb = &b->m[i];
        ds8b_session *s = mb->s;
        const float *rl = b->logits + (size_t)mb->row * (size_t)vocab;
        if (!mb->k || mb->zap) { /* (removed by a callback of this step: it keeps its token only) */
            mb->k = 0;
            memcpy(s->sc.logits, rl, (size_t)vocab * sizeof(float));
            s->tokens[s->n_past++] = mb->tok;
            s->have_logits = true;
            mb->pending = false;
            i++;
            continue;
        }
        int64_t base = s->n_past;
        s->tokens[base] = mb->tok;
        memcpy(s->tokens + base + 1, mb->draft, (size_t)mb->k * sizeof(int32_t));
        s->n_past = base + mb->k + 1;
        ds8b__err me = {0};
        bool have_next = false, done = false;
        int32_t next = 0;
        ds8b__memscope *so = ds8b__memscope_enter(&s->mem);
        ds8b__spec_rows R = {NULL, b->logits, mb->row, mb->k + 1, 0}; /* the pass computed every row's logits */
        rc = ds8b__spec_check(mb->g, &R, base, b->ids + mb->row, mb->k, &next, &have_next, &done, &me);
        if (!rc && done) rc = ds8b__gen_end(mb->g, &me);
        ds8b__memscope_leave(so);
        mb->k = 0;
        if (rc || done) {
            drop(b, i, rc, &me);
            continue;
        }
        mb->pending = have_next;
        if (have_next) {
            mb->tok = next;
            mb->kept = false;
        }
        i++;
    }
    return DS8B_OK;
}
