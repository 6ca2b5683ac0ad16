/* The health-check engine: see check.h. */
#include "check.h"
#include "addr.h"
#include "log.h"
#include "sock.h"
#include "util.h"
#include "xport.h"

#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK_IN_MAX (64 * 1024)   /* judged at most (expect_body) */
#define CHECK_IN_SMALL 4096         /* enough for a status line or an expect */

/* PH_KEPT: between checks, with the connection kept open for the next. */
enum { PH_IDLE, PH_CONNECTING, PH_HANDSHAKE, PH_EXCHANGE, PH_KEPT };

struct check {
	struct xport x;
	struct pool_rt *pool;
	struct lb_server *srv;
	const struct conf_check *cc;
	const struct check_ops *ops;
	struct loop_timer timer;        /* the next check, or the running one's deadline */
	struct sockaddr_storage addr;   /* where to check */
	socklen_t addrlen;
	int phase;
	char *out;                      /* the request, written once at startup */
	size_t out_len, out_off;
	char *in;                       /* borrowed while a check runs */
	size_t in_len, in_cap;
	uint64_t started;
	bool reused;                    /* the running check is on a kept connection */
	uint64_t period;                /* reuse period the connection was opened in */
	uint32_t ok_run, fail_run;      /* verdicts in a row */
	bool healthy;
	bool decided;                   /* a first verdict was reached */
	bool decided_before;            /* ... before the current one */
	char last_error[160];
	uint64_t last_ms;               /* how long the last check took */
	uint64_t passed, failed;        /* checks so far */
};

/* How often ejections are looked at and slow-start weights raised. */
#define PASSIVE_TICK_MS 100

static struct {
	pthread_t thread;
	struct loop *loop;
	struct check *checks;
	size_t n;
	struct gen *gen;
	bool *ejected_seen;             /* an ejection was announced, per server */
	uint64_t *ramp_start;           /* slow start began (ms), 0: none, per server */
	size_t *seen_off;               /* [pool] its first server's slot in those */
	struct loop_timer tick;         /* passive ejections: announce and end them */
	uint64_t rng;
	_Atomic bool stop;
	bool running;
	size_t children;                /* on_change commands not yet reaped */
} ck;

static uint64_t rnd(void)
{
	return lb_rand(&ck.rng);
}

static void finish(struct check *c, int verdict, const char *why, bool keep);
static void start(struct check *c);
static void came_back(const struct pool_rt *pool, struct lb_server *srv);

extern char **environ;

/* Run the pool's on_change command, without waiting for it (children are
 * reaped by the check loop). */
static void run_hook(const struct pool_rt *pool, const struct lb_server *srv, const char *type, bool up,
		     const char *why)
{
	const char *cmd = pool->conf->on_change;
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)cmd, NULL };
	char *vars[5], **envp;
	size_t n = 0, k = 0;
	pid_t pid;
	int rc;
	if (!cmd)
		return;
	while (environ[n])
		n++;
	envp = xcalloc(n + 6, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "FULCRUM_", 8) != 0)
			envp[k++] = environ[i];
	if (asprintf(&vars[0], "FULCRUM_POOL=%s", pool->conf->name) < 0 ||
	    asprintf(&vars[1], "FULCRUM_SERVER=%s", srv->name) < 0 ||
	    asprintf(&vars[2], "FULCRUM_STATE=%s", up ? "up" : "down") < 0 ||
	    asprintf(&vars[3], "FULCRUM_REASON=%s", why) < 0 ||
	    asprintf(&vars[4], "FULCRUM_CHECK=%s", type) < 0)
		abort();
	for (size_t i = 0; i < 5; i++)
		envp[k++] = vars[i];
	rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, envp);
	if (rc == 0)
		ck.children++;
	if (rc != 0)
		log_error("pool %s: on_change: cannot run \"%s\": %s", pool->conf->name, cmd, strerror(rc));
	for (size_t i = 0; i < 5; i++)
		free(vars[i]);
	free(envp);
}

/* Checks due within the same slot of time (1% of the interval, at most
 * 10 ms) start together: one wake-up of this thread, and of the servers'
 * hosts, serves several checks. Jitter still spreads the slots used. */
