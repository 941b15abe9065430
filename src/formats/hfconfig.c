/* hfconfig.c -- Hugging Face config.json -> ds8b__hparams.
 *
 * Required keys: model_type, hidden_size, num_hidden_layers,
 * num_attention_heads, intermediate_size, vocab_size, rms_norm_eps,
 * max_position_embeddings. Optional: num_key_value_heads (= heads),
 * head_dim (= hidden / heads; null means absent), rope_theta (10000),
 * tie_word_embeddings (false), bos_token_id / eos_token_id (int, list of ints
 * or null), rope_scaling (null, or an object; see parse_rope_scaling).
 *
 * Every size is range-checked against caps small enough that products of
 * two or three of them cannot overflow int64 in later size computations.
 * Keys other than these are ignored.
 */
#include "model/hparams.h"

#include <cjson/cJSON.h>
#include <math.h>

#define CAP_DIM ((int64_t)1 << 20)     /* hidden, ff, heads, head_dim */
#define CAP_VOCAB ((int64_t)1 << 24)
#define CAP_LAYERS 1024
#define CAP_CTX ((int64_t)1 << 30)

typedef struct cfg {
    const char *path;
    ds8b__err *e;
} cfg;

/* Kinds of a JSON value, for messages. */
static const char *jkind(const cJSON *v) {
    if (!v) return "missing";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

/* An integer-valued number in [lo, hi]. */
static int get_int_v(const cfg *c, const char *key, const cJSON *v, int64_t lo, int64_t hi,
                     int64_t *out) {
    if (!cJSON_IsNumber(v))
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"%s\" must be an integer, it is %s", c->path, key,
                            jkind(v));
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"%s\" must be an integer, it is %g", c->path,
                            key, d);
    if (d < (double)lo || d > (double)hi)
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"%s\" = %.17g is outside [%lld, %lld]", c->path,
                            key, d, (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return DS8B_OK;
}

/* Integer key of obj; absent or null -> def when optional. */
static int get_int(const cfg *c, const cJSON *obj, const char *key, bool required, int64_t def,
                   int64_t lo, int64_t hi, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: required key \"%s\" is %s", c->path, key,
                                jkind(v));
        *out = def;
        return DS8B_OK;
    }
    return get_int_v(c, key, v, lo, hi, out);
}

/* Finite number key of obj in (lo, hi] (lo exclusive when lo_open). */
static int get_num(const cfg *c, const cJSON *obj, const char *prefix, const char *key, bool required,
                   double def, double lo, bool lo_open, double hi, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: required key \"%s%s\" is %s", c->path, prefix,
                                key, jkind(v));
        *out = def;
        return DS8B_OK;
    }
    if (!cJSON_IsNumber(v))
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"%s%s\" must be a number, it is %s", c->path,
                            prefix, key, jkind(v));
    double d = v->valuedouble;
    if (!isfinite(d) || (lo_open ? !(d > lo) : !(d >= lo)) || !(d <= hi))
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"%s%s\" = %.17g is outside %c%g, %g]", c->path,
                            prefix, key, d, lo_open ? '(' : '[', lo, hi);
    *out = d;
    return DS8B_OK;
}

/* bos_token_id / eos_token_id: int, list of ints, or null. Up to max ids are
 * kept (later ones of a longer list are dropped). */
static int get_ids(const cfg *c, const cJSON *root, const char *key, int64_t n_vocab, int32_t *ids,
                   int max, int *n_out) {
    *n_out = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return DS8B_OK;
    int64_t x;
    int rc;
    if (cJSON_IsNumber(v)) {
        if ((rc = get_int_v(c, key, v, 0, n_vocab - 1, &x))) return rc;
        ids[0] = (int32_t)x;
        *n_out = 1;
        return DS8B_OK;
    }
    if (!cJSON_IsArray(v))
        return ds8b__seterr(c->e, DS8B_E_FORMAT,
                            "%s: \"%s\" must be an integer, a list of integers or null, it is %s",
                            c->path, key, jkind(v));
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, v) {
        if ((rc = get_int_v(c, key, it, 0, n_vocab - 1, &x))) return rc;
        bool dup = false;
        for (int i = 0; i < n; i++) dup |= ids[i] == (int32_t)x;
        if (!dup && n < max) ids[n++] = (int32_t)x;
    }
    *n_out = n;
    return DS8B_OK;
}

/* YaRN's attention scale for a context-extension factor (mscale 1 unless
 * given): 0.1 * mscale * ln(factor) + 1, or 1 when factor <= 1. */
static double yarn_mscale(double factor, double mscale) {
    return factor <= 1.0 ? 1.0 : 0.1 * mscale * log(factor) + 1.0;
}

/* rope_scaling: null/absent, or {"rope_type" | "type": ...}.
 *  default -> none; linear -> factor; llama3 -> factor, low_freq_factor (1),
 *  high_freq_factor (4), original_max_position_embeddings; yarn -> factor,
 *  original_max_position_embeddings (= max_position_embeddings),
 *  beta_fast (32), beta_slow (1), attention scale (see hparams.h; with
 *  DeepSeek's mscale/mscale_all_dim when neither attention key is given). */
