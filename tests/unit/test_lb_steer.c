/* Unit tests for lb_steer (pool and origin steering) and lb_affinity
 * (session affinity decisions): every steering policy, fallback and
 * failover across pools, distributions with fixed seeds, consistent
 * hashing stability, geo precedence, dynamic latency with and without
 * data, proximity with real coordinates, least_* preferring idle, and
 * affinity cookies (roundtrip, tampering, attributes, zero-downtime
 * failover, drain). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "lb/lb_affinity.h"
#include "lb/lb_steer.h"

#define NORIGINS 8
#define NPOOLS	 5

/* P0 us-east (Ashburn), P1 eu-west (Amsterdam), P2 ap-se (Singapore),
 * P3 no coordinates, P4 the fallback. */
enum { P_US, P_EU, P_AP, P_NOLOC, P_FB };

static lb_origin_state st[NORIGINS];
static cfg_origin origins[NORIGINS];
static cfg_pool pools[NPOOLS];
static const cfg_pool *defaults[4];
static cfg_lb lb;
static cfg_edge edge;
static lb_steer_ctx ctx;
static uint64_t rng;

static const cfg_pool *l_us[1], *l_eu[1], *l_ap[1], *l_eu_us[2];
static cfg_pool_map pop_map[1], country_map[1], region_map[2];
static cfg_pool_weight weights[3];

static const char *const onames[NORIGINS] = {"use1",  "use2", "euw1", "euw2",
					     "apse1", "nl1",  "fb1",  "x"};

static void origin_init(int i)
{
	origins[i] = (cfg_origin){.name = onames[i],
				  .weight = 1,
				  .enabled = true,
				  .index = (uint32_t)i};
}

static void pool_init(int i, const char *id, int first, int n, double lat,
		      double lon, bool loc)
{
	pools[i] = (cfg_pool){.id = id,
			      .name = id,
			      .enabled = true,
			      .origins = &origins[first],
			      .norigins = (size_t)n,
			      .minimum_origins = 1,
			      .latitude = lat,
			      .longitude = lon,
			      .has_location = loc,
			      .index = (uint32_t)i};
}

static int setup(void **state)
{
	memset(st, 0, sizeof(st));
	for (int i = 0; i < NORIGINS; i++)
		origin_init(i);
	pool_init(P_US, "us-east", 0, 2, 39.04, -77.49, true);
	pool_init(P_EU, "eu-west", 2, 2, 52.37, 4.90, true);
	pool_init(P_AP, "ap-se", 4, 1, 1.35, 103.82, true);
	pool_init(P_NOLOC, "nowhere", 5, 1, 0, 0, false);
	pool_init(P_FB, "fallback", 6, 1, 0, 0, false);
	for (int i = 0; i < 4; i++)
		defaults[i] = &pools[i];
	lb = (cfg_lb){.name = "lb.example.com",
		      .enabled = true,
		      .default_pools = defaults,
		      .ndefault_pools = 4,
		      .fallback_pool = &pools[P_FB],
		      .random_default_weight = 1,
		      .session_affinity_ttl = 82800};
	edge = (cfg_edge){.name = "FRA",
			  .region = "WEU",
			  .latitude = 50.11,
			  .longitude = 8.68,
			  .has_location = true};
	rng = 0x9e3779b97f4a7c15ULL;
	ctx = (lb_steer_ctx){.lb = &lb,
			     .edge = &edge,
			     .origins = st,
			     .now_ms = 1000000,
			     .rng = &rng};
	l_us[0] = &pools[P_US];
	l_eu[0] = &pools[P_EU];
	l_ap[0] = &pools[P_AP];
	l_eu_us[0] = &pools[P_EU];
	l_eu_us[1] = &pools[P_US];
	return 0;
}

static void down(int origin)
{
	atomic_store(&st[origin].active, LB_HEALTH_UNHEALTHY);
}

static void pool_down(int p)
{
	for (size_t i = 0; i < pools[p].norigins; i++)
		down((int)pools[p].origins[i].index);
}

/* ---- eligibility ------------------------------------------------------ */

static void test_eligibility(void **state)
{
	assert_true(lb_steer_pool_eligible(&pools[P_US], &ctx));
	assert_int_equal(lb_steer_pool_healthy(&pools[P_US], &ctx), 2);
	down(0);
	assert_int_equal(lb_steer_pool_healthy(&pools[P_US], &ctx), 1);
	assert_true(lb_steer_pool_eligible(&pools[P_US], &ctx));
	pools[P_US].minimum_origins = 2; /* health threshold */
	assert_false(lb_steer_pool_eligible(&pools[P_US], &ctx));
	pools[P_US].minimum_origins = 1;
	/* ejected by passive health until a time in the future */
	atomic_store(&st[1].ejected_until, ctx.now_ms + 1);
	assert_false(lb_steer_pool_eligible(&pools[P_US], &ctx));
	ctx.now_ms += 1; /* ejection over */
	assert_true(lb_steer_pool_eligible(&pools[P_US], &ctx));
	/* weight 0 only: healthy but nobody to send to */
	origins[1].weight = 0;
	assert_false(lb_steer_pool_eligible(&pools[P_US], &ctx));
	/* disabled pool; unknown health counts as usable */
	assert_true(lb_steer_pool_eligible(&pools[P_EU], &ctx));
	pools[P_EU].enabled = false;
	assert_false(lb_steer_pool_eligible(&pools[P_EU], &ctx));
	/* no state array: everything routable */
	ctx.origins = NULL;
	assert_true(lb_steer_pool_eligible(&pools[P_AP], &ctx));
}

/* ---- off and fallback ------------------------------------------------- */

static void test_default_policy(void **state)
{
	assert_int_equal(lb_steer_policy(&lb), CFG_STEER_OFF);
	region_map[0] =
	    (cfg_pool_map){.key = "WEU", .pools = l_eu, .npools = 1};
	lb.region_pools = region_map;
	lb.nregion_pools = 1;
	assert_int_equal(lb_steer_policy(&lb), CFG_STEER_GEO);
	lb.steering_policy = CFG_STEER_RANDOM;
	assert_int_equal(lb_steer_policy(&lb), CFG_STEER_RANDOM);
}

static void test_off_failover_order(void **state)
{
	lb.steering_policy = CFG_STEER_OFF;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
	pool_down(P_US);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_EU]);
	pool_down(P_EU);
	pool_down(P_AP);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_NOLOC]);
}

