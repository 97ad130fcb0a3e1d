/* AVX2 and AVX-512 block decoders, bit for bit equal to the scalar ones in dequant.c.
 *
 * Every element is computed with the very operations of the scalar code: exact int ->
 * float conversion, then one rounded multiply and, where the format has a minimum, one
 * rounded add or subtract, with the operands in the same roles. Intrinsics are never
 * contracted into FMA, and the target strings leave FMA out so no compiler could.
 * Products of two finite floats do not depend on operand order, so lanes agree.
 *
 * Scales are converted with F16C, exact for every finite half (subnormals included).
 * A block whose scale is inf or NaN goes to the scalar decoder instead: F16C quiets a
 * signalling NaN that the scalar conversion keeps, and when two NaNs meet in d·q + m the
 * payload that survives depends on operand order, which only the scalar code defines.
 * One 16-bit test per block keeps that exactness cheap. */
#include "kernels/dequant_internal.h"

#include "kernels/dequant.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,f16c")))
#define AVX512 __attribute__((target("avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")))

static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Exponent all ones: inf or NaN. */
static int special(const uint8_t *p) {
    return (rd16(p) & 0x7c00) == 0x7c00;
}

/* The block's scales: d first (all but Q6_K), and the min or dmin after it. */
static int special_d(const uint8_t *b) {
    return special(b);
}

static int special_dm(const uint8_t *b) {
    return special(b) | special(b + 2);
}

static int special_q6_k(const uint8_t *b) {
    return special(b + 208);
}

/* ---------------------------------------------------------------- AVX2 */

/* Eight bytes widened to eight 32-bit lanes. */
AVX2 static inline __m256i u8x8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

AVX2 static inline __m256 scale8(const uint8_t *p) {
    return _mm256_set1_ps(_cvtsh_ss(rd16(p)));
}

/* y = d·q */
AVX2 static inline void put_mul8(float *y, __m256 d, __m256i q) {
    _mm256_storeu_ps(y, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
}

/* y = d·q + m */
AVX2 static inline void put_mul_add8(float *y, __m256 d, __m256i q, __m256 m) {
    _mm256_storeu_ps(y, _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(q)), m));
}

/* y = d·q - m */
AVX2 static inline void put_mul_sub8(float *y, __m256 d, __m256i q, __m256 m) {
    _mm256_storeu_ps(y, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(q)), m));
}

/* Bit (first + lane) of h in bit 4 of each lane: the fifth bit of Q5_0/Q5_1 elements. */
AVX2 static inline __m256i qh_bits8(__m256i h, int first) {
    const __m256i shift =
        _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(first));
    return _mm256_and_si256(_mm256_slli_epi32(_mm256_srlv_epi32(h, shift), 4),
                            _mm256_set1_epi32(16));
}

AVX2 static inline void q4_0_avx2(const uint8_t *b, float *y) {
    const __m256 d = scale8(b);
    const __m256i lo4 = _mm256_set1_epi32(15), eight = _mm256_set1_epi32(8);
    for (int k = 0; k < 2; k++) {
        const __m256i v = u8x8(b + 2 + 8 * k);
        put_mul8(y + 8 * k, d, _mm256_sub_epi32(_mm256_and_si256(v, lo4), eight));
        put_mul8(y + 16 + 8 * k, d, _mm256_sub_epi32(_mm256_srli_epi32(v, 4), eight));
    }
}

AVX2 static inline void q4_1_avx2(const uint8_t *b, float *y) {
    const __m256 d = scale8(b), m = scale8(b + 2);
    const __m256i lo4 = _mm256_set1_epi32(15);
    for (int k = 0; k < 2; k++) {
        const __m256i v = u8x8(b + 4 + 8 * k);
        put_mul_add8(y + 8 * k, d, _mm256_and_si256(v, lo4), m);
        put_mul_add8(y + 16 + 8 * k, d, _mm256_srli_epi32(v, 4), m);
    }
}

