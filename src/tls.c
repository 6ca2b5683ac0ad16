/* TLS with OpenSSL 3: contexts from the config, one connection's I/O.
 *
 * Session resumption never crosses listeners or server names:
 * - each listener has its own ticket secret (so its tickets mean nothing to
 *   another listener) and its own session cache;
 * - the client-hello callback sets the session id context to a hash of the
 *   listener, the certificate set and the exact name the client asked for,
 *   before OpenSSL looks at the offered session, so a session made for
 *   a.example.com is not resumed for b.example.com even on a wildcard
 *   certificate that covers both.
 * Ticket keys are derived from the listener's secret and the current
 * period (ticket_rotation): a new key every period, the previous period's
 * still accepted, nothing to rotate by a timer and nothing shared to lock. */
#include "tls.h"
#include "log.h"
#include "util.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"
#define EXPIRY_WARN_DAYS 14

const char *const tls_fail_names[TLS_FAIL_KINDS] = {
	"not_tls", "plain_http", "protocol_version", "no_shared_cipher", "client_certificate",
	"timeout", "closed", "other",
};

/* Fetched once: OpenSSL 3 takes locks when it fetches algorithms by name. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *ticket_cipher;
static EVP_MD *sha256;
static int ex_slot = -1;       /* SSL ex_data: SSL_SESSION ** of a client connection */
static int ex_server = -1;     /* SSL_CTX ex_data: the struct tls_server of a context */
static int ex_conn = -1;       /* SSL ex_data: the struct tls_server a connection holds */

/* A connection holds a reference to its listener's contexts while it
 * lives (the client-hello callback reads them): dropped when the SSL is
 * freed, through this ex_data slot's free function. */
static void conn_ref_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	tls_server_unref(ptr);
}

static void tls_init(void)
{
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
	ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	ex_slot = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ex_conn = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_ref_free);
	ex_server = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (!ticket_cipher || !sha256 || ex_slot < 0 || ex_server < 0 || ex_conn < 0)
		abort();
}

/* One certificate with the DER of its OCSP response, if any. */
struct staple {
	X509 *x509;
	unsigned char *der;
	long len;
};

/* Certificates that name the same hosts: one SSL_CTX. */
struct cert_set {
	SSL_CTX *ctx;
	char **names;              /* lower case; "*.example.com" for wildcards */
	size_t nnames;
	struct staple staples[2];  /* at most one RSA and one ECDSA certificate */
	size_t nstaples;
	int first;                 /* index of its first certificate in the config */
};

struct tls_server {
	_Atomic int refs;
	char *listener;            /* name, for logs */
	struct cert_set *sets;
	size_t nsets;
	unsigned char alpn[256];   /* wire format */
	size_t alpn_len;
	unsigned char secret[32];  /* ticket keys are derived from it */
	unsigned char id[8];       /* names this listener's tickets */
	uint64_t rotation_s;
	bool failed;
};

struct tls_client {
	SSL_CTX *ctx;
	char *server_name;
	bool sni_from_client;
	bool verify, verify_hostname;
	char *pool;
};

/* ---- reporting ------------------------------------------------------------ */

struct rep {
	tls_report_fn fn;
	void *arg;
	bool failed;
};

static void report(struct rep *r, int cert, bool warning, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void report(struct rep *r, int cert, bool warning, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!warning)
		r->failed = true;
	r->fn(r->arg, cert, warning, msg);
}

/* The innermost OpenSSL reason of the last failure, for messages. */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e, last = 0;
	while ((e = ERR_get_error()) != 0)
		last = e;
	if (!last)
		snprintf(buf, len, "unknown error");
	else if (ERR_reason_error_string(last))
		snprintf(buf, len, "%s", ERR_reason_error_string(last));
	else
		ERR_error_string_n(last, buf, len);
	return buf;
}

static void fmt_time(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm);
	else
		snprintf(buf, len, "?");
}

/* ---- reading files -------------------------------------------------------- */

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
	const char *pw = u;
	size_t n;
	if (!pw)
		return -1;
	n = strlen(pw);
	if ((int)n > size)
		n = (size_t)size;
	memcpy(buf, pw, n);
	return (int)n;
}

