/*
 * dispatch.c -- picks the kernel level once from cpuid, honouring
 * DS8B_ISA=scalar|avx2|avx512|avx512-vnni|avx512-bf16 as an upper bound, and exposes the float
 * helpers through the chosen table.
 */
#include "kernels/kernels.h"
#include "kernels/kern_impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__aarch64__)
/* ARM levels (src/kernels/arm/arm_dispatch.c): 0 scalar, 1 neon,
 * 2 dotprod, 3 i8mm. */
#define DS8B_NLEVELS 4
#else
/* x86 levels: 0 scalar, 1 avx2, 2 avx512-vnni, 3 avx512-bf16 (level 2 plus
 * vdpbf16ps kernels for W4A16 and BF16 weights, bf16 activations), 4 amx
 * (level 3 plus the AMX-BF16 prompt kernels of the integer types). */
#define DS8B_NLEVELS 5
#endif
static ds8b__kops g_tab[DS8B_NLEVELS];
static int g_max_level;
static int g_default_level;
static _Atomic(const ds8b__kops *) g_cur;
static _Atomic int g_level;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
#include <cpuid.h>
/* AVX512-BF16: cpuid leaf 7 subleaf 1, EAX bit 5 (the OS support of the
 * AVX-512 state is checked with avx512f by __builtin_cpu_supports). */
static bool avx512_bf16(void) {
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || a < 1) return false;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return (a >> 5) & 1u;
}
#endif
#if defined(__x86_64__) && defined(__clang__) && __clang_major__ < 15
/* clang before 15 does not know "f16c" and "bmi2" in __builtin_cpu_supports */
static bool f16c_and_bmi2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 29) & 1u)) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return (b >> 8) & 1u;
}
#define DS8B_F16C_BMI2() f16c_and_bmi2()
#else
#define DS8B_F16C_BMI2() (__builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2"))
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static char g_note[160];

/* AMX for this process: cpuid AMX-TILE, AMX-BF16 and AVX512-BF16, XCR0
 * tile state (bits 17, 18) enabled by the OS, and on Linux the
 * permission to use tile data (arch_prctl ARCH_REQ_XCOMP_PERM), which a
 * process must ask for before its first tile instruction. Any refusal:
 * no AMX level, and ds8b__isa_note() says why. */
static bool amx_usable(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    bool tile = (d >> 24) & 1u, bf16 = (d >> 22) & 1u;
    if (!tile || !bf16) return false;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !((a >> 5) & 1u)) return false; /* AVX512-BF16 */
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return false;       /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (((lo >> 17) & 3u) != 3u) {
        snprintf(g_note, sizeof g_note, "AMX not used: the OS does not enable tile state (XCR0 %#x)", lo);
        return false;
    }
#if defined(__linux__) && defined(SYS_arch_prctl)
    /* ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 */
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) {
        snprintf(g_note, sizeof g_note, "AMX not used: the kernel refused tile-data permission (%s)",
                 strerror(errno));
        return false;
    }
    return true;
#else
    snprintf(g_note, sizeof g_note, "AMX not used: no way to request tile-data permission on this OS");
    return false;
#endif
}
#endif

static int cpu_level(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && DS8B_F16C_BMI2();
    if (!avx2) return 0;
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vnni");
    if (!avx512) return 1;
    if (!avx512_bf16()) return 2;
    return amx_usable() ? 4 : 3;
#elif defined(__aarch64__)
    return ds8b__arm_cpu_level();
#else
    return 0;
#endif
}

/* Prefetch distance of the row-group decode kernels, bytes ahead in the
 * weight stream: measured 8B q4_0 tg32 (2 threads, repacked) on an Intel
 * Xeon with AMX: 4.84 t/s at 8192, 5.07-5.11 at 2048, 4.93 at 4096, 4.66 at
 * 512, 4.24 with none; 8192 is kept elsewhere (the AMD Zen 5 host it was
 * set on reached 88% of its roofline with it). DS8B_GRP_PF=N overrides
 * (multiples of 64, 0..65536). */
size_t ds8b__grp_pf = 8192;

static void pick_grp_pf(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    unsigned a, b, c, d;
    if (__get_cpuid(0, &a, &b, &c, &d) && b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu)
        ds8b__grp_pf = 2048; /* "GenuineIntel" */
#endif
    const char *env = getenv("DS8B_GRP_PF");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end && !*end && v >= 0 && v <= 65536) ds8b__grp_pf = (size_t)v & ~(size_t)63;
    }
}

