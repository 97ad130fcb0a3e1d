#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "model/layer.h"

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

/* Scratch activations for n tokens, reused by every layer: inference keeps nothing. */
typedef struct {
    mt_layer_acts a;
    float *x;
    int *pos, *first;
    float *block; /* one allocation backs every buffer */
} scratch;

static mt_status scratch_alloc(scratch *s, const mt_model_config *c, int n, int row0) {
    const size_t d = c->n_embd, qd = (size_t)c->n_head * c->head_dim;
    const size_t kvd = (size_t)c->n_head_kv * c->head_dim, ff = c->n_ff;
    const size_t total = (size_t)n * (4 * d + 2 * qd + 2 * kvd + 3 * ff);
    memset(s, 0, sizeof *s);
    s->block = mt_calloc(total, sizeof(float));
    s->pos = mt_calloc((size_t)n, sizeof *s->pos);
    s->first = mt_calloc((size_t)n, sizeof *s->first);
    if (!s->block || !s->pos || !s->first) {
        free(s->block);
        free(s->pos);
        free(s->first);
        return MT_ERR_NOMEM;
    }
    float *p = s->block;
    s->x = p, p += n * d;
    s->a.xn1 = p, p += n * d;
    s->a.o = p, p += n * d;
    s->a.xn2 = p, p += n * d;
    s->a.q = p, p += n * qd;
    s->a.att = p, p += n * qd;
    s->a.k = p, p += n * kvd;
    s->a.v = p, p += n * kvd;
    s->a.gate = p, p += n * ff;
    s->a.up = p, p += n * ff;
    s->a.act = p;
    /* The residual stream is updated in place; the down projection reuses o. */
    s->a.x_mid = s->x;
    s->a.dn = s->a.o;
    for (int t = 0; t < n; t++) s->pos[t] = row0 + t;
    return MT_OK;
}

static void scratch_free(scratch *s) {
    free(s->block);
    free(s->pos);
    free(s->first);
}

mt_status mt_forward(const mt_model *m, mt_kv_cache *kv, const int32_t *tokens, int n,
                     float *logits, int all_logits) {
    if (n <= 0) return mt_fail(MT_ERR_ARG, "forward pass needs at least one token");
    if (kv->n_past + n > kv->n_ctx)
        return mt_fail(MT_ERR_ARG, "context full: %d + %d tokens exceed the context size %d",
                       kv->n_past, n, kv->n_ctx);
    scratch s;
    mt_status st = scratch_alloc(&s, &m->cfg, n, kv->n_past);
    if (st) return st;
    const mt_layout lay = {.n = n, .row0 = kv->n_past, .pos = s.pos, .first = s.first};
    const size_t per_layer = (size_t)kv->n_ctx * kv->kv_dim;
    if ((st = mt_embed_tokens(m, tokens, n, s.x))) goto done;
    for (int l = 0; l < m->cfg.n_layer; l++)
        if ((st = mt_layer_forward(m, l, &lay, &s.a, s.x, s.x, kv->k + l * per_layer,
                                   kv->v + l * per_layer)))
            goto done;
    const int first = all_logits ? 0 : n - 1;
    if ((st = mt_output_logits(m, s.x + (size_t)first * m->cfg.n_embd, n - first, s.a.xn1, logits)))
        goto done;
    kv->n_past += n;
done:
    scratch_free(&s);
    return st;
}
