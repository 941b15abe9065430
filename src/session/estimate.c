/*
 * estimate.c -- memory needed by a model and a full session, before
 * loading. Only headers are read: config.json, safetensors headers (the
 * files are mapped but no weight page is touched), GGUF headers, and the
 * tokenizer (whose memory is measured by building it). Everything a load
 * allocates from shapes alone is computed with the same formulas the
 * loader and the session use.
 */
#include "session/session.h"
#include "model/model.h"

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>

static bool has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Matmul workspace high-water mark for one weight type and width: the
 * kernels size their scratch from (type, cols, n, threads) alone, so a
 * dry run on a one-row zero matrix measures exactly what a real batch
 * reserves, whatever ISA level and path the kernels pick. */
static int ws_probe(ds8b__pool *pool, int type, int64_t cols, int64_t nb, ds8b__workspace *ws, ds8b__err *e) {
    size_t rb;
    if (!ds8b__row_bytes(type, cols, &rb)) return DS8B_OK;
    uint8_t *row = ds8b__calloc(DS8B_MEM_OTHER, 1, rb);
    float *x = ds8b__calloc(DS8B_MEM_OTHER, (size_t)(nb * cols), sizeof(float));
    float *y = ds8b__calloc(DS8B_MEM_OTHER, (size_t)nb, sizeof(float));
    int rc = row && x && y ? DS8B_OK : ds8b__seterr(e, DS8B_E_NOMEM, "estimate probe");
    ds8b__tensor w = {0};
    w.type = type;
    w.n_dims = 2;
    w.ne[0] = cols;
    w.ne[1] = 1;
    w.data = row;
    w.nbytes = rb;
    if (!rc) rc = ds8b__matmul(pool, &w, x, nb, y, ws, e);
    if (!rc) rc = ds8b__matmul(pool, &w, x, 1, y, ws, e);
    ds8b__free(row);
    ds8b__free(x);
    ds8b__free(y);
    return rc;
}

/* Type of a matrix (role as in ds8b__scheme_matrix_type) as a load with
 * this scheme will have it: the scheme's choice, or the stored type. */
typedef struct typer {
    const char *scheme;
    const ds8b__st *st;
    const ds8b__gguf *g;
    int64_t n_layer;
    bool tied, w4a16;
} typer;

