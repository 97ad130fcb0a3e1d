#include "kernels/quantize.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "kernels/dequant.h"

/* Bit equality with numpy needs every product and sum rounded to float where numpy
 * rounds it: float evaluation and no fused multiply-add (C11 mode keeps GCC from
 * contracting; each rounding step below is its own expression). */
_Static_assert(FLT_EVAL_METHOD == 0, "quantisation needs float evaluation in float");

#define QK 32

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

uint16_t mt_quantize_fp16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) <= 0x7f800000u) return mt_fp32_to_fp16(f);
    /* numpy keeps a NaN's payload unquieted; mt_fp32_to_fp16 quiets it like F16C does. */
    uint16_t h = (uint16_t)(0x7c00u + ((x & 0x7fffffu) >> 13));
    if (h == 0x7c00u) h++;
    return (uint16_t)(((x >> 16) & 0x8000u) | h);
}

uint16_t mt_quantize_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) x = (x & 0xffff0000u) | 0x400000u;
    return (uint16_t)(((uint64_t)x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* numpy's float32 -> uint8/int8 cast on x86-64: truncation through a wide integer
 * keeping the low byte; NaN, infinities and values past 2^31 all end as 0 there. */
static uint8_t np_cast_u8(float v) {
    if (!(fabsf(v) < 0x1p31f)) return 0;
    return (uint8_t)(int32_t)v;
}

/* numpy's reductions: NaN wins, and among equal values (0.0 and -0.0) the later one. */
static float block_max(const float *x) {
    float m = x[0];
    for (int i = 1; i < QK && !isnan(m); i++)
        if (x[i] >= m || isnan(x[i])) m = x[i];
    return m;
}

static float block_min(const float *x) {
    float m = x[0];
    for (int i = 1; i < QK && !isnan(m); i++)
        if (x[i] <= m || isnan(x[i])) m = x[i];
    return m;
}

/* The signed value of largest magnitude, the first on ties (np.argmax). */
static float block_absmax_signed(const float *x) {
    int best = 0;
    for (int i = 1; i < QK && !isnan(x[best]); i++)
        if (fabsf(x[i]) > fabsf(x[best]) || isnan(x[i])) best = i;
    return x[best];
}

/* x86 division returns a NaN dividend quieted but with its sign, and numpy's does; GCC
 * rewrites x / -levels as (-x) / levels, which flips a NaN's sign, so NaN goes around. */
static float divide_keeping_nan(float x, float y) {
    if (!isnan(x)) return x / y;
    uint32_t u = f32_bits(x) | 0x400000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

static float inverse(float d) {
    return d == 0.0f ? 0.0f : 1.0f / d;
}

static void quantize_q8_0(const float *x, uint8_t *out) {
    float amax = fabsf(x[0]);
    for (int i = 1; i < QK && !isnan(amax); i++)
        if (fabsf(x[i]) > amax || isnan(x[i])) amax = fabsf(x[i]);
    float d = amax / 127.0f, id = inverse(d);
    put16(out, mt_quantize_fp16(d));
    /* np_roundf rounds half away from zero, exactly roundf for finite values. */
    for (int i = 0; i < QK; i++) {
        float v = x[i] * id;
        out[2 + i] = np_cast_u8(roundf(v));
    }
}

/* Symmetric 4/5-bit codes: q = trunc(x / d + offset), d = -max / offset_int. */
static void symmetric_codes(const float *x, float levels, float *d_out, uint8_t *q, uint8_t top) {
    float max = block_absmax_signed(x);
    float d = divide_keeping_nan(max, -levels), id = inverse(d);
    float bias = levels + 0.5f;
    for (int i = 0; i < QK; i++) {
        float v = x[i] * id;
        v = truncf(v + bias);
        uint8_t c = np_cast_u8(v);
        q[i] = c > top ? top : c;
    }
    *d_out = d;
}

/* Asymmetric codes: q = trunc((x - min) / d + 0.5), d = (max - min) / top. */
static void affine_codes(const float *x, float *d_out, float *m_out, uint8_t *q, uint8_t top) {
    float max = block_max(x), min = block_min(x);
    float d = (max - min) / (float)top, id = inverse(d);
    for (int i = 0; i < QK; i++) {
        float v = x[i] - min;
        v = v * id;
        v = truncf(v + 0.5f);
        uint8_t c = np_cast_u8(v);
        q[i] = c > top ? top : c;
    }
    *d_out = d;
    *m_out = min;
}

/* Low nibbles: element j in the low half of byte j, element j+16 in the high half. */
static void pack_nibbles(const uint8_t *q, uint8_t *qs) {
    for (int j = 0; j < QK / 2; j++) qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + QK / 2] << 4));
}

