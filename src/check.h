/* Active health checks. One thread with its own event loop runs every
 * check with non-blocking sockets and timers, so a check never delays a
 * request; the verdict reaches the workers through each server's atomic
 * state, which the balancer reads.
 *
 * The engine connects (TCP, then TLS when the check asks for it), sends what
 * the check type writes, and hands every byte read to the type's judge until
 * it passes or fails, or the timeout runs out. When the judge says the
 * connection can be reused, it is kept open (idle, watched for a close) and
 * the next check only sends its request. A check type is one small
 * file with a struct check_ops (check_tcp.c, check_http.c). */
#ifndef FULCRUM_CHECK_H
#define FULCRUM_CHECK_H

#include "common.h"
#include "runtime.h"

#include <sys/types.h>

/* Start checking every server of every pool of g that has a health_check
 * (no thread when none has). Returns 0 or -errno. */
int checks_start(struct gen *g);
/* Stop the thread and free the checks (no-op when none were started). */
void checks_stop(void);

/* ---- for the check type files ---- */

enum { CHECK_MORE = 0, CHECK_PASS = 1, CHECK_FAIL = -1 };

struct check_ops {
	const char *name;
	/* Write the bytes to send once connected into buf (at most cap);
	 * returns their number (0: send nothing). */
	size_t (*request)(const struct conf_check *cc, const char *host, char *buf, size_t cap);
	/* Judge the bytes received so far (data[0..len), eof when the server
	 * closed or no more will be read): CHECK_PASS, CHECK_MORE, or CHECK_FAIL
	 * with the reason in why. *reuse is set when data is exactly one whole
	 * answer after which the connection can carry the next check. */
	int (*judge)(const struct conf_check *cc, const char *data, size_t len, bool eof,
		     char *why, size_t wlen, bool *reuse);
};

extern const struct check_ops check_tcp_ops;
extern const struct check_ops check_http_ops;

#endif
