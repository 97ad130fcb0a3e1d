#include "kernels/matmul.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#include "kernels/dequant.h"

static int n_threads = 0;

void mt_kernels_set_threads(int n) {
    n_threads = n > 0 ? n : omp_get_num_procs();
    openblas_set_num_threads(1);
    omp_set_num_threads(n_threads);
}

int mt_kernels_threads(void) {
    if (!n_threads) mt_kernels_set_threads(0);
    return n_threads;
}

void mt_embedding_row(const mt_tensor *w, int64_t r, float *out) {
    mt_dequantize_row(w, r, out);
}

/* Few tokens: each weight row is dequantised once into L1 and dotted with every token. */
static mt_status matmul_rows(const mt_tensor *w, const float *x, int n, float *y) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    int failed = 0;
#pragma omp parallel num_threads(mt_kernels_threads())
    {
        float *buf = malloc((size_t)cols * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!buf) continue;
            mt_dequantize_row(w, r, buf);
            for (int t = 0; t < n; t++)
                y[(int64_t)t * rows + r] = cblas_sdot((int)cols, buf, 1, x + (int64_t)t * cols, 1);
        }
        free(buf);
    }
    return failed ? mt_fail(MT_ERR_NOMEM, "out of memory in matmul") : MT_OK;
}

/* Many tokens: dequantise a slab of rows per thread and multiply it with BLAS. */
static mt_status matmul_slabs(const mt_tensor *w, const float *x, int n, float *y) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    int64_t slab = (256 * 1024) / cols;
    if (slab < 1) slab = 1;
    const int64_t n_slabs = (rows + slab - 1) / slab;
    int failed = 0;
#pragma omp parallel num_threads(mt_kernels_threads())
    {
        float *buf = malloc((size_t)(slab * cols) * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t s = 0; s < n_slabs; s++) {
            if (!buf) continue;
            const int64_t r0 = s * slab;
            const int64_t nr = r0 + slab <= rows ? slab : rows - r0;
            for (int64_t r = 0; r < nr; r++) mt_dequantize_row(w, r0 + r, buf + r * cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)nr, (int)cols, 1.0f, x,
                        (int)cols, buf, (int)cols, 0.0f, y + r0, (int)rows);
        }
        free(buf);
    }
    return failed ? mt_fail(MT_ERR_NOMEM, "out of memory in matmul") : MT_OK;
}

mt_status mt_matmul(const mt_tensor *w, const float *x, int n, float *y) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    if (w->type == MT_F32 && n > 1) {
        mt_kernels_threads();
        /* One big sgemm split by rows across our threads. */
        const int nt = mt_kernels_threads();
        const int64_t per = (rows + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; t++) {
            const int64_t r0 = t * per;
            if (r0 >= rows) continue;
            const int64_t nr = r0 + per <= rows ? per : rows - r0;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)nr, (int)cols, 1.0f, x,
                        (int)cols, (const float *)w->data + r0 * cols, (int)cols, 0.0f, y + r0,
                        (int)rows);
        }
        return MT_OK;
    }
    return n < 4 ? matmul_rows(w, x, n, y) : matmul_slabs(w, x, n, y);
}
