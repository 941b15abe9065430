/* safetensors.c -- safetensors files and sharded checkpoints (see safetensors.h).
 *
 * File layout: 8-byte little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"},
 * then the data; offsets are relative to the start of the data.
 *
 * The JSON header is copied into a NUL-terminated buffer before parsing so
 * the JSON parser can never read past the bytes that belong to it.
 */
#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#define ST_MAX_TENSORS (1 << 20)   /* per set; an 8B model has ~400 */
#define ST_MAX_SHARDS 4096
#define ST_MAX_INDEX_BYTES (64u << 20)
#define ST_MAX_NAME 4096

/* ================================================================== */
/* dtypes                                                              */
/* ================================================================== */
typedef struct st_dtype {
    const char *name;
    int type;   /* ds8b__type, or DS8B__ST_T_OTHER */
    int size;   /* bytes per element */
} st_dtype;

static const st_dtype k_dtypes[] = {
    {"BF16", DS8B_T_BF16, 2},       {"F16", DS8B_T_F16, 2},
    {"F32", DS8B_T_F32, 4},         {"F64", DS8B__ST_T_OTHER, 8},
    {"I64", DS8B__ST_T_OTHER, 8},   {"I32", DS8B__ST_T_OTHER, 4},
    {"I16", DS8B__ST_T_OTHER, 2},   {"I8", DS8B__ST_T_OTHER, 1},
    {"U64", DS8B__ST_T_OTHER, 8},   {"U32", DS8B__ST_T_OTHER, 4},
    {"U16", DS8B__ST_T_OTHER, 2},   {"U8", DS8B__ST_T_OTHER, 1},
    {"BOOL", DS8B__ST_T_OTHER, 1},  {"F8_E4M3", DS8B__ST_T_OTHER, 1},
    {"F8_E5M2", DS8B__ST_T_OTHER, 1}, {"F8_E8M0", DS8B__ST_T_OTHER, 1},
};
#define N_DTYPES ((int)(sizeof k_dtypes / sizeof k_dtypes[0]))

static int dtype_lookup(const char *s) {
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(s, k_dtypes[i].name) == 0) return i;
    return -1;
}

/* ================================================================== */
/* A string -> int64 hash map (open addressing, keys owned elsewhere)   */
/* ================================================================== */
typedef struct st_map {
    const char **keys;
    int64_t *vals;
    size_t cap;   /* power of two, or 0 */
    size_t n;
} st_map;

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void map_free(st_map *m) {
    ds8b__free(m->keys);
    ds8b__free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Slot of key, or of the empty slot where it would go. cap must be > n. */
static size_t map_slot(const st_map *m, const char *key) {
    size_t mask = m->cap - 1, i = (size_t)str_hash(key) & mask;
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & mask;
    return i;
}

static int64_t map_get(const st_map *m, const char *key) {
    if (!m->cap) return -1;
    size_t i = map_slot(m, key);
    return m->keys[i] ? m->vals[i] : -1;
}

static bool map_grow(st_map *m, size_t cap) {
    const char **k = ds8b__calloc(DS8B_MEM_WEIGHTS, cap, sizeof *k);
    int64_t *v = ds8b__calloc(DS8B_MEM_WEIGHTS, cap, sizeof *v);
    if (!k || !v) {
        ds8b__free(k);
        ds8b__free(v);
        return false;
    }
    st_map nm = {k, v, cap, 0};
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = map_slot(&nm, m->keys[i]);
        nm.keys[j] = m->keys[i];
        nm.vals[j] = m->vals[i];
        nm.n++;
    }
    map_free(m);
    *m = nm;
    return true;
}

/* Inserts key -> val. Returns 1 if inserted, 0 if the key was already there
 * (*old gets its value), -1 when out of memory. */
