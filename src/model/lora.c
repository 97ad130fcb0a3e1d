#include "model/lora.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/range.h"
#include "core/rng.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "kernels/dequant.h"

static const char *const modules[MT_LIN_COUNT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                  "gate_proj", "up_proj", "down_proj"};
static const char *const short_names[MT_LIN_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};

const char *mt_lora_role_module(mt_lin_role r) {
    return modules[r];
}

static int role_of(const char *name, size_t len) {
    for (int r = 0; r < MT_LIN_COUNT; r++)
        if ((strlen(modules[r]) == len && !strncmp(name, modules[r], len)) ||
            (strlen(short_names[r]) == len && !strncmp(name, short_names[r], len)))
            return r;
    return -1;
}

mt_status mt_lora_parse_targets(const char *list, unsigned *mask) {
    *mask = 0;
    if (!strcmp(list, "all") || !strcmp(list, "all-linear")) {
        *mask = (1u << MT_LIN_COUNT) - 1;
        return MT_OK;
    }
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int r = role_of(p, len);
        if (r < 0)
            return mt_fail(MT_ERR_ARG,
                           "unknown LoRA target '%.*s' (use q,k,v,o,gate,up,down or all)", (int)len,
                           p);
        *mask |= 1u << r;
        p += len + (end ? 1 : 0);
    }
    if (!*mask) return mt_fail(MT_ERR_ARG, "the LoRA target list is empty");
    return MT_OK;
}

void mt_lora_target_names(unsigned mask, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (int r = 0; r < MT_LIN_COUNT; r++)
        if (mask & (1u << r))
            used += (size_t)snprintf(buf + used, used < cap ? cap - used : 0, "%s%s",
                                     used ? "," : "", modules[r]);
}

static mt_lora *lora_alloc(const mt_model *m, const mt_lora_config *cfg) {
    mt_lora *l = mt_calloc(1, sizeof *l);
    if (!l) return NULL;
    l->cfg = *cfg;
    l->n_layer = m->cfg.n_layer;
    l->a = mt_calloc((size_t)l->n_layer * MT_LIN_COUNT, sizeof *l->a);
    l->b = mt_calloc((size_t)l->n_layer * MT_LIN_COUNT, sizeof *l->b);
    if (!l->a || !l->b) {
        mt_lora_free(l);
        return NULL;
    }
    return l;
}

void mt_lora_free(mt_lora *l) {
    if (!l) return;
    for (int i = 0; l->a && i < l->n_layer * MT_LIN_COUNT; i++) free(l->a[i]);
    for (int i = 0; l->b && i < l->n_layer * MT_LIN_COUNT; i++) free(l->b[i]);
    free(l->a);
    free(l->b);
    free(l);
}

static mt_status check_config(const mt_lora_config *c) {
    if (c->rank <= 0) return mt_fail(MT_ERR_ARG, "LoRA rank must be positive (got %d)", c->rank);
    if (!(c->alpha > 0.0f)) return mt_fail(MT_ERR_ARG, "LoRA alpha must be positive");
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return mt_fail(MT_ERR_ARG, "LoRA dropout must be in [0, 1)");
    if (!c->targets) return mt_fail(MT_ERR_ARG, "no LoRA target modules");
    return MT_OK;
}

mt_status mt_lora_create(const mt_model *m, const mt_lora_config *cfg, uint64_t seed,
                         mt_lora **out) {
    mt_status s = check_config(cfg);
    if (s) return s;
    mt_lora *l = lora_alloc(m, cfg);
    if (!l) return MT_ERR_NOMEM;
    mt_rng rng;
    mt_rng_seed(&rng, seed);
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            if (!(cfg->targets & (1u << r))) continue;
            const mt_linear *lin = &m->layers[layer].lin[r];
            const int in = mt_linear_in(lin), outd = mt_linear_out(lin);
            float *a = mt_calloc((size_t)cfg->rank * in, sizeof *a);
            float *b = mt_calloc((size_t)outd * cfg->rank, sizeof *b);
            *mt_lora_a_slot(l, layer, r) = a;
            *mt_lora_b_slot(l, layer, r) = b;
            if (!a || !b) {
                mt_lora_free(l);
                return MT_ERR_NOMEM;
            }
            /* PEFT: kaiming_uniform_(a=sqrt(5)) on A gives U(-1/sqrt(in), 1/sqrt(in)); B = 0,
             * so the adapter starts as the identity. */
            const double bound = 1.0 / sqrt((double)in);
            for (long i = 0; i < (long)cfg->rank * in; i++)
                a[i] = (float)((2.0 * mt_rng_uniform(&rng) - 1.0) * bound);
        }
    *out = l;
    return MT_OK;
}

void mt_lora_attach(const mt_lora *l, mt_model *m) {
    for (int layer = 0; layer < m->cfg.n_layer; layer++)
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            mt_linear *lin = &m->layers[layer].lin[r];
            lin->a = *mt_lora_a_slot(l, layer, r);
            lin->b = *mt_lora_b_slot(l, layer, r);
            lin->rank = lin->a ? l->cfg.rank : 0;
            lin->scale = lin->a ? l->cfg.alpha / (float)l->cfg.rank : 0.0f;
            lin->dropout = lin->a ? l->cfg.dropout : 0.0f;
        }
}

