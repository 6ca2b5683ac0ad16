/* libFuzzer driver for h1_chunked_feed. Besides not crashing:
 *  - the input fed whole, in pieces of sizes drawn from a hash of the
 *    input, and one byte at a time gives the same outcome: the same number
 *    of body bytes and done, or an error each way;
 *  - consumed <= len; short of len only when the body is done; after done
 *    nothing more is consumed, after an error nothing more is accepted;
 *  - a body found complete walks the same under a naive reader (sizes, data,
 *    CRLF, trailer lines up to the empty one): the two agree on its end;
 *  - h1_chunked_decode, in pieces, consumes what h1_chunked_feed does, fails
 *    where it fails, never mixes framing and data in one call, and hands
 *    out exactly the data the naive reader finds. */
#include "h1.h"

#include <stdlib.h>
#include <string.h>

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The end of the chunked body at buf[0..), as a reader that trusts the
 * framing finds it; 0 when it cannot. Its data is copied to out (room for
 * len bytes) when out is not NULL, and counted in *out_len. */
static size_t naive_end(const char *buf, size_t len, char *out, size_t *out_len)
{
	size_t p = 0;
	const char *lf;

	for (;;) {
		uint64_t sz = 0;
		int d;
		size_t start = p;
		while (p < len && (d = hexval((unsigned char)buf[p])) >= 0) {
			if (sz >> 59)
				return 0;
			sz = sz * 16 + (uint64_t)d;
			p++;
		}
		if (p == start)
			return 0;
		lf = memchr(buf + p, '\n', len - p);
		if (!lf)
			return 0;
		p = (size_t)(lf - buf) + 1;
		if (sz == 0)
			break;
		if (sz > len - p || len - p - sz < 2)
			return 0;
		if (out)
			memcpy(out + *out_len, buf + p, sz);
		if (out_len)
			*out_len += sz;
		p += sz;
		if (buf[p] != '\r' || buf[p + 1] != '\n')
			return 0;
		p += 2;
	}
	for (;;) {
		size_t start = p;
		lf = memchr(buf + p, '\n', len - p);
		if (!lf)
			return 0;
		p = (size_t)(lf - buf) + 1;
		if (p - start == 2)
			return p;
	}
}

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Feed in pieces; step 0 = sizes from the generator. Returns the total body
 * bytes, or -400. */
static int64_t feed(const char *buf, size_t len, size_t step, uint64_t seed, bool *done)
{
	struct h1_chunked c = { 0 };
	const char *why = NULL;
	size_t i = 0;
	int64_t total = 0;

	while (i < len && !c.done) {
		size_t k = step ? step : 1 + (size_t)(next(&seed) % 64);
		char *p;
		int64_t rc;
		if (k > len - i)
			k = len - i;
		p = malloc(k);
		if (!p)
			abort();
		memcpy(p, buf + i, k);
		rc = h1_chunked_feed(&c, p, k, &why);
		free(p);
		if (rc < 0) {
			if (rc != -400 || !why || !*why)
				abort();
			/* an error sticks */
			if (h1_chunked_feed(&c, "0\r\n\r\n", 5, &why) != -400)
				abort();
			*done = false;
			return rc;
		}
		if ((size_t)rc > k || ((size_t)rc < k && !c.done))
			abort();
		total += rc;
		i += k;
	}
	if (c.done && h1_chunked_feed(&c, "5\r\n", 3, &why) != 0)
		abort();
	*done = c.done;
	return total;
}

/* Decode in pieces drawn from the generator; returns bytes consumed or
 * -400, and the data in out (room for len bytes). */
static int64_t decode(const char *buf, size_t len, uint64_t seed, bool *done, char *out,
		      size_t *out_len)
{
	struct h1_chunked c = { 0 };
	const char *why = NULL;
	size_t i = 0;

	*out_len = 0;
	while (i < len && !c.done) {
		size_t k = 1 + (size_t)(next(&seed) % 64), data;
		if (k > len - i)
			k = len - i;
		int64_t rc = h1_chunked_decode(&c, buf + i, k, &data, &why);
		if (rc < 0) {
			if (rc != -400 || !why || !*why)
				abort();
			*done = false;
			return rc;
		}
		if ((size_t)rc > k || (data && (size_t)rc != data))
			abort();
		/* no progress only at the end of the body */
		if (rc == 0 && !c.done)
			abort();
		memcpy(out + *out_len, buf + i, data);
		*out_len += data;
		i += (size_t)rc;
	}
	if (*out_len != c.data_bytes)
		abort();
	*done = c.done;
	return (int64_t)i;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	bool done, done2;
	int64_t whole, other;

	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 1099511628211ULL;
	if (!seed)
		seed = 1;

	whole = feed(buf, size, size ? size : 1, 0, &done);
	if (whole >= 0) {
		if ((uint64_t)whole > size || (!done && (size_t)whole != size))
			abort();
		if (done) {
			if (whole < 5 || memcmp(buf + whole - 4, "\r\n\r\n", 4) != 0)
				abort();
			if (naive_end(buf, (size_t)whole, NULL, NULL) != (size_t)whole)
				abort();
		}
	}
	other = feed(buf, size, 0, seed, &done2);
	if (other != whole || done2 != done)
		abort();
	if (size <= 2048) {
		other = feed(buf, size, 1, 0, &done2);
		if (other != whole || done2 != done)
			abort();
	}
	char *got = malloc(size + 1), *want = malloc(size + 1);
	size_t got_len, want_len = 0;
	if (!got || !want)
		abort();
	other = decode(buf, size, seed ^ 0x5bd1e995, &done2, got, &got_len);
	if ((whole < 0) != (other < 0) || done2 != done)
		abort();
	if (whole >= 0 && other != whole)
		abort();
	if (done && (naive_end(buf, (size_t)whole, want, &want_len) != (size_t)whole ||
		     want_len != got_len || memcmp(want, got, got_len) != 0))
		abort();
	free(got);
	free(want);
	return 0;
}
