/*
 * gguf_model.c -- maps a GGUF file (llama.cpp's tensor names and metadata
 * keys) onto a model, and builds a tokenizer from tokenizer.ggml.* keys.
 *
 * Architectures: "llama" and "qwen3". llama.cpp's converter permutes the Q
 * and K rows of Llama models so that RoPE rotates adjacent pairs; Qwen3
 * files keep Hugging Face's layout (rotate_half). Llama 3 RoPE scaling is
 * carried by the rope_freqs tensor: per-pair divisors of the frequencies.
 */
#include "formats/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdio.h>

/* ================================================================== */
/* Tokenizer                                                           */
/* ================================================================== */
int ds8b__tok_from_gguf(const ds8b__gguf *g, ds8b_tokenizer **out, ds8b__err *e) {
    *out = NULL;
    const char *model = NULL;
    size_t mlen = 0;
    int rc = ds8b__gguf_get_str(g, "tokenizer.ggml.model", &model, &mlen, e);
    if (rc) return rc;
    if (!(mlen == 4 && memcmp(model, "gpt2", 4) == 0))
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not supported (only gpt2 byte-level BPE)",
                            ds8b__gguf_name(g), (int)(mlen > 64 ? 64 : mlen), model);
    int64_t kt = ds8b__gguf_find_key(g, "tokenizer.ggml.tokens");
    int64_t km = ds8b__gguf_find_key(g, "tokenizer.ggml.merges");
    int64_t ktype = ds8b__gguf_find_key(g, "tokenizer.ggml.token_type");
    if (kt < 0) return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tokenizer.ggml.tokens is missing", ds8b__gguf_name(g));
    int et;
    uint64_t n_tok = 0, n_merge = 0, n_type = 0;
    const void *raw;
    if ((rc = ds8b__gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, &raw, e))) return rc;
    if (et != DS8B_GGUF_STRING || n_tok == 0 || n_tok > (1u << 24))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tokenizer.ggml.tokens must be a non-empty string array (count %llu)",
                            ds8b__gguf_name(g), (unsigned long long)n_tok);
    if (km >= 0) {
        if ((rc = ds8b__gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n_merge, &raw, e))) return rc;
        if (et != DS8B_GGUF_STRING)
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tokenizer.ggml.merges must be a string array", ds8b__gguf_name(g));
    }
    if (ktype >= 0) {
        if ((rc = ds8b__gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n_type, &raw, e))) return rc;
        if (n_type != n_tok)
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tokenizer.ggml.token_type has %llu entries, tokens has %llu",
                                ds8b__gguf_name(g), (unsigned long long)n_type, (unsigned long long)n_tok);
    }
    /* the embedding matrix fixes the vocab size; a shorter token list is an error */
    const ds8b__tensor *emb = ds8b__gguf_find_tensor(g, "token_embd.weight");
    if (emb && emb->n_dims == 2 && (uint64_t)emb->ne[1] > n_tok)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries but token_embd.weight has %lld rows",
                            ds8b__gguf_name(g), (unsigned long long)n_tok, (long long)emb->ne[1]);
    size_t ptrs_bytes, lens_bytes, mp, ml, tb;
    if (!ds8b__mul_ok(n_tok, sizeof(char *), &ptrs_bytes) || !ds8b__mul_ok(n_tok, sizeof(size_t), &lens_bytes) ||
        !ds8b__mul_ok(n_merge ? n_merge : 1, sizeof(char *), &mp) || !ds8b__mul_ok(n_merge ? n_merge : 1, sizeof(size_t), &ml) ||
        !ds8b__mul_ok(n_tok, sizeof(int32_t), &tb))
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: tokenizer arrays too large", ds8b__gguf_name(g));
    const char **toks = ds8b__malloc(DS8B_MEM_OTHER, ptrs_bytes);
    size_t *tlens = ds8b__malloc(DS8B_MEM_OTHER, lens_bytes);
    const char **merges = ds8b__malloc(DS8B_MEM_OTHER, mp);
    size_t *mlens = ds8b__malloc(DS8B_MEM_OTHER, ml);
    int32_t *types = ds8b__malloc(DS8B_MEM_OTHER, tb);
    if (!toks || !tlens || !merges || !mlens || !types) {
        rc = ds8b__seterr(e, DS8B_E_NOMEM, "%s: tokenizer tables", ds8b__gguf_name(g));
        goto done;
    }
    for (uint64_t i = 0; i < n_tok && !rc; i++) {
        rc = ds8b__gguf_arr_str(g, kt, i, &toks[i], &tlens[i], e);
        int64_t ty = 1;
        if (!rc && ktype >= 0) rc = ds8b__gguf_arr_i64(g, ktype, i, &ty, e);
        types[i] = (int32_t)(ty >= 0 && ty <= 6 ? ty : 1);
    }
    for (uint64_t i = 0; i < n_merge && !rc; i++) rc = ds8b__gguf_arr_str(g, km, i, &merges[i], &mlens[i], e);
    if (rc) goto done;
    int32_t bos = -1, eos = -1;
    bool add_bos = false;
    if (ds8b__gguf_find_key(g, "tokenizer.ggml.bos_token_id") >= 0 &&
        (rc = ds8b__gguf_get_i32(g, "tokenizer.ggml.bos_token_id", &bos, e)))
        goto done;
    if (ds8b__gguf_find_key(g, "tokenizer.ggml.eos_token_id") >= 0 &&
        (rc = ds8b__gguf_get_i32(g, "tokenizer.ggml.eos_token_id", &eos, e)))
        goto done;
    if ((bos >= 0 && (uint64_t)bos >= n_tok) || (eos >= 0 && (uint64_t)eos >= n_tok)) {
        rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: bos/eos token id outside the vocabulary of %llu", ds8b__gguf_name(g),
                          (unsigned long long)n_tok);
        goto done;
    }
    if (ds8b__gguf_find_key(g, "tokenizer.ggml.add_bos_token") >= 0 &&
        (rc = ds8b__gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, e)))
        goto done;
    char pre[128] = "default";
    const char *ps;
    size_t pl;
    if (ds8b__gguf_find_key(g, "tokenizer.ggml.pre") >= 0) {
        if ((rc = ds8b__gguf_get_str(g, "tokenizer.ggml.pre", &ps, &pl, e))) goto done;
        snprintf(pre, sizeof pre, "%.*s", (int)(pl < sizeof pre - 1 ? pl : sizeof pre - 1), ps);
    }
    rc = ds8b__tok_from_vocab(toks, tlens, types, (size_t)n_tok, merges, mlens, (size_t)n_merge, pre, bos, eos,
                              add_bos, out, e);
    if (rc) ds8b__errprefix(e, "%s", ds8b__gguf_name(g));
    bool nfc = false;
    if (!rc && ds8b__gguf_find_key(g, "ds8b.tokenizer.nfc") >= 0 &&
        ds8b__gguf_get_bool(g, "ds8b.tokenizer.nfc", &nfc, NULL) == DS8B_OK && nfc)
        ds8b__tok_force_nfc(*out);
    int32_t pad = -1;
    if (!rc && ds8b__gguf_find_key(g, "tokenizer.ggml.padding_token_id") >= 0 &&
        ds8b__gguf_get_i32(g, "tokenizer.ggml.padding_token_id", &pad, NULL) == DS8B_OK)
        ds8b__tok_set_pad(*out, pad);