static int map_put(st_map *m, const char *key, int64_t val, int64_t *old) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        if (cap < m->cap || !map_grow(m, cap)) return -1;
    }
    size_t i = map_slot(m, key);
    if (m->keys[i]) {
        if (old) *old = m->vals[i];
        return 0;
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return 1;
}

/* ================================================================== */
/* The set                                                             */
/* ================================================================== */
typedef struct st_file {
    char *path;        /* as named in messages */
    ds8b__mmap map;    /* addr NULL for ds8b__st_parse_mem */
} st_file;

struct ds8b__st {
    st_file *files;
    int n_files;
    ds8b__tensor *t;
    uint8_t *dtype;     /* index into k_dtypes, per tensor */
    int32_t *file_of;   /* index into files, per tensor */
    int64_t n, cap;
    st_map by_name;
    int64_t mapped;
};

void ds8b__st_close(ds8b__st *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) ds8b__free(s->t[i].name);
    for (int i = 0; i < s->n_files; i++) {
        ds8b__mmap_close(&s->files[i].map);
        ds8b__free(s->files[i].path);
    }
    ds8b__free(s->files);
    ds8b__free(s->t);
    ds8b__free(s->dtype);
    ds8b__free(s->file_of);
    map_free(&s->by_name);
    ds8b__free(s);
}

static int st_new(ds8b__st **out, ds8b__err *e) {
    ds8b__st *s = ds8b__calloc(DS8B_MEM_WEIGHTS, 1, sizeof *s);
    if (!s) return ds8b__seterr(e, DS8B_E_NOMEM, "safetensors: cannot allocate the tensor set");
    *out = s;
    return DS8B_OK;
}

/* Adds a file slot; the path is copied. Returns its index or -1. */
static int add_file(ds8b__st *s, const char *path) {
    st_file *f = ds8b__realloc(DS8B_MEM_WEIGHTS, s->files, (size_t)(s->n_files + 1) * sizeof *f);
    if (!f) return -1;
    s->files = f;
    memset(&f[s->n_files], 0, sizeof *f);
    f[s->n_files].path = ds8b__strdup(DS8B_MEM_WEIGHTS, path);
    if (!f[s->n_files].path) return -1;
    return s->n_files++;
}

static bool reserve_tensors(ds8b__st *s, int64_t need) {
    if (need <= s->cap) return true;
    int64_t cap = s->cap ? s->cap : 16;
    while (cap < need) cap *= 2;
    ds8b__tensor *t = ds8b__realloc(DS8B_MEM_WEIGHTS, s->t, (size_t)cap * sizeof *t);
    if (!t) return false;
    s->t = t;
    uint8_t *d = ds8b__realloc(DS8B_MEM_WEIGHTS, s->dtype, (size_t)cap);
    if (!d) return false;
    s->dtype = d;
    int32_t *fo = ds8b__realloc(DS8B_MEM_WEIGHTS, s->file_of, (size_t)cap * sizeof *fo);
    if (!fo) return false;
    s->file_of = fo;
    s->cap = cap;
    return true;
}

/* A non-negative integer stored in a JSON number (exact up to 2^53). */
static bool json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0) || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

typedef struct st_span {
    uint64_t begin, end;
    int64_t idx;
} st_span;

