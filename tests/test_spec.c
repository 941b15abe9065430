/* test_spec.c -- speculative decoding: with every drafter (prompt lookup,
 * host text, right and wrong, a draft model), greedy and sampled output,
 * the streamed text, the finish reason, the tokens and the
 * ds8b_session_save bytes equal those of plain decoding (spec off), for
 * both demo models; the verification pass computes every row bit for bit
 * like a one-row step for every weight type at every ISA level; stop
 * strings, cancellation and the reasoning channel in the middle of a
 * draft; chat replies; batch members speculating (every member as alone,
 * greedy, sampled, host drafts, grammars, stop strings, cancellation, mixed
 * modes); parameter checks and misuse. */
#include "t.h"
#include "ds8b.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <stdbool.h>
#include <unistd.h>

static ds8b_model *g_llama, *g_qwen;

/* ================================================================== */
/* Helpers                                                             */
/* ================================================================== */
typedef struct cfg {
    const char *prompt;
    double temp, top_p, min_p, rep;
    int64_t top_k, seed, max_tokens;
    const char *stop;
    int flags;
    int cancel_after; /* callback returns 1 at this piece (0: never) */
    int max_draft;    /* 0: the default */
} cfg;

typedef struct out {
    char text[8192];
    size_t n;
    int pieces, cancel_after;
    int32_t toks[1024];
    size_t ntok;
    int rc, finish;
    int64_t n_gen;
    uint8_t *save;
    size_t save_len;
    int64_t drafted, accepted, passes;
} out;

static int collect(void *user, const char *piece, size_t len, int channel) {
    out *o = user;
    if (o->n + len + 2 < sizeof o->text) {
        o->text[o->n++] = channel == DS8B_CHANNEL_REASONING ? '\x01' : '\x02'; /* channel tag */
        memcpy(o->text + o->n, piece, len);
        o->n += len;
        o->text[o->n] = 0;
    }
    o->pieces++;
    return o->cancel_after && o->pieces >= o->cancel_after;
}

static ds8b_session *mk(ds8b_model *m, const cfg *c, int spec) {
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 512);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1);
    ds8b_params_set_int(p, DS8B_PARAM_SEED, c->seed);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, c->temp);
    ds8b_params_set_float(p, DS8B_PARAM_TOP_P, c->top_p > 0 ? c->top_p : 0.95);
    ds8b_params_set_float(p, DS8B_PARAM_MIN_P, c->min_p);
    ds8b_params_set_float(p, DS8B_PARAM_REPEAT_PENALTY, c->rep > 0 ? c->rep : 1.0);
    ds8b_params_set_int(p, DS8B_PARAM_TOP_K, c->top_k);
    ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, c->max_tokens ? c->max_tokens : 64);
    ds8b_params_set_int(p, DS8B_PARAM_SPEC, spec);
    if (c->max_draft) ds8b_params_set_int(p, DS8B_PARAM_SPEC_MAX_DRAFT, c->max_draft);
    if (c->stop) ds8b_params_add_stop(p, c->stop);
    ds8b_session *s = NULL;
    int rc = ds8b_session_create(m, p, &s);
    CHECK(rc == 0, "session: %s", ds8b_errmsg());
    ds8b_params_free(p);
    return s;
}

static void finish_out(ds8b_session *s, out *o) {
    CHECK(ds8b_session_tokens(s, o->toks, 1024, &o->ntok) == 0, "tokens: %s", ds8b_errmsg());
    o->finish = ds8b_session_finish_reason(s);
    o->n_gen = ds8b_session_n_generated(s);
    size_t len = 0;
    ds8b_session_save(s, NULL, 0, &len);
    o->save = malloc(len + 1);
    CHECK(o->save && ds8b_session_save(s, o->save, len, &o->save_len) == 0, "save: %s", ds8b_errmsg());
    ds8b_session_spec_stats(s, &o->drafted, &o->accepted, &o->passes);
}

static void free_out(out *o) {
    free(o->save);
    o->save = NULL;
}

/* One generation of c on a fresh session of m. host: a draft text or
 * NULL; dm: a draft model or NULL. */
static void run(ds8b_model *m, const cfg *c, int spec, const char *host, ds8b_model *dm, out *o) {
    memset(o, 0, sizeof *o);
    o->cancel_after = c->cancel_after;
    ds8b_session *s = mk(m, c, spec);
    if (!s) return;
    if (host) CHECK(ds8b_session_set_draft(s, host, strlen(host)) == 0, "set_draft: %s", ds8b_errmsg());
    if (dm) CHECK(ds8b_session_set_draft_model(s, dm) == 0, "set_draft_model: %s", ds8b_errmsg());
    o->rc = ds8b_generate(s, c->prompt, strlen(c->prompt), DS8B_GEN_ADD_SPECIAL | c->flags, collect, o, NULL);
    finish_out(s, o);
    ds8b_session_free(s);
}

static bool same(const out *a, const out *b, const char *what) {
    int f0 = t_failures;
    CHECK(a->rc == b->rc, "%s: rc %d vs %d", what, a->rc, b->rc);
    CHECK(a->n == b->n && memcmp(a->text, b->text, a->n) == 0, "%s: text differs:\n'%s'\nvs\n'%s'", what,
          a->text, b->text);
    CHECK(a->ntok == b->ntok && memcmp(a->toks, b->toks, a->ntok * sizeof(int32_t)) == 0,
          "%s: tokens differ (%zu vs %zu)", what, a->ntok, b->ntok);
    CHECK(a->finish == b->finish, "%s: finish %d vs %d", what, a->finish, b->finish);
    CHECK(a->n_gen == b->n_gen, "%s: generated %lld vs %lld", what, (long long)a->n_gen, (long long)b->n_gen);
    CHECK(a->save_len == b->save_len && a->save && b->save && memcmp(a->save, b->save, a->save_len) == 0,
          "%s: saved state differs (%zu vs %zu bytes)", what, a->save_len, b->save_len);
    return t_failures == f0;
}

