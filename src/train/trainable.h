/* The set of trained tensors: LoRA matrices, or every weight for full fine-tuning
 * (dequantised to f32 copies the model is re-pointed at). Each becomes an mt_param
 * with gradient and AdamW moments, and a gradient sink for the backward pass. */
#ifndef MT_TRAIN_TRAINABLE_H
#define MT_TRAIN_TRAINABLE_H

#include "model/lora.h"
#include "model/train_graph.h"
#include "train/param.h"

typedef struct {
    mt_param *params;
    int n, cap;
    mt_grads grads;
    float **owned; /* buffers allocated here */
    int n_owned, cap_owned;
    char **names;
} mt_trainable;

/* LoRA mode: the adapter (already attached to m) is trained, the base stays frozen. */
mt_status mt_trainable_lora(mt_trainable *t, const mt_model *m, mt_lora *lora);
/* Full mode: every weight of m becomes an f32 trainable copy. Norm and bias vectors
 * are excluded from weight decay. */
mt_status mt_trainable_full(mt_trainable *t, mt_model *m);
void mt_trainable_free(mt_trainable *t);
long long mt_trainable_count(const mt_trainable *t);
const mt_param *mt_trainable_find(const mt_trainable *t, const char *name);

#endif
