/* Test tool: the quantised dot-product kernels on every row of real GGUF tensors.
 *   qdot_check FILE.gguf TENSOR...
 * For each tensor, activations with a heavy tail (N(0,1), 1% of them x30; fixed seed)
 * are multiplied with every row by the scalar, AVX2 and AVX-512 kernels, and compared with
 * exact (double) dots of the dequantised row with the quantised activations x̂ and
 * with the f32 activations x. One JSON object per tensor on stdout, with the worst
 * ratio to each tolerance (the same derived bounds as tests/unit/test_qdot.c; <= 1
 * passes) and plain error figures:
 *   simd   |y_avx2 - y_scalar| / 2T
 *   simd512  |y_avx512 - y_scalar| / 2T
 *   kern   |y - Σ w x̂| / T,  T = 2 (terms + 8) 2^-24 M   (worst of all kernels)
 *   act    |y - Σ w x| / (Σ |w| d_a / 2 (1 + 2e-4) + T)
 *   rel_max, rel_rms   |y_scalar - Σ w x| / Σ |w x|
 *   batch_bitexact     5 tokens through mt_matmul_q equal mt_matvec_q and mt_vec_dot
 *                      bit for bit, in every implementation the CPU runs
 * avx2 is false (and simd 0) on a CPU without AVX2, avx512 (and simd512) likewise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/gguf.h"
#include "kernels/dequant.h"
#include "kernels/qdot.h"
#include "kernels/qdot_internal.h"

#define N_TOK 5

static int is_float_type(mt_dtype t) {
    return t == MT_F32 || t == MT_F16 || t == MT_BF16;
}

/* Byte offset of the f16 min (Q4_1, Q5_1) or dmin (Q4_K, Q5_K) in a block, or -1. */
static int min_field(mt_dtype t) {
    return (t == MT_Q4_1 || t == MT_Q5_1 || t == MT_Q4_K || t == MT_Q5_K) ? 2 : -1;
}

