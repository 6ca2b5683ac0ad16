/* Config loader: libyaml document -> keyword tables -> structs -> checks.
 *
 * Every problem is collected (never stop at the first) as
 * "FILE:LINE:COL: key.path: what is wrong; what to write instead". */
#include "conf.h"
#include "h1.h"
#include "sock.h"
#include "tls.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

enum kw_type {
	KW_BOOL,
	KW_UINT,      /* uint64_t within [min, max] */
	KW_UINT_AUTO, /* uint64_t, or "auto" stored as 0 */
	KW_INT_AUTO,  /* int64_t, or "auto" stored as -1 */
	KW_NAME,      /* char *: letters, digits, '-', '_', '.' */
	KW_STR,       /* char * */
	KW_DURATION,  /* uint64_t milliseconds */
	KW_SIZE,      /* uint64_t bytes */
	KW_ENUM,      /* int: index into enums */
	KW_ADDR,      /* struct conf_addr */
	KW_ADDRS,     /* struct conf_addr * + size_t count: one or a list */
	KW_CIDRS,     /* struct cidr_list: one or a list */
	KW_STRS,      /* struct str_list: one or a list */
	KW_MAP,       /* struct str_map: a mapping of names to texts */
	KW_SECTION,   /* nested mapping */
	KW_LIST,      /* list of mappings: items + size_t count */
};

struct kw_table;

struct kw {
	const char *name;
	enum kw_type type;
	size_t off;
	size_t loc_off;                 /* offset + 1 of a struct conf_loc, or 0 */
	size_t count_off;               /* KW_ADDRS, KW_LIST */
	const char *def;                /* default, as config text; NULL = none */
	const char *def_doc;            /* default as documented, if not def */
	bool required;
	uint64_t min, max;
	const char *const *enums;       /* NULL-terminated */
	const struct kw_table *sub;
	const char *doc;
};

struct kw_table {
	const char *path;               /* as documented: "listeners[]" */
	const char *intro;
	const struct kw *kw;
	size_t n;
	size_t size;                    /* element size, for KW_LIST */
	size_t loc_off;                 /* offset + 1 of the element's conf_loc */
	size_t written_off;             /* offset + 1 of a uint32_t: bit i set when key i is
					 * in the file; or 0 */
};

#define LOC(type, field) (offsetof(type, field) + 1)

static const char *const proto_names[] = { "tcp", "ssl", "udp", "http", "https", NULL };
static const char *const level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const format_names[] = { "text", "json", NULL };
static const char *const fwd_names[] = { "auto", "buffer", NULL };
static const char *const us_names[] = { "pass", "drop", "reject", NULL };
static const char *const es_names[] = { "keep", "reject", NULL };
static const char *const tls_version_names[] = { "1.2", "1.3", NULL };
static const char *const server_state_names[] = { "up", "drain", "maintenance", NULL };
static const char *const all_down_names[] = { "fail", "spread", NULL };
static const char *const check_type_names[] = { "tcp", "http", "https", NULL };
static const char *const client_auth_names[] = { "none", "optional", "required", NULL };
static const char *const algo_names[] = {
	"round_robin", "least_connections", "random_two", "source_hash", "maglev", NULL
};

/* "an ssl listener", "a tcp listener". */
static const char *article(int proto)
{
	return proto == PROTO_SSL || proto == PROTO_HTTP || proto == PROTO_HTTPS ? "an" : "a";
}

const char *conf_proto_name(int proto)
{
	return proto >= 0 && proto < (int)ARRAY_LEN(proto_names) - 1 ? proto_names[proto] : "?";
}

/* ---- keyword tables ---------------------------------------------------- */

static const struct kw log_kw[] = {
	{ "level", KW_ENUM, offsetof(struct conf_log, level), 0, 0, "info", NULL, false, 0, 0,
	  level_names, NULL, "Least severe message written to the error log." },
	{ "format", KW_ENUM, offsetof(struct conf_log, format), 0, 0, "text", NULL, false, 0, 0,
	  format_names, NULL, "Access log format: `text` (key=value) or `json` (one object per line)." },
	{ "access", KW_STR, offsetof(struct conf_log, access), 0, 0, "stdout", NULL, false, 0, 0,
	  NULL, NULL, "Access log target: `stdout`, `stderr`, `off` or a file path (reopened on SIGUSR1)." },
	{ "error", KW_STR, offsetof(struct conf_log, error), 0, 0, "stderr", NULL, false, 0, 0,
	  NULL, NULL, "Error log target: `stdout`, `stderr` or a file path (reopened on SIGUSR1)." },
};
static const struct kw_table log_table = {
	"global.log", "Where and how fulcrum logs.", log_kw, ARRAY_LEN(log_kw), 0, 0, 0,
};

static const struct kw global_kw[] = {
	{ "workers", KW_UINT_AUTO, offsetof(struct conf_global, workers), 0, 0, "auto", NULL, false, 1, 256,
	  NULL, NULL, "Worker threads, each with its own event loop. `auto`: one per CPU." },
	{ "max_connections", KW_UINT_AUTO, offsetof(struct conf_global, max_connections), 0, 0, "auto", NULL,
	  false, 1, 10000000, NULL, NULL,
	  "Client connections open at once over all listeners. When reached, fulcrum stops accepting "
	  "until one closes. `auto`: a quarter of the open-files limit (each connection needs a client "
	  "socket, a backend socket and sometimes pipes)." },
	{ "drain_timeout", KW_DURATION, offsetof(struct conf_global, drain_timeout), 0, 0, "30s", NULL, false,
	  0, 86400000, NULL, NULL,
	  "On SIGTERM or SIGINT, how long open connections may take to finish before they are closed." },
	{ "batch_sends", KW_BOOL, offsetof(struct conf_global, batch_sends), 0, 0, "true", NULL, false, 0, 0,
	  NULL, NULL,
	  "Small writes to plain TCP sockets made while a worker handles one round of events go to "
	  "the kernel together, in one io_uring call, before it waits again: one syscall instead of "
	  "one per write. `false`: each write is its own send(). Off by itself, with a warning, "
	  "where the kernel does not allow io_uring." },
	{ "log", KW_SECTION, offsetof(struct conf_global, log), 0, 0, NULL, NULL, false, 0, 0, NULL,
	  &log_table, "Logging, see `global.log`." },
};
static const struct kw_table global_table = {
	"global", "Process-wide settings.", global_kw, ARRAY_LEN(global_kw), 0, 0, 0,
};

static const struct kw timeouts_kw[] = {
	{ "connect", KW_DURATION, offsetof(struct conf_timeouts, connect), 0, 0, "5s", NULL, false, 1, 3600000,
	  NULL, NULL, "Time allowed to connect to a server before the next one is tried." },
	{ "client_idle", KW_DURATION, offsetof(struct conf_timeouts, client_idle), 0, 0, "60s", NULL, false,
	  1, 604800000, NULL, NULL,
	  "Close the connection when the client side has neither sent nor received a byte for this long." },
	{ "server_idle", KW_DURATION, offsetof(struct conf_timeouts, server_idle), 0, 0, "60s", NULL, false,
	  1, 604800000, NULL, NULL,
	  "Close the connection when the server side has neither sent nor received a byte for this long." },
	{ "header", KW_DURATION, offsetof(struct conf_timeouts, header), 0, 0, "10s", NULL, false, 1,
	  3600000, NULL, NULL,
	  "http: time allowed for a whole request head, from its first byte; then 408 and close. "
	  "A client that sends one byte every few seconds is closed here and never reaches a server." },
	{ "server", KW_DURATION, offsetof(struct conf_timeouts, server), 0, 0, "60s", NULL, false, 1,
	  86400000, NULL, NULL,
	  "http: time allowed for a server to start its response after the request was sent; then 504." },
	{ "keepalive", KW_DURATION, offsetof(struct conf_timeouts, keepalive), 0, 0, "60s", NULL, false, 1,
	  86400000, NULL, NULL,
	  "http: how long an idle client connection is kept open between requests." },
	{ "tunnel", KW_DURATION, offsetof(struct conf_timeouts, tunnel), 0, 0, "1h", NULL, false, 1,
	  604800000, NULL, NULL,
	  "http: a WebSocket connection (after 101 Switching Protocols) is closed when neither side "
	  "has sent a byte for this long." },
	{ "handshake", KW_DURATION, offsetof(struct conf_timeouts, handshake), 0, 0, "10s", NULL, false, 1,
	  3600000, NULL, NULL,
	  "ssl, https: time allowed for the client's TLS handshake; tcp with `tls_passthrough`: for its "
	  "ClientHello." },
};
static const struct kw_table timeouts_table = {
	"listeners[].timeouts", "Timeouts of one listener's connections.", timeouts_kw,
	ARRAY_LEN(timeouts_kw), 0, 0, 0,
};

static const struct kw limits_kw[] = {
	{ "request_line", KW_SIZE, offsetof(struct conf_limits, request_line), 0, 0, "8k", NULL, false, 64,
	  65536, NULL, NULL, "Longest request line (method, target, version); longer: 414." },
	{ "head", KW_SIZE, offsetof(struct conf_limits, head), 0, 0, "32k", NULL, false, 1024, 65536, NULL,
	  NULL, "Largest request head (request line and fields); larger: 431." },
	{ "fields", KW_UINT, offsetof(struct conf_limits, fields), 0, 0, "100", NULL, false, 1, 256, NULL,
	  NULL, "Most header fields in a request; more: 431." },
	{ "body", KW_SIZE, offsetof(struct conf_limits, body), 0, 0, "0", "0 (unlimited)", false, 0,
	  UINT64_MAX / 2, NULL, NULL, "Largest request body; larger: 413." },
};
static const struct kw_table limits_table = {
	"listeners[].limits", "http: limits on requests.", limits_kw, ARRAY_LEN(limits_kw), 0, 0, 0,
};

static const struct kw match_kw[] = {
	{ "host", KW_STR, offsetof(struct conf_match, host), 0, 0, NULL, NULL, false, 0, 0, NULL, NULL,
	  "Host name, exact (`api.example.com`) or any subdomain (`*.example.com`); case-insensitive, "
	  "the port is ignored." },
	{ "sni", KW_STR, offsetof(struct conf_match, sni), 0, 0, NULL, NULL, false, 0, 0, NULL, NULL,
	  "tcp with `tls_passthrough`: the server name of the ClientHello, exact or `*.example.com` "
	  "(any depth of subdomain, not the bare domain)." },
	{ "client_cert_subject", KW_STR, offsetof(struct conf_match, client_cert_subject), 0, 0, NULL, NULL,
	  false, 0, 0, NULL, NULL,
	  "https with `tls.client_auth`: the verified client certificate's subject as "
	  "`CN=alice,O=Example` (RFC 2253 order), exact, or a PCRE2 pattern written `~pattern`." },
	{ "path_prefix", KW_STR, offsetof(struct conf_match, path_prefix), 0, 0, NULL, NULL, false, 0, 0,
	  NULL, NULL, "The path (without the query) starts with this." },
	{ "path", KW_STR, offsetof(struct conf_match, path), 0, 0, NULL, NULL, false, 0, 0, NULL, NULL,
	  "The path (without the query) is exactly this." },
	{ "method", KW_STRS, offsetof(struct conf_match, methods), 0, 0, NULL, NULL, false, 0, 0, NULL,
	  NULL, "One method or a list (`GET`, `[GET, HEAD]`)." },
	{ "source", KW_CIDRS, offsetof(struct conf_match, source), 0, 0, NULL, NULL, false, 0, 0, NULL,
	  NULL, "The client address is in one of these networks." },
	{ "path_regex", KW_STR, offsetof(struct conf_match, path_regex), 0, 0, NULL, NULL, false, 0, 0,
	  NULL, NULL, "The path (without the query) matches this PCRE2 regular expression." },
	{ "header", KW_MAP, offsetof(struct conf_match, header), 0, 0, NULL, NULL, false, 0, 0, NULL, NULL,
	  "Request header fields and their values: `{X-Env: staging}` (exact), or a PCRE2 regular "
	  "expression after `~`: `{User-Agent: \"~(?i)curl\"}`. Names are case-insensitive." },
	{ "query", KW_MAP, offsetof(struct conf_match, query), 0, 0, NULL, NULL, false, 0, 0, NULL, NULL,
	  "Query parameters and their exact values: `{version: \"2\"}`." },
};
static const struct kw_table match_table = {
	"listeners[].routes[].match", "What a request must have for the route to apply; all given "
	"conditions must hold. No `match`: every request.", match_kw, ARRAY_LEN(match_kw), 0, 0, 0,
};

static const struct kw respond_kw[] = {
	{ "status", KW_UINT, offsetof(struct conf_respond, status), 0, 0, "200", NULL, false, 200, 599,
	  NULL, NULL, "Status code of the answer." },
	{ "body", KW_STR, offsetof(struct conf_respond, body), 0, 0, NULL, "(empty)", false, 0, 0, NULL,
	  NULL, "Body of the answer." },
	{ "content_type", KW_STR, offsetof(struct conf_respond, content_type), 0, 0, "text/plain", NULL,
	  false, 0, 0, NULL, NULL, "Content-Type of the answer." },
};
static const struct kw_table respond_table = {
	"listeners[].routes[].respond", "Answer the request directly, without a server.", respond_kw,
	ARRAY_LEN(respond_kw), 0, 0, 0,
};

static const struct kw redirect_kw[] = {
	{ "to", KW_STR, offsetof(struct conf_redirect, to), 0, 0, NULL, NULL, true, 0, 0, NULL, NULL,
	  "Location to send the client to. `{host}`, `{path}` (with the query) and `{scheme}` "
	  "(`https` on a TLS connection, else `http`) are replaced by the request's: "
	  "`https://{host}{path}`. One line without spaces (write them `%20`); other braces "
	  "are refused." },
	{ "code", KW_UINT, offsetof(struct conf_redirect, code), 0, 0, "302", NULL, false, 301, 308, NULL,
	  NULL, "301, 302, 303, 307 or 308." },
};
static const struct kw_table redirect_table = {
	"listeners[].routes[].redirect", "Send the client elsewhere.", redirect_kw, ARRAY_LEN(redirect_kw),
	0, 0, 0,
};

