/* tokenizer.json "model" (BPE only) and "added_tokens". */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/hf_internal.h"

static int json_int_id(const cJSON *n, int32_t *out) {
    if (!cJSON_IsNumber(n)) return 0;
    double d = n->valuedouble;
    if (d < 0 || d > 16777216.0 * 64 || d != (double)(int32_t)d) return 0;
    *out = (int32_t)d;
    return 1;
}

/* The vocabulary must cover the largest id either list uses. Ids index a table, so one id
 * far past the tokens listed would make that many empty slots (a billion for one bad
 * number); files number their tokens from 0 with few if any gaps, so the largest id must
 * stay below twice the count. */
static mt_status vocab_size(const cJSON *vocab, const cJSON *added, int32_t *n) {
    int32_t max_id = -1, id = 0, listed = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!json_int_id(e, &id))
            return mt_fail(MT_ERR_FORMAT, "tokenizer.json: vocab entry '%s' is not a token id",
                           e->string);
        if (id > max_id) max_id = id;
        listed++;
    }
    cJSON_ArrayForEach(e, added) {
        if (!cJSON_IsObject(e) || !json_int_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "content")))
            return mt_fail(MT_ERR_FORMAT,
                           "tokenizer.json: added_tokens entry needs id and content");
        if (id > max_id) max_id = id;
        listed++;
    }
    if ((int64_t)max_id >= 2 * (int64_t)listed)
        return mt_fail(MT_ERR_FORMAT,
                       "tokenizer.json: token id %d is far beyond the %d tokens listed", max_id,
                       listed);
    *n = max_id + 1;
    return MT_OK;
}

static mt_status load_vocab(mt_tokenizer *t, const cJSON *vocab, const cJSON *added) {
    int32_t n = 0;
    mt_status st = vocab_size(vocab, added, &n);
    if (st == MT_OK) st = mt_vocab_init(&t->v, n, 0);
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (st != MT_OK) break;
        int32_t id = 0;
        json_int_id(e, &id);
        st = mt_vocab_set(&t->v, id, e->string, strlen(e->string), MT_TT_NORMAL);
    }
    cJSON_ArrayForEach(e, added) {
        if (st != MT_OK) break;
        int32_t id = 0;
        json_int_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id);
        const char *content = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        int special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"));
        st =
            mt_vocab_set(&t->v, id, content, strlen(content), special ? MT_TT_CONTROL : MT_TT_USER);
    }
    return st == MT_OK ? mt_vocab_build_index(&t->v) : st;
}

/* A merge is "a b" (older files) or ["a", "b"]. */
static int merge_parts(const cJSON *m, const char **a, size_t *la, const char **b, size_t *lb) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' ')) return 0;
        *a = s, *la = (size_t)(sp - s), *b = sp + 1, *lb = strlen(sp + 1);
        return 1;
    }
    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2) return 0;
    const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
    if (!cJSON_IsString(x) || !cJSON_IsString(y)) return 0;
    *a = x->valuestring, *la = strlen(x->valuestring), *b = y->valuestring,
    *lb = strlen(y->valuestring);
    return 1;
}

static mt_status add_merge(mt_tokenizer *t, const cJSON *m, int32_t rank) {
    const char *a, *b;
    size_t la, lb;
    if (!merge_parts(m, &a, &la, &b, &lb))
        return mt_fail(MT_ERR_FORMAT, "tokenizer.json: merge %d is not a pair of tokens",
                       (int)rank);
    char *ab = malloc(la + lb + 1);
    if (!ab) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(ab, a, la);
    memcpy(ab + la, b, lb);
    int32_t ia = mt_vocab_lookup(&t->v, a, la), ib = mt_vocab_lookup(&t->v, b, lb);
    int32_t iab = mt_vocab_lookup(&t->v, ab, la + lb);
    free(ab);
    if (ia < 0 || ib < 0 || iab < 0)
        return mt_fail(MT_ERR_FORMAT,
                       "tokenizer.json: merge %d references a token not in the vocabulary",
                       (int)rank);
    mt_merges_put(&t->merges, ia, ib, rank, iab);
    return MT_OK;
}

static mt_status load_merges(mt_tokenizer *t, const cJSON *merges) {
    int n = cJSON_GetArraySize(merges);
    mt_status st = mt_merges_init(&t->merges, (size_t)n);
    int32_t rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        if (st != MT_OK) break;
        st = add_merge(t, m, rank++);
    }
    return st;
}

static int opt_bool(const cJSON *model, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, key));
}

/* Affixes on subwords belong to WordPiece-style BPE vocabularies, which no supported model uses. */
static int has_affix(const cJSON *model, const char *key) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(model, key);
    return cJSON_IsString(s) && s->valuestring[0];
}

static mt_status load_flags(mt_tokenizer *t, const cJSON *model) {
    t->byte_fallback = opt_bool(model, "byte_fallback");
    t->fuse_unk = opt_bool(model, "fuse_unk");
    t->ignore_merges = opt_bool(model, "ignore_merges");
    if (has_affix(model, "continuing_subword_prefix") || has_affix(model, "end_of_word_suffix"))
        return mt_fail(MT_ERR_UNSUPPORTED,
                       "tokenizer.json: BPE subword prefixes/suffixes are not supported");
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk))
        t->unk = mt_tokenizer_find(t, unk->valuestring);
    else if (unk && !cJSON_IsNull(unk))
        return mt_fail(MT_ERR_FORMAT, "tokenizer.json: model.unk_token is not a string");
    return MT_OK;
}

mt_status mt_hf_load_model(mt_tokenizer *t, const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return mt_fail(MT_ERR_FORMAT, "tokenizer.json: no \"model\" object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !cJSON_IsString(type))
        return mt_fail(MT_ERR_FORMAT, "tokenizer.json: model.type is not a string");
    if (type && strcmp(type->valuestring, "BPE"))
        return mt_fail(MT_ERR_UNSUPPORTED,
                       "tokenizer.json: model type %s is not supported (BPE only)",
                       cJSON_IsString(type) ? type->valuestring : "?");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab))
        return mt_fail(MT_ERR_FORMAT, "tokenizer.json: model.vocab is not an object");
    if (merges && !cJSON_IsArray(merges))
        return mt_fail(MT_ERR_FORMAT, "tokenizer.json: model.merges is not an array");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return mt_fail(MT_ERR_FORMAT, "tokenizer.json: added_tokens is not an array");
    mt_status st = load_vocab(t, vocab, cJSON_IsArray(added) ? added : NULL);
    if (st == MT_OK) st = load_merges(t, merges);
    if (st == MT_OK) st = load_flags(t, model);
    return st;
}
