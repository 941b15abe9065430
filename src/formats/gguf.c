/*
 * gguf.c -- GGUF reader: parses and validates the whole header up front.
 *
 * Layout (v2/v3, little-endian):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv    x { string key, u32 type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
 *   padding to general.alignment, then tensor data (offsets relative to it).
 * A string is a u64 byte count then the bytes (no NUL). An array value is a
 * u32 element type, a u64 count, then the elements.
 *
 * Hardening: every count from the file is bounded by the bytes left before
 * anything is allocated for it, every sum and product is overflow-checked,
 * and allocations grow with what was actually parsed.
 */
#include "formats/gguf.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

/* Smallest encodings, used to bound counts by the bytes left. */
#define MIN_KV_BYTES 14      /* key len 8 + 1 byte + type 4 + 1 byte value */
#define MIN_TINFO_BYTES 33   /* name 8+1, n_dims 4, ne 8, type 4, offset 8 */
#define ARR_HDR_BYTES 12     /* elem type 4 + count 8 */

typedef struct gguf_kv {
    char *key;
    int type;
    const uint8_t *val;  /* encoded value (after the type field) */
    size_t val_size;
    int elem_type;       /* arrays */
    uint64_t count;
    const uint8_t *elems;
    size_t *str_off;     /* string arrays: offset of element i from elems */
} gguf_kv;

struct ds8b__gguf {
    char *name;
    ds8b__mmap map;
    bool mapped;
    const uint8_t *base;
    size_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_off;
    gguf_kv *kvs;
    int64_t n_kv;
    ds8b__tensor *tensors;
    uint64_t *t_off;     /* offsets relative to the data section */
    int64_t n_tensors;
    int64_t *kv_hash;    /* index + 1, 0 = empty */
    size_t kv_mask;
    int64_t *t_hash;
    size_t t_mask;
    int64_t crc_kv;      /* KV index of a well-formed ds8b.tensor_crc32, or -1 */
    bool crc_bad;        /* the key is present but malformed */
    int crc_state;       /* DS8B_GGUF_CRC_* */
    char crc_why[160];   /* why the checksums are stale (for the log) */
};

/* ------------------------------------------------------------------ */
/* Little helpers                                                      */
/* ------------------------------------------------------------------ */
static inline uint32_t ld_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ld_u64(const uint8_t *p) {
    return (uint64_t)ld_u32(p) | (uint64_t)ld_u32(p + 4) << 32;
}

