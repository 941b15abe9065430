/*
 * gbnf.c -- the GBNF compiler: llama.cpp's grammar format parsed into a
 * flat array of elements, with repetitions expanded into generated rules,
 * then checked (undefined rules, missing or empty root, left recursion).
 *
 * Compiled form (see gram_impl.h): every rule is a run of elements
 *     alt_1 ALT alt_2 ALT ... alt_k END
 * where each alternative is a sequence of CHAR (one code point out of a
 * sorted, merged set of ranges, or outside it when negated) and REF (another
 * rule). Repetitions become rules of their own:
 *     x*      ->  r ::= x r |            (right recursion: no stack growth)
 *     x+      ->  x r
 *     x?      ->  r ::= x |
 *     x{m,n}  ->  x..x (m times) r1,  r1 ::= x r2 | , ... (n-m levels)
 *     x{m,}   ->  x..x (m times) r,   r ::= x r |
 * A repeated item of more than one element is first wrapped in a rule, so
 * that the element count grows linearly in the repetition count.
 */
#include "grammar/gram_impl.h"

#include "mem.h"

#include <stdio.h>
#include <stdlib.h>

/* ================================================================== */
/* Growable arrays                                                     */
/* ================================================================== */
static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) return false;
        nc *= 2;
    }
    size_t bytes;
    if (!ds8b__mul_ok(nc, elem, &bytes)) return false;
    void *q = ds8b__realloc(DS8B_MEM_OTHER, *p, bytes);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

typedef struct elvec {
    ds8b__gel *v;
    size_t n, cap;
} elvec;

typedef struct prule {
    char *name;        /* NULL for generated rules */
    size_t name_len;
    elvec el;          /* alternatives, ALT-separated, no END yet */
    bool defined;
    int line, col;     /* definition (or first use) */
    int use_line, use_col;
    uint32_t parent;   /* the named rule a generated rule came from */
} prule;

typedef struct parser {
    const char *src;
    size_t len, pos;
    int line;
    size_t line_start;
    int depth;
    prule *rules;
    size_t n_rules, cap_rules;
    uint32_t *ranges;          /* pairs lo, hi */
    size_t n_ranges, cap_ranges;
    size_t total_el;
    uint32_t *hash;            /* name -> rule id + 1, open addressing */
    size_t hash_cap;
    uint32_t cur_rule;         /* the named rule being parsed */
    ds8b__err *e;
    int rc;
} parser;

static int col_of(const parser *p, size_t pos) { return (int)(pos - p->line_start) + 1; }

