/* model.c -- building, validating and freeing models; HF checkpoint loading. */
#include "model/model.h"

#include "formats/safetensors.h"
#include "tokenizer/tokenizer.h"
#include "grammar/grammar.h"

#include <math.h>
#include <stdio.h>

/* ================================================================== */
/* Construction and destruction                                        */
/* ================================================================== */
int ds8b__model_new(ds8b_model **out, ds8b__err *e) {
    *out = NULL;
    ds8b_model *m = ds8b__xmalloc(DS8B_MEM_OTHER, sizeof *m, "the model handle", e);
    if (!m) return DS8B_E_NOMEM;
    memset(m, 0, sizeof *m);
    m->magic = DS8B_MODEL_MAGIC;
    ds8b__memscope_init(&m->mem, NULL);
    atomic_init(&m->n_sessions, 0);
    *out = m;
    return DS8B_OK;
}

static void tensor_release(ds8b__tensor *t) {
    ds8b__free(t->owned);
    ds8b__free(t->name);
    memset(t, 0, sizeof *t);
}

ds8b__tokref *ds8b__tokref_new(ds8b_model *m, ds8b__err *e) {
    /* the holder is freed by whichever model lets go last: charge no model */
    ds8b__memscope *old = ds8b__memscope_enter(NULL);
    ds8b__tokref *tr = ds8b__xmalloc(DS8B_MEM_TOKENIZER, sizeof *tr, "tokenizer", e);
    ds8b__memscope_leave(old);
    if (!tr) return NULL;
    tr->tok = NULL;
    atomic_init(&tr->refs, 1);
    atomic_init(&tr->gtrie, NULL);
    ds8b__memscope_init(&tr->mem, &m->mem);
    return tr;
}

void ds8b__tokref_release(ds8b__tokref *r) {
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        ds8b__tok_free(r->tok);
        ds8b__vtrie_free(atomic_load(&r->gtrie));
        ds8b__free(r);
    }
}

void ds8b__model_destroy(ds8b_model *m) {
    if (!m) return;
    ds8b__memscope *old = ds8b__memscope_enter(&m->mem);
    if (m->layers) {
        for (int64_t i = 0; i < m->hp.n_layer; i++) {
            ds8b__layer *L = &m->layers[i];
            ds8b__free(L->attn_norm);
            ds8b__free(L->ffn_norm);
            ds8b__free(L->q_norm);
            ds8b__free(L->k_norm);
            tensor_release(&L->wq);
            tensor_release(&L->wk);
            tensor_release(&L->wv);
            tensor_release(&L->wo);
            tensor_release(&L->w_gate);
            tensor_release(&L->w_up);
            tensor_release(&L->w_down);
        }
        ds8b__free(m->layers);
    }
    if (!m->output_is_embd) tensor_release(&m->output);
    tensor_release(&m->tok_embd);
    ds8b__free(m->out_norm);
    ds8b__free(m->rope_inv_freq);
    /* a quantized copy may still hold the tokenizer: its frees must not
     * reach m's scope once m is gone */
    if (m->tok && m->tok->mem.parent == &m->mem) m->tok->mem.parent = NULL;
    ds8b__tokref_release(m->tok);
    ds8b__st_close(m->st);
    if (m->gguf && m->gguf_close) m->gguf_close(m->gguf);
    ds8b__free(m->path);
    ds8b__free(m->scheme);
    ds8b__free(m->chat_template);
    ds8b__memscope_leave(old);
    m->magic = 0;
    ds8b__free(m);
}

