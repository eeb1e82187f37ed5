/* health_fsm.h - the health state machine of one origin, and pool health.
 *
 * Pure: no I/O, no clock. The checker feeds it the result of every probe
 * and the wall time; it answers with the new lb_health, whether it changed
 * and whether the probe must be retried. Semantics (Cloudflare's monitor
 * fields):
 *
 *   probe    one connection: one check of one origin (health_probe.c).
 *   attempt  the check of one interval: a probe, plus up to `retries` more
 *            probes while they fail. Retries run at once (after a short
 *            delay chosen by the caller), not an interval later. An attempt
 *            passes as soon as one of its probes passes, and fails when the
 *            first probe and all its retries failed.
 *   verdict  unknown -> healthy after one passed attempt,
 *            unknown -> unhealthy after one failed attempt: the first
 *              verdict is decided by a single attempt, so an origin is
 *              judged one interval after start-up whatever the thresholds;
 *            unhealthy -> healthy after `consecutive_up` passed attempts in
 *              a row;
 *            healthy -> unhealthy after `consecutive_down` failed attempts
 *              in a row.
 *            Any attempt of the other outcome resets the run.
 *   rtt      exponential moving average (alpha 0.3) of the RTT of passed
 *            probes, in microseconds; 0 until the first pass.
 *   counters checks and failures count attempts, not probes.
 *
 * Pool health (health_pool_eval): only enabled origins count. A pool without
 * a monitor counts its enabled origins as healthy.
 *   no enabled origin                       -> Critical
 *   no enabled origin has a verdict yet     -> Unknown
 *   healthy >= minimum_origins              -> Healthy, or Degraded when
 *                                              some origin is unhealthy
 *   healthy + unknown >= minimum_origins    -> Unknown (undecided: origins
 *                                              without a verdict yet are
 *                                              routable)
 *   else                                    -> Critical
 */
#ifndef MERIDIAN_HEALTH_FSM_H
#define MERIDIAN_HEALTH_FSM_H

#include <stdbool.h>
#include <stdint.h>

#include "config/cfg_model.h"
#include "lb/lb_state.h"

/* Why a probe failed. The text of each (health_reason_text) is what
 * operators see, and what the notifier sends. */
typedef enum health_reason {
	HEALTH_OK = 0,
	HEALTH_CONNECT_FAILED, /* "TCP connection failed" (refused, reset...) */
	HEALTH_TIMEOUT,	       /* no complete answer within monitor.timeout */
	HEALTH_CODE_MISMATCH,  /* status not in expected_codes */
	HEALTH_BODY_MISMATCH,  /* expected_body not in the first 10 KB */
	HEALTH_TLS_ERROR,      /* handshake or certificate verification */
	HEALTH_PROTOCOL_ERROR, /* malformed HTTP, unexpected SMTP reply */
	HEALTH_NREASONS,
} health_reason;

#define HEALTH_DETAIL_MAX 80
/* Same size as lb_origin_state.reason. */
#define HEALTH_REASON_MAX 96

/* The outcome of one probe. */
typedef struct health_result {
	health_reason reason;
	uint32_t rtt_us; /* passed probes: connect to full response */
	int status;	 /* last HTTP or SMTP status seen, 0 if none */
	char detail[HEALTH_DETAIL_MAX]; /* "HTTP 503, expected 2xx"; "" if ok */
	/* https: the earliest notAfter (Unix time) among the certificates
	 * of the chain the last full handshake saw (a kept connection or a
	 * resumption carries it on); 0 if none. */
	int64_t tls_not_after;
} health_result;

typedef struct health_fsm {
	lb_health state;
	uint32_t up_run;   /* passed attempts in a row */
	uint32_t down_run; /* failed attempts in a row */
	uint32_t tries;	   /* failed probes in the current attempt */
	uint32_t rtt_us;   /* moving average, 0 = none yet */
	uint64_t since_ms; /* wall time of the last state change, 0 = never */
	uint64_t checks, failures; /* attempts */
	health_reason last_reason; /* of the last failed attempt */
	/* "timeout: no response within 5000 ms" - the last failed attempt. */
	char last_text[HEALTH_REASON_MAX];
} health_fsm;

/* What one probe result did. */
typedef struct health_step {
	lb_health from, to;
	bool changed; /* to != from */
	bool retry;   /* attempt undecided: probe again after a short delay */
	bool decided; /* attempt finished (passed or failed) */
	bool passed;  /* the attempt passed: clear passive ejection */
} health_step;

/* Start from `initial` (UNKNOWN for a new origin). */
void health_fsm_init(health_fsm *f, lb_health initial);

/* Feed one probe result; m gives retries and consecutive_up/down;
 * now_ms is the wall time recorded as since_ms on a change. */
health_step health_fsm_feed(health_fsm *f, const cfg_monitor *m,
			    const health_result *r, uint64_t now_ms);

/* What operators see as the reason: the last failure while unhealthy,
 * "" otherwise. */
const char *health_fsm_reason(const health_fsm *f);

/* Fold one RTT sample into the moving average (alpha 0.3); 0 = none. */
uint32_t health_rtt_ewma(uint32_t avg_us, uint32_t sample_us);

lb_pool_health health_pool_eval(bool has_monitor, uint32_t enabled,
				uint32_t healthy, uint32_t unhealthy,
				uint32_t minimum_origins);

/* Fixed texts: "TCP connection failed", "timeout", "response code
 * mismatch", "body mismatch", "TLS error", "protocol error" ("" for ok). */
const char *health_reason_text(health_reason r);
/* "unknown", "healthy", "unhealthy". */
const char *health_state_name(lb_health h);
/* "unknown", "healthy", "degraded", "critical". */
const char *health_pool_state_name(lb_pool_health h);

#endif
