/* One JSONL training record: which fields it has, that they are non-blank strings, and
 * the user turn built from whichever form of the question it uses. */
#include <stdlib.h>
#include <string.h>

#include "train/data_internal.h"

static const char *const known_fields[] = {"question",         "question_title", "title",
                                           "question_content", "system",         "answer",
                                           "chosen",           "rejected"};

static const char *json_type(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "a string";
}

static int is_blank(const char *s) {
    for (; *s; s++)
        if (!strchr(" \t\r\n\v\f", *s)) return 0;
    return 1;
}

/* cJSON keeps the first of two equal keys; a second "answer" would be lost unseen. */
static mt_status check_duplicates(const cJSON *obj, const char *path, int line) {
    for (size_t k = 0; k < sizeof known_fields / sizeof *known_fields; k++) {
        int seen = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, obj) {
            if (c->string && !strcmp(c->string, known_fields[k]) && seen++)
                return mt_fail(MT_ERR_FORMAT, "%s:%d: field '%s' appears twice", path, line,
                               known_fields[k]);
        }
    }
    return MT_OK;
}

/* *out = the field's string, NULL when absent (or null where null_is_absent). */
static mt_status get_string(const cJSON *obj, const char *name, int null_is_absent,
                            const char *path, int line, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!v || (null_is_absent && cJSON_IsNull(v))) return MT_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return mt_fail(MT_ERR_FORMAT, "%s:%d: field '%s' must be a string, not %s", path, line,
                       name, json_type(v));
    *out = v->valuestring;
    return MT_OK;
}

/* A present field that must hold text. */
static mt_status get_text(const cJSON *obj, const char *name, int null_is_absent, const char *path,
                          int line, const char **out) {
    mt_status st = get_string(obj, name, null_is_absent, path, line, out);
    if (st == MT_OK && *out && is_blank(*out))
        return mt_fail(MT_ERR_FORMAT, "%s:%d: field '%s' is empty", path, line, name);
    return st;
}

static int has(const cJSON *obj, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(obj, name) != NULL;
}

static mt_status dup_text(const char *a, size_t na, const char *b, size_t nb, char **out) {
    *out = malloc(na + nb + 1);
    if (!*out) return mt_fail(MT_ERR_NOMEM, "data: out of memory");
    memcpy(*out, a, na);
    memcpy(*out + na, b, nb);
    (*out)[na + nb] = '\0';
    return MT_OK;
}

mt_status mt_data_user_turn(const char *title, const char *content, char **out) {
    int has_t = title && !is_blank(title), has_c = content && !is_blank(content);
    if (has_t && has_c && strncmp(content, title, strlen(title)) != 0) {
        size_t nt = strlen(title);
        char *t;
        mt_status st = dup_text(title, nt, "\n\n", 2, &t);
        if (st) return st;
        st = dup_text(t, nt + 2, content, strlen(content), out);
        free(t);
        return st;
    }
    const char *s = has_c ? content : title;
    return dup_text(s, strlen(s), "", 0, out);
}

static mt_status user_turn(const cJSON *obj, const char *path, int line, char **out) {
    const char *q, *qt, *t, *c;
    mt_status st;
    if ((st = get_text(obj, "question", 0, path, line, &q)) ||
        (st = get_string(obj, "question_title", 0, path, line, &qt)) ||
        (st = get_string(obj, "title", 0, path, line, &t)) ||
        (st = get_string(obj, "question_content", 0, path, line, &c)))
        return st;
    if (qt && t)
        return mt_fail(MT_ERR_FORMAT,
                       "%s:%d: fields 'question_title' and 'title' both given; "
                       "give one",
                       path, line);
    const char *title = qt ? qt : t, *title_name = qt ? "question_title" : "title";
    if (q && (title || c))
        return mt_fail(MT_ERR_FORMAT,
                       "%s:%d: fields 'question' and '%s' both given; give one "
                       "form of the question",
                       path, line, title ? title_name : "question_content");
    if (q) return dup_text(q, strlen(q), "", 0, out);
    if (!title && !c)
        return mt_fail(MT_ERR_FORMAT,
                       "%s:%d: missing field 'question' (or 'question_title'/"
                       "'title' and 'question_content')",
                       path, line);
    if ((!title || is_blank(title)) && (!c || is_blank(c)))
        return mt_fail(MT_ERR_FORMAT, "%s:%d: the question is empty (%s%s%s blank)", path, line,
                       title ? title_name : "", title && c ? " and " : "",
                       c ? "question_content" : "");
    return mt_data_user_turn(title, c, out);
}

static mt_status answers(const cJSON *obj, const char *path, int line, mt_data_record *r) {
    int has_c = has(obj, "chosen"), has_r = has(obj, "rejected");
    if (has(obj, "answer") && (has_c || has_r))
        return mt_fail(MT_ERR_FORMAT,
                       "%s:%d: fields 'answer' and '%s' both given; an SFT "
                       "record has 'answer', a preference record 'chosen' and 'rejected'",
                       path, line, has_c ? "chosen" : "rejected");
    if (!has_c && !has_r) {
        if (!has(obj, "answer"))
            return mt_fail(MT_ERR_FORMAT,
                           "%s:%d: missing field 'answer' (or 'chosen' and "
                           "'rejected' for preference data)",
                           path, line);
        r->kind = MT_DATA_SFT;
        return get_text(obj, "answer", 0, path, line, &r->answer);
    }
    if (!has_c || !has_r)
        return mt_fail(MT_ERR_FORMAT,
                       "%s:%d: missing field '%s' (a preference record needs "
                       "'chosen' and 'rejected')",
                       path, line, has_c ? "rejected" : "chosen");
    r->kind = MT_DATA_PREF;
    mt_status st = get_text(obj, "chosen", 0, path, line, &r->chosen);
    return st ? st : get_text(obj, "rejected", 0, path, line, &r->rejected);
}

mt_status mt_data_record_parse(const cJSON *obj, const char *path, int line, mt_data_record *r) {
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(obj))
        return mt_fail(MT_ERR_FORMAT, "%s:%d: a record must be a JSON object, not %s", path, line,
                       json_type(obj));
    mt_status st;
    if ((st = check_duplicates(obj, path, line)) || (st = user_turn(obj, path, line, &r->user)) ||
        (st = answers(obj, path, line, r)) ||
        (st = get_text(obj, "system", 1, path, line, &r->system))) {
        mt_data_record_clear(r);
        return st;
    }
    return MT_OK;
}

void mt_data_record_clear(mt_data_record *r) {
    free(r->user);
    memset(r, 0, sizeof *r);
}
