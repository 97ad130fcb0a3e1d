/* Percentile bootstrap of a mean, written down exactly so that a test in another language
 * can replay it: the same seed gives the same resampling indices, so two calls with one
 * seed over paired values (a model's and its differences from the base, question by
 * question) resample the same questions. */
#ifndef MT_PIPELINE_BOOTSTRAP_H
#define MT_PIPELINE_BOOTSTRAP_H

#include <stdint.h>

#include "core/status.h"

/* The 95 % interval of the mean of v[0..n) (n >= 1, resamples >= 1):
 *  - one core/rng.h generator seeded with seed (mt_rng_seed: splitmix64 then
 *    xoshiro256**);
 *  - resample b = 0 .. resamples-1 draws n indices in order, index = mt_rng_next() % n,
 *    and takes the mean of v at them (summed in draw order, divided by n);
 *  - lo, hi: the 2.5th and 97.5th percentiles of the resample means, interpolated
 *    linearly between order statistics at position q * (resamples - 1) (numpy's default
 *    percentile). */
mt_status mt_bootstrap_mean_ci(const double *v, int n, int resamples, uint64_t seed, double *lo,
                               double *hi);

#endif
