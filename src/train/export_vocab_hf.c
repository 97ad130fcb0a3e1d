/* A Hugging Face byte-level BPE tokenizer.json as GGUF tokenizer metadata ("gpt2" model,
 * as llama.cpp's converter writes it): tokens by id (padded to the model's vocabulary
 * with unused "[PADn]" entries), token types, merges as "left right", the pre-tokenizer
 * name llama.cpp knows for the tokenizer's split rule, and the special tokens, chat
 * template and BOS behaviour that meteor's own tokenizer reads from the folder. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/range.h"
#include "io/gguf_write.h"
#include "io/json_file.h"
#include "tokenizer/tokenizer.h"
#include "train/export_internal.h"

/* GGUF token types. */
enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5 };

/* Split rules of the byte-level tokenizers llama.cpp names, as tokenizer.json spells them. */
#define RE_LLAMA3                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                     \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static const cJSON *get(const cJSON *o, const char *k) {
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static int is_type(const cJSON *o, const char *type) {
    const cJSON *t = get(o, "type");
    return cJSON_IsString(t) && !strcmp(t->valuestring, type);
}

static int byte_level(const cJSON *o, int use_regex) {
    const cJSON *r = get(o, "use_regex");
    return is_type(o, "ByteLevel") && (r ? cJSON_IsTrue(r) : 1) == use_regex;
}

/* llama.cpp's tokenizer.ggml.pre for a pre_tokenizer, or NULL if it is none of those. */
static const char *pre_name(const cJSON *pre) {
    if (byte_level(pre, 1)) return "gpt-2";
    const cJSON *seq = get(pre, "pretokenizers");
    if (!is_type(pre, "Sequence") || cJSON_GetArraySize(seq) != 2) return NULL;
    const cJSON *first = cJSON_GetArrayItem(seq, 0), *second = cJSON_GetArrayItem(seq, 1);
    if (is_type(first, "Digits") && cJSON_IsTrue(get(first, "individual_digits")) &&
        byte_level(second, 1))
        return "smollm";
    const cJSON *re = get(get(first, "pattern"), "Regex");
    if (!is_type(first, "Split") || !cJSON_IsString(re) || !byte_level(second, 0)) return NULL;
    if (!strcmp(re->valuestring, RE_LLAMA3)) return "llama-bpe";
    if (!strcmp(re->valuestring, RE_QWEN2)) return "qwen2";
    return NULL;
}

typedef struct {
    int n;
    const char **text; /* borrowed from the JSON, or pad[] */
    int32_t *type;
    char (*pad)[24];
} vocab;

static mt_status put(vocab *v, const cJSON *id_json, const char *text, int32_t type,
                     const char *path) {
    int id;
    mt_status s =
        mt_range_int(MT_ERR_FORMAT, "token id", id_json->valuedouble, MT_RANGE(0, v->n - 1), &id);
    if (s) return mt_fail_prefix(s, path);
    v->text[id] = text;
    v->type[id] = type;
    return MT_OK;
}

static mt_status read_vocab(const cJSON *root, vocab *v, const char *path) {
    const cJSON *e, *model_vocab = get(get(root, "model"), "vocab");
    if (!cJSON_IsObject(model_vocab)) return mt_fail(MT_ERR_FORMAT, "%s: no model.vocab", path);
    mt_status s = MT_OK;
    cJSON_ArrayForEach(e, model_vocab) {
        if (!cJSON_IsNumber(e)) return mt_fail(MT_ERR_FORMAT, "%s: bad vocab entry", path);
        if ((s = put(v, e, e->string, TT_NORMAL, path))) return s;
    }
    cJSON_ArrayForEach(e, get(root, "added_tokens")) {
        const cJSON *id = get(e, "id"), *content = get(e, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content))
            return mt_fail(MT_ERR_FORMAT, "%s: bad added_tokens entry", path);
        int32_t type = cJSON_IsTrue(get(e, "special")) ? TT_CONTROL : TT_USER;
        if ((s = put(v, id, content->valuestring, type, path))) return s;
    }
    /* Models often have more embedding rows than tokens; llama.cpp needs one per row. */
    for (int i = 0; i < v->n; i++)
        if (!v->text[i]) {
            snprintf(v->pad[i], sizeof v->pad[i], "[PAD%d]", i);
            v->text[i] = v->pad[i];
            v->type[i] = TT_UNUSED;
        }
    return MT_OK;
}

