/* PEFT folder writer: adapter_config.json as current peft writes it (the keys a LoraConfig
 * needs, with their defaults where meteor has no such feature) and
 * adapter_model.safetensors with F32 lora_A [r x in] / lora_B [out x r] tensors. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "io/file_util.h"
#include "io/safetensors_write.h"
#include "train/export.h"
#include "train/export_internal.h"

static mt_status make_dir(const char *dir) {
    struct stat st;
    if (mkdir(dir, 0755) == 0) return MT_OK;
    if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return MT_OK;
    if (errno == EEXIST)
        return mt_fail(MT_ERR_IO, "cannot create folder %s: a file of that name exists", dir);
    return mt_fail(MT_ERR_IO, "cannot create folder %s: %s", dir, strerror(errno));
}

/* A float as the shortest decimal that reads back to the same float (0.05, not
 * 0.05000000074505806), so the config shows what the user typed. */
static cJSON *float_item(float v) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}

static mt_status add(cJSON *obj, const char *key, cJSON *item) {
    if (!item || !cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return mt_fail(MT_ERR_NOMEM, "out of memory building adapter_config.json");
    }
    return MT_OK;
}

static mt_status config_json(const mt_lora *l, const mt_model *m, char **text) {
    cJSON *j = cJSON_CreateObject();
    cJSON *targets = cJSON_CreateArray();
    mt_status s = j && targets ? MT_OK : mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int r = 0; !s && r < MT_LIN_COUNT; r++)
        if (l->cfg.targets & (1u << r)) {
            cJSON *name = cJSON_CreateString(mt_lora_role_module(r));
            if (!name || !cJSON_AddItemToArray(targets, name)) {
                cJSON_Delete(name);
                s = mt_fail(MT_ERR_NOMEM, "out of memory");
            }
        }
    if (!s) s = add(j, "alpha_pattern", cJSON_CreateObject());
    if (!s) s = add(j, "auto_mapping", cJSON_CreateNull());
    if (!s) s = add(j, "base_model_name_or_path", cJSON_CreateString(m->name ? m->name : ""));
    if (!s) s = add(j, "bias", cJSON_CreateString("none"));
    if (!s) s = add(j, "fan_in_fan_out", cJSON_CreateFalse());
    if (!s) s = add(j, "inference_mode", cJSON_CreateTrue());
    if (!s) s = add(j, "init_lora_weights", cJSON_CreateTrue());
    if (!s) s = add(j, "layers_pattern", cJSON_CreateNull());
    if (!s) s = add(j, "layers_to_transform", cJSON_CreateNull());
    if (!s) s = add(j, "lora_alpha", float_item(l->cfg.alpha));
    if (!s) s = add(j, "lora_bias", cJSON_CreateFalse());
    if (!s) s = add(j, "lora_dropout", float_item(l->cfg.dropout));
    if (!s) s = add(j, "modules_to_save", cJSON_CreateNull());
    if (!s) s = add(j, "peft_type", cJSON_CreateString("LORA"));
    if (!s) s = add(j, "r", cJSON_CreateNumber(l->cfg.rank));
    if (!s) s = add(j, "rank_pattern", cJSON_CreateObject());
    if (!s) s = add(j, "revision", cJSON_CreateNull());
    if (!s) {
        s = add(j, "target_modules", targets);
        targets = NULL;
    }
    if (!s) s = add(j, "task_type", cJSON_CreateString("CAUSAL_LM"));
    if (!s) s = add(j, "use_dora", cJSON_CreateFalse());
    if (!s) s = add(j, "use_rslora", cJSON_CreateFalse());
    if (!s && !(*text = cJSON_Print(j))) s = mt_fail(MT_ERR_NOMEM, "out of memory");
    cJSON_Delete(targets);
    cJSON_Delete(j);
    return s;
}

mt_status mt_export_check_adapter(const mt_lora *l, const mt_model *m) {
    if (l->n_layer != m->cfg.n_layer)
        return mt_fail(MT_ERR_ARG, "the adapter has %d layers but the model %d", l->n_layer,
                       m->cfg.n_layer);
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            const int want = (l->cfg.targets >> r) & 1;
            if (want != (*mt_lora_a_slot(l, layer, r) != NULL) ||
                want != (*mt_lora_b_slot(l, layer, r) != NULL))
                return mt_fail(MT_ERR_INTERNAL,
                               "adapter of layer %d %s does not match its target list", layer,
                               mt_lora_role_module(r));
        }
    return MT_OK;
}

static mt_status weights_file(const mt_lora *l, const mt_model *m, const char *path) {
    const int n = l->n_layer * MT_LIN_COUNT;
    mt_rows_src *srcs = mt_calloc((size_t)n, sizeof *srcs);
    mt_st_writer *w = NULL;
    mt_status s = srcs ? mt_st_writer_new(&w) : MT_ERR_NOMEM;
    if (!s) s = mt_st_writer_set_meta(w, "format", "pt");
    char name[256];
    for (int layer = 0; !s && layer < l->n_layer; layer++)
        for (int r = 0; !s && r < MT_LIN_COUNT; r++) {
            const float *a = *mt_lora_a_slot(l, layer, r);
            if (!a) continue;
            const mt_linear *lin = &m->layers[layer].lin[r];
            const char *block = r <= MT_LIN_O ? "self_attn" : "mlp";
            const int64_t shape_a[2] = {l->cfg.rank, mt_linear_in(lin)};
            const int64_t shape_b[2] = {mt_linear_out(lin), l->cfg.rank};
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_A.weight",
                     layer, block, mt_lora_role_module(r));
            if ((s = mt_st_writer_add(w, name, MT_F32, 2, shape_a, a))) break;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_B.weight",
                     layer, block, mt_lora_role_module(r));
            mt_rows_src *src = &srcs[layer * MT_LIN_COUNT + r];
            *src =
                (mt_rows_src){*mt_lora_b_slot(l, layer, r), shape_b[0], shape_b[1], m->cfg.head_dim,
                              r <= MT_LIN_K ? mt_export_qk_order(m, 0) : MT_ROWS_SAME};
            s = mt_st_writer_add_fn(w, name, MT_F32, 2, shape_b, mt_rows_fill, src);
        }
    if (!s) s = mt_st_writer_write(w, path);
    mt_st_writer_free(w);
    free(srcs);
    return s;
}

mt_status mt_lora_save_peft(const mt_lora *l, const mt_model *m, const char *dir) {
    char path[4096];
    char *json = NULL;
    if (strlen(dir) + 32 > sizeof path)
        return mt_fail(MT_ERR_ARG, "adapter folder name too long: %s", dir);
    mt_status s = mt_export_check_adapter(l, m);
    if (!s) s = make_dir(dir);
    /* Weights first: the config is what marks a folder as an adapter, so it appears last
     * and a crash in between leaves no folder that looks complete. */
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (!s) s = weights_file(l, m, path);
    if (!s) s = config_json(l, m, &json);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if (!s) s = mt_write_file_atomic(path, json, strlen(json));
    free(json);
    return s;
}