static void test_fallback(void **state)
{
	for (int p = 0; p < 4; p++)
		pool_down(p);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_FB]);
	/* the fallback takes traffic even when it is unhealthy itself */
	pool_down(P_FB);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_FB]);
	/* but not when disabled, or already tried */
	uint32_t skip[1] = {P_FB};
	assert_null(lb_steer_pool(&lb, &ctx, skip, 1));
	pools[P_FB].enabled = false;
	assert_null(lb_steer_pool(&lb, &ctx, NULL, 0));
	lb.fallback_pool = NULL;
	assert_null(lb_steer_pool(&lb, &ctx, NULL, 0));
}

/* Regression (r5_fallback_health): the fallback was chosen whatever its
 * health, but its origins were then filtered by health, so a fallback
 * whose origins all failed their monitor answered 503. */
static void test_fallback_origins_any_health(void **state)
{
	cfg_pool *fb = &pools[P_FB];
	fb->norigins = 2; /* fb1 (6) and x (7) */
	for (int p = 0; p < 4; p++)
		pool_down(p);
	pool_down(P_FB);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), fb);
	assert_true(lb_steer_pool_any_health(fb, &ctx));
	const cfg_origin *o = lb_steer_origin(fb, &ctx, NULL, 0);
	assert_non_null(o);
	assert_true(o == &origins[6] || o == &origins[7]);
	/* every policy, and the explicit-key choice, the same */
	fb->origin_steering = CFG_OSTEER_HASH;
	assert_non_null(lb_steer_origin(fb, &ctx, NULL, 0));
	fb->origin_steering = CFG_OSTEER_LEAST_CONNECTIONS;
	assert_non_null(lb_steer_origin(fb, &ctx, NULL, 0));
	assert_non_null(lb_steer_origin_key(fb, 42, &ctx, NULL, 0));
	/* passively ejected ones too */
	atomic_store(&st[6].active, LB_HEALTH_HEALTHY);
	atomic_store(&st[6].ejected_until, ctx.now_ms + 60000);
	assert_true(lb_steer_pool_any_health(fb, &ctx));
	/* tried ones are passed over; disabled and weight 0 never chosen */
	uint32_t tried[1] = {6};
	assert_ptr_equal(lb_steer_origin(fb, &ctx, tried, 1), &origins[7]);
	origins[7].enabled = false;
	assert_null(lb_steer_origin(fb, &ctx, tried, 1));
	assert_ptr_equal(lb_steer_origin(fb, &ctx, NULL, 0), &origins[6]);
	origins[6].weight = 0;
	assert_null(lb_steer_origin(fb, &ctx, NULL, 0));
	origins[6].weight = 1;
	origins[7].enabled = true;
	/* one usable origin: only it (health counts again) */
	atomic_store(&st[7].active, LB_HEALTH_HEALTHY);
	assert_false(lb_steer_pool_any_health(fb, &ctx));
	for (int i = 0; i < 20; i++)
		assert_ptr_equal(lb_steer_origin(fb, &ctx, NULL, 0),
				 &origins[7]);
	assert_null(lb_steer_origin(fb, &ctx, (uint32_t[]){7}, 1));
	/* only the fallback gets the rule: a default pool without usable
	 * origins, or a context without its load balancer, gives none */
	assert_false(lb_steer_pool_any_health(&pools[P_US], &ctx));
	assert_null(lb_steer_origin(&pools[P_US], &ctx, NULL, 0));
	down(7);
	ctx.lb = NULL;
	assert_false(lb_steer_pool_any_health(fb, &ctx));
	assert_null(lb_steer_origin(fb, &ctx, NULL, 0));
	/* the shared predicate the DNS answers use */
	ctx.lb = &lb;
	assert_true(lb_steer_origin_choosable(&origins[7], &ctx, true));
	assert_false(lb_steer_origin_choosable(&origins[7], &ctx, false));
	origins[7].weight = 0;
	assert_false(lb_steer_origin_choosable(&origins[7], &ctx, true));
}

static void test_failover_across_pools(void **state)
{
	uint32_t skip[4] = {P_US};
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, skip, 1), &pools[P_EU]);
	skip[1] = P_EU;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, skip, 2), &pools[P_AP]);
	skip[2] = P_AP;
	skip[3] = P_NOLOC;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, skip, 4), &pools[P_FB]);
}

/* ---- random ----------------------------------------------------------- */

static void count_pools(int n, int *count)
{
	for (int i = 0; i < n; i++) {
		const cfg_pool *p = lb_steer_pool(&lb, &ctx, NULL, 0);
		assert_non_null(p);
		count[p->index]++;
	}
}

static void test_random_weights(void **state)
{
	int count[NPOOLS] = {0};
	lb.steering_policy = CFG_STEER_RANDOM;
	weights[0] = (cfg_pool_weight){.pool = &pools[P_US], .weight = 0.5};
	weights[1] = (cfg_pool_weight){.pool = &pools[P_EU], .weight = 0.25};
	weights[2] = (cfg_pool_weight){.pool = &pools[P_NOLOC], .weight = 0};
	lb.pool_weights = weights;
	lb.npool_weights = 3;
	lb.random_default_weight = 0.25; /* P_AP */
	count_pools(40000, count);
	/* 0.5 : 0.25 : 0.25 : 0 of 40000, +-3% of all */
	assert_in_range(count[P_US], 20000 - 1200, 20000 + 1200);
	assert_in_range(count[P_EU], 10000 - 1200, 10000 + 1200);
	assert_in_range(count[P_AP], 10000 - 1200, 10000 + 1200);
	assert_int_equal(count[P_NOLOC], 0);
	/* unhealthy pools leave the draw */
	memset(count, 0, sizeof(count));
	pool_down(P_US);
	count_pools(10000, count);
	assert_int_equal(count[P_US], 0);
	assert_in_range(count[P_EU], 5000 - 500, 5000 + 500);
	/* only weight-0 pools left eligible: failover order among them */
	pool_down(P_EU);
	pool_down(P_AP);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_NOLOC]);
}

static void test_random_deterministic(void **state)
{
	const cfg_pool *seq[64];
	lb.steering_policy = CFG_STEER_RANDOM;
	rng = 12345;
	for (int i = 0; i < 64; i++)
		seq[i] = lb_steer_pool(&lb, &ctx, NULL, 0);
	rng = 12345;
	for (int i = 0; i < 64; i++)
		assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), seq[i]);
	/* without an rng: failover order */
	ctx.rng = NULL;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
}

/* ---- geo ------------------------------------------------------------- */

static void geo_setup(void)
{
	lb.steering_policy = CFG_STEER_GEO;
	pop_map[0] = (cfg_pool_map){.key = "FRA", .pools = l_ap, .npools = 1};
	country_map[0] =
	    (cfg_pool_map){.key = "JP", .pools = l_eu, .npools = 1};
	region_map[0] =
	    (cfg_pool_map){.key = "ENAM", .pools = l_us, .npools = 1};
	region_map[1] =
	    (cfg_pool_map){.key = "WEU", .pools = l_eu_us, .npools = 2};
	lb.pop_pools = pop_map;
	lb.npop_pools = 1;
	lb.country_pools = country_map;
	lb.ncountry_pools = 1;
	lb.region_pools = region_map;
	lb.nregion_pools = 2;
}

