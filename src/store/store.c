/* Opening the run store (connection settings, schema and its version), transactions and
 * the meta table, plus the statement helpers the other store files share. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "store/store_internal.h"

/* The whole schema. Every statement is idempotent so opening an existing run is the same
 * code path as creating one. REAL columns accept NULL because SQLite stores a NaN as NULL
 * and a diverged loss is still worth recording. */
static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta("
    "  key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS questions("
    "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, title TEXT NOT NULL,"
    "  content TEXT NOT NULL, reference TEXT, category TEXT, split TEXT);"
    "CREATE TABLE IF NOT EXISTS items("
    "  phase TEXT NOT NULL, stage TEXT NOT NULL, qid TEXT NOT NULL, state INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0, output TEXT, error TEXT, updated REAL,"
    "  PRIMARY KEY(phase, stage, qid));"
    "CREATE TABLE IF NOT EXISTS requests("
    "  hash TEXT PRIMARY KEY, phase TEXT NOT NULL, request TEXT, response TEXT NOT NULL,"
    "  prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost REAL,"
    "  attempts INTEGER NOT NULL, created REAL);"
    "CREATE INDEX IF NOT EXISTS requests_phase ON requests(phase);"
    "CREATE TABLE IF NOT EXISTS attempts("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, hash TEXT NOT NULL, phase TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL, http_status INTEGER NOT NULL, error TEXT, seconds REAL,"
    "  created REAL);"
    "CREATE INDEX IF NOT EXISTS attempts_phase ON attempts(phase);"
    "CREATE TABLE IF NOT EXISTS records("
    "  phase TEXT NOT NULL, qid TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY(phase, qid));"
    "CREATE TABLE IF NOT EXISTS metrics("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, phase TEXT NOT NULL, name TEXT NOT NULL,"
    "  value REAL, created REAL);"
    "CREATE INDEX IF NOT EXISTS metrics_name ON metrics(phase, name, id);";

mt_status mt_store_fail(mt_store *s, const char *what) {
    const int code = s->db ? sqlite3_errcode(s->db) : SQLITE_NOMEM;
    const char *msg = s->db ? sqlite3_errmsg(s->db) : "out of memory";
    switch (code & 0xff) {
    case SQLITE_NOTADB:
        return mt_fail(MT_ERR_FORMAT, "run store %s: not a SQLite database (%s)", s->path, msg);
    case SQLITE_CORRUPT:
        return mt_fail(MT_ERR_FORMAT, "run store %s: %s: the database is damaged (%s)", s->path,
                       what, msg);
    case SQLITE_NOMEM:
        return mt_fail(MT_ERR_NOMEM, "run store %s: %s: out of memory", s->path, what);
    case SQLITE_CONSTRAINT:
        /* a required value was missing: the caller passed NULL where the API wants text */
        return mt_fail(MT_ERR_ARG, "run store %s: %s: %s", s->path, what, msg);
    case SQLITE_MISUSE:
        return mt_fail(MT_ERR_INTERNAL, "run store %s: %s: %s", s->path, what, msg);
    default:
        return mt_fail(MT_ERR_IO, "run store %s: %s: %s", s->path, what, msg);
    }
}

mt_status mt_store_prepare(mt_store *s, const char *sql, sqlite3_stmt **st, const char *what) {
    *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        mt_status err = mt_store_fail(s, what);
        sqlite3_finalize(*st);
        *st = NULL;
        return err;
    }
    return MT_OK;
}

void mt_store_bind_text(sqlite3_stmt *st, int i, const char *v) {
    /* SQLITE_STATIC: every statement is finalized before the caller's strings go away */
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

mt_status mt_store_step(mt_store *s, sqlite3_stmt *st, int *row, const char *what) {
    const int rc = sqlite3_step(st);
    *row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return MT_OK;
    return mt_store_fail(s, what);
}

mt_status mt_store_step_done(mt_store *s, sqlite3_stmt *st, const char *what) {
    int row;
    mt_status err = mt_store_step(s, st, &row, what);
    sqlite3_finalize(st);
    return err;
}

char *mt_store_column_dup(sqlite3_stmt *st, int col, mt_status *err) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL) return NULL;
    const unsigned char *text = sqlite3_column_text(st, col);
    const int n = sqlite3_column_bytes(st, col);
    char *out = text ? mt_strndup((const char *)text, (size_t)n) : NULL;
    if (!out) *err = mt_fail(MT_ERR_NOMEM, "run store: out of memory reading a value");
    return out;
}

double mt_store_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static mt_status exec(mt_store *s, const char *sql, const char *what) {
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) return mt_store_fail(s, what);
    return MT_OK;
}

