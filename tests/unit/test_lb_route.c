/* Unit tests for lb_route: exact beats wildcard, longest wildcard wins,
 * case, ports, trailing dots, disabled and DNS-only load balancers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lb/lb_route.h"

static cfg_lb lbs[6];
static cfg_snapshot snap;

static int setup(void **state)
{
	memset(lbs, 0, sizeof(lbs));
	const char *names[] = {"lb.example.com",   "*.example.com",
			       "*.eu.example.com", "off.example.com",
			       "dns.example.com",  "[::1]"};
	for (int i = 0; i < 6; i++) {
		lbs[i].name = names[i];
		lbs[i].enabled = true;
		lbs[i].proxied = true;
	}
	lbs[3].enabled = false;
	lbs[4].proxied = false;
	snap = (cfg_snapshot){.lbs = lbs, .nlbs = 6};
	*state = lb_router_build(&snap);
	return 0;
}

static int teardown(void **state)
{
	lb_router_free(*state);
	return 0;
}

static const cfg_lb *route(void **state, const char *host)
{
	return lb_route(*state, host, strlen(host));
}

static void test_exact_beats_wildcard(void **state)
{
	assert_ptr_equal(route(state, "lb.example.com"), &lbs[0]);
	assert_ptr_equal(route(state, "www.example.com"), &lbs[1]);
}

static void test_longest_wildcard_wins(void **state)
{
	assert_ptr_equal(route(state, "a.eu.example.com"), &lbs[2]);
	assert_ptr_equal(route(state, "a.b.eu.example.com"), &lbs[2]);
	assert_ptr_equal(route(state, "a.us.example.com"), &lbs[1]);
}

static void test_wildcard_needs_a_label(void **state)
{
	/* "*.example.com" does not match the apex itself. */
	assert_null(route(state, "example.com"));
	assert_null(route(state, "eu.example.com.evil"));
	assert_null(route(state, "xexample.com"));
}

static void test_case_port_and_dot(void **state)
{
	assert_ptr_equal(route(state, "LB.Example.COM"), &lbs[0]);
	assert_ptr_equal(route(state, "lb.example.com:8080"), &lbs[0]);
	assert_ptr_equal(route(state, "lb.example.com."), &lbs[0]);
	assert_ptr_equal(route(state, "[::1]:80"), &lbs[5]);
}

static void test_disabled_and_dns_only_not_routed(void **state)
{
	/* Fall through to the wildcard, not the disabled exact name. */
	assert_ptr_equal(route(state, "off.example.com"), &lbs[1]);
	assert_ptr_equal(route(state, "dns.example.com"), &lbs[1]);
}

static void test_empty_and_unknown(void **state)
{
	assert_null(route(state, ""));
	assert_null(route(state, ":80"));
	assert_null(route(state, "other.org"));
	char longhost[400];
	memset(longhost, 'a', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = '\0';
	assert_null(route(state, longhost));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_exact_beats_wildcard, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_longest_wildcard_wins, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_wildcard_needs_a_label, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_case_port_and_dot, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_disabled_and_dns_only_not_routed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_and_unknown, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
