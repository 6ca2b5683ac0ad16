/* Send batching in the transport layer: writes staged in a batch reach the
 * peer whole and in order, whatever the kernel takes at each flush; bytes
 * it does not take go out before later ones, before a shutdown and, when
 * the socket is closed cleanly, from a lingering socket. Tested on a
 * socketpair with a small send buffer, so that the kernel soon refuses.
 * Also: the end of the input after the peer's FIN. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "loop.h"
#include "xport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIECE 1000

struct rig {
	struct loop *l;
	struct xport_batch *b;
	struct xport x;
	int peer;          /* the other end, read by the test */
	struct xport y;    /* a second socket written in the same turns, so */
	int ypeer;         /* that flushes go through io_uring (a lone send does not) */
	uint64_t ybytes;
	uint32_t next;     /* next byte value to write */
	uint32_t expect;   /* next byte value to read */
};

static void noop(struct loop *l, struct loop_io *io, uint32_t ev)
{
	(void)l;
	(void)io;
	(void)ev;
}

static int setup(void **state)
{
	static struct rig r;
	int sv[2], small = 4096;
	memset(&r, 0, sizeof(r));
	r.x.io.fd = r.peer = r.y.io.fd = r.ypeer = -1;
	*state = &r;
	r.l = loop_new();
	assert_non_null(r.l);
	r.b = xport_batch_new(r.l);
	if (!r.b) {
		/* The host refuses io_uring: workers send each write at once
		 * (tests/integration/test_send_batching.py checks they say so). */
		print_message("no send batching here: %s\n", strerror(errno));
		skip();
	}
	xport_batch_use(r.b);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	r.x.io.fd = sv[0];
	r.x.io.fn = noop;
	r.x.can_write = r.x.can_read = true;
	assert_int_equal(loop_add(r.l, &r.x.io, EPOLLIN | EPOLLOUT | EPOLLRDHUP), 0);
	r.peer = sv[1];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	r.y.io.fd = sv[0];
	r.y.io.fn = noop;
	r.y.can_write = true;
	r.ypeer = sv[1];
	return 0;
}

static int teardown(void **state)
{
	struct rig *r = *state;
	if (r->x.io.fd >= 0)
		xport_close(&r->x, false);
	if (r->y.io.fd >= 0)
		xport_close(&r->y, false);
	if (r->ypeer >= 0)
		close(r->ypeer);
	xport_batch_free(r->b);
	loop_free(r->l);
	if (r->peer >= 0)
		close(r->peer);
	return 0;
}

/* Write one piece of the numbered byte stream; returns what xport_send did. */
static ssize_t write_piece(struct rig *r, struct xport *x)
{
	unsigned char p[PIECE];
	for (int i = 0; i < PIECE; i++)
		p[i] = (unsigned char)(r->next + (uint32_t)i);
	ssize_t n = xport_send(x, p, sizeof(p));
	if (n > 0)
		r->next += (uint32_t)n;
	return n;
}

/* Write pieces, flushing the batch after each, until the transport says to
 * wait for room. Returns the bytes it took. */
static uint32_t fill(struct rig *r, struct xport *x)
{
	uint32_t before = r->next;
	for (int i = 0; i < 100000 && x->can_write; i++) {
		ssize_t n = write_piece(r, x);
		if (n == FL_AGAIN)
			break;
		assert_true(n > 0);
		assert_int_equal(xport_send(&r->y, "y", 1), 1);
		xport_batch_flush(r->b);
		char yb[4096];
		ssize_t k = recv(r->ypeer, yb, sizeof(yb), 0);
		assert_true(k > 0);
		r->ybytes += (uint64_t)k;
	}
	assert_false(x->can_write);
	return r->next - before;
}

/* Read what the peer has now (nonblocking) or, with `to_eof`, until the
 * end, checking that the bytes continue the numbered stream. Returns the
 * bytes read; at the end, *eof is set. */
static uint32_t drain(struct rig *r, bool to_eof, bool *eof)
{
	unsigned char buf[65536];
	uint32_t got = 0;
	*eof = false;
	for (;;) {
		ssize_t n = recv(r->peer, buf, sizeof(buf), to_eof ? 0 : MSG_DONTWAIT);
		if (n == 0) {
			*eof = true;
			return got;
		}
		if (n < 0) {
			assert_true(errno == EAGAIN);
			if (!to_eof)
				return got;
			/* the sender needs a turn of its loop to go on */
			assert_true(loop_run_once(r->l, 100) >= 0);
			continue;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != (unsigned char)(r->expect + (uint32_t)i))
				fail_msg("byte %u of the stream is %u, expected %u",
					 r->expect + (unsigned)i, buf[i],
					 (unsigned char)(r->expect + (uint32_t)i));
		r->expect += (uint32_t)n;
		got += (uint32_t)n;
		if (to_eof)
			(void)loop_run_once(r->l, 0);
	}
}

