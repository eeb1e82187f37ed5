/* test_dns_rrl.c - response rate limiting (dns_rrl.c): counting per client
 * network and answer, whole-second windows, slip cadence, prefixes, and the
 * truncated form of a response. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "dns/dns_rrl.h"

static const uint8_t KEY[16] = {1, 2,  3,  4,  5,  6,  7,  8,
				9, 10, 11, 12, 13, 14, 15, 16};
/* "www.example.com" in wire form, and the same in other case. */
static const uint8_t WWW[] = "\3www\7example\3com";
static const uint8_t WWW_UP[] = "\3WWW\7Example\3COM";
static const uint8_t MAIL[] = "\4mail\7example\3com";

static struct sockaddr_in v4(const char *a)
{
	struct sockaddr_in s = {.sin_family = AF_INET};
	inet_pton(AF_INET, a, &s.sin_addr);
	return s;
}

static struct sockaddr_in6 v6(const char *a)
{
	struct sockaddr_in6 s = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, a, &s.sin6_addr);
	return s;
}

static dns_rrl_action check(dns_rrl *r, const dns_rrl_cfg *c, const void *sa,
			    dns_rrl_class cls, const uint8_t *name,
			    uint32_t now)
{
	return dns_rrl_check(r, c, (const struct sockaddr *)sa, cls, name,
			     name ? sizeof(WWW) : 0, 1, now);
}

/* n answers in one second: how many of each action. */
static void burst(dns_rrl *r, const dns_rrl_cfg *c, const void *sa,
		  dns_rrl_class cls, const uint8_t *name, uint32_t now, int n,
		  int out[3])
{
	out[0] = out[1] = out[2] = 0;
	for (int i = 0; i < n; i++)
		out[check(r, c, sa, cls, name, now)]++;
}

static void test_limit_and_slip(void **state)
{
	(void)state;
	dns_rrl *r = dns_rrl_new(1024, KEY);
	assert_non_null(r);
	dns_rrl_cfg c = {.rps = 5, .slip = 2, .v4_prefix = 24, .v6_prefix = 56};
	struct sockaddr_in a = v4("192.0.2.10");
	int n[3];
	burst(r, &c, &a, DNS_RRL_ANSWER, WWW, 100, 25, n);
	/* 5 sent, then of the 20 over: every 2nd truncated. */
	assert_int_equal(n[DNS_RRL_SEND], 5);
	assert_int_equal(n[DNS_RRL_SLIP], 10);
	assert_int_equal(n[DNS_RRL_DROP], 10);
	/* The next second starts over. */
	burst(r, &c, &a, DNS_RRL_ANSWER, WWW, 101, 5, n);
	assert_int_equal(n[DNS_RRL_SEND], 5);
	/* slip 0: all dropped; slip 1: all truncated. */
	c.slip = 0;
	burst(r, &c, &a, DNS_RRL_ANSWER, WWW, 102, 10, n);
	assert_int_equal(n[DNS_RRL_SEND], 5);
	assert_int_equal(n[DNS_RRL_DROP], 5);
	c.slip = 1;
	burst(r, &c, &a, DNS_RRL_ANSWER, WWW, 103, 10, n);
	assert_int_equal(n[DNS_RRL_SLIP], 5);
	/* A flood past 65,535 in one second keeps the cadence (the count
	 * wraps back to just over the limit instead of sticking). */
	c.slip = 3;
	burst(r, &c, &a, DNS_RRL_ANSWER, WWW, 104, 200000, n);
	assert_int_equal(n[DNS_RRL_SEND], 5);
	assert_true(n[DNS_RRL_SLIP] >= 199995 / 3 - 2 &&
		    n[DNS_RRL_SLIP] <= 199995 / 3 + 2);
	/* A caller one second behind counts into the newer window rather
	 * than restarting it. */
	c.slip = 0;
	burst(r, &c, &a, DNS_RRL_ANSWER, MAIL, 200, 5, n);
	assert_int_equal(check(r, &c, &a, DNS_RRL_ANSWER, MAIL, 199),
			 DNS_RRL_DROP);
	assert_int_equal(check(r, &c, &a, DNS_RRL_ANSWER, MAIL, 200),
			 DNS_RRL_DROP);
	/* Off: everything goes. */
	c.rps = 0;
	burst(r, &c, &a, DNS_RRL_ANSWER, WWW, 103, 50, n);
	assert_int_equal(n[DNS_RRL_SEND], 50);
	dns_rrl_free(r);
}

/* What is one key: the network (prefix), the class, and for answers the
 * name (case-insensitive) and type. */
