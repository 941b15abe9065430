/* session.c -- session lifetime, evaluation and generation. */
#include "session/session.h"
#include "session/spec.h"
#include "grammar/grammar.h"

#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <unistd.h>


/* ================================================================== */
/* Creation                                                            */
/* ================================================================== */
int ds8b__scratch_alloc(ds8b__scratch *sc, const ds8b__hparams *hp, int64_t nb, int n_threads,
                        int64_t n_scores, ds8b__err *e) {
    int64_t d = hp->n_embd, qd = hp->n_head * hp->head_dim;
    int64_t kvd = hp->n_head_kv * hp->head_dim;
    memset(sc, 0, sizeof *sc);
    sc->n_batch = nb;
#define A(field, count)                                                                        \
    if (!(sc->field = ds8b__xmalloc(DS8B_MEM_SCRATCH, (size_t)(count) * sizeof(float),          \
                                    "session scratch (" #field ")", e)))                       \
        return DS8B_E_NOMEM;
    A(x, nb * d)
    A(xb, nb * d)
    A(q, nb * qd)
    A(k, nb * kvd)
    A(v, nb * kvd)
    A(att, nb * qd)
    A(o, nb * d)
    A(gate, nb * hp->n_ff)
    A(up, nb * hp->n_ff)
    if (!ds8b__attn_scratch_floats(hp->head_dim, hp->n_head / hp->n_head_kv, &sc->att_floats) ||
        sc->att_floats > (size_t)INT64_MAX / 4 / (size_t)(n_threads > 0 ? n_threads : 1))
        return ds8b__seterr(e, DS8B_E_LIMIT, "attention scratch size overflows");
    A(scores, (int64_t)n_threads * (int64_t)sc->att_floats)
    sc->n_scores = n_scores;
    if (!(sc->att_tiles = ds8b__xmalloc(DS8B_MEM_SCRATCH, (size_t)(nb + 1) * sizeof(int32_t),
                                        "session scratch (att_tiles)", e)))
        return DS8B_E_NOMEM;
    A(kvrow, (int64_t)n_threads * 2 * hp->head_dim)
    A(logits, hp->n_vocab)
#undef A
    return DS8B_OK;
}

static int alloc_scratch(ds8b_session *s, ds8b__err *e) {
    return ds8b__scratch_alloc(&s->sc, &s->model->hp, s->n_batch, s->n_threads, s->n_ctx, e);
}

void ds8b__scratch_free(ds8b__scratch *sc) {
    float **f[] = {&sc->x, &sc->xb, &sc->q, &sc->k, &sc->v, &sc->att, &sc->o,
                   &sc->gate, &sc->up, &sc->scores, &sc->kvrow, &sc->logits};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        ds8b__free(*f[i]);
        *f[i] = NULL;
    }
    ds8b__free(sc->att_tiles);
    sc->att_tiles = NULL;
    ds8b__free(sc->ws.buf);
    sc->ws.buf = NULL;
    sc->ws.cap = 0;
}

static void session_destroy(ds8b_session *s) {
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    ds8b__pool_free(s->pool);
    ds8b__kv_free(&s->kv);
    ds8b__scratch_free(&s->sc);
    ds8b__sampler_free(&s->sampler);
    ds8b__spec_free(s);
    ds8b__free(s->tokens);
    for (int i = 0; i < s->n_stops; i++) ds8b__free(s->stops[i]);
    ds8b__gsess_free(s->gram);
    ds8b__memscope_leave(old);
    if (s->model) atomic_fetch_sub(&s->model->n_sessions, 1);
    s->magic = 0;
    ds8b__free(s);
}

static void sampler_params_from(const ds8b_params *p, ds8b__sampler_params *sp) {
    sp->temperature = p->f[DS8B_PARAM_TEMPERATURE];
    sp->top_p = p->f[DS8B_PARAM_TOP_P];
    sp->min_p = p->f[DS8B_PARAM_MIN_P];
    sp->repeat_penalty = p->f[DS8B_PARAM_REPEAT_PENALTY];
    sp->top_k = p->i[DS8B_PARAM_TOP_K];
    sp->repeat_last_n = p->i[DS8B_PARAM_REPEAT_LAST_N];
    sp->seed = (uint64_t)p->i[DS8B_PARAM_SEED];
}

static int session_init(ds8b_session *s, ds8b_model *m, const ds8b_params *p, ds8b__err *e) {
    const ds8b__hparams *hp = &m->hp;
    s->n_ctx = p->i[DS8B_PARAM_N_CTX];
    if (hp->n_ctx_train > 0 && s->n_ctx > hp->n_ctx_train) s->n_ctx = hp->n_ctx_train;
    s->n_batch = ds8b__n_batch_resolve(p->i[DS8B_PARAM_N_BATCH]);
    if (s->n_batch > s->n_ctx) s->n_batch = s->n_ctx;
    s->ctx_policy = (int)p->i[DS8B_PARAM_CTX_POLICY];
    s->n_sink = p->i[DS8B_PARAM_N_SINK];
    s->max_tokens = p->i[DS8B_PARAM_MAX_TOKENS];
    s->stop_at_eos = p->i[DS8B_PARAM_STOP_AT_EOS] != 0;
    int nt = (int)p->i[DS8B_PARAM_N_THREADS];
    if (nt <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nt = c > 0 ? (int)c : 1;
    }
    s->n_threads = nt;
    for (int i = 0; i < p->n_stops; i++) {
        if (!(s->stops[i] = ds8b__strdup(DS8B_MEM_SESSION, p->stops[i])))
            return ds8b__seterr(e, DS8B_E_NOMEM, "stop strings");
        s->n_stops = i + 1;
    }
    int kvt = (int)p->i[DS8B_PARAM_KV_TYPE];
    if (kvt == DS8B_KV_Q8_0 && hp->head_dim % 32)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "a q8_0 KV cache needs head_dim divisible by 32 (it is %lld)",
                            (long long)hp->head_dim);
    int rc;
    if ((rc = ds8b__pool_create(nt, &s->pool, e))) return rc;
    s->n_threads = ds8b__pool_size(s->pool);
    if ((rc = ds8b__kv_init(&s->kv, kvt, hp->n_layer, s->n_ctx, hp->n_head_kv * hp->head_dim, e))) return rc;
    if ((rc = alloc_scratch(s, e))) return rc;
    ds8b__sampler_params sp;
    sampler_params_from(p, &sp);
    if ((rc = ds8b__sampler_init(&s->sampler, hp->n_vocab, &sp, e))) return rc;
    s->tokens = ds8b__xmalloc(DS8B_MEM_SESSION, (size_t)s->n_ctx * sizeof(int32_t), "session token history", e);
    if (!s->tokens) return DS8B_E_NOMEM;
    return ds8b__spec_init(s, p, e);
}

DS8B_API int ds8b_session_create(ds8b_model *m, const ds8b_params *params, ds8b_session **out) {
    ds8b__err e = {0};
    if (!out) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_session_create: out is NULL"); return ds8b__sess_fail(NULL, &e); }
    *out = NULL;
    if (!m || m->magic != DS8B_MODEL_MAGIC) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_session_create: invalid model handle");
        return ds8b__sess_fail(NULL, &e);
    }
    if (params && params->magic != DS8B_PARAMS_MAGIC) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_session_create: invalid params handle");
        return ds8b__sess_fail(NULL, &e);
    }
    ds8b_params defaults;
    if (!params) {
        ds8b__params_defaults(&defaults);
        params = &defaults;
    }
    ds8b__memscope *old = ds8b__memscope_enter(&m->mem);
    ds8b_session *s = ds8b__xmalloc(DS8B_MEM_SESSION, sizeof *s, "the session handle", &e);
    ds8b__memscope_leave(old);
    if (!s) return ds8b__sess_fail(NULL, &e);
    memset(s, 0, sizeof *s);
    s->magic = DS8B_SESSION_MAGIC;
    s->model = m;
    atomic_fetch_add(&m->n_sessions, 1);
    ds8b__memscope_init(&s->mem, &m->mem);
    old = ds8b__memscope_enter(&s->mem);
    int rc = session_init(s, m, params, &e);
    ds8b__memscope_leave(old);
    if (rc) {
        session_destroy(s);
        return ds8b__sess_fail(NULL, &e);
    }
    *out = s;
    return DS8B_OK;
}

