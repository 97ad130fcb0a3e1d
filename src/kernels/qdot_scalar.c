/* Portable reference kernels: every SIMD kernel is tested against these. Per block
 * the weight-activation product is an exact integer; its float scaling and the sum
 * over blocks follow the same formulas as the SIMD kernels, only in another order. */
#include "kernels/dequant.h"
#include "kernels/qdot_internal.h"

static float half(const uint8_t *p) {
    return mt_fp16_to_fp32(mt_rd16(p));
}

/* Sum of (nibble + off) * a over a 4-bit block: element i is the low nibble of byte i
 * for i < 16, the high nibble of byte i - 16 after. Two branch-free halves so the
 * compiler can vectorise them. */
static int nib_dot(const uint8_t *qs, int off, const int8_t *a) {
    int s = 0;
    for (int i = 0; i < MT_QK / 2; i++) s += ((qs[i] & 0x0f) + off) * a[i];
    for (int i = 0; i < MT_QK / 2; i++) s += ((qs[i] >> 4) + off) * a[i + MT_QK / 2];
    return s;
}

/* Same with the fifth bits of Q5_0/Q5_1 (bit i of qh for element i). */
static int nib5_dot(const uint8_t *qs, uint32_t qh, int off, const int8_t *a) {
    int s = 0;
    for (int i = 0; i < MT_QK / 2; i++)
        s += ((qs[i] & 0x0f) + (int)((qh >> i) & 1) * 16 + off) * a[i];
    for (int i = 0; i < MT_QK / 2; i++)
        s += ((qs[i] >> 4) + (int)((qh >> (i + 16)) & 1) * 16 + off) * a[i + MT_QK / 2];
    return s;
}

static float dot_q4_0(int64_t n, const uint8_t *w, const mt_act32 *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / MT_QK; b++, w += 18) {
        const int isum = nib_dot(w + 2, -8, a[b].qs);
        sum += (half(w) * a[b].d) * (float)isum;
    }
    return sum;
}

/* Formats with a per-block min m: sum_i (d q_i + m) d_a a_i = d d_a sum q a + m s. */
static float dot_q4_1(int64_t n, const uint8_t *w, const mt_act32 *a) {
    float sum = 0.0f, summ = 0.0f;
    for (int64_t b = 0; b < n / MT_QK; b++, w += 20) {
        const int isum = nib_dot(w + 4, 0, a[b].qs);
        sum += (half(w) * a[b].d) * (float)isum;
        summ += half(w + 2) * a[b].s;
    }
    return sum + summ;
}

static float dot_q5_0(int64_t n, const uint8_t *w, const mt_act32 *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / MT_QK; b++, w += 22) {
        const int isum = nib5_dot(w + 6, mt_rd32(w + 2), -16, a[b].qs);
        sum += (half(w) * a[b].d) * (float)isum;
    }
    return sum;
}

static float dot_q5_1(int64_t n, const uint8_t *w, const mt_act32 *a) {
    float sum = 0.0f, summ = 0.0f;
    for (int64_t b = 0; b < n / MT_QK; b++, w += 24) {
        const int isum = nib5_dot(w + 8, mt_rd32(w + 4), 0, a[b].qs);
        sum += (half(w) * a[b].d) * (float)isum;
        summ += half(w + 2) * a[b].s;
    }
    return sum + summ;
}

static float dot_q8_0(int64_t n, const uint8_t *w, const mt_act32 *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / MT_QK; b++, w += 34) {
        int isum = 0;
        for (int i = 0; i < MT_QK; i++) isum += (int8_t)w[2 + i] * a[b].qs[i];
        sum += (half(w) * a[b].d) * (float)isum;
    }
    return sum;
}

/* Q4_K and Q5_K: sub-block j (32 values) has scale sc[j] and min mn[j]; its values are
 * the low (even j) or high (odd j) nibbles of qs[32 (j / 2) ..], with bit j of qh[l] on
 * top for Q5_K. w = d sc q - dmin mn, so the row sum is
 * d d_a sum_j sc_j sum q a - dmin d_a sum_j mn_j (activation sum of sub-block j). */
static float dot_k45(int64_t n, const uint8_t *w, const mt_act256 *a, int five) {
    const size_t bytes = five ? 176 : 144;
    float sum = 0.0f, summ = 0.0f;
    for (int64_t b = 0; b < n / MT_QK_K; b++, w += bytes) {
        /* Q4_K has no qh: the pointer then reads its qs, and five = 0 drops the bit. */
        const uint8_t *qh = w + 16, *qs = w + (five ? 48 : 16);
        uint8_t sc[8], mn[8];
        mt_k_scales(w + 4, sc, mn);
        int isum = 0, imin = 0;
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = qs + 32 * (j / 2);
            const int8_t *y = a[b].qs + 32 * j;
            const int shift = 4 * (j & 1);
            int s = 0;
            for (int l = 0; l < 32; l++) {
                const int v = ((q[l] >> shift) & 0x0f) | (five * ((qh[l] >> j) & 1)) << 4;
                s += v * y[l];
            }
            isum += sc[j] * s;
            imin += mn[j] * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
        }
        sum += (half(w) * a[b].d) * (float)isum;
        summ += (half(w + 2) * a[b].d) * (float)imin;
    }
    return sum - summ;
}

