/* Grouped decoding attention (one query per head, the query heads of a KV head together)
 * against the per-head matrix-product path, with and without a sliding window and a
 * softcap, for head sizes the AVX-512 and AVX2 kernels take (64, 256) and one they leave
 * to the scalar loop (12); each implementation (scalar, AVX2, AVX-512) in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>

#include <cmocka.h>

#include "kernels/attention.h"
#include "kernels/qdot.h"

static float rnd(void) {
    return 2.0f * (float)rand() / (float)RAND_MAX - 1.0f;
}

static void check(int hd, int group, int n_k, int window, float cap) {
    const int n_kv = 2, kv_dim = n_kv * hd, q_dim = n_kv * group * hd;
    float *k = malloc(sizeof(float) * n_k * kv_dim), *v = malloc(sizeof(float) * n_k * kv_dim);
    float *q = malloc(sizeof(float) * q_dim), *want = malloc(sizeof(float) * q_dim);
    float *got = malloc(sizeof(float) * q_dim), *p = malloc(sizeof(float) * group * n_k);
    assert_true(k && v && q && want && got && p);
    for (int i = 0; i < n_k * kv_dim; i++) k[i] = rnd(), v[i] = rnd();
    for (int i = 0; i < q_dim; i++) q[i] = 2.0f * rnd();
    const mt_attn_shape s = {.n_q = 1,
                             .n_k = n_k,
                             .hd = hd,
                             .q_stride = q_dim,
                             .k_stride = kv_dim,
                             .o_stride = q_dim,
                             .scale = 1.0f / sqrtf((float)hd),
                             .cap = cap,
                             .window = window};
    for (int h = 0; h < n_kv * group; h++)
        mt_attn_forward(&s, q + h * hd, k + (h / group) * hd, v + (h / group) * hd, want + h * hd,
                        p);
    for (int kvh = 0; kvh < n_kv; kvh++)
        mt_attn_decode_group(&s, group, q + kvh * group * hd, k + kvh * hd, v + kvh * hd,
                             got + kvh * group * hd, p);
    for (int i = 0; i < q_dim; i++) assert_true(fabsf(got[i] - want[i]) < 1e-5f);
    free(k), free(v), free(q), free(want), free(got), free(p);
}

static void run_cases(void) {
    srand(3);
    check(64, 3, 1, 0, 0.0f);
    check(64, 3, 37, 0, 0.0f);
    check(64, 1, 515, 0, 0.0f);
    check(64, 4, 200, 16, 0.0f);
    check(64, 6, 50, 0, 0.0f); /* a group too large for the AVX-512 kernel */
    check(256, 4, 33, 0, 30.0f);
    check(128, 2, 7, 0, 0.0f);
    check(12, 2, 41, 0, 0.0f);
    check(12, 3, 9, 4, 20.0f);
}

static void test_matches_per_head_path(void **state) {
    (void)state;
    const mt_qdot_impl impls[] = {MT_QDOT_SCALAR, MT_QDOT_AVX2, MT_QDOT_AVX512};
    for (int i = 0; i < 3; i++) {
        if (mt_qdot_set_impl(impls[i]) != MT_OK) continue; /* not on this CPU */
        run_cases();
    }
    assert_int_equal(mt_qdot_set_impl(MT_QDOT_AUTO), MT_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_matches_per_head_path)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