/* ================================================================== */
/* Validation helpers                                                  */
/* ================================================================== */
int ds8b__tensor_to_f32(const ds8b__tensor *t, int cat, float **out, ds8b__err *e) {
    *out = NULL;
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->ne[i];
    float *f = ds8b__xmalloc(cat, (size_t)n * sizeof(float), t->name ? t->name : "a tensor", e);
    if (!f) return DS8B_E_NOMEM;
    const uint16_t *h = t->data;
    switch (t->type) {
    case DS8B_T_F32: memcpy(f, t->data, (size_t)n * 4); break;
    case DS8B_T_F16: for (int64_t i = 0; i < n; i++) f[i] = ds8b__f16_to_f32(h[i]); break;
    case DS8B_T_BF16: for (int64_t i = 0; i < n; i++) f[i] = ds8b__bf16_to_f32(h[i]); break;
    default:
        ds8b__free(f);
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "tensor %s: type %s is not a float type",
                            t->name ? t->name : "?",
                            ds8b__type_info(t->type) ? ds8b__type_info(t->type)->name : "?");
    }
    *out = f;
    return DS8B_OK;
}

int ds8b__check_matrix(const ds8b__tensor *t, const char *name, int64_t cols, int64_t rows,
                       ds8b__err *e) {
    if (!t->data)
        return ds8b__seterr(e, DS8B_E_FORMAT, "tensor %s is missing", name);
    if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows)
        return ds8b__seterr(e, DS8B_E_FORMAT,
                            "tensor %s has shape [%lld, %lld] (n_dims %d), expected [%lld, %lld] from the config",
                            name, (long long)t->ne[1], (long long)t->ne[0], t->n_dims,
                            (long long)rows, (long long)cols);
    size_t rb, total;
    if (!ds8b__row_bytes(t->type, cols, &rb) || !ds8b__mul_ok(rb, (size_t)rows, &total) ||
        total != t->nbytes)
        return ds8b__seterr(e, DS8B_E_FORMAT, "tensor %s: %zu bytes do not hold [%lld, %lld] of type %s",
                            name, t->nbytes, (long long)rows, (long long)cols,
                            ds8b__type_info(t->type) ? ds8b__type_info(t->type)->name : "?");
    return DS8B_OK;
}

static int check_vec(const float *v, const char *name, ds8b__err *e) {
    if (!v) return ds8b__seterr(e, DS8B_E_FORMAT, "tensor %s is missing", name);
    return DS8B_OK;
}

/* ================================================================== */
/* RoPE tables                                                         */
/* ================================================================== */
static double yarn_corr_dim(double rot, double dim, double base, double max_pos) {
    return (dim * log(max_pos / (rot * 2.0 * M_PI))) / (2.0 * log(base));
}

void ds8b__rope_init(const ds8b__hparams *hp, float *inv_freq, float *scale) {
    int64_t half = hp->head_dim / 2;
    double dim = (double)hp->head_dim;
    *scale = 1.0f;
    for (int64_t i = 0; i < half; i++) {
        /* as transformers: base ** (arange(0, dim, 2) / dim) in float32 */
        float expo = (float)(2 * i) / (float)dim;
        float pos_freq = powf((float)hp->rope_theta, expo);
        inv_freq[i] = 1.0f / pos_freq;
    }
    if (hp->rope_type == DS8B_ROPE_LINEAR) {
        for (int64_t i = 0; i < half; i++) inv_freq[i] = (float)(inv_freq[i] / hp->rope_factor);
    } else if (hp->rope_type == DS8B_ROPE_LLAMA3) {
        double factor = hp->rope_factor, lo = hp->rope_low_freq, hi = hp->rope_high_freq;
        double orig = hp->rope_orig_ctx;
        double lo_wl = orig / lo, hi_wl = orig / hi;
        for (int64_t i = 0; i < half; i++) {
            float f = inv_freq[i];
            float wl = 2.0f * (float)M_PI / f;
            float r;
            if (wl > lo_wl) r = f / (float)factor;
            else if (wl < hi_wl) r = f;
            else {
                float smooth = ((float)orig / wl - (float)lo) / ((float)hi - (float)lo);
                r = (1.0f - smooth) * (f / (float)factor) + smooth * f;
            }
            inv_freq[i] = r;
        }
    } else if (hp->rope_type == DS8B_ROPE_YARN) {
        double factor = hp->rope_factor, base = hp->rope_theta;
        double orig = hp->rope_orig_ctx > 0 ? hp->rope_orig_ctx : (double)hp->n_ctx_train;
        double lo = floor(yarn_corr_dim(hp->yarn_beta_fast, dim, base, orig));
        double hi = ceil(yarn_corr_dim(hp->yarn_beta_slow, dim, base, orig));
        if (lo < 0) lo = 0;
        if (hi > dim - 1) hi = dim - 1;
        if (lo == hi) hi += 0.001;
        for (int64_t i = 0; i < half; i++) {
            float pos_freq = 1.0f / inv_freq[i];
            float extra = 1.0f / pos_freq;
            float inter = 1.0f / ((float)factor * pos_freq);
            float ramp = ((float)i - (float)lo) / (float)(hi - lo);
            if (ramp < 0) ramp = 0;
            if (ramp > 1) ramp = 1;
            float ext_factor = 1.0f - ramp;
            inv_freq[i] = inter * (1.0f - ext_factor) + extra * ext_factor;
        }
        *scale = (float)hp->yarn_attn_scale;
    }
}

