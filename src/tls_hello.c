/* ClientHello parser for SNI routing (RFC 8446 4.1.2, RFC 5246 7.4.1.2,
 * RFC 6066 section 3, RFC 7301).
 *
 * fulcrum picks a backend from the name this parser returns and forwards
 * the bytes unchanged, so a hello it reads one way and the backend another
 * would let a client reach a backend its name does not route to. Hence the
 * strict branch everywhere: every length must fit its container exactly, a
 * server_name holds exactly one host_name (as OpenSSL requires), repeated
 * extensions are refused (RFC 8446 4.2), and the hello must end where its
 * last record ends (nothing legitimately follows a ClientHello in the same
 * record; a record's length is then also the hello's).
 *
 * Reading walks records in place: struct rd keeps where the next message
 * byte is in the input and where the current record ends; when a read
 * reaches a record's end it checks and steps over the next record header.
 * No byte of the message is copied except the name and the first ALPN name.
 *
 * A call costs O(len). After FL_AGAIN it names the input length worth a
 * new call (wait_len: the end of the record being read, or the next byte
 * of a record header), so a caller that waits for it walks each record
 * once: a client that trickles its hello byte by byte costs O(n), not
 * O(n^2). Record headers are still judged byte by byte, so garbage is
 * refused at its first wrong byte. */
#include "tls_hello.h"

#include <string.h>

#define REC_HANDSHAKE 22
#define REC_HEADER 5
#define REC_PAYLOAD_MAX 16384       /* RFC 8446 5.1: 2^14 */
#define HS_CLIENT_HELLO 1
#define HS_HEADER 4

#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
#define EXT_SUPPORTED_VERSIONS 43

#define SESSION_ID_MAX 32

#define TRY(x)                          \
	do {                            \
		int rc_ = (x);          \
		if (rc_ < 0)            \
			return rc_;     \
	} while (0)

struct rd {
	const uint8_t *p;
	size_t len;         /* bytes given */
	size_t pos;         /* input offset of the next message byte */
	size_t rec_end;     /* input offset one past the current record's payload */
	size_t mlen;        /* message length with its header; 0 until known */
	size_t moff;        /* message bytes read so far */
};

/* Check and step over the record header at r->pos. The first record
 * decides whether this is TLS at all (-EPROTO, so the caller can answer a
 * plain-HTTP client in plain text); a bad header after it is a broken TLS
 * client (-EBADMSG). Each byte is judged as soon as it is there. */
static int next_record(struct rd *r)
{
	int bad = r->pos == 0 ? -EPROTO : -EBADMSG;
	size_t have = r->len - r->pos;
	size_t n;

	if (have < 1)
		return FL_AGAIN;
	/* RFC 8446 5.1: handshake messages are never interleaved with other
	 * record types. */
	if (r->p[r->pos] != REC_HANDSHAKE)
		return bad;
	if (have < 2)
		return FL_AGAIN;
	if (r->p[r->pos + 1] != 3)
		return bad;
	if (have < 3)
		return FL_AGAIN;
	if (r->p[r->pos + 2] > 4)
		return bad;
	if (have < REC_HEADER)
		return FL_AGAIN;
	n = (size_t)r->p[r->pos + 3] << 8 | r->p[r->pos + 4];
	/* RFC 8446 5.1: no zero-length handshake fragments, none over 2^14. */
	if (n == 0 || n > REC_PAYLOAD_MAX)
		return -EBADMSG;
	if (r->mlen && n > r->mlen - r->moff)
		return -EBADMSG;
	r->pos += REC_HEADER;
	r->rec_end = r->pos + n;
	/* Every record header counts against the caller's buffer: this is the
	 * least the hello can span from here. */
	if (r->mlen && r->pos + (r->mlen - r->moff) > TLS_HELLO_READ_MAX)
		return -EMSGSIZE;
	return 0;
}

/* Make sure the next message byte is in the current record and given. */
static inline int ready(struct rd *r)
{
	if (r->pos == r->rec_end)
		TRY(next_record(r));
	return r->pos < r->len ? 0 : FL_AGAIN;
}

static int get8(struct rd *r, uint8_t *v)
{
	TRY(ready(r));
	*v = r->p[r->pos++];
	r->moff++;
	return 0;
}

static int get16(struct rd *r, uint16_t *v)
{
	uint8_t a, b;

	TRY(get8(r, &a));
	TRY(get8(r, &b));
	*v = (uint16_t)(a << 8 | b);
	return 0;
}