static int perr_at(parser *p, size_t pos, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int perr_at(parser *p, size_t pos, int code, const char *fmt, ...) {
    if (p->rc) return p->rc;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* pos may be on a later line than p->line only for errors at pos; we
     * always report at the parser's current line */
    ds8b__seterr(p->e, code, "line %d, column %d: %s", p->line, col_of(p, pos), msg);
    p->rc = code;
    return code;
}
#define PERR(...) perr_at(p, p->pos, DS8B_E_GRAMMAR, __VA_ARGS__)
#define PNOMEM() perr_at(p, p->pos, DS8B_E_NOMEM, "out of memory compiling the grammar")

static int el_push(parser *p, elvec *v, uint8_t type, uint32_t a, uint32_t b) {
    if (p->total_el >= DS8B__GRAMMAR_MAX_ELEMS)
        return perr_at(p, p->pos, DS8B_E_LIMIT, "the grammar expands to more than %u elements", DS8B__GRAMMAR_MAX_ELEMS);
    if (!grow((void **)&v->v, &v->cap, v->n + 1, sizeof *v->v)) return PNOMEM();
    v->v[v->n].type = type;
    v->v[v->n].a = a;
    v->v[v->n].b = b;
    v->n++;
    p->total_el++;
    return 0;
}

/* ================================================================== */
/* Rules and names                                                     */
/* ================================================================== */
static uint64_t hash_name(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

static int new_rule(parser *p, uint32_t *id) {
    if (p->n_rules >= DS8B__GRAMMAR_MAX_RULES)
        return perr_at(p, p->pos, DS8B_E_LIMIT, "the grammar needs more than %u rules", DS8B__GRAMMAR_MAX_RULES);
    if (!grow((void **)&p->rules, &p->cap_rules, p->n_rules + 1, sizeof *p->rules)) return PNOMEM();
    prule *r = &p->rules[p->n_rules];
    memset(r, 0, sizeof *r);
    r->line = p->line;
    r->col = col_of(p, p->pos);
    r->parent = p->cur_rule;
    *id = (uint32_t)p->n_rules++;
    return 0;
}

static int rehash(parser *p) {
    size_t nc = p->hash_cap ? p->hash_cap * 2 : 256;
    uint32_t *h = ds8b__calloc(DS8B_MEM_OTHER, nc, sizeof *h);
    if (!h) return PNOMEM();
    for (size_t i = 0; i < p->n_rules; i++) {
        if (!p->rules[i].name) continue;
        size_t j = hash_name(p->rules[i].name, p->rules[i].name_len) & (nc - 1);
        while (h[j]) j = (j + 1) & (nc - 1);
        h[j] = (uint32_t)i + 1;
    }
    ds8b__free(p->hash);
    p->hash = h;
    p->hash_cap = nc;
    return 0;
}

/* The rule named s[0..n), created (undefined) on first sight. */
static int rule_by_name(parser *p, const char *s, size_t n, uint32_t *id) {
    if (p->hash_cap == 0 || (p->n_rules + 1) * 2 > p->hash_cap)
        if (rehash(p)) return p->rc;
    size_t j = hash_name(s, n) & (p->hash_cap - 1);
    while (p->hash[j]) {
        prule *r = &p->rules[p->hash[j] - 1];
        if (r->name_len == n && memcmp(r->name, s, n) == 0) { *id = p->hash[j] - 1; return 0; }
        j = (j + 1) & (p->hash_cap - 1);
    }
    uint32_t nid;
    if (new_rule(p, &nid)) return p->rc;
    prule *r = &p->rules[nid];
    r->name = ds8b__strndup(DS8B_MEM_OTHER, s, n);
    if (!r->name) return PNOMEM();
    r->name_len = n;
    r->parent = nid;
    p->hash[j] = nid + 1;
    *id = nid;
    return 0;
}

/* ================================================================== */
/* Lexing                                                              */
/* ================================================================== */
static bool at_end(const parser *p) { return p->pos >= p->len; }
static int peek(const parser *p) { return p->pos < p->len ? (unsigned char)p->src[p->pos] : -1; }
static int peek_at(const parser *p, size_t k) { return p->pos + k < p->len ? (unsigned char)p->src[p->pos + k] : -1; }

static void newline(parser *p) {
    p->pos++;
    p->line++;
    p->line_start = p->pos;
}

/* Skips blanks and comments; newlines only when nl_ok. */
static void skip_space(parser *p, bool nl_ok) {
    while (!at_end(p)) {
        int c = peek(p);
        if (c == ' ' || c == '\t') p->pos++;
        else if (c == '#') {
            while (!at_end(p) && peek(p) != '\n' && peek(p) != '\r') p->pos++;
        } else if (nl_ok && (c == '\n' || c == '\r')) {
            if (c == '\r' && peek_at(p, 1) == '\n') p->pos++;
            newline(p);
        } else break;
    }
}

static bool is_word(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes one UTF-8 code point of the grammar text. */
static int decode_utf8(parser *p, uint32_t *cp) {
    const uint8_t *s = (const uint8_t *)p->src + p->pos;
    size_t left = p->len - p->pos;
    uint8_t b = s[0];
    uint32_t v;
    size_t n;
    if (b < 0x80) { *cp = b; p->pos++; return 0; }
    if (b >= 0xC2 && b <= 0xDF) { v = b & 0x1F; n = 2; }
    else if (b >= 0xE0 && b <= 0xEF) { v = b & 0x0F; n = 3; }
    else if (b >= 0xF0 && b <= 0xF4) { v = b & 0x07; n = 4; }
    else return PERR("invalid UTF-8 byte 0x%02X", b);
    if (left < n) return PERR("truncated UTF-8 sequence");
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return PERR("invalid UTF-8 sequence");
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) || (v >= 0xD800 && v <= 0xDFFF))
        return PERR("invalid UTF-8 sequence");
    *cp = v;
    p->pos += n;
    return 0;
}

/* One character of a literal or class, with escapes. */
static int parse_char(parser *p, uint32_t *cp) {
    if (at_end(p)) return PERR("unexpected end of grammar");
    int c = peek(p);
    if (c == '\n' || c == '\r') return PERR("unexpected end of line inside a literal or class");
    if (c != '\\') return decode_utf8(p, cp);
    size_t esc = p->pos;
    p->pos++;
    if (at_end(p)) return PERR("unexpected end of grammar after '\\'");
    c = peek(p);
    p->pos++;
    int digits = 0;
    switch (c) {
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    case 't': *cp = '\t'; return 0;
    case 'n': *cp = '\n'; return 0;
    case 'r': *cp = '\r'; return 0;
    case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '\'':
        *cp = (uint32_t)c;
        return 0;
    default:
        p->pos = esc;
        return PERR("unknown escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
    }
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int h = hexval(peek(p));
        if (h < 0) return PERR("expected %d hex digits after '\\%c'", digits, c);
        v = (v << 4) | (uint32_t)h;
        p->pos++;
    }
    if (v > 0x10FFFF) { p->pos = esc; return PERR("code point U+%X is out of range", v); }
    *cp = v;
    return 0;
}

/* ================================================================== */
/* Character classes                                                   */
/* ================================================================== */
typedef struct rng { uint32_t lo, hi; } rng;

static int cmp_rng(const void *a, const void *b) {
    const rng *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
}

/* Sorts and merges ranges, appends them to the grammar's table and emits
 * one CHAR element. */
static int emit_class(parser *p, elvec *out, rng *r, size_t n, bool negated) {
    if (n > 1) qsort(r, n, sizeof *r, cmp_rng);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && r[i].lo <= (r[m - 1].hi == UINT32_MAX ? UINT32_MAX : r[m - 1].hi + 1)) {
            if (r[i].hi > r[m - 1].hi) r[m - 1].hi = r[i].hi;
        } else r[m++] = r[i];
    }
    if (p->n_ranges + m > DS8B__GRAMMAR_MAX_ELEMS)
        return perr_at(p, p->pos, DS8B_E_LIMIT, "the grammar has more than %u character ranges", DS8B__GRAMMAR_MAX_ELEMS);
    if (!grow((void **)&p->ranges, &p->cap_ranges, (p->n_ranges + m) * 2, sizeof *p->ranges)) return PNOMEM();
    uint32_t first = (uint32_t)p->n_ranges;
    for (size_t i = 0; i < m; i++) {
        p->ranges[2 * (p->n_ranges + i)] = r[i].lo;
        p->ranges[2 * (p->n_ranges + i) + 1] = r[i].hi;
    }
    p->n_ranges += m;
    return el_push(p, out, negated ? G_NCHAR : G_CHAR, first, (uint32_t)m);
}

