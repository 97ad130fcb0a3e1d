/* Quantisation: hand-worked blocks (zeros, one large value, ties), the half-precision
 * conversions' edge cases, round-trip error bounds through meteor's dequantiser, and
 * argument errors. Byte equality with the reference package is tests/oracle/test_writers.py. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/dequant.h"
#include "kernels/quantize.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

static void test_fp16(void **state) {
    (void)state;
    assert_int_equal(mt_quantize_fp16(1.0f), 0x3c00);
    assert_int_equal(mt_quantize_fp16(-0.0f), 0x8000);
    assert_int_equal(mt_quantize_fp16(65520.0f), 0x7c00); /* tie to even overflows */
    assert_int_equal(mt_quantize_fp16(1.0f + 0x1p-11f), 0x3c00);
    assert_int_equal(mt_quantize_fp16(1.0f + 0x3p-11f), 0x3c02);
    assert_int_equal(mt_quantize_fp16(0x1p-24f), 0x0001);
    assert_int_equal(mt_quantize_fp16(INFINITY), 0x7c00);
    /* NaNs as numpy converts them: payload's top bits kept, not quieted. */
    assert_int_equal(mt_quantize_fp16(from_bits(0x7fc00000)), 0x7e00);
    assert_int_equal(mt_quantize_fp16(from_bits(0x7fa00000)), 0x7d00);
    assert_int_equal(mt_quantize_fp16(from_bits(0x7f800001)), 0x7c01); /* stays a NaN */
    assert_int_equal(mt_quantize_fp16(from_bits(0xff802000)), 0xfc01);
}

static void test_bf16(void **state) {
    (void)state;
    assert_int_equal(mt_quantize_bf16(1.0f), 0x3f80);
    assert_int_equal(mt_quantize_bf16(-2.0f), 0xc000);
    assert_int_equal(mt_quantize_bf16(1.0f + 0x1p-8f), 0x3f80); /* tie, even stays */
    assert_int_equal(mt_quantize_bf16(1.0f + 0x3p-8f), 0x3f82); /* tie, odd rounds up */
    assert_int_equal(mt_quantize_bf16(1.0f + 0x1.2p-8f), 0x3f81);
    assert_int_equal(mt_quantize_bf16(from_bits(0x7f7fffff)), 0x7f80); /* rounds to inf */
    assert_int_equal(mt_quantize_bf16(-INFINITY), 0xff80);
    assert_int_equal(mt_quantize_bf16(from_bits(0x7f800001)), 0x7fc0); /* NaN quieted */
    assert_int_equal(mt_quantize_bf16(from_bits(0xffffffff)), 0xffff);
    assert_int_equal(mt_quantize_bf16(from_bits(0x00000001)), 0x0000);
}

static void test_zero_blocks(void **state) {
    (void)state;
    float z[32] = {0};
    uint8_t out[34];
    assert_int_equal(mt_quantize(MT_Q8_0, z, out, 32), MT_OK);
    for (int i = 0; i < 34; i++) assert_int_equal(out[i], 0);
    /* d = 0 / -8 is -0.0; every code is the zero point 8. */
    assert_int_equal(mt_quantize(MT_Q4_0, z, out, 32), MT_OK);
    assert_int_equal(rd16(out), 0x8000);
    for (int i = 2; i < 18; i++) assert_int_equal(out[i], 0x88);
    assert_int_equal(mt_quantize(MT_Q4_1, z, out, 32), MT_OK);
    for (int i = 0; i < 20; i++) assert_int_equal(out[i], 0);
    /* Q5_0: zero point 16 puts every fifth bit high and the low nibbles at 0. */
    assert_int_equal(mt_quantize(MT_Q5_0, z, out, 32), MT_OK);
    assert_int_equal(rd16(out), 0x8000);
    for (int i = 2; i < 6; i++) assert_int_equal(out[i], 0xff);
    for (int i = 6; i < 22; i++) assert_int_equal(out[i], 0x00);
}

static void test_single_large_value(void **state) {
    (void)state;
    float x[32] = {0};
    x[7] = 1000.0f;
    uint8_t out[34];
    assert_int_equal(mt_quantize(MT_Q8_0, x, out, 32), MT_OK);
    assert_int_equal(rd16(out), mt_quantize_fp16(1000.0f / 127.0f));
    for (int i = 0; i < 32; i++) assert_int_equal((int8_t)out[2 + i], i == 7 ? 127 : 0);
    /* Q4_0: d = -1000/8 = -125; the large value maps to code 0, the rest to 8. */
    assert_int_equal(mt_quantize(MT_Q4_0, x, out, 32), MT_OK);
    assert_int_equal(rd16(out), mt_quantize_fp16(-125.0f));
    assert_int_equal(out[2 + 7], 0x80);
    assert_int_equal(out[2 + 0], 0x88);
    float back[32];
    mt_dequantize(MT_Q4_0, out, back, 32);
    assert_true(back[7] == 1000.0f && back[0] == 0.0f);
    /* The opposite sign of the same magnitude in Q4_0 wraps past code 15 and is clipped. */
    x[8] = -1000.0f;
    assert_int_equal(mt_quantize(MT_Q4_0, x, out, 32), MT_OK);
    mt_dequantize(MT_Q4_0, out, back, 32);
    assert_true(back[7] == 1000.0f && back[8] == -875.0f);
}

