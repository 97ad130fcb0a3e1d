/* The vectorised exponential against expf: relative error within a few ulp over the range
 * softmax uses and beyond, NaN stays NaN, -inf and very negative inputs give 0, odd lengths
 * (the expf tail) and in-place use work, sums agree with summing expf in double, and the
 * row maximum matches a plain scan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>

#include <cmocka.h>

#include "kernels/vexp.h"

static void test_matches_expf(void **state) {
    (void)state;
    enum { N = 20003 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int i = 0; i < N; i++) x[i] = -90.0f + 178.0f * (float)i / (N - 1);
    mt_exp_shift(y, x, N, 0.0f);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        const double want = expf(x[i]);
        if (want < 1.2e-38) {
            assert_true(y[i] <= 2e-38f);
            continue;
        }
        const double rel = fabs(y[i] - want) / want;
        worst = rel > worst ? rel : worst;
    }
    assert_true(worst < 4.0 * 1.2e-7);
    free(x);
    free(y);
}

static void test_special_values_and_shift(void **state) {
    (void)state;
    float x[11] = {0.0f, -INFINITY, NAN, -200.0f, 1.0f, -1.0f, 0.5f, 2.0f, 3.0f, -3.0f, 0.0f};
    float y[11];
    mt_exp_shift(y, x, 11, 1.0f);
    assert_true(fabsf(y[0] - expf(-1.0f)) < 1e-7f);
    assert_true(y[1] == 0.0f);
    assert_true(isnan(y[2]));
    assert_true(y[3] == 0.0f);
    assert_true(fabsf(y[4] - 1.0f) < 1e-7f);
    /* In place, and the tail past 8 elements. */
    mt_exp_shift(x, x, 11, 0.0f);
    assert_true(fabsf(x[9] - expf(-3.0f)) < 1e-7f);
    assert_true(x[10] == 1.0f);
}

static void test_sum_and_max(void **state) {
    (void)state;
    enum { N = 49157 };
    float *x = malloc(N * sizeof *x);
    assert_non_null(x);
    srand(7);
    float mx = -INFINITY;
    for (int i = 0; i < N; i++) {
        x[i] = 20.0f * ((float)rand() / RAND_MAX) - 15.0f;
        mx = x[i] > mx ? x[i] : mx;
    }
    assert_true(mt_row_max(x, N) == mx);
    assert_true(mt_row_max(x, 3) == fmaxf(x[0], fmaxf(x[1], x[2])));
    double want = 0.0;
    for (int i = 0; i < N; i++) want += expf(x[i] - mx);
    const double got = mt_exp_shift_sum(x, N, mx);
    assert_true(fabs(got - want) / want < 1e-6);
    free(x);
}

/* exp and sum in one pass: the values mt_exp_shift gives, summed in eight lanes in order
 * and then pairwise, the tail added last: the AVX2 order, which wider vectors keep, so
 * the sum has the same bits on every x86 CPU with AVX2. Lengths leave 8 + 5 and 5
 * elements after the 16-wide steps. */
static void test_store_sum_order(void **state) {
    (void)state;
    const int ns[] = {1037, 49157};
    float *x = malloc(49157 * sizeof *x), *y = malloc(49157 * sizeof *y);
    float *want = malloc(49157 * sizeof *want);
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(want);
    srand(11);
    for (int k = 0; k < 2; k++) {
        const int n = ns[k];
        for (int i = 0; i < n; i++) x[i] = 20.0f * ((float)rand() / RAND_MAX) - 15.0f;
        const float mx = mt_row_max(x, n);
        mt_exp_shift(want, x, n, mx);
        const float got = mt_exp_shift_store_sum(y, x, n, mx);
        assert_memory_equal(y, want, (size_t)n * sizeof *y);
        float lane[8] = {0}, sum;
        const int body = n / 8 * 8;
        for (int i = 0; i < body; i++) lane[i % 8] += want[i];
        sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
              ((lane[4] + lane[5]) + (lane[6] + lane[7]));
        for (int i = body; i < n; i++) sum += want[i];
        assert_memory_equal(&got, &sum, sizeof sum);
    }
    free(x);
    free(y);
    free(want);
}

/* The logistic function (SiLU and GELU gates) against 1/(1+expf(-x)): within a few ulp
 * over [-100, 100] (saturating to 0 and 1 at the ends), odd lengths, in place, NaN. */
static void test_sigmoid(void **state) {
    (void)state;
    enum { N = 4001 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int i = 0; i < N; i++) x[i] = -100.0f + 200.0f * (float)i / (N - 1);
    mt_sigmoid(y, x, N);
    for (int i = 0; i < N; i++) {
        const double want = 1.0 / (1.0 + exp(-(double)x[i]));
        if (want < 1e-30) {
            assert_true(y[i] >= 0.0f && y[i] < 1e-30f);
            continue;
        }
        assert_true(fabs(y[i] - want) <= 6e-7 * want);
    }
    x[3] = NAN;
    mt_sigmoid(x, x, 9);
    assert_true(isnan(x[3]));
    assert_true(x[0] < 1e-30f && x[0] >= 0.0f);
    free(x);
    free(y);
}

/* The first maximum wins ties; the maximum in the scalar tail, at 0, or among -inf; short
 * rows. */
static void test_argmax(void **state) {
    (void)state;
    enum { N = 1003 };
    float *x = malloc(N * sizeof *x);
    assert_non_null(x);
    for (int i = 0; i < N; i++) x[i] = -1000.0f + (float)((i * 7919) % 997);
    int want = 0;
    for (int i = 1; i < N; i++)
        if (x[i] > x[want]) want = i;
    assert_int_equal(mt_row_argmax(x, N), want);
    x[500] = x[900] = 5000.0f;
    assert_int_equal(mt_row_argmax(x, N), 500);
    x[1001] = 6000.0f; /* past the last multiple of 8 */
    assert_int_equal(mt_row_argmax(x, N), 1001);
    x[0] = 7000.0f;
    assert_int_equal(mt_row_argmax(x, N), 0);
    for (int i = 0; i < 20; i++) x[i] = -INFINITY;
    x[13] = -1e30f;
    assert_int_equal(mt_row_argmax(x, 20), 13);
    assert_int_equal(mt_row_argmax(x, 3), 0);
    x[2] = 1.0f;
    assert_int_equal(mt_row_argmax(x, 3), 2);
    x[5] = NAN;
    const int i = mt_row_argmax(x, 20);
    assert_true(i >= 0 && i < 20);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_expf), cmocka_unit_test(test_sigmoid),
        cmocka_unit_test(test_argmax),       cmocka_unit_test(test_special_values_and_shift),
        cmocka_unit_test(test_sum_and_max),  cmocka_unit_test(test_store_sum_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
