/* cmd_ingress.c - `meridian ingress -c FILE`: a Kubernetes ingress
 * controller driving an embedded tunnel connector; `meridian ingress check
 * -c FILE` validates its file (every error as file:line:col: message, exit
 * 1; else a one-line summary, exit 0) without contacting the API. See
 * docs/TUNNEL.md "meridian ingress".
 */
#include <curl/curl.h>
#include <libgen.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "config/cfg_diag.h"
#include "config/cfg_load.h"
#include "core/core_arena.h"
#include "core/core_log.h"
#include "core/core_util.h"
#include "kube/kube_api.h"
#include "kube/kube_config.h"
#include "kube/kube_ctl.h"
#include "tunnel/tun_config.h"
#include "tunnel/tun_connector.h"
#include "tunnel/tun_rules.h"

static void usage(FILE *f)
{
	fputs("usage: meridian ingress [--log-level LEVEL] -c FILE\n"
	      "       meridian ingress check -c FILE\n"
	      "\n"
	      "Run a Kubernetes ingress controller: watch the Ingresses,\n"
	      "Services and EndpointSlices of one namespace and serve them\n"
	      "through a tunnel connector to the edges of FILE. SIGTERM or\n"
	      "SIGINT drains (GOAWAY, in-flight requests finish), exits 0.\n"
	      "`check` validates FILE (errors as file:line:col: message,\n"
	      "exit 1; else a one-line summary, exit 0).\n",
	      f);
}

/* A small file's first line (a token, a namespace), or NULL. */
static char *read_line(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char buf[4096];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf[0] ? xstrdup(buf) : NULL;
}

static bool readable(const char *path)
{
	return path && access(path, R_OK) == 0;
}

/* Where the API is and who we are, from the settings; strings in a.
 * *ns the namespace. Errors into e at the section's position. */
static void creds_from(core_arena *a, const kube_settings *ks, kube_creds *c,
		       const char **ns, cfg_errs *e)
{
	char err[512];
	*c = (kube_creds){0};
	*ns = ks->namespace;
	if (ks->kubeconfig) {
		char *buf;
		size_t len;
		cfg_diag d = {0};
		if (cfg_read_file(ks->kubeconfig, &buf, &len, &d) < 0) {
			cfg_errs_add(e, ks->line, ks->col,
				     "kubernetes.kubeconfig: %s",
				     d.n ? d.msgs[0] : "cannot read it");
			cfg_diag_free(&d);
			return;
		}
		char *dcopy = core_arena_strdup(a, ks->kubeconfig);
		const char *why = kube_kubeconfig_parse(
		    a, buf, len, dirname(dcopy), NULL, c, err, sizeof(err));
		free(buf);
		if (why) {
			cfg_errs_add(e, ks->line, ks->col,
				     "kubernetes.kubeconfig: %s: %s",
				     ks->kubeconfig, why);
			return;
		}
		if (!*ns)
			*ns = c->namespace;
		if (!c->token && !c->token_file && !c->cert_file &&
		    !c->cert_data)
			cfg_errs_add(e, ks->line, ks->col,
				     "kubernetes.kubeconfig: %s: its user has "
				     "no token or client certificate",
				     ks->kubeconfig);
	} else {
		const char *sa_tok = KUBE_SA_DIR "/token";
		const char *sa_ca = KUBE_SA_DIR "/ca.crt";
		if (ks->api) {
			c->server = ks->api;
		} else {
			const char *h = getenv("KUBERNETES_SERVICE_HOST");
			const char *p = getenv("KUBERNETES_SERVICE_PORT");
			if (!h || !*h) {
				cfg_errs_add(e, ks->line, ks->col,
					     "kubernetes: no 'api' or "
					     "'kubeconfig', and not in a "
					     "cluster (KUBERNETES_SERVICE_HOST "
					     "is not set)");
				return;
			}
			char url[300];
			snprintf(url, sizeof(url), "https://%s%s%s:%s",
				 strchr(h, ':') ? "[" : "", h,
				 strchr(h, ':') ? "]" : "",
				 p && *p ? p : "443");
			c->server = core_arena_strdup(a, url);
		}
		c->token_file = ks->token_file	   ? ks->token_file
				: readable(sa_tok) ? sa_tok
						   : NULL;
		c->ca_file = ks->ca ? ks->ca : readable(sa_ca) ? sa_ca : NULL;
		if (ks->token_file && !readable(ks->token_file))
			cfg_errs_add(e, ks->line, ks->col,
				     "kubernetes.token_file: cannot read %s",
				     ks->token_file);
		if (ks->ca && !readable(ks->ca))
			cfg_errs_add(e, ks->line, ks->col,
				     "kubernetes.ca: cannot read %s", ks->ca);
		if (!c->token_file)
			cfg_errs_add(e, ks->line, ks->col,
				     "kubernetes: no token (token_file, or "
				     "the service account's %s)",
				     sa_tok);
	}
	if (!*ns) {
		char *n = read_line(KUBE_SA_DIR "/namespace");
		if (n) {
			*ns = core_arena_strdup(a, n);
			free(n);
		}
	}
	if (!*ns)
		cfg_errs_add(e, ks->line, ks->col,
			     "kubernetes: missing 'namespace' (required "
			     "outside a cluster)");
}

