/* Loading a JSONL training file into tokenised examples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file_util.h"
#include "train/data_internal.h"

typedef struct {
    const char *path;
    const mt_tokenizer *tok;
    mt_chat_family fam;
    int max_len;
    mt_dataset *d;
    int cap;
    int kind_line; /* line of the first record, which fixed the file's kind */
} loader;

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\v\f", s[i])) return 0;
    return 1;
}

static mt_status parse_line(const char *s, size_t n, const char *path, int line, cJSON **out) {
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
    while (off < n && strchr(" \t\r", s[off])) off++;
    if (off < n) {
        cJSON_Delete(doc);
        return mt_fail(MT_ERR_FORMAT,
                       "%s:%d: unexpected text after the JSON object at column "
                       "%zu (one record per line)",
                       path, line, off + 1);
    }
    *out = doc;
    return MT_OK;
}

static const char *kind_name(mt_data_kind k) {
    return k == MT_DATA_PREF ? "preference" : "SFT";
}

static mt_status check_kind(loader *L, const mt_data_record *r, int line) {
    if (!L->kind_line) {
        L->d->kind = r->kind;
        L->kind_line = line;
        return MT_OK;
    }
    if (r->kind == L->d->kind) return MT_OK;
    return mt_fail(MT_ERR_FORMAT,
                   "%s:%d: %s record in a file of %s records (line %d); one "
                   "kind per file",
                   L->path, line, kind_name(r->kind), kind_name(L->d->kind), L->kind_line);
}

static mt_status grow(loader *L) {
    if (L->d->n < L->cap) return MT_OK;
    int cap = L->cap ? L->cap * 2 : 64;
    size_t size = L->d->kind == MT_DATA_PREF ? sizeof(mt_pref_example) : sizeof(mt_sft_example);
    void **arr = L->d->kind == MT_DATA_PREF ? (void **)&L->d->pref : (void **)&L->d->sft;
    void *bigger = realloc(*arr, (size_t)cap * size);
    if (!bigger) return mt_fail(MT_ERR_NOMEM, "data: out of memory");
    *arr = bigger;
    L->cap = cap;
    return MT_OK;
}

static mt_status encode(loader *L, const mt_data_record *r, const char *answer, mt_sft_example *e,
                        int line) {
    mt_status st = mt_data_encode(L->tok, L->fam, r->system, r->user, answer, e);
    e->line = line;
    if (st) {
        char where[512];
        snprintf(where, sizeof where, "%s:%d", L->path, line);
        return mt_fail_prefix(st, where);
    }
    return MT_OK;
}

static void example_free(mt_sft_example *e) {
    free(e->tokens);
    e->tokens = NULL;
}

/* Tokenises, then applies the length limit to every sequence of the record at once, so a
 * pair is kept or dropped whole. */
static mt_status add_record(loader *L, const mt_data_record *r, int line) {
    mt_status st = grow(L);
    if (st) return st;
    mt_sft_example e[2] = {{0}, {0}};
    int n_seq = r->kind == MT_DATA_PREF ? 2 : 1;
    const char *answers[2] = {r->kind == MT_DATA_PREF ? r->chosen : r->answer, r->rejected};
    for (int i = 0; i < n_seq && st == MT_OK; i++) st = encode(L, r, answers[i], &e[i], line);
    int dropped = 0, truncated = 0;
    for (int i = 0; i < n_seq && st == MT_OK; i++) {
        mt_fit fit = mt_data_fit_check(&e[i], L->max_len);
        dropped |= fit == MT_FIT_DROPPED;
        truncated |= fit == MT_FIT_TRUNCATED;
    }
    L->d->n_records++;
    if (st || dropped) {
        for (int i = 0; i < n_seq; i++) example_free(&e[i]);
        L->d->n_dropped += st == MT_OK;
        return st;
    }
    for (int i = 0; i < n_seq; i++) mt_data_fit_apply(&e[i], L->max_len);
    L->d->n_truncated += truncated;
    if (r->kind == MT_DATA_PREF)
        L->d->pref[L->d->n++] = (mt_pref_example){e[0], e[1]};
    else
        L->d->sft[L->d->n++] = e[0];
    return MT_OK;
}

static mt_status load_line(loader *L, const char *s, size_t n, int line) {
    cJSON *doc;
    mt_status st = parse_line(s, n, L->path, line, &doc);
    if (st) return st;
    mt_data_record r;
    st = mt_data_record_parse(doc, L->path, line, &r);
    if (st == MT_OK) st = check_kind(L, &r, line);
    if (st == MT_OK) st = add_record(L, &r, line);
    mt_data_record_clear(&r);
    cJSON_Delete(doc);
    return st;
}

static mt_status load_text(loader *L, const char *text, size_t len) {
    int line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + 1;
        line++;
        if (line == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) s += 3, n -= 3; /* UTF-8 BOM */
        if (is_blank(s, n)) continue;
        mt_status st = load_line(L, s, n, line);
        if (st) return st;
    }
    if (!L->kind_line) return mt_fail(MT_ERR_FORMAT, "%s: no records (the file is empty)", L->path);
    return MT_OK;
}

mt_status mt_dataset_load(const char *path, const mt_tokenizer *tok, mt_chat_family fam,
                          const mt_data_opts *o, mt_dataset *out) {
    memset(out, 0, sizeof *out);
    if (o && o->max_len < 0)
        return mt_fail(MT_ERR_ARG, "data: max length %d is negative", o->max_len);
    char *text;
    size_t len;
    mt_status st = mt_read_file(path, &text, &len);
    if (st) return st;
    loader L = {path, tok, fam, o ? o->max_len : 0, out, 0, 0};
    st = load_text(&L, text, len);
    free(text);
    if (st) mt_dataset_free(out);
    return st;
}

void mt_dataset_free(mt_dataset *d) {
    for (int i = 0; i < d->n; i++) {
        if (d->kind == MT_DATA_PREF) {
            example_free(&d->pref[i].chosen);
            example_free(&d->pref[i].rejected);
        } else {
            example_free(&d->sft[i]);
        }
    }
    free(d->sft);
    free(d->pref);
    memset(d, 0, sizeof *d);
}
