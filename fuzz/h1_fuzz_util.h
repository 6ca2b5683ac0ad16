/* Checks shared by the h1 request and response fuzz drivers. */
#ifndef FULCRUM_H1_FUZZ_UTIL_H
#define FULCRUM_H1_FUZZ_UTIL_H

#include "h1.h"

#include <string.h>

static inline bool tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static inline bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static inline bool name_is(const struct h1_field *f, const char *lc)
{
	size_t n = strlen(lc);
	if (f->name_len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = f->name[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (c != lc[i])
			return false;
	}
	return true;
}

static inline uint64_t hash(const uint8_t *d, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 1099511628211ULL;
	return h;
}

#endif
