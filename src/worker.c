#include "worker.h"
#include "addr.h"
#include "log.h"
#include "stream.h"
#include "sock.h"
#include "http.h"
#include "xport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define EMFILE_PAUSE_MS 250

static _Atomic uint64_t emfile_logged;

bool worker_fd_warning_due(void)
{
	return log_ratelimit(&emfile_logged, 1000);
}

/* Protocols whose client always speaks first (an HTTP request, a TLS
 * ClientHello). Their listeners defer accept until the first bytes arrive,
 * so one wake-up takes a connection and its request, and a client that
 * connects and stays silent costs no descriptor until the kernel gives up
 * waiting (DEFER_ACCEPT_S, then the header or handshake timeout applies). */
#define DEFER_ACCEPT_S 1

static bool client_speaks_first(const struct conf_listener *c)
{
	return c->protocol == PROTO_HTTP || c->protocol == PROTO_HTTPS || c->protocol == PROTO_SSL ||
	       (c->protocol == PROTO_TCP && c->tls_passthrough);
}

static int listen_socket(const struct conf_listener *c, const struct conf_addr *a, int backlog)
{
	int one = 1, fd;
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	/* [::]:80 means IPv6 only, so that 0.0.0.0:80 can be bound beside it. */
	if (a->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, backlog) < 0)
		goto fail;
	sock_nodelay(fd);  /* inherited by every accepted socket, */
	sock_congestion(fd, c->tcp_congestion);  /* and so is this */
	if (client_speaks_first(c)) {
		int secs = DEFER_ACCEPT_S;
		setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
	}
	return fd;
fail:
	{
		int e = -errno;
		close(fd);
		return e;
	}
}

/* Try to take a connection slot on listener l; false when a limit is hit. */
static bool reserve_slot(struct gen *g, struct listener_rt *l)
{
	uint64_t max = l->conf->max_connections;
	if (atomic_fetch_add_explicit(&g->active, 1, memory_order_relaxed) >= g->max_connections) {
		atomic_fetch_sub_explicit(&g->active, 1, memory_order_relaxed);
		return false;
	}
	if (max && atomic_fetch_add_explicit(&l->active, 1, memory_order_relaxed) >= max) {
		atomic_fetch_sub_explicit(&l->active, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&g->active, 1, memory_order_relaxed);
		return false;
	}
	if (!max)
		atomic_fetch_add_explicit(&l->active, 1, memory_order_relaxed);
	return true;
}

static void release_slot(struct gen *g, struct listener_rt *l)
{
	atomic_fetch_sub(&l->active, 1);
	atomic_fetch_sub(&g->active, 1);
}

static bool slot_free(struct gen *g, struct listener_rt *l)
{
	uint64_t max = l->conf->max_connections;
	return atomic_load(&g->active) < g->max_connections &&
	       (!max || atomic_load(&l->active) < max);
}

static void pause_listener(struct wlistener *wl)
{
	struct worker *w = wl->w;
	if (wl->paused)
		return;
	loop_del(w->loop, &wl->io);
	wl->paused = true;
	w->npaused++;
	atomic_fetch_add(&w->gen->npaused, 1);
}

static void accept_loop(struct wlistener *wl);

static void resume_listener(struct wlistener *wl)
{
	struct worker *w = wl->w;
	if (!wl->paused || w->draining)
		return;
	if (loop_add(w->loop, &wl->io, EPOLLIN) < 0)
		return;
	wl->paused = false;
	w->npaused--;
	atomic_fetch_sub(&w->gen->npaused, 1);
}

static void resume_all(struct worker *w)
{
	for (size_t i = 0; i < w->nls && w->npaused; i++) {
		struct wlistener *wl = &w->ls[i];
		struct listener_rt *l = wl->l;
		uint64_t max = l->conf->max_connections;
		if (!wl->paused)
			continue;
		if (atomic_load(&w->gen->active) >= w->gen->max_connections)
			break;
		if (max && atomic_load(&l->active) >= max)
			continue;
		/* epoll reports the connections that queued meanwhile. */
		resume_listener(wl);
	}
}

void worker_out_of_fds(struct worker *w)
{
	for (size_t i = 0; i < w->nls; i++)
		if (w->ls[i].io.fd >= 0)
			pause_listener(&w->ls[i]);
	loop_timer_set(w->loop, &w->resume_timer, EMFILE_PAUSE_MS);
}

void worker_conn_closed(struct worker *w, struct listener_rt *l)
{
	/* Sequentially consistent, paired with pause_listener's count: either
	 * this side sees the pause, or the pausing side sees the free slot. */
	release_slot(w->gen, l);
	worker_slot_freed(w);
}