done:
    ds8b__free(toks);
    ds8b__free(tlens);
    ds8b__free(merges);
    ds8b__free(mlens);
    ds8b__free(types);
    return rc;
}

int ds8b__gguf_load_tokenizer(const char *path, ds8b_tokenizer **out, ds8b__err *e) {
    ds8b__gguf *g;
    int rc = ds8b__gguf_open(path, &g, e);
    if (rc) return rc;
    rc = ds8b__tok_from_gguf(g, out, e);
    ds8b__gguf_close(g);
    return rc;
}

/* ================================================================== */
/* Hyper-parameters                                                    */
/* ================================================================== */
static int arch_int(const ds8b__gguf *g, const char *arch, const char *suffix, int64_t lo, int64_t hi,
                    bool required, int64_t *v, ds8b__err *e) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (ds8b__gguf_find_key(g, key) < 0) {
        if (required) return ds8b__seterr(e, DS8B_E_FORMAT, "%s: metadata key %s is missing", ds8b__gguf_name(g), key);
        return DS8B_OK;
    }
    return ds8b__gguf_get_int_range(g, key, lo, hi, v, e);
}

static int arch_f64(const ds8b__gguf *g, const char *arch, const char *suffix, double *v, ds8b__err *e) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (ds8b__gguf_find_key(g, key) < 0) return DS8B_OK;
    int rc = ds8b__gguf_get_f64(g, key, v, e);
    if (!rc && !isfinite(*v))
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: %s is not finite", ds8b__gguf_name(g), key);
    return rc;
}

