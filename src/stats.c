#include "stats.h"

#include <stdlib.h>
#include <string.h>

const uint32_t stats_lat_bounds[STATS_LAT_BUCKETS - 1] = {
	1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000,
};

const int stats_reject_status[STATS_REJECT_KINDS] = { 400, 408, 413, 414, 431, 501, 505, 0 };

void stats_http_rejected(struct ctr_listener *l, int status)
{
	size_t i = 0;
	/* The last slot counts any other status. */
	while (i < STATS_REJECT_KINDS - 1 && stats_reject_status[i] != status)
		i++;
	ctr_add(&l->rejected, 1);
	ctr_add(&l->rejected_by[i], 1);
}

void stats_http_response(struct ctr_listener *l, struct ctr_route *r, int status, uint64_t ms)
{
	size_t b = 0;
	int cls = status / 100 - 1;
	while (b < STATS_LAT_BUCKETS - 1 && ms > stats_lat_bounds[b])
		b++;
	ctr_add(&l->latency[b], 1);
	if (cls < 0 || cls > 4)
		return;
	ctr_add(&l->status[cls], 1);
	if (r) {
		ctr_add(&r->requests, 1);
		ctr_add(&r->status[cls], 1);
	}
}

struct stats *stats_new(size_t nlisteners, size_t npools, const uint32_t *nservers,
			const uint32_t *nroutes)
{
	struct stats *s = xcalloc(1, sizeof(*s));
	s->listeners = xcalloc(nlisteners, sizeof(*s->listeners));
	s->pools = xcalloc(npools, sizeof(*s->pools));
	s->servers = xcalloc(npools, sizeof(*s->servers));
	s->npools = npools;
	for (size_t i = 0; i < npools; i++)
		s->servers[i] = xcalloc(nservers[i], sizeof(**s->servers));
	s->nlisteners = nlisteners;
	s->routes = xcalloc(nlisteners, sizeof(*s->routes));
	for (size_t i = 0; i < nlisteners; i++)
		s->routes[i] = xcalloc(nroutes[i], sizeof(**s->routes));
	return s;
}

void stats_free(struct stats *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->npools; i++)
		free(s->servers[i]);
	for (size_t i = 0; i < s->nlisteners; i++)
		free(s->routes[i]);
	free(s->routes);
	free(s->servers);
	free(s->pools);
	free(s->listeners);
	free(s);
}

void *stats_pick_listener(struct stats *s, size_t i, size_t unused)
{
	return &s->listeners[i];
}

void *stats_pick_pool(struct stats *s, size_t i, size_t unused)
{
	return &s->pools[i];
}

void *stats_pick_route(struct stats *s, size_t listener, size_t route)
{
	return &s->routes[listener][route];
}

void *stats_pick_server(struct stats *s, size_t pool, size_t server)
{
	return &s->servers[pool][server];
}

void stats_sum(void *out, struct stats *const *sets, size_t n,
	       size_t size, void *(*pick)(struct stats *s, size_t a, size_t b), size_t a, size_t b)
{
	/* Every counter struct is an array of counter_t, so one loop sums any. */
	uint64_t *o = out;
	size_t k = size / sizeof(counter_t);
	memset(out, 0, k * sizeof(uint64_t));
	for (size_t w = 0; w < n; w++) {
		counter_t *c = pick(sets[w], a, b);
		for (size_t j = 0; j < k; j++)
			o[j] += ctr_get(&c[j]);
	}
}
