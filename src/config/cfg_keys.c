/* cfg_keys.c - every configuration key, declared once (see cfg_schema.h).
 *
 * Tables are listed leaves first so each can name the ones below it. The
 * help strings are the reference documentation (docs/CONFIG.md is generated
 * from them), so they say what a key does, not how it is parsed.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "config/cfg_schema.h"
#include "config/cfg_ratelimit.h"
#include "config/cfg_rules.h"
#include "config/cfg_validate.h"
#include "config/cfg_tunnel.h"
#include "config/cfg_values.h"
#include "core/core_util.h"

#define FSIZE(T, f) sizeof(((T *)0)->f)
/* A scalar field. */
#define AT(T, f) .off = offsetof(T, f), .size = FSIZE(T, f)
/* An array field with its count. */
#define ARRAY_AT(T, f, nf)                                                     \
	.off = offsetof(T, f), .count_off = offsetof(T, nf),                   \
	.elem_size = sizeof(*((T *)0)->f)
#define CHOICES(a) .choices = (a), .nchoices = ARRAY_LEN(a)
#define TABLE(k)   .keys = (k), .nkeys = ARRAY_LEN(k)
#define POS(T)	   .has_pos = true, .pos_off = offsetof(T, pos)
#define DAY_MS	   INT64_C(86400000)
#define HOUR_MS	   INT64_C(3600000)

/* String checks: NULL when fine, else what was expected. */

static const char *check_hostname(const char *s)
{
	return cfg_is_hostname(s, false)
		   ? NULL
		   : "a host name like origin.example.com";
}

static const char *check_lb_name(const char *s)
{
	return cfg_is_hostname(s, true)
		   ? NULL
		   : "a host name like lb.example.com or *.example.com";
}

static const char *check_ip(const char *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	return cfg_parse_ip(s, 0, &ss, &len) == 0
		   ? NULL
		   : "an IP address like 203.0.113.10 or 2001:db8::1";
}

static const char *check_country(const char *s)
{
	return cfg_is_country(s)
		   ? NULL
		   : "a two-letter uppercase ISO 3166 country code like JP";
}

static const char *check_header_name(const char *s)
{
	return cfg_is_header_name(s) ? NULL : "an HTTP header name";
}

/* session_affinity_attributes.headers: a header name, or Cloudflare's
 * "cookie:NAME[,NAME...]" (cookie names are tokens, RFC 6265 4.1.1). */
static const char *check_affinity_header(const char *s)
{
	static const char why[] =
	    "an HTTP header name, or cookie:NAME[,NAME...] "
	    "(the named cookies)";
	if (strncasecmp(s, "cookie:", 7) != 0)
		return cfg_is_header_name(s) ? NULL : why;
	for (const char *p = s + 7;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char name[256];
		if (n == 0 || n >= sizeof(name))
			return why;
		memcpy(name, p, n);
		name[n] = '\0';
		if (!cfg_is_header_name(name))
			return why;
		if (!comma)
			return NULL;
		p = comma + 1;
	}
}

/* RFC 9110 5.5: field-vchar, SP and HTAB; no CR or LF (a value that
 * holds them would add fields of its own to the request). */
static const char *check_header_value(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return "a header value without control characters (CR, "
			       "LF, ...)";
	return NULL;
}

static const char *check_secret(const char *s)
{
	return strlen(s) >= 16 ? NULL
			       : "a secret of at least 16 characters (use "
				 "`${VAR}` to keep it out of the file)";
}

static const char *check_expected_codes(const char *s)
{
	return cfg_expected_codes_valid(s)
		   ? NULL
		   : "status codes like \"200\", \"2xx\" or \"200,301\"";
}

static bool has_space_or_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return true;
	return false;
}

static const char *check_path(const char *s)
{
	return s[0] == '/' && !has_space_or_control(s)
		   ? NULL
		   : "a path starting with '/', without spaces or control "
		     "characters";
}

/* It goes into error pages, logs, metrics labels and pop_pools keys. */
/* Names and ids shown in logs, the /status table, metrics labels, mail
 * and URLs: a newline in one would forge a line of its own. */
static const char *check_no_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "text without control characters";
	return NULL;
}

static const char *check_edge_name(const char *s)
{
	return strlen(s) <= 64 && !check_no_control(s)
		   ? NULL
		   : "a name of at most 64 bytes, without control "
		     "characters";
}

static const char *check_method(const char *s)
{
	for (const char *p = s; *p; p++)
		if (*p < 'A' || *p > 'Z')
			return "an HTTP method like GET or HEAD";
	return *s ? NULL : "an HTTP method like GET or HEAD";
}

static bool has_prefix(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix)) && s[strlen(prefix)];
}

static const char *check_smtp_url(const char *s)
{
	return has_prefix(s, "smtp://") || has_prefix(s, "smtps://")
		   ? NULL
		   : "a URL like smtp://mail.example.com:587 or smtps://...";
}

static const char *check_http_url(const char *s)
{
	return has_prefix(s, "http://") || has_prefix(s, "https://")
		   ? NULL
		   : "a URL like https://hooks.example.com/path";
}

static const char *check_email(const char *s)
{
	const char *at = strchr(s, '@');
	return at && at != s && at[1] && !strchr(at + 1, '@') &&
		       !strpbrk(s, " \t<>")
		   ? NULL
		   : "an email address like ops@example.com";
}

/* Choice lists: the index is the C enum value. */

static const char *const monitor_types[] = {"http", "https", "tcp", "smtp"};
static_assert(ARRAY_LEN(monitor_types) == CFG_MON_SMTP + 1, "monitor types");
static const char *const origin_steerings[] = {
    "random", "hash", "least_outstanding_requests", "least_connections"};
static_assert(ARRAY_LEN(origin_steerings) == CFG_OSTEER_LEAST_CONNECTIONS + 1,
	      "origin steering");
static const char *const steerings[] = {"",
					"off",
					"random",
					"geo",
					"dynamic_latency",
					"proximity",
					"least_outstanding_requests",
					"least_connections"};
static_assert(ARRAY_LEN(steerings) == CFG_STEER_LEAST_CONNECTIONS + 1,
	      "steering policies");
static const char *const affinities[] = {"none", "cookie", "ip_cookie",
					 "header"};
static_assert(ARRAY_LEN(affinities) == CFG_AFF_HEADER + 1, "affinities");
static const char *const shed_policies[] = {"random", "hash"};
/* Cloudflare allows only hash for sessions; NULL hides random. */
static const char *const shed_session_policies[] = {NULL, "hash"};
static_assert(ARRAY_LEN(shed_policies) == CFG_SHED_HASH + 1, "shedding");
static const char *const loc_modes[] = {"pop", "resolver_ip"};
static_assert(ARRAY_LEN(loc_modes) == CFG_LOC_RESOLVER_IP + 1, "loc modes");
static const char *const prefer_ecs[] = {"always", "never", "proximity", "geo"};
static_assert(ARRAY_LEN(prefer_ecs) == CFG_ECS_GEO + 1, "prefer_ecs");
static const char *const samesites[] = {"Auto", "Lax", "None", "Strict"};
static_assert(ARRAY_LEN(samesites) == CFG_SAMESITE_STRICT + 1, "samesite");
static const char *const secures[] = {"Auto", "Always", "Never"};
static_assert(ARRAY_LEN(secures) == CFG_SECURE_NEVER + 1, "secure");
static const char *const zdt_failovers[] = {"none", "temporary", "sticky"};
static_assert(ARRAY_LEN(zdt_failovers) == CFG_ZDT_STICKY + 1, "zdt");
static const char *const tls_versions[] = {"1.2", "1.3"};
static_assert(ARRAY_LEN(tls_versions) == CFG_TLS_1_3 + 1, "tls versions");
static const char *const scopes[] = {"read", "edit"};
static_assert(ARRAY_LEN(scopes) == CFG_SCOPE_EDIT + 1, "scopes");
/* NULL first: a record whose type failed to parse stays CFG_RR_NONE, so
 * its content is not judged against the wrong type. */
static const char *const rr_types[] = {NULL, "A",  "AAAA", "CNAME", "TXT",
				       "MX", "NS", "SRV",  "CAA",   "SOA"};
static_assert(ARRAY_LEN(rr_types) == CFG_RR_SOA + 1, "record types");

/* List elements and map keys/values (nameless keys, offset 0 unless the
 * element is a struct). */

static const cfg_key item_ip = {
    .type = CFG_STRING, .check = check_ip, .doc_type = "IP address"};
static const cfg_key item_addr = {.type = CFG_ADDR};
static const cfg_key item_cidr = {.type = CFG_CIDR};
static const cfg_key item_region = {.type = CFG_STRING,
				    .choices = cfg_regions,
				    .nchoices = CFG_NREGIONS,
				    .doc_type = "region"};
static const cfg_key item_email = {
    .type = CFG_STRING, .check = check_email, .doc_type = "email address"};
static const cfg_key item_affinity_header = {
    .type = CFG_STRING,
    .check = check_affinity_header,
    .doc_type = "header name or cookie:NAME[,NAME...]"};
static const cfg_key item_pool_ref = {.type = CFG_REF, .ref = CFG_REF_POOL};

/* header: { Name: [values] } */
static const cfg_key header_key = {.type = CFG_STRING,
				   .check = check_header_name,
				   .off = offsetof(cfg_header, name),
				   .doc_type = "header name"};
static const cfg_key item_header_value = {.type = CFG_STRING,
					  .flags = CFG_F_NONEMPTY,
					  .check = check_header_value,
					  .doc_type = "string"};
static const cfg_key header_values = {.type = CFG_LIST,
				      .flags = CFG_F_NONEMPTY,
				      ARRAY_AT(cfg_header, values, nvalues),
				      .item = &item_header_value};
#define HEADER_MAP(T, f, nf)                                                   \
	.type = CFG_MAP, ARRAY_AT(T, f, nf),                                   \
	.key_off = offsetof(cfg_header, name), .mapkey = &header_key,          \
	.item = &header_values

/* region_pools / country_pools / pop_pools: { KEY: [pool ids] } */
static const cfg_key pool_list = {.type = CFG_LIST,
				  .flags = CFG_F_NONEMPTY,
				  ARRAY_AT(cfg_pool_map, pools, npools),
				  .item = &item_pool_ref};
static const cfg_key region_key = {.type = CFG_STRING,
				   .off = offsetof(cfg_pool_map, key),
				   .choices = cfg_regions,
				   .nchoices = CFG_NREGIONS,
				   .doc_type = "region"};
static const cfg_key country_key = {.type = CFG_STRING,
				    .off = offsetof(cfg_pool_map, key),
				    .check = check_country,
				    .doc_type = "country code"};
static const cfg_key pop_key = {.type = CFG_STRING,
				.flags = CFG_F_NONEMPTY,
				.off = offsetof(cfg_pool_map, key),
				.doc_type = "edge name"};
#define POOL_MAP(f, nf, kk)                                                    \
	.type = CFG_MAP, ARRAY_AT(cfg_lb, f, nf),                              \
	.key_off = offsetof(cfg_pool_map, key), .mapkey = &(kk),               \
	.item = &pool_list

/* ---- edge ---- */

static const cfg_key listen_keys[] = {
    {.name = "http",
     .type = CFG_LIST,
     ARRAY_AT(cfg_edge, listen_http, nlisten_http),
     .item = &item_addr,
     .help = "Plain HTTP proxy listeners."},
    {.name = "https",
     .type = CFG_LIST,
     ARRAY_AT(cfg_edge, listen_https, nlisten_https),
     .item = &item_addr,
     .help = "TLS proxy listeners (certificates from edge.tls)."},
    {.name = "dns",
     .type = CFG_LIST,
     ARRAY_AT(cfg_edge, listen_dns, nlisten_dns),
     .item = &item_addr,
     .help = "Authoritative DNS listeners (UDP and TCP)."},
    {.name = "admin",
     .type = CFG_ADDR,
     .flags = CFG_F_HAS,
     .off = offsetof(cfg_edge, listen_admin),
     .has_off = offsetof(cfg_edge, has_admin),
     .help = "Admin listener: the v4 API, /status, /healthz and "
	     "/metrics (docs/API.md); unset: none. Off loopback the API "
	     "needs tokens (api.tokens); it speaks plain HTTP, so keep it "
	     "on loopback or a private network."},
    {.name = "tunnel",
     .type = CFG_LIST,
     ARRAY_AT(cfg_edge, listen_tunnel, nlisten_tunnel),
     .item = &item_addr,
     .help = "Where tunnel connectors (`meridian tunnel`) dial in, over "
	     "TLS with the certificates of edge.tls (needed). One thread "
	     "serves every tunnel connection; a change needs a restart."},
    {.name = "proxy_protocol",
     .type = CFG_BOOL,
     AT(cfg_edge, listen_proxy_protocol),
     .def = "false",
     .help = "Expect a PROXY protocol v1 or v2 header on every "
	     "connection, http and https (before the TLS handshake), from "
	     "a load balancer in front. Only peers in geo.trusted_proxies "
	     "may send one; other connections are closed."},
};
static const cfg_table listen_table = {
    .path = "edge.listen",
    .what = "edge.listen",
    .help = "Where the edge listens. Every address is numeric, with a "
	    "port: `127.0.0.1:8080`, `0.0.0.0:80`, `[::1]:8080`. Read at "
	    "start-up: a reload (SIGHUP) that changes a listener or "
	    "proxy_protocol is refused, the running config stays (restart "
	    "to apply). Each worker binds its own socket (SO_REUSEPORT), so "
	    "before binding, the edge makes sure no other process holds an "
	    "address: a second edge on the same addresses would otherwise "
	    "silently get part of the traffic. It refuses to start instead, "
	    "naming the address.",
    TABLE(listen_keys),
};