static void test_geo_precedence(void **state)
{
	geo_setup();
	/* pop beats country beats region beats default */
	ctx.country = "JP";
	ctx.region = "ENAM";
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_AP]);
	edge.name = "AMS"; /* no pop entry */
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_EU]);
	ctx.country = "US"; /* no country entry */
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
	ctx.region = "SAS"; /* no region entry: default pools */
	pool_down(P_US);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_EU]);
	/* client region unknown: the edge's region (WEU) */
	ctx.region = "";
	ctx.country = NULL;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_EU]);
	/* the default policy "" is geo when a geo map is set */
	lb.steering_policy = CFG_STEER_DEFAULT;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_EU]);
}

static void test_geo_failover_within_list(void **state)
{
	geo_setup();
	edge.name = "AMS";
	ctx.region = "WEU"; /* [eu-west, us-east] */
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_EU]);
	pool_down(P_EU);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
	/* all of the region's pools down: the fallback, not default_pools */
	pool_down(P_US);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_FB]);
	size_t n;
	const cfg_pool *const *l = lb_steer_geo_pools(&lb, &ctx, &n);
	assert_int_equal(n, 2);
	assert_ptr_equal(l[0], &pools[P_EU]);
}

/* ---- dynamic latency ------------------------------------------------- */

static void test_dynamic_latency(void **state)
{
	lb.steering_policy = CFG_STEER_DYNAMIC_LATENCY;
	/* no data yet: failover order */
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
	/* us-east 80 ms avg, eu-west 20 ms, ap-se 150 ms */
	atomic_store(&st[0].rtt_us, 70000);
	atomic_store(&st[1].rtt_us, 90000);
	atomic_store(&st[2].rtt_us, 15000);
	atomic_store(&st[3].rtt_us, 25000);
	atomic_store(&st[4].rtt_us, 150000);
	assert_int_equal(lb_steer_pool_rtt_us(&pools[P_US], &ctx), 80000);
	assert_int_equal(lb_steer_pool_rtt_us(&pools[P_EU], &ctx), 20000);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_EU]);
	/* an unhealthy origin's RTT does not count */
	down(2);
	assert_int_equal(lb_steer_pool_rtt_us(&pools[P_EU], &ctx), 25000);
	pool_down(P_EU);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
	/* measured pools before unmeasured ones */
	pool_down(P_US);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_AP]);
	uint32_t skip[1] = {P_AP};
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, skip, 1), &pools[P_NOLOC]);
}

/* ---- proximity ------------------------------------------------------- */

static void test_distance(void **state)
{
	/* London - New York: about 5570 km */
	double d = lb_steer_distance_km(51.5074, -0.1278, 40.7128, -74.0060);
	assert_in_range((long)d, 5540, 5600);
	/* Frankfurt - Amsterdam: about 365 km */
	d = lb_steer_distance_km(50.11, 8.68, 52.37, 4.90);
	assert_in_range((long)d, 350, 380);
	assert_true(lb_steer_distance_km(10, 20, 10, 20) == 0);
	/* antipodes: half the circumference */
	d = lb_steer_distance_km(0, 0, 0, 180);
	assert_in_range((long)d, 20010, 20020);
}

static void test_proximity(void **state)
{
	lb.steering_policy = CFG_STEER_PROXIMITY;
	/* edge in Frankfurt: Amsterdam, then Ashburn, then Singapore */
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_EU]);
	pool_down(P_EU);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
	pool_down(P_US);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_AP]);
	/* pools without coordinates come last */
	pool_down(P_AP);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_NOLOC]);
}

static void test_proximity_other_edges(void **state)
{
	lb.steering_policy = CFG_STEER_PROXIMITY;
	edge.latitude = 35.68; /* Tokyo: Singapore */
	edge.longitude = 139.69;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_AP]);
	edge.latitude = 37.77; /* San Francisco: Ashburn */
	edge.longitude = -122.42;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
	edge.has_location = false; /* no location: failover order */
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
	ctx.edge = NULL;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
}

/* ---- least outstanding / connections ---------------------------------- */

static void test_least_outstanding_pools(void **state)
{
	int count[NPOOLS] = {0};
	lb.steering_policy = CFG_STEER_LEAST_OUTSTANDING;
	lb.ndefault_pools = 2; /* us-east, eu-west */
	/* us-east has 9 requests in flight, eu-west none: weights
	 * 1/10 and 1/1, so eu-west gets 10/11 */
	atomic_store(&st[0].outstanding, 5);
	atomic_store(&st[1].outstanding, 4);
	count_pools(22000, count);
	assert_in_range(count[P_EU], 20000 - 600, 20000 + 600);
	assert_in_range(count[P_US], 2000 - 600, 2000 + 600);
	/* connections do not matter to this policy */
	atomic_store(&st[2].connections, 1000);
	memset(count, 0, sizeof(count));
	count_pools(11000, count);
	assert_in_range(count[P_EU], 10000 - 400, 10000 + 400);
	/* all idle: plain weights */
	atomic_store(&st[0].outstanding, 0);
	atomic_store(&st[1].outstanding, 0);
	memset(count, 0, sizeof(count));
	count_pools(20000, count);
	assert_in_range(count[P_EU], 10000 - 600, 10000 + 600);
}

static void test_least_connections_pools(void **state)
{
	int count[NPOOLS] = {0};
	lb.steering_policy = CFG_STEER_LEAST_CONNECTIONS;
	lb.ndefault_pools = 2;
	atomic_store(&st[2].connections, 3);   /* eu-west: 1/4 */
	atomic_store(&st[0].outstanding, 100); /* ignored */
	count_pools(20000, count);
	/* us-east 1 : eu-west 0.25 -> 16000 : 4000 */
	assert_in_range(count[P_US], 16000 - 600, 16000 + 600);
	assert_in_range(count[P_EU], 4000 - 600, 4000 + 600);
}

/* ---- origins --------------------------------------------------------- */

static void test_origin_random(void **state)
{
	int count[NORIGINS] = {0};
	origins[2].weight = 0.75;
	origins[3].weight = 0.25;
	for (int i = 0; i < 40000; i++)
		count[lb_steer_origin(&pools[P_EU], &ctx, NULL, 0)->index]++;
	assert_in_range(count[2], 30000 - 1200, 30000 + 1200);
	assert_in_range(count[3], 10000 - 1200, 10000 + 1200);
	/* weight 0 gets nothing */
	origins[3].weight = 0;
	for (int i = 0; i < 5000; i++)
		assert_int_equal(
		    lb_steer_origin(&pools[P_EU], &ctx, NULL, 0)->index, 2);
}

