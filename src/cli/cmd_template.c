/*
 * cmd_template.c -- ds8b chat-template: renders JSON messages on stdin
 * with the tokenizer's chat template.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

/* ================================================================== */
/* chat-template and chat                                              */
/* ================================================================== */
int cmd_chat_template(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("chat-template needs -m PATH (JSON messages on stdin)");
    size_t len;
    char *msgs = cli_read_all(stdin, &len);
    if (!msgs) return 1;
    ds8b_tokenizer *t = NULL;
    int rc = ds8b_tokenizer_load(path, &t);
    if (rc) { free(msgs); return cli_fail("loading the tokenizer", rc); }
    int add = !cli_flag(argc, argv, "--no-generation-prompt");
    size_t need = 0;
    rc = ds8b_tokenizer_chat_render(t, msgs, len, add, NULL, 0, &need);
    char *out = NULL;
    if (rc == DS8B_E_BUFFER) {
        out = malloc(need + 1);
        rc = out ? ds8b_tokenizer_chat_render(t, msgs, len, add, out, need + 1, &need) : DS8B_E_NOMEM;
    }
    int ret = 0;
    if (rc) ret = cli_fail("rendering the chat template", rc);
    else fwrite(out, 1, need, stdout);
    free(out);
    free(msgs);
    ds8b_tokenizer_free(t);
    return ret;
}

