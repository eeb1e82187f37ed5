/* cmd_edge.c - `meridian edge -c FILE`: run an edge node. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "config/cfg_load.h"
#include "core/core_log.h"
#include "core/core_util.h"
#include "edge/edge.h"
#include "edge/edge_ctl.h"

static void usage(FILE *f)
{
	fputs("usage: meridian edge -c FILE [--log-level "
	      "error|warn|info|debug]\n",
	      f);
}

int cmd_set_log_level(const char *cmd, const char *arg)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	for (int i = 0; i < 4; i++) {
		if (!strcmp(arg, names[i])) {
			core_log_level = i;
			return 0;
		}
	}
	fprintf(stderr,
		"meridian %s: unknown log level '%s' (error, warn, info, "
		"debug)\n",
		cmd, arg);
	return -1;
}

int cmd_file_args(const char *name, int argc, char **argv,
		  void (*usage_of)(FILE *), bool *check, const char **file)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	*check = false;
	*file = NULL;
	if (argc > 1 && !strcmp(argv[1], "check")) {
		*check = true;
		argc--;
		argv++;
	}
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			*file = optarg;
			break;
		case 'l':
			if (cmd_set_log_level(name, optarg) < 0)
				return 2;
			break;
		case 'h':
			usage_of(stdout);
			return 0;
		default:
			usage_of(stderr);
			return 2;
		}
	}
	if (!*file || !**file || optind != argc) {
		fprintf(stderr, "meridian %s: %s\n", name,
			*file ? "unexpected argument" : "missing -c FILE");
		usage_of(stderr);
		return 2;
	}
	return -1;
}

const char *cmd_edge_refusal(const cfg_snapshot *cfg, char *buf, size_t len)
{
	/* A DNS-only edge is fine (issue 4). */
	if (cfg->edge.nlisten_http == 0 && cfg->edge.nlisten_https == 0 &&
	    cfg->edge.nlisten_dns == 0) {
		snprintf(buf, len,
			 "edge.listen.http, https and dns are all empty; "
			 "nothing to serve");
		return buf;
	}
	if (edge_api_unguarded(cfg)) {
		snprintf(buf, len,
			 "edge.listen.admin: refusing to serve the API on %s "
			 "without tokens: set api.tokens (or "
			 "MERIDIAN_API_TOKEN), or listen on a loopback address",
			 cfg->edge.listen_admin.text);
		return buf;
	}
	return NULL;
}

int cmd_edge(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *file = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			file = optarg;
			break;
		case 'l':
			if (cmd_set_log_level("edge", optarg) < 0)
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!file || optind != argc) {
		usage(stderr);
		return 2;
	}
	/* From here on, as edge_run does: a SIGHUP (a reload right after
	 * the start) or a SIGTERM that comes while the config and the store
	 * are read stays pending, for edge_run's signalfd, instead of
	 * killing the edge. No thread exists yet, so all inherit the mask. */
	sigset_t sigs;
	edge_signals_block(&sigs);
	cfg_snapshot *snap = NULL;
	cfg_diag diag = {0};
	edge_ctl *ctl = NULL;
	/* The file and the objects created through the API (edge.store). */
	if (edge_ctl_open(file, &ctl, &snap, &diag) < 0) {
		for (size_t i = 0; i < diag.n; i++)
			fprintf(stderr, "%s\n", diag.msgs[i]);
		fprintf(stderr,
			"meridian edge: %zu error%s in %s; not "
			"starting\n",
			diag.n, diag.n == 1 ? "" : "s", file);
		cfg_diag_free(&diag);
		return 1;
	}
	for (size_t i = 0; i < diag.nwarn; i++)
		log_warn("%s", diag.warns[i]);
	cfg_diag_free(&diag);
	char why[256];
	if (cmd_edge_refusal(snap, why, sizeof(why))) {
		fprintf(stderr, "meridian edge: %s: %s\n", file, why);
		cfg_snapshot_free(snap);
		edge_ctl_close(ctl);
		return 1;
	}
	/* Before anything counts descriptors (max_connections, the health
	 * checker's kept connections). */
	uint64_t was, now;
	int err = core_raise_nofile(&was, &now);
	if (err < 0)
		log_warn("edge: cannot raise the open-file limit: %s",
			 strerror(-err));
	else if (now != was)
		log_info("edge: open-file limit raised from %llu to %llu",
			 (unsigned long long)was, (unsigned long long)now);
	return edge_run(ctl, snap, NULL, NULL);
}
