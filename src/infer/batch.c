#include "infer/batch.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "infer/seq.h"
#include "model/forward.h"

typedef struct {
    int item; /* -1: free */
    int pos;  /* position of the token to feed next */
    int32_t next;
    mt_seq q;
} slot;

typedef struct {
    const mt_model *m;
    const mt_tokenizer *tok;
    const mt_batch_item *items;
    const mt_gen_params *p;
    mt_kv_cache kv;
    slot *slots;
    int n_slots, n_ctx;
    float *logits; /* n_slots x vocab */
    int32_t *tokens;
    int *slot_ids, *pos;
    int *admitted; /* slots filled by the current admission */
    mt_batch_done_fn done;
    void *user;
    mt_batch_stats *stats;
} batch;

static mt_status finish(batch *b, slot *s) {
    mt_gen_result r;
    memset(&r, 0, sizeof r);
    mt_status st = mt_seq_result(&s->q, &r);
    if (!st) {
        b->stats->n_generated += r.n_tokens;
        if (b->done) st = b->done(b->user, s->item, &r);
    }
    mt_gen_result_free(&r);
    mt_seq_free(&s->q);
    s->item = -1;
    return st;
}

/* Most prompt tokens prefilled in one forward pass: bounds the pass's activations (about
 * 33 KiB per token for SmolLM2-135M) while 16 short prompts still go through together,
 * which passes over the weights once instead of 16 times. */
enum { PREFILL_TOKENS = 2048 };

/* Prefills waiting items into free slots, as many as one pass of PREFILL_TOKENS takes (at
 * least one), and samples each one's first token. */
static mt_status admit_waiting(batch *b, int n_items, int *next_item) {
    int n_new = 0, n_tok = 0;
    mt_status st = MT_OK;
    for (int k = 0; k < b->n_slots && *next_item < n_items; k++) {
        slot *s = &b->slots[k];
        if (s->item >= 0) continue;
        const int i = *next_item;
        const mt_batch_item *it = &b->items[i];
        if (it->n_prompt <= 0) return mt_fail(MT_ERR_ARG, "batch item %d has an empty prompt", i);
        if (n_new && n_tok + it->n_prompt > PREFILL_TOKENS) break;
        st = mt_seq_init(&s->q, b->m, b->tok, b->p,
                         it->constraint ? it->constraint : b->p->constraint, it->prompt,
                         it->n_prompt, b->n_ctx, it->own_seed ? it->seed : (uint64_t)i);
        if (st) return mt_fail_prefix(st, "batch item");
        s->item = i;
        (*next_item)++;
        b->admitted[n_new++] = k;
        n_tok += it->n_prompt;
    }
    if (!n_new) return MT_OK;
    int32_t *toks = mt_calloc((size_t)n_tok, sizeof *toks);
    int *slots = mt_calloc((size_t)n_tok, sizeof *slots),
        *pos = mt_calloc((size_t)n_tok, sizeof *pos);
    st = (!toks || !slots || !pos) ? MT_ERR_NOMEM : MT_OK;
    for (int j = 0, t = 0; !st && j < n_new; j++) {
        const mt_batch_item *it = &b->items[b->slots[b->admitted[j]].item];
        memcpy(toks + t, it->prompt, (size_t)it->n_prompt * sizeof *toks);
        for (int u = 0; u < it->n_prompt; u++, t++) slots[t] = b->admitted[j], pos[t] = u;
    }
    if (!st)
        st = mt_forward_slots(b->m, &b->kv, toks, slots, pos, n_tok, b->logits, MT_LOGITS_RUN_LAST);
    free(toks);
    free(slots);
    free(pos);
    b->stats->n_prompts += n_new;
    b->stats->n_prompt_tokens += n_tok;
    for (int j = 0; !st && j < n_new; j++) {
        slot *s = &b->slots[b->admitted[j]];
        s->pos = b->items[s->item].n_prompt;
        if (!s->q.done)
            st = mt_seq_step(&s->q, b->logits + (size_t)j * b->m->cfg.n_vocab, &s->next);
        if (!st && s->q.done) st = finish(b, s);
    }
    return st;
}

