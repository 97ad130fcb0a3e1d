/* Retry policy of the remote expert: which HTTP answers are worth another try, how long
 * to wait before it (exponential backoff with full jitter), and the server's Retry-After. */
#ifndef MT_EXPERT_RETRY_H
#define MT_EXPERT_RETRY_H

#include "core/rng.h"

/* A server's Retry-After is honoured up to this many seconds. */
#define MT_RETRY_AFTER_CAP_S 300.0

typedef enum {
    MT_HTTP_SUCCESS,   /* 2xx: read the body */
    MT_HTTP_RETRY,     /* 408, 425, 429, 5xx: transient */
    MT_HTTP_FAIL,      /* other 4xx (400, 422, ...): this request is wrong, do not repeat it */
    MT_HTTP_REFUSED,   /* 401, 403: the key is wrong for every request */
    MT_HTTP_NOT_OPENAI /* 404, 405, 1xx, 3xx: the URL is not a chat completions endpoint */
} mt_http_class;

mt_http_class mt_http_classify(long status);

/* Seconds before retry number `retry` (0 for the first retry): uniform in
 * [0, min(max_s, base_s * 2^retry)] ("full jitter", so clients that failed together do not
 * come back together). */
double mt_backoff_delay(mt_rng *rng, int retry, double base_s, double max_s);

/* A Retry-After header value: delay-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015
 * 07:28:00 GMT", also the RFC 850 and asctime forms), relative to now_unix (seconds since
 * the epoch). Returns 1 with *out_s >= 0 (a date in the past gives 0, a huge value is
 * capped at MT_RETRY_AFTER_CAP_S), 0 when the value is neither. */
int mt_retry_after_parse(const char *value, double now_unix, double *out_s);

#endif
