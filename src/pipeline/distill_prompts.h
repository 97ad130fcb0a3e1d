/* The texts of phase 1's requests (DESIGN.md §2, in the spirit of the paper's prompts). */
#ifndef MT_PIPELINE_DISTILL_PROMPTS_H
#define MT_PIPELINE_DISTILL_PROMPTS_H

#include "store/store.h"

/* All malloc'ed; NULL when out of memory. */
char *mt_prompt_guideline(const mt_question *q);
/* grounded: include the question's reference answer (if any) as trusted material. */
char *mt_prompt_answer(const mt_question *q, const char *guideline /* NULL: ablation */,
                       int grounded);
char *mt_prompt_score(const mt_question *q, const char *answer);

extern const char *const mt_prompt_expert_system;
extern const char *const mt_prompt_judge_system;
extern const char *const mt_score_schema;

#endif
