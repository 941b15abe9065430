/*
 * generate.c -- generation as a step machine: start (prompt), next (sample
 * one token, stream its text, check stop conditions), end (flush). Used by
 * ds8b_generate for one session and by ds8b_batch_step for many.
 */
#include "session/session.h"
#include "session/spec.h"

#include "chat/toolcall.h"
#include "tokenizer/tokenizer.h"
#include "grammar/grammar.h"

/* ================================================================== */
/* Streaming with stop strings and the reasoning channel               */
/* ================================================================== */
struct ds8b__gen {
    ds8b_session *s;
    ds8b_stream_fn cb;
    void *user;
    int channel;
    bool reasoning;       /* split <think> ... </think> */
    bool stopped;         /* a stop string matched */
    bool cancelled;       /* the callback asked to stop */
    const char *tc_open, *tc_close; /* tool-call markers (chat with tools), or NULL */
    size_t tc_open_n, tc_close_n;
    bool after_tool;      /* a call just closed: whitespace before the next is held */
    bool skip_nl;         /* </think> just closed: line breaks that follow are dropped */
    char hold[4096 + 64]; /* text not yet emitted */
    size_t nhold;

    ds8b__detok_stream ds;
    int64_t n_gen;
};
typedef struct ds8b__gen gen_out;

static const char k_think_open[] = "<think>", k_think_close[] = "</think>";

static void emit(gen_out *g, const char *p, size_t n) {
    if (!n || g->cancelled || !g->cb) return;
    if (g->cb(g->user, p, n, g->channel)) g->cancelled = true;
}

/* Emits on channel ch without changing the current one. */
static void emit_on(gen_out *g, int ch, const char *p, size_t n) {
    int keep = g->channel;
    g->channel = ch;
    emit(g, p, n);
    g->channel = keep;
}

