/* SHA-256 against the FIPS 180-4 / NIST example vectors, one-shot and incremental; the
 * expert request key built on it (canonical JSON, what changes the hash and what not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/sha256.h"
#include "expert/expert.h"

static void check(const char *msg, const char *want) {
    char hex[65];
    mt_sha256_hex(msg, strlen(msg), hex);
    assert_string_equal(hex, want);
}

static void test_empty(void **state) {
    (void)state;
    check("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_abc(void **state) {
    (void)state;
    check("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_448_bits(void **state) {
    (void)state;
    check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_896_bits(void **state) {
    (void)state;
    check("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
          "lmnopqrsmnopqrstnopqrstu",
          "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state) {
    (void)state;
    const size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    char hex[65];
    mt_sha256_hex(a, n, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* The same through the incremental API in uneven pieces (crosses block edges). */
    mt_sha256_ctx c;
    mt_sha256_init(&c);
    size_t off = 0, step = 1;
    while (off < n) {
        size_t take = step < n - off ? step : n - off;
        mt_sha256_update(&c, a + off, take);
        off += take;
        step = step * 7 % 173 + 1;
    }
    uint8_t d[32];
    mt_sha256_final(&c, d);
    mt_sha256_to_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

/* Lengths around the padding boundary (55, 56, 63, 64 bytes) agree between the one-shot
 * and byte-by-byte paths. */
static void test_padding_edges(void **state) {
    (void)state;
    char msg[130];
    memset(msg, 'x', sizeof msg);
    for (size_t len = 50; len <= 130; len++) {
        uint8_t a[32], b[32];
        mt_sha256(msg, len, a);
        mt_sha256_ctx c;
        mt_sha256_init(&c);
        for (size_t i = 0; i < len; i++) mt_sha256_update(&c, msg + i, 1);
        mt_sha256_final(&c, b);
        assert_memory_equal(a, b, 32);
    }
    /* 64 bytes of 'x': one full block plus a padding-only block (value from sha256sum). */
    char hex[65];
    mt_sha256_hex(msg, 64, hex);
    assert_string_equal(hex, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
}

static const mt_chat_msg MSGS[] = {{"system", "Be brief."}, {"user", "What is \"2+2\"?"}};

static mt_expert_req base_req(void) {
    return (mt_expert_req){.msgs = MSGS, .n_msgs = 2, .max_tokens = 64, .temperature = 0.5};
}

static void test_request_json(void **state) {
    (void)state;
    mt_expert e = {.name = "gpt-x"};
    mt_expert_req r = base_req();
    char *s = mt_expert_request_json(&e, &r);
    assert_string_equal(s, "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"system\",\"content\":"
                           "\"Be brief.\"},{\"role\":\"user\",\"content\":\"What is "
                           "\\\"2+2\\\"?\"}],\"max_tokens\":64,\"temperature\":0.5,"
                           "\"schema_name\":null,\"schema\":null}");
    char hex[65], want[65];
    mt_expert_request_hash(&e, &r, hex);
    mt_sha256_hex(s, strlen(s), want);
    assert_string_equal(hex, want);
    free(s);

    r.schema_name = "verdict";
    r.schema_json = "{ \"type\" : \"object\",\n \"required\": [\"v\"] }";
    s = mt_expert_request_json(&e, &r);
    assert_non_null(strstr(s, ",\"schema_name\":\"verdict\",\"schema\":{\"type\":\"object\","
                              "\"required\":[\"v\"]}}"));
    free(s);
    /* A schema that does not parse is recorded as null. */
    r.schema_json = "{not json";
    s = mt_expert_request_json(&e, &r);
    assert_non_null(strstr(s, "\"schema\":null}"));
    free(s);
}

/* Everything that changes the reply changes the key; schema whitespace does not. */
static void test_request_hash_sensitivity(void **state) {
    (void)state;
    mt_expert e = {.name = "gpt-x"}, e2 = {.name = "gpt-y"};
    mt_expert_req r = base_req();
    char h0[65], h[65];
    mt_expert_request_hash(&e, &r, h0);
    mt_expert_request_hash(&e, &r, h);
    assert_string_equal(h0, h);
    mt_expert_request_hash(&e2, &r, h);
    assert_string_not_equal(h0, h);
    r.temperature = 0.7;
    mt_expert_request_hash(&e, &r, h);
    assert_string_not_equal(h0, h);
    r = base_req();
    r.max_tokens = 65;
    mt_expert_request_hash(&e, &r, h);
    assert_string_not_equal(h0, h);
    r = base_req();
    r.n_msgs = 1;
    mt_expert_request_hash(&e, &r, h);
    assert_string_not_equal(h0, h);
    const mt_chat_msg other[] = {{"system", "Be brief."}, {"user", "What is \"2+3\"?"}};
    r = base_req();
    r.msgs = other;
    mt_expert_request_hash(&e, &r, h);
    assert_string_not_equal(h0, h);

    char a[65], b[65];
    r = base_req();
    r.schema_name = "s";
    r.schema_json = "{\"type\":\"object\"}";
    mt_expert_request_hash(&e, &r, a);
    assert_string_not_equal(h0, a);
    r.schema_json = " {\n\t\"type\" :  \"object\" } ";
    mt_expert_request_hash(&e, &r, b);
    assert_string_equal(a, b);
    r.schema_json = "{\"type\":\"array\"}";
    mt_expert_request_hash(&e, &r, b);
    assert_string_not_equal(a, b);
    r.schema_json = "{\"type\":\"object\"}";
    r.schema_name = "t";
    mt_expert_request_hash(&e, &r, b);
    assert_string_not_equal(a, b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),        cmocka_unit_test(test_abc),
        cmocka_unit_test(test_448_bits),     cmocka_unit_test(test_896_bits),
        cmocka_unit_test(test_million_a),    cmocka_unit_test(test_padding_edges),
        cmocka_unit_test(test_request_json), cmocka_unit_test(test_request_hash_sensitivity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
