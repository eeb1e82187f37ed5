/* Unit tests for health_fsm: the per-origin state machine (first verdict,
 * retries, consecutive_up/down, flaps, RTT average, reasons) and pool
 * health. Pure: no I/O, time is passed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "health/health_fsm.h"

static cfg_monitor mon;
static health_fsm fsm;
static uint64_t clock_ms;

static int setup(void **state)
{
	mon = (cfg_monitor){.retries = 0,
			    .consecutive_up = 1,
			    .consecutive_down = 1,
			    .interval_ms = 1000,
			    .timeout_ms = 500};
	health_fsm_init(&fsm, LB_HEALTH_UNKNOWN);
	clock_ms = 1700000000000ull;
	return 0;
}

static health_step pass(uint32_t rtt_us)
{
	health_result r = {.reason = HEALTH_OK, .rtt_us = rtt_us};
	return health_fsm_feed(&fsm, &mon, &r, ++clock_ms);
}

static health_step failr(health_reason why, const char *detail)
{
	health_result r = {.reason = why};
	snprintf(r.detail, sizeof(r.detail), "%s", detail);
	return health_fsm_feed(&fsm, &mon, &r, ++clock_ms);
}

static health_step fail1(void)
{
	return failr(HEALTH_CONNECT_FAILED, "Connection refused");
}

/* A whole failed attempt: the probe and all its retries. */
static health_step fail_attempt(void)
{
	health_step s;
	for (uint32_t i = 0; i < mon.retries; i++) {
		s = fail1();
		assert_true(s.retry);
		assert_false(s.decided);
		assert_false(s.changed);
	}
	s = fail1();
	assert_false(s.retry);
	assert_true(s.decided);
	return s;
}

static void test_first_pass_decides_healthy(void **state)
{
	mon.consecutive_up = 5; /* ignored for the first verdict */
	health_step s = pass(1500);
	assert_true(s.changed);
	assert_true(s.decided);
	assert_true(s.passed);
	assert_false(s.retry);
	assert_int_equal(s.from, LB_HEALTH_UNKNOWN);
	assert_int_equal(s.to, LB_HEALTH_HEALTHY);
	assert_int_equal(fsm.state, LB_HEALTH_HEALTHY);
	assert_int_equal(fsm.since_ms, clock_ms);
	assert_int_equal(fsm.rtt_us, 1500);
	assert_int_equal(fsm.checks, 1);
	assert_int_equal(fsm.failures, 0);
	assert_string_equal(health_fsm_reason(&fsm), "");
}

static void test_first_failed_attempt_decides_unhealthy(void **state)
{
	mon.retries = 2;
	mon.consecutive_down = 4; /* ignored for the first verdict */
	health_step s = fail1();
	assert_true(s.retry);
	assert_int_equal(fsm.state, LB_HEALTH_UNKNOWN);
	assert_int_equal(fsm.checks, 0); /* retries are not attempts */
	s = fail1();
	assert_true(s.retry);
	s = fail1();
	assert_false(s.retry);
	assert_true(s.decided);
	assert_false(s.passed);
	assert_true(s.changed);
	assert_int_equal(s.from, LB_HEALTH_UNKNOWN);
	assert_int_equal(s.to, LB_HEALTH_UNHEALTHY);
	assert_int_equal(fsm.checks, 1);
	assert_int_equal(fsm.failures, 1);
	assert_int_equal(fsm.since_ms, clock_ms);
	assert_string_equal(health_fsm_reason(&fsm),
			    "TCP connection failed: Connection refused");
	assert_int_equal(fsm.rtt_us, 0);
}

static void test_retry_that_passes_is_a_pass(void **state)
{
	mon.retries = 2;
	assert_true(fail1().retry);
	assert_true(failr(HEALTH_TIMEOUT, "x").retry);
	health_step s = pass(800);
	assert_true(s.passed);
	assert_int_equal(s.to, LB_HEALTH_HEALTHY);
	assert_int_equal(fsm.failures, 0);
	assert_int_equal(fsm.tries, 0);
	/* The next attempt gets its full retries again. */
	assert_true(fail1().retry);
	assert_true(fail1().retry);
	assert_false(fail1().retry);
}