static void init_once(void) {
    g_max_level = cpu_level();
    pick_grp_pf();
    ds8b__kops_fill_scalar(&g_tab[0]);
    g_tab[0].gact_quant = ds8b__gact_quant_scalar;
    ds8b__attn_fill_scalar(&g_tab[0].attn);
#if defined(__aarch64__)
    ds8b__arm_fill_levels(g_tab, g_max_level);
    int lvl = ds8b__arm_env_cap(getenv("DS8B_ISA"), g_max_level);
#else
    /* The fill functions live in files built with -mavx2 / -mavx512*: the
     * compiler may use those instructions even there, so call them only on
     * a CPU that has them (ds8b__isa_force() never goes past g_max_level). */
    g_tab[1] = g_tab[0];
    if (g_max_level >= 1) {
        ds8b__kops_fill_avx2(&g_tab[1]);
        ds8b__kops_fill_decode_avx2(&g_tab[1]);
        ds8b__attn_fill_avx2(&g_tab[1].attn);
    }
    g_tab[2] = g_tab[1];
    if (g_max_level >= 2) {
        ds8b__kops_fill_avx512(&g_tab[2]);
        ds8b__kops_fill_decode_avx512(&g_tab[2]);
        ds8b__attn_fill_avx512(&g_tab[2].attn);
    }
    g_tab[3] = g_tab[2];
    if (g_max_level >= 3) ds8b__kops_fill_avx512bf16(&g_tab[3]);
    g_tab[4] = g_tab[3];
    if (g_max_level >= 4) ds8b__kops_fill_amx(&g_tab[4]);
    int lvl = g_max_level;
    const char *env = getenv("DS8B_ISA");
    if (env && *env) {
        int want = -1;
        if (!strcmp(env, "scalar") || !strcmp(env, "generic")) want = 0;
        else if (!strcmp(env, "avx2")) want = 1;
        else if (!strcmp(env, "avx512") || !strcmp(env, "avx512-vnni")) want = 2;
        else if (!strcmp(env, "avx512-bf16")) want = 3;
        else if (!strcmp(env, "amx")) want = 4;
        if (want >= 0 && want < lvl) lvl = want;
    }
#endif
    g_default_level = lvl;
    atomic_store(&g_level, lvl);
    atomic_store(&g_cur, &g_tab[lvl]);
}

const ds8b__kops *ds8b__kops_get(void) {
    pthread_once(&g_once, init_once);
    return atomic_load_explicit(&g_cur, memory_order_acquire);
}

int ds8b__isa_level(void) {
    pthread_once(&g_once, init_once);
    return atomic_load(&g_level);
}
int ds8b__isa_max_level(void) {
    pthread_once(&g_once, init_once);
    return g_max_level;
}
int ds8b__isa_force(int level) {
    pthread_once(&g_once, init_once);
    if (level < 0) level = g_default_level;
    if (level > g_max_level) level = g_max_level;
    atomic_store(&g_level, level);
    atomic_store(&g_cur, &g_tab[level]);
    return level;
}
const char *ds8b__isa_name(void) {
#if defined(__aarch64__)
    static const char *names[DS8B_NLEVELS] = {"scalar", "neon", "dotprod", "i8mm"};
#else
    static const char *names[DS8B_NLEVELS] = {"scalar", "avx2", "avx512-vnni", "avx512-bf16", "amx"};
#endif
    return names[ds8b__isa_level()];
}

bool ds8b__isa_bf16_act(void) {
#if defined(__aarch64__)
    return false;
#else
    return ds8b__isa_level() >= 3;
#endif
}

const char *ds8b__isa_note(void) {
    pthread_once(&g_once, init_once);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    return g_note[0] ? g_note : NULL;
#else
    return NULL;
#endif
}

float ds8b__vec_dot_f32(const float *a, const float *b, int64_t n) {
    return ds8b__kops_get()->dot_f32(a, b, n);
}
void ds8b__vec_axpy(float *y, const float *x, float a, int64_t n) {
    ds8b__kops_get()->axpy(y, x, a, n);
}
void ds8b__vec_scale(float *y, float s, int64_t n) { ds8b__kops_get()->scale(y, s, n); }
float ds8b__vec_dot_f16f32(const uint16_t *a, const float *b, int64_t n) {
    return ds8b__kops_get()->dot_f16(a, b, n);
}
void ds8b__vec_axpy_f16(float *y, const uint16_t *h, float a, int64_t n) {
    ds8b__kops_get()->axpy_f16(y, h, a, n);
}
void ds8b__vec_f16_to_f32(const uint16_t *h, float *f, int64_t n) {
    ds8b__kops_get()->f16_to_f32(h, f, n);
}
void ds8b__vec_f32_to_f16(const float *f, uint16_t *h, int64_t n) {
    ds8b__kops_get()->f32_to_f16(f, h, n);
}
