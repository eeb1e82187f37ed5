/* edge_stats.h - request counters of one snapshot, per worker.
 *
 * Every edge_snapshot owns one edge_stats (built in edge_snapshot_new): a
 * block of counter cells per worker, sized for that snapshot's load
 * balancers, pools and origins. A worker writes only its own block, with a
 * relaxed load and a relaxed store of the cell (no lock-prefixed
 * read-modify-write, no cache line shared with another worker: blocks are
 * 64-byte aligned and padded). Readers (/metrics on the admin thread) sum
 * the blocks with relaxed loads, plus `base`: what older snapshots counted
 * for the same objects (edge_stats_carry), so counters never go back when a
 * config is swapped.
 *
 * Cells:
 *   - per route (lb, pool, origin) and status class 1xx..5xx: requests.
 *     Route 0 is (no lb) for answers before routing (404 unknown host, 400,
 *     408, 431); each load balancer has an (lb, no pool) route for local
 *     answers after routing (503 no origin, 413), then one route per
 *     origin of each pool it can use (default, fallback, pop, country,
 *     region and random_steering pools);
 *   - per load balancer (and "no lb"): request duration and upstream
 *     response histograms (EDGE_STATS_NBUCKETS buckets, sums in ns),
 *     retries and cross-pool failovers;
 *   - per origin: failures on live traffic and passive ejections;
 *   - per load balancer rule: requests and DNS queries it matched.
 *   - per rate limit: requests over its rate (blocked or logged).
 *   - per firewall custom rule: requests it matched.
 */
#ifndef MERIDIAN_EDGE_STATS_H
#define MERIDIAN_EDGE_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_model.h"

typedef _Atomic uint64_t edge_ctr;

#define EDGE_STATS_NCLASS 5 /* 1xx .. 5xx */
/* Histogram upper bounds in seconds, then +Inf. */
#define EDGE_STATS_BOUNDS                                                      \
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,    \
	    2.5, 5, 10, 30, 60
#define EDGE_STATS_NBOUNDS  16
#define EDGE_STATS_NBUCKETS (EDGE_STATS_NBOUNDS + 1)

/* Per load balancer cells, at edge_stats.off_lb + lb * EDGE_LBC_N. */
enum {
	EDGE_LBC_DUR = 0, /* EDGE_STATS_NBUCKETS bucket counts */
	EDGE_LBC_DUR_SUM = EDGE_LBC_DUR + EDGE_STATS_NBUCKETS, /* ns */
	EDGE_LBC_UP,					       /* buckets */
	EDGE_LBC_UP_SUM = EDGE_LBC_UP + EDGE_STATS_NBUCKETS,   /* ns */
	EDGE_LBC_RETRIES,
	EDGE_LBC_FAILOVERS,
	EDGE_LBC_N,
};

/* Per origin cells, at edge_stats.off_origin + origin index * EDGE_OC_N. */
enum {
	EDGE_OC_FAILURES = 0, /* failures on live traffic (passive health) */
	EDGE_OC_EJECTIONS,    /* passive ejections */
	EDGE_OC_N,
};

typedef struct edge_stats_route {
	uint32_t lb;	/* index in cfg->lbs; nlbs: no load balancer */
	int32_t pool;	/* cfg_pool.index, -1: none */
	int32_t origin; /* cfg_origin.index, -1: none */
} edge_stats_route;

