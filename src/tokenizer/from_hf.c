/* A Hugging Face tokenizer folder: tokenizer.json plus its optional companions. */
#include <stdio.h>
#include <string.h>

#include "io/json_file.h"
#include "tokenizer/hf_internal.h"

static mt_status load_json(mt_tokenizer *t, const char *path) {
    cJSON *root;
    mt_status st = mt_json_read_file(path, &root);
    if (st != MT_OK) return st;
    if (!cJSON_IsObject(root)) st = mt_fail(MT_ERR_FORMAT, "tokenizer.json: not a JSON object");
    if (st == MT_OK) st = mt_hf_load_model(t, root);
    if (st == MT_OK) st = mt_hf_load_pipeline(t, root);
    cJSON_Delete(root);
    return st;
}

mt_status mt_tokenizer_from_hf_dir(const char *dir, mt_tokenizer **out) {
    *out = NULL;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= (int)sizeof path)
        return mt_fail(MT_ERR_ARG, "tokenizer: path too long");
    mt_tokenizer *t;
    mt_status st = mt_tokenizer_alloc(&t);
    if (st != MT_OK) return st;
    st = load_json(t, path);
    if (st == MT_OK) st = mt_hf_load_config(t, dir);
    if (st == MT_OK) st = mt_tokenizer_finish(t);
    if (st != MT_OK) {
        mt_tokenizer_free(t);
        return st;
    }
    snprintf(t->pre_name, sizeof t->pre_name, "%s",
             t->byte_level ? "hf-byte-level" : "hf-sentencepiece");
    *out = t;
    return MT_OK;
}
