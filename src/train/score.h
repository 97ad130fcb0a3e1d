/* How likely a model finds an answer: the conversation laid out exactly as training lays
 * it (train/data.h: chat template, answer tokens up to and including the end-of-turn
 * marker), scored with the inference forward pass. Phase 3 ranks its samples by it, and
 * measures the chosen-rejected margin before and after training with it. */
#ifndef MT_TRAIN_SCORE_H
#define MT_TRAIN_SCORE_H

#include "model/model.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"

typedef struct {
    double sum_logprob; /* of every answer token */
    int n_tokens;       /* answer tokens scored (> 0) */
} mt_answer_score;

static inline double mt_answer_mean_logprob(const mt_answer_score *s) {
    return s->sum_logprob / s->n_tokens;
}

/* Scores e's answer tokens [n_prompt, n) given its prompt. */
mt_status mt_score_example(const mt_model *m, const mt_sft_example *e, mt_answer_score *out);

/* Renders (user, answers[k]) with chat family fam as training does, each cut to the model's
 * training context, and scores every answer into out[k]. The answers share the question's
 * prompt, which is run through the model once for all of them. */
mt_status mt_score_answers(const mt_model *m, const mt_tokenizer *tok, mt_chat_family fam,
                           const char *user, const char *const *answers, int n,
                           mt_answer_score *out);

#endif
