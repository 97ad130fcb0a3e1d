#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kernels/matmul.h"
#include "model/layer.h"

static size_t elem_size(const mt_kv_cache *kv) {
    return kv->f16 ? sizeof(uint16_t) : sizeof(float);
}

/* Layer l's rows. */
static mt_kv_rows layer_rows(const mt_kv_cache *kv, int l) {
    const size_t at = (size_t)l * kv->n_slots * kv->n_ctx * kv->kv_dim * elem_size(kv);
    return (mt_kv_rows){.k = (char *)kv->k + at,
                        .v = (char *)kv->v + at,
                        .f16 = kv->f16,
                        .slot_rows = kv->n_ctx,
                        .n_head_kv = kv->n_head_kv,
                        .head_dim = kv->kv_dim / kv->n_head_kv};
}

mt_status mt_kv_cache_init_slots(mt_kv_cache *kv, const mt_model_config *c, int n_slots,
                                 int n_ctx) {
    memset(kv, 0, sizeof *kv);
    if (n_ctx <= 0 || n_slots <= 0)
        return mt_fail(MT_ERR_ARG, "context size and slots must be positive (got %d, %d)", n_ctx,
                       n_slots);
    kv->n_ctx = n_ctx;
    kv->n_slots = n_slots;
    kv->n_layer = c->n_layer;
    kv->kv_dim = c->n_head_kv * c->head_dim;
    kv->n_head_kv = c->n_head_kv;
    kv->f16 = !mt_kernels_precise();
    const size_t n = (size_t)c->n_layer * (size_t)n_slots * (size_t)n_ctx * (size_t)kv->kv_dim;
    kv->k = mt_calloc(n, elem_size(kv));
    kv->v = kv->k ? mt_calloc(n, elem_size(kv)) : NULL;
    if (!kv->v) {
        mt_kv_cache_free(kv);
        return MT_ERR_NOMEM;
    }
    return MT_OK;
}

mt_status mt_kv_cache_init(mt_kv_cache *kv, const mt_model_config *c, int n_ctx) {
    return mt_kv_cache_init_slots(kv, c, 1, n_ctx);
}

void mt_kv_cache_copy(mt_kv_cache *kv, int src, int dst, int from, int to) {
    if (src == dst || to <= from) return;
    const size_t es = elem_size(kv);
    for (int l = 0; l < kv->n_layer; l++) {
        const mt_kv_rows r = layer_rows(kv, l);
        const size_t bytes = (size_t)(to - from) * r.head_dim * es;
        for (int h = 0; h < kv->n_head_kv; h++) { /* a head's positions are contiguous */
            const size_t s = mt_kv_at(&r, src * kv->n_ctx + from, h) * es;
            const size_t d = mt_kv_at(&r, dst * kv->n_ctx + from, h) * es;
            memcpy((char *)r.k + d, (char *)r.k + s, bytes);
            memcpy((char *)r.v + d, (char *)r.v + s, bytes);
        }
    }
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
    int *pos, *first, *row;
    float *block; /* one allocation backs every buffer */
} scratch;

static mt_status scratch_alloc(scratch *s, const mt_model_config *c, int n) {
    const size_t d = c->n_embd, qd = (size_t)c->n_head * c->head_dim;
    const size_t kvd = (size_t)c->n_head_kv * c->head_dim, ff = c->n_ff;
    const size_t total = (size_t)n * (4 * d + 2 * qd + 2 * kvd + 3 * ff);
    memset(s, 0, sizeof *s);
    s->block = mt_calloc(total, sizeof(float));
    s->pos = mt_calloc((size_t)n, sizeof *s->pos);
    s->first = mt_calloc((size_t)n, sizeof *s->first);
    s->row = mt_calloc((size_t)n, sizeof *s->row);
    if (!s->block || !s->pos || !s->first || !s->row) {
        free(s->block);
        free(s->pos);
        free(s->first);
        free(s->row);
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
    return MT_OK;
}

static void scratch_free(scratch *s) {
    free(s->row);
    free(s->block);
    free(s->pos);
    free(s->first);
}

mt_status mt_forward_slots(const mt_model *m, mt_kv_cache *kv, const int32_t *tokens,
                           const int *slot, const int *pos, int n, float *logits, int all_logits) {
    if (n <= 0) return mt_fail(MT_ERR_ARG, "forward pass needs at least one token");
    for (int t = 0; t < n; t++) {
        if (slot[t] < 0 || slot[t] >= kv->n_slots)
            return mt_fail(MT_ERR_ARG, "KV slot %d out of range (%d slots)", slot[t], kv->n_slots);
        if (pos[t] < 0 || pos[t] >= kv->n_ctx)
            return mt_fail(MT_ERR_ARG, "context full: position %d exceeds the context size %d",
                           pos[t], kv->n_ctx);
    }
    scratch s;
    mt_status st = scratch_alloc(&s, &m->cfg, n);
    if (st) return st;
    for (int t = 0; t < n; t++) {
        s.pos[t] = pos[t];
        s.first[t] = slot[t] * kv->n_ctx;
        s.row[t] = s.first[t] + pos[t];
    }
    const mt_layout lay = {.n = n, .pos = s.pos, .first = s.first, .row = s.row};
    if ((st = mt_embed_tokens(m, tokens, n, s.x))) goto done;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const mt_kv_rows rows = layer_rows(kv, l);
        if ((st = mt_layer_forward(m, l, &lay, &s.a, s.x, s.x, &rows))) goto done;
    }
    const size_t d = (size_t)m->cfg.n_embd;
    if (all_logits == MT_LOGITS_RUN_LAST) {
        /* the runs' last rows, moved to the front in order (row k <= t, so in place) */
        int k = 0;
        for (int t = 0; t < n; t++)
            if (t == n - 1 || slot[t + 1] != slot[t])
                memmove(s.x + (size_t)k++ * d, s.x + (size_t)t * d, d * sizeof *s.x);
        st = mt_output_logits(m, s.x, k, s.a.xn1, logits);
    } else {
        const int first = all_logits == MT_LOGITS_ALL ? 0 : n - 1;
        st = mt_output_logits(m, s.x + (size_t)first * d, n - first, s.a.xn1, logits);
    }
done:
    scratch_free(&s);
    return st;
}

mt_status mt_forward(const mt_model *m, mt_kv_cache *kv, const int32_t *tokens, int n,
                     float *logits, int all_logits) {
    if (n <= 0) return mt_fail(MT_ERR_ARG, "forward pass needs at least one token");
    int *slot = mt_calloc((size_t)n, sizeof *slot), *pos = mt_calloc((size_t)n, sizeof *pos);
    mt_status st = (!slot || !pos) ? MT_ERR_NOMEM : MT_OK;
    for (int t = 0; !st && t < n; t++) pos[t] = kv->n_past + t;
    if (!st) st = mt_forward_slots(m, kv, tokens, slot, pos, n, logits, all_logits);
    if (!st) kv->n_past += n;
    free(slot);
    free(pos);
    return st;
}
