/* source_hash: the same client address goes to the same server while that
 * server is a candidate. Weighted rendezvous hashing rather than hash modulo
 * n: when a server goes down or leaves, only its own clients move, and they
 * spread over the others by weight instead of landing on one neighbour. */
#include "balancer.h"

#include <stdlib.h>

/* Shared state: the rendezvous seed of each server, hashed from its name
 * once here rather than on every pick. */
static int sh_init(struct lb_pool *pool)
{
	uint64_t *seeds = xcalloc(pool->nservers, sizeof(*seeds));

	for (uint32_t i = 0; i < pool->nservers; i++)
		seeds[i] = lb_server_hash(&pool->servers[i], LB_RENDEZVOUS_SEED);
	pool->shared = seeds;
	return 0;
}

static void sh_destroy(struct lb_pool *pool)
{
	free(pool->shared);
	pool->shared = NULL;
}

static uint32_t sh_pick(const struct lb_pool *pool, void *wstate,
			const uint32_t *cand, uint32_t ncand,
			const struct lb_ctx *ctx)
{
	uint32_t picked;

	if (ctx->key)
		picked = lb_rendezvous(pool, pool->shared, cand, ncand,
				       ctx->key, ctx->keylen);
	else
		picked = lb_weighted_random(pool, cand, ncand, ctx->rng);
	return picked;
}

const struct lb_ops lb_source_hash_ops = {
	.name = "source_hash",
	.init = sh_init,
	.destroy = sh_destroy,
	.pick = sh_pick,
};
