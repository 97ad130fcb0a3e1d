/* Importing questions (pipeline/questions.c): both file shapes (JSONL and a JSON array)
 * and both record formats, ids stable under whitespace changes, duplicates dropped, a bad
 * record failing the whole import with nothing stored, one JSON value per JSONL line, and a split
 * drawn per id that does not move when questions are added and cannot be redrawn with other
 * settings. */
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

#include "pipeline/questions.h"

static mt_test_store ts; /* this test's store, fresh for each test */

static int setup(void **state) {
    (void)state;
    return mt_test_store_open(&ts, "questions");
}

static int teardown(void **state) {
    (void)state;
    return mt_test_store_close(&ts);
}

static const char *write_file(const char *name, const char *text) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", ts.dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int count(const char *split) {
    mt_question *q = NULL;
    int n = 0;
    assert_int_equal(mt_store_questions(ts.store, split, &q, &n), MT_OK);
    mt_questions_free(q, n);
    return n;
}

static void test_ids_ignore_whitespace(void **state) {
    (void)state;
    char a[17], b[17], c[17];
    mt_question_id("What is  a list?", "Explain\n lists.", a);
    mt_question_id(" What is a list? ", "Explain lists.", b);
    mt_question_id("What is a list?", "Explain tuples.", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 16);
}

static void test_jsonl_both_formats_and_dedupe(void **state) {
    (void)state;
    const char *p = write_file(
        "q.jsonl",
        "{\"title\": \"T1\", \"question_content\": \"C1\", \"reference_answer\": \"R1\"}\n"
        "\n"
        "{\"question\": \"Generic?\", \"answer\": \"ref\", \"category\": \"cat\"}\n"
        "{\"title\": \"T1 \", \"question_content\": \" C1\"}\n");
    mt_import_stats st;
    assert_int_equal(mt_questions_import(ts.store, p, &st), MT_OK);
    assert_int_equal(st.read, 3);
    assert_int_equal(st.added, 2);
    assert_int_equal(st.duplicates, 1);
    mt_question *q = NULL;
    int n = 0;
    assert_int_equal(mt_store_questions(ts.store, NULL, &q, &n), MT_OK);
    assert_int_equal(n, 2);
    assert_string_equal(q[0].title, "T1");
    assert_string_equal(q[0].reference, "R1");
    assert_string_equal(q[1].title, "Generic?");
    assert_string_equal(q[1].category, "cat");
    mt_questions_free(q, n);
    /* Importing again adds nothing. */
    assert_int_equal(mt_questions_import(ts.store, p, &st), MT_OK);
    assert_int_equal(st.added, 0);
    assert_int_equal(st.duplicates, 3);
}

static void test_json_array(void **state) {
    (void)state;
    const char *p = write_file("q.json", "  [{\"title\": \"A\"}, {\"question_content\": \"B\"}]");
    mt_import_stats st;
    assert_int_equal(mt_questions_import(ts.store, p, &st), MT_OK);
    assert_int_equal(st.added, 2);
}

static void test_bad_record_stores_nothing(void **state) {
    (void)state;
    const char *p = write_file("bad.jsonl", "{\"title\": \"fine\"}\n{\"title\": 5}\n");
    mt_import_stats st;
    assert_int_equal(mt_questions_import(ts.store, p, &st), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "bad.jsonl:2"));
    assert_non_null(strstr(mt_last_error(), "\"title\""));
    assert_int_equal(count(NULL), 0);
    p = write_file("empty.jsonl", "{\"title\": \" \", \"question_content\": \"\\n\"}\n");
    assert_int_equal(mt_questions_import(ts.store, p, &st), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "empty"));
    p = write_file("none.jsonl", "\n\n");
    assert_int_equal(mt_questions_import(ts.store, p, &st), MT_ERR_FORMAT);
    assert_int_equal(count(NULL), 0);
}

static const char *write_bytes(const char *name, const char *data, size_t n) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", ts.dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