DS8B_API void ds8b_session_free(ds8b_session *s) {
    if (!ds8b__sess_ok(s)) return;
    if (s->in_gen) { /* from its own stream callback: ds8b_generate frees it on return */
        s->free_deferred = true;
        return;
    }
    if (s->batch && ds8b__batch_forget(s->batch, s)) return; /* the running step frees it */
    int chats = atomic_load(&s->n_chats);
    if (chats > 0) {
        /* the chats would point at freed memory: refuse, leak rather than crash */
        ds8b__err e;
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_session_free: %d chat handle(s) still use this session; free them first",
                     chats);
        ds8b__set_last_error(&e);
        return;
    }
    session_destroy(s);
}

DS8B_API const char *ds8b_session_errmsg(const ds8b_session *s) {
    if (!ds8b__sess_ok(s)) return "invalid session handle";
    return s->err.msg;
}

/* ================================================================== */
/* Parameters on a live session                                        */
/* ================================================================== */
static int set_live(ds8b_session *s, int key, double v, bool is_float) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    int rc = ds8b__param_check(key, v, is_float, &e);
    if (rc) return ds8b__sess_fail(s, &e);
    ds8b__sampler_params *sp = &s->sampler.p;
    switch (key) {
    case DS8B_PARAM_TEMPERATURE: sp->temperature = v; break;
    case DS8B_PARAM_TOP_P: sp->top_p = v; break;
    case DS8B_PARAM_MIN_P: sp->min_p = v; break;
    case DS8B_PARAM_REPEAT_PENALTY: sp->repeat_penalty = v; break;
    case DS8B_PARAM_TOP_K: sp->top_k = (int64_t)v; break;
    case DS8B_PARAM_REPEAT_LAST_N: sp->repeat_last_n = (int64_t)v; break;
    case DS8B_PARAM_SEED: sp->seed = (uint64_t)v; ds8b__sampler_seed(&s->sampler, sp->seed); break;
    case DS8B_PARAM_MAX_TOKENS: s->max_tokens = (int64_t)v; break;
    case DS8B_PARAM_STOP_AT_EOS: s->stop_at_eos = v != 0; break;
    case DS8B_PARAM_CTX_POLICY: s->ctx_policy = (int)v; break;
    case DS8B_PARAM_N_SINK: s->n_sink = (int64_t)v; break;
    case DS8B_PARAM_SPEC: case DS8B_PARAM_SPEC_MAX_DRAFT: case DS8B_PARAM_SPEC_NGRAM:
        ds8b__spec_set_param(s, key, (int64_t)v);
        break;
    default:
        ds8b__seterr(&e, DS8B_E_INVALID, "parameter key %d cannot be changed on a live session", key);
        return ds8b__sess_fail(s, &e);
    }
    return DS8B_OK;
}

