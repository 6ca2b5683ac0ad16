/* Socket addresses and CIDR lists. Parsing is numeric only: no DNS, ever, so
 * a config means the same thing on every machine and loading never blocks. */
#ifndef FULCRUM_ADDR_H
#define FULCRUM_ADDR_H

#include "common.h"
#include <sys/socket.h>

#define ADDR_STRLEN 64  /* "[ffff:...]:65535" fits */

/* Parse "1.2.3.4:80", "[::1]:80" or ":80" (every IPv4 interface).
 * On success returns 0 and fills *ss and *len; *wildcard tells whether the
 * address is 0.0.0.0 or ::. On failure returns -EINVAL and points *why at a
 * static explanation. */
int addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
	       bool *wildcard, const char **why);

/* A port, "1" to "65535" in decimal digits only: 0, or -EINVAL with *why
 * set. */
int addr_parse_port(const char *p, uint16_t *port, const char **why);

/* "1.2.3.4:80" or "[::1]:80" into buf (ADDR_STRLEN); returns buf. */
char *addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* Only the host part, no port, no brackets. */
char *addr_format_host(const struct sockaddr *sa, char *buf, size_t len);

/* Bytes identifying a client host (4 for IPv4 and IPv4-mapped IPv6, 16 for
 * IPv6), for hashing. Returns the length written into out[16]. */
size_t addr_key(const struct sockaddr *sa, uint8_t out[16]);

/* A network, always stored as IPv6: IPv4 networks become ::ffff:a.b.c.d/96+n
 * so IPv4 clients accepted on dual-stack sockets match IPv4 rules. */
struct cidr {
	uint8_t net[16];
	uint8_t bits;
};

struct cidr_list {
	struct cidr *v;
	size_t n;
};

/* Parse "10.0.0.0/8", "2001:db8::/32" or a bare address (a host).
 * Returns 0 or -EINVAL with *why set. Host bits beyond the prefix are
 * refused ("10.0.0.1/8"), as they usually mean a typo. */
int cidr_parse(const char *s, struct cidr *out, const char **why);
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);
bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);

#endif
