/* AVX2+FMA+F16C kernels, compiled per function (target attribute) so the binary still
 * runs on any x86-64; the dispatcher calls them only after checking the CPU.
 *
 * A 32-value block of weights is expanded to 32 int8 (or uint8) lanes and multiplied
 * with the int8 activations by vpmaddubsw (u8 x s8 pairs -> i16) and vpmaddwd
 * (-> i32); signed weights go through the sign trick (|w| x sign(w)·a) because
 * vpmaddubsw wants one unsigned operand. No step saturates: a pair of products is at
 * most 2·128·127 = 32512 in i16. The integer lanes are converted to float once per
 * block (once per 256 for K-quants) and scaled into one FMA accumulator per token.
 *
 * Several tokens share each decoded weight block (tiles of up to TILE tokens). The
 * operations on one token's accumulator do not depend on the tile, so a token gets the
 * same bits alone or in a batch. */
#include "kernels/qdot_internal.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "kernels/dequant.h"

#define TGT __attribute__((target("avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline)) TGT

/* Token tile: per token one float and (K-quants) one integer accumulator stay in
 * registers next to the decoded weights. */
#define TILE 4

/* Token and sub-block loops have constant trip counts once inlined; -O2 alone keeps
 * them rolled with the accumulators in memory. */
#define UNROLL _Pragma("GCC unroll 8")

INL float f16(const uint8_t *p) {
    return _cvtsh_ss(mt_rd16(p));
}

/* Two adjacent f16 (a scale and its min) in one conversion: lanes 0 and 1. */
INL __m128 f16x2(const uint8_t *p) {
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)mt_rd32(p)));
}

INL float lane1(__m128 v) {
    return _mm_cvtss_f32(_mm_movehdup_ps(v));
}

INL float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INL __m256i loadu(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles first, then high ones, which is
 * element order in the 32-value formats. */
INL __m256i nibbles16(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* Bit i of qh -> byte i = 0xff or 0: byte i takes qh's byte i / 8 and tests bit i % 8. */
INL __m256i bits_to_bytes(uint32_t qh) {
    const __m256i idx = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2,
                                         2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), idx);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* Sum of u8 x s8 products, four adjacent ones per i32 lane. */
INL __m256i dot_u8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* The same weighted by a 16-bit factor per pair of products (K-quant scales). */
INL __m256i dot_u8_scaled(__m256i u, __m256i s, __m256i scale16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16);
}

/* ---- 32-value block formats ------------------------------------------------------ */

enum { Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 };

INL size_t bytes32(int kind) {
    return kind == Q4_0 ? 18 : kind == Q4_1 ? 20 : kind == Q5_0 ? 22 : kind == Q5_1 ? 24 : 34;
}

INL void tile32(int kind, int nt, int64_t nb, const uint8_t *w, const uint8_t *xq, size_t xs,
                float *out, int64_t os) {
    const int has_min = kind == Q4_1 || kind == Q5_1;
    const int is_signed = !has_min;
    __m256 acc[TILE];
    float summ[TILE];
    UNROLL
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps(), summ[t] = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += bytes32(kind)) {
        __m256i wv;
        float d, m = 0.0f;
        if (has_min) {
            const __m128 dm = f16x2(w);
            d = _mm_cvtss_f32(dm), m = lane1(dm);
        } else {
            d = f16(w);
        }
        switch (kind) {
        case Q4_0:
            wv = _mm256_sub_epi8(nibbles16(w + 2), _mm256_set1_epi8(8));
            break;
        case Q4_1:
            wv = nibbles16(w + 4);
            break;
        case Q5_0: /* nibble | 0xf0 is nibble - 16 in int8; a set fifth bit cancels the -16 */
            wv = _mm256_or_si256(
                nibbles16(w + 6),
                _mm256_andnot_si256(bits_to_bytes(mt_rd32(w + 2)), _mm256_set1_epi8((char)0xf0)));
            break;
        case Q5_1:
            wv = _mm256_or_si256(nibbles16(w + 8), _mm256_and_si256(bits_to_bytes(mt_rd32(w + 4)),
                                                                    _mm256_set1_epi8(0x10)));
            break;
        default:
            wv = loadu(w + 2);
            break;
        }
        const __m256i wabs = is_signed ? _mm256_sign_epi8(wv, wv) : wv;
        UNROLL
        for (int t = 0; t < nt; t++) {
            const mt_act32 *a = (const mt_act32 *)(const void *)(xq + t * xs) + b;
            const __m256i av = loadu(a->qs);
            const __m256i p = dot_u8(wabs, is_signed ? _mm256_sign_epi8(av, wv) : av);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(p), acc[t]);
            if (has_min) summ[t] += m * a->s;
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) out[t * os] = has_min ? hsum(acc[t]) + summ[t] : hsum(acc[t]);
}

