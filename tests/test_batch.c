/* test_batch.c -- batched generation: each member of a batch produces the
 * same tokens, text and logits as the same session generating alone, for
 * float and quantized weights; members leave on their own stop conditions,
 * cancellation and removal; misuse is refused. Uses the demo models. */
#include "t.h"
#include "ds8b.h"

#include <math.h>
#include <stdbool.h>

static ds8b_model *g_llama, *g_qwen;

typedef struct spec {
    const char *prompt;
    int64_t seed, max_tokens, n_ctx;
    double temp;
    int policy;
    const char *stop;
    int no_eos;
} spec;

typedef struct out {
    char text[4096];
    size_t n;
    int32_t toks[512];
    size_t ntok;
    int finish;
    float last_logit[4];
    int64_t n_gen;
} out;

static int collect(void *user, const char *piece, size_t len, int channel) {
    out *o = user;
    for (size_t i = 0; i < len && o->n < sizeof o->text - 1; i++) o->text[o->n++] = piece[i];
    o->text[o->n] = 0;
    return 0;
}

static ds8b_session *mk(ds8b_model *m, const spec *sp, int threads) {
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, sp->n_ctx ? sp->n_ctx : 256);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, threads);
    ds8b_params_set_int(p, DS8B_PARAM_SEED, sp->seed);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, sp->temp);
    ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, sp->max_tokens);
    ds8b_params_set_int(p, DS8B_PARAM_CTX_POLICY, sp->policy);
    if (sp->stop) ds8b_params_add_stop(p, sp->stop);
    if (sp->no_eos) ds8b_params_set_int(p, DS8B_PARAM_STOP_AT_EOS, 0);
    ds8b_session *s = NULL;
    int rc = ds8b_session_create(m, p, &s);
    CHECK(rc == 0, "session: %s", ds8b_errmsg());
    ds8b_params_free(p);
    return s;
}

static void finish_out(ds8b_session *s, out *o) {
    CHECK(ds8b_session_tokens(s, o->toks, 512, &o->ntok) == 0, "tokens: %s", ds8b_errmsg());
    o->finish = ds8b_session_finish_reason(s);
    o->n_gen = ds8b_session_n_generated(s);
    const float *l = ds8b_session_logits(s);
    if (l) memcpy(o->last_logit, l, sizeof o->last_logit);
}

/* Generates sp's prompt with a fresh session of m, alone, into o. */
static void alone(ds8b_model *m, const spec *sp, out *o, const char *what) {
    ds8b_session *s = mk(m, sp, 1);
    int rc = ds8b_generate(s, sp->prompt, strlen(sp->prompt), DS8B_GEN_ADD_SPECIAL, collect, o, NULL);
    CHECK(rc == 0, "%s alone: %s", what, ds8b_errmsg());
    finish_out(s, o);
    ds8b_session_free(s);
}

static void same(const out *a, const out *b, const char *what, int i) {
    CHECK(a->n == b->n && strcmp(a->text, b->text) == 0, "%s member %d: text differs:\n'%s'\nvs\n'%s'", what,
          i, a->text, b->text);
    CHECK(a->ntok == b->ntok && memcmp(a->toks, b->toks, a->ntok * sizeof(int32_t)) == 0,
          "%s member %d: tokens differ (%zu vs %zu)", what, i, a->ntok, b->ntok);
    CHECK(a->finish == b->finish, "%s member %d: finish %d vs %d", what, i, a->finish, b->finish);
    CHECK(a->n_gen == b->n_gen, "%s member %d: generated %lld vs %lld", what, i, (long long)a->n_gen,
          (long long)b->n_gen);
    CHECK(memcmp(a->last_logit, b->last_logit, sizeof a->last_logit) == 0,
          "%s member %d: final logits differ (%.9g vs %.9g)", what, i, a->last_logit[0], b->last_logit[0]);
}

