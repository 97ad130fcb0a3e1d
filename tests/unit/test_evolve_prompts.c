/* Phase 3's self-check: the comparison prompt shows both answers under their labels, and a
 * reply counts only when it is exactly {"better": "A"} or {"better": "B"}. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "infer/grammar.h"
#include "infer/json_schema.h"
#include "pipeline/evolve_prompts.h"

static void test_parse_comparisons(void **state) {
    (void)state;
    int a_better = -1;
    assert_int_equal(mt_compare_parse("{\"better\": \"A\"}", &a_better), MT_OK);
    assert_int_equal(a_better, 1);
    assert_int_equal(mt_compare_parse(" {\"better\":\"B\"} ", &a_better), MT_OK);
    assert_int_equal(a_better, 0);
    static const char *const bad[] = {
        "",
        "A",
        "{}",
        "{\"better\": \"C\"}",
        "{\"better\": \"a\"}",
        "{\"better\": 1}",
        "{\"better\": [\"A\"]}",
        "{\"better\": \"A\", \"why\": \"shorter\"}",
        "[\"A\"]",
        "{\"better\": \"A\"",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        a_better = -1;
        if (mt_compare_parse(bad[k], &a_better) != MT_ERR_FORMAT) fail_msg("accepted: %s", bad[k]);
        assert_int_equal(a_better, -1);
    }
    assert_int_equal(mt_compare_parse(NULL, &a_better), MT_ERR_FORMAT);
}

static void test_prompt_shows_both_answers_in_order(void **state) {
    (void)state;
    char *p = mt_prompt_compare("What is a list?", "first answer", "second answer");
    assert_non_null(p);
    const char *q = strstr(p, "What is a list?"), *a = strstr(p, "Answer A:\nfirst answer"),
               *b = strstr(p, "Answer B:\nsecond answer");
    assert_non_null(q);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(q < a && a < b);
    free(p);
}

static void test_schema_compiles(void **state) {
    (void)state;
    mt_grammar *g = NULL;
    assert_int_equal(mt_json_schema_compile(mt_compare_schema, strlen(mt_compare_schema), &g),
                     MT_OK);
    mt_grammar_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_comparisons),
        cmocka_unit_test(test_prompt_shows_both_answers_in_order),
        cmocka_unit_test(test_schema_compiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
