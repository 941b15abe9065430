/*
 * gguf_write.c -- streaming GGUF v3 writer.
 *
 * The file is written to PATH.tmp front to back: the fixed header with
 * placeholder counts, each metadata entry as it is added, then (at
 * write_header) our own entries, the tensor infos and padding, then tensor
 * data as it streams in. Only small things are patched afterwards with
 * pwrite: the two counts at bytes 8..23 and the ds8b.tensor_crc32 elements,
 * whose place was reserved when the header was written. PATH.tmp becomes
 * PATH by rename() once everything is on disk.
 */
#include "formats/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the GGUF writer copies host values as little-endian");

#define WBUF_BYTES (1u << 20)
#define WRITER_MAX_NAME 63u /* llama.cpp refuses names of 64 bytes and more */

typedef struct wtensor {
    char *name;
    int type;
    int n_dims;
    int64_t ne[DS8B_MAX_DIMS];
    size_t nbytes;
    uint64_t off;   /* relative to the data section */
    uint32_t crc;
} wtensor;

enum { ST_META = 0, ST_DATA = 1 };

struct ds8b__gguf_writer {
    char *path, *tmp;
    int fd;
    int state;
    int failed;           /* sticky I/O error code, 0 if none */
    uint8_t *buf;
    size_t blen;
    uint64_t pos;         /* bytes written so far, buffered ones included */
    uint64_t n_kv;
    char **keys;
    size_t n_keys, keys_cap;
    uint32_t alignment;
    wtensor *t;
    int64_t n_t;
    size_t t_cap;
    int64_t cur;          /* tensor whose data is being written */
    size_t cur_done;
    uint64_t crc_pos;     /* file offset of the CRC elements */
};

