/* Balancer algorithms: each test checks something a user of the pool would
 * see: traffic shares, which servers get traffic, and which clients move. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "balancer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXS 720
#define NPICKS 100000

struct tpool {
	struct lb_pool pool;
	struct lb_server srv[MAXS];
	char names[MAXS][32];
	void *wstate;
	uint64_t rng;
};

static const uint32_t W1234[] = { 1, 2, 3, 4 };
static const uint32_t WEQ[] = { 1, 1, 1, 1 };

/* Test-side randomness (which stream closes, etc.), apart from the pool's. */
static uint64_t trng = 0x9e3779b97f4a7c15ULL;

/* Server k is named after ids[k] (default k + 1), so a server keeps its
 * identity when others are removed or reordered. */
static struct tpool *tpool_new(enum lb_algo algo, uint32_t n,
			       const uint32_t *weights, const uint32_t *ids)
{
	struct tpool *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	assert_true(n <= MAXS);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t id = ids ? ids[k] : k + 1;

		snprintf(t->names[k], sizeof(t->names[k]), "10.1.%u.%u:8080",
			 id / 256, id % 256);
		t->srv[k].name = t->names[k];
		atomic_init(&t->srv[k].weight, weights ? weights[k] : 1);
		atomic_init(&t->srv[k].state, SRV_UP);
		atomic_init(&t->srv[k].active, 0);
	}
	t->pool.name = "test";
	t->pool.servers = t->srv;
	t->pool.nservers = n;
	t->rng = 0x243f6a8885a308d3ULL;
	return t;
}

static void tpool_start(struct tpool *t, enum lb_algo algo)
{
	assert_int_equal(lb_pool_init(&t->pool, algo), 0);
	t->wstate = t->pool.ops->worker_new ? t->pool.ops->worker_new(&t->pool) : NULL;
}

static struct tpool *tpool_make(enum lb_algo algo, uint32_t n,
				const uint32_t *weights, const uint32_t *ids)
{
	struct tpool *t = tpool_new(algo, n, weights, ids);

	tpool_start(t, algo);
	return t;
}

static void tpool_free(struct tpool *t)
{
	if (t->wstate)
		t->pool.ops->worker_free(t->wstate);
	lb_pool_destroy(&t->pool);
	free(t);
}

static struct lb_server *pick(struct tpool *t, const void *key, size_t keylen,
			      const uint64_t *tried)
{
	struct lb_ctx ctx = {
		.key = key, .keylen = keylen, .tried = tried, .rng = &t->rng,
	};

	return lb_pick(&t->pool, t->wstate, &ctx);
}

static int32_t pick_idx(struct tpool *t, const void *key, size_t keylen,
			const uint64_t *tried)
{
	struct lb_server *s = pick(t, key, keylen, tried);

	return s ? (int32_t)s->index : -1;
}

/* Distinct client addresses, deliberately sequential: 10.x.y.z and
 * 2001:db8::x:y. A weak hash would clump them. */
static void key4(uint32_t i, uint8_t k[4])
{
	k[0] = 10;
	k[1] = (uint8_t)(i >> 16);
	k[2] = (uint8_t)(i >> 8);
	k[3] = (uint8_t)i;
}

static void key16(uint32_t i, uint8_t k[16])
{
	static const uint8_t prefix[12] = { 0x20, 0x01, 0x0d, 0xb8 };

	memcpy(k, prefix, 12);
	k[12] = (uint8_t)(i >> 24);
	k[13] = (uint8_t)(i >> 16);
	k[14] = (uint8_t)(i >> 8);
	k[15] = (uint8_t)i;
}

static int32_t pick_key4(struct tpool *t, uint32_t i, const uint64_t *tried)
{
	uint8_t k[4];

	key4(i, k);
	return pick_idx(t, k, sizeof(k), tried);
}

/* Every server's share of `total` within 5% (relative) of weight / sum. */
static void check_shares(const char *what, const uint64_t *counts,
			 const uint32_t *weights, uint32_t n, uint64_t total)
{
	uint64_t wsum = 0;
	bool ok = true;

	for (uint32_t i = 0; i < n; i++)
		wsum += weights[i];
	for (uint32_t i = 0; i < n; i++) {
		double want = (double)total * weights[i] / (double)wsum;
		double err = fabs((double)counts[i] - want) / want;

		if (err > 0.05) {
			print_error("%s: server %u (weight %u) got %llu, want %.0f (off %.1f%%)\n",
				    what, i, weights[i], (unsigned long long)counts[i],
				    want, err * 100);
			ok = false;
		}
	}
	assert_true(ok);
}