void mt_lora_detach(mt_model *m) {
    for (int layer = 0; layer < m->cfg.n_layer; layer++)
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            mt_linear *lin = &m->layers[layer].lin[r];
            lin->a = lin->b = NULL;
            lin->rank = 0;
            lin->scale = 0.0f;
            lin->dropout = 0.0f;
        }
}

static mt_status config_from_peft(const cJSON *j, mt_lora_config *c) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "r");
    const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout");
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "use_rslora");
    if (!cJSON_IsNumber(r) || !cJSON_IsNumber(alpha))
        return mt_fail(MT_ERR_FORMAT, "adapter_config.json needs numeric r and lora_alpha");
    if (drop && !cJSON_IsNull(drop) && !cJSON_IsNumber(drop))
        return mt_fail(MT_ERR_FORMAT, "adapter_config.json: lora_dropout must be a number");
    if (cJSON_IsTrue(rs)) return mt_fail(MT_ERR_UNSUPPORTED, "rsLoRA adapters are not supported");
    c->dropout = 0.0f;
    mt_status s;
    if ((s = mt_range_int(MT_ERR_FORMAT, "adapter_config.json: r", r->valuedouble,
                          MT_RANGE(1, INT_MAX), &c->rank)) ||
        (s = mt_range_float(MT_ERR_FORMAT, "adapter_config.json: lora_alpha", alpha->valuedouble,
                            MT_RANGE_ABOVE(0), &c->alpha)) ||
        (cJSON_IsNumber(drop) &&
         (s = mt_range_float(MT_ERR_FORMAT, "adapter_config.json: lora_dropout", drop->valuedouble,
                             MT_RANGE_OPEN_HI(0, 1), &c->dropout))))
        return s;
    c->targets = 0;
    const cJSON *e;
    if (cJSON_IsString(targets)) return mt_lora_parse_targets(targets->valuestring, &c->targets);
    if (!cJSON_IsArray(targets))
        return mt_fail(MT_ERR_FORMAT, "adapter_config.json has no target_modules list");
    cJSON_ArrayForEach(e, targets) {
        int role = cJSON_IsString(e) ? role_of(e->valuestring, strlen(e->valuestring)) : -1;
        if (role < 0)
            return mt_fail(MT_ERR_UNSUPPORTED,
                           "adapter targets module '%s', which meteor does not have",
                           cJSON_IsString(e) ? e->valuestring : "?");
        c->targets |= 1u << role;
    }
    return check_config(c);
}

/* Copies one adapter matrix (any float type) after checking its shape. */
static mt_status load_matrix(const mt_safetensors *st, const char *name, int64_t rows, int64_t cols,
                             float **out) {
    const mt_st_tensor *t = mt_safetensors_find(st, name);
    if (!t) return mt_fail(MT_ERR_FORMAT, "adapter has no tensor '%s'", name);
    if (t->view.ne[0] != cols || t->view.ne[1] != rows || t->view.n_dims != 2)
        return mt_fail(MT_ERR_FORMAT,
                       "adapter tensor '%s' has shape [%lld x %lld], expected [%lld x %lld]", name,
                       (long long)t->view.ne[1], (long long)t->view.ne[0], (long long)rows,
                       (long long)cols);
    float *p = mt_calloc((size_t)(rows * cols), sizeof *p);
    if (!p) return MT_ERR_NOMEM;
    mt_dequantize(t->view.type, t->view.data, p, rows * cols);
    *out = p;
    return MT_OK;
}

static mt_status load_weights(const mt_safetensors *st, const mt_model *m, mt_lora *l) {
    char name[256];
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            if (!(l->cfg.targets & (1u << r))) continue;
            const mt_linear *lin = &m->layers[layer].lin[r];
            const char *block = r <= MT_LIN_O ? "self_attn" : "mlp";
            mt_status s;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_A.weight",
                     layer, block, modules[r]);
            if ((s = load_matrix(st, name, l->cfg.rank, mt_linear_in(lin),
                                 mt_lora_a_slot(l, layer, r))))
                return s;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_B.weight",
                     layer, block, modules[r]);
            if ((s = load_matrix(st, name, mt_linear_out(lin), l->cfg.rank,
                                 mt_lora_b_slot(l, layer, r))))
                return s;
        }
    return MT_OK;
}

mt_status mt_lora_load_peft(const char *dir, const mt_model *m, mt_lora **out) {
    char path[4096];
    cJSON *j = NULL;
    mt_safetensors *st = NULL;
    mt_lora *l = NULL;
    mt_lora_config cfg;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    mt_status s = mt_json_read_file(path, &j);
    if (!s && (s = config_from_peft(j, &cfg))) mt_fail_prefix(s, path);
    if (!s && !(l = lora_alloc(m, &cfg))) s = MT_ERR_NOMEM;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (!s) s = mt_safetensors_open(path, &st);
    if (!s && (s = load_weights(st, m, l))) mt_fail_prefix(s, path);
    cJSON_Delete(j);
    if (st) mt_safetensors_close(st);
    if (s) {
        mt_lora_free(l);
        return s;
    }
    *out = l;
    return MT_OK;
}