static void test_consecutive_down(void **state)
{
	mon.consecutive_down = 3;
	pass(100);
	health_step s = fail_attempt();
	assert_false(s.changed);
	assert_int_equal(fsm.state, LB_HEALTH_HEALTHY);
	/* Not unhealthy yet: no reason shown. */
	assert_string_equal(health_fsm_reason(&fsm), "");
	uint64_t since = fsm.since_ms;
	s = fail_attempt();
	assert_false(s.changed);
	assert_int_equal(fsm.since_ms, since);
	s = fail_attempt();
	assert_true(s.changed);
	assert_int_equal(s.from, LB_HEALTH_HEALTHY);
	assert_int_equal(s.to, LB_HEALTH_UNHEALTHY);
	assert_int_equal(fsm.checks, 4);
	assert_int_equal(fsm.failures, 3);
	/* More failures: no change. */
	assert_false(fail_attempt().changed);
}

static void test_consecutive_down_with_retries(void **state)
{
	mon.retries = 1;
	mon.consecutive_down = 2;
	pass(100);
	assert_false(fail_attempt().changed); /* 2 probes, attempt 1 */
	/* A retry that passes resets the run. */
	assert_true(fail1().retry);
	assert_true(pass(100).passed);
	assert_false(fail_attempt().changed);
	health_step s = fail_attempt();
	assert_true(s.changed);
	assert_int_equal(fsm.state, LB_HEALTH_UNHEALTHY);
	assert_int_equal(fsm.failures, 3);
}

/* 0, Cloudflare's default, is one check. */
static void test_consecutive_zero_is_one(void **state)
{
	mon.consecutive_up = 0;
	mon.consecutive_down = 0;
	pass(100);
	assert_int_equal(fsm.state, LB_HEALTH_HEALTHY);
	health_step s = fail_attempt();
	assert_true(s.changed);
	assert_int_equal(s.to, LB_HEALTH_UNHEALTHY);
	s = pass(100);
	assert_true(s.changed);
	assert_int_equal(s.to, LB_HEALTH_HEALTHY);
}

static void test_consecutive_up(void **state)
{
	mon.consecutive_up = 3;
	fail_attempt();
	assert_int_equal(fsm.state, LB_HEALTH_UNHEALTHY);
	uint64_t since = fsm.since_ms;
	health_step s = pass(100);
	assert_true(s.passed); /* passive ejection clears on any pass */
	assert_false(s.changed);
	assert_false(pass(100).changed);
	assert_int_equal(fsm.since_ms, since);
	/* Still unhealthy: the reason stays. */
	assert_string_not_equal(health_fsm_reason(&fsm), "");
	s = pass(100);
	assert_true(s.changed);
	assert_int_equal(s.from, LB_HEALTH_UNHEALTHY);
	assert_int_equal(s.to, LB_HEALTH_HEALTHY);
	assert_string_equal(health_fsm_reason(&fsm), "");
}

static void test_flaps_do_not_change_state(void **state)
{
	mon.consecutive_up = 2;
	mon.consecutive_down = 2;
	pass(100);
	for (int i = 0; i < 20; i++) {
		assert_false(fail_attempt().changed);
		assert_false(pass(100).changed);
	}
	assert_int_equal(fsm.state, LB_HEALTH_HEALTHY);
	fail_attempt();
	fail_attempt();
	assert_int_equal(fsm.state, LB_HEALTH_UNHEALTHY);
	for (int i = 0; i < 20; i++) {
		assert_false(pass(100).changed);
		assert_false(fail_attempt().changed);
	}
	assert_int_equal(fsm.state, LB_HEALTH_UNHEALTHY);
	pass(100);
	assert_true(pass(100).changed);
}

static void test_flap_each_attempt_with_thresholds_one(void **state)
{
	/* The defaults (1/1): every attempt decides. */
	for (int i = 0; i < 5; i++) {
		health_step s = fail_attempt();
		assert_true(s.changed);
		assert_int_equal(s.to, LB_HEALTH_UNHEALTHY);
		s = pass(100);
		assert_true(s.changed);
		assert_int_equal(s.to, LB_HEALTH_HEALTHY);
	}
	assert_int_equal(fsm.checks, 10);
	assert_int_equal(fsm.failures, 5);
}

