#include "model/config.h"

#include <math.h>
#include <string.h>

const char *mt_arch_name(mt_arch a) {
    switch (a) {
    case MT_ARCH_LLAMA:
        return "llama";
    case MT_ARCH_QWEN2:
        return "qwen2";
    case MT_ARCH_GEMMA3:
        return "gemma3";
    }
    return "unknown";
}

mt_status mt_arch_parse(const char *name, mt_arch *out) {
    if (!strcmp(name, "llama") || !strcmp(name, "mistral"))
        *out = MT_ARCH_LLAMA;
    else if (!strcmp(name, "qwen2"))
        *out = MT_ARCH_QWEN2;
    else if (!strcmp(name, "gemma3") || !strcmp(name, "gemma3_text"))
        *out = MT_ARCH_GEMMA3;
    else
        return mt_fail(MT_ERR_UNSUPPORTED,
                       "unknown architecture '%s' (supported: llama, mistral, qwen2, gemma3)",
                       name);
    return MT_OK;
}

int mt_config_layer_is_local(const mt_model_config *c, int layer) {
    return c->sliding_window > 0 && c->layer_local[layer];
}

void mt_config_set_sliding_period(mt_model_config *c, int period) {
    for (int l = 0; l < c->n_layer && l < MT_MAX_LAYERS; l++)
        c->layer_local[l] = period > 0 && (l + 1) % period != 0;
}

void mt_config_set_arch_defaults(mt_model_config *c) {
    c->act = MT_ACT_SILU;
    c->qkv_bias = 0;
    c->qk_norm = 0;
    c->post_norms = 0;
    c->norm_plus_one = 0;
    c->embd_scale = 1.0f;
    c->rope_scale = 1.0f;
    c->rope_style = MT_ROPE_NEOX;
    if (c->arch == MT_ARCH_QWEN2) c->qkv_bias = 1;
    if (c->arch == MT_ARCH_GEMMA3) {
        c->act = MT_ACT_GELU_TANH;
        c->qk_norm = 1;
        c->post_norms = 1;
        c->norm_plus_one = 1;
        c->tied_embeddings = 1;
        c->rope_base_local = 10000.0f;
    }
}

mt_status mt_config_validate(const mt_model_config *c) {
    if (c->n_vocab <= 0 || c->n_embd <= 0 || c->n_layer <= 0 || c->n_head <= 0 ||
        c->n_head_kv <= 0 || c->head_dim <= 0 || c->n_ff <= 0)
        return mt_fail(MT_ERR_FORMAT,
                       "model config has a missing or non-positive dimension (vocab %d, embd %d, "
                       "layers %d, heads %d/%d, head_dim %d, ff %d)",
                       c->n_vocab, c->n_embd, c->n_layer, c->n_head, c->n_head_kv, c->head_dim,
                       c->n_ff);
    if (c->n_layer > MT_MAX_LAYERS)
        return mt_fail(MT_ERR_UNSUPPORTED, "model has %d layers; at most %d are supported",
                       c->n_layer, MT_MAX_LAYERS);
    if (c->n_head % c->n_head_kv != 0)
        return mt_fail(MT_ERR_FORMAT, "attention heads (%d) not a multiple of KV heads (%d)",
                       c->n_head, c->n_head_kv);
    if (c->head_dim % 2 != 0)
        return mt_fail(MT_ERR_FORMAT, "head dimension %d is odd; RoPE needs pairs", c->head_dim);
    /* The readers check each number as they take it; this also holds configs built in
     * code. */
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return mt_fail(MT_ERR_FORMAT, "model config has norm epsilon %g; it must be > 0 and finite",
                       c->norm_eps);
    if (!(c->rope_base > 0) || !isfinite(c->rope_base) || !(c->rope_scale > 0) ||
        !isfinite(c->rope_scale) || !(c->rope_base_local >= 0) || !isfinite(c->rope_base_local))
        return mt_fail(MT_ERR_FORMAT,
                       "model config has RoPE base %g (local %g), scale %g; they must be > 0 and "
                       "finite",
                       c->rope_base, c->rope_base_local, c->rope_scale);
    if (!(c->final_softcap >= 0) || !isfinite(c->final_softcap) || !(c->attn_softcap >= 0) ||
        !isfinite(c->attn_softcap) || !(c->attn_scale > 0) || !isfinite(c->attn_scale))
        return mt_fail(MT_ERR_FORMAT, "model config has a negative or non-finite softcap or scale");
    if (c->sliding_window < 0)
        return mt_fail(MT_ERR_FORMAT, "model config has sliding window %d", c->sliding_window);
    return MT_OK;
}
