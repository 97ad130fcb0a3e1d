/* GGUF reader: valid v2/v3 files written byte by byte here, then corrupted copies that
 * must fail with the right status and a message, never crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/gguf.h"
#include "kernels/dequant.h"

/* ---- building files ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_u8(buf *b, uint8_t v) {
    put(b, &v, 1);
}
static void put_u32(buf *b, uint32_t v) {
    put(b, &v, 4);
}
static void put_u64(buf *b, uint64_t v) {
    put(b, &v, 8);
}
static void put_strn(buf *b, const char *s, size_t n) {
    put_u64(b, n);
    put(b, s, n);
}
static void put_str(buf *b, const char *s) {
    put_strn(b, s, strlen(s));
}
static void put_key(buf *b, const char *key, uint32_t type) {
    put_str(b, key);
    put_u32(b, type);
}
static void pad_to(buf *b, size_t align) {
    while (b->n % align) put_u8(b, 0);
}

/* Where the builder put the fields the corruption tests patch. */
typedef struct {
    size_t version, n_tensors, n_kv, first_key_len, first_key, bool_value, array_len, array_type,
        align_value, tensor_ndims[5], tensor_dim0[5], tensor_type[5], tensor_offset[5],
        tensor_name[5];
} layout;

enum { N_TENSORS = 5 };
static const char *NAMES[N_TENSORS] = {"a.f32", "b.q8", "c.q4k", "d.q2k", "e.f16"};
static const uint32_t TYPES[N_TENSORS] = {0, 8, 12, 10, 1};
static const int NDIMS[N_TENSORS] = {2, 2, 1, 1, 1};
static const uint64_t DIMS[N_TENSORS][2] = {{4, 2}, {32, 2}, {256, 1}, {256, 1}, {3, 1}};
static const size_t BYTES[N_TENSORS] = {32, 68, 144, 84, 6};

static void put_metadata(buf *b, layout *L, uint32_t alignment) {
    L->first_key_len = b->n;
    L->first_key = b->n + 8;
    put_key(b, "k.u8", 0), put_u8(b, 200);
    put_key(b, "k.i8", 1), put_u8(b, (uint8_t)-5);
    put_key(b, "k.u16", 2), put(b, &(uint16_t){60000}, 2);
    put_key(b, "k.i16", 3), put(b, &(int16_t){-30000}, 2);
    put_key(b, "k.u32", 4), put_u32(b, 4000000000u);
    put_key(b, "k.i32", 5), put(b, &(int32_t){-2000000000}, 4);
    put_key(b, "k.f32", 6), put(b, &(float){1.5f}, 4);
    put_key(b, "k.bool", 7);
    L->bool_value = b->n;
    put_u8(b, 1);
    put_key(b, "k.str", 8), put_str(b, "hello");
    put_key(b, "k.u64", 10), put_u64(b, UINT64_MAX);
    put_key(b, "k.i64", 11), put(b, &(int64_t){-9000000000000000000LL}, 8);
    put_key(b, "k.f64", 12), put(b, &(double){2.25}, 8);
    put_key(b, "k.arr_u32", 9);
    L->array_type = b->n;
    put_u32(b, 4);
    L->array_len = b->n;
    put_u64(b, 3), put_u32(b, 1), put_u32(b, 2), put_u32(b, 3);
    put_key(b, "k.arr_str", 9), put_u32(b, 8), put_u64(b, 3);
    put_str(b, "a"), put_str(b, ""), put_strn(b, "b\0c", 3);
    put_key(b, "k.arr_bool", 9), put_u32(b, 7), put_u64(b, 2), put_u8(b, 1), put_u8(b, 0);
    put_key(b, "k.arr_empty", 9), put_u32(b, 0), put_u64(b, 0);
    if (alignment) {
        put_key(b, "general.alignment", 4);
        L->align_value = b->n;
        put_u32(b, alignment);
    }
}