static void test_keys(void **state)
{
	(void)state;
	dns_rrl *r = dns_rrl_new(1 << 16, KEY);
	dns_rrl_cfg c = {.rps = 3, .slip = 0, .v4_prefix = 24, .v6_prefix = 56};
	int n[3];
	struct sockaddr_in a = v4("198.51.100.1"), b = v4("198.51.100.200"),
			   other = v4("198.51.101.1");
	/* Same /24: one budget across both addresses, and the other case
	 * of the name. */
	assert_int_equal(check(r, &c, &a, DNS_RRL_ANSWER, WWW, 7), 0);
	assert_int_equal(check(r, &c, &b, DNS_RRL_ANSWER, WWW_UP, 7), 0);
	assert_int_equal(check(r, &c, &a, DNS_RRL_ANSWER, WWW, 7), 0);
	assert_int_equal(check(r, &c, &b, DNS_RRL_ANSWER, WWW, 7),
			 DNS_RRL_DROP);
	/* Another network, another name, another type: fresh budgets. */
	burst(r, &c, &other, DNS_RRL_ANSWER, WWW, 7, 3, n);
	assert_int_equal(n[DNS_RRL_SEND], 3);
	burst(r, &c, &a, DNS_RRL_ANSWER, MAIL, 7, 3, n);
	assert_int_equal(n[DNS_RRL_SEND], 3);
	assert_int_equal(dns_rrl_check(r, &c, (struct sockaddr *)&a,
				       DNS_RRL_ANSWER, WWW, sizeof(WWW), 28, 7),
			 DNS_RRL_SEND);
	/* NXDOMAIN counts per network whatever the name (random
	 * subdomains), apart from answers and errors. */
	assert_int_equal(check(r, &c, &a, DNS_RRL_NXDOMAIN, WWW, 7), 0);
	assert_int_equal(check(r, &c, &a, DNS_RRL_NXDOMAIN, MAIL, 7), 0);
	assert_int_equal(check(r, &c, &a, DNS_RRL_NXDOMAIN, NULL, 7), 0);
	assert_int_equal(check(r, &c, &a, DNS_RRL_NXDOMAIN, WWW, 7),
			 DNS_RRL_DROP);
	burst(r, &c, &a, DNS_RRL_ERROR, NULL, 7, 3, n);
	assert_int_equal(n[DNS_RRL_SEND], 3);
	/* Wildcard answers: per network whatever the name, on their own. */
	assert_int_equal(check(r, &c, &a, DNS_RRL_WILDCARD, WWW, 7), 0);
	assert_int_equal(check(r, &c, &a, DNS_RRL_WILDCARD, MAIL, 7), 0);
	assert_int_equal(check(r, &c, &a, DNS_RRL_WILDCARD, WWW_UP, 7), 0);
	assert_int_equal(check(r, &c, &a, DNS_RRL_WILDCARD, MAIL, 7),
			 DNS_RRL_DROP);
	/* /32: each address its own. */
	c.v4_prefix = 32;
	burst(r, &c, &a, DNS_RRL_ANSWER, MAIL, 8, 3, n);
	burst(r, &c, &b, DNS_RRL_ANSWER, MAIL, 8, 3, n);
	assert_int_equal(n[DNS_RRL_SEND], 3);
	dns_rrl_free(r);
}

static void test_ipv6_and_mapped(void **state)
{
	(void)state;
	dns_rrl *r = dns_rrl_new(1 << 12, KEY);
	dns_rrl_cfg c = {.rps = 2, .slip = 0, .v4_prefix = 24, .v6_prefix = 56};
	struct sockaddr_in6 a = v6("2001:db8:0:aa00::1"),
			    b = v6("2001:db8:0:aaff::2"),
			    other = v6("2001:db8:0:ab00::1");
	int n[3];
	/* One /56. */
	assert_int_equal(check(r, &c, &a, DNS_RRL_ANSWER, WWW, 1), 0);
	assert_int_equal(check(r, &c, &b, DNS_RRL_ANSWER, WWW, 1), 0);
	assert_int_equal(check(r, &c, &a, DNS_RRL_ANSWER, WWW, 1),
			 DNS_RRL_DROP);
	burst(r, &c, &other, DNS_RRL_ANSWER, WWW, 1, 2, n);
	assert_int_equal(n[DNS_RRL_SEND], 2);
	/* An IPv4-mapped client counts as its IPv4 network. */
	struct sockaddr_in plain = v4("203.0.113.5");
	struct sockaddr_in6 mapped = v6("::ffff:203.0.113.77");
	assert_int_equal(check(r, &c, &plain, DNS_RRL_ANSWER, WWW, 1), 0);
	assert_int_equal(check(r, &c, &mapped, DNS_RRL_ANSWER, WWW, 1), 0);
	assert_int_equal(check(r, &c, &plain, DNS_RRL_ANSWER, WWW, 1),
			 DNS_RRL_DROP);
	dns_rrl_free(r);
	assert_null(dns_rrl_new(1000, KEY)); /* not a power of two */
	assert_null(dns_rrl_new(16, KEY));
}

