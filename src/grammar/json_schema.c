/* json_schema.c -- JSON Schema to GBNF.
 *
 * The schema is parsed with cJSON and walked once. Every subschema becomes
 * a GBNF expression, most of them a rule of their own; shared pieces (JSON
 * strings, numbers, the whitespace rule, formats) are emitted once at the
 * end, only if used. docs/json-schema.md lists what is supported.
 *
 * Layout:
 *   - string builder, context, errors and JSON-pointer paths
 *   - rule table and the shared primitive rules
 *   - literals and character sets (JSON-encoded)
 *   - regex subset -> GBNF
 *   - integer ranges as digit grammars
 *   - allOf / $ref merging
 *   - the generator (types, objects, arrays, strings, numbers)
 *   - entry points
 */
#include "grammar/json_schema.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ================================================================== */
/* String builder                                                      */
/* ================================================================== */
typedef struct sb {
    char *p;
    size_t n, cap;
    bool bad;   /* allocation failed or the bound was passed */
    bool limit; /* ... because of the bound */
} sb;

static void sb_putn(sb *b, const char *s, size_t n) {
    if (b->bad) return;
    size_t need;
    if (!ds8b__add_ok(b->n, n, &need) || !ds8b__add_ok(need, 1, &need) || need > DS8B__JS_MAX_OUTPUT) {
        b->bad = b->limit = true;
        return;
    }
    if (need > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < need) nc *= 2;
        char *np = ds8b__realloc(DS8B_MEM_OTHER, b->p, nc);
        if (!np) {
            b->bad = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_puts(sb *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof tmp) {
        b->bad = true;
        return;
    }
    sb_putn(b, tmp, (size_t)k);
}
static void sb_free(sb *b) {
    ds8b__free(b->p);
    memset(b, 0, sizeof *b);
}
static const char *sb_str(const sb *b) { return b->p ? b->p : ""; }

/* ================================================================== */
/* Context                                                             */
/* ================================================================== */
enum {
    P_WS = 1u << 0, P_VALUE = 1u << 1, P_OBJECT = 1u << 2, P_ARRAY = 1u << 3, P_STRING = 1u << 4,
    P_CHAR = 1u << 5, P_KCHAR = 1u << 6, P_NUMBER = 1u << 7, P_INTEGER = 1u << 8, P_BOOL = 1u << 9,
    P_NULL = 1u << 10, P_FRAC = 1u << 11, P_DATE = 1u << 12, P_TIME = 1u << 13, P_UUID = 1u << 14,
};

typedef struct js_rule {
    char *name;
    char *body; /* NULL while being built (a recursive $ref) */
} js_rule;

typedef struct js_ref {
    const cJSON *target;
    char *name;
} js_ref;

typedef struct jsc {
    cJSON *doc;
    js_rule *rules;
    size_t nrules, caprules;
    size_t rule_bytes;
    js_ref *refs;
    size_t nrefs, caprefs;
    cJSON **garbage; /* merged schemas made here, deleted at the end */
    size_t ngarbage, capgarbage;
    unsigned prims;
    char path[512];
    size_t plen;
    bool path_cut;
    int depth;
    size_t work; /* bounds merging and generation time */
    ds8b__err *e;
} jsc;

#define JS_MAX_WORK 200000u

static int js_fail(jsc *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int js_fail(jsc *c, int code, const char *fmt, ...) {
    char m[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return ds8b__seterr(c->e, code, "json schema: %s at %s%s", m, c->plen ? c->path : "/ (the root)",
                        c->path_cut ? "..." : "");
}
static int js_nomem(jsc *c) { return ds8b__seterr(c->e, DS8B_E_NOMEM, "json schema: out of memory"); }
static int js_sbcheck(jsc *c, const sb *b) {
    if (!b->bad) return 0;
    if (b->limit)
        return ds8b__seterr(c->e, DS8B_E_LIMIT, "json schema: the generated grammar passes %u bytes",
                            (unsigned)DS8B__JS_MAX_OUTPUT);
    return js_nomem(c);
}
static int js_tick(jsc *c, size_t n) {
    c->work += n;
    if (c->work > JS_MAX_WORK) return js_fail(c, DS8B_E_LIMIT, "the schema takes too much work to convert (merges or $refs)");
    return 0;
}

/* JSON-pointer path of the subschema being converted. */
static size_t path_push(jsc *c, const char *key) {
    size_t mark = c->plen;
    if (c->plen + 2 >= sizeof c->path) {
        c->path_cut = true;
        return mark;
    }
    c->path[c->plen++] = '/';
    for (const char *k = key; *k; k++) {
        const char *rep = *k == '~' ? "~0" : *k == '/' ? "~1" : NULL;
        size_t need = rep ? 2 : 1;
        if (c->plen + need + 1 >= sizeof c->path) {
            c->path_cut = true;
            break;
        }
        if (rep) {
            memcpy(c->path + c->plen, rep, 2);
            c->plen += 2;
        } else c->path[c->plen++] = *k;
    }
    c->path[c->plen] = 0;
    return mark;
}
static size_t path_push_i(jsc *c, const char *key, size_t i) {
    char k[32];
    snprintf(k, sizeof k, "%zu", i);
    size_t mark = path_push(c, key);
    path_push(c, k);
    return mark;
}
static void path_pop(jsc *c, size_t mark) {
    c->plen = mark;
    c->path[mark] = 0;
    if (mark == 0) c->path_cut = false;
}

static cJSON *keep(jsc *c, cJSON *j) {
    if (!j) return NULL;
    if (c->ngarbage == c->capgarbage) {
        size_t nc = c->capgarbage ? c->capgarbage * 2 : 16, bytes;
        if (!ds8b__mul_ok(nc, sizeof *c->garbage, &bytes)) {
            cJSON_Delete(j);
            return NULL;
        }
        cJSON **ng = ds8b__realloc(DS8B_MEM_OTHER, c->garbage, bytes);
        if (!ng) {
            cJSON_Delete(j);
            return NULL;
        }
        c->garbage = ng;
        c->capgarbage = nc;
    }
    c->garbage[c->ngarbage++] = j;
    return j;
}

/* ================================================================== */
/* Rules                                                               */
/* ================================================================== */
static bool name_taken(const jsc *c, const char *n) {
    for (size_t i = 0; i < c->nrules; i++)
        if (!strcmp(c->rules[i].name, n)) return true;
    return false;
}

/* Adds a rule named after hint (made unique); body may be NULL (set
 * later). Returns its index through *idx. */
static int rule_add(jsc *c, const char *hint, const char *body, size_t *idx) {
    if (c->nrules >= DS8B__JS_MAX_RULES)
        return js_fail(c, DS8B_E_LIMIT, "the generated grammar passes %d rules", DS8B__JS_MAX_RULES);
    char base[48];
    size_t k = 0;
    bool dash = false;
    for (const char *h = hint; *h && k + 1 < sizeof base - 8; h++) {
        char ch = *h;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (ok) {
            base[k++] = ch;
            dash = false;
        } else if (!dash && k > 0) {
            base[k++] = '-';
            dash = true;
        }
    }
    while (k > 0 && base[k - 1] == '-') k--;
    if (k == 0) base[k++] = 'r';
    base[k] = 0;
    char name[64];
    snprintf(name, sizeof name, "%s", base);
    for (unsigned i = 2; name_taken(c, name) || !strcmp(name, "root") || !strcmp(name, "ws") ||
                         !strncmp(name, "json-", 5);
         i++)
        snprintf(name, sizeof name, "%s-%u", base, i);
    if (c->nrules == c->caprules) {
        size_t nc = c->caprules ? c->caprules * 2 : 32;
        js_rule *nr = ds8b__realloc(DS8B_MEM_OTHER, c->rules, nc * sizeof *nr);
        if (!nr) return js_nomem(c);
        c->rules = nr;
        c->caprules = nc;
    }
    js_rule *r = &c->rules[c->nrules];
    r->name = ds8b__strdup(DS8B_MEM_OTHER, name);
    r->body = NULL;
    if (!r->name) return js_nomem(c);
    c->nrules++;
    if (idx) *idx = c->nrules - 1;
    if (body) {
        size_t bl = strlen(body), tot;
        if (!ds8b__add_ok(c->rule_bytes, bl + strlen(name) + 8, &tot) || tot > DS8B__JS_MAX_OUTPUT)
            return ds8b__seterr(c->e, DS8B_E_LIMIT, "json schema: the generated grammar passes %u bytes",
                                (unsigned)DS8B__JS_MAX_OUTPUT);
        c->rule_bytes = tot;
        r->body = ds8b__strdup(DS8B_MEM_OTHER, body);
        if (!r->body) return js_nomem(c);
    }
    return 0;
}
static int rule_set_body(jsc *c, size_t idx, const char *body) {
    size_t bl = strlen(body), tot;
    if (!ds8b__add_ok(c->rule_bytes, bl + strlen(c->rules[idx].name) + 8, &tot) || tot > DS8B__JS_MAX_OUTPUT)
        return ds8b__seterr(c->e, DS8B_E_LIMIT, "json schema: the generated grammar passes %u bytes",
                            (unsigned)DS8B__JS_MAX_OUTPUT);
    c->rule_bytes = tot;
    c->rules[idx].body = ds8b__strdup(DS8B_MEM_OTHER, body);
    return c->rules[idx].body ? 0 : js_nomem(c);
}
/* Makes body a rule named after hint and appends its name to out. */
static int rule_emit(jsc *c, const char *hint, const sb *body, sb *out) {
    int rc = js_sbcheck(c, body);
    if (rc) return rc;
    size_t idx;
    rc = rule_add(c, hint, sb_str(body), &idx);
    if (rc) return rc;
    sb_puts(out, c->rules[idx].name);
    return js_sbcheck(c, out);
}
static void use(jsc *c, sb *out, unsigned prim, const char *name) {
    c->prims |= prim;
    sb_puts(out, name);
}

/* The shared rules, in the order they are printed. */
static const struct {
    unsigned bit;
    unsigned needs;
    const char *text;
} PRIMS[] = {
    {P_VALUE, P_OBJECT | P_ARRAY | P_STRING | P_NUMBER | P_BOOL | P_NULL,
     "json-value ::= json-object | json-array | json-string | json-number | json-boolean | json-null\n"},
    {P_OBJECT, P_STRING | P_VALUE | P_WS,
     "json-object ::= \"{\" ws ( json-string ws \":\" ws json-value ( ws \",\" ws json-string ws \":\" ws json-value )* ws )? \"}\"\n"},
    {P_ARRAY, P_VALUE | P_WS, "json-array ::= \"[\" ws ( json-value ( ws \",\" ws json-value )* ws )? \"]\"\n"},
    {P_STRING, P_CHAR, "json-string ::= \"\\\"\" json-char* \"\\\"\"\n"},
    /* \u escapes of UTF-16 surrogates are left out, so that one escape is
     * one character for minLength/maxLength. */
    {P_CHAR, 0,
     "json-char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-C] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} | [eEfF] [0-9a-fA-F]{3} ) )\n"},
    {P_KCHAR, 0, "json-kchar ::= [^\"\\\\\\x00-\\x1F]\n"},
    {P_NUMBER, 0,
     "json-number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} ) ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?\n"},
    {P_INTEGER, 0, "json-integer ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n"},
    {P_BOOL, 0, "json-boolean ::= \"true\" | \"false\"\n"},
    {P_NULL, 0, "json-null ::= \"null\"\n"},
    {P_FRAC, 0, "json-frac ::= \".\" [0-9]{0,15} [1-9]\n"},
    {P_DATE, 0,
     "json-date ::= [1-9] [0-9]{3} \"-\" ( ( \"0\" [13578] | \"1\" [02] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )"
     " | ( \"0\" [469] | \"11\" ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"30\" ) | \"02-\" ( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] ) )\n"},
    {P_TIME, 0,
     "json-time ::= ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,6} )?"
     " ( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )\n"},
    {P_UUID, 0,
     "json-uuid ::= [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12}\n"},
    {P_WS, 0, "ws ::= ( \" \" | \"\\n\" [ \\t]{0,20} )?\n"},
};

/* ================================================================== */
/* Literals and character sets                                         */
/* ================================================================== */
/* A GBNF string literal for the bytes s[0..n). */
static void gbnf_literal(sb *o, const char *s, size_t n) {
    sb_puts(o, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"') sb_puts(o, "\\\"");
        else if (ch == '\\') sb_puts(o, "\\\\");
        else if (ch == '\n') sb_puts(o, "\\n");
        else if (ch == '\t') sb_puts(o, "\\t");
        else if (ch == '\r') sb_puts(o, "\\r");
        else if (ch < 0x20 || ch == 0x7F) sb_printf(o, "\\x%02X", ch);
        else sb_putn(o, (const char *)&ch, 1);
    }
    sb_puts(o, "\"");
}

/* s as a JSON string (quotes included), as JSON.stringify writes it. */
static void json_quote(sb *o, const char *s) {
    sb_puts(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_puts(o, "\\\""); break;
        case '\\': sb_puts(o, "\\\\"); break;
        case '\b': sb_puts(o, "\\b"); break;
        case '\f': sb_puts(o, "\\f"); break;
        case '\n': sb_puts(o, "\\n"); break;
        case '\r': sb_puts(o, "\\r"); break;
        case '\t': sb_puts(o, "\\t"); break;
        default:
            if (*p < 0x20) sb_printf(o, "\\u%04x", *p);
            else sb_putn(o, (const char *)p, 1);
        }
    }
    sb_puts(o, "\"");
}

static void put_utf8(sb *o, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_putn(o, b, n);
}

/* Decodes one UTF-8 code point at p (before end); 0 on bad UTF-8. */
static size_t utf8_dec(const char *p, const char *end, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)p;
    size_t avail = (size_t)(end - p);
    if (avail == 0) return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || n > avail) return 0;
    uint32_t v = s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((n == 2 && v < 0x80) || (n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* A set of code points: sorted, disjoint, non-adjacent intervals. */
typedef struct cset {
    uint32_t (*iv)[2];
    size_t n, cap;
    bool bad;
} cset;

static void cs_add(cset *s, uint32_t lo, uint32_t hi) {
    if (s->bad || lo > hi) return;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        if (nc > 65536) {
            s->bad = true;
            return;
        }
        void *np = ds8b__realloc(DS8B_MEM_OTHER, s->iv, nc * sizeof *s->iv);
        if (!np) {
            s->bad = true;
            return;
        }
        s->iv = np;
        s->cap = nc;
    }
    s->iv[s->n][0] = lo;
    s->iv[s->n][1] = hi;
    s->n++;
}
static int iv_cmp(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}
static void cs_norm(cset *s) {
    if (s->bad || s->n == 0) return;
    qsort(s->iv, s->n, sizeof *s->iv, iv_cmp);
    size_t k = 0;
    for (size_t i = 1; i < s->n; i++) {
        if (s->iv[i][0] <= s->iv[k][1] + 1) {
            if (s->iv[i][1] > s->iv[k][1]) s->iv[k][1] = s->iv[i][1];
        } else s->iv[++k][0] = s->iv[i][0], s->iv[k][1] = s->iv[i][1];
    }
    s->n = k + 1;
}
/* Complement within [0, top]. */
static void cs_complement(cset *s, uint32_t top) {
    cs_norm(s);
    if (s->bad) return;
    cset r = {0};
    uint32_t next = 0;
    for (size_t i = 0; i < s->n && next <= top; i++) {
        if (s->iv[i][0] > next) cs_add(&r, next, s->iv[i][0] - 1 > top ? top : s->iv[i][0] - 1);
        next = s->iv[i][1] + 1;
    }
    if (next <= top) cs_add(&r, next, top);
    ds8b__free(s->iv);
    r.bad = r.bad || s->bad;
    *s = r;
}
static bool cs_has(const cset *s, uint32_t cp) {
    for (size_t i = 0; i < s->n; i++)
        if (cp >= s->iv[i][0] && cp <= s->iv[i][1]) return true;
    return false;
}
/* Subtracts [lo, hi] (s normalised). */
static void cs_sub(cset *s, uint32_t lo, uint32_t hi) {
    cset r = {0};
    for (size_t i = 0; i < s->n; i++) {
        uint32_t a = s->iv[i][0], b = s->iv[i][1];
        if (b < lo || a > hi) cs_add(&r, a, b);
        else {
            if (a < lo) cs_add(&r, a, lo - 1);
            if (b > hi) cs_add(&r, hi + 1, b);
        }
    }
    r.bad = r.bad || s->bad;
    ds8b__free(s->iv);
    *s = r;
}

static void class_char(sb *o, uint32_t cp) {
    if (cp < 0x20 || cp == 0x7F || cp == '\\' || cp == ']' || cp == '[' || cp == '^' || cp == '-' || cp == '"')
        sb_printf(o, "\\x%02X", (unsigned)cp);
    else put_utf8(o, cp);
}

/* Appends a GBNF expression matching the JSON string encodings of the
 * code points in s (normalised): raw characters, and the escapes a JSON
 * writer uses for '"', '\\' and control characters. Returns false if
 * nothing matches. */
static bool cs_emit(sb *o, cset *s) {
    cset raw = {0};
    for (size_t i = 0; i < s->n; i++) cs_add(&raw, s->iv[i][0], s->iv[i][1]);
    cs_norm(&raw);
    cs_sub(&raw, 0, 0x1F);
    cs_sub(&raw, '"', '"');
    cs_sub(&raw, '\\', '\\');
    cs_sub(&raw, 0xD800, 0xDFFF);
    int alts = 0;
    sb part = {0};
    if (raw.n == 1 && raw.iv[0][0] == raw.iv[0][1]) {
        sb tmp = {0};
        put_utf8(&tmp, raw.iv[0][0]);
        gbnf_literal(&part, sb_str(&tmp), tmp.n);
        sb_free(&tmp);
        alts++;
    } else if (raw.n > 0) {
        if (raw.iv[raw.n - 1][1] == 0x10FFFF && raw.n > 1) {
            /* Large set: print what is left out. */
            cset neg = {0};
            for (size_t i = 0; i < raw.n; i++) cs_add(&neg, raw.iv[i][0], raw.iv[i][1]);
            cs_complement(&neg, 0x10FFFF);
            sb_puts(&part, "[^");
            for (size_t i = 0; i < neg.n; i++) {
                uint32_t a = neg.iv[i][0], b = neg.iv[i][1];
                if (a >= 0xD800 && b <= 0xDFFF) continue;
                if (a <= 0xDFFF && b >= 0xD800) { /* around the surrogates */
                    if (a < 0xD800) {
                        class_char(&part, a);
                        if (0xD7FF > a) sb_puts(&part, "-"), class_char(&part, 0xD7FF);
                    }
                    if (b > 0xDFFF) {
                        class_char(&part, 0xE000);
                        if (b > 0xE000) sb_puts(&part, "-"), class_char(&part, b);
                    }
                    continue;
                }
                class_char(&part, a);
                if (b > a) sb_puts(&part, "-"), class_char(&part, b);
            }
            sb_puts(&part, "]");
            ds8b__free(neg.iv);
        } else {
            sb_puts(&part, "[");
            for (size_t i = 0; i < raw.n; i++) {
                class_char(&part, raw.iv[i][0]);
                if (raw.iv[i][1] > raw.iv[i][0]) sb_puts(&part, "-"), class_char(&part, raw.iv[i][1]);
            }
            sb_puts(&part, "]");
        }
        alts++;
    }
    ds8b__free(raw.iv);
    static const char *const SHORT[0x20] = {[8] = "\\\\b", [9] = "\\\\t", [10] = "\\\\n", [12] = "\\\\f", [13] = "\\\\r"};
    for (uint32_t cp = 0; cp < 0x20; cp++) {
        if (!cs_has(s, cp)) continue;
        if (alts++) sb_puts(&part, " | ");
        if (SHORT[cp]) sb_printf(&part, "\"%s\"", SHORT[cp]);
        else sb_printf(&part, "\"\\\\u00%02x\"", cp);
    }
    if (cs_has(s, '"')) {
        if (alts++) sb_puts(&part, " | ");
        sb_puts(&part, "\"\\\\\\\"\"");
    }
    if (cs_has(s, '\\')) {
        if (alts++) sb_puts(&part, " | ");
        sb_puts(&part, "\"\\\\\\\\\"");
    }
    if (alts > 1) sb_puts(o, "( "), sb_putn(o, sb_str(&part), part.n), sb_puts(o, " )");
    else sb_putn(o, sb_str(&part), part.n);
    if (part.bad) o->bad = true, o->limit = o->limit || part.limit;
    sb_free(&part);
    return alts > 0;
}

/* ================================================================== */
/* Regex subset -> GBNF                                                */
/* ================================================================== */
/* Literals, escapes, classes, '.', groups ((...), (?:...), named),
 * alternation, * + ? {m} {m,} {m,n} (lazy forms too), and ^ / $ at the
 * ends of the top-level alternatives. Without ^ (or $) the match may start
 * (or end) anywhere, as JSON Schema patterns are unanchored. */
typedef struct rex {
    jsc *c;
    const char *start, *p, *end;
    int depth;
} rex;

static int re_alt(rex *r, bool top, sb *out);

static int re_err(rex *r, const char *what) {
    return js_fail(r->c, DS8B_E_UNSUPPORTED, "pattern: %s (at offset %zu)", what,
                   (size_t)(r->p - r->start));
}

static bool is_hex(char ch) { return (ch >= '0' && ch <= '9') || ((ch | 32) >= 'a' && (ch | 32) <= 'f'); }
static uint32_t hexval(const char *p, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++) v = v * 16 + (uint32_t)(p[i] <= '9' ? p[i] - '0' : (p[i] | 32) - 'a' + 10);
    return v;
}

