/* libFuzzer driver for h1_parse_request. Besides not crashing:
 *  - the answer does not depend on how the bytes arrive: the whole input,
 *    the input in two and three pieces (cut where a hash of the input says)
 *    and, for short inputs, one byte at a time, all give the same result and
 *    the same parsed message;
 *  - a refusal is one of the documented statuses and has a reason;
 *  - an accepted head ends with CRLFCRLF within the input and the limits,
 *    every pointer lies inside it, names are tokens, values hold no CR, LF,
 *    NUL or edge whitespace, and the framing is unambiguous (never both
 *    Transfer-Encoding and Content-Length, framing fields never hop-by-hop).
 * Each input runs with the default limits and with small ones, so the limit
 * paths are reached with short inputs. When the body is chunked, the rest
 * of the input goes through h1_chunked_feed. */
#include "h1.h"
#include "h1_fuzz_util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static struct h1_msg m1, m2;

static const struct h1_limits small_limits = {
	.max_request_line = 48, .max_head = 200, .max_fields = 6,
};

static bool prefix_is(const struct h1_field *f, const char *lc)
{
	struct h1_field g = *f;
	if (g.name_len < strlen(lc))
		return false;
	g.name_len = (uint32_t)strlen(lc);
	return name_is(&g, lc);
}

static void check_ok(const struct h1_msg *m, const char *buf, size_t len, int rc,
		     const struct h1_limits *lim)
{
	bool te = false, cl = false;
	size_t head = (size_t)rc;

	if (head > len || head < 4 || m->head_len != head || head > lim->max_head)
		abort();
	if (memcmp(buf + head - 4, "\r\n\r\n", 4) != 0)
		abort();
	if (m->version != 10 && m->version != 11)
		abort();
	if (!inside(m->method, m->method_len, buf, head) || m->method_len == 0 ||
	    !inside(m->target, m->target_len, buf, head) || m->target_len == 0 ||
	    (size_t)m->method_len + m->target_len + 10 > lim->max_request_line)
		abort();
	for (uint32_t i = 0; i < m->method_len; i++)
		if (!tchar((unsigned char)m->method[i]))
			abort();
	for (uint32_t i = 0; i < m->target_len; i++) {
		unsigned char c = (unsigned char)m->target[i];
		if (c <= 0x20 || c == 0x7f || c == '#')
			abort();
	}
	if (!m->path || m->path_len == 0 ||
	    (!inside(m->path, m->path_len, buf, head) &&
	     !(m->path_len == 1 && m->path[0] == '/')))
		abort();
	if (m->path[0] != '/' && !(m->path_len == 1 && m->path[0] == '*'))
		abort();
	if (m->authority && !inside(m->authority, m->authority_len, buf, head))
		abort();
	if (m->version == 11 && !(m->flags & H1_F_HAS_HOST))
		abort();
	if ((m->flags & H1_F_ABSOLUTE_FORM) && !m->authority)
		abort();
	if ((m->flags & H1_F_UPGRADE_WS) && !(m->flags & H1_F_CONN_UPGRADE))
		abort();
	if (m->nfields > lim->max_fields || m->nfields > H1_MAX_FIELDS_HARD)
		abort();
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct h1_field *f = &m->fields[i];
		if (!inside(f->name, f->name_len, buf, head) ||
		    !inside(f->value, f->value_len, buf, head) || f->name_len == 0)
			abort();
		for (uint32_t k = 0; k < f->name_len; k++)
			if (!tchar((unsigned char)f->name[k]))
				abort();
		if (f->name[f->name_len] != ':' || f->value < f->name + f->name_len)
			abort();
		for (uint32_t k = 0; k < f->value_len; k++) {
			unsigned char c = (unsigned char)f->value[k];
			if (c == '\r' || c == '\n' || c == 0 || c == 0x7f || (c < 0x20 && c != '\t'))
				abort();
		}
		if (f->value_len && (f->value[0] == ' ' || f->value[0] == '\t' ||
				     f->value[f->value_len - 1] == ' ' ||
				     f->value[f->value_len - 1] == '\t'))
			abort();
		if (m->hop[i] > 1)
			abort();
		if (m->hop[i] && (name_is(f, "content-length") || name_is(f, "transfer-encoding") ||
				  name_is(f, "host") || name_is(f, "forwarded") ||
				  prefix_is(f, "x-forwarded-")))
			abort();
		if (name_is(f, "transfer-encoding"))
			te = true;
		if (name_is(f, "content-length"))
			cl = true;
		if (h1_find_field(m, f->name, f->name_len, 0) > (int)i)
			abort();
	}
	if (te && cl)
		abort();
	switch (m->body) {
	case H1_BODY_CHUNKED:
		if (!te || m->version != 11)
			abort();
		break;
	case H1_BODY_LENGTH:
		if (!cl || m->content_length == 0 || m->content_length > INT64_MAX)
			abort();
		break;
	case H1_BODY_NONE:
		if (te)
			abort();
		break;
	default:
		abort();
	}
}