static const struct kw split_kw[] = {
	{ "pool", KW_NAME, offsetof(struct conf_split, pool_name), 0, 0, NULL, NULL, true, 0, 0, NULL, NULL,
	  "A pool." },
	{ "weight", KW_UINT, offsetof(struct conf_split, weight), 0, 0, "1", NULL, false, 0, 1000000, NULL,
	  NULL, "Its share of the requests, relative to the other entries." },
};
static const struct kw_table split_table = {
	"listeners[].routes[].split[]", "One pool of a split.", split_kw, ARRAY_LEN(split_kw),
	sizeof(struct conf_split), LOC(struct conf_split, loc), 0,
};

static const struct kw rewrite_kw[] = {
	{ "path_prefix", KW_STR, offsetof(struct conf_route, rewrite_prefix), 0, 0, NULL, NULL, false, 0, 0,
	  NULL, NULL, "Replace the part of the path that `match.path_prefix` matched with this." },
};
static const struct kw_table rewrite_table = {
	"listeners[].routes[].rewrite", "Change the request before it is sent on.", rewrite_kw,
	ARRAY_LEN(rewrite_kw), 0, 0, 0,
};

static const struct kw header_ops_kw[] = {
	{ "set", KW_MAP, offsetof(struct conf_header_ops, set), 0, 0, NULL, NULL, false, 0, 0, NULL, NULL,
	  "Fields to set: any field of that name is replaced." },
	{ "add", KW_MAP, offsetof(struct conf_header_ops, add), 0, 0, NULL, NULL, false, 0, 0, NULL, NULL,
	  "Fields to add beside any of the same name." },
	{ "remove", KW_STRS, offsetof(struct conf_header_ops, remove), 0, 0, NULL, NULL, false, 0, 0, NULL,
	  NULL, "Names of fields to remove." },
};
static const struct kw_table req_ops_table = {
	"listeners[].routes[].request_headers", "Framing fields (Content-Length, Transfer-Encoding, Host) "
	"and the X-Forwarded-* fields fulcrum adds cannot be changed here.",
	header_ops_kw, ARRAY_LEN(header_ops_kw), 0, 0, 0,
};
static const struct kw_table resp_ops_table = {
	"listeners[].routes[].response_headers", "Framing fields cannot be changed here.",
	header_ops_kw, ARRAY_LEN(header_ops_kw), 0, 0, 0,
};

static const struct kw route_kw[] = {
	{ "name", KW_NAME, offsetof(struct conf_route, name), 0, 0, NULL, "(its position)", false, 0, 0,
	  NULL, NULL, "Name in logs and metrics; unique within its listener." },
	{ "match", KW_SECTION, offsetof(struct conf_route, match), LOC(struct conf_route, match.loc), 0, NULL,
	  NULL, false, 0, 0, NULL, &match_table, "See `listeners[].routes[].match`." },
	{ "pool", KW_NAME, offsetof(struct conf_route, pool_name), LOC(struct conf_route, pool_loc), 0, NULL,
	  NULL, false, 0, 0, NULL, NULL, "Send matching requests to this pool." },
	{ "respond", KW_SECTION, offsetof(struct conf_route, respond), LOC(struct conf_route, respond.loc), 0,
	  NULL, NULL, false, 0, 0, NULL, &respond_table, "See `listeners[].routes[].respond`." },
	{ "redirect", KW_SECTION, offsetof(struct conf_route, redirect), LOC(struct conf_route, redirect.loc),
	  0, NULL, NULL, false, 0, 0, NULL, &redirect_table, "See `listeners[].routes[].redirect`." },
	{ "split", KW_LIST, offsetof(struct conf_route, split), LOC(struct conf_route, split_loc),
	  offsetof(struct conf_route, nsplit), NULL, NULL, false, 0, 0, NULL, &split_table,
	  "Share requests among pools by weight (canaries): "
	  "`[{pool: v1, weight: 90}, {pool: v2, weight: 10}]`." },
	{ "rewrite", KW_SECTION, 0, 0, 0, NULL, NULL, false, 0, 0, NULL, &rewrite_table,
	  "See `listeners[].routes[].rewrite`." },
	{ "request_headers", KW_SECTION, offsetof(struct conf_route, req_headers), 0, 0, NULL, NULL, false, 0,
	  0, NULL, &req_ops_table, "Changes to the request's header fields before it is sent on." },
	{ "response_headers", KW_SECTION, offsetof(struct conf_route, resp_headers), 0, 0, NULL, NULL, false,
	  0, 0, NULL, &resp_ops_table, "Changes to the response's header fields before the client gets it." },
};
static const struct kw_table route_table = {
	"listeners[].routes[]", "http: the first route whose `match` fits a request handles it with "
	"exactly one of `pool`, `respond` or `redirect`. A request no route matches gets 404, unless "
	"the listener names a `pool`, which then serves it.", route_kw, ARRAY_LEN(route_kw),
	sizeof(struct conf_route), LOC(struct conf_route, loc), 0,
};

static const struct kw cert_kw[] = {
	{ "cert", KW_STR, offsetof(struct conf_cert, cert), 0, 0, NULL, NULL, true, 0, 0, NULL, NULL,
	  "PEM file with the certificate (it may also hold the chain after it)." },
	{ "key", KW_STR, offsetof(struct conf_cert, key), 0, 0, NULL, NULL, true, 0, 0, NULL, NULL,
	  "PEM file with its private key (RSA or ECDSA)." },
	{ "chain", KW_STR, offsetof(struct conf_cert, chain), 0, 0, NULL, "(none)", false, 0, 0, NULL, NULL,
	  "PEM file with the intermediate certificates sent after it." },
	{ "key_password_file", KW_STR, offsetof(struct conf_cert, key_password_file), 0, 0, NULL,
	  "(key not encrypted)", false, 0, 0, NULL, NULL,
	  "File whose first line is the password of an encrypted key." },
	{ "ocsp", KW_STR, offsetof(struct conf_cert, ocsp), 0, 0, NULL, "(no stapling)", false, 0, 0, NULL,
	  NULL, "DER file with an OCSP response for this certificate, stapled to handshakes that ask for "
	  "it; read again on SIGHUP." },
};
static const struct kw_table cert_table = {
	"listeners[].tls.certificates[]", "One certificate with its key. Files are read at startup and on "
	"SIGHUP; paths are relative to the working directory.", cert_kw, ARRAY_LEN(cert_kw),
	sizeof(struct conf_cert), LOC(struct conf_cert, loc), 0,
};

static const struct kw client_auth_kw[] = {
	{ "mode", KW_ENUM, offsetof(struct conf_client_auth, mode), 0, 0, "required", NULL, false, 0, 0,
	  client_auth_names, NULL,
	  "`required`: a client without a valid certificate fails the handshake; `optional`: one is "
	  "asked for and verified if sent; `none`: not asked for." },
	{ "ca", KW_STR, offsetof(struct conf_client_auth, ca), 0, 0, NULL, NULL, false, 0, 0, NULL, NULL,
	  "PEM file of the certificate authorities client certificates must chain to (required unless "
	  "mode is none)." },
	{ "crl", KW_STR, offsetof(struct conf_client_auth, crl), 0, 0, NULL, "(none)", false, 0, 0, NULL,
	  NULL, "PEM file of certificate revocation lists; a revoked client certificate is refused." },
	{ "verify_depth", KW_UINT, offsetof(struct conf_client_auth, verify_depth), 0, 0, "3", NULL, false,
	  1, 16, NULL, NULL, "Longest chain of intermediates accepted above a client certificate." },
};
static const struct kw_table client_auth_table = {
	"listeners[].tls.client_auth", "Client certificates (mutual TLS).", client_auth_kw,
	ARRAY_LEN(client_auth_kw), 0, 0, 0,
};

static const struct kw tls_server_kw[] = {
	{ "certificates", KW_LIST, offsetof(struct conf_tls_server, certs),
	  LOC(struct conf_tls_server, certs_loc), offsetof(struct conf_tls_server, ncerts), NULL, NULL, true,
	  0, 0, NULL, &cert_table,
	  "One or more certificates. The one whose names (subject alternative names, wildcards "
	  "included) match the client's SNI is used, else the first. An RSA and an ECDSA certificate "
	  "for the same names may both be given: each client gets one it supports." },
	{ "min_version", KW_ENUM, offsetof(struct conf_tls_server, min_version), 0, 0, "1.2", NULL, false, 0,
	  0, tls_version_names, NULL, "Oldest TLS version accepted. TLS 1.0 and 1.1 are never accepted." },
	{ "max_version", KW_ENUM, offsetof(struct conf_tls_server, max_version), 0, 0, "1.3", NULL, false, 0,
	  0, tls_version_names, NULL, "Newest TLS version offered." },
	{ "ciphers", KW_STR, offsetof(struct conf_tls_server, ciphers), 0, 0, NULL,
	  "ECDHE with AES-GCM or ChaCha20", false, 0, 0, NULL, NULL,
	  "TLS 1.2 cipher list (OpenSSL syntax). The default has forward secrecy and no CBC." },
	{ "ciphersuites", KW_STR, offsetof(struct conf_tls_server, ciphersuites), 0, 0, NULL,
	  "(OpenSSL's TLS 1.3 defaults)", false, 0, 0, NULL, NULL, "TLS 1.3 cipher suites (OpenSSL syntax)." },
	{ "alpn", KW_STRS, offsetof(struct conf_tls_server, alpn), 0, 0, NULL, "https: http/1.1", false, 0, 0,
	  NULL, NULL, "Application protocols offered in ALPN, in order of preference." },
	{ "session_tickets", KW_BOOL, offsetof(struct conf_tls_server, session_tickets), 0, 0, "true", NULL,
	  false, 0, 0, NULL, NULL,
	  "Resume sessions with tickets. Ticket keys are random, kept in memory only, shared by the "
	  "workers and replaced every `ticket_rotation`." },
	{ "ticket_rotation", KW_DURATION, offsetof(struct conf_tls_server, ticket_rotation), 0, 0, "1h", NULL,
	  false, 60000, 86400000, NULL, NULL,
	  "How often a new ticket key is made; tickets of the previous key are still accepted." },
	{ "session_cache", KW_UINT, offsetof(struct conf_tls_server, session_cache), 0, 0, "20000", NULL,
	  false, 0, 10000000, NULL, NULL,
	  "Sessions kept for resumption by session id (TLS 1.2 clients without tickets); 0 turns it off." },
	{ "client_auth", KW_SECTION, offsetof(struct conf_tls_server, client_auth),
	  LOC(struct conf_tls_server, client_auth.loc), 0, NULL, NULL, false, 0, 0, NULL, &client_auth_table,
	  "See `listeners[].tls.client_auth`." },
	{ "forward_client_cert", KW_BOOL, offsetof(struct conf_tls_server, forward_client_cert), 0, 0,
	  "false", NULL, false, 0, 0, NULL, NULL,
	  "https: send the client certificate's details to the server as `X-Client-Cert-Subject`, "
	  "`-Issuer`, `-Serial`, `-Fingerprint` (SHA-256) and `-Verify`. Such fields sent by clients "
	  "are always removed." },
};
static const struct kw_table tls_server_table = {
	"listeners[].tls", "ssl and https listeners: TLS settings.", tls_server_kw, ARRAY_LEN(tls_server_kw),
	0, 0, 0,
};

static const struct kw tls_client_kw[] = {
	{ "enabled", KW_BOOL, offsetof(struct conf_tls_client, enabled), 0, 0, "false", "true for https",
	  false, 0, 0, NULL, NULL, "tcp pools: connect to the servers with TLS." },
	{ "verify", KW_BOOL, offsetof(struct conf_tls_client, verify), 0, 0, "true", NULL, false, 0, 0, NULL,
	  NULL, "Verify the server's certificate chain; a server that fails is a failed connect (502)." },
	{ "ca", KW_STR, offsetof(struct conf_tls_client, ca), 0, 0, NULL, "(the system's trust store)", false,
	  0, 0, NULL, NULL, "PEM file of the certificate authorities trusted for the servers." },
	{ "server_name", KW_STR, offsetof(struct conf_tls_client, server_name), 0, 0, NULL, "(none)", false,
	  0, 0, NULL, NULL, "Name sent as SNI and, with `verify_hostname`, required in the server's "
	  "certificate (an IP address is not sent, only verified)." },
	{ "sni_from_client", KW_BOOL, offsetof(struct conf_tls_client, sni_from_client), 0, 0, "false", NULL,
	  false, 0, 0, NULL, NULL,
	  "Send (and verify) the name the client asked for in its own SNI instead of `server_name`." },
	{ "verify_hostname", KW_BOOL, offsetof(struct conf_tls_client, verify_hostname), 0, 0, "true", NULL,
	  false, 0, 0, NULL, NULL, "Check that the certificate is for the name sent (when one is sent)." },
	{ "cert", KW_STR, offsetof(struct conf_tls_client, cert), 0, 0, NULL, "(none)", false, 0, 0, NULL,
	  NULL, "PEM client certificate, for servers that require mutual TLS." },
	{ "key", KW_STR, offsetof(struct conf_tls_client, key), 0, 0, NULL, "(none)", false, 0, 0, NULL, NULL,
	  "PEM key of `cert`." },
	{ "min_version", KW_ENUM, offsetof(struct conf_tls_client, min_version), 0, 0, "1.2", NULL, false, 0,
	  0, tls_version_names, NULL, "Oldest TLS version accepted from a server." },
	{ "ciphers", KW_STR, offsetof(struct conf_tls_client, ciphers), 0, 0, NULL,
	  "ECDHE with AES-GCM or ChaCha20", false, 0, 0, NULL, NULL, "TLS 1.2 cipher list." },
	{ "ciphersuites", KW_STR, offsetof(struct conf_tls_client, ciphersuites), 0, 0, NULL,
	  "(OpenSSL's TLS 1.3 defaults)", false, 0, 0, NULL, NULL, "TLS 1.3 cipher suites." },
};
static const struct kw_table tls_client_table = {
	"pools[].tls", "https pools, and tcp pools with `enabled: true`: TLS to the servers. Sessions "
	"are resumed per server.", tls_client_kw, ARRAY_LEN(tls_client_kw), 0, 0, 0,
};