/* Plain text of an output (channel tags removed). */
static void plain_text(const out *o, char *dst, size_t cap) {
    size_t j = 0;
    for (size_t i = 0; i < o->n && j + 1 < cap; i++)
        if (o->text[i] != '\x01' && o->text[i] != '\x02') dst[j++] = o->text[i];
    dst[j] = 0;
}

static const char *k_repeat =
    "The list type is a mutable sequence. The list type supports indexing and slicing. "
    "The tuple type is an immutable sequence. The tuple type supports indexing and slicing. "
    "The range type is an immutable sequence. The range type";
static const char *k_code =
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n";
static const char *k_plainish = "Write one sentence about";

/* ================================================================== */
/* Greedy: every drafter, both models                                  */
/* ================================================================== */
static void greedy_models(ds8b_model *m, const char *name) {
    const char *prompts[] = {k_repeat, k_code, k_plainish};
    int64_t drafted = 0, accepted = 0;
    for (int pi = 0; pi < 3; pi++) {
        cfg c = {.prompt = prompts[pi], .temp = 0, .max_tokens = 80};
        out plain, sp, au;
        char what[128];
        run(m, &c, DS8B_SPEC_OFF, NULL, NULL, &plain);
        CHECK(plain.rc == 0 && plain.n_gen > 0, "%s plain: rc %d", name, plain.rc);
        CHECK(plain.passes == 0, "%s: spec off made %lld passes", name, (long long)plain.passes);
        run(m, &c, DS8B_SPEC_ON, NULL, NULL, &sp);
        snprintf(what, sizeof what, "%s lookup on, prompt %d", name, pi);
        same(&plain, &sp, what);
        drafted += sp.drafted;
        accepted += sp.accepted;
        run(m, &c, DS8B_SPEC_AUTO, NULL, NULL, &au);
        snprintf(what, sizeof what, "%s lookup auto, prompt %d", name, pi);
        same(&plain, &au, what);
        free_out(&plain);
        free_out(&sp);
        free_out(&au);
    }
    /* the test must exercise speculation, with both outcomes */
    CHECK(drafted > 0 && accepted > 0 && accepted < drafted, "%s: drafted %lld accepted %lld", name,
          (long long)drafted, (long long)accepted);
}

static void test_greedy_lookup_llama(void) { greedy_models(g_llama, "llama"); }
static void test_greedy_lookup_qwen3(void) { greedy_models(g_qwen, "qwen3"); }

/* Host drafts: the true continuation (accepted throughout), the same
 * with one word changed, unrelated text, and garbage bytes. */
static void host_drafts(ds8b_model *m, const char *name, double temp, int64_t seed) {
    cfg c = {.prompt = k_plainish, .temp = temp, .seed = seed, .top_k = 40, .max_tokens = 60};
    out plain, o;
    run(m, &c, DS8B_SPEC_OFF, NULL, NULL, &plain);
    char truth[8192], changed[8192];
    plain_text(&plain, truth, sizeof truth);
    snprintf(changed, sizeof changed, "%s", truth);
    char *sp = strchr(changed + 8, ' ');
    if (sp && sp[1]) sp[1] = sp[1] == 'x' ? 'y' : 'x';
    const char *drafts[] = {truth, changed, "Completely unrelated words about gardening and weather.",
                            "\xff\xfe garbage \x01\x02 <think> </think>", ""};
    for (int i = 0; i < 5; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s host draft %d temp %.1f seed %lld", name, i, temp, (long long)seed);
        run(m, &c, DS8B_SPEC_ON, drafts[i], NULL, &o);
        same(&plain, &o, what);
        if (i == 0 && temp == 0)
            CHECK(o.accepted * 10 >= o.n_gen * 7, "%s: the true continuation accepted only %lld of %lld", what,
                  (long long)o.accepted, (long long)o.n_gen);
        free_out(&o);
    }
    free_out(&plain);
}

static void test_greedy_host_draft(void) {
    host_drafts(g_llama, "llama", 0, 1);
    host_drafts(g_qwen, "qwen3", 0, 1);
}

/* Draft models: the same model quantized in memory, and the other demo
 * model (same tokenizer). */
static void test_greedy_draft_model(void) {
    ds8b_model *q = NULL;
    CHECK(ds8b_model_quantize(g_llama, "q4_0", NULL, &q) == 0, "quantize: %s", ds8b_errmsg());
    if (!q) return;
    struct { ds8b_model *m, *dm; const char *what; } pairs[] = {
        {g_llama, q, "llama <- llama q4_0"}, {g_llama, g_qwen, "llama <- qwen3"}, {g_qwen, g_llama, "qwen3 <- llama"}};
    int64_t acc = 0;
    for (int i = 0; i < 3; i++) {
        for (int pi = 0; pi < 2; pi++) {
            cfg c = {.prompt = pi ? k_code : k_plainish, .temp = 0, .max_tokens = 48};
            out plain, o;
            run(pairs[i].m, &c, DS8B_SPEC_OFF, NULL, NULL, &plain);
            run(pairs[i].m, &c, DS8B_SPEC_ON, NULL, pairs[i].dm, &o);
            char what[128];
            snprintf(what, sizeof what, "%s prompt %d", pairs[i].what, pi);
            same(&plain, &o, what);
            CHECK(o.passes > 0, "%s: no verification pass", what);
            if (i == 0) acc += o.accepted;
            free_out(&plain);
            free_out(&o);
        }
    }
    CHECK(acc > 0, "a q4_0 copy of the model accepted no draft");
    /* detaching, and a model with sessions cannot be freed under us */
    cfg c = {.prompt = k_plainish, .max_tokens = 8};
    ds8b_session *s = mk(g_llama, &c, DS8B_SPEC_ON);
    CHECK(ds8b_session_set_draft_model(s, q) == 0, "attach");
    ds8b_model_free(q); /* refused: the draft session uses it */
    CHECK(ds8b_model_desc(q) != NULL, "draft model freed while in use");
    CHECK(ds8b_session_set_draft_model(s, NULL) == 0, "detach");
    ds8b_session_free(s);
    ds8b_model_free(q);
}

