/* Pieces of the Hugging Face tokenizer.json loader, split by the part of the file each
 * one reads. */
#ifndef MT_TOKENIZER_HF_INTERNAL_H
#define MT_TOKENIZER_HF_INTERNAL_H

#include <cjson/cJSON.h>

#include "tokenizer/tok_internal.h"

/* hf_model.c: "model" (vocabulary, merges, flags) and "added_tokens". */
mt_status mt_hf_load_model(mt_tokenizer *t, const cJSON *root);
/* hf_pipeline.c: "normalizer", "pre_tokenizer", "decoder", "post_processor". */
mt_status mt_hf_load_pipeline(mt_tokenizer *t, const cJSON *root);
/* hf_config.c: tokenizer_config.json, chat_template.jinja, config.json beside it. */
mt_status mt_hf_load_config(mt_tokenizer *t, const char *dir);

#endif