static const struct kw check_kw[] = {
	{ "type", KW_ENUM, offsetof(struct conf_check, type), 0, 0, NULL, NULL, true, 0, 0, check_type_names,
	  NULL, "`tcp` (tcp, http and https pools), `http` (http pools), `https` (https pools)." },
	{ "interval", KW_DURATION, offsetof(struct conf_check, interval), 0, 0, "2s", NULL, false, 100,
	  86400000, NULL, NULL, "Time between two checks of a server." },
	{ "timeout", KW_DURATION, offsetof(struct conf_check, timeout), 0, 0, "1s", NULL, false, 10, 3600000,
	  NULL, NULL, "A check that has not succeeded after this long failed; must be below `interval`." },
	{ "rise", KW_UINT, offsetof(struct conf_check, rise), 0, 0, "2", NULL, false, 1, 100, NULL, NULL,
	  "Successful checks in a row that bring a down server back." },
	{ "fall", KW_UINT, offsetof(struct conf_check, fall), 0, 0, "3", NULL, false, 1, 100, NULL, NULL,
	  "Failed checks in a row that take a server down. At startup servers count as up, and the "
	  "first check of each decides at once." },
	{ "jitter", KW_DURATION, offsetof(struct conf_check, jitter), LOC(struct conf_check, jitter_loc), 0,
	  NULL, "10% of interval", false, 0, 86400000, NULL, NULL,
	  "Each wait between checks is the interval plus or minus up to this much, at random, so that "
	  "checks of many servers do not align." },
	{ "port", KW_UINT, offsetof(struct conf_check, port), 0, 0, "0", "(the server's port)", false, 0,
	  65535, NULL, NULL, "Check this port instead of the traffic port." },
	{ "address", KW_STR, offsetof(struct conf_check, address), 0, 0, NULL, "(the server's address)",
	  false, 0, 0, NULL, NULL, "Check this IP address (numeric, without a port) instead of the "
	  "server's." },
	{ "send", KW_STR, offsetof(struct conf_check, send), 0, 0, NULL, "(nothing)", false, 0, 0, NULL,
	  NULL, "tcp: bytes to send once connected: text (`\\r` and `\\n` escapes allowed) or "
	  "`hex:50494e470d0a`." },
	{ "expect", KW_STR, offsetof(struct conf_check, expect), 0, 0, NULL, "(connecting is enough)",
	  false, 0, 0, NULL, NULL, "tcp: the answer must start with these bytes (text or `hex:`): "
	  "`+PONG` for Redis, `220` for an SMTP banner." },
	{ "tls", KW_BOOL, offsetof(struct conf_check, tls), 0, 0, "false", NULL, false, 0, 0, NULL, NULL,
	  "tcp: complete a TLS handshake (with the pool's `tls` settings) before `send`." },
	{ "method", KW_STR, offsetof(struct conf_check, method), 0, 0, "GET", NULL, false, 0, 0, NULL, NULL,
	  "http, https: request method." },
	{ "path", KW_STR, offsetof(struct conf_check, path), 0, 0, "/", NULL, false, 0, 0, NULL, NULL,
	  "http, https: request target." },
	{ "host", KW_STR, offsetof(struct conf_check, host), 0, 0, NULL, "(the checked address)", false, 0, 0,
	  NULL, NULL, "http, https: Host field; by default the checked address and port." },
	{ "headers", KW_MAP, offsetof(struct conf_check, headers), 0, 0, NULL, NULL, false, 0, 0, NULL, NULL,
	  "http, https: extra request fields." },
	{ "expect_status", KW_STR, offsetof(struct conf_check, expect_status), 0, 0, "200-399", NULL, false, 0,
	  0, NULL, NULL, "http, https: statuses that pass: ranges and single statuses separated by "
	  "commas, `200-299,301`." },
	{ "expect_body", KW_STR, offsetof(struct conf_check, expect_body), 0, 0, NULL, "(any body)", false,
	  0, 0, NULL, NULL, "http, https: the body (its first 64k) must contain this text, or match the "
	  "PCRE2 pattern written `~pattern`." },
	{ "reuse_connection", KW_BOOL, offsetof(struct conf_check, reuse_connection),
	  LOC(struct conf_check, reuse_loc), 0, "true", NULL, false, 0, 0, NULL, NULL,
	  "http, https: keep the connection open between checks when the server allows it, so that a "
	  "check costs one request instead of a connect, a TLS handshake and a close. A failed check, "
	  "a server that closes, and an answer with `Connection: close` end the connection; the next "
	  "check connects again. `false`: a new connection for every check." },
	{ "reuse_limit", KW_UINT, offsetof(struct conf_check, reuse_limit),
	  LOC(struct conf_check, reuse_limit_loc), 0, "10", NULL, false, 0, 1000000, NULL, NULL,
	  "http, https: kept connections are renewed every this many intervals, all in the same "
	  "interval, so that each carries about this many checks and a server which stops accepting "
	  "new connections while it still answers on old ones is found. `0`: no limit." },
};
static const struct kw_table check_table = {
	"pools[].health_check", "Active health checks: only servers that pass get new traffic. Checks "
	"run on their own thread and never delay a request.", check_kw, ARRAY_LEN(check_kw), 0, 0,
	0,
};

static const struct kw on_change_kw[] = {
	{ "exec", KW_STR, offsetof(struct conf_pool, on_change), 0, 0, NULL, NULL, true, 0, 0, NULL, NULL,
	  "Command run (by /bin/sh, without waiting for it) each time a server of the pool goes down or "
	  "comes back, with FULCRUM_POOL, FULCRUM_SERVER, FULCRUM_STATE (`up` or `down`), "
	  "FULCRUM_REASON and FULCRUM_CHECK in its environment. `fulcrum check` warns when a "
	  "program named by its path cannot be run." },
};
static const struct kw_table on_change_table = {
	"pools[].on_change", "A hook for alerting or automation.", on_change_kw, ARRAY_LEN(on_change_kw), 0, 0,
	0,
};

static const struct kw passive_kw[] = {
	{ "consecutive_failures", KW_UINT, offsetof(struct conf_pool, passive.failures), 0, 0, "5", NULL,
	  false, 1, 1000, NULL, NULL, "Failures of real traffic in a row (connects that fail or time "
	  "out, servers that time out, and 5xx answers with `http_5xx`) that eject a server." },
	{ "base_ejection", KW_DURATION, offsetof(struct conf_pool, passive.ejection), 0, 0, "30s", NULL, false,
	  100, 86400000, NULL, NULL, "How long a first ejection lasts; each further ejection of the same "
	  "server lasts twice as long as the one before, up to 10 times this." },
	{ "max_ejected_percent", KW_UINT, offsetof(struct conf_pool, passive.max_percent), 0, 0, "50", NULL,
	  false, 0, 100, NULL, NULL, "Never eject more than this share of the pool's servers at once "
	  "(at least one may always be ejected)." },
	{ "http_5xx", KW_BOOL, offsetof(struct conf_pool, passive.http_5xx), 0, 0, "false", NULL, false, 0, 0,
	  NULL, NULL, "http, https: count 5xx answers of the server as failures." },
};
static const struct kw_table passive_table = {
	"pools[].passive", "Passive outlier detection: servers that fail real traffic are ejected "
	"for a while, whether or not they have active checks.", passive_kw, ARRAY_LEN(passive_kw), 0, 0,
	0,
};

static const struct kw listener_kw[] = {
	{ "name", KW_NAME, offsetof(struct conf_listener, name), LOC(struct conf_listener, name_loc), 0,
	  NULL, NULL, true, 0, 0, NULL, NULL, "Unique name, used in logs and metrics." },
	{ "bind", KW_ADDRS, offsetof(struct conf_listener, binds), LOC(struct conf_listener, bind_loc),
	  offsetof(struct conf_listener, nbinds), NULL, NULL, true, 0, 0, NULL, NULL,
	  "One address or a list: `127.0.0.1:8080`, `[::1]:8080`. A wildcard (`0.0.0.0:80`, `[::]:80`, "
	  "`:80`) needs `public: true`." },
	{ "protocol", KW_ENUM, offsetof(struct conf_listener, protocol), LOC(struct conf_listener, protocol_loc),
	  0, "tcp", NULL, false, 0, 0, proto_names, NULL,
	  "What the listener speaks: `tcp`, `ssl` (TLS terminated, plain TCP behind), `http`, `https`. "
	  "`udp` is reserved." },
	{ "public", KW_BOOL, offsetof(struct conf_listener, public_), 0, 0, "false", NULL, false, 0, 0, NULL,
	  NULL, "Must be `true` to bind a wildcard address, which listens on every interface." },
	{ "allow", KW_CIDRS, offsetof(struct conf_listener, allow), 0, 0, NULL, "(everyone)", false, 0, 0,
	  NULL, NULL,
	  "If set, only clients in these networks (IPv4 and IPv6 CIDR) are served; others are closed "
	  "right after accept." },
	{ "deny", KW_CIDRS, offsetof(struct conf_listener, deny), 0, 0, NULL, "(nobody)", false, 0, 0, NULL,
	  NULL, "Clients in these networks are closed right after accept (checked before `allow`)." },
	{ "pool", KW_NAME, offsetof(struct conf_listener, pool_name), LOC(struct conf_listener, pool_loc), 0,
	  NULL, NULL, false, 0, 0, NULL, NULL,
	  "The pool that serves this listener's connections (required for tcp). For http, the pool of "
	  "requests that no route matches." },
	{ "routes", KW_LIST, offsetof(struct conf_listener, routes), LOC(struct conf_listener, routes_loc),
	  offsetof(struct conf_listener, nroutes), NULL, NULL, false, 0, 0, NULL, &route_table,
	  "http, https, and tcp with `tls_passthrough`: see `listeners[].routes[]`." },
	{ "limits", KW_SECTION, offsetof(struct conf_listener, limits), 0, 0, NULL, NULL, false, 0, 0,
	  NULL, &limits_table, "http: see `listeners[].limits`." },
	{ "trusted_proxies", KW_CIDRS, offsetof(struct conf_listener, trusted_proxies), 0, 0, NULL,
	  "(none)", false, 0, 0, NULL, NULL,
	  "http: clients in these networks may send an X-Forwarded-For that fulcrum keeps and appends "
	  "to; from anyone else it is replaced." },
	{ "forwarded", KW_BOOL, offsetof(struct conf_listener, forwarded), 0, 0, "false", NULL, false, 0, 0,
	  NULL, NULL, "http: also add an RFC 7239 `Forwarded` field." },
	{ "normalize_path", KW_BOOL, offsetof(struct conf_listener, normalize_path), 0, 0, "true", NULL,
	  false, 0, 0, NULL, NULL,
	  "http: before routing, normalise the path as RFC 3986 does (decode escaped letters, digits "
	  "and `-._~`; merge `//`; resolve `.` and `..`) and forward it so, so that a route "
	  "matches what the server will read: `/public/../admin`, `//admin` and `/%61dmin` are all "
	  "`/admin`. A malformed escape or a `..` above the root gets 400. `false` routes and "
	  "forwards the path as received." },
	{ "escaped_slashes", KW_ENUM, offsetof(struct conf_listener, escaped_slashes), 0, 0, "keep", NULL,
	  false, 0, 0, es_names, NULL,
	  "http: a path with `%2F` or `%5C` (an escaped `/` or `\\`): `keep` it (routes see one "
	  "segment, and so do most servers), or `reject` the request with 400, for servers that "
	  "decode them into separators and could be led past a route that way." },
	{ "underscore_fields", KW_ENUM, offsetof(struct conf_listener, underscore_fields), 0, 0, "pass",
	  NULL, false, 0, 0, us_names, NULL,
	  "http: request fields whose names contain `_`, which CGI-style servers (PHP, WSGI, Rack) "
	  "cannot tell from the same name with `-`: `pass` them on, `drop` them, or `reject` the "
	  "request with 400. Whatever the setting, a field that would pass for one fulcrum sets or "
	  "controls (`X_Forwarded_For`, `X_Client_Cert_Subject`, `Content_Length`, a route's `set`, "
	  "`add` or `remove` fields) is dropped." },
	{ "error_pages", KW_MAP, offsetof(struct conf_listener, error_pages), 0, 0, NULL, NULL, false, 0, 0,
	  NULL, NULL, "http: replace the body of the errors fulcrum generates, by status: "
	  "`{503: ./503.html}` (read at startup; paths relative to the working directory)." },
	{ "max_connections", KW_UINT, offsetof(struct conf_listener, max_connections), 0, 0, "0",
	  "0 (only the global limit)", false, 0, 10000000, NULL, NULL,
	  "Client connections open at once on this listener; further clients wait in the kernel's "
	  "backlog until one closes. On http, https, ssl and passthrough listeners a connection "
	  "counts once its first bytes arrive." },
	{ "backlog", KW_UINT, offsetof(struct conf_listener, backlog), 0, 0, "511", NULL, false, 1, 65535,
	  NULL, NULL, "Kernel accept queue length." },
	{ "tcp_congestion", KW_STR, offsetof(struct conf_listener, tcp_congestion),
	  LOC(struct conf_listener, tcp_congestion_loc), 0, NULL,
	  "(the system's)", false, 0, 0, NULL, NULL,
	  "TCP congestion control of the accepted connections (`cubic`, `reno`, `bbr`, ...: one the "
	  "kernel has loaded). It governs the bytes fulcrum sends to the clients, such as downloads." },
	{ "forwarding", KW_ENUM, offsetof(struct conf_listener, forwarding), 0, 0, "auto", NULL, false, 0, 0,
	  fwd_names, NULL,
	  "`auto` moves bytes with splice() between plain TCP sockets (zero copy): tcp streams and "
	  "WebSocket tunnels once a read fills a buffer, and likewise large HTTP bodies (uploads with "
	  "a Content-Length, downloads that are not chunked). `buffer` forces the user-space buffer "
	  "path." },
	{ "timeouts", KW_SECTION, offsetof(struct conf_listener, timeouts), 0, 0, NULL, NULL, false, 0, 0,
	  NULL, &timeouts_table, "See `listeners[].timeouts`." },
	{ "tls", KW_SECTION, offsetof(struct conf_listener, tls), LOC(struct conf_listener, tls.loc), 0, NULL,
	  NULL, false, 0, 0, NULL, &tls_server_table, "ssl and https (required): see `listeners[].tls`." },
	{ "tls_passthrough", KW_BOOL, offsetof(struct conf_listener, tls_passthrough), 0, 0, "false", NULL,
	  false, 0, 0, NULL, NULL,
	  "tcp: the clients speak TLS, which fulcrum does not terminate: it reads the ClientHello, "
	  "chooses a pool by its server name (`routes` with `match.sni`), and forwards every byte "
	  "untouched. A ClientHello without a server name takes the route without `match`." },
};
_Static_assert(ARRAY_LEN(listener_kw) <= 32, "keys_written has one bit per listener key");

