/* Cross-entropy rows and preference losses against values worked out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/loss.h"

static void test_ce_small_rows(void **state) {
    (void)state;
    float x[6] = {1, 2, 3, 0.5f, -0.5f, 0};
    const int32_t t[2] = {2, 0};
    double loss, lp[2];
    assert_int_equal(mt_ce_rows(x, 2, 3, t, 1.0f, &loss, lp), MT_OK);
    const double z0 = exp(1) + exp(2) + exp(3), z1 = exp(0.5) + exp(-0.5) + exp(0);
    assert_float_equal(lp[0], 3 - log(z0), 1e-7);
    assert_float_equal(lp[1], 0.5 - log(z1), 1e-7);
    assert_float_equal(loss, -(lp[0] + lp[1]), 1e-12);
    assert_float_equal(x[0], exp(1) / z0, 1e-7);
    assert_float_equal(x[1], exp(2) / z0, 1e-7);
    assert_float_equal(x[2], exp(3) / z0 - 1, 1e-7);
    assert_float_equal(x[3], exp(0.5) / z1 - 1, 1e-7);
    assert_float_equal(x[5], 1 / z1, 1e-7);
}

static void test_ce_grad_scale_and_ignored_rows(void **state) {
    (void)state;
    float x[6] = {1, 2, 3, 9, 9, 9};
    const int32_t t[2] = {MT_IGNORE_INDEX, 1};
    double loss, lp[2] = {7, 7};
    assert_int_equal(mt_ce_rows(x, 2, 3, t, -0.5f, &loss, lp), MT_OK);
    for (int j = 0; j < 3; j++) assert_float_equal(x[j], 0, 0);
    assert_float_equal(lp[0], 0, 0);
    assert_float_equal(lp[1], -log(3.0), 1e-7);
    assert_float_equal(loss, log(3.0), 1e-7); /* the scale never touches the loss */
    assert_float_equal(x[3], -0.5 / 3, 1e-7);
    assert_float_equal(x[4], -0.5 * (1.0 / 3 - 1), 1e-7);
}

static void test_ce_all_rows_ignored(void **state) {
    (void)state;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int32_t t[2] = {MT_IGNORE_INDEX, MT_IGNORE_INDEX};
    double loss = 5, lp[2] = {1, 1};
    assert_int_equal(mt_ce_rows(x, 2, 4, t, 1.0f, &loss, lp), MT_OK);
    assert_float_equal(loss, 0, 0);
    for (int j = 0; j < 8; j++) assert_float_equal(x[j], 0, 0);
    assert_int_equal(mt_ce_rows(x, 0, 4, t, 1.0f, &loss, NULL), MT_OK);
    assert_float_equal(loss, 0, 0);
}

static void test_ce_huge_logits_do_not_overflow(void **state) {
    (void)state;
    float x[6] = {3e38f, -3e38f, 0, 1000, 1000, -1000};
    const int32_t t[2] = {1, 0};
    double loss, lp[2];
    assert_int_equal(mt_ce_rows(x, 2, 3, t, 1.0f, &loss, lp), MT_OK);
    assert_float_equal(lp[0], -6e38, 1e24);
    assert_float_equal(lp[1], -log(2.0), 1e-7);
    assert_true(isfinite(loss));
    const float want[6] = {1, -1, 0, -0.5f, 0.5f, 0};
    for (int j = 0; j < 6; j++) assert_float_equal(x[j], want[j], 1e-7);
}

static void test_ce_bad_target_leaves_logits(void **state) {
    (void)state;
    float x[4] = {1, 2, 3, 4};
    const int32_t t[2] = {0, 2};
    double loss;
    assert_int_equal(mt_ce_rows(x, 2, 2, t, 1.0f, &loss, NULL), MT_ERR_ARG);
    assert_float_equal(x[0], 1, 0);
    const int32_t neg[1] = {-1};
    assert_int_equal(mt_ce_rows(x, 1, 4, neg, 1.0f, &loss, NULL), MT_ERR_ARG);
    assert_int_equal(mt_ce_rows(x, 1, 0, t, 1.0f, &loss, NULL), MT_ERR_ARG);
    double lp;
    assert_int_equal(mt_target_logprobs(x, 1, 4, neg, &lp, NULL), MT_ERR_ARG);
}

static void test_ce_weighted_rows(void **state) {
    (void)state;
    float x[4] = {0, 0, 0, 0};
    const int32_t t[2] = {0, 1};
    const float scale[2] = {2, -1};
    double loss;
    assert_int_equal(mt_ce_rows_weighted(x, 2, 2, t, scale, 0.5f, &loss, NULL), MT_OK);
    assert_float_equal(loss, 2 * log(2.0), 1e-7);
    assert_float_equal(x[0], -0.5, 1e-7);
    assert_float_equal(x[1], 0.5, 1e-7);
    assert_float_equal(x[2], -0.25, 1e-7);
    assert_float_equal(x[3], 0.25, 1e-7);
}

