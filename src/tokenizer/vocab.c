#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "tokenizer/tok_internal.h"

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

mt_status mt_vocab_init(mt_vocab *v, int32_t n, int with_scores) {
    memset(v, 0, sizeof *v);
    if (n <= 0) return mt_fail(MT_ERR_FORMAT, "tokenizer: empty vocabulary");
    v->n = n;
    v->off = mt_calloc((size_t)n, sizeof *v->off);
    v->len = mt_calloc((size_t)n, sizeof *v->len);
    /* Ids a source leaves out stay unused rather than becoming phantom normal tokens. */
    v->type = mt_calloc((size_t)n, sizeof *v->type);
    if (with_scores) v->score = mt_calloc((size_t)n, sizeof *v->score);
    v->blob_cap = (size_t)n * 8 + 16;
    v->blob = malloc(v->blob_cap);
    if (!v->off || !v->len || !v->type || (with_scores && !v->score) || !v->blob) {
        mt_vocab_free(v);
        return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory for %d tokens", (int)n);
    }
    memset(v->type, MT_TT_UNUSED, (size_t)n);
    /* Offset 0 is the empty string every unset id points at. */
    v->blob[0] = '\0';
    v->blob_len = 1;
    return MT_OK;
}

void mt_vocab_free(mt_vocab *v) {
    free(v->blob);
    free(v->off);
    free(v->len);
    free(v->type);
    free(v->score);
    free(v->slot);
    memset(v, 0, sizeof *v);
}

mt_status mt_vocab_set(mt_vocab *v, int32_t id, const char *s, size_t len, uint8_t type) {
    if (id < 0 || id >= v->n)
        return mt_fail(MT_ERR_FORMAT, "tokenizer: token id %d out of range", (int)id);
    if (len > UINT32_MAX / 2)
        return mt_fail(MT_ERR_FORMAT, "tokenizer: token %d too long", (int)id);
    if (v->blob_len + len + 1 > v->blob_cap) {
        size_t cap = v->blob_cap * 2;
        while (cap < v->blob_len + len + 1) cap *= 2;
        char *grown = realloc(v->blob, cap);
        if (!grown) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory for token text");
        v->blob = grown;
        v->blob_cap = cap;
    }
    memcpy(v->blob + v->blob_len, s, len);
    v->blob[v->blob_len + len] = '\0';
    v->off[id] = (uint32_t)v->blob_len;
    v->len[id] = (uint32_t)len;
    v->type[id] = type;
    v->blob_len += len + 1;
    if (v->blob_len > UINT32_MAX)
        return mt_fail(MT_ERR_FORMAT, "tokenizer: vocabulary text over 4 GiB");
    return MT_OK;
}

/* Later ids win over earlier duplicates, as a Python dict built from the token list does. */
mt_status mt_vocab_build_index(mt_vocab *v) {
    uint32_t cap = 16;
    while (cap < (uint32_t)v->n * 2u) cap <<= 1;
    free(v->slot);
    v->slot = malloc((size_t)cap * sizeof *v->slot);
    if (!v->slot) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory for the vocabulary index");
    memset(v->slot, 0xff, (size_t)cap * sizeof *v->slot);
    v->mask = cap - 1;
    for (int32_t id = 0; id < v->n; id++) {
        if (v->type[id] == MT_TT_UNUSED && v->len[id] == 0) continue;
        const char *s = v->blob + v->off[id];
        uint32_t i = (uint32_t)hash_bytes(s, v->len[id]) & v->mask;
        for (;; i = (i + 1) & v->mask) {
            int32_t other = v->slot[i];
            if (other < 0) break;
            if (v->len[other] == v->len[id] && memcmp(v->blob + v->off[other], s, v->len[id]) == 0)
                break;
        }
        v->slot[i] = id;
    }
    return MT_OK;
}

int32_t mt_vocab_lookup(const mt_vocab *v, const char *s, size_t len) {
    if (!v->slot) return -1;
    uint32_t i = (uint32_t)hash_bytes(s, len) & v->mask;
    for (;; i = (i + 1) & v->mask) {
        int32_t id = v->slot[i];
        if (id < 0) return -1;
        if (v->len[id] == len && memcmp(v->blob + v->off[id], s, len) == 0) return id;
    }
}

const char *mt_vocab_piece(const mt_vocab *v, int32_t id) {
    if (id < 0 || id >= v->n) return NULL;
    return v->blob + v->off[id];
}
