/* types.c -- element types (GGUF ggml_type numbering) and their sizes. */
#include "internal.h"

static const ds8b__type_traits k_traits[DS8B_T__COUNT] = {
    [DS8B_T_F32] = {"f32", 1, 4},
    [DS8B_T_F16] = {"f16", 1, 2},
    [DS8B_T_Q4_0] = {"q4_0", 32, 18},
    [DS8B_T_Q4_1] = {"q4_1", 32, 20},
    [DS8B_T_Q5_0] = {"q5_0", 32, 22},
    [DS8B_T_Q5_1] = {"q5_1", 32, 24},
    [DS8B_T_Q8_0] = {"q8_0", 32, 34},
    [DS8B_T_Q8_1] = {"q8_1", 32, 36},
    [DS8B_T_Q2_K] = {"q2_k", 256, 84},
    [DS8B_T_Q3_K] = {"q3_k", 256, 110},
    [DS8B_T_Q4_K] = {"q4_k", 256, 144},
    [DS8B_T_Q5_K] = {"q5_k", 256, 176},
    [DS8B_T_Q6_K] = {"q6_k", 256, 210},
    [DS8B_T_Q8_K] = {"q8_k", 256, 292},
    [DS8B_T_BF16] = {"bf16", 1, 2},
    /* W4A16: see src/quant/quant.h for the layout (group of 32, f16 scale
     * and f16 min, 16 bytes of nibbles = 20 bytes per 32 weights). */
    [DS8B_T_W4A16] = {"w4a16", 32, 20},
};

const ds8b__type_traits *ds8b__type_info(int type) {
    if (type < 0 || type >= DS8B_T__COUNT || !k_traits[type].name) return NULL;
    return &k_traits[type];
}

bool ds8b__row_bytes(int type, int64_t n, size_t *bytes) {
    const ds8b__type_traits *t = ds8b__type_info(type);
    if (!t || n < 0 || n % t->block_elems) return false;
    return ds8b__mul_ok((size_t)(n / t->block_elems), (size_t)t->block_bytes, bytes);
}
