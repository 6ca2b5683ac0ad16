/* Stream engine for L4 passthrough.
 *
 * Edge-triggered I/O: each socket keeps "can read" and "can write" flags set
 * by epoll events and cleared when a syscall says EAGAIN, so the engine only
 * makes syscalls that can make progress. Each direction moves bytes either
 * through a pipe with splice() (both ends plain TCP, zero copy) or through a
 * 16 KiB buffer; either is borrowed from the worker only while bytes are in
 * flight. A direction gets a byte budget per turn so one fast transfer cannot
 * starve the worker's other streams: a stream that used its budget goes on
 * the worker's "again" list and continues after the next epoll turn. */
#include "stream.h"
#include "addr.h"
#include "log.h"
#include "sock.h"
#include "tls_hello.h"
#include "util.h"
#include "xport.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TURN_BUDGET (1024 * 1024)

/* ST_WAIT_FD: accepted, but no descriptor was left for the backend socket;
 * parked on the worker's fd_wait list until a connection closes. */
/* ST_HELLO: tls_passthrough, waiting for the ClientHello to pick a pool.
 * ST_HANDSHAKE: ssl listener, the client's TLS handshake.
 * ST_BE_HANDSHAKE: connected to a TLS server, its handshake. */
enum { ST_HELLO, ST_HANDSHAKE, ST_CONNECTING, ST_BE_HANDSHAKE, ST_OPEN, ST_WAIT_FD, ST_CLOSED };

struct side {
	struct xport x;  /* x.eof: the peer sent FIN (or close_notify) */
	bool shut;       /* we sent FIN */
	bool active;     /* bytes moved this turn (for its idle timer) */
	bool failed;     /* reset or write error: no more writes */
};

struct dir {
	struct buf *buf;
	struct fpipe *pipe;
	uint64_t bytes;  /* delivered to the destination */
	bool done;       /* source ended and everything was delivered */
	bool bulk;       /* a read filled a whole buffer: splice from now on */
	bool no_splice;  /* no pipe could be had: stay on buffers */
};

struct stream {
	struct worker *w;
	struct listener_rt *l;
	struct pool_rt *pool;
	struct lb_server *srv;
	struct side cli, be;
	struct dir up, down;             /* up: client -> server */
	struct loop_timer t_cli, t_be;
	struct sockaddr_storage peer;
	uint64_t tried_inline;
	uint64_t *tried;
	uint32_t tries;
	uint64_t start_ms;
	uint64_t cli_idle_ms, be_idle_ms;  /* idle timeouts of each side */
	int state;
	const char *cause;               /* first abnormal event, if any */
	bool in_again;
	bool splice;                     /* both sides plain TCP and forwarding: auto */
	bool sniffed;                    /* ssl: the first bytes were looked at */
	char sni[TLS_HELLO_NAME_MAX + 1]; /* passthrough: the ClientHello's server name */
	uint32_t hello_wait;             /* passthrough: bytes worth parsing the hello again */
	struct stream *prev, *next;      /* worker->streams */
	struct stream *again_next;       /* worker again list */
	struct stream *wait_next;        /* worker fd_wait list */
};

static void stream_close(struct stream *s, const char *cause);
static void connect_next(struct stream *s);
static void pump(struct stream *s);

static void noop_event(struct loop *l, struct loop_io *io, uint32_t ev)
{
}

static struct ctr_server *srv_ctr(struct stream *s)
{
	return &s->w->stats->servers[s->pool->index][s->srv->index];
}

static void client_handshake(struct stream *s);
static void read_hello(struct stream *s);
static void backend_handshake(struct stream *s);

static void on_client(struct loop *l, struct loop_io *io, uint32_t ev)
{
	struct stream *s = container_of(io, struct stream, cli.x.io);
	xport_note(&s->cli.x, ev);
	switch (s->state) {
	case ST_OPEN:
		pump(s);
		break;
	case ST_HANDSHAKE:
		client_handshake(s);
		break;
	case ST_HELLO:
		read_hello(s);
		break;
	case ST_CONNECTING:
	case ST_BE_HANDSHAKE:
		if (ev & EPOLLERR)
			stream_close(s, "client_reset");
		break;
	}
}

