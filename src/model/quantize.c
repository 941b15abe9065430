/*
 * quantize.c -- turning a float model into a quantized one, in memory
 * (ds8b_model_quantize) or streamed to a GGUF file (ds8b_quantize).
 *
 * Scheme policy (docs/quantization.md):
 *   f32, f16, bf16  every matrix in that type
 *   q8_0            every matrix Q8_0, embeddings and output included
 *   q4_0            every matrix Q4_0; the output matrix Q6_K
 *   q4_k_m          Q4_K; attn_v and ffn_down Q6_K in layers where
 *                   i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2; output Q6_K
 *   w4a16           every layer matrix and the embeddings W4A16 (group 32,
 *                   f16 scale and min, float activations); output Q8_0
 *   q5_0            every matrix Q5_0; output Q6_K
 *   q5_k_m          Q5_K; attn_v and ffn_down Q6_K in the q4_k_m layers; output Q6_K
 *   q6_k            every matrix Q6_K
 *   q3_k_m          Q3_K; attn_v Q5_K in layers 0-1, else Q4_K; ffn_down Q5_K
 *                   below n/16, else Q4_K; attn_output Q4_K; output Q6_K
 *   q2_k            Q2_K; attn_v Q4_K (Q3_K with < 4 query heads per KV head);
 *                   ffn_down, attn_output Q3_K; output Q6_K
 * "The output matrix" is lm_head, or the embeddings when they are tied.
 * An importance matrix on the params (ds8b_params_set_imatrix) gives each
 * quantized matrix with an entry of its GGUF name per-column weights for
 * the error-minimising search (model/imatrix.h).
 * Norm weights stay f32.
 *
 * GGUF files follow llama.cpp's converter: its tensor names and metadata
 * keys, Llama Q/K rows permuted for adjacent-pair RoPE, Llama 3 RoPE
 * scaling as a rope_freqs tensor. W4A16 tensors are stored as Q4_1 blocks
 * (the same bytes) with the key ds8b.w4a16 = true, so llama.cpp loads them
 * as Q4_1 and libds8b restores the float-activation kernels.
 */
#include "model/model.h"

#include "formats/gguf.h"
#include "model/imatrix.h"
#include "quant/quant.h"
#include "session/params.h"
#include "threads/pool.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct scheme_info {
    const char *name;
    int base;       /* type of most matrices */
    int output;     /* type of the output matrix */
    int embd;       /* type of the embeddings when not tied */
    int mix;        /* MIX_*: per-role exceptions */
    int ftype;      /* llama.cpp general.file_type */
} scheme_info;

enum {
    MIX_NONE = 0,
    MIX_K_M,  /* q4_k_m, q5_k_m: attn_v and ffn_down Q6_K in the more_bits() layers */
    MIX_Q3KM, /* q3_k_m: attn_v Q5_K in layers 0-1 else Q4_K; ffn_down Q5_K below n/16 else Q4_K;
                 attn_output Q4_K */
    MIX_Q2K,  /* q2_k: attn_v Q4_K (Q3_K without grouped-query attention); ffn_down and
                 attn_output Q3_K */
};

static const scheme_info k_schemes[] = {
    {"f32", DS8B_T_F32, DS8B_T_F32, DS8B_T_F32, MIX_NONE, 0},
    {"f16", DS8B_T_F16, DS8B_T_F16, DS8B_T_F16, MIX_NONE, 1},
    {"bf16", DS8B_T_BF16, DS8B_T_BF16, DS8B_T_BF16, MIX_NONE, 32},
    {"q8_0", DS8B_T_Q8_0, DS8B_T_Q8_0, DS8B_T_Q8_0, MIX_NONE, 7},
    {"q4_0", DS8B_T_Q4_0, DS8B_T_Q6_K, DS8B_T_Q4_0, MIX_NONE, 2},
    {"q4_k_m", DS8B_T_Q4_K, DS8B_T_Q6_K, DS8B_T_Q4_K, MIX_K_M, 15},
    {"w4a16", DS8B_T_W4A16, DS8B_T_Q8_0, DS8B_T_W4A16, MIX_NONE, 3},
    /* llama.cpp's mixes of the same names (src/llama-quant.cpp), so sizes compare */
    {"q5_0", DS8B_T_Q5_0, DS8B_T_Q6_K, DS8B_T_Q5_0, MIX_NONE, 8},
    {"q5_k_m", DS8B_T_Q5_K, DS8B_T_Q6_K, DS8B_T_Q5_K, MIX_K_M, 17},
    {"q6_k", DS8B_T_Q6_K, DS8B_T_Q6_K, DS8B_T_Q6_K, MIX_NONE, 18},
    {"q3_k_m", DS8B_T_Q3_K, DS8B_T_Q6_K, DS8B_T_Q3_K, MIX_Q3KM, 12},
    {"q2_k", DS8B_T_Q2_K, DS8B_T_Q6_K, DS8B_T_Q2_K, MIX_Q2K, 10},
};

const char *ds8b__scheme_list(void) {
    return "f32, f16, bf16, q8_0, q6_k, q5_k_m, q5_0, q4_k_m, q4_0, q3_k_m, q2_k, w4a16";
}

static const scheme_info *find_scheme(const char *name) {
    for (size_t i = 0; i < sizeof k_schemes / sizeof k_schemes[0]; i++)
        if (strcmp(k_schemes[i].name, name) == 0) return &k_schemes[i];
    return NULL;
}

static bool more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* Roles of the matrices of a layer, in the order they are written. */
enum { R_Q, R_K, R_V, R_O, R_GATE, R_UP, R_DOWN, R__N };
static const char *const k_role_gguf[R__N] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                              "ffn_gate", "ffn_up", "ffn_down"};

static const ds8b__tensor *layer_mat(const ds8b__layer *L, int r) {
    const ds8b__tensor *t[R__N] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return t[r];
}

