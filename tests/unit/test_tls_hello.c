/* The ClientHello parser: real hellos from OpenSSL and Python, every rule
 * of tls_hello.h with a test, prefixes (FL_AGAIN until complete), hellos
 * fragmented over several records, and the size limit. Every input is parsed
 * from a heap copy of exactly its size, so ASan catches a read past the
 * end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tls_hello.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- captured hellos ------------------------------------------------------
 * Saved by a python socket server on 127.0.0.1 from the first bytes each
 * client sent. */

/* openssl s_client -tls1_2 -servername www.example.com (OpenSSL 3.0.19) */
static const uint8_t hello_openssl12[] = {
	0x16, 0x03, 0x01, 0x00, 0xcf, 0x01, 0x00, 0x00, 0xcb, 0x03, 0x03, 0xc8,
	0xdc, 0xb6, 0x49, 0x73, 0xe5, 0x88, 0x42, 0x3f, 0x20, 0x39, 0xd2, 0x41,
	0x19, 0xf4, 0x71, 0xab, 0x40, 0x82, 0xaa, 0x15, 0x87, 0x9f, 0x1c, 0x70,
	0x4f, 0x96, 0xef, 0x5d, 0xec, 0x0b, 0x97, 0x00, 0x00, 0x38, 0xc0, 0x2c,
	0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa, 0xc0, 0x2b,
	0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b, 0xc0, 0x23,
	0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0, 0x09,
	0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c,
	0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0x6a, 0x00, 0x00,
	0x00, 0x14, 0x00, 0x12, 0x00, 0x00, 0x0f, 0x77, 0x77, 0x77, 0x2e, 0x65,
	0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x00, 0x0b,
	0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x0c, 0x00, 0x0a,
	0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x00, 0x23,
	0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d,
	0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07,
	0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05,
	0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01,
	0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02,
};

/* openssl s_client -servername api.example.com -alpn h2,http/1.1 (OpenSSL 3.0.19) */
static const uint8_t hello_openssl13_alpn[] = {
	0x16, 0x03, 0x01, 0x01, 0x4e, 0x01, 0x00, 0x01, 0x4a, 0x03, 0x03, 0x3e,
	0x79, 0xfe, 0xd4, 0x16, 0xc5, 0xfd, 0xb4, 0xdf, 0x2e, 0x3c, 0x54, 0xb8,
	0x0d, 0x03, 0x47, 0xe3, 0x78, 0x10, 0xee, 0xe0, 0xa2, 0xb5, 0x23, 0xbb,
	0xfc, 0x18, 0xf1, 0xfa, 0xfe, 0x6a, 0x46, 0x20, 0x33, 0x04, 0xa2, 0xb8,
	0xd5, 0xbc, 0x05, 0xed, 0xa0, 0xab, 0x69, 0x01, 0xd5, 0xee, 0x7b, 0x23,
	0xd0, 0x28, 0xa4, 0x8f, 0x3d, 0xbc, 0x1b, 0x95, 0x0e, 0x68, 0xf4, 0x59,
	0x5b, 0x7d, 0xb5, 0x13, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
	0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
	0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b,
	0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39,
	0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d,
	0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xc3,
	0x00, 0x00, 0x00, 0x14, 0x00, 0x12, 0x00, 0x00, 0x0f, 0x61, 0x70, 0x69,
	0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d,
	0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x16,
	0x00, 0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18,
	0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x23,
	0x00, 0x00, 0x00, 0x10, 0x00, 0x0e, 0x00, 0x0c, 0x02, 0x68, 0x32, 0x08,
	0x68, 0x74, 0x74, 0x70, 0x2f, 0x31, 0x2e, 0x31, 0x00, 0x16, 0x00, 0x00,
	0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03,
	0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a,
	0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01,
	0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02,
	0x06, 0x02, 0x00, 0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03,
	0x02, 0x03, 0x01, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00,
	0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0x20, 0xf7, 0x8e, 0x0f, 0x8b,
	0x56, 0x2f, 0x59, 0xfb, 0x20, 0xa3, 0x6d, 0x4c, 0xee, 0xc6, 0xe4, 0x99,
	0x4e, 0xa7, 0xa6, 0x0f, 0xd8, 0xce, 0x63, 0x0d, 0x9e, 0x1d, 0x5c, 0x36,
	0x91, 0x4d, 0x28,
};

/* python3 ssl, server_hostname="Sys.Python.Example.", ALPN http/1.1 (Python 3.11,
 * OpenSSL 3.0.19): a trailing dot and capitals, padded to 512 bytes */
static const uint8_t hello_python[] = {
	0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x15,
	0x81, 0xdd, 0x1e, 0x1b, 0x39, 0x2b, 0x5f, 0x85, 0xe1, 0x4c, 0x1e, 0x3e,
	0x84, 0x6e, 0x65, 0x01, 0xeb, 0x9b, 0x1b, 0x03, 0x23, 0x75, 0x18, 0x94,
	0xa6, 0x96, 0xe4, 0xb4, 0x0b, 0xfd, 0x19, 0x20, 0x7c, 0x86, 0x2a, 0xbe,
	0xb9, 0x20, 0xcc, 0xa8, 0xf1, 0xf4, 0x74, 0x0d, 0xb6, 0xa9, 0x9e, 0x51,
	0xfd, 0x9d, 0xfc, 0x8c, 0x86, 0xc8, 0x9c, 0xd0, 0x8c, 0xe5, 0x8a, 0xec,
	0xe0, 0x5e, 0x03, 0xe8, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
	0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
	0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b,
	0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39,
	0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d,
	0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x01, 0x75,
	0x00, 0x00, 0x00, 0x18, 0x00, 0x16, 0x00, 0x00, 0x13, 0x53, 0x79, 0x73,
	0x2e, 0x50, 0x79, 0x74, 0x68, 0x6f, 0x6e, 0x2e, 0x45, 0x78, 0x61, 0x6d,
	0x70, 0x6c, 0x65, 0x2e, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02,
	0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e,
	0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03,
	0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x10, 0x00, 0x0b, 0x00, 0x09,
	0x08, 0x68, 0x74, 0x74, 0x70, 0x2f, 0x31, 0x2e, 0x31, 0x00, 0x16, 0x00,
	0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04,
	0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08,
	0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05,
	0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05,
	0x02, 0x06, 0x02, 0x00, 0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03,
	0x03, 0x02, 0x03, 0x01, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x33,
	0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0x46, 0x9f, 0xff, 0x62,
	0x0c, 0xfe, 0x1e, 0x16, 0xe3, 0x7b, 0x09, 0x18, 0xce, 0x7b, 0x7d, 0x3a,
	0x3e, 0xb8, 0x8f, 0x42, 0xe5, 0x6b, 0xb0, 0x3d, 0xfb, 0xd1, 0x8c, 0xfe,
	0xd7, 0xb9, 0x1a, 0x47, 0x00, 0x15, 0x00, 0xad, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00,
};

