/* The AVX-512 GEMM behind mt_sgemm; not for use outside src/kernels/. */
#ifndef MT_KERNELS_SGEMM_INTERNAL_H
#define MT_KERNELS_SGEMM_INTERNAL_H

/* Same contract as mt_sgemm with m, n, k > 0. Returns -1, having touched nothing, when
 * its packing buffers cannot be allocated (the caller falls back to BLAS). */
int mt_sgemm_avx512(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc);

#endif
