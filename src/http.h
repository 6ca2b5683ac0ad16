/* HTTP/1.1 proxying: the h1 protocol layer. A client connection carries
 * requests one after the other (pipelined ones wait in its buffer); each is
 * parsed strictly (h1.c), routed, and sent to a server of the route's pool
 * over a connection taken from the worker's idle pool or newly made. */
#ifndef FULCRUM_HTTP_H
#define FULCRUM_HTTP_H

#include "common.h"
#include "worker.h"

#include <sys/socket.h>

/* Take over an accepted client socket on an http listener (port: the local
 * port it came in on); the connection slot was reserved by the caller and is
 * released when the client closes. */
void http_accept(struct worker *w, struct listener_rt *l, int fd,
		 const struct sockaddr_storage *peer, uint16_t port);

/* Draining: close idle client connections now, and every other one after
 * its current response. */
void http_drain(struct worker *w);
/* Close every client and server connection of the worker now. */
void http_close_all(struct worker *w);
/* Free what was closed during the last loop turn. */
void http_reap(struct worker *w);
/* Free the worker's idle server connections and its HTTP state. */
void http_worker_free(struct worker *w);

#endif
