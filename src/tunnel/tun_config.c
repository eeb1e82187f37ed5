/* tun_config.c - the connector's configuration; see tun_config.h. */
#include "tunnel/tun_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_diag.h"
#include "config/cfg_yaml.h"
#include "core/core_arena.h"
#include "core/core_sock.h"
#include "core/core_util.h"

typedef struct ctx {
	core_arena *a;
	cfg_errs e;
	tun_config *c;
	const tun_config_ext *ext;
} ctx;

#define ERR(x, n, ...) cfg_errs_add(&(x)->e, (n)->line, (n)->col, __VA_ARGS__)

static const char *const top_keys[] = {
    "tunnel",	   "token", "name",	     "edges",	"connections_per_edge",
    "server_name", "ca",    "drain_timeout", "ingress",
};
static const char *const rule_keys[] = {"hostname", "path", "path_type",
					"service"};

/* Unknown keys of map m are errors ("where": "the tunnel configuration",
 * "ingress[0]"). */
static void check_keys(ctx *x, const cfg_node *m, const char *const *keys,
		       size_t nkeys, const char *where, const char *extra,
		       const char *banned)
{
	for (size_t i = 0; i < m->n; i++) {
		const cfg_node *k = m->keys[i];
		if (k->kind != CFG_NODE_SCALAR)
			continue; /* cfg_yaml said so already */
		bool known = extra && !strcmp(k->str, extra);
		for (size_t j = 0; j < nkeys && !known; j++)
			known = !strcmp(k->str, keys[j]);
		if (banned && !strcmp(k->str, banned))
			ERR(x, k,
			    "'%s' is not set in this file: the rules come "
			    "from %s",
			    k->str, extra);
		else if (!known)
			ERR(x, k, "unknown key '%s' in %s", k->str, where);
	}
}

/* A scalar's text, or NULL after an error (a list, a map, null). */
static const char *scalar(ctx *x, const cfg_node *n, const char *name,
			  const char *what)
{
	if (n->bad)
		return NULL;
	if (n->kind != CFG_NODE_SCALAR || n->is_null) {
		ERR(x, n, "%s: expected %s, got %s", name, what,
		    cfg_node_kind_name(n));
		return NULL;
	}
	return n->str;
}

