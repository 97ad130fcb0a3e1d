/* JSONL input files (questions, training data, batch prompts): one JSON value per line.
 * Every reader of such a file goes through here so that they agree on what a line may
 * hold: blank lines (spaces, tabs, CR) are skipped but counted, a UTF-8 BOM opening the
 * file is ignored, CRLF endings are accepted, and a line holding anything but one JSON
 * value and trailing whitespace (a second value, other text, a NUL byte, a string with a
 * \u0000 escape) is refused with "FILE:LINE: ...". */
#ifndef MT_IO_JSONL_H
#define MT_IO_JSONL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/status.h"

/* Called with each non-blank line's value, which it owns from then on (frees it with
 * cJSON_Delete or keeps it), and the line's 1-based number. A non-zero return stops the
 * reading with that status. */
typedef mt_status (*mt_jsonl_fn)(void *user, cJSON *value, int line);

/* Reads the file at path and hands every line's value to fn in order. */
mt_status mt_jsonl_read(const char *path, mt_jsonl_fn fn, void *user);

/* The same over text already read (len bytes, no NUL needed); path names it in errors. */
mt_status mt_jsonl_parse_text(const char *path, const char *text, size_t len, mt_jsonl_fn fn,
                              void *user);

/* One line of n bytes (no newline) holding exactly one JSON value; errors read
 * "path:line: ...". The caller frees *out with cJSON_Delete. */
mt_status mt_jsonl_parse_line(const char *s, size_t n, const char *path, int line, cJSON **out);

#endif
