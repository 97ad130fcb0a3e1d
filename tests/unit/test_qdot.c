/* Quantised dot products: random valid blocks of every type with a fixed seed.
 *
 * Three tolerances, all derived rather than tuned (u = 2^-24, the float unit roundoff):
 *
 * 1. Kernel vs exact arithmetic on the same quantised activations x̂ (x̂ read back from
 *    the int8 blocks): |y - Σ w_i x̂_i| <= T = 2 (terms + 8) u M. The integer block sums
 *    are exact, so only the float scaling and the sum of `terms` partial results round
 *    (terms = blocks for quantised types, n for float rows), each by at most u of the
 *    running magnitude M = Σ |terms|; +8 covers the products, the 8-lane horizontal sum
 *    and an int->float conversion above 2^24. M is Σ |w_i x̂_i| except for formats with
 *    an offset (Q4_1, Q5_1, Q4_K, Q5_K), whose two partial sums d·Σq·x̂ and m·Σx̂ are
 *    formed separately and may cancel: there M = Σ (|d q_i| + |m_i|) |x̂_i|.
 * 2. AVX2 or AVX-512 vs scalar: both are within T of the same exact value, so
 *    |y_simd - y_scalar| <= 2T. (Measured differences are far below, typically a few
 *    u·M.) The AVX-512 kernels round per 16-value run rather than per block, then sum
 *    16 lanes in a 4-level tree; the per-lane chains are terms / 8 long at most, so T
 *    covers them too.
 * 3. Kernel vs the exact f32 dot Σ w_i x_i: activation rounding moves each x_i by at
 *    most half its block's step d_a = amax/127, so |y - Σ w_i x_i| <=
 *    Σ |w_i| d_a(i) (1/2 + 1e-4) + T (1e-4 covers the float rounding of x/d_a).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "kernels/dequant.h"
#include "kernels/matmul.h"
#include "kernels/qdot.h"
#include "kernels/qdot_internal.h"
#include "kernels/qpack.h"

#define U 0x1p-24

static mt_rng rng;

static double uni(double lo, double hi) {
    return lo + (hi - lo) * mt_rng_uniform(&rng);
}

static double gauss(void) {
    double u1 = uni(1e-12, 1.0), u2 = uni(0.0, 1.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

/* A random f16 scale of either sign, 1e-3 .. 1e-1 in magnitude. */
static void rand_scale(uint8_t *p) {
    double v = uni(1e-3, 1e-1) * (mt_rng_next(&rng) & 1 ? -1.0 : 1.0);
    put16(p, mt_fp32_to_fp16((float)v));
}

static int is_float_type(mt_dtype t) {
    return t == MT_F32 || t == MT_F16 || t == MT_BF16;
}

/* Byte offset of each block's f16 scale fields: (d, min or -1) */
static void scale_fields(mt_dtype t, int *d, int *m) {
    *m = -1;
    switch (t) {
    case MT_Q4_1:
    case MT_Q5_1:
    case MT_Q4_K:
    case MT_Q5_K:
        *d = 0, *m = 2;
        return;
    case MT_Q6_K:
        *d = 208;
        return;
    default:
        *d = 0;
        return;
    }
}

/* Random bytes everywhere (every quant pattern, 6-bit scales and Q6_K's int8 scales
 * included), then finite f16 scales. Float rows hold N(0,1) values. */
static void fill_row(mt_dtype t, int64_t n, uint8_t *w) {
    const size_t bytes = mt_dtype_row_bytes(t, n);
    if (is_float_type(t)) {
        for (int64_t i = 0; i < n; i++) {
            float v = (float)gauss();
            if (t == MT_F32) memcpy(w + 4 * i, &v, 4);
            if (t == MT_F16) put16(w + 2 * i, mt_fp32_to_fp16(v));
            if (t == MT_BF16) {
                uint32_t u;
                memcpy(&u, &v, 4);
                put16(w + 2 * i, (uint16_t)(u >> 16));
            }
        }
        return;
    }
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)mt_rng_next(&rng);
    const size_t bb = mt_dtype_block_bytes(t);
    int d, m;
    scale_fields(t, &d, &m);
    for (size_t b = 0; b < bytes / bb; b++) {
        rand_scale(w + b * bb + d);
        if (m >= 0) rand_scale(w + b * bb + m);
    }
}

/* Activations with a heavy tail, as transformer activations have: mostly N(0,1), a few
 * values tens of times larger. */
static void fill_act(int64_t n, float *x) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)gauss();
        if (mt_rng_uniform(&rng) < 0.01) x[i] *= 30.0f;
    }
}

typedef struct {
    double exact_q; /* Σ w x̂ */
    double exact;   /* Σ w x */
    double T;       /* tolerance 1 */
    double act_err; /* bound of tolerance 3, without T */
    double absum;   /* Σ |w x| */
} expect;

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* x̂ and each value's activation step, read back from the int8 blocks. */
static void dequant_act(mt_dtype t, int64_t n, const float *x, const void *xq, float *xh,
                        float *step) {
    if (is_float_type(t)) {
        for (int64_t i = 0; i < n; i++) xh[i] = x[i], step[i] = 0.0f;
    } else if (t == MT_Q4_K || t == MT_Q5_K || t == MT_Q6_K) {
        const mt_act256 *a = xq;
        for (int64_t i = 0; i < n; i++) {
            xh[i] = a[i / 256].d * (float)a[i / 256].qs[i % 256];
            step[i] = a[i / 256].d;
        }
    } else {
        const mt_act32 *a = xq;
        for (int64_t i = 0; i < n; i++) {
            xh[i] = a[i / 32].d * (float)a[i / 32].qs[i % 32];
            step[i] = a[i / 32].d;
        }
    }
}

