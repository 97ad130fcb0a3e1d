/* Text to ids: cut out special tokens, normalise each remaining fragment, pre-tokenise,
 * and merge every piece. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static const char META[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's visible space */

/* Normalised copy of a fragment (*out malloc'ed). */
static mt_status normalize(const mt_tokenizer *t, const char *s, size_t len, int at_start,
                           char **out, size_t *out_len) {
    char *buf = malloc(len * 3 + 4);
    if (!buf) return mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    size_t n = 0;
    if (t->byte_level && t->bl_prefix_space && s[0] != ' ') buf[n++] = ' ';
    int starts_meta = len >= 3 && !memcmp(s, META, 3);
    int wants_prefix =
        t->prepend == MT_PREPEND_ALWAYS || (t->prepend == MT_PREPEND_FIRST && at_start);
    if (wants_prefix && !(starts_meta || (t->space_to_meta && s[0] == ' '))) {
        memcpy(buf, META, 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (t->space_to_meta && s[i] == ' ') {
            memcpy(buf + n, META, 3);
            n += 3;
        } else {
            buf[n++] = s[i];
        }
    }
    *out = buf;
    *out_len = n;
    return MT_OK;
}

static mt_status encode_fragment(const mt_tokenizer *t, const char *s, size_t len, int at_start,
                                 mt_idvec *out) {
    if (len == 0) return MT_OK;
    char *norm = NULL;
    size_t n = 0;
    mt_status st = normalize(t, s, len, at_start, &norm, &n);
    if (st != MT_OK) return st;
    mt_span *spans = NULL;
    size_t n_spans = 0;
    st = mt_pretok_split(t, norm, n, &spans, &n_spans);
    for (size_t i = 0; st == MT_OK && i < n_spans; i++)
        st = mt_encode_piece(t, norm + spans[i].off, spans[i].len, out);
    free(spans);
    free(norm);
    return st;
}

static mt_status encode_text(const mt_tokenizer *t, const char *text, size_t len, int parse_special,
                             mt_idvec *out) {
    size_t run = 0;
    for (size_t i = 0; i < len;) {
        int32_t id;
        size_t m = mt_special_match(t, text + i, len - i, parse_special, &id);
        if (m == 0) {
            i++;
            continue;
        }
        mt_status st = encode_fragment(t, text + run, i - run, run == 0, out);
        if (st == MT_OK) st = mt_idvec_push(out, id);
        if (st != MT_OK) return st;
        i += m;
        run = i;
    }
    return encode_fragment(t, text + run, len - run, run == 0, out);
}

mt_status mt_tokenize(const mt_tokenizer *t, const char *text, size_t len, int add_special,
                      int parse_special, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!t || (!text && len)) return mt_fail(MT_ERR_ARG, "tokenizer: no text");
    mt_idvec out = {0};
    mt_status st = MT_OK;
    if (add_special && t->add_bos && t->bos >= 0) st = mt_idvec_push(&out, t->bos);
    if (st == MT_OK) st = encode_text(t, text, len, parse_special, &out);
    if (st == MT_OK && add_special && t->add_eos && t->eos >= 0) st = mt_idvec_push(&out, t->eos);
    /* An empty result still hands back a pointer, so callers free without a check. */
    if (st == MT_OK && !out.ids && !(out.ids = malloc(sizeof *out.ids)))
        st = mt_fail(MT_ERR_NOMEM, "tokenizer: out of memory");
    if (st != MT_OK) {
        free(out.ids);
        return st;
    }
    *ids = out.ids;
    *n_ids = out.n;
    return MT_OK;
}
