/* safetensors reader: single files, folders and sharded folders written here, and
 * malformed variants that must fail cleanly with the right status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/safetensors.h"
#include "kernels/dequant.h"

static char dir[64];

static void path_in(char *out, size_t n, const char *sub, const char *name) {
    if (sub)
        snprintf(out, n, "%s/%s/%s", dir, sub, name);
    else
        snprintf(out, n, "%s/%s", dir, name);
}

static void write_raw(const char *p, const void *data, size_t n) {
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Writes a safetensors file: header length, header JSON, then data. Returns its size. */
static size_t write_st(const char *p, const char *header, const void *data, size_t n) {
    size_t h = strlen(header), total = 8 + h + n;
    uint8_t *b = malloc(total);
    uint64_t hl = h;
    memcpy(b, &hl, 8);
    memcpy(b + 8, header, h);
    if (n) memcpy(b + 8 + h, data, n);
    write_raw(p, b, total);
    free(b);
    return total;
}

/* 24 bytes of F32 [2,3], 8 bytes of F16 [4], 2 bytes of BF16 scalar */
static const char *HEADER = "{\"__metadata__\":{\"format\":\"pt\"},"
                            "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                            "\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                            "\"s\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[32,34]}}  ";

static void data_bytes(uint8_t *d) {
    for (int i = 0; i < 6; i++) memcpy(d + 4 * i, &(float){(float)i + 0.5f}, 4);
    const uint16_t h[4] = {0x3c00, 0xc000, 0x0001, 0x7c00};
    memcpy(d + 24, h, 8);
    d[32] = 0x80, d[33] = 0x3f; /* bf16 1.0 */
}

static int setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/mt_test_st_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static mt_safetensors *expect_open(const char *p, mt_status want) {
    mt_safetensors *st = (mt_safetensors *)1;
    mt_clear_error();
    mt_status s = mt_safetensors_open(p, &st);
    if (s != want) fail_msg("status %d (%s), wanted %d", s, mt_last_error(), want);
    if (s) {
        assert_null(st);
        assert_true(strlen(mt_last_error()) > 0);
        return NULL;
    }
    return st;
}

static void check_model(const mt_safetensors *st) {
    assert_int_equal(mt_safetensors_count(st), 3);
    const mt_st_tensor *w = mt_safetensors_find(st, "w");
    assert_non_null(w);
    assert_int_equal(w->view.type, MT_F32);
    assert_int_equal(w->view.n_dims, 2);
    assert_int_equal(w->view.ne[0], 3); /* GGUF order: innermost first */
    assert_int_equal(w->view.ne[1], 2);
    float row[3];
    mt_dequantize_row(&w->view, 1, row);
    assert_true(row[0] == 3.5f && row[2] == 5.5f);
    const mt_st_tensor *h = mt_safetensors_find(st, "h");
    assert_int_equal(h->view.type, MT_F16);
    float hv[4];
    mt_dequantize(MT_F16, h->view.data, hv, 4);
    assert_true(hv[0] == 1.0f && hv[1] == -2.0f && hv[2] == 0x1p-24f);
    const mt_st_tensor *s = mt_safetensors_find(st, "s");
    assert_int_equal(s->view.type, MT_BF16);
    assert_int_equal(s->view.n_dims, 0);
    assert_int_equal(mt_tensor_nelements(&s->view), 1);
    assert_null(mt_safetensors_find(st, "__metadata__"));
    assert_null(mt_safetensors_find(st, "x"));
    assert_null(mt_safetensors_at(st, 3));
    assert_non_null(mt_safetensors_at(st, 2));
}

static void test_single_file(void **state) {
    (void)state;
    char p[128];
    uint8_t d[34];
    data_bytes(d);
    path_in(p, sizeof p, NULL, "one.safetensors");
    write_st(p, HEADER, d, sizeof d);
    mt_safetensors *st = expect_open(p, MT_OK);
    check_model(st);
    mt_safetensors_close(st);
    mt_safetensors_close(NULL);
}

static void test_folder_single(void **state) {
    (void)state;
    char p[128], f[128];
    uint8_t d[34];
    data_bytes(d);
    path_in(p, sizeof p, NULL, "plain");
    assert_int_equal(mkdir(p, 0755), 0);
    path_in(f, sizeof f, "plain", "model.safetensors");
    write_st(f, HEADER, d, sizeof d);
    mt_safetensors *st = expect_open(p, MT_OK);
    check_model(st);
    mt_safetensors_close(st);
}

