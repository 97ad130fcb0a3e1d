/* The expert request cache (one row per distinct request hash), the log of HTTP attempts,
 * and the usage totals derived from both. */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

mt_status mt_store_request_get(mt_store *s, const char *hash, mt_cached_reply *out, int *found) {
    *found = 0;
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "SELECT response, prompt_tokens, completion_tokens, cost"
                                     " FROM requests WHERE hash = ?1",
                                     &st, "read cached request");
    if (err) return err;
    mt_store_bind_text(st, 1, hash);
    int row;
    err = mt_store_step(s, st, &row, "read cached request");
    if (!err && row) {
        char *response = mt_store_column_dup(st, 0, &err);
        if (!err) {
            out->response = response;
            out->prompt_tokens = sqlite3_column_int64(st, 1);
            out->completion_tokens = sqlite3_column_int64(st, 2);
            out->cost = sqlite3_column_double(st, 3);
            *found = 1;
        }
    }
    sqlite3_finalize(st);
    return err;
}

mt_status mt_store_request_put(mt_store *s, const char *hash, const char *phase,
                               const char *request_json, const char *response,
                               int64_t prompt_tokens, int64_t completion_tokens, double cost,
                               int attempts) {
    sqlite3_stmt *st;
    /* The first accepted answer wins: a second one for the same hash (two passes racing,
     * or a retry after a lost commit acknowledgement) is dropped, never duplicated. DO
     * NOTHING rather than OR IGNORE so a missing response is still an error. */
    mt_status err = mt_store_prepare(
        s,
        "INSERT INTO requests(hash, phase, request, response, prompt_tokens,"
        " completion_tokens, cost, attempts, created) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        " ON CONFLICT(hash) DO NOTHING",
        &st, "store request");
    if (err) return err;
    mt_store_bind_text(st, 1, hash);
    mt_store_bind_text(st, 2, phase);
    mt_store_bind_text(st, 3, request_json);
    mt_store_bind_text(st, 4, response);
    sqlite3_bind_int64(st, 5, prompt_tokens);
    sqlite3_bind_int64(st, 6, completion_tokens);
    sqlite3_bind_double(st, 7, cost);
    sqlite3_bind_int(st, 8, attempts);
    sqlite3_bind_double(st, 9, mt_store_now());
    return mt_store_step_done(s, st, "store request");
}

void mt_cached_reply_free(mt_cached_reply *r) {
    free(r->response);
    r->response = NULL;
}

mt_status mt_store_attempt_log(mt_store *s, const char *hash, const char *phase, int attempt,
                               int http_status, const char *error, double seconds) {
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(
        s,
        "INSERT INTO attempts(hash, phase, attempt, http_status, error, seconds, created)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &st, "log attempt");
    if (err) return err;
    mt_store_bind_text(st, 1, hash);
    mt_store_bind_text(st, 2, phase);
    sqlite3_bind_int(st, 3, attempt);
    sqlite3_bind_int(st, 4, http_status);
    mt_store_bind_text(st, 5, error);
    sqlite3_bind_double(st, 6, seconds);
    sqlite3_bind_double(st, 7, mt_store_now());
    return mt_store_step_done(s, st, "log attempt");
}

mt_status mt_store_usage(mt_store *s, const char *phase, mt_usage *out) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(
        s,
        "SELECT (SELECT COUNT(*) FROM requests WHERE ?1 IS NULL OR phase = ?1),"
        " (SELECT COALESCE(SUM(prompt_tokens), 0) FROM requests WHERE ?1 IS NULL OR phase = ?1),"
        " (SELECT COALESCE(SUM(completion_tokens), 0) FROM requests"
        "  WHERE ?1 IS NULL OR phase = ?1),"
        " (SELECT COALESCE(SUM(cost), 0) FROM requests WHERE ?1 IS NULL OR phase = ?1),"
        " (SELECT COUNT(*) FROM attempts WHERE ?1 IS NULL OR phase = ?1),"
        " (SELECT COUNT(error) FROM attempts WHERE ?1 IS NULL OR phase = ?1)",
        &st, "read usage");
    if (err) return err;
    mt_store_bind_text(st, 1, phase);
    int row;
    err = mt_store_step(s, st, &row, "read usage");
    if (!err && row) {
        out->requests = sqlite3_column_int64(st, 0);
        out->prompt_tokens = sqlite3_column_int64(st, 1);
        out->completion_tokens = sqlite3_column_int64(st, 2);
        out->cost = sqlite3_column_double(st, 3);
        out->attempts = sqlite3_column_int64(st, 4);
        out->failed_attempts = sqlite3_column_int64(st, 5);
    }
    sqlite3_finalize(st);
    return err;
}