AVX2 static inline void q5_0_avx2(const uint8_t *b, float *y) {
    const __m256 d = scale8(b);
    const __m256i h = _mm256_set1_epi32((int)rd32(b + 2));
    const __m256i lo4 = _mm256_set1_epi32(15), sixteen = _mm256_set1_epi32(16);
    for (int k = 0; k < 2; k++) {
        const __m256i v = u8x8(b + 6 + 8 * k);
        const __m256i lo = _mm256_or_si256(_mm256_and_si256(v, lo4), qh_bits8(h, 8 * k));
        const __m256i hi = _mm256_or_si256(_mm256_srli_epi32(v, 4), qh_bits8(h, 16 + 8 * k));
        put_mul8(y + 8 * k, d, _mm256_sub_epi32(lo, sixteen));
        put_mul8(y + 16 + 8 * k, d, _mm256_sub_epi32(hi, sixteen));
    }
}

AVX2 static inline void q5_1_avx2(const uint8_t *b, float *y) {
    const __m256 d = scale8(b), m = scale8(b + 2);
    const __m256i h = _mm256_set1_epi32((int)rd32(b + 4));
    const __m256i lo4 = _mm256_set1_epi32(15);
    for (int k = 0; k < 2; k++) {
        const __m256i v = u8x8(b + 8 + 8 * k);
        const __m256i lo = _mm256_or_si256(_mm256_and_si256(v, lo4), qh_bits8(h, 8 * k));
        const __m256i hi = _mm256_or_si256(_mm256_srli_epi32(v, 4), qh_bits8(h, 16 + 8 * k));
        put_mul_add8(y + 8 * k, d, lo, m);
        put_mul_add8(y + 16 + 8 * k, d, hi, m);
    }
}

AVX2 static inline void q8_0_avx2(const uint8_t *b, float *y) {
    const __m256 d = scale8(b);
    for (int k = 0; k < 4; k++) {
        const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + 2 + 8 * k)));
        /* the scalar code multiplies q·d; the product is the same either way round */
        put_mul8(y + 8 * k, d, q);
    }
}

/* The eight 6-bit scales (bytes 0-7) and mins (bytes 8-15) of a K-quant header s[12]
 * (see k_scale_min in dequant.c), unpacked with byte shuffles: the scalar unpacking
 * would also pay a store-forwarding stall when its eight ints are reloaded as a vector. */
AVX2 static inline __m128i k_scales_u8(const uint8_t *s) {
    /* s[12..15] are loaded but never selected: they belong to the same block */
    const __m128i v = _mm_loadu_si128((const __m128i *)s);
    /* low parts: s[j], s[j+8], s[j+4], s[j+8] for sc 0-3, sc 4-7, m 0-3, m 4-7 */
    const __m128i a =
        _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    /* m 4-7 take the high nibble of s[j+8] */
    const __m128i a_hi = _mm_and_si128(_mm_srli_epi16(a, 4), _mm_set1_epi8(0x0f));
    const __m128i low =
        _mm_and_si128(_mm_blend_epi32(a, a_hi, 8), _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63,
                                                                 63, 63, 63, 15, 15, 15, 15));
    /* high parts of sc 4-7 and m 4-7: the top two bits of s[j] and s[j+4], moved to 5:4 */
    const __m128i t =
        _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m128i high = _mm_and_si128(_mm_srli_epi16(t, 2), _mm_set1_epi8(0x30));
    return _mm_or_si128(low, high);
}