int ds8b__gguf_read_hparams(const ds8b__gguf *g, ds8b__hparams *hp, ds8b__err *e) {
    const char *a;
    size_t al;
    int rc = ds8b__gguf_get_str(g, "general.architecture", &a, &al, e);
    if (rc) return rc;
    char arch[32];
    if (al == 5 && memcmp(a, "llama", 5) == 0) hp->arch = DS8B_ARCH_LLAMA;
    else if (al == 5 && memcmp(a, "qwen3", 5) == 0) hp->arch = DS8B_ARCH_QWEN3;
    else
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: architecture '%.*s' is not supported (llama and qwen3 are)",
                            ds8b__gguf_name(g), (int)(al > 64 ? 64 : al), a);
    snprintf(arch, sizeof arch, "%.*s", (int)al, a);
    const int64_t big = 1 << 20;
    if ((rc = arch_int(g, arch, "block_count", 1, 1024, true, &hp->n_layer, e))) return rc;
    if ((rc = arch_int(g, arch, "embedding_length", 1, big, true, &hp->n_embd, e))) return rc;
    if ((rc = arch_int(g, arch, "feed_forward_length", 1, big, true, &hp->n_ff, e))) return rc;
    if ((rc = arch_int(g, arch, "attention.head_count", 1, 4096, true, &hp->n_head, e))) return rc;
    hp->n_head_kv = hp->n_head;
    if ((rc = arch_int(g, arch, "attention.head_count_kv", 1, 4096, false, &hp->n_head_kv, e))) return rc;
    hp->n_ctx_train = 4096;
    if ((rc = arch_int(g, arch, "context_length", 1, 1 << 24, false, &hp->n_ctx_train, e))) return rc;
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = arch_int(g, arch, "attention.key_length", 2, 4096, false, &hp->head_dim, e))) return rc;
    hp->rms_eps = 1e-5;
    if ((rc = arch_f64(g, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps, e))) return rc;
    hp->rope_theta = 10000.0;
    if ((rc = arch_f64(g, arch, "rope.freq_base", &hp->rope_theta, e))) return rc;
    if (hp->n_head % hp->n_head_kv || hp->head_dim % 2 || hp->rms_eps <= 0 || hp->rope_theta <= 1)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: inconsistent attention metadata (heads %lld, kv heads %lld, head dim %lld)",
                            ds8b__gguf_name(g), (long long)hp->n_head, (long long)hp->n_head_kv, (long long)hp->head_dim);
    /* rope scaling */
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (ds8b__gguf_find_key(g, key) >= 0) {
        const char *t;
        size_t tl;
        if ((rc = ds8b__gguf_get_str(g, key, &t, &tl, e))) return rc;
        double factor = 1.0, orig = 0.0, attn = 0.0;
        if ((rc = arch_f64(g, arch, "rope.scaling.factor", &factor, e))) return rc;
        int64_t oi = 0;
        if ((rc = arch_int(g, arch, "rope.scaling.original_context_length", 1, 1 << 24, false, &oi, e))) return rc;
        orig = (double)oi;
        if ((rc = arch_f64(g, arch, "rope.scaling.attn_factor", &attn, e))) return rc;
        if (tl == 4 && memcmp(t, "yarn", 4) == 0) {
            if (factor <= 1.0 || orig <= 0)
                return ds8b__seterr(e, DS8B_E_FORMAT, "%s: yarn scaling needs factor > 1 and the original context length",
                                    ds8b__gguf_name(g));
            hp->rope_type = DS8B_ROPE_YARN;
            hp->rope_factor = factor;
            hp->rope_orig_ctx = orig;
            hp->yarn_beta_fast = 32;
            hp->yarn_beta_slow = 1;
            double ms = 0.1 * log(factor) + 1.0;
            hp->yarn_attn_scale = attn > 0 ? attn * ms : ms;
        } else if (tl == 6 && memcmp(t, "linear", 6) == 0) {
            if (factor <= 0) return ds8b__seterr(e, DS8B_E_FORMAT, "%s: linear rope scaling needs factor > 0", ds8b__gguf_name(g));
            hp->rope_type = DS8B_ROPE_LINEAR;
            hp->rope_factor = factor;
        } else if (!(tl == 4 && memcmp(t, "none", 4) == 0)) {
            return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: rope scaling type '%.*s' is not supported", ds8b__gguf_name(g),
                                (int)(tl > 32 ? 32 : tl), t);
        }
    }
    hp->bos = -1;
    hp->n_eos = 0;
    return DS8B_OK;
}