static const spec k_specs[] = {
    {"The Python", 42, 20, 0, 0.9, DS8B_CTX_ERROR, NULL, 0},
    {"Once upon a time", 7, 28, 0, 1.0, DS8B_CTX_ERROR, NULL, 0},
    {"量化压缩技术", 3, 12, 0, 0.0, DS8B_CTX_ERROR, NULL, 0},
    {"1, 2, 3,", 11, 40, 24, 0.8, DS8B_CTX_SLIDE, NULL, 1}, /* slides while batched */
    {"Hello", 5, 16, 0, 0.7, DS8B_CTX_STOP, " the", 0},     /* may end on a stop string */
    {"A", 99, 30, 20, 0.9, DS8B_CTX_STOP, NULL, 1},        /* stops on a full context */
};
#define NSPEC (int)(sizeof k_specs / sizeof k_specs[0])

/* Runs every spec alone, then all together in one batch, and compares. */
static void alone_vs_batched(ds8b_model *m, const char *what) {
    static out solo[NSPEC], batched[NSPEC];
    memset(solo, 0, sizeof solo);
    memset(batched, 0, sizeof batched);
    for (int i = 0; i < NSPEC; i++) alone(m, &k_specs[i], &solo[i], what);
    ds8b_params *bp;
    ds8b_params_create(&bp);
    ds8b_params_set_int(bp, DS8B_PARAM_N_THREADS, 2);
    ds8b_batch *b = NULL;
    CHECK(ds8b_batch_create(m, bp, &b) == 0, "batch: %s", ds8b_errmsg());
    ds8b_params_free(bp);
    ds8b_session *ss[NSPEC];
    for (int i = 0; i < NSPEC; i++) {
        ss[i] = mk(m, &k_specs[i], 2);
        int rc = ds8b_batch_add(b, ss[i], k_specs[i].prompt, strlen(k_specs[i].prompt), DS8B_GEN_ADD_SPECIAL,
                                collect, &batched[i]);
        CHECK(rc == 0, "%s add %d: %s", what, i, ds8b_errmsg());
        CHECK(ds8b_session_finish_reason(ss[i]) == DS8B_FINISH_NONE, "member %d not generating", i);
    }
    CHECK(ds8b_batch_size(b) == NSPEC, "size %lld", (long long)ds8b_batch_size(b));
    int64_t active = NSPEC, prev = NSPEC;
    int steps = 0;
    bool monotone = true;
    while (active > 0 && steps < 200) {
        int rc = ds8b_batch_step(b, &active);
        CHECK(rc == 0, "%s step %d: %s", what, steps, ds8b_batch_errmsg(b));
        if (rc) break;
        if (active > prev) monotone = false;
        prev = active;
        steps++;
    }
    CHECK(active == 0 && monotone, "%s: batch did not drain (%lld left after %d steps)", what, (long long)active,
          steps);
    /* the longest member decides the number of steps: max_tokens + 1 */
    CHECK(steps <= 41, "%s: %d steps for at most 40 tokens", what, steps);
    for (int i = 0; i < NSPEC; i++) {
        finish_out(ss[i], &batched[i]);
        same(&solo[i], &batched[i], what, i);
        CHECK(batched[i].finish != DS8B_FINISH_NONE && batched[i].finish != DS8B_FINISH_ERROR,
              "%s member %d: finish %d (%s)", what, i, batched[i].finish, ds8b_session_errmsg(ss[i]));
        ds8b_session_free(ss[i]);
    }
    CHECK(batched[3].finish == DS8B_FINISH_MAX_TOKENS && batched[3].n_gen == 40, "sliding member: %d, %lld",
          batched[3].finish, (long long)batched[3].n_gen);
    CHECK(batched[5].finish == DS8B_FINISH_CONTEXT, "context-stop member: finish %d", batched[5].finish);
    ds8b_batch_free(b);
}