DS8B_API int ds8b_session_set_int(ds8b_session *s, ds8b_param key, int64_t value) {
    return set_live(s, key, (double)value, false);
}
DS8B_API int ds8b_session_set_float(ds8b_session *s, ds8b_param key, double value) {
    return set_live(s, key, value, true);
}

DS8B_API int ds8b_session_add_stop(ds8b_session *s, const char *stop) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    if (!stop || !*stop || strlen(stop) > 1024) {
        ds8b__seterr(&e, DS8B_E_INVALID, "stop strings must be 1..1024 bytes");
        return ds8b__sess_fail(s, &e);
    }
    if (s->n_stops >= DS8B_MAX_STOPS) {
        ds8b__seterr(&e, DS8B_E_LIMIT, "at most %d stop strings", DS8B_MAX_STOPS);
        return ds8b__sess_fail(s, &e);
    }
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    char *c = ds8b__strdup(DS8B_MEM_SESSION, stop);
    ds8b__memscope_leave(old);
    if (!c) { ds8b__seterr(&e, DS8B_E_NOMEM, "stop string"); return ds8b__sess_fail(s, &e); }
    s->stops[s->n_stops++] = c;
    return DS8B_OK;
}

DS8B_API int ds8b_session_clear_stops(ds8b_session *s) {
    if (!ds8b__sess_ok(s)) return DS8B_E_MISUSE;
    for (int i = 0; i < s->n_stops; i++) ds8b__free(s->stops[i]);
    s->n_stops = 0;
    return DS8B_OK;
}

DS8B_API int ds8b_session_finish_reason(const ds8b_session *s) { return ds8b__sess_ok(s) ? s->finish : DS8B_E_MISUSE; }

DS8B_API int ds8b_session_tokens(const ds8b_session *s, int32_t *ids, size_t cap, size_t *n) {
    if (!ds8b__sess_ok(s) || !n) return DS8B_E_MISUSE;
    *n = (size_t)s->n_past;
    if (!ids || cap < (size_t)s->n_past) return DS8B_E_BUFFER;
    memcpy(ids, s->tokens, (size_t)s->n_past * sizeof(int32_t));
    return DS8B_OK;
}

DS8B_API int64_t ds8b_session_n_past(const ds8b_session *s) { return ds8b__sess_ok(s) ? s->n_past : -1; }

DS8B_API int ds8b_session_truncate(ds8b_session *s, int64_t n) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    if (ds8b__sess_busy(s, "ds8b_session_truncate", &e)) return ds8b__sess_fail(s, &e);
    if (n < 0 || n > s->n_past) {
        ds8b__seterr(&e, DS8B_E_INVALID, "cannot truncate to %lld tokens: the session holds %lld",
                     (long long)n, (long long)s->n_past);
        return ds8b__sess_fail(s, &e);
    }
    s->n_past = n;
    s->have_logits = false;
    return DS8B_OK;
}

DS8B_API int ds8b_session_reset(ds8b_session *s) {
    if (!ds8b__sess_ok(s)) {
        ds8b__err e = {0};
        ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle");
        return ds8b__sess_fail(NULL, &e);
    }
    ds8b__err e = {0};
    if (ds8b__sess_busy(s, "ds8b_session_reset", &e)) return ds8b__sess_fail(s, &e);
    s->n_past = 0;
    s->have_logits = false;
    ds8b__sampler_seed(&s->sampler, s->sampler.p.seed);
    return DS8B_OK;
}

