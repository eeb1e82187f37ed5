/* Unit tests for lb_select: pool order, fallback, weighted random with a
 * fixed seed, weight 0, exclusion of tried origins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lb/lb_select.h"

static cfg_origin o_a[3], o_b[1];
static cfg_pool pools[2];
static const cfg_pool *defaults[2];
static cfg_lb lb;

static int setup(void **state)
{
	memset(o_a, 0, sizeof(o_a));
	memset(o_b, 0, sizeof(o_b));
	for (int i = 0; i < 3; i++) {
		o_a[i].enabled = true;
		o_a[i].weight = 1;
		o_a[i].index = (uint32_t)i;
	}
	o_b[0] = (cfg_origin){.enabled = true, .weight = 1, .index = 3};
	pools[0] = (cfg_pool){.id = "a", .enabled = true, .origins = o_a, .norigins = 3};
	pools[1] = (cfg_pool){.id = "b", .enabled = true, .origins = o_b, .norigins = 1};
	defaults[0] = &pools[0];
	defaults[1] = &pools[1];
	lb = (cfg_lb){.default_pools = defaults, .ndefault_pools = 2};
	return 0;
}

static void test_first_usable_pool(void **state)
{
	assert_ptr_equal(lb_pick_pool(&lb), &pools[0]);
	pools[0].enabled = false;
	assert_ptr_equal(lb_pick_pool(&lb), &pools[1]);
	pools[0].enabled = true;
	for (int i = 0; i < 3; i++)
		o_a[i].enabled = false;
	assert_ptr_equal(lb_pick_pool(&lb), &pools[1]);
}

static void test_fallback_pool(void **state)
{
	lb.ndefault_pools = 1;
	for (int i = 0; i < 3; i++)
		o_a[i].weight = 0; /* weight 0: no traffic */
	assert_null(lb_pick_pool(&lb));
	lb.fallback_pool = &pools[1];
	assert_ptr_equal(lb_pick_pool(&lb), &pools[1]);
}

static void test_weighted_distribution(void **state)
{
	o_a[0].weight = 0.5;
	o_a[1].weight = 0.25;
	o_a[2].weight = 0.25;
	uint64_t rng = 42;
	int count[3] = {0};
	for (int i = 0; i < 40000; i++) {
		const cfg_origin *o = lb_pick_origin(&pools[0], &rng, NULL, 0);
		assert_non_null(o);
		count[o->index]++;
	}
	/* Expect 20000/10000/10000; allow 3% of the total. */
	assert_in_range(count[0], 18800, 21200);
	assert_in_range(count[1], 8800, 11200);
	assert_in_range(count[2], 8800, 11200);
}

static void test_zero_weight_never_chosen(void **state)
{
	o_a[1].weight = 0;
	uint64_t rng = 7;
	for (int i = 0; i < 10000; i++)
		assert_int_not_equal(lb_pick_origin(&pools[0], &rng, NULL, 0)->index, 1);
}

static void test_tried_excluded(void **state)
{
	uint64_t rng = 9;
	uint32_t tried[2] = {0, 2};
	for (int i = 0; i < 1000; i++)
		assert_int_equal(lb_pick_origin(&pools[0], &rng, tried, 2)->index, 1);
	uint32_t all[3] = {0, 1, 2};
	assert_null(lb_pick_origin(&pools[0], &rng, all, 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_first_usable_pool, setup),
		cmocka_unit_test_setup(test_fallback_pool, setup),
		cmocka_unit_test_setup(test_weighted_distribution, setup),
		cmocka_unit_test_setup(test_zero_weight_never_chosen, setup),
		cmocka_unit_test_setup(test_tried_excluded, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
