/* test_chat_tools.c -- chat templates with tools, tool calls, tool results,
 * reasoning_content, null content and extra variables, against the renders
 * transformers produced (testdata/chat-template-tools-cases.jsonl.gz), through
 * the public ds8b_tokenizer_chat_render_tools; argument checks; the tool-call
 * parser (src/chat/toolcall.c) on both families' formats, streamed in pieces
 * of every size, and on malformed input. */
#include "t.h"

#include "ds8b.h"
#include "chat/toolcall.h"
#include "session/session.h"


#include <cjson/cJSON.h>
#include <stdbool.h>
#include <unistd.h>
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


/* ------------------------------------------------------------------ */
/* The parser                                                          */
/* ------------------------------------------------------------------ */
#define DSB DS8B__TC_DS_CALLS_BEGIN
#define DSE DS8B__TC_DS_CALLS_END
#define DCB DS8B__TC_DS_CALL_BEGIN
#define DCE DS8B__TC_DS_CALL_END
#define DSEP DS8B__TC_DS_SEP

/* Parses text; checks the calls ("name args" pairs, NULL-terminated) and
 * the malformed text. */
static void expect_parse(int family, const char *text, const char *const *want, const char *want_bad) {
    cJSON *calls = cJSON_CreateArray();
    char *bad = NULL;
    size_t nbad = 0;
    ds8b__err e = {0};
    int rc = ds8b__tc_parse(family, text, strlen(text), calls, &bad, &nbad, &e);
    CHECK(rc == 0, "parse rc %d on %s", rc, text);
    int n = 0;
    while (want[2 * n]) n++;
    CHECK(cJSON_GetArraySize(calls) == n, "%d calls, want %d in: %s", cJSON_GetArraySize(calls), n, text);
    for (int i = 0; i < n && i < cJSON_GetArraySize(calls); i++) {
        const cJSON *c = cJSON_GetArrayItem(calls, i);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(c, "type");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *ar = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        CHECK(cJSON_IsString(ty) && strcmp(ty->valuestring, "function") == 0, "call %d type", i);
        CHECK(cJSON_IsString(nm) && strcmp(nm->valuestring, want[2 * i]) == 0, "call %d name %s want %s", i,
              cJSON_IsString(nm) ? nm->valuestring : "?", want[2 * i]);
        CHECK(cJSON_IsString(ar) && strcmp(ar->valuestring, want[2 * i + 1]) == 0, "call %d args [%s] want [%s]", i,
              cJSON_IsString(ar) ? ar->valuestring : "?", want[2 * i + 1]);
    }
    if (!want_bad) CHECK(bad == NULL && nbad == 0, "unexpected malformed text [%s] in %s", bad ? bad : "", text);
    else CHECK(bad && strcmp(bad, want_bad) == 0 && nbad == strlen(want_bad), "malformed text [%s] want [%s]",
               bad ? bad : "(none)", want_bad);
    ds8b__free(bad);
    cJSON_Delete(calls);
}