static void test_float_llama(void) { alone_vs_batched(g_llama, "llama f32"); }
static void test_float_qwen(void) { alone_vs_batched(g_qwen, "qwen3 f32"); }

/* Quantized schemes go through different kernels for one row and for many;
 * batched decoding must still use the one-row arithmetic. */
static void test_quantized(void) {
    const char *schemes[] = {"q4_0", "q4_k_m", "w4a16", "q8_0", "f16"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        ds8b_model *q = NULL;
        int rc = ds8b_model_quantize(i % 2 ? g_qwen : g_llama, schemes[i], NULL, &q);
        CHECK(rc == 0, "quantize %s: %s", schemes[i], ds8b_errmsg());
        if (rc) continue;
        char what[64];
        snprintf(what, sizeof what, "%s %s", i % 2 ? "qwen3" : "llama", schemes[i]);
        alone_vs_batched(q, what);
        ds8b_model_free(q);
    }
}

/* A member cancelled from outside, one removed, one freed: each leaves,
 * the rest continue unchanged. */
static void test_leave(void) {
    spec sp = {"The Python", 1, 30, 0, 0.9, DS8B_CTX_ERROR, NULL, 0};
    out ref = {0};
    alone(g_llama, &sp, &ref, "leave");

    ds8b_batch *b = NULL;
    CHECK(ds8b_batch_create(g_llama, NULL, &b) == 0, "%s", ds8b_errmsg());
    ds8b_session *keep = mk(g_llama, &sp, 1), *c = mk(g_llama, &sp, 1), *rm = mk(g_llama, &sp, 1),
                 *fr = mk(g_llama, &sp, 1);
    out ok = {0}, oc = {0}, orm = {0}, ofr = {0};
    CHECK(ds8b_batch_add(b, c, "x", 1, 0, collect, &oc) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_batch_add(b, keep, sp.prompt, strlen(sp.prompt), DS8B_GEN_ADD_SPECIAL, collect, &ok) == 0, "%s",
          ds8b_errmsg());
    CHECK(ds8b_batch_add(b, rm, "y", 1, 0, collect, &orm) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_batch_add(b, fr, "z", 1, 0, collect, &ofr) == 0, "%s", ds8b_errmsg());
    int64_t active = 0;
    for (int i = 0; i < 3; i++) CHECK(ds8b_batch_step(b, &active) == 0 && active == 4, "step %d", i);
    /* misuse while a member */
    int32_t t = 1;
    CHECK(ds8b_eval(c, &t, 1, NULL) == DS8B_E_MISUSE, "eval on a member");
    CHECK(strstr(ds8b_errmsg(), "batch") != NULL, "message: %s", ds8b_errmsg());
    CHECK(ds8b_generate(c, "a", 1, 0, NULL, NULL, NULL) == DS8B_E_MISUSE, "generate on a member");
    CHECK(ds8b_session_truncate(c, 0) == DS8B_E_MISUSE, "truncate on a member");
    CHECK(ds8b_session_reset(c) == DS8B_E_MISUSE, "reset on a member");
    CHECK(ds8b_sample(c, &t) == DS8B_E_MISUSE, "sample on a member");
    CHECK(ds8b_batch_add(b, c, "a", 1, 0, NULL, NULL) == DS8B_E_MISUSE, "added twice");
    ds8b_batch *b2 = NULL;
    CHECK(ds8b_batch_create(g_qwen, NULL, &b2) == 0, "%s", ds8b_errmsg());
    ds8b_session *other = mk(g_llama, &sp, 1);
    CHECK(ds8b_batch_add(b2, other, "a", 1, 0, NULL, NULL) == DS8B_E_MISUSE, "another model's session");
    CHECK(ds8b_batch_remove(b2, other) == DS8B_E_INVALID, "remove a non-member");
    ds8b_session_free(other);
    ds8b_batch_free(b2);

    CHECK(ds8b_session_cancel(c) == 0, "cancel");
    CHECK(ds8b_batch_remove(b, rm) == 0, "remove: %s", ds8b_errmsg());
    CHECK(ds8b_session_finish_reason(rm) == DS8B_FINISH_CANCELLED, "removed: finish %d",
          ds8b_session_finish_reason(rm));
    ds8b_session_free(fr); /* leaves the batch */
    CHECK(ds8b_batch_size(b) == 2, "size after remove and free: %lld", (long long)ds8b_batch_size(b));
    CHECK(ds8b_batch_step(b, &active) == 0 && active == 1, "after cancel: %lld active", (long long)active);
    CHECK(ds8b_session_finish_reason(c) == DS8B_FINISH_CANCELLED, "cancelled: finish %d",
          ds8b_session_finish_reason(c));
    /* the cancelled and removed sessions are usable again */
    CHECK(ds8b_eval(c, &t, 1, NULL) == 0, "eval after leaving: %s", ds8b_errmsg());
    int64_t n = ds8b_session_n_past(rm);
    CHECK(ds8b_session_truncate(rm, n > 0 ? n - 1 : 0) == 0, "truncate after removal: %s", ds8b_errmsg());
    while (active > 0) CHECK(ds8b_batch_step(b, &active) == 0, "%s", ds8b_batch_errmsg(b));
    finish_out(keep, &ok);
    same(&ref, &ok, "survivor", 0);
    CHECK(ds8b_batch_step(b, &active) == 0 && active == 0, "empty step");
    ds8b_session_free(keep);
    ds8b_session_free(c);
    /* a member still generating when the batch is freed */
    CHECK(ds8b_batch_add(b, rm, "q", 1, 0, NULL, NULL) == 0, "%s", ds8b_errmsg());
    ds8b_batch_free(b);
    CHECK(ds8b_session_finish_reason(rm) == DS8B_FINISH_CANCELLED, "freed batch: finish %d",
          ds8b_session_finish_reason(rm));
    CHECK(ds8b_eval(rm, &t, 1, NULL) == 0, "session usable after its batch is freed: %s", ds8b_errmsg());
    ds8b_session_free(rm);
}

