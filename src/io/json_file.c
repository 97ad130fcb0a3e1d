#include "io/json_file.h"

#include <stdlib.h>

#include "io/file_util.h"

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A byte offset as 1-based line and column, which is what an editor shows. */
static mt_status fail_at(const char *text, size_t off, const char *what, const char *problem) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n')
            line++, col = 1;
        else
            col++;
    }
    return mt_fail(MT_ERR_FORMAT, "json: %s: %s at line %zu column %zu", what, problem, line, col);
}

mt_status mt_json_parse(const char *text, size_t len, const char *what, cJSON **out) {
    *out = NULL;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
    if (!doc) {
        if (off >= len) return mt_fail(MT_ERR_FORMAT, "json: %s: unexpected end of input", what);
        return fail_at(text, off, what, "malformed JSON");
    }
    while (off < len && is_space(text[off])) off++;
    if (off < len) {
        cJSON_Delete(doc);
        return fail_at(text, off, what, "unexpected data after the JSON value");
    }
    *out = doc;
    return MT_OK;
}

mt_status mt_json_read_file(const char *path, cJSON **out) {
    char *text;
    size_t len;
    *out = NULL;
    mt_status st = mt_read_file(path, &text, &len);
    if (st) return st;
    st = mt_json_parse(text, len, path, out);
    free(text);
    return st;
}
