/* edge_stats.c - see edge_stats.h. */
#include "edge/edge_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"
#include "edge/edge.h"

#define CELL_ALIGN 64 /* bytes: a worker's block starts a cache line */

static const uint64_t bounds_ns[EDGE_STATS_NBOUNDS] = {
    500000ull,	   1000000ull,	   2500000ull,	   5000000ull,
    10000000ull,   25000000ull,	   50000000ull,	   100000000ull,
    250000000ull,  500000000ull,   1000000000ull,  2500000000ull,
    5000000000ull, 10000000000ull, 30000000000ull, 60000000000ull,
};

static inline uint32_t bucket(uint64_t ns)
{
	uint32_t i = 0;
	while (i < EDGE_STATS_NBOUNDS && ns > bounds_ns[i])
		i++;
	return i;
}

uint32_t edge_stats_bucket(uint64_t ns)
{
	return bucket(ns);
}

/* The pools load balancer lb can send a request to, each once. */
typedef struct pool_list {
	const cfg_pool **p;
	size_t n, cap;
} pool_list;

static void pool_add(pool_list *l, size_t from, const cfg_pool *p)
{
	if (!p)
		return;
	for (size_t i = from; i < l->n; i++)
		if (l->p[i] == p)
			return;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->p = xrealloc(l->p, l->cap * sizeof(*l->p));
	}
	l->p[l->n++] = p;
}

static void pool_add_maps(pool_list *l, size_t from, const cfg_pool_map *m,
			  size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < m[i].npools; j++)
			pool_add(l, from, m[i].pools[j]);
}

static void lb_pools_from(pool_list *l, size_t from, const cfg_lb *lb)
{
	for (size_t i = 0; i < lb->ndefault_pools; i++)
		pool_add(l, from, lb->default_pools[i]);
	pool_add(l, from, lb->fallback_pool);
	pool_add_maps(l, from, lb->pop_pools, lb->npop_pools);
	pool_add_maps(l, from, lb->country_pools, lb->ncountry_pools);
	pool_add_maps(l, from, lb->region_pools, lb->nregion_pools);
	for (size_t i = 0; i < lb->npool_weights; i++)
		pool_add(l, from, lb->pool_weights[i].pool);
}

/* Every pool a load balancer may steer to, its rules' overrides
 * included: its requests are counted under (load balancer, pool). */
static void lb_pools(pool_list *l, const cfg_lb *lb)
{
	size_t from = l->n;
	lb_pools_from(l, from, lb);
	for (size_t i = 0; i < lb->nrules; i++)
		lb_pools_from(l, from, lb->rules[i].eff);
}

edge_stats *edge_stats_new(const cfg_snapshot *cfg, uint32_t nworkers)
{
	edge_stats *s = xcalloc(1, sizeof(*s));
	uint32_t nlbs = (uint32_t)cfg->nlbs;
	s->cfg = cfg;
	s->nworkers = nworkers ? nworkers : 1;
	s->nlbs = nlbs;
	s->lb_route = xcalloc(nlbs + 1, sizeof(*s->lb_route));
	s->lbp_first = xcalloc(nlbs + 1, sizeof(*s->lbp_first));
	s->lbp_n = xcalloc(nlbs + 1, sizeof(*s->lbp_n));

	pool_list pl = {0};
	size_t nroutes = 1; /* route 0: no load balancer */
	for (uint32_t i = 0; i < nlbs; i++) {
		s->lbp_first[i] = (uint32_t)pl.n;
		lb_pools(&pl, &cfg->lbs[i]);
		s->lbp_n[i] = (uint32_t)(pl.n - s->lbp_first[i]);
		nroutes++; /* (lb, no pool) */
		for (size_t k = s->lbp_first[i]; k < pl.n; k++)
			nroutes += pl.p[k]->norigins;
	}
	s->lbp_pool = pl.p;
	s->lbp_route = xcalloc(pl.n ? pl.n : 1, sizeof(*s->lbp_route));
	s->routes = xcalloc(nroutes, sizeof(*s->routes));
	s->nroutes = (uint32_t)nroutes;
	uint32_t r = 0;
	s->routes[r++] =
	    (edge_stats_route){.lb = nlbs, .pool = -1, .origin = -1};
	s->lb_route[nlbs] = 0;
	for (uint32_t i = 0; i < nlbs; i++) {
		s->lb_route[i] = r;
		s->routes[r++] =
		    (edge_stats_route){.lb = i, .pool = -1, .origin = -1};
		for (uint32_t k = s->lbp_first[i];
		     k < s->lbp_first[i] + s->lbp_n[i]; k++) {
			const cfg_pool *p = pl.p[k];
			s->lbp_route[k] = r;
			for (size_t j = 0; j < p->norigins; j++)
				s->routes[r++] = (edge_stats_route){
				    .lb = i,
				    .pool = (int32_t)p->index,
				    .origin = (int32_t)p->origins[j].index};
		}
	}

	s->off_lb = (size_t)nroutes * EDGE_STATS_NCLASS;
	s->off_origin = s->off_lb + (size_t)(nlbs + 1) * EDGE_LBC_N;
	s->off_rule = s->off_origin + cfg->norigins * EDGE_OC_N;
	s->rule_first = xcalloc(nlbs + 1, sizeof(*s->rule_first));
	size_t nrules = 0;
	for (uint32_t i = 0; i < nlbs; i++) {
		s->rule_first[i] = (uint32_t)nrules;
		nrules += cfg->lbs[i].nrules;
	}
	s->rule_first[nlbs] = (uint32_t)nrules;
	s->off_rl = s->off_rule + nrules;
	s->off_waf = s->off_rl + cfg->nrate_limits;
	size_t n = s->off_waf + cfg->waf.ncustom_rules;
	size_t per_line = CELL_ALIGN / sizeof(edge_ctr);
	s->ncells = (n + per_line - 1) / per_line * per_line;
	size_t bytes = s->ncells * sizeof(edge_ctr) * s->nworkers;
	void *blocks = NULL;
	if (posix_memalign(&blocks, CELL_ALIGN, bytes) != 0)
		abort();
	memset(blocks, 0, bytes);
	s->blocks = blocks;
	s->base = xcalloc(s->ncells, sizeof(*s->base));
	s->carried = xcalloc(s->ncells, sizeof(*s->carried));
	pthread_mutex_init(&s->carry_lock, NULL);
	return s;
}

