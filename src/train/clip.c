/* Global-norm clipping and gradient-accumulation helpers. */
#include "train/optim.h"

#include <math.h>
#include <string.h>

#define PAR_MIN 65536
/* A tensor's squared norm is summed as this many fixed slices and then in slice order, so the
 * total does not depend on the thread count (resume must reproduce a run exactly). */
#define SLICES 64

static double sum_squares(const float *x, int64_t n) {
    double part[SLICES];
    const int64_t len = (n + SLICES - 1) / SLICES;
#pragma omp parallel for if (n >= PAR_MIN)
    for (int s = 0; s < SLICES; s++) {
        const int64_t lo = s * len < n ? s * len : n, hi = lo + len < n ? lo + len : n;
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t i = lo; i < hi; i++) acc += (double)x[i] * x[i];
        part[s] = acc;
    }
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

void mt_scale_grads(mt_param *params, int n_params, float scale) {
    for (int i = 0; i < n_params; i++) {
        float *restrict g = params[i].g;
        const int64_t n = params[i].n;
#pragma omp parallel for simd if (n >= PAR_MIN)
        for (int64_t j = 0; j < n; j++) g[j] *= scale;
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