/* Class escapes \d \w \s and their negations, ASCII only (a subset of
 * what Python's re matches, so generated text always matches). */
static bool re_class_escape(char ch, cset *s) {
    cset t = {0};
    char lo = (char)(ch | 32);
    if (lo == 'd') cs_add(&t, '0', '9');
    else if (lo == 'w') cs_add(&t, '0', '9'), cs_add(&t, 'A', 'Z'), cs_add(&t, 'a', 'z'), cs_add(&t, '_', '_');
    else if (lo == 's') cs_add(&t, '\t', '\r'), cs_add(&t, ' ', ' ');
    else return false;
    if (ch != lo) cs_complement(&t, 0x7F);
    for (size_t i = 0; i < t.n; i++) cs_add(s, t.iv[i][0], t.iv[i][1]);
    if (t.bad) s->bad = true;
    ds8b__free(t.iv);
    return true;
}

/* One escaped character after '\\' (r->p at the char after '\\').
 * Returns 1 and *cp for a character, 2 if a class escape was added to s,
 * or an error code. */
static int re_escape(rex *r, bool in_class, uint32_t *cp, cset *s) {
    if (r->p >= r->end) return re_err(r, "trailing backslash");
    char ch = *r->p++;
    if (re_class_escape(ch, s)) return 2;
    switch (ch) {
    case 'n': *cp = '\n'; return 1;
    case 't': *cp = '\t'; return 1;
    case 'r': *cp = '\r'; return 1;
    case 'f': *cp = '\f'; return 1;
    case 'v': *cp = '\v'; return 1;
    case '0': *cp = 0; return 1;
    case 'b':
        if (in_class) { *cp = '\b'; return 1; }
        return re_err(r, "word boundary \\b is not supported");
    case 'x':
        if (r->end - r->p < 2 || !is_hex(r->p[0]) || !is_hex(r->p[1])) return re_err(r, "bad \\x escape");
        *cp = hexval(r->p, 2);
        r->p += 2;
        return 1;
    case 'u':
        if (r->end - r->p < 4 || !is_hex(r->p[0]) || !is_hex(r->p[1]) || !is_hex(r->p[2]) || !is_hex(r->p[3]))
            return re_err(r, "bad \\u escape");
        *cp = hexval(r->p, 4);
        r->p += 4;
        if (*cp >= 0xD800 && *cp <= 0xDFFF) return re_err(r, "\\u escape of a surrogate");
        return 1;
    default:
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
            char m[64];
            snprintf(m, sizeof m, "escape \\%c is not supported", ch);
            return re_err(r, m);
        }
        if ((unsigned char)ch >= 0x80) {
            r->p--;
            size_t k = utf8_dec(r->p, r->end, cp);
            if (!k) return re_err(r, "bad UTF-8");
            r->p += k;
            return 1;
        }
        *cp = (unsigned char)ch;
        return 1;
    }
}

