/*
 * tmpl_eval.c -- the evaluator of the chat template interpreter: values,
 * Python-compatible str()/repr()/json.dumps(), operators, filters, tests,
 * methods and statements.
 *
 * Every value of one render lives in one arena, freed at the end; runtime
 * errors unwind with longjmp to ds8b__tmpl_render_ex. The sandbox reads
 * attributes only of dicts, lists, strings, namespaces and loop objects, and
 * counts loop iterations, nesting, memory and output.
 */
#define _GNU_SOURCE /* memmem */
#include "chat/tmpl_impl.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <utf8proc.h>

typedef ds8b__tnode N;
typedef ds8b__tstr S;

enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS, V_LOOP, V_METH, V_FUNC, V_MACRO };
#define VF_TUPLE 1

typedef struct tlist tlist;
typedef struct tdict tdict;
typedef struct tloop tloop;
typedef struct tmeth tmeth;
typedef struct tmacro tmacro;
typedef struct frame frame;

typedef struct tv {
    uint8_t t, fl;
    union {
        int64_t i;
        double f;
        S s;
        tlist *l;
        tdict *d;
        tloop *lp;
        tmeth *m;
        int fn;
        tmacro *mac;
    } u;
} tv;

struct tlist { tv *it; size_t n, cap; };
struct tdict { tv *k; tv *v; size_t n, cap; };
struct tloop { tlist *items; size_t i; };
struct tmeth { tv self; const char *name; };
struct tmacro { const N *node; frame *closure; };
struct frame { frame *up; S *names; tv *vals; size_t n, cap; };

enum { F_NAMESPACE = 1, F_RANGE, F_RAISE, F_STRFTIME, F_DICT };

typedef struct R {
    jmp_buf jb;
    ds8b__err *e;
    ds8b__tarena ar;
    char *out;
    size_t on, ocap;
    ds8b__tmpl_limits lim;
    uint64_t iters;
    int depth;
    int ctl; /* 1 break, 2 continue */
    int edepth; /* expression evaluation depth */
    frame *globals;
    const N *at;
} R;

/* ================================================================== */
/* Errors and memory                                                   */
/* ================================================================== */
static _Noreturn __attribute__((format(printf, 4, 5))) void fail(R *c, const N *n, int code, const char *fmt, ...) {
    char buf[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!n) n = c->at;
    if (n) ds8b__seterr(c->e, code, "chat template: line %d, column %d: %s", n->line, n->col, buf);
    else ds8b__seterr(c->e, code, "chat template: %s", buf);
    longjmp(c->jb, code);
}

static void *ralloc(R *c, size_t n) {
    void *p = ds8b__ta_alloc(&c->ar, n);
    if (!p) {
        if (c->ar.over == 1) fail(c, NULL, DS8B_E_LIMIT, "working memory limit of %zu bytes reached", c->lim.max_memory);
        fail(c, NULL, DS8B_E_NOMEM, "out of memory");
    }
    return p;
}

static void *ralloc_n(R *c, size_t count, size_t size) {
    size_t b;
    if (!ds8b__mul_ok(count, size, &b)) fail(c, NULL, DS8B_E_LIMIT, "allocation size overflow");
    return ralloc(c, b);
}

static void tick(R *c, uint64_t n) {
    c->iters += n;
    if (c->iters > c->lim.max_iterations)
        fail(c, NULL, DS8B_E_LIMIT, "more than %llu loop iterations", (unsigned long long)c->lim.max_iterations);
}

/* ================================================================== */
/* Values                                                              */
/* ================================================================== */
static tv vundef(const char *p, size_t n) { tv v = {V_UNDEF, 0, {0}}; v.u.s.p = p; v.u.s.n = n; return v; }
static tv vnone(void) { tv v = {V_NONE, 0, {0}}; return v; }
static tv vbool(bool b) { tv v = {V_BOOL, 0, {0}}; v.u.i = b; return v; }
static tv vint(int64_t i) { tv v = {V_INT, 0, {0}}; v.u.i = i; return v; }
static tv vfloat(double f) { tv v = {V_FLOAT, 0, {0}}; v.u.f = f; return v; }
static tv vstr(const char *p, size_t n) { tv v = {V_STR, 0, {0}}; v.u.s.p = p; v.u.s.n = n; return v; }
static tv vcstr(const char *p) { return vstr(p, strlen(p)); }
static tv vlist(tlist *l) { tv v = {V_LIST, 0, {0}}; v.u.l = l; return v; }
static tv vdict(tdict *d) { tv v = {V_DICT, 0, {0}}; v.u.d = d; return v; }

static bool isnum(tv v) { return v.t == V_BOOL || v.t == V_INT || v.t == V_FLOAT; }
static double numf(tv v) { return v.t == V_FLOAT ? v.u.f : (double)v.u.i; }

static bool seq(S s, const char *lit) {
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

static tlist *lnew(R *c, size_t cap) {
    tlist *l = ralloc(c, sizeof *l);
    if (cap) {
        l->it = ralloc_n(c, cap, sizeof(tv));
        l->cap = cap;
    }
    return l;
}
static void lpush(R *c, tlist *l, tv v) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        tv *ni = ralloc_n(c, nc, sizeof(tv));
        if (l->n) memcpy(ni, l->it, l->n * sizeof(tv));
        l->it = ni;
        l->cap = nc;
    }
    l->it[l->n++] = v;
}

static bool veq(R *c, tv a, tv b);

