/* cmd_tunnel.c - `meridian tunnel -c FILE`: run a tunnel connector;
 * `meridian tunnel check -c FILE`: validate its file (every error as
 * file:line:col: message, exit 1; else a one-line summary, exit 0). See
 * docs/TUNNEL.md.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "config/cfg_load.h"
#include "core/core_util.h"
#include "tunnel/tun_config.h"
#include "tunnel/tun_connector.h"

static void usage(FILE *f)
{
	fputs("usage: meridian tunnel [--log-level LEVEL] -c FILE\n"
	      "       meridian tunnel check -c FILE\n"
	      "\n"
	      "Run a tunnel connector: dial out to the edges of FILE and\n"
	      "serve their requests from the local services its ingress\n"
	      "rules name. SIGTERM or SIGINT drains (GOAWAY, in-flight\n"
	      "requests finish) and exits 0.\n"
	      "`check` validates FILE: errors go to stderr as\n"
	      "file:line:col: message (exit 1); a valid file prints a\n"
	      "one-line summary (exit 0).\n",
	      f);
}

static int load(const char *file, const char *what, tun_config **cfg,
		tun_svc_addr **svc)
{
	cfg_diag d = {0};
	int rc = tun_config_load_file(file, cfg, &d);
	if (rc == 0) {
		/* A file check accepts must start: its service names too. */
		*svc = xcalloc((*cfg)->nrules, sizeof(**svc));
		rc = tun_resolve_services(*cfg, *svc, &d);
	}
	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "%s\n", d.msgs[i]);
	if (rc < 0)
		fprintf(stderr, "meridian tunnel%s: %zu error%s in %s\n", what,
			d.n, d.n == 1 ? "" : "s", file);
	cfg_diag_free(&d);
	return rc;
}

int cmd_tunnel(int argc, char **argv)
{
	bool check;
	const char *file;
	int st = cmd_file_args("tunnel", argc, argv, usage, &check, &file);
	if (st >= 0)
		return st;
	if (!check) {
		/* A SIGTERM while starting stays pending for the loop's
		 * signalfd instead of killing the connector. */
		sigset_t sigs;
		sigemptyset(&sigs);
		sigaddset(&sigs, SIGTERM);
		sigaddset(&sigs, SIGINT);
		sigprocmask(SIG_BLOCK, &sigs, NULL);
	}
	tun_config *cfg = NULL;
	tun_svc_addr *svc = NULL;
	int rc = load(file, check ? " check" : "", &cfg, &svc);
	free(svc);
	if (rc < 0) {
		tun_config_free(cfg);
		return 1;
	}
	if (check) {
		char line[256];
		tun_config_summary(cfg, line, sizeof(line));
		puts(line);
		tun_config_free(cfg);
		return fflush(stdout) ? 1 : 0;
	}
	int status = tun_connector_run(cfg);
	tun_config_free(cfg);
	return status;
}
