/* Exact dequantisation of GGML block formats to f32 (bit-for-bit equal to the
 * reference `gguf` Python package). */
#ifndef MT_KERNELS_DEQUANT_H
#define MT_KERNELS_DEQUANT_H

#include <stdint.h>

#include "kernels/dtype.h"

/* Dequantises n elements (a multiple of the type's block size) starting at src. */
void mt_dequantize(mt_dtype t, const void *src, float *dst, int64_t n);

/* Dequantises row `row` of a 2-D (or flattened) tensor into dst[ne[0]]. */
void mt_dequantize_row(const mt_tensor *t, int64_t row, float *dst);

/* Test and benchmark hook: the widest SIMD path mt_dequantize may use, 0 = the scalar
 * reference, 1 = AVX2 (+F16C), 2 = AVX-512 (the default), each only where the CPU has
 * it. Every path gives the same bits. Returns the level actually in effect. Process-wide:
 * set it before starting work, not while other threads dequantise. */
int mt_dequant_set_simd(int level);

float mt_fp16_to_fp32(uint16_t h);
uint16_t mt_fp32_to_fp16(float f);
float mt_bf16_to_fp32(uint16_t h);

#endif
