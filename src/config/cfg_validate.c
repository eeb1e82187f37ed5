/* cfg_validate.c - checks that span several keys, and computed defaults;
 * see cfg_validate.h. Errors point at the node that has to change. */
#include "config/cfg_validate.h"
#include "config/cfg_ratelimit.h"
#include "config/cfg_tunnel.h"
#include "lb/lb_expr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/cfg_resolve.h"
#include "config/cfg_values.h"
#include "core/core_arena.h"
#include "core/core_util.h"

/* A value node of a mapping, or the mapping itself for position. */
static const cfg_node *at(const cfg_node *map, const char *key)
{
	const cfg_node *n = cfg_node_get(map, key);
	return n ? n : map;
}

static void lowercase(const char *s)
{
	/* Snapshot strings are arena copies the loader owns until it hands
	 * the snapshot out. */
	for (char *p = (char *)s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
}

static void check_location(cfg_ctx *c, const cfg_node *node, bool has,
			   const char *what)
{
	if (!node || !has)
		return;
	const cfg_node *lat = cfg_node_get(node, "latitude");
	const cfg_node *lon = cfg_node_get(node, "longitude");
	bool has_lat = lat && !lat->is_null, has_lon = lon && !lon->is_null;
	/* An API object's field path names the object already. */
	const char *sep = node->path ? "" : ": ";
	if (node->path)
		what = "";
	if (has_lat && !has_lon)
		cfg_error(c, lat, "%s%slatitude needs longitude too", what,
			  sep);
	else if (has_lon && !has_lat)
		cfg_error(c, lon, "%s%slongitude needs latitude too", what,
			  sep);
}

/* Two TCP listeners on one port: the same address, or either the
 * wildcard. (With SO_REUSEPORT both binds would succeed and connections
 * would be shared at random between, say, the http and https ones.) */
static bool same_listener(const cfg_addr *a, const cfg_addr *b)
{
	if (!a->len || !b->len || a->ss.ss_family != b->ss.ss_family)
		return false;
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)&a->ss,
					 *y = (const void *)&b->ss;
		return x->sin_port == y->sin_port &&
		       (x->sin_addr.s_addr == y->sin_addr.s_addr ||
			x->sin_addr.s_addr == htonl(INADDR_ANY) ||
			y->sin_addr.s_addr == htonl(INADDR_ANY));
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)&a->ss,
					  *y = (const void *)&b->ss;
		return x->sin6_port == y->sin6_port &&
		       (!memcmp(&x->sin6_addr, &y->sin6_addr, 16) ||
			IN6_IS_ADDR_UNSPECIFIED(&x->sin6_addr) ||
			IN6_IS_ADDR_UNSPECIFIED(&y->sin6_addr));
	}
	return false;
}

/* edge.listen.{http,https,dns (its TCP side),tunnel,admin}: no port
 * twice. */
static void check_listeners(cfg_ctx *c, const cfg_node *node, const cfg_edge *e)
{
	struct {
		const cfg_addr *a;
		const char *what;
	} l[64];
	size_t n = 0;
	for (size_t i = 0; i < e->nlisten_http && n < 64; i++)
		l[n++] = (typeof(l[0])){&e->listen_http[i], "http"};
	for (size_t i = 0; i < e->nlisten_https && n < 64; i++)
		l[n++] = (typeof(l[0])){&e->listen_https[i], "https"};
	for (size_t i = 0; i < e->nlisten_dns && n < 64; i++)
		l[n++] = (typeof(l[0])){&e->listen_dns[i], "dns"};
	for (size_t i = 0; i < e->nlisten_tunnel && n < 64; i++)
		l[n++] = (typeof(l[0])){&e->listen_tunnel[i], "tunnel"};
	if (e->has_admin && n < 64)
		l[n++] = (typeof(l[0])){&e->listen_admin, "admin"};
	const cfg_node *at = cfg_node_get(node, "listen");
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (same_listener(l[i].a, l[j].a)) {
				cfg_error(c, at ? at : node,
					  "edge.listen.%s: %s uses the port of "
					  "edge.listen.%s %s",
					  l[j].what, l[j].a->text, l[i].what,
					  l[i].a->text);
				return;
			}
}