/* Stream callbacks that call back into the library: removing or freeing
 * members (even their own session) and freeing the batch are carried out
 * once the callback has returned; calls that would change a generating
 * session or the running step are refused with DS8B_E_MISUSE. The same
 * for ds8b_generate's and ds8b_chat_reply's callbacks. ASan and valgrind
 * runs of this test catch any use of freed memory. */
typedef struct reent {
    ds8b_batch *b;
    ds8b_session *self, *target, *spare;
    int action; /* 1 remove target + misuse checks, 2 free self, 3 free target, 4 free batch */
    int calls, done;
    int rc_remove, rc_add, rc_step, rc_eval, rc_gen;
} reent;

static int reent_cb(void *user, const char *piece, size_t len, int channel) {
    reent *r = user;
    if (++r->calls < 2 || r->done) return 0;
    r->done = 1;
    int32_t t = 1;
    switch (r->action) {
    case 1:
        r->rc_remove = ds8b_batch_remove(r->b, r->target);
        r->rc_add = ds8b_batch_add(r->b, r->spare, "a", 1, 0, NULL, NULL);
        r->rc_step = ds8b_batch_step(r->b, NULL);
        r->rc_eval = ds8b_eval(r->self, &t, 1, NULL);
        r->rc_gen = ds8b_generate(r->self, "a", 1, 0, NULL, NULL, NULL);
        break;
    case 2: ds8b_session_free(r->self); break;
    case 3: ds8b_session_free(r->target); break;
    case 4: ds8b_batch_free(r->b); break;
    }
    return 0;
}

typedef struct greent {
    ds8b_session *s;
    ds8b_chat *c;
    int calls, done, rc_eval, rc_add, rc_clear, rc_reply;
} greent;

