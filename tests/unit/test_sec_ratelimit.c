/* test_sec_ratelimit.c - GCRA buckets (sec_ratelimit.c): the burst, the
 * refill at the rate, Retry-After, the mitigation time, keys apart,
 * eviction of the stalest slot, and several threads on one key. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/core_arena.h"
#include "lb/lb_expr.h"
#include "sec/sec_ratelimit.h"
#include "sec/sec_rlkey.h"

static const uint8_t KEY[16] = {1, 2,  3,  4,  5,  6,  7,  8,
				9, 10, 11, 12, 13, 14, 15, 16};
#define S  1000000000ull
#define MS 1000000ull
/* A clock far from 0, as CLOCK_MONOTONIC is. */
#define T0 (1000 * S)

static uint64_t key_of(sec_rl *t, const char *v)
{
	return sec_rl_key(t, v, strlen(v));
}

/* 10 per second, burst 10: ten at once, the eleventh refused with the
 * wait for one token (100 ms); one more each 100 ms after. */
static void test_burst_then_rate(void **state)
{
	(void)state;
	sec_rl *t = sec_rl_new(1024, KEY);
	sec_rl_rate r = sec_rl_rate_of(10, 1000, 10, 0);
	assert_int_equal(r.interval_ns, 100 * MS);
	uint64_t k = key_of(t, "203.0.113.7");
	for (int i = 0; i < 10; i++)
		assert_true(sec_rl_hit(t, &r, k, T0, NULL));
	uint64_t retry = 0;
	assert_false(sec_rl_hit(t, &r, k, T0, &retry));
	assert_int_equal(retry, 100 * MS);
	/* Refused requests take no token: the wait does not grow. */
	assert_false(sec_rl_hit(t, &r, k, T0 + 50 * MS, &retry));
	assert_int_equal(retry, 50 * MS);
	assert_true(sec_rl_hit(t, &r, k, T0 + 100 * MS, NULL));
	assert_false(sec_rl_hit(t, &r, k, T0 + 100 * MS, NULL));
	/* After a second idle the bucket is full again. */
	for (int i = 0; i < 10; i++)
		assert_true(sec_rl_hit(t, &r, k, T0 + 1200 * MS, NULL));
	assert_false(sec_rl_hit(t, &r, k, T0 + 1200 * MS, NULL));
	sec_rl_unref(t);
}

/* A steady client at the rate is never refused; one slightly faster is,
 * after its burst. */
static void test_steady_rate(void **state)
{
	(void)state;
	sec_rl *t = sec_rl_new(64, KEY);
	sec_rl_rate r = sec_rl_rate_of(100, 60000, 5, 0); /* one per 600 ms */
	uint64_t k = key_of(t, "a");
	for (int i = 0; i < 1000; i++)
		assert_true(
		    sec_rl_hit(t, &r, k, T0 + (uint64_t)i * 600 * MS, NULL));
	uint64_t k2 = key_of(t, "b");
	int ok = 0;
	for (int i = 0; i < 100; i++)
		ok += sec_rl_hit(t, &r, k2, T0 + (uint64_t)i * 500 * MS, NULL);
	/* 100 requests over 49.5 s at one per 600 ms, plus the burst. */
	assert_in_range(ok, 83, 89);
	sec_rl_unref(t);
}

/* With a mitigation time the first refusal blocks everything for that
 * long, refusals meanwhile do not extend it, and after it the key starts
 * over with a full bucket. */
