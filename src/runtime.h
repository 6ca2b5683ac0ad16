/* A generation: one loaded config turned into what the workers run with
 * (pools with their balancer state, listeners with their limits, counters).
 * Immutable once built, except for the atomic fields. */
#ifndef FULCRUM_RUNTIME_H
#define FULCRUM_RUNTIME_H

#include "common.h"
#include "balancer.h"
#include "conf.h"
#include "stats.h"

#define STICKY_ID_LEN 16

struct pool_rt {
	const struct conf_pool *conf;
	struct lb_pool lb;
	uint32_t index;
	/* sticky: each server's cookie value (hex hash of its name), made at
	 * load so a request only compares; NULL without sticky. */
	char (*sticky_ids)[STICKY_ID_LEN + 1];
};

struct route_rt {
	const struct conf_route *conf;
	struct pool_rt *pool;             /* NULL for respond and redirect */
	char name[32];                    /* conf name, or "route<N>" */
};

struct listener_rt {
	const struct conf_listener *conf;
	struct pool_rt *pool;             /* tcp: the pool; http: the default pool or NULL */
	struct route_rt *routes;
	size_t nroutes;
	uint32_t index;
	_Atomic uint64_t active;          /* open connections, all workers */
	bool splice;                      /* forwarding path */
	/* The newest TLS contexts (one reference), read and replaced by the
	 * main thread only, on reload; workers hold their own references. */
	struct tls_server *tls;
};

struct gen {
	struct config *cfg;
	struct pool_rt *pools;
	size_t npools;
	struct listener_rt *listeners;
	size_t nlisteners;
	uint32_t nworkers;
	uint64_t max_connections;          /* resolved global limit */
	_Atomic uint64_t active;           /* open connections, all listeners */
	_Atomic uint32_t npaused;          /* listener sockets paused by a limit */
	struct stats **stats;              /* [nworkers] */
};

/* Build a generation from a loaded config (takes ownership of cfg).
 * Returns NULL with a message in *why on failure. */
struct gen *gen_new(struct config *cfg, uint32_t nworkers, const char **why);
void gen_free(struct gen *g);

/* Resolve `workers: auto` to the CPUs this process may run on. */
uint32_t gen_cpu_count(void);

/* Log every listener's, pool's and server's counters at info level. */
void gen_log_counters(struct gen *g);

#endif
