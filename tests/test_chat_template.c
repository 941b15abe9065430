/* test_chat_template.c -- the chat template interpreter against the renders
 * transformers produced (testdata/chat-template-cases.jsonl.gz), the built-in
 * fallback templates, Jinja semantics, sandbox bounds and syntax errors. */
#include "t.h"

#include "chat/chat_template.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <zlib.h>

static const char *NAMES[] = {"llama3.1", "qwen3", "deepseek-v3", "demo"};
#define NTOK 4

typedef struct tokcfg {
    char *tmpl;
    char *bos, *eos;
} tokcfg;

static tokcfg cfgs[NTOK];
static cJSON *cases[256];
static int ncases;

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = 0;
    if (len) *len = got;
    return b;
}

static char *token_str(const cJSON *j) {
    if (cJSON_IsString(j)) return strdup(j->valuestring);
    if (cJSON_IsObject(j)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
        if (cJSON_IsString(c)) return strdup(c->valuestring);
    }
    return NULL;
}

static int load(void) {
    char p[1024], rel[256];
    for (int i = 0; i < NTOK; i++) {
        snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer_config.json", NAMES[i]);
        char *txt = slurp(t_path(p, sizeof p, rel), NULL);
        if (!txt) return -1;
        cJSON *j = cJSON_Parse(txt);
        free(txt);
        if (!j) return -1;
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
        cfgs[i].tmpl = cJSON_IsString(ct) ? strdup(ct->valuestring) : NULL;
        cfgs[i].bos = token_str(cJSON_GetObjectItemCaseSensitive(j, "bos_token"));
        cfgs[i].eos = token_str(cJSON_GetObjectItemCaseSensitive(j, "eos_token"));
        cJSON_Delete(j);
    }
    gzFile gz = gzopen(t_path(p, sizeof p, "testdata/chat-template-cases.jsonl.gz"), "rb");
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
    for (char *line = buf; *line && ncases < 256;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (*line) cases[ncases++] = cJSON_Parse(line);
        if (!nl) break;
        line = nl + 1;
    }
    free(buf);
    return ncases > 0 ? 0 : -1;
}

static ds8b__tmpl *compile_str(const char *src, int *rc, ds8b__err *e) {
    ds8b__tmpl *t = NULL;
    *rc = ds8b__tmpl_compile(src, strlen(src), &t, e);
    return t;
}

/* Renders t over case k; returns heap text or NULL (rc set). */
static char *render_case(const ds8b__tmpl *t, int k, bool agp, const tokcfg *cfg, int *rc, ds8b__err *e) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(cases[k], "messages");
    char *out = NULL;
    size_t n = 0;
    *rc = ds8b__tmpl_render(t, msgs, agp, cfg->bos, cfg->eos, NULL, &out, &n, e);
    if (*rc == 0 && strlen(out) != n) *rc = -999;
    return out;
}

static const char *expected(int k, const char *name, bool agp) {
    char key[128];
    snprintf(key, sizeof key, "%s|add_generation_prompt=%s", name, agp ? "true" : "false");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cases[k], "render"), key);
    return cJSON_IsString(r) ? r->valuestring : NULL;
}

static void show_diff(const char *what, int k, const char *want, const char *got) {
    size_t i = 0;
    while (want[i] && got[i] && want[i] == got[i]) i++;
    size_t from = i > 30 ? i - 30 : 0;
    printf("  # %s case %d differs at byte %zu: want \"%.60s\" got \"%.60s\"\n", what, k, i, want + from, got + from);
}

/* Compares template t (with cfg tokens) with the reference renders of `name`
 * on the cases accepted by `keep`; returns matched and total through *m,*tot. */
static void compare_all(const ds8b__tmpl *t, const tokcfg *cfg, const char *name, const char *label,
                        bool (*keep)(int, bool), int *m, int *tot) {
    int shown = 0;
    for (int k = 0; k < ncases; k++)
        for (int g = 0; g < 2; g++) {
            bool agp = g == 0;
            if (keep && !keep(k, agp)) continue;
            const char *want = expected(k, name, agp);
            if (!want) continue;
            (*tot)++;
            ds8b__err e = {0};
            int rc;
            char *got = render_case(t, k, agp, cfg, &rc, &e);
            if (rc == 0 && strcmp(got, want) == 0) (*m)++;
            else if (shown++ < 3) {
                if (rc) printf("  # %s case %d agp=%d: rc %d: %s\n", label, k, agp, rc, e.msg);
                else show_diff(label, k, want, got);
            }
            ds8b__free(got);
        }
}