/* ---- K-quants ------------------------------------------------------------------- */

enum { Q4_K, Q5_K };

/* All sixteen i16 lanes = lane j of an 8 x i16 vector broadcast to both halves. */
INL __m256i pick16(__m256i v8x2, int j) {
    return _mm256_shuffle_epi8(v8x2, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
}

INL void tile_k45(int kind, int nt, int64_t nb, const uint8_t *w, const uint8_t *xq, size_t xs,
                  float *out, int64_t os) {
    const int five = kind == Q5_K;
    __m256 acc[TILE];
    UNROLL
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0f), one8 = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; b++, w += five ? 176 : 144) {
        const uint8_t *qs = w + (five ? 48 : 16);
        uint8_t sc[8], mn[8];
        mt_k_scales(w + 4, sc, mn);
        const __m128i sc8 = _mm_loadl_epi64((const __m128i *)sc);
        const __m128i mn8 = _mm_loadl_epi64((const __m128i *)mn);
        const __m256i scv = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sc8));
        /* mn[j] twice, as i16: one factor per 16-value activation sum */
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8));
        const __m256i hb = five ? loadu(w + 16) : _mm256_setzero_si256();
        const __m128 dm = f16x2(w);
        const float d = _mm_cvtss_f32(dm), dmin = lane1(dm);
        __m256i isum[TILE];
        UNROLL
        for (int t = 0; t < nt; t++) isum[t] = _mm256_setzero_si256();
        UNROLL
        for (int p = 0; p < 4; p++) {
            const __m256i q = loadu(qs + 32 * p);
            __m256i lo = _mm256_and_si256(q, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            if (five) {
                const __m256i b0 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * p), one8);
                const __m256i b1 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * p + 1), one8);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(b0, 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(b1, 4));
            }
            const __m256i s0 = pick16(scv, 2 * p), s1 = pick16(scv, 2 * p + 1);
            UNROLL
            for (int t = 0; t < nt; t++) {
                const mt_act256 *a = (const mt_act256 *)(const void *)(xq + t * xs) + b;
                const __m256i d0 = dot_u8_scaled(lo, loadu(a->qs + 64 * p), s0);
                const __m256i d1 = dot_u8_scaled(hi, loadu(a->qs + 64 * p + 32), s1);
                isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(d0, d1));
            }
        }
        UNROLL
        for (int t = 0; t < nt; t++) {
            const mt_act256 *a = (const mt_act256 *)(const void *)(xq + t * xs) + b;
            const __m256i imin = _mm256_madd_epi16(loadu(a->bsums), mins);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(isum[t]), acc[t]);
            acc[t] =
                _mm256_fnmadd_ps(_mm256_set1_ps(dmin * a->d), _mm256_cvtepi32_ps(imin), acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) out[t * os] = hsum(acc[t]);
}

/* Q6_K values are unsigned 0..63 here; the -32 offset is taken off once per 16 values
 * through the activation sums: sum sc (q - 32) a = sum sc q a - 32 sum sc bsum. */
