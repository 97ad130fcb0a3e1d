/* The remote expert's retry policy (HTTP classes, backoff with full jitter, Retry-After in
 * both forms) and its option checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "expert/remote.h"
#include "expert/retry.h"

static void test_classify(void **state) {
    (void)state;
    assert_int_equal(mt_http_classify(200), MT_HTTP_SUCCESS);
    assert_int_equal(mt_http_classify(201), MT_HTTP_SUCCESS);
    assert_int_equal(mt_http_classify(401), MT_HTTP_REFUSED);
    assert_int_equal(mt_http_classify(403), MT_HTTP_REFUSED);
    assert_int_equal(mt_http_classify(404), MT_HTTP_NOT_OPENAI);
    assert_int_equal(mt_http_classify(405), MT_HTTP_NOT_OPENAI);
    assert_int_equal(mt_http_classify(301), MT_HTTP_NOT_OPENAI);
    assert_int_equal(mt_http_classify(400), MT_HTTP_FAIL);
    assert_int_equal(mt_http_classify(413), MT_HTTP_FAIL);
    assert_int_equal(mt_http_classify(422), MT_HTTP_FAIL);
    const long transient[] = {408, 425, 429, 500, 502, 503, 504, 599};
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
        assert_int_equal(mt_http_classify(transient[i]), MT_HTTP_RETRY);
}

static void test_backoff_bounds(void **state) {
    (void)state;
    mt_rng rng;
    mt_rng_seed(&rng, 7);
    for (int retry = 0; retry < 12; retry++) {
        const double ceiling = retry < 6 ? 0.5 * (1 << retry) : 20.0; /* base 0.5, max 20 */
        double hi = 0;
        for (int k = 0; k < 400; k++) {
            const double d = mt_backoff_delay(&rng, retry, 0.5, 20.0);
            assert_true(d >= 0 && d <= ceiling);
            if (d > hi) hi = d;
        }
        assert_true(hi > 0.9 * ceiling); /* full jitter reaches up to the ceiling */
    }
    assert_true(mt_backoff_delay(&rng, 1000, 1.0, 60.0) <= 60.0);
    assert_true(mt_backoff_delay(&rng, 3, 0.0, 60.0) == 0.0);
}

static void test_backoff_seeded(void **state) {
    (void)state;
    mt_rng a, b;
    mt_rng_seed(&a, 42);
    mt_rng_seed(&b, 42);
    for (int i = 0; i < 20; i++)
        assert_true(mt_backoff_delay(&a, i % 5, 1, 60) == mt_backoff_delay(&b, i % 5, 1, 60));
}

static void retry_after(const char *v, double now, double want) {
    double s = -1;
    if (!mt_retry_after_parse(v, now, &s)) fail_msg("\"%s\" did not parse", v);
    if (s < want - 1e-9 || s > want + 1e-9) fail_msg("\"%s\": %g, want %g", v, s, want);
}

static void test_retry_after(void **state) {
    (void)state;
    retry_after("1", 0, 1);
    retry_after(" 120 ", 0, 120);
    retry_after("0", 0, 0);
    retry_after("2.5", 0, 2.5);
    retry_after("86400", 0, MT_RETRY_AFTER_CAP_S);
    /* 784111777 is Sun, 06 Nov 1994 08:49:37 GMT. */
    retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 30, 30);
    retry_after("Sunday, 06-Nov-94 08:49:37 GMT", 784111777 - 5, 5);
    retry_after("Sun Nov  6 08:49:37 1994", 784111777 - 7, 7);
    retry_after("sun, 06 nov 1994 08:49:37 GMT", 784111777, 0);
    retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 100, 0); /* in the past */
    retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 0, MT_RETRY_AFTER_CAP_S);

    double s;
    const char *bad[] = {NULL,
                         "",
                         "soon",
                         "-5",
                         "1x",
                         "Sun, 06 Foo 1994 08:49:37 GMT",
                         "Sun, 32 Nov 1994 08:49:37 GMT",
                         "Sun, 06 Nov 1994 25:49:37 GMT",
                         "Sun, 06 Nov 1994 08:49:37 PST",
                         "Sun, 06 Nov 1994 08:49:37 GMT junk"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (mt_retry_after_parse(bad[i], 0, &s))
            fail_msg("\"%s\" parsed", bad[i] ? bad[i] : "NULL");
}

static void bad_opts(const mt_remote_opts *o, const char *why) {
    mt_expert *e = (mt_expert *)1;
    assert_int_equal(mt_expert_remote_new(o, &e), MT_ERR_ARG);
    assert_null(e);
    if (!strstr(mt_last_error(), why)) fail_msg("\"%s\" lacks \"%s\"", mt_last_error(), why);
}

static void test_options(void **state) {
    (void)state;
    mt_remote_opts d = mt_remote_defaults();
    assert_int_equal(d.concurrency, 4);
    assert_true(d.timeout_s == 120 && d.connect_timeout_s == 10);
    assert_int_equal(d.max_retries, 6);
    assert_true(d.backoff_base_s == 1 && d.backoff_max_s == 60);
    assert_int_equal(d.json_mode, MT_JSON_MODE_SCHEMA);
    assert_true(d.max_cost == 0 && d.max_requests == 0);

    mt_remote_opts o = d;
    o.model = "m";
    bad_opts(&o, "http:// or https://");
    o.url = "ftp://host/v1";
    bad_opts(&o, "http:// or https://");
    o.url = "http://";
    bad_opts(&o, "no host");
    o.url = "https:///v1";
    bad_opts(&o, "no host");
    o.url = "http://127.0.0.1:1/v1";
    o.model = "";
    bad_opts(&o, "model");
    o.model = "m";
    o.concurrency = 0;
    bad_opts(&o, "concurrency");
    o.concurrency = 257;
    bad_opts(&o, "concurrency");
    o.concurrency = 4;
    o.timeout_s = 0;
    bad_opts(&o, "timeouts");
    o.timeout_s = 1;
    o.connect_timeout_s = -1;
    bad_opts(&o, "timeouts");
    o.connect_timeout_s = 1;
    o.max_retries = 101;
    bad_opts(&o, "retries");
    o.max_retries = -1;
    bad_opts(&o, "retries");
    o.max_retries = 0;

    o.url = "HTTP://127.0.0.1:1/v1/";
    o.api_key = "secret";
    mt_expert *e = NULL;
    assert_int_equal(mt_expert_remote_new(&o, &e), MT_OK);
    assert_string_equal(e->name, "m");
    assert_int_equal(e->requests_sent, 0);
    /* Nothing to send: no connection is made. */
    assert_int_equal(e->run(e, NULL, 0, NULL), MT_OK);
    mt_expert_free(e);
    mt_expert_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),       cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_backoff_seeded), cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
