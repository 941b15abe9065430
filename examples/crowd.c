/* crowd.c -- a crowd of game characters talking at once through one
 * ds8b_batch: every step reads the weights once for all of them.
 *
 * Build: cc crowd.c $(pkg-config --cflags --libs ds8b) -lpthread
 * Run:   ./crowd -m MODEL [--npcs 6] [--tokens 40] [--frames 600]
 *
 * The worker thread owns the batch and the sessions: characters join at
 * staggered steps (a character who starts talking does not wait for the
 * others), each streams its text into its own queue, and the 60 Hz main
 * loop only drains the queues and prints whole lines. Half-way through, the
 * player walks away from Bram, who talks too long: the main loop cancels his session
 * (ds8b_session_cancel is safe from any thread) and the others carry on.
 * At the end one character is generated again alone, with the same seed,
 * to show that batching never changes what a character says.
 */
#define _GNU_SOURCE
#include <ds8b.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_NPCS 16

typedef struct npc {
    const char *name, *prompt;
    ds8b_session *s;
    int join_step;            /* worker step at which the character starts talking */
    pthread_mutex_t mu;       /* guards queue, nq, said, nsaid */
    char queue[4096];         /* text not yet printed by the main loop */
    size_t nq;
    char said[8192];          /* everything the character said */
    size_t nsaid;
    _Atomic int published;    /* s is valid for cancel */
} npc;

static npc g_npc[MAX_NPCS];
static int g_n = 6;
static _Atomic int g_done;
static double g_batch_tps;

static const char *k_names[] = {"Mira", "Bram", "Oskar", "Lena", "Tove", "Ivo", "Nell", "Ruth",
                                "Cato", "Edda", "Finn", "Gus", "Hild", "Jory", "Kai", "Lark"};
static const char *k_prompts[] = {"The blacksmith said", "Once upon a time", "The market opens at",
                                  "My grandmother told me", "The road to the north", "Have you heard",
                                  "In the old tower", "The river is"};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int on_piece(void *user, const char *piece, size_t len, int channel) {
    npc *c = user;
    (void)channel;
    pthread_mutex_lock(&c->mu);
    if (c->nq + len < sizeof c->queue) {
        memcpy(c->queue + c->nq, piece, len);
        c->nq += len;
    }
    if (c->nsaid + len < sizeof c->said) {
        memcpy(c->said + c->nsaid, piece, len);
        c->nsaid += len;
        c->said[c->nsaid] = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

typedef struct worker_arg {
    ds8b_model *m;
    int tokens;
} worker_arg;

static ds8b_session *make_session(ds8b_model *m, int i, int tokens) {
    ds8b_params *p = NULL;
    ds8b_session *s = NULL;
    if (ds8b_params_create(&p)) return NULL;
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 256);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1); /* prompts are short; the batch has the threads */
    ds8b_params_set_int(p, DS8B_PARAM_SEED, 100 + i);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0.8);
    ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, tokens);
    if (ds8b_session_create(m, p, &s)) s = NULL;
    ds8b_params_free(p);
    return s;
}

static void *worker(void *arg) {
    worker_arg *a = arg;
    ds8b_batch *b = NULL;
    ds8b_params *p = NULL;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 2);
    if (ds8b_batch_create(a->m, p, &b)) {
        fprintf(stderr, "batch: %s\n", ds8b_errmsg());
        ds8b_params_free(p);
        g_done = 1;
        return NULL;
    }
    ds8b_params_free(p);
    int joined = 0, steps = 0;
    int64_t active = 0, tokens = 0;
    double t0 = now_s(), busy = 0;
    while (joined < g_n || active > 0) {
        for (int i = 0; i < g_n; i++) {
            npc *c = &g_npc[i];
            if (c->s || c->join_step > steps) continue;
            c->s = make_session(a->m, i, i == 1 ? 4 * a->tokens : a->tokens); /* Bram's monologue */
            if (!c->s || ds8b_batch_add(b, c->s, c->prompt, strlen(c->prompt), DS8B_GEN_ADD_SPECIAL, on_piece, c)) {
                fprintf(stderr, "%s could not join: %s\n", c->name, ds8b_errmsg());
                joined++;
                continue;
            }
            c->published = 1;
            joined++;
        }
        double ts = now_s();
        if (ds8b_batch_step(b, &active)) {
            fprintf(stderr, "step: %s\n", ds8b_batch_errmsg(b));
            break;
        }
        busy += now_s() - ts;
        steps++;
    }
    for (int i = 0; i < g_n; i++)
        if (g_npc[i].s) tokens += ds8b_session_n_generated(g_npc[i].s);
    g_batch_tps = busy > 0 ? (double)tokens / busy : 0;
    fprintf(stderr, "worker: %d steps, %lld tokens for %d characters in %.2f s of steps (%.1f tokens/s), %.2f s wall\n",
            steps, (long long)tokens, g_n, busy, g_batch_tps, now_s() - t0);
    ds8b_batch_free(b);
    g_done = 1;
    return NULL;
}