static int parse_class(parser *p, elvec *out) {
    size_t open = p->pos;
    p->pos++; /* '[' */
    bool neg = false;
    if (peek(p) == '^') { neg = true; p->pos++; }
    rng *r = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (at_end(p)) { p->pos = open; PERR("unterminated character class"); break; }
        if (peek(p) == ']') { p->pos++; break; }
        uint32_t lo, hi;
        if (parse_char(p, &lo)) break;
        hi = lo;
        if (peek(p) == '-' && peek_at(p, 1) != ']' && peek_at(p, 1) != -1) {
            p->pos++;
            size_t at = p->pos;
            if (parse_char(p, &hi)) break;
            if (hi < lo) { perr_at(p, at, DS8B_E_GRAMMAR, "character range end U+%04X is below its start U+%04X", hi, lo); break; }
        }
        if (n >= 65536) { perr_at(p, p->pos, DS8B_E_LIMIT, "character class with more than 65536 entries"); break; }
        if (!grow((void **)&r, &cap, n + 1, sizeof *r)) { PNOMEM(); break; }
        r[n].lo = lo;
        r[n].hi = hi;
        n++;
    }
    if (!p->rc) emit_class(p, out, r, n, neg);
    ds8b__free(r);
    return p->rc;
}

/* ================================================================== */
/* Sequences and alternatives                                          */
/* ================================================================== */
static int parse_alternates(parser *p, elvec *out, bool nested);