static void set_due(struct check *c, uint64_t delay)
{
	uint64_t slot = c->cc->interval / 100, now = loop_now(ck.loop), due;
	if (slot > 10)
		slot = 10;
	due = now + (delay ? delay : 1);
	if (slot > 1)
		due = (due + slot - 1) / slot * slot;
	loop_timer_set(ck.loop, &c->timer, due - now);
}

static void schedule(struct check *c, uint64_t base)
{
	const struct conf_check *cc = c->cc;
	uint64_t j = cc->jitter ? rnd() % (2 * cc->jitter + 1) : 0;
	set_due(c, base + j >= cc->jitter ? base + j - cc->jitter : 1);
}

/* The exchange is over: give back the input buffer; the connection is
 * closed (PH_IDLE) or kept for the next check (PH_KEPT). */
static void end_exchange(struct check *c, int phase)
{
	free(c->in);
	c->in = NULL;
	c->in_len = 0;
	c->phase = phase;
}

static void close_conn(struct check *c)
{
	if (c->x.io.fd >= 0) {
		/* The verdict is in: end with a reset, as HAProxy does, so that a
		 * check leaves no TIME_WAIT socket and costs no FIN exchange. */
		struct linger lg = { 1, 0 };
		setsockopt(c->x.io.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		xport_close(&c->x, false);
	}
	c->x = (struct xport){ .io = { .fd = -1 } };
	end_exchange(c, PH_IDLE);
}

/* Record a verdict; change the server's state after rise passes or fall
 * failures in a row (the first verdict after startup decides at once). */
static void verdict(struct check *c, bool ok, const char *why)
{
	const char *type = c->cc->type == CHECK_HTTPS ? "https" : c->ops->name;
	bool change = false;
	if (ok) {
		c->fail_run = 0;
		c->ok_run++;
		if (!c->healthy && (c->ok_run >= c->cc->rise || !c->decided))
			change = true;
	} else {
		c->ok_run = 0;
		c->fail_run++;
		snprintf(c->last_error, sizeof(c->last_error), "%s", why);
		if (c->healthy && (c->fail_run >= c->cc->fall || !c->decided))
			change = true;
	}
	c->decided_before = c->decided;
	c->decided = true;
	if (!change)
		return;
	c->healthy = ok;
	atomic_store(&c->srv->down, !ok);
	atomic_fetch_add_explicit(ok ? &c->srv->ups : &c->srv->downs, 1, memory_order_relaxed);
	if (ok) {
		char reason[64];
		snprintf(reason, sizeof(reason), "check %s passed %u time%s in a row", type, c->ok_run,
			 c->ok_run == 1 ? "" : "s");
		if (c->decided_before)
			came_back(c->pool, c->srv);
		log_warn("pool %s: server %s is up (%s)", c->pool->conf->name, c->srv->name, reason);
		run_hook(c->pool, c->srv, type, true, reason);
	} else {
		char reason[200];
		snprintf(reason, sizeof(reason), "check %s: %s", type, why);
		log_warn("pool %s: server %s is down (%s)", c->pool->conf->name, c->srv->name, reason);
		run_hook(c->pool, c->srv, type, false, reason);
	}
}

/* Kept connections are renewed together: one opened in a period of
 * reuse_limit intervals is not kept past the period's end. Every check of a
 * pool shares the periods, so after each boundary the connects come within
 * one interval and share the thread's wake-ups (checks leave in slots),
 * instead of adding a wake-up for a connect to nearly every slot. */
static uint64_t reuse_period(const struct check *c)
{
	return loop_now(ck.loop) / (c->cc->reuse_limit * c->cc->interval);
}

static void finish(struct check *c, int v, const char *why, bool keep)
{
	uint64_t took = loop_now(ck.loop) - c->started;
	if (v == CHECK_FAIL && c->reused && c->in_len == 0) {
		/* A kept connection can be closed by the server just as the
		 * request leaves: that says nothing about the server, so the
		 * check is made again on a new connection, within its time. */
		uint64_t started = c->started;
		log_debug("pool %s: server %s: kept check connection failed (%s); connecting again",
			  c->pool->conf->name, c->srv->name, why);
		close_conn(c);
		c->reused = false;
		start(c);
		if (c->phase != PH_IDLE && c->phase != PH_KEPT) {
			/* Still running: timed from the first try, within its timeout. */
			c->started = started;
			loop_timer_set(ck.loop, &c->timer, c->cc->timeout > took ? c->cc->timeout - took : 1);
		}
		return;
	}
	c->reused = false;
	/* Kept when the server said the connection may carry the next check,
	 * within its reuse period: then the next check connects anew and shows
	 * that the server still accepts new connections. */
	if (keep && v == CHECK_PASS && (!c->cc->reuse_limit || reuse_period(c) == c->period))
		end_exchange(c, PH_KEPT);
	else
		close_conn(c);
	c->last_ms = took;
	if (v == CHECK_PASS)
		c->passed++;
	else
		c->failed++;
	if (v == CHECK_PASS)
		log_debug("pool %s: server %s: check passed in %llums", c->pool->conf->name, c->srv->name,
			  (unsigned long long)took);
	else
		log_debug("pool %s: server %s: check failed: %s", c->pool->conf->name, c->srv->name, why);
	verdict(c, v == CHECK_PASS, why);
	schedule(c, c->cc->interval > took ? c->cc->interval - took : 1);
}

static void judge(struct check *c, bool eof)
{
	char why[160] = "";
	bool reuse = false;
	int v = c->ops->judge(c->cc, c->in ? c->in : "", c->in_len, eof, why, sizeof(why), &reuse);
	if (v == CHECK_MORE && eof)
		v = CHECK_FAIL;
	if (v != CHECK_MORE)
		finish(c, v, why[0] ? why : "closed before the answer was complete", reuse);
}

/* Send what is left, then read and judge. */
static void exchange(struct check *c)
{
	char why[200];
	ssize_t n;
	while (c->out_off < c->out_len && c->x.can_write) {
		n = xport_send(&c->x, c->out + c->out_off, c->out_len - c->out_off);
		if (n == FL_AGAIN)
			break;
		if (n < 0) {
			snprintf(why, sizeof(why), "send: %s", strerror((int)-n));
			finish(c, CHECK_FAIL, why, false);
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off < c->out_len)
		return;
	if (!c->in) {
		/* A tcp check without `expect` passes as soon as it is connected. */
		bool reuse;
		c->in_cap = CHECK_IN_SMALL;
		c->in = xmalloc(c->in_cap);
		if (c->ops->judge(c->cc, "", 0, false, why, sizeof(why), &reuse) == CHECK_PASS) {
			finish(c, CHECK_PASS, "", false);
			return;
		}
	}
	while (c->x.can_read) {
		if (c->in_len == c->in_cap) {
			if (c->in_cap == CHECK_IN_MAX) {
				judge(c, true);  /* all that is judged */
				return;
			}
			c->in_cap *= 2;
			c->in = xrealloc(c->in, c->in_cap);
		}
		n = xport_recv(&c->x, c->in + c->in_len, c->in_cap - c->in_len);
		if (n == FL_AGAIN)
			break;
		if (n < 0) {
			snprintf(why, sizeof(why), "receive: %s", strerror((int)-n));
			finish(c, CHECK_FAIL, why, false);
			return;
		}
		if (n == 0) {
			judge(c, true);
			return;
		}
		c->in_len += (size_t)n;
		judge(c, false);
		if (c->phase == PH_IDLE || c->phase == PH_KEPT)
			return;
	}
}

static void handshake(struct check *c)
{
	char why[256], msg[300];
	int rc = xport_tls_connect(&c->x, why, sizeof(why));
	if (rc == FL_AGAIN)
		return;
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "TLS: %s", why);
		finish(c, CHECK_FAIL, msg, false);
		return;
	}
	c->phase = PH_EXCHANGE;
	c->x.can_read = c->x.can_write = true;
	exchange(c);
}

