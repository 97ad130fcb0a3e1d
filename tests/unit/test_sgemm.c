/* mt_sgemm, both implementations, against a double-precision reference: every transpose
 * combination; sizes off the 12x32 and 24x16 register tiles and past each blocking size (K 256,
 * M 96, N 2048); leading dimensions wider than the matrices (sub-matrices, as attention
 * uses); alpha and beta, including beta = 0 over a C full of NaN (BLAS never reads C
 * then) and k = 0. The two implementations must also agree with each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/rng.h"
#include "kernels/matmul.h"
#include "kernels/sgemm.h"

typedef struct {
    int ta, tb, m, n, k, pad;
    float alpha, beta;
} gemm_case;

static float rnd(mt_rng *r) {
    return (float)mt_rng_uniform(r) * 2.0f - 1.0f;
}

/* Runs one case with the current implementation and checks every element of C (and
 * that the padding columns beside C are untouched). */
static void check_case(const gemm_case *g, mt_rng *rng) {
    const int ar = g->ta ? g->k : g->m, ac = g->ta ? g->m : g->k;
    const int br = g->tb ? g->n : g->k, bc = g->tb ? g->k : g->n;
    const int lda = ac + g->pad, ldb = bc + g->pad, ldc = g->n + g->pad;
    float *a = malloc(sizeof(float) * ((size_t)ar * lda + 1));
    float *b = malloc(sizeof(float) * ((size_t)br * ldb + 1));
    float *c = malloc(sizeof(float) * ((size_t)g->m * ldc + 1));
    double *want = malloc(sizeof(double) * ((size_t)g->m * g->n + 1));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(want);
    for (size_t i = 0; i < (size_t)ar * lda; i++) a[i] = rnd(rng);
    for (size_t i = 0; i < (size_t)br * ldb; i++) b[i] = rnd(rng);
    for (size_t i = 0; i < (size_t)g->m * ldc; i++) c[i] = g->beta == 0.0f ? NAN : rnd(rng);
    for (int i = 0; i < g->m; i++)
        for (int j = 0; j < g->n; j++) {
            double s = 0.0;
            for (int p = 0; p < g->k; p++) {
                const float av = g->ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                const float bv = g->tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += (double)av * bv;
            }
            s *= g->alpha;
            if (g->beta != 0.0f) s += (double)g->beta * c[(size_t)i * ldc + j];
            want[(size_t)i * g->n + j] = s;
        }
    mt_sgemm(g->ta, g->tb, g->m, g->n, g->k, g->alpha, a, lda, b, ldb, g->beta, c, ldc);
    /* f32 accumulation over k terms of size <= 1: error grows about like sqrt(k)·eps. */
    const double tol = 1e-5 * (1.0 + sqrt((double)g->k)) * (fabs(g->alpha) + 1.0);
    for (int i = 0; i < g->m; i++) {
        for (int j = 0; j < g->n; j++) {
            const double got = c[(size_t)i * ldc + j], w = want[(size_t)i * g->n + j];
            if (!(fabs(got - w) <= tol * (1.0 + fabs(w))))
                fail_msg("ta=%d tb=%d m=%d n=%d k=%d: C[%d][%d] = %g, want %g", g->ta, g->tb, g->m,
                         g->n, g->k, i, j, got, w);
        }
        for (int j = g->n; j < ldc; j++)
            if (g->beta == 0.0f) assert_true(isnan(c[(size_t)i * ldc + j]));
    }
    free(a);
    free(b);
    free(c);
    free(want);
}

static const gemm_case cases[] = {
    {0, 0, 1, 1, 1, 0, 1.0f, 0.0f},
    {0, 1, 12, 32, 7, 0, 1.0f, 0.0f},
    {1, 0, 13, 33, 5, 3, 0.5f, 1.0f},
    {1, 1, 11, 31, 300, 1, -2.0f, 0.25f},
    {0, 1, 97, 70, 257, 5, 1.0f, 0.0f},
    {0, 0, 200, 45, 513, 0, 1.0f, 1.0f},
    {1, 0, 64, 2050, 20, 2, 1.0f, 0.0f},
    {0, 1, 3, 2100, 40, 0, 0.125f, -1.0f},
    {1, 1, 130, 17, 64, 7, 1.0f, 0.0f},
    /* n <= 16 takes the narrow kernel (24 rows x 16 columns): */
    {0, 1, 100, 8, 300, 0, 1.0f, 0.0f},
    {1, 0, 50, 16, 20, 2, 0.5f, 1.0f},
    {1, 1, 25, 3, 7, 1, 1.0f, -0.5f},
    {0, 0, 24, 9, 513, 0, 2.0f, 0.0f},
    {0, 0, 23, 16, 1, 4, 1.0f, 1.0f},
    /* a few rows (LoRA's A-factor gradient): one packed edge strip */
    {1, 0, 8, 576, 300, 0, 1.0f, 1.0f},
    {0, 1, 3, 40, 9, 2, 0.5f, 0.0f},
    {1, 1, 16, 17, 260, 1, 1.0f, -1.0f},
    {0, 0, 1, 100, 5, 0, 2.0f, 0.0f},
};

