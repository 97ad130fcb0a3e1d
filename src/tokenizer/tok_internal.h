/* Private layout of mt_tokenizer shared by the tokenizer's source files. Both loaders
 * (GGUF metadata, tokenizer.json) fill the same structure so that encoding and decoding
 * have one implementation. */
#ifndef MT_TOKENIZER_TOK_INTERNAL_H
#define MT_TOKENIZER_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

/* Token types use GGUF's numbering so GGUF metadata maps over unchanged. */
enum {
    MT_TT_NORMAL = 1,
    MT_TT_UNKNOWN = 2,
    MT_TT_CONTROL = 3,
    MT_TT_USER = 4,
    MT_TT_UNUSED = 5,
    MT_TT_BYTE = 6,
};

/* Token strings live in one growing blob addressed by offset, so adding tokens never
 * invalidates earlier ones and freeing is three calls. */
typedef struct {
    int32_t n;
    char *blob;
    size_t blob_len, blob_cap;
    uint32_t *off;
    uint32_t *len;
    uint8_t *type;
    float *score;  /* NULL when the source has none */
    int32_t *slot; /* open-addressing hash of pieces -> id, -1 empty */
    uint32_t mask;
} mt_vocab;

typedef struct {
    uint64_t *key; /* (left id << 32) | right id; UINT64_MAX marks an empty slot */
    int32_t *rank;
    int32_t *result;
    uint32_t mask;
    size_t n;
} mt_merge_table;

/* Rank of a candidate merge; lower wins. Explicit merge lists use only `primary`; merges
 * derived from a SentencePiece vocabulary order like Hugging Face's generate_merges. */
typedef struct {
    double primary;
    int32_t left_chars;  /* negated: longer left piece first */
    int32_t right_chars; /* negated likewise */
    int32_t result;
} mt_merge_rank;

typedef enum {
    MT_SPLIT_ISOLATED = 0,
    MT_SPLIT_REMOVED,
    MT_SPLIT_MERGED_PREV,
    MT_SPLIT_MERGED_NEXT,
} mt_split_behavior;

typedef struct {
    void *re; /* pcre2_code* kept opaque so only pretok.c includes pcre2.h */
    mt_split_behavior behavior;
} mt_pretok_step;

typedef struct {
    int32_t first_child, next_sibling, token;
    uint8_t byte;
} mt_trie_node;

typedef struct {
    mt_trie_node *node;
    int32_t n, cap;
} mt_trie;

typedef enum { MT_PREPEND_NEVER = 0, MT_PREPEND_FIRST, MT_PREPEND_ALWAYS } mt_prepend_mode;

struct mt_tokenizer {
    mt_tok_kind kind;
    char pre_name[48];
    char *arch;
    mt_vocab v;

    /* model */
    int byte_level;      /* input bytes spelled with the GPT-2 byte alphabet */
    int byte_fallback;   /* unknown characters become <0xNN> tokens */
    int fuse_unk;        /* consecutive unknowns collapse into one */
    int ignore_merges;   /* a whole pre-token found in the vocabulary is taken as is */
    int merges_derived;  /* SentencePiece vocab: merge ranks computed from the vocabulary */
    int derive_by_index; /* derived ranks follow token order instead of scores (Gemma) */
    mt_merge_table merges;
    int32_t byte_token[256]; /* id of each byte's symbol (byte-level char or <0xNN>), -1 */

    /* normalisation and pre-tokenisation */
    int space_to_meta;       /* ' ' becomes U+2581 */
    mt_prepend_mode prepend; /* prefix U+2581 (SentencePiece) */
    int bl_prefix_space;     /* ByteLevel add_prefix_space */
    mt_pretok_step *steps;
    int n_steps;

    /* decoding */
    int strip_leading_space;

    /* special tokens */
    mt_trie specials;
    int32_t bos, eos, pad, unk;
    int add_bos, add_eos;

    char *chat_template;
};

