#include "infer/seq.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "infer/vocab.h"

static int is_stop_token(const mt_seq *q, int32_t t) {
    if (t == mt_tokenizer_eos(q->tok)) return 1;
    for (int i = 0; i < q->p->n_stop_tokens; i++)
        if (q->p->stop_tokens[i] == t) return 1;
    return 0;
}

/* Earliest occurrence of any stop string at or after `from`, or -1. */
static long find_stop(const mt_gen_params *p, const mt_textbuf *text, size_t from) {
    long best = -1;
    for (int i = 0; i < p->n_stop_strings; i++) {
        const char *hit = memmem(text->data + from, text->len - from, p->stop_strings[i],
                                 strlen(p->stop_strings[i]));
        if (hit && (best < 0 || hit - text->data < best)) best = hit - text->data;
    }
    return best;
}

/* Length of the longest tail of text that could still grow into a stop string. */
static size_t held_back(const mt_gen_params *p, const mt_textbuf *text) {
    size_t hold = 0;
    for (int i = 0; i < p->n_stop_strings; i++) {
        const size_t n = strlen(p->stop_strings[i]);
        for (size_t k = n > 1 ? n - 1 : 0; k > hold; k--)
            if (k <= text->len && !memcmp(text->data + text->len - k, p->stop_strings[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* Emits text up to `upto` through the callback. */
static void emit(mt_seq *q, size_t upto) {
    if (upto <= q->emitted) return;
    if (q->p->on_text && q->p->on_text(q->p->user, q->text.data + q->emitted, upto - q->emitted)) {
        q->done = 1;
        q->stop = MT_STOP_CALLER;
    }
    q->emitted = upto;
}

/* Adds decoded text; a stop string ends the sequence with the text cut before it. */
static mt_status stream_text(mt_seq *q, const char *piece, size_t n) {
    mt_status s = mt_textbuf_append(&q->text, piece, n);
    if (s) return s;
    const long hit = find_stop(q->p, &q->text, q->scan_from);
    if (hit >= 0) {
        q->text.len = (size_t)hit;
        q->text.data[hit] = '\0';
        emit(q, (size_t)hit);
        q->done = 1;
        q->stop = MT_STOP_STRING;
        return MT_OK;
    }
    const size_t hold = held_back(q->p, &q->text);
    q->scan_from = q->text.len - hold;
    emit(q, q->text.len - hold);
    return MT_OK;
}

mt_status mt_seq_init(mt_seq *q, const mt_model *m, const mt_tokenizer *tok, const mt_gen_params *p,
                      const mt_json_constraint *constraint, const int32_t *prompt, int n_prompt,
                      int cap, uint64_t seed_offset) {
    memset(q, 0, sizeof *q);
    q->p = p;
    q->tok = tok;
    if (n_prompt <= 0) return mt_fail(MT_ERR_ARG, "the prompt is empty");
    if (n_prompt >= cap)
        return mt_fail(MT_ERR_ARG, "prompt of %d tokens does not fit the context of %d", n_prompt,
                       cap);
    mt_sampler_params sp = p->sampling;
    sp.seed += seed_offset;
    int n_tokens;
    mt_status s = mt_decode_vocab(m, tok, &n_tokens);
    if (!s) s = mt_sampler_init(&q->sampler, &sp, n_tokens);
    if (s) return s;
    if (constraint && constraint->index->n != n_tokens)
        s = mt_fail(MT_ERR_ARG, "the JSON constraint was made for %d tokens, the model decodes %d",
                    constraint->index->n, n_tokens);
    if (!s && constraint)
        s = mt_gmatch_new(constraint->grammar, constraint->index, constraint->cache, &q->match);
    if (!s && !(q->hist = mt_calloc((size_t)cap, sizeof *q->hist))) s = MT_ERR_NOMEM;
    if (s) {
        mt_seq_free(q);
        return s;
    }
    memcpy(q->hist, prompt, (size_t)n_prompt * sizeof *q->hist);
    q->n_hist = q->n_prompt = n_prompt;
    q->cap = cap;
    q->stop = MT_STOP_LENGTH;
    mt_detok_stream_init(&q->ds, tok, 0);
    if (p->max_tokens <= 0) q->done = 1;
    return MT_OK;
}

/* Leaves only the tokens the constraint allows next; the stop tokens only once the
 * document is complete. */
static mt_status constrain(mt_seq *q, float *logits) {
    const int n_stops = q->p->n_stop_tokens + 1;
    float kept[n_stops];
    const int can_end = mt_gmatch_can_end(q->match);
    const int32_t eos = mt_tokenizer_eos(q->tok);
    for (int i = 0; can_end && i < n_stops; i++) {
        const int32_t t = i ? q->p->stop_tokens[i - 1] : eos;
        kept[i] = t >= 0 && t < q->sampler.n_vocab ? logits[t] : 0.0f;
    }
    mt_status s = mt_gmatch_mask_logits(q->match, logits);
    for (int i = 0; !s && can_end && i < n_stops; i++) {
        const int32_t t = i ? q->p->stop_tokens[i - 1] : eos;
        if (t >= 0 && t < q->sampler.n_vocab) logits[t] = kept[i];
    }
    return s;
}

mt_status mt_seq_step(mt_seq *q, float *logits, int32_t *next) {
    mt_status s = q->match ? constrain(q, logits) : MT_OK;
    if (s) return s;
    const int32_t t = mt_sampler_sample(&q->sampler, logits, q->hist, q->n_hist);
    if (is_stop_token(q, t)) {
        q->done = 1;
        q->stop = MT_STOP_EOS;
        return MT_OK;
    }
    if (q->match && (s = mt_gmatch_accept(q->match, t)))
        return mt_fail(s, "token %d does not continue the JSON document (no allowed token left)",
                       (int)t);
    q->hist[q->n_hist++] = t;
    char piece[512];
    size_t len = 0;
    s = mt_detok_stream_push(&q->ds, t, piece, sizeof piece, &len);
    if (!s) s = stream_text(q, piece, len);
    if (s || q->done) return s;
    if (q->match && mt_gmatch_must_end(q->match)) {
        q->done = 1;
        q->stop = MT_STOP_DOCUMENT;
    } else if (q->n_hist - q->n_prompt >= q->p->max_tokens) {
        q->done = 1;
        q->stop = MT_STOP_LENGTH;
    } else if (q->n_hist >= q->cap) {
        q->done = 1;
        q->stop = MT_STOP_CONTEXT;
    }
    *next = t;
    return MT_OK;
}

mt_status mt_seq_result(mt_seq *q, mt_gen_result *r) {
    if (q->stop != MT_STOP_STRING) emit(q, q->text.len);
    r->n_prompt = q->n_prompt;
    r->stop = q->stop;
    r->n_tokens = q->n_hist - q->n_prompt;
    r->tokens = mt_calloc((size_t)(r->n_tokens ? r->n_tokens : 1), sizeof *r->tokens);
    if (!r->tokens) return MT_ERR_NOMEM;
    memcpy(r->tokens, q->hist + q->n_prompt, (size_t)r->n_tokens * sizeof *r->tokens);
    r->text = q->text.data ? q->text.data : mt_strdup("");
    q->text.data = NULL;
    q->text.len = q->text.cap = 0;
    return r->text ? MT_OK : MT_ERR_NOMEM;
}

void mt_seq_free(mt_seq *q) {
    mt_gmatch_free(q->match);
    q->match = NULL;
    mt_textbuf_free(&q->text);
    free(q->hist);
    mt_sampler_free(&q->sampler);
    q->hist = NULL;
}
