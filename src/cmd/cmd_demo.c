/* cmd_demo.c - `meridian demo`: the embedded default.
 *
 * Two "clouds" of demo origins (gcp: gke-1, gke-2 on 127.0.0.1; aws: eks-1,
 * eks-2 on 127.0.0.2, so DNS answers tell the clouds apart), each a child
 * process (`meridian origin`) so an operator can kill one and watch health
 * checks, failover and steering react; an edge in front of them with
 * monitors, geo steering, session affinity, the admin status page, and an
 * authoritative DNS server for example.com (the proxied load balancers
 * answer the edge's address, dns.example.com is a DNS-only load balancer
 * answering the origins' addresses); and the commands to try (curl, dig),
 * printed once everything listens. The children die with the demo
 * (PR_SET_PDEATHSIG, and a SIGTERM at exit).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "config/cfg_load.h"
#include "edge/edge_ctl.h"
#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "demo/demo_cert.h"
#include "edge/edge.h"

static const struct {
	const char *cloud, *name, *host;
} demo_origins[] = {
    {"gcp", "gke-1", "127.0.0.1"},
    {"gcp", "gke-2", "127.0.0.1"},
    {"aws", "eks-1", "127.0.0.2"},
    {"aws", "eks-2", "127.0.0.2"},
    /* Behind a tunnel: the edge's config names no address of it. */
    {"onprem", "dc-1", "127.0.0.3"},
};
#define TUNNEL_ORIGIN 4
#define NDEMO	      (sizeof(demo_origins) / sizeof(demo_origins[0]))

static const char demo_yaml[] =
    "edge:\n"
    "  name: demo\n"
    "  store: \"%s\"\n"
    "  region: WEU\n"
    "  public_addresses: [\"%s\"]\n"
    "  listen:\n"
    "    http: [\"%s\"]\n"
    "%s"
    "%s"
    "%s"
    "geo:\n"
    "%s"
    "  networks:\n"
    "    \"127.1.0.0/16\": { region: ENAM }\n"
    "    \"127.2.0.0/16\": { country: JP }\n"
    "monitors:\n"
    "  - { id: healthz, type: http, path: /healthz, interval: 1s,\n"
    "      timeout: 1s, retries: 0, expected_codes: \"200\" }\n"
    "  - { id: healthz_onprem, type: http, path: /healthz, interval: 1s,\n"
    "      timeout: 1s, retries: 0, expected_codes: \"200\",\n"
    "      header: { Host: [onprem.example.com] } }\n"
    "pools:\n"
    "  - id: gcp\n"
    "    description: GKE cluster (demo)\n"
    "    monitor: healthz\n"
    "    origins:\n"
    "      - { name: gke-1, address: %s, port: %u }\n"
    "      - { name: gke-2, address: %s, port: %u }\n"
    "  - id: aws\n"
    "    description: EKS cluster (demo)\n"
    "    monitor: healthz\n"
    "    origins:\n"
    "      - { name: eks-1, address: %s, port: %u }\n"
    "      - { name: eks-2, address: %s, port: %u }\n"
    "%s"
    "load_balancers:\n"
    "  - name: lb.example.com\n"
    "    default_pools: [gcp, aws]\n"
    "    fallback_pool: aws\n"
    "    steering_policy: geo\n"
    "    region_pools: { ENAM: [aws, gcp], WEU: [gcp, aws] }\n"
    "    country_pools: { JP: [aws] }\n"
    "    adaptive_routing: { failover_across_pools: true }\n"
    "    rules:\n"
    "      - name: canary\n"
    "        condition: http.request.headers[\"x-canary\"] eq \"1\"\n"
    "        overrides: { default_pools: [aws], steering_policy: off }\n"
    "      - name: moved\n"
    "        condition: http.request.uri.path eq \"/old\"\n"
    "        fixed_response: { status_code: 301, location: /, "
    "message_body: \"moved to /\\n\" }\n"
    "  - name: sticky.example.com\n"
    "    default_pools: [gcp, aws]\n"
    "    session_affinity: cookie\n"
    "    session_affinity_attributes: { zero_downtime_failover: sticky }\n"
    "  - name: aws.example.com\n"
    "    default_pools: [aws]\n"
    "%s"
    "  - name: dns.example.com\n"
    "    proxied: false\n"
    "    default_pools: [gcp, aws]\n"
    "    fallback_pool: aws\n"
    "    steering_policy: geo\n"
    "    region_pools: { ENAM: [aws, gcp], WEU: [gcp, aws] }\n"
    "    country_pools: { JP: [aws] }\n"
    "    location_strategy: { mode: resolver_ip, prefer_ecs: always }\n"
    "waf:\n"
    "%s"
    "  custom_rules:\n"
    "    - name: scanners\n"
    "      expression: lower(http.user_agent) contains \"sqlmap\"\n"
    "rate_limits:\n"
    "  - name: login\n"
    "    expression: http.request.uri.path eq \"/login\"\n"
    "    requests_per_period: 3\n"
    "    period: 1m\n"
    "zones:\n"
    "  - name: example.com\n"
    "    records:\n"
    "      - { name: www.example.com, type: CNAME, content: lb.example.com }\n"
    "      - { name: example.com, type: TXT,\n"
    "          content: \"Meridian demo: try dns.example.com\" }\n";

