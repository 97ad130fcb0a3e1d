/* AVX-512 + VNNI kernels, compiled per function (target attribute) so the binary still
 * runs on any x86-64; the dispatcher calls them only after checking the CPU.
 *
 * Batched decoding is bound by arithmetic, not by weight bandwidth: at 16 tokens the
 * AVX2 kernels spend ~8 vector operations per 32 values per token, mostly converting
 * each block's integer sum to float and scaling it. Here one vpdpbusd takes 64 products
 * and each int32 lane gathers all 16 products of one run of 16 consecutive values, so a
 * zmm accumulator holds 16 independent runs (a group of 256 values), and the float
 * conversion, scale and FMA happen once per 256 values per token instead of once per 32.
 *
 * That lane layout needs the values of a run spread over four vectors (lane l of vector
 * k holds values 4k..4k+3 of run sigma(l)); the activations are rearranged so once per
 * call (all rows share them) into a small stack buffer, the weights once per group of
 * each row, in registers, and used for up to 16 tokens.
 *
 * Q4_0, Q4_1 and Q8_0 go further: their full units are wide, 16 blocks over eight
 * vectors, a lane gathering a whole 32-value block, so the float work per token is
 * once per 512 values and the min term of Q4_1 uses all 16 lanes. That cuts the work
 * on the two pipes that run vpdpbusd, mul and FMA (the limit here) by a fifth, and the
 * activation records per value (re-read for every row, and past L1 they are bound by
 * L2 bandwidth) by a sixth. Tails of fewer than 16 blocks use the narrower units.
 *
 * vpdpbusd multiplies unsigned bytes with signed ones. Codes without an offset (Q4_1,
 * Q5_1, Q4_K, Q5_K, 0..31) are the unsigned operand and the activations a (-127..127)
 * the signed one. Elsewhere the weights of narrow units enter signed (-128..127,
 * offsets such as Q4_0's -8 applied first) and the activations as a + 128 (1..255):
 * sum w (a + 128) = sum w a + 128 sum w, so the per-row, per-lane constant -128 sum w
 * starts every token's integer sum. Wide units keep Q4_0's codes (0..15) and make Q8_0's
 * unsigned (+128): sum (w + o) a = sum w a + o sum a, so their sum starts at the per-
 * token, per-lane constant -o sum a kept in the activation record. Either way the
 * integer result is exact. Per-block or per-sub-block mins (Q4_1, Q5_1, Q4_K, Q5_K) are
 * applied in float through the activation sums, like the other kernels do. No integer
 * step can overflow: a lane sums at most 32 products of at most 255 * 128.
 *
 * The float work for one token is the same whatever the batch: groups in order, the
 * same operations per group, the same horizontal-sum tree per chunk of CH groups (the
 * chunks fixed by the row length alone), so a token gets the same bits alone or in a
 * batch. */
#include "kernels/avx512_util.h"
#include "kernels/qdot_internal.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stddef.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline)) TGT

/* Token and group loops have constant trip counts once inlined; unrolled, their
 * accumulators stay in registers. */
#define UNROLL _Pragma("GCC unroll 16")

/* Tokens per pass over a row: 16 float accumulators plus the row's decoded group
 * (4 weight vectors, scales, mins, offset) fill most of the 32 zmm registers. */
#define MAXT 16
/* Groups (of 256 values) whose activations are rearranged at once: 16 tokens of 8
 * groups (plus up to 3 tail units) take up to 66 KiB of stack, mostly L1-resident. */
#define CH 8
/* Bytes per rearranged (unit, token): the 256 activations, then the float activation
 * scale and the scaled activation sum (for formats with mins) per lane. */
#define REC 384
/* The same for a wide unit: 512 activations, 16 scales, then 16 scaled sums (formats
 * with mins) or the integer sums' starts (formats with an offset). */
#define RECW 640
/* Rows ahead whose weights are prefetched (measured best at 4 on Zen 5). */
#define PF_ROWS 4

enum { Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K };

INL int is_k(int f) {
    return f >= Q4_K;
}

INL int has_min(int f) {
    return f == Q4_1 || f == Q5_1 || f == Q4_K || f == Q5_K;
}

/* Weight codes without an offset (the formats with mins) are unsigned, so they can be
 * vpdpbusd's unsigned operand and the activations its signed one, unshifted. */
