/* model.h -- the loaded model: hyper-parameters, weights, tokenizer. */
#ifndef DS8B_MODEL_H
#define DS8B_MODEL_H

#include "internal.h"
#include "mem.h"
#include "model/hparams.h"

#include <pthread.h>
#include <stdatomic.h>

struct ds8b__st;
struct ds8b__gguf;

/* Weights of one decoder layer. Matrices use the ds8b__tensor convention
 * (ne[0] = input features, ne[1] = output features). Norm weights are kept
 * as f32 arrays owned by the model. */
typedef struct ds8b__layer {
    float *attn_norm;      /* (n_embd) */
    float *ffn_norm;       /* (n_embd) */
    float *q_norm;         /* (head_dim) qwen3 only, else NULL */
    float *k_norm;         /* (head_dim) qwen3 only, else NULL */
    ds8b__tensor wq;       /* (n_head*head_dim, n_embd) */
    ds8b__tensor wk;       /* (n_head_kv*head_dim, n_embd) */
    ds8b__tensor wv;       /* (n_head_kv*head_dim, n_embd) */
    ds8b__tensor wo;       /* (n_embd, n_head*head_dim) */
    ds8b__tensor w_gate;   /* (n_ff, n_embd) */
    ds8b__tensor w_up;     /* (n_ff, n_embd) */
    ds8b__tensor w_down;   /* (n_embd, n_ff) */
} ds8b__layer;

/* Shared, reference-counted tokenizer so quantized copies of a model can
 * share it. It may outlive the model that loaded it, so its allocations are
 * charged to its own scope, whose parent is that model's scope until the
 * model is freed (then NULL). */
typedef struct ds8b__tokref {
    ds8b_tokenizer *tok;
    _Atomic int refs;
    ds8b__memscope mem;
    struct ds8b__vtrie *_Atomic gtrie; /* grammar vocabulary trie, built on first use (src/grammar) */
} ds8b__tokref;

#define DS8B_MODEL_MAGIC 0x4d38b0d1u

struct ds8b_model {
    uint32_t magic;
    ds8b__hparams hp;
    ds8b__layer *layers;     /* (n_layer) */
    ds8b__tensor tok_embd;   /* (n_vocab, n_embd): row i is token i's embedding */
    float *out_norm;         /* (n_embd) */
    ds8b__tensor output;     /* (n_vocab, n_embd); aliases tok_embd when tied */
    bool output_is_embd;     /* tied: output shares tok_embd's data */
    bool rope_interleaved;   /* true: rotate pairs (2i, 2i+1) as GGUF llama
                                files expect; false: HF's rotate_half */
    float *rope_inv_freq;    /* (head_dim/2) */
    float rope_scale;        /* multiplies cos and sin (YaRN attention scaling) */

    ds8b__tokref *tok;
    struct ds8b__st *st;     /* safetensors maps, or NULL */
    struct ds8b__gguf *gguf; /* GGUF file, or NULL */
    void (*gguf_close)(struct ds8b__gguf *);
    char *path;              /* where it was loaded from */
    char *scheme;            /* "bf16", "q4_0", ... as loaded/quantized */
    char *chat_template;     /* from GGUF metadata, or NULL (then the tokenizer's) */
    char desc[160];

    ds8b__log log;
    ds8b__memscope mem;      /* per-model accounting (includes its sessions) */
    _Atomic int n_sessions;
    int64_t n_params;
    int64_t n_tensors;
    int64_t weight_bytes;
    uint64_t fingerprint;    /* of the weights as stored, when fingerprint_set (repack.c) */
    bool fingerprint_set;
};

/* A holder for m's tokenizer (refs 1, no tokenizer yet); load the
 * tokenizer inside ds8b__memscope_enter(&tr->mem). NULL when out of memory. */
ds8b__tokref *ds8b__tokref_new(ds8b_model *m, ds8b__err *e);
void ds8b__tokref_release(ds8b__tokref *r);

/* Allocates an empty model with its memory scope. */
int ds8b__model_new(ds8b_model **out, ds8b__err *e);
/* Frees everything the model owns (NULL-safe). */
void ds8b__model_destroy(ds8b_model *m);
/* After hp and all tensors are set: checks every shape against hp,
 * computes RoPE tables, counts parameters and bytes, writes desc. */
int ds8b__model_finish(ds8b_model *m, ds8b__err *e);
/* Converts a norm tensor (any float type) to a new f32 array. */
int ds8b__tensor_to_f32(const ds8b__tensor *t, int cat, float **out, ds8b__err *e);
/* Checks a tensor's type is usable as a matrix and its shape is (cols, rows). */
int ds8b__check_matrix(const ds8b__tensor *t, const char *name, int64_t cols, int64_t rows,
                       ds8b__err *e);

/* Loads a Hugging Face checkpoint directory. */
int ds8b__model_load_hf(const char *dir, const ds8b__log *log, ds8b_model **out, ds8b__err *e);
/* Loads a GGUF file (src/formats/gguf_model.c). */
int ds8b__model_load_gguf(const char *path, const ds8b__log *log, ds8b_model **out,
                          ds8b__err *e);

/* Builds a tokenizer from a GGUF file's tokenizer.ggml.* keys. */
int ds8b__tok_from_gguf(const struct ds8b__gguf *g, ds8b_tokenizer **out, ds8b__err *e);

/* Reads the llama or qwen3 hyper-parameters from GGUF metadata. */
int ds8b__gguf_read_hparams(const struct ds8b__gguf *g, ds8b__hparams *hp, ds8b__err *e);
/* Type a scheme gives a matrix (see quantize.c); -1 for an unknown scheme. */
int ds8b__scheme_matrix_type(const char *scheme, int role, int64_t layer, int64_t n_layer, int64_t cols, bool tied);

/* Row-group repacking (repack.c). ds8b__model_repack: every layer matrix
 * and the untied output matrix of a packable type, still mapped, becomes
 * a private DS8B_MEM_WEIGHTS copy in the DS8B_LAYOUT_G16 layout, and its
 * file pages are released. ds8b__repack_wanted/bytes: whether a tensor
 * would be repacked, and the heap bytes that takes (for ds8b_estimate).
 * ds8b__tensor_rowmajor: *out = t, or for a packed t a row-major
 * DS8B_MEM_SCRATCH copy (free out->owned). */
int ds8b__model_repack(ds8b_model *m, ds8b__err *e);
/* The same on n_threads threads (0: one per CPU), work items of about
 * 1 MiB handed out in file order; progress (may be NULL) is called from
 * the calling thread, and a nonzero return cancels (DS8B_E_CANCELLED,
 * the model left as mapped). The layout does not depend on n_threads. */
/* Bytes of weights per work item (1 MiB; tests set it smaller). */
extern size_t ds8b__repack_chunk_bytes;
int ds8b__model_repack_ex(ds8b_model *m, int n_threads, ds8b_progress_fn progress, void *user, ds8b__err *e);
bool ds8b__repack_wanted(const ds8b__tensor *t);
int64_t ds8b__repack_bytes(const ds8b__tensor *t);
int ds8b__tensor_rowmajor(const ds8b__tensor *t, ds8b__tensor *out, ds8b__err *e);

/* Computes inv_freq and the cos/sin scale for hp into out (head_dim/2). */
void ds8b__rope_init(const ds8b__hparams *hp, float *inv_freq, float *scale);

#endif