static void on_connected(struct stream *s)
{
	if (s->pool->conf->tls.rt && !s->be.x.tls) {
		struct worker *w = s->w;
		const char *sni = s->cli.x.tls ? tls_sni(s->cli.x.tls) : s->sni[0] ? s->sni : NULL;
		s->be.x.tls = tls_client_conn(s->pool->conf->tls.rt, s->be.x.io.fd, sni,
					      &w->tls_sess[s->pool->index][s->srv->index]);
		if (!s->be.x.tls) {
			stream_close(s, "error");
			return;
		}
		s->splice = false;
		s->state = ST_BE_HANDSHAKE;
		backend_handshake(s);
		return;
	}
	s->state = ST_OPEN;
	lb_passive_success(s->srv);
	loop_timer_set(s->w->loop, &s->t_be, s->be_idle_ms);
	ctr_add(&srv_ctr(s)->streams, 1);
	ctr_add(&s->w->stats->pools[s->pool->index].streams, 1);
	pump(s);
}

static void connect_failed(struct stream *s, int err)
{
	char peer[ADDR_STRLEN];
	struct worker *w = s->w;
	uint32_t n = s->pool->lb.nservers;

	log_warn("listener %s: client %s: connect to server %s of pool %s failed: %s (try %u of %llu)",
		 s->l->conf->name, addr_format((struct sockaddr *)&s->peer, peer, sizeof(peer)),
		 s->srv->name, s->pool->conf->name, err == ETIMEDOUT ? "timed out" : strerror(err),
		 s->tries, (unsigned long long)s->pool->conf->retries + 1);
	ctr_add(&srv_ctr(s)->connect_fail, 1);
	ctr_add(&w->stats->pools[s->pool->index].connect_fail, 1);
	lb_passive_failure(&s->pool->lb, s->srv, loop_now(w->loop));
	atomic_fetch_sub_explicit(&s->srv->active, 1, memory_order_relaxed);
	ctr_sub(&srv_ctr(s)->active, 1);
	s->be.x.io.fn = noop_event;
	xport_close(&s->be.x, false);
	s->be = (struct side){ .x = { .io = { .fd = -1 } } };
	if (!s->tried) {
		s->tried = n <= 64 ? &s->tried_inline : xcalloc((n + 63) / 64, sizeof(uint64_t));
	}
	s->tried[s->srv->index / 64] |= 1ULL << (s->srv->index % 64);
	s->srv = NULL;
	if (s->tries > (uint64_t)s->pool->conf->retries) {
		stream_close(s, "connect_failed");
		return;
	}
	connect_next(s);
}

static void on_backend(struct loop *l, struct loop_io *io, uint32_t ev)
{
	struct stream *s = container_of(io, struct stream, be.x.io);
	xport_note(&s->be.x, ev);
	if (s->state == ST_OPEN) {
		pump(s);
	} else if (s->state == ST_BE_HANDSHAKE) {
		backend_handshake(s);
	} else if (s->state == ST_CONNECTING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = sock_connect_result(io->fd, ev);
		if (err)
			connect_failed(s, err);
		else
			on_connected(s);
	}
}

static void on_cli_timer(struct loop *l, struct loop_timer *t)
{
	struct stream *s = container_of(t, struct stream, t_cli);
	if (s->state == ST_HANDSHAKE || s->state == ST_HELLO) {
		ctr_add(&s->w->stats->listeners[s->l->index].tls_failed[TLS_FAIL_TIMEOUT], 1);
		stream_close(s, "handshake_timeout");
		return;
	}
	stream_close(s, "client_idle_timeout");
}

static void on_be_timer(struct loop *l, struct loop_timer *t)
{
	struct stream *s = container_of(t, struct stream, t_be);
	if (s->state == ST_CONNECTING || s->state == ST_BE_HANDSHAKE)
		connect_failed(s, ETIMEDOUT);
	else
		stream_close(s, "server_idle_timeout");
}


static void park_for_fd(struct stream *s, int err)
{
	struct worker *w = s->w;
	struct stream **tail = &w->fd_wait;
	if (worker_fd_warning_due())
		log_error("listener %s: no descriptor for a backend connection: %s; clients wait "
			  "until connections close (raise the open-files limit or lower "
			  "max_connections)", s->l->conf->name, strerror(err));
	s->state = ST_WAIT_FD;
	while (*tail)
		tail = &(*tail)->wait_next;
	s->wait_next = NULL;
	*tail = s;
	worker_out_of_fds(w);
}