static void test_mitigation(void **state)
{
	(void)state;
	sec_rl *t = sec_rl_new(64, KEY);
	sec_rl_rate r = sec_rl_rate_of(2, 1000, 2, 10000); /* M = 10 s */
	uint64_t k = key_of(t, "x");
	assert_true(sec_rl_hit(t, &r, k, T0, NULL));
	assert_true(sec_rl_hit(t, &r, k, T0, NULL));
	uint64_t retry = 0;
	assert_false(sec_rl_hit(t, &r, k, T0, &retry));
	assert_int_equal(retry, 10 * S);
	/* 5 s on, still blocked (the bucket alone would have refilled),
	 * and the end has not moved. */
	assert_false(sec_rl_hit(t, &r, k, T0 + 5 * S, &retry));
	assert_int_equal(retry, 5 * S);
	assert_false(sec_rl_hit(t, &r, k, T0 + 10 * S - 1, &retry));
	assert_int_equal(retry, 1);
	/* Over: the whole burst again, then a new block. */
	assert_true(sec_rl_hit(t, &r, k, T0 + 10 * S, NULL));
	assert_true(sec_rl_hit(t, &r, k, T0 + 10 * S, NULL));
	assert_false(sec_rl_hit(t, &r, k, T0 + 10 * S, &retry));
	assert_int_equal(retry, 10 * S);
	sec_rl_unref(t);
}

/* A refund gives back the token a hit took (counting_expression rules
 * take one on arrival and return it when the response does not count),
 * never more than a full bucket, never out of a block. */
static void test_refund(void **state)
{
	(void)state;
	sec_rl *t = sec_rl_new(64, KEY);
	sec_rl_rate r = sec_rl_rate_of(3, 60000, 3, 0); /* one per 20 s */
	uint64_t k = key_of(t, "login");
	for (int i = 0; i < 3; i++)
		assert_true(sec_rl_hit(t, &r, k, T0, NULL));
	assert_false(sec_rl_hit(t, &r, k, T0, NULL));
	sec_rl_refund(t, &r, k, T0 + S);
	assert_true(sec_rl_hit(t, &r, k, T0 + S, NULL));
	assert_false(sec_rl_hit(t, &r, k, T0 + S, NULL));
	/* Refunds beyond a full bucket change nothing. */
	for (int i = 0; i < 10; i++)
		sec_rl_refund(t, &r, k, T0 + 2 * S);
	for (int i = 0; i < 3; i++)
		assert_true(sec_rl_hit(t, &r, k, T0 + 2 * S, NULL));
	assert_false(sec_rl_hit(t, &r, k, T0 + 2 * S, NULL));
	/* A key never seen: nothing to give back, nothing inserted. */
	uint64_t n = key_of(t, "new");
	sec_rl_refund(t, &r, n, T0);
	for (int i = 0; i < 3; i++)
		assert_true(sec_rl_hit(t, &r, n, T0, NULL));
	assert_false(sec_rl_hit(t, &r, n, T0, NULL));
	/* A block stays. */
	sec_rl_rate m = sec_rl_rate_of(1, 60000, 1, 5000);
	uint64_t b = key_of(t, "blocked");
	assert_true(sec_rl_hit(t, &m, b, T0, NULL));
	assert_false(sec_rl_hit(t, &m, b, T0, NULL)); /* blocked to T0+5s */
	sec_rl_refund(t, &m, b, T0 + S);
	assert_false(sec_rl_hit(t, &m, b, T0 + S, NULL));
	sec_rl_unref(t);
}

/* Keys count apart; another table key, another hash. */
static void test_keys_apart(void **state)
{
	(void)state;
	sec_rl *t = sec_rl_new(64, KEY);
	sec_rl_rate r = sec_rl_rate_of(1, 60000, 1, 0);
	assert_true(sec_rl_hit(t, &r, key_of(t, "a"), T0, NULL));
	assert_false(sec_rl_hit(t, &r, key_of(t, "a"), T0, NULL));
	assert_true(sec_rl_hit(t, &r, key_of(t, "b"), T0, NULL));
	uint8_t other[16] = {0};
	sec_rl *u = sec_rl_new(64, other);
	assert_int_not_equal(key_of(t, "a"), key_of(u, "a"));
	sec_rl_unref(u);
	sec_rl_unref(t);
}

/* A full table forgets full buckets first; only slots still counting
 * are evictions. */
