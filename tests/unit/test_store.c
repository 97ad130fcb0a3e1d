/* The run store, part one: opening (create, reopen, a file that is not a database, a
 * newer schema), meta, questions and splits, item state, and transactions (rollback
 * really discards, a reader never sees uncommitted writes). Each test gets a fresh
 * store in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpstore.h"
#include <sqlite3.h>

#include "store/store.h"

static mt_test_store ts; /* this test's store, fresh for each test */

static int setup(void **state) {
    (void)state;
    return mt_test_store_open(&ts, "store");
}

static int teardown(void **state) {
    (void)state;
    return mt_test_store_close(&ts);
}

static void reopen(void) {
    mt_store_close(ts.store);
    ts.store = NULL;
    assert_int_equal(mt_store_open(ts.db_path, &ts.store), MT_OK);
}

static void add(const char *id, const char *title, const char *split, int want_added) {
    mt_question q = {.id = (char *)id,
                     .seq = 999,
                     .title = (char *)title,
                     .content = "content of a question",
                     .split = (char *)split};
    int added = -1;
    assert_int_equal(mt_store_add_question(ts.store, &q, &added), MT_OK);
    assert_int_equal(added, want_added);
}

static void assert_meta(const char *key, const char *want) {
    char *v = (char *)"unset";
    assert_int_equal(mt_store_meta_get(ts.store, key, &v), MT_OK);
    if (!want) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

/* ---- opening ------------------------------------------------------------------------- */

static void test_create_and_reopen(void **state) {
    (void)state;
    assert_meta("schema_version", "1");
    assert_int_equal(mt_store_meta_set(ts.store, "model", "tiny"), MT_OK);
    add("q1", "first", NULL, 1);
    reopen();
    assert_meta("model", "tiny");
    assert_meta("schema_version", "1");
    mt_question *qs;
    int n;
    assert_int_equal(mt_store_questions(ts.store, NULL, &qs, &n), MT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(qs[0].id, "q1");
    mt_questions_free(qs, n);

    /* the file is in WAL mode, so a status reader and a run writer do not block each other */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(ts.db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_not_a_database(void **state) {
    (void)state;
    char p[160];
    snprintf(p, sizeof p, "%s/garbage.db", ts.dir);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    for (int i = 0; i < 4096; i++) fputc("not sqlite\n"[i % 11] ^ (i & 7), f);
    fclose(f);
    mt_store *bad = (mt_store *)&bad;
    assert_int_equal(mt_store_open(p, &bad), MT_ERR_FORMAT);
    assert_null(bad);
    assert_non_null(strstr(mt_last_error(), p));
    assert_non_null(strstr(mt_last_error(), "not a SQLite database"));

    /* a directory that does not exist is an I/O error, not a crash */
    snprintf(p, sizeof p, "%s/missing/run.db", ts.dir);
    assert_int_equal(mt_store_open(p, &bad), MT_ERR_IO);
    assert_null(bad);
    assert_non_null(strstr(mt_last_error(), p));
}

static void test_newer_schema_refused(void **state) {
    (void)state;
    assert_int_equal(mt_store_meta_set(ts.store, "schema_version", "2"), MT_OK);
    mt_store_close(ts.store);
    ts.store = NULL;
    assert_int_equal(mt_store_open(ts.db_path, &ts.store), MT_ERR_UNSUPPORTED);
    assert_null(ts.store);
    assert_non_null(strstr(mt_last_error(), "newer"));
    assert_non_null(strstr(mt_last_error(), ts.db_path));
}

static void test_meta(void **state) {
    (void)state;
    assert_meta("seed", NULL);
    assert_int_equal(mt_store_meta_set(ts.store, "seed", "42"), MT_OK);
    assert_meta("seed", "42");
    assert_int_equal(mt_store_meta_set(ts.store, "seed", "43"), MT_OK);
    assert_meta("seed", "43");
    assert_meta("other", NULL);
}

/* ---- questions ----------------------------------------------------------------------- */

static void test_questions_dedupe_and_order(void **state) {
    (void)state;
    add("c", "third id, first in", NULL, 1);
    add("a", "first id, second in", NULL, 1);
    add("b", "second id, third in", NULL, 1);
    add("a", "a duplicate with another title", NULL, 0);
    mt_question q = {
        .id = "d", .title = "t", .content = "x", .reference = "ref", .category = "cat"};
    int added;
    assert_int_equal(mt_store_add_question(ts.store, &q, &added), MT_OK);
    assert_int_equal(added, 1);

    mt_question *qs;
    int n;
    assert_int_equal(mt_store_questions(ts.store, NULL, &qs, &n), MT_OK);
    assert_int_equal(n, 4);
    const char *ids[] = {"c", "a", "b", "d"};
    for (int i = 0; i < n; i++) {
        assert_string_equal(qs[i].id, ids[i]);
        assert_int_equal(qs[i].seq, i + 1);
        assert_null(qs[i].split);
    }
    assert_string_equal(qs[1].title, "first id, second in");
    assert_null(qs[0].reference);
    assert_null(qs[0].category);
    assert_string_equal(qs[3].reference, "ref");
    assert_string_equal(qs[3].category, "cat");
    mt_questions_free(qs, n);

    /* a question without its required text is refused, not silently dropped */
    mt_question bad = {.id = "e", .title = "t"};
    assert_int_equal(mt_store_add_question(ts.store, &bad, &added), MT_ERR_ARG);
    assert_int_equal(added, 0);
}

static void test_splits(void **state) {
    (void)state;
    add("q1", "one", NULL, 1);
    add("q2", "two", NULL, 1);
    add("q3", "three", "train", 1);
    add("q4", "four", NULL, 1);
    assert_int_equal(mt_store_set_split(ts.store, "q1", "test"), MT_OK);
    assert_int_equal(mt_store_set_split(ts.store, "q2", "train"), MT_OK);
    assert_int_equal(mt_store_set_split(ts.store, "nope", "train"), MT_ERR_ARG);
    assert_non_null(strstr(mt_last_error(), "nope"));

    mt_question *qs;
    int n;
    assert_int_equal(mt_store_questions(ts.store, "train", &qs, &n), MT_OK);
    assert_int_equal(n, 2);
    assert_string_equal(qs[0].id, "q2");
    assert_string_equal(qs[1].id, "q3");
    assert_string_equal(qs[0].split, "train");
    mt_questions_free(qs, n);
    assert_int_equal(mt_store_questions(ts.store, "test", &qs, &n), MT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(qs[0].id, "q1");
    mt_questions_free(qs, n);
    assert_int_equal(mt_store_questions(ts.store, "other", &qs, &n), MT_OK);
    assert_int_equal(n, 0);
    mt_questions_free(qs, n);
    assert_int_equal(mt_store_questions(ts.store, NULL, &qs, &n), MT_OK);
    assert_int_equal(n, 4);
    assert_null(qs[3].split);
    mt_questions_free(qs, n);
}

/* ---- items --------------------------------------------------------------------------- */

static void get_item(const char *stage, const char *qid, mt_item *it) {
    assert_int_equal(mt_store_item_get(ts.store, "p1", stage, qid, it), MT_OK);
}

static void test_items_lifecycle(void **state) {
    (void)state;
    mt_item it;
    get_item("answer", "q1", &it);
    assert_int_equal(it.state, MT_ITEM_PENDING);
    assert_int_equal(it.attempts, 0);
    assert_null(it.output);
    assert_null(it.error);
    mt_item_free(&it);

    assert_int_equal(mt_store_item_failed(ts.store, "p1", "answer", "q1", "HTTP 500"), MT_OK);
    get_item("answer", "q1", &it);
    assert_int_equal(it.state, MT_ITEM_FAILED);
    assert_int_equal(it.attempts, 1);
    assert_string_equal(it.error, "HTTP 500");
    assert_null(it.output);
    mt_item_free(&it);

    assert_int_equal(mt_store_item_failed(ts.store, "p1", "answer", "q1", "timeout"), MT_OK);
    get_item("answer", "q1", &it);
    assert_int_equal(it.attempts, 2);
    assert_string_equal(it.error, "timeout");
    mt_item_free(&it);

    assert_int_equal(mt_store_item_done(ts.store, "p1", "answer", "q1", "the answer"), MT_OK);
    get_item("answer", "q1", &it);
    assert_int_equal(it.state, MT_ITEM_DONE);
    assert_int_equal(it.attempts, 2);
    assert_string_equal(it.output, "the answer");
    assert_null(it.error);
    mt_item_free(&it);

    /* done again replaces the output; other stages and phases are separate items */
    assert_int_equal(mt_store_item_done(ts.store, "p1", "answer", "q1", NULL), MT_OK);
    get_item("answer", "q1", &it);
    assert_int_equal(it.state, MT_ITEM_DONE);
    assert_null(it.output);
    mt_item_free(&it);
    get_item("score", "q1", &it);
    assert_int_equal(it.state, MT_ITEM_PENDING);
    mt_item_free(&it);
    assert_int_equal(mt_store_item_get(ts.store, "p2", "answer", "q1", &it), MT_OK);
    assert_int_equal(it.state, MT_ITEM_PENDING);
    mt_item_free(&it);
}

static void test_item_counts(void **state) {
    (void)state;
    mt_item_counts c = {7, 7};
    assert_int_equal(mt_store_item_counts(ts.store, "p1", "answer", &c), MT_OK);
    assert_int_equal(c.done, 0);
    assert_int_equal(c.failed, 0);
    assert_int_equal(mt_store_item_done(ts.store, "p1", "answer", "q1", "x"), MT_OK);
    assert_int_equal(mt_store_item_done(ts.store, "p1", "answer", "q2", "y"), MT_OK);
    assert_int_equal(mt_store_item_failed(ts.store, "p1", "answer", "q3", "e"), MT_OK);
    assert_int_equal(mt_store_item_failed(ts.store, "p1", "answer", "q3", "e"), MT_OK);
    assert_int_equal(mt_store_item_failed(ts.store, "p1", "score", "q1", "e"), MT_OK);
    assert_int_equal(mt_store_item_done(ts.store, "p2", "answer", "q4", "z"), MT_OK);
    assert_int_equal(mt_store_item_counts(ts.store, "p1", "answer", &c), MT_OK);
    assert_int_equal(c.done, 2);
    assert_int_equal(c.failed, 1);
    assert_int_equal(mt_store_item_counts(ts.store, "p1", "score", &c), MT_OK);
    assert_int_equal(c.done, 0);
    assert_int_equal(c.failed, 1);
    /* a failed item that later succeeds moves from one count to the other */
    assert_int_equal(mt_store_item_done(ts.store, "p1", "answer", "q3", "ok"), MT_OK);
    assert_int_equal(mt_store_item_counts(ts.store, "p1", "answer", &c), MT_OK);
    assert_int_equal(c.done, 3);
    assert_int_equal(c.failed, 0);
}

/* ---- transactions -------------------------------------------------------------------- */

static void test_rollback_discards(void **state) {
    (void)state;
    assert_int_equal(mt_store_begin(ts.store), MT_OK);
    add("q1", "one", NULL, 1);
    assert_int_equal(mt_store_item_done(ts.store, "p1", "answer", "q1", "out"), MT_OK);
    assert_int_equal(mt_store_meta_set(ts.store, "k", "v"), MT_OK);
    assert_int_equal(mt_store_record_put(ts.store, "p1", "q1", "{}"), MT_OK);
    mt_store_rollback(ts.store);

    mt_question *qs;
    int n;
    assert_int_equal(mt_store_questions(ts.store, NULL, &qs, &n), MT_OK);
    assert_int_equal(n, 0);
    mt_questions_free(qs, n);
    mt_item it;
    get_item("answer", "q1", &it);
    assert_int_equal(it.state, MT_ITEM_PENDING);
    mt_item_free(&it);
    assert_meta("k", NULL);
    char **recs;
    assert_int_equal(mt_store_records(ts.store, "p1", &recs, &n), MT_OK);
    assert_int_equal(n, 0);
    mt_strings_free(recs, n);

    /* the next question after a rolled back one still gets the first number */
    add("q2", "two", NULL, 1);
    assert_int_equal(mt_store_questions(ts.store, NULL, &qs, &n), MT_OK);
    assert_int_equal(qs[0].seq, 1);
    mt_questions_free(qs, n);
}

static void test_commit_persists(void **state) {
    (void)state;
    assert_int_equal(mt_store_begin(ts.store), MT_OK);
    add("q1", "one", NULL, 1);
    add("q2", "two", NULL, 1);
    add("q1", "one again", NULL, 0); /* seen inside the same transaction */
    assert_int_equal(mt_store_item_failed(ts.store, "p1", "answer", "q1", "e"), MT_OK);
    assert_int_equal(mt_store_item_failed(ts.store, "p1", "answer", "q1", "e"), MT_OK);
    assert_int_equal(mt_store_commit(ts.store), MT_OK);
    reopen();
    mt_question *qs;
    int n;
    assert_int_equal(mt_store_questions(ts.store, NULL, &qs, &n), MT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(qs[1].seq, 2);
    mt_questions_free(qs, n);
    mt_item it;
    get_item("answer", "q1", &it);
    assert_int_equal(it.attempts, 2);
    mt_item_free(&it);
}

static void test_transaction_misuse(void **state) {
    (void)state;
    assert_int_equal(mt_store_commit(ts.store), MT_ERR_INTERNAL);
    mt_store_rollback(ts.store); /* nothing open: a no-op */
    assert_int_equal(mt_store_begin(ts.store), MT_OK);
    assert_int_equal(mt_store_begin(ts.store), MT_ERR_INTERNAL);
    add("q1", "one", NULL, 1);
    assert_int_equal(mt_store_commit(ts.store), MT_OK);
    assert_int_equal(mt_store_commit(ts.store), MT_ERR_INTERNAL);
}

/* A write that fails inside a transaction fails alone: the caller decides whether to roll
 * back, and the error message it reports survives the rollback. */
static void test_failed_write_inside_transaction(void **state) {
    (void)state;
    assert_int_equal(mt_store_begin(ts.store), MT_OK);
    add("q1", "one", NULL, 1);
    assert_int_equal(mt_store_set_split(ts.store, "missing", "train"), MT_ERR_ARG);
    assert_int_equal(mt_store_set_split(ts.store, "q1", "train"), MT_OK);
    assert_int_equal(mt_store_commit(ts.store), MT_OK);
    mt_question *qs;
    int n;
    assert_int_equal(mt_store_questions(ts.store, "train", &qs, &n), MT_OK);
    assert_int_equal(n, 1);
    mt_questions_free(qs, n);

    assert_int_equal(mt_store_begin(ts.store), MT_OK);
    assert_int_equal(mt_store_set_split(ts.store, "q1", "test"), MT_OK);
    assert_int_equal(mt_store_set_split(ts.store, "missing", "train"), MT_ERR_ARG);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", mt_last_error());
    mt_store_rollback(ts.store);
    assert_string_equal(mt_last_error(), msg);
    assert_int_equal(mt_store_questions(ts.store, "train", &qs, &n), MT_OK);
    assert_int_equal(n, 1);
    mt_questions_free(qs, n);
}

/* A second connection (meteor status beside a run) opens while a transaction is open and
 * never sees its writes until the commit. */
static void test_reader_sees_only_commits(void **state) {
    (void)state;
    assert_int_equal(mt_store_begin(ts.store), MT_OK);
    add("q1", "one", NULL, 1);
    mt_store *r = NULL;
    assert_int_equal(mt_store_open(ts.db_path, &r), MT_OK);
    mt_question *qs;
    int n;
    assert_int_equal(mt_store_questions(r, NULL, &qs, &n), MT_OK);
    assert_int_equal(n, 0);
    mt_questions_free(qs, n);
    assert_int_equal(mt_store_commit(ts.store), MT_OK);
    assert_int_equal(mt_store_questions(r, NULL, &qs, &n), MT_OK);
    assert_int_equal(n, 1);
    mt_questions_free(qs, n);
    mt_store_close(r);
}

/* ---- text ---------------------------------------------------------------------------- */

static void test_strings_round_trip(void **state) {
    (void)state;
    const char *odd = "it's \"quoted\"; DROP TABLE items; --\nline two\ttab\r\n"
                      "unicode: é ü 中文 🚀 \\backslash\\ %s %d";
    mt_question q = {.id = (char *)odd,
                     .title = (char *)odd,
                     .content = (char *)odd,
                     .reference = (char *)odd,
                     .category = (char *)odd};
    int added;
    assert_int_equal(mt_store_add_question(ts.store, &q, &added), MT_OK);
    assert_int_equal(added, 1);
    assert_int_equal(mt_store_set_split(ts.store, odd, odd), MT_OK);
    assert_int_equal(mt_store_meta_set(ts.store, odd, odd), MT_OK);
    assert_int_equal(mt_store_item_failed(ts.store, odd, odd, odd, odd), MT_OK);
    assert_int_equal(mt_store_item_done(ts.store, odd, odd, odd, odd), MT_OK);
    reopen();
    mt_question *qs;
    int n;
    assert_int_equal(mt_store_questions(ts.store, odd, &qs, &n), MT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(qs[0].id, odd);
    assert_string_equal(qs[0].title, odd);
    assert_string_equal(qs[0].content, odd);
    assert_string_equal(qs[0].reference, odd);
    assert_string_equal(qs[0].category, odd);
    assert_string_equal(qs[0].split, odd);
    mt_questions_free(qs, n);
    assert_meta(odd, odd);
    mt_item it;
    assert_int_equal(mt_store_item_get(ts.store, odd, odd, odd, &it), MT_OK);
    assert_int_equal(it.state, MT_ITEM_DONE);
    assert_string_equal(it.output, odd);
    mt_item_free(&it);
    /* the empty string is a value, not NULL */
    assert_int_equal(mt_store_meta_set(ts.store, "empty", ""), MT_OK);
    assert_meta("empty", "");
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_create_and_reopen),
        T(test_not_a_database),
        T(test_newer_schema_refused),
        T(test_meta),
        T(test_questions_dedupe_and_order),
        T(test_splits),
        T(test_items_lifecycle),
        T(test_item_counts),
        T(test_rollback_discards),
        T(test_commit_persists),
        T(test_transaction_misuse),
        T(test_failed_write_inside_transaction),
        T(test_reader_sees_only_commits),
        T(test_strings_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
