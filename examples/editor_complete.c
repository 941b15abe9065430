/* editor_complete.c -- inline ("ghost text") completion the way an editor
 * plugin does it.
 *
 *  - The text before the cursor is completed to the end of the line: the
 *    stop string "\n" ends generation, greedy sampling keeps it stable.
 *  - Generation runs on a worker thread. The editor's thread waits with a
 *    timeout and calls ds8b_session_cancel() when the deadline passes, so
 *    typing never stalls; whatever arrived by then is the (partial) result.
 *  - A keystroke while a completion runs cancels it too, and the plugin
 *    restarts with the new text. The session is kept: the prompt tokens are
 *    compared with what the session holds (ds8b_tokenize), the session is
 *    truncated back to the common prefix (ds8b_session_truncate) and only
 *    the new tail is evaluated. That is the KV reuse that makes completion
 *    as-you-type cheap.
 *
 * Build: cc editor_complete.c $(pkg-config --cflags --libs ds8b) -lpthread
 * Run:   ./editor_complete [-m MODEL] [--deadline-ms N] [--keystroke-after-ms N]
 *                          [--typed TEXT] [-n MAX_TOKENS] [--threads N] [--multiline] [TEXT]
 * TEXT defaults to stdin (one trailing newline is dropped).
 * stdout: the completion (one line unless --multiline). stderr: what happened and timings.
 * Exit status: 0 completed, 3 cut by the deadline, 1 error, 2 usage. */
#define _POSIX_C_SOURCE 200809L
#include <ds8b.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static double ms(int64_t ns) { return ns / 1e6; }

/* One completion request, shared by the editor thread and the worker. */
typedef struct {
    ds8b_session *s;
    const int32_t *ids; /* the whole prompt (BOS included) */
    size_t n_ids;
    size_t keep;        /* tokens of it the session already holds */
    atomic_int stop;    /* set by the editor thread before ds8b_session_cancel */
    /* worker -> editor, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rc;
    int64_t n_gen;
    int64_t t_first_ns; /* first piece of text */
    char text[2048];    /* the completion so far */
    size_t len;
    char err[256];
} request;

static int on_piece(void *user, const char *piece, size_t len, int channel) {
    request *r = user;
    (void)channel;
    pthread_mutex_lock(&r->mu);
    if (!r->t_first_ns) r->t_first_ns = now_ns();
    if (r->len + len < sizeof r->text) {
        memcpy(r->text + r->len, piece, len);
        r->len += len;
        r->text[r->len] = 0;
    }
    pthread_mutex_unlock(&r->mu);
    /* ds8b_session_cancel only reaches the call running when it is made
     * (the flag clears when the next call starts), so a cancel landing
     * between ds8b_eval and ds8b_generate is caught here */
    return atomic_load(&r->stop);
}