/* One forward pass over every active slot's pending token, then one sampling step each. */
static mt_status decode_step(batch *b) {
    int n = 0;
    for (int k = 0; k < b->n_slots; k++) {
        slot *s = &b->slots[k];
        if (s->item < 0) continue;
        b->tokens[n] = s->next;
        b->slot_ids[n] = k;
        b->pos[n++] = s->pos;
    }
    if (!n) return MT_OK;
    b->stats->n_steps++;
    b->stats->n_step_tokens += n;
    mt_status st =
        mt_forward_slots(b->m, &b->kv, b->tokens, b->slot_ids, b->pos, n, b->logits, MT_LOGITS_ALL);
    for (int j = 0; !st && j < n; j++) {
        slot *s = &b->slots[b->slot_ids[j]];
        s->pos++;
        st = mt_seq_step(&s->q, b->logits + (size_t)j * b->m->cfg.n_vocab, &s->next);
        if (!st && s->q.done) st = finish(b, s);
    }
    return st;
}

static int context_for(const mt_model *m, const mt_batch_item *items, int n,
                       const mt_gen_params *p) {
    if (p->n_ctx > 0) return p->n_ctx;
    int longest = 0;
    for (int i = 0; i < n; i++) longest = items[i].n_prompt > longest ? items[i].n_prompt : longest;
    const int want = longest + p->max_tokens + 1;
    return want < m->cfg.n_ctx_train ? want : m->cfg.n_ctx_train;
}

mt_status mt_generate_batch(const mt_model *m, const mt_tokenizer *tok, const mt_batch_item *items,
                            int n_items, const mt_gen_params *p, int n_slots, mt_batch_done_fn done,
                            void *user, mt_batch_stats *stats) {
    memset(stats, 0, sizeof *stats);
    if (n_slots <= 0) return mt_fail(MT_ERR_ARG, "the batch needs at least one slot");
    if (n_slots > n_items) n_slots = n_items > 0 ? n_items : 1;
    mt_gen_params quiet = *p;
    quiet.on_text = NULL;
    batch b = {.m = m,
               .tok = tok,
               .items = items,
               .p = &quiet,
               .n_slots = n_slots,
               .done = done,
               .user = user,
               .stats = stats};
    b.n_ctx = context_for(m, items, n_items, p);
    mt_status st = mt_kv_cache_init_slots(&b.kv, &m->cfg, n_slots, b.n_ctx);
    if (st) return st;
    b.slots = mt_calloc((size_t)n_slots, sizeof *b.slots);
    b.logits = mt_calloc((size_t)n_slots * m->cfg.n_vocab, sizeof *b.logits);
    b.tokens = mt_calloc((size_t)n_slots, sizeof *b.tokens);
    b.slot_ids = mt_calloc((size_t)n_slots, sizeof *b.slot_ids);
    b.pos = mt_calloc((size_t)n_slots, sizeof *b.pos);
    b.admitted = mt_calloc((size_t)n_slots, sizeof *b.admitted);
    if (!b.slots || !b.logits || !b.tokens || !b.slot_ids || !b.pos || !b.admitted)
        st = MT_ERR_NOMEM;
    for (int k = 0; b.slots && k < n_slots; k++) b.slots[k].item = -1;
    const double t0 = mt_now_seconds();
    int next_item = 0;
    while (!st) {
        const double t_admit = mt_now_seconds();
        st = admit_waiting(&b, n_items, &next_item);
        const double t_step = mt_now_seconds();
        stats->prefill_seconds += t_step - t_admit;
        if (st) break;
        int active = 0;
        for (int k = 0; k < n_slots; k++) active += b.slots[k].item >= 0;
        if (!active && next_item >= n_items) break;
        st = decode_step(&b);
        stats->decode_seconds += mt_now_seconds() - t_step;
    }
    stats->seconds = mt_now_seconds() - t0;
    for (int k = 0; b.slots && k < n_slots; k++)
        if (b.slots[k].item >= 0) mt_seq_free(&b.slots[k].q);
    free(b.slots);
    free(b.logits);
    free(b.tokens);
    free(b.slot_ids);
    free(b.pos);
    free(b.admitted);
    mt_kv_cache_free(&b.kv);
    return st;
}