void edge_stats_free(edge_stats *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->carry_lock);
	free(s->blocks);
	free(s->base);
	free(s->carried);
	free(s->routes);
	free(s->lb_route);
	free(s->lbp_first);
	free(s->lbp_n);
	free(s->lbp_pool);
	free(s->lbp_route);
	free(s->rule_first);
	free(s);
}

static inline uint32_t lb_of(const edge_stats *s, const cfg_lb *lb)
{
	if (!lb)
		return s->nlbs;
	uintptr_t a = (uintptr_t)lb, b = (uintptr_t)s->cfg->lbs;
	if (a < b || a >= b + s->nlbs * sizeof(*lb))
		return s->nlbs; /* not this snapshot's: never expected */
	return (uint32_t)((a - b) / sizeof(*lb));
}

uint32_t edge_stats_lb_of(const edge_stats *s, const cfg_lb *lb)
{
	return lb_of(s, lb);
}

static inline uint32_t route_of(const edge_stats *s, const cfg_lb *lb,
				const cfg_pool *pool, const cfg_origin *o)
{
	uint32_t li = lb_of(s, lb);
	if (li == s->nlbs)
		return 0;
	if (!pool || !o)
		return s->lb_route[li];
	for (uint32_t k = s->lbp_first[li]; k < s->lbp_first[li] + s->lbp_n[li];
	     k++) {
		if (s->lbp_pool[k] != pool || !pool->norigins)
			continue;
		/* A pool's origins usually have consecutive indices. */
		size_t j = o->index - pool->origins[0].index;
		if (j < pool->norigins && &pool->origins[j] == o)
			return s->lbp_route[k] + (uint32_t)j;
		for (j = 0; j < pool->norigins; j++)
			if (&pool->origins[j] == o)
				return s->lbp_route[k] + (uint32_t)j;
		break;
	}
	return s->lb_route[li];
}

uint32_t edge_stats_route_of(const edge_stats *s, const cfg_lb *lb,
			     const cfg_pool *pool, const cfg_origin *o)
{
	return route_of(s, lb, pool, o);
}

void edge_stats_request(const edge_stats *s, uint32_t worker, const cfg_lb *lb,
			const cfg_pool *pool, const cfg_origin *o, int status,
			uint64_t dur_ns, int64_t up_ns, uint32_t retries,
			uint32_t failovers)
{
	edge_ctr *b = edge_stats_block(s, worker);
	uint32_t route = route_of(s, lb, pool, o);
	int cls = status / 100 - 1;
	if (cls < 0)
		cls = 0;
	if (cls >= EDGE_STATS_NCLASS)
		cls = EDGE_STATS_NCLASS - 1;
	edge_ctr_add(&b[edge_stats_req_cell(route, (uint32_t)cls)], 1);
	edge_ctr *l = b + s->off_lb + (size_t)s->routes[route].lb * EDGE_LBC_N;
	edge_ctr_add(&l[EDGE_LBC_DUR + bucket(dur_ns)], 1);
	edge_ctr_add(&l[EDGE_LBC_DUR_SUM], dur_ns);
	if (up_ns >= 0) {
		edge_ctr_add(&l[EDGE_LBC_UP + bucket((uint64_t)up_ns)], 1);
		edge_ctr_add(&l[EDGE_LBC_UP_SUM], (uint64_t)up_ns);
	}
	if (retries)
		edge_ctr_add(&l[EDGE_LBC_RETRIES], retries);
	if (failovers)
		edge_ctr_add(&l[EDGE_LBC_FAILOVERS], failovers);
}

