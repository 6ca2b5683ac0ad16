/* HTTP/1.1 proxy (see http.h).
 *
 * One struct hcli per client connection, one struct hsrv per server
 * connection. A request goes through these states:
 *
 *   HEAD      reading the request head into cin (keep-alive or header timer)
 *   CONNECT   a server connection is being made (connect timer)
 *   EXCHANGE  the request head (in bout) and body (from cin) go to the
 *             server while its response (bin) goes to the client
 *   FLUSH     only bytes for the client are left (cout), then close or
 *             start the next request
 *
 * Bodies are never buffered whole: body bytes go from one connection's input
 * buffer straight to the other socket, as far as the framing (length or
 * chunked, validated by h1.c) says they belong to the message. Heads are
 * rewritten: hop-by-hop fields dropped, framing normalised, X-Forwarded-*
 * added.
 *
 * Every refusal is a short response with Connection: close, a log record
 * and a counter; a refused request never reaches a server. */
#include "http.h"
#include "addr.h"
#include "h1.h"
#include "log.h"
#include "sock.h"
#include "util.h"
#include "xport.h"
#include "stream.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* HS_HANDSHAKE: https, the client's TLS handshake, before any request. */
enum { HS_HANDSHAKE, HS_HEAD, HS_CONNECT, HS_EXCHANGE, HS_FLUSH, HS_CLOSED };

struct hsrv {
	struct xport s;
	struct worker *w;
	struct pool_rt *pool;
	struct lb_server *srv;
	struct hcli *owner;            /* NULL while idle */
	struct loop_timer t_idle;
	struct hsrv *next, *prev;      /* the server's idle list */
	uint32_t requests;             /* served on this connection */
	bool closed;
	bool handshaking;              /* TLS to the server, after the TCP connect */
	char *sni;                     /* sni_from_client: the name it was opened for */
	struct hsrv *dead_next;
};

/* Per worker: idle server connections by pool and server, open clients. */
struct http_worker {
	struct hsrv ***idle;           /* [pool][server] list heads */
	uint32_t **nidle;              /* [pool][server] */
	uint64_t *pool_idle;           /* [pool] idle connections of the pool */
	struct hcli *clients;
	struct hcli *dead;
	struct hsrv *dead_srv;
	pcre2_match_data *md;          /* for route regexes, made on first use */
};

struct hcli {
	struct xport c;
	struct worker *w;
	struct listener_rt *l;
	struct sockaddr_storage peer;
	uint16_t port;                 /* local port the client connected to */
	int state;
	struct buf *cin, *cout;        /* client input, bytes for the client */
	struct buf *bout, *bin;        /* request head for the server, server input */
	struct hsrv *be;
	struct loop_timer t_cli, t_be;

	/* the current request */
	const struct route_rt *route;
	struct pool_rt *pool;
	uint64_t tried_inline, *tried;
	uint32_t tries;
	int version;
	bool close_after;              /* close the client after this response */
	bool head_req, idempotent;
	bool ws;                       /* a WebSocket handshake */
	bool dechunk;                  /* a chunked answer decoded for a 1.0 client */
	bool bulk;                     /* a body read filled bin: splice from now on */
	bool bulk_up;                  /* the same for the request body and cin */
	struct fpipe *pipe;            /* response body bytes on their way by splice */
	struct fpipe *up_pipe;         /* request body bytes on their way by splice */
	int sticky_srv;                /* server named by the sticky cookie, or -1 */
	bool set_cookie;               /* add the sticky cookie to the response */
	char hkey[128];                /* hash key from a header or cookie */
	uint32_t hkey_len;
	bool upgraded;                 /* the server answered 101: hand over */
	bool req_sent_body;            /* some body bytes went to a server */
	enum h1_body req_body, resp_body;
	uint64_t req_left, resp_left;
	struct h1_chunked req_ck, resp_ck;
	bool req_done, resp_head_done, resp_done;
	struct h1_scan scan;
	int status;
	uint64_t bytes_in, bytes_out;
	uint64_t t_start, t_head, t_connected, t_first;
	const char *srv_name;          /* last server tried, for the log */
	struct tls_peer *cert;         /* https with client_auth: the client's certificate */
	bool sniffed;                  /* https: the first bytes were looked at */
	bool tls_failed;               /* the last connect failed in the TLS handshake */
	char client[ADDR_STRLEN];      /* the peer's address as text, made once */
	uint8_t client_len;
	char method[24];
	char target[512];
	const char *cause;
	struct hcli *next, *prev;
	struct hcli *dead_next;
};

static void cli_run(struct hcli *h);
static void cli_close(struct hcli *h, const char *cause);
static void start_connect(struct hcli *h);
static void finish_request(struct hcli *h);
static void upgrade_to_tunnel(struct hcli *h);
static void free_tried(struct hcli *h);

static void noop_event(struct loop *l, struct loop_io *io, uint32_t ev)
{
}


static struct http_worker *hw(struct worker *w)
{
	struct http_worker *x = w->http;
	if (!x) {
		struct gen *g = w->gen;
		x = xcalloc(1, sizeof(*x));
		x->idle = xcalloc(g->npools, sizeof(*x->idle));
		x->nidle = xcalloc(g->npools, sizeof(*x->nidle));
		x->pool_idle = xcalloc(g->npools, sizeof(*x->pool_idle));
		for (size_t p = 0; p < g->npools; p++) {
			x->idle[p] = xcalloc(g->pools[p].lb.nservers, sizeof(**x->idle));
			x->nidle[p] = xcalloc(g->pools[p].lb.nservers, sizeof(**x->nidle));
		}
		w->http = x;
	}
	return x;
}

/* ---- I/O helpers --------------------------------------------------------- */

/* Read what is available into b (compacting it first when full).
 * Returns bytes read, 0 at EOF (sets x->eof), FL_AGAIN, or -errno. */
static ssize_t read_into(struct xport *x, struct buf *b)
{
	ssize_t n;
	if (!x->can_read)
		return FL_AGAIN;
	if (buf_room(b) == 0)
		buf_compact(b);
	if (buf_room(b) == 0)
		return FL_AGAIN;
	n = xport_recv(x, b->data + b->tail, buf_room(b));
	if (n > 0) {
		/* A short read emptied the socket; epoll reports new data (but not
		 * again a FIN it already reported). TLS returns a record per read,
		 * so there a short read says nothing. */
		if ((size_t)n < buf_room(b) && !x->hup && !x->tls)
			x->can_read = false;
		b->tail += (uint32_t)n;
		return n;
	}
	if (n == 0) {
		x->eof = true;
		x->can_read = false;
	}
	return n;
}

/* Send up to len bytes; returns bytes sent, FL_AGAIN or -errno. */
static ssize_t send_some(struct xport *x, const char *p, size_t len)
{
	if (!x->can_write)
		return FL_AGAIN;
	return xport_send(x, p, len);
}

/* Nothing waits to go to the client: neither in cout nor in the pipe. */
static bool cli_out_empty(const struct hcli *h)
{
	return (!h->cout || h->cout->head == h->cout->tail) && (!h->pipe || !h->pipe->fill);
}

/* A pipe is held only while a body moves through it. */
static void put_pipe(struct hcli *h)
{
	if (h->pipe) {
		pipe_put(&h->w->bufs, h->pipe);
		h->pipe = NULL;
	}
	if (h->up_pipe) {
		pipe_put(&h->w->bufs, h->up_pipe);
		h->up_pipe = NULL;
	}
}

/* A pipe for a body going by splice(): the one in *P, or a new one. When
 * none can be had (pipe_get logs it) the body goes on with buffers: *BULK
 * is cleared and false returned. */
static bool have_pipe(struct hcli *h, struct fpipe **p, bool *bulk)
{
	if (*p || (*p = pipe_get(&h->w->bufs)))
		return true;
	*bulk = false;
	return false;
}

/* Whether bodies may move by splice() between this client and its server:
 * both plain TCP, and the listener does not say `forwarding: buffer`. */
static bool splice_allowed(const struct hcli *h)
{
	return h->l->splice && !h->c.tls && !h->be->s.tls;
}

/* Whether the rest of this request body goes by splice(): as for response
 * bodies (see splice_body), for a Content-Length body. */
static bool splice_request_body(const struct hcli *h)
{
	return h->bulk_up && h->req_body == H1_BODY_LENGTH && splice_allowed(h);
}

/* Set when an append did not fit. A head cut short could end in the middle
 * of a field, and what follows would be read as the rest of the head or as a
 * second request: whoever builds a head checks this and refuses instead. */
static __thread bool append_overflow;

static void appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->tail, buf_room(b), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((uint32_t)n >= buf_room(b)) {
		append_overflow = true;
		return;  /* nothing of a piece that does not fit */
	}
	b->tail += (uint32_t)n;
}

static void append(struct buf *b, const char *p, size_t n)
{
	if (n > buf_room(b)) {
		append_overflow = true;
		return;
	}
	memcpy(b->data + b->tail, p, n);
	b->tail += (uint32_t)n;
}

/* A string literal as the pointer and length arguments. */
#define LIT(s) (s), sizeof(s) - 1

/* Decimal digits of v: the request and response heads carry a length, a
 * status and a port on every message, so no printf on that path. */
static void append_u64(struct buf *b, uint64_t v)
{
	char d[20];
	int n = sizeof(d);
	do {
		d[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	append(b, d + n, sizeof(d) - (size_t)n);
}

/* One field line: "name: value" CRLF. */
static void append_field(struct buf *b, const char *name, size_t nlen, const char *value, size_t vlen)
{
	append(b, name, nlen);
	append(b, LIT(": "));
	append(b, value, vlen);
	append(b, LIT("\r\n"));
}

static void append_length(struct buf *b, uint64_t n)
{
	append(b, LIT("Content-Length: "));
	append_u64(b, n);
	append(b, LIT("\r\n"));
}

/* Keep what fits of p[0..n) as a C string in dst (for the access log). */
static void copy_trunc(char *dst, size_t size, const char *p, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, p, n);
	dst[n] = 0;
}

static bool ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (char)(y + 32);
		if (x != y)
			return false;
	}
	return true;
}

static void put_buf(struct worker *w, struct buf **b)
{
	if (*b) {
		buf_put(&w->bufs, *b);
		*b = NULL;
	}
}

