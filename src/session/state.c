/*
 * state.c -- saving and restoring a session, and forking it.
 *
 * File layout (little-endian):
 *   0   8  magic "DS8BSES\0"
 *   8   4  format version (1)
 *   12  4  flags (0)
 *   16  8  model fingerprint
 *   24  8  payload size before compression
 *   32  8  payload size after compression
 *   40  4  CRC-32 of the compressed payload
 *   44  4  CRC-32 of bytes 0..43
 *   48  .. zlib-compressed payload
 * Payload: a sequence of little-endian fields written by put_*() below:
 * parameters, sampler state (including the RNG), tokens, the last logits,
 * and the KV rows of every held position in the cache's own element type.
 */
#include "session/session.h"
#include "session/spec.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <zlib.h>

#define STATE_MAGIC "DS8BSES"
#define STATE_VERSION 1u
#define HDR_SIZE 48u

/* ------------------------------------------------------------------ */
/* Fingerprint                                                         */
/* ------------------------------------------------------------------ */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t fp_tensor(uint64_t h, const ds8b__tensor *t) {
    h = fnv(h, &t->type, sizeof t->type);
    h = fnv(h, t->ne, sizeof t->ne);
    size_t n = t->nbytes < 256 ? t->nbytes : 256;
    h = fnv(h, t->data, n);
    if (t->nbytes > 512) h = fnv(h, (const uint8_t *)t->data + t->nbytes - 256, 256);
    return h;
}

uint64_t ds8b__model_fingerprint(const ds8b_model *m) {
    if (m->fingerprint_set) return m->fingerprint; /* weights repacked after loading */
    const ds8b__hparams *hp = &m->hp;
    uint64_t h = 0xcbf29ce484222325ull;
    int64_t dims[] = {hp->arch, hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_ff};
    h = fnv(h, dims, sizeof dims);
    h = fp_tensor(h, &m->tok_embd);
    h = fp_tensor(h, &m->output);
    for (int64_t i = 0; i < hp->n_layer; i++) {
        h = fp_tensor(h, &m->layers[i].wq);
        h = fp_tensor(h, &m->layers[i].w_down);
    }
    h = fnv(h, m->rope_inv_freq, (size_t)(hp->head_dim / 2) * sizeof(float));
    return h;
}

/* ------------------------------------------------------------------ */
/* Payload serialisation                                               */
/* ------------------------------------------------------------------ */
typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool fail;
} wbuf;

static void put(wbuf *b, const void *d, size_t n) {
    if (b->fail) return;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + n) nc *= 2;
        uint8_t *q = ds8b__realloc(DS8B_MEM_OTHER, b->p, nc);
        if (!q) { b->fail = true; return; }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void put_i64(wbuf *b, int64_t v) { put(b, &v, 8); }
static void put_f64(wbuf *b, double v) { put(b, &v, 8); }

typedef struct rbuf {
    const uint8_t *p;
    size_t len, off;
    bool fail;
} rbuf;

static bool get(rbuf *b, void *d, size_t n) {
    if (b->fail || n > b->len - b->off) { b->fail = true; return false; }
    memcpy(d, b->p + b->off, n);
    b->off += n;
    return true;
}
static int64_t get_i64(rbuf *b) { int64_t v = 0; get(b, &v, 8); return v; }
static double get_f64(rbuf *b) { double v = 0; get(b, &v, 8); return v; }

static void w_le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void w_le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t r_le32(const uint8_t *p) { uint32_t v = 0; for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i); return v; }
static uint64_t r_le64(const uint8_t *p) { uint64_t v = 0; for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i); return v; }

