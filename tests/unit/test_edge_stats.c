/* Unit tests for edge_stats (request counters per snapshot and worker):
 * the routes of each load balancer (every pool it can use, once), the
 * cells a request lands in, histogram buckets, sums over workers, and the
 * carry across a config change (same lb id / pool id / origin name keep
 * their totals, incremental so a second carry adds only what is new). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/cfg_load.h"
#include "edge/edge_stats.h"

static const char *const yaml_a =
    "edge: { name: t, listen: { http: [\"127.0.0.1:1\"] } }\n"
    "pools:\n"
    "  - id: p1\n"
    "    origins:\n"
    "      - { name: o1, address: 127.0.0.1, port: 1 }\n"
    "      - { name: o2, address: 127.0.0.1, port: 2 }\n"
    "  - id: p2\n"
    "    origins: [ { name: o3, address: 127.0.0.1, port: 3 } ]\n"
    "  - id: p3\n"
    "    origins: [ { name: o4, address: 127.0.0.1, port: 4 } ]\n"
    "load_balancers:\n"
    "  - name: a.example.com\n"
    "    default_pools: [p1, p2]\n"
    "    fallback_pool: p2\n"
    "    region_pools: { WEU: [p3, p1] }\n"
    "  - name: b.example.com\n"
    "    default_pools: [p3]\n";

/* The change: p1 loses o1 and gains o5, p2 goes, b's id stays. */
static const char *const yaml_b =
    "edge: { name: t, listen: { http: [\"127.0.0.1:1\"] } }\n"
    "pools:\n"
    "  - id: p3\n"
    "    origins: [ { name: o4, address: 127.0.0.1, port: 4 } ]\n"
    "  - id: p1\n"
    "    origins:\n"
    "      - { name: o5, address: 127.0.0.1, port: 5 }\n"
    "      - { name: o2, address: 127.0.0.1, port: 2 }\n"
    "load_balancers:\n"
    "  - name: b.example.com\n"
    "    default_pools: [p3]\n"
    "  - name: a.example.com\n"
    "    default_pools: [p1]\n"
    "    region_pools: { WEU: [p3] }\n";

static cfg_snapshot *load(const char *y)
{
	cfg_snapshot *s = NULL;
	cfg_diag d = {0};
	int r = cfg_load_string("test.yaml", y, strlen(y), &s, &d);
	for (size_t i = 0; i < d.n; i++)
		print_error("%s\n", d.msgs[i]);
	cfg_diag_free(&d);
	assert_int_equal(r, 0);
	return s;
}

static const cfg_pool *pool(const cfg_snapshot *c, const char *id)
{
	for (size_t i = 0; i < c->npools; i++)
		if (!strcmp(c->pools[i].id, id))
			return &c->pools[i];
	fail_msg("no pool %s", id);
	return NULL;
}

static const cfg_origin *origin(const cfg_pool *p, const char *name)
{
	for (size_t i = 0; i < p->norigins; i++)
		if (!strcmp(p->origins[i].name, name))
			return &p->origins[i];
	fail_msg("no origin %s", name);
	return NULL;
}

static const cfg_lb *lb(const cfg_snapshot *c, const char *name)
{
	for (size_t i = 0; i < c->nlbs; i++)
		if (!strcmp(c->lbs[i].name, name))
			return &c->lbs[i];
	fail_msg("no lb %s", name);
	return NULL;
}

static uint64_t req_total(const edge_stats *s, const cfg_lb *l,
			  const cfg_pool *p, const cfg_origin *o, int cls)
{
	uint64_t *t = calloc(s->ncells, sizeof(*t));
	edge_stats_sum(s, t);
	uint64_t v = t[edge_stats_req_cell(edge_stats_route_of(s, l, p, o),
					   (uint32_t)cls)];
	free(t);
	return v;
}

static uint64_t lb_cell(const edge_stats *s, const cfg_lb *l, size_t cell)
{
	uint64_t *t = calloc(s->ncells, sizeof(*t));
	edge_stats_sum(s, t);
	uint64_t v = t[s->off_lb + edge_stats_lb_of(s, l) * EDGE_LBC_N + cell];
	free(t);
	return v;
}

