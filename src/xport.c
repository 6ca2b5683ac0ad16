#include "xport.h"
#include "addr.h"
#include "buf.h"
#include "log.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- send batching ------------------------------------------------------ */

#define BATCH_SLOTS 256           /* sockets with staged bytes per round */
#define BATCH_ARENA (256u * 1024) /* staged bytes per round */
#define BATCH_MAX 4096            /* larger writes go out at once */

struct lingerer {
	struct loop_io io;
	struct loop_timer timer;
	struct xport_batch *b;
	struct lingerer *next, **pprev;
	char *data;
	uint32_t len;
	bool shut;
};

struct xport_batch {
	struct io_uring ring;
	struct loop *loop;
	struct xport *slot[BATCH_SLOTS];
	uint32_t nslots, used;
	bool broken;              /* io_uring failed: no more batching */
	struct lingerer *lingering;
	uint32_t nlinger;
	char arena[BATCH_ARENA];
};

static __thread struct xport_batch *cur_batch;

/* Keep n bytes the kernel did not take, behind those already kept. */
static void keep(struct xport *x, const char *p, uint32_t n)
{
	if (x->pend_len + n > x->pend_cap) {
		uint32_t cap = x->pend_cap * 2 > x->pend_len + n ? x->pend_cap * 2 : x->pend_len + n;
		x->pend = xrealloc(x->pend, cap);
		x->pend_cap = cap;
	}
	memcpy(x->pend + x->pend_len, p, n);
	x->pend_len += n;
}

/* Take x's staged bytes out of the batch: into pend when `keep_them`. */
static void unstage(struct xport *x, bool keep_them)
{
	struct xport_batch *b = cur_batch;
	if (keep_them)
		keep(x, b->arena + x->st_off, x->st_len);
	b->slot[x->st_slot - 1] = NULL;
	x->st_slot = 0;
	x->st_len = 0;
}

static void drop_pending(struct xport *x)
{
	if (x->st_slot)
		unstage(x, false);
	free(x->pend);
	x->pend = NULL;
	x->pend_len = x->pend_cap = 0;
}

/* Send from *len bytes at p until all are out (0), the socket is full
 * (FL_AGAIN), or it fails (-errno); what is left moves to the front. */
static int send_rest(int fd, char *p, uint32_t *len)
{
	uint32_t done = 0;
	int rc = 0;
	while (done < *len) {
		ssize_t r = send(fd, p + done, *len - done, MSG_NOSIGNAL);
		if (r < 0) {
			rc = errno == EAGAIN || errno == EINTR ? FL_AGAIN : -errno;
			break;
		}
		done += (uint32_t)r;
	}
	memmove(p, p + done, *len - done);
	*len -= done;
	return rc;
}

/* Bytes written to x that have not gone to the kernel yet. */
static bool unsent(const struct xport *x)
{
	return x->st_slot || x->pend_len;
}

/* Send what is staged and kept for x now: 0 when all of it is out (and the
 * shutdown that waited for it done), FL_AGAIN when some is left (can_write
 * cleared), or -errno (also kept in x->err). */
static int push_out(struct xport *x)
{
	if (x->st_slot)
		unstage(x, true);
	int rc = send_rest(x->io.fd, x->pend, &x->pend_len);
	if (rc == FL_AGAIN)
		x->can_write = false;
	if (rc)
		return rc == FL_AGAIN ? rc : (x->err = rc);
	drop_pending(x);
	if (x->shut_after) {
		x->shut_after = false;
		shutdown(x->io.fd, SHUT_WR);
	}
	return 0;
}

/* Copy a write into the batch when it may go there; true if it did. */
static bool stage(struct xport *x, const void *p, size_t n)
{
	struct xport_batch *b = cur_batch;
	if (!b || b->broken || n > BATCH_MAX || b->used + n > BATCH_ARENA)
		return false;
	if (x->st_slot && x->st_off + x->st_len != b->used)
		return false;  /* another socket staged since: not contiguous */
	if (!x->st_slot) {
		if (b->nslots == BATCH_SLOTS)
			return false;
		b->slot[b->nslots++] = x;
		x->st_slot = b->nslots;
		x->st_off = b->used;
		x->st_len = 0;
	}
	memcpy(b->arena + b->used, p, n);
	b->used += (uint32_t)n;
	x->st_len += (uint32_t)n;
	return true;
}