static double gauss(mt_rng *r) {
    double u1 = mt_rng_uniform(r), u2 = mt_rng_uniform(r);
    if (u1 < 1e-12) u1 = 1e-12;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* x̂ and each value's activation step from the int8 blocks. */
static void read_act(mt_dtype t, int64_t n, const float *x, const void *xq, double *xh,
                     double *step) {
    for (int64_t i = 0; i < n; i++) {
        if (is_float_type(t)) {
            xh[i] = x[i], step[i] = 0;
        } else if (t == MT_Q4_K || t == MT_Q5_K || t == MT_Q6_K) {
            const mt_act256 *a = (const mt_act256 *)xq + i / 256;
            xh[i] = (double)(a->d * (float)a->qs[i % 256]), step[i] = a->d;
        } else {
            const mt_act32 *a = (const mt_act32 *)xq + i / 32;
            xh[i] = (double)(a->d * (float)a->qs[i % 32]), step[i] = a->d;
        }
    }
}

typedef struct {
    double simd, simd512, kern, act, rel_max, rel_sq;
} worst;

static mt_status check(const mt_gguf *g, const char *name, uint64_t seed) {
    const mt_tensor *w;
    mt_status st = mt_gguf_tensor_view(g, name, &w);
    if (st) return st;
    const mt_dtype t = w->type;
    const int64_t n = w->ne[0], rows = mt_tensor_nelements(w) / n;
    const size_t rb = mt_dtype_row_bytes(t, n), bb = mt_dtype_block_bytes(t),
                 ab = mt_act_bytes(t, n);
    const int avx2 = mt_qdot_avx2_available(), avx512 = mt_qdot_avx512_available();
    float *x = malloc((size_t)(N_TOK * n) * sizeof *x), *wf = malloc((size_t)n * sizeof *wf);
    float *wa = malloc((size_t)n * sizeof *wa);
    double *xh = malloc((size_t)n * sizeof *xh), *step = malloc((size_t)n * sizeof *step);
    float *ys = malloc((size_t)rows * sizeof *ys), *ya = malloc((size_t)rows * sizeof *ya);
    float *y5 = malloc((size_t)rows * sizeof *y5);
    float *yb = malloc((size_t)(N_TOK * rows) * sizeof *yb);
    uint8_t *xq = malloc(ab * N_TOK + 1), *w0 = malloc(rb);
    if (!x || !wf || !wa || !xh || !step || !ys || !ya || !y5 || !yb || !xq || !w0) {
        st = mt_fail(MT_ERR_NOMEM, "out of memory");
        goto done;
    }
    mt_rng r;
    mt_rng_seed(&r, seed);
    for (int64_t i = 0; i < N_TOK * n; i++) {
        x[i] = (float)gauss(&r);
        if (mt_rng_uniform(&r) < 0.01) x[i] *= 30.0f;
    }
    for (int k = 0; k < N_TOK; k++)
        if ((st = mt_quantize_act(t, x + k * n, n, xq + k * ab))) goto done;
    read_act(t, n, x, xq, xh, step);

    mt_qdot_set_impl(MT_QDOT_SCALAR);
    mt_matvec_q(w, xq, x, ys, 0, rows);
    int bitexact = 1;
    const mt_qdot_impl impls[] = {MT_QDOT_SCALAR, MT_QDOT_AVX2, MT_QDOT_AVX512};
    const int have[] = {1, avx2, avx512};
    float *outs[] = {ys, ya, y5};
    for (int pass = 0; pass < 3; pass++) {
        if (!have[pass]) continue;
        mt_qdot_set_impl(impls[pass]);
        if (pass) mt_matvec_q(w, xq, x, outs[pass], 0, rows);
        mt_matmul_q(w, N_TOK, xq, x, yb, 0, rows);
        const float *y1 = outs[pass];
        for (int64_t i = 0; i < rows; i++)
            if (memcmp(&yb[i], &y1[i], sizeof *yb)) bitexact = 0;
        for (int k = 1; k < N_TOK; k++) /* each later token alone, a few rows */
            for (int64_t i = 0; i < rows; i += rows / 7 + 1) {
                const float one = mt_vec_dot(t, n, (const uint8_t *)w->data + (size_t)i * rb,
                                             xq + k * ab, x + k * n);
                if (memcmp(&one, &yb[k * rows + i], sizeof one)) bitexact = 0;
            }
    }
    mt_qdot_set_impl(MT_QDOT_AUTO);

    worst wr = {0};
    const int mf = min_field(t);
    const int64_t terms = is_float_type(t) ? n : n / mt_dtype_block_elems(t);
    for (int64_t i = 0; i < rows; i++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)i * rb;
        mt_dequantize(t, row, wf, n);
        if (mf >= 0) { /* offset-free part d·q: the row again without its mins */
            memcpy(w0, row, rb);
            for (size_t b = 0; b < rb / bb; b++) memset(w0 + b * bb + mf, 0, 2);
            mt_dequantize(t, w0, wa, n);
        } else {
            memcpy(wa, wf, (size_t)n * sizeof *wa);
        }
        double eq = 0, ex = 0, absum = 0, act = 0, M = 0;
        for (int64_t j = 0; j < n; j++) {
            eq += (double)wf[j] * xh[j];
            ex += (double)wf[j] * x[j];
            absum += fabs((double)wf[j] * x[j]);
            act += fabs((double)wf[j]) * step[j] * (0.5 + 1e-4);
            M += (fabs((double)wa[j]) + fabs((double)wf[j] - wa[j])) * fabs(xh[j]);
        }
        const double T = 2.0 * (double)(terms + 8) * 0x1p-24 * M + 1e-30;
        double kern = fabs(ys[i] - eq) / T, a = fabs(ys[i] - ex) / (act + T);
        if (avx2) {
            kern = fmax(kern, fabs(ya[i] - eq) / T);
            a = fmax(a, fabs(ya[i] - ex) / (act + T));
            wr.simd = fmax(wr.simd, fabs((double)ya[i] - ys[i]) / (2 * T));
        }
        if (avx512) {
            kern = fmax(kern, fabs(y5[i] - eq) / T);
            a = fmax(a, fabs(y5[i] - ex) / (act + T));
            wr.simd512 = fmax(wr.simd512, fabs((double)y5[i] - ys[i]) / (2 * T));
        }
        wr.kern = fmax(wr.kern, kern);
        wr.act = fmax(wr.act, a);
        const double rel = absum > 0 ? fabs(ys[i] - ex) / absum : 0;
        wr.rel_max = fmax(wr.rel_max, rel);
        wr.rel_sq += rel * rel;
    }
    printf("{\"tensor\": \"%s\", \"type\": \"%s\", \"cols\": %lld, \"rows\": %lld, \"avx2\": %s, "
           "\"avx512\": %s, \"simd\": %.4g, \"simd512\": %.4g, \"kern\": %.4g, \"act\": %.4g, "
           "\"rel_max\": %.4g, \"rel_rms\": %.4g, \"batch_bitexact\": %s}\n",
           name, mt_dtype_name(t), (long long)n, (long long)rows, avx2 ? "true" : "false",
           avx512 ? "true" : "false", wr.simd, wr.simd512, wr.kern, wr.act, wr.rel_max,
           sqrt(wr.rel_sq / (double)rows), bitexact ? "true" : "false");
done:
    free(x), free(wf), free(wa), free(xh), free(step), free(ys), free(ya), free(y5), free(yb),
        free(xq), free(w0);
    return st;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: qdot_check FILE.gguf TENSOR...\n");
        return 1;
    }
    mt_gguf *g = NULL;
    mt_status st = mt_gguf_open(argv[1], &g);
    if (!st) {
        for (int i = 2; !st && i < argc; i++) st = check(g, argv[i], 1000 + (uint64_t)i);
        mt_gguf_close(g);
    }
    if (st) {
        fprintf(stderr, "qdot_check: %s\n", mt_last_error());
        return 1;
    }
    return 0;
}
