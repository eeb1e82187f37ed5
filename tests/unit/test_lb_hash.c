/* Unit tests for lb_hash: SipHash-2-4 reference vectors, client address
 * keys, and weighted rendezvous hashing (distribution by weight, and only
 * the leaving node's keys move when a node leaves or joins). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "lb/lb_hash.h"

#define NKEYS 10000

static void test_siphash_vectors(void **state)
{
	/* The reference vectors of the SipHash paper: key 00..0f, message
	 * 00..(len-1). */
	uint8_t key[16], msg[64];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	assert_true(lb_hash_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
	assert_true(lb_hash_siphash(key, msg, 8) == 0x93f5f5799a932462ULL);
	assert_true(lb_hash_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL);
	/* 63 bytes: seven full blocks and a tail of seven */
	assert_true(lb_hash_siphash(key, msg, 63) == 0x958a324ceb064572ULL);
}

static void test_stable_values(void **state)
{
	/* Pinned: changing any of these moves every hash-steered client
	 * and invalidates every affinity cookie in the field. */
	assert_true(lb_hash_bytes("", 0) == lb_hash_bytes("", 0));
	assert_true(lb_hash_origin_id("pool-a", "origin-1") ==
		    lb_hash_origin_id("pool-a", "origin-1"));
	assert_true(lb_hash_origin_id("ab", "c") !=
		    lb_hash_origin_id("a", "bc"));
	assert_true(lb_hash_origin_id("pool-a", "origin-1") ==
		    0x0394b3454ce1a8f3ULL);
}

static void sin4(struct sockaddr_in *s, const char *ip, uint16_t port)
{
	memset(s, 0, sizeof(*s));
	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
}

static void sin6(struct sockaddr_in6 *s, const char *ip, uint16_t port)
{
	memset(s, 0, sizeof(*s));
	s->sin6_family = AF_INET6;
	s->sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
}

static void test_sockaddr_key(void **state)
{
	struct sockaddr_in a, b, c;
	struct sockaddr_in6 m, v6;
	sin4(&a, "192.0.2.10", 1000);
	sin4(&b, "192.0.2.10", 2000);
	sin4(&c, "192.0.2.11", 1000);
	sin6(&m, "::ffff:192.0.2.10", 3000);
	sin6(&v6, "2001:db8::10", 1000);
	uint64_t ka = lb_hash_sockaddr((struct sockaddr *)&a);
	assert_true(ka != 0);
	/* the port does not count, an IPv4-mapped address is its IPv4 */
	assert_true(ka == lb_hash_sockaddr((struct sockaddr *)&b));
	assert_true(ka == lb_hash_sockaddr((struct sockaddr *)&m));
	assert_true(ka != lb_hash_sockaddr((struct sockaddr *)&c));
	assert_true(ka != lb_hash_sockaddr((struct sockaddr *)&v6));
	assert_true(lb_hash_sockaddr(NULL) == 0);
}

static int hrw_pick(uint64_t key, const uint64_t *nodes, const double *w, int n)
{
	int best = -1;
	double bs = -1;
	for (int i = 0; i < n; i++) {
		double s = lb_hash_hrw_score(key, nodes[i], w[i]);
		if (w[i] > 0 && s > bs) {
			bs = s;
			best = i;
		}
	}
	return best;
}

static void make_nodes(uint64_t *nodes, int n)
{
	char name[16];
	for (int i = 0; i < n; i++) {
		name[0] = 'o';
		name[1] = (char)('0' + i);
		name[2] = '\0';
		nodes[i] = lb_hash_origin_id("pool", name);
	}
}

static void test_hrw_weighted_distribution(void **state)
{
	uint64_t nodes[3];
	double w[3] = {1.0, 0.5, 0.25};
	int count[3] = {0};
	make_nodes(nodes, 3);
	for (uint64_t k = 0; k < 4 * NKEYS; k++)
		count[hrw_pick(lb_hash_bytes(&k, sizeof(k)), nodes, w, 3)]++;
	/* shares 4/7, 2/7, 1/7 of 40000: 22857, 11429, 5714; +-4% of all */
	assert_in_range(count[0], 22857 - 1600, 22857 + 1600);
	assert_in_range(count[1], 11429 - 1600, 11429 + 1600);
	assert_in_range(count[2], 5714 - 1600, 5714 + 1600);
}

static void test_hrw_zero_weight(void **state)
{
	assert_true(lb_hash_hrw_score(1, 2, 0) == 0);
	assert_true(lb_hash_hrw_score(1, 2, -1) == 0);
	assert_true(lb_hash_hrw_score(1, 2, 0.001) > 0);
}

static void test_hrw_node_leaves(void **state)
{
	uint64_t nodes[5];
	double w[5] = {1, 1, 1, 1, 1};
	static int before[NKEYS];
	int moved = 0, to[5] = {0};
	make_nodes(nodes, 5);
	for (int k = 0; k < NKEYS; k++)
		before[k] = hrw_pick(lb_hash_bytes(&k, sizeof(k)), nodes, w, 5);
	w[2] = 0; /* node 2 leaves */
	for (int k = 0; k < NKEYS; k++) {
		int now = hrw_pick(lb_hash_bytes(&k, sizeof(k)), nodes, w, 5);
		if (before[k] != 2) {
			assert_int_equal(now,
					 before[k]); /* nobody else moves */
		} else {
			moved++;
			to[now]++;
		}
	}
	/* node 2 had about a fifth; its keys spread over the other four */
	assert_in_range(moved, 2000 - 300, 2000 + 300);
	for (int i = 0; i < 5; i++)
		if (i != 2)
			assert_in_range(to[i], moved / 4 - 150,
					moved / 4 + 150);
	assert_int_equal(to[2], 0);
}

static void test_hrw_node_joins(void **state)
{
	uint64_t nodes[5];
	double w[5] = {1, 1, 1, 1, 0};
	static int before[NKEYS];
	int gained = 0;
	make_nodes(nodes, 5);
	for (int k = 0; k < NKEYS; k++)
		before[k] = hrw_pick(lb_hash_bytes(&k, sizeof(k)), nodes, w, 5);
	w[4] = 1; /* node 4 joins */
	for (int k = 0; k < NKEYS; k++) {
		int now = hrw_pick(lb_hash_bytes(&k, sizeof(k)), nodes, w, 5);
		if (now != before[k]) {
			assert_int_equal(now, 4); /* keys only move to it */
			gained++;
		}
	}
	assert_in_range(gained, 2000 - 300, 2000 + 300);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_siphash_vectors),
	    cmocka_unit_test(test_stable_values),
	    cmocka_unit_test(test_sockaddr_key),
	    cmocka_unit_test(test_hrw_weighted_distribution),
	    cmocka_unit_test(test_hrw_zero_weight),
	    cmocka_unit_test(test_hrw_node_leaves),
	    cmocka_unit_test(test_hrw_node_joins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
