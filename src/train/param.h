/* A trainable tensor as the optimiser sees it: weights, gradient and AdamW moments side by
 * side, so a checkpoint of the optimiser is just the moments plus mt_adamw.step. */
#ifndef MT_TRAIN_PARAM_H
#define MT_TRAIN_PARAM_H

#include <stdint.h>

typedef struct {
    const char *name; /* for logs and checkpoints; may be NULL */
    float *w;         /* weights, n floats */
    float *g;         /* gradient, n floats */
    float *m;         /* AdamW first moment, n floats, zero before the first step */
    float *v;         /* AdamW second moment, n floats, zero before the first step */
    int64_t n;
    int decay; /* 0 excludes the tensor from weight decay (norms, biases: the caller decides) */
} mt_param;

#endif
