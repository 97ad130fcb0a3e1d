/* `meteor status`'s data: a run store's summary in one read snapshot. Formatting it is the
 * caller's job (cli/status_print.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "store/store_internal.h"

static mt_status out_of_memory(void) {
    return mt_fail(MT_ERR_NOMEM, "run store: out of memory reading the status");
}

/* v itself, or v grown so that element n fits (*cap elements allocated); NULL when memory
 * ran out, v then still valid and unchanged. */
static void *room_for(void *v, int n, int *cap, size_t size) {
    if (n < *cap) return v;
    const int grown = *cap ? 2 * *cap : 8;
    void *nv = realloc(v, (size_t)grown * size);
    if (nv) *cap = grown;
    return nv;
}

static mt_status read_questions(mt_store *s, mt_store_status *out) {
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "SELECT split, COUNT(*) FROM questions GROUP BY split"
                                     " ORDER BY split IS NULL, split DESC",
                                     &st, "status");
    if (err) return err;
    int row, cap = 0;
    while (!(err = mt_store_step(s, st, &row, "status")) && row) {
        mt_split_count *v = room_for(out->splits, out->n_splits, &cap, sizeof *v);
        if (!v) {
            err = out_of_memory();
            break;
        }
        out->splits = v;
        mt_split_count *c = &v[out->n_splits++];
        c->questions = sqlite3_column_int64(st, 1);
        c->split = mt_store_column_dup(st, 0, &err);
        out->questions += c->questions;
        if (err) break;
    }
    sqlite3_finalize(st);
    return err;
}

static mt_status read_stages(mt_store *s, mt_store_status *out) {
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "SELECT phase, stage, SUM(state = ?1), SUM(state = ?2)"
                                     " FROM items GROUP BY phase, stage ORDER BY MIN(rowid)",
                                     &st, "status");
    if (err) return err;
    sqlite3_bind_int(st, 1, MT_ITEM_DONE);
    sqlite3_bind_int(st, 2, MT_ITEM_FAILED);
    int row, cap = 0;
    while (!(err = mt_store_step(s, st, &row, "status")) && row) {
        mt_stage_count *v = room_for(out->stages, out->n_stages, &cap, sizeof *v);
        if (!v) {
            err = out_of_memory();
            break;
        }
        out->stages = v;
        mt_stage_count *c = &v[out->n_stages++];
        memset(c, 0, sizeof *c);
        c->done = sqlite3_column_int64(st, 2);
        c->failed = sqlite3_column_int64(st, 3);
        c->phase = mt_store_column_dup(st, 0, &err);
        c->stage = mt_store_column_dup(st, 1, &err);
        if (err) break;
    }
    sqlite3_finalize(st);
    return err;
}

static mt_status read_failed(mt_store *s, mt_store_status *out) {
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "SELECT phase, stage, qid, attempts, error,"
                                     " COUNT(*) OVER () FROM items WHERE state = ?1"
                                     " ORDER BY rowid LIMIT ?2",
                                     &st, "status");
    if (err) return err;
    sqlite3_bind_int(st, 1, MT_ITEM_FAILED);
    sqlite3_bind_int(st, 2, MT_STORE_STATUS_FAILED_LISTED);
    int row;
    while (!(err = mt_store_step(s, st, &row, "status")) && row) {
        out->failed_total = sqlite3_column_int64(st, 5);
        mt_failed_item *f = &out->failed[out->n_failed++];
        f->attempts = sqlite3_column_int(st, 3);
        f->phase = mt_store_column_dup(st, 0, &err);
        f->stage = mt_store_column_dup(st, 1, &err);
        f->qid = mt_store_column_dup(st, 2, &err);
        f->error = mt_store_column_dup(st, 4, &err);
        if (err) break;
    }
    sqlite3_finalize(st);
    return err;
}

static mt_status read_usage(mt_store *s, mt_store_status *out) {
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "SELECT phase FROM requests UNION SELECT phase FROM attempts"
                                     " ORDER BY phase",
                                     &st, "status");
    if (err) return err;
    int row, cap = 0;
    while (!(err = mt_store_step(s, st, &row, "status")) && row) {
        mt_phase_usage *v = room_for(out->usage, out->n_usage, &cap, sizeof *v);
        if (!v) {
            err = out_of_memory();
            break;
        }
        out->usage = v;
        mt_phase_usage *u = &v[out->n_usage++];
        memset(u, 0, sizeof *u);
        u->phase = mt_store_column_dup(st, 0, &err);
        if (err || (err = mt_store_usage(s, u->phase, &u->usage))) break;
    }
    sqlite3_finalize(st);
    if (!err) err = mt_store_usage(s, NULL, &out->usage_total);
    return err;
}

static mt_status read_metrics(mt_store *s, mt_store_status *out) {
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "SELECT phase, name, value FROM metrics m"
                                     " WHERE id = (SELECT MAX(id) FROM metrics"
                                     "  WHERE phase = m.phase AND name = m.name)"
                                     " ORDER BY phase, name",
                                     &st, "status");
    if (err) return err;
    int row, cap = 0;
    while (!(err = mt_store_step(s, st, &row, "status")) && row) {
        mt_metric_value *v = room_for(out->metrics, out->n_metrics, &cap, sizeof *v);
        if (!v) {
            err = out_of_memory();
            break;
        }
        out->metrics = v;
        mt_metric_value *m = &v[out->n_metrics++];
        /* SQLite stores a NaN as NULL (see the schema) */
        m->value = sqlite3_column_type(st, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 2);
        m->phase = mt_store_column_dup(st, 0, &err);
        m->name = mt_store_column_dup(st, 1, &err);
        if (err) break;
    }
    sqlite3_finalize(st);
    return err;
}

mt_status mt_store_status_read(mt_store *s, mt_store_status *out) {
    memset(out, 0, sizeof *out);
    /* one read snapshot, so counts and totals agree while a run keeps committing */
    const int own = !s->in_tx && sqlite3_get_autocommit(s->db);
    if (own && sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return mt_store_fail(s, "status");
    out->path = mt_strdup(s->path);
    mt_status err = out->path ? MT_OK : MT_ERR_NOMEM;
    if (!err) err = read_questions(s, out);
    if (!err) err = read_stages(s, out);
    if (!err) err = read_failed(s, out);
    if (!err) err = read_usage(s, out);
    if (!err) err = read_metrics(s, out);
    if (own) sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (err) mt_store_status_free(out);
    return err;
}

void mt_store_status_free(mt_store_status *st) {
    if (!st) return;
    free(st->path);
    for (int i = 0; i < st->n_splits; i++) free(st->splits[i].split);
    free(st->splits);
    for (int i = 0; i < st->n_stages; i++) {
        free(st->stages[i].phase);
        free(st->stages[i].stage);
    }
    free(st->stages);
    for (int i = 0; i < st->n_failed; i++) {
        free(st->failed[i].phase);
        free(st->failed[i].stage);
        free(st->failed[i].qid);
        free(st->failed[i].error);
    }
    for (int i = 0; i < st->n_usage; i++) free(st->usage[i].phase);
    free(st->usage);
    for (int i = 0; i < st->n_metrics; i++) {
        free(st->metrics[i].phase);
        free(st->metrics[i].name);
    }
    free(st->metrics);
    memset(st, 0, sizeof *st);
}
