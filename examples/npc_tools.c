/* npc_tools.c -- a character whose actions are tool calls that the game
 * carries out.
 *
 * The loop every tool-using game runs, in one file:
 *   1. the chat gets the character's actions as tool definitions
 *      (ds8b_chat_set_tools): move_to, give_item, say;
 *   2. the model replies (ds8b_chat_reply); tool-call text arrives on
 *      DS8B_CHANNEL_TOOL_CALL, never mixed into the spoken answer;
 *   3. the game reads each parsed call (ds8b_chat_tool_call: name plus
 *      JSON arguments), checks it against the world and carries it out;
 *   4. the outcome goes back as a tool result (ds8b_chat_add_tool_result),
 *      and the next render (ds8b_chat_render_tools) shows it to the model.
 *
 * The demo models were not trained on tools and will rarely call one, so
 * after the model's own turn a scripted assistant turn, written in the
 * model template's tool-call format, goes through the same parser with
 * ds8b_chat_add_output. That turn checks the whole loop on every run: the
 * sword changes hands, a call to an unknown place is refused by the game,
 * a malformed call stays text. "LOOP OK" or "LOOP FAILED" ends the output;
 * a failure makes the exit status 1.
 *
 * Build: cc npc_tools.c $(pkg-config --cflags --libs ds8b) -lcjson
 * Run:   ./npc_tools [-m MODEL] [-n TOKENS] [--threads N]
 */
#include <ds8b.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- */
/* The world                                                          */
/* ---------------------------------------------------------------- */
static const char *const PLACES[] = {"forge", "market", "gate"};
#define NPLACES 3

typedef struct world {
    const char *npc_at;     /* where the smith stands */
    int npc_swords, npc_shields;
    int player_swords, player_shields;
    int lines_said;
} world;

static const char TOOLS[] =
    "[{\"type\": \"function\", \"function\": {\"name\": \"move_to\", \"description\": \"Walk to a place in town.\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"place\": {\"type\": \"string\", \"enum\": "
    "[\"forge\", \"market\", \"gate\"]}}, \"required\": [\"place\"]}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"give_item\", \"description\": \"Hand an item to the player.\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"item\": {\"type\": \"string\", \"enum\": [\"sword\", "
    "\"shield\"]}, \"count\": {\"type\": \"integer\", \"minimum\": 1}}, \"required\": [\"item\", \"count\"]}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"say\", \"description\": \"Say a line out loud.\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"text\": {\"type\": \"string\"}}, \"required\": [\"text\"]}}}]";

/* Carries out one call; writes the tool result (a JSON object) into out. */
static void execute(world *w, const char *name, const char *args_json, char *out, size_t cap) {
    cJSON *a = cJSON_Parse(args_json);
    const cJSON *x;
    if (!a) {
        snprintf(out, cap, "{\"ok\": false, \"error\": \"arguments are not JSON\"}");
    } else if (strcmp(name, "move_to") == 0) {
        x = cJSON_GetObjectItemCaseSensitive(a, "place");
        const char *to = NULL;
        for (int i = 0; i < NPLACES && cJSON_IsString(x); i++)
            if (strcmp(x->valuestring, PLACES[i]) == 0) to = PLACES[i];
        if (to) {
            w->npc_at = to;
            snprintf(out, cap, "{\"ok\": true, \"now_at\": \"%s\"}", to);
        } else {
            snprintf(out, cap, "{\"ok\": false, \"error\": \"no such place\"}");
        }
    } else if (strcmp(name, "give_item") == 0) {
        x = cJSON_GetObjectItemCaseSensitive(a, "item");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(a, "count");
        int count = cJSON_IsNumber(n) ? (int)n->valuedouble : 0;
        int *have = NULL, *get = NULL;
        if (cJSON_IsString(x) && strcmp(x->valuestring, "sword") == 0) { have = &w->npc_swords; get = &w->player_swords; }
        if (cJSON_IsString(x) && strcmp(x->valuestring, "shield") == 0) { have = &w->npc_shields; get = &w->player_shields; }
        if (!have || count < 1) snprintf(out, cap, "{\"ok\": false, \"error\": \"bad item or count\"}");
        else if (*have < count) snprintf(out, cap, "{\"ok\": false, \"error\": \"only %d left\"}", *have);
        else {
            *have -= count;
            *get += count;
            snprintf(out, cap, "{\"ok\": true, \"player_has\": %d}", *get);
        }
    } else if (strcmp(name, "say") == 0) {
        x = cJSON_GetObjectItemCaseSensitive(a, "text");
        if (cJSON_IsString(x)) {
            printf("    Mira says: \"%s\"\n", x->valuestring);
            w->lines_said++;
            snprintf(out, cap, "{\"ok\": true}");
        } else {
            snprintf(out, cap, "{\"ok\": false, \"error\": \"text is required\"}");
        }
    } else {
        snprintf(out, cap, "{\"ok\": false, \"error\": \"unknown action\"}");
    }
    cJSON_Delete(a);
}

