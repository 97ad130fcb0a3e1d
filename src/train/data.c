/* Loading a JSONL training file into tokenised examples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/jsonl.h"
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

static mt_status load_line(void *user, cJSON *doc, int line) {
    loader *L = user;
    mt_data_record r;
    mt_status st = mt_data_record_parse(doc, L->path, line, &r);
    if (st == MT_OK) st = check_kind(L, &r, line);
    if (st == MT_OK) st = add_record(L, &r, line);
    mt_data_record_clear(&r);
    cJSON_Delete(doc);
    return st;
}

mt_status mt_dataset_load(const char *path, const mt_tokenizer *tok, mt_chat_family fam,
                          const mt_data_opts *o, mt_dataset *out) {
    memset(out, 0, sizeof *out);
    if (o && o->max_len < 0)
        return mt_fail(MT_ERR_ARG, "data: max length %d is negative", o->max_len);
    loader L = {path, tok, fam, o ? o->max_len : 0, out, 0, 0};
    mt_status st = mt_jsonl_read(path, load_line, &L);
    if (!st && !L.kind_line)
        st = mt_fail(MT_ERR_FORMAT, "%s: no records (the file is empty)", path);
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
