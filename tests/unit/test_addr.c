/* Addresses and networks as written in a config: which spellings bind where,
 * which are refused (and why), and which clients an allow/deny rule covers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

/* ---- helpers ------------------------------------------------------------ */

struct parsed {
	struct sockaddr_storage ss;
	socklen_t len;
	bool wildcard;
};

static struct parsed parse_ok(const char *s)
{
	struct parsed p;
	const char *why = NULL;
	int rc;
	memset(&p, 0xa5, sizeof(p));
	rc = addr_parse(s, &p.ss, &p.len, &p.wildcard, &why);
	if (rc != 0)
		fail_msg("addr_parse(\"%s\") refused: %s", s, why ? why : "(no reason)");
	return p;
}

/* Refused, with a reason that contains `reason`. */
static void parse_bad(const char *s, const char *reason)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	bool wc = false;
	const char *why = NULL;
	int rc = addr_parse(s, &ss, &len, &wc, &why);
	if (rc != -EINVAL)
		fail_msg("addr_parse(\"%s\") = %d, expected -EINVAL", s ? s : "(null)", rc);
	if (!why)
		fail_msg("addr_parse(\"%s\") gave no reason", s ? s : "(null)");
	if (!strstr(why, reason))
		fail_msg("addr_parse(\"%s\"): reason \"%s\" does not contain \"%s\"",
			 s ? s : "(null)", why, reason);
}

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
	return a;
}

static struct sockaddr_in6 v6(const char *ip, uint16_t port)
{
	struct sockaddr_in6 a;
	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
	return a;
}

static struct cidr cidr_ok(const char *s)
{
	struct cidr c;
	const char *why = NULL;
	int rc = cidr_parse(s, &c, &why);
	if (rc != 0)
		fail_msg("cidr_parse(\"%s\") refused: %s", s, why ? why : "(no reason)");
	return c;
}

static void cidr_bad(const char *s, const char *reason)
{
	struct cidr c;
	const char *why = NULL;
	int rc = cidr_parse(s, &c, &why);
	if (rc != -EINVAL)
		fail_msg("cidr_parse(\"%s\") = %d, expected -EINVAL", s, rc);
	if (!why || !strstr(why, reason))
		fail_msg("cidr_parse(\"%s\"): reason \"%s\" does not contain \"%s\"", s,
			 why ? why : "(none)", reason);
}

/* Does the network `net` cover the client at `ip` (IPv4 or IPv6 text)? */
static bool covers(const char *net, const char *ip)
{
	struct cidr c = cidr_ok(net);
	if (strchr(ip, ':')) {
		struct sockaddr_in6 a = v6(ip, 40000);
		return cidr_match(&c, (struct sockaddr *)&a);
	} else {
		struct sockaddr_in a = v4(ip, 40000);
		return cidr_match(&c, (struct sockaddr *)&a);
	}
}

#define assert_covers(net, ip) \
	do { if (!covers(net, ip)) fail_msg("%s should cover %s", net, ip); } while (0)
#define assert_not_covers(net, ip) \
	do { if (covers(net, ip)) fail_msg("%s should not cover %s", net, ip); } while (0)

/* ---- addr_parse: accepted ------------------------------------------------ */

