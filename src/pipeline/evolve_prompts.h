/* The text of phase 3's self-check: the model compares two answers to a question and
 * names the better one as a JSON object under a schema (decoded under the constraint, so
 * the reply is a document of the schema unless it was cut by the token limit). */
#ifndef MT_PIPELINE_EVOLVE_PROMPTS_H
#define MT_PIPELINE_EVOLVE_PROMPTS_H

#include "core/status.h"

/* malloc'ed; NULL when out of memory. question: the user turn. */
char *mt_prompt_compare(const char *question, const char *answer_a, const char *answer_b);

extern const char *const mt_compare_schema;

/* *a_better = 1 for {"better": "A"}, 0 for {"better": "B"}; MT_ERR_FORMAT for anything
 * else. */
mt_status mt_compare_parse(const char *json, int *a_better);

#endif