void stream_retry_waiting(struct worker *w)
{
	/* First come, first served; stop as soon as one has to wait again. */
	while (w->fd_wait) {
		struct stream *s = w->fd_wait;
		w->fd_wait = s->wait_next;
		if (s->state != ST_WAIT_FD)
			continue;
		s->state = ST_CONNECTING;
		connect_next(s);
		if (s->state == ST_WAIT_FD)
			return;
	}
}

static void connect_next(struct stream *s)
{
	struct worker *w = s->w;
	uint8_t key[16];
	struct lb_ctx ctx = { .tried = s->tried, .rng = &w->rng };
	struct lb_server *srv;
	int fd, rc;

	ctx.keylen = addr_key((struct sockaddr *)&s->peer, key);
	ctx.key = key;
	srv = lb_pick(&s->pool->lb, w->lbstate[s->pool->index], &ctx);
	if (!srv) {
		ctr_add(&w->stats->pools[s->pool->index].no_server, 1);
		ctr_add(&w->stats->listeners[s->l->index].no_server, 1);
		if (s->tries == 0)
			log_warn("listener %s: pool %s has no usable server", s->l->conf->name,
				 s->pool->conf->name);
		stream_close(s, s->tries ? "connect_failed" : "no_server");
		return;
	}
	s->srv = srv;
	s->tries++;
	atomic_fetch_add_explicit(&srv->active, 1, memory_order_relaxed);
	ctr_add(&srv_ctr(s)->active, 1);
	fd = socket(srv->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
		/* Not the server's fault: undo the try and wait for a descriptor. */
		atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
		ctr_sub(&srv_ctr(s)->active, 1);
		s->srv = NULL;
		s->tries--;
		park_for_fd(s, errno);
		return;
	}
	if (fd < 0) {
		/* Counted as a failed try, so the stream cannot spin. */
		connect_failed(s, errno);
		return;
	}
	s->be.x.io.fd = fd;
	s->be.x.io.fn = on_backend;
	sock_congestion(fd, s->pool->conf->tcp_congestion);
	rc = sock_connect(w->loop, &s->be.x.io, (struct sockaddr *)&srv->addr, srv->addrlen);
	if (rc < 0 && rc != FL_AGAIN) {
		connect_failed(s, -rc);
		return;
	}
	if (rc == 0) {
		s->be.x.can_write = true;
		on_connected(s);
		return;
	}
	loop_timer_set(w->loop, &s->t_be, s->l->conf->timeouts.connect);
}

static struct stream *stream_new(struct worker *w, struct listener_rt *l, struct pool_rt *pool,
				 int fd, const struct sockaddr_storage *peer)
{
	struct stream *s = xcalloc(1, sizeof(*s));
	s->w = w;
	s->l = l;
	s->pool = pool;
	s->peer = *peer;
	s->start_ms = loop_now(w->loop);
	s->cli_idle_ms = l->conf->timeouts.client_idle;
	s->be_idle_ms = l->conf->timeouts.server_idle;
	s->cli.x.io.fd = fd;
	s->cli.x.io.fn = on_client;
	s->be.x.io.fd = -1;
	/* Splice needs plain sockets on both sides; TLS sides are set later
	 * (handshake, adopt) and turn it off there too. */
	s->splice = l->splice && l->conf->protocol != PROTO_SSL && !(pool && pool->conf->tls.rt);
	s->t_cli.fn = on_cli_timer;
	s->t_be.fn = on_be_timer;
	s->state = ST_CONNECTING;
	s->next = w->streams;
	if (w->streams)
		w->streams->prev = s;
	w->streams = s;
	w->nstreams++;
	return s;
}

void stream_adopt(struct worker *w, struct listener_rt *l, const struct sockaddr_storage *peer,
		  struct xport *cx, struct xport *bx, struct pool_rt *pool, struct lb_server *srv,
		  struct buf *up, struct buf *down, uint64_t idle_ms)
{
	struct stream *s = stream_new(w, l, pool, cx->io.fd, peer);
	s->srv = srv;
	s->tries = 1;
	xport_move(&s->cli.x, cx);
	xport_move(&s->be.x, bx);
	s->cli.x.io.fn = on_client;
	s->be.x.io.fn = on_backend;
	s->splice = s->splice && !s->cli.x.tls && !s->be.x.tls;
	s->cli_idle_ms = s->be_idle_ms = idle_ms;
	s->up.buf = up;
	s->down.buf = down;
	s->state = ST_OPEN;
	/* Both sockets stay in epoll; only the object their events reach
	 * changes. Try everything once: epoll reports what comes next. */
	s->cli.x.can_read = s->cli.x.can_write = s->be.x.can_read = s->be.x.can_write = true;
	if (loop_mod(w->loop, &s->cli.x.io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) < 0 ||
	    loop_mod(w->loop, &s->be.x.io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) < 0) {
		stream_close(s, "error");
		return;
	}
	loop_timer_set(w->loop, &s->t_cli, idle_ms);
	loop_timer_set(w->loop, &s->t_be, idle_ms);
	pump(s);
}

