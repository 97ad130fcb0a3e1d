/* Test tool: writes files with known contents through meteor's writers, and quantises
 * raw float32 data, so oracle tests can check them with the reference Python packages.
 *   write_test_files gguf OUT.gguf [ALIGNMENT]
 *   write_test_files safetensors OUT.safetensors
 *   write_test_files quantize TYPE IN.f32 OUT.bin     (TYPE: F32 F16 BF16 Q4_0 ... Q8_0)
 *   write_test_files copy IN.gguf OUT.gguf              (all metadata, tensors verbatim)
 * Tensor values come from test_values(seed, i): a 32-bit LCG scaled to [-1, 1) in steps of
 * 2^-23 (exact in float32), which tests/oracle/test_writers.py recomputes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/file_util.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "io/safetensors_write.h"
#include "kernels/quantize.h"

static float *test_values(uint32_t seed, int64_t n) {
    float *v = mt_calloc((size_t)n, sizeof *v);
    uint32_t x = seed;
    for (int64_t i = 0; v && i < n; i++) {
        x = x * 1664525u + 1013904223u;
        v[i] = (float)((int32_t)(x >> 8) - (1 << 23)) * 0x1p-23f;
    }
    return v;
}

static int64_t count(int n_dims, const int64_t *ne) {
    int64_t n = 1;
    for (int i = 0; i < n_dims; i++) n *= ne[i];
    return n;
}

/* Tensor data must outlive the writer's write call; it is freed on exit. */
static void *kept[32];
static size_t n_kept;

static void free_kept(void) {
    while (n_kept) free(kept[--n_kept]);
}

static mt_status values_as(mt_dtype t, uint32_t seed, int64_t n, void **out) {
    if (n_kept == sizeof kept / sizeof kept[0]) return mt_fail(MT_ERR_INTERNAL, "too many tensors");
    float *v = test_values(seed, n);
    void *q = v ? mt_calloc(1, mt_dtype_row_bytes(t, n)) : NULL;
    if (!q) {
        free(v);
        return MT_ERR_NOMEM;
    }
    mt_status st = mt_quantize(t, v, q, n);
    free(v);
    kept[n_kept++] = q;
    *out = q;
    return st;
}

static mt_status fill_ramp(void *ctx, void *dst, size_t nbytes) {
    (void)ctx;
    float *f = dst;
    for (size_t i = 0; i < nbytes / sizeof *f; i++) f[i] = (float)i * 0.5f;
    return MT_OK;
}

typedef struct {
    const char *name;
    mt_dtype type;
    int n_dims;
    int64_t ne[4]; /* GGUF order */
} gguf_spec;

/* Odd sizes make every tensor end off the alignment, so padding is exercised. */
static const gguf_spec GGUF_TENSORS[] = {
    {"t.f32", MT_F32, 2, {5, 3}},      {"t.f16", MT_F16, 1, {7}},
    {"t.bf16", MT_BF16, 3, {3, 2, 2}}, {"t.q8_0", MT_Q8_0, 2, {64, 3}},
    {"t.q4_0", MT_Q4_0, 2, {32, 2}},   {"t.q4_1", MT_Q4_1, 4, {32, 2, 1, 2}},
    {"t.q5_0", MT_Q5_0, 2, {32, 3}},   {"t.q5_1", MT_Q5_1, 1, {64}},
};

static mt_status gguf_scalars(mt_gguf_writer *w) {
    mt_status st = mt_gguf_writer_set_str(w, "general.architecture", "llama");
    if (!st) st = mt_gguf_writer_set_str(w, "general.name", "meteor writer test");
    if (!st) st = mt_gguf_writer_set_u8(w, "test.u8", 200);
    if (!st) st = mt_gguf_writer_set_i8(w, "test.i8", -100);
    if (!st) st = mt_gguf_writer_set_u16(w, "test.u16", 60000);
    if (!st) st = mt_gguf_writer_set_i16(w, "test.i16", -30000);
    if (!st) st = mt_gguf_writer_set_u32(w, "test.u32", 4000000000u);
    if (!st) st = mt_gguf_writer_set_i32(w, "test.i32", -2000000000);
    if (!st) st = mt_gguf_writer_set_u64(w, "test.u64", UINT64_MAX);
    if (!st) st = mt_gguf_writer_set_i64(w, "test.i64", INT64_MIN);
    if (!st) st = mt_gguf_writer_set_f32(w, "test.f32", 0.1f);
    if (!st) st = mt_gguf_writer_set_f64(w, "test.f64", 0.1);
    if (!st) st = mt_gguf_writer_set_bool(w, "test.true", true);
    if (!st) st = mt_gguf_writer_set_bool(w, "test.false", false);
    if (!st) st = mt_gguf_writer_set_str(w, "test.str", "h\xc3\xa9llo \xe2\x9c\x93 \xe4\xb8\x96");
    if (!st) st = mt_gguf_writer_set_str(w, "test.empty", "");
    if (!st) st = mt_gguf_writer_set_strn(w, "test.nul", "a\0b", 3);
    /* Replacing keeps the first position and the last value. */
    if (!st) st = mt_gguf_writer_set_str(w, "general.name", "meteor writer test v2");
    return st;
}

