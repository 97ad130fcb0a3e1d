#include "pipeline/bootstrap.h"

#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/rng.h"

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, int n, double q) {
    const double pos = q * (n - 1);
    const int lo = (int)floor(pos);
    const int hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

mt_status mt_bootstrap_mean_ci(const double *v, int n, int resamples, uint64_t seed, double *lo,
                               double *hi) {
    if (n < 1 || resamples < 1)
        return mt_fail(MT_ERR_ARG, "a bootstrap needs at least one value and one resample");
    double *means = mt_calloc((size_t)resamples, sizeof *means);
    if (!means) return mt_fail(MT_ERR_NOMEM, "out of memory");
    mt_rng r;
    mt_rng_seed(&r, seed);
    for (int b = 0; b < resamples; b++) {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += v[mt_rng_next(&r) % (uint64_t)n];
        means[b] = sum / n;
    }
    qsort(means, (size_t)resamples, sizeof *means, cmp_double);
    *lo = percentile(means, resamples, 0.025);
    *hi = percentile(means, resamples, 0.975);
    free(means);
    return MT_OK;
}
