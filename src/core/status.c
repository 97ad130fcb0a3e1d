#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

mt_status mt_fail(mt_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

mt_status mt_fail_prefix(mt_status code, const char *prefix) {
    char copy[sizeof last_error];
    memcpy(copy, last_error, sizeof copy);
    size_t n = strlen(prefix);
    if (n > sizeof last_error - 3) n = sizeof last_error - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t room = sizeof last_error - n - 3;
    size_t m = strnlen(copy, room);
    memcpy(last_error + n + 2, copy, m);
    last_error[n + 2 + m] = 0;
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
    case MT_OK:
        return "ok";
    case MT_ERR_IO:
        return "i/o error";
    case MT_ERR_FORMAT:
        return "format error";
    case MT_ERR_UNSUPPORTED:
        return "unsupported";
    case MT_ERR_NOMEM:
        return "out of memory";
    case MT_ERR_ARG:
        return "bad argument";
    case MT_ERR_INTERNAL:
        return "internal error";
    case MT_ERR_REMOTE:
        return "remote error";
    case MT_ERR_BUDGET:
        return "budget reached";
    }
    return "unknown error";
}
