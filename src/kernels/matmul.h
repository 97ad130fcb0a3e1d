/* Y = X · Wᵀ for weights of any supported type, threaded with OpenMP. Weights are
 * dequantised a block of rows at a time into per-thread scratch, never as a whole. */
#ifndef MT_KERNELS_MATMUL_H
#define MT_KERNELS_MATMUL_H

#include "core/status.h"
#include "kernels/dtype.h"

/* Sets the threads used by every kernel (0 = all cores). BLAS runs single-threaded
 * inside our threads so the two never oversubscribe the cores. */
void mt_kernels_set_threads(int n);
int mt_kernels_threads(void);

/* Outside precise mode every product goes through the row-dot kernels of qdot.h, or a
 * weight's packed copy (qpack.h), for any token count: quantised rows with activations
 * quantised to 8 bits per token, as llama.cpp does (fast, but not bit-equal to the f32
 * path), float rows with f32 activations; a token gets the same bits however many are
 * computed with it. Precise mode (the default; training relies on it) keeps f32
 * activations and dequantises into the f32 GEMM, F16/BF16 rows taking the row-dot
 * kernels for up to MT_QDOT_MAX_TOKENS tokens; generation turns it off unless asked to
 * keep it. */
#define MT_QDOT_MAX_TOKENS 16
void mt_kernels_set_precise(int on);
int mt_kernels_precise(void);

/* w: [cols x rows] (ne[0] = cols). x: n rows of cols floats. y: n rows of `rows` floats. */
mt_status mt_matmul(const mt_tensor *w, const float *x, int n, float *y);

/* y[i] = x·w[i]ᵀ for up to MT_MATMUL_MAX_WEIGHTS weights that read the same x (q/k/v,
 * gate/up), of any types (float and quantised rows may mix), each result as mt_matmul
 * gives it. In decoding they share one activation quantisation per layout and one
 * parallel pass over all their rows. */
#define MT_MATMUL_MAX_WEIGHTS 4
mt_status mt_matmul_multi(int nw, const mt_tensor *const *w, const float *x, int n,
                          float *const *y);

/* f32 GEMM, C = alpha·op(A)·op(B) + beta·C (row-major; trans_* select transposes),
 * split over the kernel threads by rows of C. */
void mt_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);

/* C = alpha·A·Bᵀ + beta·C (row-major, A m x k, B n x k) with every element one mt_dot of a
 * row of A and a row of B: a row of C does not depend on how many rows are computed
 * together, which OpenBLAS's GEMM does not promise. For thin products (a LoRA branch at
 * generation time). */
void mt_gemm_nt_rowwise(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                        int ldb, float beta, float *c, int ldc);

/* Backward of mt_matmul with respect to x: dx[n x cols] (+)= dy[n x rows]·W.
 * accumulate = 0 overwrites dx. */
mt_status mt_matmul_dx(const mt_tensor *w, const float *dy, int n, float *dx, int accumulate);

/* Dequantises row r of an embedding table into out[ne[0]]. */
void mt_embedding_row(const mt_tensor *w, int64_t r, float *out);

#endif
