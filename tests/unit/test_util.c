/* Durations, sizes and whole numbers: what a config value like "5s" or "16k"
 * becomes, and which spellings are refused instead of silently misread. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "util.h"

#include <string.h>

/* Parse a duration that must be accepted; return the milliseconds. */
static uint64_t dur_ok(const char *s)
{
	uint64_t v = 0xdeadbeef;
	int rc = parse_duration_ms(s, &v);
	if (rc != 0)
		fail_msg("parse_duration_ms(\"%s\") = %d, expected success", s, rc);
	return v;
}

/* A refused duration returns the given error. */
static void dur_bad(const char *s, int want)
{
	uint64_t v = 12345;
	int rc = parse_duration_ms(s, &v);
	if (rc != want)
		fail_msg("parse_duration_ms(\"%s\") = %d, expected %d", s ? s : "(null)", rc, want);
}

static uint64_t size_ok(const char *s)
{
	uint64_t v = 0xdeadbeef;
	int rc = parse_size(s, &v);
	if (rc != 0)
		fail_msg("parse_size(\"%s\") = %d, expected success", s, rc);
	return v;
}

static void size_bad(const char *s, int want)
{
	uint64_t v = 12345;
	int rc = parse_size(s, &v);
	if (rc != want)
		fail_msg("parse_size(\"%s\") = %d, expected %d", s ? s : "(null)", rc, want);
}

/* ---- durations ---------------------------------------------------------- */

static void test_duration_units(void **state)
{
	(void)state;
	assert_int_equal(dur_ok("500ms"), 500);
	assert_int_equal(dur_ok("250ms"), 250);
	assert_int_equal(dur_ok("5s"), 5000);
	assert_int_equal(dur_ok("2m"), 120000);
	assert_int_equal(dur_ok("1h"), 3600000);
	assert_int_equal(dur_ok("0s"), 0);
	assert_int_equal(dur_ok("0ms"), 0);
	assert_int_equal(dur_ok("90s"), 90000);
	assert_int_equal(dur_ok("168h"), 604800000ULL);
	/* Leading zeros are just digits. */
	assert_int_equal(dur_ok("007s"), 7000);
}

/* "30" must never silently mean 30 ms (or 30 s). */
static void test_duration_needs_unit(void **state)
{
	(void)state;
	dur_bad("30", -EINVAL);
	dur_bad("0", -EINVAL);
	dur_bad("", -EINVAL);
	dur_bad(NULL, -EINVAL);
}

static void test_duration_bad_spelling(void **state)
{
	(void)state;
	dur_bad("-5s", -EINVAL);
	dur_bad("+5s", -EINVAL);
	dur_bad("5 s", -EINVAL);
	dur_bad(" 5s", -EINVAL);
	dur_bad("5s ", -EINVAL);
	dur_bad("5S", -EINVAL);       /* units are lower case */
	dur_bad("5MS", -EINVAL);
	dur_bad("5H", -EINVAL);
	dur_bad("5sec", -EINVAL);
	dur_bad("5d", -EINVAL);       /* no days */
	dur_bad("5us", -EINVAL);
	dur_bad("1.5s", -EINVAL);     /* no fractions */
	dur_bad("5ss", -EINVAL);
	dur_bad("5s5", -EINVAL);
	dur_bad("1m30s", -EINVAL);    /* no compound durations */
	dur_bad("s", -EINVAL);
	dur_bad("ms", -EINVAL);
	dur_bad("0x10s", -EINVAL);
}

static void test_duration_overflow(void **state)
{
	(void)state;
	/* The number itself does not fit 64 bits. */
	dur_bad("99999999999999999999ms", -ERANGE);
	dur_bad("123456789012345678901234567890s", -ERANGE);
	/* The number fits but the milliseconds do not. */
	dur_bad("18446744073709552s", -ERANGE);
	dur_bad("307445734561826m", -ERANGE);
	dur_bad("5124095576031h", -ERANGE);
	/* Just below the limit still works. */
	assert_int_equal(dur_ok("18446744073709551s"), 18446744073709551000ULL);
	assert_int_equal(dur_ok("5124095576030h"), 5124095576030ULL * 3600000ULL);
}

/* Error messages print limits with fmt_duration; they must read back. */
static void test_fmt_duration(void **state)
{
	char buf[32];
	static const uint64_t vals[] = { 0, 1, 999, 1000, 1500, 60000, 90000, 3600000,
					 604800000ULL, 86400000ULL, 3661000 };
	(void)state;
	assert_string_equal(fmt_duration(0, buf, sizeof(buf)), "0ms");
	assert_string_equal(fmt_duration(500, buf, sizeof(buf)), "500ms");
	assert_string_equal(fmt_duration(1500, buf, sizeof(buf)), "1500ms");
	assert_string_equal(fmt_duration(5000, buf, sizeof(buf)), "5s");
	assert_string_equal(fmt_duration(90000, buf, sizeof(buf)), "90s");
	assert_string_equal(fmt_duration(120000, buf, sizeof(buf)), "2m");
	assert_string_equal(fmt_duration(3600000, buf, sizeof(buf)), "1h");
	assert_string_equal(fmt_duration(604800000ULL, buf, sizeof(buf)), "168h");
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		assert_int_equal(dur_ok(fmt_duration(vals[i], buf, sizeof(buf))), vals[i]);
}

