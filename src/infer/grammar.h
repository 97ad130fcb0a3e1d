/* Byte-level grammars for constrained decoding, and the per-sequence matcher.
 *
 * A grammar is a recursive transition network: states with byte-range edges, epsilon
 * edges, calls of sub-networks (rules, for recursion) and returns, plus one built-in
 * construct, the body of a JSON string with a code-point count (minLength/maxLength).
 * json_schema.c compiles JSON Schemas into it. A grammar is read-only once finished and
 * can be shared by any number of matchers and threads.
 *
 * A matcher holds the set of every live parse of the text so far (a state, a call stack
 * and the string counters each), so ambiguous grammars (anyOf alternatives with a common
 * prefix) are followed exactly. The tokens it allows are those whose every byte can be
 * consumed from some live parse. Masks are computed per live parse by walking the token
 * trie with it, a subtree dropped at its first rejected byte, and cached by that parse's
 * full state (state, call stack, string counters clamped to what a token can reach). */
#ifndef MT_INFER_GRAMMAR_H
#define MT_INFER_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "infer/token_index.h"

typedef struct mt_grammar mt_grammar;
typedef struct mt_gmatch mt_gmatch;
typedef struct mt_gcache mt_gcache;

/* Deepest call stack (nested $ref / free JSON values) a parse may reach. */
#define MT_GRAMMAR_MAX_DEPTH 64
/* Most states a grammar may have. */
#define MT_GRAMMAR_MAX_STATES 2000000
/* Most live parses a matcher follows at once; more are dropped, oldest kept. */
#define MT_GRAMMAR_MAX_PARSES 512

void mt_grammar_free(mt_grammar *g);
int mt_grammar_n_states(const mt_grammar *g);

/* ---- matching ------------------------------------------------------------------------ */

/* A mask cache for one grammar and one token index. Not thread-safe: the matchers that
 * share one (clones share their original's) must be used from one thread at a time.
 * max_bytes bounds its masks' memory (0: 64 MiB); when full it is emptied. */
mt_status mt_gcache_new(const mt_grammar *g, const mt_token_index *ix, size_t max_bytes,
                        mt_gcache **out);
void mt_gcache_release(mt_gcache *c); /* drops one reference */

/* A matcher at the start of the document. cache may be NULL (a private one is made) or
 * one made for the same grammar and index (the matcher takes a reference). */
mt_status mt_gmatch_new(const mt_grammar *g, const mt_token_index *ix, mt_gcache *cache,
                        mt_gmatch **out);
/* An independent copy of m's parse state sharing m's grammar, index and cache. */
mt_status mt_gmatch_clone(const mt_gmatch *m, mt_gmatch **out);
void mt_gmatch_free(mt_gmatch *m);

/* bits (ix->words words): bit id set iff token id may come next. The end of the
 * document (EOS) is not a token here: see mt_gmatch_can_end. */
mt_status mt_gmatch_fill_mask(mt_gmatch *m, uint64_t *bits);
/* Sets logits[id] = -INFINITY for every id < ix->n that may not come next. */
mt_status mt_gmatch_mask_logits(mt_gmatch *m, float *logits);
/* Advances by a token; MT_ERR_ARG, state unchanged, if it may not come next. */
mt_status mt_gmatch_accept(mt_gmatch *m, int32_t id);
/* Advances by raw bytes (a forced prefix, tests); MT_ERR_ARG, unchanged, if refused. */
mt_status mt_gmatch_accept_bytes(mt_gmatch *m, const void *bytes, size_t len);
/* The text so far is a complete document (EOS may come now). */
int mt_gmatch_can_end(const mt_gmatch *m);
/* Complete, and no byte may follow: generation stops here. */
int mt_gmatch_must_end(const mt_gmatch *m);
/* Live parses now (for tests and statistics). */
int mt_gmatch_n_parses(const mt_gmatch *m);

/* ---- building (for grammar compilers) ------------------------------------------------- */

typedef struct mt_gbuild mt_gbuild;

mt_status mt_gbuild_new(mt_gbuild **out);
void mt_gbuild_free(mt_gbuild *b);
/* A new state's id, or -1 (error recorded) past MT_GRAMMAR_MAX_STATES. */
int32_t mt_gbuild_state(mt_gbuild *b);
/* from --[lo..hi]--> to */
mt_status mt_gbuild_bytes(mt_gbuild *b, int32_t from, uint8_t lo, uint8_t hi, int32_t to);
mt_status mt_gbuild_eps(mt_gbuild *b, int32_t from, int32_t to);
/* s calls the rule starting at callee, then goes on at ret. s gets no other edge. */
mt_status mt_gbuild_call(mt_gbuild *b, int32_t s, int32_t callee, int32_t ret);
/* s ends its rule (returns to the caller; at the bottom of the stack: document done). */
mt_status mt_gbuild_ret(mt_gbuild *b, int32_t s);
/* s is the body of a JSON string (after its opening quote) with between min_cp and
 * max_cp code points (max_cp < 0: unbounded); the closing quote leads to next. With
 * n_excluded > 0 the string may not equal any excluded[i] (raw bytes) and may hold no
 * escape. s gets no other edge. */
mt_status mt_gbuild_string(mt_gbuild *b, int32_t s, int32_t min_cp, int32_t max_cp,
                           const char *const *excluded, int n_excluded, int32_t next);
/* Freezes the grammar; the document is what the rule at start derives. b is consumed. */
mt_status mt_gbuild_finish(mt_gbuild *b, int32_t start, mt_grammar **out);

/* For compilers' checks: the states reachable from s by epsilon edges alone (s
 * included) that are calls: their callee starts go to callees (cap entries). */
int mt_gbuild_first_calls(const mt_gbuild *b, int32_t s, int32_t *callees, int cap);

#endif
