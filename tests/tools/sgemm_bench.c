/* Micro-benchmark of mt_sgemm (a tool, not a test): for each shape, the BLAS sgemm and
 * meteor's own AVX-512 GEMM on one thread, GFLOP/s, best of five runs of >= SECONDS.
 *   sgemm_bench [SECONDS]                    shapes of SmolLM2 training at 512 tokens
 *   sgemm_bench SECONDS TA TB M N K          one shape */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/rng.h"
#include "kernels/sgemm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int ta, tb, m, n, k;
    const char *what;
} shape;

static double time_one(const shape *s, const float *a, const float *b, float *c, double secs) {
    const int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        int iters = 0;
        const double t0 = now();
        double t;
        do {
            mt_sgemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f, c, s->n);
            iters++;
        } while ((t = now() - t0) < secs);
        if (t / iters < best) best = t / iters;
    }
    return 2.0 * s->m * s->n * s->k / best * 1e-9;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 0.2;
    shape one, shapes[] = {
                   {0, 1, 512, 1536, 576, "gate/up fwd (X·Wᵀ)"},
                   {0, 1, 512, 576, 1536, "down fwd"},
                   {0, 1, 512, 576, 576, "q/o fwd"},
                   {0, 0, 512, 1536, 576, "dX = dY·W (gate/up)"},
                   {1, 0, 576, 1536, 512, "dW = Xᵀ·dY"},
                   {0, 1, 512, 512, 64, "attention Q·Kᵀ"},
                   {0, 0, 512, 64, 512, "attention P·V"},
                   {1, 0, 512, 64, 512, "attention dV = Pᵀ·dO"},
                   {0, 1, 512, 2048, 576, "LM head slab"},
               };
    int n_shapes = (int)(sizeof shapes / sizeof *shapes);
    shape *list = shapes;
    if (argc == 7) {
        one = (shape){atoi(argv[2]), atoi(argv[3]), atoi(argv[4]),
                      atoi(argv[5]), atoi(argv[6]), "given"};
        list = &one;
        n_shapes = 1;
    }
    mt_rng rng;
    mt_rng_seed(&rng, 1);
    printf("%-22s %5s %5s %5s  %9s %9s  ratio\n", "shape", "M", "N", "K", "BLAS", "AVX-512");
    for (int i = 0; i < n_shapes; i++) {
        const shape *s = &list[i];
        float *a = malloc(sizeof(float) * s->m * s->k), *b = malloc(sizeof(float) * s->k * s->n);
        float *c = malloc(sizeof(float) * s->m * s->n);
        if (!a || !b || !c) return 1;
        for (int j = 0; j < s->m * s->k; j++) a[j] = (float)mt_rng_uniform(&rng) - 0.5f;
        for (int j = 0; j < s->k * s->n; j++) b[j] = (float)mt_rng_uniform(&rng) - 0.5f;
        mt_sgemm_set_impl(MT_SGEMM_BLAS);
        const double g_blas = time_one(s, a, b, c, secs);
        double g_own = 0;
        if (mt_sgemm_set_impl(MT_SGEMM_AVX512) == 0) g_own = time_one(s, a, b, c, secs);
        printf("%-22s %5d %5d %5d  %9.1f %9.1f  %.2fx\n", s->what, s->m, s->n, s->k, g_blas, g_own,
               g_own / g_blas);
        free(a), free(b), free(c);
    }
    return 0;
}
