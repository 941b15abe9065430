/* chat.c -- an interactive multi-turn chat in the terminal.
 *
 * Demonstrates the ds8b_chat_* API: the library renders the model's own
 * chat template, keeps the KV cache of the prefix the conversation shares
 * with what the session already holds, and streams the reply split into the
 * reasoning channel (<think>...</think>, shown dimmed) and the answer.
 *
 * Ctrl-C while a reply streams cancels just that reply and returns to the
 * prompt; Ctrl-C at the prompt (or end of input) quits.
 *
 * Build: cc chat.c $(pkg-config --cflags --libs ds8b)
 * Run:   ./chat [-m MODEL] [-n MAX_TOKENS] [--seed N] [--temp T]
 *               [--system TEXT] [--threads N] [--no-color]
 * Works with piped input too: printf 'Hello\nAnd then?\n' | ./chat
 *
 * About the signal handler: ds8b_session_cancel() only checks the handle's
 * magic number and stores 1 into an atomic flag (no locks, no allocation,
 * no error message on success), so calling it from a SIGINT handler is
 * safe. Generation polls that flag between tokens, between prompt
 * micro-batches and between layers of the forward pass. */
#define _POSIX_C_SOURCE 200809L
#include <ds8b.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* State shared with the SIGINT handler. */
static ds8b_session *volatile g_session;    /* the session a reply is running on */
static volatile sig_atomic_t g_in_reply;    /* 1 while ds8b_chat_reply runs */
static volatile sig_atomic_t g_interrupted; /* Ctrl-C seen during this reply */
static volatile sig_atomic_t g_quit;        /* Ctrl-C seen at the prompt */

static void on_sigint(int sig) {
    (void)sig;
    if (g_in_reply && g_session) {
        g_interrupted = 1;
        ds8b_session_cancel(g_session); /* async-signal-safe: an atomic store */
    } else {
        g_quit = 1; /* getline() returns with EINTR (no SA_RESTART) */
    }
}

typedef struct {
    int color;       /* use ANSI escapes */
    int channel;     /* channel of the last piece printed, -1 before the first */
    size_t n_answer; /* bytes printed per channel in this reply */
    size_t n_reasoning;
} printer;

#define DIM "\x1b[2m"
#define RESET "\x1b[0m"

/* Switches the terminal style when the channel changes. */
static void set_channel(printer *p, int channel) {
    if (channel == p->channel) return;
    if (p->channel == DS8B_CHANNEL_REASONING) {
        fputs(p->color ? RESET : "]", stdout);
        fputs("\n", stdout); /* the answer starts on its own line */
    }
    if (channel == DS8B_CHANNEL_REASONING) fputs(p->color ? DIM : "[thinking: ", stdout);
    p->channel = channel;
}

static int on_piece(void *user, const char *piece, size_t len, int channel) {
    printer *p = user;
    set_channel(p, channel);
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    if (channel == DS8B_CHANNEL_REASONING) p->n_reasoning += len;
    else p->n_answer += len;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [-m MODEL] [-n MAX_TOKENS] [--seed N] [--temp T] [--system TEXT]\n"
            "          [--threads N] [--no-color] [--ignore-eos]\n"
            "Reads one user message per line from stdin until EOF.\n",
            argv0);
}

