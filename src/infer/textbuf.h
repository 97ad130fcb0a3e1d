/* Growing byte buffer for generated text. */
#ifndef MT_INFER_TEXTBUF_H
#define MT_INFER_TEXTBUF_H

#include <stddef.h>

#include "core/status.h"

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} mt_textbuf;

mt_status mt_textbuf_append(mt_textbuf *b, const char *s, size_t n);
void mt_textbuf_free(mt_textbuf *b);

#endif