static int parse_rope_scaling(const cfg *c, const cJSON *root, ds8b__hparams *hp) {
    const double big = 1e9;
    int rc;
    hp->rope_type = DS8B_ROPE_NONE;
    hp->rope_factor = 1.0;
    hp->rope_orig_ctx = (double)hp->n_ctx_train;
    hp->rope_low_freq = 1.0;
    hp->rope_high_freq = 4.0;
    hp->yarn_beta_fast = 32.0;
    hp->yarn_beta_slow = 1.0;
    hp->yarn_attn_scale = 1.0;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return DS8B_OK;
    if (!cJSON_IsObject(rs))
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"rope_scaling\" must be an object or null, it is %s",
                            c->path, jkind(rs));
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    const char *tkey = "rope_scaling.rope_type";
    if (!ty || cJSON_IsNull(ty)) {
        const cJSON *legacy = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (legacy && !cJSON_IsNull(legacy)) {
            ty = legacy;
            tkey = "rope_scaling.type";
        }
    }
    if (!cJSON_IsString(ty))
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"%s\" must be a string, it is %s", c->path, tkey,
                            jkind(ty));
    const char *t = ty->valuestring;
    const char *P = "rope_scaling.";
    if (strcmp(t, "default") == 0) return DS8B_OK;
    if (strcmp(t, "linear") == 0) {
        if ((rc = get_num(c, rs, P, "factor", true, 1, 0, true, big, &hp->rope_factor))) return rc;
        hp->rope_type = DS8B_ROPE_LINEAR;
        return DS8B_OK;
    }
    if (strcmp(t, "llama3") == 0) {
        if ((rc = get_num(c, rs, P, "factor", true, 1, 0, true, big, &hp->rope_factor))) return rc;
        if ((rc = get_num(c, rs, P, "low_freq_factor", false, 1, 0, true, big, &hp->rope_low_freq)))
            return rc;
        if ((rc = get_num(c, rs, P, "high_freq_factor", false, 4, 0, true, big, &hp->rope_high_freq)))
            return rc;
        if ((rc = get_num(c, rs, P, "original_max_position_embeddings", true, 0, 1, false,
                          (double)CAP_CTX, &hp->rope_orig_ctx)))
            return rc;
        if (!(hp->rope_high_freq > hp->rope_low_freq))
            return ds8b__seterr(c->e, DS8B_E_FORMAT,
                                "%s: \"rope_scaling.high_freq_factor\" (%g) must be greater than "
                                "\"rope_scaling.low_freq_factor\" (%g)",
                                c->path, hp->rope_high_freq, hp->rope_low_freq);
        hp->rope_type = DS8B_ROPE_LLAMA3;
        return DS8B_OK;
    }
    if (strcmp(t, "yarn") == 0) {
        double fac, af, mscale, mscale_all;
        if ((rc = get_num(c, rs, P, "factor", true, 1, 0, true, big, &fac))) return rc;
        if ((rc = get_num(c, rs, P, "original_max_position_embeddings", false, (double)hp->n_ctx_train,
                          1, false, (double)CAP_CTX, &hp->rope_orig_ctx)))
            return rc;
        if ((rc = get_num(c, rs, P, "beta_fast", false, 32, 0, true, big, &hp->yarn_beta_fast))) return rc;
        if ((rc = get_num(c, rs, P, "beta_slow", false, 1, 0, true, big, &hp->yarn_beta_slow))) return rc;
        if ((rc = get_num(c, rs, P, "mscale", false, 0, 0, false, big, &mscale))) return rc;
        if ((rc = get_num(c, rs, P, "mscale_all_dim", false, 0, 0, false, big, &mscale_all))) return rc;
        hp->rope_factor = fac;
        const cJSON *haf = cJSON_GetObjectItemCaseSensitive(rs, "attention_factor");
        const cJSON *vaf = cJSON_GetObjectItemCaseSensitive(rs, "attn_factor");
        if (haf && !cJSON_IsNull(haf)) {
            /* transformers' key: the scale itself. */
            if ((rc = get_num(c, rs, P, "attention_factor", true, 1, 0, true, big, &af))) return rc;
            hp->yarn_attn_scale = af;
        } else {
            double base = mscale > 0 && mscale_all > 0
                              ? yarn_mscale(fac, mscale) / yarn_mscale(fac, mscale_all)
                              : yarn_mscale(fac, 1.0);
            double mul = 1.0;
            /* vLLM's key: multiplies YaRN's own mscale. */
            if (vaf && !cJSON_IsNull(vaf) &&
                (rc = get_num(c, rs, P, "attn_factor", true, 1, 0, true, big, &mul)))
                return rc;
            hp->yarn_attn_scale = base * mul;
        }
        hp->rope_type = DS8B_ROPE_YARN;
        return DS8B_OK;
    }
    return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: rope_scaling type \"%.64s\" is not supported",
                        c->path, t);
}

