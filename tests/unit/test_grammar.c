/* Grammar matcher on hand-made vocabularies: exact masks (checked token by token against
 * accepting on a clone), multi-lexeme and partial-UTF-8 tokens, escapes, numbers and
 * integer ranges, anyOf ambiguity, recursion, counts, end semantics, clones, and seeded
 * random walks whose documents must parse and pass the schema checker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>

#include "core/rng.h"
#include "expert/json_reply.h"
#include "grammar_vocab.h"

typedef struct {
    mt_token_index *ix;
    mt_grammar *g;
    mt_gmatch *m;
    uint64_t bits[64];
} fixture;

static void open_schema(fixture *f, const char *schema) {
    f->ix = vocab_index();
    assert_non_null(f->ix);
    mt_status st = mt_json_schema_compile(schema, strlen(schema), &f->g);
    if (st) fprintf(stderr, "compile: %s\n", mt_last_error());
    assert_int_equal(st, MT_OK);
    assert_int_equal(mt_gmatch_new(f->g, f->ix, NULL, &f->m), MT_OK);
}

static void close_schema(fixture *f) {
    mt_gmatch_free(f->m);
    mt_grammar_free(f->g);
    mt_token_index_free(f->ix);
}

/* Feeds text as raw bytes; 1 if accepted. */
static int feed(fixture *f, const char *text) {
    const int ok = mt_gmatch_accept_bytes(f->m, text, strlen(text)) == MT_OK;
    mt_clear_error();
    return ok;
}

/* 1 if the whole text is accepted from a fresh matcher of the schema. */
static int accepts(const char *schema, const char *text) {
    fixture f;
    open_schema(&f, schema);
    const int ok = feed(&f, text);
    close_schema(&f);
    return ok;
}

static int complete(const char *schema, const char *text) {
    fixture f;
    open_schema(&f, schema);
    const int ok = feed(&f, text) && mt_gmatch_can_end(f.m);
    close_schema(&f);
    return ok;
}

static int allowed(fixture *f, const char *tok) {
    const int id = vocab_id(tok);
    assert_true(id >= 0);
    assert_int_equal(mt_gmatch_fill_mask(f->m, f->bits), MT_OK);
    return bit(f->bits, id);
}

static void test_multi_lexeme_tokens(void **state) {
    (void)state;
    fixture f;
    open_schema(&f, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},"
                    "\"b\":{\"type\":\"string\"}},\"required\":[\"a\",\"b\"]}");
    assert_true(allowed(&f, "{\""));
    assert_true(allowed(&f, "{"));
    assert_true(allowed(&f, " "));
    assert_false(allowed(&f, "["));
    assert_int_equal(mask_mismatches(f.m, f.ix, f.bits), 0);
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("{\"")), MT_OK);
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("a")), MT_OK);
    assert_true(allowed(&f, "\":\""));
    assert_true(allowed(&f, "\": \""));
    assert_false(allowed(&f, "\"}"));
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("\":\"")), MT_OK);
    assert_true(allowed(&f, "hello"));
    assert_true(allowed(&f, "\",\""));
    assert_false(allowed(&f, "\"}")); /* b is required */
    assert_int_equal(mask_mismatches(f.m, f.ix, f.bits), 0);
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("\",\"")), MT_OK);
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("b")), MT_OK);
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("\": \"")), MT_OK);
    assert_true(allowed(&f, "\"}"));
    assert_false(mt_gmatch_can_end(f.m));
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("\"}")), MT_OK);
    assert_true(mt_gmatch_can_end(f.m));
    assert_true(mt_gmatch_must_end(f.m));
    assert_int_equal(mt_gmatch_fill_mask(f.m, f.bits), MT_OK);
    for (int w = 0; w < f.ix->words; w++) assert_int_equal(f.bits[w], 0);
    close_schema(&f);
}