static tdict *dnew(R *c) { return ralloc(c, sizeof(tdict)); }
static tv *dfind(R *c, tdict *d, tv k) {
    for (size_t i = 0; i < d->n; i++)
        if (veq(c, d->k[i], k)) return &d->v[i];
    return NULL;
}
static tv *dfind_s(tdict *d, S k) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == V_STR && d->k[i].u.s.n == k.n && memcmp(d->k[i].u.s.p, k.p, k.n) == 0) return &d->v[i];
    return NULL;
}
static void dpush(R *c, tdict *d, tv k, tv v);
static void dset(R *c, tdict *d, tv k, tv v) {
    tv *slot = dfind(c, d, k);
    if (slot) { *slot = v; return; }
    dpush(c, d, k, v);
}
/* Appends without looking for the key (JSON objects, whose keys are unique). */
static void dpush(R *c, tdict *d, tv k, tv v) {
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 4;
        tv *nk = ralloc_n(c, nc, sizeof(tv)), *nv = ralloc_n(c, nc, sizeof(tv));
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(tv));
            memcpy(nv, d->v, d->n * sizeof(tv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = nc;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
}

static const char *tname(tv v) {
    switch (v.t) {
    case V_UNDEF: return "Undefined";
    case V_NONE: return "NoneType";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return "str";
    case V_LIST: return v.fl & VF_TUPLE ? "tuple" : "list";
    case V_DICT: return "dict";
    case V_NS: return "Namespace";
    case V_LOOP: return "LoopContext";
    case V_METH: return "builtin_function_or_method";
    case V_FUNC: return "function";
    default: return "Macro";
    }
}

static _Noreturn void fail_undef(R *c, const N *n, tv v) {
    if (v.u.s.p) fail(c, n, DS8B_E_TEMPLATE, "'%.*s' is undefined", (int)(v.u.s.n > 80 ? 80 : v.u.s.n), v.u.s.p);
    fail(c, n, DS8B_E_TEMPLATE, "use of an undefined value");
}

static bool truthy(tv v) {
    switch (v.t) {
    case V_UNDEF: case V_NONE: return false;
    case V_BOOL: case V_INT: return v.u.i != 0;
    case V_FLOAT: return v.u.f != 0.0;
    case V_STR: return v.u.s.n != 0;
    case V_LIST: return v.u.l->n != 0;
    case V_DICT: return v.u.d->n != 0;
    default: return true;
    }
}

static bool veq_d(R *c, tv a, tv b, int depth);
static bool veq(R *c, tv a, tv b) { return veq_d(c, a, b, 0); }
static bool veq_d(R *c, tv a, tv b, int depth) {
    if (depth > DS8B__TMPL_MAX_NESTING) fail(c, NULL, DS8B_E_LIMIT, "values nested too deeply to compare");
    if (isnum(a) && isnum(b)) {
        if (a.t != V_FLOAT && b.t != V_FLOAT) return a.u.i == b.u.i;
        return numf(a) == numf(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case V_UNDEF: case V_NONE: return true;
    case V_STR: return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case V_LIST:
        if ((a.fl & VF_TUPLE) != (b.fl & VF_TUPLE) || a.u.l->n != b.u.l->n) return false;
        if (a.u.l == b.u.l) return true;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!veq_d(c, a.u.l->it[i], b.u.l->it[i], depth + 1)) return false;
        return true;
    case V_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        if (a.u.d == b.u.d) return true;
        for (size_t i = 0; i < a.u.d->n; i++) {
            tv *o = dfind(c, b.u.d, a.u.d->k[i]);
            if (!o || !veq_d(c, a.u.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    case V_NS: return a.u.d == b.u.d;
    case V_LOOP: return a.u.lp == b.u.lp;
    case V_FUNC: return a.u.fn == b.u.fn;
    case V_MACRO: return a.u.mac == b.u.mac;
    default: return false;
    }
}

/* ================================================================== */
/* String building                                                     */
/* ================================================================== */
typedef struct sb { char *p; size_t n, cap; } sb;

static void sb_put(R *c, sb *b, const void *s, size_t n) {
    if (!n) return;
    if (b->cap - b->n < n) {
        size_t need, nc = b->cap ? b->cap * 2 : 64;
        if (!ds8b__add_ok(b->n, n, &need)) fail(c, NULL, DS8B_E_LIMIT, "string too long");
        if (nc < need) nc = need;
        char *np = ralloc(c, nc);
        if (b->n) memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void sb_puts(R *c, sb *b, const char *s) { sb_put(c, b, s, strlen(s)); }
static void sb_putc(R *c, sb *b, char ch) { sb_put(c, b, &ch, 1); }
static void sb_cp(R *c, sb *b, uint32_t cp) {
    char o[4];
    size_t n;
    if (cp < 0x80) { o[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { o[0] = (char)(0xc0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
    else if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
    } else {
        o[0] = (char)(0xf0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
    }
    sb_put(c, b, o, n);
}
static tv sb_val(sb *b) { return vstr(b->p ? b->p : "", b->n); }

/* A code point decoded at s[i]; a malformed byte is a "code point" of its own
 * whose re-encoding must copy the raw byte, so callers copy source bytes. */
#define U8NEXT(s, n, i, cp) ((i) += ds8b__tm_u8dec((s) + (i), (n) - (i), &(cp)))

static size_t u8count(S s) {
    size_t k = 0;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        U8NEXT(s.p, s.n, i, cp);
        k++;
    }
    return k;
}

/* Python float repr. */
static void fmt_float(double d, char *out, size_t cap) {
    if (isnan(d)) { snprintf(out, cap, "nan"); return; }
    if (isinf(d)) { snprintf(out, cap, d > 0 ? "inf" : "-inf"); return; }
    if (d == 0) { snprintf(out, cap, signbit(d) ? "-0.0" : "0.0"); return; }
    char tmp[48];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    char digits[24];
    int nd = 0;
    const char *q = tmp;
    bool neg = false;
    if (*q == '-') { neg = true; q++; }
    while (*q && *q != 'e') {
        if (*q >= '0' && *q <= '9' && nd < 20) digits[nd++] = *q;
        q++;
    }
    int ex = *q == 'e' ? atoi(q + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char *o = out;
    char *end = out + cap - 1;
#define PUT(ch) do { if (o < end) *o++ = (ch); } while (0)
    if (neg) PUT('-');
    if (ex >= -4 && ex < 16) {
        if (ex >= 0) {
            for (int i = 0; i <= ex; i++) PUT(i < nd ? digits[i] : '0');
            PUT('.');
            if (nd > ex + 1)
                for (int i = ex + 1; i < nd; i++) PUT(digits[i]);
            else PUT('0');
        } else {
            PUT('0');
            PUT('.');
            for (int i = 0; i < -ex - 1; i++) PUT('0');
            for (int i = 0; i < nd; i++) PUT(digits[i]);
        }
        *o = 0;
    } else {
        PUT(digits[0]);
        if (nd > 1) {
            PUT('.');
            for (int i = 1; i < nd; i++) PUT(digits[i]);
        }
        *o = 0;
        size_t used = (size_t)(o - out);
        snprintf(o, cap - used, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
    }
#undef PUT
}

static bool printable(uint32_t cp) {
    if (cp < 0x20 || cp == 0x7f) return false;
    if (cp < 0x7f) return true;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
    switch (cat) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return false;
    default:
        return true;
    }
}

static void repr_str(R *c, sb *b, S s) {
    bool sq = memchr(s.p, '\'', s.n) != NULL, dq = memchr(s.p, '"', s.n) != NULL;
    char q = (sq && !dq) ? '"' : '\'';
    sb_putc(c, b, q);
    for (size_t i = 0; i < s.n;) {
        size_t st = i;
        uint32_t cp;
        U8NEXT(s.p, s.n, i, cp);
        char esc[16];
        if (cp == (uint32_t)q || cp == '\\') { sb_putc(c, b, '\\'); sb_putc(c, b, (char)cp); }
        else if (cp == '\n') sb_puts(c, b, "\\n");
        else if (cp == '\r') sb_puts(c, b, "\\r");
        else if (cp == '\t') sb_puts(c, b, "\\t");
        else if (i - st == 1 && cp >= 0x80) { snprintf(esc, sizeof esc, "\\x%02x", cp); sb_puts(c, b, esc); }
        else if (!printable(cp)) {
            if (cp < 0x100) snprintf(esc, sizeof esc, "\\x%02x", cp);
            else if (cp < 0x10000) snprintf(esc, sizeof esc, "\\u%04x", cp);
            else snprintf(esc, sizeof esc, "\\U%08x", cp);
            sb_puts(c, b, esc);
        } else sb_put(c, b, s.p + st, i - st);
    }
    sb_putc(c, b, q);
}

static void str_into(R *c, sb *b, tv v, int depth);

static void repr_into(R *c, sb *b, tv v, int depth) {
    if (depth > DS8B__TMPL_MAX_NESTING) fail(c, NULL, DS8B_E_LIMIT, "value nested too deeply to print");
    if (v.t == V_STR) { repr_str(c, b, v.u.s); return; }
    if (v.t == V_UNDEF) { sb_puts(c, b, "Undefined"); return; }
    str_into(c, b, v, depth);
}

static void str_into(R *c, sb *b, tv v, int depth) {
    char num[64];
    if (depth > DS8B__TMPL_MAX_NESTING) fail(c, NULL, DS8B_E_LIMIT, "value nested too deeply to print");
    switch (v.t) {
    case V_UNDEF: return;
    case V_NONE: sb_puts(c, b, "None"); return;
    case V_BOOL: sb_puts(c, b, v.u.i ? "True" : "False"); return;
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v.u.i); sb_puts(c, b, num); return;
    case V_FLOAT: fmt_float(v.u.f, num, sizeof num); sb_puts(c, b, num); return;
    case V_STR: sb_put(c, b, v.u.s.p, v.u.s.n); return;
    case V_LIST: {
        bool tup = v.fl & VF_TUPLE;
        sb_putc(c, b, tup ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) sb_puts(c, b, ", ");
            repr_into(c, b, v.u.l->it[i], depth + 1);
        }
        if (tup && v.u.l->n == 1) sb_putc(c, b, ',');
        sb_putc(c, b, tup ? ')' : ']');
        return;
    }
    case V_DICT: case V_NS:
        sb_puts(c, b, v.t == V_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) sb_puts(c, b, ", ");
            repr_into(c, b, v.u.d->k[i], depth + 1);
            sb_puts(c, b, ": ");
            repr_into(c, b, v.u.d->v[i], depth + 1);
        }
        sb_puts(c, b, v.t == V_NS ? "}>" : "}");
        return;
    case V_LOOP: sb_puts(c, b, "<LoopContext>"); return;
    case V_METH: sb_puts(c, b, "<built-in method "); sb_puts(c, b, v.u.m->name); sb_putc(c, b, '>'); return;
    case V_FUNC: sb_puts(c, b, "<function>"); return;
    default: sb_puts(c, b, "<Macro>"); return;
    }
}

static S to_s(R *c, tv v) {
    if (v.t == V_STR) return v.u.s;
    sb b = {0};
    str_into(c, &b, v, 0);
    S s = {b.p ? b.p : "", b.n};
    return s;
}

/* json.dumps(ensure_ascii=False), with indent (<0: none) and sort_keys. */
static void json_str(R *c, sb *b, S s) {
    sb_putc(c, b, '"');
    size_t run = 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        const char *esc = NULL;
        char tmp[8];
        if (ch == '"') esc = "\\\"";
        else if (ch == '\\') esc = "\\\\";
        else if (ch == '\n') esc = "\\n";
        else if (ch == '\r') esc = "\\r";
        else if (ch == '\t') esc = "\\t";
        else if (ch == '\b') esc = "\\b";
        else if (ch == '\f') esc = "\\f";
        else if (ch < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", ch); esc = tmp; }
        if (esc) {
            sb_put(c, b, s.p + run, i - run);
            sb_puts(c, b, esc);
            run = i + 1;
        }
    }
    sb_put(c, b, s.p + run, s.n - run);
    sb_putc(c, b, '"');
}

static void json_nl(R *c, sb *b, const S *ind, int level) {
    sb_putc(c, b, '\n');
    for (int i = 0; i < level; i++) sb_put(c, b, ind->p, ind->n);
}


static void json_into(R *c, sb *b, tv v, const S *ind, int level, bool sort) {
    char num[64];
    if (level > DS8B__TMPL_MAX_NESTING) fail(c, NULL, DS8B_E_LIMIT, "value nested too deeply for tojson");
    switch (v.t) {
    case V_NONE: sb_puts(c, b, "null"); return;
    case V_BOOL: sb_puts(c, b, v.u.i ? "true" : "false"); return;
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v.u.i); sb_puts(c, b, num); return;
    case V_FLOAT:
        if (isnan(v.u.f)) sb_puts(c, b, "NaN");
        else if (isinf(v.u.f)) sb_puts(c, b, v.u.f > 0 ? "Infinity" : "-Infinity");
        else { fmt_float(v.u.f, num, sizeof num); sb_puts(c, b, num); }
        return;
    case V_STR: json_str(c, b, v.u.s); return;
    case V_LIST:
        if (!v.u.l->n) { sb_puts(c, b, "[]"); return; }
        sb_putc(c, b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) sb_puts(c, b, ind ? "," : ", ");
            if (ind) json_nl(c, b, ind, level + 1);
            json_into(c, b, v.u.l->it[i], ind, level + 1, sort);
        }
        if (ind) json_nl(c, b, ind, level);
        sb_putc(c, b, ']');
        return;
    case V_DICT: {
        tdict *d = v.u.d;
        if (!d->n) { sb_puts(c, b, "{}"); return; }
        size_t *ord = ralloc_n(c, d->n, sizeof(size_t));
        for (size_t i = 0; i < d->n; i++) ord[i] = i;
        if (sort) {
            /* insertion sort by key text: stable and small */
            for (size_t i = 1; i < d->n; i++) {
                size_t x = ord[i], j = i;
                while (j > 0) {
                    S a = to_s(c, d->k[ord[j - 1]]), bb = to_s(c, d->k[x]);
                    size_t m = a.n < bb.n ? a.n : bb.n;
                    int r = memcmp(a.p, bb.p, m);
                    if (r < 0 || (r == 0 && a.n <= bb.n)) break;
                    ord[j] = ord[j - 1];
                    j--;
                }
                ord[j] = x;
            }
        }
        sb_putc(c, b, '{');
        for (size_t i = 0; i < d->n; i++) {
            tv k = d->k[ord[i]];
            if (i) sb_puts(c, b, ind ? "," : ", ");
            if (ind) json_nl(c, b, ind, level + 1);
            if (k.t == V_STR) json_str(c, b, k.u.s);
            else if (k.t == V_NONE) sb_puts(c, b, "\"null\"");
            else if (k.t == V_BOOL) sb_puts(c, b, k.u.i ? "\"true\"" : "\"false\"");
            else if (k.t == V_INT || k.t == V_FLOAT) {
                sb_putc(c, b, '"');
                json_into(c, b, k, NULL, level + 1, sort);
                sb_putc(c, b, '"');
            } else fail(c, NULL, DS8B_E_TEMPLATE, "tojson: keys must be str, int, float, bool or None, not %s", tname(k));
            sb_puts(c, b, ": ");
            json_into(c, b, d->v[ord[i]], ind, level + 1, sort);
        }
        if (ind) json_nl(c, b, ind, level);
        sb_putc(c, b, '}');
        return;
    }
    default:
        fail(c, NULL, DS8B_E_TEMPLATE, "tojson: object of type %s is not JSON serializable", tname(v));
    }
}

/* ================================================================== */
/* Output                                                              */
/* ================================================================== */
static void emit(R *c, const char *s, size_t n) {
    if (!n) return;
    if (n > c->lim.max_output - c->on)
        fail(c, NULL, DS8B_E_LIMIT, "rendered text exceeds the %zu-byte output limit", c->lim.max_output);
    if (c->ocap - c->on <= n) {
        size_t nc = c->ocap ? c->ocap * 2 : 4096;
        while (nc - c->on <= n) nc *= 2;
        if (nc > c->lim.max_output + 1) nc = c->lim.max_output + 1;
        char *np = ds8b__realloc(DS8B_MEM_OTHER, c->out, nc);
        if (!np) fail(c, NULL, DS8B_E_NOMEM, "out of memory for the rendered text");
        c->out = np;
        c->ocap = nc;
    }
    memcpy(c->out + c->on, s, n);
    c->on += n;
}

/* ================================================================== */
/* Frames                                                              */
/* ================================================================== */
static frame *fnew(R *c, frame *up) {
    frame *f = ralloc(c, sizeof *f);
    f->up = up;
    return f;
}
static void fset(R *c, frame *f, S name, tv v) {
    for (size_t i = 0; i < f->n; i++)
        if (f->names[i].n == name.n && memcmp(f->names[i].p, name.p, name.n) == 0) { f->vals[i] = v; return; }
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 4;
        S *nn = ralloc_n(c, nc, sizeof(S));
        tv *nv = ralloc_n(c, nc, sizeof(tv));
        if (f->n) {
            memcpy(nn, f->names, f->n * sizeof(S));
            memcpy(nv, f->vals, f->n * sizeof(tv));
        }
        f->names = nn;
        f->vals = nv;
        f->cap = nc;
    }
    f->names[f->n] = name;
    f->vals[f->n++] = v;
}
static void fsetc(R *c, frame *f, const char *name, tv v) {
    S s = {name, strlen(name)};
    fset(c, f, s, v);
}
static bool flookup(frame *f, S name, tv *out) {
    for (; f; f = f->up)
        for (size_t i = f->n; i-- > 0;)
            if (f->names[i].n == name.n && memcmp(f->names[i].p, name.p, name.n) == 0) { *out = f->vals[i]; return true; }
    return false;
}

/* ================================================================== */
/* Strings                                                             */
/* ================================================================== */
static const char *sfind(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    return memmem(h, hn, nd, nn); /* linear time in glibc */
}

static const char *srfind(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn > hn) return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (memcmp(h + i, nd, nn) == 0) return h + i;
    return NULL;
}

static bool in_set(uint32_t cp, const S *chars) {
    if (!chars) return ds8b__tm_isspace(cp);
    for (size_t i = 0; i < chars->n;) {
        uint32_t x;
        U8NEXT(chars->p, chars->n, i, x);
        if (x == cp) return true;
    }
    return false;
}

static S sstrip(S s, const S *chars, bool left, bool right) {
    size_t a = 0, z = s.n;
    if (left) {
        while (a < s.n) {
            uint32_t cp;
            size_t k = ds8b__tm_u8dec(s.p + a, s.n - a, &cp);
            if (!in_set(cp, chars)) break;
            a += k;
        }
    }
    if (right) {
        size_t keep = a;
        for (size_t i = a; i < s.n;) {
            uint32_t cp;
            U8NEXT(s.p, s.n, i, cp);
            if (!in_set(cp, chars)) keep = i;
        }
        z = keep;
    }
    S r = {s.p + a, z - a};
    return r;
}

typedef uint32_t (*cpmap)(uint32_t);
static uint32_t cp_lower(uint32_t c) { return (uint32_t)utf8proc_tolower((utf8proc_int32_t)c); }
static uint32_t cp_upper(uint32_t c) { return (uint32_t)utf8proc_toupper((utf8proc_int32_t)c); }
static uint32_t cp_title(uint32_t c) { return (uint32_t)utf8proc_totitle((utf8proc_int32_t)c); }
static bool cp_cased(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

/* mode 0: map every code point with f; 1 capitalize; 2 title. */
static tv smap(R *c, S s, cpmap f, int mode) {
    sb b = {0};
    bool prev_cased = false, first = true;
    for (size_t i = 0; i < s.n;) {
        size_t st = i;
        uint32_t cp;
        U8NEXT(s.p, s.n, i, cp);
        if (i - st == 1 && cp >= 0x80) { sb_put(c, &b, s.p + st, 1); first = false; continue; }
        uint32_t o;
        if (mode == 0) o = f(cp);
        else if (mode == 1) o = first ? cp_title(cp) : cp_lower(cp);
        else if (mode == 3) {
            /* Jinja's title filter: words start after blanks, '-', '(', '{', '[' and '<' */
            bool delim = ds8b__tm_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
            o = delim ? cp : prev_cased ? cp_lower(cp) : cp_upper(cp);
            prev_cased = !delim;
        }
        else {
            o = prev_cased ? cp_lower(cp) : cp_title(cp);
            prev_cased = cp_cased(cp);
        }
        first = false;
        sb_cp(c, &b, o);
    }
    return sb_val(&b);
}

static tv sreplace(R *c, S s, S old, S nw, int64_t count) {
    sb b = {0};
    if (count < 0) count = INT64_MAX;
    if (old.n == 0) {
        for (size_t i = 0; i <= s.n;) {
            if (count > 0) { sb_put(c, &b, nw.p, nw.n); count--; }
            if (i == s.n) break;
            size_t st = i;
            uint32_t cp;
            U8NEXT(s.p, s.n, i, cp);
            sb_put(c, &b, s.p + st, i - st);
        }
        return sb_val(&b);
    }
    size_t i = 0;
    while (count > 0) {
        const char *f = sfind(s.p + i, s.n - i, old.p, old.n);
        if (!f) break;
        size_t at = (size_t)(f - s.p);
        sb_put(c, &b, s.p + i, at - i);
        sb_put(c, &b, nw.p, nw.n);
        i = at + old.n;
        count--;
    }
    sb_put(c, &b, s.p + i, s.n - i);
    return sb_val(&b);
}

static tv ssplit(R *c, S s, const S *sep, int64_t maxsplit, bool from_right) {
    tlist *l = lnew(c, 0);
    if (maxsplit < 0) maxsplit = INT64_MAX;
    if (!sep) {
        /* whitespace runs; from_right walks backwards via collected pieces */
        size_t i = 0;
        if (!from_right) {
            for (;;) {
                while (i < s.n) {
                    uint32_t cp;
                    size_t k = ds8b__tm_u8dec(s.p + i, s.n - i, &cp);
                    if (!ds8b__tm_isspace(cp)) break;
                    i += k;
                }
                if (i >= s.n) break;
                if ((int64_t)l->n == maxsplit) {
                    S rest = sstrip((S){s.p + i, s.n - i}, NULL, false, true);
                    lpush(c, l, vstr(rest.p, rest.n));
                    break;
                }
                size_t st = i;
                while (i < s.n) {
                    uint32_t cp;
                    size_t k = ds8b__tm_u8dec(s.p + i, s.n - i, &cp);
                    if (ds8b__tm_isspace(cp)) break;
                    i += k;
                }
                lpush(c, l, vstr(s.p + st, i - st));
                tick(c, 1);
            }
            return vlist(l);
        }
        /* rsplit(None, n): split all words, then rejoin the leftmost part */
        tv all = ssplit(c, s, NULL, -1, false);
        tlist *w = all.u.l;
        if ((int64_t)w->n <= maxsplit + 1 || maxsplit == INT64_MAX) return all;
        size_t keep = w->n - (size_t)maxsplit; /* words merged into the first piece */
        S last = w->it[keep - 1].u.s;
        S head = sstrip((S){s.p, (size_t)(last.p + last.n - s.p)}, NULL, true, false);
        lpush(c, l, vstr(head.p, head.n));
        for (size_t i2 = keep; i2 < w->n; i2++) lpush(c, l, w->it[i2]);
        return vlist(l);
    }
    if (sep->n == 0) fail(c, NULL, DS8B_E_TEMPLATE, "split: empty separator");
    if (!from_right) {
        size_t i = 0;
        for (;;) {
            const char *f = (int64_t)l->n < maxsplit ? sfind(s.p + i, s.n - i, sep->p, sep->n) : NULL;
            if (!f) { lpush(c, l, vstr(s.p + i, s.n - i)); break; }
            lpush(c, l, vstr(s.p + i, (size_t)(f - (s.p + i))));
            i = (size_t)(f - s.p) + sep->n;
            tick(c, 1);
        }
        return vlist(l);
    }
    /* from the right: collect reversed then flip */
    size_t end = s.n;
    int64_t done = 0;
    for (;;) {
        const char *f = done < maxsplit ? srfind(s.p, end, sep->p, sep->n) : NULL;
        if (!f) { lpush(c, l, vstr(s.p, end)); break; }
        size_t at = (size_t)(f - s.p);
        lpush(c, l, vstr(s.p + at + sep->n, end - at - sep->n));
        end = at;
        done++;
        tick(c, 1);
    }
    for (size_t i = 0, j = l->n - 1; i < j; i++, j--) {
        tv t = l->it[i];
        l->it[i] = l->it[j];
        l->it[j] = t;
    }
    return vlist(l);
}

/* Byte offsets of every code point of s, plus s.n at the end. */
static size_t *cp_offsets(R *c, S s, size_t *count) {
    size_t n = u8count(s);
    size_t *o = ralloc_n(c, n + 1, sizeof(size_t));
    size_t k = 0;
    for (size_t i = 0; i < s.n;) {
        o[k++] = i;
        uint32_t cp;
        U8NEXT(s.p, s.n, i, cp);
    }
    o[k] = s.n;
    *count = n;
    return o;
}

static tlist *str_chars(R *c, S s) {
    size_t n;
    size_t *o = cp_offsets(c, s, &n);
    tlist *l = lnew(c, n);
    for (size_t i = 0; i < n; i++) l->it[i] = vstr(s.p + o[i], o[i + 1] - o[i]);
    l->n = n;
    return l;
}

/* ================================================================== */
/* Iteration, attributes, items                                        */
/* ================================================================== */
static tlist *iter_list(R *c, tv v, const N *n) {
    switch (v.t) {
    case V_UNDEF: return lnew(c, 0);
    case V_LIST: return v.u.l;
    case V_DICT: {
        tlist *l = lnew(c, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) l->it[i] = v.u.d->k[i];
        l->n = v.u.d->n;
        return l;
    }
    case V_STR: return str_chars(c, v.u.s);
    default: fail(c, n, DS8B_E_TEMPLATE, "'%s' object is not iterable", tname(v));
    }
}

static const char *const STR_METHODS[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith",
                                          "replace", "lower", "upper", "title", "capitalize", "find", "rfind",
                                          "count", "join", "splitlines", "isdigit", "isalpha", "isspace",
                                          "isalnum", "islower", "isupper", "index", NULL};
static const char *const LIST_METHODS[] = {"index", "count", NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", NULL};

static const char *in_list(S name, const char *const *names) {
    for (int i = 0; names[i]; i++)
        if (seq(name, names[i])) return names[i];
    return NULL;
}

static tv meth(R *c, tv self, const char *name) {
    tmeth *m = ralloc(c, sizeof *m);
    m->self = self;
    m->name = name;
    tv v = {V_METH, 0, {0}};
    v.u.m = m;
    return v;
}

static tv getattr_v(R *c, tv o, S name, const N *n) {
    const char *mn;
    switch (o.t) {
    case V_UNDEF: fail_undef(c, n, o);
    case V_DICT:
        if ((mn = in_list(name, DICT_METHODS))) return meth(c, o, mn);
        {
            tv *r = dfind_s(o.u.d, name);
            if (r) return *r;
        }
        break;
    case V_NS: {
        tv *r = dfind_s(o.u.d, name);
        if (r) return *r;
        break;
    }
    case V_STR:
        if ((mn = in_list(name, STR_METHODS))) return meth(c, o, mn);
        break;
    case V_LIST:
        if ((mn = in_list(name, LIST_METHODS))) return meth(c, o, mn);
        break;
    case V_LOOP: {
        tloop *lp = o.u.lp;
        size_t len = lp->items->n, i = lp->i;
        if (seq(name, "index")) return vint((int64_t)i + 1);
        if (seq(name, "index0")) return vint((int64_t)i);
        if (seq(name, "revindex")) return vint((int64_t)(len - i));
        if (seq(name, "revindex0")) return vint((int64_t)(len - i - 1));
        if (seq(name, "first")) return vbool(i == 0);
        if (seq(name, "last")) return vbool(i + 1 == len);
        if (seq(name, "length")) return vint((int64_t)len);
        if (seq(name, "depth")) return vint(1);
        if (seq(name, "depth0")) return vint(0);
        if (seq(name, "previtem")) return i > 0 ? lp->items->it[i - 1] : vundef("previtem", 8);
        if (seq(name, "nextitem")) return i + 1 < len ? lp->items->it[i + 1] : vundef("nextitem", 8);
        if (seq(name, "cycle")) return meth(c, o, "cycle");
        break;
    }
    default:
        break;
    }
    return vundef(name.p, name.n);
}

static bool as_index(tv k, int64_t *i) {
    if (k.t == V_INT || k.t == V_BOOL) { *i = k.u.i; return true; }
    return false;
}

static tv getitem_v(R *c, tv o, tv k, const N *n) {
    int64_t i;
    switch (o.t) {
    case V_UNDEF: fail_undef(c, n, o);
    case V_DICT: case V_NS: {
        tv *r = dfind(c, o.u.d, k);
        if (r) return *r;
        break;
    }
    case V_LIST:
        if (as_index(k, &i)) {
            int64_t len = (int64_t)o.u.l->n;
            if (i < 0) i += len;
            if (i >= 0 && i < len) return o.u.l->it[i];
            return vundef(NULL, 0);
        }
        break;
    case V_STR:
        if (as_index(k, &i)) {
            size_t cnt;
            size_t *off = cp_offsets(c, o.u.s, &cnt);
            int64_t len = (int64_t)cnt;
            if (i < 0) i += len;
            if (i >= 0 && i < len) return vstr(o.u.s.p + off[i], off[i + 1] - off[i]);
            return vundef(NULL, 0);
        }
        break;
    default:
        break;
    }
    if (k.t == V_STR) return getattr_v(c, o, k.u.s, n);
    return vundef(NULL, 0);
}

static int64_t slice_arg(R *c, tv v, int64_t def, const N *n) {
    if (v.t == V_NONE || v.t == V_UNDEF) return def;
    if (v.t == V_INT || v.t == V_BOOL) return v.u.i;
    fail(c, n, DS8B_E_TEMPLATE, "slice indices must be integers or None");
}

static tv slice_v(R *c, tv o, tv a, tv b, tv st, const N *n) {
    int64_t step = slice_arg(c, st, 1, n);
    if (step == 0) fail(c, n, DS8B_E_TEMPLATE, "slice step cannot be zero");
    if (step == INT64_MIN) step = -INT64_MAX;
    size_t cnt;
    size_t *off = NULL;
    if (o.t == V_STR) off = cp_offsets(c, o.u.s, &cnt);
    else if (o.t == V_LIST) cnt = o.u.l->n;
    else if (o.t == V_UNDEF) fail_undef(c, n, o);
    else return vundef(NULL, 0);
    int64_t len = (int64_t)cnt, start, stop;
    if (step > 0) {
        start = slice_arg(c, a, 0, n);
        stop = slice_arg(c, b, len, n);
        if (start < 0) { start += len; if (start < 0) start = 0; } else if (start > len) start = len;
        if (stop < 0) { stop += len; if (stop < 0) stop = 0; } else if (stop > len) stop = len;
    } else {
        start = slice_arg(c, a, len - 1, n);
        stop = slice_arg(c, b, -1 - len, n);
        if (start < 0) { start += len; if (start < 0) start = -1; } else if (start >= len) start = len - 1;
        if (stop < 0) { stop += len; if (stop < 0) stop = -1; } else if (stop >= len) stop = len - 1;
    }
    if (o.t == V_STR) {
        sb bb = {0};
        if (step == 1) {
            if (stop > start) return vstr(o.u.s.p + off[start], off[stop] - off[start]);
            return vstr("", 0);
        }
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            sb_put(c, &bb, o.u.s.p + off[i], off[i + 1] - off[i]);
        return sb_val(&bb);
    }
    tlist *l = lnew(c, 0);
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) lpush(c, l, o.u.l->it[i]);
    tv r = vlist(l);
    r.fl = o.fl;
    return r;
}

/* ================================================================== */
/* Operators                                                           */
/* ================================================================== */
static int vcmp_d(R *c, tv a, tv b, const N *n, int depth);
static int vcmp(R *c, tv a, tv b, const N *n) { return vcmp_d(c, a, b, n, 0); }
static int vcmp_d(R *c, tv a, tv b, const N *n, int depth) {
    if (depth > DS8B__TMPL_MAX_NESTING) fail(c, n, DS8B_E_LIMIT, "values nested too deeply to compare");
    if (isnum(a) && isnum(b)) {
        if (a.t != V_FLOAT && b.t != V_FLOAT) return a.u.i < b.u.i ? -1 : a.u.i > b.u.i;
        double x = numf(a), y = numf(b);
        return x < y ? -1 : x > y;
    }
    if (a.t == V_STR && b.t == V_STR) {
        size_t m = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int r = memcmp(a.u.s.p, b.u.s.p, m);
        if (r) return r < 0 ? -1 : 1;
        return a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n;
    }
    if (a.t == V_LIST && b.t == V_LIST && (a.fl & VF_TUPLE) == (b.fl & VF_TUPLE)) {
        size_t m = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < m; i++) {
            if (veq(c, a.u.l->it[i], b.u.l->it[i])) continue;
            return vcmp_d(c, a.u.l->it[i], b.u.l->it[i], n, depth + 1);
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
    }
    if (a.t == V_UNDEF) fail_undef(c, n, a);
    if (b.t == V_UNDEF) fail_undef(c, n, b);
    fail(c, n, DS8B_E_TEMPLATE, "cannot order '%s' and '%s'", tname(a), tname(b));
}

static bool contains(R *c, tv hay, tv x, const N *n) {
    switch (hay.t) {
    case V_STR:
        if (x.t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "'in <string>' requires string as left operand, not %s", tname(x));
        return sfind(hay.u.s.p, hay.u.s.n, x.u.s.p, x.u.s.n) != NULL;
    case V_LIST:
        for (size_t i = 0; i < hay.u.l->n; i++)
            if (veq(c, hay.u.l->it[i], x)) return true;
        return false;
    case V_DICT: return dfind(c, hay.u.d, x) != NULL;
    case V_UNDEF: return false;
    default: fail(c, n, DS8B_E_TEMPLATE, "argument of type '%s' is not iterable", tname(hay));
    }
}

static tv concat_s(R *c, S a, S b) {
    size_t tot;
    if (!ds8b__add_ok(a.n, b.n, &tot)) fail(c, NULL, DS8B_E_LIMIT, "string too long");
    char *p = ralloc(c, tot ? tot : 1);
    memcpy(p, a.p, a.n);
    memcpy(p + a.n, b.p, b.n);
    return vstr(p, tot);
}

static tv repeat(R *c, tv seqv, int64_t k, const N *n) {
    if (k <= 0) return seqv.t == V_STR ? vstr("", 0) : vlist(lnew(c, 0));
    if (seqv.t == V_STR) {
        size_t tot;
        if (!ds8b__mul_ok(seqv.u.s.n, (size_t)k, &tot) || tot > c->lim.max_memory)
            fail(c, n, DS8B_E_LIMIT, "string repetition too large");
        char *p = ralloc(c, tot ? tot : 1);
        for (int64_t i = 0; i < k; i++) memcpy(p + (size_t)i * seqv.u.s.n, seqv.u.s.p, seqv.u.s.n);
        return vstr(p, tot);
    }
    size_t tot;
    if (!ds8b__mul_ok(seqv.u.l->n, (size_t)k, &tot) || tot > c->lim.max_iterations)
        fail(c, n, DS8B_E_LIMIT, "list repetition too large");
    tlist *l = lnew(c, tot);
    for (size_t i = 0; i < tot; i++) l->it[i] = seqv.u.l->it[i % seqv.u.l->n];
    l->n = tot;
    return vlist(l);
}

static tv binop(R *c, int op, tv a, tv b, const N *n) {
    if (op == TO_CAT) return concat_s(c, to_s(c, a), to_s(c, b));
    if (a.t == V_UNDEF) fail_undef(c, n, a);
    if (b.t == V_UNDEF) fail_undef(c, n, b);
    if (isnum(a) && isnum(b)) {
        bool fl = a.t == V_FLOAT || b.t == V_FLOAT;
        int64_t x = a.u.i, y = b.u.i, r;
        double fx = numf(a), fy = numf(b);
        switch (op) {
        case TO_ADD:
            if (fl) return vfloat(fx + fy);
            if (__builtin_add_overflow(x, y, &r)) break;
            return vint(r);
        case TO_SUB:
            if (fl) return vfloat(fx - fy);
            if (__builtin_sub_overflow(x, y, &r)) break;
            return vint(r);
        case TO_MUL:
            if (fl) return vfloat(fx * fy);
            if (__builtin_mul_overflow(x, y, &r)) break;
            return vint(r);
        case TO_DIV:
            if (fy == 0) fail(c, n, DS8B_E_TEMPLATE, "division by zero");
            return vfloat(fx / fy);
        case TO_FDIV:
            if (fl ? fy == 0 : y == 0) fail(c, n, DS8B_E_TEMPLATE, "integer division or modulo by zero");
            if (fl) return vfloat(floor(fx / fy));
            if (x == INT64_MIN && y == -1) break;
            r = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0))) r--;
            return vint(r);
        case TO_MOD:
            if (fl ? fy == 0 : y == 0) fail(c, n, DS8B_E_TEMPLATE, "integer division or modulo by zero");
            if (fl) {
                double m = fmod(fx, fy);
                if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
                else if (m == 0) m = copysign(0.0, fy);
                return vfloat(m);
            }
            if (y == -1) return vint(0);
            r = x % y;
            if (r != 0 && ((r < 0) != (y < 0))) r += y;
            return vint(r);
        case TO_POW:
            if (!fl && y >= 0) {
                int64_t acc = 1, base = x;
                int64_t e = y;
                bool ovf = false;
                while (e > 0 && !ovf) {
                    if (e & 1) ovf |= __builtin_mul_overflow(acc, base, &acc);
                    e >>= 1;
                    if (e) ovf |= __builtin_mul_overflow(base, base, &base);
                }
                if (ovf) break;
                return vint(acc);
            }
            if (fx == 0 && fy < 0) fail(c, n, DS8B_E_TEMPLATE, "zero to a negative power");
            {
                double pr = pow(fx, fy);
                if (isinf(pr) && isfinite(fx) && isfinite(fy)) fail(c, n, DS8B_E_TEMPLATE, "numerical result out of range");
                if (isnan(pr) && !isnan(fx) && !isnan(fy)) fail(c, n, DS8B_E_TEMPLATE, "negative number to a fractional power");
                return vfloat(pr);
            }
        default:
            break;
        }
        fail(c, n, DS8B_E_TEMPLATE, "integer overflow");
    }
    if (op == TO_ADD) {
        if (a.t == V_STR && b.t == V_STR) return concat_s(c, a.u.s, b.u.s);
        if (a.t == V_LIST && b.t == V_LIST) {
            size_t tot;
            if (!ds8b__add_ok(a.u.l->n, b.u.l->n, &tot)) fail(c, n, DS8B_E_LIMIT, "list too long");
            tlist *l = lnew(c, tot);
            if (a.u.l->n) memcpy(l->it, a.u.l->it, a.u.l->n * sizeof(tv));
            if (b.u.l->n) memcpy(l->it + a.u.l->n, b.u.l->it, b.u.l->n * sizeof(tv));
            l->n = tot;
            tick(c, tot);
            tv r = vlist(l);
            r.fl = a.fl;
            return r;
        }
    }
    if (op == TO_MUL) {
        if ((a.t == V_STR || a.t == V_LIST) && (b.t == V_INT || b.t == V_BOOL)) return repeat(c, a, b.u.i, n);
        if ((b.t == V_STR || b.t == V_LIST) && (a.t == V_INT || a.t == V_BOOL)) return repeat(c, b, a.u.i, n);
    }
    static const char *const opn[] = {"", "+", "-", "*", "/", "//", "%", "**", "~"};
    fail(c, n, DS8B_E_TEMPLATE, "unsupported operand types for %s: '%s' and '%s'",
         op >= TO_ADD && op <= TO_CAT ? opn[op] : "?", tname(a), tname(b));
}

/* ================================================================== */
/* Arguments                                                           */
/* ================================================================== */
typedef struct args {
    tv *pos;
    size_t np;
    const S *kn;
    tv *kv;
    size_t nk;
} args;

/* Positional argument i, else keyword name, else missing (returns false). */
static bool arg_get(const args *a, size_t i, const char *name, tv *out) {
    if (i < a->np) { *out = a->pos[i]; return true; }
    if (name)
        for (size_t k = 0; k < a->nk; k++)
            if (seq(a->kn[k], name)) { *out = a->kv[k]; return true; }
    return false;
}
static tv arg_or(const args *a, size_t i, const char *name, tv def) {
    tv v;
    return arg_get(a, i, name, &v) ? v : def;
}
static S arg_str(R *c, const args *a, size_t i, const char *name, const char *what, const N *n) {
    tv v;
    if (!arg_get(a, i, name, &v)) fail(c, n, DS8B_E_TEMPLATE, "%s: missing argument '%s'", what, name ? name : "?");
    if (v.t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "%s: argument '%s' must be a string, not %s", what, name ? name : "?", tname(v));
    return v.u.s;
}
static int64_t arg_int(R *c, const args *a, size_t i, const char *name, int64_t def, const char *what, const N *n) {
    tv v;
    if (!arg_get(a, i, name, &v) || v.t == V_NONE) return def;
    if (v.t != V_INT && v.t != V_BOOL) fail(c, n, DS8B_E_TEMPLATE, "%s: argument '%s' must be an integer", what, name ? name : "?");
    return v.u.i;
}

/* ================================================================== */
/* Methods                                                             */
/* ================================================================== */
static bool cp_all(S s, int kind) {
    if (!s.n) return false;
    bool any_cased = false;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        U8NEXT(s.p, s.n, i, cp);
        utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
        bool letter = k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
        bool number = k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
        switch (kind) {
        case 0: if (k != UTF8PROC_CATEGORY_ND) return false; break;
        case 1: if (!letter) return false; break;
        case 2: if (!ds8b__tm_isspace(cp)) return false; break;
        case 3: if (!letter && !number) return false; break;
        case 4: if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LT) return false; if (k == UTF8PROC_CATEGORY_LL) any_cased = true; break;
        case 5: if (k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT) return false; if (k == UTF8PROC_CATEGORY_LU) any_cased = true; break;
        }
    }
    return kind >= 4 ? any_cased : true;
}

