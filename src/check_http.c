/* http and https checks: one request; the status must be in expect_status
 * and, with expect_body, the body (its first 64k, without the chunked
 * framing) must contain the text or match the pattern. With
 * reuse_connection the whole answer is read (its framing says where it
 * ends), so that the connection can carry the next check; without, the
 * request says Connection: close and the status line is enough. */
#include "check.h"
#include "h1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

static size_t http_request(const struct conf_check *cc, const char *host, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrum-health-check\r\n%s",
			 cc->method, cc->path, cc->host ? cc->host : host,
			 cc->reuse_connection ? "" : "Connection: close\r\n");
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
		      size_t wlen, bool *reuse)
{
	struct h1_msg m;
	struct h1_scan scan = { 0 };
	const char *perr = "";
	size_t end = len;
	bool complete;
	int hl = h1_parse_response(data, len, &scan, &h1_default_limits, cc->method, (uint32_t)strlen(cc->method),
				   &m, &perr);
	*reuse = false;
	if (hl == H1_NEED_MORE) {
		if (!eof)
			return CHECK_MORE;
		snprintf(why, wlen, "%s", len ? "not an HTTP response (its head is incomplete)" :
			 "closed without a response");
		return CHECK_FAIL;
	}
	if (hl < 0) {
		snprintf(why, wlen, "not an HTTP response (%s)", perr);
		return CHECK_FAIL;
	}
	if (m.status < 200 || !status_ok(cc, m.status)) {
		snprintf(why, wlen, "status %d", m.status);
		return CHECK_FAIL;
	}
	if (!cc->expect_body && !cc->reuse_connection)
		return CHECK_PASS;
	/* Find where the answer ends: the body is judged whole (up to the
	 * engine's 64k), and a connection is reused only after a whole answer. */
	switch (m.body) {
	case H1_BODY_NONE:
		end = (size_t)hl;
		complete = true;
		break;
	case H1_BODY_LENGTH:
		complete = len - (size_t)hl >= m.content_length;
		if (complete)
			end = (size_t)hl + (size_t)m.content_length;
		break;
	case H1_BODY_CHUNKED: {
		struct h1_chunked ck = { 0 };
		int64_t k = h1_chunked_feed(&ck, data + hl, len - (size_t)hl, &perr);
		if (k < 0) {
			snprintf(why, wlen, "status %d, but the chunked body is invalid (%s)", m.status, perr);
			return CHECK_FAIL;
		}
		complete = ck.done;
		end = (size_t)hl + (size_t)k;
		break;
	}
	default:  /* until the server closes */
		complete = eof;
		break;
	}
	if (!complete && !eof)
		return CHECK_MORE;
	if (cc->expect_body && !body_ok(cc, data + hl, end - (size_t)hl, m.body == H1_BODY_CHUNKED)) {
		snprintf(why, wlen, "status %d, but the body does not match", m.status);
		return CHECK_FAIL;
	}
	*reuse = complete && !eof && end == len && m.body != H1_BODY_CLOSE && !(m.flags & H1_F_CONN_CLOSE);
	return CHECK_PASS;
}

const struct check_ops check_http_ops = { "http", http_request, http_judge };