static bool is_ws(char ch) { return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t'; }

/* Is the tail of hold (from i) a proper prefix of some marker? */
static bool may_start_marker(const gen_out *g, size_t i) {
    const char *t = g->hold + i;
    size_t n = g->nhold - i;
    for (int k = 0; k < g->s->n_stops; k++) {
        size_t l = strlen(g->s->stops[k]);
        if (n < l && memcmp(g->s->stops[k], t, n) == 0) return true;
    }
    if (g->channel == DS8B_CHANNEL_TOOL_CALL) /* inside a call only its end counts */
        return n < g->tc_close_n && memcmp(g->tc_close, t, n) == 0;
    if (g->reasoning) {
        if (n < sizeof k_think_open - 1 && memcmp(k_think_open, t, n) == 0) return true;
        if (n < sizeof k_think_close - 1 && memcmp(k_think_close, t, n) == 0) return true;
    }
    if (g->tc_open && g->channel == DS8B_CHANNEL_ANSWER && n < g->tc_open_n && memcmp(g->tc_open, t, n) == 0)
        return true;
    return false;
}

/* Emits what can be emitted from hold; final flushes everything. */
static void drain(gen_out *g, bool final) {
    size_t i = 0, start = 0;
    while (i < g->nhold && !g->stopped) {
        const char *t = g->hold + i;
        size_t n = g->nhold - i;
        if (g->skip_nl) { /* also when the line breaks come in later pieces */
            if (*t == '\n' && i == start) {
                i = ++start;
                continue;
            }
            g->skip_nl = false;
        }
        int matched = 0;
        size_t mlen = 0;
        for (int k = 0; k < g->s->n_stops && !matched; k++) {
            size_t l = strlen(g->s->stops[k]);
            if (n >= l && memcmp(g->s->stops[k], t, l) == 0) { matched = 1; mlen = l; }
        }
        if (!matched && g->channel == DS8B_CHANNEL_TOOL_CALL) {
            /* tool-call text, markers included, goes on its own channel */
            if (n >= g->tc_close_n && memcmp(g->tc_close, t, g->tc_close_n) == 0) {
                emit(g, g->hold + start, i + g->tc_close_n - start);
                g->channel = DS8B_CHANNEL_ANSWER;
                g->after_tool = true;
                i += g->tc_close_n;
                start = i;
                continue;
            }
            if (!final && may_start_marker(g, i)) break;
            i++;
            continue;
        }
        if (!matched && g->tc_open && g->channel == DS8B_CHANNEL_ANSWER) {
            size_t w = 0;
            if (g->after_tool) /* whitespace between two calls belongs to the calls */
                while (w < n && is_ws(t[w])) w++;
            if (g->after_tool && w == n) {
                if (!final) break; /* held until the next call opens or text follows */
                emit(g, g->hold + start, i - start);
                emit_on(g, DS8B_CHANNEL_TOOL_CALL, t, w);
                i = start = g->nhold;
                break;
            }
            if (n - w >= g->tc_open_n && memcmp(g->tc_open, t + w, g->tc_open_n) == 0) {
                emit(g, g->hold + start, i - start);
                g->channel = DS8B_CHANNEL_TOOL_CALL;
                g->after_tool = false;
                emit(g, t, w + g->tc_open_n);
                i += w + g->tc_open_n;
                start = i;
                continue;
            }
            if (g->after_tool && w > 0 && !final && n - w < g->tc_open_n && memcmp(g->tc_open, t + w, n - w) == 0)
                break;
            g->after_tool = false;
        }
        if (!matched && g->reasoning) {
            if (n >= sizeof k_think_open - 1 && memcmp(k_think_open, t, sizeof k_think_open - 1) == 0) {
                matched = 2;
                mlen = sizeof k_think_open - 1;
            } else if (n >= sizeof k_think_close - 1 &&
                       memcmp(k_think_close, t, sizeof k_think_close - 1) == 0) {
                matched = 3;
                mlen = sizeof k_think_close - 1;
            }
        }
        if (matched) {
            emit(g, g->hold + start, i - start);
            if (matched == 1) { g->stopped = true; start = g->nhold; break; }
            g->channel = matched == 2 ? DS8B_CHANNEL_REASONING : DS8B_CHANNEL_ANSWER;
            i += mlen;
            /* the answer conventionally starts after blank lines */
            if (matched == 3) g->skip_nl = true;
            start = i;
            continue;
        }
        if (!final && may_start_marker(g, i)) break;
        i++;
    }
    if (!g->stopped) {
        size_t upto = final ? g->nhold : i;
        emit(g, g->hold + start, upto - start);
        start = upto;
    }
    memmove(g->hold, g->hold + start, g->nhold - start);
    g->nhold -= start;
    if (g->stopped) g->nhold = 0;
}

static void push_text(gen_out *g, const char *p, size_t n) {
    while (n) {
        size_t room = sizeof g->hold - g->nhold;
        size_t c = n < room ? n : room;
        memcpy(g->hold + g->nhold, p, c);
        g->nhold += c;
        p += c;
        n -= c;
        drain(g, g->nhold == sizeof g->hold);
    }
}

static bool ends_with_think(const char *p, size_t len) {
    while (len && (p[len - 1] == '\n' || p[len - 1] == ' ' || p[len - 1] == '\r')) len--;
    size_t l = sizeof k_think_open - 1;
    return len >= l && memcmp(p + len - l, k_think_open, l) == 0;
}


/* ================================================================== */
/* The step machine                                                    */
/* ================================================================== */
int ds8b__gen_create(ds8b_session *s, ds8b_stream_fn cb, void *user, int flags, ds8b__gen **out,
                     ds8b__err *e) {
    gen_out *g = ds8b__xmalloc(DS8B_MEM_SESSION, sizeof *g, "generation state", e);
    if (!g) return DS8B_E_NOMEM;
    memset(g, 0, sizeof *g);
    g->s = s;
    g->cb = cb;
    g->user = user;
    g->reasoning = (flags & DS8B_GEN_REASONING) != 0;
    if (flags & DS8B__GEN_TOOLS_QWEN) {
        g->tc_open = DS8B__TC_QWEN_OPEN;
        g->tc_close = DS8B__TC_QWEN_CLOSE;
    } else if (flags & DS8B__GEN_TOOLS_DEEPSEEK) {
        g->tc_open = DS8B__TC_DS_CALLS_BEGIN;
        g->tc_close = DS8B__TC_DS_CALLS_END;
    }
    if (g->tc_open) {
        g->tc_open_n = strlen(g->tc_open);
        g->tc_close_n = strlen(g->tc_close);
    }
    g->channel = DS8B_CHANNEL_ANSWER;
    *out = g;
    return DS8B_OK;
}

void ds8b__gen_free(ds8b__gen *g) { ds8b__free(g); }

int64_t ds8b__gen_count(const ds8b__gen *g) { return g->n_gen; }
ds8b_session *ds8b__gen_session(const ds8b__gen *g) { return g->s; }

int ds8b__gen_start(ds8b__gen *g, const char *prompt, size_t len, int flags, ds8b__err *e) {
    ds8b_session *s = g->s;
    const ds8b_tokenizer *tok = s->model->tok->tok;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = ds8b__tok_encode(tok, prompt, len,
                              (flags & DS8B_GEN_ADD_SPECIAL) ? DS8B_TOKENIZE_ADD_SPECIAL : 0, &ids, &n, e);
    if (rc) return rc;
    if (n == 0 && !s->have_logits) {
        ds8b__free(ids);
        return ds8b__seterr(e, DS8B_E_INVALID, "empty prompt and nothing evaluated yet");
    }
    if (n) rc = ds8b__session_eval(s, ids, (int64_t)n, NULL, e);
    ds8b__free(ids);
    if (rc) return rc;
    /* the grammar starts at its root; an empty prompt continues it */
    if ((rc = ds8b__gsess_begin(s, n == 0, e))) return rc;
    if (g->reasoning && ((flags & DS8B_GEN_START_REASONING) || ends_with_think(prompt, len)))
        g->channel = DS8B_CHANNEL_REASONING;
    s->finish = DS8B_FINISH_NONE;
    s->n_generated = 0;
    return DS8B_OK;
}

/* The session's grammar constrains this token: attached, in progress, and
 * (with DS8B_GEN_REASONING) the answer channel, i.e. after </think>. */
static bool gen_grammar_on(const gen_out *g) {
    const ds8b_session *s = g->s;
    return s->gram && s->gram->g && s->gram->live && (!g->reasoning || g->channel == DS8B_CHANNEL_ANSWER);
}

int ds8b__gen_grammar_allows(ds8b__gen *g, int32_t t, bool *ok, ds8b__err *e) {
    *ok = true;
    if (!gen_grammar_on(g)) return DS8B_OK;
    ds8b_session *s = g->s;
    const ds8b_tokenizer *tok = s->model->tok->tok;
    if (ds8b__tok_is_eog(tok, t)) {
        *ok = s->stop_at_eos && ds8b__gm_can_end(&s->gram->m);
        return DS8B_OK;
    }
    char buf[1024];
    size_t n = 0;
    if (!ds8b__tok_token_bytes(tok, t, buf, sizeof buf, &n) || ds8b__tok_is_special(tok, t)) {
        *ok = false;
        return DS8B_OK;
    }
    return ds8b__gm_allows(&s->gram->m, (const uint8_t *)buf, n, ok, e);
}

int ds8b__gen_grammar_accept(ds8b__gen *g, int32_t t, ds8b__err *e) {
    if (!gen_grammar_on(g)) return DS8B_OK;
    return ds8b__gsess_accept(g->s, t, e);
}

int ds8b__gen_next(ds8b__gen *g, int32_t *token, bool *done, ds8b__err *e) {
    ds8b_session *s = g->s;
    const ds8b_tokenizer *tok = s->model->tok->tok;
    char piece[256];
    *done = false;
    if (atomic_load(&s->cancel))
        return ds8b__seterr(e, DS8B_E_CANCELLED, "cancelled after %lld tokens", (long long)g->n_gen);
    if (s->max_tokens > 0 && g->n_gen >= s->max_tokens) {
        s->finish = DS8B_FINISH_MAX_TOKENS;
        *done = true;
        return DS8B_OK;
    }
    /* sampling, under the session's grammar when one is active */
    bool gram = gen_grammar_on(g);
    int32_t t;
    if (gram) {
        int rc = ds8b__gsess_sample(s, &t, e);
        if (!rc) rc = ds8b__gsess_accept(s, t, e);
        if (rc) return rc;
    } else
        t = ds8b__sample(&s->sampler, s->sc.logits, s->tokens, s->n_past);
    if (s->stop_at_eos && ds8b__tok_is_eog(tok, t)) {
        if (gram) s->gram->live = false;
        s->finish = DS8B_FINISH_EOS;
        *done = true;
        return DS8B_OK;
    }
    g->n_gen++;
    s->n_generated = g->n_gen;
    size_t pl = 0;
    ds8b__detok_push(tok, &g->ds, t, 0, piece, sizeof piece, &pl);
    push_text(g, piece, pl);
    if (g->cancelled)
        return ds8b__seterr(e, DS8B_E_CANCELLED, "the stream callback stopped generation after %lld tokens",
                            (long long)g->n_gen);
    if (g->stopped) {
        s->finish = DS8B_FINISH_STOP_STRING;
        *done = true;
        return DS8B_OK;
    }
    if (gram && ds8b__gm_must_end(&s->gram->m)) { /* complete, nothing can follow */
        s->gram->live = false;
        s->finish = DS8B_FINISH_GRAMMAR;
        *done = true;
        return DS8B_OK;
    }
    if (s->n_past >= s->n_ctx && s->ctx_policy != DS8B_CTX_SLIDE) {
        if (s->ctx_policy == DS8B_CTX_STOP) {
            s->finish = DS8B_FINISH_CONTEXT;
            *done = true;
            return DS8B_OK;
        }
        return ds8b__seterr(e, DS8B_E_CONTEXT_FULL, "context full after %lld generated tokens (n_ctx %lld)",
                            (long long)g->n_gen, (long long)s->n_ctx);
    }
    *token = t;
    return DS8B_OK;
}

int ds8b__gen_end(ds8b__gen *g, ds8b__err *e) {
    char piece[256];
    size_t pl = 0;
    ds8b__detok_flush(&g->ds, piece, sizeof piece, &pl);
    push_text(g, piece, pl);
    drain(g, true);
    if (g->stopped) g->s->finish = DS8B_FINISH_STOP_STRING;
    if (g->cancelled) return ds8b__seterr(e, DS8B_E_CANCELLED, "the stream callback stopped generation");
    return DS8B_OK;
}

void ds8b__gen_outcome(ds8b_session *s, int rc) {
    if (rc == DS8B_E_CANCELLED) {
        atomic_store(&s->cancel, 0); /* the request is consumed */
        s->finish = DS8B_FINISH_CANCELLED;
    } else if (rc) {
        s->finish = DS8B_FINISH_ERROR;
    }
}

/* ================================================================== */
/* ds8b_generate                                                       */
/* ================================================================== */
static int generate_inner(ds8b__gen *g, const char *prompt, size_t len, int flags, ds8b__err *e) {
    int rc = ds8b__gen_start(g, prompt, len, flags, e);
    /* speculative decoding (spec.c): the same loop, k+1 positions a pass */
    if (!rc && ds8b__spec_enabled(g->s)) return (rc = ds8b__spec_generate(g, e)) ? rc : ds8b__gen_end(g, e);
    while (!rc) {
        int32_t t = 0;
        bool done;
        if ((rc = ds8b__gen_next(g, &t, &done, e)) || done) break;
        rc = ds8b__session_eval(g->s, &t, 1, NULL, e);
    }
    return rc ? rc : ds8b__gen_end(g, e);
}

DS8B_API int ds8b_generate(ds8b_session *s, const char *prompt, size_t len, int flags, ds8b_stream_fn cb,
                           void *user, int64_t *n_generated) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    if (ds8b__sess_busy(s, "ds8b_generate", &e)) return ds8b__sess_fail(s, &e);
    if (!prompt && len) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_generate: prompt is NULL"); return ds8b__sess_fail(s, &e); }
    s->in_gen = true;
    int rc = ds8b__generate(s, prompt ? prompt : "", len, flags & ~DS8B__GEN_INTERNAL, cb, user, n_generated, &e);
    s->in_gen = false;
    if (rc) ds8b__sess_fail(s, &e);
    if (s->free_deferred) { /* the callback freed the session: do it now */
        s->free_deferred = false;
        ds8b_session_free(s);
    }
    return rc;
}