static expect expected(mt_dtype t, int64_t n, const uint8_t *w, const float *x, const void *xq) {
    float *wf = xmalloc((size_t)n * sizeof *wf), *wa = xmalloc((size_t)n * sizeof *wa);
    float *xh = xmalloc((size_t)n * sizeof *xh), *step = xmalloc((size_t)n * sizeof *step);
    mt_dequantize(t, w, wf, n);
    dequant_act(t, n, x, xq, xh, step);
    /* The offset-free part d·q of each weight: the row again with its mins zeroed. */
    int dof, mof;
    scale_fields(t, &dof, &mof);
    if (mof >= 0 && !is_float_type(t)) {
        const size_t bytes = mt_dtype_row_bytes(t, n), bb = mt_dtype_block_bytes(t);
        uint8_t *w0 = xmalloc(bytes);
        memcpy(w0, w, bytes);
        for (size_t b = 0; b < bytes / bb; b++) put16(w0 + b * bb + mof, 0);
        mt_dequantize(t, w0, wa, n);
        free(w0);
    } else {
        memcpy(wa, wf, (size_t)n * sizeof *wa);
    }
    expect e = {0};
    double M = 0;
    for (int64_t i = 0; i < n; i++) {
        e.exact_q += (double)wf[i] * xh[i];
        e.exact += (double)wf[i] * x[i];
        e.absum += fabs((double)wf[i] * x[i]);
        e.act_err += fabs((double)wf[i]) * step[i] * (0.5 + 1e-4);
        M += (fabs((double)wa[i]) + fabs((double)wf[i] - wa[i])) * fabs((double)xh[i]);
    }
    const int64_t terms = is_float_type(t) ? n : n / mt_dtype_block_elems(t);
    e.T = 2.0 * (double)(terms + 8) * U * M + 1e-30;
    free(wf), free(wa), free(xh), free(step);
    return e;
}

static int have_avx2(void) {
    static int noted = 0;
    if (mt_qdot_avx2_available()) return 1;
    if (!noted) printf("note: CPU lacks AVX2/FMA/F16C, SIMD comparisons skipped\n");
    noted = 1;
    return 0;
}

static int have_avx512(void) {
    static int noted = 0;
    if (mt_qdot_avx512_available()) return 1;
    if (!noted) printf("note: CPU lacks AVX-512 F/BW/DQ/VL/VNNI, AVX-512 comparisons skipped\n");
    noted = 1;
    return 0;
}

static int have_impl(mt_qdot_impl impl) {
    return impl == MT_QDOT_AVX2 ? have_avx2() : impl == MT_QDOT_AVX512 ? have_avx512() : 1;
}

static float dot_with(mt_qdot_impl impl, mt_dtype t, int64_t n, const void *w, const void *xq,
                      const float *x) {
    assert_int_equal(mt_qdot_set_impl(impl), MT_OK);
    float y = mt_vec_dot(t, n, w, xq, x);
    mt_qdot_set_impl(MT_QDOT_AUTO);
    return y;
}

/* Worst ratios seen, printed at the end of each type's test. */
typedef struct {
    double simd, simd512, kern, act;
} worst;

static void check_one(mt_dtype t, int64_t n, const uint8_t *w, const float *x, worst *wr) {
    const size_t ab = mt_act_bytes(t, n);
    void *xq = xmalloc(ab);
    assert_int_equal(mt_quantize_act(t, x, n, xq), MT_OK);
    const expect e = expected(t, n, w, x, xq);
    const float ys = dot_with(MT_QDOT_SCALAR, t, n, w, xq, x);
    assert_true(isfinite(ys));
    const double ks = fabs(ys - e.exact_q) / e.T;
    if (ks > 1.0)
        fail_msg("%s n=%lld scalar %.9g vs exact %.9g (T %.3g)", mt_dtype_name(t), (long long)n,
                 (double)ys, e.exact_q, e.T);
    const double as = fabs(ys - e.exact) / (e.act_err + e.T);
    if (as > 1.0)
        fail_msg("%s n=%lld scalar %.9g vs f32 dot %.9g (bound %.3g)", mt_dtype_name(t),
                 (long long)n, (double)ys, e.exact, e.act_err + e.T);
    wr->kern = fmax(wr->kern, ks), wr->act = fmax(wr->act, as);
    for (int v = 0; v < 2; v++) {
        const mt_qdot_impl impl = v ? MT_QDOT_AVX512 : MT_QDOT_AVX2;
        if (!have_impl(impl)) continue;
        const float ya = dot_with(impl, t, n, w, xq, x);
        const double ka = fabs(ya - e.exact_q) / e.T, sa = fabs((double)ya - ys) / (2 * e.T);
        if (ka > 1.0 || sa > 1.0)
            fail_msg("%s n=%lld %s %.9g scalar %.9g exact %.9g (T %.3g)", mt_dtype_name(t),
                     (long long)n, mt_qdot_impl_name(impl), (double)ya, (double)ys, e.exact_q, e.T);
        const double aa = fabs(ya - e.exact) / (e.act_err + e.T);
        assert_true(aa <= 1.0);
        wr->kern = fmax(wr->kern, ka), wr->act = fmax(wr->act, aa);
        if (v)
            wr->simd512 = fmax(wr->simd512, sa);
        else
            wr->simd = fmax(wr->simd, sa);
    }
    free(xq);
}

static void check_type(mt_dtype t, const int64_t *sizes, int n_sizes, int reps) {
    mt_rng_seed(&rng, 1234 + (uint64_t)t);
    worst wr = {0};
    for (int s = 0; s < n_sizes; s++) {
        const int64_t n = sizes[s];
        uint8_t *w = xmalloc(mt_dtype_row_bytes(t, n));
        float *x = xmalloc((size_t)n * sizeof *x);
        for (int r = 0; r < reps; r++) {
            fill_row(t, n, w);
            fill_act(n, x);
            check_one(t, n, w, x, &wr);
        }
        free(w), free(x);
    }
    printf("%-5s worst |avx2-scalar|/2T %.2e, |avx512-scalar|/2T %.2e, |y-exact(x̂)|/T %.2e, "
           "|y-f32 dot|/bound %.2e\n",
           mt_dtype_name(t), wr.simd, wr.simd512, wr.kern, wr.act);
}

