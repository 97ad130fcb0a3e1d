/* Row kernels over token masks (one bit per token id, 64 ids per word). */
#ifndef MT_KERNELS_BITSET_H
#define MT_KERNELS_BITSET_H

#include <stddef.h>
#include <stdint.h>

/* dst |= src over `words` words. */
void mt_bits_or(uint64_t *dst, const uint64_t *src, size_t words);
/* logits[i] = -INFINITY for every i < n whose bit is clear. */
void mt_bits_mask_logits(float *logits, const uint64_t *bits, int n);
/* Number of set bits among the first n. */
size_t mt_bits_count(const uint64_t *bits, int n);

#endif
