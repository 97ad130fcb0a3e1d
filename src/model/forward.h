/* The transformer forward pass with a KV cache, one code path for every architecture. */
#ifndef MT_MODEL_FORWARD_H
#define MT_MODEL_FORWARD_H

#include <stdint.h>

#include "model/model.h"

typedef struct {
    int n_ctx;
    int n_layer;
    int kv_dim;
    int n_past; /* positions filled */
    float *k;   /* [n_layer][n_ctx][kv_dim] */
    float *v;
} mt_kv_cache;

mt_status mt_kv_cache_init(mt_kv_cache *kv, const mt_model_config *c, int n_ctx);
void mt_kv_cache_free(mt_kv_cache *kv);
/* Forgets positions from `pos` on (for reusing a prompt prefix). */
void mt_kv_cache_truncate(mt_kv_cache *kv, int pos);

/* Feeds n tokens at positions kv->n_past.. and advances the cache. Writes the logits of
 * every token (n x n_vocab) when all_logits, else those of the last token only. */
mt_status mt_forward(const mt_model *m, mt_kv_cache *kv, const int32_t *tokens, int n,
                     float *logits, int all_logits);

#endif
