/* One conversation to tokens: rendered with the chat template, tokenised, and split into
 * prompt and answer at the token where the assistant's words begin. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "train/data_internal.h"

/* The prompt (up to the opened assistant turn) and the whole conversation cut right after
 * the assistant's end-of-turn marker, so no untrained text trails the answer. */
typedef struct {
    char *prompt, *full;
    size_t prompt_len, full_len;
    int32_t first, last; /* token put before / after the text (BOS / EOS), -1 for none */
} texts;

static void texts_free(texts *t) {
    free(t->prompt);
    free(t->full);
}

static const char *find_last(const char *hay, const char *needle) {
    const char *last = NULL;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) last = p;
    return last;
}

/* The template's end-of-turn marker is the last stop piece in the text: the answer
 * comes before it, and what follows it (a newline) holds no stop piece. */
static mt_status cut_after_turn(mt_chat_family fam, texts *t) {
    const char *best = NULL;
    size_t best_len = 0;
    for (const char *const *p = mt_chat_stop_pieces(fam); *p; p++) {
        const char *at = find_last(t->full + t->prompt_len, *p);
        if (at && (!best || at > best)) best = at, best_len = strlen(*p);
    }
    if (!best)
        return mt_fail(MT_ERR_INTERNAL,
                       "chat template '%s' wrote no end-of-turn marker after "
                       "the answer",
                       mt_chat_family_name(fam));
    t->full_len = (size_t)(best - t->full) + best_len;
    return MT_OK;
}

static mt_status render_chat(const mt_tokenizer *tok, mt_chat_family fam, const char *system,
                             const char *user, const char *answer, texts *t) {
    mt_chat_msg msgs[3];
    size_t n = 0;
    if (system) msgs[n++] = (mt_chat_msg){"system", system};
    msgs[n++] = (mt_chat_msg){"user", user};
    msgs[n] = (mt_chat_msg){"assistant", answer};
    mt_status st = mt_chat_render(fam, tok, msgs, n, 1, &t->prompt);
    if (st == MT_OK) st = mt_chat_render(fam, tok, msgs, n + 1, 0, &t->full);
    if (st) return st;
    t->prompt_len = strlen(t->prompt);
    if (strncmp(t->full, t->prompt, t->prompt_len) != 0)
        return mt_fail(MT_ERR_UNSUPPORTED,
                       "chat template '%s' is not prefix-stable: the "
                       "prompt it renders is not the start of the rendered conversation",
                       mt_chat_family_name(fam));
    t->first = t->last = -1;
    return cut_after_turn(fam, t);
}

/* Without a template, plain text as a base model reads it: "system\n\nquestion\n\n"
 * (system only when given), the answer, then EOS. */
static mt_status render_plain(const mt_tokenizer *tok, const char *system, const char *user,
                              const char *answer, texts *t) {
    size_t ns = system ? strlen(system) + 2 : 0, nu = strlen(user), na = strlen(answer);
    t->last = mt_tokenizer_eos(tok);
    if (t->last < 0)
        return mt_fail(MT_ERR_UNSUPPORTED, "the model has neither a chat template nor an EOS "
                                           "token to end an answer with");
    t->first = mt_tokenizer_adds_bos(tok) ? mt_tokenizer_bos(tok) : -1;
    t->prompt_len = ns + nu + 2;
    t->full_len = t->prompt_len + na;
    t->prompt = malloc(t->prompt_len + 1);
    t->full = malloc(t->full_len + 1);
    if (!t->prompt || !t->full) return mt_fail(MT_ERR_NOMEM, "data: out of memory");
    if (system) {
        memcpy(t->prompt, system, ns - 2);
        memcpy(t->prompt + ns - 2, "\n\n", 2);
    }
    memcpy(t->prompt + ns, user, nu);
    memcpy(t->prompt + ns + nu, "\n\n", 3);
    memcpy(t->full, t->prompt, t->prompt_len);
    memcpy(t->full + t->prompt_len, answer, na + 1);
    return MT_OK;
}

static int starts_with(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return nb <= na && (nb == 0 || !memcmp(a, b, nb * sizeof *b));
}

/* The prompt's tokens (*p, np of them, reused and taken over) followed by the tokens of
 * the answer text alone. */
