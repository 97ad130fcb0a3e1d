#include "core/range.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mt_range_contains(mt_range r, double v) {
    if (!isfinite(v)) return 0;
    if (r.lo_open ? !(v > r.lo) : !(v >= r.lo)) return 0;
    if (r.hi_open ? !(v < r.hi) : !(v <= r.hi)) return 0;
    return 1;
}

/* The shortest text that reads back as v (1e+308, not 1.0000000000000001e+308). */
static void number_text(double v, char *buf, size_t size) {
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) return;
    }
}

void mt_range_describe(mt_range r, int whole, char *buf, size_t size) {
    char lo[32], hi[32];
    number_text(r.lo, lo, sizeof lo);
    number_text(r.hi, hi, sizeof hi);
    const int has_lo = isfinite(r.lo), has_hi = isfinite(r.hi);
    if (whole && has_lo && has_hi && !r.lo_open && !r.hi_open) {
        snprintf(buf, size, "%s .. %s", lo, hi);
        return;
    }
    snprintf(buf, size, "%s%s%s%s%s%s", whole ? "a whole number" : "a finite number",
             has_lo ? (r.lo_open ? " > " : " >= ") : "", has_lo ? lo : "",
             has_lo && has_hi ? " and" : "", has_hi ? (r.hi_open ? " < " : " <= ") : "",
             has_hi ? hi : "");
}

mt_status mt_range_fail(mt_status code, const char *what, const char *text, mt_range r, int whole) {
    char range[128];
    mt_range_describe(r, whole, range, sizeof range);
    return mt_fail(code, "%s = %s is out of range (%s)", what, text, range);
}

static mt_status fail_value(mt_status code, const char *what, double v, mt_range r, int whole) {
    char text[32];
    number_text(v, text, sizeof text);
    return mt_range_fail(code, what, text, r, whole);
}

mt_status mt_range_int(mt_status code, const char *what, double v, mt_range r, int *out) {
    if (!mt_range_contains(r, v) || v < INT_MIN || v > INT_MAX)
        return fail_value(code, what, v, r, 1);
    if (v != floor(v)) {
        char text[32];
        number_text(v, text, sizeof text);
        return mt_fail(code, "%s = %s is not a whole number", what, text);
    }
    *out = (int)v;
    return MT_OK;
}

mt_status mt_range_float(mt_status code, const char *what, double v, mt_range r, float *out) {
    if (!mt_range_contains(r, v) || fabs(v) > FLT_MAX || !mt_range_contains(r, (float)v))
        return fail_value(code, what, v, r, 0);
    *out = (float)v;
    return MT_OK;
}

mt_status mt_range_double(mt_status code, const char *what, double v, mt_range r, double *out) {
    if (!mt_range_contains(r, v)) return fail_value(code, what, v, r, 0);
    *out = v;
    return MT_OK;
}

mt_status mt_range_parse_int(mt_status code, const char *what, const char *text, mt_range r,
                             int *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end) return mt_fail(code, "%s expects an integer, got '%s'", what, text);
    if (errno == ERANGE || !mt_range_contains(r, (double)v) || v < INT_MIN || v > INT_MAX)
        return mt_range_fail(code, what, text, r, 1);
    *out = (int)v;
    return MT_OK;
}

mt_status mt_range_parse_float(mt_status code, const char *what, const char *text, mt_range r,
                               float *out) {
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end) return mt_fail(code, "%s expects a number, got '%s'", what, text);
    if (!mt_range_contains(r, v) || fabs(v) > FLT_MAX || !mt_range_contains(r, (float)v))
        return mt_range_fail(code, what, text, r, 0);
    *out = (float)v;
    return MT_OK;
}

mt_status mt_range_parse_u64(mt_status code, const char *what, const char *text, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    const char *p = text;
    while (*p == ' ' || *p == '\t') p++;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || *end || *p == '-' || *p == '+')
        return mt_fail(code, "%s expects a non-negative integer, got '%s'", what, text);
    if (errno == ERANGE)
        return mt_fail(code, "%s = %s is out of range (0 .. %llu)", what, text, ULLONG_MAX);
    *out = v;
    return MT_OK;
}
