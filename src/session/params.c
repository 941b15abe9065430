/* params.c -- the key/value parameter bag (ds8b_params). */
#include "session/params.h"
#include "kernels/kernels.h"

#include <math.h>

typedef struct key_info {
    bool valid, is_float;
    double def, lo, hi;
} key_info;

static const key_info k_keys[DS8B__PARAM_MAX] = {
    [DS8B_PARAM_N_CTX] = {true, false, 4096, 1, 1 << 24},
    [DS8B_PARAM_N_THREADS] = {true, false, 0, 0, 512},
    [DS8B_PARAM_N_BATCH] = {true, false, 0, 0, 4096},
    [DS8B_PARAM_KV_TYPE] = {true, false, DS8B_KV_F16, DS8B_KV_F32, DS8B_KV_Q8_0},
    [DS8B_PARAM_CTX_POLICY] = {true, false, DS8B_CTX_ERROR, DS8B_CTX_ERROR, DS8B_CTX_SLIDE},
    [DS8B_PARAM_N_SINK] = {true, false, 4, 0, 1 << 20},
    [DS8B_PARAM_TEMPERATURE] = {true, true, 0.8, 0, 100},
    [DS8B_PARAM_TOP_K] = {true, false, 40, 0, 1 << 24},
    [DS8B_PARAM_TOP_P] = {true, true, 0.95, 0, 1},
    [DS8B_PARAM_MIN_P] = {true, true, 0.05, 0, 1},
    [DS8B_PARAM_REPEAT_PENALTY] = {true, true, 1.0, 0.01, 100},
    [DS8B_PARAM_REPEAT_LAST_N] = {true, false, 64, -1, 1 << 24},
    [DS8B_PARAM_SEED] = {true, false, 0x5eed, 0, 9.2e18},
    [DS8B_PARAM_MAX_TOKENS] = {true, false, 256, 0, 1 << 30},
    [DS8B_PARAM_STOP_AT_EOS] = {true, false, 1, 0, 1},
    [DS8B_PARAM_SPEC] = {true, false, DS8B_SPEC_AUTO, DS8B_SPEC_OFF, DS8B_SPEC_ON},
    [DS8B_PARAM_SPEC_MAX_DRAFT] = {true, false, 16, 0, 63},
    [DS8B_PARAM_SPEC_NGRAM] = {true, false, 3, 2, 16},
    [DS8B_PARAM_USE_MMAP] = {true, false, 1, 0, 1},
    [DS8B_PARAM_VERIFY_CRC] = {true, false, 1, 0, 1},
};

int64_t ds8b__n_batch_resolve(int64_t v) {
    if (v > 0) return v;
    /* auto: the amx prompt kernels dequantize each weight chunk once per
     * call, so they want long micro-batches (8B q4_0 pp512 on an AMX Xeon,
     * 2 threads: 17.9 t/s at 64, 29.4 at 256 on one host; 42.6 at 256 and
     * 51.3 at 512 on another, after the kernel took 512 activation rows
     * per call); the VNNI kernels do not care and 64 keeps the activation
     * buffers small */
    return strcmp(ds8b__isa_name(), "amx") ? 64 : 512;
}

static const key_info *info(int key) {
    if (key <= 0 || key >= DS8B__PARAM_MAX || !k_keys[key].valid) return NULL;
    return &k_keys[key];
}

void ds8b__params_defaults(ds8b_params *p) {
    memset(p, 0, sizeof *p);
    p->magic = DS8B_PARAMS_MAGIC;
    for (int k = 0; k < DS8B__PARAM_MAX; k++) {
        if (!k_keys[k].valid) continue;
        if (k_keys[k].is_float) p->f[k] = k_keys[k].def;
        else p->i[k] = (int64_t)k_keys[k].def;
    }
}

static int fail(int code, const char *fmt, int key) {
    ds8b__err e;
    ds8b__seterr(&e, code, fmt, key);
    ds8b__set_last_error(&e);
    return code;
}

static bool bag_ok(const ds8b_params *p) { return p && p->magic == DS8B_PARAMS_MAGIC; }

DS8B_API int ds8b_params_create(ds8b_params **out) {
    if (!out) return fail(DS8B_E_INVALID, "ds8b_params_create: out is NULL%.0d", 0);
    *out = ds8b__malloc(DS8B_MEM_OTHER, sizeof **out);
    if (!*out) return fail(DS8B_E_NOMEM, "ds8b_params_create: out of memory%.0d", 0);
    ds8b__params_defaults(*out);
    return DS8B_OK;
}

DS8B_API void ds8b_params_free(ds8b_params *p) {
    if (!bag_ok(p)) return;
    for (int i = 0; i < p->n_stops; i++) ds8b__free(p->stops[i]);
    p->magic = 0;
    ds8b__free(p);
}