static mt_status gguf_arrays(mt_gguf_writer *w) {
    static const uint8_t u8[] = {0, 1, 255};
    static const int8_t i8[] = {-128, 0, 127};
    static const uint16_t u16[] = {0, 65535};
    static const int16_t i16[] = {-32768, 32767};
    static const uint32_t u32[] = {0, 1, 4294967295u};
    static const int32_t i32[] = {-1, 0, 2147483647};
    static const uint64_t u64[] = {0, UINT64_MAX};
    static const int64_t i64[] = {INT64_MIN, -1, INT64_MAX};
    static const float f32[] = {1.5f, -2.25f, 1e30f};
    static const double f64[] = {0.1, -1e300};
    static const uint8_t bools[] = {1, 0, 1};
    static const char *const strs[] = {"a", "", "\xc3\xbc", "with space"};
    mt_status st = mt_gguf_writer_set_array(w, "arr.u8", MT_GGUF_U8, u8, 3);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.i8", MT_GGUF_I8, i8, 3);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.u16", MT_GGUF_U16, u16, 2);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.i16", MT_GGUF_I16, i16, 2);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.u32", MT_GGUF_U32, u32, 3);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.i32", MT_GGUF_I32, i32, 3);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.u64", MT_GGUF_U64, u64, 2);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.i64", MT_GGUF_I64, i64, 3);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.f32", MT_GGUF_F32, f32, 3);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.f64", MT_GGUF_F64, f64, 2);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.bool", MT_GGUF_BOOL, bools, 3);
    if (!st) st = mt_gguf_writer_set_str_array(w, "arr.str", strs, NULL, 4);
    if (!st) st = mt_gguf_writer_set_array(w, "arr.empty", MT_GGUF_U32, NULL, 0);
    return st;
}

static mt_status gguf_tensors(mt_gguf_writer *w) {
    size_t n = sizeof GGUF_TENSORS / sizeof GGUF_TENSORS[0];
    for (size_t i = 0; i < n; i++) {
        const gguf_spec *s = &GGUF_TENSORS[i];
        void *data;
        mt_status st = values_as(s->type, (uint32_t)i + 1, count(s->n_dims, s->ne), &data);
        if (!st) st = mt_gguf_writer_add_tensor(w, s->name, s->type, s->n_dims, s->ne, data);
        if (st) return st;
    }
    static const int64_t ramp_ne[] = {4, 4};
    return mt_gguf_writer_add_tensor_fn(w, "t.fill", MT_F32, 2, ramp_ne, fill_ramp, NULL);
}

static mt_status write_gguf(const char *path, const char *alignment) {
    mt_gguf_writer *w;
    mt_status st = mt_gguf_writer_new(&w);
    if (st) return st;
    if (alignment) st = mt_gguf_writer_set_u32(w, "general.alignment", (uint32_t)atoi(alignment));
    if (!st) st = gguf_scalars(w);
    if (!st) st = gguf_arrays(w);
    if (!st) st = gguf_tensors(w);
    if (!st) st = mt_gguf_writer_write(w, path);
    mt_gguf_writer_free(w);
    return st;
}

typedef struct {
    const char *name;
    mt_dtype type;
    int n_dims;
    int64_t shape[4]; /* Hugging Face order */
} st_spec;

static const st_spec ST_TENSORS[] = {
    {"model.embed_tokens.weight", MT_F32, 2, {3, 5}},
    {"a.f16", MT_F16, 1, {7}},
    {"b.bf16", MT_BF16, 3, {2, 3, 1}},
    {"scalar", MT_F32, 0, {0}},
    {"empty", MT_F32, 2, {0, 3}},
    {"lora_A.weight", MT_F32, 2, {4, 8}},
};

