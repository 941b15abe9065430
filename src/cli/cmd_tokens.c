/*
 * cmd_tokens.c -- ds8b tokenize (text on stdin to ids) and ds8b detokenize
 * (a JSON array of ids on stdin to text).
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================== */
/* tokenize / detokenize                                               */
/* ================================================================== */
static int print_ids(const ds8b_tokenizer *t, const char *text, size_t len, int flags) {
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return 1;
    int rc = ds8b_tokenize(t, text, len, flags, ids, cap, &n);
    if (rc == DS8B_E_BUFFER) {
        free(ids);
        ids = malloc((n + 1) * sizeof *ids);
        cap = n + 1;
        rc = ids ? ds8b_tokenize(t, text, len, flags, ids, cap, &n) : DS8B_E_NOMEM;
    }
    if (rc) { free(ids); return cli_fail("tokenizing", rc); }
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    putchar(']');
    free(ids);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("tokenize needs -m PATH");
    ds8b_tokenizer *t;
    int rc = ds8b_tokenizer_load(path, &t);
    if (rc) return cli_fail("loading the tokenizer", rc);
    int flags = 0;
    if (cli_flag(argc, argv, "--special")) flags |= DS8B_TOKENIZE_ADD_SPECIAL;
    if (cli_flag(argc, argv, "--no-parse-special")) flags |= DS8B_TOKENIZE_NO_PARSE_SPECIAL;
    int ret = 0;
    if (cli_flag(argc, argv, "--jsonl")) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t l;
        long lineno = 0;
        while ((l = getline(&line, &cap, stdin)) > 0) {
            lineno++;
            cJSON *o = cJSON_ParseWithLength(line, (size_t)l);
            cJSON *tx = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
            if (!cJSON_IsString(tx)) {
                fprintf(stderr, "ds8b: line %ld: expected {\"text\": ...}\n", lineno);
                cJSON_Delete(o);
                ret = 1;
                break;
            }
            fputs("{\"ids\": ", stdout);
            if (print_ids(t, tx->valuestring, strlen(tx->valuestring), flags)) { cJSON_Delete(o); ret = 1; break; }
            fputs("}\n", stdout);
            cJSON_Delete(o);
        }
        free(line);
    } else {
        size_t len;
        char *text = cli_read_all(stdin, &len);
        if (!text) ret = 1;
        else {
            ret = print_ids(t, text, len, flags);
            putchar('\n');
        }
        free(text);
    }
    ds8b_tokenizer_free(t);
    return ret;
}

int cmd_detokenize(int argc, char **argv) {
    const char *path = cli_opt(argc, argv, "-m");
    if (!path) return cli_usage("detokenize needs -m PATH");
    size_t len, n;
    char *in = cli_read_all(stdin, &len);
    int32_t *ids = in ? cli_parse_ids(in, &n) : NULL;
    free(in);
    if (!ids) return cli_usage("detokenize reads a JSON array of integer ids on stdin");
    ds8b_tokenizer *t;
    int rc = ds8b_tokenizer_load(path, &t);
    if (rc) { free(ids); return cli_fail("loading the tokenizer", rc); }
    int flags = cli_flag(argc, argv, "--skip-special") ? DS8B_DETOKENIZE_SKIP_SPECIAL : 0;
    size_t out_len = 0;
    rc = ds8b_detokenize(t, ids, n, flags, NULL, 0, &out_len);
    char *out = NULL;
    if (rc == DS8B_OK || rc == DS8B_E_BUFFER) {
        out = malloc(out_len + 1);
        rc = out ? ds8b_detokenize(t, ids, n, flags, out, out_len + 1, &out_len) : DS8B_E_NOMEM;
    }
    int ret = 0;
    if (rc) ret = cli_fail("detokenizing", rc);
    else fwrite(out, 1, out_len, stdout);
    free(out);
    free(ids);
    ds8b_tokenizer_free(t);
    return ret;
}