/* dl[j] = d·sc[j] and ml[j] = dmin·m[j], rounded as the scalar code rounds them. */
AVX2 static inline void k_scales_avx2(const uint8_t *b, __m256 *dl, __m256 *ml) {
    const __m128i sm = k_scales_u8(b + 4);
    *dl = _mm256_mul_ps(scale8(b), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
    *ml = _mm256_mul_ps(scale8(b + 2),
                        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
}

/* Lane j of v in every lane: a shuffle, not a store and reload, which would stall on
 * store forwarding from the vector store to the narrow load. */
AVX2 static inline __m256 lane8(__m256 v, int j) {
    return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(j));
}

/* Q4_K when qh is NULL, Q5_K otherwise (see block_k_4_5 in dequant.c). */
AVX2 static inline void k_4_5_avx2(const uint8_t *b, const uint8_t *qh, const uint8_t *qs,
                                   float *y) {
    __m256 dl, ml;
    k_scales_avx2(b, &dl, &ml);
    const __m256i lo4 = _mm256_set1_epi32(15), sixteen = _mm256_set1_epi32(16);
    /* qh[0..31] widened once; each pair of sub-blocks shifts it down by two, so bits j
     * and j+1 sit at bits 0 and 1 where immediate shifts move them to bit 4 */
    __m256i h[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                    _mm256_setzero_si256()};
    if (qh)
        for (int c = 0; c < 4; c++) h[c] = u8x8(qh + 8 * c);
    for (int j = 0; j < 8; j += 2) {
        const __m256 d0 = lane8(dl, j), m0 = lane8(ml, j);
        const __m256 d1 = lane8(dl, j + 1), m1 = lane8(ml, j + 1);
        const uint8_t *q = qs + 16 * j;
        for (int c = 0; c < 4; c++) {
            const __m256i v = u8x8(q + 8 * c);
            __m256i lo = _mm256_and_si256(v, lo4), hi = _mm256_srli_epi32(v, 4);
            if (qh) {
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi32(h[c], 4), sixteen));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi32(h[c], 3), sixteen));
                h[c] = _mm256_srli_epi32(h[c], 2);
            }
            put_mul_sub8(y + 32 * j + 8 * c, d0, lo, m0);
            put_mul_sub8(y + 32 * j + 32 + 8 * c, d1, hi, m1);
        }
    }
}

AVX2 static inline void q4_k_avx2(const uint8_t *b, float *y) {
    k_4_5_avx2(b, NULL, b + 16, y);
}

AVX2 static inline void q5_k_avx2(const uint8_t *b, float *y) {
    k_4_5_avx2(b, b + 16, b + 48, y);
}

/* Q6_K (see block_q6_k in dequant.c): per half of 128, ql bytes A = ql[l], B = ql[32+l]
 * and qh byte C = qh[l] give runs 0..3 as A&15, B&15, A>>4, B>>4 with top bits from
 * C's two-bit fields 0..3. */
AVX2 static inline void q6_k_avx2(const uint8_t *b, float *y) {
    const int8_t *scales = (const int8_t *)(b + 192);
    const __m256 d = scale8(b + 208);
    __m256 dl[2]; /* dl[h] holds the eight scales of half h */
    for (int h = 0; h < 2; h++) {
        const __m256i s = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(scales + 8 * h)));
        dl[h] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(s));
    }
    const __m256i lo4 = _mm256_set1_epi32(15), top = _mm256_set1_epi32(0x30);
    const __m256i off = _mm256_set1_epi32(32);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        float *yh = y + 128 * h;
        for (int l = 0; l < 32; l += 8) {
            const __m256i a = u8x8(ql + l), bb = u8x8(ql + 32 + l), c = u8x8(qh + l);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(a, lo4),
                                               _mm256_and_si256(_mm256_slli_epi32(c, 4), top));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(bb, lo4),
                                               _mm256_and_si256(_mm256_slli_epi32(c, 2), top));
            const __m256i q2 = _mm256_or_si256(_mm256_srli_epi32(a, 4), _mm256_and_si256(c, top));
            const __m256i q3 = _mm256_or_si256(_mm256_srli_epi32(bb, 4),
                                               _mm256_and_si256(_mm256_srli_epi32(c, 2), top));
            const int s = l / 16; /* scale of run r is s + 2r within the half */
            put_mul8(yh + l, lane8(dl[h], s), _mm256_sub_epi32(q0, off));
            put_mul8(yh + 32 + l, lane8(dl[h], s + 2), _mm256_sub_epi32(q1, off));
            put_mul8(yh + 64 + l, lane8(dl[h], s + 4), _mm256_sub_epi32(q2, off));
            put_mul8(yh + 96 + l, lane8(dl[h], s + 6), _mm256_sub_epi32(q3, off));
        }
    }
}