/* gqa: query heads per key/value head (the q2_k attn_v rule). */
static int type_for(const scheme_info *s, int role, int64_t layer, int64_t n_layer, int64_t gqa,
                    const ds8b__tensor *src) {
    int t = s->base;
    if (s->mix == MIX_K_M && (role == R_V || role == R_DOWN) && more_bits(layer, n_layer)) t = DS8B_T_Q6_K;
    if (s->mix == MIX_Q3KM) {
        if (role == R_V) t = layer < 2 ? DS8B_T_Q5_K : DS8B_T_Q4_K;
        else if (role == R_DOWN) t = layer < n_layer / 16 ? DS8B_T_Q5_K : DS8B_T_Q4_K;
        else if (role == R_O) t = DS8B_T_Q4_K;
    }
    if (s->mix == MIX_Q2K) {
        if (role == R_V) t = gqa >= 4 ? DS8B_T_Q4_K : DS8B_T_Q3_K;
        else if (role == R_DOWN || role == R_O) t = DS8B_T_Q3_K;
    }
    /* a row that is not a whole number of blocks falls back to a type that fits */
    const ds8b__type_traits *ti = ds8b__type_info(t);
    if (src->ne[0] % ti->block_elems) t = src->ne[0] % 32 ? DS8B_T_F16 : DS8B_T_Q8_0;
    return t;
}

/* Type a scheme gives a matrix: role 0..6 for the layer matrices (q, k, v,
 * o, gate, up, down), 7 for the embeddings, 8 for the output matrix; -1
 * for an unknown scheme. Assumes grouped-query attention with >= 4 query
 * heads per KV head (both DeepSeek 8B models and the demo models). */
int ds8b__scheme_matrix_type(const char *scheme, int role, int64_t layer, int64_t n_layer, int64_t cols, bool tied) {
    const scheme_info *s = find_scheme(scheme);
    if (!s) return -1;
    ds8b__tensor t = {0};
    t.ne[0] = cols;
    if (role == 7) return tied ? s->output : s->embd;
    if (role == 8) return s->output;
    return type_for(s, role, layer, n_layer, 4, &t);
}

/* ================================================================== */
/* Row conversion, parallel over rows                                  */
/* ================================================================== */
typedef struct conv_job {
    const ds8b__tensor *src;
    int dst_type;
    uint8_t *dst;          /* rows of dst_type */
    int64_t row0, nrows;   /* which source rows */
    int64_t head_dim;      /* > 0: permute rows within heads for GGUF llama Q/K */
    const float *colw;     /* (cols) importance of each column (imatrix), or NULL */
    float *tmp;            /* (nth, cols) */
    int rc;
} conv_job;

static void conv_task(void *ctx, int ith, int nth) {
    conv_job *j = ctx;
    int64_t cols = j->src->ne[0];
    size_t srb, drb;
    ds8b__row_bytes(j->src->type, cols, &srb);
    ds8b__row_bytes(j->dst_type, cols, &drb);
    float *tmp = j->tmp + (size_t)ith * (size_t)cols;
    for (int64_t r = ith; r < j->nrows; r += nth) {
        int64_t out_row = j->row0 + r, in_row = out_row;
        if (j->head_dim > 0) {
            /* GGUF row (h, 2i + p) comes from HF row (h, p * half + i) */
            int64_t hd = j->head_dim, half = hd / 2, h = out_row / hd, w = out_row % hd;
            in_row = h * hd + (w % 2) * half + w / 2;
        }
        ds8b__dequant_row(j->src->type, (const uint8_t *)j->src->data + (size_t)in_row * srb, tmp, cols);
        uint8_t *d = j->dst + (size_t)r * drb;
        if (j->dst_type == DS8B_T_F32) memcpy(d, tmp, (size_t)cols * 4);
        else if (j->dst_type == DS8B_T_F16)
            for (int64_t c = 0; c < cols; c++) ((uint16_t *)d)[c] = ds8b__f32_to_f16(tmp[c]);
        else if (j->dst_type == DS8B_T_BF16)
            for (int64_t c = 0; c < cols; c++) ((uint16_t *)d)[c] = ds8b__f32_to_bf16(tmp[c]);
        else if (ds8b__quant_row_w(j->dst_type, tmp, j->colw, d, cols) != 0)
            j->rc = DS8B_E_UNSUPPORTED;
    }
}

/* Converts nrows rows starting at row0 of src into dst. */
static int convert_rows(ds8b__pool *pool, const ds8b__tensor *src, int dst_type, int64_t row0, int64_t nrows,
                        int64_t permute_hd, const float *colw, uint8_t *dst, float *tmp, ds8b__err *e) {
    if (src->layout != DS8B_LAYOUT_ROWS) { /* repacked at load: convert a row-major copy */
        ds8b__tensor u;
        int rc = ds8b__tensor_rowmajor(src, &u, e);
        if (!rc) rc = convert_rows(pool, &u, dst_type, row0, nrows, permute_hd, colw, dst, tmp, e);
        ds8b__free(u.owned);
        return rc;
    }
    if (src->type == dst_type && permute_hd == 0) {
        size_t rb;
        ds8b__row_bytes(src->type, src->ne[0], &rb);
        memcpy(dst, (const uint8_t *)src->data + (size_t)row0 * rb, (size_t)nrows * rb);
        return DS8B_OK;
    }
    conv_job j = {src, dst_type, dst, row0, nrows, permute_hd, colw, tmp, 0};
    ds8b__pool_run(pool, conv_task, &j);
    if (j.rc)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "tensor %s: cannot convert %s to %s", src->name ? src->name : "?",
                            ds8b__type_info(src->type)->name, ds8b__type_info(dst_type)->name);
    return DS8B_OK;
}