/* Every tail the AVX-512 kernels split off a row of 32-value blocks (1..7 blocks past
 * the last group of 8: 32, 64, 96 ... 224, 608, 640), rows of one or two chunks of 8
 * groups (2048, 4096), two chunks plus a tail (2272), and an odd number of groups, the
 * last one not in a wide unit of two (768, and 1312 with a tail). */
static const int64_t SIZES32[] = {32,  64,  96,  128,  160,  192,  224, 576,
                                  608, 640, 768, 1312, 2048, 2272, 4096};
static const int64_t SIZESK[] = {256, 512, 1536, 4096};
static const int64_t SIZESF[] = {1, 7, 8, 31, 32, 33, 100, 576, 2048, 4099};

#define TYPE_TEST(fn, type, sizes)                                                                 \
    static void fn(void **state) {                                                                 \
        (void)state;                                                                               \
        check_type(type, sizes, (int)(sizeof sizes / sizeof sizes[0]), 8);                         \
    }

TYPE_TEST(test_q4_0, MT_Q4_0, SIZES32)
TYPE_TEST(test_q4_1, MT_Q4_1, SIZES32)
TYPE_TEST(test_q5_0, MT_Q5_0, SIZES32)
TYPE_TEST(test_q5_1, MT_Q5_1, SIZES32)
TYPE_TEST(test_q8_0, MT_Q8_0, SIZES32)
TYPE_TEST(test_q4_k, MT_Q4_K, SIZESK)
TYPE_TEST(test_q5_k, MT_Q5_K, SIZESK)
TYPE_TEST(test_q6_k, MT_Q6_K, SIZESK)
TYPE_TEST(test_f32, MT_F32, SIZESF)
TYPE_TEST(test_f16, MT_F16, SIZESF)
TYPE_TEST(test_bf16, MT_BF16, SIZESF)

static const mt_dtype ALL[] = {MT_F32,  MT_F16,  MT_BF16, MT_Q4_0, MT_Q4_1, MT_Q5_0,
                               MT_Q5_1, MT_Q8_0, MT_Q4_K, MT_Q5_K, MT_Q6_K};
#define N_ALL ((int)(sizeof ALL / sizeof ALL[0]))

static const mt_qdot_impl IMPLS[] = {MT_QDOT_SCALAR, MT_QDOT_AVX2, MT_QDOT_AVX512};
#define N_IMPLS ((int)(sizeof IMPLS / sizeof IMPLS[0]))

/* Zero weight blocks (all bytes 0, so d = 0) and zero activations give exactly 0, and
 * a zero block amid random ones contributes nothing. */
static void test_zero_blocks(void **state) {
    (void)state;
    mt_rng_seed(&rng, 7);
    const int64_t n = 1024;
    for (int k = 0; k < N_ALL; k++) {
        const mt_dtype t = ALL[k];
        const size_t rb = mt_dtype_row_bytes(t, n), bb = mt_dtype_block_bytes(t);
        uint8_t *w = xmalloc(rb), *wz = calloc(rb, 1);
        float *x = xmalloc(n * sizeof *x), *xz = calloc(n, sizeof *xz);
        void *xq = xmalloc(mt_act_bytes(t, n)), *xqz = xmalloc(mt_act_bytes(t, n));
        fill_row(t, n, w);
        fill_act(n, x);
        assert_int_equal(mt_quantize_act(t, x, n, xq), MT_OK);
        assert_int_equal(mt_quantize_act(t, xz, n, xqz), MT_OK);
        for (int i = 0; i < N_IMPLS; i++) {
            if (!have_impl(IMPLS[i])) continue;
            assert_true(dot_with(IMPLS[i], t, n, wz, xq, x) == 0.0f);
            assert_true(dot_with(IMPLS[i], t, n, w, xqz, xz) == 0.0f);
        }
        /* Zero the second block (quantised) or a middle stretch (float) of a random row:
         * the result equals the row's exact value without those values. */
        if (!is_float_type(t))
            memset(w + bb, 0, bb);
        else
            memset(w + rb / 4, 0, rb / 4);
        worst wr = {0};
        check_one(t, n, w, x, &wr);
        free(w), free(wz), free(x), free(xz), free(xq), free(xqz);
    }
}

/* The largest codes and scales with activations at ±127: no SIMD intermediate saturates
 * (a pair of products in vpmaddubsw peaks at 2·128·127 for Q8_0's -128). */
static void test_extremes(void **state) {
    (void)state;
    const int64_t n = 512;
    float x[512];
    for (int pat = 0; pat < 4; pat++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = pat == 0   ? 1.0f
                   : pat == 1 ? -1.0f
                              : (i % 2 ? -1.0f : 1.0f) * (pat == 2 ? 1 : 0.5f);
        if (pat == 3) x[0] = 1.0f; /* the rest round to ±64 */
        for (int k = 0; k < N_ALL; k++) {
            const mt_dtype t = ALL[k];
            if (is_float_type(t)) continue;
            const size_t rb = mt_dtype_row_bytes(t, n), bb = mt_dtype_block_bytes(t);
            uint8_t *w = xmalloc(rb);
            for (int fill = 0; fill < 2; fill++) {
                /* every quant bit set, then every bit clear (Q8_0: -1, then 0; the
                 * Q8_0 -128 case: 0x80) */
                const uint8_t v = fill ? 0x80 : 0xff;
                memset(w, v, rb);
                int d, m;
                scale_fields(t, &d, &m);
                for (size_t b = 0; b < rb / bb; b++) {
                    put16(w + b * bb + d, mt_fp32_to_fp16(-1.0f));
                    if (m >= 0) put16(w + b * bb + m, mt_fp32_to_fp16(0.5f));
                }
                worst wr = {0};
                check_one(t, n, w, x, &wr);
            }
            free(w);
        }
    }
}

