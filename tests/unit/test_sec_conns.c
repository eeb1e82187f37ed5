/* test_sec_conns.c - open connections per client (sec_conns.c): the limit,
 * release, IPv4 and IPv6 /64 keys, untracked connections when a set pair
 * is full, and threads taking and releasing at once. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sec/sec_conns.h"

static const uint8_t KEY[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

static uint64_t key_of(sec_conns *t, const char *ip)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1)
		return sec_conns_key(t, (struct sockaddr *)&s4);
	assert_int_equal(inet_pton(AF_INET6, ip, &s6.sin6_addr), 1);
	return sec_conns_key(t, (struct sockaddr *)&s6);
}

static void test_limit_and_release(void **state)
{
	(void)state;
	sec_conns *t = sec_conns_new(100, KEY);
	uint64_t a = key_of(t, "192.0.2.1"), b = key_of(t, "192.0.2.2");
	assert_int_not_equal(a, b);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sec_conns_take(t, a, 3), SEC_CONNS_TAKEN);
	assert_int_equal(sec_conns_take(t, a, 3), SEC_CONNS_OVER);
	assert_int_equal(sec_conns_count(t, a), 3);
	/* Another client is not touched. */
	assert_int_equal(sec_conns_take(t, b, 3), SEC_CONNS_TAKEN);
	sec_conns_release(t, a);
	assert_int_equal(sec_conns_take(t, a, 3), SEC_CONNS_TAKEN);
	for (int i = 0; i < 3; i++)
		sec_conns_release(t, a);
	assert_int_equal(sec_conns_count(t, a), 0);
	/* A release of a key that holds nothing changes nothing. */
	sec_conns_release(t, a);
	assert_int_equal(sec_conns_count(t, a), 0);
	assert_int_equal(sec_conns_count(t, b), 1);
	/* A lower limit (a reload) refuses until enough have closed. */
	assert_int_equal(sec_conns_take(t, b, 1), SEC_CONNS_OVER);
	sec_conns_free(t);
}

static void test_keys(void **state)
{
	(void)state;
	sec_conns *t = sec_conns_new(100, KEY);
	assert_int_equal(key_of(t, "2001:db8:1:2::1"),
			 key_of(t, "2001:db8:1:2:ffff::9"));
	assert_int_not_equal(key_of(t, "2001:db8:1:2::1"),
			     key_of(t, "2001:db8:1:3::1"));
	assert_int_equal(key_of(t, "198.51.100.7"),
			 key_of(t, "::ffff:198.51.100.7"));
	assert_int_not_equal(key_of(t, "198.51.100.7"),
			     key_of(t, "198.51.100.8"));
	sec_conns *u = sec_conns_new(100, (const uint8_t[16]){0});
	assert_int_not_equal(key_of(t, "198.51.100.7"),
			     key_of(u, "198.51.100.7"));
	sec_conns_free(u);
	sec_conns_free(t);
}

/* Keys whose high bits pick one set pair: eight fit (two sets of four),
 * the ninth is let through untracked, and room comes back with a close. */
static void test_untracked(void **state)
{
	(void)state;
	sec_conns *t = sec_conns_new(10, KEY);
	uint64_t k[9];
	for (int i = 0; i < 9; i++)
		k[i] = (UINT64_C(6) << 32) | (uint64_t)(i + 1);
	for (int i = 0; i < 8; i++)
		assert_int_equal(sec_conns_take(t, k[i], 5), SEC_CONNS_TAKEN);
	assert_int_equal(sec_conns_take(t, k[8], 5), SEC_CONNS_UNTRACKED);
	/* Keys already there still count. */
	assert_int_equal(sec_conns_take(t, k[0], 2), SEC_CONNS_TAKEN);
	assert_int_equal(sec_conns_take(t, k[0], 2), SEC_CONNS_OVER);
	sec_conns_release(t, k[3]);
	assert_int_equal(sec_conns_take(t, k[8], 5), SEC_CONNS_TAKEN);
	assert_int_equal(sec_conns_count(t, k[8]), 1);
	/* Its pair's neighbour (set 7, the same pair as 6) shares the room. */
	assert_int_equal(sec_conns_take(t, (UINT64_C(7) << 32) | 99, 5),
			 SEC_CONNS_UNTRACKED);
	sec_conns_free(t);
}

typedef struct racer {
	sec_conns *t;
	uint64_t key;
	int over;
} racer;

static void *race(void *arg)
{
	racer *r = arg;
	for (int i = 0; i < 20000; i++) {
		if (sec_conns_take(r->t, r->key, 1000000) == SEC_CONNS_TAKEN)
			sec_conns_release(r->t, r->key);
		else
			r->over++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	sec_conns *t = sec_conns_new(100, KEY);
	racer r[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (racer){t, (uint64_t)(i % 2 + 1) << 40, 0};
		pthread_create(&th[i], NULL, race, &r[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(r[i].over, 0);
	}
	assert_int_equal(sec_conns_count(t, UINT64_C(1) << 40), 0);
	assert_int_equal(sec_conns_count(t, UINT64_C(2) << 40), 0);
	sec_conns_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limit_and_release),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_untracked),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
