/* Produced records (one JSON object per phase and question) and metrics. */
#include <math.h>
#include <stdlib.h>

#include "store/store_internal.h"

mt_status mt_store_record_put(mt_store *s, const char *phase, const char *qid, const char *json) {
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "INSERT INTO records(phase, qid, json) VALUES(?1, ?2, ?3)"
                                     " ON CONFLICT(phase, qid) DO UPDATE SET json = excluded.json",
                                     &st, "store record");
    if (err) return err;
    mt_store_bind_text(st, 1, phase);
    mt_store_bind_text(st, 2, qid);
    mt_store_bind_text(st, 3, json);
    return mt_store_step_done(s, st, "store record");
}

mt_status mt_store_records(mt_store *s, const char *phase, char ***jsons, int *n) {
    *jsons = NULL;
    *n = 0;
    sqlite3_stmt *st;
    /* records keyed by something other than a question (an adapter, a summary) come last */
    mt_status err = mt_store_prepare(s,
                                     "SELECT r.json FROM records r"
                                     " LEFT JOIN questions q ON q.id = r.qid"
                                     " WHERE r.phase = ?1"
                                     " ORDER BY q.seq IS NULL, q.seq, r.qid",
                                     &st, "read records");
    if (err) return err;
    mt_store_bind_text(st, 1, phase);
    char **v = NULL;
    int len = 0, cap = 0, row = 1;
    while (!(err = mt_store_step(s, st, &row, "read records")) && row) {
        if (len == cap) {
            int grown = cap ? 2 * cap : 64;
            char **nv = realloc(v, (size_t)grown * sizeof *nv);
            if (!nv) {
                err = mt_fail(MT_ERR_NOMEM, "run store: out of memory reading records");
                break;
            }
            v = nv;
            cap = grown;
        }
        v[len] = mt_store_column_dup(st, 0, &err);
        if (err) break;
        len++;
    }
    sqlite3_finalize(st);
    if (err) {
        mt_strings_free(v, len);
        return err;
    }
    *jsons = v;
    *n = len;
    return MT_OK;
}

void mt_strings_free(char **v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

mt_status mt_store_metric(mt_store *s, const char *phase, const char *name, double value) {
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(
        s, "INSERT INTO metrics(phase, name, value, created) VALUES(?1, ?2, ?3, ?4)", &st,
        "store metric");
    if (err) return err;
    mt_store_bind_text(st, 1, phase);
    mt_store_bind_text(st, 2, name);
    /* SQLite would store a NaN as NULL anyway; saying so keeps the read side symmetric */
    if (isnan(value))
        sqlite3_bind_null(st, 3);
    else
        sqlite3_bind_double(st, 3, value);
    sqlite3_bind_double(st, 4, mt_store_now());
    return mt_store_step_done(s, st, "store metric");
}

mt_status mt_store_metric_get(mt_store *s, const char *phase, const char *name, double *value,
                              int *found) {
    *found = 0;
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "SELECT value FROM metrics WHERE phase = ?1 AND name = ?2"
                                     " ORDER BY id DESC LIMIT 1",
                                     &st, "read metric");
    if (err) return err;
    mt_store_bind_text(st, 1, phase);
    mt_store_bind_text(st, 2, name);
    int row;
    err = mt_store_step(s, st, &row, "read metric");
    if (!err && row) {
        *value = sqlite3_column_type(st, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 0);
        *found = 1;
    }
    sqlite3_finalize(st);
    return err;
}
