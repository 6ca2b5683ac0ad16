/* Configuration: YAML (libyaml) read through keyword tables into immutable
 * structs. The tables (conf.c) are the one source of truth for names, types,
 * bounds, defaults and documentation: validation, defaults and
 * docs/configuration.md (`fulcrum config-reference`) all read them. */
#ifndef FULCRUM_CONF_H
#define FULCRUM_CONF_H

#include "common.h"
#include "addr.h"
#include "balancer.h"
#include "log.h"

#include <stdio.h>

enum proto { PROTO_TCP = 0, PROTO_SSL, PROTO_UDP, PROTO_HTTP, PROTO_HTTPS };
enum fwd_mode { FWD_AUTO = 0, FWD_BUFFER };
/* Request fields whose names contain '_' (listeners[].underscore_fields). */
enum us_mode { US_PASS = 0, US_DROP, US_REJECT };
/* %2F and %5C in a request path (listeners[].escaped_slashes). */
enum es_mode { ES_KEEP = 0, ES_REJECT };

struct conf_loc {
	int line, col;      /* 1-based; 0 when the value came from a default */
};

struct str_list {
	char **v;
	size_t n;
};

/* name: value pairs, in file order. */
struct str_map {
	char **keys;
	char **vals;
	size_t n;
};

/* An address as written and as parsed. */
struct conf_addr {
	char *text;
	struct sockaddr_storage ss;
	socklen_t len;
	bool wildcard;
	struct conf_loc loc;
};

struct conf_server {
	struct conf_addr addr;       /* addr.text is the server's name */
	uint64_t weight;
	bool backup;
	int state;                   /* 0 up, 1 drain, 2 maintenance */
	struct conf_loc loc;
};

struct conf_keepalive {
	uint64_t max_idle;
	uint64_t idle_timeout;
};

struct conf_sticky {
	char *cookie;                /* NULL: no stickiness */
};

/* Backend TLS of a pool (https pools, or tcp pools with enabled: true). */
struct conf_tls_client {
	bool enabled;
	bool verify;
	char *ca;                    /* NULL: the system's trust store */
	char *server_name;           /* SNI and the name verified; NULL: none */
	bool sni_from_client;        /* send the client's SNI instead */
	bool verify_hostname;
	char *cert, *key;            /* client certificate for mutual TLS */
	int min_version;             /* enum tls_version */
	char *ciphers, *ciphersuites;
	struct conf_loc loc;         /* line 0: not given */
	void *rt;                    /* struct tls_client *, built at load */
};

enum check_type { CHECK_TCP = 0, CHECK_HTTP, CHECK_HTTPS };

/* Active health checks of a pool's servers. */
struct conf_check {
	int type;                    /* enum check_type */
	uint64_t interval, timeout;  /* ms */
	uint64_t jitter;             /* ms; see jitter_loc */
	uint64_t rise, fall;
	uint64_t port;               /* 0: each server's own */
	char *address;               /* NULL: each server's own (numeric, no port) */
	char *send, *expect;         /* tcp: as written ("hex:..." or text) */
	bool tls;                    /* tcp: complete a TLS handshake */
	char *method, *path, *host;  /* http, https */
	struct str_map headers;
	char *expect_status;         /* as written: "200-399", "200,204" */
	char *expect_body;           /* substring, or "~regex" */
	bool reuse_connection;       /* http, https: keep the connection between checks */
	uint64_t reuse_limit;        /* checks on one kept connection; 0: no limit */
	/* Derived at load. */
	uint16_t status_lo[16], status_hi[16];
	size_t nstatus;
	void *body_re;               /* pcre2_code * for "~regex" */
	unsigned char *send_bin, *expect_bin;  /* decoded send/expect */
	size_t send_len, expect_len;
	struct sockaddr_storage addr; /* parsed `address` (port 0) */
	struct conf_loc loc, jitter_loc, reuse_loc, reuse_limit_loc;   /* line 0: not given */
};

