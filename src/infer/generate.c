#include "infer/generate.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "infer/seq.h"
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
    case MT_STOP_DOCUMENT:
        return "document complete";
    }
    return "?";
}

void mt_gen_result_free(mt_gen_result *r) {
    free(r->tokens);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static int context_size(const mt_model *m, const mt_gen_params *p, int n_prompt) {
    if (p->n_ctx > 0) return p->n_ctx;
    int n = n_prompt + p->max_tokens;
    return n < m->cfg.n_ctx_train ? n : m->cfg.n_ctx_train;
}

mt_status mt_generate(const mt_model *m, const mt_tokenizer *tok, const int32_t *prompt,
                      int n_prompt, const mt_gen_params *p, mt_gen_result *out) {
    memset(out, 0, sizeof *out);
    const int n_ctx = context_size(m, p, n_prompt);
    mt_seq q;
    mt_status s = mt_seq_init(&q, m, tok, p, p->constraint, prompt, n_prompt, n_ctx, 0);
    if (s) return s;
    mt_kv_cache kv;
    float *logits = mt_calloc((size_t)m->cfg.n_vocab, sizeof *logits);
    if (!logits || (s = mt_kv_cache_init(&kv, &m->cfg, n_ctx))) {
        free(logits);
        mt_seq_free(&q);
        return logits ? s : MT_ERR_NOMEM;
    }
    const double t0 = mt_now_seconds();
    s = mt_forward(m, &kv, prompt, n_prompt, logits, MT_LOGITS_LAST);
    const double t1 = mt_now_seconds();
    while (!s && !q.done) {
        int32_t next;
        if ((s = mt_seq_step(&q, logits, &next)) || q.done) break;
        s = mt_forward(m, &kv, &next, 1, logits, MT_LOGITS_LAST);
    }
    if (!s) s = mt_seq_result(&q, out);
    out->prefill_seconds = t1 - t0;
    out->decode_seconds = mt_now_seconds() - t1;
    free(logits);
    mt_kv_cache_free(&kv);
    mt_seq_free(&q);
    if (s) mt_gen_result_free(out);
    return s;
}
