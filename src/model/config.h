/* Architecture hyper-parameters. Per-architecture differences are data here, so one
 * forward pass serves llama, qwen2 and gemma3. */
#ifndef MT_MODEL_CONFIG_H
#define MT_MODEL_CONFIG_H

#include "core/status.h"

#define MT_MAX_LAYERS 512

typedef enum { MT_ARCH_LLAMA = 0, MT_ARCH_QWEN2, MT_ARCH_GEMMA3 } mt_arch;
typedef enum { MT_ACT_SILU = 0, MT_ACT_GELU_TANH } mt_act;
/* NORM rotates adjacent pairs (x0,x1); NEOX rotates halves (x_i, x_{i+d/2}). llama.cpp's
 * converter permutes llama Q/K weights into NORM order, HF checkpoints use NEOX. */
typedef enum { MT_ROPE_NORM = 0, MT_ROPE_NEOX } mt_rope_style;

typedef struct {
    mt_arch arch;
    int n_vocab;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;
    int n_ff;
    int n_ctx_train;
    float norm_eps;
    float rope_base;       /* global (full-attention) layers */
    float rope_base_local; /* sliding-window layers */
    float rope_scale;      /* linear position scaling of global layers (1 = none) */
    mt_rope_style rope_style;
    int sliding_window; /* keys within this many positions (incl. self); 0 = none */
    unsigned char layer_local[MT_MAX_LAYERS]; /* 1: layer uses the sliding window */
    int qkv_bias;
    int qk_norm;
    int post_norms; /* gemma: norms after attention and after the MLP */
    int tied_embeddings;
    int norm_plus_one;   /* gemma stores RMSNorm weights as w with scale (1 + w) */
    float embd_scale;    /* 1 = none; gemma: sqrt(n_embd) */
    float attn_scale;    /* multiplier on q.k */
    float final_softcap; /* 0 = none */
    float attn_softcap;  /* 0 = none */
    mt_act act;
} mt_model_config;

const char *mt_arch_name(mt_arch a);
/* Maps "llama", "mistral", "qwen2", "gemma3"/"gemma3_text" to an arch. */
mt_status mt_arch_parse(const char *name, mt_arch *out);
/* Whether layer l uses the sliding window. */
int mt_config_layer_is_local(const mt_model_config *c, int layer);
/* Marks every `period`-th layer global and the others local (Gemma 3's 5:1 pattern). */
void mt_config_set_sliding_period(mt_model_config *c, int period);
/* Sets the per-architecture behaviour flags (activation, norms, biases) from arch. */
void mt_config_set_arch_defaults(mt_model_config *c);
/* Checks the numbers are consistent (heads divide, dims positive). */
mt_status mt_config_validate(const mt_model_config *c);

#endif