int cmd_ingress(int argc, char **argv)
{
	bool check;
	const char *file;
	int st = cmd_file_args("ingress", argc, argv, usage, &check, &file);
	if (st >= 0)
		return st;
	sigset_t sigs;
	if (!check) {
		/* A SIGTERM while starting stays pending for the connector's
		 * signalfd; the controller thread inherits the mask. */
		sigemptyset(&sigs);
		sigaddset(&sigs, SIGTERM);
		sigaddset(&sigs, SIGINT);
		sigprocmask(SIG_BLOCK, &sigs, NULL);
	}
	kube_settings ks = {0};
	tun_config_ext ext = {
	    .key = "kubernetes", .load = kube_settings_load, .arg = &ks};
	tun_config *cfg = NULL;
	cfg_diag d = {0};
	int rc = tun_config_load_file_ext(file, &ext, &cfg, &d);
	kube_creds creds;
	const char *ns = NULL;
	if (rc == 0) {
		cfg_errs e = {.file = cfg->file};
		creds_from(cfg->arena, &ks, &creds, &ns, &e);
		if (e.n) {
			cfg_errs_flush(&e, &d);
			rc = -1;
		}
	}
	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "%s\n", d.msgs[i]);
	if (rc < 0) {
		fprintf(stderr, "meridian ingress%s: %zu error%s in %s\n",
			check ? " check" : "", d.n, d.n == 1 ? "" : "s", file);
		cfg_diag_free(&d);
		tun_config_free(cfg);
		return 1;
	}
	cfg_diag_free(&d);
	if (check) {
		printf("ok: ingress controller for namespace %s (class %s%s, "
		       "API %s), tunnel %s, %zu edge%s x %u connection%s\n",
		       ns, ks.ingress_class,
		       ks.without_class ? " and none" : "", creds.server,
		       cfg->tunnel, cfg->nedges, cfg->nedges == 1 ? "" : "s",
		       cfg->conns_per_edge,
		       cfg->conns_per_edge == 1 ? "" : "s");
		tun_config_free(cfg);
		return fflush(stdout) ? 1 : 0;
	}
	int status = 1;
	char err[512];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	kube_api *api = kube_api_new(&creds, err, sizeof(err));
	tun_live *live = api ? tun_live_new() : NULL;
	if (!api)
		log_error("ingress: %s", err);
	if (api && live) {
		kube_ctl_opts o = {
		    .api = api,
		    .ns = ns,
		    .ingress_class = ks.ingress_class,
		    .without_class = ks.without_class,
		    .status_hostname = ks.status_hostname,
		    .status_ip = cfg->edges[0].ip,
		    .live = live,
		};
		/* Until the three kinds are listed the connector stays off
		 * the edges: a replica that cannot route takes no request. */
		kube_ctl *k = kube_ctl_start(&o);
		if (!k) {
			log_error(
			    "ingress: cannot start the controller thread");
		} else {
			status = tun_connector_run_live(cfg, NULL, live);
			kube_ctl_stop(k);
		}
	}
	tun_live_free(live);
	kube_api_free(api);
	curl_global_cleanup();
	tun_config_free(cfg);
	return status;
}
