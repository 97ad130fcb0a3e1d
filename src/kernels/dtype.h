/* Element types of model tensors. Values equal GGML's type ids so GGUF files map 1:1. */
#ifndef MT_KERNELS_DTYPE_H
#define MT_KERNELS_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum {
    MT_F32 = 0,
    MT_F16 = 1,
    MT_Q4_0 = 2,
    MT_Q4_1 = 3,
    MT_Q5_0 = 6,
    MT_Q5_1 = 7,
    MT_Q8_0 = 8,
    MT_Q4_K = 12,
    MT_Q5_K = 13,
    MT_Q6_K = 14,
    MT_BF16 = 30,
} mt_dtype;

/* True for the types meteor can read; any other GGML id is rejected with a clear error. */
int mt_dtype_supported(int ggml_type);
/* Name as GGUF tools print it ("Q4_K"), or "unknown". Works for unsupported GGML ids too. */
const char *mt_dtype_name(int ggml_type);
/* Elements per block (1 for F32/F16/BF16, 32 for Q4_0.., 256 for K-quants). */
int64_t mt_dtype_block_elems(mt_dtype t);
/* Block layout of any GGML id meteor can name (supported or not): returns 1 and sets
 * both outputs, or 0 for an id it does not know. */
int mt_ggml_type_layout(int ggml_type, int64_t *block_elems, size_t *block_bytes);
/* Bytes per block. */
size_t mt_dtype_block_bytes(mt_dtype t);
/* Bytes for a row of n elements; n must be a multiple of the block size. */
size_t mt_dtype_row_bytes(mt_dtype t, int64_t n);

/* A read-only view of a weight tensor. ne[0] is the innermost (contiguous) dimension,
 * as in GGUF: a [rows x cols] matrix stored row-major has ne[0] = cols, ne[1] = rows. */
typedef struct {
    mt_dtype type;
    int n_dims;
    int64_t ne[4];
    const void *data;
    /* The rows packed for the AVX-512 kernels (kernels/qpack.h), or NULL: then the
     * decoding kernels read data. Not owned. */
    const void *packed;
} mt_tensor;

int64_t mt_tensor_nelements(const mt_tensor *t);
size_t mt_tensor_nbytes(const mt_tensor *t);

#endif