/* Drops the source pages of a converted tensor from this process's
 * resident set (the mapping is read-only and file-backed, so they are
 * re-read from the file if touched again): quantizing streams the float
 * model through memory instead of accumulating all of it in RSS. */
static void release_source(const ds8b__tensor *t) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || !t->data || t->owned) return;
    uintptr_t a = ((uintptr_t)t->data + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t b = ((uintptr_t)t->data + t->nbytes) & ~((uintptr_t)pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Page-aligned part of [p, p+n), for madvise. */
static bool page_range(const void *p, size_t n, bool inner, void **a, size_t *len) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || !p || !n) return false;
    uintptr_t m = (uintptr_t)pg - 1, s = (uintptr_t)p, e = s + n;
    uintptr_t lo = inner ? (s + m) & ~m : s & ~m, hi = inner ? e & ~m : (e + m) & ~m;
    if (hi <= lo) return false;
    *a = (void *)lo;
    *len = hi - lo;
    return true;
}
/* Asks the kernel to start reading rows [row0, row0+nr) of a mapped
 * source now, so the read overlaps the conversion of the rows before. */
static void prefetch_rows(const ds8b__tensor *t, int64_t row0, int64_t nr) {
    size_t rb;
    void *a;
    size_t len;
    if (t->owned || !ds8b__row_bytes(t->type, t->ne[0], &rb)) return;
    if (page_range((const uint8_t *)t->data + (size_t)row0 * rb, (size_t)nr * rb, false, &a, &len))
        madvise(a, len, MADV_WILLNEED);
}
/* Drops converted rows from the resident set (re-read from the file if
 * touched again). */
static void release_rows(const ds8b__tensor *t, int64_t row0, int64_t nr) {
    size_t rb;
    void *a;
    size_t len;
    if (t->owned || !ds8b__row_bytes(t->type, t->ne[0], &rb)) return;
    if (page_range((const uint8_t *)t->data + (size_t)row0 * rb, (size_t)nr * rb, true, &a, &len))
        madvise(a, len, MADV_DONTNEED);
}

/* ------------------------------------------------------------------ */
/* A writer thread: the file is written while the next chunk converts.  */
/* ------------------------------------------------------------------ */
typedef struct wqueue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ds8b__gguf_writer *w;
    /* one pending job: tensor index, buffer, length */
    bool pending, quit, running;
    int64_t ti;
    const void *buf;
    size_t len;
    int rc;          /* first error of the writer thread */
    ds8b__err err;
} wqueue;

static void *wq_main(void *arg) {
    wqueue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->pending && !q->quit) pthread_cond_wait(&q->cv, &q->mu);
        if (!q->pending && q->quit) break;
        int64_t ti = q->ti;
        const void *buf = q->buf;
        size_t len = q->len;
        bool failed = q->rc != 0;
        pthread_mutex_unlock(&q->mu);
        int rc = failed ? 0 : ds8b__gguf_writer_write_tensor_data(q->w, ti, buf, len, &q->err);
        pthread_mutex_lock(&q->mu);
        if (rc && !q->rc) q->rc = rc;
        q->pending = false;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}
/* Waits until the writer is idle; returns its first error. */
static int wq_wait(wqueue *q) {
    pthread_mutex_lock(&q->mu);
    while (q->pending) pthread_cond_wait(&q->cv, &q->mu);
    int rc = q->rc;
    pthread_mutex_unlock(&q->mu);
    return rc;
}
/* Hands a buffer to the writer (after wq_wait: it is idle). Without a
 * thread, writes here. */
