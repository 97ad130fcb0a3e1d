/* Pre-tokenisation: a chain of regex splits applied piece by piece, as Hugging Face's
 * Split/ByteLevel/Digits pre-tokenizers and llama.cpp's per-model regex lists do. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "tokenizer/tok_internal.h"

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                     \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

mt_status mt_pretok_add_regex(mt_tokenizer *t, const char *pattern, int literal,
                              mt_split_behavior behavior) {
    int err;
    PCRE2_SIZE err_off;
    /* PCRE2 refuses UCP together with LITERAL; a literal needs no character classes. */
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &err, &err_off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return mt_fail(MT_ERR_FORMAT, "tokenizer: bad pre-tokenizer regex at %zu: %s",
                       (size_t)err_off, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up; falls back silently */
    mt_pretok_step *grown = realloc(t->steps, (size_t)(t->n_steps + 1) * sizeof *grown);
    if (!grown) {
        pcre2_code_free(re);
        return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    }
    t->steps = grown;
    t->steps[t->n_steps].re = re;
    t->steps[t->n_steps].behavior = behavior;
    t->n_steps++;
    return MT_OK;
}

mt_status mt_pretok_add_gpt2(mt_tokenizer *t) {
    return mt_pretok_add_regex(t, RE_GPT2, 0, MT_SPLIT_ISOLATED);
}

/* Names as llama.cpp writes them in tokenizer.ggml.pre. */
mt_status mt_pretok_add_preset(mt_tokenizer *t, const char *pre) {
    if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-bpe") || !strcmp(pre, "llama-v3") ||
        !strcmp(pre, "falcon3") || !strcmp(pre, "smaug-bpe") || !strcmp(pre, "dbrx")) {
        t->ignore_merges = 1; /* llama.cpp and tokenizer.json agree on this for Llama 3 */
        return mt_pretok_add_regex(t, RE_LLAMA3, 0, MT_SPLIT_ISOLATED);
    }
    if (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen") || !strcmp(pre, "megrez"))
        return mt_pretok_add_regex(t, RE_QWEN2, 0, MT_SPLIT_ISOLATED);
    if (!strcmp(pre, "smollm") || !strcmp(pre, "starcoder") || !strcmp(pre, "refact") ||
        !strcmp(pre, "codeshell") || !strcmp(pre, "command-r")) {
        mt_status st = mt_pretok_add_regex(t, "\\p{N}", 0, MT_SPLIT_ISOLATED);
        return st ? st : mt_pretok_add_gpt2(t);
    }
    if (strcmp(pre, "gpt2") && strcmp(pre, "gpt-2") && strcmp(pre, "default"))
        MT_WARN("tokenizer: pre-tokenizer '%s' unknown, using GPT-2's", pre);
    return mt_pretok_add_gpt2(t);
}

void mt_pretok_free(mt_tokenizer *t) {
    for (int i = 0; i < t->n_steps; i++) pcre2_code_free((pcre2_code *)t->steps[i].re);
    free(t->steps);
    t->steps = NULL;
    t->n_steps = 0;
}

typedef struct {
    mt_span *s;
    size_t n, cap;
} spanvec;

static int span_push(spanvec *v, size_t off, size_t len) {
    if (len == 0) return 1;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 32;
        mt_span *grown = realloc(v->s, cap * sizeof *grown);
        if (!grown) return 0;
        v->s = grown;
        v->cap = cap;
    }
    v->s[v->n].off = off;
    v->s[v->n].len = len;
    v->n++;
    return 1;
}

/* Where the pieces cut by one match start and end, by behavior. */
static int emit_match(spanvec *out, mt_split_behavior b, size_t *start, size_t ms, size_t me) {
    int ok = 1;
    switch (b) {
    case MT_SPLIT_ISOLATED:
        ok = span_push(out, *start, ms - *start) && span_push(out, ms, me - ms);
        *start = me;
        break;
    case MT_SPLIT_REMOVED:
        ok = span_push(out, *start, ms - *start);
        *start = me;
        break;
    case MT_SPLIT_MERGED_PREV:
        ok = span_push(out, *start, me - *start);
        *start = me;
        break;
    case MT_SPLIT_MERGED_NEXT:
        ok = span_push(out, *start, ms - *start);
        *start = ms;
        break;
    }
    return ok;
}

static mt_status split_one(const mt_pretok_step *st, const char *text, mt_span in, spanvec *out,
                           pcre2_match_data *md) {
    const pcre2_code *re = st->re;
    size_t pos = 0, start = 0;
    const char *subject = text + in.off;
    while (pos <= in.len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)subject, in.len, pos, 0, md, NULL);
        /* JIT's small default stack can run out on huge pieces; the interpreter cannot. */
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, (PCRE2_SPTR)subject, in.len, pos, PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return mt_fail(MT_ERR_INTERNAL, "tokenizer: regex match failed (%d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* an empty match cuts nothing; step over one character */
            uint32_t cp;
            pos = ms + (ms < in.len ? (size_t)mt_utf8_next(subject + ms, in.len - ms, &cp) : 1);
            continue;
        }
        if (!emit_match(out, st->behavior, &start, ms, me)) goto nomem;
        pos = me;
    }
    if (!span_push(out, start, in.len - start)) goto nomem;
    return MT_OK;
nomem:
    return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
}

static mt_status apply_step(const mt_pretok_step *st, const char *text, spanvec *cur,
                            pcre2_match_data *md) {
    spanvec next = {0};
    for (size_t i = 0; i < cur->n; i++) {
        size_t first = next.n;
        mt_status s = split_one(st, text, cur->s[i], &next, md);
        if (s != MT_OK) {
            free(next.s);
            return s;
        }
        /* split_one reports offsets relative to its piece. */
        for (size_t k = first; k < next.n; k++) next.s[k].off += cur->s[i].off;
    }
    free(cur->s);
    *cur = next;
    return MT_OK;
}

mt_status mt_pretok_split(const mt_tokenizer *t, const char *text, size_t len, mt_span **spans,
                          size_t *n_spans) {
    spanvec cur = {0};
    if (!span_push(&cur, 0, len) && len) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    pcre2_match_data *md = NULL;
    if (t->n_steps) {
        md = pcre2_match_data_create(4, NULL);
        if (!md) {
            free(cur.s);
            return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
        }
    }
    for (int i = 0; i < t->n_steps && cur.n; i++) {
        mt_status s = apply_step(&t->steps[i], text, &cur, md);
        if (s != MT_OK) {
            pcre2_match_data_free(md);
            free(cur.s);
            return s;
        }
    }
    pcre2_match_data_free(md);
    *spans = cur.s;
    *n_spans = cur.n;
    return MT_OK;
}