static void test_parse_qwen(void) {
    const int Q = DS8B__TC_QWEN;
    expect_parse(Q, "<tool_call>\n{\"name\": \"move_to\", \"arguments\": {\"place\": \"inn\", \"run\": true}}\n</tool_call>",
                 (const char *[]){"move_to", "{\"place\": \"inn\", \"run\": true}", NULL}, NULL);
    /* two calls, whitespace between, nested arguments with braces in strings */
    expect_parse(Q,
                 "<tool_call>\n{\"name\": \"say\", \"arguments\": {\"text\": \"}{ \\\" ]\", \"x\": [1, {\"a\": []}]}}\n"
                 "</tool_call>\n<tool_call>{\"arguments\":{},\"name\":\"wait\"}</tool_call>\n",
                 (const char *[]){"say", "{\"text\": \"}{ \\\" ]\", \"x\": [1, {\"a\": []}]}", "wait", "{}", NULL}, NULL);
    /* arguments as a JSON string, and missing */
    expect_parse(Q, "<tool_call>{\"name\": \"a\", \"arguments\": \"{\\\"k\\\": 1}\"}</tool_call><tool_call>{\"name\": \"b\"}</tool_call>",
                 (const char *[]){"a", "{\"k\": 1}", "b", "{}", NULL}, NULL);
    /* malformed: bad JSON, no name, empty name, arguments not an object, never closed */
    expect_parse(Q, "<tool_call>{\"name\": \"a\", </tool_call>", (const char *[]){NULL}, "<tool_call>{\"name\": \"a\", </tool_call>");
    expect_parse(Q, "<tool_call>{\"arguments\": {}}</tool_call>", (const char *[]){NULL}, "<tool_call>{\"arguments\": {}}</tool_call>");
    expect_parse(Q, "<tool_call>{\"name\": \"\"}</tool_call>", (const char *[]){NULL}, "<tool_call>{\"name\": \"\"}</tool_call>");
    expect_parse(Q, "<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>", (const char *[]){NULL},
                 "<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>");
    expect_parse(Q, "<tool_call>{\"name\": \"a\", \"arguments\": \"nope\"}</tool_call>", (const char *[]){NULL},
                 "<tool_call>{\"name\": \"a\", \"arguments\": \"nope\"}</tool_call>");
    expect_parse(Q, "<tool_call>[1, 2]</tool_call>", (const char *[]){NULL}, "<tool_call>[1, 2]</tool_call>");
    expect_parse(Q, "<tool_call>{\"name\": \"ok\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": \"cut",
                 (const char *[]){"ok", "{}", NULL}, "<tool_call>{\"name\": \"cut");
    /* control bytes (cJSON would skip NUL and \x01 as whitespace) make a call malformed */
    {
        const char nul[] = "<tool_call>{\"name\": \"n\", \"arguments\": {\"a\": 1\0}}</tool_call>";
        cJSON *calls = cJSON_CreateArray();
        char *bad = NULL;
        size_t nbad = 0;
        ds8b__err e = {0};
        CHECK(ds8b__tc_parse(Q, nul, sizeof nul - 1, calls, &bad, &nbad, &e) == 0 && cJSON_GetArraySize(calls) == 0 &&
                  nbad == sizeof nul - 1,
              "a NUL inside a call");
        ds8b__free(bad);
        cJSON_Delete(calls);
    }
    expect_parse(Q, "<tool_call>{\"name\": \"a\", \"arguments\": {\"x\":\x01 1}}</tool_call>", (const char *[]){NULL},
                 "<tool_call>{\"name\": \"a\", \"arguments\": {\"x\":\x01 1}}</tool_call>");
    expect_parse(Q, "<tool_call>{\"name\": \"a\", \"arguments\": \"{\\\"x\\\": \\\"\\u0001\\\"}\"}</tool_call>",
                 (const char *[]){NULL},
                 "<tool_call>{\"name\": \"a\", \"arguments\": \"{\\\"x\\\": \\\"\\u0001\\\"}\"}</tool_call>");
    expect_parse(Q, "", (const char *[]){NULL}, NULL);
    expect_parse(Q, "<tool_call>", (const char *[]){NULL}, "<tool_call>");
    expect_parse(Q, "<tool_call></tool_call>", (const char *[]){NULL}, "<tool_call></tool_call>");
    expect_parse(Q, "<tool_call>{\"name\": \"a\"} trailing</tool_call>", (const char *[]){NULL},
                 "<tool_call>{\"name\": \"a\"} trailing</tool_call>");
    /* a prefix of every length never crashes and never yields a call */
    const char *full = "<tool_call>\n{\"name\": \"say\", \"arguments\": {\"text\": \"hi\"}}\n</tool_call>";
    size_t fl = strlen(full);
    for (size_t k = 0; k < fl; k++) {
        cJSON *calls = cJSON_CreateArray();
        char *bad = NULL;
        size_t nbad = 0;
        ds8b__err e = {0};
        int rc = ds8b__tc_parse(Q, full, k, calls, &bad, &nbad, &e);
        CHECK(rc == 0 && cJSON_GetArraySize(calls) == 0, "prefix %zu: rc %d, %d calls", k, rc, cJSON_GetArraySize(calls));
        if (k) CHECK(nbad == k && memcmp(bad, full, k) == 0, "prefix %zu: the text comes back as malformed", k);
        ds8b__free(bad);
        cJSON_Delete(calls);
    }
}

/* The DeepSeek format as the deepseek-v3 template renders calls (case 0 of
 * the reference has one): the parser must read it back. */