/* ================================================================== */
/* Tensors                                                             */
/* ================================================================== */
static int take_matrix(const ds8b__gguf *g, const char *name, ds8b__tensor *dst, ds8b__err *e) {
    bool w4a16 = false;
    if (ds8b__gguf_find_key(g, "ds8b.w4a16") >= 0) ds8b__gguf_get_bool(g, "ds8b.w4a16", &w4a16, NULL);
    const ds8b__tensor *t = ds8b__gguf_find_tensor(g, name);
    if (!t) return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s is missing", ds8b__gguf_name(g), name);
    if (t->type == DS8B_T_Q8_1 || t->type == DS8B_T_Q8_K)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: tensor %s has type %s, which is not a weight type",
                            ds8b__gguf_name(g), name, ds8b__type_info(t->type)->name);
    *dst = *t;
    dst->owned = NULL;
    /* our W4A16 tensors travel as Q4_1 blocks (the same bytes) */
    if (w4a16 && t->type == DS8B_T_Q4_1) dst->type = DS8B_T_W4A16;
    dst->name = ds8b__strdup(DS8B_MEM_WEIGHTS, name);
    return dst->name ? DS8B_OK : ds8b__seterr(e, DS8B_E_NOMEM, "tensor name");
}

static int take_vec(const ds8b__gguf *g, const char *name, int64_t n, float **dst, ds8b__err *e) {
    const ds8b__tensor *t = ds8b__gguf_find_tensor(g, name);
    if (!t) return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s is missing", ds8b__gguf_name(g), name);
    if (t->n_dims != 1 || t->ne[0] != n)
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: tensor %s has shape [%lld], expected [%lld]", ds8b__gguf_name(g), name,
                            (long long)t->ne[0], (long long)n);
    return ds8b__tensor_to_f32(t, DS8B_MEM_WEIGHTS, dst, e);
}

static void close_gguf(struct ds8b__gguf *g) { ds8b__gguf_close(g); }

