/* Test tool: one SFT loss evaluation and backward pass, printing the loss and every
 * gradient as JSON under Hugging Face / PEFT names, for the autograd oracle test.
 *   train_grads MODEL_DIR SPEC.json [--adapter DIR] [--full] [--checkpoint]
 * SPEC: {"input_ids": [[...], ...], "labels": [[...], ...]} with -100 for unscored
 * positions; labels are shifted as transformers does (row i predicts labels[i + 1]). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_file.h"
#include "kernels/matmul.h"
#include "model/lora.h"
#include "model/train_graph.h"

static int fail(void) {
    fprintf(stderr, "train_grads: %s\n", mt_last_error());
    return 1;
}

static float *zeros(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) exit(3);
    return p;
}

static void add_grad(cJSON *out, const char *name, const float *g, size_t n) {
    if (!g) return;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(g[i]));
    cJSON_AddItemToObject(out, name, arr);
}

static const char *block_of(int r) {
    return r <= MT_LIN_O ? "self_attn" : "mlp";
}

/* Full fine-tuning: a sink for every weight. */
static void full_sinks(const mt_model *m, mt_grads *g) {
    const mt_model_config *c = &m->cfg;
    for (int l = 0; l < c->n_layer; l++) {
        mt_layer_grads *lg = &g->layers[l];
        const mt_layer *L = &m->layers[l];
        for (int r = 0; r < MT_LIN_COUNT; r++)
            lg->w[r] = zeros((size_t)mt_linear_in(&L->lin[r]) * mt_linear_out(&L->lin[r]));
        lg->attn_norm = zeros(c->n_embd);
        lg->ffn_norm = zeros(c->n_embd);
        if (L->post_attn_norm) lg->post_attn_norm = zeros(c->n_embd);
        if (L->post_ffn_norm) lg->post_ffn_norm = zeros(c->n_embd);
        if (L->q_norm) lg->q_norm = zeros(c->head_dim), lg->k_norm = zeros(c->head_dim);
        if (L->bq) {
            lg->bq = zeros((size_t)c->n_head * c->head_dim);
            lg->bk = zeros((size_t)c->n_head_kv * c->head_dim);
            lg->bv = zeros((size_t)c->n_head_kv * c->head_dim);
        }
    }
    g->tok_embd = zeros((size_t)c->n_vocab * c->n_embd);
    if (!c->tied_embeddings) g->output = zeros((size_t)c->n_vocab * c->n_embd);
    g->output_norm = zeros(c->n_embd);
}

static void lora_sinks(const mt_model *m, mt_grads *g) {
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            const mt_linear *lin = &m->layers[l].lin[r];
            if (!lin->a) continue;
            g->layers[l].lora_a[r] = zeros((size_t)lin->rank * mt_linear_in(lin));
            g->layers[l].lora_b[r] = zeros((size_t)mt_linear_out(lin) * lin->rank);
        }
}