void cfg_finish_edge(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_edge *e = base;
	check_location(c, node, e->has_location, "edge");
	check_listeners(c, node, e);
	if (e->request_id_header && *e->request_id_header) {
		size_t n = strlen(e->request_id_header);
		e->request_id_header_len = (uint32_t)n;
		char *lc = core_arena_strdup(c->arena, e->request_id_header);
		lowercase(lc);
		/* Fields the edge manages, hop-by-hop ones, and response
		 * fields whose origin value the id would replace. */
		static const char *const reserved[] = {
		    "host",
		    "connection",
		    "transfer-encoding",
		    "content-length",
		    "x-forwarded-for",
		    "x-forwarded-proto",
		    "x-forwarded-host",
		    "strict-transport-security",
		    "upgrade",
		    "te",
		    "trailer",
		    "keep-alive",
		    "proxy-connection",
		    "proxy-authenticate",
		    "proxy-authorization",
		    "authorization",
		    "www-authenticate",
		    "set-cookie",
		    "cookie",
		    "expect",
		    "location",
		    "content-type",
		    "content-encoding",
		    "content-range",
		    "content-location",
		    "date",
		    "etag",
		    "last-modified",
		    "cache-control",
		    "expires",
		    "vary",
		    "age",
		    "retry-after",
		    "server"};
		for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved);
		     i++)
			if (!strcmp(lc, reserved[i]))
				cfg_error(c, at(node, "request_id_header"),
					  "request_id_header: %s is a field "
					  "the edge manages itself; use e.g. "
					  "X-Request-Id",
					  e->request_id_header);
		if (n > 64)
			cfg_error(c, at(node, "request_id_header"),
				  "request_id_header: longer than 64 "
				  "characters");
	} else {
		e->request_id_header = NULL;
	}
	if (e->nlisten_https) {
		const struct sockaddr_storage *ss = &e->listen_https[0].ss;
		e->https_port =
		    ntohs(ss->ss_family == AF_INET6
			      ? ((const struct sockaddr_in6 *)ss)->sin6_port
			      : ((const struct sockaddr_in *)ss)->sin_port);
	}
}

/* Where the first of two equal values is, for "duplicate ... (first at
 * ...)": its line in the file, or its field in an API object. Between a
 * file's object and an API one the file is named. */
static void first_at(const cfg_ctx *c, const cfg_node *dup,
		     const cfg_node *first, char *buf, size_t size)
{
	if (first->path)
		snprintf(buf, size, "%s", first->path);
	else if (dup->path)
		snprintf(buf, size, "line %u of %s", first->line, c->file);
	else
		snprintf(buf, size, "line %u", first->line);
}

static const cfg_node *uniq_value(const cfg_node *item, const char *key)
{
	const cfg_node *v = cfg_node_get(item, key);
	if (!v || v->kind != CFG_NODE_SCALAR || v->is_null || v->bad)
		return NULL;
	return v;
}

/* Report each item of seq whose value of key equals an earlier one's, in
 * list order, naming the first item with that value. Sorted, not pairwise:
 * a pool of 15,000 origins is checked in O(n log n). */
static void unique_in_list(cfg_ctx *c, const cfg_node *seq, const char *key,
			   const char *what, bool nocase, bool show)
{
	if (!seq || seq->kind != CFG_NODE_SEQ || seq->n < 2)
		return;
	cfg_strref *v = xmalloc(seq->n * sizeof(*v));
	for (size_t i = 0; i < seq->n; i++) {
		const cfg_node *a = uniq_value(seq->items[i], key);
		v[i] =
		    a ? (cfg_strref){a->str, strlen(a->str)} : (cfg_strref){0};
	}
	size_t *first = xmalloc(seq->n * sizeof(*first));
	cfg_find_repeats(v, seq->n, nocase, first);
	free(v);
	for (size_t i = 0; i < seq->n; i++) {
		if (first[i] == SIZE_MAX)
			continue;
		const cfg_node *a = uniq_value(seq->items[i], key);
		const cfg_node *b = uniq_value(seq->items[first[i]], key);
		char where[320];
		first_at(c, a, b, where, sizeof(where));
		if (show)
			cfg_error(c, a, "duplicate %s '%s' (first at %s)", what,
				  a->str, where);
		else /* secrets are not echoed */
			cfg_error(c, a, "duplicate %s (same as %s)", what,
				  where);
	}
	free(first);
}

void cfg_finish_api(cfg_ctx *c, const cfg_node *node, void *base)
{
	(void)base;
	unique_in_list(c, cfg_node_get(node, "tokens"), "token", "API token",
		       false, false);
}

static bool dns_name_ok(const char *name)
{
	/* Owner names may carry '_' (_dmarc, _sip._tcp) where host names
	 * may not. */
	char copy[256];
	size_t len = strlen(name);
	if (len >= sizeof(copy))
		return false;
	for (size_t i = 0; i <= len; i++)
		copy[i] = name[i] == '_' ? 'u' : name[i];
	return cfg_is_hostname(copy, true);
}

void cfg_finish_record(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_record *r = base;
	if (!node || !r->content)
		return;
	const cfg_node *cn = at(node, "content");
	struct in_addr a4;
	struct in6_addr a6;
	switch (r->type) {
	case CFG_RR_A:
		if (inet_pton(AF_INET, r->content, &a4) != 1)
			cfg_error(c, cn,
				  "content: expected an IPv4 address for an A "
				  "record, got '%s'",
				  r->content);
		break;
	case CFG_RR_AAAA:
		if (inet_pton(AF_INET6, r->content, &a6) != 1)
			cfg_error(c, cn,
				  "content: expected an IPv6 address for an "
				  "AAAA record, got '%s'",
				  r->content);
		break;
	case CFG_RR_CNAME:
	case CFG_RR_NS:
	case CFG_RR_MX:
		if (!cfg_is_hostname(r->content, false))
			cfg_error(c, cn,
				  "content: expected a host name, got '%s'",
				  r->content);
		break;
	default:
		break;
	}
}

