#include "infer/token_index.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "infer/json_string.h"

typedef struct {
    const mt_token_index *ix;
} sort_ctx;

static int cmp_tokens(const void *a, const void *b, void *arg) {
    const mt_token_index *ix = ((const sort_ctx *)arg)->ix;
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    const uint32_t lx = ix->off[x + 1] - ix->off[x], ly = ix->off[y + 1] - ix->off[y];
    const int c = memcmp(ix->bytes + ix->off[x], ix->bytes + ix->off[y], lx < ly ? lx : ly);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Builds the trie of the given ids (any order). */
static mt_status build_trie(const mt_token_index *ix, const int32_t *ids_in, int n_ids,
                            mt_token_trie *t) {
    size_t total = 0;
    for (int i = 0; i < n_ids; i++) total += ix->off[ids_in[i] + 1] - ix->off[ids_in[i]];
    t->ids = mt_calloc((size_t)n_ids + 1, sizeof *t->ids);
    t->node = mt_calloc(total + 1, sizeof *t->node);
    uint32_t *path = mt_calloc((size_t)ix->max_len + 2, sizeof *path);
    if (!t->ids || !t->node || !path) {
        free(path);
        return MT_ERR_NOMEM;
    }
    memcpy(t->ids, ids_in, (size_t)n_ids * sizeof *t->ids);
    sort_ctx ctx = {ix};
    qsort_r(t->ids, (size_t)n_ids, sizeof *t->ids, cmp_tokens, &ctx);
    /* Sorted strings appended with their longest common prefix shared come out in
     * preorder; a node's subtree ends when it is popped off the path. */
    uint32_t n_node = 1;
    int depth = 0;
    path[0] = 0;
    const uint8_t *prev = NULL;
    uint32_t prev_len = 0;
    for (int i = 0; i < n_ids; i++) {
        const int32_t id = t->ids[i];
        const uint8_t *s = ix->bytes + ix->off[id];
        const uint32_t len = ix->off[id + 1] - ix->off[id];
        uint32_t lcp = 0;
        while (prev && lcp < len && lcp < prev_len && s[lcp] == prev[lcp]) lcp++;
        while ((uint32_t)depth > lcp) t->node[path[depth--]].end = n_node;
        for (uint32_t k = lcp; k < len; k++) {
            mt_trie_node *nd = &t->node[n_node];
            nd->byte = s[k];
            nd->depth = (uint16_t)(k + 1);
            nd->tok0 = (uint32_t)i;
            path[++depth] = n_node++;
        }
        mt_trie_node *leaf = &t->node[path[depth]];
        if (!leaf->n_tok) leaf->tok0 = (uint32_t)i;
        leaf->n_tok++;
        prev = s;
        prev_len = len;
    }
    while (depth > 0) t->node[path[depth--]].end = n_node;
    t->node[0].end = n_node;
    t->node[0].n_tok = 0;
    t->n_node = n_node;
    free(path);
    return MT_OK;
}

/* Code points of a token read as string content from between two characters, or -1. */
static int content_cp(const uint8_t *s, uint32_t len) {
    int st = MT_JS_CHAR, cp = 0, starts;
    for (uint32_t k = 0; k < len; k++) {
        if (st == MT_JS_CHAR && s[k] == '"') return -1;
        st = mt_js_step(st, s[k], &starts);
        if (st == MT_JS_REJECT) return -1;
        cp += starts;
    }
    return cp;
}

static mt_status finish(mt_token_index *ix) {
    int n_off = 0, max_cp = 0;
    int32_t *ids = mt_calloc((size_t)ix->n + 1, sizeof *ids);
    int *cp = mt_calloc((size_t)ix->n + 1, sizeof *cp);
    if (!ids || !cp) {
        free(ids);
        free(cp);
        return MT_ERR_NOMEM;
    }
    for (int i = 0; i < ix->n; i++) {
        const uint32_t len = ix->off[i + 1] - ix->off[i];
        cp[i] = len ? content_cp(ix->bytes + ix->off[i], len) : -1;
        if (cp[i] > max_cp) max_cp = cp[i];
        if ((int)len > ix->max_len) ix->max_len = (int)len;
        if (len) ids[n_off++] = i;
    }
    mt_status st = build_trie(ix, ids, n_off, &ix->all);
    ix->n_content = (max_cp < MT_TOKEN_INDEX_MAX_CP_SETS ? max_cp : MT_TOKEN_INDEX_MAX_CP_SETS) + 1;
    const size_t w = (size_t)ix->words;
    if (!st) {
        ix->content = mt_calloc((size_t)ix->n_content * w, sizeof *ix->content);
        if (!ix->content) st = MT_ERR_NOMEM;
    }
    int n_rest = 0;
    if (!st) {
        for (int k = 0; k < n_off; k++) {
            const int i = ids[k];
            if (cp[i] >= 0 && cp[i] < ix->n_content)
                ix->content[(size_t)cp[i] * w + (size_t)(i >> 6)] |= 1ull << (i & 63);
            else
                ids[n_rest++] = i;
        }
        for (int k = 1; k < ix->n_content; k++)
            for (size_t j = 0; j < w; j++) ix->content[k * w + j] |= ix->content[(k - 1) * w + j];
        st = build_trie(ix, ids, n_rest, &ix->nonstr);
    }
    free(ids);
    free(cp);
    return st;
}

static mt_status alloc_index(int n, size_t total, mt_token_index **out) {
    if (n <= 0) return mt_fail(MT_ERR_ARG, "token index: no tokens (n = %d)", n);
    mt_token_index *ix = mt_calloc(1, sizeof *ix);
    if (!ix) return MT_ERR_NOMEM;
    ix->n = n;
    ix->words = (n + 63) / 64;
    ix->off = mt_calloc((size_t)n + 1, sizeof *ix->off);
    ix->bytes = mt_calloc(total + 1, 1);
    if (!ix->off || !ix->bytes) {
        mt_token_index_free(ix);
        return MT_ERR_NOMEM;
    }
    *out = ix;
    return MT_OK;
}

mt_status mt_token_index_from_bytes(int n, const char *const *bytes, const size_t *lens,
                                    mt_token_index **out) {
    *out = NULL;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (bytes[i] && lens[i] <= MT_TOKEN_INDEX_MAX_BYTES) total += lens[i];
    if (total > UINT32_MAX) return mt_fail(MT_ERR_ARG, "token index: vocabulary too large");
    mt_token_index *ix = NULL;
    mt_status st = alloc_index(n, total, &ix);
    if (st) return st;
    uint32_t pos = 0;
    for (int i = 0; i < n; i++) {
        ix->off[i] = pos;
        if (bytes[i] && lens[i] <= MT_TOKEN_INDEX_MAX_BYTES) {
            memcpy(ix->bytes + pos, bytes[i], lens[i]);
            pos += (uint32_t)lens[i];
        }
    }
    ix->off[n] = pos;
    if ((st = finish(ix))) {
        mt_token_index_free(ix);
        return st;
    }
    *out = ix;
    return MT_OK;
}

mt_status mt_token_index_from_tokenizer(const mt_tokenizer *tok, int n, mt_token_index **out) {
    *out = NULL;
    if (n <= 0 || n > mt_tokenizer_n_vocab(tok))
        return mt_fail(MT_ERR_ARG, "token index: %d ids for a vocabulary of %d", n,
                       mt_tokenizer_n_vocab(tok));
    char **bytes = mt_calloc((size_t)n, sizeof *bytes);
    size_t *lens = mt_calloc((size_t)n, sizeof *lens);
    char buf[MT_TOKEN_INDEX_MAX_BYTES + 1];
    mt_status st = bytes && lens ? MT_OK : MT_ERR_NOMEM;
    for (int i = 0; !st && i < n; i++) {
        if (mt_tokenizer_is_control(tok, i)) continue;
        size_t len = 0;
        /* A token too long for buf is never offered, like a control token. */
        if (mt_token_bytes(tok, i, 0, buf, sizeof buf, &len) != MT_OK) {
            mt_clear_error();
            continue;
        }
        if (!len || len > MT_TOKEN_INDEX_MAX_BYTES) continue;
        if (!(bytes[i] = mt_strndup(buf, len))) st = MT_ERR_NOMEM;
        lens[i] = len;
    }
    if (!st) st = mt_token_index_from_bytes(n, (const char *const *)bytes, lens, out);
    for (int i = 0; bytes && i < n; i++) free(bytes[i]);
    free(bytes);
    free(lens);
    return st;
}

void mt_token_index_free(mt_token_index *ix) {
    if (!ix) return;
    free(ix->off);
    free(ix->bytes);
    free(ix->all.node);
    free(ix->all.ids);
    free(ix->nonstr.node);
    free(ix->nonstr.ids);
    free(ix->content);
    free(ix);
}
