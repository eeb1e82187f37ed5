/* cfg_model.h - the configuration object model (SPEC §2-3).
 *
 * A cfg_snapshot is immutable once built: every string and array in it lives
 * in the snapshot's arena and is freed at once by cfg_snapshot_free(). Workers
 * read it without locks. Cross references (a load balancer's pools, a pool's
 * monitor) are resolved to pointers at load time, so the data plane never
 * looks anything up by name.
 *
 * Durations are stored in milliseconds. Field names follow Cloudflare's.
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

typedef enum cfg_monitor_type {
	CFG_MON_HTTP = 0,
	CFG_MON_HTTPS,
	CFG_MON_TCP,
	CFG_MON_SMTP,
} cfg_monitor_type;

typedef struct cfg_monitor {
	cfg_pos pos;
	const char *id;
	const char *description;
	cfg_monitor_type type;
	const char *method; /* default GET */
	const char *path;   /* default "/" */
	cfg_header *headers;
	size_t nheaders;
	uint16_t port;        /* 0: the origin's port */
	uint32_t timeout_ms;  /* default 5000 */
	uint32_t retries;     /* default 2 */
	uint32_t interval_ms; /* default 60000, minimum 1000 */
	const char *expected_codes; /* default "200" */
	const char *expected_body;  /* NULL: not checked */
	bool follow_redirects;
	bool allow_insecure;
	uint32_t consecutive_up;   /* default 1 */
	uint32_t consecutive_down; /* default 1 */
} cfg_monitor;

typedef struct cfg_origin {
	cfg_pos pos;
	const char *name;
	const char *address; /* IP literal or hostname */
	uint16_t port;       /* default 80 */
	double weight;       /* 0..1, default 1 */
	bool enabled;        /* default true */
	cfg_header *headers; /* e.g. Host override */
	size_t nheaders;
	/* Resolved at load time when address is an IP literal (or resolved once
	 * by getaddrinfo at load); connect() uses this. */
	struct sockaddr_storage ss;
	socklen_t sslen;
	uint32_t index; /* index in cfg_snapshot.origins (all pools flattened) */
} cfg_origin;

typedef enum cfg_origin_steering {
	CFG_OSTEER_RANDOM = 0,
	CFG_OSTEER_HASH,
	CFG_OSTEER_LEAST_OUTSTANDING,
	CFG_OSTEER_LEAST_CONNECTIONS,
} cfg_origin_steering;

typedef struct cfg_pool {
	cfg_pos pos;
	const char *id;
	const char *name; /* default: id */
	const char *description;
	bool enabled; /* default true */
	cfg_origin *origins;
	size_t norigins;
	uint32_t minimum_origins; /* default 1 */
	const cfg_monitor *monitor; /* NULL: no monitor (pool counts healthy) */
	const char **check_regions;
	size_t ncheck_regions;
	double latitude, longitude;
	bool has_location;
	cfg_origin_steering origin_steering;
	/* load_shedding and notification_filter are parsed and kept raw for
	 * later issues. */
	uint32_t index; /* index in cfg_snapshot.pools */
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

typedef struct cfg_lb {
	cfg_pos pos;
	const char *id;   /* default: name */
	const char *name; /* hostname, exact or "*.example.com" */
	const char *description;
	bool enabled; /* default true */
	bool proxied; /* default true */
	uint32_t ttl; /* default 30 */
	const cfg_pool **default_pools;
	size_t ndefault_pools;
	const cfg_pool *fallback_pool; /* NULL: none */
	cfg_pool_map *region_pools, *country_pools, *pop_pools;
	size_t nregion_pools, ncountry_pools, npop_pools;
	cfg_steering steering_policy;
	double random_default_weight; /* random_steering.default_weight, default 1 */
	cfg_pool_map *random_pool_weights; /* unused npools; weight in key order */
	bool failover_across_pools;
	cfg_affinity session_affinity;
	uint32_t session_affinity_ttl; /* seconds, default 82800 */
} cfg_lb;

/* Edge limits and timeouts (Meridian's own). */
typedef struct cfg_limits {
	uint32_t max_header_bytes;     /* default 16384 (431 beyond) */
	uint32_t max_headers;          /* default 100 (431 beyond) */
	uint32_t max_connections;      /* per edge, default 65536 (503 beyond) */
	uint64_t max_body_bytes;       /* 0 = unlimited (413 beyond) */
	uint32_t upstream_idle_per_origin; /* per worker, default 32 */
} cfg_limits;

typedef struct cfg_timeouts {
	uint32_t client_header_ms;    /* default 10000 -> 408 */
	uint32_t client_idle_ms;      /* keep-alive idle, default 60000 -> close */
	uint32_t client_body_ms;      /* between body reads, default 60000 -> 408 */
	uint32_t upstream_connect_ms; /* default 5000 -> 502/504 */
	uint32_t upstream_response_ms; /* first response byte, default 60000 -> 504 */
	uint32_t upstream_idle_ms;    /* idle pooled upstream conn, default 30000 */
	uint32_t drain_ms;            /* SIGTERM drain bound, default 10000 */
} cfg_timeouts;

typedef struct cfg_edge {
	cfg_pos pos;
	const char *name; /* PoP id, default "meridian" */
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
	cfg_addr *listen_dns;
	size_t nlisten_dns;
	cfg_addr listen_admin;
	bool has_admin;
	cfg_limits limits;
	cfg_timeouts timeouts;
} cfg_edge;

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
	cfg_origin **origins; /* all origins of all pools, by cfg_origin.index */
	size_t norigins;
} cfg_snapshot;

#endif
