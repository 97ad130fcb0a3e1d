/* Training forward (activations kept on a tape) and backward pass over a batch of
 * sequences laid end to end. Gradients flow into whatever sinks the caller provides:
 * LoRA matrices, every weight (full fine-tuning), or both. */
#ifndef MT_MODEL_TRAIN_GRAPH_H
#define MT_MODEL_TRAIN_GRAPH_H

#include <stdint.h>

#include "model/layer.h"

/* Gradient sinks of one block; NULL = not trained. Matrices are [out x in] row-major. */
typedef struct {
    float *w[MT_LIN_COUNT];
    float *lora_a[MT_LIN_COUNT]; /* [rank x in] */
    float *lora_b[MT_LIN_COUNT]; /* [out x rank] */
    float *attn_norm, *ffn_norm, *post_attn_norm, *post_ffn_norm, *q_norm, *k_norm;
    float *bq, *bk, *bv;
} mt_layer_grads;

typedef struct {
    mt_layer_grads *layers; /* [n_layer] */
    float *tok_embd;        /* [vocab x embd]; receives the output's gradient when tied */
    float *output;          /* [vocab x embd] when untied */
    float *output_norm;
} mt_grads;

typedef struct mt_tape mt_tape;

/* Runs the forward pass over n_seqs sequences (tokens laid end to end, seq_start holds
 * n_seqs + 1 offsets) and keeps what the backward pass needs. checkpoint[l] != 0 keeps
 * only the layer's input and recomputes the rest during backward (NULL: keep all).
 * LoRA dropout (when the linears have one) draws its masks from dropout_seed. */
mt_status mt_train_forward(const mt_model *m, const int32_t *tokens, const int *seq_start,
                           int n_seqs, const unsigned char *checkpoint, uint64_t dropout_seed,
                           mt_tape **out);
void mt_tape_free(mt_tape *t);
int mt_tape_tokens(const mt_tape *t);

/* Pass 1 of the LM head: log-probability of targets[i] at row i (0 where targets[i] < 0),
 * computed in row chunks so the [tokens x vocab] matrix is never held. */
mt_status mt_head_logprobs(const mt_model *m, const mt_tape *t, const int32_t *targets,
                           float *logprobs);

/* Backward from per-row coefficients coef[i] = dLoss/dlogprob[i] through the head and
 * every layer into the gradient sinks. The tape is consumed (recomputed layers reuse
 * its scratch) but must still be freed. */
mt_status mt_train_backward(const mt_model *m, mt_tape *t, const int32_t *targets,
                            const float *coef, mt_grads *g);
/* The same, also writing what mt_head_logprobs would into logprobs, from the logits the
 * head's backward computes anyway: one LM-head pass fewer when coef does not depend on the
 * log-probabilities (SFT). */
mt_status mt_train_backward_lp(const mt_model *m, mt_tape *t, const int32_t *targets,
                               const float *coef, mt_grads *g, float *logprobs);

#endif