INL void tile_q6k(int nt, int64_t nb, const uint8_t *w, const uint8_t *xq, size_t xs, float *out,
                  int64_t os) {
    __m256 acc[TILE];
    UNROLL
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0f), top2 = _mm256_set1_epi8(0x30);
    for (int64_t b = 0; b < nb; b++, w += 210) {
        const uint8_t *ql = w, *qh = w + 128, *scales = w + 192;
        const float d = f16(w + 208);
        __m256i isum[TILE];
        UNROLL
        for (int t = 0; t < nt; t++) isum[t] = _mm256_setzero_si256();
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = loadu(ql + 64 * h), ql1 = loadu(ql + 64 * h + 32);
            const __m256i qhv = loadu(qh + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4),
                                   _mm256_and_si256(_mm256_slli_epi16(qhv, 4), top2));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                                   _mm256_and_si256(_mm256_slli_epi16(qhv, 2), top2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                                   _mm256_and_si256(qhv, top2));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                   _mm256_and_si256(_mm256_srli_epi16(qhv, 2), top2));
            /* scales 8h..8h+7 as i16 in both halves; run r takes 2r (first 16 values,
             * low half) and 2r + 1 (high half) */
            const __m256i scb = _mm256_broadcastsi128_si256(
                _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(scales + 8 * h))));
            __m256i sv[4];
            UNROLL
            for (int r = 0; r < 4; r++) {
                const char lo0 = (char)(4 * r), lo1 = (char)(4 * r + 1);
                const char hi0 = (char)(4 * r + 2), hi1 = (char)(4 * r + 3);
                sv[r] = _mm256_shuffle_epi8(
                    scb, _mm256_setr_epi8(lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0,
                                          lo1, lo0, lo1, lo0, lo1, hi0, hi1, hi0, hi1, hi0, hi1,
                                          hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1));
            }
            UNROLL
            for (int t = 0; t < nt; t++) {
                const mt_act256 *a = (const mt_act256 *)(const void *)(xq + t * xs) + b;
                UNROLL
                for (int r = 0; r < 4; r++) {
                    const __m256i p = dot_u8_scaled(q[r], loadu(a->qs + 128 * h + 32 * r), sv[r]);
                    isum[t] = _mm256_add_epi32(isum[t], p);
                }
            }
        }
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)scales));
        UNROLL
        for (int t = 0; t < nt; t++) {
            const mt_act256 *a = (const mt_act256 *)(const void *)(xq + t * xs) + b;
            const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(loadu(a->bsums), sc16), 5);
            const __m256i s = _mm256_sub_epi32(isum[t], off);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(s), acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) out[t * os] = hsum(acc[t]);
}

/* ---- F32 / F16 / BF16 rows against f32 activations ---------------------------------- */

enum { F32, F16, BF16 };

/* Four accumulators per token hide the FMA latency; tiles of two tokens keep those
 * eight and four converted weight vectors in registers. */
#define FTILE 2

INL __m256 load_f(int kind, const uint8_t *p) {
    switch (kind) {
    case F32:
        return _mm256_loadu_ps((const float *)(const void *)p);
    case F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    default:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    }
}

INL float scalar_f(int kind, const uint8_t *p) {
    float v;
    switch (kind) {
    case F32:
        memcpy(&v, p, sizeof v);
        return v;
    case F16:
        return f16(p);
    default:
        return mt_bf16_to_fp32(mt_rd16(p));
    }
}

INL void tile_f(int kind, int nt, int64_t n, const uint8_t *w, const float *xf, int64_t xs,
                float *out, int64_t os) {
    const int es = kind == F32 ? 4 : 2;
    __m256 acc[FTILE][4];
    UNROLL
    for (int t = 0; t < nt; t++) UNROLL
    for (int k = 0; k < 4; k++) acc[t][k] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 wv[4];
        UNROLL
        for (int k = 0; k < 4; k++) wv[k] = load_f(kind, w + es * (i + 8 * k));
        UNROLL
        for (int t = 0; t < nt; t++) UNROLL
        for (int k = 0; k < 4; k++)
            acc[t][k] = _mm256_fmadd_ps(wv[k], _mm256_loadu_ps(xf + t * xs + i + 8 * k), acc[t][k]);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 wv = load_f(kind, w + es * i);
        UNROLL
        for (int t = 0; t < nt; t++)
            acc[t][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xf + t * xs + i), acc[t][0]);
    }
    UNROLL
    for (int t = 0; t < nt; t++) {
        float tail = 0.0f;
        for (int64_t j = i; j < n; j++) tail += scalar_f(kind, w + es * j) * xf[t * xs + j];
        const __m256 s =
            _mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][1]), _mm256_add_ps(acc[t][2], acc[t][3]));
        out[t * os] = hsum(s) + tail;
    }
}