/* ------------------------------------------------------------------ */
/* Raw output                                                          */
/* ------------------------------------------------------------------ */
static int fail_io(ds8b__gguf_writer *w, const char *what, int err, ds8b__err *e) {
    w->failed = DS8B_E_IO;
    return ds8b__seterr(e, DS8B_E_IO, "%s: %s failed: %s", w->tmp, what, strerror(err));
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t r = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r == 0 ? ENOSPC : errno;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off) {
    while (n > 0) {
        ssize_t r = pwrite(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r == 0 ? ENOSPC : errno;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int flush(ds8b__gguf_writer *w, ds8b__err *e) {
    if (w->blen) {
        int err = write_all(w->fd, w->buf, w->blen);
        if (err) return fail_io(w, "write", err, e);
        w->blen = 0;
    }
    return DS8B_OK;
}

static int put(ds8b__gguf_writer *w, const void *data, size_t n, ds8b__err *e) {
    const uint8_t *p = data;
    if (n >= WBUF_BYTES) {
        int rc = flush(w, e);
        if (rc) return rc;
        int err = write_all(w->fd, p, n);
        if (err) return fail_io(w, "write", err, e);
        w->pos += n;
        return DS8B_OK;
    }
    if (w->blen + n > WBUF_BYTES) {
        int rc = flush(w, e);
        if (rc) return rc;
    }
    memcpy(w->buf + w->blen, p, n);
    w->blen += n;
    w->pos += n;
    return DS8B_OK;
}

static int put_u32(ds8b__gguf_writer *w, uint32_t v, ds8b__err *e) { return put(w, &v, 4, e); }
static int put_u64(ds8b__gguf_writer *w, uint64_t v, ds8b__err *e) { return put(w, &v, 8, e); }
static int put_str(ds8b__gguf_writer *w, const char *s, size_t n, ds8b__err *e) {
    int rc = put_u64(w, n, e);
    return rc ? rc : put(w, s, n, e);
}
static int put_pad(ds8b__gguf_writer *w, ds8b__err *e) {
    static const uint8_t zeros[256];
    size_t pad = (size_t)((w->alignment - w->pos % w->alignment) % w->alignment);
    while (pad > 0) {
        size_t k = pad > sizeof zeros ? sizeof zeros : pad;
        int rc = put(w, zeros, k, e);
        if (rc) return rc;
        pad -= k;
    }
    return DS8B_OK;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */
static void destroy(ds8b__gguf_writer *w, bool remove_tmp) {
    if (w->fd >= 0) close(w->fd);
    if (remove_tmp && w->tmp) unlink(w->tmp);
    for (size_t i = 0; i < w->n_keys; i++) ds8b__free(w->keys[i]);
    for (int64_t i = 0; i < w->n_t; i++) ds8b__free(w->t[i].name);
    ds8b__free(w->keys);
    ds8b__free(w->t);
    ds8b__free(w->buf);
    ds8b__free(w->path);
    ds8b__free(w->tmp);
    ds8b__free(w);
}

int ds8b__gguf_writer_create(const char *path, ds8b__gguf_writer **out, ds8b__err *e) {
    if (!out || !path || !*path) return ds8b__seterr(e, DS8B_E_INVALID, "gguf writer: no path");
    *out = NULL;
    ds8b__gguf_writer *w = ds8b__calloc(DS8B_MEM_OTHER, 1, sizeof *w);
    if (!w) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate a writer", path);
    w->fd = -1;
    w->alignment = DS8B_GGUF_DEFAULT_ALIGNMENT;
    size_t n = strlen(path);
    w->path = ds8b__strdup(DS8B_MEM_OTHER, path);
    w->tmp = ds8b__malloc(DS8B_MEM_OTHER, n + 5);
    w->buf = ds8b__malloc(DS8B_MEM_OTHER, WBUF_BYTES);
    if (!w->path || !w->tmp || !w->buf) {
        destroy(w, false);
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate a writer", path);
    }
    memcpy(w->tmp, path, n);
    memcpy(w->tmp + n, ".tmp", 5);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int err = errno;
        ds8b__seterr(e, DS8B_E_IO, "%s: cannot create: %s", w->tmp, strerror(err));
        destroy(w, false);
        return DS8B_E_IO;
    }
    /* magic, version, then two counts patched by write_header */
    int rc = put(w, "GGUF", 4, e);
    if (!rc) rc = put_u32(w, 3, e);
    if (!rc) rc = put_u64(w, 0, e);
    if (!rc) rc = put_u64(w, 0, e);
    if (rc) {
        destroy(w, true);
        return rc;
    }
    *out = w;
    return DS8B_OK;
}

void ds8b__gguf_writer_abort(ds8b__gguf_writer *w) {
    if (w) destroy(w, true);
}

static int usable(ds8b__gguf_writer *w, int state, const char *what, ds8b__err *e) {
    if (!w) return ds8b__seterr(e, DS8B_E_MISUSE, "gguf writer: NULL handle in %s", what);
    if (w->failed)
        return ds8b__seterr(e, w->failed, "%s: %s: the writer failed earlier", w->tmp, what);
    if (w->state != state)
        return ds8b__seterr(e, DS8B_E_MISUSE, "%s: %s called %s write_header", w->tmp, what,
                            state == ST_META ? "after" : "before");
    return DS8B_OK;
}

/* ------------------------------------------------------------------ */
/* Metadata                                                            */
/* ------------------------------------------------------------------ */
static bool managed_key(const char *key) {
    return strcmp(key, DS8B_GGUF_CRC_KEY) == 0 || strcmp(key, DS8B_GGUF_QUANTIZED_BY_KEY) == 0 ||
           strcmp(key, DS8B_GGUF_TDIGEST_KEY) == 0;
}

/* Checks the key; *skip is set for keys the writer manages itself. */
static int check_key(ds8b__gguf_writer *w, const char *key, bool *skip, ds8b__err *e) {
    int rc = usable(w, ST_META, "adding metadata", e);
    if (rc) return rc;
    *skip = false;
    if (!key || !*key) return ds8b__seterr(e, DS8B_E_INVALID, "%s: empty metadata key", w->tmp);
    if (strlen(key) > DS8B_GGUF_MAX_KEY)
        return ds8b__seterr(e, DS8B_E_INVALID, "%s: metadata key '%.64s...' is too long", w->tmp, key);
    if (managed_key(key)) {
        *skip = true;
        return DS8B_OK;
    }
    for (size_t i = 0; i < w->n_keys; i++)
        if (strcmp(w->keys[i], key) == 0)
            return ds8b__seterr(e, DS8B_E_INVALID, "%s: key '%s' added twice", w->tmp, key);
    return DS8B_OK;
}

static int remember_key(ds8b__gguf_writer *w, const char *key, ds8b__err *e) {
    if (w->n_keys == w->keys_cap) {
        size_t nc = w->keys_cap ? w->keys_cap * 2 : 32;
        char **k = ds8b__realloc(DS8B_MEM_OTHER, w->keys, nc * sizeof *k);
        if (!k) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot grow the key list", w->tmp);
        w->keys = k;
        w->keys_cap = nc;
    }
    w->keys[w->n_keys] = ds8b__strdup(DS8B_MEM_OTHER, key);
    if (!w->keys[w->n_keys]) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot copy key '%s'", w->tmp, key);
    w->n_keys++;
    return DS8B_OK;
}

/* Writes key, type and the value given as up to two byte ranges. */
static int emit_kv(ds8b__gguf_writer *w, const char *key, int type, const void *a, size_t na,
                   const void *b, size_t nb, ds8b__err *e) {
    int rc = remember_key(w, key, e);
    if (!rc) rc = put_str(w, key, strlen(key), e);
    if (!rc) rc = put_u32(w, (uint32_t)type, e);
    if (!rc && na) rc = put(w, a, na, e);
    if (!rc && nb) rc = put(w, b, nb, e);
    if (!rc) w->n_kv++;
    return rc;
}

int ds8b__gguf_writer_add_raw(ds8b__gguf_writer *w, const char *key, int type,
                              const void *encoded, size_t size, ds8b__err *e) {
    bool skip;
    int rc = check_key(w, key, &skip, e);
    if (rc || skip) return rc;
    if (!encoded && size) return ds8b__seterr(e, DS8B_E_INVALID, "%s: key '%s': NULL value", w->tmp, key);
    size_t used;
    rc = ds8b__gguf_check_value(type, encoded ? encoded : (const void *)"", size, &used, 0, e);
    if (!rc && used != size)
        rc = ds8b__seterr(e, DS8B_E_INVALID, "%zu bytes after the value", size - used);
    if (rc) {
        ds8b__errprefix(e, "%s: key '%s'", w->tmp, key);
        if (e) e->code = DS8B_E_INVALID;
        return DS8B_E_INVALID;
    }
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a = 0;
        if (type == DS8B_GGUF_UINT32) memcpy(&a, encoded, 4);
        if (type != DS8B_GGUF_UINT32 || a == 0 || (a & (a - 1)) || a > DS8B_GGUF_MAX_ALIGNMENT)
            return ds8b__seterr(e, DS8B_E_INVALID,
                                "%s: general.alignment must be a uint32 power of two <= %u",
                                w->tmp, DS8B_GGUF_MAX_ALIGNMENT);
        w->alignment = a;
    }
    return emit_kv(w, key, type, encoded, size, NULL, 0, e);
}

#define ADD_SCALAR(fn, ctype, gtype)                                                          \
    int ds8b__gguf_writer_add_##fn(ds8b__gguf_writer *w, const char *key, ctype v,            \
                                   ds8b__err *e) {                                            \
        return ds8b__gguf_writer_add_raw(w, key, gtype, &v, sizeof v, e);                     \
    }
ADD_SCALAR(u8, uint8_t, DS8B_GGUF_UINT8)
ADD_SCALAR(i8, int8_t, DS8B_GGUF_INT8)
ADD_SCALAR(u16, uint16_t, DS8B_GGUF_UINT16)
ADD_SCALAR(i16, int16_t, DS8B_GGUF_INT16)
ADD_SCALAR(u32, uint32_t, DS8B_GGUF_UINT32)
ADD_SCALAR(i32, int32_t, DS8B_GGUF_INT32)
ADD_SCALAR(u64, uint64_t, DS8B_GGUF_UINT64)
ADD_SCALAR(i64, int64_t, DS8B_GGUF_INT64)
ADD_SCALAR(f32, float, DS8B_GGUF_FLOAT32)
ADD_SCALAR(f64, double, DS8B_GGUF_FLOAT64)

int ds8b__gguf_writer_add_bool(ds8b__gguf_writer *w, const char *key, bool v, ds8b__err *e) {
    uint8_t b = v ? 1 : 0;
    return ds8b__gguf_writer_add_raw(w, key, DS8B_GGUF_BOOL, &b, 1, e);
}

int ds8b__gguf_writer_add_str(ds8b__gguf_writer *w, const char *key, const char *s, size_t len,
                              ds8b__err *e) {
    bool skip;
    int rc = check_key(w, key, &skip, e);
    if (rc || skip) return rc;
    if (!s && len) return ds8b__seterr(e, DS8B_E_INVALID, "%s: key '%s': NULL string", w->tmp, key);
    uint64_t n = len;
    return emit_kv(w, key, DS8B_GGUF_STRING, &n, 8, s, len, e);
}

int ds8b__gguf_writer_add_arr(ds8b__gguf_writer *w, const char *key, int elem_type,
                              const void *data, uint64_t count, ds8b__err *e) {
    bool skip;
    int rc = check_key(w, key, &skip, e);
    if (rc || skip) return rc;
    size_t es = ds8b__gguf_type_size(elem_type), bytes;
    if (!es)
        return ds8b__seterr(e, DS8B_E_INVALID,
                            "%s: key '%s': add_arr takes fixed-size elements, not %s", w->tmp, key,
                            ds8b__gguf_type_name(elem_type));
    if (count > SIZE_MAX || !ds8b__mul_ok((size_t)count, es, &bytes) || (!data && bytes))
        return ds8b__seterr(e, DS8B_E_INVALID, "%s: key '%s': bad array of %llu elements", w->tmp,
                            key, (unsigned long long)count);
    if (elem_type == DS8B_GGUF_BOOL)
        for (size_t i = 0; i < bytes; i++)
            if (((const uint8_t *)data)[i] > 1)
                return ds8b__seterr(e, DS8B_E_INVALID, "%s: key '%s': bool element %zu is not 0 or 1",
                                    w->tmp, key, i);
    uint8_t hdr[12];
    uint32_t et = (uint32_t)elem_type;
    memcpy(hdr, &et, 4);
    memcpy(hdr + 4, &count, 8);
    return emit_kv(w, key, DS8B_GGUF_ARRAY, hdr, 12, data, bytes, e);
}

int ds8b__gguf_writer_add_arr_str(ds8b__gguf_writer *w, const char *key,
                                  const char *const *strs, const size_t *lens, uint64_t count,
                                  ds8b__err *e) {
    bool skip;
    int rc = check_key(w, key, &skip, e);
    if (rc || skip) return rc;
    if (count && !strs)
        return ds8b__seterr(e, DS8B_E_INVALID, "%s: key '%s': NULL string array", w->tmp, key);
    for (uint64_t i = 0; i < count; i++)
        if (!strs[i] && (!lens || lens[i]))
            return ds8b__seterr(e, DS8B_E_INVALID, "%s: key '%s': string %llu is NULL", w->tmp,
                                key, (unsigned long long)i);
    uint8_t hdr[12];
    uint32_t et = DS8B_GGUF_STRING;
    memcpy(hdr, &et, 4);
    memcpy(hdr + 4, &count, 8);
    rc = emit_kv(w, key, DS8B_GGUF_ARRAY, hdr, 12, NULL, 0, e);
    for (uint64_t i = 0; !rc && i < count; i++) {
        size_t n = lens ? lens[i] : strlen(strs[i]);
        rc = put_str(w, strs[i] ? strs[i] : "", n, e);
    }
    return rc;
}

int ds8b__gguf_writer_copy_kv(ds8b__gguf_writer *w, const ds8b__gguf *src, int64_t i,
                              ds8b__err *e) {
    ds8b__gguf_val v;
    if (ds8b__gguf_kv_val(src, i, &v))
        return ds8b__seterr(e, DS8B_E_INVALID, "%s: no metadata entry #%lld to copy",
                            ds8b__gguf_name(src), (long long)i);
    size_t hdr = v.type == DS8B_GGUF_STRING ? 8 : v.type == DS8B_GGUF_ARRAY ? 12 : 0;
    return ds8b__gguf_writer_add_raw(w, ds8b__gguf_kv_key(src, i), v.type, v.p - hdr,
                                     v.size + hdr, e);
}

/* ------------------------------------------------------------------ */
/* Tensors                                                             */
/* ------------------------------------------------------------------ */
int ds8b__gguf_writer_add_tensor_info(ds8b__gguf_writer *w, const char *name, int type,
                                      int n_dims, const int64_t *ne, int64_t *index,
                                      ds8b__err *e) {
    int rc = usable(w, ST_META, "add_tensor_info", e);
    if (rc) return rc;
    if (!name || !*name || strlen(name) > WRITER_MAX_NAME)
        return ds8b__seterr(e, DS8B_E_INVALID, "%s: tensor name '%.80s' must be 1..%u bytes",
                            w->tmp, name ? name : "(null)", WRITER_MAX_NAME);
    for (int64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return ds8b__seterr(e, DS8B_E_INVALID, "%s: tensor '%s' added twice", w->tmp, name);
    const ds8b__type_traits *tt = type >= 0 && type < DS8B_T__GGUF_MAX ? ds8b__type_info(type) : NULL;
    if (!tt)
        return ds8b__seterr(e, DS8B_E_INVALID, "%s: tensor '%s': type id %d cannot go into GGUF",
                            w->tmp, name, type);
    if (n_dims < 1 || n_dims > DS8B_MAX_DIMS || !ne)
        return ds8b__seterr(e, DS8B_E_INVALID, "%s: tensor '%s': n_dims %d (1..%d)", w->tmp, name,
                            n_dims, DS8B_MAX_DIMS);
    wtensor t = {0};
    t.type = type;
    t.n_dims = n_dims;
    for (int d = 0; d < DS8B_MAX_DIMS; d++) t.ne[d] = d < n_dims ? ne[d] : 1;
    uint64_t nel = 1;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] <= 0 || __builtin_mul_overflow(nel, (uint64_t)ne[d], &nel) ||
            nel > (uint64_t)INT64_MAX)
            return ds8b__seterr(e, DS8B_E_INVALID, "%s: tensor '%s': bad ne[%d] = %lld", w->tmp,
                                name, d, (long long)ne[d]);
    size_t nb;
    if (!ds8b__row_bytes(type, t.ne[0], &nb))
        return ds8b__seterr(e, DS8B_E_INVALID,
                            "%s: tensor '%s': ne[0] = %lld is not a multiple of the %s block size %d",
                            w->tmp, name, (long long)t.ne[0], tt->name, tt->block_elems);
    for (int d = 1; d < DS8B_MAX_DIMS; d++)
        if (!ds8b__mul_ok(nb, (size_t)t.ne[d], &nb))
            return ds8b__seterr(e, DS8B_E_INVALID, "%s: tensor '%s': byte size overflows", w->tmp, name);
    t.nbytes = nb;
    if ((size_t)w->n_t == w->t_cap) {
        size_t nc = w->t_cap ? w->t_cap * 2 : 64;
        wtensor *q = ds8b__realloc(DS8B_MEM_OTHER, w->t, nc * sizeof *q);
        if (!q) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot grow the tensor list", w->tmp);
        w->t = q;
        w->t_cap = nc;
    }
    t.name = ds8b__strdup(DS8B_MEM_OTHER, name);
    if (!t.name) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot copy tensor name '%s'", w->tmp, name);
    w->t[w->n_t] = t;
    if (index) *index = w->n_t;
    w->n_t++;
    return DS8B_OK;
}