bool tun_config_valid_id(const char *s, size_t len)
{
	if (len < 1 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static const char *id_value(ctx *x, const cfg_node *n, const char *name)
{
	static const char what[] = "1 to 63 of letters, digits, '.', '_', '-'";
	const char *s = scalar(x, n, name, what);
	if (!s)
		return NULL;
	if (!tun_config_valid_id(s, n->len)) {
		ERR(x, n, "%s: expected %s, got '%s'", name, what, s);
		return NULL;
	}
	return core_arena_strndup(x->a, s, n->len);
}

const char *tun_service_parse(core_arena *a, const char *s, size_t len,
			      tun_service *svc)
{
	*svc = (tun_service){0};
	svc->text = core_arena_strndup(a, s, len);
	if (len > 12 && !memcmp(s, "http_status:", 12)) {
		unsigned v = 0;
		size_t i = 12;
		for (; i < len && i < 16 && s[i] >= '0' && s[i] <= '9'; i++)
			v = v * 10 + (unsigned)(s[i] - '0');
		if (i != len || len != 15)
			return "expected http_status:NNN (three digits)";
		if (v < 100 || v > 599)
			return "the status must be from 100 to 599";
		svc->kind = TUN_SVC_STATUS;
		svc->status = (uint16_t)v;
		return NULL;
	}
	if (len >= 8 && !memcmp(s, "https://", 8))
		return "https services are not supported (use http://)";
	if (len < 8 || memcmp(s, "http://", 7))
		return "expected http://HOST:PORT or http_status:NNN";
	const char *p = s + 7, *end = s + len;
	if (end > p && end[-1] == '/')
		end--; /* "http://svc:80/" */
	const char *host = p, *hend;
	if (p < end && *p == '[') {
		hend = memchr(p, ']', (size_t)(end - p));
		if (!hend)
			return "an IPv6 address needs its closing ']'";
		host = p + 1;
		p = hend + 1;
	} else {
		while (p < end && *p != ':' && *p != '/')
			p++;
		hend = p;
	}
	if (hend == host)
		return "no host";
	unsigned port = 80;
	if (p < end && *p == ':') {
		p++;
		port = 0;
		const char *d = p;
		while (p < end && *p >= '0' && *p <= '9' && p - d < 6)
			port = port * 10 + (unsigned)(*p++ - '0');
		if (p == d || port < 1 || port > 65535)
			return "the port must be from 1 to 65535";
	}
	if (p != end)
		return "no path, query or user part (only http://HOST:PORT)";
	char *h = core_arena_strndup(a, host, (size_t)(hend - host));
	unsigned char bin[16];
	if (inet_pton(AF_INET, h, bin) == 1 || inet_pton(AF_INET6, h, bin) == 1)
		svc->host_is_ip = true;
	else if (host[-1] == '[')
		return "not an IPv6 address between '[' and ']'";
	else if (tun_ingress_check_hostname(h, strlen(h)) || h[0] == '*')
		return "the host is neither an IP address nor a DNS name";
	svc->kind = TUN_SVC_HTTP;
	svc->host = h;
	svc->port = (uint16_t)port;
	return NULL;
}

static void load_edges(ctx *x, const cfg_node *n)
{
	tun_config *c = x->c;
	if (n->bad)
		return;
	if (n->kind != CFG_NODE_SEQ || n->n < 1 || n->n > TUN_MAX_EDGES) {
		if (n->kind == CFG_NODE_SEQ)
			ERR(x, n, "edges: expected 1 to %d addresses, got %zu",
			    TUN_MAX_EDGES, n->n);
		else
			ERR(x, n, "edges: expected a list of addresses, got %s",
			    cfg_node_kind_name(n));
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const cfg_node *it = n->items[i];
		char name[32];
		snprintf(name, sizeof(name), "edges[%zu]", i);
		const char *s = scalar(x, it, name, "IP:port");
		if (!s)
			continue;
		tun_edge_addr *ea = &c->edges[c->nedges];
		if (core_sock_parse_addr(s, &ea->ss, &ea->len) < 0) {
			ERR(x, it,
			    "%s: expected IP:port (IPv6 as [::1]:7844), got "
			    "'%s'",
			    name, s);
			continue;
		}
		in_port_t port =
		    ea->ss.ss_family == AF_INET6
			? ((const struct sockaddr_in6 *)&ea->ss)->sin6_port
			: ((const struct sockaddr_in *)&ea->ss)->sin_port;
		if (!port) { /* nothing to dial */
			ERR(x, it,
			    "%s: the port must be from 1 to 65535, got '%s'",
			    name, s);
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < c->nedges && !dup; j++)
			dup = c->edges[j].len == ea->len &&
			      !memcmp(&c->edges[j].ss, &ea->ss, ea->len);
		if (dup) {
			ERR(x, it, "%s: '%s' is listed twice", name, s);
			continue;
		}
		char ip[64];
		core_sock_ip_text((const struct sockaddr *)&ea->ss, ip,
				  sizeof(ip));
		ea->ip = core_arena_strdup(x->a, ip);
		ea->text = core_arena_strndup(x->a, s, it->len);
		c->nedges++;
	}
}

static void load_rule(ctx *x, const cfg_node *n, size_t i, tun_rule *r)
{
	char where[32], name[48];
	snprintf(where, sizeof(where), "ingress[%zu]", i);
	r->line = n->line;
	r->col = n->col;
	if (n->kind != CFG_NODE_MAP) {
		if (!n->bad)
			ERR(x, n, "%s: expected a mapping, got %s", where,
			    cfg_node_kind_name(n));
		return;
	}
	check_keys(x, n, rule_keys, ARRAY_LEN(rule_keys), where, NULL, NULL);
	const cfg_node *v;
	if ((v = cfg_node_get(n, "hostname"))) {
		snprintf(name, sizeof(name), "%s.hostname", where);
		const char *s = scalar(x, v, name, "a host name");
		const char *why =
		    s ? tun_ingress_check_hostname(s, v->len) : NULL;
		if (why) {
			ERR(x, v, "%s: %s, got '%s'", name, why, s);
		} else if (s) {
			char *h = core_arena_strndup(x->a, s, v->len);
			for (char *p = h; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p + 32);
			r->hostname = h;
			r->hostname_len = v->len;
			r->wildcard = h[0] == '*';
		}
	}
	bool have_path = false;
	if ((v = cfg_node_get(n, "path"))) {
		snprintf(name, sizeof(name), "%s.path", where);
		const char *s = scalar(x, v, name, "a path");
		const char *why = s ? tun_ingress_check_path(s, v->len) : NULL;
		if (why)
			ERR(x, v, "%s: %s, got '%s'", name, why, s);
		else if (s) {
			r->path = core_arena_strndup(x->a, s, v->len);
			r->path_len = v->len;
		}
		have_path = true;
	}
	if ((v = cfg_node_get(n, "path_type"))) {
		snprintf(name, sizeof(name), "%s.path_type", where);
		const char *s = scalar(x, v, name, "prefix or exact");
		if (s && !strcmp(s, "exact"))
			r->exact = true;
		else if (s && strcmp(s, "prefix"))
			ERR(x, v, "%s: expected prefix or exact, got '%s'",
			    name, s);
		if (s && !have_path)
			ERR(x, v, "%s: only with a path", name);
	}
	/* prefix: "/api/" is "/api" (segments); "/" stays */
	while (r->path && !r->exact && r->path_len > 1 &&
	       r->path[r->path_len - 1] == '/')
		r->path_len--;
	if (!(v = cfg_node_get(n, "service"))) {
		ERR(x, n, "%s: missing required key 'service'", where);
		return;
	}
	snprintf(name, sizeof(name), "%s.service", where);
	const char *s =
	    scalar(x, v, name, "http://HOST:PORT or http_status:NNN");
	if (!s)
		return;
	const char *why = tun_service_parse(x->a, s, v->len, &r->svc);
	if (why)
		ERR(x, v, "%s: %s, got '%s'", name, why, s);
}

static void load_ingress(ctx *x, const cfg_node *n)
{
	tun_config *c = x->c;
	if (n->bad)
		return;
	if (n->kind != CFG_NODE_SEQ || n->n < 1 || n->n > TUN_MAX_RULES) {
		if (n->kind == CFG_NODE_SEQ)
			ERR(x, n, "ingress: expected 1 to %d rules, got %zu",
			    TUN_MAX_RULES, n->n);
		else
			ERR(x, n, "ingress: expected a list of rules, got %s",
			    cfg_node_kind_name(n));
		return;
	}
	c->rules = core_arena_alloc(x->a, n->n * sizeof(*c->rules));
	c->nrules = n->n;
	for (size_t i = 0; i < n->n; i++)
		load_rule(x, n->items[i], i, &c->rules[i]);
	/* first match wins: a catch-all before the end hides the rest */
	for (size_t i = 0; i + 1 < n->n; i++) {
		const cfg_node *r = n->items[i];
		if (r->kind == CFG_NODE_MAP && cfg_node_get(r, "service") &&
		    !cfg_node_get(r, "hostname") && !cfg_node_get(r, "path"))
			ERR(x, r,
			    "ingress[%zu]: matches every request (no hostname, "
			    "no path), so the rules after it would never be "
			    "used; only the last rule may",
			    i);
	}
	const cfg_node *last = n->items[n->n - 1];
	if (last->kind == CFG_NODE_MAP &&
	    (cfg_node_get(last, "hostname") || cfg_node_get(last, "path")))
		ERR(x, last,
		    "ingress[%zu]: the last rule must match every request "
		    "(no hostname, no path); add a catch-all such as "
		    "'- service: http_status:404'",
		    n->n - 1);
}

static void load_root(ctx *x, const cfg_node *root)
{
	tun_config *c = x->c;
	if (root->kind != CFG_NODE_MAP) {
		ERR(x, root, "expected a mapping at the top, got %s",
		    cfg_node_kind_name(root));
		return;
	}
	const char *extra = x->ext ? x->ext->key : NULL;
	check_keys(x, root, top_keys, ARRAY_LEN(top_keys),
		   "the tunnel configuration", extra, extra ? "ingress" : NULL);
	static const char *const required[] = {"tunnel", "token", "edges",
					       "ingress"};
	for (size_t i = 0; i < ARRAY_LEN(required); i++)
		if (!cfg_node_get(root, required[i]) &&
		    !(extra && !strcmp(required[i], "ingress")))
			ERR(x, root, "missing required key '%s'", required[i]);
	if (extra && !cfg_node_get(root, extra))
		ERR(x, root, "missing required key '%s'", extra);
	const cfg_node *v;
	if ((v = cfg_node_get(root, "tunnel")))
		c->tunnel = id_value(x, v, "tunnel");
	if ((v = cfg_node_get(root, "token"))) {
		const char *s = scalar(x, v, "token", "a string");
		if (s && v->len < TUN_MIN_TOKEN)
			ERR(x, v,
			    "token: expected at least %d characters, got %zu",
			    TUN_MIN_TOKEN, v->len);
		else if (s && memchr(s, '\0', v->len))
			ERR(x, v, "token: contains a NUL byte");
		else if (s) {
			bool ok = true;
			for (size_t i = 0; i < v->len && ok; i++)
				ok = (unsigned char)s[i] > ' ' &&
				     (unsigned char)s[i] < 0x7f;
			if (!ok)
				ERR(x, v,
				    "token: only printable ASCII, no spaces");
			else
				c->token = core_arena_strndup(x->a, s, v->len);
		}
	}
	if ((v = cfg_node_get(root, "name")))
		c->name = id_value(x, v, "name");
	if ((v = cfg_node_get(root, "edges")))
		load_edges(x, v);
	c->conns_per_edge = TUN_DEFAULT_CONNS;
	if ((v = cfg_node_get(root, "connections_per_edge"))) {
		static const char what[] = "an integer from 1 to 8";
		const char *s = scalar(x, v, "connections_per_edge", what);
		if (s) {
			char *e;
			errno = 0;
			unsigned long k = strtoul(s, &e, 10);
			if (*e || e == s || s[0] < '0' || s[0] > '9' || errno ||
			    k < 1 || k > TUN_MAX_CONNS)
				ERR(x, v,
				    "connections_per_edge: expected %s, got "
				    "'%s'",
				    what, s);
			else
				c->conns_per_edge = (uint32_t)k;
		}
	}
	if ((v = cfg_node_get(root, "server_name"))) {
		const char *s = scalar(x, v, "server_name", "a DNS name");
		const char *why =
		    s ? tun_ingress_check_hostname(s, v->len) : NULL;
		if (s && !why && s[0] == '*')
			why = "no wildcard";
		if (why)
			ERR(x, v, "server_name: %s, got '%s'", why, s);
		else if (s)
			c->server_name = core_arena_strndup(x->a, s, v->len);
	}
	if ((v = cfg_node_get(root, "ca"))) {
		const char *s = scalar(x, v, "ca", "a PEM file name");
		if (s && !v->len)
			ERR(x, v, "ca: expected a PEM file name, got ''");
		else if (s)
			c->ca = core_arena_strndup(x->a, s, v->len);
	}
	c->drain_timeout_ms = TUN_DEFAULT_DRAIN_MS;
	if ((v = cfg_node_get(root, "drain_timeout"))) {
		static const char what[] =
		    "a duration up to 1h (\"30s\", \"500ms\", \"2m\")";
		const char *s = scalar(x, v, "drain_timeout", what);
		uint64_t ms;
		if (s && (core_parse_duration_ms(s, &ms) < 0 ||
			  ms > TUN_MAX_DRAIN_MS))
			ERR(x, v, "drain_timeout: expected %s, got '%s'", what,
			    s);
		else if (s)
			c->drain_timeout_ms = ms;
	}
	if (extra) {
		if ((v = cfg_node_get(root, extra)) && !v->bad)
			x->ext->load(x->ext->arg, x->a, v, &x->e);
	} else if ((v = cfg_node_get(root, "ingress"))) {
		load_ingress(x, v);
	}
}

int tun_config_load_string(const char *name, const char *yaml, size_t len,
			   tun_config **out, cfg_diag *d)
{
	return tun_config_load_string_ext(name, yaml, len, NULL, out, d);
}

int tun_config_load_string_ext(const char *name, const char *yaml, size_t len,
			       const tun_config_ext *ext, tun_config **out,
			       cfg_diag *d)
{
	core_arena *a = core_arena_new(0);
	tun_config *c = core_arena_alloc(a, sizeof(*c));
	c->arena = a;
	c->file = core_arena_strdup(a, name ? name : "<tunnel config>");
	ctx x = {.a = a, .e = {.file = c->file}, .c = c, .ext = ext};
	core_arena *tmp = core_arena_new(0);
	cfg_node *root = cfg_yaml_parse(tmp, yaml ? yaml : "", len, &x.e);
	if (root)
		load_root(&x, root);
	else if (!x.e.n)
		cfg_errs_add(&x.e, 1, 1, "empty configuration");
	core_arena_free(tmp);
	*out = NULL;
	if (x.e.n) {
		if (d)
			cfg_errs_flush(&x.e, d);
		else
			cfg_errs_clear(&x.e);
		core_arena_free(a);
		return -1;
	}
	*out = c;
	return 0;
}

int tun_config_load_file(const char *path, tun_config **out, cfg_diag *d)
{
	return tun_config_load_file_ext(path, NULL, out, d);
}

int tun_config_load_file_ext(const char *path, const tun_config_ext *ext,
			     tun_config **out, cfg_diag *d)
{
	char *buf;
	size_t len;
	*out = NULL;
	if (cfg_read_file(path, &buf, &len, d) < 0)
		return -1;
	int rc = tun_config_load_string_ext(path, buf, len, ext, out, d);
	free(buf);
	return rc;
}

void tun_config_free(tun_config *c)
{
	if (c)
		core_arena_free(c->arena);
}

void tun_config_summary(const tun_config *c, char *buf, size_t size)
{
	size_t nsvc = 0;
	for (size_t i = 0; i < c->nrules; i++) {
		const tun_service *s = &c->rules[i].svc;
		if (s->kind != TUN_SVC_HTTP)
			continue;
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++) {
			const tun_service *o = &c->rules[j].svc;
			seen = o->kind == TUN_SVC_HTTP && o->port == s->port &&
			       !strcmp(o->host, s->host);
		}
		nsvc += !seen;
	}
	snprintf(buf, size,
		 "ok: tunnel %s, %zu edge%s x %u connection%s, %zu ingress "
		 "rule%s (%zu service%s)",
		 c->tunnel, c->nedges, c->nedges == 1 ? "" : "s",
		 c->conns_per_edge, c->conns_per_edge == 1 ? "" : "s",
		 c->nrules, c->nrules == 1 ? "" : "s", nsvc,
		 nsvc == 1 ? "" : "s");
}
