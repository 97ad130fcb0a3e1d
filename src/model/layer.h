/* One transformer block, forward, shared by inference (KV cache, scratch activations)
 * and training (every activation kept for the backward pass). */
#ifndef MT_MODEL_LAYER_H
#define MT_MODEL_LAYER_H

#include "kernels/attention.h"
#include "model/model.h"

/* Where the n tokens of a pass sit. Token t's key/value row is row[t] (row0 + t when row
 * is NULL); it attends to rows [first[t], its row] (narrowed by a sliding window) and is
 * rotated for position pos[t]. Inference: one sequence continuing a cache, or one token
 * per sequence of a multi-slot cache. Training: several sequences laid end to end, each
 * starting at position 0, so padding never enters any computation. */
typedef struct {
    int n;
    int row0;
    const int *pos;
    const int *first;
    const int *row;
} mt_layout;

static inline int mt_layout_row(const mt_layout *lay, int t) {
    return lay->row ? lay->row[t] : lay->row0 + t;
}

/* A run of tokens [t0, t1) with consecutive rows whose keys start at row `first`. */
typedef struct {
    int t0, t1, first;
} mt_attn_seg;

/* Queries per attention call: bounds the score scratch to MT_ATTN_QBLOCK x keys. */
#define MT_ATTN_QBLOCK 256

/* Grows a per-thread scratch buffer to at least need floats (contents not kept).
 * Returns 0 when memory runs out; *p is then NULL and *cap 0. */
int mt_scratch_reserve(float **p, size_t *cap, size_t need);

/* Runs fn(ctx, task, scratch) for task = 0 .. tasks-1 over the kernel threads, dynamically
 * scheduled, each thread with a float scratch of its own that fn grows with
 * mt_scratch_reserve. fn returns 0, or -1 when memory runs out; then the remaining tasks
 * are skipped and MT_ERR_NOMEM ("out of memory in <what>") comes back. */
typedef struct {
    float *p;
    size_t cap;
} mt_scratch;
typedef int (*mt_task_fn)(const void *ctx, int task, mt_scratch *scratch);
mt_status mt_run_tasks(int tasks, mt_task_fn fn, const void *ctx, const char *what);

/* Splits a layout into its sequences; *out is malloc'ed, returns the count (-1: no memory). */
int mt_attn_segments(const mt_layout *lay, mt_attn_seg **out);
/* Shape of the attention of queries [q0, q1) of segment sg in a block (local: sliding). */

void mt_attn_block_shape(const mt_model_config *c, int local, const mt_layout *lay,
                         const mt_attn_seg *sg, int q0, int q1, mt_attn_shape *out);

/* Activations of one block for n tokens. Pointers the caller leaves NULL are not kept:
 * q0/k0 (projections before QK-norm) and lora_h are only needed for training. */
typedef struct {
    float *xn1;                  /* [n x embd] attention input after norm */
    float *q0, *k0;              /* [n x q_dim], [n x kv_dim] before QK-norm/RoPE (optional) */
    float *q, *k, *v;            /* after QK-norm and RoPE */
    float *att;                  /* [n x q_dim] attention output, input of the O projection */
    float *o;                    /* [n x embd] O projection, before the post-attention norm */
    float *x_mid;                /* [n x embd] residual after attention */
    float *xn2;                  /* [n x embd] MLP input after norm */
    float *gate, *up, *act;      /* [n x ff]; act = f(gate)·up */
    float *dn;                   /* [n x embd] down projection, before the post-MLP norm */
    float *lora_h[MT_LIN_COUNT]; /* [n x rank] LoRA hidden states (optional) */
    float *lora_x[MT_LIN_COUNT]; /* LoRA branch inputs after dropout (NULL: no dropout) */
    uint64_t drop_key;           /* dropout stream of this block in this pass */
} mt_layer_acts;

/* Key of the dropout mask of module r in a block whose acts carry key. */
static inline uint64_t mt_layer_drop_key(const mt_layer_acts *a, mt_lin_role r) {
    return a->drop_key * 31u + (uint64_t)r + 1u;
}

/* Key/value rows of one layer: floats, or IEEE halves (uint16_t) when f16 (outside
 * precise mode: decoding attention is bound by reading them). With slot_rows = 0 a row
 * holds every KV head (a training step's own rows, [row][n_head_kv * head_dim]); a KV
 * cache keeps each slot's rows of slot_rows positions head by head,
 * [slot][head][position][head_dim], so a decoding task streams one contiguous block per
 * head instead of a slice of every row. */
typedef struct {
    void *k, *v;
    int f16;
    int slot_rows, n_head_kv, head_dim;
} mt_kv_rows;

/* Element offset of (row, KV head) in kv: rows as the layout numbers them (slot * slot_rows
 * + position for a cache). */
static inline size_t mt_kv_at(const mt_kv_rows *kv, int row, int head) {
    const size_t hd = (size_t)kv->head_dim;
    if (!kv->slot_rows) return ((size_t)row * kv->n_head_kv + head) * hd;
    const size_t slot = (size_t)(row / kv->slot_rows), pos = (size_t)(row % kv->slot_rows);
    return ((slot * kv->n_head_kv + head) * kv->slot_rows + pos) * hd;
}

/* Elements between consecutive rows of one head. */
static inline int mt_kv_row_stride(const mt_kv_rows *kv) {
    return kv->slot_rows ? kv->head_dim : kv->n_head_kv * kv->head_dim;
}

/* Runs block l: x_out = block(x_in). kv holds the key/value rows the layout indexes (the
 * KV cache for inference; training passes NULL and the acts' own k/v are used). x_out
 * may alias x_in and x_mid. */
mt_status mt_layer_forward(const mt_model *m, int l, const mt_layout *lay, mt_layer_acts *a,
                           const float *x_in, float *x_out, const mt_kv_rows *kv);

/* Final norm + output projection for `count` rows of x (softcapped when configured). */
mt_status mt_output_logits(const mt_model *m, const float *x, int count, float *xn, float *logits);

/* Embeds tokens (with the architecture's embedding scale). */
mt_status mt_embed_tokens(const mt_model *m, const int32_t *tokens, int n, float *x);

#endif
