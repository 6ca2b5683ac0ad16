#include "buf.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

struct buf *buf_get(struct buf_pool *p)
{
	struct buf *b = p->free;
	if (b) {
		p->free = b->next;
		p->nfree--;
	} else {
		b = xmalloc(sizeof(*b));
	}
	b->head = b->tail = 0;
	b->next = NULL;
	return b;
}

void buf_put(struct buf_pool *p, struct buf *b)
{
	if (p->nfree >= BUF_POOL_MAX) {
		free(b);
		return;
	}
	b->next = p->free;
	p->free = b;
	p->nfree++;
}

struct fpipe *pipe_get(struct buf_pool *p, int *err)
{
	struct fpipe *pp = p->pipes;
	int fds[2];
	if (pp) {
		p->pipes = pp->next;
		p->npipes--;
		pp->next = NULL;
		return pp;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		*err = -errno;
		return NULL;
	}
	pp = xcalloc(1, sizeof(*pp));
	pp->rd = fds[0];
	pp->wr = fds[1];
	/* Larger pipes mean fewer splice calls per megabyte on bulk transfers;
	 * keep the default if the system limit refuses it. */
	int sz = fcntl(pp->wr, F_SETPIPE_SZ, 262144);
	if (sz < 0)
		sz = fcntl(pp->wr, F_GETPIPE_SZ);
	pp->cap = sz > 0 ? (uint32_t)sz : 65536;
	return pp;
}

static void pipe_close(struct fpipe *pp)
{
	close(pp->rd);
	close(pp->wr);
	free(pp);
}

void pipe_put(struct buf_pool *p, struct fpipe *pp)
{
	if (pp->fill || p->npipes >= PIPE_POOL_MAX) {
		pipe_close(pp);
		return;
	}
	pp->next = p->pipes;
	p->pipes = pp;
	p->npipes++;
}

void buf_pool_clear(struct buf_pool *p)
{
	while (p->free) {
		struct buf *b = p->free;
		p->free = b->next;
		free(b);
	}
	while (p->pipes) {
		struct fpipe *pp = p->pipes;
		p->pipes = pp->next;
		pipe_close(pp);
	}
	p->nfree = p->npipes = 0;
}