/* Appends a copy of elements item[0..n) to out. */
static int copy_items(parser *p, elvec *out, const ds8b__gel *item, size_t n) {
    for (size_t i = 0; i < n && !p->rc; i++) el_push(p, out, item[i].type, item[i].a, item[i].b);
    return p->rc;
}

/* Replaces out[start..) (one item) by its repetition {mn,mx} (mx < 0:
 * unbounded). */
static int repeat_item(parser *p, elvec *out, size_t start, long mn, long mx) {
    size_t n = out->n - start;
    ds8b__gel item;
    if (n == 0) return 0; /* repeating nothing ("") is nothing */
    if (n == 1) item = out->v[start];
    else {
        /* wrap the item in a rule of its own */
        uint32_t id;
        if (new_rule(p, &id)) return p->rc;
        elvec *rv = &p->rules[id].el;
        if (copy_items(p, rv, out->v + start, n)) return p->rc;
        p->rules[id].defined = true;
        item.type = G_REF;
        item.a = id;
        item.b = 0;
    }
    p->total_el -= n;
    out->n = start;
    for (long i = 0; i < mn; i++)
        if (el_push(p, out, item.type, item.a, item.b)) return p->rc;
    if (mx < 0) {
        uint32_t id;
        if (new_rule(p, &id)) return p->rc;
        elvec *rv = &p->rules[id].el;
        el_push(p, rv, item.type, item.a, item.b);
        el_push(p, rv, G_REF, id, 0);
        el_push(p, rv, G_ALT, 0, 0);
        p->rules[id].defined = true;
        return el_push(p, out, G_REF, id, 0);
    }
    /* mx - mn nested optionals: r1 ::= x r2 | ; ... ; rk ::= x | */
    uint32_t prev = UINT32_MAX;
    for (long i = 0; i < mx - mn && !p->rc; i++) {
        uint32_t id;
        if (new_rule(p, &id)) return p->rc;
        elvec *rv = &p->rules[id].el;
        el_push(p, rv, item.type, item.a, item.b);
        if (prev != UINT32_MAX) el_push(p, rv, G_REF, prev, 0);
        el_push(p, rv, G_ALT, 0, 0);
        p->rules[id].defined = true;
        prev = id;
    }
    if (prev != UINT32_MAX) el_push(p, out, G_REF, prev, 0);
    return p->rc;
}

static int parse_count(parser *p, long *v) {
    if (!(peek(p) >= '0' && peek(p) <= '9')) return PERR("expected a number in repetition braces");
    long x = 0;
    while (peek(p) >= '0' && peek(p) <= '9') {
        x = x * 10 + (peek(p) - '0');
        if (x > DS8B__GRAMMAR_MAX_REPEAT)
            return perr_at(p, p->pos, DS8B_E_LIMIT, "repetition count above %d", DS8B__GRAMMAR_MAX_REPEAT);
        p->pos++;
    }
    *v = x;
    return 0;
}

