/* The run store's summary for `meteor status` (mt_store_status_read): every field of a
 * filled store, an empty store, and a read inside a caller's transaction. Each test gets a
 * fresh store in its own temporary directory. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tmpstore.h"

#include "store/store.h"

static mt_test_store ts; /* this test's store, fresh for each test */

static int setup(void **state) {
    (void)state;
    return mt_test_store_open(&ts, "store_status");
}

static int teardown(void **state) {
    (void)state;
    return mt_test_store_close(&ts);
}

static void add(const char *id, const char *split) {
    mt_question q = {
        .id = (char *)id, .title = "title", .content = "content", .split = (char *)split};
    int added;
    assert_int_equal(mt_store_add_question(ts.store, &q, &added), MT_OK);
    assert_int_equal(added, 1);
}

static void assert_usage(const mt_usage *u, int64_t requests, int64_t attempts,
                         int64_t failed_attempts, int64_t prompt, int64_t completion, double cost) {
    assert_int_equal(u->requests, requests);
    assert_int_equal(u->attempts, attempts);
    assert_int_equal(u->failed_attempts, failed_attempts);
    assert_int_equal(u->prompt_tokens, prompt);
    assert_int_equal(u->completion_tokens, completion);
    assert_true(fabs(u->cost - cost) < 1e-12);
}

static void test_empty_store(void **state) {
    (void)state;
    mt_store_status st;
    assert_int_equal(mt_store_status_read(ts.store, &st), MT_OK);
    assert_string_equal(st.path, ts.db_path);
    assert_int_equal(st.questions, 0);
    assert_int_equal(st.n_splits, 0);
    assert_int_equal(st.n_stages, 0);
    assert_int_equal(st.failed_total, 0);
    assert_int_equal(st.n_failed, 0);
    assert_int_equal(st.n_usage, 0);
    assert_usage(&st.usage_total, 0, 0, 0, 0, 0, 0.0);
    assert_int_equal(st.n_metrics, 0);
    mt_store_status_free(&st);
    assert_null(st.path);
    /* freeing leaves an empty summary, so a second free is harmless */
    mt_store_status_free(&st);
}

