/* Unit tests for cfg_resolve: which address is kept (pure), and the cache
 * of names (seed, lookup, refresh, dropping names). Lookups only of IP
 * literals and "localhost" (/etc/hosts): no DNS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config/cfg_resolve.h"

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(443);
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	return ss;
}

static const char *ip_of(const struct sockaddr_storage *ss, char *buf)
{
	const void *a =
	    ss->ss_family == AF_INET6
		? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
		: (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
	return inet_ntop(ss->ss_family, a, buf, 64);
}

/* An answer list over addresses (as getaddrinfo would give). */
typedef struct answer {
	struct addrinfo ai[4];
	struct sockaddr_storage ss[4];
} answer;

static const struct addrinfo *make(answer *a, const struct sockaddr_storage *s,
				   size_t n)
{
	memset(a, 0, sizeof(*a));
	for (size_t i = 0; i < n; i++) {
		a->ss[i] = s[i];
		a->ai[i].ai_family = s[i].ss_family;
		a->ai[i].ai_socktype = SOCK_STREAM;
		a->ai[i].ai_addr = (struct sockaddr *)&a->ss[i];
		a->ai[i].ai_addrlen = s[i].ss_family == AF_INET
					  ? sizeof(struct sockaddr_in)
					  : sizeof(struct sockaddr_in6);
		a->ai[i].ai_next = i + 1 < n ? &a->ai[i + 1] : NULL;
	}
	return n ? &a->ai[0] : NULL;
}

static void test_pick(void **state)
{
	(void)state;
	char buf[64];
	answer a;
	struct sockaddr_storage out;
	socklen_t len = 0;
	struct sockaddr_storage two[2] = {v4("10.0.0.1", 80),
					  v4("10.0.0.2", 80)};
	const struct addrinfo *ans = make(&a, two, 2);

	/* Nothing kept yet: the first, port 0. */
	assert_true(cfg_resolve_pick(NULL, 0, ans, &out, &len));
	assert_string_equal(ip_of(&out, buf), "10.0.0.1");
	assert_int_equal(((struct sockaddr_in *)&out)->sin_port, 0);
	assert_int_equal(len, sizeof(struct sockaddr_in));

	/* The kept one is still there (second, another port): kept. */
	struct sockaddr_storage kept = v4("10.0.0.2", 0);
	assert_true(cfg_resolve_pick(&kept, sizeof(struct sockaddr_in), ans,
				     &out, &len));
	assert_string_equal(ip_of(&out, buf), "10.0.0.2");

	/* Gone: the answer's first. */
	kept = v4("10.0.0.9", 0);
	assert_true(cfg_resolve_pick(&kept, sizeof(struct sockaddr_in), ans,
				     &out, &len));
	assert_string_equal(ip_of(&out, buf), "10.0.0.1");

	/* IPv6 kept among mixed answers. */
	struct sockaddr_storage mixed[3] = {
	    v4("10.0.0.1", 0), v6("2001:db8::1"), v6("2001:db8::2")};
	ans = make(&a, mixed, 3);
	kept = v6("2001:db8::2");
	assert_true(cfg_resolve_pick(&kept, sizeof(struct sockaddr_in6), ans,
				     &out, &len));
	assert_string_equal(ip_of(&out, buf), "2001:db8::2");
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(((struct sockaddr_in6 *)&out)->sin6_port, 0);

	/* Nothing usable. */
	struct sockaddr_storage odd = v4("10.0.0.1", 0);
	ans = make(&a, &odd, 1);
	a.ai[0].ai_family = AF_UNIX;
	assert_false(cfg_resolve_pick(NULL, 0, ans, &out, &len));
	assert_false(cfg_resolve_pick(NULL, 0, NULL, &out, &len));
}

static int nreports, nchanged;
static char last_new[64];

static void report(const cfg_resolve_change *ch, void *arg)
{
	(void)arg;
	nreports++;
	if (ch->changed) {
		nchanged++;
		snprintf(last_new, sizeof(last_new), "%s", ch->new_ip);
	}
}

/* Keep "localhost" and the even 127.0.1.N literals. */
static bool keep_even(const char *host, void *arg)
{
	(void)arg;
	if (strcmp(host, "localhost") == 0)
		return true;
	unsigned n;
	return sscanf(host, "127.0.1.%u", &n) == 1 && n % 2 == 0;
}

