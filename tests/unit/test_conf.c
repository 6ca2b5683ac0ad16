/* Config loader: what a good file turns into (defaults included), and the
 * exact lines `fulcrum check` prints for a bad one. The error lines are the
 * user interface here, so they are compared whole. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_NAME "t.yaml"

/* ---- helpers ------------------------------------------------------------ */

static struct config *load(const char *yaml, struct conf_errors *e)
{
	memset(e, 0, sizeof(*e));
	return conf_load_string(yaml, strlen(yaml), FILE_NAME, e);
}

static void print_lines(const char *what, char **v, size_t n)
{
	fprintf(stderr, "%s (%zu):\n", what, n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "  %s\n", v[i]);
}

/* The config must load without errors; `nwarn` warnings are expected. */
static struct config *load_ok_warn(const char *yaml, size_t nwarn)
{
	struct conf_errors e;
	struct config *cfg = load(yaml, &e);
	if (!cfg || e.n || e.nwarn != nwarn) {
		print_lines("errors", e.v, e.n);
		print_lines("warnings", e.warn, e.nwarn);
		conf_errors_free(&e);
		conf_free(cfg);
		fail_msg("expected the config to load with %zu warning(s)", nwarn);
	}
	conf_errors_free(&e);
	return cfg;
}

static struct config *load_ok(const char *yaml)
{
	return load_ok_warn(yaml, 0);
}

static size_t count(const char *const *v)
{
	size_t n = 0;
	while (v[n])
		n++;
	return n;
}

static bool same_lines(char **got, size_t ngot, const char *const *want)
{
	if (ngot != count(want))
		return false;
	for (size_t i = 0; i < ngot; i++)
		if (strcmp(got[i], want[i]) != 0)
			return false;
	return true;
}

/* Loading must fail (or, with `loads`, succeed) with exactly these error
 * lines (in this order) and exactly these warnings. Both lists end with
 * NULL. */
static void expect_lines(const char *yaml, bool loads, const char *const *errors,
			 const char *const *warnings)
{
	struct conf_errors e;
	struct config *cfg = load(yaml, &e);
	bool ok = (cfg != NULL) == loads && same_lines(e.v, e.n, errors) &&
		  same_lines(e.warn, e.nwarn, warnings);
	if (!ok) {
		fprintf(stderr, "config %s\n", cfg ? "LOADED" : "refused");
		print_lines("got errors", e.v, e.n);
		print_lines("wanted errors", (char **)errors, count(errors));
		print_lines("got warnings", e.warn, e.nwarn);
		print_lines("wanted warnings", (char **)warnings, count(warnings));
	}
	conf_free(cfg);
	conf_errors_free(&e);
	if (!ok)
		fail_msg("the errors are not the expected ones");
}

static void expect_problems(const char *yaml, const char *const *errors, const char *const *warnings)
{
	expect_lines(yaml, false, errors, warnings);
}

#define LINES(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })
#define EXPECT_ERRORS(yaml, ...) expect_problems(yaml, LINES(__VA_ARGS__), NONE)
#define EXPECT_WARNINGS(yaml, ...) expect_lines(yaml, true, NONE, LINES(__VA_ARGS__))

static const char *ip4_text(const struct conf_addr *a, char *buf)
{
	const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
	assert_int_equal(s->sin_family, AF_INET);
	return inet_ntop(AF_INET, &s->sin_addr, buf, INET_ADDRSTRLEN);
}

static uint16_t port_of(const struct conf_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

static bool cidrs_match_ip(const struct cidr_list *l, const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	}
	return cidr_list_match(l, (struct sockaddr *)&ss);
}

static const char minimal[] =
	"listeners:\n"
	"  - name: web\n"
	"    bind: 127.0.0.1:8080\n"
	"    pool: app\n"
	"pools:\n"
	"  - name: app\n"
	"    servers:\n"
	"      - address: 127.0.0.1:9001\n";

/* ---- good configs -------------------------------------------------------- */

static void test_minimal_defaults(void **state)
{
	struct config *cfg = load_ok(minimal);
	struct conf_listener *l;
	struct conf_pool *p;
	char buf[INET_ADDRSTRLEN];
	(void)state;

	assert_string_equal(cfg->path, FILE_NAME);
	assert_int_equal(cfg->global.workers, 0);            /* auto */
	assert_int_equal(cfg->global.max_connections, 0);    /* auto */
	assert_int_equal(cfg->global.drain_timeout, 30000);
	assert_int_equal(cfg->global.log.level, LOG_INFO);
	assert_int_equal(cfg->global.log.format, LOGF_TEXT);
	assert_string_equal(cfg->global.log.access, "stdout");
	assert_string_equal(cfg->global.log.error, "stderr");

	assert_int_equal(cfg->nlisteners, 1);
	l = &cfg->listeners[0];
	assert_string_equal(l->name, "web");
	assert_int_equal(l->protocol, PROTO_TCP);
	assert_int_equal(l->nbinds, 1);
	assert_string_equal(l->binds[0].text, "127.0.0.1:8080");
	assert_string_equal(ip4_text(&l->binds[0], buf), "127.0.0.1");
	assert_int_equal(port_of(&l->binds[0]), 8080);
	assert_false(l->binds[0].wildcard);
	assert_false(l->public_);
	assert_int_equal(l->allow.n, 0);
	assert_int_equal(l->deny.n, 0);
	assert_int_equal(l->max_connections, 0);
	assert_int_equal(l->backlog, 511);
	assert_int_equal(l->forwarding, FWD_AUTO);
	assert_int_equal(l->timeouts.connect, 5000);
	assert_int_equal(l->timeouts.client_idle, 60000);
	assert_int_equal(l->timeouts.server_idle, 60000);
	assert_string_equal(l->pool_name, "app");

	assert_int_equal(cfg->npools, 1);
	p = &cfg->pools[0];
	assert_ptr_equal(l->pool, p);
	assert_string_equal(p->name, "app");
	assert_int_equal(p->protocol, PROTO_TCP);
	assert_int_equal(p->algorithm, LB_ROUND_ROBIN);
	assert_int_equal(p->retries, 0);                      /* auto: 1 server - 1 */
	assert_int_equal(p->nservers, 1);
	assert_string_equal(p->servers[0].addr.text, "127.0.0.1:9001");
	assert_int_equal(port_of(&p->servers[0].addr), 9001);
	assert_int_equal(p->servers[0].weight, 1);
	assert_false(p->servers[0].backup);
	conf_free(cfg);
}