typedef struct demo_child {
	pid_t pid;
	int out_fd; /* its stdout, kept open so it never gets SIGPIPE */
	uint16_t port;
} demo_child;

/* With a tunnel: the edge's part of the config (after listen:), the
 * tunnel's pool and load balancer. */
static const char demo_tunnel_edge[] =
    "    tunnel: [\"%s\"]\n"
    "  tls:\n"
    "    certificates: [ { cert: \"%s/edge.pem\", key: \"%s/edge.key\" } "
    "]\n"
    "tunnels:\n"
    "  - { id: onprem, token: \"%s\",\n"
    "      description: \"a data centre that only dials out (demo)\" }\n";
static const char demo_tunnel_pool[] =
    "  - id: onprem\n"
    "    description: on-premises, through the tunnel 'onprem' (demo)\n"
    "    monitor: healthz_onprem\n"
    "    origins:\n"
    "      - { name: dc-1, address: \"tunnel:onprem\" }\n";
static const char demo_tunnel_lb[] =
    "  - name: onprem.example.com\n"
    "    default_pools: [onprem, aws]\n"
    "    adaptive_routing: { failover_across_pools: true }\n";
/* The connector's file: it dials the edge and serves dc-1. */
static const char demo_connector[] =
    "tunnel: onprem\n"
    "token: \"%s\"\n"
    "name: dc-connector\n"
    "edges: [\"%s\"]\n"
    "server_name: tunnel.example.com\n"
    "ca: \"%s/edge.pem\"\n"
    "ingress:\n"
    "  - { hostname: onprem.example.com, service: \"http://%s:%u\" }\n"
    "  - { service: \"http_status:404\" }\n";

typedef struct demo_ctx {
	const char *url;
	const char *admin;
	const char *dns;   /* DNS listen address, or NULL */
	char dns_host[64]; /* its host and port, for dig */
	unsigned dns_port;
	bool geo_db; /* a country database is loaded */
	bool waf;    /* the managed rules (the CRS) are on */
	demo_child kids[NDEMO];
	const char *tunnel;    /* tunnel listener, or NULL */
	const char *conn_file; /* the connector's config */
	pid_t connector;       /* `meridian tunnel`, started when ready */
} demo_ctx;

/* Start `meridian origin` and read its "listening on HOST:PORT" line. */
static int spawn_origin(const char *cloud, const char *name, const char *host,
			demo_child *c)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(pfd[0]);
		close(pfd[1]);
		return -err;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(pfd[1], STDOUT_FILENO);
		char listen[64];
		snprintf(listen, sizeof(listen), "%s:0", host);
		execl("/proc/self/exe", "meridian", "origin", "--listen",
		      listen, "--name", name, "--cloud", cloud, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	c->pid = pid;
	c->out_fd = pfd[0];
	char line[128];
	size_t len = 0;
	int rc = -ETIMEDOUT;
	uint64_t deadline = core_now_ms() + 5000;
	while (len < sizeof(line) - 1) {
		uint64_t now = core_now_ms();
		if (now >= deadline)
			break;
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		ssize_t n = read(pfd[0], line + len, sizeof(line) - 1 - len);
		if (n <= 0) {
			rc = -EPIPE;
			break;
		}
		len += (size_t)n;
		line[len] = '\0';
		char *colon = strrchr(line, ':');
		if (strchr(line, '\n') && colon) {
			c->port = (uint16_t)atoi(colon + 1);
			rc = c->port ? 0 : -EINVAL;
			break;
		}
	}
	return rc;
}

