#include "io/jsonl.h"

#include <stdlib.h>
#include <string.h>

#include "io/file_util.h"

/* Whitespace a line may have around its value; also what makes a line blank. */
static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_space(s[i])) return 0;
    return 1;
}

/* Whether a string of the (valid) JSON text s holds the escape \u0000: cJSON's strings
 * end at a NUL, so the text after it would be dropped unseen. */
static int has_nul_escape(const char *s, size_t n) {
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            in_string = !in_string;
        } else if (in_string && s[i] == '\\' && i + 1 < n) {
            if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4)) return 1;
            i++; /* the escaped character, which may be a quote */
        }
    }
    return 0;
}

mt_status mt_jsonl_parse_line(const char *s, size_t n, const char *path, int line, cJSON **out) {
    *out = NULL;
    /* cJSON would end a string at the NUL, dropping the rest of the field unseen. */
    if (memchr(s, '\0', n))
        return mt_fail(MT_ERR_FORMAT, "%s:%d: NUL byte in the line", path, line);
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    size_t off = end && end >= s && end <= s + n ? (size_t)(end - s) : n;
    if (!doc) {
        if (off >= n)
            return mt_fail(MT_ERR_FORMAT, "%s:%d: malformed JSON: the line ends inside a value",
                           path, line);
        return mt_fail(MT_ERR_FORMAT, "%s:%d: malformed JSON at column %zu", path, line, off + 1);
    }
    if (has_nul_escape(s, off)) {
        cJSON_Delete(doc);
        return mt_fail(MT_ERR_FORMAT,
                       "%s:%d: a string holds \\u0000 (NUL), which meteor cannot keep", path, line);
    }
    while (off < n && is_space(s[off])) off++;
    if (off < n) {
        cJSON_Delete(doc);
        return mt_fail(MT_ERR_FORMAT,
                       "%s:%d: unexpected text after the JSON value at column %zu (one value "
                       "per line)",
                       path, line, off + 1);
    }
    *out = doc;
    return MT_OK;
}

mt_status mt_jsonl_parse_text(const char *path, const char *text, size_t len, mt_jsonl_fn fn,
                              void *user) {
    int line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + 1;
        line++;
        if (line == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) s += 3, n -= 3; /* UTF-8 BOM */
        if (is_blank(s, n)) continue;
        cJSON *value;
        mt_status st = mt_jsonl_parse_line(s, n, path, line, &value);
        if (!st) st = fn(user, value, line);
        if (st) return st;
    }
    return MT_OK;
}

mt_status mt_jsonl_read(const char *path, mt_jsonl_fn fn, void *user) {
    char *text;
    size_t len;
    mt_status st = mt_read_file(path, &text, &len);
    if (st) return st;
    st = mt_jsonl_parse_text(path, text, len, fn, user);
    free(text);
    return st;
}
