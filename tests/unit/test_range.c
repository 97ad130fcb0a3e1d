/* Range checks on numbers read from files and flags (core/range.c): the value is taken
 * only when it lies in its range, as the type it is stored in, and otherwise one error
 * names the key, the value as given and the range. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/range.h"

static void expect_error(mt_status got, const char *want) {
    assert_int_equal(got, MT_ERR_FORMAT);
    if (strcmp(mt_last_error(), want)) fail_msg("error '%s', want '%s'", mt_last_error(), want);
}

static void test_int_from_double(void **state) {
    (void)state;
    int v = 7;
    expect_error(
        mt_range_int(MT_ERR_FORMAT, "max_position_embeddings", 1e308, MT_RANGE(1, INT_MAX), &v),
        "max_position_embeddings = 1e+308 is out of range (1 .. 2147483647)");
    assert_int_equal(v, 7);
    expect_error(mt_range_int(MT_ERR_FORMAT, "n", 2147483648.0, MT_RANGE(1, INT_MAX), &v),
                 "n = 2147483648 is out of range (1 .. 2147483647)");
    expect_error(mt_range_int(MT_ERR_FORMAT, "n", 0, MT_RANGE(1, INT_MAX), &v),
                 "n = 0 is out of range (1 .. 2147483647)");
    expect_error(mt_range_int(MT_ERR_FORMAT, "n", 2.5, MT_RANGE(1, INT_MAX), &v),
                 "n = 2.5 is not a whole number");
    expect_error(mt_range_int(MT_ERR_FORMAT, "n", NAN, MT_RANGE(1, INT_MAX), &v),
                 "n = nan is out of range (1 .. 2147483647)");
    /* A range wider than int still stops at int. */
    expect_error(mt_range_int(MT_ERR_FORMAT, "n", -3e9, MT_RANGE(-1e10, 1e10), &v),
                 "n = -3000000000 is out of range (-10000000000 .. 10000000000)");
    assert_int_equal(mt_range_int(MT_ERR_FORMAT, "n", 2147483647.0, MT_RANGE(1, INT_MAX), &v),
                     MT_OK);
    assert_int_equal(v, INT_MAX);
}

static void test_float_from_double(void **state) {
    (void)state;
    float f = 3.0f;
    expect_error(mt_range_float(MT_ERR_FORMAT, "eps", INFINITY, MT_RANGE_ABOVE(0), &f),
                 "eps = inf is out of range (a finite number > 0)");
    expect_error(mt_range_float(MT_ERR_FORMAT, "eps", 0, MT_RANGE_ABOVE(0), &f),
                 "eps = 0 is out of range (a finite number > 0)");
    /* Finite as a double, inf as a float. */
    expect_error(mt_range_float(MT_ERR_FORMAT, "theta", 1e39, MT_RANGE_ABOVE(0), &f),
                 "theta = 1e+39 is out of range (a finite number > 0)");
    /* Above 0 as a double, 0 as a float. */
    expect_error(mt_range_float(MT_ERR_FORMAT, "eps", 1e-50, MT_RANGE_ABOVE(0), &f),
                 "eps = 1e-50 is out of range (a finite number > 0)");
    expect_error(mt_range_float(MT_ERR_FORMAT, "top_p", 1.5, MT_RANGE_OPEN_LO(0, 1), &f),
                 "top_p = 1.5 is out of range (a finite number > 0 and <= 1)");
    expect_error(mt_range_float(MT_ERR_FORMAT, "min_p", 1, MT_RANGE_OPEN_HI(0, 1), &f),
                 "min_p = 1 is out of range (a finite number >= 0 and < 1)");
    assert_true(f == 3.0f);
    assert_int_equal(mt_range_float(MT_ERR_FORMAT, "eps", 1e-6, MT_RANGE_ABOVE(0), &f), MT_OK);
    assert_true(f == 1e-6f);
    double d = 0;
    expect_error(mt_range_double(MT_ERR_FORMAT, "x", -INFINITY, MT_RANGE_FROM(-HUGE_VAL), &d),
                 "x = -inf is out of range (a finite number)");
    assert_int_equal(mt_range_double(MT_ERR_FORMAT, "x", 1e300, MT_RANGE_FROM(0), &d), MT_OK);
}

static void test_text(void **state) {
    (void)state;
    int v = 0;
    float f = 0;
    uint64_t u = 0;
    assert_int_equal(mt_range_parse_int(MT_ERR_ARG, "-n", "12", MT_RANGE(1, 100), &v), MT_OK);
    assert_int_equal(v, 12);
    /* The value as given, even where it does not fit a long long. */
    assert_int_equal(
        mt_range_parse_int(MT_ERR_ARG, "-n", "99999999999999999999", MT_RANGE(1, 100), &v),
        MT_ERR_ARG);
    assert_string_equal(mt_last_error(), "-n = 99999999999999999999 is out of range (1 .. 100)");
    assert_int_equal(mt_range_parse_int(MT_ERR_ARG, "-n", "1.5", MT_RANGE(1, 100), &v), MT_ERR_ARG);
    assert_string_equal(mt_last_error(), "-n expects an integer, got '1.5'");
    assert_int_equal(mt_range_parse_int(MT_ERR_ARG, "-n", "", MT_RANGE(1, 100), &v), MT_ERR_ARG);
    assert_int_equal(v, 12);
    assert_int_equal(mt_range_parse_float(MT_ERR_ARG, "lr", "-1", MT_RANGE_ABOVE(0), &f),
                     MT_ERR_ARG);
    assert_string_equal(mt_last_error(), "lr = -1 is out of range (a finite number > 0)");
    assert_int_equal(mt_range_parse_float(MT_ERR_ARG, "lr", "nan", MT_RANGE_ABOVE(0), &f),
                     MT_ERR_ARG);
    assert_int_equal(mt_range_parse_float(MT_ERR_ARG, "lr", "1e-3x", MT_RANGE_ABOVE(0), &f),
                     MT_ERR_ARG);
    assert_string_equal(mt_last_error(), "lr expects a number, got '1e-3x'");
    assert_int_equal(mt_range_parse_float(MT_ERR_ARG, "lr", "2e-4", MT_RANGE_ABOVE(0), &f), MT_OK);
    assert_true(f == 2e-4f);
    assert_int_equal(mt_range_parse_u64(MT_ERR_ARG, "--seed", "18446744073709551615", &u), MT_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(mt_range_parse_u64(MT_ERR_ARG, "--seed", "18446744073709551616", &u),
                     MT_ERR_ARG);
    assert_non_null(strstr(mt_last_error(), "out of range"));
    assert_int_equal(mt_range_parse_u64(MT_ERR_ARG, "--seed", " -1", &u), MT_ERR_ARG);
    assert_true(u == UINT64_MAX);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_from_double),
        cmocka_unit_test(test_float_from_double),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
