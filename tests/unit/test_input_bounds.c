/* Malformed inputs found by the fuzz stage (tests/fuzz): each must fail with one clear
 * error on one line, quickly and without touching memory it does not own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "tokenizer/tokenizer.h"

static char dir[64];

static int setup(void **state) {
    (void)state;
    return mt_test_mkdtemp(dir, sizeof dir, "bounds");
}

static int teardown(void **state) {
    (void)state;
    return mt_test_rmtree(dir);
}

static void write_file(const char *name, const char *text) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static mt_status load_tokenizer_json(const char *json) {
    write_file("tokenizer.json", json);
    mt_tokenizer *t = NULL;
    mt_clear_error();
    mt_status st = mt_tokenizer_from_hf_dir(dir, &t);
    mt_tokenizer_free(t);
    return st;
}

/* One id far past the tokens listed made a table of that many empty slots: a billion
 * (tokenizer.json's largest accepted id) took minutes and gigabytes before failing. */
static void test_tokenizer_json_id_far_past_the_vocabulary(void **state) {
    (void)state;
    assert_int_equal(load_tokenizer_json("{\"model\": {\"type\": \"BPE\", \"vocab\": "
                                         "{\"a\": 0, \"b\": 1, \"c\": 1000}, \"merges\": []}}"),
                     MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "token id 1000 is far beyond the 3 tokens listed"));
    assert_int_equal(load_tokenizer_json("{\"model\": {\"type\": \"BPE\", \"vocab\": "
                                         "{\"a\": 0, \"b\": 1}, \"merges\": []}, \"added_tokens\": "
                                         "[{\"id\": 1073741823, \"content\": \"<x>\"}]}"),
                     MT_ERR_FORMAT);
    /* a few gaps, as some files leave between the vocabulary and the added tokens */
    assert_int_equal(load_tokenizer_json("{\"model\": {\"type\": \"BPE\", \"vocab\": "
                                         "{\"a\": 0, \"b\": 1}, \"merges\": []}, \"added_tokens\": "
                                         "[{\"id\": 4, \"content\": \"<x>\"}]}"),
                     MT_OK);
}

/* Messages quote names and values from the input; a newline in one (a YAML block scalar,
 * a GGUF tensor name) split the CLI's single `meteor: error:` line in two. */
static void test_error_messages_stay_one_line(void **state) {
    (void)state;
    assert_int_equal(load_tokenizer_json("{\"model\": {\"type\": \"BPE\", \"vocab\": "
                                         "{\"a\\nb\": \"x\"}, \"merges\": []}}"),
                     MT_ERR_FORMAT);
    assert_string_equal(mt_last_error(), "tokenizer.json: vocab entry 'a\\nb' is not a token id");
    mt_fail(MT_ERR_ARG, "got '%s'", "folded\n\tx\r\x01\x7f");
    mt_fail_prefix(MT_ERR_ARG, "conf\nig.yaml:1");
    assert_string_equal(mt_last_error(), "conf\\nig.yaml:1: got 'folded\\n\\tx\\r\\x01\\x7f'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_json_id_far_past_the_vocabulary),
        cmocka_unit_test(test_error_messages_stay_one_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
