/* test_json_schema.c -- JSON Schema to GBNF: the converter's output and
 * errors, the public API, integer ranges checked number by number, the
 * schema corpus in tests/data/schemas (texts that satisfy a schema are
 * accepted, texts that violate it rejected), and generations with the demo
 * model under every corpus schema.
 *
 * `test_json_schema --dump DIR` only generates, writing each completed
 * generation to DIR/NAME.SEED.json, for tests/test_json_schema.sh to
 * validate with an independent validator (python3-jsonschema). */
#include "t.h"
#include "t_json.h"
#include "ds8b.h"
#include "grammar/json_schema.h"

#include <dirent.h>
#include <errno.h>

#define SCHEMA_DIR "tests/data/schemas"
#define GEN_SEEDS 4

/* ---- helpers ---- */
static char *to_gbnf(const char *schema, int *rc, char *msg, size_t cap) {
    char *g = NULL;
    size_t n = 0;
    ds8b__err e = {0};
    *rc = ds8b__json_schema_to_gbnf(schema, strlen(schema), &g, &n, &e);
    if (msg) snprintf(msg, cap, "%s", e.msg);
    if (!*rc && (!g || strlen(g) != n)) *rc = 99;
    return g;
}

static int accepts(const ds8b_grammar *g, const char *text) {
    int a = -1;
    int rc = ds8b_grammar_accepts(g, text, strlen(text), &a);
    return rc ? -1 : a;
}

/* Sorted names of the corpus files. */
static int list_corpus(char names[][64], int cap) {
    DIR *d = opendir(SCHEMA_DIR);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < cap) {
        size_t l = strlen(de->d_name);
        if (l < 6 || l >= 64 || strcmp(de->d_name + l - 5, ".json")) continue;
        snprintf(names[n++], 64, "%s", de->d_name);
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[64];
            memcpy(t, names[j], 64);
            memcpy(names[j], names[j - 1], 64);
            memcpy(names[j - 1], t, 64);
        }
    return n;
}

static cJSON *load_case(const char *name, char **schema_text) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", SCHEMA_DIR, name);
    cJSON *d = t_load_json(p);
    *schema_text = d ? cJSON_PrintUnformatted(cJSON_GetObjectItem(d, "schema")) : NULL;
    return d;
}

/* ---- converter output ---- */
static void test_fragments(void) {
    static const struct { const char *schema, *frag; } F[] = {
        {"{\"type\":\"string\"}", "root ::= json-string"},
        {"true", "root ::= json-value"},
        {"{}", "root ::= json-value"},
        {"{\"title\":\"t\",\"description\":\"d\",\"$comment\":\"c\",\"examples\":[1],\"default\":2}", "root ::= json-value"},
        {"{\"type\":\"integer\",\"minimum\":0,\"maximum\":255}", "\"2\" ( [0-4] [0-9] | \"5\" ( [0-5] ) )"},
        {"{\"type\":\"string\",\"minLength\":1,\"maxLength\":8}", "json-char{1,8}"},
        {"{\"type\":\"string\",\"minLength\":3}", "json-char{3,}"},
        {"{\"enum\":[\"a\",1]}", "( \"\\\"a\\\"\" | \"1\" )"},
        {"{\"const\":{\"k\":[true]}}", "\"{\\\"k\\\":[true]}\""},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"null\"}},\"required\":[\"a\"]}",
         "root ::= \"{\" ws schema-a-kv ws \"}\""},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"null\"}},\"required\":[\"a\"]}",
         "schema-a-kv ::= \"\\\"a\\\"\" ws \":\" ws json-null"},
        {"{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":1,\"maxItems\":3}",
         "\"[\" ws json-boolean ( ws \",\" ws json-boolean ){0,2} ws \"]\""},
        {"{\"type\":\"string\",\"pattern\":\"^ab+$\"}", "\"a\" \"b\"+"},
        {"{\"type\":\"string\",\"pattern\":\"x\"}", "json-char* \"x\" json-char*"},
        {"{\"type\":\"string\",\"pattern\":\"^[^a]$\"}", "[^\\x00-\\x1F\\x22\\x5Ca] | \"\\\\u0000\""},
        {"{\"type\":\"string\",\"format\":\"uuid\"}", "json-uuid ::= [0-9a-fA-F]{8}"},
        {"{\"$defs\":{\"n\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}},\"$ref\":\"#/$defs/n\"}",
         "ref-n ::= ref-n-2"},
        {"{\"type\":[\"string\",\"null\"]}", "json-null"},
        /* the whitespace rule: bounded */
        {"{\"type\":\"object\"}", "ws ::= ( \" \" | \"\\n\" [ \\t]{0,20} )?"},
        {"{\"type\":\"number\",\"minimum\":0}", "json-frac"},
    };
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++) {
        int rc;
        char msg[1024];
        char *g = to_gbnf(F[i].schema, &rc, msg, sizeof msg);
        CHECK(rc == 0, "%s: %d %s", F[i].schema, rc, msg);
        CHECK(g && strstr(g, F[i].frag), "%s: no '%s' in:\n%s", F[i].schema, F[i].frag, g ? g : "");
        /* Every output compiles. */
        ds8b_grammar *gr = NULL;
        if (g) CHECK(ds8b_grammar_compile(g, strlen(g), NULL, &gr) == 0, "%s: %s\n%s", F[i].schema, ds8b_errmsg(), g);
        ds8b_grammar_free(gr);
        ds8b__free(g);
    }
}

