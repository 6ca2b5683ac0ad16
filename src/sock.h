/* Small socket helpers shared by the stream engine and the HTTP layer. */
#ifndef FULCRUM_SOCK_H
#define FULCRUM_SOCK_H

#include "common.h"

/* The outcome of a non-blocking connect, from the epoll events that ended
 * it: 0 when connected, a positive errno when it failed. Writable without an
 * error means connected, which saves a getsockopt() per connection. */
int sock_connect_result(int fd, uint32_t events);

/* Turn off Nagle's algorithm (accepted sockets inherit it from their
 * listening socket on Linux, so it is set there once). */
void sock_nodelay(int fd);

#endif
