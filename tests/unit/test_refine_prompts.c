/* Phase 2's verdicts are parsed strictly (an unparsable verdict is never a verdict) and its
 * prompts carry what the expert and the model need: the attempt number, the reference
 * answer only when asked, the previous attempt, feedback and hints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "infer/grammar.h"
#include "infer/json_schema.h"
#include "pipeline/refine_prompts.h"

static void rejects(const char *json, const char *why) {
    mt_verdict v;
    assert_int_equal(mt_verdict_parse(json, &v), MT_ERR_FORMAT);
    if (!strstr(mt_last_error(), why)) fail_msg("\"%s\" lacks \"%s\"", mt_last_error(), why);
    assert_null(v.feedback);
    assert_int_equal(v.n_hints, 0);
}

static void test_parse_verdicts(void **state) {
    (void)state;
    mt_verdict v;
    assert_int_equal(mt_verdict_parse("{\"verdict\":\"incorrect\",\"feedback\":\"off by one\","
                                      "\"hints\":[\"count from 0\",\"check the end\"]}",
                                      &v),
                     MT_OK);
    assert_int_equal(v.correct, 0);
    assert_string_equal(v.feedback, "off by one");
    assert_int_equal(v.n_hints, 2);
    assert_string_equal(v.hints[1], "check the end");
    mt_verdict_free(&v);
    assert_int_equal(
        mt_verdict_parse("{\"verdict\":\"correct\",\"feedback\":\"\",\"hints\":[]}", &v), MT_OK);
    assert_int_equal(v.correct, 1);
    mt_verdict_free(&v);
    /* more hints than kept: the first ones stay */
    assert_int_equal(mt_verdict_parse("{\"verdict\":\"incorrect\",\"feedback\":\"f\",\"hints\":"
                                      "[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
                                      &v),
                     MT_OK);
    assert_int_equal(v.n_hints, MT_VERDICT_HINTS_MAX);
    assert_string_equal(v.hints[0], "a");
    mt_verdict_free(&v);
}

static void test_reject_non_verdicts(void **state) {
    (void)state;
    rejects(NULL, "not JSON");
    rejects("Correct", "not JSON");
    rejects("[1]", "not a JSON object");
    rejects("{\"verdict\":\"maybe\",\"feedback\":\"f\",\"hints\":[]}", "\"verdict\"");
    rejects("{\"verdict\":\"Correct\",\"feedback\":\"f\",\"hints\":[]}", "\"verdict\"");
    rejects("{\"verdict\":true,\"feedback\":\"f\",\"hints\":[]}", "\"verdict\"");
    rejects("{\"feedback\":\"correct\",\"hints\":[]}", "\"verdict\"");
    rejects("{\"verdict\":\"correct\",\"hints\":[]}", "\"feedback\"");
    rejects("{\"verdict\":\"correct\",\"feedback\":\"f\"}", "\"hints\"");
    rejects("{\"verdict\":\"correct\",\"feedback\":\"f\",\"hints\":[1]}", "hint");
}

static void test_prompts(void **state) {
    (void)state;
    mt_question q = {.id = "0123456789abcdef", .title = "How do I sort?", .content = "A list."};
    char *p = mt_prompt_verdict(&q, "use sorted()", 2, 3, NULL);
    assert_non_null(p);
    assert_memory_equal(p, "Question: How do I sort?\n", 25);
    assert_non_null(strstr(p, "\nAttempt 2 of at most 3\n"));
    assert_non_null(strstr(p, "use sorted()"));
    assert_null(strstr(p, "Reference answer"));
    free(p);
    p = mt_prompt_verdict(&q, "use sorted()", 1, 3, "sorted(xs) or xs.sort()");
    assert_non_null(strstr(p, "Reference answer:\nsorted(xs) or xs.sort()"));
    free(p);
    mt_verdict v = {
        .correct = 0, .feedback = "incomplete", .hints = {"mention key="}, .n_hints = 1};
    p = mt_prompt_revision(&q, "use sorted()", &v);
    assert_non_null(strstr(p, "Your previous answer:\nuse sorted()"));
    assert_non_null(strstr(p, "Feedback: incomplete"));
    assert_non_null(strstr(p, "- mention key=\n"));
    free(p);
    p = mt_prompt_attempt(&q);
    assert_non_null(strstr(p, "Final answer:"));
    free(p);
}

/* The schema the expert answers under compiles for the constrained decoder. */
static void test_schema_compiles(void **state) {
    (void)state;
    mt_grammar *g = NULL;
    assert_int_equal(mt_json_schema_compile(mt_verdict_schema, strlen(mt_verdict_schema), &g),
                     MT_OK);
    mt_grammar_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_verdicts),
        cmocka_unit_test(test_reject_non_verdicts),
        cmocka_unit_test(test_prompts),
        cmocka_unit_test(test_schema_compiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