static int parse_sequence(parser *p, elvec *out, bool nested) {
    size_t last = SIZE_MAX; /* start of the last item in out */
    while (!at_end(p) && !p->rc) {
        int c = peek(p);
        size_t here = p->pos;
        if (c == '"') {
            p->pos++;
            last = out->n;
            while (!p->rc) {
                if (at_end(p)) { p->pos = here; PERR("unterminated string literal"); break; }
                if (peek(p) == '"') { p->pos++; break; }
                uint32_t cp;
                if (parse_char(p, &cp)) break;
                /* one single-range class per character */
                rng r = {cp, cp};
                emit_class(p, out, &r, 1, false);
            }
        } else if (c == '[') {
            last = out->n;
            parse_class(p, out);
        } else if (c == '.') {
            p->pos++;
            last = out->n;
            emit_class(p, out, NULL, 0, true);
        } else if (is_word(c)) {
            size_t s = p->pos;
            while (is_word(peek(p))) p->pos++;
            /* a name followed by ::= starts the next rule: not ours */
            size_t save = p->pos;
            int save_line = p->line;
            size_t save_ls = p->line_start;
            skip_space(p, false);
            if (peek(p) == ':' && peek_at(p, 1) == ':' && peek_at(p, 2) == '=') {
                p->pos = s;
                return PERR("expected newline before the next rule");
            }
            p->pos = save;
            p->line = save_line;
            p->line_start = save_ls;
            uint32_t id;
            if (rule_by_name(p, p->src + s, p->pos - s, &id)) break;
            if (!p->rules[id].use_line) {
                p->rules[id].use_line = p->line;
                p->rules[id].use_col = col_of(p, s);
            }
            last = out->n;
            el_push(p, out, G_REF, id, 0);
        } else if (c == '(') {
            if (p->depth >= DS8B__GRAMMAR_MAX_NEST)
                return perr_at(p, p->pos, DS8B_E_LIMIT, "groups nested deeper than %d", DS8B__GRAMMAR_MAX_NEST);
            int open_line = p->line;
            size_t open_ls = p->line_start;
            p->pos++;
            skip_space(p, true);
            uint32_t id;
            if (new_rule(p, &id)) break;
            p->depth++;
            elvec sub = {0};
            parse_alternates(p, &sub, true);
            p->depth--;
            p->rules[id].el = sub; /* rules may have moved: assign after */
            p->rules[id].defined = true;
            if (p->rc) break;
            if (peek(p) != ')') {
                p->pos = here;
                p->line = open_line;
                p->line_start = open_ls;
                PERR("unmatched '('");
                break;
            }
            p->pos++;
            last = out->n;
            el_push(p, out, G_REF, id, 0);
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last == SIZE_MAX) return PERR("'%c' with nothing before it to repeat", c);
            long mn = 0, mx = -1;
            if (c == '*') { mn = 0; mx = -1; p->pos++; }
            else if (c == '+') { mn = 1; mx = -1; p->pos++; }
            else if (c == '?') { mn = 0; mx = 1; p->pos++; }
            else {
                p->pos++;
                skip_space(p, false);
                if (parse_count(p, &mn)) break;
                skip_space(p, false);
                if (peek(p) == ',') {
                    p->pos++;
                    skip_space(p, false);
                    if (peek(p) == '}') mx = -1;
                    else {
                        if (parse_count(p, &mx)) break;
                        if (mx < mn) { PERR("repetition {%ld,%ld}: the maximum is below the minimum", mn, mx); break; }
                    }
                    skip_space(p, false);
                } else mx = mn;
                if (peek(p) != '}') { PERR("expected '}' to close the repetition"); break; }
                p->pos++;
            }
            repeat_item(p, out, last, mn, mx);
            last = SIZE_MAX; /* x** is not allowed, as in llama.cpp */
        } else if (c == '<' || (c == '!' && peek_at(p, 1) == '<')) {
            return PERR("token references (<...>) are not supported");
        } else break;
        skip_space(p, nested);
    }
    return p->rc;
}

static int parse_alternates(parser *p, elvec *out, bool nested) {
    for (;;) {
        if (parse_sequence(p, out, nested)) return p->rc;
        if (peek(p) != '|') return 0;
        p->pos++;
        if (el_push(p, out, G_ALT, 0, 0)) return p->rc;
        skip_space(p, true);
    }
}

static int parse_rule(parser *p) {
    size_t s = p->pos;
    if (!is_word(peek(p))) return PERR("expected a rule name");
    while (is_word(peek(p))) p->pos++;
    size_t n = p->pos - s;
    int line = p->line, col = col_of(p, s);
    uint32_t id;
    if (rule_by_name(p, p->src + s, n, &id)) return p->rc;
    if (p->rules[id].defined)
        return perr_at(p, s, DS8B_E_GRAMMAR, "rule '%.*s' is defined twice (first at line %d)", (int)n, p->src + s,
                       p->rules[id].line);
    skip_space(p, false);
    if (!(peek(p) == ':' && peek_at(p, 1) == ':' && peek_at(p, 2) == '=')) return PERR("expected '::=' after rule name");
    p->pos += 3;
    skip_space(p, true);
    p->cur_rule = id;
    elvec body = {0};
    parse_alternates(p, &body, false);
    p->rules[id].el = body;
    p->rules[id].defined = true;
    p->rules[id].line = line;
    p->rules[id].col = col;
    if (p->rc) return p->rc;
    if (!at_end(p) && peek(p) != '\n' && peek(p) != '\r') {
        if (peek(p) == ')') return PERR("unmatched ')'");
        return PERR("unexpected character '%c'", peek(p) >= 0x20 && peek(p) < 0x7f ? peek(p) : '?');
    }
    return 0;
}