/* Halves with exponent 31 rebuilt with integer operations: F16C would set the quiet bit
 * of a signalling NaN, the scalar conversion (and numpy) keeps the payload as it is. */
AVX2 static void f16_avx2(const uint8_t *src, float *dst, int64_t n) {
    const __m256i e31 = _mm256_set1_epi32(0x7c00), man = _mm256_set1_epi32(0x3ff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000), sgn = _mm256_set1_epi32(0x8000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)(src + 2 * i));
        const __m256i h = _mm256_cvtepu16_epi32(raw);
        const __m256i spec = _mm256_cmpeq_epi32(_mm256_and_si256(h, e31), e31);
        const __m256i bits =
            _mm256_or_si256(_mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(h, sgn), 16), inf),
                            _mm256_slli_epi32(_mm256_and_si256(h, man), 13));
        const __m256 f = _mm256_blendv_ps(_mm256_cvtph_ps(raw), _mm256_castsi256_ps(bits),
                                          _mm256_castsi256_ps(spec));
        _mm256_storeu_ps(dst + i, f);
    }
    for (; i < n; i++) dst[i] = mt_fp16_to_fp32(rd16(src + 2 * i));
}

AVX2 static void bf16_avx2(const uint8_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + 2 * i)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(h, 16));
    }
    for (; i < n; i++) dst[i] = mt_bf16_to_fp32(rd16(src + 2 * i));
}

/* One row loop per type so the block decoder inlines into it. */
#define ROWS(isa, name, type, bytes, elems, is_special)                                            \
    isa static void rows_##name(const uint8_t *src, float *dst, int64_t nb) {                      \
        for (int64_t i = 0; i < nb; i++) {                                                         \
            const uint8_t *b = src + (size_t)i * (bytes);                                          \
            float *y = dst + i * (elems);                                                          \
            if (is_special(b))                                                                     \
                mt_dq_block_scalar(type, b, y);                                                    \
            else                                                                                   \
                name(b, y);                                                                        \
        }                                                                                          \
    }

ROWS(AVX2, q4_0_avx2, MT_Q4_0, 18, 32, special_d)
ROWS(AVX2, q4_1_avx2, MT_Q4_1, 20, 32, special_dm)
ROWS(AVX2, q5_0_avx2, MT_Q5_0, 22, 32, special_d)
ROWS(AVX2, q5_1_avx2, MT_Q5_1, 24, 32, special_dm)
ROWS(AVX2, q8_0_avx2, MT_Q8_0, 34, 32, special_d)
ROWS(AVX2, q4_k_avx2, MT_Q4_K, 144, 256, special_dm)
ROWS(AVX2, q5_k_avx2, MT_Q5_K, 176, 256, special_dm)
ROWS(AVX2, q6_k_avx2, MT_Q6_K, 210, 256, special_q6_k)

