/* The transformer forward pass with a KV cache, one code path for every architecture. */
#ifndef MT_MODEL_FORWARD_H
#define MT_MODEL_FORWARD_H

#include <stdint.h>

#include "model/model.h"

/* Keys and values of every layer for n_slots independent sequences of up to n_ctx
 * positions each. Slot s, position p lives at row s * n_ctx + p. Elements are floats in
 * precise mode (mt_kernels_precise() when the cache is made), else IEEE halves, as
 * llama.cpp keeps them: decoding attention reads every cached row each step and is bound
 * by memory bandwidth, and halves are half the bytes. */
typedef struct {
    int n_ctx; /* positions per slot */
    int n_slots;
    int n_layer;
    int kv_dim;
    int n_head_kv;
    int n_past; /* positions filled in slot 0 (the single-sequence API) */
    int f16;    /* elements are uint16_t halves, else floats */
    void *k;    /* [n_layer][n_slots][n_head_kv][n_ctx][head_dim] */
    void *v;
} mt_kv_cache;

/* Both take the element type from the current precise mode. */
mt_status mt_kv_cache_init(mt_kv_cache *kv, const mt_model_config *c, int n_ctx);
mt_status mt_kv_cache_init_slots(mt_kv_cache *kv, const mt_model_config *c, int n_slots, int n_ctx);
/* Copies positions [from, to) of slot src into slot dst, in every layer. */
void mt_kv_cache_copy(mt_kv_cache *kv, int src, int dst, int from, int to);
void mt_kv_cache_free(mt_kv_cache *kv);
/* Forgets positions from `pos` on (for reusing a prompt prefix). */
void mt_kv_cache_truncate(mt_kv_cache *kv, int pos);

/* Feeds n tokens at positions kv->n_past.. and advances the cache. Writes the logits of
 * every token (n x n_vocab) when all_logits, else those of the last token only. */
mt_status mt_forward(const mt_model *m, mt_kv_cache *kv, const int32_t *tokens, int n,
                     float *logits, int all_logits);

/* Which tokens' logits a forward pass writes (its all_logits argument). */
enum {
    MT_LOGITS_LAST = 0,    /* the last token's */
    MT_LOGITS_ALL = 1,     /* every token's, n x n_vocab */
    MT_LOGITS_RUN_LAST = 2 /* the last token of each run of one slot's tokens, in order */
};

/* Feeds n tokens to any slots: token i goes to slot[i] at position pos[i] (tokens of one
 * slot must be consecutive with increasing positions, and each slot's earlier positions
 * filled). all_logits is one of MT_LOGITS_*. */
mt_status mt_forward_slots(const mt_model *m, mt_kv_cache *kv, const int32_t *tokens,
                           const int *slot, const int *pos, int n, float *logits, int all_logits);

#endif