static const cfg_key cert_keys[] = {
    {.name = "cert",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_tls_cert, cert),
     .doc_type = "path",
     .help = "PEM certificate chain file."},
    {.name = "key",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_tls_cert, key),
     .doc_type = "path",
     .help = "PEM private key file."},
};
static const cfg_table cert_table = {
    .path = "edge.tls.certificates[]",
    .what = "certificate",
    .help = "One certificate; the one whose names match the client's SNI "
	    "is used.",
    TABLE(cert_keys),
    POS(cfg_tls_cert),
};

static const cfg_key tls_keys[] = {
    {.name = "certificates",
     .type = CFG_LIST,
     ARRAY_AT(cfg_tls, certificates, ncertificates),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &cert_table},
     .help = "Certificates served on the https listeners. Each file "
	     "holds one certificate (then its chain) and one unencrypted "
	     "key; an RSA and an ECDSA certificate for the same names are "
	     "both served, chosen by what the client supports. A name is "
	     "taken from the subject alternative names (DNS), else the "
	     "common name; `*.example.com` matches one label."},
    {.name = "default_name",
     .type = CFG_STRING,
     .check = check_lb_name,
     AT(cfg_tls, default_name),
     .doc_type = "host name",
     .help = "The certificate whose names match this one is served to "
	     "clients that send no SNI or one no certificate matches; "
	     "unset: the first certificate."},
    {.name = "sni_required",
     .type = CFG_BOOL,
     AT(cfg_tls, sni_required),
     .def = "false",
     .help = "Fail the handshake (unrecognized_name) when the client's "
	     "SNI matches no certificate or is missing, instead of serving "
	     "the default certificate."},
    {.name = "min_version",
     .type = CFG_ENUM,
     AT(cfg_tls, min_version),
     .def = "1.2",
     CHOICES(tls_versions),
     .help = "Oldest TLS version accepted (1.3 is the newest). Ciphers "
	     "follow Mozilla's intermediate policy."},
    {.name = "session_tickets",
     .type = CFG_BOOL,
     AT(cfg_tls, session_tickets),
     .def = "true",
     .help = "Resume sessions with tickets (no per-session state on the "
	     "edge)."},
    {.name = "http2",
     .type = CFG_BOOL,
     AT(cfg_tls, http2),
     .def = "true",
     .help = "Offer HTTP/2 by ALPN (h2 before http/1.1); false: HTTP/1.1 "
	     "only. Changes apply to new connections on reload."},
    {.name = "ticket_rotation",
     .type = CFG_DURATION,
     AT(cfg_tls, ticket_rotation_ms),
     .def = "1h",
     .min = 1000,
     .max = DAY_MS,
     .help = "How often the ticket key changes; tickets made with the "
	     "previous key are still accepted (and renewed), so a ticket "
	     "lives between one and two periods."},
};
static const cfg_table tls_table = {
    .path = "edge.tls",
    .what = "edge.tls",
    .help = "TLS termination.",
    TABLE(tls_keys),
};

static const cfg_key limits_keys[] = {
    {.name = "max_header_bytes",
     .type = CFG_SIZE,
     AT(cfg_limits, max_header_bytes),
     .def = "16384",
     .min = 1024,
     .max = 1048576,
     .help = "Largest request head (request line and headers), and "
	     "largest trailer section of a chunked request (held until "
	     "whole, to be filtered); beyond either the answer is 431. A "
	     "reload may raise it only within the "
	     "buffers sized at start-up (the next power of two of at "
	     "least max_header_bytes + 4 KiB, 16 KiB at least); beyond, "
	     "it is refused (restart to apply)."},
    {.name = "max_headers",
     .type = CFG_UINT,
     AT(cfg_limits, max_headers),
     .def = "100",
     .min = 8,
     .max = 256,
     .help = "Most header fields in a request; beyond it the answer is "
	     "431."},
    {.name = "max_connections",
     .type = CFG_UINT,
     AT(cfg_limits, max_connections),
     .def = "65536",
     .min = 1,
     .max = 10000000,
     .help = "Client connections (http and https) open at once on this "
	     "edge; beyond it new ones are closed at once, on http "
	     "listeners after a 503 (on https ones without an answer: no "
	     "plain text inside TLS)."},
    {.name = "max_connections_per_client",
     .type = CFG_UINT,
     AT(cfg_limits, max_connections_per_client),
     .def = "0",
     .min = 0,
     .max = 10000000,
     .help = "Client connections (http and https) one client may hold open "
	     "at once: an IPv4 address, or an IPv6 /64. Beyond it new ones "
	     "are refused as over max_connections, so one client (or a "
	     "slowloris holding connections idle) cannot take them all. "
	     "Peers in geo.trusted_proxies are not limited (their clients "
	     "are behind them); with edge.proxy_protocol the client a PROXY "
	     "header names is, once the header is read. Clients behind one "
	     "NAT share the limit. 0: no limit."},
    {.name = "max_body_bytes",
     .type = CFG_SIZE,
     AT(cfg_limits, max_body_bytes),
     .def = "0",
     .min = 0,
     .max = INT64_MAX,
     .help = "Largest request body; beyond it the answer is 413. 0: no "
	     "limit."},
    {.name = "upstream_idle_per_origin",
     .type = CFG_UINT,
     AT(cfg_limits, upstream_idle_per_origin),
     .def = "128",
     .min = 0,
     .max = 10000,
     .help = "Idle keep-alive connections kept per origin and worker. "
	     "Below the concurrency an origin sees, connections churn; "
	     "idle ones close after timeouts.upstream_idle."},
    {.name = "health_connections",
     .type = CFG_UINT,
     AT(cfg_limits, health_connections),
     .def = "0",
     .min = 0,
     .max = 1000000,
     .help = "Keep-alive connections the health checker may hold open "
	     "between checks of http and https monitors (one per origin "
	     "at most; https ones also keep their TLS session to resume). "
	     "0: a quarter of the open-file limit (RLIMIT_NOFILE). Never "
	     "more than that limit less 1,024 descriptors for traffic. "
	     "Origins beyond it get a new connection per check. A kept "
	     "https connection holds about 30 KiB of TLS state (an http "
	     "one about 1 KiB) and saves a TLS handshake per check."},
    {.name = "dns_receive_buffer",
     .type = CFG_SIZE,
     AT(cfg_limits, dns_receive_buffer),
     .def = "1M",
     .min = 0,
     .max = 268435456,
     .help = "Receive buffer of each DNS UDP socket (SO_RCVBUF; the kernel "
	     "doubles it for its bookkeeping). Queries that arrive while "
	     "it is full are dropped by the kernel, counted in "
	     "meridian_dns_udp_receive_dropped_total. The default holds "
	     "a few thousand queries: a burst, or a worker briefly off "
	     "its core, loses none. Above net.core.rmem_max it needs "
	     "CAP_NET_ADMIN (root has it); without, the edge logs the size "
	     "it got. 0: the system's default (net.core.rmem_default). "
	     "Restart to apply."},
};
static const cfg_table limits_table = {
    .path = "edge.limits",
    .what = "edge.limits",
    .help = "Request and connection limits.",
    TABLE(limits_keys),
};

#define TIMEOUT(nm, f, d, lo, h)                                               \
	{                                                                      \
		.name = nm, .type = CFG_DURATION, AT(cfg_timeouts, f),         \
		.def = d, .min = lo, .max = DAY_MS, .help = h                  \
	}
static const cfg_key timeouts_keys[] = {
    TIMEOUT("client_header", client_header_ms, "10s", 1,
	    "Time for a client to send a whole request head; then 408."),
    TIMEOUT("client_idle", client_idle_ms, "60s", 1,
	    "Keep-alive idle time between requests; then the connection "
	    "is closed."),
    TIMEOUT("client_body", client_body_ms, "60s", 1,
	    "Longest wait between two reads of a request body; then "
	    "408."),
    TIMEOUT("upstream_connect", upstream_connect_ms, "5s", 1,
	    "Time to connect to an origin; then the next origin is tried, "
	    "or 502/504."),
    TIMEOUT("upstream_response", upstream_response_ms, "60s", 1,
	    "Time the origin may take to answer once the request is sent "
	    "(or while it does not take the request body), and between "
	    "response bytes; then 504 before the response head, else the "
	    "connection is cut."),
    TIMEOUT("upstream_idle", upstream_idle_ms, "30s", 1,
	    "How long an idle pooled origin connection is kept."),
    TIMEOUT("drain", drain_ms, "10s", 0,
	    "On SIGTERM, how long in-flight requests may take to finish."),
};
static const cfg_table timeouts_table = {
    .path = "edge.timeouts",
    .what = "edge.timeouts",
    .help = "Timeouts of the proxy.",
    TABLE(timeouts_keys),
};

static const cfg_key passive_health_keys[] = {
    {.name = "failures",
     .type = CFG_UINT,
     AT(cfg_passive_health, failures),
     .def = "3",
     .min = 0,
     .max = 1000,
     .help = "Consecutive failures on live traffic (connections failed "
	     "or timed out, 5xx answers, answers invalid or cut short) that "
	     "eject an origin at once; 0 turns passive health off."},
    {.name = "ejection",
     .type = CFG_DURATION,
     AT(cfg_passive_health, ejection_ms),
     .def = "5s",
     .min = 100,
     .max = DAY_MS,
     .help = "First ejection time; each ejection in a row doubles it. An "
	     "active check that passes ends the ejection early."},
    {.name = "max_ejection",
     .type = CFG_DURATION,
     AT(cfg_passive_health, max_ejection_ms),
     .def = "60s",
     .min = 100,
     .max = DAY_MS,
     .help = "Longest ejection."},
};
static const cfg_key dns_rate_limit_keys[] = {
    {.name = "responses_per_second",
     .type = CFG_UINT,
     AT(cfg_dns_rate_limit, responses_per_second),
     .def = "0",
     .min = 0,
     .max = 65534, /* the counters hold 16 bits */
     .help = "Identical UDP answers per second to one client network "
	     "(the same name and type; NXDOMAIN and errors count per "
	     "network), as in BIND, Knot and NSD; beyond it answers are "
	     "dropped or sent truncated (slip) so a real resolver retries "
	     "over TCP, which is never limited. Keeps the edge from being "
	     "an amplifier for spoofed queries. 0: off."},
    {.name = "slip",
     .type = CFG_UINT,
     AT(cfg_dns_rate_limit, slip),
     .def = "2",
     .min = 0,
     .max = 10,
     .help = "Every slip-th limited answer goes out truncated (TC, no "
	     "records) instead of being dropped; 0: drop all, 1: truncate "
	     "all."},
    {.name = "ipv4_prefix_length",
     .type = CFG_UINT,
     AT(cfg_dns_rate_limit, ipv4_prefix_length),
     .def = "24",
     .min = 8,
     .max = 32,
     .help = "IPv4 clients in one network of this length count as one."},
    {.name = "ipv6_prefix_length",
     .type = CFG_UINT,
     AT(cfg_dns_rate_limit, ipv6_prefix_length),
     .def = "56",
     .min = 16,
     .max = 128,
     .help = "IPv6 clients in one network of this length count as one."},
    {.name = "exempt_networks",
     .type = CFG_LIST,
     ARRAY_AT(cfg_dns_rate_limit, exempt_networks, nexempt_networks),
     .item = &item_cidr,
     .help = "Client networks never limited (your own resolvers, "
	     "monitoring), as CIDR prefixes."},
};
static const cfg_table dns_rate_limit_table = {
    .path = "edge.dns_rate_limit",
    .what = "edge.dns_rate_limit",
    .help = "Response rate limiting of UDP DNS answers (edge.listen.dns).",
    TABLE(dns_rate_limit_keys),
};

