/* cmd_demo.c - `meridian demo`: the embedded default. Two "clouds" of demo
 * origins on loopback (gcp: gke-1, gke-2; aws: eks-1, eks-2) and an edge in
 * front of them, with the commands to try printed once it listens. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "config/cfg_load.h"
#include "core/core_log.h"
#include "demo/demo_origin.h"
#include "edge/edge.h"

static const struct {
	const char *cloud, *name;
} demo_origins[] = {
	{"gcp", "gke-1"},
	{"gcp", "gke-2"},
	{"aws", "eks-1"},
	{"aws", "eks-2"},
};
#define NDEMO (sizeof(demo_origins) / sizeof(demo_origins[0]))

static const char demo_yaml[] =
	"edge:\n"
	"  name: demo\n"
	"  listen:\n"
	"    http: [\"%s\"]\n"
	"pools:\n"
	"  - id: gcp\n"
	"    description: GKE cluster (demo)\n"
	"    origins:\n"
	"      - { name: gke-1, address: 127.0.0.1, port: %u }\n"
	"      - { name: gke-2, address: 127.0.0.1, port: %u }\n"
	"  - id: aws\n"
	"    description: EKS cluster (demo)\n"
	"    origins:\n"
	"      - { name: eks-1, address: 127.0.0.1, port: %u }\n"
	"      - { name: eks-2, address: 127.0.0.1, port: %u }\n"
	"load_balancers:\n"
	"  - name: lb.example.com\n"
	"    default_pools: [gcp, aws]\n"
	"    fallback_pool: aws\n"
	"  - name: aws.example.com\n"
	"    default_pools: [aws]\n";

typedef struct demo_ctx {
	const char *listen;
	const char *url;
	uint16_t ports[NDEMO];
} demo_ctx;

static void demo_ready(void *arg)
{
	const demo_ctx *d = arg;
	printf("\nMeridian demo: an edge on %s in front of two clouds\n", d->url);
	for (size_t i = 0; i < NDEMO; i++)
		printf("  pool %-3s origin %s on 127.0.0.1:%u\n",
		       demo_origins[i].cloud, demo_origins[i].name, d->ports[i]);
	printf("\nTry:\n"
	       "  curl -H 'Host: lb.example.com' %s/        # gcp first "
	       "(default_pools: [gcp, aws])\n"
	       "  curl -H 'Host: aws.example.com' %s/       # the aws pool\n"
	       "  curl -H 'Host: lb.example.com' %s/echo    # what the origin "
	       "received (X-Forwarded-*)\n"
	       "  curl -H 'Host: nope.example.com' %s/      # 404 from the edge\n"
	       "\nCtrl-C drains and stops.\n\n",
	       d->url, d->url, d->url, d->url);
	fflush(stdout);
}

int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'L'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	demo_ctx d = {.listen = "127.0.0.1:8080"};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "L:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'L':
			d.listen = optarg;
			break;
		case 'l':
			core_log_level = cmd_log_level(optarg);
			if (core_log_level < 0) {
				fprintf(stderr, "meridian demo: unknown log "
						"level '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			puts("usage: meridian demo [--listen 127.0.0.1:8080]");
			return 0;
		default:
			fputs("usage: meridian demo [--listen 127.0.0.1:8080]\n",
			      stderr);
			return 2;
		}
	}

	demo_origin *origins[NDEMO] = {0};
	int status = 1;
	for (size_t i = 0; i < NDEMO; i++) {
		int err = demo_origin_start("127.0.0.1:0", demo_origins[i].cloud,
					    demo_origins[i].name, &origins[i]);
		if (err < 0) {
			fprintf(stderr, "meridian demo: cannot start origin "
					"%s: %s\n",
				demo_origins[i].name, strerror(-err));
			goto out;
		}
		d.ports[i] = demo_origin_port(origins[i]);
	}

	char yaml[2048], url[96];
	int n = snprintf(yaml, sizeof(yaml), demo_yaml, d.listen, d.ports[0],
			 d.ports[1], d.ports[2], d.ports[3]);
	if (n < 0 || (size_t)n >= sizeof(yaml)) {
		fputs("meridian demo: listen address too long\n", stderr);
		goto out;
	}
	snprintf(url, sizeof(url), "http://%s", d.listen);
	d.url = url;

	cfg_snapshot *snap = NULL;
	cfg_diag diag = {0};
	if (cfg_load_string("<demo>", yaml, (size_t)n, &snap, &diag) < 0) {
		for (size_t i = 0; i < diag.n; i++)
			fprintf(stderr, "%s\n", diag.msgs[i]);
		cfg_diag_free(&diag);
		goto out;
	}
	cfg_diag_free(&diag);
	status = edge_run(snap, demo_ready, &d);
out:
	for (size_t i = 0; i < NDEMO; i++)
		demo_origin_stop(origins[i]);
	return status;
}
