/* Unit tests for lb_rules: priority order, disabled rules, fixed
 * responses, terminates, and overrides merged field by field (the last
 * matching rule wins), all from a config as an operator writes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/cfg_load.h"
#include "lb/lb_rules.h"

static const char yaml[] =
    "pools:\n"
    "  - { id: web, origins: [ { name: w, address: 127.0.0.1 } ] }\n"
    "  - { id: api, origins: [ { name: a, address: 127.0.0.2 } ] }\n"
    "  - { id: canary, origins: [ { name: c, address: 127.0.0.3 } ] }\n"
    "  - { id: spare, origins: [ { name: s, address: 127.0.0.4 } ] }\n"
    "load_balancers:\n"
    "  - name: lb.example.com\n"
    "    default_pools: [web]\n"
    "    fallback_pool: spare\n"
    "    session_affinity: cookie\n"
    "    rules:\n"
    "      - name: canary\n" /* written first, runs second (priority) */
    "        priority: 20\n"
    "        condition: http.request.headers[\"x-canary\"] eq \"1\"\n"
    "        overrides: { default_pools: [canary], session_affinity: none }\n"
    "      - name: api\n"
    "        priority: 10\n"
    "        condition: starts_with(http.request.uri.path, \"/api/\")\n"
    "        overrides: { default_pools: [api], fallback_pool: web }\n"
    "      - name: maintenance\n"
    "        priority: 30\n"
    "        condition: http.request.uri.path eq \"/admin\"\n"
    "        fixed_response: { status_code: 503, message_body: down }\n"
    "      - name: off\n"
    "        priority: 5\n"
    "        disabled: true\n"
    "        fixed_response: { status_code: 418 }\n"
    "      - name: stop\n"
    "        priority: 25\n"
    "        condition: http.request.uri.path eq \"/admin/stop\"\n"
    "        terminates: true\n"
    "      - name: after\n"
    "        priority: 35\n"
    "        condition: http.request.uri.path eq \"/admin\"\n"
    "        overrides: { default_pools: [spare] }\n"
    "      - name: blank\n"
    "        priority: 50\n"
    "        condition: \"  \"\n"
    "        disabled: true\n"
    "      - name: late\n"
    "        priority: 40\n"
    "        condition: http.request.uri.path eq \"/admin/stop\"\n"
    "        fixed_response: { status_code: 404 }\n";

static cfg_snapshot *snap;

static int setup(void **state)
{
	(void)state;
	cfg_diag d = {0};
	if (cfg_load_string("t.yaml", yaml, sizeof(yaml) - 1, &snap, &d)) {
		for (size_t i = 0; i < d.n; i++)
			print_error("%s\n", d.msgs[i]);
		cfg_diag_free(&d);
		return -1;
	}
	cfg_diag_free(&d);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cfg_snapshot_free(snap);
	return 0;
}

#define S(x) ((http_str){(x), (uint32_t)strlen(x)})

static lb_rules_result run(const char *path, const char *canary,
			   cfg_lb *scratch, bool *ok)
{
	http1_header h[1] = {{S("X-Canary"), S(canary ? canary : "")}};
	lb_expr_input in = {.method = S("GET"),
			    .target = S(path),
			    .headers = h,
			    .nheaders = canary ? 1 : 0};
	lb_rules_result r;
	*ok = lb_rules_apply(&snap->lbs[0], &in, scratch, &r);
	return r;
}

static const char *pool0(const cfg_lb *lb)
{
	return lb->ndefault_pools ? lb->default_pools[0]->id : "";
}

static void test_order_and_disabled(void **state)
{
	(void)state;
	const cfg_lb *lb = &snap->lbs[0];
	/* Disabled rules are left out; the rest in priority order. */
	assert_int_equal(lb->nrule_order, 6);
	/* A blank condition is no condition (always), as "" is. */
	assert_null(lb->rules[lb->nrules - 2].expr);
	const char *want[] = {"api",	     "canary", "stop",
			      "maintenance", "after",  "late"};
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(lb->rule_order[i]->name, want[i]);
}

static void test_no_match(void **state)
{
	(void)state;
	bool ok;
	lb_rules_result r = run("/", NULL, NULL, &ok);
	assert_true(ok);
	assert_ptr_equal(r.lb, &snap->lbs[0]);
	assert_null(r.fixed);
	assert_int_equal(r.nmatched, 0);
}

static void test_one_override(void **state)
{
	(void)state;
	bool ok;
	lb_rules_result r = run("/api/items", NULL, NULL, &ok);
	assert_true(ok);
	/* The rule's prepared load balancer: its fields, the rest kept. */
	assert_ptr_equal(r.lb, snap->lbs[0].rules[1].eff);
	assert_string_equal(pool0(r.lb), "api");
	assert_string_equal(r.lb->fallback_pool->id, "web");
	assert_int_equal(r.lb->session_affinity, CFG_AFF_COOKIE);
	assert_string_equal(r.lb->name, "lb.example.com");
	assert_string_equal(r.last->name, "api");
}

static void test_merge(void **state)
{
	(void)state;
	bool ok;
	/* Two rules with overrides: without scratch, the caller is told. */
	lb_rules_result r = run("/api/items", "1", NULL, &ok);
	assert_false(ok);
	cfg_lb scratch;
	r = run("/api/items", "1", &scratch, &ok);
	assert_true(ok);
	assert_ptr_equal(r.lb, &scratch);
	assert_int_equal(r.nmatched, 2);
	/* canary runs after api: its default_pools win; api's fallback and
	 * canary's affinity both hold. */
	assert_string_equal(pool0(r.lb), "canary");
	assert_string_equal(r.lb->fallback_pool->id, "web");
	assert_int_equal(r.lb->session_affinity, CFG_AFF_NONE);
	/* The configured load balancer is untouched. */
	assert_string_equal(pool0(&snap->lbs[0]), "web");
	assert_string_equal(snap->lbs[0].fallback_pool->id, "spare");
}

static void test_fixed_and_terminates(void **state)
{
	(void)state;
	bool ok;
	lb_rules_result r = run("/admin", "1", NULL, &ok);
	assert_true(ok);
	assert_non_null(r.fixed);
	assert_int_equal(r.fixed->fixed_response.status_code, 503);
	/* A fixed_response stops the rules ("after" is not applied) though
	 * its terminates stays as written. */
	assert_false(r.fixed->terminates);
	assert_int_equal(r.nmatched, 2);
	assert_string_equal(r.fixed->fixed_response.message_body, "down");
	/* The canary override before it still made the load balancer. */
	assert_string_equal(pool0(r.lb), "canary");
	/* An ACME challenge is never answered by a fixed_response: the
	 * rule is passed over (and so is not counted). */
	http1_header none[1] = {{S("X-Canary"), S("")}};
	lb_expr_input acme = {.method = S("GET"),
			      .target = S("/admin"),
			      .headers = none,
			      .acme_challenge = true};
	lb_rules_apply(&snap->lbs[0], &acme, NULL, &r);
	assert_null(r.fixed);
	assert_string_equal(r.last->name, "after");
	assert_string_equal(pool0(r.lb), "spare");
	/* "stop" terminates: "late" (404) is never reached. */
	r = run("/admin/stop", NULL, NULL, &ok);
	assert_null(r.fixed);
	assert_string_equal(r.last->name, "stop");
	assert_ptr_equal(r.lb, &snap->lbs[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_and_disabled),
	    cmocka_unit_test(test_no_match),
	    cmocka_unit_test(test_one_override),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_fixed_and_terminates),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