/* Merges are "a b" strings in older files and ["a", "b"] pairs in newer ones. */
static mt_status write_merges(mt_gguf_writer *w, const cJSON *merges, const char *path) {
    const int n = cJSON_GetArraySize(merges);
    char **strs = mt_calloc((size_t)(n ? n : 1), sizeof *strs);
    mt_status s = strs ? MT_OK : MT_ERR_NOMEM;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) {
        if (s) break;
        if (cJSON_IsString(e)) {
            strs[i] = mt_strdup(e->valuestring);
        } else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            const char *a = cJSON_GetArrayItem(e, 0)->valuestring;
            const char *b = cJSON_GetArrayItem(e, 1)->valuestring;
            size_t la = strlen(a), lb = strlen(b);
            if ((strs[i] = malloc(la + lb + 2))) {
                memcpy(strs[i], a, la);
                strs[i][la] = ' ';
                memcpy(strs[i] + la + 1, b, lb + 1);
            }
        } else {
            s = mt_fail(MT_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [a, b]", path, i);
            break;
        }
        if (!strs[i++]) s = mt_fail(MT_ERR_NOMEM, "out of memory");
    }
    if (!s)
        s = mt_gguf_writer_set_str_array(w, "tokenizer.ggml.merges", (const char *const *)strs,
                                         NULL, (uint64_t)n);
    for (int k = 0; strs && k < n; k++) free(strs[k]);
    free(strs);
    return s;
}

static mt_status specials(mt_gguf_writer *w, const mt_model *m) {
    mt_tokenizer *t = NULL;
    mt_status s = mt_tokenizer_from_hf_dir(m->path, &t);
    if (s) return s;
    if (mt_tokenizer_bos(t) >= 0)
        s = mt_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)mt_tokenizer_bos(t));
    if (!s && mt_tokenizer_eos(t) >= 0)
        s = mt_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)mt_tokenizer_eos(t));
    if (!s && mt_tokenizer_pad(t) >= 0)
        s = mt_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id",
                                   (uint32_t)mt_tokenizer_pad(t));
    if (!s)
        s = mt_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", mt_tokenizer_adds_bos(t));
    if (!s && mt_tokenizer_chat_template(t))
        s = mt_gguf_writer_set_str(w, "tokenizer.chat_template", mt_tokenizer_chat_template(t));
    mt_tokenizer_free(t);
    return s;
}

mt_status mt_export_hf_vocab(struct mt_gguf_writer *w, const mt_model *m) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer.json", m->path) >= (int)sizeof path)
        return mt_fail(MT_ERR_ARG, "model path too long");
    if (access(path, F_OK) != 0)
        return mt_fail(MT_ERR_IO, "%s has no tokenizer.json; a merged GGUF needs the tokenizer",
                       m->path);
    cJSON *root = NULL;
    mt_status s = mt_json_read_file(path, &root);
    if (s) return s;
    const cJSON *model = get(root, "model");
    const char *pre = pre_name(get(root, "pre_tokenizer"));
    vocab v = {.n = m->cfg.n_vocab};
    if (!is_type(model, "BPE") || cJSON_IsTrue(get(model, "byte_fallback")))
        s = mt_fail(MT_ERR_UNSUPPORTED,
                    "%s: only byte-level BPE tokenizers can be written to GGUF by meteor (this one "
                    "is SentencePiece-style); convert the folder with llama.cpp's "
                    "convert_hf_to_gguf.py and export from that GGUF",
                    path);
    else if (!pre)
        s = mt_fail(MT_ERR_UNSUPPORTED,
                    "%s: the pre-tokenizer is not one llama.cpp names (GPT-2, SmolLM, Llama 3, "
                    "Qwen2); convert the folder with llama.cpp's convert_hf_to_gguf.py",
                    path);
    if (!s) {
        v.text = mt_calloc((size_t)v.n, sizeof *v.text);
        v.type = mt_calloc((size_t)v.n, sizeof *v.type);
        v.pad = mt_calloc((size_t)v.n, sizeof *v.pad);
        if (!v.text || !v.type || !v.pad) s = MT_ERR_NOMEM;
    }
    if (!s) s = read_vocab(root, &v, path);
    if (!s) s = mt_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (!s) s = mt_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    if (!s)
        s = mt_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", v.text, NULL, (uint64_t)v.n);
    if (!s)
        s = mt_gguf_writer_set_array(w, "tokenizer.ggml.token_type", MT_GGUF_I32, v.type,
                                     (uint64_t)v.n);
    if (!s) s = write_merges(w, get(model, "merges"), path);
    if (!s) s = specials(w, m);
    free(v.text);
    free(v.type);
    free(v.pad);
    cJSON_Delete(root);
    return s;
}
