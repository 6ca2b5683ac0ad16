/* One side of a proxied connection as the stream engine and the HTTP layer
 * see it: a socket, plain or with TLS on it, and what edge-triggered epoll
 * said about it. Both layers read and write through these functions, so
 * plain TCP and TLS share every code path above the transport. */
#ifndef FULCRUM_XPORT_H
#define FULCRUM_XPORT_H

#include "common.h"
#include "loop.h"
#include "tls.h"

#include <sys/socket.h>
#include <sys/types.h>

struct xport {
	struct loop_io io;
	SSL *tls;                 /* NULL: plain TCP */
	bool can_read, can_write; /* set by epoll events, cleared by EAGAIN */
	bool hup;                 /* epoll reported the peer's FIN or an error */
	bool fin;                 /* epoll reported the peer's FIN, without an error */
	bool eof;                 /* a read returned the end */
	bool at_end;              /* plain: a short read after the FIN emptied the
	                           * socket, so the next read returns 0 unasked */
	bool rd_wants_write;      /* TLS: a read waits for write space */
	bool wr_wants_read;       /* TLS: a write waits for input */
	/* Send batching (plain TCP; see xport_batch below). */
	bool shut_after;          /* shut down for writing once pend is out */
	uint32_t st_slot;         /* slot + 1 of bytes staged in the batch; 0: none */
	uint32_t st_off, st_len;  /* where they are in the batch's arena */
	int err;                  /* -errno of a batched send, for the next call */
	uint32_t pend_len, pend_cap;
	char *pend;               /* bytes a send left over: they go before any other */
};

/* Record what an epoll event says the socket can do now (and, when the
 * socket can take more, send what a batched send left over). */
void xport_note(struct xport *x, uint32_t ev);

/* Send batching (docs/internals/send-batching.md). While a worker handles
 * one round of events, its small writes to plain TCP sockets are copied into
 * the batch's arena instead of being sent one syscall each; before the loop
 * waits again, xport_batch_flush() hands them all to the kernel in one
 * io_uring_enter. To the caller a staged write looks sent. Bytes the kernel
 * does not take are kept by the xport and go out, in order, before anything
 * else (on the next write, on EPOLLOUT, at shutdown or close; a close that
 * cannot finish them leaves the socket lingering until they are out). TLS,
 * splice and large writes are never staged; they push out what is staged
 * for the same socket first. */
struct xport_batch;
/* Lingering sockets per batch (per worker); a clean close beyond that drops
 * what was left, as an unclean one does. */
#define XPORT_LINGER_MAX 1024
/* How long a lingering socket may take to send its rest (ms); then it is
 * closed and the rest dropped. */
#define XPORT_LINGER_MS 10000
/* A batch for the loop l, or NULL with errno when io_uring cannot be used. */
struct xport_batch *xport_batch_new(struct loop *l);
/* Close what still lingers and free the batch. */
void xport_batch_free(struct xport_batch *b);
/* Stage this thread's writes in b from now on (NULL: send each at once). */
void xport_batch_use(struct xport_batch *b);
/* Send everything staged (the loop's before-wait hook). */
void xport_batch_flush(void *b);

/* Read up to n bytes: a positive count, 0 at the end, FL_AGAIN (the flags
 * say what to wait for), or -errno. */
ssize_t xport_recv(struct xport *x, void *p, size_t n);
/* Write up to n bytes: a positive count, FL_AGAIN, or -errno. */
ssize_t xport_send(struct xport *x, const void *p, size_t n);
struct fpipe;
/* splice() between a plain TCP socket and a pipe, with the returns of
 * xport_recv and xport_send: bytes moved (0: the end), FL_AGAIN (can_read
 * or can_write cleared), or -errno. _in moves at most max bytes and no more
 * than the pipe has room for; _out empties what it can of the pipe. Both
 * keep p->fill. */
ssize_t xport_splice_in(struct xport *x, struct fpipe *p, size_t max);
ssize_t xport_splice_out(struct xport *x, struct fpipe *p);
/* Stop sending: close_notify on TLS, then the TCP FIN. */
void xport_shutdown_wr(struct xport *x);
struct worker;
struct listener_rt;

/* Drive the server side of a TLS handshake on an ssl or https listener.
 * The first bytes are looked at once (*sniffed) so that garbage and plain
 * HTTP are told apart from TLS (an https listener answers plain HTTP with a
 * 400 in plain text). Returns 0 when the handshake is complete (counted),
 * FL_AGAIN, or -EPROTO when it failed (counted by kind and logged at debug
 * level); the caller then closes. */
int xport_tls_accept(struct xport *x, struct worker *w, struct listener_rt *l,
		     const struct sockaddr_storage *peer, bool *sniffed);
/* Drive the client side of a handshake with a server: 0, FL_AGAIN, or
 * -EPROTO with the reason (a verify error, say) in why. */
int xport_tls_connect(struct xport *x, char *why, size_t len);

/* Hand the socket of src, with its TLS state and any bytes written to it
 * that have not gone out yet, to dst (a new owner). src keeps only its io
 * callback (events already fetched may still reach it) and fd -1. */
void xport_move(struct xport *dst, struct xport *src);

/* Free the TLS state (sending close_notify when `clean`) and close the
 * socket. The io callback should already point somewhere harmless. When
 * `clean`, written bytes the kernel has not taken yet still go out first
 * (the socket lingers for them, up to 10 s); otherwise they are dropped. */
void xport_close(struct xport *x, bool clean);

#endif
