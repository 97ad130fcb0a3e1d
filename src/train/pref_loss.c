/* Sequence-level preference losses on per-sequence log-prob sums. They return dL/dlp per
 * sequence; the trainer turns that into per-token dlogits through mt_ce_rows' grad_scale
 * (grad_scale = -dL/dlp), so no loss here ever sees a logit. */
#include "train/loss.h"

#include <math.h>

static mt_status check_batch(const mt_pref_batch *b, int need_ref) {
    if (!b) return mt_fail(MT_ERR_ARG, "preference loss: null batch");
    if (b->n_pairs < 1) return mt_fail(MT_ERR_ARG, "preference loss: empty batch");
    if (!b->lp_chosen || !b->lp_rejected || !b->n_chosen || !b->n_rejected)
        return mt_fail(MT_ERR_ARG, "preference loss: missing log-probs or token counts");
    if (need_ref && (!b->ref_chosen || !b->ref_rejected))
        return mt_fail(MT_ERR_ARG, "DPO loss: reference log-probs missing");
    for (int i = 0; i < b->n_pairs; i++)
        if (b->n_chosen[i] < 1 || b->n_rejected[i] < 1)
            return mt_fail(MT_ERR_ARG,
                           "preference loss: pair %d has an empty answer (%lld/%lld tokens)", i,
                           (long long)b->n_chosen[i], (long long)b->n_rejected[i]);
    return MT_OK;
}

static mt_status check_outputs(const double *d_chosen, const double *d_rejected,
                               const mt_pref_stats *stats) {
    if (!d_chosen || !d_rejected || !stats)
        return mt_fail(MT_ERR_ARG, "preference loss: null output");
    return MT_OK;
}

/* Running sums of the logged quantities. */
typedef struct {
    double lp_c, lp_r, r_c, r_r, margin, wins;
} pref_sums;

static void add_pair(pref_sums *s, double lp_c, double lp_r, double r_c, double r_r) {
    s->lp_c += lp_c, s->lp_r += lp_r;
    s->r_c += r_c, s->r_r += r_r;
    s->margin += r_c - r_r;
    s->wins += r_c - r_r > 0;
}

static void finish_stats(const pref_sums *s, int n, double loss_sum, mt_pref_stats *out) {
    const double inv = 1.0 / n;
    *out = (mt_pref_stats){
        .loss = loss_sum * inv,
        .pref_loss = loss_sum * inv,
        .logps_chosen = s->lp_c * inv,
        .logps_rejected = s->lp_r * inv,
        .rewards_chosen = s->r_c * inv,
        .rewards_rejected = s->r_r * inv,
        .reward_margin = s->margin * inv,
        .accuracy = s->wins * inv,
    };
}

mt_status mt_margin_loss(const mt_pref_batch *b, double margin, double *d_chosen,
                         double *d_rejected, mt_pref_stats *stats) {
    mt_status st = check_batch(b, 0);
    if (!st) st = check_outputs(d_chosen, d_rejected, stats);
    if (st) return st;
    if (!isfinite(margin)) return mt_fail(MT_ERR_ARG, "margin loss: bad margin %g", margin);
    const double inv = 1.0 / b->n_pairs;
    double loss = 0;
    pref_sums sums = {0};
    for (int i = 0; i < b->n_pairs; i++) {
        const double nc = (double)b->n_chosen[i], nr = (double)b->n_rejected[i];
        const double nll_c = -b->lp_chosen[i] / nc, nll_r = -b->lp_rejected[i] / nr;
        const double h = nll_c - nll_r + margin;
        /* PyTorch's relu passes gradient only where its input is strictly positive. */
        const int active = h > 0;
        loss += active ? h : 0;
        d_chosen[i] = active ? -inv / nc : 0;
        d_rejected[i] = active ? inv / nr : 0;
        add_pair(&sums, b->lp_chosen[i], b->lp_rejected[i], -nll_c, -nll_r);
    }
    finish_stats(&sums, b->n_pairs, loss, stats);
    return MT_OK;
}

/* log(sigmoid(x)) without overflow for large |x|. */
static double log_sigmoid(double x) {
    return x < 0 ? x - log1p(exp(x)) : -log1p(exp(-x));
}

static double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    const double e = exp(x);
    return e / (1.0 + e);
}

mt_status mt_dpo_loss(const mt_pref_batch *b, double beta, double label_smoothing, double *d_chosen,
                      double *d_rejected, mt_pref_stats *stats) {
    mt_status st = check_batch(b, 1);
    if (!st) st = check_outputs(d_chosen, d_rejected, stats);
    if (st) return st;
    if (!(beta > 0 && isfinite(beta))) return mt_fail(MT_ERR_ARG, "DPO loss: beta %g", beta);
    const double ls = label_smoothing;
    if (!(ls >= 0 && ls < 0.5))
        return mt_fail(MT_ERR_ARG, "DPO loss: label smoothing %g outside [0, 0.5)", ls);
    const double inv = 1.0 / b->n_pairs;
    double loss = 0;
    pref_sums sums = {0};
    for (int i = 0; i < b->n_pairs; i++) {
        const double ratio_c = b->lp_chosen[i] - b->ref_chosen[i];
        const double ratio_r = b->lp_rejected[i] - b->ref_rejected[i];
        const double u = beta * (ratio_c - ratio_r);
        loss += -(1 - ls) * log_sigmoid(u) - ls * log_sigmoid(-u);
        /* d/du: -(1-ls) sigmoid(-u) + ls sigmoid(u); du/dlp_c = beta = -du/dlp_r. */
        const double g = beta * inv * (-(1 - ls) * sigmoid(-u) + ls * sigmoid(u));
        d_chosen[i] = g;
        d_rejected[i] = -g;
        add_pair(&sums, b->lp_chosen[i], b->lp_rejected[i], beta * ratio_c, beta * ratio_r);
    }
    finish_stats(&sums, b->n_pairs, loss, stats);
    return MT_OK;
}

mt_status mt_sft_term(const mt_pref_batch *b, double weight, double *d_chosen,
                      mt_pref_stats *stats) {
    mt_status st = check_batch(b, 0);
    if (st) return st;
    if (!d_chosen || !stats) return mt_fail(MT_ERR_ARG, "SFT term: null output");
    if (!(weight >= 0 && isfinite(weight)))
        return mt_fail(MT_ERR_ARG, "SFT term: bad weight %g", weight);
    double lp = 0, tokens = 0;
    for (int i = 0; i < b->n_pairs; i++) lp += b->lp_chosen[i], tokens += (double)b->n_chosen[i];
    const double term = weight * (-lp / tokens);
    for (int i = 0; i < b->n_pairs; i++) d_chosen[i] += -weight / tokens;
    stats->sft_loss += term;
    stats->loss += term;
    return MT_OK;
}

mt_status mt_pref_loss(const mt_pref_params *p, const mt_pref_batch *b, double *d_chosen,
                       double *d_rejected, mt_pref_stats *stats) {
    if (!p) return mt_fail(MT_ERR_ARG, "preference loss: null parameters");
    mt_status st;
    switch (p->kind) {
    case MT_PREF_MARGIN:
        st = mt_margin_loss(b, p->margin, d_chosen, d_rejected, stats);
        break;
    case MT_PREF_DPO:
        st = mt_dpo_loss(b, p->beta, p->label_smoothing, d_chosen, d_rejected, stats);
        break;
    default:
        return mt_fail(MT_ERR_ARG, "preference loss: unknown kind %d", (int)p->kind);
    }
    if (st || p->sft_weight == 0) return st;
    return mt_sft_term(b, p->sft_weight, d_chosen, stats);
}
