/* Single-threaded f32 GEMM for every matrix product meteor computes in f32 (training,
 * prompt processing, attention over prompts):
 *   C = alpha·op(A)·op(B) + beta·C, row-major, op = transpose when trans_* is set.
 * On CPUs with AVX-512 it runs meteor's own packed GEMM (blocked for L1/L2, a 12x32
 * register tile); elsewhere, or if its packing buffers cannot be allocated, it calls the
 * BLAS library's sgemm. The own kernel exists because the BLAS this project links
 * (Debian 12's OpenBLAS 0.3.21) runs its AVX2 kernels on CPUs newer than itself; see
 * docs/ARCHITECTURE.md. beta == 0 never reads C, as in BLAS. */
#ifndef MT_KERNELS_SGEMM_H
#define MT_KERNELS_SGEMM_H

void mt_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

typedef enum {
    MT_SGEMM_AUTO = 0, /* own AVX-512 kernel when the CPU has it, else BLAS */
    MT_SGEMM_BLAS = 1,
    MT_SGEMM_AVX512 = 2,
} mt_sgemm_impl;

/* Chooses the implementation for later calls (tests and benchmarks compare the two).
 * Returns 0, or -1 when AVX-512 was asked for on a CPU without it. Not while GEMMs run. */
int mt_sgemm_set_impl(mt_sgemm_impl impl);
/* MT_SGEMM_BLAS or MT_SGEMM_AVX512, never AUTO. Until set, AUTO, or BLAS when the
 * environment has METEOR_SGEMM=blas. */
mt_sgemm_impl mt_sgemm_get_impl(void);
int mt_sgemm_avx512_available(void);

#endif