static int build_payload(const ds8b_session *s, wbuf *b, ds8b__err *e) {
    const ds8b__sampler_params *sp = &s->sampler.p;
    put_i64(b, s->n_ctx);
    put_i64(b, s->kv.type);
    put_i64(b, s->ctx_policy);
    put_i64(b, s->n_sink);
    put_i64(b, s->max_tokens);
    put_i64(b, s->stop_at_eos);
    put_f64(b, sp->temperature);
    put_f64(b, sp->top_p);
    put_f64(b, sp->min_p);
    put_f64(b, sp->repeat_penalty);
    put_i64(b, sp->top_k);
    put_i64(b, sp->repeat_last_n);
    put_i64(b, (int64_t)sp->seed);
    put(b, s->sampler.rng, sizeof s->sampler.rng);
    put_i64(b, s->n_stops);
    for (int i = 0; i < s->n_stops; i++) {
        int64_t l = (int64_t)strlen(s->stops[i]);
        put_i64(b, l);
        put(b, s->stops[i], (size_t)l);
    }
    put_i64(b, s->n_past);
    put(b, s->tokens, (size_t)s->n_past * sizeof(int32_t));
    put_i64(b, s->have_logits);
    if (s->have_logits) put(b, s->sc.logits, (size_t)s->model->hp.n_vocab * sizeof(float));
    for (int64_t l = 0; l < s->kv.n_layer; l++) {
        size_t off = (size_t)l * (size_t)s->kv.n_ctx * s->kv.row_bytes;
        put(b, s->kv.k + off, (size_t)s->n_past * s->kv.row_bytes);
        put(b, s->kv.v + off, (size_t)s->n_past * s->kv.row_bytes);
    }
    if (b->fail) return ds8b__seterr(e, DS8B_E_NOMEM, "cannot allocate the session state buffer");
    return DS8B_OK;
}

/* Serialises s into a fresh heap buffer (header + compressed payload). */
static int save_to_heap(const ds8b_session *s, uint8_t **out, size_t *out_len, ds8b__err *e) {
    wbuf b = {0};
    int rc = build_payload(s, &b, e);
    if (rc) { ds8b__free(b.p); return rc; }
    uLong bound = compressBound((uLong)b.len);
    uint8_t *file = ds8b__xmalloc(DS8B_MEM_OTHER, HDR_SIZE + (size_t)bound, "the compressed session state", e);
    if (!file) { ds8b__free(b.p); return DS8B_E_NOMEM; }
    uLongf clen = bound;
    if (compress2(file + HDR_SIZE, &clen, b.p, (uLong)b.len, 1) != Z_OK) {
        ds8b__free(b.p);
        ds8b__free(file);
        return ds8b__seterr(e, DS8B_E_INTERNAL, "zlib could not compress the session state");
    }
    memcpy(file, STATE_MAGIC, 8);
    w_le32(file + 8, STATE_VERSION);
    w_le32(file + 12, 0);
    w_le64(file + 16, ds8b__model_fingerprint(s->model));
    w_le64(file + 24, b.len);
    w_le64(file + 32, clen);
    w_le32(file + 40, (uint32_t)crc32(0L, file + HDR_SIZE, (uInt)clen));
    w_le32(file + 44, (uint32_t)crc32(0L, file, 44));
    ds8b__free(b.p);
    *out = file;
    *out_len = HDR_SIZE + clen;
    return DS8B_OK;
}

