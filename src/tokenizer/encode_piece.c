/* One pre-token to ids: spell it as the model's initial symbols, then merge. */
#include <stdio.h>
#include <stdlib.h>

#include "tokenizer/tok_internal.h"

mt_status mt_idvec_push(mt_idvec *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *grown = realloc(v->ids, cap * sizeof *grown);
        if (!grown) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
        v->ids = grown;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return MT_OK;
}

/* A character the vocabulary lacks: its bytes as <0xNN> tokens when the model has them
 * all, else the unknown token (fused with a preceding one when the model says so). */
static mt_status push_unknown(const mt_tokenizer *t, const char *s, size_t k, mt_idvec *syms) {
    if (t->byte_fallback) {
        int all = 1;
        for (size_t j = 0; j < k; j++) all &= t->byte_token[(uint8_t)s[j]] >= 0;
        if (all) {
            for (size_t j = 0; j < k; j++) {
                mt_status st = mt_idvec_push(syms, t->byte_token[(uint8_t)s[j]]);
                if (st != MT_OK) return st;
            }
            return MT_OK;
        }
    }
    if (t->unk < 0) return MT_OK; /* no unknown token: the character is dropped */
    if (t->fuse_unk && syms->n && syms->ids[syms->n - 1] == t->unk) return MT_OK;
    return mt_idvec_push(syms, t->unk);
}

static mt_status spell_chars(const mt_tokenizer *t, const char *s, size_t len, mt_idvec *syms) {
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = (size_t)mt_utf8_next(s + i, len - i, &cp);
        int32_t id = mt_vocab_lookup(&t->v, s + i, k);
        mt_status st = id >= 0 ? mt_idvec_push(syms, id) : push_unknown(t, s + i, k, syms);
        if (st != MT_OK) return st;
        i += k;
    }
    return MT_OK;
}

static mt_status spell_bytes(const mt_tokenizer *t, const char *s, size_t len, mt_idvec *syms) {
    for (size_t i = 0; i < len; i++) {
        int32_t id = t->byte_token[(uint8_t)s[i]];
        mt_status st = MT_OK;
        if (id >= 0)
            st = mt_idvec_push(syms, id);
        else if (t->unk >= 0 && !(t->fuse_unk && syms->n && syms->ids[syms->n - 1] == t->unk))
            st = mt_idvec_push(syms, t->unk);
        if (st != MT_OK) return st;
    }
    return MT_OK;
}

/* ignore_merges: a pre-token that is itself a token is taken whole. */
static int32_t whole_piece(const mt_tokenizer *t, const char *s, size_t len) {
    if (!t->byte_level) return mt_vocab_lookup(&t->v, s, len);
    char *spelled = malloc(len * 2 + 1);
    if (!spelled) return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += (size_t)mt_byte_to_unicode((uint8_t)s[i], spelled + n);
    int32_t id = mt_vocab_lookup(&t->v, spelled, n);
    free(spelled);
    return id;
}

mt_status mt_encode_piece(const mt_tokenizer *t, const char *s, size_t len, mt_idvec *out) {
    if (len == 0) return MT_OK;
    if (t->ignore_merges) {
        int32_t id = whole_piece(t, s, len);
        if (id >= 0) return mt_idvec_push(out, id);
    }
    mt_idvec syms = {0};
    mt_status st = t->byte_level ? spell_bytes(t, s, len, &syms) : spell_chars(t, s, len, &syms);
    if (st == MT_OK) st = mt_bpe_merge(t, syms.ids, &syms.n);
    for (size_t i = 0; st == MT_OK && i < syms.n; i++) st = mt_idvec_push(out, syms.ids[i]);
    free(syms.ids);
    return st;
}