static void test_origin_skips(void **state)
{
	uint32_t tried[1] = {2};
	for (int i = 0; i < 1000; i++)
		assert_int_equal(
		    lb_steer_origin(&pools[P_EU], &ctx, tried, 1)->index, 3);
	down(3);
	assert_null(lb_steer_origin(&pools[P_EU], &ctx, tried, 1));
	origins[2].enabled = false;
	assert_null(lb_steer_origin(&pools[P_EU], &ctx, NULL, 0));
	assert_null(lb_steer_origin(NULL, &ctx, NULL, 0));
}

static void client4(struct sockaddr_in *s, uint32_t ip)
{
	memset(s, 0, sizeof(*s));
	s->sin_family = AF_INET;
	s->sin_addr.s_addr = htonl(ip);
	s->sin_port = htons((uint16_t)(ip * 7));
}

static cfg_origin big_origins[5];
static cfg_pool big_pool;

static void big_pool_init(void)
{
	static const char *const n[5] = {"a", "b", "c", "d", "e"};
	for (int i = 0; i < 5; i++)
		big_origins[i] = (cfg_origin){.name = n[i],
					      .weight = 1,
					      .enabled = true,
					      .index = (uint32_t)i};
	big_pool = (cfg_pool){.id = "big",
			      .enabled = true,
			      .origins = big_origins,
			      .norigins = 5,
			      .minimum_origins = 1,
			      .origin_steering = CFG_OSTEER_HASH};
}

static void test_origin_hash_stable(void **state)
{
	static uint32_t before[10000];
	struct sockaddr_in c;
	int moved = 0, count[5] = {0};

	big_pool_init();
	ctx.client = (struct sockaddr *)&c;
	for (uint32_t k = 0; k < 10000; k++) {
		client4(&c, 0x0a000000u + k * 7919u);
		before[k] = lb_steer_origin(&big_pool, &ctx, NULL, 0)->index;
		count[before[k]]++;
		/* the same client again, with or without an rng */
		assert_int_equal(
		    lb_steer_origin(&big_pool, &ctx, NULL, 0)->index,
		    before[k]);
	}
	for (int i = 0; i < 5; i++)
		assert_in_range(count[i], 2000 - 300, 2000 + 300);
	/* origin c goes down: only its clients move */
	down(2);
	for (uint32_t k = 0; k < 10000; k++) {
		client4(&c, 0x0a000000u + k * 7919u);
		uint32_t now = lb_steer_origin(&big_pool, &ctx, NULL, 0)->index;
		if (before[k] == 2) {
			assert_int_not_equal(now, 2);
			moved++;
		} else {
			assert_int_equal(now, before[k]);
		}
	}
	assert_int_equal(moved, count[2]);
	/* and it comes back to exactly the same clients */
	atomic_store(&st[2].active, LB_HEALTH_HEALTHY);
	for (uint32_t k = 0; k < 10000; k++) {
		client4(&c, 0x0a000000u + k * 7919u);
		assert_int_equal(
		    lb_steer_origin(&big_pool, &ctx, NULL, 0)->index,
		    before[k]);
	}
}

static void test_origin_hash_tried_and_mapped(void **state)
{
	struct sockaddr_in c;
	struct sockaddr_in6 m;

	big_pool_init();
	client4(&c, 0xc0000201u); /* 192.0.2.1 */
	memset(&m, 0, sizeof(m));
	m.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &m.sin6_addr);
	ctx.client = (struct sockaddr *)&c;
	const cfg_origin *a = lb_steer_origin(&big_pool, &ctx, NULL, 0);
	ctx.client = (struct sockaddr *)&m;
	assert_ptr_equal(lb_steer_origin(&big_pool, &ctx, NULL, 0), a);
	/* retry after a failure: the client's second choice, stable too */
	uint32_t tried[1] = {a->index};
	const cfg_origin *b = lb_steer_origin(&big_pool, &ctx, tried, 1);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_ptr_equal(lb_steer_origin(&big_pool, &ctx, tried, 1), b);
	/* an explicit key (header affinity) is deterministic too */
	assert_ptr_equal(lb_steer_origin_key(&big_pool, 42, &ctx, NULL, 0),
			 lb_steer_origin_key(&big_pool, 42, &ctx, NULL, 0));
}

static void test_origin_least_outstanding(void **state)
{
	int count[NORIGINS] = {0};
	pools[P_EU].origin_steering = CFG_OSTEER_LEAST_OUTSTANDING;
	atomic_store(&st[2].outstanding, 3);  /* 1/4 */
	atomic_store(&st[3].connections, 50); /* ignored here */
	for (int i = 0; i < 20000; i++)
		count[lb_steer_origin(&pools[P_EU], &ctx, NULL, 0)->index]++;
	assert_in_range(count[3], 16000 - 600, 16000 + 600);
	assert_in_range(count[2], 4000 - 600, 4000 + 600);
	/* negative counts (racy decrements) count as idle */
	atomic_store(&st[2].outstanding, -5);
	memset(count, 0, sizeof(count));
	for (int i = 0; i < 20000; i++)
		count[lb_steer_origin(&pools[P_EU], &ctx, NULL, 0)->index]++;
	assert_in_range(count[2], 10000 - 600, 10000 + 600);
}

static void test_origin_least_connections(void **state)
{
	int count[NORIGINS] = {0};
	pools[P_EU].origin_steering = CFG_OSTEER_LEAST_CONNECTIONS;
	atomic_store(&st[2].connections, 0);
	atomic_store(&st[3].connections, 9); /* 1/10 */
	for (int i = 0; i < 22000; i++)
		count[lb_steer_origin(&pools[P_EU], &ctx, NULL, 0)->index]++;
	assert_in_range(count[2], 20000 - 600, 20000 + 600);
	/* explicit policy override (ip_cookie's first choice) */
	struct sockaddr_in c;
	client4(&c, 0xc0000202u);
	ctx.client = (struct sockaddr *)&c;
	const cfg_origin *o =
	    lb_steer_origin_by(&pools[P_EU], CFG_OSTEER_HASH, &ctx, NULL, 0);
	for (int i = 0; i < 100; i++)
		assert_ptr_equal(lb_steer_origin_by(&pools[P_EU],
						    CFG_OSTEER_HASH, &ctx, NULL,
						    0),
				 o);
}

/* ---- load shedding (regression: r6_load_shedding, never applied) ----- */