/* What became of x's staged bytes: res bytes went (or -errno). */
static void sent(struct xport *x, int res)
{
	if (res == -EAGAIN || res == -EINTR)
		res = 0;
	if (res < 0) {
		x->err = res;  /* epoll reports it too; the next call returns it */
		unstage(x, false);
	} else if ((uint32_t)res < x->st_len) {
		x->st_off += (uint32_t)res;
		x->st_len -= (uint32_t)res;
		unstage(x, true);
		x->can_write = false;  /* EPOLLOUT sends the rest */
	} else {
		unstage(x, false);
	}
}

void xport_batch_flush(void *arg)
{
	struct xport_batch *b = arg;
	unsigned n = 0, live = 0;
	for (uint32_t i = 0; i < b->nslots; i++)
		live += b->slot[i] != NULL;
	/* A lone send costs less as send() than through the ring (measured
	 * 2.9 against 3.35 us); two or more cost less together. */
	for (uint32_t i = 0; i < b->nslots && live > 1 && !b->broken; i++) {
		struct xport *x = b->slot[i];
		if (!x)
			continue;
		struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
		io_uring_prep_send(sqe, x->io.fd, b->arena + x->st_off, x->st_len,
				   MSG_NOSIGNAL | MSG_DONTWAIT);
		sqe->user_data = i;
		n++;
	}
	int rc = 0;
	if (n) {
		/* MSG_DONTWAIT: each send completes within the call (-EAGAIN
		 * rather than waiting for room), so the wait ends at once. */
		do
			rc = io_uring_submit_and_wait(&b->ring, n);
		while (rc == -EINTR);
	}
	if (rc < 0) {
		/* The sends may still sit in the ring: drop the ring (so they
		 * never go with whatever the arena holds later) and send every
		 * write at once from now on. */
		log_error("send batching stops: io_uring_enter: %s; each write goes out "
			  "with its own syscall from now on", strerror(-rc));
		io_uring_queue_exit(&b->ring);
		b->broken = true;
	}
	for (unsigned seen = 0; seen < n && rc >= 0; seen++) {
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe(&b->ring, &cqe) < 0)
			break;
		struct xport *x = b->slot[cqe->user_data];
		int res = cqe->res;
		io_uring_cqe_seen(&b->ring, cqe);
		sent(x, res);
	}
	/* A lone one, or what io_uring refused: send it here. */
	for (uint32_t i = 0; i < b->nslots; i++) {
		struct xport *x = b->slot[i];
		if (!x)
			continue;
		ssize_t r = send(x->io.fd, b->arena + x->st_off, x->st_len, MSG_NOSIGNAL);
		sent(x, r < 0 ? -errno : (int)r);
	}
	b->nslots = 0;
	b->used = 0;
}

/* The flush relies on a MSG_DONTWAIT send that meets a full socket ending
 * with -EAGAIN inside io_uring_enter (older kernels parked it to finish
 * later, which would stop the worker in the wait). Check it on a full
 * socketpair: 0, or -errno (-EOPNOTSUPP when the kernel parks it). */