/* ---- helpers ------------------------------------------------------------ */

struct buf {
	size_t n;
	uint8_t b[3 * TLS_HELLO_READ_MAX];
};

/* Scratch buffers: extensions, a handshake message, its records. */
static struct buf ext, msg, rec, rec2;

static int parse(const uint8_t *p, size_t n, struct tls_hello *h)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	assert_non_null(copy);
	if (n)
		memcpy(copy, p, n);
	rc = tls_hello_parse(copy, n, h);
	free(copy);
	return rc;
}

static void put8(struct buf *b, unsigned v)
{
	assert_true(b->n < sizeof(b->b));
	b->b[b->n++] = (uint8_t)v;
}

static void put16(struct buf *b, unsigned v)
{
	put8(b, v >> 8 & 0xff);
	put8(b, v & 0xff);
}

static void put24(struct buf *b, unsigned v)
{
	put8(b, v >> 16 & 0xff);
	put16(b, v & 0xffff);
}

static void putn(struct buf *b, const void *p, size_t n)
{
	assert_true(n <= sizeof(b->b) - b->n);
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void putrep(struct buf *b, uint8_t c, size_t n)
{
	assert_true(n <= sizeof(b->b) - b->n);
	memset(b->b + b->n, c, n);
	b->n += n;
}

static void add_ext(struct buf *e, unsigned type, const void *data, size_t n)
{
	put16(e, type);
	put16(e, (unsigned)n);
	putn(e, data, n);
}

static void add_sni_n(struct buf *e, const char *name, size_t n)
{
	put16(e, 0);
	put16(e, (unsigned)n + 5);
	put16(e, (unsigned)n + 3);
	put8(e, 0);
	put16(e, (unsigned)n);
	putn(e, name, n);
}

static void add_sni(struct buf *e, const char *name)
{
	add_sni_n(e, name, strlen(name));
}

/* wire: the ProtocolNameList contents, e.g. "\x02h2\x08http/1.1". */
static void add_alpn(struct buf *e, const char *wire, size_t n)
{
	put16(e, 16);
	put16(e, (unsigned)n + 2);
	put16(e, (unsigned)n);
	putn(e, wire, n);
}

static void add_versions(struct buf *e, const uint16_t *v, size_t k)
{
	put16(e, 43);
	put16(e, (unsigned)(1 + 2 * k));
	put8(e, (unsigned)(2 * k));
	for (size_t i = 0; i < k; i++)
		put16(e, v[i]);
}

/* Body fields of a plain ClientHello, in order; std_fields writes those
 * before `stop`, so a test can write the one it is about by hand. */
enum { F_VERSION, F_RANDOM, F_SID, F_SUITES, F_COMP, F_END };

static void hs_begin(struct buf *m, unsigned type)
{
	m->n = 0;
	put8(m, type);
	put24(m, 0);
}

static void std_fields(struct buf *m, int stop)
{
	if (stop > F_VERSION)
		put16(m, 0x0303);
	if (stop > F_RANDOM)
		putrep(m, 0xa5, 32);
	if (stop > F_SID) {
		put8(m, 32);
		putrep(m, 0x5e, 32);
	}
	if (stop > F_SUITES) {
		put16(m, 6);
		putn(m, "\x13\x01\x13\x02\xc0\x2f", 6);
	}
	if (stop > F_COMP) {
		put8(m, 1);
		put8(m, 0);
	}
}

/* Set the handshake length from what was written. */
static void hs_end(struct buf *m)
{
	size_t n = m->n - 4;
	m->b[1] = (uint8_t)(n >> 16);
	m->b[2] = (uint8_t)(n >> 8);
	m->b[3] = (uint8_t)n;
}

/* A ClientHello message whose extensions block holds `e` (no block when
 * e is NULL). */
static void make_msg(struct buf *m, const struct buf *e)
{
	hs_begin(m, 1);
	std_fields(m, F_END);
	if (e) {
		put16(m, (unsigned)e->n);
		putn(m, e->b, e->n);
	}
	hs_end(m);
}

static void put_record_header(struct buf *out, unsigned version, size_t n)
{
	put8(out, 22);
	put16(out, version);
	put16(out, (unsigned)n);
}

/* Wrap m in records of the given payload sizes; the last record takes
 * what is left. */
static void to_records(const struct buf *m, struct buf *out, const size_t *sizes, size_t k)
{
	size_t off = 0;

	out->n = 0;
	for (size_t i = 0; i <= k; i++) {
		size_t n = i < k ? sizes[i] : m->n - off;
		assert_true(n <= m->n - off);
		put_record_header(out, 0x0301, n);
		putn(out, m->b + off, n);
		off += n;
	}
}

static void to_record(const struct buf *m, struct buf *out)
{
	to_records(m, out, NULL, 0);
}

static void same_hello(const struct tls_hello *a, const struct tls_hello *b)
{
	assert_string_equal(a->sni, b->sni);
	assert_int_equal(a->sni_len, b->sni_len);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->has_alpn, b->has_alpn);
	assert_string_equal(a->alpn_first, b->alpn_first);
}