static void test_partial_utf8(void **state) {
    (void)state;
    fixture f;
    open_schema(&f, "{\"type\":\"string\"}");
    assert_true(feed(&f, "\""));
    assert_true(allowed(&f, "\xc3"));
    assert_false(allowed(&f, "\xa9")); /* a continuation byte cannot start a character */
    assert_true(allowed(&f, "\xe6"));
    assert_false(allowed(&f, "\xed\xa0\x80")); /* an encoded surrogate */
    assert_false(allowed(&f, "\x01"));
    assert_true(allowed(&f, "\x7f"));
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("\xe6")), MT_OK);
    assert_true(allowed(&f, "\x97\xa5"));
    assert_false(allowed(&f, "\""));
    assert_false(allowed(&f, "a"));
    assert_int_equal(mask_mismatches(f.m, f.ix, f.bits), 0);
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("\x97\xa5")), MT_OK);
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("\xf0\x9f")), MT_OK);
    assert_true(allowed(&f, "\x98\x80"));
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("\x98\x80")), MT_OK);
    assert_true(allowed(&f, "\""));
    close_schema(&f);
}

static void test_escapes(void **state) {
    (void)state;
    const char *s = "{\"type\":\"string\"}";
    assert_true(complete(s, "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\""));
    assert_true(complete(s, "\"\\u00e9\\u20AC\\uFFFF\""));
    assert_false(accepts(s, "\"\\ud83d"));
    assert_false(accepts(s, "\"\\uDFFF"));
    assert_false(accepts(s, "\"\\u0000"));
    assert_true(accepts(s, "\"\\u0001"));
    assert_false(accepts(s, "\"\\x"));
    assert_false(accepts(s, "\"\\u12g"));
    assert_false(accepts(s, "\"a\nb"));
    fixture f;
    open_schema(&f, s);
    assert_true(feed(&f, "\""));
    assert_true(allowed(&f, "\\u00e9"));
    assert_false(allowed(&f, "\\ud83d"));
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("\\u")), MT_OK);
    assert_true(allowed(&f, "00"));
    assert_true(allowed(&f, "D"));
    assert_int_equal(mask_mismatches(f.m, f.ix, f.bits), 0);
    close_schema(&f);
}

static void test_enums_and_const(void **state) {
    (void)state;
    const char *s = "{\"enum\":[\"accept\",\"revise\",12,true,null,{\"a\":[1,2]},\"a\\\"b\"]}";
    assert_true(complete(s, "\"accept\""));
    assert_true(complete(s, "\"revise\""));
    assert_true(complete(s, "12"));
    assert_true(complete(s, "true"));
    assert_true(complete(s, "null"));
    assert_true(complete(s, "{\"a\":[1,2]}"));
    assert_true(complete(s, "\"a\\\"b\""));
    assert_false(accepts(s, "\"acc\""));
    assert_false(accepts(s, "1 "));
    assert_false(accepts(s, "false"));
    assert_false(complete(s, "1"));
    assert_true(complete("{\"const\":\"x\"}", "\"x\""));
    assert_false(accepts("{\"const\":\"x\"}", "\"y"));
    assert_true(complete("{\"type\":\"string\",\"enum\":[\"a\",1]}", "\"a\""));
    assert_false(accepts("{\"type\":\"string\",\"enum\":[\"a\",1]}", "1"));
    fixture f;
    open_schema(&f, s);
    assert_true(allowed(&f, "\"accept\""));
    assert_true(allowed(&f, "\""));
    assert_true(allowed(&f, "12"));
    assert_true(allowed(&f, "tr"));
    assert_false(allowed(&f, "fa"));
    assert_int_equal(mask_mismatches(f.m, f.ix, f.bits), 0);
    close_schema(&f);
}

static void test_numbers(void **state) {
    (void)state;
    const char *n = "{\"type\":\"number\"}";
    assert_true(complete(n, "0"));
    assert_true(complete(n, "-12.50e+3"));
    assert_true(complete(n, "1E9"));
    assert_false(accepts(n, "01"));
    assert_false(complete(n, "-"));
    assert_false(complete(n, "1."));
    assert_false(accepts(n, "+1"));
    assert_false(accepts(n, "1234567890123456")); /* 16 digits: over the bound */
    assert_true(complete(n, "123456789012345"));
    const char *i = "{\"type\":\"integer\"}";
    assert_true(complete(i, "-7"));
    assert_false(accepts(i, "1.5"));
    assert_false(accepts(i, "-0"));
}