static const cfg_table passive_health_table = {
    .path = "edge.passive_health",
    .what = "edge.passive_health",
    .help = "Ejection of origins that fail on live traffic.",
    TABLE(passive_health_keys),
};

static const cfg_key retries_keys[] = {
    {.name = "attempts",
     .type = CFG_UINT,
     AT(cfg_retries, attempts),
     .def = "2",
     .min = 0,
     .max = 7,
     .help = "Other origins tried for a request whose connection failed "
	     "or was reset before any response byte. A request that is not "
	     "idempotent (POST, PATCH, ...) goes again only if none of it "
	     "reached the origin (RFC 9112 §9.3.1.1)."},
    {.name = "on_5xx",
     .type = CFG_BOOL,
     AT(cfg_retries, on_5xx),
     .def = "false",
     .help = "Also retry idempotent requests (GET, HEAD, OPTIONS, PUT, "
	     "DELETE without a body) that got 502 or 503."},
    {.name = "budget_percent",
     .type = CFG_UINT,
     AT(cfg_retries, budget_percent),
     .def = "20",
     .min = 0,
     .max = 100,
     .help = "Retries allowed as a share of requests, so retries cannot "
	     "multiply load on a struggling pool."},
};
static const cfg_table retries_table = {
    .path = "edge.retries",
    .what = "edge.retries",
    .help = "Retries on other origins (zero-downtime failover).",
    TABLE(retries_keys),
};

static const cfg_key access_log_keys[] = {
    {.name = "path",
     .type = CFG_STRING,
     .flags = CFG_F_NONEMPTY,
     AT(cfg_access_log, path),
     .doc_type = "path",
     .help = "File the access log is appended to (one JSON object a line), "
	     "`-` for standard output; unset: no access log. SIGUSR1 "
	     "reopens the file (logrotate)."},
    {.name = "buffer",
     .type = CFG_SIZE,
     AT(cfg_access_log, buffer),
     .def = "1M",
     .min = 65536,
     .max = 1073741824,
     .help = "Lines queued per worker for the writer thread; when the "
	     "writer falls behind, new lines are dropped (and counted in "
	     "meridian_access_log_dropped_total), never waited for."},
};
static const cfg_table access_log_table = {
    .path = "edge.access_log",
    .what = "edge.access_log",
    .help = "The access log: per request, time (RFC 3339 UTC, ms), edge, "
	    "client, host, method, path, status, bytes sent, duration and "
	    "upstream time (seconds), lb, pool, origin and retries (and "
	    "request_id with edge.request_id_header); docs/API.md has the "
	    "fields. Read "
	    "at start-up: a reload that changes path or buffer is refused "
	    "(restart to apply).",
    TABLE(access_log_keys),
};

static const char *check_etcd_url(const char *s)
{
	const char *h = !strncmp(s, "http://", 7)    ? s + 7
			: !strncmp(s, "https://", 8) ? s + 8
						     : NULL;
	bool ok = h && *h && *h != '/' && strlen(s) < 512;
	for (const unsigned char *p = (const unsigned char *)s; ok && *p; p++)
		ok = *p > 0x20 && *p != 0x7f;
	/* user:password@ would be sent, and shown in every log line and
	 * API error that names the endpoint. */
	size_t auth = h ? strcspn(h, "/?#") : 0;
	if (ok && memchr(h, '@', auth))
		return "an etcd client URL without credentials (user:password@ "
		       "would appear in logs and API errors)";
	return ok ? NULL
		  : "an etcd client URL like http://127.0.0.1:2379 "
		    "(http:// or https://)";
}

static const char *check_etcd_prefix(const char *s)
{
	size_t n = strlen(s);
	bool ok = n >= 2 && n <= 128 && s[0] == '/' && s[n - 1] != '/';
	for (const unsigned char *p = (const unsigned char *)s; ok && *p; p++)
		ok = *p > 0x20 && *p != 0x7f;
	return ok ? NULL
		  : "a key prefix like /meridian (starts with /, no trailing "
		    "/, at most 128 bytes, no spaces)";
}

static void cfg_finish_cluster(cfg_ctx *c, const cfg_node *node, void *base)
{
	const cfg_cluster *cl = base;
	if (cl->netcd > 8)
		cfg_error(c, cfg_node_get(node, "etcd"),
			  "edge.cluster.etcd: at most 8 endpoints, got %zu",
			  cl->netcd);
}

/* CFG_F_SECRET: a URL refused for its credentials is not echoed. */
static const cfg_key item_etcd_url = {.type = CFG_STRING,
				      .check = check_etcd_url,
				      .flags = CFG_F_SECRET,
				      .doc_type = "URL"};

static const cfg_key cluster_keys[] = {
    {.name = "etcd",
     .type = CFG_LIST,
     ARRAY_AT(cfg_cluster, etcd, netcd),
     .item = &item_etcd_url,
     .help = "etcd client endpoints (1 to 8), tried in turn: "
	     "http://host:port, or https:// verified against the system "
	     "CAs; no user:password@ (it would be shown in logs). Empty: no "
	     "cluster (the API's objects live in edge.store "
	     "alone)."},
    {.name = "prefix",
     .type = CFG_STRING,
     .check = check_etcd_prefix,
     AT(cfg_cluster, prefix),
     .def = "/meridian",
     .help = "Every key of the cluster lives under it: objects/, "
	     "nodes/, health/ (docs/ARCHITECTURE.md, \"Cluster mode\")."},
    {.name = "lease_ttl",
     .type = CFG_DURATION,
     AT(cfg_cluster, lease_ttl_ms),
     .def = "10s",
     .min = 2000,
     .max = 60000,
     .help = "Lifetime of this node's lease: its node key and health "
	     "reports vanish this long after it stops answering (kill -9, "
	     "a partition)."},
};
static const cfg_table cluster_table = {
    .path = "edge.cluster",
    .what = "edge.cluster",
    .help = "Cluster mode (SPEC §4.9): edges share the objects created "
	    "through the API and their health reports through etcd; a "
	    "change made on one edge reaches every edge within a second. "
	    "edge.name names the node and must be unique among live "
	    "nodes (a second edge with a live node's name is refused at "
	    "start). edge.store stays this edge's local cache: an edge that "
	    "starts while etcd is unreachable starts from the objects it "
	    "last knew. Read at start-up: a reload that changes it is "
	    "refused (restart to apply).",
    TABLE(cluster_keys),
    .finish = cfg_finish_cluster,
};

static const cfg_key edge_keys[] = {
    {.name = "name",
     .type = CFG_STRING,
     .flags = CFG_F_NONEMPTY,
     AT(cfg_edge, name),
     .check = check_edge_name,
     .def = "meridian",
     .help = "This edge's id (the PoP name used by pop_pools, error "
	     "pages and metrics): at most 64 bytes, no control "
	     "characters."},
    {.name = "region",
     .type = CFG_STRING,
     AT(cfg_edge, region),
     .choices = cfg_regions,
     .nchoices = CFG_NREGIONS,
     .doc_type = "region",
     .help = "The region this edge is in."},
    {.name = "latitude",
     .type = CFG_DOUBLE,
     .flags = CFG_F_HAS,
     AT(cfg_edge, latitude),
     .dmin = -90,
     .dmax = 90,
     .has_off = offsetof(cfg_edge, has_location),
     .help = "Where the edge is (with longitude), for proximity "
	     "steering."},
    {.name = "longitude",
     .type = CFG_DOUBLE,
     .flags = CFG_F_HAS,
     AT(cfg_edge, longitude),
     .dmin = -180,
     .dmax = 180,
     .has_off = offsetof(cfg_edge, has_location),
     .help = "Where the edge is (with latitude)."},
    {.name = "workers",
     .type = CFG_UINT,
     AT(cfg_edge, workers),
     .def = "0",
     .min = 0,
     .max = 256,
     .help = "Worker threads; 0: one per CPU core. Read at start-up: "
	     "a reload that changes the count is refused (restart to "
	     "apply)."},
    {.name = "public_addresses",
     .type = CFG_LIST,
     ARRAY_AT(cfg_edge, public_addresses, npublic_addresses),
     .item = &item_ip,
     .help = "Addresses DNS answers with for proxied load balancers "
	     "(A and AAAA), and for the ns1.<zone> name server added to a "
	     "zone without NS records. Empty: those names get no address "
	     "records (NOERROR, no answer)."},
    {.name = "store",
     .type = CFG_STRING,
     AT(cfg_edge, store),
     .doc_type = "path",
     .def_doc = "/var/lib/meridian/store.db",
     .help = "Embedded store (SQLite) for objects created through the "
	     "API; one edge per store (a lock file beside it, "
	     "<store>.lock). Read at start-up: a reload that changes it is "
	     "refused (restart to apply)."},
    {.name = "listen",
     .type = CFG_OBJECT,
     .off = 0,
     .sub = &listen_table,
     .help = "Listeners."},
    {.name = "tls",
     .type = CFG_OBJECT,
     AT(cfg_edge, tls),
     .sub = &tls_table,
     .help = "TLS certificates."},
    {.name = "limits",
     .type = CFG_OBJECT,
     AT(cfg_edge, limits),
     .sub = &limits_table,
     .help = "Request and connection limits."},
    {.name = "timeouts",
     .type = CFG_OBJECT,
     AT(cfg_edge, timeouts),
     .sub = &timeouts_table,
     .help = "Proxy timeouts."},
    {.name = "passive_health",
     .type = CFG_OBJECT,
     AT(cfg_edge, passive_health),
     .sub = &passive_health_table,
     .help = "Ejection of origins failing on live traffic."},
    {.name = "dns_rate_limit",
     .type = CFG_OBJECT,
     AT(cfg_edge, dns_rate_limit),
     .sub = &dns_rate_limit_table,
     .help = "Response rate limiting of UDP DNS answers."},
    {.name = "retries",
     .type = CFG_OBJECT,
     AT(cfg_edge, retries),
     .sub = &retries_table,
     .help = "Retries on other origins."},
    {.name = "request_id_header",
     .type = CFG_STRING,
     AT(cfg_edge, request_id_header),
     .check = check_header_name,
     .doc_type = "header name",
     .help = "Give every proxied request an id in this field (e.g. "
	     "X-Request-Id): a client's own value of up to 64 characters "
	     "(letters, digits, -_.:/+=@) is kept, else 32 hex digits are "
	     "made (unique, not guessable from other ids). It goes to the "
	     "origin, back to the client on the response (also on the edge's "
	     "own answers) and into the access log as request_id. Unset: off "
	     "(Meridian extension)."},
    {.name = "affinity_secret",
     .type = CFG_STRING,
     .flags = CFG_F_SECRET,
     AT(cfg_edge, affinity_secret),
     .check = check_secret,
     .doc_type = "secret",
     .help = "Keys the session-affinity cookie (__cflb): with it, a "
	     "client cannot make up the cookie of an origin it was never "
	     "sent to. Give every edge of a cluster the same secret so they "
	     "honour each other's cookies; changing it moves every session "
	     "once. Unset: the key is derived from edge.name, which clients "
	     "can see, so a client could pick an origin (as with HAProxy's "
	     "and nginx's sticky cookies)."},
    {.name = "io_uring",
     .type = CFG_BOOL,
     AT(cfg_edge, io_uring),
     .def = "true",
     .help = "Use io_uring where Meridian has a path for it (today: the "
	     "health checker's kept-alive plain-http checks), when the "
	     "kernel "
	     "allows it (Linux 6.1 or later, not disabled by "
	     "kernel.io_uring_disabled or a seccomp filter); otherwise, "
	     "and with false, epoll alone. The log says which at start."},
    {.name = "resolve_interval",
     .type = CFG_DURATION,
     AT(cfg_edge, resolve_interval_ms),
     .def = "30s",
     .min = 0,
     .max = DAY_MS,
     .help = "How often origin addresses written as host names are "
	     "resolved again (getaddrinfo: /etc/hosts, then DNS). A name is "
	     "resolved when a config first has it; when its address "
	     "changes later (a cloud load balancer's often do), the config "
	     "is rebuilt with the new one, as an API write would be, and "
	     "the change is logged. The address in use is kept while the "
	     "name still resolves to it, also under round-robin DNS; a name "
	     "that stops resolving keeps its last address (logged). SIGHUP "
	     "resolves every name afresh. 0: only then."},
    {.name = "access_log",
     .type = CFG_OBJECT,
     AT(cfg_edge, access_log),
     .sub = &access_log_table,
     .help = "JSON access log."},
    {.name = "cluster",
     .type = CFG_OBJECT,
     AT(cfg_edge, cluster),
     .sub = &cluster_table,
     .help = "Cluster mode through etcd."},
};
static const cfg_table edge_table = {
    .path = "edge",
    .what = "edge",
    .help = "This edge node: identity, listeners, limits and timeouts.",
    TABLE(edge_keys),
    POS(cfg_edge),
    .finish = cfg_finish_edge,
};