INL int uw(int f) {
    return has_min(f);
}

/* Formats whose full units are wide (16 blocks, one per lane); see decode_wide. */
INL int wide(int f) {
    return f == Q4_0 || f == Q4_1 || f == Q8_0;
}

/* Record bytes and offset of the scales in a record of a unit of V vectors. */
INL size_t rsize(int V) {
    return V == 8 ? RECW : REC;
}

INL size_t rscale(int V) {
    return V == 8 ? 512 : 256;
}

/* Whether a unit takes the weights as vpdpbusd's unsigned operand, the activations
 * unshifted as the signed one: codes without offset, and wide units, whose offset
 * (Q4_0's 8, Q8_0's 128 added to make the codes unsigned) the activation record undoes. */
INL int wun(int f, int V) {
    return uw(f) || V == 8;
}

/* What wide units of f add to their codes to make them unsigned. */
INL int woff(int f) {
    return f == Q4_0 ? 8 : f == Q8_0 ? 128 : 0;
}

/* Bytes of one block of the format. */
INL size_t bblock(int f) {
    switch (f) {
    case Q4_0:
        return 18;
    case Q4_1:
        return 20;
    case Q5_0:
        return 22;
    case Q5_1:
        return 24;
    case Q8_0:
        return 34;
    case Q4_K:
        return 144;
    case Q5_K:
        return 176;
    default:
        return 210;
    }
}

/* Bytes of one group of 256 values: eight 32-value blocks or one K-quant block. */
INL size_t bgroup(int f) {
    return is_k(f) ? bblock(f) : 8 * bblock(f);
}

/* ---- Lane layouts ------------------------------------------------------------------ */

/* A unit of V vectors (V = 4, 2 or 1) covers 64 V values: a group of 256 (eight 32-value
 * blocks or one K-quant block), or at the end of a row of 32-value blocks a tail of 4
 * or 2 blocks, which would waste half or three quarters of a full group. Lane l then
 * sums 4 V values, all from one 16-value run, so from one block or sub-block. A wide
 * unit (V = 8, two groups) has lane l sum the 32 values of block sigma(l). */

/* Per lane, the block (32 values; a K-quant sub-block) its values come from. V = 4:
 * after transpose4 lane l holds run sigma(l) = 4 (l % 4) + l / 4, of block sigma / 2.
 * V = 2: lane 4m + j holds runs m (j < 2) and 4 + m (j >= 2). V = 1: natural order. */
INL __m512i idx_block(int V) {
    if (V == 4) return _mm512_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6, 1, 3, 5, 7, 1, 3, 5, 7);
    if (V == 2) return _mm512_setr_epi32(0, 0, 2, 2, 0, 0, 2, 2, 1, 1, 3, 3, 1, 1, 3, 3);
    return _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
}

/* Per lane (V = 4), its 16-value run: sigma(l). Also takes lane 4m + j of the batched
 * horizontal sum to token order. */
INL __m512i idx_run(void) {
    return _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
}

/* One lane per block, which carries the block's min term (Q4_1/Q5_1 activation sum s). */
INL __mmask16 one_lane_per_block(int V) {
    return V == 4 ? 0x0f0f : V == 2 ? 0x0505 : 0x0101;
}

/* Vectors whose 128-bit lane m holds run 4v + m (v the vector) into the unit layout:
 * lane l of vector k then holds dword k (V = 4) of its run. */
INL void transpose(int V, __m512i x[4]) {
    if (V == 4) {
        mt_transpose4_epi32(x);
    } else if (V == 2) {
        const __m512i t0 = _mm512_unpacklo_epi64(x[0], x[1]);
        x[1] = _mm512_unpackhi_epi64(x[0], x[1]);
        x[0] = t0;
    }
}

INL __m512i bytes(char v) {
    return _mm512_set1_epi8(v);
}

/* ---- Horizontal sums: one fixed tree per token ------------------------------------ */