typedef struct edge_stats {
	const cfg_snapshot *cfg;
	uint32_t nworkers;
	uint32_t nlbs;
	uint32_t nroutes;
	edge_stats_route *routes;
	uint32_t *lb_route; /* [nlbs + 1]: the (lb, no pool) route */
	/* The pools each load balancer can use: lb i has lbp_n[i] entries
	 * from lbp_first[i] in lbp_pool (pointers) and lbp_route (route of
	 * the pool's first origin). */
	uint32_t *lbp_first, *lbp_n;
	const cfg_pool **lbp_pool;
	uint32_t *lbp_route;
	/* Rules: load balancer i's rule k counts at off_rule +
	 * rule_first[i] + k. */
	uint32_t *rule_first;
	/* Cell layout of one block. */
	size_t off_lb, off_origin, off_rule, ncells; /* requests at 0 */
	/* Rate limits: requests over rate limit k at off_rl + k; firewall
	 * custom rules: requests rule k matched at off_waf + k. */
	size_t off_rl, off_waf;
	edge_ctr *blocks;  /* nworkers * ncells */
	edge_ctr *base;	   /* ncells, carried in */
	uint64_t *carried; /* ncells, carried out (carry_lock) */
	pthread_mutex_t carry_lock;
} edge_stats;

edge_stats *edge_stats_new(const cfg_snapshot *cfg, uint32_t nworkers);
void edge_stats_free(edge_stats *s);

/* Add v to a cell of a block only the calling worker writes. */
static inline void edge_ctr_add(edge_ctr *c, uint64_t v)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static inline edge_ctr *edge_stats_block(const edge_stats *s, uint32_t worker)
{
	return s->blocks + (size_t)worker * s->ncells;
}

/* The route of a request: lb NULL (none), pool/origin NULL (local answer). */
uint32_t edge_stats_route_of(const edge_stats *s, const cfg_lb *lb,
			     const cfg_pool *pool, const cfg_origin *o);
uint32_t edge_stats_lb_of(const edge_stats *s, const cfg_lb *lb);

/* The histogram bucket of a duration. */
uint32_t edge_stats_bucket(uint64_t ns);

/* One finished request, counted in the worker's block. up_ns < 0: no
 * origin answered. */
void edge_stats_request(const edge_stats *s, uint32_t worker, const cfg_lb *lb,
			const cfg_pool *pool, const cfg_origin *o, int status,
			uint64_t dur_ns, int64_t up_ns, uint32_t retries,
			uint32_t failovers);

/* A failure of origin o on live traffic; ejected: it ejected the origin. */
void edge_stats_origin_failure(const edge_stats *s, uint32_t worker,
			       const cfg_origin *o, bool ejected);

/* One request over the rate of rate limit index (cfg_rate_limit.index),
 * blocked or logged. */
void edge_stats_rate_limited(const edge_stats *s, uint32_t worker,
			     uint32_t index);

/* One request firewall custom rule index (cfg_waf_rule.index) matched. */
void edge_stats_waf(const edge_stats *s, uint32_t worker, uint32_t index);

/* A rule's name in metrics and logs, unique in its load balancer: its
 * name, or "#N" (its place in rules[]) written into buf when it has none
 * or one that another of its rules shares or of that "#N" form. */
const char *edge_stats_rule_name(const cfg_lb_rule *r, char *buf, size_t size);

/* The rules of lb that matched one request or query: bit k of matched is
 * its rules[k]. */
void edge_stats_rules(const edge_stats *s, uint32_t worker, const cfg_lb *lb,
		      uint64_t matched);

/* Totals of every cell (base plus each worker's block), relaxed reads;
 * out has s->ncells entries. */
void edge_stats_sum(const edge_stats *s, uint64_t *out);

/* Carry the totals of old_snap's objects that new_snap has too (same lb
 * id; same pool id; same pool id and origin name) into new_snap's base, so
 * Prometheus counters never go back across a swap. Incremental: only what
 * old_snap counted since its previous carry moves, so calling it again
 * when old_snap is retired (for requests that finished on it after the
 * swap) counts every request exactly once. Thread-safe; not on the hot
 * path (it builds a hash of the old snapshot's names). */
struct edge_snapshot;
void edge_stats_carry(const struct edge_snapshot *old_snap,
		      struct edge_snapshot *new_snap);
void edge_stats_carry_stats(edge_stats *old, edge_stats *next);

/* Index of a request cell. */
static inline size_t edge_stats_req_cell(uint32_t route, uint32_t cls)
{
	return (size_t)route * EDGE_STATS_NCLASS + cls;
}

#endif
