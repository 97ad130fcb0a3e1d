/* Row kernels of beam search over the vocabulary: log-softmax and top-k selection. */
#ifndef MT_KERNELS_TOPK_H
#define MT_KERNELS_TOPK_H

#include <stdint.h>

/* x[i] -= log(sum_j exp(x[j])) in place; returns that log-sum-exp. -inf entries stay
 * -inf; a row with no finite entry becomes all -inf (and returns -inf). */
float mt_log_softmax(float *x, int n);

/* Writes the min(k, n) largest values of x and their indices, largest first. Equal values
 * keep the lower index first (as an argmax that takes the first maximum); NaN ranks below
 * every number. Returns the number written. */
int mt_topk(const float *x, int n, int k, int32_t *idx, float *val);

/* The min(k, n) largest log-softmax values of the logits x (x unchanged) and their
 * indices, ordered as mt_topk orders them: the top-k of a log-softmax is the top-k of its
 * logits, so only the selected entries are normalised. Returns the number written. */
int mt_topk_log_softmax(const float *x, int n, int k, int32_t *idx, float *val);

#endif