void cfg_finish_zone(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_zone *z = base;
	if (!z->name)
		return;
	lowercase(z->name);
	const cfg_node *recs = cfg_node_get(node, "records");
	size_t zlen = strlen(z->name);
	for (size_t i = 0; i < z->nrecords; i++) {
		cfg_record *r = &z->records[i];
		if (!r->name)
			continue;
		const cfg_node *rn =
		    recs && i < recs->n ? at(recs->items[i], "name") : node;
		if (!strcmp(r->name, "@")) {
			r->name = z->name;
			continue;
		}
		lowercase(r->name);
		size_t rlen = strlen(r->name);
		if (!dns_name_ok(r->name)) {
			cfg_error(c, rn, "name: expected a DNS name, got '%s'",
				  r->name);
		} else if (strcmp(r->name, z->name) &&
			   (rlen <= zlen + 1 ||
			    strcmp(r->name + rlen - zlen, z->name) ||
			    r->name[rlen - zlen - 1] != '.')) {
			cfg_error(c, rn,
				  "name: '%s' is not inside zone '%s' (use "
				  "'@' for the apex)",
				  r->name, z->name);
		}
	}
}

void cfg_finish_network(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_geo_network *n = base;
	if (node && !n->region && !n->country &&
	    !cfg_node_get(node, "region") && !cfg_node_get(node, "country"))
		cfg_error(c, node, "network needs a region or a country");
}

/* "10.0.0.1:80" written as an address: say where the port goes. */
static bool has_port_suffix(const char *s)
{
	const char *colon = strchr(s, ':');
	if (!colon || strchr(colon + 1, ':') || !colon[1])
		return false;
	for (const char *p = colon + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* "https://host[:port]" (a Meridian extension): the origin speaks TLS;
 * the address becomes the host and the port 443 unless one is written.
 * Returns false after an error. */
static bool take_https(cfg_ctx *c, const cfg_node *node, cfg_origin *o)
{
	static const char scheme[] = "https://";
	const size_t sl = sizeof(scheme) - 1;
	if (strncasecmp(o->address, scheme, sl))
		return true;
	const cfg_node *an = at(node, "address");
	const char *h = o->address + sl;
	const char *end = h + strcspn(h, "/?#");
	if (*end && strcmp(end, "/")) {
		cfg_error(c, an,
			  "address: '%s' has a path; write only "
			  "https://host[:port]",
			  o->address);
		return false;
	}
	const char *colon = NULL;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (rb && rb + 1 < end && rb[1] == ':')
			colon = rb + 1;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
	}
	const char *hend = colon ? colon : end;
	if (hend == h) {
		cfg_error(c, an, "address: '%s' has no host", o->address);
		return false;
	}
	const cfg_node *pn = cfg_node_get(node, "port");
	if (colon) {
		unsigned long port = 0;
		const char *p = colon + 1;
		/* Stop past 65535: a long number must not wrap around. */
		for (; p < end && *p >= '0' && *p <= '9' && port <= 65535; p++)
			port = port * 10 + (unsigned long)(*p - '0');
		if (p != end || p == colon + 1 || port == 0 || port > 65535) {
			cfg_error(c, an, "address: bad port in '%s'",
				  o->address);
			return false;
		}
		if (pn && !pn->is_null && o->port != port) {
			cfg_error(c, pn,
				  "port: %u contradicts the port in address "
				  "'%s'",
				  o->port, o->address);
			return false;
		}
		o->port = (uint16_t)port;
	} else if (!pn || pn->is_null) {
		o->port = 443;
	}
	o->address = core_arena_strndup(c->arena, h, (size_t)(hend - h));
	o->tls_on = true;
	return true;
}

void cfg_finish_origin(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_origin *o = base;
	if (!node || !o->address)
		return;
	if (cfg_origin_tunnel(c, node, o))
		return;
	if (!take_https(c, node, o))
		return;
	const cfg_node *an = at(node, "address");
	char host[256];
	size_t len = strlen(o->address);
	if (len >= sizeof(host)) {
		cfg_error(c, an, "address: too long");
		return;
	}
	memcpy(host, o->address, len + 1);
	if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
		memmove(host, host + 1, len - 2);
		host[len - 2] = '\0';
	}
	if (cfg_parse_ip(host, o->port, &o->ss, &o->sslen) == 0)
		return;
	if (has_port_suffix(host)) {
		cfg_error(c, an,
			  "address: '%s' includes a port; write it as "
			  "'port: %s'",
			  o->address, strchr(host, ':') + 1);
		return;
	}
	if (!cfg_is_hostname(host, false)) {
		cfg_error(c, an,
			  "address: expected an IP address or host name, got "
			  "'%s'",
			  o->address);
		return;
	}
	/* "127.1", "0x7f000001", "2130706433": old shorthands of IPv4 that
	 * the resolver takes, but not host names -- DNS-only answers would
	 * give them as CNAME targets nobody can follow. */
	struct in_addr shorthand;
	if (inet_aton(host, &shorthand)) {
		char full[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &shorthand, full, sizeof(full));
		cfg_error(c, an,
			  "address: '%s' is a shorthand IPv4 address, not a "
			  "host name; write it in full: '%s'",
			  o->address, full);
		return;
	}
	/* Once per name and process: later builds take the address the
	 * edge's resolver keeps fresh (cfg_resolve.h). */
	char why[128];
	if (cfg_resolve_host(host, &o->ss, &o->sslen, why, sizeof(why)) < 0) {
		cfg_error(c, an, "address: cannot resolve '%s': %s", host, why);
		return;
	}
	o->host = core_arena_strdup(c->arena, host);
	if (o->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&o->ss)->sin_port = htons(o->port);
	else if (o->ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&o->ss)->sin6_port = htons(o->port);
}

