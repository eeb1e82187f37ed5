/* lb_steer.c - see lb_steer.h. */
#include "lb/lb_steer.h"

#include <math.h>
#include <strings.h>

#include "lb/lb_hash.h"
#include "lb/lb_select.h"

static const lb_origin_state *state_of(const cfg_origin *o,
				       const lb_steer_ctx *ctx)
{
	return ctx && ctx->origins ? &ctx->origins[o->index] : NULL;
}

static bool origin_routable(const cfg_origin *o, const lb_steer_ctx *ctx)
{
	const lb_origin_state *s = state_of(o, ctx);
	return !s || lb_origin_routable(s, ctx->now_ms);
}

static int32_t load_of(const cfg_origin *o, const lb_steer_ctx *ctx,
		       bool connections)
{
	const lb_origin_state *s = state_of(o, ctx);
	if (!s)
		return 0;
	int32_t v = atomic_load_explicit(connections ? &s->connections
						     : &s->outstanding,
					 memory_order_relaxed);
	return v > 0 ? v : 0; /* racy decrements may dip below zero */
}

static bool in_list(uint32_t idx, const uint32_t *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == idx)
			return true;
	return false;
}

/* A uniform double in [0, 1) from 53 random bits. */
static double rand_unit(uint64_t *rng)
{
	return (double)(lb_rand(rng) >> 11) * (1.0 / 9007199254740992.0);
}

cfg_steering lb_steer_policy(const cfg_lb *lb)
{
	if (lb->steering_policy != CFG_STEER_DEFAULT)
		return lb->steering_policy;
	if (lb->npop_pools || lb->ncountry_pools || lb->nregion_pools)
		return CFG_STEER_GEO;
	return CFG_STEER_OFF;
}

bool lb_steer_origin_usable(const cfg_origin *o, const lb_steer_ctx *ctx)
{
	return o->enabled && o->weight > 0 && origin_routable(o, ctx);
}

bool lb_steer_pool_any_health(const cfg_pool *p, const lb_steer_ctx *ctx)
{
	if (!p || !ctx || !ctx->lb || p != ctx->lb->fallback_pool)
		return false;
	for (size_t i = 0; i < p->norigins; i++)
		if (lb_steer_origin_usable(&p->origins[i], ctx))
			return false;
	return true;
}

bool lb_steer_origin_choosable(const cfg_origin *o, const lb_steer_ctx *ctx,
			       bool any_health)
{
	if (any_health)
		return o->enabled && o->weight > 0;
	return lb_steer_origin_usable(o, ctx);
}

uint32_t lb_steer_pool_healthy(const cfg_pool *p, const lb_steer_ctx *ctx)
{
	uint32_t n = 0;
	for (size_t i = 0; i < p->norigins; i++) {
		const cfg_origin *o = &p->origins[i];
		if (o->enabled && origin_routable(o, ctx))
			n++;
	}
	return n;
}

bool lb_steer_pool_eligible(const cfg_pool *p, const lb_steer_ctx *ctx)
{
	if (!p || !p->enabled)
		return false;
	uint32_t healthy = 0;
	bool usable = false;
	for (size_t i = 0; i < p->norigins; i++) {
		const cfg_origin *o = &p->origins[i];
		if (!o->enabled || !origin_routable(o, ctx))
			continue;
		healthy++;
		if (o->weight > 0)
			usable = true;
	}
	return usable && healthy >= p->minimum_origins;
}

uint32_t lb_steer_pool_rtt_us(const cfg_pool *p, const lb_steer_ctx *ctx)
{
	uint64_t sum = 0, n = 0;
	if (!ctx || !ctx->origins)
		return 0;
	for (size_t i = 0; i < p->norigins; i++) {
		const cfg_origin *o = &p->origins[i];
		if (!o->enabled || !origin_routable(o, ctx))
			continue;
		uint32_t rtt = atomic_load_explicit(
		    &ctx->origins[o->index].rtt_us, memory_order_relaxed);
		if (rtt) {
			sum += rtt;
			n++;
		}
	}
	return n ? (uint32_t)(sum / n) : 0;
}

double lb_steer_pool_weight(const cfg_lb *lb, const cfg_pool *p)
{
	for (size_t i = 0; i < lb->npool_weights; i++)
		if (lb->pool_weights[i].pool == p)
			return lb->pool_weights[i].weight;
	return lb->random_default_weight;
}