static const char *const k_type_names[DS8B_GGUF__NTYPES] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64"};
static const uint8_t k_type_size[DS8B_GGUF__NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *ds8b__gguf_type_name(int type) {
    return type >= 0 && type < DS8B_GGUF__NTYPES ? k_type_names[type] : "unknown";
}
size_t ds8b__gguf_type_size(int type) {
    return type >= 0 && type < DS8B_GGUF__NTYPES ? k_type_size[type] : 0;
}

uint32_t ds8b__gguf_crc32(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = data;
    uLong c = crc;
    while (n > 0) {
        size_t k = n > (1u << 30) ? (1u << 30) : n;
        c = crc32(c, p, (uInt)k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

/* ------------------------------------------------------------------ */
/* Tensor table digest                                                 */
/* ------------------------------------------------------------------ */
static void td_bytes(ds8b__gguf_tdigest *d, const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = d->h;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    d->h = h;
}
static void td_u64(ds8b__gguf_tdigest *d, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    td_bytes(d, b, 8);
}
void ds8b__gguf_tdigest_init(ds8b__gguf_tdigest *d, uint64_t n_tensors, uint32_t alignment) {
    d->h = 14695981039346656037ull;
    td_bytes(d, "ds8b-tensor-table-1", 19);
    td_u64(d, n_tensors);
    td_u64(d, alignment);
}
void ds8b__gguf_tdigest_add(ds8b__gguf_tdigest *d, const char *name, int type, int n_dims, const int64_t *ne,
                            uint64_t off) {
    size_t n = strlen(name);
    td_u64(d, n);
    td_bytes(d, name, n);
    td_u64(d, (uint64_t)(uint32_t)type);
    td_u64(d, (uint64_t)(uint32_t)n_dims);
    for (int i = 0; i < n_dims; i++) td_u64(d, (uint64_t)ne[i]);
    td_u64(d, off);
}
void ds8b__gguf_tdigest_str(const ds8b__gguf_tdigest *d, char out[DS8B_GGUF_TDIGEST_LEN + 1]) {
    snprintf(out, DS8B_GGUF_TDIGEST_LEN + 1, "fnv1a64:%016llx", (unsigned long long)d->h);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */
int ds8b__gguf_check_value(int type, const uint8_t *p, size_t size, size_t *used, int depth,
                           ds8b__err *e) {
    *used = 0;
    if (type < 0 || type >= DS8B_GGUF__NTYPES)
        return ds8b__seterr(e, DS8B_E_FORMAT, "unknown value type %d", type);
    size_t ts = k_type_size[type];
    if (ts) {
        if (size < ts)
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s value truncated (%zu of %zu bytes)",
                                k_type_names[type], size, ts);
        if (type == DS8B_GGUF_BOOL && p[0] > 1)
            return ds8b__seterr(e, DS8B_E_FORMAT, "bool value is %u (must be 0 or 1)", p[0]);
        *used = ts;
        return DS8B_OK;
    }
    if (type == DS8B_GGUF_STRING) {
        if (size < 8)
            return ds8b__seterr(e, DS8B_E_FORMAT, "string length truncated (%zu of 8 bytes)", size);
        uint64_t n = ld_u64(p);
        if (n > size - 8)
            return ds8b__seterr(e, DS8B_E_FORMAT,
                                "string length %llu runs past the end (%zu bytes left)",
                                (unsigned long long)n, size - 8);
        *used = 8 + (size_t)n;
        return DS8B_OK;
    }
    /* array */
    if (depth >= DS8B_GGUF_MAX_DEPTH)
        return ds8b__seterr(e, DS8B_E_FORMAT, "arrays nested more than %d deep",
                            DS8B_GGUF_MAX_DEPTH);
    if (size < ARR_HDR_BYTES)
        return ds8b__seterr(e, DS8B_E_FORMAT, "array header truncated (%zu of 12 bytes)", size);
    uint32_t et = ld_u32(p);
    uint64_t count = ld_u64(p + 4);
    if (et >= DS8B_GGUF__NTYPES)
        return ds8b__seterr(e, DS8B_E_FORMAT, "array has unknown element type %u", et);
    size_t left = size - ARR_HDR_BYTES;
    const uint8_t *q = p + ARR_HDR_BYTES;
    size_t es = k_type_size[et];
    size_t min_each = es ? es : (et == DS8B_GGUF_STRING ? 8 : ARR_HDR_BYTES);
    if (count > left / min_each)
        return ds8b__seterr(e, DS8B_E_FORMAT,
                            "array of %llu %s elements cannot fit in the %zu bytes left",
                            (unsigned long long)count, k_type_names[et], left);
    size_t pos = 0;
    if (es) {
        pos = (size_t)count * es;
        if (et == DS8B_GGUF_BOOL) {
            for (size_t i = 0; i < pos; i++)
                if (q[i] > 1)
                    return ds8b__seterr(e, DS8B_E_FORMAT,
                                        "bool element %zu is %u (must be 0 or 1)", i, q[i]);
        }
    } else {
        for (uint64_t i = 0; i < count; i++) {
            size_t u;
            int rc = ds8b__gguf_check_value((int)et, q + pos, left - pos, &u, depth + 1, e);
            if (rc) {
                ds8b__errprefix(e, "element %llu of %llu", (unsigned long long)i,
                                (unsigned long long)count);
                return rc;
            }
            pos += u;
        }
    }
    *used = ARR_HDR_BYTES + pos;
    return DS8B_OK;
}

static void make_val(int type, const uint8_t *p, size_t size, ds8b__gguf_val *v) {
    v->type = type;
    v->elem_type = -1;
    v->len = 0;
    if (type == DS8B_GGUF_STRING) {
        v->len = ld_u64(p);
        v->p = p + 8;
        v->size = size - 8;
    } else if (type == DS8B_GGUF_ARRAY) {
        v->elem_type = (int)ld_u32(p);
        v->len = ld_u64(p + 4);
        v->p = p + ARR_HDR_BYTES;
        v->size = size - ARR_HDR_BYTES;
    } else {
        v->p = p;
        v->size = size;
    }
}

int ds8b__gguf_val_elem(const ds8b__gguf_val *arr, uint64_t idx, ds8b__gguf_val *out) {
    if (!arr || arr->type != DS8B_GGUF_ARRAY || idx >= arr->len) return DS8B_E_INVALID;
    size_t es = ds8b__gguf_type_size(arr->elem_type);
    if (es) {
        make_val(arr->elem_type, arr->p + (size_t)idx * es, es, out);
        return DS8B_OK;
    }
    size_t pos = 0, u = 0;
    for (uint64_t i = 0;; i++) {
        if (ds8b__gguf_check_value(arr->elem_type, arr->p + pos, arr->size - pos, &u, 1, NULL))
            return DS8B_E_FORMAT;
        if (i == idx) break;
        pos += u;
    }
    make_val(arr->elem_type, arr->p + pos, u, out);
    return DS8B_OK;
}

/* Integer value: *sgn tells which of *s / *u holds it. */
static bool val_int(const ds8b__gguf_val *v, bool *sgn, int64_t *s, uint64_t *u) {
    const uint8_t *p = v->p;
    *sgn = false;
    *s = 0;
    *u = 0;
    switch (v->type) {
    case DS8B_GGUF_UINT8: *u = p[0]; return true;
    case DS8B_GGUF_INT8: *sgn = true; *s = (int8_t)p[0]; return true;
    case DS8B_GGUF_UINT16: *u = (uint16_t)(p[0] | p[1] << 8); return true;
    case DS8B_GGUF_INT16: *sgn = true; *s = (int16_t)(uint16_t)(p[0] | p[1] << 8); return true;
    case DS8B_GGUF_UINT32: *u = ld_u32(p); return true;
    case DS8B_GGUF_INT32: *sgn = true; *s = (int32_t)ld_u32(p); return true;
    case DS8B_GGUF_UINT64: *u = ld_u64(p); return true;
    case DS8B_GGUF_INT64: *sgn = true; *s = (int64_t)ld_u64(p); return true;
    default: return false;
    }
}

int ds8b__gguf_val_i64(const ds8b__gguf_val *v, int64_t *out) {
    bool sgn;
    int64_t s;
    uint64_t u;
    if (!val_int(v, &sgn, &s, &u)) return DS8B_E_FORMAT;
    if (!sgn) {
        if (u > (uint64_t)INT64_MAX) return DS8B_E_FORMAT;
        s = (int64_t)u;
    }
    *out = s;
    return DS8B_OK;
}

int ds8b__gguf_val_u64(const ds8b__gguf_val *v, uint64_t *out) {
    bool sgn;
    int64_t s;
    uint64_t u;
    if (!val_int(v, &sgn, &s, &u)) return DS8B_E_FORMAT;
    if (sgn) {
        if (s < 0) return DS8B_E_FORMAT;
        u = (uint64_t)s;
    }
    *out = u;
    return DS8B_OK;
}

int ds8b__gguf_val_f64(const ds8b__gguf_val *v, double *out) {
    if (v->type == DS8B_GGUF_FLOAT32) {
        uint32_t b = ld_u32(v->p);
        float f;
        memcpy(&f, &b, 4);
        *out = f;
        return DS8B_OK;
    }
    if (v->type == DS8B_GGUF_FLOAT64) {
        uint64_t b = ld_u64(v->p);
        double d;
        memcpy(&d, &b, 8);
        *out = d;
        return DS8B_OK;
    }
    return DS8B_E_FORMAT;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */
typedef struct rd {
    const uint8_t *p;
    size_t size, pos;
} rd;

static bool rd_u32(rd *r, uint32_t *v) {
    if (r->size - r->pos < 4) return false;
    *v = ld_u32(r->p + r->pos);
    r->pos += 4;
    return true;
}
static bool rd_u64(rd *r, uint64_t *v) {
    if (r->size - r->pos < 8) return false;
    *v = ld_u64(r->p + r->pos);
    r->pos += 8;
    return true;
}

/* Reads a key or tensor name into a NUL-terminated heap copy. */
static int rd_name(rd *r, const char *fname, const char *what, uint64_t idx, size_t maxlen,
                   char **out, ds8b__err *e) {
    uint64_t n;
    size_t at = r->pos;
    if (!rd_u64(r, &n))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: truncated at byte %zu in the length of %s #%llu",
                            fname, at, what, (unsigned long long)idx);
    if (n == 0)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: %s #%llu is empty", fname, what,
                            (unsigned long long)idx);
    if (n > r->size - r->pos)
        return ds8b__seterr(e, DS8B_E_FORMAT,
                            "%s: %s #%llu: length %llu runs past the end of the file (%zu bytes left)",
                            fname, what, (unsigned long long)idx, (unsigned long long)n,
                            r->size - r->pos);
    if (n > maxlen)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: %s #%llu is %llu bytes long (at most %zu)",
                            fname, what, (unsigned long long)idx, (unsigned long long)n, maxlen);
    const char *s = (const char *)r->p + r->pos;
    if (memchr(s, 0, (size_t)n))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: %s #%llu holds a NUL byte", fname, what,
                            (unsigned long long)idx);
    *out = ds8b__strndup(DS8B_MEM_OTHER, s, (size_t)n);
    if (!*out)
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate %s #%llu", fname, what,
                            (unsigned long long)idx);
    r->pos += (size_t)n;
    return DS8B_OK;
}