static void test_routes(void **state)
{
	cfg_snapshot *c = load(yaml_a);
	edge_stats *s = edge_stats_new(c, 3);
	const cfg_lb *a = lb(c, "a.example.com"), *b = lb(c, "b.example.com");
	/* none, a: (a,-), p1 x2, p2, p3; b: (b,-), p3 */
	assert_int_equal(s->nroutes, 1 + 1 + 2 + 1 + 1 + 1 + 1);
	assert_int_equal(s->lbp_n[edge_stats_lb_of(s, a)], 3);
	assert_int_equal(s->ncells % 8, 0);
	assert_int_equal((uintptr_t)edge_stats_block(s, 1) % 64, 0);
	uint32_t seen[16] = {0};
	const char *pools[] = {"p1", "p1", "p2", "p3"};
	const char *origins[] = {"o1", "o2", "o3", "o4"};
	for (int i = 0; i < 4; i++) {
		const cfg_pool *p = pool(c, pools[i]);
		uint32_t r =
		    edge_stats_route_of(s, a, p, origin(p, origins[i]));
		assert_true(r > 0 && r < s->nroutes);
		assert_int_equal(seen[r]++, 0);
		assert_int_equal(s->routes[r].origin,
				 (int32_t)origin(p, origins[i])->index);
	}
	/* Local answers and unknown combinations. */
	assert_int_equal(edge_stats_route_of(s, NULL, NULL, NULL), 0);
	uint32_t al = edge_stats_route_of(s, a, NULL, NULL);
	assert_int_equal(s->routes[al].pool, -1);
	const cfg_pool *p1 = pool(c, "p1");
	assert_int_equal(edge_stats_route_of(s, b, p1, origin(p1, "o1")),
			 edge_stats_route_of(s, b, NULL, NULL));
	edge_stats_free(s);
	cfg_snapshot_free(c);
}

static void test_buckets(void **state)
{
	assert_int_equal(edge_stats_bucket(0), 0);
	assert_int_equal(edge_stats_bucket(500000), 0); /* le is inclusive */
	assert_int_equal(edge_stats_bucket(500001), 1);
	assert_int_equal(edge_stats_bucket(1000000000ull), 10);
	assert_int_equal(edge_stats_bucket(60000000000ull), 15);
	assert_int_equal(edge_stats_bucket(60000000001ull), 16);
	assert_int_equal(edge_stats_bucket(UINT64_MAX), EDGE_STATS_NBOUNDS);
}

static void test_request_cells(void **state)
{
	cfg_snapshot *c = load(yaml_a);
	edge_stats *s = edge_stats_new(c, 2);
	const cfg_lb *a = lb(c, "a.example.com");
	const cfg_pool *p1 = pool(c, "p1");
	const cfg_origin *o2 = origin(p1, "o2");
	edge_stats_request(s, 0, a, p1, o2, 200, 2000000, 1000000, 1, 0);
	edge_stats_request(s, 1, a, p1, o2, 204, 3000000, 2000000, 0, 0);
	edge_stats_request(s, 1, a, p1, o2, 502, 1000, -1, 2, 1);
	edge_stats_request(s, 0, a, NULL, NULL, 503, 1000, -1, 0, 0);
	edge_stats_request(s, 0, NULL, NULL, NULL, 404, 1000, -1, 0, 0);
	edge_stats_request(s, 0, NULL, NULL, NULL, 101, 1000, -1, 0, 0);
	edge_stats_request(s, 0, NULL, NULL, NULL, 499, 1000, -1, 0, 0);
	assert_int_equal(req_total(s, a, p1, o2, 1), 2);
	assert_int_equal(req_total(s, a, p1, o2, 4), 1);
	assert_int_equal(req_total(s, a, NULL, NULL, 4), 1);
	assert_int_equal(req_total(s, NULL, NULL, NULL, 3), 2);
	assert_int_equal(req_total(s, NULL, NULL, NULL, 0), 1);
	/* Histograms: 2 ms in bucket 2 (le 0.0025), 3 ms in bucket 3. */
	assert_int_equal(lb_cell(s, a, EDGE_LBC_DUR + 2), 1);
	assert_int_equal(lb_cell(s, a, EDGE_LBC_DUR + 3), 1);
	assert_int_equal(lb_cell(s, a, EDGE_LBC_DUR + 0), 2);
	assert_int_equal(lb_cell(s, a, EDGE_LBC_DUR_SUM), 5002000);
	assert_int_equal(lb_cell(s, a, EDGE_LBC_UP + 1), 1);
	assert_int_equal(lb_cell(s, a, EDGE_LBC_UP + 2), 1);
	assert_int_equal(lb_cell(s, a, EDGE_LBC_UP_SUM), 3000000);
	assert_int_equal(lb_cell(s, a, EDGE_LBC_RETRIES), 3);
	assert_int_equal(lb_cell(s, a, EDGE_LBC_FAILOVERS), 1);
	edge_stats_origin_failure(s, 1, o2, false);
	edge_stats_origin_failure(s, 0, o2, true);
	uint64_t *t = calloc(s->ncells, sizeof(*t));
	edge_stats_sum(s, t);
	const uint64_t *oc = t + s->off_origin + o2->index * EDGE_OC_N;
	assert_int_equal(oc[EDGE_OC_FAILURES], 2);
	assert_int_equal(oc[EDGE_OC_EJECTIONS], 1);
	free(t);
	edge_stats_free(s);
	cfg_snapshot_free(c);
}

