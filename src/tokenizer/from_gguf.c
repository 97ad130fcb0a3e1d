/* A tokenizer from GGUF metadata (llama.cpp's tokenizer.ggml.* keys). Choices that the
 * metadata leaves open follow what transformers builds from the same file, which is the
 * reference the parity tests compare against. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "tokenizer/tok_internal.h"

static const mt_gguf_kv *array_of(const mt_gguf *g, const char *key, mt_gguf_type elem,
                                  uint64_t n_expected) {
    const mt_gguf_kv *kv = mt_gguf_find(g, key);
    if (!kv || kv->type != MT_GGUF_ARRAY || kv->arr_type != elem) return NULL;
    if (n_expected && kv->arr_n != n_expected) return NULL;
    if (elem == MT_GGUF_STRING ? !kv->arr_str : !kv->arr) return NULL;
    return kv;
}

static int32_t opt_id(const mt_gguf *g, const char *key) {
    int64_t v;
    return mt_gguf_get_int(g, key, &v) && v >= 0 && v < INT32_MAX ? (int32_t)v : -1;
}

static int opt_flag(const mt_gguf *g, const char *key, int dflt) {
    int v;
    return mt_gguf_get_bool(g, key, &v) ? v : dflt;
}

/* Whitespace-only tokens with a space are stored as real spaces in Gemma files but looked
 * up as U+2581 runs by the SentencePiece model (transformers respells them the same way). */
static int gemma_space_run(const char *s) {
    int has_space = 0;
    for (; *s; s++) {
        if (*s == ' ')
            has_space = 1;
        else if (!strchr("\t\n\v\f\r", *s))
            return 0;
    }
    return has_space;
}

static mt_status set_gemma_space_run(mt_vocab *v, int32_t id, size_t n_chars) {
    char *run = malloc(n_chars * 3 + 1);
    if (!run) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < n_chars; i++) memcpy(run + 3 * i, "\xe2\x96\x81", 3);
    mt_status st = mt_vocab_set(v, id, run, n_chars * 3, MT_TT_NORMAL);
    free(run);
    return st;
}

/* Byte-level vocabularies spell every byte with the GPT-2 alphabet; a token written in
 * plain text instead is respelled so the merges can reach it. */
static int byte_spelled(const char *s) {
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += (size_t)mt_utf8_next(s + i, len - i, &cp);
        if (mt_unicode_to_byte(cp) < 0) return 0;
    }
    return 1;
}

static mt_status set_respelled(mt_vocab *v, int32_t id, const char *s, uint8_t type) {
    size_t len = strlen(s);
    char *sp = malloc(len * 2 + 1);
    if (!sp) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += (size_t)mt_byte_to_unicode((uint8_t)s[i], sp + n);
    mt_status st = mt_vocab_set(v, id, sp, n, type);
    free(sp);
    return st;
}

static uint8_t token_type_at(const mt_gguf_kv *types, uint64_t i) {
    int32_t ty;
    if (!types) return MT_TT_NORMAL;
    memcpy(&ty, (const char *)types->arr + i * 4, 4);
    return ty >= MT_TT_NORMAL && ty <= MT_TT_BYTE ? (uint8_t)ty : MT_TT_NORMAL;
}

/* An optional per-token array: absent is fine, present but unusable is an error. */
static mt_status per_token(const mt_gguf *g, const char *key, mt_gguf_type a, mt_gguf_type b,
                           uint64_t n, const mt_gguf_kv **out) {
    *out = NULL;
    if (!mt_gguf_find(g, key)) return MT_OK;
    *out = array_of(g, key, a, n);
    if (!*out && b != a) *out = array_of(g, key, b, n);
    if (!*out)
        return mt_fail(MT_ERR_FORMAT, "gguf: %s is not an array of one entry per token", key);
    return MT_OK;
}

static int names_special(const mt_gguf *g, int64_t id) {
    static const char *const keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.padding_token_id",
                                       "tokenizer.ggml.unknown_token_id", NULL};
    for (int i = 0; keys[i]; i++)
        if (opt_id(g, keys[i]) == id) return 1;
    return 0;
}

/* Converters (llama.cpp's, meteor's merged export) pad the token list to the embedding's
 * rows with placeholders of type UNUSED ("[PAD151665]", ...) that no text encodes to.
 * They are not tokens: cut off, their rows are the padded rows decoding masks
 * (infer/vocab.h), as for a Hugging Face folder whose embedding outgrows its tokenizer. */
static uint64_t tokens_before_placeholders(const mt_gguf *g, const mt_gguf_kv *types, uint64_t n) {
    while (n > 1 && types && token_type_at(types, n - 1) == MT_TT_UNUSED &&
           !names_special(g, (int64_t)(n - 1)))
        n--;
    return n;
}

static mt_status load_vocab(mt_tokenizer *t, const mt_gguf *g) {
    const mt_gguf_kv *toks = array_of(g, "tokenizer.ggml.tokens", MT_GGUF_STRING, 0);
    if (!toks || toks->arr_n == 0 || toks->arr_n > INT32_MAX)
        return mt_fail(MT_ERR_FORMAT, "gguf: tokenizer.ggml.tokens missing or not a string array");
    const mt_gguf_kv *types, *scores;
    mt_status st =
        per_token(g, "tokenizer.ggml.token_type", MT_GGUF_I32, MT_GGUF_U32, toks->arr_n, &types);
    if (st == MT_OK)
        st = per_token(g, "tokenizer.ggml.scores", MT_GGUF_F32, MT_GGUF_F32, toks->arr_n, &scores);
    if (st != MT_OK) return st;
    const uint64_t n = tokens_before_placeholders(g, types, toks->arr_n);
    st = mt_vocab_init(&t->v, (int32_t)n, scores != NULL);
    int gemma = t->arch && !strncmp(t->arch, "gemma", 5);
    for (uint64_t i = 0; st == MT_OK && i < n; i++) {
        const char *s = toks->arr_str[i];
        uint8_t ty = token_type_at(types, i);
        if (!s)
            return mt_fail(MT_ERR_FORMAT, "gguf: token %llu has no text", (unsigned long long)i);
        if (scores) memcpy(&t->v.score[i], (const char *)scores->arr + i * 4, 4);
        if (!t->byte_level && gemma && gemma_space_run(s))
            st = set_gemma_space_run(&t->v, (int32_t)i, strlen(s));
        else if (t->byte_level && ty != MT_TT_CONTROL && !byte_spelled(s))
            st = set_respelled(&t->v, (int32_t)i, s, ty);
        else
            st = mt_vocab_set(&t->v, (int32_t)i, s, strlen(s), ty);
    }
    return st == MT_OK ? mt_vocab_build_index(&t->v) : st;
}