/* Grows *arr (of *cap elements of size sz) to hold at least need. */
static int grow(void **arr, size_t *cap, size_t need, size_t sz, size_t limit) {
    if (need <= *cap) return DS8B_OK;
    size_t nc = *cap ? *cap * 2 : 16;
    if (nc < need) nc = need;
    if (nc > limit) nc = limit;
    size_t bytes;
    if (!ds8b__mul_ok(nc, sz, &bytes)) return DS8B_E_NOMEM;
    void *q = ds8b__realloc(DS8B_MEM_OTHER, *arr, bytes);
    if (!q) return DS8B_E_NOMEM;
    memset((char *)q + *cap * sz, 0, (nc - *cap) * sz);
    *arr = q;
    *cap = nc;
    return DS8B_OK;
}

/* Open-addressing table of (index + 1) keyed by names. */
static int build_hash(int64_t n, const char *(*name_of)(const ds8b__gguf *, int64_t),
                      const ds8b__gguf *g, int64_t **tab, size_t *mask, int64_t *dup_a,
                      int64_t *dup_b) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    int64_t *t = ds8b__calloc(DS8B_MEM_OTHER, cap, sizeof *t);
    if (!t) return DS8B_E_NOMEM;
    *tab = t;
    *mask = cap - 1;
    for (int64_t i = 0; i < n; i++) {
        const char *s = name_of(g, i);
        size_t h = (size_t)hash_str(s) & (cap - 1);
        while (t[h]) {
            if (strcmp(name_of(g, t[h] - 1), s) == 0) {
                *dup_a = t[h] - 1;
                *dup_b = i;
                return DS8B_E_FORMAT;
            }
            h = (h + 1) & (cap - 1);
        }
        t[h] = i + 1;
    }
    return DS8B_OK;
}

static const char *kv_name(const ds8b__gguf *g, int64_t i) { return g->kvs[i].key; }
static const char *t_name(const ds8b__gguf *g, int64_t i) { return g->tensors[i].name; }

static int64_t hash_find(const int64_t *t, size_t mask, const char *s,
                         const char *(*name_of)(const ds8b__gguf *, int64_t), const ds8b__gguf *g) {
    if (!t || !s) return -1;
    size_t h = (size_t)hash_str(s) & mask;
    while (t[h]) {
        if (strcmp(name_of(g, t[h] - 1), s) == 0) return t[h] - 1;
        h = (h + 1) & mask;
    }
    return -1;
}

static int parse_kvs(ds8b__gguf *g, rd *r, uint64_t n_kv, ds8b__err *e) {
    const char *fn = g->name;
    size_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        int rc = grow((void **)&g->kvs, &cap, (size_t)i + 1, sizeof(gguf_kv), (size_t)n_kv);
        if (rc) return ds8b__seterr(e, rc, "%s: cannot allocate metadata table", fn);
        gguf_kv *kv = &g->kvs[i];
        g->n_kv = (int64_t)i + 1;
        rc = rd_name(r, fn, "key", i, DS8B_GGUF_MAX_KEY, &kv->key, e);
        if (rc) return rc;
        uint32_t type;
        size_t at = r->pos;
        if (!rd_u32(r, &type))
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s': truncated at byte %zu in its type",
                                fn, kv->key, at);
        if (type >= DS8B_GGUF__NTYPES)
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' has unknown value type %u", fn,
                                kv->key, type);
        kv->type = (int)type;
        kv->elem_type = -1;
        size_t used;
        rc = ds8b__gguf_check_value((int)type, r->p + r->pos, r->size - r->pos, &used, 0, e);
        if (rc) {
            ds8b__errprefix(e, "%s: key '%s' (%s value at byte %zu)", fn, kv->key,
                            k_type_names[type], r->pos);
            return rc;
        }
        kv->val = r->p + r->pos;
        kv->val_size = used;
        r->pos += used;
        if (type == DS8B_GGUF_ARRAY) {
            kv->elem_type = (int)ld_u32(kv->val);
            kv->count = ld_u64(kv->val + 4);
            kv->elems = kv->val + ARR_HDR_BYTES;
            if (kv->elem_type == DS8B_GGUF_STRING && kv->count > 0) {
                /* count <= bytes/8 was checked, so this is bounded by the file */
                kv->str_off = ds8b__calloc(DS8B_MEM_OTHER, (size_t)kv->count, sizeof(size_t));
                if (!kv->str_off)
                    return ds8b__seterr(e, DS8B_E_NOMEM,
                                        "%s: key '%s': cannot allocate an index of %llu strings", fn,
                                        kv->key, (unsigned long long)kv->count);
                size_t pos = 0;
                for (uint64_t j = 0; j < kv->count; j++) {
                    kv->str_off[j] = pos;
                    pos += 8 + (size_t)ld_u64(kv->elems + pos);
                }
            }
        }
    }
    return DS8B_OK;
}

