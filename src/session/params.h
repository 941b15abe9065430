/* params.h -- the parameter bag behind ds8b_params. */
#ifndef DS8B_PARAMS_H
#define DS8B_PARAMS_H

#include "internal.h"

#define DS8B__PARAM_MAX 64
#define DS8B_PARAMS_MAGIC 0x9a7a3500u
#define DS8B_MAX_STOPS 16

struct ds8b_params {
    uint32_t magic;
    int64_t i[DS8B__PARAM_MAX];
    double f[DS8B__PARAM_MAX];
    char *stops[DS8B_MAX_STOPS];
    int n_stops;
    ds8b__log log;
    ds8b_progress_fn progress;
    void *progress_user;
    const struct ds8b_imatrix *imatrix; /* borrowed: ds8b_params_set_imatrix */
};

/* Fills p with the documented defaults (p needs no freeing afterwards as
 * long as no stop strings are added). */
void ds8b__params_defaults(ds8b_params *p);
/* Validates a value for a key (is_float: the key's kind). */
int ds8b__param_check(int key, double v, bool want_float, ds8b__err *e);

/* DS8B_PARAM_N_BATCH as used: 0 (the default) picks it for the kernel
 * level in use (512 at amx, 64 elsewhere). */
int64_t ds8b__n_batch_resolve(int64_t v);

#endif