static void test_parse_deepseek(void) {
    const int D = DS8B__TC_DEEPSEEK;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cases[0], "render"),
                                                      "deepseek-v3|add_generation_prompt=false");
    CHECK(cJSON_IsString(r), "reference case 0 has a deepseek-v3 render");
    if (cJSON_IsString(r)) {
        const char *a = strstr(r->valuestring, DSB), *b = a ? strstr(a, DCE) : NULL;
        CHECK(a && b, "the reference render holds a tool call");
        if (a && b) {
            char t[1024];
            snprintf(t, sizeof t, "%.*s%s", (int)(b + strlen(DCE) - a), a, DSE);
            expect_parse(D, t, (const char *[]){"give_item", "{\"item\": \"sword\", \"count\": 1}", NULL}, NULL);
        }
    }
    /* two calls as the template renders them, a closing marker and none */
    expect_parse(D, DSB DCB "function" DSEP "move_to\n```json\n{\"place\": \"inn\"}\n```" DCE "\n" DCB "function" DSEP
                    "say\n```json\n{\"text\": \"```\"}\n```" DCE DSE,
                 (const char *[]){"move_to", "{\"place\": \"inn\"}", "say", "{\"text\": \"```\"}", NULL}, NULL);
    expect_parse(D, DSB DCB "function" DSEP "wait\n```json\n{}\n```" DCE,
                 (const char *[]){"wait", "{}", NULL}, NULL);
    /* without the fence */
    expect_parse(D, DSB DCB "function" DSEP "wait\n{\"s\": 2}" DCE DSE, (const char *[]){"wait", "{\"s\": 2}", NULL}, NULL);
    /* malformed: no separator, no name, bad JSON, unterminated call, a call cut by the next */
    expect_parse(D, DSB DCB "function wait\n```json\n{}\n```" DCE DSE, (const char *[]){NULL},
                 DCB "function wait\n```json\n{}\n```" DCE);
    expect_parse(D, DSB DCB "function" DSEP "\n```json\n{}\n```" DCE DSE, (const char *[]){NULL},
                 DCB "function" DSEP "\n```json\n{}\n```" DCE);
    expect_parse(D, DSB DCB "function" DSEP "a\n```json\n{\"x\": \n```" DCE DSE, (const char *[]){NULL},
                 DCB "function" DSEP "a\n```json\n{\"x\": \n```" DCE);
    expect_parse(D, DSB DCB "function" DSEP "a\n```json\n{}\n", (const char *[]){NULL}, DCB "function" DSEP "a\n```json\n{}\n");
    expect_parse(D, DSB DCB "function" DSEP "a\n```json\n{" DCB "function" DSEP "b\n```json\n{}\n```" DCE DSE,
                 (const char *[]){"b", "{}", NULL}, DCB "function" DSEP "a\n```json\n{");
    expect_parse(D, DSB DSE, (const char *[]){NULL}, NULL);
    expect_parse(D, DSB "chatter" DSE, (const char *[]){NULL}, "chatter");
    /* the family of a template */
    CHECK(ds8b__tc_family(NULL) == DS8B__TC_NONE, "no template");
    CHECK(ds8b__tc_family("{{ x }}") == DS8B__TC_NONE, "no tools in the template");
    CHECK(ds8b__tc_family(r && cJSON_IsString(r) ? "<｜tool▁calls▁begin｜>" : "") == DS8B__TC_DEEPSEEK, "deepseek");
    CHECK(ds8b__tc_family("{{- '<tool_call>\\n' }}") == DS8B__TC_QWEN, "qwen");
}

/* ------------------------------------------------------------------ */
/* Streaming: tool-call text never reaches the answer channel           */
/* ------------------------------------------------------------------ */
typedef struct chans {
    char t[3][4096];
    size_t n[3];
    int pieces, bad_channel;
} chans;

static int chans_cb(void *user, const char *p, size_t len, int ch) {
    chans *c = user;
    if (ch < 0 || ch > 2) { c->bad_channel++; return 0; }
    if (c->n[ch] + len < sizeof c->t[ch]) {
        memcpy(c->t[ch] + c->n[ch], p, len);
        c->n[ch] += len;
        c->t[ch][c->n[ch]] = 0;
    }
    c->pieces++;
    return 0;
}

static ds8b_model *demo_model(void) {
    ds8b_model *m = NULL;
    if (ds8b_model_load("models/demo-llama", NULL, &m) != DS8B_OK) return NULL;
    return m;
}

static void expect_stream(ds8b_session *s, int flags, const char *text, const char *ans, const char *rea, const char *tool) {
    size_t len = strlen(text);
    for (size_t step = 1; step <= len + 1; step++) {
        chans c;
        memset(&c, 0, sizeof c);
        ds8b__err e = {0};
        int rc = ds8b__gen_feed(s, text, len, step, flags, chans_cb, &c, &e);
        bool ok = rc == 0 && c.bad_channel == 0 && strcmp(c.t[0], ans) == 0 && strcmp(c.t[1], rea) == 0 &&
                  strcmp(c.t[2], tool) == 0;
        CHECK(ok, "step %zu: rc %d\n  # answer [%s] want [%s]\n  # reasoning [%s] want [%s]\n  # tool [%s] want [%s]", step,
              rc, c.t[0], ans, c.t[1], rea, c.t[2], tool);
        if (!ok) break;
    }
}

