/* Balancer core: the algorithm registry, pool set-up, the candidate filter
 * every pick goes through, and the hashing helpers the algorithms share. */
#include "balancer.h"

#include <endian.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct lb_ops *const algos[LB_ALGO_COUNT] = {
	[LB_ROUND_ROBIN] = &lb_round_robin_ops,
	[LB_LEAST_CONN] = &lb_least_conn_ops,
	[LB_RANDOM_TWO] = &lb_random_two_ops,
	[LB_SOURCE_HASH] = &lb_source_hash_ops,
	[LB_MAGLEV] = &lb_maglev_ops,
};

const struct lb_ops *lb_ops_by_name(const char *name)
{
	const struct lb_ops *found = NULL;

	for (size_t i = 0; name && i < ARRAY_LEN(algos); i++) {
		if (strcmp(algos[i]->name, name) == 0) {
			found = algos[i];
			break;
		}
	}
	return found;
}

const struct lb_ops *lb_ops_get(enum lb_algo algo)
{
	return (unsigned)algo < LB_ALGO_COUNT ? algos[algo] : NULL;
}

/* Built once from the table so it can never disagree with it. */
static char algo_names[128];
static pthread_once_t algo_names_once = PTHREAD_ONCE_INIT;

static void algo_names_build(void)
{
	size_t off = 0;

	for (size_t i = 0; i < ARRAY_LEN(algos); i++)
		off += (size_t)snprintf(algo_names + off, sizeof(algo_names) - off,
					"%s%s", i ? " " : "", algos[i]->name);
}

const char *lb_algo_names(void)
{
	pthread_once(&algo_names_once, algo_names_build);
	return algo_names;
}

int lb_pool_init(struct lb_pool *pool, enum lb_algo algo)
{
	int rc = 0;

	pool->shared = NULL;
	pool->ops = lb_ops_get(algo);
	if (!pool->ops || (pool->nservers && !pool->servers)) {
		pool->ops = NULL;
		rc = -EINVAL;
		goto out;
	}
	pool->algo = algo;
	for (uint32_t i = 0; i < pool->nservers; i++)
		pool->servers[i].index = i;
	if (pool->ops->init) {
		rc = pool->ops->init(pool);
		if (rc < 0)
			pool->ops = NULL;
	}
out:
	return rc;
}

void lb_pool_destroy(struct lb_pool *pool)
{
	if (pool->ops && pool->ops->destroy)
		pool->ops->destroy(pool);
	pool->shared = NULL;
	pool->ops = NULL;
}

/* Candidate buffer. Small pools use the stack; larger ones a per-thread
 * buffer that only grows, so a pick never allocates once a worker has seen
 * its largest pool and never shares memory with another worker. The key
 * exists only to free the buffer when the thread exits. */
#define CAND_STACK 256

static __thread uint32_t *tl_cand;
static __thread uint32_t tl_cand_cap;
static pthread_key_t cand_key;
static bool cand_key_ok;
static pthread_once_t cand_once = PTHREAD_ONCE_INIT;

static void cand_key_make(void)
{
	cand_key_ok = pthread_key_create(&cand_key, free) == 0;
}

static uint32_t *cand_buf(uint32_t n)
{
	if (unlikely(tl_cand_cap < n)) {
		pthread_once(&cand_once, cand_key_make);
		tl_cand = xrealloc(tl_cand, (size_t)n * sizeof(*tl_cand));
		tl_cand_cap = n;
		if (cand_key_ok)
			pthread_setspecific(cand_key, tl_cand);
	}
	return tl_cand;
}

static uint32_t collect(const struct lb_pool *pool, const struct lb_ctx *ctx,
			bool backup, bool ignore_health, uint32_t *cand)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < pool->nservers; i++) {
		const struct lb_server *s = &pool->servers[i];
		bool ok = ignore_health ?
			atomic_load_explicit(&s->state, memory_order_relaxed) == SRV_UP &&
			atomic_load_explicit(&s->weight, memory_order_relaxed) > 0 :
			lb_server_usable(s);

		if (s->backup == backup && ok && !lb_tried(ctx, i))
			cand[n++] = i;
	}
	return n;
}

struct lb_server *lb_pick(const struct lb_pool *pool, void *wstate,
			  const struct lb_ctx *ctx)
{
	uint32_t stack[CAND_STACK];
	uint32_t *cand = stack;
	uint32_t ncand;
	struct lb_server *picked = NULL;

	if (unlikely(!pool->ops || pool->nservers == 0))
		goto out;
	if (pool->nservers > CAND_STACK)
		cand = cand_buf(pool->nservers);
	/* Backups are a second pass rather than a filter in one pass: the common
	 * case has a primary, and then backups cost nothing. */
	ncand = collect(pool, ctx, false, false, cand);
	if (ncand == 0)
		ncand = collect(pool, ctx, true, false, cand);
	if (ncand == 0 && pool->all_down_spread) {
		ncand = collect(pool, ctx, false, true, cand);
		if (ncand == 0)
			ncand = collect(pool, ctx, true, true, cand);
	}
	if (ncand == 0)
		goto out;
	picked = &pool->servers[pool->ops->pick(pool, wstate, cand, ncand, ctx)];
out:
	return picked;
}