int mt_dq_run_avx2(mt_dtype t, const uint8_t *src, float *dst, int64_t n) {
    switch (t) {
    case MT_F16:
        f16_avx2(src, dst, n);
        return 1;
    case MT_BF16:
        bf16_avx2(src, dst, n);
        return 1;
    case MT_Q4_0:
        rows_q4_0_avx2(src, dst, n / 32);
        return 1;
    case MT_Q4_1:
        rows_q4_1_avx2(src, dst, n / 32);
        return 1;
    case MT_Q5_0:
        rows_q5_0_avx2(src, dst, n / 32);
        return 1;
    case MT_Q5_1:
        rows_q5_1_avx2(src, dst, n / 32);
        return 1;
    case MT_Q8_0:
        rows_q8_0_avx2(src, dst, n / 32);
        return 1;
    case MT_Q4_K:
        rows_q4_k_avx2(src, dst, n / 256);
        return 1;
    case MT_Q5_K:
        rows_q5_k_avx2(src, dst, n / 256);
        return 1;
    case MT_Q6_K:
        rows_q6_k_avx2(src, dst, n / 256);
        return 1;
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------- AVX-512 */

/* Sixteen bytes widened to sixteen 32-bit lanes. */
AVX512 static inline __m512i u8x16(const uint8_t *p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

AVX512 static inline __m512 scale16(const uint8_t *p) {
    return _mm512_set1_ps(_cvtsh_ss(rd16(p)));
}

AVX512 static inline __m512 lane16(__m512 v, int j) {
    return _mm512_permutexvar_ps(_mm512_set1_epi32(j), v);
}

AVX512 static inline void put_mul16(float *y, __m512 d, __m512i q) {
    _mm512_storeu_ps(y, _mm512_mul_ps(d, _mm512_cvtepi32_ps(q)));
}

AVX512 static inline void put_mul_add16(float *y, __m512 d, __m512i q, __m512 m) {
    _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(q)), m));
}

AVX512 static inline void put_mul_sub16(float *y, __m512 d, __m512i q, __m512 m) {
    _mm512_storeu_ps(y, _mm512_sub_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(q)), m));
}

AVX512 static inline void q4_0_avx512(const uint8_t *b, float *y) {
    const __m512 d = scale16(b);
    const __m512i v = u8x16(b + 2), eight = _mm512_set1_epi32(8);
    put_mul16(y, d, _mm512_sub_epi32(_mm512_and_si512(v, _mm512_set1_epi32(15)), eight));
    put_mul16(y + 16, d, _mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight));
}

AVX512 static inline void q4_1_avx512(const uint8_t *b, float *y) {
    const __m512 d = scale16(b), m = scale16(b + 2);
    const __m512i v = u8x16(b + 4);
    put_mul_add16(y, d, _mm512_and_si512(v, _mm512_set1_epi32(15)), m);
    put_mul_add16(y + 16, d, _mm512_srli_epi32(v, 4), m);
}

/* The 32 fifth bits are a ready-made lane mask: 16 where the bit is set. */
AVX512 static inline void q5_avx512(const uint8_t *qh, const uint8_t *qs, __m512i *lo,
                                    __m512i *hi) {
    const uint32_t h = rd32(qh);
    const __m512i v = u8x16(qs), sixteen = _mm512_set1_epi32(16);
    const __m512i l = _mm512_and_si512(v, _mm512_set1_epi32(15)), u = _mm512_srli_epi32(v, 4);
    *lo = _mm512_mask_or_epi32(l, (__mmask16)h, l, sixteen);
    *hi = _mm512_mask_or_epi32(u, (__mmask16)(h >> 16), u, sixteen);
}

AVX512 static inline void q5_0_avx512(const uint8_t *b, float *y) {
    const __m512 d = scale16(b);
    const __m512i sixteen = _mm512_set1_epi32(16);
    __m512i lo, hi;
    q5_avx512(b + 2, b + 6, &lo, &hi);
    put_mul16(y, d, _mm512_sub_epi32(lo, sixteen));
    put_mul16(y + 16, d, _mm512_sub_epi32(hi, sixteen));
}

AVX512 static inline void q5_1_avx512(const uint8_t *b, float *y) {
    const __m512 d = scale16(b), m = scale16(b + 2);
    __m512i lo, hi;
    q5_avx512(b + 4, b + 8, &lo, &hi);
    put_mul_add16(y, d, lo, m);
    put_mul_add16(y + 16, d, hi, m);
}

