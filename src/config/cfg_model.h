/* cfg_model.h - the configuration object model (SPEC §2-3).
 *
 * A cfg_snapshot is immutable once built: every string and array in it lives
 * in the snapshot's arena and is freed at once by cfg_snapshot_free(). Workers
 * read it without locks. Cross references (a load balancer's pools, a pool's
 * monitor) are resolved to pointers at load time, so the data plane never
 * looks anything up by name.
 *
 * Durations are stored in milliseconds. Field names follow Cloudflare's.
 *
 * Monitors, pools and load balancers come from two sources: the YAML file
 * and the API's objects (cfg_json.h); from_api tells them apart. Objects
 * from the API have no source position (pos.line 0).
 */
#ifndef MERIDIAN_CFG_MODEL_H
#define MERIDIAN_CFG_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct core_arena;

/* A source position, kept for objects so later errors can point at them. */
typedef struct cfg_pos {
	const char *file;
	uint32_t line, col; /* 1-based */
} cfg_pos;

/* A listen address, "127.0.0.1:8080" or "[::1]:8080". */
typedef struct cfg_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	const char *text; /* as written */
} cfg_addr;

typedef struct cfg_header {
	const char *name;
	const char **values;
	size_t nvalues;
} cfg_header;

/* An IP prefix, "10.0.0.0/8" or "2001:db8::/32"; host bits are zero. */
typedef struct cfg_cidr {
	const char *text; /* as written */
	int family;	  /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network address; 4 bytes used for AF_INET */
	uint8_t prefix;	  /* prefix length in bits */
} cfg_cidr;

typedef enum cfg_monitor_type {
	CFG_MON_HTTP = 0,
	CFG_MON_HTTPS,
	CFG_MON_TCP,
	CFG_MON_SMTP,
} cfg_monitor_type;

typedef struct cfg_monitor {
	cfg_pos pos;
	/* Created through the API (cfg_load_merged), not in the file; the
	 * API edits only these. */
	bool from_api;
	const char *id;
	const char *description;
	cfg_monitor_type type;
	const char *method; /* default GET */
	const char *path;   /* default "/" */
	cfg_header *headers;
	size_t nheaders;
	uint16_t port;		    /* 0: the origin's port */
	uint32_t timeout_ms;	    /* default 5000 */
	uint32_t retries;	    /* default 2 */
	uint32_t interval_ms;	    /* default 60000, minimum 1000 */
	const char *expected_codes; /* default "200" */
	const char *expected_body;  /* NULL: not checked */
	bool follow_redirects;
	bool allow_insecure;
	uint32_t consecutive_up;   /* default 1 */
	uint32_t consecutive_down; /* default 1 */
} cfg_monitor;

/* Meridian extension: how a pool's origins are reached over TLS
 * (pools[].origin_tls). */
typedef struct cfg_origin_tls {
	bool enabled;	     /* every origin of the pool speaks TLS */
	const char *ca;	     /* PEM CA file; NULL: the system store */
	bool allow_insecure; /* no certificate or name verification */
	const char *sni;     /* NULL: the origin's rule (cfg_origin.sni) */
} cfg_origin_tls;

typedef struct cfg_origin {
	cfg_pos pos;
	const char *name;
	const char *address; /* IP literal or hostname */
	uint16_t port;	     /* default 80 */
	double weight;	     /* 0..1, default 1 */
	bool enabled;	     /* default true */
	cfg_header *headers; /* e.g. Host override */
	size_t nheaders;
	bool tls_on; /* `tls: true` as written (see tls below) */
	/* Reached over TLS (an https:// address, `tls: true` or the pool's
	 * origin_tls.enabled): the pool's settings; NULL: plain HTTP. */
	const cfg_origin_tls *tls;
	/* TLS: the name sent as SNI and verified in the certificate: the
	 * pool's origin_tls.sni, else the Host header override, else the
	 * origin name if it is a host name, else the address if it is one;
	 * NULL (an IP origin): no SNI, the certificate is checked against
	 * the IP address. */
	const char *sni;
	/* The host name when address is one (without https:// or brackets);
	 * NULL for an IP literal. The edge's resolver re-resolves it. */
	const char *host;
	/* The address connect() uses: the IP literal, or the host name's
	 * address from cfg_resolve (resolved when first met, then refreshed
	 * every edge.resolve_interval). */
	struct sockaddr_storage ss;
	socklen_t sslen;
	uint32_t
	    index; /* index in cfg_snapshot.origins (all pools flattened) */
	/* `address: tunnel:ID`: the tunnel the origin is reached through
	 * (ss is then the AF_UNIX address of the edge's bridge to it,
	 * tun_edge.h); NULL for an origin reached over the network. */
	const struct cfg_tunnel *tunnel;
} cfg_origin;

