/* The run store, part two: the expert request cache (first answer wins), the attempt log
 * and usage totals, produced records in question order, metrics (the `meteor status`
 * summary is test_store_status.c). Each test gets a fresh store in its own temporary
 * directory. */
#include <math.h>
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

static void add(const char *id, const char *split) {
    mt_question q = {
        .id = (char *)id, .title = "title", .content = "content", .split = (char *)split};
    int added;
    assert_int_equal(mt_store_add_question(ts.store, &q, &added), MT_OK);
    assert_int_equal(added, 1);
}

/* ---- request cache and usage --------------------------------------------------------- */

static void test_request_cache(void **state) {
    (void)state;
    mt_cached_reply r = {.response = (char *)"untouched", .prompt_tokens = -1};
    int found = -1;
    assert_int_equal(mt_store_request_get(ts.store, "h1", &r, &found), MT_OK);
    assert_int_equal(found, 0);
    assert_string_equal(r.response, "untouched");
    assert_int_equal(r.prompt_tokens, -1);

    const char *reply = "{\"answer\": \"it's\\n 中文\"}\nsecond line";
    assert_int_equal(
        mt_store_request_put(ts.store, "h1", "p1", "{\"messages\": []}", reply, 120, 45, 0.0125, 2),
        MT_OK);
    assert_int_equal(mt_store_request_get(ts.store, "h1", &r, &found), MT_OK);
    assert_int_equal(found, 1);
    assert_string_equal(r.response, reply);
    assert_int_equal(r.prompt_tokens, 120);
    assert_int_equal(r.completion_tokens, 45);
    assert_true(r.cost == 0.0125);
    mt_cached_reply_free(&r);
    assert_null(r.response);

    /* the first accepted answer wins; a second put is no error and no second row */
    assert_int_equal(mt_store_request_put(ts.store, "h1", "p1", "{}", "another", 1, 1, 1.0, 1),
                     MT_OK);
    assert_int_equal(mt_store_request_get(ts.store, "h1", &r, &found), MT_OK);
    assert_string_equal(r.response, reply);
    assert_int_equal(r.prompt_tokens, 120);
    mt_cached_reply_free(&r);
    mt_usage u;
    assert_int_equal(mt_store_usage(ts.store, NULL, &u), MT_OK);
    assert_int_equal(u.requests, 1);
    assert_int_equal(u.prompt_tokens, 120);

    /* a reply is required */
    assert_int_equal(mt_store_request_put(ts.store, "h2", "p1", "{}", NULL, 1, 1, 0, 1),
                     MT_ERR_ARG);
}

static void test_attempts_and_usage(void **state) {
    (void)state;
    mt_usage u;
    memset(&u, 0xff, sizeof u);
    assert_int_equal(mt_store_usage(ts.store, NULL, &u), MT_OK);
    assert_int_equal(u.requests, 0);
    assert_int_equal(u.attempts, 0);
    assert_int_equal(u.failed_attempts, 0);
    assert_true(u.cost == 0.0);

    /* h1 answered after one retry, h2 first time, h3 (phase 2) never answered */
    assert_int_equal(mt_store_attempt_log(ts.store, "h1", "p1", 1, 500, "server error", 0.5),
                     MT_OK);
    assert_int_equal(mt_store_attempt_log(ts.store, "h1", "p1", 2, 200, NULL, 1.5), MT_OK);
    assert_int_equal(mt_store_request_put(ts.store, "h1", "p1", "{}", "a", 100, 10, 0.25, 2),
                     MT_OK);
    assert_int_equal(mt_store_attempt_log(ts.store, "h2", "p1", 1, 200, NULL, 1.0), MT_OK);
    assert_int_equal(mt_store_request_put(ts.store, "h2", "p1", "{}", "b", 200, 20, 0.5, 1), MT_OK);
    assert_int_equal(mt_store_attempt_log(ts.store, "h3", "p2", 1, 0, "connection refused", 0.1),
                     MT_OK);
    assert_int_equal(mt_store_attempt_log(ts.store, "h3", "p2", 2, 429, "rate limited", 0.1),
                     MT_OK);
    assert_int_equal(mt_store_request_put(ts.store, "h4", "p2", "{}", "c", 7, 3, 0.125, 1), MT_OK);

    assert_int_equal(mt_store_usage(ts.store, "p1", &u), MT_OK);
    assert_int_equal(u.requests, 2);
    assert_int_equal(u.attempts, 3);
    assert_int_equal(u.failed_attempts, 1);
    assert_int_equal(u.prompt_tokens, 300);
    assert_int_equal(u.completion_tokens, 30);
    assert_true(u.cost == 0.75);

    assert_int_equal(mt_store_usage(ts.store, "p2", &u), MT_OK);
    assert_int_equal(u.requests, 1);
    assert_int_equal(u.attempts, 2);
    assert_int_equal(u.failed_attempts, 2);
    assert_true(u.cost == 0.125);

    assert_int_equal(mt_store_usage(ts.store, NULL, &u), MT_OK);
    assert_int_equal(u.requests, 3);
    assert_int_equal(u.attempts, 5);
    assert_int_equal(u.failed_attempts, 3);
    assert_int_equal(u.prompt_tokens, 307);
    assert_int_equal(u.completion_tokens, 33);
    assert_true(u.cost == 0.875);

    assert_int_equal(mt_store_usage(ts.store, "p3", &u), MT_OK);
    assert_int_equal(u.requests, 0);
    assert_int_equal(u.attempts, 0);
}

