/* Which of a model's logits decoding may pick.
 *
 * A forward pass gives one logit per embedding row (cfg.n_vocab). Checkpoints often have
 * more rows than their tokenizer has tokens (Qwen2.5: 151,936 rows for 151,665 tokens);
 * the rows past the tokenizer are masked for decoding: sampling, greedy argmax and beam
 * search read only the first n logits of a row, which is the same as giving the padded
 * rows a logit of -inf before any of them (no probability mass, not in any softmax), so
 * an id the tokenizer cannot decode is never produced. Logit rows keep their stride of
 * cfg.n_vocab. Training keeps every row in the softmax, as transformers computes the loss
 * over the whole embedding; its targets are tokenizer ids, so the padded rows are never
 * targets. */
#ifndef MT_INFER_VOCAB_H
#define MT_INFER_VOCAB_H

#include "core/status.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* *n: the ids decoding may produce, the tokenizer's tokens (all of the model's rows
 * when tok is NULL). A model with fewer embedding rows than the tokenizer has tokens
 * cannot run the tokenizer's ids and is refused. */
mt_status mt_decode_vocab(const mt_model *m, const mt_tokenizer *tok, int *n);

#endif
