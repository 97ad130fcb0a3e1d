/* Domain questions into the run store: read from JSON (an array) or JSONL, in METEOR's raw
 * format ({"title", "question_content", optional "reference_answer" or "answer",
 * optional "category"}) or the generic one ({"question", optional "answer",
 * "category"}); every record checked (a bad one fails the import naming file:line and the
 * field, and nothing is stored); duplicates dropped (same normalised title and content);
 * then a seeded train/test split drawn per question from its id, so adding questions later
 * never moves an earlier one to the other split. */
#ifndef MT_PIPELINE_QUESTIONS_H
#define MT_PIPELINE_QUESTIONS_H

#include <stdint.h>

#include "store/store.h"

typedef struct {
    int read;       /* records in the file */
    int added;      /* new questions stored */
    int duplicates; /* already present (in the file or the store) */
} mt_import_stats;

mt_status mt_questions_import(mt_store *s, const char *path, mt_import_stats *st);

/* Gives every question without a split one: "test" with probability test_fraction,
 * decided by a hash of (seed, id). The seed and fraction are recorded in the store; a
 * later call with other values is refused (the test split must never leak into
 * training). */
mt_status mt_questions_split(mt_store *s, uint64_t seed, double test_fraction);

/* The stable id of a question: the first 16 hex digits of SHA-256 over its title and
 * content with whitespace runs collapsed and ends trimmed. */
void mt_question_id(const char *title, const char *content, char out[17]);

#endif
