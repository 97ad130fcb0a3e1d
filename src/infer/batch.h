/* Batched generation with continuous batching: up to n_slots sequences decode together,
 * one token each per forward pass, every one with its own KV slot, position, sampler
 * and stop rules; a finished sequence frees its slot for the next waiting prompt. */
#ifndef MT_INFER_BATCH_H
#define MT_INFER_BATCH_H

#include "infer/generate.h"

typedef struct {
    const int32_t *prompt;
    int n_prompt;
    /* With own_seed, the item samples with p->sampling.seed + seed instead of + its index,
     * so a resumed job that batches the remaining items differently draws the same text. */
    int own_seed;
    uint64_t seed;
    /* The item's JSON constraint; NULL: the parameters' (which may be none). */
    const mt_json_constraint *constraint;
} mt_batch_item;

/* Called once per finished item, in completion order; returning non-zero aborts. */
typedef mt_status (*mt_batch_done_fn)(void *user, int index, const mt_gen_result *r);

typedef struct {
    int n_prompts;
    int n_generated;
    double seconds;
    /* the two phases of `seconds`: prefilling admitted prompts (and sampling their first
     * tokens), and decoding steps (one token for each active sequence per step) */
    long n_prompt_tokens;
    double prefill_seconds;
    long n_steps, n_step_tokens;
    double decode_seconds;
} mt_batch_stats;

/* Generates for every item with the same parameters (p->on_text is ignored). Item i samples
 * with seed p->sampling.seed + i (or + its own seed), so results do not depend on
 * scheduling. */
mt_status mt_generate_batch(const mt_model *m, const mt_tokenizer *tok, const mt_batch_item *items,
                            int n_items, const mt_gen_params *p, int n_slots, mt_batch_done_fn done,
                            void *user, mt_batch_stats *stats);

#endif
