/* libFuzzer driver for tls_hello_parse. Besides not crashing:
 *  - the return is a count in 1..min(len, TLS_HELLO_READ_MAX), FL_AGAIN
 *    (only while fewer than TLS_HELLO_READ_MAX bytes are given), -EPROTO
 *    (only when the first record header is not TLS), -EBADMSG or -EMSGSIZE;
 *  - a parsed hello is sane: sni_len == strlen(sni), the name is lower-case
 *    printable ASCII without an empty label or a trailing dot, alpn_first
 *    is terminated and printable and empty without ALPN, the version is
 *    3.x; on any other return the struct is empty;
 *  - the returned prefix parses again to the same result, and every shorter
 *    prefix gives FL_AGAIN, or the same error when the whole input is bad;
 *  - the handshake message carried by the input's records, rewrapped in one
 *    record and in records of sizes drawn from a hash of the input, gives
 *    the same outcome both ways (and the input's own when that parsed), so
 *    the record walk never changes what the message says. */
#include "tls_hello.h"

#include <stdlib.h>
#include <string.h>

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Parse from an exact-size heap copy so ASan sees any over-read. */
static int parse(const uint8_t *p, size_t n, struct tls_hello *h)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	if (!copy)
		abort();
	if (n)
		memcpy(copy, p, n);
	memset(h, 'x', sizeof(*h));
	rc = tls_hello_parse(copy, n, h);
	free(copy);
	return rc;
}

static void check_hello(const struct tls_hello *h, int rc)
{
	size_t alen;

	if (rc <= 0) {
		if (h->sni[0] || h->sni_len || h->version || h->has_alpn || h->alpn_first[0])
			abort();
		return;
	}
	if (h->sni_len > TLS_HELLO_NAME_MAX || h->sni[h->sni_len] != '\0' ||
	    strlen(h->sni) != h->sni_len)
		abort();
	for (size_t i = 0; i < h->sni_len; i++) {
		unsigned char c = (unsigned char)h->sni[i];
		if (c < 0x21 || c > 0x7e || (c >= 'A' && c <= 'Z'))
			abort();
	}
	if (h->sni_len && (h->sni[0] == '.' || h->sni[h->sni_len - 1] == '.' ||
			   strstr(h->sni, "..")))
		abort();
	alen = strnlen(h->alpn_first, sizeof(h->alpn_first));
	if (alen == sizeof(h->alpn_first) || (!h->has_alpn && alen) || (h->has_alpn && !alen))
		abort();
	for (size_t i = 0; i < alen; i++)
		if (h->alpn_first[i] < 0x20 || h->alpn_first[i] > 0x7e)
			abort();
	if (h->version >> 8 != 3)
		abort();
}

static bool same(const struct tls_hello *a, const struct tls_hello *b)
{
	return a->sni_len == b->sni_len && strcmp(a->sni, b->sni) == 0 &&
	       a->version == b->version && a->has_alpn == b->has_alpn &&
	       strcmp(a->alpn_first, b->alpn_first) == 0;
}

/* The handshake message bytes the input's records carry, read naively: up
 * to the length its header declares, or what there is. */
static size_t extract(const uint8_t *d, size_t n, uint8_t *m, size_t cap)
{
	size_t off = 0, k = 0;

	while (n - off >= 5) {
		size_t rl = (size_t)d[off + 3] << 8 | d[off + 4];
		size_t take = rl < n - off - 5 ? rl : n - off - 5;
		if (take > cap - k)
			take = cap - k;
		memcpy(m + k, d + off + 5, take);
		k += take;
		off += 5 + rl;
		if (k >= 4) {
			size_t want = 4 + ((size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3]);
			if (k >= want)
				return want;
		}
		if (off > n || k == cap)
			break;
	}
	return k;
}

/* Wrap m[0..n) in records: one (step 0) or of sizes from the generator. */
static size_t wrap(const uint8_t *m, size_t n, uint8_t *out, uint64_t seed, bool one,
		   size_t *nrec)
{
	size_t off = 0, k = 0;

	*nrec = 0;
	do {
		size_t r = one ? n - off : 1 + (size_t)(next(&seed) % 300);
		if (r > n - off)
			r = n - off;
		out[k++] = 22;
		out[k++] = 3;
		out[k++] = (uint8_t)(next(&seed) % 5);
		out[k++] = (uint8_t)(r >> 8);
		out[k++] = (uint8_t)r;
		memcpy(out + k, m + off, r);
		k += r;
		off += r;
		(*nrec)++;
	} while (off < n);
	return k;
}

static void rewrap(const uint8_t *data, size_t size, int rc, const struct tls_hello *h,
		   uint64_t seed)
{
	static uint8_t m[TLS_HELLO_READ_MAX], one[TLS_HELLO_READ_MAX + 5];
	static uint8_t many[TLS_HELLO_READ_MAX * 6 + 5];
	struct tls_hello h1, h2;
	size_t mlen, n1, n2, r1, r2;
	int rc1, rc2;

	mlen = extract(data, size, m, sizeof(m));
	if (mlen == 0)
		return;
	n1 = wrap(m, mlen, one, seed, true, &r1);
	n2 = wrap(m, mlen, many, seed, false, &r2);
	rc1 = parse(one, n1, &h1);
	rc2 = parse(many, n2, &h2);
	check_hello(&h1, rc1);
	check_hello(&h2, rc2);
	/* A hello the input carried parses the same in one record, where the
	 * headers take the least room. */
	if (rc > 0 && (rc1 != (int)n1 || !same(h, &h1)))
		abort();
	if (rc1 == -EPROTO || rc2 == -EPROTO)
		abort();
	/* Record headers count against the size limit; otherwise the
	 * message alone decides. */
	if (rc1 == -EMSGSIZE || rc2 == -EMSGSIZE)
		return;
	if (rc1 > 0) {
		if (rc1 != (int)n1 || rc2 != (int)n2 || !same(&h1, &h2))
			abort();
	} else if (rc1 != rc2) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_hello h, t;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	size_t upto;
	int rc, r;

	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 1099511628211ULL;
	if (!seed)
		seed = 1;

	rc = parse(data, size, &h);
	check_hello(&h, rc);
	if (rc > 0) {
		if ((size_t)rc > size || rc > TLS_HELLO_READ_MAX)
			abort();
		r = parse(data, (size_t)rc, &t);
		if (r != rc || !same(&h, &t))
			abort();
	} else if (rc == FL_AGAIN) {
		if (size >= TLS_HELLO_READ_MAX)
			abort();
	} else if (rc == -EPROTO) {
		if (size == 0 || (data[0] == 22 && (size < 2 || data[1] == 3) &&
				  (size < 3 || data[2] <= 4)))
			abort();
	} else if (rc != -EBADMSG && rc != -EMSGSIZE) {
		abort();
	}
	if (strlen(tls_hello_strerror(rc)) == 0)
		abort();

	/* Shorter prefixes: all of them for small inputs; both ends and a
	 * random spread for larger ones, so a run stays fast. */
	upto = rc > 0 ? (size_t)rc : size;
	for (size_t k = 0; k < upto; k++) {
		if (upto > 128 && k >= 32 && k < upto - 32 && next(&seed) % (upto / 32))
			continue;
		r = parse(data, k, &t);
		check_hello(&t, r);
		if (r != FL_AGAIN && (rc > 0 || r != rc))
			abort();
	}

	rewrap(data, size, rc, &h, seed);
	return 0;
}