/* A line holds one question: a second object or trailing text on it is refused, not
 * dropped, as the training data reader does. */
static void test_jsonl_line_holds_one_value(void **state) {
    (void)state;
    mt_import_stats st;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{\"title\": \"a\"} {\"title\": \"b\"}\n", "q.jsonl:1: unexpected text after the JSON"},
        {"{\"title\": \"ok\"}\n\n{\"title\": \"a\"} garbage\n", "q.jsonl:3: unexpected text"},
        {"{\"title\": \"a\"}]\n", "q.jsonl:1: unexpected text"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(mt_questions_import(ts.store, write_file("q.jsonl", cases[i].text), &st),
                         MT_ERR_FORMAT);
        if (!strstr(mt_last_error(), cases[i].want))
            fail_msg("error '%s', want '%s'", mt_last_error(), cases[i].want);
        assert_int_equal(count(NULL), 0);
    }
    /* A NUL would end the line for cJSON, hiding what follows it. */
    static const char nul[] = "{\"title\": \"a\"}\0{\"title\": \"b\"}\n";
    assert_int_equal(
        mt_questions_import(ts.store, write_bytes("q.jsonl", nul, sizeof nul - 1), &st),
        MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "q.jsonl:1: NUL byte"));
    assert_int_equal(count(NULL), 0);
    /* Trailing whitespace, CRLF and a BOM are fine. */
    static const char ok[] = "\xef\xbb\xbf{\"title\": \"a\"}  \t\r\n{\"title\": \"b\"}\r\n";
    assert_int_equal(mt_questions_import(ts.store, write_bytes("q.jsonl", ok, sizeof ok - 1), &st),
                     MT_OK);
    assert_int_equal(st.added, 2);
}

static void test_split_is_stable_and_fixed(void **state) {
    (void)state;
    char buf[8192] = "";
    for (int i = 0; i < 40; i++) {
        char line[96];
        snprintf(line, sizeof line, "{\"title\": \"question %d\"}\n", i);
        strcat(buf, line);
    }
    mt_import_stats st;
    assert_int_equal(mt_questions_import(ts.store, write_file("a.jsonl", buf), &st), MT_OK);
    assert_int_equal(mt_questions_split(ts.store, 7, 0.25), MT_OK);
    const int test_before = count("test");
    assert_true(test_before > 0 && test_before < 40);
    assert_int_equal(count("train") + test_before, 40);
    mt_question *before = NULL;
    int n_before = 0;
    assert_int_equal(mt_store_questions(ts.store, "test", &before, &n_before), MT_OK);
    /* More questions later: the earlier ones keep their split. */
    assert_int_equal(
        mt_questions_import(ts.store, write_file("b.jsonl", "{\"title\": \"late one\"}\n"), &st),
        MT_OK);
    assert_int_equal(mt_questions_split(ts.store, 7, 0.25), MT_OK);
    mt_question *after = NULL;
    int n_after = 0;
    assert_int_equal(mt_store_questions(ts.store, "test", &after, &n_after), MT_OK);
    assert_true(n_after >= n_before);
    for (int i = 0; i < n_before; i++) assert_string_equal(before[i].id, after[i].id);
    mt_questions_free(before, n_before);
    mt_questions_free(after, n_after);
    assert_int_equal(count(NULL), 41);
    assert_int_equal(count("train") + count("test"), 41);
    /* Other settings would move questions between the splits: refused. */
    assert_int_equal(mt_questions_split(ts.store, 8, 0.25), MT_ERR_ARG);
    assert_int_equal(mt_questions_split(ts.store, 7, 0.5), MT_ERR_ARG);
    assert_int_equal(mt_questions_split(ts.store, 7, 1.0), MT_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_ignore_whitespace),
        cmocka_unit_test_setup_teardown(test_jsonl_both_formats_and_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_array, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_record_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jsonl_line_holds_one_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_is_stable_and_fixed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
