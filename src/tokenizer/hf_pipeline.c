/* tokenizer.json's normalizer, pre_tokenizer, decoder and post_processor, mapped onto
 * the few switches the encoder has. Anything outside that set is refused rather than
 * approximated, so a tokenizer either matches the reference or does not load. */
#include <string.h>

#include "core/log.h"
#include "tokenizer/hf_internal.h"

static const char META[] = "\xe2\x96\x81";

static const char *type_of(const cJSON *n) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(n, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "";
}

static const char *str_field(const cJSON *n, const char *key) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(n, key);
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static const char *pattern_string(const cJSON *n, int *is_regex) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(n, "pattern");
    const char *s = str_field(p, "String");
    *is_regex = s == NULL;
    return s ? s : str_field(p, "Regex");
}

static mt_status normalizer(mt_tokenizer *t, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return MT_OK;
    const char *ty = type_of(n);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            mt_status st = normalizer(t, e);
            if (st != MT_OK) return st;
        }
        return MT_OK;
    }
    if (!strcmp(ty, "Replace")) {
        int re;
        const char *pat = pattern_string(n, &re), *content = str_field(n, "content");
        if (pat && !re && !strcmp(pat, " ") && content && !strcmp(content, META)) {
            t->space_to_meta = 1;
            return MT_OK;
        }
    } else if (!strcmp(ty, "Prepend")) {
        const char *p = str_field(n, "prepend");
        if (p && !strcmp(p, META)) {
            t->prepend = MT_PREPEND_ALWAYS;
            return MT_OK;
        }
    } else if (!strcmp(ty, "NFC")) {
        /* Text is nearly always NFC already; composing it would need ICU. */
        MT_DEBUG("tokenizer.json: NFC normalizer not applied");
        return MT_OK;
    }
    return mt_fail(MT_ERR_UNSUPPORTED, "tokenizer.json: normalizer %s is not supported", ty);
}

static mt_status split_behavior(const char *name, mt_split_behavior *b) {
    static const struct {
        const char *name;
        mt_split_behavior b;
    } map[] = {{"Isolated", MT_SPLIT_ISOLATED},
               {"Removed", MT_SPLIT_REMOVED},
               {"MergedWithPrevious", MT_SPLIT_MERGED_PREV},
               {"MergedWithNext", MT_SPLIT_MERGED_NEXT}};
    for (size_t i = 0; name && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(name, map[i].name)) return *b = map[i].b, MT_OK;
    return mt_fail(MT_ERR_UNSUPPORTED, "tokenizer.json: split behavior %s is not supported",
                   name ? name : "?");
}

static mt_status pre_split(mt_tokenizer *t, const cJSON *n) {
    int re;
    const char *pat = pattern_string(n, &re);
    mt_split_behavior b = MT_SPLIT_ISOLATED;
    if (!pat) return mt_fail(MT_ERR_FORMAT, "tokenizer.json: Split without a pattern");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "invert")))
        return mt_fail(MT_ERR_UNSUPPORTED, "tokenizer.json: inverted Split is not supported");
    mt_status st = split_behavior(str_field(n, "behavior"), &b);
    return st ? st : mt_pretok_add_regex(t, pat, !re, b);
}

static mt_status pre_metaspace(mt_tokenizer *t, const cJSON *n) {
    const char *rep = str_field(n, "replacement");
    if (rep && strcmp(rep, META))
        return mt_fail(MT_ERR_UNSUPPORTED, "tokenizer.json: Metaspace replacement must be U+2581");
    t->space_to_meta = 1;
    const char *scheme = str_field(n, "prepend_scheme");
    const cJSON *legacy = cJSON_GetObjectItemCaseSensitive(n, "add_prefix_space");
    if (scheme)
        t->prepend = !strcmp(scheme, "always")  ? MT_PREPEND_ALWAYS
                     : !strcmp(scheme, "first") ? MT_PREPEND_FIRST
                                                : MT_PREPEND_NEVER;
    else
        t->prepend = cJSON_IsFalse(legacy) ? MT_PREPEND_NEVER : MT_PREPEND_ALWAYS;
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(n, "split"))) return MT_OK;
    return mt_pretok_add_regex(t, META, 1, MT_SPLIT_MERGED_NEXT);
}

static mt_status pre_tokenizer(mt_tokenizer *t, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return MT_OK;
    const char *ty = type_of(n);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "pretokenizers")) {
            mt_status st = pre_tokenizer(t, e);
            if (st != MT_OK) return st;
        }
        return MT_OK;
    }
    if (!strcmp(ty, "ByteLevel")) {
        t->byte_level = 1;
        t->bl_prefix_space = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "add_prefix_space"));
        if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(n, "use_regex"))) return MT_OK;
        return mt_pretok_add_gpt2(t);
    }
    if (!strcmp(ty, "Split")) return pre_split(t, n);
    if (!strcmp(ty, "Digits")) {
        int each = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "individual_digits"));
        return mt_pretok_add_regex(t, each ? "\\p{N}" : "\\p{N}+", 0, MT_SPLIT_ISOLATED);
    }
    if (!strcmp(ty, "Metaspace")) return pre_metaspace(t, n);
    return mt_fail(MT_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer %s is not supported", ty);
}

/* Only whether the first decoded space is dropped matters; the rest follows the model. */
static void decoder(mt_tokenizer *t, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return;
    const char *ty = type_of(n);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "decoders")) decoder(t, e);
    } else if (!strcmp(ty, "Strip")) {
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(n, "start");
        const char *content = str_field(n, "content");
        if (content && !strcmp(content, " ") && cJSON_IsNumber(start) && start->valuedouble >= 1)
            t->strip_leading_space = 1;
    } else if (!strcmp(ty, "Metaspace")) {
        const char *scheme = str_field(n, "prepend_scheme");
        t->strip_leading_space = !scheme || strcmp(scheme, "never") != 0;
    } else if (!strcmp(ty, "ByteLevel")) {
        t->byte_level = 1;
    }
}

static int32_t special_id(const mt_tokenizer *t, const cJSON *item) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
    const char *name = str_field(sp, "id");
    return name ? mt_tokenizer_find(t, name) : -2;
}

/* TemplateProcessing: a special token before/after the sequence means BOS/EOS. */
static void post_processor(mt_tokenizer *t, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return;
    if (!strcmp(type_of(n), "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "processors"))
            post_processor(t, e);
        return;
    }
    if (strcmp(type_of(n), "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(n, "single");
    int count = cJSON_GetArraySize(single);
    if (!cJSON_IsArray(single) || count == 0) return;
    int32_t first = special_id(t, cJSON_GetArrayItem(single, 0));
    int32_t last = count > 1 ? special_id(t, cJSON_GetArrayItem(single, count - 1)) : -2;
    if (first >= 0) t->bos = first, t->add_bos = 1;
    if (last >= 0) t->eos = last, t->add_eos = 1;
}

mt_status mt_hf_load_pipeline(mt_tokenizer *t, const cJSON *root) {
    mt_status st = normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"));
    if (st == MT_OK) st = pre_tokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    if (st != MT_OK) return st;
    decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"));
    post_processor(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    return MT_OK;
}