/* mt_matmul_q with any number of tokens, mt_matvec_q and mt_vec_dot give the same bits
 * for each token within one implementation, and only rows [row0, row1) are written.
 * Row lengths: one group of 256, one with a tail of 2 blocks (576), and two chunks of
 * the AVX-512 kernels with a tail of 4 blocks or one K-quant block past 2048. */
static void batch_bitexact(mt_dtype t, int64_t n) {
    const int64_t rows = 13, row0 = 2, row1 = 11;
    const int max_tok = 17;
    const size_t rb = mt_dtype_row_bytes(t, n), ab = mt_act_bytes(t, n);
    uint8_t *w = xmalloc(rb * rows);
    for (int64_t r = 0; r < rows; r++) fill_row(t, n, w + r * rb);
    float *x = xmalloc((size_t)(max_tok * n) * sizeof *x);
    uint8_t *xq = xmalloc(ab * max_tok + 1);
    fill_act(max_tok * n, x);
    for (int i = 0; i < max_tok; i++)
        assert_int_equal(mt_quantize_act(t, x + i * n, n, xq + i * ab), MT_OK);
    const mt_tensor wt = {.type = t, .n_dims = 2, .ne = {n, rows, 1, 1}, .data = w};
    float *y = xmalloc((size_t)(max_tok * rows) * sizeof *y);
    for (int i = 0; i < N_IMPLS; i++) {
        if (!have_impl(IMPLS[i])) continue;
        assert_int_equal(mt_qdot_set_impl(IMPLS[i]), MT_OK);
        for (int nt = 1; nt <= max_tok; nt++) {
            for (int j = 0; j < max_tok * rows; j++) y[j] = -12345.0f;
            if (nt == 1)
                mt_matvec_q(&wt, xq, x, y, row0, row1);
            else
                mt_matmul_q(&wt, nt, xq, x, y, row0, row1);
            for (int tok = 0; tok < max_tok; tok++)
                for (int64_t r = 0; r < rows; r++) {
                    const float got = y[tok * rows + r];
                    if (tok >= nt || r < row0 || r >= row1) {
                        assert_true(got == -12345.0f);
                        continue;
                    }
                    const float want = mt_vec_dot(t, n, w + r * rb, xq + tok * ab, x + tok * n);
                    if (memcmp(&got, &want, sizeof got))
                        fail_msg("%s n %lld impl %s nt %d tok %d row %lld: %.9g != %.9g",
                                 mt_dtype_name(t), (long long)n, mt_qdot_impl_name(IMPLS[i]), nt,
                                 tok, (long long)r, (double)got, (double)want);
                }
        }
    }
    mt_qdot_set_impl(MT_QDOT_AUTO);
    free(w), free(x), free(xq), free(y);
}

static void test_batch_bitexact(void **state) {
    (void)state;
    mt_rng_seed(&rng, 99);
    const int64_t sizes[] = {256, 576, 2304, 2560};
    for (int k = 0; k < N_ALL; k++)
        for (int s = 0; s < 4; s++)
            if (sizes[s] % mt_dtype_block_elems(ALL[k]) == 0) batch_bitexact(ALL[k], sizes[s]);
}

/* Packed F16 and BF16 rows: every (row, token) within 1e-5 of the double-precision
 * product (relative to the sum of |w x|), the same bits whatever else the call holds or
 * whichever rows it covers; 1 to 9 tokens take every tile (4, 2, 1); a row length that
 * leaves a column tail. Skipped without AVX-512 VNNI. */
static void test_qpack_float(void **state) {
    (void)state;
    if (!mt_qdot_avx512_available()) skip();
    mt_rng_seed(&rng, 31);
    const mt_dtype types[] = {MT_F16, MT_BF16};
    const int64_t sizes[] = {64, 578};
    const int64_t rows = 37, row0 = 3, row1 = 35;
    enum { MAXT = 9 };
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_AVX512), MT_OK);
    for (int k = 0; k < 2; k++)
        for (int si = 0; si < 2; si++) {
            const mt_dtype t = types[k];
            const int64_t n = sizes[si];
            const size_t rb = mt_dtype_row_bytes(t, n);
            uint8_t *w = xmalloc(rb * rows);
            float *x = xmalloc((size_t)(MAXT * n) * sizeof *x),
                  *wf = xmalloc((size_t)(rows * n) * sizeof *wf); /* the rows as floats */
            float *y = xmalloc((size_t)(MAXT * rows) * sizeof *y),
                  *y1 = xmalloc((size_t)rows * sizeof *y1);
            for (int64_t r = 0; r < rows; r++) {
                fill_row(t, n, w + r * rb);
                mt_dequantize(t, w + r * rb, wf + r * n, n);
            }
            fill_act(MAXT * n, x);
            mt_tensor wt = {.type = t, .n_dims = 2, .ne = {n, rows, 1, 1}, .data = w};
            void *packed = aligned_alloc(64, mt_qpack_bytes(&wt));
            assert_non_null(packed);
            assert_int_equal(mt_qpack(&wt, packed), MT_OK);
            wt.packed = packed;
            for (int nt = 1; nt <= MAXT; nt++) {
                for (int i = 0; i < MAXT * rows; i++) y[i] = -1.0f;
                assert_int_equal(mt_qpacked_matmul(&wt, nt, x, y, row0, row1), MT_OK);
                for (int tok = 0; tok < nt; tok++) {
                    assert_int_equal(mt_qpacked_matmul(&wt, 1, x + tok * n, y1, 20, 21), MT_OK);
                    assert_memory_equal(&y1[20], &y[tok * rows + 20], sizeof *y1);
                    for (int64_t r = 0; r < rows; r++) {
                        const float got = y[tok * rows + r];
                        if (r < row0 || r >= row1) {
                            assert_true(got == -1.0f);
                            continue;
                        }
                        const float *wr = wf + r * n;
                        double exact = 0, mag = 0;
                        for (int64_t i = 0; i < n; i++) {
                            exact += (double)wr[i] * x[tok * n + i];
                            mag += fabs((double)wr[i] * x[tok * n + i]);
                        }
                        if (fabs(got - exact) > 1e-5 * mag)
                            fail_msg("%s n %lld nt %d tok %d row %lld: %.9g vs %.9g",
                                     mt_dtype_name(t), (long long)n, nt, tok, (long long)r,
                                     (double)got, exact);
                    }
                }
            }
            free(packed);
            free(w), free(x), free(wf), free(y), free(y1);
        }
    mt_qdot_set_impl(MT_QDOT_AUTO);
}

