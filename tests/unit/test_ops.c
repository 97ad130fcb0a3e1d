/* Forward-pass kernels against values worked out by hand, and the gates' backward
 * passes against a double-precision derivative. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/ops_backward.h"

static void test_rmsnorm(void **state) {
    (void)state;
    const float x[4] = {1, 2, 3, 4}, w[4] = {1, 0.5f, 2, -1};
    float out[4];
    mt_rmsnorm(out, x, w, 4, 0.0f);
    const float r = 1.0f / sqrtf(30.0f / 4.0f);
    for (int i = 0; i < 4; i++) assert_float_equal(out[i], x[i] * r * w[i], 1e-6);
}

static void test_rope_position_zero_is_identity(void **state) {
    (void)state;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8];
    memcpy(y, x, sizeof x);
    mt_rope(y, 8, 0, 10000.0f, 1.0f, 1);
    for (int i = 0; i < 8; i++) assert_float_equal(y[i], x[i], 0);
}

static void test_rope_styles_agree_under_permutation(void **state) {
    (void)state;
    /* NEOX pairs (i, i+d/2) equal adjacent pairs (2i, 2i+1) after interleaving. */
    const float x[8] = {0.3f, -1.2f, 2.0f, 0.7f, 1.1f, -0.4f, 0.9f, 1.5f};
    float neox[8], pairs[8];
    memcpy(neox, x, sizeof x);
    for (int i = 0; i < 4; i++) {
        pairs[2 * i] = x[i];
        pairs[2 * i + 1] = x[i + 4];
    }
    mt_rope(neox, 8, 37, 10000.0f, 1.0f, 1);
    mt_rope(pairs, 8, 37, 10000.0f, 1.0f, 0);
    for (int i = 0; i < 4; i++) {
        assert_float_equal(pairs[2 * i], neox[i], 1e-6);
        assert_float_equal(pairs[2 * i + 1], neox[i + 4], 1e-6);
    }
    /* A rotation keeps the norm. */
    double n0 = 0, n1 = 0;
    for (int i = 0; i < 8; i++) n0 += x[i] * x[i], n1 += neox[i] * neox[i];
    assert_float_equal(n0, n1, 1e-5);
}

static void test_rope_linear_scaling(void **state) {
    (void)state;
    float a[4] = {1, 0, 0, 1}, b[4] = {1, 0, 0, 1};
    mt_rope(a, 4, 10, 100.0f, 0.5f, 1);
    mt_rope(b, 4, 5, 100.0f, 1.0f, 1);
    for (int i = 0; i < 4; i++) assert_float_equal(a[i], b[i], 1e-6);
}

static void test_softmax(void **state) {
    (void)state;
    float x[3] = {1000.0f, 1000.0f, -1000.0f};
    mt_softmax(x, 3);
    assert_float_equal(x[0], 0.5f, 1e-6);
    assert_float_equal(x[1], 0.5f, 1e-6);
    assert_float_equal(x[2], 0.0f, 1e-6);
}

static void test_activations(void **state) {
    (void)state;
    float g[2] = {0.0f, 2.0f};
    const float up[2] = {3.0f, 1.0f};
    mt_silu_mul(g, up, 2);
    assert_float_equal(g[0], 0.0f, 1e-7);
    assert_float_equal(g[1], 2.0f / (1.0f + expf(-2.0f)), 1e-6);
    float h[1] = {1.0f};
    const float one[1] = {1.0f};
    mt_gelu_tanh_mul(h, one, 1);
    assert_float_equal(h[0], 0.8411920f, 1e-6);
}

static void test_attend_window(void **state) {
    (void)state;
    /* Keys of 4 positions, head_dim 2; the last query prefers position 1. */
    const float k[8] = {0, 0, 10, 0, 0, 0, 0, 0};
    const float v[8] = {1, 1, 2, 2, 3, 3, 4, 4};
    const float q[2] = {1, 0};
    float out[2], p[4];
    mt_attn_shape s = {
        .n_q = 1, .n_k = 4, .hd = 2, .q_stride = 2, .k_stride = 2, .o_stride = 2, .scale = 1.0f};
    mt_attn_forward(&s, q, k, v, out, p);
    assert_true(out[0] > 1.99f && out[0] < 2.01f);
    /* A window of 2 keeps positions 2 and 3: equal scores, mean of v2 and v3. */
    s.window = 2;
    mt_attn_forward(&s, q, k, v, out, p);
    assert_float_equal(out[0], 3.5f, 1e-6);
    assert_float_equal(p[1], 0.0f, 0);
}

