#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static uint32_t hash_pair(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (uint32_t)key;
}

mt_status mt_merges_init(mt_merge_table *m, size_t n_merges) {
    memset(m, 0, sizeof *m);
    if (n_merges > (1u << 30)) return mt_fail(MT_ERR_FORMAT, "tokenizer: too many merges");
    uint32_t cap = 16;
    while (cap < n_merges * 2) cap <<= 1;
    m->key = malloc((size_t)cap * sizeof *m->key);
    m->rank = malloc((size_t)cap * sizeof *m->rank);
    m->result = malloc((size_t)cap * sizeof *m->result);
    if (!m->key || !m->rank || !m->result) {
        mt_merges_free(m);
        return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory for %zu merges", n_merges);
    }
    memset(m->key, 0xff, (size_t)cap * sizeof *m->key);
    m->mask = cap - 1;
    return MT_OK;
}

void mt_merges_free(mt_merge_table *m) {
    free(m->key);
    free(m->rank);
    free(m->result);
    memset(m, 0, sizeof *m);
}

void mt_merges_put(mt_merge_table *m, int32_t left, int32_t right, int32_t rank, int32_t result) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t i = hash_pair(key) & m->mask;
    while (m->key[i] != UINT64_MAX && m->key[i] != key) i = (i + 1) & m->mask;
    if (m->key[i] == UINT64_MAX) m->n++;
    m->key[i] = key;
    m->rank[i] = rank;
    m->result[i] = result;
}

static int table_lookup(const mt_merge_table *m, int32_t left, int32_t right, mt_merge_rank *r) {
    if (!m->key) return 0;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (uint32_t i = hash_pair(key) & m->mask; m->key[i] != UINT64_MAX; i = (i + 1) & m->mask) {
        if (m->key[i] != key) continue;
        r->primary = m->rank[i];
        r->left_chars = r->right_chars = 0;
        r->result = m->result[i];
        return 1;
    }
    return 0;
}

static int32_t count_chars(const char *s, size_t n) {
    int32_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((uint8_t)s[i] & 0xc0) != 0x80;
    return c;
}

/* A SentencePiece vocabulary implies the merge (a, b) whenever a, b and ab are all tokens.
 * Hugging Face orders those merges by the result's score (Gemma: by its position), then
 * longer left piece first; computing that rank on demand avoids materialising half a
 * million merges. */
static int derived_lookup(const mt_tokenizer *t, int32_t left, int32_t right, mt_merge_rank *r) {
    const mt_vocab *v = &t->v;
    size_t la = v->len[left], lb = v->len[right];
    char stack[256];
    char *buf = la + lb <= sizeof stack ? stack : malloc(la + lb);
    if (!buf) return 0;
    memcpy(buf, v->blob + v->off[left], la);
    memcpy(buf + la, v->blob + v->off[right], lb);
    int32_t result = mt_vocab_lookup(v, buf, la + lb);
    if (buf != stack) free(buf);
    if (result < 0) return 0;
    r->primary = t->derive_by_index || !v->score ? (double)result : -(double)v->score[result];
    r->left_chars = -count_chars(v->blob + v->off[left], la);
    r->right_chars = -count_chars(v->blob + v->off[right], lb);
    r->result = result;
    return 1;
}

int mt_merge_lookup(const mt_tokenizer *t, int32_t left, int32_t right, mt_merge_rank *r) {
    if (t->merges_derived) return derived_lookup(t, left, right, r);
    return table_lookup(&t->merges, left, right, r);
}

int mt_merge_rank_less(const mt_merge_rank *a, const mt_merge_rank *b) {
    if (a->primary != b->primary) return a->primary < b->primary;
    if (a->left_chars != b->left_chars) return a->left_chars < b->left_chars;
    if (a->right_chars != b->right_chars) return a->right_chars < b->right_chars;
    return a->result < b->result;
}
