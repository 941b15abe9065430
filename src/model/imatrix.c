/*
 * imatrix.c -- importance matrices: reading llama.cpp's two file formats,
 * writing its GGUF one, and computing one by running the float model over
 * calibration text (see imatrix.h for the formats).
 */
#include "model/imatrix.h"

#include "formats/gguf.h"
#include "model/model.h"
#include "session/params.h"
#include "session/session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ================================================================== */
/* The handle                                                          */
/* ================================================================== */
static void imat_destroy(ds8b_imatrix *im) {
    if (!im) return;
    for (int64_t i = 0; i < im->n; i++) {
        ds8b__free(im->e[i].name);
        ds8b__free(im->e[i].sum);
    }
    ds8b__free(im->e);
    ds8b__free(im->dataset);
    im->magic = 0;
    ds8b__free(im);
}

DS8B_API void ds8b_imatrix_free(ds8b_imatrix *im) {
    if (im && im->magic == DS8B_IMATRIX_MAGIC) imat_destroy(im);
}

static ds8b_imatrix *imat_new(void) {
    ds8b_imatrix *im = ds8b__calloc(DS8B_MEM_OTHER, 1, sizeof *im);
    if (im) im->magic = DS8B_IMATRIX_MAGIC;
    return im;
}

const ds8b__imat_ent *ds8b__imatrix_find(const ds8b_imatrix *im, const char *name) {
    if (!im || !name) return NULL;
    for (int64_t i = 0; i < im->n; i++)
        if (strcmp(im->e[i].name, name) == 0) return &im->e[i];
    return NULL;
}

void ds8b__imatrix_weights(const ds8b__imat_ent *ent, float *w) {
    double inv = ent->count > 0 ? 1.0 / ent->count : 1.0;
    for (int64_t c = 0; c < ent->n; c++) w[c] = (float)(ent->sum[c] * inv);
}

/* Appends an entry; takes name and sum (freed on failure). */
static int imat_add(ds8b_imatrix *im, char *name, float *sum, int64_t n, double count, const char *file,
                    ds8b__err *e) {
    if (!name || !sum) {
        ds8b__free(name);
        ds8b__free(sum);
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: importance matrix entries", file);
    }
    if (ds8b__imatrix_find(im, name)) {
        int rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: entry '%s' appears twice", file, name);
        ds8b__free(name);
        ds8b__free(sum);
        return rc;
    }
    if (im->n == im->cap) {
        int64_t nc = im->cap ? im->cap * 2 : 64;
        ds8b__imat_ent *ne = ds8b__realloc(DS8B_MEM_OTHER, im->e, (size_t)nc * sizeof *ne);
        if (!ne) {
            ds8b__free(name);
            ds8b__free(sum);
            return ds8b__seterr(e, DS8B_E_NOMEM, "%s: importance matrix entries", file);
        }
        im->e = ne;
        im->cap = nc;
    }
    im->e[im->n++] = (ds8b__imat_ent){name, n, sum, count};
    return DS8B_OK;
}

/* Values must be finite and >= 0 (sums of squares). */
static int check_values(const float *v, int64_t n, const char *file, const char *name, ds8b__err *e) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || v[i] < 0)
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: entry '%s': value %lld is %g, not a finite sum of squares",
                                file, name, (long long)i, (double)v[i]);
    return DS8B_OK;
}

/* ================================================================== */
/* The legacy .dat format                                              */
/* ================================================================== */
typedef struct rd {
    const uint8_t *p;
    size_t left, off;
    const char *file;
} rd;

static int rd_i32(rd *r, int32_t *v, const char *what, ds8b__err *e) {
    if (r->left < 4)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: truncated at byte %zu: %s needs 4 bytes, %zu left", r->file, r->off,
                            what, r->left);
    uint32_t u = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    memcpy(v, &u, 4);
    r->p += 4;
    r->left -= 4;
    r->off += 4;
    return DS8B_OK;
}

