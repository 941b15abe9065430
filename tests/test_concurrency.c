/* test_concurrency.c -- the thread-safety promises of include/ds8b.h:
 * sessions on one shared model generate concurrently exactly what they
 * generate alone; ds8b_session_cancel() from another thread stops a prompt
 * within a micro-batch and decoding within a token; a shared tokenizer
 * gives identical results from several threads.
 *
 * DS8B_QUICK=1 (set by tests/test_sanitizers.sh for the TSan build) makes
 * the workloads smaller; the timing checks are then skipped. */
#include "t.h"
#include "ds8b.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static ds8b_model *g_model;
static int g_quick;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static ds8b_session *mk_session(int n_ctx, int n_batch, int n_threads, double temp, int seed) {
    ds8b_params *p = NULL;
    ds8b_session *s = NULL;
    if (ds8b_params_create(&p)) return NULL;
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, n_ctx);
    ds8b_params_set_int(p, DS8B_PARAM_N_BATCH, n_batch);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, n_threads);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, temp);
    ds8b_params_set_int(p, DS8B_PARAM_SEED, seed);
    ds8b_params_set_int(p, DS8B_PARAM_STOP_AT_EOS, 0);
    int rc = ds8b_session_create(g_model, p, &s);
    ds8b_params_free(p);
    return rc ? NULL : s;
}

/* ------------------------------------------------------------------ */
/* 1. Concurrent sessions on one model                                 */
/* ------------------------------------------------------------------ */
#define MAX_GEN 48
typedef struct job {
    const char *prompt;
    double temp;
    int seed, n_threads;
    int n_gen;
    int32_t toks[MAX_GEN]; /* from an eval/sample loop */
    char text[4096];       /* from ds8b_generate */
    size_t text_len;
    int rc;
} job;

static int collect(void *u, const char *p, size_t n, int ch) {
    job *j = u;
    (void)ch;
    if (j->text_len + n < sizeof j->text) {
        memcpy(j->text + j->text_len, p, n);
        j->text_len += n;
        j->text[j->text_len] = 0;
    }
    return 0;
}

static void run_job(job *j) {
    j->rc = -100;
    j->text_len = 0;
    j->text[0] = 0;
    memset(j->toks, 0, sizeof j->toks);
    ds8b_session *s = mk_session(256, 16, j->n_threads, j->temp, j->seed);
    if (!s) return;
    /* tokens, one at a time, through eval and sample */
    const ds8b_tokenizer *tok = ds8b_model_tokenizer(g_model);
    int32_t ids[256];
    size_t n = 0;
    int rc = ds8b_tokenize(tok, j->prompt, strlen(j->prompt), DS8B_TOKENIZE_ADD_SPECIAL, ids, 256, &n);
    if (!rc) rc = ds8b_eval(s, ids, n, NULL);
    for (int i = 0; !rc && i < j->n_gen; i++) {
        rc = ds8b_sample(s, &j->toks[i]);
        if (!rc) rc = ds8b_eval(s, &j->toks[i], 1, NULL);
    }
    /* text, through ds8b_generate on a fresh context */
    if (!rc) rc = ds8b_session_reset(s);
    if (!rc) rc = ds8b_session_set_int(s, DS8B_PARAM_MAX_TOKENS, j->n_gen);
    if (!rc) rc = ds8b_generate(s, j->prompt, strlen(j->prompt), DS8B_GEN_ADD_SPECIAL, collect, j, NULL);
    ds8b_session_free(s);
    j->rc = rc;
}

static void *job_thread(void *arg) {
    run_job(arg);
    return NULL;
}

static void test_parallel_sessions_match_alone(void) {
    static const char *prompts[4] = {
        "The Python interpreter",
        "Once upon a time, in a land far away,",
        "def fibonacci(n):",
        "The capital of France is",
    };
    job alone[4], together[4];
    int n_gen = g_quick ? 8 : MAX_GEN;
    for (int i = 0; i < 4; i++) {
        job j = {0};
        j.prompt = prompts[i];
        j.temp = i < 2 ? 0.0 : 0.8;     /* two greedy, two sampled with fixed seeds */
        j.seed = 1000 + i;
        j.n_threads = (i & 1) ? 2 : 1;  /* two of them also use the thread pool */
        j.n_gen = n_gen;
        alone[i] = j;
        together[i] = j;
        run_job(&alone[i]);
        CHECK(alone[i].rc == 0, "job %d alone: %s", i, ds8b_errmsg());
    }
    int rounds = g_quick ? 1 : 3;
    for (int r = 0; r < rounds; r++) {
        pthread_t th[4];
        for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, job_thread, &together[i]);
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 4; i++) {
            CHECK(together[i].rc == 0, "round %d job %d: rc %d", r, i, together[i].rc);
            CHECK(!memcmp(alone[i].toks, together[i].toks, sizeof alone[i].toks),
                  "round %d job %d: tokens differ from the single-threaded run", r, i);
            CHECK(!strcmp(alone[i].text, together[i].text), "round %d job %d: text differs:\n  %s\n  %s", r, i,
                  alone[i].text, together[i].text);
        }
    }
    /* the sampled jobs really sampled something different from greedy */
    CHECK(alone[0].text_len > 0 && alone[2].text_len > 0, "generated text");
}

