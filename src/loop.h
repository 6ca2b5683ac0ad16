/* Event loop: one per worker thread. epoll in edge-triggered mode, a binary
 * heap of timers, and an eventfd so other threads can wake it.
 *
 * Timers are re-armed lazily: loop_timer_set() on an armed timer only moves
 * its deadline later in place; the heap entry fires at the old time, sees the
 * new deadline and re-inserts itself. Idle timeouts are pushed back on every
 * read, so this keeps that to a store instead of a heap operation.
 * loop_timer_stop() is lazy the same way: the entry stays in the heap, fires
 * as a no-op, or is taken over by the next loop_timer_set() (a timeout
 * stopped and set again for every request costs no heap operation). Before
 * the memory of a timer is freed, loop_timer_del() takes it out for good. */
#ifndef FULCRUM_LOOP_H
#define FULCRUM_LOOP_H

#include "common.h"
#include <sys/epoll.h>

struct loop;
struct loop_io;

typedef void (*loop_io_fn)(struct loop *l, struct loop_io *io, uint32_t events);

struct loop_io {
	int fd;
	uint32_t events;      /* registered epoll events */
	loop_io_fn fn;
};

struct loop_timer;
typedef void (*loop_timer_fn)(struct loop *l, struct loop_timer *t);

struct loop_timer {
	uint64_t deadline;    /* ms, monotonic; 0 = not armed */
	uint64_t key;         /* deadline the heap entry was placed with */
	uint32_t slot;        /* heap index + 1; 0 = not in the heap */
	loop_timer_fn fn;
};

/* Returns a new loop or NULL (errno set). */
struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Register io->fd for `events` (EPOLLIN, EPOLLOUT...; EPOLLET is added).
 * Returns 0 or -errno. */
int loop_add(struct loop *l, struct loop_io *io, uint32_t events);
int loop_mod(struct loop *l, struct loop_io *io, uint32_t events);
int loop_del(struct loop *l, struct loop_io *io);

/* Arm t to fire `ms` from now (replaces an earlier arming). */
void loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t ms);
void loop_timer_stop(struct loop *l, struct loop_timer *t);
/* Stop t and take it out of the heap: required before t's memory goes. */
void loop_timer_del(struct loop *l, struct loop_timer *t);

/* Cached clock of the current loop turn (ms, monotonic). */
uint64_t loop_now(const struct loop *l);

/* Run one turn: wait for events (at most until the next timer, and at most
 * max_wait_ms), dispatch them, fire due timers. Returns events handled or
 * -errno. */
int loop_run_once(struct loop *l, int max_wait_ms);

/* Call fn(arg) at the start of every turn, before the loop waits. */
void loop_set_before_wait(struct loop *l, void (*fn)(void *arg), void *arg);
/* Wake the loop from another thread; the wake callback runs in the loop. */
void loop_set_wake(struct loop *l, void (*fn)(struct loop *l, void *arg), void *arg);
void loop_wake(struct loop *l);

#endif
