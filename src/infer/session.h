/* Loading a model and its tokenizer for the verbs that run one. */
#ifndef MT_INFER_SESSION_H
#define MT_INFER_SESSION_H

#include "infer/constraint.h"
#include "model/lora.h"
#include "model/model.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    mt_model *model;
    mt_tokenizer *tok;
    mt_chat_family chat;
    mt_lora *lora;               /* an adapter attached to the model (pipeline/adapter.h), owned */
    mt_token_index *token_index; /* the decodable tokens as bytes, made on first use */
} mt_session;

/* chat_override: a family name from --chat-template, or NULL to detect. Outside precise
 * mode (kernels/matmul.h) the model's weights are packed for fast generation
 * (model/pack.h). */
mt_status mt_session_open(mt_session *s, const char *model_path, int threads,
                          const char *chat_override);
/* End-of-turn tokens of the session's chat family present in the vocabulary (at most cap);
 * returns how many. */
int mt_session_stop_tokens(const mt_session *s, int32_t *ids, int cap);

/* Tokens of a prompt: raw text as it is (BOS added when the model wants one), or, when raw
 * is NULL, msgs rendered with the chat template and its generation prompt. */
mt_status mt_session_encode(const mt_session *s, const mt_chat_msg *msgs, int n, const char *raw,
                            int32_t **ids, size_t *n_ids);

/* A JSON constraint (infer/constraint.h) for decoding with this session's model. The
 * session indexes its vocabulary on first use; the constraint must be freed before the
 * session is closed. */
mt_status mt_session_constraint(mt_session *s, const char *schema_json, size_t len,
                                mt_json_constraint **out);

void mt_session_close(mt_session *s);

#endif