static void test_reference_renders(void) {
    int all_m = 0, all_t = 0;
    for (int i = 0; i < NTOK; i++) {
        CHECK(cfgs[i].tmpl != NULL, "%s has no chat_template", NAMES[i]);
        if (!cfgs[i].tmpl) continue;
        ds8b__err e = {0};
        int rc;
        ds8b__tmpl *t = compile_str(cfgs[i].tmpl, &rc, &e);
        CHECK(rc == 0, "%s: compile failed: %s", NAMES[i], e.msg);
        if (!t) continue;
        int m = 0, tot = 0;
        compare_all(t, &cfgs[i], NAMES[i], NAMES[i], NULL, &m, &tot);
        printf("  # %-12s %d/%d renders match\n", NAMES[i], m, tot);
        CHECK(m == tot && tot > 0, "%s: %d of %d match", NAMES[i], m, tot);
        all_m += m;
        all_t += tot;
        ds8b__tmpl_free(t);
    }
    printf("  # total %d/%d renders match\n", all_m, all_t);
    CHECK(all_t == ncases * 2 * NTOK, "expected %d reference renders, found %d", ncases * 2 * NTOK, all_t);
}

static bool no_think_history(int k, bool agp) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(cases[k], "messages");
    int last_user = -1, i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const char *role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        const char *content = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        if (!strcmp(role, "user")) last_user = i;
        if (!strcmp(role, "assistant") && strstr(content, "</think>")) return false;
        i++;
    }
    return last_user == i - 1; /* no assistant turn after the last question */
}

static bool no_think(int k, bool agp) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(cases[k], "messages");
    const cJSON *m;
    if (agp) return false; /* the distill prompt opens <think> */
    cJSON_ArrayForEach(m, msgs) {
        const char *content = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        const char *role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        if (!strcmp(role, "assistant") && strstr(content, "</think>")) return false;
    }
    return true;
}

static void check_builtin(const char *bname, int cfg_i, bool (*keep)(int, bool)) {
    const char *src = ds8b__tmpl_builtin(bname);
    CHECK(src != NULL, "no builtin %s", bname);
    if (!src) return;
    ds8b__err e = {0};
    int rc;
    ds8b__tmpl *t = compile_str(src, &rc, &e);
    CHECK(rc == 0, "builtin %s: %s", bname, e.msg);
    if (!t) return;
    int m = 0, tot = 0;
    compare_all(t, &cfgs[cfg_i], NAMES[cfg_i], bname, keep, &m, &tot);
    printf("  # builtin %-20s vs %-12s %d/%d renders match\n", bname, NAMES[cfg_i], m, tot);
    CHECK(m == tot && tot > 0, "builtin %s: %d of %d", bname, m, tot);
    ds8b__tmpl_free(t);
}

static void test_builtins(void) {
    check_builtin("deepseek-r1", 3, NULL);
    check_builtin("deepseek-r1", 2, NULL);
    check_builtin("llama3", 0, NULL);
    check_builtin("chatml", 1, no_think_history);
    check_builtin("deepseek-r1-distill", 3, no_think);
    CHECK(ds8b__tmpl_builtin("nope") == NULL, "unknown builtin");
    CHECK(ds8b__tmpl_builtin(NULL) == NULL, "NULL builtin");
}

/* Renders src over messages JSON (may be NULL) with optional extra JSON. */
static int run_src(const char *src, const char *msgs_json, const char *extra_json, const ds8b__tmpl_limits *lim,
                   char **out, ds8b__err *e) {
    ds8b__tmpl *t = NULL;
    *out = NULL;
    int rc = ds8b__tmpl_compile(src, strlen(src), &t, e);
    if (rc) return rc;
    cJSON *m = msgs_json ? cJSON_Parse(msgs_json) : cJSON_CreateArray();
    cJSON *x = extra_json ? cJSON_Parse(extra_json) : NULL;
    size_t n;
    rc = ds8b__tmpl_render_ex(t, m, true, "<s>", "</s>", x, lim, out, &n, e);
    cJSON_Delete(m);
    cJSON_Delete(x);
    ds8b__tmpl_free(t);
    return rc;
}

