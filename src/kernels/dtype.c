#include "kernels/dtype.h"

/* Layout of every GGML type id we can name, including ones meteor cannot compute
 * with: knowing their sizes lets the GGUF reader bounds-check such tensors and
 * still list them. Values follow the GGML/GGUF specification. */
typedef struct {
    const char *name;
    int64_t block_elems;
    size_t block_bytes;
    int supported;
} type_info;

#define QK_K 256

static const type_info TYPES[] = {
    [0] = {"F32", 1, 4, 1},
    [1] = {"F16", 1, 2, 1},
    [2] = {"Q4_0", 32, 2 + 16, 1},
    [3] = {"Q4_1", 32, 2 + 2 + 16, 1},
    [6] = {"Q5_0", 32, 2 + 4 + 16, 1},
    [7] = {"Q5_1", 32, 2 + 2 + 4 + 16, 1},
    [8] = {"Q8_0", 32, 2 + 32, 1},
    [9] = {"Q8_1", 32, 4 + 4 + 32, 0},
    [10] = {"Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4, 0},
    [11] = {"Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12, 0},
    [12] = {"Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12, 1},
    [13] = {"Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12, 1},
    [14] = {"Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16, 1},
    [15] = {"Q8_K", QK_K, 4 + QK_K + QK_K / 8, 0},
    [16] = {"IQ2_XXS", QK_K, 2 + QK_K / 4, 0},
    [17] = {"IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32, 0},
    [18] = {"IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8, 0},
    [19] = {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16, 0},
    [20] = {"IQ4_NL", 32, 2 + 16, 0},
    [21] = {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4, 0},
    [22] = {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16, 0},
    [23] = {"IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64, 0},
    [24] = {"I8", 1, 1, 0},
    [25] = {"I16", 1, 2, 0},
    [26] = {"I32", 1, 4, 0},
    [27] = {"I64", 1, 8, 0},
    [28] = {"F64", 1, 8, 0},
    [29] = {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, 0},
    [30] = {"BF16", 1, 2, 1},
    [34] = {"TQ1_0", QK_K, 2 + 4 * 13, 0},
    [35] = {"TQ2_0", QK_K, 2 + 64, 0},
    [39] = {"MXFP4", 32, 1 + 16, 0},
    [40] = {"NVFP4", 64, 4 + 32, 0},
    [41] = {"Q1_0", 128, 2 + 16, 0},
};

static const type_info *lookup(int ggml_type) {
    if (ggml_type < 0 || (size_t)ggml_type >= sizeof TYPES / sizeof TYPES[0]) return NULL;
    const type_info *t = &TYPES[ggml_type];
    return t->name ? t : NULL;
}

int mt_dtype_supported(int ggml_type) {
    const type_info *t = lookup(ggml_type);
    return t && t->supported;
}

const char *mt_dtype_name(int ggml_type) {
    const type_info *t = lookup(ggml_type);
    return t ? t->name : "unknown";
}

int mt_ggml_type_layout(int ggml_type, int64_t *block_elems, size_t *block_bytes) {
    const type_info *t = lookup(ggml_type);
    if (!t) return 0;
    *block_elems = t->block_elems;
    *block_bytes = t->block_bytes;
    return 1;
}

int64_t mt_dtype_block_elems(mt_dtype t) {
    const type_info *ti = lookup((int)t);
    return ti ? ti->block_elems : 0;
}

size_t mt_dtype_block_bytes(mt_dtype t) {
    const type_info *ti = lookup((int)t);
    return ti ? ti->block_bytes : 0;
}

size_t mt_dtype_row_bytes(mt_dtype t, int64_t n) {
    const type_info *ti = lookup((int)t);
    if (!ti || n < 0) return 0;
    return (size_t)(n / ti->block_elems) * ti->block_bytes;
}

int64_t mt_tensor_nelements(const mt_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims && i < 4; i++) n *= t->ne[i];
    return n;
}

size_t mt_tensor_nbytes(const mt_tensor *t) {
    if (t->n_dims == 0) return mt_dtype_row_bytes(t->type, 1);
    int64_t rows = 1;
    for (int i = 1; i < t->n_dims && i < 4; i++) rows *= t->ne[i];
    return (size_t)rows * mt_dtype_row_bytes(t->type, t->ne[0]);
}
