/* random_two: power of two choices. Draw two distinct candidates, each with
 * probability proportional to weight, and keep the one with fewer open
 * streams per unit of weight. Nearly as even as least_connections without
 * every worker piling onto the same "least loaded" server between counter
 * updates, and stateless: it needs no per-worker memory. */
#include "balancer.h"

static inline uint64_t weight_at(const struct lb_pool *pool, uint32_t c)
{
	return atomic_load_explicit(&pool->servers[c].weight, memory_order_relaxed);
}

/* Position in cand[] of a weighted draw from `total`, skipping position
 * `skip` (whose weight the caller left out of total). */
static uint32_t draw(const struct lb_pool *pool, const uint32_t *cand,
		     uint32_t ncand, uint32_t skip, uint64_t total, uint64_t *rng)
{
	uint64_t r = (uint64_t)(((__uint128_t)lb_rand(rng) * total) >> 64);
	uint32_t pos = skip == ncand - 1 ? ncand - 2 : ncand - 1;

	/* A concurrent weight change can make the walk run off the end; the
	 * last position (not `skip`) is then as good as any. */
	for (uint32_t i = 0; i < ncand; i++) {
		uint64_t w;

		if (i == skip)
			continue;
		w = weight_at(pool, cand[i]);
		if (r < w) {
			pos = i;
			break;
		}
		r -= w;
	}
	return pos;
}

static uint32_t r2_pick(const struct lb_pool *pool, void *wstate,
			const uint32_t *cand, uint32_t ncand,
			const struct lb_ctx *ctx)
{
	uint64_t total = 0, wa, wb, aa, ab;
	uint32_t a, b, picked = cand[0];

	if (ncand == 1)
		goto out;
	for (uint32_t i = 0; i < ncand; i++)
		total += weight_at(pool, cand[i]);
	a = draw(pool, cand, ncand, UINT32_MAX, total, ctx->rng);
	wa = weight_at(pool, cand[a]);
	b = draw(pool, cand, ncand, a, total > wa ? total - wa : 0, ctx->rng);
	wb = weight_at(pool, cand[b]);
	aa = atomic_load_explicit(&pool->servers[cand[a]].active, memory_order_relaxed);
	ab = atomic_load_explicit(&pool->servers[cand[b]].active, memory_order_relaxed);
	/* ab/wb < aa/wa; on a tie keep the first draw, which is already
	 * weighted, so an idle pool is shared by weight. */
	picked = ab * wa < aa * wb ? cand[b] : cand[a];
out:
	return picked;
}

const struct lb_ops lb_random_two_ops = {
	.name = "random_two",
	.pick = r2_pick,
};
