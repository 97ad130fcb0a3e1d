#include <stdlib.h>
#include <string.h>

#include "train/export.h"
#include "train/export_internal.h"

static const char *const gguf_linear[MT_LIN_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

const char *mt_export_gguf_linear(mt_lin_role r) {
    return gguf_linear[r];
}

int mt_export_qk_in_gguf_order(const mt_model *m) {
    return m->cfg.arch == MT_ARCH_LLAMA && m->format == MT_FORMAT_GGUF;
}

int mt_export_qk_needs_permute(const mt_model *m) {
    return m->cfg.arch == MT_ARCH_LLAMA && m->format != MT_FORMAT_GGUF;
}

/* Within a head, llama.cpp's row 2j+i holds Hugging Face's row i*(d/2)+j: the two
 * halves that NEOX-style RoPE rotates together become adjacent pairs. */
int64_t mt_qk_row_gguf_to_hf(int64_t row, int head_dim) {
    const int64_t head = row / head_dim, local = row % head_dim;
    return head * head_dim + (local % 2) * (head_dim / 2) + local / 2;
}

int64_t mt_qk_row_hf_to_gguf(int64_t row, int head_dim) {
    const int64_t head = row / head_dim, local = row % head_dim, half = head_dim / 2;
    return head * head_dim + 2 * (local % half) + local / half;
}

mt_row_order mt_export_qk_order(const mt_model *m, int to_gguf) {
    if (to_gguf) return mt_export_qk_needs_permute(m) ? MT_ROWS_TO_GGUF : MT_ROWS_SAME;
    return mt_export_qk_in_gguf_order(m) ? MT_ROWS_TO_HF : MT_ROWS_SAME;
}

int64_t mt_rows_source_row(mt_row_order order, int64_t row, int head_dim) {
    switch (order) {
    case MT_ROWS_TO_HF:
        return mt_qk_row_hf_to_gguf(row, head_dim);
    case MT_ROWS_TO_GGUF:
        return mt_qk_row_gguf_to_hf(row, head_dim);
    case MT_ROWS_SAME:
        break;
    }
    return row;
}

mt_status mt_rows_fill(void *ctx, void *dst, size_t nbytes) {
    const mt_rows_src *r = ctx;
    const size_t row_bytes = (size_t)r->cols * sizeof(float);
    if (nbytes != (size_t)r->rows * row_bytes)
        return mt_fail(MT_ERR_INTERNAL, "export: %zu bytes asked for a %lld x %lld matrix", nbytes,
                       (long long)r->rows, (long long)r->cols);
    for (int64_t i = 0; i < r->rows; i++)
        memcpy((char *)dst + (size_t)i * row_bytes,
               r->src + mt_rows_source_row(r->order, i, r->head_dim) * r->cols, row_bytes);
    return MT_OK;
}

mt_status mt_lora_import_peft(const char *dir, const mt_model *m, mt_lora **out) {
    mt_lora *l = NULL;
    mt_status s = mt_lora_load_peft(dir, m, &l);
    if (s) return s;
    if (mt_export_qk_in_gguf_order(m)) {
        /* The file is in Hugging Face order; the model computes in GGUF order. */
        const int hd = m->cfg.head_dim, rank = l->cfg.rank;
        for (int layer = 0; layer < l->n_layer; layer++)
            for (int r = MT_LIN_Q; r <= MT_LIN_K; r++) {
                float *b = *mt_lora_b_slot(l, layer, r);
                if (!b) continue;
                const int64_t rows = mt_linear_out(&m->layers[layer].lin[r]);
                float *tmp = malloc((size_t)rows * rank * sizeof *tmp);
                if (!tmp) {
                    mt_lora_free(l);
                    return mt_fail(MT_ERR_NOMEM, "out of memory loading adapter %s", dir);
                }
                mt_rows_src src = {b, rows, rank, hd, MT_ROWS_TO_GGUF};
                mt_rows_fill(&src, tmp, (size_t)rows * rank * sizeof *tmp);
                memcpy(b, tmp, (size_t)rows * rank * sizeof *tmp);
                free(tmp);
            }
    }
    *out = l;
    return MT_OK;
}
