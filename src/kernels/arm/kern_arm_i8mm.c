/* kern_arm_i8mm.c -- the AArch64 kernels (kern_arm.h) at level i8mm
 * (built with the flags of mk/arch.mk for *_i8mm.c). */
#if defined(__aarch64__)
#define DS8B_ARM_LEVEL 3
#include "kernels/arm/kern_arm.h"

void ds8b__kops_fill_i8mm(ds8b__kops *k) { arm_fill(k, "i8mm"); }
#endif