static void test_integer_ranges(void **state) {
    (void)state;
    const char *s = "{\"type\":\"integer\",\"minimum\":1,\"maximum\":10}";
    for (int v = -20; v <= 120; v++) {
        char text[16];
        snprintf(text, sizeof text, "%d", v);
        assert_int_equal(complete(s, text), v >= 1 && v <= 10);
    }
    assert_false(accepts(s, "0"));
    assert_false(accepts(s, "11"));
    assert_false(accepts(s, "01"));
    fixture f;
    open_schema(&f, s);
    assert_true(allowed(&f, "1"));
    assert_true(allowed(&f, "10"));
    assert_false(allowed(&f, "12"));
    assert_false(allowed(&f, "0"));
    assert_false(allowed(&f, "-"));
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("1")), MT_OK);
    assert_true(mt_gmatch_can_end(f.m));
    assert_false(mt_gmatch_must_end(f.m)); /* "10" is still possible */
    assert_true(allowed(&f, "0"));
    assert_false(allowed(&f, "1"));
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("0")), MT_OK);
    assert_true(mt_gmatch_must_end(f.m));
    close_schema(&f);
    const char *r = "{\"type\":\"integer\",\"minimum\":-15,\"exclusiveMaximum\":237}";
    for (int v = -300; v <= 300; v++) {
        char text[16];
        snprintf(text, sizeof text, "%d", v);
        assert_int_equal(complete(r, text), v >= -15 && v < 237);
    }
    const char *neg = "{\"type\":\"integer\",\"maximum\":-5}";
    assert_true(complete(neg, "-5"));
    assert_true(complete(neg, "-123"));
    assert_false(complete(neg, "-4"));
    assert_false(accepts(neg, "-0"));
    assert_false(accepts(neg, "3"));
}

static void test_any_of_shared_prefix(void **state) {
    (void)state;
    const char *s = "{\"anyOf\":["
                    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
                    "\"b\":{\"type\":\"string\"}},\"required\":[\"a\",\"b\"]},"
                    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
                    "\"c\":{\"type\":\"boolean\"}},\"required\":[\"a\",\"c\"]}]}";
    fixture f;
    open_schema(&f, s);
    assert_true(feed(&f, "{\"a\":12,"));
    assert_true(mt_gmatch_n_parses(f.m) >= 2);
    assert_true(allowed(&f, "\""));
    assert_int_equal(mask_mismatches(f.m, f.ix, f.bits), 0);
    close_schema(&f);
    assert_true(complete(s, "{\"a\":12,\"b\":\"x\"}"));
    assert_true(complete(s, "{\"a\":12,\"c\":true}"));
    assert_false(accepts(s, "{\"a\":12,\"b\":true"));
    assert_false(accepts(s, "{\"a\":12,\"c\":\""));
    assert_true(complete("{\"type\":[\"string\",\"null\"]}", "null"));
    assert_true(complete("{\"type\":[\"string\",\"null\"]}", "\"n\""));
}

