/* Between dequant.c (scalar reference, dispatch) and dequant_simd.c (AVX2 / AVX-512
 * kernels). Not part of the public API. */
#ifndef MT_KERNELS_DEQUANT_INTERNAL_H
#define MT_KERNELS_DEQUANT_INTERNAL_H

#include <stdint.h>

#include "kernels/dtype.h"

/* Scalar reference decoder for one block of t (t a block type). The SIMD kernels hand
 * it any block whose f16 scale is inf or NaN, so NaN payloads and their propagation
 * through the sums follow the scalar code exactly. */
void mt_dq_block_scalar(mt_dtype t, const uint8_t *b, float *y);

/* Decode n elements of type t (as mt_dequantize) with the given instruction set; return
 * 0 without writing anything when there is no kernel for t. */
int mt_dq_run_avx2(mt_dtype t, const uint8_t *src, float *dst, int64_t n);
int mt_dq_run_avx512(mt_dtype t, const uint8_t *src, float *dst, int64_t n);

#endif
