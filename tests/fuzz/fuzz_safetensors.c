/* fuzz_safetensors.c -- the safetensors reader on arbitrary bytes.
 *
 * Input starting with '{': a model.safetensors.index.json, resolved against
 * a scratch directory of small shards made at start-up (s1, s2: valid; s3:
 * repeats a tensor of s1; bad: not safetensors). Anything else: a whole
 * safetensors file. Every tensor accepted is then walked (names, lookups,
 * every data byte, sizes). */
#include "formats/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];
static const char *const k_shards[][2] = {
    {"s1.safetensors", "{\"x.a\":{\"dtype\":\"BF16\",\"shape\":[2,4],\"data_offsets\":[0,16]},"
                       "\"x.c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]}}"},
    {"s2.safetensors", "{\"x.b\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}"},
    {"s3.safetensors", "{\"x.a\":{\"dtype\":\"F16\",\"shape\":[12],\"data_offsets\":[0,24]}}"},
    {"bad.safetensors", "{\"x.d\":"},
};

static void cleanup(void) {
    char p[128];
    for (size_t i = 0; i < sizeof k_shards / sizeof k_shards[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, k_shards[i][0]);
        unlink(p);
    }
    rmdir(g_dir);
}

static void make_dir(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/ds8b-fuzz-st-%d", (int)getpid());
    mkdir(g_dir, 0700);
    for (size_t i = 0; i < sizeof k_shards / sizeof k_shards[0]; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", g_dir, k_shards[i][0]);
        FILE *f = fopen(p, "wb");
        if (!f) continue;
        const char *h = k_shards[i][1];
        uint64_t n = strlen(h);
        uint64_t padded = (n + 7) / 8 * 8;
        unsigned char len[8];
        for (int k = 0; k < 8; k++) len[k] = (unsigned char)(padded >> (8 * k));
        fwrite(len, 1, 8, f);
        fwrite(h, 1, n, f);
        for (uint64_t k = n; k < padded; k++) fputc(' ', f);
        for (int k = 0; k < 24; k++) fputc(k, f);
        fclose(f);
    }
    atexit(cleanup);
}

static void walk(const ds8b__st *s, const uint8_t *lo, const uint8_t *hi) {
    int64_t n = ds8b__st_n_tensors(s);
    volatile unsigned acc = 0;
    for (int64_t i = 0; i < n; i++) {
        const ds8b__tensor *t = ds8b__st_tensor(s, i);
        if (!t || ds8b__st_find(s, t->name) != t) __builtin_trap();
        if (t->n_dims < 0 || t->n_dims > DS8B_MAX_DIMS) __builtin_trap();
        const uint8_t *p = t->data;
        if (lo && t->nbytes && (p < lo || p + t->nbytes > hi)) __builtin_trap();
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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ds8b__st *s = NULL;
    ds8b__err e = {0};
    if (size && data[0] == '{') {
        if (!g_dir[0]) make_dir();
        if (ds8b__st_open_index_mem(g_dir, (const char *)data, size, "fuzz.index.json", &s, &e) == DS8B_OK) {
            walk(s, NULL, NULL);
            ds8b__st_close(s);
        } else if (!e.msg[0]) {
            __builtin_trap();
        }
        return 0;
    }
    if (ds8b__st_parse_mem(data, size, "fuzz.safetensors", &s, &e) != DS8B_OK) {
        if (!e.msg[0]) __builtin_trap();
        return 0;
    }
    walk(s, data, data + size);
    ds8b__st_close(s);
    return 0;
}