/* ================================================================== */
/* Finishing a model                                                   */
/* ================================================================== */
static int64_t tensor_elems(const ds8b__tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->ne[i];
    return t->data ? n : 0;
}

int ds8b__model_finish(ds8b_model *m, ds8b__err *e) {
    const ds8b__hparams *hp = &m->hp;
    int64_t d = hp->n_embd, hd = hp->head_dim;
    int64_t qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
    int rc;
    if ((rc = ds8b__check_matrix(&m->tok_embd, "token embeddings", d, hp->n_vocab, e))) return rc;
    if (m->output_is_embd) m->output = m->tok_embd;
    if ((rc = ds8b__check_matrix(&m->output, "output (lm_head)", d, hp->n_vocab, e))) return rc;
    if ((rc = check_vec(m->out_norm, "final norm", e))) return rc;
    char nm[96];
    int64_t np = tensor_elems(&m->tok_embd) + (m->output_is_embd ? 0 : tensor_elems(&m->output)) + d;
    int64_t bytes = (int64_t)m->tok_embd.nbytes + (m->output_is_embd ? 0 : (int64_t)m->output.nbytes);
    for (int64_t i = 0; i < hp->n_layer; i++) {
        ds8b__layer *L = &m->layers[i];
#define MAT(field, cols, rows)                                                           \
    snprintf(nm, sizeof nm, "layer %lld " #field, (long long)i);                         \
    if ((rc = ds8b__check_matrix(&L->field, L->field.name ? L->field.name : nm, cols, rows, e))) \
        return rc;                                                                       \
    np += tensor_elems(&L->field);                                                       \
    bytes += (int64_t)L->field.nbytes;
        MAT(wq, d, qd)
        MAT(wk, d, kvd)
        MAT(wv, d, kvd)
        MAT(wo, qd, d)
        MAT(w_gate, d, hp->n_ff)
        MAT(w_up, d, hp->n_ff)
        MAT(w_down, hp->n_ff, d)
#undef MAT
        snprintf(nm, sizeof nm, "layer %lld attention norm", (long long)i);
        if ((rc = check_vec(L->attn_norm, nm, e))) return rc;
        snprintf(nm, sizeof nm, "layer %lld ffn norm", (long long)i);
        if ((rc = check_vec(L->ffn_norm, nm, e))) return rc;
        np += 2 * d;
        if (hp->arch == DS8B_ARCH_QWEN3) {
            snprintf(nm, sizeof nm, "layer %lld q_norm", (long long)i);
            if ((rc = check_vec(L->q_norm, nm, e))) return rc;
            snprintf(nm, sizeof nm, "layer %lld k_norm", (long long)i);
            if ((rc = check_vec(L->k_norm, nm, e))) return rc;
            np += 2 * hd;
        }
    }
    m->n_params = np;
    m->weight_bytes = bytes;
    ds8b__memscope *old = ds8b__memscope_enter(&m->mem);
    if (!m->rope_inv_freq)
        m->rope_inv_freq = ds8b__xmalloc(DS8B_MEM_WEIGHTS, (size_t)(hd / 2) * sizeof(float), "RoPE table", e);
    ds8b__memscope_leave(old);
    if (!m->rope_inv_freq) return DS8B_E_NOMEM;
    ds8b__rope_init(hp, m->rope_inv_freq, &m->rope_scale);
    const char *wt = ds8b__type_info(m->layers[0].wq.type)->name;
    snprintf(m->desc, sizeof m->desc, "%s %lldL %lldd %.2fB params %s",
             hp->arch == DS8B_ARCH_QWEN3 ? "qwen3" : "llama", (long long)hp->n_layer,
             (long long)d, (double)np / 1e9, m->scheme ? m->scheme : wt);
    return DS8B_OK;
}

/* ================================================================== */
/* Hugging Face checkpoint directories                                 */
/* ================================================================== */
static int take_matrix(ds8b__st *st, const char *name, ds8b__tensor *dst, ds8b__err *e) {
    const ds8b__tensor *t = ds8b__st_find(st, name);
    if (!t) return ds8b__seterr(e, DS8B_E_FORMAT, "tensor %s is missing from the checkpoint", name);
    if (t->type != DS8B_T_F32 && t->type != DS8B_T_F16 && t->type != DS8B_T_BF16)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "tensor %s: dtype %s is not supported", name,
                            ds8b__type_info(t->type) ? ds8b__type_info(t->type)->name : "?");
    *dst = *t;
    dst->owned = NULL;
    dst->name = ds8b__strdup(DS8B_MEM_WEIGHTS, name);
    if (!dst->name) return ds8b__seterr(e, DS8B_E_NOMEM, "tensor name");
    return DS8B_OK;
}