int ds8b__generate(ds8b_session *s, const char *prompt, size_t len, int flags, ds8b_stream_fn cb, void *user,
                   int64_t *n_generated, ds8b__err *e) {
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    ds8b__gen *g = NULL;
    int rc = ds8b__gen_create(s, cb, user, flags, &g, e);
    if (!rc) rc = generate_inner(g, prompt, len, flags, e);
    if (n_generated) *n_generated = g ? g->n_gen : 0;
    ds8b__gen_free(g);
    ds8b__spec_gen_done(s); /* a host draft serves one generation */
    ds8b__memscope_leave(old);
    ds8b__gen_outcome(s, rc);
    return rc;
}

int ds8b__gen_feed(ds8b_session *s, const char *text, size_t len, size_t step, int flags, ds8b_stream_fn cb,
                   void *user, ds8b__err *e) {
    ds8b__gen *g = NULL;
    int rc = ds8b__gen_create(s, cb, user, flags, &g, e);
    if (rc) return rc;
    if (g->reasoning && (flags & DS8B_GEN_START_REASONING)) g->channel = DS8B_CHANNEL_REASONING;
    if (!step) step = len;
    for (size_t i = 0; i < len && !g->stopped && !g->cancelled; i += step)
        push_text(g, text + i, len - i < step ? len - i : step);
    drain(g, true);
    rc = g->cancelled ? ds8b__seterr(e, DS8B_E_CANCELLED, "the stream callback stopped") : DS8B_OK;
    ds8b__gen_free(g);
    return rc;
}

DS8B_API int64_t ds8b_session_n_generated(const ds8b_session *s) {
    return ds8b__sess_ok(s) ? s->n_generated : -1;
}