void worker_slot_freed(struct worker *w)
{
	struct gen *g = w->gen;
	if (w->fd_wait) {
		stream_retry_waiting(w);
		if (w->fd_wait)
			return;
	}
	if (w->npaused)
		resume_all(w);
	/* Listeners of other workers may be waiting for this slot. */
	if (atomic_load_explicit(&g->npaused, memory_order_relaxed) > w->npaused) {
		for (uint32_t i = 0; i < g->nworkers; i++) {
			struct worker *o = w - w->id + i;
			if (o != w && o->npaused)
				loop_wake(o->loop);
		}
	}
}

static bool acl_refuses(const struct conf_listener *c, const struct sockaddr *sa)
{
	if (c->deny.n && cidr_list_match(&c->deny, sa))
		return true;
	return c->allow.n && !cidr_list_match(&c->allow, sa);
}

static void refuse(struct worker *w, struct wlistener *wl, int fd, struct sockaddr_storage *peer)
{
	struct access_rec rec = {
		.client = (struct sockaddr *)peer,
		.listener = wl->l->conf->name,
		.cause = "denied",
	};
	char who[ADDR_STRLEN];
	close(fd);
	release_slot(w->gen, wl->l);
	worker_slot_freed(w);
	ctr_add(&w->stats->listeners[wl->l->index].refused_acl, 1);
	log_debug("listener %s: client %s refused by allow/deny", wl->l->conf->name,
		  addr_format((struct sockaddr *)peer, who, sizeof(who)));
	log_access(&rec);
}

static void accept_loop(struct wlistener *wl)
{
	struct worker *w = wl->w;
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd;

		if (!reserve_slot(w->gen, wl->l)) {
			pause_listener(wl);
			/* A slot freed by another worker between the failed reserve
			 * and the pause would not wake us: look once more. */
			if (!slot_free(w->gen, wl->l))
				return;
			resume_listener(wl);
			continue;
		}
		fd = accept4(wl->io.fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			release_slot(w->gen, wl->l);
			/* Another worker may have paused on the slot held meanwhile. */
			if (atomic_load(&w->gen->npaused) > w->npaused)
				worker_slot_freed(w);
			if (e == EAGAIN)
				return;
			if (e == EINTR || e == ECONNABORTED)
				continue;
			if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
				if (worker_fd_warning_due())
					log_error("listener %s: cannot accept: %s; pausing new connections "
						  "until some close", wl->l->conf->name, strerror(e));
				pause_listener(wl);
				loop_timer_set(w->loop, &w->resume_timer, EMFILE_PAUSE_MS);
				return;
			}
			log_error("listener %s: accept: %s", wl->l->conf->name, strerror(e));
			return;
		}
		ctr_add(&w->stats->listeners[wl->l->index].accepted, 1);
		if (acl_refuses(wl->l->conf, (struct sockaddr *)&peer)) {
			refuse(w, wl, fd, &peer);
			continue;
		}
		if (wl->l->conf->protocol == PROTO_HTTP || wl->l->conf->protocol == PROTO_HTTPS)
			http_accept(w, wl->l, fd, &peer, wl->port);
		else
			stream_accept(w, wl->l, fd, &peer);
	}
}

static void on_listen(struct loop *l, struct loop_io *io, uint32_t ev)
{
	accept_loop(container_of(io, struct wlistener, io));
}

static void on_resume_timer(struct loop *l, struct loop_timer *t)
{
	struct worker *w = container_of(t, struct worker, resume_timer);
	if (w->fd_wait) {
		stream_retry_waiting(w);
		if (w->fd_wait) {
			loop_timer_set(w->loop, &w->resume_timer, EMFILE_PAUSE_MS);
			return;
		}
	}
	resume_all(w);
}

static void stop_listening(struct worker *w)
{
	for (size_t i = 0; i < w->nls; i++) {
		struct wlistener *wl = &w->ls[i];
		if (wl->io.fd < 0)
			continue;
		if (wl->paused) {
			wl->paused = false;
			atomic_fetch_sub(&w->gen->npaused, 1);
		}
		close(wl->io.fd);
		wl->io.fd = -1;
	}
	w->npaused = 0;
}

static void take_tls_mail(struct worker *w)
{
	for (size_t i = 0; i < w->gen->nlisteners; i++) {
		struct tls_server *ts = atomic_exchange(&w->tls_mail[i], NULL);
		if (ts) {
			tls_server_unref(w->tls[i]);
			w->tls[i] = ts;
		}
	}
}