void stream_accept(struct worker *w, struct listener_rt *l, int fd,
		   const struct sockaddr_storage *peer)
{
	struct stream *s = stream_new(w, l, l->pool, fd, peer);
	ctr_add(&w->stats->listeners[l->index].active, 1);
	if (loop_add(w->loop, &s->cli.x.io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) < 0) {
		stream_close(s, "error");
		return;
	}
	if (l->conf->protocol == PROTO_SSL) {
		if (!(s->cli.x.tls = tls_server_conn(w->tls[l->index], fd))) {
			stream_close(s, "error");
			return;
		}
		s->splice = false;
		s->state = ST_HANDSHAKE;
		loop_timer_set(w->loop, &s->t_cli, l->conf->timeouts.handshake);
		return;  /* epoll reports the first bytes */
	}
	if (l->conf->tls_passthrough) {
		s->state = ST_HELLO;
		loop_timer_set(w->loop, &s->t_cli, l->conf->timeouts.handshake);
		return;
	}
	loop_timer_set(w->loop, &s->t_cli, s->cli_idle_ms);
	connect_next(s);
}

/* ---- TLS and passthrough ------------------------------------------------ */

static void client_handshake(struct stream *s)
{
	int rc = xport_tls_accept(&s->cli.x, s->w, s->l, &s->peer, &s->sniffed);
	if (rc == FL_AGAIN)
		return;
	if (rc < 0) {
		stream_close(s, "tls_handshake_failed");
		return;
	}
	/* The request may have come with the handshake's last flight. */
	s->cli.x.can_read = true;
	loop_timer_set(s->w->loop, &s->t_cli, s->cli_idle_ms);
	s->state = ST_CONNECTING;
	connect_next(s);
}

static void backend_handshake(struct stream *s)
{
	char why[256];
	int rc = xport_tls_connect(&s->be.x, why, sizeof(why));
	if (rc == FL_AGAIN)
		return;
	if (rc < 0) {
		char peer[ADDR_STRLEN];
		log_warn("listener %s: client %s: TLS to server %s of pool %s failed: %s",
			 s->l->conf->name, addr_format((struct sockaddr *)&s->peer, peer, sizeof(peer)),
			 s->srv->name, s->pool->conf->name, why);
		connect_failed(s, EPROTO);
		return;
	}
	s->be.x.can_read = true;
	s->state = ST_CONNECTING;
	on_connected(s);
}

/* tls_passthrough: the pool of the first route whose sni matches (a route
 * without one matches every name, and a ClientHello without a name). */
static struct pool_rt *hello_pool(struct listener_rt *l, const char *sni, size_t len)
{
	for (size_t i = 0; i < l->nroutes; i++) {
		const struct conf_match *m = &l->routes[i].conf->match;
		if (!m->sni || (len && name_matches(m->sni, sni, len)))
			return l->routes[i].pool;
	}
	return l->pool;
}

