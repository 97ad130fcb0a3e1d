/* A tokenizer's vocabulary as byte strings, arranged for grammar-constrained decoding:
 * a trie over the tokens' bytes (walked together with a grammar state, a whole subtree
 * dropped at its first rejected byte), and precomputed sets of the tokens that are plain
 * JSON string content, so a step inside a free string needs no walk over most of the
 * vocabulary. Built once per tokenizer; read-only afterwards, shareable between threads.
 *
 * Tokens never offered: ids the caller does not pass, control tokens, tokens with no bytes
 * and tokens longer than MT_TOKEN_INDEX_MAX_BYTES bytes (none in real vocabularies). */
#ifndef MT_INFER_TOKEN_INDEX_H
#define MT_INFER_TOKEN_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

#define MT_TOKEN_INDEX_MAX_BYTES 1024
/* String-content sets are kept per code-point count up to this; longer content tokens
 * are walked like any other. */
#define MT_TOKEN_INDEX_MAX_CP_SETS 64

/* One trie node, in preorder: a node's subtree is [index, end). */
typedef struct {
    uint32_t end;
    uint32_t tok0; /* its tokens (equal byte strings) are ids[tok0 .. tok0 + n_tok) */
    uint16_t n_tok;
    uint16_t depth; /* bytes from the root = length of the node's string */
    uint8_t byte;   /* the byte leading into the node */
} mt_trie_node;

typedef struct {
    mt_trie_node *node; /* node[0] is the root (the empty string) */
    uint32_t n_node;
    int32_t *ids;
} mt_token_trie;

typedef struct {
    int n;                /* ids 0..n-1 */
    int words;            /* uint64_t words of an n-bit mask */
    uint32_t *off;        /* token i's bytes are bytes[off[i] .. off[i+1]) */
    uint8_t *bytes;       /* (empty for tokens never offered) */
    int max_len;          /* longest offered token, bytes */
    mt_token_trie all;    /* every offered token */
    mt_token_trie nonstr; /* offered tokens not in any content set (see below) */
    /* A token is string content when, read from between two characters of a JSON
     * string, every byte is accepted without closing the string (no '"'); ending inside
     * a UTF-8 character or an escape is fine. content[k] (k = 0 .. n_content - 1) is
     * the set of those with at most k code points; content tokens with more code points
     * than n_content - 1 are in nonstr. */
    int n_content;
    uint64_t *content; /* n_content masks of `words` words */
} mt_token_index;

/* Index of ids 0..n-1 of a tokenizer (n: the ids decoding may pick, infer/vocab.h). */
mt_status mt_token_index_from_tokenizer(const mt_tokenizer *tok, int n, mt_token_index **out);
/* Index of n given byte strings (NULL or length 0: never offered). */
mt_status mt_token_index_from_bytes(int n, const char *const *bytes, const size_t *lens,
                                    mt_token_index **out);
void mt_token_index_free(mt_token_index *ix);

#endif
