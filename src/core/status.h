/* Errors are values: every fallible function returns mt_status and, on failure,
 * records one human-readable message that the CLI prints once. */
#ifndef MT_CORE_STATUS_H
#define MT_CORE_STATUS_H

typedef enum {
    MT_OK = 0,
    MT_ERR_IO,          /* file missing, unreadable, short read */
    MT_ERR_FORMAT,      /* corrupt or malformed input */
    MT_ERR_UNSUPPORTED, /* well-formed input we do not handle (arch, dtype) */
    MT_ERR_NOMEM,
    MT_ERR_ARG,      /* bad flag or argument */
    MT_ERR_INTERNAL, /* a bug: invariant broken */
    MT_ERR_REMOTE,   /* a remote service refused us for good (401, not an OpenAI endpoint) */
    MT_ERR_BUDGET    /* a cost or request budget was reached: stopped cleanly, resumable */
} mt_status;

/* Records the message for the current thread and returns `code`, so callers write
 * `return mt_fail(MT_ERR_FORMAT, "gguf: bad magic in %s", path);` */
mt_status mt_fail(mt_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to the recorded message (e.g. the file being read) and returns code. */
mt_status mt_fail_prefix(mt_status code, const char *prefix);

/* The last message recorded on this thread ("" if none). */
const char *mt_last_error(void);

/* Clears the recorded message. */
void mt_clear_error(void);

const char *mt_status_name(mt_status s);

#endif