static const cfg_pool_map *find_map(const cfg_pool_map *m, size_t n,
				    const char *key)
{
	if (!key || !*key)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (m[i].key && strcasecmp(m[i].key, key) == 0 && m[i].npools)
			return &m[i];
	return NULL;
}

const cfg_pool *const *
lb_steer_geo_pools(const cfg_lb *lb, const lb_steer_ctx *ctx, size_t *npools)
{
	const cfg_pool_map *m = NULL;
	const cfg_edge *edge = ctx ? ctx->edge : NULL;
	const char *region = ctx ? ctx->region : NULL;

	if (edge)
		m = find_map(lb->pop_pools, lb->npop_pools, edge->name);
	if (!m && ctx)
		m = find_map(lb->country_pools, lb->ncountry_pools,
			     ctx->country);
	if ((!region || !*region) && edge)
		region = edge->region;
	if (!m)
		m = find_map(lb->region_pools, lb->nregion_pools, region);
	if (m) {
		*npools = m->npools;
		return m->pools;
	}
	*npools = lb->ndefault_pools;
	return lb->default_pools;
}

double lb_steer_distance_km(double lat1, double lon1, double lat2, double lon2)
{
	const double rad = M_PI / 180.0;
	double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
	double s1 = sin(dlat / 2), s2 = sin(dlon / 2);
	double a = s1 * s1 + cos(lat1 * rad) * cos(lat2 * rad) * s2 * s2;
	if (a > 1)
		a = 1;
	return 2 * 6371.0088 * asin(sqrt(a));
}

/* The pools passed over for one request: the caller's skip list (failover
 * across pools, by index) and those that shed it (load_shedding). */
typedef struct pool_skip {
	const uint32_t *list;
	size_t n;
	const cfg_pool *shed[LB_STEER_MAX_SHED];
	size_t nshed;
} pool_skip;

static bool skipped(const cfg_pool *p, const pool_skip *sk)
{
	if (in_list(p->index, sk->list, sk->n))
		return true;
	for (size_t i = 0; i < sk->nshed; i++)
		if (sk->shed[i] == p)
			return true;
	return false;
}

/* A candidate pool: eligible and not skipped. */
static bool pool_candidate(const cfg_pool *p, const lb_steer_ctx *ctx,
			   const pool_skip *sk)
{
	return p && !skipped(p, sk) && lb_steer_pool_eligible(p, ctx);
}

static const cfg_pool *first_eligible(const cfg_pool *const *pools, size_t n,
				      const lb_steer_ctx *ctx,
				      const pool_skip *sk)
{
	for (size_t i = 0; i < n; i++)
		if (pool_candidate(pools[i], ctx, sk))
			return pools[i];
	return NULL;
}

/* in_flight: 0 none (random), 1 outstanding, 2 connections. */
static double pool_eff_weight(const cfg_lb *lb, const cfg_pool *p,
			      const lb_steer_ctx *ctx, int in_flight)
{
	double w = lb_steer_pool_weight(lb, p);
	if (!(w > 0))
		return 0;
	if (in_flight) {
		int64_t load = 0;
		for (size_t i = 0; i < p->norigins; i++)
			if (p->origins[i].enabled)
				load += load_of(&p->origins[i], ctx,
						in_flight == 2);
		w /= 1.0 + (double)load;
	}
	return w;
}

static const cfg_pool *weighted_pool(const cfg_lb *lb, const lb_steer_ctx *ctx,
				     const pool_skip *sk, int in_flight)
{
	const cfg_pool *const *pools = lb->default_pools;
	size_t n = lb->ndefault_pools;
	double total = 0;

	for (size_t i = 0; i < n; i++)
		if (pool_candidate(pools[i], ctx, sk))
			total += pool_eff_weight(lb, pools[i], ctx, in_flight);
	if (!(total > 0) || !ctx || !ctx->rng)
		return first_eligible(pools, n, ctx, sk);
	double r = rand_unit(ctx->rng) * total;
	const cfg_pool *last = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!pool_candidate(pools[i], ctx, sk))
			continue;
		double w = pool_eff_weight(lb, pools[i], ctx, in_flight);
		if (!(w > 0))
			continue;
		last = pools[i];
		if (r < w)
			return pools[i];
		r -= w;
	}
	return last; /* rounding */
}