static void set_state(struct tpool *t, uint32_t i, enum srv_state st)
{
	atomic_store(&t->srv[i].state, st);
}

/* --- registry --- */

static void test_ops_by_name(void **state)
{
	static const char *const kw[LB_ALGO_COUNT] = {
		[LB_ROUND_ROBIN] = "round_robin",
		[LB_LEAST_CONN] = "least_connections",
		[LB_RANDOM_TWO] = "random_two",
		[LB_SOURCE_HASH] = "source_hash",
		[LB_MAGLEV] = "maglev",
	};
	char names[256];
	int words = 0;

	for (int a = 0; a < LB_ALGO_COUNT; a++) {
		const struct lb_ops *ops = lb_ops_by_name(kw[a]);

		assert_non_null(ops);
		assert_ptr_equal(ops, lb_ops_get((enum lb_algo)a));
		assert_string_equal(ops->name, kw[a]);
		assert_non_null(ops->pick);
	}
	assert_null(lb_ops_by_name("round-robin"));
	assert_null(lb_ops_by_name("leastconn"));
	assert_null(lb_ops_by_name(""));
	assert_null(lb_ops_by_name(NULL));
	assert_null(lb_ops_get(LB_ALGO_COUNT));

	/* The list in error messages names exactly the accepted keywords. */
	snprintf(names, sizeof(names), "%s", lb_algo_names());
	for (char *save, *w = strtok_r(names, " ", &save); w;
	     w = strtok_r(NULL, " ", &save), words++)
		assert_non_null(lb_ops_by_name(w));
	assert_int_equal(words, LB_ALGO_COUNT);
}

static void test_pool_init_errors(void **state)
{
	struct tpool *t = tpool_new(LB_ROUND_ROBIN, 0, NULL, NULL);

	assert_int_equal(lb_pool_init(&t->pool, LB_ALGO_COUNT), -EINVAL);
	assert_null(pick(t, NULL, 0, NULL));
	for (int a = 0; a < LB_ALGO_COUNT; a++) {
		tpool_start(t, (enum lb_algo)a);
		assert_null(pick(t, "k", 1, NULL));
		if (t->wstate)
			t->pool.ops->worker_free(t->wstate);
		t->wstate = NULL;
		lb_pool_destroy(&t->pool);
	}
	tpool_free(t);
}

/* --- traffic shares --- */

static void shares_plain(enum lb_algo algo, const uint32_t *w, uint32_t n)
{
	struct tpool *t = tpool_make(algo, n, w, NULL);
	uint64_t counts[MAXS] = { 0 };

	for (uint32_t i = 0; i < NPICKS; i++)
		counts[pick_idx(t, NULL, 0, NULL)]++;
	check_shares(lb_ops_get(algo)->name, counts, w, n, NPICKS);
	tpool_free(t);
}

/* Hash algorithms: 100,000 distinct clients, both address families. */
static void shares_keyed(enum lb_algo algo, const uint32_t *w, uint32_t n)
{
	struct tpool *t = tpool_make(algo, n, w, NULL);
	uint64_t c4[MAXS] = { 0 }, c6[MAXS] = { 0 };
	uint8_t k[16];

	for (uint32_t i = 0; i < NPICKS; i++) {
		c4[pick_key4(t, i, NULL)]++;
		key16(i, k);
		c6[pick_idx(t, k, 16, NULL)]++;
	}
	check_shares("ipv4 keys", c4, w, n, NPICKS);
	check_shares("ipv6 keys", c6, w, n, NPICKS);
	tpool_free(t);
}

/* Load-aware algorithms: keep 1000 streams open; each step one stream,
 * chosen at random (so a server closes streams in proportion to how many it
 * has), ends and a new one is picked. In steady state a server's share of
 * picks is its share of open streams, which equals its weight share only if
 * the algorithm weighs `active` by weight: ignoring weights gives 25% each. */