static int restore(ds8b_session *s, const uint8_t *data, size_t len, ds8b__err *e) {
    if (len < HDR_SIZE) return ds8b__seterr(e, DS8B_E_FORMAT, "session state is truncated (%zu bytes, header needs %u)", len, HDR_SIZE);
    if (memcmp(data, STATE_MAGIC, 8) != 0) return ds8b__seterr(e, DS8B_E_FORMAT, "not a libds8b session state (bad magic)");
    if (r_le32(data + 44) != (uint32_t)crc32(0L, data, 44))
        return ds8b__seterr(e, DS8B_E_CHECKSUM, "session state header is corrupt (CRC mismatch)");
    uint32_t ver = r_le32(data + 8);
    if (ver != STATE_VERSION)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "session state format version %u is not supported (this library reads %u)",
                            ver, STATE_VERSION);
    if (r_le64(data + 16) != ds8b__model_fingerprint(s->model))
        return ds8b__seterr(e, DS8B_E_MISMATCH, "session state was saved with a different model");
    uint64_t raw = r_le64(data + 24), clen = r_le64(data + 32);
    if (clen > len - HDR_SIZE) return ds8b__seterr(e, DS8B_E_FORMAT, "session state is truncated (%zu of %llu payload bytes)",
                                                  len - HDR_SIZE, (unsigned long long)clen);
    if (r_le32(data + 40) != (uint32_t)crc32(0L, data + HDR_SIZE, (uInt)clen))
        return ds8b__seterr(e, DS8B_E_CHECKSUM, "session state payload is corrupt (CRC mismatch)");
    /* the payload can be no larger than a full cache plus bookkeeping */
    size_t kvb = 0;
    ds8b__kv_bytes(DS8B_KV_F32, s->model->hp.n_layer, s->n_ctx, s->kv.kvd, &kvb);
    size_t cap = kvb + (size_t)s->n_ctx * 4 + (size_t)s->model->hp.n_vocab * 4 + (1u << 20);
    if (raw > cap) return ds8b__seterr(e, DS8B_E_FORMAT, "session state payload of %llu bytes is too large for this session",
                                       (unsigned long long)raw);
    uint8_t *pl = ds8b__xmalloc(DS8B_MEM_OTHER, raw ? (size_t)raw : 1, "the session state payload", e);
    if (!pl) return DS8B_E_NOMEM;
    uLongf got = (uLongf)raw;
    if (uncompress(pl, &got, data + HDR_SIZE, (uLong)clen) != Z_OK || got != raw) {
        ds8b__free(pl);
        return ds8b__seterr(e, DS8B_E_FORMAT, "session state payload does not decompress");
    }
    rbuf b = {pl, (size_t)raw, 0, false};
    int rc = DS8B_OK;
    int64_t n_ctx = get_i64(&b), kv_type = get_i64(&b);
    ds8b__sampler_params sp;
    int64_t policy = get_i64(&b), sink = get_i64(&b), max_tokens = get_i64(&b), stop_eos = get_i64(&b);
    sp.temperature = get_f64(&b);
    sp.top_p = get_f64(&b);
    sp.min_p = get_f64(&b);
    sp.repeat_penalty = get_f64(&b);
    sp.top_k = get_i64(&b);
    sp.repeat_last_n = get_i64(&b);
    sp.seed = (uint64_t)get_i64(&b);
    uint64_t rng[2] = {0, 0};
    get(&b, rng, sizeof rng);
    int64_t nstops = get_i64(&b);
    char *stops[DS8B_MAX_STOPS] = {0};
    if (b.fail || nstops < 0 || nstops > DS8B_MAX_STOPS || policy < 0 || policy > DS8B_CTX_SLIDE) {
        rc = ds8b__seterr(e, DS8B_E_FORMAT, "session state parameters are corrupt");
        goto out;
    }
    for (int64_t i = 0; i < nstops; i++) {
        int64_t l = get_i64(&b);
        if (b.fail || l <= 0 || l > 1024 || (size_t)l > b.len - b.off) { rc = ds8b__seterr(e, DS8B_E_FORMAT, "session state stop string is corrupt"); goto out; }
        if (!(stops[i] = ds8b__strndup(DS8B_MEM_SESSION, (const char *)b.p + b.off, (size_t)l))) { rc = ds8b__seterr(e, DS8B_E_NOMEM, "stop strings"); goto out; }
        b.off += (size_t)l;
    }
    int64_t n_past = get_i64(&b);
    if (b.fail || n_past < 0 || n_past > s->n_ctx) {
        rc = ds8b__seterr(e, DS8B_E_INVALID, "session state holds %lld tokens; this session's context is %lld (saved with %lld)",
                          (long long)n_past, (long long)s->n_ctx, (long long)n_ctx);
        goto out;
    }
    if (kv_type != s->kv.type) {
        rc = ds8b__seterr(e, DS8B_E_MISMATCH, "session state has KV cache type %lld; this session uses %d", (long long)kv_type, s->kv.type);
        goto out;
    }
    size_t need = (size_t)n_past * 4 + 8;
    if (need > b.len - b.off) { rc = ds8b__seterr(e, DS8B_E_FORMAT, "session state is truncated in the tokens"); goto out; }
    int32_t *toks = (int32_t *)(void *)(b.p + b.off);
    const uint8_t *tokp = b.p + b.off;
    b.off += (size_t)n_past * 4;
    for (int64_t i = 0; i < n_past; i++) {
        int32_t t;
        memcpy(&t, tokp + i * 4, 4);
        if (t < 0 || t >= s->model->hp.n_vocab) { rc = ds8b__seterr(e, DS8B_E_FORMAT, "session state token %lld is out of range", (long long)i); goto out; }
    }
    (void)toks;
    int64_t have_logits = get_i64(&b);
    size_t lbytes = have_logits ? (size_t)s->model->hp.n_vocab * 4 : 0;
    size_t kbytes = (size_t)n_past * s->kv.row_bytes * 2 * (size_t)s->kv.n_layer;
    if (b.fail || lbytes > b.len - b.off || kbytes != b.len - b.off - lbytes) {
        rc = ds8b__seterr(e, DS8B_E_FORMAT, "session state sizes do not match this model's cache");
        goto out;
    }
    /* all checks passed: commit */
    memcpy(s->tokens, tokp, (size_t)n_past * 4);
    if (have_logits) get(&b, s->sc.logits, lbytes);
    for (int64_t l = 0; l < s->kv.n_layer; l++) {
        size_t off = (size_t)l * (size_t)s->kv.n_ctx * s->kv.row_bytes;
        get(&b, s->kv.k + off, (size_t)n_past * s->kv.row_bytes);
        get(&b, s->kv.v + off, (size_t)n_past * s->kv.row_bytes);
    }
    s->n_past = n_past;
    s->have_logits = have_logits != 0;
    s->ctx_policy = (int)policy;
    s->n_sink = sink;
    s->max_tokens = max_tokens;
    s->stop_at_eos = stop_eos != 0;
    s->sampler.p = sp;
    s->sampler.rng[0] = rng[0];
    s->sampler.rng[1] = rng[1];
    for (int i = 0; i < s->n_stops; i++) ds8b__free(s->stops[i]);
    for (int64_t i = 0; i < DS8B_MAX_STOPS; i++) s->stops[i] = stops[i];
    s->n_stops = (int)nstops;
    memset(stops, 0, sizeof stops);