/* Many rows cross the block and parallel thresholds; the results must equal row-by-row ones. */
static void test_ce_many_rows_match_single_rows(void **state) {
    (void)state;
    enum { R = 700, V = 301 };
    float *x = malloc(sizeof(float) * R * V), *y = malloc(sizeof(float) * R * V);
    int32_t *t = malloc(sizeof(int32_t) * R);
    double *lp = malloc(sizeof(double) * R), *lp2 = malloc(sizeof(double) * R);
    assert_true(x && y && t && lp && lp2);
    for (int i = 0; i < R * V; i++) x[i] = y[i] = 8 * sinf(0.37f * (float)i);
    for (int r = 0; r < R; r++) t[r] = r % 5 == 0 ? MT_IGNORE_INDEX : (r * 31) % V;
    double sum_nograd;
    assert_int_equal(mt_target_logprobs(x, R, V, t, lp2, &sum_nograd), MT_OK);
    double loss, one, acc = 0;
    assert_int_equal(mt_ce_rows(x, R, V, t, 0.25f, &loss, lp), MT_OK);
    for (int r = 0; r < R; r++) {
        assert_int_equal(mt_ce_rows(y + (int64_t)r * V, 1, V, t + r, 0.25f, &one, NULL), MT_OK);
        acc += one;
        assert_float_equal(lp[r], lp2[r], 1e-9);
    }
    assert_memory_equal(x, y, sizeof(float) * R * V);
    assert_float_equal(loss, acc, 1e-9 * fabs(acc));
    assert_float_equal(-sum_nograd, loss, 1e-9 * fabs(acc));
    free(x), free(y), free(t), free(lp), free(lp2);
}

static mt_pref_batch batch2(const double *lc, const double *lr, const int64_t *nc,
                            const int64_t *nr) {
    return (mt_pref_batch){
        .n_pairs = 2, .lp_chosen = lc, .lp_rejected = lr, .n_chosen = nc, .n_rejected = nr};
}

static void test_margin_loss(void **state) {
    (void)state;
    /* Pair 0: nll_c = 1, nll_r = 1.5, margin 0.5 -> relu exactly at 0: no loss, no gradient.
     * Pair 1: nll_c = 2, nll_r = 0.5 -> 2 - 0.5 + 0.5 = 2. */
    const double lc[2] = {-2, -8}, lr[2] = {-3, -1.5};
    const int64_t nc[2] = {2, 4}, nr[2] = {2, 3};
    mt_pref_batch b = batch2(lc, lr, nc, nr);
    double dc[2], dr[2];
    mt_pref_stats s;
    assert_int_equal(mt_margin_loss(&b, 0.5, dc, dr, &s), MT_OK);
    assert_float_equal(s.loss, 1.0, 1e-15);
    assert_float_equal(s.pref_loss, 1.0, 1e-15);
    assert_float_equal(s.sft_loss, 0, 0);
    assert_float_equal(dc[0], 0, 0);
    assert_float_equal(dr[0], 0, 0);
    assert_float_equal(dc[1], -1.0 / (2 * 4), 1e-15);
    assert_float_equal(dr[1], 1.0 / (2 * 3), 1e-15);
    assert_float_equal(s.logps_chosen, -5, 1e-15);
    assert_float_equal(s.logps_rejected, -2.25, 1e-15);
    assert_float_equal(s.rewards_chosen, -1.5, 1e-15);
    assert_float_equal(s.reward_margin, ((-1 + 1.5) + (-2 + 0.5)) / 2, 1e-15);
    assert_float_equal(s.accuracy, 0.5, 0);
}

static void test_dpo_loss(void **state) {
    (void)state;
    /* Pair 0 has z = 0: loss log 2. Pair 1 has beta*z = 1000: loss ~0, no overflow. */
    const double lc[2] = {-5, -1}, lr[2] = {-6, -20}, rc[2] = {-4, -1}, rr[2] = {-5, 1980};
    const int64_t n[2] = {3, 3};
    mt_pref_batch b = batch2(lc, lr, n, n);
    b.ref_chosen = rc, b.ref_rejected = rr;
    double dc[2], dr[2];
    mt_pref_stats s;
    assert_int_equal(mt_dpo_loss(&b, 0.5, 0, dc, dr, &s), MT_OK);
    assert_float_equal(s.loss, log(2.0) / 2, 1e-15);
    assert_float_equal(dc[0], -0.5 * 0.5 / 2, 1e-15);
    assert_float_equal(dr[0], 0.5 * 0.5 / 2, 1e-15);
    assert_true(fabs(dc[1]) < 1e-300);
    assert_float_equal(s.rewards_chosen, 0.5 * (-1 + 0) / 2, 1e-15);
    assert_float_equal(s.rewards_rejected, 0.5 * (-1 - 2000) / 2, 1e-12);
    assert_float_equal(s.accuracy, 0.5, 0); /* z = 0 is not a win */
    /* Swapped pair 1: beta*z = -1000, loss 1000 (finite), gradient saturates at -beta/N. */
    b.lp_chosen = lr, b.lp_rejected = lc, b.ref_chosen = rr, b.ref_rejected = rc;
    assert_int_equal(mt_dpo_loss(&b, 0.5, 0, dc, dr, &s), MT_OK);
    assert_float_equal(s.loss, (log(2.0) + 1000) / 2, 1e-9);
    assert_float_equal(dc[1], -0.5 / 2, 1e-15);
}