static bool is_ip(const char *s)
{
	struct in6_addr a6;
	return inet_pton(AF_INET, s, &a6) == 1 ||
	       inet_pton(AF_INET6, s, &a6) == 1 || s[0] == '[';
}

/* The SNI rule of cfg_origin.sni, but for the Host override (pool_tls).
 * The origin name counts when it is a dotted host name ("o1" is a label,
 * not a name a certificate would carry). */
static const char *origin_sni(const cfg_pool *p, const cfg_origin *o)
{
	if (p->origin_tls.sni)
		return p->origin_tls.sni;
	if (o->name && cfg_is_hostname(o->name, false) && strchr(o->name, '.'))
		return o->name;
	if (o->address && !is_ip(o->address) &&
	    cfg_is_hostname(o->address, false))
		return o->address;
	return NULL;
}

/* Decide which origins speak TLS and with which name. */
static void pool_tls(cfg_ctx *c, cfg_pool *p)
{
	cfg_origin_tls *t = NULL;
	for (size_t i = 0; i < p->norigins; i++) {
		cfg_origin *o = &p->origins[i];
		if (!o->tls_on && !p->origin_tls.enabled)
			continue;
		if (!t) {
			/* A copy: the pool struct may still move. */
			t = core_arena_alloc(c->arena, sizeof(*t));
			*t = p->origin_tls;
		}
		o->tls = t;
		o->sni = origin_sni(p, o);
		const char *host = NULL;
		for (size_t j = 0; !p->origin_tls.sni && j < o->nheaders; j++)
			if (!strcasecmp(o->headers[j].name, "Host") &&
			    o->headers[j].nvalues > 0)
				host = o->headers[j].values[0];
		if (host && host[0] != '[') {
			size_t n = strcspn(host, ":");
			/* "example.com." is the same name; SNI has no
			 * trailing dot (RFC 6066 §3) and certificates
			 * name it without one. */
			if (n > 1 && host[n - 1] == '.')
				n--;
			char *name = core_arena_strndup(c->arena, host, n);
			o->sni = n && !is_ip(name) ? name : NULL;
		}
	}
}

void cfg_finish_pool(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_pool *p = base;
	if (!p->name)
		p->name = p->id;
	pool_tls(c, p);
	if (!node)
		return;
	const cfg_node *tn = cfg_node_get(node, "origin_tls");
	if (p->origin_tls.ca && tn) {
		FILE *f = fopen(p->origin_tls.ca, "r");
		if (!f)
			cfg_error(c, at(tn, "ca"), "ca: cannot open '%s': %s",
				  p->origin_tls.ca, strerror(errno));
		else
			fclose(f);
	}
	check_location(c, node, p->has_location, "pool");
	unique_in_list(c, cfg_node_get(node, "origins"), "name", "origin name",
		       false, true);
	const cfg_node *mo = cfg_node_get(node, "minimum_origins");
	if (p->norigins && mo && !mo->is_null &&
	    p->minimum_origins > p->norigins)
		cfg_error(c, mo,
			  "minimum_origins: %u is more than the pool's %zu "
			  "origin%s",
			  p->minimum_origins, p->norigins,
			  p->norigins == 1 ? "" : "s");
}

