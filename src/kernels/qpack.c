/* Packing quantised rows into the layout of qpack_internal.h, and the entry points of
 * qpack.h. Packing runs once per weight when a model is opened, so it is plain C. */
#include "kernels/qpack.h"

#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "kernels/matmul.h"
#include "kernels/qdot.h"
#include "kernels/qdot_internal.h"
#include "kernels/qpack_internal.h"

int mt_qpack_supported(mt_dtype t) {
    return mt_qdot_get_impl() == MT_QDOT_AVX512 && mt_qpack_avx512_fn(t) != NULL;
}

size_t mt_qpack_bytes(const mt_tensor *w) {
    if (!mt_qpack_supported(w->type)) return 0;
    const int64_t n = w->ne[0], rows = mt_tensor_nelements(w) / n;
    return (size_t)((rows + MT_QPACK_ROWS - 1) / MT_QPACK_ROWS) * mt_qpack_group_bytes(w->type, n);
}

/* Dword j of a vector: four code bytes of row r. */
static void put_dword(uint8_t *vec, int r, const uint8_t *codes) {
    memcpy(vec + 4 * r, codes, 4);
}

/* A 32-value block of row r (src: its GGUF block) into record rec. */
static void pack_block(mt_dtype t, const uint8_t *src, int r, uint8_t *rec) {
    switch (t) {
    case MT_Q8_0: {
        uint8_t c[32];
        for (int i = 0; i < 32; i++) c[i] = src[2 + i] ^ 0x80;
        for (int k = 0; k < 8; k++) put_dword(rec + MT_QPACK_VEC * k, r, c + 4 * k);
        memcpy(rec + 512 + 2 * r, src, 2);
        return;
    }
    case MT_Q5_0: {
        const uint32_t qh = mt_rd32(src + 2);
        for (int k = 0; k < 8; k++) {
            uint64_t mask;
            memcpy(&mask, rec + 256 + 8 * k, 8);
            mask |= (uint64_t)((qh >> (4 * k)) & 0xf) << (4 * r);
            memcpy(rec + 256 + 8 * k, &mask, 8);
        }
        for (int j = 0; j < 4; j++) put_dword(rec + MT_QPACK_VEC * j, r, src + 6 + 4 * j);
        memcpy(rec + 320 + 2 * r, src, 2);
        return;
    }
    default: /* Q4_0: d, qs; Q4_1: d, m, qs */
        for (int j = 0; j < 4; j++)
            put_dword(rec + MT_QPACK_VEC * j, r, src + (t == MT_Q4_1 ? 4 : 2) + 4 * j);
        memcpy(rec + 256 + 2 * r, src, 2);
        if (t == MT_Q4_1) memcpy(rec + 288 + 2 * r, src + 2, 2);
        return;
    }
}

/* A Q4_K super-block of row r into record rec: each sub-block's 32 codes (low nibbles of
 * qs[32p..] for sub-block 2p, high for 2p + 1) rearranged into Q4_0's byte order. */
static void pack_super_block(const uint8_t *src, int r, uint8_t *rec) {
    const uint8_t *qs = src + 16;
    uint8_t sc[8], mn[8];
    mt_k_scales(src + 4, sc, mn);
    for (int s = 0; s < 8; s++) {
        uint8_t c[32], b[16];
        for (int i = 0; i < 32; i++) c[i] = (qs[32 * (s / 2) + i] >> (4 * (s % 2))) & 0xf;
        for (int i = 0; i < 16; i++) b[i] = (uint8_t)(c[i] | c[16 + i] << 4);
        for (int j = 0; j < 4; j++) put_dword(rec + 256 * s + MT_QPACK_VEC * j, r, b + 4 * j);
        rec[MT_QPACK_K_SC + 16 * s + r] = sc[s];
        rec[MT_QPACK_K_MN + 16 * s + r] = mn[s];
    }
    memcpy(rec + MT_QPACK_K_D + 2 * r, src, 2);
    memcpy(rec + MT_QPACK_K_DMIN + 2 * r, src + 2, 2);
}

