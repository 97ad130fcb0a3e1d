/* A loaded transformer: config + weight views into the mmap'ed file. Matrices stay in
 * their stored type (quantised, f16, ...); small vectors (norms, biases) are copied to
 * f32 with any format-specific fix-up applied once at load. */
#ifndef MT_MODEL_MODEL_H
#define MT_MODEL_MODEL_H

#include "core/status.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/dtype.h"
#include "model/config.h"
#include "model/linear.h"

/* The seven linear layers of a block, in the order LoRA target lists use. */
typedef enum {
    MT_LIN_Q = 0,
    MT_LIN_K,
    MT_LIN_V,
    MT_LIN_O,
    MT_LIN_GATE,
    MT_LIN_UP,
    MT_LIN_DOWN,
    MT_LIN_COUNT
} mt_lin_role;

typedef struct {
    const float *attn_norm;
    mt_linear lin[MT_LIN_COUNT];
    const float *bq, *bk, *bv; /* NULL without QKV bias */
    const float *q_norm, *k_norm;
    const float *post_attn_norm;
    const float *ffn_norm;
    const float *post_ffn_norm;
} mt_layer;

typedef enum { MT_FORMAT_GGUF = 1, MT_FORMAT_SAFETENSORS = 2 } mt_model_format;

typedef struct {
    mt_model_config cfg;
    mt_model_format format;
    char *path;
    char *name; /* general.name or folder name */
    mt_tensor tok_embd;
    mt_tensor output; /* == tok_embd when tied */
    const float *output_norm;
    mt_layer *layers;
    mt_gguf *gguf;
    mt_safetensors *st;
    float **owned; /* f32 copies of vectors, freed with the model */
    void *packed;  /* the weights' packed copies (model/pack.h), or NULL */
    int n_owned;
    int cap_owned;
} mt_model;

/* path: a .gguf file, or a Hugging Face folder with config.json + *.safetensors. */
mt_status mt_model_load(const char *path, mt_model **out);
void mt_model_free(mt_model *m);
/* Number of parameters (elements of every weight tensor, tied embeddings counted once). */
long long mt_model_param_count(const mt_model *m);

#endif
