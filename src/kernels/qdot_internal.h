/* Shared by the quantised dot-product implementations (scalar, AVX2, AVX-512) and their
 * dispatcher; not for use outside src/kernels/. */
#ifndef MT_KERNELS_QDOT_INTERNAL_H
#define MT_KERNELS_QDOT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/dtype.h"

#define MT_QK 32
#define MT_QK_K 256

/* Activations for the 32-element formats. s = d * sum(qs) carries the activation sum
 * that a weight format with a per-block offset (Q4_1, Q5_1) multiplies by its min. */
typedef struct {
    float d;
    float s;
    int8_t qs[MT_QK];
} mt_act32;

/* Activations for the K-quants. bsums[g] = sum of qs[16g..16g+15]: K-quant offsets
 * (Q4_K/Q5_K mins per 32, Q6_K's -32 per 16 under its scale) then cost one product per
 * group instead of one per element. */
typedef struct {
    float d;
    int16_t bsums[MT_QK_K / 16];
    int8_t qs[MT_QK_K];
} mt_act256;

_Static_assert(sizeof(mt_act32) == 40, "mt_act32 is packed");
_Static_assert(sizeof(mt_act256) == 292, "mt_act256 is packed");

/* Dots one weight row of n elements with nt tokens: token t's activations start at
 * xq + t * xq_stride bytes (quantised types) or xf + t * xf_stride floats (F32/F16/BF16),
 * and its result goes to out[t * out_stride]. Any nt >= 1. */
typedef void (*mt_qdot_row_fn)(int64_t n, const uint8_t *w, int nt, const uint8_t *xq,
                               size_t xq_stride, const float *xf, int64_t xf_stride, float *out,
                               int64_t out_stride);

/* Dots nrows consecutive weight rows (row i at w + i * row_bytes) with nt tokens as
 * above; row i's result for token t goes to y[t * y_stride + i]. For kernels that
 * rearrange the activations once and reuse them for every row of the call. */
typedef void (*mt_qdot_rows_fn)(int64_t n, const uint8_t *w, size_t row_bytes, int64_t nrows,
                                int nt, const uint8_t *xq, size_t xq_stride, float *y,
                                int64_t y_stride);

/* The kernel for weight type t, or NULL when the type has none (the AVX-512 set covers
 * the quantised types only; float rows keep the AVX2 kernels). */
mt_qdot_row_fn mt_qdot_scalar_fn(mt_dtype t);
mt_qdot_row_fn mt_qdot_avx2_fn(mt_dtype t);
mt_qdot_rows_fn mt_qdot_avx512_fn(mt_dtype t);

/* Kernels for packed weights (qpack_avx512.c): rows [row0, row1) of a weight of n-value
 * rows, packed as qpack_internal.h lays out, times nt tokens as mt_qdot_rows_fn; row
 * r's result for token t goes to y[t * y_stride + r]. sk: for Q4_K, room for nt * n / 32
 * floats (the tokens' activation sums per 32 values), NULL otherwise. */
typedef void (*mt_qpack_rows_fn)(int64_t n, const void *packed, int64_t row0, int64_t row1, int nt,
                                 const uint8_t *xq, size_t xq_stride, float *sk, float *y,
                                 int64_t y_stride);
mt_qpack_rows_fn mt_qpack_avx512_fn(mt_dtype t);

static inline uint16_t mt_rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t mt_rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v); /* GGUF is little-endian, as is every x86-64 */
    return v;
}

/* Q4_K/Q5_K keep eight 6-bit scales and eight 6-bit mins in 12 bytes: bytes 0-3 hold
 * scales 0-3 in their low six bits, bytes 4-7 mins 0-3, bytes 8-11 the low nibbles of
 * scales 4-7 and (high nibble) mins 4-7, whose top two bits sit in the spare top bits
 * of bytes 0-3 and 4-7. Four lanes of a 32-bit word decode four at once. */
static inline void mt_k_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    const uint32_t u0 = mt_rd32(s), u1 = mt_rd32(s + 4), u2 = mt_rd32(s + 8);
    const uint32_t lo6 = 0x3f3f3f3fu, lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
    uint32_t w[4];
    w[0] = u0 & lo6;
    w[1] = (u2 & lo4) | (((u0 >> 6) & lo2) << 4);
    w[2] = u1 & lo6;
    w[3] = ((u2 >> 4) & lo4) | (((u1 >> 6) & lo2) << 4);
    memcpy(sc, &w[0], 8);
    memcpy(mn, &w[2], 8);
}

#endif
