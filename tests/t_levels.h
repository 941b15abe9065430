/* t_levels.h -- for tests that link the static library: the kernel-level
 * hooks (src/kernels/kernels.h) and one driver for checks whose tolerance
 * depends on whether the level rounds activations to bf16. */
#ifndef T_LEVELS_H
#define T_LEVELS_H
#include <stdio.h>

int ds8b__isa_force(int level);
const char *ds8b__isa_name(void);
_Bool ds8b__isa_bf16_act(void);

/* check(ctx, bf16): bf16 = 0 asks for the float-activation tolerance, 1
 * for the bf16 one. At the default level when it keeps float activations,
 * check(ctx, 0); otherwise check(ctx, 0) at avx512-vnni (level 2, float
 * activations), then check(ctx, 1) at the default level. The default
 * level is in force afterwards. */
static inline void t_float_then_bf16(void (*check)(void *ctx, int bf16), void *ctx) {
    ds8b__isa_force(-1);
    if (!ds8b__isa_bf16_act()) {
        check(ctx, 0);
        return;
    }
    ds8b__isa_force(2);
    printf("  # level %s\n", ds8b__isa_name());
    check(ctx, 0);
    ds8b__isa_force(-1);
    printf("  # level %s\n", ds8b__isa_name());
    check(ctx, 1);
}
#endif
