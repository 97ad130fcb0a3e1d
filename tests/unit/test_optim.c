/* AdamW, schedules, clipping and accumulation helpers against values worked out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/optim.h"

/* One scalar parameter with its own storage. */
typedef struct {
    float w, g, m, v;
} scalar;

static mt_param as_param(scalar *s, int decay) {
    return (mt_param){
        .name = "s", .w = &s->w, .g = &s->g, .m = &s->m, .v = &s->v, .n = 1, .decay = decay};
}

/* AdamW in double, straight from the formula, for one scalar. */
static void ref_step(double *w, double *m, double *v, double g, int t, double lr,
                     const mt_adamw_params *hp, int decay) {
    if (decay) *w *= 1 - lr * hp->weight_decay;
    *m = hp->beta1 * *m + (1 - hp->beta1) * g;
    *v = hp->beta2 * *v + (1 - hp->beta2) * g * g;
    const double mh = *m / (1 - pow(hp->beta1, t)), vh = *v / (1 - pow(hp->beta2, t));
    *w -= lr * mh / (sqrt(vh) + hp->eps);
}

static void test_adamw_first_step_moves_by_lr(void **state) {
    (void)state;
    mt_adamw opt;
    mt_adamw_params hp = mt_adamw_defaults();
    hp.weight_decay = 0.1;
    assert_int_equal(mt_adamw_init(&opt, &hp), MT_OK);
    scalar a = {.w = 1, .g = 0.5f}, b = {.w = 1, .g = -3};
    mt_param p[2] = {as_param(&a, 1), as_param(&b, 0)};
    assert_int_equal(mt_adamw_step(&opt, p, 2, 0.1f), MT_OK);
    assert_int_equal(opt.step, 1);
    /* Bias-corrected first step: m_hat/sqrt(v_hat) = sign(g), so w moves by lr after decay. */
    assert_float_equal(a.w, 1 * (1 - 0.1 * 0.1) - 0.1, 1e-6);
    assert_float_equal(b.w, 1 + 0.1, 1e-6);
    assert_float_equal(a.m, 0.05, 1e-7);
    assert_float_equal(a.v, 0.00025, 1e-9);
}

static void test_adamw_matches_formula_over_steps(void **state) {
    (void)state;
    mt_adamw opt;
    mt_adamw_params hp = {.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.05};
    assert_int_equal(mt_adamw_init(&opt, &hp), MT_OK);
    const double grads[5] = {0.5, -0.25, 1.5, 0.0, -2.0}, lrs[5] = {0.1, 0.05, 0.02, 0.01, 0.2};
    scalar s = {.w = 0.7f};
    mt_param p = as_param(&s, 1);
    double w = 0.7, m = 0, v = 0;
    for (int t = 1; t <= 5; t++) {
        s.g = (float)grads[t - 1];
        assert_int_equal(mt_adamw_step(&opt, &p, 1, (float)lrs[t - 1]), MT_OK);
        ref_step(&w, &m, &v, grads[t - 1], t, (float)lrs[t - 1], &hp, 1);
        assert_float_equal(s.w, w, 1e-6);
        assert_float_equal(s.m, m, 1e-6);
        assert_float_equal(s.v, v, 1e-7);
    }
}

static void test_adamw_zero_grad_only_decays(void **state) {
    (void)state;
    mt_adamw opt;
    mt_adamw_params hp = mt_adamw_defaults();
    assert_int_equal(mt_adamw_init(&opt, &hp), MT_OK);
    scalar a = {.w = 2}, b = {.w = 2};
    mt_param p[2] = {as_param(&a, 1), as_param(&b, 0)};
    assert_int_equal(mt_adamw_step(&opt, p, 2, 0.5f), MT_OK);
    assert_float_equal(a.w, 2 * (1 - 0.5 * 0.01), 1e-6);
    assert_float_equal(b.w, 2, 0);
}

static void test_adamw_rejects_bad_input(void **state) {
    (void)state;
    mt_adamw opt;
    mt_adamw_params hp = mt_adamw_defaults();
    hp.beta1 = 1.0;
    assert_int_equal(mt_adamw_init(&opt, &hp), MT_ERR_ARG);
    hp = mt_adamw_defaults();
    hp.weight_decay = -1;
    assert_int_equal(mt_adamw_init(&opt, &hp), MT_ERR_ARG);
    hp = mt_adamw_defaults();
    hp.eps = NAN;
    assert_int_equal(mt_adamw_init(&opt, &hp), MT_ERR_ARG);
    hp = mt_adamw_defaults();
    assert_int_equal(mt_adamw_init(&opt, &hp), MT_OK);
    scalar s = {.w = 1, .g = 1};
    mt_param p = as_param(&s, 1);
    assert_int_equal(mt_adamw_step(&opt, &p, 1, -1.0f), MT_ERR_ARG);
    assert_int_equal(mt_adamw_step(&opt, &p, 1, NAN), MT_ERR_ARG);
    p.v = NULL;
    assert_int_equal(mt_adamw_step(&opt, &p, 1, 0.1f), MT_ERR_ARG);
    /* A refused step neither counts nor moves anything. */
    assert_int_equal(opt.step, 0);
    assert_float_equal(s.w, 1, 0);
    mt_param empty = {.name = "empty", .n = 0};
    assert_int_equal(mt_adamw_step(&opt, &empty, 1, 0.1f), MT_OK);
}

