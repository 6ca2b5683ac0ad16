/* The HTTP/1.1 parser: every rule of the strict policy (issue 3, "Parsing"),
 * each refusal with its exact status, what valid messages parse to, that
 * parsing byte by byte gives what parsing the whole buffer gives, the
 * chunked body validator, and the limits. Every message is parsed from a
 * heap copy of exactly its size, so ASan catches a read past the end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "h1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static char *cur;               /* exact-size copy the last parse points into */
static struct h1_msg msg;
static struct h1_msg msg2;

static const char *exact(const char *s, size_t n)
{
	free(cur);
	cur = malloc(n ? n : 1);
	assert_non_null(cur);
	memcpy(cur, s, n);
	return cur;
}

static int do_parse(bool request, const char *buf, size_t n, struct h1_scan *sc,
		    const struct h1_limits *lim, const char *method, struct h1_msg *m,
		    const char **why)
{
	if (request)
		return h1_parse_request(buf, n, sc, lim, m, why);
	return h1_parse_response(buf, n, sc, lim, method, method ? (uint32_t)strlen(method) : 0,
				 m, why);
}

/* Offsets instead of pointers: the two parses read different buffers. */
static long off(const char *p, const char *base)
{
	return p ? (long)(p - base) : -1;
}

static void same_msg(const struct h1_msg *a, const char *abuf, const struct h1_msg *b,
		     const char *bbuf)
{
	assert_int_equal(a->head_len, b->head_len);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->body, b->body);
	assert_int_equal(a->content_length, b->content_length);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->method_len, b->method_len);
	assert_int_equal(a->target_len, b->target_len);
	assert_int_equal(a->path_len, b->path_len);
	assert_int_equal(a->authority_len, b->authority_len);
	assert_int_equal(a->reason_len, b->reason_len);
	assert_int_equal(off(a->method, abuf), off(b->method, bbuf));
	assert_int_equal(off(a->target, abuf), off(b->target, bbuf));
	assert_int_equal(off(a->authority, abuf), off(b->authority, bbuf));
	assert_int_equal(off(a->reason, abuf), off(b->reason, bbuf));
	if (a->path && b->path && a->path_len)
		assert_memory_equal(a->path, b->path, a->path_len);
	assert_int_equal(a->nfields, b->nfields);
	for (uint32_t i = 0; i < a->nfields; i++) {
		assert_int_equal(off(a->fields[i].name, abuf), off(b->fields[i].name, bbuf));
		assert_int_equal(off(a->fields[i].value, abuf), off(b->fields[i].value, bbuf));
		assert_int_equal(a->fields[i].name_len, b->fields[i].name_len);
		assert_int_equal(a->fields[i].value_len, b->fields[i].value_len);
		assert_int_equal(a->hop[i], b->hop[i]);
	}
}

/* Feeds s one byte more at a time, from exact-size copies, with one scan
 * state: the first answer that is not "need more" must be `want`, and for a
 * valid message it must come with the last byte of the head. */
static void bytewise(bool request, const char *s, size_t n, const struct h1_limits *lim,
		     const char *method, int want, int line)
{
	struct h1_scan sc = { 0 };
	const char *why = NULL;

	for (size_t k = 1; k <= n; k++) {
		char *b = malloc(k);
		int rc;
		assert_non_null(b);
		memcpy(b, s, k);
		rc = do_parse(request, b, k, &sc, lim, method, &msg2, &why);
		if (rc == H1_NEED_MORE) {
			free(b);
			continue;
		}
		if (rc != want)
			fail_msg("line %d: byte by byte gave %d at %zu bytes, whole gave %d (%s)",
				 line, rc, k, want, why ? why : "-");
		if (rc > 0) {
			assert_int_equal((size_t)rc, k);
			same_msg(&msg, cur, &msg2, b);
		}
		free(b);
		return;
	}
	if (want != H1_NEED_MORE)
		fail_msg("line %d: byte by byte never completed, whole gave %d", line, want);
}

static int parse_whole(bool request, const char *s, size_t n, const struct h1_limits *lim,
		       const char *method, const char **why)
{
	struct h1_scan sc = { 0 };
	return do_parse(request, exact(s, n), n, &sc, lim, method, &msg, why);
}

static void check_bad(bool request, const char *s, size_t n, const struct h1_limits *lim,
		      const char *method, int status, bool bw, int line)
{
	const char *why = NULL;
	int rc = parse_whole(request, s, n, lim, method, &why);
	if (rc != status)
		fail_msg("line %d: got %d, expected %d (%s)", line, rc, status, why ? why : "-");
	if (!why || !*why)
		fail_msg("line %d: refused without a reason", line);
	if (bw)
		bytewise(request, s, n, lim, method, status, line);
}

static void check_ok(bool request, const char *s, size_t n, const struct h1_limits *lim,
		     const char *method, bool bw, int line)
{
	const char *why = NULL;
	int rc = parse_whole(request, s, n, lim, method, &why);
	if (rc <= 0)
		fail_msg("line %d: got %d (%s), expected a head", line, rc, why ? why : "-");
	if ((size_t)rc != n)
		fail_msg("line %d: head_len %d, message is %zu bytes", line, rc, n);
	assert_int_equal(msg.head_len, (uint32_t)rc);
	if (bw)
		bytewise(request, s, n, lim, method, rc, line);
	/* whole again into msg (bytewise wrote msg2 only) */
}

#define REQ_OK(s) check_ok(true, s, sizeof(s) - 1, NULL, NULL, true, __LINE__)
#define REQ_BAD(s, st) check_bad(true, s, sizeof(s) - 1, NULL, NULL, st, true, __LINE__)
#define RESP_OK(s, meth) check_ok(false, s, sizeof(s) - 1, NULL, meth, true, __LINE__)
#define RESP_BAD(s) check_bad(false, s, sizeof(s) - 1, NULL, NULL, -502, true, __LINE__)

static void str_eq(const char *p, uint32_t n, const char *want)
{
	if (!p || n != strlen(want) || memcmp(p, want, n) != 0)
		fail_msg("\"%.*s\" != \"%s\"", p ? (int)n : 6, p ? p : "(null)", want);
}

/* The field called `name` (first one) has this value and hop mark. */
static void field_is(const char *name, const char *value, int hop)
{
	int i = h1_find_field(&msg, name, strlen(name), 0);
	if (i < 0)
		fail_msg("no field %s", name);
	str_eq(msg.fields[i].value, msg.fields[i].value_len, value);
	if (msg.hop[i] != hop)
		fail_msg("field %s: hop %d, expected %d", name, msg.hop[i], hop);
}

static int hop_of(const char *name)
{
	int i = h1_find_field(&msg, name, strlen(name), 0);
	if (i < 0)
		fail_msg("no field %s", name);
	return msg.hop[i];
}

/* ---- request line ------------------------------------------------------- */