static int wq_put(wqueue *q, int64_t ti, const void *buf, size_t len, ds8b__err *e) {
    if (!q->running) return ds8b__gguf_writer_write_tensor_data(q->w, ti, buf, len, e);
    pthread_mutex_lock(&q->mu);
    q->ti = ti;
    q->buf = buf;
    q->len = len;
    q->pending = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return DS8B_OK;
}
static void wq_stop(wqueue *q) {
    if (!q->running) return;
    pthread_mutex_lock(&q->mu);
    q->quit = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* The importance of each column of tensor `name` (cols of them) from the
 * importance matrix of p into w; *found tells whether it has the tensor.
 * An entry of another width is an error (the imatrix of another model). */
static int imatrix_columns(const ds8b_params *p, const char *name, int64_t cols, float *w, bool *found,
                           ds8b__err *e) {
    *found = false;
    const ds8b_imatrix *im = p ? p->imatrix : NULL;
    const ds8b__imat_ent *ent = ds8b__imatrix_find(im, name);
    if (!ent) return DS8B_OK;
    if (ent->n != cols)
        return ds8b__seterr(e, DS8B_E_MISMATCH,
                            "importance matrix entry '%s' has %lld columns, the tensor %lld (an imatrix of another model?)",
                            name, (long long)ent->n, (long long)cols);
    ds8b__imatrix_weights(ent, w);
    *found = true;
    return DS8B_OK;
}
/* Quantized types use an importance matrix; float ones do not. */
static bool uses_imatrix(int type) { return type != DS8B_T_F32 && type != DS8B_T_F16 && type != DS8B_T_BF16; }

static int report(const ds8b_params *p, double frac, const char *stage, ds8b__err *e) {
    if (p && p->progress && p->progress(p->progress_user, frac, stage))
        return ds8b__seterr(e, DS8B_E_CANCELLED, "cancelled by the progress callback at %s", stage);
    return DS8B_OK;
}

static int pool_for(const ds8b_params *p, ds8b__pool **pool, ds8b__err *e) {
    int nt = p ? (int)p->i[DS8B_PARAM_N_THREADS] : 0;
    return ds8b__pool_create(nt, pool, e);
}

/* ================================================================== */
/* In memory                                                           */
/* ================================================================== */
static int quant_tensor_mem(ds8b__pool *pool, const ds8b_params *p, const char *gname, const ds8b__tensor *src,
                            int type, int64_t permute_hd, ds8b__tensor *dst, int64_t *n_imat, ds8b__err *e) {
    size_t rb, total;
    if (!ds8b__row_bytes(type, src->ne[0], &rb) || !ds8b__mul_ok(rb, (size_t)src->ne[1], &total))
        return ds8b__seterr(e, DS8B_E_INVALID, "tensor %s: rows of %lld do not fit type %s", src->name ? src->name : "?",
                            (long long)src->ne[0], ds8b__type_info(type)->name);
    uint8_t *buf = ds8b__xmalloc(DS8B_MEM_WEIGHTS, total, src->name ? src->name : "a quantized tensor", e);
    if (!buf) return DS8B_E_NOMEM;
    int nth = ds8b__pool_size(pool);
    float *tmp = ds8b__xmalloc(DS8B_MEM_SCRATCH, ((size_t)nth + 1) * (size_t)src->ne[0] * sizeof(float), "quantizer scratch", e);
    float *colw = tmp ? tmp + (size_t)nth * (size_t)src->ne[0] : NULL;
    bool have = false;
    int rc = tmp ? DS8B_OK : DS8B_E_NOMEM;
    if (!rc && uses_imatrix(type)) rc = imatrix_columns(p, gname, src->ne[0], colw, &have, e);
    if (have) (*n_imat)++;
    if (!rc) rc = convert_rows(pool, src, type, 0, src->ne[1], permute_hd, have ? colw : NULL, buf, tmp, e);
    ds8b__free(tmp);
    if (rc) {
        ds8b__free(buf);
        return rc;
    }
    memset(dst, 0, sizeof *dst);
    dst->type = type;
    dst->n_dims = 2;
    dst->ne[0] = src->ne[0];
    dst->ne[1] = src->ne[1];
    dst->data = buf;
    dst->owned = buf;
    dst->nbytes = total;
    dst->name = src->name ? ds8b__strdup(DS8B_MEM_WEIGHTS, src->name) : NULL;
    return DS8B_OK;
}

static float *copy_vec(const float *v, int64_t n) {
    if (!v) return NULL;
    float *c = ds8b__malloc(DS8B_MEM_WEIGHTS, (size_t)n * sizeof(float));
    if (c) memcpy(c, v, (size_t)n * sizeof(float));
    return c;
}

static int quantize_mem(const ds8b_model *src, const scheme_info *sch, const ds8b_params *p, ds8b_model *m,
                        ds8b__pool *pool, ds8b__err *e) {
    const ds8b__hparams *hp = &src->hp;
    m->hp = *hp;
    /* Llama weights get the row order GGUF files use (adjacent-pair RoPE),
     * so a model quantized in memory computes exactly what the same model
     * written to GGUF and loaded back computes. */
    int64_t permute_hd = hp->arch == DS8B_ARCH_LLAMA && !src->rope_interleaved ? hp->head_dim : 0;
    m->rope_interleaved = src->rope_interleaved || permute_hd > 0;
    m->output_is_embd = src->output_is_embd;
    m->tok = src->tok;
    atomic_fetch_add(&src->tok->refs, 1);
    m->path = ds8b__strdup(DS8B_MEM_OTHER, src->path ? src->path : "");
    m->scheme = ds8b__strdup(DS8B_MEM_OTHER, sch->name);
    if (src->chat_template && !(m->chat_template = ds8b__strdup(DS8B_MEM_TOKENIZER, src->chat_template)))
        return ds8b__seterr(e, DS8B_E_NOMEM, "chat template");
    m->layers = ds8b__calloc(DS8B_MEM_WEIGHTS, (size_t)hp->n_layer, sizeof *m->layers);
    /* zeroed before any early return: ds8b__model_destroy walks the table */
    if (!m->layers || !m->path || !m->scheme) return ds8b__seterr(e, DS8B_E_NOMEM, "model tables");
    int rc;
    int64_t n_imat = 0;
    int embd_type = src->output_is_embd ? sch->output : sch->embd;
    if ((rc = quant_tensor_mem(pool, p, "token_embd.weight", &src->tok_embd, embd_type, 0, &m->tok_embd, &n_imat, e)))
        return rc;
    if (!src->output_is_embd &&
        (rc = quant_tensor_mem(pool, p, "output.weight", &src->output, sch->output, 0, &m->output, &n_imat, e)))
        return rc;
    if (!(m->out_norm = copy_vec(src->out_norm, hp->n_embd))) return ds8b__seterr(e, DS8B_E_NOMEM, "norms");
    for (int64_t i = 0; i < hp->n_layer; i++) {
        const ds8b__layer *S = &src->layers[i];
        ds8b__layer *D = &m->layers[i];
        ds8b__tensor *dst[R__N] = {&D->wq, &D->wk, &D->wv, &D->wo, &D->w_gate, &D->w_up, &D->w_down};
        for (int r = 0; r < R__N; r++) {
            const ds8b__tensor *t = layer_mat(S, r);
            char gname[64];
            snprintf(gname, sizeof gname, "blk.%lld.%s.weight", (long long)i, k_role_gguf[r]);
            int ty = type_for(sch, r, i, hp->n_layer, hp->n_head / (hp->n_head_kv > 0 ? hp->n_head_kv : 1), t);
            if ((rc = quant_tensor_mem(pool, p, gname, t, ty, r == R_Q || r == R_K ? permute_hd : 0, dst[r], &n_imat, e)))
                return rc;
        }
        D->attn_norm = copy_vec(S->attn_norm, hp->n_embd);
        D->ffn_norm = copy_vec(S->ffn_norm, hp->n_embd);
        D->q_norm = copy_vec(S->q_norm, hp->head_dim);
        D->k_norm = copy_vec(S->k_norm, hp->head_dim);
        if (!D->attn_norm || !D->ffn_norm || (S->q_norm && (!D->q_norm || !D->k_norm)))
            return ds8b__seterr(e, DS8B_E_NOMEM, "norms");
        char st[64];
        snprintf(st, sizeof st, "layer %lld", (long long)i);
        if ((rc = report(p, (double)(i + 1) / (double)hp->n_layer, st, e))) return rc;
    }
    if (p && p->imatrix && p->imatrix->n > 0 && n_imat == 0 && sch->base != DS8B_T_F32 && sch->base != DS8B_T_F16 &&
        sch->base != DS8B_T_BF16)
        return ds8b__seterr(e, DS8B_E_MISMATCH, "the importance matrix has no entry for any matrix of this model");
    m->n_tensors = src->n_tensors;
    if ((rc = ds8b__model_finish(m, e))) return rc;
    /* keep any per-pair frequency divisors the source carried (GGUF rope_freqs) */
    memcpy(m->rope_inv_freq, src->rope_inv_freq, (size_t)(hp->head_dim / 2) * sizeof(float));
    m->rope_scale = src->rope_scale;
    return DS8B_OK;
}

DS8B_API int ds8b_model_quantize(const ds8b_model *src, const char *scheme, const ds8b_params *params,
                                 ds8b_model **out) {
    ds8b__err e = {0};
    int rc;
    const scheme_info *sch = scheme ? find_scheme(scheme) : NULL;
    if (!out) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_model_quantize: out is NULL");
    else if (!src || src->magic != DS8B_MODEL_MAGIC) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_model_quantize: invalid model handle");
    else if (params && params->magic != DS8B_PARAMS_MAGIC) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "invalid params handle");
    else if (!sch) rc = ds8b__seterr(&e, DS8B_E_INVALID, "unknown scheme '%s' (known: %s)", scheme ? scheme : "(null)", ds8b__scheme_list());
    else {
        *out = NULL;
        ds8b_model *m = NULL;
        ds8b__pool *pool = NULL;
        rc = ds8b__model_new(&m, &e);
        if (!rc) {
            m->log = src->log;
            ds8b__memscope *old = ds8b__memscope_enter(&m->mem);
            rc = pool_for(params, &pool, &e);
            if (!rc) rc = quantize_mem(src, sch, params, m, pool, &e);
            ds8b__pool_free(pool);
            ds8b__memscope_leave(old);
            if (rc) ds8b__model_destroy(m);
            else *out = m;
        }
    }
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

/* ================================================================== */
/* To a GGUF file                                                      */
/* ================================================================== */
typedef struct wtensor {
    char name[64];
    const ds8b__tensor *src;   /* a matrix, or NULL for an f32 vector */
    const float *vec;          /* f32 vector data */
    int64_t vec_n;
    int type;
    int64_t permute_hd;
} wtensor;

static int write_metadata(ds8b__gguf_writer *w, const ds8b_model *m, const scheme_info *sch, const char *name,
                          ds8b__err *e) {
    const ds8b__hparams *hp = &m->hp;
    const char *arch = hp->arch == DS8B_ARCH_QWEN3 ? "qwen3" : "llama";
    char k[128];
    int rc = 0;
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
#define TRY(x) if ((rc = (x))) return rc
    TRY(ds8b__gguf_writer_add_str(w, "general.architecture", arch, strlen(arch), e));
    TRY(ds8b__gguf_writer_add_str(w, "general.type", "model", 5, e));
    TRY(ds8b__gguf_writer_add_str(w, "general.name", name, strlen(name), e));
    TRY(ds8b__gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)hp->n_layer, e));
    TRY(ds8b__gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)hp->n_ctx_train, e));
    TRY(ds8b__gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)hp->n_embd, e));
    TRY(ds8b__gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)hp->n_ff, e));
    TRY(ds8b__gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)hp->n_head, e));
    TRY(ds8b__gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)hp->n_head_kv, e));
    TRY(ds8b__gguf_writer_add_f32(w, KEY("rope.freq_base"), (float)hp->rope_theta, e));
    TRY(ds8b__gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)hp->rms_eps, e));
    TRY(ds8b__gguf_writer_add_u32(w, KEY("attention.key_length"), (uint32_t)hp->head_dim, e));
    TRY(ds8b__gguf_writer_add_u32(w, KEY("attention.value_length"), (uint32_t)hp->head_dim, e));
    TRY(ds8b__gguf_writer_add_u32(w, KEY("vocab_size"), (uint32_t)hp->n_vocab, e));
    TRY(ds8b__gguf_writer_add_u32(w, KEY("rope.dimension_count"), (uint32_t)hp->head_dim, e));
    if (hp->rope_type == DS8B_ROPE_YARN) {
        TRY(ds8b__gguf_writer_add_str(w, KEY("rope.scaling.type"), "yarn", 4, e));
        TRY(ds8b__gguf_writer_add_f32(w, KEY("rope.scaling.factor"), (float)hp->rope_factor, e));
        TRY(ds8b__gguf_writer_add_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)hp->rope_orig_ctx, e));
        /* our attn_factor multiplies YaRN's own mscale on load */
        double ms = 0.1 * log(hp->rope_factor) + 1.0;
        TRY(ds8b__gguf_writer_add_f32(w, KEY("rope.scaling.attn_factor"), (float)(hp->yarn_attn_scale / ms), e));
    } else if (hp->rope_type == DS8B_ROPE_LINEAR) {
        TRY(ds8b__gguf_writer_add_str(w, KEY("rope.scaling.type"), "linear", 6, e));
        TRY(ds8b__gguf_writer_add_f32(w, KEY("rope.scaling.factor"), (float)hp->rope_factor, e));
    }
    TRY(ds8b__gguf_writer_add_u32(w, "general.file_type", (uint32_t)sch->ftype, e));
    TRY(ds8b__gguf_writer_add_u32(w, "general.quantization_version", 2, e));
    if (sch->base == DS8B_T_W4A16) TRY(ds8b__gguf_writer_add_bool(w, "ds8b.w4a16", true, e));

    /* tokenizer */
    const ds8b_tokenizer *tok = m->tok->tok;
    int32_t nv = ds8b__tok_n_vocab(tok);
    if (nv > hp->n_vocab)
        /* a GGUF's token list is the vocabulary of its embedding rows
         * (llama.cpp refuses the file otherwise); fewer tokens are padded */
        return ds8b__seterr(e, DS8B_E_INVALID,
                            "the tokenizer has %d tokens but the model's vocabulary (embedding rows) is %lld: a GGUF "
                            "needs a tokenizer that fits the model",
                            (int)nv, (long long)hp->n_vocab);
    if (nv < hp->n_vocab) nv = (int32_t)hp->n_vocab;
    const char **strs = ds8b__malloc(DS8B_MEM_OTHER, (size_t)nv * sizeof(char *));
    size_t *lens = ds8b__malloc(DS8B_MEM_OTHER, (size_t)nv * sizeof(size_t));
    int32_t *types = ds8b__malloc(DS8B_MEM_OTHER, (size_t)nv * sizeof(int32_t));
    char *pads = ds8b__malloc(DS8B_MEM_OTHER, (size_t)nv * 24);
    size_t nm = ds8b__tok_n_merges(tok);
    char **mstr = ds8b__malloc(DS8B_MEM_OTHER, (nm ? nm : 1) * sizeof(char *));
    if (!strs || !lens || !types || !pads || !mstr) {
        rc = ds8b__seterr(e, DS8B_E_NOMEM, "tokenizer metadata");
        goto tok_done;
    }
    memset(mstr, 0, (nm ? nm : 1) * sizeof(char *));
    for (int32_t i = 0; i < nv; i++) {
        if (!ds8b__tok_vocab_entry(tok, i, &strs[i], &lens[i], &types[i], pads + (size_t)i * 24, 24)) {
            int l = snprintf(pads + (size_t)i * 24, 24, "[PAD%d]", i);
            strs[i] = pads + (size_t)i * 24;
            lens[i] = (size_t)l;
            types[i] = 5;
        }
    }
    for (size_t i = 0; i < nm; i++) {
        const char *a, *b;
        size_t al, bl;
        if (!ds8b__tok_merge(tok, i, &a, &al, &b, &bl) || !(mstr[i] = ds8b__malloc(DS8B_MEM_OTHER, al + bl + 2))) {
            rc = ds8b__seterr(e, DS8B_E_NOMEM, "tokenizer merges");
            goto tok_done;
        }
        memcpy(mstr[i], a, al);
        mstr[i][al] = ' ';
        memcpy(mstr[i] + al + 1, b, bl);
        mstr[i][al + bl + 1] = 0;
    }
    const char *pre = ds8b__tok_pre_name(tok);
    if ((rc = ds8b__gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", 4, e))) goto tok_done;
    if ((rc = ds8b__gguf_writer_add_str(w, "tokenizer.ggml.pre", pre, strlen(pre), e))) goto tok_done;
    if ((rc = ds8b__gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", strs, lens, (uint64_t)nv, e))) goto tok_done;
    if ((rc = ds8b__gguf_writer_add_arr(w, "tokenizer.ggml.token_type", DS8B_GGUF_INT32, types, (uint64_t)nv, e)))
        goto tok_done;
    if ((rc = ds8b__gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)mstr, NULL, nm, e)))
        goto tok_done;
    if (ds8b__tok_bos(tok) >= 0 &&
        (rc = ds8b__gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)ds8b__tok_bos(tok), e)))
        goto tok_done;
    if (ds8b__tok_eos(tok) >= 0 &&
        (rc = ds8b__gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)ds8b__tok_eos(tok), e)))
        goto tok_done;
    if (ds8b__tok_pad(tok) >= 0 &&
        (rc = ds8b__gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)ds8b__tok_pad(tok), e)))
        goto tok_done;
    if ((rc = ds8b__gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", ds8b__tok_add_bos(tok), e))) goto tok_done;
    /* the tokenizer never inserts a separator (llama.cpp's converter writes false too) */
    if ((rc = ds8b__gguf_writer_add_bool(w, "tokenizer.ggml.add_sep_token", false, e))) goto tok_done;
    if ((rc = ds8b__gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false, e))) goto tok_done;
    if (ds8b__tok_has_nfc(tok) && (rc = ds8b__gguf_writer_add_bool(w, "ds8b.tokenizer.nfc", true, e))) goto tok_done;
    const char *tmpl = m->chat_template ? m->chat_template : ds8b__tok_chat_template(tok);
    if (tmpl && (rc = ds8b__gguf_writer_add_str(w, "tokenizer.chat_template", tmpl, strlen(tmpl), e))) goto tok_done;
tok_done:
    if (mstr)
        for (size_t i = 0; i < nm; i++) ds8b__free(mstr[i]);
    ds8b__free(mstr);
    ds8b__free(strs);
    ds8b__free(lens);
    ds8b__free(types);
    ds8b__free(pads);
    return rc;
#undef KEY
#undef TRY
}