static void test_carry(void **state)
{
	cfg_snapshot *ca = load(yaml_a), *cb = load(yaml_b);
	edge_stats *sa = edge_stats_new(ca, 2), *sb = edge_stats_new(cb, 2);
	const cfg_lb *aa = lb(ca, "a.example.com"),
		     *ab = lb(cb, "a.example.com");
	const cfg_pool *p1a = pool(ca, "p1"), *p1b = pool(cb, "p1");
	const cfg_pool *p2a = pool(ca, "p2"), *p3a = pool(ca, "p3");
	const cfg_pool *p3b = pool(cb, "p3");
	edge_stats_request(sa, 0, aa, p1a, origin(p1a, "o2"), 200, 1, 1, 1, 0);
	edge_stats_request(sa, 1, aa, p1a, origin(p1a, "o2"), 200, 1, 1, 0, 0);
	edge_stats_request(sa, 1, aa, p1a, origin(p1a, "o1"), 200, 1, 1, 0, 0);
	edge_stats_request(sa, 0, aa, p2a, origin(p2a, "o3"), 200, 1, 1, 0, 0);
	edge_stats_request(sa, 0, aa, p3a, origin(p3a, "o4"), 500, 1, 1, 0, 0);
	edge_stats_request(sa, 0, NULL, NULL, NULL, 404, 1, -1, 0, 0);
	edge_stats_origin_failure(sa, 0, origin(p3a, "o4"), true);

	edge_stats_carry_stats(sa, sb);
	assert_int_equal(req_total(sb, ab, p1b, origin(p1b, "o2"), 1), 2);
	assert_int_equal(req_total(sb, ab, p1b, origin(p1b, "o5"), 1), 0);
	assert_int_equal(req_total(sb, ab, p3b, origin(p3b, "o4"), 4), 1);
	assert_int_equal(req_total(sb, NULL, NULL, NULL, 3), 1);
	assert_int_equal(lb_cell(sb, ab, EDGE_LBC_DUR), 5);
	assert_int_equal(lb_cell(sb, ab, EDGE_LBC_RETRIES), 1);
	uint64_t *t = calloc(sb->ncells, sizeof(*t));
	edge_stats_sum(sb, t);
	assert_int_equal(
	    t[sb->off_origin + origin(p3b, "o4")->index * EDGE_OC_N +
	      EDGE_OC_EJECTIONS],
	    1);
	free(t);

	/* Requests that finish on the old snapshot after the swap: a second
	 * carry moves only those. */
	edge_stats_request(sa, 1, aa, p1a, origin(p1a, "o2"), 200, 1, 1, 0, 0);
	edge_stats_carry_stats(sa, sb);
	assert_int_equal(req_total(sb, ab, p1b, origin(p1b, "o2"), 1), 3);
	assert_int_equal(lb_cell(sb, ab, EDGE_LBC_DUR), 6);
	edge_stats_carry_stats(sa, sb);
	assert_int_equal(req_total(sb, ab, p1b, origin(p1b, "o2"), 1), 3);

	/* And on to a third snapshot: nothing counted twice. */
	cfg_snapshot *cc = load(yaml_a);
	edge_stats *sc = edge_stats_new(cc, 2);
	const cfg_pool *p1c = pool(cc, "p1");
	edge_stats_request(sb, 0, ab, p1b, origin(p1b, "o2"), 200, 1, 1, 0, 0);
	edge_stats_carry_stats(sb, sc);
	assert_int_equal(
	    req_total(sc, lb(cc, "a.example.com"), p1c, origin(p1c, "o2"), 1),
	    4);
	/* o1 left in b and came back in c: b had no count for it. */
	assert_int_equal(
	    req_total(sc, lb(cc, "a.example.com"), p1c, origin(p1c, "o1"), 1),
	    0);
	edge_stats_free(sa);
	edge_stats_free(sb);
	edge_stats_free(sc);
	cfg_snapshot_free(ca);
	cfg_snapshot_free(cb);
	cfg_snapshot_free(cc);
}