static int parse_dat(const uint8_t *data, size_t size, const char *file, ds8b_imatrix *im, ds8b__err *e) {
    rd r = {data, size, 0, file};
    int32_t n_entries;
    int rc;
    if ((rc = rd_i32(&r, &n_entries, "the entry count", e))) return rc;
    if (n_entries < 1)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: entry count %d (not an imatrix file?)", file, (int)n_entries);
    if ((uint32_t)n_entries > DS8B_IMATRIX_MAX_ENTRIES)
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: %d entries, more than the %u allowed", file, (int)n_entries,
                            DS8B_IMATRIX_MAX_ENTRIES);
    for (int32_t i = 0; i < n_entries; i++) {
        int32_t len, ncall, nval;
        if ((rc = rd_i32(&r, &len, "a name length", e))) return rc;
        if (len < 1 || (uint32_t)len > DS8B_IMATRIX_MAX_NAME)
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: entry %d: name length %d is outside 1..%u", file, (int)i,
                                (int)len, DS8B_IMATRIX_MAX_NAME);
        if ((size_t)len > r.left)
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: entry %d: truncated name (%d bytes, %zu left)", file, (int)i,
                                (int)len, r.left);
        if (memchr(r.p, 0, (size_t)len))
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: entry %d: the name holds a NUL byte", file, (int)i);
        char *name = ds8b__strndup(DS8B_MEM_OTHER, (const char *)r.p, (size_t)len);
        r.p += len;
        r.left -= (size_t)len;
        r.off += (size_t)len;
        if (!name) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: entry names", file);
        if ((rc = rd_i32(&r, &ncall, "a call count", e)) || (rc = rd_i32(&r, &nval, "a value count", e))) {
            ds8b__free(name);
            return rc;
        }
        if (ncall < 0 || nval < 1) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: entry '%s': %d calls, %d values", file, name, (int)ncall, (int)nval);
            ds8b__free(name);
            return rc;
        }
        size_t nb;
        if (!ds8b__mul_ok((size_t)nval, 4, &nb) || nb > r.left) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: entry '%s': %d values need %zu bytes, %zu left", file, name,
                              (int)nval, (size_t)nval * 4, r.left);
            ds8b__free(name);
            return rc;
        }
        float *sum = ds8b__malloc(DS8B_MEM_OTHER, nb);
        if (sum) {
            for (int32_t j = 0; j < nval; j++) {
                uint32_t u = (uint32_t)r.p[4 * j] | (uint32_t)r.p[4 * j + 1] << 8 | (uint32_t)r.p[4 * j + 2] << 16 |
                             (uint32_t)r.p[4 * j + 3] << 24;
                memcpy(&sum[j], &u, 4);
            }
            if ((rc = check_values(sum, nval, file, name, e))) {
                ds8b__free(name);
                ds8b__free(sum);
                return rc;
            }
        }
        r.p += nb;
        r.left -= nb;
        r.off += nb;
        /* the values are mean * ncall: ncall is what they are a sum over */
        if ((rc = imat_add(im, name, sum, nval, (double)ncall, file, e))) return rc;
    }
    /* optional trailer: chunk count, then the dataset's name */
    if (r.left == 0) return DS8B_OK;
    int32_t chunks, dlen;
    if ((rc = rd_i32(&r, &chunks, "the chunk count", e))) return rc;
    if (chunks < 0) return ds8b__seterr(e, DS8B_E_FORMAT, "%s: chunk count %d", file, (int)chunks);
    im->chunk_count = chunks;
    if (r.left == 0) return DS8B_OK;
    if ((rc = rd_i32(&r, &dlen, "the dataset name length", e))) return rc;
    if (dlen < 0 || (size_t)dlen != r.left)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: dataset name of %d bytes where %zu bytes are left", file, (int)dlen,
                            r.left);
    if (dlen > 0 && !memchr(r.p, 0, (size_t)dlen) &&
        !(im->dataset = ds8b__strndup(DS8B_MEM_OTHER, (const char *)r.p, (size_t)dlen)))
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: dataset name", file);
    return DS8B_OK;
}

