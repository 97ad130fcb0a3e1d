/* Rows of IEEE half floats (f16) to and from f32, for the KV cache outside precise mode.
 * f32 -> f16 rounds to nearest, ties to even; every path (F16C or the portable scalar
 * conversion of dequant.c) gives the same bits, so a cache's contents never depend on
 * the CPU it was written on. */
#ifndef MT_KERNELS_HALF_H
#define MT_KERNELS_HALF_H

#include <stdint.h>

void mt_f32_to_f16_row(uint16_t *dst, const float *src, int n);
void mt_f16_to_f32_row(float *dst, const uint16_t *src, int n);

#endif