static void test_errors(void) {
    static const struct { const char *schema; int code; const char *msg; } E[] = {
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"patternProperties\":{}}}}", DS8B_E_UNSUPPORTED,
         "unsupported keyword 'patternProperties' at /properties/a"},
        {"{\"not\":{}}", DS8B_E_UNSUPPORTED, "unsupported keyword 'not' at / (the root)"},
        {"{\"items\":{\"uniqueItems\":true}}", DS8B_E_UNSUPPORTED, "'uniqueItems' at /items"},
        {"{\"anyOf\":[{},{\"multipleOf\":2}]}", DS8B_E_UNSUPPORTED, "'multipleOf' at /anyOf/1"},
        {"{\"prefixItems\":[{},{\"if\":{}}]}", DS8B_E_UNSUPPORTED, "'if' at /prefixItems/1"},
        {"{\"$defs\":{\"x\":{\"minProperties\":1}},\"$ref\":\"#/$defs/x\"}", DS8B_E_UNSUPPORTED, "at /$defs/x"},
        {"{\"properties\":{\"a/b\":{\"type\":\"string\",\"format\":\"email\"}}}", DS8B_E_UNSUPPORTED,
         "unsupported format 'email' (date, time, date-time, uuid are) at /properties/a~1b"},
        {"{\"type\":\"string\",\"pattern\":\"(?=a)\"}", DS8B_E_UNSUPPORTED, "lookaround"},
        {"{\"type\":\"string\",\"pattern\":\"a\\\\1\"}", DS8B_E_UNSUPPORTED, "escape \\1"},
        {"{\"type\":\"string\",\"pattern\":\"\\\\bx\"}", DS8B_E_UNSUPPORTED, "word boundary"},
        {"{\"type\":\"string\",\"pattern\":\"a^b\"}", DS8B_E_UNSUPPORTED, "'^' only at the start"},
        {"{\"type\":\"string\",\"pattern\":\"a$b\"}", DS8B_E_UNSUPPORTED, "'$' only at the end"},
        {"{\"type\":\"string\",\"pattern\":\"(ab\"}", DS8B_E_UNSUPPORTED, "missing ')'"},
        {"{\"type\":\"string\",\"pattern\":\"ab)\"}", DS8B_E_UNSUPPORTED, "unbalanced"},
        {"{\"type\":\"string\",\"pattern\":\"*a\"}", DS8B_E_UNSUPPORTED, "nothing to repeat"},
        {"{\"type\":\"string\",\"pattern\":\"[z-a]\"}", DS8B_E_UNSUPPORTED, "bad range"},
        {"{\"type\":\"string\",\"pattern\":\"a{5000}\"}", DS8B_E_LIMIT, "repetition count"},
        {"{\"type\":\"string\",\"pattern\":\"a\",\"maxLength\":3}", DS8B_E_UNSUPPORTED, "'pattern' together with"},
        {"{\"type\":\"strin\"}", DS8B_E_INVALID, "unknown type 'strin'"},
        {"{\"type\":\"string\",\"minLength\":3,\"maxLength\":2}", DS8B_E_INVALID, "maxLength < minLength"},
        {"{\"type\":\"string\",\"maxLength\":100000}", DS8B_E_LIMIT, "'maxLength'"},
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", DS8B_E_INVALID, "no integer"},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":4,\"exclusiveMaximum\":5}", DS8B_E_INVALID, "no integer"},
        {"{\"type\":\"integer\",\"minimum\":1e300}", DS8B_E_UNSUPPORTED, "2^53"},
        {"{\"minimum\":\"1\"}", DS8B_E_INVALID, "'minimum' must be a number"},
        {"{\"$ref\":\"#/$defs/missing\"}", DS8B_E_INVALID, "does not resolve"},
        {"{\"$ref\":\"http://example.com/s.json\"}", DS8B_E_UNSUPPORTED, "only local references"},
        {"{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}", DS8B_E_LIMIT,
         "cyclic"},
        {"{\"$defs\":{\"a\":{\"allOf\":[{\"$ref\":\"#/$defs/a\"}]}},\"$ref\":\"#/$defs/a\"}", DS8B_E_LIMIT, "deeper than"},
        {"{\"allOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", DS8B_E_INVALID, "no type satisfies"},
        {"{\"allOf\":[{\"pattern\":\"a\"},{\"pattern\":\"b\"}]}", DS8B_E_UNSUPPORTED, "different 'pattern'"},
        {"{\"allOf\":[{\"properties\":{\"a\":{}},\"additionalProperties\":false},{\"properties\":{\"b\":{}}}]}",
         DS8B_E_UNSUPPORTED, "additionalProperties of one branch"},
        {"{\"anyOf\":[{}],\"oneOf\":[{}]}", DS8B_E_UNSUPPORTED, "'anyOf' together with 'oneOf'"},
        {"{\"anyOf\":[]}", DS8B_E_INVALID, "non-empty array"},
        {"{\"enum\":[]}", DS8B_E_INVALID, "'enum' must be"},
        {"{\"properties\":{\"a\":false},\"required\":[\"a\"]}", DS8B_E_INVALID, "schema is false"},
        {"false", DS8B_E_INVALID, "matches nothing"},
        {"{\"enum\":[1,[2e999]]}", DS8B_E_INVALID, "out of the double range"},
        {"42", DS8B_E_INVALID, "must be an object or a boolean"},
        {"{\"type\":\"array\",\"items\":false,\"minItems\":1}", DS8B_E_INVALID, "no array length"},
        {"{\"type\":", DS8B_E_FORMAT, "not valid JSON"},
        {"", DS8B_E_FORMAT, "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof E / sizeof E[0]; i++) {
        int rc;
        char msg[1024];
        char *g = to_gbnf(E[i].schema, &rc, msg, sizeof msg);
        CHECK(rc == E[i].code, "%s: rc %d, want %d (%s)", E[i].schema, rc, E[i].code, msg);
        CHECK(strstr(msg, E[i].msg) != NULL, "%s: message '%s' lacks '%s'", E[i].schema, msg, E[i].msg);
        CHECK(g == NULL, "%s: output on error", E[i].schema);
        ds8b__free(g);
    }
}