static int skip(struct rd *r, size_t n)
{
	while (n) {
		size_t k;

		TRY(ready(r));
		k = r->rec_end - r->pos;
		if (k > r->len - r->pos)
			k = r->len - r->pos;
		if (k > n)
			k = n;
		r->pos += k;
		r->moff += k;
		n -= k;
	}
	return 0;
}

/* Bytes left before message offset `end` (the end of the container being
 * read); a field that does not fit is malformed whatever follows. */
static inline size_t left(const struct rd *r, size_t end)
{
	return end - r->moff;
}

static inline int need(const struct rd *r, size_t end, size_t n)
{
	return left(r, end) < n ? -EBADMSG : 0;
}

/* RFC 6066 3: a ServerNameList that fills the extension, holding exactly
 * one host_name of 1..255 printable bytes. */
static int parse_server_name(struct rd *r, size_t end, struct tls_hello *out)
{
	uint16_t list, n;
	uint8_t type, c;

	TRY(need(r, end, 2));
	TRY(get16(r, &list));
	if (list == 0 || list != left(r, end))
		return -EBADMSG;
	TRY(need(r, end, 3));
	TRY(get8(r, &type));
	if (type != 0)
		return -EBADMSG;
	TRY(get16(r, &n));
	/* A second entry would be a second name for one connection: which
	 * one the backend uses is its choice, not ours. */
	if (n == 0 || n > TLS_HELLO_NAME_MAX || n != left(r, end))
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		TRY(get8(r, &c));
		/* No NUL, space, control or 8-bit byte: a name that C strings,
		 * logs or a backend could read differently is refused. */
		if (c < 0x21 || c > 0x7e)
			return -EBADMSG;
		/* Nor an empty label (".a", "a..b", "a.."): after the trailing
		 * dot goes, a routing rule must see the one spelling of a name. */
		if (c == '.' && (i == 0 || out->sni[i - 1] == '.'))
			return -EBADMSG;
		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c + ('a' - 'A'));
		out->sni[i] = (char)c;
	}
	/* "example.com." is the same name as "example.com". */
	if (out->sni[n - 1] == '.')
		n--;
	out->sni[n] = '\0';
	out->sni_len = n;
	return 0;
}

/* RFC 7301 3.1: a non-empty list of non-empty names that fills the
 * extension. Only the first name is kept. */
static int parse_alpn(struct rd *r, size_t end, struct tls_hello *out)
{
	uint16_t list;
	uint8_t n, c;
	bool first = true;

	TRY(need(r, end, 2));
	TRY(get16(r, &list));
	if (list < 2 || list != left(r, end))
		return -EBADMSG;
	while (left(r, end)) {
		TRY(get8(r, &n));
		if (n == 0 || n > left(r, end))
			return -EBADMSG;
		if (!first) {
			TRY(skip(r, n));
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			TRY(get8(r, &c));
			/* Names are opaque bytes; '?' for the unprintable ones
			 * keeps "h2\0x" from reading as "h2". */
			if (i < sizeof(out->alpn_first) - 1)
				out->alpn_first[i] = c >= 0x20 && c <= 0x7e ? (char)c : '?';
		}
		out->alpn_first[n < sizeof(out->alpn_first) - 1 ? n : sizeof(out->alpn_first) - 1] = '\0';
		first = false;
	}
	out->has_alpn = true;
	return 0;
}

/* RFC 8446 4.2.1: when present, this list and not legacy_version says what
 * the client offers. GREASE (RFC 8701) and unknown values are not
 * versions; with none known, legacy_version stands. */
static int parse_supported_versions(struct rd *r, size_t end, struct tls_hello *out)
{
	uint8_t n;
	uint16_t v, best = 0;

	TRY(need(r, end, 1));
	TRY(get8(r, &n));
	if (n < 2 || n % 2 || n != left(r, end))
		return -EBADMSG;
	while (left(r, end)) {
		TRY(get16(r, &v));
		if (v >= 0x0300 && v <= 0x0304 && v > best)
			best = v;
	}
	if (best)
		out->version = best;
	return 0;
}