static const struct kw_table listener_table = {
	"listeners[]", "Where fulcrum accepts connections.", listener_kw, ARRAY_LEN(listener_kw),
	sizeof(struct conf_listener), LOC(struct conf_listener, loc),
	LOC(struct conf_listener, keys_written),
};

static const struct kw server_kw[] = {
	{ "address", KW_ADDR, offsetof(struct conf_server, addr), 0, 0, NULL, NULL, true, 0, 0, NULL, NULL,
	  "`IPV4:PORT` or `[IPV6]:PORT`. Numeric only: fulcrum never resolves names." },
	{ "weight", KW_UINT, offsetof(struct conf_server, weight), 0, 0, "1", NULL, false, 0, 1000, NULL,
	  NULL, "Share of new connections relative to the other servers; 0 takes no new traffic." },
	{ "backup", KW_BOOL, offsetof(struct conf_server, backup), 0, 0, "false", NULL, false, 0, 0, NULL,
	  NULL, "Used only when no non-backup server of the pool can be used." },
	{ "state", KW_ENUM, offsetof(struct conf_server, state), 0, 0, "up", NULL, false, 0, 0,
	  server_state_names, NULL,
	  "`up`; `drain`: no new connections or requests, open ones finish; `maintenance`: no new "
	  "traffic while health checks keep running (its check results are still logged)." },
};
static const struct kw_table server_table = {
	"pools[].servers[]", "The backends of a pool.", server_kw, ARRAY_LEN(server_kw),
	sizeof(struct conf_server), LOC(struct conf_server, addr.loc), 0,
};

static const struct kw keepalive_kw[] = {
	{ "max_idle", KW_UINT, offsetof(struct conf_keepalive, max_idle), 0, 0, "64", NULL, false, 0, 100000,
	  NULL, NULL, "Idle server connections kept per worker for reuse; 0 closes each after its response." },
	{ "idle_timeout", KW_DURATION, offsetof(struct conf_keepalive, idle_timeout), 0, 0, "30s", NULL,
	  false, 1, 86400000, NULL, NULL, "An idle server connection is closed after this long." },
};
static const struct kw_table keepalive_table = {
	"pools[].keepalive", "http: reuse of server connections.", keepalive_kw, ARRAY_LEN(keepalive_kw),
	0, 0, 0,
};

static const struct kw sticky_kw[] = {
	{ "cookie", KW_NAME, offsetof(struct conf_sticky, cookie), 0, 0, NULL, NULL, true, 0, 0, NULL, NULL,
	  "Name of the cookie fulcrum sets to keep a client on one server. Its value identifies the "
	  "server without revealing its address." },
};
static const struct kw_table sticky_table = {
	"pools[].sticky", "http: session persistence by cookie.", sticky_kw, ARRAY_LEN(sticky_kw), 0, 0,
	0,
};

static const struct kw pool_kw[] = {
	{ "name", KW_NAME, offsetof(struct conf_pool, name), LOC(struct conf_pool, name_loc), 0, NULL, NULL,
	  true, 0, 0, NULL, NULL, "Unique name that listeners refer to." },
	{ "protocol", KW_ENUM, offsetof(struct conf_pool, protocol), LOC(struct conf_pool, protocol_loc), 0,
	  "tcp", NULL, false, 0, 0, proto_names, NULL,
	  "What the servers speak; must pair with the listener's protocol." },
	{ "algorithm", KW_ENUM, offsetof(struct conf_pool, algorithm), 0, 0, "round_robin", NULL, false, 0, 0,
	  algo_names, NULL,
	  "How a server is chosen: `round_robin` (smooth weighted), `least_connections` (weighted), "
	  "`random_two` (power of two choices), `source_hash` (client address), `maglev` (consistent "
	  "hashing on the client address)." },
	{ "retries", KW_INT_AUTO, offsetof(struct conf_pool, retries), 0, 0, "auto",
	  "auto (number of servers - 1)", false, 0, 1000, NULL, NULL,
	  "After a failed connect, how many other servers are tried before the client is closed." },
	{ "keepalive", KW_SECTION, offsetof(struct conf_pool, keepalive), 0, 0, NULL, NULL, false, 0, 0, NULL,
	  &keepalive_table, "See `pools[].keepalive`." },
	{ "sticky", KW_SECTION, offsetof(struct conf_pool, sticky), 0, 0, NULL, NULL, false, 0, 0, NULL,
	  &sticky_table, "See `pools[].sticky`." },
	{ "hash_key", KW_STR, offsetof(struct conf_pool, hash_key), LOC(struct conf_pool, hash_key_loc), 0,
	  NULL, "(client address)", false, 0,
	  0, NULL, NULL, "http: what `source_hash` and `maglev` hash: `header:X-User` or `cookie:NAME`; "
	  "when the request lacks it, the client address." },
	{ "servers", KW_LIST, offsetof(struct conf_pool, servers), 0, offsetof(struct conf_pool, nservers),
	  NULL, NULL, true, 0, 0, NULL, &server_table, "See `pools[].servers[]`." },
	{ "tls", KW_SECTION, offsetof(struct conf_pool, tls), LOC(struct conf_pool, tls.loc), 0, NULL, NULL,
	  false, 0, 0, NULL, &tls_client_table, "See `pools[].tls`." },
	{ "health_check", KW_SECTION, offsetof(struct conf_pool, check), LOC(struct conf_pool, check.loc), 0,
	  NULL, "(none: every server counts as up)", false, 0, 0, NULL, &check_table,
	  "See `pools[].health_check`." },
	{ "all_down", KW_ENUM, offsetof(struct conf_pool, all_down), 0, 0, "fail", NULL, false, 0, 0,
	  all_down_names, NULL,
	  "When every server fails its checks: `fail` refuses (503, or the connection is closed); "
	  "`spread` sends to all of them anyway, as cloud load balancers do (drained and maintenance "
	  "servers excepted)." },
	{ "tcp_congestion", KW_STR, offsetof(struct conf_pool, tcp_congestion),
	  LOC(struct conf_pool, tcp_congestion_loc), 0, NULL,
	  "(the system's)", false, 0, 0, NULL, NULL,
	  "TCP congestion control of the connections to the servers (`cubic`, `reno`, `bbr`, ...: one "
	  "the kernel has loaded). It governs the bytes fulcrum sends to them, such as uploads." },
	{ "slow_start", KW_DURATION, offsetof(struct conf_pool, slow_start), 0, 0, "0ms", "0 (off)", false, 0,
	  3600000, NULL, NULL, "A server that comes back (its checks pass again, or its ejection ends) "
	  "gets its share of new traffic raised from 10% to 100% over this time. Not for maglev, whose "
	  "table keeps each key on its server." },
	{ "on_change", KW_SECTION, 0, 0, 0, NULL, NULL, false, 0, 0, NULL, &on_change_table,
	  "See `pools[].on_change`." },
	{ "passive", KW_SECTION, 0, LOC(struct conf_pool, passive.loc), 0, NULL, "(off)", false, 0, 0, NULL,
	  &passive_table, "See `pools[].passive`." },
};
static const struct kw_table pool_table = {
	"pools[]", "Groups of backend servers.", pool_kw, ARRAY_LEN(pool_kw), sizeof(struct conf_pool),
	LOC(struct conf_pool, loc), 0,
};

static const struct kw root_kw[] = {
	{ "global", KW_SECTION, offsetof(struct config, global), 0, 0, NULL, NULL, false, 0, 0, NULL,
	  &global_table, "See `global`." },
	{ "listeners", KW_LIST, offsetof(struct config, listeners), 0, offsetof(struct config, nlisteners),
	  NULL, NULL, true, 0, 0, NULL, &listener_table, "See `listeners[]`." },
	{ "pools", KW_LIST, offsetof(struct config, pools), 0, offsetof(struct config, npools), NULL, NULL,
	  true, 0, 0, NULL, &pool_table, "See `pools[]`." },
};
static const struct kw_table root_table = {
	"", "A config file is a mapping with these sections. A complete example: "
	"[examples/quickstart.yaml](../examples/quickstart.yaml).", root_kw, ARRAY_LEN(root_kw), 0, 0,
	0,
};

/* ---- error collection -------------------------------------------------- */

struct ctx {
	const char *file;
	yaml_document_t *doc;
	struct conf_errors *errs;
};

static void push(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = s;
}

static void vreport(struct ctx *c, bool warning, struct conf_loc loc, const char *path,
		    const char *fmt, va_list ap)
{
	char msg[1024], *line;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (asprintf(&line, "%s:%d:%d: %s%s%s%s", c->file, loc.line, loc.col,
		     warning ? "warning: " : "", path && *path ? path : "",
		     path && *path ? ": " : "", msg) < 0)
		abort();
	if (warning)
		push(&c->errs->warn, &c->errs->nwarn, line);
	else
		push(&c->errs->v, &c->errs->n, line);
}

__attribute__((format(printf, 4, 5)))
static void err(struct ctx *c, struct conf_loc loc, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(c, false, loc, path, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 4, 5)))
static void warn(struct ctx *c, struct conf_loc loc, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(c, true, loc, path, fmt, ap);
	va_end(ap);
}

static struct conf_loc node_loc(const yaml_node_t *n)
{
	struct conf_loc l = { (int)n->start_mark.line + 1, (int)n->start_mark.column + 1 };
	return l;
}

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE: return "a single value";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "nothing";
	}
}

/* ---- scalar values ----------------------------------------------------- */