/* A timeouts section that sets one key still gets the other defaults. */
static void test_partial_sections_get_defaults(void **state)
{
	struct config *cfg = load_ok(
		"global:\n"
		"  log: { format: json }\n"
		"listeners:\n"
		"  - name: web\n"
		"    bind: 127.0.0.1:8080\n"
		"    pool: app\n"
		"    timeouts: { connect: 250ms }\n"
		"pools:\n"
		"  - name: app\n"
		"    servers:\n"
		"      - address: 127.0.0.1:9001\n");
	(void)state;
	assert_int_equal(cfg->global.log.format, LOGF_JSON);
	assert_int_equal(cfg->global.log.level, LOG_INFO);
	assert_string_equal(cfg->global.log.access, "stdout");
	assert_string_equal(cfg->global.log.error, "stderr");
	assert_int_equal(cfg->global.workers, 0);
	assert_int_equal(cfg->listeners[0].timeouts.connect, 250);
	assert_int_equal(cfg->listeners[0].timeouts.client_idle, 60000);
	assert_int_equal(cfg->listeners[0].timeouts.server_idle, 60000);
	conf_free(cfg);
}

static void test_every_key_set(void **state)
{
	struct config *cfg = load_ok_warn(
		"global:\n"
		"  workers: 4\n"
		"  max_connections: 5000\n"
		"  drain_timeout: 2m\n"
		"  log: { level: debug, format: json, access: /var/log/a.log, error: /var/log/e.log }\n"
		"listeners:\n"
		"  - name: web\n"
		"    bind: [\"127.0.0.1:8080\", \"[::1]:8443\"]\n"
		"    protocol: tcp\n"
		"    public: false\n"
		"    allow: [10.0.0.0/8, \"2001:db8::/32\"]\n"
		"    deny: 10.66.0.0/16\n"
		"    pool: api\n"
		"    max_connections: 100\n"
		"    backlog: 1024\n"
		"    forwarding: buffer\n"
		"    timeouts: { connect: 500ms, client_idle: 1h, server_idle: 90s }\n"
		"pools:\n"
		"  - name: other\n"
		"    servers: [{ address: 127.0.0.1:9000 }]\n"
		"  - name: api\n"
		"    protocol: tcp\n"
		"    algorithm: maglev\n"
		"    retries: 7\n"
		"    servers:\n"
		"      - { address: 127.0.0.1:9001, weight: 0 }\n"
		"      - { address: \"[::1]:9002\", weight: 1000, backup: true }\n", 1);
	struct conf_listener *l;
	struct conf_pool *p;
	struct sockaddr_in6 *b6;
	(void)state;

	/* "other" is not used: one warning, but the config loads. */
	l = &cfg->listeners[0];
	p = &cfg->pools[1];
	assert_int_equal(cfg->global.workers, 4);
	assert_int_equal(cfg->global.max_connections, 5000);
	assert_int_equal(cfg->global.drain_timeout, 120000);
	assert_int_equal(cfg->global.log.level, LOG_DEBUG);
	assert_int_equal(cfg->global.log.format, LOGF_JSON);
	assert_string_equal(cfg->global.log.access, "/var/log/a.log");
	assert_string_equal(cfg->global.log.error, "/var/log/e.log");

	assert_int_equal(l->nbinds, 2);
	assert_string_equal(l->binds[1].text, "[::1]:8443");
	b6 = (struct sockaddr_in6 *)&l->binds[1].ss;
	assert_int_equal(b6->sin6_family, AF_INET6);
	assert_true(IN6_IS_ADDR_LOOPBACK(&b6->sin6_addr));
	assert_int_equal(port_of(&l->binds[1]), 8443);
	assert_int_equal(l->allow.n, 2);
	assert_int_equal(l->deny.n, 1);
	assert_true(cidrs_match_ip(&l->allow, "10.66.1.1"));
	assert_true(cidrs_match_ip(&l->allow, "2001:db8::5"));
	assert_false(cidrs_match_ip(&l->allow, "192.168.0.1"));
	assert_true(cidrs_match_ip(&l->deny, "10.66.1.1"));
	assert_false(cidrs_match_ip(&l->deny, "10.67.1.1"));
	assert_int_equal(l->max_connections, 100);
	assert_int_equal(l->backlog, 1024);
	assert_int_equal(l->forwarding, FWD_BUFFER);
	assert_int_equal(l->timeouts.connect, 500);
	assert_int_equal(l->timeouts.client_idle, 3600000);
	assert_int_equal(l->timeouts.server_idle, 90000);
	assert_ptr_equal(l->pool, p);

	assert_int_equal(p->algorithm, LB_MAGLEV);
	assert_int_equal(p->retries, 7);
	assert_int_equal(p->nservers, 2);
	assert_int_equal(p->servers[0].weight, 0);
	assert_false(p->servers[0].backup);
	assert_int_equal(p->servers[1].weight, 1000);
	assert_true(p->servers[1].backup);
	assert_int_equal(p->servers[1].addr.ss.ss_family, AF_INET6);
	conf_free(cfg);
}

static void test_unused_pool_warns(void **state)
{
	(void)state;
	EXPECT_WARNINGS(
		"listeners:\n"
		"  - { name: web, bind: 127.0.0.1:8080, pool: app }\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n"
		"  - { name: spare, servers: [{ address: 127.0.0.1:9002 }] }\n",
		"t.yaml:5:13: warning: pool \"spare\" is not used by any listener");
}

static void test_retries_auto(void **state)
{
	struct config *cfg = load_ok(
		"listeners:\n"
		"  - { name: a, bind: 127.0.0.1:8080, pool: one }\n"
		"  - { name: b, bind: 127.0.0.1:8081, pool: three }\n"
		"  - { name: c, bind: 127.0.0.1:8082, pool: zero }\n"
		"  - { name: d, bind: 127.0.0.1:8083, pool: auto }\n"
		"pools:\n"
		"  - name: one\n"
		"    servers: [{ address: 127.0.0.1:9001 }]\n"
		"  - name: three\n"
		"    servers:\n"
		"      - address: 127.0.0.1:9001\n"
		"      - address: 127.0.0.1:9002\n"
		"      - { address: 127.0.0.1:9003, backup: true }\n"
		"  - name: zero\n"
		"    retries: 0\n"
		"    servers: [{ address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 }]\n"
		"  - name: auto\n"
		"    retries: auto\n"
		"    servers: [{ address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 }]\n");
	(void)state;
	assert_int_equal(cfg->pools[0].retries, 0);
	assert_int_equal(cfg->pools[1].retries, 2);
	assert_int_equal(cfg->pools[2].retries, 0);
	assert_int_equal(cfg->pools[3].retries, 1);
	assert_true(cfg->pools[1].servers[2].backup);
	conf_free(cfg);
}