void cfg_check_default_pools(cfg_ctx *c, const cfg_node *dp)
{
	for (size_t i = 1; dp && dp->kind == CFG_NODE_SEQ && i < dp->n; i++) {
		const cfg_node *a = dp->items[i];
		for (size_t j = 0;
		     j < i && a->kind == CFG_NODE_SCALAR && !a->bad; j++) {
			const cfg_node *b = dp->items[j];
			if (b->kind == CFG_NODE_SCALAR &&
			    !strcmp(a->str, b->str)) {
				cfg_error(c, a,
					  "default_pools: pool '%s' is listed "
					  "twice",
					  a->str);
				break;
			}
		}
	}
}

void cfg_lb_weight_map(cfg_ctx *c, cfg_lb *lb)
{
	lb->random_pool_weights = NULL;
	lb->nrandom_pool_weights = lb->npool_weights;
	if (!lb->npool_weights)
		return;
	lb->random_pool_weights = core_arena_alloc(
	    c->arena, lb->npool_weights * sizeof(*lb->random_pool_weights));
	for (size_t i = 0; i < lb->npool_weights; i++) {
		cfg_pool_map *m = &lb->random_pool_weights[i];
		m->key = lb->pool_weights[i].key;
		m->pools = &lb->pool_weights[i].pool;
		m->npools = 1;
	}
}

void cfg_finish_lb(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_lb *lb = base;
	if (!lb->id)
		lb->id = lb->name;
	/* The older map-shaped view of pool_weights, for code written
	 * against it. */
	cfg_lb_weight_map(c, lb);
	if (lb->hsts_enabled) {
		char v[64];
		int n = snprintf(
		    v, sizeof(v), "max-age=%u%s%s", lb->hsts_max_age,
		    lb->hsts_include_subdomains ? "; includeSubDomains" : "",
		    lb->hsts_preload ? "; preload" : "");
		lb->hsts_value = core_arena_strdup(c->arena, v);
		lb->hsts_value_len = (uint32_t)n;
	}
	const cfg_node *hs = cfg_node_get(node, "hsts"); /* NULL-safe */
	if (lb->hsts_enabled && lb->hsts_preload &&
	    (!lb->hsts_include_subdomains || lb->hsts_max_age < 31536000))
		cfg_error(c, hs ? at(hs, "preload") : node,
			  "hsts.preload: needs include_subdomains: true and "
			  "max_age of at least 31536000 (a year), as the "
			  "browsers' preload lists require");
	if (!node)
		return;
	cfg_check_default_pools(c, cfg_node_get(node, "default_pools"));
	if (lb->session_affinity == CFG_AFF_HEADER &&
	    lb->session_affinity_attributes.nheaders == 0)
		cfg_error(c, at(node, "session_affinity"),
			  "session_affinity: header needs "
			  "session_affinity_attributes.headers");
}

void cfg_finish_affinity(cfg_ctx *c, const cfg_node *node, void *base)
{
	const cfg_affinity_attrs *a = base;
	/* Browsers drop a SameSite=None cookie without Secure, so every
	 * session would be lost; Cloudflare refuses the pair too. */
	if (node && a->samesite == CFG_SAMESITE_NONE &&
	    a->secure == CFG_SECURE_NEVER)
		cfg_error(
		    c, at(node, "samesite"),
		    "samesite: None needs secure Auto or Always (browsers "
		    "drop a SameSite=None cookie that is not Secure)");
}

void cfg_finish_root(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_snapshot *s = base;
	if (!node)
		return;
	unique_in_list(c, cfg_node_get(node, "monitors"), "id", "monitor id",
		       false, true);
	unique_in_list(c, cfg_node_get(node, "pools"), "id", "pool id", false,
		       true);
	unique_in_list(c, cfg_node_get(node, "zones"), "name", "zone", true,
		       true);
	const cfg_node *lbs = cfg_node_get(node, "load_balancers");
	unique_in_list(c, lbs, "name", "load balancer name", true, true);
	const cfg_node *waf =
	    cfg_node_get(cfg_node_get(node, "waf"), "custom_rules");
	unique_in_list(c, waf, "name", "custom rule name", false, true);
	cfg_finish_waf_rules(c, waf);
	const cfg_node *rls = cfg_node_get(node, "rate_limits");
	unique_in_list(c, rls, "name", "rate limit name", false, true);
	cfg_finish_rate_limits(c, rls);
	const cfg_node *tuns = cfg_node_get(node, "tunnels");
	unique_in_list(c, tuns, "id", "tunnel id", false, true);
	cfg_finish_tunnels(c, tuns);
	/* https_redirect sends clients to the first https listener. */
	for (size_t i = 0; lbs && lbs->kind == CFG_NODE_SEQ && i < s->nlbs &&
			   i < lbs->n && !s->edge.nlisten_https;
	     i++) {
		if (s->lbs[i].https_redirect)
			cfg_error(c, at(lbs->items[i], "https_redirect"),
				  "https_redirect: needs an https listener "
				  "(edge.listen.https)");
		if (s->lbs[i].hsts_enabled)
			cfg_error(c, at(lbs->items[i], "hsts"),
				  "hsts: needs an https listener "
				  "(edge.listen.https): the header is only "
				  "sent over TLS");
	}
	/* Ids default to names, so only explicit ids can clash apart from
	 * the names reported above. */
	for (size_t i = 1; lbs && lbs->kind == CFG_NODE_SEQ && i < s->nlbs;
	     i++) {
		const cfg_node *idn = cfg_node_get(lbs->items[i], "id");
		if (!s->lbs[i].id || !idn || idn->is_null)
			continue;
		for (size_t j = 0; j < i; j++) {
			if (s->lbs[j].id &&
			    !strcmp(s->lbs[i].id, s->lbs[j].id)) {
				const cfg_node *first = lbs->items[j];
				const cfg_node *fid = cfg_node_get(first, "id");
				char where[320];
				/* The file names the object's line. */
				first_at(c, idn,
					 first->path && fid ? fid : first,
					 where, sizeof(where));
				cfg_error(c, idn,
					  "duplicate load balancer id '%s' "
					  "(first at %s)",
					  s->lbs[i].id, where);
				break;
			}
		}
	}
}

