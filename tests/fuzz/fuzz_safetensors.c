/* fuzz_safetensors.c -- the safetensors parser on arbitrary bytes, then a
 * walk over every tensor it accepts (names, lookups, every data byte). */
#include "formats/safetensors.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ds8b__st *s = NULL;
    ds8b__err e = {0};
    if (ds8b__st_parse_mem(data, size, "fuzz.safetensors", &s, &e) != DS8B_OK) return 0;
    int64_t n = ds8b__st_n_tensors(s);
    volatile unsigned acc = 0;
    for (int64_t i = 0; i < n; i++) {
        const ds8b__tensor *t = ds8b__st_tensor(s, i);
        if (!t || ds8b__st_find(s, t->name) != t) __builtin_trap();
        if (t->n_dims < 0 || t->n_dims > DS8B_MAX_DIMS) __builtin_trap();
        const uint8_t *p = t->data;
        if (t->nbytes && (p < data || p + t->nbytes > data + size)) __builtin_trap();
        for (size_t k = 0; k < t->nbytes; k++) acc += p[k];
        acc += (unsigned)ds8b__st_dtype(s, t)[0];
        if (t->type != DS8B__ST_T_OTHER) {
            int64_t nel = 1;
            for (int d = 0; d < DS8B_MAX_DIMS; d++) nel *= t->ne[d];
            size_t row;
            if (!ds8b__row_bytes(t->type, nel, &row) || row != t->nbytes) __builtin_trap();
        }
    }
    (void)acc;
    ds8b__st_close(s);
    return 0;
}
