/* Shared helpers of the grammar tests: hand-made vocabularies and matcher checks. */
#ifndef TESTS_UNIT_GRAMMAR_VOCAB_H
#define TESTS_UNIT_GRAMMAR_VOCAB_H

#include <stdlib.h>
#include <string.h>

#include "infer/grammar.h"
#include "infer/json_schema.h"
#include "infer/token_index.h"

/* Tokens spanning several lexemes, pieces of UTF-8 characters, escapes, numbers,
 * keywords and property-name pieces. NULL: an id never offered (a control token). */
static const char *const VOCAB[] = {"{",
                                    "}",
                                    "[",
                                    "]",
                                    "\"",
                                    ":",
                                    ",",
                                    " ",
                                    "\n",
                                    "\n  ",
                                    "\n    ",
                                    "\t",
                                    "\":\"",
                                    "\",\"",
                                    "\"},{\"",
                                    "\": \"",
                                    "\":",
                                    ", ",
                                    "},",
                                    "],",
                                    "\"}",
                                    "\"]",
                                    "{\"",
                                    "[\"",
                                    "\": ",
                                    "\":[",
                                    "\": [",
                                    "\":{",
                                    "\":{\"",
                                    "0",
                                    "1",
                                    "2",
                                    "3",
                                    "4",
                                    "5",
                                    "6",
                                    "7",
                                    "8",
                                    "9",
                                    "10",
                                    "12",
                                    "-",
                                    ".",
                                    "e",
                                    "E",
                                    "+",
                                    "-1",
                                    "0.",
                                    "true",
                                    "false",
                                    "null",
                                    "tr",
                                    "ue",
                                    "fa",
                                    "lse",
                                    "nu",
                                    "ll",
                                    "a",
                                    "b",
                                    "c",
                                    "x",
                                    "y",
                                    "z",
                                    "ab",
                                    "abc",
                                    " a",
                                    "hello",
                                    " world",
                                    "\\",
                                    "\\n",
                                    "\\\"",
                                    "\\u",
                                    "\\u00e9",
                                    "\\ud83d",
                                    "u",
                                    "D",
                                    "d",
                                    "F",
                                    "00",
                                    "000",
                                    "\xc3\xa9",
                                    "\xc3",
                                    "\xa9",
                                    "\xe6\x97\xa5",
                                    "\xe6",
                                    "\x97\xa5",
                                    "\xf0\x9f\x98\x80",
                                    "\xf0\x9f",
                                    "\x98\x80",
                                    "\xed\xa0\x80",
                                    "\x01",
                                    "\x7f",
                                    "verdict",
                                    "accept",
                                    "revise",
                                    "feedback",
                                    "hints",
                                    "name",
                                    "score",
                                    "\"verdict\"",
                                    "\"accept\"",
                                    "\"revise\"",
                                    "ver",
                                    "dict",
                                    "acc",
                                    "ept",
                                    "rev",
                                    "ise",
                                    "feed",
                                    "back",
                                    "hint",
                                    "s",
                                    "kids",
                                    "next",
                                    "val",
                                    "ue\"",
                                    "1}",
                                    "2]",
                                    "0,",
                                    NULL,
                                    "",
                                    "}\n",
                                    "\"\n}",
                                    "f",
                                    "g",
                                    "h",
                                    "i",
                                    "j",
                                    "k",
                                    "l",
                                    "m",
                                    "n",
                                    "o",
                                    "p",
                                    "q",
                                    "r",
                                    "t",
                                    "v",
                                    "w",
                                    "A",
                                    "B",
                                    "C"};

#define N_VOCAB ((int)(sizeof VOCAB / sizeof *VOCAB))

static inline mt_token_index *vocab_index(void) {
    size_t lens[N_VOCAB];
    for (int i = 0; i < N_VOCAB; i++) lens[i] = VOCAB[i] ? strlen(VOCAB[i]) : 0;
    mt_token_index *ix = NULL;
    if (mt_token_index_from_bytes(N_VOCAB, VOCAB, lens, &ix) != MT_OK) return NULL;
    return ix;
}

static inline int vocab_id(const char *s) {
    for (int i = 0; i < N_VOCAB; i++)
        if (VOCAB[i] && !strcmp(VOCAB[i], s)) return i;
    return -1;
}

static inline int bit(const uint64_t *bits, int id) {
    return (int)((bits[id >> 6] >> (id & 63)) & 1);
}

/* The mask must equal what accepting each token alone on a clone says; returns the
 * number of mismatches (0 when exact). */
static inline int mask_mismatches(mt_gmatch *m, const mt_token_index *ix, uint64_t *bits) {
    if (mt_gmatch_fill_mask(m, bits) != MT_OK) return -1;
    int bad = 0;
    for (int id = 0; id < ix->n; id++) {
        mt_gmatch *c = NULL;
        if (mt_gmatch_clone(m, &c) != MT_OK) return -1;
        const int ok = mt_gmatch_accept(c, id) == MT_OK;
        mt_gmatch_free(c);
        bad += ok != bit(bits, id);
    }
    mt_clear_error();
    return bad;
}

#endif