/* ---------------------------------------------------------------- */
/* Streaming and the tool loop                                        */
/* ---------------------------------------------------------------- */
typedef struct stream_stats {
    size_t answer, reasoning, tool;
    int tool_on_answer; /* markup that leaked onto the answer channel */
} stream_stats;

static int on_piece(void *user, const char *p, size_t n, int channel) {
    stream_stats *st = user;
    if (channel == DS8B_CHANNEL_TOOL_CALL) st->tool += n;
    else if (channel == DS8B_CHANNEL_REASONING) st->reasoning += n;
    else {
        st->answer += n;
        if (memchr(p, '<', n) && (strstr(p, "tool_call>") || strstr(p, "tool\xe2\x96\x81"))) st->tool_on_answer++;
        fwrite(p, 1, n, stdout);
    }
    return 0;
}

/* Runs every call of the last reply and adds its result. */
static int run_calls(ds8b_chat *c, world *w) {
    int64_t n = ds8b_chat_n_tool_calls(c);
    for (int64_t i = 0; i < n; i++) {
        const char *name, *args;
        if (ds8b_chat_tool_call(c, i, &name, &args) != DS8B_OK) return -1;
        char result[256];
        execute(w, name, args, result, sizeof result);
        printf("  [game] %s %s -> %s\n", name, args, result);
        if (ds8b_chat_add_tool_result(c, name, result) != DS8B_OK) return -1;
    }
    return (int)n;
}

/* Renders the conversation as the model will see it next. */
static char *render(const ds8b_model *m, ds8b_chat *c) {
    size_t n = 0;
    if (ds8b_chat_messages_json(c, NULL, 0, &n) != DS8B_E_BUFFER) return NULL;
    char *msgs = malloc(n + 1);
    if (!msgs || ds8b_chat_messages_json(c, msgs, n + 1, &n) != DS8B_OK) { free(msgs); return NULL; }
    size_t need = 0;
    char *out = NULL;
    if (ds8b_chat_render_tools(m, msgs, n, TOOLS, strlen(TOOLS), NULL, 0, 1, NULL, 0, &need) == DS8B_E_BUFFER &&
        (out = malloc(need + 1)) &&
        ds8b_chat_render_tools(m, msgs, n, TOOLS, strlen(TOOLS), NULL, 0, 1, out, need + 1, &need) != DS8B_OK) {
        free(out);
        out = NULL;
    }
    free(msgs);
    return out;
}

/* Does the template write tool calls Qwen-style (<tool_call>)? Probed by
 * rendering one assistant call. */
static int qwen_style(const ds8b_model *m) {
    const char *probe = "[{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": null,"
                        " \"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"say\", \"arguments\": \"{}\"}}]}]";
    char buf[8192];
    size_t n = 0;
    if (ds8b_chat_render_tools(m, probe, strlen(probe), TOOLS, strlen(TOOLS), NULL, 0, 0, buf, sizeof buf, &n) != DS8B_OK)
        return 1; /* Qwen's template refuses content null: it is the Qwen style */
    return strstr(buf, "<tool_call>") != NULL;
}

#define DS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_CALL "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"

/* The scripted turn: give the sword, walk to a place that does not exist,
 * and one call cut off mid-JSON. */
static const char SCRIPT_QWEN[] =
    "A fine blade, take it.\n<tool_call>\n{\"name\": \"give_item\", \"arguments\": {\"item\": \"sword\", \"count\": 1}}\n"
    "</tool_call>\n<tool_call>\n{\"name\": \"move_to\", \"arguments\": {\"place\": \"moon\"}}\n</tool_call>\n"
    "<tool_call>\n{\"name\": \"say\", \"arguments\": {\"text\": \n</tool_call>";
static const char SCRIPT_DS[] =
    "A fine blade, take it." DS_BEGIN DS_CALL "function" DS_SEP "give_item\n```json\n{\"item\": \"sword\", \"count\": 1}\n```"
    DS_CALL_END "\n" DS_CALL "function" DS_SEP "move_to\n```json\n{\"place\": \"moon\"}\n```" DS_CALL_END "\n" DS_CALL
    "function" DS_SEP "say\n```json\n{\"text\": \n```" DS_CALL_END DS_END;

