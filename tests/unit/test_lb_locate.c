/* Unit tests for lb_locate (location_strategy of DNS-only answers): which
 * policies prefer the Client Subnet, which lookups are made and in what
 * order, the fallbacks (resolver_ip, then the PoP), and steering with the
 * chosen location (geo by country, proximity from the client's point). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lb/lb_locate.h"
#include "lb/lb_steer.h"

/* Pools: us-east (Ashburn), eu-west (Amsterdam), ap-ne (Tokyo). */
enum { P_US, P_EU, P_AP, NP };

static cfg_origin origins[NP];
static cfg_pool pools[NP];
static const cfg_pool *defaults[NP];
static const cfg_pool *l_ap[1], *l_eu[1];
static cfg_pool_map country_map[1], region_map[1];
static cfg_lb lb;
static cfg_edge edge;

static int setup(void **state)
{
	static const char *const ids[NP] = {"us-east", "eu-west", "ap-ne"};
	static const double coords[NP][2] = {
	    {39.04, -77.49}, {52.37, 4.90}, {35.68, 139.69}};
	for (int i = 0; i < NP; i++) {
		origins[i] = (cfg_origin){.name = ids[i],
					  .weight = 1,
					  .enabled = true,
					  .index = (uint32_t)i};
		pools[i] = (cfg_pool){.id = ids[i],
				      .name = ids[i],
				      .enabled = true,
				      .origins = &origins[i],
				      .norigins = 1,
				      .minimum_origins = 1,
				      .latitude = coords[i][0],
				      .longitude = coords[i][1],
				      .has_location = true,
				      .index = (uint32_t)i};
		defaults[i] = &pools[i];
	}
	l_ap[0] = &pools[P_AP];
	l_eu[0] = &pools[P_EU];
	country_map[0] =
	    (cfg_pool_map){.key = "JP", .pools = l_ap, .npools = 1};
	region_map[0] =
	    (cfg_pool_map){.key = "WEU", .pools = l_eu, .npools = 1};
	lb = (cfg_lb){.name = "lb.example.com",
		      .enabled = true,
		      .default_pools = defaults,
		      .ndefault_pools = NP,
		      .steering_policy = CFG_STEER_GEO,
		      .country_pools = country_map,
		      .ncountry_pools = 1,
		      .region_pools = region_map,
		      .nregion_pools = 1,
		      .location_strategy = {.mode = CFG_LOC_POP,
					    .prefer_ecs = CFG_ECS_PROXIMITY}};
	/* The edge (the PoP) is in Ashburn, region ENAM. */
	edge = (cfg_edge){.name = "iad",
			  .region = "ENAM",
			  .latitude = 39.04,
			  .longitude = -77.49,
			  .has_location = true};
	(void)state;
	return 0;
}

/* A fake lookup: what each source gives, and the calls made. */
typedef struct fake {
	lb_loc ecs, resolver;
	lb_loc_source calls[4];
	unsigned needs[4];
	int ncalls;
} fake;

static void fake_lookup(void *arg, lb_loc_source src, unsigned need,
			lb_loc *out)
{
	fake *f = arg;
	assert_true(f->ncalls < 4);
	f->needs[f->ncalls] = need;
	f->calls[f->ncalls++] = src;
	*out = src == LB_LOC_ECS ? f->ecs : f->resolver;
}

static const lb_loc JP = {.country = "JP", .region = "NEAS"};
static const lb_loc FR = {.country = "FR", .region = "WEU"};
static const lb_loc TOKYO = {.country = "JP",
			     .region = "NEAS",
			     .has_point = true,
			     .lat = 35.6,
			     .lon = 139.7};
static const lb_loc PARIS = {.country = "FR",
			     .region = "WEU",
			     .has_point = true,
			     .lat = 48.9,
			     .lon = 2.35};

static void test_needs(void **state)
{
	assert_int_equal(lb_locate_needs(&lb), LB_LOC_NEED_AREA);
	lb.steering_policy = CFG_STEER_PROXIMITY;
	assert_int_equal(lb_locate_needs(&lb), LB_LOC_NEED_POINT);
	lb.steering_policy = CFG_STEER_OFF;
	assert_int_equal(lb_locate_needs(&lb), 0);
	lb.steering_policy = CFG_STEER_RANDOM;
	assert_int_equal(lb_locate_needs(&lb), 0);
	lb.steering_policy = CFG_STEER_DYNAMIC_LATENCY;
	assert_int_equal(lb_locate_needs(&lb), 0);
	/* "" with a geo map is geo. */
	lb.steering_policy = CFG_STEER_DEFAULT;
	assert_int_equal(lb_locate_needs(&lb), LB_LOC_NEED_AREA);
	lb.ncountry_pools = lb.nregion_pools = 0;
	assert_int_equal(lb_locate_needs(&lb), 0);
	(void)state;
}

