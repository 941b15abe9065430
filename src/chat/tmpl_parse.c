/*
 * tmpl_parse.c -- arena, lexer and parser of the chat template interpreter.
 *
 * The lexer follows Jinja2's rules with trim_blocks and lstrip_blocks on:
 * "\r\n" and "\r" become "\n", one trailing newline of the source is
 * dropped, "{%-"/"-%}" strip whitespace, "{%+"/"+%}" keep it, a block or
 * comment tag eats the newline after it and the blanks before it on its line.
 * Errors unwind with longjmp; everything lives in the template's arena.
 */
#include "chat/tmpl_impl.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

/* ================================================================== */
/* Arena                                                               */
/* ================================================================== */
#define TA_HDR 32
#define TA_BLOCK ((size_t)64 * 1024)
_Static_assert(sizeof(ds8b__tablk) <= TA_HDR, "arena header");

void ds8b__ta_init(ds8b__tarena *a, int cat, size_t limit) {
    memset(a, 0, sizeof *a);
    a->cat = cat;
    a->limit = limit;
}

void *ds8b__ta_alloc(ds8b__tarena *a, size_t n) {
    size_t need;
    if (!ds8b__add_ok(n, 15, &need)) { a->over = 1; return NULL; }
    need &= ~(size_t)15;
    if (need == 0) need = 16;
    ds8b__tablk *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > TA_BLOCK / 4 ? need : TA_BLOCK;
        size_t tot;
        if (!ds8b__add_ok(cap, TA_HDR, &tot)) { a->over = 1; return NULL; }
        if (a->limit && (tot > a->limit || a->total > a->limit - tot)) { a->over = 1; return NULL; }
        ds8b__tablk *nb = ds8b__malloc(a->cat, tot);
        if (!nb) { a->over = 2; return NULL; }
        a->total += tot;
        nb->cap = cap;
        nb->used = 0;
        if (b && cap != TA_BLOCK) { /* a big one-off: keep the current block first */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    char *p = (char *)b + TA_HDR + b->used;
    b->used += need;
    memset(p, 0, need);
    return p;
}

void ds8b__ta_free(ds8b__tarena *a) {
    ds8b__tablk *b = a->head;
    while (b) {
        ds8b__tablk *nx = b->next;
        ds8b__free(b);
        b = nx;
    }
    a->head = NULL;
    a->total = 0;
}

/* ================================================================== */
/* UTF-8                                                               */
/* ================================================================== */
size_t ds8b__tm_u8dec(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xc2 && c <= 0xdf) { len = 2; v = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; v = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = c; return 1; }
    if (len > n) { *cp = c; return 1; }
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80) { *cp = c; return 1; }
        v = (v << 6) | (u[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) { *cp = c; return 1; }
    *cp = v;
    return len;
}

bool ds8b__tm_isspace(uint32_t c) {
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return true;
    if (c < 0x85) return false;
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* ================================================================== */
/* Lexer                                                               */
/* ================================================================== */
enum { TK_EOF, TK_TEXT, TK_VB, TK_VE, TK_BB, TK_BE, TK_NAME, TK_STR, TK_INT, TK_FLOAT, TK_OP };

typedef struct tok {
    int type;
    int line, col;
    const char *p; /* text, name, operator, decoded string */
    size_t n;
    int64_t i;
    double f;
} tok;

typedef struct P {
    jmp_buf jb;
    ds8b__err *e;
    ds8b__tarena *ar;
    const char *s;
    size_t len;
    tok *toks;
    size_t nt, ct;
    size_t at;        /* parser position in toks */
    int depth;        /* expression / block nesting */
    int loops;        /* enclosing for loops (break/continue) */
    size_t lc_pos;    /* line/column cache */
    int lc_line, lc_col;
} P;

static _Noreturn __attribute__((format(printf, 5, 6))) void perr(P *p, int code, int line, int col,
                                                                  const char *fmt, ...) {
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ds8b__seterr(p->e, code, "chat template: line %d, column %d: %s", line, col, buf);
    longjmp(p->jb, code);
}

static void *palloc(P *p, size_t n) {
    void *r = ds8b__ta_alloc(p->ar, n);
    if (!r) {
        int code = p->ar->over == 1 ? DS8B_E_LIMIT : DS8B_E_NOMEM;
        ds8b__seterr(p->e, code, "chat template: %s while compiling",
                     code == DS8B_E_LIMIT ? "memory limit reached" : "out of memory");
        longjmp(p->jb, code);
    }
    return r;
}

static void linecol(P *p, size_t pos, int *line, int *col) {
    if (pos < p->lc_pos) { p->lc_pos = 0; p->lc_line = 1; p->lc_col = 1; }
    while (p->lc_pos < pos && p->lc_pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->lc_pos++];
        if (c == '\n') { p->lc_line++; p->lc_col = 1; }
        else if ((c & 0xc0) != 0x80) p->lc_col++;
    }
    *line = p->lc_line;
    *col = p->lc_col;
}

static tok *push(P *p, int type, size_t pos) {
    if (p->nt == p->ct) {
        size_t nc = p->ct ? p->ct * 2 : 256, bytes;
        if (!ds8b__mul_ok(nc, sizeof(tok), &bytes)) perr(p, DS8B_E_LIMIT, 0, 0, "too many tokens");
        tok *nt = palloc(p, bytes);
        if (p->nt) memcpy(nt, p->toks, p->nt * sizeof(tok));
        p->toks = nt;
        p->ct = nc;
    }
    tok *t = &p->toks[p->nt++];
    memset(t, 0, sizeof *t);
    t->type = type;
    linecol(p, pos, &t->line, &t->col);
    return t;
}