static void assert_cleared(const struct tls_hello *h)
{
	assert_string_equal(h->sni, "");
	assert_int_equal(h->sni_len, 0);
	assert_int_equal(h->version, 0);
	assert_false(h->has_alpn);
	assert_string_equal(h->alpn_first, "");
}

/* p[0..n) is one complete hello: it parses to n, and every shorter prefix
 * asks for more, naming a length past itself and not past the hello. */
static void expect_ok(const uint8_t *p, size_t n, struct tls_hello *h)
{
	struct tls_hello t;

	assert_int_equal(parse(p, n, h), (int)n);
	assert_int_equal(h->sni_len, strlen(h->sni));
	assert_int_equal(h->wait_len, 0);
	for (size_t k = 0; k < n; k++) {
		memset(&t, 'x', sizeof(t));
		assert_int_equal(parse(p, k, &t), FL_AGAIN);
		assert_cleared(&t);
		assert_true(t.wait_len > k);
		assert_true(t.wait_len <= n);
	}
}

/* Feed p[0..n) as a client trickling one byte per read would, parsing only
 * when wait_len bytes are there, as the passthrough listener does. Returns
 * the number of parses; the last one returns n with the hello of `want`. */
static size_t trickle(const uint8_t *p, size_t n, const struct tls_hello *want)
{
	struct tls_hello t;
	size_t calls = 0, wait = 0;
	int rc = FL_AGAIN;

	for (size_t k = 1; k <= n && rc == FL_AGAIN; k++) {
		if (k < wait)
			continue;
		calls++;
		rc = parse(p, k, &t);
		wait = t.wait_len;
	}
	assert_int_equal(rc, (int)n);
	same_hello(&t, want);
	return calls;
}

/* p[0..n) fails with rc, and so does the shortest prefix that shows it:
 * shorter prefixes ask for more. Returns the length of that prefix. */
static size_t expect_err(const uint8_t *p, size_t n, int rc)
{
	struct tls_hello t;
	size_t k;

	memset(&t, 'x', sizeof(t));
	assert_int_equal(parse(p, n, &t), rc);
	assert_cleared(&t);
	for (k = 0; k < n; k++) {
		int r = parse(p, k, &t);
		if (r != FL_AGAIN) {
			assert_int_equal(r, rc);
			assert_int_equal(t.wait_len, 0);
			break;
		}
		assert_true(t.wait_len > k);
	}
	for (size_t j = k; j < n; j++)
		assert_int_equal(parse(p, j, &t), rc);
	return k;
}

/* A message in one record fails with rc. */
static void msg_err(const struct buf *m, int rc)
{
	to_record(m, &rec);
	expect_err(rec.b, rec.n, rc);
}

/* A hello with these extensions, in one record: parses completely. */
static void exts_ok(struct tls_hello *h)
{
	make_msg(&msg, &ext);
	to_record(&msg, &rec);
	expect_ok(rec.b, rec.n, h);
}

static void exts_err(int rc)
{
	make_msg(&msg, &ext);
	msg_err(&msg, rc);
}

/* Re-split the handshake message of a one-record hello at the given
 * message offsets and check it parses the same. */
static void resplit_same(const uint8_t *p, size_t n, const size_t *sizes, size_t k,
			 const struct tls_hello *want)
{
	struct tls_hello h;

	assert_true(n > 5 && (size_t)(p[3] << 8 | p[4]) == n - 5);
	msg.n = 0;
	putn(&msg, p + 5, n - 5);
	to_records(&msg, &rec2, sizes, k);
	assert_int_equal(parse(rec2.b, rec2.n, &h), (int)rec2.n);
	assert_int_equal(rec2.n, n + 5 * k);
	same_hello(&h, want);
}

/* ---- real hellos -------------------------------------------------------- */

static void test_openssl_tls12(void **state)
{
	struct tls_hello h;

	expect_ok(hello_openssl12, sizeof(hello_openssl12), &h);
	assert_string_equal(h.sni, "www.example.com");
	assert_int_equal(h.sni_len, 15);
	assert_int_equal(h.version, 0x0303);
	assert_false(h.has_alpn);
	assert_string_equal(h.alpn_first, "");
}

static void test_openssl_tls13_alpn(void **state)
{
	struct tls_hello h;

	expect_ok(hello_openssl13_alpn, sizeof(hello_openssl13_alpn), &h);
	assert_string_equal(h.sni, "api.example.com");
	assert_int_equal(h.version, 0x0304);
	assert_true(h.has_alpn);
	assert_string_equal(h.alpn_first, "h2");
}

static void test_python_dot_and_case(void **state)
{
	struct tls_hello h;

	expect_ok(hello_python, sizeof(hello_python), &h);
	assert_string_equal(h.sni, "sys.python.example");
	assert_int_equal(h.sni_len, 18);
	assert_int_equal(h.version, 0x0304);
	assert_true(h.has_alpn);
	assert_string_equal(h.alpn_first, "http/1.1");
}

static const struct {
	const uint8_t *p;
	size_t n;
} reals[] = {
	{ hello_openssl12, sizeof(hello_openssl12) },
	{ hello_openssl13_alpn, sizeof(hello_openssl13_alpn) },
	{ hello_python, sizeof(hello_python) },
};

/* Split at every message offset into two records, and at a spread of pairs
 * into three: the same hello each time. */