static void put_tensor_data(buf *b, int i) {
    uint8_t d[144];
    for (size_t k = 0; k < BYTES[i]; k++) d[k] = (uint8_t)(k * 7 + i);
    if (i == 0)
        for (int k = 0; k < 8; k++) memcpy(d + 4 * k, &(float){(float)k - 3.5f}, 4);
    if (i == 1)
        for (int blk = 0; blk < 2; blk++) {
            d[34 * blk] = 0x00, d[34 * blk + 1] = 0x3c; /* d = 1.0 */
            for (int k = 0; k < 32; k++) d[34 * blk + 2 + k] = (uint8_t)(int8_t)(k - 16 + blk);
        }
    if (i == 2) d[0] = 0, d[1] = 0x3c, d[2] = 0, d[3] = 0; /* finite scales */
    if (i == 4) d[0] = 0x00, d[1] = 0x3c, d[2] = 0x00, d[3] = 0xc0, d[4] = 0x01, d[5] = 0x00;
    put(b, d, BYTES[i]);
}

/* A file holding every metadata type and five tensors; the last tensor's data ends
 * the file, so every proper prefix of it is invalid. */
static buf make_file(uint32_t version, uint32_t alignment, layout *L) {
    buf b = {0};
    uint32_t align = alignment ? alignment : 32;
    put(&b, "GGUF", 4);
    L->version = b.n;
    put_u32(&b, version);
    L->n_tensors = b.n;
    put_u64(&b, N_TENSORS);
    L->n_kv = b.n;
    put_u64(&b, alignment ? 17 : 16);
    put_metadata(&b, L, alignment);
    uint64_t off = 0;
    for (int i = 0; i < N_TENSORS; i++) {
        L->tensor_name[i] = b.n + 8;
        put_str(&b, NAMES[i]);
        L->tensor_ndims[i] = b.n;
        put_u32(&b, (uint32_t)NDIMS[i]);
        L->tensor_dim0[i] = b.n;
        for (int d = 0; d < NDIMS[i]; d++) put_u64(&b, DIMS[i][d]);
        L->tensor_type[i] = b.n;
        put_u32(&b, TYPES[i]);
        L->tensor_offset[i] = b.n;
        put_u64(&b, off);
        off = (off + BYTES[i] + align - 1) / align * align;
    }
    pad_to(&b, align);
    for (int i = 0; i < N_TENSORS; i++) {
        put_tensor_data(&b, i);
        if (i + 1 < N_TENSORS) pad_to(&b, align);
    }
    return b;
}

/* ---- files on disk ---- */

static char tmpdir[64];
static char path[128];

