#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

mt_status mt_fail(mt_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

const char *mt_last_error(void) {
    return last_error;
}

void mt_clear_error(void) {
    last_error[0] = '\0';
}

const char *mt_status_name(mt_status s) {
    switch (s) {
    case MT_OK: return "ok";
    case MT_ERR_IO: return "i/o error";
    case MT_ERR_FORMAT: return "format error";
    case MT_ERR_UNSUPPORTED: return "unsupported";
    case MT_ERR_NOMEM: return "out of memory";
    case MT_ERR_ARG: return "bad argument";
    case MT_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}