/* ================================================================== */
/* Sampling: seed-exact for many seeds and settings                    */
/* ================================================================== */
static void test_sampled_seed_exact(void) {
    struct { double temp, top_p, min_p, rep; int64_t top_k; } set[] = {
        {0.8, 0.95, 0.05, 1.0, 40}, {1.0, 1.0, 0.0, 1.0, 0}, {0.6, 0.9, 0.0, 1.15, 20}, {1.3, 0.8, 0.1, 1.0, 0},
        {0.3, 1.0, 0.0, 1.3, 5},
    };
    int n_seeds = t_quick() ? 2 : 3;
    int64_t acc = 0;
    for (int si = 0; si < 5; si++) {
        for (int seed = 1; seed <= n_seeds; seed++) {
            ds8b_model *m = (seed & 1) ? g_llama : g_qwen;
            cfg c = {.prompt = si & 1 ? k_repeat : k_code, .temp = set[si].temp, .top_p = set[si].top_p,
                     .min_p = set[si].min_p, .rep = set[si].rep, .top_k = set[si].top_k, .seed = seed * 7919,
                     .max_tokens = 48};
            out plain, look, host;
            run(m, &c, DS8B_SPEC_OFF, NULL, NULL, &plain);
            char truth[8192], what[128];
            plain_text(&plain, truth, sizeof truth);
            run(m, &c, DS8B_SPEC_ON, NULL, NULL, &look);
            snprintf(what, sizeof what, "sampled set %d seed %d lookup", si, seed);
            same(&plain, &look, what);
            run(m, &c, DS8B_SPEC_ON, truth, NULL, &host);
            snprintf(what, sizeof what, "sampled set %d seed %d host", si, seed);
            same(&plain, &host, what);
            acc += host.accepted;
            free_out(&plain);
            free_out(&look);
            free_out(&host);
        }
    }
    CHECK(acc > 0, "no sampled draft was ever accepted");
}

/* ================================================================== */
/* Rollback: state equals a session that never saw rejected tokens     */
/* ================================================================== */
static void test_rollback_state(void) {
    /* a host draft that is wrong from its second token: every pass rejects */
    cfg c = {.prompt = k_plainish, .temp = 0, .max_tokens = 40, .max_draft = 8};
    out plain, o;
    run(g_llama, &c, DS8B_SPEC_OFF, NULL, NULL, &plain);
    char truth[8192], wrong[8192];
    plain_text(&plain, truth, sizeof truth);
    /* keep the first word, then something else repeated */
    char *sp = strchr(truth + 1, ' ');
    size_t keep = sp ? (size_t)(sp - truth) : strlen(truth);
    snprintf(wrong, sizeof wrong, "%.*s zebra zebra zebra zebra zebra zebra zebra zebra", (int)keep, truth);
    run(g_llama, &c, DS8B_SPEC_ON, wrong, NULL, &o);
    same(&plain, &o, "rejected host draft");
    CHECK(o.passes > 0 && o.accepted < o.drafted, "passes %lld drafted %lld accepted %lld", (long long)o.passes,
          (long long)o.drafted, (long long)o.accepted);
    free_out(&o);

    /* continue after a speculative generation: a second generation and
     * a restore from the saved bytes behave as after plain decoding */
    ds8b_session *a = mk(g_llama, &c, DS8B_SPEC_OFF), *b = mk(g_llama, &c, DS8B_SPEC_ON);
    out oa = {0}, ob = {0};
    ds8b_generate(a, k_repeat, strlen(k_repeat), DS8B_GEN_ADD_SPECIAL, collect, &oa, NULL);
    ds8b_generate(b, k_repeat, strlen(k_repeat), DS8B_GEN_ADD_SPECIAL, collect, &ob, NULL);
    ds8b_generate(a, " More:", 6, 0, collect, &oa, NULL);
    ds8b_generate(b, " More:", 6, 0, collect, &ob, NULL);
    finish_out(a, &oa);
    finish_out(b, &ob);
    same(&oa, &ob, "two generations");
    CHECK(ob.passes > 0, "no pass");
    ds8b_session *r = mk(g_llama, &c, DS8B_SPEC_ON);
    CHECK(ds8b_session_load(r, ob.save, ob.save_len) == 0, "load: %s", ds8b_errmsg());
    out ra = {0}, rb = {0};
    ds8b_generate(a, "", 0, 0, collect, &ra, NULL);
    ds8b_generate(r, "", 0, 0, collect, &rb, NULL);
    finish_out(a, &ra);
    finish_out(r, &rb);
    ra.passes = rb.passes = 0;
    same(&ra, &rb, "after restore");
    free_out(&oa);
    free_out(&ob);
    free_out(&ra);
    free_out(&rb);
    free_out(&plain);
    ds8b_session_free(a);
    ds8b_session_free(b);
    ds8b_session_free(r);
}

