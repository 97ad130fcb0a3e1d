#include "infer/generate.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "infer/textbuf.h"
#include "model/forward.h"

mt_gen_params mt_gen_defaults(void) {
    mt_gen_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = 256;
    p.sampling = mt_sampler_defaults();
    return p;
}

const char *mt_stop_reason_name(mt_stop_reason r) {
    switch (r) {
    case MT_STOP_EOS:
        return "eos";
    case MT_STOP_STRING:
        return "stop string";
    case MT_STOP_LENGTH:
        return "length";
    case MT_STOP_CALLER:
        return "caller";
    case MT_STOP_CONTEXT:
        return "context full";
    }
    return "?";
}

void mt_gen_result_free(mt_gen_result *r) {
    free(r->tokens);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static int is_stop_token(const mt_tokenizer *tok, const mt_gen_params *p, int32_t t) {
    if (t == mt_tokenizer_eos(tok)) return 1;
    for (int i = 0; i < p->n_stop_tokens; i++)
        if (p->stop_tokens[i] == t) return 1;
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

typedef struct {
    const mt_gen_params *p;
    mt_textbuf text;
    size_t emitted;
    size_t scan_from;
    int caller_stop;
} streamer;

/* Emits text up to `upto` through the callback. */
static void emit(streamer *st, size_t upto) {
    if (upto <= st->emitted) return;
    if (st->p->on_text &&
        st->p->on_text(st->p->user, st->text.data + st->emitted, upto - st->emitted))
        st->caller_stop = 1;
    st->emitted = upto;
}

/* Adds decoded text; returns 1 when a stop string ended the generation. */
static int stream_text(streamer *st, const char *piece, size_t n, mt_status *err) {
    if ((*err = mt_textbuf_append(&st->text, piece, n))) return 1;
    long hit = find_stop(st->p, &st->text, st->scan_from);
    if (hit >= 0) {
        st->text.len = (size_t)hit;
        st->text.data[hit] = '\0';
        emit(st, (size_t)hit);
        return 1;
    }
    const size_t hold = held_back(st->p, &st->text);
    st->scan_from = st->text.len - hold;
    emit(st, st->text.len - hold);
    return 0;
}

static int context_size(const mt_model *m, const mt_gen_params *p, int n_prompt) {
    if (p->n_ctx > 0) return p->n_ctx;
    int n = n_prompt + p->max_tokens;
    return n < m->cfg.n_ctx_train ? n : m->cfg.n_ctx_train;
}

mt_status mt_generate(const mt_model *m, const mt_tokenizer *tok, const int32_t *prompt,
                      int n_prompt, const mt_gen_params *p, mt_gen_result *out) {
    memset(out, 0, sizeof *out);
    if (n_prompt <= 0) return mt_fail(MT_ERR_ARG, "the prompt is empty");
    const int n_ctx = context_size(m, p, n_prompt);
    if (n_prompt >= n_ctx)
        return mt_fail(MT_ERR_ARG, "prompt of %d tokens does not fit the context of %d", n_prompt,
                       n_ctx);
    mt_kv_cache kv;
    mt_sampler sampler;
    streamer st = {.p = p};
    mt_detok_stream ds;
    float *logits = NULL;
    int32_t *hist = NULL;
    mt_status s = mt_kv_cache_init(&kv, &m->cfg, n_ctx);
    if (s) return s;
    if ((s = mt_sampler_init(&sampler, &p->sampling, m->cfg.n_vocab))) goto done_kv;
    logits = mt_calloc((size_t)m->cfg.n_vocab, sizeof *logits);
    hist = mt_calloc((size_t)n_ctx, sizeof *hist);
    if (!logits || !hist) {
        s = MT_ERR_NOMEM;
        goto done;
    }
    memcpy(hist, prompt, (size_t)n_prompt * sizeof *hist);
    mt_detok_stream_init(&ds, tok, 0);
    out->n_prompt = n_prompt;
    double t0 = mt_now_seconds();
    if ((s = mt_forward(m, &kv, prompt, n_prompt, logits, 0))) goto done;
    double t1 = mt_now_seconds();
    out->prefill_seconds = t1 - t0;
    int n_hist = n_prompt;
    out->stop = MT_STOP_LENGTH;
    for (int i = 0; i < p->max_tokens; i++) {
        const int32_t next = mt_sampler_sample(&sampler, logits, hist, n_hist);
        if (is_stop_token(tok, p, next)) {
            out->stop = MT_STOP_EOS;
            break;
        }
        hist[n_hist++] = next;
        char piece[256];
        size_t len = 0;
        if ((s = mt_detok_stream_push(&ds, next, piece, sizeof piece, &len))) goto done;
        if (stream_text(&st, piece, len, &s)) {
            if (s) goto done;
            out->stop = MT_STOP_STRING;
            break;
        }
        if (st.caller_stop) {
            out->stop = MT_STOP_CALLER;
            break;
        }
        if (i + 1 == p->max_tokens) break;
        if (n_hist >= n_ctx) {
            out->stop = MT_STOP_CONTEXT;
            break;
        }
        if ((s = mt_forward(m, &kv, &next, 1, logits, 0))) goto done;
    }
    if (out->stop != MT_STOP_STRING) emit(&st, st.text.len);
    out->decode_seconds = mt_now_seconds() - t1;
    out->n_tokens = n_hist - n_prompt;
    out->tokens = mt_calloc((size_t)(out->n_tokens ? out->n_tokens : 1), sizeof *out->tokens);
    if (!out->tokens) {
        s = MT_ERR_NOMEM;
        goto done;
    }
    memcpy(out->tokens, hist + n_prompt, (size_t)out->n_tokens * sizeof *out->tokens);
    out->text = st.text.data ? st.text.data : mt_strdup("");
    st.text.data = NULL;
    if (!out->text) s = MT_ERR_NOMEM;
done:
    mt_textbuf_free(&st.text);
    free(logits);
    free(hist);
    mt_sampler_free(&sampler);
done_kv:
    mt_kv_cache_free(&kv);
    if (s) mt_gen_result_free(out);
    return s;
}
