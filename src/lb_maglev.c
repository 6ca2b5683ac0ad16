/* maglev: consistent hashing with a lookup table (Eisenbud et al., "Maglev:
 * A Fast and Reliable Software Network Load Balancer", NSDI 2016). A key
 * costs one hash and one table read; the table spreads keys by weight; and
 * when a server leaves the pool, little more than its own share of keys
 * moves. The table is built once per pool from the non-backup servers of
 * weight > 0 and read by every worker without locks.
 *
 * A server that is down, draining or already tried is not removed from the
 * table (that would need a rebuild, and would move other servers' keys):
 * its keys alone fall back to weighted rendezvous over the candidates. */
#include "balancer.h"

#include <stdlib.h>

#define MG_NONE UINT32_MAX
#define MG_KEY_SEED 0x4d41474c45564b59ULL     /* key -> slot */
#define MG_OFFSET_SEED 0x4d41474c45564f46ULL  /* server -> first slot */
#define MG_SKIP_SEED 0x4d41474c4556534bULL    /* server -> stride */
#define MG_ORDER_SEED 0x4d41474c45564f52ULL   /* server -> turn order */
/* Table size. It must not depend on the exact server count: slot = hash
 * % M, so a different M re-deals every key and removing one server would
 * move nearly all clients (measured: 89% for 10 -> 9 servers with M the
 * smallest prime above 100 x N). So M is the smallest prime above a power
 * of two, at least 2^16 (65537, the paper's small table), doubled while it
 * is not above 100 x N: every pool of up to 655 servers gets 65537, and M
 * only changes when a pool crosses a size class. 100 x N keeps every
 * server's share within about 1% of its weight. */
#define MG_MIN_CLASS 65536u
#define MG_SLOTS_PER_SERVER 100

struct maglev {
	uint32_t size;          /* M, prime; 0 when no server qualifies */
	uint32_t *table;        /* M server indexes */
	uint64_t *seeds;        /* rendezvous seed per server index */
};

/* One table-filling server: its permutation of the slots and its credit. */
struct mg_fill {
	uint32_t server;
	uint32_t weight;
	uint64_t order;
	uint64_t pos;           /* next slot of its permutation to try */
	uint64_t skip;
	uint64_t credit;
};

static bool is_prime(uint64_t n)
{
	bool prime = n >= 2;

	for (uint64_t d = 2; prime && d * d <= n; d++)
		if (n % d == 0)
			prime = false;
	return prime;
}

static int fill_cmp(const void *a, const void *b)
{
	const struct mg_fill *x = a, *y = b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return x->server < y->server ? -1 : x->server > y->server;
}

/* The paper's population, weighted: servers take turns in an order derived
 * from their names (so the table does not depend on config order); each
 * round a server adds its weight to its credit and claims its next free
 * preferred slot when the credit reaches the largest weight. The heaviest
 * server claims every round, a server of half its weight every other
 * round, so slot counts follow weights; with equal weights this is the
 * paper's algorithm exactly. */
static void populate(uint32_t *table, uint32_t size, struct mg_fill *f,
		     uint32_t n, uint32_t wmax)
{
	uint32_t filled = 0;

	for (uint32_t i = 0; i < size; i++)
		table[i] = MG_NONE;
	while (filled < size) {
		for (uint32_t i = 0; i < n && filled < size; i++) {
			f[i].credit += f[i].weight;
			if (f[i].credit < wmax)
				continue;
			f[i].credit -= wmax;
			/* Terminates: the slots this permutation already passed
			 * are all taken, and one slot is still free. */
			while (table[f[i].pos] != MG_NONE)
				f[i].pos = (f[i].pos + f[i].skip) % size;
			table[f[i].pos] = f[i].server;
			f[i].pos = (f[i].pos + f[i].skip) % size;
			filled++;
		}
	}
}