/* ================================================================== */
/* Stop strings, cancellation, reasoning inside a draft                */
/* ================================================================== */
static void test_stop_cancel_reasoning(void) {
    cfg base = {.prompt = k_plainish, .temp = 0, .max_tokens = 60};
    out plain;
    run(g_llama, &base, DS8B_SPEC_OFF, NULL, NULL, &plain);
    char truth[8192];
    plain_text(&plain, truth, sizeof truth);
    size_t tl = strlen(truth);
    CHECK(tl > 40, "continuation too short (%zu)", tl);
    if (tl <= 40) { free_out(&plain); return; }
    /* a stop string from the middle of the text: it fires inside an accepted draft */
    char stop[16];
    snprintf(stop, sizeof stop, "%.5s", truth + tl / 2);
    cfg c = base;
    c.stop = stop;
    out a, b;
    run(g_llama, &c, DS8B_SPEC_OFF, NULL, NULL, &a);
    run(g_llama, &c, DS8B_SPEC_ON, truth, NULL, &b);
    same(&a, &b, "stop string inside a draft");
    CHECK(b.finish == DS8B_FINISH_STOP_STRING, "finish %d", b.finish);
    CHECK(b.accepted > 0, "no draft accepted");
    free_out(&a);
    free_out(&b);
    /* the callback cancels after a few pieces */
    for (int k = 3; k <= 9; k += 3) {
        c = base;
        c.cancel_after = k;
        run(g_llama, &c, DS8B_SPEC_OFF, NULL, NULL, &a);
        run(g_llama, &c, DS8B_SPEC_ON, truth, NULL, &b);
        char what[64];
        snprintf(what, sizeof what, "cancel after %d pieces", k);
        same(&a, &b, what);
        CHECK(b.rc == DS8B_E_CANCELLED && b.finish == DS8B_FINISH_CANCELLED, "%s: rc %d finish %d", what, b.rc,
              b.finish);
        free_out(&a);
        free_out(&b);
    }
    /* a cancel request before the call: consumed by it, as without speculation */
    ds8b_session *s = mk(g_llama, &base, DS8B_SPEC_ON);
    ds8b_session_cancel(s);
    CHECK(ds8b_generate(s, k_plainish, strlen(k_plainish), 0, NULL, NULL, NULL) == DS8B_E_CANCELLED, "pre-cancel");
    CHECK(ds8b_generate(s, k_plainish, strlen(k_plainish), 0, NULL, NULL, NULL) == 0, "after the cancel: %s",
          ds8b_errmsg());
    ds8b_session_free(s);
    free_out(&plain);

    /* reasoning: </think> and <think> arrive inside drafted text */
    const char *rp = "Question: what is a list?<think>\nA list is a sequence. A list is a sequence.</think>\n\nA list "
                     "is a sequence. <think>\nA list";
    cfg r = {.prompt = rp, .temp = 0, .max_tokens = 60, .flags = DS8B_GEN_REASONING};
    run(g_qwen, &r, DS8B_SPEC_OFF, NULL, NULL, &a);
    const char *host = " is a sequence.</think>\n\nA list is a sequence. A list is a sequence.";
    run(g_qwen, &r, DS8B_SPEC_ON, host, NULL, &b);
    same(&a, &b, "reasoning with a host draft");
    free_out(&b);
    run(g_qwen, &r, DS8B_SPEC_ON, NULL, NULL, &b);
    same(&a, &b, "reasoning with lookup");
    free_out(&a);
    free_out(&b);
}

/* ================================================================== */
/* A full context: the slide and stop policies with drafts at the edge */
/* ================================================================== */
static void test_context_edge(void) {
    int policies[] = {DS8B_CTX_SLIDE, DS8B_CTX_STOP, DS8B_CTX_ERROR};
    for (int pi = 0; pi < 3; pi++) {
        out o[2];
        for (int k = 0; k < 2; k++) {
            memset(&o[k], 0, sizeof o[k]);
            ds8b_params *p;
            ds8b_params_create(&p);
            ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 72);
            ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1);
            ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0);
            ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, 120);
            ds8b_params_set_int(p, DS8B_PARAM_CTX_POLICY, policies[pi]);
            ds8b_params_set_int(p, DS8B_PARAM_N_SINK, 4);
            ds8b_params_set_int(p, DS8B_PARAM_SPEC, k ? DS8B_SPEC_ON : DS8B_SPEC_OFF);
            ds8b_session *s = NULL;
            CHECK(ds8b_session_create(g_llama, p, &s) == 0, "session");
            ds8b_params_free(p);
            if (!s) return;
            o[k].rc = ds8b_generate(s, k_repeat, strlen(k_repeat), DS8B_GEN_ADD_SPECIAL, collect, &o[k], NULL);
            finish_out(s, &o[k]);
            ds8b_session_free(s);
        }
        char what[64];
        snprintf(what, sizeof what, "context policy %d at n_ctx 72", policies[pi]);
        same(&o[0], &o[1], what);
        CHECK(o[1].passes > 0, "%s: no pass", what);
        free_out(&o[0]);
        free_out(&o[1]);
    }
}

/* ================================================================== */
/* Chat replies                                                        */
/* ================================================================== */
static void chat_once(int spec, char *reply, size_t cap, int64_t *passes) {
    cfg c = {.temp = 0, .max_tokens = 48};
    ds8b_session *s = mk(g_llama, &c, spec);
    ds8b_chat *ch = NULL;
    CHECK(ds8b_chat_create(s, &ch) == 0, "chat: %s", ds8b_errmsg());
    ds8b_chat_add(ch, "user", "Repeat after me: the list type is a mutable sequence. the list type is a mutable sequence.");
    CHECK(ds8b_chat_reply(ch, NULL, NULL, NULL) == 0, "reply: %s", ds8b_chat_errmsg(ch));
    snprintf(reply, cap, "%s|%s", ds8b_chat_last_reasoning(ch), ds8b_chat_last_reply(ch));
    ds8b_session_spec_stats(s, NULL, NULL, passes);
    ds8b_chat_free(ch);
    ds8b_session_free(s);
}