static int gen_free_cb(void *user, const char *piece, size_t len, int channel) {
    greent *g = user;
    if (++g->calls < 2 || g->done) return 0;
    g->done = 1;
    int32_t t = 1;
    g->rc_eval = ds8b_eval(g->s, &t, 1, NULL);
    if (g->c) {
        g->rc_add = ds8b_chat_add(g->c, "user", "again");
        g->rc_clear = ds8b_chat_clear(g->c);
        g->rc_reply = ds8b_chat_reply(g->c, NULL, NULL, NULL);
        ds8b_chat_free(g->c);
    }
    ds8b_session_free(g->s);
    return 0;
}

static void test_reentry(void) {
    int64_t before = 0, after = 0;
    ds8b_model_memory(g_llama, -1, &before, NULL);
    spec sp = {"The Python", 1, 12, 0, 0.9, DS8B_CTX_ERROR, NULL, 1};
    out ref = {0};
    alone(g_llama, &sp, &ref, "reentry");

    ds8b_batch *b = NULL;
    CHECK(ds8b_batch_create(g_llama, NULL, &b) == 0, "%s", ds8b_errmsg());
    ds8b_session *e = mk(g_llama, &sp, 1), *a = mk(g_llama, &sp, 1), *bb = mk(g_llama, &sp, 1),
                 *k = mk(g_llama, &sp, 1), *c = mk(g_llama, &sp, 1), *d = mk(g_llama, &sp, 1),
                 *spare = mk(g_llama, &sp, 1);
    reent re = {.b = b, .self = e}, ra = {.b = b, .self = a, .target = bb, .spare = spare, .action = 1},
          rb = {.b = b, .self = bb}, rc = {.b = b, .self = c, .action = 2}, rd = {.b = b, .self = d, .target = e, .action = 3};
    out ok = {0};
    CHECK(ds8b_batch_add(b, e, "e", 1, 0, reent_cb, &re) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_batch_add(b, a, "a", 1, 0, reent_cb, &ra) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_batch_add(b, bb, "b", 1, 0, reent_cb, &rb) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_batch_add(b, k, sp.prompt, strlen(sp.prompt), DS8B_GEN_ADD_SPECIAL, collect, &ok) == 0, "%s",
          ds8b_errmsg());
    CHECK(ds8b_batch_add(b, c, "c", 1, 0, reent_cb, &rc) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_batch_add(b, d, "d", 1, 0, reent_cb, &rd) == 0, "%s", ds8b_errmsg());
    int64_t active = 1;
    int steps = 0;
    while (active > 0 && steps++ < 100) CHECK(ds8b_batch_step(b, &active) == 0, "%s", ds8b_batch_errmsg(b));
    CHECK(ra.done && rc.done && rd.done, "callbacks ran: %d %d %d", ra.done, rc.done, rd.done);
    CHECK(ra.rc_remove == 0, "remove from a callback: %d", ra.rc_remove);
    CHECK(ra.rc_add == DS8B_E_MISUSE, "add from a callback: %d", ra.rc_add);
    CHECK(ra.rc_step == DS8B_E_MISUSE, "step from a callback: %d", ra.rc_step);
    CHECK(ra.rc_eval == DS8B_E_MISUSE, "eval of a member from its callback: %d", ra.rc_eval);
    CHECK(ra.rc_gen == DS8B_E_MISUSE, "generate on a member from its callback: %d", ra.rc_gen);
    CHECK(ds8b_session_finish_reason(bb) == DS8B_FINISH_CANCELLED, "removed by a callback: finish %d",
          ds8b_session_finish_reason(bb));
    CHECK(rb.calls <= 2, "a removed member streams nothing more: %d calls", rb.calls);
    CHECK(ds8b_session_n_past(spare) == 0, "the refused add left the spare session alone");
    finish_out(k, &ok);
    same(&ref, &ok, "member beside callbacks that remove and free", 0);
    CHECK(ds8b_batch_size(b) == 0, "all members gone: %lld", (long long)ds8b_batch_size(b));
    int32_t t = 1;
    CHECK(ds8b_eval(bb, &t, 1, NULL) == 0, "removed member usable: %s", ds8b_errmsg());
    /* c and e were freed by callbacks; a, bb, k, d remain */
    ds8b_session_free(a);
    ds8b_session_free(bb);
    ds8b_session_free(k);
    ds8b_session_free(d);

    /* a callback frees the batch: the step finishes, then the batch goes */
    re = (reent){.b = b, .self = e = mk(g_llama, &sp, 1), .action = 4};
    a = mk(g_llama, &sp, 1);
    CHECK(ds8b_batch_add(b, a, "a", 1, 0, NULL, NULL) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_batch_add(b, e, "e", 1, 0, reent_cb, &re) == 0, "%s", ds8b_errmsg());
    for (int i = 0; i < 20 && !re.done; i++) CHECK(ds8b_batch_step(b, NULL) == 0, "step %d", i);
    CHECK(re.done, "the freeing callback ran");
    CHECK(ds8b_session_finish_reason(a) == DS8B_FINISH_CANCELLED && ds8b_session_finish_reason(e) == DS8B_FINISH_CANCELLED,
          "members of the freed batch: %d %d", ds8b_session_finish_reason(a), ds8b_session_finish_reason(e));
    CHECK(ds8b_eval(a, &t, 1, NULL) == 0, "member usable after its batch was freed: %s", ds8b_errmsg());
    ds8b_session_free(a);
    ds8b_session_free(e);
    ds8b_session_free(spare);

    /* ds8b_generate: the callback's eval is refused, its free happens on return */
    greent g = {.s = mk(g_llama, &sp, 1)};
    int rcg = ds8b_generate(g.s, "hello", 5, 0, gen_free_cb, &g, NULL);
    CHECK(rcg == 0 && g.done, "generate with a self-freeing callback: %d %s", rcg, ds8b_errmsg());
    CHECK(g.rc_eval == DS8B_E_MISUSE, "eval from the generate callback: %d", g.rc_eval);
    /* ds8b_chat_reply: changes to the conversation are refused, the chat is freed on return */
    g = (greent){.s = mk(g_llama, &sp, 1)};
    CHECK(ds8b_chat_create(g.s, &g.c) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_chat_add(g.c, "user", "hi") == 0, "%s", ds8b_errmsg());
    rcg = ds8b_chat_reply(g.c, gen_free_cb, &g, NULL);
    CHECK(rcg == 0 && g.done, "chat reply with a freeing callback: %d %s", rcg, ds8b_errmsg());
    CHECK(g.rc_add == DS8B_E_MISUSE && g.rc_clear == DS8B_E_MISUSE && g.rc_reply == DS8B_E_MISUSE,
          "chat changes from the reply callback: %d %d %d", g.rc_add, g.rc_clear, g.rc_reply);
    ds8b_model_memory(g_llama, -1, &after, NULL);
    CHECK(after == before, "every session, chat and batch freed: %lld -> %lld", (long long)before, (long long)after);
}

