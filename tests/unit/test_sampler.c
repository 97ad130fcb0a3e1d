/* Sampler: greedy, filters (top-k, top-p, min-p), repetition penalty, determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "infer/sampler.h"

#define V 8

static void fill(float *l) {
    const float base[V] = {1.0f, 3.0f, 2.5f, -1.0f, 0.5f, 2.9f, -3.0f, 0.0f};
    memcpy(l, base, sizeof base);
}

static void test_greedy_picks_argmax(void **state) {
    (void)state;
    mt_sampler s;
    mt_sampler_params p = mt_sampler_defaults();
    assert_int_equal(mt_sampler_init(&s, &p, V), MT_OK);
    float l[V];
    fill(l);
    assert_int_equal(mt_sampler_sample(&s, l, NULL, 0), 1);
    mt_sampler_free(&s);
}

static void test_top_k_one_is_greedy(void **state) {
    (void)state;
    mt_sampler s;
    mt_sampler_params p = mt_sampler_defaults();
    p.temperature = 1.5f;
    p.top_k = 1;
    assert_int_equal(mt_sampler_init(&s, &p, V), MT_OK);
    for (int i = 0; i < 50; i++) {
        float l[V];
        fill(l);
        assert_int_equal(mt_sampler_sample(&s, l, NULL, 0), 1);
    }
    mt_sampler_free(&s);
}

static void test_top_k_restricts_support(void **state) {
    (void)state;
    mt_sampler s;
    mt_sampler_params p = mt_sampler_defaults();
    p.temperature = 5.0f;
    p.top_k = 3; /* tokens 1, 5, 2 */
    assert_int_equal(mt_sampler_init(&s, &p, V), MT_OK);
    int seen[V] = {0};
    for (int i = 0; i < 400; i++) {
        float l[V];
        fill(l);
        seen[mt_sampler_sample(&s, l, NULL, 0)]++;
    }
    assert_true(seen[1] > 0 && seen[5] > 0 && seen[2] > 0);
    assert_int_equal(seen[0] + seen[3] + seen[4] + seen[6] + seen[7], 0);
    mt_sampler_free(&s);
}

static void test_top_p_keeps_nucleus(void **state) {
    (void)state;
    mt_sampler s;
    mt_sampler_params p = mt_sampler_defaults();
    p.temperature = 1.0f;
    p.top_p = 0.3f; /* token 1 alone holds about 0.36 of the mass */
    assert_int_equal(mt_sampler_init(&s, &p, V), MT_OK);
    for (int i = 0; i < 100; i++) {
        float l[V];
        fill(l);
        assert_int_equal(mt_sampler_sample(&s, l, NULL, 0), 1);
    }
    mt_sampler_free(&s);
}

static void test_min_p_drops_unlikely(void **state) {
    (void)state;
    mt_sampler s;
    mt_sampler_params p = mt_sampler_defaults();
    p.temperature = 1.0f;
    p.min_p = 0.5f; /* keeps 1 (p1), 5 (e^-0.1 p1), 2 (e^-0.5 p1 = 0.61 p1) */
    assert_int_equal(mt_sampler_init(&s, &p, V), MT_OK);
    for (int i = 0; i < 300; i++) {
        float l[V];
        fill(l);
        int t = mt_sampler_sample(&s, l, NULL, 0);
        assert_true(t == 1 || t == 5 || t == 2);
    }
    mt_sampler_free(&s);
}

static void test_repeat_penalty_changes_greedy_choice(void **state) {
    (void)state;
    mt_sampler s;
    mt_sampler_params p = mt_sampler_defaults();
    p.repeat_penalty = 2.0f;
    assert_int_equal(mt_sampler_init(&s, &p, V), MT_OK);
    float l[V];
    fill(l);
    const int32_t hist[] = {1, 1, 5};
    /* 3.0/2 = 1.5 and 2.9/2 = 1.45 fall below token 2's 2.5. */
    assert_int_equal(mt_sampler_sample(&s, l, hist, 3), 2);
    assert_float_equal(l[1], 1.5f, 1e-6);
    assert_float_equal(l[3], -1.0f, 1e-6);
    mt_sampler_free(&s);
}

static void test_same_seed_same_stream(void **state) {
    (void)state;
    mt_sampler a, b;
    mt_sampler_params p = mt_sampler_defaults();
    p.temperature = 2.0f;
    p.seed = 1234;
    assert_int_equal(mt_sampler_init(&a, &p, V), MT_OK);
    assert_int_equal(mt_sampler_init(&b, &p, V), MT_OK);
    int differ_from_greedy = 0;
    for (int i = 0; i < 64; i++) {
        float la[V], lb[V];
        fill(la);
        fill(lb);
        int ta = mt_sampler_sample(&a, la, NULL, 0);
        assert_int_equal(ta, mt_sampler_sample(&b, lb, NULL, 0));
        differ_from_greedy += ta != 1;
    }
    assert_true(differ_from_greedy > 0);
    mt_sampler_free(&a);
    mt_sampler_free(&b);
}

static void test_invalid_params_rejected(void **state) {
    (void)state;
    mt_sampler_params p = mt_sampler_defaults();
    p.top_p = 0.0f;
    assert_int_equal(mt_sampler_params_validate(&p), MT_ERR_ARG);
    p = mt_sampler_defaults();
    p.temperature = -1.0f;
    assert_int_equal(mt_sampler_params_validate(&p), MT_ERR_ARG);
    p = mt_sampler_defaults();
    p.min_p = 1.0f;
    assert_int_equal(mt_sampler_params_validate(&p), MT_ERR_ARG);
    p = mt_sampler_defaults();
    p.repeat_penalty = NAN;
    assert_int_equal(mt_sampler_params_validate(&p), MT_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_picks_argmax),
        cmocka_unit_test(test_top_k_one_is_greedy),
        cmocka_unit_test(test_top_k_restricts_support),
        cmocka_unit_test(test_top_p_keeps_nucleus),
        cmocka_unit_test(test_min_p_drops_unlikely),
        cmocka_unit_test(test_repeat_penalty_changes_greedy_choice),
        cmocka_unit_test(test_same_seed_same_stream),
        cmocka_unit_test(test_invalid_params_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
