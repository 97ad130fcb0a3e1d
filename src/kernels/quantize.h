/* f32 -> GGML storage types, bit-for-bit equal to the reference `gguf` Python package
 * (gguf.quants.quantize, numpy on x86-64), so a model meteor writes is byte-identical to
 * one the reference tools would write from the same weights. */
#ifndef MT_KERNELS_QUANTIZE_H
#define MT_KERNELS_QUANTIZE_H

#include <stdint.h>

#include "kernels/dtype.h"

/* True for the types mt_quantize can produce: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0. */
int mt_quantize_supported(mt_dtype t);

/* Quantises n floats into dst, which holds mt_dtype_row_bytes(t, n) bytes. n must be a
 * multiple of the type's block size (MT_ERR_ARG otherwise); MT_ERR_UNSUPPORTED for a type
 * mt_quantize_supported rejects. Blocks are independent, so rows may be quantised one at a
 * time or all at once with the same bytes. */
mt_status mt_quantize(mt_dtype t, const float *src, void *dst, int64_t n);

/* Single values. f16 rounds to nearest even and keeps a NaN's sign and top payload bits
 * as numpy does (a NaN whose payload would vanish becomes 0x7c01, not infinity); bf16
 * rounds to nearest even and quiets NaNs as ggml does. */
uint16_t mt_quantize_fp16(float f);
uint16_t mt_quantize_bf16(float f);

#endif
