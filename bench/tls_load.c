/* tls_load: TLS handshake load, for the HTTPS scenarios G and H of
 * bench/run.py.
 *
 * Keeps CONNS connections going for WARMUP_S + SECONDS seconds. Each one is a
 * new TCP connection, a TLS 1.3 handshake, one "GET /" with
 * "Connection: close", its response (read to the end of its Content-Length
 * body), then a close_notify and close(); as soon as one finishes, the slot
 * starts the next one (closed loop, like wrk). Everything is non-blocking,
 * on one epoll loop, in one thread.
 *
 *   gcc -O2 -o tls_load bench/tls_load.c -lssl -lcrypto
 *   tls_load -p PORT -d SECONDS -m full|resume [-c CONNS] [-w WARMUP_S]
 *            [-a ADDR] [-n SNI] [-s CIPHERSUITE] [-g GROUP] [-P PID,PID..]
 *            [-T TIMEOUT_S]
 *
 * -m full: no session is ever offered (the client keeps no session cache),
 *    so every handshake is a full one (certificate, ECDHE, signature).
 * -m resume: each slot keeps the newest session ticket it received (the
 *    server's NewSessionTicket messages, taken with the new-session
 *    callback) and offers it on its next connection (TLS 1.3 PSK with
 *    (EC)DHE, the only resumption mode servers offer by default). The first
 *    connection of each slot, in the warm-up, is a full handshake. Whether
 *    the server really resumed is SSL_session_reused() and is counted: the
 *    "resumed" figure is measured, not assumed. Like browsers (RFC 8446,
 *    C.4), OpenSSL's client uses a TLS 1.3 ticket once (a session it resumed
 *    is no longer resumable), so the next connection of a slot resumes only
 *    if the server sent a new ticket on the resumed one ("renewed" counts
 *    the resumed connections that received one).
 *
 * The client offers TLS 1.3 only, one cipher suite (-s, default
 * TLS_AES_128_GCM_SHA256) and one key-exchange group (-g, default X25519),
 * so that every server negotiates the same; the negotiated protocol, suite,
 * group and signature type are reported, and any handshake that negotiated
 * something else than the first one is counted ("mismatch"). The server's
 * certificate is not verified (its CertificateVerify signature is, as part
 * of TLS 1.3).
 *
 * Only connections that complete inside the recorded window (after the
 * warm-up) are counted; those still open at the end are dropped, not
 * counted as errors. A connection that takes more than TIMEOUT_S (default
 * 10) is closed and counted as a timeout. With -P, the utime + stime of those
 * processes (/proc/PID/stat) is read at the start and the end of the
 * recorded window, so that the proxy's CPU time can be divided by exactly
 * the handshakes of that window.
 *
 * Writes one JSON object to stdout: counts, handshakes/s, the resumed
 * fraction, errors, the negotiated parameters, and the distributions (mean,
 * p50, p90, p99, p99.9, max, in seconds) of the time from connect() to the
 * end of the handshake and to the last byte of the response. Linux only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROG "tls_load"
#include "load_common.h"

#define BUFSZ 16384
#define MAXPIDS 16

enum state { S_IDLE, S_CONNECT, S_HANDSHAKE, S_WRITE, S_READ };

struct slot {
	int fd;
	enum state state;
	uint32_t events;  /* epoll interest registered for fd */
	SSL *ssl;
	SSL_SESSION *sess;  /* resume mode: newest ticket received */
	int64_t start;    /* connect() */
	int64_t hs_done;  /* end of the handshake */
	int offered;      /* a session was offered on this connection */
	int tickets;      /* NewSessionTicket messages received on this connection */
	size_t len;
	char buf[BUFSZ];
};

static struct sockaddr_in addr;
static char request[512];
static int reqlen;
static int resume_mode;
static int slot_idx;  /* SSL ex_data index of the slot pointer */
static int epfd;