static void test_every_field_of_a_filled_store(void **state) {
    (void)state;
    add("q1", "train");
    add("q2", "train");
    add("q3", "test");
    add("q4", NULL);
    add("q5", "train");

    /* stages are listed in the order they were first written, later writes do not move them */
    assert_int_equal(mt_store_item_done(ts.store, "phase1", "guideline", "q1", "g"), MT_OK);
    assert_int_equal(mt_store_item_failed(ts.store, "phase1", "guideline", "q2", "timeout"), MT_OK);
    /* an error of many lines and several hundred bytes, with multi-byte characters, is kept
     * whole: shortening it is formatting */
    char long_error[400];
    memset(long_error, 'x', sizeof long_error - 1);
    long_error[sizeof long_error - 1] = '\0';
    const char start[] = "HTTP 500:\nline two\r\n\tcaf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87";
    memcpy(long_error, start, sizeof start - 1);
    long_error[200] = '\n';
    assert_int_equal(mt_store_item_failed(ts.store, "phase1", "guideline", "q3", "first error"),
                     MT_OK);
    assert_int_equal(mt_store_item_failed(ts.store, "phase1", "guideline", "q3", long_error),
                     MT_OK);
    assert_int_equal(mt_store_item_failed(ts.store, "phase1", "answer", "f0", NULL), MT_OK);
    for (int i = 1; i < 7; i++) {
        char qid[16];
        snprintf(qid, sizeof qid, "f%d", i);
        assert_int_equal(mt_store_item_failed(ts.store, "phase1", "answer", qid, "bad reply"),
                         MT_OK);
    }
    assert_int_equal(mt_store_item_done(ts.store, "phase2", "verdict", "q1", "ok"), MT_OK);
    assert_int_equal(mt_store_item_done(ts.store, "phase1", "guideline", "q2", "g"), MT_OK);
    assert_int_equal(mt_store_item_done(ts.store, "phase1", "guideline", "q5", "g"), MT_OK);

    assert_int_equal(mt_store_attempt_log(ts.store, "h1", "phase1", 1, 500, "oops", 1), MT_OK);
    assert_int_equal(mt_store_attempt_log(ts.store, "h1", "phase1", 2, 200, NULL, 1), MT_OK);
    assert_int_equal(
        mt_store_request_put(ts.store, "h1", "phase1", "{}", "a", 1234, 567, 0.12345, 2), MT_OK);
    assert_int_equal(mt_store_attempt_log(ts.store, "h2", "phase1", 1, 200, NULL, 1), MT_OK);
    assert_int_equal(mt_store_request_put(ts.store, "h2", "phase1", "{}", "b", 100, 50, 0.5, 1),
                     MT_OK);
    assert_int_equal(mt_store_attempt_log(ts.store, "h3", "phase2", 1, 200, NULL, 1), MT_OK);
    assert_int_equal(mt_store_request_put(ts.store, "h3", "phase2", "{}", "c", 10, 20, 0.25, 1),
                     MT_OK);
    /* a phase whose requests all failed has attempts but no cached reply */
    assert_int_equal(mt_store_attempt_log(ts.store, "h4", "judge", 1, 429, "rate limited", 1),
                     MT_OK);

    assert_int_equal(mt_store_metric(ts.store, "phase1", "sft_last_loss", 3.0), MT_OK);
    assert_int_equal(mt_store_metric(ts.store, "phase1", "sft_last_loss", 0.75), MT_OK);
    assert_int_equal(mt_store_metric(ts.store, "phase1", "accuracy", 0.5), MT_OK);
    assert_int_equal(mt_store_metric(ts.store, "phase1", "accuracy", NAN), MT_OK);
    assert_int_equal(mt_store_metric(ts.store, "phase2", "acceptance", 1e-3), MT_OK);
    assert_int_equal(mt_store_metric(ts.store, "phase2", "acceptance", NAN), MT_OK);
    assert_int_equal(mt_store_metric(ts.store, "phase2", "acceptance", 0.25), MT_OK);

    mt_store_status st;
    assert_int_equal(mt_store_status_read(ts.store, &st), MT_OK);
    assert_string_equal(st.path, ts.db_path);

    /* questions: train, test, then those without a split */
    assert_int_equal(st.questions, 5);
    assert_int_equal(st.n_splits, 3);
    assert_string_equal(st.splits[0].split, "train");
    assert_int_equal(st.splits[0].questions, 3);
    assert_string_equal(st.splits[1].split, "test");
    assert_int_equal(st.splits[1].questions, 1);
    assert_null(st.splits[2].split);
    assert_int_equal(st.splits[2].questions, 1);

    assert_int_equal(st.n_stages, 3);
    assert_string_equal(st.stages[0].phase, "phase1");
    assert_string_equal(st.stages[0].stage, "guideline");
    assert_int_equal(st.stages[0].done, 3);
    assert_int_equal(st.stages[0].failed, 1);
    assert_string_equal(st.stages[1].phase, "phase1");
    assert_string_equal(st.stages[1].stage, "answer");
    assert_int_equal(st.stages[1].done, 0);
    assert_int_equal(st.stages[1].failed, 7);
    assert_string_equal(st.stages[2].phase, "phase2");
    assert_string_equal(st.stages[2].stage, "verdict");
    assert_int_equal(st.stages[2].done, 1);
    assert_int_equal(st.stages[2].failed, 0);

    /* failures: 8 in all (q2 failed but is done now), the first 5 in write order */
    assert_int_equal(st.failed_total, 8);
    assert_int_equal(st.n_failed, MT_STORE_STATUS_FAILED_LISTED);
    assert_string_equal(st.failed[0].phase, "phase1");
    assert_string_equal(st.failed[0].stage, "guideline");
    assert_string_equal(st.failed[0].qid, "q3");
    assert_int_equal(st.failed[0].attempts, 2);
    assert_string_equal(st.failed[0].error, long_error);
    assert_string_equal(st.failed[1].stage, "answer");
    assert_string_equal(st.failed[1].qid, "f0");
    assert_int_equal(st.failed[1].attempts, 1);
    assert_null(st.failed[1].error);
    for (int i = 2; i < MT_STORE_STATUS_FAILED_LISTED; i++) {
        char qid[16];
        snprintf(qid, sizeof qid, "f%d", i - 1);
        assert_string_equal(st.failed[i].phase, "phase1");
        assert_string_equal(st.failed[i].stage, "answer");
        assert_string_equal(st.failed[i].qid, qid);
        assert_int_equal(st.failed[i].attempts, 1);
        assert_string_equal(st.failed[i].error, "bad reply");
    }

    /* usage per phase by name, and in total */
    assert_int_equal(st.n_usage, 3);
    assert_string_equal(st.usage[0].phase, "judge");
    assert_usage(&st.usage[0].usage, 0, 1, 1, 0, 0, 0.0);
    assert_string_equal(st.usage[1].phase, "phase1");
    assert_usage(&st.usage[1].usage, 2, 3, 1, 1334, 617, 0.62345);
    assert_string_equal(st.usage[2].phase, "phase2");
    assert_usage(&st.usage[2].usage, 1, 1, 0, 10, 20, 0.25);
    assert_usage(&st.usage_total, 3, 5, 2, 1344, 637, 0.87345);

    /* the latest value of each metric, by phase and name; a NaN stays NaN */
    assert_int_equal(st.n_metrics, 3);
    assert_string_equal(st.metrics[0].phase, "phase1");
    assert_string_equal(st.metrics[0].name, "accuracy");
    assert_true(isnan(st.metrics[0].value));
    assert_string_equal(st.metrics[1].phase, "phase1");
    assert_string_equal(st.metrics[1].name, "sft_last_loss");
    assert_true(st.metrics[1].value == 0.75);
    assert_string_equal(st.metrics[2].phase, "phase2");
    assert_string_equal(st.metrics[2].name, "acceptance");
    assert_true(st.metrics[2].value == 0.25);
    mt_store_status_free(&st);
    assert_null(st.splits);
    assert_int_equal(st.n_metrics, 0);
}

