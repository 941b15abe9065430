/*
 * toolcall.c -- tool calls parsed out of a model's output (toolcall.h).
 * The text is model output: every offset is checked against its length,
 * nothing is assumed to be NUL-terminated, and a malformed call is
 * handed back as text, never trusted.
 */
#include "chat/toolcall.h"

#include <stdbool.h>

int ds8b__tc_family(const char *src) {
    if (!src) return DS8B__TC_NONE;
    if (strstr(src, DS8B__TC_QWEN_OPEN)) return DS8B__TC_QWEN;
    if (strstr(src, DS8B__TC_DS_CALLS_BEGIN) || strstr(src, DS8B__TC_DS_CALL_BEGIN)) return DS8B__TC_DEEPSEEK;
    return DS8B__TC_NONE;
}

/* ------------------------------------------------------------------ */
/* Small text helpers over (p, n)                                      */
/* ------------------------------------------------------------------ */
static bool ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static size_t skip_ws(const char *p, size_t n, size_t i) {
    while (i < n && ws(p[i])) i++;
    return i;
}

/* Offset of needle in p[from, n), or n when absent. */
static size_t find(const char *p, size_t n, size_t from, const char *needle) {
    size_t l = strlen(needle);
    if (l == 0 || from > n || n - from < l) return n;
    for (size_t i = from; i + l <= n; i++)
        if (p[i] == needle[0] && memcmp(p + i, needle, l) == 0) return i;
    return n;
}

static bool starts(const char *p, size_t n, size_t i, const char *lit) {
    size_t l = strlen(lit);
    return i <= n && n - i >= l && memcmp(p + i, lit, l) == 0;
}

static void trim(const char *p, size_t *a, size_t *b) {
    while (*a < *b && ws(p[*a])) (*a)++;
    while (*b > *a && ws(p[*b - 1])) (*b)--;
}

/* Skips the JSON string starting at p[i] == '"'; returns the offset after
 * its closing quote, or 0 when unterminated. */
static size_t skip_string(const char *p, size_t n, size_t i) {
    for (i++; i < n; i++) {
        if (p[i] == '\\') { i++; continue; }
        if (p[i] == '"') return i + 1;
    }
    return 0;
}

/* End offset of the JSON value starting at p[i] (already validated by
 * cJSON, so only its extent is found), or 0 on malformed text. */
static size_t skip_value(const char *p, size_t n, size_t i) {
    if (i >= n) return 0;
    if (p[i] == '"') return skip_string(p, n, i);
    if (p[i] == '{' || p[i] == '[') {
        size_t depth = 0;
        while (i < n) {
            char c = p[i];
            if (c == '"') {
                i = skip_string(p, n, i);
                if (!i) return 0;
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0) return i + 1;
            }
            i++;
        }
        return 0;
    }
    while (i < n && !ws(p[i]) && p[i] != ',' && p[i] != '}' && p[i] != ']') i++;
    return i;
}

/* Control bytes other than tab and line breaks: JSON allows none of them
 * outside strings and none raw inside; cJSON would take them (and NUL) as
 * whitespace, and a NUL would cut the text handed back. A call holding one
 * is malformed. */
static bool has_control(const char *p, size_t a, size_t b) {
    for (size_t i = a; i < b; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return true;
    }
    return false;
}