static void run_cases(void) {
    mt_rng rng;
    mt_rng_seed(&rng, 42);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i], &rng);
}

static void test_blas(void **state) {
    (void)state;
    assert_int_equal(mt_sgemm_set_impl(MT_SGEMM_BLAS), 0);
    run_cases();
}

static void test_avx512(void **state) {
    (void)state;
    if (!mt_sgemm_avx512_available()) skip();
    assert_int_equal(mt_sgemm_set_impl(MT_SGEMM_AVX512), 0);
    assert_int_equal(mt_sgemm_get_impl(), MT_SGEMM_AVX512);
    run_cases();
}

static void test_k_zero_scales_c(void **state) {
    (void)state;
    const mt_sgemm_impl impls[] = {MT_SGEMM_BLAS, MT_SGEMM_AVX512};
    for (int i = 0; i < 2; i++) {
        if (mt_sgemm_set_impl(impls[i]) != 0) continue;
        float c[4] = {1, 2, 3, 4}, z[4] = {NAN, NAN, NAN, NAN};
        const float dummy = 0.0f;
        mt_sgemm(0, 0, 2, 2, 0, 1.0f, &dummy, 1, &dummy, 2, 3.0f, c, 2);
        assert_true(c[0] == 3.0f && c[3] == 12.0f);
        mt_sgemm(0, 0, 2, 2, 0, 1.0f, &dummy, 1, &dummy, 2, 0.0f, z, 2);
        for (int j = 0; j < 4; j++) assert_true(z[j] == 0.0f);
    }
}

/* mt_gemm_nt_rowwise (the LoRA branch at generation time): close to the reference, and each
 * row of C bit-identical whether it is computed alone or among others, with beta = 0 never
 * reading C. */
static void test_rowwise_rows_alone(void **state) {
    (void)state;
    mt_rng rng;
    mt_rng_seed(&rng, 11);
    enum { M = 37, N = 130, K = 67 };
    static float a[M * K], b[N * K], all[M * N], one[N];
    for (int i = 0; i < M * K; i++) a[i] = rnd(&rng);
    for (int i = 0; i < N * K; i++) b[i] = rnd(&rng);
    for (int i = 0; i < M * N; i++) all[i] = NAN;
    mt_gemm_nt_rowwise(M, N, K, 0.5f, a, K, b, K, 0.0f, all, N);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double want = 0;
            for (int p = 0; p < K; p++) want += (double)a[i * K + p] * b[j * K + p];
            assert_true(fabs(0.5 * want - all[i * N + j]) < 1e-4);
        }
        mt_gemm_nt_rowwise(1, N, K, 0.5f, a + i * K, K, b, K, 0.0f, one, N);
        assert_memory_equal(one, all + i * N, sizeof one);
    }
    /* beta = 1 adds to C */
    for (int j = 0; j < N; j++) one[j] = 1.0f;
    mt_gemm_nt_rowwise(1, N, K, 0.5f, a, K, b, K, 1.0f, one, N);
    for (int j = 0; j < N; j++) assert_true(fabsf(one[j] - (all[j] + 1.0f)) < 1e-6f);
}

static void test_auto_choice(void **state) {
    (void)state;
    assert_int_equal(mt_sgemm_set_impl(MT_SGEMM_AUTO), 0);
    assert_int_equal(mt_sgemm_get_impl(),
                     mt_sgemm_avx512_available() ? MT_SGEMM_AVX512 : MT_SGEMM_BLAS);
    if (!mt_sgemm_avx512_available()) assert_int_equal(mt_sgemm_set_impl(MT_SGEMM_AVX512), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blas),
        cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_k_zero_scales_c),
        cmocka_unit_test(test_auto_choice),
        cmocka_unit_test(test_rowwise_rows_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
