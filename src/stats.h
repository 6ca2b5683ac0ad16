/* Counters. Each worker owns one set and is its only writer; readers (the
 * shutdown summary now, metrics and the admin API later) sum all workers. */
#ifndef FULCRUM_STATS_H
#define FULCRUM_STATS_H

#include "common.h"

/* Latency histogram buckets (ms upper bounds; the last is "above"). */
#define STATS_LAT_BUCKETS 12
extern const uint32_t stats_lat_bounds[STATS_LAT_BUCKETS - 1];

/* The statuses fulcrum refuses requests with, in counter order. */
#define STATS_REJECT_KINDS 8
extern const int stats_reject_status[STATS_REJECT_KINDS];
/* Count a refusal of `status` (400, 408, 413, ...). */
struct ctr_listener;
void stats_http_rejected(struct ctr_listener *l, int status);

/* TLS handshake failures by kind: enum tls_fail in tls.h. */
#define STATS_TLS_FAIL_KINDS 8

struct ctr_listener {
	counter_t accepted;       /* connections accepted (including refused ones) */
	counter_t active;         /* open now */
	counter_t refused_acl;    /* closed by allow/deny before any backend work */
	counter_t no_server;      /* closed because no server could be reached */
	counter_t bytes_in;       /* client -> backend */
	counter_t bytes_out;      /* backend -> client */
	counter_t requests;       /* http: request heads parsed */
	counter_t rejected;       /* http: refused by fulcrum with a 4xx */
	counter_t retries;        /* http: requests sent again to another server */
	counter_t status[5];      /* http: responses by class, 1xx .. 5xx */
	counter_t latency[STATS_LAT_BUCKETS]; /* http: total time, see stats_lat_bounds */
	counter_t rejected_by[STATS_REJECT_KINDS]; /* http: refusals by status, see stats_reject_status */
	counter_t tls_handshakes; /* ssl, https: completed handshakes */
	counter_t tls_resumed;    /* of which resumed a session */
	counter_t tls_failed[STATS_TLS_FAIL_KINDS]; /* failed handshakes by kind */
};

/* One route of an http listener. */
struct ctr_route {
	counter_t requests;
	counter_t status[5];
};

struct ctr_pool {
	counter_t streams;        /* streams that reached a server */
	counter_t connect_fail;
	counter_t no_server;
	counter_t bytes_in;
	counter_t bytes_out;
};

struct ctr_server {
	counter_t streams;        /* streams (or http exchanges) given to this server */
	counter_t active;
	counter_t connect_fail;
	counter_t bytes_in;
	counter_t bytes_out;
	counter_t status[5];      /* http: its responses by class */
};

/* One worker's counters for one generation. */
struct stats {
	struct ctr_listener *listeners;   /* [nlisteners] */
	struct ctr_pool *pools;           /* [npools] */
	struct ctr_server **servers;      /* [npools][nservers of that pool] */
	struct ctr_route **routes;        /* [nlisteners][nroutes of that listener] */
	size_t npools, nlisteners;
};

/* Allocate zeroed counters; nservers[i] is pool i's server count,
 * nroutes[i] listener i's route count. */
struct stats *stats_new(size_t nlisteners, size_t npools, const uint32_t *nservers,
			const uint32_t *nroutes);
/* Count one HTTP response of `status` that took `ms` in total. */
void stats_http_response(struct ctr_listener *l, struct ctr_route *r, int status, uint64_t ms);
void stats_free(struct stats *s);

/* Sum one object's counters over n worker sets (counter_t fields only). */
void stats_sum(void *out, struct stats *const *sets, size_t n,
	       size_t size, void *(*pick)(struct stats *s, size_t a, size_t b), size_t a, size_t b);
void *stats_pick_listener(struct stats *s, size_t i, size_t unused);
void *stats_pick_pool(struct stats *s, size_t i, size_t unused);
void *stats_pick_server(struct stats *s, size_t pool, size_t server);
void *stats_pick_route(struct stats *s, size_t listener, size_t route);

#endif
