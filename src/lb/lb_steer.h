/* lb_steer.h - pool and origin steering, pure (no I/O, no allocation).
 *
 * Cloudflare Load Balancing's steering_policy and origin_steering, computed
 * from the configuration and the live lb_origin_state. The caller (proxy,
 * DNS) fills an lb_steer_ctx per request and calls lb_steer_pool() then
 * lb_steer_origin(); on a failed attempt it adds the origin to `tried` (and,
 * with adaptive_routing.failover_across_pools, the pool to `skip_pools`) and
 * calls again. Given the same inputs and rng seed the answers are the same.
 *
 * Eligibility
 *   An origin is usable when it is enabled, has weight > 0 and is routable
 *   (lb_origin_routable: not actively unhealthy, not ejected at now_ms).
 *   A pool is eligible when it is enabled, at least minimum_origins of its
 *   enabled origins are routable (the pool's health threshold) and at least
 *   one origin is usable.
 *
 * Pool choice (lb_steer_pool), per steering_policy:
 *   off        first eligible pool of default_pools (failover order).
 *   random     weighted random among eligible default_pools; a pool's weight
 *              is its random_steering.pool_weights entry, else
 *              random_steering.default_weight. When every eligible pool has
 *              weight 0, failover order.
 *   geo        ONE list is chosen, the first that is configured and not
 *              empty: pop_pools[edge name], country_pools[client country],
 *              region_pools[client region (else the edge's region)],
 *              default_pools; the first eligible pool of that list wins
 *              (failover order). Like Cloudflare, an all-unhealthy geo list
 *              does not cascade to the next map: it goes to the fallback.
 *   dynamic_latency
 *              the eligible default pool with the lowest RTT, a pool's RTT
 *              being the average rtt_us of its routable origins that have a
 *              measurement (rtt_us > 0). Pools without any measurement rank
 *              after all measured ones, in failover order; with no data at
 *              all this is failover order. Ties: failover order.
 *   proximity  the eligible default pool nearest to the edge (great-circle
 *              distance, edge latitude/longitude to pool latitude/longitude);
 *              pools without coordinates rank after all located ones, in
 *              failover order; an edge without coordinates gives failover
 *              order. Proxied traffic is located by the edge (the PoP), as
 *              Cloudflare does; DNS-only answers may set ctx->has_point
 *              to the client's coordinates (location_strategy,
 *              lb_locate.h).
 *   least_outstanding_requests / least_connections
 *              weighted random among eligible default_pools with
 *                  effective weight = weight / (1 + in_flight)
 *              where weight is the random_steering weight above and
 *              in_flight the sum of `outstanding` (resp. `connections`) over
 *              the pool's enabled origins. An idle pool keeps its full
 *              weight; a busy one is scaled down, never to zero. When every
 *              eligible pool has weight 0, failover order.
 *   "" (CFG_STEER_DEFAULT)
 *              geo when any of pop/country/region_pools is set, else off.
 *   Nothing eligible: the fallback_pool when it is enabled (healthy or not:
 *   like Cloudflare, traffic goes to the fallback regardless of its health)
 *   and not in skip_pools; else NULL.
 *
 * Load shedding (pools[].load_shedding, lb_steer_pool_sheds): when the
 *   policy picks a pool, that pool sheds default_percent of the requests
 *   (new traffic: everything but an affinity session kept by
 *   lb_affinity_check) to the pool the same policy picks with it passed
 *   over: the next in failover order for off, geo and the order fallbacks,
 *   a new weighted draw for the random ones, the next best for
 *   dynamic_latency and proximity. That pool may shed in turn (at most
 *   LB_STEER_MAX_SHED pools shed one request; the next one keeps it).
 *   default_policy random sheds each request with that probability (the
 *   worker's rng; without one, as hash); hash sheds every request of a
 *   share of client IPs: the client IP hashed with the pool id, so a
 *   client is shed by a pool always or never, on every edge, and
 *   independently of other pools. When no other pool is eligible, a shed
 *   request stays in the (last) pool that shed it, not the fallback:
 *   shedding moves traffic, it never refuses it. A fallback chosen because
 *   nothing is eligible sheds nothing.
 *   session_percent: lb_affinity_check hands that share of a pool's
 *   existing sessions back (LB_AFF_SHED), always by client IP hash
 *   (Cloudflare's only session_policy), and the proxy re-steers them with
 *   lb_steer_pool_away(..., their pool). Session affinity "header" keeps
 *   no session state: its requests are new traffic to shedding. DNS
 *   answers go through lb_steer_pool and shed the same way (by the
 *   client's subnet or resolver address for hash).
 *
 * Fallback origins (lb_steer_pool_any_health): when the pool is
 *   ctx->lb's fallback_pool and none of its origins is usable, its origins
 *   are taken whatever their health: the candidates are its enabled origins
 *   with weight > 0, actively unhealthy and passively ejected alike, so a
 *   request sent to the fallback reaches an origin instead of failing
 *   for want of one. Ejected ones too: an ejection is a short backoff
 *   after live failures, no surer than a failing monitor, and the only
 *   alternative is a certain 503; a failed attempt moves on through
 *   `tried` like any other. The proxy (through lb_steer_origin*) and the
 *   DNS answers (lb_steer_origin_choosable) share this rule.
 *
 * Origin choice (lb_steer_origin), per the pool's origin_steering, among the
 * usable origins (or, see above, a fallback's enabled ones) not in `tried`:
 *   random     weighted random by weight (0..1; weight 0 gets no traffic).
 *   hash       weighted rendezvous hashing (lb_hash) of the client IP with
 *              each origin's identity (pool id + origin name): the same
 *              client goes to the same origin on every edge and across
 *              restarts; when an origin leaves only its clients move.
 *   least_outstanding_requests / least_connections
 *              weighted random with weight / (1 + outstanding) (resp.
 *              connections) of the origin.
 *   NULL when no origin is left.
 *
 * Thread safety: reads the config (immutable) and the atomics of the state
 * arrays; writes only *ctx->rng. One rng per worker.
 */