static void test_algorithms(void **state)
{
	static const struct { const char *name; int algo; } algos[] = {
		{ "round_robin", LB_ROUND_ROBIN }, { "least_connections", LB_LEAST_CONN },
		{ "random_two", LB_RANDOM_TWO }, { "source_hash", LB_SOURCE_HASH },
		{ "maglev", LB_MAGLEV },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
		char yaml[512];
		struct config *cfg;
		snprintf(yaml, sizeof(yaml),
			 "listeners: [{ name: web, bind: 127.0.0.1:8080, pool: app }]\n"
			 "pools: [{ name: app, algorithm: %s, servers: [{ address: 127.0.0.1:9001 }] }]\n",
			 algos[i].name);
		cfg = load_ok(yaml);
		assert_int_equal(cfg->pools[0].algorithm, algos[i].algo);
		conf_free(cfg);
	}
}

static void test_public_wildcard_accepted(void **state)
{
	struct config *cfg = load_ok(
		"listeners:\n"
		"  - name: web\n"
		"    bind: [\":8080\", \"0.0.0.0:8081\", \"[::]:8082\"]\n"
		"    public: true\n"
		"    pool: app\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n");
	(void)state;
	assert_true(cfg->listeners[0].public_);
	assert_int_equal(cfg->listeners[0].nbinds, 3);
	for (size_t i = 0; i < 3; i++)
		assert_true(cfg->listeners[0].binds[i].wildcard);
	assert_int_equal(cfg->listeners[0].binds[0].ss.ss_family, AF_INET);
	assert_int_equal(cfg->listeners[0].binds[2].ss.ss_family, AF_INET6);
	conf_free(cfg);
}

/* The same port on IPv4 and IPv6 wildcards is two different sockets. */
static void test_same_port_both_families(void **state)
{
	struct config *cfg = load_ok(
		"listeners:\n"
		"  - { name: a, bind: \"0.0.0.0:8080\", public: true, pool: app }\n"
		"  - { name: b, bind: \"[::]:8080\", public: true, pool: app }\n"
		"  - { name: c, bind: [\"127.0.0.1:9090\", \"[::1]:9090\"], pool: app }\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n");
	(void)state;
	assert_int_equal(cfg->nlisteners, 3);
	conf_free(cfg);
}

static void test_conf_load_file(void **state)
{
	char path[] = "/tmp/fulcrum-test-conf-XXXXXX";
	int fd = mkstemp(path);
	struct conf_errors e = { 0 };
	struct config *cfg;
	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, minimal, sizeof(minimal) - 1), (ssize_t)(sizeof(minimal) - 1));
	close(fd);
	cfg = conf_load(path, &e);
	unlink(path);
	assert_non_null(cfg);
	assert_int_equal(e.n, 0);
	assert_string_equal(cfg->path, path);
	assert_string_equal(cfg->listeners[0].name, "web");
	conf_free(cfg);
	conf_errors_free(&e);
}

static void test_conf_load_missing_file(void **state)
{
	struct conf_errors e = { 0 };
	struct config *cfg = conf_load("/nonexistent/fulcrum.yaml", &e);
	(void)state;
	assert_null(cfg);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.v[0], "/nonexistent/fulcrum.yaml:0:0: cannot read the config file: "
			    "No such file or directory");
	conf_errors_free(&e);
	assert_int_equal(e.n, 0);
	assert_null(e.v);
}

/* ---- bad configs: one class of mistake each ------------------------------ */

static void test_unknown_key(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"global:\n"
		"  wrokers: 4\n"
		"listeners:\n"
		"  - name: web\n"
		"    bind: 127.0.0.1:8080\n"
		"    pool: app\n"
		"    max_conections: 100\n"
		"pools:\n"
		"  - name: app\n"
		"    servers:\n"
		"      - address: 127.0.0.1:9001\n"
		"        colour: blue\n",
		"t.yaml:2:3: global: unknown key \"wrokers\"; did you mean \"workers\"? "
		"(valid keys here: workers, max_connections, drain_timeout, batch_sends, log)",
		"t.yaml:7:5: listeners[0]: unknown key \"max_conections\"; did you mean \"max_connections\"? "
		"(valid keys here: name, bind, protocol, public, allow, deny, pool, routes, limits, trusted_proxies, forwarded, normalize_path, escaped_slashes, underscore_fields, error_pages, max_connections, "
		"backlog, tcp_congestion, forwarding, timeouts, tls, tls_passthrough)",
		"t.yaml:12:9: pools[0].servers[0]: unknown key \"colour\" "
		"(valid keys here: address, weight, backup, state)");
}

/* A misspelt required section: the suggestion, and the missing section. */
static void test_http_keys_on_tcp_listener_warn(void **state)
{
	(void)state;
	EXPECT_WARNINGS(
		"listeners:\n"
		"  - { name: raw, bind: 127.0.0.1:8080, pool: app, escaped_slashes: reject }\n"
		"  - { name: both, bind: 127.0.0.1:8081, pool: app, forwarded: true,\n"
		"      normalize_path: false }\n"
		"  - { name: web, bind: 127.0.0.1:8082, protocol: http, pool: web,\n"
		"      escaped_slashes: reject, forwarded: true }\n"
		"  - { name: pt, bind: 127.0.0.1:8083, tls_passthrough: true, pool: app,\n"
		"      normalize_path: true, limits: { fields: 10 } }\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n"
		"  - { name: web, protocol: http, servers: [{ address: 127.0.0.1:9002 }] }\n",
		"t.yaml:2:5: warning: listeners[0]: escaped_slashes only changes how HTTP is handled; "
		"a tcp listener does not read HTTP, so it does nothing here",
		"t.yaml:3:5: warning: listeners[1]: forwarded, normalize_path only change how HTTP is "
		"handled; a tcp listener does not read HTTP, so they do nothing here",
		"t.yaml:7:5: warning: listeners[3]: limits, normalize_path only change how HTTP is "
		"handled; a tcp listener does not read HTTP, so they do nothing here");
}

