/* game_npc.c -- non-player characters that talk, inside a 60 Hz game loop.
 *
 * What a game engine embedding libds8b needs, in one file:
 *  - ONE model shared by every character (a ds8b_model is read-only after
 *    loading), one session + chat per character;
 *  - generation on worker threads (one pthread per conversation), so the
 *    frame loop never blocks on the model: each frame it only drains a
 *    mutex-protected text queue that the stream callbacks fill;
 *  - cancellation: a character who walks away stops mid-sentence through
 *    ds8b_session_cancel() called from the loop thread; the time until the
 *    worker is free again is measured;
 *  - save games: one conversation is serialised with ds8b_session_save()
 *    into a buffer, the session is freed, a fresh session restores it with
 *    ds8b_session_load() and the conversation continues. With greedy
 *    sampling the continuation must equal what an unsaved twin says:
 *    MATCH / MISMATCH is printed and a mismatch makes the exit status 1.
 *
 * Build: cc game_npc.c $(pkg-config --cflags --libs ds8b) -lpthread
 * Run:   ./game_npc [-m MODEL] [--frames N] [--threads-per-npc N] [--quiet]
 */
#define _POSIX_C_SOURCE 200809L
#include <ds8b.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FRAME_NS 16666667LL /* 60 Hz */
#define MAX_TURNS 64

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static int64_t cpu_ns(void) { /* CPU time of the calling thread */
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static double ms(int64_t ns) { return ns / 1e6; }

/* ---------------------------------------------------------------- */
/* The text queue between a worker (producer) and the loop (consumer) */
/* ---------------------------------------------------------------- */
enum { Q_TEXT, Q_EVENT, Q_TURN_END };
typedef struct {
    int kind;
    int channel;
    char *text;
} qitem;

typedef struct npc {
    /* script */
    const char *name;
    const char *persona;
    const char *const *lines; /* what the player says, one per turn */
    int n_lines;
    int repeat;          /* keep cycling through lines until told to leave */
    int max_tokens;
    double temperature;
    int64_t seed;
    int save_after_turn; /* -1, or: after this turn wait for the loop's "save game" */
    int quiet;           /* the twin: talks, but is not shown */

    /* shared with the loop thread, guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qitem *q;
    size_t nq, capq;
    ds8b_session *session; /* NULL while swapped out by save/restore */
    int save_requested;
    int oom;

    /* flags the loop sets and the worker reads */
    atomic_int leaving;
    /* results the worker publishes before setting done */
    atomic_int done;
    int64_t t_leave_ns, t_stopped_ns; /* cancel issued / worker free again */
    int cut_mid_reply;                /* the cancel interrupted a reply */
    int64_t cut_after_tokens;
    int error; /* a library call failed */
    char *turns[MAX_TURNS];           /* answer + reasoning of each turn */
    int n_turns;
    size_t save_bytes;
    int64_t save_ctx;
    double save_ms, load_ms;

    /* the loop's display state */
    char line[2][512];
    size_t nline[2];
    pthread_t thread;
} npc;

static ds8b_model *g_model;
static int g_threads_per_npc = 1;

static void q_push(npc *c, int kind, int channel, const char *text, size_t len) {
    pthread_mutex_lock(&c->mu);
    if (c->nq == c->capq) {
        size_t cap = c->capq ? c->capq * 2 : 64;
        qitem *q = realloc(c->q, cap * sizeof *q);
        if (!q) { c->oom = 1; pthread_mutex_unlock(&c->mu); return; }
        c->q = q;
        c->capq = cap;
    }
    char *t = malloc(len + 1);
    if (!t) { c->oom = 1; pthread_mutex_unlock(&c->mu); return; }
    memcpy(t, text, len);
    t[len] = 0;
    c->q[c->nq++] = (qitem){kind, channel, t};
    pthread_mutex_unlock(&c->mu);
}

static void q_event(npc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void q_event(npc *c, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    q_push(c, Q_EVENT, 0, buf, strlen(buf));
}

/* The stream callback runs on the worker thread. Returning nonzero when the
 * character is leaving closes the gap where a ds8b_session_cancel() issued
 * between two library calls would be forgotten (the flag clears when the
 * next call starts). */
static int on_piece(void *user, const char *piece, size_t len, int channel) {
    npc *c = user;
    q_push(c, Q_TEXT, channel, piece, len);
    return atomic_load(&c->leaving);
}

/* Loop side: cancel whatever the character is generating. The worker only
 * frees a session after taking it out of c->session under mu, so the
 * handle is valid while we hold mu. */
static void npc_cancel(npc *c) {
    pthread_mutex_lock(&c->mu);
    if (c->session) ds8b_session_cancel(c->session);
    pthread_mutex_unlock(&c->mu);
}

/* ---------------------------------------------------------------- */
/* The worker: one conversation                                       */
/* ---------------------------------------------------------------- */
static int make_session(npc *c, ds8b_session **out) {
    ds8b_params *p = NULL;
    int rc = ds8b_params_create(&p);
    if (rc) return rc;
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 2048);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, g_threads_per_npc);
    ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, c->max_tokens);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, c->temperature);
    ds8b_params_set_int(p, DS8B_PARAM_SEED, c->seed);
    ds8b_params_set_int(p, DS8B_PARAM_CTX_POLICY, DS8B_CTX_SLIDE);
    rc = ds8b_session_create(g_model, p, out);
    ds8b_params_free(p);
    return rc;
}