/* Sessions created and freed on many threads while others generate. */
static void *churn_thread(void *arg) {
    int *fails = arg;
    for (int i = 0; i < (g_quick ? 3 : 20); i++) {
        ds8b_session *s = mk_session(32, 8, 1, 0.0, i);
        if (!s) { (*fails)++; continue; }
        int32_t ids[4] = {8184, 10 + i, 20, 30};
        if (ds8b_eval(s, ids, 4, NULL)) (*fails)++;
        ds8b_session_free(s);
    }
    return NULL;
}

static void test_session_churn(void) {
    int64_t before = 0, peak = 0;
    ds8b_model_memory(g_model, -1, &before, &peak);
    pthread_t th[4];
    int fails[4] = {0};
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, churn_thread, &fails[i]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) CHECK(fails[i] == 0, "thread %d: %d failures", i, fails[i]);
    int64_t after = 0;
    ds8b_model_memory(g_model, -1, &after, &peak);
    CHECK(after == before, "model memory %lld before, %lld after", (long long)before, (long long)after);
}

/* ------------------------------------------------------------------ */
/* 2. Cancellation from another thread                                 */
/* ------------------------------------------------------------------ */
typedef struct canceller {
    ds8b_session *s;
    double delay_s;
    atomic_int *go;        /* when not NULL: wait until it is set, then delay */
    double t_cancel;
} canceller;

static void *cancel_thread(void *arg) {
    canceller *c = arg;
    if (c->go)
        while (!atomic_load(c->go)) usleep(200);
    usleep((useconds_t)(c->delay_s * 1e6));
    c->t_cancel = now_s();
    ds8b_session_cancel(c->s);
    return NULL;
}

static void test_cancel_prompt(void) {
    const int n_batch = 16, n_prompt = g_quick ? 128 : 512;
    ds8b_session *s = mk_session(2048, n_batch, 1, 0.0, 1);
    if (!s) { CHECK(0, "session: %s", ds8b_errmsg()); return; }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_prompt);
    for (int i = 0; i < n_prompt; i++) ids[i] = (i * 31 + 5) % 8000;
    /* time of one micro-batch: the slowest over the whole prompt (later
     * batches attend to more positions) */
    double t_batch_max = 0, t_all0 = now_s();
    for (int off = 0; off < n_prompt; off += n_batch) {
        double t0 = now_s();
        int rc = ds8b_eval(s, ids + off, (size_t)n_batch, NULL);
        double dt = now_s() - t0;
        CHECK(rc == 0, "eval: %s", ds8b_errmsg());
        if (rc) break;
        if (dt > t_batch_max) t_batch_max = dt;
    }
    double t_all = now_s() - t_all0;
    double t_batch_mean = t_all / (n_prompt / n_batch);
    /* cancel at about 40% of the prompt; a scheduler hiccup on a busy
     * machine can delay the return, so up to three attempts */
    double best = 1e9, worst = 0;
    int ok_rc = 1, attempts = 0;
    for (attempts = 1; attempts <= 3; attempts++) {
        ds8b_session_reset(s);
        canceller c = {s, t_all * 0.4, NULL, 0};
        pthread_t th;
        pthread_create(&th, NULL, cancel_thread, &c);
        int rc = ds8b_eval(s, ids, (size_t)n_prompt, NULL);
        double t_ret = now_s();
        pthread_join(th, NULL);
        if (rc != DS8B_E_CANCELLED) ok_rc = 0;
        double lat = t_ret - c.t_cancel;
        if (lat < best) best = lat;
        if (lat > worst) worst = lat;
        CHECK(ds8b_session_n_past(s) < n_prompt && ds8b_session_n_past(s) % n_batch == 0,
              "n_past %lld after a cancel", (long long)ds8b_session_n_past(s));
        if (lat < 2 * t_batch_mean) break;
    }
    printf("  # prompt of %d tokens, n_batch %d: %.1f ms in all, micro-batch %.2f ms on average, %.2f ms at most; "
           "cancel to return %.2f ms (best of %d), worst %.2f ms\n",
           n_prompt, n_batch, t_all * 1e3, t_batch_mean * 1e3, t_batch_max * 1e3, best * 1e3,
           attempts > 3 ? 3 : attempts, worst * 1e3);
    CHECK(ok_rc, "eval did not return DS8B_E_CANCELLED");
    if (!g_quick) CHECK(best < 2 * t_batch_mean, "cancel latency %.2f ms >= 2 micro-batches (%.2f ms)", best * 1e3,
                        2 * t_batch_mean * 1e3);
    /* the session is usable afterwards, and the flag cleared */
    ds8b_session_reset(s);
    CHECK(ds8b_eval(s, ids, 8, NULL) == 0, "usable after cancel: %s", ds8b_errmsg());
    free(ids);
    ds8b_session_free(s);
}

