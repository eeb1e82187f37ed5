/* lb_passive.c - see lb_passive.h. */
#include "lb/lb_passive.h"

#include "core/core_util.h"

bool lb_passive_failure(lb_origin_state *s, const cfg_passive_health *ph,
			uint64_t now_ms, uint64_t *ejected_for_ms)
{
	if (ph->failures == 0)
		return false;
	uint32_t n = atomic_fetch_add(&s->passive_fails, 1) + 1;
	if (n < ph->failures)
		return false;
	/* Another worker may have ejected it a moment ago: keep that. */
	if (atomic_load(&s->ejected_until) > now_ms)
		return false;
	uint32_t k = atomic_fetch_add(&s->ejections, 1);
	uint64_t d = (uint64_t)ph->ejection_ms << MIN(k, 20u);
	if (d > ph->max_ejection_ms)
		d = ph->max_ejection_ms;
	atomic_store(&s->ejected_until, now_ms + d);
	atomic_store(&s->passive_fails, 0);
	if (ejected_for_ms)
		*ejected_for_ms = d;
	return true;
}

void lb_passive_success(lb_origin_state *s)
{
	/* Loads first: the common case writes nothing (no cache-line
	 * ping-pong between workers). */
	if (atomic_load_explicit(&s->passive_fails, memory_order_relaxed))
		atomic_store(&s->passive_fails, 0);
	if (atomic_load_explicit(&s->ejections, memory_order_relaxed))
		atomic_store(&s->ejections, 0);
}

#define BUDGET_CAP 100000u /* at most 100 retries banked */

void lb_retry_earn(lb_retry_budget *b, uint32_t percent)
{
	b->milli += percent * 10u;
	if (b->milli > BUDGET_CAP)
		b->milli = BUDGET_CAP;
}

bool lb_retry_spend(lb_retry_budget *b)
{
	if (b->milli < 1000u)
		return false;
	b->milli -= 1000u;
	return true;
}
