/* kern_arm_dotprod.c -- the AArch64 kernels (kern_arm.h) at level dotprod
 * (built with the flags of mk/arch.mk for *_dotprod.c). */
#if defined(__aarch64__)
#define DS8B_ARM_LEVEL 2
#include "kernels/arm/kern_arm.h"

void ds8b__kops_fill_dotprod(ds8b__kops *k) { arm_fill(k, "dotprod"); }
#endif
