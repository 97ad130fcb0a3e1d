#include "expert/json_reply.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Enough to get past prose with stray braces; bounds the work on hostile input. */
#define MAX_CANDIDATES 64

/* ---- finding the object ------------------------------------------------------------ */

/* Length of the balanced {...} starting at s[0] (brackets counted too, strings and
 * escapes skipped), or 0 when it never closes. */
static size_t balanced_len(const char *s, size_t n) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        const char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            return i + 1;
        }
    }
    return 0;
}

/* Copy of s[0..n) without commas that directly precede } or ] (outside strings): the one
 * JSON mistake models make often enough to forgive. */
static char *drop_trailing_commas(const char *s, size_t n, size_t *out_n) {
    char *o = malloc(n + 1);
    if (!o) return NULL;
    size_t k = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        const char c = s[i];
        if (in_str) {
            o[k++] = c;
            if (c == '\\' && i + 1 < n)
                o[k++] = s[++i];
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == ',') {
            size_t j = i + 1;
            while (j < n && strchr(" \t\r\n", s[j])) j++;
            if (j < n && (s[j] == '}' || s[j] == ']')) continue;
        }
        in_str = c == '"';
        o[k++] = c;
    }
    o[k] = '\0';
    *out_n = k;
    return o;
}

typedef struct {
    int tried, unclosed;
    char parse_error[96]; /* the first candidate's parse failure */
} search;

static void note_parse_error(search *sr, const char *cand, size_t n, const char *at) {
    if (sr->parse_error[0]) return;
    size_t off = at && at >= cand && at <= cand + n ? (size_t)(at - cand) : 0;
    size_t from = off > 20 ? off - 20 : 0, len = n - from < 40 ? n - from : 40;
    char ex[41];
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)cand[from + i];
        ex[i] = c < 0x20 ? ' ' : (char)c;
    }
    ex[len] = '\0';
    snprintf(sr->parse_error, sizeof sr->parse_error, "invalid JSON near \"%s\"", ex);
}

static cJSON *parse_exact(const char *s, size_t n, const char **err_at) {
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    *err_at = end;
    if (v && !cJSON_IsObject(v)) {
        cJSON_Delete(v);
        v = NULL;
    }
    return v;
}

static cJSON *parse_candidate(search *sr, const char *s, size_t n) {
    const char *at = NULL;
    cJSON *v = parse_exact(s, n, &at);
    if (v) return v;
    size_t m;
    char *fixed = drop_trailing_commas(s, n, &m);
    if (fixed && m != n) {
        const char *at2;
        v = parse_exact(fixed, m, &at2);
    }
    free(fixed);
    if (!v) note_parse_error(sr, s, n, at);
    return v;
}

/* The first object in s[0..n) that parses, trying each '{' in turn. */
static cJSON *scan(search *sr, const char *s, size_t n) {
    for (size_t i = 0; i < n && sr->tried < MAX_CANDIDATES; i++) {
        if (s[i] != '{') continue;
        sr->tried++;
        const size_t len = balanced_len(s + i, n - i);
        if (!len) {
            sr->unclosed++;
            continue;
        }
        cJSON *v = parse_candidate(sr, s + i, len);
        if (v) return v;
    }
    return NULL;
}

/* Tries the body of every ``` fence (language tag skipped; an unclosed fence runs to the
 * end), so prose with braces before the fence does not win. */
static cJSON *scan_fences(search *sr, const char *text) {
    const char *p = text;
    while ((p = strstr(p, "```")) != NULL) {
        const char *body = strchr(p + 3, '\n');
        if (!body) return NULL;
        body++;
        const char *close = strstr(body, "```");
        const size_t n = close ? (size_t)(close - body) : strlen(body);
        cJSON *v = scan(sr, body, n);
        if (v || !close) return v;
        p = close + 3;
    }
    return NULL;
}

mt_status mt_json_reply_parse(const char *text, cJSON **out) {
    *out = NULL;
    if (!text) return mt_fail(MT_ERR_FORMAT, "empty reply");
    search sr = {0};
    cJSON *v = scan_fences(&sr, text);
    if (!v) v = scan(&sr, text, strlen(text));
    if (v) {
        *out = v;
        return MT_OK;
    }
    if (sr.parse_error[0]) return mt_fail(MT_ERR_FORMAT, "%s", sr.parse_error);
    if (sr.unclosed) return mt_fail(MT_ERR_FORMAT, "the JSON object is not closed (truncated?)");
    return mt_fail(MT_ERR_FORMAT, "no JSON object in the reply");
}

/* ---- schema checking --------------------------------------------------------------- */

typedef struct {
    char path[200];
} where;

static const char *type_name(const cJSON *v) {
    if (cJSON_IsObject(v)) return "object";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsNumber(v)) return "number";
    return "invalid";
}

static int is_integer(const cJSON *v) {
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble);
}

static int type_is(const char *want, const cJSON *v) {
    if (!strcmp(want, "integer")) return is_integer(v);
    if (!strcmp(want, "number")) return cJSON_IsNumber(v);
    return !strcmp(want, type_name(v));
}

/* Compact JSON of v, cut to fit buf, for messages. */
static const char *show(const cJSON *v, char *buf, size_t n) {
    char *s = cJSON_PrintUnformatted(v);
    snprintf(buf, n, "%s", s ? s : "?");
    if (s && strlen(s) >= n && n > 4) memcpy(buf + n - 4, "...", 4);
    free(s);
    return buf;
}