static ds8b_model *g_model;

static void test_stream_channels(void) {
    if (!g_model) { SKIP("models/demo-llama did not load"); return; }
    ds8b_session *s = NULL;
    CHECK(ds8b_session_create(g_model, NULL, &s) == 0, "session");
    if (!s) return;
    const int Q = DS8B_GEN_REASONING | DS8B__GEN_TOOLS_QWEN, D = DS8B_GEN_REASONING | DS8B__GEN_TOOLS_DEEPSEEK;
    expect_stream(s, Q, "Sure.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>",
                  "Sure.\n", "", "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>");
    /* whitespace between calls and after the last goes with the calls */
    expect_stream(s, Q, "<think>hm</think>\n\n<tool_call>{}</tool_call>\n <tool_call>{\"x\": \"</tool_call\"}</tool_call>\n",
                  "", "hm", "<tool_call>{}</tool_call>\n <tool_call>{\"x\": \"</tool_call\"}</tool_call>\n");
    /* text after a call is answer again; <think> inside a call is no marker */
    expect_stream(s, Q, "<tool_call>{\"t\": \"<think>\"}</tool_call>\n\nDone.",
                  "\n\nDone.", "", "<tool_call>{\"t\": \"<think>\"}</tool_call>");
    /* no markers in reasoning; a lone prefix of a marker stays text */
    expect_stream(s, Q, "<think><tool_call></think>A <tool_ call <tool_cal", "A <tool_ call <tool_cal", "<tool_call>", "");
    /* an unclosed call stays on the tool channel */
    expect_stream(s, Q, "x<tool_call>{\"name\"", "x", "", "<tool_call>{\"name\"");
    expect_stream(s, D, "Let me look." DSB DCB "function" DSEP "look\n```json\n{}\n```" DCE DSE,
                  "Let me look.", "", DSB DCB "function" DSEP "look\n```json\n{}\n```" DCE DSE);
    /* without the tool flags the markup is answer text */
    expect_stream(s, DS8B_GEN_REASONING, "a<tool_call>{}</tool_call>", "a<tool_call>{}</tool_call>", "", "");
    ds8b_session_free(s);
}

/* ------------------------------------------------------------------ */
/* The conversation API                                                */
/* ------------------------------------------------------------------ */
static char *json_of(const cJSON *j) { return j ? cJSON_PrintUnformatted(j) : NULL; }

static char *chat_render_msgs(ds8b_chat *c, const char *tools, const char *vars, bool agp, int *rc) {
    size_t need = 0;
    *rc = ds8b_chat_messages_json(c, NULL, 0, &need);
    if (*rc != DS8B_E_BUFFER) return NULL;
    char *msgs = malloc(need + 1);
    *rc = ds8b_chat_messages_json(c, msgs, need + 1, &need);
    char *out = NULL;
    if (!*rc) *rc = ds8b_chat_render_tools(g_model, msgs, need, tools, tools ? strlen(tools) : 0, vars,
                                            vars ? strlen(vars) : 0, agp, NULL, 0, &need);
    if (*rc == DS8B_E_BUFFER) {
        out = malloc(need + 1);
        *rc = ds8b_chat_render_tools(g_model, msgs, strlen(msgs), tools, tools ? strlen(tools) : 0, vars,
                                     vars ? strlen(vars) : 0, agp, out, need + 1, &need);
    }
    free(msgs);
    return out;
}

/* Case 0 of the reference, rebuilt through the chat: the assistant's tool
 * call comes from parsing DeepSeek-format output (as the template renders
 * it), the tool result from ds8b_chat_add_tool_result; the conversation
 * then renders exactly as the reference (demo-llama carries the demo
 * tokenizer's template). */
