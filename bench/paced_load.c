/* paced_load: open-loop HTTP/1.1 load at a fixed request rate, for the
 * latency scenario (F) of bench/run.py.
 *
 * Request k is due at t0 + k / rate, whatever happened to the requests
 * before it (open loop: a slow response does not slow the senders down, as
 * it would in wrk). Each due request goes out on an idle keep-alive
 * connection (the one idle longest, so all connections carry traffic); if
 * every connection is busy it waits for one. Its latency is measured from the
 * time it was DUE to the time the last byte of its response arrived, so time
 * spent waiting for a connection or for this program to wake up counts
 * (no "coordinated omission"); the time from the actual send is reported too.
 *
 *   gcc -O2 -o paced_load bench/paced_load.c
 *   paced_load -p PORT -r RATE -d SECONDS [-c CONNS] [-w WARMUP_S] [-a ADDR]
 *              [-H HOST] [-t DRAIN_S] [-s SAMPLES_FILE]
 *
 * Before the clock starts every connection is opened and sends one request
 * (so that proxies have their server connections); then requests are sent
 * for WARMUP_S + SECONDS seconds and only those due after the warm-up are
 * recorded. The run ends when every request is answered, or DRAIN_S seconds
 * after the last one was due (unanswered ones are counted, not recorded).
 * Writes one JSON object to stdout: counts, the achieved rate, and the
 * distributions (mean, p50, p90, p99, p99.9, max, in seconds) of latency
 * from due time, latency from send, and send lag (send - due); max_backlog
 * (most due requests waiting for a free connection at once) and
 * all_busy_events cover the recorded part only. With -s, every recorded
 * latency from due time is also written to SAMPLES_FILE, in nanoseconds, one
 * a line in the order the responses arrived (for pooling the samples of
 * several runs); the JSON on stdout is the same with or without it.
 * Responses must carry Content-Length
 * (no chunked) — true of the benchmark's backend and of every proxy in
 * front of it. Linux only (epoll_pwait2 for sub-millisecond waits).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROG "paced_load"
#include "load_common.h"

#define BUFSZ 16384

struct conn {
	int fd;
	int busy;        /* a request is outstanding */
	int64_t due;     /* when the outstanding request was due (ns) */
	int64_t sent;    /* when it was sent */
	size_t len;      /* bytes in buf */
	char buf[BUFSZ];
};

static struct sockaddr_in addr;
static char request[512];
static size_t reqlen;

static struct {
	long completed;   /* answered (recorded or not) */
	long recorded;
	long errors_closed;   /* connection closed or reset with a request outstanding */
	long errors_status;   /* status other than 2xx */
	long errors_parse;    /* unparseable response */
	long errors_send;
	long reconnects;
	long waited_events;   /* times a due request found every connection busy */
	long max_backlog;     /* most due requests waiting for a connection at once */
} st;

static int open_conn(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Length of the complete response at the start of buf, 0 if incomplete,
 * -1 if malformed. *status gets the status code, *close whether the server
 * said Connection: close. */
static long response_len(const char *buf, size_t len, int *status, int *close)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *p, *eol;
	long clen = -1;
	if (!end)
		return len >= BUFSZ ? -1 : 0;
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(buf + 9);
	*close = 0;
	for (p = memchr(buf, '\n', end - buf) + 1; p < end; p = eol + 2) {
		eol = memmem(p, end + 2 - p, "\r\n", 2);
		if (!eol)
			return -1;
		if (eol - p > 15 && strncasecmp(p, "content-length:", 15) == 0)
			clen = strtol(p + 15, NULL, 10);
		else if (eol - p > 11 && strncasecmp(p, "connection:", 11) == 0 &&
			 memmem(p, eol - p, "close", 5))
			*close = 1;
		else if (eol - p > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0)
			return -1;
	}
	if (clen < 0)
		clen = 0; /* only right for bodiless statuses; those count as errors anyway */
	if ((size_t)(end + 4 - buf) + clen > len)
		return (end + 4 - buf) + clen > BUFSZ ? -1 : 0;
	return (end + 4 - buf) + clen;
}