static void connected(struct check *c)
{
	bool tls = c->cc->type == CHECK_HTTPS || (c->cc->type == CHECK_TCP && c->cc->tls);
	c->out_off = 0;
	if (tls) {
		c->x.tls = tls_client_conn(c->pool->conf->tls.rt, c->x.io.fd, NULL, NULL);
		if (!c->x.tls) {
			finish(c, CHECK_FAIL, "TLS: out of memory", false);
			return;
		}
		c->phase = PH_HANDSHAKE;
		handshake(c);
		return;
	}
	c->phase = PH_EXCHANGE;
	exchange(c);
}

static void on_event(struct loop *l, struct loop_io *io, uint32_t ev)
{
	struct check *c = container_of(io, struct check, x.io);
	char why[160];
	xport_note(&c->x, ev);
	switch (c->phase) {
	case PH_CONNECTING: {
		int err;
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		err = sock_connect_result(io->fd, ev);
		if (err) {
			snprintf(why, sizeof(why), "connect: %s", strerror(err));
			finish(c, CHECK_FAIL, why, false);
			return;
		}
		connected(c);
		break;
	}
	case PH_KEPT:
		/* Between checks the server has nothing to say: a close, an
		 * error or stray bytes end the connection (an event for bytes
		 * already read is not one). */
		if (ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
			close_conn(c);
		} else if (ev & EPOLLIN) {
			ssize_t n = recv(io->fd, why, 1, MSG_PEEK | MSG_DONTWAIT);
			if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				close_conn(c);
		}
		break;
	case PH_HANDSHAKE:
		handshake(c);
		break;
	case PH_EXCHANGE:
		exchange(c);
		break;
	}
}