/* Lanes i + 8, then i + 4, then (0 + 2, 1 + 3), then the two left. */
INL float hsum(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The same tree for T = 2, 4, 8 or 16 tokens at once, each level adding the same lane
 * pairs as hsum (so the same bits), several tokens per instruction: out[t] = hsum(a[t]). */
INL void hsum_many(int T, const __m512 *a, float *out) {
    const __m512 z = _mm512_setzero_ps();
    __m512 l1[8], l2[4], l3[2];
    /* tokens 2p, 2p + 1: lanes i + (i + 8), 8 lanes each */
    UNROLL
    for (int p = 0; p < 8; p++) {
        if (2 * p >= T) {
            l1[p] = z;
            continue;
        }
        const __m512 x = a[2 * p], y = a[2 * p + 1];
        l1[p] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xee));
    }
    /* 4 tokens, 4 lanes each: i + (i + 4) */
    UNROLL
    for (int q = 0; q < 4; q++)
        l2[q] = _mm512_add_ps(_mm512_shuffle_f32x4(l1[2 * q], l1[2 * q + 1], 0x88),
                              _mm512_shuffle_f32x4(l1[2 * q], l1[2 * q + 1], 0xdd));
    /* per 128-bit lane two tokens: x0 + x2, x1 + x3 */
    UNROLL
    for (int r = 0; r < 2; r++) {
        const __m512d e = _mm512_castps_pd(l2[2 * r]), f = _mm512_castps_pd(l2[2 * r + 1]);
        l3[r] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(e, f)),
                              _mm512_castpd_ps(_mm512_unpackhi_pd(e, f)));
    }
    /* the last pair; lane 4m + j now holds token 4j + m */
    const __m512 s =
        _mm512_add_ps(_mm512_shuffle_ps(l3[0], l3[1], 0x88), _mm512_shuffle_ps(l3[0], l3[1], 0xdd));
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(idx_run(), s));
}

/* ---- Weights: one unit of one row, decoded into registers -------------------------- */

typedef struct {
    __m512i w[8]; /* weights, unit layout */
    __m512 s;     /* weight scale per lane */
    __m512 mn;    /* -min (or +min for Q4_1/Q5_1) per lane, formats with mins */
    __m512i init; /* -128 * (sum of the lane's weights): undoes the +128 on a (narrow
                     units of formats with offsets) */
} wunit;

/* The f16 at p + j * stride for the 2V blocks of a unit, as floats in lane order; with
 * pair set, also the f16 right after each (the min of Q4_1/Q5_1) into *second. */
INL __m512 block_halves(int V, const uint8_t *p, size_t stride, int pair, __m512 *second) {
    /* element inserts: building this through memory stalls on store forwarding */
    __m128i lo = _mm_cvtsi32_si128((int)mt_rd32(p));
    lo = _mm_insert_epi32(lo, (int)mt_rd32(p + stride), 1);
    __m256i all = _mm256_castsi128_si256(lo);
    if (V >= 2) {
        lo = _mm_insert_epi32(lo, (int)mt_rd32(p + 2 * stride), 2);
        lo = _mm_insert_epi32(lo, (int)mt_rd32(p + 3 * stride), 3);
        all = _mm256_castsi128_si256(lo);
    }
    if (V == 4) {
        __m128i hi = _mm_cvtsi32_si128((int)mt_rd32(p + 4 * stride));
        hi = _mm_insert_epi32(hi, (int)mt_rd32(p + 5 * stride), 1);
        hi = _mm_insert_epi32(hi, (int)mt_rd32(p + 6 * stride), 2);
        hi = _mm_insert_epi32(hi, (int)mt_rd32(p + 7 * stride), 3);
        all = _mm256_inserti128_si256(all, hi, 1);
    }
    /* d0 x0 d1 x1 ...: the next f16 interleaved */
    const __m512 f = _mm512_cvtph_ps(all);
    const __m512i even = _mm512_slli_epi32(idx_block(V), 1);
    if (pair) *second = _mm512_permutexvar_ps(_mm512_add_epi32(even, _mm512_set1_epi32(1)), f);
    return _mm512_permutexvar_ps(even, f);
}

/* Values 64v..64v+63 of a unit of 32-value blocks (blocks 2v, 2v + 1, stride bytes
 * apart) in natural order, so 128-bit lane m holds run 4v + m; unsigned codes. */