static int re_char(rex *r, uint32_t *cp) {
    size_t k = utf8_dec(r->p, r->end, cp);
    if (!k) return js_fail(r->c, DS8B_E_INVALID, "pattern: bad UTF-8");
    r->p += k;
    return 0;
}

/* [...] (r->p after '['). */
static int re_class(rex *r, cset *s) {
    bool neg = false, ascii = false;
    if (r->p < r->end && *r->p == '^') neg = true, r->p++;
    bool first = true;
    while (1) {
        if (r->p >= r->end) return re_err(r, "unterminated character class");
        if (*r->p == ']' && !first) {
            r->p++;
            break;
        }
        if (r->p + 1 < r->end && r->p[0] == '[' && (r->p[1] == ':' || r->p[1] == '=' || r->p[1] == '.'))
            return re_err(r, "POSIX classes are not supported");
        first = false;
        uint32_t a;
        int k;
        if (*r->p == '\\') {
            r->p++;
            k = re_escape(r, true, &a, s);
            if (k < 0) return k;
            if (k == 2) {
                ascii = true;
                continue;
            }
        } else if ((k = re_char(r, &a)) != 0) return k;
        if (r->p + 1 < r->end && *r->p == '-' && r->p[1] != ']') {
            r->p++;
            uint32_t b;
            if (*r->p == '\\') {
                r->p++;
                cset dummy = {0};
                k = re_escape(r, true, &b, &dummy);
                ds8b__free(dummy.iv);
                if (k < 0) return k;
                if (k == 2) return re_err(r, "class escape as the end of a range");
            } else if ((k = re_char(r, &b)) != 0) return k;
            if (b < a) return re_err(r, "bad range in character class");
            cs_add(s, a, b);
        } else cs_add(s, a, a);
    }
    cs_norm(s);
    if (neg) cs_complement(s, ascii ? 0x7F : 0x10FFFF);
    return s->bad ? js_nomem(r->c) : 0;
}

static bool re_read_int(rex *r, size_t *v) {
    const char *p0 = r->p;
    size_t x = 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        x = x * 10 + (size_t)(*r->p - '0');
        if (x > 1000000) x = 1000000;
        r->p++;
    }
    *v = x;
    return r->p > p0;
}

/* A {m}, {m,}, {m,n} quantifier at r->p ('{')? Leaves r->p if not. */
static bool re_braces(rex *r, size_t *m, size_t *n, bool *inf) {
    const char *save = r->p;
    r->p++;
    if (!re_read_int(r, m)) goto no;
    *inf = false;
    *n = *m;
    if (r->p < r->end && *r->p == ',') {
        r->p++;
        if (!re_read_int(r, n)) *inf = true;
    }
    if (r->p >= r->end || *r->p != '}') goto no;
    r->p++;
    return true;
no:
    r->p = save;
    return false;
}

static void put_rep(sb *o, size_t m, size_t n, bool inf) {
    if (inf) {
        if (m == 0) sb_puts(o, "*");
        else if (m == 1) sb_puts(o, "+");
        else sb_printf(o, "{%zu,}", m);
    } else if (m == 0 && n == 1) sb_puts(o, "?");
    else if (m == n) { if (m != 1) sb_printf(o, "{%zu}", m); }
    else sb_printf(o, "{%zu,%zu}", m, n);
}

/* A sequence up to '|' or ')' or the end. */
static int re_seq(rex *r, bool top, sb *out) {
    int items = 0;
    bool anchored_start = false, anchored_end = false;
    if (top && r->p < r->end && *r->p == '^') anchored_start = true, r->p++;
    if (top && !anchored_start) use(r->c, out, P_CHAR, "json-char*"), items++;
    while (r->p < r->end && *r->p != '|' && *r->p != ')') {
        if (js_tick(r->c, 1)) return r->c->e ? r->c->e->code : DS8B_E_LIMIT;
        char ch = *r->p;
        sb atom = {0};
        int rc = 0;
        if (ch == '$') {
            r->p++;
            if (top && (r->p >= r->end || *r->p == '|')) {
                anchored_end = true;
                break;
            }
            sb_free(&atom);
            return re_err(r, "'$' only at the end of the pattern");
        } else if (ch == '^') {
            return re_err(r, "'^' only at the start of the pattern");
        } else if (ch == '*' || ch == '+' || ch == '?') {
            return re_err(r, "nothing to repeat");
        } else if (ch == '(') {
            r->p++;
            if (r->p < r->end && *r->p == '?') {
                r->p++;
                if (r->p < r->end && *r->p == ':') r->p++;
                else if (r->p + 1 < r->end && (*r->p == '<' || (*r->p == 'P' && r->p[1] == '<')) &&
                         !(r->p[0] == '<' && (r->p[1] == '=' || r->p[1] == '!'))) {
                    r->p += *r->p == 'P' ? 2 : 1;
                    while (r->p < r->end && *r->p != '>') r->p++;
                    if (r->p >= r->end) return re_err(r, "unterminated group name");
                    r->p++;
                } else return re_err(r, "lookaround, flags and other (?...) groups are not supported");
            }
            if (++r->depth > 32) return js_fail(r->c, DS8B_E_LIMIT, "pattern: groups nested too deep");
            sb_puts(&atom, "( ");
            rc = re_alt(r, false, &atom);
            r->depth--;
            if (rc) {
                sb_free(&atom);
                return rc;
            }
            if (r->p >= r->end || *r->p != ')') {
                sb_free(&atom);
                return re_err(r, "missing ')'");
            }
            r->p++;
            sb_puts(&atom, " )");
        } else {
            cset s = {0};
            uint32_t cp = 0;
            int k = 1;
            if (ch == '[') {
                r->p++;
                rc = re_class(r, &s);
                k = 2;
            } else if (ch == '.') {
                r->p++;
                cs_add(&s, 0, 0x10FFFF);
                cs_norm(&s);
                cs_sub(&s, '\n', '\n');
                k = 2;
            } else if (ch == '\\') {
                r->p++;
                k = re_escape(r, false, &cp, &s);
                if (k < 0) rc = k;
            } else if (ch == '{') {
                size_t m, n;
                bool inf;
                if (re_braces(r, &m, &n, &inf)) rc = re_err(r, "nothing to repeat");
                else cp = '{', r->p++;
            } else rc = re_char(r, &cp);
            if (!rc && k == 1) cs_add(&s, cp, cp);
            cs_norm(&s);
            if (!rc && s.bad) rc = js_nomem(r->c);
            if (!rc && !cs_emit(&atom, &s)) rc = re_err(r, "a character class that matches nothing");
            ds8b__free(s.iv);
            if (rc) {
                sb_free(&atom);
                return rc;
            }
        }
        /* Quantifier. */
        if (r->p < r->end && (*r->p == '*' || *r->p == '+' || *r->p == '?' || *r->p == '{')) {
            size_t m = 0, n = 0;
            bool inf = false, q = true;
            if (*r->p == '*') m = 0, inf = true, r->p++;
            else if (*r->p == '+') m = 1, inf = true, r->p++;
            else if (*r->p == '?') m = 0, n = 1, r->p++;
            else if (!re_braces(r, &m, &n, &inf)) q = false;
            if (q) {
                if ((!inf && n < m)) {
                    sb_free(&atom);
                    return re_err(r, "bad {m,n} quantifier");
                }
                if (m > DS8B__JS_MAX_REPEAT || (!inf && n > DS8B__JS_MAX_REPEAT)) {
                    sb_free(&atom);
                    return js_fail(r->c, DS8B_E_LIMIT, "pattern: a repetition count passes %d", DS8B__JS_MAX_REPEAT);
                }
                if (r->p < r->end && *r->p == '?') r->p++; /* lazy: same language */
                if (r->p < r->end && (*r->p == '*' || *r->p == '+' || *r->p == '?' || *r->p == '{')) {
                    size_t m2, n2;
                    bool inf2;
                    if (*r->p != '{' || re_braces(r, &m2, &n2, &inf2)) {
                        sb_free(&atom);
                        return re_err(r, "multiple repeat");
                    }
                }
                if (!inf && n == 0) {
                    sb_free(&atom);
                    continue; /* x{0}: matches the empty string */
                }
                put_rep(&atom, m, n, inf);
            }
        }
        if (items++) sb_puts(out, " ");
        sb_putn(out, sb_str(&atom), atom.n);
        if (atom.bad) out->bad = true, out->limit = out->limit || atom.limit;
        sb_free(&atom);
    }
    if (top && !anchored_end) {
        if (items++) sb_puts(out, " ");
        use(r->c, out, P_CHAR, "json-char*");
    }
    if (items == 0) sb_puts(out, "\"\"");
    return 0;
}

static int re_alt(rex *r, bool top, sb *out) {
    sb alts = {0};
    int n = 0, rc = 0;
    while (1) {
        if (n++) sb_puts(&alts, " | ");
        rc = re_seq(r, top, &alts);
        if (rc) break;
        if (r->p < r->end && *r->p == '|') {
            r->p++;
            continue;
        }
        if (top && r->p < r->end) rc = re_err(r, "unbalanced ')'");
        break;
    }
    if (!rc) {
        if (n > 1 && !top) sb_puts(out, "( ");
        sb_putn(out, sb_str(&alts), alts.n);
        if (n > 1 && !top) sb_puts(out, " )");
        if (alts.bad) out->bad = true, out->limit = out->limit || alts.limit;
    }
    sb_free(&alts);
    return rc;
}