static void test_recursive_ref(void **state) {
    (void)state;
    const char *s = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{"
                    "\"val\":{\"type\":\"integer\"},\"kids\":{\"type\":\"array\","
                    "\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"val\"]}},"
                    "\"$ref\":\"#/$defs/node\"}";
    assert_true(complete(s, "{\"val\":1}"));
    assert_true(
        complete(s, "{\"val\":1,\"kids\":[{\"val\":2,\"kids\":[{\"val\":3}]},{\"val\":4}]}"));
    assert_false(accepts(s, "{\"val\":1,\"kids\":[{\"kids\""));
    const char *root = "{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#\"}}}";
    assert_true(complete(root, "{\"next\":{\"next\":{}}}"));
    assert_false(accepts(root, "{\"next\":{\"x\""));
    fixture f;
    open_schema(&f, s);
    assert_true(feed(&f, "{\"val\":1,\"kids\":[{\"val\":2,\"kids\":["));
    assert_int_equal(mask_mismatches(f.m, f.ix, f.bits), 0);
    close_schema(&f);
}

static void test_item_counts(void **state) {
    (void)state;
    const char *s = "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,"
                    "\"maxItems\":3}";
    assert_false(complete(s, "[]"));
    assert_false(accepts(s, "[1]"));
    assert_true(complete(s, "[1,2]"));
    assert_true(complete(s, "[1, 2,\n  3]"));
    assert_false(accepts(s, "[1,2,3,"));
    const char *u = "{\"type\":\"array\",\"minItems\":1}";
    assert_false(accepts(u, "[]"));
    assert_true(complete(u, "[1,\"a\",[],{},null,[1,[2]]]"));
    assert_true(complete("{\"type\":\"array\",\"items\":false}", "[]"));
    assert_false(accepts("{\"type\":\"array\",\"items\":false}", "[1"));
}

static void test_string_lengths(void **state) {
    (void)state;
    const char *s = "{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}";
    assert_false(complete(s, "\"a\""));
    assert_true(complete(s, "\"ab\""));
    assert_true(complete(s, "\"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\"")); /* 3 code points */
    assert_false(accepts(s, "\"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\xc3"));
    assert_true(complete(s, "\"\\u00e9\\n\""));
    assert_false(accepts(s, "\"abcd"));
    fixture f;
    open_schema(&f, s);
    assert_true(feed(&f, "\"\xc3\xa9"));
    assert_false(allowed(&f, "\""));
    assert_true(allowed(&f, "ab"));
    assert_false(allowed(&f, "abc"));
    assert_true(allowed(&f, "\xe6\x97\xa5"));
    assert_int_equal(mask_mismatches(f.m, f.ix, f.bits), 0);
    close_schema(&f);
}

static void test_object_rules(void **state) {
    (void)state;
    const char *s = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
                    "\"b\":{\"type\":\"integer\"},\"c\":{\"type\":\"integer\"}},"
                    "\"required\":[\"b\"]}";
    assert_true(complete(s, "{\"b\":1}"));
    assert_true(complete(s, "{\"a\":1,\"b\":2,\"c\":3}"));
    assert_true(complete(s, "{ \"b\": 1 }"));
    assert_true(complete(s, "{\n  \"a\": 1,\n  \"b\": 2\n}"));
    assert_false(accepts(s, "{\"b\":1,\"a\"")); /* schema order */
    assert_false(complete(s, "{\"a\":1}"));     /* b missing */
    assert_false(accepts(s, "{\"b\":1,\"d\"")); /* additionalProperties defaults to false */
    assert_false(accepts(s, "{  \"b\""));       /* two spaces: over the whitespace bound */
    assert_false(accepts(s, " {\"b\":1} "));    /* nothing after the document */
    assert_true(complete(s, "\n{\"b\":1}"));
    const char *x = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},"
                    "\"additionalProperties\":{\"type\":\"string\"}}";
    assert_true(complete(x, "{\"a\":1,\"ab\":\"s\"}"));
    assert_false(accepts(x, "{\"a\":1,\"a\""));    /* a declared name again */
    assert_false(accepts(x, "{\"a\":1,\"ab\":2")); /* extra values follow their schema */
    assert_false(accepts(x, "{\"a\\u0062\""));     /* no escapes in extra keys */
    assert_true(complete("{\"type\":\"object\"}", "{\"x\":[1,{\"y\":null}],\"z\":\"w\"}"));
    assert_false(accepts("{\"type\":\"object\"}", "[]"));
    assert_true(complete("{\"type\":\"object\",\"additionalProperties\":false}", "{}"));
    assert_false(accepts("{\"type\":\"object\",\"additionalProperties\":false}", "{\""));
}

