/* Pieces shared by the export writers (not part of the public interface). */
#ifndef MT_TRAIN_EXPORT_INTERNAL_H
#define MT_TRAIN_EXPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/lora.h"
#include "model/model.h"

/* How rows move between the model's order and a file's order. */
typedef enum {
    MT_ROWS_SAME = 0,
    MT_ROWS_TO_HF,  /* model in GGUF order, file in HF order */
    MT_ROWS_TO_GGUF /* model in HF order, file in GGUF order */
} mt_row_order;

/* An f32 matrix [rows x cols] written with its rows reordered; a fill callback for the
 * writers, so no permuted copy is kept. */
typedef struct {
    const float *src;
    int64_t rows, cols;
    int head_dim;
    mt_row_order order;
} mt_rows_src;

/* Row of the source that lands in row `row` of the file. */
int64_t mt_rows_source_row(mt_row_order order, int64_t row, int head_dim);
mt_status mt_rows_fill(void *ctx, void *dst, size_t nbytes);

/* The order a file's Q/K rows need for this model: to_gguf when the file is a GGUF. */
mt_row_order mt_export_qk_order(const mt_model *m, int to_gguf);

/* llama.cpp's base name of a linear layer ("attn_q", ..., "ffn_down"). */
const char *mt_export_gguf_linear(mt_lin_role r);

/* The adapter fits the model and holds exactly the matrices its target list names. */
mt_status mt_export_check_adapter(const mt_lora *l, const mt_model *m);

/* GGUF metadata (architecture keys, tokenizer) for a model loaded from a Hugging Face
 * folder. */
struct mt_gguf_writer;
mt_status mt_export_hf_metadata(struct mt_gguf_writer *w, const mt_model *m);
/* The tokenizer part of it, from the folder's tokenizer.json. */
mt_status mt_export_hf_vocab(struct mt_gguf_writer *w, const mt_model *m);

#endif
