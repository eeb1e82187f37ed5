/* lb_state.h - live, shared state of each origin and pool.
 *
 * One lb_origin_state per cfg_origin (indexed by cfg_origin.index) and one
 * lb_pool_state per cfg_pool (cfg_pool.index), owned by the edge and shared
 * by every thread:
 *   - the health thread writes the active-check results (active, rtt_us,
 *     and the display fields under `lock`);
 *   - workers write the passive-health fields and the load counters;
 *   - steering (pure code in lb_steer.c) reads a consistent-enough view
 *     through the atomics. Nothing on the request path takes `lock`.
 * The health and steering issue owns this file; keep it small.
 */
#ifndef MERIDIAN_LB_STATE_H
#define MERIDIAN_LB_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum lb_health {
	LB_HEALTH_UNKNOWN =
	    0, /* no verdict yet: routable (no start-up blackout) */
	LB_HEALTH_HEALTHY,
	LB_HEALTH_UNHEALTHY,
} lb_health;

typedef enum lb_pool_health {
	LB_POOL_UNKNOWN = 0,
	LB_POOL_HEALTHY,  /* every enabled origin healthy */
	LB_POOL_DEGRADED, /* some unhealthy, still >= minimum_origins healthy */
	LB_POOL_CRITICAL, /* fewer than minimum_origins healthy: not used */
} lb_pool_health;

typedef struct lb_origin_state {
	/* Active checks (health thread). */
	_Atomic uint8_t active; /* lb_health */
	/* Cluster mode, pools with check_regions: the check regions'
	 * majority (cluster thread, clu_vote.h); UNKNOWN when there is none
	 * (no cluster, no such pool, no majority, etcd unreachable), and then
	 * `active` decides. Read through lb_origin_health. */
	_Atomic uint8_t cluster; /* lb_health */
	_Atomic uint32_t rtt_us; /* moving average of check RTT, 0 = none */
	/* Passive health (workers): consecutive failures on live traffic;
	 * at the threshold the origin is ejected until ejected_until (ms,
	 * monotonic) or until an active check passes, whichever is first. */
	_Atomic uint32_t passive_fails;
	_Atomic uint64_t ejected_until;
	_Atomic uint32_t ejections; /* consecutive ejections, for backoff */
	/* Load (workers), for least_outstanding_requests/least_connections. */
	_Atomic int32_t outstanding;
	_Atomic int32_t connections;
	/* https monitor (health thread): the earliest notAfter (Unix time)
	 * of the origin's certificate chain, as last seen; 0 = not seen. */
	_Atomic int64_t tls_not_after;
	/* When the config disabled the origin (monotonic ms), for session
	 * affinity's drain_duration; 0 = enabled, or disabled since before
	 * this process knew it. Written once before the snapshot is
	 * published (lb_affinity_drain_carry), read-only after. */
	uint64_t disabled_at_ms;
	/* Health thread: the grid point (ms, monotonic) of the next check,
	 * 0 = none yet; a restarted checker (config change) goes on from it
	 * instead of checking every origin at once. */
	_Atomic uint64_t next_check_ms;
	/* Display (health thread writes, readers copy), under lock. */
	pthread_mutex_t lock;
	char reason[96];   /* last failure reason, "" when healthy */
	uint64_t since_ms; /* wall clock of the last state change */
	uint64_t checks, failures;
	/* Passed and failed attempts in a row (health_fsm's runs), kept so
	 * that a config change does not restart consecutive_up/down. */
	uint32_t up_run, down_run;
	/* The HTTP (or SMTP) status of the last check's answer, 0 when none
	 * came (tcp monitors, connection or TLS failures). */
	uint16_t response_code;
} lb_origin_state;

typedef struct lb_pool_state {
	_Atomic uint8_t health; /* lb_pool_health */
	_Atomic uint32_t healthy_origins;
	uint64_t since_ms;
	uint64_t disabled_at_ms; /* as lb_origin_state's, for the pool */
} lb_pool_state;

/* The verdict steering and pool health go by: the check regions'
 * majority when there is one, else this edge's own checks. */
static inline lb_health lb_origin_health(const lb_origin_state *s)
{
	uint8_t c = atomic_load_explicit(&s->cluster, memory_order_relaxed);
	if (c != LB_HEALTH_UNKNOWN)
		return (lb_health)c;
	return (lb_health)atomic_load_explicit(&s->active,
					       memory_order_relaxed);
}

/* Whether live traffic may go to this origin now: enabled, weight > 0,
 * not unhealthy (unknown counts as usable), not ejected. */
struct cfg_origin;
static inline bool lb_origin_routable(const lb_origin_state *s, uint64_t now_ms)
{
	if (lb_origin_health(s) == LB_HEALTH_UNHEALTHY)
		return false;
	return atomic_load_explicit(&s->ejected_until, memory_order_relaxed) <=
	       now_ms;
}

#endif