static void test_shed_default_all(void **state)
{
	/* default_percent 100 on the first pool: everything to the next */
	pools[P_US].load_shedding.default_percent = 100;
	for (int i = 0; i < 50; i++)
		assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0),
				 &pools[P_EU]);
	/* 0 (the default) sheds nothing */
	pools[P_US].load_shedding.default_percent = 0;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
	/* a chain: the next pool sheds too */
	pools[P_US].load_shedding.default_percent = 100;
	pools[P_EU].load_shedding.default_percent = 100;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_AP]);
	/* with the caller's skip list (failover across pools) */
	uint32_t skip[1] = {P_AP};
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, skip, 1), &pools[P_NOLOC]);
	/* nobody else eligible: it stays in the last pool that shed it,
	 * never the fallback */
	pool_down(P_AP);
	pool_down(P_NOLOC);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_EU]);
	pool_down(P_EU);
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_US]);
	/* a fallback chosen because nothing is eligible sheds nothing */
	pool_down(P_US);
	pools[P_FB].load_shedding.default_percent = 100;
	assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), &pools[P_FB]);
}

static void test_shed_default_random(void **state)
{
	int count[NPOOLS] = {0};
	pools[P_US].load_shedding.default_percent = 30;
	count_pools(10000, count);
	/* 30% +- 5 sd (sd ~ 46) */
	assert_in_range(count[P_EU], 3000 - 230, 3000 + 230);
	assert_int_equal(count[P_US] + count[P_EU], 10000);
	/* under random steering the shed share is redrawn among the others */
	memset(count, 0, sizeof(count));
	lb.steering_policy = CFG_STEER_RANDOM;
	lb.ndefault_pools = 2; /* us-east, eu-west */
	pools[P_US].load_shedding.default_percent = 100;
	count_pools(1000, count);
	assert_int_equal(count[P_EU], 1000);
}

static void test_shed_default_hash(void **state)
{
	struct sockaddr_in c;
	int shed = 0;
	cfg_load_shedding *ls = &pools[P_US].load_shedding;
	ls->default_policy = CFG_SHED_HASH;
	ls->default_percent = 25;
	ctx.client = (struct sockaddr *)&c;
	for (uint32_t k = 0; k < 4000; k++) {
		client4(&c, 0x0a000000u + k * 7919u);
		const cfg_pool *p = lb_steer_pool(&lb, &ctx, NULL, 0);
		/* the same client, again and without an rng: the same */
		for (int i = 0; i < 3; i++)
			assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), p);
		uint64_t *r = ctx.rng;
		ctx.rng = NULL;
		assert_ptr_equal(lb_steer_pool(&lb, &ctx, NULL, 0), p);
		ctx.rng = r;
		if (p == &pools[P_EU])
			shed++;
		else
			assert_ptr_equal(p, &pools[P_US]);
	}
	/* 25% of clients +- 5 sd (sd ~ 27) */
	assert_in_range(shed, 1000 - 140, 1000 + 140);
	/* a larger share keeps shedding the clients shed before */
	int again = 0;
	ls->default_percent = 50;
	for (uint32_t k = 0; k < 4000; k++) {
		client4(&c, 0x0a000000u + k * 7919u);
		bool was = false;
		ls->default_percent = 25;
		was = lb_steer_pool_sheds(&pools[P_US], &ctx, false);
		ls->default_percent = 50;
		if (was) {
			assert_true(
			    lb_steer_pool_sheds(&pools[P_US], &ctx, false));
			again++;
		}
	}
	assert_int_equal(again, shed);
	/* random without an rng falls back to the hash */
	ls->default_policy = CFG_SHED_RANDOM;
	ctx.rng = NULL;
	client4(&c, 0x0a000001u);
	bool first = lb_steer_pool_sheds(&pools[P_US], &ctx, false);
	for (int i = 0; i < 10; i++)
		assert_true(lb_steer_pool_sheds(&pools[P_US], &ctx, false) ==
			    first);
}

static void test_shed_sessions(void **state)
{
	struct sockaddr_in c;
	const cfg_pool *p = &pools[P_US];
	const cfg_origin *o = &origins[0];
	cfg_load_shedding *ls = &pools[P_US].load_shedding;

	ctx.client = (struct sockaddr *)&c;
	client4(&c, 0x0a000001u);
	/* default_percent leaves existing sessions alone */
	ls->default_percent = 100;
	assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, 0), LB_AFF_USE);
	ls->default_percent = 0;
	ls->session_percent = 100;
	assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, 0), LB_AFF_SHED);
	/* draining sessions are shed too; unhealthy ones repick as before */
	lb.session_affinity_attributes.drain_duration = 60;
	origins[0].enabled = false;
	assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, ctx.now_ms),
			 LB_AFF_SHED);
	origins[0].enabled = true;
	down(0);
	assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, 0), LB_AFF_REPICK);
	atomic_store(&st[0].active, LB_HEALTH_UNKNOWN);
	/* a shed session goes to another pool, not back to its own ... */
	for (int i = 0; i < 20; i++)
		assert_ptr_equal(lb_steer_pool_away(&lb, &ctx, NULL, 0, p),
				 &pools[P_EU]);
	/* ... unless no other pool can take it (then not the fallback) */
	pool_down(P_EU);
	pool_down(P_AP);
	pool_down(P_NOLOC);
	assert_ptr_equal(lb_steer_pool_away(&lb, &ctx, NULL, 0, p), p);
	/* a share of sessions, by client IP: stable per client */
	ls->session_percent = 40;
	int shed = 0;
	for (uint32_t k = 0; k < 4000; k++) {
		client4(&c, 0x0a000000u + k * 7919u);
		lb_affinity_action a = lb_affinity_check(&lb, p, o, &ctx, 0);
		assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, 0), a);
		if (a == LB_AFF_SHED)
			shed++;
	}
	assert_in_range(shed, 1600 - 160, 1600 + 160);
}

/* ---- affinity -------------------------------------------------------- */

