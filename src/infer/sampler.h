/* Token sampling: repetition penalty, temperature, top-k, top-p, min-p (applied in
 * that order, as Hugging Face generate does), or greedy when temperature is 0. */
#ifndef MT_INFER_SAMPLER_H
#define MT_INFER_SAMPLER_H

#include <stdint.h>

#include "core/rng.h"
#include "core/status.h"

typedef struct {
    float temperature;    /* 0 = greedy */
    int top_k;            /* 0 = off */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off */
    float repeat_penalty; /* 1 = off */
    int repeat_last_n;    /* tokens of history the penalty looks at; -1 = all */
    uint64_t seed;
} mt_sampler_params;

typedef struct {
    mt_sampler_params p;
    mt_rng rng;
    int n_vocab;
    int32_t *idx;
    float *prob;
    unsigned char *seen;
} mt_sampler;

/* Greedy defaults. */
mt_sampler_params mt_sampler_defaults(void);
mt_status mt_sampler_params_validate(const mt_sampler_params *p);
/* n_vocab: the ids it picks from, the first n_vocab logits of a row; a row may be longer
 * (padded embedding rows, infer/vocab.h) and the rest of it is never read. */
mt_status mt_sampler_init(mt_sampler *s, const mt_sampler_params *p, int n_vocab);
void mt_sampler_free(mt_sampler *s);
/* Picks the next token; logits are modified in place. */
int32_t mt_sampler_sample(mt_sampler *s, float *logits, const int32_t *history, int n_history);

#endif
