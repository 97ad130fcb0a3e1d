/* Format-specific model loaders behind mt_model_load. */
#ifndef MT_MODEL_LOAD_H
#define MT_MODEL_LOAD_H

#include "model/model.h"

mt_status mt_model_load_gguf(const char *path, mt_model **out);
mt_status mt_model_load_hf(const char *dir, mt_model **out);

#endif