static void join_enums(const char *const *e, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; e[i]; i++)
		n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", i ? ", " : "", e[i]);
}

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') ||
		      ('0' <= *s && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* Parse text into the field for keyword k. On failure return -1 and write a
 * message into why. */
static int parse_scalar(const struct kw *k, const char *text, void *field, char *why, size_t wlen)
{
	uint64_t v;
	int rc;
	char list[256];

	switch (k->type) {
	case KW_BOOL:
		if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
			*(bool *)field = text[0] == 't';
			return 0;
		}
		snprintf(why, wlen, "expected true or false, got \"%s\"", text);
		return -1;
	case KW_UINT_AUTO:
	case KW_INT_AUTO:
		if (strcmp(text, "auto") == 0) {
			if (k->type == KW_UINT_AUTO)
				*(uint64_t *)field = 0;
			else
				*(int64_t *)field = -1;
			return 0;
		}
		/* fall through */
	case KW_UINT:
		rc = parse_uint(text, &v);
		if (rc < 0 || v < k->min || v > k->max) {
			snprintf(why, wlen, "expected %sa whole number from %llu to %llu, got \"%s\"",
				 k->type == KW_UINT ? "" : "auto or ", (unsigned long long)k->min,
				 (unsigned long long)k->max, text);
			return -1;
		}
		if (k->type == KW_INT_AUTO)
			*(int64_t *)field = (int64_t)v;
		else
			*(uint64_t *)field = v;
		return 0;
	case KW_DURATION:
		rc = parse_duration_ms(text, &v);
		if (rc < 0 || v < k->min || v > k->max) {
			char lo[24], hi[24];
			snprintf(why, wlen,
				 "expected a duration from %s to %s with a unit (ms, s, m, h), e.g. 500ms "
				 "or 5s; got \"%s\"", fmt_duration(k->min, lo, sizeof(lo)),
				 fmt_duration(k->max, hi, sizeof(hi)), text);
			return -1;
		}
		*(uint64_t *)field = v;
		return 0;
	case KW_SIZE:
		rc = parse_size(text, &v);
		if (rc < 0 || v < k->min || v > k->max) {
			snprintf(why, wlen, "expected a size such as 512, 16k or 1m (from %llu to %llu "
				 "bytes), got \"%s\"", (unsigned long long)k->min,
				 (unsigned long long)k->max, text);
			return -1;
		}
		*(uint64_t *)field = v;
		return 0;
	case KW_ENUM:
		for (int i = 0; k->enums[i]; i++) {
			if (strcmp(text, k->enums[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		join_enums(k->enums, list, sizeof(list));
		snprintf(why, wlen, "\"%s\" is not one of: %s%s", text, list,
			 k->enums == tls_version_names && (strcmp(text, "1.0") == 0 || strcmp(text, "1.1") == 0) ?
			 " (TLS 1.0 and 1.1 are never accepted: they are broken, RFC 8996)" : "");
		return -1;
	case KW_NAME:
		if (!valid_name(text)) {
			snprintf(why, wlen, "\"%s\" is not a valid name: use 1 to 64 letters, digits, "
				 "'-', '_' or '.'", text);
			return -1;
		}
		*(char **)field = xstrdup(text);
		return 0;
	case KW_STR:
		if (!*text) {
			snprintf(why, wlen, "must not be empty");
			return -1;
		}
		*(char **)field = xstrdup(text);
		return 0;
	case KW_ADDR: {
		struct conf_addr *a = field;
		const char *reason;
		if (addr_parse(text, &a->ss, &a->len, &a->wildcard, &reason) < 0) {
			snprintf(why, wlen, "\"%s\": %s", text, reason);
			return -1;
		}
		a->text = xstrdup(text);
		return 0;
	}
	default:
		snprintf(why, wlen, "internal: not a scalar keyword");
		return -1;
	}
}

/* Give k's field its default, if k has one. */
static void set_default(const struct kw *k, void *field)
{
	char why[256];
	if (k->def && parse_scalar(k, k->def, field, why, sizeof(why)) < 0)
		abort(); /* a default that does not parse is a bug in the table */
}

/* ---- tree walk --------------------------------------------------------- */

static void apply_map(struct ctx *c, const struct kw_table *t, yaml_node_t *node, char *base,
		      const char *path);
static void apply_defaults(const struct kw_table *t, char *base);

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static void set_loc(char *base, size_t loc_off, struct conf_loc loc)
{
	if (loc_off)
		*(struct conf_loc *)(base + loc_off - 1) = loc;
}

/* Each item of a scalar-or-list value: calls fn for every scalar. */
typedef bool (*item_fn)(struct ctx *c, const struct kw *k, yaml_node_t *item, char *base,
			size_t i, const char *path);

static void each_item(struct ctx *c, const struct kw *k, yaml_node_t *node, char *base,
		      const char *path, size_t elem, void **items, size_t *count, item_fn fn)
{
	yaml_node_item_t *it;
	size_t n = 0, i = 0;
	if (node->type == YAML_SCALAR_NODE) {
		*items = xcalloc(1, elem);
		*count = fn(c, k, node, *items, 0, path) ? 1 : 0;
		if (!*count) {
			free(*items);
			*items = NULL;
		}
		return;
	}
	if (node->type != YAML_SEQUENCE_NODE) {
		err(c, node_loc(node), path, "expected one value or a list of values, got %s",
		    node_kind(node));
		return;
	}
	for (it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++)
		n++;
	*items = xcalloc(n, elem);
	for (it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(c->doc, *it);
		char ipath[256];
		snprintf(ipath, sizeof(ipath), "%s[%zu]", path,
			 (size_t)(it - node->data.sequence.items.start));
		if (item->type != YAML_SCALAR_NODE) {
			err(c, node_loc(item), ipath, "expected a single value, got %s", node_kind(item));
			continue;
		}
		if (fn(c, k, item, (char *)*items + i * elem, i, ipath))
			i++;
	}
	*count = i;
	if (n && !i) {
		free(*items);
		*items = NULL;
	}
}

static bool addr_item(struct ctx *c, const struct kw *k, yaml_node_t *item, char *dst, size_t i,
		      const char *path)
{
	char why[512];
	struct conf_addr *a = (struct conf_addr *)dst;
	if (parse_scalar(k, scalar(item), a, why, sizeof(why)) < 0) {
		err(c, node_loc(item), path, "%s", why);
		return false;
	}
	a->loc = node_loc(item);
	return true;
}

static bool cidr_item(struct ctx *c, const struct kw *k, yaml_node_t *item, char *dst, size_t i,
		      const char *path)
{
	const char *why;
	if (cidr_parse(scalar(item), (struct cidr *)dst, &why) < 0) {
		err(c, node_loc(item), path, "\"%s\": %s", scalar(item), why);
		return false;
	}
	return true;
}

static bool str_item(struct ctx *c, const struct kw *k, yaml_node_t *item, char *dst, size_t i,
		     const char *path)
{
	if (!*scalar(item)) {
		err(c, node_loc(item), path, "must not be empty");
		return false;
	}
	*(char **)dst = xstrdup(scalar(item));
	return true;
}

static void apply_value(struct ctx *c, const struct kw *k, yaml_node_t *node, char *base,
			const char *path)
{
	char why[512];
	void *field = base + k->off;

	set_loc(base, k->loc_off, node_loc(node));
	switch (k->type) {
	case KW_SECTION:
		apply_map(c, k->sub, node, field, path);
		return;
	case KW_ADDRS: {
		void *items = NULL;
		size_t n = 0;
		struct kw one = *k;
		one.type = KW_ADDR;
		each_item(c, &one, node, base, path, sizeof(struct conf_addr), &items, &n, addr_item);
		*(void **)field = items;
		*(size_t *)(base + k->count_off) = n;
		return;
	}
	case KW_CIDRS: {
		struct cidr_list *l = field;
		void *items = NULL;
		each_item(c, k, node, base, path, sizeof(struct cidr), &items, &l->n, cidr_item);
		l->v = items;
		return;
	}
	case KW_MAP: {
		struct str_map *mp = field;
		yaml_node_pair_t *pr;
		size_t n = 0;
		if (node->type != YAML_MAPPING_NODE) {
			err(c, node_loc(node), path, "expected a mapping of names to values "
			    "({name: value}), got %s", node_kind(node));
			return;
		}
		for (pr = node->data.mapping.pairs.start; pr < node->data.mapping.pairs.top; pr++)
			n++;
		mp->keys = xcalloc(n, sizeof(char *));
		mp->vals = xcalloc(n, sizeof(char *));
		for (pr = node->data.mapping.pairs.start; pr < node->data.mapping.pairs.top; pr++) {
			yaml_node_t *key = yaml_document_get_node(c->doc, pr->key);
			yaml_node_t *val = yaml_document_get_node(c->doc, pr->value);
			if (key->type != YAML_SCALAR_NODE || val->type != YAML_SCALAR_NODE || !*scalar(key)) {
				err(c, node_loc(key), path, "each entry is `name: value` with a single value");
				continue;
			}
			mp->keys[mp->n] = xstrdup(scalar(key));
			mp->vals[mp->n++] = xstrdup(scalar(val));
		}
		return;
	}
	case KW_STRS: {
		struct str_list *l = field;
		void *items = NULL;
		each_item(c, k, node, base, path, sizeof(char *), &items, &l->n, str_item);
		l->v = items;
		return;
	}
	case KW_LIST: {
		yaml_node_item_t *it;
		size_t n = 0, i = 0;
		char *items;
		if (node->type != YAML_SEQUENCE_NODE) {
			err(c, node_loc(node), path, "expected a list (lines starting with '- '), got %s",
			    node_kind(node));
			return;
		}
		for (it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++)
			n++;
		items = xcalloc(n, k->sub->size);
		for (it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++, i++) {
			yaml_node_t *item = yaml_document_get_node(c->doc, *it);
			char ipath[256];
			char *elem = items + i * k->sub->size;
			snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
			/* Only an item that is a mapping gets a location: checks of
			 * missing keys skip the others, whose error is reported. */
			if (item->type == YAML_MAPPING_NODE)
				set_loc(elem, k->sub->loc_off, node_loc(item));
			apply_map(c, k->sub, item, elem, ipath);
		}
		*(void **)field = items;
		*(size_t *)(base + k->count_off) = n;
		return;
	}
	default:
		if (node->type != YAML_SCALAR_NODE) {
			err(c, node_loc(node), path, "expected a single value, got %s", node_kind(node));
			return;
		}
		if (parse_scalar(k, scalar(node), field, why, sizeof(why)) < 0) {
			err(c, node_loc(node), path, "%s", why);
			/* The cross-checks still run, to report what else is
			 * wrong: give them the default rather than nothing. */
			set_default(k, field);
		} else if (k->type == KW_ADDR)
			((struct conf_addr *)field)->loc = node_loc(node);
		return;
	}
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[65], cur[65];
	if (la > 64 || lb > 64)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(size_t));
	}
	return prev[lb];
}

static void unknown_key(struct ctx *c, const struct kw_table *t, yaml_node_t *key, const char *path)
{
	char list[512];
	size_t n = 0, best = 99;
	const char *guess = NULL;
	for (size_t i = 0; i < t->n; i++) {
		size_t d = edit_distance(scalar(key), t->kw[i].name);
		if (d < best) {
			best = d;
			guess = t->kw[i].name;
		}
		n += (size_t)snprintf(list + n, n < sizeof(list) ? sizeof(list) - n : 0, "%s%s",
				      i ? ", " : "", t->kw[i].name);
	}
	if (guess && best <= 2)
		err(c, node_loc(key), path, "unknown key \"%s\"; did you mean \"%s\"? (valid keys here: %s)",
		    scalar(key), guess, list);
	else
		err(c, node_loc(key), path, "unknown key \"%s\" (valid keys here: %s)", scalar(key), list);
}

static void apply_map(struct ctx *c, const struct kw_table *t, yaml_node_t *node, char *base,
		      const char *path)
{
	bool seen[32] = { false };
	yaml_node_pair_t *p;

	if (node->type != YAML_MAPPING_NODE) {
		err(c, node_loc(node), path, "expected a mapping (key: value lines), got %s",
		    node_kind(node));
		apply_defaults(t, base);
		return;
	}
	for (p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *key = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *val = yaml_document_get_node(c->doc, p->value);
		char kpath[256];
		size_t i;
		if (key->type != YAML_SCALAR_NODE) {
			err(c, node_loc(key), path, "keys must be plain words");
			continue;
		}
		for (i = 0; i < t->n && strcmp(t->kw[i].name, scalar(key)) != 0; i++)
			;
		if (i == t->n) {
			unknown_key(c, t, key, path);
			continue;
		}
		snprintf(kpath, sizeof(kpath), "%s%s%s", path, *path ? "." : "", t->kw[i].name);
		if (seen[i]) {
			err(c, node_loc(key), kpath, "duplicate key; each key may appear once");
			continue;
		}
		seen[i] = true;
		if (t->written_off)
			*(uint32_t *)(base + t->written_off - 1) |= 1u << i;
		apply_value(c, &t->kw[i], val, base, kpath);
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct kw *k = &t->kw[i];
		if (seen[i])
			continue;
		if (k->required) {
			char kpath[256];
			snprintf(kpath, sizeof(kpath), "%s%s%s", path, *path ? "." : "", k->name);
			err(c, node_loc(node), kpath, "missing; this key is required here");
		} else if (k->type == KW_SECTION) {
			apply_defaults(k->sub, base + k->off);
		} else {
			set_default(k, base + k->off);
		}
	}
}

static void apply_defaults(const struct kw_table *t, char *base)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct kw *k = &t->kw[i];
		if (k->type == KW_SECTION)
			apply_defaults(k->sub, base + k->off);
		else
			set_default(k, base + k->off);
	}
}

/* ---- cross-checks ------------------------------------------------------ */

/* Listener protocol -> pool protocols it may use (DESIGN.md section 5). */
static bool pair_allowed(int listener, int pool)
{
	switch (listener) {
	case PROTO_TCP:
	case PROTO_SSL: return pool == PROTO_TCP;
	case PROTO_UDP: return pool == PROTO_UDP;
	case PROTO_HTTP: return pool == PROTO_HTTP;
	case PROTO_HTTPS: return pool == PROTO_HTTP || pool == PROTO_HTTPS;
	}
	return false;
}

static const char pairs_text[] =
	"allowed pairs (listener -> pool): tcp -> tcp, ssl -> tcp, udp -> udp, http -> http, "
	"https -> http or https";

static bool proto_available(int proto)
{
	return proto != PROTO_UDP;
}

static bool same_addr(const struct conf_addr *a, const struct conf_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* The header edits' set and add fields as the lines every message gets, so
 * that no request formats them again. */
static void render_ops(struct conf_header_ops *o)
{
	const struct str_map *maps[] = { &o->set, &o->add };
	size_t n = 0;
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i < maps[k]->n; i++)
			n += strlen(maps[k]->keys[i]) + 2 + strlen(maps[k]->vals[i]) + 2;
	if (!n)
		return;
	o->lines = xmalloc(n + 1);
	o->lines_len = 0;
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i < maps[k]->n; i++)
			o->lines_len += (size_t)sprintf(o->lines + o->lines_len, "%s: %s\r\n",
							maps[k]->keys[i], maps[k]->vals[i]);
}

/* Text fulcrum writes into HTTP messages (header edits, redirect targets,
 * check requests) must pass the parser's own rules: the next hop would
 * refuse the message otherwise, and a line break in a value would start a
 * field the operator never wrote. */

/* s with control characters as \r, \n, \t or \xHH, for messages. */
static const char *shown(const char *s, char *buf, size_t len)
{
	size_t o = 0;
	for (; *s && o + 5 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		char e = ch == '\r' ? 'r' : ch == '\n' ? 'n' : ch == '\t' ? 't' : 0;
		if (ch >= 0x20 && ch != 0x7f) {
			buf[o++] = (char)ch;
		} else if (e) {
			buf[o++] = '\\';
			buf[o++] = e;
		} else {
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", ch);
		}
	}
	buf[o] = '\0';
	return buf;
}

/* A DNS name or address: letters, digits and -._ (':' too when colon). */
static bool host_chars(const char *h, bool colon)
{
	if (!*h)
		return false;
	for (; *h; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
		      *h == '-' || *h == '.' || *h == '_' || (colon && *h == ':')))
			return false;
	return true;
}

/* What a Host field may hold: a name or IPv4 address, or an IPv6 address in
 * brackets, each with an optional :port of 1 to 65535. */
static bool host_field_ok(const char *h)
{
	bool v6 = h[0] == '[';
	const char *name = h + v6;
	const char *end = v6 ? strchr(name, ']') : name + strcspn(name, ":");
	char buf[256];
	uint16_t port;
	const char *why;
	if (!end || end == name || (size_t)(end - name) >= sizeof(buf))
		return false;
	memcpy(buf, name, (size_t)(end - name));
	buf[end - name] = '\0';
	if (!host_chars(buf, v6))
		return false;
	end += v6;  /* past the ']' */
	return !*end || (*end == ':' && addr_parse_port(end + 1, &port, &why) == 0);
}

static void check_field_name(struct ctx *c, struct conf_loc loc, const char *path, const char *name)
{
	char b[160];
	if (!h1_is_token(name))
		err(c, loc, path, "\"%s\" is not a field name: use letters, digits and "
		    "!#$%%&'*+-.^_`|~, without spaces, colons or line breaks", shown(name, b, sizeof(b)));
}

static void check_field_value(struct ctx *c, struct conf_loc loc, const char *path,
			      const char *what, const char *value)
{
	char b[160];
	if (!h1_is_field_value(value))
		err(c, loc, path, "%s \"%s\" holds a line break or another control character; a "
		    "field value is one line of text", what, shown(value, b, sizeof(b)));
}

static void check_fields(struct ctx *c, struct conf_loc loc, const char *path,
			 const struct str_map *mp)
{
	for (size_t i = 0; i < mp->n; i++) {
		char what[160];
		check_field_name(c, loc, path, mp->keys[i]);
		snprintf(what, sizeof(what), "the value of %s", mp->keys[i]);
		if (h1_is_token(mp->keys[i]))
			check_field_value(c, loc, path, what, mp->vals[i]);
	}
}

