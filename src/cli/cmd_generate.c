/*
 * cmd_generate.c -- ds8b generate (one prompt) and ds8b chat (a conversation
 * on stdin).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ================================================================== */
/* generate                                                            */
/* ================================================================== */
typedef struct gen_state {
    int last_channel;
    bool color;
} gen_state;

static int on_piece(void *user, const char *piece, size_t len, int channel) {
    gen_state *g = user;
    if (g->color && channel != g->last_channel)
        fputs(channel == DS8B_CHANNEL_REASONING ? "\x1b[2m" : "\x1b[0m", stdout);
    g->last_channel = channel;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m"), *prompt = cli_opt(argc, argv, "-p");
    if (!path || !prompt) return cli_usage("generate needs -m PATH and -p TEXT");
    ds8b_params *p = cli_session_params(argc, argv);
    if (!p) return 2;
    ds8b_model *m;
    if (cli_load(argc, argv, path, &m)) { ds8b_params_free(p); return 1; }
    ds8b_session *s;
    int rc = ds8b_session_create(m, p, &s);
    ds8b_params_free(p);
    if (rc) { ds8b_model_free(m); return cli_fail("creating the session", rc); }
    ds8b_grammar *gram = NULL;
    const char *gfile = cli_opt(argc, argv, "--grammar-file"), *sfile = cli_opt(argc, argv, "--json-schema");
    if (gfile && sfile) {
        ds8b_session_free(s);
        ds8b_model_free(m);
        return cli_usage("generate: --grammar-file and --json-schema exclude each other");
    }
    if ((gfile || sfile) &&
        (!(gram = gfile ? cli_grammar_load(gfile) : cli_schema_load(sfile)) || ds8b_session_set_grammar(s, gram))) {
        ds8b_session_free(s);
        ds8b_grammar_free(gram);
        ds8b_model_free(m);
        return 1;
    }
    int flags = cli_flag(argc, argv, "--raw") ? 0 : DS8B_GEN_ADD_SPECIAL;
    if (cli_flag(argc, argv, "--reasoning")) flags |= DS8B_GEN_REASONING;
    gen_state g = {DS8B_CHANNEL_ANSWER, cli_flag(argc, argv, "--color")};
    int64_t ng = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!cli_flag(argc, argv, "--no-echo")) fputs(prompt, stdout);
    rc = ds8b_generate(s, prompt, strlen(prompt), flags, on_piece, &g, &ng);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (g.color) fputs("\x1b[0m", stdout);
    if (!cli_flag(argc, argv, "--no-echo")) fputc('\n', stdout); /* --no-echo: stdout is the generated text only */
    int ret = 0;
    if (rc) ret = cli_fail("generating", rc);
    if (cli_flag(argc, argv, "--stats")) {
        double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        fprintf(stderr, "ds8b: %lld tokens in %.2f s\n", (long long)ng, sec);
    }
    ds8b_session_free(s);
    ds8b_grammar_free(gram);
    ds8b_model_free(m);
    return ret;
}

static int chat_piece(void *user, const char *piece, size_t len, int channel) {
    int *last = user;
    if (channel != *last) fputs(channel == DS8B_CHANNEL_REASONING ? "\x1b[2m" : "\x1b[0m", stdout);
    *last = channel;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int cmd_chat(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("chat needs -m PATH");
    ds8b_params *p = cli_session_params(argc, argv);
    if (!p) return 2;
    ds8b_model *m;
    if (cli_load(argc, argv, path, &m)) { ds8b_params_free(p); return 1; }
    ds8b_session *s;
    ds8b_chat *c = NULL;
    int rc = ds8b_session_create(m, p, &s);
    ds8b_params_free(p);
    if (!rc) rc = ds8b_chat_create(s, &c);
    if (rc) { ds8b_model_free(m); return cli_fail("creating the chat", rc); }
    const char *sys = cli_opt(argc, argv, "--system");
    if (sys) ds8b_chat_add(c, "system", sys);
    char *line = NULL;
    size_t cap = 0;
    ssize_t l;
    fputs("> ", stdout);
    fflush(stdout);
    while ((l = getline(&line, &cap, stdin)) > 0) {
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
        if (!l) { fputs("> ", stdout); fflush(stdout); continue; }
        ds8b_chat_add(c, "user", line);
        int last = DS8B_CHANNEL_ANSWER;
        rc = ds8b_chat_reply(c, chat_piece, &last, NULL);
        fputs("\x1b[0m\n> ", stdout);
        fflush(stdout);
        if (rc && rc != DS8B_E_CANCELLED) { cli_fail("replying", rc); break; }
    }
    free(line);
    ds8b_chat_free(c);
    ds8b_session_free(s);
    ds8b_model_free(m);
    return rc && rc != DS8B_E_CANCELLED ? 1 : 0;
}