static struct {
	long completed;        /* in the recorded window */
	long completed_total;  /* warm-up included */
	long resumed;          /* in the window, SSL_session_reused() */
	long resumed_total;
	long offered;          /* in the window, a session was offered */
	long e_connect, e_handshake, e_io, e_closed, e_status, e_parse, e_timeout, e_mismatch;
	long tickets;          /* NewSessionTicket messages received (resume mode) */
	long renewed;          /* in the window, resumed connections that received a new ticket */
} st;

static int64_t *lat, *hs_lat;  /* recorded latencies (ns) */
static long nlat, caplat;
static int recording;

static char neg_proto[32], neg_cipher[64], neg_group[32], neg_sig[32];
static const SSL_CIPHER *neg_cipher_p;
static int neg_group_nid;

static void die_ssl(const char *what)
{
	fprintf(stderr, "tls_load: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(2);
}

/* utime + stime of the processes, in clock ticks ({user, sys}). */
static void proc_cpu(const int *pids, int n, long out[2])
{
	out[0] = out[1] = 0;
	for (int i = 0; i < n; i++) {
		char path[64], data[2048];
		snprintf(path, sizeof path, "/proc/%d/stat", pids[i]);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t r = fread(data, 1, sizeof data - 1, f);
		fclose(f);
		data[r] = 0;
		char *p = strrchr(data, ')');
		if (!p)
			continue;
		/* after ") ": state(3) ppid(4) ... utime(14) stime(15) */
		p += 2;
		for (int field = 3; field < 14 && p; field++) {
			p = strchr(p, ' ');
			if (p)
				p++;
		}
		if (!p)
			continue;
		long u = 0, s = 0;
		if (sscanf(p, "%ld %ld", &u, &s) == 2) {
			out[0] += u;
			out[1] += s;
		}
	}
}

/* Length of the complete response at the start of buf, 0 if incomplete, -1
 * if malformed; *status gets the status code. Content-Length framing only. */
static long response_len(const char *buf, size_t len, int *status)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *p, *eol;
	long clen = -1;
	if (!end)
		return len >= BUFSZ ? -1 : 0;
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(buf + 9);
	for (p = memchr(buf, '\n', end - buf) + 1; p < end; p = eol + 2) {
		eol = memmem(p, end + 2 - p, "\r\n", 2);
		if (!eol)
			return -1;
		if (eol - p > 15 && strncasecmp(p, "content-length:", 15) == 0)
			clen = strtol(p + 15, NULL, 10);
		else if (eol - p > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0)
			return -1;
	}
	if (clen < 0)
		clen = 0;
	if ((size_t)(end + 4 - buf) + clen > len)
		return (end + 4 - buf) + clen > BUFSZ ? -1 : 0;
	return (end + 4 - buf) + clen;
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct slot *s = SSL_get_ex_data(ssl, slot_idx);
	st.tickets++;
	if (s)
		s->tickets++;
	if (!s || !SSL_SESSION_is_resumable(sess))
		return 0;
	if (s->sess)
		SSL_SESSION_free(s->sess);
	s->sess = sess;
	return 1;  /* we keep the reference */
}

static void want(struct slot *s, uint32_t ev)
{
	if (s->events == ev)
		return;
	struct epoll_event e = { .events = ev, .data.ptr = s };
	if (epoll_ctl(epfd, s->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd, &e) < 0)
		die("epoll_ctl");
	s->events = ev;
}

static void drop(struct slot *s, int shutdown_tls)
{
	if (s->ssl) {
		if (shutdown_tls)
			SSL_shutdown(s->ssl);  /* one call: send close_notify, do not wait */
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0) {
		close(s->fd);  /* also removes it from the epoll set */
		s->fd = -1;
	}
	s->events = 0;
	s->state = S_IDLE;
}

static SSL_CTX *ctx;
static const char *sni;

