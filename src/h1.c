/* HTTP/1.1 heads and chunked bodies (RFC 9110 / RFC 9112).
 *
 * What this parser accepts is what a backend behind fulcrum can be sent, so
 * every rule errs on the side of refusing: a message two implementations
 * could frame differently is the raw material of request smuggling. Where
 * RFC 9112 allows leniency ("MAY accept bare LF", obs-fold, whitespace before
 * the colon) we take the strict branch.
 *
 * Speed comes from three things: a 256-entry class table instead of ctype
 * (which is also locale-dependent), memchr to find line ends, and looking at
 * each field once. No allocation, no copies: the struct h1_msg points into
 * the caller's buffer. */
#include "h1.h"

#include <arpa/inet.h>
#include <string.h>

const struct h1_limits h1_default_limits = {
	.max_request_line = 8192,
	.max_head = 32768,
	.max_fields = 100,
};

/* Character classes, generated from the RFC 9110 / 3986 grammars. */
enum {
	C_TOKEN = 1 << 0,   /* tchar */
	C_VALUE = 1 << 1,   /* field-vchar / SP / HTAB (also reason-phrase) */
	C_TARGET = 1 << 2,  /* request-target: no CTL, SP or '#' */
	C_HOST = 1 << 3,    /* reg-name: unreserved / sub-delims ('%' apart) */
	C_HEX = 1 << 4,
	C_DIGIT = 1 << 5,
	C_OWS = 1 << 6,     /* SP / HTAB */
	C_NAME = 1 << 7,    /* tchar but '_': field names take '_' on a slow path */
};

static const uint8_t cls[256] = {
	/* 00 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 10 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 20 */ 0x42, 0x8f, 0x06, 0x83, 0x8f, 0x87, 0x8f, 0x8f, 0x0e, 0x0e, 0x8f, 0x8f, 0x0e, 0x8f, 0x8f, 0x06,
	/* 30 */ 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0x06, 0x0e, 0x06, 0x0e, 0x06, 0x06,
	/* 40 */ 0x06, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f,
	/* 50 */ 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x06, 0x06, 0x06, 0x87, 0x0f,
	/* 60 */ 0x87, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f,
	/* 70 */ 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x06, 0x87, 0x06, 0x8f, 0x00,
	/* 80 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* 90 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* a0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* b0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* c0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* d0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* e0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* f0 */ 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
};

#define IS(c, k) (cls[(uint8_t)(c)] & (k))

/* At most this many empty lines before a request line are skipped
 * (RFC 9112 2.2 asks for at least one, for clients that end a body with an
 * extra CRLF); more is not a client we want to wait for. */
#define H1_MAX_LEADING_CRLF 4

#define CHUNK_LINE_MAX 4096
#define CHUNK_TRAILERS_MAX 32768

static inline unsigned char lc(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* The value of a hex digit, or -1. */
static int hexval(unsigned char c)
{
	return !IS(c, C_HEX) ? -1 : IS(c, C_DIGIT) ? c - '0' : lc(c) - 'a' + 10;
}

/* s[0..n) equals the lowercase literal `lit`, ignoring ASCII case. */
static bool ieq(const char *s, size_t n, const char *lit, size_t lit_len)
{
	if (n != lit_len)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lc((unsigned char)s[i]) != (unsigned char)lit[i])
			return false;
	return true;
}
#define IEQ(s, n, lit) ieq((s), (n), lit, sizeof(lit) - 1)

static bool ieq2(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (lc((unsigned char)a[i]) != lc((unsigned char)b[i]))
			return false;
	return true;
}

static int fail(const char **why, const char *reason, int status)
{
	if (why)
		*why = reason;
	return status;
}

/* ---- lists ---------------------------------------------------------------- */

/* Next element of a #list (RFC 9110 5.6.1) in v[*pos..n): empty elements and
 * OWS are skipped, as the RFC asks of recipients. Returns false at the end. */
static bool list_next(const char *v, size_t n, size_t *pos, size_t *s, size_t *e)
{
	size_t i = *pos, j;

	while (i < n && (v[i] == ',' || IS(v[i], C_OWS)))
		i++;
	if (i >= n) {
		*pos = i;
		return false;
	}
	*s = i;
	while (i < n && v[i] != ',')
		i++;
	j = i;
	while (j > *s && IS(v[j - 1], C_OWS))
		j--;
	*e = j;
	*pos = i;
	return true;
}

static bool all_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!IS(s[i], C_TOKEN))
			return false;
	return true;
}

/* Content-Length = 1*DIGIT; a list of identical values ("5, 5") is what
 * RFC 9110 8.6 lets a recipient accept. No sign, no spaces inside, no empty
 * elements; above 2^63-1 is refused rather than wrapped. */
static int parse_content_length(const char *v, size_t n, uint64_t *out)
{
	size_t i = 0;
	bool have = false;
	uint64_t first = 0;

	for (;;) {
		uint64_t x = 0;
		size_t start = i;
		while (i < n && IS(v[i], C_DIGIT)) {
			unsigned d = (unsigned)(v[i] - '0');
			if (x > (uint64_t)(INT64_MAX - d) / 10)
				return -1;
			x = x * 10 + d;
			i++;
		}
		if (i == start)
			return -1;
		if (have && x != first)
			return -1;
		first = x;
		have = true;
		while (i < n && IS(v[i], C_OWS))
			i++;
		if (i == n)
			break;
		if (v[i] != ',')
			return -1;
		i++;
		while (i < n && IS(v[i], C_OWS))
			i++;
	}
	*out = first;
	return 0;
}

