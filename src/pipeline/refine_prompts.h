/* The texts of phase 2's requests (DESIGN.md §2): the model's attempt with its reasoning
 * steps, its revision after a rejected attempt, and the expert's verdict, a JSON object
 * under a schema, parsed strictly (an unparsable verdict is a failure, never a verdict). */
#ifndef MT_PIPELINE_REFINE_PROMPTS_H
#define MT_PIPELINE_REFINE_PROMPTS_H

#include "core/status.h"
#include "store/store.h"

#define MT_VERDICT_HINTS_MAX 3

typedef struct {
    int correct;
    char *feedback;
    char *hints[MT_VERDICT_HINTS_MAX];
    int n_hints;
} mt_verdict;

/* All malloc'ed; NULL when out of memory. */
char *mt_prompt_attempt(const mt_question *q);
char *mt_prompt_revision(const mt_question *q, const char *previous, const mt_verdict *v);
/* reference: the question's reference answer as the standard (NULL: none). */
char *mt_prompt_verdict(const mt_question *q, const char *attempt, int attempt_number,
                        int max_attempts, const char *reference);

extern const char *const mt_prompt_verdict_system;
extern const char *const mt_verdict_schema;

/* Parses a verdict reply; MT_ERR_FORMAT (naming what is wrong) for anything but an object
 * with "verdict" "correct" or "incorrect", a string "feedback" and an array of strings
 * "hints" (at most MT_VERDICT_HINTS_MAX are kept). */
mt_status mt_verdict_parse(const char *json, mt_verdict *out);
void mt_verdict_free(mt_verdict *v);

#endif