static void test_round_half_away_from_zero(void **state) {
    (void)state;
    /* amax 127 makes d = 1 exactly, so x/d lands on .5 ties: Q8_0 rounds them away from 0. */
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (i % 2 ? -1.0f : 1.0f) * ((float)i + 0.5f);
    x[31] = 127.0f;
    uint8_t out[34];
    assert_int_equal(mt_quantize(MT_Q8_0, x, out, 32), MT_OK);
    assert_int_equal(rd16(out), 0x3c00);
    assert_int_equal((int8_t)out[2 + 0], 1);
    assert_int_equal((int8_t)out[2 + 1], -2);
    assert_int_equal((int8_t)out[2 + 2], 3);
}

static void lcg_fill(float *v, int64_t n, uint32_t seed, float scale) {
    uint32_t x = seed;
    for (int64_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        v[i] = (float)((int32_t)(x >> 8) - (1 << 23)) * 0x1p-23f * scale;
    }
}

/* Largest error of storing v as f16: half an ulp, which is absolute (2^-25) for the
 * subnormals a tiny block's scale falls into. */
static float f16_err(float v) {
    return fmaxf(fabsf(v) * 0x1p-11f, 0x1p-25f);
}

/* Largest |error| allowed in a block for each type: half a step of rounding (a whole step
 * where a code can be clipped), the f16 rounding of the stored scale times the largest
 * code, the f16 rounding of the stored minimum, and float slack. */
static float block_bound(mt_dtype t, const float *x) {
    float mx = x[0], mn = x[0], amax = 0;
    for (int i = 0; i < 32; i++) {
        mx = fmaxf(mx, x[i]), mn = fminf(mn, x[i]);
        amax = fmaxf(amax, fabsf(x[i]));
    }
    float slack = amax * 0x1p-20f, d;
    switch (t) {
    case MT_Q8_0:
        d = amax / 127.0f;
        return d * 0.5f + 127.0f * f16_err(d) + slack;
    case MT_Q4_0:
        d = amax / 8.0f;
        return d + 8.0f * f16_err(d) + slack;
    case MT_Q5_0:
        d = amax / 16.0f;
        return d + 16.0f * f16_err(d) + slack;
    case MT_Q4_1:
        d = (mx - mn) / 15.0f;
        return d * 0.5f + 15.0f * f16_err(d) + f16_err(mn) + slack;
    case MT_Q5_1:
        d = (mx - mn) / 31.0f;
        return d * 0.5f + 31.0f * f16_err(d) + f16_err(mn) + slack;
    default:
        return 0;
    }
}

static void test_round_trip_error(void **state) {
    (void)state;
    enum { N = 32 * 256 };
    static const mt_dtype types[] = {MT_Q8_0, MT_Q4_0, MT_Q4_1, MT_Q5_0, MT_Q5_1, MT_F16, MT_BF16};
    float *x = malloc(N * sizeof *x), *back = malloc(N * sizeof *back);
    uint8_t *q = malloc(N * 4);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        mt_dtype t = types[k];
        for (int s = 0; s < 3; s++) {
            lcg_fill(x, N, 11u + (uint32_t)s, s == 0 ? 1e-3f : s == 1 ? 1.0f : 300.0f);
            assert_int_equal(mt_quantize(t, x, q, N), MT_OK);
            mt_dequantize(t, q, back, N);
            for (int b = 0; b < N / 32; b++) {
                const float *xb = x + 32 * b;
                for (int i = 0; i < 32; i++) {
                    float err = fabsf(back[32 * b + i] - xb[i]);
                    float bound = t == MT_F16    ? fabsf(xb[i]) * 0x1p-11f + 0x1p-25f
                                  : t == MT_BF16 ? fabsf(xb[i]) * 0x1p-8f
                                                 : block_bound(t, xb);
                    if (err > bound)
                        fail_msg("%s scale %d: element %d error %g > bound %g",
                                 mt_dtype_name((int)t), s, 32 * b + i, err, bound);
                }
            }
        }
    }
    free(x), free(back), free(q);
}

/* Blocks are independent: row by row gives the same bytes as all at once. */
static void test_rows_independent(void **state) {
    (void)state;
    float x[128];
    lcg_fill(x, 128, 5, 2.0f);
    uint8_t all[4 * 22], rows[4 * 22];
    assert_int_equal(mt_quantize(MT_Q5_0, x, all, 128), MT_OK);
    for (int r = 0; r < 2; r++)
        assert_int_equal(mt_quantize(MT_Q5_0, x + 64 * r, rows + 44 * r, 64), 0);
    assert_memory_equal(all, rows, sizeof all);
}

static void test_errors(void **state) {
    (void)state;
    float x[64] = {0};
    uint8_t out[256];
    assert_int_equal(mt_quantize(MT_Q8_0, x, out, 33), MT_ERR_ARG);
    assert_int_equal(mt_quantize(MT_Q4_0, x, out, -32), MT_ERR_ARG);
    assert_int_equal(mt_quantize(MT_Q4_K, x, out, 256), MT_ERR_UNSUPPORTED);
    assert_false(mt_quantize_supported(MT_Q6_K));
    assert_true(mt_quantize_supported(MT_Q5_1));
    assert_int_equal(mt_quantize(MT_F32, x, out, 0), MT_OK);
    assert_int_equal(mt_quantize(MT_F16, x, out, 3), MT_OK); /* no blocks for halves */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_zero_blocks),
        cmocka_unit_test(test_single_large_value),
        cmocka_unit_test(test_round_half_away_from_zero),
        cmocka_unit_test(test_round_trip_error),
        cmocka_unit_test(test_rows_independent),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