/* A failure count of exactly the listed number shows all of them. */
static void test_few_failures_all_listed(void **state) {
    (void)state;
    assert_int_equal(mt_store_item_failed(ts.store, "p", "a", "q1", "e1"), MT_OK);
    assert_int_equal(mt_store_item_failed(ts.store, "p", "a", "q2", "e2"), MT_OK);
    mt_store_status st;
    assert_int_equal(mt_store_status_read(ts.store, &st), MT_OK);
    assert_int_equal(st.failed_total, 2);
    assert_int_equal(st.n_failed, 2);
    assert_string_equal(st.failed[0].error, "e1");
    assert_string_equal(st.failed[1].error, "e2");
    mt_store_status_free(&st);
}

/* The summary reads inside a caller's transaction too, and leaves it open. */
static void test_read_in_transaction(void **state) {
    (void)state;
    assert_int_equal(mt_store_begin(ts.store), MT_OK);
    add("q1", "train");
    mt_store_status st;
    assert_int_equal(mt_store_status_read(ts.store, &st), MT_OK);
    assert_int_equal(st.questions, 1);
    mt_store_status_free(&st);
    mt_store_rollback(ts.store);
    assert_int_equal(mt_store_status_read(ts.store, &st), MT_OK);
    assert_int_equal(st.questions, 0);
    assert_int_equal(st.n_splits, 0);
    mt_store_status_free(&st);
    /* and the store still takes its own transactions afterwards */
    assert_int_equal(mt_store_begin(ts.store), MT_OK);
    add("q2", "test");
    assert_int_equal(mt_store_commit(ts.store), MT_OK);
    assert_int_equal(mt_store_status_read(ts.store, &st), MT_OK);
    assert_int_equal(st.questions, 1);
    assert_string_equal(st.splits[0].split, "test");
    mt_store_status_free(&st);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_empty_store),
        T(test_every_field_of_a_filled_store),
        T(test_few_failures_all_listed),
        T(test_read_in_transaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
