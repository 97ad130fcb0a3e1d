/* The one JSONL line reader (io/jsonl.c) behind the question import, the training data and
 * `generate --batch`: one JSON value per line, blank lines skipped but counted, a BOM and
 * CRLF endings accepted, and anything more on a line (a second value, trailing text, a
 * NUL byte) refused with FILE:LINE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "io/jsonl.h"

typedef struct {
    int lines[8];
    char titles[8][16];
    int n;
} seen;

static mt_status collect(void *user, cJSON *value, int line) {
    seen *s = user;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(value, "t");
    if (s->n < 8) {
        s->lines[s->n] = line;
        strncpy(s->titles[s->n], cJSON_IsString(t) ? t->valuestring : "?", 15);
        s->n++;
    }
    cJSON_Delete(value);
    return MT_OK;
}

static mt_status parse(const char *text, size_t len, seen *s) {
    memset(s, 0, sizeof *s);
    mt_clear_error();
    return mt_jsonl_parse_text("in.jsonl", text, len, collect, s);
}

static void expect_error(const char *text, size_t len, const char *want) {
    seen s;
    assert_int_equal(parse(text, len, &s), MT_ERR_FORMAT);
    if (!strstr(mt_last_error(), want)) fail_msg("error '%s', want '%s'", mt_last_error(), want);
}

static void test_lines(void **state) {
    (void)state;
    static const char text[] = "\xef\xbb\xbf{\"t\": \"a\"}\r\n"
                               "\n"
                               "  \t\r\n"
                               "  {\"t\": \"b\"}  \t\r\n"
                               "{\"t\": \"c\"}";
    seen s;
    assert_int_equal(parse(text, sizeof text - 1, &s), MT_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.lines[0], 1);
    assert_string_equal(s.titles[0], "a");
    assert_int_equal(s.lines[1], 4);
    assert_string_equal(s.titles[1], "b");
    assert_int_equal(s.lines[2], 5);
    assert_int_equal(parse("", 0, &s), MT_OK);
    assert_int_equal(s.n, 0);
}

static void test_one_value_per_line(void **state) {
    (void)state;
    static const char two[] = "{\"t\": \"a\"}\n{\"t\": \"a\"} {\"t\": \"b\"}\n";
    expect_error(two, sizeof two - 1,
                 "in.jsonl:2: unexpected text after the JSON value at column 12");
    static const char garbage[] = "{\"t\": \"a\"} garbage\n";
    expect_error(garbage, sizeof garbage - 1, "in.jsonl:1: unexpected text after the JSON value");
    static const char nul_after[] = "{\"t\": \"a\"}\0 {\"t\": \"b\"}\n";
    expect_error(nul_after, sizeof nul_after - 1, "in.jsonl:1: NUL byte in the line");
    static const char nul_inside[] = "\n{\"t\": \"a\0b\"}\n";
    expect_error(nul_inside, sizeof nul_inside - 1, "in.jsonl:2: NUL byte in the line");
    static const char bad[] = "{\"t\": }\n";
    expect_error(bad, sizeof bad - 1, "in.jsonl:1: malformed JSON at column 7");
    static const char cut[] = "{\"t\": \"a\"\n";
    expect_error(cut, sizeof cut - 1, "in.jsonl:1: malformed JSON");
}

static void test_nul_escape(void **state) {
    (void)state;
    /* cJSON would cut "a\u0000b" to "a": the rest of the field would be lost unseen */
    static const char escaped[] = "{\"t\": \"x\"}\n{\"t\": \"a\\u0000b\"}\n";
    expect_error(escaped, sizeof escaped - 1, "in.jsonl:2: a string holds \\u0000");
    static const char in_key[] = "{\"t\\u0000\": 1}\n";
    expect_error(in_key, sizeof in_key - 1, "in.jsonl:1: a string holds \\u0000");
    /* an escaped backslash followed by the text u0000, and other \u escapes, are fine */
    static const char literal[] = "{\"t\": \"a\\\\u0000\", \"u\": \"\\u0041\\\"\"}\n";
    seen s;
    assert_int_equal(parse(literal, sizeof literal - 1, &s), MT_OK);
    assert_string_equal(s.titles[0], "a\\u0000");
}

static mt_status stop_at_two(void *user, cJSON *value, int line) {
    (void)user;
    cJSON_Delete(value);
    return line == 2 ? mt_fail(MT_ERR_ARG, "stop") : MT_OK;
}

static void test_callback_stops(void **state) {
    (void)state;
    static const char text[] = "1\n2\n3\n";
    assert_int_equal(mt_jsonl_parse_text("x", text, sizeof text - 1, stop_at_two, NULL),
                     MT_ERR_ARG);
    assert_int_equal(mt_jsonl_read("/nonexistent/x.jsonl", stop_at_two, NULL), MT_ERR_IO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_one_value_per_line),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_nul_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