/* ---- api ---- */

static const cfg_key token_keys[] = {
    {.name = "token",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_api_token, token),
     .help = "The bearer token; use `${VAR}` to keep it out of the file."},
    {.name = "scope",
     .type = CFG_ENUM,
     AT(cfg_api_token, scope),
     .def = "read",
     CHOICES(scopes),
     .help = "read: GET only; edit: every method."},
};
static const cfg_table token_table = {
    .path = "api.tokens[]",
    .what = "token",
    .help = "An admin API bearer token.",
    TABLE(token_keys),
    POS(cfg_api_token),
};

static const cfg_key api_keys[] = {
    {.name = "account_id",
     .type = CFG_STRING,
     .flags = CFG_F_NONEMPTY,
     AT(cfg_api, account_id),
     .def = "default",
     .help = "The single account id used in API paths."},
    {.name = "tokens",
     .type = CFG_LIST,
     ARRAY_AT(cfg_api, tokens, ntokens),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &token_table},
     .help = "Tokens accepted by the admin API."},
};
static const cfg_table api_table = {
    .path = "api",
    .what = "api",
    .help = "The admin REST API (Cloudflare v4 shape).",
    TABLE(api_keys),
    .finish = cfg_finish_api,
};

/* ---- zones ---- */

static const cfg_key record_keys[] = {
    {.name = "name",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_record, name),
     .help = "Owner name: the zone's name, a name inside it (`*.` allowed "
	     "first), or `@` for the apex."},
    {.name = "type",
     .type = CFG_ENUM,
     .flags = CFG_F_REQUIRED,
     AT(cfg_record, type),
     CHOICES(rr_types),
     .help = "Record type."},
    {.name = "content",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_record, content),
     .help = "Record data in zone-file form (an IPv4 address for A, a "
	     "host name for CNAME, NS and MX)."},
    {.name = "ttl",
     .type = CFG_UINT,
     AT(cfg_record, ttl),
     .def = "300",
     .min = 0,
     .max = 2147483647,
     .help = "Time to live in seconds."},
    {.name = "priority",
     .type = CFG_UINT,
     AT(cfg_record, priority),
     .def = "0",
     .min = 0,
     .max = 65535,
     .help = "Preference of MX and SRV records."},
};
static const cfg_table record_table = {
    .path = "zones[].records[]",
    .what = "record",
    .help = "A static DNS record (Cloudflare's shape).",
    TABLE(record_keys),
    POS(cfg_record),
    .finish = cfg_finish_record,
};

static const cfg_key zone_keys[] = {
    {.name = "name",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED,
     AT(cfg_zone, name),
     .check = check_hostname,
     .doc_type = "host name",
     .help = "The zone apex, e.g. example.com."},
    {.name = "records",
     .type = CFG_LIST,
     ARRAY_AT(cfg_zone, records, nrecords),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &record_table},
     .help = "Static records; SOA and NS at the apex are added when "
	     "absent (NS ns1.<zone>, SOA ns1.<zone> hostmaster.<zone>)."},
};
static const cfg_table zone_table = {
    .path = "zones[]",
    .what = "zone",
    .help = "A DNS zone served authoritatively by the edge.",
    TABLE(zone_keys),
    POS(cfg_zone),
    .finish = cfg_finish_zone,
};

/* ---- geo ---- */

static const cfg_key network_keys[] = {
    {.name = "region",
     .type = CFG_STRING,
     AT(cfg_geo_network, region),
     .choices = cfg_regions,
     .nchoices = CFG_NREGIONS,
     .doc_type = "region",
     .help = "Region of clients in this network."},
    {.name = "country",
     .type = CFG_STRING,
     AT(cfg_geo_network, country),
     .check = check_country,
     .doc_type = "country code",
     .help = "Country of clients in this network (ISO 3166 alpha-2)."},
};
static const cfg_table network_table = {
    .path = "geo.networks.CIDR",
    .what = "network",
    .help = "Location of a client network; needs a region, a country or "
	    "both (the region then comes from the country when absent).",
    TABLE(network_keys),
    .finish = cfg_finish_network,
};

static const cfg_key geo_keys[] = {
    {.name = "database",
     .type = CFG_STRING,
     AT(cfg_geo, database),
     .doc_type = "path",
     .help = "Country database in MaxMind DB format."},
    {.name = "networks",
     .type = CFG_MAP,
     ARRAY_AT(cfg_geo, networks, nnetworks),
     .key_off = offsetof(cfg_geo_network, cidr.text),
     .mapkey = &(const cfg_key){.type = CFG_CIDR,
				.off = offsetof(cfg_geo_network, cidr)},
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &network_table},
     .help = "Overrides by client network; the longest prefix wins over "
	     "the database."},
    {.name = "trusted_proxies",
     .type = CFG_LIST,
     ARRAY_AT(cfg_geo, trusted_proxies, ntrusted_proxies),
     .item = &item_cidr,
     .help = "Peers whose X-Forwarded-For and PROXY protocol headers are "
	     "believed. The client found is what origins get in X-Real-IP "
	     "(a client's own X-Real-IP is dropped)."},
};
static const cfg_table geo_table = {
    .path = "geo",
    .what = "geo",
    .help = "Client location, for geo steering.",
    TABLE(geo_keys),
    POS(cfg_geo),
};

/* ---- monitors ---- */

static const cfg_key monitor_keys[] = {
    {.name = "id",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_monitor, id),
     .check = check_no_control,
     .help = "Unique id; pools name their monitor by it."},
    {.name = "description",
     .type = CFG_STRING,
     AT(cfg_monitor, description),
     .help = "Free text."},
    {.name = "type",
     .type = CFG_ENUM,
     AT(cfg_monitor, type),
     .def = "http",
     CHOICES(monitor_types),
     .help = "Protocol of the check."},
    {.name = "method",
     .type = CFG_STRING,
     AT(cfg_monitor, method),
     .def = "GET",
     .check = check_method,
     .help = "HTTP method (http and https)."},
    {.name = "path",
     .type = CFG_STRING,
     AT(cfg_monitor, path),
     .def = "/",
     .check = check_path,
     .help = "Request path (http and https)."},
    {.name = "header",
     HEADER_MAP(cfg_monitor, headers, nheaders),
     .help = "Request headers, name to list of values. An origin's own "
	     "`Host` header (pools[].origins[].header) takes precedence over "
	     "this one's, as with Cloudflare."},
    {.name = "port",
     .type = CFG_UINT,
     AT(cfg_monitor, port),
     .def = "0",
     .min = 0,
     .max = 65535,
     .help = "Port to check; 0: the origin's port."},
    {.name = "timeout",
     .type = CFG_DURATION,
     AT(cfg_monitor, timeout_ms),
     .def = "5s",
     .min = 10,
     .max = HOUR_MS,
     .help = "Time for one check before it counts as failed."},
    {.name = "retries",
     .type = CFG_UINT,
     AT(cfg_monitor, retries),
     .def = "2",
     .min = 0,
     .max = 5,
     .help = "Immediate retries after a failed check, before it counts: "
	     "after any failure (Cloudflare documents them for timeouts "
	     "only), so a single refused connection or bad answer does not "
	     "count either."},
    {.name = "interval",
     .type = CFG_DURATION,
     AT(cfg_monitor, interval_ms),
     .def = "60s",
     .min = 1000,
     .max = HOUR_MS,
     .help = "Time between checks of each origin."},
    {.name = "expected_codes",
     .type = CFG_STRING,
     AT(cfg_monitor, expected_codes),
     .def = "200",
     .check = check_expected_codes,
     .doc_type = "status codes",
     .help = "Healthy response codes: \"200\", \"2xx\", \"200,301\" "
	     "(http and https)."},
    {.name = "expected_body",
     .type = CFG_STRING,
     AT(cfg_monitor, expected_body),
     .help = "Case-insensitive substring the first 10 KB of the body must "
	     "contain; unset: not checked."},
    {.name = "follow_redirects",
     .type = CFG_BOOL,
     AT(cfg_monitor, follow_redirects),
     .def = "false",
     .help = "Follow 3xx responses and judge the final one."},
    {.name = "allow_insecure",
     .type = CFG_BOOL,
     AT(cfg_monitor, allow_insecure),
     .def = "false",
     .help = "https: do not verify the origin's certificate."},
    {.name = "consecutive_up",
     .type = CFG_UINT,
     AT(cfg_monitor, consecutive_up),
     .def = "1",
     .min = 0,
     .max = 100,
     .help = "Passing checks in a row before an origin becomes healthy; "
	     "0 (Cloudflare's default, what its API clients send) counts "
	     "as 1."},
    {.name = "consecutive_down",
     .type = CFG_UINT,
     AT(cfg_monitor, consecutive_down),
     .def = "1",
     .min = 0,
     .max = 100,
     .help = "Failing checks in a row before an origin becomes "
	     "unhealthy; 0 (Cloudflare's default) counts as 1."},
};
static const cfg_table monitor_table = {
    .path = "monitors[]",
    .what = "monitor",
    .help = "A health check, run against every origin of the pools that "
	    "use it.",
    TABLE(monitor_keys),
    POS(cfg_monitor),
};

/* ---- pools ---- */

static const cfg_key origin_keys[] = {
    {.name = "name",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_origin, name),
     .check = check_no_control,
     .help = "Unique within the pool."},
    {.name = "address",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_origin, address),
     .doc_type = "IP address or host name",
     .help = "Where the origin is. A host name is resolved when a "
	     "config first has it (one address: the first, then the same "
	     "while the name still has it) and again every "
	     "edge.resolve_interval; a name that does not resolve at "
	     "start-up or reload is an error. Written "
	     "`https://host[:port]` (a Meridian extension), the origin is "
	     "reached over TLS, on port 443 unless a port is given. Written "
	     "`tunnel:ID` (also an extension), it is reached through the "
	     "connectors of the tunnel ID (`tunnels`); `port` is then not "
	     "used."},
    {.name = "port",
     .type = CFG_UINT,
     AT(cfg_origin, port),
     .def = "80",
     .min = 1,
     .max = 65535,
     .help = "TCP port."},
    {.name = "weight",
     .type = CFG_DOUBLE,
     AT(cfg_origin, weight),
     .def = "1",
     .dmin = 0,
     .dmax = 1,
     .help = "Share of traffic relative to the pool's other origins; 0: "
	     "none."},
    {.name = "enabled",
     .type = CFG_BOOL,
     AT(cfg_origin, enabled),
     .def = "true",
     .help = "A disabled origin gets no traffic and no checks."},
    {.name = "header",
     HEADER_MAP(cfg_origin, headers, nheaders),
     .help = "Request headers set towards this origin, e.g. `Host: "
	     "[app.internal]`."},
    {.name = "tls",
     .type = CFG_BOOL,
     AT(cfg_origin, tls_on),
     .def = "false",
     .help = "Meridian extension: reach this origin over TLS (as an "
	     "`https://` address does), with the pool's `origin_tls` "
	     "settings."},
};
static const cfg_table origin_table = {
    .path = "pools[].origins[]",
    .what = "origin",
    .help = "A server that receives traffic.",
    TABLE(origin_keys),
    POS(cfg_origin),
    .finish = cfg_finish_origin,
};

static const cfg_key steering_keys[] = {
    {.name = "policy",
     .type = CFG_ENUM,
     AT(cfg_pool, origin_steering),
     .def = "random",
     CHOICES(origin_steerings),
     .help = "random: weighted random; hash: client IP, consistent "
	     "hashing; least_outstanding_requests / least_connections: "
	     "weights scaled down by what is in flight."},
};
static const cfg_table steering_table = {
    .path = "pools[].origin_steering",
    .what = "origin_steering",
    .help = "How an origin is chosen inside the pool.",
    TABLE(steering_keys),
};