static bool prefix_match(R *c, S s, tv pre, bool suffix, const N *n) {
    if (pre.t == V_LIST) {
        for (size_t i = 0; i < pre.u.l->n; i++)
            if (prefix_match(c, s, pre.u.l->it[i], suffix, n)) return true;
        return false;
    }
    if (pre.t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "%s: argument must be str or a tuple of str", suffix ? "endswith" : "startswith");
    if (pre.u.s.n > s.n) return false;
    return memcmp(suffix ? s.p + s.n - pre.u.s.n : s.p, pre.u.s.p, pre.u.s.n) == 0;
}

static int64_t cp_index_of(S s, const char *at) {
    S head = {s.p, (size_t)(at - s.p)};
    return (int64_t)u8count(head);
}

static tv call_method(R *c, tmeth *m, const args *a, const N *n) {
    tv self = m->self;
    const char *nm = m->name;
    if (self.t == V_STR) {
        S s = self.u.s;
        if (!strcmp(nm, "strip") || !strcmp(nm, "lstrip") || !strcmp(nm, "rstrip")) {
            tv ch = arg_or(a, 0, NULL, vnone());
            if (ch.t != V_NONE && ch.t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "%s arg must be None or str", nm);
            S r = sstrip(s, ch.t == V_STR ? &ch.u.s : NULL, nm[0] != 'r', nm[0] != 'l');
            return vstr(r.p, r.n);
        }
        if (!strcmp(nm, "split") || !strcmp(nm, "rsplit")) {
            tv sp = arg_or(a, 0, "sep", vnone());
            if (sp.t != V_NONE && sp.t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "%s: separator must be None or str", nm);
            int64_t mx = arg_int(c, a, 1, "maxsplit", -1, nm, n);
            return ssplit(c, s, sp.t == V_STR ? &sp.u.s : NULL, mx, nm[0] == 'r');
        }
        if (!strcmp(nm, "startswith") || !strcmp(nm, "endswith")) {
            tv pre;
            if (!arg_get(a, 0, NULL, &pre)) fail(c, n, DS8B_E_TEMPLATE, "%s: missing argument", nm);
            return vbool(prefix_match(c, s, pre, nm[0] == 'e', n));
        }
        if (!strcmp(nm, "replace")) {
            S o = arg_str(c, a, 0, NULL, nm, n), w = arg_str(c, a, 1, NULL, nm, n);
            return sreplace(c, s, o, w, arg_int(c, a, 2, "count", -1, nm, n));
        }
        if (!strcmp(nm, "lower")) return smap(c, s, cp_lower, 0);
        if (!strcmp(nm, "upper")) return smap(c, s, cp_upper, 0);
        if (!strcmp(nm, "title")) return smap(c, s, NULL, 2);
        if (!strcmp(nm, "capitalize")) return smap(c, s, NULL, 1);
        if (!strcmp(nm, "find") || !strcmp(nm, "rfind") || !strcmp(nm, "index")) {
            S sub = arg_str(c, a, 0, NULL, nm, n);
            const char *f = nm[0] == 'r' ? srfind(s.p, s.n, sub.p, sub.n) : sfind(s.p, s.n, sub.p, sub.n);
            if (!f && nm[0] == 'i') fail(c, n, DS8B_E_TEMPLATE, "substring not found");
            return vint(f ? cp_index_of(s, f) : -1);
        }
        if (!strcmp(nm, "count")) {
            S sub = arg_str(c, a, 0, NULL, nm, n);
            if (!sub.n) return vint((int64_t)u8count(s) + 1);
            int64_t k = 0;
            size_t i = 0;
            const char *f;
            while ((f = sfind(s.p + i, s.n - i, sub.p, sub.n))) { k++; i = (size_t)(f - s.p) + sub.n; }
            return vint(k);
        }
        if (!strcmp(nm, "join")) {
            tv it;
            if (!arg_get(a, 0, NULL, &it)) fail(c, n, DS8B_E_TEMPLATE, "join: missing argument");
            tlist *l = iter_list(c, it, n);
            sb b = {0};
            for (size_t i = 0; i < l->n; i++) {
                if (l->it[i].t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "join: sequence item %zu: expected str, %s found", i, tname(l->it[i]));
                if (i) sb_put(c, &b, s.p, s.n);
                sb_put(c, &b, l->it[i].u.s.p, l->it[i].u.s.n);
            }
            tick(c, l->n);
            return sb_val(&b);
        }
        if (!strcmp(nm, "splitlines")) {
            tlist *l = lnew(c, 0);
            size_t i = 0, st = 0;
            while (i < s.n) {
                char ch = s.p[i];
                if (ch == '\n' || ch == '\r') {
                    lpush(c, l, vstr(s.p + st, i - st));
                    i += (ch == '\r' && i + 1 < s.n && s.p[i + 1] == '\n') ? 2 : 1;
                    st = i;
                } else i++;
            }
            if (st < s.n) lpush(c, l, vstr(s.p + st, s.n - st));
            return vlist(l);
        }
        if (!strcmp(nm, "isdigit")) return vbool(cp_all(s, 0));
        if (!strcmp(nm, "isalpha")) return vbool(cp_all(s, 1));
        if (!strcmp(nm, "isspace")) return vbool(cp_all(s, 2));
        if (!strcmp(nm, "isalnum")) return vbool(cp_all(s, 3));
        if (!strcmp(nm, "islower")) return vbool(cp_all(s, 4));
        if (!strcmp(nm, "isupper")) return vbool(cp_all(s, 5));
    } else if (self.t == V_LIST) {
        tv x;
        if (!arg_get(a, 0, NULL, &x)) fail(c, n, DS8B_E_TEMPLATE, "%s: missing argument", nm);
        int64_t k = 0;
        for (size_t i = 0; i < self.u.l->n; i++)
            if (veq(c, self.u.l->it[i], x)) {
                if (nm[0] == 'i') return vint((int64_t)i);
                k++;
            }
        if (nm[0] == 'i') fail(c, n, DS8B_E_TEMPLATE, "list.index(x): x not in list");
        return vint(k);
    } else if (self.t == V_DICT) {
        tdict *d = self.u.d;
        if (!strcmp(nm, "get")) {
            tv k;
            if (!arg_get(a, 0, NULL, &k)) fail(c, n, DS8B_E_TEMPLATE, "get: missing argument");
            tv *r = dfind(c, d, k);
            return r ? *r : arg_or(a, 1, NULL, vnone());
        }
        tlist *l = lnew(c, d->n);
        for (size_t i = 0; i < d->n; i++) {
            if (nm[0] == 'k') l->it[i] = d->k[i];
            else if (nm[0] == 'v') l->it[i] = d->v[i];
            else {
                tlist *pair = lnew(c, 2);
                pair->it[0] = d->k[i];
                pair->it[1] = d->v[i];
                pair->n = 2;
                tv t = vlist(pair);
                t.fl = VF_TUPLE;
                l->it[i] = t;
            }
        }
        l->n = d->n;
        return vlist(l);
    } else if (self.t == V_LOOP) {
        if (!a->np) fail(c, n, DS8B_E_TEMPLATE, "loop.cycle: no items");
        return a->pos[self.u.lp->i % a->np];
    }
    fail(c, n, DS8B_E_TEMPLATE, "unsupported method '%s'", nm);
}