/* Parses exactly p[a, b) as one JSON value (NULL if it is not). */
static cJSON *parse_exact(const char *p, size_t a, size_t b) {
    if (a >= b) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(p + a, b - a, &end, 0);
    if (!j) return NULL;
    size_t used = (size_t)(end - (p + a));
    while (a + used < b && ws(p[a + used])) used++;
    if (a + used != b) { cJSON_Delete(j); return NULL; }
    return j;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */
typedef struct tc_out {
    cJSON *calls;
    char *bad;
    size_t nbad, cbad;
    bool oom;
} tc_out;

static void put_bad(tc_out *o, const char *p, size_t n) {
    if (o->oom || !n) return;
    if (o->nbad + n + 1 > o->cbad) {
        size_t nc = o->cbad ? o->cbad : 128;
        while (nc < o->nbad + n + 1) {
            if (nc > SIZE_MAX / 2) { o->oom = true; return; }
            nc *= 2;
        }
        char *q = ds8b__realloc(DS8B_MEM_SESSION, o->bad, nc);
        if (!q) { o->oom = true; return; }
        o->bad = q;
        o->cbad = nc;
    }
    memcpy(o->bad + o->nbad, p, n);
    o->nbad += n;
    o->bad[o->nbad] = 0;
}

/* Appends {"type", "function": {"name", "arguments"}}; false when out of memory. */
static bool add_call(tc_out *o, const char *type, size_t ntype, const char *name, size_t nname, const char *args,
                     size_t nargs) {
    char *t = ds8b__malloc(DS8B_MEM_SESSION, ntype + nname + nargs + 3);
    if (!t) { o->oom = true; return false; }
    char *ty = t, *nm = t + ntype + 1, *ar = nm + nname + 1;
    memcpy(ty, type, ntype); ty[ntype] = 0;
    memcpy(nm, name, nname); nm[nname] = 0;
    memcpy(ar, args, nargs); ar[nargs] = 0;
    cJSON *call = cJSON_CreateObject(), *fn = cJSON_CreateObject();
    bool ok = call && fn && cJSON_AddStringToObject(call, "type", ty) &&
              cJSON_AddStringToObject(fn, "name", nm) && cJSON_AddStringToObject(fn, "arguments", ar);
    ds8b__free(t);
    if (ok) {
        cJSON_AddItemToObject(call, "function", fn);
        fn = NULL;
        ok = cJSON_AddItemToArray(o->calls, call);
        if (ok) call = NULL;
    }
    cJSON_Delete(fn);
    cJSON_Delete(call);
    if (!ok) o->oom = true;
    return ok;
}

/* Is p[a, b) a JSON object (the arguments of a call)? */
static bool is_object_text(const char *p, size_t a, size_t b) {
    cJSON *j = parse_exact(p, a, b);
    bool ok = j && cJSON_IsObject(j);
    cJSON_Delete(j);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Qwen: <tool_call>{"name": ..., "arguments": {...}}</tool_call>      */
/* ------------------------------------------------------------------ */
/* One call body p[a, b): true and a call added when well-formed. */
static bool qwen_call(tc_out *o, const char *p, size_t a, size_t b) {
    trim(p, &a, &b);
    if (has_control(p, a, b)) return false;
    cJSON *j = parse_exact(p, a, b);
    if (!j || !cJSON_IsObject(j)) { cJSON_Delete(j); return false; }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(j, "arguments");
    bool ok = cJSON_IsString(name) && name->valuestring[0] && (!args || cJSON_IsObject(args) || cJSON_IsString(args));
    if (ok && cJSON_IsString(args)) { /* a JSON object written as a string */
        const char *s = args->valuestring;
        ok = !has_control(s, 0, strlen(s)) && is_object_text(s, 0, strlen(s));
        if (ok) ok = add_call(o, "function", 8, name->valuestring, strlen(name->valuestring), s, strlen(s));
    } else if (ok && !args) {
        ok = add_call(o, "function", 8, name->valuestring, strlen(name->valuestring), "{}", 2);
    } else if (ok) {
        /* the raw text of "arguments": walk the top-level members */
        size_t i = skip_ws(p, b, a + 1), va = 0, vb = 0;
        while (i < b && p[i] == '"') {
            size_t ke = skip_string(p, b, i);
            if (!ke) break;
            bool is_args = ke - i == 11 && memcmp(p + i, "\"arguments\"", 11) == 0;
            i = skip_ws(p, b, ke);
            if (i >= b || p[i] != ':') break;
            i = skip_ws(p, b, i + 1);
            size_t ve = skip_value(p, b, i);
            if (!ve) break;
            if (is_args) { /* the first, as cJSON's lookup */
                va = i;
                vb = ve;
                break;
            }
            i = skip_ws(p, b, ve);
            if (i < b && p[i] == ',') i = skip_ws(p, b, i + 1);
        }
        ok = vb > va && is_object_text(p, va, vb);
        if (ok) ok = add_call(o, "function", 8, name->valuestring, strlen(name->valuestring), p + va, vb - va);
    }
    cJSON_Delete(j);
    return ok;
}

static void parse_qwen(tc_out *o, const char *p, size_t n) {
    size_t lo = strlen(DS8B__TC_QWEN_OPEN), lc = strlen(DS8B__TC_QWEN_CLOSE);
    size_t i = 0;
    while (i < n && !o->oom) {
        size_t s = find(p, n, i, DS8B__TC_QWEN_OPEN);
        /* text between blocks: whitespace is dropped, anything else kept */
        size_t a = i, b = s;
        trim(p, &a, &b);
        if (b > a) put_bad(o, p + a, b - a);
        if (s == n) break;
        size_t c = find(p, n, s + lo, DS8B__TC_QWEN_CLOSE);
        if (c == n) { put_bad(o, p + s, n - s); break; } /* never closed */
        if (!qwen_call(o, p, s + lo, c) && !o->oom) put_bad(o, p + s, c + lc - s);
        i = c + lc;
    }
}

/* ------------------------------------------------------------------ */
/* DeepSeek: <｜tool▁call▁begin｜>TYPE<｜tool▁sep｜>NAME\n```json\n{}\n```<｜tool▁call▁end｜> */
/* ------------------------------------------------------------------ */
static bool ds_call(tc_out *o, const char *p, size_t a, size_t b) {
    if (has_control(p, a, b)) return false;
    size_t sep = find(p, b, a, DS8B__TC_DS_SEP);
    if (sep == b) return false;
    size_t ta = a, tb = sep;
    trim(p, &ta, &tb);
    size_t na = sep + strlen(DS8B__TC_DS_SEP), nl = na;
    while (nl < b && p[nl] != '\n') nl++;
    size_t nb = nl;
    trim(p, &na, &nb);
    if (nb == na) return false;
    for (size_t k = na; k < nb; k++)
        if (p[k] == '`' || p[k] == '{') return false; /* no line break between name and arguments */
    size_t xa = nl, xb = b;
    trim(p, &xa, &xb);
    if (starts(p, xb, xa, "```")) { /* fenced: ```json ... ``` */
        while (xa < xb && p[xa] != '\n') xa++;
        if (xb - xa < 3 || memcmp(p + xb - 3, "```", 3) != 0) return false;
        xb -= 3;
        trim(p, &xa, &xb);
    }
    if (!is_object_text(p, xa, xb)) return false;
    if (tb == ta) return add_call(o, "function", 8, p + na, nb - na, p + xa, xb - xa);
    return add_call(o, p + ta, tb - ta, p + na, nb - na, p + xa, xb - xa);
}

static void parse_deepseek(tc_out *o, const char *p, size_t n) {
    size_t lb = strlen(DS8B__TC_DS_CALL_BEGIN), le = strlen(DS8B__TC_DS_CALL_END);
    size_t i = 0;
    while (i < n && !o->oom) {
        i = skip_ws(p, n, i);
        if (starts(p, n, i, DS8B__TC_DS_CALLS_BEGIN)) { i += strlen(DS8B__TC_DS_CALLS_BEGIN); continue; }
        if (starts(p, n, i, DS8B__TC_DS_CALLS_END)) { i += strlen(DS8B__TC_DS_CALLS_END); continue; }
        if (i >= n) break;
        size_t s = find(p, n, i, DS8B__TC_DS_CALL_BEGIN);
        size_t stop = find(p, n, i, DS8B__TC_DS_CALLS_END);
        if (stop < s) s = stop;
        size_t a = i, b = s;
        trim(p, &a, &b);
        if (b > a) put_bad(o, p + a, b - a);
        if (s == n) break;
        if (s == stop) { i = s; continue; }
        size_t c = find(p, n, s + lb, DS8B__TC_DS_CALL_END);
        size_t nxt = find(p, n, s + lb, DS8B__TC_DS_CALL_BEGIN);
        if (c > nxt) c = n; /* the next call began before this one ended */
        if (c == n) {
            size_t upto = nxt < n ? nxt : stop;
            put_bad(o, p + s, upto - s);
            i = upto;
            continue;
        }
        if (!ds_call(o, p, s + lb, c) && !o->oom) put_bad(o, p + s, c + le - s);
        i = c + le;
    }
}

int ds8b__tc_parse(int family, const char *text, size_t len, cJSON *calls, char **bad, size_t *nbad,
                   ds8b__err *e) {
    tc_out o = {calls, NULL, 0, 0, false};
    *bad = NULL;
    *nbad = 0;
    if (!text) len = 0;
    if (family == DS8B__TC_QWEN) parse_qwen(&o, text, len);
    else if (family == DS8B__TC_DEEPSEEK) parse_deepseek(&o, text, len);
    else put_bad(&o, text, len);
    if (o.oom) {
        ds8b__free(o.bad);
        return ds8b__seterr(e, DS8B_E_NOMEM, "tool calls");
    }
    *bad = o.bad;
    *nbad = o.nbad;
    return DS8B_OK;
}