static const cfg_pool *latency_pool(const cfg_lb *lb, const lb_steer_ctx *ctx,
				    const pool_skip *sk)
{
	const cfg_pool *best = NULL, *first = NULL;
	uint32_t best_rtt = 0;

	for (size_t i = 0; i < lb->ndefault_pools; i++) {
		const cfg_pool *p = lb->default_pools[i];
		if (!pool_candidate(p, ctx, sk))
			continue;
		if (!first)
			first = p;
		uint32_t rtt = lb_steer_pool_rtt_us(p, ctx);
		if (rtt && (!best || rtt < best_rtt)) {
			best = p;
			best_rtt = rtt;
		}
	}
	return best ? best : first;
}

static const cfg_pool *proximity_pool(const cfg_lb *lb, const lb_steer_ctx *ctx,
				      const pool_skip *sk)
{
	const cfg_edge *e = ctx ? ctx->edge : NULL;
	const cfg_pool *best = NULL, *first = NULL;
	double best_km = 0;
	/* From the client's point when the caller located it, else the edge. */
	bool located = ctx && ctx->has_point;
	double lat = located ? ctx->lat : e ? e->latitude : 0;
	double lon = located ? ctx->lon : e ? e->longitude : 0;
	located = located || (e && e->has_location);

	for (size_t i = 0; i < lb->ndefault_pools; i++) {
		const cfg_pool *p = lb->default_pools[i];
		if (!pool_candidate(p, ctx, sk))
			continue;
		if (!first)
			first = p;
		if (!located || !p->has_location)
			continue;
		double km =
		    lb_steer_distance_km(lat, lon, p->latitude, p->longitude);
		if (!best || km < best_km) {
			best = p;
			best_km = km;
		}
	}
	return best ? best : first;
}

/* A uniform number in [0, 1) that is the same for every request of one
 * client to one pool: the client IP hashed with the pool's id. */