static void test_unknown_top_level_key(void **state)
{
	(void)state;
	expect_problems(
		"listener:\n"
		"  - name: web\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n",
		LINES("t.yaml:1:1: unknown key \"listener\"; did you mean \"listeners\"? "
		      "(valid keys here: global, listeners, pools)",
		      "t.yaml:1:1: listeners: missing; this key is required here"),
		LINES("t.yaml:4:13: warning: pool \"app\" is not used by any listener"));
}

static void test_wrong_type(void **state)
{
	(void)state;
	expect_problems(
		"global:\n"
		"  workers: [1, 2]\n"
		"  log: stdout\n"
		"listeners:\n"
		"  - name: web\n"
		"    bind: 127.0.0.1:8080\n"
		"    pool: [app]\n"
		"    timeouts: [5s]\n"
		"pools:\n"
		"  - name: app\n"
		"    servers: 127.0.0.1:9001\n",
		LINES("t.yaml:2:12: global.workers: expected a single value, got a list",
		      "t.yaml:3:8: global.log: expected a mapping (key: value lines), got a single value",
		      "t.yaml:7:11: listeners[0].pool: expected a single value, got a list",
		      "t.yaml:8:15: listeners[0].timeouts: expected a mapping (key: value lines), got a list",
		      "t.yaml:11:14: pools[0].servers: expected a list (lines starting with '- '), "
		      "got a single value"),
		LINES("t.yaml:10:11: warning: pool \"app\" is not used by any listener"));
}

static void test_wrong_type_in_lists(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - name: web\n"
		"    bind: [127.0.0.1:8080, [127.0.0.1:8081]]\n"
		"    allow: { net: 10.0.0.0/8 }\n"
		"    pool: app\n"
		"  - web\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: [127.0.0.1:9001] }] }\n",
		"t.yaml:3:28: listeners[0].bind[1]: expected a single value, got a list",
		"t.yaml:4:12: listeners[0].allow: expected one value or a list of values, got a mapping",
		"t.yaml:6:5: listeners[1]: expected a mapping (key: value lines), got a single value",
		"t.yaml:8:39: pools[0].servers[0].address: expected a single value, got a list");
}

static void test_out_of_range(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"global:\n"
		"  workers: 0\n"
		"  max_connections: 10000001\n"
		"listeners:\n"
		"  - name: web\n"
		"    bind: 127.0.0.1:8080\n"
		"    pool: app\n"
		"    backlog: 70000\n"
		"    max_connections: -1\n"
		"pools:\n"
		"  - name: app\n"
		"    retries: 1001\n"
		"    servers:\n"
		"      - { address: 127.0.0.1:9001, weight: 1001 }\n"
		"      - { address: 127.0.0.1:9002, weight: 99999999999999999999999 }\n",
		"t.yaml:2:12: global.workers: expected auto or a whole number from 1 to 256, got \"0\"",
		"t.yaml:3:20: global.max_connections: expected auto or a whole number from 1 to 10000000, "
		"got \"10000001\"",
		"t.yaml:8:14: listeners[0].backlog: expected a whole number from 1 to 65535, got \"70000\"",
		"t.yaml:9:22: listeners[0].max_connections: expected a whole number from 0 to 10000000, "
		"got \"-1\"",
		"t.yaml:12:14: pools[0].retries: expected auto or a whole number from 0 to 1000, got \"1001\"",
		"t.yaml:14:44: pools[0].servers[0].weight: expected a whole number from 0 to 1000, got \"1001\"",
		"t.yaml:15:44: pools[0].servers[1].weight: expected a whole number from 0 to 1000, "
		"got \"99999999999999999999999\"");
}

static void test_bad_duration(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"global:\n"
		"  drain_timeout: 30\n"
		"listeners:\n"
		"  - name: web\n"
		"    bind: 127.0.0.1:8080\n"
		"    pool: app\n"
		"    timeouts:\n"
		"      connect: 5 s\n"
		"      client_idle: 5S\n"
		"      server_idle: 0s\n"
		"  - name: api\n"
		"    bind: 127.0.0.1:8081\n"
		"    pool: app\n"
		"    timeouts: { connect: 2h, client_idle: -1s, server_idle: 1.5s }\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n",
		"t.yaml:2:18: global.drain_timeout: expected a duration from 0ms to 24h with a unit "
		"(ms, s, m, h), e.g. 500ms or 5s; got \"30\"",
		"t.yaml:8:16: listeners[0].timeouts.connect: expected a duration from 1ms to 1h with a unit "
		"(ms, s, m, h), e.g. 500ms or 5s; got \"5 s\"",
		"t.yaml:9:20: listeners[0].timeouts.client_idle: expected a duration from 1ms to 168h with a "
		"unit (ms, s, m, h), e.g. 500ms or 5s; got \"5S\"",
		"t.yaml:10:20: listeners[0].timeouts.server_idle: expected a duration from 1ms to 168h with a "
		"unit (ms, s, m, h), e.g. 500ms or 5s; got \"0s\"",
		"t.yaml:14:26: listeners[1].timeouts.connect: expected a duration from 1ms to 1h with a unit "
		"(ms, s, m, h), e.g. 500ms or 5s; got \"2h\"",
		"t.yaml:14:43: listeners[1].timeouts.client_idle: expected a duration from 1ms to 168h with a "
		"unit (ms, s, m, h), e.g. 500ms or 5s; got \"-1s\"",
		"t.yaml:14:61: listeners[1].timeouts.server_idle: expected a duration from 1ms to 168h with a "
		"unit (ms, s, m, h), e.g. 500ms or 5s; got \"1.5s\"");
}