static void test_real_fragmented(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(reals); i++) {
		struct tls_hello want;
		size_t mlen = reals[i].n - 5;

		assert_int_equal(parse(reals[i].p, reals[i].n, &want), (int)reals[i].n);
		for (size_t a = 1; a < mlen; a++)
			resplit_same(reals[i].p, reals[i].n, &a, 1, &want);
		for (size_t a = 1; a < mlen; a += 7)
			for (size_t b = 1; a + b < mlen; b += 5) {
				size_t s[2] = { a, b };
				resplit_same(reals[i].p, reals[i].n, s, 2, &want);
			}
	}
}

/* A hello trickled byte by byte is walked once per record (and once per
 * header byte), not once per read: a real hello in one record, and the
 * same split over three. */
static void test_trickle_walks_each_record_once(void **state)
{
	struct tls_hello want;
	size_t s[2] = { 40, 90 };

	for (size_t i = 0; i < ARRAY_LEN(reals); i++) {
		assert_int_equal(parse(reals[i].p, reals[i].n, &want), (int)reals[i].n);
		/* 5 header bytes, then the record's end */
		assert_int_equal(trickle(reals[i].p, reals[i].n, &want), 5 + 1);
		msg.n = 0;
		putn(&msg, reals[i].p + 5, reals[i].n - 5);
		to_records(&msg, &rec, s, 2);
		assert_int_equal(trickle(rec.b, rec.n, &want), 3 * (5 + 1));
	}
}

/* Every prefix of a fragmented hello asks for more, and the record headers
 * in the middle are not mistaken for message bytes. */
static void test_fragmented_prefixes(void **state)
{
	struct tls_hello h, want;
	size_t s[3] = { 1, 2, 100 };    /* the handshake header over three records */

	assert_int_equal(parse(hello_openssl13_alpn, sizeof(hello_openssl13_alpn), &want),
			 (int)sizeof(hello_openssl13_alpn));
	msg.n = 0;
	putn(&msg, hello_openssl13_alpn + 5, sizeof(hello_openssl13_alpn) - 5);
	to_records(&msg, &rec, s, 3);
	expect_ok(rec.b, rec.n, &h);
	same_hello(&h, &want);
	assert_int_equal(rec.n, sizeof(hello_openssl13_alpn) + 15);
}

/* A name split between records is joined. */
static void test_name_across_records(void **state)
{
	struct tls_hello h;
	size_t off, s[2];

	ext.n = 0;
	add_alpn(&ext, "\x08http/1.1", 9);
	add_sni(&ext, "split.example.com");
	make_msg(&msg, &ext);
	off = msg.n - 10;               /* inside the name */
	s[0] = off;
	s[1] = 4;
	to_records(&msg, &rec, s, 2);
	expect_ok(rec.b, rec.n, &h);
	assert_string_equal(h.sni, "split.example.com");
	s[0] = msg.n - ext.n + 6;       /* inside the ALPN name */
	to_records(&msg, &rec, s, 1);
	expect_ok(rec.b, rec.n, &h);
	assert_string_equal(h.alpn_first, "http/1.1");
	assert_string_equal(h.sni, "split.example.com");
}

/* The count covers the hello's records only: what follows (a
 * ChangeCipherSpec, early data) is the caller's to forward. */
static void test_count_excludes_what_follows(void **state)
{
	struct tls_hello h;
	static const uint8_t ccs[] = { 0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0x17, 0x03, 0x03 };

	rec.n = 0;
	putn(&rec, hello_openssl13_alpn, sizeof(hello_openssl13_alpn));
	putn(&rec, ccs, sizeof(ccs));
	assert_int_equal(parse(rec.b, rec.n, &h), (int)sizeof(hello_openssl13_alpn));
	assert_string_equal(h.sni, "api.example.com");
}

/* ---- not TLS, record layer ---------------------------------------------- */

static void test_plain_http(void **state)
{
	struct tls_hello h;
	static const char get[] = "GET / HTTP/1.1\r\n";

	assert_int_equal(parse((const uint8_t *)get, strlen(get), &h), -EPROTO);
	/* Known from the first byte: the caller need not wait for more. */
	assert_int_equal(parse((const uint8_t *)get, 1, &h), -EPROTO);
	assert_int_equal(parse((const uint8_t *)"\x80\x2e\x01\x03\x01", 5, &h), -EPROTO); /* SSLv2 */
	assert_int_equal(parse((const uint8_t *)"\x15\x03\x01\x00\x02", 5, &h), -EPROTO); /* alert */
	assert_int_equal(parse((const uint8_t *)"\x17", 1, &h), -EPROTO);
	assert_cleared(&h);
}

static void test_record_header_prefixes(void **state)
{
	struct tls_hello h;

	assert_int_equal(parse(NULL, 0, &h), FL_AGAIN);
	assert_int_equal(parse((const uint8_t *)"\x16", 1, &h), FL_AGAIN);
	assert_int_equal(parse((const uint8_t *)"\x16\x03", 2, &h), FL_AGAIN);
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01", 3, &h), FL_AGAIN);
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01\x00", 4, &h), FL_AGAIN);
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01\x00\x40", 5, &h), FL_AGAIN);
	/* A first record that is not TLS 1.x is not TLS: judged byte by byte. */
	assert_int_equal(parse((const uint8_t *)"\x16\x02", 2, &h), -EPROTO);
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x05", 3, &h), -EPROTO);
	assert_int_equal(parse((const uint8_t *)"\x16\x04\x01\x00\x40", 5, &h), -EPROTO);
}

/* Record versions 3.0 to 3.4 are all accepted, in any record. */
static void test_record_versions(void **state)
{
	struct tls_hello h;

	ext.n = 0;
	add_sni(&ext, "v.example");
	make_msg(&msg, &ext);
	for (unsigned v = 0x0300; v <= 0x0304; v++) {
		rec.n = 0;
		put_record_header(&rec, v, 10);
		putn(&rec, msg.b, 10);
		put_record_header(&rec, 0x0304 - (v & 0xff), msg.n - 10);
		putn(&rec, msg.b + 10, msg.n - 10);
		expect_ok(rec.b, rec.n, &h);
		assert_string_equal(h.sni, "v.example");
	}
}

