/* Workers: one thread each, with its own event loop, its own listening
 * socket per bind address (SO_REUSEPORT), its own buffers, pipes, balancer
 * state and counters. A connection lives its whole life on one worker. */
#ifndef FULCRUM_WORKER_H
#define FULCRUM_WORKER_H

#include "common.h"
#include "buf.h"
#include "loop.h"
#include "runtime.h"
#include "tls.h"

#include <pthread.h>

struct worker;
struct stream;
struct http_worker;
struct h1_msg;

/* One listening socket of one worker. */
struct wlistener {
	struct loop_io io;
	struct worker *w;
	struct listener_rt *l;
	const struct conf_addr *bind;
	uint16_t port;            /* of bind, host order */
	bool paused;              /* out of epoll because of a limit or EMFILE */
};

struct worker {
	uint32_t id;
	pthread_t thread;
	struct loop *loop;
	struct xport_batch *batch;  /* NULL: writes go out one by one */
	struct gen *gen;
	struct stats *stats;
	struct wlistener *ls;
	size_t nls;
	void **lbstate;           /* [npools] per-worker balancer state */
	uint64_t rng;
	struct buf_pool bufs;
	struct stream *streams;   /* open streams (doubly linked) */
	size_t nstreams;
	struct stream *dead;      /* closed this turn, freed after it */
	struct stream *again;     /* used their byte budget: continue next turn */
	struct stream *fd_wait;   /* accepted, waiting for a descriptor to connect */
	size_t npaused;
	struct loop_timer resume_timer;
	struct http_worker *http; /* http.c's per-worker state, made on first use */
	struct h1_msg *h1msg;     /* scratch for parsing heads */
	struct tls_server **tls;  /* [nlisteners] this worker's reference to each
				   * listener's TLS contexts (NULL without TLS) */
	struct tls_server *_Atomic *tls_mail; /* [nlisteners] posted by a reload */
	SSL_SESSION ***tls_sess;  /* [npools][nservers] TLS sessions to servers */
	_Atomic int stop;         /* 1: drain, 2: close everything now */
	bool draining;
};

/* Create the listening sockets of every worker for every bind address of
 * gen, before any thread starts, so that a bind error stops startup with a
 * message naming the listener and address (written to *msg, malloc'd).
 * Returns the workers array or NULL. */
struct worker *workers_create(struct gen *gen, char **msg);
/* Start the threads. Returns 0 or -errno. */
int workers_start(struct worker *ws, uint32_t n);
/* Ask every worker to stop: level 1 drains, level 2 closes everything. */
void workers_stop(struct worker *ws, uint32_t n, int level);
/* Open streams over all workers (read from another thread: approximate). */
size_t workers_active(struct worker *ws, uint32_t n);
void workers_join_free(struct worker *ws, uint32_t n);

/* Read every TLS listener's certificates again (SIGHUP) and hand the new
 * contexts to the workers; connections open keep theirs. Returns the
 * number of listeners that failed (their old certificates stay) and sets
 * *reloaded to the number that succeeded. */
int workers_tls_reload(struct worker *ws, uint32_t n, int *reloaded);

/* A client connection of listener l closed: give its slot back. */
void worker_conn_closed(struct worker *w, struct listener_rt *l);
/* Called when a connection slot frees up. */
void worker_slot_freed(struct worker *w);
/* Called when a descriptor for a backend socket could not be had: stop
 * accepting on this worker and retry a little later. */
void worker_out_of_fds(struct worker *w);
/* Running out of descriptors is logged at most once per second, whichever
 * call ran into it: true when a message is due now. */
bool worker_fd_warning_due(void);

#endif