static mt_status prompt_then_answer(const mt_tokenizer *tok, const texts *t, int32_t **p, size_t np,
                                    int32_t **ids, size_t *n) {
    int32_t *a;
    size_t na;
    mt_status st =
        mt_tokenize(tok, t->full + t->prompt_len, t->full_len - t->prompt_len, 0, 1, &a, &na);
    if (st) return st;
    int32_t *joined = realloc(*p, (np + na + 1) * sizeof *joined);
    if (!joined) {
        free(a);
        return mt_fail(MT_ERR_NOMEM, "data: out of memory");
    }
    memcpy(joined + np, a, na * sizeof *a);
    free(a);
    *p = NULL;
    *ids = joined, *n = np + na;
    return MT_OK;
}

/* Tokens of prompt and answer. The whole conversation is tokenised at once, which is what
 * Hugging Face's apply_chat_template gives. Where a merge crosses the boundary (a ChatML
 * answer that opens with a blank line joins the "\n" of "assistant\n"), the prompt's own
 * tokens and the answer text's tokens are concatenated instead: at generation time the
 * model sees exactly the prompt's tokens, so training must continue from those. */
static mt_status tokenize_split(const mt_tokenizer *tok, const texts *t, int32_t **ids, size_t *n,
                                size_t *n_prompt) {
    int32_t *p = NULL, *f = NULL;
    size_t np = 0, nf = 0;
    mt_status st = mt_tokenize(tok, t->prompt, t->prompt_len, 0, 1, &p, &np);
    if (st == MT_OK) st = mt_tokenize(tok, t->full, t->full_len, 0, 1, &f, &nf);
    if (st == MT_OK && !starts_with(f, nf, p, np)) {
        free(f);
        f = NULL;
        st = prompt_then_answer(tok, t, &p, np, &f, &nf);
    }
    free(p);
    if (st) {
        free(f);
        return st;
    }
    *ids = f, *n = nf, *n_prompt = np;
    return MT_OK;
}

/* Adds the BOS/EOS that plain-text examples carry around the tokenised text. */
static mt_status frame(const texts *t, const int32_t *ids, size_t n, size_t n_prompt,
                       mt_sft_example *out) {
    size_t total = n + (t->first >= 0) + (t->last >= 0);
    if (total > INT_MAX / 2)
        return mt_fail(MT_ERR_UNSUPPORTED, "example of %zu tokens is too long", total);
    int32_t *tokens = malloc(total * sizeof *tokens);
    if (!tokens) return mt_fail(MT_ERR_NOMEM, "data: out of memory");
    size_t k = 0;
    if (t->first >= 0) tokens[k++] = t->first;
    memcpy(tokens + k, ids, n * sizeof *ids);
    k += n;
    if (t->last >= 0) tokens[k++] = t->last;
    out->tokens = tokens;
    out->n = (int)total;
    out->n_prompt = (int)(n_prompt + (t->first >= 0));
    out->truncated = 0;
    if (out->n_prompt >= out->n) {
        free(tokens);
        out->tokens = NULL;
        return mt_fail(MT_ERR_INTERNAL, "the answer gave no tokens");
    }
    return MT_OK;
}

mt_status mt_data_encode(const mt_tokenizer *tok, mt_chat_family fam, const char *system,
                         const char *user, const char *answer, mt_sft_example *out) {
    texts t = {0};
    mt_status st = fam == MT_CHAT_NONE ? render_plain(tok, system, user, answer, &t)
                                       : render_chat(tok, fam, system, user, answer, &t);
    int32_t *ids = NULL;
    size_t n = 0, n_prompt = 0;
    if (st == MT_OK) st = tokenize_split(tok, &t, &ids, &n, &n_prompt);
    if (st == MT_OK) st = frame(&t, ids, n, n_prompt, out);
    free(ids);
    texts_free(&t);
    return st;
}

mt_fit mt_data_fit_check(const mt_sft_example *e, int max_len) {
    if (max_len <= 0 || e->n <= max_len) return MT_FIT_KEPT;
    return e->n_prompt >= max_len ? MT_FIT_DROPPED : MT_FIT_TRUNCATED;
}

/* The end of the answer goes; the prompt stays whole so the model still learns to answer
 * the question it will be asked. */
void mt_data_fit_apply(mt_sft_example *e, int max_len) {
    if (mt_data_fit_check(e, max_len) != MT_FIT_TRUNCATED) return;
    e->n = max_len;
    e->truncated = 1;
}
