/*
 * forward.c -- the decoder forward pass (Llama and Qwen3), read top to
 * bottom like the reference PyTorch modules:
 *
 *   x = embed(ids)
 *   for each layer:
 *       h  = rmsnorm(x) * attn_norm
 *       q, k, v = h Wq^T, h Wk^T, h Wv^T
 *       (qwen3) q, k = rmsnorm_per_head(q) * q_norm, rmsnorm_per_head(k) * k_norm
 *       q, k = rope(q, pos), rope(k, pos);  cache k, v
 *       x += attention(q, cache) Wo^T
 *       h  = rmsnorm(x) * ffn_norm
 *       x += (silu(h Wgate^T) * (h Wup^T)) Wdown^T
 *   logits = rmsnorm(x) * out_norm Wout^T
 */
#include "session/session.h"
#include "model/imatrix.h"
#include "quant/quant.h"

#include <math.h>
#include <stdatomic.h>

/* ================================================================== */
/* KV cache storage                                                    */
/* ================================================================== */
static bool kv_row_bytes(int type, int64_t kvd, size_t *rb) {
    switch (type) {
    case DS8B_KV_F32: return ds8b__row_bytes(DS8B_T_F32, kvd, rb);
    case DS8B_KV_F16: return ds8b__row_bytes(DS8B_T_F16, kvd, rb);
    case DS8B_KV_Q8_0: return ds8b__row_bytes(DS8B_T_Q8_0, kvd, rb);
    default: return false;
    }
}

bool ds8b__kv_bytes(int type, int64_t n_layer, int64_t n_ctx, int64_t kvd, size_t *bytes) {
    size_t rb, a, b;
    return kv_row_bytes(type, kvd, &rb) && ds8b__mul_ok(rb, (size_t)n_ctx, &a) &&
           ds8b__mul_ok(a, (size_t)n_layer, &b) && ds8b__mul_ok(b, 2, bytes);
}

int ds8b__kv_init(ds8b__kv *kv, int type, int64_t n_layer, int64_t n_ctx, int64_t kvd, ds8b__err *e) {
    memset(kv, 0, sizeof *kv);
    size_t rb, half;
    if (!kv_row_bytes(type, kvd, &rb))
        return ds8b__seterr(e, DS8B_E_INVALID, "KV cache type %d cannot hold rows of %lld values",
                            type, (long long)kvd);
    if (!ds8b__mul_ok(rb, (size_t)n_ctx * (size_t)n_layer, &half))
        return ds8b__seterr(e, DS8B_E_LIMIT, "KV cache size overflows");
    kv->type = type;
    kv->n_ctx = n_ctx;
    kv->n_layer = n_layer;
    kv->kvd = kvd;
    kv->row_bytes = rb;
    kv->k = ds8b__xmalloc(DS8B_MEM_KV, half, "the KV cache (keys)", e);
    if (!kv->k) return DS8B_E_NOMEM;
    kv->v = ds8b__xmalloc(DS8B_MEM_KV, half, "the KV cache (values)", e);
    if (!kv->v) {
        ds8b__free(kv->k);
        kv->k = NULL;
        return DS8B_E_NOMEM;
    }
    return DS8B_OK;
}

void ds8b__kv_free(ds8b__kv *kv) {
    ds8b__free(kv->k);
    ds8b__free(kv->v);
    kv->k = kv->v = NULL;
}

static inline uint8_t *kv_row(const ds8b__kv *kv, const uint8_t *base, int64_t layer, int64_t pos) {
    return (uint8_t *)base + ((size_t)layer * (size_t)kv->n_ctx + (size_t)pos) * kv->row_bytes;
}

void ds8b__kv_put(ds8b__kv *kv, uint8_t *base, int64_t layer, int64_t pos, const float *src) {
    uint8_t *r = kv_row(kv, base, layer, pos);
    switch (kv->type) {
    case DS8B_KV_F32: memcpy(r, src, (size_t)kv->kvd * 4); break;
    case DS8B_KV_F16: {
        uint16_t *h = (uint16_t *)r;
        for (int64_t i = 0; i < kv->kvd; i++) h[i] = ds8b__f32_to_f16(src[i]);
        break;
    }
    case DS8B_KV_Q8_0: ds8b__quant_row(DS8B_T_Q8_0, src, r, kv->kvd); break;
    }
}

/* Loads len values starting at element off of a cached row. off and len
 * are multiples of 32. Returns a pointer to the floats (tmp or in place). */
