#include "log.h"
#include "addr.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_level_cur = LOG_INFO;
static enum log_format log_fmt = LOGF_TEXT;
static int access_fd = -1;
static int error_fd = 2;
static char *access_path;  /* NULL unless a file */
static char *error_path;
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;

#define ACCESS_BUF 16384
static __thread char abuf[ACCESS_BUF];
static __thread size_t alen;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static int open_target(const char *t, int std_fd, char **path)
{
	int fd;
	*path = NULL;
	if (strcmp(t, "stdout") == 0)
		return 1;
	if (strcmp(t, "stderr") == 0)
		return 2;
	if (strcmp(t, "off") == 0)
		return -1;
	fd = open(t, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	(void)std_fd;
	*path = xstrdup(t);
	return fd;
}

int log_open(enum log_level level, enum log_format fmt, const char *access,
	     const char *error, const char **failed)
{
	int fd;
	log_level_cur = level;
	log_fmt = fmt;
	fd = open_target(error ? error : "stderr", 2, &error_path);
	if (fd < -1) {
		*failed = error;
		return fd;
	}
	error_fd = fd < 0 ? 2 : fd;
	fd = open_target(access ? access : "stdout", 1, &access_path);
	if (fd < -1) {
		*failed = access;
		return fd;
	}
	access_fd = fd;
	return 0;
}

void log_close(void)
{
	log_flush();
	if (access_path && access_fd > 2)
		close(access_fd);
	if (error_path && error_fd > 2)
		close(error_fd);
	free(access_path);
	free(error_path);
	access_path = error_path = NULL;
	access_fd = -1;
	error_fd = 2;
}

static int reopen_one(const char *path, int fd)
{
	int nfd;
	if (!path)
		return 0;
	nfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (nfd < 0)
		return -errno;
	/* dup3 swaps the file behind the number in one step: writers never see
	 * a closed descriptor. */
	if (dup3(nfd, fd, O_CLOEXEC) < 0) {
		int e = -errno;
		close(nfd);
		return e;
	}
	close(nfd);
	return 0;
}

int log_reopen(void)
{
	int rc = reopen_one(access_path, access_fd);
	int rc2 = reopen_one(error_path, error_fd);
	return rc < 0 ? rc : rc2;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;  /* nowhere left to report it */
		}
		p += w;
		n -= (size_t)w;
	}
}

static size_t fmt_time(char *buf, size_t len, bool iso)
{
	struct timeval tv;
	struct tm tm;
	size_t n;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(buf, len, iso ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
	return n;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[2048];
	size_t n;
	va_list ap;
	if (!log_enabled(lvl))
		return;
	n = fmt_time(line, sizeof(line), true);
	n += (size_t)snprintf(line + n, sizeof(line) - n, " [%s] ", level_names[lvl]);
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&error_lock);
	write_all(error_fd, line, n);
	pthread_mutex_unlock(&error_lock);
}

bool log_ratelimit(_Atomic uint64_t *last, uint64_t period_ms)
{
	uint64_t now = now_ms(), prev = atomic_load(last);
	if (prev && now - prev < period_ms)
		return false;
	return atomic_compare_exchange_strong(last, &prev, now);
}

void log_flush(void)
{
	if (alen && access_fd >= 0)
		write_all(access_fd, abuf, alen);
	alen = 0;
}

/* Add one formatted record (snprintf's result n for a buffer of size cap)
 * to this thread's batch. */
static void access_append(const char *rec, int n, size_t cap)
{
	if (n < 0)
		return;
	if ((size_t)n >= cap)
		n = (int)cap - 1;
	if (alen + (size_t)n > sizeof(abuf))
		log_flush();
	memcpy(abuf + alen, rec, (size_t)n);
	alen += (size_t)n;
}