static void start(struct slot *s)
{
	int one = 1;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		die("socket");
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	s->start = now_ns();
	s->len = 0;
	s->events = 0;
	s->ssl = SSL_new(ctx);
	if (!s->ssl)
		die_ssl("SSL_new");
	SSL_set_ex_data(s->ssl, slot_idx, s);
	SSL_set_fd(s->ssl, s->fd);
	SSL_set_connect_state(s->ssl);
	if (sni)
		SSL_set_tlsext_host_name(s->ssl, sni);
	s->tickets = 0;
	s->offered = resume_mode && s->sess;
	if (s->offered)
		SSL_set_session(s->ssl, s->sess);
	if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
		st.e_connect++;
		drop(s, 0);
		return;
	}
	s->state = S_CONNECT;
	want(s, EPOLLOUT);
}

static void record_params(SSL *ssl)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int g = SSL_get_negotiated_group(ssl);
	if (!neg_cipher_p) {
		int sig = 0;
		neg_cipher_p = c;
		neg_group_nid = g;
		snprintf(neg_proto, sizeof neg_proto, "%s", SSL_get_version(ssl));
		snprintf(neg_cipher, sizeof neg_cipher, "%s", c ? SSL_CIPHER_get_name(c) : "?");
		const char *gn = SSL_group_to_name(ssl, g);
		snprintf(neg_group, sizeof neg_group, "%s", gn ? gn : "?");
		int md = 0;
		if (SSL_get_peer_signature_type_nid(ssl, &sig) &&
		    SSL_get_peer_signature_nid(ssl, &md))
			snprintf(neg_sig, sizeof neg_sig, "%s+%s",
				 sig == EVP_PKEY_EC ? "ECDSA" : OBJ_nid2sn(sig), OBJ_nid2sn(md));
		else
			snprintf(neg_sig, sizeof neg_sig, "%s", "none");
	} else if (c != neg_cipher_p || g != neg_group_nid) {
		st.e_mismatch++;
	}
}

static void finish(struct slot *s, int64_t t)
{
	int reused = SSL_session_reused(s->ssl);
	st.completed_total++;
	st.resumed_total += reused;
	if (recording) {
		st.completed++;
		st.resumed += reused;
		st.renewed += reused && s->tickets > 0;
		if (nlat == caplat) {
			caplat = caplat ? caplat * 2 : 65536;
			lat = realloc(lat, caplat * sizeof *lat);
			hs_lat = realloc(hs_lat, caplat * sizeof *hs_lat);
			if (!lat || !hs_lat)
				die("realloc");
		}
		lat[nlat] = t - s->start;
		hs_lat[nlat] = s->hs_done - s->start;
		nlat++;
	}
	drop(s, 1);
}

/* Error on slot s: count it, close the connection. */
static void fail(struct slot *s, long *counter)
{
	if (recording)
		(*counter)++;
	ERR_clear_error();
	drop(s, 0);
}

static void advance(struct slot *s)
{
	int r, err;
	for (;;) {
		switch (s->state) {
		case S_IDLE:
			return;
		case S_CONNECT: {
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			if (soerr) {
				fail(s, &st.e_connect);
				return;
			}
			s->state = S_HANDSHAKE;
			break;
		}
		case S_HANDSHAKE:
			r = SSL_connect(s->ssl);
			if (r == 1) {
				s->hs_done = now_ns();
				if (recording && s->offered)
					st.offered++;
				record_params(s->ssl);
				s->state = S_WRITE;
				break;
			}
			err = SSL_get_error(s->ssl, r);
			if (err == SSL_ERROR_WANT_READ) {
				want(s, EPOLLIN);
				return;
			}
			if (err == SSL_ERROR_WANT_WRITE) {
				want(s, EPOLLOUT);
				return;
			}
			fail(s, &st.e_handshake);
			return;
		case S_WRITE:
			r = SSL_write(s->ssl, request, reqlen);
			if (r == reqlen) {
				s->state = S_READ;
				break;
			}
			err = SSL_get_error(s->ssl, r);
			if (err == SSL_ERROR_WANT_WRITE) {
				want(s, EPOLLOUT);
				return;
			}
			if (err == SSL_ERROR_WANT_READ) {
				want(s, EPOLLIN);
				return;
			}
			fail(s, &st.e_io);
			return;
		case S_READ:
			r = SSL_read(s->ssl, s->buf + s->len, BUFSZ - s->len);
			if (r > 0) {
				int status = 0;
				s->len += r;
				long n = response_len(s->buf, s->len, &status);
				if (n < 0) {
					fail(s, &st.e_parse);
					return;
				}
				if (n > 0) {
					if (status < 200 || status > 299) {
						fail(s, &st.e_status);
						return;
					}
					finish(s, now_ns());
					return;
				}
				break;
			}
			err = SSL_get_error(s->ssl, r);
			if (err == SSL_ERROR_WANT_READ) {
				want(s, EPOLLIN);
				return;
			}
			if (err == SSL_ERROR_WANT_WRITE) {
				want(s, EPOLLOUT);
				return;
			}
			fail(s, err == SSL_ERROR_ZERO_RETURN ||
				     (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) ?
				     &st.e_closed : &st.e_io);
			return;
		}
	}
}

