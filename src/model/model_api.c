/* model_api.c -- public model functions. */
#include "model/model.h"
#include "kernels/kernels.h"

#include "session/params.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>

static bool model_ok(const ds8b_model *m) { return m && m->magic == DS8B_MODEL_MAGIC; }

static bool has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

DS8B_API int ds8b_model_load(const char *path, const ds8b_params *params, ds8b_model **out) {
    ds8b__err e = {0};
    int rc;
    if (!out) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_model_load: out is NULL");
    else if (!path || !*path) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_model_load: path is empty");
    else if (params && params->magic != DS8B_PARAMS_MAGIC)
        rc = ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_model_load: invalid params handle");
    else {
        *out = NULL;
        const ds8b__log *log = params ? &params->log : NULL;
        if (ds8b__is_dir(path)) rc = ds8b__model_load_hf(path, log, out, &e);
        else if (has_suffix(path, ".gguf") || ds8b__file_exists(path))
            rc = ds8b__model_load_gguf(path, log, out, &e);
        else rc = ds8b__seterr(&e, DS8B_E_IO, "%s: no such file or directory", path);
        /* DS8B_PARAM_USE_MMAP = 0: matrices repacked into private copies in
         * the row-group layout of the decode kernels */
        ds8b_params defaults;
        if (!params) ds8b__params_defaults(&defaults);
        const ds8b_params *pp = params ? params : &defaults;
        int64_t use_mmap = pp->i[DS8B_PARAM_USE_MMAP];
        /* on the threads the params ask for (0: one per CPU) */
        if (!rc && use_mmap == 0 &&
            (rc = ds8b__model_repack_ex(*out, (int)pp->i[DS8B_PARAM_N_THREADS], pp->progress, pp->progress_user, &e))) {
            ds8b__model_destroy(*out);
            *out = NULL;
        }
    }
    if (rc) {
        ds8b__set_last_error(&e);
        if (params && params->log.fn) ds8b__logf(&params->log, DS8B_LOG_ERROR, "%s", e.msg);
    } else {
        /* a level the CPU has but may not use (AMX refused by the OS) */
        const char *note = ds8b__isa_note();
        if (note) ds8b__logf(&(*out)->log, DS8B_LOG_INFO, "kernels: %s; using %s", note, ds8b__isa_name());
    }
    return rc;
}

DS8B_API void ds8b_model_free(ds8b_model *m) {
    if (!model_ok(m)) return;
    int live = atomic_load(&m->n_sessions);
    if (live > 0) {
        /* Freeing now would leave the sessions pointing at freed weights:
         * refuse, and leak rather than crash the host. */
        ds8b__err e;
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_model_free: %d session(s) still use this model; free them first",
                     live);
        ds8b__set_last_error(&e);
        ds8b__logf(&m->log, DS8B_LOG_ERROR, "%s", e.msg);
        return;
    }
    ds8b__model_destroy(m);
}

DS8B_API const ds8b_tokenizer *ds8b_model_tokenizer(const ds8b_model *m) {
    return model_ok(m) && m->tok ? m->tok->tok : NULL;
}

DS8B_API int ds8b_model_info(const ds8b_model *m, ds8b_model_key key, int64_t *value) {
    ds8b__err e = {0};
    if (!model_ok(m) || !value) {
        ds8b__seterr(&e, DS8B_E_MISUSE, "ds8b_model_info: invalid model handle or NULL value");
        ds8b__set_last_error(&e);
        return e.code;
    }
    const ds8b__hparams *hp = &m->hp;
    switch (key) {
    case DS8B_MODEL_ARCH: *value = hp->arch; break;
    case DS8B_MODEL_N_VOCAB: *value = hp->n_vocab; break;
    case DS8B_MODEL_N_EMBD: *value = hp->n_embd; break;
    case DS8B_MODEL_N_LAYER: *value = hp->n_layer; break;
    case DS8B_MODEL_N_HEAD: *value = hp->n_head; break;
    case DS8B_MODEL_N_HEAD_KV: *value = hp->n_head_kv; break;
    case DS8B_MODEL_HEAD_DIM: *value = hp->head_dim; break;
    case DS8B_MODEL_N_FF: *value = hp->n_ff; break;
    case DS8B_MODEL_N_CTX_TRAIN: *value = hp->n_ctx_train; break;
    case DS8B_MODEL_N_PARAMS: *value = m->n_params; break;
    case DS8B_MODEL_N_TENSORS: *value = m->n_tensors; break;
    case DS8B_MODEL_WEIGHT_BYTES: *value = m->weight_bytes; break;
    default:
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_model_info: unknown key %d", (int)key);
        ds8b__set_last_error(&e);
        return e.code;
    }
    return DS8B_OK;
}

DS8B_API const char *ds8b_model_desc(const ds8b_model *m) { return model_ok(m) ? m->desc : "invalid model handle"; }

DS8B_API int ds8b_model_set_log(ds8b_model *m, ds8b_log_fn fn, void *user) {
    if (!model_ok(m)) return DS8B_E_MISUSE;
    m->log.fn = fn;
    m->log.user = user;
    return DS8B_OK;
}