static int gguf_type(int t) { return t == DS8B_T_W4A16 ? DS8B_T_Q4_1 : t; }

static int write_gguf(const ds8b_model *m, const scheme_info *sch, const char *out_path, const ds8b_params *p,
                      ds8b__pool *pool, ds8b__err *e) {
    const ds8b__hparams *hp = &m->hp;
    int64_t nt_max = 4 + hp->n_layer * 11;
    wtensor *wt = ds8b__xmalloc(DS8B_MEM_OTHER, (size_t)nt_max * sizeof *wt, "tensor plan", e);
    if (!wt) return DS8B_E_NOMEM;
    memset(wt, 0, (size_t)nt_max * sizeof *wt);
    int64_t n = 0;
    float *rope_ff = NULL, *tmp = NULL;
    uint8_t *chunk = NULL;
    ds8b__gguf_writer *w = NULL;
    int rc = DS8B_OK;
    bool permute = hp->arch == DS8B_ARCH_LLAMA && !m->rope_interleaved;
    wqueue wq;
    memset(&wq, 0, sizeof wq);
    pthread_t wq_thread;
    bool wq_inited = false;

    /* the plan: names, sources and types, in file order */
    wtensor *t = &wt[n++];
    snprintf(t->name, sizeof t->name, "token_embd.weight");
    t->src = &m->tok_embd;
    t->type = m->output_is_embd ? sch->output : sch->embd;
    t = &wt[n++];
    snprintf(t->name, sizeof t->name, "output_norm.weight");
    t->vec = m->out_norm;
    t->vec_n = hp->n_embd;
    if (!m->output_is_embd) {
        t = &wt[n++];
        snprintf(t->name, sizeof t->name, "output.weight");
        t->src = &m->output;
        t->type = sch->output;
    }
    if (hp->rope_type == DS8B_ROPE_NONE || hp->rope_type == DS8B_ROPE_LLAMA3) {
        /* frequencies that differ from the plain ones (Llama 3 scaling, or
         * a GGUF source's rope_freqs) go out as per-pair divisors */
        int64_t half = hp->head_dim / 2;
        ds8b__hparams plain = *hp;
        plain.rope_type = DS8B_ROPE_NONE;
        float base_scale;
        rope_ff = ds8b__xmalloc(DS8B_MEM_OTHER, (size_t)half * 2 * sizeof(float), "rope_freqs", e);
        if (!rope_ff) { rc = DS8B_E_NOMEM; goto done; }
        ds8b__rope_init(&plain, rope_ff + half, &base_scale);
        bool differs = false;
        for (int64_t i = 0; i < half; i++) {
            rope_ff[i] = rope_ff[half + i] / m->rope_inv_freq[i];
            if (rope_ff[i] != 1.0f) differs = true;
        }
        if (differs) {
            t = &wt[n++];
            snprintf(t->name, sizeof t->name, "rope_freqs.weight");
            t->vec = rope_ff;
            t->vec_n = half;
        }
    }
    for (int64_t i = 0; i < hp->n_layer; i++) {
        const ds8b__layer *L = &m->layers[i];
        const float *vecs[4] = {L->attn_norm, L->ffn_norm, L->q_norm, L->k_norm};
        const char *vnames[4] = {"attn_norm", "ffn_norm", "attn_q_norm", "attn_k_norm"};
        int64_t vn[4] = {hp->n_embd, hp->n_embd, hp->head_dim, hp->head_dim};
        for (int r = 0; r < R__N; r++) {
            t = &wt[n++];
            snprintf(t->name, sizeof t->name, "blk.%lld.%s.weight", (long long)i, k_role_gguf[r]);
            t->src = layer_mat(L, r);
            t->type = type_for(sch, r, i, hp->n_layer, hp->n_head / (hp->n_head_kv > 0 ? hp->n_head_kv : 1), t->src);
            if (permute && (r == R_Q || r == R_K)) t->permute_hd = hp->head_dim;
        }
        for (int v = 0; v < 4; v++) {
            if (!vecs[v]) continue;
            t = &wt[n++];
            snprintf(t->name, sizeof t->name, "blk.%lld.%s.weight", (long long)i, vnames[v]);
            t->vec = vecs[v];
            t->vec_n = vn[v];
        }
    }

    if ((rc = ds8b__gguf_writer_create(out_path, &w, e))) goto done;
    const char *base = m->path ? strrchr(m->path, '/') : NULL;
    const char *name = base && base[1] ? base + 1 : (m->path && *m->path ? m->path : "model");
    if ((rc = write_metadata(w, m, sch, name, e))) goto done;
    /* which matrices the importance matrix covers (checked before any data is written) */
    int64_t n_imat = 0;
    if (p && p->imatrix) {
        for (int64_t i = 0; i < n; i++) {
            if (!wt[i].src || !uses_imatrix(wt[i].type)) continue;
            const ds8b__imat_ent *ent = ds8b__imatrix_find(p->imatrix, wt[i].name);
            if (!ent) continue;
            if (ent->n != wt[i].src->ne[0]) {
                rc = ds8b__seterr(e, DS8B_E_MISMATCH,
                                  "importance matrix entry '%s' has %lld columns, the tensor %lld (an imatrix of another model?)",
                                  wt[i].name, (long long)ent->n, (long long)wt[i].src->ne[0]);
                goto done;
            }
            n_imat++;
        }
        if (n_imat == 0 && uses_imatrix(sch->base)) {
            rc = ds8b__seterr(e, DS8B_E_MISMATCH, "the importance matrix has no entry for any matrix of this model");
            goto done;
        }
        /* llama-quantize's keys */
        const ds8b_imatrix *im = p->imatrix;
        if (n_imat && ((rc = ds8b__gguf_writer_add_i32(w, "quantize.imatrix.entries_count", (int32_t)im->n, e)) ||
                       (rc = ds8b__gguf_writer_add_i32(w, "quantize.imatrix.chunks_count",
                                                       (int32_t)(im->chunk_count > INT32_MAX ? INT32_MAX : im->chunk_count), e)) ||
                       (im->dataset && (rc = ds8b__gguf_writer_add_str(w, "quantize.imatrix.dataset", im->dataset,
                                                                       strlen(im->dataset), e)))))
            goto done;
    }
    size_t total_bytes = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t ne[2];
        int nd;
        if (wt[i].src) {
            ne[0] = wt[i].src->ne[0];
            ne[1] = wt[i].src->ne[1];
            nd = 2;
        } else {
            ne[0] = wt[i].vec_n;
            nd = 1;
            wt[i].type = DS8B_T_F32;
        }
        if ((rc = ds8b__gguf_writer_add_tensor_info(w, wt[i].name, gguf_type(wt[i].type), nd, ne, NULL, e))) goto done;
        total_bytes += ds8b__gguf_writer_tensor_nbytes(w, i);
    }
    if ((rc = ds8b__gguf_writer_write_header(w, e))) goto done;

    /* stream the data, a few MiB at a time */
    int nth = ds8b__pool_size(pool);
    int64_t max_cols = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    if (hp->n_head * hp->head_dim > max_cols) max_cols = hp->n_head * hp->head_dim;
    const size_t chunk_cap = 16u << 20;
    tmp = ds8b__xmalloc(DS8B_MEM_SCRATCH, ((size_t)nth + 1) * (size_t)max_cols * sizeof(float), "quantizer scratch", e);
    float *colw = tmp ? tmp + (size_t)nth * (size_t)max_cols : NULL;
    /* two output buffers: one converting, one being written */
    chunk = ds8b__xmalloc(DS8B_MEM_SCRATCH, 2 * chunk_cap, "quantizer output buffers", e);
    if (!tmp || !chunk) { rc = DS8B_E_NOMEM; goto done; }
    wq.w = w;
    if (pthread_mutex_init(&wq.mu, NULL) == 0) {
        if (pthread_cond_init(&wq.cv, NULL) == 0) {
            wq_inited = true;
            wq.running = pthread_create(&wq_thread, NULL, wq_main, &wq) == 0;
        } else {
            pthread_mutex_destroy(&wq.mu);
        }
    }
    int cur = 0;
    size_t done_bytes = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!wt[i].src) {
            size_t nb = (size_t)wt[i].vec_n * sizeof(float);
            if ((rc = wq_wait(&wq))) goto done_err;
            if ((rc = wq_put(&wq, i, wt[i].vec, nb, e))) goto done;
            done_bytes += nb;
            continue;
        }
        const ds8b__tensor *src = wt[i].src;
        size_t rb;
        ds8b__row_bytes(wt[i].type, src->ne[0], &rb);
        bool have_w = false;
        if (uses_imatrix(wt[i].type) && (rc = imatrix_columns(p, wt[i].name, src->ne[0], colw, &have_w, e))) goto done;
        int64_t rows_per = (int64_t)(chunk_cap / rb);
        if (rows_per < 1) rows_per = 1;
        if (wt[i].permute_hd && rows_per > wt[i].permute_hd) rows_per -= rows_per % wt[i].permute_hd;
        prefetch_rows(src, 0, src->ne[1] < rows_per ? src->ne[1] : rows_per);
        for (int64_t r0 = 0; r0 < src->ne[1]; r0 += rows_per) {
            int64_t nr = src->ne[1] - r0 < rows_per ? src->ne[1] - r0 : rows_per;
            int64_t r1 = r0 + nr;
            if (r1 < src->ne[1]) prefetch_rows(src, r1, src->ne[1] - r1 < rows_per ? src->ne[1] - r1 : rows_per);
            else if (i + 1 < n && wt[i + 1].src) prefetch_rows(wt[i + 1].src, 0, 1);
            uint8_t *buf = chunk + (size_t)cur * chunk_cap;
            if ((rc = convert_rows(pool, src, wt[i].type, r0, nr, wt[i].permute_hd, have_w ? colw : NULL, buf, tmp, e)))
                goto done;
            release_rows(src, r0, nr);
            if ((rc = wq_wait(&wq))) goto done_err;
            if ((rc = wq_put(&wq, i, buf, (size_t)nr * rb, e))) goto done;
            cur ^= 1;
            done_bytes += (size_t)nr * rb;
            if ((rc = report(p, (double)done_bytes / (double)(total_bytes ? total_bytes : 1), wt[i].name, e))) goto done;
        }
        release_source(src);
    }
    if ((rc = wq_wait(&wq))) goto done_err;
    wq_stop(&wq);
    if (wq.running) pthread_join(wq_thread, NULL);
    wq.running = false;
    rc = ds8b__gguf_writer_finish(w, e);
    w = NULL;
    goto done;