static void dump_grads(const mt_model *m, const mt_grads *g, cJSON *out) {
    const mt_model_config *c = &m->cfg;
    char n[256];
    for (int l = 0; l < c->n_layer; l++) {
        const mt_layer_grads *lg = &g->layers[l];
        const mt_layer *L = &m->layers[l];
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            const mt_linear *lin = &L->lin[r];
            const char *mod = mt_lora_role_module(r);
            snprintf(n, sizeof n, "model.layers.%d.%s.%s.weight", l, block_of(r), mod);
            add_grad(out, n, lg->w[r], (size_t)mt_linear_in(lin) * mt_linear_out(lin));
            snprintf(n, sizeof n, "base_model.model.model.layers.%d.%s.%s.lora_A.weight", l,
                     block_of(r), mod);
            add_grad(out, n, lg->lora_a[r], (size_t)lin->rank * mt_linear_in(lin));
            snprintf(n, sizeof n, "base_model.model.model.layers.%d.%s.%s.lora_B.weight", l,
                     block_of(r), mod);
            add_grad(out, n, lg->lora_b[r], (size_t)mt_linear_out(lin) * lin->rank);
        }
        const int post = L->post_attn_norm != NULL;
        snprintf(n, sizeof n, "model.layers.%d.input_layernorm.weight", l);
        add_grad(out, n, lg->attn_norm, c->n_embd);
        snprintf(n, sizeof n, "model.layers.%d.%s.weight", l,
                 post ? "pre_feedforward_layernorm" : "post_attention_layernorm");
        add_grad(out, n, lg->ffn_norm, c->n_embd);
        snprintf(n, sizeof n, "model.layers.%d.post_attention_layernorm.weight", l);
        if (post) add_grad(out, n, lg->post_attn_norm, c->n_embd);
        snprintf(n, sizeof n, "model.layers.%d.post_feedforward_layernorm.weight", l);
        add_grad(out, n, lg->post_ffn_norm, c->n_embd);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.q_norm.weight", l);
        add_grad(out, n, lg->q_norm, c->head_dim);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.k_norm.weight", l);
        add_grad(out, n, lg->k_norm, c->head_dim);
        const size_t qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_head_kv * c->head_dim;
        snprintf(n, sizeof n, "model.layers.%d.self_attn.q_proj.bias", l);
        add_grad(out, n, lg->bq, qd);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.k_proj.bias", l);
        add_grad(out, n, lg->bk, kvd);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.v_proj.bias", l);
        add_grad(out, n, lg->bv, kvd);
    }
    add_grad(out, "model.embed_tokens.weight", g->tok_embd, (size_t)c->n_vocab * c->n_embd);
    add_grad(out, "lm_head.weight", g->output, (size_t)c->n_vocab * c->n_embd);
    add_grad(out, "model.norm.weight", g->output_norm, c->n_embd);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr,
                "usage: train_grads MODEL_DIR SPEC.json [--adapter DIR] [--full] [--checkpoint]\n");
        return 2;
    }
    const char *adapter = NULL;
    int full = 0, ckpt = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--adapter") && i + 1 < argc)
            adapter = argv[++i];
        else if (!strcmp(argv[i], "--full"))
            full = 1;
        else if (!strcmp(argv[i], "--checkpoint"))
            ckpt = 1;
    }
    mt_kernels_set_threads(2);
    mt_model *m = NULL;
    mt_lora *lora = NULL;
    cJSON *spec = NULL;
    if (mt_model_load(argv[1], &m) || mt_json_read_file(argv[2], &spec)) return fail();
    if (adapter) {
        if (mt_lora_load_peft(adapter, m, &lora)) return fail();
        mt_lora_attach(lora, m);
    }
    const cJSON *ids = cJSON_GetObjectItem(spec, "input_ids"),
                *labels = cJSON_GetObjectItem(spec, "labels");
    const int n_seqs = cJSON_GetArraySize(ids);
    int *starts = calloc((size_t)n_seqs + 1, sizeof *starts);
    for (int s = 0; s < n_seqs; s++)
        starts[s + 1] = starts[s] + cJSON_GetArraySize(cJSON_GetArrayItem(ids, s));
    const int n = starts[n_seqs];
    int32_t *tokens = calloc((size_t)n, sizeof *tokens),
            *targets = calloc((size_t)n, sizeof *targets);
    for (int s = 0; s < n_seqs; s++) {
        const cJSON *si = cJSON_GetArrayItem(ids, s), *sl = cJSON_GetArrayItem(labels, s);
        const int len = starts[s + 1] - starts[s];
        for (int i = 0; i < len; i++) {
            tokens[starts[s] + i] = cJSON_GetArrayItem(si, i)->valueint;
            const int lab = i + 1 < len ? cJSON_GetArrayItem(sl, i + 1)->valueint : -100;
            targets[starts[s] + i] = lab < 0 ? -1 : lab;
        }
    }
    unsigned char *cp = calloc((size_t)m->cfg.n_layer, 1);
    for (int l = 0; l < m->cfg.n_layer; l++) cp[l] = ckpt && (l % 2 == 0);
    mt_tape *tape = NULL;
    if (mt_train_forward(m, tokens, starts, n_seqs, cp, 0, &tape)) return fail();
    float *lp = zeros((size_t)n), *coef = zeros((size_t)n);
    if (mt_head_logprobs(m, tape, targets, lp)) return fail();
    int n_targets = 0;
    double loss = 0.0;
    for (int i = 0; i < n; i++)
        if (targets[i] >= 0) n_targets++, loss -= lp[i];
    for (int i = 0; i < n; i++) coef[i] = targets[i] >= 0 ? -1.0f / (float)n_targets : 0.0f;
    mt_grads g = {0};
    g.layers = calloc((size_t)m->cfg.n_layer, sizeof *g.layers);
    if (full) full_sinks(m, &g);
    if (lora) lora_sinks(m, &g);
    if (mt_train_backward(m, tape, targets, coef, &g)) return fail();
    cJSON *out = cJSON_CreateObject(), *grads = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "loss", loss / n_targets);
    dump_grads(m, &g, grads);
    cJSON_AddItemToObject(out, "grads", grads);
    char *text = cJSON_PrintUnformatted(out);
    puts(text);
    return 0; /* a test tool: the OS reclaims the rest */
}