static void test_prefers_ecs(void **state)
{
	static const struct {
		cfg_prefer_ecs pref;
		cfg_steering policy;
		bool want;
	} cases[] = {
	    {CFG_ECS_ALWAYS, CFG_STEER_GEO, true},
	    {CFG_ECS_ALWAYS, CFG_STEER_PROXIMITY, true},
	    {CFG_ECS_ALWAYS, CFG_STEER_OFF, true},
	    {CFG_ECS_NEVER, CFG_STEER_GEO, false},
	    {CFG_ECS_NEVER, CFG_STEER_PROXIMITY, false},
	    {CFG_ECS_PROXIMITY, CFG_STEER_PROXIMITY, true},
	    {CFG_ECS_PROXIMITY, CFG_STEER_GEO, false},
	    {CFG_ECS_GEO, CFG_STEER_GEO, true},
	    {CFG_ECS_GEO, CFG_STEER_PROXIMITY, false},
	    {CFG_ECS_GEO, CFG_STEER_DEFAULT, true}, /* "" with maps: geo */
	    {CFG_ECS_PROXIMITY, CFG_STEER_DEFAULT, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		lb.location_strategy.prefer_ecs = cases[i].pref;
		lb.steering_policy = cases[i].policy;
		assert_int_equal(lb_locate_prefers_ecs(&lb), cases[i].want);
	}
	(void)state;
}

static void test_usable(void **state)
{
	lb_loc none = {0}, region_only = {.region = "WEU"};
	assert_false(lb_locate_usable(&none, LB_LOC_NEED_AREA));
	assert_true(lb_locate_usable(&region_only, LB_LOC_NEED_AREA));
	assert_true(lb_locate_usable(&JP, LB_LOC_NEED_AREA));
	assert_false(lb_locate_usable(&JP, LB_LOC_NEED_POINT));
	assert_true(lb_locate_usable(&TOKYO, LB_LOC_NEED_POINT));
	assert_true(lb_locate_usable(&none, 0));
	(void)state;
}

static lb_loc_source run(fake *f, bool has_ecs, lb_loc *out, bool *consulted)
{
	f->ncalls = 0;
	return lb_locate(&lb, has_ecs, fake_lookup, f, out, consulted);
}

static void test_geo_sequences(void **state)
{
	fake f = {.ecs = JP, .resolver = FR};
	lb_loc out;
	bool consulted;

	/* prefer_ecs geo with geo steering: the subnet, one lookup. */
	lb.location_strategy.prefer_ecs = CFG_ECS_GEO;
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_ECS);
	assert_int_equal(f.ncalls, 1);
	assert_int_equal(f.calls[0], LB_LOC_ECS);
	assert_int_equal(f.needs[0], LB_LOC_NEED_AREA);
	assert_string_equal(out.country, "JP");
	assert_true(consulted);

	/* No subnet, mode pop: nothing looked up. */
	assert_int_equal(run(&f, false, &out, &consulted), LB_LOC_POP);
	assert_int_equal(f.ncalls, 0);
	assert_false(consulted);
	assert_string_equal(out.country, "");

	/* The subnet is unknown: mode pop gives the PoP, but the answer
	 * still depended on the subnet. */
	f.ecs = (lb_loc){0};
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_POP);
	assert_int_equal(f.ncalls, 1);
	assert_true(consulted);

	/* ... and mode resolver_ip asks for the resolver next. */
	lb.location_strategy.mode = CFG_LOC_RESOLVER_IP;
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_RESOLVER);
	assert_int_equal(f.ncalls, 2);
	assert_int_equal(f.calls[0], LB_LOC_ECS);
	assert_int_equal(f.calls[1], LB_LOC_RESOLVER);
	assert_string_equal(out.country, "FR");

	/* An unknown resolver too: the PoP. */
	f.resolver = (lb_loc){0};
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_POP);
	assert_int_equal(f.ncalls, 2);

	/* The default (prefer_ecs proximity) with geo steering ignores the
	 * subnet: resolver_ip locates by the resolver alone. */
	f.ecs = JP;
	f.resolver = FR;
	lb.location_strategy.prefer_ecs = CFG_ECS_PROXIMITY;
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_RESOLVER);
	assert_int_equal(f.ncalls, 1);
	assert_int_equal(f.calls[0], LB_LOC_RESOLVER);
	assert_false(consulted);

	/* never: the same. */
	lb.location_strategy.prefer_ecs = CFG_ECS_NEVER;
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_RESOLVER);
	assert_false(consulted);
	/* ... and with mode pop nothing at all. */
	lb.location_strategy.mode = CFG_LOC_POP;
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_POP);
	assert_int_equal(f.ncalls, 0);
	(void)state;
}