/* After the first record, a bad header is a broken TLS client (-EBADMSG),
 * not "not TLS": the caller must not answer in plain text. */
static void test_later_record_bad(void **state)
{
	static const uint8_t bad[][3] = {
		{ 23, 3, 3 },           /* application data inside the hello */
		{ 21, 3, 3 },           /* alert */
		{ 22, 2, 3 },
		{ 22, 3, 5 },
		{ 22, 0xfe, 0xfd },     /* DTLS */
	};

	ext.n = 0;
	add_sni(&ext, "x.example");
	make_msg(&msg, &ext);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		size_t k;
		rec.n = 0;
		put_record_header(&rec, 0x0301, 20);
		putn(&rec, msg.b, 20);
		put8(&rec, bad[i][0]);
		put8(&rec, bad[i][1]);
		put8(&rec, bad[i][2]);
		put16(&rec, (unsigned)msg.n - 20);
		putn(&rec, msg.b + 20, msg.n - 20);
		k = expect_err(rec.b, rec.n, -EBADMSG);
		assert_true(k <= 25 + 3);
	}
}

static void test_record_zero_length(void **state)
{
	ext.n = 0;
	add_sni(&ext, "x.example");
	make_msg(&msg, &ext);
	/* first record */
	rec.n = 0;
	put_record_header(&rec, 0x0301, 0);
	put_record_header(&rec, 0x0301, msg.n);
	putn(&rec, msg.b, msg.n);
	assert_int_equal(expect_err(rec.b, rec.n, -EBADMSG), 5);
	/* a later one */
	rec.n = 0;
	put_record_header(&rec, 0x0301, 30);
	putn(&rec, msg.b, 30);
	put_record_header(&rec, 0x0301, 0);
	put_record_header(&rec, 0x0301, msg.n - 30);
	putn(&rec, msg.b + 30, msg.n - 30);
	assert_int_equal(expect_err(rec.b, rec.n, -EBADMSG), 40);
}

static void test_record_over_2_14(void **state)
{
	struct tls_hello h;

	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01\x40\x01", 5, &h), -EBADMSG);
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01\xff\xff", 5, &h), -EBADMSG);
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01\x40\x00", 5, &h), FL_AGAIN);
}

/* A record that runs past the end of the hello: refused as soon as the
 * handshake length (or the later record's header) shows it. */
static void test_record_past_hello(void **state)
{
	size_t k;

	ext.n = 0;
	add_sni(&ext, "x.example");
	make_msg(&msg, &ext);
	rec.n = 0;
	put_record_header(&rec, 0x0301, msg.n + 1);
	putn(&rec, msg.b, msg.n);
	put8(&rec, 0);
	k = expect_err(rec.b, rec.n, -EBADMSG);
	assert_int_equal(k, 9);
	rec.n = 0;
	put_record_header(&rec, 0x0301, 50);
	putn(&rec, msg.b, 50);
	put_record_header(&rec, 0x0301, msg.n - 50 + 1);
	putn(&rec, msg.b + 50, msg.n - 50);
	put8(&rec, 0);
	k = expect_err(rec.b, rec.n, -EBADMSG);
	assert_int_equal(k, 60);
}

/* ---- the handshake message ---------------------------------------------- */

static void test_not_client_hello(void **state)
{
	hs_begin(&msg, 2);              /* ServerHello */
	std_fields(&msg, F_END);
	hs_end(&msg);
	to_record(&msg, &rec);
	assert_int_equal(expect_err(rec.b, rec.n, -EBADMSG), 6);
}

static void test_legacy_version(void **state)
{
	struct tls_hello h;

	hs_begin(&msg, 1);
	put16(&msg, 0x0203);
	std_fields(&msg, F_END);
	msg.n -= 2;                     /* std_fields wrote its own version */
	memmove(msg.b + 6, msg.b + 8, msg.n - 6);
	hs_end(&msg);
	msg_err(&msg, -EBADMSG);

	/* A TLS 1.0 client without supported_versions: that is its best. */
	make_msg(&msg, NULL);
	msg.b[4] = 3;
	msg.b[5] = 1;
	to_record(&msg, &rec);
	expect_ok(rec.b, rec.n, &h);
	assert_int_equal(h.version, 0x0301);
}

static void test_session_id(void **state)
{
	struct tls_hello h;

	for (unsigned n = 0; n <= 33; n += 1) {
		hs_begin(&msg, 1);
		std_fields(&msg, F_SID);
		put8(&msg, n);
		putrep(&msg, 7, n);
		std_fields(&msg, F_END);
		/* std_fields wrote version, random and session id again: drop them */
		memmove(msg.b + 4 + 2 + 32 + 1 + n, msg.b + 4 + 2 + 32 + 1 + n + 2 + 32 + 33,
			msg.n - (4 + 2 + 32 + 1 + n + 2 + 32 + 33));
		msg.n -= 2 + 32 + 33;
		hs_end(&msg);
		to_record(&msg, &rec);
		if (n <= 32)
			expect_ok(rec.b, rec.n, &h);
		else
			assert_int_equal(expect_err(rec.b, rec.n, -EBADMSG), 5 + 4 + 2 + 32 + 1);
	}
	/* longer than the message */
	hs_begin(&msg, 1);
	std_fields(&msg, F_SID);
	put8(&msg, 20);
	putrep(&msg, 7, 10);
	hs_end(&msg);
	msg_err(&msg, -EBADMSG);
}