/* Hostile schemas: deep nesting, wide allOf fan-out, huge enums. They end
 * in an error or a bounded grammar, quickly. */
static void test_bounds(void) {
    /* Nesting 200 deep. */
    char *deep = malloc(200 * 40 + 64);
    size_t n = 0;
    for (int i = 0; i < 200; i++) n += (size_t)sprintf(deep + n, "{\"type\":\"array\",\"items\":");
    n += (size_t)sprintf(deep + n, "{}");
    for (int i = 0; i < 200; i++) deep[n++] = '}';
    deep[n] = 0;
    int rc;
    char msg[1024];
    char *g = to_gbnf(deep, &rc, msg, sizeof msg);
    CHECK(rc == DS8B_E_LIMIT && strstr(msg, "nested deeper"), "deep: %d %s", rc, msg);
    ds8b__free(g);
    free(deep);
    /* allOf fan-out: each level refers twice to the next: 2^30 merges. */
    char big[8192];
    n = (size_t)sprintf(big, "{\"$defs\":{");
    for (int i = 0; i < 30; i++)
        n += (size_t)sprintf(big + n, "%s\"d%d\":{\"allOf\":[{\"$ref\":\"#/$defs/d%d\"},{\"$ref\":\"#/$defs/d%d\"}]}",
                             i ? "," : "", i, i + 1, i + 1);
    n += (size_t)sprintf(big + n, ",\"d30\":{\"type\":\"string\"}},\"$ref\":\"#/$defs/d0\"}");
    g = to_gbnf(big, &rc, msg, sizeof msg);
    CHECK(rc == DS8B_E_LIMIT || rc == 0, "fan-out: %d %s", rc, msg);
    ds8b__free(g);
    /* Many properties: a grammar within the output bound, or LIMIT. */
    size_t cap = 2u << 20;
    char *wide = malloc(cap);
    n = (size_t)sprintf(wide, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < 5000; i++) n += (size_t)sprintf(wide + n, "%s\"p%d\":{\"type\":\"integer\",\"minimum\":%d}", i ? "," : "", i, i);
    n += (size_t)sprintf(wide + n, "}}");
    g = to_gbnf(wide, &rc, msg, sizeof msg);
    CHECK(rc == DS8B_E_LIMIT, "wide: %d %s", rc, msg);
    ds8b__free(g);
    free(wide);
    /* Input size bound. */
    ds8b__err e = {0};
    char *o = NULL;
    CHECK(ds8b__json_schema_to_gbnf("{}", (size_t)DS8B__JS_MAX_INPUT + 1, &o, NULL, &e) == DS8B_E_LIMIT, "input bound");
}