/* Rule matches: a cell per rule, counted per bit, carried by (load
 * balancer id, rule name) to a config that reorders and renames rules. */
static const char *const yaml_rules_a =
    "edge: { name: t, listen: { http: [\"127.0.0.1:1\"] } }\n"
    "pools: [ { id: p, origins: [ { name: o, address: 127.0.0.1 } ] },\n"
    "         { id: q, origins: [ { name: o, address: 127.0.0.2 } ] } ]\n"
    "load_balancers:\n"
    "  - name: a.example.com\n"
    "    default_pools: [p]\n"
    "    rules:\n"
    "      - { name: api, overrides: { default_pools: [q] } }\n"
    "      - { condition: ssl, terminates: true }\n";
static const char *const yaml_rules_b =
    "edge: { name: t, listen: { http: [\"127.0.0.1:1\"] } }\n"
    "pools: [ { id: p, origins: [ { name: o, address: 127.0.0.1 } ] },\n"
    "         { id: q, origins: [ { name: o, address: 127.0.0.2 } ] } ]\n"
    "load_balancers:\n"
    "  - name: a.example.com\n"
    "    default_pools: [p]\n"
    "    rules:\n"
    "      - { name: new }\n"
    "      - { name: api, overrides: { default_pools: [q] } }\n";

static uint64_t rule_cell(const edge_stats *s, size_t li, size_t k)
{
	uint64_t *t = calloc(s->ncells, sizeof(*t));
	edge_stats_sum(s, t);
	uint64_t v = t[s->off_rule + s->rule_first[li] + k];
	free(t);
	return v;
}

static void test_rule_cells(void **state)
{
	(void)state;
	cfg_snapshot *ca = load(yaml_rules_a), *cb = load(yaml_rules_b);
	edge_stats *sa = edge_stats_new(ca, 2), *sb = edge_stats_new(cb, 2);
	const cfg_lb *la = &ca->lbs[0];
	edge_stats_rules(sa, 0, la, 3);			/* both rules */
	edge_stats_rules(sa, 1, la, 1);			/* api */
	edge_stats_rules(sa, 1, la, UINT64_C(1) << 40); /* no such rule */
	edge_stats_rules(sa, 1, &ca->lbs[0].rules[0].eff[0], 1); /* not a */
	assert_int_equal(rule_cell(sa, 0, 0), 2);
	assert_int_equal(rule_cell(sa, 0, 1), 1);
	/* Requests still count under the routed load balancer's pools the
	 * rule sends to. */
	const cfg_pool *q = pool(ca, "q");
	assert_int_not_equal(edge_stats_route_of(sa, la, q, &q->origins[0]),
			     edge_stats_route_of(sa, la, NULL, NULL));
	edge_stats_carry_stats(sa, sb);
	assert_int_equal(rule_cell(sb, 0, 0), 0); /* "new" */
	assert_int_equal(rule_cell(sb, 0, 1), 2); /* "api", now second */
	char buf[24];
	assert_string_equal(
	    edge_stats_rule_name(&ca->lbs[0].rules[1], buf, sizeof(buf)), "#1");
	edge_stats_free(sa);
	edge_stats_free(sb);
	cfg_snapshot_free(ca);
	cfg_snapshot_free(cb);
}

