#include "infer/beam.h"

#include <math.h>
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

typedef struct {
    const mt_model *m;
    const mt_tokenizer *tok;
    const mt_beam_params *p;
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
    int32_t *feed_tok;
    int *feed_pos;
    mt_textbuf *text_run, *text_next; /* bytes so far, only with stop strings */

    /* What each KV slot holds: slot_len[s] generated rows (tokens slot_tok[s * L ...])
     * after the prompt, or -1 when the prompt rows were never copied in. */
    int32_t *slot_tok;
    int *slot_len;
    mt_kv_cache kv;

    /* With a JSON constraint: each running beam's parse, double-buffered like the beams,
     * and the parse after each of the best K candidates' tokens. */
    mt_gmatch **match_run, **match_next, **match_cand;

    cand *pool;  /* N x K: each beam's best K continuations */
    int *reason; /* stop reason of each of the best K candidates (0 = runs on) */
    float *logits;
    int32_t *top_idx;
    float *top_val;
    char *piece;

    mt_beam_hyp *fin; /* finished hypotheses, best first */
    int n_fin;
    long long rows_copied;
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
    free(s->feed_tok);
    free(s->feed_pos);
    for (int i = 0; i < s->N; i++) {
        if (s->text_run) mt_textbuf_free(&s->text_run[i]);
        if (s->text_next) mt_textbuf_free(&s->text_next[i]);
    }
    free(s->text_run);
    free(s->text_next);
    free(s->slot_tok);
    free(s->slot_len);
    mt_kv_cache_free(&s->kv);
    free(s->pool);
    free(s->reason);
    free(s->logits);
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

static mt_status search_init(search *s, const mt_model *m, const mt_tokenizer *tok,
                             const mt_beam_params *p, int n_prompt) {
    memset(s, 0, sizeof *s);
    s->m = m;
    s->tok = tok;
    s->p = p;
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
    int n_ctx = p->n_ctx;
    if (n_ctx <= 0) {
        n_ctx = n_prompt + p->max_tokens;
        if (n_ctx > m->cfg.n_ctx_train) n_ctx = m->cfg.n_ctx_train;
    }
    if (n_prompt >= n_ctx)
        return mt_fail(MT_ERR_ARG, "prompt of %d tokens does not fit the context of %d", n_prompt,
                       n_ctx);
    s->L = p->max_tokens;
    s->at_limit = MT_STOP_LENGTH;
    if (n_prompt + s->L > n_ctx) {
        s->L = n_ctx - n_prompt;
        s->at_limit = MT_STOP_CONTEXT;
    }
    const size_t N = (size_t)s->N, L = (size_t)s->L, K = (size_t)s->K;
    s->tok_run = mt_calloc(N * L, sizeof *s->tok_run);
    s->tok_next = mt_calloc(N * L, sizeof *s->tok_next);
    s->score_run = mt_calloc(N, sizeof *s->score_run);
    s->score_next = mt_calloc(N, sizeof *s->score_next);
    s->slot_run = mt_calloc(N, sizeof *s->slot_run);
    s->slot_next = mt_calloc(N, sizeof *s->slot_next);
    s->parent = mt_calloc(N, sizeof *s->parent);
    s->feed_tok = mt_calloc(N, sizeof *s->feed_tok);
    s->feed_pos = mt_calloc(N, sizeof *s->feed_pos);
    s->slot_tok = mt_calloc(N * L, sizeof *s->slot_tok);
    s->slot_len = mt_calloc(N, sizeof *s->slot_len);
    s->pool = mt_calloc(N * K, sizeof *s->pool);
    s->reason = mt_calloc(K, sizeof *s->reason);
    s->logits = mt_calloc(N * (size_t)s->V, sizeof *s->logits);
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
        !s->slot_next || !s->parent || !s->feed_tok || !s->feed_pos || !s->slot_tok ||
        !s->slot_len || !s->pool || !s->reason || !s->logits || !s->top_idx || !s->top_val ||
        !s->fin)
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
     * child inherits, and all copies finish before the step's forward pass writes. */
    if ((st = mt_kv_cache_init_slots(&s->kv, &m->cfg, s->N, n_prompt + s->L))) return st;
    for (int i = 1; i < s->N; i++) s->slot_len[i] = -1;
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
            mt_kv_cache_copy(&s->kv, src, best, 0, s->n_prompt);
            best_common = 0;
        }
        mt_kv_cache_copy(&s->kv, src, best, s->n_prompt + best_common, s->n_prompt + t);
        s->rows_copied += t - best_common;
        memcpy(s->slot_tok + (size_t)best * s->L, want, (size_t)t * sizeof *want);
        s->slot_len[best] = t;
    }
}

/* Feeds every running beam's newest token (position n_prompt + t) in one forward pass. */
static mt_status decode_step(search *s, int t) {
    const int nn = s->nr;
    int32_t *toks = s->feed_tok;
    int *slot = s->slot_next, *pos = s->feed_pos;
    for (int i = 0; i < nn; i++) {
        toks[i] = s->tok_next[(size_t)i * s->L + t];
        pos[i] = s->n_prompt + t;
    }
    mt_status st = mt_forward_slots(s->m, &s->kv, toks, slot, pos, nn, s->logits, MT_LOGITS_ALL);
    if (st) return st;
    for (int i = 0; i < nn; i++) {
        s->slot_tok[(size_t)slot[i] * s->L + t] = toks[i];
        s->slot_len[slot[i]] = t + 1;
    }
    /* The new beams become the running ones. */
    int32_t *tk = s->tok_run;
    s->tok_run = s->tok_next, s->tok_next = tk;
    double *sc = s->score_run;
    s->score_run = s->score_next, s->score_next = sc;
    int *sl = s->slot_run;
    s->slot_run = s->slot_next, s->slot_next = sl;
    mt_textbuf *tx = s->text_run;
    s->text_run = s->text_next, s->text_next = tx;
    return MT_OK;
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

mt_status mt_beam_search(const mt_model *m, const mt_tokenizer *tok, const int32_t *prompt,
                         int n_prompt, const mt_beam_params *p, mt_beam_result *out) {
    memset(out, 0, sizeof *out);
    mt_status st = mt_beam_params_validate(p);
    if (st) return st;
    if (n_prompt <= 0) return mt_fail(MT_ERR_ARG, "the prompt is empty");
    search s;
    if ((st = search_init(&s, m, tok, p, n_prompt))) goto done;
    out->n_prompt = n_prompt;
    const double t0 = mt_now_seconds();
    /* The prompt goes through once, into slot 0; it is the one running beam of step 0. */
    if ((st = mt_forward(m, &s.kv, prompt, n_prompt, s.logits, MT_LOGITS_LAST))) goto done;
    const double t1 = mt_now_seconds();
    out->prefill_seconds = t1 - t0;
    s.nr = 1;
    for (int t = 0;; t++) {
        int done = 0;
        if ((st = select_step(&s, t, &done))) goto done;
        out->n_steps = t + 1;
        if (done) break;
        assign_slots(&s, t);
        if ((st = decode_step(&s, t))) goto done;
    }
    out->decode_seconds = mt_now_seconds() - t1;
    out->kv_rows_copied = s.rows_copied;
    for (int i = 0; tok && i < s.n_fin; i++)
        if ((st = hyp_text(&s, &s.fin[i]))) goto done;
    out->hyps = s.fin;
    out->n_hyps = s.n_fin;
    s.fin = NULL;
    s.n_fin = 0;
done:
    search_free(&s);
    return st;
}