static inline const float *kv_seg(const ds8b__kv *kv, const uint8_t *base, int64_t layer,
                                  int64_t pos, int64_t off, int64_t len, float *tmp) {
    const uint8_t *r = kv_row(kv, base, layer, pos);
    switch (kv->type) {
    case DS8B_KV_F32: return (const float *)r + off;
    case DS8B_KV_F16: {
        const uint16_t *h = (const uint16_t *)r + off;
        for (int64_t i = 0; i < len; i++) tmp[i] = ds8b__f16_to_f32(h[i]);
        return tmp;
    }
    default:
        ds8b__dequant_row(DS8B_T_Q8_0, r + (size_t)(off / 32) * 34, tmp, len);
        return tmp;
    }
}

void ds8b__kv_get(const ds8b__kv *kv, const uint8_t *base, int64_t layer, int64_t pos, float *dst) {
    const float *p = kv_seg(kv, base, layer, pos, 0, kv->kvd, dst);
    if (p != dst) memcpy(dst, p, (size_t)kv->kvd * 4);
}

/* ================================================================== */
/* Small kernels                                                       */
/* ================================================================== */
static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    float ss = 0.0f;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = w[i] * (x[i] * r);
}

/* Rotates one head (hd values) at position pos. */
static void rope_head(float *v, int64_t hd, int64_t pos, const float *inv_freq, float scale,
                      bool interleaved) {
    int64_t half = hd / 2;
    for (int64_t i = 0; i < half; i++) {
        float ang = (float)pos * inv_freq[i];
        float c = cosf(ang) * scale, s = sinf(ang) * scale;
        int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x1 * c + x0 * s;
    }
}

static void embed_row(const ds8b__tensor *t, int64_t id, float *dst) {
    size_t rb;
    ds8b__row_bytes(t->type, t->ne[0], &rb);
    const uint8_t *row = (const uint8_t *)t->data + (size_t)id * rb;
    ds8b__dequant_row(t->type, row, dst, t->ne[0]);
}

/* ================================================================== */
/* Attention over the cache, parallel over (token, head) pairs         */
/* ================================================================== */
static inline ds8b__kv *row_kv(const ds8b__fwd *f, int64_t t) { return f->row_kv ? f->row_kv[t] : f->kv; }
static inline int64_t row_pos(const ds8b__fwd *f, int64_t t) { return f->row_pos ? f->row_pos[t] : f->pos + t; }

/* Work units: (tile, KV head) pairs. A tile is a run of consecutive rows
 * on one cache (sc->att_tiles holds the first row of each, then n), at
 * most ds8b__attn_tile_tokens(group) rows. Each unit's results depend on
 * its own rows only (attn.c), so the units go to whichever thread asks
 * next, costliest (latest) tiles first. */
typedef struct att_job {
    const ds8b__fwd *f;
    int64_t layer, n_tiles;
    _Atomic int64_t next;
} att_job;

static void attention_task(void *ctx, int ith, int nth) {
    (void)nth;
    att_job *j = ctx;
    const ds8b__fwd *f = j->f;
    const ds8b__hparams *hp = &f->m->hp;
    ds8b__scratch *sc = f->sc;
    int64_t hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv, group = nh / nkv;
    int64_t qd = nh * hd, units = j->n_tiles * nkv;
    float *ws = sc->scores + (size_t)ith * sc->att_floats;
    int64_t pos[DS8B_ATT_ROWS];
    for (;;) {
        int64_t u = atomic_fetch_add(&j->next, 1);
        if (u >= units) break;
        int64_t tile = j->n_tiles - 1 - u / nkv, g = u % nkv;
        int64_t t0 = sc->att_tiles[tile], t1 = sc->att_tiles[tile + 1];
        const ds8b__kv *kv = row_kv(f, t0);
        for (int64_t t = t0; t < t1; t++) pos[t - t0] = row_pos(f, t);
        ds8b__attn_args a = {
            .kv_type = kv->type,
            .k = kv_row(kv, kv->k, j->layer, 0),
            .v = kv_row(kv, kv->v, j->layer, 0),
            .stride = kv->row_bytes,
            .off = g * hd,
            .hd = hd,
            .n_tok = t1 - t0,
            .n_head = group,
            .q = sc->q + (size_t)t0 * qd + g * group * hd,
            .ldq = qd,
            .out = sc->att + (size_t)t0 * qd + g * group * hd,
            .ldo = qd,
            .pos = pos,
        };
        ds8b__attention(&a, ws);
    }
}

/* Splits the n rows into attention tiles (sc->att_tiles); returns their count. */
static int64_t att_tiles(const ds8b__fwd *f) {
    const ds8b__hparams *hp = &f->m->hp;
    int64_t cap = ds8b__attn_tile_tokens(hp->n_head / hp->n_head_kv), nt = 0;
    if (cap > DS8B_ATT_ROWS) cap = DS8B_ATT_ROWS;
    for (int64_t t = 0; t < f->n;) {
        int64_t e = t + 1;
        while (e < f->n && e - t < cap && row_kv(f, e) == row_kv(f, t)) e++;
        f->sc->att_tiles[nt++] = (int32_t)t;
        t = e;
    }
    f->sc->att_tiles[nt] = (int32_t)f->n;
    return nt;
}

