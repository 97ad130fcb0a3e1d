#include "cli/session.h"

#include <string.h>

#include "cli/adapter_opt.h"
#include "kernels/matmul.h"

mt_status mt_session_open(mt_session *s, const char *model_path, int threads,
                          const char *chat_override) {
    memset(s, 0, sizeof *s);
    if (!model_path) return mt_fail(MT_ERR_ARG, "no model given (use -m MODEL)");
    if (threads < 0) return mt_fail(MT_ERR_ARG, "--threads must be >= 0");
    mt_kernels_set_threads(threads);
    mt_status st = mt_model_load(model_path, &s->model);
    if (st) return mt_fail_prefix(st, model_path);
    if ((st = mt_tokenizer_load(model_path, &s->tok))) {
        mt_fail_prefix(st, model_path);
        mt_session_close(s);
        return st;
    }
    if (mt_tokenizer_n_vocab(s->tok) > s->model->cfg.n_vocab) {
        mt_session_close(s);
        return mt_fail(MT_ERR_FORMAT, "%s: tokenizer has %d tokens but the model only %d",
                       model_path, mt_tokenizer_n_vocab(s->tok), s->model->cfg.n_vocab);
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

mt_status mt_session_apply_adapter(mt_session *s, const char *dir) {
    return dir ? mt_model_apply_adapter(s->model, dir, &s->lora) : MT_OK;
}

void mt_session_close(mt_session *s) {
    mt_lora_free(s->lora);
    mt_tokenizer_free(s->tok);
    mt_model_free(s->model);
    memset(s, 0, sizeof *s);
}