static char *read_password(const char *file, struct rep *r, int cert)
{
	char line[1024];
	FILE *f = fopen(file, "r");
	if (!f) {
		report(r, cert, false, "cannot read key_password_file %s: %s", file, strerror(errno));
		return NULL;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return xstrdup(line);
}

/* Whether a file can be read; reports why not. */
static bool readable(const char *file, struct rep *r, int cert, const char *what)
{
	FILE *f = fopen(file, "r");
	if (!f) {
		report(r, cert, false, "cannot read %s %s: %s", what, file, strerror(errno));
		return false;
	}
	fclose(f);
	return true;
}

/* Read every certificate of a PEM file: the first into *leaf (when leaf is
 * not NULL), the others onto chain. Returns the number read, or -1. */
static int read_certs(const char *file, X509 **leaf, STACK_OF(X509) *chain, struct rep *r, int cert,
		      const char *what)
{
	int n = 0;
	X509 *x;
	BIO *b = BIO_new_file(file, "r");
	if (!b) {
		ERR_clear_error();
		report(r, cert, false, "cannot read %s %s: %s", what, file, strerror(errno));
		return -1;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (leaf && !*leaf)
			*leaf = x;
		else
			sk_X509_push(chain, x);
		n++;
	}
	BIO_free(b);
	ERR_clear_error();
	if (n == 0) {
		report(r, cert, false, "%s %s holds no PEM certificate", what, file);
		return -1;
	}
	return n;
}

static EVP_PKEY *read_key(const char *file, const char *pwfile, struct rep *r, int cert)
{
	char why[256];
	char *pw = NULL;
	EVP_PKEY *k = NULL;
	BIO *b;
	if (pwfile && !(pw = read_password(pwfile, r, cert)))
		return NULL;
	b = BIO_new_file(file, "r");
	if (!b) {
		ERR_clear_error();
		report(r, cert, false, "cannot read key %s: %s", file, strerror(errno));
		goto out;
	}
	k = PEM_read_bio_PrivateKey(b, NULL, pass_cb, pw);
	if (!k) {
		unsigned long e = ERR_peek_last_error();
		int reason = ERR_GET_REASON(e);
		bool asks = reason == PEM_R_BAD_PASSWORD_READ || reason == PEM_R_PROBLEMS_GETTING_PASSWORD;
		ossl_reason(why, sizeof(why));
		/* With a password given, read again without one: a key that then
		 * asks for a password is encrypted, so the password was wrong
		 * (the error OpenSSL gives differs between PEM and PKCS#8). */
		if (pw && BIO_reset(b) == 0) {
			EVP_PKEY *again = PEM_read_bio_PrivateKey(b, NULL, pass_cb, NULL);
			reason = ERR_GET_REASON(ERR_peek_last_error());
			asks = !again && (reason == PEM_R_BAD_PASSWORD_READ ||
					  reason == PEM_R_PROBLEMS_GETTING_PASSWORD);
			EVP_PKEY_free(again);
			ERR_clear_error();
		}
		if (!pw && asks)
			report(r, cert, false, "key %s is encrypted; give its password in "
			       "key_password_file", file);
		else if (pw && asks)
			report(r, cert, false, "cannot decrypt key %s with the password in %s (wrong "
			       "password)", file, pwfile);
		else
			report(r, cert, false, "cannot read key %s: %s", file, why);
	}
	BIO_free(b);
out:
	if (pw) {
		OPENSSL_cleanse(pw, strlen(pw));
		free(pw);
	}
	return k;
}

/* The DNS names a certificate is for: its SANs, else its common name. */
static size_t cert_names(X509 *x, char ***out)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	char **v = NULL;
	size_t n = 0;
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = xstrndup((const char *)ASN1_STRING_get0_data(g->d.dNSName),
				  (size_t)ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(gens);
	if (n == 0) {
		char cn[256];
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0) {
			v = xrealloc(v, sizeof(*v));
			v[n++] = xstrdup(cn);
		}
	}
	for (size_t i = 0; i < n; i++)
		for (char *p = v[i]; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p + 32);
	*out = v;
	return n;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool same_names(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		size_t j;
		for (j = 0; j < nb && strcmp(a[i], b[j]) != 0; j++)
			;
		if (j == nb)
			return false;
	}
	return true;
}

/* ---- server callbacks ----------------------------------------------------- */

static int version_of(int v)
{
	return v == TLS_V13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	return h;
}

/* Set the session id context of s from the listener's ticket id, the
 * certificate set and the server name asked for. */
static void set_sid_ctx(SSL *s, const struct tls_server *ts, size_t set, const char *name, size_t len)
{
	unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, ts->id, sizeof(ts->id));
	h = fnv1a(h, &set, sizeof(set));
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		h = fnv1a(h, &c, 1);
	}
	memcpy(sid, ts->id, 8);
	memcpy(sid + 8, &h, 8);
	SSL_set_session_id_context(s, sid, 16);
}

/* The ClientHello's server name, read before OpenSSL processes anything, so
 * that the certificate set and the session context are the right ones when
 * an offered session is looked at. */