static const lb_affinity_secret secret = {
    {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};

static void test_affinity_token_roundtrip(void **state)
{
	char tok[LB_AFF_TOKEN_LEN + 1];
	const cfg_pool *pool;

	for (int p = 0; p < NPOOLS; p++) {
		for (size_t i = 0; i < pools[p].norigins; i++) {
			const cfg_origin *o = &pools[p].origins[i];
			lb_affinity_token(&secret, &pools[p], o, tok);
			assert_int_equal(strlen(tok), LB_AFF_TOKEN_LEN);
			assert_ptr_equal(lb_affinity_lookup(&lb, &secret, tok,
							    strlen(tok), &pool),
					 o);
			assert_ptr_equal(pool, &pools[p]);
		}
	}
	/* stable: names, not indexes or addresses; pinned */
	lb_affinity_token(&secret, &pools[P_US], &origins[0], tok);
	char again[LB_AFF_TOKEN_LEN + 1];
	origins[0].index = 77;
	origins[0].address = "10.1.2.3";
	lb_affinity_token(&secret, &pools[P_US], &origins[0], again);
	assert_string_equal(tok, again);
	assert_string_equal(tok, "95483cad76de7a56");
	/* different pool or secret: different token */
	lb_affinity_token(&secret, &pools[P_EU], &origins[0], again);
	assert_string_not_equal(tok, again);
}

static void test_affinity_tamper(void **state)
{
	char tok[LB_AFF_TOKEN_LEN + 1], bad[LB_AFF_TOKEN_LEN + 1];
	lb_affinity_secret other = secret;

	lb_affinity_token(&secret, &pools[P_EU], &origins[3], tok);
	for (int i = 0; i < LB_AFF_TOKEN_LEN; i++) {
		memcpy(bad, tok, sizeof(bad));
		bad[i] = bad[i] == '0' ? '1' : '0';
		assert_null(lb_affinity_lookup(&lb, &secret, bad,
					       LB_AFF_TOKEN_LEN, NULL));
	}
	/* uppercase, short, long, empty, junk */
	memcpy(bad, tok, sizeof(bad));
	for (int i = 0; i < LB_AFF_TOKEN_LEN; i++)
		if (bad[i] >= 'a')
			bad[i] = (char)(bad[i] - 'a' + 'A');
	if (strcmp(bad, tok) != 0)
		assert_null(lb_affinity_lookup(&lb, &secret, bad,
					       LB_AFF_TOKEN_LEN, NULL));
	assert_null(
	    lb_affinity_lookup(&lb, &secret, tok, LB_AFF_TOKEN_LEN - 1, NULL));
	assert_null(
	    lb_affinity_lookup(&lb, &secret, "0123456789abcdef0", 17, NULL));
	assert_null(lb_affinity_lookup(&lb, &secret, "", 0, NULL));
	assert_null(lb_affinity_lookup(&lb, &secret, NULL, 0, NULL));
	assert_null(
	    lb_affinity_lookup(&lb, &secret, "zzzzzzzzzzzzzzzz", 16, NULL));
	/* another edge's secret */
	other.key[0] ^= 1;
	assert_null(
	    lb_affinity_lookup(&lb, &other, tok, LB_AFF_TOKEN_LEN, NULL));
	/* the origin left the config */
	lb.ndefault_pools = 1;
	assert_null(
	    lb_affinity_lookup(&lb, &secret, tok, LB_AFF_TOKEN_LEN, NULL));
	/* pools only in a geo map are found too */
	geo_setup();
	assert_ptr_equal(
	    lb_affinity_lookup(&lb, &secret, tok, LB_AFF_TOKEN_LEN, NULL),
	    &origins[3]);
}

static void test_affinity_cookie_find(void **state)
{
	const char *v;
	size_t n;
	const char *h = "a=1; __cflb=0123456789abcdef; b=2";
	assert_true(lb_affinity_cookie_find(h, strlen(h), &v, &n));
	assert_int_equal(n, 16);
	assert_memory_equal(v, "0123456789abcdef", 16);
	h = "__cflb=\"abc\"";
	assert_true(lb_affinity_cookie_find(h, strlen(h), &v, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(v, "abc", 3);
	h = "x__cflb=1;__cflbx=2; __cflb=3 ";
	assert_true(lb_affinity_cookie_find(h, strlen(h), &v, &n));
	assert_int_equal(n, 1);
	assert_memory_equal(v, "3", 1);
	h = "a=1; b=2";
	assert_false(lb_affinity_cookie_find(h, strlen(h), &v, &n));
	assert_false(lb_affinity_cookie_find("", 0, &v, &n));
	h = "__cflb";
	assert_false(lb_affinity_cookie_find(h, strlen(h), &v, &n));
	/* the length bounds the search (no NUL needed) */
	h = "a=1; __cflb=9";
	assert_false(lb_affinity_cookie_find(h, 6, &v, &n));
}

static void test_affinity_set_cookie(void **state)
{
	char buf[LB_AFF_SET_COOKIE_MAX];
	const char *tok = "0123456789abcdef";
	cfg_affinity_attrs *a = &lb.session_affinity_attributes;

	lb.session_affinity = CFG_AFF_COOKIE;
	assert_true(lb_affinity_uses_cookie(&lb));
	int n = lb_affinity_set_cookie(&lb, tok, false, buf, sizeof(buf));
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf, "__cflb=0123456789abcdef; Path=/; "
				 "Max-Age=82800; HttpOnly; SameSite=Lax");
	lb_affinity_set_cookie(&lb, tok, true, buf, sizeof(buf));
	assert_string_equal(buf, "__cflb=0123456789abcdef; Path=/; "
				 "Max-Age=82800; HttpOnly; SameSite=None; "
				 "Secure");
	a->secure = CFG_SECURE_NEVER;
	lb_affinity_set_cookie(&lb, tok, true, buf, sizeof(buf));
	assert_string_equal(buf, "__cflb=0123456789abcdef; Path=/; "
				 "Max-Age=82800; HttpOnly; SameSite=Lax");
	a->secure = CFG_SECURE_ALWAYS;
	a->samesite = CFG_SAMESITE_STRICT;
	lb.session_affinity_ttl = 1800;
	lb_affinity_set_cookie(&lb, tok, false, buf, sizeof(buf));
	assert_string_equal(buf, "__cflb=0123456789abcdef; Path=/; "
				 "Max-Age=1800; HttpOnly; SameSite=Strict; "
				 "Secure");
	lb.session_affinity_ttl = 0; /* session cookie */
	a->samesite = CFG_SAMESITE_LAX;
	lb_affinity_set_cookie(&lb, tok, false, buf, sizeof(buf));
	assert_string_equal(buf, "__cflb=0123456789abcdef; Path=/; HttpOnly; "
				 "SameSite=Lax; Secure");
	assert_int_equal(lb_affinity_set_cookie(&lb, tok, false, buf, 20),
			 -ENOSPC);
	lb.session_affinity = CFG_AFF_HEADER;
	assert_false(lb_affinity_uses_cookie(&lb));
}

typedef struct fake_req {
	const char *names[4], *values[4];
} fake_req;

static bool fake_get(void *arg, const char *name, const char **val,
		     size_t *vlen)
{
	const fake_req *r = arg;
	for (int i = 0; i < 4 && r->names[i]; i++)
		if (strcasecmp(r->names[i], name) == 0) {
			*val = r->values[i];
			*vlen = strlen(r->values[i]);
			return true;
		}
	return false;
}

static void test_affinity_header_key(void **state)
{
	static const char *hdrs[2] = {"x-session", "x-user"};
	fake_req both = {{"X-Session", "X-User"}, {"s1", "u1"}};
	fake_req both2 = {{"x-user", "x-session"}, {"u1", "s1"}};
	fake_req other = {{"X-Session", "X-User"}, {"s1", "u2"}};
	fake_req one = {{"X-Session"}, {"s1"}};
	fake_req none = {{"Accept"}, {"*/*"}};
	uint64_t k1, k2, k3, k4;

	lb.session_affinity = CFG_AFF_HEADER;
	lb.session_affinity_attributes.headers = hdrs;
	lb.session_affinity_attributes.nheaders = 2;
	assert_true(lb_affinity_header_key(&lb, fake_get, &both, &k1));
	assert_true(lb_affinity_header_key(&lb, fake_get, &both2, &k2));
	assert_true(k1 == k2); /* the order in the request does not count */
	assert_true(lb_affinity_header_key(&lb, fake_get, &other, &k3));
	assert_true(k1 != k3);
	assert_true(lb_affinity_header_key(&lb, fake_get, &one, &k4));
	assert_true(k4 != k1);
	assert_false(lb_affinity_header_key(&lb, fake_get, &none, &k4));
	lb.session_affinity_attributes.require_all_headers = true;
	assert_false(lb_affinity_header_key(&lb, fake_get, &one, &k4));
	assert_true(lb_affinity_header_key(&lb, fake_get, &both, &k4));
	assert_true(k4 == k1);
}

/* Cloudflare's "cookie:a,b" item: the named cookies, each a part. */
static void test_affinity_cookie_item(void **state)
{
	static const char *hdrs[1] = {"cookie:sid,uid"};
	fake_req r1 = {{"Cookie"}, {"x=1; sid=s1; uid=\"u1\"; y=2"}};
	fake_req r1b = {{"cookie"}, {"uid=u1;sid=s1"}};
	fake_req r2 = {{"Cookie"}, {"sid=s1; uid=u2"}};
	fake_req only_sid = {{"Cookie"}, {"sid=s1; x=3"}};
	fake_req only_uid = {{"Cookie"}, {"uid=s1"}};
	fake_req other = {{"Cookie", "X-Sid"}, {"sidx=s1; x=1", "s1"}};
	fake_req none = {{"Accept"}, {"*/*"}};
	uint64_t k1, k1b, k2, k3, k4;

	lb.session_affinity = CFG_AFF_HEADER;
	lb.session_affinity_attributes.headers = hdrs;
	lb.session_affinity_attributes.nheaders = 1;
	assert_true(lb_affinity_header_key(&lb, fake_get, &r1, &k1));
	/* other cookies, their order and quotes do not count */
	assert_true(lb_affinity_header_key(&lb, fake_get, &r1b, &k1b));
	assert_true(k1 == k1b);
	assert_true(lb_affinity_header_key(&lb, fake_get, &r2, &k2));
	assert_true(k1 != k2);
	/* a missing cookie counts by its place: sid=s1 alone and uid=s1
	 * alone are different sessions */
	assert_true(lb_affinity_header_key(&lb, fake_get, &only_sid, &k3));
	assert_true(lb_affinity_header_key(&lb, fake_get, &only_uid, &k4));
	assert_true(k3 != k4 && k3 != k1);
	/* "sidx" is not "sid" */
	assert_false(lb_affinity_header_key(&lb, fake_get, &other, &k4));
	assert_false(lb_affinity_header_key(&lb, fake_get, &none, &k4));
	lb.session_affinity_attributes.require_all_headers = true;
	assert_false(lb_affinity_header_key(&lb, fake_get, &only_sid, &k4));
	assert_true(lb_affinity_header_key(&lb, fake_get, &r1, &k4));
	assert_true(k4 == k1);
	lb.session_affinity_attributes.require_all_headers = false;
}

static void test_affinity_check(void **state)
{
	cfg_affinity_attrs *a = &lb.session_affinity_attributes;
	const cfg_pool *p = &pools[P_EU];
	cfg_origin *o = &origins[2];

	lb.session_affinity = CFG_AFF_COOKIE;
	assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, 0), LB_AFF_USE);
	/* weight 0 stops new sessions only */
	o->weight = 0;
	assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, 0), LB_AFF_USE);
	o->weight = 1;
	/* unhealthy: none and sticky move (new cookie), temporary keeps it */
	down(2);
	a->zero_downtime_failover = CFG_ZDT_NONE;
	assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, 0), LB_AFF_REPICK);
	a->zero_downtime_failover = CFG_ZDT_STICKY;
	assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, 0), LB_AFF_REPICK);
	a->zero_downtime_failover = CFG_ZDT_TEMPORARY;
	assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, 0),
			 LB_AFF_REPICK_KEEP);
	/* healthy again: back to it */
	atomic_store(&st[2].active, LB_HEALTH_HEALTHY);
	assert_int_equal(lb_affinity_check(&lb, p, o, &ctx, 0), LB_AFF_USE);
}