/* Transfer-Encoding over all its field lines. */
struct te_state {
	bool seen;
	bool syntax;        /* an element that is not a transfer-coding */
	bool unknown;       /* a coding other than chunked */
	bool last_chunked;
	int nchunked;
};

static void te_add(struct te_state *t, const char *v, size_t n)
{
	size_t pos = 0, s, e;

	t->seen = true;
	while (list_next(v, n, &pos, &s, &e)) {
		size_t k = s;
		while (k < e && IS(v[k], C_TOKEN))
			k++;
		if (k == s) {
			t->syntax = true;
			continue;
		}
		if (IEQ(v + s, k - s, "chunked")) {
			/* chunked takes no parameters: "chunked;x=1" is not chunked
			 * to everyone, so it is nothing we forward */
			if (k != e)
				t->syntax = true;
			t->nchunked++;
			t->last_chunked = true;
			continue;
		}
		t->last_chunked = false;
		while (k < e && IS(v[k], C_OWS))
			k++;
		if (k < e && v[k] != ';')
			t->syntax = true;
		else
			t->unknown = true;
	}
}

/* Connection tokens: close / keep-alive / upgrade set flags; the names are
 * used again when marking hop-by-hop fields. */
static int conn_tokens(const char *v, size_t n, uint32_t *flags)
{
	size_t pos = 0, s, e;

	while (list_next(v, n, &pos, &s, &e)) {
		if (!all_token(v + s, e - s))
			return -1;
		if (IEQ(v + s, e - s, "close"))
			*flags |= H1_F_CONN_CLOSE;
		else if (IEQ(v + s, e - s, "keep-alive"))
			*flags |= H1_F_CONN_KEEPALIVE;
		else if (IEQ(v + s, e - s, "upgrade"))
			*flags |= H1_F_CONN_UPGRADE;
	}
	return 0;
}

static bool list_has(const char *v, size_t n, const char *lit, size_t lit_len)
{
	size_t pos = 0, s, e;

	while (list_next(v, n, &pos, &s, &e))
		if (ieq(v + s, e - s, lit, lit_len))
			return true;
	return false;
}

/* ---- authority ------------------------------------------------------------ */

/* uri-host [ ":" port ] as in Host and an absolute-form target. Stricter than
 * RFC 3986 where nothing legitimate is lost: no empty host (RFC 9110 4.2.1
 * forbids it for http), no userinfo, no IPvFuture or zone id, and a port, if
 * the colon is there, of 1-5 digits up to 65535. */
static bool valid_authority(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return false;
	if (s[0] == '[') {
		char tmp[INET6_ADDRSTRLEN];
		struct in6_addr a;
		const char *close = memchr(s, ']', n);
		size_t alen;
		if (!close)
			return false;
		alen = (size_t)(close - s) - 1;
		if (alen == 0 || alen >= sizeof(tmp))
			return false;
		memcpy(tmp, s + 1, alen);
		tmp[alen] = '\0';
		if (inet_pton(AF_INET6, tmp, &a) != 1)
			return false;
		i = (size_t)(close - s) + 1;
	} else {
		while (i < n && s[i] != ':') {
			if (IS(s[i], C_HOST)) {
				i++;
			} else if (s[i] == '%' && i + 2 < n && IS(s[i + 1], C_HEX) &&
				   IS(s[i + 2], C_HEX)) {
				i += 3;
			} else {
				return false;
			}
		}
		if (i == 0)
			return false;
	}
	if (i == n)
		return true;
	if (s[i] != ':')
		return false;
	i++;
	if (n - i < 1 || n - i > 5)
		return false;
	uint32_t port = 0;
	for (; i < n; i++) {
		if (!IS(s[i], C_DIGIT))
			return false;
		port = port * 10 + (uint32_t)(s[i] - '0');
	}
	return port <= 65535;
}

/* ---- head scan ------------------------------------------------------------ */

/* Finds the end of the head (the first CRLFCRLF at or after `skip`),
 * resuming where the last call stopped: every LF before scan->pos was
 * already checked, and the check looks back at the three bytes before each
 * LF, so a CRLFCRLF straddling two calls is still found. Refuses early what
 * can never become a valid head: a bare LF, a first line that cannot end
 * within max_request_line, a head already at max_head without its end.
 * Returns head_len, 0 (need more) or the negative status. */
static int scan_head(const char *buf, size_t len, struct h1_scan *sc, size_t skip,
		     const struct h1_limits *lim, int bad, int e414, int e431,
		     const char **why)
{
	size_t first = len - skip, win = (size_t)lim->max_request_line + 2;
	/* head_len is returned as an int */
	size_t max_head = lim->max_head > INT32_MAX ? INT32_MAX : lim->max_head;
	size_t p = sc->pos, limit;
	const char *lf;

	/* The first line: max_request_line bytes, CR, LF. Its byte max+1 not
	 * being a CR is already too long, whatever comes next (a bare LF too:
	 * the answer must not depend on whether that LF came in this read). */
	lf = memchr(buf + skip, '\n', first < win ? first : win);
	if (lf ? ((size_t)(lf - buf) - skip == win - 1 && lf[-1] != '\r')
	       : (first >= win || (first == win - 1 && buf[len - 1] != '\r')))
		return fail(why, e414 == -414 ? "request line too long" : "status line too long",
			    e414);

	if (p < skip || p > len)
		p = skip;
	limit = len < max_head ? len : max_head;
	while (p < limit) {
		size_t i;
		lf = memchr(buf + p, '\n', limit - p);
		if (!lf) {
			p = limit;
			break;
		}
		i = (size_t)(lf - buf);
		if (i == 0 || buf[i - 1] != '\r')
			return fail(why, "bare LF in the head", bad);
		if (i >= skip + 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
			sc->pos = (uint32_t)(i + 1);
			return (int)(i + 1);
		}
		p = i + 1;
	}
	sc->pos = (uint32_t)p;
	if (len >= max_head)
		return fail(why, "head too large", e431);
	return H1_NEED_MORE;
}

