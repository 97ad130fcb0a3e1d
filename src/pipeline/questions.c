#include "pipeline/questions.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/sha256.h"
#include "io/file_util.h"
#include "io/json_file.h"
#include "io/jsonl.h"

/* Whitespace runs collapsed to one space, ends trimmed, appended to buf. */
static void append_normalised(char *buf, size_t *len, const char *s) {
    const size_t start = *len;
    int space = 0;
    for (; s && *s; s++) {
        if (isspace((unsigned char)*s)) {
            space = 1;
            continue;
        }
        if (space && *len > start) buf[(*len)++] = ' ';
        space = 0;
        buf[(*len)++] = *s;
    }
}

void mt_question_id(const char *title, const char *content, char out[17]) {
    size_t cap = (title ? strlen(title) : 0) + (content ? strlen(content) : 0) + 2, len = 0;
    char *buf = malloc(cap);
    char hex[65];
    if (!buf) {
        snprintf(out, 17, "%016x", 0);
        return;
    }
    append_normalised(buf, &len, title);
    buf[len++] = '\n';
    size_t mark = len;
    append_normalised(buf, &mark, content);
    mt_sha256_hex(buf, mark, hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
    free(buf);
}

static const char *opt_string(const cJSON *o, const char *const *keys, const char **bad) {
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsString(v)) {
            *bad = keys[i];
            return NULL;
        }
        return v->valuestring;
    }
    return NULL;
}

static int blank(const char *s) {
    for (; s && *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

/* One record into q (pointing into the JSON object). */
static mt_status parse_record(const cJSON *o, const char *where, mt_question *q) {
    static const char *const title_keys[] = {"title", "question_title", NULL};
    static const char *const content_keys[] = {"question_content", "content", NULL};
    static const char *const question_keys[] = {"question", NULL};
    static const char *const ref_keys[] = {"reference_answer", "answer", "reference", NULL};
    static const char *const cat_keys[] = {"category", NULL};
    const char *bad = NULL;
    memset(q, 0, sizeof *q);
    if (!cJSON_IsObject(o)) return mt_fail(MT_ERR_FORMAT, "%s: not a JSON object", where);
    q->title = (char *)opt_string(o, title_keys, &bad);
    q->content = (char *)opt_string(o, content_keys, &bad);
    const char *generic = opt_string(o, question_keys, &bad);
    q->reference = (char *)opt_string(o, ref_keys, &bad);
    q->category = (char *)opt_string(o, cat_keys, &bad);
    if (bad) return mt_fail(MT_ERR_FORMAT, "%s: field \"%s\" must be a string", where, bad);
    if (!q->title && !q->content) {
        if (!generic)
            return mt_fail(MT_ERR_FORMAT,
                           "%s: needs \"title\" and/or \"question_content\" (METEOR format) or "
                           "\"question\" (generic format)",
                           where);
        q->title = (char *)generic;
    }
    if (blank(q->title) && blank(q->content))
        return mt_fail(MT_ERR_FORMAT, "%s: the question is empty", where);
    if (!q->title) q->title = (char *)"";
    if (!q->content) q->content = (char *)"";
    if (q->reference && blank(q->reference)) q->reference = NULL;
    if (q->category && blank(q->category)) q->category = NULL;
    return MT_OK;
}

/* Every record of a file as one JSON array, with the line (JSONL) or 1-based position
 * (JSON array) of each for error messages. */
typedef struct {
    cJSON *arr;
    int *lines;
    int n, cap;
} question_file;

static void file_free(question_file *f) {
    cJSON_Delete(f->arr);
    free(f->lines);
}

static mt_status add_line(void *user, cJSON *value, int line) {
    question_file *f = user;
    cJSON_AddItemToArray(f->arr, value);
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        int *l = realloc(f->lines, (size_t)f->cap * sizeof *l);
        if (!l) return mt_fail(MT_ERR_NOMEM, "out of memory reading questions");
        f->lines = l;
    }
    f->lines[f->n++] = line;
    return MT_OK;
}

static mt_status read_jsonl(const char *path, const char *data, size_t len, question_file *f) {
    if (!(f->arr = cJSON_CreateArray())) return MT_ERR_NOMEM;
    return mt_jsonl_parse_text(path, data, len, add_line, f);
}

static mt_status read_array(const char *path, const char *data, size_t len, question_file *f) {
    mt_status st = mt_json_parse(data, len, path, &f->arr);
    if (st) return st;
    if (!cJSON_IsArray(f->arr))
        return mt_fail(MT_ERR_FORMAT, "%s: expected a JSON array of questions", path);
    f->n = cJSON_GetArraySize(f->arr);
    if (!(f->lines = mt_calloc((size_t)f->n + 1, sizeof *f->lines))) return MT_ERR_NOMEM;
    for (int i = 0; i < f->n; i++) f->lines[i] = i + 1;
    return MT_OK;
}

static mt_status read_file(const char *path, question_file *f) {
    char *data = NULL;
    size_t len = 0;
    mt_status st = mt_read_file(path, &data, &len);
    if (st) return st;
    size_t skip = 0;
    while (skip < len && isspace((unsigned char)data[skip])) skip++;
    if (skip < len && data[skip] == '[')
        st = read_array(path, data, len, f);
    else
        st = read_jsonl(path, data, len, f);
    free(data);
    if (!st && f->n == 0) st = mt_fail(MT_ERR_FORMAT, "%s has no questions", path);
    return st;
}

/* Checks every record before storing any, so a bad file leaves the store untouched. */
static mt_status parse_all(const char *path, const question_file *f, mt_question *qs) {
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, f->arr) {
        char where[4200];
        snprintf(where, sizeof where, "%s:%d", path, f->lines[i]);
        mt_status st = parse_record(e, where, &qs[i]);
        if (st) return st;
        i++;
    }
    return MT_OK;
}