typedef enum cfg_origin_steering {
	CFG_OSTEER_RANDOM = 0,
	CFG_OSTEER_HASH,
	CFG_OSTEER_LEAST_OUTSTANDING,
	CFG_OSTEER_LEAST_CONNECTIONS,
} cfg_origin_steering;

typedef enum cfg_shed_policy {
	CFG_SHED_RANDOM = 0,
	CFG_SHED_HASH,
} cfg_shed_policy;

/* Cloudflare's pool load_shedding. */
typedef struct cfg_load_shedding {
	double default_percent;		/* 0..100, default 0 */
	cfg_shed_policy default_policy; /* default random */
	double session_percent;		/* 0..100, default 0 */
	cfg_shed_policy session_policy; /* hash only */
} cfg_load_shedding;

/* Which health changes of a pool (or its origins) are notified. */
typedef struct cfg_notify_filter {
	bool disable;	/* no notifications at all */
	int8_t healthy; /* -1 (null): every change; 1: only to healthy;
			 * 0: only to unhealthy */
} cfg_notify_filter;

typedef struct cfg_notification_filter {
	cfg_notify_filter origin, pool;
} cfg_notification_filter;

typedef struct cfg_pool {
	cfg_pos pos;
	bool from_api; /* created through the API (see cfg_monitor) */
	const char *id;
	const char *name; /* default: id */
	const char *description;
	bool enabled; /* default true */
	cfg_origin *origins;
	size_t norigins;
	uint32_t minimum_origins;   /* default 1 */
	const cfg_monitor *monitor; /* NULL: no monitor (pool counts healthy) */
	const char **check_regions;
	size_t ncheck_regions;
	double latitude, longitude;
	bool has_location;
	cfg_origin_steering origin_steering;
	/* load_shedding: applied by lb_steer_pool (lb_steer.h);
	 * notification_filter: by the notifier (notify_filter_pass). */
	uint32_t index; /* index in cfg_snapshot.pools */
	cfg_load_shedding load_shedding;
	cfg_notification_filter notification_filter;
	cfg_origin_tls origin_tls;
} cfg_pool;

typedef enum cfg_steering {
	CFG_STEER_DEFAULT = 0, /* "": geo if any geo map is set, else off */
	CFG_STEER_OFF,
	CFG_STEER_RANDOM,
	CFG_STEER_GEO,
	CFG_STEER_DYNAMIC_LATENCY,
	CFG_STEER_PROXIMITY,
	CFG_STEER_LEAST_OUTSTANDING,
	CFG_STEER_LEAST_CONNECTIONS,
} cfg_steering;

typedef enum cfg_affinity {
	CFG_AFF_NONE = 0,
	CFG_AFF_COOKIE,
	CFG_AFF_IP_COOKIE,
	CFG_AFF_HEADER,
} cfg_affinity;

/* A region/country/pop key mapped to an ordered list of pools. */
typedef struct cfg_pool_map {
	const char *key;
	const cfg_pool **pools;
	size_t npools;
} cfg_pool_map;

/* random_steering.pool_weights: one entry per pool named. */
typedef struct cfg_pool_weight {
	const char *key; /* pool id as written */
	const cfg_pool *pool;
	double weight; /* 0..1 */
} cfg_pool_weight;

typedef enum cfg_loc_mode {
	CFG_LOC_POP = 0,
	CFG_LOC_RESOLVER_IP,
} cfg_loc_mode;

typedef enum cfg_prefer_ecs {
	CFG_ECS_ALWAYS = 0,
	CFG_ECS_NEVER,
	CFG_ECS_PROXIMITY,
	CFG_ECS_GEO,
} cfg_prefer_ecs;

typedef struct cfg_location_strategy {
	cfg_loc_mode mode;	   /* default pop */
	cfg_prefer_ecs prefer_ecs; /* default proximity */
} cfg_location_strategy;

typedef enum cfg_samesite {
	CFG_SAMESITE_AUTO = 0,
	CFG_SAMESITE_LAX,
	CFG_SAMESITE_NONE,
	CFG_SAMESITE_STRICT,
} cfg_samesite;

typedef enum cfg_secure {
	CFG_SECURE_AUTO = 0,
	CFG_SECURE_ALWAYS,
	CFG_SECURE_NEVER,
} cfg_secure;

