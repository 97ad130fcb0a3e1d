/* sgemm_peak: the machine's measured single-precision BLAS matmul rate.
 *
 * usage: sgemm_peak M N K [REPS]
 * Times cblas_sgemm (row-major, C = A·B, A M×K, B K×N) REPS times after one warm-up call and
 * prints one line of JSON: {"m":..,"n":..,"k":..,"reps":..,"best_gflops":..,"median_gflops":..}.
 * The thread count is OpenBLAS's own (set OPENBLAS_NUM_THREADS). Built and run by
 * bench/train_bench.py; a benchmark, not a test. */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: sgemm_peak M N K [REPS]\n");
        return 2;
    }
    const int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]);
    const int reps = argc > 4 ? atoi(argv[4]) : 10;
    if (m <= 0 || n <= 0 || k <= 0 || reps <= 0 || reps > 1000) {
        fprintf(stderr, "sgemm_peak: sizes and REPS must be positive (REPS <= 1000)\n");
        return 2;
    }
    float *a = aligned_alloc(64, ((size_t)m * k * sizeof(float) + 63) / 64 * 64);
    float *b = aligned_alloc(64, ((size_t)k * n * sizeof(float) + 63) / 64 * 64);
    float *c = aligned_alloc(64, ((size_t)m * n * sizeof(float) + 63) / 64 * 64);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!a || !b || !c || !t) {
        fprintf(stderr, "sgemm_peak: out of memory\n");
        return 1;
    }
    unsigned s = 12345u; /* fixed LCG: values in [-0.5, 0.5) */
    for (size_t i = 0; i < (size_t)m * k; i++) s = s * 1664525u + 1013904223u, a[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < (size_t)k * n; i++) s = s * 1664525u + 1013904223u, b[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    for (int r = 0; r < reps; r++) {
        const double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    const double flops = 2.0 * m * n * k;
    printf("{\"m\":%d,\"n\":%d,\"k\":%d,\"reps\":%d,\"best_gflops\":%.2f,\"median_gflops\":%.2f,"
           "\"checksum\":%.6g}\n",
           m, n, k, reps, flops / t[0] * 1e-9, flops / t[reps / 2] * 1e-9, (double)c[(size_t)m * n / 2]);
    free(a), free(b), free(c), free(t);
    return 0;
}