done_err:
    *e = wq.err;
done:
    wq_stop(&wq);
    if (wq.running) pthread_join(wq_thread, NULL);
    if (wq_inited) {
        pthread_cond_destroy(&wq.cv);
        pthread_mutex_destroy(&wq.mu);
    }
    ds8b__gguf_writer_abort(w);
    ds8b__free(wt);
    ds8b__free(rope_ff);
    ds8b__free(tmp);
    ds8b__free(chunk);
    return rc;
}

DS8B_API int ds8b_quantize(const char *in_path, const char *out_path, const char *scheme, const ds8b_params *params) {
    ds8b__err e = {0};
    int rc;
    const scheme_info *sch = scheme ? find_scheme(scheme) : NULL;
    if (!in_path || !out_path || !*out_path) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_quantize: missing path");
    else if (params && params->magic != DS8B_PARAMS_MAGIC) rc = ds8b__seterr(&e, DS8B_E_MISUSE, "invalid params handle");
    else if (!sch) rc = ds8b__seterr(&e, DS8B_E_INVALID, "unknown scheme '%s' (known: %s)", scheme ? scheme : "(null)", ds8b__scheme_list());
    else {
        ds8b_model *m = NULL;
        rc = ds8b_model_load(in_path, params, &m);
        if (rc) return rc; /* message already set */
        ds8b__pool *pool = NULL;
        rc = pool_for(params, &pool, &e);
        if (!rc) rc = write_gguf(m, sch, out_path, params, pool, &e);
        ds8b__pool_free(pool);
        ds8b_model_free(m);
    }
    if (rc) ds8b__set_last_error(&e);
    return rc;
}