/* mt_matmul outside precise mode, every weight type (float rows included): 20 tokens at
 * once (a prompt: more than one decoding pass) give each token the bits it gets alone,
 * so generation does not depend on how sequences are batched. Float rows had taken the
 * f32 GEMM above 16 tokens and failed this. */
static void test_matmul_fast_batch_equals_alone(void **state) {
    (void)state;
    mt_rng_seed(&rng, 2024);
    enum { NT = 20 };
    const int64_t n = 512, rows = 40;
    mt_kernels_set_precise(0);
    for (int k = 0; k < N_ALL; k++) {
        const mt_dtype t = ALL[k];
        const size_t rb = mt_dtype_row_bytes(t, n);
        uint8_t *w = xmalloc(rb * rows);
        float *x = xmalloc((size_t)(NT * n) * sizeof *x);
        float *y = xmalloc((size_t)(NT * rows) * sizeof *y),
              *y1 = xmalloc((size_t)rows * sizeof *y1);
        for (int64_t r = 0; r < rows; r++) fill_row(t, n, w + r * rb);
        fill_act(NT * n, x);
        const mt_tensor wt = {.type = t, .n_dims = 2, .ne = {n, rows, 1, 1}, .data = w};
        assert_int_equal(mt_matmul(&wt, x, NT, y), MT_OK);
        for (int tok = 0; tok < NT; tok++) {
            assert_int_equal(mt_matmul(&wt, x + tok * n, 1, y1), MT_OK);
            if (memcmp(y1, y + tok * rows, (size_t)rows * sizeof *y1))
                fail_msg("%s token %d: batched and alone differ", mt_dtype_name(t), tok);
        }
        free(w), free(x), free(y), free(y1);
    }
    mt_kernels_set_precise(1);
}

/* One weight of a group for mixed_group: random rows, packed where the current
 * implementation packs its type. */
static mt_tensor group_weight(mt_dtype t, int64_t n, int64_t rows) {
    const size_t rb = mt_dtype_row_bytes(t, n);
    uint8_t *w = xmalloc(rb * (size_t)rows);
    for (int64_t r = 0; r < rows; r++) fill_row(t, n, w + r * rb);
    mt_tensor wt = {.type = t, .n_dims = 2, .ne = {n, rows, 1, 1}, .data = w};
    if (mt_qpack_supported(t)) {
        void *packed = aligned_alloc(64, mt_qpack_bytes(&wt));
        assert_non_null(packed);
        assert_int_equal(mt_qpack(&wt, packed), MT_OK);
        wt.packed = packed;
    }
    return wt;
}

/* mt_matmul_multi over a group mixing float and quantised rows (quantisers keep some of
 * q/k/v or gate/up at higher precision) gives each weight mt_matmul's bits alone, for a
 * decoding pass and a prompt. The float member once got the group's 8-bit activations,
 * which the packed F16/BF16 kernel read as f32 past their end. */
static void mixed_group(int nw, const mt_dtype *types) {
    enum { NT = 20 };
    const int64_t n = 256, rows[] = {48, 32, 40};
    mt_tensor w[3];
    const mt_tensor *wp[3];
    float *x = xmalloc((size_t)(NT * n) * sizeof *x), *y[3], *y1[3];
    for (int i = 0; i < nw; i++) {
        w[i] = group_weight(types[i], n, rows[i]);
        wp[i] = &w[i];
        y[i] = xmalloc((size_t)(NT * rows[i]) * sizeof *y[i]);
        y1[i] = xmalloc((size_t)(NT * rows[i]) * sizeof *y1[i]);
    }
    fill_act(NT * n, x);
    const int counts[] = {1, NT};
    for (int c = 0; c < 2; c++) {
        assert_int_equal(mt_matmul_multi(nw, wp, x, counts[c], y), MT_OK);
        for (int i = 0; i < nw; i++) {
            assert_int_equal(mt_matmul(&w[i], x, counts[c], y1[i]), MT_OK);
            if (memcmp(y[i], y1[i], (size_t)(counts[c] * rows[i]) * sizeof *y1[i]))
                fail_msg("%s: weight %d (%s) of %d, %d tokens: the group and alone differ",
                         mt_qdot_impl_name(mt_qdot_get_impl()), i, mt_dtype_name(types[i]), nw,
                         counts[c]);
        }
    }
    for (int i = 0; i < nw; i++) {
        free((void *)w[i].data), free((void *)w[i].packed);
        free(y[i]), free(y1[i]);
    }
    free(x);
}