typedef enum cfg_zdt_failover {
	CFG_ZDT_NONE = 0,
	CFG_ZDT_TEMPORARY,
	CFG_ZDT_STICKY,
} cfg_zdt_failover;

typedef struct cfg_affinity_attrs {
	cfg_samesite samesite;	 /* default Auto */
	cfg_secure secure;	 /* default Auto */
	uint32_t drain_duration; /* seconds, default 0 */
	const char **headers;	 /* session_affinity: header */
	size_t nheaders;
	bool require_all_headers;
	cfg_zdt_failover zero_downtime_failover; /* default none */
} cfg_affinity_attrs;

typedef struct cfg_lb {
	cfg_pos pos;
	bool from_api;	  /* created through the API (see cfg_monitor) */
	const char *id;	  /* default: name */
	const char *name; /* hostname, exact or "*.example.com" */
	const char *description;
	bool enabled; /* default true */
	bool proxied; /* default true */
	/* Meridian's own: plain-HTTP requests are answered 301/308 to
	 * https:// (not ACME http-01 challenges); needs edge.listen.https. */
	bool https_redirect;
	/* Meridian's own: Strict-Transport-Security (RFC 6797) on every
	 * response over TLS; the edge's value replaces an origin's. The
	 * field value is built once (cfg_finish_lb); NULL when off. */
	bool hsts_enabled;
	uint32_t hsts_max_age; /* seconds */
	bool hsts_include_subdomains, hsts_preload;
	const char
	    *hsts_value; /* "max-age=N[; includeSubDomains][; preload]" */
	uint32_t hsts_value_len;
	uint32_t ttl; /* default 30 */
	const cfg_pool **default_pools;
	size_t ndefault_pools;
	const cfg_pool *fallback_pool; /* NULL: none */
	cfg_pool_map *region_pools, *country_pools, *pop_pools;
	size_t nregion_pools, ncountry_pools, npop_pools;
	cfg_steering steering_policy;
	double random_default_weight; /* random_steering.default_weight, default
					 1 */
	cfg_pool_map
	    *random_pool_weights; /* unused npools; weight in key order */
	bool failover_across_pools;
	cfg_affinity session_affinity;
	uint32_t session_affinity_ttl; /* seconds, default 82800 */
	/* random_steering.pool_weights. random_pool_weights above is filled
	 * too (same order, key = pool id, pools = &pool_weights[i].pool,
	 * npools = 1) and has nrandom_pool_weights entries. */
	cfg_pool_weight *pool_weights;
	size_t npool_weights;
	size_t nrandom_pool_weights;
	cfg_location_strategy location_strategy;
	cfg_affinity_attrs session_affinity_attributes;
	/* rules[] as written (the API shows them so); rule_order holds the
	 * enabled ones in evaluation order (priority, then as written). */
	struct cfg_lb_rule *rules;
	size_t nrules;
	const struct cfg_lb_rule **rule_order;
	size_t nrule_order;
	uint32_t rule_fields; /* lb_expr fields the rules read, as bits */
} cfg_lb;

/* A rule's fixed_response: the edge answers instead of an origin. */
typedef struct cfg_lb_fixed {
	uint32_t status_code; /* default 200 */
	const char *message_body, *content_type, *location;
} cfg_lb_fixed;

/* Which load balancer fields a rule's overrides give. */
typedef struct cfg_lb_overridden {
	bool default_pools, fallback_pool, region_pools, country_pools,
	    pop_pools, steering_policy, random_steering, adaptive_routing,
	    location_strategy, session_affinity, session_affinity_ttl,
	    session_affinity_attributes, ttl;
} cfg_lb_overridden;

/* A load balancer rule (Cloudflare's rules[]): when its condition holds,
 * its fixed_response answers, or its overrides replace fields of the load
 * balancer for this request (later matching rules win per field) until a
 * rule that terminates. */
typedef struct cfg_lb_rule {
	cfg_pos pos;
	const char *name;
	const char *condition; /* NULL or "": always true */
	bool disabled;
	bool terminates; /* as written; a fixed_response stops rules too */
	uint32_t priority;
	bool has_priority;
	bool has_fixed_response, has_overrides;
	cfg_lb_fixed fixed_response;
	cfg_lb_overridden has;
	cfg_lb ov; /* the overrides; only fields named in `has` are set */
	/* Computed once every pool is known (cfg_load): */
	const struct lb_expr *expr; /* NULL: always true */
	const cfg_lb *eff;	    /* the load balancer with these overrides */
	uint32_t index;		    /* in rules[] as written */
	/* Shown as "#index" in metrics and logs, though it has a name: one
	 * another rule of the load balancer shares, or of that form. */
	bool name_shared;
} cfg_lb_rule;

