/* GGUF metadata for a model read from a Hugging Face folder: the architecture keys
 * llama.cpp (and meteor's GGUF reader) expect, from meteor's parsed config. A setting
 * that a GGUF of the architecture cannot express is refused rather than dropped. */
#include <math.h>
#include <stdio.h>

#include "io/gguf_write.h"
#include "train/export_internal.h"

static mt_status set_u32(mt_gguf_writer *w, const char *arch, const char *key, uint32_t v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return mt_gguf_writer_set_u32(w, k, v);
}

static mt_status set_f32(mt_gguf_writer *w, const char *arch, const char *key, float v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return mt_gguf_writer_set_f32(w, k, v);
}

/* Gemma 3 files carry the local/global layer layout only as a period (every p-th layer
 * global); returns that period, or 0 if the layout is not periodic from layer 0. */
static int sliding_period(const mt_model_config *c) {
    for (int p = 1; p <= c->n_layer + 1; p++) {
        int ok = 1;
        for (int l = 0; l < c->n_layer && ok; l++) ok = c->layer_local[l] == ((l + 1) % p != 0);
        if (ok) return p;
    }
    return 0;
}

static mt_status check_expressible(const mt_model *m) {
    const mt_model_config *c = &m->cfg;
    const char *why = NULL;
    if (c->arch == MT_ARCH_LLAMA && m->layers[0].bq)
        why = "llama attention biases (a llama GGUF has none)";
    else if (fabsf(c->attn_scale * sqrtf((float)c->head_dim) - 1.0f) > 1e-6f)
        why = "a query scale other than 1/sqrt(head_dim) (query_pre_attn_scalar)";
    else if (c->arch == MT_ARCH_GEMMA3 && c->rope_base_local != 10000.0f)
        why = "a local RoPE base other than 10000";
    else if (c->arch == MT_ARCH_GEMMA3 && c->sliding_window && !sliding_period(c))
        why = "a sliding-window layer layout that is not periodic";
    if (why)
        return mt_fail(MT_ERR_UNSUPPORTED, "%s: the model has %s, which a GGUF cannot express",
                       m->path, why);
    return MT_OK;
}

static mt_status arch_keys(mt_gguf_writer *w, const mt_model *m) {
    const mt_model_config *c = &m->cfg;
    const char *a = mt_arch_name(c->arch);
    mt_status s = mt_gguf_writer_set_str(w, "general.architecture", a);
    if (!s && m->name) s = mt_gguf_writer_set_str(w, "general.name", m->name);
    if (!s) s = set_u32(w, a, "context_length", (uint32_t)c->n_ctx_train);
    if (!s) s = set_u32(w, a, "embedding_length", (uint32_t)c->n_embd);
    if (!s) s = set_u32(w, a, "block_count", (uint32_t)c->n_layer);
    if (!s) s = set_u32(w, a, "feed_forward_length", (uint32_t)c->n_ff);
    if (!s) s = set_u32(w, a, "attention.head_count", (uint32_t)c->n_head);
    if (!s) s = set_u32(w, a, "attention.head_count_kv", (uint32_t)c->n_head_kv);
    if (!s) s = set_u32(w, a, "attention.key_length", (uint32_t)c->head_dim);
    if (!s) s = set_u32(w, a, "attention.value_length", (uint32_t)c->head_dim);
    if (!s) s = set_u32(w, a, "rope.dimension_count", (uint32_t)c->head_dim);
    if (!s) s = set_u32(w, a, "vocab_size", (uint32_t)c->n_vocab);
    if (!s) s = set_f32(w, a, "attention.layer_norm_rms_epsilon", c->norm_eps);
    if (!s) s = set_f32(w, a, "rope.freq_base", c->rope_base);
    if (!s && c->rope_scale != 1.0f) {
        char k[128];
        snprintf(k, sizeof k, "%s.rope.scaling.type", a);
        s = mt_gguf_writer_set_str(w, k, "linear");
        if (!s) s = set_f32(w, a, "rope.scaling.factor", c->rope_scale);
    }
    if (!s && c->final_softcap) s = set_f32(w, a, "final_logit_softcapping", c->final_softcap);
    if (!s && c->attn_softcap) s = set_f32(w, a, "attn_logit_softcapping", c->attn_softcap);
    if (!s && c->arch == MT_ARCH_GEMMA3 && c->sliding_window) {
        s = set_u32(w, a, "attention.sliding_window", (uint32_t)c->sliding_window);
        if (!s) s = set_u32(w, a, "attention.sliding_window_pattern", (uint32_t)sliding_period(c));
    }
    return s;
}

mt_status mt_export_hf_metadata(struct mt_gguf_writer *w, const mt_model *m) {
    mt_status s = check_expressible(m);
    if (!s) s = arch_keys(w, m);
    if (!s) s = mt_export_hf_vocab(w, m);
    return s;
}
