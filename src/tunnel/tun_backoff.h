/* tun_backoff.h - when the connector re-dials a lost edge connection
 * (docs/ARCHITECTURE.md "Tunnels", protocol step 7). Pure: the caller
 * brings the clock and the random numbers.
 *
 * Full jitter: the delay is uniform in [0, min(30 s, 1 s x 2^failures)].
 * failures counts the losses since the connection was last up for 30 s:
 * a connection that held that long resets it, so one loss after hours
 * of service is re-dialled within a second.
 */
#ifndef MERIDIAN_TUN_BACKOFF_H
#define MERIDIAN_TUN_BACKOFF_H

#include <stdint.h>

#define TUN_BACKOFF_BASE_MS  1000u
#define TUN_BACKOFF_CAP_MS   30000u
#define TUN_BACKOFF_RESET_MS 30000u

typedef struct tun_backoff {
	uint32_t failures;
} tun_backoff;

/* The upper bound of the delay after `failures` failures. */
uint64_t tun_backoff_max_ms(uint32_t failures);

/* A connection was lost (or never came up: up_ms 0) after being up
 * up_ms. Returns the delay before the next dial, from rnd (any 64-bit
 * random value), and counts the failure. */
uint64_t tun_backoff_lost(tun_backoff *b, uint64_t up_ms, uint64_t rnd);

#endif