static void test_simple_get(void **state)
{
	(void)state;
	REQ_OK("GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
	str_eq(msg.method, msg.method_len, "GET");
	str_eq(msg.target, msg.target_len, "/index.html?a=1");
	str_eq(msg.path, msg.path_len, "/index.html?a=1");
	str_eq(msg.authority, msg.authority_len, "example.com");
	assert_int_equal(msg.version, 11);
	assert_int_equal(msg.nfields, 2);
	assert_int_equal(msg.body, H1_BODY_NONE);
	assert_int_equal(msg.flags, H1_F_HAS_HOST);
	field_is("host", "example.com", 0);
	field_is("ACCEPT", "*/*", 0);
}

static void test_http10_without_host(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.0\r\n\r\n");
	assert_int_equal(msg.version, 10);
	assert_int_equal(msg.nfields, 0);
	assert_null(msg.authority);
	/* HTTP/1.0 closes unless it asks for keep-alive */
	assert_int_equal(msg.flags, H1_F_CONN_CLOSE);
	REQ_OK("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
	assert_int_equal(msg.flags, H1_F_CONN_KEEPALIVE);
}

static void test_request_line_spaces(void **state)
{
	(void)state;
	REQ_BAD("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -400);
	REQ_BAD(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / a HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET /\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET\r\nHost: a\r\n\r\n", -400);
}

static void test_version_malformed(void **state)
{
	(void)state;
	REQ_BAD("GET / http/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.10\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/11\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.x\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1,1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTPS/1.1\r\nHost: a\r\n\r\n", -400);
}

static void test_version_unsupported(void **state)
{
	(void)state;
	REQ_BAD("GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505);
	REQ_BAD("GET / HTTP/0.9\r\nHost: a\r\n\r\n", -505);
	REQ_BAD("GET / HTTP/1.2\r\nHost: a\r\n\r\n", -505);
	REQ_BAD("GET / HTTP/3.1\r\nHost: a\r\n\r\n", -505);
}

static void test_method(void **state)
{
	(void)state;
	REQ_OK("PURGE / HTTP/1.1\r\nHost: a\r\n\r\n");
	str_eq(msg.method, msg.method_len, "PURGE");
	REQ_OK("M-SEARCH! / HTTP/1.1\r\nHost: a\r\n\r\n");
	REQ_BAD("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET/ / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GE\0T / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
}

static void test_target_chars(void **state)
{
	(void)state;
	REQ_BAD("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	/* obs-text is not a CTL: passed through as sent */
	REQ_OK("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n");
	str_eq(msg.path, msg.path_len, "/caf\xc3\xa9");
}

static void test_target_forms(void **state)
{
	(void)state;
	REQ_OK("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
	str_eq(msg.path, msg.path_len, "*");
	REQ_BAD("GET * HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", -400);
}

static void test_connect_refused(void **state)
{
	(void)state;
	REQ_BAD("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", -501);
	/* methods are case-sensitive: this is just an unknown method */
	REQ_BAD("connect example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", -400);
}

static void test_absolute_form(void **state)
{
	(void)state;
	REQ_OK("GET http://Example.com:8080/a/b?c=d HTTP/1.1\r\nHost: other.org\r\n\r\n");
	str_eq(msg.authority, msg.authority_len, "Example.com:8080");
	str_eq(msg.path, msg.path_len, "/a/b?c=d");
	str_eq(msg.target, msg.target_len, "http://Example.com:8080/a/b?c=d");
	assert_true(msg.flags & H1_F_ABSOLUTE_FORM);
	assert_true(msg.flags & H1_F_HAS_HOST);
	REQ_OK("GET HTTPS://[::1]:8443 HTTP/1.1\r\nHost: x\r\n\r\n");
	str_eq(msg.authority, msg.authority_len, "[::1]:8443");
	str_eq(msg.path, msg.path_len, "/");
	/* absolute-form on HTTP/1.0 needs no Host */
	REQ_OK("GET http://a.example/x HTTP/1.0\r\n\r\n");
	str_eq(msg.authority, msg.authority_len, "a.example");
}

static void test_absolute_form_bad(void **state)
{
	(void)state;
	REQ_BAD("GET http:///path HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET http://user@host/ HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET http://host?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET http://ho st/ HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET http://host:99999/ HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET http:/host/ HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	/* still HTTP/1.1: Host is required even when the target has one */
	REQ_BAD("GET http://host/ HTTP/1.1\r\n\r\n", -400);
	/* and must still be valid */
	REQ_BAD("GET http://host/ HTTP/1.1\r\nHost: a b\r\n\r\n", -400);
}

static void test_leading_empty_lines(void **state)
{
	(void)state;
	REQ_OK("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
	str_eq(msg.method, msg.method_len, "GET");
	assert_int_equal(msg.head_len, 2 + 27);
	REQ_OK("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
	REQ_BAD("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -400);
}

/* ---- bare CR / LF ------------------------------------------------------- */

static void test_bare_lf(void **state)
{
	(void)state;
	REQ_BAD("GET / HTTP/1.1\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\n\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\n\n", -400);
}

static void test_bare_lf_before_head_complete(void **state)
{
	/* refused at once, not after a timeout waiting for a CRLFCRLF that an
	 * LF-only client never sends */
	const char *why = NULL;
	(void)state;
	assert_int_equal(parse_whole(true, "GET / HTTP/1.1\nHost: a", 22, NULL, NULL, &why), -400);
	assert_int_equal(parse_whole(true, "GET / HTTP/1.1\r\nX: y\n", 21, NULL, NULL, &why), -400);
	assert_int_equal(parse_whole(false, "HTTP/1.1 200 OK\n", 16, NULL, NULL, &why), -502);
}

static void test_bare_cr(void **state)
{
	(void)state;
	REQ_BAD("GET / HTTP/1.1\rHost: a\r\n\r\n", -400);
	REQ_BAD("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX: ab\r\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX\r: ab\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n", -400);
}

/* ---- field lines -------------------------------------------------------- */

static void test_obs_fold(void **state)
{
	(void)state;
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", -400);
	/* whitespace at the start of the first field line */
	REQ_BAD("GET / HTTP/1.1\r\n Host: a\r\n\r\n", -400);
}

static void test_space_before_colon(void **state)
{
	(void)state;
	REQ_BAD("GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", -400);
}

static void test_field_name_chars(void **state)
{
	(void)state;
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX(a): b\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX\x01: b\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX/Y: b\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nno-colon\r\n\r\n", -400);
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX-!#$%&'*+.^_`|~9: b\r\n\r\n");
	field_is("x-!#$%&'*+.^_`|~9", "b", 0);
}

static void test_field_value_chars(void **state)
{
	(void)state;
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1f\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX: \x0b\r\n\r\n", -400);
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb c\xe9\xff!~\r\n\r\n");
	field_is("x", "a\tb c\xe9\xff!~", 0);
}

static void test_field_value_ows(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\nHost:a\r\nX-A: \t b c \t \r\nX-Empty:\r\nX-Blank:   \r\n\r\n");
	field_is("host", "a", 0);
	field_is("x-a", "b c", 0);
	field_is("x-empty", "", 0);
	field_is("x-blank", "", 0);
	assert_int_equal(msg.nfields, 4);
}

/* ---- Content-Length ----------------------------------------------------- */

static void test_content_length(void **state)
{
	(void)state;
	REQ_OK("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
	assert_int_equal(msg.body, H1_BODY_LENGTH);
	assert_int_equal(msg.content_length, 10);
	REQ_OK("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(msg.body, H1_BODY_NONE);
	REQ_OK("POST /f HTTP/1.1\r\nHost: a\r\ncontent-length: 007\r\n\r\n");
	assert_int_equal(msg.content_length, 7);
	REQ_OK("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n");
	assert_int_equal(msg.content_length, INT64_MAX);
}

static void test_content_length_bad(void **state)
{
	(void)state;
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5e2\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ,5\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,,5\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \xd9\xa5\r\n\r\n", -400);
}

static void test_content_length_overflow(void **state)
{
	(void)state;
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
		-400);
}

static void test_content_length_repeated(void **state)
{
	(void)state;
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
	assert_int_equal(msg.content_length, 5);
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5 ,5\r\n\r\n");
	assert_int_equal(msg.content_length, 5);
	assert_int_equal(msg.body, H1_BODY_LENGTH);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 50\r\n\r\n",
		-400);
}

/* ---- Transfer-Encoding -------------------------------------------------- */

static void test_te_chunked(void **state)
{
	(void)state;
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
	assert_int_equal(msg.body, H1_BODY_CHUNKED);
	/* framing, not hop-by-hop: the proxy handles it itself */
	field_is("transfer-encoding", "chunked", 0);
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , CHUNKED ,\r\n\r\n");
	assert_int_equal(msg.body, H1_BODY_CHUNKED);
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nTransfer-Encoding: Chunked\r\n\r\n");
	assert_int_equal(msg.body, H1_BODY_CHUNKED);
}

static void test_te_unknown_coding(void **state)
{
	(void)state;
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -501);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", -501);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", -501);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
		"Transfer-Encoding: chunked\r\n\r\n", -501);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x;q=1, chunked\r\n\r\n", -501);
}

static void test_te_chunked_not_last_or_twice(void **state)
{
	(void)state;
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		"Transfer-Encoding: chunked\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		"Transfer-Encoding: gzip\r\n\r\n", -400);
}

static void test_te_malformed(void **state)
{
	(void)state;
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked x\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\"\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , ,\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunk\r\n\r\n", -501);
}

static void test_te_http10(void **state)
{
	(void)state;
	REQ_BAD("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", -400);
}

static void test_te_and_cl(void **state)
{
	(void)state;
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		"Content-Length: 5\r\n\r\n", -400);
	REQ_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
		"Transfer-Encoding: chunked\r\n\r\n", -400);
}

/* ---- Host ----------------------------------------------------------------- */

static void test_host_required(void **state)
{
	(void)state;
	REQ_BAD("GET / HTTP/1.1\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", -400);
}

static void test_host_valid(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
	str_eq(msg.authority, msg.authority_len, "[::1]:8080");
	REQ_OK("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	REQ_OK("GET / HTTP/1.1\r\nHost: EXAMPLE.com:80\r\n\r\n");
	str_eq(msg.authority, msg.authority_len, "EXAMPLE.com:80");
	REQ_OK("GET / HTTP/1.1\r\nHost: xn--bcher-kva.example\r\n\r\n");
	REQ_OK("GET / HTTP/1.1\r\nHost: [2001:db8::7]\r\n\r\n");
	REQ_OK("GET / HTTP/1.1\r\nHost: a%2Db.example:65535\r\n\r\n");
	REQ_OK("GET / HTTP/1.0\r\nHost: a\r\n\r\n");
	assert_true(msg.flags & H1_F_HAS_HOST);
}

static void test_host_invalid(void **state)
{
	(void)state;
	REQ_BAD("GET / HTTP/1.1\r\nHost:\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a:\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: :80\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: [v1.x]\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\xc3\xa9\r\n\r\n", -400);
}

static void test_absolute_form_replaces_host(void **state)
{
	(void)state;
	REQ_OK("GET http://real.example/p HTTP/1.1\r\nHost: decoy.example\r\n\r\n");
	str_eq(msg.authority, msg.authority_len, "real.example");
	field_is("host", "decoy.example", 0);
}

/* ---- Connection and hop-by-hop ------------------------------------------ */

static void test_connection_flags(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
	assert_int_equal(msg.flags, H1_F_HAS_HOST | H1_F_CONN_CLOSE);
	field_is("connection", "close", 1);
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, , Upgrade\r\n\r\n");
	assert_int_equal(msg.flags, H1_F_HAS_HOST | H1_F_CONN_KEEPALIVE | H1_F_CONN_UPGRADE);
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: CLOSE\r\n\r\n");
	assert_true(msg.flags & H1_F_CONN_CLOSE);
	assert_true(msg.flags & H1_F_CONN_KEEPALIVE);
	/* HTTP/1.1 is persistent by default: no flag */
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_false(msg.flags & (H1_F_CONN_CLOSE | H1_F_CONN_KEEPALIVE));
}

static void test_connection_invalid(void **state)
{
	(void)state;
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep alive\r\n\r\n", -400);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nConnection: close;x\r\n\r\n", -400);
}

static void test_hop_by_hop_fixed(void **state)
{
	(void)state;
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
	       "Proxy-Connection: keep-alive\r\nUpgrade: foo/2\r\nTransfer-Encoding: chunked\r\n"
	       "X-Other: 1\r\n\r\n");
	assert_int_equal(hop_of("host"), 0);
	assert_int_equal(hop_of("keep-alive"), 1);
	assert_int_equal(hop_of("te"), 1);
	assert_int_equal(hop_of("proxy-connection"), 1);
	assert_int_equal(hop_of("upgrade"), 1);
	assert_int_equal(hop_of("transfer-encoding"), 0);
	assert_int_equal(hop_of("x-other"), 0);
}

static void test_hop_by_hop_listed(void **state)
{
	(void)state;
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
	       "Connection: x-secret, Content-Length, HOST, x-forwarded-for\r\n"
	       "Connection: X-Forwarded-Proto, forwarded, transfer-encoding, cookie\r\n"
	       "X-Secret: 1\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
	       "Forwarded: for=1.2.3.4\r\nCookie: a=b\r\nx-secret: 2\r\nX-Kept: 3\r\n\r\n");
	assert_int_equal(hop_of("connection"), 1);
	assert_int_equal(msg.hop[h1_find_field(&msg, "connection", 10, 3)], 1);
	assert_int_equal(hop_of("x-secret"), 1);
	assert_int_equal(msg.hop[h1_find_field(&msg, "x-secret", 8, 6)], 1);
	assert_int_equal(hop_of("cookie"), 1);
	/* a client cannot strip framing or what the proxy adds */
	assert_int_equal(hop_of("content-length"), 0);
	assert_int_equal(hop_of("host"), 0);
	assert_int_equal(hop_of("x-forwarded-for"), 0);
	assert_int_equal(hop_of("x-forwarded-proto"), 0);
	assert_int_equal(hop_of("forwarded"), 0);
	assert_int_equal(hop_of("x-kept"), 0);
	assert_int_equal(msg.body, H1_BODY_LENGTH);
}

static void test_websocket_upgrade(void **state)
{
	(void)state;
	REQ_OK("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
	       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
	assert_int_equal(msg.flags, H1_F_HAS_HOST | H1_F_CONN_KEEPALIVE | H1_F_CONN_UPGRADE |
				    H1_F_UPGRADE_WS | H1_F_WS_KEY | H1_F_WS_VERSION);
	assert_int_equal(hop_of("upgrade"), 0);
	assert_int_equal(hop_of("connection"), 1);
	assert_int_equal(hop_of("sec-websocket-key"), 0);
	/* missing key/version: the flags say so, the proxy answers 400 */
	REQ_OK("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
	assert_true(msg.flags & H1_F_UPGRADE_WS);
	assert_false(msg.flags & (H1_F_WS_KEY | H1_F_WS_VERSION));
	REQ_OK("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: foo, websocket\r\nConnection: upgrade\r\n\r\n");
	assert_true(msg.flags & H1_F_UPGRADE_WS);
}

static void test_upgrade_not_websocket(void **state)
{
	(void)state;
	/* no Connection: upgrade */
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
	assert_false(msg.flags & H1_F_UPGRADE_WS);
	assert_int_equal(hop_of("upgrade"), 1);
	/* h2c would tunnel past routing: Upgrade is stripped */
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
	       "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
	assert_int_equal(msg.flags, H1_F_HAS_HOST | H1_F_CONN_UPGRADE);
	assert_int_equal(hop_of("upgrade"), 1);
	assert_int_equal(hop_of("http2-settings"), 1);
	/* WebSocket handshakes are HTTP/1.1 GETs */
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
	assert_false(msg.flags & H1_F_UPGRADE_WS);
	assert_int_equal(hop_of("upgrade"), 1);
	REQ_OK("GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
	assert_false(msg.flags & H1_F_UPGRADE_WS);
	assert_int_equal(hop_of("upgrade"), 1);
}

static void test_expect(void **state)
{
	(void)state;
	REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n");
	assert_true(msg.flags & H1_F_EXPECT_CONTINUE);
	REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 4\r\n\r\n");
	assert_false(msg.flags & H1_F_EXPECT_CONTINUE);
	REQ_OK("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
	assert_false(msg.flags & H1_F_EXPECT_CONTINUE);
}

/* A field name with '_' is a valid token: accepted, and flagged so the proxy
 * can apply underscore_fields without scanning every name itself. */
static void test_underscore_flag(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX-Key: a_b\r\n\r\n");
	assert_false(msg.flags & H1_F_UNDERSCORE);
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\napi_key: 1\r\n\r\n");
	assert_true(msg.flags & H1_F_UNDERSCORE);
	assert_int_equal(msg.fields[1].name_len, 7);
	REQ_OK("GET / HTTP/1.1\r\n_: 1\r\nHost: a\r\nX__Y_: 2\r\n\r\n");
	assert_true(msg.flags & H1_F_UNDERSCORE);
	assert_int_equal(msg.fields[0].name_len, 1);
	assert_int_equal(msg.fields[2].name_len, 5);
	REQ_BAD("GET / HTTP/1.1\r\nHost: a\r\nX_ Y: 1\r\n\r\n", -400);
}

/* ---- path normalisation -------------------------------------------------- */

/* h1_normalize_path on a copy of `in`: the result, or NULL when refused. */
static const char *norm(const char *in)
{
	static char out[256];
	size_t n = strlen(in);
	const char *why = NULL;
	memcpy(out, in, n + 1);
	if (h1_normalize_path(out, &n, &why) < 0) {
		assert_non_null(why);
		return NULL;
	}
	out[n] = '\0';
	return out;
}

static void test_normalize_path(void **state)
{
	static const char *const same[] = { "/", "/a/b", "/a/b/", "/.well-known/x", "/a..b/c.",
					    "/%2F%20", "/~u/a-b_c" };
	static const char *const cases[][2] = {
		{ "/%61dmin", "/admin" },           /* unreserved escapes decoded */
		{ "/%7euser/%2e%2E/x", "/x" },       /* ... before dot segments go */
		{ "/a%2fb%5c", "/a%2Fb%5C" },        /* others kept, hex upper-cased */
		{ "//admin", "/admin" },
		{ "/a///b//", "/a/b/" },
		{ "/./admin", "/admin" },
		{ "/public/../admin", "/admin" },
		{ "/a/b/../../c/./d/.", "/c/d/" },
		{ "/a/..", "/" },
		{ "/a/.", "/a/" },
		{ "/.", "/" },
		{ "/./", "/" },
		{ "/a/b/..//c", "/a/c" },
	};
	static const char *const refused[] = { "/..", "/a/../..", "/%2e%2e/x", "/%", "/%4", "/%zz",
					       "/a%2" };
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(same); i++)
		assert_string_equal(norm(same[i]), same[i]);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		assert_string_equal(norm(cases[i][0]), cases[i][1]);
	for (size_t i = 0; i < ARRAY_LEN(refused); i++)
		assert_null(norm(refused[i]));
	assert_true(h1_has_escaped_slash("/a%2Fb", 6));
	assert_true(h1_has_escaped_slash("/a%5c", 5));
	assert_false(h1_has_escaped_slash("/a%2", 4));
	assert_false(h1_has_escaped_slash("/a%20b/%2", 9));
	/* Nothing is written when nothing changes: a read-only path is safe. */
	size_t n = 1;
	assert_int_equal(h1_normalize_path((char *)"/", &n, NULL), 0);
	assert_int_equal(n, 1);
}

/* ---- limits ------------------------------------------------------------- */

/* A request whose request line is exactly `line_len` bytes (without CRLF). */
static char *long_line_request(size_t line_len, size_t *n)
{
	const char *tail = " HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t tl = strlen(tail), target = line_len - 4 - 9;
	char *s = malloc(line_len + tl + 1);
	memcpy(s, "GET /", 5);
	memset(s + 5, 'a', target - 1);
	memcpy(s + 4 + target, tail, tl + 1);
	*n = strlen(s);
	return s;
}

static void test_request_line_limit(void **state)
{
	size_t n;
	char *s;
	const char *why = NULL;
	(void)state;

	s = long_line_request(8192, &n);
	check_ok(true, s, n, NULL, NULL, false, __LINE__);
	assert_int_equal(msg.target_len, 8192 - 13);
	free(s);
	s = long_line_request(8193, &n);
	check_bad(true, s, n, NULL, NULL, -414, false, __LINE__);
	/* refused before the line ends: 8193 bytes that are not CR */
	assert_int_equal(parse_whole(true, s, 8193, NULL, NULL, &why), -414);
	assert_int_equal(parse_whole(true, s, 8192, NULL, NULL, &why), H1_NEED_MORE);
	free(s);
	/* 8192 bytes and a CR: the LF may still come */
	s = long_line_request(8192, &n);
	assert_int_equal(parse_whole(true, s, 8193, NULL, NULL, &why), H1_NEED_MORE);
	assert_int_equal(parse_whole(true, s, 8194, NULL, NULL, &why), H1_NEED_MORE);
	free(s);
}

/* A request of exactly `total` bytes: padded with X-Pad fields. */
static char *big_head_request(size_t total, size_t *n)
{
	const char *start = "GET / HTTP/1.1\r\nHost: a\r\n";
	char *s = malloc(total + 1);
	size_t p = strlen(start);
	memcpy(s, start, p);
	while (total - p - 2 > 0) {
		size_t room = total - p - 2, line = room > 1000 ? 1000 : room;
		if (room - line > 0 && room - line < 8)
			line = room - 8;  /* leave a whole line for the rest */
		assert_true(line >= 8);
		memcpy(s + p, "X-P: ", 5);
		memset(s + p + 5, 'v', line - 7);
		memcpy(s + p + line - 2, "\r\n", 2);
		p += line;
	}
	memcpy(s + p, "\r\n", 3);
	*n = strlen(s);
	assert_int_equal(*n, total);
	return s;
}

static void test_head_limit(void **state)
{
	size_t n;
	char *s;
	const char *why = NULL;
	(void)state;

	s = big_head_request(32768, &n);
	check_ok(true, s, n, NULL, NULL, false, __LINE__);
	free(s);
	s = big_head_request(32769, &n);
	check_bad(true, s, n, NULL, NULL, -431, false, __LINE__);
	/* refused as soon as the buffer holds 32 KiB without the blank line */
	assert_int_equal(parse_whole(true, s, 32768, NULL, NULL, &why), -431);
	assert_int_equal(parse_whole(true, s, 32767, NULL, NULL, &why), H1_NEED_MORE);
	free(s);
}

/* `start` and then fields up to nfields in all (the first is Host). */
static char *many_fields(const char *start, int nfields, size_t *n)
{
	char *s = malloc(64 + (size_t)nfields * 16);
	size_t p = (size_t)sprintf(s, "%sHost: a\r\n", start);
	for (int i = 1; i < nfields; i++)
		p += (size_t)sprintf(s + p, "X-F%d: %d\r\n", i, i);
	p += (size_t)sprintf(s + p, "\r\n");
	*n = p;
	return s;
}

static char *many_fields_request(int nfields, size_t *n)
{
	return many_fields("GET / HTTP/1.1\r\n", nfields, n);
}

static void test_field_count_limit(void **state)
{
	size_t n;
	char *s;
	struct h1_limits lim = h1_default_limits;
	(void)state;

	s = many_fields_request(100, &n);
	check_ok(true, s, n, NULL, NULL, false, __LINE__);
	assert_int_equal(msg.nfields, 100);
	free(s);
	s = many_fields_request(101, &n);
	check_bad(true, s, n, NULL, NULL, -431, false, __LINE__);
	free(s);
	/* a configured limit above the struct's capacity is capped there */
	lim.max_fields = 1000;
	s = many_fields_request(256, &n);
	check_ok(true, s, n, &lim, NULL, false, __LINE__);
	free(s);
	s = many_fields_request(257, &n);
	check_bad(true, s, n, &lim, NULL, -431, false, __LINE__);
	free(s);
}

static void test_custom_limits(void **state)
{
	struct h1_limits lim = { .max_request_line = 20, .max_head = 64, .max_fields = 2 };
	const char *ok = "GET /123456 HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n";
	(void)state;
	check_ok(true, ok, strlen(ok), &lim, NULL, true, __LINE__);
	const char *l414 = "GET /1234567 HTTP/1.1\r\nHost: a\r\n\r\n";
	check_bad(true, l414, strlen(l414), &lim, NULL, -414, true, __LINE__);
	const char *f431 = "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n";
	check_bad(true, f431, strlen(f431), &lim, NULL, -431, true, __LINE__);
	const char *h431 = "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123\r\n\r\n";
	check_bad(true, h431, strlen(h431), &lim, NULL, -431, true, __LINE__);
	/* a bare LF right after max_request_line + 1 bytes: the line was
	 * already too long, however the bytes arrive */
	const char *lf414 = "GET /1234567 HTTP/1.1\nHost: a\r\n\r\n";
	check_bad(true, lf414, strlen(lf414), &lim, NULL, -414, true, __LINE__);
	const char *lf400 = "GET /123456 HTTP/1.1\nHost: a\r\n\r\n";
	check_bad(true, lf400, strlen(lf400), &lim, NULL, -400, true, __LINE__);
	/* the status line of a response has the same limit: 502 */
	const char *r = "HTTP/1.1 200 OK-OK-OK\r\n\r\n";
	check_bad(false, r, strlen(r), &lim, NULL, -502, true, __LINE__);
}

static void test_default_limits(void **state)
{
	(void)state;
	assert_int_equal(h1_default_limits.max_request_line, 8192);
	assert_int_equal(h1_default_limits.max_head, 32768);
	assert_int_equal(h1_default_limits.max_fields, 100);
}

/* ---- incremental -------------------------------------------------------- */

static void test_need_more(void **state)
{
	const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *why = NULL;
	(void)state;
	for (size_t k = 0; k < strlen(s); k++)
		assert_int_equal(parse_whole(true, s, k, NULL, NULL, &why), H1_NEED_MORE);
	assert_int_equal(parse_whole(false, "", 0, NULL, NULL, &why), H1_NEED_MORE);
	assert_int_equal(parse_whole(false, "HTTP/1.1 200 OK\r\n\r", 18, NULL, NULL, &why),
			 H1_NEED_MORE);
}

static void test_crlfcrlf_straddles_calls(void **state)
{
	const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
	size_t head = 27;
	(void)state;
	/* the blank line split at every point around it, with one scan state */
	for (size_t cut = head - 4; cut < head; cut++) {
		struct h1_scan sc = { 0 };
		const char *why = NULL;
		assert_int_equal(h1_parse_request(s, cut, &sc, NULL, &msg, &why), H1_NEED_MORE);
		assert_true(sc.pos <= cut);
		assert_int_equal(h1_parse_request(s, strlen(s), &sc, NULL, &msg, &why), (int)head);
		str_eq(msg.fields[0].value, msg.fields[0].value_len, "a");
	}
}

static void test_pipelined_head_len(void **state)
{
	const char *s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n";
	struct h1_scan sc = { 0 };
	int rc;
	(void)state;
	rc = h1_parse_request(s, strlen(s), &sc, NULL, &msg, NULL);
	assert_int_equal(rc, 28);
	str_eq(msg.path, msg.path_len, "/1");
	memset(&sc, 0, sizeof(sc));
	assert_int_equal(h1_parse_request(s + rc, strlen(s) - (size_t)rc, &sc, NULL, &msg, NULL), 28);
	str_eq(msg.path, msg.path_len, "/2");
	str_eq(msg.authority, msg.authority_len, "b");
}

static void test_bytewise_dozen(void **state)
{
	static const struct {
		bool request;
		const char *s;
		const char *method;
	} cases[] = {
		{ true, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL },
		{ true, "\r\nPOST /up HTTP/1.1\r\nHost: a:1\r\nContent-Length: 12\r\n\r\n", NULL },
		{ true, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", NULL },
		{ true, "GET http://x.example/y HTTP/1.1\r\nHost: z\r\nConnection: close, x-a\r\nX-A: 1\r\n\r\n", NULL },
		{ true, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			"Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n", NULL },
		{ true, "OPTIONS * HTTP/1.0\r\n\r\n", NULL },
		{ true, "GET / HTTP/1.1\r\nHost: a\r\nX: \t v \t\r\nY:\r\n\r\n", NULL },
		{ false, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", NULL },
		{ false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", NULL },
		{ false, "HTTP/1.0 404\r\nServer: x\r\n\r\n", NULL },
		{ false, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", NULL },
		{ false, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD" },
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const char *s = cases[i].s;
		check_ok(cases[i].request, s, strlen(s), NULL, cases[i].method, true, (int)i);
	}
}

/* ---- responses ---------------------------------------------------------- */

static void test_response_framing(void **state)
{
	(void)state;
	RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", NULL);
	assert_int_equal(msg.status, 200);
	str_eq(msg.reason, msg.reason_len, "OK");
	assert_int_equal(msg.body, H1_BODY_LENGTH);
	assert_int_equal(msg.content_length, 12);
	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", NULL);
	assert_int_equal(msg.body, H1_BODY_CHUNKED);
	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", NULL);
	assert_int_equal(msg.body, H1_BODY_CHUNKED);
	RESP_OK("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", NULL);
	assert_int_equal(msg.body, H1_BODY_CLOSE);
	RESP_OK("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", NULL);
	assert_int_equal(msg.body, H1_BODY_NONE);
	assert_int_equal(msg.status, 500);
}

static void test_response_no_body(void **state)
{
	(void)state;
	RESP_OK("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", NULL);
	assert_int_equal(msg.body, H1_BODY_NONE);
	RESP_OK("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", NULL);
	assert_int_equal(msg.body, H1_BODY_NONE);
	RESP_OK("HTTP/1.1 100 Continue\r\n\r\n", NULL);
	assert_int_equal(msg.body, H1_BODY_NONE);
	RESP_OK("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n", NULL);
	assert_int_equal(msg.body, H1_BODY_NONE);
	RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD");
	assert_int_equal(msg.body, H1_BODY_NONE);
	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD");
	assert_int_equal(msg.body, H1_BODY_NONE);
	RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "GET");
	assert_int_equal(msg.body, H1_BODY_LENGTH);
}

static void test_status_line(void **state)
{
	(void)state;
	RESP_OK("HTTP/1.1 200\r\n\r\n", NULL);
	assert_int_equal(msg.status, 200);
	assert_int_equal(msg.reason_len, 0);
	RESP_OK("HTTP/1.1 200 \r\n\r\n", NULL);
	assert_int_equal(msg.reason_len, 0);
	RESP_OK("HTTP/1.1 404 Not \tFound \xe9\r\n\r\n", NULL);
	str_eq(msg.reason, msg.reason_len, "Not \tFound \xe9");
	RESP_OK("HTTP/1.0 200 OK\r\n\r\n", NULL);
	assert_int_equal(msg.version, 10);
	assert_true(msg.flags & H1_F_CONN_CLOSE);
	assert_int_equal(msg.body, H1_BODY_CLOSE);
}

static void test_status_line_bad(void **state)
{
	(void)state;
	RESP_BAD("HTTP/1.1 20 OK\r\n\r\n");
	RESP_BAD("HTTP/1.1 2000 OK\r\n\r\n");
	RESP_BAD("HTTP/1.1  200 OK\r\n\r\n");
	RESP_BAD("HTTP/1.1 099 Low\r\n\r\n");
	RESP_BAD("HTTP/1.1 600 High\r\n\r\n");
	RESP_BAD("HTTP/1.1 2x0 OK\r\n\r\n");
	RESP_BAD("HTTP/2 200 OK\r\n\r\n");
	RESP_BAD("HTTP/2.0 200 OK\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 O\x01K\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\r\n\r\n");
	RESP_BAD("http/1.1 200 OK\r\n\r\n");
	RESP_BAD("ICY 200 OK\r\n\r\n");
	RESP_BAD("\r\nHTTP/1.1 200 OK\r\n\r\n");
}

static void test_response_fields_bad(void **state)
{
	(void)state;
	RESP_BAD("HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 1\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nX : a\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n");
	/* an invalid Content-Length is refused even where there is no body */
	RESP_BAD("HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n");
}

static void test_response_te_bad(void **state)
{
	(void)state;
	RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
	RESP_BAD("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;q=1\r\n\r\n");
	RESP_BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n");
}

static void test_response_hop(void **state)
{
	(void)state;
	RESP_OK("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", "GET");
	assert_true(msg.flags & H1_F_UPGRADE_WS);
	assert_int_equal(hop_of("upgrade"), 0);
	assert_int_equal(hop_of("connection"), 1);
	assert_int_equal(msg.body, H1_BODY_NONE);
	RESP_OK("HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: Upgrade, X-B\r\n"
		"X-B: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n", NULL);
	assert_int_equal(hop_of("upgrade"), 1);
	assert_int_equal(hop_of("x-b"), 1);
	assert_int_equal(hop_of("keep-alive"), 1);
	assert_int_equal(hop_of("content-length"), 0);
}

static void test_response_limits(void **state)
{
	size_t n;
	char *s = many_fields("HTTP/1.1 200 OK\r\n", 100, &n);
	(void)state;
	check_ok(false, s, n, NULL, NULL, false, __LINE__);
	free(s);
	s = many_fields("HTTP/1.1 200 OK\r\n", 101, &n);
	check_bad(false, s, n, NULL, NULL, -502, false, __LINE__);
	free(s);
}

/* ---- chunked ------------------------------------------------------------ */

/* Feeds s whole, then byte by byte, then in chunks of 3: each way the body
 * must be `want` bytes (or the error), and done must be set. */
static void chunk_check(const char *s, size_t n, int64_t want, int line)
{
	struct h1_chunked c;
	const char *why = NULL;
	char *b = malloc(n ? n : 1);
	int64_t rc, total;

	assert_non_null(b);
	memcpy(b, s, n);
	memset(&c, 0, sizeof(c));
	rc = h1_chunked_feed(&c, b, n, &why);
	if (rc != want)
		fail_msg("line %d: whole: %lld, expected %lld (%s)", line, (long long)rc,
			 (long long)want, why ? why : "-");
	if (want >= 0 && !c.done)
		fail_msg("line %d: not done", line);
	if (want < 0 && (!why || !*why))
		fail_msg("line %d: refused without a reason", line);
	for (size_t step = 1; step <= 3; step += 2) {
		memset(&c, 0, sizeof(c));
		total = 0;
		rc = 0;
		for (size_t i = 0; i < n && !c.done; i += step) {
			size_t k = n - i < step ? n - i : step;
			char *p = malloc(k);
			memcpy(p, s + i, k);
			rc = h1_chunked_feed(&c, p, k, &why);
			free(p);
			if (rc < 0)
				break;
			assert_true((size_t)rc <= k);
			total += rc;
		}
		if (want < 0) {
			if (rc != want)
				fail_msg("line %d: step %zu: %lld, expected %lld", line, step,
					 (long long)rc, (long long)want);
		} else {
			if (rc < 0 || total != want || !c.done)
				fail_msg("line %d: step %zu: consumed %lld (rc %lld), expected %lld",
					 line, step, (long long)total, (long long)rc, (long long)want);
		}
	}
	free(b);
}

#define CHUNK_OK(s) chunk_check(s, sizeof(s) - 1, (int64_t)(sizeof(s) - 1), __LINE__)
#define CHUNK_BAD(s) chunk_check(s, sizeof(s) - 1, -400, __LINE__)

static void test_chunked_simple(void **state)
{
	(void)state;
	CHUNK_OK("5\r\nhello\r\n0\r\n\r\n");
	CHUNK_OK("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
	CHUNK_OK("0\r\n\r\n");
	CHUNK_OK("000\r\n\r\n");
	CHUNK_OK("a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n");
	CHUNK_OK("1F\r\n0123456789012345678901234567890\r\n0\r\n\r\n");
	CHUNK_OK("00004\r\n\r\n\r\n\r\n0\r\n\r\n");
}

static void test_chunked_stops_at_end(void **state)
{
	const char *s = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	struct h1_chunked c = { 0 };
	const char *why = NULL;
	(void)state;
	/* only the body's bytes are consumed: what follows is the next request */
	assert_int_equal(h1_chunked_feed(&c, s, strlen(s), &why), 13);
	assert_true(c.done);
	assert_int_equal(h1_chunked_feed(&c, s + 13, strlen(s) - 13, &why), 0);
	chunk_check(s, strlen(s), 13, __LINE__);
}

static void test_chunked_extensions(void **state)
{
	(void)state;
	CHUNK_OK("5;a=b\r\nhello\r\n0;last\r\n\r\n");
	CHUNK_OK("5;a;b=c;d=\"q\"\r\nhello\r\n0\r\n\r\n");
	CHUNK_OK("5 ; a = b\t;\tc\r\nhello\r\n0\r\n\r\n");
	CHUNK_OK("5;a=\"x \\\"y\\\\ z\xe9\"\r\nhello\r\n0\r\n\r\n");
	CHUNK_OK("5;a=\"\"\r\nhello\r\n0\r\n\r\n");
	CHUNK_OK("5;a=\"b\" ;c=d\r\nhello\r\n0\r\n\r\n");
}

static void test_chunked_trailers(void **state)
{
	(void)state;
	CHUNK_OK("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:  v \t\r\n\r\n");
	CHUNK_OK("0\r\nX:\r\n\r\n");
}

static void test_chunked_bad_size(void **state)
{
	(void)state;
	CHUNK_BAD("-5\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("+5\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("0x5\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD(" 5\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5 \r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5_0\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("g\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5\t\r\nhello\r\n0\r\n\r\n");
}

static void test_chunked_overflow(void **state)
{
	struct h1_chunked c = { 0 };
	const char *why = NULL;
	(void)state;
	CHUNK_BAD("8000000000000000\r\n");
	CHUNK_BAD("10000000000000000\r\n");
	CHUNK_BAD("ffffffffffffffffffff\r\n");
	/* 2^63-1 is the largest: accepted, and the data is then awaited */
	assert_int_equal(h1_chunked_feed(&c, "7fffffffffffffff\r\nab", 20, &why), 20);
	assert_false(c.done);
	assert_int_equal(c.remaining, (uint64_t)INT64_MAX - 2);
}

static void test_chunked_bad_data_end(void **state)
{
	(void)state;
	CHUNK_BAD("5\r\nhelloX\r\n0\r\n\r\n");
	CHUNK_BAD("5\r\nhello0\r\n\r\n");
	CHUNK_BAD("5\r\nhello\n0\r\n\r\n");
	CHUNK_BAD("5\r\nhello\rX0\r\n\r\n");
	CHUNK_BAD("5\r\nhell\r\n0\r\n\r\n\r\n");
}

static void test_chunked_bare_lf_cr(void **state)
{
	(void)state;
	CHUNK_BAD("5\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5\rhello\r\n0\r\n\r\n");
	CHUNK_BAD("5\r\nhello\r\n0\n\r\n");
	CHUNK_BAD("5\r\nhello\r\n0\r\n\n");
	CHUNK_BAD("5\r\nhello\r\n0\r\n\rX");
	CHUNK_BAD("5;a=b\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("0\r\nX: y\n\r\n");
	CHUNK_BAD("0\r\nX: y\rz\r\n\r\n");
}

static void test_chunked_bad_extensions(void **state)
{
	(void)state;
	CHUNK_BAD("5;\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;=x\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a b\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=b c\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\"b\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\"b\x01\"\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=(b)\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a \r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\x7f\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n");
}

static void test_chunked_bad_trailers(void **state)
{
	(void)state;
	CHUNK_BAD("0\r\n X: y\r\n\r\n");
	CHUNK_BAD("0\r\nX: y\r\n\tz\r\n\r\n");
	CHUNK_BAD("0\r\nX : y\r\n\r\n");
	CHUNK_BAD("0\r\n: y\r\n\r\n");
	CHUNK_BAD("0\r\nno-colon\r\n\r\n");
	CHUNK_BAD("0\r\nX(: y\r\n\r\n");
	CHUNK_BAD("0\r\nX: a\0b\r\n\r\n");
	CHUNK_BAD("0\r\nX: a\x01\r\n\r\n");
}

static void test_chunked_limits(void **state)
{
	size_t n = 5000;
	char *s = malloc(n + 32);
	struct h1_chunked c = { 0 };
	const char *why = NULL;
	(void)state;

	/* a size line of 4 KiB is fine, more is refused */
	memset(s, '0', 4095);
	memcpy(s + 4095, "5\r\nhello\r\n0\r\n\r\n", 16);
	chunk_check(s, strlen(s), (int64_t)strlen(s), __LINE__);
	memset(s, '0', 4096);
	memcpy(s + 4096, "5\r\nhello\r\n0\r\n\r\n", 16);
	chunk_check(s, strlen(s), -400, __LINE__);
	memcpy(s, "5;a=", 4);
	memset(s + 4, 'x', 4200);
	assert_int_equal(h1_chunked_feed(&c, s, 4204, &why), -400);
	free(s);

	/* trailers of at most 32 KiB */
	s = malloc(40000);
	memcpy(s, "0\r\n", 3);
	size_t p = 3;
	while (p < 32768 - 100) {
		memcpy(s + p, "X-T: ", 5);
		memset(s + p + 5, 'v', 93);
		memcpy(s + p + 98, "\r\n", 2);
		p += 100;
	}
	memcpy(s + p, "\r\n", 2);
	chunk_check(s, p + 2, (int64_t)(p + 2), __LINE__);
	p -= 2;
	while (p < 33000) {
		memcpy(s + p, "\r\nX-T: vvvv", 11);
		p += 11;
	}
	memcpy(s + p, "\r\n\r\n", 4);
	chunk_check(s, p + 4, -400, __LINE__);
	free(s);
}

static void test_chunked_partial_counts(void **state)
{
	struct h1_chunked c = { 0 };
	const char *why = NULL;
	(void)state;
	assert_int_equal(h1_chunked_feed(&c, "a\r\n01234", 8, &why), 8);
	assert_int_equal(c.remaining, 5);
	assert_false(c.done);
	assert_int_equal(h1_chunked_feed(&c, "56789\r", 6, &why), 6);
	assert_int_equal(h1_chunked_feed(&c, "\n0\r\n", 4, &why), 4);
	assert_false(c.done);
	assert_int_equal(h1_chunked_feed(&c, "\r", 1, &why), 1);
	assert_false(c.done);
	assert_int_equal(h1_chunked_feed(&c, "\nXYZ", 4, &why), 1);
	assert_true(c.done);
	assert_int_equal(h1_chunked_feed(&c, "more", 4, &why), 0);
	assert_int_equal(h1_chunked_feed(&c, "", 0, &why), 0);
}

static void test_chunked_after_error(void **state)
{
	struct h1_chunked c = { 0 };
	const char *why = NULL;
	(void)state;
	assert_int_equal(h1_chunked_feed(&c, "z", 1, &why), -400);
	why = NULL;
	/* a failed stream stays failed, whatever comes next */
	assert_int_equal(h1_chunked_feed(&c, "0\r\n\r\n", 5, &why), -400);
	assert_non_null(why);
}

static void test_chunked_large_data(void **state)
{
	size_t n = 70000;
	char *s = malloc(n + 64);
	int w = sprintf(s, "%zx\r\n", n);
	(void)state;
	memset(s + w, 'd', n);
	memcpy(s + w + n, "\r\n0\r\n\r\n", 8);
	chunk_check(s, (size_t)w + n + 7, (int64_t)((size_t)w + n + 7), __LINE__);
	free(s);
}

/* Decodes s in pieces of `step` bytes (0: whole) and checks that the data
 * handed out is `want`, that every byte is consumed and the body ends. */
static void decode_check(const char *s, const char *want, size_t step, int line)
{
	struct h1_chunked c = { 0 };
	const char *why = NULL;
	char out[256];
	size_t n = strlen(s), i = 0, got = 0, calls = 0;

	while (i < n && !c.done) {
		size_t k = step && n - i > step ? step : n - i, data;
		int64_t rc = h1_chunked_decode(&c, s + i, k, &data, &why);
		if (rc < 0)
			fail_msg("line %d: step %zu: refused at %zu: %s", line, step, i, why);
		if (data && (size_t)rc != data)
			fail_msg("line %d: a call mixed framing and data", line);
		assert_true(got + data < sizeof(out));
		memcpy(out + got, s + i, data);
		got += data;
		i += (size_t)rc;
		if (++calls > 4 * n + 4)
			fail_msg("line %d: step %zu: no progress at %zu", line, step, i);
	}
	if (!c.done || i != n || got != strlen(want) || memcmp(out, want, got) != 0)
		fail_msg("line %d: step %zu: done %d, consumed %zu of %zu, data \"%.*s\"", line, step,
			 c.done, i, n, (int)got, out);
}

static void test_chunked_decode(void **state)
{
	static const struct { const char *in, *data; } cases[] = {
		{ "5\r\nhello\r\n0\r\n\r\n", "hello" },
		{ "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world" },
		{ "0\r\n\r\n", "" },
		{ "3;ext=\"a b\"\r\nabc\r\n1 ; x\r\nd\r\n0\r\nX-Trailer: t\r\n\r\n", "abcd" },
		{ "a\r\n0\r\n\r\n01234\r\n0\r\n\r\n", "0\r\n\r\n01234" },
	};
	struct h1_chunked c = { 0 };
	const char *why = NULL;
	size_t data;
	(void)state;
	for (size_t k = 0; k < ARRAY_LEN(cases); k++)
		for (size_t step = 0; step <= 3; step++)
			decode_check(cases[k].in, cases[k].data, step, __LINE__);
	/* Invalid framing is refused as by h1_chunked_feed. */
	assert_int_equal(h1_chunked_decode(&c, "2\r\nab", 5, &data, &why), 3);
	assert_int_equal(data, 0);
	assert_int_equal(h1_chunked_decode(&c, "abX", 3, &data, &why), 2);
	assert_int_equal(data, 2);
	assert_int_equal(h1_chunked_decode(&c, "X", 1, &data, &why), -400);
	assert_non_null(why);
}

/* ---- lookups ------------------------------------------------------------ */

static void test_find_field(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nOther: 2\r\nx-dup: 3\r\n\r\n");
	assert_int_equal(h1_find_field(&msg, "X-DUP", 5, 0), 1);
	assert_int_equal(h1_find_field(&msg, "x-dup", 5, 2), 3);
	assert_int_equal(h1_find_field(&msg, "x-dup", 5, 4), -1);
	assert_int_equal(h1_find_field(&msg, "x-du", 4, 0), -1);
	assert_int_equal(h1_find_field(&msg, "host", 4, -3), 0);
	assert_int_equal(h1_find_field(&msg, "missing", 7, 0), -1);
}

static void test_status_text(void **state)
{
	static const struct {
		int code;
		const char *text;
	} t[] = {
		{ 100, "Continue" }, { 101, "Switching Protocols" }, { 200, "OK" },
		{ 204, "No Content" }, { 301, "Moved Permanently" }, { 302, "Found" },
		{ 303, "See Other" }, { 304, "Not Modified" }, { 307, "Temporary Redirect" },
		{ 308, "Permanent Redirect" }, { 400, "Bad Request" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 408, "Request Timeout" }, { 413, "Content Too Large" },
		{ 414, "URI Too Long" }, { 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" }, { 501, "Not Implemented" },
		{ 502, "Bad Gateway" }, { 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" }, { 505, "HTTP Version Not Supported" },
		{ 418, "Unknown" }, { 0, "Unknown" }, { -400, "Unknown" },
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(t); i++)
		assert_string_equal(h1_status_text(t[i].code), t[i].text);
}

static void test_null_scan_and_limits(void **state)
{
	const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	(void)state;
	assert_int_equal(h1_parse_request(s, strlen(s), NULL, NULL, &msg, NULL), 27);
	assert_int_equal(h1_parse_request("GET / HTTP/1.1\n", 15, NULL, NULL, &msg, NULL), -400);
	assert_int_equal(h1_parse_response("HTTP/1.1 200 OK\r\n\r\n", 19, NULL, NULL, NULL, 0, &msg,
					   NULL), 19);
}

static int teardown(void **state)
{
	(void)state;
	free(cur);
	cur = NULL;
	return 0;
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_simple_get),
		T(test_http10_without_host),
		T(test_request_line_spaces),
		T(test_version_malformed),
		T(test_version_unsupported),
		T(test_method),
		T(test_target_chars),
		T(test_target_forms),
		T(test_connect_refused),
		T(test_absolute_form),
		T(test_absolute_form_bad),
		T(test_leading_empty_lines),
		T(test_bare_lf),
		T(test_bare_lf_before_head_complete),
		T(test_bare_cr),
		T(test_obs_fold),
		T(test_space_before_colon),
		T(test_field_name_chars),
		T(test_field_value_chars),
		T(test_field_value_ows),
		T(test_content_length),
		T(test_content_length_bad),
		T(test_content_length_overflow),
		T(test_content_length_repeated),
		T(test_te_chunked),
		T(test_te_unknown_coding),
		T(test_te_chunked_not_last_or_twice),
		T(test_te_malformed),
		T(test_te_http10),
		T(test_te_and_cl),
		T(test_host_required),
		T(test_host_valid),
		T(test_host_invalid),
		T(test_absolute_form_replaces_host),
		T(test_connection_flags),
		T(test_connection_invalid),
		T(test_hop_by_hop_fixed),
		T(test_hop_by_hop_listed),
		T(test_websocket_upgrade),
		T(test_upgrade_not_websocket),
		T(test_expect),
		T(test_underscore_flag),
		T(test_normalize_path),
		T(test_request_line_limit),
		T(test_head_limit),
		T(test_field_count_limit),
		T(test_custom_limits),
		T(test_default_limits),
		T(test_need_more),
		T(test_crlfcrlf_straddles_calls),
		T(test_pipelined_head_len),
		T(test_bytewise_dozen),
		T(test_response_framing),
		T(test_response_no_body),
		T(test_status_line),
		T(test_status_line_bad),
		T(test_response_fields_bad),
		T(test_response_te_bad),
		T(test_response_hop),
		T(test_response_limits),
		T(test_chunked_simple),
		T(test_chunked_stops_at_end),
		T(test_chunked_extensions),
		T(test_chunked_trailers),
		T(test_chunked_bad_size),
		T(test_chunked_overflow),
		T(test_chunked_bad_data_end),
		T(test_chunked_bare_lf_cr),
		T(test_chunked_bad_extensions),
		T(test_chunked_bad_trailers),
		T(test_chunked_limits),
		T(test_chunked_partial_counts),
		T(test_chunked_after_error),
		T(test_chunked_large_data),
		T(test_chunked_decode),
		T(test_find_field),
		T(test_status_text),
		T(test_null_scan_and_limits),
	};
	return cmocka_run_group_tests_name("h1", tests, NULL, NULL);
}