static void test_chat(void) {
    char a[8192], b[8192];
    int64_t pa = 0, pb = 0;
    chat_once(DS8B_SPEC_OFF, a, sizeof a, &pa);
    chat_once(DS8B_SPEC_ON, b, sizeof b, &pb);
    CHECK(strcmp(a, b) == 0, "chat reply differs:\n'%s'\nvs\n'%s'", a, b);
    CHECK(pa == 0, "spec off made passes");

}

/* ================================================================== */
/* Batch members speculate, each exactly as alone                      */
/* ================================================================== */
typedef struct bmember {
    cfg c;
    const char *host; /* "SELF": the plain output of the member alone */
    bool grammar;
    int spec;         /* mode of this member in the batch (-1: the batch's mode) */
} bmember;

static ds8b_grammar *g_gram;

static ds8b_session *mk_member(ds8b_model *m, const bmember *bm, int spec, const char *host) {
    ds8b_session *s = mk(m, &bm->c, spec);
    if (!s) return NULL;
    if (host) CHECK(ds8b_session_set_draft(s, host, strlen(host)) == 0, "set_draft: %s", ds8b_errmsg());
    if (bm->grammar) CHECK(ds8b_session_set_grammar(s, g_gram) == 0, "grammar: %s", ds8b_errmsg());
    return s;
}

/* Runs the members alone (spec off: the reference) and then together in
 * one batch with speculation `spec`; every member must match. Returns the
 * batch's drafted/accepted/passes totals. */
static void batch_vs_alone(ds8b_model *m, const char *name, const bmember *bm, int nm, int spec, int threads,
                           int64_t tot[3]) {
    out alone[8], mem[8];
    char self[8][8192];
    for (int i = 0; i < nm; i++) {
        memset(&alone[i], 0, sizeof alone[i]);
        alone[i].cancel_after = bm[i].c.cancel_after;
        ds8b_session *s = mk_member(m, &bm[i], DS8B_SPEC_OFF, NULL);
        if (!s) return;
        alone[i].rc = ds8b_generate(s, bm[i].c.prompt, strlen(bm[i].c.prompt), DS8B_GEN_ADD_SPECIAL | bm[i].c.flags,
                                    collect, &alone[i], NULL);
        finish_out(s, &alone[i]);
        ds8b_session_free(s);
        plain_text(&alone[i], self[i], sizeof self[i]);
    }
    ds8b_params *bp;
    ds8b_params_create(&bp);
    ds8b_params_set_int(bp, DS8B_PARAM_N_THREADS, threads);
    ds8b_batch *bt = NULL;
    CHECK(ds8b_batch_create(m, bp, &bt) == 0, "batch: %s", ds8b_errmsg());
    ds8b_params_free(bp);
    ds8b_session *ss[8];
    for (int i = 0; i < nm; i++) {
        memset(&mem[i], 0, sizeof mem[i]);
        mem[i].cancel_after = bm[i].c.cancel_after;
        const char *host = bm[i].host && !strcmp(bm[i].host, "SELF") ? self[i] : bm[i].host;
        ss[i] = mk_member(m, &bm[i], bm[i].spec >= 0 ? bm[i].spec : spec, host);
        CHECK(ds8b_batch_add(bt, ss[i], bm[i].c.prompt, strlen(bm[i].c.prompt), DS8B_GEN_ADD_SPECIAL | bm[i].c.flags,
                             collect, &mem[i]) == 0,
              "add: %s", ds8b_batch_errmsg(bt));
    }
    int64_t n = nm;
    for (int it = 0; it < 1000 && n > 0; it++) CHECK(ds8b_batch_step(bt, &n) == 0, "step: %s", ds8b_batch_errmsg(bt));
    CHECK(n == 0, "members left: %lld", (long long)n);
    ds8b_batch_free(bt);
    for (int i = 0; i < nm; i++) {
        finish_out(ss[i], &mem[i]);
        /* a member's error code is its finish reason (the step succeeds) */
        mem[i].rc = alone[i].rc;
        char what[160];
        snprintf(what, sizeof what, "%s batch (spec %d, %d threads) member %d", name, spec, threads, i);
        same(&alone[i], &mem[i], what);
        tot[0] += mem[i].drafted;
        tot[1] += mem[i].accepted;
        tot[2] += mem[i].passes;
        ds8b_session_free(ss[i]);
        free_out(&alone[i]);
        free_out(&mem[i]);
    }
}