int workers_tls_reload(struct worker *ws, uint32_t n, int *reloaded)
{
	struct gen *g = ws[0].gen;
	int failed = 0;
	*reloaded = 0;
	for (size_t i = 0; i < g->nlisteners; i++) {
		struct listener_rt *l = &g->listeners[i];
		const struct conf_listener *c = l->conf;
		struct tls_server *ts;
		if (!l->tls)
			continue;
		/* The ticket secret of the newest contexts carries over. The
		 * workers' own references are theirs to swap: never read them here. */
		ts = tls_server_reload(c, l->tls);
		if (!ts) {
			failed++;
			continue;
		}
		for (uint32_t k = 0; k < n; k++) {
			tls_server_ref(ts);
			tls_server_unref(atomic_exchange(&ws[k].tls_mail[i], ts));
			loop_wake(ws[k].loop);
		}
		tls_server_unref(l->tls);
		l->tls = ts;  /* keeps the reference the reload made */
		(*reloaded)++;
		log_info("listener %s: TLS certificates reloaded; new handshakes use them", c->name);
	}
	return failed;
}

static void on_wake(struct loop *l, void *arg)
{
	struct worker *w = arg;
	int stop = atomic_load(&w->stop);
	take_tls_mail(w);
	if (stop && !w->draining) {
		w->draining = true;
		stop_listening(w);
		http_drain(w);
	}
	if (stop >= 2) {
		stream_close_all(w, "shutdown");
		http_close_all(w);
	}
	if (w->npaused)
		resume_all(w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];
	snprintf(name, sizeof(name), "fulcrum-w%u", w->id);
	pthread_setname_np(pthread_self(), name);
	xport_batch_use(w->batch);
	for (;;) {
		int rc = loop_run_once(w->loop, w->again ? 0 : -1);
		if (rc < 0) {
			log_error("worker %u: event loop: %s", w->id, strerror(-rc));
			break;
		}
		stream_run_again(w);
		stream_reap(w);
		http_reap(w);
		log_flush();
		if (w->draining && w->nstreams == 0)
			break;
	}
	stream_close_all(w, "shutdown");
	stream_reap(w);
	http_worker_free(w);
	log_flush();
	return NULL;
}

/* SO_REUSEPORT would let us share a port with another process of the same
 * user without a word. A probe socket without it fails to bind wherever
 * anything already listens, so "address in use" stays a startup error. */