typedef struct gen_probe {
    atomic_int started;
    int pieces;
    double t_last_piece;
} gen_probe;

static int probe_cb(void *u, const char *p, size_t n, int ch) {
    gen_probe *g = u;
    (void)p; (void)n; (void)ch;
    g->pieces++;
    g->t_last_piece = now_s();
    if (g->pieces == 4) atomic_store(&g->started, 1);
    return 0;
}

static void test_cancel_decode(void) {
    ds8b_session *s = mk_session(2048, 16, 1, 0.0, 1);
    if (!s) { CHECK(0, "session: %s", ds8b_errmsg()); return; }
    /* time per generated token */
    int n_tok = g_quick ? 16 : 64;
    ds8b_session_set_int(s, DS8B_PARAM_MAX_TOKENS, n_tok);
    gen_probe g0 = {0};
    double t0 = now_s();
    int64_t ng = 0;
    int rc = ds8b_generate(s, "The Python interpreter", 22, DS8B_GEN_ADD_SPECIAL, probe_cb, &g0, &ng);
    double t_tok = (now_s() - t0) / (double)(ng > 0 ? ng : 1);
    CHECK(rc == 0 && ng == n_tok, "rc %d, %lld tokens", rc, (long long)ng);
    double best = 1e9;
    int ok_rc = 1, attempts;
    for (attempts = 1; attempts <= 3; attempts++) {
        ds8b_session_reset(s);
        ds8b_session_set_int(s, DS8B_PARAM_MAX_TOKENS, 1500);
        gen_probe g = {0};
        canceller c = {s, t_tok * 20, &g.started, 0};
        pthread_t th;
        pthread_create(&th, NULL, cancel_thread, &c);
        ng = 0;
        rc = ds8b_generate(s, "The Python interpreter", 22, DS8B_GEN_ADD_SPECIAL, probe_cb, &g, &ng);
        double t_ret = now_s();
        pthread_join(th, NULL);
        if (rc != DS8B_E_CANCELLED || ng >= 1500) ok_rc = 0;
        double lat = t_ret - c.t_cancel;
        if (lat < best) best = lat;
        if (lat < 2 * t_tok) break;
    }
    printf("  # decoding: %.2f ms per token; cancel to return %.2f ms (best of %d)\n", t_tok * 1e3, best * 1e3,
           attempts > 3 ? 3 : attempts);
    CHECK(ok_rc, "generate did not stop with DS8B_E_CANCELLED (rc %d, %lld tokens)", rc, (long long)ng);
    if (!g_quick) CHECK(best < 2 * t_tok + 0.002, "cancel latency %.2f ms vs %.2f ms per token", best * 1e3, t_tok * 1e3);
    ds8b_session_free(s);
}

/* A cancel requested while no call runs is not lost: the next call is the
 * one cancelled, and it consumes the request. */
static void test_cancel_pending_between_calls(void) {
    ds8b_session *s = mk_session(64, 16, 1, 0.0, 1);
    if (!s) { CHECK(0, "session: %s", ds8b_errmsg()); return; }
    CHECK(ds8b_session_cancel(s) == 0, "cancel");
    int32_t ids[4] = {8184, 5, 6, 7};
    CHECK(ds8b_eval(s, ids, 4, NULL) == DS8B_E_CANCELLED, "a pending cancel stops the next call");
    CHECK(ds8b_eval(s, ids, 4, NULL) == 0, "the request was consumed: %s", ds8b_errmsg());
    CHECK(ds8b_session_cancel(NULL) == DS8B_E_MISUSE, "NULL session");
    ds8b_session_free(s);
}

/* ------------------------------------------------------------------ */
/* 3. A shared tokenizer from several threads                          */
/* ------------------------------------------------------------------ */
static const char *k_texts[] = {
    "Hello, world! This is a test of the tokenizer.",
    "def f(x):\n    return x * 2  # comment\n",
    "Ünïcödé text: 日本語のテキスト, emoji 🙂🚀, Ελληνικά, русский.",
    "<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\n",
    "   many    spaces\t\ttabs\n\n\nnewlines   ",
    "1234567890 3.14159 1e-10 0xDEADBEEF",
    "\xff\xfe invalid \xc3 utf-8 \xe2\x82",
    "",
};
#define N_TEXTS (sizeof k_texts / sizeof *k_texts)

