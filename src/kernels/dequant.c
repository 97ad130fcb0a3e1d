#include "kernels/dequant.h"

#include <float.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/dequant_internal.h"

/* Bit equality with the reference needs every product and sum rounded to float
 * exactly where numpy rounds it: float evaluation, and no fused multiply-add (C11
 * mode turns contraction off in GCC; clang only fuses within one expression, so the
 * multiply and the add below are separate statements). */
_Static_assert(FLT_EVAL_METHOD == 0, "dequantisation needs float evaluation in float");

#define QK 32
#define QK_K 256

static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float half(const uint8_t *p) {
    return mt_fp16_to_fp32(rd16(p));
}

float mt_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) /* inf, or NaN with its payload kept as numpy keeps it */
        return bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
    if (man == 0) return bits_to_f32(sign);
    /* A half subnormal is a normal float: shift the leading one into the implicit bit. */
    uint32_t e = 113;
    while (!(man & 0x400)) {
        man <<= 1;
        e--;
    }
    return bits_to_f32(sign | (e << 23) | ((man & 0x3ff) << 13));
}

/* Shifts m right by s bits rounding to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t m, unsigned s) {
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1);
    uint32_t halfway = 1u << (s - 1);
    if (rem > halfway || (rem == halfway && (q & 1))) q++;
    return q;
}

uint16_t mt_fp32_to_fp16(float f) {
    uint32_t x = f32_to_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds past 65504 */
    if (a >= 0x38800000u) {
        uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ff);
        uint32_t rem = a & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    if (a <= 0x33000000u) return sign; /* at most half the smallest subnormal */
    uint32_t m = (a & 0x7fffff) | 0x800000;
    return (uint16_t)(sign | shift_round_even(m, 126 - (a >> 23)));
}

float mt_bf16_to_fp32(uint16_t h) {
    return bits_to_f32((uint32_t)h << 16);
}

/* The four-bit formats store element i of a block in the low nibble of byte i and
 * element i + 16 in the high nibble. */
static int nibble(const uint8_t *qs, int i) {
    return i < QK / 2 ? (qs[i] & 0x0f) : (qs[i - QK / 2] >> 4);
}

static void block_q4_0(const uint8_t *b, float *y) {
    float d = half(b);
    /* Two branch-free halves so the compiler can vectorise them. */
    for (int i = 0; i < QK / 2; i++) y[i] = d * (float)((b[2 + i] & 0x0f) - 8);
    for (int i = 0; i < QK / 2; i++) y[i + QK / 2] = d * (float)((b[2 + i] >> 4) - 8);
}

static void block_q4_1(const uint8_t *b, float *y) {
    float d = half(b), m = half(b + 2);
    for (int i = 0; i < QK / 2; i++) {
        float p = d * (float)(b[4 + i] & 0x0f);
        y[i] = p + m;
    }
    for (int i = 0; i < QK / 2; i++) {
        float p = d * (float)(b[4 + i] >> 4);
        y[i + QK / 2] = p + m;
    }
}

static int five_bits(const uint8_t *qh, const uint8_t *qs, int i) {
    return nibble(qs, i) | (int)(((rd32(qh) >> i) & 1) << 4);
}

static void block_q5_0(const uint8_t *b, float *y) {
    float d = half(b);
    for (int i = 0; i < QK; i++) y[i] = d * (float)(five_bits(b + 2, b + 6, i) - 16);
}

static void block_q5_1(const uint8_t *b, float *y) {
    float d = half(b), m = half(b + 2);
    for (int i = 0; i < QK; i++) {
        float p = d * (float)five_bits(b + 4, b + 8, i);
        y[i] = p + m;
    }
}

static void block_q8_0(const uint8_t *b, float *y) {
    float d = half(b);
    for (int i = 0; i < QK; i++) y[i] = (float)(int8_t)b[2 + i] * d;
}

/* K-quants pack eight 6-bit (scale, min) pairs into 12 bytes: the low six bits of
 * bytes 0-7 hold pairs 0-3, and pairs 4-7 combine a nibble of bytes 8-11 with the top
 * two bits of bytes 0-7. */
static void k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Shared by Q4_K and Q5_K: sub-block j of 32 takes nibbles from qs bytes 32*(j/2)..,
 * low nibbles for even j, high for odd; Q5_K adds bit j of qh[l] as the fifth bit. */