AVX512 static inline void q8_0_avx512(const uint8_t *b, float *y) {
    const __m512 d = scale16(b);
    put_mul16(y, d, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2))));
    put_mul16(y + 16, d, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18))));
}

AVX512 static inline void k_4_5_avx512(const uint8_t *b, const uint8_t *qh, const uint8_t *qs,
                                       float *y) {
    __m256 dl8, ml8;
    k_scales_avx2(b, &dl8, &ml8);
    const __m512 dl = _mm512_castps256_ps512(dl8), ml = _mm512_castps256_ps512(ml8);
    const __m512i lo4 = _mm512_set1_epi32(15), sixteen = _mm512_set1_epi32(16);
    for (int j = 0; j < 8; j += 2) {
        const __m512 d0 = lane16(dl, j), m0 = lane16(ml, j);
        const __m512 d1 = lane16(dl, j + 1), m1 = lane16(ml, j + 1);
        const uint8_t *q = qs + 16 * j;
        for (int c = 0; c < 32; c += 16) {
            const __m512i v = u8x16(q + c);
            __m512i lo = _mm512_and_si512(v, lo4), hi = _mm512_srli_epi32(v, 4);
            if (qh) {
                /* bits j and j+1 of qh[c..c+15] as lane masks */
                const __m128i h = _mm_loadu_si128((const __m128i *)(qh + c));
                const __mmask16 k0 = _mm_test_epi8_mask(h, _mm_set1_epi8((char)(1 << j)));
                const __mmask16 k1 = _mm_test_epi8_mask(h, _mm_set1_epi8((char)(1 << (j + 1))));
                lo = _mm512_mask_or_epi32(lo, k0, lo, sixteen);
                hi = _mm512_mask_or_epi32(hi, k1, hi, sixteen);
            }
            put_mul_sub16(y + 32 * j + c, d0, lo, m0);
            put_mul_sub16(y + 32 * j + 32 + c, d1, hi, m1);
        }
    }
}

AVX512 static inline void q4_k_avx512(const uint8_t *b, float *y) {
    k_4_5_avx512(b, NULL, b + 16, y);
}

AVX512 static inline void q5_k_avx512(const uint8_t *b, float *y) {
    k_4_5_avx512(b, b + 16, b + 48, y);
}

AVX512 static inline void q6_k_avx512(const uint8_t *b, float *y) {
    const __m512 d = scale16(b + 208);
    const __m512 dl = _mm512_mul_ps(
        d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 192)))));
    const __m512i lo4 = _mm512_set1_epi32(15), top = _mm512_set1_epi32(0x30);
    const __m512i off = _mm512_set1_epi32(32);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        float *yh = y + 128 * h;
        for (int l = 0; l < 32; l += 16) {
            const __m512i a = u8x16(ql + l), bb = u8x16(ql + 32 + l), c = u8x16(qh + l);
            const __m512i q0 = _mm512_or_si512(_mm512_and_si512(a, lo4),
                                               _mm512_and_si512(_mm512_slli_epi32(c, 4), top));
            const __m512i q1 = _mm512_or_si512(_mm512_and_si512(bb, lo4),
                                               _mm512_and_si512(_mm512_slli_epi32(c, 2), top));
            const __m512i q2 = _mm512_or_si512(_mm512_srli_epi32(a, 4), _mm512_and_si512(c, top));
            const __m512i q3 = _mm512_or_si512(_mm512_srli_epi32(bb, 4),
                                               _mm512_and_si512(_mm512_srli_epi32(c, 2), top));
            const int s = 8 * h + l / 16;
            put_mul16(yh + l, lane16(dl, s), _mm512_sub_epi32(q0, off));
            put_mul16(yh + 32 + l, lane16(dl, s + 2), _mm512_sub_epi32(q1, off));
            put_mul16(yh + 64 + l, lane16(dl, s + 4), _mm512_sub_epi32(q2, off));
            put_mul16(yh + 96 + l, lane16(dl, s + 6), _mm512_sub_epi32(q3, off));
        }
    }
}

