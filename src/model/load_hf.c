#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/range.h"
#include "io/json_file.h"
#include "model/bind.h"
#include "model/load.h"

static int st_lookup(void *src, const char *name, mt_tensor *out) {
    const mt_st_tensor *t = mt_safetensors_find(src, name);
    if (!t) return 0;
    *out = t->view;
    return 1;
}

/* The number at obj.key, named prefix + key in errors; *found = 0 when absent or null. */
static mt_status number_at(const cJSON *obj, const char *prefix, const char *key, char *name,
                           size_t name_size, double *v, int *found) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, key);
    snprintf(name, name_size, "%s%s", prefix, key);
    *found = n && !cJSON_IsNull(n);
    if (!*found) return MT_OK;
    if (!cJSON_IsNumber(n)) return mt_fail(MT_ERR_FORMAT, "%s must be a number", name);
    *v = n->valuedouble;
    return MT_OK;
}

/* obj.key as an int within r; def when absent. */
static mt_status int_at(const cJSON *obj, const char *key, int def, mt_range r, int *out) {
    char name[160];
    double v = 0;
    int found;
    mt_status s = number_at(obj, "", key, name, sizeof name, &v, &found);
    *out = def;
    if (s || !found) return s;
    return mt_range_int(MT_ERR_FORMAT, name, v, r, out);
}

/* obj.key as a float within r; def when absent. prefix names obj in errors. */
static mt_status float_at(const cJSON *obj, const char *prefix, const char *key, float def,
                          mt_range r, float *out) {
    char name[160];
    double v = 0;
    int found;
    mt_status s = number_at(obj, prefix, key, name, sizeof name, &v, &found);
    *out = def;
    if (s || !found) return s;
    return mt_range_float(MT_ERR_FORMAT, name, v, r, out);
}

static int flag(const cJSON *obj, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* transformers 5 keeps RoPE bases in rope_parameters, per layer type for Gemma 3;
 * older configs have rope_theta / rope_local_base_freq at the top level. */
static mt_status rope_from_json(const cJSON *j, mt_model_config *c) {
    const mt_range base = MT_RANGE_ABOVE(0);
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    mt_status s;
    if ((s = float_at(j, "", "rope_theta", 10000.0f, base, &c->rope_base)) ||
        (s = float_at(j, "", "rope_local_base_freq", c->rope_base_local, base,
                      &c->rope_base_local)))
        return s;
    if (!cJSON_IsObject(rp)) return MT_OK;
    const cJSON *full = cJSON_GetObjectItemCaseSensitive(rp, "full_attention");
    const cJSON *slide = cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention");
    if (!cJSON_IsObject(full))
        return float_at(rp, "rope_parameters.", "rope_theta", c->rope_base, base, &c->rope_base);
    if ((s = float_at(full, "rope_parameters.full_attention.", "rope_theta", c->rope_base, base,
                      &c->rope_base)))
        return s;
    if (!cJSON_IsObject(slide)) return MT_OK;
    return float_at(slide, "rope_parameters.sliding_attention.", "rope_theta", c->rope_base_local,
                    base, &c->rope_base_local);
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
    if (!strcmp(type->valuestring, "linear"))
        return float_at(rs, "rope scaling ", "factor", 1.0f, MT_RANGE_ABOVE(0), &c->rope_scale);
    return mt_fail(MT_ERR_UNSUPPORTED, "RoPE scaling '%s' is not supported", type->valuestring);
}

static mt_status layer_types_from_json(const cJSON *j, mt_model_config *c) {
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    if (!cJSON_IsArray(lt)) {
        int period;
        mt_status s = int_at(j, "sliding_window_pattern", 6, MT_RANGE(0, INT_MAX), &period);
        if (!s) mt_config_set_sliding_period(c, period);
        return s;
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

static mt_status gemma3_from_json(const cJSON *j, mt_model_config *c) {
    float pre_attn;
    mt_status s;
    if ((s = int_at(j, "sliding_window", 0, MT_RANGE(0, INT_MAX), &c->sliding_window)) ||
        (s = float_at(j, "", "final_logit_softcapping", 0.0f, MT_RANGE_FROM(0),
                      &c->final_softcap)) ||
        (s = float_at(j, "", "attn_logit_softcapping", 0.0f, MT_RANGE_FROM(0), &c->attn_softcap)) ||
        (s = float_at(j, "", "query_pre_attn_scalar", (float)c->head_dim, MT_RANGE_ABOVE(0),
                      &pre_attn)))
        return s;
    c->embd_scale = sqrtf((float)c->n_embd);
    c->attn_scale = 1.0f / sqrtf(pre_attn);
    return layer_types_from_json(j, c);
}

static mt_status config_from_json(const cJSON *j, mt_model_config *c) {
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (!cJSON_IsString(mt)) return mt_fail(MT_ERR_FORMAT, "config.json has no model_type");
    mt_status s = mt_arch_parse(mt->valuestring, &c->arch);
    if (s) return s;
    mt_config_set_arch_defaults(c);
    const mt_range dim = MT_RANGE(1, INT_MAX);
    if ((s = int_at(j, "vocab_size", 0, dim, &c->n_vocab)) ||
        (s = int_at(j, "hidden_size", 0, dim, &c->n_embd)) ||
        (s = int_at(j, "num_hidden_layers", 0, dim, &c->n_layer)) ||
        (s = int_at(j, "num_attention_heads", 0, dim, &c->n_head)) ||
        (s = int_at(j, "num_key_value_heads", c->n_head, dim, &c->n_head_kv)) ||
        (s = int_at(j, "intermediate_size", 0, dim, &c->n_ff)) ||
        (s = int_at(j, "max_position_embeddings", 2048, dim, &c->n_ctx_train)) ||
        (s = int_at(j, "head_dim", c->n_head ? c->n_embd / c->n_head : 0, dim, &c->head_dim)) ||
        (s = float_at(j, "", "rms_norm_eps", 1e-6f, MT_RANGE_ABOVE(0), &c->norm_eps)))
        return s;
    c->tied_embeddings = flag(j, "tie_word_embeddings", c->arch == MT_ARCH_GEMMA3);
    if (c->n_layer > MT_MAX_LAYERS) return mt_config_validate(c);
    if ((s = rope_from_json(j, c)) || (s = rope_scaling_from_json(j, c))) return s;
    if (flag(j, "attention_bias", 0)) c->qkv_bias = 1;
    if (c->arch == MT_ARCH_QWEN2 && flag(j, "use_sliding_window", 0))
        return mt_fail(MT_ERR_UNSUPPORTED, "qwen2 with use_sliding_window is not supported");
    c->attn_scale = 1.0f / sqrtf((float)c->head_dim);
    if (c->arch == MT_ARCH_GEMMA3 && (s = gemma3_from_json(j, c))) return s;
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