static int on_client_hello(SSL *s, int *alert, void *arg)
{
	struct tls_server *ts = arg;
	const unsigned char *p;
	size_t len, nlen, pick = 0;
	const char *name = NULL;

	if (SSL_client_hello_get0_ext(s, TLSEXT_TYPE_server_name, &p, &len) && len > 5) {
		/* list length (2), type (1) host_name = 0, name length (2), name */
		size_t list = ((size_t)p[0] << 8) | p[1];
		nlen = ((size_t)p[3] << 8) | p[4];
		if (list + 2 == len && p[2] == 0 && nlen + 5 <= len && nlen > 0 && nlen <= 255) {
			name = (const char *)p + 5;
			/* Exact names first, then wildcards. */
			bool found = false;
			for (int pass = 0; pass < 2 && !found; pass++)
				for (size_t i = 0; i < ts->nsets && !found; i++)
					for (size_t k = 0; k < ts->sets[i].nnames && !found; k++) {
						const char *pat = ts->sets[i].names[k];
						if ((pat[0] == '*') == (pass == 1) && name_matches(pat, name, nlen)) {
							pick = i;
							found = true;
						}
					}
		}
	}
	if (pick != 0)
		SSL_set_SSL_CTX(s, ts->sets[pick].ctx);
	set_sid_ctx(s, ts, pick, name ? name : "", name ? nlen : 0);
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		   unsigned int inlen, void *arg)
{
	struct tls_server *ts = arg;
	unsigned char *o;
	if (SSL_select_next_proto(&o, outlen, ts->alpn, (unsigned int)ts->alpn_len, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;  /* go on without ALPN */
	*out = o;
	return SSL_TLSEXT_ERR_OK;
}

static int on_status(SSL *s, void *arg)
{
	struct cert_set *set = arg;
	X509 *x = SSL_get_certificate(s);
	for (size_t i = 0; i < set->nstaples; i++) {
		struct staple *st = &set->staples[i];
		if (st->x509 == x && st->der) {
			unsigned char *copy = OPENSSL_memdup(st->der, (size_t)st->len);
			if (copy && SSL_set_tlsext_status_ocsp_resp(s, copy, st->len) == 1)
				return SSL_TLSEXT_ERR_OK;
			OPENSSL_free(copy);
			return SSL_TLSEXT_ERR_NOACK;
		}
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* Keys of one rotation period, derived from the listener's secret. */
static void ticket_keys(const struct tls_server *ts, uint64_t period, unsigned char aes[32],
			unsigned char mac[32])
{
	unsigned char in[9 + 8];
	size_t olen;
	memcpy(in + 1, &period, 8);
	memcpy(in + 9, ts->id, 8);
	in[0] = 'a';
	EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, ts->secret, sizeof(ts->secret), in, sizeof(in), aes,
		  32, &olen);
	in[0] = 'm';
	EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, ts->secret, sizeof(ts->secret), in, sizeof(in), mac,
		  32, &olen);
}

/* Thread-local cache of the last period's keys, so a handshake derives
 * nothing in the common case. */
static __thread struct {
	unsigned char id[8];         /* the listener's, stable across reloads */
	bool set;
	uint64_t period;
	unsigned char aes[32], mac[32];
} tk_cache[2];

static void keys_for(const struct tls_server *ts, uint64_t period, unsigned char **aes, unsigned char **mac)
{
	unsigned slot = (unsigned)(period & 1);
	if (!tk_cache[slot].set || tk_cache[slot].period != period ||
	    memcmp(tk_cache[slot].id, ts->id, sizeof(ts->id)) != 0) {
		ticket_keys(ts, period, tk_cache[slot].aes, tk_cache[slot].mac);
		memcpy(tk_cache[slot].id, ts->id, sizeof(ts->id));
		tk_cache[slot].period = period;
		tk_cache[slot].set = true;
	}
	*aes = tk_cache[slot].aes;
	*mac = tk_cache[slot].mac;
}

/* OpenSSL 3's EVP_MAC ticket callback can only name the HMAC digest, which
 * OpenSSL then fetches (under a lock) on every ticket; the older HMAC_CTX
 * callback takes the digest fetched once at startup. Deprecated in 3.0, it is
 * still the cheaper way, so its warnings are silenced here only. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static int on_ticket(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
		     HMAC_CTX *hctx, int enc)
{
	struct tls_server *ts = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ex_server);
	uint64_t now = (uint64_t)time(NULL) / ts->rotation_s, period;
	unsigned char *aes, *mac;

	if (enc) {
		period = now;
		memcpy(key_name, ts->id, 8);
		memcpy(key_name + 8, &period, 8);
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(ticket_cipher)) != 1)
			return -1;
	} else {
		if (memcmp(key_name, ts->id, 8) != 0)
			return 0;  /* not ours: full handshake */
		memcpy(&period, key_name + 8, 8);
		if (period != now && period + 1 != now)
			return 0;  /* expired key */
	}
	keys_for(ts, period, &aes, &mac);
	if (HMAC_Init_ex(hctx, mac, 32, sha256, NULL) != 1)
		return -1;
	if (enc)
		return EVP_EncryptInit_ex(cctx, ticket_cipher, NULL, aes, iv) == 1 ? 1 : -1;
	if (EVP_DecryptInit_ex(cctx, ticket_cipher, NULL, aes, iv) != 1)
		return -1;
	/* 2: valid, and send a new ticket (under the current key). TLS 1.3
	 * clients use a ticket once (RFC 8446, C.4): without a new one on each
	 * resumption, every other connection would be a full handshake. */
	return 2;
}