static void shares_loaded(enum lb_algo algo, const uint32_t *w, uint32_t n)
{
	enum { CONC = 1000 };
	struct tpool *t = tpool_make(algo, n, w, NULL);
	uint32_t *open = calloc(CONC, sizeof(*open));
	uint64_t counts[MAXS] = { 0 };

	assert_non_null(open);
	for (uint32_t j = 0; j < CONC; j++) {
		open[j] = (uint32_t)pick_idx(t, NULL, 0, NULL);
		atomic_fetch_add(&t->srv[open[j]].active, 1);
	}
	for (uint32_t i = 0; i < NPICKS; i++) {
		uint32_t j = (uint32_t)(lb_rand(&trng) % CONC);

		atomic_fetch_sub(&t->srv[open[j]].active, 1);
		open[j] = (uint32_t)pick_idx(t, NULL, 0, NULL);
		atomic_fetch_add(&t->srv[open[j]].active, 1);
		counts[open[j]]++;
	}
	check_shares(lb_ops_get(algo)->name, counts, w, n, NPICKS);
	free(open);
	tpool_free(t);
}

static void test_shares_round_robin(void **state)
{
	shares_plain(LB_ROUND_ROBIN, W1234, 4);
	shares_plain(LB_ROUND_ROBIN, WEQ, 4);
}

static void test_shares_least_conn(void **state)
{
	shares_loaded(LB_LEAST_CONN, W1234, 4);
	shares_loaded(LB_LEAST_CONN, WEQ, 4);
	/* Idle pool (streams end before the next starts): still by weight. */
	shares_plain(LB_LEAST_CONN, W1234, 4);
	shares_plain(LB_LEAST_CONN, WEQ, 4);
}

static void test_shares_random_two(void **state)
{
	shares_loaded(LB_RANDOM_TWO, W1234, 4);
	shares_loaded(LB_RANDOM_TWO, WEQ, 4);
	shares_plain(LB_RANDOM_TWO, W1234, 4);
	shares_plain(LB_RANDOM_TWO, WEQ, 4);
}

static void test_shares_source_hash(void **state)
{
	shares_keyed(LB_SOURCE_HASH, W1234, 4);
	shares_keyed(LB_SOURCE_HASH, WEQ, 4);
	/* No key (e.g. a Unix-socket client): random, still by weight. */
	shares_plain(LB_SOURCE_HASH, W1234, 4);
}

static void test_shares_maglev(void **state)
{
	shares_keyed(LB_MAGLEV, W1234, 4);
	shares_keyed(LB_MAGLEV, WEQ, 4);
	shares_plain(LB_MAGLEV, W1234, 4);
}

/* --- algorithm-specific behaviour --- */

static void test_round_robin_smooth(void **state)
{
	static const uint32_t w[] = { 5, 1, 1 };
	struct tpool *t = tpool_make(LB_ROUND_ROBIN, 3, w, NULL);
	char seq[15] = { 0 };

	/* nginx's documented order, twice round: no burst of five a's. */
	for (int i = 0; i < 14; i++)
		seq[i] = (char)('a' + pick_idx(t, NULL, 0, NULL));
	assert_string_equal(seq, "aabacaaaabacaa");

	/* Only candidates take part: with a down, b and c alternate. */
	set_state(t, 0, SRV_DOWN);
	for (int i = 0; i < 6; i++)
		seq[i] = (char)('a' + pick_idx(t, NULL, 0, NULL));
	seq[6] = 0;
	assert_true(strcmp(seq, "bcbcbc") == 0 || strcmp(seq, "cbcbcb") == 0);
	tpool_free(t);
}

/* More servers than lb_pick keeps on its stack: exact round robin still. */
static void test_round_robin_large_pool(void **state)
{
	struct tpool *t = tpool_make(LB_ROUND_ROBIN, 300, NULL, NULL);
	uint32_t counts[300] = { 0 };
	uint64_t tried[5] = { 0 };

	for (int i = 0; i < 3000; i++)
		counts[pick_idx(t, NULL, 0, NULL)]++;
	for (int i = 0; i < 300; i++)
		assert_int_equal(counts[i], 10);
	for (int i = 0; i < 299; i++)
		tried[i / 64] |= 1ULL << (i % 64);
	assert_int_equal(pick_idx(t, NULL, 0, tried), 299);
	tpool_free(t);
}