static void test_bad_enum_bool_name(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"global:\n"
		"  log: { level: verbose, format: xml, access: \"\" }\n"
		"listeners:\n"
		"  - name: \"web server\"\n"
		"    bind: 127.0.0.1:8080\n"
		"    pool: app\n"
		"    public: yes\n"
		"    forwarding: splice\n"
		"pools:\n"
		"  - name: app\n"
		"    algorithm: fastest\n"
		"    servers: [{ address: 127.0.0.1:9001, backup: 1 }]\n",
		"t.yaml:2:17: global.log.level: \"verbose\" is not one of: error, warn, info, debug",
		"t.yaml:2:34: global.log.format: \"xml\" is not one of: text, json",
		"t.yaml:2:47: global.log.access: must not be empty",
		"t.yaml:4:11: listeners[0].name: \"web server\" is not a valid name: use 1 to 64 letters, "
		"digits, '-', '_' or '.'",
		"t.yaml:7:13: listeners[0].public: expected true or false, got \"yes\"",
		"t.yaml:8:17: listeners[0].forwarding: \"splice\" is not one of: auto, buffer",
		"t.yaml:11:16: pools[0].algorithm: \"fastest\" is not one of: round_robin, least_connections, "
		"random_two, source_hash, maglev",
		"t.yaml:12:50: pools[0].servers[0].backup: expected true or false, got \"1\"");
}

static void test_missing_required(void **state)
{
	(void)state;
	expect_problems(
		"listeners:\n"
		"  - {}\n"
		"pools:\n"
		"  - name: app\n"
		"    servers:\n"
		"      - weight: 2\n",
		LINES("t.yaml:2:5: listeners[0].name: missing; this key is required here",
		      "t.yaml:2:5: listeners[0].bind: missing; this key is required here",
		      "t.yaml:6:9: pools[0].servers[0].address: missing; this key is required here",
		      "t.yaml:2:5: listeners[0].pool: missing; a tcp listener needs a pool"),
		LINES("t.yaml:4:11: warning: pool \"app\" is not used by any listener"));
}

static void test_duplicate_listener_name(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - name: web\n"
		"    bind: 127.0.0.1:8080\n"
		"    pool: app\n"
		"  - name: web\n"
		"    bind: 127.0.0.1:8081\n"
		"    pool: app\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n",
		"t.yaml:5:11: listeners[1].name: duplicate listener name \"web\" (first defined at line 2); "
		"listener names must be unique");
}

static void test_duplicate_pool_name(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - { name: web, bind: 127.0.0.1:8080, pool: app }\n"
		"pools:\n"
		"  - name: app\n"
		"    servers: [{ address: 127.0.0.1:9001 }]\n"
		"  - name: app\n"
		"    servers: [{ address: 127.0.0.1:9002 }]\n",
		"t.yaml:6:11: pools[1].name: duplicate pool name \"app\" (first defined at line 4); "
		"pool names must be unique");
}

static void test_duplicate_addresses(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - { name: a, bind: [127.0.0.1:8080, 127.0.0.1:8080], pool: app }\n"
		"  - { name: b, bind: [\"[::1]:8080\", 127.0.0.1:8081], pool: app }\n"
		"  - { name: c, bind: [\"[::1]:8080\", 127.0.0.1:8081], pool: app }\n"
		"pools:\n"
		"  - name: app\n"
		"    servers:\n"
		"      - address: 127.0.0.1:9001\n"
		"      - address: 127.0.0.1:9002\n"
		"      - address: 127.0.0.1:9001\n",
		"t.yaml:10:18: pools[0].servers: server 127.0.0.1:9001 is listed twice; use weight to give it a "
		"larger share",
		"t.yaml:2:39: listeners[0].bind: address 127.0.0.1:8080 is already bound by listener \"a\"",
		"t.yaml:4:23: listeners[2].bind: address [::1]:8080 is already bound by listener \"b\"",
		"t.yaml:4:37: listeners[2].bind: address 127.0.0.1:8081 is already bound by listener \"b\"");
}

/* An address bound twice is one problem, reported once, even when the
 * first listener already lists it twice itself. */
static void test_duplicate_bind_reported_once(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - { name: a, bind: [127.0.0.1:8080, 127.0.0.1:8080], pool: app }\n"
		"  - { name: b, bind: [\"[::1]:8080\", 127.0.0.1:8080], pool: app }\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n",
		"t.yaml:2:39: listeners[0].bind: address 127.0.0.1:8080 is already bound by listener \"a\"",
		"t.yaml:3:37: listeners[1].bind: address 127.0.0.1:8080 is already bound by listener \"a\"");
}

static void test_empty_lists(void **state)
{
	(void)state;
	expect_problems(
		"listeners:\n"
		"  - { name: web, bind: [], pool: app }\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n"
		"  - { name: none, servers: [] }\n",
		LINES("t.yaml:5:5: pools[1].servers: the list is empty; a pool needs at least one server",
		      "t.yaml:2:24: listeners[0].bind: the list is empty; give at least one address"),
		LINES("t.yaml:5:13: warning: pool \"none\" is not used by any listener"));
}

static void test_missing_pool(void **state)
{
	(void)state;
	expect_problems(
		"listeners:\n"
		"  - { name: web, bind: 127.0.0.1:8080, pool: ap }\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n"
		"  - { name: api, servers: [{ address: 127.0.0.1:9002 }] }\n",
		LINES("t.yaml:2:46: listeners[0].pool: no pool is named \"ap\" (pools defined: app, api)"),
		LINES("t.yaml:4:13: warning: pool \"app\" is not used by any listener",
		      "t.yaml:5:13: warning: pool \"api\" is not used by any listener"));
	EXPECT_ERRORS(
		"listeners:\n"
		"  - { name: web, bind: 127.0.0.1:8080, pool: app }\n"
		"pools: []\n",
		"t.yaml:2:46: listeners[0].pool: no pool is named \"app\" (pools defined: none)");
}

/* One unparseable address is one problem, reported once. */
static void test_bad_address(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - name: web\n"
		"    bind: localhost:8080\n"
		"    pool: app\n"
		"pools:\n"
		"  - name: app\n"
		"    servers:\n"
		"      - address: \"::1:9001\"\n"
		"      - address: 127.0.0.1:0\n"
		"      - address: 127.0.0.1\n",
		"t.yaml:3:11: listeners[0].bind: \"localhost:8080\": not a numeric IPv4 address (host names "
		"are not resolved; write 127.0.0.1, not localhost)",
		"t.yaml:8:18: pools[0].servers[0].address: \"::1:9001\": IPv6 addresses need brackets: "
		"[2001:db8::1]:443",
		"t.yaml:9:18: pools[0].servers[1].address: \"127.0.0.1:0\": the port must be a number from "
		"1 to 65535",
		"t.yaml:10:18: pools[0].servers[2].address: \"127.0.0.1\": expected IPV4:PORT, [IPV6]:PORT "
		"or :PORT, e.g. 127.0.0.1:8080 or [::1]:8080");
}