/* vocab.c */
mt_status mt_vocab_init(mt_vocab *v, int32_t n, int with_scores);
void mt_vocab_free(mt_vocab *v);
mt_status mt_vocab_set(mt_vocab *v, int32_t id, const char *s, size_t len, uint8_t type);
mt_status mt_vocab_build_index(mt_vocab *v);
int32_t mt_vocab_lookup(const mt_vocab *v, const char *s, size_t len);
const char *mt_vocab_piece(const mt_vocab *v, int32_t id);

/* merges.c */
mt_status mt_merges_init(mt_merge_table *m, size_t n_merges);
void mt_merges_free(mt_merge_table *m);
/* Later duplicates override earlier ones, as in Hugging Face's merge map. */
void mt_merges_put(mt_merge_table *m, int32_t left, int32_t right, int32_t rank, int32_t result);
/* Returns 1 and fills *r when the adjacent pair (left, right) may merge. */
int mt_merge_lookup(const mt_tokenizer *t, int32_t left, int32_t right, mt_merge_rank *r);
int mt_merge_rank_less(const mt_merge_rank *a, const mt_merge_rank *b);

/* bpe.c: merges the symbol ids in place, shrinking *n. */
mt_status mt_bpe_merge(const mt_tokenizer *t, int32_t *ids, size_t *n);

/* bytes.c: the GPT-2 byte alphabet. */
/* UTF-8 of the character that stands for byte b (1 or 2 bytes); returns its length. */
int mt_byte_to_unicode(uint8_t b, char out[4]);
/* Byte for a code point of the alphabet, or -1. */
int mt_unicode_to_byte(uint32_t cp);
/* Decodes one UTF-8 character; returns its length (1 for an invalid lead byte). */
int mt_utf8_next(const char *s, size_t n, uint32_t *cp);
/* Validates the sequence at s: >0 a complete character of that length, 0 a valid but
 * truncated prefix, <0 an invalid subpart of -return bytes. */
int mt_utf8_check(const uint8_t *s, size_t n);
/* Appends s with each invalid subpart replaced by U+FFFD (Rust's from_utf8_lossy). */
size_t mt_utf8_lossy(const uint8_t *s, size_t n, char *out);

/* pretok.c */
mt_status mt_pretok_add_regex(mt_tokenizer *t, const char *pattern, int literal,
                              mt_split_behavior behavior);
/* Regex list that llama.cpp uses for a tokenizer.ggml.pre name (byte-level vocabularies). */
mt_status mt_pretok_add_preset(mt_tokenizer *t, const char *pre_name);
mt_status mt_pretok_add_gpt2(mt_tokenizer *t);
void mt_pretok_free(mt_tokenizer *t);
typedef struct {
    size_t off, len;
} mt_span;
/* Splits text into pieces through every step; *spans is malloc'ed. */
mt_status mt_pretok_split(const mt_tokenizer *t, const char *text, size_t len, mt_span **spans,
                          size_t *n_spans);

/* special.c */
mt_status mt_trie_add(mt_trie *tr, const char *s, size_t len, int32_t token);
void mt_trie_free(mt_trie *tr);
/* Longest special token starting at text; returns its length (0 if none) and id. */
size_t mt_special_match(const mt_tokenizer *t, const char *text, size_t len, int parse_special,
                        int32_t *id);
/* Registers every control and user-defined token of the vocabulary for matching. */
mt_status mt_special_index(mt_tokenizer *t);

/* encode_piece.c: one pre-token to ids, appended to the growing output. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} mt_idvec;
mt_status mt_idvec_push(mt_idvec *v, int32_t id);
mt_status mt_encode_piece(const mt_tokenizer *t, const char *s, size_t len, mt_idvec *out);

/* tokenizer.c */
mt_status mt_tokenizer_alloc(mt_tokenizer **out);
/* Final checks and indexes after a loader has filled vocabulary and options. */
mt_status mt_tokenizer_finish(mt_tokenizer *t);
mt_status mt_tokenizer_set_arch(mt_tokenizer *t, const char *arch);

#endif