static void test_api(void) {
    const char *s = "{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"}},\"required\":[\"ok\"]}";
    size_t need = 0;
    CHECK(ds8b_json_schema_to_gbnf(s, strlen(s), NULL, 0, &need) == DS8B_E_BUFFER, "NULL buf: BUFFER");
    CHECK(need > 20, "needed length %zu", need);
    char small[8];
    size_t got = 0;
    CHECK(ds8b_json_schema_to_gbnf(s, strlen(s), small, sizeof small, &got) == DS8B_E_BUFFER && got == need, "small buf");
    char *buf = malloc(need + 1);
    CHECK(ds8b_json_schema_to_gbnf(s, strlen(s), buf, need + 1, &got) == 0 && got == need && strlen(buf) == need, "exact buf");
    CHECK(strncmp(buf, "root ::= ", 9) == 0, "starts with root: %s", buf);
    ds8b_grammar *g = NULL;
    CHECK(ds8b_grammar_compile(buf, got, NULL, &g) == 0, "compile the text: %s", ds8b_errmsg());
    CHECK(accepts(g, "{\"ok\": true}") == 1 && accepts(g, "{\"ok\": 1}") == 0, "text grammar");
    ds8b_grammar_free(g);
    free(buf);
    CHECK(ds8b_json_schema_to_gbnf(NULL, 0, NULL, 0, &got) == DS8B_E_INVALID, "NULL schema");
    CHECK(ds8b_json_schema_to_gbnf(s, strlen(s), NULL, 0, NULL) == DS8B_E_INVALID, "NULL out_len");
    CHECK(ds8b_grammar_from_json_schema(s, strlen(s), NULL) == DS8B_E_INVALID, "NULL out");
    g = (ds8b_grammar *)1;
    CHECK(ds8b_grammar_from_json_schema("{\"not\":{}}", 10, &g) == DS8B_E_UNSUPPORTED && g == NULL, "error clears out");
    CHECK(strstr(ds8b_errmsg(), "unsupported keyword 'not'") != NULL, "errmsg: %s", ds8b_errmsg());
    CHECK(ds8b_grammar_from_json_schema("{x", 2, &g) == DS8B_E_FORMAT, "not JSON");
    /* Length, not NUL: the schema may sit in a larger buffer. */
    const char *two = "{\"type\":\"null\"}GARBAGE";
    CHECK(ds8b_grammar_from_json_schema(two, 15, &g) == 0, "len respected: %s", ds8b_errmsg());
    CHECK(accepts(g, "null") == 1 && accepts(g, "1") == 0, "null grammar");
    ds8b_grammar_free(g);
    /* Any JSON value. */
    CHECK(ds8b_grammar_any_json(NULL) == DS8B_E_INVALID, "any NULL");
    CHECK(ds8b_grammar_any_json(&g) == 0, "any: %s", ds8b_errmsg());
    static const char *const ok[] = {"0", "-1.5e3", "\"\\u00e9\\n\"", "[]", "{}", "[1, {\"a\": [null, true]}]",
                                     "{\n  \"a\": 1,\n  \"b\": [\n    2\n  ]\n}"};
    static const char *const bad[] = {"", " 1", "[1,]", "{\"a\" 1}", "\"\x01\"", "[1]\n", "{\"a\":\n\n1}",
                                      "[                       1]", "tru", "01"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) CHECK(accepts(g, ok[i]) == 1, "any accepts %s", ok[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK(accepts(g, bad[i]) == 0, "any rejects %s", bad[i]);
    ds8b_grammar_free(g);
}

/* Integer ranges, number by number over [-1100, 1100] and around 10^k. */
static void test_int_ranges(void) {
    static const struct { const char *bounds; bool hl, hh; long lo, hi; } R[] = {
        {"\"minimum\":0,\"maximum\":0", 1, 1, 0, 0},
        {"\"minimum\":-1,\"maximum\":1", 1, 1, -1, 1},
        {"\"minimum\":7,\"maximum\":1000", 1, 1, 7, 1000},
        {"\"minimum\":-999,\"maximum\":-10", 1, 1, -999, -10},
        {"\"minimum\":-1050,\"maximum\":98", 1, 1, -1050, 98},
        {"\"minimum\":19,\"maximum\":91", 1, 1, 19, 91},
        {"\"minimum\":100,\"maximum\":199", 1, 1, 100, 199},
        {"\"minimum\":101,\"maximum\":1099", 1, 1, 101, 1099},
        {"\"exclusiveMinimum\":-3,\"exclusiveMaximum\":30", 1, 1, -2, 29},
        {"\"minimum\":2.5,\"maximum\":9.99", 1, 1, 3, 9},
        {"\"minimum\":5,\"exclusiveMinimum\":true,\"maximum\":10,\"exclusiveMaximum\":true", 1, 1, 6, 9},
        {"\"minimum\":42", 1, 0, 42, 0},
        {"\"minimum\":-42", 1, 0, -42, 0},
        {"\"maximum\":-5", 0, 1, 0, -5},
        {"\"maximum\":333", 0, 1, 0, 333},
        {"\"exclusiveMaximum\":0", 0, 1, 0, -1},
    };
    for (size_t i = 0; i < sizeof R / sizeof R[0]; i++) {
        char s[256];
        snprintf(s, sizeof s, "{\"type\":\"integer\",%s}", R[i].bounds);
        ds8b_grammar *g = NULL;
        int rc = ds8b_grammar_from_json_schema(s, strlen(s), &g);
        CHECK(rc == 0, "%s: %s", s, ds8b_errmsg());
        if (rc) continue;
        int wrong = 0;
        for (long v = -1100; v <= 1100 && wrong < 3; v++) {
            char t[32];
            snprintf(t, sizeof t, "%ld", v);
            int want = (!R[i].hl || v >= R[i].lo) && (!R[i].hh || v <= R[i].hi);
            int got = accepts(g, t);
            if (got != want) {
                wrong++;
                CHECK(got == want, "%s: %ld -> %d", s, v, got);
            }
        }
        static const long big[] = {9999, 10000, 99999, 123456789, -10000, -123456789, 999999999999999L};
        for (size_t j = 0; j < sizeof big / sizeof big[0]; j++) {
            char t[32];
            snprintf(t, sizeof t, "%ld", big[j]);
            int want = (!R[i].hl || big[j] >= R[i].lo) && (!R[i].hh || big[j] <= R[i].hi);
            CHECK(accepts(g, t) == want, "%s: %ld", s, big[j]);
        }
        CHECK(accepts(g, "01") == 0 && accepts(g, "1.0") == 0 && accepts(g, "") == 0, "%s: forms", s);
        ds8b_grammar_free(g);
    }
    /* Wide bounds at the 2^53 edge still convert. */
    const char *w = "{\"type\":\"integer\",\"minimum\":-9007199254740992,\"maximum\":9007199254740992}";
    ds8b_grammar *g = NULL;
    CHECK(ds8b_grammar_from_json_schema(w, strlen(w), &g) == 0, "2^53: %s", ds8b_errmsg());
    if (g) {
        CHECK(accepts(g, "9007199254740992") == 1 && accepts(g, "9007199254740993") == 0, "2^53 edge");
        CHECK(accepts(g, "-9007199254740992") == 1 && accepts(g, "-9007199254740993") == 0, "-2^53 edge");
    }
    ds8b_grammar_free(g);
}

/* Number bounds: every accepted number is in range (the grammar may
 * reject some that are). */
static void test_number_bounds(void) {
    static const char *const S[] = {
        "{\"type\":\"number\",\"minimum\":-2.5,\"maximum\":3}",
        "{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1}",
        "{\"type\":\"number\",\"minimum\":10}",
        "{\"type\":\"number\",\"maximum\":-0.5}",
    };
    static const double lo[] = {-2.5, 0, 10, -1e300}, hi[] = {3, 1, 1e300, -0.5};
    static const int exl[] = {0, 1, 0, 0}, exh[] = {0, 1, 0, 0};
    for (size_t i = 0; i < 4; i++) {
        ds8b_grammar *g = NULL;
        CHECK(ds8b_grammar_from_json_schema(S[i], strlen(S[i]), &g) == 0, "%s: %s", S[i], ds8b_errmsg());
        if (!g) continue;
        int in_range_accepted = 0;
        for (int k = -400; k <= 400; k++) {
            char t[32];
            double v = k / 8.0;
            snprintf(t, sizeof t, "%g", v);
            int in = (exl[i] ? v > lo[i] : v >= lo[i]) && (exh[i] ? v < hi[i] : v <= hi[i]);
            int a = accepts(g, t);
            if (a == 1) CHECK(in, "%s accepts %s out of range", S[i], t);
            if (a == 1 && in) in_range_accepted++;
        }
        CHECK(in_range_accepted > 3, "%s: accepts %d values in range", S[i], in_range_accepted);
        ds8b_grammar_free(g);
    }
}

/* ---- the corpus ---- */
static void test_corpus(void) {
    char names[64][64];
    int n = list_corpus(names, 64);
    CHECK(n >= 25, "corpus of %d schemas in %s", n, SCHEMA_DIR);
    int checks = 0;
    for (int i = 0; i < n; i++) {
        char *st = NULL;
        cJSON *d = load_case(names[i], &st);
        CHECK(d && st, "%s: unreadable", names[i]);
        if (!d || !st) {
            cJSON_Delete(d);
            continue;
        }
        ds8b_grammar *g = NULL;
        int rc = ds8b_grammar_from_json_schema(st, strlen(st), &g);
        CHECK(rc == 0, "%s: %s", names[i], ds8b_errmsg());
        static const char *const keys[] = {"valid", "invalid", "rejected"};
        for (int k = 0; g && k < 3; k++) {
            const cJSON *it;
            cJSON_ArrayForEach(it, cJSON_GetObjectItem(d, keys[k])) {
                int a = accepts(g, it->valuestring);
                CHECK(a == (k == 0), "%s: %s text %s -> %d", names[i], keys[k], it->valuestring, a);
                checks++;
            }
        }
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(d, "valid")) > 0 &&
                  cJSON_GetArraySize(cJSON_GetObjectItem(d, "invalid")) > 0,
              "%s: needs valid and invalid texts", names[i]);
        ds8b_grammar_free(g);
        cJSON_free(st);
        cJSON_Delete(d);
    }
    printf("  # corpus: %d schemas, %d texts\n", n, checks);
}