/* ================================================================== */
/* Integer ranges as digit grammars                                    */
/* ================================================================== */
#define JS_MAX_EXACT 9007199254740992.0 /* 2^53: doubles are exact up to here */

static int ndig(uint64_t v) {
    int d = 1;
    while (v >= 10) v /= 10, d++;
    return d;
}
static uint64_t pow10u(int d) {
    uint64_t v = 1;
    while (d-- > 0) v *= 10;
    return v;
}

/* Numbers whose n-digit strings (leading zeros allowed inside) lie in
 * [lo, hi], same length. */
static void same_len(sb *o, const char *lo, const char *hi, size_t n) {
    if (n == 0) return;
    if (lo[0] == hi[0]) {
        sb_printf(o, "\"%c\"", lo[0]);
        if (n > 1) sb_puts(o, " "), same_len(o, lo + 1, hi + 1, n - 1);
        return;
    }
    bool lo0 = true, hi9 = true;
    for (size_t i = 1; i < n; i++) lo0 = lo0 && lo[i] == '0', hi9 = hi9 && hi[i] == '9';
    char a = (char)(lo[0] + (lo0 ? 0 : 1)), b = (char)(hi[0] - (hi9 ? 0 : 1));
    char fill[24];
    int alts = 0;
    sb_puts(o, "(");
    if (!lo0) {
        memset(fill, '9', n - 1);
        sb_printf(o, " \"%c\" ", lo[0]);
        same_len(o, lo + 1, fill, n - 1);
        alts++;
    }
    if (a <= b) {
        if (alts++) sb_puts(o, " |");
        if (a == b) sb_printf(o, " \"%c\"", a);
        else sb_printf(o, " [%c-%c]", a, b);
        if (n == 2) sb_puts(o, " [0-9]");
        else if (n > 2) sb_printf(o, " [0-9]{%zu}", n - 1);
    }
    if (!hi9) {
        if (alts++) sb_puts(o, " |");
        memset(fill, '0', n - 1);
        sb_printf(o, " \"%c\" ", hi[0]);
        same_len(o, fill, hi + 1, n - 1);
    }
    sb_puts(o, " )");
}

/* Canonical decimals of a..b (b_inf: no upper bound, at most
 * max(DS8B__JS_INT_DIGITS, digits of a) digits). */
static void nonneg_range(sb *o, uint64_t a, uint64_t b, bool b_inf) {
    int da = ndig(a), db = b_inf ? (da > DS8B__JS_INT_DIGITS ? da : DS8B__JS_INT_DIGITS) : ndig(b);
    char los[24], his[24];
    sb_puts(o, "( ");
    snprintf(los, sizeof los, "%llu", (unsigned long long)a);
    uint64_t top = (db == da && !b_inf) ? b : pow10u(da) - 1;
    snprintf(his, sizeof his, "%llu", (unsigned long long)top);
    same_len(o, los, his, (size_t)da);
    if (db > da) {
        int mid_hi = b_inf ? db : db - 1; /* lengths da+1 .. mid_hi taken whole */
        if (mid_hi >= da + 1) {
            sb_puts(o, " | [1-9] [0-9]");
            put_rep(o, (size_t)da, (size_t)(mid_hi - 1), false);
        }
        if (!b_inf) {
            snprintf(los, sizeof los, "%llu", (unsigned long long)pow10u(db - 1));
            snprintf(his, sizeof his, "%llu", (unsigned long long)b);
            sb_puts(o, " | ");
            same_len(o, los, his, (size_t)db);
        }
    }
    sb_puts(o, " )");
}

/* Integers in [lo, hi]; a missing side is unbounded. */
static void int_range(sb *o, bool has_lo, int64_t lo, bool has_hi, int64_t hi) {
    int alts = 0;
    sb_puts(o, "( ");
    /* Negative part: -m with m in [-top, -lo], top = min(hi, -1). */
    int64_t top = has_hi && hi < -1 ? hi : -1;
    if (!has_lo || lo <= top) {
        sb_puts(o, "\"-\" ");
        nonneg_range(o, (uint64_t)(-top), has_lo ? (uint64_t)(-lo) : 0, !has_lo);
        alts++;
    }
    int64_t from = has_lo && lo > 0 ? lo : 0;
    if (!has_hi || hi >= from) {
        if (alts++) sb_puts(o, " | ");
        nonneg_range(o, (uint64_t)from, has_hi ? (uint64_t)hi : 0, !has_hi);
    }
    sb_puts(o, " )");
}

/* ================================================================== */
/* Keywords and types                                                  */
/* ================================================================== */
static const char *const KW_ANNOT[] = {"title", "description", "examples", "default", "$schema", "$id",
                                       "$comment", "readOnly", "writeOnly", "deprecated", "$defs",
                                       "definitions", NULL};
static const char *const KW_OK[] = {"type", "properties", "required", "additionalProperties", "items",
                                    "prefixItems", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf",
                                    "allOf", "$ref", "minLength", "maxLength", "pattern", "format", "minimum",
                                    "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};

static bool in_list(const char *const *l, const char *k) {
    for (; *l; l++)
        if (!strcmp(*l, k)) return true;
    return false;
}
static const cJSON *get(const cJSON *s, const char *k) { return cJSON_GetObjectItemCaseSensitive(s, k); }

static int check_keywords(jsc *c, const cJSON *s) {
    for (const cJSON *k = s->child; k; k = k->next) {
        if (!k->string || in_list(KW_ANNOT, k->string) || in_list(KW_OK, k->string)) continue;
        return js_fail(c, DS8B_E_UNSUPPORTED, "unsupported keyword '%.100s'", k->string);
    }
    return 0;
}

enum { T_NULL = 1, T_BOOL = 2, T_OBJECT = 4, T_ARRAY = 8, T_NUMBER = 16, T_STRING = 32, T_INTEGER = 64 };
static const char *const TNAMES[] = {"null", "boolean", "object", "array", "number", "string", "integer"};

static int parse_types(jsc *c, const cJSON *t, unsigned *mask) {
    *mask = 0;
    if (!t) return 0;
    const cJSON *one = t;
    if (cJSON_IsArray(t)) one = t->child;
    else if (!cJSON_IsString(t)) return js_fail(c, DS8B_E_INVALID, "'type' must be a string or an array of strings");
    if (!one) return js_fail(c, DS8B_E_INVALID, "'type' is an empty array");
    for (; one; one = cJSON_IsArray(t) ? one->next : NULL) {
        if (!cJSON_IsString(one)) return js_fail(c, DS8B_E_INVALID, "'type' must be a string or an array of strings");
        unsigned bit = 0;
        for (int i = 0; i < 7; i++)
            if (!strcmp(one->valuestring, TNAMES[i])) bit = 1u << i;
        if (!bit) return js_fail(c, DS8B_E_INVALID, "unknown type '%.100s'", one->valuestring);
        *mask |= bit;
    }
    if (*mask & T_NUMBER) *mask &= ~(unsigned)T_INTEGER;
    return 0;
}

/* No 'type': the types whose keywords appear (none: any value). */
static unsigned infer_types(const cJSON *s) {
    static const char *const OBJ[] = {"properties", "required", "additionalProperties", NULL};
    static const char *const ARR[] = {"items", "prefixItems", "minItems", "maxItems", NULL};
    static const char *const STR[] = {"minLength", "maxLength", "pattern", "format", NULL};
    static const char *const NUM[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};
    unsigned m = 0;
    for (const cJSON *k = s->child; k; k = k->next) {
        if (!k->string) continue;
        if (in_list(OBJ, k->string)) m |= T_OBJECT;
        if (in_list(ARR, k->string)) m |= T_ARRAY;
        if (in_list(STR, k->string)) m |= T_STRING;
        if (in_list(NUM, k->string)) m |= T_NUMBER;
    }
    return m;
}

/* ================================================================== */
/* $ref and allOf                                                      */
/* ================================================================== */
static int resolve_ref(jsc *c, const cJSON *refj, const cJSON **out) {
    if (!cJSON_IsString(refj)) return js_fail(c, DS8B_E_INVALID, "'$ref' must be a string");
    const char *ref = refj->valuestring;
    if (ref[0] != '#')
        return js_fail(c, DS8B_E_UNSUPPORTED, "$ref '%.200s': only local references ('#/...') are supported", ref);
    const char *p = ref + 1;
    if (*p && *p != '/') return js_fail(c, DS8B_E_UNSUPPORTED, "$ref '%.200s': anchors are not supported", ref);
    const cJSON *cur = c->doc;
    while (*p == '/') {
        p++;
        char key[512];
        size_t k = 0;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~') {
                if (*p == '0') ch = '~';
                else if (*p == '1') ch = '/';
                else return js_fail(c, DS8B_E_INVALID, "$ref '%.200s': bad '~' escape", ref);
                p++;
            }
            if (k + 1 >= sizeof key) return js_fail(c, DS8B_E_LIMIT, "$ref '%.200s': a segment is too long", ref);
            key[k++] = ch;
        }
        key[k] = 0;
        const cJSON *next = NULL;
        if (cJSON_IsObject(cur)) next = cJSON_GetObjectItemCaseSensitive(cur, key);
        else if (cJSON_IsArray(cur) && k > 0 && k < 10 && strspn(key, "0123456789") == k)
            next = cJSON_GetArrayItem(cur, atoi(key));
        if (!next) return js_fail(c, DS8B_E_INVALID, "$ref '%.200s' does not resolve", ref);
        cur = next;
    }
    *out = cur;
    return 0;
}

/* The $ref of a schema that is nothing but a $ref (and annotations). */
static const cJSON *pure_ref(const cJSON *s) {
    if (!cJSON_IsObject(s)) return NULL;
    const cJSON *r = NULL;
    for (const cJSON *k = s->child; k; k = k->next) {
        if (!k->string) return NULL;
        if (!strcmp(k->string, "$ref")) r = k;
        else if (!in_list(KW_ANNOT, k->string)) return NULL;
    }
    return r;
}

static size_t count_nodes(const cJSON *j, size_t cap) {
    size_t n = 1;
    for (const cJSON *k = j->child; k && n < cap; k = k->next) n += count_nodes(k, cap - n);
    return n;
}

static bool props_subset(const cJSON *a, const cJSON *b) {
    if (!cJSON_IsObject(a)) return true;
    for (const cJSON *k = a->child; k; k = k->next)
        if (!cJSON_IsObject(b) || !cJSON_GetObjectItemCaseSensitive(b, k->string)) return false;
    return true;
}

static cJSON *allof2(const cJSON *a, const cJSON *b) {
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "allOf");
    cJSON *da = cJSON_Duplicate(a, 1), *db = cJSON_Duplicate(b, 1);
    if (!o || !arr || !da || !db) {
        cJSON_Delete(o);
        cJSON_Delete(da);
        cJSON_Delete(db);
        return NULL;
    }
    cJSON_AddItemToArray(arr, da);
    cJSON_AddItemToArray(arr, db);
    return o;
}

