/* GGUF v2/v3 reader. The file is mmap'ed; tensor data pointers point into the mapping
 * and stay valid until mt_gguf_close. Every offset and size is validated on open, so a
 * truncated or corrupt file yields MT_ERR_FORMAT, never an out-of-bounds read. */
#ifndef MT_IO_GGUF_H
#define MT_IO_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/range.h"
#include "core/status.h"
#include "kernels/dtype.h"

typedef enum {
    MT_GGUF_U8 = 0,
    MT_GGUF_I8 = 1,
    MT_GGUF_U16 = 2,
    MT_GGUF_I16 = 3,
    MT_GGUF_U32 = 4,
    MT_GGUF_I32 = 5,
    MT_GGUF_F32 = 6,
    MT_GGUF_BOOL = 7,
    MT_GGUF_STRING = 8,
    MT_GGUF_ARRAY = 9,
    MT_GGUF_U64 = 10,
    MT_GGUF_I64 = 11,
    MT_GGUF_F64 = 12,
} mt_gguf_type;

typedef struct {
    char *key;
    mt_gguf_type type;
    /* Scalars, widened: integers and bools in i64 (u64 values above INT64_MAX kept in u64),
     * floats in f64, strings NUL-terminated in str. */
    int64_t i64;
    uint64_t u64;
    double f64;
    char *str;
    /* Arrays: element type and count; numeric elements copied into arr (packed, element
     * size of arr_type), string elements as char*[arr_n] in arr_str. Nested arrays are
     * rejected as unsupported. */
    mt_gguf_type arr_type;
    uint64_t arr_n;
    void *arr;
    char **arr_str;
    /* Byte lengths of str and of each arr_str element (a GGUF string may hold NUL). */
    uint64_t str_len;
    uint64_t *arr_str_len;
} mt_gguf_kv;

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[4];
    int ggml_type;   /* raw id from the file */
    uint64_t offset; /* relative to the data section */
    mt_tensor view;  /* valid only when mt_dtype_supported(ggml_type) */
} mt_gguf_tensor;

typedef struct {
    char *path;
    uint32_t version;
    uint64_t n_kv;
    mt_gguf_kv *kv;
    uint64_t n_tensors;
    mt_gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;
    void *map;
    size_t map_size;
} mt_gguf;

/* Bytes of one fixed-size metadata value; 0 for strings, arrays and unknown ids. */
size_t mt_gguf_scalar_size(uint32_t type);

mt_status mt_gguf_open(const char *path, mt_gguf **out);
void mt_gguf_close(mt_gguf *g);

const mt_gguf_kv *mt_gguf_find(const mt_gguf *g, const char *key);
const mt_gguf_tensor *mt_gguf_find_tensor(const mt_gguf *g, const char *name);

/* The tensor `name` ready for compute: MT_ERR_FORMAT if the file has no such tensor,
 * MT_ERR_UNSUPPORTED (naming tensor and type) if its type is one meteor cannot read.
 * Opening succeeds for such files so their contents can still be listed. */
mt_status mt_gguf_tensor_view(const mt_gguf *g, const char *name, const mt_tensor **out);

/* Typed getters: return 1 and set *out when the key exists with a compatible type
 * (any integer type for ints, f32/f64 for floats), 0 when absent. A present key of an
 * incompatible type also returns 0. */
int mt_gguf_get_int(const mt_gguf *g, const char *key, int64_t *out);
int mt_gguf_get_float(const mt_gguf *g, const char *key, double *out);
int mt_gguf_get_bool(const mt_gguf *g, const char *key, int *out);
const char *mt_gguf_get_str(const mt_gguf *g, const char *key); /* NULL if absent */

/* Numbers a caller relies on: *out = def when the key is absent; an error naming the key
 * when it holds another type (for ints: anything but an integer type) or a value outside
 * r, which a cast would silently wrap or turn into inf. */
mt_status mt_gguf_get_int_in(const mt_gguf *g, const char *key, int def, mt_range r, int *out);
mt_status mt_gguf_get_float_in(const mt_gguf *g, const char *key, float def, mt_range r,
                               float *out);

#endif