static int setup_dir(void **state) {
    (void)state;
    strcpy(tmpdir, "/tmp/mt_test_gguf_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(path, sizeof path, "%s/t.gguf", tmpdir);
    return 0;
}

static int remove_dir(void **state) {
    (void)state;
    unlink(path);
    rmdir(tmpdir);
    return 0;
}

static void write_bytes(const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Opens bytes written to disk and checks the outcome; on success returns the handle. */
static mt_gguf *open_bytes(const void *p, size_t n, mt_status want) {
    write_bytes(p, n);
    mt_clear_error();
    mt_gguf *g = (mt_gguf *)1;
    mt_status st = mt_gguf_open(path, &g);
    if (st != want) fail_msg("status %d (%s), wanted %d", st, mt_last_error(), want);
    if (st) {
        assert_null(g);
        assert_true(strlen(mt_last_error()) > 0);
        return NULL;
    }
    return g;
}

static void expect_patched(const buf *b, size_t at, const void *v, size_t n, mt_status want) {
    uint8_t *copy = malloc(b->n);
    memcpy(copy, b->p, b->n);
    memcpy(copy + at, v, n);
    mt_gguf *g = open_bytes(copy, b->n, want);
    mt_gguf_close(g);
    free(copy);
}

/* ---- valid files ---- */

static void check_metadata(const mt_gguf *g) {
    int64_t i;
    double f;
    int bl;
    assert_true(mt_gguf_get_int(g, "k.u8", &i)), assert_int_equal(i, 200);
    assert_true(mt_gguf_get_int(g, "k.i8", &i)), assert_int_equal(i, -5);
    assert_true(mt_gguf_get_int(g, "k.u16", &i)), assert_int_equal(i, 60000);
    assert_true(mt_gguf_get_int(g, "k.i16", &i)), assert_int_equal(i, -30000);
    assert_true(mt_gguf_get_int(g, "k.u32", &i)), assert_int_equal(i, 4000000000LL);
    assert_true(mt_gguf_get_int(g, "k.i32", &i)), assert_int_equal(i, -2000000000LL);
    assert_true(mt_gguf_get_int(g, "k.i64", &i));
    assert_true(i == -9000000000000000000LL);
    assert_false(mt_gguf_get_int(g, "k.u64", &i)); /* does not fit in int64 */
    assert_true(mt_gguf_find(g, "k.u64")->u64 == UINT64_MAX);
    assert_true(mt_gguf_get_float(g, "k.f32", &f)), assert_true(f == 1.5);
    assert_true(mt_gguf_get_float(g, "k.f64", &f)), assert_true(f == 2.25);
    assert_false(mt_gguf_get_float(g, "k.u8", &f));
    assert_false(mt_gguf_get_int(g, "k.f32", &i));
    assert_true(mt_gguf_get_bool(g, "k.bool", &bl)), assert_int_equal(bl, 1);
    assert_false(mt_gguf_get_int(g, "k.bool", &i));
    assert_string_equal(mt_gguf_get_str(g, "k.str"), "hello");
    assert_null(mt_gguf_get_str(g, "k.u8"));
    assert_null(mt_gguf_get_str(g, "missing"));
    assert_null(mt_gguf_find(g, "missing"));
}

/* The checked getters a model loader uses: absent keys give the default, anything else
 * must be a number of the right kind inside the range, or the error names the key. */
static void check_ranged_getters(const mt_gguf *g) {
    int i = 0;
    float f = 0;
    assert_int_equal(mt_gguf_get_int_in(g, "missing", 9, MT_RANGE(1, 10), &i), MT_OK);
    assert_int_equal(i, 9);
    assert_int_equal(mt_gguf_get_int_in(g, "k.u16", 0, MT_RANGE(1, INT32_MAX), &i), MT_OK);
    assert_int_equal(i, 60000);
    assert_int_equal(mt_gguf_get_int_in(g, "k.u32", 0, MT_RANGE(1, INT32_MAX), &i), MT_ERR_FORMAT);
    assert_string_equal(mt_last_error(), "k.u32 = 4000000000 is out of range (1 .. 2147483647)");
    assert_int_equal(mt_gguf_get_int_in(g, "k.u64", 0, MT_RANGE(1, INT32_MAX), &i), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "k.u64 = 1.8446744073709552e+19 is out of range"));
    assert_int_equal(mt_gguf_get_int_in(g, "k.f32", 0, MT_RANGE(1, INT32_MAX), &i), MT_ERR_FORMAT);
    assert_string_equal(mt_last_error(), "metadata 'k.f32' must be an integer, not f32");
    assert_int_equal(mt_gguf_get_float_in(g, "k.f32", 0, MT_RANGE_ABOVE(0), &f), MT_OK);
    assert_true(f == 1.5f);
    assert_int_equal(mt_gguf_get_float_in(g, "k.u16", 0, MT_RANGE_ABOVE(0), &f), MT_OK);
    assert_true(f == 60000.0f);
    assert_int_equal(mt_gguf_get_float_in(g, "k.i16", 1, MT_RANGE_ABOVE(0), &f), MT_ERR_FORMAT);
    assert_string_equal(mt_last_error(), "k.i16 = -30000 is out of range (a finite number > 0)");
    assert_int_equal(mt_gguf_get_float_in(g, "k.str", 1, MT_RANGE_ABOVE(0), &f), MT_ERR_FORMAT);
    assert_string_equal(mt_last_error(), "metadata 'k.str' must be a number, not string");
}

static void check_arrays(const mt_gguf *g) {
    const mt_gguf_kv *a = mt_gguf_find(g, "k.arr_u32");
    assert_non_null(a);
    assert_int_equal(a->type, MT_GGUF_ARRAY);
    assert_int_equal(a->arr_type, MT_GGUF_U32);
    assert_int_equal(a->arr_n, 3);
    assert_int_equal(((const uint32_t *)a->arr)[2], 3);
    const mt_gguf_kv *s = mt_gguf_find(g, "k.arr_str");
    assert_int_equal(s->arr_type, MT_GGUF_STRING);
    assert_int_equal(s->arr_n, 3);
    assert_string_equal(s->arr_str[0], "a");
    assert_string_equal(s->arr_str[1], "");
    assert_int_equal(s->arr_str_len[2], 3);
    assert_memory_equal(s->arr_str[2], "b\0c", 4);
    const mt_gguf_kv *bo = mt_gguf_find(g, "k.arr_bool");
    assert_int_equal(((const uint8_t *)bo->arr)[0], 1);
    assert_int_equal(mt_gguf_find(g, "k.arr_empty")->arr_n, 0);
}

static void check_tensors(const mt_gguf *g) {
    assert_int_equal(g->n_tensors, N_TENSORS);
    for (int i = 0; i < N_TENSORS; i++) {
        const mt_gguf_tensor *t = mt_gguf_find_tensor(g, NAMES[i]);
        assert_non_null(t);
        assert_int_equal(t->ggml_type, TYPES[i]);
        assert_int_equal(t->n_dims, NDIMS[i]);
        assert_int_equal(t->ne[0], DIMS[i][0]);
        assert_int_equal(t->ne[1], DIMS[i][1]);
        assert_int_equal(t->ne[3], 1);
        assert_int_equal(t->offset % g->alignment, 0);
    }
    assert_int_equal(g->data_offset % g->alignment, 0);
    const mt_tensor *v;
    assert_int_equal(mt_gguf_tensor_view(g, "a.f32", &v), MT_OK);
    float row[4];
    mt_dequantize_row(v, 1, row);
    assert_true(row[0] == 0.5f && row[3] == 3.5f);
    assert_int_equal(mt_gguf_tensor_view(g, "b.q8", &v), MT_OK);
    float q[32];
    mt_dequantize_row(v, 1, q);
    assert_true(q[0] == -15.0f && q[31] == 16.0f);
    assert_int_equal(mt_gguf_tensor_view(g, "e.f16", &v), MT_OK);
    mt_dequantize_row(v, 0, q);
    assert_true(q[0] == 1.0f && q[1] == -2.0f && q[2] == 0x1p-24f);
}

static void check_unsupported_use(const mt_gguf *g) {
    const mt_tensor *v = NULL;
    mt_clear_error();
    assert_int_equal(mt_gguf_tensor_view(g, "d.q2k", &v), MT_ERR_UNSUPPORTED);
    assert_null(v);
    assert_non_null(strstr(mt_last_error(), "d.q2k"));
    assert_non_null(strstr(mt_last_error(), "Q2_K"));
    assert_int_equal(mt_gguf_tensor_view(g, "nope", &v), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "nope"));
    assert_null(mt_gguf_find_tensor(g, "nope"));
}