static void block_k_4_5(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y) {
    float d = half(b), dmin = half(b + 2);
    for (int j = 0; j < QK_K / 32; j++) {
        int sc, m;
        k_scale_min(b + 4, j, &sc, &m);
        float dl = d * (float)sc;
        float ml = dmin * (float)m;
        const uint8_t *q = qs + 32 * (j / 2);
        for (int l = 0; l < 32; l++) {
            int v = (j & 1) ? (q[l] >> 4) : (q[l] & 0x0f);
            if (qh) v |= ((qh[l] >> j) & 1) << 4;
            float p = dl * (float)v;
            y[32 * j + l] = p - ml;
        }
    }
}

static void block_q4_k(const uint8_t *b, float *y) {
    block_k_4_5(b, NULL, b + 16, y);
}

static void block_q5_k(const uint8_t *b, float *y) {
    block_k_4_5(b, b + 16, b + 48, y);
}

/* Q6_K: each half of 128 elements uses 64 bytes of ql and 32 of qh; its four runs of
 * 32 take low nibbles of ql[0..31], ql[32..63], then high nibbles, with two-bit
 * fields 0..3 of qh as the top bits. One int8 scale per 16 elements. */
static void block_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + QK_K / 2;
    const int8_t *scales = (const int8_t *)(b + QK_K / 2 + QK_K / 4);
    float d = half(b + QK_K / 2 + QK_K / 4 + QK_K / 16);
    for (int i = 0; i < QK_K; i++) {
        int h = i / 128, run = (i % 128) / 32, l = i % 32;
        uint8_t lo = ql[64 * h + 32 * (run & 1) + l];
        int q = ((run < 2) ? (lo & 0x0f) : (lo >> 4)) | (((qh[32 * h + l] >> (2 * run)) & 3) << 4);
        float dl = d * (float)scales[i / 16];
        y[i] = dl * (float)(q - 32);
    }
}

typedef void (*block_fn)(const uint8_t *, float *);

static block_fn block_decoder(mt_dtype t) {
    switch (t) {
    case MT_Q4_0:
        return block_q4_0;
    case MT_Q4_1:
        return block_q4_1;
    case MT_Q5_0:
        return block_q5_0;
    case MT_Q5_1:
        return block_q5_1;
    case MT_Q8_0:
        return block_q8_0;
    case MT_Q4_K:
        return block_q4_k;
    case MT_Q5_K:
        return block_q5_k;
    case MT_Q6_K:
        return block_q6_k;
    default:
        return NULL;
    }
}

void mt_dq_block_scalar(mt_dtype t, const uint8_t *b, float *y) {
    block_decoder(t)(b, y);
}

/* The widest path wanted (mt_dequant_set_simd); CPU support is detected on first use. */
static atomic_int simd_wanted = 2;

static int simd_cpu(void) {
    return mt_cpu_avx512() ? 2 : mt_cpu_avx2() ? 1 : 0;
}

int mt_dequant_set_simd(int level) {
    if (level < 0) level = 0;
    if (level > 2) level = 2;
    atomic_store_explicit(&simd_wanted, level, memory_order_relaxed);
    int cpu = simd_cpu();
    return level < cpu ? level : cpu;
}

static void dequantize_scalar(mt_dtype t, const uint8_t *p, float *dst, int64_t n) {
    switch (t) {
    case MT_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = mt_fp16_to_fp32(rd16(p + 2 * i));
        return;
    case MT_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = mt_bf16_to_fp32(rd16(p + 2 * i));
        return;
    default:
        break;
    }
    block_fn fn = block_decoder(t);
    if (!fn) return;
    int64_t be = mt_dtype_block_elems(t);
    size_t bb = mt_dtype_block_bytes(t);
    for (int64_t i = 0; i < n / be; i++) fn(p + (size_t)i * bb, dst + i * be);
}

void mt_dequantize(mt_dtype t, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    if (t == MT_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    int wanted = atomic_load_explicit(&simd_wanted, memory_order_relaxed);
    if (wanted >= 2 && mt_cpu_avx512() && mt_dq_run_avx512(t, p, dst, n)) return;
    if (wanted >= 1 && mt_cpu_avx2() && mt_dq_run_avx2(t, p, dst, n)) return;
    dequantize_scalar(t, p, dst, n);
}

void mt_dequantize_row(const mt_tensor *t, int64_t row, float *dst) {
    size_t row_bytes = mt_dtype_row_bytes(t->type, t->ne[0]);
    const uint8_t *src = (const uint8_t *)t->data + (size_t)row * row_bytes;
    mt_dequantize(t->type, src, dst, t->ne[0]);
}
