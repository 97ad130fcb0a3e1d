/* Special and added tokens written in the text ("<|im_start|>", Gemma's "\n\n") are cut
 * out before the model sees it: leftmost, longest match first, like Hugging Face's added
 * vocabulary and llama.cpp's special-token pass. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static int32_t trie_new_node(mt_trie *tr, uint8_t byte) {
    if (tr->n == tr->cap) {
        int32_t cap = tr->cap ? tr->cap * 2 : 256;
        mt_trie_node *grown = realloc(tr->node, (size_t)cap * sizeof *grown);
        if (!grown) return -1;
        tr->node = grown;
        tr->cap = cap;
    }
    mt_trie_node *nd = &tr->node[tr->n];
    nd->first_child = nd->next_sibling = nd->token = -1;
    nd->byte = byte;
    return tr->n++;
}

static int32_t trie_child(const mt_trie *tr, int32_t at, uint8_t byte) {
    for (int32_t c = tr->node[at].first_child; c >= 0; c = tr->node[c].next_sibling)
        if (tr->node[c].byte == byte) return c;
    return -1;
}

mt_status mt_trie_add(mt_trie *tr, const char *s, size_t len, int32_t token) {
    if (tr->n == 0 && trie_new_node(tr, 0) < 0) goto nomem;
    int32_t at = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t c = trie_child(tr, at, (uint8_t)s[i]);
        if (c < 0) {
            c = trie_new_node(tr, (uint8_t)s[i]);
            if (c < 0) goto nomem;
            tr->node[c].next_sibling = tr->node[at].first_child;
            tr->node[at].first_child = c;
        }
        at = c;
    }
    tr->node[at].token = token;
    return MT_OK;
nomem:
    return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory for special tokens");
}

void mt_trie_free(mt_trie *tr) {
    free(tr->node);
    memset(tr, 0, sizeof *tr);
}

static int is_special_type(uint8_t type) {
    return type == MT_TT_CONTROL || type == MT_TT_UNKNOWN;
}

size_t mt_special_match(const mt_tokenizer *t, const char *text, size_t len, int parse_special,
                        int32_t *id) {
    const mt_trie *tr = &t->specials;
    if (tr->n == 0) return 0;
    size_t best = 0;
    int32_t at = 0;
    for (size_t i = 0; i < len; i++) {
        at = trie_child(tr, at, (uint8_t)text[i]);
        if (at < 0) break;
        int32_t tok = tr->node[at].token;
        if (tok < 0 || (!parse_special && is_special_type(t->v.type[tok]))) continue;
        best = i + 1;
        *id = tok;
    }
    return best;
}

/* Hugging Face skips control tokens a byte-level vocabulary cannot spell (a mislabel in
 * some GGUF files); matching them would produce ids the reference never does. */
static int spellable_byte_level(const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += (size_t)mt_utf8_next(s + i, len - i, &cp);
        if (mt_unicode_to_byte(cp) < 0) return 0;
    }
    return 1;
}

mt_status mt_special_index(mt_tokenizer *t) {
    const mt_vocab *v = &t->v;
    for (int32_t id = 0; id < v->n; id++) {
        uint8_t type = v->type[id];
        if (!is_special_type(type) && type != MT_TT_USER) continue;
        const char *s = v->blob + v->off[id];
        if (v->len[id] == 0) continue;
        if (t->byte_level && type == MT_TT_CONTROL && !spellable_byte_level(s, v->len[id]))
            continue;
        mt_status st = mt_trie_add(&t->specials, s, v->len[id], id);
        if (st != MT_OK) return st;
    }
    return MT_OK;
}
