/*
 * kern_avx512.c -- AVX-512 F/BW/VL/DQ + VNNI kernels (compiled with those
 * flags; only called when cpuid reports them).
 */
#include "kernels/kern_impl.h"

void ds8b__kops_fill_avx512(ds8b__kops *k) { k->name = "avx512-vnni"; }
