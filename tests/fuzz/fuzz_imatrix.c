/* fuzz_imatrix.c -- parses any buffer as an importance-matrix file
 * (llama.cpp's GGUF imatrix or its older .dat) and reads every entry's
 * weights. */
#include "internal.h"
#include "model/imatrix.h"

#include <stdlib.h>

static volatile float g_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ds8b_imatrix *im = NULL;
    ds8b__err e = {0};
    if (ds8b__imatrix_parse(data, size, "fuzz", &im, &e) == 0) {
        for (int64_t i = 0; i < im->n; i++) {
            const ds8b__imat_ent *en = ds8b__imatrix_find(im, im->e[i].name);
            float *w = en ? malloc((size_t)en->n * sizeof(float)) : NULL;
            if (w) {
                ds8b__imatrix_weights(en, w);
                g_sink += w[0] + w[en->n - 1];
                free(w);
            }
        }
        ds8b_imatrix_free(im);
    } else if (!e.msg[0]) {
        __builtin_trap(); /* every failure says why */
    }
    return 0;
}