static void test_valid(uint32_t version, uint32_t alignment) {
    layout L;
    buf b = make_file(version, alignment, &L);
    mt_gguf *g = open_bytes(b.p, b.n, MT_OK);
    assert_non_null(g);
    assert_int_equal(g->version, version);
    assert_int_equal(g->alignment, alignment ? alignment : 32);
    assert_int_equal(g->n_kv, alignment ? 17 : 16);
    check_metadata(g);
    check_ranged_getters(g);
    check_arrays(g);
    check_tensors(g);
    check_unsupported_use(g);
    mt_gguf_close(g);
    free(b.p);
}

static void test_valid_v3(void **state) {
    (void)state;
    test_valid(3, 64);
}

static void test_valid_v2(void **state) {
    (void)state;
    test_valid(2, 0);
}

static void test_close_null(void **state) {
    (void)state;
    mt_gguf_close(NULL);
}

/* ---- corrupt files ---- */

static void test_every_prefix(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    for (size_t n = 0; n < b.n; n++) open_bytes(b.p, n, MT_ERR_FORMAT);
    free(b.p);
}

static void test_missing_and_directory(void **state) {
    (void)state;
    mt_gguf *g;
    assert_int_equal(mt_gguf_open("/nonexistent/x.gguf", &g), MT_ERR_IO);
    assert_null(g);
    assert_int_equal(mt_gguf_open(tmpdir, &g), MT_ERR_IO);
    assert_non_null(strstr(mt_last_error(), tmpdir));
}

