#include "pipeline/prompt_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

char *mt_prompt_format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0) out = NULL;
    va_end(ap);
    return out;
}
