/* Numbers read from files and flags, checked against the range they may take before
 * anything uses them, with one error that names the key or flag, the value and the range:
 * `max_position_embeddings = 1e+308 is out of range (1 .. 2147483647)`. A bare cast would
 * turn such a value into garbage (a double past INT_MAX is undefined as an int, one past
 * FLT_MAX is inf as a float) that fails much later, far from its cause. */
#ifndef MT_CORE_RANGE_H
#define MT_CORE_RANGE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
    double lo, hi;
    unsigned char lo_open, hi_open; /* the bound itself is excluded */
} mt_range;

/* lo <= v <= hi (whole numbers: also for the int readers). */
#define MT_RANGE(lo, hi) ((mt_range){(lo), (hi), 0, 0})
/* lo < v <= hi. */
#define MT_RANGE_OPEN_LO(lo, hi) ((mt_range){(lo), (hi), 1, 0})
/* lo <= v < hi. */
#define MT_RANGE_OPEN_HI(lo, hi) ((mt_range){(lo), (hi), 0, 1})
/* v > lo, finite. */
#define MT_RANGE_ABOVE(lo) ((mt_range){(lo), HUGE_VAL, 1, 0})
/* v >= lo, finite. */
#define MT_RANGE_FROM(lo) ((mt_range){(lo), HUGE_VAL, 0, 0})

/* Whether v is finite and within r. */
int mt_range_contains(mt_range r, double v);

/* r in words, e.g. "1 .. 2147483647" or "a finite number > 0 and <= 1". */
void mt_range_describe(mt_range r, int whole, char *buf, size_t size);

/* Fails with code and "what = text is out of range (...)"; text is the value as given. */
mt_status mt_range_fail(mt_status code, const char *what, const char *text, mt_range r, int whole);

/* A whole number within r (r inside int's range) as an int. */
mt_status mt_range_int(mt_status code, const char *what, double v, mt_range r, int *out);
/* A number within r as a float; the float itself must also lie in r (no inf from a
 * double past FLT_MAX, no 0 from an underflow where 0 is excluded). */
mt_status mt_range_float(mt_status code, const char *what, double v, mt_range r, float *out);
/* A number within r. */
mt_status mt_range_double(mt_status code, const char *what, double v, mt_range r, double *out);

/* Text (a flag's value, a setting in a file): the whole text must be one number. */
mt_status mt_range_parse_int(mt_status code, const char *what, const char *text, mt_range r,
                             int *out);
mt_status mt_range_parse_float(mt_status code, const char *what, const char *text, mt_range r,
                               float *out);
/* Any value of uint64_t, decimal, without a sign. */
mt_status mt_range_parse_u64(mt_status code, const char *what, const char *text, uint64_t *out);

#endif
