/* Chat templates for the supported families, rendered in C (no Jinja at run time). The
 * family is picked from the model's template text or architecture and can be overridden. */
#ifndef MT_TOKENIZER_CHAT_H
#define MT_TOKENIZER_CHAT_H

#include <stddef.h>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

typedef enum { MT_CHAT_NONE = 0, MT_CHAT_CHATML, MT_CHAT_LLAMA3, MT_CHAT_GEMMA } mt_chat_family;

typedef struct {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} mt_chat_msg;

/* Picks a family from a template text (may be NULL) and the architecture name. */
mt_chat_family mt_chat_detect(const char *template_text, const char *arch);
/* Parses "chatml", "llama3", "gemma"; MT_ERR_ARG for anything else. */
mt_status mt_chat_family_parse(const char *name, mt_chat_family *out);
const char *mt_chat_family_name(mt_chat_family f);

/* Renders messages; add_generation_prompt opens the assistant turn. The text includes
 * BOS where the family's template does (Llama-3, Gemma), so encode it with
 * add_special = 0 and parse_special = 1. *out is malloc'ed. */
mt_status mt_chat_render(mt_chat_family f, const mt_tokenizer *t, const mt_chat_msg *msgs, size_t n,
                         int add_generation_prompt, char **out);

/* Strings that end an assistant turn for this family (NULL-terminated list). */
const char *const *mt_chat_stop_pieces(mt_chat_family f);

#endif
