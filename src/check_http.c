/* http and https checks: one request with Connection: close; the status
 * must be in expect_status and, with expect_body, the body (its first 64k,
 * without the chunked framing) must contain the text or match the pattern. */
#include "check.h"
#include "h1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

static size_t http_request(const struct conf_check *cc, const char *host, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrum-health-check\r\n"
			 "Connection: close\r\n", cc->method, cc->path, cc->host ? cc->host : host);
	for (size_t i = 0; n > 0 && (size_t)n < cap && i < cc->headers.n; i++)
		n += snprintf(buf + n, cap - (size_t)n, "%s: %s\r\n", cc->headers.keys[i], cc->headers.vals[i]);
	if (n > 0 && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n, "\r\n");
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static bool status_ok(const struct conf_check *cc, int status)
{
	for (size_t i = 0; i < cc->nstatus; i++)
		if (status >= cc->status_lo[i] && status <= cc->status_hi[i])
			return true;
	return false;
}

/* Whether the head (data up to end) says Transfer-Encoding: chunked. */
static bool chunked(const char *data, const char *end)
{
	char head[8192];
	size_t n = (size_t)(end - data) < sizeof(head) - 1 ? (size_t)(end - data) : sizeof(head) - 1;
	for (size_t i = 0; i < n; i++)
		head[i] = (char)(data[i] >= 'A' && data[i] <= 'Z' ? data[i] + 32 : data[i]);
	head[n] = '\0';
	char *te = strstr(head, "\ntransfer-encoding:");
	char *eol = te ? strchr(te + 1, '\n') : NULL;
	if (eol)
		*eol = '\0';
	return te && strstr(te, "chunked");
}

static bool body_ok(const struct conf_check *cc, const char *body, size_t len, bool is_chunked)
{
	char *plain = NULL;
	bool ok;
	if (is_chunked) {
		/* Match the data, not the framing: the chunked validator says,
		 * byte by byte, which bytes are chunk data. */
		struct h1_chunked ck = { 0 };
		const char *why;
		size_t n = 0;
		plain = xmalloc(len + 1);
		for (size_t i = 0; i < len && !ck.done; i++) {
			uint64_t before = ck.data_bytes;
			if (h1_chunked_feed(&ck, body + i, 1, &why) < 0)
				break;
			if (ck.data_bytes > before)
				plain[n++] = body[i];
		}
		body = plain;
		len = n;
	}
	if (cc->body_re) {
		pcre2_match_data *md = pcre2_match_data_create_from_pattern(cc->body_re, NULL);
		int rc = md ? pcre2_match(cc->body_re, (PCRE2_SPTR)body, len, 0, 0, md, NULL) : -1;
		pcre2_match_data_free(md);
		ok = rc >= 0;
	} else {
		ok = memmem(body, len, cc->expect_body, strlen(cc->expect_body)) != NULL;
	}
	free(plain);
	return ok;
}

static int http_judge(const struct conf_check *cc, const char *data, size_t len, bool eof, char *why,
		      size_t wlen)
{
	const char *eol = memchr(data, '\n', len), *end;
	int status;
	if (!eol) {
		if (eof || len > 8192) {
			snprintf(why, wlen, "%s", len ? "not an HTTP response" : "closed without a response");
			return CHECK_FAIL;
		}
		return CHECK_MORE;
	}
	if (len < 12 || memcmp(data, "HTTP/1.", 7) != 0 || data[8] != ' ' ||
	    sscanf(data + 9, "%3d", &status) != 1 || status < 100 || status > 599) {
		snprintf(why, wlen, "not an HTTP response");
		return CHECK_FAIL;
	}
	if (!status_ok(cc, status)) {
		snprintf(why, wlen, "status %d", status);
		return CHECK_FAIL;
	}
	if (!cc->expect_body)
		return CHECK_PASS;
	/* The body is judged whole (up to the engine's 64k), at the close. */
	if (!eof)
		return CHECK_MORE;
	end = memmem(data, len, "\r\n\r\n", 4);
	if (!end || !body_ok(cc, end + 4, len - (size_t)(end + 4 - data), chunked(data, end))) {
		snprintf(why, wlen, "status %d, but the body does not match", status);
		return CHECK_FAIL;
	}
	return CHECK_PASS;
}

const struct check_ops check_http_ops = { "http", http_request, http_judge };