/* ================================================================== */
/* Tests                                                               */
/* ================================================================== */
static bool run_test(R *c, S name, tv v, const args *a, const N *n) {
    tv x = {0};
    bool has = arg_get(a, 0, NULL, &x);
    if (seq(name, "defined")) return v.t != V_UNDEF;
    if (seq(name, "undefined")) return v.t == V_UNDEF;
    if (seq(name, "none")) return v.t == V_NONE;
    if (seq(name, "boolean")) return v.t == V_BOOL;
    if (seq(name, "true")) return v.t == V_BOOL && v.u.i;
    if (seq(name, "false")) return v.t == V_BOOL && !v.u.i;
    if (seq(name, "integer")) return v.t == V_INT;
    if (seq(name, "float")) return v.t == V_FLOAT;
    if (seq(name, "number")) return isnum(v);
    if (seq(name, "string")) return v.t == V_STR;
    if (seq(name, "mapping")) return v.t == V_DICT;
    if (seq(name, "iterable")) return v.t == V_STR || v.t == V_LIST || v.t == V_DICT || v.t == V_UNDEF;
    if (seq(name, "sequence")) return v.t == V_STR || v.t == V_LIST || v.t == V_DICT || v.t == V_UNDEF;
    if (seq(name, "callable")) return v.t == V_METH || v.t == V_FUNC || v.t == V_MACRO || v.t == V_UNDEF;
    if (seq(name, "odd") || seq(name, "even")) {
        if (v.t != V_INT && v.t != V_BOOL) fail(c, n, DS8B_E_TEMPLATE, "'%.*s' test needs an integer", (int)name.n, name.p);
        return (v.u.i & 1) == (name.p[0] == 'o');
    }
    if (seq(name, "divisibleby")) {
        if (!has || !isnum(x) || !isnum(v)) fail(c, n, DS8B_E_TEMPLATE, "divisibleby needs numbers");
        if (v.t != V_FLOAT && x.t != V_FLOAT) {
            if (x.u.i == 0) fail(c, n, DS8B_E_TEMPLATE, "divisibleby zero");
            if (x.u.i == -1) return true;
            return v.u.i % x.u.i == 0;
        }
        if (numf(x) == 0) fail(c, n, DS8B_E_TEMPLATE, "divisibleby zero");
        return fmod(numf(v), numf(x)) == 0;
    }
    if (seq(name, "lower") || seq(name, "upper")) {
        if (v.t != V_STR) return false;
        return cp_all(v.u.s, name.p[0] == 'l' ? 4 : 5);
    }
    if (!has && (seq(name, "eq") || seq(name, "equalto") || seq(name, "==") || seq(name, "sameas") || seq(name, "in") ||
                 seq(name, "ne") || seq(name, "lt") || seq(name, "le") || seq(name, "gt") || seq(name, "ge") ||
                 seq(name, "lessthan") || seq(name, "greaterthan")))
        fail(c, n, DS8B_E_TEMPLATE, "test '%.*s' needs an argument", (int)name.n, name.p);
    if (seq(name, "eq") || seq(name, "equalto")) return veq(c, v, x);
    if (seq(name, "ne")) return !veq(c, v, x);
    if (seq(name, "sameas")) {
        if (v.t == V_LIST) return x.t == V_LIST && v.u.l == x.u.l;
        if (v.t == V_DICT || v.t == V_NS) return x.t == v.t && v.u.d == x.u.d;
        return v.t == x.t && veq(c, v, x);
    }
    if (seq(name, "in")) return contains(c, x, v, n);
    if (seq(name, "lt") || seq(name, "lessthan")) return vcmp(c, v, x, n) < 0;
    if (seq(name, "le")) return vcmp(c, v, x, n) <= 0;
    if (seq(name, "gt") || seq(name, "greaterthan")) return vcmp(c, v, x, n) > 0;
    if (seq(name, "ge")) return vcmp(c, v, x, n) >= 0;
    fail(c, n, DS8B_E_TEMPLATE, "no test named '%.*s'", (int)(name.n > 40 ? 40 : name.n), name.p);
}