static void check_header_ops(struct ctx *c, struct conf_loc loc, const char *path,
			     const struct conf_header_ops *o)
{
	char kp[128];
	snprintf(kp, sizeof(kp), "%s.set", path);
	check_fields(c, loc, kp, &o->set);
	snprintf(kp, sizeof(kp), "%s.add", path);
	check_fields(c, loc, kp, &o->add);
	snprintf(kp, sizeof(kp), "%s.remove", path);
	for (size_t i = 0; i < o->remove.n; i++)
		check_field_name(c, loc, kp, o->remove.v[i]);
}

/* A path fulcrum puts into a request line. */
static void check_target(struct ctx *c, struct conf_loc loc, const char *path, const char *target)
{
	char b[160];
	if (target[0] != '/' || !h1_is_target(target))
		err(c, loc, path, "\"%s\" is not a path: it starts with / and has no spaces, '#' or "
		    "control characters (write them %%-encoded: %%20)", shown(target, b, sizeof(b)));
}

static const char *const location_vars[] = {
	[LOCV_HOST] = "{host}", [LOCV_PATH] = "{path}", [LOCV_SCHEME] = "{scheme}",
};

enum location_var conf_location_var(const char *p, size_t *len)
{
	for (int v = LOCV_HOST; v <= LOCV_SCHEME; v++) {
		*len = strlen(location_vars[v]);
		if (strncmp(p, location_vars[v], *len) == 0)
			return (enum location_var)v;
	}
	*len = 0;
	return LOCV_NONE;
}

/* A redirect's Location: one line without spaces; {host}, {path} and
 * {scheme} are the only placeholders (a URI has no other braces). */
static void check_location(struct ctx *c, struct conf_loc loc, const char *path, const char *to)
{
	char b[160];
	if (!h1_is_field_value(to) || strchr(to, ' ')) {
		err(c, loc, path, "\"%s\" holds a space, a line break or another control character; "
		    "write them %%-encoded (%%20)", shown(to, b, sizeof(b)));
		return;
	}
	for (const char *p = strchr(to, '{'); p; p = strchr(p + 1, '{')) {
		size_t len;
		if (conf_location_var(p, &len) == LOCV_NONE) {
			size_t n = strcspn(p, "}");
			err(c, loc, path, "unknown placeholder \"%.*s\" in \"%s\"; the placeholders are "
			    "{host}, {path} and {scheme}", (int)(p[n] ? n + 1 : n), p, to);
			return;
		}
	}
}

/* "listeners[0]" + "bind" -> "listeners[0].bind" in buf. */
static const char *sub(const char *path, const char *key, char *buf)
{
	snprintf(buf, 96, "%s.%s", path, key);
	return buf;
}

static void *compile_re(struct ctx *c, struct conf_loc loc, const char *path, const char *pat);

/* "hex:50494e47" or text with \\r \\n \\t \\\\ escapes -> bytes. */
static unsigned char *decode_bytes(const char *text, size_t *len, const char **why)
{
	size_t n = strlen(text), o = 0;
	unsigned char *out = xmalloc(n + 1);
	if (strncmp(text, "hex:", 4) == 0) {
		const char *h = text + 4;
		size_t hl = strlen(h);
		if (hl == 0 || hl % 2) {
			*why = "hex: needs an even number of hex digits";
			goto fail;
		}
		for (size_t i = 0; i < hl; i += 2) {
			unsigned v;
			if (!isxdigit((unsigned char)h[i]) || !isxdigit((unsigned char)h[i + 1]) ||
			    sscanf(h + i, "%2x", &v) != 1) {
				*why = "hex: takes hex digits only";
				goto fail;
			}
			out[o++] = (unsigned char)v;
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			char ch = text[i];
			if (ch == '\\' && i + 1 < n) {
				char e = text[++i];
				ch = e == 'r' ? '\r' : e == 'n' ? '\n' : e == 't' ? '\t' : e == '\\' ? '\\' : 0;
				if (!ch) {
					*why = "unknown escape; use \\r, \\n, \\t or \\\\";
					goto fail;
				}
			}
			out[o++] = (unsigned char)ch;
		}
	}
	*len = o;
	return out;
fail:
	free(out);
	return NULL;
}

/* "200-299,301" -> ranges. */
static bool parse_statuses(struct conf_check *k)
{
	const char *p = k->expect_status;
	k->nstatus = 0;
	while (*p) {
		char *end;
		long lo = strtol(p, &end, 10), hi = lo;
		if (end == p || lo < 100 || lo > 599)
			return false;
		p = end;
		if (*p == '-') {
			hi = strtol(p + 1, &end, 10);
			if (end == p + 1 || hi < lo || hi > 599)
				return false;
			p = end;
		}
		if (k->nstatus == ARRAY_LEN(k->status_lo))
			return false;
		k->status_lo[k->nstatus] = (uint16_t)lo;
		k->status_hi[k->nstatus++] = (uint16_t)hi;
		while (*p == ' ')
			p++;
		if (*p == ',') {
			p++;
			while (*p == ' ')
				p++;
			if (!*p)
				return false;
		} else if (*p) {
			return false;
		}
	}
	return k->nstatus > 0;
}

/* A congestion control name is good when a TCP socket takes it, which is
 * what every connection will do (root may load a module on first use; others
 * are held to net.ipv4.tcp_allowed_congestion_control). */
static void check_congestion(struct ctx *c, const char *name, struct conf_loc loc, const char *path)
{
	char avail[256] = "";
	int fd, rc;
	if (!name)
		return;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;  /* nothing to learn here; each connection will try */
	rc = sock_set_congestion(fd, name);
	close(fd);
	if (rc == 0)
		return;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_congestion_control", "r");
	if (f) {
		if (!fgets(avail, sizeof(avail), f))
			avail[0] = '\0';
		avail[strcspn(avail, "\n")] = '\0';
		fclose(f);
	}
	err(c, loc, path, "congestion control \"%s\" cannot be used (%s); this kernel has: %s", name,
	    strerror(-rc), avail[0] ? avail : "(unknown)");
}

static void check_health(struct ctx *c, struct conf_pool *p, const char *path)
{
	struct conf_check *k = &p->check;
	char kp[96];
	const char *why = NULL;
	bool allowed;
	if (!k->loc.line)
		return;
	sub(path, "health_check", kp);
	allowed = k->type == CHECK_TCP || (k->type == CHECK_HTTP && p->protocol == PROTO_HTTP) ||
		  (k->type == CHECK_HTTPS && p->protocol == PROTO_HTTPS);
	if (!allowed)
		err(c, k->loc, kp, "%s %s pool cannot have %s health checks; allowed: %s", article(p->protocol),
		    conf_proto_name(p->protocol),
		    check_type_names[k->type], p->protocol == PROTO_HTTP ? "http or tcp" :
		    p->protocol == PROTO_HTTPS ? "https or tcp" : "tcp");
	if (k->timeout >= k->interval)
		err(c, k->loc, kp, "timeout (%llums) must be below interval (%llums)",
		    (unsigned long long)k->timeout, (unsigned long long)k->interval);
	if (!k->jitter_loc.line)
		k->jitter = k->interval / 10;
	else if (k->jitter * 2 > k->interval)
		err(c, k->jitter_loc, kp, "jitter must be at most half the interval");
	if (k->address) {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&k->addr;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&k->addr;
		memset(&k->addr, 0, sizeof(k->addr));
		if (inet_pton(AF_INET, k->address, &a4->sin_addr) == 1)
			a4->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, k->address, &a6->sin6_addr) == 1)
			a6->sin6_family = AF_INET6;
		else
			err(c, k->loc, kp, "address \"%s\" is not a numeric IP address (write it without a "
			    "port; use `port` for the port)", k->address);
	}
	if (k->type == CHECK_TCP) {
		if (k->send && !(k->send_bin = decode_bytes(k->send, &k->send_len, &why)))
			err(c, k->loc, kp, "send: %s", why);
		if (k->expect && !(k->expect_bin = decode_bytes(k->expect, &k->expect_len, &why)))
			err(c, k->loc, kp, "expect: %s", why);
		if (k->reuse_loc.line || k->reuse_limit_loc.line)
			err(c, k->reuse_loc.line ? k->reuse_loc : k->reuse_limit_loc, kp,
			    "reuse_connection and reuse_limit are for http and https checks; a tcp check "
			    "connects each time, since connecting is what it checks");
		if (k->tls && !p->tls.enabled)
			err(c, k->loc, kp, "tls: true needs `tls: { enabled: true }` on the pool (its TLS "
			    "settings are used)");
	} else {
		if (k->send || k->expect || k->tls)
			err(c, k->loc, kp, "send, expect and tls are for tcp checks; an %s check sends a "
			    "request and looks at expect_status and expect_body", check_type_names[k->type]);
		if (!parse_statuses(k))
			err(c, k->loc, kp, "expect_status \"%s\" is not a list of statuses; write ranges and "
			    "statuses between 100 and 599 separated by commas, like 200-299,301", k->expect_status);
		char what[96];
		if (k->path)
			check_target(c, k->loc, sub(kp, "path", what), k->path);
		if (k->method && !h1_is_token(k->method))
			err(c, k->loc, sub(kp, "method", what), "\"%s\" is not a method: a method is one "
			    "word, like GET or HEAD", k->method);
		if (k->host && !host_field_ok(k->host)) {
			char b[160];
			err(c, k->loc, sub(kp, "host", what), "\"%s\" is not a host: write a name or "
			    "address, optionally with :port, like api.example.com or [::1]:8080",
			    shown(k->host, b, sizeof(b)));
		}
		check_fields(c, k->loc, sub(kp, "headers", what), &k->headers);
		if (k->reuse_limit_loc.line && !k->reuse_connection)
			warn(c, k->reuse_limit_loc, sub(kp, "reuse_limit", what), "has no effect with "
			     "`reuse_connection: false`: every check connects anew");
		if (k->expect_body && k->expect_body[0] == '~')
			k->body_re = compile_re(c, k->loc, kp, k->expect_body + 1);
	}
}

/* The hook runs by /bin/sh when a server changes state, maybe at night:
 * a program named by its path that cannot run is worth a warning now. */
static void check_hook(struct ctx *c, struct conf_loc loc, const char *path, const char *cmd)
{
	size_t skip = strspn(cmd, " \t"), n = strcspn(cmd + skip, " \t;|&<>");
	char prog[PATH_MAX];
	if (n == 0 || n >= sizeof(prog) || !memchr(cmd + skip, '/', n))
		return;  /* a shell word found on PATH, or not a plain program */
	memcpy(prog, cmd + skip, n);
	prog[n] = '\0';
	if (access(prog, X_OK) < 0)
		warn(c, loc, path, "%s cannot be run: %s (the hook would fail each time a server "
		     "changes state)", prog, strerror(errno));
}

static void check_pools(struct ctx *c, struct config *cfg)
{
	for (size_t i = 0; i < cfg->npools; i++) {
		struct conf_pool *p = &cfg->pools[i];
		char path[64], kp[96];
		snprintf(path, sizeof(path), "pools[%zu]", i);
		for (size_t j = 0; j < i; j++)
			if (p->name && cfg->pools[j].name && strcmp(p->name, cfg->pools[j].name) == 0)
				err(c, p->name_loc, sub(path, "name", kp), "duplicate pool name \"%s\" (first defined at "
				    "line %d); pool names must be unique", p->name, cfg->pools[j].name_loc.line);
		if (!proto_available(p->protocol))
			err(c, p->protocol_loc, sub(path, "protocol", kp), "protocol %s is not available in this version of "
			    "fulcrum; use tcp, http or https", conf_proto_name(p->protocol));
		if (p->servers && p->nservers == 0)
			err(c, p->loc, sub(path, "servers", kp), "the list is empty; a pool needs at least one server");
		for (size_t s = 0; s < p->nservers; s++)
			for (size_t t = 0; t < s; t++)
				if (p->servers[s].addr.text && p->servers[t].addr.text &&
				    same_addr(&p->servers[s].addr, &p->servers[t].addr))
					err(c, p->servers[s].addr.loc, sub(path, "servers", kp), "server %s is listed twice; "
					    "use weight to give it a larger share", p->servers[s].addr.text);
		if (p->retries < 0)
			p->retries = p->nservers > 0 ? (int64_t)p->nservers - 1 : 0;
		if (p->protocol == PROTO_HTTPS)
			p->tls.enabled = true;
		if (p->tls.loc.line && p->protocol == PROTO_HTTP)
			err(c, p->tls.loc, sub(path, "tls", kp), "an http pool speaks plain HTTP to its "
			    "servers; for TLS to the servers write `protocol: https`");
		if (p->tls.server_name && !host_chars(p->tls.server_name, true)) {
			char b[160];
			err(c, p->tls.loc, sub(path, "tls.server_name", kp), "\"%s\" is not a host name "
			    "or address: use letters, digits, '-', '.' (and ':' in IPv6 addresses)",
			    shown(p->tls.server_name, b, sizeof(b)));
		}
		if (p->on_change)
			check_hook(c, p->loc, sub(path, "on_change.exec", kp), p->on_change);
		if ((p->tls.cert != NULL) != (p->tls.key != NULL))
			err(c, p->tls.loc, sub(path, "tls", kp), "`cert` and `key` go together: give both "
			    "for a client certificate, or neither");
		if (p->tls.loc.line && !p->tls.enabled && p->protocol == PROTO_TCP)
			warn(c, p->tls.loc, sub(path, "tls", kp), "TLS settings are ignored without "
			     "`enabled: true`");
		check_health(c, p, path);
		check_congestion(c, p->tcp_congestion, p->tcp_congestion_loc,
				 sub(path, "tcp_congestion", kp));
		if (p->hash_key && !((strncmp(p->hash_key, "header:", 7) == 0 && p->hash_key[7]) ||
				     (strncmp(p->hash_key, "cookie:", 7) == 0 && p->hash_key[7])))
			err(c, p->hash_key_loc, sub(path, "hash_key", kp), "\"%s\" is not a hash key; write "
			    "header:NAME or cookie:NAME", p->hash_key);
		else if (p->hash_key)
			check_field_name(c, p->hash_key_loc, sub(path, "hash_key", kp), p->hash_key + 7);
	}
}