size_t ds8b__gguf_writer_tensor_nbytes(const ds8b__gguf_writer *w, int64_t i) {
    return w && i >= 0 && i < w->n_t ? w->t[i].nbytes : 0;
}

static int write_header(ds8b__gguf_writer *w, ds8b__err *e) {
    int rc;
    /* our own metadata */
    const char *by = "libds8b " DS8B_VERSION_STRING;
    uint64_t n = strlen(by);
    rc = emit_kv(w, DS8B_GGUF_QUANTIZED_BY_KEY, DS8B_GGUF_STRING, &n, 8, by, (size_t)n, e);
    if (rc) return rc;
    /* lay the tensors out first: the digest of the table goes beside the CRCs */
    uint64_t off = 0;
    ds8b__gguf_tdigest dg;
    ds8b__gguf_tdigest_init(&dg, (uint64_t)w->n_t, w->alignment);
    for (int64_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        t->off = off;
        uint64_t end = off + t->nbytes;
        if (end < off || end > UINT64_MAX - w->alignment)
            return ds8b__seterr(e, DS8B_E_INVALID, "%s: tensor data would exceed 2^64 bytes", w->tmp);
        off = (end + w->alignment - 1) / w->alignment * w->alignment;
        ds8b__gguf_tdigest_add(&dg, t->name, t->type, t->n_dims, t->ne, t->off);
    }
    if (w->n_t > 0) {
        char dstr[DS8B_GGUF_TDIGEST_LEN + 1];
        ds8b__gguf_tdigest_str(&dg, dstr);
        uint64_t dl = DS8B_GGUF_TDIGEST_LEN;
        rc = emit_kv(w, DS8B_GGUF_TDIGEST_KEY, DS8B_GGUF_STRING, &dl, 8, dstr, (size_t)dl, e);
        if (rc) return rc;
        uint8_t hdr[12];
        uint32_t et = DS8B_GGUF_UINT32;
        uint64_t cnt = (uint64_t)w->n_t;
        memcpy(hdr, &et, 4);
        memcpy(hdr + 4, &cnt, 8);
        rc = emit_kv(w, DS8B_GGUF_CRC_KEY, DS8B_GGUF_ARRAY, hdr, 12, NULL, 0, e);
        if (rc) return rc;
        w->crc_pos = w->pos;
        for (int64_t i = 0; i < w->n_t && !rc; i++) rc = put_u32(w, 0, e); /* filled at finish */
        if (rc) return rc;
    }
    /* tensor infos */
    for (int64_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        rc = put_str(w, t->name, strlen(t->name), e);
        if (!rc) rc = put_u32(w, (uint32_t)t->n_dims, e);
        for (int d = 0; d < t->n_dims && !rc; d++) rc = put_u64(w, (uint64_t)t->ne[d], e);
        if (!rc) rc = put_u32(w, (uint32_t)t->type, e);
        if (!rc) rc = put_u64(w, t->off, e);
        if (rc) return rc;
    }
    if (w->n_t > 0) {
        rc = put_pad(w, e);
        if (rc) return rc;
    }
    rc = flush(w, e);
    if (rc) return rc;
    uint8_t counts[16];
    uint64_t nt = (uint64_t)w->n_t;
    memcpy(counts, &nt, 8);
    memcpy(counts + 8, &w->n_kv, 8);
    int err = pwrite_all(w->fd, counts, 16, 8);
    if (err) return fail_io(w, "pwrite", err, e);
    w->state = ST_DATA;
    w->cur = 0;
    w->cur_done = 0;
    return DS8B_OK;
}