AVX512 static void f16_avx512(const uint8_t *src, float *dst, int64_t n) {
    const __m512i e31 = _mm512_set1_epi32(0x7c00), man = _mm512_set1_epi32(0x3ff);
    const __m512i inf = _mm512_set1_epi32(0x7f800000), sgn = _mm512_set1_epi32(0x8000);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(src + 2 * i));
        const __m512i h = _mm512_cvtepu16_epi32(raw);
        const __mmask16 spec = _mm512_cmpeq_epi32_mask(_mm512_and_si512(h, e31), e31);
        const __m512i bits =
            _mm512_or_si512(_mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(h, sgn), 16), inf),
                            _mm512_slli_epi32(_mm512_and_si512(h, man), 13));
        const __m512 f = _mm512_mask_mov_ps(_mm512_cvtph_ps(raw), spec, _mm512_castsi512_ps(bits));
        _mm512_storeu_ps(dst + i, f);
    }
    f16_avx2(src + 2 * i, dst + i, n - i);
}

AVX512 static void bf16_avx512(const uint8_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + 2 * i)));
        _mm512_storeu_si512(dst + i, _mm512_slli_epi32(h, 16));
    }
    bf16_avx2(src + 2 * i, dst + i, n - i);
}

ROWS(AVX512, q4_0_avx512, MT_Q4_0, 18, 32, special_d)
ROWS(AVX512, q4_1_avx512, MT_Q4_1, 20, 32, special_dm)
ROWS(AVX512, q5_0_avx512, MT_Q5_0, 22, 32, special_d)
ROWS(AVX512, q5_1_avx512, MT_Q5_1, 24, 32, special_dm)
ROWS(AVX512, q8_0_avx512, MT_Q8_0, 34, 32, special_d)
ROWS(AVX512, q4_k_avx512, MT_Q4_K, 144, 256, special_dm)
ROWS(AVX512, q5_k_avx512, MT_Q5_K, 176, 256, special_dm)
ROWS(AVX512, q6_k_avx512, MT_Q6_K, 210, 256, special_q6_k)

int mt_dq_run_avx512(mt_dtype t, const uint8_t *src, float *dst, int64_t n) {
    switch (t) {
    case MT_F16:
        f16_avx512(src, dst, n);
        return 1;
    case MT_BF16:
        bf16_avx512(src, dst, n);
        return 1;
    case MT_Q4_0:
        rows_q4_0_avx512(src, dst, n / 32);
        return 1;
    case MT_Q4_1:
        rows_q4_1_avx512(src, dst, n / 32);
        return 1;
    case MT_Q5_0:
        rows_q5_0_avx512(src, dst, n / 32);
        return 1;
    case MT_Q5_1:
        rows_q5_1_avx512(src, dst, n / 32);
        return 1;
    case MT_Q8_0:
        rows_q8_0_avx512(src, dst, n / 32);
        return 1;
    case MT_Q4_K:
        rows_q4_k_avx512(src, dst, n / 256);
        return 1;
    case MT_Q5_K:
        rows_q5_k_avx512(src, dst, n / 256);
        return 1;
    case MT_Q6_K:
        rows_q6_k_avx512(src, dst, n / 256);
        return 1;
    default:
        return 0;
    }
}

#else /* not x86-64: the scalar code does everything */

int mt_dq_run_avx2(mt_dtype t, const uint8_t *src, float *dst, int64_t n) {
    (void)t, (void)src, (void)dst, (void)n;
    return 0;
}

int mt_dq_run_avx512(mt_dtype t, const uint8_t *src, float *dst, int64_t n) {
    (void)t, (void)src, (void)dst, (void)n;
    return 0;
}

#endif
