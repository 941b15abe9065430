/*
 * attn.c -- causal attention over the KV cache, blocked flash-attention
 * style, and the plain-C (scalar level) versions of its four primitives.
 *
 * One call serves a tile: n_tok query tokens x n_head query heads that
 * share one KV head (a GQA group). The positions 0..max(pos) are walked
 * in fixed blocks of DS8B_ATT_BLOCK starting at multiples of it; per block
 * the K and V rows are converted to f32 once for the whole tile (so every
 * row load serves all the tile's heads and tokens), then
 *
 *   S = Q K^T            (the level's scores kernel, 4 rows at a time)
 *   online softmax       (per query row: running max m, running sum l,
 *                         rescale factor alpha = 2^(m_old - m_new))
 *   A = alpha A + P V    (the level's pv kernel)
 *
 * and at the end out = A / l. Scores are kept in base 2 (q is scaled by
 * log2(e) / sqrt(head_dim) up front) so the exponential is an exp2. No
 * n x n matrix exists: scratch is O(rows x head_dim + block x head_dim).
 *
 * Determinism: a query row's arithmetic depends only on its own data and
 * position, never on which rows share its tile. The block grid is fixed
 * by absolute position; each score is a fixed-order dot; positions past
 * a row's own are masked to p = 0 (and a block past its position leaves
 * it untouched: alpha = 1, P = 0, which adds exact zeros to A for finite
 * V). So a token's output is bit-identical whether it is decoded alone,
 * verified with k others (speculation), batched with other sequences or
 * computed by any thread of any pool size.
 */
#include "kernels/kernels.h"
#include "kernels/kern_impl.h"

#include <math.h>

#define B DS8B_ATT_BLOCK

static inline int64_t up4(int64_t x) { return (x + 3) & ~(int64_t)3; }
static inline int64_t up16(int64_t x) { return (x + 15) & ~(int64_t)15; }

int64_t ds8b__attn_tile_tokens(int64_t n_head_group) {
    int64_t t = DS8B_ATT_ROWS / (n_head_group > 0 ? n_head_group : 1);
    return t < 1 ? 1 : t;
}

static int64_t max_rows(int64_t g) {
    int64_t r = ds8b__attn_tile_tokens(g) * g;
    return up4(r);
}

bool ds8b__attn_scratch_floats(int64_t hd, int64_t n_head_group, size_t *floats) {
    if (hd <= 0 || hd > (1 << 20) || n_head_group <= 0 || n_head_group > (1 << 20)) return false;
    size_t ld = (size_t)up16(hd), r = (size_t)max_rows(n_head_group), a, b;
    /* Q and A (r x ld), P (r x B), K and V (B x ld), m, l, alpha (r) */
    if (!ds8b__mul_ok(r, 2 * ld + B + 3, &a) || !ds8b__mul_ok((size_t)B, 2 * ld, &b)) return false;
    *floats = a + b + 16; /* 16: room to align the start to 64 bytes */
    return *floats >= a;
}

/* ------------------------------------------------------------------ */
/* Scalar primitives (the reference)                                   */
/* ------------------------------------------------------------------ */
/* Values off..off+hd-1 of one cached row, in f32. */
static void load_row_ref(int type, const uint8_t *row, int64_t off, int64_t hd, float *dst) {
    switch (type) {
    case DS8B_KV_F32: memcpy(dst, (const float *)row + off, (size_t)hd * sizeof(float)); break;
    case DS8B_KV_F16:
        for (int64_t i = 0; i < hd; i++) dst[i] = ds8b__f16_to_f32(((const uint16_t *)row)[off + i]);
        break;
    default: {
        const ds8b__blk_q8_0 *blk = (const ds8b__blk_q8_0 *)row;
        for (int64_t i = 0; i < hd; i++) {
            const ds8b__blk_q8_0 *b = &blk[(off + i) / 32];
            dst[i] = ds8b__f16_to_f32(b->d) * (float)b->qs[(off + i) % 32];
        }
    }
    }
}

void ds8b__attn_load_ref(int type, const uint8_t *src, size_t stride, int64_t off, int64_t hd, int64_t nc,
                         float *dst, int64_t ld) {
    int64_t nc4 = up4(nc);
    for (int64_t c = 0; c < nc4; c++) {
        float *d = dst + c * ld;
        if (c < nc) {
            load_row_ref(type, src + (size_t)c * stride, off, hd, d);
            for (int64_t i = hd; i < ld; i++) d[i] = 0.0f;
        } else {
            for (int64_t i = 0; i < ld; i++) d[i] = 0.0f;
        }
    }
}