int ds8b__gguf_writer_write_header(ds8b__gguf_writer *w, ds8b__err *e) {
    int rc = usable(w, ST_META, "write_header", e);
    if (rc) return rc;
    rc = write_header(w, e);
    if (rc) w->failed = rc; /* a half-written header cannot be resumed */
    return rc;
}

int ds8b__gguf_writer_write_tensor_data(ds8b__gguf_writer *w, int64_t i, const void *data,
                                        size_t nbytes, ds8b__err *e) {
    int rc = usable(w, ST_DATA, "write_tensor_data", e);
    if (rc) return rc;
    if (i != w->cur || i >= w->n_t)
        return ds8b__seterr(e, DS8B_E_MISUSE, "%s: data for tensor #%lld given while #%lld%s is due",
                            w->tmp, (long long)i, (long long)w->cur,
                            w->cur >= w->n_t ? " (none: all written)" : "");
    wtensor *t = &w->t[i];
    if (nbytes > t->nbytes - w->cur_done)
        return ds8b__seterr(e, DS8B_E_INVALID, "%s: tensor '%s': %zu bytes given, %zu left to write",
                            w->tmp, t->name, nbytes, t->nbytes - w->cur_done);
    if (!data && nbytes) return ds8b__seterr(e, DS8B_E_INVALID, "%s: tensor '%s': NULL data", w->tmp, t->name);
    if (nbytes) {
        t->crc = ds8b__gguf_crc32(t->crc, data, nbytes);
        rc = put(w, data, nbytes, e);
        if (rc) return rc;
        w->cur_done += nbytes;
    }
    if (w->cur_done == t->nbytes) {
        rc = put_pad(w, e);
        if (rc) return rc;
        w->cur++;
        w->cur_done = 0;
    }
    return DS8B_OK;
}