/* ---- sizes -------------------------------------------------------------- */

static void test_size_suffixes(void **state)
{
	(void)state;
	assert_int_equal(size_ok("0"), 0);
	assert_int_equal(size_ok("512"), 512);
	assert_int_equal(size_ok("16k"), 16384);
	assert_int_equal(size_ok("16K"), 16384);
	assert_int_equal(size_ok("1m"), 1048576);
	assert_int_equal(size_ok("1M"), 1048576);
	assert_int_equal(size_ok("1g"), 1073741824ULL);
	assert_int_equal(size_ok("2G"), 2147483648ULL);
	assert_int_equal(size_ok("0k"), 0);
	assert_int_equal(size_ok("1024"), 1024);
}

static void test_size_bad_spelling(void **state)
{
	(void)state;
	size_bad("", -EINVAL);
	size_bad(NULL, -EINVAL);
	size_bad("k", -EINVAL);
	size_bad("-1", -EINVAL);
	size_bad("-1k", -EINVAL);
	size_bad("16kb", -EINVAL);
	size_bad("16KB", -EINVAL);
	size_bad("16kk", -EINVAL);
	size_bad("16 k", -EINVAL);
	size_bad(" 16k", -EINVAL);
	size_bad("16k ", -EINVAL);
	size_bad("16t", -EINVAL);     /* no terabytes */
	size_bad("16b", -EINVAL);
	size_bad("1.5m", -EINVAL);
	size_bad("1e3", -EINVAL);
	size_bad("0x10", -EINVAL);
}

static void test_size_overflow(void **state)
{
	(void)state;
	size_bad("18446744073709551616", -ERANGE);
	size_bad("123456789012345678901234567890", -ERANGE);
	size_bad("18014398509481984k", -ERANGE);  /* 2^54 KiB = 2^64 */
	size_bad("17592186044416m", -ERANGE);     /* 2^44 MiB = 2^64 */
	size_bad("17179869184g", -ERANGE);        /* 2^34 GiB = 2^64 */
	assert_int_equal(size_ok("18014398509481983k"), 18014398509481983ULL * 1024);
	assert_int_equal(size_ok("17179869183g"), 17179869183ULL << 30);
}

/* ---- whole numbers ------------------------------------------------------ */

static void test_uint_ok(void **state)
{
	uint64_t v = 1;
	(void)state;
	assert_int_equal(parse_uint("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_uint("42", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_uint("0042", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_uint("1844674407370955160", &v), 0);
	assert_int_equal(v, 1844674407370955160ULL);
	assert_int_equal(parse_uint("18446744073709551609", &v), 0);
	assert_int_equal(v, 18446744073709551609ULL);
}

/* Every value of a uint64_t parses, UINT64_MAX included. */
static void test_uint_max(void **state)
{
	uint64_t v = 1;
	(void)state;
	assert_int_equal(parse_uint("18446744073709551610", &v), 0);
	assert_int_equal(v, 18446744073709551610ULL);
	assert_int_equal(parse_uint("18446744073709551615", &v), 0);
	assert_int_equal(v, UINT64_MAX);
}

static void test_uint_bad(void **state)
{
	static const char *const bad[] = { "", "-1", "+1", " 1", "1 ", "1.0", "1e3", "0x10",
					   "one", "1k", "auto" };
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;
		if (parse_uint(bad[i], &v) != -EINVAL)
			fail_msg("parse_uint(\"%s\") accepted or gave the wrong error", bad[i]);
		assert_int_equal(v, 7);
	}
	{
		uint64_t v = 7;
		assert_int_equal(parse_uint(NULL, &v), -EINVAL);
		assert_int_equal(parse_uint("18446744073709551616", &v), -ERANGE);
		assert_int_equal(parse_uint("99999999999999999999", &v), -ERANGE);
		assert_int_equal(parse_uint("100000000000000000000000", &v), -ERANGE);
		assert_int_equal(v, 7);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_units),
		cmocka_unit_test(test_duration_needs_unit),
		cmocka_unit_test(test_duration_bad_spelling),
		cmocka_unit_test(test_duration_overflow),
		cmocka_unit_test(test_fmt_duration),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_size_bad_spelling),
		cmocka_unit_test(test_size_overflow),
		cmocka_unit_test(test_uint_ok),
		cmocka_unit_test(test_uint_max),
		cmocka_unit_test(test_uint_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