static int merge_kw(jsc *c, cJSON *acc, const char *key, const cJSON *v) {
    int rc = js_tick(c, count_nodes(v, JS_MAX_WORK));
    if (rc) return rc;
    cJSON *ex = cJSON_GetObjectItemCaseSensitive(acc, key);
    if (!ex) {
        cJSON *d = cJSON_Duplicate(v, 1);
        if (!d) return js_nomem(c);
        cJSON_AddItemToObject(acc, key, d);
        return 0;
    }
    if (cJSON_Compare(ex, v, 1)) return 0;
    static const char *const MINS[] = {"minimum", "minLength", "minItems", "exclusiveMinimum", NULL};
    static const char *const MAXS[] = {"maximum", "maxLength", "maxItems", "exclusiveMaximum", NULL};
    cJSON *rep = NULL;
    if (!strcmp(key, "type")) {
        unsigned a, b;
        if ((rc = parse_types(c, ex, &a)) || (rc = parse_types(c, v, &b))) return rc;
        unsigned m = a & b;
        if ((a & T_NUMBER) && (b & T_INTEGER)) m |= T_INTEGER;
        if ((b & T_NUMBER) && (a & T_INTEGER)) m |= T_INTEGER;
        if (!m) return js_fail(c, DS8B_E_INVALID, "allOf: no type satisfies every branch");
        rep = cJSON_CreateArray();
        for (int i = 0; rep && i < 7; i++)
            if (m & (1u << i)) cJSON_AddItemToArray(rep, cJSON_CreateString(TNAMES[i]));
    } else if (!strcmp(key, "properties")) {
        if (!cJSON_IsObject(ex) || !cJSON_IsObject(v)) return js_fail(c, DS8B_E_INVALID, "'properties' must be an object");
        for (const cJSON *p = v->child; p; p = p->next) {
            cJSON *old = cJSON_GetObjectItemCaseSensitive(ex, p->string);
            cJSON *n = old ? allof2(old, p) : cJSON_Duplicate(p, 1);
            if (!n) return js_nomem(c);
            if (old) cJSON_ReplaceItemInObjectCaseSensitive(ex, p->string, n);
            else cJSON_AddItemToObject(ex, p->string, n);
        }
        return 0;
    } else if (!strcmp(key, "required")) {
        if (!cJSON_IsArray(ex) || !cJSON_IsArray(v)) return js_fail(c, DS8B_E_INVALID, "'required' must be an array");
        for (const cJSON *r = v->child; r; r = r->next) {
            bool have = false;
            for (const cJSON *q = ex->child; q && !have; q = q->next) have = cJSON_Compare(q, r, 1);
            if (!have) {
                cJSON *d = cJSON_Duplicate(r, 1);
                if (!d) return js_nomem(c);
                cJSON_AddItemToArray(ex, d);
            }
        }
        return 0;
    } else if (!strcmp(key, "additionalProperties") || (!strcmp(key, "items") && !cJSON_IsArray(ex) && !cJSON_IsArray(v))) {
        if (cJSON_IsFalse(ex) || cJSON_IsTrue(v)) return 0;
        rep = cJSON_IsFalse(v) || cJSON_IsTrue(ex) ? cJSON_Duplicate(v, 1) : allof2(ex, v);
    } else if (in_list(MINS, key) || in_list(MAXS, key)) {
        if (!cJSON_IsNumber(ex) || !cJSON_IsNumber(v))
            return js_fail(c, DS8B_E_UNSUPPORTED, "allOf: cannot merge two different '%s'", key);
        bool take = in_list(MINS, key) ? v->valuedouble > ex->valuedouble : v->valuedouble < ex->valuedouble;
        if (take) cJSON_SetNumberValue(ex, v->valuedouble);
        return 0;
    } else if (!strcmp(key, "enum")) {
        if (!cJSON_IsArray(ex) || !cJSON_IsArray(v)) return js_fail(c, DS8B_E_INVALID, "'enum' must be an array");
        rep = cJSON_CreateArray();
        for (const cJSON *a = ex->child; rep && a; a = a->next) {
            bool in = false;
            for (const cJSON *b = v->child; b && !in; b = b->next) in = cJSON_Compare(a, b, 1);
            if (in) cJSON_AddItemToArray(rep, cJSON_Duplicate(a, 1));
        }
        if (rep && !rep->child) {
            cJSON_Delete(rep);
            return js_fail(c, DS8B_E_INVALID, "allOf: no value is in every 'enum'");
        }
    } else {
        return js_fail(c, DS8B_E_UNSUPPORTED, "allOf: the branches give different '%s' (only equal values merge)", key);
    }
    if (!rep) return js_nomem(c);
    cJSON_ReplaceItemInObjectCaseSensitive(acc, key, rep);
    return 0;
}

/* Merges part into acc as one schema: keywords of part first, then its
 * $ref target and allOf branches (skip: a keyword left out). */
static int merge_into(jsc *c, cJSON *acc, const cJSON *part, const char *skip) {
    if (cJSON_IsTrue(part)) return 0;
    if (cJSON_IsFalse(part)) return js_fail(c, DS8B_E_INVALID, "allOf: a branch is false and matches nothing");
    if (!cJSON_IsObject(part)) return js_fail(c, DS8B_E_INVALID, "a schema must be an object or a boolean");
    int rc = check_keywords(c, part);
    if (rc) return rc;
    if (++c->depth > DS8B__JS_MAX_DEPTH) {
        c->depth--;
        return js_fail(c, DS8B_E_LIMIT, "schemas, $refs and allOf nested deeper than %d", DS8B__JS_MAX_DEPTH);
    }
    const cJSON *pa = get(part, "additionalProperties"), *aa = get(acc, "additionalProperties");
    if ((pa && !cJSON_IsTrue(pa) && !props_subset(get(acc, "properties"), get(part, "properties"))) ||
        (aa && !cJSON_IsTrue(aa) && !props_subset(get(part, "properties"), get(acc, "properties"))))
        rc = js_fail(c, DS8B_E_UNSUPPORTED,
                     "allOf: the additionalProperties of one branch would exclude properties of another");
    for (const cJSON *k = part->child; !rc && k; k = k->next) {
        if (!k->string || (skip && !strcmp(k->string, skip)) || in_list(KW_ANNOT, k->string)) continue;
        if (!strcmp(k->string, "$ref") || !strcmp(k->string, "allOf")) continue;
        rc = merge_kw(c, acc, k->string, k);
    }
    const cJSON *ref = get(part, "$ref");
    if (!rc && ref && !(skip && !strcmp(skip, "$ref"))) {
        const cJSON *t;
        rc = resolve_ref(c, ref, &t);
        if (!rc) rc = merge_into(c, acc, t, NULL);
    }
    const cJSON *all = get(part, "allOf");
    if (!rc && all && !(skip && !strcmp(skip, "allOf"))) {
        if (!cJSON_IsArray(all) || !all->child) rc = js_fail(c, DS8B_E_INVALID, "'allOf' must be a non-empty array");
        size_t i = 0;
        for (const cJSON *b = all ? all->child : NULL; !rc && b; b = b->next, i++) {
            size_t mark = path_push_i(c, "allOf", i);
            rc = merge_into(c, acc, b, NULL);
            if (!rc) path_pop(c, mark);
        }
    }
    c->depth--;
    return rc;
}

/* ================================================================== */
/* The generator                                                       */
/* ================================================================== */
static int gen(jsc *c, const cJSON *s, const char *hint, sb *out);

static bool all_finite(const cJSON *v) {
    if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) return false;
    for (const cJSON *k = v->child; k; k = k->next)
        if (!all_finite(k)) return false;
    return true;
}

static int put_value_literal(jsc *c, const cJSON *v, sb *out) {
    if (!all_finite(v)) return js_fail(c, DS8B_E_INVALID, "a number in 'enum' or 'const' is out of the double range");
    char *t = cJSON_PrintUnformatted(v);
    if (!t) return js_nomem(c);
    gbnf_literal(out, t, strlen(t));
    cJSON_free(t);
    return js_sbcheck(c, out);
}

static void hint2(char *buf, size_t cap, const char *hint, const char *sfx) {
    snprintf(buf, cap, "%.60s-%.30s", hint, sfx);
}

/* A count keyword (minLength, maxItems...): a non-negative integer. */
static int get_count(jsc *c, const cJSON *s, const char *key, size_t *v, bool *has) {
    const cJSON *j = get(s, key);
    *has = j != NULL;
    *v = 0;
    if (!j) return 0;
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble != floor(j->valuedouble))
        return js_fail(c, DS8B_E_INVALID, "'%s' must be a non-negative integer", key);
    if (j->valuedouble > DS8B__JS_MAX_REPEAT)
        return js_fail(c, DS8B_E_LIMIT, "'%s' %.0f passes the limit of %d", key, j->valuedouble, DS8B__JS_MAX_REPEAT);
    *v = (size_t)j->valuedouble;
    return 0;
}

static int gen_ref(jsc *c, const cJSON *refj, sb *out) {
    const cJSON *t;
    int rc = resolve_ref(c, refj, &t);
    for (int hops = 0; !rc; hops++) {
        const cJSON *r2 = pure_ref(t);
        if (!r2) break;
        if (hops >= DS8B__JS_MAX_REF_CHAIN)
            return js_fail(c, DS8B_E_LIMIT, "$ref chain longer than %d, or cyclic", DS8B__JS_MAX_REF_CHAIN);
        rc = resolve_ref(c, r2, &t);
    }
    if (rc) return rc;
    for (size_t i = 0; i < c->nrefs; i++)
        if (c->refs[i].target == t) {
            sb_puts(out, c->refs[i].name);
            return js_sbcheck(c, out);
        }
    const char *ref = refj->valuestring, *last = strrchr(ref, '/');
    char hint[96];
    snprintf(hint, sizeof hint, "ref-%.60s", last ? last + 1 : "root");
    size_t idx;
    if ((rc = rule_add(c, hint, NULL, &idx))) return rc;
    char name[64];
    snprintf(name, sizeof name, "%s", c->rules[idx].name);
    if (c->nrefs == c->caprefs) {
        size_t nc = c->caprefs ? c->caprefs * 2 : 8;
        js_ref *nr = ds8b__realloc(DS8B_MEM_OTHER, c->refs, nc * sizeof *nr);
        if (!nr) return js_nomem(c);
        c->refs = nr;
        c->caprefs = nc;
    }
    c->refs[c->nrefs].target = t;
    c->refs[c->nrefs].name = ds8b__strdup(DS8B_MEM_OTHER, name);
    if (!c->refs[c->nrefs].name) return js_nomem(c);
    c->nrefs++;
    /* Errors inside the target name its own path. */
    char saved[sizeof c->path];
    size_t saved_len = c->plen;
    bool saved_cut = c->path_cut;
    memcpy(saved, c->path, sizeof saved);
    snprintf(c->path, sizeof c->path, "%s", ref + 1);
    c->plen = strlen(c->path);
    sb body = {0};
    rc = gen(c, t, name, &body);
    if (!rc) rc = js_sbcheck(c, &body);
    if (!rc) rc = rule_set_body(c, idx, sb_str(&body));
    sb_free(&body);
    if (rc) return rc;
    memcpy(c->path, saved, sizeof saved);
    c->plen = saved_len;
    c->path_cut = saved_cut;
    sb_puts(out, name);
    return js_sbcheck(c, out);
}

