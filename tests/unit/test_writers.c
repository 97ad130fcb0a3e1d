/* GGUF and safetensors writers: files written here are read back with meteor's own
 * readers (every metadata type, string arrays, quantised tensors, alignment), copied
 * metadata survives, and every failure leaves the target untouched with no temporary
 * file behind. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "io/file_util.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "io/safetensors.h"
#include "io/safetensors_write.h"
#include "kernels/quantize.h"

static char dir[64];

static void path_in(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

static int setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/mt_writers_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') snprintf(p, sizeof p, "%s/%s", dir, e->d_name), unlink(p);
    closedir(d);
    rmdir(dir);
    return 0;
}

/* Entries of the test folder whose name contains ".tmp." (a writer's temporary file). */
static int stray_temp_files(const char *folder) {
    DIR *d = opendir(folder);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void lcg_fill(float *v, int64_t n, uint32_t seed) {
    uint32_t x = seed;
    for (int64_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        v[i] = (float)((int32_t)(x >> 8) - (1 << 23)) * 0x1p-23f;
    }
}

/* ------------------------------------------------------------------ GGUF */

static const char *const VOCAB[] = {"<s>", "", "h\xc3\xa9", "a b"};

static void set_all_metadata(mt_gguf_writer *w) {
    assert_int_equal(mt_gguf_writer_set_str(w, "general.architecture", "llama"), MT_OK);
    assert_int_equal(mt_gguf_writer_set_u8(w, "m.u8", 250), MT_OK);
    assert_int_equal(mt_gguf_writer_set_i8(w, "m.i8", -5), MT_OK);
    assert_int_equal(mt_gguf_writer_set_u16(w, "m.u16", 65000), MT_OK);
    assert_int_equal(mt_gguf_writer_set_i16(w, "m.i16", -32000), MT_OK);
    assert_int_equal(mt_gguf_writer_set_u32(w, "m.u32", 4000000000u), MT_OK);
    assert_int_equal(mt_gguf_writer_set_i32(w, "m.i32", -7), MT_OK);
    assert_int_equal(mt_gguf_writer_set_u64(w, "m.u64", UINT64_MAX), MT_OK);
    assert_int_equal(mt_gguf_writer_set_i64(w, "m.i64", INT64_MIN), MT_OK);
    assert_int_equal(mt_gguf_writer_set_f32(w, "m.f32", 1e-5f), MT_OK);
    assert_int_equal(mt_gguf_writer_set_f64(w, "m.f64", 1e300), MT_OK);
    assert_int_equal(mt_gguf_writer_set_bool(w, "m.bool", true), MT_OK);
    assert_int_equal(mt_gguf_writer_set_strn(w, "m.nul", "x\0y", 3), MT_OK);
    static const int32_t ints[] = {1, -2, 3};
    static const float floats[] = {0.5f, -0.25f};
    static const uint8_t bools[] = {0, 1};
    assert_int_equal(mt_gguf_writer_set_array(w, "m.ints", MT_GGUF_I32, ints, 3), MT_OK);
    assert_int_equal(mt_gguf_writer_set_array(w, "m.floats", MT_GGUF_F32, floats, 2), MT_OK);
    assert_int_equal(mt_gguf_writer_set_array(w, "m.bools", MT_GGUF_BOOL, bools, 2), MT_OK);
    assert_int_equal(mt_gguf_writer_set_array(w, "m.none", MT_GGUF_U64, NULL, 0), MT_OK);
    assert_int_equal(mt_gguf_writer_set_str_array(w, "m.vocab", VOCAB, NULL, 4), MT_OK);
    /* A replaced key keeps one entry with the last value. */
    assert_int_equal(mt_gguf_writer_set_i32(w, "m.i32", -2000000000), MT_OK);
}

static void check_all_metadata(const mt_gguf *g) {
    int64_t i;
    double f;
    int b;
    assert_string_equal(mt_gguf_get_str(g, "general.architecture"), "llama");
    assert_true(mt_gguf_get_int(g, "m.u8", &i) && i == 250);
    assert_true(mt_gguf_get_int(g, "m.i8", &i) && i == -5);
    assert_true(mt_gguf_get_int(g, "m.u16", &i) && i == 65000);
    assert_true(mt_gguf_get_int(g, "m.i16", &i) && i == -32000);
    assert_true(mt_gguf_get_int(g, "m.u32", &i) && i == 4000000000LL);
    assert_true(mt_gguf_get_int(g, "m.i32", &i) && i == -2000000000);
    assert_int_equal(mt_gguf_find(g, "m.u64")->type, MT_GGUF_U64);
    assert_true(mt_gguf_find(g, "m.u64")->u64 == UINT64_MAX);
    assert_true(mt_gguf_get_int(g, "m.i64", &i) && i == INT64_MIN);
    assert_true(mt_gguf_get_float(g, "m.f32", &f) && (float)f == 1e-5f);
    assert_int_equal(mt_gguf_find(g, "m.f32")->type, MT_GGUF_F32);
    assert_true(mt_gguf_get_float(g, "m.f64", &f) && f == 1e300);
    assert_true(mt_gguf_get_bool(g, "m.bool", &b) && b == 1);
    const mt_gguf_kv *nul = mt_gguf_find(g, "m.nul");
    assert_int_equal(nul->str_len, 3);
    assert_memory_equal(nul->str, "x\0y", 3);
    const mt_gguf_kv *a = mt_gguf_find(g, "m.ints");
    assert_int_equal(a->type, MT_GGUF_ARRAY);
    assert_int_equal(a->arr_type, MT_GGUF_I32);
    assert_int_equal(a->arr_n, 3);
    assert_int_equal(((const int32_t *)a->arr)[1], -2);
    a = mt_gguf_find(g, "m.floats");
    assert_true(a->arr_type == MT_GGUF_F32 && ((const float *)a->arr)[1] == -0.25f);
    a = mt_gguf_find(g, "m.bools");
    assert_true(a->arr_type == MT_GGUF_BOOL && ((const uint8_t *)a->arr)[1] == 1);
    a = mt_gguf_find(g, "m.none");
    assert_true(a->arr_type == MT_GGUF_U64 && a->arr_n == 0);
    a = mt_gguf_find(g, "m.vocab");
    assert_int_equal(a->arr_type, MT_GGUF_STRING);
    assert_int_equal(a->arr_n, 4);
    for (int k = 0; k < 4; k++) assert_string_equal(a->arr_str[k], VOCAB[k]);
}

typedef struct {
    int64_t ne[4];
    int n_dims;
    mt_dtype type;
    void *data;
    size_t bytes;
} test_tensor;

static void make_tensor(test_tensor *t, mt_dtype type, int n_dims, int64_t ne0, int64_t ne1,
                        uint32_t seed) {
    memset(t, 0, sizeof *t);
    t->type = type;
    t->n_dims = n_dims;
    t->ne[0] = ne0, t->ne[1] = ne1, t->ne[2] = t->ne[3] = 1;
    int64_t n = ne0 * (n_dims > 1 ? ne1 : 1);
    t->bytes = mt_dtype_row_bytes(type, ne0) * (size_t)(n / ne0);
    t->data = malloc(t->bytes);
    assert_non_null(t->data);
    if (!mt_quantize_supported(type)) { /* K-quants: arbitrary bytes are a valid copy test */
        for (size_t i = 0; i < t->bytes; i++) ((uint8_t *)t->data)[i] = (uint8_t)(i * 131 + seed);
        return;
    }
    float *v = malloc((size_t)n * sizeof *v);
    lcg_fill(v, n, seed);
    assert_int_equal(mt_quantize(type, v, t->data, n), MT_OK);
    free(v);
}

static mt_status fill_ramp(void *ctx, void *dst, size_t nbytes) {
    (void)ctx;
    for (size_t i = 0; i < nbytes / 4; i++) ((float *)dst)[i] = (float)i;
    return MT_OK;
}

static mt_status fill_fails(void *ctx, void *dst, size_t nbytes) {
    (void)ctx, (void)dst, (void)nbytes;
    return mt_fail(MT_ERR_INTERNAL, "fill failed on purpose");
}

#define N_TENSORS 5

static void write_and_check_gguf(uint32_t alignment) {
    test_tensor ts[N_TENSORS];
    const char *names[N_TENSORS] = {"f32", "f16", "q8_0", "q4_1", "q6_k"};
    make_tensor(&ts[0], MT_F32, 2, 3, 5, 1); /* 60 bytes: ends off any alignment */
    make_tensor(&ts[1], MT_F16, 1, 7, 1, 2);
    make_tensor(&ts[2], MT_Q8_0, 2, 64, 3, 3);
    make_tensor(&ts[3], MT_Q4_1, 2, 32, 2, 4);
    make_tensor(&ts[4], MT_Q6_K, 2, 256, 2, 5);
    mt_gguf_writer *w;
    assert_int_equal(mt_gguf_writer_new(&w), MT_OK);
    if (alignment) assert_int_equal(mt_gguf_writer_set_u32(w, "general.alignment", alignment), 0);
    set_all_metadata(w);
    for (int i = 0; i < N_TENSORS; i++)
        assert_int_equal(
            mt_gguf_writer_add_tensor(w, names[i], ts[i].type, ts[i].n_dims, ts[i].ne, ts[i].data),
            MT_OK);
    static const int64_t ramp_ne[] = {4, 2, 2};
    assert_int_equal(mt_gguf_writer_add_tensor_fn(w, "ramp", MT_F32, 3, ramp_ne, fill_ramp, NULL),
                     MT_OK);
    char p[128];
    path_in(p, sizeof p, "w.gguf");
    assert_int_equal(mt_gguf_writer_write(w, p), MT_OK);
    mt_gguf_writer_free(w);

    mt_gguf *g;
    assert_int_equal(mt_gguf_open(p, &g), MT_OK);
    assert_int_equal(g->version, 3);
    uint64_t align = alignment ? alignment : 32;
    assert_int_equal(g->alignment, align);
    assert_int_equal(g->data_offset % align, 0);
    check_all_metadata(g);
    assert_int_equal(g->n_tensors, N_TENSORS + 1);
    for (int i = 0; i < N_TENSORS; i++) {
        const mt_gguf_tensor *t = &g->tensors[i];
        assert_string_equal(t->name, names[i]);
        assert_int_equal(t->ggml_type, ts[i].type);
        assert_int_equal(t->n_dims, ts[i].n_dims);
        assert_memory_equal(t->ne, ts[i].ne, sizeof t->ne);
        assert_int_equal(t->offset % align, 0);
        assert_memory_equal((const uint8_t *)g->map + g->data_offset + t->offset, ts[i].data,
                            ts[i].bytes);
        free(ts[i].data);
    }
    const mt_tensor *ramp;
    assert_int_equal(mt_gguf_tensor_view(g, "ramp", &ramp), MT_OK);
    assert_int_equal(ramp->n_dims, 3);
    assert_true(((const float *)ramp->data)[15] == 15.0f);
    mt_gguf_close(g);
    assert_int_equal(stray_temp_files(dir), 0);
}

static void test_gguf_round_trip(void **state) {
    (void)state;
    write_and_check_gguf(0);
    write_and_check_gguf(64);
    write_and_check_gguf(1);
}

static int skip_test_keys(const char *key, void *ctx) {
    (void)ctx;
    return !strncmp(key, "m.i", 3); /* m.i8, m.i16, m.i32, m.i64, m.ints */
}

static void test_gguf_copy_kv(void **state) {
    (void)state;
    char src_path[128], dst_path[128];
    path_in(src_path, sizeof src_path, "src.gguf");
    path_in(dst_path, sizeof dst_path, "dst.gguf");
    mt_gguf_writer *w;
    assert_int_equal(mt_gguf_writer_new(&w), MT_OK);
    set_all_metadata(w);
    assert_int_equal(mt_gguf_writer_set_u32(w, "general.alignment", 16), MT_OK);
    assert_int_equal(mt_gguf_writer_write(w, src_path), MT_OK);
    mt_gguf_writer_free(w);

    mt_gguf *src;
    assert_int_equal(mt_gguf_open(src_path, &src), MT_OK);
    /* Everything copied: the new file reads back identically. */
    assert_int_equal(mt_gguf_writer_new(&w), MT_OK);
    assert_int_equal(mt_gguf_writer_copy_kv(w, src, NULL, NULL), MT_OK);
    assert_int_equal(mt_gguf_writer_n_kv(w), src->n_kv);
    assert_int_equal(mt_gguf_writer_set_str(w, "general.architecture", "qwen2"), MT_OK);
    assert_int_equal(mt_gguf_writer_write(w, dst_path), MT_OK);
    mt_gguf_writer_free(w);
    mt_gguf *dst;
    assert_int_equal(mt_gguf_open(dst_path, &dst), MT_OK);
    assert_int_equal(dst->alignment, 16);
    assert_int_equal(dst->n_kv, src->n_kv);
    for (uint64_t i = 0; i < src->n_kv; i++) assert_string_equal(dst->kv[i].key, src->kv[i].key);
    assert_string_equal(mt_gguf_get_str(dst, "general.architecture"), "qwen2");
    assert_string_equal(dst->kv[0].key, "general.architecture"); /* kept its place */
    mt_gguf_close(dst);

    /* Skipped by predicate and by list. */
    static const char *const drop[] = {"m.u*", "m.vocab", "general.alignment", NULL};
    assert_int_equal(mt_gguf_writer_new(&w), MT_OK);
    assert_int_equal(mt_gguf_writer_copy_kv(w, src, skip_test_keys, NULL), MT_OK);
    assert_int_equal(mt_gguf_writer_remove_kv(w, "m.bools"), 1);
    assert_int_equal(mt_gguf_writer_remove_kv(w, "m.bools"), 0);
    mt_gguf_writer *w2;
    assert_int_equal(mt_gguf_writer_new(&w2), MT_OK);
    assert_int_equal(mt_gguf_writer_copy_kv(w2, src, mt_gguf_key_in_list, (void *)drop), MT_OK);
    assert_int_equal(mt_gguf_writer_write(w, dst_path), MT_OK);
    assert_int_equal(mt_gguf_open(dst_path, &dst), MT_OK);
    assert_null(mt_gguf_find(dst, "m.i8"));
    assert_null(mt_gguf_find(dst, "m.ints"));
    assert_null(mt_gguf_find(dst, "m.bools"));
    assert_non_null(mt_gguf_find(dst, "m.u8"));
    mt_gguf_close(dst);
    assert_int_equal(mt_gguf_writer_write(w2, dst_path), MT_OK);
    assert_int_equal(mt_gguf_open(dst_path, &dst), MT_OK);
    assert_null(mt_gguf_find(dst, "m.u8"));
    assert_null(mt_gguf_find(dst, "m.u64"));
    assert_null(mt_gguf_find(dst, "m.vocab"));
    assert_int_equal(dst->alignment, 32);
    assert_non_null(mt_gguf_find(dst, "m.i8"));
    mt_gguf_close(dst);
    mt_gguf_writer_free(w);
    mt_gguf_writer_free(w2);
    mt_gguf_close(src);
}

static void test_gguf_rejects_bad_input(void **state) {
    (void)state;
    mt_gguf_writer *w;
    assert_int_equal(mt_gguf_writer_new(&w), MT_OK);
    float data[64] = {0};
    int64_t ne[4] = {32, 2, 1, 1};
    assert_int_equal(mt_gguf_writer_add_tensor(w, "a", MT_F32, 2, ne, data), MT_OK);
    assert_int_equal(mt_gguf_writer_add_tensor(w, "a", MT_F32, 2, ne, data), MT_ERR_ARG);
    assert_non_null(strstr(mt_last_error(), "duplicate"));
    assert_int_equal(mt_gguf_writer_add_tensor(w, "", MT_F32, 2, ne, data), MT_ERR_ARG);
    assert_int_equal(mt_gguf_writer_add_tensor(w, "b", MT_F32, 0, ne, data), MT_ERR_ARG);
    assert_int_equal(mt_gguf_writer_add_tensor(w, "b", MT_F32, 5, ne, data), MT_ERR_ARG);
    assert_int_equal(mt_gguf_writer_add_tensor(w, "b", 5, 2, ne, data), MT_ERR_ARG); /* no id 5 */
    assert_int_equal(mt_gguf_writer_add_tensor(w, "b", MT_F32, 2, ne, NULL), MT_ERR_ARG);
    int64_t zero[] = {32, 0};
    assert_int_equal(mt_gguf_writer_add_tensor(w, "b", MT_F32, 2, zero, data), MT_ERR_ARG);
    int64_t neg[] = {-32};
    assert_int_equal(mt_gguf_writer_add_tensor(w, "b", MT_F32, 1, neg, data), MT_ERR_ARG);
    int64_t partial[] = {48};
    assert_int_equal(mt_gguf_writer_add_tensor(w, "b", MT_Q8_0, 1, partial, data), MT_ERR_ARG);
    assert_non_null(strstr(mt_last_error(), "blocks"));
    char long_name[80];
    memset(long_name, 'x', 64);
    long_name[64] = '\0';
    assert_int_equal(mt_gguf_writer_add_tensor(w, long_name, MT_F32, 2, ne, data), MT_ERR_ARG);
    assert_int_equal(mt_gguf_writer_n_tensors(w), 1);
    assert_int_equal(mt_gguf_writer_set_u32(w, "general.alignment", 24), MT_ERR_ARG);
    assert_int_equal(mt_gguf_writer_set_u32(w, "general.alignment", 0), MT_ERR_ARG);
    assert_int_equal(mt_gguf_writer_set_u64(w, "general.alignment", 32), MT_ERR_ARG);
    assert_int_equal(mt_gguf_writer_set_u32(w, "", 1), MT_ERR_ARG);
    uint8_t bad_bools[] = {0, 2};
    assert_int_equal(mt_gguf_writer_set_array(w, "b", MT_GGUF_BOOL, bad_bools, 2), MT_ERR_ARG);
    assert_int_equal(mt_gguf_writer_set_array(w, "b", MT_GGUF_STRING, data, 1), MT_ERR_ARG);
    assert_int_equal(mt_gguf_writer_set_array(w, "b", MT_GGUF_ARRAY, data, 1), MT_ERR_ARG);
    assert_int_equal(mt_gguf_writer_n_kv(w), 0);
    mt_gguf_writer_free(w);
}

/* A failed write leaves an existing target as it was and no temporary file. */
static void test_gguf_failed_write_keeps_target(void **state) {
    (void)state;
    char p[128];
    path_in(p, sizeof p, "keep.gguf");
    assert_int_equal(mt_write_file_atomic(p, "old", 3), MT_OK);
    mt_gguf_writer *w;
    assert_int_equal(mt_gguf_writer_new(&w), MT_OK);
    int64_t ne[] = {8};
    assert_int_equal(mt_gguf_writer_add_tensor_fn(w, "bad", MT_F32, 1, ne, fill_fails, NULL), 0);
    assert_int_equal(mt_gguf_writer_write(w, p), MT_ERR_INTERNAL);
    assert_non_null(strstr(mt_last_error(), "fill failed on purpose"));
    assert_non_null(strstr(mt_last_error(), "bad"));
    char *text;
    size_t len;
    assert_int_equal(mt_read_file(p, &text, &len), MT_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(text, "old", 3);
    free(text);
    assert_int_equal(stray_temp_files(dir), 0);

    assert_int_equal(mt_gguf_writer_write(w, "/nonexistent-meteor-dir/x.gguf"), MT_ERR_IO);
    assert_non_null(strstr(mt_last_error(), "/nonexistent-meteor-dir/x.gguf"));
    mt_gguf_writer_free(w);
}

/* A folder we may not write to: MT_ERR_IO and nothing created. Root ignores permission
 * bits, so there the check runs on a path whose parent is a regular file instead. */
static void test_unwritable_folder(void **state) {
    (void)state;
    char sub[128], p[160];
    path_in(sub, sizeof sub, "ro");
    assert_int_equal(mkdir(sub, 0555), 0);
    if (geteuid() == 0) {
        rmdir(sub);
        path_in(sub, sizeof sub, "plainfile");
        assert_int_equal(mt_write_file_atomic(sub, "x", 1), MT_OK);
    }
    snprintf(p, sizeof p, "%s/out.gguf", sub);
    mt_gguf_writer *w;
    assert_int_equal(mt_gguf_writer_new(&w), MT_OK);
    assert_int_equal(mt_gguf_writer_set_str(w, "k", "v"), MT_OK);
    assert_int_equal(mt_gguf_writer_write(w, p), MT_ERR_IO);
    mt_gguf_writer_free(w);
    snprintf(p, sizeof p, "%s/out.safetensors", sub);
    mt_st_writer *sw;
    assert_int_equal(mt_st_writer_new(&sw), MT_OK);
    assert_int_equal(mt_st_writer_write(sw, p), MT_ERR_IO);
    mt_st_writer_free(sw);
    if (geteuid() != 0) {
        assert_int_equal(stray_temp_files(sub), 0);
        rmdir(sub);
    } else {
        unlink(sub);
    }
    assert_int_equal(stray_temp_files(dir), 0);
}

/* ------------------------------------------------------------ safetensors */

static void test_safetensors_round_trip(void **state) {
    (void)state;
    float w32[15];
    lcg_fill(w32, 15, 7);
    float tmp[6];
    lcg_fill(tmp, 6, 8);
    uint16_t w16[6], wbf[3];
    mt_quantize(MT_F16, tmp, w16, 6);
    mt_quantize(MT_BF16, tmp, wbf, 3);
    float scalar = 2.5f;
    mt_st_writer *w;
    assert_int_equal(mt_st_writer_new(&w), MT_OK);
    /* Added out of layout order: an odd-sized half tensor first, F32 after. */
    static const int64_t s_bf[] = {3}, s_16[] = {2, 3}, s_32[] = {3, 5}, s_ramp[] = {2, 2, 2};
    assert_int_equal(mt_st_writer_add(w, "z.bf16", MT_BF16, 1, s_bf, wbf), MT_OK);
    assert_int_equal(mt_st_writer_add(w, "half", MT_F16, 2, s_16, w16), MT_OK);
    assert_int_equal(mt_st_writer_add(w, "weight", MT_F32, 2, s_32, w32), MT_OK);
    assert_int_equal(mt_st_writer_add(w, "scalar", MT_F32, 0, NULL, &scalar), MT_OK);
    assert_int_equal(mt_st_writer_add_fn(w, "ramp", MT_F32, 3, s_ramp, fill_ramp, NULL), MT_OK);
    assert_int_equal(mt_st_writer_set_meta(w, "format", "np"), MT_OK);
    assert_int_equal(mt_st_writer_set_meta(w, "format", "pt"), MT_OK);
    assert_int_equal(mt_st_writer_set_meta(w, "quote", "a \"b\"\n"), MT_OK);
    assert_int_equal(mt_st_writer_count(w), 5);
    char p[128];
    path_in(p, sizeof p, "w.safetensors");
    assert_int_equal(mt_st_writer_write(w, p), MT_OK);
    mt_st_writer_free(w);

    mt_safetensors *st;
    assert_int_equal(mt_safetensors_open(p, &st), MT_OK);
    assert_int_equal(mt_safetensors_count(st), 5);
    const mt_st_tensor *t = mt_safetensors_find(st, "weight");
    assert_non_null(t);
    assert_int_equal(t->view.type, MT_F32);
    assert_int_equal(t->view.n_dims, 2);
    assert_int_equal(t->view.ne[0], 5); /* GGUF order: innermost first */
    assert_int_equal(t->view.ne[1], 3);
    assert_memory_equal(t->view.data, w32, sizeof w32);
    t = mt_safetensors_find(st, "half");
    assert_true(t->view.type == MT_F16 && t->view.ne[0] == 3 && t->view.ne[1] == 2);
    assert_memory_equal(t->view.data, w16, sizeof w16);
    t = mt_safetensors_find(st, "z.bf16");
    assert_true(t->view.type == MT_BF16 && t->view.ne[0] == 3);
    assert_memory_equal(t->view.data, wbf, sizeof wbf);
    t = mt_safetensors_find(st, "scalar");
    assert_true(t->view.n_dims == 0 && *(const float *)t->view.data == 2.5f);
    t = mt_safetensors_find(st, "ramp");
    assert_true(t->view.n_dims == 3 && ((const float *)t->view.data)[7] == 7.0f);
    /* Every tensor is aligned to its element size (F32 first in the data section). */
    for (size_t i = 0; i < mt_safetensors_count(st); i++) {
        const mt_st_tensor *e = mt_safetensors_at(st, i);
        size_t es = e->view.type == MT_F32 ? 4 : 2;
        assert_int_equal((uintptr_t)e->view.data % es, 0);
    }
    mt_safetensors_close(st);

    char *raw;
    size_t len;
    assert_int_equal(mt_read_file(p, &raw, &len), MT_OK);
    uint64_t hlen;
    memcpy(&hlen, raw, 8);
    assert_int_equal((8 + hlen) % 8, 0);
    assert_int_equal(raw[8], '{');
    cJSON *root = cJSON_ParseWithLength(raw + 8, (size_t)hlen);
    assert_non_null(root);
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(meta, "format")->valuestring, "pt");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(meta, "quote")->valuestring, "a \"b\"\n");
    cJSON_Delete(root);
    free(raw);
}