static int matrix_type(const typer *ty, int role, int64_t layer, int64_t cols) {
    if (ty->scheme && *ty->scheme) return ds8b__scheme_matrix_type(ty->scheme, role, layer, ty->n_layer, cols, ty->tied);
    static const char *const hfn[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                      "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    static const char *const ggn[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    char nm[128];
    const ds8b__tensor *t;
    if (ty->g) {
        if (role == 7 || (role == 8 && ty->tied)) snprintf(nm, sizeof nm, "token_embd.weight");
        else if (role == 8) snprintf(nm, sizeof nm, "output.weight");
        else snprintf(nm, sizeof nm, "blk.%lld.%s.weight", (long long)layer, ggn[role]);
        t = ds8b__gguf_find_tensor(ty->g, nm);
    } else {
        if (role == 7 || (role == 8 && ty->tied)) snprintf(nm, sizeof nm, "model.embed_tokens.weight");
        else if (role == 8) snprintf(nm, sizeof nm, "lm_head.weight");
        else snprintf(nm, sizeof nm, "model.layers.%lld.%s.weight", (long long)layer, hfn[role]);
        t = ds8b__st_find(ty->st, nm);
    }
    if (!t) return -1;
    return ty->w4a16 && t->type == DS8B_T_Q4_1 ? DS8B_T_W4A16 : t->type;
}

/* Heap bytes of one matrix of a given type. */
static int64_t mat_bytes(int type, int64_t cols, int64_t rows) {
    size_t rb;
    if (!ds8b__row_bytes(type, cols, &rb)) return 0;
    return (int64_t)rb * rows;
}

int ds8b__estimate(const char *path, const char *scheme, const ds8b_params *p, int64_t out[DS8B_MEM__COUNT],
                   ds8b__err *e) {
    memset(out, 0, sizeof(int64_t) * DS8B_MEM__COUNT);
    ds8b__memscope sc;
    ds8b__memscope_init(&sc, NULL);
    ds8b__memscope *old = ds8b__memscope_enter(&sc);
    ds8b__hparams hp;
    memset(&hp, 0, sizeof hp);
    ds8b__st *st = NULL;
    ds8b__gguf *g = NULL;
    ds8b_tokenizer *tok = NULL;
    ds8b__pool *pool = NULL;
    int rc;
    bool gguf = !ds8b__is_dir(path);
    int64_t mapped = 0, n_tensors = 0;
    bool tied = false;
    /* 1. containers and tokenizer, really opened, memory measured */
    if (gguf) {
        if ((rc = ds8b__gguf_open(path, &g, e))) goto out;
        if ((rc = ds8b__gguf_read_hparams(g, &hp, e))) goto out;
        const ds8b__tensor *emb = ds8b__gguf_find_tensor(g, "token_embd.weight");
        if (!emb || emb->n_dims != 2) { rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: token_embd.weight is missing", path); goto out; }
        hp.n_vocab = emb->ne[1];
        tied = ds8b__gguf_find_tensor(g, "output.weight") == NULL;
        size_t fsz;
        ds8b__gguf_base(g, &fsz);
        mapped = (int64_t)fsz;
        n_tensors = ds8b__gguf_n_tensors(g);
        if ((rc = ds8b__tok_from_gguf(g, &tok, e))) goto out;
    } else {
        char *cfg = ds8b__path_join(path, "config.json");
        char *json = NULL;
        size_t len = 0;
        rc = cfg ? ds8b__read_file(cfg, 16u << 20, DS8B_MEM_OTHER, &json, &len, e) : ds8b__seterr(e, DS8B_E_NOMEM, "path");
        if (!rc) rc = ds8b__hf_config_parse(json, len, cfg, &hp, e);
        ds8b__free(json);
        ds8b__free(cfg);
        if (rc) goto out;
        tied = hp.tie_embd;
        if ((rc = ds8b__st_open_dir(path, &st, e))) goto out;
        mapped = ds8b__st_mapped_bytes(st);
        n_tensors = ds8b__st_n_tensors(st);
        if ((rc = ds8b__tok_load(path, &tok, e))) goto out;
    }
    for (int c = 0; c < DS8B_MEM_MAPPED; c++) out[c] = atomic_load(&sc.cur[c]);
    out[DS8B_MEM_MAPPED] = mapped;

    /* 2. what the loader allocates from shapes */
    int64_t d = hp.n_embd, hd = hp.head_dim, qd = hp.n_head * hd, kvd = hp.n_head_kv * hd, ff = hp.n_ff;
    int64_t L = hp.n_layer;
    int64_t norms = (2 * L * d + d + (hp.arch == DS8B_ARCH_QWEN3 ? 2 * L * hd : 0)) * 4;
    int64_t names = 0;
    for (int64_t i = 0; i < L; i++) {
        char nm[128];
        static const char *const hfn[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                                          "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                                          "mlp.down_proj.weight"};
        static const char *const ggn[] = {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                          "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
        for (int r = 0; r < 7; r++)
            names += gguf ? snprintf(nm, sizeof nm, "blk.%lld.%s", (long long)i, ggn[r]) + 1
                          : snprintf(nm, sizeof nm, "model.layers.%lld.%s", (long long)i, hfn[r]) + 1;
    }
    names += gguf ? (int64_t)sizeof "token_embd.weight" + (tied ? 0 : (int64_t)sizeof "output.weight")
                  : (int64_t)sizeof "model.embed_tokens.weight" + (tied ? 0 : (int64_t)sizeof "lm_head.weight");
    out[DS8B_MEM_WEIGHTS] += norms + names + L * (int64_t)sizeof(ds8b__layer) + (hd / 2) * 4;
    out[DS8B_MEM_OTHER] += (int64_t)sizeof(struct ds8b_model) + (int64_t)strlen(path) + 1 + 16;
    out[DS8B_MEM_TOKENIZER] += (int64_t)sizeof(ds8b__tokref);

    /* 3. a scheme other than the stored one: quantized copies on the heap,
     *    the source unmapped afterwards */
    if (scheme && *scheme) {
        if (ds8b__scheme_matrix_type(scheme, 0, 0, 1, 256, false) < 0) {
            rc = ds8b__seterr(e, DS8B_E_INVALID, "unknown scheme '%s'", scheme);
            goto out;
        }
        int64_t w = mat_bytes(ds8b__scheme_matrix_type(scheme, 7, 0, L, d, tied), d, hp.n_vocab);
        if (!tied) w += mat_bytes(ds8b__scheme_matrix_type(scheme, 8, 0, L, d, tied), d, hp.n_vocab);
        for (int64_t i = 0; i < L; i++) {
            int64_t cols[7] = {d, d, d, qd, d, d, ff}, rows[7] = {qd, kvd, kvd, d, ff, ff, d};
            for (int r = 0; r < 7; r++)
                w += mat_bytes(ds8b__scheme_matrix_type(scheme, r, i, L, cols[r], tied), cols[r], rows[r]);
        }
        out[DS8B_MEM_WEIGHTS] += w;
        out[DS8B_MEM_MAPPED] = 0;
        /* the quantized model holds its own copies of the norms and names */
        out[DS8B_MEM_WEIGHTS] += norms + names;
        out[DS8B_MEM_OTHER] += (int64_t)strlen(scheme) + 1;
    }
    (void)n_tensors;
    /* DS8B_PARAM_USE_MMAP = 0: the matrices ds8b__model_repack moves into
     * heap copies (the file stays mapped, its pages released) */
    if (gguf && !(scheme && *scheme)) {
        ds8b_params dp;
        if (!p) ds8b__params_defaults(&dp);
        if ((p ? p : &dp)->i[DS8B_PARAM_USE_MMAP] == 0)
            for (int64_t i = 0; i < ds8b__gguf_n_tensors(g); i++) {
                const ds8b__tensor *t = ds8b__gguf_tensor(g, i);
                if (t && t->name && (strncmp(t->name, "blk.", 4) == 0 || strcmp(t->name, "output.weight") == 0))
                    out[DS8B_MEM_WEIGHTS] += ds8b__repack_bytes(t);
            }
    }

    /* 4. one session with a full context */
    ds8b_params defaults;
    if (!p) {
        ds8b__params_defaults(&defaults);
        p = &defaults;
    }
    int64_t n_ctx = p->i[DS8B_PARAM_N_CTX];
    if (hp.n_ctx_train > 0 && n_ctx > hp.n_ctx_train) n_ctx = hp.n_ctx_train;
    int64_t nb = ds8b__n_batch_resolve(p->i[DS8B_PARAM_N_BATCH]);
    if (nb > n_ctx) nb = n_ctx;
    size_t kvb = 0;
    if (!ds8b__kv_bytes((int)p->i[DS8B_PARAM_KV_TYPE], L, n_ctx, kvd, &kvb)) {
        rc = ds8b__seterr(e, DS8B_E_INVALID, "KV cache type %lld cannot hold rows of %lld values",
                          (long long)p->i[DS8B_PARAM_KV_TYPE], (long long)kvd);
        goto out;
    }
    out[DS8B_MEM_KV] += (int64_t)kvb;
    int64_t before_threads = atomic_load(&sc.cur[DS8B_MEM_THREADS]);
    if ((rc = ds8b__pool_create((int)p->i[DS8B_PARAM_N_THREADS], &pool, e))) goto out;
    int nt = ds8b__pool_size(pool);
    out[DS8B_MEM_THREADS] += atomic_load(&sc.cur[DS8B_MEM_THREADS]) - before_threads;
    size_t att_floats = 0;
    if (!ds8b__attn_scratch_floats(hd, hp.n_head / hp.n_head_kv, &att_floats)) {
        rc = ds8b__seterr(e, DS8B_E_LIMIT, "attention scratch size overflows");
        goto out;
    }
    /* per thread: the attention tile scratch; per row: the buffers, and
     * one int32 (4 bytes, counted as a float) of the tile list */
    int64_t scratch = nb * (3 * d + 2 * qd + 2 * kvd + 2 * ff) + (int64_t)nt * (int64_t)att_floats + (nb + 1) +
                      (int64_t)nt * 2 * hd + hp.n_vocab;
    out[DS8B_MEM_SCRATCH] += scratch * 4;
    /* matmul workspace: a dry run of every (type, width) the model uses */
    {
        typer ty = {scheme, st, g, L, tied, false};
        if (g && ds8b__gguf_find_key(g, "ds8b.w4a16") >= 0) ds8b__gguf_get_bool(g, "ds8b.w4a16", &ty.w4a16, NULL);
        ds8b__workspace ws = {0};
        int64_t cols[7] = {d, d, d, qd, d, d, ff};
        for (int64_t i = 0; i < L && !rc; i++)
            for (int r = 0; r < 7 && !rc; r++) {
                int t = matrix_type(&ty, r, i, cols[r]);
                if (t >= 0) rc = ws_probe(pool, t, cols[r], nb, &ws, e);
            }
        /* the output matrix runs on the last row only */
        int ot = matrix_type(&ty, 8, 0, d);
        if (!rc && ot >= 0) rc = ws_probe(pool, ot, d, 1, &ws, e);
        out[DS8B_MEM_SCRATCH] += (int64_t)ds8b__alloc_size(ws.buf);
        ds8b__free(ws.buf);
        if (rc) goto out;
    }
    out[DS8B_MEM_SESSION] += (int64_t)sizeof(struct ds8b_session) + hp.n_vocab * 8 + n_ctx * 4;
    rc = DS8B_OK;
out:
    ds8b__pool_free(pool);
    ds8b__tok_free(tok);
    ds8b__st_close(st);
    ds8b__gguf_close(g);
    ds8b__memscope_leave(old);
    return rc;
}

DS8B_API int ds8b_estimate(const char *path, const char *scheme, const ds8b_params *session_params, int64_t *bytes,
                           size_t n_categories) {
    ds8b__err e = {0};
    int rc;
    int64_t out[DS8B_MEM__COUNT];
    if (!path || !bytes) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_estimate: path and bytes are required");
    else if (session_params && session_params->magic != DS8B_PARAMS_MAGIC)
        rc = ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_estimate: invalid params handle");
    else if (!ds8b__is_dir(path) && !ds8b__file_exists(path))
        rc = ds8b__seterr(&e, DS8B_E_IO, "%s: no such file or directory", path);
    else if (!(rc = ds8b__estimate(path, scheme, session_params, out, &e))) {
        for (size_t i = 0; i < n_categories; i++) bytes[i] = i < DS8B_MEM__COUNT ? out[i] : 0;
    }
    (void)has_suffix;
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Per-handle queries                                                  */
/* ------------------------------------------------------------------ */
/* Current and peak bytes of one category, or of all heap categories (-1). */
static void scope_sum(const ds8b__memscope *sc, int cat, int64_t *current, int64_t *peak) {
    int64_t c = 0, pk = 0;
    for (int i = 0; i < DS8B_MEM__COUNT; i++) {
        if (cat != -1 ? i != cat : i == DS8B_MEM_MAPPED) continue;
        c += atomic_load(&sc->cur[i]);
        pk += atomic_load(&sc->peak[i]);
    }
    if (current) *current = c;
    if (peak) *peak = pk;
}

DS8B_API int ds8b_model_memory(const ds8b_model *m, int cat, int64_t *current, int64_t *peak) {
    if (!m || m->magic != DS8B_MODEL_MAGIC || cat < -1 || cat >= DS8B_MEM__COUNT) return DS8B_E_MISUSE;
    scope_sum(&m->mem, cat, current, peak);
    return DS8B_OK;
}

DS8B_API int ds8b_session_memory(const ds8b_session *s, int cat, int64_t *current, int64_t *peak) {
    if (!ds8b__sess_ok(s) || cat < -1 || cat >= DS8B_MEM__COUNT) return DS8B_E_MISUSE;
    scope_sum(&s->mem, cat, current, peak);
    return DS8B_OK;
}

DS8B_API int64_t ds8b_memory_reserved(void) { return ds8b__mem_reserved(); }