/* ================================================================== */
/* The GGUF format                                                     */
/* ================================================================== */
static bool ends_with(const char *s, const char *suf, size_t *stem) {
    size_t n = strlen(s), m = strlen(suf);
    if (n <= m || strcmp(s + n - m, suf) != 0) return false;
    *stem = n - m;
    return true;
}

static int parse_gguf(const void *data, size_t size, const char *file, ds8b_imatrix *im, ds8b__err *e) {
    ds8b__gguf *g = NULL;
    int rc = ds8b__gguf_parse_mem(data, size, file, &g, e);
    if (rc) return rc;
    const char *s;
    size_t sl;
    if (ds8b__gguf_find_key(g, "general.type") >= 0) {
        if ((rc = ds8b__gguf_get_str(g, "general.type", &s, &sl, e))) goto out;
        if (sl != 7 || memcmp(s, "imatrix", 7) != 0) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: general.type is '%.*s', not 'imatrix' (a model file?)", file,
                              (int)(sl > 64 ? 64 : sl), s);
            goto out;
        }
    }
    int64_t v;
    if (ds8b__gguf_find_key(g, "imatrix.chunk_count") >= 0) {
        if ((rc = ds8b__gguf_get_int_range(g, "imatrix.chunk_count", 0, INT64_MAX, &v, e))) goto out;
        im->chunk_count = v;
    }
    if (ds8b__gguf_find_key(g, "imatrix.chunk_size") >= 0) {
        if ((rc = ds8b__gguf_get_int_range(g, "imatrix.chunk_size", 0, INT64_MAX, &v, e))) goto out;
        im->chunk_size = v;
    }
    int64_t kd = ds8b__gguf_find_key(g, "imatrix.datasets");
    if (kd >= 0) {
        int et;
        uint64_t cnt;
        const void *raw;
        if ((rc = ds8b__gguf_get_arr(g, "imatrix.datasets", &et, &cnt, &raw, e))) goto out;
        if (et != DS8B_GGUF_STRING) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: imatrix.datasets is an array of %s, not of strings", file,
                              ds8b__gguf_type_name(et));
            goto out;
        }
        if (cnt > 0) {
            if ((rc = ds8b__gguf_arr_str(g, kd, cnt - 1, &s, &sl, e))) goto out;
            if (!memchr(s, 0, sl) && !(im->dataset = ds8b__strndup(DS8B_MEM_OTHER, s, sl))) {
                rc = ds8b__seterr(e, DS8B_E_NOMEM, "%s: dataset name", file);
                goto out;
            }
        }
    }
    int64_t nt = ds8b__gguf_n_tensors(g);
    for (int64_t i = 0; i < nt; i++) {
        const ds8b__tensor *t = ds8b__gguf_tensor(g, i);
        size_t stem;
        if (ends_with(t->name, ".counts", &stem)) {
            /* each .counts goes with an .in_sum2 of the same stem */
            char want[DS8B_GGUF_MAX_NAME + 16];
            snprintf(want, sizeof want, "%.*s.in_sum2", (int)stem, t->name);
            if (!ds8b__gguf_find_tensor(g, want)) {
                rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor '%s' has no '%s' beside it", file, t->name, want);
                goto out;
            }
            continue;
        }
        if (!ends_with(t->name, ".in_sum2", &stem)) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor '%s' is neither NAME.in_sum2 nor NAME.counts", file,
                              t->name);
            goto out;
        }
        char cname[DS8B_GGUF_MAX_NAME + 16];
        snprintf(cname, sizeof cname, "%.*s.counts", (int)stem, t->name);
        const ds8b__tensor *c = ds8b__gguf_find_tensor(g, cname);
        if (!c) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor '%s' has no '%s' beside it", file, t->name, cname);
            goto out;
        }
        if (t->type != DS8B_T_F32 || c->type != DS8B_T_F32) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: '%s' and '%s' must be F32 (they are %s and %s)", file, t->name,
                              cname, ds8b__type_info(t->type)->name, ds8b__type_info(c->type)->name);
            goto out;
        }
        int64_t ncols = t->ne[0], nmat = 1;
        for (int d = 1; d < t->n_dims; d++) nmat *= t->ne[d]; /* the reader bounds the element count */
        int64_t ncnt = 1;
        for (int d = 0; d < c->n_dims; d++) ncnt *= c->ne[d];
        if (ncnt != nmat) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: '%s' holds %lld matrices but '%s' %lld counts", file, t->name,
                              (long long)nmat, cname, (long long)ncnt);
            goto out;
        }
        if (nmat != 1) {
            rc = ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: '%s' holds %lld matrices (mixture of experts): not supported",
                              file, t->name, (long long)nmat);
            goto out;
        }
        size_t nb;
        if (!ds8b__mul_ok((size_t)ncols, sizeof(float), &nb) || nb > t->nbytes || c->nbytes < 4) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: '%s': sizes do not add up", file, t->name);
            goto out;
        }
        float count;
        memcpy(&count, c->data, 4);
        char *name = ds8b__strndup(DS8B_MEM_OTHER, t->name, stem);
        if (!isfinite(count) || count < 0) {
            rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: '%s' is %g, not a count", file, cname, (double)count);
            ds8b__free(name);
            goto out;
        }
        float *sum = ds8b__malloc(DS8B_MEM_OTHER, nb);
        if (sum) {
            memcpy(sum, t->data, nb);
            if ((rc = check_values(sum, ncols, file, t->name, e))) {
                ds8b__free(name);
                ds8b__free(sum);
                goto out;
            }
        }
        if ((rc = imat_add(im, name, sum, ncols, count, file, e))) goto out;
    }
    if (im->n == 0) rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: no NAME.in_sum2 tensors (not an imatrix file?)", file);
