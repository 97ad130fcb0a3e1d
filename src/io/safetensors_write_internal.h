/* Private to the safetensors writer: its state, shared by safetensors_write.c (collecting
 * tensors and metadata) and safetensors_write_file.c (the header and the file). */
#ifndef MT_IO_SAFETENSORS_WRITE_INTERNAL_H
#define MT_IO_SAFETENSORS_WRITE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors_write.h"

/* Offsets and sizes go through JSON numbers; readers built on doubles (cJSON, JavaScript)
 * stay exact up to 2^53. */
#define ST_MAX_BYTES (1ull << 53)

typedef struct {
    char *name;
    mt_dtype type;
    int n_dims;
    int64_t shape[MT_ST_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
    mt_fill_fn fill;
    void *ctx;
} st_entry;

typedef struct {
    char *key, *value;
} st_meta;

struct mt_st_writer {
    st_entry *t;
    size_t n, cap;
    st_meta *meta;
    size_t n_meta, cap_meta;
};

static inline const char *st_dtype_tag(mt_dtype t) {
    switch (t) {
    case MT_F32:
        return "F32";
    case MT_F16:
        return "F16";
    case MT_BF16:
        return "BF16";
    default:
        return NULL;
    }
}

static inline size_t st_elem_size(mt_dtype t) {
    return t == MT_F32 ? 4 : 2;
}

#endif
