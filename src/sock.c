#include "sock.h"
#include "log.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

int sock_connect_result(int fd, uint32_t events)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (!(events & (EPOLLERR | EPOLLHUP)))
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err ? err : ECONNREFUSED;
}

int sock_connect(struct loop *l, struct loop_io *io, const struct sockaddr *sa, socklen_t len)
{
	int rc;
	sock_nodelay(io->fd);
	rc = connect(io->fd, sa, len);
	if (rc < 0 && errno != EINPROGRESS)
		return -errno;
	if (loop_add(l, io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) < 0)
		return -errno;
	return rc == 0 ? 0 : FL_AGAIN;
}

int sock_set_congestion(int fd, const char *name)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)strlen(name)) < 0 ? -errno
											      : 0;
}

void sock_congestion(int fd, const char *name)
{
	static _Atomic uint64_t last;
	int rc;
	if (name && (rc = sock_set_congestion(fd, name)) < 0 && log_ratelimit(&last, 1000))
		log_warn("cannot set congestion control %s: %s", name, strerror(-rc));
}

void sock_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