static void test_least_conn_prefers_least_loaded(void **state)
{
	static const uint32_t w[] = { 1, 4, 1 };
	struct tpool *t = tpool_make(LB_LEAST_CONN, 3, w, NULL);
	int seen[3] = { 0 };

	/* 2/1 and 1/1 versus 3/4: the weight-4 server is the least loaded
	 * although it has the most streams. */
	atomic_store(&t->srv[0].active, 2);
	atomic_store(&t->srv[1].active, 3);
	atomic_store(&t->srv[2].active, 1);
	for (int i = 0; i < 100; i++)
		assert_int_equal(pick_idx(t, NULL, 0, NULL), 1);

	/* Equal load (1/1 and 4/4): the tied servers share by weight rather
	 * than the first taking all. */
	atomic_store(&t->srv[1].active, 4);
	for (int i = 0; i < 5; i++)
		seen[pick_idx(t, NULL, 0, NULL)]++;
	assert_int_equal(seen[0], 0);
	assert_int_equal(seen[1], 4);
	assert_int_equal(seen[2], 1);
	tpool_free(t);
}

/* Two candidates, one busy: power of two choices always sees both. */
static void test_random_two_distinct(void **state)
{
	struct tpool *t = tpool_make(LB_RANDOM_TWO, 2, NULL, NULL);

	atomic_store(&t->srv[0].active, 5);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(pick_idx(t, NULL, 0, NULL), 1);
	tpool_free(t);
}

/* --- which servers may be picked --- */

static void check_unusable(enum lb_algo algo)
{
	static const uint32_t w[] = { 1, 0, 1, 1, 1, 2 };
	struct tpool *t = tpool_new(algo, 6, w, NULL);
	uint32_t counts[6] = { 0 };

	set_state(t, 2, SRV_DOWN);
	set_state(t, 3, SRV_DRAIN);
	set_state(t, 4, SRV_MAINT);
	tpool_start(t, algo);
	for (uint32_t i = 0; i < 10000; i++)
		counts[pick_key4(t, i, NULL)]++;
	for (int i = 1; i <= 4; i++)
		assert_int_equal(counts[i], 0);
	assert_true(counts[0] > 0 && counts[5] > counts[0]);
	tpool_free(t);
}

static void test_unusable_never_picked(void **state)
{
	for (int a = 0; a < LB_ALGO_COUNT; a++)
		check_unusable((enum lb_algo)a);
}

static void check_backup(enum lb_algo algo)
{
	/* 0, 1 primaries; 2, 3 backups. */
	struct tpool *t = tpool_new(algo, 4, NULL, NULL);
	uint64_t tried = 0;
	uint32_t counts[4] = { 0 };

	t->srv[2].backup = t->srv[3].backup = true;
	tpool_start(t, algo);

	for (uint32_t i = 0; i < 2000; i++)
		counts[pick_key4(t, i, NULL)]++;
	assert_true(counts[0] > 0 && counts[1] > 0);
	assert_int_equal(counts[2] + counts[3], 0);

	/* One primary down: the other takes everything, backups still idle. */
	set_state(t, 0, SRV_DOWN);
	for (uint32_t i = 0; i < 2000; i++)
		assert_int_equal(pick_key4(t, i, NULL), 1);

	/* Both primaries down (or out of weight): backups share the load. */
	atomic_store(&t->srv[1].weight, 0);
	memset(counts, 0, sizeof(counts));
	for (uint32_t i = 0; i < 2000; i++)
		counts[pick_key4(t, i, NULL)]++;
	assert_true(counts[2] > 0 && counts[3] > 0);
	assert_int_equal(counts[0] + counts[1], 0);

	/* Primaries up but both tried by this stream: the retry goes to a
	 * backup; with every server tried there is nothing left. */
	set_state(t, 0, SRV_UP);
	atomic_store(&t->srv[1].weight, 1);
	tried = 1 << 0 | 1 << 1;
	for (uint32_t i = 0; i < 200; i++) {
		int32_t s = pick_key4(t, i, &tried);

		assert_true(s == 2 || s == 3);
	}
	tried |= 1 << 2;
	assert_int_equal(pick_key4(t, 7, &tried), 3);
	tried |= 1 << 3;
	assert_int_equal(pick_key4(t, 7, &tried), -1);

	/* A primary not yet tried still beats the backups. */
	tried = 1 << 0;
	assert_int_equal(pick_key4(t, 7, &tried), 1);

	/* Everything down: no server. */
	for (int i = 0; i < 4; i++)
		set_state(t, (uint32_t)i, SRV_DOWN);
	assert_int_equal(pick_key4(t, 7, NULL), -1);
	assert_null(pick(t, NULL, 0, NULL));
	tpool_free(t);
}

static void test_backup_servers(void **state)
{
	for (int a = 0; a < LB_ALGO_COUNT; a++)
		check_backup((enum lb_algo)a);
}