static void test_matmul_multi_mixed_types(void **state) {
    (void)state;
    mt_rng_seed(&rng, 13);
    const mt_dtype floats[] = {MT_F32, MT_F16, MT_BF16}, quants[] = {MT_Q8_0, MT_Q4_K, MT_Q6_K};
    const mt_qdot_impl impls[] = {MT_QDOT_SCALAR, MT_QDOT_AVX2, MT_QDOT_AVX512};
    mt_kernels_set_precise(0);
    for (int m = 0; m < 3; m++) {
        if (mt_qdot_set_impl(impls[m]) != MT_OK) continue; /* not on this CPU */
        for (int f = 0; f < 3; f++)
            for (int q = 0; q < 3; q++) {
                const mt_dtype fl = floats[f], qu = quants[q];
                mixed_group(3, (const mt_dtype[]){qu, fl, qu});
                mixed_group(3, (const mt_dtype[]){fl, qu, fl});
                mixed_group(2, (const mt_dtype[]){fl, qu});
                mixed_group(2, (const mt_dtype[]){qu, fl});
            }
        mixed_group(3, (const mt_dtype[]){MT_Q8_0, MT_BF16, MT_Q6_K});
    }
    mt_qdot_set_impl(MT_QDOT_AUTO);
    mt_kernels_set_precise(1);
}

/* The AVX-512 kernels through mt_matmul_q, every (row, token) against the scalar kernel
 * within 2T: 1, 2, 3, 7 and 16 tokens (every pass size, 16 and 7 = 4 + 2 + 1), odd row
 * counts and offsets, tails of every length. Skipped without AVX-512 VNNI. */
static void test_avx512_matmul(void **state) {
    (void)state;
    if (!mt_qdot_avx512_available()) {
        printf("note: CPU lacks AVX-512 F/BW/DQ/VL/VNNI\n");
        skip();
    }
    mt_rng_seed(&rng, 4242);
    const int ntoks[] = {1, 2, 3, 7, 16};
    const int64_t sizes[] = {32, 96, 224, 576, 640, 2304, 4352};
    const int64_t rows = 7, row0 = 1, row1 = 6;
    double worst_simd = 0;
    for (int k = 0; k < N_ALL; k++) {
        const mt_dtype t = ALL[k];
        if (is_float_type(t)) continue;
        for (int si = 0; si < 7; si++) {
            const int64_t n = sizes[si];
            if (n % mt_dtype_block_elems(t)) continue;
            const size_t rb = mt_dtype_row_bytes(t, n), ab = mt_act_bytes(t, n);
            uint8_t *w = xmalloc(rb * rows), *xq = xmalloc(ab * 16 + 1);
            float *x = xmalloc((size_t)(16 * n) * sizeof *x);
            float *y = xmalloc((size_t)(16 * rows) * sizeof *y);
            for (int64_t r = 0; r < rows; r++) fill_row(t, n, w + r * rb);
            fill_act(16 * n, x);
            for (int i = 0; i < 16; i++)
                assert_int_equal(mt_quantize_act(t, x + i * n, n, xq + i * ab), MT_OK);
            const mt_tensor wt = {.type = t, .n_dims = 2, .ne = {n, rows, 1, 1}, .data = w};
            for (int ti = 0; ti < 5; ti++) {
                const int nt = ntoks[ti];
                assert_int_equal(mt_qdot_set_impl(MT_QDOT_AVX512), MT_OK);
                mt_matmul_q(&wt, nt, xq, x, y, row0, row1);
                mt_qdot_set_impl(MT_QDOT_AUTO);
                for (int tok = 0; tok < nt; tok++)
                    for (int64_t r = row0; r < row1; r++) {
                        const uint8_t *wr = w + r * rb;
                        const void *xt = xq + tok * ab;
                        const expect e = expected(t, n, wr, x + tok * n, xt);
                        const float ys = dot_with(MT_QDOT_SCALAR, t, n, wr, xt, x + tok * n);
                        const float ya = y[tok * rows + r];
                        const double d = fabs((double)ya - ys) / (2 * e.T);
                        const double ke = fabs(ya - e.exact_q) / e.T;
                        if (d > 1.0 || ke > 1.0)
                            fail_msg("%s n %lld nt %d tok %d row %lld: avx512 %.9g scalar %.9g "
                                     "exact %.9g (T %.3g)",
                                     mt_dtype_name(t), (long long)n, nt, tok, (long long)r,
                                     (double)ya, (double)ys, e.exact_q, e.T);
                        worst_simd = fmax(worst_simd, d);
                    }
            }
            free(w), free(xq), free(x), free(y);
        }
    }
    printf("avx512 mt_matmul_q: worst |avx512-scalar|/2T %.2e\n", worst_simd);
}

/* The kernels for packed weights (mt_qpacked_matmul) for Q4_0, Q4_1, Q5_0, Q8_0 and Q4_K:
 * every (row, token) within 2T of the scalar kernel and within T of the exact product
 * of the quantised values; ten groups of sixteen rows, the row range leaving the first
 * and last partial; token counts that take every tile shape (8, 4, 2, 1). A
 * token's result has the same bits whatever else the call holds and whichever rows it
 * covers. Skipped without AVX-512 VNNI. */
