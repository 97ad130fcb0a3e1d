/* Adapter and merged-model export on a tiny llama written here twice, as a GGUF (q/k rows
 * in llama.cpp's order) and as a Hugging Face folder: PEFT save/load round trips, the
 * q/k row conversion between the two orders, GGUF-LoRA layout, merged weights, and
 * failures that leave nothing behind. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/rng.h"
#include "io/file_util.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "io/safetensors_write.h"
#include "kernels/dequant.h"
#include "model/lora.h"
#include "train/export.h"

enum { VOCAB = 16, EMBD = 32, HEADS = 4, KV_HEADS = 2, HEAD_DIM = 8, FF = 64, LAYERS = 2 };

static char dir[64];

static void path_in(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

/* rm -r of the test folder (two levels are all the tests make). */
static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            remove_tree(p);
        }
    closedir(d);
    rmdir(path);
}

/* One tiny llama's weights, shared by both files. */
typedef struct {
    const char *hf, *gguf;
    int64_t rows, cols; /* torch shape */
    int qk;             /* 1: q, 2: k (rows permuted in the GGUF) */
    float *data;
} weight;

static weight weights[64];
static int n_weights;

static float *random_floats(mt_rng *r, int64_t n, float base) {
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = base + (float)(mt_rng_uniform(r) - 0.5) * 0.4f;
    return p;
}

static void add_weight(mt_rng *r, const char *hf, const char *gg, int64_t rows, int64_t cols,
                       int qk, float base) {
    weight *w = &weights[n_weights++];
    w->hf = strdup(hf);
    w->gguf = strdup(gg);
    w->rows = rows;
    w->cols = cols;
    w->qk = qk;
    w->data = random_floats(r, rows * cols, base);
}

static void make_weights(void) {
    mt_rng r;
    mt_rng_seed(&r, 7);
    char hf[128], gg[128];
    add_weight(&r, "model.embed_tokens.weight", "token_embd.weight", VOCAB, EMBD, 0, 0);
    add_weight(&r, "model.norm.weight", "output_norm.weight", 1, EMBD, 0, 1);
    add_weight(&r, "lm_head.weight", "output.weight", VOCAB, EMBD, 0, 0);
    static const struct {
        const char *hf, *gg;
        int rows, cols, qk;
        float base;
    } per_layer[] = {
        {"input_layernorm", "attn_norm", 1, EMBD, 0, 1},
        {"self_attn.q_proj", "attn_q", HEADS * HEAD_DIM, EMBD, 1, 0},
        {"self_attn.k_proj", "attn_k", KV_HEADS * HEAD_DIM, EMBD, 2, 0},
        {"self_attn.v_proj", "attn_v", KV_HEADS * HEAD_DIM, EMBD, 0, 0},
        {"self_attn.o_proj", "attn_output", EMBD, HEADS * HEAD_DIM, 0, 0},
        {"post_attention_layernorm", "ffn_norm", 1, EMBD, 0, 1},
        {"mlp.gate_proj", "ffn_gate", FF, EMBD, 0, 0},
        {"mlp.up_proj", "ffn_up", FF, EMBD, 0, 0},
        {"mlp.down_proj", "ffn_down", EMBD, FF, 0, 0},
    };
    for (int l = 0; l < LAYERS; l++)
        for (size_t i = 0; i < sizeof per_layer / sizeof *per_layer; i++) {
            snprintf(hf, sizeof hf, "model.layers.%d.%s.weight", l, per_layer[i].hf);
            snprintf(gg, sizeof gg, "blk.%d.%s.weight", l, per_layer[i].gg);
            add_weight(&r, hf, gg, per_layer[i].rows, per_layer[i].cols, per_layer[i].qk,
                       per_layer[i].base);
        }
}

/* llama.cpp's converter: row g of the GGUF holds row gguf_to_hf(g) of the HF weight. */
static float *gguf_rows(const weight *w) {
    float *p = malloc((size_t)(w->rows * w->cols) * sizeof *p);
    for (int64_t g = 0; g < w->rows; g++) {
        int64_t src = w->qk ? mt_qk_row_gguf_to_hf(g, HEAD_DIM) : g;
        memcpy(p + g * w->cols, w->data + src * w->cols, (size_t)w->cols * sizeof *p);
    }
    return p;
}