static void expect_render(const char *src, const char *extra, const char *want) {
    char *out;
    ds8b__err e = {0};
    int rc = run_src(src, "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"<think>x</think>yo\"}]",
                     extra, NULL, &out, &e);
    CHECK(rc == 0, "render of %s failed: %s", src, e.msg);
    if (rc == 0) CHECK(strcmp(out, want) == 0, "%s: want [%s] got [%s]", src, want, out);
    ds8b__free(out);
}

static void test_semantics(void) {
    /* whitespace control: trim_blocks, lstrip_blocks, -, + */
    expect_render("a\n  {% if true %}\n  b\n  {% endif %}\nc", NULL, "a\n  b\nc");
    expect_render("a  {%- if true -%}  b  {%- endif -%}  c", NULL, "abc");
    expect_render("x {{- 'y' -}} z\n", NULL, "xyz");
    expect_render("  {%+ if true %}k{% endif %}", NULL, "  k");
    expect_render("{# c #}\nq{#- c -#}  r", NULL, "qr");
    expect_render("{% raw %}{{ x }}{% endraw %}", NULL, "{{ x }}");
    /* values, operators, filters */
    expect_render("{{ messages|length }} {{ messages[0].content|upper }} {{ messages[-1]['role'] }}", NULL, "2 HI assistant");
    expect_render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 1 / 4 }} {{ 1e20 }} {{ 0.1 + 0.2 }}", NULL,
                  "3 -4 -2 1024 0.25 1e+20 0.30000000000000004");
    expect_render("{{ [1, 'a', none, true, (1,)] }} {{ {'k': 'it\\'s'} }}", NULL,
                  "[1, 'a', None, True, (1,)] {'k': \"it's\"}");
    expect_render("{{ {'a': [1, 2.5, 'x\"y'], 'b': none}|tojson }}|{{ [1,{'c':true}]|tojson(indent=2) }}", NULL,
                  "{\"a\": [1, 2.5, \"x\\\"y\"], \"b\": null}|[\n  1,\n  {\n    \"c\": true\n  }\n]");
    expect_render("{{ 'héllo wörld'[::-1] }} {{ 'abc'[1:] }} {{ 'a,b,,c'.split(',') }} {{ '  x y  '.split() }}", NULL,
                  "dlröw olléh bc ['a', 'b', '', 'c'] ['x', 'y']");
    expect_render("{{ messages[1].content.split('</think>')[-1].lstrip('\\n') }} {{ '</think>' in messages[1].content }}",
                  NULL, "yo True");
    expect_render("{% set ns = namespace(n=0) %}{% for m in messages if m.role != 'x' %}{% set ns.n = ns.n + loop.index %}"
                  "{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{% endfor %}{{ ns.n }}",
                  NULL, "0TrueFalse21FalseTrue23");
    expect_render("{% for x in [] %}a{% else %}empty{% endfor %}{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}",
                  NULL, "emptya=1");
    expect_render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", NULL, "1");
    expect_render("{{ undefined_thing }}|{{ undefined_thing is defined }}|{{ tools is none }}|{{ foo|default('d') }}", NULL,
                  "|False|False|d");
    expect_render("{{ tools[0].name if tools else 'none' }} {{ tools|tojson }}", "{\"tools\":[{\"name\":\"f\"}]}",
                  "f [{\"name\": \"f\"}]");
    expect_render("{% macro m(a, b='B') %}<{{ a }}{{ b }}>{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}", NULL, "<1B><23>");
    expect_render("{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}"
                  "{{ i }}{% endfor %}", NULL, "02");
    expect_render("{{ messages|map(attribute='role')|join(',') }} {{ messages|selectattr('role', 'equalto', 'user')|list|length }}",
                  NULL, "user,assistant 1");
    expect_render("{{ '%s'|string }}{{ 3|string ~ 'x' }} {{ ' a '|trim }} {{ 'aXbX'|replace('X', '-') }} {{ 'ab'|capitalize }}",
                  NULL, "%s3x a a-b- Ab");
    expect_render("{{ 1 if false }}|{{ 'a' ~ none }}|{{ not none }}|{{ 1 < 2 < 3 }}|{{ 'b' not in 'abc' }}", NULL,
                  "|aNone|True|True|False");
    expect_render("{{ strftime_now('%d %b %Y') }}", NULL, "26 Jul 2024");
    expect_render("{% set x %}in{{ 1 }}{% endset %}[{{ x }}]{% generation %}g{% endgeneration %}", NULL, "[in1]g");
    /* the distill builtin drops earlier reasoning and opens <think> */
    expect_render(ds8b__tmpl_builtin("deepseek-r1-distill"), NULL,
                  "<s><｜User｜>hi<｜Assistant｜>yo<｜end▁of▁sentence｜><｜Assistant｜><think>\n");
}