static int parse_root(const cfg *c, const cJSON *root, ds8b__hparams *hp) {
    int rc;
    if (!cJSON_IsObject(root))
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: the config is not a JSON object", c->path);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt))
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"model_type\" must be a string, it is %s", c->path,
                            jkind(mt));
    if (strcmp(mt->valuestring, "llama") == 0) hp->arch = DS8B_ARCH_LLAMA;
    else if (strcmp(mt->valuestring, "qwen3") == 0) hp->arch = DS8B_ARCH_QWEN3;
    else
        return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED,
                            "%s: model_type \"%.64s\" is not supported (llama and qwen3 are)", c->path,
                            mt->valuestring);

    if ((rc = get_int(c, root, "hidden_size", true, 0, 1, CAP_DIM - 1, &hp->n_embd))) return rc;
    if ((rc = get_int(c, root, "num_hidden_layers", true, 0, 1, CAP_LAYERS - 1, &hp->n_layer))) return rc;
    if ((rc = get_int(c, root, "num_attention_heads", true, 0, 1, CAP_DIM - 1, &hp->n_head))) return rc;
    if ((rc = get_int(c, root, "num_key_value_heads", false, hp->n_head, 1, CAP_DIM - 1, &hp->n_head_kv)))
        return rc;
    if ((rc = get_int(c, root, "intermediate_size", true, 0, 1, CAP_DIM - 1, &hp->n_ff))) return rc;
    if ((rc = get_int(c, root, "vocab_size", true, 0, 1, CAP_VOCAB - 1, &hp->n_vocab))) return rc;
    if ((rc = get_int(c, root, "max_position_embeddings", true, 0, 1, CAP_CTX, &hp->n_ctx_train)))
        return rc;
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if (hd && !cJSON_IsNull(hd)) {
        if ((rc = get_int_v(c, "head_dim", hd, 1, CAP_DIM - 1, &hp->head_dim))) return rc;
    } else {
        if (hp->n_embd % hp->n_head)
            return ds8b__seterr(c->e, DS8B_E_FORMAT,
                                "%s: \"hidden_size\" (%lld) is not a multiple of \"num_attention_heads\" "
                                "(%lld) and there is no \"head_dim\"",
                                c->path, (long long)hp->n_embd, (long long)hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    if (hp->head_dim % 2)
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"head_dim\" (%lld) must be even for RoPE", c->path,
                            (long long)hp->head_dim);
    if (hp->n_head_kv > hp->n_head || hp->n_head % hp->n_head_kv)
        return ds8b__seterr(c->e, DS8B_E_FORMAT,
                            "%s: \"num_attention_heads\" (%lld) is not a multiple of "
                            "\"num_key_value_heads\" (%lld)",
                            c->path, (long long)hp->n_head, (long long)hp->n_head_kv);
    if (hp->n_head * hp->head_dim >= CAP_DIM)
        return ds8b__seterr(c->e, DS8B_E_FORMAT,
                            "%s: \"num_attention_heads\" x \"head_dim\" (%lld x %lld) is too large",
                            c->path, (long long)hp->n_head, (long long)hp->head_dim);

    if ((rc = get_num(c, root, "", "rms_norm_eps", true, 0, 0, true, 1.0, &hp->rms_eps))) return rc;
    if ((rc = get_num(c, root, "", "rope_theta", false, 10000.0, 0, true, 1e15, &hp->rope_theta))) return rc;

    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (!tie || cJSON_IsNull(tie)) hp->tie_embd = false;
    else if (cJSON_IsBool(tie)) hp->tie_embd = cJSON_IsTrue(tie);
    else
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"tie_word_embeddings\" must be a boolean, it is %s",
                            c->path, jkind(tie));

    int nb = 0;
    int32_t bos[1];
    if ((rc = get_ids(c, root, "bos_token_id", hp->n_vocab, bos, 1, &nb))) return rc;
    hp->bos = nb ? bos[0] : -1;
    if ((rc = get_ids(c, root, "eos_token_id", hp->n_vocab, hp->eos, DS8B_MAX_EOS, &hp->n_eos))) return rc;

    return parse_rope_scaling(c, root, hp);
}

int ds8b__hf_config_parse(const char *json, size_t len, const char *path, ds8b__hparams *hp,
                          ds8b__err *e) {
    if (!path) path = "config.json";
    memset(hp, 0, sizeof *hp);
    hp->bos = -1;
    if (!json) return ds8b__seterr(e, DS8B_E_INVALID, "%s: no config text", path);
    if (len > ((size_t)64 << 20))
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: %zu bytes is too large for a config", path, len);
    /* Parse a NUL-terminated copy so the parser never reads past len. */
    char *buf = ds8b__malloc(DS8B_MEM_OTHER, len + 1);
    if (!buf) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot copy %zu bytes", path, len);
    memcpy(buf, json, len);
    buf[len] = 0;
    cJSON *root = cJSON_ParseWithLength(buf, len + 1);
    int rc;
    cfg c = {path, e};
    if (!root) rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: not valid JSON", path);
    else rc = parse_root(&c, root, hp);
    cJSON_Delete(root);
    ds8b__free(buf);
    if (rc) {
        memset(hp, 0, sizeof *hp);
        hp->bos = -1;
    }
    return rc;
}
