/* round_robin: smooth weighted round robin (nginx's algorithm). Each pick
 * adds every candidate's weight to its running score, takes the highest and
 * charges it the total, so weights 5,1,1 give a a b a c a a rather than
 * a a a a a b c: no server sees a burst. Scores are per worker, so picks
 * never share a cache line; across workers the shares still add up. */
#include "balancer.h"

#include <stdlib.h>

static void *rr_worker_new(const struct lb_pool *pool)
{
	/* One score per server, indexed by server index: a server that drops
	 * out of the candidates keeps its score and resumes from it. */
	return xcalloc(pool->nservers, sizeof(int64_t));
}

static void rr_worker_free(void *wstate)
{
	free(wstate);
}

static uint32_t rr_pick(const struct lb_pool *pool, void *wstate,
			const uint32_t *cand, uint32_t ncand,
			const struct lb_ctx *ctx)
{
	int64_t *score = wstate;
	int64_t total = 0;
	uint32_t best = cand[0];

	if (unlikely(!score)) {
		/* No worker state: still honour weights, just not smoothly. */
		best = lb_weighted_random(pool, cand, ncand, ctx->rng);
		goto out;
	}
	for (uint32_t i = 0; i < ncand; i++) {
		uint32_t c = cand[i];
		uint32_t w = atomic_load_explicit(&pool->servers[c].weight,
						  memory_order_relaxed);

		score[c] += w;
		total += w;
		/* Strictly greater: ties go to the earlier server, which is
		 * what makes the documented sequence exact. */
		if (score[c] > score[best])
			best = c;
	}
	score[best] -= total;
out:
	return best;
}

const struct lb_ops lb_round_robin_ops = {
	.name = "round_robin",
	.worker_new = rr_worker_new,
	.worker_free = rr_worker_free,
	.pick = rr_pick,
};