/* ---- strings ---- */
static int gen_string(jsc *c, const cJSON *s, const char *hint, sb *out) {
    const cJSON *fmt = get(s, "format"), *pat = get(s, "pattern");
    size_t lo, hi;
    bool has_lo, has_hi;
    int rc;
    if ((rc = get_count(c, s, "minLength", &lo, &has_lo)) || (rc = get_count(c, s, "maxLength", &hi, &has_hi)))
        return rc;
    if (fmt) {
        if (!cJSON_IsString(fmt)) return js_fail(c, DS8B_E_INVALID, "'format' must be a string");
        if (pat || has_lo || has_hi)
            return js_fail(c, DS8B_E_UNSUPPORTED, "'format' together with 'pattern', 'minLength' or 'maxLength'");
        const char *f = fmt->valuestring;
        sb_puts(out, "( \"\\\"\" ");
        if (!strcmp(f, "date")) use(c, out, P_DATE, "json-date");
        else if (!strcmp(f, "time")) use(c, out, P_TIME, "json-time");
        else if (!strcmp(f, "date-time")) use(c, out, P_DATE | P_TIME, "json-date \"T\" json-time");
        else if (!strcmp(f, "uuid")) use(c, out, P_UUID, "json-uuid");
        else return js_fail(c, DS8B_E_UNSUPPORTED, "unsupported format '%.100s' (date, time, date-time, uuid are)", f);
        sb_puts(out, " \"\\\"\" )");
        return js_sbcheck(c, out);
    }
    if (pat) {
        if (!cJSON_IsString(pat)) return js_fail(c, DS8B_E_INVALID, "'pattern' must be a string");
        if (has_lo || has_hi)
            return js_fail(c, DS8B_E_UNSUPPORTED, "'pattern' together with 'minLength' or 'maxLength'");
        size_t pl = strlen(pat->valuestring);
        if (pl > DS8B__JS_MAX_PATTERN)
            return js_fail(c, DS8B_E_LIMIT, "a pattern longer than %d bytes", DS8B__JS_MAX_PATTERN);
        size_t mark = path_push(c, "pattern");
        rex r = {c, pat->valuestring, pat->valuestring, pat->valuestring + pl, 0};
        sb body = {0};
        sb_puts(&body, "\"\\\"\" ( ");
        rc = re_alt(&r, true, &body);
        sb_puts(&body, " ) \"\\\"\"");
        if (!rc) path_pop(c, mark), rc = rule_emit(c, hint, &body, out);
        sb_free(&body);
        return rc;
    }
    if (has_lo || has_hi) {
        if (has_hi && hi < lo) return js_fail(c, DS8B_E_INVALID, "maxLength < minLength: no string satisfies them");
        sb body = {0};
        c->prims |= P_CHAR;
        if (has_hi && hi == 0) sb_puts(&body, "\"\\\"\\\"\"");
        else {
            sb_puts(&body, "\"\\\"\" json-char");
            put_rep(&body, lo, hi, !has_hi);
            sb_puts(&body, " \"\\\"\"");
        }
        rc = rule_emit(c, hint, &body, out);
        sb_free(&body);
        return rc;
    }
    use(c, out, P_STRING, "json-string");
    return js_sbcheck(c, out);
}

/* ---- numbers ---- */
static int get_bound(jsc *c, const cJSON *s, bool upper, bool *has, double *v, bool *ex) {
    const char *kin = upper ? "maximum" : "minimum", *kex = upper ? "exclusiveMaximum" : "exclusiveMinimum";
    const cJSON *in = get(s, kin), *exj = get(s, kex);
    *has = false;
    *ex = false;
    if (in) {
        if (!cJSON_IsNumber(in)) return js_fail(c, DS8B_E_INVALID, "'%s' must be a number", kin);
        *has = true;
        *v = in->valuedouble;
    }
    if (exj) {
        if (cJSON_IsBool(exj)) { /* draft 4: modifies minimum/maximum */
            if (cJSON_IsTrue(exj)) {
                if (!in) return js_fail(c, DS8B_E_INVALID, "'%s': true without '%s'", kex, kin);
                *ex = true;
            }
        } else if (cJSON_IsNumber(exj)) {
            double x = exj->valuedouble;
            if (!*has || (upper ? x <= *v : x >= *v)) *has = true, *v = x, *ex = true;
        } else return js_fail(c, DS8B_E_INVALID, "'%s' must be a number", kex);
    }
    if (*has && fabs(*v) > JS_MAX_EXACT)
        return js_fail(c, DS8B_E_UNSUPPORTED, "'%s' beyond +-2^53 (not exact as a double)", upper ? kin : kex);
    return 0;
}

static int gen_number(jsc *c, const cJSON *s, bool integer, const char *hint, sb *out) {
    bool hl, hh, el, eh;
    double lo = 0, hi = 0;
    int rc;
    if ((rc = get_bound(c, s, false, &hl, &lo, &el)) || (rc = get_bound(c, s, true, &hh, &hi, &eh))) return rc;
    if (!hl && !hh) {
        if (integer) use(c, out, P_INTEGER, "json-integer");
        else use(c, out, P_NUMBER, "json-number");
        return js_sbcheck(c, out);
    }
    /* Integers in [L, H]. */
    int64_t L = hl ? (int64_t)(el ? floor(lo) + 1 : ceil(lo)) : 0;
    int64_t H = hh ? (int64_t)(eh ? ceil(hi) - 1 : floor(hi)) : 0;
    bool ints = !(hl && hh && L > H);
    sb body = {0};
    int alts = 0;
    if (ints) int_range(&body, hl, L, hh, H), alts++;
    if (!integer) {
        /* Non-integers I.F (F not zero) lie in (I, I+1): allowed when
         * I >= lo and I + 1 <= hi; -I.F lies in (-(I+1), -I). */
        int64_t pa = hl ? (int64_t)ceil(lo) : 0, pb = hh ? (int64_t)floor(hi) - 1 : 0;
        if (pa < 0) pa = 0;
        if (!hh || pb >= pa) {
            if (alts++) sb_puts(&body, " | ");
            nonneg_range(&body, (uint64_t)pa, hh ? (uint64_t)pb : 0, !hh);
            sb_puts(&body, " json-frac");
        }
        int64_t na = hh ? (int64_t)ceil(-hi) : 0, nb = hl ? (int64_t)floor(-lo) - 1 : 0;
        if (na < 0) na = 0;
        if (!hl || nb >= na) {
            if (alts++) sb_puts(&body, " | ");
            sb_puts(&body, "\"-\" ");
            nonneg_range(&body, (uint64_t)na, hl ? (uint64_t)nb : 0, !hl);
            sb_puts(&body, " json-frac");
        }
        c->prims |= P_FRAC;
    }
    if (!alts) rc = js_fail(c, DS8B_E_INVALID, "no %s satisfies the bounds", integer ? "integer" : "number");
    else rc = rule_emit(c, hint, &body, out);
    sb_free(&body);
    return rc;
}

/* ---- objects ---- */
typedef struct jprop {
    const char *name;
    const cJSON *schema; /* NULL: any value */
    bool req;
    size_t req_index;
    char *kv; /* rule name */
} jprop;

/* Keys that are none of names[0..n): a trie over their code points, a
 * rule per node. Only raw characters are allowed in such keys (no
 * escapes), so an escape cannot spell a declared name. */
typedef struct tnode {
    uint32_t cp;
    int32_t child, next;
    bool term;
    size_t rule;
} tnode;

static int gen_notin_key(jsc *c, const jprop *pr, size_t n, const char *hint, sb *out) {
    size_t cap = 1, nn = 1;
    for (size_t i = 0; i < n; i++) cap += strlen(pr[i].name);
    if (cap > DS8B__JS_MAX_RULES) return js_fail(c, DS8B_E_LIMIT, "property names too long to exclude from additionalProperties");
    tnode *t = ds8b__calloc(DS8B_MEM_OTHER, cap, sizeof *t);
    if (!t) return js_nomem(c);
    t[0].child = t[0].next = -1;
    for (size_t i = 0; i < n; i++) {
        const char *p = pr[i].name, *end = p + strlen(p);
        int32_t cur = 0;
        bool ok = true;
        while (p < end) {
            uint32_t cp;
            size_t k = utf8_dec(p, end, &cp);
            if (!k) {
                ok = false; /* cannot be written with valid UTF-8: no clash */
                break;
            }
            p += k;
            int32_t ch = t[cur].child;
            while (ch >= 0 && t[ch].cp != cp) ch = t[ch].next;
            if (ch < 0) {
                ch = (int32_t)nn++;
                t[ch].cp = cp;
                t[ch].child = -1;
                t[ch].next = t[cur].child;
                t[cur].child = ch;
            }
            cur = ch;
        }
        if (ok) t[cur].term = true;
    }
    int rc = 0;
    char h[96];
    hint2(h, sizeof h, hint, "key");
    for (size_t i = 0; i < nn && !rc; i++) rc = rule_add(c, h, NULL, &t[i].rule);
    c->prims |= P_KCHAR;
    for (size_t i = 0; i < nn && !rc; i++) {
        sb b = {0};
        int alts = 0;
        sb_puts(&b, "( [^\"\\\\\\x00-\\x1F");
        for (int32_t ch = t[i].child; ch >= 0; ch = t[ch].next)
            if (t[ch].cp >= 0x20 && t[ch].cp != '"' && t[ch].cp != '\\') class_char(&b, t[ch].cp);
        sb_puts(&b, "] json-kchar*");
        alts++;
        for (int32_t ch = t[i].child; ch >= 0; ch = t[ch].next) {
            if (t[ch].cp < 0x20 || t[ch].cp == '"' || t[ch].cp == '\\') continue;
            sb lit = {0};
            put_utf8(&lit, t[ch].cp);
            sb_puts(&b, " | ");
            gbnf_literal(&b, sb_str(&lit), lit.n);
            sb_free(&lit);
            sb_printf(&b, " %s", c->rules[t[ch].rule].name);
            alts++;
        }
        sb_puts(&b, t[i].term ? " )" : " )?");
        rc = js_sbcheck(c, &b);
        if (!rc) rc = rule_set_body(c, t[i].rule, sb_str(&b));
        sb_free(&b);
    }
    if (!rc) sb_printf(out, "\"\\\"\" %s \"\\\"\"", c->rules[t[0].rule].name);
    ds8b__free(t);
    return rc ? rc : js_sbcheck(c, out);
}