out:
    for (int i = 0; i < DS8B_MAX_STOPS; i++) ds8b__free(stops[i]);
    ds8b__free(pl);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

DS8B_API int ds8b_session_save(ds8b_session *s, void *buf, size_t cap, size_t *len) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    if (!len) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_session_save: len is NULL"); return ds8b__sess_fail(s, &e); }
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    uint8_t *data;
    size_t n;
    int rc = save_to_heap(s, &data, &n, &e);
    ds8b__memscope_leave(old);
    if (rc) return ds8b__sess_fail(s, &e);
    *len = n;
    if (!buf || cap < n) {
        ds8b__free(data);
        ds8b__seterr(&e, DS8B_E_BUFFER, "the session state needs %zu bytes", n);
        return ds8b__sess_fail(s, &e);
    }
    memcpy(buf, data, n);
    ds8b__free(data);
    return DS8B_OK;
}

DS8B_API int ds8b_session_save_file(ds8b_session *s, const char *path) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    if (!path || !*path) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_session_save_file: empty path"); return ds8b__sess_fail(s, &e); }
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    uint8_t *data;
    size_t n;
    int rc = save_to_heap(s, &data, &n, &e);
    char *tmp = rc ? NULL : ds8b__malloc(DS8B_MEM_OTHER, strlen(path) + 8);
    ds8b__memscope_leave(old);
    if (rc) return ds8b__sess_fail(s, &e);
    if (!tmp) { ds8b__free(data); ds8b__seterr(&e, DS8B_E_NOMEM, "path"); return ds8b__sess_fail(s, &e); }
    /* write a temporary file, then rename: never a half-written save */
    snprintf(tmp, strlen(path) + 8, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t off = 0;
    while (fd >= 0 && off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    bool ok = fd >= 0 && off == n && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0) ok = false;
    if (ok && rename(tmp, path) != 0) ok = false;
    if (!ok) {
        unlink(tmp);
        ds8b__seterr(&e, DS8B_E_IO, "%s: cannot write the session state", path);
    }
    ds8b__free(tmp);
    ds8b__free(data);
    return ok ? DS8B_OK : ds8b__sess_fail(s, &e);
}