static void same(const struct h1_msg *a, const struct h1_msg *b)
{
	/* both parsed the same buffer: the pointers must agree too */
	if (a->head_len != b->head_len || a->flags != b->flags || a->body != b->body ||
	    a->content_length != b->content_length || a->version != b->version ||
	    a->method != b->method || a->method_len != b->method_len ||
	    a->target != b->target || a->target_len != b->target_len ||
	    a->path_len != b->path_len || a->authority != b->authority ||
	    a->authority_len != b->authority_len || a->nfields != b->nfields)
		abort();
	if (memcmp(a->fields, b->fields, a->nfields * sizeof(a->fields[0])) != 0 ||
	    memcmp(a->hop, b->hop, a->nfields) != 0)
		abort();
}

/* Parse buf[0..len) having first shown it the prefixes in cuts[] (ascending),
 * each from a copy of exactly that size. Returns the first answer that is not
 * "need more", or the answer for the whole buffer. */
static int staged(const char *buf, size_t len, const size_t *cuts, size_t ncuts,
		  const struct h1_limits *lim, struct h1_msg *m, size_t *at)
{
	struct h1_scan sc = { 0 };
	const char *why = NULL;
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
		why = NULL;
		rc = h1_parse_request(p, k, &sc, lim, m, &why);
		free(p);
		if (rc != H1_NEED_MORE) {
			if (rc < 0 && (!why || !*why))
				abort();
			/* a head found in a prefix: reparse it in place so the
			 * pointers can be compared with the whole parse */
			if (rc > 0) {
				struct h1_scan fresh = { 0 };
				if (h1_parse_request(buf, k, &fresh, lim, m, &why) != rc)
					abort();
			}
			*at = k;
			return rc;
		}
		if (sc.pos > k)
			abort();
	}
	why = NULL;
	rc = h1_parse_request(buf, len, &sc, lim, m, &why);
	if (rc < 0 && (!why || !*why))
		abort();
	*at = len;
	return rc;
}

/* h1_normalize_path on the parsed path (without its query): the result is
 * no longer, starts with '/', has no empty, "." or ".." segment and no escape
 * of an unreserved character, and normalising it again changes nothing. */
static void check_normalize(const struct h1_msg *m)
{
	static char p[65536], q[65536];
	const char *why = NULL;
	size_t n = m->path_len, n2;
	const char *qm = memchr(m->path, '?', n);
	if (m->path[0] != '/')
		return;
	if (qm)
		n = (size_t)(qm - m->path);
	memcpy(p, m->path, n);
	if (h1_normalize_path(p, &n, &why) < 0) {
		if (!why || !*why)
			abort();
		return;
	}
	if (n == 0 || n > m->path_len || p[0] != '/')
		abort();
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '/' && i + 1 < n && p[i + 1] == '/')
			abort();
		if (p[i] == '/' && i + 1 < n && p[i + 1] == '.' &&
		    (i + 2 == n || p[i + 2] == '/' || (p[i + 2] == '.' && (i + 3 == n || p[i + 3] == '/'))))
			abort();
		if (p[i] == '%' && (i + 2 >= n || islower((unsigned char)p[i + 1]) ||
				    islower((unsigned char)p[i + 2])))
			abort();
	}
	memcpy(q, p, n);
	n2 = n;
	if (h1_normalize_path(q, &n2, &why) < 0 || n2 != n || memcmp(p, q, n) != 0)
		abort();
}

static void run(const char *buf, size_t len, const struct h1_limits *lim, uint64_t h)
{
	struct h1_scan sc = { 0 };
	const char *why = NULL;
	size_t cuts[2], at;
	int rc, rc2;

	rc = h1_parse_request(buf, len, &sc, lim, &m1, &why);
	if (rc > 0) {
		check_ok(&m1, buf, len, rc, lim);
		check_normalize(&m1);
	} else if (rc < 0) {
		if (!why || !*why)
			abort();
		if (rc != -400 && rc != -414 && rc != -431 && rc != -501 && rc != -505)
			abort();
	} else if (len >= lim->max_head) {
		abort();  /* a full-size buffer without a head is a 431 */
	}

	/* two and three pieces */
	cuts[0] = len ? (size_t)(h % (len + 1)) : 0;
	cuts[1] = cuts[0] + (len - cuts[0] ? (size_t)((h >> 32) % (len - cuts[0] + 1)) : 0);
	for (size_t n = 1; n <= 2; n++) {
		rc2 = staged(buf, len, cuts, n, lim, &m2, &at);
		if (rc2 != rc)
			abort();
		if (rc > 0)
			same(&m1, &m2);
	}
	/* one byte at a time */
	if (len <= 300) {
		size_t all[300];
		for (size_t i = 0; i < len; i++)
			all[i] = i + 1;
		rc2 = staged(buf, len, all, len, lim, &m2, &at);
		if (rc2 != rc)
			abort();
		if (rc > 0) {
			same(&m1, &m2);
			if (at != (size_t)rc)  /* found with its last byte, not later */
				abort();
		}
	}

	if (rc > 0 && m1.body == H1_BODY_CHUNKED) {
		struct h1_chunked c = { 0 };
		int64_t used = h1_chunked_feed(&c, buf + rc, len - (size_t)rc, &why);
		if (used > (int64_t)(len - (size_t)rc) || (used >= 0 && !c.done && used != (int64_t)(len - (size_t)rc)))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = hash(data, size);

	run((const char *)data, size, &h1_default_limits, h);
	run((const char *)data, size, &small_limits, h * 31 + 7);
	return 0;
}