static void write_gguf(const char *path) {
    mt_gguf_writer *w;
    assert_int_equal(mt_gguf_writer_new(&w), MT_OK);
    mt_gguf_writer_set_str(w, "general.architecture", "llama");
    mt_gguf_writer_set_str(w, "general.name", "tiny");
    mt_gguf_writer_set_str(w, "test.keep_me", "yes");
    mt_gguf_writer_set_str(w, "quantize.imatrix.file", "stale");
    mt_gguf_writer_set_u32(w, "general.file_type", 2);
    mt_gguf_writer_set_u32(w, "llama.embedding_length", EMBD);
    mt_gguf_writer_set_u32(w, "llama.block_count", LAYERS);
    mt_gguf_writer_set_u32(w, "llama.attention.head_count", HEADS);
    mt_gguf_writer_set_u32(w, "llama.attention.head_count_kv", KV_HEADS);
    mt_gguf_writer_set_u32(w, "llama.attention.key_length", HEAD_DIM);
    mt_gguf_writer_set_u32(w, "llama.feed_forward_length", FF);
    float *perm[64];
    for (int i = 0; i < n_weights; i++) {
        const weight *x = &weights[i];
        perm[i] = gguf_rows(x);
        int64_t ne[2] = {x->cols, x->rows};
        assert_int_equal(
            mt_gguf_writer_add_tensor(w, x->gguf, MT_F32, x->rows == 1 ? 1 : 2, ne, perm[i]),
            MT_OK);
    }
    assert_int_equal(mt_gguf_writer_write(w, path), MT_OK);
    mt_gguf_writer_free(w);
    for (int i = 0; i < n_weights; i++) free(perm[i]);
}

static void write_folder(const char *path) {
    mkdir(path, 0755);
    char p[320];
    snprintf(p, sizeof p, "%s/config.json", path);
    char cfg[512];
    int n = snprintf(cfg, sizeof cfg,
                     "{\"model_type\": \"llama\", \"vocab_size\": %d, \"hidden_size\": %d, "
                     "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
                     "\"num_key_value_heads\": %d, \"head_dim\": %d, \"intermediate_size\": %d, "
                     "\"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": false}",
                     VOCAB, EMBD, LAYERS, HEADS, KV_HEADS, HEAD_DIM, FF);
    assert_int_equal(mt_write_file_atomic(p, cfg, (size_t)n), MT_OK);
    mt_st_writer *w;
    assert_int_equal(mt_st_writer_new(&w), MT_OK);
    for (int i = 0; i < n_weights; i++) {
        const weight *x = &weights[i];
        int64_t shape[2] = {x->rows, x->cols};
        const int one_d = x->rows == 1;
        assert_int_equal(
            mt_st_writer_add(w, x->hf, MT_F32, one_d ? 1 : 2, one_d ? shape + 1 : shape, x->data),
            MT_OK);
    }
    snprintf(p, sizeof p, "%s/model.safetensors", path);
    assert_int_equal(mt_st_writer_write(w, p), MT_OK);
    mt_st_writer_free(w);
}

static int setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/mt_export_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    make_weights();
    char p[256];
    path_in(p, sizeof p, "tiny.gguf");
    write_gguf(p);
    path_in(p, sizeof p, "tiny");
    write_folder(p);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    remove_tree(dir);
    for (int i = 0; i < n_weights; i++) {
        free((void *)weights[i].hf);
        free((void *)weights[i].gguf);
        free(weights[i].data);
    }
    return 0;
}

static mt_model *load(const char *name) {
    char p[256];
    path_in(p, sizeof p, name);
    mt_model *m = NULL;
    assert_int_equal(mt_model_load(p, &m), MT_OK);
    return m;
}

/* A random adapter on every target (B non-zero, unlike a fresh one). */
static mt_lora *random_adapter(const mt_model *m, const char *targets) {
    mt_lora_config cfg = {.rank = 4, .alpha = 8.0f, .dropout = 0.05f};
    assert_int_equal(mt_lora_parse_targets(targets, &cfg.targets), MT_OK);
    mt_lora *l;
    assert_int_equal(mt_lora_create(m, &cfg, 3, &l), MT_OK);
    mt_rng r;
    mt_rng_seed(&r, 11);
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int role = 0; role < MT_LIN_COUNT; role++) {
            float *b = *mt_lora_b_slot(l, layer, role);
            for (int64_t i = 0; b && i < (int64_t)mt_linear_out(&m->layers[layer].lin[role]) * 4;
                 i++)
                b[i] = (float)(mt_rng_uniform(&r) - 0.5);
        }
    return l;
}

