#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "model/bind.h"
#include "model/load.h"

static int gguf_lookup(void *src, const char *name, mt_tensor *out) {
    const mt_gguf_tensor *t = mt_gguf_find_tensor(src, name);
    if (!t) return 0;
    if (!mt_dtype_supported(t->ggml_type)) {
        mt_fail(MT_ERR_UNSUPPORTED, "tensor '%s' has type %s, which meteor does not support", name,
                mt_dtype_name(t->ggml_type));
        return -1;
    }
    *out = t->view;
    return 1;
}

static int64_t arch_int(const mt_gguf *g, const char *arch, const char *key, int64_t def) {
    char k[128];
    int64_t v;
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return mt_gguf_get_int(g, k, &v) ? v : def;
}

static double arch_float(const mt_gguf *g, const char *arch, const char *key, double def) {
    char k[128];
    double v;
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return mt_gguf_get_float(g, k, &v) ? v : def;
}

static mt_status config_from_gguf(const mt_gguf *g, mt_model_config *c) {
    const char *arch = mt_gguf_get_str(g, "general.architecture");
    if (!arch) return mt_fail(MT_ERR_FORMAT, "GGUF file has no general.architecture");
    mt_status s = mt_arch_parse(arch, &c->arch);
    if (s) return s;
    mt_config_set_arch_defaults(c);
    c->n_embd = (int)arch_int(g, arch, "embedding_length", 0);
    c->n_layer = (int)arch_int(g, arch, "block_count", 0);
    c->n_head = (int)arch_int(g, arch, "attention.head_count", 0);
    c->n_head_kv = (int)arch_int(g, arch, "attention.head_count_kv", c->n_head);
    c->n_ff = (int)arch_int(g, arch, "feed_forward_length", 0);
    c->n_ctx_train = (int)arch_int(g, arch, "context_length", 2048);
    c->head_dim =
        (int)arch_int(g, arch, "attention.key_length", c->n_head ? c->n_embd / c->n_head : 0);
    c->norm_eps = (float)arch_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-5);
    c->rope_base = (float)arch_float(g, arch, "rope.freq_base", 10000.0);
    const char *scaling = NULL;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    scaling = mt_gguf_get_str(g, key);
    if (scaling && !strcmp(scaling, "linear"))
        c->rope_scale = (float)arch_float(g, arch, "rope.scaling.factor", 1.0);
    else if (scaling && strcmp(scaling, "none"))
        return mt_fail(MT_ERR_UNSUPPORTED, "RoPE scaling '%s' is not supported", scaling);
    c->final_softcap = (float)arch_float(g, arch, "final_logit_softcapping", 0.0);
    c->attn_softcap = (float)arch_float(g, arch, "attn_logit_softcapping", 0.0);
    /* llama.cpp's converter permutes llama Q/K rows into adjacent-pair RoPE order. */
    if (c->arch == MT_ARCH_LLAMA) c->rope_style = MT_ROPE_NORM;
    if (c->arch == MT_ARCH_GEMMA3) {
        c->sliding_window = (int)arch_int(g, arch, "attention.sliding_window", 0);
        /* llama.cpp's gemma3 files do not store the layer pattern: one global layer in six. */
        mt_config_set_sliding_period(c,
                                     (int)arch_int(g, arch, "attention.sliding_window_pattern", 6));
        c->embd_scale = sqrtf((float)c->n_embd);
    }
    c->attn_scale = 1.0f / sqrtf((float)c->head_dim);
    const mt_gguf_tensor *emb = mt_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return mt_fail(MT_ERR_FORMAT, "GGUF file has no token_embd.weight tensor");
    c->n_vocab = (int)(emb->n_dims >= 2 ? emb->ne[1] : 0);
    c->tied_embeddings = mt_gguf_find_tensor(g, "output.weight") == NULL;
    return mt_config_validate(c);
}

mt_status mt_model_load_gguf(const char *path, mt_model **out) {
    mt_model *m = mt_calloc(1, sizeof *m);
    if (!m) return MT_ERR_NOMEM;
    mt_status s = mt_gguf_open(path, &m->gguf);
    if (s) goto fail;
    m->format = MT_FORMAT_GGUF;
    if ((s = config_from_gguf(m->gguf, &m->cfg))) goto fail;
    const char *name = mt_gguf_get_str(m->gguf, "general.name");
    m->path = mt_strdup(path);
    m->name = mt_strdup(name ? name : path);
    if (!m->path || !m->name) {
        s = MT_ERR_NOMEM;
        goto fail;
    }
    mt_binder b = {.src = m->gguf, .lookup = gguf_lookup, .naming = MT_NAMES_GGUF};
    if ((s = mt_model_bind(m, &b))) goto fail;
    *out = m;
    return MT_OK;
fail:
    mt_model_free(m);
    return s;
}