static void test_chat_tools_api(void) {
    if (!g_model) { SKIP("models/demo-llama did not load"); return; }
    ds8b_session *s = NULL;
    ds8b_chat *c = NULL;
    CHECK(ds8b_session_create(g_model, NULL, &s) == 0 && ds8b_chat_create(s, &c) == 0, "session and chat");
    if (!c) { ds8b_session_free(s); return; }
    const cJSON *cs = cases[0], *msgs = cJSON_GetObjectItemCaseSensitive(cs, "messages");
    char *tools = json_of(cJSON_GetObjectItemCaseSensitive(cs, "tools"));
    char *vars = json_of(cJSON_GetObjectItemCaseSensitive(cs, "kwargs"));
    CHECK(ds8b_chat_set_tools(c, tools, strlen(tools)) == 0, "set_tools: %s", ds8b_chat_errmsg(c));
    CHECK(ds8b_chat_set_vars(c, vars, strlen(vars)) == 0, "set_vars: %s", ds8b_chat_errmsg(c));
    char *m0 = json_of(cJSON_GetArrayItem(msgs, 0));
    CHECK(ds8b_chat_add_json(c, m0, strlen(m0)) == 0, "add_json");
    free(m0);
    const char *out = DSB DCB "function" DSEP "give_item\n```json\n{\"item\": \"sword\", \"count\": 1}\n```" DCE DSE;
    chans ch;
    memset(&ch, 0, sizeof ch);
    CHECK(ds8b_chat_add_output(c, out, strlen(out), chans_cb, &ch) == 0, "add_output: %s", ds8b_chat_errmsg(c));
    CHECK(ch.n[0] == 0 && strcmp(ch.t[2], out) == 0, "the call streams on the tool channel only: [%s] [%s]", ch.t[0], ch.t[2]);
    CHECK(ds8b_chat_n_tool_calls(c) == 1, "%lld calls", (long long)ds8b_chat_n_tool_calls(c));
    const char *name = NULL, *args = NULL;
    CHECK(ds8b_chat_tool_call(c, 0, &name, &args) == 0, "tool_call 0");
    CHECK(name && strcmp(name, "give_item") == 0, "name %s", name ? name : "?");
    CHECK(args && strcmp(args, "{\"item\": \"sword\", \"count\": 1}") == 0, "arguments %s", args ? args : "?");
    CHECK(ds8b_chat_tool_call(c, 1, &name, &args) == DS8B_E_INVALID, "index past the calls");
    CHECK(ds8b_chat_tool_call(c, -1, &name, &args) == DS8B_E_INVALID, "negative index");
    CHECK(strcmp(ds8b_chat_last_reply(c), "") == 0, "no answer text: [%s]", ds8b_chat_last_reply(c));
    const cJSON *tm = cJSON_GetArrayItem(msgs, 2);
    CHECK(ds8b_chat_add_tool_result(c, cJSON_GetObjectItemCaseSensitive(tm, "name")->valuestring,
                                    cJSON_GetObjectItemCaseSensitive(tm, "content")->valuestring) == 0, "tool result");
    for (int k = 3; k < cJSON_GetArraySize(msgs); k++) {
        char *mk = json_of(cJSON_GetArrayItem(msgs, k));
        CHECK(ds8b_chat_add_json(c, mk, strlen(mk)) == 0, "add_json %d", k);
        free(mk);
    }
    CHECK(ds8b_chat_n_messages(c) == cJSON_GetArraySize(msgs), "%lld messages", (long long)ds8b_chat_n_messages(c));
    for (int g = 0; g < 2; g++) {
        int rc;
        char *got = chat_render_msgs(c, tools, vars, g == 0, &rc);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cs, "render"),
                                                             g == 0 ? "demo|add_generation_prompt=true"
                                                                    : "demo|add_generation_prompt=false");
        CHECK(rc == 0 && got && cJSON_IsString(want) && strcmp(got, want->valuestring) == 0,
              "the rebuilt conversation renders as the reference (agp=%d): rc %d\n  # got  %s\n  # want %s", g == 0, rc,
              got ? got : "", cJSON_IsString(want) ? want->valuestring : "");
        free(got);
    }
    /* a malformed call is answer text, not a call */
    memset(&ch, 0, sizeof ch);
    const char *bad = "Hmm." DSB DCB "function" DSEP "give_item\n```json\n{\"item\": \n```" DCE DSE;
    CHECK(ds8b_chat_add_output(c, bad, strlen(bad), chans_cb, &ch) == 0, "add_output (malformed)");
    CHECK(ds8b_chat_n_tool_calls(c) == 0, "no call from malformed output");
    CHECK(strcmp(ds8b_chat_last_reply(c), "Hmm." DCB "function" DSEP "give_item\n```json\n{\"item\": \n```" DCE) == 0,
          "malformed call kept as answer: [%s]", ds8b_chat_last_reply(c));
    CHECK(strcmp(ch.t[0], "Hmm.") == 0, "streamed answer [%s]", ch.t[0]);
    /* argument checks */
    CHECK(ds8b_chat_set_tools(c, "{}", 2) == DS8B_E_INVALID, "tools must be an array");
    CHECK(ds8b_chat_set_tools(c, "[", 1) == DS8B_E_INVALID, "tools must parse");
    CHECK(ds8b_chat_set_vars(c, "[]", 2) == DS8B_E_INVALID, "vars must be an object");
    CHECK(ds8b_chat_set_vars(c, "{\"messages\": 1}", 15) == DS8B_E_INVALID, "vars may not set messages");
    CHECK(ds8b_chat_add_json(c, "{\"content\": \"x\"}", 16) == DS8B_E_INVALID, "a message needs a role");
    CHECK(ds8b_chat_add_json(c, "\"x\"", 3) == DS8B_E_INVALID, "a message is an object");
    CHECK(ds8b_chat_add_json(c, NULL, 0) == DS8B_E_INVALID, "NULL message");
    CHECK(ds8b_chat_add_tool_result(c, NULL, NULL) == DS8B_E_INVALID, "tool result needs content");
    CHECK(ds8b_chat_set_tools(NULL, "[]", 2) == DS8B_E_MISUSE, "NULL chat");
    CHECK(ds8b_chat_n_tool_calls(NULL) == -1, "NULL chat count");
    CHECK(ds8b_chat_add_output(NULL, "", 0, NULL, NULL) == DS8B_E_MISUSE, "NULL chat output");
    CHECK(ds8b_chat_messages_json(NULL, NULL, 0, NULL) == DS8B_E_MISUSE, "NULL chat messages");
    CHECK(ds8b_chat_set_tools(c, NULL, 0) == 0 && ds8b_chat_set_vars(c, NULL, 0) == 0, "clearing tools and vars");
    /* without tools, the markup is answer text */
    CHECK(ds8b_chat_add_output(c, out, strlen(out), NULL, NULL) == 0 && ds8b_chat_n_tool_calls(c) == 0 &&
              strcmp(ds8b_chat_last_reply(c), out) == 0, "no tools: no parsing");
    /* render argument checks */
    size_t n = 0;
    CHECK(ds8b_chat_render_tools(g_model, "[]", 2, "{}", 2, NULL, 0, 1, NULL, 0, &n) == DS8B_E_INVALID, "tools object");
    CHECK(ds8b_chat_render_tools(g_model, "[]", 2, NULL, 0, "{\"tools\": []}", 13, 1, NULL, 0, &n) == DS8B_E_INVALID,
          "vars may not set tools");
    CHECK(ds8b_chat_render_tools(g_model, "[]", 2, NULL, 0, "1", 1, 1, NULL, 0, &n) == DS8B_E_INVALID, "vars not an object");
    CHECK(ds8b_chat_render_tools(NULL, "[]", 2, NULL, 0, NULL, 0, 1, NULL, 0, &n) == DS8B_E_MISUSE, "NULL model");
    CHECK(ds8b_tokenizer_chat_render_tools(NULL, "[]", 2, NULL, 0, NULL, 0, 1, NULL, 0, &n) == DS8B_E_MISUSE, "NULL tok");
    CHECK(ds8b_chat_render_tools(g_model, "[", 1, NULL, 0, NULL, 0, 1, NULL, 0, &n) == DS8B_E_INVALID, "bad messages");
    /* string variables bos_token / eos_token replace the tokenizer's, as kwargs do in transformers */
    {
        char buf[512];
        const char *um = "[{\"role\": \"user\", \"content\": \"x\"}]";
        int rc = ds8b_chat_render_tools(g_model, um, strlen(um), NULL, 0, "{\"bos_token\": \"<B>\"}", 20, 1, buf,
                                        sizeof buf, &n);
        CHECK(rc == 0 && strncmp(buf, "<B><", 4) == 0, "bos_token variable: rc %d [%s]", rc, rc ? "" : buf);
    }
    free(tools);
    free(vars);
    ds8b_chat_free(c);
    ds8b_session_free(s);
}