INL __m512i natural32(int f, const uint8_t *p, size_t stride, int v) {
    const uint8_t *b0 = p + 2 * (size_t)v * stride, *b1 = b0 + stride;
    if (f == Q8_0)
        return _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256((const void *)(b0 + 2))),
            _mm256_loadu_si256((const void *)(b1 + 2)), 1);
    const int qs = f == Q4_0 ? 2 : f == Q4_1 ? 4 : f == Q5_0 ? 6 : 8;
    /* each block's 16 bytes twice: low nibbles are its first 16 values, high the rest */
    __m512i y = _mm512_broadcast_i32x4(_mm_loadu_si128((const void *)(b0 + qs)));
    y = _mm512_mask_broadcast_i32x4(y, 0xff00, _mm_loadu_si128((const void *)(b1 + qs)));
    const __m512i sh = _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 0, 0, 0, 0, 4, 4, 4, 4);
    __m512i x = _mm512_and_si512(_mm512_srlv_epi32(y, sh), bytes(0x0f));
    if (f == Q5_0 || f == Q5_1) { /* fifth bits: bit i of qh is value i */
        const int at = f == Q5_0 ? 2 : 4;
        const __mmask64 hb = (__mmask64)mt_rd32(b0 + at) | (__mmask64)mt_rd32(b1 + at) << 32;
        x = _mm512_mask_add_epi8(x, hb, x, bytes(16));
    }
    return x;
}

/* Q4_K/Q5_K: sub-blocks 2v (low nibbles of qs[32v..]) and 2v+1 (high ones). */
INL __m512i natural_k45(int f, const uint8_t *p, int v) {
    const uint8_t *qs = p + (f == Q5_K ? 48 : 16);
    const __m256i q = _mm256_loadu_si256((const void *)(qs + 32 * v));
    __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
    x = _mm512_and_si512(x, bytes(0x0f));
    if (f == Q5_K) { /* bit j of qh[l] tops value l of sub-block j */
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const void *)(p + 16)));
        const __m512i sel = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (2 * v))),
                                               _mm256_set1_epi8((char)(1 << (2 * v + 1))), 1);
        x = _mm512_mask_add_epi8(x, _mm512_test_epi8_mask(qh, sel), x, bytes(16));
    }
    return x;
}

/* Q6_K: values 128h + 32r + l take nibble r >> 1 of ql[64h + 32 (r & 1) + l] and bits
 * 2r, 2r+1 of qh[32h + l]; vector v = 2h + c covers r = 2c, 2c + 1. */
INL __m512i natural_q6k(const uint8_t *p, int v) {
    const int h = v / 2, c = v % 2;
    const __m512i ql = _mm512_loadu_si512((const void *)(p + 64 * h));
    const __m512i lo = _mm512_and_si512(_mm512_srli_epi16(ql, 4 * c), bytes(0x0f));
    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const void *)(p + 128 + 32 * h)));
    const __m512i sh =
        _mm512_setr_epi64(4 * c, 4 * c, 4 * c, 4 * c, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2);
    const __m512i hi =
        _mm512_and_si512(_mm512_slli_epi16(_mm512_srlv_epi64(qh, sh), 4), bytes(0x30));
    return _mm512_or_si512(lo, hi);
}

/* The 16 blocks stride bytes apart of a wide unit, vectors j and 4 + j: 128-bit lane m
 * holds the first (vector j) and second (4 + j) 16-value run of block 4j + m. */
INL void natural_wide(int f, const uint8_t *p, size_t stride, __m512i x[8]) {
    UNROLL
    for (int j = 0; j < 4; j++) {
        const uint8_t *b = p + 4 * (size_t)j * stride;
        if (f == Q8_0) {
            const __m512i y0 = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_loadu_si256((const void *)(b + 2))),
                _mm256_loadu_si256((const void *)(b + stride + 2)), 1);
            const __m512i y1 = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_loadu_si256((const void *)(b + 2 * stride + 2))),
                _mm256_loadu_si256((const void *)(b + 3 * stride + 2)), 1);
            x[j] = _mm512_shuffle_i64x2(y0, y1, _MM_SHUFFLE(2, 0, 2, 0));
            x[4 + j] = _mm512_shuffle_i64x2(y0, y1, _MM_SHUFFLE(3, 1, 3, 1));
        } else { /* low nibbles are a block's first 16 values, high ones the rest */
            const int qs = f == Q4_0 ? 2 : 4;
            __m512i y = _mm512_castsi128_si512(_mm_loadu_si128((const void *)(b + qs)));
            y = _mm512_inserti32x4(y, _mm_loadu_si128((const void *)(b + stride + qs)), 1);
            y = _mm512_inserti32x4(y, _mm_loadu_si128((const void *)(b + 2 * stride + qs)), 2);
            y = _mm512_inserti32x4(y, _mm_loadu_si128((const void *)(b + 3 * stride + qs)), 3);
            x[j] = _mm512_and_si512(y, bytes(0x0f));
            x[4 + j] = _mm512_and_si512(_mm512_srli_epi16(y, 4), bytes(0x0f));
        }
    }
    transpose(4, x);
    transpose(4, x + 4);
}

