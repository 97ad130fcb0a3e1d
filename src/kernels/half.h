/* Rows of f32 to IEEE half floats (f16), for the KV cache outside precise mode: rounded
 * to nearest, ties to even; every path (F16C or the portable scalar conversion of
 * dequant.c) gives the same bits, so a cache's contents never depend on the CPU it was
 * written on. The way back is mt_dequantize(MT_F16, ...). */
#ifndef MT_KERNELS_HALF_H
#define MT_KERNELS_HALF_H

#include <stdint.h>

void mt_f32_to_f16_row(uint16_t *dst, const float *src, int n);

#endif