/* `meridian tunnel -c FILE`: started once the edge listens (it would
 * retry anyway); its log lines go to the demo's stderr. */
static void spawn_connector(demo_ctx *d)
{
	pid_t pid = fork();
	if (pid < 0)
		return;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0)
			dup2(nul, STDOUT_FILENO);
		execl("/proc/self/exe", "meridian", "tunnel", "-c",
		      d->conn_file, (char *)NULL);
		_exit(127);
	}
	d->connector = pid;
}

static void stop_children(demo_ctx *d)
{
	/* The connector first: it drains towards dc-1. */
	if (d->connector > 0) {
		kill(d->connector, SIGTERM);
		waitpid(d->connector, NULL, 0);
	}
	for (size_t i = 0; i < NDEMO; i++)
		if (d->kids[i].pid > 0)
			kill(d->kids[i].pid, SIGTERM);
	for (size_t i = 0; i < NDEMO; i++) {
		if (d->kids[i].pid > 0)
			waitpid(d->kids[i].pid, NULL, 0);
		if (d->kids[i].out_fd > 0)
			close(d->kids[i].out_fd);
	}
}

static void demo_ready(void *arg)
{
	demo_ctx *d = arg;
	const char *u = d->url;
	if (d->tunnel)
		spawn_connector(d);
	printf("\nMeridian demo: an edge on %s in front of two clouds%s\n", u,
	       d->tunnel ? " and a tunnel" : "");
	for (size_t i = 0; i < NDEMO; i++) {
		if (i == TUNNEL_ORIGIN && !d->tunnel)
			continue;
		printf("  pool %-6s origin %-5s on %s:%-5u pid %d%s\n",
		       demo_origins[i].cloud, demo_origins[i].name,
		       demo_origins[i].host, d->kids[i].port,
		       (int)d->kids[i].pid,
		       i == TUNNEL_ORIGIN ? " (reached only through the "
					    "tunnel)"
					  : "");
	}
	if (d->tunnel)
		printf("  tunnel onprem: connector pid %d dials out to %s\n",
		       (int)d->connector, d->tunnel);
	printf(
	    "\nTry:\n"
	    "  curl -H 'Host: lb.example.com' %s/\n"
	    "      # gcp answers: this client is in WEU (the edge's region)\n"
	    "  curl --interface 127.1.0.1 -H 'Host: lb.example.com' %s/\n"
	    "      # a client in ENAM (geo.networks): aws answers\n"
	    "  curl -H 'Host: aws.example.com' %s/\n"
	    "      # the aws pool only\n"
	    "  curl -c /tmp/demo.jar -b /tmp/demo.jar -H 'Host: "
	    "sticky.example.com' %s/\n"
	    "      # session affinity: the same origin every time\n"
	    "  curl -H 'Host: lb.example.com' %s/echo\n"
	    "      # what the origin received (X-Forwarded-*)\n"
	    "  curl -H 'X-Canary: 1' -H 'Host: lb.example.com' %s/\n"
	    "      # a load balancer rule on a header: aws answers\n"
	    "  curl -i -H 'Host: lb.example.com' %s/old\n"
	    "      # a rule's fixed_response: 301 from the edge\n"
	    "  curl -i -H 'Host: lb.example.com' %s/login\n"
	    "      # a rate limit: 3 a minute per client; the 4th in a "
	    "minute gets 429\n"
	    "  curl -i -A sqlmap/1.7 -H 'Host: lb.example.com' %s/\n"
	    "      # a firewall rule on the user agent: 403 from the edge\n"
	    "  curl -H 'Host: nope.example.com' %s/\n"
	    "      # 404 from the edge\n",
	    u, u, u, u, u, u, u, u, u, u);
	if (d->waf)
		printf("  curl -i -H 'Host: lb.example.com' "
		       "'%s/search?id=1%%27%%20OR%%20%%271%%27%%3D%%271'\n"
		       "      # the managed rules (OWASP CRS on ModSecurity): "
		       "SQL injection,\n"
		       "      # 403 from the edge\n",
		       u);
	if (d->tunnel)
		printf("  curl -H 'Host: onprem.example.com' %s/\n"
		       "      # through the tunnel: dc-1 answers, though the "
		       "edge only knows\n"
		       "      # 'tunnel:onprem' (stop the connector: aws "
		       "takes over)\n",
		       u);
	if (d->admin)
		printf("  curl http://%s/status\n"
		       "      # health of every pool and origin%s\n"
		       "  http://%s/dashboard/\n"
		       "      # in a browser: load balancers, pools, origins, "
		       "rate limits, live\n",
		       d->admin, d->dns ? ", DNS counters" : "", d->admin);
	if (d->dns) {
		const char *h = d->dns_host;
		unsigned p = d->dns_port;
		printf("\nDNS on %s (UDP and TCP), zone example.com:\n",
		       d->dns);
		printf(
		    "  dig @%s -p %u dns.example.com\n"
		    "      # DNS-only load balancer: gcp's address, 127.0.0.1 "
		    "(this resolver is\n"
		    "      # placed nowhere: the edge's region, WEU)\n"
		    "  dig @%s -p %u dns.example.com +subnet=127.1.0.0/24\n"
		    "      # a client subnet in ENAM (EDNS Client Subnet): "
		    "aws, 127.0.0.2\n"
		    "  dig @%s -p %u -b 127.1.0.1 dns.example.com\n"
		    "      # a resolver in ENAM (location_strategy "
		    "resolver_ip): aws\n",
		    h, p, h, p, h, p);
		if (d->geo_db)
			printf("  dig @%s -p %u dns.example.com "
			       "+subnet=1.0.16.0/24\n"
			       "      # located by the country database "
			       "(JP, country_pools): aws\n",
			       h, p);
		printf("  dig @%s -p %u lb.example.com\n"
		       "      # a proxied load balancer: the edge's own "
		       "address\n"
		       "  dig @%s -p %u nope.example.com\n"
		       "      # NXDOMAIN, with the zone's SOA\n",
		       h, p, h, p);
	}
	printf("\nFailover: kill %d (gke-1), then kill %d (gke-2): within a "
	       "second or two\ntraffic for lb.example.com moves to gke-2, then "
	       "to aws%s.%s\n\nCtrl-C drains and stops.\n\n",
	       (int)d->kids[0].pid, (int)d->kids[1].pid,
	       d->admin ? " (watch /status or the dashboard)" : "",
	       d->dns ? "\ndns.example.com then answers aws's address, "
			"127.0.0.2."
		      : "");
	fflush(stdout);
}

