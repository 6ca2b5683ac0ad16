/* libFuzzer driver for the config loader: any bytes must give either a
 * config or a list of "fuzz.yaml:LINE:COL: ..." errors, never both, never a
 * crash or a leak. A loaded config must hold what `run` relies on. */
#include "conf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_line(const char *line)
{
	/* "fuzz.yaml:" then LINE ":" COL ": " */
	const char *p = line;
	if (strncmp(p, "fuzz.yaml:", 10) != 0)
		abort();
	p += 10;
	if (*p < '0' || *p > '9')
		abort();
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p++ != ':' || *p < '0' || *p > '9')
		abort();
	while (*p >= '0' && *p <= '9')
		p++;
	if (p[0] != ':' || p[1] != ' ' || p[2] == '\0')
		abort();
}

static void check_config(const struct config *cfg)
{
	char buf[ADDR_STRLEN];
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct conf_listener *l = &cfg->listeners[i];
		if (!l->name || !l->pool || !l->pool_name || l->nbinds == 0)
			abort();
		if (strcmp(l->pool->name, l->pool_name) != 0)
			abort();
		for (size_t b = 0; b < l->nbinds; b++) {
			if (!l->binds[b].text || (l->binds[b].wildcard && !l->public_))
				abort();
			addr_format((const struct sockaddr *)&l->binds[b].ss, buf, sizeof(buf));
		}
		if (l->timeouts.connect == 0 || l->timeouts.client_idle == 0 ||
		    l->timeouts.server_idle == 0 || l->backlog == 0)
			abort();
	}
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct conf_pool *p = &cfg->pools[i];
		if (!p->name || p->nservers == 0 || p->retries < 0 ||
		    p->algorithm < 0 || p->algorithm >= LB_ALGO_COUNT)
			abort();
		for (size_t s = 0; s < p->nservers; s++) {
			if (!p->servers[s].addr.text || p->servers[s].weight > 1000)
				abort();
			addr_format((const struct sockaddr *)&p->servers[s].addr.ss, buf, sizeof(buf));
		}
	}
	if (!cfg->global.log.access || !cfg->global.log.error)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = conf_load_string((const char *)data, size, "fuzz.yaml", &errs);

	if ((cfg == NULL) != (errs.n > 0))
		abort();
	for (size_t i = 0; i < errs.n; i++)
		check_line(errs.v[i]);
	for (size_t i = 0; i < errs.nwarn; i++)
		check_line(errs.warn[i]);
	if (cfg)
		check_config(cfg);
	conf_free(cfg);
	conf_errors_free(&errs);
	return 0;
}
