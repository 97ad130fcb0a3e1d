/* Dequantisation of hand-made blocks with values worked out here from the GGML block
 * layouts, the half/bfloat conversions including their edge cases, and the SIMD paths
 * against the scalar reference bit for bit. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/dequant.h"

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Patterns without short periods, so a swapped index cannot go unnoticed. */
static int pseudo(int i, int mod) {
    uint32_t x = (uint32_t)i * 2654435761u + 12345u;
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    x ^= x >> 15;
    return (int)(x % (uint32_t)mod);
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static void test_fp16_to_fp32(void **state) {
    (void)state;
    assert_true(mt_fp16_to_fp32(0x3c00) == 1.0f);
    assert_true(mt_fp16_to_fp32(0xc000) == -2.0f);
    assert_true(mt_fp16_to_fp32(0x7bff) == 65504.0f);
    assert_true(mt_fp16_to_fp32(0x0400) == 0x1p-14f);   /* smallest normal */
    assert_true(mt_fp16_to_fp32(0x0001) == 0x1p-24f);   /* smallest subnormal */
    assert_true(mt_fp16_to_fp32(0x03ff) == 0x3ffp-24f); /* largest subnormal */
    assert_true(mt_fp16_to_fp32(0x8001) == -0x1p-24f);
    assert_int_equal(bits(mt_fp16_to_fp32(0x8000)), 0x80000000u); /* -0 keeps its sign */
    assert_true(isinf(mt_fp16_to_fp32(0x7c00)) && mt_fp16_to_fp32(0x7c00) > 0);
    assert_true(isinf(mt_fp16_to_fp32(0xfc00)) && mt_fp16_to_fp32(0xfc00) < 0);
    assert_true(isnan(mt_fp16_to_fp32(0x7e00)));
    /* NaN payloads survive, as in numpy's float16 -> float32 */
    assert_int_equal(bits(mt_fp16_to_fp32(0x7c01)), 0x7f802000u);
    assert_int_equal(bits(mt_fp16_to_fp32(0xfe00)), 0xffc00000u);
}

static void test_fp32_to_fp16(void **state) {
    (void)state;
    assert_int_equal(mt_fp32_to_fp16(1.0f), 0x3c00);
    assert_int_equal(mt_fp32_to_fp16(-2.0f), 0xc000);
    assert_int_equal(mt_fp32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(mt_fp32_to_fp16(65519.0f), 0x7bff);
    assert_int_equal(mt_fp32_to_fp16(65520.0f), 0x7c00); /* tie rounds to even: inf */
    assert_int_equal(mt_fp32_to_fp16(1e10f), 0x7c00);
    assert_int_equal(mt_fp32_to_fp16(-INFINITY), 0xfc00);
    assert_int_equal(mt_fp32_to_fp16(0x1p-24f), 0x0001);
    assert_int_equal(mt_fp32_to_fp16(0x1p-25f), 0x0000);        /* tie to even: 0 */
    assert_int_equal(mt_fp32_to_fp16(0x1.000002p-25f), 0x0001); /* just above the tie */
    assert_int_equal(mt_fp32_to_fp16(0x3p-25f), 0x0002);        /* 1.5 ulp: tie to even */
    assert_int_equal(mt_fp32_to_fp16(0x3ffp-24f), 0x03ff);
    assert_int_equal(mt_fp32_to_fp16(0x7ffp-25f), 0x0400);      /* rounds up into the normals */
    assert_int_equal(mt_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00); /* tie, even stays */
    assert_int_equal(mt_fp32_to_fp16(1.0f + 0x3p-11f), 0x3c02); /* tie, odd rounds up */
    assert_int_equal(mt_fp32_to_fp16(1e-10f), 0x0000);
    assert_int_equal(mt_fp32_to_fp16(-0.0f), 0x8000);
    uint16_t h = mt_fp32_to_fp16(NAN);
    assert_int_equal(h & 0x7c00, 0x7c00);
    assert_true((h & 0x03ff) != 0);
}

static void test_fp16_round_trip(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = mt_fp16_to_fp32((uint16_t)h);
        if (isnan(f))
            assert_true(isnan(mt_fp16_to_fp32(mt_fp32_to_fp16(f))));
        else
            assert_int_equal(mt_fp32_to_fp16(f), h);
    }
}

static void test_bf16(void **state) {
    (void)state;
    assert_true(mt_bf16_to_fp32(0x3f80) == 1.0f);
    assert_true(mt_bf16_to_fp32(0xc040) == -3.0f);
    assert_int_equal(bits(mt_bf16_to_fp32(0x0001)), 0x00010000u); /* subnormal */
    assert_true(isinf(mt_bf16_to_fp32(0xff80)) && mt_bf16_to_fp32(0xff80) < 0);
    assert_true(isnan(mt_bf16_to_fp32(0x7fc1)));
    assert_int_equal(bits(mt_bf16_to_fp32(0x8000)), 0x80000000u);
}

static void test_plain_types(void **state) {
    (void)state;
    float src[3] = {1.5f, -0.0f, 3e38f}, out[3];
    mt_dequantize(MT_F32, src, out, 3);
    assert_memory_equal(src, out, sizeof src);
    uint8_t h[6];
    put16(h, 0x3c00), put16(h + 2, 0x0001), put16(h + 4, 0xfc00);
    mt_dequantize(MT_F16, h, out, 3);
    assert_true(out[0] == 1.0f && out[1] == 0x1p-24f && isinf(out[2]));
    put16(h, 0x3f80), put16(h + 2, 0xbf00), put16(h + 4, 0x7f80);
    mt_dequantize(MT_BF16, h, out, 3);
    assert_true(out[0] == 1.0f && out[1] == -0.5f && isinf(out[2]));
}

/* Nibbles of the 32-element formats: element i < 16 in the low half of byte i, element
 * i + 16 in the high half of the same byte. */
static void pack_nibbles(uint8_t *qs, const int *q) {
    for (int i = 0; i < 16; i++) qs[i] = (uint8_t)((q[i] & 15) | ((q[i + 16] & 15) << 4));
}

static void test_q4_0(void **state) {
    (void)state;
    uint8_t b[18];
    int q[32];
    for (int i = 0; i < 32; i++) q[i] = pseudo(i, 16);
    put16(b, 0x3800); /* 0.5 */
    pack_nibbles(b + 2, q);
    float y[32];
    mt_dequantize(MT_Q4_0, b, y, 32);
    for (int i = 0; i < 32; i++) assert_true(y[i] == 0.5f * (float)(q[i] - 8));
}

static void test_q4_1(void **state) {
    (void)state;
    uint8_t b[20];
    int q[32];
    for (int i = 0; i < 32; i++) q[i] = pseudo(i + 100, 16);
    q[0] = 0, q[1] = 3;
    put16(b, 0x3400);     /* 0.25 */
    put16(b + 2, 0xbc00); /* -1 */
    pack_nibbles(b + 4, q);
    float y[32];
    mt_dequantize(MT_Q4_1, b, y, 32);
    for (int i = 0; i < 32; i++) assert_true(y[i] == 0.25f * (float)q[i] - 1.0f);
    assert_true(y[0] == -1.0f && y[1] == -0.25f);
}

static void put_qh(uint8_t *p, const int *q) {
    uint32_t h = 0;
    for (int i = 0; i < 32; i++) h |= (uint32_t)((q[i] >> 4) & 1) << i;
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(h >> (8 * k));
}

static void test_q5_0(void **state) {
    (void)state;
    uint8_t b[22];
    int q[32];
    for (int i = 0; i < 32; i++) q[i] = pseudo(i + 200, 32);
    put16(b, 0x4000); /* 2 */
    put_qh(b + 2, q);
    pack_nibbles(b + 6, q);
    float y[32];
    mt_dequantize(MT_Q5_0, b, y, 32);
    for (int i = 0; i < 32; i++) assert_true(y[i] == 2.0f * (float)(q[i] - 16));
}

static void test_q5_1(void **state) {
    (void)state;
    uint8_t b[24];
    int q[32];
    for (int i = 0; i < 32; i++) q[i] = pseudo(i + 300, 32);
    put16(b, 0x3800);     /* 0.5 */
    put16(b + 2, 0x4200); /* 3 */
    put_qh(b + 4, q);
    pack_nibbles(b + 8, q);
    float y[32];
    mt_dequantize(MT_Q5_1, b, y, 32);
    for (int i = 0; i < 32; i++) assert_true(y[i] == 0.5f * (float)q[i] + 3.0f);
}

static void test_q8_0_rows(void **state) {
    (void)state;
    uint8_t b[2 * 34];
    for (int r = 0; r < 2; r++) {
        put16(b + 34 * r, r ? 0xb800 : 0x3c00); /* 1, then -0.5 */
        for (int i = 0; i < 32; i++) b[34 * r + 2 + i] = (uint8_t)(int8_t)(i * 8 - 128);
    }
    mt_tensor t = {.type = MT_Q8_0, .n_dims = 2, .ne = {32, 2, 1, 1}, .data = b};
    float y[32];
    mt_dequantize_row(&t, 1, y);
    for (int i = 0; i < 32; i++) assert_true(y[i] == -0.5f * (float)(i * 8 - 128));
    assert_true(y[0] == 64.0f);
}

/* Packs eight 6-bit scales and mins the way the K-quant block header stores them. */
static void pack_k_scales(uint8_t *s, const int *sc, const int *m) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

static void k_header(uint8_t *b, int *sc, int *m) {
    put16(b, 0x3800);     /* d = 0.5 */
    put16(b + 2, 0x3400); /* dmin = 0.25 */
    for (int j = 0; j < 8; j++) sc[j] = pseudo(j + 700, 64), m[j] = pseudo(j + 800, 64);
    pack_k_scales(b + 4, sc, m);
}

static void test_q4_k(void **state) {
    (void)state;
    uint8_t b[144];
    int sc[8], m[8], q[256];
    k_header(b, sc, m);
    for (int i = 0; i < 256; i++) q[i] = pseudo(i + 400, 16);
    /* 64 elements per 32 bytes: the first 32 in low nibbles, the next 32 in high ones */
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b[16 + 32 * c + l] = (uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
    float y[256];
    mt_dequantize(MT_Q4_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        float dl = 0.5f * (float)sc[i / 32], ml = 0.25f * (float)m[i / 32];
        float p = dl * (float)q[i];
        assert_true(y[i] == p - ml);
    }
}

static void test_q5_k(void **state) {
    (void)state;
    uint8_t b[176] = {0};
    int sc[8], m[8], q[256];
    k_header(b, sc, m);
    for (int i = 0; i < 256; i++) q[i] = pseudo(i + 500, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b[48 + 32 * c + l] = (uint8_t)((q[64 * c + l] & 15) | ((q[64 * c + 32 + l] & 15) << 4));
    for (int i = 0; i < 256; i++) b[16 + i % 32] |= (uint8_t)(((q[i] >> 4) & 1) << (i / 32));
    float y[256];
    mt_dequantize(MT_Q5_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        float dl = 0.5f * (float)sc[i / 32], ml = 0.25f * (float)m[i / 32];
        float p = dl * (float)q[i];
        assert_true(y[i] == p - ml);
    }
}

static void test_q6_k(void **state) {
    (void)state;
    uint8_t b[210] = {0};
    int q[256];
    int8_t scales[16];
    for (int i = 0; i < 256; i++) q[i] = pseudo(i + 600, 64);
    for (int j = 0; j < 16; j++) scales[j] = (int8_t)(pseudo(j + 900, 256) - 128);
    /* each half of 128: ql[l] holds elements l (low) and l+64 (high), ql[l+32] elements
     * l+32 and l+96; qh[l] holds the top two bits of l, l+32, l+64, l+96 */
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int *e = q + 128 * h;
            b[64 * h + l] = (uint8_t)((e[l] & 15) | ((e[l + 64] & 15) << 4));
            b[64 * h + 32 + l] = (uint8_t)((e[l + 32] & 15) | ((e[l + 96] & 15) << 4));
            b[128 + 32 * h + l] = (uint8_t)((e[l] >> 4) | ((e[l + 32] >> 4) << 2) |
                                            ((e[l + 64] >> 4) << 4) | ((e[l + 96] >> 4) << 6));
        }
    memcpy(b + 192, scales, 16);
    put16(b + 208, 0x2e66); /* an inexact d, so rounding order matters */
    float d = mt_fp16_to_fp32(0x2e66), y[256];
    mt_dequantize(MT_Q6_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        float dl = d * (float)scales[i / 16];
        assert_int_equal(bits(y[i]), bits(dl * (float)(q[i] - 32)));
    }
}

/* ---- SIMD paths against the scalar reference ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* Scale halves: mostly any finite value, often the edge cases (zeros, subnormals, the
 * extremes), sometimes inf or NaN (quiet and signalling, both signs). Blocks with a
 * non-finite scale are decoded by the scalar code on every path, so they must match too. */
static uint16_t random_scale(void) {
    static const uint16_t edge[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x83ff, 0x0400,
                                    0x7bff, 0xfbff, 0x3c00, 0xbc00, 0x2e66, 0x7c00, 0xfc00,
                                    0x7c01, 0xfc01, 0x7e00, 0xfe00, 0x7dff, 0x7fff};
    uint32_t r = rnd();
    if (r % 4 == 0) return edge[(r >> 8) % (sizeof edge / sizeof edge[0])];
    uint16_t h;
    do h = (uint16_t)(rnd() >> 16);
    while ((h & 0x7c00) == 0x7c00);
    return h;
}

struct qtype {
    mt_dtype t;
    int scales[2]; /* byte offsets of the f16 scales in a block, -1 for none */
};

static const struct qtype qtypes[] = {
    {MT_Q4_0, {0, -1}}, {MT_Q4_1, {0, 2}}, {MT_Q5_0, {0, -1}}, {MT_Q5_1, {0, 2}},
    {MT_Q8_0, {0, -1}}, {MT_Q4_K, {0, 2}}, {MT_Q5_K, {0, 2}},  {MT_Q6_K, {208, -1}},
};

/* Decodes `bytes` at src with the given level and with the scalar code, into buffers
 * shifted off alignment, and demands equal bits and nothing written past n. */
static void check_level(int level, mt_dtype t, const uint8_t *src, int64_t n) {
    float *ref = malloc(((size_t)n + 8) * sizeof *ref);
    float *got = malloc(((size_t)n + 9) * sizeof *got);
    assert_non_null(ref), assert_non_null(got);
    memset(ref, 0xa5, ((size_t)n + 8) * sizeof *ref);
    memset(got, 0xa5, ((size_t)n + 9) * sizeof *got);
    mt_dequant_set_simd(0);
    mt_dequantize(t, src, ref, n);
    mt_dequant_set_simd(level);
    mt_dequantize(t, src, got + 1, n);
    mt_dequant_set_simd(2);
    if (memcmp(ref, got + 1, (size_t)n * sizeof *ref) != 0) {
        for (int64_t i = 0; i < n; i++)
            if (bits(ref[i]) != bits(got[i + 1]))
                fail_msg("%s level %d, n %lld: element %lld is %08x, scalar %08x", mt_dtype_name(t),
                         level, (long long)n, (long long)i, bits(got[i + 1]), bits(ref[i]));
    }
    /* untouched: the guard before and the eight floats after */
    assert_memory_equal(got, ref + n, sizeof *got);
    assert_memory_equal(got + 1 + n, ref + n, 8 * sizeof *got);
    free(ref), free(got);
}

static void check_all_levels(mt_dtype t, const uint8_t *src, int64_t n) {
    for (int level = 1; level <= 2; level++) check_level(level, t, src, n);
}

static void test_simd_blocks_match_scalar(void **state) {
    (void)state;
    print_message("dequant SIMD level in effect: %d\n", mt_dequant_set_simd(2));
    for (size_t k = 0; k < sizeof qtypes / sizeof qtypes[0]; k++) {
        const struct qtype *q = &qtypes[k];
        int64_t be = mt_dtype_block_elems(q->t);
        size_t bb = mt_dtype_block_bytes(q->t);
        for (int nb = 1; nb <= 40; nb += (nb < 6 ? 1 : 17)) {
            for (int rep = 0; rep < 40; rep++) {
                /* one spare byte in front so the blocks sit at an odd address */
                uint8_t *buf = malloc(bb * (size_t)nb + 1), *src = buf + 1;
                assert_non_null(buf);
                for (size_t i = 0; i < bb * (size_t)nb; i++) src[i] = (uint8_t)rnd();
                for (int b = 0; b < nb; b++)
                    for (int s = 0; s < 2; s++)
                        if (q->scales[s] >= 0)
                            put16(src + bb * (size_t)b + q->scales[s], random_scale());
                check_all_levels(q->t, src, be * nb);
                free(buf);
            }
        }
    }
}

/* Every half value through the vector F16 and BF16 paths, at several row lengths so
 * the tails are covered too. */
static void test_simd_half_rows_match_scalar(void **state) {
    (void)state;
    uint8_t *all = malloc(2 * 65536 + 1), *src = all + 1;
    assert_non_null(all);
    for (uint32_t h = 0; h < 65536; h++) put16(src + 2 * h, (uint16_t)h);
    check_all_levels(MT_F16, src, 65536);
    check_all_levels(MT_BF16, src, 65536);
    for (int n = 1; n <= 40; n++) {
        for (int i = 0; i < n; i++) put16(src + 2 * i, (uint16_t)(rnd() >> 16));
        put16(src + 2 * (n - 1), 0x7c01); /* a signalling NaN in the last lane */
        check_all_levels(MT_F16, src, n);
        check_all_levels(MT_BF16, src, n);
    }
    free(all);
}

/* What a non-finite scale gives, as the scalar code (and numpy) defines it: the NaN
 * propagates through the products, a signalling one quieted by the multiply, and
 * inf·0 is the default NaN. The SIMD paths reach the same bits by handing the block to
 * the scalar decoder. */
static void test_nonfinite_scales(void **state) {
    (void)state;
    uint8_t b[34];
    for (int i = 0; i < 32; i++) b[2 + i] = (uint8_t)(i - 16);
    put16(b, 0x7c01); /* signalling NaN, payload 1 */
    float y[32];
    for (int level = 0; level <= 2; level++) {
        mt_dequant_set_simd(level);
        mt_dequantize(MT_Q8_0, b, y, 32);
        for (int i = 0; i < 32; i++) assert_int_equal(bits(y[i]), 0x7fc02000u);
    }
    put16(b, 0xfc00); /* -inf: +-inf, and the default NaN where q = 0 */
    for (int level = 0; level <= 2; level++) {
        mt_dequant_set_simd(level);
        mt_dequantize(MT_Q8_0, b, y, 32);
        for (int i = 0; i < 32; i++) {
            int q = i - 16;
            uint32_t want = q == 0 ? 0xffc00000u : q < 0 ? 0x7f800000u : 0xff800000u;
            assert_int_equal(bits(y[i]), want);
        }
    }
    mt_dequant_set_simd(2);
    /* two NaNs meeting in d·q + m: whatever the scalar code keeps, all paths keep */
    uint8_t b1[20];
    put16(b1, 0x7c01), put16(b1 + 2, 0xfe03);
    for (int i = 0; i < 16; i++) b1[4 + i] = (uint8_t)rnd();
    check_all_levels(MT_Q4_1, b1, 32);
}

static void test_dtype_table(void **state) {
    (void)state;
    assert_true(mt_dtype_supported(MT_Q4_K) && mt_dtype_supported(MT_BF16));
    assert_false(mt_dtype_supported(10)); /* Q2_K */
    assert_false(mt_dtype_supported(-1) || mt_dtype_supported(4) || mt_dtype_supported(9999));
    assert_string_equal(mt_dtype_name(10), "Q2_K");
    assert_string_equal(mt_dtype_name(4), "unknown");
    assert_int_equal(mt_dtype_block_bytes(MT_Q6_K), 210);
    assert_int_equal(mt_dtype_block_elems(MT_Q5_K), 256);
    assert_int_equal(mt_dtype_row_bytes(MT_Q8_0, 64), 68);
    assert_int_equal(mt_dtype_row_bytes(MT_BF16, 5), 10);
    mt_tensor t = {.type = MT_Q4_0, .n_dims = 2, .ne = {64, 3, 1, 1}};
    assert_int_equal(mt_tensor_nelements(&t), 192);
    assert_int_equal(mt_tensor_nbytes(&t), 3 * 36);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_to_fp32),
        cmocka_unit_test(test_fp32_to_fp16),
        cmocka_unit_test(test_fp16_round_trip),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_plain_types),
        cmocka_unit_test(test_q4_0),
        cmocka_unit_test(test_q4_1),
        cmocka_unit_test(test_q5_0),
        cmocka_unit_test(test_q5_1),
        cmocka_unit_test(test_q8_0_rows),
        cmocka_unit_test(test_q4_k),
        cmocka_unit_test(test_q5_k),
        cmocka_unit_test(test_q6_k),
        cmocka_unit_test(test_simd_blocks_match_scalar),
        cmocka_unit_test(test_simd_half_rows_match_scalar),
        cmocka_unit_test(test_nonfinite_scales),
        cmocka_unit_test(test_dtype_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