/* An error inside a list names the entry where it is: the third entry is
 * [2], whatever happened to the entries before it. */
static void test_list_error_paths(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - name: web\n"
		"    bind: [\"[::1]\", 127.0.0.1:8080, \"127.0.0.1:http\"]\n"
		"    allow: [10.0.0.1/8, 127.0.0.0/8, \"::1/129\", 10.0.0.0/33]\n"
		"    pool: app\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n",
		"t.yaml:3:12: listeners[0].bind[0]: \"[::1]\": expected IPV4:PORT, [IPV6]:PORT or :PORT, "
		"e.g. 127.0.0.1:8080 or [::1]:8080",
		"t.yaml:3:37: listeners[0].bind[2]: \"127.0.0.1:http\": the port must be a number from "
		"1 to 65535",
		"t.yaml:4:13: listeners[0].allow[0]: \"10.0.0.1/8\": the address has bits set beyond the "
		"prefix length (write the network address, e.g. 10.0.0.0/8)",
		"t.yaml:4:38: listeners[0].allow[2]: \"::1/129\": an IPv6 prefix length is 0 to 128",
		"t.yaml:4:49: listeners[0].allow[3]: \"10.0.0.0/33\": an IPv4 prefix length is 0 to 32");
}

static void test_wildcard_needs_public(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - name: web\n"
		"    bind: [\":8080\", \"0.0.0.0:8081\", \"[::]:8082\", \"127.0.0.1:8083\"]\n"
		"    pool: app\n"
		"  - name: api\n"
		"    bind: 0.0.0.0:9090\n"
		"    public: false\n"
		"    pool: app\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n",
		"t.yaml:3:12: listeners[0].bind: bind :8080 is a wildcard address: it listens on every network "
		"interface, not only this machine's loopback. Add `public: true` to this listener if that "
		"is intended, or bind a specific address such as 127.0.0.1",
		"t.yaml:3:21: listeners[0].bind: bind 0.0.0.0:8081 is a wildcard address: it listens on every "
		"network interface, not only this machine's loopback. Add `public: true` to this listener "
		"if that is intended, or bind a specific address such as 127.0.0.1",
		"t.yaml:3:37: listeners[0].bind: bind [::]:8082 is a wildcard address: it listens on every "
		"network interface, not only this machine's loopback. Add `public: true` to this listener "
		"if that is intended, or bind a specific address such as 127.0.0.1",
		"t.yaml:6:11: listeners[1].bind: bind 0.0.0.0:9090 is a wildcard address: it listens on every "
		"network interface, not only this machine's loopback. Add `public: true` to this listener "
		"if that is intended, or bind a specific address such as 127.0.0.1");
}

/* An http listener and pool "p" with one server; the pool's keys follow. */
#define HTTP_POOL_YAML                                                          \
	"listeners:\n"                                                          \
	"  - { name: web, bind: 127.0.0.1:8080, protocol: http, pool: p }\n"    \
	"pools:\n"                                                              \
	"  - name: p\n"                                                         \
	"    protocol: http\n"                                                  \
	"    servers: [{ address: 127.0.0.1:9000 }]\n"

/* A health check's `host` becomes the checks' Host field: a name or
 * address with an optional port, nothing else. */
static void test_check_host(void **state)
{
	(void)state;
	static const char fmt[] = HTTP_POOL_YAML "    health_check: { type: http, host: \"%s\" }\n";
	static const char *const good[] = { "api.example.com", "api.example.com:8080", "10.0.0.1:80",
					    "[::1]", "[2001:db8::1]:443", "svc_a.local", NULL };
	static const char *const bad[] = { "a b", "api/x", "x:port", "x:0", "x:65536", ":80",
					   "[::1", "[]:80", "x:", "[::1]x", "a\\r\\nX-Evil: 1", NULL };
	char yaml[512];
	for (size_t i = 0; good[i]; i++) {
		snprintf(yaml, sizeof(yaml), fmt, good[i]);
		conf_free(load_ok(yaml));
	}
	for (size_t i = 0; bad[i]; i++) {
		struct conf_errors e;
		snprintf(yaml, sizeof(yaml), fmt, bad[i]);
		struct config *cfg = load(yaml, &e);
		bool refused = !cfg && e.n == 1 && strstr(e.v[0], "pools[0].health_check.host: \"") &&
			       strstr(e.v[0], "is not a host");
		if (!refused)
			print_lines(bad[i], e.v, e.n);
		conf_free(cfg);
		conf_errors_free(&e);
		if (!refused)
			fail_msg("host \"%s\" was not refused at its key", bad[i]);
	}
}

/* A key with a default that is given a bad value is reported, and the
 * checks that run after the keys (which report the rest in the same run)
 * see the default, not nothing: an empty expect_status crashed them. */
static void test_bad_value_of_defaulted_key(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"global:\n"
		"  log: { access: \"\", error: \"\" }\n"
		"listeners:\n"
		"  - { name: web, bind: 127.0.0.1:8080, protocol: http, pool: p, tcp_congestion: \"\" }\n"
		"pools:\n"
		"  - name: p\n"
		"    protocol: http\n"
		"    hash_key: \"\"\n"
		"    tcp_congestion: \"\"\n"
		"    servers: [{ address: 127.0.0.1:9000 }]\n"
		"    health_check:\n"
		"      type: http\n"
		"      expect_status: # nothing\n",
		"t.yaml:2:18: global.log.access: must not be empty",
		"t.yaml:2:29: global.log.error: must not be empty",
		"t.yaml:4:81: listeners[0].tcp_congestion: must not be empty",
		"t.yaml:8:15: pools[0].hash_key: must not be empty",
		"t.yaml:9:21: pools[0].tcp_congestion: must not be empty",
		"t.yaml:13:21: pools[0].health_check.expect_status: must not be empty");
}

