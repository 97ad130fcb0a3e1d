/* JSON documents (config.json, tokenizer.json, safetensors headers) parsed with cJSON,
 * with errors that say which file and where. */
#ifndef MT_IO_JSON_FILE_H
#define MT_IO_JSON_FILE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/status.h"

/* Reads and parses a whole file. The caller frees *out with cJSON_Delete. */
mt_status mt_json_read_file(const char *path, cJSON **out);

/* Parses exactly len bytes (no NUL needed) holding one JSON value and nothing but
 * whitespace after it. `what` names the source in error messages. */
mt_status mt_json_parse(const char *text, size_t len, const char *what, cJSON **out);

#endif