static int load_inner(ds8b_model *m, const char *path, ds8b__err *e) {
    int rc = ds8b__gguf_open(path, &m->gguf, e);
    if (rc) return rc;
    m->gguf_close = close_gguf;
    const ds8b__gguf *g = m->gguf;
    if ((rc = ds8b__gguf_verify_crc_log(g, &m->log, e))) return rc;
    ds8b__hparams *hp = &m->hp;
    if ((rc = ds8b__gguf_read_hparams(g, hp, e))) return rc;
    m->rope_interleaved = hp->arch == DS8B_ARCH_LLAMA;

    ds8b__tokref *tr = ds8b__tokref_new(m, e);
    if (!tr) return DS8B_E_NOMEM;
    m->tok = tr;
    ds8b__memscope *old = ds8b__memscope_enter(&tr->mem);
    rc = ds8b__tok_from_gguf(g, &tr->tok, e);
    ds8b__memscope_leave(old);
    if (rc) return rc;
    hp->bos = ds8b__tok_bos(tr->tok);
    if (ds8b__tok_eos(tr->tok) >= 0) hp->eos[hp->n_eos++] = ds8b__tok_eos(tr->tok);

    if (ds8b__gguf_find_key(g, "tokenizer.chat_template") >= 0) {
        const char *ct;
        size_t cl;
        if ((rc = ds8b__gguf_get_str(g, "tokenizer.chat_template", &ct, &cl, e))) return rc;
        if (!(m->chat_template = ds8b__strndup(DS8B_MEM_TOKENIZER, ct, cl))) return ds8b__seterr(e, DS8B_E_NOMEM, "chat template");
    }
    if ((rc = take_matrix(g, "token_embd.weight", &m->tok_embd, e))) return rc;
    hp->n_vocab = m->tok_embd.ne[1];
    if ((rc = take_vec(g, "output_norm.weight", hp->n_embd, &m->out_norm, e))) return rc;
    if (ds8b__gguf_find_tensor(g, "output.weight")) {
        if ((rc = take_matrix(g, "output.weight", &m->output, e))) return rc;
    } else {
        m->output_is_embd = true;
    }
    m->layers = ds8b__xmalloc(DS8B_MEM_WEIGHTS, (size_t)hp->n_layer * sizeof *m->layers, "layer table", e);
    if (!m->layers) return DS8B_E_NOMEM;
    memset(m->layers, 0, (size_t)hp->n_layer * sizeof *m->layers);
    char nm[96];
    for (int64_t i = 0; i < hp->n_layer; i++) {
        ds8b__layer *L = &m->layers[i];
#define NAME(s) (snprintf(nm, sizeof nm, "blk.%lld.%s", (long long)i, s), nm)
        if ((rc = take_matrix(g, NAME("attn_q.weight"), &L->wq, e))) return rc;
        if ((rc = take_matrix(g, NAME("attn_k.weight"), &L->wk, e))) return rc;
        if ((rc = take_matrix(g, NAME("attn_v.weight"), &L->wv, e))) return rc;
        if ((rc = take_matrix(g, NAME("attn_output.weight"), &L->wo, e))) return rc;
        if ((rc = take_matrix(g, NAME("ffn_gate.weight"), &L->w_gate, e))) return rc;
        if ((rc = take_matrix(g, NAME("ffn_up.weight"), &L->w_up, e))) return rc;
        if ((rc = take_matrix(g, NAME("ffn_down.weight"), &L->w_down, e))) return rc;
        if ((rc = take_vec(g, NAME("attn_norm.weight"), hp->n_embd, &L->attn_norm, e))) return rc;
        if ((rc = take_vec(g, NAME("ffn_norm.weight"), hp->n_embd, &L->ffn_norm, e))) return rc;
        if (hp->arch == DS8B_ARCH_QWEN3) {
            if ((rc = take_vec(g, NAME("attn_q_norm.weight"), hp->head_dim, &L->q_norm, e))) return rc;
            if ((rc = take_vec(g, NAME("attn_k_norm.weight"), hp->head_dim, &L->k_norm, e))) return rc;
        }
#undef NAME
    }
    m->n_tensors = ds8b__gguf_n_tensors(g);
    /* file type name for the description */
    const char *wt = ds8b__type_info(m->layers[0].w_gate.type)->name;
    const ds8b__tensor *t;
    bool mixed = false;
    for (int64_t i = 0; i < m->n_tensors && (t = ds8b__gguf_tensor(g, i)); i++)
        if (t->n_dims == 2 && t->type != m->layers[0].w_gate.type && strncmp(t->name, "blk.", 4) == 0) mixed = true;
    char sch[64];
    snprintf(sch, sizeof sch, "gguf %s%s", wt, mixed ? " (mixed)" : "");
    m->scheme = ds8b__strdup(DS8B_MEM_OTHER, sch);
    if ((rc = ds8b__model_finish(m, e))) return rc;
    /* llama3-style scaling stored as per-pair frequency divisors */
    const ds8b__tensor *rf = ds8b__gguf_find_tensor(g, "rope_freqs.weight");
    if (rf) {
        float *ff = NULL;
        if (rf->n_dims != 1 || rf->ne[0] != hp->head_dim / 2)
            return ds8b__seterr(e, DS8B_E_FORMAT, "%s: rope_freqs.weight has %lld values, expected %lld", ds8b__gguf_name(g),
                                (long long)rf->ne[0], (long long)hp->head_dim / 2);
        if ((rc = ds8b__tensor_to_f32(rf, DS8B_MEM_OTHER, &ff, e))) return rc;
        for (int64_t i = 0; i < hp->head_dim / 2; i++) {
            if (!(ff[i] > 0) || !isfinite(ff[i])) {
                ds8b__free(ff);
                return ds8b__seterr(e, DS8B_E_FORMAT, "%s: rope_freqs.weight[%lld] is not a positive number",
                                    ds8b__gguf_name(g), (long long)i);
            }
            m->rope_inv_freq[i] /= ff[i];
        }
        ds8b__free(ff);
    }
    return DS8B_OK;
}

int ds8b__model_load_gguf(const char *path, const ds8b__log *log, ds8b_model **out, ds8b__err *e) {
    *out = NULL;
    ds8b_model *m;
    int rc = ds8b__model_new(&m, e);
    if (rc) return rc;
    if (log) m->log = *log;
    ds8b__memscope *old = ds8b__memscope_enter(&m->mem);
    m->path = ds8b__strdup(DS8B_MEM_OTHER, path);
    rc = m->path ? load_inner(m, path, e) : ds8b__seterr(e, DS8B_E_NOMEM, "path");
    ds8b__memscope_leave(old);
    if (rc) {
        ds8b__model_destroy(m);
        return rc;
    }
    ds8b__logf(&m->log, DS8B_LOG_INFO, "loaded %s: %s", path, m->desc);
    *out = m;
    return DS8B_OK;
}
