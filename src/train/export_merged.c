/* Merged-model GGUF writer. Every tensor is produced on demand while the file is
 * streamed (dequantise a row, add the adapter's row, requantise), so at most one tensor
 * of output is in memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/pool.h"
#include "io/gguf_write.h"
#include "kernels/dequant.h"
#include "kernels/quantize.h"
#include "train/export.h"
#include "train/export_internal.h"

typedef struct {
    char name[96];
    mt_tensor src; /* 1-D vectors are f32 views of the model's in-memory copies */
    mt_dtype out;
    const float *a, *b; /* adapter, or NULL */
    int rank;
    float scale;
    mt_row_order order;
    int head_dim;
} job;

typedef struct {
    job *jobs;
    int n, cap;
} job_list;

static mt_status fill_vector(const job *j, void *dst, size_t nbytes) {
    const int64_t n = j->src.ne[0];
    if (nbytes != (size_t)n * sizeof(float))
        return mt_fail(MT_ERR_INTERNAL, "export: wrong size for tensor %s", j->name);
    float *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) return mt_fail(MT_ERR_NOMEM, "out of memory writing %s", j->name);
    mt_dequantize(j->src.type, j->src.data, tmp, n);
    mt_rows_src rows = {tmp, n, 1, j->head_dim, j->order};
    mt_rows_fill(&rows, dst, nbytes);
    free(tmp);
    return MT_OK;
}

typedef struct {
    const job *j;
    void *dst;
    size_t row_bytes;
    int64_t rows;
    int n_tasks;
    mt_worker_bufs rows_buf; /* one row per worker */
} merge_job;

/* Task k: output rows [k rows / n_tasks, (k + 1) rows / n_tasks). */
static int merge_rows_task(void *ctx, int k, int worker) {
    merge_job *mj = ctx;
    const job *j = mj->j;
    const int64_t cols = j->src.ne[0];
    float *row = mt_worker_buf(&mj->rows_buf, worker);
    if (!row) return 1;
    const int64_t g0 = mj->rows * k / mj->n_tasks, g1 = mj->rows * (k + 1) / mj->n_tasks;
    for (int64_t g = g0; g < g1; g++) {
        const int64_t r = mt_rows_source_row(j->order, g, j->head_dim);
        mt_dequantize_row(&j->src, r, row);
        for (int i = 0; j->a && i < j->rank; i++) {
            const float c = j->scale * j->b[r * j->rank + i];
            const float *a = j->a + (int64_t)i * cols;
            for (int64_t x = 0; x < cols; x++) row[x] += c * a[x];
        }
        /* Arguments were checked when the job was made, so this cannot fail. */
        mt_quantize(j->out, row, (char *)mj->dst + (size_t)g * mj->row_bytes, cols);
    }
    return 0;
}

static mt_status fill_tensor(void *ctx, void *dst, size_t nbytes) {
    const job *j = ctx;
    if (j->src.n_dims == 1) return fill_vector(j, dst, nbytes);
    const int64_t cols = j->src.ne[0], rows = j->src.ne[1];
    const size_t row_bytes = mt_dtype_row_bytes(j->out, cols);
    if (nbytes != (size_t)rows * row_bytes)
        return mt_fail(MT_ERR_INTERNAL, "export: wrong size for tensor %s", j->name);
    const int64_t most = 4 * (int64_t)mt_pool_threads();
    merge_job mj = {.j = j,
                    .dst = dst,
                    .row_bytes = row_bytes,
                    .rows = rows,
                    .n_tasks = (int)(rows < most ? rows : most),
                    .rows_buf = {.floats = (size_t)cols}};
    const int failed = mt_pool_run(mj.n_tasks, merge_rows_task, &mj);
    mt_worker_bufs_free(&mj.rows_buf);
    return failed ? mt_fail(MT_ERR_NOMEM, "out of memory writing %s", j->name) : MT_OK;
}

