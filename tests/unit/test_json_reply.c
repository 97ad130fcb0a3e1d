/* Tolerant JSON reply parsing (fences, prose, braces in strings, truncation, trailing
 * commas) and the JSON-Schema subset checker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "expert/json_reply.h"

/* Parses `reply` and expects its compact form to be `want`. */
static void parses_to(const char *reply, const char *want) {
    cJSON *v = NULL;
    mt_status st = mt_json_reply_parse(reply, &v);
    if (st) fail_msg("%s: %s", reply, mt_last_error());
    char *s = cJSON_PrintUnformatted(v);
    assert_string_equal(s, want);
    free(s);
    cJSON_Delete(v);
}

/* Expects no object, with a reason containing `why`. */
static void rejects(const char *reply, const char *why) {
    cJSON *v = (cJSON *)1;
    assert_int_equal(mt_json_reply_parse(reply, &v), MT_ERR_FORMAT);
    assert_null(v);
    if (!strstr(mt_last_error(), why)) fail_msg("reason \"%s\" lacks \"%s\"", mt_last_error(), why);
}

static void test_plain(void **state) {
    (void)state;
    parses_to("{\"a\": 1}", "{\"a\":1}");
    parses_to("  \n{\"a\": [1, 2, {\"b\": null}]}\n ", "{\"a\":[1,2,{\"b\":null}]}");
    parses_to("{}", "{}");
}

static void test_fences(void **state) {
    (void)state;
    parses_to("```json\n{\"verdict\": \"correct\"}\n```", "{\"verdict\":\"correct\"}");
    parses_to("```\n{\"x\": true}\n```\n", "{\"x\":true}");
    parses_to("Here you go:\n```JSON\n{\"x\": 2}\n```\nHope it helps!", "{\"x\":2}");
    /* A fence that never closes (reply cut after the object). */
    parses_to("```json\n{\"x\": 3}\n", "{\"x\":3}");
    /* Braces in the prose before the fence lose to the fenced object. */
    parses_to("Use the form {\"k\": \"v\"}? No:\n```json\n{\"x\": 4}\n```", "{\"x\":4}");
    /* A fence on one line has no body line; the object is still found. */
    parses_to("```{\"x\": 5}```", "{\"x\":5}");
}

static void test_prose(void **state) {
    (void)state;
    parses_to("Sure! Here is the JSON: {\"a\": \"b\"} Let me know.", "{\"a\":\"b\"}");
    parses_to("The set {1, 2} is small. {\"a\": 1}", "{\"a\":1}");
    parses_to("{{{ oops } then {\"a\": 1}", "{\"a\":1}");
    parses_to("first {\"a\": 1} second {\"b\": 2}", "{\"a\":1}");
    parses_to("[{\"inside\": \"array\"}]", "{\"inside\":\"array\"}");
}

static void test_strings_and_escapes(void **state) {
    (void)state;
    parses_to("{\"a\": \"}{\"}", "{\"a\":\"}{\"}");
    parses_to("{\"a\": \"say \\\"}\\\" now\", \"b\": 1}", "{\"a\":\"say \\\"}\\\" now\",\"b\":1}");
    parses_to("{\"a\": \"back\\\\\"} tail", "{\"a\":\"back\\\\\"}");
    parses_to("{\"code\": \"```py\\nx\\n```\"}", "{\"code\":\"```py\\nx\\n```\"}");
    parses_to("{\"u\": \"h\xc3\xa9llo \xe2\x9c\x93\"}", "{\"u\":\"h\xc3\xa9llo \xe2\x9c\x93\"}");
}

static void test_trailing_commas(void **state) {
    (void)state;
    parses_to("{\"a\": [1, 2, ], }", "{\"a\":[1,2]}");
    parses_to("{\"a\": \"x, }\",\n}", "{\"a\":\"x, }\"}");
}

static void test_failures(void **state) {
    (void)state;
    rejects("", "no JSON object");
    rejects(NULL, "empty");
    rejects("I cannot answer that.", "no JSON object");
    rejects("[1, 2, 3]", "no JSON object");
    rejects("{\"a\": \"abc", "not closed");
    rejects("```json\n{\"a\": [1, 2", "not closed");
    rejects("{'a': 1}", "invalid JSON");
    rejects("{\"a\": tru}", "invalid JSON");
    rejects("{\"a\" 1}", "invalid JSON");
    rejects("{\"a\": 1 \"b\": 2}", "invalid JSON");
    rejects("}{", "not closed");
}

/* Many '{' before anything parseable: the search is bounded, not quadratic forever. */
static void test_bounded_search(void **state) {
    (void)state;
    char buf[2000];
    size_t k = 0;
    for (int i = 0; i < 200; i++) buf[k++] = '{';
    strcpy(buf + k, "{\"a\": 1}");
    cJSON *v = NULL;
    assert_int_equal(mt_json_reply_parse(buf, &v), MT_ERR_FORMAT);
    assert_null(v);
}

static void conforms(const char *schema, const char *value) {
    cJSON *s = cJSON_Parse(schema), *v = cJSON_Parse(value);
    assert_non_null(s);
    assert_non_null(v);
    if (mt_json_schema_check(s, v)) fail_msg("%s vs %s: %s", value, schema, mt_last_error());
    cJSON_Delete(s);
    cJSON_Delete(v);
}

