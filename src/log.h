/* Logging: an error log with levels, and the access log (one record per
 * closed stream, text or JSON).
 *
 * The access log is buffered per thread and written with one write() per
 * batch (log_flush, called by each worker after every loop turn), so the hot
 * path never formats into a shared buffer or takes a lock. */
#ifndef FULCRUM_LOG_H
#define FULCRUM_LOG_H

#include "common.h"
#include <sys/socket.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOGF_TEXT = 0, LOGF_JSON };

/* Set up both logs. access and error are "stdout", "stderr", "off" (access
 * only) or a file path (opened O_APPEND, reopened by log_reopen).
 * Returns 0 or -errno (with the file that failed in *failed). */
int log_open(enum log_level level, enum log_format fmt, const char *access,
	     const char *error, const char **failed);
void log_close(void);
/* Reopen file targets (SIGUSR1 after rotation). Safe to call while workers
 * write: the new file replaces the old descriptor number atomically. */
int log_reopen(void);

extern enum log_level log_level_cur;
#define log_enabled(lvl) ((lvl) <= log_level_cur)

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) do { if (log_enabled(LOG_INFO)) log_msg(LOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

/* Log at most once per `period_ms` per call site's `last` stamp. */
bool log_ratelimit(_Atomic uint64_t *last, uint64_t period_ms);

struct access_rec {
	const struct sockaddr *client;
	const char *listener;
	const char *server;          /* NULL when none was reached */
	uint64_t bytes_in;           /* client -> backend */
	uint64_t bytes_out;          /* backend -> client */
	uint64_t duration_ms;
	const char *cause;           /* termination cause keyword */
	unsigned retries;
};

void log_access(const struct access_rec *r);

/* One HTTP request. Times in ms from the first byte of the request; -1 when
 * the phase did not happen. */
struct http_rec {
	const struct sockaddr *client;
	const char *listener;
	const char *route;          /* NULL: none matched */
	const char *pool;
	const char *server;
	const char *method;         /* may hold any bytes: escaped when written */
	const char *target;
	int version;                /* 10 or 11 */
	int status;                 /* 0: no response */
	uint64_t bytes_in;          /* request bytes from the client */
	uint64_t bytes_out;         /* response bytes to the client */
	int64_t request_ms, connect_ms, ttfb_ms, total_ms;
	unsigned retries;
	const char *cause;
};

void log_http(const struct http_rec *r);
/* Write this thread's pending access records. */
void log_flush(void);

#endif
