#include "model/pack.h"

#include <stdlib.h>

#include "io/file_util.h"
#include "kernels/qpack.h"

/* Calls f on every weight that may be packed; returns the sum of what f returns. */
static size_t each_weight(mt_model *m, size_t (*f)(mt_tensor *w, uint8_t **at), uint8_t **at) {
    size_t sum = f(&m->output, at);
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int r = 0; r < MT_LIN_COUNT; r++) sum += f(&m->layers[l].lin[r].w, at);
    return sum;
}

static size_t packed_size(mt_tensor *w, uint8_t **at) {
    (void)at;
    return w->data ? mt_qpack_bytes(w) : 0;
}

/* Rows per slice when packing: a multiple of the sixteen rows of a packed group. */
enum { SLICE_ROWS = 4096 };

/* Packs w at *at and moves *at past it, slice by slice, dropping each slice's file pages
 * once it is copied: the footprint then peaks at the packed copy plus one slice, not
 * twice a weight (Gemma's 178 MB embedding is also its LM head). */
static size_t pack_one(mt_tensor *w, uint8_t **at) {
    const size_t b = packed_size(w, at);
    if (!b) return 0;
    const int64_t n = w->ne[0], rows = mt_tensor_nelements(w) / n;
    const size_t rb = mt_dtype_row_bytes(w->type, n);
    uint8_t *dst = *at;
    for (int64_t r0 = 0; r0 < rows; r0 += SLICE_ROWS) {
        mt_tensor slice = *w;
        slice.n_dims = 2;
        slice.ne[1] = rows - r0 < SLICE_ROWS ? rows - r0 : SLICE_ROWS;
        slice.ne[2] = slice.ne[3] = 1;
        slice.data = (const uint8_t *)w->data + (size_t)r0 * rb;
        if (mt_qpack(&slice, dst)) return 0;
        dst += mt_qpack_bytes(&slice); /* whole groups: SLICE_ROWS is a multiple of 16 */
        mt_map_release(slice.data, (size_t)slice.ne[1] * rb);
    }
    w->packed = *at;
    *at += b;
    return b;
}

mt_status mt_model_pack(mt_model *m) {
    /* A loaded model's matrices are views into its files' mappings (model/bind.c), GGUF
     * or safetensors, whose pages pack_one may drop. */
    if (m->packed) return MT_OK;
    const size_t total = each_weight(m, packed_size, NULL);
    if (!total) return MT_OK;
    uint8_t *arena = aligned_alloc(64, total);
    if (!arena)
        return mt_fail(MT_ERR_NOMEM, "out of memory packing the weights (%.1f MiB)",
                       (double)total / (1 << 20));
    m->packed = arena;
    each_weight(m, pack_one, &arena);
    return MT_OK;
}

static size_t forget(mt_tensor *w, uint8_t **at) {
    (void)at;
    w->packed = NULL;
    return 0;
}

void mt_model_unpack(mt_model *m) {
    if (!m->packed) return;
    each_weight(m, forget, NULL);
    free(m->packed);
    m->packed = NULL;
}