static int span_cmp(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Parses one tensor entry of file fi and appends it. */
static int parse_entry(ds8b__st *s, int fi, const cJSON *ent, const uint8_t *data,
                       uint64_t data_size, st_span *span, ds8b__err *e) {
    const char *fname = s->files[fi].path;
    const char *name = ent->string;
    if (strlen(name) > ST_MAX_NAME)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: a tensor name is longer than %d bytes", fname,
                            ST_MAX_NAME);
    if (!cJSON_IsObject(ent))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s: entry is not a JSON object", fname, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(ent, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(ent, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(ent, "data_offsets");
    if (!cJSON_IsString(jd))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s: \"dtype\" is missing or not a string",
                            fname, name);
    int di = dtype_lookup(jd->valuestring);
    if (di < 0)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s: unknown dtype \"%.64s\"", fname, name,
                            jd->valuestring);
    const st_dtype *dt = &k_dtypes[di];
    if (!cJSON_IsArray(js))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s: \"shape\" is missing or not an array",
                            fname, name);
    int nd = cJSON_GetArraySize(js);
    if (nd > DS8B_MAX_DIMS)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: tensor %s has %d dimensions, at most %d supported",
                            fname, name, nd, DS8B_MAX_DIMS);
    int64_t ne[DS8B_MAX_DIMS] = {1, 1, 1, 1};
    size_t nel = 1;
    int k = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, js) {
        uint64_t v;
        if (!json_u64(d, &v))
            return ds8b__seterr(e, DS8B_E_FORMAT,
                                "%s: tensor %s: shape dimension %d is not a non-negative integer", fname,
                                name, k);
        ne[nd - 1 - k] = (int64_t)v;
        if (!ds8b__mul_ok(nel, (size_t)v, &nel))
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s: element count overflows", fname, name);
        k++;
    }
    size_t nbytes;
    if (!ds8b__mul_ok(nel, (size_t)dt->size, &nbytes))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s: byte size overflows", fname, name);
    uint64_t begin, end;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_u64(cJSON_GetArrayItem(jo, 0), &begin) ||
        !json_u64(cJSON_GetArrayItem(jo, 1), &end))
        return ds8b__seterr(e, DS8B_E_FORMAT,
                            "%s: tensor %s: \"data_offsets\" is not [begin, end] of non-negative integers",
                            fname, name);
    if (begin > end || end > data_size)
        return ds8b__seterr(e, DS8B_E_FORMAT,
                            "%s: tensor %s: data_offsets [%llu, %llu] outside the %llu data bytes", fname,
                            name, (unsigned long long)begin, (unsigned long long)end,
                            (unsigned long long)data_size);
    if (end - begin != (uint64_t)nbytes)
        return ds8b__seterr(e, DS8B_E_FORMAT,
                            "%s: tensor %s: shape and dtype %s make %zu bytes, data_offsets give %llu",
                            fname, name, dt->name, nbytes, (unsigned long long)(end - begin));
    const uint8_t *p = data + begin;
    if (dt->type != DS8B__ST_T_OTHER && ((uintptr_t)p % (uintptr_t)dt->size) != 0)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED,
                            "%s: tensor %s: data is not aligned to its %d-byte elements", fname, name,
                            dt->size);
    if (s->n >= ST_MAX_TENSORS)
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: more than %d tensors", fname, ST_MAX_TENSORS);
    if (!reserve_tensors(s, s->n + 1))
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot grow the tensor table", fname);
    ds8b__tensor *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    t->name = ds8b__strdup(DS8B_MEM_WEIGHTS, name);
    if (!t->name) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: tensor %s: name", fname, name);
    t->type = dt->type;
    t->n_dims = nd;
    memcpy(t->ne, ne, sizeof ne);
    t->data = p;
    t->nbytes = nbytes;
    s->dtype[s->n] = (uint8_t)di;
    s->file_of[s->n] = fi;
    int64_t old = -1;
    int r = map_put(&s->by_name, t->name, s->n, &old);
    if (r < 0) {
        ds8b__free(t->name);
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: tensor name table", fname);
    }
    if (r == 0) {
        const char *other = s->files[s->file_of[old]].path;
        ds8b__free(t->name);
        return ds8b__seterr(e, DS8B_E_FORMAT, "tensor %s appears twice: in %s and in %s", name, other,
                            fname);
    }
    span->begin = begin;
    span->end = end;
    span->idx = s->n;
    s->n++;
    return DS8B_OK;
}

