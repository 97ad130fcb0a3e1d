/* The decoding state of one sequence, independent of how its forward passes are run:
 * sampling with its own seeded sampler, streaming UTF-8 text, and every stop rule (EOS,
 * end-of-turn tokens, stop strings, token limit, caller). Single and batched generation
 * both drive sequences through this. */
#ifndef MT_INFER_SEQ_H
#define MT_INFER_SEQ_H

#include "infer/generate.h"
#include "infer/textbuf.h"

typedef struct {
    const mt_gen_params *p;
    const mt_tokenizer *tok;
    mt_sampler sampler;
    mt_detok_stream ds;
    mt_textbuf text;
    size_t emitted, scan_from;
    int32_t *hist; /* prompt then generated tokens */
    int n_hist, n_prompt, cap;
    int done;
    mt_stop_reason stop;
    mt_gmatch *match; /* the JSON constraint's parse of the text so far, or NULL */
} mt_seq;

/* cap: most tokens the sequence may hold (prompt + generated). seed_offset is added to the
 * sampling seed so sequences of one batch draw independent streams. constraint: the JSON
 * document the output must be (NULL: free text). */
mt_status mt_seq_init(mt_seq *q, const mt_model *m, const mt_tokenizer *tok, const mt_gen_params *p,
                      const mt_json_constraint *constraint, const int32_t *prompt, int n_prompt,
                      int cap, uint64_t seed_offset);
/* Samples from logits (modified), streams the token and applies the stop rules. Under a
 * constraint only tokens that keep the text a prefix of a valid document are drawn, stop
 * tokens only once it is complete, and the sequence ends when nothing may follow. When
 * the sequence goes on, *next is the token to feed. */
mt_status mt_seq_step(mt_seq *q, float *logits, int32_t *next);
/* Moves the generated tokens and text into r (timings left to the caller). */
mt_status mt_seq_result(mt_seq *q, mt_gen_result *r);
void mt_seq_free(mt_seq *q);

#endif
