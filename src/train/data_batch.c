/* Grouping examples into batches: a seeded shuffle per epoch, then greedy filling up to a
 * count and/or token budget. The engine lays sequences end to end, so a batch is only a
 * list of indices. */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "train/data.h"

static int example_tokens(const mt_dataset *d, int i) {
    return d->kind == MT_DATA_PREF ? d->pref[i].chosen.n + d->pref[i].rejected.n : d->sft[i].n;
}

/* Uniform in [0, bound) without modulo bias: draws in the short tail are redrawn. */
static uint64_t below(mt_rng *r, uint64_t bound) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do x = mt_rng_next(r);
    while (x >= limit);
    return x % bound;
}

/* Each epoch has its own stream, derived from (seed, epoch) alone, so epoch k's order can
 * be rebuilt without replaying epochs 0..k-1. */
static void shuffle(int *order, int n, uint64_t seed, int epoch) {
    mt_rng r;
    mt_rng_seed(&r, seed ^ (0xd1b54a32d192ed03ull * ((uint64_t)epoch + 1)));
    for (int i = n - 1; i > 0; i--) {
        int j = (int)below(&r, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static int fits(const mt_batch_opts *o, int count, long long tokens, int next_tokens) {
    if (count == 0) return 1;
    if (o->batch_size > 0 && count >= o->batch_size) return 0;
    return o->max_batch_tokens <= 0 || tokens + next_tokens <= o->max_batch_tokens;
}

mt_status mt_batch_plan(const mt_dataset *d, const mt_batch_opts *o, int epoch, mt_batches *out) {
    memset(out, 0, sizeof *out);
    if (o->batch_size < 0 || o->max_batch_tokens < 0 || (!o->batch_size && !o->max_batch_tokens))
        return mt_fail(MT_ERR_ARG,
                       "batching needs a batch size >= 1 or a token budget >= 1 "
                       "(got %d and %d)",
                       o->batch_size, o->max_batch_tokens);
    if (epoch < 0) return mt_fail(MT_ERR_ARG, "batching: epoch %d is negative", epoch);
    out->epoch = epoch;
    out->order = malloc(sizeof(int) * (size_t)(d->n > 0 ? d->n : 1));
    out->start = malloc(sizeof(int) * (size_t)(d->n + 1));
    if (!out->order || !out->start) {
        mt_batches_free(out);
        return mt_fail(MT_ERR_NOMEM, "batching: out of memory");
    }
    for (int i = 0; i < d->n; i++) out->order[i] = i;
    if (o->shuffle) shuffle(out->order, d->n, o->seed, epoch);
    int count = 0;
    long long tokens = 0;
    for (int k = 0; k < d->n; k++) {
        int t = example_tokens(d, out->order[k]);
        if (!fits(o, count, tokens, t)) {
            out->start[out->n_batches++] = k - count;
            count = 0, tokens = 0;
        }
        count++;
        tokens += t;
    }
    if (count) out->start[out->n_batches++] = d->n - count;
    out->start[out->n_batches] = d->n;
    return MT_OK;
}

void mt_batches_free(mt_batches *b) {
    free(b->order);
    free(b->start);
    memset(b, 0, sizeof *b);
}

const int *mt_batch_indices(const mt_batches *b, int i, int *n) {
    if (i < 0 || i >= b->n_batches) {
        *n = 0;
        return NULL;
    }
    *n = b->start[i + 1] - b->start[i];
    return b->order + b->start[i];
}

void mt_data_pos_advance(mt_data_pos *pos, const mt_batches *b) {
    if (++pos->batch >= b->n_batches) {
        pos->epoch++;
        pos->batch = 0;
    }
}