static void read_hello(struct stream *s)
{
	struct worker *w = s->w;
	struct ctr_listener *cl = &w->stats->listeners[s->l->index];
	struct tls_hello hello;
	char peer[ADDR_STRLEN];
	ssize_t n;
	int rc;

	if (!s->up.buf)
		s->up.buf = buf_get(&w->bufs);
	n = FL_AGAIN;
	while (s->cli.x.can_read && buf_room(s->up.buf)) {
		n = xport_recv(&s->cli.x, s->up.buf->data + s->up.buf->tail, buf_room(s->up.buf));
		if (n <= 0)
			break;
		s->up.buf->tail += (uint32_t)n;
	}
	/* What came before an end or a reset still tells garbage from TLS.
	 * Fewer bytes than the last parse asked for cannot tell more. */
	if (buf_len(s->up.buf) < s->hello_wait) {
		rc = FL_AGAIN;
	} else {
		rc = tls_hello_parse((const uint8_t *)s->up.buf->data + s->up.buf->head,
				     buf_len(s->up.buf), &hello);
		s->hello_wait = (uint32_t)hello.wait_len;
	}
	if (rc == FL_AGAIN && (n == 0 || (n < 0 && n != FL_AGAIN))) {
		ctr_add(&cl->tls_failed[TLS_FAIL_CLOSED], 1);
		stream_close(s, n == 0 ? "client_closed_in_hello" : "client_reset");
		return;
	}
	if (rc == FL_AGAIN && buf_room(s->up.buf))
		return;
	if (rc < 0) {
		ctr_add(&cl->tls_failed[rc == -EPROTO ? TLS_FAIL_NOT_TLS : TLS_FAIL_OTHER], 1);
		log_debug("listener %s: client %s: not a TLS ClientHello: %s", s->l->conf->name,
			  addr_format((struct sockaddr *)&s->peer, peer, sizeof(peer)),
			  tls_hello_strerror(rc == FL_AGAIN ? -EMSGSIZE : rc));
		stream_close(s, "bad_client_hello");
		return;
	}
	memcpy(s->sni, hello.sni, hello.sni_len + 1);
	s->pool = hello_pool(s->l, hello.sni, hello.sni_len);
	if (!s->pool) {
		ctr_add(&cl->no_server, 1);
		log_debug("listener %s: client %s: no route for server name \"%s\"", s->l->conf->name,
			  addr_format((struct sockaddr *)&s->peer, peer, sizeof(peer)), hello.sni);
		stream_close(s, "no_route");
		return;
	}
	s->splice = s->l->splice && !s->pool->conf->tls.rt;
	loop_timer_set(w->loop, &s->t_cli, s->cli_idle_ms);
	s->state = ST_CONNECTING;
	connect_next(s);
}

/* ---- moving bytes ------------------------------------------------------ */

enum move_rc { MOVE_IDLE = 0, MOVE_PROGRESS = 1, MOVE_BUDGET = 2, MOVE_FAIL = -1 };

static const char *err_cause(const struct stream *s, const struct side *sd)
{
	return sd == &s->cli ? "client_reset" : "server_reset";
}

static void release_dir(struct buf_pool *bp, struct dir *d);

/* Side x failed (reset, or a write error): it is dead both ways. Bytes
 * waiting for it are dropped; what it sent before failing is still
 * delivered to the other side, then the stream closes. */
static void fail_side(struct stream *s, struct side *x)
{
	struct dir *into = x == &s->cli ? &s->down : &s->up;
	if (!s->cause)
		s->cause = err_cause(s, x);
	release_dir(&s->w->bufs, into);
	into->done = true;
	x->shut = true;
	x->x.can_write = false;
	/* Read what it sent before the error, then see the error as the end. */
	x->x.can_read = true;
	x->failed = true;
}

/* Account for the result n of a read from src (recv or splice). Returns
 * true when bytes came; otherwise notes the end, EAGAIN or the failure. */
static bool read_result(struct stream *s, struct side *src, ssize_t n, size_t *budget)
{
	if (n > 0) {
		*budget = (size_t)n > *budget ? 0 : *budget - (size_t)n;
		src->active = true;
		return true;
	}
	if (n == 0) {
		src->x.eof = true;
	} else if (n != FL_AGAIN) {
		fail_side(s, src);
		src->x.eof = true;
	}
	return false;
}

static void finish_dir(struct stream *s, struct dir *d, struct side *dst)
{
	struct dir *other = d == &s->up ? &s->down : &s->up;
	/* When the other direction is done too, close() follows at once and
	 * sends the FIN itself. */
	if (!dst->shut && !dst->failed && !other->done) {
		xport_shutdown_wr(&dst->x);
		dst->shut = true;
	}
	d->done = true;
}

static int move_splice(struct stream *s, struct side *src, struct side *dst, struct dir *d);
static int move_buffer(struct stream *s, struct side *src, struct side *dst, struct dir *d);