static double client_unit(const cfg_pool *p, const lb_steer_ctx *ctx)
{
	uint64_t h = lb_hash_mix(lb_hash_sockaddr(ctx ? ctx->client : NULL),
				 lb_hash_str(0, p->id ? p->id : ""));
	return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

bool lb_steer_pool_sheds(const cfg_pool *p, const lb_steer_ctx *ctx,
			 bool session)
{
	const cfg_load_shedding *ls = &p->load_shedding;
	double pct = session ? ls->session_percent : ls->default_percent;
	if (!(pct > 0))
		return false;
	if (pct >= 100)
		return true;
	/* Sessions always by hash (Cloudflare: no exponential decay). */
	bool random = !session && ls->default_policy == CFG_SHED_RANDOM &&
		      ctx && ctx->rng;
	double u = random ? rand_unit(ctx->rng) : client_unit(p, ctx);
	return u * 100.0 < pct;
}

/* The pool the policy picks, passing over sk. */
static const cfg_pool *policy_pool(const cfg_lb *lb, const lb_steer_ctx *ctx,
				   const pool_skip *sk)
{
	const cfg_pool *const *list;
	size_t n;

	switch (lb_steer_policy(lb)) {
	case CFG_STEER_GEO:
		list = lb_steer_geo_pools(lb, ctx, &n);
		return first_eligible(list, n, ctx, sk);
	case CFG_STEER_RANDOM:
		return weighted_pool(lb, ctx, sk, 0);
	case CFG_STEER_LEAST_OUTSTANDING:
		return weighted_pool(lb, ctx, sk, 1);
	case CFG_STEER_LEAST_CONNECTIONS:
		return weighted_pool(lb, ctx, sk, 2);
	case CFG_STEER_DYNAMIC_LATENCY:
		return latency_pool(lb, ctx, sk);
	case CFG_STEER_PROXIMITY:
		return proximity_pool(lb, ctx, sk);
	case CFG_STEER_OFF:
	case CFG_STEER_DEFAULT:
	default:
		return first_eligible(lb->default_pools, lb->ndefault_pools,
				      ctx, sk);
	}
}

const cfg_pool *lb_steer_pool_away(const cfg_lb *lb, const lb_steer_ctx *ctx,
				   const uint32_t *skip_pools, size_t nskip,
				   const cfg_pool *from)
{
	pool_skip sk = {.list = skip_pools, .n = nskip};
	/* Where a shed request stays when no other pool takes it. */
	const cfg_pool *kept = NULL;

	if (from) {
		if (pool_candidate(from, ctx, &sk))
			kept = from;
		sk.shed[sk.nshed++] = from;
	}
	for (;;) {
		const cfg_pool *p = policy_pool(lb, ctx, &sk);
		if (!p)
			break;
		if (sk.nshed == LB_STEER_MAX_SHED ||
		    !lb_steer_pool_sheds(p, ctx, false))
			return p;
		sk.shed[sk.nshed++] = kept = p;
	}
	if (kept)
		return kept;
	const cfg_pool *p = lb->fallback_pool;
	if (p && p->enabled && !in_list(p->index, skip_pools, nskip))
		return p;
	return NULL;
}

const cfg_pool *lb_steer_pool(const cfg_lb *lb, const lb_steer_ctx *ctx,
			      const uint32_t *skip_pools, size_t nskip)
{
	return lb_steer_pool_away(lb, ctx, skip_pools, nskip, NULL);
}

static bool origin_candidate(const cfg_origin *o, const lb_steer_ctx *ctx,
			     bool any_health, const uint32_t *tried,
			     size_t ntried)
{
	return lb_steer_origin_choosable(o, ctx, any_health) &&
	       !in_list(o->index, tried, ntried);
}

/* in_flight: 0 none (random), 1 outstanding, 2 connections. */
static double origin_eff_weight(const cfg_origin *o, const lb_steer_ctx *ctx,
				int in_flight)
{
	double w = o->weight;
	if (in_flight)
		w /= 1.0 + (double)load_of(o, ctx, in_flight == 2);
	return w;
}

static const cfg_origin *weighted_origin(const cfg_pool *p,
					 const lb_steer_ctx *ctx,
					 const uint32_t *tried, size_t ntried,
					 int in_flight)
{
	bool any = lb_steer_pool_any_health(p, ctx);
	double total = 0;
	const cfg_origin *first = NULL, *last = NULL;

	for (size_t i = 0; i < p->norigins; i++) {
		const cfg_origin *o = &p->origins[i];
		if (!origin_candidate(o, ctx, any, tried, ntried))
			continue;
		if (!first)
			first = o;
		total += origin_eff_weight(o, ctx, in_flight);
	}
	if (!first || !ctx || !ctx->rng || !(total > 0))
		return first;
	double r = rand_unit(ctx->rng) * total;
	for (size_t i = 0; i < p->norigins; i++) {
		const cfg_origin *o = &p->origins[i];
		if (!origin_candidate(o, ctx, any, tried, ntried))
			continue;
		double w = origin_eff_weight(o, ctx, in_flight);
		last = o;
		if (r < w)
			return o;
		r -= w;
	}
	return last; /* rounding */
}

const cfg_origin *lb_steer_origin_key(const cfg_pool *p, uint64_t key,
				      const lb_steer_ctx *ctx,
				      const uint32_t *tried, size_t ntried)
{
	const cfg_origin *best = NULL;
	double best_score = -1;
	bool any = lb_steer_pool_any_health(p, ctx);

	for (size_t i = 0; i < p->norigins; i++) {
		const cfg_origin *o = &p->origins[i];
		if (!origin_candidate(o, ctx, any, tried, ntried))
			continue;
		double s = lb_hash_hrw_score(
		    key, lb_hash_origin_id(p->id, o->name), o->weight);
		if (s > best_score) {
			best = o;
			best_score = s;
		}
	}
	return best;
}

const cfg_origin *lb_steer_origin_by(const cfg_pool *p,
				     cfg_origin_steering policy,
				     const lb_steer_ctx *ctx,
				     const uint32_t *tried, size_t ntried)
{
	if (!p)
		return NULL;
	switch (policy) {
	case CFG_OSTEER_HASH:
		return lb_steer_origin_key(
		    p, lb_hash_sockaddr(ctx ? ctx->client : NULL), ctx, tried,
		    ntried);
	case CFG_OSTEER_LEAST_OUTSTANDING:
		return weighted_origin(p, ctx, tried, ntried, 1);
	case CFG_OSTEER_LEAST_CONNECTIONS:
		return weighted_origin(p, ctx, tried, ntried, 2);
	case CFG_OSTEER_RANDOM:
	default:
		return weighted_origin(p, ctx, tried, ntried, 0);
	}
}

const cfg_origin *lb_steer_origin(const cfg_pool *p, const lb_steer_ctx *ctx,
				  const uint32_t *tried, size_t ntried)
{
	return lb_steer_origin_by(p, p ? p->origin_steering : CFG_OSTEER_RANDOM,
				  ctx, tried, ntried);
}