/* "HTTP/" DIGIT "." DIGIT: 10 or 11, -505 for another well-formed version,
 * -1 when malformed. */
static int parse_version(const char *v)
{
	if (memcmp(v, "HTTP/", 5) != 0 || !IS(v[5], C_DIGIT) || v[6] != '.' ||
	    !IS(v[7], C_DIGIT))
		return -1;
	if (v[5] == '1' && (v[7] == '0' || v[7] == '1'))
		return 10 + (v[7] - '0');
	return -505;
}

/* ---- fields --------------------------------------------------------------- */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Any byte of x below n (n <= 128), or equal to c. */
static inline bool word_has_less(uint64_t x, uint64_t n)
{
	return ((x - ONES * n) & ~x & HIGHS) != 0;
}
static inline bool word_has(uint64_t x, uint64_t c)
{
	uint64_t y = x ^ (ONES * c);
	return ((y - ONES) & ~y & HIGHS) != 0;
}

/* End of the run of field-value bytes at buf[p..): 8 bytes at a time while
 * no byte is a CTL or DEL (most values have neither; HTAB goes the slow
 * way), then the class table. `end` bounds the 8-byte reads; a CR always
 * comes before it. */
static inline size_t value_end(const char *buf, size_t p, size_t end)
{
	for (;;) {
		while (p + 8 <= end) {
			uint64_t x;
			memcpy(&x, buf + p, 8);
			if (word_has_less(x, 0x20) || word_has(x, 0x7f))
				break;
			p += 8;
		}
		for (size_t stop = p + 8; p < stop; p++)
			if (!IS(buf[p], C_VALUE))
				return p;
	}
}

/* The field lines in buf[p..end-2) (end = head_len, the head ends with
 * CRLFCRLF, so every loop below stops at a CR inside the head). */
static int parse_fields(const char *buf, size_t p, size_t end, struct h1_msg *m,
			uint32_t max_fields, int bad, int toomany, const char **why)
{
	uint32_t n = 0;

	if (max_fields > H1_MAX_FIELDS_HARD)
		max_fields = H1_MAX_FIELDS_HARD;
	while (p < end - 2) {
		size_t ns = p, ne, vs, ve;

		if (IS(buf[p], C_OWS))
			return fail(why, "whitespace at the start of a field line (obs-fold)", bad);
		for (;;) {
			while (IS(buf[p], C_NAME))
				p++;
			if (buf[p] != '_')
				break;
			m->flags |= H1_F_UNDERSCORE;
			p++;
		}
		if (buf[p] != ':') {
			if (IS(buf[p], C_OWS))
				return fail(why, "whitespace before the colon", bad);
			if (buf[p] == '\r')
				return fail(why, "field line without a colon", bad);
			return fail(why, "invalid character in a field name", bad);
		}
		if (p == ns)
			return fail(why, "empty field name", bad);
		ne = p++;
		while (IS(buf[p], C_OWS))
			p++;
		vs = p;
		p = value_end(buf, p, end);
		if (buf[p] != '\r' || buf[p + 1] != '\n')
			return fail(why, buf[p] == '\r' ? "bare CR in the head"
					 : "invalid character in a field value", bad);
		ve = p;
		while (ve > vs && IS(buf[ve - 1], C_OWS))
			ve--;
		if (n >= max_fields)
			return fail(why, "too many header fields", toomany);
		m->fields[n].name = buf + ns;
		m->fields[n].name_len = (uint32_t)(ne - ns);
		m->fields[n].value = buf + vs;
		m->fields[n].value_len = (uint32_t)(ve - vs);
		m->hop[n] = 0;
		n++;
		p += 2;
	}
	m->nfields = n;
	return 0;
}

enum fkind {
	FK_OTHER, FK_HOST, FK_CL, FK_TE, FK_CONNECTION, FK_HOP, FK_UPGRADE,
	FK_EXPECT, FK_WS_KEY, FK_WS_VERSION,
};

/* Switch on the length first: most fields are none of these and leave after
 * one comparison of their first byte. */
static enum fkind field_kind(const char *n, uint32_t len)
{
	switch (len) {
	case 2:
		return IEQ(n, len, "te") ? FK_HOP : FK_OTHER;
	case 4:
		return IEQ(n, len, "host") ? FK_HOST : FK_OTHER;
	case 6:
		return IEQ(n, len, "expect") ? FK_EXPECT : FK_OTHER;
	case 7:
		return IEQ(n, len, "upgrade") ? FK_UPGRADE : FK_OTHER;
	case 10:
		if (IEQ(n, len, "connection"))
			return FK_CONNECTION;
		return IEQ(n, len, "keep-alive") ? FK_HOP : FK_OTHER;
	case 14:
		return IEQ(n, len, "content-length") ? FK_CL : FK_OTHER;
	case 16:
		return IEQ(n, len, "proxy-connection") ? FK_HOP : FK_OTHER;
	case 17:
		if (IEQ(n, len, "transfer-encoding"))
			return FK_TE;
		return IEQ(n, len, "sec-websocket-key") ? FK_WS_KEY : FK_OTHER;
	case 21:
		return IEQ(n, len, "sec-websocket-version") ? FK_WS_VERSION : FK_OTHER;
	default:
		return FK_OTHER;
	}
}

/* A field a client must not remove by naming it in Connection: the framing
 * fields (the proxy owns framing) and the ones the proxy adds itself. */
