/* lb_select.h - pool and origin choice, pure (no I/O).
 *
 * For now (foundation issue): the pool is the first of default_pools that is
 * enabled and has an enabled origin with weight > 0, else the fallback pool;
 * the origin is weighted-random among the pool's enabled origins, skipping
 * those already tried for this request. The health and steering issue
 * replaces the pool choice with the steering policies.
 */
#ifndef MERIDIAN_LB_SELECT_H
#define MERIDIAN_LB_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "config/cfg_model.h"

/* xorshift64* - fast per-worker PRNG; state must be non-zero. */
static inline uint64_t lb_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* NULL when no pool can take traffic. */
const cfg_pool *lb_pick_pool(const cfg_lb *lb);

/* Weighted random among enabled origins with weight > 0 whose index is not
 * in tried[0..ntried). NULL when none is left. */
const cfg_origin *lb_pick_origin(const cfg_pool *pool, uint64_t *rng,
				 const uint32_t *tried, size_t ntried);

#endif