static const cfg_key shedding_keys[] = {
    {.name = "default_percent",
     .type = CFG_DOUBLE,
     AT(cfg_load_shedding, default_percent),
     .def = "0",
     .dmin = 0,
     .dmax = 100,
     .help = "Percent of new traffic (not kept affinity sessions) moved to "
	     "the pool the steering policy picks next; it stays when no "
	     "other pool can take it."},
    {.name = "default_policy",
     .type = CFG_ENUM,
     AT(cfg_load_shedding, default_policy),
     .def = "random",
     CHOICES(shed_policies),
     .help = "How new traffic to shed is picked. random: each request "
	     "with that probability; hash: that share of client IPs, always "
	     "the same ones."},
    {.name = "session_percent",
     .type = CFG_DOUBLE,
     AT(cfg_load_shedding, session_percent),
     .def = "0",
     .dmin = 0,
     .dmax = 100,
     .help = "Percent of existing affinity sessions (cookie, ip_cookie) "
	     "moved away from this pool, by client IP hash; the cookie "
	     "follows them."},
    {.name = "session_policy",
     .type = CFG_ENUM,
     AT(cfg_load_shedding, session_policy),
     .def = "hash",
     CHOICES(shed_session_policies),
     .help = "How sessions to shed are picked."},
};
static const cfg_table shedding_table = {
    .path = "pools[].load_shedding",
    .what = "load_shedding",
    .help = "Move part of the traffic away from a pool before it fails.",
    TABLE(shedding_keys),
};

static const cfg_key filter_target_keys[] = {
    {.name = "disable",
     .type = CFG_BOOL,
     AT(cfg_notify_filter, disable),
     .def = "false",
     .help = "No notifications at all."},
    {.name = "healthy",
     .type = CFG_TRISTATE,
     AT(cfg_notify_filter, healthy),
     .def = "null",
     .help = "true: only changes to healthy (and enabling); false: only "
	     "to unhealthy (and disabling); null: both."},
};
static const cfg_table filter_target_table = {
    .path = "pools[].notification_filter.origin / .pool",
    .what = "notification filter",
    .help = "Which health changes, and which enabling or disabling by a "
	    "config change, are notified.",
    TABLE(filter_target_keys),
};

static const cfg_key filter_keys[] = {
    {.name = "origin",
     .type = CFG_OBJECT,
     AT(cfg_notification_filter, origin),
     .sub = &filter_target_table,
     .help = "Filter for origin health changes."},
    {.name = "pool",
     .type = CFG_OBJECT,
     AT(cfg_notification_filter, pool),
     .sub = &filter_target_table,
     .help = "Filter for pool health changes."},
};
static const cfg_table filter_table = {
    .path = "pools[].notification_filter",
    .what = "notification_filter",
    .help = "Which of the pool's health changes reach `notifications`.",
    TABLE(filter_keys),
};

static const cfg_key origin_tls_keys[] = {
    {.name = "enabled",
     .type = CFG_BOOL,
     AT(cfg_origin_tls, enabled),
     .def = "false",
     .help = "Every origin of the pool is reached over TLS (else only "
	     "those with an `https://` address or `tls: true`)."},
    {.name = "ca",
     .type = CFG_STRING,
     .flags = CFG_F_NONEMPTY,
     AT(cfg_origin_tls, ca),
     .doc_type = "file",
     .help = "PEM file of the CA certificates origin certificates are "
	     "verified against; unset: the system store (/etc/ssl/certs)."},
    {.name = "allow_insecure",
     .type = CFG_BOOL,
     AT(cfg_origin_tls, allow_insecure),
     .def = "false",
     .help = "Do not verify origin certificates (neither the chain nor the "
	     "name). Also applies to the pool's https monitor."},
    {.name = "sni",
     .type = CFG_STRING,
     .flags = CFG_F_NONEMPTY,
     AT(cfg_origin_tls, sni),
     .check = check_hostname,
     .doc_type = "host name",
     .help = "Name sent as SNI and verified in the certificate. Unset: "
	     "the origin's `Host` header override, else the origin name if "
	     "it is a dotted host name (origin.example.com), else the "
	     "address if it is a host name; an IP address gets no SNI and "
	     "is verified as an IP. Https monitors of the pool use the same "
	     "name, CA and allow_insecure."},
};
static const cfg_table origin_tls_table = {
    .path = "pools[].origin_tls",
    .what = "origin_tls",
    .help = "Meridian extension: how the pool's origins are reached over "
	    "TLS. Connections are pooled as for plain origins and resume "
	    "TLS sessions; a failed handshake or verification is a failed "
	    "connection (the next origin is tried).",
    TABLE(origin_tls_keys),
};

static const cfg_key pool_keys[] = {
    {.name = "id",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_pool, id),
     .check = check_no_control,
     .help = "Unique id; load balancers name pools by it."},
    {.name = "name",
     .type = CFG_STRING,
     .flags = CFG_F_NONEMPTY,
     AT(cfg_pool, name),
     .check = check_no_control,
     .def_doc = "the id",
     .help = "Display name."},
    {.name = "description",
     .type = CFG_STRING,
     AT(cfg_pool, description),
     .help = "Free text."},
    {.name = "enabled",
     .type = CFG_BOOL,
     AT(cfg_pool, enabled),
     .def = "true",
     .help = "A disabled pool is skipped by steering."},
    {.name = "origins",
     .type = CFG_LIST,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     ARRAY_AT(cfg_pool, origins, norigins),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &origin_table},
     .help = "The pool's servers (at least one)."},
    {.name = "minimum_origins",
     .type = CFG_UINT,
     AT(cfg_pool, minimum_origins),
     .def = "1",
     .min = 1,
     .max = 1000,
     .help = "Healthy origins needed for the pool to count as healthy; "
	     "at most the number of origins."},
    {.name = "monitor",
     .type = CFG_REF,
     .ref = CFG_REF_MONITOR,
     .off = offsetof(cfg_pool, monitor),
     .help = "Health check for the origins; unset: the pool counts as "
	     "healthy."},
    {.name = "check_regions",
     .type = CFG_LIST,
     ARRAY_AT(cfg_pool, check_regions, ncheck_regions),
     .item = &item_region,
     .help = "Cluster mode (edge.cluster): the regions whose edges' "
	     "checks decide this pool's origins. Every edge checks them and "
	     "reports what it sees; each of these regions' live edges decide "
	     "its verdict by majority, and the regions with a verdict decide "
	     "the origin's (healthy or unhealthy) by majority, which every "
	     "edge's steering and pool health then follow. A tie, no report "
	     "from these regions, or etcd out of reach: each edge goes by "
	     "its own checks. Outside cluster mode: ignored."},
    {.name = "latitude",
     .type = CFG_DOUBLE,
     .flags = CFG_F_HAS,
     AT(cfg_pool, latitude),
     .dmin = -90,
     .dmax = 90,
     .has_off = offsetof(cfg_pool, has_location),
     .help = "Where the pool is (with longitude), for proximity "
	     "steering."},
    {.name = "longitude",
     .type = CFG_DOUBLE,
     .flags = CFG_F_HAS,
     AT(cfg_pool, longitude),
     .dmin = -180,
     .dmax = 180,
     .has_off = offsetof(cfg_pool, has_location),
     .help = "Where the pool is (with latitude)."},
    {.name = "origin_steering",
     .type = CFG_OBJECT,
     .off = 0,
     .sub = &steering_table,
     .help = "Origin choice inside the pool."},
    {.name = "load_shedding",
     .type = CFG_OBJECT,
     AT(cfg_pool, load_shedding),
     .sub = &shedding_table,
     .help = "Shed part of the pool's traffic."},
    {.name = "notification_filter",
     .type = CFG_OBJECT,
     AT(cfg_pool, notification_filter),
     .sub = &filter_table,
     .help = "Which health changes are notified."},
    {.name = "origin_tls",
     .type = CFG_OBJECT,
     AT(cfg_pool, origin_tls),
     .sub = &origin_tls_table,
     .help = "TLS towards the origins (Meridian extension)."},
};
static const cfg_table pool_table = {
    .path = "pools[]",
    .what = "pool",
    .help = "A group of origins, usually one per cloud or cluster.",
    TABLE(pool_keys),
    POS(cfg_pool),
    .finish = cfg_finish_pool,
};

/* ---- load balancers ---- */

static const cfg_key random_keys[] = {
    {.name = "default_weight",
     .type = CFG_DOUBLE,
     AT(cfg_lb, random_default_weight),
     .def = "1",
     .dmin = 0,
     .dmax = 1,
     .help = "Weight of pools not named in pool_weights."},
    {.name = "pool_weights",
     .type = CFG_MAP,
     ARRAY_AT(cfg_lb, pool_weights, npool_weights),
     .key_off = offsetof(cfg_pool_weight, key),
     .mapkey = &(const cfg_key){.type = CFG_REF,
				.ref = CFG_REF_POOL,
				.off = offsetof(cfg_pool_weight, pool)},
     .item = &(const cfg_key){.type = CFG_DOUBLE,
			      .off = offsetof(cfg_pool_weight, weight),
			      .dmin = 0,
			      .dmax = 1},
     .help = "Weight per pool id."},
};
static const cfg_table random_table = {
    .path = "load_balancers[].random_steering",
    .what = "random_steering",
    .help = "Weights for steering_policy random.",
    TABLE(random_keys),
};

static const cfg_key adaptive_keys[] = {
    {.name = "failover_across_pools",
     .type = CFG_BOOL,
     AT(cfg_lb, failover_across_pools),
     .def = "false",
     .help = "Retry a failed request on the next pool, not only on "
	     "another origin of the same pool."},
};
static const cfg_table adaptive_table = {
    .path = "load_balancers[].adaptive_routing",
    .what = "adaptive_routing",
    .help = "Zero-downtime failover.",
    TABLE(adaptive_keys),
};

static const cfg_key hsts_keys[] = {
    {.name = "enabled",
     .type = CFG_BOOL,
     AT(cfg_lb, hsts_enabled),
     .def = "false",
     .help = "Send Strict-Transport-Security on responses over TLS (h1 and "
	     "h2), replacing any the origin sent; never over plain HTTP "
	     "(RFC 6797 §7.2)."},
    {.name = "max_age",
     .type = CFG_UINT,
     AT(cfg_lb, hsts_max_age),
     .def = "15552000",
     .min = 0,
     .max = 63072000,
     .help = "Seconds browsers keep to https (default 180 days; 0 tells "
	     "them to forget the policy)."},
    {.name = "include_subdomains",
     .type = CFG_BOOL,
     AT(cfg_lb, hsts_include_subdomains),
     .def = "false",
     .help = "Apply the policy to every subdomain too."},
    {.name = "preload",
     .type = CFG_BOOL,
     AT(cfg_lb, hsts_preload),
     .def = "false",
     .help = "Ask to be preloaded by browsers; needs include_subdomains "
	     "and a max_age of at least a year."},
};
static const cfg_table hsts_table = {
    .path = "load_balancers[].hsts",
    .what = "hsts",
    .help = "HTTP Strict Transport Security (Meridian extension).",
    TABLE(hsts_keys),
};

static const cfg_key location_keys[] = {
    {.name = "mode",
     .type = CFG_ENUM,
     AT(cfg_location_strategy, mode),
     .def = "pop",
     CHOICES(loc_modes),
     .help = "pop: locate clients by the edge they reached; resolver_ip: "
	     "by their DNS resolver."},
    {.name = "prefer_ecs",
     .type = CFG_ENUM,
     AT(cfg_location_strategy, prefer_ecs),
     .def = "proximity",
     CHOICES(prefer_ecs),
     .help = "When to use EDNS Client Subnet instead of the location "
	     "`mode` gives: always, never, or only under proximity or geo "
	     "steering."},
};
static const cfg_table location_table = {
    .path = "load_balancers[].location_strategy",
    .what = "location_strategy",
    .help = "How DNS-only load balancers locate clients.",
    TABLE(location_keys),
};