mt_status mt_questions_import(mt_store *s, const char *path, mt_import_stats *stats) {
    question_file f = {0};
    mt_question *qs = NULL;
    memset(stats, 0, sizeof *stats);
    mt_status st = read_file(path, &f);
    if (!st && !(qs = mt_calloc((size_t)f.n, sizeof *qs))) st = MT_ERR_NOMEM;
    if (!st) st = parse_all(path, &f, qs);
    int tx = 0;
    if (!st && !(st = mt_store_begin(s))) tx = 1;
    for (int i = 0; !st && i < f.n; i++) {
        char id[17];
        int added = 0;
        mt_question_id(qs[i].title, qs[i].content, id);
        qs[i].id = id;
        if (!(st = mt_store_add_question(s, &qs[i], &added))) {
            stats->added += added;
            stats->duplicates += !added;
        }
        qs[i].id = NULL;
    }
    if (!st) st = mt_store_commit(s);
    if (st && tx) mt_store_rollback(s);
    stats->read = f.n;
    free(qs);
    file_free(&f);
    return st;
}

static uint64_t split_hash(uint64_t seed, const char *id) {
    char buf[64];
    uint8_t d[32];
    snprintf(buf, sizeof buf, "%" PRIu64 ":%s", seed, id);
    mt_sha256(buf, strlen(buf), d);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) h = h << 8 | d[i];
    return h;
}

/* The split settings of the store: recorded on first use, then enforced. */
static mt_status check_split_settings(mt_store *s, uint64_t seed, double frac) {
    char want[96], *have = NULL;
    snprintf(want, sizeof want, "seed=%" PRIu64 " test_fraction=%.6f", seed, frac);
    mt_status st = mt_store_meta_get(s, "split", &have);
    if (st) return st;
    if (!have) return mt_store_meta_set(s, "split", want);
    if (strcmp(have, want))
        st = mt_fail(MT_ERR_ARG,
                     "this run's train/test split was drawn with %s; it cannot change to %s "
                     "(questions would move between the splits)",
                     have, want);
    free(have);
    return st;
}

mt_status mt_questions_split(mt_store *s, uint64_t seed, double frac) {
    if (!(frac >= 0.0 && frac < 1.0))
        return mt_fail(MT_ERR_ARG, "--test-fraction must be in [0, 1)");
    mt_question *qs = NULL;
    int n = 0;
    mt_status st = mt_store_begin(s);
    if (!st) st = check_split_settings(s, seed, frac);
    if (!st) st = mt_store_questions(s, NULL, &qs, &n);
    for (int i = 0; !st && i < n; i++) {
        if (qs[i].split) continue;
        const double u = (double)(split_hash(seed, qs[i].id) >> 11) * 0x1.0p-53;
        st = mt_store_set_split(s, qs[i].id, u < frac ? "test" : "train");
    }
    if (!st) st = mt_store_commit(s);
    if (st) mt_store_rollback(s);
    mt_questions_free(qs, n);
    return st;
}
