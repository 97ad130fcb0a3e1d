#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

mt_status mt_kv_cache_init(mt_kv_cache *kv, const mt_model_config *c, int n_ctx) {
    memset(kv, 0, sizeof *kv);
    if (n_ctx <= 0) return mt_fail(MT_ERR_ARG, "context size must be positive (got %d)", n_ctx);
    kv->n_ctx = n_ctx;
    kv->n_layer = c->n_layer;
    kv->kv_dim = c->n_head_kv * c->head_dim;
    const size_t n = (size_t)c->n_layer * (size_t)n_ctx * (size_t)kv->kv_dim;
    kv->k = mt_calloc(n, sizeof *kv->k);
    kv->v = kv->k ? mt_calloc(n, sizeof *kv->v) : NULL;
    if (!kv->v) {
        mt_kv_cache_free(kv);
        return MT_ERR_NOMEM;
    }
    return MT_OK;
}

void mt_kv_cache_free(mt_kv_cache *kv) {
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

void mt_kv_cache_truncate(mt_kv_cache *kv, int pos) {
    if (pos < kv->n_past) kv->n_past = pos < 0 ? 0 : pos;
}

/* Activations for a chunk of n tokens. */
typedef struct {
    float *x, *xn, *q, *k, *v, *att, *o, *gate, *up;
} buffers;

static void buffers_free(buffers *b) {
    float **p[] = {&b->x, &b->xn, &b->q, &b->k, &b->v, &b->att, &b->o, &b->gate, &b->up};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++) {
        free(*p[i]);
        *p[i] = NULL;
    }
}

static mt_status buffers_alloc(buffers *b, const mt_model_config *c, int n) {
    const size_t q_dim = (size_t)c->n_head * c->head_dim,
                 kv_dim = (size_t)c->n_head_kv * c->head_dim;
    const size_t sizes[] = {c->n_embd, c->n_embd, q_dim,   kv_dim, kv_dim,
                            q_dim,     c->n_embd, c->n_ff, c->n_ff};
    float **p[] = {&b->x, &b->xn, &b->q, &b->k, &b->v, &b->att, &b->o, &b->gate, &b->up};
    memset(b, 0, sizeof *b);
    for (size_t i = 0; i < sizeof p / sizeof *p; i++) {
        *p[i] = mt_calloc((size_t)n * sizes[i], sizeof(float));
        if (!*p[i]) {
            buffers_free(b);
            return MT_ERR_NOMEM;
        }
    }
    return MT_OK;
}

static void norm_rows(float *out, const float *x, const float *w, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) mt_rmsnorm(out + (size_t)t * dim, x + (size_t)t * dim, w, dim, eps);
}

static void add_bias(float *y, const float *b, int n, int dim) {
    if (!b) return;
    for (int t = 0; t < n; t++) mt_add(y + (size_t)t * dim, b, dim);
}

/* Per-head QK-norm, then RoPE, for n tokens of n_heads heads. */
static void position_heads(const mt_model_config *c, float *h, const float *norm, int n,
                           int n_heads, int pos0, int local) {
    const float base = local ? c->rope_base_local : c->rope_base;
    const float inv_scale = local ? 1.0f : 1.0f / c->rope_scale;
    for (int t = 0; t < n; t++)
        for (int j = 0; j < n_heads; j++) {
            float *v = h + ((size_t)t * n_heads + j) * c->head_dim;
            if (norm) mt_rmsnorm(v, v, norm, c->head_dim, c->norm_eps);
            mt_rope(v, c->head_dim, pos0 + t, base, inv_scale, c->rope_style == MT_ROPE_NEOX);
        }
}

