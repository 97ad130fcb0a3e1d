/* Loading a trained PEFT adapter onto a model (--adapter, and between pipeline phases). */
#ifndef MT_PIPELINE_ADAPTER_H
#define MT_PIPELINE_ADAPTER_H

#include "infer/session.h"
#include "model/lora.h"
#include "model/model.h"

/* Loads the PEFT adapter in dir for m (q/k rows put in m's order, so it works on a llama
 * GGUF as on the Hugging Face folder) and attaches it. On success *out owns the adapter:
 * free it with mt_lora_free once m is no longer run (before or after freeing m). On
 * failure m is unchanged and the message names the folder. */
mt_status mt_model_apply_adapter(mt_model *m, const char *dir, mt_lora **out);

/* Loads a PEFT adapter folder onto the session's model (NULL: nothing to do). */
mt_status mt_session_apply_adapter(mt_session *s, const char *dir);

#endif
