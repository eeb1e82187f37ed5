/* Unit tests for lb_passive: ejection with backoff, the retry budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lb/lb_passive.h"
#include "lb/lb_select.h"

static void test_passive_ejection_and_backoff(void **state)
{
	lb_origin_state st;
	memset(&st, 0, sizeof(st));
	cfg_passive_health ph = {
	    .failures = 3, .ejection_ms = 1000, .max_ejection_ms = 3000};
	uint64_t d = 0;
	assert_false(lb_passive_failure(&st, &ph, 100, &d));
	assert_false(lb_passive_failure(&st, &ph, 100, &d));
	assert_true(lb_origin_routable(&st, 100));
	assert_true(lb_passive_failure(&st, &ph, 100, &d)); /* third: out */
	assert_int_equal(d, 1000);
	assert_false(lb_origin_routable(&st, 100));
	assert_false(lb_origin_routable(&st, 1099));
	assert_true(lb_origin_routable(&st, 1100));
	/* Failing again right after: the next ejection is twice as long,
	 * then capped. */
	for (int i = 0; i < 2; i++)
		assert_false(lb_passive_failure(&st, &ph, 1200, &d));
	assert_true(lb_passive_failure(&st, &ph, 1200, &d));
	assert_int_equal(d, 2000);
	for (int i = 0; i < 2; i++)
		lb_passive_failure(&st, &ph, 3300, &d);
	assert_true(lb_passive_failure(&st, &ph, 3300, &d));
	assert_int_equal(d, 3000);
	/* A success resets the count and the backoff. */
	lb_passive_success(&st);
	assert_int_equal(st.passive_fails, 0);
	assert_int_equal(st.ejections, 0);
	/* Failures inside a running ejection do not extend it. */
	lb_origin_state s2;
	memset(&s2, 0, sizeof(s2));
	for (int i = 0; i < 3; i++)
		lb_passive_failure(&s2, &ph, 0, &d);
	uint64_t until = s2.ejected_until;
	for (int i = 0; i < 9; i++)
		assert_false(lb_passive_failure(&s2, &ph, 10, &d));
	assert_int_equal(s2.ejected_until, until);
	/* failures 0: passive health off. */
	cfg_passive_health off = {0};
	for (int i = 0; i < 10; i++)
		assert_false(lb_passive_failure(&s2, &off, 5000, &d));
}

static void test_retry_budget(void **state)
{
	lb_retry_budget b;
	lb_retry_init(&b); /* a fresh worker can retry at once */
	for (int i = 0; i < LB_RETRY_START; i++)
		assert_true(lb_retry_spend(&b));
	assert_false(lb_retry_spend(&b));
	for (int i = 0; i < 10; i++)
		lb_retry_earn(&b, 20); /* 10 requests at 20%: 2 retries */
	assert_true(lb_retry_spend(&b));
	assert_true(lb_retry_spend(&b));
	assert_false(lb_retry_spend(&b));
	for (int i = 0; i < 100000; i++)
		lb_retry_earn(&b, 100); /* capped at 100 banked */
	int n = 0;
	while (lb_retry_spend(&b))
		n++;
	assert_int_equal(n, 100);
	lb_retry_earn(&b, 0);
	assert_false(lb_retry_spend(&b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_passive_ejection_and_backoff),
	    cmocka_unit_test(test_retry_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