static void set_session(npc *c, ds8b_session *s) {
    pthread_mutex_lock(&c->mu);
    c->session = s;
    pthread_mutex_unlock(&c->mu);
}

static char *join_turn(const ds8b_chat *chat) {
    const char *a = ds8b_chat_last_reply(chat), *r = ds8b_chat_last_reasoning(chat);
    size_t la = strlen(a), lr = strlen(r);
    char *t = malloc(la + lr + 2);
    if (t) {
        memcpy(t, r, lr);
        t[lr] = '|';
        memcpy(t + lr + 1, a, la + 1);
    }
    return t;
}

/* "Save game" then "load game": serialise, free, recreate, restore. The
 * game keeps the chat messages itself (they are the game's dialogue log);
 * the session state carries the KV cache, so the restored chat evaluates
 * nothing it already saw. */
static int save_and_restore(npc *c, ds8b_session **ps, ds8b_chat **pchat, const char *const *said_user,
                            char *const *said_npc, int n_said) {
    size_t need = 0;
    int64_t t0 = now_ns();
    int rc = ds8b_session_save(*ps, NULL, 0, &need);
    if (rc != DS8B_E_BUFFER) return rc ? rc : DS8B_E_INTERNAL;
    void *buf = malloc(need);
    if (!buf) return DS8B_E_NOMEM;
    size_t len = 0;
    rc = ds8b_session_save(*ps, buf, need, &len);
    int64_t t1 = now_ns();
    if (rc) { free(buf); return rc; }
    c->save_bytes = len;
    c->save_ctx = ds8b_session_n_past(*ps);
    c->save_ms = ms(t1 - t0);

    /* the character is unloaded (level change, game quit, ...) */
    set_session(c, NULL);
    ds8b_chat_free(*pchat);
    *pchat = NULL;
    ds8b_session_free(*ps);
    *ps = NULL;

    /* ... and loaded again from the save game */
    int64_t t2 = now_ns();
    ds8b_session *s = NULL;
    ds8b_chat *chat = NULL;
    rc = make_session(c, &s);
    if (!rc) rc = ds8b_session_load(s, buf, len);
    if (!rc) rc = ds8b_chat_create(s, &chat);
    if (!rc) rc = ds8b_chat_add(chat, "system", c->persona);
    for (int i = 0; !rc && i < n_said; i++) {
        rc = ds8b_chat_add(chat, "user", said_user[i]);
        if (!rc) rc = ds8b_chat_add(chat, "assistant", said_npc[i]);
    }
    c->load_ms = ms(now_ns() - t2);
    free(buf);
    if (rc) {
        ds8b_chat_free(chat);
        ds8b_session_free(s);
        return rc;
    }
    *ps = s;
    *pchat = chat;
    set_session(c, s);
    return DS8B_OK;
}