static void warn_at(cfg_ctx *c, const cfg_pos *pos, const char *field,
		    const char *msg);

/* A monitor speaking the other protocol than its origin's port: an http
 * monitor on an origin reached over TLS sends plain HTTP to the TLS port
 * (and an https one starts TLS on a plain port), so every check fails
 * and the origin is marked down. Only a warning: with monitor.port the
 * checks go to another port, and a deliberately failing check can be
 * meant. */
static void warn_monitor_scheme(cfg_ctx *c, const cfg_pool *p)
{
	const cfg_monitor *m = p->monitor;
	if (!m || m->port ||
	    (m->type != CFG_MON_HTTP && m->type != CFG_MON_HTTPS))
		return;
	bool mon_tls = m->type == CFG_MON_HTTPS;
	for (size_t i = 0; i < p->norigins; i++) {
		const cfg_origin *o = &p->origins[i];
		if (!o->enabled || !o->tls == !mon_tls)
			continue;
		char msg[1536];
		if (mon_tls)
			snprintf(
			    msg, sizeof(msg),
			    "origin '%s' is plain HTTP but its pool's "
			    "monitor '%s' is type https: every check would "
			    "start TLS on port %u and fail (use type http, "
			    "or monitor.port for a TLS health port)",
			    o->name, m->id, o->port);
		else
			snprintf(
			    msg, sizeof(msg),
			    "origin '%s' is reached over TLS but its pool's "
			    "monitor '%s' is type http: every check would "
			    "send plain HTTP to port %u and fail (use type "
			    "https, or monitor.port for a plain-HTTP health "
			    "port)",
			    o->name, m->id, o->port);
		char field[600];
		snprintf(field, sizeof(field), "pools[%s].origins[%zu]", p->id,
			 i);
		warn_at(c, &o->pos, field, msg);
	}
}

static void warn_at(cfg_ctx *c, const cfg_pos *pos, const char *field,
		    const char *msg)
{
	if (pos->line)
		cfg_errs_add(&c->warns, pos->line, pos->col, "%s", msg);
	else
		cfg_errs_add_field(&c->warns, field, "%s", msg);
}

static const cfg_origin *pool_host_origin(const cfg_pool *p)
{
	for (size_t i = 0; p && i < p->norigins; i++)
		if (p->origins[i].host && !p->origins[i].tunnel)
			return &p->origins[i];
	return NULL;
}

static bool lb_uses_pool(const cfg_lb *lb, const cfg_pool *p);

/* An origin given as a host name that lb may answer with (in a pool it
 * names, rules aside), and its pool; NULL if none. */
static const cfg_origin *lb_host_origin(const cfg_snapshot *s, const cfg_lb *lb,
					const cfg_pool **pool)
{
	for (size_t i = 0; i < s->npools; i++) {
		const cfg_origin *o = pool_host_origin(&s->pools[i]);
		if (o && lb_uses_pool(lb, &s->pools[i])) {
			*pool = &s->pools[i];
			return o;
		}
	}
	return NULL;
}

/* A DNS-only load balancer answers an origin given as a host name with a
 * CNAME: at its zone's apex (which holds SOA and NS) a CNAME cannot be,
 * so such an answer is NODATA; elsewhere the CNAME hides the static
 * records at the same name. Both silently, so said at load. */