/* Parses the safetensors file held in base[0..size) as file fi of s. */
static int parse_file(ds8b__st *s, int fi, const uint8_t *base, size_t size, ds8b__err *e) {
    const char *fname = s->files[fi].path;
    if (size < 8)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: %zu bytes is too short for a safetensors file",
                            fname, size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | base[i];
    if (hl > (uint64_t)(size - 8))
        return ds8b__seterr(e, DS8B_E_FORMAT,
                            "%s: header length %llu runs past the end of the %zu-byte file", fname,
                            (unsigned long long)hl, size);
    if (hl > DS8B__ST_MAX_HEADER)
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: header length %llu is more than the %u allowed",
                            fname, (unsigned long long)hl, DS8B__ST_MAX_HEADER);
    size_t n = (size_t)hl;
    char *js = ds8b__malloc(DS8B_MEM_OTHER, n + 1);
    if (!js) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate the %zu-byte header", fname, n);
    memcpy(js, base + 8, n);
    js[n] = 0;
    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(js, n + 1, &endp, 0);
    int rc = DS8B_OK;
    st_span *spans = NULL;
    if (!root) {
        size_t at = endp && endp >= js && endp <= js + n ? (size_t)(endp - js) : 0;
        rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: header is not valid JSON (near byte %zu)", fname, at);
        goto done;
    }
    /* Only padding may follow the JSON value. */
    for (const char *q = endp ? endp : js + n; q < js + n; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: junk after the JSON header at byte %zu", fname,
                              (size_t)(q - js));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: header is not a JSON object", fname);
        goto done;
    }
    const uint8_t *data = base + 8 + n;
    uint64_t data_size = (uint64_t)(size - 8 - n);
    int count = cJSON_GetArraySize(root);
    spans = ds8b__calloc(DS8B_MEM_OTHER, count > 0 ? (size_t)count : 1, sizeof *spans);
    if (!spans) {
        rc = ds8b__seterr(e, DS8B_E_NOMEM, "%s: tensor spans", fname);
        goto done;
    }
    int ns = 0;
    const cJSON *ent;
    cJSON_ArrayForEach(ent, root) {
        if (!ent->string) continue;
        if (strcmp(ent->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(ent) && !cJSON_IsNull(ent)) {
                rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: \"__metadata__\" is not an object", fname);
                goto done;
            }
            continue;
        }
        if ((rc = parse_entry(s, fi, ent, data, data_size, &spans[ns], e))) goto done;
        ns++;
    }
    /* No two tensors may share bytes (empty ones take none). */
    qsort(spans, (size_t)ns, sizeof *spans, span_cmp);
    int64_t prev = -1;
    for (int i = 0; i < ns; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (prev >= 0 && spans[i].begin < spans[prev].end) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensors %s and %s overlap", fname,
                              s->t[spans[prev].idx].name, s->t[spans[i].idx].name);
            goto done;
        }
        prev = i;
    }
done:
    ds8b__free(spans);
    cJSON_Delete(root);
    ds8b__free(js);
    return rc;
}

int ds8b__st_parse_mem(const void *data, size_t size, const char *name, ds8b__st **out,
                       ds8b__err *e) {
    *out = NULL;
    if (!data && size) return ds8b__seterr(e, DS8B_E_INVALID, "safetensors: NULL buffer");
    if (!name) name = "(memory)";
    ds8b__st *s = NULL;
    int rc = st_new(&s, e);
    if (rc) return rc;
    int fi = add_file(s, name);
    if (fi < 0) rc = ds8b__seterr(e, DS8B_E_NOMEM, "%s: file table", name);
    else rc = parse_file(s, fi, data, size, e);
    if (rc) {
        ds8b__st_close(s);
        return rc;
    }
    *out = s;
    return DS8B_OK;
}

/* Maps path as a new file of s and parses it. */
static int map_and_parse(ds8b__st *s, const char *path, int *fi_out, ds8b__err *e) {
    int fi = add_file(s, path);
    if (fi < 0) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: file table", path);
    int rc = ds8b__mmap_open(path, &s->files[fi].map, e);
    if (rc) return rc;
    s->mapped += (int64_t)s->files[fi].map.size;
    if (fi_out) *fi_out = fi;
    return parse_file(s, fi, s->files[fi].map.addr, s->files[fi].map.size, e);
}