static void test_eviction(void **state)
{
	(void)state;
	sec_rl *t = sec_rl_new(64, KEY);
	assert_int_equal(sec_rl_capacity(t), 64);
	sec_rl_rate r = sec_rl_rate_of(1, 1000, 1, 0); /* full after 1 s */
	char name[32];
	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "old-%d", i);
		sec_rl_hit(t, &r, key_of(t, name), T0, NULL);
	}
	assert_true(sec_rl_active(t, T0) > 0);
	assert_true(sec_rl_active(t, T0) <= 64);
	/* 2 s later every old bucket is full: 1000 new keys evict none. */
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "new-%d", i);
		sec_rl_hit(t, &r, key_of(t, name), T0 + 2 * S, NULL);
	}
	uint64_t ev = sec_rl_evictions(t);
	/* At most 64 keys are held, so most of the 1000 new ones (all
	 * counting) pushed out another counting one. */
	assert_in_range(ev, 1000 - 64 - 64, 1000);
	assert_int_equal(sec_rl_active(t, T0 + 2 * S), 64);
	assert_int_equal(sec_rl_active(t, T0 + 10 * S), 0);
	sec_rl_unref(t);
}

/* A day's period with the largest burst: B*T would not fit 64 bits; it
 * is cut, and the bucket still works (the burst passes, no wrap). */
static void test_huge_tolerance(void **state)
{
	(void)state;
	sec_rl *t = sec_rl_new(64, KEY);
	sec_rl_rate r = sec_rl_rate_of(1, 86400000, 10000000, 86400000);
	assert_int_equal(r.interval_ns, 86400 * S);
	assert_int_equal(r.tolerance_ns, SEC_RL_MAX_TOLERANCE);
	for (int i = 0; i < 1000; i++)
		assert_true(sec_rl_hit(t, &r, 7, T0, NULL));
	/* The smallest rate: one request a day, burst 1. */
	r = sec_rl_rate_of(1, 86400000, 1, 0);
	assert_true(sec_rl_hit(t, &r, 8, T0, NULL));
	uint64_t retry = 0;
	assert_false(sec_rl_hit(t, &r, 8, T0 + S, &retry));
	assert_int_equal(retry, 86399 * S);
	sec_rl_unref(t);
}

/* Resident memory of this process in bytes (/proc/self/statm). */
static uint64_t resident(void)
{
	unsigned long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%lu %lu", &size, &res), 2);
	fclose(f);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The largest table (max_keys 16M: 256 MiB of slots) takes no memory
 * until its sets are used: `check` and a reload build tables for every
 * rule, up to 32 of them. */
static void test_idle_table_untouched(void **state)
{
	(void)state;
	uint64_t before = resident();
	sec_rl *t = sec_rl_new(1u << 24, KEY);
	assert_int_equal(sec_rl_capacity(t), 1u << 24);
	uint64_t after = resident();
	assert_true(after < before + (32u << 20));
	/* Usable all the same, zeroed: a new key has a full bucket. */
	sec_rl_rate r = sec_rl_rate_of(1, 1000, 1, 0);
	assert_true(sec_rl_hit(t, &r, key_of(t, "a"), T0, NULL));
	assert_false(sec_rl_hit(t, &r, key_of(t, "a"), T0, NULL));
	sec_rl_unref(t);
}

/* A large table's active keys are estimated from a sample: within a few
 * per cent, and 0 when nothing counts. */
static void test_active_estimate(void **state)
{
	(void)state;
	sec_rl *t = sec_rl_new(1u << 20, KEY);
	sec_rl_rate r = sec_rl_rate_of(1, 60000, 1, 0);
	char name[32];
	for (int i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "client-%d", i);
		sec_rl_hit(t, &r, key_of(t, name), T0, NULL);
	}
	uint32_t n = sec_rl_active(t, T0);
	assert_in_range(n, 90000, 110000);
	assert_int_equal(sec_rl_active(t, T0 + 61 * S), 0);
	sec_rl_unref(t);
}

