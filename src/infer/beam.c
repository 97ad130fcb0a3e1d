#include "infer/beam.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "infer/textbuf.h"
#include "infer/vocab.h"
#include "kernels/topk.h"
#include "model/forward.h"

#define MAX_BEAMS 1024
#define MAX_STOPS 64
#define PIECE_CAP 4096

mt_beam_params mt_beam_defaults(void) {
    mt_beam_params p;
    memset(&p, 0, sizeof p);
    p.n_beams = 4;
    p.length_penalty = 1.0f;
    p.early_stopping = MT_BEAM_STOP_HEURISTIC;
    p.max_tokens = 256;
    return p;
}

mt_status mt_beam_params_validate(const mt_beam_params *p) {
    if (p->n_beams < 1 || p->n_beams > MAX_BEAMS)
        return mt_fail(MT_ERR_ARG, "beams must be in 1..%d (got %d)", MAX_BEAMS, p->n_beams);
    if (!isfinite(p->length_penalty))
        return mt_fail(MT_ERR_ARG, "length penalty must be finite (got %g)", p->length_penalty);
    if (p->early_stopping < MT_BEAM_STOP_HEURISTIC || p->early_stopping > MT_BEAM_STOP_NEVER)
        return mt_fail(MT_ERR_ARG, "unknown early-stopping mode %d", (int)p->early_stopping);
    if (p->max_tokens <= 0) return mt_fail(MT_ERR_ARG, "max tokens must be positive");
    if (p->n_ctx < 0) return mt_fail(MT_ERR_ARG, "context size must be positive");
    if (p->n_stop_tokens < 0 || p->n_stop_tokens > MAX_STOPS || p->n_stop_strings < 0)
        return mt_fail(MT_ERR_ARG, "bad stop token or stop string count");
    for (int i = 0; i < p->n_stop_strings; i++)
        if (!p->stop_strings[i] || !p->stop_strings[i][0])
            return mt_fail(MT_ERR_ARG, "stop strings must be non-empty");
    return MT_OK;
}

void mt_beam_result_free(mt_beam_result *r) {
    for (int i = 0; i < r->n_hyps; i++) {
        free(r->hyps[i].tokens);
        free(r->hyps[i].text);
    }
    free(r->hyps);
    memset(r, 0, sizeof *r);
}

/* A continuation of a running beam by one token. */
typedef struct {
    int beam;
    int32_t token;
    double total; /* running sum of log-probs including this token */
} cand;

/* The search of one prompt. Its beams live in KV slots [base, base + N) of a cache
 * shared with the prompts searched beside it; slot numbers below are relative to base. */
typedef struct {
    const mt_model *m;
    const mt_tokenizer *tok;
    const mt_beam_params *p;
    int index; /* the prompt's index; -1: no prompt (a free group of slots) */
    int base;
    mt_kv_cache *kv;
    int t;     /* the current step: tokens every running beam has */
    int N;     /* beams */
    int K;     /* candidates kept per step (transformers' beams_to_keep) */
    int V;     /* logits per row: the model's embedding rows */
    int n_ids; /* ids a continuation may take: the tokenizer's (infer/vocab.h) */
    int L;     /* longest hypothesis: max_tokens, or less where the context ends first */
    int n_prompt;
    mt_stop_reason at_limit; /* why a hypothesis of L tokens ends */
    int32_t stops[MAX_STOPS + 1];
    int n_stops;
    size_t max_stop_len;

    /* Running beams, double-buffered because a step rebuilds them from their parents.
     * Beam i's generated tokens are tok_*[i * L ...]. */
    int nr;
    int32_t *tok_run, *tok_next;
    double *score_run, *score_next;
    int *slot_run, *slot_next;
    int *parent;
    mt_textbuf *text_run, *text_next; /* bytes so far, only with stop strings */

    /* What each KV slot holds: slot_len[s] generated rows (tokens slot_tok[s * L ...])
     * after the prompt, or -1 when the prompt rows were never copied in. */
    int32_t *slot_tok;
    int *slot_len;

    /* With a JSON constraint: each running beam's parse, double-buffered like the beams,
     * and the parse after each of the best K candidates' tokens. */
    mt_gmatch **match_run, **match_next, **match_cand;

    cand *pool;    /* N x K: each beam's best K continuations */
    int *reason;   /* stop reason of each of the best K candidates (0 = runs on) */
    float *logits; /* the running beams' rows of the last forward pass (not owned) */
    int32_t *top_idx;
    float *top_val;
    char *piece;

    mt_beam_hyp *fin; /* finished hypotheses, best first */
    int n_fin;
    long long rows_copied;
    double prefill_seconds; /* of the pass that prefilled the prompt */
    double decode_from;     /* when that pass ended */
} search;