static int gen_object(jsc *c, const cJSON *s, const char *hint, sb *out) {
    const cJSON *props = get(s, "properties"), *req = get(s, "required"), *addl = get(s, "additionalProperties");
    if (props && !cJSON_IsObject(props)) return js_fail(c, DS8B_E_INVALID, "'properties' must be an object");
    if (req && !cJSON_IsArray(req)) return js_fail(c, DS8B_E_INVALID, "'required' must be an array of strings");
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
        if (!cJSON_IsString(r)) return js_fail(c, DS8B_E_INVALID, "'required' must be an array of strings");
    if (addl && !cJSON_IsBool(addl) && !cJSON_IsObject(addl))
        return js_fail(c, DS8B_E_INVALID, "'additionalProperties' must be a schema");
    if (!props && !req && (!addl || cJSON_IsTrue(addl))) {
        use(c, out, P_OBJECT, "json-object");
        return js_sbcheck(c, out);
    }
    /* amode: 0 no other keys, 1 any, 2 a schema. Without the keyword, an
     * object with 'properties' gets no other keys (see the docs). */
    int amode = addl ? (cJSON_IsFalse(addl) ? 0 : cJSON_IsTrue(addl) ? 1 : 2) : (props ? 0 : 1);
    size_t n = (size_t)cJSON_GetArraySize(props) + (size_t)cJSON_GetArraySize(req);
    if (n > DS8B__JS_MAX_RULES) return js_fail(c, DS8B_E_LIMIT, "too many properties");
    jprop *pr = ds8b__calloc(DS8B_MEM_OTHER, n + 1, sizeof *pr);
    char **rest = ds8b__calloc(DS8B_MEM_OTHER, n + 2, sizeof *rest);
    char **first = ds8b__calloc(DS8B_MEM_OTHER, n + 2, sizeof *first);
    bool *nf = ds8b__calloc(DS8B_MEM_OTHER, n + 2, sizeof *nf);
    int rc = 0;
    size_t k = 0;
    char h[128], *addkv = NULL;
    sb body = {0}, nm = {0};
    if (!pr || !rest || !first || !nf) {
        rc = js_nomem(c);
        goto done;
    }
    c->prims |= P_WS;
    for (const cJSON *p = props ? props->child : NULL; p; p = p->next) {
        bool isreq = false;
        size_t ri = 0;
        for (const cJSON *r = req ? req->child : NULL; r && !isreq; r = r->next, ri++)
            isreq = !strcmp(r->valuestring, p->string);
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++) dup = !strcmp(pr[j].name, p->string);
        if (dup) continue;
        if (cJSON_IsFalse(p)) {
            if (isreq) {
                size_t mark = path_push(c, "properties");
                path_push(c, p->string);
                rc = js_fail(c, DS8B_E_INVALID, "a required property whose schema is false");
                path_pop(c, mark);
                goto done;
            }
            continue;
        }
        pr[k++] = (jprop){p->string, p, isreq, 0, NULL};
    }
    size_t ri = 0;
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next, ri++) {
        bool have = false;
        for (size_t j = 0; j < k && !have; j++) have = !strcmp(pr[j].name, r->valuestring);
        if (!have) pr[k++] = (jprop){r->valuestring, NULL, true, ri, NULL};
    }
    for (size_t i = 0; i < k && !rc; i++) {
        sb_free(&body);
        sb_free(&nm);
        sb q = {0};
        json_quote(&q, pr[i].name);
        gbnf_literal(&body, sb_str(&q), q.n);
        sb_free(&q);
        sb_puts(&body, " ws \":\" ws ");
        hint2(h, sizeof h, hint, pr[i].name);
        if (pr[i].schema) {
            size_t mark = path_push(c, "properties");
            path_push(c, pr[i].name);
            rc = gen(c, pr[i].schema, h, &body);
            if (rc) goto done;
            path_pop(c, mark);
        } else use(c, &body, P_VALUE, "json-value");
        char hk[160];
        hint2(hk, sizeof hk, h, "kv");
        if ((rc = rule_emit(c, hk, &body, &nm))) goto done;
        if (!(pr[i].kv = ds8b__strdup(DS8B_MEM_OTHER, sb_str(&nm)))) rc = js_nomem(c);
    }
    if (rc) goto done;
    if (amode) {
        sb_free(&body);
        sb_free(&nm);
        if (k > 0) rc = gen_notin_key(c, pr, k, hint, &body);
        else use(c, &body, P_STRING, "json-string");
        if (rc) goto done;
        sb_puts(&body, " ws \":\" ws ");
        hint2(h, sizeof h, hint, "additional");
        if (amode == 2) {
            size_t mark = path_push(c, "additionalProperties");
            if ((rc = gen(c, addl, h, &body))) goto done;
            path_pop(c, mark);
        } else use(c, &body, P_VALUE, "json-value");
        hint2(h, sizeof h, hint, "additional-kv");
        if ((rc = rule_emit(c, h, &body, &nm))) goto done;
        if (!(addkv = ds8b__strdup(DS8B_MEM_OTHER, sb_str(&nm)))) {
            rc = js_nomem(c);
            goto done;
        }
    }
    bool all_req = true;
    for (size_t i = 0; i < k; i++) all_req = all_req && pr[i].req;
    sb_free(&body);
    if (k == 0 && !amode) {
        sb_puts(&body, "\"{\" ws \"}\"");
    } else if (all_req && !amode) {
        sb_puts(&body, "\"{\" ws ");
        for (size_t i = 0; i < k; i++) sb_printf(&body, "%s%s", i ? " ws \",\" ws " : "", pr[i].kv);
        sb_puts(&body, " ws \"}\"");
    } else {
        /* rest[i]: items i..k-1 (and additional ones), each after a comma;
         * first[i]: the same where the first one present has no comma. */
        if (amode) {
            sb b = {0};
            sb_printf(&b, "( ws \",\" ws %s )*", addkv);
            hint2(h, sizeof h, hint, "more");
            sb_free(&nm);
            rc = rule_emit(c, h, &b, &nm);
            sb_free(&b);
            if (rc || !(rest[k] = ds8b__strdup(DS8B_MEM_OTHER, sb_str(&nm)))) goto oom_or_rc;
            sb_printf(&b, "%s %s", addkv, rest[k]);
            hint2(h, sizeof h, hint, "from-additional");
            sb_free(&nm);
            rc = rule_emit(c, h, &b, &nm);
            sb_free(&b);
            if (rc || !(first[k] = ds8b__strdup(DS8B_MEM_OTHER, sb_str(&nm)))) goto oom_or_rc;
        }
        nf[0] = true;
        for (size_t i = 0; i < k; i++) nf[i + 1] = nf[i] && !pr[i].req;
        for (size_t i = k; i-- > 0;) {
            const char *r = rest[i + 1] ? rest[i + 1] : "";
            char sfx[32];
            if (i >= 1) {
                sb b = {0};
                if (pr[i].req) sb_printf(&b, "ws \",\" ws %s", pr[i].kv);
                else sb_printf(&b, "( ws \",\" ws %s )?", pr[i].kv);
                if (*r) sb_printf(&b, " %s", r);
                snprintf(sfx, sizeof sfx, "rest-%zu", i);
                hint2(h, sizeof h, hint, sfx);
                sb_free(&nm);
                rc = rule_emit(c, h, &b, &nm);
                sb_free(&b);
                if (rc || !(rest[i] = ds8b__strdup(DS8B_MEM_OTHER, sb_str(&nm)))) goto oom_or_rc;
            }
            if (nf[i]) {
                sb b = {0};
                sb_printf(&b, "%s%s%s", pr[i].kv, *r ? " " : "", r);
                if (!pr[i].req && first[i + 1]) sb_printf(&b, " | %s", first[i + 1]);
                snprintf(sfx, sizeof sfx, "from-%zu", i);
                hint2(h, sizeof h, hint, sfx);
                sb_free(&nm);
                rc = rule_emit(c, h, &b, &nm);
                sb_free(&b);
                if (rc || !(first[i] = ds8b__strdup(DS8B_MEM_OTHER, sb_str(&nm)))) goto oom_or_rc;
            }
        }
        if (first[0]) sb_printf(&body, "\"{\" ws %s ws \"}\"", first[0]);
        bool any_req = false;
        for (size_t i = 0; i < k; i++) any_req = any_req || pr[i].req;
        if (!any_req) sb_printf(&body, "%s\"{\" ws \"}\"", first[0] ? " | " : "");
    }
    rc = rule_emit(c, hint, &body, out);
    goto done;
oom_or_rc:
    if (!rc) rc = js_nomem(c);
done:
    sb_free(&body);
    sb_free(&nm);
    for (size_t i = 0; pr && i < n + 1; i++) ds8b__free(pr[i].kv);
    for (size_t i = 0; rest && first && i < n + 2; i++) ds8b__free(rest[i]), ds8b__free(first[i]);
    ds8b__free(pr);
    ds8b__free(rest);
    ds8b__free(first);
    ds8b__free(nf);
    ds8b__free(addkv);
    return rc;
}

/* ---- arrays ---- */
static int gen_array(jsc *c, const cJSON *s, const char *hint, sb *out) {
    const cJSON *items = get(s, "items"), *prefix = get(s, "prefixItems");
    size_t mn, mx;
    bool has_mn, has_mx;
    int rc;
    if ((rc = get_count(c, s, "minItems", &mn, &has_mn)) || (rc = get_count(c, s, "maxItems", &mx, &has_mx)))
        return rc;
    const char *prefix_key = "prefixItems";
    if (cJSON_IsArray(items)) { /* draft 4 tuples */
        if (prefix) return js_fail(c, DS8B_E_INVALID, "'items' as an array together with 'prefixItems'");
        prefix = items;
        items = NULL;
        prefix_key = "items";
    }
    if (prefix && !cJSON_IsArray(prefix)) return js_fail(c, DS8B_E_INVALID, "'prefixItems' must be an array of schemas");
    if (items && !cJSON_IsBool(items) && !cJSON_IsObject(items))
        return js_fail(c, DS8B_E_INVALID, "'items' must be a schema");
    if (!prefix && !has_mn && !has_mx && (!items || cJSON_IsTrue(items))) {
        use(c, out, P_ARRAY, "json-array");
        return js_sbcheck(c, out);
    }
    size_t np = (size_t)cJSON_GetArraySize(prefix);
    bool extra = !cJSON_IsFalse(items);
    bool inf = !has_mx;
    size_t maxe = has_mx ? mx : 0;
    if (!extra) {
        if (inf || maxe > np) maxe = np;
        inf = false;
    }
    if (!inf && mn > maxe) return js_fail(c, DS8B_E_INVALID, "no array length satisfies minItems/maxItems (and items)");
    c->prims |= P_WS;
    sb body = {0}, x = {0};
    char h[128];
    if (extra) {
        hint2(h, sizeof h, hint, "item");
        if (items && !cJSON_IsTrue(items)) {
            size_t mark = path_push(c, "items");
            rc = gen(c, items, h, &x);
            if (!rc) path_pop(c, mark);
        } else use(c, &x, P_VALUE, "json-value");
        if (!rc) rc = js_sbcheck(c, &x);
    }
    size_t used = inf || maxe > np ? np : maxe; /* prefix items that can appear */
    char **el = NULL;
    if (!rc && used) {
        el = ds8b__calloc(DS8B_MEM_OTHER, used, sizeof *el);
        if (!el) rc = js_nomem(c);
        size_t i = 0;
        for (const cJSON *p = prefix->child; !rc && p && i < used; p = p->next, i++) {
            sb e1 = {0};
            char sfx[32];
            snprintf(sfx, sizeof sfx, "%zu", i);
            hint2(h, sizeof h, hint, sfx);
            size_t mark = path_push_i(c, prefix_key, i);
            rc = gen(c, p, h, &e1);
            if (!rc) rc = js_sbcheck(c, &e1);
            if (!rc) path_pop(c, mark);
            if (!rc && !(el[i] = ds8b__strdup(DS8B_MEM_OTHER, sb_str(&e1)))) rc = js_nomem(c);
            sb_free(&e1);
        }
    }
    if (!rc) {
        /* Tail: elements after the prefix. */
        sb tail = {0};
        if (extra && (used == np) && (inf || maxe > np)) {
            size_t lo = mn > np ? mn - np : 0;
            if (np == 0) { /* the first element has no comma */
                lo = lo > 0 ? lo - 1 : 0;
                sb_printf(&tail, "( ws \",\" ws %s )", sb_str(&x));
                put_rep(&tail, lo, inf ? 0 : maxe - 1, inf);
            } else {
                sb_printf(&tail, "( ws \",\" ws %s )", sb_str(&x));
                put_rep(&tail, lo, inf ? 0 : maxe - np, inf);
            }
            if (!inf && np == 0 && maxe == 1) sb_free(&tail);
        }
        sb seq = {0};
        if (np == 0) {
            if (inf || maxe >= 1) sb_printf(&seq, "%s%s%s", sb_str(&x), tail.n ? " " : "", sb_str(&tail));
        } else if (used > 0) {
            /* S_j = elements j.. each after a comma; optional past minItems. */
            sb cur = {0};
            sb_putn(&cur, sb_str(&tail), tail.n);
            for (size_t j = used; j-- > 1;) {
                sb nx = {0};
                if (j < mn) sb_printf(&nx, "ws \",\" ws %s%s%s", el[j], cur.n ? " " : "", sb_str(&cur));
                else sb_printf(&nx, "( ws \",\" ws %s%s%s )?", el[j], cur.n ? " " : "", sb_str(&cur));
                sb_free(&cur);
                cur = nx;
            }
            sb_printf(&seq, "%s%s%s", el[0], cur.n ? " " : "", sb_str(&cur));
            sb_free(&cur);
        }
        if (seq.n) sb_printf(&body, "\"[\" ws %s ws \"]\"", sb_str(&seq));
        if (mn == 0) sb_printf(&body, "%s\"[\" ws \"]\"", seq.n ? " | " : "");
        sb_free(&seq);
        sb_free(&tail);
        rc = rule_emit(c, hint, &body, out);
    }
    for (size_t i = 0; el && i < used; i++) ds8b__free(el[i]);
    ds8b__free(el);
    sb_free(&body);
    sb_free(&x);
    return rc;
}