static bool connection_exempt(const char *n, size_t len)
{
	return IEQ(n, len, "content-length") || IEQ(n, len, "transfer-encoding") ||
	       IEQ(n, len, "host") || IEQ(n, len, "forwarded") ||
	       (len >= 12 && IEQ(n, 12, "x-forwarded-"));
}

/* Marks the fields that the Connection fields list. `keep_upgrade` spares
 * Upgrade on a WebSocket handshake, which must reach the other side. */
static void mark_connection_listed(struct h1_msg *m, bool keep_upgrade)
{
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct h1_field *c = &m->fields[i];
		size_t pos = 0, s, e;
		if (!IEQ(c->name, c->name_len, "connection"))
			continue;
		while (list_next(c->value, c->value_len, &pos, &s, &e)) {
			const char *t = c->value + s;
			size_t tl = e - s;
			if (connection_exempt(t, tl) || (keep_upgrade && IEQ(t, tl, "upgrade")))
				continue;
			for (uint32_t j = 0; j < m->nfields; j++)
				if (ieq2(m->fields[j].name, m->fields[j].name_len, t, tl))
					m->hop[j] = 1;
		}
	}
}

struct facts {
	struct te_state te;
	uint64_t cl;
	bool cl_seen;
	bool ws_listed;     /* Upgrade lists websocket */
	bool has_conn;
	int nhost;
	int host_i;
	bool expect_continue;
};

/* One pass over the fields for what framing and forwarding depend on. */
static int collect(struct h1_msg *m, struct facts *f, int bad, const char **why)
{
	memset(f, 0, sizeof(*f));
	f->host_i = -1;
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct h1_field *fl = &m->fields[i];
		uint64_t v;
		switch (field_kind(fl->name, fl->name_len)) {
		case FK_HOST:
			f->nhost++;
			f->host_i = (int)i;
			break;
		case FK_CL:
			if (parse_content_length(fl->value, fl->value_len, &v) < 0)
				return fail(why, "invalid Content-Length", bad);
			if (f->cl_seen && v != f->cl)
				return fail(why, "conflicting Content-Length values", bad);
			f->cl = v;
			f->cl_seen = true;
			break;
		case FK_TE:
			te_add(&f->te, fl->value, fl->value_len);
			break;
		case FK_CONNECTION:
			m->hop[i] = 1;
			f->has_conn = true;
			if (conn_tokens(fl->value, fl->value_len, &m->flags) < 0)
				return fail(why, "invalid Connection list", bad);
			break;
		case FK_HOP:
			m->hop[i] = 1;
			break;
		case FK_UPGRADE:
			m->hop[i] = 1;
			if (list_has(fl->value, fl->value_len, "websocket", 9))
				f->ws_listed = true;
			break;
		case FK_EXPECT:
			if (IEQ(fl->value, fl->value_len, "100-continue"))
				f->expect_continue = true;
			break;
		case FK_WS_KEY:
			m->flags |= H1_F_WS_KEY;
			break;
		case FK_WS_VERSION:
			m->flags |= H1_F_WS_VERSION;
			break;
		case FK_OTHER:
			break;
		}
	}
	return 0;
}

/* Upgrade and hop-by-hop marks, shared by both directions. */
static void finish_hop(struct h1_msg *m, const struct facts *f, bool upgrade_ok, bool keep_upgrade)
{
	if ((m->flags & H1_F_CONN_UPGRADE) && f->ws_listed && upgrade_ok)
		m->flags |= H1_F_UPGRADE_WS;
	keep_upgrade = keep_upgrade && (m->flags & H1_F_UPGRADE_WS);
	if (keep_upgrade)
		for (uint32_t i = 0; i < m->nfields; i++)
			if (IEQ(m->fields[i].name, m->fields[i].name_len, "upgrade"))
				m->hop[i] = 0;
	if (f->has_conn)
		mark_connection_listed(m, keep_upgrade);
	if (m->version == 10 && !(m->flags & H1_F_CONN_KEEPALIVE))
		m->flags |= H1_F_CONN_CLOSE;
}

/* ---- requests ------------------------------------------------------------- */

/* The request-target forms of RFC 9112 3.2. */
static int parse_target(struct h1_msg *m, const char **why)
{
	const char *t = m->target;
	size_t n = m->target_len, skip;

	if (t[0] == '/') {
		m->path = t;
		m->path_len = (uint32_t)n;
		return 0;
	}
	if (n == 1 && t[0] == '*') {
		if (!(m->method_len == 7 && memcmp(m->method, "OPTIONS", 7) == 0))
			return fail(why, "asterisk-form target outside OPTIONS", -400);
		m->path = t;
		m->path_len = 1;
		return 0;
	}
	if (n >= 7 && IEQ(t, 7, "http://"))
		skip = 7;
	else if (n >= 8 && IEQ(t, 8, "https://"))
		skip = 8;
	else
		return fail(why, "invalid request-target form", -400);

	const char *a = t + skip, *end = t + n, *q = a;
	while (q < end && *q != '/' && *q != '?')
		q++;
	if (!valid_authority(a, (size_t)(q - a)))
		return fail(why, "invalid authority in the request-target", -400);
	m->authority = a;
	m->authority_len = (uint32_t)(q - a);
	m->flags |= H1_F_ABSOLUTE_FORM;
	if (q == end) {
		m->path = "/";
		m->path_len = 1;
	} else if (*q == '?') {
		/* "http://h?q" would need a "/" inserted to forward; nothing sends it */
		return fail(why, "absolute-form target with a query but no path", -400);
	} else {
		m->path = q;
		m->path_len = (uint32_t)(end - q);
	}
	return 0;
}

