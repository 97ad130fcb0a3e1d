#include "model/bind.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "kernels/dequant.h"

typedef enum {
    R_ATTN_NORM,
    R_WQ,
    R_WK,
    R_WV,
    R_WO,
    R_BQ,
    R_BK,
    R_BV,
    R_Q_NORM,
    R_K_NORM,
    R_POST_ATTN_NORM,
    R_FFN_NORM,
    R_W_GATE,
    R_W_UP,
    R_W_DOWN,
    R_POST_FFN_NORM,
    R_COUNT
} role;

/* GGUF names (llama.cpp) and Hugging Face names per layer role. */
static const char *const gguf_names[R_COUNT] = {
    "attn_norm.weight",
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "attn_q.bias",
    "attn_k.bias",
    "attn_v.bias",
    "attn_q_norm.weight",
    "attn_k_norm.weight",
    "post_attention_norm.weight",
    "ffn_norm.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
    "post_ffw_norm.weight",
};
static const char *const hf_names[R_COUNT] = {
    "input_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.k_proj.bias",
    "self_attn.v_proj.bias",
    "self_attn.q_norm.weight",
    "self_attn.k_norm.weight",
    "post_attention_layernorm.weight",
    "pre_feedforward_layernorm.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
    "post_feedforward_layernorm.weight",
};

static void layer_name(const mt_model *m, const mt_binder *b, role r, int layer, char *buf,
                       size_t cap) {
    if (b->naming == MT_NAMES_GGUF) {
        snprintf(buf, cap, "blk.%d.%s", layer, gguf_names[r]);
        return;
    }
    const char *n = hf_names[r];
    /* Llama-style HF checkpoints call the pre-MLP norm post_attention_layernorm. */
    if (r == R_FFN_NORM && !m->cfg.post_norms) n = hf_names[R_POST_ATTN_NORM];
    snprintf(buf, cap, "model.layers.%d.%s", layer, n);
}

static mt_status want(const mt_binder *b, const char *name, int required, mt_tensor *out,
                      int *found) {
    int r = b->lookup(b->src, name, out);
    if (r < 0) return MT_ERR_UNSUPPORTED;
    if (r == 0 && required) return mt_fail(MT_ERR_FORMAT, "missing tensor '%s'", name);
    if (found) *found = r;
    return MT_OK;
}

static mt_status check_shape(const char *name, const mt_tensor *t, int64_t ne0, int64_t ne1) {
    int64_t got1 = t->n_dims >= 2 ? t->ne[1] : 1;
    int extra = 0;
    for (int i = 2; i < t->n_dims; i++) extra |= t->ne[i] != 1;
    if (t->ne[0] != ne0 || got1 != ne1 || extra)
        return mt_fail(MT_ERR_FORMAT, "tensor '%s' has shape [%lld x %lld], expected [%lld x %lld]",
                       name, (long long)t->ne[0], (long long)got1, (long long)ne0, (long long)ne1);
    return MT_OK;
}

static mt_status keep_owned(mt_model *m, float *p) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? m->cap_owned * 2 : 64;
        float **grown = realloc(m->owned, (size_t)cap * sizeof *grown);
        if (!grown) return mt_fail(MT_ERR_NOMEM, "out of memory binding weights");
        m->owned = grown;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return MT_OK;
}

/* Copies a 1-D weight to f32, applying the norm shift where the format needs it. */
static mt_status bind_vector(mt_model *m, const mt_binder *b, const char *name, int64_t n,
                             int required, int is_norm, const float **out) {
    mt_tensor t;
    int found = 0;
    *out = NULL;
    mt_status s = want(b, name, required, &t, &found);
    if (s != MT_OK || !found) return s;
    if ((s = check_shape(name, &t, n, 1)) != MT_OK) return s;
    float *v = mt_calloc((size_t)n, sizeof *v);
    if (!v) return MT_ERR_NOMEM;
    mt_dequantize(t.type, t.data, v, n);
    if (is_norm && b->shift_norms)
        for (int64_t i = 0; i < n; i++) v[i] += 1.0f;
    if ((s = keep_owned(m, v)) != MT_OK) {
        free(v);
        return s;
    }
    *out = v;
    return MT_OK;
}

static mt_status bind_matrix(const mt_binder *b, const char *name, int64_t ne0, int64_t ne1,
                             mt_tensor *out) {
    mt_status s = want(b, name, 1, out, NULL);
    if (s != MT_OK) return s;
    return check_shape(name, out, ne0, ne1);
}