/* The f16 at the start of each block of a wide unit (and the one after it, for the
 * formats with mins, into *mn), lane l taking block sigma(l). */
INL __m512 wide_halves(int f, const uint8_t *p, size_t stride, __m512 *mn) {
    __m128i q[4];
    UNROLL
    for (int k = 0; k < 4; k++) { /* lanes 4k..4k+3: blocks k, 4 + k, 8 + k, 12 + k */
        const uint8_t *b = p + (size_t)k * stride;
        q[k] = _mm_cvtsi32_si128((int)mt_rd32(b));
        q[k] = _mm_insert_epi32(q[k], (int)mt_rd32(b + 4 * stride), 1);
        q[k] = _mm_insert_epi32(q[k], (int)mt_rd32(b + 8 * stride), 2);
        q[k] = _mm_insert_epi32(q[k], (int)mt_rd32(b + 12 * stride), 3);
    }
    const __m512i all = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(q[0]), q[1], 1)),
        _mm256_inserti128_si256(_mm256_castsi128_si256(q[2]), q[3], 1), 1);
    if (has_min(f)) *mn = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(all, 16)));
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(all));
}

/* stride: bytes between the unit's blocks (32-value formats); 0 repeats the first, for
 * a last lone block whose partner lanes then meet zero activations. */
INL wunit decode(int f, int V, const uint8_t *p, size_t stride) {
    wunit u;
    __m512i x[8];
    if (V == 8) {
        natural_wide(f, p, stride, x);
        UNROLL
        for (int k = 0; k < 8; k++)
            u.w[k] = f == Q8_0 ? _mm512_xor_si512(x[k], bytes((char)0x80)) : x[k];
        u.init = _mm512_setzero_si512();
        u.mn = _mm512_setzero_ps();
        u.s = wide_halves(f, p, stride, &u.mn);
        return u;
    }
    UNROLL
    for (int v = 0; v < V; v++) {
        if (f == Q4_K || f == Q5_K)
            x[v] = natural_k45(f, p, v);
        else if (f == Q6_K)
            x[v] = _mm512_sub_epi8(natural_q6k(p, v), bytes(32));
        else if (f == Q4_0)
            x[v] = _mm512_sub_epi8(natural32(f, p, stride, v), bytes(8));
        else if (f == Q5_0)
            x[v] = _mm512_sub_epi8(natural32(f, p, stride, v), bytes(16));
        else
            x[v] = natural32(f, p, stride, v);
    }
    transpose(V, x);
    __m512i sum = _mm512_setzero_si512();
    UNROLL
    for (int k = 0; k < V; k++) {
        u.w[k] = x[k];
        if (!uw(f)) sum = _mm512_dpbusd_epi32(sum, bytes(1), x[k]);
    }
    u.init = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7));
    u.mn = _mm512_setzero_ps();
    if (f == Q4_K || f == Q5_K) {
        uint8_t sc[8], mn[8];
        mt_k_scales(p + 4, sc, mn);
        const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)mt_rd32(p)));
        const __m512 d = _mm512_broadcastss_ps(dm);
        const __m512 dmin = _mm512_broadcastss_ps(_mm_movehdup_ps(dm));
        const __m512i sci = _mm512_cvtepu8_epi32(_mm_loadl_epi64((const void *)sc));
        const __m512i mni = _mm512_cvtepu8_epi32(_mm_loadl_epi64((const void *)mn));
        u.s = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_permutexvar_epi32(idx_block(4), sci)));
        /* dmin * mn is exact (11 x 6 bits); negated so every format adds mn * sa */
        const __m512 m = _mm512_cvtepi32_ps(_mm512_permutexvar_epi32(idx_block(4), mni));
        u.mn = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(dmin, m));
    } else if (f == Q6_K) {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(mt_rd16(p + 208)));
        const __m512i sci = _mm512_cvtepi8_epi32(_mm_loadu_si128((const void *)(p + 192)));
        u.s = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_permutexvar_epi32(idx_run(), sci)));
    } else {
        u.s = block_halves(V, p, stride, has_min(f), &u.mn);
    }
    return u;
}