int main(int argc, char **argv) {
    const char *path = "models/demo-llama";
    int n_tokens = 32, threads = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) path = argv[++i];
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) n_tokens = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [-m MODEL] [-n TOKENS] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    ds8b_params *p = NULL;
    ds8b_model *m = NULL;
    ds8b_session *s = NULL;
    ds8b_chat *c = NULL;
    int fail = 0;
    if (ds8b_params_create(&p) || ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, threads) ||
        ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, n_tokens) || ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0) ||
        ds8b_model_load(path, p, &m) || ds8b_session_create(m, p, &s) || ds8b_chat_create(s, &c)) {
        fprintf(stderr, "npc_tools: %s\n", ds8b_errmsg());
        ds8b_params_free(p);
        ds8b_model_free(m);
        return 1;
    }
    world w = {"forge", 1, 2, 0, 0, 0};
    ds8b_chat_set_tools(c, TOOLS, strlen(TOOLS));
    ds8b_chat_add(c, "system", "You are Mira, the town smith. Act through your tools.");
    ds8b_chat_add(c, "user", "Mira, may I have a sword?");

    /* 1. the model's own turn */
    printf("[model turn]\n  Mira: ");
    stream_stats st = {0};
    int64_t ng = 0;
    if (ds8b_chat_reply(c, on_piece, &st, &ng) != DS8B_OK) {
        fprintf(stderr, "\nnpc_tools: reply: %s\n", ds8b_chat_errmsg(c));
        fail = 1;
    }
    printf("\n  (%lld tokens; %zu bytes answer, %zu reasoning, %zu tool-call)\n", (long long)ng, st.answer, st.reasoning,
           st.tool);
    int calls = run_calls(c, &w);
    printf("  the model made %d tool call(s)\n", calls);
    if (calls < 0) fail = 1;

    /* 2. the scripted turn, through the same parser */
    int qwen = qwen_style(m);
    const char *script = qwen ? SCRIPT_QWEN : SCRIPT_DS;
    printf("[scripted turn, %s format]\n  Mira: ", qwen ? "Qwen3 <tool_call>" : "DeepSeek tool-calls");
    ds8b_chat_add(c, "user", "Please? And then walk to the moon.");
    stream_stats st2 = {0};
    if (ds8b_chat_add_output(c, script, strlen(script), on_piece, &st2) != DS8B_OK) {
        fprintf(stderr, "npc_tools: add_output: %s\n", ds8b_chat_errmsg(c));
        fail = 1;
    }
    printf("\n");
    int64_t nc = ds8b_chat_n_tool_calls(c);
    printf("  parsed %lld call(s); the cut-off call stays text: \"%s\"\n", (long long)nc,
           strstr(ds8b_chat_last_reply(c), "say") ? "yes" : "no");
    if (nc != 2 || !strstr(ds8b_chat_last_reply(c), "say") || st2.tool == 0 || st2.tool_on_answer) {
        printf("  unexpected: %lld calls, %zu tool-call bytes, %d leaks onto the answer\n", (long long)nc, st2.tool,
               st2.tool_on_answer);
        fail = 1;
    }
    if (run_calls(c, &w) != 2) fail = 1;
    printf("  world: Mira at %s, Mira swords %d, player swords %d\n", w.npc_at, w.npc_swords, w.player_swords);
    if (w.player_swords != 1 || w.npc_swords != 0 || strcmp(w.npc_at, "forge") != 0) fail = 1;

    /* 3. the next render carries the results; the model answers them */
    char *prompt = render(m, c);
    if (!prompt || !strstr(prompt, "\"player_has\": 1") || !strstr(prompt, "no such place")) {
        printf("  the next prompt lacks the tool results\n");
        fail = 1;
    } else {
        size_t len = strlen(prompt), from = len > 200 ? len - 200 : 0;
        while (from < len && ((unsigned char)prompt[from] & 0xC0) == 0x80) from++; /* a whole character */
        printf("[next prompt, its end]\n%s\n", prompt + from);
    }
    free(prompt);
    printf("[model turn after the results]\n  Mira: ");
    stream_stats st3 = {0};
    if (ds8b_chat_reply(c, on_piece, &st3, &ng) != DS8B_OK) {
        fprintf(stderr, "\nnpc_tools: reply: %s\n", ds8b_chat_errmsg(c));
        fail = 1;
    }
    printf("\n");
    if (run_calls(c, &w) < 0) fail = 1;
    if (st.tool_on_answer || st3.tool_on_answer) fail = 1;
    printf("%s\n", fail ? "LOOP FAILED" : "LOOP OK");
    ds8b_chat_free(c);
    ds8b_session_free(s);
    ds8b_model_free(m);
    ds8b_params_free(p);
    return fail;
}