static int parse_request_line(const char *buf, size_t skip, size_t line_end,
			      struct h1_msg *m, const char **why)
{
	size_t p = skip, s;
	int v;

	while (IS(buf[p], C_TOKEN))
		p++;
	if (p == skip)
		return fail(why, "invalid method", -400);
	if (buf[p] != ' ')
		return fail(why, "invalid character in the method", -400);
	m->method = buf + skip;
	m->method_len = (uint32_t)(p - skip);
	s = ++p;
	while (IS(buf[p], C_TARGET))
		p++;
	if (p == s)
		return fail(why, "empty request-target (or two spaces)", -400);
	if (buf[p] != ' ')
		return fail(why, buf[p] == '#' ? "fragment in the request-target"
				 : "invalid character in the request-target", -400);
	m->target = buf + s;
	m->target_len = (uint32_t)(p - s);
	p++;
	if (line_end - p != 8 || (v = parse_version(buf + p)) == -1)
		return fail(why, "malformed HTTP version", -400);
	if (v < 0)
		return fail(why, "HTTP version not supported", -505);
	m->version = v;
	if (m->method_len == 7 && memcmp(m->method, "CONNECT", 7) == 0)
		return fail(why, "CONNECT is not supported", -501);
	return parse_target(m, why);
}

int h1_parse_request(const char *buf, size_t len, struct h1_scan *scan,
		     const struct h1_limits *lim, struct h1_msg *m, const char **why)
{
	struct h1_scan local = { 0 };
	struct facts f;
	size_t skip = 0, line_end;
	int head, rc;

	if (!lim)
		lim = &h1_default_limits;
	if (!scan)
		scan = &local;
	while (skip + 1 < len && buf[skip] == '\r' && buf[skip + 1] == '\n') {
		skip += 2;
		if (skip > 2 * H1_MAX_LEADING_CRLF)
			return fail(why, "too many empty lines before the request line", -400);
	}
	if (skip == len || (skip + 1 == len && buf[skip] == '\r'))
		return H1_NEED_MORE;
	if (buf[skip] == '\r' || buf[skip] == '\n')
		return fail(why, buf[skip] == '\r' ? "bare CR in the head" : "bare LF in the head",
			    -400);
	head = scan_head(buf, len, scan, skip, lim, -400, -414, -431, why);
	if (head <= 0)
		return head;

	memset(m, 0, offsetof(struct h1_msg, fields));
	m->head_len = (uint32_t)head;
	/* the scan saw this LF, preceded by CR, within the request-line limit */
	line_end = (size_t)((const char *)memchr(buf + skip, '\n', (size_t)head - skip) - buf) - 1;
	rc = parse_request_line(buf, skip, line_end, m, why);
	if (rc < 0)
		return rc;
	rc = parse_fields(buf, line_end + 2, (size_t)head, m, lim->max_fields, -400, -431, why);
	if (rc < 0)
		return rc;
	rc = collect(m, &f, -400, why);
	if (rc < 0)
		return rc;

	if (f.nhost > 1)
		return fail(why, "more than one Host field", -400);
	if (f.nhost == 0 && m->version == 11)
		return fail(why, "HTTP/1.1 request without Host", -400);
	if (f.nhost == 1) {
		const struct h1_field *h = &m->fields[f.host_i];
		if (!valid_authority(h->value, h->value_len))
			return fail(why, "invalid Host", -400);
		m->flags |= H1_F_HAS_HOST;
		if (!(m->flags & H1_F_ABSOLUTE_FORM)) {
			m->authority = h->value;
			m->authority_len = h->value_len;
		}
	}
	/* RFC 6455 handshakes are HTTP/1.1 GETs; RFC 9110 7.8 has HTTP/1.0
	 * Upgrade ignored. Anything else that asks to upgrade (h2c above all,
	 * which would tunnel past our routing) gets its Upgrade removed. */
	finish_hop(m, &f,
		   m->version == 11 && m->method_len == 3 && memcmp(m->method, "GET", 3) == 0,
		   true);
	/* RFC 9110 10.1.1: an HTTP/1.0 100-continue is ignored */
	if (f.expect_continue && m->version == 11)
		m->flags |= H1_F_EXPECT_CONTINUE;

	if (f.te.seen) {
		if (m->version == 10)
			return fail(why, "Transfer-Encoding in an HTTP/1.0 request", -400);
		if (f.cl_seen)
			return fail(why, "both Transfer-Encoding and Content-Length", -400);
		if (f.te.syntax)
			return fail(why, "invalid Transfer-Encoding", -400);
		if (f.te.nchunked > 1)
			return fail(why, "chunked applied more than once", -400);
		if (f.te.nchunked == 1 && !f.te.last_chunked)
			return fail(why, "chunked is not the last transfer coding", -400);
		if (f.te.unknown)
			return fail(why, "transfer coding not implemented", -501);
		if (f.te.nchunked == 0)
			return fail(why, "empty Transfer-Encoding", -400);
		m->body = H1_BODY_CHUNKED;
	} else if (f.cl_seen && f.cl > 0) {
		m->body = H1_BODY_LENGTH;
		m->content_length = f.cl;
	} else {
		m->body = H1_BODY_NONE;
	}
	return head;
}

/* ---- responses ------------------------------------------------------------ */

