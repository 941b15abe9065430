/* npc_json.c -- a game character that answers through a JSON Schema.
 *
 * Every answer of the shopkeeper is generated under a grammar made from a
 * JSON Schema, so it is always an object the game can parse:
 *   {"action": "give_item" | "attack" | "talk" | "leave",
 *    "item": "...", "say": "..."}
 * The game parses each answer with cJSON and carries out the action: items
 * change hands, hit points drop, the character speaks or walks away.
 *
 * Build: cc npc_json.c $(pkg-config --cflags --libs ds8b libcjson)
 * Run:   ./npc_json -m MODEL [--turns N] [--seed S] [--threads N] [--show-grammar]
 * Prints one block per turn, then "answers: N complete, N parsed, N cut off". */
#include <ds8b.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SCHEMA[] =
    "{\"type\": \"object\","
    " \"properties\": {"
    "   \"action\": {\"enum\": [\"give_item\", \"attack\", \"talk\", \"leave\"]},"
    "   \"item\": {\"type\": \"string\", \"maxLength\": 24},"
    "   \"say\": {\"type\": \"string\", \"maxLength\": 80}},"
    " \"required\": [\"action\", \"item\", \"say\"],"
    " \"additionalProperties\": false}";

static const char *const PLAYER_LINES[] = {
    "Good morning! Do you sell swords?",
    "Could you give me the lantern, please?",
    "You cheated me last time, old man.",
    "Tell me about the road to the north.",
    "I need a rope and a map for the journey.",
    "Goodbye, and thank you.",
};
enum { N_LINES = sizeof PLAYER_LINES / sizeof PLAYER_LINES[0] };

/* ---- the game world ---- */
typedef struct world {
    char npc_items[8][32];
    int n_npc_items;
    char player_items[16][32];
    int n_player_items;
    int player_hp;
    int npc_present;
} world;

static void world_init(world *w) {
    memset(w, 0, sizeof *w);
    static const char *const stock[] = {"sword", "lantern", "rope", "map", "bread"};
    for (int i = 0; i < 5; i++) snprintf(w->npc_items[w->n_npc_items++], 32, "%s", stock[i]);
    w->player_hp = 30;
    w->npc_present = 1;
}

/* Carries out one parsed answer; returns a line describing what happened. */
static void act(world *w, const char *action, const char *item, const char *say, char *out, size_t cap) {
    if (!strcmp(action, "give_item")) {
        for (int i = 0; i < w->n_npc_items; i++) {
            if (strcmp(w->npc_items[i], item) != 0) continue;
            if (w->n_player_items < 16) snprintf(w->player_items[w->n_player_items++], 32, "%s", item);
            memmove(w->npc_items[i], w->npc_items[i + 1], (size_t)(w->n_npc_items - i - 1) * 32);
            w->n_npc_items--;
            snprintf(out, cap, "the shopkeeper hands over the %s (player now carries %d items)", item,
                     w->n_player_items);
            return;
        }
        snprintf(out, cap, "the shopkeeper searches for \"%s\" but has none", item);
    } else if (!strcmp(action, "attack")) {
        w->player_hp -= 5;
        snprintf(out, cap, "the shopkeeper strikes%s%s! player hp %d", *item ? " with " : "", item, w->player_hp);
    } else if (!strcmp(action, "talk")) {
        snprintf(out, cap, "the shopkeeper says: %s", say);
    } else { /* leave: the grammar allows no other action */
        w->npc_present = 0;
        snprintf(out, cap, "the shopkeeper walks away");
    }
}