static int parse_tensor_infos(ds8b__gguf *g, rd *r, uint64_t n_t, ds8b__err *e) {
    const char *fn = g->name;
    size_t cap = 0, cap2 = 0;
    for (uint64_t i = 0; i < n_t; i++) {
        int rc = grow((void **)&g->tensors, &cap, (size_t)i + 1, sizeof(ds8b__tensor), (size_t)n_t);
        if (!rc) rc = grow((void **)&g->t_off, &cap2, (size_t)i + 1, sizeof(uint64_t), (size_t)n_t);
        if (rc) return ds8b__seterr(e, rc, "%s: cannot allocate tensor table", fn);
        ds8b__tensor *t = &g->tensors[i];
        g->n_tensors = (int64_t)i + 1;
        rc = rd_name(r, fn, "tensor name", i, DS8B_GGUF_MAX_NAME, &t->name, e);
        if (rc) return rc;
        uint32_t nd;
        size_t at = r->pos;
        if (!rd_u32(r, &nd))
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor '%s': truncated at byte %zu in n_dims",
                                fn, t->name, at);
        if (nd < 1 || nd > DS8B_MAX_DIMS)
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor '%s' has n_dims %u (1..%d supported)",
                                fn, t->name, nd, DS8B_MAX_DIMS);
        t->n_dims = (int)nd;
        uint64_t nel = 1;
        for (int d = 0; d < DS8B_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v;
            at = r->pos;
            if (!rd_u64(r, &v))
                return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor '%s': truncated at byte %zu in ne[%u]",
                                    fn, t->name, at, d);
            if (v == 0)
                return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor '%s' has ne[%u] = 0", fn, t->name, d);
            if (v > (uint64_t)INT64_MAX || __builtin_mul_overflow(nel, v, &nel) ||
                nel > (uint64_t)INT64_MAX)
                return ds8b__seterr(e, DS8B_E_FORMAT,
                                    "%s: tensor '%s': element count overflows at ne[%u] = %llu", fn,
                                    t->name, d, (unsigned long long)v);
            t->ne[d] = (int64_t)v;
        }
        uint32_t type;
        at = r->pos;
        if (!rd_u32(r, &type))
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor '%s': truncated at byte %zu in its type",
                                fn, t->name, at);
        const ds8b__type_traits *tt = type < DS8B_T__GGUF_MAX ? ds8b__type_info((int)type) : NULL;
        if (!tt)
            return ds8b__seterr(e, type < DS8B_T__GGUF_MAX ? DS8B_E_UNSUPPORTED : DS8B_E_FORMAT,
                                "%s: tensor '%s' has type id %u, which %s", fn, t->name, type,
                                type < DS8B_T__GGUF_MAX ? "this build does not support"
                                                         : "is not a GGUF tensor type");
        t->type = (int)type;
        size_t row, nb;
        if (!ds8b__row_bytes(t->type, t->ne[0], &row))
            return ds8b__seterr(e, DS8B_E_FORMAT,
                                "%s: tensor '%s': ne[0] = %lld is not a multiple of the %s block size %d",
                                fn, t->name, (long long)t->ne[0], tt->name, tt->block_elems);
        nb = row;
        for (int d = 1; d < DS8B_MAX_DIMS; d++)
            if (!ds8b__mul_ok(nb, (size_t)t->ne[d], &nb))
                return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor '%s': byte size overflows", fn,
                                    t->name);
        t->nbytes = nb;
        at = r->pos;
        if (!rd_u64(r, &g->t_off[i]))
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor '%s': truncated at byte %zu in its offset",
                                fn, t->name, at);
    }
    return DS8B_OK;
}

typedef struct off_idx {
    uint64_t off;
    int64_t i;
} off_idx;

static int cmp_off(const void *a, const void *b) {
    const off_idx *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int check_tensor_data(ds8b__gguf *g, ds8b__err *e) {
    const char *fn = g->name;
    int64_t n = g->n_tensors;
    for (int64_t i = 0; i < n; i++) {
        ds8b__tensor *t = &g->tensors[i];
        uint64_t off = g->t_off[i];
        if (off % g->alignment)
            return ds8b__seterr(e, DS8B_E_FORMAT,
                                "%s: tensor '%s': data offset %llu is not a multiple of the alignment %u",
                                fn, t->name, (unsigned long long)off, g->alignment);
        size_t start, end;
        if (off > SIZE_MAX || !ds8b__add_ok((size_t)g->data_off, (size_t)off, &start) ||
            !ds8b__add_ok(start, t->nbytes, &end) || end > g->size)
            return ds8b__seterr(e, DS8B_E_FORMAT,
                                "%s: tensor '%s': data (offset %llu, %zu bytes) runs past the end of "
                                "the file (%zu bytes, data section at %llu)",
                                fn, t->name, (unsigned long long)off, t->nbytes, g->size,
                                (unsigned long long)g->data_off);
        t->data = g->base + start;
        t->owned = NULL;
    }
    if (n < 2) return DS8B_OK;
    off_idx *ord = ds8b__calloc(DS8B_MEM_OTHER, (size_t)n, sizeof *ord);
    if (!ord) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate tensor order", fn);
    for (int64_t i = 0; i < n; i++) {
        ord[i].off = g->t_off[i];
        ord[i].i = i;
    }
    qsort(ord, (size_t)n, sizeof *ord, cmp_off);
    int rc = DS8B_OK;
    for (int64_t k = 1; k < n; k++) {
        int64_t a = ord[k - 1].i, b = ord[k].i;
        if (g->t_off[a] + g->tensors[a].nbytes > g->t_off[b]) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT,
                              "%s: tensors '%s' (offset %llu, %zu bytes) and '%s' (offset %llu) overlap",
                              fn, g->tensors[a].name, (unsigned long long)g->t_off[a],
                              g->tensors[a].nbytes, g->tensors[b].name,
                              (unsigned long long)g->t_off[b]);
            break;
        }
    }
    ds8b__free(ord);
    return rc;
}