/* ================================================================== */
/* Checks                                                              */
/* ================================================================== */
static const char *rule_label(const parser *p, uint32_t id, int *len) {
    const prule *r = &p->rules[p->rules[id].name ? id : p->rules[id].parent];
    *len = (int)r->name_len;
    return r->name ? r->name : "?";
}

/* nullable[i]: rule i derives the empty string. Fixed point. */
static void compute_nullable(const parser *p, uint8_t *nullable) {
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t i = 0; i < p->n_rules; i++) {
            if (nullable[i]) continue;
            const elvec *v = &p->rules[i].el;
            bool alt_ok = true;
            for (size_t j = 0; j <= v->n; j++) {
                if (j == v->n || v->v[j].type == G_ALT) {
                    if (alt_ok) { nullable[i] = 1; changed = true; break; }
                    alt_ok = true;
                    continue;
                }
                if (!alt_ok) continue;
                if (v->v[j].type != G_REF || !nullable[v->v[j].a]) alt_ok = false;
            }
        }
    }
}

/* Left recursion: a cycle in "A starts with B" (B after only nullable
 * elements). Iterative DFS with colours. */
static int check_left_recursion(parser *p, const uint8_t *nullable) {
    size_t n = p->n_rules;
    uint8_t *colour = ds8b__calloc(DS8B_MEM_OTHER, n ? n : 1, 1);
    uint32_t *stk = ds8b__calloc(DS8B_MEM_OTHER, n ? n : 1, sizeof *stk);
    size_t *it = ds8b__calloc(DS8B_MEM_OTHER, n ? n : 1, sizeof *it);
    bool *alt_live = ds8b__calloc(DS8B_MEM_OTHER, n ? n : 1, sizeof *alt_live);
    if (!colour || !stk || !it || !alt_live) {
        PNOMEM();
        goto out;
    }
    for (size_t r0 = 0; r0 < n && !p->rc; r0++) {
        if (colour[r0]) continue;
        size_t sp = 0;
        stk[sp] = (uint32_t)r0; it[sp] = 0; alt_live[sp] = true; sp++;
        colour[r0] = 1;
        while (sp && !p->rc) {
            uint32_t r = stk[sp - 1];
            const elvec *v = &p->rules[r].el;
            size_t j = it[sp - 1];
            if (j >= v->n) { colour[r] = 2; sp--; continue; }
            it[sp - 1] = j + 1;
            const ds8b__gel *x = &v->v[j];
            if (x->type == G_ALT) { alt_live[sp - 1] = true; continue; }
            if (!alt_live[sp - 1]) continue;
            if (x->type != G_REF) { alt_live[sp - 1] = false; continue; }
            if (!nullable[x->a]) alt_live[sp - 1] = false;
            uint32_t t = x->a;
            if (colour[t] == 1) {
                int l1, l2;
                const char *a = rule_label(p, t, &l1), *b = rule_label(p, r, &l2);
                const prule *pr = &p->rules[p->rules[t].name ? t : p->rules[t].parent];
                p->line = pr->line;
                p->line_start = 0;
                ds8b__seterr(p->e, DS8B_E_GRAMMAR, "line %d, column %d: left recursion: rule '%.*s' can reach itself "
                             "through '%.*s' without consuming input", pr->line, pr->col, l1, a, l2, b);
                p->rc = DS8B_E_GRAMMAR;
                break;
            }
            if (colour[t] == 0) {
                colour[t] = 1;
                stk[sp] = t; it[sp] = 0; alt_live[sp] = true; sp++;
            }
        }
    }
out:
    ds8b__free(colour);
    ds8b__free(stk);
    ds8b__free(it);
    ds8b__free(alt_live);
    return p->rc;
}

/* ================================================================== */
/* Compile                                                             */
/* ================================================================== */
static void parser_free(parser *p) {
    for (size_t i = 0; i < p->n_rules; i++) {
        ds8b__free(p->rules[i].name);
        ds8b__free(p->rules[i].el.v);
    }
    ds8b__free(p->rules);
    ds8b__free(p->ranges);
    ds8b__free(p->hash);
}