/* References: the table lives while one is held. */
static void test_refs(void **state)
{
	(void)state;
	sec_rl *t = sec_rl_new(10, KEY);
	assert_ptr_equal(sec_rl_ref(t), t);
	sec_rl_unref(t);
	sec_rl_rate r = sec_rl_rate_of(1, 1000, 1, 0);
	assert_true(sec_rl_hit(t, &r, 5, T0, NULL)); /* still usable */
	sec_rl_unref(t);
	sec_rl_unref(NULL);
}

/* Four threads on one key: exactly the burst gets through. */
typedef struct race {
	sec_rl *t;
	sec_rl_rate r;
	int ok;
} race;

static void *racer(void *arg)
{
	race *x = arg;
	for (int i = 0; i < 10000; i++)
		x->ok += sec_rl_hit(x->t, &x->r, 42, T0, NULL);
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	sec_rl *t = sec_rl_new(64, KEY);
	race x[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		x[i] = (race){t, sec_rl_rate_of(1000, 1000, 1000, 0), 0};
		pthread_create(&th[i], NULL, racer, &x[i]);
	}
	int ok = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ok += x[i].ok;
	}
	assert_int_equal(ok, 1000);
	sec_rl_unref(t);
}

/* A request's key (sec_rlkey.c): ip.src by network and family, IPv4-mapped
 * clients as IPv4, header names case-insensitive, a missing header one
 * value, and no characteristic one key for all. */
static uint64_t key_for(sec_rl *t, cfg_rate_limit *r, const char *ip,
			const http1_header *h, uint32_t nh)
{
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	lb_expr_input in = {.headers = h, .nheaders = nh};
	if (ip && inet_pton(AF_INET, ip, &s4.sin_addr) == 1)
		in.client = (const struct sockaddr *)&s4;
	else if (ip && inet_pton(AF_INET6, ip, &s6.sin6_addr) == 1)
		in.client = (const struct sockaddr *)&s6;
	return sec_rl_request_key(t, r, &in);
}