/* Edge limits and timeouts (Meridian's own). */
typedef struct cfg_limits {
	uint32_t max_header_bytes; /* default 16384 (431 beyond) */
	uint32_t max_headers;	   /* default 100 (431 beyond) */
	uint32_t max_connections;  /* per edge, default 65536 (503 beyond) */
	/* Per client network (sec_conns.h); 0: no limit. */
	uint32_t max_connections_per_client;
	uint64_t max_body_bytes;	   /* 0 = unlimited (413 beyond) */
	uint32_t upstream_idle_per_origin; /* per worker, default 128 */
	/* Kept health-check connections; 0: a quarter of RLIMIT_NOFILE. */
	uint32_t health_connections;
	uint64_t dns_receive_buffer; /* SO_RCVBUF of DNS UDP; 0: the system's */
} cfg_limits;

typedef struct cfg_timeouts {
	uint32_t client_header_ms; /* default 10000 -> 408 */
	uint32_t client_idle_ms;   /* keep-alive idle, default 60000 -> close */
	uint32_t client_body_ms; /* between body reads, default 60000 -> 408 */
	uint32_t upstream_connect_ms;  /* default 5000 -> 502/504 */
	uint32_t upstream_response_ms; /* first response byte, default 60000 ->
					  504 */
	uint32_t
	    upstream_idle_ms; /* idle pooled upstream conn, default 30000 */
	uint32_t drain_ms;    /* SIGTERM drain bound, default 10000 */
} cfg_timeouts;

typedef struct cfg_tls_cert {
	cfg_pos pos;
	const char *cert; /* PEM file, as written */
	const char *key;
} cfg_tls_cert;

typedef enum cfg_tls_version {
	CFG_TLS_1_2 = 0,
	CFG_TLS_1_3,
} cfg_tls_version;

typedef struct cfg_tls {
	cfg_tls_cert *certificates;
	size_t ncertificates;
	const char *default_name;    /* NULL: the first certificate's names */
	bool sni_required;	     /* no SNI match: fail, not default */
	cfg_tls_version min_version; /* default 1.2 */
	bool session_tickets;	     /* default true */
	bool http2;		     /* ALPN h2, default true */
	uint32_t ticket_rotation_ms; /* ticket key lifetime, default 1h */
} cfg_tls;

/* Passive health (Meridian's own): live-traffic failures eject an origin. */
typedef struct cfg_passive_health {
	uint32_t failures;    /* consecutive failures to eject; 0: off */
	uint32_t ejection_ms; /* first ejection; doubles each time */
	uint32_t max_ejection_ms;
} cfg_passive_health;

/* Response rate limiting of UDP DNS answers (dns_rrl.h). */
typedef struct cfg_dns_rate_limit {
	uint32_t
	    responses_per_second;    /* per client network and answer; 0 off */
	uint32_t slip;		     /* every slip-th limited one truncated */
	uint32_t ipv4_prefix_length; /* default 24 */
	uint32_t ipv6_prefix_length; /* default 56 */
	cfg_cidr *exempt_networks;   /* never limited */
	size_t nexempt_networks;
} cfg_dns_rate_limit;

/* Retries (zero-downtime failover and beyond). */
typedef struct cfg_retries {
	uint32_t attempts;	 /* extra origins tried per request */
	bool on_5xx;		 /* retry idempotent requests on 502/503 */
	uint32_t budget_percent; /* retries allowed, % of requests */
} cfg_retries;

/* The JSON access log (edge_alog.h). */
typedef struct cfg_access_log {
	const char *path; /* NULL: off; "-": standard output */
	uint64_t buffer;  /* bytes of lines queued per worker */
} cfg_access_log;

/* Cluster mode (SPEC §4.9, src/cluster/): etcd shares the API's objects
 * and the edges' health reports. netcd == 0: off. */
typedef struct cfg_cluster {
	const char **etcd; /* http:// or https:// endpoints */
	size_t netcd;
	const char *prefix;    /* keys live under it; no trailing / */
	uint32_t lease_ttl_ms; /* liveness of this node's keys */
} cfg_cluster;