static void assert_same_adapter(const mt_lora *x, const mt_lora *y, const mt_model *m) {
    assert_int_equal(x->cfg.rank, y->cfg.rank);
    assert_true(x->cfg.alpha == y->cfg.alpha);
    assert_true(x->cfg.dropout == y->cfg.dropout);
    assert_int_equal(x->cfg.targets, y->cfg.targets);
    for (int layer = 0; layer < x->n_layer; layer++)
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            const mt_linear *lin = &m->layers[layer].lin[r];
            const float *a1 = *mt_lora_a_slot(x, layer, r), *a2 = *mt_lora_a_slot(y, layer, r);
            const float *b1 = *mt_lora_b_slot(x, layer, r), *b2 = *mt_lora_b_slot(y, layer, r);
            assert_true((a1 == NULL) == (a2 == NULL));
            if (!a1) continue;
            assert_memory_equal(a1, a2, (size_t)mt_linear_in(lin) * 4 * sizeof(float));
            assert_memory_equal(b1, b2, (size_t)mt_linear_out(lin) * 4 * sizeof(float));
        }
}

static void test_row_maps(void **state) {
    (void)state;
    /* Head of 4: llama.cpp's rows (0, 1, 2, 3) are HF's (0, 2, 1, 3). */
    const int64_t want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (int64_t g = 0; g < 8; g++) {
        assert_int_equal(mt_qk_row_gguf_to_hf(g, 4), want[g]);
        assert_int_equal(mt_qk_row_hf_to_gguf(want[g], 4), g);
    }
    for (int64_t g = 0; g < 64; g++)
        assert_int_equal(mt_qk_row_hf_to_gguf(mt_qk_row_gguf_to_hf(g, 16), 16), g);
}

static void test_peft_round_trip_folder(void **state) {
    (void)state;
    mt_model *m = load("tiny");
    assert_false(mt_export_qk_in_gguf_order(m));
    mt_lora *l = random_adapter(m, "q,k,v,o,gate,up,down");
    char p[256];
    path_in(p, sizeof p, "peft_folder");
    assert_int_equal(mt_lora_save_peft(l, m, p), MT_OK);
    mt_lora *back = NULL;
    assert_int_equal(mt_lora_load_peft(p, m, &back), MT_OK);
    assert_same_adapter(l, back, m);
    /* Saving over an existing adapter folder replaces it. */
    assert_int_equal(mt_lora_save_peft(back, m, p), MT_OK);
    mt_lora_free(back);
    mt_lora_free(l);
    mt_model_free(m);
}

static void test_peft_from_gguf_is_in_hf_order(void **state) {
    (void)state;
    mt_model *g = load("tiny.gguf"), *f = load("tiny");
    assert_true(mt_export_qk_in_gguf_order(g));
    mt_lora *l = random_adapter(g, "q,k,v");
    char p[256];
    path_in(p, sizeof p, "peft_gguf");
    assert_int_equal(mt_lora_save_peft(l, g, p), MT_OK);
    /* Raw load: the file is in HF order, so q/k B rows moved and nothing else did. */
    mt_lora *raw = NULL;
    assert_int_equal(mt_lora_load_peft(p, f, &raw), MT_OK);
    for (int layer = 0; layer < LAYERS; layer++)
        for (int r = MT_LIN_Q; r <= MT_LIN_V; r++) {
            const float *b = *mt_lora_b_slot(l, layer, r), *hb = *mt_lora_b_slot(raw, layer, r);
            const int64_t rows = mt_linear_out(&g->layers[layer].lin[r]);
            for (int64_t row = 0; row < rows; row++) {
                int64_t src = r == MT_LIN_V ? row : mt_qk_row_hf_to_gguf(row, HEAD_DIM);
                assert_memory_equal(hb + row * 4, b + src * 4, 4 * sizeof(float));
            }
            assert_memory_equal(*mt_lora_a_slot(raw, layer, r), *mt_lora_a_slot(l, layer, r),
                                EMBD * 4 * sizeof(float));
        }
    /* Import onto the GGUF puts them back. */
    mt_lora *back = NULL;
    assert_int_equal(mt_lora_import_peft(p, g, &back), MT_OK);
    assert_same_adapter(l, back, g);
    mt_lora_free(back);
    mt_lora_free(raw);
    mt_lora_free(l);
    mt_model_free(g);
    mt_model_free(f);
}

