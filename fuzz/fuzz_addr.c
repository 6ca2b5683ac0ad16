/* libFuzzer driver for the small text parsers a config is made of: socket
 * addresses, CIDR networks, durations and sizes. Besides not crashing, what
 * is printed back must parse back to the same value. */
#include "addr.h"
#include "util.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_addr(const char *s)
{
	struct sockaddr_storage ss, ss2;
	socklen_t len, len2;
	bool wc, wc2;
	const char *why = NULL;
	char buf[ADDR_STRLEN], host[ADDR_STRLEN];
	uint8_t key[16];

	if (addr_parse(s, &ss, &len, &wc, &why) < 0) {
		if (!why || !*why)
			abort();
		return;
	}
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
		abort();
	addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
	addr_format_host((struct sockaddr *)&ss, host, sizeof(host));
	if (addr_parse(buf, &ss2, &len2, &wc2, &why) < 0)
		abort();
	if (len2 != len || wc2 != wc || memcmp(&ss, &ss2, len) != 0)
		abort();
	if (addr_key((struct sockaddr *)&ss, key) == 0)
		abort();
}

static void fuzz_cidr(const char *s)
{
	struct cidr c;
	const char *why = NULL;
	struct sockaddr_in6 a6;
	struct sockaddr_in a4;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (cidr_parse(s, &c, &why) < 0) {
		if (!why || !*why)
			abort();
		return;
	}
	if (c.bits > 128)
		abort();
	/* The network's own address is inside it, in both spellings. */
	memset(&a6, 0, sizeof(a6));
	a6.sin6_family = AF_INET6;
	memcpy(&a6.sin6_addr, c.net, 16);
	if (!cidr_match(&c, (struct sockaddr *)&a6))
		abort();
	if (memcmp(c.net, mapped, 12) == 0 && c.bits >= 96) {
		memset(&a4, 0, sizeof(a4));
		a4.sin_family = AF_INET;
		memcpy(&a4.sin_addr, c.net + 12, 4);
		if (!cidr_match(&c, (struct sockaddr *)&a4))
			abort();
	}
}

static void fuzz_numbers(const char *s)
{
	uint64_t v, v2;
	char buf[32];

	if (parse_duration_ms(s, &v) == 0) {
		if (parse_duration_ms(fmt_duration(v, buf, sizeof(buf)), &v2) != 0 || v2 != v)
			abort();
	}
	if (parse_size(s, &v) == 0 && strspn(s, "0123456789") == strlen(s)) {
		if (parse_uint(s, &v2) != 0 || v2 != v)
			abort();
	}
	(void)parse_uint(s, &v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_addr(s);
	fuzz_cidr(s);
	fuzz_numbers(s);
	free(s);
	return 0;
}