static void start(struct check *c)
{
	char why[160];
	int fd, rc;
	c->started = loop_now(ck.loop);
	loop_timer_set(ck.loop, &c->timer, c->cc->timeout);
	fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		finish(c, CHECK_FAIL, why, false);
		return;
	}
	c->x = (struct xport){ .io = { .fd = fd, .fn = on_event } };
	c->phase = PH_CONNECTING;
	if (c->cc->reuse_limit)
		c->period = reuse_period(c);
	rc = sock_connect(ck.loop, &c->x.io, (struct sockaddr *)&c->addr, c->addrlen);
	if (rc < 0 && rc != FL_AGAIN) {
		snprintf(why, sizeof(why), "connect: %s", strerror(-rc));
		finish(c, CHECK_FAIL, why, false);
		return;
	}
	if (rc == 0) {
		c->x.can_write = true;
		connected(c);
	}
}

static void on_timer(struct loop *l, struct loop_timer *t)
{
	struct check *c = container_of(t, struct check, timer);
	char why[64];
	if (c->phase == PH_IDLE) {
		start(c);
		return;
	}
	if (c->phase == PH_KEPT) {
		/* The next check, on the kept connection: only the request. */
		c->started = loop_now(ck.loop);
		loop_timer_set(ck.loop, &c->timer, c->cc->timeout);
		c->reused = true;
		c->phase = PH_EXCHANGE;
		c->out_off = 0;
		c->x.can_write = true;
		exchange(c);
		return;
	}
	c->reused = false;  /* a timeout is a verdict, kept connection or not */
	snprintf(why, sizeof(why), "timeout after %llums", (unsigned long long)c->cc->timeout);
	finish(c, CHECK_FAIL, why, false);
}

static void on_wake(struct loop *l, void *arg)
{
}

static uint64_t *ramp_of(const struct pool_rt *pool, const struct lb_server *srv)
{
	return &ck.ramp_start[ck.seen_off[pool->index] + srv->index];
}

/* A server came back: with slow_start, its weight starts at 10%. */
static void came_back(const struct pool_rt *pool, struct lb_server *srv)
{
	if (!pool->conf->slow_start || pool->lb.algo == LB_MAGLEV || !srv->conf_weight)
		return;
	*ramp_of(pool, srv) = loop_now(ck.loop);
	atomic_store(&srv->weight, srv->conf_weight / 10 ? srv->conf_weight / 10 : 1);
}

/* Raise the weights of servers in slow start, linearly from 10% to 100%. */
static void ramp(const struct pool_rt *pool, struct lb_server *srv, uint64_t now)
{
	uint64_t *start = ramp_of(pool, srv), t = pool->conf->slow_start, w;
	if (!*start)
		return;
	if (now - *start >= t) {
		*start = 0;
		atomic_store(&srv->weight, srv->conf_weight);
		return;
	}
	w = srv->conf_weight / 10 + (uint64_t)srv->conf_weight * 9 * (now - *start) / (10 * t);
	atomic_store(&srv->weight, (uint32_t)(w ? w : 1));
}