static void *worker(void *arg) {
    request *r = arg;
    int rc = DS8B_E_CANCELLED;
    int64_t n_gen = 0;
    /* evaluate only the tail the session does not hold yet ... */
    if (!atomic_load(&r->stop)) rc = ds8b_eval(r->s, r->ids + r->keep, r->n_ids - r->keep, NULL);
    /* ... then sample from its logits: an empty prompt continues */
    if (rc == DS8B_OK && atomic_load(&r->stop)) rc = DS8B_E_CANCELLED;
    if (rc == DS8B_OK) rc = ds8b_generate(r->s, "", 0, 0, on_piece, r, &n_gen);
    pthread_mutex_lock(&r->mu);
    if (rc != DS8B_OK && rc != DS8B_E_CANCELLED)
        snprintf(r->err, sizeof r->err, "%s", ds8b_session_errmsg(r->s));
    r->rc = rc;
    r->n_gen = n_gen;
    r->done = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* The plugin's state that survives between requests. */
typedef struct {
    ds8b_session *s;
    const ds8b_tokenizer *tok;
    int32_t *held; /* prompt tokens the session is known to hold, in order */
    size_t n_held;
} plugin;

enum { ST_COMPLETE, ST_DEADLINE, ST_KEYSTROKE, ST_ERROR };
static const char *const k_status[] = {"complete", "cancelled (deadline)", "cancelled (keystroke)", "error"};

typedef struct {
    int status;
    char text[2048];
    int64_t n_gen;
    double total_ms, first_ms;
    double late_ms, stop_ms; /* deadline -> cancel issued (OS wake-up), cancel -> worker done */
    size_t n_prompt, reused;
} result;

static int tokenize(const ds8b_tokenizer *tok, const char *text, int32_t **ids, size_t *n) {
    size_t cap = strlen(text) + 16, need = 0;
    *ids = malloc(cap * sizeof **ids);
    if (!*ids) return DS8B_E_NOMEM;
    int rc = ds8b_tokenize(tok, text, strlen(text), DS8B_TOKENIZE_ADD_SPECIAL, *ids, cap, &need);
    if (rc == DS8B_E_BUFFER) {
        int32_t *bigger = realloc(*ids, need * sizeof **ids);
        if (!bigger) return DS8B_E_NOMEM;
        *ids = bigger;
        rc = ds8b_tokenize(tok, text, strlen(text), DS8B_TOKENIZE_ADD_SPECIAL, *ids, need, &need);
    }
    *n = need;
    return rc;
}

/* Runs one completion of `text`, cancelling it at `deadline_ns` or, if
 * earlier, at `keystroke_ns` (0: none). */
static int complete(plugin *pl, const char *text, int64_t deadline_ns, int64_t keystroke_ns, result *res) {
    int64_t t0 = now_ns();
    memset(res, 0, sizeof *res);
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = tokenize(pl->tok, text, &ids, &n);
    if (rc == DS8B_OK && n == 0) rc = DS8B_E_INVALID;
    if (rc) {
        free(ids);
        fprintf(stderr, "editor_complete: tokenize: %s\n", ds8b_errstr(rc));
        return rc;
    }
    /* KV reuse: keep the longest common prefix, but evaluate at least one
     * token so that fresh logits exist to sample from */
    size_t common = 0;
    while (common < pl->n_held && common < n && pl->held[common] == ids[common]) common++;
    size_t keep = common < n ? common : n - 1;
    if ((rc = ds8b_session_truncate(pl->s, (int64_t)keep))) {
        free(ids);
        fprintf(stderr, "editor_complete: truncate: %s\n", ds8b_session_errmsg(pl->s));
        return rc;
    }
    res->n_prompt = n;
    res->reused = keep;

    request r;
    memset(&r, 0, sizeof r);
    r.s = pl->s;
    r.ids = ids;
    r.n_ids = n;
    r.keep = keep;
    atomic_init(&r.stop, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r.cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&r.mu, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, worker, &r)) {
        free(ids);
        fprintf(stderr, "editor_complete: cannot start a thread\n");
        return DS8B_E_NOMEM;
    }

    /* the editor thread: wait until done, the deadline or a keystroke */
    int64_t until = keystroke_ns && keystroke_ns < deadline_ns ? keystroke_ns : deadline_ns;
    struct timespec ts = {(time_t)(until / 1000000000LL), (long)(until % 1000000000LL)};
    int status = ST_COMPLETE;
    int64_t t_cancel = 0;
    pthread_mutex_lock(&r.mu);
    while (!r.done) {
        if (pthread_cond_timedwait(&r.cv, &r.mu, &ts) == ETIMEDOUT && !r.done) {
            status = until == deadline_ns ? ST_DEADLINE : ST_KEYSTROKE;
            t_cancel = now_ns();
            atomic_store(&r.stop, 1);
            ds8b_session_cancel(pl->s); /* any thread may call this */
            break;
        }
    }
    pthread_mutex_unlock(&r.mu);
    pthread_join(th, NULL);
    int64_t t_end = now_ns();

    if (r.rc != DS8B_OK && r.rc != DS8B_E_CANCELLED) {
        fprintf(stderr, "editor_complete: %s: %s\n", ds8b_errstr(r.rc), r.err);
        status = ST_ERROR;
    } else if (r.rc == DS8B_OK) {
        status = ST_COMPLETE; /* finished just as the deadline passed */
    }
    res->status = status;
    memcpy(res->text, r.text, r.len + 1);
    res->n_gen = r.n_gen;
    res->total_ms = ms(t_end - t0);
    res->first_ms = r.t_first_ns ? ms(r.t_first_ns - t0) : -1;
    res->stop_ms = t_cancel ? ms(t_end - t_cancel) : 0;
    res->late_ms = t_cancel ? ms(t_cancel - until) : 0;

    /* remember which prompt tokens the session holds now: all of them
     * unless the cancel arrived during prompt evaluation (the generated
     * tokens after them are unknown to us and are never reused) */
    int64_t np = ds8b_session_n_past(pl->s);
    size_t held = np < 0 ? 0 : (size_t)np < n ? (size_t)np : n;
    free(pl->held);
    pl->held = ids;
    pl->n_held = held;
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return status == ST_ERROR ? DS8B_E_INTERNAL : DS8B_OK;
}

static void report(int k, const char *text, const result *res) {
    size_t tl = strlen(text);
    const char *tail = tl > 60 ? text + tl - 60 : text;
    const char *nl = strrchr(tail, '\n');
    if (nl) tail = nl + 1; /* show the cursor's line only */
    fprintf(stderr, "request %d: %s -- %lld tokens in %.1f ms", k, k_status[res->status], (long long)res->n_gen,
            res->total_ms);
    if (res->first_ms >= 0) fprintf(stderr, ", first text after %.1f ms", res->first_ms);
    if (res->status == ST_DEADLINE || res->status == ST_KEYSTROKE)
        fprintf(stderr, ", cancel issued %.2f ms after the limit, worker stopped %.2f ms after the cancel",
                res->late_ms, res->stop_ms);
    fprintf(stderr, "\n  prompt %zu tokens: %zu reused from the KV cache, %zu to evaluate\n", res->n_prompt,
            res->reused, res->n_prompt - res->reused);
    fprintf(stderr, "  ghost text: %s[%s]\n", tail, res->text);
}

