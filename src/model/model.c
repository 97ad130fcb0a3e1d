#include "model/model.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/load.h"

mt_status mt_model_load(const char *path, mt_model **out) {
    struct stat st;
    *out = NULL;
    if (stat(path, &st) != 0)
        return mt_fail(MT_ERR_IO, "cannot open model '%s': no such file or folder", path);
    if (S_ISDIR(st.st_mode)) return mt_model_load_hf(path, out);
    return mt_model_load_gguf(path, out);
}

void mt_model_free(mt_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->packed);
    free(m->layers);
    if (m->gguf) mt_gguf_close(m->gguf);
    if (m->st) mt_safetensors_close(m->st);
    free(m->path);
    free(m->name);
    free(m);
}

static long long tensor_params(const mt_tensor *t) {
    return t->data ? (long long)mt_tensor_nelements(t) : 0;
}

long long mt_model_param_count(const mt_model *m) {
    const mt_model_config *c = &m->cfg;
    long long n = tensor_params(&m->tok_embd) + c->n_embd;
    if (!c->tied_embeddings) n += tensor_params(&m->output);
    long long q_dim = (long long)c->n_head * c->head_dim,
              kv_dim = (long long)c->n_head_kv * c->head_dim;
    for (int l = 0; l < c->n_layer; l++) {
        const mt_layer *L = &m->layers[l];
        for (int r = 0; r < MT_LIN_COUNT; r++) n += tensor_params(&L->lin[r].w);
        n += 2LL * c->n_embd; /* attention and MLP norms */
        if (L->bq) n += q_dim + 2 * kv_dim;
        if (L->q_norm) n += 2LL * c->head_dim;
        if (L->post_attn_norm) n += 2LL * c->n_embd;
    }
    return n;
}
