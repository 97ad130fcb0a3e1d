/* Small deterministic PRNG (splitmix64 seeding + xoshiro256**): same seed, same stream,
 * on every platform, so sampled runs and tests are reproducible. */
#ifndef MT_CORE_RNG_H
#define MT_CORE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} mt_rng;

void mt_rng_seed(mt_rng *r, uint64_t seed);
uint64_t mt_rng_next(mt_rng *r);
/* Uniform in [0, 1). */
double mt_rng_uniform(mt_rng *r);

#endif