/* ================================================================== */
/* Filters                                                             */
/* ================================================================== */
static tv apply_filter(R *c, S name, tv v, const args *a, const N *n);

/* Follows a dotted attribute path ("function.name", "0"). */
static tv attr_path(R *c, tv v, S path, const N *n) {
    size_t i = 0;
    while (i <= path.n) {
        size_t j = i;
        while (j < path.n && path.p[j] != '.') j++;
        S part = {path.p + i, j - i};
        bool digits = part.n > 0 && part.n < 18;
        for (size_t k = 0; k < part.n && digits; k++) digits = part.p[k] >= '0' && part.p[k] <= '9';
        if (digits && v.t == V_LIST) {
            int64_t idx = 0;
            for (size_t k = 0; k < part.n; k++) idx = idx * 10 + (part.p[k] - '0');
            v = getitem_v(c, v, vint(idx), n);
        } else {
            v = getitem_v(c, v, vstr(part.p, part.n), n);
        }
        i = j + 1;
    }
    return v;
}

static args sub_args(const args *a, size_t skip) {
    args r = *a;
    if (skip > r.np) skip = r.np;
    r.pos += skip;
    r.np -= skip;
    return r;
}

static bool select_one(R *c, tv item, const args *a, size_t test_at, const N *n) {
    if (a->np <= test_at) return truthy(item);
    tv tn = a->pos[test_at];
    if (tn.t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "select: test name must be a string");
    args ta = sub_args(a, test_at + 1);
    ta.nk = 0;
    return run_test(c, tn.u.s, item, &ta, n);
}

static tv html_escape(R *c, S s) {
    sb b = {0};
    size_t run = 0;
    for (size_t i = 0; i < s.n; i++) {
        const char *r = NULL;
        switch (s.p[i]) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&#34;"; break;
        case '\'': r = "&#39;"; break;
        default: break;
        }
        if (r) {
            sb_put(c, &b, s.p + run, i - run);
            sb_puts(c, &b, r);
            run = i + 1;
        }
    }
    sb_put(c, &b, s.p + run, s.n - run);
    return sb_val(&b);
}

static tv to_int(R *c, tv v, tv def, int64_t base) {
    if (v.t == V_INT) return v;
    if (v.t == V_BOOL) return vint(v.u.i);
    if (v.t == V_FLOAT) {
        if (!isfinite(v.u.f) || fabs(v.u.f) >= 9.2e18) return def;
        return vint((int64_t)v.u.f);
    }
    if (v.t == V_STR) {
        S s = sstrip(v.u.s, NULL, true, true);
        char buf[64];
        size_t k = 0;
        for (size_t i = 0; i < s.n && k + 1 < sizeof buf; i++)
            if (s.p[i] != '_') buf[k++] = s.p[i];
        buf[k] = 0;
        if (!s.n || s.n >= sizeof buf) return def;
        char *end;
        if (base < 2 || base > 36) base = 10;
        errno = 0;
        long long r = strtoll(buf, &end, (int)base);
        if (*end == 0 && errno == 0 && end != buf) return vint(r);
        double d = strtod(buf, &end);
        if (*end == 0 && end != buf && isfinite(d) && fabs(d) < 9.2e18) return vint((int64_t)d);
    }
    return def;
}

static int sort_cmp(R *c, tv a, tv b, bool cs, const N *n) {
    if (!cs && a.t == V_STR && b.t == V_STR) {
        tv la = smap(c, a.u.s, cp_lower, 0), lb = smap(c, b.u.s, cp_lower, 0);
        return vcmp(c, la, lb, n);
    }
    return vcmp(c, a, b, n);
}

/* Stable merge sort of items by keys. */
static void msort(R *c, tv *items, tv *keys, size_t cnt, bool cs, bool rev, const N *n) {
    if (cnt < 2) return;
    tv *ti = ralloc_n(c, cnt, sizeof(tv)), *tk = ralloc_n(c, cnt, sizeof(tv));
    for (size_t w = 1; w < cnt; w *= 2) {
        for (size_t lo = 0; lo < cnt; lo += 2 * w) {
            size_t mid = lo + w < cnt ? lo + w : cnt, hi = lo + 2 * w < cnt ? lo + 2 * w : cnt;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int r = sort_cmp(c, keys[j], keys[i], cs, n);
                if (rev) r = -r;
                if (r < 0) { ti[k] = items[j]; tk[k++] = keys[j++]; }
                else { ti[k] = items[i]; tk[k++] = keys[i++]; }
            }
            while (i < mid) { ti[k] = items[i]; tk[k++] = keys[i++]; }
            while (j < hi) { ti[k] = items[j]; tk[k++] = keys[j++]; }
        }
        memcpy(items, ti, cnt * sizeof(tv));
        memcpy(keys, tk, cnt * sizeof(tv));
        tick(c, cnt);
    }
}