/* lb_hash: the wyhash construction (public domain): 128-bit multiply-fold
 * mixing, fast on the 4- and 16-byte keys that client addresses are, and
 * with good avalanche so structured keys (sequential addresses) spread.
 * Input is read little-endian so every host maps keys alike. */
#define HP0 0xa0761d6478bd642fULL
#define HP1 0xe7037ed1a0b428dbULL

static inline uint64_t mum_fold(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;

	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline uint64_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

uint64_t lb_hash(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *p = data;
	uint64_t a, b;
	__uint128_t r;

	seed ^= mum_fold(seed ^ HP0, HP1);
	if (len <= 16) {
		if (len >= 4) {
			size_t off = (len >> 3) << 2;

			a = rd32(p) << 32 | rd32(p + off);
			b = rd32(p + len - 4) << 32 | rd32(p + len - 4 - off);
		} else if (len > 0) {
			a = (uint64_t)p[0] << 16 | (uint64_t)p[len >> 1] << 8 |
			    p[len - 1];
			b = 0;
		} else {
			a = b = 0;
		}
	} else {
		size_t left = len;

		while (left > 16) {
			seed = mum_fold(rd64(p) ^ HP1, rd64(p + 8) ^ seed);
			p += 16;
			left -= 16;
		}
		/* The last 16 bytes, overlapping what the loop read if needed. */
		a = rd64(p + left - 16);
		b = rd64(p + left - 8);
	}
	r = (__uint128_t)(a ^ HP1) * (b ^ seed);
	return mum_fold((uint64_t)r ^ HP0 ^ len, (uint64_t)(r >> 64) ^ HP1);
}

uint64_t lb_server_hash(const struct lb_server *s, uint64_t seed)
{
	uint64_t h;

	if (s->name)
		h = lb_hash(s->name, strlen(s->name), seed);
	else if (s->addrlen)
		h = lb_hash(&s->addr, s->addrlen, seed);
	else
		h = lb_hash(&s->index, sizeof(s->index), seed);
	return h;
}

/* Unbiased enough for 64-bit x and 32-bit-ish n, and no division. */
static inline uint64_t scale(uint64_t x, uint64_t n)
{
	return (uint64_t)(((__uint128_t)x * n) >> 64);
}

uint32_t lb_weighted_random(const struct lb_pool *pool, const uint32_t *cand,
			    uint32_t ncand, uint64_t *rng)
{
	uint64_t total = 0, r;
	uint32_t picked = cand[ncand - 1];

	for (uint32_t i = 0; i < ncand; i++)
		total += atomic_load_explicit(&pool->servers[cand[i]].weight,
					      memory_order_relaxed);
	r = scale(lb_rand(rng), total);
	/* A weight may change between the two passes; then the walk can run
	 * off the end and the last candidate, still a candidate, is taken. */
	for (uint32_t i = 0; i < ncand; i++) {
		uint64_t w = atomic_load_explicit(&pool->servers[cand[i]].weight,
						  memory_order_relaxed);
		if (r < w) {
			picked = cand[i];
			break;
		}
		r -= w;
	}
	return picked;
}

uint32_t lb_rendezvous(const struct lb_pool *pool, const uint64_t *seeds,
		       const uint32_t *cand, uint32_t ncand,
		       const void *key, size_t keylen)
{
	uint32_t picked = cand[0];
	double best = -1.0;

	for (uint32_t i = 0; i < ncand; i++) {
		const struct lb_server *s = &pool->servers[cand[i]];
		uint64_t seed = seeds ? seeds[cand[i]]
				      : lb_server_hash(s, LB_RENDEZVOUS_SEED);
		uint64_t h = lb_hash(key, keylen, seed);
		/* u uniform in (0,1); -w / ln(u) is an exponential race scaled
		 * by weight, so server i wins a share w_i / sum(w) of keys. */
		double u = ((double)(h >> 11) + 0.5) * 0x1p-53;
		double w = atomic_load_explicit(&s->weight, memory_order_relaxed);
		double score = w / -log(u);

		if (score > best) {
			best = score;
			picked = cand[i];
		}
	}
	return picked;
}

bool lb_passive_failure(struct lb_pool *pool, struct lb_server *s, uint64_t now)
{
	uint64_t none = 0, dur;
	uint32_t n, k;
	if (!pool->passive_failures)
		return false;
	n = atomic_fetch_add_explicit(&s->pfails, 1, memory_order_relaxed) + 1;
	if (n < pool->passive_failures || atomic_load_explicit(&s->ejected_until, memory_order_relaxed))
		return false;
	if (atomic_fetch_add(&pool->nejected, 1) >= pool->passive_max_ejected) {
		atomic_fetch_sub(&pool->nejected, 1);
		return false;
	}
	/* Each ejection of a server lasts twice the one before, up to 10 times
	 * the base. */
	k = atomic_fetch_add(&s->ejections, 1);
	dur = lb_ejection_ms(pool, k);
	if (!atomic_compare_exchange_strong(&s->ejected_until, &none, now + dur)) {
		atomic_fetch_sub(&s->ejections, 1);
		atomic_fetch_sub(&pool->nejected, 1);
		return false;
	}
	return true;
}