static void violates(const char *schema, const char *value, const char *why) {
    cJSON *s = cJSON_Parse(schema), *v = cJSON_Parse(value);
    assert_non_null(s);
    assert_non_null(v);
    assert_int_equal(mt_json_schema_check(s, v), MT_ERR_FORMAT);
    if (!strstr(mt_last_error(), why)) fail_msg("reason \"%s\" lacks \"%s\"", mt_last_error(), why);
    cJSON_Delete(s);
    cJSON_Delete(v);
}

static const char VERDICT[] =
    "{\"type\":\"object\",\"properties\":{\"verdict\":{\"type\":\"string\",\"enum\":[\"correct\","
    "\"incorrect\"]},\"feedback\":{\"type\":\"string\"},\"hints\":{\"type\":\"array\",\"items\":{"
    "\"type\":\"string\"}}},\"required\":[\"verdict\",\"feedback\"],\"additionalProperties\":"
    "false}";

static void test_schema_verdict(void **state) {
    (void)state;
    conforms(VERDICT, "{\"verdict\":\"correct\",\"feedback\":\"ok\"}");
    conforms(VERDICT, "{\"verdict\":\"incorrect\",\"feedback\":\"no\",\"hints\":[\"a\",\"b\"]}");
    violates(VERDICT, "{\"feedback\":\"ok\"}", "missing required property \"verdict\"");
    violates(VERDICT, "{\"verdict\":\"maybe\",\"feedback\":\"\"}",
             "$.verdict: \"maybe\" is not one of");
    violates(VERDICT, "{\"verdict\":\"correct\",\"feedback\":3}",
             "$.feedback: expected string, got number");
    violates(VERDICT, "{\"verdict\":\"correct\",\"feedback\":\"\",\"hints\":[\"a\",2]}",
             "$.hints[1]: expected string, got number");
    violates(VERDICT, "{\"verdict\":\"correct\",\"feedback\":\"\",\"extra\":1}",
             "unexpected property \"extra\"");
    violates(VERDICT, "[\"correct\"]", "$: expected object, got array");
}

static const char SCORES[] =
    "{\"type\":\"object\",\"properties\":{\"accuracy\":{\"type\":\"integer\",\"minimum\":1,"
    "\"maximum\":10},\"weight\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1}"
    ","
    "\"ok\":{\"type\":\"boolean\"},\"note\":{\"type\":[\"string\",\"null\"],\"maxLength\":5},"
    "\"tags\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":2}},\"required\":[\"accuracy\"]}";

static void test_schema_numbers_and_types(void **state) {
    (void)state;
    conforms(SCORES, "{\"accuracy\":7}");
    conforms(SCORES, "{\"accuracy\":7.0,\"weight\":0.5,\"ok\":false,\"note\":null}");
    conforms(SCORES, "{\"accuracy\":1,\"note\":\"h\xc3\xa9llo\",\"tags\":[1]}");
    violates(SCORES, "{\"accuracy\":7.5}", "$.accuracy: expected integer, got number");
    violates(SCORES, "{\"accuracy\":11}", "11 is above the maximum 10");
    violates(SCORES, "{\"accuracy\":0}", "0 is below the minimum 1");
    violates(SCORES, "{\"accuracy\":\"7\"}", "expected integer, got string");
    violates(SCORES, "{\"accuracy\":5,\"weight\":1}", "above the exclusiveMaximum");
    violates(SCORES, "{\"accuracy\":5,\"weight\":0}", "below the exclusiveMinimum");
    violates(SCORES, "{\"accuracy\":5,\"ok\":1}", "expected boolean, got number");
    violates(SCORES, "{\"accuracy\":5,\"note\":3}", "expected one of the types");
    violates(SCORES, "{\"accuracy\":5,\"note\":\"toolong\"}", "more than maxLength");
    violates(SCORES, "{\"accuracy\":5,\"tags\":[]}", "fewer than minItems");
    violates(SCORES, "{\"accuracy\":5,\"tags\":[1,2,3]}", "more than maxItems");
}

static void test_schema_nested_and_lenient(void **state) {
    (void)state;
    const char *nested = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"object\","
                         "\"properties\":{\"b\":{\"type\":\"array\",\"items\":{\"type\":"
                         "\"object\",\"required\":[\"c\"]}}}}}}";
    conforms(nested, "{\"a\":{\"b\":[{\"c\":1}]}}");
    violates(nested, "{\"a\":{\"b\":[{\"c\":1},{\"d\":2}]}}", "$.a.b[1]: missing required");
    conforms("{}", "[1, \"anything\"]");
    conforms("true", "{\"x\":1}");
    conforms("{\"type\":\"object\",\"anyOf\":[{\"required\":[\"zzz\"]}]}", "{}");
    conforms("{\"const\":\"x\"}", "\"x\"");
    violates("{\"const\":\"x\"}", "\"y\"", "is not the required value");
    violates("{\"enum\":[1,2,{\"a\":1}]}", "{\"a\":2}", "is not one of");
    conforms("{\"enum\":[1,2,{\"a\":1}]}", "{\"a\":1}");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_fences),
        cmocka_unit_test(test_prose),
        cmocka_unit_test(test_strings_and_escapes),
        cmocka_unit_test(test_trailing_commas),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_bounded_search),
        cmocka_unit_test(test_schema_verdict),
        cmocka_unit_test(test_schema_numbers_and_types),
        cmocka_unit_test(test_schema_nested_and_lenient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