static void warn_dns_cname(cfg_ctx *c, const cfg_lb *lb, const cfg_zone *z,
			   const char *field)
{
	const cfg_pool *p = NULL;
	const cfg_origin *o = lb_host_origin(c->snap, lb, &p);
	if (!o)
		return;
	char msg[1536];
	if (!strcasecmp(lb->name, z->name)) {
		snprintf(msg, sizeof(msg),
			 "load balancer '%s' is DNS-only at the apex of zone "
			 "'%s', where a CNAME cannot be: when origin '%s' "
			 "(pool '%s', a host name) is chosen, queries get no "
			 "address (give the origin as an IP address, or move "
			 "the load balancer below the apex)",
			 lb->name, z->name, o->name, p->id);
		warn_at(c, &lb->pos, field, msg);
		return;
	}
	for (size_t i = 0; i < z->nrecords; i++) {
		const cfg_record *r = &z->records[i];
		if (!r->name || strcasecmp(r->name, lb->name))
			continue;
		snprintf(msg, sizeof(msg),
			 "load balancer '%s' is DNS-only and origin '%s' "
			 "(pool '%s') is a host name, answered as a CNAME: "
			 "while it is chosen, the static records at '%s' "
			 "(line %u) are not answered",
			 lb->name, o->name, p->id, lb->name, r->pos.line);
		warn_at(c, &lb->pos, field, msg);
		return;
	}
}

/* A DNS-only load balancer (proxied: false) is answered only by this
 * edge's DNS server, for names inside its zones; the proxy never routes
 * it. Outside every zone, or without a DNS listener, nothing serves it. */
static void warn_dns_only(cfg_ctx *c, const cfg_lb *lb)
{
	if (!lb->enabled || lb->proxied || !lb->name)
		return;
	const cfg_snapshot *s = c->snap;
	const cfg_zone *zone = NULL; /* the innermost one that holds it */
	for (size_t i = 0; i < s->nzones; i++)
		if (s->zones[i].name &&
		    cfg_name_in_zone(lb->name, s->zones[i].name) &&
		    (!zone || strlen(s->zones[i].name) > strlen(zone->name)))
			zone = &s->zones[i];
	bool zoned = zone != NULL;
	char msg[1536], field[600];
	snprintf(field, sizeof(field), "load_balancers[%s]", lb->id);
	if (zoned)
		warn_dns_cname(c, lb, zone, field);
	if (!zoned) {
		snprintf(msg, sizeof(msg),
			 "load balancer '%s' is DNS-only (proxied: false) but "
			 "no zone of this config holds it: nothing answers "
			 "for it (add its zone to zones, or set proxied: "
			 "true)",
			 lb->name);
		warn_at(c, &lb->pos, field, msg);
	} else if (!s->edge.nlisten_dns) {
		snprintf(msg, sizeof(msg),
			 "load balancer '%s' is DNS-only (proxied: false) but "
			 "this edge has no DNS listener (edge.listen.dns): "
			 "nothing answers for it here",
			 lb->name);
		warn_at(c, &lb->pos, field, msg);
	}
}

/* minimum_origins above the enabled origins (more than all of them is an
 * error already): the pool can never be healthy and takes no traffic,
 * though each origin may be up. Disabling an origin for maintenance does
 * that unnoticed. */
static void warn_minimum_origins(cfg_ctx *c, const cfg_pool *p)
{
	size_t enabled = 0;
	for (size_t i = 0; i < p->norigins; i++)
		enabled += p->origins[i].enabled;
	if (p->minimum_origins <= enabled || p->minimum_origins > p->norigins)
		return;
	char msg[1536], field[600];
	snprintf(msg, sizeof(msg),
		 "pool '%s' needs %u healthy origins (minimum_origins) but "
		 "only %zu of its %zu are enabled: it stays critical and "
		 "takes no traffic",
		 p->id, p->minimum_origins, enabled, p->norigins);
	snprintf(field, sizeof(field), "pools[%s]", p->id);
	warn_at(c, &p->pos, field, msg);
}

static bool in_pools(const cfg_pool *const *pools, size_t n, const cfg_pool *p)
{
	for (size_t i = 0; i < n; i++)
		if (pools[i] == p)
			return true;
	return false;
}

static bool in_map(const cfg_pool_map *m, size_t n, const cfg_pool *p)
{
	for (size_t i = 0; i < n; i++)
		if (in_pools(m[i].pools, m[i].npools, p))
			return true;
	return false;
}

/* Whether a load balancer names the pool (rules aside). */
static bool lb_uses_pool(const cfg_lb *lb, const cfg_pool *p)
{
	return lb->fallback_pool == p ||
	       in_pools(lb->default_pools, lb->ndefault_pools, p) ||
	       in_map(lb->region_pools, lb->nregion_pools, p) ||
	       in_map(lb->country_pools, lb->ncountry_pools, p) ||
	       in_map(lb->pop_pools, lb->npop_pools, p);
}

/* Tunnels that nothing can join: defined (or used by origins) on an edge
 * without edge.listen.tunnel, or a listener without tunnels. Origins of
 * a tunnel in a DNS-only load balancer have no address to answer with. */