static mt_status check_type(const where *w, const cJSON *t, const cJSON *v) {
    if (cJSON_IsString(t)) {
        if (type_is(t->valuestring, v)) return MT_OK;
        return mt_fail(MT_ERR_FORMAT, "%s: expected %s, got %s", w->path, t->valuestring,
                       type_name(v));
    }
    if (!cJSON_IsArray(t)) return MT_OK;
    const cJSON *x;
    cJSON_ArrayForEach(x, t) {
        if (cJSON_IsString(x) && type_is(x->valuestring, v)) return MT_OK;
    }
    char want[80];
    return mt_fail(MT_ERR_FORMAT, "%s: expected one of the types %s, got %s", w->path,
                   show(t, want, sizeof want), type_name(v));
}

static mt_status check_enum(const where *w, const cJSON *s, const cJSON *v) {
    char got[60], want[100];
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (c && !cJSON_Compare(c, v, 1))
        return mt_fail(MT_ERR_FORMAT, "%s: %s is not the required value %s", w->path,
                       show(v, got, sizeof got), show(c, want, sizeof want));
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(s, "enum");
    if (!cJSON_IsArray(e)) return MT_OK;
    const cJSON *x;
    cJSON_ArrayForEach(x, e) {
        if (cJSON_Compare(x, v, 1)) return MT_OK;
    }
    return mt_fail(MT_ERR_FORMAT, "%s: %s is not one of %s", w->path, show(v, got, sizeof got),
                   show(e, want, sizeof want));
}

static mt_status check_number(const where *w, const cJSON *s, const cJSON *v) {
    if (!cJSON_IsNumber(v)) return MT_OK;
    const double x = v->valuedouble;
    static const struct {
        const char *key;
        int below, strict;
    } bounds[] = {{"minimum", 1, 0},
                  {"maximum", 0, 0},
                  {"exclusiveMinimum", 1, 1},
                  {"exclusiveMaximum", 0, 1}};
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, bounds[i].key);
        if (!cJSON_IsNumber(b)) continue;
        const double y = b->valuedouble;
        const int bad = bounds[i].below ? (bounds[i].strict ? x <= y : x < y)
                                        : (bounds[i].strict ? x >= y : x > y);
        if (bad)
            return mt_fail(MT_ERR_FORMAT, "%s: %g is %s the %s %g", w->path, x,
                           bounds[i].below ? "below" : "above", bounds[i].key, y);
    }
    return MT_OK;
}

static size_t utf8_len(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* minX/maxX pairs on a measured size (string length or item count). */
static mt_status check_size(const where *w, const cJSON *s, const char *min_key,
                            const char *max_key, double size, const char *what) {
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(s, min_key);
    const cJSON *hi = cJSON_GetObjectItemCaseSensitive(s, max_key);
    if (cJSON_IsNumber(lo) && size < lo->valuedouble)
        return mt_fail(MT_ERR_FORMAT, "%s: %.0f %s, fewer than %s %g", w->path, size, what, min_key,
                       lo->valuedouble);
    if (cJSON_IsNumber(hi) && size > hi->valuedouble)
        return mt_fail(MT_ERR_FORMAT, "%s: %.0f %s, more than %s %g", w->path, size, what, max_key,
                       hi->valuedouble);
    return MT_OK;
}

static mt_status check(where *w, const cJSON *s, const cJSON *v);

/* Descends into a child: extends the path, checks, restores the path. */
static mt_status check_child(where *w, const cJSON *s, const cJSON *v, const char *key, int idx) {
    const size_t len = strlen(w->path);
    if (key)
        snprintf(w->path + len, sizeof w->path - len, ".%s", key);
    else
        snprintf(w->path + len, sizeof w->path - len, "[%d]", idx);
    const mt_status st = check(w, s, v);
    w->path[len] = '\0';
    return st;
}

static mt_status check_object(where *w, const cJSON *s, const cJSON *v) {
    if (!cJSON_IsObject(v)) return MT_OK;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *x;
    cJSON_ArrayForEach(x, req) {
        if (cJSON_IsString(x) && !cJSON_GetObjectItemCaseSensitive(v, x->valuestring))
            return mt_fail(MT_ERR_FORMAT, "%s: missing required property \"%s\"", w->path,
                           x->valuestring);
    }
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    cJSON_ArrayForEach(x, v) {
        const cJSON *ps =
            cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, x->string) : NULL;
        if (ps) {
            mt_status st = check_child(w, ps, x, x->string, 0);
            if (st) return st;
        } else if (cJSON_IsFalse(extra)) {
            return mt_fail(MT_ERR_FORMAT, "%s: unexpected property \"%s\"", w->path, x->string);
        } else if (cJSON_IsObject(extra)) {
            mt_status st = check_child(w, extra, x, x->string, 0);
            if (st) return st;
        }
    }
    return MT_OK;
}

static mt_status check_array(where *w, const cJSON *s, const cJSON *v) {
    if (!cJSON_IsArray(v)) return MT_OK;
    mt_status st = check_size(w, s, "minItems", "maxItems", cJSON_GetArraySize(v), "items");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    if (st || !cJSON_IsObject(items)) return st;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, v) {
        if ((st = check_child(w, items, x, NULL, i++))) return st;
    }
    return MT_OK;
}

static mt_status check(where *w, const cJSON *s, const cJSON *v) {
    if (!cJSON_IsObject(s)) return MT_OK; /* true, {} or garbage: accept anything */
    mt_status st = check_type(w, cJSON_GetObjectItemCaseSensitive(s, "type"), v);
    if (!st) st = check_enum(w, s, v);
    if (!st) st = check_number(w, s, v);
    if (!st && cJSON_IsString(v))
        st = check_size(w, s, "minLength", "maxLength", (double)utf8_len(v->valuestring),
                        "characters");
    if (!st) st = check_object(w, s, v);
    if (!st) st = check_array(w, s, v);
    return st;
}

mt_status mt_json_schema_check(const cJSON *schema, const cJSON *value) {
    where w = {.path = "$"};
    return check(&w, schema, value);
}
