/* Beam search with the semantics of Hugging Face transformers' generate(num_beams=N,
 * do_sample=False): a hypothesis is scored sum(log p) / length^length_penalty, where the
 * length counts generated tokens including a final stop token. The prompt is prefilled
 * once; beams share its KV rows and copy only the rows where they diverge. Several
 * prompts can be searched together, their beams fed in one forward pass per step. */
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

typedef struct {
    const int32_t *prompt;
    int n_prompt;
} mt_beam_prompt;

/* Called once per finished prompt, in completion order, with its result (owned by the
 * search: valid during the call only); returning non-zero aborts the search with that status. */
typedef mt_status (*mt_beam_done_fn)(void *user, int index, const mt_beam_result *r);

typedef struct {
    int n_prompts;
    long n_steps;       /* forward passes of the decoding phase */
    long n_step_tokens; /* tokens those passes fed */
    double prefill_seconds, decode_seconds;
} mt_beam_batch_stats;

mt_beam_params mt_beam_defaults(void);
mt_status mt_beam_params_validate(const mt_beam_params *p);
/* tok may be NULL (then only stop_tokens end a hypothesis, texts are NULL and stop
 * strings are refused). The one-prompt case of mt_beam_search_batch. */
mt_status mt_beam_search(const mt_model *m, const mt_tokenizer *tok, const int32_t *prompt,
                         int n_prompt, const mt_beam_params *p, mt_beam_result *out);

/* Beam search for every prompt with the same parameters; up to max_prompts prompts are
 * searched together (their beams share one forward pass per step), a finished prompt's
 * slots go to the next waiting one. Each prompt's result is the one mt_beam_search gives
 * for it alone (same hypotheses, texts, scores): bit for bit outside precise mode, where
 * a row's arithmetic does not depend on the rows beside it; in precise mode on CPUs
 * without AVX-512 the BLAS sgemm's rows depend on the call's row count, so scores there
 * agree to rounding. Every prompt is checked before any is searched. The KV cache holds
 * min(max_prompts, n_prompts) * n_beams slots of the longest prompt's context. A result's
 * timings are its prompt's prefill pass (shared with the prompts prefilled beside it) and
 * the time from there to its end. stats may be NULL. */
mt_status mt_beam_search_batch(const mt_model *m, const mt_tokenizer *tok,
                               const mt_beam_prompt *prompts, int n_prompts,
                               const mt_beam_params *p, int max_prompts, mt_beam_done_fn done,
                               void *user, mt_beam_batch_stats *stats);
void mt_beam_result_free(mt_beam_result *r);

#endif