static void warn_tunnels(cfg_ctx *c, const cfg_snapshot *s)
{
	char msg[1536];
	if (s->ntunnels && !s->edge.nlisten_tunnel) {
		snprintf(msg, sizeof(msg),
			 "tunnel '%s': this edge has no tunnel listener "
			 "(edge.listen.tunnel): no connector can join it",
			 s->tunnels[0].id ? s->tunnels[0].id : "?");
		warn_at(c, &s->tunnels[0].pos, "tunnels[0]", msg);
	} else if (!s->ntunnels && s->edge.nlisten_tunnel) {
		snprintf(msg, sizeof(msg),
			 "edge.listen.tunnel: no tunnels are defined "
			 "(tunnels): every connector on %s is refused",
			 s->edge.listen_tunnel[0].text
			     ? s->edge.listen_tunnel[0].text
			     : "?");
		warn_at(c, &s->edge.pos, "edge.listen.tunnel", msg);
	}
	for (size_t i = 0; i < s->nlbs; i++) {
		const cfg_lb *lb = &s->lbs[i];
		if (!lb->enabled || lb->proxied)
			continue;
		for (size_t j = 0; j < s->npools; j++) {
			const cfg_pool *p = &s->pools[j];
			size_t k = 0;
			while (k < p->norigins && !p->origins[k].tunnel)
				k++;
			if (k == p->norigins || !lb_uses_pool(lb, p))
				continue;
			snprintf(msg, sizeof(msg),
				 "load balancer '%s' is DNS-only (proxied: "
				 "false) but pool '%s' has tunnel origins "
				 "('%s'): DNS answers leave them out",
				 lb->name, p->id, p->origins[k].name);
			char field[600];
			snprintf(field, sizeof(field), "load_balancers[%s]",
				 lb->id);
			warn_at(c, &lb->pos, field, msg);
		}
	}
}

/* A rule reading fields its traffic never has (http.* on a DNS-only load
 * balancer, dns.* on a proxied one) tests empty values: valid, but rarely
 * what was meant. A fixed_response on a DNS-only load balancer is never
 * sent. */
static void warn_rules(cfg_ctx *c, const cfg_lb *lb)
{
	for (size_t i = 0; i < lb->nrules; i++) {
		const cfg_lb_rule *r = &lb->rules[i];
		uint32_t f = lb_expr_fields(r->expr);
		uint32_t foreign =
		    lb->proxied ? LB_EXPR_DNS_FIELDS : LB_EXPR_PROXIED_FIELDS;
		char msg[1536], field[600];
		snprintf(field, sizeof(field), "load_balancers[%s].rules[%zu]",
			 lb->id, i);
		if (f & foreign) {
			snprintf(
			    msg, sizeof(msg),
			    "rule %zu%s%s%s of '%s' reads %s fields, which "
			    "%s traffic does not have: they are empty "
			    "there",
			    i, r->name ? " (" : "", r->name ? r->name : "",
			    r->name ? ")" : "", lb->name,
			    lb->proxied ? "dns.*" : "HTTP",
			    lb->proxied ? "proxied" : "DNS-only");
			warn_at(c, &r->pos, field, msg);
		}
		if (!lb->proxied && r->has_fixed_response) {
			snprintf(msg, sizeof(msg),
				 "rule %zu of '%s': fixed_response answers "
				 "HTTP requests; a DNS-only load balancer "
				 "never sends it (the rule only stops the "
				 "rules after it)",
				 i, lb->name);
			warn_at(c, &r->pos, field, msg);
		}
	}
}

static void warn_rate_limits(cfg_ctx *c, const cfg_snapshot *s)
{
	for (size_t i = 0; i < s->nrate_limits; i++) {
		const cfg_rate_limit *r = &s->rate_limits[i];
		char msg[768], field[320];
		snprintf(field, sizeof(field), "rate_limits[%zu]", i);
		if (lb_expr_fields(r->expr) & LB_EXPR_DNS_FIELDS) {
			snprintf(msg, sizeof(msg),
				 "rate limit '%s' reads dns.* fields, which "
				 "proxied requests do not have: they are "
				 "empty there",
				 r->name);
			warn_at(c, &r->pos, field, msg);
		}
		if (!s->edge.nlisten_http && !s->edge.nlisten_https) {
			snprintf(msg, sizeof(msg),
				 "rate limit '%s': rate limits count proxied "
				 "requests, and this edge has no http or "
				 "https listener",
				 r->name);
			warn_at(c, &r->pos, field, msg);
		}
	}
}

void cfg_warn_checks(cfg_ctx *c)
{
	const cfg_snapshot *s = c->snap;
	warn_rate_limits(c, s);
	warn_tunnels(c, s);
	for (size_t i = 0; i < s->npools; i++) {
		if (!s->pools[i].enabled)
			continue;
		warn_monitor_scheme(c, &s->pools[i]);
		warn_minimum_origins(c, &s->pools[i]);
	}
	for (size_t i = 0; i < s->nlbs; i++) {
		warn_dns_only(c, &s->lbs[i]);
		warn_rules(c, &s->lbs[i]);
	}
}
