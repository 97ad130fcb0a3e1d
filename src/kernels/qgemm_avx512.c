/* Prompt passes: many tokens against rows of 32-value blocks (Q4_0, Q4_1, Q5_0, Q8_0, and
 * Q4_K's 32-value sub-blocks), with AVX-512 VNNI, sixteen rows per vector.
 *
 * The decoding kernels (qdot_avx512.c) give each int32 lane a block of one row and end
 * every row with a horizontal sum per token; a row of 576 values is a wide unit plus a
 * two-block tail, and the tail and the sum cost about a third of the work. Here lane r
 * belongs to row r of a group of sixteen: one vpdpbusd multiplies four values of each
 * of the sixteen rows with the same four activations of one token (broadcast), so there
 * is no horizontal sum and no tail; a block costs eight vpdpbusd and four float
 * operations per token for sixteen rows, whatever the row length.
 *
 * The rows are rearranged into that layout once per call and group (held in a small
 * buffer while every token of the call passes over them), so the weights in memory keep
 * their GGUF layout for everything else.
 *
 * Per block, with codes q (made unsigned: Q8_0 + 128; Q5_0's fifth bit added) and the token's int8
 * activations a with scale da and sa = da * sum(a): dot = d * da * sum(q a) + m * sa, where m is
 * Q4_1's min, Q4_0's -8 d, Q5_0's -16 d, Q8_0's -128 d; for Q4_K d is d * sc and m
 * -dmin * mn of the sub-block, and sa the sub-block's part of the 256-value record. The integer sum
 * is exact; the float steps are the same for a token whatever else the call holds, so a token's
 * result does not depend on the other tokens (it does differ in rounding from the decoding
 * kernels). */
#include "kernels/qgemm.h"
#include "kernels/avx512_util.h"
#include "kernels/qdot_internal.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdlib.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c")))
#define INL static inline __attribute__((always_inline)) TGT
#define UNROLL _Pragma("GCC unroll 16")

enum { Q4_0, Q4_1, Q5_0, Q8_0, Q4_K };

/* Tokens per pass over a block: eight int32 and eight float accumulators, the block's
 * eight weight vectors, its scales and offsets take 28 of the 32 registers. */
#define TT 8

/* One rearranged block of a group: lane r of w[k] holds values 4k..4k+3 of row r; d and m
 * per row. */
typedef struct {
    __m512i w[8];
    float d[16];
    float m[16];
} gblock;

INL size_t block_bytes(int f) {
    return f == Q4_0 ? 18 : f == Q4_1 ? 20 : f == Q5_0 ? 22 : 34;
}

/* Rows g, 4 + g, 8 + g, 12 + g (of rows p, stride rb apart; rows past nr repeat the last)
 * in the four 128-bit lanes, 16 bytes from offset off of block b. */
INL __m512i rows4(const uint8_t *p, size_t rb, int nr, size_t off, int g) {
    /* explicit inserts: their lane must be an immediate, which a loop is not at -O1 */
#define ROW(i)                                                                                     \
    _mm_loadu_si128(                                                                               \
        (const void *)(p + (size_t)(4 * (i) + g < nr ? 4 * (i) + g : nr - 1) * rb + off))
    __m512i x = _mm512_castsi128_si512(ROW(0));
    x = _mm512_inserti32x4(x, ROW(1), 1);
    x = _mm512_inserti32x4(x, ROW(2), 2);
    x = _mm512_inserti32x4(x, ROW(3), 3);
#undef ROW
    return x;
}

/* The f16 at offset off of block b of each row, as floats in lane (row) order. */
INL __m512 row_halves(const uint8_t *p, size_t rb, int nr, size_t off) {
    _Alignas(32) uint16_t h[16];
    for (int r = 0; r < 16; r++) h[r] = mt_rd16(p + (size_t)(r < nr ? r : nr - 1) * rb + off);
    return _mm512_cvtph_ps(_mm256_load_si256((const void *)h));
}

