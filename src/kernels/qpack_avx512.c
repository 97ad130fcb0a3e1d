/* Kernels for packed weights (qpack.h, layout in qpack_internal.h), AVX-512 VNNI.
 *
 * Lane r of every vector belongs to row r of a group of sixteen: one vpdpbusd multiplies
 * four codes of each of the sixteen rows with the same four activations of one token
 * (broadcast). A 32-value block costs eight vpdpbusd and two float operations per token
 * for sixteen rows, plus the unpacking of its codes (shared by the tokens of a tile).
 *
 * Per block, with codes q (unsigned: Q8_0's + 128, Q5_0's fifth bit added) and a token's
 * int8 activations a with scale da and sa = da * sum(a): dot = d * da * sum(q a) + m * sa,
 * where m is Q4_1's min, Q4_0's -8 d, Q5_0's -16 d, Q8_0's -128 d; for Q4_K d is d * sc
 * and m is -dmin * mn of the sub-block, and sa the sub-block's part of the 256-value
 * record. The integer sum is exact, and the float steps of a (row, token) are the same
 * in every tile shape: blocks in order, two FMAs each. So a token's result does not
 * depend on the other tokens of the call, nor on which rows it covers.
 *
 * A tile is up to eight tokens over one group: the group's codes are unpacked once for
 * eight tokens, and its records stream from memory in order (a lone token over eight
 * groups at once, to run eight chains of FMAs, went half as fast: eight streams). */
#include "kernels/qdot_internal.h"
#include "kernels/qpack_internal.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c")))
#define INL static inline __attribute__((always_inline)) TGT
#define UNROLL _Pragma("GCC unroll 16")

enum { Q4_0, Q4_1, Q5_0, Q8_0, Q4_K };

/* Blocks ahead of the one in use whose records are prefetched. */
#define PREFETCH 16

static const mt_dtype dtype_of[] = {MT_Q4_0, MT_Q4_1, MT_Q5_0, MT_Q8_0, MT_Q4_K};

INL __m512 halves(const uint8_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const void *)p));
}

/* Sixteen u8 at p as floats. */
INL __m512 bytes_ps(const uint8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const void *)p)));
}

/* Block b (32 values) of the group at gp: its eight code vectors (value 4k + i of row r
 * in byte i of lane r of w[k]), scales d and offsets m per row. */
INL void load_block(int f, const uint8_t *gp, int64_t b, __m512i w[8], __m512 *d, __m512 *m) {
    const size_t rb = mt_qpack_record_bytes(dtype_of[f]);
    if (f == Q8_0) {
        const uint8_t *rec = gp + (size_t)b * rb;
        UNROLL
        for (int k = 0; k < 8; k++) w[k] = _mm512_loadu_si512((const void *)(rec + 64 * k));
        *d = halves(rec + 512);
        *m = _mm512_mul_ps(*d, _mm512_set1_ps(-128.0f));
        return;
    }
    const uint8_t *sb = gp + (size_t)(f == Q4_K ? b / 8 : b) * rb;
    const uint8_t *qs = f == Q4_K ? sb + 256 * (b % 8) : sb;
    const __m512i lo = _mm512_set1_epi8(0x0f);
    UNROLL
    for (int j = 0; j < 4; j++) { /* low nibbles: values 4j.., high: 16 + 4j.. */
        const __m512i x = _mm512_loadu_si512((const void *)(qs + 64 * j));
        w[j] = _mm512_and_si512(x, lo);
        w[4 + j] = _mm512_and_si512(_mm512_srli_epi16(x, 4), lo);
    }
    switch (f) {
    case Q4_0:
        *d = halves(sb + 256);
        *m = _mm512_mul_ps(*d, _mm512_set1_ps(-8.0f));
        return;
    case Q4_1:
        *d = halves(sb + 256);
        *m = halves(sb + 288);
        return;
    case Q5_0:
        UNROLL
        for (int k = 0; k < 8; k++) {
            uint64_t mask;
            memcpy(&mask, sb + 256 + 8 * k, 8);
            w[k] = _mm512_mask_add_epi8(w[k], (__mmask64)mask, w[k], _mm512_set1_epi8(16));
        }
        *d = halves(sb + 320);
        *m = _mm512_mul_ps(*d, _mm512_set1_ps(-16.0f));
        return;
    default: { /* Q4_K */
        const int s = (int)(b % 8);
        *d = _mm512_mul_ps(halves(sb + MT_QPACK_K_D), bytes_ps(sb + MT_QPACK_K_SC + 16 * s));
        *m = _mm512_sub_ps(
            _mm512_setzero_ps(),
            _mm512_mul_ps(halves(sb + MT_QPACK_K_DMIN), bytes_ps(sb + MT_QPACK_K_MN + 16 * s)));
        return;
    }
    }
}

