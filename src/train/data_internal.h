/* Pieces of the training-data loader shared between its files. */
#ifndef MT_TRAIN_DATA_INTERNAL_H
#define MT_TRAIN_DATA_INTERNAL_H

#include <cjson/cJSON.h>

#include "train/data.h"

/* One JSONL record, validated. The const strings point into the parsed cJSON object. */
typedef struct {
    mt_data_kind kind;
    const char *system;            /* NULL when absent */
    char *user;                    /* malloc'ed: the question as the user turn */
    const char *answer;            /* SFT */
    const char *chosen, *rejected; /* preference */
} mt_data_record;

/* Validates a record object and picks its kind; errors read "path:line: ...". */
mt_status mt_data_record_parse(const cJSON *obj, const char *path, int line, mt_data_record *r);
void mt_data_record_clear(mt_data_record *r);

/* Renders and tokenises one (system?, user, answer) conversation into out (tokens
 * malloc'ed, n_prompt set, truncated = 0). */
mt_status mt_data_encode(const mt_tokenizer *tok, mt_chat_family fam, const char *system,
                         const char *user, const char *answer, mt_sft_example *out);

typedef enum { MT_FIT_KEPT, MT_FIT_TRUNCATED, MT_FIT_DROPPED } mt_fit;

/* What max_len (0: none) does to an example; truncation shortens e in place. */
mt_fit mt_data_fit_check(const mt_sft_example *e, int max_len);
void mt_data_fit_apply(mt_sft_example *e, int max_len);

#endif