int ds8b__gguf_writer_finish(ds8b__gguf_writer *w, ds8b__err *e) {
    if (!w) return ds8b__seterr(e, DS8B_E_MISUSE, "gguf writer: NULL handle in finish");
    int rc = DS8B_OK;
    if (w->failed) rc = ds8b__seterr(e, w->failed, "%s: finish: the writer failed earlier", w->tmp);
    if (!rc && w->state == ST_META) rc = ds8b__gguf_writer_write_header(w, e);
    if (!rc && w->cur < w->n_t)
        rc = ds8b__seterr(e, DS8B_E_MISUSE, "%s: finish: tensor '%s' has %zu of %zu bytes written",
                          w->tmp, w->t[w->cur].name, w->cur_done, w->t[w->cur].nbytes);
    if (!rc) rc = flush(w, e);
    if (!rc && w->n_t > 0) {
        uint8_t *crcs = ds8b__malloc(DS8B_MEM_OTHER, (size_t)w->n_t * 4);
        if (!crcs) {
            rc = ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate the CRC table", w->tmp);
        } else {
            for (int64_t i = 0; i < w->n_t; i++) memcpy(crcs + i * 4, &w->t[i].crc, 4);
            int err = pwrite_all(w->fd, crcs, (size_t)w->n_t * 4, w->crc_pos);
            ds8b__free(crcs);
            if (err) rc = fail_io(w, "pwrite", err, e);
        }
    }
    if (!rc && fsync(w->fd) != 0) rc = fail_io(w, "fsync", errno, e);
    if (!rc) {
        int fd = w->fd;
        w->fd = -1;
        if (close(fd) != 0) rc = fail_io(w, "close", errno, e);
    }
    if (!rc && rename(w->tmp, w->path) != 0) {
        int err = errno;
        rc = ds8b__seterr(e, DS8B_E_IO, "%s: cannot rename to %s: %s", w->tmp, w->path, strerror(err));
    }
    destroy(w, rc != DS8B_OK);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Value builder                                                       */
/* ------------------------------------------------------------------ */
void ds8b__gguf_buf_bytes(ds8b__gguf_buf *b, const void *data, size_t n) {
    if (b->failed || n == 0) return;
    size_t need;
    if (!ds8b__add_ok(b->len, n, &need)) {
        b->failed = true;
        return;
    }
    if (need > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < need) {
            if (!ds8b__mul_ok(nc, 2, &nc)) {
                b->failed = true;
                return;
            }
        }
        uint8_t *q = ds8b__realloc(DS8B_MEM_OTHER, b->p, nc);
        if (!q) {
            b->failed = true;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, data, n);
    b->len = need;
}
void ds8b__gguf_buf_u32(ds8b__gguf_buf *b, uint32_t v) { ds8b__gguf_buf_bytes(b, &v, 4); }
void ds8b__gguf_buf_u64(ds8b__gguf_buf *b, uint64_t v) { ds8b__gguf_buf_bytes(b, &v, 8); }
void ds8b__gguf_buf_str(ds8b__gguf_buf *b, const char *s, size_t len) {
    ds8b__gguf_buf_u64(b, len);
    ds8b__gguf_buf_bytes(b, s, len);
}
void ds8b__gguf_buf_arr(ds8b__gguf_buf *b, int elem_type, uint64_t count) {
    ds8b__gguf_buf_u32(b, (uint32_t)elem_type);
    ds8b__gguf_buf_u64(b, count);
}
void ds8b__gguf_buf_free(ds8b__gguf_buf *b) {
    if (!b) return;
    ds8b__free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}