/* ---- Row functions: token tiles of constant size, so the loops above unroll ---------- */

#define ROW_Q(name, call)                                                                          \
    static TGT void name(int64_t n, const uint8_t *w, int nt, const uint8_t *xq, size_t xs,        \
                         const float *xf, int64_t xfs, float *out, int64_t os) {                   \
        (void)xf, (void)xfs;                                                                       \
        for (int t0 = 0; t0 < nt; t0 += TILE, xq += TILE * xs, out += TILE * os) {                 \
            switch (nt - t0 < TILE ? nt - t0 : TILE) {                                             \
            case 1:                                                                                \
                call(1);                                                                           \
                break;                                                                             \
            case 2:                                                                                \
                call(2);                                                                           \
                break;                                                                             \
            case 3:                                                                                \
                call(3);                                                                           \
                break;                                                                             \
            default:                                                                               \
                call(4);                                                                           \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
    }

#define ROW_F(name, kind)                                                                          \
    static TGT void name(int64_t n, const uint8_t *w, int nt, const uint8_t *xq, size_t xqs,       \
                         const float *xf, int64_t xs, float *out, int64_t os) {                    \
        (void)xq, (void)xqs;                                                                       \
        for (int t0 = 0; t0 < nt; t0 += FTILE, xf += FTILE * xs, out += FTILE * os) {              \
            if (nt - t0 >= 2)                                                                      \
                tile_f(kind, 2, n, w, xf, xs, out, os);                                            \
            else                                                                                   \
                tile_f(kind, 1, n, w, xf, xs, out, os);                                            \
        }                                                                                          \
    }

#define C_Q4_0(k) tile32(Q4_0, k, n / MT_QK, w, xq, xs, out, os)
#define C_Q4_1(k) tile32(Q4_1, k, n / MT_QK, w, xq, xs, out, os)
#define C_Q5_0(k) tile32(Q5_0, k, n / MT_QK, w, xq, xs, out, os)
#define C_Q5_1(k) tile32(Q5_1, k, n / MT_QK, w, xq, xs, out, os)
#define C_Q8_0(k) tile32(Q8_0, k, n / MT_QK, w, xq, xs, out, os)
#define C_Q4_K(k) tile_k45(Q4_K, k, n / MT_QK_K, w, xq, xs, out, os)
#define C_Q5_K(k) tile_k45(Q5_K, k, n / MT_QK_K, w, xq, xs, out, os)
#define C_Q6_K(k) tile_q6k(k, n / MT_QK_K, w, xq, xs, out, os)

ROW_Q(row_q4_0, C_Q4_0)
ROW_Q(row_q4_1, C_Q4_1)
ROW_Q(row_q5_0, C_Q5_0)
ROW_Q(row_q5_1, C_Q5_1)
ROW_Q(row_q8_0, C_Q8_0)
ROW_Q(row_q4_k, C_Q4_K)
ROW_Q(row_q5_k, C_Q5_K)
ROW_Q(row_q6_k, C_Q6_K)
ROW_F(row_f32, F32)
ROW_F(row_f16, F16)
ROW_F(row_bf16, BF16)

mt_qdot_row_fn mt_qdot_avx2_fn(mt_dtype t) {
    switch (t) {
    case MT_F32:
        return row_f32;
    case MT_F16:
        return row_f16;
    case MT_BF16:
        return row_bf16;
    case MT_Q4_0:
        return row_q4_0;
    case MT_Q4_1:
        return row_q4_1;
    case MT_Q5_0:
        return row_q5_0;
    case MT_Q5_1:
        return row_q5_1;
    case MT_Q8_0:
        return row_q8_0;
    case MT_Q4_K:
        return row_q4_k;
    case MT_Q5_K:
        return row_q5_k;
    case MT_Q6_K:
        return row_q6_k;
    }
    return NULL;
}

#else

mt_qdot_row_fn mt_qdot_avx2_fn(mt_dtype t) {
    (void)t;
    return NULL;
}

#endif