static void test_safetensors_rejects_bad_input(void **state) {
    (void)state;
    mt_st_writer *w;
    assert_int_equal(mt_st_writer_new(&w), MT_OK);
    float data[8] = {0};
    int64_t shape[] = {2, 4};
    assert_int_equal(mt_st_writer_add(w, "a", MT_F32, 2, shape, data), MT_OK);
    assert_int_equal(mt_st_writer_add(w, "a", MT_F32, 2, shape, data), MT_ERR_ARG);
    assert_non_null(strstr(mt_last_error(), "duplicate"));
    assert_int_equal(mt_st_writer_add(w, "__metadata__", MT_F32, 2, shape, data), MT_ERR_ARG);
    assert_int_equal(mt_st_writer_add(w, "", MT_F32, 2, shape, data), MT_ERR_ARG);
    assert_int_equal(mt_st_writer_add(w, "q", MT_Q8_0, 2, shape, data), MT_ERR_ARG);
    int64_t neg[] = {2, -4};
    assert_int_equal(mt_st_writer_add(w, "n", MT_F32, 2, neg, data), MT_ERR_ARG);
    assert_int_equal(mt_st_writer_add(w, "n", MT_F32, -1, shape, data), MT_ERR_ARG);
    assert_int_equal(mt_st_writer_add(w, "n", MT_F32, MT_ST_MAX_DIMS + 1, shape, data), MT_ERR_ARG);
    int64_t huge[] = {INT64_MAX, 4};
    assert_int_equal(mt_st_writer_add(w, "n", MT_F32, 2, huge, data), MT_ERR_ARG);
    assert_int_equal(mt_st_writer_add(w, "n", MT_F32, 2, shape, NULL), MT_ERR_ARG);
    assert_int_equal(mt_st_writer_count(w), 1);

    char p[128];
    path_in(p, sizeof p, "bad.safetensors");
    assert_int_equal(mt_st_writer_add_fn(w, "fails", MT_F32, 2, shape, fill_fails, NULL), MT_OK);
    assert_int_equal(mt_st_writer_write(w, p), MT_ERR_INTERNAL);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(stray_temp_files(dir), 0);
    mt_st_writer_free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_round_trip),
        cmocka_unit_test(test_gguf_copy_kv),
        cmocka_unit_test(test_gguf_rejects_bad_input),
        cmocka_unit_test(test_gguf_failed_write_keeps_target),
        cmocka_unit_test(test_unwritable_folder),
        cmocka_unit_test(test_safetensors_round_trip),
        cmocka_unit_test(test_safetensors_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