static mt_status bind_layer(mt_model *m, const mt_binder *b, int l) {
    const mt_model_config *c = &m->cfg;
    mt_layer *L = &m->layers[l];
    const int64_t q_dim = (int64_t)c->n_head * c->head_dim;
    const int64_t kv_dim = (int64_t)c->n_head_kv * c->head_dim;
    char n[160];
    mt_status s;
#define NAME(r) (layer_name(m, b, (r), l, n, sizeof n), n)
    if ((s = bind_vector(m, b, NAME(R_ATTN_NORM), c->n_embd, 1, 1, &L->attn_norm))) return s;
    if ((s = bind_matrix(b, NAME(R_WQ), c->n_embd, q_dim, &L->lin[MT_LIN_Q].w))) return s;
    if ((s = bind_matrix(b, NAME(R_WK), c->n_embd, kv_dim, &L->lin[MT_LIN_K].w))) return s;
    if ((s = bind_matrix(b, NAME(R_WV), c->n_embd, kv_dim, &L->lin[MT_LIN_V].w))) return s;
    if ((s = bind_matrix(b, NAME(R_WO), q_dim, c->n_embd, &L->lin[MT_LIN_O].w))) return s;
    if (c->qkv_bias) {
        if ((s = bind_vector(m, b, NAME(R_BQ), q_dim, 1, 0, &L->bq))) return s;
        if ((s = bind_vector(m, b, NAME(R_BK), kv_dim, 1, 0, &L->bk))) return s;
        if ((s = bind_vector(m, b, NAME(R_BV), kv_dim, 1, 0, &L->bv))) return s;
    }
    if (c->qk_norm) {
        if ((s = bind_vector(m, b, NAME(R_Q_NORM), c->head_dim, 1, 1, &L->q_norm))) return s;
        if ((s = bind_vector(m, b, NAME(R_K_NORM), c->head_dim, 1, 1, &L->k_norm))) return s;
    }
    if (c->post_norms) {
        if ((s = bind_vector(m, b, NAME(R_POST_ATTN_NORM), c->n_embd, 1, 1, &L->post_attn_norm)))
            return s;
        if ((s = bind_vector(m, b, NAME(R_POST_FFN_NORM), c->n_embd, 1, 1, &L->post_ffn_norm)))
            return s;
    }
    if ((s = bind_vector(m, b, NAME(R_FFN_NORM), c->n_embd, 1, 1, &L->ffn_norm))) return s;
    if ((s = bind_matrix(b, NAME(R_W_GATE), c->n_embd, c->n_ff, &L->lin[MT_LIN_GATE].w))) return s;
    if ((s = bind_matrix(b, NAME(R_W_UP), c->n_embd, c->n_ff, &L->lin[MT_LIN_UP].w))) return s;
    if ((s = bind_matrix(b, NAME(R_W_DOWN), c->n_ff, c->n_embd, &L->lin[MT_LIN_DOWN].w))) return s;
#undef NAME
    return MT_OK;
}

mt_status mt_model_bind(mt_model *m, const mt_binder *b) {
    const mt_model_config *c = &m->cfg;
    const int hf = b->naming == MT_NAMES_HF;
    mt_status s;
    const char *embd = hf ? "model.embed_tokens.weight" : "token_embd.weight";
    if ((s = bind_matrix(b, embd, c->n_embd, c->n_vocab, &m->tok_embd))) return s;
    const char *norm = hf ? "model.norm.weight" : "output_norm.weight";
    if ((s = bind_vector(m, b, norm, c->n_embd, 1, 1, &m->output_norm))) return s;
    const char *out_name = hf ? "lm_head.weight" : "output.weight";
    int found = 0;
    if ((s = want(b, out_name, 0, &m->output, &found))) return s;
    /* A file without an output matrix ties it to the embedding, whatever the config says. */
    if (!found || c->tied_embeddings) {
        m->output = m->tok_embd;
        m->cfg.tied_embeddings = 1;
    } else if ((s = check_shape(out_name, &m->output, c->n_embd, c->n_vocab))) {
        return s;
    }
    m->layers = mt_calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return MT_ERR_NOMEM;
    for (int l = 0; l < c->n_layer; l++)
        if ((s = bind_layer(m, b, l))) return s;
    return MT_OK;
}