static void test_attend_causal_block(void **state) {
    (void)state;
    /* Two queries over two keys: the first sees only key 0. */
    const float q[4] = {1, 0, 1, 0}, k[4] = {0, 0, 5, 0}, v[4] = {1, 2, 3, 4};
    float out[4], p[4];
    mt_attn_shape s = {
        .n_q = 2, .n_k = 2, .hd = 2, .q_stride = 2, .k_stride = 2, .o_stride = 2, .scale = 1.0f};
    mt_attn_forward(&s, q, k, v, out, p);
    assert_float_equal(out[0], 1.0f, 1e-6);
    assert_float_equal(out[1], 2.0f, 1e-6);
    assert_float_equal(p[1], 0.0f, 0);
    assert_true(out[2] > 2.98f);
}

static void test_matmul_f32_and_rows(void **state) {
    (void)state;
    /* W: 3 rows x 2 cols; X: 5 tokens (slab path) and 1 token (row path). */
    const float w[6] = {1, 2, 3, 4, 5, 6};
    mt_tensor t = {.type = MT_F32, .n_dims = 2, .ne = {2, 3, 1, 1}, .data = w};
    float x[10], y[15];
    for (int i = 0; i < 10; i++) x[i] = (float)i;
    assert_int_equal(mt_matmul(&t, x, 5, y), MT_OK);
    for (int n = 0; n < 5; n++)
        for (int r = 0; r < 3; r++)
            assert_float_equal(y[n * 3 + r], w[2 * r] * x[2 * n] + w[2 * r + 1] * x[2 * n + 1],
                               1e-5);
    assert_int_equal(mt_matmul(&t, x + 2, 1, y), MT_OK);
    assert_float_equal(y[2], 5 * 2 + 6 * 3, 1e-5);
    /* F16 weights go through dequantisation: same answer. */
    const uint16_t h[6] = {0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600};
    mt_tensor th = {.type = MT_F16, .n_dims = 2, .ne = {2, 3, 1, 1}, .data = h};
    assert_int_equal(mt_matmul(&th, x, 5, y), MT_OK);
    assert_float_equal(y[4 * 3 + 2], 5 * 8 + 6 * 9, 1e-4);
}

/* The gated activations' backward passes against the derivative of the same function in
 * double precision (tanh form for GELU), over values well past both tails and more than
 * one chunk of the vectorised sigmoid. */
static void test_gate_backward(void **state) {
    (void)state;
    enum { N = 600 };
    float g[N], up[N], da[N], dg[N], du[N];
    for (int i = 0; i < N; i++) {
        g[i] = -9.0f + 18.0f * (float)i / (N - 1);
        up[i] = 0.5f + 0.001f * (float)i;
        da[i] = 1.0f - 0.002f * (float)i;
    }
    const double k = 0.7978845608028654;
    mt_gelu_tanh_mul_backward(dg, du, g, up, da, N);
    for (int i = 0; i < N; i++) {
        const double x = g[i], u = k * (x + 0.044715 * x * x * x), th = tanh(u);
        const double gelu = 0.5 * x * (1.0 + th);
        const double d =
            0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * x * x);
        assert_float_equal(du[i], da[i] * gelu, 1e-5 * (1.0 + fabs(da[i] * gelu)));
        assert_float_equal(dg[i], da[i] * up[i] * d, 1e-5 * (1.0 + fabs(da[i] * up[i] * d)));
    }
    mt_silu_mul_backward(dg, du, g, up, da, N);
    for (int i = 0; i < N; i++) {
        const double x = g[i], sg = 1.0 / (1.0 + exp(-x));
        const double d = sg * (1.0 + x * (1.0 - sg));
        assert_float_equal(du[i], da[i] * x * sg, 1e-5 * (1.0 + fabs(da[i] * x * sg)));
        assert_float_equal(dg[i], da[i] * up[i] * d, 1e-5 * (1.0 + fabs(da[i] * up[i] * d)));
    }
}

int main(void) {
    mt_kernels_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope_position_zero_is_identity),
        cmocka_unit_test(test_rope_styles_agree_under_permutation),
        cmocka_unit_test(test_rope_linear_scaling),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_gate_backward),
        cmocka_unit_test(test_attend_window),
        cmocka_unit_test(test_attend_causal_block),
        cmocka_unit_test(test_matmul_f32_and_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
