/* Beam-search kernels: log-softmax and top-k selection against straightforward references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/topk.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float uniform(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0));
}

static void test_log_softmax_matches_reference(void **state) {
    (void)state;
    enum { N = 50000 };
    float *x = malloc(N * sizeof *x);
    double *ref = malloc(N * sizeof *ref);
    for (int i = 0; i < N; i++) x[i] = 40.0f * uniform() - 20.0f;
    double mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < N; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < N; i++) sum += exp(x[i] - mx);
    for (int i = 0; i < N; i++) ref[i] = x[i] - mx - log(sum);
    const float lse = mt_log_softmax(x, N);
    assert_float_equal(lse, mx + log(sum), 1e-5 * fabs(mx + log(sum)));
    double prob = 0.0;
    for (int i = 0; i < N; i++) {
        /* float32 of a log-prob near -40 is good to a few ulps of 40. */
        assert_float_equal(x[i], ref[i], 1e-5 + 4e-7 * fabs(ref[i]));
        prob += exp(x[i]);
    }
    assert_float_equal(prob, 1.0, 1e-4);
    free(x);
    free(ref);
}

static void test_log_softmax_large_and_infinite(void **state) {
    (void)state;
    float x[4] = {1000.0f, 1000.0f, -INFINITY, 999.0f};
    mt_log_softmax(x, 4);
    const double l = log(2.0 + exp(-1.0));
    assert_float_equal(x[0], -l, 1e-6);
    assert_float_equal(x[1], -l, 1e-6);
    assert_true(isinf(x[2]) && x[2] < 0);
    assert_float_equal(x[3], -1.0 - l, 1e-6);
    float none[3] = {-INFINITY, -INFINITY, -INFINITY};
    assert_true(isinf(mt_log_softmax(none, 3)));
    for (int i = 0; i < 3; i++) assert_true(isinf(none[i]) && none[i] < 0);
}

/* Reference: the k best by a full stable sort (value descending, index ascending). */
static const float *sort_key;
static int by_value_then_index(const void *a, const void *b) {
    const int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    const float x = sort_key[i], y = sort_key[j];
    const int xn = isnan(x), yn = isnan(y);
    if (xn != yn) return xn - yn;
    if (!xn && x != y) return x > y ? -1 : 1;
    return (i > j) - (i < j);
}

static void check_topk(const float *x, int n, int k) {
    int32_t *ref = malloc((size_t)n * sizeof *ref);
    int32_t *idx = malloc((size_t)(k + 1) * sizeof *idx);
    float *val = malloc((size_t)(k + 1) * sizeof *val);
    for (int i = 0; i < n; i++) ref[i] = i;
    sort_key = x;
    qsort(ref, (size_t)n, sizeof *ref, by_value_then_index);
    const int got = mt_topk(x, n, k, idx, val);
    assert_int_equal(got, k < n ? k : n);
    for (int i = 0; i < got; i++) {
        assert_int_equal(idx[i], ref[i]);
        assert_memory_equal(&val[i], &x[ref[i]], sizeof(float));
    }
    free(ref);
    free(idx);
    free(val);
}

static void test_topk_random(void **state) {
    (void)state;
    enum { N = 49152 };
    float *x = malloc(N * sizeof *x);
    for (int i = 0; i < N; i++) x[i] = 30.0f * uniform() - 15.0f;
    const int ks[] = {1, 2, 4, 8, 16, 64, 257};
    for (size_t j = 0; j < sizeof ks / sizeof *ks; j++) check_topk(x, N, ks[j]);
    /* Ascending input: every element displaces the current minimum (worst case). */
    for (int i = 0; i < N; i++) x[i] = (float)i * 1e-3f;
    check_topk(x, N, 33);
    free(x);
}

static void test_topk_ties_take_lower_index(void **state) {
    (void)state;
    /* Heavily tied values (a quantised model's logits often repeat). */
    float x[200];
    for (int i = 0; i < 200; i++) x[i] = (float)(i * 7 % 5);
    for (int k = 1; k <= 200; k += 13) check_topk(x, 200, k);
    int32_t idx[3];
    float val[3];
    const float same[5] = {2.0f, 2.0f, 2.0f, 2.0f, 2.0f};
    assert_int_equal(mt_topk(same, 5, 3, idx, val), 3);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    assert_int_equal(idx[2], 2);
}

static void test_topk_k_above_n_and_specials(void **state) {
    (void)state;
    const float x[6] = {NAN, -INFINITY, 3.0f, INFINITY, NAN, -1.0f};
    check_topk(x, 6, 10);
    int32_t idx[6];
    float val[6];
    assert_int_equal(mt_topk(x, 6, 10, idx, val), 6);
    assert_int_equal(idx[0], 3);
    assert_int_equal(idx[1], 2);
    assert_int_equal(idx[2], 5);
    assert_int_equal(idx[3], 1);
    /* NaN last, in index order. */
    assert_int_equal(idx[4], 0);
    assert_int_equal(idx[5], 4);
    assert_int_equal(mt_topk(x, 6, 0, idx, val), 0);
}

static void test_topk_log_softmax_equals_composition(void **state) {
    (void)state;
    enum { N = 49152, K = 8 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *x0 = malloc(N * sizeof *x0);
    for (int i = 0; i < N; i++) y[i] = x[i] = 30.0f * uniform() - 5.0f;
    x[77] = x[78] = 26.0f; /* a tie at the top */
    y[77] = y[78] = 26.0f;
    memcpy(x0, x, N * sizeof *x);
    int32_t idx[K], ref_idx[K];
    float val[K], ref_val[K];
    assert_int_equal(mt_topk_log_softmax(x, N, K, idx, val), K);
    mt_log_softmax(y, N);
    assert_int_equal(mt_topk(y, N, K, ref_idx, ref_val), K);
    for (int j = 0; j < K; j++) {
        assert_int_equal(idx[j], ref_idx[j]);
        assert_float_equal(val[j], ref_val[j], 1e-6);
    }
    assert_int_equal(idx[0], 77);
    assert_int_equal(idx[1], 78);
    assert_memory_equal(x, x0, N * sizeof *x);
    const float none[3] = {-INFINITY, -INFINITY, -INFINITY};
    assert_int_equal(mt_topk_log_softmax(none, 3, 5, idx, val), 3);
    for (int j = 0; j < 3; j++) assert_true(isinf(val[j]) && val[j] < 0);
    free(x);
    free(y);
    free(x0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_softmax_matches_reference),
        cmocka_unit_test(test_log_softmax_large_and_infinite),
        cmocka_unit_test(test_topk_random),
        cmocka_unit_test(test_topk_ties_take_lower_index),
        cmocka_unit_test(test_topk_k_above_n_and_specials),
        cmocka_unit_test(test_topk_log_softmax_equals_composition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
