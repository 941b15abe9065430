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
const cli_optdef generate_opts[] = {
    {"-m", CLI_STR, "PATH", CLI_REQ},
    {"-p", CLI_STR, "TEXT", CLI_REQ},
    {"--reasoning", CLI_FLAG},
    {"--color", CLI_FLAG},
    {"--raw", CLI_FLAG},
    {"--no-echo", CLI_FLAG},
    {"--stats", CLI_FLAG},
    {"--draft-model", CLI_STR, "PATH"},
    {"--grammar-file", CLI_STR, "FILE.gbnf"},
    {"--json-schema", CLI_STR, "FILE.json"},
    {0},
};

/* Streams pieces to stdout; with color, reasoning is dimmed. */
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

int cmd_generate(const cli_args *a) {
    const char *prompt = cli_opt(a, "-p");
    ds8b_model *m;
    ds8b_session *s;
    int rc = cli_open(a, cli_opt(a, "-m"), &m, &s);
    if (rc) return rc;
    ds8b_model *dm = NULL; /* --draft-model: drafts for speculative decoding */
    const char *dpath = cli_opt(a, "--draft-model");
    if (dpath && (cli_load(a, dpath, &dm) || (rc = ds8b_session_set_draft_model(s, dm)) != DS8B_OK)) {
        if (dm) cli_fail("--draft-model", rc);
        ds8b_session_free(s);
        ds8b_model_free(dm);
        ds8b_model_free(m);
        return 1;
    }
    ds8b_grammar *gram = NULL;
    const char *gfile = cli_opt(a, "--grammar-file"), *sfile = cli_opt(a, "--json-schema");
    if (gfile && sfile) {
        ds8b_session_free(s);
        ds8b_model_free(dm);
        ds8b_model_free(m);
        return cli_usage(a, "--grammar-file and --json-schema exclude each other");
    }
    if ((gfile || sfile) &&
        (!(gram = gfile ? cli_grammar_load(gfile) : cli_schema_load(sfile)) || ds8b_session_set_grammar(s, gram))) {
        ds8b_session_free(s);
        ds8b_grammar_free(gram);
        ds8b_model_free(dm);
        ds8b_model_free(m);
        return 1;
    }
    int flags = cli_flag(a, "--raw") ? 0 : DS8B_GEN_ADD_SPECIAL;
    if (cli_flag(a, "--reasoning")) flags |= DS8B_GEN_REASONING;
    gen_state g = {DS8B_CHANNEL_ANSWER, cli_flag(a, "--color")};
    int64_t ng = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!cli_flag(a, "--no-echo")) fputs(prompt, stdout);
    rc = ds8b_generate(s, prompt, strlen(prompt), flags, on_piece, &g, &ng);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (g.color) fputs("\x1b[0m", stdout);
    if (!cli_flag(a, "--no-echo")) fputc('\n', stdout); /* --no-echo: stdout is the generated text only */
    int ret = 0;
    if (rc) ret = cli_fail("generating", rc);
    if (cli_flag(a, "--stats")) {
        double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        fprintf(stderr, "ds8b: %lld tokens in %.2f s\n", (long long)ng, sec);
        int64_t drafted = 0, accepted = 0, passes = 0;
        ds8b_session_spec_stats(s, &drafted, &accepted, &passes);
        fprintf(stderr, "speculation: drafted %lld, accepted %lld, passes %lld\n", (long long)drafted,
                (long long)accepted, (long long)passes);
    }
    ds8b_session_free(s);
    ds8b_model_free(dm);
    ds8b_grammar_free(gram);
    ds8b_model_free(m);
    return ret;
}

const cli_optdef chat_opts[] = {
    {"-m", CLI_STR, "PATH", CLI_REQ},
    {"--system", CLI_STR, "TEXT"},
    {0},
};

int cmd_chat(const cli_args *a) {
    ds8b_model *m;
    ds8b_session *s;
    ds8b_chat *c = NULL;
    int rc = cli_open(a, cli_opt(a, "-m"), &m, &s);
    if (rc) return rc;
    if ((rc = ds8b_chat_create(s, &c))) {
        ds8b_session_free(s);
        ds8b_model_free(m);
        return cli_fail("creating the chat", rc);
    }
    const char *sys = cli_opt(a, "--system");
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
        gen_state g = {DS8B_CHANNEL_ANSWER, true};
        rc = ds8b_chat_reply(c, on_piece, &g, NULL);
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