/* ---- records and metrics ------------------------------------------------------------- */

static void test_records_in_question_order(void **state) {
    (void)state;
    add("q-b", NULL);
    add("q-a", NULL);
    add("q-c", NULL);
    assert_int_equal(mt_store_record_put(ts.store, "p1", "q-c", "{\"q\": \"c\"}"), MT_OK);
    assert_int_equal(mt_store_record_put(ts.store, "p1", "zz-summary", "{\"z\": 1}"), MT_OK);
    assert_int_equal(mt_store_record_put(ts.store, "p1", "q-b", "{\"q\": \"b, first\"}"), MT_OK);
    assert_int_equal(mt_store_record_put(ts.store, "p1", "aa-adapter", "{\"a\": 1}"), MT_OK);
    assert_int_equal(mt_store_record_put(ts.store, "p1", "q-a", "{\"q\": \"a\"}"), MT_OK);
    assert_int_equal(mt_store_record_put(ts.store, "p2", "q-a", "{\"other\": \"phase\"}"), MT_OK);
    assert_int_equal(mt_store_record_put(ts.store, "p1", "q-b", "{\"q\": \"b, replaced\"}"), MT_OK);

    char **v;
    int n;
    assert_int_equal(mt_store_records(ts.store, "p1", &v, &n), MT_OK);
    assert_int_equal(n, 5);
    const char *want[] = {"{\"q\": \"b, replaced\"}", "{\"q\": \"a\"}", "{\"q\": \"c\"}",
                          "{\"a\": 1}", "{\"z\": 1}"};
    for (int i = 0; i < n; i++) assert_string_equal(v[i], want[i]);
    mt_strings_free(v, n);

    assert_int_equal(mt_store_records(ts.store, "p2", &v, &n), MT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(v[0], "{\"other\": \"phase\"}");
    mt_strings_free(v, n);
    assert_int_equal(mt_store_records(ts.store, "p3", &v, &n), MT_OK);
    assert_int_equal(n, 0);
    mt_strings_free(v, n);
}

static void test_metrics_latest(void **state) {
    (void)state;
    double v = -1;
    int found = -1;
    assert_int_equal(mt_store_metric_get(ts.store, "p1", "loss", &v, &found), MT_OK);
    assert_int_equal(found, 0);
    assert_true(v == -1);
    assert_int_equal(mt_store_metric(ts.store, "p1", "loss", 2.5), MT_OK);
    assert_int_equal(mt_store_metric(ts.store, "p1", "loss", 1.25), MT_OK);
    assert_int_equal(mt_store_metric(ts.store, "p2", "loss", 9.0), MT_OK);
    assert_int_equal(mt_store_metric(ts.store, "p1", "accuracy", 0.5), MT_OK);
    assert_int_equal(mt_store_metric_get(ts.store, "p1", "loss", &v, &found), MT_OK);
    assert_int_equal(found, 1);
    assert_true(v == 1.25);
    assert_int_equal(mt_store_metric_get(ts.store, "p2", "loss", &v, &found), MT_OK);
    assert_true(v == 9.0);
    /* a diverged loss is recorded as such */
    assert_int_equal(mt_store_metric(ts.store, "p1", "loss", NAN), MT_OK);
    assert_int_equal(mt_store_metric_get(ts.store, "p1", "loss", &v, &found), MT_OK);
    assert_int_equal(found, 1);
    assert_true(isnan(v));
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_request_cache),
        T(test_attempts_and_usage),
        T(test_records_in_question_order),
        T(test_metrics_latest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
