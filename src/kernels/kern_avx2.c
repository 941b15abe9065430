/*
 * kern_avx2.c -- AVX2 + FMA + F16C kernels (compiled with those flags;
 * only called when cpuid reports them).
 */
#include "kernels/kern_impl.h"

void ds8b__kops_fill_avx2(ds8b__kops *k) { k->name = "avx2"; }
