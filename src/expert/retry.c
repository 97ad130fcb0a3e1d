#include "expert/retry.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

mt_http_class mt_http_classify(long status) {
    if (status >= 200 && status < 300) return MT_HTTP_SUCCESS;
    if (status == 401 || status == 403) return MT_HTTP_REFUSED;
    if (status == 408 || status == 425 || status == 429 || (status >= 500 && status < 600))
        return MT_HTTP_RETRY;
    if (status >= 400 && status < 500 && status != 404 && status != 405) return MT_HTTP_FAIL;
    return MT_HTTP_NOT_OPENAI;
}

double mt_backoff_delay(mt_rng *rng, int retry, double base_s, double max_s) {
    if (retry < 0) retry = 0;
    /* 2^retry overflows nothing in double up to 1023; clamp well before. */
    const double ceil_s = fmin(max_s, base_s * ldexp(1.0, retry < 60 ? retry : 60));
    return ceil_s > 0 ? ceil_s * mt_rng_uniform(rng) : 0;
}

static int month_index(const char *m) {
    static const char *const names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++)
        if (!strncasecmp(m, names[i], 3) && m[3] == '\0') return i;
    return -1;
}

typedef struct {
    char mon[4];
    int d, y, hh, mm, ss, n; /* n: characters consumed */
} date_fields;

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
static int scan_imf(const char *s, date_fields *f) {
    char wday[16];
    return sscanf(s, "%15[A-Za-z], %d %3s %d %d:%d:%d GMT%n", wday, &f->d, f->mon, &f->y, &f->hh,
                  &f->mm, &f->ss, &f->n) == 7;
}

/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
static int scan_rfc850(const char *s, date_fields *f) {
    char wday[16];
    if (sscanf(s, "%15[A-Za-z], %d-%3s-%d %d:%d:%d GMT%n", wday, &f->d, f->mon, &f->y, &f->hh,
               &f->mm, &f->ss, &f->n) != 7)
        return 0;
    f->y += f->y < 70 ? 2000 : f->y < 100 ? 1900 : 0;
    return 1;
}

/* asctime: "Sun Nov  6 08:49:37 1994" */
static int scan_asctime(const char *s, date_fields *f) {
    char wday[16];
    return sscanf(s, "%15[A-Za-z] %3s %d %d:%d:%d %d%n", wday, f->mon, &f->d, &f->hh, &f->mm,
                  &f->ss, &f->y, &f->n) == 7;
}

/* The three date forms of RFC 9110 5.6.7, as seconds since the epoch (UTC). */
static int parse_http_date(const char *s, double *out) {
    int (*const forms[])(const char *, date_fields *) = {scan_imf, scan_rfc850, scan_asctime};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        date_fields f = {0};
        if (!forms[i](s, &f) || !f.n) continue;
        const char *rest = s + f.n;
        while (isspace((unsigned char)*rest)) rest++;
        const int m = month_index(f.mon);
        if (*rest || m < 0 || f.d < 1 || f.d > 31 || f.hh > 23 || f.mm > 59 || f.ss > 60 ||
            f.y < 1970)
            return 0;
        struct tm tm = {.tm_year = f.y - 1900,
                        .tm_mon = m,
                        .tm_mday = f.d,
                        .tm_hour = f.hh,
                        .tm_min = f.mm,
                        .tm_sec = f.ss};
        *out = (double)timegm(&tm);
        return 1;
    }
    return 0;
}

int mt_retry_after_parse(const char *value, double now_unix, double *out_s) {
    if (!value) return 0;
    while (isspace((unsigned char)*value)) value++;
    double s;
    if (isdigit((unsigned char)*value)) {
        char *end;
        s = strtod(value, &end);
        while (isspace((unsigned char)*end)) end++;
        if (*end || !isfinite(s)) return 0;
    } else {
        double when;
        if (!parse_http_date(value, &when)) return 0;
        s = when - now_unix;
    }
    *out_s = s < 0 ? 0 : s > MT_RETRY_AFTER_CAP_S ? MT_RETRY_AFTER_CAP_S : s;
    return 1;
}