static void test_gguf_lora_layout(void **state) {
    (void)state;
    mt_model *f = load("tiny");
    mt_lora *l = random_adapter(f, "q,down");
    char p[256];
    path_in(p, sizeof p, "lora.gguf");
    assert_int_equal(mt_lora_save_gguf(l, f, p), MT_OK);
    mt_gguf *g;
    assert_int_equal(mt_gguf_open(p, &g), MT_OK);
    assert_string_equal(mt_gguf_get_str(g, "general.type"), "adapter");
    assert_string_equal(mt_gguf_get_str(g, "adapter.type"), "lora");
    assert_string_equal(mt_gguf_get_str(g, "general.architecture"), "llama");
    double alpha;
    assert_true(mt_gguf_get_float(g, "adapter.lora.alpha", &alpha) && alpha == 8.0);
    assert_int_equal(g->n_tensors, 2 * 2 * LAYERS);
    const mt_gguf_tensor *a = mt_gguf_find_tensor(g, "blk.1.attn_q.weight.lora_a");
    const mt_gguf_tensor *b = mt_gguf_find_tensor(g, "blk.1.attn_q.weight.lora_b");
    const mt_gguf_tensor *d = mt_gguf_find_tensor(g, "blk.0.ffn_down.weight.lora_b");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(d);
    assert_true(a->ne[0] == EMBD && a->ne[1] == 4);
    assert_true(b->ne[0] == 4 && b->ne[1] == HEADS * HEAD_DIM);
    assert_true(d->ne[0] == 4 && d->ne[1] == EMBD);
    /* The folder model is in HF order; the file must be in GGUF order. */
    const float *hb = *mt_lora_b_slot(l, 1, MT_LIN_Q);
    for (int64_t row = 0; row < HEADS * HEAD_DIM; row++)
        assert_memory_equal((const float *)b->view.data + row * 4,
                            hb + mt_qk_row_gguf_to_hf(row, HEAD_DIM) * 4, 4 * sizeof(float));
    mt_gguf_close(g);
    mt_lora_free(l);
    mt_model_free(f);
}