/* End of s[from, to) with Python whitespace stripped off the right. */
static size_t rstrip_ws(const char *s, size_t from, size_t to) {
    size_t keep = from, i = from;
    while (i < to) {
        uint32_t cp;
        size_t k = ds8b__tm_u8dec(s + i, to - i, &cp);
        i += k;
        if (!ds8b__tm_isspace(cp)) keep = i;
    }
    return keep;
}

static size_t skip_ws(const char *s, size_t i, size_t len) {
    while (i < len) {
        uint32_t cp;
        size_t k = ds8b__tm_u8dec(s + i, len - i, &cp);
        if (!ds8b__tm_isspace(cp)) break;
        i += k;
    }
    return i;
}

/* Applies "{%-" / lstrip_blocks to the text s[from, to) before a tag. */
static size_t text_end(P *p, size_t from, size_t to, char sign, bool block, bool line_starting) {
    const char *s = p->s;
    if (sign == '-') return rstrip_ws(s, from, to);
    if (sign == '+' || !block) return to;
    size_t lp = from;
    for (size_t j = to; j > from; j--)
        if (s[j - 1] == '\n') { lp = j; break; }
    if (lp == from && !line_starting) return to;
    if (lp == to) return to;
    if (rstrip_ws(s, lp, to) == lp) return lp;
    return to;
}

static void push_text(P *p, size_t from, size_t to) {
    if (to <= from) return;
    tok *t = push(p, TK_TEXT, from);
    t->p = p->s + from;
    t->n = to - from;
}