/* Prints every complete line a character has queued (all of it at the end). */
static void drain(npc *c, int final) {
    pthread_mutex_lock(&c->mu);
    size_t cut = 0;
    for (size_t i = 0; i < c->nq; i++)
        if (c->queue[i] == '\n') cut = i + 1;
    if (final) cut = c->nq;
    if (cut) {
        printf("%s: %.*s%s", c->name, (int)cut, c->queue, c->queue[cut - 1] == '\n' ? "" : "\n");
        memmove(c->queue, c->queue + cut, c->nq - cut);
        c->nq -= cut;
    }
    pthread_mutex_unlock(&c->mu);
}

static const char *finish_name(int f) {
    switch (f) {
    case DS8B_FINISH_EOS: return "end of text";
    case DS8B_FINISH_MAX_TOKENS: return "token limit";
    case DS8B_FINISH_STOP_STRING: return "stop string";
    case DS8B_FINISH_CONTEXT: return "context full";
    case DS8B_FINISH_CANCELLED: return "cancelled";
    case DS8B_FINISH_ERROR: return "error";
    default: return "still talking";
    }
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int tokens = 40, frames = 600;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--npcs") && i + 1 < argc) g_n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--frames") && i + 1 < argc) frames = atoi(argv[++i]);
    }
    if (!path || g_n < 2 || g_n > MAX_NPCS || tokens < 1) {
        fprintf(stderr, "usage: %s -m MODEL [--npcs 2..%d] [--tokens N] [--frames N]\n", argv[0], MAX_NPCS);
        return 2;
    }
    ds8b_model *m = NULL;
    if (ds8b_model_load(path, NULL, &m)) {
        fprintf(stderr, "load: %s\n", ds8b_errmsg());
        return 1;
    }
    for (int i = 0; i < g_n; i++) {
        g_npc[i].name = k_names[i];
        g_npc[i].prompt = k_prompts[i % 8];
        g_npc[i].join_step = 3 * i; /* staggered entrances */
        pthread_mutex_init(&g_npc[i].mu, NULL);
    }
    worker_arg wa = {m, tokens};
    pthread_t th;
    pthread_create(&th, NULL, worker, &wa);

    /* 60 Hz main loop: drain queues, cancel one character half-way */
    const double frame = 1.0 / 60.0;
    double next = now_s(), worst = 0;
    int walked_away = -1;
    for (int f = 0; f < frames && !g_done; f++) {
        double t0 = now_s();
        for (int i = 0; i < g_n; i++) drain(&g_npc[i], 0);
        pthread_mutex_lock(&g_npc[1].mu);
        size_t bram_said = g_npc[1].nsaid;
        pthread_mutex_unlock(&g_npc[1].mu);
        if (walked_away < 0 && bram_said >= 40 && g_npc[1].published) {
            ds8b_session_cancel(g_npc[1].s); /* the player walks away from Bram */
            walked_away = f;
        }
        double work = now_s() - t0;
        if (work > worst) worst = work;
        next += frame;
        struct timespec ts = {(time_t)next, (long)((next - (double)(time_t)next) * 1e9)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
    pthread_join(th, NULL);
    for (int i = 0; i < g_n; i++) drain(&g_npc[i], 1);

    printf("\n");
    for (int i = 0; i < g_n; i++)
        if (g_npc[i].s)
            printf("%-6s %3lld tokens, %s\n", g_npc[i].name, (long long)ds8b_session_n_generated(g_npc[i].s),
                   finish_name(ds8b_session_finish_reason(g_npc[i].s)));
    printf("worst frame work: %.3f ms (budget %.2f ms); walked away from %s at frame %d\n", worst * 1e3, frame * 1e3,
           g_npc[1].name, walked_away);

    /* Mira again, alone, same seed: batching must not change her words */
    int rc = 0;
    ds8b_session *alone = make_session(m, 0, tokens);
    npc twin;
    memset(&twin, 0, sizeof twin);
    pthread_mutex_init(&twin.mu, NULL);
    if (!alone || ds8b_generate(alone, g_npc[0].prompt, strlen(g_npc[0].prompt), DS8B_GEN_ADD_SPECIAL, on_piece, &twin,
                                NULL)) {
        fprintf(stderr, "alone: %s\n", ds8b_errmsg());
        rc = 1;
    } else {
        int same = strcmp(twin.said, g_npc[0].said) == 0;
        printf("batched vs alone check: %s (%s, %zu bytes)\n", same ? "MATCH" : "MISMATCH", g_npc[0].name, twin.nsaid);
        if (!same) rc = 1;
    }
    ds8b_session_free(alone);
    for (int i = 0; i < g_n; i++) ds8b_session_free(g_npc[i].s);
    ds8b_model_free(m);
    return rc;
}