typedef struct cfg_edge {
	cfg_pos pos;
	const char *name; /* PoP id, default "meridian" */
	/* Meridian's own: the request id field ("X-Request-Id"), NULL: off. */
	const char *request_id_header;
	uint32_t request_id_header_len;
	/* Keys the affinity cookies; NULL: derived from name. */
	const char *affinity_secret;
	const char *region;
	double latitude, longitude;
	bool has_location;
	uint32_t workers; /* 0: one per core */
	const char **public_addresses;
	size_t npublic_addresses;
	const char *store;
	cfg_addr *listen_http;
	size_t nlisten_http;
	cfg_addr *listen_https;
	size_t nlisten_https;
	/* The first https listener's port, where https_redirect sends
	 * clients (computed; 0: no https listener). */
	uint16_t https_port;
	cfg_addr *listen_dns;
	size_t nlisten_dns;
	cfg_addr listen_admin;
	bool has_admin;
	bool listen_proxy_protocol;   /* PROXY v1/v2 on every listener */
	bool io_uring;		      /* default true: where there is a path */
	uint32_t resolve_interval_ms; /* origin host names; 0: never again */
	cfg_limits limits;
	cfg_timeouts timeouts;
	cfg_passive_health passive_health;
	cfg_dns_rate_limit dns_rate_limit;
	cfg_retries retries;
	cfg_access_log access_log;
	cfg_cluster cluster;
	cfg_addr *listen_tunnel;
	size_t nlisten_tunnel;
	cfg_tls tls;
} cfg_edge;

typedef enum cfg_token_scope {
	CFG_SCOPE_READ = 0,
	CFG_SCOPE_EDIT,
} cfg_token_scope;

typedef struct cfg_api_token {
	cfg_pos pos;
	const char *token; /* after ${VAR} substitution; never log it */
	cfg_token_scope scope;
} cfg_api_token;

typedef struct cfg_api {
	const char *account_id; /* default "default" */
	cfg_api_token *tokens;
	size_t ntokens;
} cfg_api;

typedef enum cfg_rr_type {
	CFG_RR_NONE = 0, /* never in a loaded snapshot */
	CFG_RR_A,
	CFG_RR_AAAA,
	CFG_RR_CNAME,
	CFG_RR_TXT,
	CFG_RR_MX,
	CFG_RR_NS,
	CFG_RR_SRV,
	CFG_RR_CAA,
	CFG_RR_SOA,
} cfg_rr_type;

typedef struct cfg_record {
	cfg_pos pos;
	const char *name; /* fully qualified, lowercase; "@" becomes the zone */
	cfg_rr_type type;
	const char *content;
	uint32_t ttl;	   /* seconds, default 300 */
	uint16_t priority; /* MX and SRV, default 0 */
} cfg_record;

typedef struct cfg_zone {
	cfg_pos pos;
	const char *name; /* lowercase, no trailing dot */
	cfg_record *records;
	size_t nrecords;
} cfg_zone;

/* geo.networks: a CIDR override of the client's location. */
typedef struct cfg_geo_network {
	cfg_cidr cidr;
	const char *region;  /* NULL: derived from country */
	const char *country; /* ISO 3166 alpha-2, or NULL */
} cfg_geo_network;

typedef struct cfg_geo {
	cfg_pos pos;	      /* of the geo section, for errors */
	const char *database; /* MaxMind DB file, or NULL */
	cfg_geo_network *networks;
	size_t nnetworks;
	cfg_cidr *trusted_proxies;
	size_t ntrusted_proxies;
} cfg_geo;

typedef struct cfg_email {
	const char *smtp_url; /* smtp:// or smtps:// */
	const char *from;
	const char **to;
	size_t nto;
} cfg_email;

typedef struct cfg_webhook {
	cfg_pos pos;
	const char *url;
	const char *secret; /* NULL: unsigned */
} cfg_webhook;

typedef struct cfg_notifications {
	cfg_email email;
	bool has_email;
	cfg_webhook *webhooks;
	size_t nwebhooks;
	uint32_t debounce_ms; /* default 10000 */
} cfg_notifications;

/* A rate limit (top-level rate_limits[]): requests whose expression
 * holds are counted per key (the values of the characteristics); beyond
 * requests_per_period per period (with burst) the edge answers them itself
 * (action block) or marks them in the access log (log). */
typedef enum cfg_rl_action { CFG_RL_BLOCK = 0, CFG_RL_LOG } cfg_rl_action;

typedef struct cfg_rl_response {
	uint32_t status_code; /* default 429 */
	const char *content_type, *content;
} cfg_rl_response;