static bool at(const P *p, size_t i, const char *lit) {
    size_t n = strlen(lit);
    return i <= p->len && p->len - i >= n && memcmp(p->s + i, lit, n) == 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t u8enc(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Lexes a string literal at pos (the quote); returns the position after it. */
static size_t lex_string(P *p, size_t pos, tok *t) {
    const char *s = p->s;
    char q = s[pos];
    size_t i = pos + 1;
    while (i < p->len && s[i] != q) i += (s[i] == '\\' && i + 1 < p->len) ? 2 : 1;
    if (i >= p->len) perr(p, DS8B_E_TEMPLATE, t->line, t->col, "unterminated string literal");
    size_t end = i;
    char *o = palloc(p, end - pos + 1);
    size_t n = 0;
    for (i = pos + 1; i < end;) {
        char c = s[i];
        if (c != '\\') { o[n++] = c; i++; continue; }
        char d = s[i + 1];
        i += 2;
        uint32_t cp;
        int digits = 0;
        switch (d) {
        case '\\': o[n++] = '\\'; continue;
        case '\'': o[n++] = '\''; continue;
        case '"': o[n++] = '"'; continue;
        case 'a': o[n++] = '\a'; continue;
        case 'b': o[n++] = '\b'; continue;
        case 'f': o[n++] = '\f'; continue;
        case 'n': o[n++] = '\n'; continue;
        case 'r': o[n++] = '\r'; continue;
        case 't': o[n++] = '\t'; continue;
        case 'v': o[n++] = '\v'; continue;
        case '\n': continue;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (d >= '0' && d <= '7') {
                cp = (uint32_t)(d - '0');
                for (int k = 0; k < 2 && i < end && s[i] >= '0' && s[i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(s[i++] - '0');
                n += u8enc(o + n, cp);
                continue;
            }
            if (d == 'N') perr(p, DS8B_E_TEMPLATE, t->line, t->col, "\\N{...} escapes are not supported");
            o[n++] = '\\';
            i--; /* keep the character after the backslash as it is */
            continue;
        }
        cp = 0;
        for (int k = 0; k < digits; k++) {
            int h = i < end ? hexval(s[i]) : -1;
            if (h < 0) perr(p, DS8B_E_TEMPLATE, t->line, t->col, "truncated \\%c escape", d);
            cp = cp * 16 + (uint32_t)h;
            i++;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            perr(p, DS8B_E_TEMPLATE, t->line, t->col, "escape is not a valid code point");
        n += u8enc(o + n, cp); /* an escape is at least 4 source bytes, >= its UTF-8 */
    }
    t->type = TK_STR;
    t->p = o;
    t->n = n;
    return end + 1;
}

static size_t lex_number(P *p, size_t pos, tok *t) {
    const char *s = p->s;
    size_t i = pos;
    bool isf = false;
    bool after_dot = pos > 0 && s[pos - 1] == '.';
    while (i < p->len && ((s[i] >= '0' && s[i] <= '9') || (s[i] == '_' && i + 1 < p->len && s[i + 1] >= '0' && s[i + 1] <= '9'))) i++;
    if (!after_dot) {
        if (i + 1 < p->len && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
            isf = true;
            i++;
            while (i < p->len && ((s[i] >= '0' && s[i] <= '9') || (s[i] == '_' && i + 1 < p->len && s[i + 1] >= '0' && s[i + 1] <= '9'))) i++;
        }
        if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
            size_t j = i + 1;
            if (j < p->len && (s[j] == '+' || s[j] == '-')) j++;
            if (j < p->len && s[j] >= '0' && s[j] <= '9') {
                isf = true;
                i = j;
                while (i < p->len && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_')) i++;
            }
        }
    }
    char buf[128];
    size_t n = 0;
    for (size_t k = pos; k < i; k++) {
        if (s[k] == '_') continue;
        if (n + 1 >= sizeof buf) perr(p, DS8B_E_TEMPLATE, t->line, t->col, "number literal too long");
        buf[n++] = s[k];
    }
    buf[n] = 0;
    errno = 0;
    if (!isf && s[pos] == '0') {
        /* an integer with a leading zero is zeros only ("08" is "0" "8") */
        i = pos + 1;
        while (i < p->len && (s[i] == '0' || (s[i] == '_' && i + 1 < p->len && s[i + 1] == '0'))) i++;
        buf[0] = '0';
        n = 1;
        buf[1] = 0;
    }
    if (isf) {
        t->type = TK_FLOAT;
        t->f = strtod(buf, NULL);
    } else {
        t->type = TK_INT;
        long long v = strtoll(buf, NULL, 10);
        if (errno == ERANGE) perr(p, DS8B_E_TEMPLATE, t->line, t->col, "integer literal out of range");
        t->i = v;
    }
    return i;
}

static const char *const OPS[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]",
                                  "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"};

static void lex(P *p) {
    const char *s = p->s;
    size_t L = p->len, pos = 0;
    bool line_starting = true;
    while (pos < L) {
        size_t k = pos;
        while (k + 1 < L && !(s[k] == '{' && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#'))) k++;
        if (k + 1 >= L) { push_text(p, pos, L); break; }
        char kind = s[k + 1];
        char sign = (k + 2 < L && (s[k + 2] == '-' || s[k + 2] == '+')) ? s[k + 2] : 0;
        size_t q = k + 2 + (sign ? 1 : 0);
        int tl, tc;
        linecol(p, k, &tl, &tc);
        if (kind == '{' && sign == '+') sign = 0, q = k + 2; /* "{{+" is not a modifier */
        push_text(p, pos, text_end(p, pos, k, sign, kind != '{', line_starting));
        if (kind == '#') {
            size_t j = q;
            while (j + 1 < L && !(s[j] == '#' && s[j + 1] == '}')) j++;
            if (j + 1 >= L) perr(p, DS8B_E_TEMPLATE, tl, tc, "unclosed comment");
            size_t after = j + 2;
            if (j > q && s[j - 1] == '-') after = skip_ws(s, after, L);
            else if (j > q && s[j - 1] == '+') { /* keep */ }
            else if (after < L && s[after] == '\n') after++;
            line_starting = s[after - 1] == '\n';
            pos = after;
            continue;
        }
        if (kind == '%') {
            /* {% raw %} ... {% endraw %} */
            size_t r = skip_ws(s, q, L);
            if (at(p, r, "raw")) {
                size_t r2 = skip_ws(s, r + 3, L), body;
                bool is_raw = true;
                if (at(p, r2, "-%}")) body = skip_ws(s, r2 + 3, L);
                else if (at(p, r2, "%}")) body = r2 + 2;
                else is_raw = false;
                if (is_raw) {
                    size_t j = body;
                    for (;;) {
                        while (j + 1 < L && !(s[j] == '{' && s[j + 1] == '%')) j++;
                        if (j + 1 >= L) perr(p, DS8B_E_TEMPLATE, tl, tc, "missing endraw");
                        char es = (j + 2 < L && (s[j + 2] == '-' || s[j + 2] == '+')) ? s[j + 2] : 0;
                        size_t e1 = skip_ws(s, j + 2 + (es ? 1 : 0), L);
                        if (at(p, e1, "endraw")) {
                            size_t e2 = skip_ws(s, e1 + 6, L), after;
                            bool ok = true;
                            if (at(p, e2, "+%}")) after = e2 + 3;
                            else if (at(p, e2, "-%}")) after = skip_ws(s, e2 + 3, L);
                            else if (at(p, e2, "%}")) {
                                after = e2 + 2;
                                if (after < L && s[after] == '\n') after++;
                            } else ok = false;
                            if (ok) {
                                bool ls = body > 0 && s[body - 1] == '\n';
                                push_text(p, body, text_end(p, body, j, es, true, ls));
                                line_starting = s[after - 1] == '\n';
                                pos = after;
                                break;
                            }
                        }
                        j += 2;
                    }
                    continue;
                }
            }
        }
        push(p, kind == '%' ? TK_BB : TK_VB, k);
        pos = q;
        int depth = 0;
        for (;;) {
            pos = skip_ws(s, pos, L);
            if (pos >= L)
                perr(p, DS8B_E_TEMPLATE, tl, tc, "unexpected end of template: tag opened here is not closed");
            if (depth == 0) {
                size_t after = 0;
                if (kind == '%') {
                    if (at(p, pos, "+%}")) after = pos + 3;
                    else if (at(p, pos, "-%}")) after = skip_ws(s, pos + 3, L);
                    else if (at(p, pos, "%}")) {
                        after = pos + 2;
                        if (after < L && s[after] == '\n') after++;
                    }
                } else {
                    if (at(p, pos, "-}}")) after = skip_ws(s, pos + 3, L);
                    else if (at(p, pos, "}}")) after = pos + 2;
                }
                if (after) {
                    push(p, kind == '%' ? TK_BE : TK_VE, pos);
                    line_starting = s[after - 1] == '\n';
                    pos = after;
                    break;
                }
            }
            tok *t = push(p, TK_OP, pos);
            unsigned char c = (unsigned char)s[pos];
            if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
                size_t j = pos + 1;
                while (j < L && (s[j] == '_' || (s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
                                 (s[j] >= '0' && s[j] <= '9')))
                    j++;
                t->type = TK_NAME;
                t->p = s + pos;
                t->n = j - pos;
                pos = j;
            } else if (c >= '0' && c <= '9') {
                pos = lex_number(p, pos, t);
            } else if (c == '\'' || c == '"') {
                pos = lex_string(p, pos, t);
            } else {
                size_t m = 0;
                for (size_t o = 0; o < sizeof OPS / sizeof OPS[0]; o++)
                    if (at(p, pos, OPS[o])) { m = strlen(OPS[o]); t->p = OPS[o]; t->n = m; break; }
                if (!m) perr(p, DS8B_E_TEMPLATE, t->line, t->col, "unexpected character '%c' in tag", c >= 32 && c < 127 ? c : '?');
                if (c == '(' || c == '[' || c == '{') depth++;
                else if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
                pos += m;
            }
        }
    }
    push(p, TK_EOF, L);
}

/* ================================================================== */
/* Parser                                                              */
/* ================================================================== */
typedef ds8b__tnode N;

static tok *cur(P *p) { return &p->toks[p->at]; }
static tok *peek(P *p, size_t k) {
    size_t i = p->at + k;
    return i < p->nt ? &p->toks[i] : &p->toks[p->nt - 1];
}
static bool tok_is(const tok *t, int type, const char *s) {
    if (t->type != type) return false;
    size_t n = strlen(s);
    return t->n == n && memcmp(t->p, s, n) == 0;
}
static bool is_op(P *p, const char *s) { return tok_is(cur(p), TK_OP, s); }
static bool is_name(P *p, const char *s) { return tok_is(cur(p), TK_NAME, s); }

static const char *tokdesc(const tok *t, char *buf, size_t cap) {
    switch (t->type) {
    case TK_EOF: return "end of template";
    case TK_TEXT: return "template text";
    case TK_VB: return "'{{'";
    case TK_VE: return "'}}'";
    case TK_BB: return "'{%'";
    case TK_BE: return "'%}'";
    case TK_STR: return "string literal";
    case TK_INT: return "integer";
    case TK_FLOAT: return "number";
    default: snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p); return buf;
    }
}

static _Noreturn void unexpected(P *p, const char *wanted) {
    char b[64];
    tok *t = cur(p);
    perr(p, DS8B_E_TEMPLATE, t->line, t->col, "unexpected %s%s%s", tokdesc(t, b, sizeof b),
         wanted ? ", expected " : "", wanted ? wanted : "");
}

static void expect_op(P *p, const char *s) {
    if (!is_op(p, s)) {
        char w[16];
        snprintf(w, sizeof w, "'%s'", s);
        unexpected(p, w);
    }
    p->at++;
}
static void expect_type(P *p, int type, const char *what) {
    if (cur(p)->type != type) unexpected(p, what);
    p->at++;
}

static N *mk(P *p, int kind, const tok *t) {
    N *n = palloc(p, sizeof *n);
    n->kind = kind;
    n->line = t->line;
    n->col = t->col;
    return n;
}

typedef struct nvec {
    N **v;
    size_t n, cap;
} nvec;
static void vpush(P *p, nvec *v, N *x) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 4;
        N **nv = palloc(p, nc * sizeof *nv);
        if (v->n) memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = nc;
    }
    v->v[v->n++] = x;
}

static void enter(P *p) {
    if (++p->depth > DS8B__TMPL_MAX_NESTING) {
        tok *t = cur(p);
        perr(p, DS8B_E_LIMIT, t->line, t->col, "nesting deeper than %d levels", DS8B__TMPL_MAX_NESTING);
    }
}
static void leave(P *p) { p->depth--; }

static N *parse_expr(P *p, bool condexpr);
static N *parse_unary(P *p, bool with_filter);
static N *parse_tuple(P *p, bool condexpr, bool explicit_parens, const char *extra_end);
static N *parse_body(P *p, const char *const *ends, int nends);

static N *parse_condexpr(P *p);
static N *parse_or(P *p);

static N *parse_expr(P *p, bool condexpr) {
    enter(p);
    N *r = condexpr ? parse_condexpr(p) : parse_or(p);
    leave(p);
    return r;
}

static N *parse_and(P *p);
static N *parse_condexpr(P *p) {
    N *e1 = parse_or(p);
    while (is_name(p, "if")) {
        tok *t = cur(p);
        p->at++;
        N *c = mk(p, TN_COND, t);
        c->a = parse_or(p);
        c->b = e1;
        if (is_name(p, "else")) {
            p->at++;
            enter(p);
            c->c = parse_condexpr(p);
            leave(p);
        }
        e1 = c;
    }
    return e1;
}

static N *parse_not(P *p);
static N *parse_or(P *p) {
    N *l = parse_and(p);
    while (is_name(p, "or")) {
        N *n = mk(p, TN_OR, cur(p));
        p->at++;
        n->a = l;
        n->b = parse_and(p);
        l = n;
    }
    return l;
}

static N *parse_and(P *p) {
    N *l = parse_not(p);
    while (is_name(p, "and")) {
        N *n = mk(p, TN_AND, cur(p));
        p->at++;
        n->a = l;
        n->b = parse_not(p);
        l = n;
    }
    return l;
}

static N *parse_compare(P *p);
static N *parse_not(P *p) {
    if (is_name(p, "not")) {
        N *n = mk(p, TN_NOT, cur(p));
        p->at++;
        enter(p);
        n->a = parse_not(p);
        leave(p);
        return n;
    }
    return parse_compare(p);
}

static N *parse_math1(P *p);
static N *parse_compare(P *p) {
    tok *t0 = cur(p);
    N *first = parse_math1(p);
    nvec opnds = {0};
    int ops[64];
    int nops = 0;
    vpush(p, &opnds, first);
    for (;;) {
        int op = 0;
        if (is_op(p, "==")) op = TO_EQ;
        else if (is_op(p, "!=")) op = TO_NE;
        else if (is_op(p, "<")) op = TO_LT;
        else if (is_op(p, "<=")) op = TO_LE;
        else if (is_op(p, ">")) op = TO_GT;
        else if (is_op(p, ">=")) op = TO_GE;
        else if (is_name(p, "in")) op = TO_IN;
        else if (is_name(p, "not") && tok_is(peek(p, 1), TK_NAME, "in")) { op = TO_NOTIN; p->at++; }
        if (!op) break;
        p->at++;
        if (nops == 64) perr(p, DS8B_E_LIMIT, t0->line, t0->col, "comparison chain too long");
        ops[nops++] = op;
        vpush(p, &opnds, parse_math1(p));
    }
    if (!nops) return first;
    N *n = mk(p, TN_CMP, t0);
    n->v = opnds.v;
    n->nv = opnds.n;
    n->ops = palloc(p, sizeof(int) * (size_t)nops);
    memcpy(n->ops, ops, sizeof(int) * (size_t)nops);
    return n;
}

static N *bin(P *p, int op, N *l, N *r, const tok *t) {
    N *n = mk(p, TN_BIN, t);
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static N *parse_concat(P *p);
static N *parse_math2(P *p);
static N *parse_pow(P *p);

static N *parse_math1(P *p) {
    N *l = parse_concat(p);
    for (;;) {
        tok *t = cur(p);
        if (is_op(p, "+")) { p->at++; l = bin(p, TO_ADD, l, parse_concat(p), t); }
        else if (is_op(p, "-")) { p->at++; l = bin(p, TO_SUB, l, parse_concat(p), t); }
        else return l;
    }
}

static N *parse_concat(P *p) {
    N *l = parse_math2(p);
    while (is_op(p, "~")) {
        tok *t = cur(p);
        p->at++;
        l = bin(p, TO_CAT, l, parse_math2(p), t);
    }
    return l;
}

static N *parse_math2(P *p) {
    N *l = parse_pow(p);
    for (;;) {
        tok *t = cur(p);
        int op = is_op(p, "*") ? TO_MUL : is_op(p, "/") ? TO_DIV : is_op(p, "//") ? TO_FDIV
                                                                  : is_op(p, "%") ? TO_MOD : 0;
        if (!op) return l;
        p->at++;
        l = bin(p, op, l, parse_pow(p), t);
    }
}

static N *parse_pow(P *p) {
    N *l = parse_unary(p, true);
    while (is_op(p, "**")) {
        tok *t = cur(p);
        p->at++;
        l = bin(p, TO_POW, l, parse_unary(p, true), t);
    }
    return l;
}

static N *parse_primary(P *p);
static N *parse_postfix(P *p, N *n);
static N *parse_filter_expr(P *p, N *n);

static N *parse_unary(P *p, bool with_filter) {
    enter(p);
    tok *t = cur(p);
    N *n;
    if (is_op(p, "-") || is_op(p, "+")) {
        p->at++;
        n = mk(p, tok_is(t, TK_OP, "-") ? TN_NEG : TN_POS, t);
        n->a = parse_unary(p, false);
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    if (with_filter) n = parse_filter_expr(p, n);
    leave(p);
    return n;
}

static N *konst(P *p, int ctype, const tok *t) {
    N *n = mk(p, TN_CONST, t);
    n->op = ctype;
    return n;
}

static N *parse_primary(P *p) {
    tok *t = cur(p);
    N *n;
    switch (t->type) {
    case TK_NAME:
        p->at++;
        if (tok_is(t, TK_NAME, "true") || tok_is(t, TK_NAME, "True")) return konst(p, TC_TRUE, t);
        if (tok_is(t, TK_NAME, "false") || tok_is(t, TK_NAME, "False")) return konst(p, TC_FALSE, t);
        if (tok_is(t, TK_NAME, "none") || tok_is(t, TK_NAME, "None")) return konst(p, TC_NONE, t);
        n = mk(p, TN_NAME, t);
        n->s.p = t->p;
        n->s.n = t->n;
        return n;
    case TK_STR: {
        p->at++;
        n = konst(p, TC_STR, t);
        n->s.p = t->p;
        n->s.n = t->n;
        if (cur(p)->type == TK_STR) { /* adjacent literals concatenate */
            size_t tot = t->n;
            size_t j = p->at;
            while (p->toks[j].type == TK_STR) tot += p->toks[j++].n;
            char *b = palloc(p, tot + 1);
            size_t o = 0;
            memcpy(b, t->p, t->n);
            o = t->n;
            while (cur(p)->type == TK_STR) {
                memcpy(b + o, cur(p)->p, cur(p)->n);
                o += cur(p)->n;
                p->at++;
            }
            n->s.p = b;
            n->s.n = o;
        }
        return n;
    }
    case TK_INT:
        p->at++;
        n = konst(p, TC_INT, t);
        n->i = t->i;
        return n;
    case TK_FLOAT:
        p->at++;
        n = konst(p, TC_FLOAT, t);
        n->f = t->f;
        return n;
    case TK_OP:
        if (is_op(p, "(")) {
            p->at++;
            n = parse_tuple(p, true, true, NULL);
            expect_op(p, ")");
            return n;
        }
        if (is_op(p, "[")) {
            p->at++;
            nvec items = {0};
            while (!is_op(p, "]")) {
                if (items.n) expect_op(p, ",");
                if (is_op(p, "]")) break;
                vpush(p, &items, parse_expr(p, true));
            }
            expect_op(p, "]");
            n = mk(p, TN_LIST, t);
            n->v = items.v;
            n->nv = items.n;
            return n;
        }
        if (is_op(p, "{")) {
            p->at++;
            nvec keys = {0}, vals = {0};
            while (!is_op(p, "}")) {
                if (keys.n) expect_op(p, ",");
                if (is_op(p, "}")) break;
                vpush(p, &keys, parse_expr(p, true));
                expect_op(p, ":");
                vpush(p, &vals, parse_expr(p, true));
            }
            expect_op(p, "}");
            n = mk(p, TN_DICT, t);
            n->v = keys.v;
            n->kv = vals.v;
            n->nv = keys.n;
            return n;
        }
        break;
    default:
        break;
    }
    unexpected(p, "an expression");
}

static bool tuple_end(P *p, const char *extra_end) {
    tok *t = cur(p);
    if (t->type == TK_VE || t->type == TK_BE || tok_is(t, TK_OP, ")")) return true;
    return extra_end && tok_is(t, TK_NAME, extra_end);
}

static N *parse_tuple(P *p, bool condexpr, bool explicit_parens, const char *extra_end) {
    tok *t0 = cur(p);
    nvec items = {0};
    bool is_tuple = false;
    for (;;) {
        if (items.n) expect_op(p, ",");
        if (tuple_end(p, extra_end)) break;
        vpush(p, &items, parse_expr(p, condexpr));
        if (is_op(p, ",")) is_tuple = true;
        else break;
    }
    if (!is_tuple) {
        if (items.n) return items.v[0];
        if (!explicit_parens) unexpected(p, "an expression");
    }
    N *n = mk(p, TN_TUPLE, t0);
    n->v = items.v;
    n->nv = items.n;
    return n;
}

/* "(" args ")" with positional then keyword arguments, into n->v / n->kv. */
static void parse_call_args(P *p, N *n) {
    expect_op(p, "(");
    nvec pos = {0}, kw = {0};
    ds8b__tstr names[64];
    while (!is_op(p, ")")) {
        if (pos.n || kw.n) expect_op(p, ",");
        if (is_op(p, ")")) break;
        if (is_op(p, "*") || is_op(p, "**")) perr(p, DS8B_E_TEMPLATE, cur(p)->line, cur(p)->col, "*args and **kwargs are not supported");
        if (cur(p)->type == TK_NAME && tok_is(peek(p, 1), TK_OP, "=")) {
            if (kw.n == 64) perr(p, DS8B_E_LIMIT, cur(p)->line, cur(p)->col, "too many keyword arguments");
            names[kw.n].p = cur(p)->p;
            names[kw.n].n = cur(p)->n;
            p->at += 2;
            vpush(p, &kw, parse_expr(p, true));
        } else {
            if (kw.n) perr(p, DS8B_E_TEMPLATE, cur(p)->line, cur(p)->col, "positional argument after keyword argument");
            vpush(p, &pos, parse_expr(p, true));
        }
    }
    expect_op(p, ")");
    n->v = pos.v;
    n->nv = pos.n;
    n->kv = kw.v;
    n->nk = kw.n;
    if (kw.n) {
        n->kn = palloc(p, kw.n * sizeof *n->kn);
        memcpy(n->kn, names, kw.n * sizeof *n->kn);
    }
}

static N *parse_postfix(P *p, N *n) {
    for (;;) {
        tok *t = cur(p);
        if (is_op(p, ".")) {
            p->at++;
            tok *a = cur(p);
            if (a->type == TK_NAME) {
                N *g = mk(p, TN_ATTR, t);
                g->a = n;
                g->s.p = a->p;
                g->s.n = a->n;
                p->at++;
                n = g;
            } else if (a->type == TK_INT) {
                N *g = mk(p, TN_ITEM, t);
                g->a = n;
                g->b = konst(p, TC_INT, a);
                g->b->i = a->i;
                p->at++;
                n = g;
            } else {
                unexpected(p, "an attribute name");
            }
        } else if (is_op(p, "[")) {
            p->at++;
            enter(p);
            N *start = NULL, *stop = NULL, *step = NULL;
            bool slice = false;
            if (!is_op(p, ":")) start = parse_expr(p, true);
            if (is_op(p, ":")) {
                slice = true;
                p->at++;
                if (!is_op(p, "]") && !is_op(p, ":")) stop = parse_expr(p, true);
                if (is_op(p, ":")) {
                    p->at++;
                    if (!is_op(p, "]")) step = parse_expr(p, true);
                }
            }
            expect_op(p, "]");
            leave(p);
            N *g = mk(p, slice ? TN_SLICE : TN_ITEM, t);
            g->a = n;
            g->b = start;
            g->c = stop;
            g->d = step;
            n = g;
        } else if (is_op(p, "(")) {
            enter(p);
            N *c = mk(p, TN_CALL, t);
            c->a = n;
            parse_call_args(p, c);
            leave(p);
            n = c;
        } else {
            return n;
        }
    }
}

/* Jinja checks filter and test names when it compiles: unknown ones fail
 * even in branches never taken. These are all of Jinja's built-in names;
 * the evaluator implements the ones chat templates use. */
static const char *const FILTERS[] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
    "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "join", "last",
    "length", "list", "lower", "items", "map", "min", "max", "pprint", "random", "reject", "rejectattr",
    "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags", "sum",
    "title", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
    "tojson", NULL};
static const char *const TESTS[] = {
    "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
    "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
    "sameas", "escaped", "in", "eq", "equalto", "ne", "gt", "greaterthan", "ge", "lt", "lessthan", "le", NULL};

static void check_known(P *p, const tok *t, const char *const *names, const char *what) {
    for (int i = 0; names[i]; i++)
        if (tok_is(t, TK_NAME, names[i])) return;
    perr(p, DS8B_E_TEMPLATE, t->line, t->col, "no %s named '%.*s'", what, (int)(t->n > 40 ? 40 : t->n), t->p);
}

static N *parse_filter_expr(P *p, N *n) {
    for (;;) {
        tok *t = cur(p);
        if (is_op(p, "|")) {
            p->at++;
            tok *nm = cur(p);
            if (nm->type != TK_NAME) unexpected(p, "a filter name");
            check_known(p, nm, FILTERS, "filter");
            p->at++;
            N *f = mk(p, TN_FILTER, t);
            f->a = n;
            f->s.p = nm->p;
            f->s.n = nm->n;
            if (is_op(p, "(")) {
                enter(p);
                parse_call_args(p, f);
                leave(p);
            }
            n = f;
        } else if (is_name(p, "is")) {
            p->at++;
            N *f = mk(p, TN_TEST, t);
            if (is_name(p, "not")) { f->op = 1; p->at++; }
            tok *nm = cur(p);
            if (nm->type != TK_NAME) unexpected(p, "a test name");
            check_known(p, nm, TESTS, "test");
            p->at++;
            f->a = n;
            f->s.p = nm->p;
            f->s.n = nm->n;
            tok *c = cur(p);
            if (is_op(p, "(")) {
                enter(p);
                parse_call_args(p, f);
                leave(p);
            } else if ((c->type == TK_NAME || c->type == TK_STR || c->type == TK_INT || c->type == TK_FLOAT ||
                        is_op(p, "[") || is_op(p, "{")) &&
                       !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
                if (is_name(p, "is")) perr(p, DS8B_E_TEMPLATE, c->line, c->col, "tests cannot be chained with 'is'");
                enter(p);
                N *arg = parse_postfix(p, parse_primary(p));
                leave(p);
                f->v = palloc(p, sizeof(N *));
                f->v[0] = arg;
                f->nv = 1;
            }
            n = f;
        } else if (is_op(p, "(")) {
            enter(p);
            N *c = mk(p, TN_CALL, t);
            c->a = n;
            parse_call_args(p, c);
            leave(p);
            n = c;
        } else {
            return n;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Statements                                                          */
/* ------------------------------------------------------------------ */
static N *name_node(P *p) {
    tok *t = cur(p);
    if (t->type != TK_NAME) unexpected(p, "a name");
    p->at++;
    N *n = mk(p, TN_NAME, t);
    n->s.p = t->p;
    n->s.n = t->n;
    return n;
}

/* Assignment target: name, ns.attr (with_ns), or a tuple of names. */
static N *parse_target(P *p, bool with_ns) {
    tok *t0 = cur(p);
    if (with_ns && t0->type == TK_NAME && tok_is(peek(p, 1), TK_OP, ".") && peek(p, 2)->type == TK_NAME) {
        N *n = mk(p, TN_NSREF, t0);
        n->s.p = t0->p;
        n->s.n = t0->n;
        n->s2.p = peek(p, 2)->p;
        n->s2.n = peek(p, 2)->n;
        p->at += 3;
        return n;
    }
    bool paren = false;
    if (is_op(p, "(")) { paren = true; p->at++; }
    nvec items = {0};
    bool is_tuple = paren;
    for (;;) {
        vpush(p, &items, name_node(p));
        if (!is_op(p, ",")) break;
        is_tuple = true;
        p->at++;
        if (paren && is_op(p, ")")) break;
        if (!paren && (is_name(p, "in") || is_op(p, "=") || cur(p)->type == TK_BE)) break;
    }
    if (paren) expect_op(p, ")");
    if (!is_tuple) return items.v[0];
    N *n = mk(p, TN_TUPLE, t0);
    n->v = items.v;
    n->nv = items.n;
    return n;
}

static bool word(const tok *t, const char *w) { return tok_is(t, TK_NAME, w); }

/* Consumes "{% name %}" for an end tag the body stopped at. */
static void end_tag(P *p, const char *w) {
    p->at++; /* {% */
    if (!is_name(p, w)) unexpected(p, w);
    p->at++;
    expect_type(p, TK_BE, "'%}'");
}

static N *parse_for(P *p, tok *t) {
    N *n = mk(p, TN_FOR, t);
    n->a = parse_target(p, false);
    if (!is_name(p, "in")) unexpected(p, "'in'");
    p->at++;
    n->b = parse_tuple(p, false, false, "recursive");
    if (is_name(p, "if")) {
        p->at++;
        n->c = parse_expr(p, true);
    }
    if (is_name(p, "recursive")) perr(p, DS8B_E_TEMPLATE, cur(p)->line, cur(p)->col, "recursive loops are not supported");
    expect_type(p, TK_BE, "'%}'");
    static const char *const e1[] = {"endfor", "else"};
    p->loops++;
    N *body = parse_body(p, e1, 2);
    p->loops--;
    n->v = palloc(p, sizeof(N *));
    n->v[0] = body;
    if (word(peek(p, 1), "else")) {
        p->at += 2;
        expect_type(p, TK_BE, "'%}'");
        static const char *const e2[] = {"endfor"};
        n->d = parse_body(p, e2, 1);
    }
    end_tag(p, "endfor");
    return n;
}

static N *parse_if(P *p, tok *t) {
    N *n = mk(p, TN_IF, t);
    N *head = n;
    static const char *const ends[] = {"elif", "else", "endif"};
    for (;;) {
        n->a = parse_tuple(p, false, false, NULL);
        expect_type(p, TK_BE, "'%}'");
        n->b = parse_body(p, ends, 3);
        tok *w = peek(p, 1);
        if (word(w, "elif")) {
            p->at += 2;
            N *e = mk(p, TN_IF, w);
            n->c = e;
            n = e;
            continue;
        }
        if (word(w, "else")) {
            p->at += 2;
            expect_type(p, TK_BE, "'%}'");
            static const char *const e2[] = {"endif"};
            n->c = parse_body(p, e2, 1);
        }
        end_tag(p, "endif");
        return head;
    }
}

static N *parse_set(P *p, tok *t) {
    N *target = parse_target(p, true);
    if (is_op(p, "=")) {
        p->at++;
        N *n = mk(p, TN_SET, t);
        n->a = target;
        n->b = parse_tuple(p, true, false, NULL);
        expect_type(p, TK_BE, "'%}'");
        return n;
    }
    if (target->kind != TN_NAME && target->kind != TN_NSREF) unexpected(p, "'='");
    N *n = mk(p, TN_SETBLOCK, t);
    n->a = target;
    expect_type(p, TK_BE, "'%}'");
    static const char *const ends[] = {"endset"};
    n->b = parse_body(p, ends, 1);
    end_tag(p, "endset");
    return n;
}

static N *parse_macro(P *p, tok *t) {
    N *n = mk(p, TN_MACRO, t);
    tok *nm = cur(p);
    if (nm->type != TK_NAME) unexpected(p, "a macro name");
    n->s.p = nm->p;
    n->s.n = nm->n;
    p->at++;
    expect_op(p, "(");
    nvec params = {0}, defs = {0};
    while (!is_op(p, ")")) {
        if (params.n) expect_op(p, ",");
        if (is_op(p, ")")) break;
        vpush(p, &params, name_node(p));
        if (is_op(p, "=")) {
            p->at++;
            vpush(p, &defs, parse_expr(p, true));
        } else {
            if (defs.n) unexpected(p, "'=' (parameters with defaults come last)");
            vpush(p, &defs, NULL);
        }
    }
    expect_op(p, ")");
    expect_type(p, TK_BE, "'%}'");
    n->v = params.v;
    n->nv = params.n;
    n->kv = defs.v;
    static const char *const ends[] = {"endmacro"};
    int saved = p->loops;
    p->loops = 0;
    n->a = parse_body(p, ends, 1);
    p->loops = saved;
    end_tag(p, "endmacro");
    return n;
}

static N *parse_statement(P *p) {
    tok *bb = cur(p);
    p->at++;
    tok *t = cur(p);
    if (t->type != TK_NAME) unexpected(p, "a tag name");
    p->at++;
    if (word(t, "for")) return parse_for(p, t);
    if (word(t, "if")) return parse_if(p, t);
    if (word(t, "set")) return parse_set(p, t);
    if (word(t, "macro")) return parse_macro(p, t);
    if (word(t, "break") || word(t, "continue")) {
        if (!p->loops) perr(p, DS8B_E_TEMPLATE, t->line, t->col, "'%.*s' outside a loop", (int)t->n, t->p);
        expect_type(p, TK_BE, "'%}'");
        return mk(p, word(t, "break") ? TN_BREAK : TN_CONTINUE, t);
    }
    if (word(t, "generation")) {
        expect_type(p, TK_BE, "'%}'");
        N *n = mk(p, TN_GEN, t);
        static const char *const ends[] = {"endgeneration"};
        n->a = parse_body(p, ends, 1);
        end_tag(p, "endgeneration");
        return n;
    }
    (void)bb;
    perr(p, DS8B_E_TEMPLATE, t->line, t->col, "unknown or misplaced tag '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
}

static N *parse_body(P *p, const char *const *ends, int nends) {
    enter(p);
    N *body = mk(p, TN_BODY, cur(p));
    nvec st = {0};
    for (;;) {
        tok *t = cur(p);
        if (t->type == TK_EOF) {
            if (nends) perr(p, DS8B_E_TEMPLATE, t->line, t->col, "unexpected end of template, expected '%s'", ends[nends - 1]);
            break;
        }
        if (t->type == TK_TEXT) {
            N *n = mk(p, TN_TEXT, t);
            n->s.p = t->p;
            n->s.n = t->n;
            vpush(p, &st, n);
            p->at++;
            continue;
        }
        if (t->type == TK_VB) {
            p->at++;
            N *n = mk(p, TN_OUT, t);
            n->a = parse_tuple(p, true, false, NULL);
            expect_type(p, TK_VE, "'}}'");
            vpush(p, &st, n);
            continue;
        }
        if (t->type == TK_BB) {
            tok *w = peek(p, 1);
            bool stop = false;
            for (int i = 0; i < nends; i++)
                if (word(w, ends[i])) stop = true;
            if (stop) break;
            vpush(p, &st, parse_statement(p));
            continue;
        }
        unexpected(p, NULL);
    }
    body->v = st.v;
    body->nv = st.n;
    leave(p);
    return body;
}

/* ================================================================== */
/* Compile                                                             */
/* ================================================================== */
static int compile_in(P *p, ds8b__tmpl *t, const char *src, size_t len) {
    int rc = setjmp(p->jb);
    if (rc) return rc;
    /* Normalise newlines and drop one trailing newline, as Jinja does. */
    char *s = palloc(p, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    p->s = s;
    p->len = n;
    lex(p);
    t->root = parse_body(p, NULL, 0);
    return 0;
}

int ds8b__tmpl_compile(const char *src, size_t len, ds8b__tmpl **out, ds8b__err *e) {
    if (!out) return ds8b__seterr(e, DS8B_E_INVALID, "chat template: NULL output");
    *out = NULL;
    if (!src && len) return ds8b__seterr(e, DS8B_E_INVALID, "chat template: NULL source");
    if (len > DS8B__TMPL_MAX_SOURCE)
        return ds8b__seterr(e, DS8B_E_LIMIT, "chat template: source of %zu bytes exceeds the %u-byte limit", len,
                            (unsigned)DS8B__TMPL_MAX_SOURCE);
    ds8b__tmpl *t = ds8b__calloc(DS8B_MEM_TOKENIZER, 1, sizeof *t);
    if (!t) return ds8b__seterr(e, DS8B_E_NOMEM, "chat template: out of memory");
    ds8b__ta_init(&t->ar, DS8B_MEM_TOKENIZER, (size_t)256 << 20);
    P *p = ds8b__calloc(DS8B_MEM_OTHER, 1, sizeof *p);
    if (!p) {
        ds8b__free(t);
        return ds8b__seterr(e, DS8B_E_NOMEM, "chat template: out of memory");
    }
    p->e = e;
    p->ar = &t->ar;
    p->lc_line = p->lc_col = 1;
    int rc = compile_in(p, t, src ? src : "", len);
    ds8b__free(p);
    if (rc) {
        ds8b__tmpl_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void ds8b__tmpl_free(ds8b__tmpl *t) {
    if (!t) return;
    ds8b__ta_free(&t->ar);
    ds8b__free(t);
}
