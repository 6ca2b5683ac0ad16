/* Command line, startup, signals and shutdown. */
#include "common.h"
#include "conf.h"
#include "log.h"
#include "runtime.h"
#include "worker.h"
#include "check.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <yaml.h>

static const char usage[] =
	"usage: fulcrum [run] -c FILE        run with the config FILE\n"
	"       fulcrum check -c FILE        validate FILE: exit 0, or print every problem\n"
	"                                    as FILE:LINE:COL: message and exit 1\n"
	"       fulcrum version              print the version and libraries\n"
	"       fulcrum config-reference     print the configuration reference (Markdown)\n"
	"       fulcrum --help               this text\n"
	"\n"
	"signals: SIGTERM/SIGINT stop accepting and let connections finish (up to\n"
	"         global.drain_timeout; a second signal closes them at once);\n"
	"         SIGUSR1 reopens log files.\n";

static void print_version(void)
{
	printf("fulcrum %s\n", FULCRUM_VERSION);
	printf("built with: libyaml %s, compiler %s\n", yaml_get_version_string(), __VERSION__);
}

static void print_errors(const struct conf_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		fprintf(stderr, "%s\n", e->v[i]);
	for (size_t i = 0; i < e->nwarn; i++)
		fprintf(stderr, "%s\n", e->warn[i]);
}

static struct config *load(const char *path)
{
	struct conf_errors errs = { 0 };
	struct config *cfg = conf_load(path, &errs);
	print_errors(&errs);
	if (!cfg)
		fprintf(stderr, "%s: %zu problem%s found\n", path, errs.n, errs.n == 1 ? "" : "s");
	conf_errors_free(&errs);
	return cfg;
}

static int cmd_check(const char *path)
{
	struct config *cfg = load(path);
	if (!cfg)
		return 1;
	printf("%s: OK (%zu listener%s, %zu pool%s)\n", path, cfg->nlisteners,
	       cfg->nlisteners == 1 ? "" : "s", cfg->npools, cfg->npools == 1 ? "" : "s");
	conf_free(cfg);
	return 0;
}

static void log_startup(struct gen *g)
{
	char algo[32];
	log_info("fulcrum %s: %u worker%s, at most %llu connections", FULCRUM_VERSION, g->nworkers,
		 g->nworkers == 1 ? "" : "s", (unsigned long long)g->max_connections);
	for (size_t i = 0; i < g->nlisteners; i++) {
		const struct conf_listener *l = g->listeners[i].conf;
		const struct pool_rt *p = g->listeners[i].pool;
		size_t nr = g->listeners[i].nroutes;
		for (size_t b = 0; b < l->nbinds; b++) {
			if (p) {
				snprintf(algo, sizeof(algo), "%s", p->lb.ops->name);
				log_info("listener %s: %s on %s -> %spool %s (%u server%s, %s)", l->name,
					 conf_proto_name(l->protocol), l->binds[b].text,
					 nr ? "unmatched requests to " : "", p->conf->name, p->lb.nservers,
					 p->lb.nservers == 1 ? "" : "s", algo);
			}
			if (nr)
				log_info("listener %s: %s on %s -> %zu route%s", l->name,
					 conf_proto_name(l->protocol), l->binds[b].text, nr, nr == 1 ? "" : "s");
		}
	}
}