static void test_parse_ipv4(void **state)
{
	struct parsed p = parse_ok("127.0.0.1:8080");
	struct sockaddr_in *a = (struct sockaddr_in *)&p.ss;
	struct sockaddr_in want = v4("127.0.0.1", 8080);
	(void)state;
	assert_int_equal(a->sin_family, AF_INET);
	assert_int_equal(p.len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(a->sin_port), 8080);
	assert_int_equal(a->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_false(p.wildcard);
	/* Exactly the bytes bind() will get, padding included. */
	assert_memory_equal(a, &want, sizeof(want));

	p = parse_ok("192.0.2.10:1");
	assert_int_equal(ntohs(((struct sockaddr_in *)&p.ss)->sin_port), 1);
	p = parse_ok("10.1.2.3:65535");
	assert_int_equal(ntohs(((struct sockaddr_in *)&p.ss)->sin_port), 65535);
	assert_false(p.wildcard);
}

static void test_parse_ipv6(void **state)
{
	struct parsed p = parse_ok("[::1]:8080");
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&p.ss;
	struct sockaddr_in6 want = v6("::1", 8080);
	(void)state;
	assert_int_equal(a->sin6_family, AF_INET6);
	assert_int_equal(p.len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(a->sin6_port), 8080);
	assert_true(IN6_IS_ADDR_LOOPBACK(&a->sin6_addr));
	assert_false(p.wildcard);
	assert_memory_equal(a, &want, sizeof(want));

	p = parse_ok("[2001:db8::1]:443");
	a = (struct sockaddr_in6 *)&p.ss;
	want = v6("2001:db8::1", 443);
	assert_int_equal(a->sin6_family, AF_INET6);
	assert_int_equal(ntohs(a->sin6_port), 443);
	assert_memory_equal(&a->sin6_addr, &want.sin6_addr, 16);
	assert_false(p.wildcard);

	p = parse_ok("[2001:0db8:0000:0000:0000:0000:0000:0001]:443");
	assert_memory_equal(&((struct sockaddr_in6 *)&p.ss)->sin6_addr, &want.sin6_addr, 16);
}

static void test_parse_wildcards(void **state)
{
	struct parsed p;
	(void)state;

	p = parse_ok(":8080");     /* every IPv4 interface */
	assert_true(p.wildcard);
	assert_int_equal(p.ss.ss_family, AF_INET);
	assert_int_equal(p.len, sizeof(struct sockaddr_in));
	assert_int_equal(((struct sockaddr_in *)&p.ss)->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(ntohs(((struct sockaddr_in *)&p.ss)->sin_port), 8080);

	p = parse_ok("0.0.0.0:80");
	assert_true(p.wildcard);
	assert_int_equal(p.ss.ss_family, AF_INET);

	p = parse_ok("[::]:80");
	assert_true(p.wildcard);
	assert_int_equal(p.ss.ss_family, AF_INET6);
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&p.ss)->sin6_addr));

	p = parse_ok("[0:0:0:0:0:0:0:0]:80");
	assert_true(p.wildcard);

	/* Close to a wildcard is not a wildcard. */
	assert_false(parse_ok("0.0.0.1:80").wildcard);
	assert_false(parse_ok("[::2]:80").wildcard);
}

/* ---- addr_parse: refused ------------------------------------------------- */

static void test_parse_bad_port(void **state)
{
	(void)state;
	parse_bad("127.0.0.1:0", "the port must be a number from 1 to 65535");
	parse_bad("127.0.0.1:65536", "the port must be a number from 1 to 65535");
	parse_bad("127.0.0.1:99999999999999999999", "from 1 to 65535");
	parse_bad("127.0.0.1:", "from 1 to 65535");
	parse_bad("127.0.0.1:http", "from 1 to 65535");
	parse_bad("127.0.0.1:-1", "from 1 to 65535");
	parse_bad("127.0.0.1:+80", "from 1 to 65535");
	parse_bad("127.0.0.1: 80", "from 1 to 65535");
	parse_bad("127.0.0.1:80 ", "from 1 to 65535");
	parse_bad("127.0.0.1:0x50", "from 1 to 65535");
	parse_bad("[::1]:0", "from 1 to 65535");
	parse_bad("[::1]:65536", "from 1 to 65535");
	parse_bad("[::1]:", "from 1 to 65535");
	parse_bad("[::1]:https", "from 1 to 65535");
	parse_bad(":0", "from 1 to 65535");
}

static void test_parse_missing_port(void **state)
{
	static const char expected[] = "expected IPV4:PORT, [IPV6]:PORT or :PORT";
	(void)state;
	parse_bad("127.0.0.1", expected);
	parse_bad("[::1]", expected);
	parse_bad("[::1]8080", expected);
	parse_bad("[::1", expected);
	parse_bad("[]:80", expected);
	parse_bad("", expected);
	parse_bad(NULL, expected);
}

/* No DNS, ever: a name is refused with a hint to write the number. */
static void test_parse_hostnames_refused(void **state)
{
	(void)state;
	parse_bad("localhost:80", "host names are not resolved; write 127.0.0.1, not localhost");
	parse_bad("example.com:443", "not a numeric IPv4 address");
	parse_bad("[localhost]:80", "not a numeric IPv6 address (host names are not resolved)");
	parse_bad("[fe80::1%eth0]:80", "not a numeric IPv6 address");
	parse_bad("127.1:80", "not a numeric IPv4 address");     /* no inet_aton shorthands */
	parse_bad("256.0.0.1:80", "not a numeric IPv4 address");
	parse_bad("1.2.3.4.5:80", "not a numeric IPv4 address");
	parse_bad(" 127.0.0.1:80", "not a numeric IPv4 address");
	parse_bad("[127.0.0.1]:80", "not a numeric IPv6 address");
}

