/* The files beside tokenizer.json: tokenizer_config.json (special tokens, add_bos_token,
 * chat template), chat_template.jinja (newer transformers save the template there) and
 * config.json (architecture, for picking a chat family). All optional. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/file_util.h"
#include "io/json_file.h"
#include "tokenizer/hf_internal.h"

/* Special tokens appear as "<bos>" or {"content": "<bos>", ...}. */
static const char *token_text(const cJSON *cfg, const char *key) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(n)) n = cJSON_GetObjectItemCaseSensitive(n, "content");
    return cJSON_IsString(n) ? n->valuestring : NULL;
}

static void special_from_config(const mt_tokenizer *t, const cJSON *cfg, const char *key,
                                int32_t *id) {
    const char *s = token_text(cfg, key);
    if (!s) return;
    int32_t found = mt_tokenizer_find(t, s);
    if (found >= 0) *id = found;
}

/* A template is a string or a list of {name, template}; the one named "default" wins. */
static const char *template_text(const cJSON *cfg) {
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(ct)) return ct->valuestring;
    const cJSON *e, *list = cJSON_IsArray(ct) ? ct : NULL;
    const char *first = NULL;
    cJSON_ArrayForEach(e, list) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(e, "template");
        if (!cJSON_IsString(tpl)) continue;
        if (!first) first = tpl->valuestring;
        if (cJSON_IsString(name) && !strcmp(name->valuestring, "default")) return tpl->valuestring;
    }
    return first;
}

static mt_status apply_tokenizer_config(mt_tokenizer *t, const cJSON *cfg) {
    special_from_config(t, cfg, "bos_token", &t->bos);
    special_from_config(t, cfg, "eos_token", &t->eos);
    special_from_config(t, cfg, "pad_token", &t->pad);
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (cJSON_IsBool(ab)) t->add_bos = cJSON_IsTrue(ab);
    if (cJSON_IsBool(ae)) t->add_eos = cJSON_IsTrue(ae);
    const char *tpl = template_text(cfg);
    if (tpl && !t->chat_template && !(t->chat_template = mt_strdup(tpl))) return MT_ERR_NOMEM;
    /* Without config.json the tokenizer class still names the family. */
    const char *cls = token_text(cfg, "tokenizer_class");
    if (!t->arch && cls && !strncmp(cls, "Gemma", 5)) return mt_tokenizer_set_arch(t, "gemma");
    return MT_OK;
}

static int exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static mt_status load_arch(mt_tokenizer *t, const char *path) {
    if (!exists(path)) return MT_OK;
    cJSON *cfg;
    mt_status st = mt_json_read_file(path, &cfg);
    if (st != MT_OK) return st;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    if (cJSON_IsString(mt)) st = mt_tokenizer_set_arch(t, mt->valuestring);
    cJSON_Delete(cfg);
    return st;
}

mt_status mt_hf_load_config(mt_tokenizer *t, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    mt_status st = load_arch(t, path);
    if (st != MT_OK) return st;
    size_t len;
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    if (exists(path) && (st = mt_read_file(path, &t->chat_template, &len)) != MT_OK) return st;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (!exists(path)) return MT_OK;
    cJSON *cfg;
    if ((st = mt_json_read_file(path, &cfg)) != MT_OK) return st;
    st = cJSON_IsObject(cfg) ? apply_tokenizer_config(t, cfg)
                             : mt_fail(MT_ERR_FORMAT, "%s: not a JSON object", path);
    cJSON_Delete(cfg);
    return st;
}