/* Step count and moments are the whole state: a run restored from them continues bit for bit. */
static void test_adamw_resume_is_exact(void **state) {
    (void)state;
    enum { N = 100000, STEPS = 4 };
    float *buf = calloc(8 * N, sizeof(float));
    assert_non_null(buf);
    mt_param a = {.w = buf, .g = buf + N, .m = buf + 2 * N, .v = buf + 3 * N, .n = N, .decay = 1};
    mt_param b = {
        .w = buf + 4 * N, .g = buf + 5 * N, .m = buf + 6 * N, .v = buf + 7 * N, .n = N, .decay = 1};
    for (int i = 0; i < N; i++) a.w[i] = b.w[i] = sinf((float)i);
    mt_adamw oa, ob;
    mt_adamw_params hp = mt_adamw_defaults();
    assert_int_equal(mt_adamw_init(&oa, &hp), MT_OK);
    assert_int_equal(mt_adamw_init(&ob, &hp), MT_OK);
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < N; i++) a.g[i] = b.g[i] = cosf((float)(i * (t + 1)));
        assert_int_equal(mt_adamw_step(&oa, &a, 1, 1e-3f), MT_OK);
        if (t == 1) {
            /* Checkpoint b (step + w, m, v), wipe it, and restore into a fresh optimiser. */
            float *saved = malloc(3 * N * sizeof(float));
            assert_non_null(saved);
            const int64_t step = ob.step;
            memcpy(saved, b.w, N * sizeof(float));
            memcpy(saved + N, b.m, N * sizeof(float));
            memcpy(saved + 2 * N, b.v, N * sizeof(float));
            memset(b.w, 0, N * sizeof(float));
            mt_adamw_zero_moments(&b, 1);
            assert_int_equal(mt_adamw_init(&ob, &hp), MT_OK);
            ob.step = step;
            memcpy(b.w, saved, N * sizeof(float));
            memcpy(b.m, saved + N, N * sizeof(float));
            memcpy(b.v, saved + 2 * N, N * sizeof(float));
            free(saved);
        }
        assert_int_equal(mt_adamw_step(&ob, &b, 1, 1e-3f), MT_OK);
    }
    assert_memory_equal(a.w, b.w, N * sizeof(float));
    assert_memory_equal(a.m, b.m, N * sizeof(float));
    mt_adamw_zero_moments(&a, 1);
    for (int i = 0; i < N; i++) assert_true(a.m[i] == 0 && a.v[i] == 0);
    free(buf);
}

static void test_schedule_cosine(void **state) {
    (void)state;
    mt_lr_schedule s = {.kind = MT_LR_COSINE, .base_lr = 2.0, .warmup_steps = 2, .total_steps = 10};
    assert_int_equal(mt_lr_schedule_check(&s), MT_OK);
    assert_float_equal(mt_lr_factor(&s, 0), 0, 0);
    assert_float_equal(mt_lr_factor(&s, 1), 0.5, 1e-15);
    assert_float_equal(mt_lr_factor(&s, 2), 1, 1e-15);
    assert_float_equal(mt_lr_factor(&s, 6), 0.5, 1e-15);
    assert_float_equal(mt_lr_factor(&s, 10), 0, 1e-15);
    assert_float_equal(mt_lr_at(&s, 6), 1.0, 1e-7);
    s.min_ratio = 0.1;
    assert_float_equal(mt_lr_factor(&s, 10), 0.1, 1e-15);
    assert_float_equal(mt_lr_factor(&s, 6), 0.55, 1e-15);
    assert_float_equal(mt_lr_factor(&s, 1), 0.5, 1e-15); /* warmup ignores the floor */
}

static void test_schedule_linear_and_constant(void **state) {
    (void)state;
    mt_lr_schedule s = {.kind = MT_LR_LINEAR, .base_lr = 1, .warmup_steps = 2, .total_steps = 10};
    assert_float_equal(mt_lr_factor(&s, 6), 0.5, 1e-15);
    assert_float_equal(mt_lr_factor(&s, 10), 0, 0);
    assert_float_equal(mt_lr_factor(&s, 12), 0, 0); /* clamped past the end */
    s.min_ratio = 0.2;
    assert_float_equal(mt_lr_factor(&s, 10), 0.2, 1e-15);
    s = (mt_lr_schedule){.kind = MT_LR_CONSTANT, .base_lr = 1, .warmup_steps = 4};
    assert_int_equal(mt_lr_schedule_check(&s), MT_OK);
    assert_float_equal(mt_lr_factor(&s, 1), 0.25, 0);
    assert_float_equal(mt_lr_factor(&s, 4), 1, 0);
    assert_float_equal(mt_lr_factor(&s, 1000), 1, 0);
    /* Without warmup the first step already runs at the full rate. */
    s = (mt_lr_schedule){.kind = MT_LR_COSINE, .base_lr = 1, .total_steps = 4};
    assert_float_equal(mt_lr_factor(&s, 0), 1, 0);
}