static mt_status attention(const mt_model *m, mt_kv_cache *kv, int l, buffers *b, int n, int pos0) {
    const mt_model_config *c = &m->cfg;
    const mt_layer *L = &m->layers[l];
    const int q_dim = c->n_head * c->head_dim, kv_dim = kv->kv_dim;
    const int local = mt_config_layer_is_local(c, l);
    mt_status s;
    norm_rows(b->xn, b->x, L->attn_norm, n, c->n_embd, c->norm_eps);
    if ((s = mt_matmul(&L->wq, b->xn, n, b->q))) return s;
    if ((s = mt_matmul(&L->wk, b->xn, n, b->k))) return s;
    if ((s = mt_matmul(&L->wv, b->xn, n, b->v))) return s;
    add_bias(b->q, L->bq, n, q_dim);
    add_bias(b->k, L->bk, n, kv_dim);
    add_bias(b->v, L->bv, n, kv_dim);
    position_heads(c, b->q, L->q_norm, n, c->n_head, pos0, local);
    position_heads(c, b->k, L->k_norm, n, c->n_head_kv, pos0, local);
    float *kc = kv->k + (size_t)l * kv->n_ctx * kv_dim,
          *vc = kv->v + (size_t)l * kv->n_ctx * kv_dim;
    memcpy(kc + (size_t)pos0 * kv_dim, b->k, (size_t)n * kv_dim * sizeof(float));
    memcpy(vc + (size_t)pos0 * kv_dim, b->v, (size_t)n * kv_dim * sizeof(float));
    const int group = c->n_head / c->n_head_kv;
    int failed = 0;
#pragma omp parallel num_threads(mt_kernels_threads())
    {
        float *scores = malloc((size_t)(pos0 + n) * sizeof *scores);
        if (!scores) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for collapse(2) schedule(static)
        for (int t = 0; t < n; t++)
            for (int h = 0; h < c->n_head; h++) {
                if (!scores) continue;
                const int p = pos0 + t;
                int first = local ? p - c->sliding_window + 1 : 0;
                if (first < 0) first = 0;
                const size_t off = (size_t)(h / group) * c->head_dim;
                mt_attend_head(b->att + (size_t)t * q_dim + (size_t)h * c->head_dim,
                               b->q + (size_t)t * q_dim + (size_t)h * c->head_dim, kc + off,
                               vc + off, kv_dim, first, p, c->head_dim, c->attn_scale,
                               c->attn_softcap, scores);
            }
        free(scores);
    }
    if (failed) return mt_fail(MT_ERR_NOMEM, "out of memory in attention");
    if ((s = mt_matmul(&L->wo, b->att, n, b->o))) return s;
    if (L->post_attn_norm) norm_rows(b->o, b->o, L->post_attn_norm, n, c->n_embd, c->norm_eps);
    mt_add(b->x, b->o, n * c->n_embd);
    return MT_OK;
}

static mt_status feed_forward(const mt_model *m, int l, buffers *b, int n) {
    const mt_model_config *c = &m->cfg;
    const mt_layer *L = &m->layers[l];
    mt_status s;
    norm_rows(b->xn, b->x, L->ffn_norm, n, c->n_embd, c->norm_eps);
    if ((s = mt_matmul(&L->w_gate, b->xn, n, b->gate))) return s;
    if ((s = mt_matmul(&L->w_up, b->xn, n, b->up))) return s;
    if (c->act == MT_ACT_GELU_TANH)
        mt_gelu_tanh_mul(b->gate, b->up, n * c->n_ff);
    else
        mt_silu_mul(b->gate, b->up, n * c->n_ff);
    if ((s = mt_matmul(&L->w_down, b->gate, n, b->o))) return s;
    if (L->post_ffn_norm) norm_rows(b->o, b->o, L->post_ffn_norm, n, c->n_embd, c->norm_eps);
    mt_add(b->x, b->o, n * c->n_embd);
    return MT_OK;
}

static mt_status embed(const mt_model *m, const int32_t *tokens, int n, float *x) {
    const mt_model_config *c = &m->cfg;
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->n_vocab)
            return mt_fail(MT_ERR_ARG, "token id %d is outside the vocabulary (0..%d)", tokens[t],
                           c->n_vocab - 1);
        mt_embedding_row(&m->tok_embd, tokens[t], x + (size_t)t * c->n_embd);
        if (c->embd_scale != 1.0f) mt_scale(x + (size_t)t * c->n_embd, c->embd_scale, c->n_embd);
    }
    return MT_OK;
}

static mt_status output_logits(const mt_model *m, buffers *b, int n, float *logits, int all) {
    const mt_model_config *c = &m->cfg;
    const int first = all ? 0 : n - 1, count = n - first;
    const float *x = b->x + (size_t)first * c->n_embd;
    norm_rows(b->xn, x, m->output_norm, count, c->n_embd, c->norm_eps);
    mt_status s = mt_matmul(&m->output, b->xn, count, logits);
    if (s == MT_OK && c->final_softcap > 0.0f)
        mt_softcap(logits, c->final_softcap, count * c->n_vocab);
    return s;
}

mt_status mt_forward(const mt_model *m, mt_kv_cache *kv, const int32_t *tokens, int n,
                     float *logits, int all_logits) {
    if (n <= 0) return mt_fail(MT_ERR_ARG, "forward pass needs at least one token");
    if (kv->n_past + n > kv->n_ctx)
        return mt_fail(MT_ERR_ARG, "context full: %d + %d tokens exceed the context size %d",
                       kv->n_past, n, kv->n_ctx);
    buffers b;
    mt_status s = buffers_alloc(&b, &m->cfg, n);
    if (s) return s;
    const int pos0 = kv->n_past;
    if ((s = embed(m, tokens, n, b.x))) goto done;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        if ((s = attention(m, kv, l, &b, n, pos0))) goto done;
        if ((s = feed_forward(m, l, &b, n))) goto done;
    }
    if ((s = output_logits(m, &b, n, logits, all_logits))) goto done;
    kv->n_past = pos0 + n;
done:
    buffers_free(&b);
    return s;
}