static int gen_typed(jsc *c, const cJSON *s, unsigned t, const char *hint, sb *out) {
    switch (t) {
    case T_NULL: use(c, out, P_NULL, "json-null"); return js_sbcheck(c, out);
    case T_BOOL: use(c, out, P_BOOL, "json-boolean"); return js_sbcheck(c, out);
    case T_STRING: return gen_string(c, s, hint, out);
    case T_INTEGER: return gen_number(c, s, true, hint, out);
    case T_NUMBER: return gen_number(c, s, false, hint, out);
    case T_OBJECT: return gen_object(c, s, hint, out);
    case T_ARRAY: return gen_array(c, s, hint, out);
    }
    return ds8b__seterr(c->e, DS8B_E_INTERNAL, "json schema: bad type bit");
}

static bool has_siblings(const cJSON *s, const char *k1, const char *k2) {
    for (const cJSON *k = s->child; k; k = k->next) {
        if (!k->string || in_list(KW_ANNOT, k->string)) continue;
        if (!strcmp(k->string, k1) || (k2 && !strcmp(k->string, k2))) continue;
        return true;
    }
    return false;
}

static int gen_inner(jsc *c, const cJSON *s, const char *hint, sb *out) {
    int rc = js_tick(c, 1);
    if (rc) return rc;
    if (cJSON_IsTrue(s) || (cJSON_IsObject(s) && !has_siblings(s, "$defs", "definitions"))) {
        if (cJSON_IsObject(s) && (rc = check_keywords(c, s))) return rc;
        use(c, out, P_VALUE, "json-value");
        return js_sbcheck(c, out);
    }
    if (cJSON_IsFalse(s)) return js_fail(c, DS8B_E_INVALID, "the schema false matches nothing");
    if (!cJSON_IsObject(s)) return js_fail(c, DS8B_E_INVALID, "a schema must be an object or a boolean");
    if ((rc = check_keywords(c, s))) return rc;
    const cJSON *ref = get(s, "$ref");
    if (ref && !has_siblings(s, "$ref", NULL)) return gen_ref(c, ref, out);
    if (ref || get(s, "allOf")) {
        cJSON *m = keep(c, cJSON_CreateObject());
        if (!m) return js_nomem(c);
        if ((rc = merge_into(c, m, s, NULL))) return rc;
        return gen(c, m, hint, out);
    }
    const cJSON *any = get(s, "anyOf"), *one = get(s, "oneOf");
    if (any && one) return js_fail(c, DS8B_E_UNSUPPORTED, "'anyOf' together with 'oneOf'");
    if (any || one) {
        const cJSON *arr = any ? any : one;
        const char *key = any ? "anyOf" : "oneOf";
        if (!cJSON_IsArray(arr) || !arr->child) return js_fail(c, DS8B_E_INVALID, "'%s' must be a non-empty array", key);
        bool sib = has_siblings(s, key, NULL);
        sb body = {0};
        size_t i = 0;
        for (const cJSON *b = arr->child; b; b = b->next, i++) {
            char sfx[32], h[128];
            snprintf(sfx, sizeof sfx, "%zu", i);
            hint2(h, sizeof h, hint, sfx);
            if (i) sb_puts(&body, " | ");
            size_t mark = path_push_i(c, key, i);
            const cJSON *br = b;
            if (sib) {
                cJSON *m = keep(c, cJSON_CreateObject());
                if (!m) rc = js_nomem(c);
                if (!rc) rc = merge_into(c, m, s, key);
                if (!rc) rc = merge_into(c, m, b, NULL);
                br = m;
            }
            if (!rc) rc = gen(c, br, h, &body);
            if (rc) {
                sb_free(&body);
                return rc;
            }
            path_pop(c, mark);
        }
        rc = rule_emit(c, hint, &body, out);
        sb_free(&body);
        return rc;
    }
    const cJSON *cst = get(s, "const");
    if (cst) return put_value_literal(c, cst, out);
    const cJSON *en = get(s, "enum");
    if (en) {
        if (!cJSON_IsArray(en) || !en->child) return js_fail(c, DS8B_E_INVALID, "'enum' must be a non-empty array");
        sb_puts(out, "( ");
        for (const cJSON *v = en->child; v && !rc; v = v->next) {
            if (v != en->child) sb_puts(out, " | ");
            rc = put_value_literal(c, v, out);
        }
        sb_puts(out, " )");
        return rc ? rc : js_sbcheck(c, out);
    }
    unsigned types;
    if ((rc = parse_types(c, get(s, "type"), &types))) return rc;
    if (!types) types = infer_types(s);
    if (!types) {
        use(c, out, P_VALUE, "json-value");
        return js_sbcheck(c, out);
    }
    int nt = __builtin_popcount(types);
    if (nt == 1) return gen_typed(c, s, types, hint, out);
    sb body = {0};
    int k = 0;
    for (int i = 0; i < 7 && !rc; i++) {
        if (!(types & (1u << i))) continue;
        char h[128];
        hint2(h, sizeof h, hint, TNAMES[i]);
        if (k++) sb_puts(&body, " | ");
        rc = gen_typed(c, s, 1u << i, h, &body);
    }
    if (!rc) rc = rule_emit(c, hint, &body, out);
    sb_free(&body);
    return rc;
}

static int gen(jsc *c, const cJSON *s, const char *hint, sb *out) {
    if (++c->depth > DS8B__JS_MAX_DEPTH) {
        c->depth--;
        return js_fail(c, DS8B_E_LIMIT, "schemas nested deeper than %d", DS8B__JS_MAX_DEPTH);
    }
    int rc = gen_inner(c, s, hint, out);
    c->depth--;
    return rc;
}

/* ================================================================== */
/* Entry points                                                        */
/* ================================================================== */
static void jsc_free(jsc *c) {
    for (size_t i = 0; i < c->nrules; i++) ds8b__free(c->rules[i].name), ds8b__free(c->rules[i].body);
    ds8b__free(c->rules);
    for (size_t i = 0; i < c->nrefs; i++) ds8b__free(c->refs[i].name);
    ds8b__free(c->refs);
    for (size_t i = 0; i < c->ngarbage; i++) cJSON_Delete(c->garbage[i]);
    ds8b__free(c->garbage);
}

/* Prints root, the rules, then the shared rules used. */
static int assemble(jsc *c, const char *top, char **gbnf, size_t *gbnf_len) {
    sb o = {0};
    size_t skip = (size_t)-1;
    for (size_t i = 0; i < c->nrules; i++)
        if (!strcmp(c->rules[i].name, "schema") && !strcmp(top, "schema")) skip = i;
    sb_puts(&o, "root ::= ");
    sb_puts(&o, skip != (size_t)-1 ? (c->rules[skip].body ? c->rules[skip].body : "") : top);
    sb_puts(&o, "\n");
    for (size_t i = 0; i < c->nrules; i++) {
        if (i == skip) continue;
        if (!c->rules[i].body) {
            sb_free(&o);
            return ds8b__seterr(c->e, DS8B_E_INTERNAL, "json schema: rule %s has no body", c->rules[i].name);
        }
        sb_puts(&o, c->rules[i].name);
        sb_puts(&o, " ::= ");
        sb_puts(&o, c->rules[i].body);
        sb_puts(&o, "\n");
    }
    unsigned p = c->prims, prev = 0;
    while (p != prev) {
        prev = p;
        for (size_t i = 0; i < sizeof PRIMS / sizeof PRIMS[0]; i++)
            if (p & PRIMS[i].bit) p |= PRIMS[i].needs;
    }
    for (size_t i = 0; i < sizeof PRIMS / sizeof PRIMS[0]; i++)
        if (p & PRIMS[i].bit) sb_puts(&o, PRIMS[i].text);
    int rc = js_sbcheck(c, &o);
    if (rc) {
        sb_free(&o);
        return rc;
    }
    *gbnf = o.p;
    if (gbnf_len) *gbnf_len = o.n;
    return 0;
}

int ds8b__json_schema_to_gbnf(const char *json, size_t len, char **gbnf, size_t *gbnf_len, ds8b__err *e) {
    if (!gbnf || (!json && len)) return ds8b__seterr(e, DS8B_E_INVALID, "json schema: NULL argument");
    *gbnf = NULL;
    if (gbnf_len) *gbnf_len = 0;
    if (len > DS8B__JS_MAX_INPUT)
        return ds8b__seterr(e, DS8B_E_LIMIT, "json schema: %zu bytes, more than the limit of %u", len,
                            (unsigned)DS8B__JS_MAX_INPUT);
    /* JSON text is UTF-8; the grammar's literals must be too. */
    for (const char *p = json, *end = json ? json + len : NULL; p && p < end;) {
        uint32_t cp;
        size_t k = utf8_dec(p, end, &cp);
        if (!k) return ds8b__seterr(e, DS8B_E_FORMAT, "json schema: not valid UTF-8 at byte %zu", (size_t)(p - json));
        p += k;
    }
    cJSON *doc = json ? cJSON_ParseWithLength(json, len) : NULL;
    if (!doc) return ds8b__seterr(e, DS8B_E_FORMAT, "json schema: not valid JSON");
    jsc c = {.doc = doc, .e = e};
    sb top = {0};
    int rc = gen(&c, doc, "schema", &top);
    if (!rc) rc = js_sbcheck(&c, &top);
    if (!rc) rc = assemble(&c, sb_str(&top), gbnf, gbnf_len);
    sb_free(&top);
    jsc_free(&c);
    cJSON_Delete(doc);
    return rc;
}

int ds8b__json_any_gbnf(char **gbnf, size_t *gbnf_len, ds8b__err *e) {
    return ds8b__json_schema_to_gbnf("true", 4, gbnf, gbnf_len, e);
}
