/* tok_json.c -- the small JSON reader used by the tokenizer loader. */
#include "tokenizer/tok_json.h"
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct tj_parser {
    const unsigned char *s;
    size_t n, pos;
    ds8b__tj_doc *d;
    const char *name;
    ds8b__err *e;
} tj_parser;

static int tj_fail(tj_parser *p, const char *what) {
    return ds8b__seterr(p->e, DS8B_E_FORMAT, "%s: JSON: %s at byte %zu", p->name, what, p->pos);
}

static void tj_ws(tj_parser *p) {
    while (p->pos < p->n) {
        unsigned char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') p->pos++;
        else break;
    }
}

static int tj_new_node(tj_parser *p, uint8_t type, uint32_t *out) {
    ds8b__tj_doc *d = p->d;
    if (d->n_nodes == d->cap_nodes) {
        size_t nc = d->cap_nodes ? (size_t)d->cap_nodes * 2 : 1024, bytes;
        if (nc > UINT32_MAX - 1) return ds8b__seterr(p->e, DS8B_E_LIMIT, "%s: JSON: too many values", p->name);
        if (!ds8b__mul_ok(nc, sizeof(ds8b__tj_node), &bytes))
            return ds8b__seterr(p->e, DS8B_E_LIMIT, "%s: JSON: too many values", p->name);
        ds8b__tj_node *nn = ds8b__realloc(DS8B_MEM_OTHER, d->nodes, bytes);
        if (!nn) return ds8b__seterr(p->e, DS8B_E_NOMEM, "%s: JSON: out of memory for %zu values", p->name, nc);
        d->nodes = nn;
        d->cap_nodes = (uint32_t)nc;
    }
    ds8b__tj_node *n = &d->nodes[d->n_nodes];
    memset(n, 0, sizeof *n);
    n->type = type;
    *out = d->n_nodes++;
    return DS8B_OK;
}

static int tj_hex4(tj_parser *p, uint32_t *v) {
    if (p->n - p->pos < 4) return tj_fail(p, "truncated \\u escape");
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p->s[p->pos + i];
        r <<= 4;
        if (c >= '0' && c <= '9') r |= c - '0';
        else if (c >= 'a' && c <= 'f') r |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') r |= c - 'A' + 10;
        else return tj_fail(p, "bad \\u escape");
    }
    p->pos += 4;
    *v = r;
    return DS8B_OK;
}

static size_t tj_put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string at p->pos (the opening quote) into the arena. The arena
 * was sized to the input, and an unescaped string plus its NUL never needs
 * more bytes than its quoted source. */
static int tj_string(tj_parser *p, uint32_t *off, uint32_t *len) {
    ds8b__tj_doc *d = p->d;
    p->pos++; /* opening quote */
    size_t start = d->arena_len;
    char *o = d->arena + start;
    size_t k = 0;
    for (;;) {
        if (p->pos >= p->n) return tj_fail(p, "unterminated string");
        unsigned char c = p->s[p->pos];
        if (c == '"') { p->pos++; break; }
        if (c < 0x20) return tj_fail(p, "control character in string");
        if (c >= 0x80) { /* JSON text is UTF-8: refuse anything else */
            uint32_t cp;
            size_t bad;
            int l = ds8b__utf8_scan(p->s + p->pos, p->n - p->pos, &cp, &bad);
            if (l <= 0) return tj_fail(p, "invalid UTF-8 in string");
            memcpy(o + k, p->s + p->pos, (size_t)l);
            k += (size_t)l;
            p->pos += (size_t)l;
            continue;
        }
        if (c != '\\') { o[k++] = (char)c; p->pos++; continue; }
        p->pos++;
        if (p->pos >= p->n) return tj_fail(p, "unterminated escape");
        c = p->s[p->pos++];
        switch (c) {
        case '"': o[k++] = '"'; break;
        case '\\': o[k++] = '\\'; break;
        case '/': o[k++] = '/'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            int rc = tj_hex4(p, &cp);
            if (rc) return rc;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->n - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                    p->pos += 2;
                    if ((rc = tj_hex4(p, &lo))) return rc;
                    if (lo < 0xDC00 || lo > 0xDFFF) return tj_fail(p, "unpaired surrogate escape");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    return tj_fail(p, "unpaired surrogate escape");
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return tj_fail(p, "unpaired surrogate escape");
            }
            k += tj_put_utf8(o + k, cp);
            break;
        }
        default: return tj_fail(p, "bad escape");
        }
    }
    o[k] = 0;
    if (k > UINT32_MAX || start > UINT32_MAX) return tj_fail(p, "string too long");
    *off = (uint32_t)start;
    *len = (uint32_t)k;
    d->arena_len = start + k + 1;
    return DS8B_OK;
}