out:
    ds8b__gguf_close(g);
    return rc;
}

int ds8b__imatrix_parse(const void *data, size_t size, const char *name, ds8b_imatrix **out, ds8b__err *e) {
    *out = NULL;
    const char *file = name ? name : "imatrix";
    if (!data && size) return ds8b__seterr(e, DS8B_E_INVALID, "%s: no data", file);
    ds8b_imatrix *im = imat_new();
    if (!im) return ds8b__seterr(e, DS8B_E_NOMEM, "importance matrix");
    int rc = size >= 4 && memcmp(data, "GGUF", 4) == 0 ? parse_gguf(data, size, file, im, e)
                                                      : parse_dat(data, size, file, im, e);
    if (rc) {
        imat_destroy(im);
        return rc;
    }
    *out = im;
    return DS8B_OK;
}

DS8B_API int ds8b_imatrix_load(const char *path, ds8b_imatrix **out) {
    ds8b__err e = {0};
    int rc;
    if (!out) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_imatrix_load: out is NULL");
    else if (!path) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_imatrix_load: path is NULL");
    else {
        *out = NULL;
        char *buf = NULL;
        size_t len = 0;
        rc = ds8b__read_file(path, (size_t)1 << 32, DS8B_MEM_OTHER, &buf, &len, &e);
        if (!rc) rc = ds8b__imatrix_parse(buf, len, path, out, &e);
        ds8b__free(buf);
    }
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

DS8B_API int ds8b_imatrix_info(const ds8b_imatrix *im, int key, int64_t *value) {
    ds8b__err e = {0};
    int rc = DS8B_OK;
    if (!im || im->magic != DS8B_IMATRIX_MAGIC) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "invalid imatrix handle");
    else if (!value) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_imatrix_info: value is NULL");
    else if (key == DS8B_IMATRIX_ENTRIES) *value = im->n;
    else if (key == DS8B_IMATRIX_CHUNKS) *value = im->chunk_count;
    else if (key == DS8B_IMATRIX_CHUNK_SIZE) *value = im->chunk_size;
    else rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_imatrix_info: unknown key %d", key);
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

/* ================================================================== */
/* Writing llama.cpp's GGUF format                                     */
/* ================================================================== */
/* Indices of the entries in name order (llama.cpp sorts its entries). An
 * insertion sort: no shared state, and the entry count of a model is a
 * few hundred. */
static void order_by_name(const ds8b_imatrix *im, int64_t *ix) {
    for (int64_t i = 0; i < im->n; i++) {
        int64_t v = ix[i] = i, j = i;
        while (j > 0 && strcmp(im->e[ix[j - 1]].name, im->e[v].name) > 0) {
            ix[j] = ix[j - 1];
            j--;
        }
        ix[j] = v;
    }
}

DS8B_API int ds8b_imatrix_save(const ds8b_imatrix *im, const char *path) {
    ds8b__err e = {0};
    int rc = DS8B_OK;
    ds8b__gguf_writer *w = NULL;
    int64_t *ix = NULL;
    if (!im || im->magic != DS8B_IMATRIX_MAGIC) {
        rc = ds8b__seterr(&e, DS8B_E_MISUSE, "invalid imatrix handle");
        goto out;
    }
    if (!path || !*path) {
        rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_imatrix_save: missing path");
        goto out;
    }
    ix = ds8b__xmalloc(DS8B_MEM_OTHER, (size_t)(im->n ? im->n : 1) * sizeof *ix, "imatrix order", &e);
    if (!ix) { rc = DS8B_E_NOMEM; goto out; }
    order_by_name(im, ix);
    if ((rc = ds8b__gguf_writer_create(path, &w, &e))) goto out;
    const char *ds = im->dataset ? im->dataset : "";
    if ((rc = ds8b__gguf_writer_add_str(w, "general.type", "imatrix", 7, &e))) goto out;
    if ((rc = ds8b__gguf_writer_add_arr_str(w, "imatrix.datasets", &ds, NULL, im->dataset ? 1 : 0, &e))) goto out;
    if ((rc = ds8b__gguf_writer_add_u32(w, "imatrix.chunk_count",
                                        (uint32_t)(im->chunk_count > UINT32_MAX ? UINT32_MAX : im->chunk_count), &e)))
        goto out;
    if ((rc = ds8b__gguf_writer_add_u32(w, "imatrix.chunk_size",
                                        (uint32_t)(im->chunk_size > UINT32_MAX ? UINT32_MAX : im->chunk_size), &e)))
        goto out;
    for (int64_t k = 0; k < im->n; k++) {
        const ds8b__imat_ent *en = &im->e[ix[k]];
        char nm[96];
        int64_t ne[2] = {en->n, 1}, one[2] = {1, 1};
        if (strlen(en->name) + 8 >= DS8B_GGUF_MAX_NAME) {
            rc = ds8b__seterr(&e, DS8B_E_INVALID, "imatrix entry '%s': name too long for GGUF", en->name);
            goto out;
        }
        snprintf(nm, sizeof nm, "%s.in_sum2", en->name);
        if ((rc = ds8b__gguf_writer_add_tensor_info(w, nm, DS8B_T_F32, 2, ne, NULL, &e))) goto out;
        snprintf(nm, sizeof nm, "%s.counts", en->name);
        if ((rc = ds8b__gguf_writer_add_tensor_info(w, nm, DS8B_T_F32, 2, one, NULL, &e))) goto out;
    }
    if ((rc = ds8b__gguf_writer_write_header(w, &e))) goto out;
    for (int64_t k = 0; k < im->n; k++) {
        const ds8b__imat_ent *en = &im->e[ix[k]];
        float c = (float)(en->count > 0 ? en->count : 1.0);
        if ((rc = ds8b__gguf_writer_write_tensor_data(w, 2 * k, en->sum, (size_t)en->n * sizeof(float), &e))) goto out;
        if ((rc = ds8b__gguf_writer_write_tensor_data(w, 2 * k + 1, &c, sizeof c, &e))) goto out;
    }
    rc = ds8b__gguf_writer_finish(w, &e);
    w = NULL;
out:
    ds8b__gguf_writer_abort(w);
    ds8b__free(ix);
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

/* ================================================================== */
/* Computing one: the float model over calibration text                */
/* ================================================================== */
void ds8b__imat_acc_add(double *sum, const float *x, int64_t n, int64_t w) {
    for (int64_t r = 0; r < n; r++) {
        const float *row = x + (size_t)r * (size_t)w;
        for (int64_t c = 0; c < w; c++) sum[c] += (double)row[c] * row[c];
    }
}

#define CALIB_CHUNK 512 /* tokens per chunk, BOS first (llama.cpp's default context) */

/* One entry from accumulated sums. */
static int add_from_acc(ds8b_imatrix *im, const char *name, const double *s, int64_t n, int64_t rows, ds8b__err *e) {
    float *sum = ds8b__malloc(DS8B_MEM_OTHER, (size_t)n * sizeof(float));
    if (sum)
        for (int64_t c = 0; c < n; c++) sum[c] = (float)s[c];
    return imat_add(im, ds8b__strdup(DS8B_MEM_OTHER, name), sum, n, (double)rows, "calibration", e);
}

static int compute(ds8b_model *m, const char *text, size_t len, const ds8b_params *params, ds8b_imatrix *im,
                   ds8b__err *e) {
    const ds8b__hparams *hp = &m->hp;
    int rc;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    ds8b_session *s = NULL;
    ds8b_params *sp = NULL;
    ds8b__imat_acc acc = {0};
    double *all = NULL;
    /* tokens */
    const ds8b_tokenizer *tok = ds8b_model_tokenizer(m);
    rc = ds8b_tokenize(tok, text, len, 0, NULL, 0, &n_ids);
    if (rc && rc != DS8B_E_BUFFER) return ds8b__seterr(e, rc, "calibration text: %s", ds8b_errmsg());
    if (n_ids < 2) return ds8b__seterr(e, DS8B_E_INVALID, "calibration text: %zu tokens; it needs at least 2", n_ids);
    ids = ds8b__xmalloc(DS8B_MEM_OTHER, n_ids * sizeof(int32_t), "calibration tokens", e);
    if (!ids) return DS8B_E_NOMEM;
    if ((rc = ds8b_tokenize(tok, text, len, 0, ids, n_ids, &n_ids))) {
        rc = ds8b__seterr(e, rc, "calibration text: %s", ds8b_errmsg());
        goto out;
    }
    /* a session of one chunk's length, KV f32 */
    if ((rc = ds8b_params_create(&sp))) { rc = ds8b__seterr(e, rc, "params"); goto out; }
    int64_t chunk = CALIB_CHUNK < hp->n_ctx_train || hp->n_ctx_train <= 0 ? CALIB_CHUNK : hp->n_ctx_train;
    ds8b_params_set_int(sp, DS8B_PARAM_N_CTX, chunk);
    ds8b_params_set_int(sp, DS8B_PARAM_KV_TYPE, DS8B_KV_F32);
    if (params) ds8b_params_set_int(sp, DS8B_PARAM_N_THREADS, params->i[DS8B_PARAM_N_THREADS]);
    if ((rc = ds8b_session_create(m, sp, &s))) { rc = ds8b__seterr(e, rc, "%s", ds8b_errmsg()); goto out; }
    int64_t d = hp->n_embd, qd = hp->n_head * hp->head_dim, ff = hp->n_ff, L = hp->n_layer;
    size_t per = (size_t)(2 * d + qd + ff), tot;
    if (!ds8b__mul_ok(per, (size_t)L, &tot) || !ds8b__add_ok(tot, (size_t)d, &tot) || !ds8b__mul_ok(tot, sizeof(double), &tot)) {
        rc = ds8b__seterr(e, DS8B_E_INVALID, "model too large for the statistics");
        goto out;
    }
    all = ds8b__xmalloc(DS8B_MEM_SCRATCH, tot, "activation statistics", e);
    if (!all) { rc = DS8B_E_NOMEM; goto out; }
    memset(all, 0, tot);
    acc = (ds8b__imat_acc){L, d, qd, ff, all, all + L * d, all + L * (d + qd), all + L * (2 * d + qd),
                           all + L * (2 * d + qd + ff), 0};
    s->imat = &acc;
    int32_t bos = ds8b_tokenizer_bos(tok);
    int64_t text_per = bos >= 0 ? chunk - 1 : chunk;
    int64_t n_chunks = ((int64_t)n_ids + text_per - 1) / text_per;
    int32_t *buf = ds8b__xmalloc(DS8B_MEM_OTHER, (size_t)chunk * sizeof(int32_t), "calibration chunk", e);
    if (!buf) { rc = DS8B_E_NOMEM; goto out; }
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t off = c * text_per, nt = (int64_t)n_ids - off < text_per ? (int64_t)n_ids - off : text_per, n = 0;
        if (bos >= 0) buf[n++] = bos;
        memcpy(buf + n, ids + off, (size_t)nt * sizeof(int32_t));
        n += nt;
        for (int64_t o = 0; o < n && !rc; o += s->n_batch) {
            int64_t nb = n - o < s->n_batch ? n - o : s->n_batch;
            rc = ds8b__forward(s, buf + o, nb, o, 0, NULL, e);
        }
        if (rc) break;
        if (params && params->progress &&
            params->progress(params->progress_user, (double)(c + 1) / (double)n_chunks, "calibrating")) {
            rc = ds8b__seterr(e, DS8B_E_CANCELLED, "cancelled by the progress callback while calibrating");
            break;
        }
    }
    ds8b__free(buf);
    s->imat = NULL;
    if (rc) goto out;
    im->chunk_count = n_chunks;
    im->chunk_size = chunk;
    static const char *const roles[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    for (int64_t l = 0; l < L && !rc; l++) {
        for (int r = 0; r < 7 && !rc; r++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%lld.%s.weight", (long long)l, roles[r]);
            const double *src = r < 3 ? acc.attn_in + l * d : r == 3 ? acc.o_in + l * qd : r < 6 ? acc.ffn_in + l * d
                                                                                              : acc.down_in + l * ff;
            int64_t w = r == 3 ? qd : r == 6 ? ff : d;
            rc = add_from_acc(im, nm, src, w, acc.rows, e);
        }
    }
    if (!rc) rc = add_from_acc(im, m->output_is_embd ? "token_embd.weight" : "output.weight", acc.out_in, d, acc.rows, e);
out:
    ds8b__free(all);
    ds8b__free(ids);
    ds8b_session_free(s);
    ds8b_params_free(sp);
    return rc;
}

DS8B_API int ds8b_imatrix_compute(ds8b_model *m, const char *text, size_t len, const ds8b_params *params,
                                  ds8b_imatrix **out) {
    ds8b__err e = {0};
    int rc;
    if (!out) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_imatrix_compute: out is NULL");
    else if (!m || m->magic != DS8B_MODEL_MAGIC) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_imatrix_compute: invalid model handle");
    else if (params && params->magic != DS8B_PARAMS_MAGIC) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "invalid params handle");
    else if (!text && len) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_imatrix_compute: text is NULL");
    else {
        *out = NULL;
        ds8b_imatrix *im = imat_new();
        if (!im) rc = ds8b__seterr(&e, DS8B_E_NOMEM, "importance matrix");
        else if ((rc = compute(m, text ? text : "", len, params, im, &e))) imat_destroy(im);
        else *out = im;
    }
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

DS8B_API int ds8b_params_set_imatrix(ds8b_params *p, const ds8b_imatrix *im) {
    ds8b__err e = {0};
    if (!p || p->magic != DS8B_PARAMS_MAGIC) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_params_set_imatrix: invalid params handle");
        ds8b__set_last_error(&e);
        return DS8B_E_MISUSE;
    }
    if (im && im->magic != DS8B_IMATRIX_MAGIC) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_params_set_imatrix: invalid imatrix handle");
        ds8b__set_last_error(&e);
        return DS8B_E_MISUSE;
    }
    p->imatrix = im;
    return DS8B_OK;
}