static int parse_extensions(struct rd *r, struct tls_hello *out)
{
	/* One bit per extension type: a hello can hold thousands of
	 * extensions, and comparing pairs would make it quadratic. */
	uint64_t seen[65536 / 64];
	size_t end = r->mlen;
	uint16_t total, type, n;

	memset(seen, 0, sizeof(seen));
	TRY(need(r, end, 2));
	TRY(get16(r, &total));
	if (total != left(r, end))
		return -EBADMSG;
	while (left(r, end)) {
		size_t ext_end;

		TRY(need(r, end, 4));
		TRY(get16(r, &type));
		if (seen[type / 64] & (uint64_t)1 << (type % 64))
			return -EBADMSG;
		seen[type / 64] |= (uint64_t)1 << (type % 64);
		TRY(get16(r, &n));
		if (n > left(r, end))
			return -EBADMSG;
		ext_end = r->moff + n;
		switch (type) {
		case EXT_SERVER_NAME:
			TRY(parse_server_name(r, ext_end, out));
			break;
		case EXT_ALPN:
			TRY(parse_alpn(r, ext_end, out));
			break;
		case EXT_SUPPORTED_VERSIONS:
			TRY(parse_supported_versions(r, ext_end, out));
			break;
		default:
			TRY(skip(r, n));
			break;
		}
		/* Each parser above fills its extension exactly; this keeps the
		 * rule in one place should one of them stop short. */
		if (r->moff != ext_end)
			return -EBADMSG;
	}
	return 0;
}

static int parse_hello(struct rd *r, struct tls_hello *out)
{
	uint8_t type, b[3], n8;
	uint16_t v, n16;
	size_t len, end;

	TRY(get8(r, &type));
	if (type != HS_CLIENT_HELLO)
		return -EBADMSG;
	for (int i = 0; i < 3; i++)
		TRY(get8(r, &b[i]));
	len = (size_t)b[0] << 16 | (size_t)b[1] << 8 | b[2];
	r->mlen = end = HS_HEADER + len;
	/* The record that carried the header may not run past the message. */
	if (r->rec_end - r->pos > len)
		return -EBADMSG;
	if (r->pos + len > TLS_HELLO_READ_MAX)
		return -EMSGSIZE;

	TRY(need(r, end, 2));
	TRY(get16(r, &v));
	if (v >> 8 != 3)
		return -EBADMSG;
	out->version = v;
	TRY(need(r, end, 32));
	TRY(skip(r, 32));                       /* random */

	TRY(need(r, end, 1));
	TRY(get8(r, &n8));
	if (n8 > SESSION_ID_MAX || n8 > left(r, end))
		return -EBADMSG;
	TRY(skip(r, n8));

	TRY(need(r, end, 2));
	TRY(get16(r, &n16));
	if (n16 == 0 || n16 % 2 || n16 > left(r, end))
		return -EBADMSG;
	TRY(skip(r, n16));

	TRY(need(r, end, 1));
	TRY(get8(r, &n8));
	if (n8 == 0 || n8 > left(r, end))
		return -EBADMSG;
	TRY(skip(r, n8));

	/* RFC 5246 7.4.1.2: a hello may end here, without extensions. */
	if (left(r, end) == 0)
		return 0;
	return parse_extensions(r, out);
}

static void clear(struct tls_hello *out)
{
	out->sni[0] = '\0';
	out->sni_len = 0;
	out->version = 0;
	out->has_alpn = false;
	out->alpn_first[0] = '\0';
	out->wait_len = 0;
}

int tls_hello_parse(const uint8_t *p, size_t len, struct tls_hello *out)
{
	struct rd r = { .p = p, .len = len };
	int rc;

	clear(out);
	rc = parse_hello(&r, out);
	if (rc == 0)
		return (int)r.pos;
	/* No FL_AGAIN once TLS_HELLO_READ_MAX bytes are given needs no check
	 * here: the size checks stop at the least span the hello can have, and
	 * every byte the parser waits for lies inside it. */
	clear(out);
	if (rc == FL_AGAIN) {
		/* Inside a record's payload nothing can end before the record
		 * does (a hello ends where its last record ends); in a header
		 * every byte is judged as it comes. */
		size_t w = r.pos < r.rec_end ? r.rec_end : len + 1;
		out->wait_len = w < TLS_HELLO_READ_MAX || len >= TLS_HELLO_READ_MAX ? w : TLS_HELLO_READ_MAX;
	}
	return rc;
}

const char *tls_hello_strerror(int rc)
{
	switch (rc) {
	case FL_AGAIN:
		return "incomplete TLS ClientHello";
	case -EPROTO:
		return "not a TLS handshake";
	case -EBADMSG:
		return "malformed TLS ClientHello";
	case -EMSGSIZE:
		return "TLS ClientHello too large";
	default:
		return rc >= 0 ? "no error" : "unknown TLS ClientHello error";
	}
}