static int tj_number(tj_parser *p, double *v) {
    size_t st = p->pos;
    const unsigned char *s = p->s;
    if (p->pos < p->n && s[p->pos] == '-') p->pos++;
    if (p->pos >= p->n) return tj_fail(p, "bad number");
    if (s[p->pos] == '0') p->pos++;
    else if (s[p->pos] >= '1' && s[p->pos] <= '9') { while (p->pos < p->n && s[p->pos] >= '0' && s[p->pos] <= '9') p->pos++; }
    else return tj_fail(p, "bad number");
    bool simple = true;
    if (p->pos < p->n && s[p->pos] == '.') {
        simple = false;
        p->pos++;
        if (p->pos >= p->n || s[p->pos] < '0' || s[p->pos] > '9') return tj_fail(p, "bad number");
        while (p->pos < p->n && s[p->pos] >= '0' && s[p->pos] <= '9') p->pos++;
    }
    if (p->pos < p->n && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        simple = false;
        p->pos++;
        if (p->pos < p->n && (s[p->pos] == '+' || s[p->pos] == '-')) p->pos++;
        if (p->pos >= p->n || s[p->pos] < '0' || s[p->pos] > '9') return tj_fail(p, "bad number");
        while (p->pos < p->n && s[p->pos] >= '0' && s[p->pos] <= '9') p->pos++;
    }
    size_t len = p->pos - st;
    if (simple && len <= 18) {
        bool neg = s[st] == '-';
        int64_t r = 0;
        for (size_t i = st + (neg ? 1 : 0); i < p->pos; i++) r = r * 10 + (s[i] - '0');
        *v = (double)(neg ? -r : r);
        return DS8B_OK;
    }
    char buf[64];
    if (len >= sizeof buf) { /* absurdly long: keep the magnitude only roughly */
        *v = 0;
        return DS8B_OK;
    }
    memcpy(buf, s + st, len);
    buf[len] = 0;
    *v = strtod(buf, NULL);
    return DS8B_OK;
}

static int tj_value(tj_parser *p, uint32_t *out, int depth);

static int tj_container(tj_parser *p, uint32_t *out, int depth, bool is_obj) {
    if (depth >= DS8B__TJ_MAX_DEPTH) return tj_fail(p, "nesting too deep");
    uint32_t me;
    int rc = tj_new_node(p, is_obj ? DS8B__TJ_OBJ : DS8B__TJ_ARR, &me);
    if (rc) return rc;
    p->pos++; /* [ or { */
    tj_ws(p);
    unsigned char close = is_obj ? '}' : ']';
    if (p->pos < p->n && p->s[p->pos] == close) { p->pos++; *out = me; return DS8B_OK; }
    uint32_t last = 0, count = 0;
    for (;;) {
        uint32_t koff = 0, klen = 0, child;
        tj_ws(p);
        if (is_obj) {
            if (p->pos >= p->n || p->s[p->pos] != '"') return tj_fail(p, "expected a key");
            if ((rc = tj_string(p, &koff, &klen))) return rc;
            tj_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':') return tj_fail(p, "expected ':'");
            p->pos++;
        }
        if ((rc = tj_value(p, &child, depth + 1))) return rc;
        ds8b__tj_node *cn = &p->d->nodes[child];
        cn->key_off = koff;
        cn->key_len = klen;
        if (last) p->d->nodes[last].next = child;
        else p->d->nodes[me].first = child;
        last = child;
        count++;
        tj_ws(p);
        if (p->pos >= p->n) return tj_fail(p, "unterminated container");
        unsigned char c = p->s[p->pos++];
        if (c == ',') continue;
        if (c == close) break;
        return tj_fail(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    p->d->nodes[me].count = count;
    *out = me;
    return DS8B_OK;
}

static int tj_lit(tj_parser *p, const char *word, uint8_t type, uint32_t *out) {
    size_t l = strlen(word);
    if (p->n - p->pos < l || memcmp(p->s + p->pos, word, l) != 0) return tj_fail(p, "unexpected character");
    p->pos += l;
    return tj_new_node(p, type, out);
}

static int tj_value(tj_parser *p, uint32_t *out, int depth) {
    tj_ws(p);
    if (p->pos >= p->n) return tj_fail(p, "unexpected end");
    unsigned char c = p->s[p->pos];
    int rc;
    switch (c) {
    case '{': return tj_container(p, out, depth, true);
    case '[': return tj_container(p, out, depth, false);
    case '"': {
        uint32_t me, off, len;
        if ((rc = tj_new_node(p, DS8B__TJ_STR, &me))) return rc;
        if ((rc = tj_string(p, &off, &len))) return rc;
        p->d->nodes[me].str_off = off;
        p->d->nodes[me].str_len = len;
        *out = me;
        return DS8B_OK;
    }
    case 't': return tj_lit(p, "true", DS8B__TJ_TRUE, out);
    case 'f': return tj_lit(p, "false", DS8B__TJ_FALSE, out);
    case 'n': return tj_lit(p, "null", DS8B__TJ_NULL, out);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            uint32_t me;
            double v = 0;
            if ((rc = tj_number(p, &v))) return rc;
            if ((rc = tj_new_node(p, DS8B__TJ_NUM, &me))) return rc;
            p->d->nodes[me].num = v;
            *out = me;
            return DS8B_OK;
        }
        return tj_fail(p, "unexpected character");
    }
}