static void scores_ref(const float *Q, const float *K, int64_t ld, int64_t nr, int64_t nc, float *S,
                       int64_t lds) {
    for (int64_t r = 0; r < nr; r++)
        for (int64_t c = 0; c < nc; c++) {
            const float *q = Q + r * ld, *k = K + c * ld;
            float s = 0.0f;
            for (int64_t i = 0; i < ld; i++) s += q[i] * k[i];
            S[r * lds + c] = s;
        }
}

static float softmax_ref(float *s, int nv, float *m, float *l) {
    float mb = -INFINITY;
    for (int c = 0; c < nv; c++)
        if (s[c] > mb) mb = s[c];
    float mn = *m > mb ? *m : mb;
    float alpha = exp2f(*m - mn), sum = 0.0f;
    for (int c = 0; c < B; c++) {
        float p = c < nv ? exp2f(s[c] - mn) : 0.0f;
        s[c] = p;
        sum += p;
    }
    *l = *l * alpha + sum;
    *m = mn;
    return alpha;
}

static void pv_ref(float *A, const float *alpha, const float *P, int64_t lds, const float *V, int64_t ld,
                   int64_t nr, int64_t nc) {
    for (int64_t r = 0; r < nr; r++) {
        float *a = A + r * ld;
        for (int64_t i = 0; i < ld; i++) a[i] *= alpha[r];
        for (int64_t c = 0; c < nc; c++) {
            float p = P[r * lds + c];
            const float *v = V + c * ld;
            for (int64_t i = 0; i < ld; i++) a[i] += p * v[i];
        }
    }
}

void ds8b__attn_fill_scalar(ds8b__attn_ops *o) {
    o->load = ds8b__attn_load_ref;
    o->scores = scores_ref;
    o->softmax = softmax_ref;
    o->pv = pv_ref;
}

/* ------------------------------------------------------------------ */
/* The driver                                                          */
/* ------------------------------------------------------------------ */
void ds8b__attention(const ds8b__attn_args *a, float *ws) {
    const ds8b__attn_ops *op = &ds8b__kops_get()->attn;
    int64_t hd = a->hd, ld = up16(hd), G = a->n_head, T = a->n_tok, R = T * G, R4 = up4(R);
    /* 64-byte alignment for the level's loads */
    float *Q = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    float *A = Q + R4 * ld, *P = A + R4 * ld, *K = P + R4 * B, *V = K + (int64_t)B * ld;
    float *M = V + (int64_t)B * ld, *L = M + R4, *al = L + R4;
    float qs = (float)(1.4426950408889634 / sqrt((double)hd));
    int64_t pmax = 0;
    for (int64_t t = 0; t < T; t++)
        if (a->pos[t] > pmax) pmax = a->pos[t];
    for (int64_t r = 0; r < R4; r++) {
        float *q = Q + r * ld;
        if (r < R) {
            const float *src = a->q + (r / G) * a->ldq + (r % G) * hd;
            for (int64_t i = 0; i < hd; i++) q[i] = src[i] * qs;
            for (int64_t i = hd; i < ld; i++) q[i] = 0.0f;
        } else {
            memset(q, 0, (size_t)ld * sizeof(float));
        }
        memset(A + r * ld, 0, (size_t)ld * sizeof(float));
        M[r] = -INFINITY;
        L[r] = 0.0f;
    }
    for (int64_t b0 = 0; b0 <= pmax; b0 += B) {
        int64_t nc = pmax + 1 - b0 < B ? pmax + 1 - b0 : B;
        op->load(a->kv_type, a->k + (size_t)b0 * a->stride, a->stride, a->off, hd, nc, K, ld);
        op->load(a->kv_type, a->v + (size_t)b0 * a->stride, a->stride, a->off, hd, nc, V, ld);
        op->scores(Q, K, ld, R4, up4(nc), P, B);
        for (int64_t r = 0; r < R4; r++) {
            int64_t p = r < R ? a->pos[r / G] : -1;
            if (p >= b0) {
                int nv = (int)(p - b0 + 1 < nc ? p - b0 + 1 : nc);
                al[r] = op->softmax(P + r * B, nv, &M[r], &L[r]);
            } else {
                al[r] = 1.0f;
                memset(P + r * B, 0, B * sizeof(float));
            }
        }
        op->pv(A, al, P, B, V, ld, R4, nc);
    }
    for (int64_t r = 0; r < R; r++) {
        float inv = 1.0f / L[r], *o = a->out + (r / G) * a->ldo + (r % G) * hd;
        const float *s = A + r * ld;
        for (int64_t i = 0; i < hd; i++) o[i] = s[i] * inv;
    }
}
