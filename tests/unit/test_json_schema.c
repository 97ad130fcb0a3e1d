/* JSON Schema compilation: what compiles, and one clear error (keyword and JSON-pointer
 * path) for every unsupported keyword, malformed schema and limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/json_schema.h"

static mt_status compile(const char *schema) {
    mt_grammar *g = NULL;
    const mt_status st = mt_json_schema_compile(schema, strlen(schema), &g);
    if (st) assert_null(g);
    mt_grammar_free(g);
    return st;
}

/* Compiling fails with code and a message holding every fragment. */
static void expect_error(const char *schema, mt_status code, const char *frag1, const char *frag2) {
    const mt_status st = compile(schema);
    if (st != code || !strstr(mt_last_error(), frag1) || (frag2 && !strstr(mt_last_error(), frag2)))
        fprintf(stderr, "schema %s\n  got %d: %s\n", schema, (int)st, mt_last_error());
    assert_int_equal(st, code);
    assert_non_null(strstr(mt_last_error(), frag1));
    if (frag2) assert_non_null(strstr(mt_last_error(), frag2));
}

static void test_supported_schemas_compile(void **state) {
    (void)state;
    const char *ok[] = {
        "{}",
        "true",
        "{\"type\":\"object\"}",
        "{\"type\":[\"string\",\"null\"],\"title\":\"t\",\"description\":\"d\",\"$schema\":\"s\","
        "\"$id\":\"i\",\"examples\":[1],\"default\":null,\"$comment\":\"c\"}",
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":"
        "\"integer\",\"minimum\":-3,\"maximum\":70},\"minItems\":1,\"maxItems\":4}},"
        "\"required\":[\"a\"],\"additionalProperties\":true}",
        "{\"enum\":[1,\"a\",null,[1],{\"k\":false}]}",
        "{\"const\":{\"x\":1}}",
        "{\"anyOf\":[{\"type\":\"string\",\"minLength\":1,\"maxLength\":5},{\"type\":\"boolean\"}]"
        "}",
        "{\"$defs\":{\"t\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/t\"}}},"
        "\"$ref\":\"#/$defs/t\"}",
        "{\"definitions\":{\"a~b\":{\"type\":\"null\"},\"c/d\":{\"type\":\"null\"}},\"anyOf\":["
        "{\"$ref\":\"#/definitions/a~0b\"},{\"$ref\":\"#/definitions/c~1d\"}]}",
        "{\"type\":\"object\",\"properties\":{\"n\":{\"$ref\":\"#\"}}}",
        "{\"type\":\"integer\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":100}",
        "{\"type\":\"array\",\"items\":false}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        const mt_status st = compile(ok[i]);
        if (st) fprintf(stderr, "%s: %s\n", ok[i], mt_last_error());
        assert_int_equal(st, MT_OK);
    }
}

static void test_unsupported_keywords(void **state) {
    (void)state;
    expect_error("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"pattern\":"
                 "\"^a\"}}}",
                 MT_ERR_UNSUPPORTED, "unsupported JSON Schema keyword \"pattern\"",
                 "at /properties/name");
    expect_error("{\"format\":\"date\"}", MT_ERR_UNSUPPORTED, "\"format\"", "the schema root");
    expect_error("{\"oneOf\":[{}]}", MT_ERR_UNSUPPORTED, "\"oneOf\"", NULL);
    expect_error("{\"allOf\":[{}]}", MT_ERR_UNSUPPORTED, "\"allOf\"", NULL);
    expect_error("{\"type\":\"array\",\"items\":{\"uniqueItems\":true}}", MT_ERR_UNSUPPORTED,
                 "\"uniqueItems\"", "at /items");
    expect_error("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"object\",\"minProperties\":1}]}",
                 MT_ERR_UNSUPPORTED, "\"minProperties\"", "at /anyOf/1");
    expect_error("{\"$defs\":{\"x\":{\"not\":{}}},\"$ref\":\"#/$defs/x\"}", MT_ERR_UNSUPPORTED,
                 "\"not\"", "at /$defs/x");
    expect_error("{\"properties\":{\"a/b\":{\"multipleOf\":2}}}", MT_ERR_UNSUPPORTED,
                 "\"multipleOf\"", "at /properties/a~1b");
    expect_error("{\"type\":\"number\",\"minimum\":0}", MT_ERR_UNSUPPORTED, "\"integer\"", NULL);
    expect_error("{\"type\":\"string\",\"anyOf\":[{}]}", MT_ERR_UNSUPPORTED, "\"anyOf\"",
                 "\"type\"");
    expect_error("{\"$ref\":\"#\",\"type\":\"string\"}", MT_ERR_UNSUPPORTED, "\"$ref\"", NULL);
    expect_error("{\"enum\":[\"a\"],\"maxLength\":3}", MT_ERR_UNSUPPORTED, "\"maxLength\"", NULL);
    expect_error("{\"type\":\"array\",\"items\":[{}]}", MT_ERR_UNSUPPORTED, "tuple", NULL);
    expect_error("{\"$ref\":\"other.json#/x\"}", MT_ERR_UNSUPPORTED, "other.json", NULL);
    expect_error("{\"properties\":{\"a\":{}},\"required\":[\"b\"]}", MT_ERR_UNSUPPORTED,
                 "required property \"b\"", NULL);
    expect_error("{\"properties\":{\"a\":false}}", MT_ERR_UNSUPPORTED, "false", "/properties/a");
}

