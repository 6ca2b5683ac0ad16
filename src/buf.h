/* Buffers and pipes: the per-worker memory a stream borrows while it has
 * data in flight, and returns as soon as it has none.
 *
 * Invariants of struct buf (see docs/internals/buffers.md):
 *   0 <= head <= tail <= BUF_SIZE; data[head, tail) is pending;
 *   head == tail means empty, and an empty buffer is reset to head = tail = 0
 *   and given back to its pool by its owner;
 *   a buffer belongs to exactly one stream direction or to the free list. */
#ifndef FULCRUM_BUF_H
#define FULCRUM_BUF_H

#include "common.h"

#define BUF_SIZE 16384       /* forwarding buffers */
#define BUF_LARGE 66560      /* HTTP heads: the 64 KiB head limit and room to spare */
#define BUF_POOL_MAX 256     /* idle buffers kept per worker and size */
#define PIPE_POOL_MAX 64     /* idle pipes kept per worker */

struct buf {
	uint32_t head, tail;
	uint32_t cap;            /* BUF_SIZE or BUF_LARGE */
	struct buf *next;        /* free list link */
	char data[];
};

/* A kernel pipe used by splice(); `fill` counts the bytes inside it. */
struct fpipe {
	int rd, wr;
	uint32_t fill, cap;
	struct fpipe *next;
};

struct buf_pool {
	struct buf *free, *free_large;
	uint32_t nfree, nfree_large;
	struct fpipe *pipes;
	uint32_t npipes;
};

/* Take an empty buffer of BUF_SIZE or BUF_LARGE bytes (never NULL). */
struct buf *buf_get(struct buf_pool *p);
struct buf *buf_get_large(struct buf_pool *p);
/* Give back a buffer; it need not be empty. */
void buf_put(struct buf_pool *p, struct buf *b);

static inline uint32_t buf_len(const struct buf *b) { return b->tail - b->head; }
static inline uint32_t buf_room(const struct buf *b) { return b->cap - b->tail; }
/* Move pending bytes to the front so that buf_room() is as large as it can be. */
void buf_compact(struct buf *b);

/* Take an empty pipe, or NULL when none can be made (EMFILE...; logged at
 * most once a second): the caller goes on with buffers. */
struct fpipe *pipe_get(struct buf_pool *p);
/* Give back a pipe; a pipe that still holds bytes is closed, not pooled. */
void pipe_put(struct buf_pool *p, struct fpipe *pp);

void buf_pool_clear(struct buf_pool *p);

#endif
