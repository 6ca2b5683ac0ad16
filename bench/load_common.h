/* What the bench's C load generators (paced_load.c, tls_load.c) share: the
 * clock, dying with a message, and the latency distribution they print in
 * their JSON summary. Static functions, so each generator stays one file to
 * compile; PROG names the generator in messages. */
#ifndef BENCH_LOAD_COMMON_H
#define BENCH_LOAD_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", PROG, what, strerror(errno));
	exit(2);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The p-th percentile (nearest rank) of sorted v, in seconds; -1 when empty. */
static double pct(const int64_t *v, long n, double p)
{
	if (n == 0)
		return -1;
	long i = (long)(p / 100.0 * (double)n + 0.999999) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1e9;
}

/* Print `"name": {n, mean, p50, p90, p99, p999, max}` (seconds) of the
 * latencies v (ns, sorted here); a comma follows unless last. */
static void print_dist(const char *name, int64_t *v, long n, int last)
{
	double sum = 0;
	qsort(v, n, sizeof *v, cmp64);
	for (long i = 0; i < n; i++)
		sum += (double)v[i];
	printf("  \"%s\": {\"n\": %ld, \"mean\": %.9f, \"p50\": %.9f, \"p90\": %.9f, "
	       "\"p99\": %.9f, \"p999\": %.9f, \"max\": %.9f}%s\n", name, n,
	       n ? sum / n / 1e9 : -1.0, pct(v, n, 50), pct(v, n, 90), pct(v, n, 99),
	       pct(v, n, 99.9), n ? (double)v[n - 1] / 1e9 : -1.0, last ? "" : ",");
}

#endif
