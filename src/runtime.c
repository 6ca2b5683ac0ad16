#include "runtime.h"
#include "tls.h"
#include "log.h"

#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

uint32_t gen_cpu_count(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (uint32_t)CPU_COUNT(&set);
	return 1;
}

static uint64_t auto_max_connections(const struct config *cfg, uint32_t nworkers)
{
	struct rlimit rl;
	uint64_t nofile = 1024, reserve = 32;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		nofile = rl.rlim_cur;
	/* Listening sockets, epoll and eventfd per worker, logs, stdio. */
	for (size_t i = 0; i < cfg->nlisteners; i++)
		reserve += nworkers * cfg->listeners[i].nbinds;
	reserve += 2 * nworkers;
	/* A client socket and a backend socket each, and pipes for some. */
	return nofile > reserve + 4 ? (nofile - reserve) / 3 : 1;
}

struct gen *gen_new(struct config *cfg, uint32_t nworkers, const char **why)
{
	struct gen *g = xcalloc(1, sizeof(*g));
	uint32_t *nservers;

	g->cfg = cfg;
	g->nworkers = nworkers;
	g->max_connections = cfg->global.max_connections ? cfg->global.max_connections
							 : auto_max_connections(cfg, nworkers);
	g->npools = cfg->npools;
	g->pools = xcalloc(g->npools, sizeof(*g->pools));
	nservers = xcalloc(g->npools, sizeof(*nservers));
	for (size_t i = 0; i < g->npools; i++) {
		struct pool_rt *p = &g->pools[i];
		const struct conf_pool *cp = &cfg->pools[i];
		p->conf = cp;
		p->index = (uint32_t)i;
		p->lb.name = cp->name;
		p->lb.nservers = (uint32_t)cp->nservers;
		p->lb.servers = xcalloc(cp->nservers, sizeof(struct lb_server));
		nservers[i] = (uint32_t)cp->nservers;
		for (size_t s = 0; s < cp->nservers; s++) {
			struct lb_server *ls = &p->lb.servers[s];
			ls->index = (uint32_t)s;
			ls->backup = cp->servers[s].backup;
			ls->conf_weight = (uint32_t)cp->servers[s].weight * LB_WEIGHT_SCALE;
			atomic_init(&ls->weight, ls->conf_weight);
			atomic_init(&ls->state, cp->servers[s].state == 1 ? SRV_DRAIN :
					  cp->servers[s].state == 2 ? SRV_MAINT : SRV_UP);
			atomic_init(&ls->down, false);
			atomic_init(&ls->active, 0);
			ls->addr = cp->servers[s].addr.ss;
			ls->addrlen = cp->servers[s].addr.len;
			ls->name = cp->servers[s].addr.text;
		}
		if (cp->sticky.cookie) {
			p->sticky_ids = xcalloc(cp->nservers, sizeof(*p->sticky_ids));
			for (size_t s = 0; s < cp->nservers; s++)
				snprintf(p->sticky_ids[s], sizeof(p->sticky_ids[s]), "%016llx",
					 (unsigned long long)lb_hash(p->lb.servers[s].name,
								     strlen(p->lb.servers[s].name), 0x5eed));
		}
		if (lb_pool_init(&p->lb, (enum lb_algo)cp->algorithm) < 0) {
			*why = "cannot build the balancer state of a pool";
			free(nservers);
			gen_free(g);
			return NULL;
		}
		p->lb.all_down_spread = cp->all_down == 1;
		if (cp->passive.loc.line) {
			uint64_t most = cp->nservers * cp->passive.max_percent / 100;
			p->lb.passive_failures = (uint32_t)cp->passive.failures;
			p->lb.passive_ejection_ms = cp->passive.ejection;
			p->lb.passive_max_ejected = (uint32_t)(most ? most : 1);
		}
	}
	g->nlisteners = cfg->nlisteners;
	g->listeners = xcalloc(g->nlisteners, sizeof(*g->listeners));
	for (size_t i = 0; i < g->nlisteners; i++) {
		struct listener_rt *l = &g->listeners[i];
		l->conf = &cfg->listeners[i];
		l->index = (uint32_t)i;
		l->pool = l->conf->pool ? &g->pools[l->conf->pool - cfg->pools] : NULL;
		l->splice = l->conf->forwarding == FWD_AUTO;
		if ((l->tls = l->conf->tls_rt) != NULL)
			tls_server_ref(l->tls);
		l->nroutes = l->conf->nroutes;
		l->routes = xcalloc(l->nroutes, sizeof(*l->routes));
		for (size_t r = 0; r < l->nroutes; r++) {
			const struct conf_route *cr = &l->conf->routes[r];
			l->routes[r].conf = cr;
			l->routes[r].pool = cr->pool ? &g->pools[cr->pool - cfg->pools] : NULL;
			if (cr->name)
				snprintf(l->routes[r].name, sizeof(l->routes[r].name), "%s", cr->name);
			else
				snprintf(l->routes[r].name, sizeof(l->routes[r].name), "route%zu", r);
		}
	}
	uint32_t *nroutes = xcalloc(g->nlisteners, sizeof(uint32_t));
	for (size_t i = 0; i < g->nlisteners; i++)
		nroutes[i] = (uint32_t)g->listeners[i].nroutes;
	g->stats = xcalloc(nworkers, sizeof(*g->stats));
	for (uint32_t w = 0; w < nworkers; w++)
		g->stats[w] = stats_new(g->nlisteners, g->npools, nservers, nroutes);
	free(nservers);
	free(nroutes);
	return g;
}