#ifndef MERIDIAN_LB_STEER_H
#define MERIDIAN_LB_STEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/cfg_model.h"
#include "lb/lb_state.h"

/* The most pools that shed one request (load_shedding); the next pool the
 * policy picks keeps it. */
#define LB_STEER_MAX_SHED 8

typedef struct lb_steer_ctx {
	/* The load balancer steered: origins of its fallback_pool are taken
	 * whatever their health when none is usable (see above). NULL: no
	 * pool gets that rule. */
	const cfg_lb *lb;
	/* The edge answering (pop_pools key = edge->name, proximity origin =
	 * edge latitude/longitude, region when the client's is unknown).
	 * May be NULL. */
	const cfg_edge *edge;
	/* The client's location (geo_lookup): ISO 3166-1 alpha-2 country and
	 * Cloudflare region; NULL or "" when unknown. */
	const char *country;
	const char *region;
	/* The client's address, for origin_steering hash. May be NULL
	 * (every client then hashes alike). */
	const struct sockaddr *client;
	/* Live state indexed by cfg_origin.index (cfg_snapshot.norigins
	 * entries). NULL: every origin routable with no load (tests, tools). */
	const lb_origin_state *origins;
	uint64_t now_ms; /* monotonic, compared with ejected_until */
	/* Per-worker PRNG state for lb_rand(), non-zero. NULL: the random
	 * policies take the first candidate in order. */
	uint64_t *rng;
	/* Where proximity measures from when set (a DNS-only answer located
	 * by its client's coordinates, lb_locate.h); unset: the edge's
	 * latitude/longitude. */
	bool has_point;
	double lat, lon;
} lb_steer_ctx;

/* The policy actually applied: CFG_STEER_DEFAULT resolved to geo or off. */
cfg_steering lb_steer_policy(const cfg_lb *lb);