/* Decides what the CRC key, if any, is worth: bound to this tensor table
 * (verified), stale (computed for another table: skipped, logged), legacy
 * (no digest: verified, a mismatch only logged), or malformed. */
static void classify_crc(ds8b__gguf *g) {
    g->crc_kv = -1;
    g->crc_bad = false;
    g->crc_state = DS8B_GGUF_CRC_NONE;
    g->crc_why[0] = 0;
    int64_t ci = ds8b__gguf_find_key(g, DS8B_GGUF_CRC_KEY);
    if (ci < 0) return;
    const gguf_kv *kv = &g->kvs[ci];
    bool shape_ok = kv->type == DS8B_GGUF_ARRAY && kv->elem_type == DS8B_GGUF_UINT32;
    bool count_ok = shape_ok && kv->count == (uint64_t)g->n_tensors;
    int64_t di = ds8b__gguf_find_key(g, DS8B_GGUF_TDIGEST_KEY);
    if (di < 0) {
        /* written before the digest existed */
        if (count_ok) {
            g->crc_kv = ci;
            g->crc_state = DS8B_GGUF_CRC_LEGACY;
        } else if (shape_ok) {
            g->crc_state = DS8B_GGUF_CRC_STALE;
            snprintf(g->crc_why, sizeof g->crc_why, "the key has %llu entries for %lld tensors",
                     (unsigned long long)kv->count, (long long)g->n_tensors);
        } else {
            g->crc_bad = true;
            g->crc_state = DS8B_GGUF_CRC_BAD;
        }
        return;
    }
    const gguf_kv *dk = &g->kvs[di];
    ds8b__gguf_tdigest d;
    ds8b__gguf_tdigest_init(&d, (uint64_t)g->n_tensors, g->alignment);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const ds8b__tensor *t = &g->tensors[i];
        ds8b__gguf_tdigest_add(&d, t->name, t->type, t->n_dims, t->ne, g->t_off[i]);
    }
    char want[DS8B_GGUF_TDIGEST_LEN + 1];
    ds8b__gguf_tdigest_str(&d, want);
    /* a string value is its u64 length, then the bytes */
    bool match = dk->type == DS8B_GGUF_STRING && dk->val_size == 8 + DS8B_GGUF_TDIGEST_LEN &&
                 ld_u64(dk->val) == DS8B_GGUF_TDIGEST_LEN && memcmp(dk->val + 8, want, DS8B_GGUF_TDIGEST_LEN) == 0;
    if (!match) {
        g->crc_state = DS8B_GGUF_CRC_STALE;
        snprintf(g->crc_why, sizeof g->crc_why, "they were computed for another tensor table (key '%s' is not %s)",
                 DS8B_GGUF_TDIGEST_KEY, want);
        return;
    }
    if (count_ok) {
        g->crc_kv = ci;
        g->crc_state = DS8B_GGUF_CRC_BOUND;
    } else {
        g->crc_bad = true;
        g->crc_state = DS8B_GGUF_CRC_BAD;
    }
}

static int parse(ds8b__gguf *g, ds8b__err *e) {
    const char *fn = g->name;
    rd r = {g->base, g->size, 0};
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: not a GGUF file (%s)", fn,
                            g->size < 4 ? "shorter than the magic" : "bad magic");
    r.pos = 4;
    uint32_t ver;
    if (!rd_u32(&r, &ver))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: truncated in the version field", fn);
    uint32_t sw = __builtin_bswap32(ver);
    if (ver == 1)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: GGUF version 1 is not supported (2 and 3 are)", fn);
    if (sw >= 1 && sw <= 3)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: big-endian GGUF (version %u) is not supported",
                            fn, sw);
    if (ver == 0)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: GGUF version 0 is invalid", fn);
    if (ver > 3)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: GGUF version %u is not supported (2 and 3 are)",
                            fn, ver);
    g->version = ver;
    uint64_t n_t, n_kv;
    if (!rd_u64(&r, &n_t))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: truncated in the tensor count", fn);
    if (!rd_u64(&r, &n_kv))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: truncated in the metadata count", fn);
    size_t left = g->size - r.pos;
    if (n_kv > left / MIN_KV_BYTES)
        return ds8b__seterr(e, DS8B_E_FORMAT,
                            "%s: metadata count %llu cannot fit in the %zu bytes that follow", fn,
                            (unsigned long long)n_kv, left);
    if (n_t > (left - (size_t)n_kv * MIN_KV_BYTES) / MIN_TINFO_BYTES)
        return ds8b__seterr(e, DS8B_E_FORMAT,
                            "%s: tensor count %llu cannot fit in the %zu bytes that follow", fn,
                            (unsigned long long)n_t, left);
    if (n_kv > DS8B_GGUF_MAX_KVS)
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: %llu metadata entries (at most %u)", fn,
                            (unsigned long long)n_kv, DS8B_GGUF_MAX_KVS);
    if (n_t > DS8B_GGUF_MAX_TENSORS)
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: %llu tensors (at most %u)", fn,
                            (unsigned long long)n_t, DS8B_GGUF_MAX_TENSORS);

    int rc = parse_kvs(g, &r, n_kv, e);
    if (rc) return rc;
    int64_t da = -1, db = -1;
    rc = build_hash(g->n_kv, kv_name, g, &g->kv_hash, &g->kv_mask, &da, &db);
    if (rc == DS8B_E_FORMAT)
        return ds8b__seterr(e, rc, "%s: key '%s' appears twice (#%lld and #%lld)", fn,
                            g->kvs[db].key, (long long)da, (long long)db);
    if (rc) return ds8b__seterr(e, rc, "%s: cannot allocate the key table", fn);

    g->alignment = DS8B_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = ds8b__gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        ds8b__gguf_val v;
        ds8b__gguf_kv_val(g, ai, &v);
        uint64_t a;
        if (ds8b__gguf_val_u64(&v, &a))
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key 'general.alignment' is %s, not an unsigned integer",
                                fn, k_type_names[v.type]);
        if (a == 0 || (a & (a - 1)) || a > DS8B_GGUF_MAX_ALIGNMENT)
            return ds8b__seterr(e, DS8B_E_FORMAT,
                                "%s: key 'general.alignment' is %llu (must be a power of two <= %u)",
                                fn, (unsigned long long)a, DS8B_GGUF_MAX_ALIGNMENT);
        g->alignment = (uint32_t)a;
    }

    rc = parse_tensor_infos(g, &r, n_t, e);
    if (rc) return rc;
    size_t pad = (g->alignment - r.pos % g->alignment) % g->alignment;
    size_t doff;
    if (!ds8b__add_ok(r.pos, pad, &doff))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: data section offset overflows", fn);
    g->data_off = doff;
    if (g->n_tensors > 0 && doff > g->size)
        return ds8b__seterr(e, DS8B_E_FORMAT,
                            "%s: truncated: the tensor data section would start at byte %zu of %zu",
                            fn, doff, g->size);
    rc = build_hash(g->n_tensors, t_name, g, &g->t_hash, &g->t_mask, &da, &db);
    if (rc == DS8B_E_FORMAT)
        return ds8b__seterr(e, rc, "%s: tensor name '%s' appears twice (#%lld and #%lld)", fn,
                            g->tensors[db].name, (long long)da, (long long)db);
    if (rc) return ds8b__seterr(e, rc, "%s: cannot allocate the tensor table", fn);
    rc = check_tensor_data(g, e);
    if (rc) return rc;

    classify_crc(g);
    return DS8B_OK;
}

