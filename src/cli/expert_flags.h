/* The expert's flags, shared by the verbs that talk to one (distill, refine): a local
 * model (--expert local:MODEL) or an OpenAI-compatible endpoint with its retry, budget
 * and price settings, made into an mt_expert_spec. */
#ifndef MT_CLI_EXPERT_FLAGS_H
#define MT_CLI_EXPERT_FLAGS_H

#include <stdint.h>

#include "cli/args.h"
#include "pipeline/expert_spec.h"

typedef struct {
    const char *expert, *url, *model, *key_env, *json_mode;
    int concurrency, retries, max_requests, expert_slots;
    float timeout, connect_timeout, backoff_base, backoff_max, cost_prompt, cost_completion,
        max_cost;
} mt_expert_flags;

#define MT_EXPERT_FLAG_COUNT 16

/* Defaults, and the option table entries into opts[MT_EXPERT_FLAG_COUNT]. */
void mt_expert_flags_init(mt_expert_flags *f, mt_opt *opts);

/* The verb's option table: head, the expert flags (defaults set, bound to f), then tail,
 * into opts (n_head + MT_EXPERT_FLAG_COUNT + n_tail entries); returns how many. */
int mt_expert_flags_table(mt_expert_flags *f, const mt_opt *head, int n_head, const mt_opt *tail,
                          int n_tail, mt_opt *opts);

/* The exit code of a verb that talks to an expert: 3 when a budget stopped it (rerun to
 * continue), non-zero with the error printed when it failed, else 0. */
int mt_expert_verb_exit(mt_status st);

/* The spec the flags describe. need_expert = 0 (a dry run) accepts no expert and skips the
 * API key check. */
mt_status mt_expert_flags_spec(const mt_expert_flags *f, int threads, uint64_t seed,
                               int need_expert, mt_expert_spec *sp);

#endif
