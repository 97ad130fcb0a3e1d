/* Linear layer with a LoRA branch: backward checked against finite differences, with
 * and without dropout on the branch input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/linear.h"

enum { N = 3, IN = 8, OUT = 5, R = 2 };

typedef struct {
    float w[OUT * IN], a[R * IN], b[OUT * R], x[N * IN], c[N * OUT];
    mt_linear lin;
    float xd[N * IN];
} fixture;

static void fill(float *p, int n, mt_rng *r) {
    for (int i = 0; i < n; i++) p[i] = (float)(mt_rng_uniform(r) * 2.0 - 1.0);
}

static void setup(fixture *f, float dropout) {
    mt_rng r;
    mt_rng_seed(&r, 7);
    fill(f->w, OUT * IN, &r);
    fill(f->a, R * IN, &r);
    fill(f->b, OUT * R, &r);
    fill(f->x, N * IN, &r);
    fill(f->c, N * OUT, &r);
    f->lin = (mt_linear){.w = {.type = MT_F32, .n_dims = 2, .ne = {IN, OUT, 1, 1}, .data = f->w},
                         .a = f->a,
                         .b = f->b,
                         .rank = R,
                         .scale = 1.5f,
                         .dropout = dropout};
}

/* loss = sum(c ∘ y), in double for the finite differences. */
static double loss(fixture *f, uint64_t key) {
    float y[N * OUT], h[N * R];
    const float *xl = NULL;
    if (f->lin.dropout > 0.0f) {
        mt_dropout(f->xd, f->x, N * IN, f->lin.dropout, key);
        xl = f->xd;
    }
    assert_int_equal(mt_linear_forward(&f->lin, f->x, xl, N, y, h), MT_OK);
    double s = 0.0;
    for (int i = 0; i < N * OUT; i++) s += (double)f->c[i] * y[i];
    return s;
}

static void check(float dropout) {
    fixture f;
    setup(&f, dropout);
    const uint64_t key = 99;
    float y[N * OUT], h[N * R], dh[N * R], dx[N * IN];
    float gw[OUT * IN] = {0}, ga[R * IN] = {0}, gb[OUT * R] = {0};
    const float *xl = NULL;
    if (dropout > 0.0f) {
        mt_dropout(f.xd, f.x, N * IN, dropout, key);
        xl = f.xd;
    }
    assert_int_equal(mt_linear_forward(&f.lin, f.x, xl, N, y, h), MT_OK);
    assert_int_equal(mt_linear_backward(&f.lin, f.x, xl, h, f.c, N, dx, 0, gw, ga, gb, dh, key),
                     MT_OK);
    float *params[4] = {f.a, f.b, f.x, f.w};
    const float *grads[4] = {ga, gb, dx, gw};
    const int sizes[4] = {R * IN, OUT * R, N * IN, OUT * IN};
    for (int p = 0; p < 4; p++)
        for (int i = 0; i < sizes[p]; i++) {
            const float keep = params[p][i], eps = 1e-2f;
            params[p][i] = keep + eps;
            const double up = loss(&f, key);
            params[p][i] = keep - eps;
            const double down = loss(&f, key);
            params[p][i] = keep;
            /* The loss is linear in each single parameter: central differences are exact
             * up to float rounding. */
            assert_float_equal(grads[p][i], (up - down) / (2 * eps), 2e-3);
        }
}

static void test_backward_no_dropout(void **state) {
    (void)state;
    check(0.0f);
}

static void test_backward_with_dropout(void **state) {
    (void)state;
    check(0.4f);
}

static void test_dropout_mask(void **state) {
    (void)state;
    enum { M = 20000 };
    static float x[M], a[M], b[M];
    for (int i = 0; i < M; i++) x[i] = 1.0f;
    mt_dropout(a, x, M, 0.25f, 5);
    mt_dropout(b, x, M, 0.25f, 5);
    assert_memory_equal(a, b, sizeof a);
    int kept = 0;
    for (int i = 0; i < M; i++) {
        assert_true(a[i] == 0.0f || fabsf(a[i] - 1.0f / 0.75f) < 1e-6f);
        kept += a[i] != 0.0f;
    }
    assert_true(kept > 0.73 * M && kept < 0.77 * M);
    mt_dropout(b, x, M, 0.25f, 6);
    assert_true(memcmp(a, b, sizeof a) != 0);
}

int main(void) {
    mt_kernels_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backward_no_dropout),
        cmocka_unit_test(test_backward_with_dropout),
        cmocka_unit_test(test_dropout_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