static int move_buffer(struct stream *s, struct side *src, struct side *dst, struct dir *d)
{
	struct buf_pool *bp = &s->w->bufs;
	size_t budget = TURN_BUDGET, want;
	int rc = MOVE_IDLE;
	ssize_t n;

	while (!d->done) {
		if (d->buf && buf_len(d->buf)) {
			if (!dst->x.can_write)
				break;
			n = xport_send(&dst->x, d->buf->data + d->buf->head, buf_len(d->buf));
			if (n == FL_AGAIN)
				break;
			if (n < 0) {
				fail_side(s, dst);
				return MOVE_PROGRESS;
			}
			d->buf->head += (uint32_t)n;
			d->bytes += (uint64_t)n;
			dst->active = true;
			rc = MOVE_PROGRESS;
			if (buf_len(d->buf) == 0)
				d->buf->head = d->buf->tail = 0;
			continue;
		}
		if (src->x.eof) {
			finish_dir(s, d, dst);
			break;
		}
		if (!src->x.can_read)
			break;
		if (budget == 0)
			return MOVE_BUDGET;
		if (d->bulk) {
			/* Everything buffered was delivered: go on with splice. */
			if (d->buf) {
				buf_put(bp, d->buf);
				d->buf = NULL;
			}
			int r = move_splice(s, src, dst, d);
			return r == MOVE_IDLE ? rc : r;
		}
		if (!d->buf)
			d->buf = buf_get(bp);
		want = buf_room(d->buf);
		n = xport_recv(&src->x, d->buf->data + d->buf->tail, want);
		if (read_result(s, src, n, &budget)) {
			/* A short read emptied the socket: skip the read that would
			 * only say EAGAIN (epoll reports the next data). Not after a
			 * FIN was reported, whose edge has already been consumed, and
			 * not on TLS, which returns one record per read. */
			if ((size_t)n < want && !src->x.hup && !src->x.tls)
				src->x.can_read = false;
			else if ((size_t)n == d->buf->cap && s->splice && !d->no_splice)
				d->bulk = true;
			d->buf->tail += (uint32_t)n;
			rc = MOVE_PROGRESS;
		}
	}
	if (d->buf && buf_len(d->buf) == 0) {
		buf_put(bp, d->buf);
		d->buf = NULL;
	}
	return rc;
}

static int move_splice(struct stream *s, struct side *src, struct side *dst, struct dir *d)
{
	struct buf_pool *bp = &s->w->bufs;
	size_t budget = TURN_BUDGET;
	int rc = MOVE_IDLE;
	ssize_t n;

	while (!d->done) {
		if (d->pipe && d->pipe->fill) {
			n = xport_splice_out(&dst->x, d->pipe);
			if (n == FL_AGAIN)
				break;
			if (n < 0) {
				fail_side(s, dst);
				return MOVE_PROGRESS;
			}
			d->bytes += (uint64_t)n;
			dst->active = true;
			rc = MOVE_PROGRESS;
			continue;
		}
		if (src->x.eof) {
			finish_dir(s, d, dst);
			break;
		}
		if (!src->x.can_read)
			break;
		if (budget == 0)
			return MOVE_BUDGET;
		if (!d->pipe && !(d->pipe = pipe_get(bp))) {
			d->bulk = false;
			d->no_splice = true;
			return move_buffer(s, src, dst, d);
		}
		/* The pipe is empty here, so EAGAIN can only mean the socket is. */
		n = xport_splice_in(&src->x, d->pipe, d->pipe->cap);
		if (read_result(s, src, n, &budget))
			rc = MOVE_PROGRESS;
	}
	if (d->pipe && d->pipe->fill == 0) {
		pipe_put(bp, d->pipe);
		d->pipe = NULL;
	}
	return rc;
}

static void pump(struct stream *s)
{
	/* Both paths start with the buffer, which is cheaper for small
	 * messages; with forwarding: auto a direction moves to splice once a
	 * read fills a whole buffer (see move_buffer). */
	int (*move)(struct stream *, struct side *, struct side *, struct dir *) = move_buffer;
	int up, down;
	struct worker *w = s->w;

	up = move(s, &s->cli, &s->be, &s->up);
	if (up == MOVE_FAIL)
		return;
	down = move(s, &s->be, &s->cli, &s->down);
	if (down == MOVE_FAIL)
		return;
	/* A side that failed while the second direction moved ends the first
	 * direction too; the first may have bytes of the failed side to pass on. */
	if (s->cli.failed && !s->up.done)
		up = move(s, &s->cli, &s->be, &s->up);
	if (up == MOVE_FAIL)
		return;
	if (s->up.done && s->down.done) {
		stream_close(s, s->cause ? s->cause : "closed");
		return;
	}
	if (s->cli.active) {
		s->cli.active = false;
		loop_timer_set(w->loop, &s->t_cli, s->cli_idle_ms);
	}
	if (s->be.active) {
		s->be.active = false;
		loop_timer_set(w->loop, &s->t_be, s->be_idle_ms);
	}
	if ((up == MOVE_BUDGET || down == MOVE_BUDGET) && !s->in_again) {
		s->in_again = true;
		s->again_next = w->again;
		w->again = s;
	}
}

