#include "train/trainable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kernels/dequant.h"

static float *own(mt_trainable *t, size_t n) {
    if (t->n_owned == t->cap_owned) {
        int cap = t->cap_owned ? 2 * t->cap_owned : 256;
        float **p = realloc(t->owned, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        t->owned = p;
        t->cap_owned = cap;
    }
    float *buf = mt_calloc(n, sizeof *buf);
    if (buf) t->owned[t->n_owned++] = buf;
    return buf;
}

/* Registers w (n floats) as a parameter; returns its gradient buffer (NULL on error). */
static float *add_param(mt_trainable *t, const char *name, float *w, size_t n, int decay) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        mt_param *p = realloc(t->params, (size_t)cap * sizeof *p);
        char **names = realloc(t->names, (size_t)cap * sizeof *names);
        if (p) t->params = p;
        if (names) t->names = names;
        if (!p || !names) return NULL;
        t->cap = cap;
    }
    char *nm = mt_strdup(name);
    float *g = nm ? own(t, n) : NULL, *m = g ? own(t, n) : NULL, *v = m ? own(t, n) : NULL;
    if (!v) {
        free(nm);
        return NULL;
    }
    t->names[t->n] = nm;
    t->params[t->n++] =
        (mt_param){.name = nm, .w = w, .g = g, .m = m, .v = v, .n = (int64_t)n, .decay = decay};
    return g;
}

static mt_status grads_alloc(mt_trainable *t, const mt_model *m) {
    memset(t, 0, sizeof *t);
    t->grads.layers = mt_calloc((size_t)m->cfg.n_layer, sizeof *t->grads.layers);
    return t->grads.layers ? MT_OK : MT_ERR_NOMEM;
}

mt_status mt_trainable_lora(mt_trainable *t, const mt_model *m, mt_lora *lora) {
    mt_status s = grads_alloc(t, m);
    if (s) return s;
    char name[160];
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            float *a = *mt_lora_a_slot(lora, l, r), *b = *mt_lora_b_slot(lora, l, r);
            if (!a) continue;
            const mt_linear *lin = &m->layers[l].lin[r];
            const size_t na = (size_t)lora->cfg.rank * mt_linear_in(lin);
            const size_t nb = (size_t)mt_linear_out(lin) * lora->cfg.rank;
            snprintf(name, sizeof name, "layers.%d.%s.lora_A", l, mt_lora_role_module(r));
            if (!(t->grads.layers[l].lora_a[r] = add_param(t, name, a, na, 1))) goto nomem;
            snprintf(name, sizeof name, "layers.%d.%s.lora_B", l, mt_lora_role_module(r));
            if (!(t->grads.layers[l].lora_b[r] = add_param(t, name, b, nb, 1))) goto nomem;
        }
    return MT_OK;
nomem:
    mt_trainable_free(t);
    return mt_fail(MT_ERR_NOMEM, "out of memory setting up LoRA training");
}

/* Replaces a weight view by a trainable f32 copy and registers it. */
static float *train_matrix(mt_trainable *t, const char *name, mt_tensor *w) {
    const size_t n = (size_t)mt_tensor_nelements(w);
    float *buf = own(t, n);
    if (!buf) return NULL;
    mt_dequantize(w->type, w->data, buf, (int64_t)n);
    w->type = MT_F32;
    w->data = buf;
    return add_param(t, name, buf, n, 1);
}

static float *train_vector(mt_trainable *t, const char *name, const float *v, size_t n) {
    /* The model owns its vectors as f32 copies, so training may update them in place. */
    return v ? add_param(t, name, (float *)v, n, 0) : NULL;
}

mt_status mt_trainable_full(mt_trainable *t, mt_model *m) {
    mt_status s = grads_alloc(t, m);
    if (s) return s;
    const mt_model_config *c = &m->cfg;
    const size_t d = c->n_embd, qd = (size_t)c->n_head * c->head_dim,
                 kvd = (size_t)c->n_head_kv * c->head_dim;
    char name[160];
    const int tied = c->tied_embeddings;
    if (!(t->grads.tok_embd = train_matrix(t, "embed_tokens", &m->tok_embd))) goto nomem;
    if (tied)
        m->output = m->tok_embd;
    else if (!(t->grads.output = train_matrix(t, "lm_head", &m->output)))
        goto nomem;
    if (!(t->grads.output_norm = train_vector(t, "norm", m->output_norm, d))) goto nomem;
    for (int l = 0; l < c->n_layer; l++) {
        mt_layer *L = &m->layers[l];
        mt_layer_grads *g = &t->grads.layers[l];
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            snprintf(name, sizeof name, "layers.%d.%s", l, mt_lora_role_module(r));
            if (!(g->w[r] = train_matrix(t, name, &L->lin[r].w))) goto nomem;
        }
#define VEC(field, n)                                                                              \
    if (L->field) {                                                                                \
        snprintf(name, sizeof name, "layers.%d." #field, l);                                       \
        if (!(g->field = train_vector(t, name, L->field, (n)))) goto nomem;                        \
    }
        VEC(attn_norm, d)
        VEC(ffn_norm, d)
        VEC(post_attn_norm, d)
        VEC(post_ffn_norm, d)
        VEC(q_norm, (size_t)c->head_dim)
        VEC(k_norm, (size_t)c->head_dim)
        VEC(bq, qd)
        VEC(bk, kvd)
        VEC(bv, kvd)
#undef VEC
    }
    return MT_OK;
nomem:
    mt_trainable_free(t);
    return mt_fail(MT_ERR_NOMEM, "out of memory setting up full fine-tuning");
}

void mt_trainable_free(mt_trainable *t) {
    for (int i = 0; i < t->n_owned; i++) free(t->owned[i]);
    for (int i = 0; i < t->n; i++) free(t->names[i]);
    free(t->owned);
    free(t->names);
    free(t->params);
    free(t->grads.layers);
    memset(t, 0, sizeof *t);
}

long long mt_trainable_count(const mt_trainable *t) {
    long long n = 0;
    for (int i = 0; i < t->n; i++) n += t->params[i].n;
    return n;
}

const mt_param *mt_trainable_find(const mt_trainable *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->params[i].name, name)) return &t->params[i];
    return NULL;
}