static void test_clone_independent(void **state) {
    (void)state;
    fixture f;
    open_schema(&f, "{\"type\":\"object\",\"properties\":{\"verdict\":{\"enum\":[\"accept\","
                    "\"revise\"]}},\"required\":[\"verdict\"]}");
    assert_true(feed(&f, "{\"verdict\":\""));
    mt_gmatch *c = NULL;
    assert_int_equal(mt_gmatch_clone(f.m, &c), MT_OK);
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("acc")), MT_OK);
    assert_int_equal(mt_gmatch_accept(c, vocab_id("rev")), MT_OK);
    assert_int_equal(mt_gmatch_fill_mask(c, f.bits), MT_OK);
    assert_true(bit(f.bits, vocab_id("ise")));
    assert_false(bit(f.bits, vocab_id("ept")));
    assert_int_equal(mt_gmatch_fill_mask(f.m, f.bits), MT_OK);
    assert_true(bit(f.bits, vocab_id("ept")));
    assert_false(bit(f.bits, vocab_id("ise")));
    assert_int_not_equal(mt_gmatch_accept(f.m, vocab_id("ise")), MT_OK);
    assert_int_equal(mt_gmatch_accept(f.m, vocab_id("ept")), MT_OK); /* unchanged by refusal */
    assert_true(feed(&f, "\"}"));
    assert_true(mt_gmatch_must_end(f.m));
    assert_false(mt_gmatch_can_end(c));
    mt_gmatch_free(c);
    close_schema(&f);
}

static void test_never_offered(void **state) {
    (void)state;
    fixture f;
    open_schema(&f, "{\"type\":\"string\"}");
    assert_true(feed(&f, "\""));
    assert_int_equal(mt_gmatch_fill_mask(f.m, f.bits), MT_OK);
    for (int id = 0; id < N_VOCAB; id++)
        if (!VOCAB[id] || !*VOCAB[id]) assert_false(bit(f.bits, id));
    assert_int_not_equal(mt_gmatch_accept(f.m, vocab_id("")), MT_OK);
    assert_int_not_equal(mt_gmatch_accept(f.m, N_VOCAB), MT_OK);
    float logits[N_VOCAB];
    for (int i = 0; i < N_VOCAB; i++) logits[i] = 1.0f;
    assert_int_equal(mt_gmatch_mask_logits(f.m, logits), MT_OK);
    assert_true(logits[vocab_id("a")] == 1.0f);
    assert_true(isinf(logits[vocab_id("\x01")]) && logits[vocab_id("\x01")] < 0);
    close_schema(&f);
    mt_clear_error();
}

/* ---- random walks -------------------------------------------------------------------- */

static const char *const WALK_SCHEMAS[] = {
    "{\"type\":\"object\",\"properties\":{\"verdict\":{\"enum\":[\"accept\",\"revise\"]},"
    "\"feedback\":{\"type\":\"string\",\"maxLength\":40},\"hints\":{\"type\":\"array\","
    "\"items\":{\"type\":\"string\",\"maxLength\":8},\"maxItems\":3}},"
    "\"required\":[\"verdict\",\"feedback\",\"hints\"]}",
    "{\"type\":\"object\",\"properties\":{\"score\":{\"type\":\"integer\",\"minimum\":1,"
    "\"maximum\":10},\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":3}},"
    "\"required\":[\"score\",\"name\"]}",
    "{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"val\":{\"anyOf\":[{\"type\":"
    "\"integer\",\"minimum\":-5,\"maximum\":120},{\"type\":\"string\",\"maxLength\":4},"
    "{\"type\":\"null\"}]},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"},"
    "\"maxItems\":2}},\"required\":[\"val\"]}},\"$ref\":\"#/$defs/n\"}",
    "{\"type\":\"array\",\"items\":{\"type\":[\"number\",\"boolean\",\"null\"]},\"minItems\":1,"
    "\"maxItems\":4}",
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
    "\"additionalProperties\":{\"type\":\"integer\"}}",
    "{\"type\":\"object\"}",
    "{\"anyOf\":[{\"const\":{\"a\":[1,\"x\"]}},{\"type\":\"array\",\"items\":{\"type\":\"string\","
    "\"minLength\":2,\"maxLength\":2},\"maxItems\":2}]}",
};