/* Whether the origin may take new traffic (enabled, weight > 0, routable). */
bool lb_steer_origin_usable(const cfg_origin *o, const lb_steer_ctx *ctx);

/* Whether the origins of pool p are taken whatever their health: p is
 * ctx->lb's fallback_pool and none of its origins is usable. */
bool lb_steer_pool_any_health(const cfg_pool *p, const lb_steer_ctx *ctx);

/* Whether origin o may be chosen: usable, or, with any_health (the value
 * of lb_steer_pool_any_health for its pool), enabled with weight > 0. */
bool lb_steer_origin_choosable(const cfg_origin *o, const lb_steer_ctx *ctx,
			       bool any_health);

/* Routable enabled origins of the pool (the count compared with
 * minimum_origins). */
uint32_t lb_steer_pool_healthy(const cfg_pool *p, const lb_steer_ctx *ctx);

/* Whether the pool is eligible for steering (see above). */
bool lb_steer_pool_eligible(const cfg_pool *p, const lb_steer_ctx *ctx);

/* The pool's RTT for dynamic_latency in microseconds (average over its
 * routable origins with rtt_us > 0); 0 when there is no data. */
uint32_t lb_steer_pool_rtt_us(const cfg_pool *p, const lb_steer_ctx *ctx);

/* The random_steering weight of a pool for this load balancer. */
double lb_steer_pool_weight(const cfg_lb *lb, const cfg_pool *p);

/* The pool list the geo policy uses for this context (never NULL when
 * npools is set; *npools 0 when there is none). */
const cfg_pool *const *
lb_steer_geo_pools(const cfg_lb *lb, const lb_steer_ctx *ctx, size_t *npools);

/* Great-circle distance in km between two points in degrees (haversine,
 * mean Earth radius 6371.0088 km). */
double lb_steer_distance_km(double lat1, double lon1, double lat2, double lon2);

/* The pool for this request, or NULL when no pool can take it. Pools whose
 * cfg_pool.index is in skip_pools[0..nskip) are passed over (failover
 * across pools). */
const cfg_pool *lb_steer_pool(const cfg_lb *lb, const lb_steer_ctx *ctx,
			      const uint32_t *skip_pools, size_t nskip);

/* Whether pool p sheds this request (see "Load shedding" above): new
 * traffic by default_percent / default_policy, or, with session, an
 * existing affinity session by session_percent (hash). */
bool lb_steer_pool_sheds(const cfg_pool *p, const lb_steer_ctx *ctx,
			 bool session);

/* lb_steer_pool for a request that pool `from` sheds (an affinity session
 * lb_affinity_check answered LB_AFF_SHED): `from` is passed over as if it
 * had shed it; when no other pool is eligible the request stays in
 * `from` (if eligible itself), else the fallback as usual. from NULL:
 * lb_steer_pool. */
const cfg_pool *lb_steer_pool_away(const cfg_lb *lb, const lb_steer_ctx *ctx,
				   const uint32_t *skip_pools, size_t nskip,
				   const cfg_pool *from);

/* The origin of pool p for this request by p->origin_steering, skipping
 * origins whose cfg_origin.index is in tried[0..ntried); NULL when none. */
const cfg_origin *lb_steer_origin(const cfg_pool *p, const lb_steer_ctx *ctx,
				  const uint32_t *tried, size_t ntried);

/* The same with an explicit policy (ip_cookie affinity picks its first
 * origin with CFG_OSTEER_HASH whatever the pool says). */
const cfg_origin *lb_steer_origin_by(const cfg_pool *p,
				     cfg_origin_steering policy,
				     const lb_steer_ctx *ctx,
				     const uint32_t *tried, size_t ntried);

/* Weighted rendezvous choice for an explicit 64-bit key (what "hash" does
 * with the client IP's key; header session affinity passes the key of its
 * header values, lb_affinity_header_key). Deterministic: no rng. */
const cfg_origin *lb_steer_origin_key(const cfg_pool *p, uint64_t key,
				      const lb_steer_ctx *ctx,
				      const uint32_t *tried, size_t ntried);

#endif