static void set_ticket_cb(SSL_CTX *ctx)
{
	SSL_CTX_set_tlsext_ticket_key_cb(ctx, on_ticket);
}
#pragma GCC diagnostic pop

/* ---- building a listener's contexts ---------------------------------------- */

static SSL_CTX *server_ctx(const struct conf_listener *l, struct tls_server *ts, struct rep *r)
{
	const struct conf_tls_server *t = &l->tls;
	char why[256];
	SSL_CTX *ctx = SSL_CTX_new_ex(NULL, NULL, TLS_server_method());
	if (!ctx) {
		report(r, -1, false, "cannot create a TLS context: %s", ossl_reason(why, sizeof(why)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, version_of(t->min_version));
	SSL_CTX_set_max_proto_version(ctx, version_of(t->max_version));
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
			    SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF |
			    (t->session_tickets ? 0 : SSL_OP_NO_TICKET));
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			 SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(ctx, 1);
	if (SSL_CTX_set_cipher_list(ctx, t->ciphers ? t->ciphers : DEFAULT_CIPHERS) != 1)
		report(r, -1, false, "ciphers \"%s\" selects no cipher OpenSSL knows: %s",
		       t->ciphers ? t->ciphers : DEFAULT_CIPHERS, ossl_reason(why, sizeof(why)));
	if (t->ciphersuites && SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1)
		report(r, -1, false, "ciphersuites \"%s\" selects no TLS 1.3 suite: %s", t->ciphersuites,
		       ossl_reason(why, sizeof(why)));
	SSL_CTX_set_ex_data(ctx, ex_server, ts);
	if (t->session_cache) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, (long)t->session_cache);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	SSL_CTX_set_timeout(ctx, (long)(2 * ts->rotation_s));
	/* One ticket per handshake (OpenSSL sends two by default): every
	 * resumption brings a fresh one, so a client never runs out, and a
	 * full handshake saves one ticket's encryption and record. */
	SSL_CTX_set_num_tickets(ctx, 1);
	set_ticket_cb(ctx);
	SSL_CTX_set_client_hello_cb(ctx, on_client_hello, ts);
	if (ts->alpn_len)
		SSL_CTX_set_alpn_select_cb(ctx, on_alpn, ts);
	if (t->client_auth.loc.line && t->client_auth.mode != CA_NONE && t->client_auth.ca) {
		const struct conf_client_auth *ca = &t->client_auth;
		STACK_OF(X509_NAME) *names;
		if (!readable(ca->ca, r, -1, "client_auth CA file")) {
			/* reported */
		} else if (SSL_CTX_load_verify_locations(ctx, ca->ca, NULL) != 1) {
			report(r, -1, false, "client_auth: cannot load CA file %s: %s", ca->ca,
			       ossl_reason(why, sizeof(why)));
		} else if ((names = SSL_load_client_CA_file(ca->ca)) != NULL) {
			SSL_CTX_set_client_CA_list(ctx, names);
		}
		ERR_clear_error();
		if (ca->crl) {
			X509_STORE *store = SSL_CTX_get_cert_store(ctx);
			X509_LOOKUP *lk = X509_STORE_add_lookup(store, X509_LOOKUP_file());
			if (!readable(ca->crl, r, -1, "client_auth CRL file"))
				;  /* reported */
			else if (!lk || X509_load_crl_file(lk, ca->crl, X509_FILETYPE_PEM) <= 0)
				report(r, -1, false, "client_auth: cannot load CRL file %s: %s", ca->crl,
				       ossl_reason(why, sizeof(why)));
			else
				X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (ca->mode == CA_REQUIRED ?
				   SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
		SSL_CTX_set_verify_depth(ctx, (int)ca->verify_depth);
	}
	return ctx;
}

/* Check one certificate's dates: expired or not yet valid is an error,
 * expiring within EXPIRY_WARN_DAYS a warning. */
static void check_dates(X509 *x, const char *file, struct rep *r, int cert)
{
	char when[64];
	int days = 0, secs = 0;
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
		fmt_time(X509_get0_notAfter(x), when, sizeof(when));
		report(r, cert, false, "certificate %s expired on %s; renew it", file, when);
		return;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
		fmt_time(X509_get0_notBefore(x), when, sizeof(when));
		report(r, cert, false, "certificate %s is not valid before %s (check the clock)", file, when);
		return;
	}
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) == 1 && days < EXPIRY_WARN_DAYS) {
		fmt_time(X509_get0_notAfter(x), when, sizeof(when));
		report(r, cert, true, "certificate %s expires on %s, in %d day%s", file, when, days,
		       days == 1 ? "" : "s");
	}
}