/* Member errors stay with the member; bad arguments are refused. */
static void test_errors(void) {
    int64_t active = -1;
    CHECK(ds8b_batch_step(NULL, &active) == DS8B_E_MISUSE && active == 0, "NULL batch");
    CHECK(ds8b_batch_size(NULL) == -1, "size of NULL");
    CHECK(ds8b_batch_create(NULL, NULL, NULL) != 0, "NULL out");
    ds8b_batch *b = NULL;
    CHECK(ds8b_batch_create(g_llama, NULL, &b) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_batch_add(b, NULL, "a", 1, 0, NULL, NULL) == DS8B_E_MISUSE, "NULL session");
    spec sp = {"x", 1, 50, 16, 0.9, DS8B_CTX_ERROR, NULL, 0};
    ds8b_session *s = mk(g_llama, &sp, 1), *ok = mk(g_llama, &sp, 1);
    /* a prompt longer than the context fails in add, and s is not a member */
    char longp[400];
    memset(longp, 'a', sizeof longp - 1);
    for (size_t i = 0; i < sizeof longp - 1; i += 2) longp[i] = ' ';
    longp[sizeof longp - 1] = 0;
    CHECK(ds8b_batch_add(b, s, longp, strlen(longp), 0, NULL, NULL) == DS8B_E_CONTEXT_FULL, "long prompt: %s",
          ds8b_errmsg());
    CHECK(ds8b_batch_size(b) == 0 && ds8b_session_finish_reason(s) == DS8B_FINISH_ERROR, "not added");
    /* under the error policy a member that fills its context leaves with an error */
    CHECK(ds8b_batch_add(b, s, "x", 1, 0, NULL, NULL) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_batch_add(b, ok, "x", 1, 0, NULL, NULL) == 0, "%s", ds8b_errmsg());
    ds8b_session_set_int(ok, DS8B_PARAM_MAX_TOKENS, 5);
    int steps = 0;
    do CHECK(ds8b_batch_step(b, &active) == 0, "%s", ds8b_batch_errmsg(b));
    while (active > 0 && ++steps < 100);
    CHECK(ds8b_session_finish_reason(ok) == DS8B_FINISH_MAX_TOKENS, "ok: %d", ds8b_session_finish_reason(ok));
    CHECK(ds8b_session_finish_reason(s) == DS8B_FINISH_ERROR, "full: %d", ds8b_session_finish_reason(s));
    CHECK(strstr(ds8b_session_errmsg(s), "context full") != NULL, "member message: %s", ds8b_session_errmsg(s));
    ds8b_session_free(s);
    ds8b_session_free(ok);
    ds8b_batch_free(b);
}