int h1_parse_response(const char *buf, size_t len, struct h1_scan *scan,
		      const struct h1_limits *lim, const char *req_method,
		      uint32_t req_method_len, struct h1_msg *m, const char **why)
{
	struct h1_scan local = { 0 };
	struct facts f;
	size_t line_end, p;
	int head, rc, v;

	if (!lim)
		lim = &h1_default_limits;
	if (!scan)
		scan = &local;
	if (len == 0)
		return H1_NEED_MORE;
	head = scan_head(buf, len, scan, 0, lim, -502, -502, -502, why);
	if (head <= 0)
		return head;

	memset(m, 0, offsetof(struct h1_msg, fields));
	m->head_len = (uint32_t)head;
	line_end = (size_t)((const char *)memchr(buf, '\n', (size_t)head) - buf) - 1;
	/* HTTP/x.y SP 3DIGIT [SP reason]: the space before an empty reason is
	 * often missing and costs nothing to accept */
	if (line_end < 12 || (v = parse_version(buf)) == -1 || buf[8] != ' ' ||
	    !IS(buf[9], C_DIGIT) || !IS(buf[10], C_DIGIT) || !IS(buf[11], C_DIGIT) ||
	    (line_end > 12 && buf[12] != ' '))
		return fail(why, "malformed status line", -502);
	if (v < 0)
		return fail(why, "unsupported HTTP version in the response", -502);
	m->version = v;
	m->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	if (m->status < 100 || m->status > 599)
		return fail(why, "status code out of range", -502);
	p = line_end > 12 ? 13 : 12;
	m->reason = buf + p;
	while (IS(buf[p], C_VALUE))
		p++;
	if (p != line_end)
		return fail(why, "invalid character in the reason phrase", -502);
	m->reason_len = (uint32_t)(p - (size_t)(m->reason - buf));

	rc = parse_fields(buf, line_end + 2, (size_t)head, m, lim->max_fields, -502, -502, why);
	if (rc < 0)
		return rc;
	rc = collect(m, &f, -502, why);
	if (rc < 0)
		return rc;
	/* Upgrade stays only on the 101 that completes a WebSocket handshake */
	finish_hop(m, &f, true, m->status == 101);

	if ((req_method && req_method_len == 4 && memcmp(req_method, "HEAD", 4) == 0) ||
	    m->status < 200 || m->status == 204 || m->status == 304) {
		/* RFC 9112 6.3 rules 1-2: whatever CL or TE say */
		m->body = H1_BODY_NONE;
	} else if (f.te.seen) {
		/* Stricter than RFC 9112 6.3 (which reads a TE response without
		 * final chunked until close, and lets TE override CL): each of
		 * these is a backend we cannot frame for the client with
		 * certainty, so it is a 502, not a guess. */
		if (m->version == 10)
			return fail(why, "Transfer-Encoding in an HTTP/1.0 response", -502);
		if (f.cl_seen)
			return fail(why, "both Transfer-Encoding and Content-Length in the response",
				    -502);
		if (f.te.syntax || f.te.nchunked != 1 || !f.te.last_chunked)
			return fail(why, "response Transfer-Encoding is not chunked-last", -502);
		m->body = H1_BODY_CHUNKED;
	} else if (f.cl_seen) {
		m->content_length = f.cl;
		m->body = f.cl ? H1_BODY_LENGTH : H1_BODY_NONE;
	} else {
		m->body = H1_BODY_CLOSE;
	}
	return head;
}

/* ---- chunked -------------------------------------------------------------- */

enum {
	CS_SIZE0 = 0,       /* start of a chunk-size line: a HEXDIG must come */
	CS_SIZE,            /* in the size */
	CS_EXT_WS,          /* BWS after the size or an extension: ';' must come */
	CS_EXT_NAME0,       /* after ';': BWS, then the name */
	CS_EXT_NAME,
	CS_EXT_NAME_WS,     /* BWS after the name: '=' or ';' */
	CS_EXT_VAL0,        /* after '=': BWS, then a token or a quoted string */
	CS_EXT_VAL,         /* in a token value */
	CS_EXT_QS,          /* in a quoted string */
	CS_EXT_QP,          /* after a backslash in it */
	CS_EXT_AFTER,       /* after the closing quote */
	CS_SIZE_LF,         /* after the CR of the size line */
	CS_DATA,
	CS_DATA_CR,
	CS_DATA_LF,
	CS_TRAILER0,        /* start of a trailer line, or the final CRLF */
	CS_TRAILER_NAME,
	CS_TRAILER_VAL,
	CS_TRAILER_LF,
	CS_END_LF,
	CS_DONE,
	CS_ERROR,
};

static int64_t chunk_fail(struct h1_chunked *c, const char **why, const char *reason)
{
	c->state = CS_ERROR;
	if (why)
		*why = reason;
	return -400;
}

/* The chunked state machine. With `framing_only` it stops where chunk data
 * begins, so that a decoding caller can tell framing from data. */
