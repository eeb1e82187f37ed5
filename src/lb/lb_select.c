/* lb_select.c - see lb_select.h. */
#include "lb/lb_select.h"

#include <stdbool.h>

static bool origin_usable(const cfg_origin *o)
{
	return o->enabled && o->weight > 0;
}

static bool pool_usable(const cfg_pool *p)
{
	if (!p || !p->enabled)
		return false;
	for (size_t i = 0; i < p->norigins; i++)
		if (origin_usable(&p->origins[i]))
			return true;
	return false;
}

const cfg_pool *lb_pick_pool(const cfg_lb *lb)
{
	for (size_t i = 0; i < lb->ndefault_pools; i++)
		if (pool_usable(lb->default_pools[i]))
			return lb->default_pools[i];
	if (pool_usable(lb->fallback_pool))
		return lb->fallback_pool;
	return NULL;
}

static bool was_tried(uint32_t idx, const uint32_t *tried, size_t ntried)
{
	for (size_t i = 0; i < ntried; i++)
		if (tried[i] == idx)
			return true;
	return false;
}

const cfg_origin *lb_pick_origin(const cfg_pool *pool, uint64_t *rng,
				 const uint32_t *tried, size_t ntried)
{
	double total = 0;
	for (size_t i = 0; i < pool->norigins; i++) {
		const cfg_origin *o = &pool->origins[i];
		if (origin_usable(o) && !was_tried(o->index, tried, ntried))
			total += o->weight;
	}
	if (total <= 0)
		return NULL;
	/* 53 random bits → [0, total). */
	double r = (double)(lb_rand(rng) >> 11) * (1.0 / 9007199254740992.0) *
		   total;
	const cfg_origin *last = NULL;
	for (size_t i = 0; i < pool->norigins; i++) {
		const cfg_origin *o = &pool->origins[i];
		if (!origin_usable(o) || was_tried(o->index, tried, ntried))
			continue;
		last = o;
		if (r < o->weight)
			return o;
		r -= o->weight;
	}
	return last; /* rounding: the last candidate */
}