static void test_proximity_sequences(void **state)
{
	fake f = {.ecs = TOKYO, .resolver = PARIS};
	lb_loc out;
	bool consulted;

	lb.steering_policy = CFG_STEER_PROXIMITY;
	/* The default prefer_ecs (proximity) prefers the subnet here. */
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_ECS);
	assert_int_equal(f.needs[0], LB_LOC_NEED_POINT);
	assert_true(out.has_point);
	/* A country without coordinates is not enough for proximity. */
	f.ecs = JP;
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_POP);
	assert_true(consulted);
	assert_false(out.has_point);
	lb.location_strategy.mode = CFG_LOC_RESOLVER_IP;
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_RESOLVER);
	assert_true(out.lat > 48 && out.lat < 49);
	/* prefer_ecs geo does not apply to proximity. */
	lb.location_strategy.prefer_ecs = CFG_ECS_GEO;
	f.ecs = TOKYO;
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_RESOLVER);
	assert_false(consulted);
	(void)state;
}

static void test_no_location_policies(void **state)
{
	fake f = {.ecs = JP, .resolver = FR};
	lb_loc out;
	bool consulted;
	lb.location_strategy = (cfg_location_strategy){
	    .mode = CFG_LOC_RESOLVER_IP, .prefer_ecs = CFG_ECS_ALWAYS};
	lb.steering_policy = CFG_STEER_OFF;
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_POP);
	assert_int_equal(f.ncalls, 0);
	assert_false(consulted);
	lb.steering_policy = CFG_STEER_RANDOM;
	assert_int_equal(run(&f, true, &out, &consulted), LB_LOC_POP);
	assert_int_equal(f.ncalls, 0);
	/* No lookup function: the PoP. */
	lb.steering_policy = CFG_STEER_GEO;
	assert_int_equal(lb_locate(&lb, true, NULL, NULL, &out, &consulted),
			 LB_LOC_POP);
	(void)state;
}

static const cfg_pool *steer_from(const lb_loc *l)
{
	lb_steer_ctx ctx = {.edge = &edge};
	lb_locate_apply(l, &ctx);
	return lb_steer_pool(&lb, &ctx, NULL, 0);
}

static void test_steering_with_location(void **state)
{
	lb_loc pop = {0};
	/* geo: the subnet's country, else the edge's region. */
	assert_ptr_equal(steer_from(&JP), &pools[P_AP]);
	assert_ptr_equal(steer_from(&FR), &pools[P_EU]);  /* region WEU */
	assert_ptr_equal(steer_from(&pop), &pools[P_US]); /* ENAM: default */
	/* proximity: from the client's point, else from the edge. */
	lb.steering_policy = CFG_STEER_PROXIMITY;
	assert_ptr_equal(steer_from(&TOKYO), &pools[P_AP]);
	assert_ptr_equal(steer_from(&PARIS), &pools[P_EU]);
	assert_ptr_equal(steer_from(&pop), &pools[P_US]);
	assert_ptr_equal(steer_from(&JP), &pools[P_US]); /* no point */
	/* The edge without coordinates: failover order, unless the client
	 * has a point. */
	edge.has_location = false;
	pools[P_US].enabled = false;
	assert_ptr_equal(steer_from(&pop), &pools[P_EU]);
	assert_ptr_equal(steer_from(&TOKYO), &pools[P_AP]);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_needs, setup),
	    cmocka_unit_test_setup(test_prefers_ecs, setup),
	    cmocka_unit_test_setup(test_usable, setup),
	    cmocka_unit_test_setup(test_geo_sequences, setup),
	    cmocka_unit_test_setup(test_proximity_sequences, setup),
	    cmocka_unit_test_setup(test_no_location_policies, setup),
	    cmocka_unit_test_setup(test_steering_with_location, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