static void test_affinity_drain(void **state)
{
	cfg_affinity_attrs *a = &lb.session_affinity_attributes;
	cfg_origin *o = &origins[2];
	uint64_t t0 = ctx.now_ms;

	o->enabled = false;
	/* no drain configured: sessions move at once */
	assert_int_equal(lb_affinity_check(&lb, &pools[P_EU], o, &ctx, t0),
			 LB_AFF_REPICK);
	a->drain_duration = 60; /* seconds */
	assert_int_equal(lb_affinity_check(&lb, &pools[P_EU], o, &ctx, t0),
			 LB_AFF_USE);
	ctx.now_ms = t0 + 59999;
	assert_int_equal(lb_affinity_check(&lb, &pools[P_EU], o, &ctx, t0),
			 LB_AFF_USE);
	ctx.now_ms = t0 + 60000;
	assert_int_equal(lb_affinity_check(&lb, &pools[P_EU], o, &ctx, t0),
			 LB_AFF_REPICK);
	/* unknown disable time: no drain */
	ctx.now_ms = t0;
	assert_int_equal(lb_affinity_check(&lb, &pools[P_EU], o, &ctx, 0),
			 LB_AFF_REPICK);
	/* draining but unhealthy: moves */
	down(2);
	assert_int_equal(lb_affinity_check(&lb, &pools[P_EU], o, &ctx, t0),
			 LB_AFF_REPICK);
	/* a disabled pool drains the same way */
	o->enabled = true;
	atomic_store(&st[2].active, LB_HEALTH_UNKNOWN);
	pools[P_EU].enabled = false;
	assert_int_equal(lb_affinity_check(&lb, &pools[P_EU], o, &ctx, t0),
			 LB_AFF_USE);
	ctx.now_ms = t0 + 60000;
	assert_int_equal(lb_affinity_check(&lb, &pools[P_EU], o, &ctx, t0),
			 LB_AFF_REPICK);
}

