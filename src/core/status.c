#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

/* Messages quote what was read (names, values, replies), which may hold control
 * characters: they are stored as escapes, so a message is always one line of text. */
static void store(const char *msg) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        char esc[8];
        int n = 1;
        if (*p == '\n' || *p == '\t' || *p == '\r')
            n = snprintf(esc, sizeof esc, "\\%c", *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r');
        else if (*p < 0x20 || *p == 0x7f)
            n = snprintf(esc, sizeof esc, "\\x%02x", *p);
        else
            esc[0] = (char)*p;
        if (o + (size_t)n >= sizeof last_error) break;
        memcpy(last_error + o, esc, (size_t)n);
        o += (size_t)n;
    }
    last_error[o] = 0;
}

mt_status mt_fail(mt_status code, const char *fmt, ...) {
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    store(msg);
    return code;
}

mt_status mt_fail_prefix(mt_status code, const char *prefix) {
    char msg[2 * sizeof last_error]; /* store() cuts it to size */
    snprintf(msg, sizeof msg, "%s: %s", prefix, last_error);
    store(msg);
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
