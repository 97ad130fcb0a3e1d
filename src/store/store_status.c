/* `meteor status`: a plain-text summary of a run store, readable while a run writes. */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define FAILURES_SHOWN 5
#define ERROR_SHOWN 120

/* Copies text onto one line of at most ERROR_SHOWN bytes, cut on a UTF-8 character
 * boundary, so one long or multi-line error cannot swamp the summary. */
static void one_line(const char *text, char *out) {
    size_t n = 0;
    const size_t len = strlen(text);
    for (; n < len && n < ERROR_SHOWN; n++) {
        const unsigned char c = (unsigned char)text[n];
        out[n] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    if (n < len) {
        while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80) n--;
        memcpy(out + n, "...", 4);
    } else {
        out[n] = '\0';
    }
}

/* The integer a one-column query returns (a count, or a width in bytes as printf pads),
 * at least min. */
static mt_status int_at_least(mt_store *s, const char *sql, int min, int *w) {
    *w = min;
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s, sql, &st, "status");
    int row;
    if (!err) err = mt_store_step(s, st, &row, "status");
    if (!err && row && sqlite3_column_int(st, 0) > min) *w = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return err;
}

static const char *text_or(sqlite3_stmt *st, int col, const char *fallback) {
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : fallback;
}

static mt_status print_questions(mt_store *s, FILE *f) {
    int total;
    mt_status err = int_at_least(s, "SELECT COUNT(*) FROM questions", 0, &total);
    sqlite3_stmt *st;
    if (!err)
        err = mt_store_prepare(s,
                               "SELECT split, COUNT(*) FROM questions GROUP BY split"
                               " ORDER BY split IS NULL, split DESC",
                               &st, "status");
    if (err) return err;
    fprintf(f, "questions %d\n", total);
    int row;
    while (!(err = mt_store_step(s, st, &row, "status")) && row)
        fprintf(f, "  %-10s %8lld\n", text_or(st, 0, "unsplit"),
                (long long)sqlite3_column_int64(st, 1));
    sqlite3_finalize(st);
    return err;
}

static mt_status print_items(mt_store *s, FILE *f) {
    int w;
    mt_status err = int_at_least(
        s, "SELECT MAX(length(CAST(phase AS BLOB)) + 1 + length(CAST(stage AS BLOB))) FROM items",
        16, &w);
    sqlite3_stmt *st;
    if (!err)
        err = mt_store_prepare(s,
                               "SELECT phase, stage, SUM(state = ?1), SUM(state = ?2) FROM items"
                               " GROUP BY phase, stage ORDER BY MIN(rowid)",
                               &st, "status");
    if (err) return err;
    sqlite3_bind_int(st, 1, MT_ITEM_DONE);
    sqlite3_bind_int(st, 2, MT_ITEM_FAILED);
    int row, any = 0;
    while (!(err = mt_store_step(s, st, &row, "status")) && row) {
        if (!any) fprintf(f, "\n%-*s %8s %8s\n", w + 2, "items", "done", "failed");
        any = 1;
        char label[512];
        snprintf(label, sizeof label, "%s/%s", text_or(st, 0, ""), text_or(st, 1, ""));
        fprintf(f, "  %-*s %8lld %8lld\n", w, label, (long long)sqlite3_column_int64(st, 2),
                (long long)sqlite3_column_int64(st, 3));
    }
    sqlite3_finalize(st);
    if (!err && !any) fprintf(f, "\nitems: none yet\n");
    return err;
}

static mt_status print_failures(mt_store *s, FILE *f) {
    sqlite3_stmt *st;
    mt_status err = mt_store_prepare(s,
                                     "SELECT phase, stage, qid, attempts, error,"
                                     " COUNT(*) OVER () FROM items WHERE state = ?1"
                                     " ORDER BY rowid LIMIT ?2",
                                     &st, "status");
    if (err) return err;
    sqlite3_bind_int(st, 1, MT_ITEM_FAILED);
    sqlite3_bind_int(st, 2, FAILURES_SHOWN);
    int row, first = 1;
    while (!(err = mt_store_step(s, st, &row, "status")) && row) {
        const long long total = (long long)sqlite3_column_int64(st, 5);
        if (first && total > FAILURES_SHOWN)
            fprintf(f, "\nfailed items %lld (retried on the next run), the first %d:\n", total,
                    FAILURES_SHOWN);
        else if (first)
            fprintf(f, "\nfailed items %lld (retried on the next run):\n", total);
        first = 0;
        char msg[ERROR_SHOWN + 4];
        one_line(text_or(st, 4, "(no message)"), msg);
        const int failures = sqlite3_column_int(st, 3);
        fprintf(f, "  %s/%s %s (%d failure%s): %s\n", text_or(st, 0, ""), text_or(st, 1, ""),
                text_or(st, 2, ""), failures, failures == 1 ? "" : "s", msg);
    }
    sqlite3_finalize(st);
    return err;
}