/* ---- Activations: one unit of one token, rearranged into a record ------------------- */

/* a: the token's activations for the unit (2V mt_act32, or one mt_act256). */
INL void rearrange(int f, int V, const uint8_t *a, uint8_t *rec) {
    __m512i x[8];
    if (V == 8) { /* as natural_wide for Q8_0; lane l takes block sigma(l)'s d and s */
        natural_wide(Q8_0, a + offsetof(mt_act32, qs) - 2, sizeof(mt_act32), x);
        const __m512i at = _mm512_mullo_epi32(idx_run(), _mm512_set1_epi32(sizeof(mt_act32)));
        _mm512_store_ps(rec + 512, _mm512_i32gather_ps(at, a + offsetof(mt_act32, d), 1));
        if (has_min(f))
            _mm512_store_ps(rec + 576, _mm512_i32gather_ps(at, a + offsetof(mt_act32, s), 1));
        __m512i sum = _mm512_setzero_si512();
        UNROLL
        for (int k = 0; k < 8; k++) {
            _mm512_store_si512((void *)(rec + 64 * k), x[k]);
            sum = _mm512_dpbusd_epi32(sum, bytes(1), x[k]);
        }
        /* sum (w + off) a - off sum a: the integer sum starts at the second term */
        if (woff(f))
            _mm512_store_si512((void *)(rec + 576),
                               _mm512_mullo_epi32(sum, _mm512_set1_epi32(-woff(f))));
        return;
    }
    if (is_k(f)) {
        const mt_act256 *b = (const mt_act256 *)(const void *)a;
        UNROLL
        for (int v = 0; v < 4; v++) x[v] = _mm512_loadu_si512((const void *)(b->qs + 64 * v));
        const __m512 d = _mm512_set1_ps(b->d);
        _mm512_store_ps(rec + 256, d);
        if (has_min(f)) {
            const __m512i bs = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const void *)b->bsums));
            const __m512 s = _mm512_cvtepi32_ps(_mm512_permutexvar_epi32(idx_run(), bs));
            _mm512_store_ps(rec + 320, _mm512_mul_ps(d, s));
        }
    } else {
        const mt_act32 *b = (const mt_act32 *)(const void *)a;
        UNROLL
        for (int v = 0; v < V; v++)
            x[v] = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_loadu_si256((const void *)b[2 * v].qs)),
                _mm256_loadu_si256((const void *)b[2 * v + 1].qs), 1);
        __m512 d = _mm512_setzero_ps(), s = _mm512_setzero_ps();
        UNROLL
        for (int j = 0; j < 2 * V; j++) { /* lane j: block j's scale and sum */
            d = _mm512_mask_broadcastss_ps(d, (__mmask16)(1u << j), _mm_set_ss(b[j].d));
            s = _mm512_mask_broadcastss_ps(s, (__mmask16)(1u << j), _mm_set_ss(b[j].s));
        }
        _mm512_store_ps(rec + 256, _mm512_permutexvar_ps(idx_block(V), d));
        /* the block's s once, in one of its lanes */
        if (has_min(f))
            _mm512_store_ps(rec + 320,
                            _mm512_maskz_permutexvar_ps(one_lane_per_block(V), idx_block(V), s));
    }
    transpose(V, x);
    UNROLL
    for (int k = 0; k < V; k++)
        _mm512_store_si512((void *)(rec + 64 * k),
                           uw(f) ? x[k] : _mm512_xor_si512(x[k], bytes((char)0x80)));
}

/* ---- One row, T tokens, the units of one chunk ------------------------------------ */

