/* Which chat family a model speaks, from its template text or architecture. */
#include <string.h>

#include "tokenizer/chat.h"

mt_chat_family mt_chat_detect(const char *template_text, const char *arch) {
    if (template_text) {
        if (strstr(template_text, "<|im_start|>")) return MT_CHAT_CHATML;
        if (strstr(template_text, "<|start_header_id|>")) return MT_CHAT_LLAMA3;
        if (strstr(template_text, "<start_of_turn>")) return MT_CHAT_GEMMA;
    }
    if (arch) {
        if (!strncmp(arch, "gemma", 5)) return MT_CHAT_GEMMA;
        if (!strncmp(arch, "qwen", 4)) return MT_CHAT_CHATML;
    }
    return MT_CHAT_NONE;
}

static const struct {
    const char *name;
    mt_chat_family f;
} families[] = {{"chatml", MT_CHAT_CHATML}, {"llama3", MT_CHAT_LLAMA3}, {"gemma", MT_CHAT_GEMMA}};

mt_status mt_chat_family_parse(const char *name, mt_chat_family *out) {
    for (size_t i = 0; name && i < sizeof families / sizeof families[0]; i++) {
        if (!strcmp(name, families[i].name)) {
            *out = families[i].f;
            return MT_OK;
        }
    }
    return mt_fail(MT_ERR_ARG, "unknown chat template '%s' (chatml, llama3, gemma)",
                   name ? name : "");
}

const char *mt_chat_family_name(mt_chat_family f) {
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (families[i].f == f) return families[i].name;
    return "none";
}

const char *const *mt_chat_stop_pieces(mt_chat_family f) {
    static const char *const chatml[] = {"<|im_end|>", "<|endoftext|>", NULL};
    static const char *const llama3[] = {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>", NULL};
    static const char *const gemma[] = {"<end_of_turn>", "<eos>", NULL};
    static const char *const none[] = {NULL};
    switch (f) {
    case MT_CHAT_CHATML:
        return chatml;
    case MT_CHAT_LLAMA3:
        return llama3;
    case MT_CHAT_GEMMA:
        return gemma;
    case MT_CHAT_NONE:
        break;
    }
    return none;
}
