/* Grouped decoding attention (one query per head, the query heads of a KV head together)
 * against the per-head matrix-product path, with and without a sliding window and a
 * softcap, for head sizes the AVX-512 and AVX2 kernels take (64, 256) and one they leave
 * to the scalar loop (12); each implementation (scalar, AVX2, AVX-512) in turn, over a
 * cache of floats and one of halves (f16). Also the f16 row conversions and the KV
 * cache's element type and slot copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/attention.h"
#include "kernels/dequant.h"
#include "kernels/half.h"
#include "kernels/matmul.h"
#include "kernels/qdot.h"
#include "model/forward.h"

static float rnd(void) {
    return 2.0f * (float)rand() / (float)RAND_MAX - 1.0f;
}

/* Every SIMD kernel and the scalar one do the same arithmetic up to the order of sums. */
#define TOL_KERNEL 1e-5f
/* f16 keeps 11 significant bits: keys and values in [-1, 1] move by at most 2^-12, the
 * outputs (weighted means of values) by about that plus what the moved scores shift in
 * the weights. These cases stay under 1e-3 from the float cache's outputs. */
#define TOL_F16 2e-3f

typedef struct {
    int hd, group, n_k, window;
    float cap;
} attn_case;

static mt_attn_shape shape_of(const attn_case *c, int kv_dim, int q_dim) {
    return (mt_attn_shape){.n_q = 1,
                           .n_k = c->n_k,
                           .hd = c->hd,
                           .q_stride = q_dim,
                           .k_stride = kv_dim,
                           .o_stride = q_dim,
                           .scale = 1.0f / sqrtf((float)c->hd),
                           .cap = c->cap,
                           .window = c->window};
}

/* The per-head matrix-product path over float rows k, v. */
static void reference(const mt_attn_shape *s, int n_kv, int group, const float *q, const float *k,
                      const float *v, float *out, float *p) {
    for (int h = 0; h < n_kv * group; h++)
        mt_attn_forward(s, q + h * s->hd, k + (h / group) * s->hd, v + (h / group) * s->hd,
                        out + h * s->hd, p);
}

static void check(const attn_case *c) {
    const int n_kv = 2, hd = c->hd, group = c->group, n_k = c->n_k;
    const int kv_dim = n_kv * hd, q_dim = n_kv * group * hd, n = n_k * kv_dim;
    float *k = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * n);
    float *kw = malloc(sizeof(float) * n), *vw = malloc(sizeof(float) * n);
    uint16_t *kh = malloc(sizeof(uint16_t) * n), *vh = malloc(sizeof(uint16_t) * n);
    float *q = malloc(sizeof(float) * q_dim), *want = malloc(sizeof(float) * q_dim);
    float *want16 = malloc(sizeof(float) * q_dim), *got = malloc(sizeof(float) * q_dim);
    float *p = malloc(sizeof(float) * group * n_k);
    assert_true(k && v && kw && vw && kh && vh && q && want && want16 && got && p);
    for (int i = 0; i < n; i++) k[i] = rnd(), v[i] = rnd();
    for (int i = 0; i < q_dim; i++) q[i] = 2.0f * rnd();
    mt_f32_to_f16_row(kh, k, n);
    mt_f32_to_f16_row(vh, v, n);
    mt_dequantize(MT_F16, kh, kw, n);
    mt_dequantize(MT_F16, vh, vw, n);
    const mt_attn_shape s = shape_of(c, kv_dim, q_dim);
    reference(&s, n_kv, group, q, k, v, want, p);
    reference(&s, n_kv, group, q, kw, vw, want16, p);

    for (int kvh = 0; kvh < n_kv; kvh++)
        mt_attn_decode_group(&s, group, q + kvh * group * hd, k + kvh * hd, v + kvh * hd,
                             got + kvh * group * hd, p);
    for (int i = 0; i < q_dim; i++) assert_true(fabsf(got[i] - want[i]) < TOL_KERNEL);

    /* Halves: the kernel against the same path over the widened rows (exact inputs, so
     * the kernel tolerance), and against the float cache within f16 rounding. */
    for (int kvh = 0; kvh < n_kv; kvh++)
        mt_attn_decode_group_f16(&s, group, q + kvh * group * hd, kh + kvh * hd, vh + kvh * hd,
                                 got + kvh * group * hd, p);
    for (int i = 0; i < q_dim; i++) {
        assert_true(fabsf(got[i] - want16[i]) < TOL_KERNEL);
        assert_true(fabsf(got[i] - want[i]) < TOL_F16);
    }
    free(k), free(v), free(kw), free(vw), free(kh), free(vh);
    free(q), free(want), free(want16), free(got), free(p);
}