static int cmd_run(const char *path)
{
	struct config *cfg = load(path);
	struct gen *g;
	struct worker *ws;
	const char *why = NULL, *failed = NULL;
	char *msg = NULL;
	sigset_t set;
	int sfd, rc, stop = 0;
	uint32_t n;
	uint64_t deadline = 0;

	if (!cfg)
		return 1;
	rc = log_open((enum log_level)cfg->global.log.level, (enum log_format)cfg->global.log.format,
		      cfg->global.log.access, cfg->global.log.error, &failed);
	if (rc < 0) {
		fprintf(stderr, "fulcrum: cannot open log %s: %s\n", failed, strerror(-rc));
		conf_free(cfg);
		return 1;
	}
	n = cfg->global.workers ? (uint32_t)cfg->global.workers : gen_cpu_count();
	g = gen_new(cfg, n, &why);
	if (!g) {
		log_error("startup: %s", why);
		return 1;
	}
	ws = workers_create(g, &msg);
	if (!ws) {
		log_error("startup: %s", msg);
		fprintf(stderr, "fulcrum: %s\n", msg);
		free(msg);
		gen_free(g);
		log_close();
		return 1;
	}
	/* Workers inherit this mask: only the main thread takes signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	rc = workers_start(ws, n);
	if (rc == 0)
		rc = checks_start(g);
	if (sfd < 0 || rc < 0) {
		log_error("startup: cannot start workers: %s", strerror(sfd < 0 ? errno : -rc));
		workers_stop(ws, n, 2);
		workers_join_free(ws, n);
		gen_free(g);
		return 1;
	}
	log_startup(g);
	log_info("ready");

	for (;;) {
		struct pollfd pfd = { .fd = sfd, .events = POLLIN };
		struct signalfd_siginfo si;
		if (stop && workers_active(ws, n) == 0)
			break;
		if (stop == 1 && now_ms() >= deadline) {
			log_warn("drain timeout: closing %zu open connection%s", workers_active(ws, n),
				 workers_active(ws, n) == 1 ? "" : "s");
			stop = 2;
			workers_stop(ws, n, 2);
		}
		if (poll(&pfd, 1, stop ? 50 : -1) <= 0)
			continue;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!stop) {
				stop = 1;
				deadline = now_ms() + g->cfg->global.drain_timeout;
				log_info("%s: no longer accepting; draining %zu connection%s (up to %llums)",
					 strsignal((int)si.ssi_signo), workers_active(ws, n),
					 workers_active(ws, n) == 1 ? "" : "s",
					 (unsigned long long)g->cfg->global.drain_timeout);
				workers_stop(ws, n, 1);
			} else if (stop == 1) {
				log_info("second %s: closing every connection now", strsignal((int)si.ssi_signo));
				stop = 2;
				workers_stop(ws, n, 2);
			}
			break;
		case SIGUSR1:
			rc = log_reopen();
			if (rc < 0)
				log_error("SIGUSR1: cannot reopen log files: %s", strerror(-rc));
			else
				log_info("SIGUSR1: log files reopened");
			break;
		case SIGHUP: {
			/* Certificates only: reloading the rest of the config is not
			 * available in this version. */
			int ok, bad = workers_tls_reload(ws, n, &ok);
			if (bad)
				log_error("SIGHUP: %d TLS listener%s could not reload certificates and keep "
					  "the old ones; %d reloaded", bad, bad == 1 ? "" : "s", ok);
			else if (ok)
				log_info("SIGHUP: TLS certificates of %d listener%s reloaded (the rest of the "
					 "configuration is read only at startup)", ok, ok == 1 ? "" : "s");
			else
				log_warn("SIGHUP: no TLS listener to reload; the configuration is read only "
					 "at startup in this version");
			break;
		}
		default:
			break;
		}
	}
	checks_stop();
	workers_join_free(ws, n);
	gen_log_counters(g);
	log_info("stopped");
	close(sfd);
	gen_free(g);
	log_close();
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = "run", *path = NULL;
	int i = 1;

	if (argc > 1 && argv[1][0] != '-')
		cmd = argv[i++];
	for (; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			cmd = "version";
		} else {
			fprintf(stderr, "fulcrum: unknown argument \"%s\"\n\n%s", argv[i], usage);
			return 2;
		}
	}
	if (strcmp(cmd, "version") == 0) {
		print_version();
		return 0;
	}
	if (strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(cmd, "config-reference") == 0) {
		conf_write_reference(stdout);
		return 0;
	}
	if (strcmp(cmd, "check") != 0 && strcmp(cmd, "run") != 0) {
		fprintf(stderr, "fulcrum: unknown command \"%s\"\n\n%s", cmd, usage);
		return 2;
	}
	if (!path) {
		fprintf(stderr, "fulcrum: %s needs a config file: -c FILE\n\n%s", cmd, usage);
		return 2;
	}
	return strcmp(cmd, "check") == 0 ? cmd_check(path) : cmd_run(path);
}
