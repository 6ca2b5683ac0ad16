/* tcp checks: connecting (and, with tls: true, the handshake) is enough;
 * with `send` and `expect`, the answer must start with the expected bytes
 * (Redis PING / +PONG, an SMTP 220 banner). */
#include "check.h"

#include <stdio.h>
#include <string.h>

static size_t tcp_request(const struct conf_check *cc, const char *host, char *buf, size_t cap)
{
	size_t n = cc->send_len < cap ? cc->send_len : cap;
	if (n)
		memcpy(buf, cc->send_bin, n);
	return n;
}

static int tcp_judge(const struct conf_check *cc, const char *data, size_t len, bool eof, char *why,
		     size_t wlen, bool *reuse)
{
	size_t n;
	*reuse = false;  /* connecting is part of what a tcp check checks */
	if (!cc->expect_len)
		return CHECK_PASS;
	n = len < cc->expect_len ? len : cc->expect_len;
	if (memcmp(data, cc->expect_bin, n) != 0) {
		snprintf(why, wlen, "unexpected answer");
		return CHECK_FAIL;
	}
	if (len >= cc->expect_len)
		return CHECK_PASS;
	if (eof) {
		snprintf(why, wlen, "closed after %zu of the %zu expected bytes", len, cc->expect_len);
		return CHECK_FAIL;
	}
	return CHECK_MORE;
}

const struct check_ops check_tcp_ops = { "tcp", tcp_request, tcp_judge };