typedef struct tok_ref {
    int32_t ids[512];
    size_t n;
    char text[2048];
    size_t len;
} tok_ref;

typedef struct tok_job {
    const ds8b_tokenizer *tok;
    const tok_ref *ref;
    int iters;
    int mismatches;
} tok_job;

static int tokenize_one(const ds8b_tokenizer *tok, const char *t, tok_ref *out) {
    int rc = ds8b_tokenize(tok, t, strlen(t), DS8B_TOKENIZE_ADD_SPECIAL, out->ids, 512, &out->n);
    if (!rc) rc = ds8b_detokenize(tok, out->ids, out->n, 0, out->text, sizeof out->text, &out->len);
    return rc;
}

static void *tok_thread(void *arg) {
    tok_job *j = arg;
    tok_ref r;
    for (int it = 0; it < j->iters; it++) {
        for (size_t i = 0; i < N_TEXTS; i++) {
            size_t k = (i + (size_t)it) % N_TEXTS; /* threads hit different texts at once */
            memset(&r, 0, sizeof r);
            if (tokenize_one(j->tok, k_texts[k], &r) || r.n != j->ref[k].n ||
                memcmp(r.ids, j->ref[k].ids, r.n * sizeof(int32_t)) || r.len != j->ref[k].len ||
                memcmp(r.text, j->ref[k].text, r.len))
                j->mismatches++;
        }
    }
    return NULL;
}

static void shared_tokenizer_check(const ds8b_tokenizer *tok, const char *what) {
    tok_ref ref[N_TEXTS];
    memset(ref, 0, sizeof ref);
    for (size_t i = 0; i < N_TEXTS; i++)
        CHECK(tokenize_one(tok, k_texts[i], &ref[i]) == 0, "%s: text %zu: %s", what, i, ds8b_errmsg());
    pthread_t th[4];
    tok_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (tok_job){tok, ref, g_quick ? 10 : 200, 0};
        pthread_create(&th[i], NULL, tok_thread, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) CHECK(jobs[i].mismatches == 0, "%s: thread %d: %d mismatches", what, i, jobs[i].mismatches);
}

static void test_shared_tokenizer(void) {
    shared_tokenizer_check(ds8b_model_tokenizer(g_model), "model tokenizer");
    char path[4096];
    ds8b_tokenizer *tok = NULL;
    CHECK(ds8b_tokenizer_load(t_path(path, sizeof path, "models/demo-qwen3"), &tok) == 0, "%s", ds8b_errmsg());
    if (tok) shared_tokenizer_check(tok, "stand-alone tokenizer");
    ds8b_tokenizer_free(tok);
}

/* Error messages are per thread. */
static void *err_thread(void *arg) {
    int *bad = arg;
    for (int i = 0; i < 200; i++) {
        ds8b_model *m = NULL;
        if (ds8b_model_load("/nonexistent/ds8b-model", NULL, &m) == 0) { (*bad)++; ds8b_model_free(m); }
        if (!strstr(ds8b_errmsg(), "/nonexistent/ds8b-model")) (*bad)++;
        if (ds8b_session_create(NULL, NULL, NULL) == 0) (*bad)++;
    }
    return NULL;
}

static void test_errmsg_per_thread(void) {
    pthread_t th[4];
    int bad[4] = {0};
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, err_thread, &bad[i]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) CHECK(bad[i] == 0, "thread %d: %d wrong messages", i, bad[i]);
}

int main(void) {
    const char *q = getenv("DS8B_QUICK");
    g_quick = q && *q && *q != '0';
    char path[4096];
    int rc = ds8b_model_load(t_path(path, sizeof path, "models/demo-llama"), NULL, &g_model);
    if (rc) {
        printf("not ok load_model # %s\n", ds8b_errmsg());
        return 1;
    }
    int64_t base = ds8b_memory_used(-1);
    RUN(test_parallel_sessions_match_alone);
    RUN(test_session_churn);
    RUN(test_cancel_prompt);
    RUN(test_cancel_decode);
    RUN(test_cancel_pending_between_calls);
    RUN(test_shared_tokenizer);
    RUN(test_errmsg_per_thread);
    int64_t after = ds8b_memory_used(-1);
    ds8b_model_free(g_model);
    printf("%s memory_back_to_baseline\n", after == base && ds8b_memory_used(-1) == 0 ? "ok" : "not ok");
    if (after != base || ds8b_memory_used(-1) != 0) {
        printf("  # %lld bytes before the tests, %lld after, %lld after freeing the model\n", (long long)base,
               (long long)after, (long long)ds8b_memory_used(-1));
        t_total_failed++;
    }
    T_EXIT();
}