static char *read_all(FILE *f) {
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    if (!b) return NULL;
    size_t got;
    while ((got = fread(b + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); return NULL; }
            b = nb;
        }
    }
    b[len] = 0;
    if (len && b[len - 1] == '\n') b[len - 1] = 0;
    return b;
}

int main(int argc, char **argv) {
    const char *model_path = "models/demo-llama", *typed = " and";
    const char *text_arg = NULL;
    long deadline_ms = 500, keystroke_ms = -1, max_tokens = 32, threads = 0;
    int multiline = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "-m") && more) model_path = argv[++i];
        else if (!strcmp(a, "--deadline-ms") && more) deadline_ms = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--keystroke-after-ms") && more) keystroke_ms = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--typed") && more) typed = argv[++i];
        else if (!strcmp(a, "-n") && more) max_tokens = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--threads") && more) threads = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--multiline")) multiline = 1;
        else if (a[0] != '-' && !text_arg) text_arg = a;
        else {
            fprintf(stderr,
                    "usage: %s [-m MODEL] [--deadline-ms N] [--keystroke-after-ms N] [--typed TEXT]\n"
                    "          [-n MAX_TOKENS] [--threads N] [--multiline] [TEXT]\n",
                    argv[0]);
            return 2;
        }
    }
    char *text = text_arg ? strdup(text_arg) : read_all(stdin);
    if (!text) return 1;

    /* the plugin loads the model once, when the editor starts */
    int64_t t0 = now_ns();
    ds8b_model *model = NULL;
    ds8b_params *params = NULL;
    plugin pl = {0};
    int rc = ds8b_model_load(model_path, NULL, &model);
    if (rc == DS8B_OK) rc = ds8b_params_create(&params);
    if (rc == DS8B_OK) {
        ds8b_params_set_int(params, DS8B_PARAM_N_CTX, 4096);
        ds8b_params_set_int(params, DS8B_PARAM_N_THREADS, threads);
        ds8b_params_set_int(params, DS8B_PARAM_MAX_TOKENS, max_tokens);
        ds8b_params_set_float(params, DS8B_PARAM_TEMPERATURE, 0.0); /* stable suggestions */
        if (!multiline) ds8b_params_add_stop(params, "\n");         /* to the end of the line */
        rc = ds8b_session_create(model, params, &pl.s);
    }
    if (rc) {
        fprintf(stderr, "editor_complete: %s (%s)\n", ds8b_errmsg(), ds8b_errstr(rc));
        ds8b_params_free(params);
        ds8b_model_free(model);
        free(text);
        return 1;
    }
    pl.tok = ds8b_model_tokenizer(model);
    fprintf(stderr, "model %s loaded in %.1f ms; deadline %ld ms\n", ds8b_model_desc(model), ms(now_ns() - t0),
            deadline_ms);

    /* request 1: the text as it is */
    result res;
    int64_t start = now_ns();
    int64_t key_at = keystroke_ms >= 0 ? start + keystroke_ms * 1000000LL : 0;
    rc = complete(&pl, text, start + deadline_ms * 1000000LL, key_at, &res);
    if (rc == DS8B_OK) report(1, text, &res);

    /* a keystroke: cancel if still running, then restart with the new text */
    if (rc == DS8B_OK && keystroke_ms >= 0) {
        int64_t t = now_ns();
        if (key_at > t) { /* the completion was done before the user typed */
            struct timespec ts = {(time_t)(key_at / 1000000000LL), (long)(key_at % 1000000000LL)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) {}
        }
        size_t lt = strlen(text), ly = strlen(typed);
        char *t2 = realloc(text, lt + ly + 1);
        if (!t2) rc = DS8B_E_NOMEM;
        else {
            text = t2;
            memcpy(text + lt, typed, ly + 1);
            fprintf(stderr, "keystroke after %ld ms: typed \"%s\"; restarting\n", keystroke_ms, typed);
            start = now_ns();
            rc = complete(&pl, text, start + deadline_ms * 1000000LL, 0, &res);
            if (rc == DS8B_OK) report(2, text, &res);
        }
    }

    int exit_code = 1;
    if (rc == DS8B_OK) {
        printf("%s\n", res.text);
        fprintf(stderr, "status: %s\n", k_status[res.status]);
        exit_code = res.status == ST_COMPLETE ? 0 : 3;
    }
    free(pl.held);
    ds8b_session_free(pl.s);
    ds8b_params_free(params);
    ds8b_model_free(model);
    free(text);
    return exit_code;
}