/* The dword at offset off of block b of each row, in lane (row) order. */
INL __m512i row_dwords(const uint8_t *p, size_t rb, int nr, size_t off) {
    _Alignas(64) uint32_t v[16];
    for (int r = 0; r < 16; r++) v[r] = mt_rd32(p + (size_t)(r < nr ? r : nr - 1) * rb + off);
    return _mm512_load_si512((const void *)v);
}

/* Q5_0's fifth bits: bit j of a row's qh tops value j, so byte i of vector k (value
 * 4k + i) takes bit (4k + i) % 8 of qh byte k / 2. */
INL void add_fifth_bits(const __m512i qh, __m512i w[8]) {
    UNROLL
    for (int k = 0; k < 8; k++) {
        const char b = (char)(k / 2);
        const __m512i by = _mm512_shuffle_epi8(
            qh, _mm512_set4_epi32(0x0c0c0c0c + 0x01010101 * b, 0x08080808 + 0x01010101 * b,
                                  0x04040404 + 0x01010101 * b, 0x01010101 * b));
        const int s = 4 * (k % 2);
        const __m512i bit = _mm512_set1_epi32(
            (int)((1u << s) | (2u << s) << 8 | (4u << s) << 16 | (8u << s) << 24));
        w[k] =
            _mm512_mask_add_epi8(w[k], _mm512_test_epi8_mask(by, bit), w[k], _mm512_set1_epi8(16));
    }
}

/* Q4_K's sub-block s (32 values) of the super-block at p of each row: codes from the low
 * (even s) or high (odd s) nibbles of qs[32 (s / 2)..], scale d * sc[s], min
 * -dmin * mn[s] (the 6-bit scales and mins unpacked per row). */
INL void rearrange_q4k(const uint8_t *p, size_t rb, int nr, int s, gblock *out) {
    __m512i x[4];
    const __m512i lo = _mm512_set1_epi8(0x0f);
    UNROLL
    for (int h = 0; h < 2; h++) {
        UNROLL
        for (int g = 0; g < 4; g++) x[g] = rows4(p, rb, nr, 16 + 32 * (size_t)(s / 2) + 16 * h, g);
        mt_transpose4_epi32(x); /* lane 4i + g: row 4i + g */
        UNROLL
        for (int j = 0; j < 4; j++)
            out->w[4 * h + j] = _mm512_and_si512(s % 2 ? _mm512_srli_epi16(x[j], 4) : x[j], lo);
    }
    _Alignas(64) float sc[16], mn[16];
    for (int r = 0; r < 16; r++) {
        uint8_t a[8], b[8];
        mt_k_scales(p + (size_t)(r < nr ? r : nr - 1) * rb + 4, a, b);
        sc[r] = a[s];
        mn[r] = b[s];
    }
    const __m512 d = row_halves(p, rb, nr, 0), dmin = row_halves(p, rb, nr, 2);
    _mm512_storeu_ps(out->d, _mm512_mul_ps(d, _mm512_load_ps(sc)));
    _mm512_storeu_ps(out->m,
                     _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(dmin, _mm512_load_ps(mn))));
}