int ds8b__st_open_file(const char *path, ds8b__st **out, ds8b__err *e) {
    *out = NULL;
    ds8b__st *s = NULL;
    int rc = st_new(&s, e);
    if (rc) return rc;
    if ((rc = map_and_parse(s, path, NULL, e))) {
        ds8b__st_close(s);
        return rc;
    }
    *out = s;
    return DS8B_OK;
}

static bool shard_name_ok(const char *n) {
    if (!n[0] || strchr(n, '/') || strchr(n, '\\') || strstr(n, "..")) return false;
    return true;
}

/* Opens the shards in dir named by the index JSON json[0..len) (json[len]
 * must be NUL); idx_path names the index in messages. */
static int open_index_json(ds8b__st *s, const char *dir, const char *idx_path, const char *json,
                           size_t len, ds8b__err *e) {
    int rc = DS8B_OK;
    cJSON *root = cJSON_ParseWithLength(json, len + 1);
    st_map shards = {0};
    const char **shard_names = NULL;
    int n_shards = 0;
    int *shard_file = NULL;
    if (!root) {
        rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: not valid JSON", idx_path);
        goto done;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: \"weight_map\" is missing or not an object", idx_path);
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it)) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: weight_map entry for %s is not a string", idx_path,
                              it->string);
            goto done;
        }
        if (!shard_name_ok(it->valuestring)) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT,
                              "%s: weight_map entry for %s names shard \"%.200s\", which is not a plain "
                              "file name",
                              idx_path, it->string, it->valuestring);
            goto done;
        }
        int r = map_put(&shards, it->valuestring, n_shards, NULL);
        if (r < 0) {
            rc = ds8b__seterr(e, DS8B_E_NOMEM, "%s: shard table", idx_path);
            goto done;
        }
        if (r == 1) {
            if (n_shards >= ST_MAX_SHARDS) {
                rc = ds8b__seterr(e, DS8B_E_LIMIT, "%s: more than %d shards", idx_path, ST_MAX_SHARDS);
                goto done;
            }
            const char **nn = ds8b__realloc(DS8B_MEM_OTHER, shard_names,
                                            (size_t)(n_shards + 1) * sizeof *nn);
            if (!nn) {
                rc = ds8b__seterr(e, DS8B_E_NOMEM, "%s: shard table", idx_path);
                goto done;
            }
            shard_names = nn;
            shard_names[n_shards++] = it->valuestring;
        }
    }
    if (n_shards == 0) {
        rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: \"weight_map\" is empty", idx_path);
        goto done;
    }
    shard_file = ds8b__calloc(DS8B_MEM_OTHER, (size_t)n_shards, sizeof *shard_file);
    if (!shard_file) {
        rc = ds8b__seterr(e, DS8B_E_NOMEM, "%s: shard table", idx_path);
        goto done;
    }
    for (int i = 0; i < n_shards; i++) {
        char *p = ds8b__path_join(dir, shard_names[i]);
        if (!p) {
            rc = ds8b__seterr(e, DS8B_E_NOMEM, "shard path");
            goto done;
        }
        rc = map_and_parse(s, p, &shard_file[i], e);
        if (rc) ds8b__errprefix(e, "shard %s listed in %s", shard_names[i], idx_path);
        ds8b__free(p);
        if (rc) goto done;
    }
    cJSON_ArrayForEach(it, wm) {
        int64_t si = map_get(&shards, it->valuestring);
        int64_t ti = map_get(&s->by_name, it->string);
        if (ti < 0) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s is listed for shard %s but is not in it",
                              idx_path, it->string, it->valuestring);
            goto done;
        }
        if (si < 0 || s->file_of[ti] != shard_file[si]) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s is listed for shard %s but is in %s",
                              idx_path, it->string, it->valuestring, s->files[s->file_of[ti]].path);
            goto done;
        }
    }
