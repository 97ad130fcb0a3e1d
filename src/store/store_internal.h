/* What the store's files share: the handle and the few helpers every query needs, so each
 * public function is "prepare, bind, step, read columns" with one error path. */
#ifndef MT_STORE_STORE_INTERNAL_H
#define MT_STORE_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

#define MT_STORE_SCHEMA_VERSION 1

struct mt_store {
    sqlite3 *db;
    char *path;
    int in_tx; /* inside mt_store_begin .. commit/rollback */
};

/* Records "run store PATH: WHAT: sqlite's message" with a status that says whether the
 * file is bad (FORMAT), memory ran out, or anything else went wrong (IO). */
mt_status mt_store_fail(mt_store *s, const char *what);

mt_status mt_store_prepare(mt_store *s, const char *sql, sqlite3_stmt **st, const char *what);

/* Binds a string, or SQL NULL when v is NULL. Bind indices are 1-based. */
void mt_store_bind_text(sqlite3_stmt *st, int i, const char *v);

/* Steps a statement that returns no rows and finalizes it. */
mt_status mt_store_step_done(mt_store *s, sqlite3_stmt *st, const char *what);

/* Steps once: MT_OK with *row = 1 for a row, *row = 0 when done; on error the statement is
 * left for the caller to finalize. */
mt_status mt_store_step(mt_store *s, sqlite3_stmt *st, int *row, const char *what);

/* A malloc'ed copy of a text column, NULL for SQL NULL; on out of memory also NULL, with
 * *err set to MT_ERR_NOMEM (left alone otherwise, so several columns share one check). */
char *mt_store_column_dup(sqlite3_stmt *st, int col, mt_status *err);

/* Seconds since the Unix epoch, for the `created` and `updated` columns. */
double mt_store_now(void);

#endif