/* A real reply with tools and variables set: the prompt renders, the
 * reply lands in the conversation, and every piece comes on a known
 * channel (the demo model was not trained on tools). */
static void test_chat_reply_with_tools(void) {
    if (!g_model) { SKIP("models/demo-llama did not load"); return; }
    ds8b_session *s = NULL;
    ds8b_chat *c = NULL;
    CHECK(ds8b_session_create(g_model, NULL, &s) == 0 && ds8b_chat_create(s, &c) == 0, "session and chat");
    if (!c) { ds8b_session_free(s); return; }
    ds8b_session_set_int(s, DS8B_PARAM_MAX_TOKENS, 12);
    const char *tools = "[{\"type\": \"function\", \"function\": {\"name\": \"wave\", \"parameters\": {\"type\": \"object\"}}}]";
    CHECK(ds8b_chat_set_tools(c, tools, strlen(tools)) == 0, "tools");
    CHECK(ds8b_chat_set_vars(c, "{\"enable_thinking\": false}", 26) == 0, "vars");
    CHECK(ds8b_chat_add(c, "user", "Wave at me.") == 0, "add");
    chans ch;
    memset(&ch, 0, sizeof ch);
    int64_t ng = 0;
    int rc = ds8b_chat_reply(c, chans_cb, &ch, &ng);
    CHECK(rc == 0, "reply: %d %s", rc, ds8b_chat_errmsg(c));
    CHECK(ng > 0 && ch.bad_channel == 0, "%lld tokens, %d pieces on unknown channels", (long long)ng, ch.bad_channel);
    CHECK(ds8b_chat_n_messages(c) == 2, "the reply is appended");
    CHECK(ds8b_chat_n_tool_calls(c) >= 0, "count");
    ds8b_chat_free(c);
    ds8b_session_free(s);
}