int ds8b__tj_parse(ds8b__tj_doc *d, const char *json, size_t len, const char *name, ds8b__err *e) {
    memset(d, 0, sizeof *d);
    if (!name) name = "JSON";
    if (!json) return ds8b__seterr(e, DS8B_E_INVALID, "%s: no JSON text", name);
    size_t cap;
    if (!ds8b__add_ok(len, 16, &cap) || len > UINT32_MAX - 64)
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: JSON document too large (%zu bytes)", name, len);
    d->arena = ds8b__malloc(DS8B_MEM_OTHER, cap);
    if (!d->arena) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate %zu bytes", name, cap);
    d->arena_cap = cap;
    d->arena[0] = 0;
    d->arena_len = 1; /* offset 0 is the empty string (keys of array items) */
    /* Every value but the root follows a ',' or opens a container's first
     * slot, so commas + '[' + '{' + 1 bounds the node count: one allocation. */
    size_t bound = 1;
    for (size_t i = 0; i < len; i++) {
        char ch = json[i];
        bound += (ch == ',') | (ch == '[') | (ch == '{');
    }
    if (bound < UINT32_MAX) {
        size_t bytes;
        if (ds8b__mul_ok(bound, sizeof(ds8b__tj_node), &bytes) &&
            (d->nodes = ds8b__malloc(DS8B_MEM_OTHER, bytes)) != NULL)
            d->cap_nodes = (uint32_t)bound;
    }
    tj_parser p = {(const unsigned char *)json, len, 0, d, name, e};
    /* skip a UTF-8 byte-order mark */
    if (len >= 3 && memcmp(json, "\xEF\xBB\xBF", 3) == 0) p.pos = 3;
    uint32_t root;
    int rc = tj_value(&p, &root, 0);
    if (rc == DS8B_OK) {
        tj_ws(&p);
        if (p.pos != p.n) rc = tj_fail(&p, "trailing data after the document");
    }
    if (rc) { ds8b__tj_free(d); return rc; }
    return DS8B_OK;
}

void ds8b__tj_free(ds8b__tj_doc *d) {
    if (!d) return;
    ds8b__free(d->nodes);
    ds8b__free(d->arena);
    memset(d, 0, sizeof *d);
}

const ds8b__tj_node *ds8b__tj_get(const ds8b__tj_doc *d, const ds8b__tj_node *obj, const char *key) {
    if (!obj || obj->type != DS8B__TJ_OBJ) return NULL;
    size_t kl = strlen(key);
    const ds8b__tj_node *found = NULL;
    for (const ds8b__tj_node *c = ds8b__tj_first(d, obj); c; c = ds8b__tj_next(d, c))
        if (c->key_len == kl && memcmp(d->arena + c->key_off, key, kl) == 0) found = c; /* last wins */
    return found;
}

const ds8b__tj_node *ds8b__tj_at(const ds8b__tj_doc *d, const ds8b__tj_node *arr, uint32_t i) {
    if (!arr || arr->type != DS8B__TJ_ARR) return NULL;
    const ds8b__tj_node *c = ds8b__tj_first(d, arr);
    while (c && i--) c = ds8b__tj_next(d, c);
    return c;
}

bool ds8b__tj_bool(const ds8b__tj_node *n, bool def) {
    if (!n || n->type == DS8B__TJ_NULL) return def;
    return n->type == DS8B__TJ_TRUE;
}