static int is_stop_token(const search *s, int32_t t) {
    for (int i = 0; i < s->n_stops; i++)
        if (s->stops[i] == t) return 1;
    return 0;
}

static void search_free(search *s) {
    free(s->tok_run);
    free(s->tok_next);
    free(s->score_run);
    free(s->score_next);
    free(s->slot_run);
    free(s->slot_next);
    free(s->parent);
    for (int i = 0; i < s->N; i++) {
        if (s->text_run) mt_textbuf_free(&s->text_run[i]);
        if (s->text_next) mt_textbuf_free(&s->text_next[i]);
    }
    free(s->text_run);
    free(s->text_next);
    free(s->slot_tok);
    free(s->slot_len);
    free(s->pool);
    free(s->reason);
    free(s->top_idx);
    free(s->top_val);
    free(s->piece);
    for (int i = 0; i < s->N; i++) {
        if (s->match_run) mt_gmatch_free(s->match_run[i]);
        if (s->match_next) mt_gmatch_free(s->match_next[i]);
    }
    for (int i = 0; s->match_cand && i < s->K; i++) mt_gmatch_free(s->match_cand[i]);
    free(s->match_run);
    free(s->match_next);
    free(s->match_cand);
    for (int i = 0; i < s->n_fin; i++) {
        free(s->fin[i].tokens);
        free(s->fin[i].text);
    }
    free(s->fin);
    memset(s, 0, sizeof *s);
    s->index = -1;
}

static mt_status collect_stops(search *s) {
    const mt_beam_params *p = s->p;
    const int32_t eos = s->tok ? mt_tokenizer_eos(s->tok) : -1;
    for (int i = -1; i < p->n_stop_tokens; i++) {
        const int32_t t = i < 0 ? eos : p->stop_tokens[i];
        if (i < 0 && t < 0) continue;
        if (t < 0 || t >= s->n_ids)
            return mt_fail(MT_ERR_ARG, "stop token %d is outside the vocabulary of %d", (int)t,
                           s->n_ids);
        if (!is_stop_token(s, t)) s->stops[s->n_stops++] = t;
    }
    for (int i = 0; i < p->n_stop_strings; i++) {
        const size_t n = strlen(p->stop_strings[i]);
        if (n > s->max_stop_len) s->max_stop_len = n;
    }
    return MT_OK;
}

/* The context a prompt of n_prompt tokens is searched in: p->n_ctx, or room for
 * max_tokens more, capped at the model's training context. */
static int prompt_context(const mt_model *m, const mt_beam_params *p, int n_prompt) {
    if (p->n_ctx > 0) return p->n_ctx;
    const long want = (long)n_prompt + p->max_tokens;
    return want > m->cfg.n_ctx_train ? m->cfg.n_ctx_train : (int)want;
}

static mt_status check_prompt(const mt_model *m, const mt_beam_params *p, int n_prompt) {
    if (n_prompt <= 0) return mt_fail(MT_ERR_ARG, "the prompt is empty");
    const int n_ctx = prompt_context(m, p, n_prompt);
    if (n_prompt >= n_ctx)
        return mt_fail(MT_ERR_ARG, "prompt of %d tokens does not fit the context of %d", n_prompt,
                       n_ctx);
    return MT_OK;
}

/* A search for prompt `index` (checked by check_prompt) in slots [base, base + N) of kv;
 * its prompt rows are prefilled into slot base by the caller. */