static void test_malformed(void **state) {
    (void)state;
    expect_error("{\"type\":\"object\"", MT_ERR_FORMAT, "not valid JSON", NULL);
    expect_error("{\"type\":\"object\"} x", MT_ERR_FORMAT, "not valid JSON", NULL);
    expect_error("{\"type\":\"array\",\"minItems\":\"x\"}", MT_ERR_FORMAT,
                 "\"minItems\" must be a non-negative integer", "the schema root");
    expect_error("{\"properties\":{\"a\":{\"maxLength\":-1}}}", MT_ERR_FORMAT, "\"maxLength\"",
                 "/properties/a");
    expect_error("{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", MT_ERR_FORMAT,
                 "\"minItems\" 3 is above \"maxItems\" 2", NULL);
    expect_error("{\"type\":\"string\",\"minLength\":5,\"maxLength\":1}", MT_ERR_FORMAT,
                 "\"minLength\"", NULL);
    expect_error("{\"type\":\"strin\"}", MT_ERR_FORMAT, "unknown type \"strin\"", NULL);
    expect_error("{\"type\":7}", MT_ERR_FORMAT, "\"type\"", NULL);
    expect_error("{\"type\":[]}", MT_ERR_FORMAT, "empty", NULL);
    expect_error("{\"$ref\":\"#/$defs/missing\"}", MT_ERR_FORMAT, "dangling $ref", "missing");
    expect_error("{\"$ref\":5}", MT_ERR_FORMAT, "\"$ref\" must be a string", NULL);
    expect_error("{\"anyOf\":[]}", MT_ERR_FORMAT, "\"anyOf\"", NULL);
    expect_error("{\"enum\":[]}", MT_ERR_FORMAT, "\"enum\"", NULL);
    expect_error("{\"type\":\"string\",\"enum\":[1,2]}", MT_ERR_FORMAT, "no value", NULL);
    expect_error("{\"properties\":[]}", MT_ERR_FORMAT, "\"properties\" must be an object", NULL);
    expect_error("{\"properties\":{},\"required\":\"a\"}", MT_ERR_FORMAT, "\"required\"", NULL);
    expect_error("{\"additionalProperties\":3}", MT_ERR_FORMAT, "\"additionalProperties\"", NULL);
    expect_error("{\"properties\":{\"a\":3}}", MT_ERR_FORMAT, "a schema must be", "/properties/a");
    expect_error("{\"type\":\"integer\",\"minimum\":\"1\"}", MT_ERR_FORMAT, "\"minimum\"", NULL);
    expect_error("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", MT_ERR_FORMAT, "no integer",
                 NULL);
    expect_error("{\"$defs\":[]}", MT_ERR_FORMAT, "\"$defs\" must be an object", NULL);
    expect_error("false", MT_ERR_UNSUPPORTED, "false", NULL);
}

static void test_limits(void **state) {
    (void)state;
    expect_error("{\"$ref\":\"#\"}", MT_ERR_UNSUPPORTED, "$ref cycle", NULL);
    expect_error("{\"$defs\":{\"a\":{\"anyOf\":[{\"type\":\"null\"},{\"$ref\":\"#/$defs/b\"}]},"
                 "\"b\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}",
                 MT_ERR_UNSUPPORTED, "$ref cycle", NULL);
    expect_error("{\"type\":\"array\",\"maxItems\":1000000}", MT_ERR_UNSUPPORTED, "\"maxItems\"",
                 NULL);
    /* Text over the size limit. */
    const size_t big = MT_JSON_SCHEMA_MAX_BYTES + 10;
    char *text = malloc(big + 1);
    assert_non_null(text);
    memset(text, ' ', big);
    memcpy(text, "{}", 2);
    text[big] = '\0';
    mt_grammar *g = NULL;
    assert_int_equal(mt_json_schema_compile(text, big, &g), MT_ERR_UNSUPPORTED);
    assert_non_null(strstr(mt_last_error(), "bytes"));
    free(text);
    /* Nesting over the depth limit. */
    char deep[4096] = "";
    for (int i = 0; i < MT_JSON_SCHEMA_MAX_NEST + 2; i++) strcat(deep, "{\"items\":");
    strcat(deep, "{}");
    for (int i = 0; i < MT_JSON_SCHEMA_MAX_NEST + 2; i++) strcat(deep, "}");
    expect_error(deep, MT_ERR_UNSUPPORTED, "nested deeper", NULL);
    /* A grammar over the state limit: many wide arrays. */
    char wide[2048];
    snprintf(wide, sizeof wide,
             "{\"type\":\"array\",\"minItems\":%d,\"items\":{\"type\":\"array\",\"minItems\":%d,"
             "\"items\":{\"type\":\"string\"}}}",
             MT_JSON_SCHEMA_MAX_COUNT, MT_JSON_SCHEMA_MAX_COUNT);
    expect_error(wide, MT_ERR_UNSUPPORTED, "states", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_supported_schemas_compile),
        cmocka_unit_test(test_unsupported_keywords),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