/* ---- generation ---- */
typedef struct gbuf { char t[8192]; size_t n; } gbuf;
static int gcollect(void *u, const char *p, size_t len, int ch) {
    gbuf *b = u;
    for (size_t i = 0; i < len && b->n + 1 < sizeof b->t; i++) b->t[b->n++] = p[i];
    b->t[b->n] = 0;
    return 0;
}

static ds8b_model *g_model;

/* Generates under each corpus schema with GEN_SEEDS seeds; every
 * generation that ended because the grammar completed must be accepted by
 * the grammar and parse as JSON. dump: write those to dump/NAME.SEED.json. */
static int run_generations(const char *dump, int *completed_out, int *total_out) {
    char names[64][64];
    int n = list_corpus(names, 64), completed = 0, total = 0, fails = 0;
    for (int i = 0; i < n; i++) {
        char *st = NULL;
        cJSON *d = load_case(names[i], &st);
        ds8b_grammar *g = NULL;
        if (!st || ds8b_grammar_from_json_schema(st, strlen(st), &g)) {
            fails++;
            cJSON_Delete(d);
            cJSON_free(st);
            continue;
        }
        int done_here = 0;
        for (int seed = 1; seed <= GEN_SEEDS; seed++) {
            ds8b_params *p;
            ds8b_params_create(&p);
            ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 512);
            ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1);
            ds8b_params_set_int(p, DS8B_PARAM_SEED, seed);
            ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 1.0);
            ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, 128);
            ds8b_session *s = NULL;
            int rc = ds8b_session_create(g_model, p, &s);
            ds8b_params_free(p);
            if (rc) {
                fails++;
                break;
            }
            ds8b_session_set_grammar(s, g);
            gbuf b = {0};
            const char *prompt = "The JSON value is: ";
            rc = ds8b_generate(s, prompt, strlen(prompt), DS8B_GEN_ADD_SPECIAL, gcollect, &b, NULL);
            int fin = ds8b_session_finish_reason(s);
            total++;
            if (rc) {
                if (!dump) CHECK(rc == 0, "%s seed %d: generate %d %s", names[i], seed, rc, ds8b_errmsg());
                fails++;
            } else if (fin == DS8B_FINISH_GRAMMAR || fin == DS8B_FINISH_EOS) {
                completed++;
                done_here++;
                int a = accepts(g, b.t);
                cJSON *j = cJSON_ParseWithLength(b.t, b.n);
                if (!dump) {
                    CHECK(a == 1, "%s seed %d: the grammar rejects its own output %s", names[i], seed, b.t);
                    CHECK(j != NULL, "%s seed %d: not JSON: %s", names[i], seed, b.t);
                }
                if (a != 1 || !j) fails++;
                cJSON_Delete(j);
                if (dump) {
                    char path[512], base[64];
                    snprintf(base, sizeof base, "%s", names[i]);
                    base[strlen(base) - 5] = 0;
                    snprintf(path, sizeof path, "%s/%s.%d.json", dump, base, seed);
                    FILE *f = fopen(path, "wb");
                    if (f) fwrite(b.t, 1, b.n, f), fclose(f);
                    else fails++;
                }
            }
            ds8b_session_set_grammar(s, NULL);
            ds8b_session_free(s);
        }
        if (!dump) printf("  # %s: %d/%d generations completed\n", names[i], done_here, GEN_SEEDS);
        ds8b_grammar_free(g);
        cJSON_free(st);
        cJSON_Delete(d);
    }
    *completed_out = completed;
    *total_out = total;
    return fails;
}

static void test_generate(void) {
    if (!g_model) {
        SKIP("demo model not found");
        return;
    }
    int completed = 0, total = 0;
    run_generations(NULL, &completed, &total);
    printf("  # %d of %d generations completed\n", completed, total);
    CHECK(total > 0 && completed * 2 >= total, "only %d of %d generations completed", completed, total);
}

int main(int argc, char **argv) {
    char mp[512];
    ds8b_model_load(t_path(mp, sizeof mp, "models/demo-llama"), NULL, &g_model);
    if (argc == 3 && !strcmp(argv[1], "--dump")) {
        if (!g_model) {
            printf("no model\n");
            return 2;
        }
        int completed = 0, total = 0;
        int fails = run_generations(argv[2], &completed, &total);
        printf("%d %d\n", completed, total);
        ds8b_model_free(g_model);
        return fails ? 1 : 0;
    }
    RUN(test_fragments);
    RUN(test_errors);
    RUN(test_bounds);
    RUN(test_api);
    RUN(test_int_ranges);
    RUN(test_number_bounds);
    RUN(test_corpus);
    RUN(test_generate);
    ds8b_model_free(g_model);
    T_EXIT();
}