static int parse_common(ds8b__gguf *g, ds8b__gguf **out, ds8b__err *e) {
    int rc = parse(g, e);
    if (rc) {
        ds8b__gguf_close(g);
        return rc;
    }
    *out = g;
    return DS8B_OK;
}

static ds8b__gguf *new_handle(const char *name, ds8b__err *e) {
    ds8b__gguf *g = ds8b__calloc(DS8B_MEM_OTHER, 1, sizeof *g);
    if (!g) {
        ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate a GGUF handle", name);
        return NULL;
    }
    g->name = ds8b__strdup(DS8B_MEM_OTHER, name);
    if (!g->name) {
        ds8b__free(g);
        ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate a GGUF handle", name);
        return NULL;
    }
    g->crc_kv = -1;
    return g;
}

int ds8b__gguf_parse_mem(const void *data, size_t size, const char *name, ds8b__gguf **out,
                         ds8b__err *e) {
    if (!out) return ds8b__seterr(e, DS8B_E_INVALID, "gguf: NULL out");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && size) return ds8b__seterr(e, DS8B_E_INVALID, "%s: NULL buffer", name);
    ds8b__gguf *g = new_handle(name, e);
    if (!g) return DS8B_E_NOMEM;
    g->base = data ? data : (const uint8_t *)"";
    g->size = size;
    return parse_common(g, out, e);
}

int ds8b__gguf_open(const char *path, ds8b__gguf **out, ds8b__err *e) {
    if (!out || !path) return ds8b__seterr(e, DS8B_E_INVALID, "gguf: NULL path or out");
    *out = NULL;
    ds8b__gguf *g = new_handle(path, e);
    if (!g) return DS8B_E_NOMEM;
    int rc = ds8b__mmap_open(path, &g->map, e);
    if (rc) {
        ds8b__gguf_close(g);
        return rc;
    }
    g->mapped = true;
    g->base = g->map.addr;
    g->size = g->map.size;
    return parse_common(g, out, e);
}

void ds8b__gguf_close(ds8b__gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        ds8b__free(g->kvs[i].key);
        ds8b__free(g->kvs[i].str_off);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) ds8b__free(g->tensors[i].name);
    ds8b__free(g->kvs);
    ds8b__free(g->tensors);
    ds8b__free(g->t_off);
    ds8b__free(g->kv_hash);
    ds8b__free(g->t_hash);
    if (g->mapped) ds8b__mmap_close(&g->map);
    ds8b__free(g->name);
    ds8b__free(g);
}

/* ------------------------------------------------------------------ */
/* Accessors                                                           */
/* ------------------------------------------------------------------ */
uint32_t ds8b__gguf_version(const ds8b__gguf *g) { return g ? g->version : 0; }
const char *ds8b__gguf_name(const ds8b__gguf *g) { return g ? g->name : ""; }
uint32_t ds8b__gguf_alignment(const ds8b__gguf *g) { return g ? g->alignment : 0; }
const void *ds8b__gguf_base(const ds8b__gguf *g, size_t *size) {
    if (size) *size = g ? g->size : 0;
    return g ? g->base : NULL;
}
uint64_t ds8b__gguf_data_offset(const ds8b__gguf *g) { return g ? g->data_off : 0; }

int64_t ds8b__gguf_n_kv(const ds8b__gguf *g) { return g ? g->n_kv : 0; }
int64_t ds8b__gguf_find_key(const ds8b__gguf *g, const char *key) {
    return g ? hash_find(g->kv_hash, g->kv_mask, key, kv_name, g) : -1;
}
const char *ds8b__gguf_kv_key(const ds8b__gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_kv ? g->kvs[i].key : NULL;
}
int ds8b__gguf_kv_type(const ds8b__gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_kv ? g->kvs[i].type : -1;
}
int ds8b__gguf_kv_val(const ds8b__gguf *g, int64_t i, ds8b__gguf_val *v) {
    if (!g || i < 0 || i >= g->n_kv || !v) return DS8B_E_INVALID;
    make_val(g->kvs[i].type, g->kvs[i].val, g->kvs[i].val_size, v);
    return DS8B_OK;
}

static int lookup(const ds8b__gguf *g, const char *key, ds8b__gguf_val *v, ds8b__err *e) {
    int64_t i = ds8b__gguf_find_key(g, key);
    if (i < 0)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' is missing", ds8b__gguf_name(g),
                            key ? key : "(null)");
    ds8b__gguf_kv_val(g, i, v);
    return DS8B_OK;
}