/* ---- counters ------------------------------------------------------------ */

static struct ctr_listener *lctr(struct hcli *h)
{
	return &h->w->stats->listeners[h->l->index];
}

/* ---- server connections -------------------------------------------------- */

static void srv_free_later(struct hsrv *b)
{
	struct http_worker *x = hw(b->w);
	b->dead_next = x->dead_srv;
	x->dead_srv = b;
}

static void idle_unlink(struct hsrv *b)
{
	struct http_worker *x = hw(b->w);
	uint32_t p = b->pool->index, s = b->srv->index;
	if (b->prev)
		b->prev->next = b->next;
	else
		x->idle[p][s] = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->next = b->prev = NULL;
	x->nidle[p][s]--;
	x->pool_idle[p]--;
}

static void srv_close(struct hsrv *b)
{
	if (b->closed)
		return;
	b->closed = true;
	if (!b->owner)
		idle_unlink(b);
	loop_timer_del(b->w->loop, &b->t_idle);
	b->s.io.fn = noop_event;
	xport_close(&b->s, true);
	srv_free_later(b);
}

/* An idle server connection may only see its own close or an error (a
 * server must not speak unasked). Edge-triggered epoll also reports write
 * space and, late, data that was already read: look before closing. */
static void on_idle_event(struct loop *l, struct loop_io *io, uint32_t ev)
{
	struct hsrv *b = container_of(io, struct hsrv, s.io);
	char c;
	if (ev & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
		srv_close(b);
		return;
	}
	if (!(ev & EPOLLIN))
		return;
	if (recv(io->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	srv_close(b);
}

static void on_idle_timer(struct loop *l, struct loop_timer *t)
{
	srv_close(container_of(t, struct hsrv, t_idle));
}

static void on_srv_event(struct loop *l, struct loop_io *io, uint32_t ev);

/* Give a server connection back after a complete exchange, or close it. */
static void srv_release(struct hcli *h, bool reusable)
{
	struct hsrv *b = h->be;
	struct http_worker *x;
	const struct conf_keepalive *ka;
	uint32_t p, s;

	if (!b)
		return;
	h->be = NULL;
	atomic_fetch_sub_explicit(&b->srv->active, 1, memory_order_relaxed);
	ctr_sub(&h->w->stats->servers[b->pool->index][b->srv->index].active, 1);
	b->owner = NULL;
	ka = &b->pool->conf->keepalive;
	x = hw(b->w);
	p = b->pool->index;
	s = b->srv->index;
	if (!reusable || b->s.eof || b->s.hup || x->pool_idle[p] >= ka->max_idle ||
	    h->w->draining) {
		b->owner = h; /* not on an idle list: srv_close must not unlink */
		srv_close(b);
		return;
	}
	b->s.io.fn = on_idle_event;
	b->next = x->idle[p][s];
	b->prev = NULL;
	if (b->next)
		b->next->prev = b;
	x->idle[p][s] = b;
	x->nidle[p][s]++;
	x->pool_idle[p]++;
	loop_timer_set(b->w->loop, &b->t_idle, ka->idle_timeout);
}

static struct hsrv *srv_take_idle(struct hcli *h, struct lb_server *srv)
{
	struct http_worker *x = hw(h->w);
	struct hsrv *b = x->idle[h->pool->index][srv->index];
	if (h->pool->conf->tls.sni_from_client) {
		/* A connection is for the name it was opened (and verified) with. */
		const char *want = h->c.tls ? tls_sni(h->c.tls) : NULL;
		while (b && !(want ? b->sni && strcmp(b->sni, want) == 0 : !b->sni))
			b = b->next;
	}
	if (!b)
		return NULL;
	idle_unlink(b);
	loop_timer_stop(h->w->loop, &b->t_idle);
	b->owner = h;
	b->s.io.fn = on_srv_event;
	return b;
}

/* ---- generated responses ------------------------------------------------- */

/* Queue a short response. A refusal (status >= 400 from a parse error or a
 * limit) always closes the connection afterwards. */
static void respond(struct hcli *h, int status, const char *ctype, const char *body,
		    size_t blen, const char *location, bool close_conn)
{
	uint32_t mark;
	if (!h->cout)
		h->cout = buf_get_large(&h->w->bufs);
	buf_compact(h->cout);
	mark = h->cout->tail;
	if (close_conn)
		h->close_after = true;
	if (h->head_req)
		blen = 0;
	for (int pass = 0; pass < 2; pass++) {
		/* A body that does not fit behind bytes still queued is left out
		 * rather than announced and cut short. */
		append_overflow = false;
		h->cout->tail = mark;
		appendf(h->cout, "HTTP/1.1 %d %s\r\n", status, h1_status_text(status));
		if (location)
			appendf(h->cout, "Location: %s\r\n", location);
		appendf(h->cout, "Content-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", ctype, blen,
			h->close_after ? "Connection: close\r\n" :
			h->version == 10 ? "Connection: keep-alive\r\n" : "");
		if (blen)
			append(h->cout, body, blen);
		if (!append_overflow)
			break;
		blen = 0;
	}
	h->resp_done = true;
	h->status = status;
	h->bytes_out += h->cout->tail - h->cout->head;
}

/* Answer with an error status and close after it. */
static void respond_error(struct hcli *h, int status, const char *cause)
{
	char body[64];
	const struct conf_listener *lc = h->l->conf;
	h->cause = cause;
	if (status >= 400 && status < 600 && lc->pages[status]) {
		respond(h, status, "text/html", lc->pages[status], lc->page_len[status], NULL, true);
	} else {
		snprintf(body, sizeof(body), "%d %s\n", status, h1_status_text(status));
		respond(h, status, "text/plain", body, strlen(body), NULL, true);
	}
	h->state = HS_FLUSH;
	/* 4xx, 501 and 505 refuse the request itself; other 5xx are failures
	 * on the server side. */
	if (status < 500 || status == 501 || status == 505)
		stats_http_rejected(lctr(h), status);
}

/* ---- routing ------------------------------------------------------------- */

/* Host without port (and without brackets' port for IPv6 literals). */
static size_t host_len(const char *a, size_t len)
{
	if (len && a[0] == '[') {
		const char *e = memchr(a, ']', len);
		return e ? (size_t)(e - a) + 1 : len;
	}
	const char *c = memchr(a, ':', len);
	return c ? (size_t)(c - a) : len;
}

static bool re_match(struct worker *w, void *re, const char *p, size_t n)
{
	struct http_worker *x = hw(w);
	if (!x->md)
		x->md = pcre2_match_data_create(1, NULL);
	return pcre2_match(re, (PCRE2_SPTR)p, n, 0, 0, x->md, NULL) >= 0;
}

/* Value of cookie `name` in the request's Cookie fields, or NULL. */
static const char *find_cookie(const struct h1_msg *m, const char *name, uint32_t *len)
{
	size_t nl = strlen(name);
	for (int i = h1_find_field(m, "cookie", 6, 0); i >= 0; i = h1_find_field(m, "cookie", 6, i + 1)) {
		const char *p = m->fields[i].value, *end = p + m->fields[i].value_len;
		while (p < end) {
			const char *semi = memchr(p, ';', (size_t)(end - p));
			const char *e = semi ? semi : end;
			while (p < e && *p == ' ')
				p++;
			if ((size_t)(e - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
				*len = (uint32_t)(e - p - (ptrdiff_t)nl - 1);
				return p + nl + 1;
			}
			p = e + 1;
		}
	}
	return NULL;
}

/* Value of query parameter `name` in path[0..len), or NULL. */
static const char *find_query(const char *path, size_t len, const char *name, size_t *vlen)
{
	const char *q = memchr(path, '?', len), *end = path + len;
	size_t nl = strlen(name);
	if (!q)
		return NULL;
	for (const char *p = q + 1; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;
		if ((size_t)(e - p) >= nl && memcmp(p, name, nl) == 0 && (p + nl == e || p[nl] == '=')) {
			const char *v = p + nl == e ? e : p + nl + 1;
			*vlen = (size_t)(e - v);
			return v;
		}
		p = e + 1;
	}
	return NULL;
}

static bool conds_hold(struct worker *w, const struct conf_cond *cv, size_t n,
		       const struct h1_msg *m, bool query)
{
	for (size_t i = 0; i < n; i++) {
		const struct conf_cond *c = &cv[i];
		const char *v = NULL;
		size_t vlen = 0;
		bool ok = false;
		if (query) {
			v = find_query(m->path, m->path_len, c->name, &vlen);
		} else {
			int f = h1_find_field(m, c->name, strlen(c->name), 0);
			if (f >= 0) {
				v = m->fields[f].value;
				vlen = m->fields[f].value_len;
			}
		}
		if (v)
			ok = c->re ? re_match(w, c->re, v, vlen)
				   : strlen(c->value) == vlen && memcmp(c->value, v, vlen) == 0;
		if (!ok)
			return false;
	}
	return true;
}

static bool subject_matches(struct hcli *h, const struct conf_match *mt)
{
	const char *subj;
	if (!h->cert || !h->cert->present || strcmp(h->cert->verify, "SUCCESS") != 0)
		return false;
	subj = h->cert->subject;
	if (mt->subject_re)
		return re_match(h->w, mt->subject_re, subj, strlen(subj));
	return strcmp(subj, mt->client_cert_subject) == 0;
}

static const struct route_rt *route_find(struct hcli *h, const struct h1_msg *m, size_t path_len)
{
	const struct listener_rt *l = h->l;
	size_t hlen = host_len(m->authority ? m->authority : "", m->authority ? m->authority_len : 0);
	/* "example.com." is the same host as "example.com" to the server. */
	if (hlen > 1 && m->authority[hlen - 1] == '.')
		hlen--;
	for (size_t i = 0; i < l->nroutes; i++) {
		const struct route_rt *r = &l->routes[i];
		const struct conf_match *mt = &r->conf->match;
		if (mt->host && !(m->authority && name_matches(mt->host, m->authority, hlen)))
			continue;
		if (mt->path && !(strlen(mt->path) == path_len && memcmp(mt->path, m->path, path_len) == 0))
			continue;
		if (mt->path_prefix) {
			size_t pl = strlen(mt->path_prefix);
			if (pl > path_len || memcmp(mt->path_prefix, m->path, pl) != 0)
				continue;
		}
		if (mt->methods.n) {
			size_t k;
			for (k = 0; k < mt->methods.n; k++)
				if (strlen(mt->methods.v[k]) == m->method_len &&
				    memcmp(mt->methods.v[k], m->method, m->method_len) == 0)
					break;
			if (k == mt->methods.n)
				continue;
		}
		if (mt->source.n && !cidr_list_match(&mt->source, (struct sockaddr *)&h->peer))
			continue;
		if (mt->path_re && !re_match(h->w, mt->path_re, m->path, path_len))
			continue;
		if (mt->header.n && !conds_hold(h->w, mt->headers, mt->header.n, m, false))
			continue;
		if (mt->query.n && !conds_hold(h->w, mt->queries, mt->query.n, m, true))
			continue;
		if (mt->client_cert_subject && !subject_matches(h, mt))
			continue;
		return r;
	}
	return NULL;
}

/* Expand {host}, {path} and {scheme} (the client's: https on a TLS
 * connection) in a redirect target. */
static void expand_location(char *out, size_t len, const char *tmpl, const struct h1_msg *m,
			    bool tls)
{
	size_t o = 0;
	while (*tmpl && o + 1 < len) {
		const char *val = NULL;
		size_t vlen = 0, skip = 0;
		switch (*tmpl == '{' ? conf_location_var(tmpl, &skip) : LOCV_NONE) {
		case LOCV_HOST:
			val = m->authority ? m->authority : "";
			vlen = m->authority ? m->authority_len : 0;
			break;
		case LOCV_PATH:
			val = m->path;
			vlen = m->path_len;
			break;
		case LOCV_SCHEME:
			val = tls ? "https" : "http";
			vlen = tls ? 5 : 4;
			break;
		case LOCV_NONE:
			break;
		}
		if (skip) {
			if (vlen > len - o - 1)
				vlen = len - o - 1;
			memcpy(out + o, val, vlen);
			o += vlen;
			tmpl += skip;
		} else {
			out[o++] = *tmpl++;
		}
	}
	out[o] = '\0';
}

/* ---- request head -------------------------------------------------------- */

/* X-Client-Cert-*: fulcrum's to set, never a client's to send. */
static bool is_client_cert_field(const struct h1_field *f)
{
	return f->name_len > 14 && ieq(f->name, 14, "x-client-cert-");
}

static bool is_forwarding_field(const struct h1_field *f)
{
	return ieq(f->name, f->name_len, "x-forwarded-for") ||
	       ieq(f->name, f->name_len, "x-forwarded-proto") ||
	       ieq(f->name, f->name_len, "x-forwarded-host") ||
	       ieq(f->name, f->name_len, "x-forwarded-port") ||
	       ieq(f->name, f->name_len, "forwarded");
}

static bool in_list(const struct str_list *l, const char *n, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (ieq(n, len, l->v[i]))
			return true;
	return false;
}

static bool in_map(const struct str_map *mp, const char *n, size_t len)
{
	for (size_t i = 0; i < mp->n; i++)
		if (ieq(n, len, mp->keys[i]))
			return true;
	return false;
}

static char lower_dash(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (char)(c + 32);
	return c == '_' ? '-' : c;
}

/* Whether field name A reads as B (or, with PREFIX, starts with B and goes
 * on) once case is ignored and '_' is taken for '-', as CGI-style servers
 * do when they turn fields into HTTP_* variables. */
static bool reads_as(const char *a, size_t alen, const char *b, bool prefix)
{
	size_t blen = strlen(b);
	if (prefix ? alen <= blen : alen != blen)
		return false;
	for (size_t i = 0; i < blen; i++)
		if (lower_dash(a[i]) != lower_dash(b[i]))
			return false;
	return true;
}

static bool reads_as_any(const char *a, size_t alen, char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (reads_as(a, alen, names[i], false))
			return true;
	return false;
}

/* A field name with '_' that a CGI-style server would take for a field
 * fulcrum sets or controls: the framing fields, the forwarding and client
 * certificate fields, and the fields the route sets, adds or removes. A
 * client must not get X_Forwarded_For past fulcrum as HTTP_X_FORWARDED_FOR. */
static bool poses_as_own_field(const struct h1_field *f, const struct conf_header_ops *o)
{
	static const char *const own[] = {
		"host", "content-length", "transfer-encoding", "connection", "forwarded",
	};
	for (size_t i = 0; i < ARRAY_LEN(own); i++)
		if (reads_as(f->name, f->name_len, own[i], false))
			return true;
	if (reads_as(f->name, f->name_len, "x-forwarded-", true) ||
	    reads_as(f->name, f->name_len, "x-client-cert-", true))
		return true;
	return o && (reads_as_any(f->name, f->name_len, o->set.keys, o->set.n) ||
		     reads_as_any(f->name, f->name_len, o->add.keys, o->add.n) ||
		     reads_as_any(f->name, f->name_len, o->remove.v, o->remove.n));
}

/* Whether a route's header edits drop this field. */
static bool ops_drop(const struct conf_header_ops *o, const struct h1_field *f)
{
	return o && (in_list(&o->remove, f->name, f->name_len) || in_map(&o->set, f->name, f->name_len));
}

/* The route's set and add fields, rendered at config load. */
static void ops_append(struct buf *b, const struct conf_header_ops *o)
{
	if (o && o->lines_len)
		append(b, o->lines, o->lines_len);
}

/* Write the head sent to the server into h->bout. Returns false when the
 * rewritten head does not fit (the fields fulcrum adds repeat the Host). */
static bool build_request(struct hcli *h, const struct h1_msg *m)
{
	struct buf *o = h->bout = buf_get_large(&h->w->bufs);
	const struct conf_listener *lc = h->l->conf;
	append_overflow = false;
	bool trusted = lc->trusted_proxies.n &&
		       cidr_list_match(&lc->trusted_proxies, (struct sockaddr *)&h->peer);
	if (!h->client_len) /* once per connection */
		h->client_len = (uint8_t)strlen(addr_format_host((struct sockaddr *)&h->peer, h->client,
								  sizeof(h->client)));
	const struct conf_route *rc = h->route ? h->route->conf : NULL;
	const struct conf_header_ops *ops = rc ? &rc->req_headers : NULL;
	const char *tgt = (m->flags & H1_F_ABSOLUTE_FORM) ? m->path : m->target;
	size_t tlen = (m->flags & H1_F_ABSOLUTE_FORM) ? m->path_len : m->target_len;

	append(o, m->method, m->method_len);
	append(o, LIT(" "));
	if (rc && rc->rewrite_prefix) {
		/* The route matched on path_prefix: swap that part. */
		size_t old = strlen(rc->match.path_prefix);
		append(o, rc->rewrite_prefix, strlen(rc->rewrite_prefix));
		append(o, tgt + old, tlen - old);
	} else {
		append(o, tgt, tlen);
	}
	/* An HTTP/1.0 request that names its host goes out as HTTP/1.1 on a
	 * pooled connection (a chunked answer is decoded for the client, see
	 * pump_response). Without a Host, HTTP/1.1 cannot carry it: it goes as
	 * HTTP/1.0 on a connection of its own. */
	bool as_10 = m->version == 10 && !m->authority;
	if (as_10)
		append(o, LIT(" HTTP/1.0\r\n"));
	else
		append(o, LIT(" HTTP/1.1\r\n"));
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct h1_field *f = &m->fields[i];
		if (m->hop[i] || ieq(f->name, f->name_len, "content-length") ||
		    ieq(f->name, f->name_len, "transfer-encoding") || ieq(f->name, f->name_len, "host") ||
		    (!h->ws && ieq(f->name, f->name_len, "upgrade")))
			continue;
		/* A 1.0 request's Expect is to be ignored (RFC 9110 10.1.1); in
		 * HTTP/1.1 the server would honour it. */
		if (m->version == 10 && ieq(f->name, f->name_len, "expect"))
			continue;
		if ((m->flags & H1_F_UNDERSCORE) && memchr(f->name, '_', f->name_len) &&
		    (lc->underscore_fields == US_DROP || poses_as_own_field(f, ops))) {
			log_debug("listener %s: field %.*s dropped (underscore in its name)", lc->name,
				  (int)f->name_len, f->name);
			continue;
		}
		if (!is_forwarding_field(f) && ops_drop(ops, f))
			continue;
		if (!trusted && is_client_cert_field(f))
			continue;
		if (is_forwarding_field(f)) {
			/* Kept (and appended to) only from trusted proxies. */
			if (!trusted)
				continue;
			if (ieq(f->name, f->name_len, "x-forwarded-for"))
				continue;  /* joined below */
		}
		append_field(o, f->name, f->name_len, f->value, f->value_len);
	}
	ops_append(o, ops);
	if (m->authority)
		append_field(o, LIT("Host"), m->authority, m->authority_len);
	append(o, LIT("X-Forwarded-For: "));
	/* Several X-Forwarded-For lines are one list (RFC 9110 5.3). */
	for (int i = trusted ? h1_find_field(m, "x-forwarded-for", 15, 0) : -1; i >= 0;
	     i = h1_find_field(m, "x-forwarded-for", 15, i + 1)) {
		if (!m->fields[i].value_len)
			continue;
		append(o, m->fields[i].value, m->fields[i].value_len);
		append(o, LIT(", "));
	}
	append(o, h->client, h->client_len);
	if (h->c.tls)
		append(o, LIT("\r\nX-Forwarded-Proto: https\r\n"));
	else
		append(o, LIT("\r\nX-Forwarded-Proto: http\r\n"));
	if (m->authority)
		append_field(o, LIT("X-Forwarded-Host"), m->authority, m->authority_len);
	append(o, LIT("X-Forwarded-Port: "));
	append_u64(o, h->port);
	append(o, LIT("\r\n"));
	if (lc->forwarded) {
		bool v6 = h->peer.ss_family == AF_INET6;
		appendf(o, "Forwarded: for=%s%s%s;proto=%s", v6 ? "\"[" : "", h->client, v6 ? "]\"" : "",
			h->c.tls ? "https" : "http");
		if (m->authority) {
			append(o, LIT(";host=\""));
			append(o, m->authority, m->authority_len);
			append(o, LIT("\""));
		}
		append(o, LIT("\r\n"));
	}
	if (lc->tls.forward_client_cert && h->cert) {
		const struct tls_peer *pc = h->cert;
		if (pc->present)
			appendf(o, "X-Client-Cert-Subject: %s\r\nX-Client-Cert-Issuer: %s\r\n"
				"X-Client-Cert-Serial: %s\r\nX-Client-Cert-Fingerprint: %s\r\n",
				pc->subject, pc->issuer, pc->serial, pc->fingerprint);
		appendf(o, "X-Client-Cert-Verify: %s\r\n", pc->verify);
	}
	/* Content-Length: 0 is kept: a server may require a length on POST. */
	if (m->body == H1_BODY_LENGTH || h1_find_field(m, "content-length", 14, 0) >= 0)
		append_length(o, m->content_length);
	else if (m->body == H1_BODY_CHUNKED)
		append(o, LIT("Transfer-Encoding: chunked\r\n"));
	if (as_10)
		append(o, LIT("Connection: close\r\n"));
	else if (h->ws)
		append(o, LIT("Connection: Upgrade\r\n"));
	append(o, LIT("\r\n"));
	return !append_overflow;
}

static bool method_idempotent(const char *m, size_t n)
{
	static const char *const ok[] = { "GET", "HEAD", "OPTIONS", "PUT", "DELETE" };
	for (size_t i = 0; i < ARRAY_LEN(ok); i++)
		if (strlen(ok[i]) == n && memcmp(ok[i], m, n) == 0)
			return true;
	return false;
}

/* What the request says about server choice: the sticky cookie (a server
 * id, the hash of its name) and the hash key of source_hash/maglev. */
static void pick_hints(struct hcli *h, const struct h1_msg *m)
{
	const struct conf_pool *pc = h->pool->conf;
	const char *v = NULL;
	uint32_t vlen = 0;
	if (pc->sticky.cookie) {
		v = find_cookie(m, pc->sticky.cookie, &vlen);
		h->set_cookie = true;
		for (uint32_t i = 0; v && vlen == STICKY_ID_LEN && i < h->pool->lb.nservers; i++) {
			if (memcmp(h->pool->sticky_ids[i], v, STICKY_ID_LEN) == 0) {
				h->sticky_srv = (int)i;
				break;
			}
		}
	}
	if (pc->hash_key) {
		const char *name = pc->hash_key + 7;
		v = NULL;
		if (pc->hash_key[0] == 'c') {
			v = find_cookie(m, name, &vlen);
		} else {
			int f = h1_find_field(m, name, strlen(name), 0);
			if (f >= 0) {
				v = m->fields[f].value;
				vlen = m->fields[f].value_len;
			}
		}
		if (v && vlen) {
			h->hkey_len = vlen < sizeof(h->hkey) ? vlen : (uint32_t)sizeof(h->hkey);
			memcpy(h->hkey, v, h->hkey_len);
		}
	}
}

/* The path as the listener routes it: normalised (unless normalize_path:
 * false), in place, since the head is in our own buffer and normalising
 * only shortens it; the query moves up behind the new end. *path_len is the
 * path's length without the query. Returns NULL, or why the path is
 * refused. The access log keeps the target as received, copied before. */
static const char *check_path(const struct conf_listener *lc, struct h1_msg *m, size_t *path_len)
{
	const char *why = NULL;
	size_t n = *path_len;
	if (lc->normalize_path && m->path[0] == '/') {
		if (h1_normalize_path((char *)m->path, &n, &why) < 0)
			return why;
		if (n != *path_len) {
			uint32_t cut = (uint32_t)(*path_len - n);
			memmove((char *)m->path + n, m->path + *path_len, m->path_len - *path_len);
			m->path_len -= cut;
			m->target_len -= cut;
			*path_len = n;
		}
	}
	if (lc->escaped_slashes == ES_REJECT && h1_has_escaped_slash(m->path, *path_len))
		return "an escaped / or \\ in the path";
	return NULL;
}

/* A complete request head is at the front of cin. */
static void handle_request(struct hcli *h, struct h1_msg *m, int head_len)
{
	const struct conf_listener *lc = h->l->conf;
	size_t path_len;
	const char *q, *why;

	h->t_head = loop_now(h->w->loop);
	h->version = m->version;
	h->head_req = m->method_len == 4 && memcmp(m->method, "HEAD", 4) == 0;
	h->idempotent = method_idempotent(m->method, m->method_len);
	copy_trunc(h->method, sizeof(h->method), m->method, m->method_len);
	copy_trunc(h->target, sizeof(h->target), m->target, m->target_len);
	h->close_after = (m->flags & H1_F_CONN_CLOSE) || (m->version == 10 && !(m->flags & H1_F_CONN_KEEPALIVE)) ||
			 h->w->draining;
	h->req_body = m->body;
	h->req_left = m->content_length;
	memset(&h->req_ck, 0, sizeof(h->req_ck));
	h->req_done = m->body == H1_BODY_NONE;
	h->bytes_in = (uint64_t)head_len;

	h->ws = (m->flags & H1_F_UPGRADE_WS) != 0;
	h->upgraded = false;
	if (h->ws && !((m->flags & H1_F_WS_KEY) && (m->flags & H1_F_WS_VERSION))) {
		respond_error(h, 400, "bad_websocket_handshake");
		return;
	}
	if (lc->limits.body && m->body == H1_BODY_LENGTH && m->content_length > lc->limits.body) {
		respond_error(h, 413, "body_too_large");
		return;
	}
	q = memchr(m->path, '?', m->path_len);
	path_len = q ? (size_t)(q - m->path) : m->path_len;
	if ((why = check_path(lc, m, &path_len))) {
		log_debug("listener %s: request for %s refused: %s", lc->name, h->target, why);
		respond_error(h, 400, "bad_path");
		return;
	}
	h->route = route_find(h, m, path_len);
	h->pool = h->route ? h->route->pool : h->l->pool;
	if (h->route && h->route->conf->nsplit) {
		const struct conf_route *rc = h->route->conf;
		uint64_t x = lb_rand(&h->w->rng) % rc->split_total;
		size_t k = 0;
		while (k + 1 < rc->nsplit && x >= rc->split[k].weight)
			x -= rc->split[k++].weight;
		h->pool = &h->w->gen->pools[rc->split[k].pool - h->w->gen->cfg->pools];
	}
	h->sticky_srv = -1;
	h->set_cookie = false;
	h->hkey_len = 0;
	if (h->pool)
		pick_hints(h, m);
	if (h->route && !h->pool) {
		const struct conf_route *r = h->route->conf;
		/* The request is answered here: its body is read and dropped. */
		if (r->redirect.loc.line) {
			char loc[1024];
			expand_location(loc, sizeof(loc), r->redirect.to, m, h->c.tls != NULL);
			respond(h, (int)r->redirect.code, "text/plain", "", 0, loc, h->close_after);
		} else {
			const char *body = r->respond.body ? r->respond.body : "";
			respond(h, (int)r->respond.status, r->respond.content_type, body, strlen(body), NULL,
				h->close_after);
		}
		h->cause = "answered";
		if (!h->req_done)
			h->close_after = true;  /* simplest honest choice: no body draining */
		h->cin->head += (uint32_t)head_len;
		h->state = HS_FLUSH;
		return;
	}
	if (!h->pool) {
		h->cin->head += (uint32_t)head_len;
		respond(h, 404, "text/plain", "404 Not Found\n", 14, NULL, !h->req_done || h->close_after);
		h->cause = "no_route";
		h->state = HS_FLUSH;
		return;
	}
	if (m->body == H1_BODY_CHUNKED && h->cin->tail > h->cin->head + (uint32_t)head_len) {
		/* Check the body bytes already here before any server sees the
		 * head: a body that is invalid from its start is refused whole. */
		struct h1_chunked probe = { 0 };
		if (h1_chunked_feed(&probe, h->cin->data + h->cin->head + head_len,
				    h->cin->tail - h->cin->head - (uint32_t)head_len, &why) < 0) {
			log_debug("listener %s: bad chunked request body: %s", lc->name, why);
			respond_error(h, 400, "bad_request_body");
			return;
		}
	}
	/* The head is in: from now on the client only has its body to send
	 * (client_idle) and the server timers govern the wait for the answer. */
	if (h->req_done)
		loop_timer_stop(h->w->loop, &h->t_cli);
	else
		loop_timer_set(h->w->loop, &h->t_cli, lc->timeouts.client_idle);
	if (!build_request(h, m)) {
		put_buf(h->w, &h->bout);
		respond_error(h, 431, "head_too_large_rewritten");
		return;
	}
	h->cin->head += (uint32_t)head_len;
	h->tries = 0;
	free_tried(h);
	start_connect(h);
}

/* ---- connecting ---------------------------------------------------------- */

static void free_tried(struct hcli *h)
{
	if (h->tried && h->tried != &h->tried_inline)
		free(h->tried);
	h->tried = NULL;
	h->tried_inline = 0;
}

static void mark_tried(struct hcli *h, uint32_t idx)
{
	uint32_t n = h->pool->lb.nservers;
	if (!h->tried)
		h->tried = n <= 64 ? &h->tried_inline : xcalloc((n + 63) / 64, sizeof(uint64_t));
	h->tried[idx / 64] |= 1ULL << (idx % 64);
}

static void connect_failed(struct hcli *h, int err)
{
	struct hsrv *b = h->be;
	char peer[ADDR_STRLEN];
	uint32_t idx = b->srv->index;

	lb_passive_failure(&h->pool->lb, b->srv, loop_now(h->w->loop));
	log_warn("listener %s: client %s: connect to server %s of pool %s failed: %s (try %u of %llu)",
		 h->l->conf->name, addr_format((struct sockaddr *)&h->peer, peer, sizeof(peer)),
		 b->srv->name, h->pool->conf->name, err == ETIMEDOUT ? "timed out" : strerror(err),
		 h->tries, (unsigned long long)h->pool->conf->retries + 1);
	ctr_add(&h->w->stats->servers[h->pool->index][idx].connect_fail, 1);
	ctr_add(&h->w->stats->pools[h->pool->index].connect_fail, 1);
	srv_release(h, false);
	mark_tried(h, idx);
	loop_timer_stop(h->w->loop, &h->t_be);
	if (h->tries > (uint64_t)h->pool->conf->retries) {
		/* A server that fails TLS (a bad certificate, say) is a bad gateway. */
		if (h->tls_failed)
			respond_error(h, 502, "server_tls_failed");
		else
			respond_error(h, 503, "connect_failed");
		cli_run(h);
		return;
	}
	start_connect(h);
}

static void on_be_timer(struct loop *l, struct loop_timer *t)
{
	struct hcli *h = container_of(t, struct hcli, t_be);
	if (h->state == HS_CONNECT) {
		connect_failed(h, ETIMEDOUT);
	} else if (!h->resp_head_done) {
		if (h->be)
			lb_passive_failure(&h->pool->lb, h->be->srv, loop_now(h->w->loop));
		srv_release(h, false);
		if (!h->cout || h->cout->tail == h->cout->head) {
			respond_error(h, 504, "server_timeout");
			cli_run(h);
		} else {
			cli_close(h, "server_timeout");
		}
	} else {
		cli_close(h, "server_idle_timeout");
	}
}

static void srv_connected(struct hcli *h)
{
	h->state = HS_EXCHANGE;
	h->t_connected = loop_now(h->w->loop);
	h->resp_head_done = false;
	h->resp_done = false;
	memset(&h->scan, 0, sizeof(h->scan));
	loop_timer_set(h->w->loop, &h->t_be, h->l->conf->timeouts.server);
	ctr_add(&h->w->stats->servers[h->pool->index][h->be->srv->index].streams, 1);
	ctr_add(&h->w->stats->pools[h->pool->index].streams, 1);
	cli_run(h);
}

/* The TLS handshake with a server, after its TCP connect. */
static void srv_handshake(struct hcli *h)
{
	struct hsrv *b = h->be;
	char why[256], peer[ADDR_STRLEN];
	int rc;
	if (!b->s.tls) {
		const char *sni = h->c.tls ? tls_sni(h->c.tls) : NULL;
		b->handshaking = true;
		if (sni && h->pool->conf->tls.sni_from_client)
			b->sni = xstrdup(sni);
		b->s.tls = tls_client_conn(h->pool->conf->tls.rt, b->s.io.fd, sni,
					   &h->w->tls_sess[h->pool->index][b->srv->index]);
		if (!b->s.tls) {
			connect_failed(h, ENOMEM);
			return;
		}
	}
	rc = xport_tls_connect(&b->s, why, sizeof(why));
	if (rc == FL_AGAIN)
		return;
	if (rc < 0) {
		log_warn("listener %s: client %s: TLS to server %s of pool %s failed: %s",
			 h->l->conf->name, addr_format((struct sockaddr *)&h->peer, peer, sizeof(peer)),
			 b->srv->name, h->pool->conf->name, why);
		h->tls_failed = true;
		connect_failed(h, EPROTO);
		return;
	}
	b->handshaking = false;
	b->s.can_read = true;  /* the handshake may have read more */
	srv_connected(h);
}

/* The TCP connect to a server is done: TLS next, if the pool has it. */
static void srv_tcp_connected(struct hcli *h)
{
	h->tls_failed = false;
	if (h->pool->conf->tls.rt)
		srv_handshake(h);
	else
		srv_connected(h);
}

static void on_srv_event(struct loop *l, struct loop_io *io, uint32_t ev)
{
	struct hsrv *b = container_of(io, struct hsrv, s.io);
	struct hcli *h = b->owner;
	xport_note(&b->s, ev);
	if (!h)
		return;
	if (h->state == HS_CONNECT) {
		int err;
		if (b->handshaking) {
			srv_handshake(h);
			return;
		}
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		err = sock_connect_result(io->fd, ev);
		if (err)
			connect_failed(h, err);
		else
			srv_tcp_connected(h);
		return;
	}
	cli_run(h);
}

static void start_connect(struct hcli *h)
{
	struct worker *w = h->w;
	uint8_t key[16];
	struct lb_ctx ctx = { .tried = h->tried, .rng = &w->rng };
	struct lb_server *srv;
	struct hsrv *b;
	int fd, rc;

	if (h->hkey_len) {
		ctx.key = h->hkey;
		ctx.keylen = h->hkey_len;
	} else {
		ctx.keylen = addr_key((struct sockaddr *)&h->peer, key);
		ctx.key = key;
	}
	srv = NULL;
	if (h->sticky_srv >= 0) {
		struct lb_server *sv = &h->pool->lb.servers[h->sticky_srv];
		if (lb_server_usable(sv) && !lb_tried(&ctx, sv->index)) {
			srv = sv;
			h->set_cookie = false;  /* the client already holds the right one */
		} else {
			h->set_cookie = true;
		}
	}
	if (!srv)
		srv = lb_pick(&h->pool->lb, w->lbstate[h->pool->index], &ctx);
	if (!srv) {
		ctr_add(&w->stats->pools[h->pool->index].no_server, 1);
		ctr_add(&lctr(h)->no_server, 1);
		respond_error(h, 503, h->tries ? "connect_failed" : "no_server");
		cli_run(h);
		return;
	}
	h->tries++;
	h->srv_name = srv->name;
	atomic_fetch_add_explicit(&srv->active, 1, memory_order_relaxed);
	ctr_add(&w->stats->servers[h->pool->index][srv->index].active, 1);
	b = srv_take_idle(h, srv);
	if (b) {
		h->be = b;
		srv_connected(h);
		return;
	}
	b = xcalloc(1, sizeof(*b));
	b->w = w;
	b->pool = h->pool;
	b->srv = srv;
	b->owner = h;
	b->t_idle.fn = on_idle_timer;
	b->s.io.fn = on_srv_event;
	h->be = b;
	h->state = HS_CONNECT;
	fd = socket(srv->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	b->s.io.fd = fd;
	if (fd < 0) {
		b->s.io.fd = -1;
		free(b);
		h->be = NULL;
		atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
		ctr_sub(&w->stats->servers[h->pool->index][srv->index].active, 1);
		respond_error(h, 503, "resource_limit");
		cli_run(h);
		return;
	}
	sock_congestion(fd, h->pool->conf->tcp_congestion);
	rc = sock_connect(w->loop, &b->s.io, (struct sockaddr *)&srv->addr, srv->addrlen);
	if (rc < 0 && rc != FL_AGAIN) {
		connect_failed(h, -rc);
		return;
	}
	loop_timer_set(w->loop, &h->t_be, h->l->conf->timeouts.connect);
	if (rc == 0) {
		b->s.can_write = true;
		srv_tcp_connected(h);
	}
}

/* ---- the exchange -------------------------------------------------------- */

/* Send the request head, then request body bytes from cin. Returns false
 * when the stream was closed. */
static bool pump_request(struct hcli *h)
{
	struct hsrv *b = h->be;
	ssize_t n;

	while (h->bout && h->bout->head < h->bout->tail) {
		n = send_some(&b->s, h->bout->data + h->bout->head, h->bout->tail - h->bout->head);
		if (n == FL_AGAIN)
			return true;
		if (n < 0)
			return true;  /* seen as a server failure by pump_response */
		h->bout->head += (uint32_t)n;
	}
	while (!h->req_done) {
		size_t avail = h->cin ? h->cin->tail - h->cin->head : 0;
		size_t take = 0;
		if (h->up_pipe && h->up_pipe->fill) {
			n = xport_splice_out(&b->s, h->up_pipe);
			if (n == FL_AGAIN || n < 0)
				return true;  /* a failure is seen as the server's by pump_response */
			continue;
		}
		if (h->up_pipe && h->req_left == 0) {
			h->req_done = true;  /* the last spliced bytes reached the server */
			loop_timer_stop(h->w->loop, &h->t_cli);
			break;
		}
		if (avail == 0) {
			if (!h->cin)
				h->cin = buf_get_large(&h->w->bufs);
			if (splice_request_body(h) && have_pipe(h, &h->up_pipe, &h->bulk_up)) {
				n = xport_splice_in(&h->c, h->up_pipe, (size_t)h->req_left);
				if (n > 0) {
					h->req_sent_body = true;
					h->bytes_in += (uint64_t)n;
					h->req_left -= (uint64_t)n;
				}
			} else {
				h->cin->head = h->cin->tail = 0;
				n = read_into(&h->c, h->cin);
				/* A body read that fills the buffer: a large body, which
				 * goes on by splice where both sides allow it. */
				if (n == (ssize_t)h->cin->cap && h->req_body == H1_BODY_LENGTH)
					h->bulk_up = true;
			}
			if (n == 0) {
				cli_close(h, "client_closed_in_body");
				return false;
			}
			if (n < 0) {
				if (n == FL_AGAIN)
					return true;
				cli_close(h, "client_reset");
				return false;
			}
			loop_timer_set(h->w->loop, &h->t_cli, h->l->conf->timeouts.client_idle);
			continue;
		}
		if (h->req_body == H1_BODY_LENGTH) {
			take = avail < h->req_left ? avail : (size_t)h->req_left;
		} else {
			const char *why;
			int64_t r = h1_chunked_feed(&h->req_ck, h->cin->data + h->cin->head, avail, &why);
			if (r < 0) {
				log_debug("listener %s: bad chunked request body: %s", h->l->conf->name, why);
				srv_release(h, false);
				if (!h->resp_head_done) {
					respond_error(h, 400, "bad_request_body");
					return true;
				}
				cli_close(h, "bad_request_body");
				return false;
			}
			take = (size_t)r;
			if (h->l->conf->limits.body && h->req_ck.data_bytes > h->l->conf->limits.body) {
				srv_release(h, false);
				if (!h->resp_head_done && !h->t_first) {
					respond_error(h, 413, "body_too_large");
					return true;
				}
				cli_close(h, "body_too_large");
				return false;
			}
		}
		n = send_some(&b->s, h->cin->data + h->cin->head, take);
		if (n == FL_AGAIN || n < 0) {
			/* Undo the chunked parser's view: feed again later from here.
			 * (It consumed `take` bytes; only a full send keeps them.) */
			if (h->req_body == H1_BODY_CHUNKED && take) {
				/* Re-feeding is not possible: keep the bytes and send them
				 * before anything else next time. */
				if (!h->bout)
					h->bout = buf_get_large(&h->w->bufs);
				if (h->bout->head == h->bout->tail)
					h->bout->head = h->bout->tail = 0;
				append(h->bout, h->cin->data + h->cin->head, take);
				h->cin->head += (uint32_t)take;
				h->bytes_in += take;
				h->req_sent_body = true;
				if (h->req_ck.done)
					h->req_done = true;
			}
			return true;
		}
		h->req_sent_body = true;
		h->cin->head += (uint32_t)n;
		h->bytes_in += (uint64_t)n;
		if (h->req_body == H1_BODY_LENGTH) {
			h->req_left -= (uint64_t)n;
			if (h->req_left == 0)
				h->req_done = true;
			if (h->req_done)  /* now only the server's answer is awaited */
				loop_timer_stop(h->w->loop, &h->t_cli);
		} else if ((size_t)n < take) {
			/* Partial send of validated chunked bytes: keep the rest. */
			if (!h->bout)
				h->bout = buf_get_large(&h->w->bufs);
			if (h->bout->head == h->bout->tail)
				h->bout->head = h->bout->tail = 0;
			append(h->bout, h->cin->data + h->cin->head, take - (size_t)n);
			h->cin->head += (uint32_t)(take - (size_t)n);
			h->bytes_in += take - (size_t)n;
			if (h->req_ck.done)
				h->req_done = true;
			return true;
		} else if (h->req_ck.done) {
			h->req_done = true;
			loop_timer_stop(h->w->loop, &h->t_cli);
		}
	}
	return true;
}

/* Write the response head for the client into cout. Returns false when it
 * does not fit. */
static bool build_response(struct hcli *h, const struct h1_msg *m)
{
	struct buf *o;
	append_overflow = false;
	if (h->be && m->status >= 500 && h->pool->conf->passive.http_5xx)
		lb_passive_failure(&h->pool->lb, h->be->srv, loop_now(h->w->loop));
	else if (h->be && m->status >= 200)
		lb_passive_success(h->be->srv);
	if (!h->cout)
		h->cout = buf_get_large(&h->w->bufs);
	o = h->cout;
	append(o, LIT("HTTP/1.1 "));
	append_u64(o, (uint64_t)m->status);
	append(o, LIT(" "));
	append(o, m->reason, m->reason_len);
	append(o, LIT("\r\n"));
	const struct conf_header_ops *ops = h->route ? &h->route->conf->resp_headers : NULL;
	for (uint32_t i = 0; i < m->nfields; i++) {
		const struct h1_field *f = &m->fields[i];
		if (m->hop[i] || ieq(f->name, f->name_len, "content-length") ||
		    ieq(f->name, f->name_len, "transfer-encoding") ||
		    (ieq(f->name, f->name_len, "upgrade") && !(m->status == 101 && h->ws)))
			continue;
		if (m->status >= 200 && ops_drop(ops, f))
			continue;
		append_field(o, f->name, f->name_len, f->value, f->value_len);
	}
	if (m->status >= 200) {
		ops_append(o, ops);
		if (h->set_cookie && h->be)
			appendf(o, "Set-Cookie: %s=%s; Path=/; HttpOnly\r\n", h->pool->conf->sticky.cookie,
				h->pool->sticky_ids[h->be->srv->index]);
		if (m->body == H1_BODY_LENGTH || (m->body == H1_BODY_NONE && m->status != 204 &&
						   m->status != 304 && !h->head_req))
			append_length(o, m->content_length);
		else if (m->body == H1_BODY_CHUNKED && !h->dechunk)
			append(o, LIT("Transfer-Encoding: chunked\r\n"));
		else if (m->body == H1_BODY_NONE && h->head_req) {
			/* HEAD: pass the server's length through unchanged. */
			int cl = h1_find_field(m, "content-length", 14, 0);
			if (cl >= 0)
				append_field(o, LIT("Content-Length"), m->fields[cl].value, m->fields[cl].value_len);
		}
		if (h->close_after)
			append(o, LIT("Connection: close\r\n"));
		else if (h->version == 10)
			append(o, LIT("Connection: keep-alive\r\n"));
	} else if (m->status == 101) {
		append(o, LIT("Connection: Upgrade\r\n"));
	}
	append(o, LIT("\r\n"));
	return !append_overflow;
}

/* Queue the response head for the client, or, when it does not fit, drop
 * what was written of it and answer 502 instead. */
static bool emit_response_head(struct hcli *h, const struct h1_msg *m)
{
	uint32_t mark = h->cout ? h->cout->tail : 0;
	if (build_response(h, m))
		return true;
	h->cout->tail = mark;
	log_warn("listener %s: server %s sent a response head too large to forward",
		 h->l->conf->name, h->be->srv->name);
	srv_release(h, false);
	respond_error(h, 502, "bad_response");
	return false;
}

/* Whether the rest of this response body goes by splice(): a large body
 * (see h->bulk) sent as it is, between plain TCP sockets, unless the
 * listener says `forwarding: buffer`. */
static bool splice_body(const struct hcli *h)
{
	return h->bulk && h->resp_head_done && !h->dechunk && splice_allowed(h) &&
	       (h->resp_body == H1_BODY_LENGTH || h->resp_body == H1_BODY_CLOSE);
}

/* Move body bytes from the server socket into the (empty) pipe h->pipe,
 * never past the body's end. Returns bytes moved, 0 at EOF, FL_AGAIN or
 * -errno. */
static ssize_t splice_from_server(struct hcli *h)
{
	size_t want = h->resp_body == H1_BODY_LENGTH ? (size_t)h->resp_left : SIZE_MAX;
	ssize_t n = xport_splice_in(&h->be->s, h->pipe, want);
	if (n == 0) {
		h->be->s.eof = true;
		h->be->s.can_read = false;
	}
	if (n <= 0)
		return n;
	h->bytes_out += (uint64_t)n;
	if (h->resp_body == H1_BODY_LENGTH) {
		h->resp_left -= (uint64_t)n;
		if (h->resp_left == 0)
			h->resp_done = true;
	}
	loop_timer_set(h->w->loop, &h->t_be, h->l->conf->timeouts.server_idle);
	return n;
}

/* Move response bytes from the server to the client. Returns false when
 * the stream was closed. */
static bool pump_response(struct hcli *h)
{
	struct hsrv *b = h->be;
	ssize_t n;

	for (;;) {
		bool bin_has = h->bin && h->bin->head < h->bin->tail;
		bool cout_has = h->cout && h->cout->head < h->cout->tail;
		/* Turn everything already read into bytes for the client before
		 * sending, so that a head and its body leave in one send. */
		if (cout_has && (!bin_has || h->resp_done || buf_room(h->cout) == 0)) {
			n = send_some(&h->c, h->cout->data + h->cout->head, h->cout->tail - h->cout->head);
			if (n == FL_AGAIN)
				return true;
			if (n < 0) {
				cli_close(h, "client_reset");
				return false;
			}
			h->cout->head += (uint32_t)n;
			continue;
		}
		if (!cout_has && h->pipe && h->pipe->fill) {
			n = xport_splice_out(&h->c, h->pipe);
			if (n == FL_AGAIN)
				return true;
			if (n < 0) {
				cli_close(h, "client_reset");
				return false;
			}
			continue;
		}
		if (h->resp_done)
			return true;
		if (!h->bin)
			h->bin = buf_get_large(&h->w->bufs);
		if (h->bin->head == h->bin->tail && !cout_has && splice_body(h) &&
		    have_pipe(h, &h->pipe, &h->bulk)) {
			n = splice_from_server(h);
			if (n == FL_AGAIN)
				return true;
			if (n > 0)
				continue;
			if (n == 0 && h->resp_body == H1_BODY_CLOSE) {
				h->resp_done = true;
				h->close_after = true;
				return true;
			}
			srv_release(h, false);
			cli_close(h, n == 0 ? "server_closed" : "server_reset");
			return false;
		}
		if (h->bin->head == h->bin->tail) {
			h->bin->head = h->bin->tail = 0;
			n = read_into(&b->s, h->bin);
			if (n == FL_AGAIN)
				return true;
			/* A body read that fills the buffer: a large body, which
			 * goes on by splice where both sides allow it. */
			if (n == (ssize_t)h->bin->cap && h->resp_head_done)
				h->bulk = true;
			if (n <= 0) {
				if (n == 0 && h->resp_head_done && h->resp_body == H1_BODY_CLOSE) {
					h->resp_done = true;
					h->close_after = true;
					return true;
				}
				/* The server went away before finishing its answer. */
				bool nothing_yet = !h->resp_head_done && h->bin->tail == 0;
				bool reused = b->requests > 0;
				uint32_t idx = b->srv->index;
				srv_release(h, false);
				/* Safe to send again only when no body byte was consumed
				 * and the request is idempotent: the server may have acted
				 * on it. A reused connection the server had closed meanwhile
				 * (a race every keep-alive pool has) gets one more try. */
				if (nothing_yet && !h->req_sent_body && h->idempotent &&
				    h->bout && h->tries <= (uint64_t)h->pool->conf->retries + (reused ? 1 : 0)) {
					h->bout->head = 0;
					if (!reused)
						mark_tried(h, idx);
					start_connect(h);
					return false;
				}
				if (nothing_yet && (!h->cout || h->cout->head == h->cout->tail)) {
					respond_error(h, 502, n == 0 ? "server_closed" : "server_reset");
					return true;
				}
				cli_close(h, n == 0 ? "server_closed" : "server_reset");
				return false;
			}
			if (!h->t_first)
				h->t_first = loop_now(h->w->loop);
			loop_timer_set(h->w->loop, &h->t_be, h->resp_head_done ?
				       h->l->conf->timeouts.server_idle : h->l->conf->timeouts.server);
			continue;
		}
		if (!h->resp_head_done) {
			struct h1_msg *m = h->w->h1msg;
			const char *why = NULL;
			int rc = h1_parse_response(h->bin->data + h->bin->head, h->bin->tail - h->bin->head,
						   &h->scan, NULL, h->method, (uint32_t)strlen(h->method), m, &why);
			if (rc == H1_NEED_MORE) {
				if (buf_room(h->bin) == 0 && h->bin->head == 0)
					rc = -502;
				else {
					if (buf_room(h->bin) == 0)
						buf_compact(h->bin);
					/* read more */
					n = read_into(&b->s, h->bin);
					if (n == FL_AGAIN)
						return true;
					if (n <= 0) {
						srv_release(h, false);
						respond_error(h, 502, "bad_response");
						return true;
					}
					continue;
				}
			}
			if (rc < 0) {
				log_warn("listener %s: server %s sent an invalid response: %s", h->l->conf->name,
					 b->srv->name, why ? why : "too large");
				srv_release(h, false);
				respond_error(h, 502, "bad_response");
				return true;
			}
			if (m->status < 200) {
				/* 1xx: forwarded as is, then the real answer follows. */
				if (m->status == 101) {
					if (!h->ws) {
						srv_release(h, false);
						respond_error(h, 502, "unexpected_upgrade");
						return true;
					}
					/* Switching protocols: the head goes to the client,
					 * then both connections become one tunnel. */
					h->status = 101;
					if (!emit_response_head(h, m))
						return true;
					h->bin->head += (uint32_t)rc;
					h->bytes_out += (uint64_t)h->cout->tail - h->cout->head;
					put_buf(h->w, &h->bout);
					h->resp_head_done = h->resp_done = h->upgraded = true;
					continue;
				}
				/* An HTTP/1.0 client is sent no 1xx (RFC 9110 15.2). */
				if (h->version != 10 && !emit_response_head(h, m))
					return true;
				h->bin->head += (uint32_t)rc;
				memset(&h->scan, 0, sizeof(h->scan));
				continue;
			}
			h->status = m->status;
			h->resp_body = m->body;
			h->resp_left = m->content_length;
			memset(&h->resp_ck, 0, sizeof(h->resp_ck));
			if (m->body == H1_BODY_CLOSE || (m->flags & H1_F_CONN_CLOSE))
				h->close_after = h->close_after || m->body == H1_BODY_CLOSE;
			/* An HTTP/1.0 client cannot read chunked coding: it gets the
			 * data alone, delimited by the close of its connection. */
			h->dechunk = h->version == 10 && m->body == H1_BODY_CHUNKED;
			if (h->dechunk)
				h->close_after = true;
			if (m->flags & H1_F_CONN_CLOSE)
				b->s.eof = true; /* the server will close: do not pool it */
			if (!emit_response_head(h, m))
				return true;
			put_buf(h->w, &h->bout);
			h->resp_head_done = true;
			h->bin->head += (uint32_t)rc;
			h->bytes_out += (uint64_t)h->cout->tail - h->cout->head;
			if (m->body == H1_BODY_NONE || (m->body == H1_BODY_LENGTH && m->content_length == 0)) {
				h->resp_done = true;
			}
			loop_timer_set(h->w->loop, &h->t_be, h->l->conf->timeouts.server_idle);
			continue;
		}
		/* body bytes from bin to the client */
		{
			size_t avail = h->bin->tail - h->bin->head, take, data;
			if (!h->cout)
				h->cout = buf_get_large(&h->w->bufs);
			if (h->cout->head == h->cout->tail)
				h->cout->head = h->cout->tail = 0;
			if (avail > buf_room(h->cout))
				avail = buf_room(h->cout);
			const char *p = h->bin->data + h->bin->head;
			if (h->resp_body == H1_BODY_LENGTH) {
				take = data = avail < h->resp_left ? avail : (size_t)h->resp_left;
			} else if (h->resp_body == H1_BODY_CHUNKED) {
				const char *why;
				int64_t r = h->dechunk ? h1_chunked_decode(&h->resp_ck, p, avail, &data, &why)
						       : h1_chunked_feed(&h->resp_ck, p, avail, &why);
				if (r < 0) {
					log_warn("listener %s: server %s sent a bad chunked body: %s",
						 h->l->conf->name, b->srv->name, why);
					srv_release(h, false);
					cli_close(h, "bad_response_body");
					return false;
				}
				take = (size_t)r;
				if (!h->dechunk)
					data = take;
			} else {
				take = data = avail;
			}
			/* Queue the bytes in cout (one send path, and the chunked
			 * parser's view stays consistent); decoded framing is
			 * dropped. When cout is empty and all of bin goes as it is,
			 * the two buffers trade places instead of copying. */
			if (h->cout->head == h->cout->tail && data == take &&
			    take == h->bin->tail - h->bin->head) {
				struct buf *t = h->cout;
				h->cout = h->bin;
				h->bin = t;
				h->bin->head = h->bin->tail = 0;
			} else {
				append(h->cout, p, data);
				h->bin->head += (uint32_t)take;
			}
			h->bytes_out += data;
			if (h->resp_body == H1_BODY_LENGTH) {
				h->resp_left -= take;
				if (h->resp_left == 0)
					h->resp_done = true;
			} else if (h->resp_body == H1_BODY_CHUNKED && h->resp_ck.done) {
				h->resp_done = true;
			}
		}
	}
}

/* ---- the client side ----------------------------------------------------- */

static void log_request(struct hcli *h, const char *cause)
{
	uint64_t now = loop_now(h->w->loop);
	struct ctr_route *rc = h->route ?
		&h->w->stats->routes[h->l->index][h->route - h->l->routes] : NULL;
	stats_http_response(lctr(h), rc, h->status, h->t_start ? now - h->t_start : 0);
	if (h->tries > 1)
		ctr_add(&lctr(h)->retries, h->tries - 1);
	ctr_add(&lctr(h)->bytes_in, h->bytes_in);
	ctr_add(&lctr(h)->bytes_out, h->bytes_out);
	if (h->be) {
		struct ctr_server *cs = &h->w->stats->servers[h->pool->index][h->be->srv->index];
		if (h->status >= 100 && h->status < 600)
			ctr_add(&cs->status[h->status / 100 - 1], 1);
		ctr_add(&cs->bytes_in, h->bytes_in);
		ctr_add(&cs->bytes_out, h->bytes_out);
		ctr_add(&h->w->stats->pools[h->pool->index].bytes_in, h->bytes_in);
		ctr_add(&h->w->stats->pools[h->pool->index].bytes_out, h->bytes_out);
	}
	struct http_rec r = {
		.client = (struct sockaddr *)&h->peer,
		.listener = h->l->conf->name,
		.route = h->route ? h->route->name : NULL,
		.pool = h->pool ? h->pool->conf->name : NULL,
		.server = h->be ? h->be->srv->name : h->srv_name,
		.method = h->method[0] ? h->method : NULL,
		.target = h->target[0] ? h->target : NULL,
		.version = h->version ? h->version : 11,
		.status = h->status,
		.bytes_in = h->bytes_in,
		.bytes_out = h->bytes_out,
		.request_ms = h->t_head ? (int64_t)(h->t_head - h->t_start) : -1,
		.connect_ms = h->t_connected ? (int64_t)(h->t_connected - h->t_head) : -1,
		.ttfb_ms = h->t_first ? (int64_t)(h->t_first - h->t_start) : -1,
		.total_ms = (int64_t)(now - h->t_start),
		.retries = h->tries > 1 ? h->tries - 1 : 0,
		.cause = cause,
	};
	log_http(&r);
}

static void reset_request(struct hcli *h)
{
	h->route = NULL;
	h->pool = NULL;
	free_tried(h);
	h->tries = 0;
	h->status = 0;
	h->bytes_in = h->bytes_out = 0;
	h->t_start = h->t_head = h->t_connected = h->t_first = 0;
	h->method[0] = h->target[0] = '\0';
	h->srv_name = NULL;
	h->cause = NULL;
	h->req_sent_body = false;
	h->resp_head_done = h->resp_done = h->dechunk = h->bulk = h->bulk_up = false;
	memset(&h->scan, 0, sizeof(h->scan));
}

/* The response was delivered completely. */
static void finish_request(struct hcli *h)
{
	bool reusable = h->req_done && h->resp_done && !h->close_after;
	if (h->be) {
		h->be->requests++;
		log_request(h, h->cause ? h->cause : "done");
		srv_release(h, h->req_done && h->resp_done);
	} else {
		log_request(h, h->cause ? h->cause : "done");
	}
	put_buf(h->w, &h->bout);
	put_buf(h->w, &h->bin);
	put_pipe(h);
	loop_timer_stop(h->w->loop, &h->t_be);
	if (!reusable) {
		/* Half-close first so the client reads the answer before any
		 * reset caused by bytes it sent that will not be read. */
		xport_shutdown_wr(&h->c);
		cli_close(h, NULL);
		return;
	}
	reset_request(h);
	h->state = HS_HEAD;
	if (h->cout && h->cout->head == h->cout->tail)
		put_buf(h->w, &h->cout);
	if (h->cin && h->cin->head == h->cin->tail)
		put_buf(h->w, &h->cin);
	loop_timer_set(h->w->loop, &h->t_cli, h->l->conf->timeouts.keepalive);
}

/* Read and parse a request head. Returns false when nothing more can be
 * done now (waiting, or closed). */
static bool read_head(struct hcli *h)
{
	const struct conf_listener *lc = h->l->conf;
	struct h1_limits lim = {
		(uint32_t)lc->limits.request_line, (uint32_t)lc->limits.head, (uint32_t)lc->limits.fields,
	};
	struct h1_msg *m = h->w->h1msg;
	const char *why = NULL;
	int rc;

	for (;;) {
		if (h->cin && h->cin->head < h->cin->tail) {
			if (!h->t_start) {
				h->t_start = loop_now(h->w->loop);
				loop_timer_set(h->w->loop, &h->t_cli, lc->timeouts.header);
			}
			rc = h1_parse_request(h->cin->data + h->cin->head, h->cin->tail - h->cin->head,
					      &h->scan, &lim, m, &why);
			if (rc > 0 && (m->flags & H1_F_UNDERSCORE) &&
			    lc->underscore_fields == US_REJECT) {
				rc = -400;
				why = "underscore in a field name (underscore_fields: reject)";
			}
			if (rc > 0) {
				ctr_add(&lctr(h)->requests, 1);
				handle_request(h, m, rc);
				return h->state != HS_CLOSED;
			}
			if (rc < 0) {
				log_debug("listener %s: request refused with %d: %s", lc->name, -rc,
					  why ? why : "");
				snprintf(h->target, sizeof(h->target), "-");
				respond_error(h, -rc, "bad_request");
				h->version = 11;
				return true;
			}
		}
		if (!h->cin)
			h->cin = buf_get_large(&h->w->bufs);
		if (h->cin->head > 0 && buf_room(h->cin) < 4096)
			buf_compact(h->cin);
		ssize_t n = read_into(&h->c, h->cin);
		if (n == FL_AGAIN) {
			if (h->cin->head == h->cin->tail)
				put_buf(h->w, &h->cin);
			return false;
		}
		if (n <= 0) {
			/* Closed between requests is the normal end of keep-alive. */
			cli_close(h, h->t_start ? (n == 0 ? "client_closed_in_head" : "client_reset") : NULL);
			return false;
		}
	}
}

static void cli_run(struct hcli *h)
{
	for (int guard = 0; guard < 64 && h->state != HS_CLOSED; guard++) {
		switch (h->state) {
		case HS_HEAD:
			if (!read_head(h))
				return;
			break;
		case HS_CONNECT:
			return;
		case HS_EXCHANGE:
			if (!pump_request(h) || h->state != HS_EXCHANGE)
				break;
			if (!pump_response(h))
				return;
			if (h->state != HS_EXCHANGE)
				break;
			if (h->upgraded && (!h->cout || h->cout->head == h->cout->tail)) {
				upgrade_to_tunnel(h);
				return;
			}
			if (h->resp_done && h->req_done && cli_out_empty(h)) {
				finish_request(h);
				break;
			}
			if (h->resp_done && !h->req_done) {
				/* The server answered before the body was complete: the
				 * connection cannot be reused by either side. */
				h->close_after = true;
				if (cli_out_empty(h)) {
					finish_request(h);
					break;
				}
			}
			return;
		case HS_FLUSH:
			while (h->cout && h->cout->head < h->cout->tail) {
				ssize_t n = send_some(&h->c, h->cout->data + h->cout->head,
						      h->cout->tail - h->cout->head);
				if (n == FL_AGAIN)
					return;
				if (n < 0) {
					cli_close(h, "client_reset");
					return;
				}
				h->cout->head += (uint32_t)n;
			}
			if (h->be)
				srv_release(h, false);
			if (h->close_after || !h->req_done) {
				log_request(h, h->cause ? h->cause : "done");
				/* Half-close first so the client reads the answer before
				 * any reset caused by unread bytes. */
				xport_shutdown_wr(&h->c);
				cli_close(h, NULL);
				return;
			}
			finish_request(h);
			break;
		}
	}
}

/* Take a client off the worker's lists; its memory is freed after this
 * loop turn (events of the turn may still reach it). Descriptors, counts
 * and the connection slot are the caller's business. */
static void retire_client(struct hcli *h)
{
	struct http_worker *x = hw(h->w);
	h->state = HS_CLOSED;
	h->c.io.fn = noop_event;
	free_tried(h);
	if (h->prev)
		h->prev->next = h->next;
	else
		x->clients = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->w->nstreams--;
	h->dead_next = x->dead;
	x->dead = h;
}

/* Hand the client and server sockets to the stream engine as a tunnel.
 * The connection slot, the listener's and the server's active counts go
 * with them; this side only retires its objects. */
static void upgrade_to_tunnel(struct hcli *h)
{
	struct worker *w = h->w;
	struct hsrv *b = h->be;
	struct buf *up = h->cin, *down = h->bin;

	log_request(h, "upgraded");
	if (up && up->head == up->tail)
		put_buf(w, &up);
	if (down && down->head == down->tail)
		put_buf(w, &down);
	h->cin = h->bin = NULL;
	put_buf(w, &h->cout);
	put_buf(w, &h->bout);
	put_pipe(h);
	loop_timer_del(w->loop, &h->t_cli);
	loop_timer_del(w->loop, &h->t_be);
	b->closed = true;
	b->s.io.fn = noop_event;
	h->c.io.fn = noop_event;
	/* The stream takes both sockets, with whatever is written to them but
	 * not sent yet (the 101, say); these objects keep fd -1. */
	stream_adopt(w, h->l, &h->peer, &h->c, &b->s, h->pool, b->srv, up, down,
		     h->l->conf->timeouts.tunnel);
	srv_free_later(b);
	h->be = NULL;
	retire_client(h);
}

static void cli_handshake(struct hcli *h)
{
	const struct conf_tls_server *t = &h->l->conf->tls;
	int rc = xport_tls_accept(&h->c, h->w, h->l, &h->peer, &h->sniffed);
	if (rc == FL_AGAIN)
		return;
	if (rc < 0) {
		cli_close(h, NULL);
		return;
	}
	if (t->client_auth.loc.line && t->client_auth.mode != CA_NONE) {
		h->cert = xmalloc(sizeof(*h->cert));
		tls_peer_info(h->c.tls, h->cert);
	}
	h->state = HS_HEAD;
	h->c.can_read = true;  /* a request may have come with the handshake */
	loop_timer_set(h->w->loop, &h->t_cli, h->l->conf->timeouts.header);
	cli_run(h);
}

static void on_cli_event(struct loop *l, struct loop_io *io, uint32_t ev)
{
	struct hcli *h = container_of(io, struct hcli, c.io);
	xport_note(&h->c, ev);
	if (h->state == HS_HANDSHAKE) {
		cli_handshake(h);
		return;
	}
	if (h->state == HS_CONNECT && (ev & EPOLLERR)) {
		cli_close(h, "client_reset");
		return;
	}
	cli_run(h);
}

static void on_cli_timer(struct loop *l, struct loop_timer *t)
{
	struct hcli *h = container_of(t, struct hcli, t_cli);
	if (h->state == HS_HANDSHAKE) {
		ctr_add(&lctr(h)->tls_failed[TLS_FAIL_TIMEOUT], 1);
		cli_close(h, NULL);
		return;
	}
	if (h->state == HS_HEAD && !h->t_start) {
		cli_close(h, NULL);  /* keep-alive idle: a quiet end */
		return;
	}
	if (h->state == HS_HEAD) {
		respond_error(h, 408, "header_timeout");
		cli_run(h);
		return;
	}
	if ((h->state == HS_EXCHANGE || h->state == HS_CONNECT) && h->req_done)
		return;  /* waiting for the server: its timers govern */
	if (h->state == HS_EXCHANGE && !h->req_done && !h->resp_head_done) {
		srv_release(h, false);
		respond_error(h, 408, "client_body_timeout");
		cli_run(h);
		return;
	}
	cli_close(h, "client_idle_timeout");
}

static void cli_close(struct hcli *h, const char *cause)
{
	struct worker *w = h->w;

	if (h->state == HS_CLOSED)
		return;
	if (cause && (h->t_start || h->status))
		log_request(h, cause);
	h->state = HS_CLOSED;
	loop_timer_del(w->loop, &h->t_cli);
	loop_timer_del(w->loop, &h->t_be);
	if (h->be)
		srv_release(h, false);
	h->c.io.fn = noop_event;
	xport_close(&h->c, !cause || strcmp(cause, "client_reset") != 0);
	put_buf(w, &h->cin);
	put_buf(w, &h->cout);
	put_buf(w, &h->bout);
	put_buf(w, &h->bin);
	put_pipe(h);
	ctr_sub(&lctr(h)->active, 1);
	retire_client(h);
	worker_conn_closed(w, h->l);
}

void http_accept(struct worker *w, struct listener_rt *l, int fd,
		 const struct sockaddr_storage *peer, uint16_t port)
{
	struct http_worker *x = hw(w);
	struct hcli *h = xcalloc(1, sizeof(*h));

	if (!w->h1msg)
		w->h1msg = xmalloc(sizeof(struct h1_msg));
	h->w = w;
	h->l = l;
	h->peer = *peer;
	h->port = port;
	h->c.io.fd = fd;
	h->c.io.fn = on_cli_event;
	h->t_cli.fn = on_cli_timer;
	h->t_be.fn = on_be_timer;
	h->state = HS_HEAD;
	if (l->conf->protocol == PROTO_HTTPS) {
		h->state = HS_HANDSHAKE;
		h->c.tls = tls_server_conn(w->tls[l->index], fd);
	}
	h->next = x->clients;
	if (x->clients)
		x->clients->prev = h;
	x->clients = h;
	w->nstreams++;
	ctr_add(&lctr(h)->active, 1);
	if ((h->state == HS_HANDSHAKE && !h->c.tls) ||
	    loop_add(w->loop, &h->c.io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) < 0) {
		cli_close(h, "error");
		return;
	}
	loop_timer_set(w->loop, &h->t_cli, h->state == HS_HANDSHAKE ? l->conf->timeouts.handshake :
		       l->conf->timeouts.header);
}

void http_drain(struct worker *w)
{
	struct http_worker *x = w->http;
	struct hcli *h, *next;
	if (!x)
		return;
	for (h = x->clients; h; h = next) {
		next = h->next;
		if (h->state == HS_HEAD && !h->t_start)
			cli_close(h, NULL);
		else
			h->close_after = true;
	}
	for (size_t p = 0; p < w->gen->npools; p++)
		for (uint32_t s = 0; s < w->gen->pools[p].lb.nservers; s++)
			while (x->idle[p][s])
				srv_close(x->idle[p][s]);
}

void http_close_all(struct worker *w)
{
	struct http_worker *x = w->http;
	if (!x)
		return;
	while (x->clients)
		cli_close(x->clients, "shutdown");
	http_drain(w);
}

void http_reap(struct worker *w)
{
	struct http_worker *x = w->http;
	if (!x)
		return;
	while (x->dead) {
		struct hcli *h = x->dead;
		x->dead = h->dead_next;
		free(h->cert);
		free(h);
	}
	while (x->dead_srv) {
		struct hsrv *b = x->dead_srv;
		x->dead_srv = b->dead_next;
		free(b->sni);
		free(b);
	}
}

void http_worker_free(struct worker *w)
{
	struct http_worker *x = w->http;
	if (!x)
		return;
	http_close_all(w);
	http_reap(w);
	for (size_t p = 0; p < w->gen->npools; p++) {
		free(x->idle[p]);
		free(x->nidle[p]);
	}
	free(x->idle);
	free(x->nidle);
	free(x->pool_idle);
	if (x->md)
		pcre2_match_data_free(x->md);
	free(x);
	w->http = NULL;
	free(w->h1msg);
	w->h1msg = NULL;
}