/* Token t's activations for block b: the 32 int8 values, their scale and the scaled
 * sum. Q4_K's records hold 256 values under one scale; their sums per 32 come from sk
 * ([token][block], filled per call). */
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

/* Tokens t0..t0 + T - 1 (records xq + t * xs) over every block of the group at gp; row r
 * of the group for token t goes to yg[t * ys + r] where keep has bit r. */
INL void tile(int f, int T, int64_t nblk, const uint8_t *gp, __mmask16 keep, float *yg,
              const uint8_t *xq, size_t xs, const float *sk, int t0, int64_t ys) {
    const size_t rb = mt_qpack_record_bytes(dtype_of[f]) / (f == Q4_K ? 8 : 1);
    __m512 acc[8];
    UNROLL
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nblk; b++) {
        /* the weights stream from memory once per decoding step: far enough ahead that
         * the lines arrive in time (16 slots decode 15% faster than with 4 blocks) */
        const char *ahead = (const char *)gp + (size_t)(b + PREFETCH) * rb;
        for (size_t o = 0; o < rb; o += 64) _mm_prefetch(ahead + o, _MM_HINT_T0);
        __m512i w[8];
        __m512 d, m;
        load_block(f, gp, b, w, &d, &m);
        UNROLL
        for (int t = 0; t < T; t++) {
            const uint8_t *rec = xq + (size_t)(t0 + t) * xs;
            const uint8_t *qs = (const uint8_t *)act_qs(f, rec, b);
            __m512i is = _mm512_setzero_si512();
            UNROLL
            for (int k = 0; k < 8; k++)
                is = _mm512_dpbusd_epi32(is, w[k], _mm512_set1_epi32((int)mt_rd32(qs + 4 * k)));
            acc[t] = _mm512_fmadd_ps(
                m, _mm512_set1_ps(act_s(f, rec, b, sk, (size_t)(t0 + t) * nblk + b)), acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is),
                                     _mm512_mul_ps(d, _mm512_set1_ps(act_d(f, rec, b))), acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(yg + (size_t)(t0 + t) * ys, keep, acc[t]);
}

/* sk: Q4_K's activation sum per 32 values of each token, scaled. */
INL void k_sums(int64_t nblk, int nt, const uint8_t *xq, size_t xs, float *sk) {
    for (int t = 0; t < nt; t++)
        for (int64_t b = 0; b < nblk; b++) {
            const mt_act256 *a = (const mt_act256 *)(const void *)(xq + (size_t)t * xs) + b / 8;
            const int j = (int)(b % 8);
            sk[(size_t)t * nblk + b] = a->d * (float)(a->bsums[2 * j] + a->bsums[2 * j + 1]);
        }
}

/* Lanes of group gi whose rows lie in [row0, row1). */
static __mmask16 lanes(int64_t gi, int64_t row0, int64_t row1) {
    const int64_t lo = row0 - 16 * gi, hi = row1 - 16 * gi;
    const unsigned top = hi >= 16 ? 0xffffu : (1u << hi) - 1;
    return (__mmask16)(lo <= 0 ? top : top & ~((1u << lo) - 1));
}

/* Group by group: tiles of eight tokens, then of four, two and one for the rest. */
INL void rows(int f, int64_t n, const uint8_t *packed, int64_t row0, int64_t row1, int nt,
              const uint8_t *xq, size_t xs, float *sk, float *y, int64_t ys) {
    const int64_t nblk = n / 32;
    const size_t gb = mt_qpack_group_bytes(dtype_of[f], n);
    if (f == Q4_K) k_sums(nblk, nt, xq, xs, sk);
    for (int64_t gi = row0 / 16; gi < (row1 + 15) / 16; gi++) {
        const uint8_t *gp = packed + (size_t)gi * gb;
        const __mmask16 keep = lanes(gi, row0, row1);
        float *yg = y + 16 * gi;
        int t = 0;
        for (; t + 8 <= nt; t += 8) tile(f, 8, nblk, gp, keep, yg, xq, xs, sk, t, ys);
        if (nt - t >= 4) tile(f, 4, nblk, gp, keep, yg, xq, xs, sk, t, ys), t += 4;
        if (nt - t >= 2) tile(f, 2, nblk, gp, keep, yg, xq, xs, sk, t, ys), t += 2;
        if (nt - t >= 1) tile(f, 1, nblk, gp, keep, yg, xq, xs, sk, t, ys);
    }
}

/* ---- F16 and BF16 rows: column c of a group is its sixteen rows' values; a token's
 * activation multiplies it into one of four partial sums (c mod 4, so four chains of
 * FMAs hide their latency even for one token), added pairwise at the end. Up to four
 * tokens per tile (sixteen accumulators). ---- */

/* Column c of the group at gp as floats. */
INL __m512 column(int bf, const uint8_t *gp, int64_t c) {
    const __m256i h = _mm256_loadu_si256((const void *)(gp + 32 * c));
    return bf ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
              : _mm512_cvtph_ps(h);
}

INL void ftile(int bf, int T, int64_t n, const uint8_t *gp, __mmask16 keep, float *yg,
               const float *x, int64_t xs, int t0, int64_t ys) {
    __m512 acc[4][4];
    UNROLL
    for (int t = 0; t < T; t++) {
        UNROLL
        for (int j = 0; j < 4; j++) acc[t][j] = _mm512_setzero_ps();
    }
    int64_t c = 0;
    for (; c + 4 <= n; c += 4) {
        /* 128 bytes a step; the lines 1 KiB ahead */
        _mm_prefetch((const char *)gp + 32 * c + 1024, _MM_HINT_T0);
        _mm_prefetch((const char *)gp + 32 * c + 1088, _MM_HINT_T0);
        UNROLL
        for (int j = 0; j < 4; j++) {
            const __m512 w = column(bf, gp, c + j);
            UNROLL
            for (int t = 0; t < T; t++)
                acc[t][j] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[(t0 + t) * xs + c + j]), acc[t][j]);
        }
    }
    for (; c < n; c++) {
        const __m512 w = column(bf, gp, c);
        UNROLL
        for (int t = 0; t < T; t++)
            acc[t][c % 4] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[(t0 + t) * xs + c]), acc[t][c % 4]);
    }
    UNROLL
    for (int t = 0; t < T; t++)
        _mm512_mask_storeu_ps(yg + (size_t)(t0 + t) * ys, keep,
                              _mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]),
                                            _mm512_add_ps(acc[t][2], acc[t][3])));
}

