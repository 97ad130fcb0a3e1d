#include "kernels/bitset.h"

#include <math.h>

void mt_bits_or(uint64_t *dst, const uint64_t *src, size_t words) {
#pragma omp simd
    for (size_t i = 0; i < words; i++) dst[i] |= src[i];
}

void mt_bits_mask_logits(float *logits, const uint64_t *bits, int n) {
    for (int w = 0; w * 64 < n; w++) {
        uint64_t keep = bits[w];
        if (keep == ~0ull) continue;
        const int lim = n - w * 64 < 64 ? n - w * 64 : 64;
        float *row = logits + (size_t)w * 64;
        for (int j = 0; j < lim; j++)
            if (!((keep >> j) & 1)) row[j] = -INFINITY;
    }
}

size_t mt_bits_count(const uint64_t *bits, int n) {
    size_t total = 0;
    for (int w = 0; w * 64 < n; w++) {
        uint64_t x = bits[w];
        if (n - w * 64 < 64) x &= (1ull << (n - w * 64)) - 1;
        total += (size_t)__builtin_popcountll(x);
    }
    return total;
}