static uint64_t fnv64(uint64_t h, const void *d, size_t n) {
    const uint8_t *b = d;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int ds8b__grammar_compile(const char *gbnf, size_t len, const char *root, ds8b_grammar **out, ds8b__err *e) {
    if (!out) return ds8b__seterr(e, DS8B_E_INVALID, "ds8b_grammar_compile: out is NULL");
    *out = NULL;
    if (!gbnf && len) return ds8b__seterr(e, DS8B_E_INVALID, "ds8b_grammar_compile: gbnf is NULL");
    if (len > DS8B__GRAMMAR_MAX_BYTES)
        return ds8b__seterr(e, DS8B_E_LIMIT, "grammar of %zu bytes is larger than the limit of %u", len,
                            DS8B__GRAMMAR_MAX_BYTES);
    if (!root) root = "root";
    size_t root_len = strlen(root);
    parser P = {0}, *p = &P;
    p->src = gbnf ? gbnf : "";
    p->len = len;
    p->line = 1;
    p->e = e;
    p->cur_rule = 0;
    /* a UTF-8 byte order mark is skipped */
    if (len >= 3 && memcmp(gbnf, "\xEF\xBB\xBF", 3) == 0) p->pos = p->line_start = 3;
    for (;;) {
        skip_space(p, true);
        if (at_end(p) || p->rc) break;
        if (parse_rule(p)) break;
    }
    if (p->rc) { parser_free(p); return p->rc; }
    /* undefined rules, at their first use */
    for (size_t i = 0; i < p->n_rules; i++) {
        if (!p->rules[i].defined) {
            ds8b__seterr(e, DS8B_E_GRAMMAR, "line %d, column %d: undefined rule '%s'", p->rules[i].use_line,
                         p->rules[i].use_col, p->rules[i].name);
            parser_free(p);
            return DS8B_E_GRAMMAR;
        }
    }
    uint32_t root_id = UINT32_MAX;
    for (size_t i = 0; i < p->n_rules; i++)
        if (p->rules[i].name && p->rules[i].name_len == root_len && memcmp(p->rules[i].name, root, root_len) == 0)
            root_id = (uint32_t)i;
    if (root_id == UINT32_MAX) {
        ds8b__seterr(e, DS8B_E_GRAMMAR, "line %d, column 1: the grammar has no rule '%s'", p->line, root);
        parser_free(p);
        return DS8B_E_GRAMMAR;
    }
    {
        const elvec *v = &p->rules[root_id].el;
        bool empty = true;
        for (size_t j = 0; j < v->n; j++)
            if (v->v[j].type != G_ALT) empty = false;
        if (empty) {
            ds8b__seterr(e, DS8B_E_GRAMMAR, "line %d, column %d: rule '%s' is empty", p->rules[root_id].line,
                         p->rules[root_id].col, root);
            parser_free(p);
            return DS8B_E_GRAMMAR;
        }
    }
    uint8_t *nullable = ds8b__calloc(DS8B_MEM_OTHER, p->n_rules, 1);
    if (!nullable) { parser_free(p); return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory compiling the grammar"); }
    compute_nullable(p, nullable);
    int rc = check_left_recursion(p, nullable);
    ds8b__free(nullable);
    if (rc) { parser_free(p); return rc; }

    /* flatten: rule elements then END, alternatives' starts indexed */
    size_t n_el = 0, n_alt = 0;
    for (size_t i = 0; i < p->n_rules; i++) {
        n_el += p->rules[i].el.n + 1;
        n_alt += 1;
        for (size_t j = 0; j < p->rules[i].el.n; j++)
            if (p->rules[i].el.v[j].type == G_ALT) n_alt++;
    }
    ds8b_grammar *g = ds8b__xmalloc(DS8B_MEM_OTHER, sizeof *g, "grammar", e);
    if (!g) { parser_free(p); return DS8B_E_NOMEM; }
    memset(g, 0, sizeof *g);
    g->magic = DS8B_GRAMMAR_MAGIC;
    g->n_rules = (uint32_t)p->n_rules;
    g->n_el = (uint32_t)n_el;
    g->n_ranges = (uint32_t)p->n_ranges;
    g->root = root_id;
    g->el = ds8b__calloc(DS8B_MEM_OTHER, n_el, sizeof *g->el);
    g->alt_first = ds8b__calloc(DS8B_MEM_OTHER, p->n_rules + 1, sizeof *g->alt_first);
    g->alts = ds8b__calloc(DS8B_MEM_OTHER, n_alt, sizeof *g->alts);
    g->ranges = ds8b__calloc(DS8B_MEM_OTHER, p->n_ranges ? p->n_ranges * 2 : 1, sizeof *g->ranges);
    if (!g->el || !g->alt_first || !g->alts || !g->ranges) {
        ds8b__grammar_destroy(g);
        parser_free(p);
        return ds8b__seterr(e, DS8B_E_NOMEM, "out of memory compiling the grammar");
    }
    if (p->n_ranges) memcpy(g->ranges, p->ranges, p->n_ranges * 2 * sizeof *g->ranges);
    size_t k = 0, a = 0;
    for (size_t i = 0; i < p->n_rules; i++) {
        g->alt_first[i] = (uint32_t)a;
        g->alts[a++] = (uint32_t)k;
        for (size_t j = 0; j < p->rules[i].el.n; j++) {
            g->el[k++] = p->rules[i].el.v[j];
            if (p->rules[i].el.v[j].type == G_ALT) g->alts[a++] = (uint32_t)k;
        }
        g->el[k].type = G_END;
        g->el[k].a = g->el[k].b = 0;
        k++;
    }
    g->alt_first[p->n_rules] = (uint32_t)a;
    g->n_alts = (uint32_t)a;
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv64(h, &g->root, sizeof g->root);
    for (size_t i = 0; i < n_el; i++) {
        h = fnv64(h, &g->el[i].type, 1);
        h = fnv64(h, &g->el[i].a, 4);
        h = fnv64(h, &g->el[i].b, 4);
    }
    h = fnv64(h, g->ranges, p->n_ranges * 2 * sizeof *g->ranges);
    g->fp = h;
    atomic_init(&g->refs, 0);
    parser_free(p);
    *out = g;
    return DS8B_OK;
}

void ds8b__grammar_destroy(ds8b_grammar *g) {
    if (!g) return;
    g->magic = 0;
    ds8b__free(g->el);
    ds8b__free(g->alt_first);
    ds8b__free(g->alts);
    ds8b__free(g->ranges);
    ds8b__free(g);
}

uint64_t ds8b__grammar_fingerprint(const ds8b_grammar *g) { return g ? g->fp : 0; }

void ds8b__grammar_ref(const ds8b_grammar *g) {
    if (g) atomic_fetch_add(&((ds8b_grammar *)g)->refs, 1);
}
void ds8b__grammar_unref(const ds8b_grammar *g) {
    if (g) atomic_fetch_sub(&((ds8b_grammar *)g)->refs, 1);
}

/* ================================================================== */
/* Public API                                                          */
/* ================================================================== */
DS8B_API int ds8b_grammar_compile(const char *gbnf, size_t len, const char *root, ds8b_grammar **out) {
    ds8b__err e = {0};
    int rc = ds8b__grammar_compile(gbnf, len, root, out, &e);
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

DS8B_API void ds8b_grammar_free(ds8b_grammar *g) {
    if (!g) return;
    ds8b__err e = {0};
    if (g->magic != DS8B_GRAMMAR_MAGIC) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_grammar_free: invalid grammar handle");
        ds8b__set_last_error(&e);
        return;
    }
    int refs = atomic_load(&g->refs);
    if (refs > 0) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_grammar_free: %d session(s) still use this grammar; detach it first",
                     refs);
        ds8b__set_last_error(&e);
        return;
    }
    ds8b__grammar_destroy(g);
}

DS8B_API int ds8b_grammar_accepts(const ds8b_grammar *g, const char *text, size_t len, int *accept) {
    ds8b__err e = {0};
    int rc;
    if (!g || g->magic != DS8B_GRAMMAR_MAGIC) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_grammar_accepts: invalid grammar handle");
    else if (!accept || (!text && len)) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_grammar_accepts: NULL argument");
    else {
        *accept = 0;
        ds8b__gmatch m = {0};
        rc = ds8b__gm_init(&m, g, &e);
        if (!rc) rc = ds8b__gm_feed(&m, (const uint8_t *)text, len, &e);
        if (!rc) *accept = ds8b__gm_can_end(&m);
        ds8b__gm_free(&m);
    }
    if (rc) ds8b__set_last_error(&e);
    return rc;
}
