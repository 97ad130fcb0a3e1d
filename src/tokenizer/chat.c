/* Chat rendering for the supported families. Each renderer reproduces what the family's
 * Jinja template produces for plain text messages, byte for byte. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat.h"

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len + 1) cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->oom = 1;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = '\0';
}

static void puts_(sbuf *b, const char *s) {
    put(b, s, strlen(s));
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Jinja's `| trim`. */
static void put_trimmed(sbuf *b, const char *s) {
    size_t len = strlen(s);
    while (len && is_ws(*s)) s++, len--;
    while (len && is_ws(s[len - 1])) len--;
    put(b, s, len);
}

static const char *bos_text(const mt_tokenizer *t, const char *dflt) {
    int32_t bos = t ? mt_tokenizer_bos(t) : -1;
    const char *piece = bos >= 0 ? mt_tokenizer_piece(t, bos) : NULL;
    return piece && piece[0] ? piece : dflt;
}

/* A ChatML template may write a default system prompt for conversations that bring none
 * (SmolLM2: "You are a helpful AI assistant named SmolLM, ..."). It is the literal that
 * follows "<|im_start|>system" plus a newline, up to "<|im_end|>", with no Jinja in it. */
static int default_system(const char *tpl, const char **start, size_t *len) {
    static const char open[] = "<|im_start|>system";
    for (const char *p = tpl ? strstr(tpl, open) : NULL; p; p = strstr(p + 1, open)) {
        const char *s = p + sizeof open - 1;
        if (*s == '\n')
            s++;
        else if (s[0] == '\\' && s[1] == 'n')
            s += 2;
        else
            continue;
        const char *end = strstr(s, "<|im_end|>");
        if (!end || end == s) continue;
        size_t n = (size_t)(end - s);
        if (memchr(s, '\'', n) || memchr(s, '"', n) || memchr(s, '{', n) || memchr(s, '+', n))
            continue;
        *start = s;
        *len = n;
        return 1;
    }
    return 0;
}

static void render_chatml(sbuf *b, const mt_tokenizer *t, const mt_chat_msg *m, size_t n, int gen) {
    const char *sys;
    size_t sys_len;
    if (n && strcmp(m[0].role, "system") &&
        default_system(t ? mt_tokenizer_chat_template(t) : NULL, &sys, &sys_len)) {
        puts_(b, "<|im_start|>system\n");
        put(b, sys, sys_len);
        puts_(b, "<|im_end|>\n");
    }
    for (size_t i = 0; i < n; i++) {
        puts_(b, "<|im_start|>");
        puts_(b, m[i].role);
        puts_(b, "\n");
        puts_(b, m[i].content);
        puts_(b, "<|im_end|>\n");
    }
    if (gen) puts_(b, "<|im_start|>assistant\n");
}

static void render_llama3(sbuf *b, const mt_tokenizer *t, const mt_chat_msg *m, size_t n, int gen) {
    puts_(b, bos_text(t, "<|begin_of_text|>"));
    for (size_t i = 0; i < n; i++) {
        puts_(b, "<|start_header_id|>");
        puts_(b, m[i].role);
        puts_(b, "<|end_header_id|>\n\n");
        put_trimmed(b, m[i].content);
        puts_(b, "<|eot_id|>");
    }
    if (gen) puts_(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Gemma has no system role: a system message becomes a prefix of the first user turn,
 * and turns must alternate user/model starting with the user. */
static mt_status render_gemma(sbuf *b, const mt_tokenizer *t, const mt_chat_msg *m, size_t n,
                              int gen) {
    const char *prefix = NULL;
    if (n && !strcmp(m[0].role, "system")) prefix = m[0].content, m++, n--;
    puts_(b, bos_text(t, "<bos>"));
    for (size_t i = 0; i < n; i++) {
        int user = !strcmp(m[i].role, "user");
        if (user != (i % 2 == 0) || (!user && strcmp(m[i].role, "assistant")))
            return mt_fail(MT_ERR_ARG,
                           "chat: Gemma needs alternating user/assistant turns, "
                           "got '%s' at turn %zu",
                           m[i].role, i + 1);
        puts_(b, "<start_of_turn>");
        puts_(b, user ? "user" : "model");
        puts_(b, "\n");
        if (i == 0 && prefix) {
            puts_(b, prefix);
            puts_(b, "\n\n");
        }
        put_trimmed(b, m[i].content);
        puts_(b, "<end_of_turn>\n");
    }
    if (gen) puts_(b, "<start_of_turn>model\n");
    return MT_OK;
}

mt_status mt_chat_render(mt_chat_family f, const mt_tokenizer *t, const mt_chat_msg *msgs, size_t n,
                         int add_generation_prompt, char **out) {
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return mt_fail(MT_ERR_ARG, "chat: message %zu has no role or content", i + 1);
    sbuf b = {0};
    mt_status st = MT_OK;
    switch (f) {
    case MT_CHAT_CHATML:
        render_chatml(&b, t, msgs, n, add_generation_prompt);
        break;
    case MT_CHAT_LLAMA3:
        render_llama3(&b, t, msgs, n, add_generation_prompt);
        break;
    case MT_CHAT_GEMMA:
        st = render_gemma(&b, t, msgs, n, add_generation_prompt);
        break;
    case MT_CHAT_NONE:
        st =
            mt_fail(MT_ERR_ARG, "chat: the model has no known chat template (use --chat-template)");
        break;
    }
    put(&b, "", 0);
    if (st == MT_OK && b.oom) st = mt_fail(MT_ERR_NOMEM, "chat: out of memory");
    if (st != MT_OK) {
        free(b.s);
        return st;
    }
    *out = b.s;
    return MT_OK;
}
