/* sec_ratelimit.h - the state of one rate limit: GCRA token buckets per
 * key, shared by every worker; pure (no I/O, no clock: the caller passes
 * the time).
 *
 * Why GCRA (the Generic Cell Rate Algorithm): it is a token bucket whose
 * whole state is one number per key, the "theoretical arrival time" (tat).
 * With an emission interval T (period / requests per period) and a burst
 * of B requests, a request at `now` is allowed when
 *     max(tat, now) + T - now <= B*T
 * and then tat = max(tat, now) + T. A refused request changes nothing (it
 * takes no token), unless the limit has a mitigation time M: the refusal
 * then blocks the key for M (every request refused, none extending it),
 * and after M it starts over with a full bucket, as Cloudflare's
 * mitigation timeout does. A key whose tat is in the past holds a full
 * bucket, the same
 * as no entry at all.
 *
 * The table: sets of four {key, tat} slots, one cache line each, the set
 * chosen by the key; each set guarded by one of 256 striped mutexes. A key
 * not in its set takes the slot whose tat is oldest (a full bucket first,
 * so nothing is lost); taking a slot that still counted is an eviction,
 * counted, and means the table is small for the clients it sees. Keys are
 * SipHash-2-4 under the table's own random key, so no client can aim
 * collisions; two clients that collide anyway (odds 2^-64 per pair) share
 * one bucket.
 */
#ifndef MERIDIAN_SEC_RATELIMIT_H
#define MERIDIAN_SEC_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sec_rl sec_rl;

typedef struct sec_rl_rate {
	uint64_t interval_ns;	/* T: period / requests per period, > 0 */
	uint64_t tolerance_ns;	/* B*T, at most SEC_RL_MAX_TOLERANCE */
	uint64_t mitigation_ns; /* M: 0 for none */
} sec_rl_rate;

/* B*T beyond this (a day's period with a burst of millions) is cut: a
 * tat stays far below the bit that marks a block. */
#define SEC_RL_MAX_TOLERANCE (UINT64_C(1) << 61)

/* The rate of n requests per period_ms with this burst and mitigation. */
sec_rl_rate sec_rl_rate_of(uint32_t n, uint64_t period_ms, uint32_t burst,
			   uint64_t mitigation_ms);

/* A table for at least nkeys keys (rounded up to a power of two, at least
 * 64) hashed under key (give it random bytes). Reference counted: _new
 * returns one reference. */
sec_rl *sec_rl_new(uint32_t nkeys, const uint8_t key[16]);
sec_rl *sec_rl_ref(sec_rl *t);
void sec_rl_unref(sec_rl *t);
/* Slots in the table (nkeys rounded up). */
uint32_t sec_rl_capacity(const sec_rl *t);

/* The key of data[0..len) in this table: SipHash-2-4 under the table's
 * key, never 0 (sec_rlkey.h lays a request's values out in data). */
uint64_t sec_rl_key(const sec_rl *t, const void *data, size_t len);

/* Count one request of key at now_ns (any monotonic clock, > 0). True:
 * allowed. False: over the rate; *retry_ns (when not NULL) is how long
 * until a request of this key would be allowed. Safe from any thread. */
bool sec_rl_hit(sec_rl *t, const sec_rl_rate *r, uint64_t key, uint64_t now_ns,
		uint64_t *retry_ns);

/* Give back the token a sec_rl_hit took for key (a request counted on
 * arrival that, after all, does not count: counting_expression rules).
 * Nothing for a blocked key, a full bucket or a key no longer in the
 * table. */
void sec_rl_refund(sec_rl *t, const sec_rl_rate *r, uint64_t key,
		   uint64_t now_ns);

/* Counters, for /metrics. */
uint64_t sec_rl_evictions(const sec_rl *t);
/* Adds n to t's evictions: the count of the table t replaces (a rule that
 * changed its rate keeps its name on /metrics, and a counter never goes
 * back). */
void sec_rl_add_evictions(sec_rl *t, uint64_t n);
/* Keys still counting at now_ns (a bucket not full): exact for tables of
 * up to SEC_RL_ACTIVE_EXACT keys, else estimated from an even sample of
 * that many slots. */
#define SEC_RL_ACTIVE_EXACT (1u << 16)
uint32_t sec_rl_active(sec_rl *t, uint64_t now_ns);

#endif
