#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int parse_uint(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* Split "123abc" into its digits and its suffix. */
static int split_number(const char *s, uint64_t *num, const char **suffix)
{
	char digits[24];
	size_t n = strspn(s, "0123456789");
	if (n == 0 || n >= sizeof(digits))
		return n == 0 ? -EINVAL : -ERANGE;
	memcpy(digits, s, n);
	digits[n] = '\0';
	*suffix = s + n;
	return parse_uint(digits, num);
}

static int scale(uint64_t v, uint64_t mul, uint64_t *out)
{
	if (mul && v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

int parse_duration_ms(const char *s, uint64_t *out)
{
	static const struct { const char *unit; uint64_t mul; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	uint64_t v;
	const char *suffix;
	int rc = split_number(s ? s : "", &v, &suffix);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < ARRAY_LEN(units); i++)
		if (strcmp(suffix, units[i].unit) == 0)
			return scale(v, units[i].mul, out);
	return -EINVAL;
}

int parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	const char *suffix;
	int rc = split_number(s ? s : "", &v, &suffix);
	if (rc < 0)
		return rc;
	uint64_t mul;
	switch (suffix[0]) {
	case '\0': mul = 1; break;
	case 'k': case 'K': mul = 1024ULL; break;
	case 'm': case 'M': mul = 1024ULL * 1024; break;
	case 'g': case 'G': mul = 1024ULL * 1024 * 1024; break;
	default: return -EINVAL;
	}
	if (mul > 1 && suffix[1] != '\0')
		return -EINVAL;
	return scale(v, mul, out);
}

char *fmt_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms && ms % 3600000 == 0)
		snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms && ms % 60000 == 0)
		snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
	else if (ms && ms % 1000 == 0)
		snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(buf, len, "%llums", (unsigned long long)ms);
	return buf;
}

bool name_matches(const char *pat, const char *name, size_t len)
{
	if (pat[0] == '*' && pat[1] == '.') {
		size_t plen = strlen(pat + 1);  /* ".example.com" */
		return len > plen && strncasecmp(name + len - plen, pat + 1, plen) == 0;
	}
	return strlen(pat) == len && strncasecmp(name, pat, len) == 0;
}

char *read_whole_file(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, got;
	if (!f)
		return NULL;
	do {
		if (cap - n < 4096)
			buf = xrealloc(buf, cap = cap ? cap * 2 : 8192);
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0 && n <= max);
	if (ferror(f) || n > max) {
		int e = ferror(f) ? EIO : EFBIG;
		fclose(f);
		free(buf);
		errno = e;
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}
