/* lb_passive.h - passive health: live-traffic failures eject an origin.
 *
 * Workers report each exchange's outcome. `failures` consecutive failures
 * (connection failed or reset before a response, no answer in time, or a
 * 5xx answer) eject the origin at once for `ejection` ms, doubled for each
 * ejection in a row up to `max_ejection`. A success resets the count and
 * the backoff; an active check that passes ends an ejection early (the
 * health thread clears ejected_until). No I/O; atomics only.
 */
#ifndef MERIDIAN_LB_PASSIVE_H
#define MERIDIAN_LB_PASSIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/cfg_model.h"
#include "lb/lb_state.h"

/* Returns true when this failure ejected the origin (log it once). */
bool lb_passive_failure(lb_origin_state *s, const cfg_passive_health *ph,
			uint64_t now_ms, uint64_t *ejected_for_ms);
void lb_passive_success(lb_origin_state *s);

/* Retry budget of one worker: every request earns budget_percent/100 of a
 * retry (capped at 100 banked), every retry spends one. A worker starts
 * with LB_RETRY_START retries so the first failures of a fresh edge are
 * retried too. */
typedef struct lb_retry_budget {
	uint32_t milli; /* thousandths of a retry */
} lb_retry_budget;

#define LB_RETRY_START 10

static inline void lb_retry_init(lb_retry_budget *b)
{
	b->milli = LB_RETRY_START * 1000u;
}

void lb_retry_earn(lb_retry_budget *b, uint32_t percent);
bool lb_retry_spend(lb_retry_budget *b);

#endif