void gen_free(struct gen *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->npools; i++) {
		if (g->pools[i].lb.ops)
			lb_pool_destroy(&g->pools[i].lb);
		free(g->pools[i].lb.servers);
		free(g->pools[i].sticky_ids);
	}
	free(g->pools);
	for (size_t i = 0; i < g->nlisteners; i++) {
		free(g->listeners[i].routes);
		tls_server_unref(g->listeners[i].tls);
	}
	free(g->listeners);
	if (g->stats)
		for (uint32_t w = 0; w < g->nworkers; w++)
			stats_free(g->stats[w]);
	free(g->stats);
	conf_free(g->cfg);
	free(g);
}

void gen_log_counters(struct gen *g)
{
	for (size_t i = 0; i < g->nlisteners; i++) {
		uint64_t c[sizeof(struct ctr_listener) / sizeof(counter_t)];
		stats_sum(c, g->stats, g->nworkers, sizeof(struct ctr_listener), stats_pick_listener, i, 0);
		log_info("counters listener=%s accepted=%llu active=%llu refused_acl=%llu no_server=%llu "
			 "bytes_in=%llu bytes_out=%llu requests=%llu rejected=%llu", g->listeners[i].conf->name,
			 (unsigned long long)c[0], (unsigned long long)c[1], (unsigned long long)c[2],
			 (unsigned long long)c[3], (unsigned long long)c[4], (unsigned long long)c[5],
			 (unsigned long long)c[6], (unsigned long long)c[7]);
		if (g->listeners[i].conf->tls_rt || g->listeners[i].conf->tls_passthrough) {
			size_t tf = offsetof(struct ctr_listener, tls_failed) / sizeof(counter_t);
			char fails[256];
			size_t n = 0;
			for (size_t k = 0; k < TLS_FAIL_KINDS; k++)
				n += (size_t)snprintf(fails + n, sizeof(fails) - n, " tls_failed_%s=%llu",
						      tls_fail_names[k], (unsigned long long)c[tf + k]);
			log_info("counters listener=%s tls_handshakes=%llu tls_resumed=%llu%s",
				 g->listeners[i].conf->name,
				 (unsigned long long)c[offsetof(struct ctr_listener, tls_handshakes) / sizeof(counter_t)],
				 (unsigned long long)c[offsetof(struct ctr_listener, tls_resumed) / sizeof(counter_t)],
				 fails);
		}
		if (g->listeners[i].conf->protocol == PROTO_HTTP ||
		    g->listeners[i].conf->protocol == PROTO_HTTPS) {
			size_t st = offsetof(struct ctr_listener, status) / sizeof(counter_t);
			size_t lat = offsetof(struct ctr_listener, latency) / sizeof(counter_t);
			char hist[256];
			size_t n = 0;
			for (size_t b = 0; b < STATS_LAT_BUCKETS; b++)
				n += (size_t)snprintf(hist + n, sizeof(hist) - n, "%s%llu", b ? "," : "",
						      (unsigned long long)c[lat + b]);
			size_t rj = offsetof(struct ctr_listener, rejected_by) / sizeof(counter_t);
			log_info("counters listener=%s retries=%llu 1xx=%llu 2xx=%llu 3xx=%llu 4xx=%llu "
				 "5xx=%llu latency_ms_le_1,2,5,10,25,50,100,250,500,1000,5000,inf=%s "
				 "rejected_400=%llu rejected_408=%llu rejected_413=%llu rejected_414=%llu "
				 "rejected_431=%llu rejected_501=%llu rejected_505=%llu rejected_other=%llu",
				 g->listeners[i].conf->name,
				 (unsigned long long)c[offsetof(struct ctr_listener, retries) / sizeof(counter_t)],
				 (unsigned long long)c[st], (unsigned long long)c[st + 1],
				 (unsigned long long)c[st + 2], (unsigned long long)c[st + 3],
				 (unsigned long long)c[st + 4], hist, (unsigned long long)c[rj],
				 (unsigned long long)c[rj + 1], (unsigned long long)c[rj + 2],
				 (unsigned long long)c[rj + 3], (unsigned long long)c[rj + 4],
				 (unsigned long long)c[rj + 5], (unsigned long long)c[rj + 6],
				 (unsigned long long)c[rj + 7]);
			for (size_t r = 0; r < g->listeners[i].nroutes; r++) {
				uint64_t d[sizeof(struct ctr_route) / sizeof(counter_t)];
				stats_sum(d, g->stats, g->nworkers, sizeof(struct ctr_route), stats_pick_route, i, r);
				log_info("counters listener=%s route=%s requests=%llu 1xx=%llu 2xx=%llu 3xx=%llu "
					 "4xx=%llu 5xx=%llu", g->listeners[i].conf->name, g->listeners[i].routes[r].name,
					 (unsigned long long)d[0], (unsigned long long)d[1], (unsigned long long)d[2],
					 (unsigned long long)d[3], (unsigned long long)d[4], (unsigned long long)d[5]);
			}
		}
	}
	for (size_t i = 0; i < g->npools; i++) {
		uint64_t c[sizeof(struct ctr_pool) / sizeof(counter_t)];
		stats_sum(c, g->stats, g->nworkers, sizeof(struct ctr_pool), stats_pick_pool, i, 0);
		log_info("counters pool=%s streams=%llu connect_fail=%llu no_server=%llu bytes_in=%llu "
			 "bytes_out=%llu", g->pools[i].conf->name, (unsigned long long)c[0],
			 (unsigned long long)c[1], (unsigned long long)c[2], (unsigned long long)c[3],
			 (unsigned long long)c[4]);
		for (size_t s = 0; s < g->pools[i].lb.nservers; s++) {
			uint64_t d[sizeof(struct ctr_server) / sizeof(counter_t)];
			stats_sum(d, g->stats, g->nworkers, sizeof(struct ctr_server), stats_pick_server, i, s);
			log_info("counters pool=%s server=%s streams=%llu active=%llu connect_fail=%llu "
				 "bytes_in=%llu bytes_out=%llu 1xx=%llu 2xx=%llu 3xx=%llu 4xx=%llu 5xx=%llu",
				 g->pools[i].conf->name, g->pools[i].lb.servers[s].name,
				 (unsigned long long)d[0], (unsigned long long)d[1], (unsigned long long)d[2],
				 (unsigned long long)d[3], (unsigned long long)d[4], (unsigned long long)d[5],
				 (unsigned long long)d[6], (unsigned long long)d[7], (unsigned long long)d[8],
				 (unsigned long long)d[9]);
		}
	}
}