void edge_stats_origin_failure(const edge_stats *s, uint32_t worker,
			       const cfg_origin *o, bool ejected)
{
	if (o->index >= s->cfg->norigins)
		return;
	edge_ctr *c = edge_stats_block(s, worker) + s->off_origin +
		      (size_t)o->index * EDGE_OC_N;
	edge_ctr_add(&c[EDGE_OC_FAILURES], 1);
	if (ejected)
		edge_ctr_add(&c[EDGE_OC_EJECTIONS], 1);
}

const char *edge_stats_rule_name(const cfg_lb_rule *r, char *buf, size_t size)
{
	if (r->name && !r->name_shared)
		return r->name;
	snprintf(buf, size, "#%u", r->index);
	return buf;
}

void edge_stats_rules(const edge_stats *s, uint32_t worker, const cfg_lb *lb,
		      uint64_t matched)
{
	uint32_t li = lb_of(s, lb);
	if (li == s->nlbs)
		return;
	edge_ctr *c =
	    edge_stats_block(s, worker) + s->off_rule + s->rule_first[li];
	uint32_t n = s->rule_first[li + 1] - s->rule_first[li];
	for (; matched; matched &= matched - 1) {
		uint32_t k = (uint32_t)__builtin_ctzll(matched);
		if (k < n)
			edge_ctr_add(&c[k], 1);
	}
}

void edge_stats_rate_limited(const edge_stats *s, uint32_t worker,
			     uint32_t index)
{
	if (index < s->cfg->nrate_limits)
		edge_ctr_add(edge_stats_block(s, worker) + s->off_rl + index,
			     1);
}

void edge_stats_waf(const edge_stats *s, uint32_t worker, uint32_t index)
{
	if (index < s->cfg->waf.ncustom_rules)
		edge_ctr_add(edge_stats_block(s, worker) + s->off_waf + index,
			     1);
}

void edge_stats_sum(const edge_stats *s, uint64_t *out)
{
	for (size_t i = 0; i < s->ncells; i++)
		out[i] =
		    atomic_load_explicit(&s->base[i], memory_order_relaxed);
	for (uint32_t w = 0; w < s->nworkers; w++) {
		const edge_ctr *b = edge_stats_block(s, w);
		for (size_t i = 0; i < s->ncells; i++)
			out[i] +=
			    atomic_load_explicit(&b[i], memory_order_relaxed);
	}
}

/* --- carry ------------------------------------------------------------- */

/* Object names -> cell offsets of the old snapshot: open addressing over
 * FNV-1a, keys are "kind\x1fname\x1f...". */
typedef struct name_map {
	char **keys;
	size_t *vals;
	size_t cap, n;
} name_map;

