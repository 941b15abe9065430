/* fuzz_gguf.c -- parses any buffer as GGUF and walks everything it found:
 * every metadata value (nested arrays included), every string of top-level
 * string arrays, the typed getters, every tensor's data, and the CRCs. */
#include "internal.h"
#include "formats/gguf.h"

static volatile uint64_t g_sink;

static void walk(const ds8b__gguf_val *v, int depth) {
    int64_t i;
    uint64_t u;
    double d;
    if (ds8b__gguf_val_i64(v, &i) == 0) g_sink += (uint64_t)i;
    if (ds8b__gguf_val_u64(v, &u) == 0) g_sink += u;
    if (ds8b__gguf_val_f64(v, &d) == 0) g_sink += d == d;
    if (v->type == DS8B_GGUF_STRING && v->len) g_sink += v->p[0] + v->p[v->len - 1];
    if (v->type != DS8B_GGUF_ARRAY || depth > DS8B_GGUF_MAX_DEPTH) return;
    /* element access walks nested arrays from the start: cap the quadratic part */
    uint64_t n = v->len < 64 ? v->len : 64;
    for (uint64_t k = 0; k < n; k++) {
        ds8b__gguf_val x;
        if (ds8b__gguf_val_elem(v, k, &x) == 0) walk(&x, depth + 1);
    }
    if (v->len) {
        ds8b__gguf_val x;
        if (ds8b__gguf_val_elem(v, v->len - 1, &x) == 0) walk(&x, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ds8b__gguf *g = NULL;
    ds8b__err e = {0};
    if (ds8b__gguf_parse_mem(data, size, "fuzz", &g, &e) != 0) return 0;
    for (int64_t i = 0; i < ds8b__gguf_n_kv(g); i++) {
        const char *key = ds8b__gguf_kv_key(g, i);
        ds8b__gguf_val v;
        if (ds8b__gguf_kv_val(g, i, &v) != 0) continue;
        walk(&v, 0);
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f;
        double d;
        bool b;
        const char *s;
        size_t len;
        const void *raw;
        int et;
        ds8b__gguf_get_u32(g, key, &u32, &e);
        ds8b__gguf_get_i32(g, key, &i32, &e);
        ds8b__gguf_get_u64(g, key, &u64, &e);
        ds8b__gguf_get_i64(g, key, &i64, &e);
        ds8b__gguf_get_f32(g, key, &f, &e);
        ds8b__gguf_get_f64(g, key, &d, &e);
        ds8b__gguf_get_bool(g, key, &b, &e);
        if (ds8b__gguf_get_str(g, key, &s, &len, &e) == 0 && len) g_sink += (uint8_t)s[len - 1];
        if (ds8b__gguf_find_key(g, key) != i) __builtin_trap();
        if (ds8b__gguf_get_arr(g, key, &et, &u64, &raw, &e) == 0) {
            for (uint64_t k = 0; k < u64; k++) {
                if (et == DS8B_GGUF_STRING) {
                    if (ds8b__gguf_arr_str(g, i, k, &s, &len, &e) == 0 && len)
                        g_sink += (uint8_t)s[0] + (uint8_t)s[len - 1];
                } else if (ds8b__gguf_arr_i64(g, i, k, &i64, NULL) == 0) {
                    g_sink += (uint64_t)i64;
                } else if (ds8b__gguf_arr_f32(g, i, k, &f, NULL) == 0) {
                    g_sink += f == f;
                }
            }
            ds8b__gguf_arr_str(g, i, u64, &s, &len, &e); /* one past the end */
        }
    }
    for (int64_t i = 0; i < ds8b__gguf_n_tensors(g); i++) {
        const ds8b__tensor *t = ds8b__gguf_tensor(g, i);
        const uint8_t *p = t->data;
        g_sink += p[0] + p[t->nbytes - 1];
        if (ds8b__gguf_find_tensor(g, t->name) != t) __builtin_trap();
    }
    ds8b__gguf_verify_crc(g, &e);
    ds8b__gguf_close(g);
    return 0;
}