static void test_qpack(void **state) {
    (void)state;
    if (!mt_qdot_avx512_available()) {
        printf("note: CPU lacks AVX-512 F/BW/DQ/VL/VNNI\n");
        skip();
    }
    mt_rng_seed(&rng, 777);
    const mt_dtype types[] = {MT_Q4_0, MT_Q4_1, MT_Q5_0, MT_Q8_0, MT_Q4_K};
    const int ntoks[] = {1, 2, 3, 7, 8, 13, 17};
    const int64_t sizes[] = {32, 576, 1024};
    const int64_t rows = 155, row0 = 2, row1 = 151;
    enum { MAXT = 17 };
    double worst = 0;
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_AVX512), MT_OK);
    for (int k = 0; k < 5; k++) {
        const mt_dtype t = types[k];
        assert_true(mt_qpack_supported(t));
        for (int si = 0; si < 3; si++) {
            const int64_t n = sizes[si];
            if (n % mt_dtype_block_elems(t)) continue;
            const size_t rb = mt_dtype_row_bytes(t, n), ab = mt_act_bytes(t, n);
            uint8_t *w = xmalloc(rb * rows), *xq = xmalloc(ab * MAXT);
            float *x = xmalloc((size_t)(MAXT * n) * sizeof *x);
            float *y = xmalloc((size_t)(MAXT * rows) * sizeof *y);
            float *y1 = xmalloc((size_t)rows * sizeof *y1),
                  *y2 = xmalloc((size_t)rows * sizeof *y2);
            for (int64_t r = 0; r < rows; r++) fill_row(t, n, w + r * rb);
            fill_act(MAXT * n, x);
            for (int i = 0; i < MAXT; i++)
                assert_int_equal(mt_quantize_act(t, x + i * n, n, xq + i * ab), MT_OK);
            mt_tensor wt = {.type = t, .n_dims = 2, .ne = {n, rows, 1, 1}, .data = w};
            assert_int_equal(mt_qpacked_matmul(&wt, 1, xq, y, 0, 1), MT_ERR_UNSUPPORTED);
            const size_t pb = mt_qpack_bytes(&wt);
            assert_true(pb > 0 && pb % 64 == 0);
            void *packed = aligned_alloc(64, pb);
            assert_non_null(packed);
            assert_int_equal(mt_qpack(&wt, packed), MT_OK);
            wt.packed = packed;
            for (int ti = 0; ti < 7; ti++) {
                const int nt = ntoks[ti];
                for (int i = 0; i < MAXT * rows; i++) y[i] = -1.0f;
                assert_int_equal(mt_qpacked_matmul(&wt, nt, xq, y, row0, row1), MT_OK);
                for (int tok = 0; tok < nt; tok++) {
                    assert_int_equal(mt_qpacked_matmul(&wt, 1, xq + tok * ab, y1, row0, row1),
                                     MT_OK);
                    assert_int_equal(mt_qpacked_matmul(&wt, 1, xq + tok * ab, y2, 37, 38), MT_OK);
                    assert_memory_equal(&y2[37], &y[tok * rows + 37], sizeof *y2);
                    for (int64_t r = 0; r < rows; r++) {
                        const float ya = y[tok * rows + r];
                        if (r < row0 || r >= row1) { /* outside the range: untouched */
                            assert_true(ya == -1.0f);
                            continue;
                        }
                        const uint8_t *wr = w + r * rb;
                        const void *xt = xq + tok * ab;
                        const expect e = expected(t, n, wr, x + tok * n, xt);
                        const float ys = dot_with(MT_QDOT_SCALAR, t, n, wr, xt, x + tok * n);
                        const double d = fabs((double)ya - ys) / (2 * e.T);
                        const double ke = fabs(ya - e.exact_q) / e.T;
                        if (d > 1.0 || ke > 1.0 || memcmp(&ya, &y1[r], sizeof ya) != 0)
                            fail_msg("%s n %lld nt %d tok %d row %lld: packed %.9g alone %.9g "
                                     "scalar %.9g exact %.9g (T %.3g)",
                                     mt_dtype_name(t), (long long)n, nt, tok, (long long)r,
                                     (double)ya, (double)y1[r], (double)ys, e.exact_q, e.T);
                        worst = fmax(worst, d);
                    }
                }
            }
            free(packed);
            free(w), free(xq), free(x), free(y), free(y1), free(y2);
        }
    }
    assert_false(mt_qpack_supported(MT_Q6_K));
    assert_false(mt_qpack_supported(MT_F32));
    const mt_tensor k6 = {.type = MT_Q6_K, .n_dims = 2, .ne = {256, 1, 1, 1}};
    assert_int_equal(mt_qpack_bytes(&k6), 0);
    assert_int_equal(mt_qpack(&k6, NULL), MT_ERR_UNSUPPORTED);
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_AVX2), MT_OK); /* AVX-512 implies AVX2 */
    assert_false(mt_qpack_supported(MT_Q4_1));
    mt_qdot_set_impl(MT_QDOT_AUTO);
    printf("packed kernels: worst |packed-scalar|/2T %.2e\n", worst);
}

static void test_quantize_act(void **state) {
    (void)state;
    mt_rng_seed(&rng, 5);
    float x[512];
    fill_act(512, x);
    x[300] = -50.0f; /* the largest magnitude of its K block and of its 32-block */
    mt_act32 a32[16];
    mt_act256 a256[2];
    assert_int_equal(mt_act_bytes(MT_Q4_0, 512), sizeof a32);
    assert_int_equal(mt_act_bytes(MT_Q6_K, 512), sizeof a256);
    assert_int_equal(mt_act_bytes(MT_F16, 512), 0);
    assert_int_equal(mt_quantize_act(MT_Q4_0, x, 512, a32), MT_OK);
    assert_int_equal(mt_quantize_act(MT_Q5_K, x, 512, a256), MT_OK);
    assert_int_equal(a32[300 / 32].qs[300 % 32], -127);
    assert_true(a32[300 / 32].d == 50.0f / 127.0f);
    assert_int_equal(a256[1].qs[300 - 256], -127);
    for (int b = 0; b < 16; b++) {
        int s = 0;
        for (int i = 0; i < 32; i++) {
            s += a32[b].qs[i];
            assert_true(fabsf(a32[b].d * a32[b].qs[i] - x[32 * b + i]) <= a32[b].d * 0.5001f);
        }
        assert_true(a32[b].s == a32[b].d * (float)s);
    }
    for (int b = 0; b < 2; b++)
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += a256[b].qs[16 * g + i];
            assert_int_equal(a256[b].bsums[g], s);
        }
    /* Non-finite input stays defined: no trap, no NaN codes. */
    x[3] = NAN;
    x[40] = INFINITY;
    assert_int_equal(mt_quantize_act(MT_Q8_0, x, 64, a32), MT_OK);
    for (int i = 0; i < 32; i++) assert_true(a32[1].qs[i] >= -127 && a32[1].qs[i] <= 127);
}