/* Build a message with the standard fields before `stop`, then raw bytes. */
static void msg_with(int stop, const void *raw, size_t n)
{
	hs_begin(&msg, 1);
	std_fields(&msg, stop);
	putn(&msg, raw, n);
	hs_end(&msg);
}

static void test_cipher_suites(void **state)
{
	struct tls_hello h;

	msg_with(F_SUITES, "\x00\x00\x01\x00", 4);                  /* empty */
	msg_err(&msg, -EBADMSG);
	msg_with(F_SUITES, "\x00\x03\x13\x01\x13\x01\x00", 7);      /* odd */
	msg_err(&msg, -EBADMSG);
	msg_with(F_SUITES, "\x00\x08\x13\x01\x01\x00", 6);          /* past the message */
	msg_err(&msg, -EBADMSG);
	msg_with(F_SUITES, "\x00\x02\x13\x01\x01\x00", 6);          /* one is enough */
	to_record(&msg, &rec);
	expect_ok(rec.b, rec.n, &h);
}

static void test_compression(void **state)
{
	struct tls_hello h;

	msg_with(F_COMP, "\x00", 1);                                 /* empty */
	msg_err(&msg, -EBADMSG);
	msg_with(F_COMP, "\x03\x00\x01", 3);                         /* past the message */
	msg_err(&msg, -EBADMSG);
	msg_with(F_COMP, "\x02\x01\x00", 3);
	to_record(&msg, &rec);
	expect_ok(rec.b, rec.n, &h);
}

/* A hello may end after compression methods (TLS 1.2 and earlier). */
static void test_no_extensions(void **state)
{
	struct tls_hello h;

	make_msg(&msg, NULL);
	to_record(&msg, &rec);
	expect_ok(rec.b, rec.n, &h);
	assert_string_equal(h.sni, "");
	assert_int_equal(h.sni_len, 0);
	assert_int_equal(h.version, 0x0303);
	assert_false(h.has_alpn);
}

static void test_extensions_block(void **state)
{
	struct tls_hello h;

	msg_with(F_END, "\x00", 1);                                  /* one stray byte */
	msg_err(&msg, -EBADMSG);
	msg_with(F_END, "\x00\x00", 2);                              /* an empty block */
	to_record(&msg, &rec);
	expect_ok(rec.b, rec.n, &h);
	msg_with(F_END, "\x00\x04\xaa\xaa\x00\x00\x00", 7);          /* shorter than the rest */
	msg_err(&msg, -EBADMSG);
	msg_with(F_END, "\x00\x04\xaa\xaa\x00\x00\xbb\xbb\x00\x00", 10); /* ... by a whole extension */
	msg_err(&msg, -EBADMSG);
	msg_with(F_END, "\x00\x08\xaa\xaa\x00\x00", 6);              /* longer */
	msg_err(&msg, -EBADMSG);
	msg_with(F_END, "\x00\x03\xaa\xaa\x00", 5);                  /* a cut extension header */
	msg_err(&msg, -EBADMSG);
	msg_with(F_END, "\x00\x06\xaa\xaa\x00\x03\x00\x00", 8);      /* an extension past the block */
	msg_err(&msg, -EBADMSG);
	msg_with(F_END, "\x00\x06\xaa\xaa\x00\x02\x00\x00", 8);
	to_record(&msg, &rec);
	expect_ok(rec.b, rec.n, &h);
}

static void test_duplicate_extensions(void **state)
{
	struct tls_hello h;
	static const uint16_t v13[] = { 0x0304 };

	ext.n = 0;
	add_ext(&ext, 0x1234, "ab", 2);
	add_sni(&ext, "d.example");
	add_ext(&ext, 0x1234, "", 0);
	exts_err(-EBADMSG);

	ext.n = 0;
	add_sni(&ext, "a.example");
	add_sni(&ext, "b.example");
	exts_err(-EBADMSG);

	ext.n = 0;
	add_alpn(&ext, "\x02h2", 3);
	add_alpn(&ext, "\x02h2", 3);
	exts_err(-EBADMSG);

	ext.n = 0;
	add_versions(&ext, v13, 1);
	add_versions(&ext, v13, 1);
	exts_err(-EBADMSG);

	/* Two different GREASE types, as Chrome sends, are two extensions. */
	ext.n = 0;
	add_ext(&ext, 0x0a0a, "", 0);
	add_sni(&ext, "g.example");
	add_ext(&ext, 0x1a1a, "\x00", 1);
	add_ext(&ext, 0xffff, "\x00", 1);
	add_ext(&ext, 0x0000 + 1, "\x00", 1);
	exts_ok(&h);
	assert_string_equal(h.sni, "g.example");
}

/* ---- server_name -------------------------------------------------------- */

static void test_sni_basic(void **state)
{
	struct tls_hello h;
	char name[300];

	ext.n = 0;
	add_sni(&ext, "WWW.Example.ORG.");
	exts_ok(&h);
	assert_string_equal(h.sni, "www.example.org");
	assert_int_equal(h.sni_len, 15);

	/* the printable range is 0x21..0x7e, ends included */
	ext.n = 0;
	add_sni(&ext, "!~");
	exts_ok(&h);
	assert_string_equal(h.sni, "!~");

	memset(name, 'a', sizeof(name));
	ext.n = 0;
	add_sni_n(&ext, name, 255);
	exts_ok(&h);
	assert_int_equal(h.sni_len, 255);
	assert_int_equal(strlen(h.sni), 255);
	name[254] = '.';
	ext.n = 0;
	add_sni_n(&ext, name, 255);
	exts_ok(&h);
	assert_int_equal(h.sni_len, 254);

	name[254] = 'a';
	ext.n = 0;
	add_sni_n(&ext, name, 256);
	exts_err(-EBADMSG);
	ext.n = 0;
	add_sni_n(&ext, "", 0);
	exts_err(-EBADMSG);
	/* only a dot: nothing left to route on */
	ext.n = 0;
	add_sni(&ext, ".");
	exts_err(-EBADMSG);
}

