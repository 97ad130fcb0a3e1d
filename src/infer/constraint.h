/* What a constrained sequence must write: a JSON document that a schema accepts.
 *
 * A constraint joins a compiled schema (infer/json_schema.h), the tokenizer's token index
 * and one mask cache for the two, so every sequence decoding under the same schema reuses
 * the masks the others computed. Sequences of one batch each take a constraint or none;
 * all of them run on the thread that steps the batch, as the cache requires. */
#ifndef MT_INFER_CONSTRAINT_H
#define MT_INFER_CONSTRAINT_H

#include <stddef.h>

#include "core/status.h"
#include "infer/grammar.h"
#include "infer/token_index.h"

typedef struct {
    mt_grammar *grammar;
    const mt_token_index *index; /* not owned: the session's */
    mt_gcache *cache;
} mt_json_constraint;

/* The schema of `{"type": "object"}`: any JSON object (OpenAI's json_object mode). */
#define MT_JSON_ANY_OBJECT_SCHEMA "{\"type\":\"object\"}"

/* Compiles schema_json (len bytes) for decoding with the tokenizer indexed by ix. */
mt_status mt_json_constraint_new(const char *schema_json, size_t len, const mt_token_index *ix,
                                 mt_json_constraint **out);
void mt_json_constraint_free(mt_json_constraint *c);

#endif
