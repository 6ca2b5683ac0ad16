#include "buf.h"
#include "log.h"

#include <errno.h>

#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

static struct buf *take(struct buf **list, uint32_t *n, uint32_t cap)
{
	struct buf *b = *list;
	if (b) {
		*list = b->next;
		(*n)--;
	} else {
		b = xmalloc(sizeof(*b) + cap);
		b->cap = cap;
	}
	b->head = b->tail = 0;
	b->next = NULL;
	return b;
}

struct buf *buf_get(struct buf_pool *p)
{
	return take(&p->free, &p->nfree, BUF_SIZE);
}

struct buf *buf_get_large(struct buf_pool *p)
{
	return take(&p->free_large, &p->nfree_large, BUF_LARGE);
}

void buf_put(struct buf_pool *p, struct buf *b)
{
	struct buf **list = b->cap == BUF_SIZE ? &p->free : &p->free_large;
	uint32_t *n = b->cap == BUF_SIZE ? &p->nfree : &p->nfree_large;
	if (*n >= BUF_POOL_MAX) {
		free(b);
		return;
	}
	b->next = *list;
	*list = b;
	(*n)++;
}

void buf_compact(struct buf *b)
{
	if (b->head == 0)
		return;
	memmove(b->data, b->data + b->head, b->tail - b->head);
	b->tail -= b->head;
	b->head = 0;
}

struct fpipe *pipe_get(struct buf_pool *p)
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
		static _Atomic uint64_t last;
		if (log_ratelimit(&last, 1000))
			log_warn("cannot create a pipe for splice: %s; using buffers", strerror(errno));
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
	struct buf **lists[] = { &p->free, &p->free_large };
	for (size_t i = 0; i < ARRAY_LEN(lists); i++) {
		while (*lists[i]) {
			struct buf *b = *lists[i];
			*lists[i] = b->next;
			free(b);
		}
	}
	p->nfree_large = 0;
	while (p->pipes) {
		struct fpipe *pp = p->pipes;
		p->pipes = pp->next;
		pipe_close(pp);
	}
	p->nfree = p->npipes = 0;
}