/* Empty labels would give one name several spellings once the trailing dot
 * is gone ("a.example.." would read as "a.example."). */
static void test_sni_empty_labels(void **state)
{
	static const char *const bad[] = { ".a.example", "a..example", "a.example..", "..", "a.." };
	struct tls_hello h;

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		ext.n = 0;
		add_sni(&ext, bad[i]);
		exts_err(-EBADMSG);
	}
	ext.n = 0;
	add_sni(&ext, "a.b.");
	exts_ok(&h);
	assert_string_equal(h.sni, "a.b");
	ext.n = 0;
	add_sni(&ext, "a");
	exts_ok(&h);
	assert_string_equal(h.sni, "a");
}

static void test_sni_bytes(void **state)
{
	static const uint8_t bad[] = { 0x00, 0x09, 0x20, 0x7f, 0x80, 0xc3, 0xff };

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char name[] = "ab?.example";
		name[2] = (char)bad[i];
		ext.n = 0;
		add_sni_n(&ext, name, sizeof(name) - 1);
		exts_err(-EBADMSG);
	}
}

static void test_sni_structure(void **state)
{
	ext.n = 0;
	add_ext(&ext, 0, "", 0);                                             /* empty, as a server sends */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 0, "\x00\x00", 2);                                     /* empty list */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 0, "\x00\x06\x01\x00\x03" "abc", 8);                   /* name_type 1 */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 0, "\x00\x07\x00\x00\x03" "abc", 8);                   /* list past the extension */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 0, "\x00\x05\x00\x00\x03" "abc", 8);                   /* list short of it */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 0, "\x00\x06\x00\x00\x04" "abc", 8);                   /* name past the list */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 0, "\x00\x06\x00\x00\x02" "abc", 8);                   /* name short of it */
	exts_err(-EBADMSG);
	ext.n = 0;                                                             /* ... by what reads as an extension */
	add_ext(&ext, 0, "\x00\x09\x00\x00\x02" "ab" "\xaa\xbb\x00\x00", 11);
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 0, "\x00\x0c\x00\x00\x03" "abc" "\x00\x00\x03" "def", 14); /* two names */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 0, "\x00\x02\x00\x00", 4);                             /* no room for the length */
	exts_err(-EBADMSG);
}

/* ---- ALPN --------------------------------------------------------------- */

static void test_alpn(void **state)
{
	struct tls_hello h;
	char wire[200];

	ext.n = 0;
	add_alpn(&ext, "\x08http/1.1\x02h2", 12);
	exts_ok(&h);
	assert_true(h.has_alpn);
	assert_string_equal(h.alpn_first, "http/1.1");
	assert_string_equal(h.sni, "");

	/* opaque bytes: the unprintable ones never read as a shorter name */
	ext.n = 0;
	add_alpn(&ext, "\x04h2\x00x", 5);
	exts_ok(&h);
	assert_string_equal(h.alpn_first, "h2?x");

	/* long names are cut to the buffer */
	wire[0] = 63;
	memset(wire + 1, 'p', 63);
	ext.n = 0;
	add_alpn(&ext, wire, 64);
	exts_ok(&h);
	assert_int_equal(strlen(h.alpn_first), 63);
	wire[0] = (char)150;
	memset(wire + 1, 'q', 150);
	ext.n = 0;
	add_alpn(&ext, wire, 151);
	exts_ok(&h);
	assert_int_equal(strlen(h.alpn_first), 63);
	assert_int_equal(h.alpn_first[62], 'q');
}

static void test_alpn_structure(void **state)
{
	ext.n = 0;
	add_ext(&ext, 16, "", 0);
	exts_err(-EBADMSG);
	ext.n = 0;
	add_alpn(&ext, "", 0);                                          /* empty list */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_alpn(&ext, "\x00", 1);                                      /* empty name */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_alpn(&ext, "\x02h2\x00", 4);                                /* empty second name */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_alpn(&ext, "\x03h2", 3);                                    /* name past the list */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 16, "\x00\x04\x02h2", 5);                         /* list past the extension */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 16, "\x00\x02\x02h2", 5);                         /* list short of it */
	exts_err(-EBADMSG);
}

/* ---- supported_versions ------------------------------------------------- */

static void test_supported_versions(void **state)
{
	struct tls_hello h;
	static const uint16_t v13[] = { 0x0304, 0x0303 };
	static const uint16_t grease[] = { 0x7a7a, 0x0303, 0x0302 };
	static const uint16_t only_grease[] = { 0x1a1a };
	static const uint16_t v11[] = { 0x0302 };

	ext.n = 0;
	add_versions(&ext, v13, 2);
	exts_ok(&h);
	assert_int_equal(h.version, 0x0304);
	ext.n = 0;
	add_versions(&ext, grease, 3);
	exts_ok(&h);
	assert_int_equal(h.version, 0x0303);
	/* nothing known in the list: legacy_version stands */
	ext.n = 0;
	add_versions(&ext, only_grease, 1);
	exts_ok(&h);
	assert_int_equal(h.version, 0x0303);
	/* the list, not legacy_version, says what is offered */
	ext.n = 0;
	add_versions(&ext, v11, 1);
	exts_ok(&h);
	assert_int_equal(h.version, 0x0302);

	ext.n = 0;
	add_ext(&ext, 43, "\x00", 1);                                   /* empty */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 43, "\x03\x03\x04\x03", 4);                       /* odd */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 43, "\x04\x03\x04", 3);                           /* past the extension */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 43, "\x02\x03\x04\x03\x03", 5);                   /* short of it */
	exts_err(-EBADMSG);
	ext.n = 0;
	add_ext(&ext, 43, "", 0);
	exts_err(-EBADMSG);
}

