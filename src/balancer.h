/* Balancer: pools of servers and the algorithms that pick one for a stream.
 *
 * A pool is built once per config generation and is read-only afterwards,
 * except for the small atomic fields of each server (state, weight, active).
 * Algorithms that need mutable state (round robin) keep it per worker, so a
 * pick never takes a lock and never writes a shared cache line except the
 * chosen server's `active` counter (done by the caller, not by pick).
 *
 * Which servers may be picked ("eligible"): usable (state UP, weight > 0) and
 * not already tried by this stream. Backup servers are candidates only when
 * no non-backup server is eligible, that is when every primary is unusable or
 * was already tried by this stream (so retries reach the backups). */
#ifndef FULCRUM_BALANCER_H
#define FULCRUM_BALANCER_H

#include "common.h"
#include <sys/socket.h>

/* The administrative state (config now, the admin API later). Health is
 * separate (lb_server.down), so a check never undoes an operator's drain. */
enum srv_state {
	SRV_UP = 0,
	SRV_DOWN,        /* taken out: no traffic */
	SRV_DRAIN,       /* no new streams, existing ones finish */
	SRV_MAINT,       /* no traffic, checks keep running */
};

enum lb_algo {
	LB_ROUND_ROBIN = 0,
	LB_LEAST_CONN,
	LB_RANDOM_TWO,
	LB_SOURCE_HASH,
	LB_MAGLEV,
	LB_ALGO_COUNT,
};

/* Effective weights are the configured weight times this, so that slow
 * start can ramp even a weight of 1 in small steps. */
#define LB_WEIGHT_SCALE 100

struct lb_server {
	uint32_t index;                 /* position in pool->servers */
	bool backup;
	_Atomic uint32_t weight;        /* effective weight; 0 = no new traffic */
	uint32_t conf_weight;           /* configured weight x LB_WEIGHT_SCALE */
	_Atomic int state;              /* enum srv_state */
	_Atomic bool down;              /* failed its health checks */
	_Atomic uint32_t pfails;        /* passive: failures of real traffic in a row */
	_Atomic uint64_t ejected_until; /* passive: ejected until this time (ms), 0 = not */
	_Atomic uint32_t ejections;     /* passive: ejections so far */
	_Atomic uint32_t downs, ups;    /* health state changes so far (checks and passive) */
	_Atomic uint32_t active;        /* open streams, all workers */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	const char *name;               /* "127.0.0.1:9001", owned by config */
};

struct lb_pool;

/* What a pick knows about the stream. */
struct lb_ctx {
	const void *key;                /* hash key (client address bytes); may be NULL */
	size_t keylen;
	const uint64_t *tried;          /* bitmap of server indexes already tried, or NULL */
	uint64_t *rng;                  /* per-worker xorshift state, never 0 */
};

struct lb_ops {
	const char *name;               /* config keyword, e.g. "round_robin" */
	/* Build shared read-only state from pool->servers (e.g. maglev table).
	 * Returns 0 or -errno. May be NULL. */
	int (*init)(struct lb_pool *pool);
	void (*destroy)(struct lb_pool *pool);
	/* Per-worker mutable state; NULL allowed for stateless algorithms. */
	void *(*worker_new)(const struct lb_pool *pool);
	void (*worker_free)(void *wstate);
	/* Pick among cand[0..ncand-1] (server indexes, all eligible, ncand > 0).
	 * Returns an index into pool->servers, never -1. */
	uint32_t (*pick)(const struct lb_pool *pool, void *wstate,
			 const uint32_t *cand, uint32_t ncand,
			 const struct lb_ctx *ctx);
};

struct lb_pool {
	const char *name;
	enum lb_algo algo;
	const struct lb_ops *ops;
	struct lb_server *servers;
	uint32_t nservers;
	void *shared;                   /* algorithm's read-only state */
	bool all_down_spread;           /* every server down: use them all anyway */
	/* Passive outlier detection (0 = off): the workers count failures and
	 * eject; the check thread ends ejections and logs both. */
	uint32_t passive_failures;
	uint64_t passive_ejection_ms;
	uint32_t passive_max_ejected;   /* servers at most out at once */
	_Atomic uint32_t nejected;
};

/* Real traffic to s failed (connect failure or timeout, or a 5xx when the
 * pool counts them): after passive_failures in a row the server is ejected
 * (unless that would eject more than passive_max_ejected). `now` is the
 * caller's clock in ms. Returns true when this call ejected it. */
