/* The percentile bootstrap of pipeline/bootstrap.h, checked against its specification:
 * indices from one core/rng.h stream, mt_rng_next() % n in draw order, and numpy's linear
 * percentiles of the resample means. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/rng.h"
#include "pipeline/bootstrap.h"

static const double values[5] = {1.5, -2.0, 4.25, 0.5, 3.0};

/* Resample b's mean as the header specifies it, from a generator at its start. */
static double resample_mean(mt_rng *r, const double *v, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[mt_rng_next(r) % (uint64_t)n];
    return sum / n;
}

static void test_one_resample_is_its_mean(void **state) {
    (void)state;
    mt_rng r;
    mt_rng_seed(&r, 9);
    const double want = resample_mean(&r, values, 5);
    double lo = 0, hi = 0;
    assert_int_equal(mt_bootstrap_mean_ci(values, 5, 1, 9, &lo, &hi), MT_OK);
    assert_true(lo == want && hi == want);
}

static void test_percentiles_interpolate_between_order_statistics(void **state) {
    (void)state;
    mt_rng r;
    mt_rng_seed(&r, 3);
    double a = resample_mean(&r, values, 5), b = resample_mean(&r, values, 5);
    if (a > b) {
        const double t = a;
        a = b, b = t;
    }
    double lo = 0, hi = 0;
    assert_int_equal(mt_bootstrap_mean_ci(values, 5, 2, 3, &lo, &hi), MT_OK);
    assert_true(fabs(lo - (a + 0.025 * (b - a))) < 1e-15);
    assert_true(fabs(hi - (a + 0.975 * (b - a))) < 1e-15);
}

static void test_same_seed_resamples_the_same_questions(void **state) {
    (void)state;
    double shifted[5], lo, hi, slo, shi;
    for (int i = 0; i < 5; i++) shifted[i] = values[i] + 10.0;
    assert_int_equal(mt_bootstrap_mean_ci(values, 5, 1000, 42, &lo, &hi), MT_OK);
    assert_int_equal(mt_bootstrap_mean_ci(shifted, 5, 1000, 42, &slo, &shi), MT_OK);
    assert_true(fabs(slo - lo - 10.0) < 1e-12 && fabs(shi - hi - 10.0) < 1e-12);
    assert_true(lo < hi);
    /* another seed draws other indices */
    assert_int_equal(mt_bootstrap_mean_ci(values, 5, 1000, 43, &slo, &shi), MT_OK);
    assert_true(slo != lo || shi != hi);
}

static void test_constant_values_have_no_spread(void **state) {
    (void)state;
    const double v[3] = {0.75, 0.75, 0.75};
    double lo, hi;
    assert_int_equal(mt_bootstrap_mean_ci(v, 3, 100, 1, &lo, &hi), MT_OK);
    assert_true(lo == 0.75 && hi == 0.75);
}

static void test_nothing_to_resample_is_refused(void **state) {
    (void)state;
    double lo, hi;
    assert_int_equal(mt_bootstrap_mean_ci(values, 0, 100, 1, &lo, &hi), MT_ERR_ARG);
    assert_int_equal(mt_bootstrap_mean_ci(values, 5, 0, 1, &lo, &hi), MT_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_resample_is_its_mean),
        cmocka_unit_test(test_percentiles_interpolate_between_order_statistics),
        cmocka_unit_test(test_same_seed_resamples_the_same_questions),
        cmocka_unit_test(test_constant_values_have_no_spread),
        cmocka_unit_test(test_nothing_to_resample_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