int ds8b__gguf_get_int_range(const ds8b__gguf *g, const char *key, int64_t lo, int64_t hi,
                             int64_t *v, ds8b__err *e) {
    ds8b__gguf_val x;
    int rc = lookup(g, key, &x, e);
    if (rc) return rc;
    bool sgn;
    int64_t s;
    uint64_t u;
    if (!val_int(&x, &sgn, &s, &u))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' is %s, not an integer", g->name, key,
                            k_type_names[x.type]);
    bool ok = sgn ? (s >= lo && s <= hi) : (u <= (uint64_t)INT64_MAX && (int64_t)u >= lo && (int64_t)u <= hi);
    if (!ok) {
        if (sgn)
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' (%s) is %lld, outside %lld..%lld",
                                g->name, key, k_type_names[x.type], (long long)s, (long long)lo,
                                (long long)hi);
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' (%s) is %llu, outside %lld..%lld",
                            g->name, key, k_type_names[x.type], (unsigned long long)u, (long long)lo,
                            (long long)hi);
    }
    *v = sgn ? s : (int64_t)u;
    return DS8B_OK;
}

int ds8b__gguf_get_u32(const ds8b__gguf *g, const char *key, uint32_t *v, ds8b__err *e) {
    int64_t x;
    int rc = ds8b__gguf_get_int_range(g, key, 0, UINT32_MAX, &x, e);
    if (!rc) *v = (uint32_t)x;
    return rc;
}
int ds8b__gguf_get_i32(const ds8b__gguf *g, const char *key, int32_t *v, ds8b__err *e) {
    int64_t x;
    int rc = ds8b__gguf_get_int_range(g, key, INT32_MIN, INT32_MAX, &x, e);
    if (!rc) *v = (int32_t)x;
    return rc;
}
int ds8b__gguf_get_i64(const ds8b__gguf *g, const char *key, int64_t *v, ds8b__err *e) {
    return ds8b__gguf_get_int_range(g, key, INT64_MIN, INT64_MAX, v, e);
}
int ds8b__gguf_get_u64(const ds8b__gguf *g, const char *key, uint64_t *v, ds8b__err *e) {
    ds8b__gguf_val x;
    int rc = lookup(g, key, &x, e);
    if (rc) return rc;
    if (ds8b__gguf_val_u64(&x, v)) {
        bool sgn;
        int64_t s;
        uint64_t u;
        if (val_int(&x, &sgn, &s, &u))
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' (%s) is %lld, negative", g->name,
                                key, k_type_names[x.type], (long long)s);
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' is %s, not an integer", g->name, key,
                            k_type_names[x.type]);
    }
    return DS8B_OK;
}
int ds8b__gguf_get_f64(const ds8b__gguf *g, const char *key, double *v, ds8b__err *e) {
    ds8b__gguf_val x;
    int rc = lookup(g, key, &x, e);
    if (rc) return rc;
    if (ds8b__gguf_val_f64(&x, v))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' is %s, not a float", g->name, key,
                            k_type_names[x.type]);
    return DS8B_OK;
}
int ds8b__gguf_get_f32(const ds8b__gguf *g, const char *key, float *v, ds8b__err *e) {
    double d;
    int rc = ds8b__gguf_get_f64(g, key, &d, e);
    if (rc) return rc;
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' is %g, beyond float range", g->name,
                            key, d);
    *v = (float)d;
    return DS8B_OK;
}
int ds8b__gguf_get_bool(const ds8b__gguf *g, const char *key, bool *v, ds8b__err *e) {
    ds8b__gguf_val x;
    int rc = lookup(g, key, &x, e);
    if (rc) return rc;
    if (x.type != DS8B_GGUF_BOOL)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' is %s, not a bool", g->name, key,
                            k_type_names[x.type]);
    *v = x.p[0] != 0;
    return DS8B_OK;
}
int ds8b__gguf_get_str(const ds8b__gguf *g, const char *key, const char **s, size_t *len,
                       ds8b__err *e) {
    ds8b__gguf_val x;
    int rc = lookup(g, key, &x, e);
    if (rc) return rc;
    if (x.type != DS8B_GGUF_STRING)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' is %s, not a string", g->name, key,
                            k_type_names[x.type]);
    *s = (const char *)x.p;
    *len = (size_t)x.len;
    return DS8B_OK;
}
int ds8b__gguf_get_arr(const ds8b__gguf *g, const char *key, int *elem_type, uint64_t *count,
                       const void **raw, ds8b__err *e) {
    ds8b__gguf_val x;
    int rc = lookup(g, key, &x, e);
    if (rc) return rc;
    if (x.type != DS8B_GGUF_ARRAY)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' is %s, not an array", g->name, key,
                            k_type_names[x.type]);
    if (elem_type) *elem_type = x.elem_type;
    if (count) *count = x.len;
    if (raw) *raw = x.p;
    return DS8B_OK;
}

static int arr_check(const ds8b__gguf *g, int64_t kv, uint64_t idx, ds8b__err *e) {
    if (!g || kv < 0 || kv >= g->n_kv)
        return ds8b__seterr(e, DS8B_E_INVALID, "%s: no metadata entry #%lld", ds8b__gguf_name(g),
                            (long long)kv);
    const gguf_kv *k = &g->kvs[kv];
    if (k->type != DS8B_GGUF_ARRAY)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' is %s, not an array", g->name, k->key,
                            k_type_names[k->type]);
    if (idx >= k->count)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s': index %llu out of %llu elements",
                            g->name, k->key, (unsigned long long)idx, (unsigned long long)k->count);
    return DS8B_OK;
}

int ds8b__gguf_arr_str(const ds8b__gguf *g, int64_t kv, uint64_t idx, const char **s,
                       size_t *len, ds8b__err *e) {
    int rc = arr_check(g, kv, idx, e);
    if (rc) return rc;
    const gguf_kv *k = &g->kvs[kv];
    if (k->elem_type != DS8B_GGUF_STRING)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s' is an array of %s, not of strings",
                            g->name, k->key, ds8b__gguf_type_name(k->elem_type));
    const uint8_t *p = k->elems + k->str_off[idx];
    *len = (size_t)ld_u64(p);
    *s = (const char *)p + 8;
    return DS8B_OK;
}

