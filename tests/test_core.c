/* test_core.c -- errors, versions, memory accounting, half conversion. */
#include "t.h"
#include "internal.h"
#include "mem.h"

#include <math.h>

static void test_version(void) {
    CHECK(ds8b_version_number() == DS8B_VERSION_NUMBER, "runtime/macro mismatch");
    CHECK(strcmp(ds8b_version(), DS8B_VERSION_STRING) == 0, "%s", ds8b_version());
}

static void test_errstr(void) {
    for (int c = 0; c >= DS8B_E_INTERNAL; c--)
        CHECK(ds8b_errstr(c) && strcmp(ds8b_errstr(c), "unknown error code") != 0, "code %d", c);
    CHECK(strcmp(ds8b_errstr(12345), "unknown error code") == 0, "unknown");
}

static void test_mem_accounting(void) {
    int64_t before = ds8b_memory_used(DS8B_MEM_KV);
    void *p = ds8b__malloc(DS8B_MEM_KV, 1000);
    CHECK(p && ((uintptr_t)p % 64) == 0, "aligned");
    CHECK(ds8b_memory_used(DS8B_MEM_KV) == before + 1000, "counted");
    CHECK(ds8b_memory_highwater(DS8B_MEM_KV, 0) >= before + 1000, "peak");
    p = ds8b__realloc(DS8B_MEM_KV, p, 5000);
    CHECK(p && ds8b_memory_used(DS8B_MEM_KV) == before + 5000, "realloc counted");
    ds8b__free(p);
    CHECK(ds8b_memory_used(DS8B_MEM_KV) == before, "freed");
    CHECK(ds8b_memory_highwater(DS8B_MEM_KV, 1) >= before + 5000, "peak kept until reset");
    CHECK(ds8b_memory_highwater(DS8B_MEM_KV, 0) == before, "peak reset");
    CHECK(ds8b__calloc(DS8B_MEM_OTHER, SIZE_MAX / 2, 4) == NULL, "calloc overflow");
}

static void test_limits(void) {
    CHECK(ds8b_hard_heap_limit(-1) == 0, "default off");
    int64_t used = ds8b_memory_used(-1);
    CHECK(ds8b_hard_heap_limit(used + 4096) == 0, "previous value");
    ds8b__err e = {0};
    void *p = ds8b__xmalloc(DS8B_MEM_SCRATCH, 1 << 20, "a test buffer", &e);
    CHECK(p == NULL && e.code == DS8B_E_NOMEM, "hard limit refused");
    CHECK(strstr(e.msg, "a test buffer") && strstr(e.msg, "hard heap limit"), "%s", e.msg);
    CHECK(ds8b_hard_heap_limit(0) == used + 4096, "previous returned");
    p = ds8b__malloc(DS8B_MEM_SCRATCH, 1 << 20);
    CHECK(p != NULL, "disabled");
    ds8b__free(p);
    CHECK(ds8b_soft_heap_limit(100) == 0 && ds8b_soft_heap_limit(-1) == 100, "soft");
    CHECK(ds8b__mem_over_soft(1 << 20), "over soft");
    ds8b_soft_heap_limit(0);
}

static void test_scope(void) {
    ds8b__memscope m, s;
    ds8b__memscope_init(&m, NULL);
    ds8b__memscope_init(&s, &m);
    ds8b__memscope *old = ds8b__memscope_enter(&s);
    void *p = ds8b__malloc(DS8B_MEM_SESSION, 300);
    ds8b__memscope_leave(old);
    CHECK(s.cur[DS8B_MEM_SESSION] == 300 && m.cur[DS8B_MEM_SESSION] == 300, "scoped");
    ds8b__free(p);
    CHECK(s.cur[DS8B_MEM_SESSION] == 0 && m.cur[DS8B_MEM_SESSION] == 0 && s.peak[DS8B_MEM_SESSION] == 300, "scoped free");
}

static void test_fail_at(void) {
    ds8b__mem_fail_at(2);
    void *a = ds8b__malloc(DS8B_MEM_OTHER, 8), *b = ds8b__malloc(DS8B_MEM_OTHER, 8);
    void *c = ds8b__malloc(DS8B_MEM_OTHER, 8);
    ds8b__mem_fail_at(0);
    CHECK(a && !b && c, "second allocation failed");
    ds8b__free(a);
    ds8b__free(c);
}

static void test_half(void) {
    /* every f16 value round-trips through f32 */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ds8b__f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (ds8b__f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d f16 values do not round-trip", bad);
    CHECK(ds8b__f32_to_f16(65520.0f) == 0x7c00, "overflow to inf");
    CHECK(ds8b__f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "tie to even");
    CHECK(ds8b__bf16_to_f32(ds8b__f32_to_bf16(1.5f)) == 1.5f, "bf16");
    CHECK(ds8b__f32_to_bf16(1.0f + 1.0f / 256) == 0x3f80, "bf16 tie to even");
}

static void test_types(void) {
    size_t b;
    CHECK(ds8b__row_bytes(DS8B_T_Q4_0, 4096, &b) && b == 128 * 18, "q4_0 row");
    CHECK(!ds8b__row_bytes(DS8B_T_Q4_K, 100, &b), "not whole blocks");
    CHECK(ds8b__type_info(4) == NULL && ds8b__type_info(-1) == NULL && ds8b__type_info(99999) == NULL, "unknown");
}

int main(void) {
    RUN(test_version);
    RUN(test_errstr);
    RUN(test_mem_accounting);
    RUN(test_limits);
    RUN(test_scope);
    RUN(test_fail_at);
    RUN(test_half);
    RUN(test_types);
    T_EXIT();
}