static void test_reason_follows_last_failure(void **state)
{
	failr(HEALTH_TIMEOUT, "waiting for the response timed out after 5 ms");
	assert_string_equal(
	    health_fsm_reason(&fsm),
	    "timeout: waiting for the response timed out after 5 ms");
	assert_int_equal(fsm.last_reason, HEALTH_TIMEOUT);
	health_step s = failr(HEALTH_CODE_MISMATCH, "HTTP 500, expected 200");
	assert_false(s.changed); /* same state, new reason */
	assert_string_equal(health_fsm_reason(&fsm),
			    "response code mismatch: HTTP 500, expected 200");
	failr(HEALTH_BODY_MISMATCH, "");
	assert_string_equal(health_fsm_reason(&fsm), "body mismatch");
	/* Detail longer than the reason field: truncated, terminated. */
	health_result r = {.reason = HEALTH_CODE_MISMATCH};
	memset(r.detail, 'x', sizeof(r.detail) - 1);
	health_fsm_feed(&fsm, &mon, &r, ++clock_ms);
	assert_int_equal(strlen(health_fsm_reason(&fsm)),
			 HEALTH_REASON_MAX - 1);
	assert_memory_equal(health_fsm_reason(&fsm),
			    "response code mismatch: xxx", 27);
}

static void test_rtt_average(void **state)
{
	assert_int_equal(health_rtt_ewma(0, 1000), 1000);
	assert_int_equal(health_rtt_ewma(1000, 2000), 1300);
	assert_int_equal(health_rtt_ewma(1300, 0), 910); /* 0 counts as 1 */
	assert_int_equal(health_rtt_ewma(0, 0), 1);
	assert_int_equal(health_rtt_ewma(UINT32_MAX, UINT32_MAX), UINT32_MAX);
	pass(1000);
	pass(2000);
	assert_int_equal(fsm.rtt_us, 1300);
	/* Failed probes do not move the average. */
	fail_attempt();
	assert_int_equal(fsm.rtt_us, 1300);
	pass(1300);
	assert_int_equal(fsm.rtt_us, 1300);
	/* Converges towards a steady value. */
	for (int i = 0; i < 40; i++)
		pass(500);
	assert_in_range(fsm.rtt_us, 500, 502);
}

static void test_zero_thresholds_act_as_one(void **state)
{
	mon.consecutive_up = 0;
	mon.consecutive_down = 0;
	pass(1);
	assert_true(fail_attempt().changed);
	assert_true(pass(1).changed);
}

static void test_restart_from_healthy(void **state)
{
	/* A checker restarted with published state keeps its thresholds. */
	health_fsm_init(&fsm, LB_HEALTH_HEALTHY);
	mon.consecutive_down = 2;
	assert_false(fail_attempt().changed);
	assert_true(fail_attempt().changed);
}

static void test_counters_saturate_runs(void **state)
{
	mon.consecutive_up = 2;
	pass(1);
	fsm.up_run = UINT32_MAX;
	pass(1);
	assert_int_equal(fsm.up_run, UINT32_MAX);
	assert_int_equal(fsm.state, LB_HEALTH_HEALTHY);
}