/* ================================================================== */
/* The forward pass                                                    */
/* ================================================================== */
#define MM(w, x, y) ds8b__matmul_ex(f->pool, (w), (x), n, (y), &sc->ws, f->flags, e)

int ds8b__forward_rows(const ds8b__fwd *f, int want_logits, float *logits_all, ds8b__err *e) {
    const ds8b_model *m = f->m;
    const ds8b__hparams *hp = &m->hp;
    ds8b__scratch *sc = f->sc;
    const int32_t *ids = f->ids;
    int64_t n = f->n;
    int64_t d = hp->n_embd, hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
    int64_t qd = nh * hd, kvd = nkv * hd, ff = hp->n_ff;
    float eps = (float)hp->rms_eps;
    int rc;

    if (n <= 0 || n > sc->n_batch)
        return ds8b__seterr(e, DS8B_E_INVALID, "forward: %lld rows for a scratch of %lld",
                            (long long)n, (long long)sc->n_batch);
    for (int64_t t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= hp->n_vocab)
            return ds8b__seterr(e, DS8B_E_INVALID, "token id %d at index %lld is outside the vocabulary (0..%lld)",
                                ids[t], (long long)t, (long long)hp->n_vocab - 1);
        if (row_pos(f, t) + 1 > sc->n_scores || row_pos(f, t) >= row_kv(f, t)->n_ctx)
            return ds8b__seterr(e, DS8B_E_INVALID, "forward: position %lld is outside the cache",
                                (long long)row_pos(f, t));
        embed_row(&m->tok_embd, ids[t], sc->x + (size_t)t * d);
    }

    int64_t n_tiles = att_tiles(f);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const ds8b__layer *L = &m->layers[l];
        /* attention block */
        for (int64_t t = 0; t < n; t++) rmsnorm(sc->xb + t * d, sc->x + t * d, L->attn_norm, d, eps);
        {
            const ds8b__tensor *w3[3] = {&L->wq, &L->wk, &L->wv};
            float *y3[3] = {sc->q, sc->k, sc->v};
            if (f->imat) ds8b__imat_acc_add(f->imat->attn_in + l * d, sc->xb, n, d);
            if ((rc = ds8b__matmul_multi(f->pool, w3, 3, sc->xb, n, y3, &sc->ws, f->flags, e))) return rc;
        }
        for (int64_t t = 0; t < n; t++) {
            float *q = sc->q + t * qd, *k = sc->k + t * kvd;
            int64_t pos = row_pos(f, t);
            ds8b__kv *kv = row_kv(f, t);
            if (L->q_norm) {
                for (int64_t h = 0; h < nh; h++) rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, eps);
                for (int64_t h = 0; h < nkv; h++) rmsnorm(k + h * hd, k + h * hd, L->k_norm, hd, eps);
            }
            for (int64_t h = 0; h < nh; h++)
                rope_head(q + h * hd, hd, pos, m->rope_inv_freq, m->rope_scale, m->rope_interleaved);
            for (int64_t h = 0; h < nkv; h++)
                rope_head(k + h * hd, hd, pos, m->rope_inv_freq, m->rope_scale, m->rope_interleaved);
            ds8b__kv_put(kv, kv->k, l, pos, k);
            ds8b__kv_put(kv, kv->v, l, pos, sc->v + t * kvd);
        }
        att_job job = {.f = f, .layer = l, .n_tiles = n_tiles};
        atomic_init(&job.next, 0);
        ds8b__pool_run(f->pool, attention_task, &job);
        if (f->imat) ds8b__imat_acc_add(f->imat->o_in + l * qd, sc->att, n, qd);
        if ((rc = MM(&L->wo, sc->att, sc->o))) return rc;
        for (int64_t i = 0; i < n * d; i++) sc->x[i] += sc->o[i];

        /* feed-forward block */
        for (int64_t t = 0; t < n; t++) rmsnorm(sc->xb + t * d, sc->x + t * d, L->ffn_norm, d, eps);
        {
            const ds8b__tensor *w2[2] = {&L->w_gate, &L->w_up};
            float *y2[2] = {sc->gate, sc->up};
            if (f->imat) ds8b__imat_acc_add(f->imat->ffn_in + l * d, sc->xb, n, d);
            if ((rc = ds8b__matmul_multi(f->pool, w2, 2, sc->xb, n, y2, &sc->ws, f->flags, e))) return rc;
        }
        for (int64_t i = 0; i < n * ff; i++) {
            float g = sc->gate[i];
            sc->gate[i] = g / (1.0f + expf(-g)) * sc->up[i];
        }
        if (f->imat) ds8b__imat_acc_add(f->imat->down_in + l * ff, sc->gate, n, ff);
        if ((rc = MM(&L->w_down, sc->gate, sc->o))) return rc;
        for (int64_t i = 0; i < n * d; i++) sc->x[i] += sc->o[i];
        if (f->cancel && atomic_load(f->cancel))
            return ds8b__seterr(e, DS8B_E_CANCELLED, "cancelled during the forward pass");
    }

    if (want_logits == 3) {
        for (int64_t t = 0; t < n; t++) rmsnorm(sc->xb + t * d, sc->x + t * d, m->out_norm, d, eps);
    } else if (want_logits == 2) {
        for (int64_t t = 0; t < n; t++) rmsnorm(sc->xb + t * d, sc->x + t * d, m->out_norm, d, eps);
        if ((rc = MM(&m->output, sc->xb, logits_all))) return rc;
        memcpy(sc->logits, logits_all + (size_t)(n - 1) * hp->n_vocab, (size_t)hp->n_vocab * 4);
    } else if (want_logits == 1) {
        rmsnorm(sc->xb, sc->x + (n - 1) * d, m->out_norm, d, eps);
        if ((rc = ds8b__matmul_ex(f->pool, &m->output, sc->xb, 1, sc->logits, &sc->ws, f->flags, e)))
            return rc;
    }
    if (f->imat) { /* the output matrix's input, for every row */
        for (int64_t t = 0; t < n; t++) rmsnorm(sc->xb + t * d, sc->x + t * d, m->out_norm, d, eps);
        ds8b__imat_acc_add(f->imat->out_in, sc->xb, n, d);
        f->imat->rows += n;
    }
    return DS8B_OK;
}
#undef MM