/* One unit for T tokens: rec holds their records rsize(V) bytes apart. */
INL void step(int f, int T, int V, const uint8_t *w, size_t stride, const uint8_t *rec,
              __m512 *acc) {
    const wunit u = decode(f, V, w, stride);
    UNROLL
    for (int t = 0; t < T; t++) {
        const uint8_t *r = rec + t * rsize(V);
        __m512i i = V == 8 && woff(f) ? _mm512_load_si512((const void *)(r + 576))
                    : wun(f, V)       ? _mm512_setzero_si512()
                                      : u.init;
        UNROLL
        for (int k = 0; k < V; k++) {
            const __m512i a = _mm512_load_si512((const void *)(r + 64 * k));
            i = wun(f, V) ? _mm512_dpbusd_epi32(i, u.w[k], a) : _mm512_dpbusd_epi32(i, a, u.w[k]);
        }
        /* first: it needs no integer sum, so it runs while vpdpbusd's chain is busy */
        if (has_min(f)) acc[t] = _mm512_fmadd_ps(u.mn, _mm512_load_ps(r + rscale(V) + 64), acc[t]);
        const __m512 scale = _mm512_mul_ps(u.s, _mm512_load_ps(r + rscale(V)));
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), scale, acc[t]);
    }
}

/* w: the chunk's first unit of the row; nw wide units, ng full groups, then the tail
 * units in tails (bit 2: 4 blocks, bit 1: 2 blocks, bit 0: 1 block); recw, rec: the
 * tokens' records of the wide and of the other units, wstride and gstride bytes per
 * unit. */
INL void tile(int f, int T, int64_t nw, int64_t ng, int tails, const uint8_t *w,
              const uint8_t *recw, const uint8_t *rec, size_t wstride, size_t gstride, float *y,
              int64_t ys, int first) {
    const size_t bb = bblock(f);
    __m512 acc[MAXT];
    UNROLL
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t g = 0; g < nw; g++, w += 2 * bgroup(f), recw += wstride)
        step(f, T, 8, w, bb, recw, acc);
    for (int64_t g = 0; g < ng; g++, w += bgroup(f), rec += gstride) step(f, T, 4, w, bb, rec, acc);
    if (!is_k(f) && tails) {
        if (tails & 4) step(f, T, 2, w, bb, rec, acc), w += 4 * bb, rec += gstride;
        if (tails & 2) step(f, T, 1, w, bb, rec, acc), w += 2 * bb, rec += gstride;
        if (tails & 1) step(f, T, 1, w, 0, rec, acc);
    }
    float v[MAXT];
    if (T == 1)
        v[0] = hsum(acc[0]);
    else
        hsum_many(T, acc, v);
    UNROLL
    for (int t = 0; t < T; t++) y[t * ys] = first ? v[t] : y[t * ys] + v[t];
}

/* ---- Rows ----------------------------------------------------------------------- */

/* Activations are rearranged CH groups at a time, for up to MAXT tokens: the stack
 * buffer stays bounded and in L1 for any row length. Chunk boundaries depend on n
 * alone, so each token's partial sums are grouped the same way in any batch. */
