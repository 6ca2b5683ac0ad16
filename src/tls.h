/* The tls transport: OpenSSL 3 contexts built from the config, and the
 * non-blocking handshake, read, write and close of one connection.
 *
 * A listener's contexts (struct tls_server) are built once at config load
 * and shared by every worker: one SSL_CTX per set of certificates that name
 * the same hosts (an RSA and an ECDSA certificate for the same names share
 * one, so each client gets the one it supports). The SNI of the ClientHello
 * picks the set before anything else is processed, so session resumption is
 * checked against the right context. A pool's client context (struct
 * tls_client) is built the same way. Algorithms are fetched once, at
 * startup, never per connection. */
#ifndef FULCRUM_TLS_H
#define FULCRUM_TLS_H

#include "common.h"
#include "conf.h"

#include <sys/types.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

struct tls_server;
struct tls_client;

/* Problems found while building contexts: `cert` is the index of the
 * certificate concerned, or -1 for the section as a whole. */
typedef void (*tls_report_fn)(void *arg, int cert, bool warning, const char *msg);

/* Build the contexts of an ssl or https listener from l->tls, reading every
 * file now. Returns one reference, or NULL after reporting an error. */
struct tls_server *tls_server_new(const struct conf_listener *l, tls_report_fn report, void *arg);
/* The same again from the files (SIGHUP), keeping old's ticket secret so
 * that tickets issued before the reload still resume. Errors are logged;
 * NULL then, and old stays in use. */
struct tls_server *tls_server_reload(const struct conf_listener *l, struct tls_server *old);
void tls_server_ref(struct tls_server *ts);
/* Drop a reference (NULL is ignored). Connections hold their own, so the
 * contexts live until the last connection made from them is freed. */
void tls_server_unref(struct tls_server *ts);

/* Build the client context of a pool with TLS. NULL after reporting. */
struct tls_client *tls_client_new(const struct conf_pool *p, tls_report_fn report, void *arg);
void tls_client_free(struct tls_client *tc);

/* A new server-side connection over the accepted socket fd (which the
 * caller keeps owning). NULL when OpenSSL cannot allocate. */
SSL *tls_server_conn(struct tls_server *ts, int fd);
/* A new client-side connection over fd. client_sni: the name the client
 * asked fulcrum for (used with sni_from_client; may be NULL). slot: where
 * this server's session is kept for resumption (per worker, may be NULL). */
SSL *tls_client_conn(struct tls_client *tc, int fd, const char *client_sni, SSL_SESSION **slot);

/* Free a kept session (NULL is ignored). */
void tls_session_free(SSL_SESSION *sess);

/* What a non-blocking call waits for when it returns FL_AGAIN. */
#define TLS_WANT_READ 1
#define TLS_WANT_WRITE 2

/* Handshake failures, counted per listener by kind. */
enum tls_fail {
	TLS_FAIL_NOT_TLS,        /* the first bytes are not a TLS record */
	TLS_FAIL_PLAIN_HTTP,     /* an HTTP request on a TLS port */
	TLS_FAIL_VERSION,        /* no TLS version in common */
	TLS_FAIL_CIPHER,         /* no cipher, group or signature in common */
	TLS_FAIL_CLIENT_CERT,    /* missing, invalid or revoked client certificate */
	TLS_FAIL_TIMEOUT,        /* timeouts.handshake ran out */
	TLS_FAIL_CLOSED,         /* the client closed or reset during the handshake */
	TLS_FAIL_OTHER,
	TLS_FAIL_KINDS
};
extern const char *const tls_fail_names[TLS_FAIL_KINDS];

/* Drive the handshake. Returns 0 when it is complete, FL_AGAIN (with *want
 * set), or a negative errno; then tls_failure() says why. */
int tls_handshake(SSL *s, int *want);
/* Read up to n bytes: a positive count, 0 at the end (close_notify or the
 * peer's FIN), FL_AGAIN (with *want), or -errno (-EPROTO for a TLS error). */
ssize_t tls_recv(SSL *s, void *p, size_t n, int *want);
/* Write up to n bytes: a positive count, FL_AGAIN (with *want), or -errno.
 * After FL_AGAIN the same bytes must be offered again (they may have moved). */
ssize_t tls_send(SSL *s, const void *p, size_t n, int *want);
/* Queue close_notify (once the handshake completed); never waits. */
void tls_close_notify(SSL *s, int *want);
/* Send close_notify when the handshake completed and notify is set (best
 * effort, never waits), then free the connection. NULL is ignored. */
void tls_close(SSL *s, bool notify);

/* Why the last call on this thread failed: the kind, and a short text for
 * the log in buf (OpenSSL's reason, or the verify error). Clears OpenSSL's
 * error queue. rc is what the call returned. */
enum tls_fail tls_failure(SSL *s, int rc, char *buf, size_t len);

/* The first bytes a client sent on a TLS port, as peeked: 1 when they start
 * a TLS record, 0 when more are needed, -1 otherwise with *kind set to
 * TLS_FAIL_PLAIN_HTTP or TLS_FAIL_NOT_TLS. */
int tls_sniff(const unsigned char *p, size_t n, enum tls_fail *kind);

bool tls_resumed(SSL *s);
/* The server name the client sent, or NULL. */
const char *tls_sni(SSL *s);
const char *tls_version_text(SSL *s);
const char *tls_cipher_text(SSL *s);

/* The verified client certificate, for X-Client-Cert-* fields and routes.
 * Strings are empty when absent; verify is "SUCCESS", "NONE" or
 * "FAILED:reason". */
struct tls_peer {
	bool present;
	char subject[256];
	char issuer[256];
	char serial[96];
	char fingerprint[96];    /* SHA-256, lower-case hex */
	char verify[96];
};
/* Fill *out from the connection's peer certificate (server side). */
void tls_peer_info(SSL *s, struct tls_peer *out);

#endif