bool lb_passive_failure(struct lb_pool *pool, struct lb_server *s, uint64_t now);
/* How long a server's ejection number k (0 for its first) lasts: twice the
 * one before, from passive_ejection_ms up to 10 times it. */
static inline uint64_t lb_ejection_ms(const struct lb_pool *pool, uint32_t k)
{
	return pool->passive_ejection_ms * (k >= 4 ? 10 : (1u << k) > 10 ? 10 : (1u << k));
}

/* Real traffic to s succeeded: its run of failures ends. */
static inline void lb_passive_success(struct lb_server *s)
{
	if (atomic_load_explicit(&s->pfails, memory_order_relaxed))
		atomic_store_explicit(&s->pfails, 0, memory_order_relaxed);
}


/* Look up an algorithm by keyword; NULL if unknown. */
const struct lb_ops *lb_ops_by_name(const char *name);
const struct lb_ops *lb_ops_get(enum lb_algo algo);
/* Space-separated list of all algorithm keywords, for error messages. */
const char *lb_algo_names(void);

/* Initialise a pool whose servers[] are filled in; runs ops->init.
 * Returns 0 or -errno. lb_pool_destroy frees only what lb_pool_init made. */
int lb_pool_init(struct lb_pool *pool, enum lb_algo algo);
void lb_pool_destroy(struct lb_pool *pool);

/* Pick a server for a stream. When every server is down and the pool says
 * all_down: spread, the servers failing their checks are used anyway (but
 * never those drained or in maintenance). `wstate` is this worker's state from
 * ops->worker_new (may be NULL when the algorithm has none).
 * Returns the server, or NULL when no eligible server is left. */
struct lb_server *lb_pick(const struct lb_pool *pool, void *wstate,
			  const struct lb_ctx *ctx);

/* A server can take new streams: UP, healthy and weight > 0 (ignores tried). */
static inline bool lb_server_usable(const struct lb_server *s)
{
	return atomic_load_explicit(&s->state, memory_order_relaxed) == SRV_UP &&
	       !atomic_load_explicit(&s->down, memory_order_relaxed) &&
	       !atomic_load_explicit(&s->ejected_until, memory_order_relaxed) &&
	       atomic_load_explicit(&s->weight, memory_order_relaxed) > 0;
}

static inline bool lb_tried(const struct lb_ctx *ctx, uint32_t i)
{
	return ctx->tried && (ctx->tried[i / 64] >> (i % 64)) & 1;
}

/* xorshift64* step; *s must be non-zero. */
static inline uint64_t lb_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* 64-bit hash of a byte string (used by source_hash and maglev). */
uint64_t lb_hash(const void *data, size_t len, uint64_t seed);

/* Maglev lookup table size of a pool: a prime above 100 x its non-backup
 * servers of weight > 0, from a few fixed size classes (65537 up to 655
 * servers) so that adding or removing a server does not re-deal every key.
 * 0 when the pool does not use maglev or has no such server. */
uint32_t lb_maglev_size(const struct lb_pool *pool);

/* --- For the algorithm files (lb_*.c) only. --- */

extern const struct lb_ops lb_round_robin_ops;
extern const struct lb_ops lb_least_conn_ops;
extern const struct lb_ops lb_random_two_ops;
extern const struct lb_ops lb_source_hash_ops;
extern const struct lb_ops lb_maglev_ops;

/* Hash of a server's identity (its name, else its address) under `seed`, so
 * hash-based placement follows the server, not its position in the pool. */
uint64_t lb_server_hash(const struct lb_server *s, uint64_t seed);

/* One candidate drawn with probability weight / total weight. Returns a
 * server index from cand[] (ncand > 0). */
uint32_t lb_weighted_random(const struct lb_pool *pool, const uint32_t *cand,
			    uint32_t ncand, uint64_t *rng);

/* Weighted rendezvous (highest random weight) of `key` over cand[]: the same
 * key picks the same server while it stays a candidate, and removing a
 * candidate moves only its own keys. `seeds` holds lb_server_hash(s,
 * LB_RENDEZVOUS_SEED) per server index, or is NULL to compute them here. */
#define LB_RENDEZVOUS_SEED 0x52454e44455a564fULL
uint32_t lb_rendezvous(const struct lb_pool *pool, const uint64_t *seeds,
		       const uint32_t *cand, uint32_t ncand,
		       const void *key, size_t keylen);

#endif