static int probe_bind(const struct conf_addr *a)
{
	int one = 1, rc = 0;
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (a->ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static char *bind_error(const struct conf_listener *l, const struct conf_addr *a, int rc)
{
	char *msg;
	const char *hint = rc == -EADDRINUSE ?
		" (another program is listening there; stop it or choose another port)" :
		rc == -EADDRNOTAVAIL ? " (no interface of this machine has that address)" :
		rc == -EACCES ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" : "";
	if (asprintf(&msg, "listener %s: cannot listen on %s: %s%s", l->name, a->text,
		     strerror(-rc), hint) < 0)
		abort();
	return msg;
}

struct worker *workers_create(struct gen *g, char **msg)
{
	for (size_t i = 0; i < g->nlisteners; i++) {
		const struct conf_listener *l = g->listeners[i].conf;
		for (size_t b = 0; b < l->nbinds; b++) {
			int rc = probe_bind(&l->binds[b]);
			if (rc < 0) {
				*msg = bind_error(l, &l->binds[b], rc);
				return NULL;
			}
		}
	}

	uint32_t n = g->nworkers;
	struct worker *ws = xcalloc(n, sizeof(*ws));
	size_t nls = 0;

	for (size_t i = 0; i < g->nlisteners; i++)
		nls += g->listeners[i].conf->nbinds;
	for (uint32_t id = 0; id < n; id++) {
		struct worker *w = &ws[id];
		w->id = id;
		w->gen = g;
		w->stats = g->stats[id];
		w->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)(id + 1) * 0xD1B54A32D192ED03ULL) ^ now_ms();
		if (!w->rng)
			w->rng = 1;
		w->resume_timer.fn = on_resume_timer;
		w->ls = xcalloc(nls, sizeof(*w->ls));
		for (size_t i = 0; i < nls; i++)
			w->ls[i].io.fd = -1;
		w->tls = xcalloc(g->nlisteners, sizeof(*w->tls));
		w->tls_mail = xcalloc(g->nlisteners, sizeof(*w->tls_mail));
		for (size_t i = 0; i < g->nlisteners; i++)
			if ((w->tls[i] = g->listeners[i].tls) != NULL)
				tls_server_ref(w->tls[i]);
		w->tls_sess = xcalloc(g->npools, sizeof(*w->tls_sess));
		for (size_t p = 0; p < g->npools; p++)
			if (g->pools[p].conf->tls.rt)
				w->tls_sess[p] = xcalloc(g->pools[p].lb.nservers, sizeof(**w->tls_sess));
		w->lbstate = xcalloc(g->npools, sizeof(void *));
		for (size_t p = 0; p < g->npools; p++)
			if (g->pools[p].lb.ops->worker_new)
				w->lbstate[p] = g->pools[p].lb.ops->worker_new(&g->pools[p].lb);
		w->loop = loop_new();
		if (!w->loop) {
			if (asprintf(msg, "cannot create an event loop: %s", strerror(errno)) < 0)
				abort();
			goto fail;
		}
		loop_set_wake(w->loop, on_wake, w);
		if (g->cfg->global.batch_sends) {
			w->batch = xport_batch_new(w->loop);
			if (w->batch)
				loop_set_before_wait(w->loop, xport_batch_flush, w->batch);
			else if (id == 0)
				log_warn("send batching is off: io_uring cannot be used (%s); "
					 "each write goes out with its own syscall", strerror(errno));
		}
		for (size_t i = 0, k = 0; i < g->nlisteners; i++) {
			struct listener_rt *l = &g->listeners[i];
			for (size_t b = 0; b < l->conf->nbinds; b++, k++) {
				struct wlistener *wl = &w->ls[k];
				int fd = listen_socket(l->conf, &l->conf->binds[b], (int)l->conf->backlog);
				if (fd < 0) {
					*msg = bind_error(l->conf, &l->conf->binds[b], fd);
					w->nls = k;
					goto fail;
				}
				wl->io.fd = fd;
				wl->io.fn = on_listen;
				wl->w = w;
				wl->l = l;
				wl->bind = &l->conf->binds[b];
				wl->port = ntohs(wl->bind->ss.ss_family == AF_INET6 ?
						 ((struct sockaddr_in6 *)&wl->bind->ss)->sin6_port :
						 ((struct sockaddr_in *)&wl->bind->ss)->sin_port);
				if (loop_add(w->loop, &wl->io, EPOLLIN) < 0) {
					if (asprintf(msg, "epoll: %s", strerror(errno)) < 0)
						abort();
					w->nls = k + 1;
					goto fail;
				}
			}
		}
		w->nls = nls;
	}
	return ws;
fail:
	workers_join_free(ws, n);
	return NULL;
}

int workers_start(struct worker *ws, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		int rc = pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
		if (rc != 0)
			return -rc;
	}
	return 0;
}

void workers_stop(struct worker *ws, uint32_t n, int level)
{
	for (uint32_t i = 0; i < n; i++) {
		atomic_store(&ws[i].stop, level);
		loop_wake(ws[i].loop);
	}
}

size_t workers_active(struct worker *ws, uint32_t n)
{
	return (size_t)atomic_load(&ws[0].gen->active);
}

void workers_join_free(struct worker *ws, uint32_t n)
{
	if (!ws)
		return;
	for (uint32_t i = 0; i < n; i++)
		if (ws[i].thread)
			pthread_join(ws[i].thread, NULL);
	for (uint32_t i = 0; i < n; i++) {
		struct worker *w = &ws[i];
		for (size_t k = 0; k < w->nls; k++)
			if (w->ls[k].io.fd >= 0)
				close(w->ls[k].io.fd);
		free(w->ls);
		if (w->lbstate) {
			for (size_t p = 0; p < w->gen->npools; p++)
				if (w->lbstate[p] && w->gen->pools[p].lb.ops->worker_free)
					w->gen->pools[p].lb.ops->worker_free(w->lbstate[p]);
			free(w->lbstate);
		}
		buf_pool_clear(&w->bufs);
		xport_batch_free(w->batch);
		loop_free(w->loop);
		for (size_t k = 0; w->tls && k < w->gen->nlisteners; k++) {
			tls_server_unref(w->tls[k]);
			tls_server_unref(atomic_exchange(&w->tls_mail[k], NULL));
		}
		free(w->tls);
		free(w->tls_mail);
		for (size_t p = 0; w->tls_sess && p < w->gen->npools; p++) {
			for (size_t k = 0; w->tls_sess[p] && k < w->gen->pools[p].lb.nservers; k++)
				tls_session_free(w->tls_sess[p][k]);
			free(w->tls_sess[p]);
		}
		free(w->tls_sess);
	}
	free(ws);
}