/* Ending-leaning choice: tokens that close something are preferred a third of the time,
 * so documents stay short. */
static int pick(mt_rng *r, const uint64_t *bits, int n) {
    int cand[N_VOCAB], nc = 0, closing[N_VOCAB], ncl = 0;
    for (int id = 0; id < n; id++) {
        if (!bit(bits, id)) continue;
        cand[nc++] = id;
        if (strpbrk(VOCAB[id], "\"}]")) closing[ncl++] = id;
    }
    if (!nc) return -1;
    if (ncl && mt_rng_uniform(r) < 0.35) return closing[mt_rng_next(r) % (uint64_t)ncl];
    return cand[mt_rng_next(r) % (uint64_t)nc];
}

static void test_random_walks(void **state) {
    (void)state;
    mt_rng r;
    mt_rng_seed(&r, 1234);
    for (size_t k = 0; k < sizeof WALK_SCHEMAS / sizeof *WALK_SCHEMAS; k++) {
        fixture f;
        open_schema(&f, WALK_SCHEMAS[k]);
        cJSON *schema = cJSON_Parse(WALK_SCHEMAS[k]);
        assert_non_null(schema);
        int finished = 0;
        for (int walk = 0; walk < 60; walk++) {
            mt_gmatch *m = NULL;
            assert_int_equal(mt_gmatch_new(f.g, f.ix, NULL, &m), MT_OK);
            char text[4096];
            size_t len = 0;
            int ended = 0;
            for (int step = 0; step < 200 && !ended; step++) {
                if (mt_gmatch_must_end(m) || (mt_gmatch_can_end(m) && mt_rng_uniform(&r) < 0.5)) {
                    ended = 1;
                    break;
                }
                mt_gmatch *saved = f.m;
                f.m = m;
                if (step % 7 == 0) assert_int_equal(mask_mismatches(m, f.ix, f.bits), 0);
                f.m = saved;
                assert_int_equal(mt_gmatch_fill_mask(m, f.bits), MT_OK);
                const int id = pick(&r, f.bits, f.ix->n);
                if (id < 0) fprintf(stderr, "schema %zu: dead end after %.*s\n", k, (int)len, text);
                assert_true(id >= 0); /* a live parse always has a way on */
                assert_int_equal(mt_gmatch_accept(m, id), MT_OK);
                const size_t tl = strlen(VOCAB[id]);
                assert_true(len + tl < sizeof text);
                memcpy(text + len, VOCAB[id], tl);
                len += tl;
            }
            if (!ended && mt_gmatch_must_end(m)) ended = 1;
            mt_gmatch_free(m);
            if (!ended) continue;
            text[len] = '\0';
            cJSON *doc = cJSON_Parse(text);
            if (!doc) fprintf(stderr, "schema %zu: not JSON: %s\n", k, text);
            assert_non_null(doc);
            const mt_status st = mt_json_schema_check(schema, doc);
            if (st) fprintf(stderr, "schema %zu: %s\n  %s\n", k, mt_last_error(), text);
            assert_int_equal(st, MT_OK);
            cJSON_Delete(doc);
            finished++;
        }
        assert_true(finished >= 20);
        cJSON_Delete(schema);
        close_schema(&f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multi_lexeme_tokens),
        cmocka_unit_test(test_partial_utf8),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_enums_and_const),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_integer_ranges),
        cmocka_unit_test(test_any_of_shared_prefix),
        cmocka_unit_test(test_recursive_ref),
        cmocka_unit_test(test_item_counts),
        cmocka_unit_test(test_string_lengths),
        cmocka_unit_test(test_object_rules),
        cmocka_unit_test(test_clone_independent),
        cmocka_unit_test(test_never_offered),
        cmocka_unit_test(test_random_walks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