static mt_status load_merges(mt_tokenizer *t, const mt_gguf *g) {
    const mt_gguf_kv *m = array_of(g, "tokenizer.ggml.merges", MT_GGUF_STRING, 0);
    if (!m) return mt_fail(MT_ERR_FORMAT, "gguf: BPE tokenizer without tokenizer.ggml.merges");
    if (m->arr_n > INT32_MAX) return mt_fail(MT_ERR_FORMAT, "gguf: too many merges");
    mt_status st = mt_merges_init(&t->merges, (size_t)m->arr_n);
    for (uint64_t i = 0; st == MT_OK && i < m->arr_n; i++) {
        const char *s = m->arr_str[i];
        const char *sp = s && s[0] ? strchr(s + 1, ' ') : NULL;
        if (!sp)
            return mt_fail(MT_ERR_FORMAT, "gguf: merge %llu is not 'a b'", (unsigned long long)i);
        size_t la = (size_t)(sp - s), lb = strlen(sp + 1);
        int32_t a = mt_vocab_lookup(&t->v, s, la), b = mt_vocab_lookup(&t->v, sp + 1, lb);
        char *ab = malloc(la + lb + 1);
        if (!ab) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
        memcpy(ab, s, la);
        memcpy(ab + la, sp + 1, lb);
        int32_t r = mt_vocab_lookup(&t->v, ab, la + lb);
        free(ab);
        if (a < 0 || b < 0 || r < 0)
            return mt_fail(MT_ERR_FORMAT,
                           "gguf: merge %llu references a token not in the vocabulary",
                           (unsigned long long)i);
        mt_merges_put(&t->merges, a, b, (int32_t)i, r);
    }
    return st;
}

static mt_status configure_model(mt_tokenizer *t, const mt_gguf *g, const char *model) {
    if (!strcmp(model, "gpt2")) {
        t->byte_level = 1;
        const char *pre = mt_gguf_get_str(g, "tokenizer.ggml.pre");
        snprintf(t->pre_name, sizeof t->pre_name, "%s", pre ? pre : "default");
        return mt_pretok_add_preset(t, t->pre_name);
    }
    if (!strcmp(model, "llama")) {
        int prefix = opt_flag(g, "tokenizer.ggml.add_space_prefix", 1);
        snprintf(t->pre_name, sizeof t->pre_name, "%s", "sentencepiece");
        t->byte_fallback = t->fuse_unk = t->space_to_meta = 1;
        t->merges_derived = 1;
        t->derive_by_index = t->arch && !strncmp(t->arch, "gemma", 5);
        t->prepend = prefix ? MT_PREPEND_FIRST : MT_PREPEND_NEVER;
        t->strip_leading_space = prefix;
        return MT_OK;
    }
    return mt_fail(MT_ERR_UNSUPPORTED, "gguf: tokenizer model '%s' is not supported", model);
}

static mt_status load_specials(mt_tokenizer *t, const mt_gguf *g, int spm) {
    t->bos = opt_id(g, "tokenizer.ggml.bos_token_id");
    t->eos = opt_id(g, "tokenizer.ggml.eos_token_id");
    t->pad = opt_id(g, "tokenizer.ggml.padding_token_id");
    t->unk = spm ? opt_id(g, "tokenizer.ggml.unknown_token_id") : -1;
    /* llama.cpp adds BOS to a SentencePiece vocabulary that does not say otherwise. */
    t->add_bos = opt_flag(g, "tokenizer.ggml.add_bos_token", spm);
    t->add_eos = opt_flag(g, "tokenizer.ggml.add_eos_token", 0);
    const char *tpl = mt_gguf_get_str(g, "tokenizer.chat_template");
    if (tpl && !(t->chat_template = mt_strdup(tpl))) return MT_ERR_NOMEM;
    return MT_OK;
}

mt_status mt_tokenizer_from_gguf(const mt_gguf *g, mt_tokenizer **out) {
    *out = NULL;
    const char *model = mt_gguf_get_str(g, "tokenizer.ggml.model");
    if (!model) return mt_fail(MT_ERR_FORMAT, "gguf: no tokenizer.ggml.model");
    mt_tokenizer *t;
    mt_status st = mt_tokenizer_alloc(&t);
    if (st != MT_OK) return st;
    st = mt_tokenizer_set_arch(t, mt_gguf_get_str(g, "general.architecture"));
    if (st == MT_OK) st = configure_model(t, g, model);
    if (st == MT_OK) st = load_vocab(t, g);
    if (st == MT_OK && t->byte_level) st = load_merges(t, g);
    if (st == MT_OK) st = load_specials(t, g, !t->byte_level);
    if (st == MT_OK) st = mt_tokenizer_finish(t);
    if (st != MT_OK) {
        mt_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MT_OK;
}