/* Read a certificate (with the chain after it in its file, and in chainf),
 * its key, and check that they match and that the certificate is valid
 * now. True when the pair can be used (the caller frees what is set). */
static bool read_pair(const char *certf, const char *chainf, const char *keyf, const char *pwf,
		      struct rep *r, int cert, X509 **leaf, EVP_PKEY **key, STACK_OF(X509) *chain)
{
	bool ok = read_certs(certf, leaf, chain, r, cert, "certificate file") > 0;
	if (chainf && read_certs(chainf, NULL, chain, r, cert, "chain file") < 0)
		ok = false;
	if (!(*key = read_key(keyf, pwf, r, cert)))
		ok = false;
	if (!ok)
		return false;
	if (X509_check_private_key(*leaf, *key) != 1) {
		ERR_clear_error();
		report(r, cert, false, "key %s does not match certificate %s", keyf, certf);
		return false;
	}
	check_dates(*leaf, certf, r, cert);
	return true;
}

static void add_cert(const struct conf_listener *l, struct tls_server *ts, size_t i, struct rep *r)
{
	const struct conf_cert *c = &l->tls.certs[i];
	char why[256];
	X509 *leaf = NULL;
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *chain = sk_X509_new_null();
	char **names = NULL;
	size_t nnames = 0, s;
	struct cert_set *set = NULL;
	int cert = (int)i;

	if (!c->cert || !c->key)
		goto out;  /* reported by the config checker */
	if (!read_pair(c->cert, c->chain, c->key, c->key_password_file, r, cert, &leaf, &key, chain))
		goto out;
	nnames = cert_names(leaf, &names);
	if (nnames == 0)
		report(r, cert, true, "certificate %s names no host (no DNS subject alternative name "
		       "or common name); it is used only as the default", c->cert);
	for (s = 0; s < ts->nsets; s++)
		if (same_names(ts->sets[s].names, ts->sets[s].nnames, names, nnames))
			break;
	if (s == ts->nsets) {
		ts->sets = xrealloc(ts->sets, (ts->nsets + 1) * sizeof(*ts->sets));
		set = &ts->sets[ts->nsets];
		memset(set, 0, sizeof(*set));
		if (!(set->ctx = server_ctx(l, ts, r)))
			goto out;
		set->names = names;
		set->nnames = nnames;
		set->first = cert;
		names = NULL;
		nnames = 0;
		ts->nsets++;
	} else {
		set = &ts->sets[s];
		for (size_t k = 0; k < set->nstaples; k++)
			if (EVP_PKEY_get_base_id(X509_get0_pubkey(set->staples[k].x509)) ==
			    EVP_PKEY_get_base_id(key)) {
				report(r, cert, false, "certificates[%d] already has a key of this type "
				       "for the same names; give one RSA and one ECDSA certificate at most",
				       set->first);
				goto out;
			}
		if (set->nstaples == ARRAY_LEN(set->staples))
			goto out;
	}
	if (SSL_CTX_use_cert_and_key(set->ctx, leaf, key, chain, 1) != 1) {
		report(r, cert, false, "certificate %s cannot be used: %s", c->cert,
		       ossl_reason(why, sizeof(why)));
		goto out;
	}
	set->staples[set->nstaples].x509 = leaf;
	X509_up_ref(leaf);
	if (c->ocsp) {
		size_t dlen = 0;
		unsigned char *der = (unsigned char *)read_whole_file(c->ocsp, 1u << 20, &dlen);
		long len = (long)dlen;
		const unsigned char *p = der;
		OCSP_RESPONSE *resp = der ? d2i_OCSP_RESPONSE(NULL, &p, len) : NULL;
		if (!der)
			report(r, cert, false, "cannot read ocsp file %s: %s", c->ocsp, strerror(errno));
		else if (!resp)
			report(r, cert, false, "ocsp file %s is not a DER OCSP response", c->ocsp);
		OCSP_RESPONSE_free(resp);
		ERR_clear_error();
		if (resp) {
			set->staples[set->nstaples].der = der;
			set->staples[set->nstaples].len = len;
			der = NULL;
		}
		free(der);
		SSL_CTX_set_tlsext_status_cb(set->ctx, on_status);
		SSL_CTX_set_tlsext_status_arg(set->ctx, set);
	}
	set->nstaples++;
out:
	free_names(names, nnames);
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
}

static void server_free(struct tls_server *ts)
{
	for (size_t i = 0; i < ts->nsets; i++) {
		struct cert_set *set = &ts->sets[i];
		for (size_t k = 0; k < set->nstaples; k++) {
			X509_free(set->staples[k].x509);
			free(set->staples[k].der);
		}
		free_names(set->names, set->nnames);
		SSL_CTX_free(set->ctx);
	}
	free(ts->sets);
	free(ts->listener);
	OPENSSL_cleanse(ts->secret, sizeof(ts->secret));
	free(ts);
}

