/* Token cross-entropy over logits rows. The gradient overwrites the logits so a chunk of rows
 * costs no extra [rows x vocab] buffer; log-sum-exp subtracts the row max so huge logits cannot
 * overflow, and sums run in double. */
#include "train/loss.h"

#include <math.h>
#include <string.h>

#include "core/pool.h"

/* Rows are processed in blocks: parallel within a block, then the block's per-row values are
 * added in row order, so the loss does not depend on the thread count. */
#define BLOCK 256
/* Below this many logits in a block a parallel region costs more than it saves. */
#define PAR_MIN 65536

static mt_status check_rows(const void *logits, int n_rows, int vocab, const int32_t *targets) {
    if (n_rows < 0 || vocab < 1 || (n_rows > 0 && (!logits || !targets)))
        return mt_fail(MT_ERR_ARG, "cross-entropy: bad shape %d x %d", n_rows, vocab);
    for (int r = 0; r < n_rows; r++)
        if (targets[r] != MT_IGNORE_INDEX && (targets[r] < 0 || targets[r] >= vocab))
            return mt_fail(MT_ERR_ARG, "cross-entropy: row %d target %d outside vocab %d", r,
                           (int)targets[r], vocab);
    return MT_OK;
}

static float row_max(const float *x, int n) {
    float mx = x[0];
#pragma omp simd reduction(max : mx)
    for (int j = 1; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

static double row_sumexp(const float *x, int n, float mx) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++) s += expf(x[j] - mx);
    return s;
}

/* Replaces x by exp(x - mx) and returns the sum. */
static double row_exp_inplace(float *x, int n, float mx) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++) {
        const float e = expf(x[j] - mx);
        x[j] = e;
        s += e;
    }
    return s;
}

/* One row: log p(target), with the row overwritten by scale * (softmax - onehot). */
static double ce_row(float *x, int vocab, int32_t t, float scale) {
    const float xt = x[t];
    const float mx = row_max(x, vocab);
    const double s = row_exp_inplace(x, vocab, mx);
    const float k = (float)(scale / s);
#pragma omp simd
    for (int j = 0; j < vocab; j++) x[j] *= k;
    x[t] -= scale;
    return (double)xt - ((double)mx + log(s));
}

/* Runs fn over n rows of `vocab` logits, on the threads when the rows are big enough. */
static void rows_in_parallel(int n, int vocab, mt_pool_range_fn fn, void *ctx) {
    if ((int64_t)n * vocab >= PAR_MIN)
        mt_pool_for(n, 1, fn, ctx);
    else
        fn(ctx, 0, n);
}

typedef struct {
    float *logits;
    int vocab, r0;
    const int32_t *targets;
    const float *row_scale;
    float grad_scale;
    double *lp; /* per row of the block */
} ce_job;

static void ce_range(void *ctx, int64_t i0, int64_t i1) {
    const ce_job *j = ctx;
    for (int64_t i = i0; i < i1; i++) {
        const int r = j->r0 + (int)i;
        float *x = j->logits + (int64_t)r * j->vocab;
        if (j->targets[r] == MT_IGNORE_INDEX) {
            memset(x, 0, (size_t)j->vocab * sizeof(float));
            j->lp[i] = 0;
            continue;
        }
        const float scale = j->row_scale ? j->row_scale[r] * j->grad_scale : j->grad_scale;
        j->lp[i] = ce_row(x, j->vocab, j->targets[r], scale);
    }
}

mt_status mt_ce_rows_weighted(float *logits, int n_rows, int vocab, const int32_t *targets,
                              const float *row_scale, float grad_scale, double *loss_sum,
                              double *logprob_out) {
    mt_status st = check_rows(logits, n_rows, vocab, targets);
    if (st) return st;
    double total = 0, lp[BLOCK];
    ce_job j = {.logits = logits,
                .vocab = vocab,
                .targets = targets,
                .row_scale = row_scale,
                .grad_scale = grad_scale,
                .lp = lp};
    for (int r0 = 0; r0 < n_rows; r0 += BLOCK) {
        const int nb = n_rows - r0 < BLOCK ? n_rows - r0 : BLOCK;
        j.r0 = r0;
        rows_in_parallel(nb, vocab, ce_range, &j);
        for (int i = 0; i < nb; i++) {
            total -= lp[i];
            if (logprob_out) logprob_out[r0 + i] = lp[i];
        }
    }
    if (loss_sum) *loss_sum = total;
    return MT_OK;
}

mt_status mt_ce_rows(float *logits, int n_rows, int vocab, const int32_t *targets, float grad_scale,
                     double *loss_sum, double *logprob_out) {
    return mt_ce_rows_weighted(logits, n_rows, vocab, targets, NULL, grad_scale, loss_sum,
                               logprob_out);
}

typedef struct {
    const float *logits;
    int vocab;
    const int32_t *targets;
    double *out;
} target_job;

static void target_range(void *ctx, int64_t r0, int64_t r1) {
    const target_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->logits + r * j->vocab;
        if (j->targets[r] == MT_IGNORE_INDEX) {
            j->out[r] = 0;
            continue;
        }
        const float mx = row_max(x, j->vocab);
        j->out[r] = (double)x[j->targets[r]] - ((double)mx + log(row_sumexp(x, j->vocab, mx)));
    }
}

mt_status mt_target_logprobs(const float *logits, int n_rows, int vocab, const int32_t *targets,
                             double *logprob_out, double *sum_out) {
    mt_status st = check_rows(logits, n_rows, vocab, targets);
    if (st) return st;
    if (n_rows > 0 && !logprob_out) return mt_fail(MT_ERR_ARG, "target log-probs: null output");
    target_job j = {.logits = logits, .vocab = vocab, .targets = targets, .out = logprob_out};
    rows_in_parallel(n_rows, vocab, target_range, &j);
    if (sum_out) {
        double s = 0;
        for (int r = 0; r < n_rows; r++) s += logprob_out[r];
        *sum_out = s;
    }
    return MT_OK;
}