static struct conf_pool *resolve_pool(struct ctx *c, struct config *cfg, int lproto, const char *name,
				      struct conf_loc loc, const char *path, bool *used)
{
	char names[512];
	size_t n = 0;
	struct conf_pool *found = NULL;
	/* Mark every pool of that name used: duplicates are reported once, as
	 * duplicates, not again as unused. */
	for (size_t p = 0; p < cfg->npools; p++) {
		struct conf_pool *pool = &cfg->pools[p];
		if (!pool->name || strcmp(pool->name, name) != 0)
			continue;
		used[p] = true;
		if (!found)
			found = pool;
	}
	if (found) {
		if (!pair_allowed(lproto, found->protocol))
			err(c, loc, path, "%s %s listener cannot use pool \"%s\" of protocol %s; %s",
			    article(lproto), conf_proto_name(lproto), found->name, conf_proto_name(found->protocol), pairs_text);
		return found;
	}
	names[0] = '\0';
	for (size_t p = 0; p < cfg->npools; p++)
		n += (size_t)snprintf(names + n, n < sizeof(names) ? sizeof(names) - n : 0, "%s%s",
				      p ? ", " : "", cfg->pools[p].name ? cfg->pools[p].name : "?");
	err(c, loc, path, "no pool is named \"%s\" (pools defined: %s)", name,
	    cfg->npools ? names : "none");
	return NULL;
}

/* Host patterns are compared in lower case; "*." is allowed only in front. */
static bool normalise_host(char *h)
{
	const char *rest = strncmp(h, "*.", 2) == 0 ? h + 2 : h;
	size_t n = strlen(rest);
	if (n > 1 && rest[n - 1] == '.')
		h[strlen(h) - 1] = '\0';  /* "example.com." names example.com */
	if (!host_chars(rest, false))
		return false;
	for (char *p = h; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	return true;
}

/* Compile a PCRE2 pattern, reporting a bad one at loc. */
static void *compile_re(struct ctx *c, struct conf_loc loc, const char *path, const char *pat)
{
	int code;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(code, msg, sizeof(msg));
		err(c, loc, path, "\"%s\" is not a valid regular expression: %s at offset %zu", pat,
		    (const char *)msg, (size_t)off);
	}
	return re;
}

static struct conf_cond *compile_conds(struct ctx *c, struct conf_loc loc, const char *path,
				       const struct str_map *mp)
{
	struct conf_cond *v = xcalloc(mp->n, sizeof(*v));
	for (size_t i = 0; i < mp->n; i++) {
		v[i].name = mp->keys[i];
		v[i].value = mp->vals[i];
		if (mp->vals[i][0] == '~')
			v[i].re = compile_re(c, loc, path, mp->vals[i] + 1);
	}
	return v;
}

static void check_listener_tls(struct ctx *c, struct conf_listener *l, const char *path);

static void check_routes(struct ctx *c, struct config *cfg, struct conf_listener *l,
			 const char *lpath, bool *used)
{
	for (size_t r = 0; r < l->nroutes; r++) {
		struct conf_route *rt = &l->routes[r];
		char path[96], kp[96];
		int actions = (rt->pool_name != NULL) + (rt->respond.loc.line != 0) +
			      (rt->redirect.loc.line != 0) + (rt->split_loc.line != 0);
		struct conf_loc mloc = rt->match.loc.line ? rt->match.loc : rt->loc;
		snprintf(path, sizeof(path), "%s.routes[%zu]", lpath, r);
		for (size_t q = 0; rt->name && q < r; q++)
			if (l->routes[q].name && strcmp(l->routes[q].name, rt->name) == 0)
				err(c, rt->loc, sub(path, "name", kp), "duplicate route name \"%s\" (first at "
				    "line %d); a route's name labels its counters and log lines, so each is "
				    "unique within its listener", rt->name, l->routes[q].loc.line);
		if (actions != 1 && rt->loc.line)
			err(c, rt->loc, path, "a route needs exactly one of `pool`, `split`, `respond` or "
			    "`redirect` (this one has %d)", actions);
		check_header_ops(c, rt->loc, sub(path, "request_headers", kp), &rt->req_headers);
		check_header_ops(c, rt->loc, sub(path, "response_headers", kp), &rt->resp_headers);
		render_ops(&rt->req_headers);
		render_ops(&rt->resp_headers);
		for (size_t k = 0; k < rt->match.header.n; k++)
			check_field_name(c, mloc, sub(path, "match.header", kp), rt->match.header.keys[k]);
		if (rt->redirect.to)
			check_location(c, rt->redirect.loc, sub(path, "redirect.to", kp), rt->redirect.to);
		if (rt->respond.content_type)
			check_field_value(c, rt->respond.loc, sub(path, "respond.content_type", kp),
					  "the content type", rt->respond.content_type);
		rt->split_total = 0;
		for (size_t k = 0; k < rt->nsplit; k++) {
			char sp[128];
			struct conf_split *sl = &rt->split[k];
			snprintf(sp, sizeof(sp), "%s.split[%zu].pool", path, k);
			if (sl->pool_name)
				sl->pool = resolve_pool(c, cfg, l->protocol, sl->pool_name, sl->loc, sp, used);
			rt->split_total += sl->weight;
		}
		if (rt->split_loc.line && rt->split_total == 0)
			err(c, rt->split_loc, sub(path, "split", kp), "the weights add up to 0; give at least "
			    "one pool a weight above 0");
		if (rt->rewrite_prefix && !rt->match.path_prefix)
			err(c, rt->loc, sub(path, "rewrite.path_prefix", kp), "needs `match.path_prefix` on "
			    "the same route");
		else if (rt->rewrite_prefix)
			check_target(c, rt->loc, sub(path, "rewrite.path_prefix", kp), rt->rewrite_prefix);
		if (rt->match.path_regex)
			rt->match.path_re = compile_re(c, mloc, sub(path, "match.path_regex", kp),
						       rt->match.path_regex);
		rt->match.headers = compile_conds(c, mloc, sub(path, "match.header", kp), &rt->match.header);
		rt->match.queries = compile_conds(c, mloc, sub(path, "match.query", kp), &rt->match.query);
		if (rt->pool_name)
			rt->pool = resolve_pool(c, cfg, l->protocol, rt->pool_name, rt->pool_loc,
						sub(path, "pool", kp), used);
		if (rt->redirect.loc.line && rt->redirect.code != 301 && rt->redirect.code != 302 &&
		    rt->redirect.code != 303 && rt->redirect.code != 307 && rt->redirect.code != 308)
			err(c, rt->redirect.loc, sub(path, "redirect.code", kp), "%llu is not a redirect "
			    "status; use 301, 302, 303, 307 or 308", (unsigned long long)rt->redirect.code);
		if (rt->match.host && !normalise_host(rt->match.host))
			err(c, rt->loc, sub(path, "match.host", kp), "\"%s\" is not a host name; write "
			    "api.example.com or *.example.com, without a port", rt->match.host);
		if (rt->match.path_prefix && rt->match.path_prefix[0] != '/')
			err(c, rt->loc, sub(path, "match.path_prefix", kp), "must start with /");
		if (rt->match.path && rt->match.path[0] != '/')
			err(c, rt->loc, sub(path, "match.path", kp), "must start with /");
		if (l->tls_passthrough) {
			const struct conf_match *m = &rt->match;
			if (m->host || m->path_prefix || m->path || m->methods.n || m->source.n ||
			    m->path_regex || m->header.n || m->query.n || m->client_cert_subject)
				err(c, mloc, sub(path, "match", kp), "a tls_passthrough listener cannot see "
				    "HTTP or client certificates; it matches only on `sni`");
			if (rt->respond.loc.line || rt->redirect.loc.line || rt->split_loc.line ||
			    rt->rewrite_prefix || rt->req_headers.set.n || rt->req_headers.add.n ||
			    rt->req_headers.remove.n || rt->resp_headers.set.n || rt->resp_headers.add.n ||
			    rt->resp_headers.remove.n)
				err(c, rt->loc, path, "a tls_passthrough route can only name a `pool`");
			if (m->sni && !normalise_host(m->sni))
				err(c, mloc, sub(path, "match.sni", kp), "\"%s\" is not a server name; write "
				    "api.example.com or *.example.com", m->sni);
		} else if (rt->match.sni) {
			err(c, mloc, sub(path, "match.sni", kp), "sni is for routes of tcp listeners with "
			    "`tls_passthrough: true`; on %s listeners match `host`",
			    conf_proto_name(l->protocol));
		}
		if (rt->match.client_cert_subject) {
			if (l->protocol != PROTO_HTTPS || !l->tls.client_auth.loc.line ||
			    l->tls.client_auth.mode == CA_NONE)
				err(c, mloc, sub(path, "match.client_cert_subject", kp), "needs an https "
				    "listener with `tls.client_auth` (mode optional or required)");
			else if (rt->match.client_cert_subject[0] == '~')
				rt->match.subject_re = compile_re(c, mloc,
					sub(path, "match.client_cert_subject", kp), rt->match.client_cert_subject + 1);
		}
	}
}

struct tls_report_ctx {
	struct ctx *c;
	const char *path;              /* "listeners[0].tls" or "pools[1].tls" */
	struct conf_loc loc;           /* of the tls section */
	const struct conf_cert *certs; /* listeners: for per-certificate places */
};

static void tls_report(void *arg, int cert, bool warning, const char *msg)
{
	struct tls_report_ctx *r = arg;
	char kp[128];
	struct conf_loc loc = r->loc;
	if (cert >= 0 && r->certs) {
		snprintf(kp, sizeof(kp), "%s.certificates[%d]", r->path, cert);
		loc = r->certs[cert].loc;
	} else {
		snprintf(kp, sizeof(kp), "%s", r->path);
	}
	if (warning)
		warn(r->c, loc, kp, "%s", msg);
	else
		err(r->c, loc, kp, "%s", msg);
}

static void check_listener_tls(struct ctx *c, struct conf_listener *l, const char *path)
{
	char kp[96];
	struct conf_tls_server *t = &l->tls;
	bool terminates = l->protocol == PROTO_SSL || l->protocol == PROTO_HTTPS;
	struct tls_report_ctx r = { c, sub(path, "tls", kp), t->loc, t->certs };

	if (l->tls_passthrough && l->protocol != PROTO_TCP)
		err(c, l->loc, path, "tls_passthrough is for tcp listeners (TLS is then not terminated); "
		    "%s %s listener %s", article(l->protocol), conf_proto_name(l->protocol), terminates ?
		    "terminates TLS itself" : "cannot pass TLS through");
	if (!terminates) {
		if (t->loc.line)
			err(c, t->loc, kp, "`tls` is for ssl and https listeners, which terminate TLS; "
			    "to pass TLS through untouched use `protocol: tcp` with `tls_passthrough: true`");
		return;
	}
	if (!t->loc.line) {
		if (l->loc.line)
			err(c, l->loc, kp, "missing; an %s listener needs `tls` with at least one "
			    "certificate: `tls: { certificates: [{ cert: site.pem, key: site.key }] }`",
			    conf_proto_name(l->protocol));
		return;
	}
	if (t->certs && t->ncerts == 0)
		err(c, t->certs_loc, kp, "certificates: the list is empty; give at least one");
	if (t->min_version > t->max_version)
		err(c, t->loc, kp, "min_version %s is newer than max_version %s",
		    tls_version_names[t->min_version], tls_version_names[t->max_version]);
	if (t->forward_client_cert && l->protocol != PROTO_HTTPS)
		err(c, t->loc, kp, "forward_client_cert needs an https listener (it adds request "
		    "fields); an ssl listener passes bytes only");
	if (t->client_auth.loc.line && t->client_auth.mode != CA_NONE && !t->client_auth.ca)
		err(c, t->client_auth.loc, kp, "client_auth: `ca` is required to verify client "
		    "certificates (a PEM file of the authorities they must chain to)");
	for (size_t i = 0; i < t->alpn.n; i++)
		if (!*t->alpn.v[i] || strlen(t->alpn.v[i]) > 255)
			err(c, t->loc, kp, "alpn: \"%s\" is not a protocol name (1 to 255 bytes)",
			    t->alpn.v[i]);
	if (t->ncerts)
		l->tls_rt = tls_server_new(l, tls_report, &r);
}

static void check_pool_tls(struct ctx *c, struct conf_pool *p, const char *path)
{
	char kp[96];
	struct tls_report_ctx r = { c, sub(path, "tls", kp), p->tls.loc.line ? p->tls.loc : p->loc, NULL };
	if (p->tls.enabled)
		p->tls.rt = tls_client_new(p, tls_report, &r);
}

static void load_error_page(struct ctx *c, struct conf_listener *l, size_t e, const char *lpath)
{
	char kp[96];
	uint64_t status;
	char *buf;
	size_t n;
	sub(lpath, "error_pages", kp);
	if (parse_uint(l->error_pages.keys[e], &status) < 0 || status < 400 || status > 599) {
		err(c, l->loc, kp, "\"%s\" is not an error status; use 400 to 599", l->error_pages.keys[e]);
		return;
	}
	buf = read_whole_file(l->error_pages.vals[e], 65536, &n);
	if (!buf && errno == EFBIG) {
		err(c, l->loc, kp, "%s is larger than 64k; an error page must be small",
		    l->error_pages.vals[e]);
		return;
	}
	if (!buf) {
		err(c, l->loc, kp, "cannot read %s for status %llu: %s", l->error_pages.vals[e],
		    (unsigned long long)status, strerror(errno));
		return;
	}
	free(l->pages[status]);
	l->pages[status] = buf;
	l->page_len[status] = n;
}

/* Keys the table marks "http:", written for a listener that does not read
 * HTTP: they do nothing there, and an operator who wrote escaped_slashes:
 * reject should not believe otherwise. */