static tv apply_filter(R *c, S name, tv v, const args *a, const N *n) {
    if (seq(name, "default") || seq(name, "d")) {
        tv def = arg_or(a, 0, "default_value", vstr("", 0));
        bool boolean = truthy(arg_or(a, 1, "boolean", vbool(false)));
        if (v.t == V_UNDEF || (boolean && !truthy(v))) return def;
        return v;
    }
    if (seq(name, "safe")) return v.t == V_STR ? v : vstr(to_s(c, v).p, to_s(c, v).n);
    if (v.t == V_UNDEF && (seq(name, "int") || seq(name, "float") || seq(name, "abs") || seq(name, "round") ||
                           seq(name, "indent") || seq(name, "tojson") || seq(name, "dictsort")))
        fail_undef(c, n, v);
    if (seq(name, "string")) return v.t == V_STR ? v : vstr(to_s(c, v).p, to_s(c, v).n);
    if (seq(name, "length") || seq(name, "count")) {
        switch (v.t) {
        case V_STR: return vint((int64_t)u8count(v.u.s));
        case V_LIST: return vint((int64_t)v.u.l->n);
        case V_DICT: case V_NS: return vint((int64_t)v.u.d->n);
        case V_UNDEF: return vint(0);
        default: fail(c, n, DS8B_E_TEMPLATE, "object of type '%s' has no len()", tname(v));
        }
    }
    if (seq(name, "tojson")) {
        tv ind = arg_or(a, 0, "indent", vnone());
        bool sort = truthy(arg_or(a, 99, "sort_keys", vbool(false)));
        S is = {0};
        char *sp = NULL;
        if (ind.t == V_INT || ind.t == V_BOOL) {
            int64_t w = ind.u.i < 0 ? 0 : ind.u.i;
            if (w > 64) fail(c, n, DS8B_E_LIMIT, "tojson: indent too large");
            sp = ralloc(c, (size_t)w + 1);
            memset(sp, ' ', (size_t)w);
            is.p = sp;
            is.n = (size_t)w;
        } else if (ind.t == V_STR) is = ind.u.s;
        else if (ind.t != V_NONE) fail(c, n, DS8B_E_TEMPLATE, "tojson: indent must be an integer or string");
        sb b = {0};
        json_into(c, &b, v, ind.t == V_NONE ? NULL : &is, 0, sort);
        return sb_val(&b);
    }
    if (seq(name, "trim")) {
        S s = to_s(c, v);
        tv ch = arg_or(a, 0, "chars", vnone());
        if (ch.t != V_NONE && ch.t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "trim: chars must be a string");
        S r = sstrip(s, ch.t == V_STR ? &ch.u.s : NULL, true, true);
        return vstr(r.p, r.n);
    }
    if (seq(name, "lower")) return smap(c, to_s(c, v), cp_lower, 0);
    if (seq(name, "upper")) return smap(c, to_s(c, v), cp_upper, 0);
    if (seq(name, "capitalize")) return smap(c, to_s(c, v), NULL, 1);
    if (seq(name, "title")) return smap(c, to_s(c, v), NULL, 3);
    if (seq(name, "replace")) {
        S s = to_s(c, v);
        tv o = arg_or(a, 0, "old", vundef(NULL, 0)), w = arg_or(a, 1, "new", vundef(NULL, 0));
        if (o.t == V_UNDEF || w.t == V_UNDEF) fail(c, n, DS8B_E_TEMPLATE, "replace: needs old and new");
        return sreplace(c, s, to_s(c, o), to_s(c, w), arg_int(c, a, 2, "count", -1, "replace", n));
    }
    if (seq(name, "e") || seq(name, "escape") || seq(name, "forceescape")) return html_escape(c, to_s(c, v));
    if (seq(name, "int")) return to_int(c, v, arg_or(a, 0, "default", vint(0)), arg_int(c, a, 1, "base", 10, "int", n));
    if (seq(name, "float")) {
        tv def = arg_or(a, 0, "default", vfloat(0));
        if (v.t == V_FLOAT) return v;
        if (v.t == V_INT || v.t == V_BOOL) return vfloat((double)v.u.i);
        if (v.t == V_STR) {
            S s = sstrip(v.u.s, NULL, true, true);
            char buf[64];
            if (!s.n || s.n >= sizeof buf) return def;
            memcpy(buf, s.p, s.n);
            buf[s.n] = 0;
            char *end;
            double d = strtod(buf, &end);
            if (*end == 0) return vfloat(d);
        }
        return def;
    }
    if (seq(name, "abs")) {
        if (v.t == V_FLOAT) return vfloat(fabs(v.u.f));
        if (v.t == V_INT || v.t == V_BOOL) {
            if (v.u.i == INT64_MIN) fail(c, n, DS8B_E_TEMPLATE, "integer overflow");
            return vint(v.u.i < 0 ? -v.u.i : v.u.i);
        }
        fail(c, n, DS8B_E_TEMPLATE, "bad operand type for abs(): '%s'", tname(v));
    }
    if (seq(name, "round")) {
        if (!isnum(v)) fail(c, n, DS8B_E_TEMPLATE, "round: not a number");
        int64_t prec = arg_int(c, a, 0, "precision", 0, "round", n);
        tv mt = arg_or(a, 1, "method", vcstr("common"));
        bool common = !(mt.t == V_STR && (seq(mt.u.s, "floor") || seq(mt.u.s, "ceil")));
        if (common && v.t != V_FLOAT && prec >= 0) return vint(v.u.i);
        double x = numf(v), sc = pow(10.0, (double)(prec < -300 ? -300 : prec > 300 ? 300 : prec));
        double y = x * sc;
        if (mt.t == V_STR && seq(mt.u.s, "floor")) y = floor(y);
        else if (mt.t == V_STR && seq(mt.u.s, "ceil")) y = ceil(y);
        else y = nearbyint(y);
        return vfloat(y / sc);
    }
    if (seq(name, "first") || seq(name, "last")) {
        if (v.t == V_UNDEF) return vundef(NULL, 0);
        tlist *l = iter_list(c, v, n);
        if (!l->n) return vundef(NULL, 0);
        return name.p[0] == 'f' ? l->it[0] : l->it[l->n - 1];
    }
    if (seq(name, "list")) {
        tlist *src = iter_list(c, v, n), *l = lnew(c, src->n);
        if (src->n) memcpy(l->it, src->it, src->n * sizeof(tv));
        l->n = src->n;
        return vlist(l);
    }
    if (seq(name, "reverse")) {
        if (v.t == V_STR) {
            size_t cnt;
            size_t *off = cp_offsets(c, v.u.s, &cnt);
            sb b = {0};
            for (size_t i = cnt; i-- > 0;) sb_put(c, &b, v.u.s.p + off[i], off[i + 1] - off[i]);
            return sb_val(&b);
        }
        tlist *src = iter_list(c, v, n), *l = lnew(c, src->n);
        for (size_t i = 0; i < src->n; i++) l->it[i] = src->it[src->n - 1 - i];
        l->n = src->n;
        return vlist(l);
    }
    if (seq(name, "items")) {
        if (v.t == V_UNDEF) return vlist(lnew(c, 0));
        if (v.t != V_DICT) fail(c, n, DS8B_E_TEMPLATE, "items: can only get item pairs from a mapping");
        tmeth m = {v, "items"};
        args none = {0};
        return call_method(c, &m, &none, n);
    }
    if (seq(name, "join")) {
        tv sep = arg_or(a, 0, "d", vstr("", 0));
        tv at = arg_or(a, 1, "attribute", vnone());
        S ss = to_s(c, sep);
        tlist *l = iter_list(c, v, n);
        sb b = {0};
        for (size_t i = 0; i < l->n; i++) {
            tv it = l->it[i];
            if (at.t != V_NONE) it = attr_path(c, it, to_s(c, at), n);
            if (i) sb_put(c, &b, ss.p, ss.n);
            S s = to_s(c, it);
            sb_put(c, &b, s.p, s.n);
        }
        tick(c, l->n);
        return sb_val(&b);
    }
    if ((seq(name, "map") || seq(name, "select") || seq(name, "reject") || seq(name, "selectattr") ||
         seq(name, "rejectattr")) && !truthy(v))
        return vlist(lnew(c, 0));
    if (seq(name, "map")) {
        tlist *l = iter_list(c, v, n), *o = lnew(c, l->n);
        tv at;
        bool by_attr = false;
        for (size_t k = 0; k < a->nk; k++)
            if (seq(a->kn[k], "attribute")) { at = a->kv[k]; by_attr = true; }
        tick(c, l->n);
        if (by_attr) {
            tv def = arg_or(a, 99, "default", vundef(NULL, 0));
            S path = to_s(c, at);
            for (size_t i = 0; i < l->n; i++) {
                tv r = attr_path(c, l->it[i], path, n);
                o->it[i] = (r.t == V_UNDEF && def.t != V_UNDEF) ? def : r;
            }
        } else {
            if (!a->np || a->pos[0].t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "map: needs a filter name or attribute=");
            args fa = sub_args(a, 1);
            for (size_t i = 0; i < l->n; i++) o->it[i] = apply_filter(c, a->pos[0].u.s, l->it[i], &fa, n);
        }
        o->n = l->n;
        return vlist(o);
    }
    if (seq(name, "select") || seq(name, "reject") || seq(name, "selectattr") || seq(name, "rejectattr")) {
        bool by_attr = name.n > 6, keep = name.p[0] == 's';
        tlist *l = iter_list(c, v, n), *o = lnew(c, 0);
        S path = {0};
        if (by_attr) {
            if (!a->np || a->pos[0].t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "%.*s: needs an attribute name", (int)name.n, name.p);
            path = a->pos[0].u.s;
        }
        tick(c, l->n);
        for (size_t i = 0; i < l->n; i++) {
            tv it = by_attr ? attr_path(c, l->it[i], path, n) : l->it[i];
            if (select_one(c, it, a, by_attr ? 1 : 0, n) == keep) lpush(c, o, l->it[i]);
        }
        return vlist(o);
    }
    if (seq(name, "sort") || seq(name, "unique") || seq(name, "min") || seq(name, "max")) {
        bool rev = truthy(arg_or(a, seq(name, "sort") ? 0 : 99, "reverse", vbool(false)));
        bool cs = truthy(arg_or(a, seq(name, "sort") ? 1 : 0, "case_sensitive", vbool(false)));
        tv at = arg_or(a, seq(name, "sort") ? 2 : 1, "attribute", vnone());
        tlist *src = iter_list(c, v, n);
        size_t cnt = src->n;
        tv *items = ralloc_n(c, cnt ? cnt : 1, sizeof(tv)), *keys = ralloc_n(c, cnt ? cnt : 1, sizeof(tv));
        for (size_t i = 0; i < cnt; i++) {
            items[i] = src->it[i];
            keys[i] = at.t == V_NONE ? src->it[i] : attr_path(c, src->it[i], to_s(c, at), n);
        }
        if (seq(name, "unique")) {
            tlist *o = lnew(c, 0);
            tick(c, cnt * (cnt < 4096 ? cnt : 4096) / 64 + cnt);
            for (size_t i = 0; i < cnt; i++) {
                bool dup = false;
                for (size_t j = 0; j < i && !dup; j++) {
                    tv x = keys[i], y = keys[j];
                    if (!cs && x.t == V_STR && y.t == V_STR) dup = veq(c, smap(c, x.u.s, cp_lower, 0), smap(c, y.u.s, cp_lower, 0));
                    else dup = veq(c, x, y);
                }
                if (!dup) lpush(c, o, items[i]);
            }
            return vlist(o);
        }
        msort(c, items, keys, cnt, cs, rev && seq(name, "sort"), n);
        if (seq(name, "min")) return cnt ? items[0] : vundef(NULL, 0);
        if (seq(name, "max")) return cnt ? items[cnt - 1] : vundef(NULL, 0);
        tlist *o = lnew(c, cnt);
        if (cnt) memcpy(o->it, items, cnt * sizeof(tv));
        o->n = cnt;
        return vlist(o);
    }
    if (seq(name, "sum")) {
        tv at = arg_or(a, 0, "attribute", vnone());
        tv acc = arg_or(a, 1, "start", vint(0));
        tlist *l = iter_list(c, v, n);
        tick(c, l->n);
        for (size_t i = 0; i < l->n; i++)
            acc = binop(c, TO_ADD, acc, at.t == V_NONE ? l->it[i] : attr_path(c, l->it[i], to_s(c, at), n), n);
        return acc;
    }
    if (seq(name, "attr")) return getattr_v(c, v, arg_str(c, a, 0, "name", "attr", n), n);
    if (seq(name, "indent")) {
        tv w = arg_or(a, 0, "width", vint(4));
        bool first = truthy(arg_or(a, 1, "first", vbool(false)));
        bool blank = truthy(arg_or(a, 2, "blank", vbool(false)));
        S ind;
        if (w.t == V_UNDEF) fail_undef(c, n, w);
        if (w.t == V_STR) ind = w.u.s;
        else {
            int64_t k = (w.t == V_INT || w.t == V_BOOL) ? w.u.i : 4;
            if (k < 0) k = 0;
            if (k > 256) fail(c, n, DS8B_E_LIMIT, "indent: width too large");
            char *sp = ralloc(c, (size_t)k + 1);
            memset(sp, ' ', (size_t)k);
            ind.p = sp;
            ind.n = (size_t)k;
        }
        if (v.t != V_STR) fail(c, n, DS8B_E_TEMPLATE, "indent: expected a string, not %s", tname(v));
        S s = v.u.s;
        tmeth m = {vstr(s.p, s.n), "splitlines"};
        args none = {0};
        tv lines = call_method(c, &m, &none, n);
        tlist *l = lines.u.l;
        sb b = {0};
        for (size_t i = 0; i < l->n; i++) {
            S ln = l->it[i].u.s;
            if (i) sb_putc(c, &b, '\n');
            if ((i > 0 || first) && (blank || ln.n)) sb_put(c, &b, ind.p, ind.n);
            sb_put(c, &b, ln.p, ln.n);
        }
        if (!l->n && first) sb_put(c, &b, ind.p, ind.n);
        tick(c, l->n);
        return sb_val(&b);
    }
    if (seq(name, "batch")) {
        int64_t k = arg_int(c, a, 0, "linecount", 0, "batch", n);
        tv fill;
        bool has_fill = arg_get(a, 1, "fill_with", &fill) && fill.t != V_NONE;
        if (k <= 0) fail(c, n, DS8B_E_TEMPLATE, "batch: size must be positive");
        tlist *l = iter_list(c, v, n), *o = lnew(c, 0), *cur = NULL;
        for (size_t i = 0; i < l->n; i++) {
            if (!cur || (int64_t)cur->n == k) {
                cur = lnew(c, 0);
                lpush(c, o, vlist(cur));
            }
            lpush(c, cur, l->it[i]);
        }
        if (cur && has_fill)
            while ((int64_t)cur->n < k) lpush(c, cur, fill);
        tick(c, l->n);
        return vlist(o);
    }
    if (seq(name, "dictsort")) {
        if (v.t != V_DICT) fail(c, n, DS8B_E_TEMPLATE, "dictsort: not a mapping");
        bool cs = truthy(arg_or(a, 0, "case_sensitive", vbool(false)));
        tv by = arg_or(a, 1, "by", vcstr("key"));
        bool rev = truthy(arg_or(a, 2, "reverse", vbool(false)));
        tmeth m = {v, "items"};
        args none = {0};
        tlist *l = call_method(c, &m, &none, n).u.l;
        tv *keys = ralloc_n(c, l->n ? l->n : 1, sizeof(tv));
        bool byv = by.t == V_STR && seq(by.u.s, "value");
        for (size_t i = 0; i < l->n; i++) keys[i] = l->it[i].u.l->it[byv ? 1 : 0];
        msort(c, l->it, keys, l->n, cs, rev, n);
        return vlist(l);
    }
    fail(c, n, DS8B_E_UNSUPPORTED, "filter '%.*s' is not supported", (int)(name.n > 40 ? 40 : name.n), name.p);
}

