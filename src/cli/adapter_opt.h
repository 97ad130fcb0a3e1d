/* --adapter DIR for the verbs that run a model (generate, chat): a PEFT adapter loaded
 * onto the model and attached, so every forward pass includes it. */
#ifndef MT_CLI_ADAPTER_OPT_H
#define MT_CLI_ADAPTER_OPT_H

#include "core/status.h"
#include "model/lora.h"
#include "model/model.h"

/* Loads the PEFT adapter in dir for m (q/k rows put in m's order, so it works on a llama
 * GGUF as on the Hugging Face folder) and attaches it. On success *out owns the adapter:
 * free it with mt_lora_free once m is no longer run (before or after freeing m). On
 * failure m is unchanged and the message names the folder. */
mt_status mt_model_apply_adapter(mt_model *m, const char *dir, mt_lora **out);

#endif
