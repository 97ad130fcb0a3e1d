/* Byte-pair merging over one pre-token, lowest rank first and leftmost on ties -- the
 * order Hugging Face's BPE model applies, which the parity tests hold us to. */
#include <stdlib.h>

#include "tokenizer/tok_internal.h"

typedef struct {
    mt_merge_rank rank;
    int32_t pos; /* index of the left symbol */
    int32_t left, right;
} cand;

typedef struct {
    cand *c;
    size_t n, cap;
} heap;

static int cand_less(const cand *a, const cand *b) {
    if (mt_merge_rank_less(&a->rank, &b->rank)) return 1;
    if (mt_merge_rank_less(&b->rank, &a->rank)) return 0;
    return a->pos < b->pos;
}

static int heap_push(heap *h, cand c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        cand *grown = realloc(h->c, cap * sizeof *grown);
        if (!grown) return 0;
        h->c = grown;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(&c, &h->c[parent])) break;
        h->c[i] = h->c[parent];
        i = parent;
    }
    h->c[i] = c;
    return 1;
}

static cand heap_pop(heap *h) {
    cand top = h->c[0];
    cand last = h->c[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < h->n && cand_less(&h->c[l], best)) m = l, best = &h->c[l];
        if (r < h->n && cand_less(&h->c[r], best)) m = r;
        if (m == i) break;
        h->c[i] = h->c[m];
        i = m;
    }
    if (h->n) h->c[i] = last;
    return top;
}

typedef struct {
    int32_t id, prev, next;
} sym;

static int consider(const mt_tokenizer *t, heap *h, const sym *s, int32_t pos) {
    if (pos < 0 || s[pos].next < 0) return 1;
    int32_t next = s[pos].next;
    cand c = {.pos = pos, .left = s[pos].id, .right = s[next].id};
    if (!mt_merge_lookup(t, c.left, c.right, &c.rank)) return 1;
    return heap_push(h, c);
}

static mt_status merge_all(const mt_tokenizer *t, sym *s, size_t n, heap *h) {
    for (size_t i = 0; i + 1 < n; i++)
        if (!consider(t, h, s, (int32_t)i))
            return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    while (h->n) {
        cand c = heap_pop(h);
        int32_t next = s[c.pos].next;
        /* Entries go stale when a neighbour merged since they were queued. */
        if (s[c.pos].id != c.left || next < 0 || s[next].id != c.right) continue;
        s[c.pos].id = c.rank.result;
        s[c.pos].next = s[next].next;
        if (s[next].next >= 0) s[s[next].next].prev = c.pos;
        s[next].id = -1;
        if (!consider(t, h, s, s[c.pos].prev) || !consider(t, h, s, c.pos))
            return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    }
    return MT_OK;
}

mt_status mt_bpe_merge(const mt_tokenizer *t, int32_t *ids, size_t *n) {
    if (*n < 2) return MT_OK;
    sym *s = malloc(*n * sizeof *s);
    if (!s) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < *n; i++) {
        s[i].id = ids[i];
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < *n ? (int32_t)i + 1 : -1;
    }
    heap h = {0};
    mt_status st = merge_all(t, s, *n, &h);
    free(h.c);
    if (st == MT_OK) {
        size_t k = 0;
        for (int32_t i = 0; i >= 0; i = s[i].next) ids[k++] = s[i].id;
        *n = k;
    }
    free(s);
    return st;
}