struct conf_pool {
	char *name;
	int protocol;                /* enum proto */
	int algorithm;               /* enum lb_algo */
	int64_t retries;             /* -1: number of servers - 1 */
	struct conf_keepalive keepalive;
	struct conf_sticky sticky;
	char *hash_key;              /* "header:NAME" or "cookie:NAME"; NULL: client address */
	struct conf_server *servers;
	size_t nservers;
	struct conf_tls_client tls;
	struct conf_check check;
	int all_down;                /* 0 fail, 1 spread */
	uint64_t slow_start;         /* ms; 0: off */
	struct {
		uint64_t failures, ejection, max_percent;
		bool http_5xx;
		struct conf_loc loc;     /* line 0: not given */
	} passive;
	char *on_change;             /* on_change.exec: command run on each server state change */
	char *tcp_congestion;        /* congestion control toward the servers; NULL: the system's */
	struct conf_loc loc, name_loc, protocol_loc, hash_key_loc, tcp_congestion_loc;
};

struct conf_timeouts {
	uint64_t connect;
	uint64_t client_idle;
	uint64_t server_idle;
	uint64_t header;             /* http: whole request head */
	uint64_t server;             /* http: backend response head */
	uint64_t keepalive;          /* http: idle client between requests */
	uint64_t tunnel;             /* http: idle WebSocket tunnel */
	uint64_t handshake;          /* TLS handshake, or the ClientHello of passthrough */
};

enum tls_version { TLS_V12 = 0, TLS_V13 };
enum client_auth_mode { CA_NONE = 0, CA_OPTIONAL, CA_REQUIRED };

struct conf_cert {
	char *cert, *key, *chain, *key_password_file, *ocsp;
	struct conf_loc loc;
};

struct conf_client_auth {
	int mode;                    /* enum client_auth_mode */
	char *ca, *crl;
	uint64_t verify_depth;
	struct conf_loc loc;
};

/* TLS of an ssl or https listener. */
struct conf_tls_server {
	struct conf_cert *certs;
	size_t ncerts;
	int min_version, max_version;   /* enum tls_version */
	char *ciphers, *ciphersuites;
	struct str_list alpn;
	bool session_tickets;
	uint64_t session_cache;      /* entries; 0: off */
	uint64_t ticket_rotation;    /* ms */
	struct conf_client_auth client_auth;
	bool forward_client_cert;
	struct conf_loc loc, certs_loc; /* line 0: not given */
};

/* A header or query condition: exact text, or a PCRE2 pattern when the
 * value was written "~pattern". */
struct conf_cond {
	char *name;
	char *value;
	void *re;                    /* pcre2_code *, or NULL for exact */
};

struct conf_header_ops {
	struct str_map set;          /* replace (or add) these fields */
	struct str_map add;          /* add these fields */
	struct str_list remove;      /* remove these fields */
	/* Derived at load: the set and add fields, in that order, as the
	 * "name: value" CRLF lines appended to each message. */
	char *lines;
	size_t lines_len;
};

struct conf_split {
	char *pool_name;
	struct conf_pool *pool;
	uint64_t weight;
	struct conf_loc loc;
};

/* HTTP limits of a listener. */
struct conf_limits {
	uint64_t request_line;
	uint64_t head;
	uint64_t fields;
	uint64_t body;               /* 0: unlimited */
};

struct conf_match {
	char *host;                  /* exact, or "*.example.com"; lower case */
	char *sni;                   /* tls_passthrough: exact or "*.example.com"; lower case */
	char *client_cert_subject;   /* https: exact, or "~regex" */
	void *subject_re;            /* pcre2_code * for "~regex" */
	char *path_prefix;
	char *path;
	struct str_list methods;
	struct cidr_list source;
	char *path_regex;
	void *path_re;               /* pcre2_code * */
	struct str_map header;       /* as written */
	struct str_map query;
	struct conf_cond *headers;   /* compiled from header */
	struct conf_cond *queries;   /* compiled from query */
	struct conf_loc loc;
};

