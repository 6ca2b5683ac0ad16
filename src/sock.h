/* Small socket helpers shared by the stream engine, the HTTP layer and the
 * config checker. */
#ifndef FULCRUM_SOCK_H
#define FULCRUM_SOCK_H

#include "common.h"
#include "loop.h"

#include <sys/socket.h>

/* The outcome of a non-blocking connect, from the epoll events that ended
 * it: 0 when connected, a positive errno when it failed. Writable without an
 * error means connected, which saves a getsockopt() per connection. */
int sock_connect_result(int fd, uint32_t events);

/* Start a non-blocking connect of io->fd (a new TCP socket) to sa and
 * register it with the loop for reading and writing. Returns 0 when already
 * connected, FL_AGAIN while the connect is in progress (its end arrives as
 * an epoll event), or -errno. */
int sock_connect(struct loop *l, struct loop_io *io, const struct sockaddr *sa, socklen_t len);

/* Turn off Nagle's algorithm (accepted sockets inherit it from their
 * listening socket on Linux, so it is set there once). */
void sock_nodelay(int fd);
/* Set the socket's TCP congestion control: 0 or -errno. */
int sock_set_congestion(int fd, const char *name);
/* The same on a connection's socket when name is not NULL (a failure is
 * logged at most once a second: the name was checked at config load). */
void sock_congestion(int fd, const char *name);

#endif