/* The AVX2 and (where the CPU has it) AVX-512 activation quantisers give the scalar
 * one's bits, NaN, inf, zeros, ties and huge values included, for both block layouts. */
static void test_quantize_act_simd_equals_scalar(void **state) {
    (void)state;
    if (!mt_qdot_avx2_available()) skip();
    mt_rng_seed(&rng, 11);
    enum { N = 1024 };
    float x[N];
    fill_act(N, x);
    for (int i = 0; i < N; i += 37) x[i] *= 1e30f;
    for (int i = 64; i < 96; i++) x[i] = 0.0f;                     /* an all-zero 32-block */
    for (int i = 96; i < 128; i++) x[i] = 0.5f * (float)(i - 112); /* exact halves: ties */
    x[130] = NAN;
    x[200] = -INFINITY;
    x[700] = NAN;
    x[701] = INFINITY;
    const mt_dtype types[] = {MT_Q4_0, MT_Q4_K};
    for (int k = 0; k < 2; k++) {
        const size_t bytes = mt_act_bytes(types[k], N);
        unsigned char *a = malloc(bytes), *b = malloc(bytes);
        assert_non_null(a);
        assert_non_null(b);
        memset(a, 0x55, bytes);
        memset(b, 0xaa, bytes);
        assert_int_equal(mt_qdot_set_impl(MT_QDOT_SCALAR), MT_OK);
        assert_int_equal(mt_quantize_act(types[k], x, N, a), MT_OK);
        assert_int_equal(mt_qdot_set_impl(MT_QDOT_AVX2), MT_OK);
        assert_int_equal(mt_quantize_act(types[k], x, N, b), MT_OK);
        /* Both layouts are packed (static asserts in qdot_internal.h): no padding bytes. */
        assert_memory_equal(a, b, bytes);
        if (mt_qdot_avx512_available()) {
            memset(b, 0xaa, bytes);
            assert_int_equal(mt_qdot_set_impl(MT_QDOT_AVX512), MT_OK);
            assert_int_equal(mt_quantize_act(types[k], x, N, b), MT_OK);
            assert_memory_equal(a, b, bytes);
        }
        free(a);
        free(b);
    }
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_AUTO), MT_OK);
}

static void test_errors(void **state) {
    (void)state;
    float x[64] = {0};
    uint8_t out[512];
    assert_int_equal(mt_quantize_act(MT_Q4_0, x, 48, out), MT_ERR_ARG);
    assert_int_equal(mt_quantize_act(MT_Q4_K, x, 64, out), MT_ERR_ARG);
    assert_int_equal(mt_quantize_act(MT_Q8_0, x, 0, out), MT_ERR_ARG);
    assert_int_equal(mt_quantize_act((mt_dtype)99, x, 64, out), MT_ERR_UNSUPPORTED);
    assert_int_equal(mt_quantize_act(MT_F32, x, 5, out), MT_OK);
    assert_int_equal(mt_act_bytes((mt_dtype)99, 64), 0);
    assert_false(mt_qdot_supported((mt_dtype)99));
    assert_true(mt_act_same(MT_Q5_0, MT_Q8_0) && mt_act_same(MT_Q4_1, MT_Q4_0));
    assert_true(mt_act_same(MT_Q4_K, MT_Q6_K) && mt_act_same(MT_F16, MT_BF16));
    assert_false(mt_act_same(MT_Q8_0, MT_Q4_K) || mt_act_same(MT_F32, MT_Q8_0));
    assert_false(mt_act_same((mt_dtype)99, (mt_dtype)99));
    assert_int_equal(mt_qdot_set_impl((mt_qdot_impl)7), MT_ERR_ARG);
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_SCALAR), MT_OK);
    assert_int_equal(mt_qdot_get_impl(), MT_QDOT_SCALAR);
    /* AUTO takes the best the CPU has; an unavailable choice fails and changes nothing */
    const mt_qdot_impl best = mt_qdot_avx512_available() ? MT_QDOT_AVX512
                              : mt_qdot_avx2_available() ? MT_QDOT_AVX2
                                                         : MT_QDOT_SCALAR;
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_AUTO), MT_OK);
    assert_int_equal(mt_qdot_get_impl(), best);
    assert_true(!mt_qdot_avx512_available() || mt_qdot_avx2_available());
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_SCALAR), MT_OK);
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_AVX2),
                     mt_qdot_avx2_available() ? MT_OK : MT_ERR_UNSUPPORTED);
    assert_int_equal(mt_qdot_get_impl(), mt_qdot_avx2_available() ? MT_QDOT_AVX2 : MT_QDOT_SCALAR);
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_SCALAR), MT_OK);
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_AVX512),
                     mt_qdot_avx512_available() ? MT_OK : MT_ERR_UNSUPPORTED);
    assert_int_equal(mt_qdot_get_impl(),
                     mt_qdot_avx512_available() ? MT_QDOT_AVX512 : MT_QDOT_SCALAR);
    assert_string_equal(mt_qdot_impl_name(MT_QDOT_AVX512), "avx512");
    mt_qdot_set_impl(MT_QDOT_AUTO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q4_0),
        cmocka_unit_test(test_q4_1),
        cmocka_unit_test(test_q5_0),
        cmocka_unit_test(test_q5_1),
        cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_q4_k),
        cmocka_unit_test(test_q5_k),
        cmocka_unit_test(test_q6_k),
        cmocka_unit_test(test_f32),
        cmocka_unit_test(test_f16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_zero_blocks),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_batch_bitexact),
        cmocka_unit_test(test_avx512_matmul),
        cmocka_unit_test(test_qpack),
        cmocka_unit_test(test_qpack_float),
        cmocka_unit_test(test_matmul_fast_batch_equals_alone),
        cmocka_unit_test(test_matmul_multi_mixed_types),
        cmocka_unit_test(test_quantize_act),
        cmocka_unit_test(test_quantize_act_simd_equals_scalar),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
