/*
 * internal.h -- shared internal declarations of libds8b.
 *
 * Everything here is hidden (built with -fvisibility=hidden and excluded by
 * the linker version script). Internal names use the ds8b__ prefix (two
 * underscores) so they never collide with the public ds8b_ API.
 */
#ifndef DS8B_INTERNAL_H
#define DS8B_INTERNAL_H

#include "ds8b.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define DS8B__HIDDEN __attribute__((visibility("hidden")))

/* ================================================================== */
/* Errors                                                              */
/* ================================================================== */
/* Every internal function that can fail takes a ds8b__err* and returns a
 * DS8B_E_* code (0 on success). The message names the file, tensor or key
 * at fault. e may be NULL (the message is then dropped). */
typedef struct ds8b__err {
    int code;
    char msg[1024];
} ds8b__err;

/* Formats the message into e and returns code. Always returns code. */
int ds8b__seterr(ds8b__err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an existing message (for context chains). */
void ds8b__errprefix(ds8b__err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Thread-local last error used by ds8b_errmsg(). */
void ds8b__set_last_error(const ds8b__err *e);

/* ================================================================== */
/* Memory: the one chokepoint for heap allocation                      */
/* ================================================================== */
/* All library heap memory goes through these. Pointers are 64-byte aligned.
 * cat is one of DS8B_MEM_* (not MAPPED). Returns NULL on failure (hard
 * limit or allocator failure); the caller reports DS8B_E_NOMEM. */
void *ds8b__malloc(int cat, size_t n);
void *ds8b__calloc(int cat, size_t count, size_t size); /* overflow-checked */
void *ds8b__realloc(int cat, void *p, size_t n);
void ds8b__free(void *p);
char *ds8b__strdup(int cat, const char *s);
char *ds8b__strndup(int cat, const char *s, size_t n);
/* Allocation that fills e with a message naming what on failure. */
void *ds8b__xmalloc(int cat, size_t n, const char *what, ds8b__err *e);
/* Account for memory obtained outside the heap (mmap): +/- bytes. */
void ds8b__mem_mapped_add(int64_t delta);
/* Size requested for a live allocation. */
size_t ds8b__alloc_size(const void *p);

/* ================================================================== */
/* Overflow-safe arithmetic                                            */
/* ================================================================== */
static inline bool ds8b__mul_ok(size_t a, size_t b, size_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}
static inline bool ds8b__add_ok(size_t a, size_t b, size_t *r) {
    return !__builtin_add_overflow(a, b, r);
}

/* ================================================================== */
/* Files                                                               */
/* ================================================================== */
/* Reads a whole file into a NUL-terminated heap buffer (cat OTHER unless
 * given). Refuses files larger than max_bytes. */
int ds8b__read_file(const char *path, size_t max_bytes, int cat, char **out, size_t *len,
                    ds8b__err *e);

/* A read-only memory map of a whole file. */
typedef struct ds8b__mmap {
    void *addr;
    size_t size;
} ds8b__mmap;
int ds8b__mmap_open(const char *path, ds8b__mmap *m, ds8b__err *e);
void ds8b__mmap_close(ds8b__mmap *m);

/* Joins dir and name into a heap string. */
char *ds8b__path_join(const char *dir, const char *name);
bool ds8b__is_dir(const char *path);
bool ds8b__file_exists(const char *path);

/* ================================================================== */
/* Tensor element types: numbering follows GGUF's ggml_type ids.       */
/* ================================================================== */
typedef enum ds8b__type {
    DS8B_T_F32 = 0,
    DS8B_T_F16 = 1,
    DS8B_T_Q4_0 = 2,
    DS8B_T_Q4_1 = 3,
    DS8B_T_Q5_0 = 6,
    DS8B_T_Q5_1 = 7,
    DS8B_T_Q8_0 = 8,
    DS8B_T_Q8_1 = 9,
    DS8B_T_Q2_K = 10,
    DS8B_T_Q3_K = 11,
    DS8B_T_Q4_K = 12,
    DS8B_T_Q5_K = 13,
    DS8B_T_Q6_K = 14,
    DS8B_T_Q8_K = 15,
    DS8B_T_BF16 = 30,
    DS8B_T__GGUF_MAX = 40,
    /* Types of our own (never written to GGUF under these ids). */
    DS8B_T_W4A16 = 100,
    DS8B_T__COUNT = 101
} ds8b__type;

typedef struct ds8b__type_traits {
    const char *name;   /* "q4_0", ... NULL if the id is unused */
    int block_elems;    /* elements per block (1 for float types) */
    int block_bytes;    /* bytes per block */
} ds8b__type_traits;
/* Traits of a type id, or NULL for an unknown id. */
const ds8b__type_traits *ds8b__type_info(int type);
/* Bytes of one row of n elements; false if n is not a whole number of
 * blocks or on overflow. */
bool ds8b__row_bytes(int type, int64_t n, size_t *bytes);

/* A named tensor. ne[0] is the innermost (contiguous) dimension, as in
 * GGUF: a weight matrix W of shape [rows=out, cols=in] in PyTorch has
 * ne[0] = in, ne[1] = out. Rows are stored one after another, each row a
 * whole number of quant blocks. */
#define DS8B_MAX_DIMS 4
typedef struct ds8b__tensor {
    char *name;         /* heap string, or NULL */
    int type;           /* ds8b__type */
    int n_dims;
    int64_t ne[DS8B_MAX_DIMS];
    const void *data;   /* points into a map or into owned memory */
    size_t nbytes;
    void *owned;        /* heap block to free with the tensor, or NULL */
    int layout;         /* 0: GGUF row-major blocks; DS8B_LAYOUT_G16: row groups
                           (src/kernels/packing.h), only ever set by the repacker */
} ds8b__tensor;
enum { DS8B_LAYOUT_ROWS = 0, DS8B_LAYOUT_G16 = 16 };

/* ================================================================== */
/* Half-precision conversion                                           */
/* ================================================================== */
static inline float ds8b__bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}
static inline uint16_t ds8b__f32_to_bf16(float f) {
    union { uint32_t u; float f; } v;
    v.f = f;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40); /* NaN */
    uint32_t r = 0x7fffu + ((v.u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)((v.u + r) >> 16);
}
static inline float ds8b__f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        if (man == 0) { v.u = sign; return v.f; }
        /* subnormal: value = man * 2^-24 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    if (exp == 31) { v.u = sign | 0x7f800000u | (man << 13); return v.f; }
    v.u = sign | ((exp + 112) << 23) | (man << 13);
    return v.f;
}
static inline uint16_t ds8b__f32_to_f16(float f) {
    union { uint32_t u; float f; } v;
    v.f = f;
    uint32_t x = v.u;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00u;          /* NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00u;         /* overflow -> inf */
    if (ax < 0x38800000u) {                               /* subnormal or zero */
        if (ax < 0x33000000u) return sign;                /* < 2^-25 rounds to 0 */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;                          /* 14..24 */
        uint32_t half = 1u << (shift - 1);
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);          /* round to nearest even */
    r -= 0x38000000u;                                      /* rebias 127 -> 15 */
    return sign | (uint16_t)(r >> 13);
}

/* ================================================================== */
/* Logging                                                             */
/* ================================================================== */
typedef struct ds8b__log {
    ds8b_log_fn fn;
    void *user;
} ds8b__log;
void ds8b__logf(const ds8b__log *log, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* DS8B_INTERNAL_H */