/* Q6_K: each half of 128 values takes ql[64 h ..] and qh[32 h ..]; run r (32 values)
 * uses the low (r < 2) or high nibbles of ql[64 h + 32 (r & 1) + l] with bits 2r, 2r+1
 * of qh[32 h + l] on top; one signed scale per 16 values; w = d sc (q - 32). */
static float dot_q6_k(int64_t n, const uint8_t *w, const mt_act256 *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / MT_QK_K; b++, w += 210) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192);
        int isum = 0;
        for (int h = 0; h < 2; h++) {
            for (int r = 0; r < 4; r++) {
                const int8_t *y = a[b].qs + 128 * h + 32 * r;
                const uint8_t *lo = ql + 64 * h + 32 * (r & 1), *hi = qh + 32 * h;
                const int shift = 4 * (r >> 1);
                int s[2] = {0, 0};
                for (int k = 0; k < 2; k++)
                    for (int l = 16 * k; l < 16 * k + 16; l++) {
                        const int q = ((lo[l] >> shift) & 0x0f) | (((hi[l] >> (2 * r)) & 3) << 4);
                        s[k] += q * y[l];
                    }
                const int g = 8 * h + 2 * r;
                isum += sc[g] * (s[0] - 32 * a[b].bsums[g]);
                isum += sc[g + 1] * (s[1] - 32 * a[b].bsums[g + 1]);
            }
        }
        sum += (half(w + 208) * a[b].d) * (float)isum;
    }
    return sum;
}

static float dot_f32(int64_t n, const uint8_t *w, const float *x) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, w + 4 * i, sizeof v);
        sum += v * x[i];
    }
    return sum;
}

static float dot_f16(int64_t n, const uint8_t *w, const float *x) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += mt_fp16_to_fp32(mt_rd16(w + 2 * i)) * x[i];
    return sum;
}

static float dot_bf16(int64_t n, const uint8_t *w, const float *x) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += mt_bf16_to_fp32(mt_rd16(w + 2 * i)) * x[i];
    return sum;
}

#define ROW_FN_Q(name, dot, act_t)                                                                 \
    static void name(int64_t n, const uint8_t *w, int nt, const uint8_t *xq, size_t xq_stride,     \
                     const float *xf, int64_t xf_stride, float *out, int64_t out_stride) {         \
        (void)xf, (void)xf_stride;                                                                 \
        for (int t = 0; t < nt; t++)                                                               \
            out[t * out_stride] = dot(n, w, (const act_t *)(const void *)(xq + t * xq_stride));    \
    }

#define ROW_FN_F(name, dot)                                                                        \
    static void name(int64_t n, const uint8_t *w, int nt, const uint8_t *xq, size_t xq_stride,     \
                     const float *xf, int64_t xf_stride, float *out, int64_t out_stride) {         \
        (void)xq, (void)xq_stride;                                                                 \
        for (int t = 0; t < nt; t++) out[t * out_stride] = dot(n, w, xf + t * xf_stride);          \
    }

static float dot_q4_k(int64_t n, const uint8_t *w, const mt_act256 *a) {
    return dot_k45(n, w, a, 0);
}

static float dot_q5_k(int64_t n, const uint8_t *w, const mt_act256 *a) {
    return dot_k45(n, w, a, 1);
}

ROW_FN_Q(row_q4_0, dot_q4_0, mt_act32)
ROW_FN_Q(row_q4_1, dot_q4_1, mt_act32)
ROW_FN_Q(row_q5_0, dot_q5_0, mt_act32)
ROW_FN_Q(row_q5_1, dot_q5_1, mt_act32)
ROW_FN_Q(row_q8_0, dot_q8_0, mt_act32)
ROW_FN_Q(row_q4_k, dot_q4_k, mt_act256)
ROW_FN_Q(row_q5_k, dot_q5_k, mt_act256)
ROW_FN_Q(row_q6_k, dot_q6_k, mt_act256)
ROW_FN_F(row_f32, dot_f32)
ROW_FN_F(row_f16, dot_f16)
ROW_FN_F(row_bf16, dot_bf16)

mt_qdot_row_fn mt_qdot_scalar_fn(mt_dtype t) {
    switch (t) {
    case MT_F32:
        return row_f32;
    case MT_F16:
        return row_f16;
    case MT_BF16:
        return row_bf16;
    case MT_Q4_0:
        return row_q4_0;
    case MT_Q4_1:
        return row_q4_1;
    case MT_Q5_0:
        return row_q5_0;
    case MT_Q5_1:
        return row_q5_1;
    case MT_Q8_0:
        return row_q8_0;
    case MT_Q4_K:
        return row_q4_k;
    case MT_Q5_K:
        return row_q5_k;
    case MT_Q6_K:
        return row_q6_k;
    }
    return NULL;
}