static void run_cases(void) {
    static const attn_case cases[] = {
        {64, 3, 1, 0, 0.0f},    {64, 3, 37, 0, 0.0f}, {64, 1, 515, 0, 0.0f}, {64, 4, 200, 16, 0.0f},
        {64, 6, 50, 0, 0.0f}, /* a group too large for AVX-512 */
        {256, 4, 33, 0, 30.0f}, {128, 2, 7, 0, 0.0f}, {12, 2, 41, 0, 0.0f},  {12, 3, 9, 4, 20.0f},
    };
    srand(3);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check(&cases[i]);
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

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The row conversions (F16C where the CPU has it) give the scalar conversion's bits:
 * ties to even, subnormals, overflow, infinities; lengths with and without a tail. */
static void test_f16_rows_match_scalar(void **state) {
    (void)state;
    enum { N = 203 };
    float x[N], back[N];
    uint16_t h[N];
    const uint32_t special[] = {0x3f801000u, 0x3f803000u, 0x477ff000u, 0x477fefffu,
                                0x38800000u, 0x33000001u, 0x33000000u, 0x7f800000u,
                                0xff800000u, 0x80000000u, 0x387fc000u, 0x3c003000u};
    srand(5);
    for (int i = 0; i < N; i++) x[i] = rnd() * powf(2.0f, (float)(rand() % 40 - 25));
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) x[i * 7] = from_bits(special[i]);
    for (int n = 0; n <= N; n += n < 20 ? 1 : 61) {
        mt_f32_to_f16_row(h, x, n);
        mt_dequantize(MT_F16, h, back, n);
        for (int i = 0; i < n; i++) {
            assert_int_equal(h[i], mt_fp32_to_fp16(x[i]));
            const float want = mt_fp16_to_fp32(h[i]);
            assert_memory_equal(&back[i], &want, sizeof want);
        }
    }
}

/* Halves outside precise mode, floats in it; slot copies move whole rows of either. */
static void test_kv_cache_element_type(void **state) {
    (void)state;
    mt_model_config c = {0};
    c.n_layer = 2, c.n_head_kv = 2, c.head_dim = 8;
    for (int precise = 0; precise <= 1; precise++) {
        mt_kernels_set_precise(precise);
        mt_kv_cache kv;
        assert_int_equal(mt_kv_cache_init_slots(&kv, &c, 3, 5), MT_OK);
        assert_int_equal(kv.f16, !precise);
        const size_t es = precise ? sizeof(float) : sizeof(uint16_t);
        /* [layer][slot][head][position][head_dim]: 3 slots of 5 positions, 2 heads */
        const size_t hrow = (size_t)c.head_dim * es, layer = 3 * 2 * 5 * hrow;
        unsigned char *k = kv.k, *v = kv.v;
        for (size_t i = 0; i < 2 * layer; i++)
            k[i] = (unsigned char)(i * 7 + 1), v[i] = (unsigned char)(i * 3 + 2);
        mt_kv_cache_copy(&kv, 0, 2, 1, 4);
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 2; h++) {
                const size_t src = l * layer + ((0 * 2 + h) * 5 + 1) * hrow;
                const size_t dst = l * layer + ((2 * 2 + h) * 5 + 1) * hrow;
                assert_memory_equal(k + dst, k + src, 3 * hrow);
                assert_memory_equal(v + dst, v + src, 3 * hrow);
                assert_int_equal(k[dst - 1], (unsigned char)((dst - 1) * 7 + 1)); /* untouched */
                assert_int_equal(k[dst + 3 * hrow], (unsigned char)((dst + 3 * hrow) * 7 + 1));
            }
        mt_kv_cache_free(&kv);
    }
    mt_kernels_set_precise(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_matches_per_head_path),
                                       cmocka_unit_test(test_f16_rows_match_scalar),
                                       cmocka_unit_test(test_kv_cache_element_type)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