static void warn_http_keys(struct ctx *c, const struct conf_listener *l, const char *path)
{
	char keys[256] = "";
	size_t n = 0;
	for (size_t i = 0; i < listener_table.n; i++)
		if ((l->keys_written & (1u << i)) && strncmp(listener_kw[i].doc, "http: ", 6) == 0) {
			snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%s%s",
				 n++ ? ", " : "", listener_kw[i].name);
		}
	if (n)
		warn(c, l->loc, path, "%s only change%s how HTTP is handled; %s %s listener does not "
		     "read HTTP, so %s nothing here", keys, n > 1 ? "" : "s",
		     article(l->protocol), conf_proto_name(l->protocol), n > 1 ? "they do" : "it does");
}

static void check_listeners(struct ctx *c, struct config *cfg, struct conf_loc root)
{
	bool *used = xcalloc(cfg->npools, sizeof(bool));
	if (cfg->listeners && cfg->nlisteners == 0)
		err(c, root, "listeners", "the list is empty; a config needs at least one listener");
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		struct conf_listener *l = &cfg->listeners[i];
		char path[64], kp[96];
		snprintf(path, sizeof(path), "listeners[%zu]", i);
		for (size_t j = 0; j < i; j++)
			if (l->name && cfg->listeners[j].name && strcmp(l->name, cfg->listeners[j].name) == 0)
				err(c, l->name_loc, sub(path, "name", kp), "duplicate listener name \"%s\" (first defined at "
				    "line %d); listener names must be unique", l->name,
				    cfg->listeners[j].name_loc.line);
		check_congestion(c, l->tcp_congestion, l->tcp_congestion_loc,
				 sub(path, "tcp_congestion", kp));
		if (!proto_available(l->protocol))
			err(c, l->protocol_loc, sub(path, "protocol", kp), "protocol %s is not available in this version of "
			    "fulcrum; use tcp, ssl, http or https", conf_proto_name(l->protocol));
		for (size_t b = 0; b < l->nbinds; b++) {
			struct conf_addr *a = &l->binds[b];
			if (a->ss.ss_family == AF_INET6 &&
			    IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&a->ss)->sin6_addr)) {
				err(c, a->loc, sub(path, "bind", kp), "bind %s is an IPv4-mapped IPv6 address, which "
				    "cannot be bound; write it as IPv4", a->text);
				continue;
			}
			if (a->wildcard && !l->public_)
				err(c, a->loc, sub(path, "bind", kp), "bind %s is a wildcard address: it listens on every "
				    "network interface, not only this machine's loopback. Add `public: true` "
				    "to this listener if that is intended, or bind a specific address such "
				    "as 127.0.0.1", a->text);
			for (size_t j = 0; j <= i; j++) {
				struct conf_listener *o = &cfg->listeners[j];
				size_t ob;
				for (ob = 0; ob < (j == i ? b : o->nbinds); ob++)
					if (same_addr(a, &o->binds[ob]))
						break;
				if (ob < (j == i ? b : o->nbinds)) {
					err(c, a->loc, sub(path, "bind", kp), "address %s is already bound by listener "
					    "\"%s\"", a->text, o->name ? o->name : "?");
					break;
				}
			}
		}
		if (l->binds && l->nbinds == 0)
			err(c, l->bind_loc, sub(path, "bind", kp), "the list is empty; give at least one address");
		if (l->pool_name)
			l->pool = resolve_pool(c, cfg, l->protocol, l->pool_name, l->pool_loc,
					       sub(path, "pool", kp), used);
		for (size_t e = 0; e < l->error_pages.n; e++)
			load_error_page(c, l, e, path);
		if (l->protocol == PROTO_HTTP || l->protocol == PROTO_HTTPS ||
		    (l->protocol == PROTO_TCP && l->tls_passthrough)) {
			if (!l->pool_name && !l->pool_loc.line && l->nroutes == 0 && l->loc.line)
				err(c, l->loc, path, "%s listener needs `routes`, a `pool`, or both",
				    l->tls_passthrough ? "a tls_passthrough" : l->protocol == PROTO_HTTP ?
				    "an http" : "an https");
			check_routes(c, cfg, l, path, used);
		} else {
			/* Absent, not merely invalid (that was reported), on a listener
			 * that is a mapping at all. */
			if (!l->pool_name && !l->pool_loc.line && l->loc.line)
				err(c, l->loc, sub(path, "pool", kp), "missing; %s %s listener needs a pool",
				    article(l->protocol), conf_proto_name(l->protocol));
			if (l->routes)
				err(c, l->routes_loc, sub(path, "routes", kp), "routes are for http, https and "
				    "tls_passthrough listeners; %s %s listener sends every connection to its pool",
				    article(l->protocol), conf_proto_name(l->protocol));
		}
		if (l->protocol != PROTO_HTTP && l->protocol != PROTO_HTTPS)
			warn_http_keys(c, l, path);
		check_listener_tls(c, l, path);
	}
	for (size_t p = 0; p < cfg->npools; p++)
		if (!used[p] && cfg->pools[p].name)
			warn(c, cfg->pools[p].name_loc, "", "pool \"%s\" is not used by any listener",
			     cfg->pools[p].name);
	free(used);
}

/* ---- load / free ------------------------------------------------------- */

static void free_addr(struct conf_addr *a)
{
	free(a->text);
}

static void free_map(struct str_map *mp)
{
	for (size_t i = 0; i < mp->n; i++) {
		free(mp->keys[i]);
		free(mp->vals[i]);
	}
	free(mp->keys);
	free(mp->vals);
}

static void free_strs(struct str_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* Names and values belong to the str_map; only the compiled code is ours. */
static void free_conds(struct conf_cond *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		if (v[i].re)
			pcre2_code_free(v[i].re);
	free(v);
}

/* Frees what the keyword table t parsed into the struct at base: strings,
 * addresses, lists and maps, and nested sections and lists in turn. A key
 * added to a table is freed with no further code. */
static void free_fields(const struct kw_table *t, char *base)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct kw *k = &t->kw[i];
		char *field = base + k->off;
		switch (k->type) {
		case KW_NAME:
		case KW_STR:
			free(*(char **)field);
			break;
		case KW_ADDR:
			free_addr((struct conf_addr *)field);
			break;
		case KW_ADDRS: {
			struct conf_addr *a = *(struct conf_addr **)field;
			size_t n = *(size_t *)(base + k->count_off);
			for (size_t j = 0; a && j < n; j++)
				free_addr(&a[j]);
			free(a);
			break;
		}
		case KW_CIDRS:
			free(((struct cidr_list *)field)->v);
			break;
		case KW_STRS:
			free_strs((struct str_list *)field);
			break;
		case KW_MAP:
			free_map((struct str_map *)field);
			break;
		case KW_SECTION:
			free_fields(k->sub, field);
			break;
		case KW_LIST: {
			char *items = *(char **)field;
			size_t n = *(size_t *)(base + k->count_off);
			for (size_t j = 0; items && j < n; j++)
				free_fields(k->sub, items + j * k->sub->size);
			free(items);
			break;
		}
		default:
			break;
		}
	}
}

void conf_free(struct config *cfg)
{
	if (!cfg)
		return;
	/* What was made from the keys at load; the keys' own values go last. */
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		struct conf_listener *l = &cfg->listeners[i];
		for (size_t r = 0; r < l->nroutes; r++) {
			struct conf_route *rt = &l->routes[r];
			if (rt->match.subject_re)
				pcre2_code_free(rt->match.subject_re);
			if (rt->match.path_re)
				pcre2_code_free(rt->match.path_re);
			free_conds(rt->match.headers, rt->match.header.n);
			free_conds(rt->match.queries, rt->match.query.n);
			free(rt->req_headers.lines);
			free(rt->resp_headers.lines);
		}
		tls_server_unref(l->tls_rt);
		for (size_t e = 0; e < ARRAY_LEN(l->pages); e++)
			free(l->pages[e]);
	}
	for (size_t i = 0; i < cfg->npools; i++) {
		struct conf_pool *p = &cfg->pools[i];
		tls_client_free(p->tls.rt);
		free(p->check.send_bin);
		free(p->check.expect_bin);
		if (p->check.body_re)
			pcre2_code_free(p->check.body_re);
	}
	free_fields(&root_table, (char *)cfg);
	free(cfg->path);
	free(cfg);
}

void conf_errors_free(struct conf_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i]);
	for (size_t i = 0; i < errs->nwarn; i++)
		free(errs->warn[i]);
	free(errs->v);
	free(errs->warn);
	memset(errs, 0, sizeof(*errs));
}

struct config *conf_load_string(const char *text, size_t len, const char *path,
				struct conf_errors *errs)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	struct ctx c = { path, &doc, errs };
	yaml_node_t *root;

	cfg->path = xstrdup(path);
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		struct conf_loc loc = { (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1 };
		if (parser.error == YAML_READER_ERROR) {
			loc.line = 1;
			loc.col = 1;
			for (size_t i = 0; i < parser.problem_offset && i < len; i++) {
				if (text[i] == '\n') {
					loc.line++;
					loc.col = 1;
				} else {
					loc.col++;
				}
			}
		}
		err(&c, loc, "", "not valid YAML: %s%s%s", parser.problem ? parser.problem : "syntax error",
		    parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		goto fail;
	}
	{
		yaml_document_t more;
		if (!yaml_parser_load(&parser, &more)) {
			struct conf_loc loc = { (int)parser.problem_mark.line + 1,
						(int)parser.problem_mark.column + 1 };
			err(&c, loc, "", "not valid YAML: %s", parser.problem ? parser.problem : "syntax error");
		} else {
			if (yaml_document_get_root_node(&more)) {
				struct conf_loc loc = { (int)more.start_mark.line + 1,
							(int)more.start_mark.column + 1 };
				err(&c, loc, "", "a config is one YAML document; remove this second one");
			}
			yaml_document_delete(&more);
		}
	}
	yaml_parser_delete(&parser);
	root = yaml_document_get_root_node(&doc);
	if (!root || (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
		struct conf_loc loc = { 1, 1 };
		err(&c, loc, "", "the file is empty; a config needs at least `listeners:` and `pools:`");
		yaml_document_delete(&doc);
		goto fail;
	}
	apply_map(&c, &root_table, root, (char *)cfg, "");
	check_pools(&c, cfg);
	check_listeners(&c, cfg, node_loc(root));
	for (size_t i = 0; i < cfg->npools; i++) {
		char ppath[64];
		snprintf(ppath, sizeof(ppath), "pools[%zu]", i);
		check_pool_tls(&c, &cfg->pools[i], ppath);
	}
	yaml_document_delete(&doc);
	if (errs->n)
		goto fail;
	return cfg;
fail:
	conf_free(cfg);
	return NULL;
}

struct config *conf_load(const char *path, struct conf_errors *errs)
{
	size_t len = 0;
	char *buf = read_whole_file(path, (size_t)64 << 20, &len);
	struct config *cfg;
	if (!buf) {
		char *line;
		if (asprintf(&line, "%s:0:0: cannot read the config file: %s", path, strerror(errno)) < 0)
			abort();
		push(&errs->v, &errs->n, line);
		return NULL;
	}
	cfg = conf_load_string(buf, len, path, errs);
	free(buf);
	return cfg;
}

/* ---- reference documentation ------------------------------------------ */

static const char *type_text(const struct kw *k, char *buf, size_t len)
{
	char list[256];
	switch (k->type) {
	case KW_BOOL: return "true or false";
	case KW_UINT: snprintf(buf, len, "whole number, %llu to %llu", (unsigned long long)k->min,
			       (unsigned long long)k->max); return buf;
	case KW_UINT_AUTO:
	case KW_INT_AUTO: snprintf(buf, len, "`auto` or %llu to %llu", (unsigned long long)k->min,
				   (unsigned long long)k->max); return buf;
	case KW_NAME: return "name (letters, digits, `-` `_` `.`)";
	case KW_STR: return "text";
	case KW_DURATION: return "duration (`500ms`, `5s`, `2m`, `1h`)";
	case KW_SIZE: return "size (`512`, `16k`, `1m`)";
	case KW_ENUM: join_enums(k->enums, list, sizeof(list));
		snprintf(buf, len, "one of: %s", list); return buf;
	case KW_ADDR: return "address";
	case KW_ADDRS: return "address, or list of addresses";
	case KW_CIDRS: return "network (CIDR), or list of networks";
	case KW_STRS: return "text, or list of texts";
	case KW_MAP: return "mapping of names to texts";
	case KW_SECTION: return "section";
	case KW_LIST: return "list of sections";
	}
	return "?";
}

static void write_table(FILE *out, const struct kw_table *t)
{
	if (*t->path)
		fprintf(out, "## `%s`\n\n", t->path);
	else
		fputs("## Top level\n\n", out);
	fprintf(out, "%s\n\n| key | type | default | description |\n|---|---|---|---|\n", t->intro);
	for (size_t i = 0; i < t->n; i++) {
		const struct kw *k = &t->kw[i];
		char tb[256];
		const char *def = k->def_doc ? k->def_doc : k->def;
		fprintf(out, "| `%s` | %s | %s%s%s | %s |\n", k->name, type_text(k, tb, sizeof(tb)),
			def && !k->def_doc ? "`" : "", k->required ? "required" : def ? def : "",
			def && !k->def_doc ? "`" : "", k->doc);
	}
	fputc('\n', out);
	for (size_t i = 0; i < t->n; i++)
		if (t->kw[i].sub)
			write_table(out, t->kw[i].sub);
}

void conf_write_reference(FILE *out)
{
	fputs("# Configuration reference\n\n"
	      "<!-- Generated by `fulcrum config-reference` from the keyword tables in src/conf.c; "
	      "`make docs` rewrites it and `make test` fails when it is stale. -->\n\n"
	      "fulcrum reads one YAML file. `fulcrum check -c FILE` validates it and prints every "
	      "problem as `FILE:LINE:COL: key.path: message`. Unknown keys are errors.\n\n"
	      "- Durations take a unit: `250ms`, `5s`, `2m`, `1h`.\n"
	      "- Sizes are bytes, or with a suffix: `16k`, `1m`, `1g` (powers of 1024).\n"
	      "- Addresses are numeric: `127.0.0.1:8080`, `[::1]:8080`; `:8080` means every IPv4 "
	      "interface.\n"
	      "- Listener and pool protocols pair as: tcp -> tcp, ssl -> tcp, udp -> udp, "
	      "http -> http, https -> http or https. udp is not available yet.\n\n",
	      out);
	write_table(out, &root_table);
}