static void test_cache(void **state)
{
	(void)state;
	char buf[64];
	cfg_resolve_forget();
	cfg_resolve_counts c0, c;
	cfg_resolve_counts_get(&c0);
	assert_int_equal(c0.names, 0);

	/* 200 literals seeded with their own address, plus localhost
	 * seeded with a wrong one (a running config's stale address). */
	for (unsigned i = 0; i < 200; i++) {
		char name[32], ip[32];
		snprintf(name, sizeof(name), "127.0.1.%u", i);
		snprintf(ip, sizeof(ip), "127.0.1.%u", i);
		struct sockaddr_storage ss = v4(ip, 8080);
		cfg_resolve_seed(name, &ss, sizeof(struct sockaddr_in));
	}
	struct sockaddr_storage stale = v4("127.9.9.9", 80);
	cfg_resolve_seed("localhost", &stale, sizeof(struct sockaddr_in));
	/* Seeding again does not overwrite. */
	struct sockaddr_storage other = v4("127.8.8.8", 80);
	cfg_resolve_seed("localhost", &other, sizeof(struct sockaddr_in));
	cfg_resolve_counts_get(&c);
	assert_int_equal(c.names, 201);
	assert_int_equal(c.lookups, c0.lookups); /* seeding looks nothing up */

	/* A seeded name is answered from the cache, no lookup. */
	struct sockaddr_storage got;
	socklen_t len;
	char err[128];
	assert_int_equal(
	    cfg_resolve_host("localhost", &got, &len, err, sizeof(err)), 0);
	assert_string_equal(ip_of(&got, buf), "127.9.9.9");
	cfg_resolve_counts_get(&c);
	assert_int_equal(c.lookups, c0.lookups);

	/* Refresh: odd names dropped, even ones kept and unchanged,
	 * localhost moves to its /etc/hosts address. */
	nreports = nchanged = 0;
	size_t changed = cfg_resolve_refresh(keep_even, report, NULL);
	assert_int_equal(changed, 1);
	assert_int_equal(nchanged, 1);
	assert_int_equal(nreports, 1);
	/* 127.0.0.1, or ::1 where /etc/hosts has it too (Debian's default:
	 * getaddrinfo then sorts ::1 first, RFC 6724). */
	assert_true(strcmp(last_new, "127.0.0.1") == 0 ||
		    strcmp(last_new, "::1") == 0);
	cfg_resolve_counts_get(&c);
	assert_int_equal(c.names, 101);
	assert_int_equal(c.lookups, c0.lookups + 101);
	assert_int_equal(c.changes, c0.changes + 1);

	/* Every kept name is still found after the deletions (no lookup). */
	uint64_t before = c.lookups;
	for (unsigned i = 0; i < 200; i += 2) {
		char name[32];
		snprintf(name, sizeof(name), "127.0.1.%u", i);
		assert_int_equal(
		    cfg_resolve_host(name, &got, &len, err, sizeof(err)), 0);
		assert_string_equal(ip_of(&got, buf), name);
	}
	assert_int_equal(
	    cfg_resolve_host("localhost", &got, &len, err, sizeof(err)), 0);
	assert_string_equal(ip_of(&got, buf), last_new);
	cfg_resolve_counts_get(&c);
	assert_int_equal(c.lookups, before);

	/* A dropped name is looked up again (a literal: no DNS) and cached. */
	assert_int_equal(
	    cfg_resolve_host("127.0.1.3", &got, &len, err, sizeof(err)), 0);
	assert_string_equal(ip_of(&got, buf), "127.0.1.3");
	cfg_resolve_counts_get(&c);
	assert_int_equal(c.lookups, before + 1);
	assert_int_equal(c.names, 102);

	/* A refresh that changes nothing reports nothing. */
	nreports = 0;
	assert_int_equal(cfg_resolve_refresh(NULL, report, NULL), 0);
	assert_int_equal(nreports, 0);

	cfg_resolve_forget();
	cfg_resolve_counts_get(&c);
	assert_int_equal(c.names, 0);
}

/* A reload's batch: fresh lookups that neither read nor fill the cache,
 * answered again from the batch without another lookup. */
static void test_batch(void **state)
{
	(void)state;
	char buf[64];
	cfg_resolve_forget();
	struct sockaddr_storage stale = v4("127.9.9.9", 80);
	cfg_resolve_seed("localhost", &stale, sizeof(struct sockaddr_in));
	cfg_resolve_counts c0, c;
	cfg_resolve_counts_get(&c0);

	cfg_resolve_batch *b = cfg_resolve_batch_new();
	struct sockaddr_storage got;
	socklen_t len;
	char err[128];
	cfg_resolve_batch_use(b, true);
	assert_int_equal(
	    cfg_resolve_host("localhost", &got, &len, err, sizeof(err)), 0);
	char fresh[64];
	snprintf(fresh, sizeof(fresh), "%s", ip_of(&got, buf));
	assert_true(strcmp(fresh, "127.0.0.1") == 0 ||
		    strcmp(fresh, "::1") == 0);
	/* 100 names: the batch grows; each looked up once. */
	for (unsigned i = 0; i < 100; i++) {
		char name[32];
		snprintf(name, sizeof(name), "127.0.2.%u", i);
		assert_int_equal(
		    cfg_resolve_host(name, &got, &len, err, sizeof(err)), 0);
		assert_string_equal(ip_of(&got, buf), name);
	}
	cfg_resolve_counts_get(&c);
	assert_int_equal(c.lookups, c0.lookups + 101);
	assert_int_equal(c.names, 1); /* the cache untouched */
	cfg_resolve_batch_use(NULL, false);
	assert_int_equal(
	    cfg_resolve_host("localhost", &got, &len, err, sizeof(err)), 0);
	assert_string_equal(ip_of(&got, buf), "127.9.9.9");

	/* Used again (not fresh): its answers, no lookup; what it lacks
	 * from the cache. */
	cfg_resolve_batch_use(b, false);
	assert_int_equal(
	    cfg_resolve_host("localhost", &got, &len, err, sizeof(err)), 0);
	assert_string_equal(ip_of(&got, buf), fresh);
	assert_int_equal(
	    cfg_resolve_host("127.0.2.7", &got, &len, err, sizeof(err)), 0);
	assert_string_equal(ip_of(&got, buf), "127.0.2.7");
	cfg_resolve_counts_get(&c);
	assert_int_equal(c.lookups, c0.lookups + 101);
	cfg_resolve_batch_use(NULL, false);
	cfg_resolve_batch_free(b);
	cfg_resolve_forget();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pick),
	    cmocka_unit_test(test_cache),
	    cmocka_unit_test(test_batch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