/* The schema version recorded in the file, 0 when the file has no run store yet. */
static mt_status read_version(mt_store *s, long *version) {
    *version = 0;
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(
        s, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'", &st, "open");
    int row = 0;
    if (!err) err = mt_store_step(s, st, &row, "open");
    sqlite3_finalize(st);
    if (err || !row) return err;
    char *v = NULL;
    err = mt_store_meta_get(s, "schema_version", &v);
    if (err || !v) return err;
    char *end;
    *version = strtol(v, &end, 10);
    if (end == v || *end || *version <= 0)
        err = mt_fail(MT_ERR_FORMAT, "run store %s: bad schema_version '%s'", s->path, v);
    free(v);
    return err;
}

static mt_status open_schema(mt_store *s) {
    long version;
    mt_status err = read_version(s, &version);
    if (err) return err;
    if (version > MT_STORE_SCHEMA_VERSION)
        return mt_fail(MT_ERR_UNSUPPORTED,
                       "run store %s: schema version %ld is newer than this meteor knows (%d); "
                       "use a newer meteor",
                       s->path, version, MT_STORE_SCHEMA_VERSION);
    /* an up-to-date store needs no write lock, so `meteor status` never waits on a run */
    if (version == MT_STORE_SCHEMA_VERSION) return MT_OK;
    if ((err = exec(s, "BEGIN IMMEDIATE", "create schema"))) return err;
    err = exec(s, SCHEMA, "create schema");
    if (!err)
        err = exec(s, "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '1')",
                   "create schema");
    if (!err) err = exec(s, "COMMIT", "create schema");
    if (err) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

mt_status mt_store_open(const char *path, mt_store **out) {
    *out = NULL;
    mt_store *s = mt_calloc(1, sizeof *s);
    if (!s) return MT_ERR_NOMEM;
    if (!(s->path = mt_strdup(path))) {
        free(s);
        return MT_ERR_NOMEM;
    }
    mt_status err = MT_OK;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        err = mt_store_fail(s, "open");
    if (!err) {
        sqlite3_extended_result_codes(s->db, 1);
        /* a reader (meteor status) and a writer (the run) share the file */
        sqlite3_busy_timeout(s->db, 5000);
        /* the first statement that reads the file: a non-database fails here as NOTADB */
        err = exec(s, "PRAGMA journal_mode=WAL", "open");
    }
    /* WAL with NORMAL survives a killed process; only a power cut may lose the last commits */
    if (!err) err = exec(s, "PRAGMA synchronous=NORMAL", "open");
    if (!err) err = exec(s, "PRAGMA foreign_keys=ON", "open");
    if (!err) err = open_schema(s);
    if (err) {
        mt_store_close(s);
        return err;
    }
    *out = s;
    return MT_OK;
}

void mt_store_close(mt_store *s) {
    if (!s) return;
    /* close_v2 rolls back a transaction left open by an error path */
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

mt_status mt_store_begin(mt_store *s) {
    if (s->in_tx)
        return mt_fail(MT_ERR_INTERNAL, "run store %s: a transaction is already open", s->path);
    mt_status err = exec(s, "BEGIN IMMEDIATE", "begin");
    if (!err) s->in_tx = 1;
    return err;
}

mt_status mt_store_commit(mt_store *s) {
    if (!s->in_tx) return mt_fail(MT_ERR_INTERNAL, "run store %s: commit without begin", s->path);
    /* some errors (disk full, I/O) make SQLite roll the whole transaction back itself */
    if (sqlite3_get_autocommit(s->db)) {
        s->in_tx = 0;
        return mt_fail(MT_ERR_IO, "run store %s: the transaction was rolled back by an error",
                       s->path);
    }
    mt_status err = exec(s, "COMMIT", "commit");
    /* a failed COMMIT (busy) leaves the transaction open for mt_store_rollback */
    if (!err || sqlite3_get_autocommit(s->db)) s->in_tx = 0;
    return err;
}

void mt_store_rollback(mt_store *s) {
    if (!s->in_tx) return;
    s->in_tx = 0;
    /* no mt_fail here: callers roll back after an error whose message must survive */
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

mt_status mt_store_meta_get(mt_store *s, const char *key, char **value) {
    *value = NULL;
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s, "SELECT value FROM meta WHERE key = ?1", &st, "read meta");
    if (err) return err;
    mt_store_bind_text(st, 1, key);
    int row;
    err = mt_store_step(s, st, &row, "read meta");
    if (!err && row) *value = mt_store_column_dup(st, 0, &err);
    sqlite3_finalize(st);
    return err;
}

mt_status mt_store_meta_set(mt_store *s, const char *key, const char *value) {
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                                     " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                     &st, "write meta");
    if (err) return err;
    mt_store_bind_text(st, 1, key);
    mt_store_bind_text(st, 2, value);
    return mt_store_step_done(s, st, "write meta");
}
