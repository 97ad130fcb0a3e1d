/* The local expert: a (larger) model run in this process on meteor's engine, no HTTP. All
 * requests of a batch with the same token limit and temperature decode together with
 * continuous batching; each samples with a seed drawn from its request hash, so a rerun
 * answers exactly as before. A request with a JSON schema decodes under it (infer/
 * constraint.h): every reply is a document the schema accepts, unless it runs out of
 * tokens first, which fails the request. */
#ifndef MT_EXPERT_LOCAL_H
#define MT_EXPERT_LOCAL_H

#include <stdint.h>

#include "expert/expert.h"

typedef struct {
    const char *model_path;
    const char *chat_template; /* NULL: detect */
    int threads;               /* 0: all cores */
    int slots;                 /* sequences decoded together */
    uint64_t seed;
} mt_local_opts;

mt_status mt_expert_local_new(const mt_local_opts *o, mt_expert **out);

#endif
