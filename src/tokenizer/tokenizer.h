/* Tokenizers: byte-level BPE (GPT-2 / Llama-3 / Qwen2 / SmolLM pre-tokenisers) and
 * SentencePiece-style BPE with byte fallback (Llama-2 / Gemma). Built from GGUF metadata
 * or from a Hugging Face tokenizer.json (+ tokenizer_config.json). */
#ifndef MT_TOKENIZER_TOKENIZER_H
#define MT_TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/gguf.h"

typedef enum { MT_TOK_BPE = 1, MT_TOK_SPM = 2 } mt_tok_kind;

typedef struct mt_tokenizer mt_tokenizer;

mt_status mt_tokenizer_from_gguf(const mt_gguf *g, mt_tokenizer **out);
/* dir holds tokenizer.json and optionally tokenizer_config.json. */
mt_status mt_tokenizer_from_hf_dir(const char *dir, mt_tokenizer **out);
void mt_tokenizer_free(mt_tokenizer *t);
/* Loads the tokenizer of a model given as a .gguf file or a Hugging Face folder. */
mt_status mt_tokenizer_load(const char *model_path, mt_tokenizer **out);

/* Encodes text. add_special: prepend BOS (and append EOS) when the model's config asks
 * for it. parse_special: recognise special/added tokens written in the text (e.g.
 * "<|im_start|>"); when 0 they are tokenised as plain text. *ids is malloc'ed. */
mt_status mt_tokenize(const mt_tokenizer *t, const char *text, size_t len, int add_special,
                      int parse_special, int32_t **ids, size_t *n_ids);

/* Raw bytes of one token as it contributes to decoded text (byte-level and byte-fallback
 * tokens resolved, SentencePiece "▁" turned into a space). Control tokens give their text
 * only when render_special is set, else "". */
mt_status mt_token_bytes(const mt_tokenizer *t, int32_t id, int render_special, char *buf,
                         size_t cap, size_t *len);

/* Whole-sequence decode into a malloc'ed NUL-terminated string. */
mt_status mt_detokenize(const mt_tokenizer *t, const int32_t *ids, size_t n, int render_special,
                        char **out);

/* Streaming decode: feed ids one at a time, get back only complete UTF-8 text; bytes of
 * a character split across tokens are held until the character completes. */
typedef struct {
    const mt_tokenizer *tok;
    int render_special;
    int n_emitted_tokens; /* SentencePiece strips the leading space of the first piece */
    char pending[8];
    int n_pending;
} mt_detok_stream;

void mt_detok_stream_init(mt_detok_stream *s, const mt_tokenizer *t, int render_special);
/* Appends the text now complete to out (cap bytes, NUL-terminated); *len gets its length. */
mt_status mt_detok_stream_push(mt_detok_stream *s, int32_t id, char *out, size_t cap, size_t *len);

/* Facts about the tokenizer. */
mt_tok_kind mt_tokenizer_kind(const mt_tokenizer *t);
const char *mt_tokenizer_pre_name(const mt_tokenizer *t); /* "smollm", "llama3", "gpt2", ... */
int32_t mt_tokenizer_n_vocab(const mt_tokenizer *t);
int32_t mt_tokenizer_bos(const mt_tokenizer *t); /* -1 if none */
int32_t mt_tokenizer_eos(const mt_tokenizer *t);
int32_t mt_tokenizer_pad(const mt_tokenizer *t);
int mt_tokenizer_adds_bos(const mt_tokenizer *t);
/* Token id of an exact token string (special tokens included), or -1. */
int32_t mt_tokenizer_find(const mt_tokenizer *t, const char *piece);
/* Text of a token as stored in the vocabulary ("Ġthe", "▁the", "<|im_end|>"). */
const char *mt_tokenizer_piece(const mt_tokenizer *t, int32_t id);
/* True if the id is a control/special token (end-of-turn markers, BOS, EOS, ...). */
int mt_tokenizer_is_control(const mt_tokenizer *t, int32_t id);
/* The chat template text shipped with the model, or NULL. */
const char *mt_tokenizer_chat_template(const mt_tokenizer *t);
/* Architecture name from the model's metadata ("llama", "gemma3", ...), or NULL. */
const char *mt_tokenizer_arch(const mt_tokenizer *t);

#endif