static job *push(job_list *L, const char *name) {
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 256;
        job *grown = realloc(L->jobs, (size_t)cap * sizeof *grown);
        if (!grown) return NULL;
        L->jobs = grown;
        L->cap = cap;
    }
    job *j = &L->jobs[L->n++];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    return j;
}

static mt_status add_matrix(job_list *L, const char *name, const mt_tensor *t, mt_dtype out) {
    if (t->n_dims > 2 && t->ne[2] * t->ne[3] != 1)
        return mt_fail(MT_ERR_UNSUPPORTED, "export: tensor %s has more than two dimensions", name);
    job *j = push(L, name);
    if (!j) return mt_fail(MT_ERR_NOMEM, "out of memory");
    j->src = *t;
    j->src.n_dims = t->n_dims >= 2 ? 2 : 1;
    if (j->src.n_dims == 1) {
        j->out = MT_F32;
        return MT_OK;
    }
    /* Rows that are not whole Q8_0 blocks cannot be Q8_0; F16 keeps them close. */
    j->out = t->ne[0] % mt_dtype_block_elems(out) ? MT_F16 : out;
    return MT_OK;
}

static mt_status add_vector(job_list *L, const char *name, const float *v, int64_t n) {
    mt_tensor t = {.type = MT_F32, .n_dims = 1, .ne = {n, 1, 1, 1}, .data = v};
    return add_matrix(L, name, &t, MT_F32);
}

static mt_status add_layer(job_list *L, const mt_model *m, const mt_lora *l, int layer,
                           mt_dtype out) {
    const mt_model_config *c = &m->cfg;
    const mt_layer *Ly = &m->layers[layer];
    const int64_t q_dim = (int64_t)c->n_head * c->head_dim,
                  kv_dim = (int64_t)c->n_head_kv * c->head_dim;
    char n[96];
    mt_status s;
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%d.%s", layer, suffix), n)
    if ((s = add_vector(L, NAME("attn_norm.weight"), Ly->attn_norm, c->n_embd))) return s;
    for (int r = 0; r < MT_LIN_COUNT; r++) {
        const mt_linear *lin = &Ly->lin[r];
        char suffix[48];
        snprintf(suffix, sizeof suffix, "%s.weight", mt_export_gguf_linear(r));
        if ((s = add_matrix(L, NAME(suffix), &lin->w, out))) return s;
        job *j = &L->jobs[L->n - 1];
        j->head_dim = c->head_dim;
        if (r <= MT_LIN_K) j->order = mt_export_qk_order(m, 1);
        if (l && *mt_lora_a_slot(l, layer, r)) {
            j->a = *mt_lora_a_slot(l, layer, r);
            j->b = *mt_lora_b_slot(l, layer, r);
            j->rank = l->cfg.rank;
            j->scale = l->cfg.alpha / (float)l->cfg.rank;
        }
    }
    if (Ly->bq) {
        if ((s = add_vector(L, NAME("attn_q.bias"), Ly->bq, q_dim))) return s;
        L->jobs[L->n - 1].order = mt_export_qk_order(m, 1);
        L->jobs[L->n - 1].head_dim = c->head_dim;
        if ((s = add_vector(L, NAME("attn_k.bias"), Ly->bk, kv_dim))) return s;
        L->jobs[L->n - 1].order = mt_export_qk_order(m, 1);
        L->jobs[L->n - 1].head_dim = c->head_dim;
        if ((s = add_vector(L, NAME("attn_v.bias"), Ly->bv, kv_dim))) return s;
    }
    if (Ly->q_norm) {
        if ((s = add_vector(L, NAME("attn_q_norm.weight"), Ly->q_norm, c->head_dim))) return s;
        if ((s = add_vector(L, NAME("attn_k_norm.weight"), Ly->k_norm, c->head_dim))) return s;
    }
    if (Ly->post_attn_norm &&
        (s = add_vector(L, NAME("post_attention_norm.weight"), Ly->post_attn_norm, c->n_embd)))
        return s;
    if ((s = add_vector(L, NAME("ffn_norm.weight"), Ly->ffn_norm, c->n_embd))) return s;
    if (Ly->post_ffn_norm &&
        (s = add_vector(L, NAME("post_ffw_norm.weight"), Ly->post_ffn_norm, c->n_embd)))
        return s;
#undef NAME
    return MT_OK;
}

