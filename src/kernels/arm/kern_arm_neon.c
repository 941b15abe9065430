/* kern_arm_neon.c -- the AArch64 kernels (kern_arm.h) at level neon
 * (built with the flags of mk/arch.mk for *_neon.c). */
#if defined(__aarch64__)
#define DS8B_ARM_LEVEL 1
#include "kernels/arm/kern_arm.h"

void ds8b__kops_fill_neon(ds8b__kops *k) { arm_fill(k, "neon"); }
#endif