INL void frows(int bf, int64_t n, const uint8_t *packed, int64_t row0, int64_t row1, int nt,
               const float *x, int64_t xs, float *y, int64_t ys) {
    const size_t gb = mt_qpack_group_bytes(bf ? MT_BF16 : MT_F16, n);
    for (int64_t gi = row0 / 16; gi < (row1 + 15) / 16; gi++) {
        const uint8_t *gp = packed + (size_t)gi * gb;
        const __mmask16 keep = lanes(gi, row0, row1);
        float *yg = y + 16 * gi;
        int t = 0;
        for (; t + 4 <= nt; t += 4) ftile(bf, 4, n, gp, keep, yg, x, xs, t, ys);
        if (nt - t >= 2) ftile(bf, 2, n, gp, keep, yg, x, xs, t, ys), t += 2;
        if (nt - t >= 1) ftile(bf, 1, n, gp, keep, yg, x, xs, t, ys);
    }
}

#define FROWS(name, bf)                                                                            \
    static TGT void name(int64_t n, const void *packed, int64_t row0, int64_t row1, int nt,        \
                         const uint8_t *xq, size_t xs, float *sk, float *y, int64_t ys) {          \
        (void)sk;                                                                                  \
        frows(bf, n, packed, row0, row1, nt, (const float *)(const void *)xq,                      \
              (int64_t)(xs / sizeof(float)), y, ys);                                               \
    }

FROWS(rows_f16, 0)
FROWS(rows_bf16, 1)

#define ROWS(name, f)                                                                              \
    static TGT void name(int64_t n, const void *packed, int64_t row0, int64_t row1, int nt,        \
                         const uint8_t *xq, size_t xs, float *sk, float *y, int64_t ys) {          \
        rows(f, n, packed, row0, row1, nt, xq, xs, sk, y, ys);                                     \
    }

ROWS(rows_q4_0, Q4_0)
ROWS(rows_q4_1, Q4_1)
ROWS(rows_q5_0, Q5_0)
ROWS(rows_q8_0, Q8_0)
ROWS(rows_q4_k, Q4_K)

mt_qpack_rows_fn mt_qpack_avx512_fn(mt_dtype t) {
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
    case MT_F16:
        return rows_f16;
    case MT_BF16:
        return rows_bf16;
    default:
        return NULL;
    }
}

#else

mt_qpack_rows_fn mt_qpack_avx512_fn(mt_dtype t) {
    (void)t;
    return NULL;
}

#endif