static void batch_members(ds8b_model *m, const char *name) {
    const bmember bm[] = {
        {.c = {.prompt = k_repeat, .temp = 0, .max_tokens = 60}, .spec = -1},
        {.c = {.prompt = k_repeat, .temp = 0.8, .seed = 3, .top_k = 40, .max_tokens = 60}, .spec = -1},
        {.c = {.prompt = k_code, .temp = 0, .max_tokens = 70, .stop = "mul"}, .spec = -1},
        {.c = {.prompt = k_plainish, .temp = 0, .max_tokens = 50}, .host = "SELF", .spec = -1},
        {.c = {.prompt = k_code, .temp = 1.0, .seed = 11, .top_p = 0.9, .rep = 1.1, .max_tokens = 60}, .spec = -1},
        {.c = {.prompt = k_repeat, .temp = 0, .max_tokens = 40}, .grammar = true, .spec = -1},
        {.c = {.prompt = k_repeat, .temp = 0.7, .seed = 5, .max_tokens = 60}, .host = "SELF", .spec = -1},
        {.c = {.prompt = k_repeat, .temp = 0, .max_tokens = 60, .cancel_after = 9}, .spec = -1},
    };
    int nm = (int)(sizeof bm / sizeof bm[0]);
    int64_t on[3] = {0}, au[3] = {0}, off[3] = {0};
    batch_vs_alone(m, name, bm, nm, DS8B_SPEC_ON, 1, on);
    batch_vs_alone(m, name, bm, nm, DS8B_SPEC_AUTO, 2, au);
    batch_vs_alone(m, name, bm, nm, DS8B_SPEC_OFF, 1, off);
    /* the batch must really speculate, with both outcomes */
    CHECK(on[2] > 0 && on[1] > 0 && on[1] < on[0], "%s: batch on drafted %lld accepted %lld passes %lld", name,
          (long long)on[0], (long long)on[1], (long long)on[2]);
    CHECK(off[2] == 0, "%s: batch with speculation off made %lld passes", name, (long long)off[2]);
    /* members of mixed modes in one batch */
    bmember mixed[4];
    for (int i = 0; i < 4; i++) {
        mixed[i] = bm[i];
        mixed[i].spec = i % 3 == 0 ? DS8B_SPEC_ON : i % 3 == 1 ? DS8B_SPEC_OFF : DS8B_SPEC_AUTO;
    }
    int64_t mx[3] = {0};
    batch_vs_alone(m, name, mixed, 4, DS8B_SPEC_ON, 2, mx);
    /* one member alone in a batch */
    int64_t one[3] = {0};
    batch_vs_alone(m, name, bm + 3, 1, DS8B_SPEC_ON, 1, one);
    CHECK(one[1] > 0, "%s: the host draft was never accepted in a batch", name);
}

static void test_batch_speculates(void) {
    CHECK(ds8b_grammar_compile("root ::= [a-zA-Z ,.]+", strlen("root ::= [a-zA-Z ,.]+"), "root", &g_gram) == 0,
          "grammar: %s", ds8b_errmsg());
    batch_members(g_llama, "llama");
    batch_members(g_qwen, "qwen3");
    ds8b_grammar_free(g_gram);
    g_gram = NULL;
}

/* ================================================================== */
/* The pass: every weight type, every ISA level, bit for bit            */
/* ================================================================== */
static uint64_t g_rng = 0x12345678;
static uint32_t rnd32(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 33);
}
static float rndu(void) { return (float)(rnd32() & 0xFFFFFF) / 16777216.0f; }

static void make_weights(int type, int64_t rows, int64_t cols, ds8b__tensor *t) {
    size_t rb;
    ds8b__row_bytes(type, cols, &rb);
    uint8_t *data = malloc(rb * (size_t)rows + 64);
    float *f = malloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *dst = data + (size_t)r * rb;
        if (type == DS8B_T_Q2_K || type == DS8B_T_Q3_K) { /* no quantizer: random bytes, sane scales */
            for (size_t i = 0; i < rb; i++) dst[i] = (uint8_t)rnd32();
            for (int64_t b = 0; b < cols / 256; b++) {
                uint8_t *blk = dst + b * (type == DS8B_T_Q2_K ? 84 : 110);
                uint16_t h = ds8b__f32_to_f16(0.01f + 0.02f * rndu()), m = ds8b__f32_to_f16(0.01f * rndu());
                if (type == DS8B_T_Q2_K) { memcpy(blk + 80, &h, 2); memcpy(blk + 82, &m, 2); }
                else memcpy(blk + 108, &h, 2);
            }
        } else {
            for (int64_t i = 0; i < cols; i++) f[i] = (rndu() - 0.5f) * 2.0f;
            ds8b__quant_row(type, f, dst, cols);
        }
    }
    free(f);
    memset(t, 0, sizeof *t);
    t->type = type;
    t->n_dims = 2;
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->ne[2] = t->ne[3] = 1;
    t->data = data;
    t->nbytes = rb * (size_t)rows;
}

/* The matmul of a pass (DS8B_MM_ROWWISE, k+1 rows) against one-row calls,
 * and, for the record, whether the prompt path (no flag) would also be
 * exact: it need not be, and the pass does not use it. */
