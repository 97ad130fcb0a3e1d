/* LoRA adapters on any of the seven linear layers of each block: y += (alpha/r)·B·A·x.
 * Adapters are created fresh (PEFT's initialisation: A uniform, B zero) or loaded from
 * a PEFT folder, and attached to a model's linears. */
#ifndef MT_MODEL_LORA_H
#define MT_MODEL_LORA_H

#include <stdint.h>

#include "model/model.h"

typedef struct {
    int rank;
    float alpha;
    float dropout;
    unsigned targets; /* bit r set: role r (mt_lin_role) carries an adapter */
} mt_lora_config;

typedef struct {
    mt_lora_config cfg;
    int n_layer;
    float **a; /* [n_layer * MT_LIN_COUNT], each [rank x in] or NULL */
    float **b; /* each [out x rank] or NULL */
} mt_lora;

/* Parses "q,k,v,o,gate,up,down" (also PEFT's q_proj, ... names, or "all"). */
mt_status mt_lora_parse_targets(const char *list, unsigned *mask);
/* Comma-separated PEFT module names of a mask ("q_proj,v_proj"). */
void mt_lora_target_names(unsigned mask, char *buf, size_t cap);
const char *mt_lora_role_module(mt_lin_role r); /* "q_proj", ..., "down_proj" */

mt_status mt_lora_create(const mt_model *m, const mt_lora_config *cfg, uint64_t seed,
                         mt_lora **out);
/* Reads adapter_config.json + adapter_model.safetensors written by PEFT (or meteor). */
mt_status mt_lora_load_peft(const char *dir, const mt_model *m, mt_lora **out);
void mt_lora_free(mt_lora *l);

/* Points the model's linears at the adapter (the adapter must outlive the attachment). */
void mt_lora_attach(const mt_lora *l, mt_model *m);
void mt_lora_detach(mt_model *m);

static inline float **mt_lora_a_slot(const mt_lora *l, int layer, mt_lin_role r) {
    return &l->a[layer * MT_LIN_COUNT + r];
}
static inline float **mt_lora_b_slot(const mt_lora *l, int layer, mt_lin_role r) {
    return &l->b[layer * MT_LIN_COUNT + r];
}

#endif