static int mg_init(struct lb_pool *pool)
{
	struct maglev *mg = xcalloc(1, sizeof(*mg));
	struct mg_fill *fill = NULL;
	uint32_t n = 0, wmax = 0;
	uint64_t size = 0;
	int rc = 0;

	mg->seeds = xcalloc(pool->nservers, sizeof(*mg->seeds));
	for (uint32_t i = 0; i < pool->nservers; i++) {
		const struct lb_server *s = &pool->servers[i];

		mg->seeds[i] = lb_server_hash(s, LB_RENDEZVOUS_SEED);
		if (!s->backup && atomic_load_explicit(&s->weight, memory_order_relaxed))
			n++;
	}
	if (n == 0)
		goto out;
	/* Keeps M (below 2^28) and the table (1 GiB at most) in range. */
	if (n > (1u << 20)) {
		rc = -E2BIG;
		goto out;
	}
	size = MG_MIN_CLASS;
	while (size <= (uint64_t)n * MG_SLOTS_PER_SERVER)
		size *= 2;
	for (size++; !is_prime(size); size++)
		;
	fill = xcalloc(n, sizeof(*fill));
	n = 0;
	for (uint32_t i = 0; i < pool->nservers; i++) {
		const struct lb_server *s = &pool->servers[i];
		/* Weight read once: the table is a snapshot of this moment. */
		uint32_t w = atomic_load_explicit(&s->weight, memory_order_relaxed);

		if (s->backup || w == 0)
			continue;
		fill[n] = (struct mg_fill){
			.server = i,
			.weight = w,
			.order = lb_server_hash(s, MG_ORDER_SEED),
			.pos = lb_server_hash(s, MG_OFFSET_SEED) % size,
			.skip = lb_server_hash(s, MG_SKIP_SEED) % (size - 1) + 1,
		};
		if (w > wmax)
			wmax = w;
		n++;
	}
	qsort(fill, n, sizeof(*fill), fill_cmp);
	mg->size = (uint32_t)size;
	mg->table = xmalloc(size * sizeof(*mg->table));
	populate(mg->table, mg->size, fill, n, wmax);
out:
	free(fill);
	if (rc < 0) {
		free(mg->seeds);
		free(mg);
	} else {
		pool->shared = mg;
	}
	return rc;
}

static void mg_destroy(struct lb_pool *pool)
{
	struct maglev *mg = pool->shared;

	if (mg) {
		free(mg->table);
		free(mg->seeds);
		free(mg);
	}
	pool->shared = NULL;
}

static uint32_t mg_pick(const struct lb_pool *pool, void *wstate,
			const uint32_t *cand, uint32_t ncand,
			const struct lb_ctx *ctx)
{
	const struct maglev *mg = pool->shared;
	uint32_t picked = MG_NONE;

	if (!ctx->key) {
		picked = lb_weighted_random(pool, cand, ncand, ctx->rng);
		goto out;
	}
	if (mg && mg->size) {
		uint64_t h = lb_hash(ctx->key, ctx->keylen, MG_KEY_SEED);
		uint32_t s = mg->table[((__uint128_t)h * mg->size) >> 64];

		/* Only a candidate may be returned; the scan is no dearer than
		 * building cand[] was. */
		for (uint32_t i = 0; i < ncand; i++) {
			if (cand[i] == s) {
				picked = s;
				break;
			}
		}
	}
	if (picked == MG_NONE)
		picked = lb_rendezvous(pool, mg ? mg->seeds : NULL, cand, ncand,
				       ctx->key, ctx->keylen);
out:
	return picked;
}

uint32_t lb_maglev_size(const struct lb_pool *pool)
{
	const struct maglev *mg = pool->shared;

	return pool->ops == &lb_maglev_ops && mg ? mg->size : 0;
}

const struct lb_ops lb_maglev_ops = {
	.name = "maglev",
	.init = mg_init,
	.destroy = mg_destroy,
	.pick = mg_pick,
};