/* The kernel takes part of a flush: the rest is kept and goes first. */
static void test_refused_bytes_go_out_first(void **state)
{
	struct rig *r = *state;
	bool eof;
	uint32_t sent = fill(r, &r->x);
	assert_true(sent > 0);
	assert_true(r->x.pend_len > 0);
	/* the other socket got its byte of every turn */
	assert_int_equal(r->ybytes, sent / PIECE);
	for (int round = 0; round < 3; round++) {
		uint32_t got = drain(r, false, &eof);
		assert_true(got > 0);
		/* the room that reading made is announced by EPOLLOUT */
		assert_true(loop_run_once(r->l, 100) >= 0);
		xport_note(&r->x, EPOLLOUT);
		fill(r, &r->x);
	}
	drain(r, false, &eof);
	xport_note(&r->x, EPOLLOUT);
	drain(r, false, &eof);
	assert_int_equal(r->expect + r->x.pend_len, r->next);
}

/* Shut down for writing with bytes still kept: the FIN waits for them. */
static void test_shutdown_waits_for_kept_bytes(void **state)
{
	struct rig *r = *state;
	bool eof = false;
	fill(r, &r->x);
	write_piece(r, &r->x);   /* refused: kept behind the rest, or FL_AGAIN */
	xport_shutdown_wr(&r->x);
	while (!eof) {
		drain(r, false, &eof);
		xport_note(&r->x, EPOLLOUT);
		if (!eof) {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	assert_int_equal(r->expect, r->next);
	assert_int_equal(r->x.pend_len, 0);
}

/* A clean close with bytes kept: the socket lingers until they are out,
 * then the peer sees the end. */
static void test_clean_close_lingers_until_sent(void **state)
{
	struct rig *r = *state;
	bool eof;
	fill(r, &r->x);
	/* fill() stops when a flush came back short: those bytes are kept */
	assert_true(r->x.pend_len > 0);
	xport_shutdown_wr(&r->x);
	assert_true(r->x.shut_after);
	xport_close(&r->x, true);
	assert_int_equal(r->x.io.fd, -1);
	drain(r, true, &eof);
	assert_true(eof);
	assert_int_equal(r->expect, r->next);
}

/* An unclean close drops what was not sent; nothing is sent later. */
static void test_unclean_close_drops(void **state)
{
	struct rig *r = *state;
	bool eof;
	write_piece(r, &r->x);   /* staged, not flushed */
	xport_close(&r->x, false);
	xport_batch_flush(r->b); /* must not touch the closed transport */
	assert_int_equal(drain(r, true, &eof), 0);
	assert_true(eof);
}

/* Handing a transport to a new owner takes its staged and kept bytes along. */
static void test_move_keeps_staged_bytes(void **state)
{
	struct rig *r = *state;
	bool eof;
	static struct xport moved;
	write_piece(r, &r->x);
	xport_move(&moved, &r->x);
	assert_int_equal(r->x.io.fd, -1);
	memset(&r->x, 0xA5, sizeof(r->x));  /* the old object may be reused */
	r->x.io.fd = -1;
	write_piece(r, &moved);
	xport_batch_flush(r->b);
	assert_int_equal(drain(r, false, &eof), 2 * PIECE);
	xport_close(&moved, true);
	assert_int_equal(drain(r, true, &eof), 0);
	assert_true(eof);
	r->x.pend_len = 0;
	r->x.st_slot = 0;
}

/* At most XPORT_LINGER_MAX sockets linger; a clean close beyond that drops
 * the rest at once instead of holding one more socket. */
static void test_lingering_is_capped(void **state)
{
	struct rig *r = *state;
	enum { N = XPORT_LINGER_MAX + 1 };
	static struct xport xs[N];
	static int peers[N];
	static uint32_t sent[N];
	unsigned char piece[PIECE];
	struct rlimit rl;
	memset(piece, 'z', sizeof(piece));
	/* two descriptors per socketpair, and the rig's */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(rl.rlim_max >= 2 * N + 64);
	rl.rlim_cur = rl.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	for (int i = 0; i < N; i++) {
		int sv[2], small = 4096;
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		xs[i] = (struct xport){ .io = { .fd = sv[0], .fn = noop }, .can_write = true };
		assert_int_equal(loop_add(r->l, &xs[i].io, EPOLLIN | EPOLLOUT | EPOLLRDHUP), 0);
		peers[i] = sv[1];
		/* write until the kernel keeps some back; the peer reads nothing */
		while (xs[i].pend_len == 0) {
			ssize_t n = xport_send(&xs[i], piece, sizeof(piece));
			assert_true(n == PIECE || n == FL_AGAIN);
			if (n > 0)
				sent[i] += (uint32_t)n;
			xport_batch_flush(r->b);
		}
		xport_close(&xs[i], true);
		assert_int_equal(xs[i].io.fd, -1);
	}
	/* The first XPORT_LINGER_MAX still hold their sockets, so their peers
	 * see no end yet; the last one was closed with bytes left behind. */
	for (int i = 0; i < N; i++) {
		char buf[65536];
		uint32_t got = 0;
		ssize_t n;
		while ((n = read(peers[i], buf, sizeof(buf))) > 0)
			got += (uint32_t)n;
		if (i < XPORT_LINGER_MAX) {
			assert_int_equal(n, -1);
			assert_int_equal(errno, EAGAIN);
		} else {
			assert_int_equal(n, 0);
			assert_true(got < sent[i]);
		}
		close(peers[i]);
	}
}

/* A lingering socket whose peer never reads is given up after
 * XPORT_LINGER_MS (10 s): the peer sees the end then (not before), and the
 * bytes that could not go are dropped. */
static void test_lingering_ends_after_its_time(void **state)
{
	struct rig *r = *state;
	struct timespec t0, t;
	struct pollfd pf = { .fd = r->peer, .events = POLLRDHUP };
	const double at = XPORT_LINGER_MS / 1000.0;
	double waited = 0;
	fill(r, &r->x);
	assert_true(r->x.pend_len > 0);
	xport_close(&r->x, true);
	assert_int_equal(r->x.io.fd, -1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (waited < at + 2) {
		assert_true(loop_run_once(r->l, 100) >= 0);
		clock_gettime(CLOCK_MONOTONIC, &t);
		waited = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
		assert_true(poll(&pf, 1, 0) >= 0);
		if (pf.revents & (POLLHUP | POLLRDHUP))
			break;
	}
	if (waited < at - 0.1 || waited >= at + 2)
		fail_msg("the peer saw the end after %.2f s, not at %.0f s", waited, at);
	bool eof;
	drain(r, true, &eof);
	assert_true(eof);
	assert_true(r->expect < r->next);  /* what was left never went */
}

/* A peer that sent "hello" and then its FIN; x reads it, as epoll said
 * with events ev. */
static int fin_pair(struct xport *x, uint32_t ev, size_t len)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(write(sv[1], "hello", len), (ssize_t)len);
	assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
	*x = (struct xport){ .io = { .fd = sv[0] } };
	xport_note(x, ev);
	return sv[1];
}

/* Nothing can follow a FIN: once a read after it comes back short, the
 * next read returns the end without asking the kernel (the socket is taken
 * away to show that it is not asked). */
static void test_short_read_after_fin_is_the_end(void **state)
{
	(void)state;
	struct xport x;
	char buf[64];
	int peer = fin_pair(&x, EPOLLIN | EPOLLRDHUP, 5);
	assert_int_equal(xport_recv(&x, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	int fd = x.io.fd;
	x.io.fd = -1;
	assert_int_equal(xport_recv(&x, buf, sizeof(buf)), 0);
	x.io.fd = fd;
	xport_close(&x, false);
	close(peer);
}

/* Where the end is not certain, the kernel is asked: a read that filled
 * the buffer may have left bytes; without a FIN more may come; with an
 * error the read must report it. */
static void test_end_is_asked_when_unsure(void **state)
{
	(void)state;
	struct xport x;
	char buf[64];
	/* the buffer was filled exactly: the kernel says the end */
	int peer = fin_pair(&x, EPOLLIN | EPOLLRDHUP, 5);
	assert_int_equal(xport_recv(&x, buf, 5), 5);
	assert_false(x.at_end);
	assert_int_equal(xport_recv(&x, buf, sizeof(buf)), 0);
	xport_close(&x, false);
	close(peer);
	/* an error came with the FIN */
	peer = fin_pair(&x, EPOLLIN | EPOLLRDHUP | EPOLLERR, 5);
	assert_int_equal(xport_recv(&x, buf, sizeof(buf)), 5);
	assert_false(x.at_end);
	xport_close(&x, false);
	close(peer);
	/* no FIN reported: more may come, and then it does */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	x = (struct xport){ .io = { .fd = sv[0] } };
	xport_note(&x, EPOLLIN);
	assert_int_equal(write(sv[1], "ab", 2), 2);
	assert_int_equal(xport_recv(&x, buf, sizeof(buf)), 2);
	assert_int_equal(xport_recv(&x, buf, sizeof(buf)), FL_AGAIN);
	assert_int_equal(write(sv[1], "cd", 2), 2);
	assert_int_equal(xport_recv(&x, buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "cd", 2);
	xport_close(&x, false);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refused_bytes_go_out_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_waits_for_kept_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_close_lingers_until_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unclean_close_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_keeps_staged_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lingering_is_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lingering_ends_after_its_time, setup, teardown),
		cmocka_unit_test(test_short_read_after_fin_is_the_end),
		cmocka_unit_test(test_end_is_asked_when_unsure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
