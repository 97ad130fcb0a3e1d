#include <math.h>

#include "kernels/qdot.h"
#include "kernels/qdot_internal.h"

/* One implementation only: it runs once per token per matrix (O(n) against the
 * matrix's O(n * rows)), and a single one means the scalar and SIMD dot products see
 * the very same int8 activations, so comparing them tests the dot products alone. */

int mt_qdot_supported(mt_dtype t) {
    switch (t) {
    case MT_F32:
    case MT_F16:
    case MT_BF16:
    case MT_Q4_0:
    case MT_Q4_1:
    case MT_Q5_0:
    case MT_Q5_1:
    case MT_Q8_0:
    case MT_Q4_K:
    case MT_Q5_K:
    case MT_Q6_K:
        return 1;
    }
    return 0;
}

static int is_float_type(mt_dtype t) {
    return t == MT_F32 || t == MT_F16 || t == MT_BF16;
}

static int is_k_type(mt_dtype t) {
    return t == MT_Q4_K || t == MT_Q5_K || t == MT_Q6_K;
}

/* 0: f32 as it is, 1: 32-element int8 blocks, 2: 256-element int8 blocks. */
static int act_kind(mt_dtype t) {
    return is_float_type(t) ? 0 : is_k_type(t) ? 2 : 1;
}

int mt_act_same(mt_dtype a, mt_dtype b) {
    return mt_qdot_supported(a) && mt_qdot_supported(b) && act_kind(a) == act_kind(b);
}

size_t mt_act_bytes(mt_dtype t, int64_t n) {
    if (!mt_qdot_supported(t) || is_float_type(t) || n <= 0) return 0;
    if (is_k_type(t)) return (size_t)(n / MT_QK_K) * sizeof(mt_act256);
    return (size_t)(n / MT_QK) * sizeof(mt_act32);
}

/* Symmetric int8 with the scale of the largest magnitude, so the extreme value is
 * exact and every other one is off by at most d/2. NaN-safe: the clamp runs before the
 * conversion, which would be undefined for NaN or out-of-range values. */
static float quantize_block(const float *x, int n, int8_t *q) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    const float d = amax / 127.0f;
    const float id = amax > 0.0f && isfinite(amax) ? 127.0f / amax : 0.0f;
    for (int i = 0; i < n; i++) {
        float v = x[i] * id;
        v = v >= -127.0f ? v : -127.0f; /* also maps NaN to -127 */
        v = v <= 127.0f ? v : 127.0f;
        /* Adding 1.5·2^23 leaves the integer nearest to v (ties to even, as lrintf does in
         * the default rounding mode) in the low mantissa bits: the same value without a
         * libm call per element, which made this loop a tenth of beam-search time. */
        const float r = (v + 12582912.0f) - 12582912.0f;
        q[i] = (int8_t)r;
    }
    return d;
}

mt_status mt_quantize_act(mt_dtype t, const float *x, int64_t n, void *out) {
    if (!mt_qdot_supported(t))
        return mt_fail(MT_ERR_UNSUPPORTED, "no quantised dot product for type %s",
                       mt_dtype_name((int)t));
    if (is_float_type(t)) return MT_OK;
    const int64_t bs = is_k_type(t) ? MT_QK_K : MT_QK;
    if (n <= 0 || n % bs)
        return mt_fail(MT_ERR_ARG, "activation length %lld is not a positive multiple of %lld",
                       (long long)n, (long long)bs);
    if (is_k_type(t)) {
        mt_act256 *b = out;
        for (int64_t i = 0; i < n / MT_QK_K; i++, x += MT_QK_K) {
            b[i].d = quantize_block(x, MT_QK_K, b[i].qs);
            for (int g = 0; g < MT_QK_K / 16; g++) {
                int s = 0;
                for (int l = 0; l < 16; l++) s += b[i].qs[16 * g + l];
                b[i].bsums[g] = (int16_t)s;
            }
        }
    } else {
        mt_act32 *b = out;
        for (int64_t i = 0; i < n / MT_QK; i++, x += MT_QK) {
            b[i].d = quantize_block(x, MT_QK, b[i].qs);
            int s = 0;
            for (int l = 0; l < MT_QK; l++) s += b[i].qs[l];
            b[i].s = b[i].d * (float)s;
        }
    }
    return MT_OK;
}
