/* Questions: import order, dedupe by id, and the train/test split. */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

mt_status mt_store_add_question(mt_store *s, const mt_question *q, int *added) {
    *added = 0;
    sqlite3_stmt *st;
    /* one statement, so the next seq and the insert are atomic without a transaction; the
     * WHERE 1 lets SQLite parse ON CONFLICT as the upsert clause, not a join constraint */
    mt_status err = mt_store_prepare(
        s,
        "INSERT INTO questions(id, seq, title, content, reference, category, split)"
        " SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6 FROM questions WHERE 1"
        " ON CONFLICT(id) DO NOTHING",
        &st, "add question");
    if (err) return err;
    mt_store_bind_text(st, 1, q->id);
    mt_store_bind_text(st, 2, q->title);
    mt_store_bind_text(st, 3, q->content);
    mt_store_bind_text(st, 4, q->reference);
    mt_store_bind_text(st, 5, q->category);
    mt_store_bind_text(st, 6, q->split);
    err = mt_store_step_done(s, st, "add question");
    if (!err) *added = sqlite3_changes(s->db) > 0;
    return err;
}

mt_status mt_store_set_split(mt_store *s, const char *id, const char *split) {
    sqlite3_stmt *st;
    mt_status err =
        mt_store_prepare(s, "UPDATE questions SET split = ?2 WHERE id = ?1", &st, "set split");
    if (err) return err;
    mt_store_bind_text(st, 1, id);
    mt_store_bind_text(st, 2, split);
    err = mt_store_step_done(s, st, "set split");
    if (!err && sqlite3_changes(s->db) == 0)
        err = mt_fail(MT_ERR_ARG, "run store %s: set split: no question with id %s", s->path,
                      id ? id : "(null)");
    return err;
}

static mt_status read_question(sqlite3_stmt *st, mt_question *q) {
    mt_status err = MT_OK;
    memset(q, 0, sizeof *q);
    q->id = mt_store_column_dup(st, 0, &err);
    q->seq = sqlite3_column_int64(st, 1);
    q->title = mt_store_column_dup(st, 2, &err);
    q->content = mt_store_column_dup(st, 3, &err);
    q->reference = mt_store_column_dup(st, 4, &err);
    q->category = mt_store_column_dup(st, 5, &err);
    q->split = mt_store_column_dup(st, 6, &err);
    return err;
}

mt_status mt_store_questions(mt_store *s, const char *split, mt_question **out, int *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    mt_status err =
        mt_store_prepare(s,
                         "SELECT id, seq, title, content, reference, category, split FROM questions"
                         " WHERE ?1 IS NULL OR split = ?1 ORDER BY seq",
                         &st, "read questions");
    if (err) return err;
    mt_store_bind_text(st, 1, split);
    mt_question *v = NULL;
    int len = 0, cap = 0, row = 1;
    while (!err && !(err = mt_store_step(s, st, &row, "read questions")) && row) {
        if (len == cap) {
            int grown = cap ? 2 * cap : 64;
            mt_question *nv = realloc(v, (size_t)grown * sizeof *nv);
            if (!nv) {
                err = mt_fail(MT_ERR_NOMEM, "run store: out of memory reading questions");
                break;
            }
            v = nv;
            cap = grown;
        }
        err = read_question(st, &v[len++]);
    }
    sqlite3_finalize(st);
    if (err) {
        mt_questions_free(v, len);
        return err;
    }
    *out = v;
    *n = len;
    return MT_OK;
}

void mt_questions_free(mt_question *q, int n) {
    if (!q) return;
    for (int i = 0; i < n; i++) {
        free(q[i].id);
        free(q[i].title);
        free(q[i].content);
        free(q[i].reference);
        free(q[i].category);
        free(q[i].split);
    }
    free(q);
}