static void print_usage_row(FILE *f, int w, const char *label, const mt_usage *u) {
    fprintf(f, "  %-*s %9lld %9lld %9lld %14lld %14lld %10.4f\n", w, label, (long long)u->requests,
            (long long)u->attempts, (long long)u->failed_attempts, (long long)u->prompt_tokens,
            (long long)u->completion_tokens, u->cost);
}

static mt_status print_usage(mt_store *s, FILE *f) {
    int w;
    mt_status err = int_at_least(s,
                                 "SELECT MAX(length(CAST(phase AS BLOB))) FROM"
                                 " (SELECT phase FROM requests UNION SELECT phase FROM attempts)",
                                 12, &w);
    sqlite3_stmt *st;
    if (!err)
        err = mt_store_prepare(s,
                               "SELECT phase FROM requests UNION SELECT phase FROM attempts"
                               " ORDER BY phase",
                               &st, "status");
    if (err) return err;
    int row, any = 0;
    while (!(err = mt_store_step(s, st, &row, "status")) && row) {
        if (!any)
            fprintf(f, "\n%-*s %9s %9s %9s %14s %14s %10s\n", w + 2, "expert usage", "requests",
                    "attempts", "failed", "prompt tok", "completion tok", "cost");
        any = 1;
        mt_usage u;
        if ((err = mt_store_usage(s, text_or(st, 0, ""), &u))) break;
        print_usage_row(f, w, text_or(st, 0, ""), &u);
    }
    sqlite3_finalize(st);
    if (err) return err;
    if (!any) {
        fprintf(f, "\nexpert usage: none yet\n");
        return MT_OK;
    }
    mt_usage total;
    if ((err = mt_store_usage(s, NULL, &total))) return err;
    print_usage_row(f, w, "total", &total);
    return MT_OK;
}

static mt_status print_metrics(mt_store *s, FILE *f) {
    int w;
    mt_status err = int_at_least(
        s, "SELECT MAX(length(CAST(phase AS BLOB)) + 2 + length(CAST(name AS BLOB))) FROM metrics",
        20, &w);
    sqlite3_stmt *st;
    if (!err)
        err = mt_store_prepare(s,
                               "SELECT phase, name, value FROM metrics m"
                               " WHERE id = (SELECT MAX(id) FROM metrics"
                               "  WHERE phase = m.phase AND name = m.name)"
                               " ORDER BY phase, name",
                               &st, "status");
    if (err) return err;
    int row, any = 0;
    while (!(err = mt_store_step(s, st, &row, "status")) && row) {
        if (!any) fprintf(f, "\n%-*s %12s\n", w + 2, "metrics (latest)", "value");
        any = 1;
        char label[512];
        snprintf(label, sizeof label, "%s  %s", text_or(st, 0, ""), text_or(st, 1, ""));
        if (sqlite3_column_type(st, 2) == SQLITE_NULL)
            fprintf(f, "  %-*s %12s\n", w, label, "nan");
        else
            fprintf(f, "  %-*s %12.6g\n", w, label, sqlite3_column_double(st, 2));
    }
    sqlite3_finalize(st);
    return err;
}

mt_status mt_store_print_status(mt_store *s, FILE *f) {
    /* one read snapshot, so counts and totals agree while a run keeps committing */
    const int own = !s->in_tx && sqlite3_get_autocommit(s->db);
    if (own && sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return mt_store_fail(s, "status");
    fprintf(f, "run store %s\n", s->path);
    mt_status err = print_questions(s, f);
    if (!err) err = print_items(s, f);
    if (!err) err = print_failures(s, f);
    if (!err) err = print_usage(s, f);
    if (!err) err = print_metrics(s, f);
    if (own) sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (!err && (fflush(f) || ferror(f)))
        err = mt_fail(MT_ERR_IO, "run store %s: cannot write the status", s->path);
    return err;
}
