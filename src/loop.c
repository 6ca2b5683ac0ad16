#include "loop.h"

#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct loop {
	int epfd;
	uint64_t now;
	struct loop_timer **heap;
	uint32_t nheap, capheap;
	struct loop_io wake_io;
	void (*wake_fn)(struct loop *l, void *arg);
	void *wake_arg;
	void (*before_wait)(void *arg);
	void *before_wait_arg;
};

static void heap_swap(struct loop *l, uint32_t a, uint32_t b)
{
	struct loop_timer *t = l->heap[a];
	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->slot = a + 1;
	l->heap[b]->slot = b + 1;
}

static void heap_up(struct loop *l, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (l->heap[p]->key <= l->heap[i]->key)
			break;
		heap_swap(l, i, p);
		i = p;
	}
}

static void heap_down(struct loop *l, uint32_t i)
{
	for (;;) {
		uint32_t c = 2 * i + 1, m = i;
		if (c < l->nheap && l->heap[c]->key < l->heap[m]->key)
			m = c;
		if (c + 1 < l->nheap && l->heap[c + 1]->key < l->heap[m]->key)
			m = c + 1;
		if (m == i)
			break;
		heap_swap(l, i, m);
		i = m;
	}
}

static void heap_push(struct loop *l, struct loop_timer *t)
{
	if (l->nheap == l->capheap) {
		l->capheap = l->capheap ? l->capheap * 2 : 64;
		l->heap = xrealloc(l->heap, l->capheap * sizeof(*l->heap));
	}
	t->key = t->deadline;
	l->heap[l->nheap] = t;
	t->slot = ++l->nheap;
	heap_up(l, l->nheap - 1);
}

static void heap_remove(struct loop *l, struct loop_timer *t)
{
	uint32_t i = t->slot - 1;
	t->slot = 0;
	if (--l->nheap == i)
		return;
	l->heap[i] = l->heap[l->nheap];
	l->heap[i]->slot = i + 1;
	heap_down(l, i);
	heap_up(l, i);
}

void loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t ms)
{
	t->deadline = l->now + (ms ? ms : 1);
	if (!t->slot) {
		heap_push(l, t);
	} else if (t->deadline < t->key) {
		t->key = t->deadline;
		heap_up(l, t->slot - 1);
	}
	/* A later deadline stays lazy: the entry fires early and re-inserts. */
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	(void)l;
	t->deadline = 0;  /* the heap entry, if any, fires as a no-op or is re-used */
}

void loop_timer_del(struct loop *l, struct loop_timer *t)
{
	t->deadline = 0;
	if (t->slot)
		heap_remove(l, t);
}

uint64_t loop_now(const struct loop *l)
{
	return l->now;
}

static void on_wake(struct loop *l, struct loop_io *io, uint32_t events)
{
	uint64_t v;
	while (read(io->fd, &v, sizeof(v)) > 0)
		;
	if (l->wake_fn)
		l->wake_fn(l, l->wake_arg);
}

struct loop *loop_new(void)
{
	struct loop *l = xcalloc(1, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto fail;
	l->wake_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake_io.fd < 0)
		goto fail;
	l->wake_io.fn = on_wake;
	if (loop_add(l, &l->wake_io, EPOLLIN) < 0)
		goto fail;
	l->now = now_ms();
	return l;
fail:
	loop_free(l);
	return NULL;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wake_io.fd > 0)
		close(l->wake_io.fd);
	free(l->heap);
	free(l);
}

static int ctl(struct loop *l, int op, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events | EPOLLET, .data.ptr = io };
	if (epoll_ctl(l->epfd, op, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

int loop_add(struct loop *l, struct loop_io *io, uint32_t events)
{
	return ctl(l, EPOLL_CTL_ADD, io, events);
}

int loop_mod(struct loop *l, struct loop_io *io, uint32_t events)
{
	return ctl(l, EPOLL_CTL_MOD, io, events);
}

int loop_del(struct loop *l, struct loop_io *io)
{
	if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
		return -errno;
	io->events = 0;
	return 0;
}

void loop_set_wake(struct loop *l, void (*fn)(struct loop *l, void *arg), void *arg)
{
	l->wake_fn = fn;
	l->wake_arg = arg;
}

void loop_set_before_wait(struct loop *l, void (*fn)(void *arg), void *arg)
{
	l->before_wait = fn;
	l->before_wait_arg = arg;
}

void loop_wake(struct loop *l)
{
	uint64_t one = 1;
	ssize_t rc = write(l->wake_io.fd, &one, sizeof(one));
	(void)rc; /* a full counter already means "wake up" */
}

static void run_timers(struct loop *l)
{
	while (l->nheap && l->heap[0]->key <= l->now) {
		struct loop_timer *t = l->heap[0];
		heap_remove(l, t);
		if (t->deadline == 0)
			continue;
		if (t->deadline > l->now) {
			heap_push(l, t);  /* pushed back since it was armed */
			continue;
		}
		t->deadline = 0;
		t->fn(l, t);
	}
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
	struct epoll_event ev[MAX_EVENTS];
	int timeout = max_wait_ms, n;

	if (l->before_wait)
		l->before_wait(l->before_wait_arg);
	l->now = now_ms();
	if (l->nheap) {
		uint64_t next = l->heap[0]->key;
		int until = next <= l->now ? 0 : (int)(next - l->now);
		if (timeout < 0 || until < timeout)
			timeout = until;
	}
	n = epoll_wait(l->epfd, ev, MAX_EVENTS, timeout);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	l->now = now_ms();
	for (int i = 0; i < n; i++) {
		struct loop_io *io = ev[i].data.ptr;
		io->fn(l, io, ev[i].events);
	}
	run_timers(l);
	return n;
}
