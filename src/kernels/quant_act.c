#include <math.h>

#include "kernels/qdot.h"
#include "kernels/qdot_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

/* The scalar, AVX2 and AVX-512 quantisers give the same bits (same float operations in the
 * same order, no FMA), so the scalar and SIMD dot products still see the very same int8
 * activations and comparing them tests the dot products alone. The AVX2 one exists
 * because quantising 16 tokens' activations was a quarter of a batched decoding step
 * once the dot products used AVX-512. */

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

#if HAVE_X86
/* quantize_block for n a multiple of 32. max_ps(a, m) returns m when a is NaN, as the
 * scalar comparison skips NaN; max_ps(v, -127) maps NaN to -127 as the scalar clamp
 * does. */
__attribute__((target("avx2"))) static float quantize_block_avx2(const float *x, int n, int8_t *q) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8)
        m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m);
    float l[8];
    _mm256_storeu_ps(l, m);
    float amax = 0.0f;
    for (int j = 0; j < 8; j++) amax = l[j] > amax ? l[j] : amax;
    const float d = amax / 127.0f;
    const float id = amax > 0.0f && isfinite(amax) ? 127.0f / amax : 0.0f;
    const __m256 vid = _mm256_set1_ps(id), lo = _mm256_set1_ps(-127.0f),
                 hi = _mm256_set1_ps(127.0f), magic = _mm256_set1_ps(12582912.0f);
    for (int i = 0; i < n; i += 32) {
        __m256i w[4];
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vid);
            v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
            v = _mm256_sub_ps(_mm256_add_ps(v, magic), magic);
            w[k] = _mm256_cvttps_epi32(v);
        }
        /* packs interleave 128-bit lanes; the permute puts the 32 bytes back in order. */
        const __m256i p16a = _mm256_packs_epi32(w[0], w[1]), p16b = _mm256_packs_epi32(w[2], w[3]);
        const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b),
                                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + i), p8);
    }
    return d;
}

/* sums[j] = sum of q[8j .. 8j+7] for the n/8 groups of eight: sad_epu8 adds eight
 * unsigned bytes, so the signed ones are biased by 128 (xor) and 8·128 taken off. */
__attribute__((target("avx2"))) static void sums8_avx2(const int8_t *q, int n, int *sums) {
    const __m256i bias = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
    for (int i = 0; i < n; i += 32) {
        const __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + i)), bias);
        int64_t l[4];
        _mm256_storeu_si256((__m256i *)l, _mm256_sad_epu8(v, zero));
        for (int j = 0; j < 4; j++) sums[i / 8 + j] = (int)l[j] - 8 * 128;
    }
}
#endif

/* One block of n (a multiple of 16) values for the AVX-512 kernels: the same float
 * operations as quantize_block (so the same bits), sixteen lanes at a time, and the
 * sums of each 16 codes into sums16 (exact: the rounded values are small integers in
 * float). The AVX2 path stored its max and its sums to memory and finished them in
 * scalar code, half of a prompt's activation quantisation. */
__attribute__((target("avx512f,avx512bw,avx512dq"))) static float
quantize_avx512(const float *x, int n, int8_t *q, int *sums16) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16)
        m = _mm512_max_ps(_mm512_andnot_ps(sign, _mm512_loadu_ps(x + i)), m);
    const float amax = _mm512_reduce_max_ps(m);
    const float d = amax / 127.0f;
    const float id = amax > 0.0f && isfinite(amax) ? 127.0f / amax : 0.0f;
    const __m512 vid = _mm512_set1_ps(id), lo = _mm512_set1_ps(-127.0f),
                 hi = _mm512_set1_ps(127.0f), magic = _mm512_set1_ps(12582912.0f);
    for (int i = 0; i < n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vid);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        v = _mm512_sub_ps(_mm512_add_ps(v, magic), magic);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(v)));
        sums16[i / 16] = (int)_mm512_reduce_add_ps(v);
    }
    return d;
}

/* Whether the AVX-512 quantiser serves: with the AVX-512 kernels, whose CPU check
 * covers F, BW and DQ. */
static int avx512_on(void) {
#if HAVE_X86
    return mt_qdot_get_impl() == MT_QDOT_AVX512;
#else
    return 0;
#endif
}

static int simd_on(void) {
#if HAVE_X86
    return mt_qdot_get_impl() != MT_QDOT_SCALAR && mt_qdot_avx2_available();
#else
    return 0;
#endif
}

/* sums[j] = sum of q[8j .. 8j+7]: exact integers whichever way they are added. */
static void sums8(int simd, const int8_t *q, int n, int *sums) {
#if HAVE_X86
    if (simd) {
        sums8_avx2(q, n, sums);
        return;
    }
#endif
    for (int j = 0; j < n / 8; j++) {
        int s = 0;
        for (int l = 0; l < 8; l++) s += q[8 * j + l];
        sums[j] = s;
    }
}

static float quantize_any(int simd, const float *x, int n, int8_t *q) {
#if HAVE_X86
    if (simd) return quantize_block_avx2(x, n, q);
#endif
    return quantize_block(x, n, q);
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
    /* Asked once per call, not per block: the choice is an atomic load behind a call. */
    const int simd = simd_on();
#if HAVE_X86
    if (avx512_on()) {
        int s16[MT_QK_K / 16];
        if (is_k_type(t)) {
            mt_act256 *b = out;
            for (int64_t i = 0; i < n / MT_QK_K; i++, x += MT_QK_K) {
                b[i].d = quantize_avx512(x, MT_QK_K, b[i].qs, s16);
                for (int g = 0; g < MT_QK_K / 16; g++) b[i].bsums[g] = (int16_t)s16[g];
            }
        } else {
            mt_act32 *b = out;
            for (int64_t i = 0; i < n / MT_QK; i++, x += MT_QK) {
                b[i].d = quantize_avx512(x, MT_QK, b[i].qs, s16);
                b[i].s = b[i].d * (float)(s16[0] + s16[1]);
            }
        }
        return MT_OK;
    }
#endif
    if (is_k_type(t)) {
        mt_act256 *b = out;
        for (int64_t i = 0; i < n / MT_QK_K; i++, x += MT_QK_K) {
            b[i].d = quantize_any(simd, x, MT_QK_K, b[i].qs);
            int s8[MT_QK_K / 8];
            sums8(simd, b[i].qs, MT_QK_K, s8);
            for (int g = 0; g < MT_QK_K / 16; g++)
                b[i].bsums[g] = (int16_t)(s8[2 * g] + s8[2 * g + 1]);
        }
    } else {
        mt_act32 *b = out;
        for (int64_t i = 0; i < n / MT_QK; i++, x += MT_QK) {
            b[i].d = quantize_any(simd, x, MT_QK, b[i].qs);
            int s8[MT_QK / 8];
            sums8(simd, b[i].qs, MT_QK, s8);
            b[i].s = b[i].d * (float)(s8[0] + s8[1] + s8[2] + s8[3]);
        }
    }
    return MT_OK;
}