INL void rows(int f, int64_t n, const uint8_t *w, size_t rb, int64_t nrows, int nt,
              const uint8_t *xq, size_t xs, float *y, int64_t ys) {
    const int64_t nblk = n / (is_k(f) ? MT_QK_K : MT_QK);
    const int64_t nfull = is_k(f) ? nblk : nblk / 8;
    const int tails = is_k(f) ? 0 : (int)(nblk % 8);
    const size_t ag = is_k(f) ? sizeof(mt_act256) : 8 * sizeof(mt_act32);
    const int64_t nchunk = nfull ? (nfull + CH - 1) / CH : 1;
    _Alignas(64) uint8_t buf[(CH + 3) * MAXT * REC];
    for (int t0 = 0; t0 < nt; t0 += MAXT) {
        const int tn = nt - t0 < MAXT ? nt - t0 : MAXT;
        const size_t gs = (size_t)tn * REC, ws = (size_t)tn * RECW;
        for (int64_t c = 0; c < nchunk; c++) {
            const int64_t c0 = c * CH, cg = nfull - c0 < CH ? nfull - c0 : CH;
            const int ct = c == nchunk - 1 ? tails : 0; /* the last chunk takes the tail */
            /* pairs of groups as wide units, then a lone group */
            const int64_t cw = wide(f) ? cg / 2 : 0, c4 = cg - 2 * cw;
            uint8_t *const buf4 = buf + (size_t)cw * ws; /* the records of the rest */
            for (int t = 0; t < tn; t++) {
                const uint8_t *a = xq + (size_t)(t0 + t) * xs + (size_t)c0 * ag;
                uint8_t *rec = buf + (size_t)t * RECW;
                for (int64_t g = 0; g < cw; g++, a += 2 * ag, rec += ws) rearrange(f, 8, a, rec);
                rec = buf4 + (size_t)t * REC;
                for (int64_t g = 0; g < c4; g++, a += ag, rec += gs) rearrange(f, 4, a, rec);
                if (ct & 4) rearrange(f, 2, a, rec), a += 4 * sizeof(mt_act32), rec += gs;
                if (ct & 2) rearrange(f, 1, a, rec), a += 2 * sizeof(mt_act32), rec += gs;
                if (ct & 1) { /* a lone last block: its partner is all zeros */
                    mt_act32 pad[2];
                    memset(pad, 0, sizeof pad);
                    memcpy(pad, a, sizeof(mt_act32));
                    rearrange(f, 1, (const uint8_t *)pad, rec);
                }
            }
            for (int64_t r = 0; r < nrows; r++) {
                const uint8_t *wr = w + (size_t)r * rb + (size_t)c0 * bgroup(f);
                if (r + PF_ROWS < nrows) {
                    /* with 16 tokens of work per row, the hardware prefetcher falls
                     * behind on the weights; fetching a few rows ahead keeps this bound
                     * by arithmetic rather than by memory latency */
                    const uint8_t *pf = wr + PF_ROWS * rb;
                    const size_t len = (size_t)cg * bgroup(f) + (ct ? 7 * bblock(f) : 0);
                    for (size_t o = 0; o < len; o += 64)
                        _mm_prefetch((const char *)pf + o, _MM_HINT_T0);
                }
                float *yr = y + (size_t)t0 * (size_t)ys + r;
                const int first = c == 0;
                for (int tt = 0; tt < tn;) {
                    const int left = tn - tt;
                    const uint8_t *rw = buf + (size_t)tt * RECW, *rec = buf4 + (size_t)tt * REC;
                    float *yt = yr + (size_t)tt * (size_t)ys;
                    /* passes of 16, 8, 4, 2, 1 tokens: constant sizes, so they unroll */
                    if (left >= 16) {
                        tile(f, 16, cw, c4, ct, wr, rw, rec, ws, gs, yt, ys, first);
                        tt += 16;
                    } else if (left >= 8) {
                        tile(f, 8, cw, c4, ct, wr, rw, rec, ws, gs, yt, ys, first);
                        tt += 8;
                    } else if (left >= 4) {
                        tile(f, 4, cw, c4, ct, wr, rw, rec, ws, gs, yt, ys, first);
                        tt += 4;
                    } else if (left >= 2) {
                        tile(f, 2, cw, c4, ct, wr, rw, rec, ws, gs, yt, ys, first);
                        tt += 2;
                    } else {
                        tile(f, 1, cw, c4, ct, wr, rw, rec, ws, gs, yt, ys, first);
                        tt += 1;
                    }
                }
            }
        }
    }
}

#define ROWS(name, f)                                                                              \
    static TGT void name(int64_t n, const uint8_t *w, size_t rb, int64_t nrows, int nt,            \
                         const uint8_t *xq, size_t xs, float *y, int64_t ys) {                     \
        rows(f, n, w, rb, nrows, nt, xq, xs, y, ys);                                               \
    }

ROWS(rows_q4_0, Q4_0)
ROWS(rows_q4_1, Q4_1)
ROWS(rows_q5_0, Q5_0)
ROWS(rows_q5_1, Q5_1)
ROWS(rows_q8_0, Q8_0)
ROWS(rows_q4_k, Q4_K)
ROWS(rows_q5_k, Q5_K)
ROWS(rows_q6_k, Q6_K)

mt_qdot_rows_fn mt_qdot_avx512_fn(mt_dtype t) {
    switch (t) {
    case MT_Q4_0:
        return rows_q4_0;
    case MT_Q4_1:
        return rows_q4_1;
    case MT_Q5_0:
        return rows_q5_0;
    case MT_Q5_1:
        return rows_q5_1;
    case MT_Q8_0:
        return rows_q8_0;
    case MT_Q4_K:
        return rows_q4_k;
    case MT_Q5_K:
        return rows_q5_k;
    case MT_Q6_K:
        return rows_q6_k;
    default:
        return NULL;
    }
}

#else

mt_qdot_rows_fn mt_qdot_avx512_fn(mt_dtype t) {
    (void)t;
    return NULL;
}

#endif
