/* The stream engine: one client connection paired with one backend
 * connection, two directions of bytes, their timers and their log record.
 * L4 passthrough now; the HTTP layer will drive the same engine. */
#ifndef FULCRUM_STREAM_H
#define FULCRUM_STREAM_H

#include "common.h"
#include "worker.h"
#include "tls.h"

struct xport;

#include <sys/socket.h>

/* Take over an accepted client socket `fd` on worker w for listener l.
 * The connection slot (listener and global counts) was already reserved by
 * the caller; the stream releases it when it closes. */
void stream_accept(struct worker *w, struct listener_rt *l, int fd,
		   const struct sockaddr_storage *peer);

/* Take over an upgraded HTTP exchange as a two-way tunnel: the client and
 * server sockets (both already in the worker's epoll) with their TLS state
 * (NULL for plain TCP; the stream owns them now), the server in use
 * (its `active` count is held and released when the tunnel closes), and
 * bytes already read from either side (may be NULL; the stream owns them).
 * The connection slot and the listener's active count move with it. */
void stream_adopt(struct worker *w, struct listener_rt *l, const struct sockaddr_storage *peer,
		  struct xport *cx, struct xport *bx, struct pool_rt *pool, struct lb_server *srv,
		  struct buf *up, struct buf *down, uint64_t idle_ms);

/* Close every open stream of the worker now (forced shutdown). */
void stream_close_all(struct worker *w, const char *cause);

/* Connect the streams parked for lack of file descriptors, oldest first,
 * until one has to wait again. */
void stream_retry_waiting(struct worker *w);

/* Continue streams that used their byte budget in the last turn. */
void stream_run_again(struct worker *w);

/* Free streams closed during the last loop turn. */
void stream_reap(struct worker *w);

#endif
