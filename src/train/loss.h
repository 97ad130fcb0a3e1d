/* Training losses: token cross-entropy over logits rows (in place, chunk by chunk, so no
 * second [rows x vocab] matrix exists) and the sequence-level preference losses of phase 3. */
#ifndef MT_TRAIN_LOSS_H
#define MT_TRAIN_LOSS_H

#include <stdint.h>

#include "core/status.h"

/* Target id of a row that is not trained (prompt, padding): PyTorch's ignore_index. */
#define MT_IGNORE_INDEX (-100)

/* Cross-entropy of n_rows rows of `vocab` logits against targets (MT_IGNORE_INDEX = ignored).
 * On return `logits` holds grad_scale * d(sum of row NLLs)/d(logits) = grad_scale*(softmax -
 * onehot), zero on ignored rows. *loss_sum (optional) receives the unscaled sum of -log p(target)
 * over non-ignored rows; logprob_out (optional, n_rows) each row's log p(target), 0 if ignored.
 * For a loss L defined on the sum of a sequence's token log-probs, pass grad_scale = -dL/dlp.
 * Fails, with logits untouched, on a target outside [0, vocab) other than MT_IGNORE_INDEX. */
mt_status mt_ce_rows(float *logits, int n_rows, int vocab, const int32_t *targets, float grad_scale,
                     double *loss_sum, double *logprob_out);

/* mt_ce_rows with a scale per row (row_scale[r] * grad_scale), for chunks whose rows belong to
 * sequences with different loss weights (packed batches, preference pairs). */
mt_status mt_ce_rows_weighted(float *logits, int n_rows, int vocab, const int32_t *targets,
                              const float *row_scale, float grad_scale, double *loss_sum,
                              double *logprob_out);

/* Log p(target) per row without gradients, logits read-only (reference log-probs for DPO,
 * evaluation). logprob_out (n_rows) gets 0 for ignored rows; *sum_out (optional) their sum. */
mt_status mt_target_logprobs(const float *logits, int n_rows, int vocab, const int32_t *targets,
                             double *logprob_out, double *sum_out);

/* One batch of preference pairs, reduced per sequence over answer tokens only (the caller
 * excludes prompt and padding): sums of token log-probs and token counts. */
typedef struct {
    int n_pairs;
    const double *lp_chosen, *lp_rejected;   /* policy log-prob sums */
    const int64_t *n_chosen, *n_rejected;    /* answer token counts, each > 0 */
    const double *ref_chosen, *ref_rejected; /* reference log-prob sums; DPO only */
} mt_pref_batch;

/* What a trainer logs per batch (means over pairs). For DPO the rewards are beta*(lp - ref) as
 * in TRL; for the margin loss they are the mean token log-probs -nll, so the reward margin is
 * nll_rejected - nll_chosen. accuracy = fraction of pairs whose reward margin is > 0. */
typedef struct {
    double loss;      /* pref_loss + sft_loss */
    double pref_loss; /* the margin or DPO term */
    double sft_loss;  /* sft_weight * mean token NLL of the chosen answers, 0 when unused */
    double logps_chosen, logps_rejected;
    double rewards_chosen, rewards_rejected;
    double reward_margin;
    double accuracy;
} mt_pref_stats;

typedef enum { MT_PREF_MARGIN, MT_PREF_DPO } mt_pref_kind;

typedef struct {
    mt_pref_kind kind;
    double margin;          /* METEOR margin ranking: relu(nll_c - nll_r + margin) */
    double beta;            /* DPO temperature, > 0 */
    double label_smoothing; /* DPO: conservative-DPO smoothing in [0, 0.5); 0 = plain sigmoid */
    double sft_weight;      /* lambda of the optional SFT term; 0 = none */
} mt_pref_params;

/* METEOR's margin ranking loss mean_i relu(nll_c - nll_r + margin), nll = -lp/count. Writes
 * dL/dlp to d_chosen/d_rejected (n_pairs each); relu'(0) = 0 as in PyTorch. Fills every field
 * of *stats except sft_loss (0). */
mt_status mt_margin_loss(const mt_pref_batch *b, double margin, double *d_chosen,
                         double *d_rejected, mt_pref_stats *stats);

/* DPO sigmoid loss mean_i [-(1-ls) logsigmoid(beta z) - ls logsigmoid(-beta z)] with
 * z = (lp_c - ref_c) - (lp_r - ref_r): TRL's "sigmoid" loss (ls = 0) and its conservative
 * variant. Writes dL/dlp and fills *stats as mt_margin_loss does. */
mt_status mt_dpo_loss(const mt_pref_batch *b, double beta, double label_smoothing, double *d_chosen,
                      double *d_rejected, mt_pref_stats *stats);

/* Adds weight * (-sum lp_chosen / sum n_chosen) -- the mean NLL over all chosen answer tokens,
 * TRL's "sft" term -- to stats->sft_loss and stats->loss and its gradient to d_chosen. */
mt_status mt_sft_term(const mt_pref_batch *b, double weight, double *d_chosen,
                      mt_pref_stats *stats);

/* The selected preference loss plus, when p->sft_weight != 0, the SFT term. */
mt_status mt_pref_loss(const mt_pref_params *p, const mt_pref_batch *b, double *d_chosen,
                       double *d_rejected, mt_pref_stats *stats);

#endif