/* A model directory that is demo-llama with the Qwen3 template. */
static char qdir[256];
static ds8b_model *qwen_model(void) {
    char src[1024], p[1024], rel[256];
    snprintf(qdir, sizeof qdir, "/tmp/ds8b_chat_tools_XXXXXX");
    if (!mkdtemp(qdir)) return NULL;
    const char *files[] = {"config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                           "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json"};
    char cwd[512];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(src, sizeof src, "%s/models/demo-llama/%s", cwd, files[i]);
        snprintf(p, sizeof p, "%s/%s", qdir, files[i]);
        if (symlink(src, p) != 0) return NULL;
    }
    FILE *f = fopen("models/demo-llama/tokenizer_config.json", "rb");
    if (!f) return NULL;
    char *txt = malloc(1 << 20);
    size_t n = fread(txt, 1, (1 << 20) - 1, f);
    fclose(f);
    txt[n] = 0;
    cJSON *cfg = cJSON_Parse(txt);
    free(txt);
    snprintf(rel, sizeof rel, "tokenizers/qwen3/tokenizer_config.json");
    f = fopen(t_path(p, sizeof p, rel), "rb");
    if (!f || !cfg) { if (f) fclose(f); cJSON_Delete(cfg); return NULL; }
    txt = malloc(1 << 20);
    n = fread(txt, 1, (1 << 20) - 1, f);
    fclose(f);
    txt[n] = 0;
    cJSON *q = cJSON_Parse(txt);
    free(txt);
    cJSON *tmpl = q ? cJSON_DetachItemFromObjectCaseSensitive(q, "chat_template") : NULL;
    cJSON_Delete(q);
    if (!tmpl) { cJSON_Delete(cfg); return NULL; }
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "chat_template", tmpl);
    char *out = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", qdir);
    f = fopen(p, "wb");
    if (f) { fputs(out, f); fclose(f); }
    free(out);
    ds8b_model *m = NULL;
    if (!f || ds8b_model_load(qdir, NULL, &m) != DS8B_OK) return NULL;
    return m;
}