static const cfg_key affinity_keys[] = {
    {.name = "samesite",
     .type = CFG_ENUM,
     AT(cfg_affinity_attrs, samesite),
     .def = "Auto",
     CHOICES(samesites),
     .help = "SameSite attribute of the affinity cookie (Auto: None when "
	     "the cookie is Secure, else Lax). None needs secure Auto or "
	     "Always: browsers drop a SameSite=None cookie that is not "
	     "Secure."},
    {.name = "secure",
     .type = CFG_ENUM,
     AT(cfg_affinity_attrs, secure),
     .def = "Auto",
     CHOICES(secures),
     .help = "Secure attribute of the affinity cookie (Auto: when the "
	     "request came over TLS)."},
    {.name = "drain_duration",
     .type = CFG_DURATION,
     .flags = CFG_F_SECONDS,
     AT(cfg_affinity_attrs, drain_duration),
     .def = "0",
     .min = 0,
     .max = DAY_MS,
     .help = "How long sessions stay on an origin (or pool) after a "
	     "config change disabled it; one disabled at start-up has "
	     "nothing to drain."},
    {.name = "headers",
     .type = CFG_LIST,
     ARRAY_AT(cfg_affinity_attrs, headers, nheaders),
     .item = &item_affinity_header,
     .help = "session_affinity header: the request headers that identify "
	     "a session. An item `cookie:NAME[,NAME...]` (Cloudflare's form) "
	     "takes the named cookies of the Cookie header, each one as if "
	     "it were a header; `Cookie` itself takes all of them."},
    {.name = "require_all_headers",
     .type = CFG_BOOL,
     AT(cfg_affinity_attrs, require_all_headers),
     .def = "false",
     .help = "session_affinity header: create a session only when all "
	     "headers are present."},
    {.name = "zero_downtime_failover",
     .type = CFG_ENUM,
     AT(cfg_affinity_attrs, zero_downtime_failover),
     .def = "none",
     CHOICES(zdt_failovers),
     .help = "On failover of the session's origin: none; temporary (use "
	     "another origin, keep the session); sticky (move the "
	     "session)."},
};
static const cfg_table affinity_table = {
    .path = "load_balancers[].session_affinity_attributes",
    .what = "session_affinity_attributes",
    .help = "Details of session affinity.",
    TABLE(affinity_keys),
    .finish = cfg_finish_affinity,
};

/* ---- load balancer rules ---- */

/* An override names a load balancer field; it is stored in the rule's
 * `ov` (a cfg_lb) and flagged in `has`. */
#define OV(f)                                                                  \
	AT(cfg_lb_rule, ov.f), .flags = CFG_F_HAS,                             \
			       .has_off = offsetof(cfg_lb_rule, has.f)
static const cfg_key override_keys[] = {
    {.name = "default_pools",
     .type = CFG_LIST,
     .flags = CFG_F_HAS | CFG_F_NONEMPTY,
     ARRAY_AT(cfg_lb_rule, ov.default_pools, ov.ndefault_pools),
     .has_off = offsetof(cfg_lb_rule, has.default_pools),
     .item = &item_pool_ref,
     .help = "Pool ids in failover order."},
    {.name = "fallback_pool",
     .type = CFG_REF,
     .ref = CFG_REF_POOL,
     OV(fallback_pool),
     .help = "Pool used when no other pool is healthy."},
    {.name = "region_pools",
     .type = CFG_MAP,
     ARRAY_AT(cfg_lb_rule, ov.region_pools, ov.nregion_pools),
     .key_off = offsetof(cfg_pool_map, key),
     .mapkey = &region_key,
     .item = &pool_list,
     .flags = CFG_F_HAS,
     .has_off = offsetof(cfg_lb_rule, has.region_pools),
     .help = "Region to pool ids."},
    {.name = "country_pools",
     .type = CFG_MAP,
     ARRAY_AT(cfg_lb_rule, ov.country_pools, ov.ncountry_pools),
     .key_off = offsetof(cfg_pool_map, key),
     .mapkey = &country_key,
     .item = &pool_list,
     .flags = CFG_F_HAS,
     .has_off = offsetof(cfg_lb_rule, has.country_pools),
     .help = "Country to pool ids."},
    {.name = "pop_pools",
     .type = CFG_MAP,
     ARRAY_AT(cfg_lb_rule, ov.pop_pools, ov.npop_pools),
     .key_off = offsetof(cfg_pool_map, key),
     .mapkey = &pop_key,
     .item = &pool_list,
     .flags = CFG_F_HAS,
     .has_off = offsetof(cfg_lb_rule, has.pop_pools),
     .help = "Edge name to pool ids."},
    {.name = "steering_policy",
     .type = CFG_ENUM,
     OV(steering_policy),
     CHOICES(steerings),
     .help = "How a pool is chosen."},
    {.name = "random_steering",
     .type = CFG_OBJECT,
     .off = offsetof(cfg_lb_rule, ov),
     .flags = CFG_F_HAS,
     .has_off = offsetof(cfg_lb_rule, has.random_steering),
     .sub = &random_table,
     .help = "Weights for random steering (the whole object)."},
    {.name = "adaptive_routing",
     .type = CFG_OBJECT,
     .off = offsetof(cfg_lb_rule, ov),
     .flags = CFG_F_HAS,
     .has_off = offsetof(cfg_lb_rule, has.adaptive_routing),
     .sub = &adaptive_table,
     .help = "Failover of failed requests."},
    {.name = "location_strategy",
     .type = CFG_OBJECT,
     OV(location_strategy),
     .sub = &location_table,
     .help = "Client location for DNS-only answers."},
    {.name = "session_affinity",
     .type = CFG_ENUM,
     OV(session_affinity),
     CHOICES(affinities),
     .help = "Session affinity for these requests."},
    {.name = "session_affinity_ttl",
     .type = CFG_DURATION,
     AT(cfg_lb_rule, ov.session_affinity_ttl),
     .flags = CFG_F_HAS | CFG_F_SECONDS,
     .has_off = offsetof(cfg_lb_rule, has.session_affinity_ttl),
     .min = 30000,
     .max = 7 * DAY_MS,
     .help = "Lifetime of an affinity session."},
    {.name = "session_affinity_attributes",
     .type = CFG_OBJECT,
     OV(session_affinity_attributes),
     .sub = &affinity_table,
     .help = "Cookie attributes, headers and failover of sessions (the "
	     "whole object)."},
    {.name = "ttl",
     .type = CFG_UINT,
     OV(ttl),
     .min = 1,
     .max = 86400,
     .help = "DNS TTL of the answers, seconds."},
};
#undef OV
static const cfg_table override_table = {
    .path = "load_balancers[].rules[].overrides",
    .what = "overrides",
    .help = "Load balancer fields replaced for the requests (or DNS "
	    "queries) that match the rule. An object given here "
	    "(random_steering, session_affinity_attributes, ...) replaces "
	    "the load balancer's whole object; unset keys inside it take "
	    "their defaults.",
    TABLE(override_keys),
};

static const cfg_key fixed_keys[] = {
    {.name = "status_code",
     .type = CFG_UINT,
     AT(cfg_lb_fixed, status_code),
     .def = "200",
     .min = 200,
     .max = 599,
     .help = "HTTP status of the answer."},
    {.name = "message_body",
     .type = CFG_STRING,
     AT(cfg_lb_fixed, message_body),
     .help = "Body of the answer (at most 1024 bytes)."},
    {.name = "content_type",
     .type = CFG_STRING,
     AT(cfg_lb_fixed, content_type),
     .check = check_header_value,
     .def_doc = "text/plain",
     .help = "Content-Type of the answer (at most 32 bytes)."},
    {.name = "location",
     .type = CFG_STRING,
     AT(cfg_lb_fixed, location),
     .check = check_header_value,
     .help = "Location field of the answer, for redirects (at most 2048 "
	     "bytes)."},
};
static const cfg_table fixed_table = {
    .path = "load_balancers[].rules[].fixed_response",
    .what = "fixed_response",
    .help = "An answer from the edge itself; the rule terminates.",
    TABLE(fixed_keys),
};

static const cfg_key rule_keys[] = {
    {.name = "name",
     .type = CFG_STRING,
     AT(cfg_lb_rule, name),
     .check = check_no_control,
     .help = "Free text, shown in logs."},
    {.name = "condition",
     .type = CFG_STRING,
     AT(cfg_lb_rule, condition),
     .doc_type = "expression",
     .help = "When the rule applies, in Cloudflare's rules language (for "
	     "example `http.request.uri.path matches \"^/api/\"`); empty: "
	     "always. See \"Rule conditions\" at the end."},
    {.name = "disabled",
     .type = CFG_BOOL,
     AT(cfg_lb_rule, disabled),
     .def = "false",
     .help = "A disabled rule is not evaluated."},
    {.name = "priority",
     .type = CFG_UINT,
     AT(cfg_lb_rule, priority),
     .flags = CFG_F_HAS,
     .has_off = offsetof(cfg_lb_rule, has_priority),
     .min = 0,
     .max = UINT32_MAX,
     .def_doc = "0",
     .help = "Rules run in increasing priority, equal ones in the order "
	     "written."},
    {.name = "terminates",
     .type = CFG_BOOL,
     AT(cfg_lb_rule, terminates),
     .def = "false",
     .help = "When the rule matches, rules after it are not evaluated."},
    {.name = "fixed_response",
     .type = CFG_OBJECT,
     AT(cfg_lb_rule, fixed_response),
     .flags = CFG_F_HAS,
     .has_off = offsetof(cfg_lb_rule, has_fixed_response),
     .sub = &fixed_table,
     .help = "Answer from the edge instead of an origin (proxied load "
	     "balancers)."},
    {.name = "overrides",
     .type = CFG_OBJECT,
     .off = 0,
     .flags = CFG_F_HAS,
     .has_off = offsetof(cfg_lb_rule, has_overrides),
     .sub = &override_table,
     .help = "Load balancer fields to use instead."},
};
static const cfg_table rule_table = {
    .path = "load_balancers[].rules[]",
    .what = "rule",
    .help = "A rule: when `condition` holds, `fixed_response` answers or "
	    "`overrides` replace load balancer fields. Rules run in "
	    "priority order; when several match, each one's overrides apply "
	    "in turn (the last one wins for a field) until one with "
	    "`terminates` or a fixed_response.",
    TABLE(rule_keys),
    POS(cfg_lb_rule),
    .finish = cfg_finish_rule,
};

