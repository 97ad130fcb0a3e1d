/* Per-phase item state: one row per (phase, stage, question) once it has been attempted. */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static void bind_key(sqlite3_stmt *st, const char *phase, const char *stage, const char *qid) {
    mt_store_bind_text(st, 1, phase);
    mt_store_bind_text(st, 2, stage);
    mt_store_bind_text(st, 3, qid);
}

mt_status mt_store_item_get(mt_store *s, const char *phase, const char *stage, const char *qid,
                            mt_item *out) {
    memset(out, 0, sizeof *out);
    out->state = MT_ITEM_PENDING;
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "SELECT state, attempts, output, error FROM items"
                                     " WHERE phase = ?1 AND stage = ?2 AND qid = ?3",
                                     &st, "read item");
    if (err) return err;
    bind_key(st, phase, stage, qid);
    int row;
    err = mt_store_step(s, st, &row, "read item");
    if (!err && row) {
        const int state = sqlite3_column_int(st, 0);
        if (state < MT_ITEM_PENDING || state > MT_ITEM_FAILED) {
            err = mt_fail(MT_ERR_FORMAT, "run store %s: item %s/%s/%s has unknown state %d",
                          s->path, phase, stage, qid, state);
        } else {
            out->state = (mt_item_state)state;
            out->attempts = sqlite3_column_int(st, 1);
            out->output = mt_store_column_dup(st, 2, &err);
            out->error = mt_store_column_dup(st, 3, &err);
        }
    }
    sqlite3_finalize(st);
    if (err) mt_item_free(out);
    return err;
}

mt_status mt_store_item_done(mt_store *s, const char *phase, const char *stage, const char *qid,
                             const char *output) {
    sqlite3_stmt *st;
    /* attempts is kept: it counts failures, which stay part of the item's history */
    mt_status err = mt_store_prepare(
        s,
        "INSERT INTO items(phase, stage, qid, state, attempts, output, error, updated)"
        " VALUES(?1, ?2, ?3, ?4, 0, ?5, NULL, ?6)"
        " ON CONFLICT(phase, stage, qid) DO UPDATE SET state = excluded.state,"
        " output = excluded.output, error = NULL, updated = excluded.updated",
        &st, "mark item done");
    if (err) return err;
    bind_key(st, phase, stage, qid);
    sqlite3_bind_int(st, 4, MT_ITEM_DONE);
    mt_store_bind_text(st, 5, output);
    sqlite3_bind_double(st, 6, mt_store_now());
    return mt_store_step_done(s, st, "mark item done");
}

mt_status mt_store_item_failed(mt_store *s, const char *phase, const char *stage, const char *qid,
                               const char *error) {
    sqlite3_stmt *st;
    /* output is left as it was: a failure after a success (a rerun) should not lose data */
    mt_status err = mt_store_prepare(
        s,
        "INSERT INTO items(phase, stage, qid, state, attempts, output, error, updated)"
        " VALUES(?1, ?2, ?3, ?4, 1, NULL, ?5, ?6)"
        " ON CONFLICT(phase, stage, qid) DO UPDATE SET state = excluded.state,"
        " attempts = attempts + 1, error = excluded.error, updated = excluded.updated",
        &st, "mark item failed");
    if (err) return err;
    bind_key(st, phase, stage, qid);
    sqlite3_bind_int(st, 4, MT_ITEM_FAILED);
    mt_store_bind_text(st, 5, error);
    sqlite3_bind_double(st, 6, mt_store_now());
    return mt_store_step_done(s, st, "mark item failed");
}

void mt_item_free(mt_item *it) {
    free(it->output);
    free(it->error);
    it->output = it->error = NULL;
}

mt_status mt_store_item_counts(mt_store *s, const char *phase, const char *stage,
                               mt_item_counts *out) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "SELECT COALESCE(SUM(state = ?3), 0),"
                                     " COALESCE(SUM(state = ?4), 0) FROM items"
                                     " WHERE phase = ?1 AND stage = ?2",
                                     &st, "count items");
    if (err) return err;
    mt_store_bind_text(st, 1, phase);
    mt_store_bind_text(st, 2, stage);
    sqlite3_bind_int(st, 3, MT_ITEM_DONE);
    sqlite3_bind_int(st, 4, MT_ITEM_FAILED);
    int row;
    err = mt_store_step(s, st, &row, "count items");
    if (!err && row) {
        out->done = sqlite3_column_int64(st, 0);
        out->failed = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return err;
}