static int take_vec(ds8b__st *st, const char *name, int64_t n, float **dst, ds8b__err *e) {
    const ds8b__tensor *t = ds8b__st_find(st, name);
    if (!t) return ds8b__seterr(e, DS8B_E_FORMAT, "tensor %s is missing from the checkpoint", name);
    if (t->n_dims != 1 || t->ne[0] != n)
        return ds8b__seterr(e, DS8B_E_FORMAT, "tensor %s has %d dims [%lld], expected [%lld] from the config",
                            name, t->n_dims, (long long)t->ne[0], (long long)n);
    return ds8b__tensor_to_f32(t, DS8B_MEM_WEIGHTS, dst, e);
}

static int load_hf_inner(ds8b_model *m, const char *dir, ds8b__err *e) {
    int rc;
    char *cfg_path = ds8b__path_join(dir, "config.json");
    if (!cfg_path) return ds8b__seterr(e, DS8B_E_NOMEM, "path");
    char *json = NULL;
    size_t len = 0;
    rc = ds8b__read_file(cfg_path, 16u << 20, DS8B_MEM_OTHER, &json, &len, e);
    if (rc == DS8B_OK) rc = ds8b__hf_config_parse(json, len, cfg_path, &m->hp, e);
    ds8b__free(json);
    ds8b__free(cfg_path);
    if (rc) return rc;

    if ((rc = ds8b__st_open_dir(dir, &m->st, e))) return rc;
    ds8b__tokref *tr = ds8b__tokref_new(m, e);
    if (!tr) return DS8B_E_NOMEM;
    m->tok = tr;
    ds8b__memscope *old = ds8b__memscope_enter(&tr->mem);
    rc = ds8b__tok_load(dir, &tr->tok, e);
    ds8b__memscope_leave(old);
    if (rc) return rc;

    const ds8b__hparams *hp = &m->hp;
    m->layers = ds8b__xmalloc(DS8B_MEM_WEIGHTS, (size_t)hp->n_layer * sizeof *m->layers, "layer table", e);
    if (!m->layers) return DS8B_E_NOMEM;
    memset(m->layers, 0, (size_t)hp->n_layer * sizeof *m->layers);
    ds8b__st *st = m->st;
    if ((rc = take_matrix(st, "model.embed_tokens.weight", &m->tok_embd, e))) return rc;
    if ((rc = take_vec(st, "model.norm.weight", hp->n_embd, &m->out_norm, e))) return rc;
    if (hp->tie_embd || !ds8b__st_find(st, "lm_head.weight")) {
        if (!hp->tie_embd)
            return ds8b__seterr(e, DS8B_E_FORMAT,
                                "tensor lm_head.weight is missing and tie_word_embeddings is false");
        m->output_is_embd = true;
    } else if ((rc = take_matrix(st, "lm_head.weight", &m->output, e))) {
        return rc;
    }
    char nm[160];
    for (int64_t i = 0; i < hp->n_layer; i++) {
        ds8b__layer *L = &m->layers[i];
#define NAME(suffix) (snprintf(nm, sizeof nm, "model.layers.%lld.%s", (long long)i, suffix), nm)
        if ((rc = take_matrix(st, NAME("self_attn.q_proj.weight"), &L->wq, e))) return rc;
        if ((rc = take_matrix(st, NAME("self_attn.k_proj.weight"), &L->wk, e))) return rc;
        if ((rc = take_matrix(st, NAME("self_attn.v_proj.weight"), &L->wv, e))) return rc;
        if ((rc = take_matrix(st, NAME("self_attn.o_proj.weight"), &L->wo, e))) return rc;
        if ((rc = take_matrix(st, NAME("mlp.gate_proj.weight"), &L->w_gate, e))) return rc;
        if ((rc = take_matrix(st, NAME("mlp.up_proj.weight"), &L->w_up, e))) return rc;
        if ((rc = take_matrix(st, NAME("mlp.down_proj.weight"), &L->w_down, e))) return rc;
        if ((rc = take_vec(st, NAME("input_layernorm.weight"), hp->n_embd, &L->attn_norm, e))) return rc;
        if ((rc = take_vec(st, NAME("post_attention_layernorm.weight"), hp->n_embd, &L->ffn_norm, e)))
            return rc;
        if (hp->arch == DS8B_ARCH_QWEN3) {
            if ((rc = take_vec(st, NAME("self_attn.q_norm.weight"), hp->head_dim, &L->q_norm, e))) return rc;
            if ((rc = take_vec(st, NAME("self_attn.k_norm.weight"), hp->head_dim, &L->k_norm, e))) return rc;
        }
#undef NAME
    }
    m->n_tensors = ds8b__st_n_tensors(st);
    const char *wt = ds8b__type_info(m->layers[0].wq.type)->name;
    m->scheme = ds8b__strdup(DS8B_MEM_OTHER, wt);
    return ds8b__model_finish(m, e);
}

int ds8b__model_load_hf(const char *dir, const ds8b__log *log, ds8b_model **out, ds8b__err *e) {
    *out = NULL;
    ds8b_model *m;
    int rc = ds8b__model_new(&m, e);
    if (rc) return rc;
    if (log) m->log = *log;
    ds8b__memscope *old = ds8b__memscope_enter(&m->mem);
    m->path = ds8b__strdup(DS8B_MEM_OTHER, dir);
    rc = m->path ? load_hf_inner(m, dir, e) : ds8b__seterr(e, DS8B_E_NOMEM, "path");
    ds8b__memscope_leave(old);
    if (rc) {
        ds8b__model_destroy(m);
        return rc;
    }
    ds8b__logf(&m->log, DS8B_LOG_INFO, "loaded %s: %s", dir, m->desc);
    *out = m;
    return DS8B_OK;
}