static int64_t chunked_run(struct h1_chunked *c, const char *buf, size_t len, const char **why,
			   bool framing_only)
{
	size_t i = 0;

	if (c->state == CS_ERROR)
		return chunk_fail(c, why, "chunked framing already failed");
	while (i < len) {
		unsigned char ch;

		if (c->state == CS_DATA) {
			if (framing_only)
				break;
			size_t take = len - i;
			if (take > c->remaining)
				take = (size_t)c->remaining;
			i += take;
			c->remaining -= take;
			c->data_bytes += take;
			if (c->remaining == 0)
				c->state = CS_DATA_CR;
			continue;
		}
		if (c->state == CS_DONE)
			break;
		ch = (unsigned char)buf[i++];
		if (c->state <= CS_SIZE_LF) {
			if (++c->line_len > CHUNK_LINE_MAX + 2)
				return chunk_fail(c, why, "chunk size line too long");
		} else if (c->state >= CS_TRAILER0) {
			if (++c->trailer_bytes > CHUNK_TRAILERS_MAX)
				return chunk_fail(c, why, "chunked trailers too large");
		}
		switch (c->state) {
		case CS_SIZE0:
			if (!IS(ch, C_HEX))
				return chunk_fail(c, why, "chunk size is not a hex number");
			c->remaining = 0;
			c->state = CS_SIZE;
			/* fall through */
		case CS_SIZE:
			if (IS(ch, C_HEX)) {
				unsigned d = (unsigned)hexval(ch);
				if (c->remaining > (uint64_t)(INT64_MAX - d) / 16)
					return chunk_fail(c, why, "chunk size overflows");
				c->remaining = c->remaining * 16 + d;
				break;
			}
			goto after_value;
		case CS_EXT_WS:
			if (IS(ch, C_OWS))
				break;
			if (ch == ';') {
				c->state = CS_EXT_NAME0;
				break;
			}
			return chunk_fail(c, why, "invalid chunk size line");
		case CS_EXT_NAME0:
			if (IS(ch, C_OWS))
				break;
			if (IS(ch, C_TOKEN)) {
				c->state = CS_EXT_NAME;
				break;
			}
			return chunk_fail(c, why, "invalid chunk extension name");
		case CS_EXT_NAME:
			if (IS(ch, C_TOKEN))
				break;
			if (ch == '=') {
				c->state = CS_EXT_VAL0;
				break;
			}
			if (IS(ch, C_OWS)) {
				c->state = CS_EXT_NAME_WS;
				break;
			}
			goto after_value;
		case CS_EXT_NAME_WS:
			if (IS(ch, C_OWS))
				break;
			if (ch == '=') {
				c->state = CS_EXT_VAL0;
				break;
			}
			if (ch == ';') {
				c->state = CS_EXT_NAME0;
				break;
			}
			return chunk_fail(c, why, "invalid chunk extension");
		case CS_EXT_VAL0:
			if (IS(ch, C_OWS))
				break;
			if (ch == '"') {
				c->state = CS_EXT_QS;
				break;
			}
			if (IS(ch, C_TOKEN)) {
				c->state = CS_EXT_VAL;
				break;
			}
			return chunk_fail(c, why, "invalid chunk extension value");
		case CS_EXT_VAL:
			if (IS(ch, C_TOKEN))
				break;
			goto after_value;
		case CS_EXT_QS:
			/* qdtext: HTAB / SP / VCHAR except '"' and '\' / obs-text */
			if (ch == '"')
				c->state = CS_EXT_AFTER;
			else if (ch == '\\')
				c->state = CS_EXT_QP;
			else if (!IS(ch, C_VALUE))
				return chunk_fail(c, why, "invalid character in a chunk extension");
			break;
		case CS_EXT_QP:
			if (!IS(ch, C_VALUE))
				return chunk_fail(c, why, "invalid quoted-pair in a chunk extension");
			c->state = CS_EXT_QS;
			break;
		case CS_EXT_AFTER:
		after_value:
			/* after a size, name or value: BWS (then ';'), ';' or CR */
			if (IS(ch, C_OWS))
				c->state = CS_EXT_WS;
			else if (ch == ';')
				c->state = CS_EXT_NAME0;
			else if (ch == '\r')
				c->state = CS_SIZE_LF;
			else if (ch == '\n')
				return chunk_fail(c, why, "bare LF in chunked framing");
			else
				return chunk_fail(c, why, "invalid character in a chunk size line");
			break;
		case CS_SIZE_LF:
			if (ch != '\n')
				return chunk_fail(c, why, "bare CR in chunked framing");
			if (c->remaining) {
				c->state = CS_DATA;
			} else {
				c->state = CS_TRAILER0;
				c->trailer_bytes = 0;
			}
			break;
		case CS_DATA_CR:
			if (ch != '\r')
				return chunk_fail(c, why, ch == '\n' ? "bare LF after chunk data"
						       : "chunk data longer than its size");
			c->state = CS_DATA_LF;
			break;
		case CS_DATA_LF:
			if (ch != '\n')
				return chunk_fail(c, why, "bare CR after chunk data");
			c->state = CS_SIZE0;
			c->line_len = 0;
			break;
		case CS_TRAILER0:
			if (ch == '\r') {
				c->state = CS_END_LF;
			} else if (IS(ch, C_TOKEN)) {
				c->state = CS_TRAILER_NAME;
			} else {
				return chunk_fail(c, why, IS(ch, C_OWS)
						  ? "whitespace at the start of a trailer line"
						  : "invalid trailer field");
			}
			break;
		case CS_TRAILER_NAME:
			if (ch == ':')
				c->state = CS_TRAILER_VAL;
			else if (!IS(ch, C_TOKEN))
				return chunk_fail(c, why, "invalid trailer field name");
			break;
		case CS_TRAILER_VAL:
			if (ch == '\r')
				c->state = CS_TRAILER_LF;
			else if (!IS(ch, C_VALUE))
				return chunk_fail(c, why, "invalid character in a trailer value");
			break;
		case CS_TRAILER_LF:
			if (ch != '\n')
				return chunk_fail(c, why, "bare CR in trailers");
			c->state = CS_TRAILER0;
			break;
		case CS_END_LF:
			if (ch != '\n')
				return chunk_fail(c, why, "bare CR at the end of the chunked body");
			c->state = CS_DONE;
			c->done = true;
			return (int64_t)i;
		default:
			return chunk_fail(c, why, "chunked parser in an impossible state");
		}
	}
	return (int64_t)i;
}

int64_t h1_chunked_feed(struct h1_chunked *c, const char *buf, size_t len, const char **why)
{
	return chunked_run(c, buf, len, why, false);
}