static mt_status search_init(search *s, const mt_model *m, const mt_tokenizer *tok,
                             const mt_beam_params *p, int index, int n_prompt, mt_kv_cache *kv,
                             int base) {
    memset(s, 0, sizeof *s);
    s->m = m;
    s->tok = tok;
    s->p = p;
    s->index = index;
    s->kv = kv;
    s->base = base;
    s->N = p->n_beams;
    s->V = m->cfg.n_vocab;
    s->n_prompt = n_prompt;
    mt_status st = mt_decode_vocab(m, tok, &s->n_ids);
    if (!st) st = collect_stops(s);
    if (st) return st;
    if (p->n_stop_strings && !tok) return mt_fail(MT_ERR_ARG, "stop strings need a tokenizer");
    /* As transformers: enough candidates that N of them run on even when every beam's
     * best continuations are stop tokens. */
    s->K = (s->n_stops + 1 > 2 ? s->n_stops + 1 : 2) * s->N;
    const int n_ctx = prompt_context(m, p, n_prompt);
    s->L = p->max_tokens;
    s->at_limit = MT_STOP_LENGTH;
    if (n_prompt + s->L > n_ctx) {
        s->L = n_ctx - n_prompt;
        s->at_limit = MT_STOP_CONTEXT;
    }
    if (n_prompt + s->L > kv->n_ctx)
        return mt_fail(MT_ERR_INTERNAL, "beam search: the KV slots hold %d positions, not %d",
                       kv->n_ctx, n_prompt + s->L);
    const size_t N = (size_t)s->N, L = (size_t)s->L, K = (size_t)s->K;
    s->tok_run = mt_calloc(N * L, sizeof *s->tok_run);
    s->tok_next = mt_calloc(N * L, sizeof *s->tok_next);
    s->score_run = mt_calloc(N, sizeof *s->score_run);
    s->score_next = mt_calloc(N, sizeof *s->score_next);
    s->slot_run = mt_calloc(N, sizeof *s->slot_run);
    s->slot_next = mt_calloc(N, sizeof *s->slot_next);
    s->parent = mt_calloc(N, sizeof *s->parent);
    s->slot_tok = mt_calloc(N * L, sizeof *s->slot_tok);
    s->slot_len = mt_calloc(N, sizeof *s->slot_len);
    s->pool = mt_calloc(N * K, sizeof *s->pool);
    s->reason = mt_calloc(K, sizeof *s->reason);
    s->top_idx = mt_calloc(K, sizeof *s->top_idx);
    s->top_val = mt_calloc(K, sizeof *s->top_val);
    s->fin = mt_calloc(N, sizeof *s->fin);
    if (p->n_stop_strings) {
        s->text_run = mt_calloc(N, sizeof *s->text_run);
        s->text_next = mt_calloc(N, sizeof *s->text_next);
        s->piece = mt_calloc(PIECE_CAP + s->max_stop_len, 1);
        if (!s->text_run || !s->text_next || !s->piece) return MT_ERR_NOMEM;
    }
    if (!s->tok_run || !s->tok_next || !s->score_run || !s->score_next || !s->slot_run ||
        !s->slot_next || !s->parent || !s->slot_tok || !s->slot_len || !s->pool || !s->reason ||
        !s->top_idx || !s->top_val || !s->fin)
        return MT_ERR_NOMEM;
    if (p->constraint) {
        if (p->constraint->index->n != s->n_ids)
            return mt_fail(MT_ERR_ARG,
                           "the JSON constraint was made for %d tokens, the model decodes %d",
                           p->constraint->index->n, s->n_ids);
        s->match_run = mt_calloc(N, sizeof *s->match_run);
        s->match_next = mt_calloc(N, sizeof *s->match_next);
        s->match_cand = mt_calloc(K, sizeof *s->match_cand);
        if (!s->match_run || !s->match_next || !s->match_cand) return MT_ERR_NOMEM;
        const mt_json_constraint *c = p->constraint;
        if ((st = mt_gmatch_new(c->grammar, c->index, c->cache, &s->match_run[0]))) return st;
    }
    /* N slots are enough: every copy of a step reads a parent's slot and writes a slot no
     * child inherits, and all copies finish before the step's forward pass writes. Slot 0
     * gets the prompt; the others hold nothing of this prompt yet, whatever an earlier
     * prompt left in them. */
    for (int i = 1; i < s->N; i++) s->slot_len[i] = -1;
    s->nr = 1; /* the prompt is the one running beam of step 0 */
    return MT_OK;
}

/* Whether appending token t to running beam b completes a stop string. */
static mt_status hits_stop_string(search *s, int b, int32_t t, int *hit) {
    *hit = 0;
    const mt_textbuf *text = &s->text_run[b];
    const size_t keep = text->len < s->max_stop_len ? text->len : s->max_stop_len;
    if (keep) memcpy(s->piece, text->data + text->len - keep, keep);
    size_t n = 0;
    mt_status st = mt_token_bytes(s->tok, t, 0, s->piece + keep, PIECE_CAP, &n);
    if (st) return st;
    /* Only a match ending in the new bytes is new: an earlier one would have ended the beam. */
    for (int i = 0; i < s->p->n_stop_strings && !*hit; i++) {
        const char *stop = s->p->stop_strings[i];
        *hit = memmem(s->piece, keep + n, stop, strlen(stop)) != NULL;
    }
    return MT_OK;
}