static uint64_t fnv(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static char *make_key(char kind, const char *a, const char *b, const char *c)
{
	a = a ? a : "";
	b = b ? b : "";
	c = c ? c : "";
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *k = xmalloc(la + lb + lc + 5);
	char *p = k;
	*p++ = kind;
	memcpy(p, a, la);
	p += la;
	*p++ = '\x1f';
	memcpy(p, b, lb);
	p += lb;
	*p++ = '\x1f';
	memcpy(p, c, lc);
	p += lc;
	*p = '\0';
	return k;
}

static void map_init(name_map *m, size_t n)
{
	m->cap = 16;
	while (m->cap < n * 2)
		m->cap *= 2;
	m->keys = xcalloc(m->cap, sizeof(*m->keys));
	m->vals = xcalloc(m->cap, sizeof(*m->vals));
	m->n = 0;
}

static void map_put(name_map *m, char *key, size_t val)
{
	size_t i = fnv(key) & (m->cap - 1);
	while (m->keys[i]) {
		if (!strcmp(m->keys[i], key)) {
			free(key); /* duplicate names: keep the first */
			return;
		}
		i = (i + 1) & (m->cap - 1);
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
}

static bool map_get(const name_map *m, const char *key, size_t *val)
{
	size_t i = fnv(key) & (m->cap - 1);
	while (m->keys[i]) {
		if (!strcmp(m->keys[i], key)) {
			*val = m->vals[i];
			return true;
		}
		i = (i + 1) & (m->cap - 1);
	}
	return false;
}

static void map_free(name_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
}

static const char *lb_id(const edge_stats *s, uint32_t li)
{
	return li < s->nlbs ? s->cfg->lbs[li].id : NULL;
}

static char *route_key(const edge_stats *s, const edge_stats_route *r)
{
	const cfg_snapshot *c = s->cfg;
	return make_key('r', lb_id(s, r->lb),
			r->pool >= 0 ? c->pools[r->pool].id : NULL,
			r->origin >= 0 ? c->origins[r->origin]->name : NULL);
}

/* Every object of s: its name key (fn takes it), its first cell and the
 * number of cells it owns. */
typedef void (*cell_visit)(const edge_stats *s, char *key, size_t off, size_t n,
			   void *arg);

static void visit_cells(const edge_stats *s, cell_visit fn, void *arg)
{
	for (uint32_t r = 0; r < s->nroutes; r++)
		fn(s, route_key(s, &s->routes[r]), edge_stats_req_cell(r, 0),
		   EDGE_STATS_NCLASS, arg);
	for (uint32_t i = 0; i <= s->nlbs; i++)
		fn(s, make_key('l', lb_id(s, i), NULL, NULL),
		   s->off_lb + (size_t)i * EDGE_LBC_N, EDGE_LBC_N, arg);
	const cfg_snapshot *c = s->cfg;
	for (uint32_t i = 0; i < s->nlbs; i++)
		for (size_t k = 0; k < c->lbs[i].nrules; k++) {
			char idx[24];
			fn(s,
			   make_key('u', lb_id(s, i),
				    edge_stats_rule_name(&c->lbs[i].rules[k],
							 idx, sizeof(idx)),
				    NULL),
			   s->off_rule + s->rule_first[i] + k, 1, arg);
		}
	for (size_t k = 0; k < c->nrate_limits; k++)
		fn(s, make_key('k', c->rate_limits[k].name, NULL, NULL),
		   s->off_rl + k, 1, arg);
	for (size_t k = 0; k < c->waf.ncustom_rules; k++)
		fn(s, make_key('f', c->waf.custom_rules[k].name, NULL, NULL),
		   s->off_waf + k, 1, arg);
	for (size_t p = 0; p < c->npools; p++)
		for (size_t j = 0; j < c->pools[p].norigins; j++) {
			const cfg_origin *o = &c->pools[p].origins[j];
			fn(s, make_key('o', c->pools[p].id, o->name, NULL),
			   s->off_origin + (size_t)o->index * EDGE_OC_N,
			   EDGE_OC_N, arg);
		}
}

static void put_visit(const edge_stats *s, char *key, size_t off, size_t n,
		      void *arg)
{
	map_put(arg, key, off);
}

typedef struct carry_ctx {
	name_map map;
	edge_stats *old, *next;
	const uint64_t *totals; /* of old */
} carry_ctx;

static void carry_visit(const edge_stats *s, char *key, size_t off, size_t n,
			void *arg)
{
	carry_ctx *c = arg;
	size_t from;
	if (map_get(&c->map, key, &from)) {
		for (size_t i = 0; i < n; i++) {
			uint64_t d =
			    c->totals[from + i] - c->old->carried[from + i];
			c->old->carried[from + i] = c->totals[from + i];
			if (d)
				atomic_fetch_add_explicit(
				    &c->next->base[off + i], d,
				    memory_order_relaxed);
		}
	}
	free(key);
}

void edge_stats_carry_stats(edge_stats *old, edge_stats *next)
{
	if (!old || !next || old == next)
		return;
	pthread_mutex_lock(&old->carry_lock);
	carry_ctx c = {.old = old, .next = next};
	uint64_t *totals = xmalloc(old->ncells * sizeof(*totals));
	edge_stats_sum(old, totals);
	c.totals = totals;
	/* A key per object visit_cells names; each owns at least one cell
	 * of its own, so there are no more objects than cells (a sum of
	 * kinds here fell behind once a kind was added, and a full map never
	 * finds a free slot). */
	map_init(&c.map, old->ncells);
	visit_cells(old, put_visit, &c.map);
	visit_cells(next, carry_visit, &c);
	map_free(&c.map);
	free(totals);
	pthread_mutex_unlock(&old->carry_lock);
}

void edge_stats_carry(const edge_snapshot *old_snap, edge_snapshot *new_snap)
{
	if (old_snap && new_snap)
		edge_stats_carry_stats(old_snap->stats, new_snap->stats);
}