/* reuse_limit only limits reuse: without reuse it does nothing, and says so. */
static void test_reuse_limit_without_reuse_warns(void **state)
{
	(void)state;
	EXPECT_WARNINGS(
		HTTP_POOL_YAML
		"    health_check: { type: http, reuse_connection: false,\n"
		"                    reuse_limit: 5 }\n",
		"t.yaml:8:34: warning: pools[0].health_check.reuse_limit: has no effect with "
		"`reuse_connection: false`: every check connects anew");
}

/* A config that check accepts must be one that can be served: an
 * IPv4-mapped IPv6 bind address cannot be bound on the IPv6-only sockets
 * fulcrum listens with (EINVAL at startup), so it must either be refused
 * or be turned into the IPv4 address it stands for. */
static void test_mapped_ipv6_bind(void **state)
{
	static const char *const binds[] = { "[::ffff:127.0.0.1]:8080", "[::ffff:0.0.0.0]:8080" };
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		char yaml[512];
		struct conf_errors e;
		struct config *cfg;
		snprintf(yaml, sizeof(yaml),
			 "listeners: [{ name: web, bind: \"%s\", pool: app }]\n"
			 "pools: [{ name: app, servers: [{ address: 127.0.0.1:9001 }] }]\n", binds[i]);
		cfg = load(yaml, &e);
		if (cfg) {
			int family = cfg->listeners[0].binds[0].ss.ss_family;
			conf_free(cfg);
			conf_errors_free(&e);
			if (family != AF_INET)
				fail_msg("bind %s passes the check but cannot be bound", binds[i]);
			/* Mapped any is still a wildcard. */
			if (i == 1)
				fail_msg("bind %s is a wildcard but was accepted without public: true",
					 binds[i]);
		} else {
			bool one = e.n == 1 && strstr(e.v[0], "t.yaml:1:32: listeners[0]") != NULL;
			if (!one)
				print_lines("errors", e.v, e.n);
			conf_errors_free(&e);
			assert_true(one);
		}
	}
}

static void test_protocol_pairing(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - name: web\n"
		"    bind: 127.0.0.1:8080\n"
		"    protocol: tcp\n"
		"    pool: app\n"
		"pools:\n"
		"  - name: app\n"
		"    protocol: http\n"
		"    servers: [{ address: 127.0.0.1:9001 }]\n",
		"t.yaml:5:11: listeners[0].pool: a tcp listener cannot use pool \"app\" of protocol http; allowed "
		"pairs (listener -> pool): tcp -> tcp, ssl -> tcp, udp -> udp, http -> http, https -> http "
		"or https");
	/* Allowed pairs are not pairing errors: ssl and https listeners only
	 * lack their certificates here, and udp is not available yet. */
	EXPECT_ERRORS(
		"listeners:\n"
		"  - { name: s, bind: 127.0.0.1:8443, protocol: ssl, pool: tcp }\n"
		"  - { name: h, bind: 127.0.0.1:8444, protocol: https, pool: web }\n"
		"  - { name: u, bind: 127.0.0.1:8445, protocol: udp, pool: tcp }\n"
		"pools:\n"
		"  - { name: tcp, servers: [{ address: 127.0.0.1:9001 }] }\n"
		"  - { name: web, protocol: https, servers: [{ address: 127.0.0.1:9002 }] }\n",
		"t.yaml:2:5: listeners[0].tls: missing; an ssl listener needs `tls` with at least one "
		"certificate: `tls: { certificates: [{ cert: site.pem, key: site.key }] }`",
		"t.yaml:3:5: listeners[1].tls: missing; an https listener needs `tls` with at least one "
		"certificate: `tls: { certificates: [{ cert: site.pem, key: site.key }] }`",
		"t.yaml:4:48: listeners[2].protocol: protocol udp is not available in this version of fulcrum; "
		"use tcp, ssl, http or https",
		"t.yaml:4:59: listeners[2].pool: a udp listener cannot use pool \"tcp\" of protocol tcp; allowed "
		"pairs (listener -> pool): tcp -> tcp, ssl -> tcp, udp -> udp, http -> http, https -> http "
		"or https");
}

static void test_duplicate_key(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - name: web\n"
		"    bind: 127.0.0.1:8080\n"
		"    pool: app\n"
		"    bind: 127.0.0.1:8081\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n"
		"pools:\n"
		"  - { name: other, servers: [{ address: 127.0.0.1:9002 }] }\n",
		"t.yaml:5:5: listeners[0].bind: duplicate key; each key may appear once",
		"t.yaml:8:1: pools: duplicate key; each key may appear once");
}

static void test_empty_file(void **state)
{
	static const char *const empties[] = { "", "\n\n", "# only a comment\n", "   \n" };
	(void)state;
	for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++)
		EXPECT_ERRORS(empties[i],
			      "t.yaml:1:1: the file is empty; a config needs at least `listeners:` and `pools:`");
}

static void test_not_a_mapping(void **state)
{
	(void)state;
	EXPECT_ERRORS("- listeners\n- pools\n",
		      "t.yaml:1:1: expected a mapping (key: value lines), got a list");
	EXPECT_ERRORS("hello\n", "t.yaml:1:1: expected a mapping (key: value lines), got a single value");
	EXPECT_ERRORS("? [a]\n: b\nlisteners: []\npools: []\n", "t.yaml:1:3: keys must be plain words",
		      "t.yaml:1:1: listeners: the list is empty; a config needs at least one listener");
}

static void test_yaml_syntax_error(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"listeners:\n"
		"  - name: web\n"
		"    bind: [127.0.0.1:8080\n"
		"    pool: app\n"
		"pools:\n"
		"  - { name: app, servers: [{ address: 127.0.0.1:9001 }] }\n",
		"t.yaml:4:9: not valid YAML: did not find expected ',' or ']' while parsing a flow sequence");
	EXPECT_ERRORS(
		"listeners:\n"
		"  - name: web\n"
		"   bind: 127.0.0.1:8080\n",
		"t.yaml:3:4: not valid YAML: did not find expected '-' indicator while parsing a block "
		"collection");
}

/* Bytes that are not text (a control character, a file saved as Latin-1)
 * are reported where they are, not at 1:1. */