static int by_total_desc(const void *a, const void *b, void *arg) {
    const cand *x = a, *y = b;
    const int V = *(const int *)arg;
    if (x->total != y->total) return x->total > y->total ? -1 : 1;
    /* Ties go to the lower flat index (beam * V + token), as an argmax would. */
    const long fx = (long)x->beam * V + x->token, fy = (long)y->beam * V + y->token;
    return (fx > fy) - (fx < fy);
}

/* Leaves in a beam's logits row only the tokens its parse allows next; the stop tokens
 * only once its document is complete. */
static mt_status constrain_row(const search *s, mt_gmatch *m, float *row) {
    float kept[MAX_STOPS + 1];
    const int can_end = mt_gmatch_can_end(m);
    for (int i = 0; can_end && i < s->n_stops; i++) kept[i] = row[s->stops[i]];
    mt_status st = mt_gmatch_mask_logits(m, row);
    for (int i = 0; !st && can_end && i < s->n_stops; i++) row[s->stops[i]] = kept[i];
    return st;
}

/* The best K continuations over every running beam, in s->pool[0..*n). */
static mt_status best_candidates(search *s, int *n) {
    const int V = s->V;
    int n_pool = 0;
    for (int b = 0; b < s->nr; b++) {
        mt_status st;
        if (s->match_run && (st = constrain_row(s, s->match_run[b], s->logits + (size_t)b * V)))
            return st;
        /* A beam's own best K contain every one of its continuations that can make the
         * global best K, so the merge never sees the whole vocabulary. Rows past the
         * tokenizer's ids are masked: outside the softmax and never candidates. */
        const int k =
            mt_topk_log_softmax(s->logits + (size_t)b * V, s->n_ids, s->K, s->top_idx, s->top_val);
        for (int j = 0; j < k; j++)
            if (isfinite(s->top_val[j])) /* a masked token is no continuation */
                s->pool[n_pool++] = (cand){
                    .beam = b, .token = s->top_idx[j], .total = s->score_run[b] + s->top_val[j]};
    }
    qsort_r(s->pool, (size_t)n_pool, sizeof *s->pool, by_total_desc, &s->V);
    *n = n_pool < s->K ? n_pool : s->K;
    return MT_OK;
}

/* The parse of candidate i's beam after its token, in s->match_cand[i]; *complete when
 * nothing may follow the document. */
static mt_status advance_parse(search *s, int i, int *complete) {
    const cand *c = &s->pool[i];
    mt_status st = mt_gmatch_clone(s->match_run[c->beam], &s->match_cand[i]);
    if (!st) st = mt_gmatch_accept(s->match_cand[i], c->token);
    if (st) return st;
    *complete = mt_gmatch_must_end(s->match_cand[i]);
    return MT_OK;
}

/* The new running beams' parses become the running ones; the rest are dropped. */
static void keep_parses(search *s, int nc) {
    for (int i = 0; i < nc; i++) {
        mt_gmatch_free(s->match_cand[i]);
        s->match_cand[i] = NULL;
    }
    for (int b = 0; b < s->N; b++) {
        mt_gmatch_free(s->match_run[b]);
        s->match_run[b] = s->match_next[b];
        s->match_next[b] = NULL;
    }
}