/* Many rules: the carry's name map holds a key per rule too (it was sized
 * for routes, load balancers and origins only, and filled up: the carry
 * of a config with more rules than that never returned). */
static cfg_snapshot *load_rules(size_t n, const char *first)
{
	size_t cap = 512 + n * 64;
	char *y = malloc(cap);
	size_t len = (size_t)snprintf(
	    y, cap,
	    "edge: { name: t, listen: { http: [\"127.0.0.1:1\"] } }\n"
	    "pools: [ { id: p, origins: [ { name: o, address: 127.0.0.1 } ] "
	    "} ]\n"
	    "load_balancers:\n"
	    "  - name: a.example.com\n"
	    "    default_pools: [p]\n"
	    "    rules:\n"
	    "      - { name: %s }\n",
	    first);
	for (size_t i = 1; i < n; i++)
		len += (size_t)snprintf(y + len, cap - len,
					"      - { condition: ssl }\n");
	cfg_snapshot *s = load(y);
	free(y);
	return s;
}

static void test_carry_many_rules(void **state)
{
	(void)state;
	cfg_snapshot *ca = load_rules(64, "a"), *cb = load_rules(64, "b");
	edge_stats *sa = edge_stats_new(ca, 1), *sb = edge_stats_new(cb, 1);
	edge_stats_rules(sa, 0, &ca->lbs[0], UINT64_MAX);
	edge_stats_carry_stats(sa, sb);
	assert_int_equal(rule_cell(sb, 0, 0), 0);  /* "b" is new */
	assert_int_equal(rule_cell(sb, 0, 63), 1); /* "#63" carried */
	edge_stats_free(sa);
	edge_stats_free(sb);
	cfg_snapshot_free(ca);
	cfg_snapshot_free(cb);
}

/* Names need not be unique, but series and carry keys must be: a name
 * another rule of the load balancer shares, or one of the "#N" form, is
 * shown as "#N" (its place). Two rules named "d" were two series with
 * the same labels, and the carry gave both the first one's count. */
static const char *const yaml_rules_dup =
    "edge: { name: t, listen: { http: [\"127.0.0.1:1\"] } }\n"
    "pools: [ { id: p, origins: [ { name: o, address: 127.0.0.1 } ] } ]\n"
    "load_balancers:\n"
    "  - name: a.example.com\n"
    "    default_pools: [p]\n"
    "    rules:\n"
    "      - { name: d }\n"
    "      - { name: d }\n"
    "      - { name: \"#3\" }\n"
    "      - { condition: ssl }\n"
    "      - { name: e }\n";

static void test_rule_names_unique(void **state)
{
	(void)state;
	cfg_snapshot *ca = load(yaml_rules_dup), *cb = load(yaml_rules_dup);
	const char *want[] = {"#0", "#1", "#2", "#3", "e"};
	char buf[24];
	for (size_t k = 0; k < 5; k++)
		assert_string_equal(edge_stats_rule_name(&ca->lbs[0].rules[k],
							 buf, sizeof(buf)),
				    want[k]);
	edge_stats *sa = edge_stats_new(ca, 1), *sb = edge_stats_new(cb, 1);
	edge_stats_rules(sa, 0, &ca->lbs[0], 1);
	edge_stats_rules(sa, 0, &ca->lbs[0], 2);
	edge_stats_rules(sa, 0, &ca->lbs[0], 2);
	edge_stats_carry_stats(sa, sb);
	assert_int_equal(rule_cell(sb, 0, 0), 1);
	assert_int_equal(rule_cell(sb, 0, 1), 2);
	edge_stats_free(sa);
	edge_stats_free(sb);
	cfg_snapshot_free(ca);
	cfg_snapshot_free(cb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_buckets),
	    cmocka_unit_test(test_request_cells),
	    cmocka_unit_test(test_carry),
	    cmocka_unit_test(test_rule_cells),
	    cmocka_unit_test(test_carry_many_rules),
	    cmocka_unit_test(test_rule_names_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