static void test_pool_eval(void **state)
{
	/* has_monitor, enabled, healthy, unhealthy, minimum */
	assert_int_equal(health_pool_eval(false, 3, 0, 0, 1), LB_POOL_HEALTHY);
	assert_int_equal(health_pool_eval(false, 1, 0, 0, 2), LB_POOL_CRITICAL);
	assert_int_equal(health_pool_eval(false, 0, 0, 0, 1), LB_POOL_CRITICAL);
	assert_int_equal(health_pool_eval(true, 0, 0, 0, 1), LB_POOL_CRITICAL);
	assert_int_equal(health_pool_eval(true, 3, 0, 0, 1), LB_POOL_UNKNOWN);
	assert_int_equal(health_pool_eval(true, 3, 0, 0, 0), LB_POOL_UNKNOWN);
	assert_int_equal(health_pool_eval(true, 3, 3, 0, 1), LB_POOL_HEALTHY);
	assert_int_equal(health_pool_eval(true, 3, 3, 0, 3), LB_POOL_HEALTHY);
	/* Healthy with some still unknown: unknown ones are not failures. */
	assert_int_equal(health_pool_eval(true, 3, 2, 0, 2), LB_POOL_HEALTHY);
	assert_int_equal(health_pool_eval(true, 3, 2, 1, 2), LB_POOL_DEGRADED);
	assert_int_equal(health_pool_eval(true, 3, 1, 2, 1), LB_POOL_DEGRADED);
	assert_int_equal(health_pool_eval(true, 3, 1, 2, 2), LB_POOL_CRITICAL);
	assert_int_equal(health_pool_eval(true, 3, 0, 3, 1), LB_POOL_CRITICAL);
	/* Not enough verdicts yet to know. */
	assert_int_equal(health_pool_eval(true, 3, 1, 0, 2), LB_POOL_UNKNOWN);
	assert_int_equal(health_pool_eval(true, 3, 1, 1, 2), LB_POOL_UNKNOWN);
	assert_int_equal(health_pool_eval(true, 3, 0, 1, 2), LB_POOL_UNKNOWN);
	assert_int_equal(health_pool_eval(true, 3, 0, 2, 2), LB_POOL_CRITICAL);
	/* Inconsistent counts are clamped, never wrap. */
	assert_int_equal(health_pool_eval(true, 2, 5, 5, 1), LB_POOL_HEALTHY);
	assert_int_equal(health_pool_eval(true, 2, 1, 5, 1), LB_POOL_DEGRADED);
}

static void test_names(void **state)
{
	assert_string_equal(health_reason_text(HEALTH_CONNECT_FAILED),
			    "TCP connection failed");
	assert_string_equal(health_reason_text(HEALTH_TIMEOUT), "timeout");
	assert_string_equal(health_reason_text(HEALTH_CODE_MISMATCH),
			    "response code mismatch");
	assert_string_equal(health_reason_text(HEALTH_BODY_MISMATCH),
			    "body mismatch");
	assert_string_equal(health_reason_text(HEALTH_TLS_ERROR), "TLS error");
	assert_string_equal(health_reason_text(HEALTH_PROTOCOL_ERROR),
			    "protocol error");
	assert_string_equal(health_reason_text(HEALTH_OK), "");
	assert_string_equal(health_reason_text((health_reason)99), "?");
	assert_string_equal(health_state_name(LB_HEALTH_UNKNOWN), "unknown");
	assert_string_equal(health_state_name(LB_HEALTH_HEALTHY), "healthy");
	assert_string_equal(health_state_name(LB_HEALTH_UNHEALTHY),
			    "unhealthy");
	assert_string_equal(health_pool_state_name(LB_POOL_UNKNOWN), "unknown");
	assert_string_equal(health_pool_state_name(LB_POOL_HEALTHY), "healthy");
	assert_string_equal(health_pool_state_name(LB_POOL_DEGRADED),
			    "degraded");
	assert_string_equal(health_pool_state_name(LB_POOL_CRITICAL),
			    "critical");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_first_pass_decides_healthy, setup),
	    cmocka_unit_test_setup(test_first_failed_attempt_decides_unhealthy,
				   setup),
	    cmocka_unit_test_setup(test_retry_that_passes_is_a_pass, setup),
	    cmocka_unit_test_setup(test_consecutive_down, setup),
	    cmocka_unit_test_setup(test_consecutive_down_with_retries, setup),
	    cmocka_unit_test_setup(test_consecutive_up, setup),
	    cmocka_unit_test_setup(test_consecutive_zero_is_one, setup),
	    cmocka_unit_test_setup(test_flaps_do_not_change_state, setup),
	    cmocka_unit_test_setup(test_flap_each_attempt_with_thresholds_one,
				   setup),
	    cmocka_unit_test_setup(test_reason_follows_last_failure, setup),
	    cmocka_unit_test_setup(test_rtt_average, setup),
	    cmocka_unit_test_setup(test_zero_thresholds_act_as_one, setup),
	    cmocka_unit_test_setup(test_restart_from_healthy, setup),
	    cmocka_unit_test_setup(test_counters_saturate_runs, setup),
	    cmocka_unit_test(test_pool_eval),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