/* The batch's memory is counted in the model's scope and returned. */
static void test_memory(void) {
    int64_t before = 0, after = 0, during = 0;
    ds8b_model_memory(g_qwen, -1, &before, NULL);
    ds8b_batch *b = NULL;
    CHECK(ds8b_batch_create(g_qwen, NULL, &b) == 0, "%s", ds8b_errmsg());
    ds8b_session *ss[9];
    spec sp = {"hi", 1, 3, 0, 0.5, DS8B_CTX_ERROR, NULL, 0};
    for (int i = 0; i < 9; i++) {
        ss[i] = mk(g_qwen, &sp, 1);
        CHECK(ds8b_batch_add(b, ss[i], "hi", 2, 0, NULL, NULL) == 0, "%s", ds8b_errmsg());
    }
    int64_t active = 1;
    while (active) CHECK(ds8b_batch_step(b, &active) == 0, "%s", ds8b_batch_errmsg(b));
    ds8b_model_memory(g_qwen, -1, &during, NULL);
    CHECK(during > before, "batch memory counted in the model: %lld -> %lld", (long long)before, (long long)during);
    for (int i = 0; i < 9; i++) ds8b_session_free(ss[i]);
    ds8b_batch_free(b);
    ds8b_model_memory(g_qwen, -1, &after, NULL);
    CHECK(after == before, "memory returned: %lld -> %lld", (long long)before, (long long)after);
}

int main(void) {
    char a[1024], b[1024];
    if (ds8b_model_load(t_path(a, sizeof a, "models/demo-llama"), NULL, &g_llama) ||
        ds8b_model_load(t_path(b, sizeof b, "models/demo-qwen3"), NULL, &g_qwen)) {
        printf("not ok load_models: %s\n", ds8b_errmsg());
        return 1;
    }
    RUN(test_float_llama);
    RUN(test_float_qwen);
    RUN(test_quantized);
    RUN(test_leave);
    RUN(test_reentry);
    RUN(test_errors);
    RUN(test_memory);
    ds8b_model_free(g_llama);
    ds8b_model_free(g_qwen);
    T_EXIT();
}