done:
    map_free(&shards);
    ds8b__free(shard_names);
    ds8b__free(shard_file);
    cJSON_Delete(root);
    return rc;
}

/* Opens the shards named by the index file at idx_path. */
static int open_index(ds8b__st *s, const char *dir, const char *idx_path, ds8b__err *e) {
    char *json = NULL;
    size_t len = 0;
    int rc = ds8b__read_file(idx_path, ST_MAX_INDEX_BYTES, DS8B_MEM_OTHER, &json, &len, e);
    if (rc) return rc;
    rc = open_index_json(s, dir, idx_path, json, len, e);
    ds8b__free(json);
    return rc;
}

int ds8b__st_open_index_mem(const char *dir, const char *json, size_t len, const char *name,
                            ds8b__st **out, ds8b__err *e) {
    *out = NULL;
    if (!dir || (!json && len)) return ds8b__seterr(e, DS8B_E_INVALID, "safetensors index: NULL argument");
    if (!name) name = "(index)";
    if (len > ST_MAX_INDEX_BYTES)
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: %zu bytes is more than the %u allowed", name, len,
                            ST_MAX_INDEX_BYTES);
    char *buf = ds8b__malloc(DS8B_MEM_OTHER, len + 1);
    if (!buf) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot copy %zu bytes", name, len);
    if (len) memcpy(buf, json, len);
    buf[len] = 0;
    ds8b__st *s = NULL;
    int rc = st_new(&s, e);
    if (rc == DS8B_OK) rc = open_index_json(s, dir, name, buf, len, e);
    ds8b__free(buf);
    if (rc) {
        ds8b__st_close(s);
        return rc;
    }
    *out = s;
    return DS8B_OK;
}

int ds8b__st_open_dir(const char *dir, ds8b__st **out, ds8b__err *e) {
    *out = NULL;
    if (!ds8b__is_dir(dir)) return ds8b__seterr(e, DS8B_E_IO, "%s: not a directory", dir);
    ds8b__st *s = NULL;
    int rc = st_new(&s, e);
    if (rc) return rc;
    char *idx = ds8b__path_join(dir, "model.safetensors.index.json");
    char *one = ds8b__path_join(dir, "model.safetensors");
    if (!idx || !one) rc = ds8b__seterr(e, DS8B_E_NOMEM, "path");
    else if (ds8b__file_exists(idx)) rc = open_index(s, dir, idx, e);
    else if (ds8b__file_exists(one)) rc = map_and_parse(s, one, NULL, e);
    else
        rc = ds8b__seterr(e, DS8B_E_IO, "%s: has neither model.safetensors.index.json nor model.safetensors",
                          dir);
    ds8b__free(idx);
    ds8b__free(one);
    if (rc) {
        ds8b__st_close(s);
        return rc;
    }
    *out = s;
    return DS8B_OK;
}

int64_t ds8b__st_n_tensors(const ds8b__st *s) { return s ? s->n : 0; }

const ds8b__tensor *ds8b__st_tensor(const ds8b__st *s, int64_t i) {
    if (!s || i < 0 || i >= s->n) return NULL;
    return &s->t[i];
}

const ds8b__tensor *ds8b__st_find(const ds8b__st *s, const char *name) {
    if (!s || !name) return NULL;
    int64_t i = map_get(&s->by_name, name);
    return i >= 0 ? &s->t[i] : NULL;
}

const char *ds8b__st_dtype(const ds8b__st *s, const ds8b__tensor *t) {
    if (!s || !t || t < s->t || t >= s->t + s->n) return "?";
    return k_dtypes[s->dtype[t - s->t]].name;
}

int64_t ds8b__st_mapped_bytes(const ds8b__st *s) { return s ? s->mapped : 0; }