static mt_status write_safetensors(const char *path) {
    mt_st_writer *w;
    mt_status st = mt_st_writer_new(&w);
    if (st) return st;
    size_t n = sizeof ST_TENSORS / sizeof ST_TENSORS[0];
    for (size_t i = 0; !st && i < n; i++) {
        const st_spec *s = &ST_TENSORS[i];
        void *data;
        int64_t c = count(s->n_dims, s->shape);
        st = values_as(s->type, (uint32_t)i + 100, c ? c : 1, &data);
        if (!st) st = mt_st_writer_add(w, s->name, s->type, s->n_dims, s->shape, data);
    }
    static const int64_t ramp_shape[] = {2, 8};
    if (!st) st = mt_st_writer_add_fn(w, "fill", MT_F32, 2, ramp_shape, fill_ramp, NULL);
    if (!st) st = mt_st_writer_set_meta(w, "format", "pt");
    if (!st) st = mt_st_writer_set_meta(w, "note", "unicode \xe2\x9c\x93 \"quoted\"\n\\");
    if (!st) st = mt_st_writer_write(w, path);
    mt_st_writer_free(w);
    return st;
}

static mt_status parse_type(const char *name, mt_dtype *t) {
    static const mt_dtype all[] = {MT_F32,  MT_F16,  MT_BF16, MT_Q4_0,
                                   MT_Q4_1, MT_Q5_0, MT_Q5_1, MT_Q8_0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, mt_dtype_name((int)all[i]))) {
            *t = all[i];
            return MT_OK;
        }
    return mt_fail(MT_ERR_ARG, "unknown quantisation type %s", name);
}

static mt_status quantize_file(const char *type, const char *in, const char *out) {
    mt_dtype t = MT_F32;
    char *raw = NULL;
    size_t len = 0;
    mt_status st = parse_type(type, &t);
    if (!st) st = mt_read_file(in, &raw, &len);
    if (st) return st;
    int64_t n = (int64_t)(len / sizeof(float));
    float *src = mt_calloc(n ? (size_t)n : 1, sizeof *src);
    void *dst = src ? mt_calloc(1, mt_dtype_row_bytes(t, n) + 1) : NULL;
    if (!dst) st = MT_ERR_NOMEM;
    if (!st && len % sizeof(float))
        st = mt_fail(MT_ERR_ARG, "%s: %zu bytes are not whole float32 values", in, len);
    if (!st) {
        memcpy(src, raw, (size_t)n * sizeof *src);
        st = mt_quantize(t, src, dst, n);
    }
    if (!st) st = mt_write_file_atomic(out, dst, mt_dtype_row_bytes(t, n));
    free(raw);
    free(src);
    free(dst);
    return st;
}

static mt_status copy_tensors(mt_gguf_writer *w, const mt_gguf *g) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const mt_gguf_tensor *t = &g->tensors[i];
        const uint8_t *data = (const uint8_t *)g->map + g->data_offset + t->offset;
        mt_status st = mt_gguf_writer_add_tensor(w, t->name, t->ggml_type, t->n_dims, t->ne, data);
        if (st) return st;
    }
    return MT_OK;
}

static mt_status copy_gguf(const char *in, const char *out) {
    mt_gguf *g;
    mt_status st = mt_gguf_open(in, &g);
    if (st) return st;
    mt_gguf_writer *w = NULL;
    st = mt_gguf_writer_new(&w);
    if (!st) st = mt_gguf_writer_copy_kv(w, g, NULL, NULL);
    if (!st) st = copy_tensors(w, g);
    if (!st) st = mt_gguf_writer_write(w, out);
    mt_gguf_writer_free(w);
    mt_gguf_close(g);
    return st;
}

int main(int argc, char **argv) {
    mt_status st;
    if (argc >= 3 && argc <= 4 && !strcmp(argv[1], "gguf"))
        st = write_gguf(argv[2], argc == 4 ? argv[3] : NULL);
    else if (argc == 3 && !strcmp(argv[1], "safetensors"))
        st = write_safetensors(argv[2]);
    else if (argc == 4 && !strcmp(argv[1], "copy"))
        st = copy_gguf(argv[2], argv[3]);
    else if (argc == 5 && !strcmp(argv[1], "quantize"))
        st = quantize_file(argv[2], argv[3], argv[4]);
    else {
        fprintf(stderr,
                "usage: %s gguf OUT [ALIGNMENT] | safetensors OUT | quantize TYPE IN OUT | copy IN "
                "OUT\n",
                argv[0]);
        return 2;
    }
    free_kept();
    if (st) {
        fprintf(stderr, "write_test_files: %s\n", mt_last_error());
        return 1;
    }
    return 0;
}