static int probe_nowait(struct io_uring *ring)
{
	int sv[2], rc = -EOPNOTSUPP, small = 4096;
	static const char fill[4096];
	struct io_uring_cqe *cqe;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	for (int i = 0; i < 4096 && send(sv[0], fill, sizeof(fill), MSG_NOSIGNAL) > 0; i++)
		;
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	io_uring_prep_send(sqe, sv[0], fill, sizeof(fill), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (io_uring_submit(ring) == 1 && io_uring_peek_cqe(ring, &cqe) == 0) {
		rc = cqe->res == -EAGAIN ? 0 : -EOPNOTSUPP;
		io_uring_cqe_seen(ring, cqe);
	}
	close(sv[0]);  /* a parked send ends with the socket */
	close(sv[1]);
	return rc;
}

struct xport_batch *xport_batch_new(struct loop *l)
{
	struct xport_batch *b = xcalloc(1, sizeof(*b));
	int rc = io_uring_queue_init(BATCH_SLOTS, &b->ring, 0);
	if (rc == 0 && (rc = probe_nowait(&b->ring)) < 0)
		io_uring_queue_exit(&b->ring);
	if (rc < 0) {
		free(b);
		errno = -rc;
		return NULL;
	}
	b->loop = l;
	return b;
}

static void linger_end(struct lingerer *lg)
{
	loop_timer_del(lg->b->loop, &lg->timer);
	close(lg->io.fd);
	*lg->pprev = lg->next;
	if (lg->next)
		lg->next->pprev = lg->pprev;
	lg->b->nlinger--;
	free(lg->data);
	free(lg);
}

void xport_batch_free(struct xport_batch *b)
{
	if (!b)
		return;
	while (b->lingering)
		linger_end(b->lingering);
	if (cur_batch == b)
		cur_batch = NULL;
	if (!b->broken)
		io_uring_queue_exit(&b->ring);
	free(b);
}

void xport_batch_use(struct xport_batch *b)
{
	cur_batch = b;
}

static void linger_event(struct loop *l, struct loop_io *io, uint32_t ev)
{
	struct lingerer *lg = container_of(io, struct lingerer, io);
	if (!(ev & EPOLLERR) && send_rest(io->fd, lg->data, &lg->len) == FL_AGAIN)
		return;
	if (!lg->len && lg->shut)
		shutdown(io->fd, SHUT_WR);
	linger_end(lg);
}

static void linger_timeout(struct loop *l, struct loop_timer *t)
{
	linger_end(container_of(t, struct lingerer, timer));
}

/* Hand a closing socket with bytes left to send to the batch, which sends
 * them when it can and then closes it. False when it cannot take it. */
static bool linger(struct xport *x)
{
	struct xport_batch *b = cur_batch;
	if (!b || b->nlinger >= XPORT_LINGER_MAX)
		return false;
	struct lingerer *lg = xcalloc(1, sizeof(*lg));
	lg->io.fd = x->io.fd;
	lg->io.fn = linger_event;
	if (loop_mod(b->loop, &lg->io, EPOLLOUT) < 0) {
		free(lg);
		return false;
	}
	lg->b = b;
	lg->data = x->pend;
	lg->len = x->pend_len;
	lg->shut = x->shut_after;
	lg->timer.fn = linger_timeout;
	loop_timer_set(b->loop, &lg->timer, XPORT_LINGER_MS);
	lg->next = b->lingering;
	lg->pprev = &b->lingering;
	if (lg->next)
		lg->next->pprev = &lg->next;
	b->lingering = lg;
	b->nlinger++;
	x->pend = NULL;
	x->pend_len = x->pend_cap = 0;
	x->shut_after = false;
	x->io.fd = -1;
	return true;
}

/* ---- reading and writing ------------------------------------------------ */

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
	if ((ev & (EPOLLRDHUP | EPOLLERR)) == EPOLLRDHUP)
		x->fin = true;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
		x->can_write = true;
		if (x->rd_wants_write) {
			x->rd_wants_write = false;
			x->can_read = true;
		}
		if (x->pend_len && !x->err)
			push_out(x);
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
		if (x->at_end)
			return 0;
		r = recv(x->io.fd, p, n, 0);
		if (r >= 0) {
			/* Nothing can follow the FIN: a read it left short has
			 * taken the last bytes, and asking again would only
			 * return 0. (A reset after the FIN is then seen as the
			 * end; the bytes before it were all delivered.) */
			if (x->fin && (size_t)r < n)
				x->at_end = true;
			return r;
		}
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
		if (x->err)
			return x->err;
		if (x->pend_len && (r = push_out(x)) != 0)
			return r;
		if (stage(x, p, n))
			return (ssize_t)n;
		if (x->st_slot && (r = push_out(x)) != 0)
			return r;
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
	if (x->err)
		return x->err;
	if (unsent(x)) {
		int rc = push_out(x);
		if (rc)
			return rc;
	}
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
	} else if (unsent(x) && !x->err && push_out(x) == FL_AGAIN) {
		x->shut_after = true;  /* once the rest is out */
		return;
	}
	shutdown(x->io.fd, SHUT_WR);
}

void xport_move(struct xport *dst, struct xport *src)
{
	*dst = *src;
	if (dst->st_slot)
		cur_batch->slot[dst->st_slot - 1] = dst;
	src->io.fd = -1;
	src->tls = NULL;
	src->st_slot = src->st_len = 0;
	src->pend = NULL;
	src->pend_len = src->pend_cap = 0;
}

void xport_close(struct xport *x, bool clean)
{
	if (unsent(x)) {
		if (clean && !x->err && push_out(x) == FL_AGAIN && linger(x))
			return;
		drop_pending(x);
	}
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
