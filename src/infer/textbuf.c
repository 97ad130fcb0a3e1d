#include "infer/textbuf.h"

#include <stdlib.h>
#include <string.h>

mt_status mt_textbuf_append(mt_textbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return mt_fail(MT_ERR_NOMEM, "out of memory growing text to %zu bytes", cap);
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return MT_OK;
}

void mt_textbuf_free(mt_textbuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}