static void test_request_keys(void **state)
{
	(void)state;
	core_arena *a = core_arena_new(4096);
	sec_rl *t = sec_rl_new(64, KEY);
	lb_expr_ref refs[2];
	lb_expr_error err;
	assert_true(lb_expr_ref_parse("ip.src", 6, a, &refs[0], &err));
	const char *hk = "http.request.headers[\"X-Key\"]";
	assert_true(lb_expr_ref_parse(hk, strlen(hk), a, &refs[1], &err));
	cfg_rate_limit ip = {.refs = refs,
			     .nrefs = 1,
			     .ipv4_prefix_length = 24,
			     .ipv6_prefix_length = 64};
	assert_int_equal(key_for(t, &ip, "192.0.2.1", NULL, 0),
			 key_for(t, &ip, "192.0.2.200", NULL, 0));
	assert_int_not_equal(key_for(t, &ip, "192.0.2.1", NULL, 0),
			     key_for(t, &ip, "192.0.3.1", NULL, 0));
	assert_int_equal(key_for(t, &ip, "192.0.2.1", NULL, 0),
			 key_for(t, &ip, "::ffff:192.0.2.9", NULL, 0));
	assert_int_equal(key_for(t, &ip, "2001:db8:0:1::1", NULL, 0),
			 key_for(t, &ip, "2001:db8:0:1:ffff::2", NULL, 0));
	assert_int_not_equal(key_for(t, &ip, "2001:db8:0:1::1", NULL, 0),
			     key_for(t, &ip, "2001:db8:0:2::1", NULL, 0));
	/* 10.0.0.0/24 and ::a00:0/120 hold the same bytes, not the same
	 * family. */
	cfg_rate_limit full = ip;
	full.ipv4_prefix_length = 32;
	full.ipv6_prefix_length = 128;
	assert_int_not_equal(key_for(t, &full, "10.0.0.0", NULL, 0),
			     key_for(t, &full, "::a00:0", NULL, 0));
	assert_int_not_equal(key_for(t, &full, "10.0.0.0", NULL, 0),
			     key_for(t, &full, NULL, NULL, 0));

	cfg_rate_limit hdr = {.refs = &refs[1], .nrefs = 1};
	http1_header h1[] = {{{"x-key", 5}, {"abc", 3}}};
	http1_header h2[] = {{{"Accept", 6}, {"*/*", 3}},
			     {{"X-KEY", 5}, {"abc", 3}},
			     {{"X-Key", 5}, {"other", 5}}};
	http1_header h3[] = {{{"X-Key", 5}, {"abd", 3}}};
	assert_int_equal(key_for(t, &hdr, "192.0.2.1", h1, 1),
			 key_for(t, &hdr, "198.51.100.1", h2, 3));
	assert_int_not_equal(key_for(t, &hdr, NULL, h1, 1),
			     key_for(t, &hdr, NULL, h3, 1));
	assert_int_equal(key_for(t, &hdr, NULL, NULL, 0),
			 key_for(t, &hdr, NULL, h2, 1)); /* missing: "" */
	cfg_rate_limit both = {
	    .refs = refs, .nrefs = 2, .ipv4_prefix_length = 32};
	assert_int_not_equal(key_for(t, &both, "192.0.2.1", h1, 1),
			     key_for(t, &both, "192.0.2.2", h1, 1));
	/* Two values laid out one after the other: "ab","c" is not
	 * "a","bc"; values past the 1 KiB layout still count apart. */
	lb_expr_ref two[2];
	const char *ha = "http.request.headers[\"A\"]";
	const char *hb = "http.request.headers[\"B\"]";
	assert_true(lb_expr_ref_parse(ha, strlen(ha), a, &two[0], &err));
	assert_true(lb_expr_ref_parse(hb, strlen(hb), a, &two[1], &err));
	cfg_rate_limit ab = {.refs = two, .nrefs = 2};
	http1_header x[] = {{{"A", 1}, {"ab", 2}}, {{"B", 1}, {"c", 1}}};
	http1_header y[] = {{{"A", 1}, {"a", 1}}, {{"B", 1}, {"bc", 2}}};
	assert_int_not_equal(key_for(t, &ab, NULL, x, 2),
			     key_for(t, &ab, NULL, y, 2));
	static char big1[3000], big2[3000];
	memset(big1, 'x', sizeof(big1));
	memset(big2, 'x', sizeof(big2));
	big2[2999] = 'y';
	http1_header l1[] = {{{"A", 1}, {big1, 3000}}, {{"B", 1}, {"c", 1}}};
	http1_header l2[] = {{{"A", 1}, {big2, 3000}}, {{"B", 1}, {"c", 1}}};
	assert_int_not_equal(key_for(t, &ab, NULL, l1, 2),
			     key_for(t, &ab, NULL, l2, 2));
	assert_int_equal(key_for(t, &ab, NULL, l1, 2),
			 key_for(t, &ab, "192.0.2.1", l1, 2));
	cfg_rate_limit none = {0};
	assert_int_equal(key_for(t, &none, "192.0.2.1", h1, 1),
			 key_for(t, &none, "2001:db8::1", h3, 1));
	sec_rl_unref(t);
	core_arena_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_then_rate),
	    cmocka_unit_test(test_steady_rate),
	    cmocka_unit_test(test_mitigation),
	    cmocka_unit_test(test_refund),
	    cmocka_unit_test(test_keys_apart),
	    cmocka_unit_test(test_eviction),
	    cmocka_unit_test(test_huge_tolerance),
	    cmocka_unit_test(test_idle_table_untouched),
	    cmocka_unit_test(test_active_estimate),
	    cmocka_unit_test(test_refs),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_request_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