/* Column c of a float row: value c of row r at rec + 2 r. */
static void pack_half(const uint8_t *src, int r, uint8_t *rec) {
    memcpy(rec + 2 * r, src, 2);
}

/* Rows [16 g, 16 g + nr) of w into group g's bytes at dst. */
static void pack_group(const mt_tensor *w, int64_t g, int nr, uint8_t *dst) {
    const int64_t n = w->ne[0], nblk = n / mt_dtype_block_elems(w->type);
    const size_t rb = mt_dtype_row_bytes(w->type, n), rec = mt_qpack_record_bytes(w->type);
    const size_t bb = rb / (size_t)nblk; /* GGUF bytes per block */
    memset(dst, 0, mt_qpack_group_bytes(w->type, n));
    for (int r = 0; r < nr; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)(g * MT_QPACK_ROWS + r) * rb;
        for (int64_t b = 0; b < nblk; b++) {
            if (w->type == MT_Q4_K)
                pack_super_block(row + b * bb, r, dst + b * rec);
            else if (w->type == MT_F16 || w->type == MT_BF16)
                pack_half(row + b * bb, r, dst + b * rec);
            else
                pack_block(w->type, row + b * bb, r, dst + b * rec);
        }
    }
}

typedef struct {
    const mt_tensor *w;
    void *dst;
    int64_t rows;
    size_t group_bytes;
} pack_job;

static void pack_range(void *ctx, int64_t g0, int64_t g1) {
    const pack_job *j = ctx;
    for (int64_t g = g0; g < g1; g++) {
        const int64_t left = j->rows - g * MT_QPACK_ROWS;
        pack_group(j->w, g, left < MT_QPACK_ROWS ? (int)left : MT_QPACK_ROWS,
                   (uint8_t *)j->dst + (size_t)g * j->group_bytes);
    }
}

mt_status mt_qpack(const mt_tensor *w, void *dst) {
    if (!mt_qpack_supported(w->type))
        return mt_fail(MT_ERR_UNSUPPORTED, "no packed layout for %s rows",
                       mt_dtype_name((int)w->type));
    const int64_t n = w->ne[0], rows = mt_tensor_nelements(w) / n;
    const int64_t groups = (rows + MT_QPACK_ROWS - 1) / MT_QPACK_ROWS;
    const size_t gb = mt_qpack_group_bytes(w->type, n);
    pack_job j = {.w = w, .dst = dst, .rows = rows, .group_bytes = gb};
    mt_pool_for(groups, 1, pack_range, &j);
    return MT_OK;
}

mt_status mt_qpacked_matmul(const mt_tensor *w, int n_tok, const void *xq, float *y, int64_t row0,
                            int64_t row1) {
    if (!w->packed || !mt_qpack_supported(w->type))
        return mt_fail(MT_ERR_UNSUPPORTED, "no packed copy of these %s rows",
                       mt_dtype_name((int)w->type));
    if (n_tok <= 0 || row1 <= row0) return MT_OK;
    const int64_t n = w->ne[0], rows = mt_tensor_nelements(w) / n;
    /* Q4_K: each token's activation sum per 32 values, scaled, computed once per call */
    float *sk = NULL;
    if (w->type == MT_Q4_K && !(sk = malloc((size_t)(n / 32) * (size_t)n_tok * sizeof *sk)))
        return mt_fail(MT_ERR_NOMEM, "out of memory in a packed matmul");
    /* float rows take the tokens' f32 activations */
    const size_t xs =
        mt_act_bytes(w->type, n) ? mt_act_bytes(w->type, n) : (size_t)n * sizeof(float);
    mt_qpack_avx512_fn(w->type)(n, w->packed, row0, row1, n_tok, xq, xs, sk, y, rows);
    free(sk);
    return MT_OK;
}