/* Keeps the N best finished hypotheses; an earlier one wins a tie, as in transformers. */
static mt_status add_finished(search *s, const cand *c, int reason, int n_gen) {
    const double score = c->total / pow((double)n_gen, (double)s->p->length_penalty);
    if (s->n_fin == s->N && !(score > s->fin[s->N - 1].score)) return MT_OK;
    const int n_keep = reason == MT_STOP_EOS ? n_gen - 1 : n_gen;
    int32_t *toks = mt_calloc((size_t)(n_keep ? n_keep : 1), sizeof *toks);
    if (!toks) return MT_ERR_NOMEM;
    memcpy(toks, s->tok_run + (size_t)c->beam * s->L, (size_t)(n_gen - 1) * sizeof *toks);
    if (n_keep == n_gen) toks[n_gen - 1] = c->token;
    int at = s->n_fin;
    while (at > 0 && s->fin[at - 1].score < score) at--;
    if (s->n_fin == s->N) {
        free(s->fin[s->N - 1].tokens);
        s->n_fin--;
    }
    memmove(s->fin + at + 1, s->fin + at, (size_t)(s->n_fin - at) * sizeof *s->fin);
    s->fin[at] = (mt_beam_hyp){.tokens = toks,
                               .n_tokens = n_keep,
                               .score = score,
                               .sum_logprob = c->total,
                               .length = n_gen,
                               .stop = (mt_stop_reason)reason,
                               .stop_token = reason == MT_STOP_EOS ? c->token : -1};
    s->n_fin++;
    return MT_OK;
}

/* One iteration of transformers' _beam_search loop, up to the cache reorder: rank the
 * continuations, retire finished ones among the best N, keep the best N that run on,
 * and apply its stopping rule (*done). */