/* Fifth bits: bit i of the little-endian 32-bit word belongs to element i. */
static void pack_high_bits(const uint8_t *q, uint8_t *qh) {
    memset(qh, 0, 4);
    for (int i = 0; i < QK; i++) qh[i / 8] |= (uint8_t)(((q[i] >> 4) & 1) << (i % 8));
}

static void quantize_q4_0(const float *x, uint8_t *out) {
    uint8_t q[QK];
    float d;
    symmetric_codes(x, 8.0f, &d, q, 15);
    put16(out, mt_quantize_fp16(d));
    pack_nibbles(q, out + 2);
}

static void quantize_q4_1(const float *x, uint8_t *out) {
    uint8_t q[QK];
    float d, m;
    affine_codes(x, &d, &m, q, 15);
    put16(out, mt_quantize_fp16(d));
    put16(out + 2, mt_quantize_fp16(m));
    pack_nibbles(q, out + 4);
}

static void quantize_q5_0(const float *x, uint8_t *out) {
    uint8_t q[QK];
    float d;
    symmetric_codes(x, 16.0f, &d, q, 31);
    put16(out, mt_quantize_fp16(d));
    pack_high_bits(q, out + 2);
    pack_nibbles(q, out + 6);
}

static void quantize_q5_1(const float *x, uint8_t *out) {
    uint8_t q[QK];
    float d, m;
    affine_codes(x, &d, &m, q, 31);
    put16(out, mt_quantize_fp16(d));
    put16(out + 2, mt_quantize_fp16(m));
    pack_high_bits(q, out + 4);
    pack_nibbles(q, out + 8);
}

typedef void (*block_fn)(const float *x, uint8_t *out);

static block_fn block_quantizer(mt_dtype t) {
    switch (t) {
    case MT_Q4_0:
        return quantize_q4_0;
    case MT_Q4_1:
        return quantize_q4_1;
    case MT_Q5_0:
        return quantize_q5_0;
    case MT_Q5_1:
        return quantize_q5_1;
    case MT_Q8_0:
        return quantize_q8_0;
    default:
        return NULL;
    }
}

int mt_quantize_supported(mt_dtype t) {
    return t == MT_F32 || t == MT_F16 || t == MT_BF16 || block_quantizer(t) != NULL;
}

static void quantize_halves(mt_dtype t, const float *src, uint8_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        put16(dst + 2 * i, t == MT_F16 ? mt_quantize_fp16(src[i]) : mt_quantize_bf16(src[i]));
}

mt_status mt_quantize(mt_dtype t, const float *src, void *dst, int64_t n) {
    if (!mt_quantize_supported(t))
        return mt_fail(MT_ERR_UNSUPPORTED, "quantize: meteor cannot produce type %s",
                       mt_dtype_name((int)t));
    int64_t be = mt_dtype_block_elems(t);
    if (n < 0 || n % be != 0)
        return mt_fail(MT_ERR_ARG, "quantize: %lld values are not whole %s blocks of %lld",
                       (long long)n, mt_dtype_name((int)t), (long long)be);
    uint8_t *out = dst;
    if (t == MT_F32) {
        if (n) memcpy(out, src, (size_t)n * sizeof *src);
        return MT_OK;
    }
    if (t == MT_F16 || t == MT_BF16) {
        quantize_halves(t, src, out, n);
        return MT_OK;
    }
    block_fn fn = block_quantizer(t);
    size_t bb = mt_dtype_block_bytes(t);
    for (int64_t b = 0; b < n / QK; b++) fn(src + b * QK, out + (size_t)b * bb);
    return MT_OK;
}