int ds8b__forward_logits(const ds8b__fwd *f, int64_t r0, int64_t nr, float *logits_all, ds8b__err *e) {
    const ds8b__hparams *hp = &f->m->hp;
    if (r0 < 0 || nr < 1 || r0 > f->n - nr)
        return ds8b__seterr(e, DS8B_E_INVALID, "forward logits: rows %lld..%lld of %lld", (long long)r0,
                            (long long)(r0 + nr), (long long)f->n);
    return ds8b__matmul_ex(f->pool, &f->m->output, f->sc->xb + (size_t)r0 * (size_t)hp->n_embd, nr,
                           logits_all + (size_t)r0 * (size_t)hp->n_vocab, &f->sc->ws, f->flags, e);
}

int ds8b__forward(ds8b_session *s, const int32_t *ids, int64_t n, int64_t pos, int want_logits,
                  float *logits_all, ds8b__err *e) {
    ds8b__fwd f = {0};
    f.m = s->model;
    f.pool = s->pool;
    f.sc = &s->sc;
    f.n = n;
    f.ids = ids;
    f.kv = &s->kv;
    f.pos = pos;
    f.cancel = &s->cancel;
    f.imat = s->imat;
    return ds8b__forward_rows(&f, want_logits, logits_all, e);
}

/* ================================================================== */
/* Context shifting                                                    */
/* ================================================================== */
/* Moves count cached positions from `from` to `to` (to < from) in every
 * layer, re-rotating the keys by (to - from) so they read as if computed
 * at their new positions. RoPE is a rotation, so R(p + d) = R(d) R(p): the
 * cached keys need only the extra rotation, with no cos/sin scale (it was
 * applied when they were computed). */
int ds8b__kv_shift(ds8b_session *s, int64_t from, int64_t to, int64_t count, ds8b__err *e) {
    const ds8b_model *m = s->model;
    const ds8b__hparams *hp = &m->hp;
    int64_t hd = hp->head_dim, delta = to - from;
    float *row = ds8b__xmalloc(DS8B_MEM_SCRATCH, (size_t)s->kv.kvd * sizeof(float), "KV shift row", e);
    if (!row) return DS8B_E_NOMEM;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        for (int64_t i = 0; i < count; i++) {
            ds8b__kv_get(&s->kv, s->kv.k, l, from + i, row);
            for (int64_t h = 0; h < hp->n_head_kv; h++)
                rope_head(row + h * hd, hd, delta, m->rope_inv_freq, 1.0f, m->rope_interleaved);
            ds8b__kv_put(&s->kv, s->kv.k, l, to + i, row);
            memmove(kv_row(&s->kv, s->kv.v, l, to + i), kv_row(&s->kv, s->kv.v, l, from + i), s->kv.row_bytes);
        }
    }
    ds8b__free(row);
    return DS8B_OK;
}
