#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int addr_parse_port(const char *p, uint16_t *port, const char **why)
{
	char *end;
	long v;
	if (!*p || strspn(p, "0123456789") != strlen(p)) {
		*why = "the port must be a number from 1 to 65535";
		return -EINVAL;
	}
	v = strtol(p, &end, 10);
	if (v < 1 || v > 65535) {
		*why = "the port must be a number from 1 to 65535";
		return -EINVAL;
	}
	*port = (uint16_t)v;
	return 0;
}

int addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
	       bool *wildcard, const char **why)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port;
	uint16_t p;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	*why = "expected IPV4:PORT, [IPV6]:PORT or :PORT, e.g. 127.0.0.1:8080 or [::1]:8080";
	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
		if (!close || close[1] != ':')
			return -EINVAL;
		hl = (size_t)(close - s - 1);
		if (hl == 0 || hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		if (addr_parse_port(close + 2, &p, why) < 0)
			return -EINVAL;
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
			*why = "not a numeric IPv6 address (host names are not resolved)";
			return -EINVAL;
		}
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(p);
		*len = sizeof(*a6);
		*wildcard = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
		return 0;
	}
	port = strrchr(s, ':');
	if (!port)
		return -EINVAL;
	if (strchr(s, ':') != port) {
		*why = "IPv6 addresses need brackets: [2001:db8::1]:443";
		return -EINVAL;
	}
	hl = (size_t)(port - s);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (addr_parse_port(port + 1, &p, why) < 0)
		return -EINVAL;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	a4->sin_family = AF_INET;
	a4->sin_port = htons(p);
	*len = sizeof(*a4);
	if (hl == 0) {
		a4->sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
		*why = "not a numeric IPv4 address (host names are not resolved; "
		       "write 127.0.0.1, not localhost)";
		return -EINVAL;
	}
	*wildcard = a4->sin_addr.s_addr == htonl(INADDR_ANY);
	return 0;
}

char *addr_format_host(const struct sockaddr *sa, char *buf, size_t len)
{
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)len);
	else
		snprintf(buf, len, "unix");
	return buf;
}

char *addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	addr_format_host(sa, host, sizeof(host));
	if (sa->sa_family == AF_INET)
		snprintf(buf, len, "%s:%u", host, ntohs(((const struct sockaddr_in *)sa)->sin_port));
	else if (sa->sa_family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", host, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
	else
		snprintf(buf, len, "%s", host);
	return buf;
}

/* The address as 16 bytes of IPv6, IPv4 mapped into ::ffff:0:0/96. */
static bool to_v6(const struct sockaddr *sa, uint8_t out[16])
{
	if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return true;
	}
	if (sa->sa_family == AF_INET) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	return false;
}

size_t addr_key(const struct sockaddr *sa, uint8_t out[16])
{
	uint8_t v6[16];
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (!to_v6(sa, v6))
		return 0;
	if (memcmp(v6, mapped, 12) == 0) {
		memcpy(out, v6 + 12, 4);
		return 4;
	}
	memcpy(out, v6, 16);
	return 16;
}

int cidr_parse(const char *s, struct cidr *out, const char **why)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long bits, maxbits;
	struct in_addr a4;
	bool v4;

	*why = "expected a network like 10.0.0.0/8, 2001:db8::/32 or a single address";
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, &a4) == 1) {
		v4 = true;
		out->net[10] = out->net[11] = 0xff;
		memcpy(out->net + 12, &a4, 4);
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, out->net) == 1) {
		v4 = false;
		maxbits = 128;
	} else {
		return -EINVAL;
	}
	bits = maxbits;
	if (slash) {
		char *end;
		if (!slash[1] || strspn(slash + 1, "0123456789") != strlen(slash + 1))
			return -EINVAL;
		bits = strtoul(slash + 1, &end, 10);
		if (bits > maxbits) {
			*why = v4 ? "an IPv4 prefix length is 0 to 32" : "an IPv6 prefix length is 0 to 128";
			return -EINVAL;
		}
	}
	out->bits = (uint8_t)(v4 ? bits + 96 : bits);
	for (unsigned i = out->bits; i < 128; i++) {
		if (out->net[i / 8] & (0x80 >> (i % 8))) {
			*why = "the address has bits set beyond the prefix length "
			       "(write the network address, e.g. 10.0.0.0/8)";
			return -EINVAL;
		}
	}
	return 0;
}

bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	uint8_t a[16];
	unsigned full, rest;
	if (!to_v6(sa, a))
		return false;
	full = c->bits / 8;
	rest = c->bits % 8;
	if (memcmp(a, c->net, full) != 0)
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((a[full] & mask) != (c->net[full] & mask))
			return false;
	}
	return true;
}

bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	for (size_t i = 0; i < l->n; i++)
		if (cidr_match(&l->v[i], sa))
			return true;
	return false;
}