/* The tunnel's files in the demo's directory: a certificate for the
 * tunnel listener, the connector's config with a fresh token; and the
 * edge's part of the config. 0, or -1 (said on stderr). */
static int demo_tunnel_files(demo_ctx *d, const char *dir, const char *tunnel,
			     char *edge_yaml, size_t esize, char *conn_file,
			     size_t csize)
{
	char cert[96], key[96], err[160];
	snprintf(cert, sizeof(cert), "%s/edge.pem", dir);
	snprintf(key, sizeof(key), "%s/edge.key", dir);
	if (demo_cert_make("tunnel.example.com", cert, key, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "meridian demo: %s\n", err);
		return -1;
	}
	uint8_t raw[16];
	char token[33];
	if (core_random_key(raw, sizeof(raw)) < 0) {
		fputs("meridian demo: no random bytes for a token\n", stderr);
		return -1;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(token + 2 * i, 3, "%02x", raw[i]);
	snprintf(edge_yaml, esize, demo_tunnel_edge, tunnel, dir, dir, token);
	snprintf(conn_file, csize, "%s/connector.yaml", dir);
	int fd =
	    open(conn_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		fprintf(stderr, "meridian demo: %s: %s\n", conn_file,
			strerror(errno));
		return -1;
	}
	fprintf(f, demo_connector, token, tunnel, dir,
		demo_origins[TUNNEL_ORIGIN].host, d->kids[TUNNEL_ORIGIN].port);
	if (fclose(f) != 0) {
		fprintf(stderr, "meridian demo: %s: write failed\n", conn_file);
		return -1;
	}
	d->conn_file = conn_file;
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: meridian demo [--listen 127.0.0.1:8080] "
	      "[--admin 127.0.0.1:8081 | --no-admin]\n"
	      "                     [--dns 127.0.0.1:8082 | --no-dns] "
	      "[--log-level LEVEL]\n"
	      "                     [--tunnel 127.0.0.1:8083 | --no-tunnel]\n"
	      "  --admin, --dns and --tunnel default to the --listen port + 1, "
	      "+ 2 and + 3\n"
	      "  MERIDIAN_GEO_DB=path.mmdb adds a country database "
	      "(make demo sets it)\n",
	      f);
}