static void test_schedule_rejects_bad_input(void **state) {
    (void)state;
    mt_lr_schedule s = {.kind = MT_LR_COSINE, .base_lr = 1, .warmup_steps = 5, .total_steps = 4};
    assert_int_equal(mt_lr_schedule_check(&s), MT_ERR_ARG);
    s.total_steps = 5;
    s.min_ratio = 1.5;
    assert_int_equal(mt_lr_schedule_check(&s), MT_ERR_ARG);
    s.min_ratio = 0;
    s.base_lr = -1;
    assert_int_equal(mt_lr_schedule_check(&s), MT_ERR_ARG);
    s.base_lr = 1;
    s.kind = (mt_lr_kind)7;
    assert_int_equal(mt_lr_schedule_check(&s), MT_ERR_ARG);
}

static void test_clip_scales_only_above_max(void **state) {
    (void)state;
    float w[3] = {0}, g1[2] = {3, 0}, g2[1] = {4};
    mt_param p[2] = {{.w = w, .g = g1, .n = 2}, {.w = w, .g = g2, .n = 1}};
    assert_float_equal(mt_clip_grad_norm(p, 2, 10.0), 5.0, 1e-12);
    assert_float_equal(g1[0], 3, 0);
    assert_float_equal(mt_clip_grad_norm(p, 2, 0.0), 5.0, 1e-12); /* measure only */
    assert_float_equal(g1[0], 3, 0);
    assert_float_equal(mt_clip_grad_norm(p, 2, 1.0), 5.0, 1e-12);
    assert_float_equal(g1[0], 3 / (5 + 1e-6), 1e-7);
    assert_float_equal(g2[0], 4 / (5 + 1e-6), 1e-7);
    assert_float_equal(mt_grad_norm(p, 2), 1.0, 1e-6);
}

static void test_clip_leaves_nonfinite_grads_alone(void **state) {
    (void)state;
    float w[2] = {0}, g[2] = {NAN, 1};
    mt_param p = {.w = w, .g = g, .n = 2};
    assert_true(isnan(mt_clip_grad_norm(&p, 1, 1.0)));
    assert_float_equal(g[1], 1, 0);
    g[0] = INFINITY;
    assert_true(isinf(mt_clip_grad_norm(&p, 1, 1.0)));
    assert_float_equal(g[1], 1, 0);
}

static void test_grad_norm_large_tensor(void **state) {
    (void)state;
    enum { N = 1000003 };
    float *g = malloc(N * sizeof(float));
    assert_non_null(g);
    double ref = 0;
    for (int i = 0; i < N; i++) g[i] = (float)((i % 7) - 3) * 0.01f, ref += (double)g[i] * g[i];
    mt_param p = {.g = g, .n = N};
    assert_float_equal(mt_grad_norm(&p, 1), sqrt(ref), 1e-9 * sqrt(ref));
    free(g);
}

static void test_accumulation_helpers(void **state) {
    (void)state;
    float w[3] = {0}, g[3] = {4, NAN, -8};
    mt_param p = {.w = w, .g = g, .n = 3};
    assert_int_equal(mt_grad_accum_finish(&p, 1, 0), MT_ERR_ARG);
    g[1] = 2;
    assert_int_equal(mt_grad_accum_finish(&p, 1, 4), MT_OK);
    assert_float_equal(g[0], 1, 0);
    assert_float_equal(g[1], 0.5, 0);
    assert_float_equal(g[2], -2, 0);
    g[1] = NAN;
    mt_zero_grads(&p, 1);
    for (int i = 0; i < 3; i++) assert_true(g[i] == 0 && !signbit(g[i]));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_first_step_moves_by_lr),
        cmocka_unit_test(test_adamw_matches_formula_over_steps),
        cmocka_unit_test(test_adamw_zero_grad_only_decays),
        cmocka_unit_test(test_adamw_rejects_bad_input),
        cmocka_unit_test(test_adamw_resume_is_exact),
        cmocka_unit_test(test_schedule_cosine),
        cmocka_unit_test(test_schedule_linear_and_constant),
        cmocka_unit_test(test_schedule_rejects_bad_input),
        cmocka_unit_test(test_clip_scales_only_above_max),
        cmocka_unit_test(test_clip_leaves_nonfinite_grads_alone),
        cmocka_unit_test(test_grad_norm_large_tensor),
        cmocka_unit_test(test_accumulation_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
