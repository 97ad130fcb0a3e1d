/* Beam search with the semantics of Hugging Face transformers' generate(num_beams=N,
 * do_sample=False): a hypothesis is scored sum(log p) / length^length_penalty, where the
 * length counts generated tokens including a final stop token. The prompt is prefilled
 * once; beams share its KV rows and copy only the rows where they diverge. */
#ifndef MT_INFER_BEAM_H
#define MT_INFER_BEAM_H

#include <stddef.h>
#include <stdint.h>

#include "infer/constraint.h"
#include "infer/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* When the search ends before max_tokens (transformers' early_stopping values). */
typedef enum {
    /* False: once n_beams hypotheses are finished, stop when the best running beam,
     * scored at its current length, cannot beat the worst finished one. */
    MT_BEAM_STOP_HEURISTIC = 0,
    /* True: stop as soon as n_beams hypotheses are finished. */
    MT_BEAM_STOP_EARLY = 1,
    /* "never": as HEURISTIC, but with a positive length penalty the running beam is
     * scored at the longest length it could reach (the canonical, exact criterion). */
    MT_BEAM_STOP_NEVER = 2
} mt_beam_stopping;

typedef struct {
    int n_beams;          /* >= 1 */
    float length_penalty; /* exponent of the length divisor; 1 = mean log-prob, 0 = sum */
    mt_beam_stopping early_stopping;
    int max_tokens;             /* new tokens at most */
    int n_ctx;                  /* 0: prompt + max_tokens, capped at the model's training context */
    const int32_t *stop_tokens; /* end a hypothesis besides the tokenizer's EOS */
    int n_stop_tokens;
    const char *const *stop_strings; /* end a hypothesis; its text is cut before them */
    int n_stop_strings;
    /* Every hypothesis is (a prefix of) a JSON document this constraint's schema accepts:
     * each beam's disallowed tokens are masked before its log-softmax, stop tokens only
     * end a complete document, and a document nothing may follow ends its hypothesis
     * (MT_STOP_DOCUMENT). NULL: unconstrained. */
    const mt_json_constraint *constraint;
} mt_beam_params;

typedef struct {
    int32_t *tokens; /* generated tokens, stop token excluded */
    int n_tokens;
    char *text;         /* decoded tokens cut before any stop string; NULL without tokenizer */
    double score;       /* sum_logprob / length^length_penalty */
    double sum_logprob; /* of every generated token, stop token included */
    int length;         /* tokens the penalty counted: n_tokens, + 1 with a stop token */
    mt_stop_reason stop;
    int32_t stop_token; /* the token that ended it, or -1 */
} mt_beam_hyp;

typedef struct {
    mt_beam_hyp *hyps; /* finished hypotheses, best first (at most n_beams) */
    int n_hyps;
    int n_prompt;
    int n_steps;              /* decoding steps: tokens added to each beam */
    long long kv_rows_copied; /* KV positions copied between slots after the prefill */
    double prefill_seconds;
    double decode_seconds;
} mt_beam_result;

mt_beam_params mt_beam_defaults(void);
mt_status mt_beam_params_validate(const mt_beam_params *p);
/* tok may be NULL (then only stop_tokens end a hypothesis, texts are NULL and stop
 * strings are refused). */
mt_status mt_beam_search(const mt_model *m, const mt_tokenizer *tok, const int32_t *prompt,
                         int n_prompt, const mt_beam_params *p, mt_beam_result *out);
void mt_beam_result_free(mt_beam_result *r);

#endif
