/* JSON Schema -> byte grammar (infer/grammar.h) for schema-constrained decoding.
 *
 * Supported: type (object, array, string, number, integer, boolean, null, or a list),
 * properties (emitted in the schema's order; optional ones may be skipped), required,
 * additionalProperties (false unless the schema says true or gives a schema; an object
 * schema without properties accepts any object), enum and const (any JSON values, written
 * in compact form), items, minItems/maxItems, minLength/maxLength (code points),
 * minimum/maximum and exclusiveMinimum/exclusiveMaximum for integers, anyOf, $ref to
 * "#" or any JSON pointer in the document ("#/$defs/x"), recursion, $defs/definitions.
 * Ignored annotations: title, description, $schema, $id, examples, default, $comment.
 * Any other keyword, a malformed schema, or one past the limits below fails with one
 * message naming the keyword and its JSON-pointer path in the schema.
 *
 * What the grammar emits:
 * - whitespace between lexemes: none, one space, or a newline followed by at most
 *   MT_JSON_WS_MAX_INDENT spaces or tabs; optional at the very start, never after the
 *   end of the document (so generation ends right after its last byte);
 * - numbers: at most MT_JSON_MAX_INT_DIGITS integer digits, MT_JSON_MAX_FRAC_DIGITS
 *   fraction digits and MT_JSON_MAX_EXP_DIGITS exponent digits; integers without bounds
 *   likewise; no leading zeros; integers never "-0";
 * - strings: any UTF-8 and JSON escape except \u0000 and surrogate escapes (so every
 *   output decodes cleanly); keys of additional properties hold no escapes and never
 *   repeat a declared property's name;
 * - free JSON values nest at most MT_GRAMMAR_MAX_DEPTH deep.
 * Limits: MT_JSON_SCHEMA_MAX_BYTES of schema text, schemas nested MT_JSON_SCHEMA_MAX_NEST
 * deep, MT_GRAMMAR_MAX_STATES grammar states, counts (minItems, ...) up to
 * MT_JSON_SCHEMA_MAX_COUNT. Not supported: minimum/maximum on non-integer numbers, anyOf
 * or $ref next to other assertion keywords, enum/const next to assertions other than
 * type, "required" names missing from "properties". */
#ifndef MT_INFER_JSON_SCHEMA_H
#define MT_INFER_JSON_SCHEMA_H

#include <stddef.h>

#include "core/status.h"
#include "infer/grammar.h"

#define MT_JSON_SCHEMA_MAX_BYTES (256 * 1024)
#define MT_JSON_SCHEMA_MAX_NEST 64
#define MT_JSON_SCHEMA_MAX_COUNT 100000
#define MT_JSON_WS_MAX_INDENT 20
#define MT_JSON_MAX_INT_DIGITS 15
#define MT_JSON_MAX_FRAC_DIGITS 15
#define MT_JSON_MAX_EXP_DIGITS 3

/* Compiles schema_json (len bytes, need not be NUL-terminated). *out is read-only
 * afterwards and shareable; free with mt_grammar_free. MT_ERR_FORMAT for a malformed
 * schema, MT_ERR_UNSUPPORTED for a keyword or combination not handled. */
mt_status mt_json_schema_compile(const char *schema_json, size_t len, mt_grammar **out);

#endif