int main(int argc, char **argv)
{
	const char *ip = "127.0.0.1", *mode = NULL, *suite = "TLS_AES_128_GCM_SHA256";
	const char *group = "X25519";
	int port = 0, nconn = 50, opt, pids[MAXPIDS], npids = 0;
	double duration = 0, warmup = 1, timeout = 10;
	sni = "localhost";
	while ((opt = getopt(argc, argv, "a:p:d:c:w:m:n:s:g:P:T:")) != -1) {
		switch (opt) {
		case 'a': ip = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'c': nconn = atoi(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'm': mode = optarg; break;
		case 'n': sni = *optarg ? optarg : NULL; break;
		case 's': suite = optarg; break;
		case 'g': group = optarg; break;
		case 'T': timeout = atof(optarg); break;
		case 'P':
			for (char *t = strtok(optarg, ","); t && npids < MAXPIDS; t = strtok(NULL, ","))
				pids[npids++] = atoi(t);
			break;
		default:
			fprintf(stderr, "usage: tls_load -p PORT -d SECONDS -m full|resume [-c CONNS] "
				"[-w WARMUP_S] [-a ADDR] [-n SNI] [-s CIPHERSUITE] [-g GROUP] "
				"[-P PID,PID..] [-T TIMEOUT_S]\n");
			return 2;
		}
	}
	if (port <= 0 || duration <= 0 || nconn <= 0 || warmup < 0 || !mode ||
	    (strcmp(mode, "full") != 0 && strcmp(mode, "resume") != 0)) {
		fprintf(stderr, "tls_load: -p, -d and -m full|resume are required\n");
		return 2;
	}
	resume_mode = strcmp(mode, "resume") == 0;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons(port);
	if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
		fprintf(stderr, "tls_load: bad address %s\n", ip);
		return 2;
	}
	reqlen = snprintf(request, sizeof request,
			  "GET / HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
			  sni ? sni : ip, port);
	signal(SIGPIPE, SIG_IGN);

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		die_ssl("SSL_CTX_new");
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
		die_ssl("TLS 1.3 only");
	if (!SSL_CTX_set_ciphersuites(ctx, suite))
		die_ssl("cipher suite (-s)");
	if (!SSL_CTX_set1_groups_list(ctx, group))
		die_ssl("group (-g)");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (resume_mode) {
		/* no internal cache: each slot keeps its own newest ticket */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
					       SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	slot_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);

	epfd = epoll_create1(0);
	if (epfd < 0)
		die("epoll_create1");
	struct slot *slots = calloc(nconn, sizeof *slots);
	struct epoll_event *evs = calloc(nconn, sizeof *evs);
	if (!slots || !evs)
		die("calloc");
	for (int i = 0; i < nconn; i++)
		slots[i].fd = -1;

	struct rusage ru0, ru1;
	long cpu0[2] = { 0, 0 }, cpu1[2] = { 0, 0 };
	int64_t t0 = now_ns(), rec_start = t0 + (int64_t)(warmup * 1e9);
	int64_t end = rec_start + (int64_t)(duration * 1e9), rec_end = end;
	int64_t tmo = (int64_t)(timeout * 1e9), next_scan = t0;
	recording = warmup <= 0;
	if (recording) {
		getrusage(RUSAGE_SELF, &ru0);
		proc_cpu(pids, npids, cpu0);
	}
	for (int i = 0; i < nconn; i++)
		start(&slots[i]);
	for (;;) {
		int64_t t = now_ns();
		if (!recording && t >= rec_start) {
			recording = 1;
			rec_start = t;
			getrusage(RUSAGE_SELF, &ru0);
			proc_cpu(pids, npids, cpu0);
		}
		if (t >= end) {
			rec_end = t;
			proc_cpu(pids, npids, cpu1);
			getrusage(RUSAGE_SELF, &ru1);
			break;
		}
		if (t >= next_scan) {  /* timeouts, and slots whose connect failed at once */
			for (int i = 0; i < nconn; i++) {
				struct slot *s = &slots[i];
				if (s->state != S_IDLE && t - s->start > tmo)
					fail(s, &st.e_timeout);
				if (s->state == S_IDLE)
					start(s);
			}
			next_scan = t + 50000000;
		}
		int64_t wake = recording ? end : rec_start;
		if (wake > next_scan)
			wake = next_scan;
		int ms = (int)((wake - t) / 1000000) + 1;
		int n = epoll_wait(epfd, evs, nconn, ms);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct slot *s = evs[i].data.ptr;
			advance(s);
			if (s->state == S_IDLE && now_ns() < end)
				start(s);  /* the next connection of this slot */
		}
	}
	double window = (double)(rec_end - rec_start) / 1e9;
	double ucpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
		      (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
	double scpu = (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
		      (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
	long tck = sysconf(_SC_CLK_TCK);
	printf("{\n");
	printf("  \"mode\": \"%s\", \"connections\": %d, \"duration\": %.3f, \"warmup\": %.3f, "
	       "\"window\": %.6f,\n", mode, nconn, duration, warmup, window);
	printf("  \"completed\": %ld, \"completed_total\": %ld, \"handshakes_per_s\": %.3f,\n",
	       st.completed, st.completed_total, window > 0 ? st.completed / window : 0.0);
	printf("  \"resumed\": %ld, \"resumed_total\": %ld, \"resumed_fraction\": %.6f, "
	       "\"offered\": %ld, \"tickets\": %ld, \"renewed\": %ld,\n", st.resumed,
	       st.resumed_total, st.completed ? (double)st.resumed / st.completed : 0.0,
	       st.offered, st.tickets, st.renewed);
	printf("  \"errors\": {\"connect\": %ld, \"handshake\": %ld, \"io\": %ld, \"closed\": %ld, "
	       "\"status\": %ld, \"parse\": %ld, \"timeout\": %ld, \"mismatch\": %ld},\n",
	       st.e_connect, st.e_handshake, st.e_io, st.e_closed, st.e_status, st.e_parse,
	       st.e_timeout, st.e_mismatch);
	printf("  \"protocol\": \"%s\", \"cipher\": \"%s\", \"group\": \"%s\", "
	       "\"signature\": \"%s\",\n", neg_proto, neg_cipher, neg_group, neg_sig);
	printf("  \"client_cpu_user\": %.6f, \"client_cpu_sys\": %.6f,\n", ucpu, scpu);
	if (npids)
		printf("  \"proxy_cpu_user\": %.6f, \"proxy_cpu_sys\": %.6f,\n",
		       (double)(cpu1[0] - cpu0[0]) / tck, (double)(cpu1[1] - cpu0[1]) / tck);
	print_dist("handshake", hs_lat, nlat, 0);
	print_dist("latency", lat, nlat, 1);
	printf("}\n");
	return 0;
}