static void *worker(void *arg) {
    npc *c = arg;
    ds8b_session *s = NULL;
    ds8b_chat *chat = NULL;
    const char *said_user[MAX_TURNS];
    char *said_npc[MAX_TURNS] = {0}; /* answers, for re-adding after a load */
    int rc = make_session(c, &s);
    if (!rc) rc = ds8b_chat_create(s, &chat);
    if (!rc) rc = ds8b_chat_add(chat, "system", c->persona);
    if (rc) goto fail;
    set_session(c, s);

    for (int turn = 0; turn < MAX_TURNS; turn++) {
        if (atomic_load(&c->leaving)) break;
        if (turn >= c->n_lines && !c->repeat) break;
        const char *line = c->lines[turn % c->n_lines];
        q_event(c, "Player: %s", line);
        if ((rc = ds8b_chat_add(chat, "user", line))) goto fail;
        int64_t n_gen = 0;
        rc = ds8b_chat_reply(chat, on_piece, c, &n_gen);
        q_push(c, Q_TURN_END, 0, "", 0);
        said_user[turn] = line;
        said_npc[turn] = strdup(ds8b_chat_last_reply(chat));
        c->turns[c->n_turns++] = join_turn(chat);
        if (rc == DS8B_E_CANCELLED && atomic_load(&c->leaving)) {
            c->cut_mid_reply = 1;
            c->cut_after_tokens = n_gen;
            break;
        }
        if (rc) goto fail;

        if (turn == c->save_after_turn) {
            /* wait for the game to save (a real game would save whenever the
             * player asks; the worker owns the session, so it does the work
             * and the loop thread never waits for compression) */
            pthread_mutex_lock(&c->mu);
            while (!c->save_requested && !atomic_load(&c->leaving)) pthread_cond_wait(&c->cv, &c->mu);
            pthread_mutex_unlock(&c->mu);
            if (atomic_load(&c->leaving)) break;
            rc = save_and_restore(c, &s, &chat, said_user, said_npc, turn + 1);
            if (rc) goto fail;
            q_event(c, "(save game: %zu bytes for %lld tokens of context, saved in %.2f ms; "
                       "session freed and restored in %.2f ms)",
                    c->save_bytes, (long long)c->save_ctx, c->save_ms, c->load_ms);
        }
    }
    goto out;
fail:
    c->error = 1;
    q_event(c, "(error: %s: %s)", ds8b_errstr(rc), chat ? ds8b_chat_errmsg(chat) : ds8b_errmsg());
out:
    c->t_stopped_ns = now_ns();
    set_session(c, NULL);
    ds8b_chat_free(chat);
    ds8b_session_free(s);
    for (int i = 0; i < MAX_TURNS; i++) free(said_npc[i]);
    atomic_store(&c->done, 1);
    return NULL;
}

/* ---------------------------------------------------------------- */
/* The loop's display: whole lines, prefixed by the speaker            */
/* ---------------------------------------------------------------- */
static int g_quiet_output;

static void show_line(npc *c, int ch, int frame) {
    if (c->nline[ch] && !g_quiet_output)
        printf("[%4d] %s%s: %.*s\n", frame, c->name, ch == DS8B_CHANNEL_REASONING ? " (thinks)" : "",
               (int)c->nline[ch], c->line[ch]);
    c->nline[ch] = 0;
}

static void show_text(npc *c, int ch, const char *t, int frame) {
    for (; *t; t++) {
        if (*t == '\n' || c->nline[ch] == sizeof c->line[ch]) show_line(c, ch, frame);
        if (*t != '\n') c->line[ch][c->nline[ch]++] = *t;
    }
}

/* Drains the queue: the only per-frame work for a character. */
static void poll_npc(npc *c, int frame) {
    pthread_mutex_lock(&c->mu);
    qitem *q = c->q;
    size_t n = c->nq;
    c->q = NULL;
    c->nq = c->capq = 0;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        if (!c->quiet) {
            if (q[i].kind == Q_TEXT) show_text(c, q[i].channel, q[i].text, frame);
            else if (q[i].kind == Q_TURN_END) { show_line(c, 1, frame); show_line(c, 0, frame); }
            else if (!g_quiet_output) printf("[%4d] %s -- %s\n", frame, c->name, q[i].text);
        }
        free(q[i].text);
    }
    free(q);
}

/* ---------------------------------------------------------------- */
static const char *const k_mira_lines[] = {
    "Good morning! What are you selling today?",
    "How much for the lantern?",
    "Fine, I will take it. Anything else I should know?",
};
static const char *const k_bram_lines[] = {
    "Tell me the whole history of the old mill.",
    "And what happened after that?",
};
static const char *const k_ash_lines[] = {
    "Is the road to the north safe?",
    "Thanks. Where can I rest tonight?",
};

