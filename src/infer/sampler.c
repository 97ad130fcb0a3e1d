#include "infer/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kernels/topk.h"
#include "kernels/vexp.h"

mt_sampler_params mt_sampler_defaults(void) {
    mt_sampler_params p = {.temperature = 0.0f,
                           .top_k = 0,
                           .top_p = 1.0f,
                           .min_p = 0.0f,
                           .repeat_penalty = 1.0f,
                           .repeat_last_n = 64,
                           .seed = 42};
    return p;
}

mt_status mt_sampler_params_validate(const mt_sampler_params *p) {
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return mt_fail(MT_ERR_ARG, "temperature must be >= 0 (got %g)", p->temperature);
    if (p->top_k < 0) return mt_fail(MT_ERR_ARG, "top-k must be >= 0 (got %d)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return mt_fail(MT_ERR_ARG, "top-p must be in (0, 1] (got %g)", p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p < 1.0f))
        return mt_fail(MT_ERR_ARG, "min-p must be in [0, 1) (got %g)", p->min_p);
    if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty))
        return mt_fail(MT_ERR_ARG, "repetition penalty must be > 0 (got %g)", p->repeat_penalty);
    return MT_OK;
}

mt_status mt_sampler_init(mt_sampler *s, const mt_sampler_params *p, int n_vocab) {
    memset(s, 0, sizeof *s);
    mt_status st = mt_sampler_params_validate(p);
    if (st) return st;
    s->p = *p;
    s->n_vocab = n_vocab;
    mt_rng_seed(&s->rng, p->seed);
    s->idx = mt_calloc((size_t)n_vocab, sizeof *s->idx);
    s->prob = mt_calloc((size_t)n_vocab, sizeof *s->prob);
    s->seen = mt_calloc((size_t)n_vocab, 1);
    if (!s->idx || !s->prob || !s->seen) {
        mt_sampler_free(s);
        return MT_ERR_NOMEM;
    }
    return MT_OK;
}

void mt_sampler_free(mt_sampler *s) {
    free(s->idx);
    free(s->prob);
    free(s->seen);
    s->idx = NULL;
    s->prob = NULL;
    s->seen = NULL;
}

static void apply_repeat_penalty(mt_sampler *s, float *logits, const int32_t *hist, int n) {
    const float pen = s->p.repeat_penalty;
    if (pen == 1.0f || n <= 0) return;
    int from = s->p.repeat_last_n < 0 || s->p.repeat_last_n > n ? 0 : n - s->p.repeat_last_n;
    for (int i = from; i < n; i++) {
        const int32_t t = hist[i];
        if (t < 0 || t >= s->n_vocab || s->seen[t]) continue;
        s->seen[t] = 1;
        logits[t] = logits[t] > 0.0f ? logits[t] / pen : logits[t] * pen;
    }
    for (int i = from; i < n; i++)
        if (hist[i] >= 0 && hist[i] < s->n_vocab) s->seen[hist[i]] = 0;
}

static int by_logit_desc(const void *a, const void *b, void *ctx) {
    const float *logits = ctx;
    const float x = logits[*(const int32_t *)a], y = logits[*(const int32_t *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

/* Returns how many candidates survive top-k / top-p / min-p; prob[] holds their softmax. */
static int filter_candidates(mt_sampler *s, const float *logits) {
    int n = s->n_vocab;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        /* Selecting k candidates costs O(vocab log k); sorting the whole vocabulary for
         * every token took a third of batched sampling time. Same order as the sort. */
        n = mt_topk(logits, n, s->p.top_k, s->idx, s->prob);
    } else {
        for (int i = 0; i < n; i++) s->idx[i] = i;
        qsort_r(s->idx, (size_t)n, sizeof *s->idx, by_logit_desc, (void *)logits);
    }
    const float mx = logits[s->idx[0]];
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += s->prob[i] = expf(logits[s->idx[i]] - mx);
    for (int i = 0; i < n; i++) s->prob[i] = (float)(s->prob[i] / sum);
    if (s->p.top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < n; i++) {
            cum += s->prob[i];
            if (cum >= s->p.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0.0f) {
        const float floor = s->prob[0] * s->p.min_p;
        int keep = 1;
        while (keep < n && s->prob[keep] >= floor) keep++;
        n = keep;
    }
    return n;
}

int32_t mt_sampler_sample(mt_sampler *s, float *logits, const int32_t *history, int n_history) {
    apply_repeat_penalty(s, logits, history, n_history);
    if (s->p.temperature <= 0.0f) return mt_row_argmax(logits, s->n_vocab);
    const float inv_t = 1.0f / s->p.temperature;
    for (int i = 0; i < s->n_vocab; i++) logits[i] *= inv_t;
    const int n = filter_candidates(s, logits);
    double total = 0.0;
    for (int i = 0; i < n; i++) total += s->prob[i];
    const double r = mt_rng_uniform(&s->rng) * total;
    double cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += s->prob[i];
        if (r < cum) return s->idx[i];
    }
    return s->idx[n - 1];
}