/* --- consistent hashing --- */

static void map_keys(struct tpool *t, uint32_t nkeys, const char **out)
{
	for (uint32_t i = 0; i < nkeys; i++) {
		int32_t s = pick_key4(t, i, NULL);

		assert_true(s >= 0);
		out[i] = t->srv[s].name;
	}
}

static void check_stable(enum lb_algo algo)
{
	uint32_t ids[10], wt[10], wr[10];
	const char **a = calloc(NPICKS, sizeof(*a)), **b = calloc(NPICKS, sizeof(*b));
	struct tpool *t, *r;
	uint32_t moved = 0;

	/* t lists servers 1..10, r the same servers (same weights) backwards. */
	for (uint32_t k = 0; k < 10; k++) {
		wt[k] = (k + 1) % 3 + 1;
		ids[k] = 10 - k;
		wr[k] = ids[k] % 3 + 1;
	}
	t = tpool_make(algo, 10, wt, NULL);
	r = tpool_make(algo, 10, wr, ids);

	/* The same client, asked again, gets the same server. */
	map_keys(t, NPICKS, a);
	map_keys(t, NPICKS, b);
	for (uint32_t i = 0; i < NPICKS; i++)
		assert_ptr_equal(a[i], b[i]);
	/* Placement follows server names, not their order in the config. */
	map_keys(r, NPICKS, b);
	for (uint32_t i = 0; i < NPICKS; i++)
		moved += strcmp(a[i], b[i]) != 0;
	assert_int_equal(moved, 0);
	free(a);
	free(b);
	tpool_free(t);
	tpool_free(r);
}

static void test_hash_stable(void **state)
{
	check_stable(LB_SOURCE_HASH);
	check_stable(LB_MAGLEV);
}

static bool is_prime(uint32_t n)
{
	for (uint32_t d = 2; d * d <= n; d++)
		if (n % d == 0)
			return false;
	return n >= 2;
}

static void test_maglev_table_size(void **state)
{
	static const uint32_t ns[] = { 1, 2, 5, 10, 37, 100, 655, 656, 700 };
	uint32_t first = 0;
	struct tpool *t;

	for (size_t i = 0; i < ARRAY_LEN(ns); i++) {
		uint32_t m;

		t = tpool_make(LB_MAGLEV, ns[i], NULL, NULL);
		m = lb_maglev_size(&t->pool);
		assert_true(is_prime(m));
		assert_true(m > 100 * ns[i]);
		/* Not the smallest such prime: the size must stay put when a
		 * server joins or leaves, or every client would move. */
		if (ns[i] <= 655)
			assert_int_equal(m, first ? first : (first = m));
		else
			assert_true(m > first && m < 4 * 100 * ns[i]);
		tpool_free(t);
	}

	/* Backups and weight-0 servers have no slots; a pool with only those
	 * has no table (and falls back to rendezvous). */
	t = tpool_new(LB_MAGLEV, 3, (const uint32_t[]){ 0, 0, 1 }, NULL);
	t->srv[2].backup = true;
	tpool_start(t, LB_MAGLEV);
	assert_int_equal(lb_maglev_size(&t->pool), 0);
	assert_int_equal(pick_key4(t, 1, NULL), 2);
	tpool_free(t);

	t = tpool_make(LB_SOURCE_HASH, 4, NULL, NULL);
	assert_int_equal(lb_maglev_size(&t->pool), 0);
	tpool_free(t);
}

/* One of N servers leaves the config: count every client whose server
 * changed (the leaver's included); at most about 1/N + 2% may. */
static void check_disruption(enum lb_algo algo, uint32_t n)
{
	const char **before = calloc(NPICKS, sizeof(*before));
	const char **after = calloc(NPICKS, sizeof(*after));
	struct tpool *full = tpool_make(algo, n, NULL, NULL);

	map_keys(full, NPICKS, before);
	for (uint32_t gone = 0; gone < n; gone++) {
		uint32_t ids[MAXS], m = 0, moved = 0;
		struct tpool *t;

		for (uint32_t k = 0; k < n; k++)
			if (k != gone)
				ids[m++] = k + 1;
		t = tpool_make(algo, m, NULL, ids);
		map_keys(t, NPICKS, after);
		for (uint32_t i = 0; i < NPICKS; i++)
			moved += strcmp(before[i], after[i]) != 0;
		if ((double)moved / NPICKS > 1.0 / n + 0.02)
			print_error("%s N=%u without server %u: %u of %u keys moved\n",
				    lb_ops_get(algo)->name, n, gone, moved, NPICKS);
		assert_true((double)moved / NPICKS <= 1.0 / n + 0.02);
		/* And the leaver's keys did have to move: about 1/N. */
		assert_true((double)moved / NPICKS >= 1.0 / n - 0.02);
		tpool_free(t);
	}
	tpool_free(full);
	free(before);
	free(after);
}