static const cfg_key lb_keys[] = {
    {.name = "name",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED,
     AT(cfg_lb, name),
     .check = check_lb_name,
     .doc_type = "host name",
     .help = "The hostname served: exact, or `*.example.com` for every "
	     "name below example.com (a.example.com, a.b.example.com; not "
	     "example.com itself), by the proxy and in DNS; exact names win "
	     "over wildcards, and a longer wildcard (`*.eu.example.com`) "
	     "over a shorter one."},
    {.name = "id",
     .type = CFG_STRING,
     .flags = CFG_F_NONEMPTY,
     AT(cfg_lb, id),
     .def_doc = "the name",
     .help = "API id."},
    {.name = "description",
     .type = CFG_STRING,
     AT(cfg_lb, description),
     .help = "Free text."},
    {.name = "enabled",
     .type = CFG_BOOL,
     AT(cfg_lb, enabled),
     .def = "true",
     .help = "A disabled load balancer is not served."},
    {.name = "proxied",
     .type = CFG_BOOL,
     AT(cfg_lb, proxied),
     .def = "true",
     .help = "true: traffic goes through the edge's proxy; false: "
	     "DNS-only (answers with origin addresses)."},
    {.name = "ttl",
     .type = CFG_UINT,
     AT(cfg_lb, ttl),
     .def = "30",
     .min = 1,
     .max = 86400,
     .help = "DNS TTL of answers for DNS-only load balancers, seconds."},
    {.name = "default_pools",
     .type = CFG_LIST,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     ARRAY_AT(cfg_lb, default_pools, ndefault_pools),
     .item = &item_pool_ref,
     .help = "Pool ids in failover order."},
    {.name = "fallback_pool",
     .type = CFG_REF,
     .ref = CFG_REF_POOL,
     .off = offsetof(cfg_lb, fallback_pool),
     .help = "Pool used when no other pool is healthy, whatever its own "
	     "health: when none of its origins is healthy, its enabled "
	     "origins with weight > 0 are used anyway."},
    {.name = "region_pools",
     POOL_MAP(region_pools, nregion_pools, region_key),
     .help = "Region to pool ids, for geo steering."},
    {.name = "country_pools",
     POOL_MAP(country_pools, ncountry_pools, country_key),
     .help = "Country (ISO 3166 alpha-2) to pool ids; wins over "
	     "region_pools."},
    {.name = "pop_pools",
     POOL_MAP(pop_pools, npop_pools, pop_key),
     .help = "Edge name to pool ids; wins over country_pools."},
    {.name = "steering_policy",
     .type = CFG_ENUM,
     AT(cfg_lb, steering_policy),
     .def = "",
     CHOICES(steerings),
     .help = "How a pool is chosen; \"\": geo when a *_pools map is set, "
	     "else off (failover order)."},
    {.name = "random_steering",
     .type = CFG_OBJECT,
     .off = 0,
     .sub = &random_table,
     .help = "Weights for random steering."},
    {.name = "adaptive_routing",
     .type = CFG_OBJECT,
     .off = 0,
     .sub = &adaptive_table,
     .help = "Failover of failed requests."},
    {.name = "location_strategy",
     .type = CFG_OBJECT,
     AT(cfg_lb, location_strategy),
     .sub = &location_table,
     .help = "Client location for DNS-only answers."},
    {.name = "session_affinity",
     .type = CFG_ENUM,
     AT(cfg_lb, session_affinity),
     .def = "none",
     CHOICES(affinities),
     .help = "Keep a client on one origin: by cookie, by client IP and "
	     "cookie, or by request headers."},
    {.name = "session_affinity_ttl",
     .type = CFG_DURATION,
     .flags = CFG_F_SECONDS,
     AT(cfg_lb, session_affinity_ttl),
     .def = "23h",
     .min = 30000,
     .max = 7 * DAY_MS,
     .help = "Lifetime of an affinity session (stored in seconds)."},
    {.name = "session_affinity_attributes",
     .type = CFG_OBJECT,
     AT(cfg_lb, session_affinity_attributes),
     .sub = &affinity_table,
     .help = "Cookie attributes, headers and failover of sessions."},
    {.name = "rules",
     .type = CFG_LIST,
     ARRAY_AT(cfg_lb, rules, nrules),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &rule_table},
     .help =
	 "Cloudflare's load balancing rules (at most 64): a condition on the "
	 "request (or DNS query) and what to do then; see "
	 "load_balancers[].rules[]."},
    {.name = "hsts",
     .type = CFG_OBJECT,
     .off = 0,
     .sub = &hsts_table,
     .help = "Strict-Transport-Security on responses over TLS (Meridian "
	     "extension)."},
    {.name = "https_redirect",
     .type = CFG_BOOL,
     AT(cfg_lb, https_redirect),
     .def = "false",
     .help = "Answer requests on http listeners with a redirect to "
	     "https:// (301 for GET and HEAD, 308 otherwise), except ACME "
	     "http-01 challenges (`/.well-known/acme-challenge/`). The port "
	     "is the first https listener's; needs edge.listen.https "
	     "(Meridian extension)."},
};
static const cfg_table lb_table = {
    .path = "load_balancers[]",
    .what = "load balancer",
    .help = "A hostname served by steering requests over pools.",
    TABLE(lb_keys),
    POS(cfg_lb),
    .finish = cfg_finish_lb,
};

/* ---- notifications ---- */

static const cfg_key email_keys[] = {
    /* CFG_F_SECRET: the URL may carry user:password@, so a refused
     * one is not echoed (config errors go to the log on reload). */
    {.name = "smtp_url",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_SECRET,
     AT(cfg_email, smtp_url),
     .check = check_smtp_url,
     .doc_type = "URL",
     .help = "Mail server; smtps:// for implicit TLS, credentials as "
	     "smtp://user:pass@host (use `${VAR}`). smtp:// uses STARTTLS "
	     "when the server offers it, and requires it when the URL has "
	     "credentials: they never cross in the clear."},
    {.name = "from",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED,
     AT(cfg_email, from),
     .check = check_email,
     .doc_type = "email address",
     .help = "Sender address."},
    {.name = "to",
     .type = CFG_LIST,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     ARRAY_AT(cfg_email, to, nto),
     .item = &item_email,
     .help = "Recipients."},
};
static const cfg_table email_table = {
    .path = "notifications.email",
    .what = "notifications.email",
    .help = "Health change notifications by email.",
    TABLE(email_keys),
};

static const cfg_key webhook_keys[] = {
    /* CFG_F_SECRET: credentials, or a secret path (Slack's hooks). */
    {.name = "url",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_SECRET,
     AT(cfg_webhook, url),
     .check = check_http_url,
     .doc_type = "URL",
     .help = "Receives a JSON POST per event."},
    {.name = "secret",
     .type = CFG_STRING,
     AT(cfg_webhook, secret),
     .help = "Shared secret sent with each POST in the "
	     "cf-webhook-auth header (as Cloudflare does); unset: none."},
};
static const cfg_table webhook_table = {
    .path = "notifications.webhooks[]",
    .what = "webhook",
    .help = "A webhook.",
    TABLE(webhook_keys),
    POS(cfg_webhook),
};

static const cfg_key notify_keys[] = {
    {.name = "email",
     .type = CFG_OBJECT,
     .flags = CFG_F_HAS,
     AT(cfg_notifications, email),
     .has_off = offsetof(cfg_notifications, has_email),
     .sub = &email_table,
     .help = "Email delivery."},
    {.name = "webhooks",
     .type = CFG_LIST,
     ARRAY_AT(cfg_notifications, webhooks, nwebhooks),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &webhook_table},
     .help = "Webhook deliveries."},
    {.name = "debounce",
     .type = CFG_DURATION,
     AT(cfg_notifications, debounce_ms),
     .def = "10s",
     .min = 0,
     .max = DAY_MS,
     .help = "A change must last this long to be notified (against "
	     "flapping)."},
};
static const cfg_table notify_table = {
    .path = "notifications",
    .what = "notifications",
    .help = "Where health changes are sent, and origins and pools "
	    "enabled or disabled by a config change.",
    TABLE(notify_keys),
};

/* ---- rate limits ---- */

static const char *const rl_actions[] = {"block", "log"};
static_assert(ARRAY_LEN(rl_actions) == CFG_RL_LOG + 1, "rl_actions");
static const cfg_key item_characteristic = {.type = CFG_STRING,
					    .doc_type = "field"};

/* The edge's answer of a rate limit or a firewall rule (cfg_rl_response),
 * by its default status. */
#define EDGE_RESPONSE_KEYS(DEF)                                                \
	{.name = "status_code",                                                \
	 .type = CFG_UINT,                                                     \
	 AT(cfg_rl_response, status_code),                                     \
	 .def = DEF,                                                           \
	 .min = 400,                                                           \
	 .max = 599,                                                           \
	 .help = "HTTP status of the answer."},                                \
	    {.name = "content_type",                                           \
	     .type = CFG_STRING,                                               \
	     AT(cfg_rl_response, content_type),                                \
	     .check = check_header_value,                                      \
	     .def_doc = "text/plain",                                          \
	     .help = "Content-Type of the answer (at most 64 bytes; needs "    \
		     "content)."},                                             \
	{                                                                      \
		.name = "content", .type = CFG_STRING,                         \
		AT(cfg_rl_response, content),                                  \
		.def_doc = "the edge's own short text",                        \
		.help = "Body of the answer (at most 4096 bytes)."             \
	}

static const cfg_key rl_response_keys[] = {EDGE_RESPONSE_KEYS("429")};
static const cfg_table rl_response_table = {
    .path = "rate_limits[].response",
    .what = "response",
    .help = "The answer to a blocked request; `Retry-After` (whole "
	    "seconds) is always added.",
    TABLE(rl_response_keys),
};

static const cfg_key rate_limit_keys[] = {
    {.name = "name",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_rate_limit, name),
     .help = "Unique; names the rule on /metrics and in the access log, "
	     "and keeps its counts across reloads and API changes (as long "
	     "as its characteristics, rate, burst and max_keys stay)."},
    {.name = "expression",
     .type = CFG_STRING,
     AT(cfg_rate_limit, expression),
     .doc_type = "expression",
     .help = "Which requests the rule counts, in the rules language of "
	     "load balancer rules (see \"Rule conditions\"), for example "
	     "`starts_with(http.request.uri.path, \"/api/\")`; empty: "
	     "every request."},
    {.name = "counting_expression",
     .type = CFG_STRING,
     AT(cfg_rate_limit, counting_expression),
     .doc_type = "expression",
     .help = "Count a request only when its response satisfies this, on "
	     "`http.response.code` (for example `http.response.code in {401 "
	     "403}`: failed logins); a request over the rate is still refused "
	     "when it arrives, and one in flight holds its count until its "
	     "response is known (requests sent at once cannot all pass). "
	     "Empty: every request counts on arrival. At most 4 rules have "
	     "one."},
    {.name = "disabled",
     .type = CFG_BOOL,
     AT(cfg_rate_limit, disabled),
     .def = "false",
     .help = "A disabled rule counts nothing."},
    {.name = "action",
     .type = CFG_ENUM,
     AT(cfg_rate_limit, action),
     .def = "block",
     CHOICES(rl_actions),
     .help = "Over the rate: `block` answers from the edge (`response`, "
	     "with Retry-After); `log` lets the request through and names "
	     "the rule in the access log (`\"rate_limit\"`), to try a limit "
	     "before enforcing it."},
    {.name = "characteristics",
     .type = CFG_LIST,
     ARRAY_AT(cfg_rate_limit, characteristics, ncharacteristics),
     .item = &item_characteristic,
     .def_doc = "[ip.src]",
     .help = "What is counted apart: the values of these fields make the "
	     "key. `ip.src` (the client after PROXY and trusted "
	     "X-Forwarded-For, cut to ipv4/ipv6_prefix_length), "
	     "`ip.src.country`, `cf.load_balancer.name`, `http.host`, "
	     "`http.request.method`, `http.request.uri`, "
	     "`http.request.uri.path`, `http.request.uri.query`, "
	     "`http.user_agent`, `http.referer`, "
	     "`http.request.headers[\"Name\"]` (its first field; `[N]` the "
	     "N-th; a missing header is one value, empty). "
	     "`[ip.src, http.request.headers[\"x-api-key\"]]` limits each "
	     "key from each client."},
    {.name = "requests_per_period",
     .type = CFG_UINT,
     .flags = CFG_F_REQUIRED,
     AT(cfg_rate_limit, requests_per_period),
     .min = 1,
     .max = 10000000,
     .help = "Requests of one key allowed per period, on average."},
    {.name = "period",
     .type = CFG_DURATION,
     AT(cfg_rate_limit, period_ms),
     .def = "60s",
     .min = 1000,
     .max = DAY_MS,
     .help = "The period of requests_per_period."},
    {.name = "burst",
     .type = CFG_UINT,
     AT(cfg_rate_limit, burst),
     .def_doc = "requests_per_period",
     .min = 1,
     .max = 10000000,
     .help = "Requests of one key allowed at once: a token bucket of this "
	     "size, refilled at the rate (so a client idle for a period may "
	     "send this many at once). Smaller spreads the requests out."},
    {.name = "mitigation_timeout",
     .type = CFG_DURATION,
     AT(cfg_rate_limit, mitigation_timeout_ms),
     .def = "0s",
     .min = 0,
     .max = DAY_MS,
     .help = "Once a key goes over the rate, refuse all its requests for "
	     "this long (then it starts over with a full burst); 0: refuse "
	     "only the requests over the rate."},
    {.name = "max_keys",
     .type = CFG_UINT,
     AT(cfg_rate_limit, max_keys),
     .def = "65536",
     .min = 64,
     .max = 16777216,
     .help = "Keys counted at once (16 bytes each, allocated at load). "
	     "Beyond, the key whose bucket is fullest is forgotten "
	     "(`meridian_rate_limit_evictions_total` counts the ones that "
	     "still counted)."},
    {.name = "ipv4_prefix_length",
     .type = CFG_UINT,
     AT(cfg_rate_limit, ipv4_prefix_length),
     .def = "32",
     .min = 8,
     .max = 32,
     .help = "For ip.src: IPv4 clients in one network of this length "
	     "count as one."},
    {.name = "ipv6_prefix_length",
     .type = CFG_UINT,
     AT(cfg_rate_limit, ipv6_prefix_length),
     .def = "64",
     .min = 16,
     .max = 128,
     .help = "For ip.src: IPv6 clients in one network of this length "
	     "count as one (a /64 is usually one subscriber)."},
    {.name = "response",
     .type = CFG_OBJECT,
     AT(cfg_rate_limit, response),
     .flags = CFG_F_HAS,
     .has_off = offsetof(cfg_rate_limit, has_response),
     .sub = &rl_response_table,
     .help = "The answer to blocked requests."},
};
static const cfg_table rate_limit_table = {
    .path = "rate_limits[]",
    .what = "rate limit",
    .help = "A rate limit on proxied requests (HTTP/1.x and HTTP/2), run "
	    "after Host routing and the client address, before load "
	    "balancer rules; requests to unknown hosts get their 404 first. "
	    "Every enabled rule whose expression holds counts the request; "
	    "the first `block` rule over its rate answers it (rules before it "
	    "have counted it; rules after it do not). ACME http-01 challenges "
	    "(/.well-known/acme-challenge/) are never counted or limited. "
	    "Counts are per edge node.",
    TABLE(rate_limit_keys),
    POS(cfg_rate_limit),
    .finish = cfg_finish_rate_limit,
};