static void test_merged_from_gguf(void **state) {
    (void)state;
    mt_model *m = load("tiny.gguf");
    mt_lora *l = random_adapter(m, "k,up");
    char p[256];
    path_in(p, sizeof p, "merged.gguf");
    assert_int_equal(mt_export_merged_gguf(m, l, MT_F32, p), MT_OK);
    mt_gguf *g;
    assert_int_equal(mt_gguf_open(p, &g), MT_OK);
    int64_t ft;
    assert_true(mt_gguf_get_int(g, "general.file_type", &ft) && ft == 0);
    assert_string_equal(mt_gguf_get_str(g, "test.keep_me"), "yes");
    assert_null(mt_gguf_find(g, "quantize.imatrix.file"));
    assert_int_equal(g->n_tensors, (uint64_t)n_weights);
    /* W' = W + (alpha/r)·B·A, in the file's (GGUF) order like the model. */
    for (int layer = 0; layer < LAYERS; layer++)
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            char name[64];
            static const char *const nm[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                             "ffn_gate", "ffn_up", "ffn_down"};
            snprintf(name, sizeof name, "blk.%d.%s.weight", layer, nm[r]);
            const mt_gguf_tensor *t = mt_gguf_find_tensor(g, name);
            const mt_tensor *w = &m->layers[layer].lin[r].w;
            assert_non_null(t);
            assert_int_equal(t->ggml_type, MT_F32);
            const float *a = *mt_lora_a_slot(l, layer, r), *b = *mt_lora_b_slot(l, layer, r);
            const float *src = w->data, *got = t->view.data;
            for (int64_t o = 0; o < w->ne[1]; o++)
                for (int64_t i = 0; i < w->ne[0]; i++) {
                    double want = src[o * w->ne[0] + i];
                    for (int k = 0; a && k < 4; k++)
                        want += 2.0 * b[o * 4 + k] * a[k * w->ne[0] + i];
                    assert_true(fabs(got[o * w->ne[0] + i] - want) <= 1e-6);
                }
        }
    mt_gguf_close(g);

    /* Q8_0: matrices Q8_0, vectors F32; without an adapter the weights are the base's. */
    assert_int_equal(mt_export_merged_gguf(m, NULL, MT_Q8_0, p), MT_OK);
    assert_int_equal(mt_gguf_open(p, &g), MT_OK);
    assert_true(mt_gguf_get_int(g, "general.file_type", &ft) && ft == 7);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        assert_int_equal(g->tensors[i].ggml_type, g->tensors[i].n_dims == 1 ? MT_F32 : MT_Q8_0);
    const mt_gguf_tensor *t = mt_gguf_find_tensor(g, "blk.0.ffn_up.weight");
    float row[EMBD];
    mt_dequantize_row(&t->view, 5, row);
    const float *base = (const float *)m->layers[0].lin[MT_LIN_UP].w.data + 5 * EMBD;
    for (int i = 0; i < EMBD; i++) assert_true(fabsf(row[i] - base[i]) <= 0.5f / 127 + 1e-6f);
    mt_gguf_close(g);
    mt_lora_free(l);
    mt_model_free(m);
}

static void test_errors_leave_nothing(void **state) {
    (void)state;
    mt_model *m = load("tiny.gguf");
    mt_lora *l = random_adapter(m, "v");
    char p[256], q[256];
    /* A folder where a file is. */
    path_in(p, sizeof p, "a_file");
    assert_int_equal(mt_write_file_atomic(p, "x", 1), MT_OK);
    assert_int_equal(mt_lora_save_peft(l, m, p), MT_ERR_IO);
    assert_non_null(strstr(mt_last_error(), "a file of that name exists"));
    /* A folder under a missing folder. */
    path_in(p, sizeof p, "missing/adapter");
    assert_int_equal(mt_lora_save_peft(l, m, p), MT_ERR_IO);
    assert_non_null(strstr(mt_last_error(), "cannot create folder"));
    /* Files in a folder that does not exist: nothing appears. */
    path_in(q, sizeof q, "missing/lora.gguf");
    assert_int_equal(mt_lora_save_gguf(l, m, q), MT_ERR_IO);
    path_in(q, sizeof q, "missing/merged.gguf");
    assert_int_equal(mt_export_merged_gguf(m, l, MT_F16, q), MT_ERR_IO);
    path_in(q, sizeof q, "missing");
    struct stat st;
    assert_int_not_equal(stat(q, &st), 0);
    /* A type merged models are not written in. */
    path_in(q, sizeof q, "merged_q4.gguf");
    assert_int_equal(mt_export_merged_gguf(m, l, MT_Q4_0, q), MT_ERR_ARG);
    assert_int_not_equal(stat(q, &st), 0);
    /* A folder model without tokenizer.json cannot become a complete GGUF. */
    mt_model *f = load("tiny");
    path_in(q, sizeof q, "from_folder.gguf");
    assert_int_equal(mt_export_merged_gguf(f, NULL, MT_F16, q), MT_ERR_IO);
    assert_non_null(strstr(mt_last_error(), "has no tokenizer.json"));
    assert_int_not_equal(stat(q, &st), 0);
    mt_model_free(f);
    /* An adapter for a model with another layer count. */
    l->n_layer = 1;
    assert_int_equal(mt_lora_save_gguf(l, m, q), MT_ERR_ARG);
    l->n_layer = LAYERS;
    mt_lora_free(l);
    mt_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_maps),
        cmocka_unit_test(test_peft_round_trip_folder),
        cmocka_unit_test(test_peft_from_gguf_is_in_hf_order),
        cmocka_unit_test(test_gguf_lora_layout),
        cmocka_unit_test(test_merged_from_gguf),
        cmocka_unit_test(test_errors_leave_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