int ds8b__gguf_arr_i64(const ds8b__gguf *g, int64_t kv, uint64_t idx, int64_t *v, ds8b__err *e) {
    int rc = arr_check(g, kv, idx, e);
    if (rc) return rc;
    const gguf_kv *k = &g->kvs[kv];
    size_t es = ds8b__gguf_type_size(k->elem_type);
    ds8b__gguf_val x;
    if (es) {
        make_val(k->elem_type, k->elems + (size_t)idx * es, es, &x);
        if (ds8b__gguf_val_i64(&x, v) == DS8B_OK) return DS8B_OK;
    }
    return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s': element %llu (%s) is not an int64",
                        g->name, k->key, (unsigned long long)idx, ds8b__gguf_type_name(k->elem_type));
}

int ds8b__gguf_arr_f32(const ds8b__gguf *g, int64_t kv, uint64_t idx, float *v, ds8b__err *e) {
    int rc = arr_check(g, kv, idx, e);
    if (rc) return rc;
    const gguf_kv *k = &g->kvs[kv];
    size_t es = ds8b__gguf_type_size(k->elem_type);
    ds8b__gguf_val x;
    double d;
    if (es) {
        make_val(k->elem_type, k->elems + (size_t)idx * es, es, &x);
        if (ds8b__gguf_val_f64(&x, &d) == DS8B_OK) {
            *v = (float)d;
            return DS8B_OK;
        }
    }
    return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '%s': element %llu (%s) is not a float",
                        g->name, k->key, (unsigned long long)idx, ds8b__gguf_type_name(k->elem_type));
}

int64_t ds8b__gguf_n_tensors(const ds8b__gguf *g) { return g ? g->n_tensors : 0; }
const ds8b__tensor *ds8b__gguf_tensor(const ds8b__gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}
int64_t ds8b__gguf_find_tensor_index(const ds8b__gguf *g, const char *name) {
    return g ? hash_find(g->t_hash, g->t_mask, name, t_name, g) : -1;
}
const ds8b__tensor *ds8b__gguf_find_tensor(const ds8b__gguf *g, const char *name) {
    return ds8b__gguf_tensor(g, ds8b__gguf_find_tensor_index(g, name));
}
uint64_t ds8b__gguf_tensor_file_offset(const ds8b__gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_tensors ? g->data_off + g->t_off[i] : 0;
}

bool ds8b__gguf_has_crc(const ds8b__gguf *g) { return g && g->crc_kv >= 0; }
int ds8b__gguf_crc_state(const ds8b__gguf *g) { return g ? g->crc_state : DS8B_GGUF_CRC_NONE; }

static int crc_bad_err(const ds8b__gguf *g, ds8b__err *e) {
    return ds8b__seterr(e, DS8B_E_FORMAT, "%s: key '" DS8B_GGUF_CRC_KEY "' is not an array of %lld uint32",
                        g->name, (long long)g->n_tensors);
}

/* 0 if tensor i's data matches its CRC (or there is none to check), else
 * the CRC found and the one stored. */
static bool crc_matches(const ds8b__gguf *g, int64_t i, uint32_t *got, uint32_t *want) {
    const ds8b__tensor *t = &g->tensors[i];
    *want = ld_u32(g->kvs[g->crc_kv].elems + (size_t)i * 4);
    *got = ds8b__gguf_crc32(0, t->data, t->nbytes);
    return *want == *got;
}

int ds8b__gguf_verify_tensor_crc(const ds8b__gguf *g, int64_t i, ds8b__err *e) {
    if (!g || i < 0 || i >= g->n_tensors)
        return ds8b__seterr(e, DS8B_E_INVALID, "%s: no tensor #%lld", ds8b__gguf_name(g),
                            (long long)i);
    if (g->crc_bad) return crc_bad_err(g, e);
    if (g->crc_state != DS8B_GGUF_CRC_BOUND && g->crc_state != DS8B_GGUF_CRC_LEGACY) return DS8B_OK;
    uint32_t got, want;
    if (!crc_matches(g, i, &got, &want))
        return ds8b__seterr(e, DS8B_E_CHECKSUM,
                            "%s: tensor '%s': CRC-32 of its data is %08x, the file says %08x",
                            g->name, g->tensors[i].name, got, want);
    return DS8B_OK;
}

int ds8b__gguf_verify_crc_log(const ds8b__gguf *g, const ds8b__log *log, ds8b__err *e) {
    if (!g) return ds8b__seterr(e, DS8B_E_INVALID, "gguf: NULL handle");
    switch (g->crc_state) {
    case DS8B_GGUF_CRC_BAD: return crc_bad_err(g, e);
    case DS8B_GGUF_CRC_STALE:
        ds8b__logf(log, DS8B_LOG_WARN,
                   "%s: the tensor checksums (%s) are stale: %s; the file was probably rewritten by another "
                   "tool that copied our metadata. They are not verified.",
                   g->name, DS8B_GGUF_CRC_KEY, g->crc_why);
        return DS8B_OK;
    case DS8B_GGUF_CRC_BOUND:
        for (int64_t i = 0; i < g->n_tensors; i++) {
            int rc = ds8b__gguf_verify_tensor_crc(g, i, e);
            if (rc) return rc;
        }
        return DS8B_OK;
    case DS8B_GGUF_CRC_LEGACY: {
        /* No digest: written before checksums were bound to their table.
         * A mismatch cannot tell a corrupt file from one whose tensors
         * another tool rewrote, so it is logged, not refused. */
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < g->n_tensors; i++) {
            uint32_t got, want;
            if (!crc_matches(g, i, &got, &want)) {
                if (first < 0) first = i;
                bad++;
            }
        }
        if (bad)
            ds8b__logf(log, DS8B_LOG_WARN,
                       "%s: %lld of %lld tensors (first '%s') do not match the checksums in %s, which carry no "
                       "%s (written by an older libds8b): either another tool rewrote the tensors or the data is "
                       "corrupt. Loading anyway.",
                       g->name, (long long)bad, (long long)g->n_tensors, g->tensors[first].name, DS8B_GGUF_CRC_KEY,
                       DS8B_GGUF_TDIGEST_KEY);
        return DS8B_OK;
    }
    default: return DS8B_OK;
    }
}

int ds8b__gguf_verify_crc(const ds8b__gguf *g, ds8b__err *e) { return ds8b__gguf_verify_crc_log(g, NULL, e); }