/* ---- the firewall (WAF custom rules) ---- */

static const char *const waf_actions[] = {"block", "log", "skip"};
static_assert(ARRAY_LEN(waf_actions) == CFG_WAF_SKIP + 1, "waf_actions");

static const cfg_key waf_response_keys[] = {EDGE_RESPONSE_KEYS("403")};
static const cfg_table waf_response_table = {
    .path = "waf.custom_rules[].response",
    .what = "response",
    .help = "The answer to a blocked request.",
    TABLE(waf_response_keys),
};

static const cfg_key waf_rule_keys[] = {
    {.name = "name",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_waf_rule, name),
     .help = "Unique; names the rule on /metrics and in the access log."},
    {.name = "expression",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_waf_rule, expression),
     .doc_type = "expression",
     .help = "Which requests the rule acts on, in the rules language (see "
	     "\"Rule conditions\"), for example `ip.src.country in {\"XX\" "
	     "\"YY\"}` or `http.user_agent contains \"sqlmap\"`."},
    {.name = "action",
     .type = CFG_ENUM,
     AT(cfg_waf_rule, action),
     .def = "block",
     CHOICES(waf_actions),
     .help = "`block`: the edge answers (`response`, 403 by default); "
	     "`log`: the request goes on, named in the access log "
	     "(`\"waf_rule\"`); `skip`: the request goes on and no later "
	     "custom rule and no rate limit applies to it (monitoring, your "
	     "own offices)."},
    {.name = "disabled",
     .type = CFG_BOOL,
     AT(cfg_waf_rule, disabled),
     .def = "false",
     .help = "A disabled rule is not evaluated."},
    {.name = "response",
     .type = CFG_OBJECT,
     AT(cfg_waf_rule, response),
     .flags = CFG_F_HAS,
     .has_off = offsetof(cfg_waf_rule, has_response),
     .sub = &waf_response_table,
     .help = "The answer to blocked requests."},
};
static const cfg_table waf_rule_table = {
    .path = "waf.custom_rules[]",
    .what = "custom rule",
    .help = "A custom firewall rule, as Cloudflare's WAF custom rules: "
	    "evaluated in order on every proxied request (HTTP/1.x and "
	    "HTTP/2) after Host routing and the client address, before rate "
	    "limits and load balancer rules; the first `block` or `skip` "
	    "that matches ends them. ACME http-01 challenges pass.",
    TABLE(waf_rule_keys),
    POS(cfg_waf_rule),
    .finish = cfg_finish_waf_rule,
};

static const char *const waf_modes[] = {"block", "detect"};
static_assert(ARRAY_LEN(waf_modes) == CFG_WAF_MODE_DETECT + 1, "waf_modes");

static const cfg_key item_rule_id = {.type = CFG_UINT,
				     .size = sizeof(uint32_t),
				     .min = 1,
				     .max = 9999999,
				     .doc_type = "rule id"};
static const cfg_key item_rules_file = {
    .type = CFG_STRING, .flags = CFG_F_NONEMPTY, .doc_type = "path"};

static const cfg_key waf_managed_keys[] = {
    {.name = "enabled",
     .type = CFG_BOOL,
     AT(cfg_waf_managed, enabled),
     .def = "false",
     .help = "Run the managed rules on every proxied request (HTTP/1.x "
	     "and HTTP/2)."},
    {.name = "mode",
     .type = CFG_ENUM,
     AT(cfg_waf_managed, mode),
     .def = "block",
     CHOICES(waf_modes),
     .help = "`block`: a request the rules deny gets their status (403) "
	     "from the edge; `detect`: it goes on, and the rules that "
	     "matched are named in the access log and counted (try new "
	     "rules here first)."},
    {.name = "paranoia_level",
     .type = CFG_UINT,
     AT(cfg_waf_managed, paranoia_level),
     .def = "1",
     .min = 1,
     .max = 4,
     .help = "The CRS paranoia level: higher runs more rules, catching "
	     "more attacks and blocking more legitimate requests."},
    {.name = "anomaly_threshold",
     .type = CFG_UINT,
     AT(cfg_waf_managed, anomaly_threshold),
     .def = "5",
     .min = 1,
     .max = 10000,
     .help = "The CRS inbound anomaly score at which a request is "
	     "denied (a critical match scores 5, an error 4, a warning 3)."},
    {.name = "crs",
     .type = CFG_STRING,
     .flags = CFG_F_NONEMPTY,
     AT(cfg_waf_managed, crs),
     .def = CFG_WAF_CRS_DEFAULT,
     .doc_type = "path",
     .help = "The Core Rule Set's directory: its `rules/*.conf` are "
	     "loaded (Debian's modsecurity-crs package by default). The "
	     "edge writes the setup (crs-setup.conf) itself from the keys "
	     "here."},
    {.name = "body_limit",
     .type = CFG_SIZE,
     AT(cfg_waf_managed, body_limit),
     .def = "16384",
     .min = 0,
     .max = 1048576,
     .help = "Request body bytes the rules see. The edge holds a body "
	     "until it has this much (or all of it) before it connects to "
	     "the origin; the rest streams on uninspected "
	     "(ProcessPartial). The client buffers are sized at start-up to "
	     "hold it; a reload that raises it inspects what fits, and a "
	     "JSON, XML or multipart body the buffer fills before this many "
	     "payload bytes (that, or chunks of a few bytes) cannot be parsed "
	     "and gets 400. 0: bodies are not "
	     "inspected."},
    {.name = "disabled_rules",
     .type = CFG_LIST,
     ARRAY_AT(cfg_waf_managed, disabled_rules, ndisabled_rules),
     .item = &item_rule_id,
     .help = "Rule ids not run (SecRuleRemoveById), for false "
	     "positives."},
    {.name = "setup_files",
     .type = CFG_LIST,
     ARRAY_AT(cfg_waf_managed, setup_files, nsetup_files),
     .item = &item_rules_file,
     .help = "Files of ModSecurity directives loaded after the edge's "
	     "setup and before the CRS, as crs-setup.conf and "
	     "REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf are: CRS "
	     "variables (`SecAction \"id:900220,phase:1,nolog,pass,"
	     "setvar:'tx.allowed_request_content_type=...'\"`), exclusions "
	     "by `ctl:`. Read again on every reload."},
    {.name = "rules_files",
     .type = CFG_LIST,
     ARRAY_AT(cfg_waf_managed, rules_files, nrules_files),
     .item = &item_rules_file,
     .help = "Files of ModSecurity rules loaded after the CRS (exclusions "
	     "such as SecRuleUpdateTargetById, rules of your own). Read again "
	     "on every reload."},
};
static const cfg_table waf_managed_table = {
    .path = "waf.managed",
    .what = "managed rules",
    .help = "Managed rules: the OWASP Core Rule Set run by the ModSecurity "
	    "v3 engine on proxied requests, after the custom rules, rate "
	    "limits and load balancer rules (a custom rule's `skip` skips "
	    "them too; a load balancer rule's `fixed_response` answers "
	    "first). JSON and XML bodies are parsed for them (the "
	    "body processors of ModSecurity's recommended configuration, "
	    "rules 200000 and 200001), and a body that does not parse, or a "
	    "multipart body that fails strict validation, is refused with "
	    "400 (rules 200002 and 200003) unless it was cut at body_limit. "
	    "The rule set is loaded at start and on every reload; a file that "
	    "does not load is an error and changes nothing. ACME http-01 "
	    "challenges pass.",
    TABLE(waf_managed_keys),
    POS(cfg_waf_managed),
};

static const cfg_key waf_keys[] = {
    {.name = "custom_rules",
     .type = CFG_LIST,
     ARRAY_AT(cfg_waf, custom_rules, ncustom_rules),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &waf_rule_table},
     .help = "Rules in order (at most 64)."},
    {.name = "managed",
     .type = CFG_OBJECT,
     AT(cfg_waf, managed),
     .sub = &waf_managed_table,
     .help = "The managed rules (OWASP CRS on ModSecurity)."},
};
static const cfg_table waf_table = {
    .path = "waf",
    .what = "waf",
    .help = "The edge's firewall for proxied requests.",
    TABLE(waf_keys),
};

/* ---- tunnels ---- */

static const cfg_key tunnel_keys[] = {
    {.name = "id",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_tunnel, id),
     .help = "The tunnel's name: letters, digits, `.`, `_`, `-`; at most "
	     "63. Connectors name it in their hello; origins reach it as "
	     "`address: tunnel:ID`."},
    {.name = "token",
     .type = CFG_STRING,
     .flags = CFG_F_REQUIRED | CFG_F_NONEMPTY,
     AT(cfg_tunnel, token),
     .help = "The secret connectors present (`Authorization: Bearer`), at "
	     "least 32 characters; use `${VAR}` to keep it out of the file. "
	     "A change applies to new connections; connections made with "
	     "the old token are closed."},
    {.name = "description",
     .type = CFG_STRING,
     AT(cfg_tunnel, description),
     .help = "Free text."},
};
static const cfg_table tunnel_table = {
    .path = "tunnels[]",
    .what = "tunnel",
    .help = "A tunnel: connectors (`meridian tunnel`) dial out to the "
	    "edge's `edge.listen.tunnel` and serve its requests, so a "
	    "cluster needs no public address (docs/TUNNEL.md).",
    TABLE(tunnel_keys),
    POS(cfg_tunnel),
    .finish = cfg_finish_tunnel,
};

/* ---- the file ---- */

static const cfg_key root_keys[] = {
    {.name = "edge",
     .type = CFG_OBJECT,
     AT(cfg_snapshot, edge),
     .sub = &edge_table,
     .help = "This edge node."},
    {.name = "api",
     .type = CFG_OBJECT,
     AT(cfg_snapshot, api),
     .sub = &api_table,
     .help = "Admin API."},
    {.name = "zones",
     .type = CFG_LIST,
     ARRAY_AT(cfg_snapshot, zones, nzones),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &zone_table},
     .help = "DNS zones served."},
    {.name = "waf",
     .type = CFG_OBJECT,
     AT(cfg_snapshot, waf),
     .sub = &waf_table,
     .help = "Firewall rules on proxied requests."},
    {.name = "rate_limits",
     .type = CFG_LIST,
     ARRAY_AT(cfg_snapshot, rate_limits, nrate_limits),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &rate_limit_table},
     .help = "Rate limits on proxied requests."},
    {.name = "tunnels",
     .type = CFG_LIST,
     ARRAY_AT(cfg_snapshot, tunnels, ntunnels),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &tunnel_table},
     /* Before `pools`: keys apply in this order, and an origin looks
      * its tunnel up. */
     .help = "Tunnels connectors may join (at most 256)."},
    {.name = "geo",
     .type = CFG_OBJECT,
     AT(cfg_snapshot, geo),
     .sub = &geo_table,
     .help = "Client location."},
    {.name = "monitors",
     .type = CFG_LIST,
     ARRAY_AT(cfg_snapshot, monitors, nmonitors),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &monitor_table},
     .help = "Health checks."},
    {.name = "pools",
     .type = CFG_LIST,
     ARRAY_AT(cfg_snapshot, pools, npools),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &pool_table},
     .help = "Origin pools."},
    {.name = "load_balancers",
     .type = CFG_LIST,
     ARRAY_AT(cfg_snapshot, lbs, nlbs),
     .item = &(const cfg_key){.type = CFG_OBJECT, .sub = &lb_table},
     .help = "Hostnames and how they are steered."},
    {.name = "notifications",
     .type = CFG_OBJECT,
     AT(cfg_snapshot, notifications),
     .sub = &notify_table,
     .help = "Health notifications."},
};
const cfg_table cfg_root_table = {
    .path = "(top level)",
    .what = "the top level",
    .help = "The sections of the file; each is optional.",
    TABLE(root_keys),
    .finish = cfg_finish_root,
};
