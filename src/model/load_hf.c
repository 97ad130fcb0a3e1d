#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "io/json_file.h"
#include "model/bind.h"
#include "model/load.h"

static int st_lookup(void *src, const char *name, mt_tensor *out) {
    const mt_st_tensor *t = mt_safetensors_find(src, name);
    if (!t) return 0;
    *out = t->view;
    return 1;
}

static double num(const cJSON *obj, const char *key, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static int flag(const cJSON *obj, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* transformers 5 keeps RoPE bases in rope_parameters, per layer type for Gemma 3;
 * older configs have rope_theta / rope_local_base_freq at the top level. */
static void rope_from_json(const cJSON *j, mt_model_config *c) {
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    c->rope_base = (float)num(j, "rope_theta", 10000.0);
    c->rope_base_local = (float)num(j, "rope_local_base_freq", c->rope_base_local);
    if (!cJSON_IsObject(rp)) return;
    const cJSON *full = cJSON_GetObjectItemCaseSensitive(rp, "full_attention");
    const cJSON *slide = cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention");
    if (cJSON_IsObject(full)) {
        c->rope_base = (float)num(full, "rope_theta", c->rope_base);
        if (cJSON_IsObject(slide))
            c->rope_base_local = (float)num(slide, "rope_theta", c->rope_base_local);
    } else {
        c->rope_base = (float)num(rp, "rope_theta", c->rope_base);
    }
}

static mt_status rope_scaling_from_json(const cJSON *j, mt_model_config *c) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    if (!cJSON_IsObject(rs) && cJSON_IsObject(rp)) {
        const cJSON *full = cJSON_GetObjectItemCaseSensitive(rp, "full_attention");
        rs = cJSON_IsObject(full) ? full : rp;
    }
    if (!cJSON_IsObject(rs)) return MT_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(type)) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(type) || !strcmp(type->valuestring, "default")) return MT_OK;
    if (!strcmp(type->valuestring, "linear")) {
        c->rope_scale = (float)num(rs, "factor", 1.0);
        return MT_OK;
    }
    return mt_fail(MT_ERR_UNSUPPORTED, "RoPE scaling '%s' is not supported", type->valuestring);
}

static mt_status layer_types_from_json(const cJSON *j, mt_model_config *c) {
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    if (!cJSON_IsArray(lt)) {
        if (c->arch == MT_ARCH_GEMMA3)
            mt_config_set_sliding_period(c, (int)num(j, "sliding_window_pattern", 6));
        return MT_OK;
    }
    if (cJSON_GetArraySize(lt) != c->n_layer)
        return mt_fail(MT_ERR_FORMAT, "config.json: layer_types has %d entries for %d layers",
                       cJSON_GetArraySize(lt), c->n_layer);
    int l = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lt) {
        if (!cJSON_IsString(e))
            return mt_fail(MT_ERR_FORMAT, "config.json: layer_types must hold strings");
        c->layer_local[l++] = !strcmp(e->valuestring, "sliding_attention");
    }
    return MT_OK;
}

static mt_status config_from_json(const cJSON *j, mt_model_config *c) {
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (!cJSON_IsString(mt)) return mt_fail(MT_ERR_FORMAT, "config.json has no model_type");
    mt_status s = mt_arch_parse(mt->valuestring, &c->arch);
    if (s) return s;
    mt_config_set_arch_defaults(c);
    c->n_vocab = (int)num(j, "vocab_size", 0);
    c->n_embd = (int)num(j, "hidden_size", 0);
    c->n_layer = (int)num(j, "num_hidden_layers", 0);
    c->n_head = (int)num(j, "num_attention_heads", 0);
    c->n_head_kv = (int)num(j, "num_key_value_heads", c->n_head);
    c->n_ff = (int)num(j, "intermediate_size", 0);
    c->n_ctx_train = (int)num(j, "max_position_embeddings", 2048);
    c->head_dim = (int)num(j, "head_dim", c->n_head ? c->n_embd / c->n_head : 0);
    c->norm_eps = (float)num(j, "rms_norm_eps", 1e-6);
    c->tied_embeddings = flag(j, "tie_word_embeddings", c->arch == MT_ARCH_GEMMA3);
    if (c->n_layer > MT_MAX_LAYERS) return mt_config_validate(c);
    rope_from_json(j, c);
    if ((s = rope_scaling_from_json(j, c))) return s;
    if (flag(j, "attention_bias", 0)) c->qkv_bias = 1;
    if (c->arch == MT_ARCH_QWEN2 && flag(j, "use_sliding_window", 0))
        return mt_fail(MT_ERR_UNSUPPORTED, "qwen2 with use_sliding_window is not supported");
    if (c->arch == MT_ARCH_GEMMA3) {
        const cJSON *sw = cJSON_GetObjectItemCaseSensitive(j, "sliding_window");
        c->sliding_window = cJSON_IsNumber(sw) ? sw->valueint : 0;
        c->embd_scale = sqrtf((float)c->n_embd);
        c->final_softcap = (float)num(j, "final_logit_softcapping", 0.0);
        c->attn_softcap = (float)num(j, "attn_logit_softcapping", 0.0);
        c->attn_scale = 1.0f / sqrtf((float)num(j, "query_pre_attn_scalar", c->head_dim));
        if ((s = layer_types_from_json(j, c))) return s;
    } else {
        c->attn_scale = 1.0f / sqrtf((float)c->head_dim);
    }
    return mt_config_validate(c);
}

mt_status mt_model_load_hf(const char *dir, mt_model **out) {
    mt_model *m = mt_calloc(1, sizeof *m);
    if (!m) return MT_ERR_NOMEM;
    char path[4096];
    cJSON *j = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    mt_status s = mt_json_read_file(path, &j);
    if (s) goto fail;
    if ((s = config_from_json(j, &m->cfg))) {
        mt_fail_prefix(s, path);
        goto fail;
    }
    m->format = MT_FORMAT_SAFETENSORS;
    if ((s = mt_safetensors_open(dir, &m->st))) goto fail;
    m->path = mt_strdup(dir);
    const char *base = strrchr(dir, '/');
    m->name = mt_strdup(base && base[1] ? base + 1 : dir);
    if (!m->path || !m->name) {
        s = MT_ERR_NOMEM;
        goto fail;
    }
    mt_binder b = {.src = m->st,
                   .lookup = st_lookup,
                   .naming = MT_NAMES_HF,
                   .shift_norms = m->cfg.norm_plus_one};
    if ((s = mt_model_bind(m, &b))) goto fail;
    cJSON_Delete(j);
    *out = m;
    return MT_OK;
fail:
    cJSON_Delete(j);
    mt_model_free(m);
    return s;
}