static void test_bad_magic(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    expect_patched(&b, 0, "GGUG", 4, MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "not a GGUF"));
    free(b.p);
}

static void test_bad_version(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    const uint32_t format[] = {0, 0xdeadbeef}, unsupported[] = {1, 4, 0x03000000};
    for (int i = 0; i < 2; i++) expect_patched(&b, L.version, &format[i], 4, MT_ERR_FORMAT);
    for (int i = 0; i < 3; i++)
        expect_patched(&b, L.version, &unsupported[i], 4, MT_ERR_UNSUPPORTED);
    free(b.p);
}

static void test_huge_counts(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    const uint64_t huge[] = {UINT64_MAX, 1ull << 40, 100000};
    for (int i = 0; i < 3; i++) {
        expect_patched(&b, L.n_kv, &huge[i], 8, MT_ERR_FORMAT);
        expect_patched(&b, L.n_tensors, &huge[i], 8, MT_ERR_FORMAT);
        expect_patched(&b, L.array_len, &huge[i], 8, MT_ERR_FORMAT);
    }
    free(b.p);
}

static void test_bad_strings(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    const uint64_t lens[] = {UINT64_MAX, 1ull << 62, b.n};
    for (int i = 0; i < 3; i++) expect_patched(&b, L.first_key_len, &lens[i], 8, MT_ERR_FORMAT);
    expect_patched(&b, L.first_key + 1, "\0", 1, MT_ERR_FORMAT);     /* NUL inside a key */
    expect_patched(&b, L.tensor_name[2], "\0", 1, MT_ERR_FORMAT);    /* NUL in a tensor name */
    expect_patched(&b, L.first_key + 2, "i", 1, MT_ERR_FORMAT);      /* duplicate key "k.i8" */
    expect_patched(&b, L.tensor_name[1], "a.f32", 5, MT_ERR_FORMAT); /* names differ in length */
    assert_non_null(strstr(mt_last_error(), "gguf"));
    free(b.p);
}

static void test_duplicate_tensor(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    expect_patched(&b, L.tensor_name[3], "c.q4k", 5, MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "duplicate tensor"));
    free(b.p);
}

static void test_bad_values(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    uint32_t nested = 9, unknown = 13, align48 = 48, align0 = 0;
    expect_patched(&b, L.bool_value, "\x02", 1, MT_ERR_FORMAT);
    expect_patched(&b, L.array_type, &nested, 4, MT_ERR_UNSUPPORTED);
    assert_non_null(strstr(mt_last_error(), "nested"));
    expect_patched(&b, L.array_type, &unknown, 4, MT_ERR_FORMAT);
    expect_patched(&b, L.first_key_len + 8 + 4, &unknown, 4, MT_ERR_FORMAT); /* kv type */
    expect_patched(&b, L.align_value, &align48, 4, MT_ERR_FORMAT);
    expect_patched(&b, L.align_value, &align0, 4, MT_ERR_FORMAT);
    free(b.p);
}

