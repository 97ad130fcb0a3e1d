/* Lifetime of a tokenizer and the facts callers ask of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "tokenizer/tok_internal.h"

mt_status mt_tokenizer_alloc(mt_tokenizer **out) {
    mt_tokenizer *t = mt_calloc(1, sizeof *t);
    if (!t) return MT_ERR_NOMEM;
    t->bos = t->eos = t->pad = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_token[b] = -1;
    *out = t;
    return MT_OK;
}

void mt_tokenizer_free(mt_tokenizer *t) {
    if (!t) return;
    mt_vocab_free(&t->v);
    mt_merges_free(&t->merges);
    mt_pretok_free(t);
    mt_trie_free(&t->specials);
    free(t->arch);
    free(t->chat_template);
    free(t);
}

mt_status mt_tokenizer_set_arch(mt_tokenizer *t, const char *arch) {
    free(t->arch);
    t->arch = NULL;
    if (!arch) return MT_OK;
    t->arch = mt_strdup(arch);
    return t->arch ? MT_OK : MT_ERR_NOMEM;
}

static void index_byte_tokens(mt_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char s[8];
        int n = t->byte_level ? mt_byte_to_unicode((uint8_t)b, s)
                              : snprintf(s, sizeof s, "<0x%02X>", b);
        t->byte_token[b] = mt_vocab_lookup(&t->v, s, (size_t)n);
    }
}

static mt_status check_id(const mt_tokenizer *t, int32_t *id, const char *what) {
    if (*id < -1 || *id >= t->v.n)
        return mt_fail(MT_ERR_FORMAT, "tokenizer: %s id %d outside the vocabulary", what, (int)*id);
    return MT_OK;
}

mt_status mt_tokenizer_finish(mt_tokenizer *t) {
    mt_status st = mt_vocab_build_index(&t->v);
    if (st == MT_OK) st = check_id(t, &t->bos, "bos");
    if (st == MT_OK) st = check_id(t, &t->eos, "eos");
    if (st == MT_OK) st = check_id(t, &t->pad, "pad");
    if (st == MT_OK) st = check_id(t, &t->unk, "unk");
    if (st != MT_OK) return st;
    index_byte_tokens(t);
    if (!t->byte_level && t->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (t->byte_token[b] >= 0 && t->v.type[t->byte_token[b]] == MT_TT_NORMAL)
                t->v.type[t->byte_token[b]] = MT_TT_BYTE;
    t->kind = t->byte_level ? MT_TOK_BPE : MT_TOK_SPM;
    return mt_special_index(t);
}

mt_tok_kind mt_tokenizer_kind(const mt_tokenizer *t) {
    return t->kind;
}

const char *mt_tokenizer_pre_name(const mt_tokenizer *t) {
    return t->pre_name;
}

int32_t mt_tokenizer_n_vocab(const mt_tokenizer *t) {
    return t->v.n;
}

int32_t mt_tokenizer_bos(const mt_tokenizer *t) {
    return t->bos;
}

int32_t mt_tokenizer_eos(const mt_tokenizer *t) {
    return t->eos;
}

int32_t mt_tokenizer_pad(const mt_tokenizer *t) {
    return t->pad;
}

int mt_tokenizer_adds_bos(const mt_tokenizer *t) {
    return t->add_bos && t->bos >= 0;
}

int32_t mt_tokenizer_find(const mt_tokenizer *t, const char *piece) {
    return mt_vocab_lookup(&t->v, piece, strlen(piece));
}

const char *mt_tokenizer_piece(const mt_tokenizer *t, int32_t id) {
    return mt_vocab_piece(&t->v, id);
}

int mt_tokenizer_is_control(const mt_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->v.n) return 0;
    uint8_t type = t->v.type[id];
    return type == MT_TT_CONTROL || type == MT_TT_UNKNOWN;
}

const char *mt_tokenizer_chat_template(const mt_tokenizer *t) {
    return t->chat_template;
}

const char *mt_tokenizer_arch(const mt_tokenizer *t) {
    return t->arch;
}
