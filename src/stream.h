/* The stream engine: one client connection paired with one backend
 * connection, two directions of bytes, their timers and their log record.
 * L4 passthrough now; the HTTP layer will drive the same engine. */
#ifndef FULCRUM_STREAM_H
#define FULCRUM_STREAM_H

#include "common.h"
#include "worker.h"

#include <sys/socket.h>

/* Take over an accepted client socket `fd` on worker w for listener l.
 * The connection slot (listener and global counts) was already reserved by
 * the caller; the stream releases it when it closes. */
void stream_accept(struct worker *w, struct listener_rt *l, int fd,
		   const struct sockaddr_storage *peer);

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
