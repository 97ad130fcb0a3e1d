/* A linear layer y = x·Wᵀ with an optional LoRA branch s·(x·Aᵀ)·Bᵀ. The base weight is
 * any stored type (quantised bases are dequantised on the fly); full fine-tuning points
 * the base at a trainable f32 buffer. */
#ifndef MT_MODEL_LINEAR_H
#define MT_MODEL_LINEAR_H

#include <stdint.h>

#include "core/status.h"
#include "kernels/dtype.h"

typedef struct {
    mt_tensor w;    /* [in x out]: ne[0] = in */
    const float *a; /* LoRA A [rank x in], or NULL */
    const float *b; /* LoRA B [out x rank] */
    int rank;
    float scale;   /* alpha / rank */
    float dropout; /* LoRA dropout probability, applied only in training */
} mt_linear;

static inline int mt_linear_in(const mt_linear *l) {
    return (int)l->w.ne[0];
}
static inline int mt_linear_out(const mt_linear *l) {
    return (int)l->w.ne[1];
}

/* y[n x out] = x[n x in]·Wᵀ + scale·(x_lora·Aᵀ)·Bᵀ. x_lora is the LoRA branch's input
 * (x itself, or a dropped-out copy during training). h, when not NULL, receives
 * x_lora·Aᵀ [n x rank] for the backward pass. */
mt_status mt_linear_forward(const mt_linear *l, const float *x, const float *x_lora, int n,
                            float *y, float *h);

/* The same for nl (up to MT_MATMUL_MAX_WEIGHTS) linears that read one input x (q/k/v,
 * gate/up): x_lora[i], y[i], h[i] per linear. Their base products share one pass
 * (mt_matmul_multi); results equal nl calls of mt_linear_forward. */
mt_status mt_linear_forward_multi(int nl, const mt_linear *const *l, const float *x,
                                  const float *const *x_lora, int n, float *const *y,
                                  float *const *h);

/* Backward given dy [n x out]:
 *   dx (= or +=, per accumulate) dy·W + scale·(dy·B)·A
 *   gw += dyᵀ·x [out x in]            (when gw; full fine-tuning)
 *   ga += scale·(dy·B)ᵀ·x_lora [rank x in], gb += scale·dyᵀ·h [out x rank]  (when LoRA)
 * x_lora/h as given to mt_linear_forward; dh: scratch of n x rank. */
mt_status mt_linear_backward(const mt_linear *l, const float *x, const float *x_lora,
                             const float *h, const float *dy, int n, float *dx, int accumulate,
                             float *gw, float *ga, float *gb, float *dh, uint64_t drop_key);

#endif