/* ================================================================== */
/* Calls                                                               */
/* ================================================================== */
static void fmt_date(R *c, sb *b, S f) {
    /* A fixed, deterministic "now": Friday 26 July 2024, 00:00:00. */
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const char *const monl[] = {"January", "February", "March", "April", "May", "June", "July",
                                       "August", "September", "October", "November", "December"};
    const int Y = 2024, M = 7, D = 26;
    char t[32];
    for (size_t i = 0; i < f.n; i++) {
        if (f.p[i] != '%' || i + 1 >= f.n) { sb_putc(c, b, f.p[i]); continue; }
        char d = f.p[++i];
        switch (d) {
        case 'd': snprintf(t, sizeof t, "%02d", D); break;
        case 'e': snprintf(t, sizeof t, "%2d", D); break;
        case 'm': snprintf(t, sizeof t, "%02d", M); break;
        case 'Y': snprintf(t, sizeof t, "%d", Y); break;
        case 'y': snprintf(t, sizeof t, "%02d", Y % 100); break;
        case 'b': case 'h': snprintf(t, sizeof t, "%s", mon[M - 1]); break;
        case 'B': snprintf(t, sizeof t, "%s", monl[M - 1]); break;
        case 'a': snprintf(t, sizeof t, "Fri"); break;
        case 'A': snprintf(t, sizeof t, "Friday"); break;
        case 'H': case 'M': case 'S': snprintf(t, sizeof t, "00"); break;
        case 'I': snprintf(t, sizeof t, "12"); break;
        case 'p': snprintf(t, sizeof t, "AM"); break;
        case 'j': snprintf(t, sizeof t, "208"); break;
        case 'w': snprintf(t, sizeof t, "5"); break;
        case 'u': snprintf(t, sizeof t, "5"); break;
        case 'F': snprintf(t, sizeof t, "%04d-%02d-%02d", Y, M, D); break;
        case '%': snprintf(t, sizeof t, "%%"); break;
        default: snprintf(t, sizeof t, "%%%c", d); break;
        }
        sb_puts(c, b, t);
    }
}

static void exec(R *c, const N *n, frame *f);
static tv ev(R *c, const N *n, frame *f);

static tv call_macro(R *c, tmacro *m, const args *a, const N *n) {
    const N *mn = m->node;
    if (a->np > mn->nv) fail(c, n, DS8B_E_TEMPLATE, "macro '%.*s' takes at most %zu arguments", (int)mn->s.n, mn->s.p, mn->nv);
    if (++c->depth > c->lim.max_depth) fail(c, n, DS8B_E_LIMIT, "macro calls nested deeper than %d", c->lim.max_depth);
    frame *f = fnew(c, m->closure);
    for (size_t k = 0; k < a->nk; k++) {
        bool found = false;
        for (size_t i = 0; i < mn->nv; i++) found |= (mn->v[i]->s.n == a->kn[k].n && !memcmp(mn->v[i]->s.p, a->kn[k].p, a->kn[k].n));
        if (!found) fail(c, n, DS8B_E_TEMPLATE, "macro '%.*s' has no parameter '%.*s'", (int)mn->s.n, mn->s.p, (int)a->kn[k].n, a->kn[k].p);
    }
    for (size_t i = 0; i < mn->nv; i++) {
        tv v;
        char nm[128];
        size_t ln = mn->v[i]->s.n < sizeof nm - 1 ? mn->v[i]->s.n : sizeof nm - 1;
        memcpy(nm, mn->v[i]->s.p, ln);
        nm[ln] = 0;
        if (!arg_get(a, i, nm, &v)) {
            if (mn->kv && mn->kv[i]) v = ev(c, mn->kv[i], f);
            else v = vundef(mn->v[i]->s.p, mn->v[i]->s.n);
        }
        fset(c, f, mn->v[i]->s, v);
    }
    size_t start = c->on;
    exec(c, mn->a, f);
    c->ctl = 0;
    tv r = concat_s(c, (S){c->out ? c->out + start : "", c->on - start}, (S){"", 0});
    c->on = start;
    c->depth--;
    return r;
}

static tv call_value(R *c, tv fn, const args *a, const N *n) {
    switch (fn.t) {
    case V_METH: return call_method(c, fn.u.m, a, n);
    case V_MACRO: return call_macro(c, fn.u.mac, a, n);
    case V_UNDEF: fail_undef(c, n, fn);
    case V_FUNC: break;
    default: fail(c, n, DS8B_E_TEMPLATE, "'%s' object is not callable", tname(fn));
    }
    switch (fn.u.fn) {
    case F_NAMESPACE: case F_DICT: {
        tdict *d = dnew(c);
        if (a->np) {
            if (a->pos[0].t != V_DICT && a->pos[0].t != V_NS) fail(c, n, DS8B_E_TEMPLATE, "namespace()/dict(): positional argument must be a mapping");
            tdict *s = a->pos[0].u.d;
            for (size_t i = 0; i < s->n; i++) dset(c, d, s->k[i], s->v[i]);
        }
        for (size_t k = 0; k < a->nk; k++) dset(c, d, vstr(a->kn[k].p, a->kn[k].n), a->kv[k]);
        tv r = {fn.u.fn == F_NAMESPACE ? V_NS : V_DICT, 0, {0}};
        r.u.d = d;
        return r;
    }
    case F_RANGE: {
        int64_t lo = 0, hi, st = 1;
        if (a->np == 0 || a->np > 3) fail(c, n, DS8B_E_TEMPLATE, "range() takes 1 to 3 arguments");
        for (size_t i = 0; i < a->np; i++)
            if (a->pos[i].t != V_INT && a->pos[i].t != V_BOOL) fail(c, n, DS8B_E_TEMPLATE, "range() arguments must be integers");
        if (a->np == 1) hi = a->pos[0].u.i;
        else { lo = a->pos[0].u.i; hi = a->pos[1].u.i; if (a->np == 3) st = a->pos[2].u.i; }
        if (st == 0) fail(c, n, DS8B_E_TEMPLATE, "range() step must not be zero");
        double cnt = st > 0 ? ((double)hi - (double)lo) / (double)st : ((double)lo - (double)hi) / (double)-st;
        cnt = cnt <= 0 ? 0 : ceil(cnt);
        if (cnt > 100000 || cnt > (double)c->lim.max_iterations) fail(c, n, DS8B_E_LIMIT, "range() too large");
        size_t k = (size_t)cnt;
        tlist *l = lnew(c, k);
        for (size_t i = 0; i < k; i++) l->it[i] = vint(lo + (int64_t)i * st);
        l->n = k;
        tick(c, k);
        return vlist(l);
    }
    case F_RAISE: {
        S msg = a->np ? to_s(c, a->pos[0]) : (S){"", 0};
        fail(c, n, DS8B_E_TEMPLATE, "raise_exception: %.*s", (int)(msg.n > 700 ? 700 : msg.n), msg.p);
    }
    case F_STRFTIME: {
        sb b = {0};
        fmt_date(c, &b, a->np ? to_s(c, a->pos[0]) : (S){"", 0});
        return sb_val(&b);
    }
    default:
        fail(c, n, DS8B_E_INTERNAL, "unknown builtin");
    }
}

/* ================================================================== */
/* Expressions                                                         */
/* ================================================================== */
static tv ev(R *c, const N *n, frame *f);

static args eval_args(R *c, const N *n, frame *f) {
    args a = {0};
    if (n->nv) {
        a.pos = ralloc_n(c, n->nv, sizeof(tv));
        for (size_t i = 0; i < n->nv; i++) a.pos[i] = ev(c, n->v[i], f);
        a.np = n->nv;
    }
    if (n->nk) {
        a.kv = ralloc_n(c, n->nk, sizeof(tv));
        for (size_t i = 0; i < n->nk; i++) a.kv[i] = ev(c, n->kv[i], f);
        a.kn = n->kn;
        a.nk = n->nk;
    }
    return a;
}

static tv lookup(R *c, S name, frame *f) {
    tv v;
    if (flookup(f, name, &v)) return v;
    tv fn = {V_FUNC, 0, {0}};
    if (seq(name, "namespace")) fn.u.fn = F_NAMESPACE;
    else if (seq(name, "range")) fn.u.fn = F_RANGE;
    else if (seq(name, "raise_exception")) fn.u.fn = F_RAISE;
    else if (seq(name, "strftime_now")) fn.u.fn = F_STRFTIME;
    else if (seq(name, "dict")) fn.u.fn = F_DICT;
    else return vundef(name.p, name.n);
    return fn;
}