struct conf_respond {
	uint64_t status;
	char *body;
	char *content_type;
	struct conf_loc loc;         /* line 0: not given */
};

struct conf_redirect {
	char *to;
	uint64_t code;
	struct conf_loc loc;
};

struct conf_route {
	char *name;
	struct conf_match match;
	char *pool_name;
	struct conf_pool *pool;      /* resolved */
	struct conf_respond respond;
	struct conf_redirect redirect;
	struct conf_split *split;
	size_t nsplit;
	uint64_t split_total;
	char *rewrite_prefix;        /* rewrite.path_prefix */
	struct conf_header_ops req_headers, resp_headers;
	struct conf_loc loc, pool_loc, split_loc;
};


struct conf_listener {
	char *name;
	int protocol;                /* enum proto */
	struct conf_addr *binds;
	size_t nbinds;
	bool public_;
	struct cidr_list allow, deny;
	char *pool_name;
	struct conf_pool *pool;      /* resolved */
	uint64_t max_connections;    /* 0: only the global limit */
	uint64_t backlog;
	int forwarding;              /* enum fwd_mode */
	int underscore_fields;       /* enum us_mode */
	char *tcp_congestion;        /* congestion control toward the clients; NULL: the system's */
	struct conf_loc tcp_congestion_loc;
	uint32_t keys_written;       /* bit i: listener key i was in the file */
	struct conf_timeouts timeouts;
	struct conf_limits limits;
	struct conf_route *routes;   /* http: the pool key adds a last catch-all route */
	size_t nroutes;
	struct cidr_list trusted_proxies;
	bool forwarded;              /* add an RFC 7239 Forwarded field */
	bool normalize_path;         /* route and forward the normalised path */
	int escaped_slashes;         /* enum es_mode */
	struct str_map error_pages;  /* status -> file, as written */
	struct conf_tls_server tls;
	bool tls_passthrough;        /* tcp: route by the ClientHello's SNI */
	void *tls_rt;                /* struct tls_server *, built at load */
	char *pages[600];            /* status -> file contents, loaded */
	size_t page_len[600];
	struct conf_loc loc, name_loc, bind_loc, pool_loc, protocol_loc, routes_loc;
};

struct conf_log {
	int level;                   /* enum log_level */
	int format;                  /* enum log_format */
	char *access;
	char *error;
};

struct conf_global {
	uint64_t workers;            /* 0: auto, one per CPU */
	uint64_t max_connections;    /* 0: auto, from the open-files limit */
	uint64_t drain_timeout;
	bool batch_sends;
	struct conf_log log;
};

struct config {
	char *path;
	struct conf_global global;
	struct conf_listener *listeners;
	size_t nlisteners;
	struct conf_pool *pools;
	size_t npools;
};

/* Problems found while loading, each "FILE:LINE:COL: message". */
struct conf_errors {
	char **v;
	size_t n;
	char **warn;
	size_t nwarn;
};

/* Read and validate `path`. Returns the config, or NULL with every problem
 * in errs (the caller frees errs with conf_errors_free). The config is owned
 * by the caller and freed with conf_free. */
struct config *conf_load(const char *path, struct conf_errors *errs);
/* The same from a string (path is used in messages only). */
struct config *conf_load_string(const char *text, size_t len, const char *path,
				struct conf_errors *errs);
void conf_free(struct config *cfg);
void conf_errors_free(struct conf_errors *errs);

/* Write the configuration reference (Markdown) generated from the tables. */
void conf_write_reference(FILE *out);

const char *conf_proto_name(int proto);

/* The placeholders of a redirect target (routes[].redirect.to). */
enum location_var { LOCV_NONE = 0, LOCV_HOST, LOCV_PATH, LOCV_SCHEME };

/* The placeholder p starts with, and its length in *len; LOCV_NONE if none. */
enum location_var conf_location_var(const char *p, size_t *len);

#endif
