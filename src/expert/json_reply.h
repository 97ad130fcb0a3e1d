/* Model replies that should be JSON, read tolerantly, and a small JSON-Schema checker.
 *
 * Models wrap JSON in ```json fences, put prose before it, or stop mid-object; the parser
 * finds the first balanced top-level {...} (string and escape aware) that parses, trying
 * fenced blocks first, and forgives trailing commas. The checker covers the subset of JSON
 * Schema meteor's own schemas use: type (one name or a list), properties, required,
 * additionalProperties: false, enum, const, minimum/maximum (and the exclusive forms),
 * items, minItems/maxItems, minLength/maxLength. Other keywords are ignored, so a schema
 * using them is checked less strictly, never wrongly rejected. */
#ifndef MT_EXPERT_JSON_REPLY_H
#define MT_EXPERT_JSON_REPLY_H

#include <cjson/cJSON.h>

#include "core/status.h"

/* Finds and parses the JSON object in a reply. *out (free with cJSON_Delete) on MT_OK;
 * MT_ERR_FORMAT with the reason (mt_last_error) when there is none. */
mt_status mt_json_reply_parse(const char *text, cJSON **out);

/* MT_OK when value conforms to schema; MT_ERR_FORMAT with the reason, naming the
 * offending path ("$.hints[1]: expected string, got number"). */
mt_status mt_json_schema_check(const cJSON *schema, const cJSON *value);

#endif
