/* Single-sequence text generation: prefill the prompt, then sample token by token,
 * streaming complete UTF-8 text and stopping on EOS, end-of-turn tokens, stop strings
 * or the token limit. */
#ifndef MT_INFER_GENERATE_H
#define MT_INFER_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "infer/constraint.h"
#include "infer/sampler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    int max_tokens;
    int n_ctx; /* 0: prompt + max_tokens, capped at the model's training context */
    mt_sampler_params sampling;
    const char *const *stop_strings; /* generation ends before the first occurrence */
    int n_stop_strings;
    const int32_t *stop_tokens; /* besides the tokenizer's EOS */
    int n_stop_tokens;
    /* The output must be a JSON document this constraint's schema accepts (NULL: free
     * text); generation ends right after the document's last byte. */
    const mt_json_constraint *constraint;
    /* Receives text as it completes; returning non-zero stops generation. */
    int (*on_text)(void *user, const char *text, size_t len);
    void *user;
} mt_gen_params;

typedef enum {
    MT_STOP_EOS = 1,
    MT_STOP_STRING,
    MT_STOP_LENGTH,
    MT_STOP_CALLER,
    MT_STOP_CONTEXT,
    MT_STOP_DOCUMENT /* the constrained JSON document is complete; nothing may follow */
} mt_stop_reason;

typedef struct {
    int32_t *tokens; /* generated tokens (stop token excluded) */
    int n_tokens;
    char *text; /* generated text, cut before any stop string */
    int n_prompt;
    mt_stop_reason stop;
    double prefill_seconds;
    double decode_seconds;
} mt_gen_result;

mt_gen_params mt_gen_defaults(void);
mt_status mt_generate(const mt_model *m, const mt_tokenizer *tok, const int32_t *prompt,
                      int n_prompt, const mt_gen_params *p, mt_gen_result *out);
void mt_gen_result_free(mt_gen_result *r);
const char *mt_stop_reason_name(mt_stop_reason r);

#endif