static void test_bad_dims(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    uint32_t five = 5;
    uint64_t zero = 0, big = 1ull << 62, neg = UINT64_MAX, odd = 31;
    expect_patched(&b, L.tensor_ndims[0], &five, 4, MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "a.f32"));
    expect_patched(&b, L.tensor_dim0[0], &zero, 8, MT_ERR_FORMAT);
    expect_patched(&b, L.tensor_dim0[0], &neg, 8, MT_ERR_FORMAT);
    expect_patched(&b, L.tensor_dim0[1], &big, 8, MT_ERR_FORMAT); /* 2^62 x 2 overflows */
    expect_patched(&b, L.tensor_dim0[1], &odd, 8, MT_ERR_FORMAT); /* not whole Q8_0 blocks */
    assert_non_null(strstr(mt_last_error(), "b.q8"));
    free(b.p);
}

static void test_bad_offsets(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    uint64_t far = 1ull << 40, near_end = 0, misaligned = 8, wrap = UINT64_MAX - 63;
    memcpy(&near_end, b.p + L.tensor_offset[4], 8);
    near_end += 64; /* aligned, inside nothing */
    expect_patched(&b, L.tensor_offset[0], &far, 8, MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "a.f32"));
    expect_patched(&b, L.tensor_offset[4], &near_end, 8, MT_ERR_FORMAT);
    expect_patched(&b, L.tensor_offset[2], &misaligned, 8, MT_ERR_FORMAT);
    expect_patched(&b, L.tensor_offset[2], &wrap, 8, MT_ERR_FORMAT);
    free(b.p);
}

static void test_unknown_type(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    uint32_t unknown = 200, huge = 0xffffffffu;
    for (int k = 0; k < 2; k++) {
        memcpy(b.p + L.tensor_type[2], k ? &huge : &unknown, 4);
        mt_gguf *g = open_bytes(b.p, b.n, MT_OK); /* listing must still work */
        const mt_gguf_tensor *t = mt_gguf_find_tensor(g, "c.q4k");
        assert_string_equal(mt_dtype_name(t->ggml_type), "unknown");
        const mt_tensor *v;
        assert_int_equal(mt_gguf_tensor_view(g, "c.q4k", &v), MT_ERR_UNSUPPORTED);
        assert_non_null(strstr(mt_last_error(), "c.q4k"));
        assert_int_equal(mt_gguf_tensor_view(g, "b.q8", &v), MT_OK);
        mt_gguf_close(g);
    }
    free(b.p);
}

/* Single-byte corruption anywhere in the header: any status is fine, a crash is not. */
static void test_byte_flips(void **state) {
    (void)state;
    layout L;
    buf b = make_file(3, 64, &L);
    const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    size_t header = L.tensor_offset[N_TENSORS - 1] + 8;
    for (size_t at = 0; at < header; at++)
        for (size_t k = 0; k < sizeof vals; k++) {
            uint8_t saved = b.p[at];
            b.p[at] = vals[k];
            write_bytes(b.p, b.n);
            mt_gguf *g = NULL;
            mt_status st = mt_gguf_open(path, &g);
            if (st)
                assert_true(strlen(mt_last_error()) > 0);
            else
                mt_gguf_close(g);
            b.p[at] = saved;
        }
    free(b.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_v3),
        cmocka_unit_test(test_valid_v2),
        cmocka_unit_test(test_close_null),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_missing_and_directory),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_bad_strings),
        cmocka_unit_test(test_duplicate_tensor),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_bad_dims),
        cmocka_unit_test(test_bad_offsets),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_byte_flips),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