/* The workers eject servers (lb_passive_failure); here ejections are
 * announced (log, on_change) and ended when their time is up. */
static void on_tick(struct loop *l, struct loop_timer *t)
{
	struct gen *g = ck.gen;
	uint64_t now = loop_now(l);
	for (size_t p = 0; p < g->npools; p++) {
		struct pool_rt *pool = &g->pools[p];
		for (uint32_t i = 0; pool->conf->slow_start && i < pool->lb.nservers; i++)
			ramp(pool, &pool->lb.servers[i], now);
		if (!pool->lb.passive_failures)
			continue;
		for (uint32_t i = 0; i < pool->lb.nservers; i++) {
			struct lb_server *srv = &pool->lb.servers[i];
			bool *seen = &ck.ejected_seen[ck.seen_off[p] + i];
			uint64_t until = atomic_load(&srv->ejected_until);
			char why[160];
			if (until && !*seen) {
				*seen = true;
				char dur[24];
				fmt_duration(lb_ejection_ms(&pool->lb, atomic_load(&srv->ejections) - 1), dur,
					     sizeof(dur));
				snprintf(why, sizeof(why), "passive: %u failure%s in a row; ejected for %s",
					 pool->lb.passive_failures, pool->lb.passive_failures == 1 ? "" : "s", dur);
				atomic_fetch_add_explicit(&srv->downs, 1, memory_order_relaxed);
				log_warn("pool %s: server %s is down (%s)", pool->conf->name, srv->name, why);
				run_hook(pool, srv, "passive", false, why);
			}
			if (until && now >= until) {
				*seen = false;
				atomic_store(&srv->pfails, 0);
				atomic_store(&srv->ejected_until, 0);
				atomic_fetch_sub(&pool->lb.nejected, 1);
				came_back(pool, srv);
				atomic_fetch_add_explicit(&srv->ups, 1, memory_order_relaxed);
				log_warn("pool %s: server %s is up (passive: its ejection ended)", pool->conf->name,
					 srv->name);
				run_hook(pool, srv, "passive", true, "passive: its ejection ended");
			}
		}
	}
	loop_timer_set(l, t, PASSIVE_TICK_MS);
}

/* At shutdown, one line per server of each pool with checks or passive
 * detection: its state changes, ejections and, with checks, their results. */
static void summary(void)
{
	struct check *c = ck.checks, *end = ck.checks + ck.n;
	for (size_t p = 0; p < ck.gen->npools; p++) {
		struct pool_rt *pool = &ck.gen->pools[p];
		if (!pool->conf->check.loc.line && !pool->lb.passive_failures)
			continue;
		for (uint32_t i = 0; i < pool->lb.nservers; i++) {
			struct lb_server *srv = &pool->lb.servers[i];
			char checks[300] = "";
			bool healthy = !atomic_load(&srv->down) && !atomic_load(&srv->ejected_until);
			if (c < end && c->srv == srv) {
				snprintf(checks, sizeof(checks), " passed=%llu failed=%llu last_ms=%llu "
					 "last_error=\"%s\"", (unsigned long long)c->passed,
					 (unsigned long long)c->failed, (unsigned long long)c->last_ms, c->last_error);
				c++;
			}
			log_info("health pool=%s server=%s healthy=%s downs=%u ups=%u ejections=%u%s",
				 pool->conf->name, srv->name, healthy ? "yes" : "no", atomic_load(&srv->downs),
				 atomic_load(&srv->ups), atomic_load(&srv->ejections), checks);
		}
	}
}

static void *check_main(void *arg)
{
	pthread_setname_np(pthread_self(), "fulcrum-check");
	while (!atomic_load(&ck.stop)) {
		int rc = loop_run_once(ck.loop, -1);
		if (rc < 0) {
			log_error("health checks: event loop: %s", strerror(-rc));
			break;
		}
		while (ck.children && waitpid(-1, NULL, WNOHANG) > 0)
			ck.children--;  /* on_change commands that ended */
		log_flush();
	}
	for (size_t i = 0; i < ck.n; i++)
		close_conn(&ck.checks[i]);
	summary();
	log_flush();
	return NULL;
}