static struct tls_server *server_build(const struct conf_listener *l, const struct tls_server *old,
				       struct rep *r)
{
	struct tls_server *ts = xcalloc(1, sizeof(*ts));
	const struct conf_tls_server *t = &l->tls;
	pthread_once(&init_once, tls_init);
	atomic_init(&ts->refs, 1);
	ts->listener = xstrdup(l->name ? l->name : "?");
	ts->rotation_s = t->ticket_rotation / 1000 ? t->ticket_rotation / 1000 : 3600;
	if (old) {
		memcpy(ts->secret, old->secret, sizeof(ts->secret));
		memcpy(ts->id, old->id, sizeof(ts->id));
	} else if (RAND_bytes(ts->secret, sizeof(ts->secret)) != 1 ||
		   RAND_bytes(ts->id, sizeof(ts->id)) != 1) {
		report(r, -1, false, "no random bytes for ticket keys");
	}
	if (t->alpn.n) {
		for (size_t i = 0; i < t->alpn.n; i++) {
			size_t n = strlen(t->alpn.v[i]);
			if (n == 0 || n > 255 || ts->alpn_len + 1 + n > sizeof(ts->alpn))
				continue;
			ts->alpn[ts->alpn_len++] = (unsigned char)n;
			memcpy(ts->alpn + ts->alpn_len, t->alpn.v[i], n);
			ts->alpn_len += n;
		}
	} else if (l->protocol == PROTO_HTTPS) {
		memcpy(ts->alpn, "\x08http/1.1", 9);
		ts->alpn_len = 9;
	}
	for (size_t i = 0; i < t->ncerts; i++)
		add_cert(l, ts, i, r);
	if (r->failed || ts->nsets == 0) {
		if (!r->failed)
			report(r, -1, false, "no usable certificate");
		server_free(ts);
		return NULL;
	}
	return ts;
}

struct tls_server *tls_server_new(const struct conf_listener *l, tls_report_fn fn, void *arg)
{
	struct rep r = { fn, arg, false };
	return server_build(l, NULL, &r);
}

static void log_report(void *arg, int cert, bool warning, const char *msg)
{
	const struct conf_listener *l = arg;
	if (warning)
		log_warn("listener %s: tls%s: %s", l->name, cert >= 0 ? " certificate" : "", msg);
	else
		log_error("listener %s: tls reload: %s; the certificates in use stay", l->name, msg);
}

struct tls_server *tls_server_reload(const struct conf_listener *l, struct tls_server *old)
{
	struct rep r = { log_report, (void *)l, false };
	return server_build(l, old, &r);
}

void tls_server_ref(struct tls_server *ts)
{
	atomic_fetch_add_explicit(&ts->refs, 1, memory_order_relaxed);
}

void tls_server_unref(struct tls_server *ts)
{
	if (ts && atomic_fetch_sub_explicit(&ts->refs, 1, memory_order_acq_rel) == 1)
		server_free(ts);
}

SSL *tls_server_conn(struct tls_server *ts, int fd)
{
	SSL *s;
	s = SSL_new(ts->sets[0].ctx);
	if (!s)
		return NULL;
	if (SSL_set_fd(s, fd) != 1) {
		SSL_free(s);
		ERR_clear_error();
		return NULL;
	}
	tls_server_ref(ts);
	SSL_set_ex_data(s, ex_conn, ts);
	SSL_set_accept_state(s);
	return s;
}

/* ---- client side ------------------------------------------------------------ */

static int on_new_session(SSL *s, SSL_SESSION *sess)
{
	SSL_SESSION **slot = SSL_get_ex_data(s, ex_slot);
	if (!slot)
		return 0;
	if (*slot)
		SSL_SESSION_free(*slot);
	*slot = sess;
	return 1;  /* we keep the reference */
}

struct tls_client *tls_client_new(const struct conf_pool *p, tls_report_fn fn, void *arg)
{
	const struct conf_tls_client *t = &p->tls;
	struct rep r = { fn, arg, false };
	char why[256];
	struct tls_client *tc = xcalloc(1, sizeof(*tc));
	SSL_CTX *ctx;