static void test_pass_rows_exact_kernels(void) {
    static const int types[] = {DS8B_T_F32,  DS8B_T_F16,  DS8B_T_BF16, DS8B_T_Q4_0, DS8B_T_Q4_1,
                                DS8B_T_Q5_0, DS8B_T_Q5_1, DS8B_T_Q8_0, DS8B_T_Q2_K, DS8B_T_Q3_K,
                                DS8B_T_Q4_K, DS8B_T_Q5_K, DS8B_T_Q6_K, DS8B_T_W4A16};
    const int64_t rows = 96, cols = 512, n = 17;
    float *x = malloc((size_t)(n * cols) * sizeof(float)), *y = malloc((size_t)(n * rows) * sizeof(float)),
          *y1 = malloc((size_t)rows * sizeof(float));
    for (int64_t i = 0; i < n * cols; i++) x[i] = (rndu() - 0.5f) * 3.0f;
    ds8b__pool *pool = NULL;
    ds8b__err e = {0};
    CHECK(ds8b__pool_create(2, &pool, &e) == 0, "pool");
    ds8b__workspace ws = {0};
    int top = ds8b__isa_max_level();
    char inexact[512] = "";
    for (int lvl = 0; lvl <= top; lvl++) {
        ds8b__isa_force(lvl);
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            ds8b__tensor w;
            make_weights(types[ti], rows, cols, &w);
            for (int64_t k1 = 2; k1 <= n; k1 += 5) { /* k+1 = 2, 7, 12, 17 */
                CHECK(ds8b__matmul_ex(pool, &w, x, k1, y, &ws, DS8B_MM_ROWWISE, &e) == 0, "mm: %s", e.msg);
                bool ok = true;
                for (int64_t r = 0; r < k1 && ok; r++) {
                    CHECK(ds8b__matmul_ex(pool, &w, x + r * cols, 1, y1, &ws, 0, &e) == 0, "mm1");
                    ok = memcmp(y1, y + r * rows, (size_t)rows * sizeof(float)) == 0;
                }
                CHECK(ok, "type %d level %d k+1=%lld: a ROWWISE row differs from a one-row call", types[ti], lvl,
                      (long long)k1);
                CHECK(ds8b__matmul_ex(pool, &w, x, k1, y, &ws, 0, &e) == 0, "mm");
                bool same_prompt = true;
                for (int64_t r = 0; r < k1 && same_prompt; r++) {
                    ds8b__matmul_ex(pool, &w, x + r * cols, 1, y1, &ws, 0, &e);
                    same_prompt = memcmp(y1, y + r * rows, (size_t)rows * sizeof(float)) == 0;
                }
                if (!same_prompt && k1 == n) {
                    size_t l = strlen(inexact);
                    snprintf(inexact + l, sizeof inexact - l, " %d@%d", types[ti], lvl);
                }
            }
            free((void *)w.data);
        }
    }
    /* float weights at widths with every tail of the four-row dot kernels */
    static const int64_t widths[] = {8, 40, 77, 200, 264};
    for (int lvl = 0; lvl <= top; lvl++) {
        ds8b__isa_force(lvl);
        for (int ti = 0; ti < 3; ti++) {
            int type = ti == 0 ? DS8B_T_F16 : ti == 1 ? DS8B_T_BF16 : DS8B_T_F32;
            for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
                ds8b__tensor w;
                make_weights(type, rows, widths[wi], &w);
                for (int64_t k1 = 4; k1 <= 9; k1 += 5) {
                    CHECK(ds8b__matmul_ex(pool, &w, x, k1, y, &ws, DS8B_MM_ROWWISE, &e) == 0, "mm: %s", e.msg);
                    bool ok = true;
                    for (int64_t r = 0; r < k1 && ok; r++) {
                        CHECK(ds8b__matmul_ex(pool, &w, x + r * widths[wi], 1, y1, &ws, 0, &e) == 0, "mm1");
                        ok = memcmp(y1, y + r * rows, (size_t)rows * sizeof(float)) == 0;
                    }
                    CHECK(ok, "type %d width %lld level %d k+1=%lld: a ROWWISE row differs from a one-row call", type,
                          (long long)widths[wi], lvl, (long long)k1);
                }
                free((void *)w.data);
            }
        }
    }
    ds8b__isa_force(-1);
    printf("  # prompt path (not used by the pass) not row-exact at k+1=17 for type@level:%s\n", inexact);
    ds8b__free(ws.buf);
    ds8b__pool_free(pool);
    free(x);
    free(y);
    free(y1);
}

/* Whole models at every level and scheme: greedy speculation equals plain
 * greedy and the saved bytes (which hold the last logits) are equal. */
static void test_pass_exact_schemes_levels(void) {
    const char *schemes[] = {"bf16", "f32", "f16", "q8_0", "q4_0", "q4_k_m", "w4a16"};
    int top = ds8b__isa_max_level();
    for (size_t si = 0; si < sizeof schemes / sizeof schemes[0]; si++) {
        ds8b_model *m = g_llama;
        if (si > 0 && ds8b_model_quantize(g_llama, schemes[si], NULL, &m) != 0) {
            CHECK(0, "quantize %s: %s", schemes[si], ds8b_errmsg());
            continue;
        }
        for (int lvl = 0; lvl <= top; lvl++) {
            if (t_quick() && lvl != top && si > 1) continue;
            ds8b__isa_force(lvl);
            cfg c = {.prompt = k_repeat, .temp = 0, .max_tokens = 32};
            out plain, o;
            run(m, &c, DS8B_SPEC_OFF, NULL, NULL, &plain);
            run(m, &c, DS8B_SPEC_ON, NULL, NULL, &o);
            char what[64], truth[8192];
            snprintf(what, sizeof what, "%s at level %d, lookup", schemes[si], lvl);
            same(&plain, &o, what);
            free_out(&o);
            /* the true continuation as the host draft: long accepted runs */
            plain_text(&plain, truth, sizeof truth);
            run(m, &c, DS8B_SPEC_ON, truth, NULL, &o);
            snprintf(what, sizeof what, "%s at level %d, host", schemes[si], lvl);
            same(&plain, &o, what);
            CHECK(o.accepted > 0, "%s: nothing accepted", what);
            free_out(&plain);
            free_out(&o);
        }
        ds8b__isa_force(-1);
        if (m != g_llama) ds8b_model_free(m);
    }
}

/* Weights repacked at load (DS8B_PARAM_USE_MMAP = 0: the decode row-group
 * layout): the pass is still exact. */