DS8B_API int ds8b_session_cancel(ds8b_session *s) {
    if (!ds8b__sess_ok(s)) return DS8B_E_MISUSE;
    atomic_store(&s->cancel, 1);
    return DS8B_OK;
}

/* ================================================================== */
/* Evaluation                                                          */
/* ================================================================== */
/* DS8B_CTX_SLIDE: keeps the first n_sink tokens and drops the oldest of
 * the rest -- at least `need` positions, and half the window at a time so
 * shifts stay rare -- re-rotating the kept keys. */
int ds8b__session_slide(ds8b_session *s, int64_t need, ds8b__err *e) {
    int64_t sink = s->n_sink < s->n_past ? s->n_sink : s->n_past;
    int64_t window = s->n_past - sink;
    int64_t drop = window / 2 > need ? window / 2 : need;
    if (drop > window || need > s->n_ctx - sink)
        return ds8b__seterr(e, DS8B_E_CONTEXT_FULL,
                            "context full: %lld new tokens cannot fit beside %lld sink tokens in n_ctx %lld",
                            (long long)need, (long long)sink, (long long)s->n_ctx);
    int64_t keep = window - drop;
    int rc = ds8b__kv_shift(s, sink + drop, sink, keep, e);
    if (rc) return rc;
    memmove(s->tokens + sink, s->tokens + sink + drop, (size_t)keep * sizeof(int32_t));
    s->n_past = sink + keep;
    return DS8B_OK;
}

int ds8b__session_eval(ds8b_session *s, const int32_t *ids, int64_t n, float *logits_all, ds8b__err *e) {
    if (n <= 0) return ds8b__seterr(e, DS8B_E_INVALID, "no tokens to evaluate");
    if (n > s->n_ctx - s->n_past && s->ctx_policy == DS8B_CTX_SLIDE) {
        int rc = ds8b__session_slide(s, n - (s->n_ctx - s->n_past), e);
        if (rc) return rc;
    }
    if (n > s->n_ctx - s->n_past)
        return ds8b__seterr(e, DS8B_E_CONTEXT_FULL,
                            "context full: %lld tokens held + %lld new > n_ctx %lld",
                            (long long)s->n_past, (long long)n, (long long)s->n_ctx);
    int64_t vocab = s->model->hp.n_vocab;
    s->have_logits = false;
    for (int64_t off = 0; off < n; off += s->n_batch) {
        if (atomic_load(&s->cancel))
            return ds8b__seterr(e, DS8B_E_CANCELLED, "cancelled after %lld of %lld prompt tokens",
                                (long long)off, (long long)n);
        int64_t nb = n - off < s->n_batch ? n - off : s->n_batch;
        bool last = off + nb == n;
        int want = logits_all ? 2 : (last ? 1 : 0);
        int rc = ds8b__forward(s, ids + off, nb, s->n_past, want,
                               logits_all ? logits_all + (size_t)off * (size_t)vocab : NULL, e);
        if (rc) return rc;
        memcpy(s->tokens + s->n_past, ids + off, (size_t)nb * sizeof(int32_t));
        s->n_past += nb;
    }
    s->have_logits = true;
    return DS8B_OK;
}

DS8B_API int ds8b_eval(ds8b_session *s, const int32_t *ids, size_t n, float *logits) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    if (ds8b__sess_busy(s, "ds8b_eval", &e)) return ds8b__sess_fail(s, &e);
    if (!ids && n) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_eval: ids is NULL"); return ds8b__sess_fail(s, &e); }
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    int rc = ds8b__session_eval(s, ids, (int64_t)n, logits, &e);
    ds8b__memscope_leave(old);
    if (rc == DS8B_E_CANCELLED) atomic_store(&s->cancel, 0); /* the request is consumed */
    return rc ? ds8b__sess_fail(s, &e) : DS8B_OK;
}

DS8B_API const float *ds8b_session_logits(const ds8b_session *s) {
    return ds8b__sess_ok(s) && s->have_logits ? s->sc.logits : NULL;
}

DS8B_API int ds8b_sample(ds8b_session *s, int32_t *token) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    if (ds8b__sess_busy(s, "ds8b_sample", &e)) return ds8b__sess_fail(s, &e);
    if (!token) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_sample: token is NULL"); return ds8b__sess_fail(s, &e); }
    if (!s->have_logits) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_sample: no logits yet; evaluate tokens first");
        return ds8b__sess_fail(s, &e);
    }
    *token = ds8b__sample(&s->sampler, s->sc.logits, s->tokens, s->n_past);
    return DS8B_OK;
}

