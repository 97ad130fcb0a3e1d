/* Ids back to text: whole sequences and a streaming decoder that never splits a UTF-8
 * character across two outputs. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* "<0xNN>" -> byte, or -1. */
static int byte_token_value(const char *s, size_t len) {
    if (len != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t unspell_byte_level(const char *s, size_t len, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = (size_t)mt_utf8_next(s + i, len - i, &cp);
        int b = mt_unicode_to_byte(cp);
        if (b >= 0) {
            out[n++] = (char)b;
        } else { /* not of the alphabet: pass the character through */
            memcpy(out + n, s + i, k);
            n += k;
        }
        i += k;
    }
    return n;
}

static size_t unspell_meta(const char *s, size_t len, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (i + 3 <= len && !memcmp(s + i, "\xe2\x96\x81", 3)) {
            out[n++] = ' ';
            i += 3;
        } else {
            out[n++] = s[i++];
        }
    }
    return n;
}

/* Decoded bytes never outnumber the stored text, so len bytes of scratch suffice. */
static size_t token_text(const mt_tokenizer *t, int32_t id, int render_special, char *out) {
    const mt_vocab *v = &t->v;
    const char *s = v->blob + v->off[id];
    size_t len = v->len[id];
    uint8_t type = v->type[id];
    if (type == MT_TT_CONTROL || type == MT_TT_UNKNOWN || type == MT_TT_UNUSED) {
        if (!render_special) return 0;
        memcpy(out, s, len);
        return len;
    }
    if (type == MT_TT_BYTE || (!t->byte_level && t->byte_fallback)) {
        int b = byte_token_value(s, len);
        if (b >= 0) {
            out[0] = (char)b;
            return 1;
        }
    }
    if (type == MT_TT_USER && t->byte_level) {
        memcpy(out, s, len);
        return len;
    }
    if (t->byte_level) return unspell_byte_level(s, len, out);
    return unspell_meta(s, len, out);
}

mt_status mt_token_bytes(const mt_tokenizer *t, int32_t id, int render_special, char *buf,
                         size_t cap, size_t *len) {
    *len = 0;
    if (id < 0 || id >= t->v.n)
        return mt_fail(MT_ERR_ARG, "tokenizer: token id %d out of range", (int)id);
    size_t need = t->v.len[id];
    char stack[256];
    char *tmp = need <= sizeof stack ? stack : malloc(need);
    if (!tmp) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    size_t n = token_text(t, id, render_special, tmp);
    mt_status st = MT_OK;
    if (n > cap)
        st = mt_fail(MT_ERR_ARG, "tokenizer: buffer of %zu bytes too small for token %d", cap,
                     (int)id);
    else
        memcpy(buf, tmp, n), *len = n;
    if (tmp != stack) free(tmp);
    return st;
}

mt_status mt_detokenize(const mt_tokenizer *t, const int32_t *ids, size_t n, int render_special,
                        char **out) {
    *out = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->v.n)
            return mt_fail(MT_ERR_ARG, "tokenizer: token id %d out of range", (int)ids[i]);
        total += t->v.len[ids[i]];
    }
    char *raw = malloc(total + 1);
    char *text = malloc(total * 3 + 1);
    if (!raw || !text) {
        free(raw);
        free(text);
        return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += token_text(t, ids[i], render_special, raw + len);
    size_t skip = t->strip_leading_space && len && raw[0] == ' ';
    /* Invalid UTF-8 (a byte sequence cut short) becomes U+FFFD, as Hugging Face does. */
    size_t m = mt_utf8_lossy((const uint8_t *)raw + skip, len - skip, text);
    text[m] = '\0';
    free(raw);
    *out = text;
    return MT_OK;
}

void mt_detok_stream_init(mt_detok_stream *s, const mt_tokenizer *t, int render_special) {
    memset(s, 0, sizeof *s);
    s->tok = t;
    s->render_special = render_special;
}

/* Moves the complete characters of buf to out, keeping a truncated tail in pending. */
static mt_status flush_complete(mt_detok_stream *s, const uint8_t *buf, size_t n, char *out,
                                size_t cap, size_t *len) {
    size_t o = 0, i = 0;
    while (i < n) {
        int k = mt_utf8_check(buf + i, n - i);
        if (k == 0) break;
        size_t emit = k > 0 ? (size_t)k : 3, used = k > 0 ? (size_t)k : (size_t)-k;
        if (o + emit + 1 > cap) return mt_fail(MT_ERR_ARG, "tokenizer: stream buffer too small");
        if (k > 0)
            memcpy(out + o, buf + i, emit);
        else
            memcpy(out + o, "\xef\xbf\xbd", 3);
        o += emit;
        i += used;
    }
    s->n_pending = (int)(n - i);
    memcpy(s->pending, buf + i, n - i);
    out[o] = '\0';
    *len = o;
    return MT_OK;
}

mt_status mt_detok_stream_push(mt_detok_stream *s, int32_t id, char *out, size_t cap, size_t *len) {
    *len = 0;
    if (cap == 0) return mt_fail(MT_ERR_ARG, "tokenizer: stream buffer too small");
    out[0] = '\0';
    const mt_tokenizer *t = s->tok;
    if (id < 0 || id >= t->v.n)
        return mt_fail(MT_ERR_ARG, "tokenizer: token id %d out of range", (int)id);
    size_t tl = t->v.len[id];
    uint8_t *buf = malloc((size_t)s->n_pending + tl + 1);
    if (!buf) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(buf, s->pending, (size_t)s->n_pending);
    size_t n =
        (size_t)s->n_pending + token_text(t, id, s->render_special, (char *)buf + s->n_pending);
    size_t skip = 0;
    if (s->n_emitted_tokens == 0 && t->strip_leading_space && n && buf[0] == ' ') skip = 1;
    if (n > (size_t)s->n_pending || skip) s->n_emitted_tokens++;
    mt_status st = flush_complete(s, buf + skip, n - skip, out, cap, len);
    free(buf);
    return st;
}
