/* The flat YAML reader behind --config: keys in order with scalars, lists joined by commas,
 * empty values as NULL, comments and an empty file accepted; nested mappings, a
 * non-mapping document, two documents and broken syntax refused with file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/yaml_flat.h"

typedef struct {
    char keys[8][32];
    char values[8][64];
    int lines[8];
    int n;
} seen;

static mt_status collect(void *user, const char *key, const char *value, int line) {
    seen *s = user;
    if (s->n == 8) return mt_fail(MT_ERR_ARG, "too many");
    snprintf(s->keys[s->n], 32, "%s", key);
    snprintf(s->values[s->n], 64, "%s", value ? value : "<null>");
    s->lines[s->n++] = line;
    return MT_OK;
}

static const char *write_tmp(const char *text) {
    static char path[64];
    strcpy(path, "/tmp/mt_test_yaml_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static mt_status read_text(const char *text, seen *s) {
    memset(s, 0, sizeof *s);
    const char *p = write_tmp(text);
    mt_status st = mt_yaml_read_flat(p, collect, s);
    unlink(p);
    return st;
}

static void test_scalars_lists_and_nulls(void **state) {
    (void)state;
    seen s;
    assert_int_equal(read_text("# settings\nlora_rank: 8\ntargets: [q, v]\nname: \"a b\"\n"
                               "empty:\nblock:\n  - x\n  - y\n",
                               &s),
                     MT_OK);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.keys[0], "lora_rank");
    assert_string_equal(s.values[0], "8");
    assert_int_equal(s.lines[0], 2);
    assert_string_equal(s.values[1], "q,v");
    assert_string_equal(s.values[2], "a b");
    assert_string_equal(s.values[3], "<null>");
    assert_string_equal(s.values[4], "x,y");
}

static void test_empty_file(void **state) {
    (void)state;
    seen s;
    assert_int_equal(read_text("", &s), MT_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(read_text("# only a comment\n", &s), MT_OK);
    assert_int_equal(s.n, 0);
}

static void test_refusals(void **state) {
    (void)state;
    seen s;
    assert_int_equal(read_text("a: 1\nb:\n  c: 2\n", &s), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "nested"));
    assert_int_equal(read_text("- 1\n- 2\n", &s), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "mapping"));
    assert_int_equal(read_text("a: 1\n---\nb: 2\n", &s), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "one YAML document"));
    assert_int_equal(read_text("a: [1, 2\n", &s), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), ":2:"));
    assert_int_equal(read_text("a: [[1]]\n", &s), MT_ERR_FORMAT);
    assert_int_equal(mt_yaml_read_flat("/nonexistent/x.yaml", collect, &s), MT_ERR_IO);
}

/* A quoted "\0" gives a scalar with a NUL inside; read as a C string it would be its prefix
 * ("lr: \"1\\0e9\"" would set lr to 1). */
static void test_nul_in_scalar(void **state) {
    (void)state;
    seen s;
    assert_int_equal(read_text("a: 1\nlr: \"1\\0e9\"\n", &s), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), ":2: the value of 'lr' holds a NUL character"));
    assert_int_equal(s.n, 1);
    assert_int_equal(read_text("targets: [q, \"v\\0x\"]\n", &s), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), ":1: the value of 'targets' holds a NUL"));
    assert_int_equal(read_text("\"lr\\0x\": 1\n", &s), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), ":1: a key holds a NUL character"));
    assert_int_equal(s.n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_lists_and_nulls),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_nul_in_scalar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