static tv ev(R *c, const N *n, frame *f) {
    const N *saved = c->at;
    c->at = n;
    /* left-deep chains (a + b + ..., x|f|g..., x.a.b...) are parsed by loops,
     * so the tree depth is bounded here, where it is walked */
    if (++c->edepth > 4 * DS8B__TMPL_MAX_NESTING) fail(c, n, DS8B_E_LIMIT, "expression nested deeper than %d levels", 4 * DS8B__TMPL_MAX_NESTING);
    tv r;
    switch (n->kind) {
    case TN_CONST:
        switch (n->op) {
        case TC_NONE: r = vnone(); break;
        case TC_TRUE: r = vbool(true); break;
        case TC_FALSE: r = vbool(false); break;
        case TC_INT: r = vint(n->i); break;
        case TC_FLOAT: r = vfloat(n->f); break;
        default: r = vstr(n->s.p, n->s.n); break;
        }
        break;
    case TN_NAME: r = lookup(c, n->s, f); break;
    case TN_ATTR: r = getattr_v(c, ev(c, n->a, f), n->s, n); break;
    case TN_ITEM: {
        tv o = ev(c, n->a, f);
        r = getitem_v(c, o, ev(c, n->b, f), n);
        break;
    }
    case TN_SLICE: {
        tv o = ev(c, n->a, f);
        tv a = n->b ? ev(c, n->b, f) : vnone(), b = n->c ? ev(c, n->c, f) : vnone(), s = n->d ? ev(c, n->d, f) : vnone();
        r = slice_v(c, o, a, b, s, n);
        break;
    }
    case TN_CALL: {
        tv fn = ev(c, n->a, f);
        args a = eval_args(c, n, f);
        r = call_value(c, fn, &a, n);
        break;
    }
    case TN_FILTER: {
        tv v = ev(c, n->a, f);
        args a = eval_args(c, n, f);
        r = apply_filter(c, n->s, v, &a, n);
        break;
    }
    case TN_TEST: {
        tv v = ev(c, n->a, f);
        args a = eval_args(c, n, f);
        bool b = run_test(c, n->s, v, &a, n);
        r = vbool(n->op ? !b : b);
        break;
    }
    case TN_BIN: {
        tv a = ev(c, n->a, f);
        r = binop(c, n->op, a, ev(c, n->b, f), n);
        break;
    }
    case TN_NEG: case TN_POS: {
        tv a = ev(c, n->a, f);
        if (a.t == V_UNDEF) fail_undef(c, n, a);
        if (!isnum(a)) fail(c, n, DS8B_E_TEMPLATE, "bad operand type for unary %c: '%s'", n->kind == TN_NEG ? '-' : '+', tname(a));
        if (n->kind == TN_POS) r = a.t == V_BOOL ? vint(a.u.i) : a;
        else if (a.t == V_FLOAT) r = vfloat(-a.u.f);
        else {
            if (a.u.i == INT64_MIN) fail(c, n, DS8B_E_TEMPLATE, "integer overflow");
            r = vint(-a.u.i);
        }
        break;
    }
    case TN_NOT: r = vbool(!truthy(ev(c, n->a, f))); break;
    case TN_AND: r = ev(c, n->a, f); if (truthy(r)) r = ev(c, n->b, f); break;
    case TN_OR: r = ev(c, n->a, f); if (!truthy(r)) r = ev(c, n->b, f); break;
    case TN_COND:
        if (truthy(ev(c, n->a, f))) r = ev(c, n->b, f);
        else r = n->c ? ev(c, n->c, f) : vundef(NULL, 0);
        break;
    case TN_LIST: case TN_TUPLE: {
        tlist *l = lnew(c, n->nv);
        for (size_t i = 0; i < n->nv; i++) l->it[i] = ev(c, n->v[i], f);
        l->n = n->nv;
        r = vlist(l);
        if (n->kind == TN_TUPLE) r.fl = VF_TUPLE;
        break;
    }
    case TN_DICT: {
        tdict *d = dnew(c);
        for (size_t i = 0; i < n->nv; i++) {
            tv k = ev(c, n->v[i], f);
            if (k.t == V_LIST && !(k.fl & VF_TUPLE)) fail(c, n, DS8B_E_TEMPLATE, "unhashable type: 'list'");
            if (k.t == V_DICT || k.t == V_NS) fail(c, n, DS8B_E_TEMPLATE, "unhashable type: '%s'", tname(k));
            dset(c, d, k, ev(c, n->kv[i], f));
        }
        r = vdict(d);
        break;
    }
    case TN_CMP: {
        tv left = ev(c, n->v[0], f);
        r = vbool(true);
        for (size_t i = 1; i < n->nv; i++) {
            tv right = ev(c, n->v[i], f);
            bool ok;
            switch (n->ops[i - 1]) {
            case TO_EQ: ok = veq(c, left, right); break;
            case TO_NE: ok = !veq(c, left, right); break;
            case TO_LT: ok = vcmp(c, left, right, n) < 0; break;
            case TO_LE: ok = vcmp(c, left, right, n) <= 0; break;
            case TO_GT: ok = vcmp(c, left, right, n) > 0; break;
            case TO_GE: ok = vcmp(c, left, right, n) >= 0; break;
            case TO_IN: ok = contains(c, right, left, n); break;
            default: ok = !contains(c, right, left, n); break;
            }
            if (!ok) { r = vbool(false); break; }
            left = right;
        }
        break;
    }
    default:
        fail(c, n, DS8B_E_INTERNAL, "cannot evaluate node kind %d", n->kind);
    }
    c->at = saved;
    c->edepth--;
    return r;
}


/* ================================================================== */
/* Statements                                                          */
/* ================================================================== */
static void assign(R *c, const N *t, tv v, frame *f) {
    if (t->kind == TN_NAME) { fset(c, f, t->s, v); return; }
    if (t->kind == TN_NSREF) {
        tv ns;
        if (!flookup(f, t->s, &ns) || ns.t != V_NS)
            fail(c, t, DS8B_E_TEMPLATE, "cannot assign attribute on non-namespace object '%.*s'", (int)t->s.n, t->s.p);
        dset(c, ns.u.d, vstr(t->s2.p, t->s2.n), v);
        return;
    }
    /* tuple unpacking */
    tlist *l;
    if (v.t == V_LIST) l = v.u.l;
    else if (v.t == V_STR || v.t == V_DICT) l = iter_list(c, v, t);
    else fail(c, t, DS8B_E_TEMPLATE, "cannot unpack non-iterable %s object", tname(v));
    if (l->n != t->nv) fail(c, t, DS8B_E_TEMPLATE, "expected %zu values to unpack, got %zu", t->nv, l->n);
    for (size_t i = 0; i < t->nv; i++) assign(c, t->v[i], l->it[i], f);
}

static void exec(R *c, const N *n, frame *f) {
    c->at = n;
    switch (n->kind) {
    case TN_BODY:
        for (size_t i = 0; i < n->nv; i++) {
            exec(c, n->v[i], f);
            if (c->ctl) return;
        }
        return;
    case TN_TEXT: emit(c, n->s.p, n->s.n); return;
    case TN_OUT: {
        tv v = ev(c, n->a, f);
        if (v.t == V_STR) emit(c, v.u.s.p, v.u.s.n);
        else {
            S s = to_s(c, v);
            emit(c, s.p, s.n);
        }
        return;
    }
    case TN_IF:
        for (const N *b = n; b;) {
            if (b->kind == TN_BODY) { exec(c, b, f); return; }
            c->at = b;
            if (truthy(ev(c, b->a, f))) { exec(c, b->b, f); return; }
            b = b->c;
        }
        return;
    case TN_FOR: {
        tv it = ev(c, n->b, f);
        tlist *items = iter_list(c, it, n);
        if (n->c) {
            tlist *kept = lnew(c, 0);
            frame *tf = fnew(c, f);
            for (size_t i = 0; i < items->n; i++) {
                tick(c, 1);
                tf->n = 0;
                assign(c, n->a, items->it[i], tf);
                if (truthy(ev(c, n->c, tf))) lpush(c, kept, items->it[i]);
            }
            items = kept;
        }
        if (!items->n) {
            if (n->d) exec(c, n->d, fnew(c, f));
            return;
        }
        if (++c->depth > c->lim.max_depth) fail(c, n, DS8B_E_LIMIT, "loops nested deeper than %d", c->lim.max_depth);
        tloop *lp = ralloc(c, sizeof *lp);
        lp->items = items;
        tv lv = {V_LOOP, 0, {0}};
        lv.u.lp = lp;
        /* one frame and loop object reused by every iteration: long loops
         * then cost no memory of their own */
        frame *bf = fnew(c, f);
        for (size_t i = 0; i < items->n; i++) {
            tick(c, 1);
            lp->i = i;
            bf->n = 0;
            assign(c, n->a, items->it[i], bf);
            fsetc(c, bf, "loop", lv);
            exec(c, n->v[0], bf);
            if (c->ctl == 1) { c->ctl = 0; break; }
            c->ctl = 0;
        }
        c->depth--;
        return;
    }
    case TN_SET: assign(c, n->a, ev(c, n->b, f), f); return;
    case TN_SETBLOCK: {
        size_t start = c->on;
        exec(c, n->b, f);
        tv s = concat_s(c, (S){c->out ? c->out + start : "", c->on - start}, (S){"", 0});
        c->on = start;
        assign(c, n->a, s, f);
        return;
    }
    case TN_MACRO: {
        tmacro *m = ralloc(c, sizeof *m);
        m->node = n;
        m->closure = f;
        tv v = {V_MACRO, 0, {0}};
        v.u.mac = m;
        fset(c, f, n->s, v);
        return;
    }
    case TN_GEN: exec(c, n->a, f); return;
    case TN_BREAK: c->ctl = 1; return;
    case TN_CONTINUE: c->ctl = 2; return;
    default:
        fail(c, n, DS8B_E_INTERNAL, "cannot execute node kind %d", n->kind);
    }
}

/* ================================================================== */
/* Entry points                                                        */
/* ================================================================== */
static tv from_json(R *c, const cJSON *j, int depth) {
    if (depth > DS8B__TMPL_MAX_NESTING) fail(c, NULL, DS8B_E_LIMIT, "input JSON nested deeper than %d", DS8B__TMPL_MAX_NESTING);
    if (cJSON_IsString(j) || cJSON_IsRaw(j)) return j->valuestring ? vcstr(j->valuestring) : vstr("", 0);
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (isfinite(d) && d == trunc(d) && fabs(d) < 9007199254740992.0) return vint((int64_t)d);
        return vfloat(d);
    }
    if (cJSON_IsTrue(j)) return vbool(true);
    if (cJSON_IsFalse(j)) return vbool(false);
    if (cJSON_IsArray(j)) {
        tlist *l = lnew(c, 0);
        for (const cJSON *x = j->child; x; x = x->next) lpush(c, l, from_json(c, x, depth + 1));
        return vlist(l);
    }
    if (cJSON_IsObject(j)) {
        tdict *d = dnew(c);
        for (const cJSON *x = j->child; x; x = x->next)
            dpush(c, d, x->string ? vcstr(x->string) : vstr("", 0), from_json(c, x, depth + 1));
        return vdict(d);
    }
    return vnone();
}

static int render_in(R *c, const ds8b__tmpl *t, const cJSON *messages, bool agp, const char *bos, const char *eos,
                     const cJSON *extra) {
    int rc = setjmp(c->jb);
    if (rc) return rc;
    frame *g = fnew(c, NULL);
    c->globals = g;
    if (extra)
        for (const cJSON *x = extra->child; x; x = x->next)
            if (x->string) fsetc(c, g, x->string, from_json(c, x, 1));
    fsetc(c, g, "messages", messages ? from_json(c, messages, 0) : vlist(lnew(c, 0)));
    fsetc(c, g, "add_generation_prompt", vbool(agp));
    fsetc(c, g, "bos_token", bos ? vcstr(bos) : vundef("bos_token", 9));
    fsetc(c, g, "eos_token", eos ? vcstr(eos) : vundef("eos_token", 9));
    frame *root = fnew(c, g);
    exec(c, t->root, root);
    return 0;
}

int ds8b__tmpl_render_ex(const ds8b__tmpl *t, const cJSON *messages, bool add_generation_prompt,
                         const char *bos_token, const char *eos_token, const cJSON *extra,
                         const ds8b__tmpl_limits *lim, char **out, size_t *out_len, ds8b__err *e) {
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!t || !out || !out_len) return ds8b__seterr(e, DS8B_E_INVALID, "chat template: NULL argument");
    if (messages && !cJSON_IsArray(messages))
        return ds8b__seterr(e, DS8B_E_INVALID, "chat template: messages must be a JSON array");
    if (extra && !cJSON_IsObject(extra))
        return ds8b__seterr(e, DS8B_E_INVALID, "chat template: extra globals must be a JSON object");
    R *c = ds8b__calloc(DS8B_MEM_OTHER, 1, sizeof *c);
    if (!c) return ds8b__seterr(e, DS8B_E_NOMEM, "chat template: out of memory");
    c->e = e;
    if (lim) c->lim = *lim;
    if (!c->lim.max_output) c->lim.max_output = (size_t)8 << 20;
    if (!c->lim.max_memory) c->lim.max_memory = (size_t)64 << 20;
    if (!c->lim.max_iterations) c->lim.max_iterations = 1000000;
    if (c->lim.max_depth <= 0) c->lim.max_depth = 64;
    if (c->lim.max_output > ((size_t)1 << 40)) c->lim.max_output = (size_t)1 << 40;
    ds8b__ta_init(&c->ar, DS8B_MEM_OTHER, c->lim.max_memory);
    int rc = render_in(c, t, messages, add_generation_prompt, bos_token, eos_token, extra);
    if (rc == 0) {
        char *r = ds8b__realloc(DS8B_MEM_OTHER, c->out, c->on + 1);
        if (!r) rc = ds8b__seterr(e, DS8B_E_NOMEM, "chat template: out of memory");
        else {
            r[c->on] = 0;
            *out = r;
            *out_len = c->on;
            c->out = NULL;
        }
    }
    ds8b__free(c->out);
    ds8b__ta_free(&c->ar);
    ds8b__free(c);
    return rc;
}

int ds8b__tmpl_render(const ds8b__tmpl *t, const cJSON *messages, bool add_generation_prompt,
                      const char *bos_token, const char *eos_token, const cJSON *extra,
                      char **out, size_t *out_len, ds8b__err *e) {
    return ds8b__tmpl_render_ex(t, messages, add_generation_prompt, bos_token, eos_token, extra, NULL, out,
                                out_len, e);
}
