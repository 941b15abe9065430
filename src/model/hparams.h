/* hparams.h -- model hyper-parameters, filled from config.json or GGUF. */
#ifndef DS8B_HPARAMS_H
#define DS8B_HPARAMS_H

#include "internal.h"

enum { DS8B_ROPE_NONE = 0, DS8B_ROPE_LLAMA3 = 1, DS8B_ROPE_YARN = 2, DS8B_ROPE_LINEAR = 3 };

#define DS8B_MAX_EOS 8

typedef struct ds8b__hparams {
    int arch;              /* DS8B_ARCH_LLAMA or DS8B_ARCH_QWEN3 */
    int64_t n_vocab;
    int64_t n_embd;        /* hidden_size */
    int64_t n_layer;       /* num_hidden_layers */
    int64_t n_head;        /* num_attention_heads */
    int64_t n_head_kv;     /* num_key_value_heads (defaults to n_head) */
    int64_t head_dim;      /* head_dim, or n_embd / n_head when absent */
    int64_t n_ff;          /* intermediate_size */
    int64_t n_ctx_train;   /* max_position_embeddings */
    double rms_eps;        /* rms_norm_eps */
    double rope_theta;     /* rope_theta (default 10000) */
    /* rope_scaling */
    int rope_type;         /* DS8B_ROPE_* */
    double rope_factor;    /* "factor" */
    double rope_orig_ctx;  /* "original_max_position_embeddings" */
    double rope_low_freq;  /* llama3 "low_freq_factor" (default 1) */
    double rope_high_freq; /* llama3 "high_freq_factor" (default 4) */
    double yarn_beta_fast; /* default 32 */
    double yarn_beta_slow; /* default 1 */
    /* YaRN attention scale applied to cos/sin (transformers'
     * "attention_scaling"). Resolved at parse time:
     *  - "attention_factor" present (transformers' key): used as is;
     *  - "attn_factor" present (vLLM's key): multiplies YaRN's own mscale
     *    0.1*ln(factor)+1, as vLLM does;
     *  - neither: 0.1*ln(factor)+1. */
    double yarn_attn_scale;
    bool tie_embd;         /* tie_word_embeddings */
    int32_t bos;           /* bos_token_id, -1 if none */
    int32_t eos[DS8B_MAX_EOS]; /* eos_token_id (int or list) */
    int n_eos;
} ds8b__hparams;

/* Parses a Hugging Face config.json (model_type llama or qwen3). path is
 * only used in messages. Unknown model_type -> DS8B_E_UNSUPPORTED naming it;
 * missing or out-of-range keys -> DS8B_E_FORMAT naming the key. */
int ds8b__hf_config_parse(const char *json, size_t len, const char *path, ds8b__hparams *hp,
                          ds8b__err *e);

#endif
