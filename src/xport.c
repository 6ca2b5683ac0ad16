#include "xport.h"
#include "addr.h"
#include "buf.h"
#include "log.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include <sys/socket.h>
#include <unistd.h>

void xport_note(struct xport *x, uint32_t ev)
{
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		x->can_read = true;
		if (x->wr_wants_read) {
			x->wr_wants_read = false;
			x->can_write = true;
		}
	}
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		x->hup = true;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
		x->can_write = true;
		if (x->rd_wants_write) {
			x->rd_wants_write = false;
			x->can_read = true;
		}
	}
}

/* A TLS call could not go on: wait for what it asked for. `reading` says
 * which of the two the caller was doing. */
static void tls_wait(struct xport *x, int want, bool reading)
{
	if (reading) {
		x->can_read = false;
		if (want == TLS_WANT_WRITE) {
			x->can_write = false;
			x->rd_wants_write = true;
		}
	} else {
		x->can_write = false;
		if (want == TLS_WANT_READ)
			x->wr_wants_read = true;
	}
}

ssize_t xport_recv(struct xport *x, void *p, size_t n)
{
	ssize_t r;
	if (!x->tls) {
		r = recv(x->io.fd, p, n, 0);
		if (r >= 0)
			return r;
		if (errno == EAGAIN) {
			x->can_read = false;
			return FL_AGAIN;
		}
		return errno == EINTR ? FL_AGAIN : -errno;
	}
	int want = 0;
	r = tls_recv(x->tls, p, n, &want);
	if (r == FL_AGAIN)
		tls_wait(x, want, true);
	return r;
}

ssize_t xport_send(struct xport *x, const void *p, size_t n)
{
	ssize_t r;
	if (!x->tls) {
		r = send(x->io.fd, p, n, MSG_NOSIGNAL);
		if (r >= 0)
			return r;
		if (errno == EAGAIN) {
			x->can_write = false;
			return FL_AGAIN;
		}
		return errno == EINTR ? FL_AGAIN : -errno;
	}
	int want = 0;
	r = tls_send(x->tls, p, n, &want);
	if (r == FL_AGAIN)
		tls_wait(x, want, false);
	return r;
}

/* One non-blocking splice() from fd `from` to fd `to`: bytes moved, 0 at
 * the end, FL_AGAIN (and *ready cleared), or -errno. */
static ssize_t splice_once(int from, int to, size_t len, bool *ready)
{
	ssize_t n;
	if (!*ready)
		return FL_AGAIN;
	do
		n = splice(from, NULL, to, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno != EAGAIN)
		return -errno;
	*ready = false;
	return FL_AGAIN;
}

ssize_t xport_splice_in(struct xport *x, struct fpipe *p, size_t max)
{
	if (max > p->cap - p->fill)
		max = p->cap - p->fill;
	ssize_t n = splice_once(x->io.fd, p->wr, max, &x->can_read);
	if (n > 0)
		p->fill += (uint32_t)n;
	return n;
}

ssize_t xport_splice_out(struct xport *x, struct fpipe *p)
{
	ssize_t n = splice_once(p->rd, x->io.fd, p->fill, &x->can_write);
	if (n > 0)
		p->fill -= (uint32_t)n;
	return n;
}

void xport_shutdown_wr(struct xport *x)
{
	if (x->tls) {
		/* close_notify, best effort; no more TLS writes after it. */
		int want;
		tls_close_notify(x->tls, &want);
	}
	shutdown(x->io.fd, SHUT_WR);
}

void xport_close(struct xport *x, bool clean)
{
	if (x->tls) {
		tls_close(x->tls, clean);
		x->tls = NULL;
	}
	if (x->io.fd >= 0)
		close(x->io.fd);
	x->io.fd = -1;
}

_Static_assert(STATS_TLS_FAIL_KINDS == TLS_FAIL_KINDS, "one counter per kind of TLS failure");

static const char plain_http_answer[] =
	"HTTP/1.1 400 Bad Request\r\n"
	"Content-Type: text/plain\r\n"
	"Content-Length: 52\r\n"
	"Connection: close\r\n"
	"\r\n"
	"This port speaks HTTPS; send the request with TLS.\r\n";

int xport_tls_accept(struct xport *x, struct worker *w, struct listener_rt *l,
		     const struct sockaddr_storage *peer, bool *sniffed)
{
	struct ctr_listener *cl = &w->stats->listeners[l->index];
	char why[256], who[ADDR_STRLEN];
	enum tls_fail kind;
	int want = 0, rc;

	if (!*sniffed) {
		unsigned char first[8];
		ssize_t n = recv(x->io.fd, first, sizeof(first), MSG_PEEK);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return FL_AGAIN;
		if (n <= 0) {
			kind = TLS_FAIL_CLOSED;
			snprintf(why, sizeof(why), "%s before the handshake",
				 n == 0 ? "closed" : strerror(errno));
			goto fail;
		}
		rc = tls_sniff(first, (size_t)n, &kind);
		if (rc == 0)
			return FL_AGAIN;  /* a few letters so far: the rest tells */
		if (rc < 0) {
			snprintf(why, sizeof(why), "%s", kind == TLS_FAIL_PLAIN_HTTP ?
				 "a plain HTTP request" : "the first bytes are not a TLS record");
			if (kind == TLS_FAIL_PLAIN_HTTP && l->conf->protocol == PROTO_HTTPS &&
			    send(x->io.fd, plain_http_answer, sizeof(plain_http_answer) - 1,
				 MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				snprintf(why + strlen(why), sizeof(why) - strlen(why),
					 " (the 400 could not be sent)");
			goto fail;
		}
		*sniffed = true;
	}
	rc = tls_handshake(x->tls, &want);
	if (rc == FL_AGAIN)
		return FL_AGAIN;
	if (rc == 0) {
		ctr_add(&cl->tls_handshakes, 1);
		if (tls_resumed(x->tls))
			ctr_add(&cl->tls_resumed, 1);
		return 0;
	}
	kind = tls_failure(x->tls, rc, why, sizeof(why));
fail:
	ctr_add(&cl->tls_failed[kind], 1);
	log_debug("listener %s: client %s: TLS handshake failed (%s): %s", l->conf->name,
		  addr_format((const struct sockaddr *)peer, who, sizeof(who)), tls_fail_names[kind], why);
	return -EPROTO;
}

int xport_tls_connect(struct xport *x, char *why, size_t len)
{
	int want = 0;
	int rc = tls_handshake(x->tls, &want);
	if (rc == 0 || rc == FL_AGAIN)
		return rc;
	tls_failure(x->tls, rc, why, len);
	return -EPROTO;
}