static void make_sharded(const char *name, const char *index) {
    char p[128], f[128];
    uint8_t d[34];
    data_bytes(d);
    path_in(p, sizeof p, NULL, name);
    assert_int_equal(mkdir(p, 0755), 0);
    path_in(f, sizeof f, name, "a.safetensors");
    write_st(f, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", d, 24);
    path_in(f, sizeof f, name, "b.safetensors");
    write_st(f,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
             "\"s\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[8,10]}}",
             d + 24, 10);
    path_in(f, sizeof f, name, "model.safetensors.index.json");
    write_raw(f, index, strlen(index));
}

static void test_sharded(void **state) {
    (void)state;
    make_sharded("sharded",
                 "{\"metadata\":{\"total_size\":34},\"weight_map\":"
                 "{\"w\":\"a.safetensors\",\"h\":\"b.safetensors\",\"s\":\"b.safetensors\"}}");
    char p[128];
    path_in(p, sizeof p, NULL, "sharded");
    mt_safetensors *st = expect_open(p, MT_OK);
    check_model(st);
    mt_safetensors_close(st);
}

static void test_bad_index(void **state) {
    (void)state;
    char p[128];
    make_sharded("idx1", "{\"weight_map\":{\"w\":\"a.safetensors\",\"zz\":\"b.safetensors\"}}");
    path_in(p, sizeof p, NULL, "idx1");
    expect_open(p, MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "zz"));
    make_sharded("idx2", "{\"weight_map\":{\"w\":\"../x.safetensors\"}}");
    path_in(p, sizeof p, NULL, "idx2");
    expect_open(p, MT_ERR_FORMAT);
    make_sharded("idx3", "{\"weight_map\":{\"w\":\"missing.safetensors\"}}");
    path_in(p, sizeof p, NULL, "idx3");
    expect_open(p, MT_ERR_IO);
    make_sharded("idx4", "{\"weight_map\":[1,2]}");
    path_in(p, sizeof p, NULL, "idx4");
    expect_open(p, MT_ERR_FORMAT);
    make_sharded("idx5", "{\"weight_map\":{\"w\":\"a.safetensors\"");
    path_in(p, sizeof p, NULL, "idx5");
    expect_open(p, MT_ERR_FORMAT);
    path_in(p, sizeof p, NULL, "empty_dir");
    assert_int_equal(mkdir(p, 0755), 0);
    expect_open(p, MT_ERR_IO);
    path_in(p, sizeof p, NULL, "no_such_thing");
    expect_open(p, MT_ERR_IO);
}

static void test_duplicate_across_shards(void **state) {
    (void)state;
    char p[128], f[128];
    make_sharded("dup", "{\"weight_map\":{\"w\":\"a.safetensors\",\"h\":\"b.safetensors\","
                        "\"w2\":\"c.safetensors\"}}");
    path_in(f, sizeof f, "dup", "c.safetensors");
    uint8_t d[24] = {0};
    write_st(f, "{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}", d, 24);
    path_in(p, sizeof p, NULL, "dup");
    expect_open(p, MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "'w'"));
}

/* Writes header + 34 data bytes to bad.safetensors and expects `want`. */
static void expect_header(const char *header, mt_status want) {
    char p[128];
    uint8_t d[34];
    data_bytes(d);
    path_in(p, sizeof p, NULL, "bad.safetensors");
    write_st(p, header, d, sizeof d);
    mt_safetensors_close(expect_open(p, want));
}

static void test_malformed_header(void **state) {
    (void)state;
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]",
                  MT_ERR_FORMAT);
    expect_header("[1,2,3]", MT_ERR_FORMAT);
    expect_header("{} trailing", MT_ERR_FORMAT);
    expect_header("", MT_ERR_FORMAT);
    expect_header("{\"w\":5}", MT_ERR_FORMAT);
    expect_header("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", MT_ERR_FORMAT);
    expect_header("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", MT_ERR_FORMAT);
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", MT_ERR_FORMAT);
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
                  MT_ERR_FORMAT);
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}",
                  MT_ERR_FORMAT);
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", MT_ERR_FORMAT);
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300,1e300],\"data_offsets\":[0,8]}}",
                  MT_ERR_FORMAT);
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],"
                  "\"data_offsets\":[0,8]}}",
                  MT_ERR_FORMAT);
}

static void test_bad_offsets_and_sizes(void **state) {
    (void)state;
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[30,38]}}",
                  MT_ERR_FORMAT); /* past the 34-byte data section */
    assert_non_null(strstr(mt_last_error(), "'w'"));
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
                  MT_ERR_FORMAT);
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                  MT_ERR_FORMAT); /* 12 bytes needed */
    assert_non_null(strstr(mt_last_error(), "'w'"));
    expect_header("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,4]}}",
                  MT_ERR_FORMAT);
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e30]}}",
                  MT_ERR_FORMAT);
}

static void test_unsupported(void **state) {
    (void)state;
    expect_header("{\"pos\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[0,32]}}",
                  MT_ERR_UNSUPPORTED);
    assert_non_null(strstr(mt_last_error(), "pos"));
    assert_non_null(strstr(mt_last_error(), "I64"));
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}",
                  MT_ERR_UNSUPPORTED);
    expect_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,2],\"data_offsets\":[0,8]}}", MT_OK);
}

static void test_short_files(void **state) {
    (void)state;
    char p[128];
    uint8_t d[34];
    data_bytes(d);
    path_in(p, sizeof p, NULL, "full.safetensors");
    size_t n = write_st(p, HEADER, d, sizeof d);
    uint8_t *all = malloc(n);
    FILE *f = fopen(p, "rb");
    assert_int_equal(fread(all, 1, n, f), n);
    fclose(f);
    path_in(p, sizeof p, NULL, "prefix.safetensors");
    for (size_t k = 0; k < n; k++) {
        write_raw(p, all, k);
        expect_open(p, MT_ERR_FORMAT);
    }
    uint64_t huge = UINT64_MAX;
    memcpy(all, &huge, 8);
    write_raw(p, all, n);
    expect_open(p, MT_ERR_FORMAT);
    free(all);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_file),
        cmocka_unit_test(test_folder_single),
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_bad_index),
        cmocka_unit_test(test_duplicate_across_shards),
        cmocka_unit_test(test_malformed_header),
        cmocka_unit_test(test_bad_offsets_and_sizes),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_short_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