DS8B_API int ds8b_session_load(ds8b_session *s, const void *buf, size_t len) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    if (ds8b__sess_busy(s, "ds8b_session_load", &e)) return ds8b__sess_fail(s, &e);
    if (!buf) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_session_load: buf is NULL"); return ds8b__sess_fail(s, &e); }
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    int rc = restore(s, buf, len, &e);
    ds8b__memscope_leave(old);
    return rc ? ds8b__sess_fail(s, &e) : DS8B_OK;
}

DS8B_API int ds8b_session_load_file(ds8b_session *s, const char *path) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s)) { ds8b__seterr(&e, DS8B_E_MISUSE, "invalid session handle"); return ds8b__sess_fail(NULL, &e); }
    if (ds8b__sess_busy(s, "ds8b_session_load_file", &e)) return ds8b__sess_fail(s, &e);
    if (!path) { ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_session_load_file: path is NULL"); return ds8b__sess_fail(s, &e); }
    ds8b__memscope *old = ds8b__memscope_enter(&s->mem);
    char *data = NULL;
    size_t n = 0;
    int rc = ds8b__read_file(path, (size_t)1 << 36, DS8B_MEM_OTHER, &data, &n, &e);
    if (!rc) {
        rc = restore(s, (const uint8_t *)data, n, &e);
        if (rc) ds8b__errprefix(&e, "%s", path);
    }
    ds8b__free(data);
    ds8b__memscope_leave(old);
    return rc ? ds8b__sess_fail(s, &e) : DS8B_OK;
}

DS8B_API int ds8b_session_fork(ds8b_session *s, ds8b_session **out) {
    ds8b__err e = {0};
    if (!ds8b__sess_ok(s) || !out) { ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_session_fork: invalid session handle or out"); return ds8b__sess_fail(NULL, &e); }
    *out = NULL;
    ds8b_params p;
    ds8b__params_defaults(&p);
    p.i[DS8B_PARAM_N_CTX] = s->n_ctx;
    p.i[DS8B_PARAM_N_THREADS] = s->n_threads;
    p.i[DS8B_PARAM_N_BATCH] = s->n_batch;
    p.i[DS8B_PARAM_KV_TYPE] = s->kv.type;
    p.i[DS8B_PARAM_SPEC] = s->spec->mode;
    p.i[DS8B_PARAM_SPEC_MAX_DRAFT] = s->spec->max_draft;
    p.i[DS8B_PARAM_SPEC_NGRAM] = s->spec->ngram;
    ds8b_session *c;
    int rc = ds8b_session_create(s->model, &p, &c);
    if (rc) return rc;
    /* copy state directly (no compression round trip) */
    const ds8b__sampler_params *sp = &s->sampler.p;
    c->sampler.p = *sp;
    memcpy(c->sampler.rng, s->sampler.rng, sizeof c->sampler.rng);
    c->ctx_policy = s->ctx_policy;
    c->n_sink = s->n_sink;
    c->max_tokens = s->max_tokens;
    c->stop_at_eos = s->stop_at_eos;
    for (int i = 0; i < s->n_stops; i++) {
        if (ds8b_session_add_stop(c, s->stops[i])) { ds8b_session_free(c); return DS8B_E_NOMEM; }
    }
    memcpy(c->tokens, s->tokens, (size_t)s->n_past * 4);
    for (int64_t l = 0; l < s->kv.n_layer; l++) {
        size_t off = (size_t)l * (size_t)s->kv.n_ctx * s->kv.row_bytes;
        memcpy(c->kv.k + off, s->kv.k + off, (size_t)s->n_past * s->kv.row_bytes);
        memcpy(c->kv.v + off, s->kv.v + off, (size_t)s->n_past * s->kv.row_bytes);
    }
    memcpy(c->sc.logits, s->sc.logits, (size_t)s->model->hp.n_vocab * 4);
    c->have_logits = s->have_logits;
    c->n_past = s->n_past;
    *out = c;
    return DS8B_OK;
}
