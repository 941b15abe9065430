/*
 * cmd_template.c -- ds8b chat-template: renders JSON messages on stdin
 * with the tokenizer's chat template.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================== */
/* chat-template and chat                                              */
/* ================================================================== */
const cli_optdef chat_template_opts[] = {
    {"-m", CLI_STR, "PATH", CLI_REQ},
    {"--no-generation-prompt", CLI_FLAG},
    {"--tools", CLI_STR, "FILE.json"},   /* a JSON array of tool definitions */
    {"--vars", CLI_STR, "JSON_OBJECT"},  /* extra template variables */
    {0},
};

int cmd_chat_template(const cli_args *a) {
    const char *path = cli_opt(a, "-m");
    size_t len;
    char *msgs = cli_read_all(stdin, &len);
    if (!msgs) return 1;
    ds8b_tokenizer *t = NULL;
    int rc = ds8b_tokenizer_load(path, &t);
    if (rc) { free(msgs); return cli_fail("loading the tokenizer", rc); }
    int add = !cli_flag(a, "--no-generation-prompt");
    const char *tools_path = cli_opt(a, "--tools"), *vars = cli_opt(a, "--vars");
    char *tools = NULL;
    size_t tools_len = 0;
    if (tools_path) {
        FILE *f = fopen(tools_path, "rb");
        tools = f ? cli_read_all(f, &tools_len) : NULL;
        if (f) fclose(f);
        if (!tools) {
            fprintf(stderr, "ds8b: cannot read --tools %s\n", tools_path);
            free(msgs);
            ds8b_tokenizer_free(t);
            return 1;
        }
    }
    bool ext = tools || vars; /* without either: exactly ds8b_tokenizer_chat_render */
    size_t need = 0;
    rc = ext ? ds8b_tokenizer_chat_render_tools(t, msgs, len, tools, tools_len, vars, vars ? strlen(vars) : 0, add, NULL,
                                                0, &need)
             : ds8b_tokenizer_chat_render(t, msgs, len, add, NULL, 0, &need);
    char *out = NULL;
    if (rc == DS8B_E_BUFFER) {
        out = malloc(need + 1);
        if (!out) rc = DS8B_E_NOMEM;
        else if (ext)
            rc = ds8b_tokenizer_chat_render_tools(t, msgs, len, tools, tools_len, vars, vars ? strlen(vars) : 0, add, out,
                                                  need + 1, &need);
        else rc = ds8b_tokenizer_chat_render(t, msgs, len, add, out, need + 1, &need);
    }
    free(tools);
    int ret = 0;
    if (rc) ret = cli_fail("rendering the chat template", rc);
    else fwrite(out, 1, need, stdout);
    free(out);
    free(msgs);
    ds8b_tokenizer_free(t);
    return ret;
}

