#include "infer/vocab.h"

mt_status mt_decode_vocab(const mt_model *m, const mt_tokenizer *tok, int *n) {
    const int rows = m->cfg.n_vocab, tokens = tok ? (int)mt_tokenizer_n_vocab(tok) : rows;
    if (tokens > rows)
        return mt_fail(MT_ERR_FORMAT,
                       "the model's embedding has %d rows, fewer than the tokenizer's %d tokens",
                       rows, tokens);
    *n = tokens;
    return MT_OK;
}
