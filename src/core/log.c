#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

static mt_log_level current_level = MT_LOG_WARN;

void mt_log_set_level(mt_log_level level) {
    current_level = level;
}

mt_log_level mt_log_get_level(void) {
    return current_level;
}

void mt_log(mt_log_level level, const char *fmt, ...) {
    if (level > current_level) return;
    static const char *const prefix[] = {"error", "warning", "info", "debug"};
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "meteor: %s: ", prefix[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