static void free_checks(void)
{
	loop_free(ck.loop);
	for (size_t i = 0; i < ck.n; i++)
		free(ck.checks[i].out);
	free(ck.checks);
	free(ck.ejected_seen);
	free(ck.ramp_start);
	free(ck.seen_off);
	memset(&ck, 0, sizeof(ck));
}

int checks_start(struct gen *g)
{
	size_t n = 0, k = 0, npassive = 0;
	int rc;
	for (size_t p = 0; p < g->npools; p++) {
		if (g->pools[p].conf->check.loc.line)
			n += g->pools[p].lb.nservers;
		if (g->pools[p].lb.passive_failures)
			npassive++;
	}
	if (n == 0 && npassive == 0)
		return 0;
	ck.gen = g;
	ck.loop = loop_new();
	if (!ck.loop)
		return -errno;
	loop_set_wake(ck.loop, on_wake, NULL);
	ck.rng = now_ms() | 1;
	ck.checks = n ? xcalloc(n, sizeof(*ck.checks)) : NULL;
	for (size_t p = 0; p < g->npools; p++) {
		struct pool_rt *pool = &g->pools[p];
		const struct conf_check *cc = &pool->conf->check;
		if (!cc->loc.line)
			continue;
		for (uint32_t s = 0; s < pool->lb.nservers; s++, k++) {
			struct check *c = &ck.checks[k];
			struct lb_server *srv = &pool->lb.servers[s];
			c->pool = pool;
			c->srv = srv;
			c->cc = cc;
			c->ops = cc->type == CHECK_TCP ? &check_tcp_ops : &check_http_ops;
			c->x.io.fd = -1;
			c->timer.fn = on_timer;
			c->healthy = true;
			c->addr = srv->addr;
			c->addrlen = srv->addrlen;
			if (cc->address) {
				uint16_t port = srv->addr.ss_family == AF_INET6 ?
					((struct sockaddr_in6 *)&srv->addr)->sin6_port :
					((struct sockaddr_in *)&srv->addr)->sin_port;
				c->addr = cc->addr;
				c->addrlen = cc->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
					     sizeof(struct sockaddr_in);
				if (c->addr.ss_family == AF_INET6)
					((struct sockaddr_in6 *)&c->addr)->sin6_port = port;
				else
					((struct sockaddr_in *)&c->addr)->sin_port = port;
			}
			if (cc->port) {
				if (c->addr.ss_family == AF_INET6)
					((struct sockaddr_in6 *)&c->addr)->sin6_port = htons((uint16_t)cc->port);
				else
					((struct sockaddr_in *)&c->addr)->sin_port = htons((uint16_t)cc->port);
			}
			{
				char req[4096], host[ADDR_STRLEN];  /* host: the default Host of http checks */
				addr_format((struct sockaddr *)&c->addr, host, sizeof(host));
				c->out_len = c->ops->request(cc, host, req, sizeof(req));
				c->out = xmalloc(c->out_len + 1);
				memcpy(c->out, req, c->out_len);
			}
			/* The first checks are spread evenly over the first interval,
			 * so a large pool is checked at a steady rate from the start,
			 * not in bursts that jitter would only slowly smooth out. */
			set_due(c, 1 + (pool->lb.nservers > 1 ? cc->interval * s / pool->lb.nservers : 0));
		}
	}
	ck.n = n;
	{
		size_t total = 0;
		ck.seen_off = xcalloc(g->npools, sizeof(*ck.seen_off));
		for (size_t p = 0; p < g->npools; p++) {
			ck.seen_off[p] = total;
			total += g->pools[p].lb.nservers;
		}
		ck.ejected_seen = xcalloc(total ? total : 1, sizeof(bool));
		ck.ramp_start = xcalloc(total ? total : 1, sizeof(uint64_t));
		ck.tick.fn = on_tick;
		loop_timer_set(ck.loop, &ck.tick, PASSIVE_TICK_MS);
	}
	atomic_store(&ck.stop, false);
	rc = pthread_create(&ck.thread, NULL, check_main, NULL);
	if (rc != 0) {
		free_checks();
		return -rc;
	}
	ck.running = true;
	return 0;
}

void checks_stop(void)
{
	if (!ck.running)
		return;
	atomic_store(&ck.stop, true);
	loop_wake(ck.loop);
	pthread_join(ck.thread, NULL);
	free_checks();
}