int64_t h1_chunked_decode(struct h1_chunked *c, const char *buf, size_t len, size_t *data,
			  const char **why)
{
	*data = 0;
	if (c->state == CS_DATA) {
		size_t take = len < c->remaining ? len : (size_t)c->remaining;
		*data = take;
		return chunked_run(c, buf, take, why, false);
	}
	return chunked_run(c, buf, len, why, true);
}

/* ---- lookups -------------------------------------------------------------- */

int h1_find_field(const struct h1_msg *m, const char *name, size_t name_len, int start)
{
	if (start < 0)
		start = 0;
	for (uint32_t i = (uint32_t)start; i < m->nfields; i++)
		if (ieq2(m->fields[i].name, m->fields[i].name_len, name, name_len))
			return (int)i;
	return -1;
}

static bool all_of(const char *s, uint8_t k)
{
	for (; *s; s++)
		if (!IS(*s, k))
			return false;
	return true;
}

bool h1_is_token(const char *s)
{
	return *s && all_of(s, C_TOKEN);
}

bool h1_is_field_value(const char *s)
{
	return all_of(s, C_VALUE);
}

bool h1_is_target(const char *s)
{
	return all_of(s, C_TARGET);
}

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int h1_normalize_path(char *p, size_t *len, const char **why)
{
	size_t n = *len, i, o;

	/* Most paths need nothing: no escape, no "//", no "/." */
	for (i = 0; i < n; i++)
		if (p[i] == '%' || (p[i] == '/' && i + 1 < n && (p[i + 1] == '/' || p[i + 1] == '.')))
			break;
	if (i == n)
		return 0;

	/* Escapes first, so that "%2E%2E" is a ".." segment below. Every step
	 * writes at or before where it reads. */
	for (i = o = 0; i < n;) {
		if (p[i] != '%') {
			p[o++] = p[i++];
			continue;
		}
		int hi = i + 2 < n ? hexval((unsigned char)p[i + 1]) : -1;
		int lo = i + 2 < n ? hexval((unsigned char)p[i + 2]) : -1;
		if (hi < 0 || lo < 0)
			return fail(why, "malformed %-escape in the path", -400);
		unsigned char c = (unsigned char)(hi * 16 + lo);
		if (unreserved(c)) {
			p[o++] = (char)c;
		} else {
			p[o++] = '%';
			p[o++] = "0123456789ABCDEF"[hi];
			p[o++] = "0123456789ABCDEF"[lo];
		}
		i += 3;
	}
	n = o;

	/* Segments: the path starts with '/', so each turn starts at one. */
	for (i = o = 0; i < n;) {
		size_t j;
		while (i < n && p[i] == '/')
			i++;
		for (j = i; j < n && p[j] != '/'; j++)
			;
		if (j == i) {                   /* the path ends with '/' */
			p[o++] = '/';
			break;
		}
		if (j - i == 1 && p[i] == '.') {
			if (j == n)
				p[o++] = '/';
		} else if (j - i == 2 && p[i] == '.' && p[i + 1] == '.') {
			if (o == 0)
				return fail(why, "the path climbs above the root", -400);
			while (p[o - 1] != '/')
				o--;
			o--;                    /* the segment's own '/' */
			if (j == n)
				p[o++] = '/';
		} else {
			p[o++] = '/';
			memmove(p + o, p + i, j - i);
			o += j - i;
		}
		i = j;
	}
	if (o == 0)
		p[o++] = '/';
	*len = o;
	return 0;
}

bool h1_has_escaped_slash(const char *p, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++)
		if (p[i] == '%' && ((p[i + 1] == '2' && lc((unsigned char)p[i + 2]) == 'f') ||
				    (p[i + 1] == '5' && lc((unsigned char)p[i + 2]) == 'c')))
			return true;
	return false;
}

const char *h1_status_text(int status)
{
	/* RFC 9110 section 15, plus 103 (RFC 8297) and 429 (RFC 6585). */
	static const struct { int code; const char *text; } texts[] = {
		{ 100, "Continue" }, { 101, "Switching Protocols" }, { 103, "Early Hints" },
		{ 200, "OK" }, { 201, "Created" }, { 202, "Accepted" },
		{ 203, "Non-Authoritative Information" }, { 204, "No Content" }, { 205, "Reset Content" },
		{ 206, "Partial Content" }, { 300, "Multiple Choices" }, { 301, "Moved Permanently" },
		{ 302, "Found" }, { 303, "See Other" }, { 304, "Not Modified" },
		{ 307, "Temporary Redirect" }, { 308, "Permanent Redirect" }, { 400, "Bad Request" },
		{ 401, "Unauthorized" }, { 402, "Payment Required" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" }, { 406, "Not Acceptable" },
		{ 407, "Proxy Authentication Required" }, { 408, "Request Timeout" }, { 409, "Conflict" },
		{ 410, "Gone" }, { 411, "Length Required" }, { 412, "Precondition Failed" },
		{ 413, "Content Too Large" }, { 414, "URI Too Long" }, { 415, "Unsupported Media Type" },
		{ 416, "Range Not Satisfiable" }, { 417, "Expectation Failed" },
		{ 421, "Misdirected Request" }, { 422, "Unprocessable Content" },
		{ 426, "Upgrade Required" }, { 428, "Precondition Required" },
		{ 429, "Too Many Requests" }, { 431, "Request Header Fields Too Large" },
		{ 451, "Unavailable For Legal Reasons" }, { 500, "Internal Server Error" },
		{ 501, "Not Implemented" }, { 502, "Bad Gateway" }, { 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" }, { 505, "HTTP Version Not Supported" },
	};
	for (size_t i = 0; i < ARRAY_LEN(texts); i++)
		if (texts[i].code == status)
			return texts[i].text;
	return "Unknown";
}