/* ---- size --------------------------------------------------------------- */

/* A message with a padding extension so that its one record is `total`
 * bytes long. */
static void padded(size_t total)
{
	size_t base;

	ext.n = 0;
	add_sni(&ext, "big.example");
	make_msg(&msg, &ext);
	base = 5 + msg.n + 4;
	assert_true(total >= base);
	put16(&ext, 21);
	put16(&ext, (unsigned)(total - base));
	putrep(&ext, 0, total - base);
	make_msg(&msg, &ext);
	assert_int_equal(msg.n + 5, total);
}

static void test_size_limit(void **state)
{
	struct tls_hello h;
	size_t s[3] = { 100, 100, 100 };

	/* exactly the limit: one record of 16379 bytes */
	padded(TLS_HELLO_READ_MAX);
	to_record(&msg, &rec);
	assert_int_equal(parse(rec.b, rec.n, &h), TLS_HELLO_READ_MAX);
	assert_string_equal(h.sni, "big.example");
	for (size_t k = 0; k < rec.n; k += 97)
		assert_int_equal(parse(rec.b, k, &h), FL_AGAIN);

	/* one byte more is refused once the handshake length is read */
	padded(TLS_HELLO_READ_MAX + 1);
	to_record(&msg, &rec);
	assert_int_equal(expect_err(rec.b, rec.n, -EMSGSIZE), 9);

	/* the same message at the limit no longer fits when record headers
	 * are added: refused at the header that crosses it */
	padded(TLS_HELLO_READ_MAX);
	to_records(&msg, &rec, s, 1);
	assert_int_equal(rec.n, TLS_HELLO_READ_MAX + 5);
	assert_int_equal(expect_err(rec.b, rec.n, -EMSGSIZE), 5 + 100 + 5);
	padded(TLS_HELLO_READ_MAX - 15);
	to_records(&msg, &rec, s, 3);
	assert_int_equal(parse(rec.b, rec.n, &h), TLS_HELLO_READ_MAX);

	/* a huge handshake length, known from 9 bytes */
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01\x40\x00\x01\x01\x00\x00", 9, &h),
			 -EMSGSIZE);
	assert_int_equal(parse((const uint8_t *)"\x16\x03\x01\x00\x04\x01\xff\xff\xff", 9, &h),
			 -EMSGSIZE);
}

/* Record headers count: a hello of 16004 bytes sent in 1-byte records
 * would span 96 KiB. It is refused once the headers seen and the bytes
 * still to come pass the limit (76 records in), not when the buffer is
 * full. */
static void test_tiny_records_limit(void **state)
{
	size_t off = 0;

	padded(16000 + 5 + 4);
	assert_int_equal(msg.n, 16004);
	rec.n = 0;
	while (rec.n < TLS_HELLO_READ_MAX) {
		put_record_header(&rec, 0x0303, 1);
		put8(&rec, msg.b[off++]);
	}
	assert_int_equal(expect_err(rec.b, TLS_HELLO_READ_MAX, -EMSGSIZE), 76 * 6 + 5);
}

/* ---- odds and ends ------------------------------------------------------ */

static void test_out_reset_on_error(void **state)
{
	struct tls_hello h;

	assert_int_equal(parse(hello_python, sizeof(hello_python), &h), (int)sizeof(hello_python));
	assert_int_equal(parse(hello_python, sizeof(hello_python) - 1, &h), FL_AGAIN);
	assert_cleared(&h);
	assert_int_equal(parse(hello_python, sizeof(hello_python), &h), (int)sizeof(hello_python));
	assert_int_equal(parse((const uint8_t *)"GET", 3, &h), -EPROTO);
	assert_cleared(&h);
}

static void test_strerror(void **state)
{
	const int codes[] = { FL_AGAIN, -EPROTO, -EBADMSG, -EMSGSIZE };

	for (size_t i = 0; i < ARRAY_LEN(codes); i++) {
		assert_true(strlen(tls_hello_strerror(codes[i])) > 0);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(tls_hello_strerror(codes[i]),
						tls_hello_strerror(codes[j]));
	}
	assert_non_null(tls_hello_strerror(-ENOMEM));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openssl_tls12),
		cmocka_unit_test(test_openssl_tls13_alpn),
		cmocka_unit_test(test_python_dot_and_case),
		cmocka_unit_test(test_real_fragmented),
		cmocka_unit_test(test_fragmented_prefixes),
		cmocka_unit_test(test_trickle_walks_each_record_once),
		cmocka_unit_test(test_name_across_records),
		cmocka_unit_test(test_count_excludes_what_follows),
		cmocka_unit_test(test_plain_http),
		cmocka_unit_test(test_record_header_prefixes),
		cmocka_unit_test(test_record_versions),
		cmocka_unit_test(test_later_record_bad),
		cmocka_unit_test(test_record_zero_length),
		cmocka_unit_test(test_record_over_2_14),
		cmocka_unit_test(test_record_past_hello),
		cmocka_unit_test(test_not_client_hello),
		cmocka_unit_test(test_legacy_version),
		cmocka_unit_test(test_session_id),
		cmocka_unit_test(test_cipher_suites),
		cmocka_unit_test(test_compression),
		cmocka_unit_test(test_no_extensions),
		cmocka_unit_test(test_extensions_block),
		cmocka_unit_test(test_duplicate_extensions),
		cmocka_unit_test(test_sni_basic),
		cmocka_unit_test(test_sni_empty_labels),
		cmocka_unit_test(test_sni_bytes),
		cmocka_unit_test(test_sni_structure),
		cmocka_unit_test(test_alpn),
		cmocka_unit_test(test_alpn_structure),
		cmocka_unit_test(test_supported_versions),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_tiny_records_limit),
		cmocka_unit_test(test_out_reset_on_error),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
