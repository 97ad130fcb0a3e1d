#include <limits.h>
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

/* ARCH.key, checked against r (absent: def). */
static mt_status arch_int(const mt_gguf *g, const char *arch, const char *key, int def, mt_range r,
                          int *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return mt_gguf_get_int_in(g, k, def, r, out);
}

static mt_status arch_float(const mt_gguf *g, const char *arch, const char *key, float def,
                            mt_range r, float *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return mt_gguf_get_float_in(g, k, def, r, out);
}

static mt_status dims_from_gguf(const mt_gguf *g, const char *arch, mt_model_config *c) {
    const mt_range dim = MT_RANGE(1, INT_MAX);
    mt_status s;
    if ((s = arch_int(g, arch, "embedding_length", 0, dim, &c->n_embd)) ||
        (s = arch_int(g, arch, "block_count", 0, dim, &c->n_layer)) ||
        (s = arch_int(g, arch, "attention.head_count", 0, dim, &c->n_head)) ||
        (s = arch_int(g, arch, "attention.head_count_kv", c->n_head, dim, &c->n_head_kv)) ||
        (s = arch_int(g, arch, "feed_forward_length", 0, dim, &c->n_ff)) ||
        (s = arch_int(g, arch, "context_length", 2048, dim, &c->n_ctx_train)))
        return s;
    return arch_int(g, arch, "attention.key_length", c->n_head ? c->n_embd / c->n_head : 0, dim,
                    &c->head_dim);
}

static mt_status rope_from_gguf(const mt_gguf *g, const char *arch, mt_model_config *c) {
    mt_status s = arch_float(g, arch, "rope.freq_base", 10000.0f, MT_RANGE_ABOVE(0), &c->rope_base);
    if (s) return s;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const char *scaling = mt_gguf_get_str(g, key);
    if (scaling && !strcmp(scaling, "linear"))
        return arch_float(g, arch, "rope.scaling.factor", 1.0f, MT_RANGE_ABOVE(0), &c->rope_scale);
    if (scaling && strcmp(scaling, "none"))
        return mt_fail(MT_ERR_UNSUPPORTED, "RoPE scaling '%s' is not supported", scaling);
    return MT_OK;
}

static mt_status gemma3_from_gguf(const mt_gguf *g, const char *arch, mt_model_config *c) {
    /* llama.cpp's gemma3 files do not store the layer pattern: one global layer in six. */
    int period;
    mt_status s;
    if ((s = arch_int(g, arch, "attention.sliding_window", 0, MT_RANGE(0, INT_MAX),
                      &c->sliding_window)) ||
        (s = arch_int(g, arch, "attention.sliding_window_pattern", 6, MT_RANGE(0, INT_MAX),
                      &period)))
        return s;
    mt_config_set_sliding_period(c, period);
    c->embd_scale = sqrtf((float)c->n_embd);
    return MT_OK;
}

static mt_status config_from_gguf(const mt_gguf *g, mt_model_config *c) {
    const char *arch = mt_gguf_get_str(g, "general.architecture");
    if (!arch) return mt_fail(MT_ERR_FORMAT, "GGUF file has no general.architecture");
    mt_status s = mt_arch_parse(arch, &c->arch);
    if (s) return s;
    mt_config_set_arch_defaults(c);
    if ((s = dims_from_gguf(g, arch, c)) ||
        (s = arch_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f, MT_RANGE_ABOVE(0),
                        &c->norm_eps)) ||
        (s = rope_from_gguf(g, arch, c)) ||
        (s = arch_float(g, arch, "final_logit_softcapping", 0.0f, MT_RANGE_FROM(0),
                        &c->final_softcap)) ||
        (s = arch_float(g, arch, "attn_logit_softcapping", 0.0f, MT_RANGE_FROM(0),
                        &c->attn_softcap)))
        return s;
    /* llama.cpp's converter permutes llama Q/K rows into adjacent-pair RoPE order. */
    if (c->arch == MT_ARCH_LLAMA) c->rope_style = MT_ROPE_NORM;
    if (c->arch == MT_ARCH_GEMMA3 && (s = gemma3_from_gguf(g, arch, c))) return s;
    c->attn_scale = 1.0f / sqrtf((float)c->head_dim);
    const mt_gguf_tensor *emb = mt_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return mt_fail(MT_ERR_FORMAT, "GGUF file has no token_embd.weight tensor");
    const int64_t n_vocab = emb->n_dims >= 2 ? emb->ne[1] : 0;
    if (n_vocab > INT_MAX)
        return mt_fail(MT_ERR_FORMAT, "token_embd.weight has %lld rows; at most %d are supported",
                       (long long)n_vocab, INT_MAX);
    c->n_vocab = (int)n_vocab;
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