	pthread_once(&init_once, tls_init);
	tc->pool = xstrdup(p->name ? p->name : "?");
	tc->server_name = t->server_name ? xstrdup(t->server_name) : NULL;
	tc->sni_from_client = t->sni_from_client;
	tc->verify = t->verify;
	tc->verify_hostname = t->verify_hostname;
	ctx = tc->ctx = SSL_CTX_new_ex(NULL, NULL, TLS_client_method());
	if (!ctx) {
		report(&r, -1, false, "cannot create a TLS context: %s", ossl_reason(why, sizeof(why)));
		goto fail;
	}
	SSL_CTX_set_min_proto_version(ctx, version_of(t->min_version));
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
			    SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			 SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(ctx, 1);
	if (SSL_CTX_set_cipher_list(ctx, t->ciphers ? t->ciphers : DEFAULT_CIPHERS) != 1)
		report(&r, -1, false, "ciphers \"%s\" selects no cipher OpenSSL knows",
		       t->ciphers ? t->ciphers : DEFAULT_CIPHERS);
	if (t->ciphersuites && SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1)
		report(&r, -1, false, "ciphersuites \"%s\" selects no TLS 1.3 suite", t->ciphersuites);
	ERR_clear_error();
	if (p->protocol == PROTO_HTTPS)
		SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
	if (t->verify) {
		if (t->ca) {
			if (!readable(t->ca, &r, -1, "CA file"))
				;  /* reported */
			else if (SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1)
				report(&r, -1, false, "cannot load CA file %s: %s", t->ca,
				       ossl_reason(why, sizeof(why)));
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			report(&r, -1, false, "cannot load the system's trust store: %s",
			       ossl_reason(why, sizeof(why)));
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (t->cert && t->key) {
		X509 *leaf = NULL;
		STACK_OF(X509) *chain = sk_X509_new_null();
		EVP_PKEY *key = NULL;
		if (read_pair(t->cert, NULL, t->key, NULL, &r, -1, &leaf, &key, chain) &&
		    SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 1) != 1)
			report(&r, -1, false, "client certificate %s cannot be used: %s", t->cert,
			       ossl_reason(why, sizeof(why)));
		ERR_clear_error();
		X509_free(leaf);
		EVP_PKEY_free(key);
		sk_X509_pop_free(chain, X509_free);
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	if (r.failed)
		goto fail;
	return tc;
fail:
	tls_client_free(tc);
	return NULL;
}

void tls_client_free(struct tls_client *tc)
{
	if (!tc)
		return;
	SSL_CTX_free(tc->ctx);
	free(tc->server_name);
	free(tc->pool);
	free(tc);
}

static bool is_ip_literal(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

SSL *tls_client_conn(struct tls_client *tc, int fd, const char *client_sni, SSL_SESSION **slot)
{
	const char *name = tc->sni_from_client ? client_sni : tc->server_name;
	SSL *s = SSL_new(tc->ctx);
	if (!s)
		return NULL;
	if (SSL_set_fd(s, fd) != 1)
		goto fail;
	if (name && *name && !is_ip_literal(name))
		SSL_set_tlsext_host_name(s, name);
	if (tc->verify && tc->verify_hostname && name && *name) {
		if (is_ip_literal(name)) {
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name) != 1)
				goto fail;
		} else if (SSL_set1_host(s, name) != 1) {
			goto fail;
		}
	}
	if (slot) {
		SSL_set_ex_data(s, ex_slot, slot);
		if (*slot) {
			const char *h = SSL_SESSION_get0_hostname(*slot);
			/* A session is for the name it was made with. */
			if ((!h && !(name && *name)) || (h && name && strcmp(h, name) == 0))
				SSL_set_session(s, *slot);
		}
	}
	SSL_set_connect_state(s);
	return s;
fail:
	ERR_clear_error();
	SSL_free(s);
	return NULL;
}

void tls_session_free(SSL_SESSION *sess)
{
	SSL_SESSION_free(sess);
}

/* ---- one connection ----------------------------------------------------------- */

static int want_of(SSL *s, int ret, int *want)
{
	switch (SSL_get_error(s, ret)) {
	case SSL_ERROR_WANT_READ:
		*want = TLS_WANT_READ;
		return FL_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		*want = TLS_WANT_WRITE;
		return FL_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == EAGAIN || errno == EINTR) {
			*want = TLS_WANT_READ;
			return FL_AGAIN;
		}
		return errno ? -errno : -ECONNRESET;
	default:
		return -EPROTO;
	}
}

int tls_handshake(SSL *s, int *want)
{
	int ret = SSL_do_handshake(s);
	if (ret == 1)
		return 0;
	ret = want_of(s, ret, want);
	return ret == 0 ? -ECONNRESET : ret;
}

ssize_t tls_recv(SSL *s, void *p, size_t n, int *want)
{
	size_t got = 0;
	int ret = SSL_read_ex(s, p, n, &got);
	if (ret == 1)
		return (ssize_t)got;
	ret = want_of(s, ret, want);
	if (ret < 0 && ret != FL_AGAIN)
		ERR_clear_error();
	return ret;
}

ssize_t tls_send(SSL *s, const void *p, size_t n, int *want)
{
	size_t put = 0;
	int ret = SSL_write_ex(s, p, n, &put);
	if (ret == 1)
		return (ssize_t)put;
	ret = want_of(s, ret, want);
	if (ret == 0)
		ret = -EPIPE;
	if (ret < 0 && ret != FL_AGAIN)
		ERR_clear_error();
	return ret;
}

