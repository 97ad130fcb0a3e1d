/* Global-norm clipping and gradient-accumulation helpers. */
#include "train/optim.h"

#include <math.h>
#include <string.h>

#include "core/pool.h"

#define PAR_MIN 65536
/* A tensor's squared norm is summed as this many fixed slices and then in slice order, so the
 * total does not depend on the thread count (resume must reproduce a run exactly). */
#define SLICES 64

typedef struct {
    const float *x;
    int64_t n;
    double *part;
} squares_job;

static void squares_range(void *ctx, int64_t s0, int64_t s1) {
    const squares_job *j = ctx;
    const int64_t n = j->n, len = (n + SLICES - 1) / SLICES;
    for (int64_t s = s0; s < s1; s++) {
        const int64_t lo = s * len < n ? s * len : n, hi = lo + len < n ? lo + len : n;
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t i = lo; i < hi; i++) acc += (double)j->x[i] * j->x[i];
        j->part[s] = acc;
    }
}

static double sum_squares(const float *x, int64_t n) {
    double part[SLICES];
    squares_job j = {.x = x, .n = n, .part = part};
    if (n >= PAR_MIN)
        mt_pool_for(SLICES, 1, squares_range, &j);
    else
        squares_range(&j, 0, SLICES);
    double total = 0;
    for (int s = 0; s < SLICES; s++) total += part[s];
    return total;
}

double mt_grad_norm(const mt_param *params, int n_params) {
    double total = 0;
    for (int i = 0; i < n_params; i++)
        if (params[i].n > 0) total += sum_squares(params[i].g, params[i].n);
    return sqrt(total);
}

typedef struct {
    float *g;
    float scale;
} scale_job;

static void scale_range(void *ctx, int64_t i0, int64_t i1) {
    const scale_job *j = ctx;
    float *restrict g = j->g;
    const float scale = j->scale;
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) g[i] *= scale;
}

void mt_scale_grads(mt_param *params, int n_params, float scale) {
    for (int i = 0; i < n_params; i++) {
        scale_job j = {.g = params[i].g, .scale = scale};
        if (params[i].n >= PAR_MIN)
            mt_pool_for(params[i].n, PAR_MIN / 4, scale_range, &j);
        else
            scale_range(&j, 0, params[i].n);
    }
}

double mt_clip_grad_norm(mt_param *params, int n_params, double max_norm) {
    const double norm = mt_grad_norm(params, n_params);
    if (!(max_norm > 0) || !isfinite(norm)) return norm;
    /* torch computes the coefficient on float32 tensors. */
    const float coef = (float)max_norm / ((float)norm + 1e-6f);
    if (coef < 1.0f) mt_scale_grads(params, n_params, coef);
    return norm;
}

void mt_zero_grads(mt_param *params, int n_params) {
    /* memset, not a multiply by 0: a NaN left by a failed step must not survive. */
    for (int i = 0; i < n_params; i++)
        if (params[i].n > 0) memset(params[i].g, 0, (size_t)params[i].n * sizeof(float));
}

mt_status mt_grad_accum_finish(mt_param *params, int n_params, int accum_steps) {
    if (accum_steps < 1)
        return mt_fail(MT_ERR_ARG, "gradient accumulation: %d steps (need >= 1)", accum_steps);
    if (accum_steps > 1) mt_scale_grads(params, n_params, 1.0f / (float)accum_steps);
    return MT_OK;
}
