#include "infer/session.h"

#include <stdlib.h>
#include <string.h>

#include "infer/vocab.h"
#include "kernels/matmul.h"
#include "model/pack.h"

mt_status mt_session_open(mt_session *s, const char *model_path, int threads,
                          const char *chat_override) {
    memset(s, 0, sizeof *s);
    if (!model_path) return mt_fail(MT_ERR_ARG, "no model given (use -m MODEL)");
    if (threads < 0) return mt_fail(MT_ERR_ARG, "--threads must be >= 0");
    mt_kernels_set_threads(threads);
    mt_status st = mt_model_load(model_path, &s->model);
    if (st) return mt_fail_prefix(st, model_path);
    int n_tokens;
    if ((st = mt_tokenizer_load(model_path, &s->tok)) ||
        (st = mt_decode_vocab(s->model, s->tok, &n_tokens))) {
        mt_fail_prefix(st, model_path);
        mt_session_close(s);
        return st;
    }
    /* fast generation reads the weights through their packed copies */
    if (!mt_kernels_precise() && (st = mt_model_pack(s->model))) {
        mt_session_close(s);
        return st;
    }
    if (chat_override) {
        if ((st = mt_chat_family_parse(chat_override, &s->chat))) {
            mt_session_close(s);
            return st;
        }
    } else {
        s->chat =
            mt_chat_detect(mt_tokenizer_chat_template(s->tok), mt_arch_name(s->model->cfg.arch));
    }
    return MT_OK;
}

int mt_session_stop_tokens(const mt_session *s, int32_t *ids, int cap) {
    int n = 0;
    const char *const *pieces = mt_chat_stop_pieces(s->chat);
    for (int i = 0; pieces && pieces[i] && n < cap; i++) {
        const int32_t id = mt_tokenizer_find(s->tok, pieces[i]);
        if (id >= 0) ids[n++] = id;
    }
    return n;
}

mt_status mt_session_encode(const mt_session *s, const mt_chat_msg *msgs, int n, const char *raw,
                            int32_t **ids, size_t *n_ids) {
    if (raw) return mt_tokenize(s->tok, raw, strlen(raw), 1, 1, ids, n_ids);
    if (s->chat == MT_CHAT_NONE)
        return mt_fail(MT_ERR_ARG, "the model has no chat template; pass --chat-template");
    char *text = NULL;
    mt_status st = mt_chat_render(s->chat, s->tok, msgs, (size_t)n, 1, &text);
    if (!st) st = mt_tokenize(s->tok, text, strlen(text), 0, 1, ids, n_ids);
    free(text);
    return st;
}

mt_status mt_session_constraint(mt_session *s, const char *schema_json, size_t len,
                                mt_json_constraint **out) {
    *out = NULL;
    if (!s->token_index) {
        int n_tokens;
        mt_status st = mt_decode_vocab(s->model, s->tok, &n_tokens);
        if (!st) st = mt_token_index_from_tokenizer(s->tok, n_tokens, &s->token_index);
        if (st) return st;
    }
    return mt_json_constraint_new(schema_json, len, s->token_index, out);
}

void mt_session_close(mt_session *s) {
    mt_token_index_free(s->token_index);
    mt_lora_free(s->lora);
    mt_tokenizer_free(s->tok);
    mt_model_free(s->model);
    memset(s, 0, sizeof *s);
}