static void test_maglev_disruption(void **state)
{
	check_disruption(LB_MAGLEV, 10);
	check_disruption(LB_MAGLEV, 5);
}

static void test_source_hash_disruption(void **state)
{
	check_disruption(LB_SOURCE_HASH, 10);
	check_disruption(LB_SOURCE_HASH, 5);
}

/* A server goes down (no rebuild) or is tried: only its own clients move,
 * and they spread over all the others rather than onto one neighbour. */
static void check_down_moves_own(enum lb_algo algo, bool use_tried)
{
	enum { N = 10, GONE = 3 };
	int32_t *before = calloc(NPICKS, sizeof(*before));
	struct tpool *t = tpool_make(algo, N, NULL, NULL);
	uint32_t got[N] = { 0 }, orphans = 0;
	uint64_t tried = 1 << GONE;

	for (uint32_t i = 0; i < NPICKS; i++)
		before[i] = pick_key4(t, i, NULL);
	if (!use_tried)
		set_state(t, GONE, SRV_DOWN);
	for (uint32_t i = 0; i < NPICKS; i++) {
		int32_t now = pick_key4(t, i, use_tried ? &tried : NULL);

		assert_true(now != GONE);
		if (before[i] != GONE) {
			assert_int_equal(now, before[i]);
		} else {
			orphans++;
			got[now]++;
		}
	}
	assert_true(orphans > NPICKS / N / 2);
	for (int k = 0; k < N; k++)
		if (k != GONE)
			assert_true(got[k] > orphans / (N - 1) / 2);
	free(before);
	tpool_free(t);
}

static void test_hash_down_moves_only_its_keys(void **state)
{
	check_down_moves_own(LB_SOURCE_HASH, false);
	check_down_moves_own(LB_SOURCE_HASH, true);
	check_down_moves_own(LB_MAGLEV, false);
	check_down_moves_own(LB_MAGLEV, true);
}

/* lb_hash is part of the user-visible mapping: changing it moves every
 * source_hash / maglev client on upgrade. Pin its output. */
static void test_hash_pinned(void **state)
{
	static const char msg[] = "fulcrum balances 0123456789abcdef0123456789";

	assert_true(lb_hash("", 0, 0) != lb_hash("", 0, 1));
	assert_true(lb_hash("a", 1, 0) != lb_hash("b", 1, 0));
	assert_true(lb_hash(msg, 4, 7) != lb_hash(msg, 5, 7));
	for (size_t len = 0; len <= sizeof(msg) - 1; len++)
		assert_true(lb_hash(msg, len, 42) != lb_hash(msg, len, 43));
	assert_true(lb_hash(msg, sizeof(msg) - 1, 42) == 0x55b46300fdcc5c28ULL);
	assert_true(lb_hash("\x0a\x00\x00\x01", 4, 0) == 0xf019c5523a8e7985ULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ops_by_name),
		cmocka_unit_test(test_pool_init_errors),
		cmocka_unit_test(test_shares_round_robin),
		cmocka_unit_test(test_shares_least_conn),
		cmocka_unit_test(test_shares_random_two),
		cmocka_unit_test(test_shares_source_hash),
		cmocka_unit_test(test_shares_maglev),
		cmocka_unit_test(test_round_robin_smooth),
		cmocka_unit_test(test_round_robin_large_pool),
		cmocka_unit_test(test_least_conn_prefers_least_loaded),
		cmocka_unit_test(test_random_two_distinct),
		cmocka_unit_test(test_unusable_never_picked),
		cmocka_unit_test(test_backup_servers),
		cmocka_unit_test(test_hash_stable),
		cmocka_unit_test(test_maglev_table_size),
		cmocka_unit_test(test_maglev_disruption),
		cmocka_unit_test(test_source_hash_disruption),
		cmocka_unit_test(test_hash_down_moves_only_its_keys),
		cmocka_unit_test(test_hash_pinned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
