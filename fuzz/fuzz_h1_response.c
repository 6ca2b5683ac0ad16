/* libFuzzer driver for h1_parse_response. Besides not crashing:
 *  - the whole input, the input in two and three pieces and (short inputs)
 *    one byte at a time give the same result and the same message;
 *  - a refusal is -502 with a reason;
 *  - an accepted head ends with CRLFCRLF inside the input and the limits,
 *    its pointers lie inside it, the status is 100-599, and the framing
 *    follows RFC 9112 6.3: nothing for HEAD, 1xx, 204 and 304; chunked only
 *    with a Transfer-Encoding and never with a Content-Length; a length only
 *    with a Content-Length.
 * Each input is parsed as the answer to a GET and to a HEAD, with the
 * default limits and with small ones. */
#include "h1.h"
#include "h1_fuzz_util.h"

#include <stdlib.h>
#include <string.h>

static struct h1_msg m1, m2;

static const struct h1_limits small_limits = {
	.max_request_line = 40, .max_head = 200, .max_fields = 6,
};

static void check_ok(const struct h1_msg *m, const char *buf, size_t len, int rc,
		     const struct h1_limits *lim, bool head_req)
{
	bool te = false, cl = false;
	size_t head = (size_t)rc;

	if (head > len || head < 4 || m->head_len != head || head > lim->max_head)
		abort();
	if (memcmp(buf + head - 4, "\r\n\r\n", 4) != 0 || memcmp(buf, "HTTP/1.", 7) != 0)
		abort();
	if (m->version != 10 && m->version != 11)
		abort();
	if (m->status < 100 || m->status > 599)
		abort();
	if (!inside(m->reason, m->reason_len, buf, head) ||
	    (size_t)(m->reason - buf) + m->reason_len > lim->max_request_line)
		abort();
	if (m->method || m->target || m->path)
		abort();
	if ((m->flags & H1_F_UPGRADE_WS) && !(m->flags & H1_F_CONN_UPGRADE))
		abort();
	if (m->nfields > lim->max_fields)
		abort();
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct h1_field *f = &m->fields[i];
		if (!inside(f->name, f->name_len, buf, head) ||
		    !inside(f->value, f->value_len, buf, head) || f->name_len == 0)
			abort();
		for (uint32_t k = 0; k < f->name_len; k++)
			if (!tchar((unsigned char)f->name[k]))
				abort();
		for (uint32_t k = 0; k < f->value_len; k++) {
			unsigned char c = (unsigned char)f->value[k];
			if (c == '\r' || c == '\n' || c == 0 || c == 0x7f || (c < 0x20 && c != '\t'))
				abort();
		}
		if (m->hop[i] > 1)
			abort();
		if (m->hop[i] && (name_is(f, "content-length") || name_is(f, "transfer-encoding")))
			abort();
		if (name_is(f, "upgrade") && !m->hop[i] && m->status != 101)
			abort();
		if (name_is(f, "transfer-encoding"))
			te = true;
		if (name_is(f, "content-length"))
			cl = true;
	}
	switch (m->body) {
	case H1_BODY_NONE:
		if (!head_req && m->status >= 200 && m->status != 204 && m->status != 304 &&
		    (!cl || m->content_length != 0 || te))
			abort();
		break;
	case H1_BODY_CHUNKED:
		if (!te || cl || m->version != 11 || head_req)
			abort();
		break;
	case H1_BODY_LENGTH:
		if (!cl || te || m->content_length == 0 || m->content_length > INT64_MAX || head_req)
			abort();
		break;
	case H1_BODY_CLOSE:
		if (te || cl || head_req)
			abort();
		break;
	default:
		abort();
	}
	if (m->version == 10 && !(m->flags & (H1_F_CONN_CLOSE | H1_F_CONN_KEEPALIVE)))
		abort();
}

static void same(const struct h1_msg *a, const struct h1_msg *b)
{
	if (a->head_len != b->head_len || a->flags != b->flags || a->body != b->body ||
	    a->content_length != b->content_length || a->version != b->version ||
	    a->status != b->status || a->reason != b->reason || a->reason_len != b->reason_len ||
	    a->nfields != b->nfields)
		abort();
	if (memcmp(a->fields, b->fields, a->nfields * sizeof(a->fields[0])) != 0 ||
	    memcmp(a->hop, b->hop, a->nfields) != 0)
		abort();
}

static int parse(const char *buf, size_t len, struct h1_scan *sc, const struct h1_limits *lim,
		 bool head_req, struct h1_msg *m)
{
	const char *why = NULL;
	int rc = h1_parse_response(buf, len, sc, lim, head_req ? "HEAD" : "GET", head_req ? 4 : 3,
				   m, &why);
	if (rc < 0 && (rc != -502 || !why || !*why))
		abort();
	return rc;
}

/* Shown the prefixes in cuts[] first (exact-size copies), then the whole. */
static int staged(const char *buf, size_t len, const size_t *cuts, size_t ncuts,
		  const struct h1_limits *lim, bool head_req, struct h1_msg *m, size_t *at)
{
	struct h1_scan sc = { 0 };
	int rc;

	for (size_t i = 0; i < ncuts; i++) {
		size_t k = cuts[i];
		char *p;
		if (k >= len)
			break;
		p = malloc(k ? k : 1);
		if (!p)
			abort();
		memcpy(p, buf, k);
		rc = parse(p, k, &sc, lim, head_req, m);
		free(p);
		if (rc != H1_NEED_MORE) {
			if (rc > 0) {
				struct h1_scan fresh = { 0 };
				if (parse(buf, k, &fresh, lim, head_req, m) != rc)
					abort();
			}
			*at = k;
			return rc;
		}
		if (sc.pos > k)
			abort();
	}
	*at = len;
	return parse(buf, len, &sc, lim, head_req, m);
}

static void run(const char *buf, size_t len, const struct h1_limits *lim, bool head_req,
		uint64_t h)
{
	struct h1_scan sc = { 0 };
	size_t cuts[2], at;
	int rc, rc2;

	rc = parse(buf, len, &sc, lim, head_req, &m1);
	if (rc > 0)
		check_ok(&m1, buf, len, rc, lim, head_req);
	else if (rc == 0 && len >= lim->max_head)
		abort();

	cuts[0] = len ? (size_t)(h % (len + 1)) : 0;
	cuts[1] = cuts[0] + (len - cuts[0] ? (size_t)((h >> 32) % (len - cuts[0] + 1)) : 0);
	for (size_t n = 1; n <= 2; n++) {
		rc2 = staged(buf, len, cuts, n, lim, head_req, &m2, &at);
		if (rc2 != rc)
			abort();
		if (rc > 0)
			same(&m1, &m2);
	}
	if (len <= 300) {
		size_t all[300];
		for (size_t i = 0; i < len; i++)
			all[i] = i + 1;
		rc2 = staged(buf, len, all, len, lim, head_req, &m2, &at);
		if (rc2 != rc || (rc > 0 && at != (size_t)rc))
			abort();
		if (rc > 0)
			same(&m1, &m2);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = hash(data, size);

	run((const char *)data, size, &h1_default_limits, false, h);
	run((const char *)data, size, &h1_default_limits, true, h * 17 + 3);
	run((const char *)data, size, &small_limits, false, h * 31 + 7);
	return 0;
}
