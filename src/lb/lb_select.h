/* lb_select.h - the per-worker PRNG the selection code shares (steering,
 * health jitter). Pool and origin choice live in lb_steer.h. */
#ifndef MERIDIAN_LB_SELECT_H
#define MERIDIAN_LB_SELECT_H

#include <stddef.h>
#include <stdint.h>

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

#endif
