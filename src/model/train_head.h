/* The output head of a training step, vocabulary slab by vocabulary slab with an online
 * softmax (train_head.c): the output matrix is dequantised once per call and no
 * [rows x vocab] logits are held. */
#ifndef MT_MODEL_TRAIN_HEAD_H
#define MT_MODEL_TRAIN_HEAD_H

#include <stdint.h>

#include "core/status.h"
#include "model/model.h"

/* For n rows of normed final hidden states xn (n x n_embd) and their targets tgt (each in
 * [0, n_vocab)): lse[r], the log-sum-exp of row r's logits (after the soft cap, if the
 * model has one), and lt[r], its target's logit, so log p(target) = lt[r] - lse[r]. With
 * dxn (n x n_embd), also the gradient of coef[r] * log p(target) with respect to xn,
 * written there. MT_ERR_NOMEM when the scratch cannot be had. */
mt_status mt_head_online(const mt_model *m, const float *xn, const int32_t *tgt, int n, float *lse,
                         float *lt, float *dxn, const float *coef);

#endif