static mt_status select_step(search *s, int t, int *done) {
    const int n_gen = t + 1;
    int nc;
    mt_status st = best_candidates(s, &nc);
    if (st) return st;
    for (int i = 0; i < nc; i++) {
        const cand *c = &s->pool[i];
        int r = 0, hit = 0, complete = 0;
        if (is_stop_token(s, c->token))
            r = MT_STOP_EOS;
        else if (s->text_run && (st = hits_stop_string(s, c->beam, c->token, &hit)))
            return st;
        if (!r && hit) r = MT_STOP_STRING;
        if (!r && s->match_run && (st = advance_parse(s, i, &complete))) return st;
        if (!r && complete) r = MT_STOP_DOCUMENT;
        if (!r && n_gen >= s->L) r = s->at_limit;
        s->reason[i] = r;
        /* Only the best N candidates may finish; the rest exist so that N run on. */
        if (r && i < s->N && (st = add_finished(s, c, r, n_gen))) return st;
    }
    int nn = 0;
    for (int i = 0; i < nc && nn < s->N; i++) {
        if (s->reason[i]) continue;
        const cand *c = &s->pool[i];
        memcpy(s->tok_next + (size_t)nn * s->L, s->tok_run + (size_t)c->beam * s->L,
               (size_t)t * sizeof *s->tok_next);
        s->tok_next[(size_t)nn * s->L + t] = c->token;
        s->score_next[nn] = c->total;
        s->parent[nn] = c->beam;
        if (s->match_run) {
            s->match_next[nn] = s->match_cand[i];
            s->match_cand[i] = NULL;
        }
        nn++;
    }
    if (s->match_run) keep_parses(s, nc);
    *done = nn == 0;
    if (!*done && s->n_fin == s->N) {
        if (s->p->early_stopping == MT_BEAM_STOP_EARLY) {
            *done = 1;
        } else {
            /* Can the best running beam still beat the worst finished hypothesis? */
            const int len = s->p->early_stopping == MT_BEAM_STOP_NEVER && s->p->length_penalty > 0
                                ? s->L
                                : n_gen;
            const double best = s->score_next[0] / pow((double)len, (double)s->p->length_penalty);
            *done = !(best > s->fin[s->N - 1].score);
        }
    }
    if (*done) return MT_OK;
    if (s->text_run)
        for (int i = 0; i < nn; i++) {
            mt_textbuf *dst = &s->text_next[i];
            const mt_textbuf *src = &s->text_run[s->parent[i]];
            size_t n = 0;
            dst->len = 0;
            if ((src->len && (st = mt_textbuf_append(dst, src->data, src->len))) ||
                (st = mt_token_bytes(s->tok, s->tok_next[(size_t)i * s->L + t], 0, s->piece,
                                     PIECE_CAP, &n)) ||
                (st = mt_textbuf_append(dst, s->piece, n)))
                return st;
        }
    s->nr = nn;
    return MT_OK;
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Gives every new beam a KV slot holding its parent's rows: the first child of a parent
 * takes the parent's slot as it is, the others take free slots and copy only the rows
 * that differ from what that slot already holds. */
static void assign_slots(search *s, int t) {
    const int N = s->N, nn = s->nr;
    unsigned char taken[MAX_BEAMS] = {0}, inherited[MAX_BEAMS] = {0};
    for (int i = 0; i < nn; i++) {
        const int b = s->parent[i];
        s->slot_next[i] = -1;
        if (!inherited[b]) {
            inherited[b] = 1;
            s->slot_next[i] = s->slot_run[b];
            taken[s->slot_run[b]] = 1;
        }
    }
    for (int i = 0; i < nn; i++) {
        if (s->slot_next[i] >= 0) continue;
        const int b = s->parent[i], src = s->slot_run[b];
        const int32_t *want = s->tok_run + (size_t)b * s->L;
        int best = -1, best_common = -2;
        for (int d = 0; d < N; d++) {
            if (taken[d]) continue;
            const int c = s->slot_len[d] < 0 ? -1
                                             : common_prefix(s->slot_tok + (size_t)d * s->L,
                                                             s->slot_len[d], want, t);
            if (c > best_common) best = d, best_common = c;
        }
        taken[best] = 1;
        s->slot_next[i] = best;
        if (best_common < 0) {
            mt_kv_cache_copy(s->kv, s->base + src, s->base + best, 0, s->n_prompt);
            best_common = 0;
        }
        mt_kv_cache_copy(s->kv, s->base + src, s->base + best, s->n_prompt + best_common,
                         s->n_prompt + t);
        s->rows_copied += t - best_common;
        memcpy(s->slot_tok + (size_t)best * s->L, want, (size_t)t * sizeof *want);
        s->slot_len[best] = t;
    }
}

/* Appends every running beam's newest token (position n_prompt + t) to a forward pass's
 * tokens, slots and positions; returns how many. */
static int feed_step(const search *s, int32_t *tokens, int *slots, int *pos) {
    const int t = s->t;
    for (int i = 0; i < s->nr; i++) {
        tokens[i] = s->tok_next[(size_t)i * s->L + t];
        slots[i] = s->base + s->slot_next[i];
        pos[i] = s->n_prompt + t;
    }
    return s->nr;
}

/* After the forward pass of feed_step's tokens: the slots hold them, and the new beams
 * become the running ones. */
static void commit_step(search *s) {
    const int t = s->t;
    for (int i = 0; i < s->nr; i++) {
        const int d = s->slot_next[i];
        s->slot_tok[(size_t)d * s->L + t] = s->tok_next[(size_t)i * s->L + t];
        s->slot_len[d] = t + 1;
    }
    int32_t *tk = s->tok_run;
    s->tok_run = s->tok_next, s->tok_next = tk;
    double *sc = s->score_run;
    s->score_run = s->score_next, s->score_next = sc;
    int *sl = s->slot_run;
    s->slot_run = s->slot_next, s->slot_next = sl;
    mt_textbuf *tx = s->text_run;
    s->text_run = s->text_next, s->text_next = tx;
    s->t++;
}

/* Decoded text, cut before the first stop string. */
static mt_status hyp_text(const search *s, mt_beam_hyp *h) {
    mt_status st = mt_detokenize(s->tok, h->tokens, (size_t)h->n_tokens, 0, &h->text);
    if (st) return st;
    for (int i = 0; i < s->p->n_stop_strings; i++) {
        char *hit = strstr(h->text, s->p->stop_strings[i]);
        if (hit) *hit = '\0';
    }
    return MT_OK;
}

/* Most prompt tokens prefilled in one forward pass, as in batched generation
 * (infer/batch.c): bounds the pass's activations while short prompts still go through
 * together, over the weights once. */
enum { PREFILL_TOKENS = 2048 };

/* Several prompts' searches stepped together: one forward pass per step feeds the
 * running beams of them all. */
typedef struct {
    const mt_model *m;
    const mt_tokenizer *tok;
    const mt_beam_params *p;
    const mt_beam_prompt *prompts;
    int n_prompts;
    int n_groups; /* prompts searched at once, each in n_beams slots of kv */
    search *groups;
    mt_kv_cache kv;
    float *logits; /* a row per fed beam (or per prefilled prompt) of the last pass */
    int32_t *tokens;
    int *slots, *pos;
    int *admitted; /* groups filled by the current admission */
    mt_beam_done_fn done;
    void *user;
    mt_beam_result *only; /* takes the one prompt's result instead of done */
    mt_beam_batch_stats *stats;
} beam_batch;

/* Hands a finished search's result over and frees its group for the next prompt. */
static mt_status finish(beam_batch *b, search *s) {
    mt_beam_result r = {.n_prompt = s->n_prompt,
                        .n_steps = s->t + 1,
                        .kv_rows_copied = s->rows_copied,
                        .prefill_seconds = s->prefill_seconds,
                        .decode_seconds = mt_now_seconds() - s->decode_from};
    mt_status st = MT_OK;
    for (int i = 0; s->tok && i < s->n_fin && !st; i++) st = hyp_text(s, &s->fin[i]);
    r.hyps = s->fin;
    r.n_hyps = s->n_fin;
    s->fin = NULL;
    s->n_fin = 0;
    if (!st && b->only) {
        *b->only = r;
        r.hyps = NULL, r.n_hyps = 0;
    } else if (!st && b->done) {
        st = b->done(b->user, s->index, &r);
    }
    mt_beam_result_free(&r);
    search_free(s);
    return st;
}

/* Step s->t of a search whose running beams' logits are in s->logits: select the next
 * beams and give them their slots, or finish. */
static mt_status advance(beam_batch *b, search *s) {
    int done = 0;
    mt_status st = select_step(s, s->t, &done);
    if (st) return st;
    if (done) return finish(b, s);
    assign_slots(s, s->t);
    return MT_OK;
}

/* Prefills waiting prompts into free groups, as many as one pass of PREFILL_TOKENS
 * takes (at least one), and takes each one's first step. */
static mt_status admit_waiting(beam_batch *b, int *next_prompt) {
    int n_new = 0, n_tok = 0;
    mt_status st = MT_OK;
    for (int g = 0; g < b->n_groups && *next_prompt < b->n_prompts; g++) {
        search *s = &b->groups[g];
        if (s->index >= 0) continue;
        const mt_beam_prompt *pr = &b->prompts[*next_prompt];
        if (n_new && n_tok + pr->n_prompt > PREFILL_TOKENS) break;
        st = search_init(s, b->m, b->tok, b->p, *next_prompt, pr->n_prompt, &b->kv,
                         g * b->p->n_beams);
        if (st) return st;
        (*next_prompt)++;
        b->admitted[n_new++] = g;
        n_tok += pr->n_prompt;
    }
    if (!n_new) return MT_OK;
    int32_t *toks = mt_calloc((size_t)n_tok, sizeof *toks);
    int *slots = mt_calloc((size_t)n_tok, sizeof *slots),
        *pos = mt_calloc((size_t)n_tok, sizeof *pos);
    st = (!toks || !slots || !pos) ? MT_ERR_NOMEM : MT_OK;
    for (int j = 0, t = 0; !st && j < n_new; j++) {
        const search *s = &b->groups[b->admitted[j]];
        memcpy(toks + t, b->prompts[s->index].prompt, (size_t)s->n_prompt * sizeof *toks);
        for (int u = 0; u < s->n_prompt; u++, t++) slots[t] = s->base, pos[t] = u;
    }
    const double t0 = mt_now_seconds();
    if (!st)
        st = mt_forward_slots(b->m, &b->kv, toks, slots, pos, n_tok, b->logits, MT_LOGITS_RUN_LAST);
    const double t1 = mt_now_seconds();
    free(toks);
    free(slots);
    free(pos);
    if (b->stats) b->stats->n_prompts += n_new;
    for (int j = 0; !st && j < n_new; j++) {
        search *s = &b->groups[b->admitted[j]];
        s->logits = b->logits + (size_t)j * s->V;
        s->prefill_seconds = t1 - t0;
        s->decode_from = t1;
        st = advance(b, s);
    }
    return st;
}

/* One forward pass over every running beam of every active search, then each one's
 * next step. */
static mt_status decode_pass(beam_batch *b) {
    int n = 0;
    for (int g = 0; g < b->n_groups; g++) {
        search *s = &b->groups[g];
        if (s->index < 0) continue;
        s->logits = b->logits + (size_t)n * s->V;
        n += feed_step(s, b->tokens + n, b->slots + n, b->pos + n);
    }
    if (!n) return MT_OK;
    if (b->stats) {
        b->stats->n_steps++;
        b->stats->n_step_tokens += n;
    }
    mt_status st =
        mt_forward_slots(b->m, &b->kv, b->tokens, b->slots, b->pos, n, b->logits, MT_LOGITS_ALL);
    for (int g = 0; !st && g < b->n_groups; g++) {
        search *s = &b->groups[g];
        if (s->index < 0) continue;
        commit_step(s);
        st = advance(b, s);
    }
    return st;
}

static mt_status check_prompts(beam_batch *b, int *n_ctx) {
    *n_ctx = 0;
    for (int i = 0; i < b->n_prompts; i++) {
        const mt_beam_prompt *pr = &b->prompts[i];
        mt_status st = check_prompt(b->m, b->p, pr->n_prompt);
        if (st) {
            if (b->n_prompts == 1) return st;
            char what[32];
            snprintf(what, sizeof what, "prompt %d", i);
            return mt_fail_prefix(st, what);
        }
        const int c = prompt_context(b->m, b->p, pr->n_prompt);
        if (c > *n_ctx) *n_ctx = c;
    }
    return MT_OK;
}

static mt_status run_batch(beam_batch *b, int max_prompts) {
    mt_status st = mt_beam_params_validate(b->p);
    if (st) return st;
    if (max_prompts <= 0)
        return mt_fail(MT_ERR_ARG, "beam search needs room for at least one prompt (got %d)",
                       max_prompts);
    if (b->n_prompts < 0) return mt_fail(MT_ERR_ARG, "negative prompt count");
    int n_ctx;
    if ((st = check_prompts(b, &n_ctx))) return st;
    if (!b->n_prompts) return MT_OK;
    b->n_groups = max_prompts < b->n_prompts ? max_prompts : b->n_prompts;
    const int N = b->p->n_beams;
    const size_t rows = (size_t)b->n_groups * N;
    if ((st = mt_kv_cache_init_slots(&b->kv, &b->m->cfg, b->n_groups * N, n_ctx))) return st;
    b->groups = mt_calloc((size_t)b->n_groups, sizeof *b->groups);
    b->logits = mt_calloc(rows * (size_t)b->m->cfg.n_vocab, sizeof *b->logits);
    b->tokens = mt_calloc(rows, sizeof *b->tokens);
    b->slots = mt_calloc(rows, sizeof *b->slots);
    b->pos = mt_calloc(rows, sizeof *b->pos);
    b->admitted = mt_calloc((size_t)b->n_groups, sizeof *b->admitted);
    if (!b->groups || !b->logits || !b->tokens || !b->slots || !b->pos || !b->admitted)
        st = MT_ERR_NOMEM;
    for (int g = 0; b->groups && g < b->n_groups; g++) b->groups[g].index = -1;
    int next_prompt = 0;
    while (!st) {
        const double t0 = mt_now_seconds();
        st = admit_waiting(b, &next_prompt);
        const double t1 = mt_now_seconds();
        if (b->stats) b->stats->prefill_seconds += t1 - t0;
        if (st) break;
        int active = 0;
        for (int g = 0; g < b->n_groups; g++) active += b->groups[g].index >= 0;
        if (!active && next_prompt >= b->n_prompts) break;
        st = decode_pass(b);
        if (b->stats) b->stats->decode_seconds += mt_now_seconds() - t1;
    }
    for (int g = 0; b->groups && g < b->n_groups; g++) search_free(&b->groups[g]);
    free(b->groups);
    free(b->logits);
    free(b->tokens);
    free(b->slots);
    free(b->pos);
    free(b->admitted);
    mt_kv_cache_free(&b->kv);
    return st;
}

mt_status mt_beam_search_batch(const mt_model *m, const mt_tokenizer *tok,
                               const mt_beam_prompt *prompts, int n_prompts,
                               const mt_beam_params *p, int max_prompts, mt_beam_done_fn done,
                               void *user, mt_beam_batch_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    beam_batch b = {.m = m,
                    .tok = tok,
                    .p = p,
                    .prompts = prompts,
                    .n_prompts = n_prompts,
                    .done = done,
                    .user = user,
                    .stats = stats};
    return run_batch(&b, max_prompts);
}

/* The one-prompt case of the batched search. */
mt_status mt_beam_search(const mt_model *m, const mt_tokenizer *tok, const int32_t *prompt,
                         int n_prompt, const mt_beam_params *p, mt_beam_result *out) {
    memset(out, 0, sizeof *out);
    const mt_beam_prompt one = {.prompt = prompt, .n_prompt = n_prompt};
    beam_batch b = {.m = m, .tok = tok, .p = p, .prompts = &one, .n_prompts = 1, .only = out};
    mt_status st = run_batch(&b, 1);
    if (st) mt_beam_result_free(out);
    return st;
}