/* Block b of nr (<= 16) rows into the lane-per-row layout. */
INL void rearrange(int f, const uint8_t *w, size_t rb, int nr, int64_t b, gblock *out) {
    if (f == Q4_K) {
        rearrange_q4k(w + (size_t)(b / 8) * 144, rb, nr, (int)(b % 8), out);
        return;
    }
    const uint8_t *p = w + (size_t)b * block_bytes(f);
    const __m512 d = row_halves(p, rb, nr, 0);
    __m512i x[4];
    if (f == Q8_0) {
        UNROLL
        for (int h = 0; h < 2; h++) { /* values 16h..16h+15: dwords 4h..4h+3 */
            UNROLL
            for (int g = 0; g < 4; g++) x[g] = rows4(p, rb, nr, 2 + 16 * (size_t)h, g);
            mt_transpose4_epi32(x); /* lane 4i + g: row 4i + g */
            UNROLL
            for (int j = 0; j < 4; j++)
                out->w[4 * h + j] = _mm512_xor_si512(x[j], _mm512_set1_epi8((char)0x80));
        }
        _mm512_storeu_ps(out->m, _mm512_mul_ps(d, _mm512_set1_ps(-128.0f)));
    } else {
        const size_t qs = f == Q4_0 ? 2 : f == Q4_1 ? 4 : 6;
        UNROLL
        for (int g = 0; g < 4; g++) x[g] = rows4(p, rb, nr, qs, g);
        mt_transpose4_epi32(x); /* lane 4i + g: row 4i + g */
        const __m512i lo = _mm512_set1_epi8(0x0f);
        UNROLL
        for (int j = 0; j < 4; j++) { /* low nibbles: values 0..15, high: 16..31 */
            out->w[j] = _mm512_and_si512(x[j], lo);
            out->w[4 + j] = _mm512_and_si512(_mm512_srli_epi16(x[j], 4), lo);
        }
        if (f == Q5_0) add_fifth_bits(row_dwords(p, rb, nr, 2), out->w);
        const __m512 m = f == Q4_1   ? row_halves(p, rb, nr, 2)
                         : f == Q5_0 ? _mm512_mul_ps(d, _mm512_set1_ps(-16.0f))
                                     : _mm512_mul_ps(d, _mm512_set1_ps(-8.0f));
        _mm512_storeu_ps(out->m, m);
    }
    _mm512_storeu_ps(out->d, d);
}

/* Token t's activations for block b: the 32 int8 values, their scale and the scaled
 * sum. The K-quants' records hold 256 values under one scale; their sums per 32 come
 * from sk (precomputed per call, [token][block]). */
INL const int8_t *act_qs(int f, const uint8_t *rec, int64_t b) {
    return f == Q4_K ? ((const mt_act256 *)(const void *)rec + b / 8)->qs + 32 * (b % 8)
                     : ((const mt_act32 *)(const void *)rec + b)->qs;
}

INL float act_d(int f, const uint8_t *rec, int64_t b) {
    return f == Q4_K ? ((const mt_act256 *)(const void *)rec + b / 8)->d
                     : ((const mt_act32 *)(const void *)rec + b)->d;
}

INL float act_s(int f, const uint8_t *rec, int64_t b, const float *sk, size_t at) {
    return f == Q4_K ? sk[at] : ((const mt_act32 *)(const void *)rec + b)->s;
}

/* T tokens from token t0 (activation records xq + t * xs; for the K-quants their sums
 * sk[t][block], NULL otherwise) over every block of a group; the sixteen rows' results of
 * token t go to y + t * ys (the first nr of them). */
INL void tile(int f, int T, int64_t nblk, const gblock *gb, const uint8_t *xq, size_t xs,
              const float *sk, int t0, float *y, int64_t ys, int nr) {
    __m512 acc[TT];
    UNROLL
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nblk; b++) {
        const gblock *g = gb + b;
        const __m512 d = _mm512_loadu_ps(g->d), m = _mm512_loadu_ps(g->m);
        __m512i is[TT];
        UNROLL
        for (int t = 0; t < T; t++) is[t] = _mm512_setzero_si512();
        UNROLL
        for (int k = 0; k < 8; k++) {
            const __m512i wk = _mm512_load_si512((const void *)&g->w[k]);
            UNROLL
            for (int t = 0; t < T; t++) {
                const int8_t *qs = act_qs(f, xq + t * xs, b);
                is[t] = _mm512_dpbusd_epi32(
                    is[t], wk, _mm512_set1_epi32((int)mt_rd32((const uint8_t *)qs + 4 * k)));
            }
        }
        UNROLL
        for (int t = 0; t < T; t++) {
            const uint8_t *rec = xq + t * xs;
            acc[t] = _mm512_fmadd_ps(
                m, _mm512_set1_ps(act_s(f, rec, b, sk, (size_t)(t0 + t) * nblk + b)), acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t]),
                                     _mm512_mul_ps(d, _mm512_set1_ps(act_d(f, rec, b))), acc[t]);
        }
    }
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    UNROLL
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ys, keep, acc[t]);
}