static void expect_fail(const char *src, int code, const char *needle) {
    char *out;
    ds8b__err e = {0};
    ds8b__tmpl_limits lim = {0};
    int rc = run_src(src, NULL, NULL, &lim, &out, &e);
    CHECK(rc == code, "%.60s: rc %d, want %d (%s)", src, rc, code, e.msg);
    if (needle) CHECK(strstr(e.msg, needle) != NULL, "%.60s: message '%s' lacks '%s'", src, e.msg, needle);
    ds8b__free(out);
}

static void test_sandbox(void) {
    expect_fail("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", DS8B_E_LIMIT, "iterations");
    expect_fail("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", DS8B_E_LIMIT, "output");
    expect_fail("{% set ns = namespace(s='xy') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                DS8B_E_LIMIT, "memory");
    expect_fail("{{ 'x' * 100000000000 }}", DS8B_E_LIMIT, NULL);
    expect_fail("{{ range(10000000) }}", DS8B_E_LIMIT, NULL);
    expect_fail("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", DS8B_E_LIMIT, "deeper");
    expect_fail("{{ raise_exception('Only user and assistant roles are supported!') }}", DS8B_E_TEMPLATE,
                "Only user and assistant roles are supported!");
    expect_fail("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", DS8B_E_LIMIT, NULL);
    /* deep nesting is refused at compile time */
    char deep[2000];
    size_t k = 0;
    k += (size_t)snprintf(deep + k, sizeof deep - k, "{{ ");
    for (int i = 0; i < 300; i++) deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 300; i++) deep[k++] = ')';
    snprintf(deep + k, sizeof deep - k, " }}");
    expect_fail(deep, DS8B_E_LIMIT, "nesting");
    /* long left-deep chains are parsed by loops; their depth is bounded where evaluated */
    static char chain[20000];
    strcpy(chain, "{{ 1");
    for (int i = 0; i < 3000; i++) strcat(chain, "+1");
    strcat(chain, " }}");
    expect_fail(chain, DS8B_E_LIMIT, "deeper");
    expect_render("{{ 1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1 }}", NULL, "30");
    /* values nested by a loop cannot overflow the stack when compared or printed */
    expect_fail("{% set ns = namespace(a=1, b=1) %}{% for i in range(5000) %}{% set ns.a = [ns.a] %}"
                "{% set ns.b = [ns.b] %}{% endfor %}{{ ns.a == ns.b }}", DS8B_E_LIMIT, "nested");
    expect_fail("{% set ns = namespace(a=1) %}{% for i in range(5000) %}{% set ns.a = [ns.a] %}{% endfor %}{{ ns.a }}",
                DS8B_E_LIMIT, "nested");
    char ifs[4000] = "";
    for (int i = 0; i < 100; i++) strcat(ifs, "{% if 1 %}");
    expect_fail(ifs, DS8B_E_LIMIT, "nesting");
    /* an oversized source */
    size_t big = ((size_t)1 << 20) + 10;
    char *b = malloc(big + 1);
    memset(b, 'a', big);
    b[big] = 0;
    ds8b__tmpl *t = NULL;
    ds8b__err e = {0};
    CHECK(ds8b__tmpl_compile(b, big, &t, &e) == DS8B_E_LIMIT && t == NULL, "oversized source accepted");
    free(b);
    /* sandbox: no attributes of other objects, no unsafe methods */
    expect_render("{{ (1).real }}|{{ ''.__class__ }}|{{ messages.pop }}", NULL, "||");
    expect_fail("{{ messages.pop() }}", DS8B_E_TEMPLATE, NULL);
    expect_fail("{{ ''.format() }}", DS8B_E_TEMPLATE, NULL);
    /* limits are configurable */
    char *out;
    ds8b__tmpl_limits lim = {.max_output = 10};
    CHECK(run_src("{{ 'x' * 11 }}", NULL, NULL, &lim, &out, &e) == DS8B_E_LIMIT, "output limit 10");
    ds8b__free(out);
    CHECK(run_src("{{ 'x' * 10 }}", NULL, NULL, &lim, &out, &e) == 0 && strlen(out) == 10, "output of exactly 10");
    ds8b__free(out);
}