int main(int argc, char **argv) {
    const char *model_path = "models/demo-llama";
    const char *system_prompt = NULL;
    long max_tokens = 256, seed = 0x5eed, threads = 0;
    double temp = 0.6; /* DeepSeek's recommended temperature for R1 models */
    int color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    int stop_at_eos = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "-m") && more) model_path = argv[++i];
        else if (!strcmp(a, "-n") && more) max_tokens = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--seed") && more) seed = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--temp") && more) temp = strtod(argv[++i], NULL);
        else if (!strcmp(a, "--system") && more) system_prompt = argv[++i];
        else if (!strcmp(a, "--threads") && more) threads = strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--no-color")) color = 0;
        else if (!strcmp(a, "--ignore-eos")) stop_at_eos = 0;
        else if (!strcmp(a, "--color")) color = 1;
        else { usage(argv[0]); return 2; }
    }

    ds8b_model *model = NULL;
    ds8b_params *params = NULL;
    ds8b_session *session = NULL;
    ds8b_chat *chat = NULL;
    int rc = ds8b_model_load(model_path, NULL, &model);
    if (rc) {
        fprintf(stderr, "chat: cannot load %s: %s (%s)\n", model_path, ds8b_errmsg(), ds8b_errstr(rc));
        return 1;
    }
    if ((rc = ds8b_params_create(&params)) == DS8B_OK) {
        ds8b_params_set_int(params, DS8B_PARAM_N_CTX, 4096);
        ds8b_params_set_int(params, DS8B_PARAM_N_THREADS, threads);
        ds8b_params_set_int(params, DS8B_PARAM_MAX_TOKENS, max_tokens);
        ds8b_params_set_int(params, DS8B_PARAM_SEED, seed);
        ds8b_params_set_float(params, DS8B_PARAM_TEMPERATURE, temp);
        ds8b_params_set_int(params, DS8B_PARAM_STOP_AT_EOS, stop_at_eos);
        /* a long conversation slides instead of failing when the context fills */
        ds8b_params_set_int(params, DS8B_PARAM_CTX_POLICY, DS8B_CTX_SLIDE);
        rc = ds8b_session_create(model, params, &session);
    }
    if (rc == DS8B_OK) rc = ds8b_chat_create(session, &chat);
    if (rc == DS8B_OK && system_prompt) rc = ds8b_chat_add(chat, "system", system_prompt);
    if (rc) {
        fprintf(stderr, "chat: %s (%s)\n", ds8b_errmsg(), ds8b_errstr(rc));
        goto done;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: Ctrl-C at the prompt interrupts getline */
    sigaction(SIGINT, &sa, NULL);

    int interactive = isatty(STDIN_FILENO);
    fprintf(stderr, "chat: %s -- one message per line, Ctrl-C stops a reply, EOF quits\n",
            ds8b_model_desc(model));
    char *line = NULL;
    size_t cap = 0;
    int turn = 0;
    for (;;) {
        if (interactive) {
            fputs(color ? "\x1b[1myou>\x1b[0m " : "you> ", stdout);
            fflush(stdout);
        }
        errno = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0 || g_quit) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        turn++;
        if (!interactive) printf("you> %s\n", line); /* echo piped input */
        if ((rc = ds8b_chat_add(chat, "user", line)) != DS8B_OK) {
            fprintf(stderr, "chat: %s\n", ds8b_chat_errmsg(chat));
            break;
        }

        fputs(color ? "\x1b[1massistant>\x1b[0m " : "assistant> ", stdout);
        fflush(stdout);
        printer pr = {color, -1, 0, 0};
        int64_t n_gen = 0;
        g_interrupted = 0;
        g_session = session;
        g_in_reply = 1;
        double t0 = now_s();
        rc = ds8b_chat_reply(chat, on_piece, &pr, &n_gen);
        double dt = now_s() - t0;
        g_in_reply = 0;
        if (pr.channel == DS8B_CHANNEL_REASONING) fputs(color ? RESET : "]", stdout);
        fputs("\n", stdout);
        fflush(stdout);
        if (rc == DS8B_E_CANCELLED && g_interrupted) {
            fprintf(stderr, "[turn %d: interrupted after %lld tokens]\n", turn, (long long)n_gen);
        } else if (rc != DS8B_OK) {
            fprintf(stderr, "chat: reply failed: %s (%s)\n", ds8b_chat_errmsg(chat), ds8b_errstr(rc));
            break;
        } else {
            fprintf(stderr, "[turn %d: %lld tokens, %zu answer + %zu reasoning bytes, %.1f tok/s, context %lld]\n",
                    turn, (long long)n_gen, pr.n_answer, pr.n_reasoning, dt > 0 ? n_gen / dt : 0.0,
                    (long long)ds8b_session_n_past(session));
        }
    }
    free(line);
    if (rc == DS8B_E_CANCELLED) rc = DS8B_OK; /* an interrupted last reply is not an error */
done:
    ds8b_chat_free(chat);
    ds8b_session_free(session);
    ds8b_params_free(params);
    ds8b_model_free(model);
    return rc == DS8B_OK ? 0 : 1;
}