/* sk: for the K-quants, each token's activation sum per 32 values, scaled. */
INL void k_sums(int64_t nblk, int nt, const uint8_t *xq, size_t xs, float *sk) {
    for (int t = 0; t < nt; t++)
        for (int64_t b = 0; b < nblk; b++) {
            const mt_act256 *a = (const mt_act256 *)(const void *)(xq + (size_t)t * xs) + b / 8;
            const int j = (int)(b % 8);
            sk[(size_t)t * nblk + b] = a->d * (float)(a->bsums[2 * j] + a->bsums[2 * j + 1]);
        }
}

INL void rows(int f, int64_t n, const uint8_t *w, size_t rb, int64_t nrows, int nt,
              const uint8_t *xq, size_t xs, float *y, int64_t ys, void *scratch) {
    const int64_t nblk = n / 32;
    gblock *gb = scratch;
    float *sk = f == Q4_K ? (float *)(gb + nblk) : NULL;
    if (sk) k_sums(nblk, nt, xq, xs, sk);
    for (int64_t r0 = 0; r0 < nrows; r0 += 16) {
        const int nr = nrows - r0 < 16 ? (int)(nrows - r0) : 16;
        const uint8_t *wr = w + (size_t)r0 * rb;
        for (int64_t b = 0; b < nblk; b++) rearrange(f, wr, rb, nr, b, gb + b);
        int t = 0;
        for (; t + TT <= nt; t += TT)
            tile(f, TT, nblk, gb, xq + (size_t)t * xs, xs, sk, t, y + t * ys + r0, ys, nr);
        const int left = nt - t;
        /* the last few tokens one at a time: the same float steps per token */
        for (int u = 0; u < left; u++)
            tile(f, 1, nblk, gb, xq + (size_t)(t + u) * xs, xs, sk, t + u, y + (t + u) * ys + r0,
                 ys, nr);
    }
}

#define ROWS(name, f)                                                                              \
    static TGT void name(int64_t n, const uint8_t *w, size_t rb, int64_t nrows, int nt,            \
                         const uint8_t *xq, size_t xs, float *y, int64_t ys, void *scratch) {      \
        rows(f, n, w, rb, nrows, nt, xq, xs, y, ys, scratch);                                      \
    }

ROWS(rows_q4_0, Q4_0)
ROWS(rows_q4_1, Q4_1)
ROWS(rows_q5_0, Q5_0)
ROWS(rows_q8_0, Q8_0)
ROWS(rows_q4_k, Q4_K)

size_t mt_qgemm_avx512_scratch(mt_dtype t, int64_t n, int nt) {
    /* the per-32 activation sums exist for the K-quants only */
    return (size_t)(n / 32) * (sizeof(gblock) + (t == MT_Q4_K ? (size_t)nt * sizeof(float) : 0));
}

mt_qgemm_rows_fn mt_qgemm_avx512_fn(mt_dtype t) {
    switch (t) {
    case MT_Q4_0:
        return rows_q4_0;
    case MT_Q4_1:
        return rows_q4_1;
    case MT_Q5_0:
        return rows_q5_0;
    case MT_Q8_0:
        return rows_q8_0;
    case MT_Q4_K:
        return rows_q4_k;
    default:
        return NULL;
    }
}

#else

size_t mt_qgemm_avx512_scratch(mt_dtype t, int64_t n, int nt) {
    (void)t, (void)n, (void)nt;
    return 0;
}

mt_qgemm_rows_fn mt_qgemm_avx512_fn(mt_dtype t) {
    (void)t;
    return NULL;
}

#endif
