/*
 * arm_dispatch.c -- AArch64 kernel levels for dispatch.c: the CPU's level
 * from the Linux hwcaps, the DS8B_ISA cap, and filling the tables.
 *
 *   level 0 scalar   scalar.c (the reference)
 *   level 1 neon     Advanced SIMD, which every AArch64 CPU has
 *   level 2 dotprod  + SDOT/UDOT (FEAT_DotProd, HWCAP_ASIMDDP)
 *   level 3 i8mm     + SMMLA (FEAT_I8MM, HWCAP2_I8MM; needs dotprod too)
 *
 * The half-precision arithmetic hwcaps (HWCAP_FPHP, HWCAP_ASIMDHP) are
 * read and reported by ds8b__arm_hwcaps() but pick no kernel: the f16,
 * bf16 and W4A16 kernels convert to f32 (FCVTL, base NEON) and accumulate
 * in f32, because f16 accumulation misses the tolerances the tests and the
 * reference logits require (see docs/kernels.md, ARM section).
 *
 * Only Linux (and Android, which has getauxval) reads the hwcaps. Elsewhere
 * (e.g. macOS, where sysctlbyname("hw.optional.arm.FEAT_DotProd") would be
 * the equivalent; not written, as there is no macOS build to test it) the
 * level is neon, which the architecture guarantees.
 */
#if defined(__aarch64__)
#include "kernels/kern_impl.h"

#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/auxv.h>
#endif

/* Bits from the Linux UAPI <asm/hwcap.h>, spelled out so that older
 * headers build too. */
#define DS8B_HWCAP_FPHP (1ul << 9)
#define DS8B_HWCAP_ASIMDHP (1ul << 10)
#define DS8B_HWCAP_ASIMDDP (1ul << 20)
#define DS8B_HWCAP2_I8MM (1ul << 13)

static unsigned long hwcap(int which) {
#if defined(__linux__) && defined(AT_HWCAP) && defined(AT_HWCAP2)
    return getauxval(which == 1 ? AT_HWCAP : AT_HWCAP2);
#else
    (void)which;
    return 0;
#endif
}

int ds8b__arm_cpu_level(void) {
    unsigned long h1 = hwcap(1), h2 = hwcap(2);
    if (!(h1 & DS8B_HWCAP_ASIMDDP)) return 1;
    if (!(h2 & DS8B_HWCAP2_I8MM)) return 2;
    return 3;
}

/* "neon fp16-arith" etc.: what the hwcaps say, for diagnostics. */
const char *ds8b__arm_hwcaps(void);
const char *ds8b__arm_hwcaps(void) {
    unsigned long h1 = hwcap(1), h2 = hwcap(2);
    static const char *names[16] = {
        "neon", "neon fp16", "neon dotprod", "neon dotprod fp16",
        "neon i8mm", "neon i8mm fp16", "neon dotprod i8mm", "neon dotprod i8mm fp16",
    };
    int i = ((h1 & DS8B_HWCAP_FPHP) && (h1 & DS8B_HWCAP_ASIMDHP) ? 1 : 0) |
            (h1 & DS8B_HWCAP_ASIMDDP ? 2 : 0) | (h2 & DS8B_HWCAP2_I8MM ? 4 : 0);
    return names[i];
}

void ds8b__arm_fill_levels(ds8b__kops *tab, int max_level) {
    /* The dotprod and i8mm files are built with -march=armv8.2-a+dotprod
     * (+i8mm): the compiler may use those instructions anywhere in them,
     * so their fill functions run only on a CPU that has them. */
    tab[1] = tab[0];
    if (max_level >= 1) ds8b__kops_fill_neon(&tab[1]);
    tab[2] = tab[1];
    if (max_level >= 2) ds8b__kops_fill_dotprod(&tab[2]);
    tab[3] = tab[2];
    if (max_level >= 3) ds8b__kops_fill_i8mm(&tab[3]);
}

int ds8b__arm_env_cap(const char *env, int max_level) {
    int lvl = max_level;
    if (env && *env) {
        int want = -1;
        if (!strcmp(env, "scalar") || !strcmp(env, "generic")) want = 0;
        else if (!strcmp(env, "neon") || !strcmp(env, "asimd")) want = 1;
        else if (!strcmp(env, "dotprod")) want = 2;
        else if (!strcmp(env, "i8mm")) want = 3;
        if (want >= 0 && want < lvl) lvl = want;
    }
    return lvl;
}
#endif