void stream_run_again(struct worker *w)
{
	struct stream *list = w->again;
	w->again = NULL;
	while (list) {
		struct stream *s = list;
		list = s->again_next;
		s->in_again = false;
		if (s->state == ST_OPEN)
			pump(s);
	}
}

/* ---- closing ----------------------------------------------------------- */

static void release_dir(struct buf_pool *bp, struct dir *d)
{
	if (d->buf)
		buf_put(bp, d->buf);
	if (d->pipe)
		pipe_put(bp, d->pipe);
	d->buf = NULL;
	d->pipe = NULL;
}

static void stream_close(struct stream *s, const char *cause)
{
	struct worker *w = s->w;
	struct access_rec rec;
	struct ctr_listener *cl = &w->stats->listeners[s->l->index];

	if (s->state == ST_CLOSED)
		return;
	loop_timer_del(w->loop, &s->t_cli);
	loop_timer_del(w->loop, &s->t_be);
	/* Closing a descriptor removes it from epoll; events already fetched in
	 * this turn land on noop_event, and the memory lives until stream_reap. */
	s->cli.x.io.fn = noop_event;
	s->be.x.io.fn = noop_event;
	xport_close(&s->cli.x, !s->cli.failed);
	xport_close(&s->be.x, !s->be.failed);
	release_dir(&w->bufs, &s->up);
	release_dir(&w->bufs, &s->down);

	ctr_add(&cl->bytes_in, s->up.bytes);
	ctr_add(&cl->bytes_out, s->down.bytes);
	ctr_sub(&cl->active, 1);
	if (s->srv) {
		struct ctr_pool *cp = &w->stats->pools[s->pool->index];
		ctr_add(&srv_ctr(s)->bytes_in, s->up.bytes);
		ctr_add(&srv_ctr(s)->bytes_out, s->down.bytes);
		ctr_sub(&srv_ctr(s)->active, 1);
		ctr_add(&cp->bytes_in, s->up.bytes);
		ctr_add(&cp->bytes_out, s->down.bytes);
		atomic_fetch_sub_explicit(&s->srv->active, 1, memory_order_relaxed);
	}
	rec = (struct access_rec){
		.client = (struct sockaddr *)&s->peer,
		.listener = s->l->conf->name,
		.server = s->srv ? s->srv->name : NULL,
		.bytes_in = s->up.bytes,
		.bytes_out = s->down.bytes,
		.duration_ms = loop_now(w->loop) - s->start_ms,
		.cause = cause,
		.retries = s->tries > 1 ? s->tries - 1 : 0,
	};
	log_access(&rec);

	s->state = ST_CLOSED;
	if (s->prev)
		s->prev->next = s->next;
	else
		w->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->nstreams--;
	s->next = w->dead;
	w->dead = s;

	worker_conn_closed(w, s->l);
}

void stream_close_all(struct worker *w, const char *cause)
{
	while (w->streams)
		stream_close(w->streams, cause);
}

void stream_reap(struct worker *w)
{
	struct stream **pp = &w->again;
	/* A closed stream may still sit on the again list: unlink it first. */
	while (*pp) {
		if ((*pp)->state == ST_CLOSED) {
			(*pp)->in_again = false;
			*pp = (*pp)->again_next;
		} else {
			pp = &(*pp)->again_next;
		}
	}
	pp = &w->fd_wait;
	while (*pp) {
		if ((*pp)->state == ST_CLOSED)
			*pp = (*pp)->wait_next;
		else
			pp = &(*pp)->wait_next;
	}
	while (w->dead) {
		struct stream *s = w->dead;
		w->dead = s->next;
		if (s->tried && s->tried != &s->tried_inline)
			free(s->tried);
		free(s);
	}
}