int main(int argc, char **argv) {
    const char *model_path = "models/demo-llama";
    int frames = 300;
    for (int i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if (!strcmp(argv[i], "-m") && more) model_path = argv[++i];
        else if (!strcmp(argv[i], "--frames") && more) frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads-per-npc") && more) g_threads_per_npc = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quiet")) g_quiet_output = 1;
        else {
            fprintf(stderr, "usage: %s [-m MODEL] [--frames N] [--threads-per-npc N] [--quiet]\n", argv[0]);
            return 2;
        }
    }
    if (frames < 30) frames = 30;
    if (g_threads_per_npc < 1) g_threads_per_npc = 1;

    int rc = ds8b_model_load(model_path, NULL, &g_model);
    if (rc) {
        fprintf(stderr, "game_npc: cannot load %s: %s (%s)\n", model_path, ds8b_errmsg(), ds8b_errstr(rc));
        return 1;
    }

    /* Mira is saved and restored; "Mira'" is her unsaved twin with the same
     * script, used only to check the restored continuation. Bram talks
     * until the player walks away. Ash answers two questions. */
    npc cast[4] = {
        {.name = "Mira", .persona = "You are Mira, a cheerful merchant in a small village.",
         .lines = k_mira_lines, .n_lines = 3, .max_tokens = 32, .temperature = 0.0, .seed = 1,
         .save_after_turn = 0},
        {.name = "Bram", .persona = "You are Bram, an old miller who loves long stories.",
         .lines = k_bram_lines, .n_lines = 2, .repeat = 1, .max_tokens = 400, .temperature = 0.8,
         .seed = 2, .save_after_turn = -1},
        {.name = "Ash", .persona = "You are Ash, a terse guard at the north gate.",
         .lines = k_ash_lines, .n_lines = 2, .max_tokens = 24, .temperature = 0.7, .seed = 3,
         .save_after_turn = -1},
        {.name = "Mira'", .persona = "You are Mira, a cheerful merchant in a small village.",
         .lines = k_mira_lines, .n_lines = 3, .max_tokens = 32, .temperature = 0.0, .seed = 1,
         .save_after_turn = -1, .quiet = 1},
    };
    enum { N_CAST = 4 };
    npc *mira = &cast[0], *bram = &cast[1], *twin = &cast[3];
    int started = 0;
    for (int i = 0; i < N_CAST; i++) {
        pthread_mutex_init(&cast[i].mu, NULL);
        pthread_cond_init(&cast[i].cv, NULL);
        if (pthread_create(&cast[i].thread, NULL, worker, &cast[i])) {
            fprintf(stderr, "game_npc: cannot start a thread\n");
            atomic_store(&cast[i].done, 1);
            cast[i].error = 1;
            continue;
        }
        started |= 1 << i;
    }
    printf("game_npc: %s, %d characters on one model, %d thread(s) each, %d frames at 60 Hz\n",
           ds8b_model_desc(g_model), N_CAST, g_threads_per_npc, frames);

    const int save_frame = frames * 3 / 10, walk_frame = frames / 2;
    const int max_frames = frames + 60 * 20; /* give up 20 s after the scene */
    int64_t worst_work = 0, worst_late = 0, sum_work = 0, worst_cpu = 0;
    int over_budget = 0, dropped = 0, frame = 0, bram_reported = 0, ended = 0;
    int64_t next = now_ns();
    for (frame = 0; frame < max_frames; frame++) {
        int64_t start = now_ns(), start_cpu = cpu_ns();
        if (start - next > worst_late) worst_late = start - next;

        /* scripted events */
        if (frame == save_frame) {
            if (!g_quiet_output) printf("[%4d] the player saves the game\n", frame);
            pthread_mutex_lock(&mira->mu);
            mira->save_requested = 1;
            pthread_cond_signal(&mira->cv);
            pthread_mutex_unlock(&mira->mu);
        }
        if (frame == walk_frame) {
            if (!g_quiet_output) printf("[%4d] the player walks away from Bram\n", frame);
            bram->t_leave_ns = now_ns();
            atomic_store(&bram->leaving, 1);
            npc_cancel(bram);
        }
        if (frame == frames) {
            /* the scene is over: everyone but the save check stops talking */
            ended = 1;
            for (int i = 1; i < 3; i++)
                if (!atomic_load(&cast[i].done)) {
                    atomic_store(&cast[i].leaving, 1);
                    npc_cancel(&cast[i]);
                }
        }

        /* the per-frame work: drain the queues */
        int all_done = 1;
        for (int i = 0; i < N_CAST; i++) {
            poll_npc(&cast[i], frame);
            if (!atomic_load(&cast[i].done)) all_done = 0;
        }
        if (!bram_reported && bram->t_leave_ns && atomic_load(&bram->done)) {
            bram_reported = 1;
            if (!g_quiet_output)
                printf("[%4d] Bram -- stopped %.2f ms after the cancel\n", frame,
                       ms(bram->t_stopped_ns - bram->t_leave_ns));
        }
        fflush(stdout);

        int64_t work = now_ns() - start, cpu = cpu_ns() - start_cpu;
        if (cpu > worst_cpu) worst_cpu = cpu;
        sum_work += work;
        if (work > worst_work) worst_work = work;
        if (work > FRAME_NS) over_budget++;
        if (ended && all_done) { frame++; break; }

        /* sleep to the next frame boundary; skip boundaries already missed */
        next += FRAME_NS;
        int64_t t = now_ns();
        while (next < t) { next += FRAME_NS; dropped++; }
        struct timespec ts = {(time_t)(next / 1000000000LL), (long)(next % 1000000000LL)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) {}
    }
    /* past the give-up point: stop the rest */
    for (int i = 0; i < N_CAST; i++) {
        atomic_store(&cast[i].leaving, 1);
        npc_cancel(&cast[i]);
    }
    for (int i = 0; i < N_CAST; i++)
        if (started & (1 << i)) pthread_join(cast[i].thread, NULL);
    for (int i = 0; i < N_CAST; i++) poll_npc(&cast[i], frame);

    /* the report */
    int failed = 0;
    printf("\nframes: %d (%d scripted + %d waiting for workers), %d boundaries missed\n", frame,
           frames < frame ? frames : frame, frame > frames ? frame - frames : 0, dropped);
    printf("worst frame time: %.3f ms (mean %.3f ms, budget %.2f ms), frames over budget: %d\n",
           ms(worst_work), frame ? ms(sum_work) / frame : 0.0, ms(FRAME_NS), over_budget);
    printf("worst frame CPU time: %.3f ms (the rest of a frame's time is waiting for a core)\n", ms(worst_cpu));
    printf("worst wake-up lateness: %.3f ms\n", ms(worst_late));
    if (bram->t_leave_ns && bram->t_stopped_ns)
        printf("cancel latency: %.2f ms (Bram %s)\n", ms(bram->t_stopped_ns - bram->t_leave_ns),
               bram->cut_mid_reply ? "was cut off mid-reply" : "was between replies");
    else {
        printf("cancel latency: n/a (Bram never walked away)\n");
        failed = 1;
    }
    if (mira->save_bytes)
        printf("save game: %zu bytes for %lld tokens, save %.2f ms, restore %.2f ms\n", mira->save_bytes,
               (long long)mira->save_ctx, mira->save_ms, mira->load_ms);
    int match = mira->save_bytes && !mira->error && !twin->error && mira->n_turns == 3 && twin->n_turns == 3;
    for (int i = 0; match && i < 3; i++)
        if (!mira->turns[i] || !twin->turns[i] || strcmp(mira->turns[i], twin->turns[i])) match = 0;
    printf("save/restore check: %s (restored Mira vs unsaved twin, %d vs %d turns, greedy)\n",
           match ? "MATCH" : "MISMATCH", mira->n_turns, twin->n_turns);
    if (!match) {
        failed = 1;
        for (int i = 0; i < mira->n_turns || i < twin->n_turns; i++)
            printf("  turn %d: restored \"%s\"\n          twin     \"%s\"\n", i,
                   i < mira->n_turns && mira->turns[i] ? mira->turns[i] : "(none)",
                   i < twin->n_turns && twin->turns[i] ? twin->turns[i] : "(none)");
    }
    for (int i = 0; i < N_CAST; i++) {
        if (cast[i].error || cast[i].oom) {
            printf("%s: a library call failed\n", cast[i].name);
            failed = 1;
        }
        for (int k = 0; k < cast[i].n_turns; k++) free(cast[i].turns[k]);
        pthread_mutex_destroy(&cast[i].mu);
        pthread_cond_destroy(&cast[i].cv);
    }
    ds8b_model_free(g_model);
    return failed ? 1 : 0;
}