void tls_close_notify(SSL *s, int *want)
{
	if (SSL_is_init_finished(s) && !(SSL_get_shutdown(s) & SSL_SENT_SHUTDOWN))
		SSL_shutdown(s);
	ERR_clear_error();
}

void tls_close(SSL *s, bool notify)
{
	if (!s)
		return;
	if (notify && SSL_is_init_finished(s) && !(SSL_get_shutdown(s) & SSL_SENT_SHUTDOWN))
		SSL_shutdown(s);  /* sends close_notify; does not wait for the peer's */
	ERR_clear_error();
	SSL_free(s);
}

enum tls_fail tls_failure(SSL *s, int rc, char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	int reason = ERR_GET_REASON(e);
	enum tls_fail kind = TLS_FAIL_OTHER;
	long v = s ? SSL_get_verify_result(s) : X509_V_OK;

	if (rc != -EPROTO) {
		snprintf(buf, len, "%s", rc == -ECONNRESET ? "closed by the peer" : strerror(-rc));
		ERR_clear_error();
		return TLS_FAIL_CLOSED;
	}
	switch (reason) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
	case SSL_R_WRONG_SSL_VERSION:
		kind = TLS_FAIL_VERSION;
		break;
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SHARED_GROUPS:
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
	case SSL_R_NO_CIPHERS_AVAILABLE:
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
		kind = TLS_FAIL_CIPHER;
		break;
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		kind = TLS_FAIL_CLIENT_CERT;
		break;
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
		kind = TLS_FAIL_PLAIN_HTTP;
		break;
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_RECORD_LENGTH_MISMATCH:
		kind = TLS_FAIL_NOT_TLS;
		break;
	}
	if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK)
		snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
	else
		ossl_reason(buf, len);
	ERR_clear_error();
	return kind;
}

int tls_sniff(const unsigned char *p, size_t n, enum tls_fail *kind)
{
	*kind = TLS_FAIL_NOT_TLS;
	if (n == 0)
		return 0;
	if (p[0] == 0x16)
		return 1;
	/* Every HTTP method starts with an upper-case letter. */
	if (p[0] >= 'A' && p[0] <= 'Z') {
		for (size_t i = 1; i < n; i++) {
			if (p[i] == ' ') {
				*kind = TLS_FAIL_PLAIN_HTTP;
				return -1;
			}
			if (p[i] < 'A' || p[i] > 'Z')
				return -1;
		}
		return n < 8 ? 0 : -1;
	}
	return -1;
}

bool tls_resumed(SSL *s)
{
	return SSL_session_reused(s) == 1;
}

const char *tls_sni(SSL *s)
{
	return SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
}

const char *tls_version_text(SSL *s)
{
	return SSL_get_version(s);
}

const char *tls_cipher_text(SSL *s)
{
	return SSL_get_cipher_name(s);
}

static void name_text(X509_NAME *n, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long blen;
	buf[0] = '\0';
	if (!b)
		return;
	X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	blen = BIO_get_mem_data(b, &p);
	if (blen > 0) {
		size_t k = (size_t)blen < len - 1 ? (size_t)blen : len - 1;
		/* A header value must not carry control characters. */
		for (size_t i = 0; i < k; i++)
			buf[i] = (unsigned char)p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i];
		buf[k] = '\0';
	}
	BIO_free(b);
}

void tls_peer_info(SSL *s, struct tls_peer *out)
{
	X509 *x = SSL_get0_peer_certificate(s);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	long v;
	memset(out, 0, sizeof(*out));
	if (!x) {
		snprintf(out->verify, sizeof(out->verify), "NONE");
		return;
	}
	out->present = true;
	name_text(X509_get_subject_name(x), out->subject, sizeof(out->subject));
	name_text(X509_get_issuer_name(x), out->issuer, sizeof(out->issuer));
	{
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		char *hex = bn ? BN_bn2hex(bn) : NULL;
		snprintf(out->serial, sizeof(out->serial), "%s", hex ? hex : "");
		OPENSSL_free(hex);
		BN_free(bn);
	}
	if (X509_digest(x, sha256, md, &mdlen) == 1)
		for (unsigned i = 0; i < mdlen && 2 * i + 2 < sizeof(out->fingerprint); i++)
			snprintf(out->fingerprint + 2 * i, 3, "%02x", md[i]);
	v = SSL_get_verify_result(s);
	if (v == X509_V_OK)
		snprintf(out->verify, sizeof(out->verify), "SUCCESS");
	else
		snprintf(out->verify, sizeof(out->verify), "FAILED:%s", X509_verify_cert_error_string(v));
	ERR_clear_error();
}
