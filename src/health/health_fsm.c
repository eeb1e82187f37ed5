/* health_fsm.c - see health_fsm.h for the semantics. */
#include "health/health_fsm.h"

#include <stdio.h>
#include <string.h>

#include "core/core_util.h"

static const char *const reason_texts[HEALTH_NREASONS] = {
    [HEALTH_OK] = "",
    [HEALTH_CONNECT_FAILED] = "TCP connection failed",
    [HEALTH_TIMEOUT] = "timeout",
    [HEALTH_CODE_MISMATCH] = "response code mismatch",
    [HEALTH_BODY_MISMATCH] = "body mismatch",
    [HEALTH_TLS_ERROR] = "TLS error",
    [HEALTH_PROTOCOL_ERROR] = "protocol error",
};

const char *health_reason_text(health_reason r)
{
	if ((unsigned)r >= HEALTH_NREASONS)
		return "?";
	return reason_texts[r];
}

const char *health_state_name(lb_health h)
{
	switch (h) {
	case LB_HEALTH_HEALTHY:
		return "healthy";
	case LB_HEALTH_UNHEALTHY:
		return "unhealthy";
	case LB_HEALTH_UNKNOWN:
		break;
	}
	return "unknown";
}

const char *health_pool_state_name(lb_pool_health h)
{
	switch (h) {
	case LB_POOL_HEALTHY:
		return "healthy";
	case LB_POOL_DEGRADED:
		return "degraded";
	case LB_POOL_CRITICAL:
		return "critical";
	case LB_POOL_UNKNOWN:
		break;
	}
	return "unknown";
}

void health_fsm_init(health_fsm *f, lb_health initial)
{
	memset(f, 0, sizeof(*f));
	f->state = initial;
}

uint32_t health_rtt_ewma(uint32_t avg_us, uint32_t sample_us)
{
	/* 0 means "no data" to readers (dynamic latency steering), so a
	 * sub-microsecond sample still counts as 1. */
	if (sample_us == 0)
		sample_us = 1;
	if (avg_us == 0)
		return sample_us;
	/* 0.3 * sample + 0.7 * avg, rounded, in 64 bits: no overflow. */
	uint64_t v = (3 * (uint64_t)sample_us + 7 * (uint64_t)avg_us + 5) / 10;
	return v ? (uint32_t)MIN(v, UINT32_MAX) : 1;
}

static void set_state(health_fsm *f, health_step *s, lb_health to,
		      uint64_t now_ms)
{
	if (f->state == to)
		return;
	f->state = to;
	f->since_ms = now_ms;
	s->to = to;
	s->changed = true;
}

health_step health_fsm_feed(health_fsm *f, const cfg_monitor *m,
			    const health_result *r, uint64_t now_ms)
{
	health_step s = {.from = f->state, .to = f->state};
	/* Thresholds of 0 would mean "never"; the config rejects them, but a
	 * hand-built monitor (tests, the API later) must not wedge the
	 * origin. */
	uint32_t up = MAX(m->consecutive_up, 1u);
	uint32_t down = MAX(m->consecutive_down, 1u);

	if (r->reason == HEALTH_OK) {
		f->tries = 0;
		f->checks++;
		f->rtt_us = health_rtt_ewma(f->rtt_us, r->rtt_us);
		f->down_run = 0;
		if (f->up_run < UINT32_MAX)
			f->up_run++;
		s.decided = s.passed = true;
		if (f->state == LB_HEALTH_UNKNOWN ||
		    (f->state == LB_HEALTH_UNHEALTHY && f->up_run >= up))
			set_state(f, &s, LB_HEALTH_HEALTHY, now_ms);
		return s;
	}

	if (f->tries < m->retries) {
		/* Not an attempt yet: nothing counted, nothing shown. */
		f->tries++;
		s.retry = true;
		return s;
	}
	f->tries = 0;
	f->checks++;
	f->failures++;
	f->up_run = 0;
	if (f->down_run < UINT32_MAX)
		f->down_run++;
	f->last_reason = r->reason;
	if (r->detail[0])
		snprintf(f->last_text, sizeof(f->last_text), "%s: %s",
			 health_reason_text(r->reason), r->detail);
	else
		snprintf(f->last_text, sizeof(f->last_text), "%s",
			 health_reason_text(r->reason));
	s.decided = true;
	if (f->state == LB_HEALTH_UNKNOWN ||
	    (f->state == LB_HEALTH_HEALTHY && f->down_run >= down))
		set_state(f, &s, LB_HEALTH_UNHEALTHY, now_ms);
	return s;
}

const char *health_fsm_reason(const health_fsm *f)
{
	return f->state == LB_HEALTH_UNHEALTHY ? f->last_text : "";
}

lb_pool_health health_pool_eval(bool has_monitor, uint32_t enabled,
				uint32_t healthy, uint32_t unhealthy,
				uint32_t minimum_origins)
{
	if (enabled == 0)
		return LB_POOL_CRITICAL;
	if (!has_monitor) {
		/* Nothing checks these origins: they all count healthy. */
		healthy = enabled;
		unhealthy = 0;
	}
	/* Callers pass consistent counts; clamp so a bad one cannot make
	 * the unknown count wrap around. */
	healthy = MIN(healthy, enabled);
	unhealthy = MIN(unhealthy, enabled - healthy);
	uint32_t unknown = enabled - healthy - unhealthy;

	if (unknown == enabled)
		return LB_POOL_UNKNOWN;
	if (healthy >= minimum_origins)
		return unhealthy ? LB_POOL_DEGRADED : LB_POOL_HEALTHY;
	if ((uint64_t)healthy + unknown >= minimum_origins)
		return LB_POOL_UNKNOWN;
	return LB_POOL_CRITICAL;
}