static void qwen_cleanup(void) {
    if (!qdir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", qdir);
    if (system(cmd) != 0) printf("  # could not remove %s\n", qdir);
}

/* Every Qwen3 reference case whose tool calls carry string arguments,
 * rebuilt through a chat on the Qwen3 template: each assistant message
 * with tool_calls comes from parsing the output the model would write
 * (<think> ... </think>, the answer, the <tool_call> blocks); the rest are
 * added as JSON. The conversation must render as the reference. */
static void test_qwen_rebuild(void) {
    ds8b_model *qm = g_model ? qwen_model() : NULL;
    if (!qm) { SKIP("no Qwen3-template copy of models/demo-llama"); qwen_cleanup(); return; }
    int tried = 0, exact = 0;
    for (int k = 0; k < ncases; k++) {
        const cJSON *cs = cases[k], *msgs = cJSON_GetObjectItemCaseSensitive(cs, "messages");
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cs, "render"),
                                                           "qwen3|add_generation_prompt=true");
        const cJSON *rf = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cs, "render"),
                                                           "qwen3|add_generation_prompt=false");
        if (!cJSON_IsString(rt) || !cJSON_IsString(rf)) continue;
        bool usable = true;
        const cJSON *m;
        cJSON_ArrayForEach(m, msgs) {
            const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), *t;
            cJSON_ArrayForEach(t, tc) {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "function"), "arguments");
                if (!cJSON_IsString(a)) usable = false;
            }
            /* reasoning_content and a <think> block in content: no model writes both */
            const cJSON *ct = cJSON_GetObjectItemCaseSensitive(m, "content");
            if (cJSON_GetArraySize(tc) && cJSON_GetObjectItemCaseSensitive(m, "reasoning_content") && cJSON_IsString(ct) &&
                strstr(ct->valuestring, "</think>"))
                usable = false;
        }
        if (!usable) continue;
        tried++;
        ds8b_session *s = NULL;
        ds8b_chat *c = NULL;
        if (ds8b_session_create(qm, NULL, &s) || ds8b_chat_create(s, &c)) { ds8b_session_free(s); break; }
        char *tools = json_of(cJSON_GetObjectItemCaseSensitive(cs, "tools"));
        char *vars = json_of(cJSON_GetObjectItemCaseSensitive(cs, "kwargs"));
        ds8b_chat_set_tools(c, tools ? tools : "[]", tools ? strlen(tools) : 2);
        if (vars) ds8b_chat_set_vars(c, vars, strlen(vars));
        bool ok = true;
        cJSON_ArrayForEach(m, msgs) {
            const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
            if (!cJSON_GetArraySize(tc)) {
                char *j = json_of(m);
                ok = ok && ds8b_chat_add_json(c, j, strlen(j)) == 0;
                free(j);
                continue;
            }
            /* the model's output for this message */
            char out[8192];
            size_t n = 0;
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
            const cJSON *rc = cJSON_GetObjectItemCaseSensitive(m, "reasoning_content");
            if (cJSON_IsString(rc)) n += snprintf(out + n, sizeof out - n, "<think>\n%s\n</think>\n\n", rc->valuestring);
            const char *ct = cJSON_IsString(content) ? content->valuestring : "";
            n += snprintf(out + n, sizeof out - n, "%s", ct);
            const cJSON *t;
            int i = 0;
            cJSON_ArrayForEach(t, tc) {
                const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
                const char *nm = cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring;
                const char *ar = cJSON_GetObjectItemCaseSensitive(fn, "arguments")->valuestring;
                if (i++ || ct[0]) n += snprintf(out + n, sizeof out - n, "\n");
                n += snprintf(out + n, sizeof out - n, "<tool_call>\n{\"name\": \"%s\", \"arguments\": %s}\n</tool_call>", nm, ar);
            }
            chans ch;
            memset(&ch, 0, sizeof ch);
            ok = ok && n < sizeof out && ds8b_chat_add_output(c, out, n, chans_cb, &ch) == 0 &&
                 ds8b_chat_n_tool_calls(c) == cJSON_GetArraySize(tc) && !strstr(ch.t[0], "<tool_call>");
        }
        for (int g = 0; g < 2 && ok; g++) {
            int rc;
            ds8b_model *keep = g_model;
            g_model = qm;
            char *got = chat_render_msgs(c, tools, vars, g == 0, &rc);
            g_model = keep;
            const char *want = (g == 0 ? rt : rf)->valuestring;
            ok = rc == 0 && got && strcmp(got, want) == 0;
            if (!ok) {
                size_t j = 0;
                while (got && want[j] && got[j] == want[j]) j++;
                printf("  # qwen3 case %d agp=%d: rc %d, differs at %zu:\n  #  want [%.120s]\n  #  got  [%.120s]\n", k, g == 0,
                       rc, j, want + (j > 40 ? j - 40 : 0), got ? got + (j > 40 ? j - 40 : 0) : "");
            }
            free(got);
        }
        if (ok) exact++;
        free(tools);
        free(vars);
        ds8b_chat_free(c);
        ds8b_session_free(s);
    }
    printf("  # qwen3 conversations rebuilt from parsed output: %d/%d exact\n", exact, tried);
    CHECK(tried >= 10 && exact == tried, "%d of %d rebuilt conversations differ", tried - exact, tried);
    ds8b_model_free(qm);
    qwen_cleanup();
}

int main(void) {
    if (load() != 0) {
        printf("  # ../shared test data missing\n");
        return 1;
    }
    RUN(test_reference_renders);
    RUN(test_parse_qwen);
    RUN(test_parse_deepseek);
    g_model = demo_model();
    RUN(test_stream_channels);
    RUN(test_chat_tools_api);
    RUN(test_chat_reply_with_tools);
    RUN(test_qwen_rebuild);
    ds8b_model_free(g_model);
    for (int i = 0; i < NTOK; i++) ds8b_tokenizer_free(toks[i]);
    for (int k = 0; k < ncases; k++) cJSON_Delete(cases[k]);
    T_EXIT();
}