void log_access(const struct access_rec *r)
{
	char client[ADDR_STRLEN], ts[40], rec[1024];
	int n;
	if (access_fd < 0)
		return;
	addr_format(r->client, client, sizeof(client));
	fmt_time(ts, sizeof(ts), true);
	/* Names come from the validated config (identifiers and addresses), so
	 * they never need JSON escaping. */
	if (log_fmt == LOGF_JSON)
		n = snprintf(rec, sizeof(rec),
			     "{\"time\":\"%s\",\"client\":\"%s\",\"listener\":\"%s\","
			     "\"server\":%s%s%s,\"bytes_in\":%llu,\"bytes_out\":%llu,"
			     "\"duration_ms\":%llu,\"retries\":%u,\"cause\":\"%s\"}\n",
			     ts, client, r->listener, r->server ? "\"" : "",
			     r->server ? r->server : "null", r->server ? "\"" : "",
			     (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out,
			     (unsigned long long)r->duration_ms, r->retries, r->cause);
	else
		n = snprintf(rec, sizeof(rec),
			     "%s client=%s listener=%s server=%s bytes_in=%llu bytes_out=%llu "
			     "duration_ms=%llu retries=%u cause=%s\n",
			     ts, client, r->listener, r->server ? r->server : "-",
			     (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out,
			     (unsigned long long)r->duration_ms, r->retries, r->cause);
	access_append(rec, n, sizeof(rec));
}

/* Copy s into out as a JSON string body / log token: quotes, backslashes,
 * control bytes and bytes above 126 are escaped, so a client cannot forge
 * log lines or break the JSON. */
static void esc(char *out, size_t len, const char *s, bool json)
{
	size_t o = 0;
	for (; s && *s && o + 7 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20 || ch > 0x7e || (!json && ch == ' ')) {
			o += (size_t)snprintf(out + o, len - o, json ? "\\u%04x" : "\\x%02x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
}

void log_http(const struct http_rec *r)
{
	char client[ADDR_STRLEN], ts[40], rec[2048], method[64], target[600];
	int n;
	if (access_fd < 0)
		return;
	addr_format_host(r->client, client, sizeof(client));
	fmt_time(ts, sizeof(ts), true);
	esc(method, sizeof(method), r->method ? r->method : "-", log_fmt == LOGF_JSON);
	esc(target, sizeof(target), r->target ? r->target : "-", log_fmt == LOGF_JSON);
	if (log_fmt == LOGF_JSON)
		n = snprintf(rec, sizeof(rec),
			     "{\"time\":\"%s\",\"client\":\"%s\",\"listener\":\"%s\",\"route\":%s%s%s,"
			     "\"pool\":%s%s%s,\"server\":%s%s%s,\"method\":\"%s\",\"target\":\"%s\","
			     "\"version\":\"HTTP/1.%d\",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,"
			     "\"request_ms\":%lld,\"connect_ms\":%lld,\"ttfb_ms\":%lld,\"total_ms\":%lld,"
			     "\"retries\":%u,\"cause\":\"%s\"}\n",
			     ts, client, r->listener,
			     r->route ? "\"" : "", r->route ? r->route : "null", r->route ? "\"" : "",
			     r->pool ? "\"" : "", r->pool ? r->pool : "null", r->pool ? "\"" : "",
			     r->server ? "\"" : "", r->server ? r->server : "null", r->server ? "\"" : "",
			     method, target, r->version == 10 ? 0 : 1, r->status,
			     (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out,
			     (long long)r->request_ms, (long long)r->connect_ms, (long long)r->ttfb_ms,
			     (long long)r->total_ms, r->retries, r->cause);
	else
		n = snprintf(rec, sizeof(rec),
			     "%s - - [%s] \"%s %s HTTP/1.%d\" %d %llu listener=%s route=%s pool=%s server=%s "
			     "bytes_in=%llu request_ms=%lld connect_ms=%lld ttfb_ms=%lld total_ms=%lld "
			     "retries=%u cause=%s\n",
			     client, ts, method, target, r->version == 10 ? 0 : 1, r->status,
			     (unsigned long long)r->bytes_out, r->listener, r->route ? r->route : "-",
			     r->pool ? r->pool : "-", r->server ? r->server : "-",
			     (unsigned long long)r->bytes_in, (long long)r->request_ms,
			     (long long)r->connect_ms, (long long)r->ttfb_ms, (long long)r->total_ms,
			     r->retries, r->cause);
	access_append(rec, n, sizeof(rec));
}