typedef struct text { char s[4096]; size_t n; } text;
static int collect(void *user, const char *piece, size_t len, int channel) {
    (void)channel;
    text *t = user;
    if (t->n + len >= sizeof t->s) return 1; /* cannot happen under the schema's lengths */
    memcpy(t->s + t->n, piece, len);
    t->n += len;
    t->s[t->n] = 0;
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = NULL;
    int turns = N_LINES, seed = 7, threads = 1, show_grammar = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "--turns") && i + 1 < argc) turns = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--show-grammar")) show_grammar = 1;
        else {
            fprintf(stderr, "usage: %s -m MODEL [--turns N] [--seed S] [--threads N] [--show-grammar]\n", argv[0]);
            return 2;
        }
    }
    if (!model_path || turns < 1) {
        fprintf(stderr, "usage: %s -m MODEL [--turns N] [--seed S] [--threads N] [--show-grammar]\n", argv[0]);
        return 2;
    }
    if (show_grammar) { /* the GBNF the schema becomes, for the curious */
        size_t need = 0;
        ds8b_json_schema_to_gbnf(SCHEMA, strlen(SCHEMA), NULL, 0, &need);
        char *g = malloc(need + 1);
        if (g && ds8b_json_schema_to_gbnf(SCHEMA, strlen(SCHEMA), g, need + 1, &need) == DS8B_OK) printf("%s\n", g);
        free(g);
    }

    ds8b_model *model = NULL;
    ds8b_grammar *grammar = NULL;
    ds8b_params *params = NULL;
    ds8b_session *npc = NULL;
    int rc = ds8b_model_load(model_path, NULL, &model);
    if (rc == DS8B_OK) rc = ds8b_grammar_from_json_schema(SCHEMA, strlen(SCHEMA), &grammar);
    if (rc == DS8B_OK) rc = ds8b_params_create(&params);
    if (rc == DS8B_OK) {
        ds8b_params_set_int(params, DS8B_PARAM_N_THREADS, threads);
        ds8b_params_set_int(params, DS8B_PARAM_N_CTX, 1024);
        ds8b_params_set_int(params, DS8B_PARAM_SEED, seed);
        ds8b_params_set_float(params, DS8B_PARAM_TEMPERATURE, 1.0);
        ds8b_params_set_int(params, DS8B_PARAM_MAX_TOKENS, 200);
        rc = ds8b_session_create(model, params, &npc);
    }
    if (rc == DS8B_OK) rc = ds8b_session_set_grammar(npc, grammar);
    if (rc != DS8B_OK) {
        fprintf(stderr, "error: %s (%s)\n", ds8b_errmsg(), ds8b_errstr(rc));
        ds8b_session_free(npc);
        ds8b_params_free(params);
        ds8b_grammar_free(grammar);
        ds8b_model_free(model);
        return 1;
    }

    world w;
    world_init(&w);
    int complete = 0, parsed = 0, cut = 0, failed = 0;
    for (int t = 0; t < turns && w.npc_present && w.player_hp > 0; t++) {
        const char *line = PLAYER_LINES[t % N_LINES];
        char prompt[512];
        snprintf(prompt, sizeof prompt,
                 "A shopkeeper in a village answers the player as JSON with an action, an item and a line.\n"
                 "Player: %s\nShopkeeper: ",
                 line);
        ds8b_session_reset(npc); /* each answer from a fresh context; the world carries the state */
        text ans = {0};
        rc = ds8b_generate(npc, prompt, strlen(prompt), DS8B_GEN_ADD_SPECIAL, collect, &ans, NULL);
        int fin = ds8b_session_finish_reason(npc);
        printf("turn %d\n  player: %s\n  answer: %s\n", t + 1, line, ans.s);
        if (rc != DS8B_OK) {
            printf("  error: %s\n", ds8b_errmsg());
            failed++;
            continue;
        }
        if (fin != DS8B_FINISH_GRAMMAR && fin != DS8B_FINISH_EOS) {
            /* Cut off by the token limit: the object is incomplete. A game
             * would ask again; here it is counted and skipped. */
            printf("  (cut off before the answer was complete)\n");
            cut++;
            continue;
        }
        complete++;
        cJSON *j = cJSON_ParseWithLength(ans.s, ans.n);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "action");
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "item");
        const cJSON *say = cJSON_GetObjectItemCaseSensitive(j, "say");
        if (!cJSON_IsString(a) || !cJSON_IsString(it) || !cJSON_IsString(say)) {
            printf("  PARSE FAILURE\n"); /* the schema makes this unreachable */
            cJSON_Delete(j);
            continue;
        }
        parsed++;
        char what[256];
        act(&w, a->valuestring, it->valuestring, say->valuestring, what, sizeof what);
        printf("  action: %s -> %s\n", a->valuestring, what);
        cJSON_Delete(j);
    }
    printf("player carries:");
    for (int i = 0; i < w.n_player_items; i++) printf(" %s", w.player_items[i]);
    printf("%s\nplayer hp: %d, shopkeeper %s\n", w.n_player_items ? "" : " nothing", w.player_hp,
           w.npc_present ? "stays" : "left");
    printf("answers: %d complete, %d parsed, %d cut off, %d errors\n", complete, parsed, cut, failed);

    ds8b_session_set_grammar(npc, NULL);
    ds8b_session_free(npc);
    ds8b_params_free(params);
    ds8b_grammar_free(grammar);
    ds8b_model_free(model);
    return failed || parsed != complete ? 1 : 0;
}