static void test_qname_and_truncate(void **state)
{
	(void)state;
	/* A response: id, QR|AA|RD, NOERROR, 1 question, 1 answer. */
	uint8_t m[64] = {0x12, 0x34, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0};
	size_t n = 12;
	memcpy(m + n, WWW, sizeof(WWW));
	n += sizeof(WWW);
	memcpy(m + n, "\0\1\0\1", 4); /* A IN */
	n += 4;
	size_t qend = n;
	memcpy(m + n, "\xc0\x0c\0\1\0\1\0\0\0\x1e\0\4\xc0\0\2\1", 16);
	n += 16;
	const uint8_t *name;
	uint16_t qtype;
	assert_int_equal(dns_rrl_qname(m, n, &name, &qtype), sizeof(WWW));
	assert_ptr_equal(name, m + 12);
	assert_int_equal(qtype, 1);
	size_t t = dns_rrl_truncate(m, n);
	assert_int_equal(t, qend);
	assert_int_equal(m[2] & 0x02, 0x02); /* TC */
	assert_int_equal(m[2] & 0x80, 0x80); /* still a response */
	assert_int_equal(m[0], 0x12);	     /* same id */
	for (int i = 6; i < 12; i++)
		assert_int_equal(m[i], 0); /* no records */
	assert_int_equal(m[5], 1);	   /* the question stays */
	/* Not responses, or cut short: left alone. */
	uint8_t q[64];
	memcpy(q, m, qend);
	q[2] &= 0x7f;
	assert_int_equal(dns_rrl_truncate(q, qend), 0);
	assert_int_equal(dns_rrl_truncate(m, 20), 0);
	assert_int_equal(dns_rrl_qname(m, 20, &name, &qtype), 0);
	/* With EDNS: the OPT record stays (and alone in additional), with
	 * its extended rcode and options. */
	uint8_t e[96] = {0x12, 0x34, 0x85, 0x00, 0, 1, 0, 1, 0, 1, 0, 1};
	n = 12;
	memcpy(e + n, WWW, sizeof(WWW));
	n += sizeof(WWW);
	memcpy(e + n, "\0\1\0\1", 4);
	n += 4;
	qend = n;
	memcpy(e + n, "\xc0\x0c\0\1\0\1\0\0\0\x1e\0\4\xc0\0\2\1", 16);
	n += 16;
	/* an authority record: SOA-ish, any rdata will do */
	memcpy(e + n, "\xc0\x10\0\6\0\1\0\0\0\x1e\0\2\xab\xcd", 14);
	n += 14;
	/* root, OPT, 1232, ext-rcode 1 (BADVERS), DO, an empty ECS option */
	static const uint8_t opt[] = {0, 0, 41, 0x04, 0xd0, 1, 0, 0x80,
				      0, 0, 4,	0,    8,    0, 0};
	memcpy(e + n, opt, sizeof(opt));
	n += sizeof(opt);
	t = dns_rrl_truncate(e, n);
	assert_int_equal(t, qend + sizeof(opt));
	assert_memory_equal(e + qend, opt, sizeof(opt));
	assert_int_equal(e[7] | e[9], 0);
	assert_int_equal(e[11], 1);
	/* Bytes after the last record: not ours, left alone. */
	uint8_t junk[96];
	memcpy(junk, m, qend);
	junk[2] = 0x85;
	junk[7] = 0;
	junk[qend] = 0x55;
	assert_int_equal(dns_rrl_truncate(junk, qend + 1), 0);
	/* No question: the header alone. */
	uint8_t h[12] = {0, 1, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(dns_rrl_truncate(h, 12), 12);
	assert_int_equal(dns_rrl_qname(h, 12, &name, &qtype), 0);
	/* A pointer in a question is not ours. */
	uint8_t p[20] = {0, 1, 0x81, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c};
	assert_int_equal(dns_rrl_truncate(p, 20), 0);
	assert_int_equal(dns_rrl_qname(p, 20, &name, &qtype), 0);
	assert_int_equal(dns_rrl_class_of(0), DNS_RRL_ANSWER);
	assert_int_equal(dns_rrl_class_of(3), DNS_RRL_NXDOMAIN);
	assert_int_equal(dns_rrl_class_of(5), DNS_RRL_ERROR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limit_and_slip),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_ipv6_and_mapped),
	    cmocka_unit_test(test_qname_and_truncate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
