/* least_connections: the candidate with the fewest open streams per unit of
 * weight. Ties (common at low load, where every server has 0) are broken by
 * smooth weighted round robin among the tied servers, as nginx does: a plain
 * rotation would split short sequential streams evenly and ignore weights,
 * and "always the first" would send them all to one server. */
#include "balancer.h"

#include <stdlib.h>

static void *lc_worker_new(const struct lb_pool *pool)
{
	return xcalloc(pool->nservers, sizeof(int64_t));
}

static void lc_worker_free(void *wstate)
{
	free(wstate);
}

struct load {
	uint64_t active;
	uint64_t weight;
};

static struct load load_of(const struct lb_server *s)
{
	return (struct load){
		.active = atomic_load_explicit(&s->active, memory_order_relaxed),
		.weight = atomic_load_explicit(&s->weight, memory_order_relaxed),
	};
}

/* a.active / a.weight versus b's, without division: both factors are
 * 32-bit so the products fit in 64 bits. <0, 0, >0 like strcmp. */
static int load_cmp(struct load a, struct load b)
{
	uint64_t l = a.active * b.weight, r = b.active * a.weight;

	return (l > r) - (l < r);
}

#define LC_KEEP 64

static uint32_t lc_pick(const struct lb_pool *pool, void *wstate,
			const uint32_t *cand, uint32_t ncand,
			const struct lb_ctx *ctx)
{
	int64_t *score = wstate;
	struct load min, ld[LC_KEEP];
	bool keep = ncand <= LC_KEEP;
	uint32_t best = cand[0], start = 0;
	int64_t total = 0;
	bool first = true;

	/* Loads are read once when the pool is small so that both passes see
	 * the same numbers; for big pools a second read may differ, which only
	 * makes the tie set slightly stale (if no tie is left, cand[0] is
	 * taken), never picks a non-candidate. */
	min = load_of(&pool->servers[cand[0]]);
	for (uint32_t i = 0; i < ncand; i++) {
		struct load l = load_of(&pool->servers[cand[i]]);

		if (keep)
			ld[i] = l;
		if (load_cmp(l, min) < 0)
			min = l;
	}
	if (unlikely(!score))
		start = (uint32_t)(lb_rand(ctx->rng) % ncand);
	for (uint32_t k = 0, i = start; k < ncand; k++, i = i + 1 == ncand ? 0 : i + 1) {
		uint32_t c = cand[i];
		struct load l = keep ? ld[i] : load_of(&pool->servers[c]);

		if (load_cmp(l, min) != 0)
			continue;
		if (!score) {
			/* No worker state: the first tie after a random start. */
			best = c;
			break;
		}
		score[c] += (int64_t)l.weight;
		total += (int64_t)l.weight;
		if (first || score[c] > score[best])
			best = c;
		first = false;
	}
	if (score && !first)
		score[best] -= total;
	return best;
}

const struct lb_ops lb_least_conn_ops = {
	.name = "least_connections",
	.worker_new = lc_worker_new,
	.worker_free = lc_worker_free,
	.pick = lc_pick,
};