int ds8b__param_check(int key, double v, bool want_float, ds8b__err *e) {
    const key_info *ki = info(key);
    if (!ki) return ds8b__seterr(e, DS8B_E_INVALID, "unknown parameter key %d", key);
    if (ki->is_float != want_float)
        return ds8b__seterr(e, DS8B_E_INVALID, "parameter key %d takes %s values", key,
                            ki->is_float ? "float" : "integer");
    if (!(v >= ki->lo && v <= ki->hi))
        return ds8b__seterr(e, DS8B_E_INVALID, "parameter key %d: value %g is outside [%g, %g]", key, v,
                            ki->lo, ki->hi);
    return DS8B_OK;
}

DS8B_API int ds8b_params_set_int(ds8b_params *p, ds8b_param key, int64_t value) {
    if (!bag_ok(p)) return fail(DS8B_E_MISUSE, "ds8b_params_set_int: invalid params handle%.0d", 0);
    ds8b__err e;
    int rc = ds8b__param_check(key, (double)value, false, &e);
    if (rc) { ds8b__set_last_error(&e); return rc; }
    p->i[key] = value;
    return DS8B_OK;
}

DS8B_API int ds8b_params_set_float(ds8b_params *p, ds8b_param key, double value) {
    if (!bag_ok(p)) return fail(DS8B_E_MISUSE, "ds8b_params_set_float: invalid params handle%.0d", 0);
    ds8b__err e;
    int rc = ds8b__param_check(key, value, true, &e);
    if (rc) { ds8b__set_last_error(&e); return rc; }
    p->f[key] = value;
    return DS8B_OK;
}

DS8B_API int ds8b_params_get_int(const ds8b_params *p, ds8b_param key, int64_t *value) {
    if (!bag_ok(p) || !value) return fail(DS8B_E_MISUSE, "ds8b_params_get_int: invalid handle%.0d", 0);
    const key_info *ki = info(key);
    if (!ki || ki->is_float) return fail(DS8B_E_INVALID, "parameter key %d is not an integer key", key);
    *value = p->i[key];
    return DS8B_OK;
}

DS8B_API int ds8b_params_get_float(const ds8b_params *p, ds8b_param key, double *value) {
    if (!bag_ok(p) || !value) return fail(DS8B_E_MISUSE, "ds8b_params_get_float: invalid handle%.0d", 0);
    const key_info *ki = info(key);
    if (!ki || !ki->is_float) return fail(DS8B_E_INVALID, "parameter key %d is not a float key", key);
    *value = p->f[key];
    return DS8B_OK;
}

DS8B_API int ds8b_param_bounds(ds8b_param key, double *lo, double *hi) {
    const key_info *ki = info(key);
    if (!ki) return fail(DS8B_E_INVALID, "unknown parameter key %d", key);
    if (lo) *lo = ki->lo;
    if (hi) *hi = ki->hi;
    return DS8B_OK;
}

DS8B_API int ds8b_params_add_stop(ds8b_params *p, const char *stop) {
    if (!bag_ok(p)) return fail(DS8B_E_MISUSE, "ds8b_params_add_stop: invalid params handle%.0d", 0);
    if (!stop || !*stop) return fail(DS8B_E_INVALID, "ds8b_params_add_stop: empty stop string%.0d", 0);
    if (p->n_stops >= DS8B_MAX_STOPS)
        return fail(DS8B_E_LIMIT, "at most %d stop strings", DS8B_MAX_STOPS);
    if (strlen(stop) > 1024) return fail(DS8B_E_LIMIT, "stop strings are limited to %d bytes", 1024);
    char *c = ds8b__strdup(DS8B_MEM_OTHER, stop);
    if (!c) return fail(DS8B_E_NOMEM, "out of memory%.0d", 0);
    p->stops[p->n_stops++] = c;
    return DS8B_OK;
}

DS8B_API int ds8b_params_clear_stops(ds8b_params *p) {
    if (!bag_ok(p)) return fail(DS8B_E_MISUSE, "ds8b_params_clear_stops: invalid params handle%.0d", 0);
    for (int i = 0; i < p->n_stops; i++) ds8b__free(p->stops[i]);
    p->n_stops = 0;
    return DS8B_OK;
}

DS8B_API int ds8b_params_set_log(ds8b_params *p, ds8b_log_fn fn, void *user) {
    if (!bag_ok(p)) return fail(DS8B_E_MISUSE, "ds8b_params_set_log: invalid params handle%.0d", 0);
    p->log.fn = fn;
    p->log.user = user;
    return DS8B_OK;
}

DS8B_API int ds8b_params_set_progress(ds8b_params *p, ds8b_progress_fn fn, void *user) {
    if (!bag_ok(p)) return fail(DS8B_E_MISUSE, "ds8b_params_set_progress: invalid params handle%.0d", 0);
    p->progress = fn;
    p->progress_user = user;
    return DS8B_OK;
}
