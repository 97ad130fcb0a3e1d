/* llama.cpp's LoRA adapter GGUF, as its convert_lora_to_gguf.py writes it: the base
 * model's architecture, general.type "adapter", adapter.type "lora", adapter.lora.alpha,
 * and per adapted linear "<base tensor>.lora_a" (torch [r x in], GGUF ne (in, r)) and
 * ".lora_b" (torch [out x r], GGUF ne (r, out)). llama.cpp scales by alpha / r, with r
 * read from lora_b's ne[0]. */
#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "io/gguf_write.h"
#include "train/export.h"
#include "train/export_internal.h"

mt_status mt_lora_save_gguf(const mt_lora *l, const mt_model *m, const char *path) {
    mt_status s = mt_export_check_adapter(l, m);
    if (s) return s;
    const int n = l->n_layer * MT_LIN_COUNT;
    mt_rows_src *srcs = mt_calloc((size_t)n, sizeof *srcs);
    mt_gguf_writer *w = NULL;
    char name[256];
    s = srcs ? mt_gguf_writer_new(&w) : MT_ERR_NOMEM;
    if (!s) s = mt_gguf_writer_set_str(w, "general.architecture", mt_arch_name(m->cfg.arch));
    if (!s) s = mt_gguf_writer_set_str(w, "general.type", "adapter");
    if (!s && m->name) {
        snprintf(name, sizeof name, "%s LoRA", m->name);
        s = mt_gguf_writer_set_str(w, "general.name", name);
    }
    if (!s) s = mt_gguf_writer_set_u32(w, "general.file_type", 0); /* all F32 */
    if (!s) s = mt_gguf_writer_set_str(w, "adapter.type", "lora");
    if (!s) s = mt_gguf_writer_set_f32(w, "adapter.lora.alpha", l->cfg.alpha);
    for (int layer = 0; !s && layer < l->n_layer; layer++)
        for (int r = 0; !s && r < MT_LIN_COUNT; r++) {
            const float *a = *mt_lora_a_slot(l, layer, r);
            if (!a) continue;
            const mt_linear *lin = &m->layers[layer].lin[r];
            const int64_t ne_a[2] = {mt_linear_in(lin), l->cfg.rank};
            const int64_t ne_b[2] = {l->cfg.rank, mt_linear_out(lin)};
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", layer, mt_export_gguf_linear(r));
            if ((s = mt_gguf_writer_add_tensor(w, name, MT_F32, 2, ne_a, a))) break;
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", layer, mt_export_gguf_linear(r));
            mt_rows_src *src = &srcs[layer * MT_LIN_COUNT + r];
            *src = (mt_rows_src){*mt_lora_b_slot(l, layer, r), ne_b[1], ne_b[0], m->cfg.head_dim,
                                 r <= MT_LIN_K ? mt_export_qk_order(m, 1) : MT_ROWS_SAME};
            s = mt_gguf_writer_add_tensor_fn(w, name, MT_F32, 2, ne_b, mt_rows_fill, src);
        }
    if (!s) s = mt_gguf_writer_write(w, path);
    mt_gguf_writer_free(w);
    free(srcs);
    return s;
}
