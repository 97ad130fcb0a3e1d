/* Causal attention of one head over a block of queries, as BLAS matrix products:
 * S = scale·Q·Kᵀ (softcapped), masked, softmaxed row by row, O = P·V. Query i sits at
 * key position off + i and sees keys [max(0, off + i − window + 1), off + i]. */
#ifndef MT_KERNELS_ATTENTION_H
#define MT_KERNELS_ATTENTION_H

#include <stdint.h>

typedef struct {
    int n_q;                          /* queries */
    int n_k;                          /* keys (= off + n_q) */
    int hd;                           /* head dimension */
    int q_stride, k_stride, o_stride; /* elements between consecutive rows */
    float scale;
    float cap;  /* logit softcap, 0 = none */
    int window; /* sliding window in positions, 0 = none */
} mt_attn_shape;

/* out = attention(q, k, v); p: scratch of n_q x n_k floats, left holding the weights. */
void mt_attn_forward(const mt_attn_shape *s, const float *q, const float *k, const float *v,
                     float *out, float *p);

/* Decoding (s->n_q == 1): the `group` query heads that share one KV head, their queries
 * and outputs hd floats apart; K and V rows are read once for all of them. p: scratch of
 * group x n_k floats. */
void mt_attn_decode_group(const mt_attn_shape *s, int group, const float *q, const float *k,
                          const float *v, float *out, float *p);
/* The same over a cache of IEEE halves (rows of k_stride halves), converted in registers:
 * half the bytes of a float cache to read, which bounds decoding. */
void mt_attn_decode_group_f16(const mt_attn_shape *s, int group, const float *q, const uint16_t *k,
                              const uint16_t *v, float *out, float *p);

/* Given dout, writes dq (overwrites) and adds to dk, dv (rows of dk_stride floats). p and
 * dp: scratch of n_q x n_k; the weights are recomputed. */
void mt_attn_backward(const mt_attn_shape *s, const float *q, const float *k, const float *v,
                      const float *dout, float *dq, float *dk, float *dv, int dk_stride, float *p,
                      float *dp);

#endif