typedef struct cfg_rate_limit {
	cfg_pos pos;
	const char *name;
	const char *expression; /* NULL or "": every request */
	/* NULL or "": every request counts when it arrives; else it
	 * counts when its response satisfies this (http.response.code),
	 * and arriving only checks the bucket. */
	const char *counting_expression;
	bool disabled;
	cfg_rl_action action;
	const char **characteristics;
	size_t ncharacteristics;
	uint32_t requests_per_period;
	uint32_t period_ms;
	uint32_t burst; /* 0: requests_per_period */
	uint32_t mitigation_timeout_ms;
	uint32_t max_keys;
	uint32_t ipv4_prefix_length, ipv6_prefix_length;
	bool has_response;
	cfg_rl_response response;
	/* Computed at load (cfg_finish_rate_limit): */
	const struct lb_expr *expr;	/* NULL: always */
	const struct lb_expr *counting; /* NULL: count on arrival */
	struct lb_expr_ref *refs;	/* the characteristics, parsed */
	size_t nrefs;
	uint32_t index; /* in rate_limits[] */
} cfg_rate_limit;

/* A firewall rule (waf.custom_rules[]): when its expression holds, the
 * edge blocks the request, logs it, or lets it skip the later rules and
 * the rate limits. */
typedef enum cfg_waf_action {
	CFG_WAF_BLOCK = 0,
	CFG_WAF_LOG,
	CFG_WAF_SKIP
} cfg_waf_action;

typedef struct cfg_waf_rule {
	cfg_pos pos;
	const char *name;
	const char *expression;
	cfg_waf_action action;
	bool disabled;
	bool has_response;
	cfg_rl_response response; /* default status 403 */
	/* Computed at load: */
	const struct lb_expr *expr;
	uint32_t index;
} cfg_waf_rule;

/* The managed rules (waf.managed): the OWASP Core Rule Set run by the
 * ModSecurity v3 engine (waf_engine.h) on proxied requests. */
typedef enum cfg_waf_mode {
	CFG_WAF_MODE_BLOCK = 0, /* SecRuleEngine On */
	CFG_WAF_MODE_DETECT	/* SecRuleEngine DetectionOnly */
} cfg_waf_mode;

/* Where Debian's modsecurity-crs puts the rules (waf.managed.crs). */
#define CFG_WAF_CRS_DEFAULT "/usr/share/modsecurity-crs"

typedef struct cfg_waf_managed {
	cfg_pos pos;
	bool enabled;
	cfg_waf_mode mode;
	uint32_t paranoia_level;    /* CRS tx.paranoia_level, 1..4 */
	uint32_t anomaly_threshold; /* CRS inbound anomaly score threshold */
	const char *crs;	    /* the CRS directory (rules/ in it) */
	uint64_t body_limit;	    /* request body bytes inspected */
	uint32_t *disabled_rules;   /* SecRuleRemoveById */
	size_t ndisabled_rules;
	const char **setup_files; /* ModSecurity files loaded before CRS */
	size_t nsetup_files;
	const char **rules_files; /* ModSecurity files loaded after CRS */
	size_t nrules_files;
} cfg_waf_managed;

typedef struct cfg_waf {
	cfg_waf_rule *custom_rules;
	size_t ncustom_rules;
	uint32_t fields; /* lb_expr fields the rules read */
	cfg_waf_managed managed;
} cfg_waf;

/* A tunnel connectors may join (`tunnels[]`, SPEC 4.7). */
typedef struct cfg_tunnel {
	cfg_pos pos;
	const char *id;	   /* [A-Za-z0-9._-], 1..63 */
	const char *token; /* the connectors' bearer token, >= 32 chars */
	const char *description;
} cfg_tunnel;

typedef struct cfg_snapshot {
	struct core_arena *arena; /* owns everything below */
	const char *file;
	cfg_edge edge;
	cfg_monitor *monitors;
	size_t nmonitors;
	cfg_pool *pools;
	size_t npools;
	cfg_lb *lbs;
	size_t nlbs;
	cfg_origin *
	    *origins; /* all origins of all pools, by cfg_origin.index */
	size_t norigins;
	cfg_api api;
	cfg_zone *zones;
	size_t nzones;
	cfg_waf waf;
	cfg_rate_limit *rate_limits;
	size_t nrate_limits;
	cfg_tunnel *tunnels;
	size_t ntunnels;
	/* lb_expr fields the rate limits read (expressions and
	 * characteristics), as bits: what a request must provide. */
	uint32_t rl_fields;
	cfg_geo geo;
	cfg_notifications notifications;
} cfg_snapshot;

#endif
