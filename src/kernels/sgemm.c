#include "kernels/sgemm.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/sgemm_internal.h"

int mt_sgemm_avx512_available(void) {
    return mt_cpu_avx512();
}

static atomic_int current = -1;

int mt_sgemm_set_impl(mt_sgemm_impl impl) {
    int v;
    switch (impl) {
    case MT_SGEMM_AUTO:
        v = mt_sgemm_avx512_available() ? MT_SGEMM_AVX512 : MT_SGEMM_BLAS;
        break;
    case MT_SGEMM_BLAS:
        v = MT_SGEMM_BLAS;
        break;
    case MT_SGEMM_AVX512:
        if (!mt_sgemm_avx512_available()) return -1;
        v = MT_SGEMM_AVX512;
        break;
    default:
        return -1;
    }
    atomic_store_explicit(&current, v, memory_order_relaxed);
    return 0;
}

mt_sgemm_impl mt_sgemm_get_impl(void) {
    int c = atomic_load_explicit(&current, memory_order_relaxed);
    if (c < 0) {
        /* METEOR_SGEMM=blas lets a benchmark or a user compare with (or fall back to) the
         * library's sgemm without rebuilding. */
        const char *env = getenv("METEOR_SGEMM");
        mt_sgemm_set_impl(env && !strcmp(env, "blas") ? MT_SGEMM_BLAS : MT_SGEMM_AUTO);
        c = atomic_load_explicit(&current, memory_order_relaxed);
    }
    return (mt_sgemm_impl)c;
}

static void blas_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                       int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* C = beta·C for the degenerate k == 0 (or alpha == 0) product, without reading C when
 * beta == 0. */
static void scale_c(int m, int n, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++) {
        float *row = c + (size_t)i * ldc;
        if (beta == 0.0f)
            memset(row, 0, (size_t)n * sizeof *row);
        else
            for (int j = 0; j < n; j++) row[j] *= beta;
    }
}

void mt_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    if (mt_sgemm_get_impl() == MT_SGEMM_AVX512 &&
        mt_sgemm_avx512(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == 0)
        return;
    blas_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
