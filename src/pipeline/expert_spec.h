/* Which expert a pipeline talks to, as the user gave it (--expert local:MODEL, or
 * --expert-url/--expert-model with a key from the environment), made into an mt_expert
 * once the run store is open, so budgets count what earlier runs already spent. */
#ifndef MT_PIPELINE_EXPERT_SPEC_H
#define MT_PIPELINE_EXPERT_SPEC_H

#include "expert/expert.h"
#include "expert/local.h"
#include "expert/remote.h"
#include "store/store.h"

typedef struct {
    const char *local_model; /* set: the local expert */
    mt_local_opts local;
    mt_remote_opts remote;
    const char *key_env; /* environment variable holding the API key */
} mt_expert_spec;

/* The API key from the environment variable sp->key_env (*key = NULL when none is
 * named). A variable that is not set is an error naming it, unless the name looks like a
 * key itself; no message ever holds what was given then. */
mt_status mt_expert_api_key(const mt_expert_spec *sp, const char **key);

mt_status mt_expert_open(const mt_expert_spec *sp, mt_store *s, mt_expert **out);

#endif