static void test_parse_ipv6_needs_brackets(void **state)
{
	static const char hint[] = "IPv6 addresses need brackets: [2001:db8::1]:443";
	(void)state;
	parse_bad("::1:8080", hint);
	parse_bad("2001:db8::1:443", hint);
	parse_bad("::8080", hint);
	parse_bad("fe80::1:80", hint);
}

/* ---- formatting ---------------------------------------------------------- */

static void test_format_round_trip(void **state)
{
	static const char *const canon[] = {
		"127.0.0.1:8080", "0.0.0.0:80", "10.255.0.1:65535", "192.0.2.1:1",
		"[::1]:8080", "[2001:db8::1]:443", "[::]:80", "[fe80::1:2:3:4]:9",
	};
	char buf[ADDR_STRLEN];
	(void)state;
	for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
		struct parsed p = parse_ok(canon[i]);
		struct parsed q;
		addr_format((struct sockaddr *)&p.ss, buf, sizeof(buf));
		assert_string_equal(buf, canon[i]);
		/* And what is printed parses back to the same socket address. */
		q = parse_ok(buf);
		assert_int_equal(q.len, p.len);
		assert_memory_equal(&q.ss, &p.ss, p.len);
	}
}

static void test_format_canonical(void **state)
{
	char buf[ADDR_STRLEN];
	struct parsed p;
	(void)state;
	p = parse_ok(":8080");
	assert_string_equal(addr_format((struct sockaddr *)&p.ss, buf, sizeof(buf)), "0.0.0.0:8080");
	p = parse_ok("[2001:0DB8:0:0:0:0:0:0001]:443");
	assert_string_equal(addr_format((struct sockaddr *)&p.ss, buf, sizeof(buf)), "[2001:db8::1]:443");
	p = parse_ok("127.0.0.1:08080");
	assert_string_equal(addr_format((struct sockaddr *)&p.ss, buf, sizeof(buf)), "127.0.0.1:8080");
	/* The longest address fits ADDR_STRLEN. */
	p = parse_ok("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535");
	assert_string_equal(addr_format((struct sockaddr *)&p.ss, buf, sizeof(buf)),
			    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535");
	p = parse_ok("[::1]:8080");
	assert_string_equal(addr_format_host((struct sockaddr *)&p.ss, buf, sizeof(buf)), "::1");
	p = parse_ok("10.0.0.7:8080");
	assert_string_equal(addr_format_host((struct sockaddr *)&p.ss, buf, sizeof(buf)), "10.0.0.7");
}

/* A client seen over IPv4 and the same client seen as ::ffff:a.b.c.d on a
 * dual-stack socket hash the same (source_hash, maglev). */
static void test_addr_key(void **state)
{
	struct sockaddr_in a4 = v4("10.1.2.3", 1000);
	struct sockaddr_in6 m6 = v6("::ffff:10.1.2.3", 2000);
	struct sockaddr_in6 p6 = v6("2001:db8::1", 1000);
	struct sockaddr_un un;
	uint8_t k1[16], k2[16], k3[16];
	(void)state;
	assert_int_equal(addr_key((struct sockaddr *)&a4, k1), 4);
	assert_int_equal(addr_key((struct sockaddr *)&m6, k2), 4);
	assert_memory_equal(k1, k2, 4);
	assert_memory_equal(k1, &a4.sin_addr, 4);
	assert_int_equal(addr_key((struct sockaddr *)&p6, k3), 16);
	assert_memory_equal(k3, &p6.sin6_addr, 16);
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_int_equal(addr_key((struct sockaddr *)&un, k3), 0);
}

/* ---- cidr_parse ---------------------------------------------------------- */

static void test_cidr_parse_ok(void **state)
{
	struct cidr c;
	static const uint8_t net10[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0 };
	static const uint8_t host[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 10 };
	static const uint8_t db8[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	(void)state;

	/* IPv4 networks are stored as IPv4-mapped IPv6, prefix + 96. */
	c = cidr_ok("10.0.0.0/8");
	assert_int_equal(c.bits, 104);
	assert_memory_equal(c.net, net10, 16);
	c = cidr_ok("192.168.1.10");
	assert_int_equal(c.bits, 128);
	assert_memory_equal(c.net, host, 16);
	c = cidr_ok("192.168.1.10/32");
	assert_int_equal(c.bits, 128);
	c = cidr_ok("0.0.0.0/0");
	assert_int_equal(c.bits, 96);

	c = cidr_ok("2001:db8::/32");
	assert_int_equal(c.bits, 32);
	assert_memory_equal(c.net, db8, 16);
	c = cidr_ok("::1");
	assert_int_equal(c.bits, 128);
	c = cidr_ok("::/0");
	assert_int_equal(c.bits, 0);
	c = cidr_ok("2001:db8::1/128");
	assert_int_equal(c.bits, 128);
	c = cidr_ok("10.128.0.0/9");
	assert_int_equal(c.bits, 105);
}

static void test_cidr_parse_bad(void **state)
{
	static const char expected[] = "expected a network like 10.0.0.0/8, 2001:db8::/32 or a single address";
	(void)state;
	cidr_bad("10.0.0.0/33", "an IPv4 prefix length is 0 to 32");
	cidr_bad("10.0.0.0/99999999999999999999999", "an IPv4 prefix length is 0 to 32");
	cidr_bad("2001:db8::/129", "an IPv6 prefix length is 0 to 128");
	cidr_bad("10.0.0.1/8", "bits set beyond the prefix length");
	cidr_bad("11.0.0.0/7", "bits set beyond the prefix length");
	cidr_bad("2001:db8::1/32", "bits set beyond the prefix length");
	cidr_bad("0.0.0.1/0", "bits set beyond the prefix length");
	cidr_bad("", expected);
	cidr_bad("/8", expected);
	cidr_bad("10.0.0.0/", expected);
	cidr_bad("10.0.0.0/x", expected);
	cidr_bad("10.0.0.0/-1", expected);
	cidr_bad("10.0.0.0/+8", expected);
	cidr_bad("10.0.0.0/8/8", expected);
	cidr_bad("10.0.0/24", expected);
	cidr_bad("localhost", expected);
	cidr_bad("[::1]/128", expected);
	cidr_bad("fe80::1%eth0", expected);
	cidr_bad("10.0.0.0 /8", expected);
}

/* ---- cidr_match ---------------------------------------------------------- */

static void test_match_ipv4(void **state)
{
	(void)state;
	assert_covers("10.0.0.0/8", "10.1.2.3");
	assert_covers("10.0.0.0/8", "10.255.255.255");
	assert_not_covers("10.0.0.0/8", "11.0.0.0");
	assert_not_covers("10.0.0.0/8", "9.255.255.255");
	/* Prefixes that do not end on a byte. */
	assert_covers("10.128.0.0/9", "10.200.1.1");
	assert_not_covers("10.128.0.0/9", "10.1.1.1");
	assert_covers("192.168.1.8/29", "192.168.1.15");
	assert_not_covers("192.168.1.8/29", "192.168.1.16");
	/* A bare address is that one host. */
	assert_covers("192.168.1.10", "192.168.1.10");
	assert_not_covers("192.168.1.10", "192.168.1.11");
	/* /0 is every IPv4 client. */
	assert_covers("0.0.0.0/0", "1.2.3.4");
	assert_covers("0.0.0.0/0", "255.255.255.255");
}

/* An IPv4 client accepted on a dual-stack IPv6 socket shows up as
 * ::ffff:a.b.c.d and must still be matched by IPv4 rules. */
static void test_match_ipv4_mapped(void **state)
{
	(void)state;
	assert_covers("10.0.0.0/8", "::ffff:10.1.2.3");
	assert_not_covers("10.0.0.0/8", "::ffff:11.1.2.3");
	assert_covers("192.168.1.10", "::ffff:192.168.1.10");
	assert_covers("127.0.0.0/8", "::ffff:127.0.0.1");
	assert_covers("0.0.0.0/0", "::ffff:8.8.8.8");
	/* The mapped form written as a rule matches plain IPv4 clients. */
	assert_covers("::ffff:10.0.0.0/104", "10.9.9.9");
}

static void test_match_ipv4_vs_ipv6(void **state)
{
	(void)state;
	/* IPv4 rules never cover real IPv6 clients, even /0 ... */
	assert_not_covers("0.0.0.0/0", "::1");
	assert_not_covers("0.0.0.0/0", "2001:db8::1");
	assert_not_covers("127.0.0.0/8", "::1");
	/* ... nor the deprecated IPv4-compatible form, which is IPv6. */
	assert_not_covers("10.0.0.0/8", "::10.1.2.3");
	/* IPv6 rules do not cover IPv4 clients they do not name. */
	assert_not_covers("::1", "127.0.0.1");
	assert_not_covers("2001:db8::/32", "10.1.2.3");
}

static void test_match_ipv6(void **state)
{
	(void)state;
	assert_covers("2001:db8::/32", "2001:db8:1::5");
	assert_covers("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_not_covers("2001:db8::/32", "2001:db9::");
	assert_not_covers("2001:db8::/32", "2001:db7:ffff::1");
	assert_covers("2001:db8:8000::/33", "2001:db8:ffff::1");
	assert_not_covers("2001:db8:8000::/33", "2001:db8:7fff::1");
	assert_covers("::1", "::1");
	assert_not_covers("::1", "::2");
	assert_covers("fe80::/10", "febf::1");
	assert_not_covers("fe80::/10", "fec0::1");
	assert_covers("::/0", "2001:db8::1");
	assert_covers("::/0", "::1");
	assert_covers("2001:db8::/127", "2001:db8::1");
	assert_not_covers("2001:db8::/127", "2001:db8::2");
}

static void test_match_other_family(void **state)
{
	struct cidr c = cidr_ok("0.0.0.0/0");
	struct cidr all6 = cidr_ok("::/0");
	struct sockaddr_un un;
	(void)state;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_false(cidr_match(&c, (struct sockaddr *)&un));
	assert_false(cidr_match(&all6, (struct sockaddr *)&un));
}

static void test_list_match(void **state)
{
	struct cidr rules[3];
	struct cidr_list l = { rules, 0 };
	struct sockaddr_in a = v4("10.1.2.3", 5000), b = v4("172.16.0.1", 5000), o = v4("8.8.8.8", 53);
	struct sockaddr_in6 c = v6("2001:db8::7", 5000), d = v6("2001:db9::7", 5000);
	struct sockaddr_in6 m = v6("::ffff:172.16.5.5", 5000);
	(void)state;

	/* An empty list matches nobody. */
	assert_false(cidr_list_match(&l, (struct sockaddr *)&a));
	assert_false(cidr_list_match(&l, (struct sockaddr *)&c));

	rules[0] = cidr_ok("10.0.0.0/8");
	rules[1] = cidr_ok("2001:db8::/32");
	rules[2] = cidr_ok("172.16.0.0/12");
	l.n = 3;
	assert_true(cidr_list_match(&l, (struct sockaddr *)&a));
	assert_true(cidr_list_match(&l, (struct sockaddr *)&b));
	assert_true(cidr_list_match(&l, (struct sockaddr *)&c));
	assert_true(cidr_list_match(&l, (struct sockaddr *)&m));
	assert_false(cidr_list_match(&l, (struct sockaddr *)&d));
	assert_false(cidr_list_match(&l, (struct sockaddr *)&o));

	/* Only the first n rules count. */
	l.n = 1;
	assert_true(cidr_list_match(&l, (struct sockaddr *)&a));
	assert_false(cidr_list_match(&l, (struct sockaddr *)&c));
	assert_false(cidr_list_match(&l, (struct sockaddr *)&b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ipv4),
		cmocka_unit_test(test_parse_ipv6),
		cmocka_unit_test(test_parse_wildcards),
		cmocka_unit_test(test_parse_bad_port),
		cmocka_unit_test(test_parse_missing_port),
		cmocka_unit_test(test_parse_hostnames_refused),
		cmocka_unit_test(test_parse_ipv6_needs_brackets),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_format_canonical),
		cmocka_unit_test(test_addr_key),
		cmocka_unit_test(test_cidr_parse_ok),
		cmocka_unit_test(test_cidr_parse_bad),
		cmocka_unit_test(test_match_ipv4),
		cmocka_unit_test(test_match_ipv4_mapped),
		cmocka_unit_test(test_match_ipv4_vs_ipv6),
		cmocka_unit_test(test_match_ipv6),
		cmocka_unit_test(test_match_other_family),
		cmocka_unit_test(test_list_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
