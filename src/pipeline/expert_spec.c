#include "pipeline/expert_spec.h"

#include <stdlib.h>

mt_status mt_expert_open(const mt_expert_spec *sp, mt_store *s, mt_expert **out) {
    *out = NULL;
    if (sp->local_model) {
        mt_local_opts lo = sp->local;
        lo.model_path = sp->local_model;
        return mt_expert_local_new(&lo, out);
    }
    if (!sp->remote.url)
        return mt_fail(
            MT_ERR_ARG,
            "no expert: pass --expert local:MODEL or --expert-url URL --expert-model NAME");
    mt_remote_opts ro = sp->remote;
    if (sp->key_env) {
        ro.api_key = getenv(sp->key_env);
        if (!ro.api_key || !*ro.api_key)
            return mt_fail(MT_ERR_ARG, "environment variable %s (the expert's API key) is not set",
                           sp->key_env);
    }
    mt_usage u;
    mt_status st = mt_store_usage(s, NULL, &u);
    if (st) return st;
    ro.spent_cost = u.cost;
    ro.spent_requests = u.attempts;
    return mt_expert_remote_new(&ro, out);
}
