/* Binding weight tensors to model slots, shared by the GGUF and safetensors loaders:
 * each format supplies a name lookup, the binder knows names, shapes and fix-ups. */
#ifndef MT_MODEL_BIND_H
#define MT_MODEL_BIND_H

#include "model/model.h"

typedef enum { MT_NAMES_GGUF = 0, MT_NAMES_HF } mt_naming;

typedef struct {
    void *src;
    /* 1: found (out filled), 0: absent, -1: present but unusable (error recorded). */
    int (*lookup)(void *src, const char *name, mt_tensor *out);
    mt_naming naming;
    int shift_norms; /* add 1 to (1 + w)-style norm weights stored without the shift */
} mt_binder;

mt_status mt_model_bind(mt_model *m, const mt_binder *b);

#endif