static int listed(const job_list *L, const char *name) {
    for (int i = 0; i < L->n; i++)
        if (!strcmp(L->jobs[i].name, name)) return 1;
    return 0;
}

/* Tensors of a GGUF base that meteor does not bind (e.g. rope_freqs) go along unchanged
 * in value, so llama.cpp finds everything the source had. */
static mt_status add_unbound(job_list *L, const mt_gguf *g, mt_dtype out) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const mt_gguf_tensor *t = &g->tensors[i];
        if (listed(L, t->name)) continue;
        if (!mt_dtype_supported(t->ggml_type))
            return mt_fail(MT_ERR_UNSUPPORTED,
                           "export: tensor %s has type %s, which meteor cannot convert", t->name,
                           mt_dtype_name(t->ggml_type));
        if (strlen(t->name) >= sizeof L->jobs[0].name)
            return mt_fail(MT_ERR_UNSUPPORTED, "export: tensor name too long: %s", t->name);
        mt_status s = add_matrix(L, t->name, &t->view, out);
        if (s) return s;
    }
    return MT_OK;
}

static mt_status build_jobs(job_list *L, const mt_model *m, const mt_lora *l, mt_dtype out) {
    const mt_model_config *c = &m->cfg;
    mt_status s = add_matrix(L, "token_embd.weight", &m->tok_embd, out);
    if (!s) s = add_vector(L, "output_norm.weight", m->output_norm, c->n_embd);
    if (!s && !c->tied_embeddings) s = add_matrix(L, "output.weight", &m->output, out);
    for (int layer = 0; !s && layer < c->n_layer; layer++) s = add_layer(L, m, l, layer, out);
    if (!s && m->gguf) s = add_unbound(L, m->gguf, out);
    return s;
}

/* llama.cpp's general.file_type (LLAMA_FTYPE_*) for the matrix type. */
static uint32_t file_type(mt_dtype t) {
    return t == MT_F32 ? 0 : t == MT_F16 ? 1 : 7;
}

static mt_status metadata(mt_gguf_writer *w, const mt_model *m, mt_dtype out) {
    mt_status s;
    if (m->gguf) {
        /* Everything but what described the source's quantisation. */
        static const char *const skip[] = {"general.file_type", "general.quantized_by",
                                           "quantize.*", NULL};
        s = mt_gguf_writer_copy_kv(w, m->gguf, mt_gguf_key_in_list, (void *)skip);
    } else {
        s = mt_export_hf_metadata(w, m);
    }
    if (!s) s = mt_gguf_writer_set_u32(w, "general.file_type", file_type(out));
    if (!s) s = mt_gguf_writer_set_u32(w, "general.quantization_version", 2);
    return s;
}

mt_status mt_export_merged_gguf(const mt_model *m, const mt_lora *l, mt_dtype out_type,
                                const char *path) {
    if (out_type != MT_F32 && out_type != MT_F16 && out_type != MT_Q8_0)
        return mt_fail(MT_ERR_ARG, "merged models are written as F32, F16 or Q8_0, not %s",
                       mt_dtype_name(out_type));
    mt_status s = l ? mt_export_check_adapter(l, m) : MT_OK;
    if (s) return s;
    job_list L = {0};
    mt_gguf_writer *w = NULL;
    s = mt_gguf_writer_new(&w);
    if (!s) s = metadata(w, m, out_type);
    if (!s) s = build_jobs(&L, m, l, out_type);
    for (int i = 0; !s && i < L.n; i++)
        s = mt_gguf_writer_add_tensor_fn(w, L.jobs[i].name, L.jobs[i].out, L.jobs[i].src.n_dims,
                                         L.jobs[i].src.ne, fill_tensor, &L.jobs[i]);
    if (!s) s = mt_gguf_writer_write(w, path);
    mt_gguf_writer_free(w);
    free(L.jobs);
    return s;
}