/* Regression (r2_drain): nothing recorded when an origin or pool was
 * disabled, so the proxy passed 0 and sessions moved at once. */
static void test_affinity_disabled_at(void **state)
{
	lb_pool_state ps[NPOOLS] = {0};
	cfg_pool *p = &pools[P_EU];
	cfg_origin *o = &origins[2];

	st[2].disabled_at_ms = 500;
	ps[P_EU].disabled_at_ms = 700;
	/* enabled: no stamp, whatever the arrays say */
	assert_int_equal(lb_affinity_disabled_at(p, o, st, ps), 0);
	o->enabled = false;
	assert_int_equal(lb_affinity_disabled_at(p, o, st, ps), 500);
	o->enabled = true;
	p->enabled = false;
	assert_int_equal(lb_affinity_disabled_at(p, o, st, ps), 700);
	o->enabled = false; /* both: the earlier */
	assert_int_equal(lb_affinity_disabled_at(p, o, st, ps), 500);
	st[2].disabled_at_ms = 0; /* unknown counts as earliest */
	assert_int_equal(lb_affinity_disabled_at(p, o, st, ps), 0);
	assert_int_equal(lb_affinity_disabled_at(p, o, NULL, NULL), 0);
}

static void test_affinity_drain_carry(void **state)
{
	/* Two configs of the same pools: b is a copy of a (own origins,
	 * own states), edited between swaps. */
	static cfg_origin bo[NORIGINS];
	static cfg_pool bp[NPOOLS];
	static lb_origin_state bst[NORIGINS], cst[NORIGINS];
	lb_pool_state aps[NPOOLS] = {0}, bps[NPOOLS] = {0}, cps[NPOOLS] = {0};
	cfg_snapshot a = {.pools = pools, .npools = NPOOLS};
	cfg_snapshot b = {.pools = bp, .npools = NPOOLS};
	memcpy(bo, origins, sizeof(bo));
	memcpy(bp, pools, sizeof(bp));
	for (int i = 0; i < NPOOLS; i++)
		bp[i].origins = bo + (pools[i].origins - origins);
	memset(bst, 0, sizeof(bst));

	/* a -> b: euw1 and the ap-se pool get disabled at 1000 */
	bo[2].enabled = false;
	bp[P_AP].enabled = false;
	lb_affinity_drain_carry(&a, st, aps, &b, bst, bps, 1000);
	assert_int_equal(bst[2].disabled_at_ms, 1000);
	assert_int_equal(bps[P_AP].disabled_at_ms, 1000);
	assert_int_equal(bst[3].disabled_at_ms, 0);
	assert_int_equal(bps[P_EU].disabled_at_ms, 0);
	/* b -> b again later: still disabled, the stamps are carried */
	memset(cst, 0, sizeof(cst));
	lb_affinity_drain_carry(&b, bst, bps, &b, cst, cps, 5000);
	assert_int_equal(cst[2].disabled_at_ms, 1000);
	assert_int_equal(cps[P_AP].disabled_at_ms, 1000);
	/* the proxy's view: draining 60 s from the first swap */
	lb.session_affinity_attributes.drain_duration = 60;
	uint64_t t = lb_affinity_disabled_at(&bp[P_EU], &bo[2], cst, cps);
	assert_int_equal(t, 1000);
	ctx.now_ms = 5000;
	assert_int_equal(lb_affinity_check(&lb, &bp[P_EU], &bo[2], &ctx, t),
			 LB_AFF_USE);
	ctx.now_ms = 61000;
	assert_int_equal(lb_affinity_check(&lb, &bp[P_EU], &bo[2], &ctx, t),
			 LB_AFF_REPICK);
	/* b -> a: enabled again, no stamp; a disabled origin that did not
	 * exist before (renamed here) gets none either */
	memset(st, 0, sizeof(st));
	memset(aps, 0, sizeof(aps));
	origins[5].enabled = false;
	origins[5].name = "new";
	lb_affinity_drain_carry(&b, cst, cps, &a, st, aps, 9000);
	assert_int_equal(st[2].disabled_at_ms, 0);
	assert_int_equal(aps[P_AP].disabled_at_ms, 0);
	assert_int_equal(st[5].disabled_at_ms, 0);
	/* a pool removed and added back disabled: no stamp */
	cfg_snapshot one = {.pools = pools, .npools = 1};
	memset(bst, 0, sizeof(bst));
	memset(bps, 0, sizeof(bps));
	lb_affinity_drain_carry(&one, st, aps, &b, bst, bps, 9000);
	assert_int_equal(bps[P_AP].disabled_at_ms, 0);
	assert_int_equal(bst[2].disabled_at_ms, 0);
}

static void test_affinity_on_failure(void **state)
{
	cfg_affinity_attrs *a = &lb.session_affinity_attributes;
	a->zero_downtime_failover = CFG_ZDT_NONE;
	assert_int_equal(lb_affinity_on_failure(&lb), LB_AFF_NO_RETRY);
	a->zero_downtime_failover = CFG_ZDT_TEMPORARY;
	assert_int_equal(lb_affinity_on_failure(&lb), LB_AFF_REPICK_KEEP);
	a->zero_downtime_failover = CFG_ZDT_STICKY;
	assert_int_equal(lb_affinity_on_failure(&lb), LB_AFF_REPICK);
}

#define T(f) cmocka_unit_test_setup(f, setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_eligibility),
	    T(test_default_policy),
	    T(test_off_failover_order),
	    T(test_fallback),
	    T(test_fallback_origins_any_health),
	    T(test_failover_across_pools),
	    T(test_random_weights),
	    T(test_random_deterministic),
	    T(test_geo_precedence),
	    T(test_geo_failover_within_list),
	    T(test_dynamic_latency),
	    T(test_distance),
	    T(test_proximity),
	    T(test_proximity_other_edges),
	    T(test_least_outstanding_pools),
	    T(test_least_connections_pools),
	    T(test_origin_random),
	    T(test_origin_skips),
	    T(test_origin_hash_stable),
	    T(test_origin_hash_tried_and_mapped),
	    T(test_origin_least_outstanding),
	    T(test_origin_least_connections),
	    T(test_shed_default_all),
	    T(test_shed_default_random),
	    T(test_shed_default_hash),
	    T(test_shed_sessions),
	    T(test_affinity_token_roundtrip),
	    T(test_affinity_tamper),
	    T(test_affinity_cookie_find),
	    T(test_affinity_set_cookie),
	    T(test_affinity_header_key),
	    T(test_affinity_cookie_item),
	    T(test_affinity_check),
	    T(test_affinity_drain),
	    T(test_affinity_disabled_at),
	    T(test_affinity_drain_carry),
	    T(test_affinity_on_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