static void test_syntax_errors(void) {
    static const char *bad[] = {
        "{% if x %}never closed", "{{ x ", "{% for %}{% endfor %}", "{{ 1 + }}", "{% endif %}",
        "{% if a %}{% endfor %}", "{{ 'unterminated }}", "{# open comment", "{{ a b }}", "{% set %}",
        "{{ (1, 2 }}", "{{ [1, 2) }}", "{% break %}", "{{ x | }}", "{{ x is }}", "{% nosuchtag %}",
        "{{ f(a=1, 2) }}", "{% for x in y %}{% else %}{% else %}{% endfor %}", "{{ '\\x4' }}", "{{ @ }}",
        "{% macro (a) %}{% endmacro %}", "{% if %}{% endif %}", "{{ }}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ds8b__tmpl *t = NULL;
        ds8b__err e = {0};
        int rc = ds8b__tmpl_compile(bad[i], strlen(bad[i]), &t, &e);
        CHECK(rc == DS8B_E_TEMPLATE && t == NULL, "'%s' gave rc %d", bad[i], rc);
        CHECK(strstr(e.msg, "line 1") != NULL, "'%s': no line in '%s'", bad[i], e.msg);
        ds8b__tmpl_free(t);
    }
    /* runtime type errors are template errors too */
    expect_fail("{{ 'a' + 1 }}", DS8B_E_TEMPLATE, "line 1");
    expect_fail("\n\n{{ nothing.attr }}", DS8B_E_TEMPLATE, "line 3");
    expect_fail("{{ 1 / 0 }}", DS8B_E_TEMPLATE, NULL);
    expect_fail("{{ x|nofilter }}", DS8B_E_TEMPLATE, "nofilter");
    /* bad arguments */
    ds8b__tmpl *t = NULL;
    ds8b__err e = {0};
    CHECK(ds8b__tmpl_compile("x", 1, NULL, &e) == DS8B_E_INVALID, "NULL out");
    CHECK(ds8b__tmpl_compile("x", 1, &t, &e) == 0, "compile x");
    char *out;
    size_t n;
    cJSON *obj = cJSON_CreateObject();
    CHECK(ds8b__tmpl_render(t, obj, false, NULL, NULL, NULL, &out, &n, &e) == DS8B_E_INVALID, "messages not an array");
    cJSON_Delete(obj);
    CHECK(ds8b__tmpl_render(t, NULL, false, NULL, NULL, NULL, &out, &n, &e) == 0 && !strcmp(out, "x"), "NULL messages");
    ds8b__free(out);
    ds8b__tmpl_free(t);
}

static void test_thread_shared_template(void) {
    /* The same compiled template renders repeatedly with identical output. */
    ds8b__err e = {0};
    int rc;
    ds8b__tmpl *t = compile_str(cfgs[1].tmpl ? cfgs[1].tmpl : "", &rc, &e);
    CHECK(rc == 0, "compile: %s", e.msg);
    if (!t || ncases < 3) { ds8b__tmpl_free(t); return; }
    char *a = render_case(t, 2, true, &cfgs[1], &rc, &e);
    char *b = render_case(t, 2, true, &cfgs[1], &rc, &e);
    CHECK(a && b && !strcmp(a, b), "renders differ");
    ds8b__free(a);
    ds8b__free(b);
    ds8b__tmpl_free(t);
}

int main(void) {
    if (load() != 0) {
        printf("not ok load (shared data not found under %s)\n", t_shared());
        return 1;
    }
    RUN(test_reference_renders);
    RUN(test_builtins);
    RUN(test_semantics);
    RUN(test_sandbox);
    RUN(test_syntax_errors);
    RUN(test_thread_shared_template);
    for (int i = 0; i < ncases; i++) cJSON_Delete(cases[i]);
    for (int i = 0; i < NTOK; i++) { free(cfgs[i].tmpl); free(cfgs[i].bos); free(cfgs[i].eos); }
    T_EXIT();
}