static void test_yaml_encoding_error_location(void **state)
{
	char yaml[sizeof(minimal) + 16];
	struct conf_errors e;
	struct config *cfg;
	(void)state;
	EXPECT_ERRORS("listeners: [\x01]\n",
		      "t.yaml:1:13: not valid YAML: control characters are not allowed");
	snprintf(yaml, sizeof(yaml), "%s# caf\xe9\n", minimal);
	cfg = load(yaml, &e);
	assert_null(cfg);
	assert_int_equal(e.n, 1);
	if (strncmp(e.v[0], "t.yaml:9:6: not valid YAML: ", 28) != 0) {
		print_lines("errors", e.v, e.n);
		conf_errors_free(&e);
		fail_msg("the error is not located at the bad byte (9:6)");
	}
	conf_errors_free(&e);
}

/* A second YAML document ("---") is not silently ignored: whatever it holds
 * (here a syntax error, or more listeners) would otherwise never be seen. */
static void test_second_document_not_ignored(void **state)
{
	static const char *const docs[] = {
		"listeners: [{ name: web, bind: 127.0.0.1:8080, pool: app }]\n"
		"pools: [{ name: app, servers: [{ address: 127.0.0.1:9001 }] }]\n"
		"---\n"
		"listeners: [\n",
		"listeners: [{ name: web, bind: 127.0.0.1:8080, pool: app }]\n"
		"pools: [{ name: app, servers: [{ address: 127.0.0.1:9001 }] }]\n"
		"---\n"
		"listeners: [{ name: api, bind: 127.0.0.1:8081, pool: app }]\n",
	};
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct conf_errors e;
		struct config *cfg = load(docs[i], &e);
		bool located = e.n >= 1 && strncmp(e.v[0], "t.yaml:", 7) == 0;
		size_t n = cfg ? cfg->nlisteners : 0;
		bool loaded = cfg != NULL;
		conf_free(cfg);
		conf_errors_free(&e);
		if (loaded)
			fail_msg("a config with a second YAML document was accepted (%zu listener(s))", n);
		assert_true(located);
	}
}

/* Every problem of a file in one run: three problems, three lines. */
static void test_all_errors_reported(void **state)
{
	(void)state;
	EXPECT_ERRORS(
		"global:\n"
		"  workers: many\n"
		"listeners:\n"
		"  - name: web\n"
		"    bind: 127.0.0.1:8080\n"
		"    pool: app\n"
		"    timeouts: { connect: 5 }\n"
		"pools:\n"
		"  - name: app\n"
		"    algorithm: fastest\n"
		"    servers:\n"
		"      - address: 127.0.0.1:9001\n",
		"t.yaml:2:12: global.workers: expected auto or a whole number from 1 to 256, got \"many\"",
		"t.yaml:7:26: listeners[0].timeouts.connect: expected a duration from 1ms to 1h with a unit "
		"(ms, s, m, h), e.g. 500ms or 5s; got \"5\"",
		"t.yaml:10:16: pools[0].algorithm: \"fastest\" is not one of: round_robin, least_connections, "
		"random_two, source_hash, maglev");
}

/* The path given for messages is used verbatim, and a config that failed
 * leaves nothing behind for the caller to free but the errors. */
static void test_path_in_messages(void **state)
{
	struct conf_errors e = { 0 };
	struct config *cfg = conf_load_string("global: 1\n", 10, "conf/prod.yaml", &e);
	(void)state;
	assert_null(cfg);
	assert_int_equal(e.n, 3);
	assert_string_equal(e.v[0], "conf/prod.yaml:1:9: global: expected a mapping (key: value lines), "
			    "got a single value");
	assert_string_equal(e.v[1], "conf/prod.yaml:1:1: listeners: missing; this key is required here");
	assert_string_equal(e.v[2], "conf/prod.yaml:1:1: pools: missing; this key is required here");
	conf_errors_free(&e);
}

/* Not NUL-terminated input: only len bytes are read. */
static void test_length_respected(void **state)
{
	char buf[sizeof(minimal) + 16];
	struct conf_errors e = { 0 };
	struct config *cfg;
	(void)state;
	memcpy(buf, minimal, sizeof(minimal) - 1);
	memcpy(buf + sizeof(minimal) - 1, "bogus: [1, 2\n", 14);
	cfg = conf_load_string(buf, sizeof(minimal) - 1, FILE_NAME, &e);
	assert_non_null(cfg);
	assert_int_equal(e.n, 0);
	conf_free(cfg);
	conf_errors_free(&e);
}

static void test_proto_name(void **state)
{
	(void)state;
	assert_string_equal(conf_proto_name(PROTO_TCP), "tcp");
	assert_string_equal(conf_proto_name(PROTO_HTTPS), "https");
	assert_string_equal(conf_proto_name(-1), "?");
	assert_string_equal(conf_proto_name(99), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_partial_sections_get_defaults),
		cmocka_unit_test(test_every_key_set),
		cmocka_unit_test(test_unused_pool_warns),
		cmocka_unit_test(test_http_keys_on_tcp_listener_warn),
		cmocka_unit_test(test_retries_auto),
		cmocka_unit_test(test_algorithms),
		cmocka_unit_test(test_public_wildcard_accepted),
		cmocka_unit_test(test_same_port_both_families),
		cmocka_unit_test(test_conf_load_file),
		cmocka_unit_test(test_conf_load_missing_file),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_unknown_top_level_key),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_wrong_type_in_lists),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_bad_duration),
		cmocka_unit_test(test_bad_enum_bool_name),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_duplicate_listener_name),
		cmocka_unit_test(test_duplicate_pool_name),
		cmocka_unit_test(test_duplicate_addresses),
		cmocka_unit_test(test_duplicate_bind_reported_once),
		cmocka_unit_test(test_empty_lists),
		cmocka_unit_test(test_missing_pool),
		cmocka_unit_test(test_bad_address),
		cmocka_unit_test(test_list_error_paths),
		cmocka_unit_test(test_wildcard_needs_public),
		cmocka_unit_test(test_mapped_ipv6_bind),
		cmocka_unit_test(test_check_host),
		cmocka_unit_test(test_bad_value_of_defaulted_key),
		cmocka_unit_test(test_reuse_limit_without_reuse_warns),
		cmocka_unit_test(test_protocol_pairing),
		cmocka_unit_test(test_duplicate_key),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_not_a_mapping),
		cmocka_unit_test(test_yaml_syntax_error),
		cmocka_unit_test(test_yaml_encoding_error_location),
		cmocka_unit_test(test_second_document_not_ignored),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_path_in_messages),
		cmocka_unit_test(test_length_respected),
		cmocka_unit_test(test_proto_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