static void test_dpo_label_smoothing(void **state) {
    (void)state;
    const double lc[1] = {-2}, lr[1] = {-3}, rc[1] = {-2.5}, rr[1] = {-2.5};
    const int64_t n[1] = {2};
    mt_pref_batch b = {.n_pairs = 1,
                       .lp_chosen = lc,
                       .lp_rejected = lr,
                       .n_chosen = n,
                       .n_rejected = n,
                       .ref_chosen = rc,
                       .ref_rejected = rr};
    double dc, dr;
    mt_pref_stats s;
    const double beta = 0.1, ls = 0.2, u = beta * 1.0;
    assert_int_equal(mt_dpo_loss(&b, beta, ls, &dc, &dr, &s), MT_OK);
    const double sig = 1 / (1 + exp(-u));
    assert_float_equal(s.loss, -(1 - ls) * log(sig) - ls * log(1 - sig), 1e-15);
    assert_float_equal(dc, beta * (-(1 - ls) * (1 - sig) + ls * sig), 1e-15);
    assert_float_equal(dr, -dc, 0);
}

static void test_sft_term_and_combined(void **state) {
    (void)state;
    const double lc[2] = {-2, -8}, lr[2] = {-3, -1.5}, ref[2] = {0, 0};
    const int64_t nc[2] = {2, 4}, nr[2] = {2, 3};
    mt_pref_batch b = batch2(lc, lr, nc, nr);
    b.ref_chosen = b.ref_rejected = ref;
    double dc[2], dr[2];
    mt_pref_stats s;
    mt_pref_params p = {.kind = MT_PREF_MARGIN, .margin = 0.5, .sft_weight = 0.3};
    assert_int_equal(mt_pref_loss(&p, &b, dc, dr, &s), MT_OK);
    /* Token-level mean NLL of the chosen answers: 10 / 6. */
    assert_float_equal(s.sft_loss, 0.3 * 10.0 / 6, 1e-15);
    assert_float_equal(s.loss, 1.0 + 0.3 * 10.0 / 6, 1e-15);
    assert_float_equal(dc[0], -0.3 / 6, 1e-15);
    assert_float_equal(dc[1], -1.0 / 8 - 0.3 / 6, 1e-15);
    assert_float_equal(dr[1], 1.0 / 6, 1e-15);
    p = (mt_pref_params){.kind = MT_PREF_DPO, .beta = 0.1};
    assert_int_equal(mt_pref_loss(&p, &b, dc, dr, &s), MT_OK);
    assert_float_equal(s.sft_loss, 0, 0);
    assert_float_equal(s.loss, s.pref_loss, 0);
}

static void test_pref_rejects_bad_input(void **state) {
    (void)state;
    const double lc[2] = {-2, -8}, lr[2] = {-3, -1.5};
    const int64_t nc[2] = {2, 0}, nr[2] = {2, 3};
    mt_pref_batch b = batch2(lc, lr, nc, nr);
    double dc[2], dr[2];
    mt_pref_stats s;
    assert_int_equal(mt_margin_loss(&b, 0.5, dc, dr, &s), MT_ERR_ARG); /* empty answer */
    b.n_chosen = nr;
    assert_int_equal(mt_dpo_loss(&b, 0.1, 0, dc, dr, &s), MT_ERR_ARG); /* no reference */
    b.ref_chosen = b.ref_rejected = lc;
    assert_int_equal(mt_dpo_loss(&b, 0, 0, dc, dr, &s), MT_ERR_ARG);
    assert_int_equal(mt_dpo_loss(&b, 0.1, 0.5, dc, dr, &s), MT_ERR_ARG);
    assert_int_equal(mt_margin_loss(&b, NAN, dc, dr, &s), MT_ERR_ARG);
    assert_int_equal(mt_margin_loss(&b, 0.5, NULL, dr, &s), MT_ERR_ARG);
    b.n_pairs = 0;
    assert_int_equal(mt_margin_loss(&b, 0.5, dc, dr, &s), MT_ERR_ARG);
    mt_pref_params p = {.kind = (mt_pref_kind)9};
    b.n_pairs = 2;
    assert_int_equal(mt_pref_loss(&p, &b, dc, dr, &s), MT_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ce_small_rows),
        cmocka_unit_test(test_ce_grad_scale_and_ignored_rows),
        cmocka_unit_test(test_ce_all_rows_ignored),
        cmocka_unit_test(test_ce_huge_logits_do_not_overflow),
        cmocka_unit_test(test_ce_bad_target_leaves_logits),
        cmocka_unit_test(test_ce_weighted_rows),
        cmocka_unit_test(test_ce_many_rows_match_single_rows),
        cmocka_unit_test(test_margin_loss),
        cmocka_unit_test(test_dpo_loss),
        cmocka_unit_test(test_dpo_label_smoothing),
        cmocka_unit_test(test_sft_term_and_combined),
        cmocka_unit_test(test_pref_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