static void test_pass_exact_repacked(void) {
    char path[1024];
    snprintf(path, sizeof path, "/tmp/ds8b-spec-q4_0-%d.gguf", (int)getpid());
    if (ds8b_quantize(strcat(strcpy((char[1024]){0}, t_shared()), "/models/demo-llama"), path, "q4_0", NULL)) {
        CHECK(0, "quantize: %s", ds8b_errmsg());
        return;
    }
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_USE_MMAP, 0);
    ds8b_model *m = NULL;
    int rc = ds8b_model_load(path, p, &m);
    ds8b_params_free(p);
    remove(path);
    CHECK(rc == 0, "load repacked: %s", ds8b_errmsg());
    if (rc) return;
    cfg c = {.prompt = k_repeat, .temp = 0, .max_tokens = 32};
    out plain, o;
    run(m, &c, DS8B_SPEC_OFF, NULL, NULL, &plain);
    char truth[8192];
    plain_text(&plain, truth, sizeof truth);
    run(m, &c, DS8B_SPEC_ON, truth, NULL, &o);
    same(&plain, &o, "q4_0 repacked (USE_MMAP=0)");
    CHECK(o.accepted > 0, "nothing accepted");
    free_out(&plain);
    free_out(&o);
    ds8b_model_free(m);
}

/* ================================================================== */
/* Parameters and misuse                                               */
/* ================================================================== */
static int cb_misuse(void *user, const char *piece, size_t len, int channel) {
    ds8b_session *s = user;
    return ds8b_session_set_draft(s, "x", 1) == DS8B_E_MISUSE ? 0 : 1;
}

static void test_params_and_misuse(void) {
    double lo, hi;
    CHECK(ds8b_param_bounds(DS8B_PARAM_SPEC, &lo, &hi) == 0 && lo == DS8B_SPEC_OFF && hi == DS8B_SPEC_ON, "bounds");
    ds8b_params *p;
    ds8b_params_create(&p);
    int64_t v = -1;
    CHECK(ds8b_params_get_int(p, DS8B_PARAM_SPEC, &v) == 0 && v == DS8B_SPEC_AUTO, "default %lld", (long long)v);
    CHECK(ds8b_params_set_int(p, DS8B_PARAM_SPEC, 3) == DS8B_E_INVALID, "3 accepted");
    CHECK(ds8b_params_set_int(p, DS8B_PARAM_SPEC_MAX_DRAFT, 64) == DS8B_E_INVALID, "64 accepted");
    CHECK(ds8b_params_set_int(p, DS8B_PARAM_SPEC_NGRAM, 1) == DS8B_E_INVALID, "ngram 1 accepted");
    ds8b_params_free(p);
    cfg c = {.prompt = k_repeat, .temp = 0, .max_tokens = 20};
    ds8b_session *s = mk(g_llama, &c, DS8B_SPEC_OFF);
    CHECK(ds8b_session_set_int(s, DS8B_PARAM_SPEC, DS8B_SPEC_ON) == 0, "live set: %s", ds8b_errmsg());
    CHECK(ds8b_session_set_int(s, DS8B_PARAM_SPEC_MAX_DRAFT, 4) == 0, "live max draft");
    CHECK(ds8b_session_set_int(s, DS8B_PARAM_SPEC_NGRAM, 5) == 0, "live ngram");
    ds8b_generate(s, k_repeat, strlen(k_repeat), DS8B_GEN_ADD_SPECIAL, NULL, NULL, NULL);
    int64_t d = 0, a = 0, np = 0;
    CHECK(ds8b_session_spec_stats(s, &d, &a, &np) == 0 && np > 0 && d <= 4 * np, "stats %lld %lld %lld",
          (long long)d, (long long)a, (long long)np);
    CHECK(ds8b_session_spec_stats(s, NULL, NULL, NULL) == 0, "NULL outs");
    CHECK(ds8b_session_spec_stats(NULL, &d, &a, &np) == DS8B_E_MISUSE, "NULL session");
    CHECK(ds8b_session_set_draft(NULL, "x", 1) == DS8B_E_MISUSE, "NULL session draft");
    CHECK(ds8b_session_set_draft(s, NULL, 3) == DS8B_E_INVALID, "NULL text");
    CHECK(ds8b_session_set_draft(s, NULL, 0) == 0, "clear");
    CHECK(ds8b_session_set_draft_model(NULL, g_qwen) == DS8B_E_MISUSE, "NULL session model");
    CHECK(ds8b_session_set_draft_model(s, (ds8b_model *)s) == DS8B_E_MISUSE, "wrong handle");
    /* from inside the stream callback */
    ds8b_generate(s, " more", 5, 0, cb_misuse, s, NULL);
    CHECK(ds8b_session_finish_reason(s) != DS8B_FINISH_CANCELLED, "set_draft from the callback was not refused");
    ds8b_session_free(s);
}

int main(void) {
    const char *sh = t_shared();
    char path[1024];
    snprintf(path, sizeof path, "%s/models/demo-llama", sh);
    if (ds8b_model_load(path, NULL, &g_llama) != 0) {
        printf("not ok load_models # %s\n", ds8b_errmsg());
        return 1;
    }
    snprintf(path, sizeof path, "%s/models/demo-qwen3", sh);
    if (ds8b_model_load(path, NULL, &g_qwen) != 0) {
        printf("not ok load_models # %s\n", ds8b_errmsg());
        return 1;
    }
    RUN(test_greedy_lookup_llama);
    RUN(test_greedy_lookup_qwen3);
    RUN(test_greedy_host_draft);
    RUN(test_greedy_draft_model);
    RUN(test_sampled_seed_exact);
    RUN(test_rollback_state);
    RUN(test_stop_cancel_reasoning);
    RUN(test_context_edge);
    RUN(test_chat);
    RUN(test_batch_speculates);
    RUN(test_pass_rows_exact_kernels);
    RUN(test_pass_exact_schemes_levels);
    RUN(test_pass_exact_repacked);
    RUN(test_params_and_misuse);
    ds8b_model_free(g_llama);
    ds8b_model_free(g_qwen);
    T_EXIT();
}