/* Blocking exchange of one request on a fresh connection (priming). */
static int prime(struct conn *c)
{
	int status, close;
	long n;
	if (send(c->fd, request, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen)
		return -1;
	c->len = 0;
	for (;;) {
		struct pollfd pfd = { c->fd, POLLIN, 0 };
		if (poll(&pfd, 1, 5000) != 1)
			return -1;
		ssize_t r = recv(c->fd, c->buf + c->len, BUFSZ - c->len, 0);
		if (r <= 0)
			return -1;
		c->len += r;
		n = response_len(c->buf, c->len, &status, &close);
		if (n < 0)
			return -1;
		if (n > 0) {
			c->len = 0;
			return close ? -1 : 0;
		}
	}
}

int main(int argc, char **argv)
{
	const char *ip = "127.0.0.1", *host = NULL, *samples = NULL;
	int port = 0, nconn = 50, opt;
	double rate = 0, duration = 0, warmup = 1, drain = 2;
	while ((opt = getopt(argc, argv, "a:p:r:d:c:w:H:t:s:")) != -1) {
		switch (opt) {
		case 'a': ip = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'c': nconn = atoi(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'H': host = optarg; break;
		case 't': drain = atof(optarg); break;
		case 's': samples = optarg; break;
		default:
			fprintf(stderr, "usage: paced_load -p PORT -r RATE -d SECONDS [-c CONNS] "
				"[-w WARMUP_S] [-a ADDR] [-H HOST] [-t DRAIN_S] "
				"[-s SAMPLES_FILE]\n");
			return 2;
		}
	}
	if (port <= 0 || rate <= 0 || duration <= 0 || nconn < 1 || warmup < 0) {
		fprintf(stderr, "paced_load: -p, -r and -d are required and must be positive\n");
		return 2;
	}
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons(port);
	if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
		fprintf(stderr, "paced_load: bad address %s\n", ip);
		return 2;
	}
	char hostbuf[300];
	if (!host) {
		snprintf(hostbuf, sizeof hostbuf, "%s:%d", ip, port);
		host = hostbuf;
	}
	reqlen = snprintf(request, sizeof request, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host);
	/* Timers as precise as the kernel allows (default slack is 50 us). */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	long total = (long)((warmup + duration) * rate);
	long nrec_max = (long)(duration * rate) + 1;
	if (total > 50000000) {
		fprintf(stderr, "paced_load: rate x time too large (%ld requests)\n", total);
		return 2;
	}
	int64_t *lat = malloc(sizeof *lat * nrec_max), *svc = malloc(sizeof *svc * nrec_max);
	int64_t *lag = malloc(sizeof *lag * nrec_max);
	struct conn *conns = calloc(nconn, sizeof *conns);
	int *idle = malloc(sizeof *idle * nconn); /* FIFO ring of idle connections */
	int ihead = 0, nidle = 0;
	if (!lat || !svc || !lag || !conns || !idle)
		die("malloc");

	int ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	for (int i = 0; i < nconn; i++) {
		conns[i].fd = open_conn();
		if (prime(&conns[i]) < 0) {
			fprintf(stderr, "paced_load: priming request %d failed\n", i);
			return 2;
		}
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
			die("epoll_ctl");
		idle[(ihead + nidle++) % nconn] = i;
	}

	const double interval = 1e9 / rate;
	const int64_t t0 = now_ns() + 1000000; /* 1 ms from now */
	const int64_t rec_from = t0 + (int64_t)(warmup * 1e9);
	const int64_t last_due = t0 + (int64_t)((double)(total - 1) * interval);
	const int64_t deadline = last_due + (int64_t)(drain * 1e9);
	long next = 0, outstanding = 0, nrec = 0;
	int c_waiting_marked = 0;
	struct epoll_event evs[64];

	for (;;) {
		int64_t now = now_ns();
		/* send everything that is due, while there are idle connections */
		while (next < total) {
			int64_t due = t0 + (int64_t)((double)next * interval);
			if (due > now)
				break;
			if (nidle == 0) {
				/* due requests waiting for a connection */
				long due_by_now = (long)((double)(now - t0) / interval) + 1;
				long backlog = (due_by_now < total ? due_by_now : total) - next;
				if (backlog > st.max_backlog && now >= rec_from)
					st.max_backlog = backlog;
				if (!c_waiting_marked && now >= rec_from) {
					st.waited_events++;
					c_waiting_marked = 1;
				}
				break;
			}
			c_waiting_marked = 0;
			int i = idle[ihead];
			ihead = (ihead + 1) % nconn;
			nidle--;
			struct conn *c = &conns[i];
			c->sent = now_ns();
			if (send(c->fd, request, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen) {
				st.errors_send++;
				close(c->fd);
				c->fd = open_conn();
				st.reconnects++;
				struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
				epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
				idle[(ihead + nidle++) % nconn] = i;
				next++;
				continue;
			}
			c->busy = 1;
			c->due = due;
			outstanding++;
			next++;
		}
		if (next >= total && outstanding == 0)
			break;
		if (now >= deadline)
			break;

		/* wait for a response, or until the next request is due */
		struct timespec ts, *tsp = NULL;
		int64_t until = deadline;
		if (next < total && nidle > 0) {
			int64_t due = t0 + (int64_t)((double)next * interval);
			if (due < until)
				until = due;
		}
		int64_t wait = until - now;
		if (wait < 0)
			wait = 0;
		ts.tv_sec = wait / 1000000000;
		ts.tv_nsec = wait % 1000000000;
		tsp = &ts;
		int n = epoll_pwait2(ep, evs, 64, tsp, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_pwait2");
		}
		now = now_ns();
		for (int e = 0; e < n; e++) {
			int i = evs[e].data.u32;
			struct conn *c = &conns[i];
			int broken = 0, status = 0, cl = 0, was_busy = c->busy;
			/* One read per event (epoll is level-triggered: anything left
			 * comes back as the next event); the response is small, so
			 * no second read just to see EAGAIN. */
			ssize_t r = recv(c->fd, c->buf + c->len, BUFSZ - c->len, 0);
			if (r > 0)
				c->len += r;
			else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
				broken = 1; /* EOF or error */
			long rl = 0;
			if (c->busy && c->len > 0) {
				rl = response_len(c->buf, c->len, &status, &cl);
				if (rl < 0) {
					st.errors_parse++;
					broken = 1;
				} else if (rl > 0) {
					c->busy = 0;
					outstanding--;
					st.completed++;
					if (status < 200 || status > 299)
						st.errors_status++;
					else if (c->due >= rec_from && nrec < nrec_max) {
						lat[nrec] = now - c->due;
						svc[nrec] = now - c->sent;
						lag[nrec] = c->sent - c->due;
						nrec++;
					}
					if ((size_t)rl != c->len) {
						st.errors_parse++; /* bytes after the response */
						broken = 1;
					}
					c->len = 0;
					if (cl)
						broken = 1;
				}
			} else if (!c->busy && c->len > 0) {
				st.errors_parse++; /* bytes nobody asked for */
				broken = 1;
			}
			if (broken) {
				if (c->busy) {
					st.errors_closed++;
					c->busy = 0;
					outstanding--;
				}
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->fd = open_conn();
				c->len = 0;
				st.reconnects++;
				struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
				epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
			}
			if (was_busy && !c->busy) /* idle again: to the back of the queue */
				idle[(ihead + nidle++) % nconn] = i;
		}
	}
	int64_t end = now_ns();
	long unsent = total - next;
	double measured = (double)(last_due - rec_from) / 1e9 + interval / 1e9;
	st.recorded = nrec;
	if (samples) { /* before print_dist sorts lat */
		FILE *f = fopen(samples, "w");
		if (!f)
			die(samples);
		for (long i = 0; i < nrec; i++)
			fprintf(f, "%lld\n", (long long)lat[i]);
		if (fclose(f) != 0)
			die(samples);
	}

	printf("{\n");
	printf("  \"rate\": %.3f, \"duration\": %.3f, \"warmup\": %.3f, \"connections\": %d,\n",
	       rate, duration, warmup, nconn);
	printf("  \"scheduled\": %ld, \"completed\": %ld, \"recorded\": %ld, "
	       "\"achieved_rate\": %.3f,\n", total, st.completed, nrec,
	       measured > 0 ? (double)nrec / measured : 0.0);
	printf("  \"unanswered\": %ld, \"unsent\": %ld, \"errors_closed\": %ld, "
	       "\"errors_status\": %ld, \"errors_parse\": %ld, \"errors_send\": %ld, "
	       "\"reconnects\": %ld,\n", outstanding, unsent, st.errors_closed,
	       st.errors_status, st.errors_parse, st.errors_send, st.reconnects);
	printf("  \"all_busy_events\": %ld, \"max_backlog\": %ld, \"wall\": %.3f,\n",
	       st.waited_events, st.max_backlog, (double)(end - t0) / 1e9);
	print_dist("latency", lat, nrec, 0);
	print_dist("service", svc, nrec, 0);
	print_dist("send_lag", lag, nrec, 1);
	printf("}\n");
	return 0;
}
