#include "train/score.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "model/forward.h"
#include "train/data_internal.h"
#include "train/loss.h"

/* Answer rows scored per forward pass: bounds the logits buffer to this many vocab rows. */
#define SCORE_CHUNK 64

typedef struct {
    mt_kv_cache kv;
    float *logits;    /* SCORE_CHUNK x vocab */
    double *logprobs; /* SCORE_CHUNK */
} scorer;

static void scorer_free(scorer *s, int kv_open) {
    if (kv_open) mt_kv_cache_free(&s->kv);
    free(s->logits);
    free(s->logprobs);
}

static mt_status scorer_init(scorer *s, const mt_model *m, int n_ctx, int *kv_open) {
    *kv_open = 0;
    s->logits = malloc((size_t)SCORE_CHUNK * m->cfg.n_vocab * sizeof *s->logits);
    s->logprobs = malloc(SCORE_CHUNK * sizeof *s->logprobs);
    if (!s->logits || !s->logprobs) return mt_fail(MT_ERR_NOMEM, "scoring: out of memory");
    mt_status st = mt_kv_cache_init(&s->kv, &m->cfg, n_ctx);
    *kv_open = !st;
    return st;
}

/* Row i predicts token i + 1, so the prompt's last row gives the first answer token: the
 * cache must hold e's first `have` tokens (have <= n_prompt - 1); the rest of the prompt
 * and the answer rows are fed here. */
static mt_status score_rows(const mt_model *m, scorer *s, const mt_sft_example *e, int have,
                            mt_answer_score *out) {
    const int first_row = e->n_prompt - 1, end_row = e->n - 1;
    out->sum_logprob = 0;
    out->n_tokens = 0;
    mt_status st = MT_OK;
    if (first_row > have)
        st = mt_forward(m, &s->kv, e->tokens + have, first_row - have, s->logits, MT_LOGITS_LAST);
    for (int row = first_row; !st && row < end_row; row += SCORE_CHUNK) {
        const int rows = end_row - row < SCORE_CHUNK ? end_row - row : SCORE_CHUNK;
        double sum = 0;
        st = mt_forward(m, &s->kv, e->tokens + row, rows, s->logits, MT_LOGITS_ALL);
        if (!st)
            st = mt_target_logprobs(s->logits, rows, m->cfg.n_vocab, e->tokens + row + 1,
                                    s->logprobs, &sum);
        out->sum_logprob += sum;
        out->n_tokens += rows;
    }
    return st;
}

static mt_status check_example(const mt_sft_example *e) {
    if (e->n_prompt < 1 || e->n_prompt >= e->n)
        return mt_fail(MT_ERR_ARG, "an example to score needs a prompt and an answer");
    return MT_OK;
}

mt_status mt_score_example(const mt_model *m, const mt_sft_example *e, mt_answer_score *out) {
    scorer s = {0};
    int kv_open = 0;
    mt_status st = check_example(e);
    if (!st) st = scorer_init(&s, m, e->n, &kv_open);
    if (!st) st = score_rows(m, &s, e, 0, out);
    scorer_free(&s, kv_open);
    return st;
}

static mt_status encode(const mt_model *m, const mt_tokenizer *tok, mt_chat_family fam,
                        const char *user, const char *answer, mt_sft_example *e) {
    mt_status st = mt_data_encode(tok, fam, NULL, user, answer, e);
    if (!st && mt_data_fit_check(e, m->cfg.n_ctx_train) == MT_FIT_DROPPED)
        st = mt_fail(MT_ERR_ARG, "the question alone fills the model's context of %d tokens",
                     m->cfg.n_ctx_train);
    if (!st) mt_data_fit_apply(e, m->cfg.n_ctx_train);
    if (!st) st = check_example(e);
    return st;
}

/* Tokens a and b share from the start, up to the row before either one's answer. */
static int shared_prompt(const mt_sft_example *a, const mt_sft_example *b) {
    const int limit = (a->n_prompt < b->n_prompt ? a->n_prompt : b->n_prompt) - 1;
    int k = 0;
    while (k < limit && a->tokens[k] == b->tokens[k]) k++;
    return k;
}

mt_status mt_score_answers(const mt_model *m, const mt_tokenizer *tok, mt_chat_family fam,
                           const char *user, const char *const *answers, int n,
                           mt_answer_score *out) {
    mt_sft_example *e = mt_calloc((size_t)n + 1, sizeof *e);
    if (!e) return mt_fail(MT_ERR_NOMEM, "scoring: out of memory");
    mt_status st = MT_OK;
    int n_ctx = 1;
    for (int k = 0; !st && k < n; k++) {
        st = encode(m, tok, fam, user, answers[k], &e[k]);
        if (!st && e[k].n > n_ctx) n_ctx = e[k].n;
    }
    scorer s = {0};
    int kv_open = 0;
    if (!st && n) st = scorer_init(&s, m, n_ctx, &kv_open);
    int have = 0; /* prompt tokens in the cache, shared with the next example */
    for (int k = 0; !st && k < n; k++) {
        if (k > 0) {
            have = shared_prompt(&e[k - 1], &e[k]);
            mt_kv_cache_truncate(&s.kv, have);
        }
        st = score_rows(m, &s, &e[k], have, &out[k]);
    }
    scorer_free(&s, kv_open);
    for (int k = 0; k < n; k++) free(e[k].tokens);
    free(e);
    return st;
}