/* Default admin (+1) and DNS (+2) addresses: the listen address, port +
 * delta. */
static int default_addr(const char *listen, int delta, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (core_sock_parse_addr(listen, &ss, &len) < 0)
		return -EINVAL;
	const char *colon = strrchr(listen, ':');
	int port = atoi(colon + 1);
	if (port <= 0 || port + delta > 65535)
		return -EINVAL;
	snprintf(out, size, "%.*s:%d", (int)(colon - listen), listen,
		 port + delta);
	return 0;
}

/* The host (no brackets) and port of a listen address, for dig and for
 * public_addresses; a wildcard host becomes the loopback address. */
static int addr_parts(const char *text, char *host, size_t size, unsigned *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (core_sock_parse_addr(text, &ss, &len) < 0)
		return -EINVAL;
	core_sock_ip_text((const struct sockaddr *)&ss, host, size);
	if (!strcmp(host, "0.0.0.0"))
		snprintf(host, size, "127.0.0.1");
	else if (!strcmp(host, "::"))
		snprintf(host, size, "::1");
	*port = (unsigned)atoi(strrchr(text, ':') + 1);
	return 0;
}

int cmd_demo(int argc, char **argv)
{
	char store_dir[] = "/tmp/meridian-demo-XXXXXX";
	char store_path[sizeof(store_dir) + 16] = "";
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'L'},
	    {"admin", required_argument, NULL, 'A'},
	    {"no-admin", no_argument, NULL, 'N'},
	    {"dns", required_argument, NULL, 'D'},
	    {"no-dns", no_argument, NULL, 'n'},
	    {"tunnel", required_argument, NULL, 'T'},
	    {"no-tunnel", no_argument, NULL, 't'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *listen = "127.0.0.1:8080", *admin = NULL, *dns = NULL,
		   *tunnel = NULL;
	bool no_admin = false, no_dns = false, no_tunnel = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "L:A:ND:nT:tl:h", opts, NULL)) !=
	       -1) {
		switch (c) {
		case 'L':
			listen = optarg;
			break;
		case 'A':
			admin = optarg;
			break;
		case 'N':
			no_admin = true;
			break;
		case 'D':
			dns = optarg;
			break;
		case 'n':
			no_dns = true;
			break;
		case 'T':
			tunnel = optarg;
			break;
		case 't':
			no_tunnel = true;
			break;
		case 'l':
			if (cmd_set_log_level("demo", optarg) < 0)
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
	char admin_buf[96], dns_buf[96], tunnel_buf[96], public_host[64];
	unsigned listen_port;
	if (addr_parts(listen, public_host, sizeof(public_host), &listen_port) <
		0 ||
	    (!admin && !no_admin &&
	     default_addr(listen, 1, admin_buf, sizeof(admin_buf)) < 0) ||
	    (!dns && !no_dns &&
	     default_addr(listen, 2, dns_buf, sizeof(dns_buf)) < 0) ||
	    (!tunnel && !no_tunnel &&
	     default_addr(listen, 3, tunnel_buf, sizeof(tunnel_buf)) < 0)) {
		fprintf(stderr, "meridian demo: bad --listen '%s'\n", listen);
		return 2;
	}
	if (!admin && !no_admin)
		admin = admin_buf;
	if (!dns && !no_dns)
		dns = dns_buf;
	if (no_admin)
		admin = NULL;
	if (no_dns)
		dns = NULL;
	if (!tunnel && !no_tunnel)
		tunnel = tunnel_buf;
	if (no_tunnel)
		tunnel = NULL;
	if (tunnel && (strlen(tunnel) > 80 || strpbrk(tunnel, "\"\\\n"))) {
		fprintf(stderr, "meridian demo: bad --tunnel '%s'\n", tunnel);
		return 2;
	}

	struct sockaddr_storage ass;
	socklen_t alen;
	if (admin && core_sock_parse_addr(admin, &ass, &alen) < 0) {
		fprintf(stderr, "meridian demo: bad --admin '%s'\n", admin);
		return 2;
	}
	demo_ctx d = {.admin = admin, .dns = dns, .tunnel = tunnel};
	if (dns &&
	    addr_parts(dns, d.dns_host, sizeof(d.dns_host), &d.dns_port) < 0) {
		fprintf(stderr, "meridian demo: bad --dns '%s'\n", dns);
		return 2;
	}
	int status = 1;
	for (size_t i = 0; i < NDEMO; i++) {
		if (i == TUNNEL_ORIGIN && !tunnel)
			continue;
		int err =
		    spawn_origin(demo_origins[i].cloud, demo_origins[i].name,
				 demo_origins[i].host, &d.kids[i]);
		if (err < 0) {
			fprintf(stderr,
				"meridian demo: cannot start origin "
				"%s: %s\n",
				demo_origins[i].name, strerror(-err));
			goto out;
		}
	}

	char admin_yaml[128] = "", dns_yaml[128] = "", geo_yaml[512] = "";
	char url[96];
	if (admin)
		snprintf(admin_yaml, sizeof(admin_yaml), "    admin: \"%s\"\n",
			 admin);
	if (dns)
		snprintf(dns_yaml, sizeof(dns_yaml), "    dns: [\"%s\"]\n",
			 dns);
	const char *db = getenv("MERIDIAN_GEO_DB");
	if (db && *db && strlen(db) < 400 && !strpbrk(db, "\"\\\n")) {
		snprintf(geo_yaml, sizeof(geo_yaml), "  database: \"%s\"\n",
			 db);
		d.geo_db = true;
	}
	/* A fresh store per demo run: objects created through the API live
	 * as long as the demo, and never land in the system's store. */
	if (!mkdtemp(store_dir)) {
		perror("meridian demo: mkdtemp");
		goto out;
	}
	snprintf(store_path, sizeof(store_path), "%s/store.db", store_dir);
	char tun_edge[1024] = "", tun_pool[512] = "", tun_lb[256] = "";
	char conn_file[sizeof(store_dir) + 32] = "";
	if (tunnel &&
	    demo_tunnel_files(&d, store_dir, tunnel, tun_edge, sizeof(tun_edge),
			      conn_file, sizeof(conn_file)) < 0)
		goto out;
	if (tunnel) {
		snprintf(tun_pool, sizeof(tun_pool), "%s", demo_tunnel_pool);
		snprintf(tun_lb, sizeof(tun_lb), "%s", demo_tunnel_lb);
	}
	/* The managed rules need Debian's modsecurity-crs (make demo
	 * installs it); without it the demo runs without them. */
	d.waf =
	    access(CFG_WAF_CRS_DEFAULT "/rules/REQUEST-901-INITIALIZATION.conf",
		   R_OK) == 0;
	if (!d.waf)
		fputs("meridian demo: " CFG_WAF_CRS_DEFAULT
		      " not found (Debian's "
		      "modsecurity-crs): managed rules off\n",
		      stderr);
	char yaml[8192];
	int n =
	    snprintf(yaml, sizeof(yaml), demo_yaml, store_path, public_host,
		     listen, admin_yaml, dns_yaml, tun_edge, geo_yaml,
		     demo_origins[0].host, d.kids[0].port, demo_origins[1].host,
		     d.kids[1].port, demo_origins[2].host, d.kids[2].port,
		     demo_origins[3].host, d.kids[3].port, tun_pool, tun_lb,
		     d.waf ? "  managed: { enabled: true }\n" : "");
	if (n < 0 || (size_t)n >= sizeof(yaml)) {
		fputs("meridian demo: listen address too long\n", stderr);
		goto out;
	}
	snprintf(url, sizeof(url), "http://%s", listen);
	d.url = url;

	cfg_snapshot *snap = NULL;
	cfg_diag diag = {0};
	edge_ctl *ctl = NULL;
	if (edge_ctl_open_text("<demo>", yaml, (size_t)n, &ctl, &snap, &diag) <
	    0) {
		for (size_t i = 0; i < diag.n; i++)
			fprintf(stderr, "%s\n", diag.msgs[i]);
		cfg_diag_free(&diag);
		goto out;
	}
	cfg_diag_free(&diag);
	status = edge_run(ctl, snap, demo_ready, &d);
out:
	stop_children(&d);
	if (store_path[0]) {
		static const char *const sfx[] = {
		    "store.db",	     "store.db-wal", "store.db-shm",
		    "store.db.lock", "edge.pem",     "edge.key",
		    "connector.yaml"};
		for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
			char f[sizeof(store_dir) + 32];
			snprintf(f, sizeof(f), "%s/%s", store_dir, sfx[i]);
			unlink(f);
		}
		rmdir(store_dir);
	}
	return status;
}
