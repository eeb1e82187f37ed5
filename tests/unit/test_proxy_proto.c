/* Unit tests for proxy_proto: PROXY protocol v1 and v2, valid headers and
 * their prefixes ("need more"), data after the header, and malformed
 * headers of every kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "http/proxy_proto.h"

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static int parse_str(const char *s, proxy_proto_result *r)
{
	return proxy_proto_parse((const uint8_t *)s, strlen(s), r);
}

static void check_v4(const struct sockaddr_storage *ss, const char *ip,
		     uint16_t port)
{
	const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
	char buf[INET_ADDRSTRLEN];
	assert_int_equal(s->sin_family, AF_INET);
	inet_ntop(AF_INET, &s->sin_addr, buf, sizeof(buf));
	assert_string_equal(buf, ip);
	assert_int_equal(ntohs(s->sin_port), port);
}

static void check_v6(const struct sockaddr_storage *ss, const char *ip,
		     uint16_t port)
{
	const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN];
	assert_int_equal(s->sin6_family, AF_INET6);
	inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof(buf));
	assert_string_equal(buf, ip);
	assert_int_equal(ntohs(s->sin6_port), port);
}

/* Every strict prefix of a valid header needs more. */
static void check_prefixes(const uint8_t *buf, size_t n)
{
	proxy_proto_result r;
	for (size_t k = 0; k < n; k++)
		if (proxy_proto_parse(buf, k, &r) != 0)
			fail_msg(
			    "prefix of %zu bytes (of %zu) did not need more", k,
			    n);
}

/* ---- v1 ---------------------------------------------------------------- */

static void test_v1_tcp4(void **state)
{
	proxy_proto_result r;
	const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
	const char *withdata = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
			       "GET / HTTP/1.1\r\n\r\n";
	assert_int_equal(parse_str(h, &r), (int)strlen(h));
	assert_int_equal(r.version, 1);
	assert_false(r.local);
	check_v4(&r.src, "192.0.2.1", 56324);
	check_v4(&r.dst, "198.51.100.2", 443);
	assert_int_equal(r.srclen, sizeof(struct sockaddr_in));
	/* the request after the header is not consumed */
	assert_int_equal(parse_str(withdata, &r), (int)strlen(h));
	check_prefixes((const uint8_t *)h, strlen(h));
	/* ports at the edges */
	assert_true(parse_str("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
			      &r) > 0);
	check_v4(&r.dst, "255.255.255.255", 65535);
}

static void test_v1_tcp6(void **state)
{
	proxy_proto_result r;
	const char *h = "PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n";
	assert_int_equal(parse_str(h, &r), (int)strlen(h));
	check_v6(&r.src, "2001:db8::1", 1234);
	check_v6(&r.dst, "2001:db8::2", 80);
	assert_int_equal(r.srclen, sizeof(struct sockaddr_in6));
	check_prefixes((const uint8_t *)h, strlen(h));
	/* the longest header: 107 bytes exactly */
	const char *tcp6 = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 "
			   "65535\r\n";
	assert_int_equal(parse_str(tcp6, &r), (int)strlen(tcp6));
	check_v6(&r.src, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	/* the worst case of the spec: 107 bytes exactly */
	const char *max =
	    "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 "
	    "65535\r\n";
	assert_int_equal(strlen(max), PROXY_PROTO_V1_MAX);
	assert_int_equal(parse_str(max, &r), PROXY_PROTO_V1_MAX);
}

static void test_v1_unknown(void **state)
{
	proxy_proto_result r;
	assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &r), 15);
	assert_true(r.local);
	assert_int_equal(r.srclen, 0);
	const char *h = "PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n";
	assert_int_equal(parse_str(h, &r), (int)strlen(h));
	assert_true(r.local);
}

static void test_v1_invalid(void **state)
{
	static const char *const bad[] = {
	    "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n", /* bare LF */
	    "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\rX",
	    "PROXY  TCP4 192.0.2.1 198.51.100.2 1 2\r\n", /* 2 spaces */
	    "PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n",
	    "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",    /* trailing */
	    "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",	     /* 4 fields */
	    "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",   /* 6 */
	    "PROXY TCP4 192.0.2.1 198.51.100.2 1 65536\r\n", /* port */
	    "PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",    /* zeros */
	    "PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n",
	    "PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n",
	    "PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n", /* octal-ish */
	    "PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n",
	    "PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n",
	    "PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n", /* family */
	    "PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n",
	    "PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
	    "PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
	    "PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n",
	    "PROXY UNKNOWNX\r\n",
	    "PROXY \r\n",
	    "PROXY\r\n",
	    "proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
	    "GET / HTTP/1.1\r\n",
	    "PROXY TCP4 192.0.2.1\t198.51.100.2 1 2\r\n",  /* control */
	    "PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n", /* zone */
	};
	proxy_proto_result r;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		int rc = parse_str(bad[i], &r);
		if (rc >= 0)
			fail_msg("accepted (%d): %s", rc, bad[i]);
		assert_int_equal(rc, -EINVAL);
		assert_int_equal(r.version, 0); /* nothing half-filled */
	}
	/* NUL inside */
	static const uint8_t nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
	assert_int_equal(proxy_proto_parse(nul, sizeof(nul) - 1, &r), -EINVAL);
	/* 107 bytes without CRLF: too long */
	char big[200];
	memset(big, '1', sizeof(big));
	memcpy(big, "PROXY UNKNOWN ", 14);
	assert_int_equal(proxy_proto_parse((uint8_t *)big, 106, &r), 0);
	assert_int_equal(proxy_proto_parse((uint8_t *)big, 107, &r), -EINVAL);
	/* CR as the 107th byte: the LF would be the 108th */
	big[106] = '\r';
	big[107] = '\n';
	assert_int_equal(proxy_proto_parse((uint8_t *)big, 108, &r), -EINVAL);
	big[105] = '\r';
	big[106] = '\n';
	assert_int_equal(proxy_proto_parse((uint8_t *)big, 108, &r), 107);
}

/* ---- v2 ---------------------------------------------------------------- */

static size_t v2(uint8_t *b, uint8_t vc, uint8_t fam, const uint8_t *payload,
		 uint16_t plen)
{
	memcpy(b, sig, 12);
	b[12] = vc;
	b[13] = fam;
	b[14] = (uint8_t)(plen >> 8);
	b[15] = (uint8_t)plen;
	if (plen)
		memcpy(b + 16, payload, plen);
	return 16u + plen;
}

static void test_v2_inet(void **state)
{
	uint8_t b[256], p[32];
	proxy_proto_result r;
	/* 192.0.2.1:56324 -> 198.51.100.2:443, then a NOOP TLV and an
	 * AUTHORITY TLV */
	const uint8_t a[12] = {192, 0, 2,    1,	   198,	 51,
			       100, 2, 0xdc, 0x04, 0x01, 0xbb};
	memcpy(p, a, 12);
	const uint8_t tlv[] = {0x04, 0x00, 0x01, 0x00, 0x02,
			       0x00, 0x03, 'a',	 'b',  'c'};
	memcpy(p + 12, tlv, sizeof(tlv));
	size_t n = v2(b, 0x21, 0x11, p, 12 + sizeof(tlv));
	memcpy(b + n, "GET /", 5);
	assert_int_equal(proxy_proto_parse(b, n + 5, &r), (int)n);
	assert_int_equal(r.version, 2);
	assert_false(r.local);
	check_v4(&r.src, "192.0.2.1", 56324);
	check_v4(&r.dst, "198.51.100.2", 443);
	check_prefixes(b, n);
	/* without TLVs */
	n = v2(b, 0x21, 0x11, a, 12);
	assert_int_equal(proxy_proto_parse(b, n, &r), 28);
}

static void test_v2_inet6(void **state)
{
	uint8_t b[256], p[36];
	proxy_proto_result r;
	inet_pton(AF_INET6, "2001:db8::1", p);
	inet_pton(AF_INET6, "2001:db8::2", p + 16);
	p[32] = 0x30;
	p[33] = 0x39; /* 12345 */
	p[34] = 0x00;
	p[35] = 0x50; /* 80 */
	size_t n = v2(b, 0x21, 0x21, p, 36);
	assert_int_equal(proxy_proto_parse(b, n, &r), 52);
	check_v6(&r.src, "2001:db8::1", 12345);
	check_v6(&r.dst, "2001:db8::2", 80);
	check_prefixes(b, n);
}

static void test_v2_local_and_unspec(void **state)
{
	uint8_t b[64], junk[5] = {1, 2, 3, 4, 5};
	proxy_proto_result r;
	/* LOCAL: addresses ignored whatever the family says */
	size_t n = v2(b, 0x20, 0x00, NULL, 0);
	assert_int_equal(proxy_proto_parse(b, n, &r), 16);
	assert_true(r.local);
	assert_int_equal(r.version, 2);
	n = v2(b, 0x20, 0x31, junk, 5);
	assert_int_equal(proxy_proto_parse(b, n, &r), 21);
	assert_true(r.local);
	/* PROXY with AF_UNSPEC: no addresses */
	n = v2(b, 0x21, 0x00, junk, 5);
	assert_int_equal(proxy_proto_parse(b, n, &r), 21);
	assert_true(r.local);
	assert_int_equal(r.srclen, 0);
}

static void test_v2_invalid(void **state)
{
	uint8_t b[PROXY_PROTO_MAX_HEADER + 32], p[64] = {0};
	proxy_proto_result r;
	size_t n;

	n = v2(b, 0x11, 0x11, p, 12); /* version 1 in a v2 header */
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	assert_int_equal(proxy_proto_parse(b, 13, &r), -EINVAL); /* early */
	n = v2(b, 0x22, 0x11, p, 12);				 /* command 2 */
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	n = v2(b, 0x21, 0x41, p, 12); /* family 4 */
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	n = v2(b, 0x21, 0x13, p, 12); /* protocol 3 */
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	n = v2(b, 0x21, 0x10, p, 12); /* INET over UNSPEC protocol */
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	n = v2(b, 0x21, 0x12, p, 12); /* DGRAM */
	assert_int_equal(proxy_proto_parse(b, n, &r), -EPROTONOSUPPORT);
	n = v2(b, 0x21, 0x31, p, 64); /* UNIX */
	assert_int_equal(proxy_proto_parse(b, n, &r), -EPROTONOSUPPORT);
	n = v2(b, 0x21, 0x11, p, 11); /* too short for INET */
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	assert_int_equal(r.version, 0); /* nothing half-filled */
	n = v2(b, 0x21, 0x11, p, 0);	/* found by fuzzing */
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	assert_int_equal(r.version, 0);
	n = v2(b, 0x21, 0x21, p, 35); /* too short for INET6 */
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	/* a TLV running past the end, or a truncated TLV header */
	p[12] = 0x04;
	p[13] = 0x00;
	p[14] = 0x05;
	n = v2(b, 0x21, 0x11, p, 12 + 3 + 4);
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	assert_int_equal(r.version, 0);
	n = v2(b, 0x21, 0x11, p, 12 + 2);
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	/* length over the limit, known from the 16 fixed bytes */
	memset(b + 16, 0, PROXY_PROTO_V2_MAX_LEN + 1);
	n = v2(b, 0x21, 0x11, b + 16, PROXY_PROTO_V2_MAX_LEN + 1);
	assert_int_equal(proxy_proto_parse(b, 16, &r), -EMSGSIZE);
	/* at the limit: fine once all there */
	n = v2(b, 0x21, 0x11, b + 16, PROXY_PROTO_V2_MAX_LEN);
	b[16 + 12] = 0x04; /* one NOOP TLV fills the rest */
	b[16 + 13] = (uint8_t)((PROXY_PROTO_V2_MAX_LEN - 15) >> 8);
	b[16 + 14] = (uint8_t)(PROXY_PROTO_V2_MAX_LEN - 15);
	assert_int_equal(proxy_proto_parse(b, n - 1, &r), 0);
	assert_int_equal(proxy_proto_parse(b, n, &r), PROXY_PROTO_MAX_HEADER);
	/* a broken signature */
	n = v2(b, 0x21, 0x11, p, 12);
	b[11] = 0x0B;
	assert_int_equal(proxy_proto_parse(b, n, &r), -EINVAL);
	b[0] = 0x0D;
	b[1] = 0x0B;
	assert_int_equal(proxy_proto_parse(b, 2, &r), -EINVAL);
	/* the HTTP/1 request line that starts with CR LF is not v2 */
	assert_int_equal(parse_str("\r\nGET / HTTP/1.1\r\n", &r), -EINVAL);
}

static void test_empty(void **state)
{
	proxy_proto_result r;
	assert_int_equal(proxy_proto_parse((const uint8_t *)"", 0, &r), 0);
	assert_int_equal(parse_str("P", &r), 0);
	assert_int_equal(parse_str("X", &r), -EINVAL);
	assert_int_equal(proxy_proto_parse(sig, 1, &r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v1_tcp4),
	    cmocka_unit_test(test_v1_tcp6),
	    cmocka_unit_test(test_v1_unknown),
	    cmocka_unit_test(test_v1_invalid),
	    cmocka_unit_test(test_v2_inet),
	    cmocka_unit_test(test_v2_inet6),
	    cmocka_unit_test(test_v2_local_and_unspec),
	    cmocka_unit_test(test_v2_invalid),
	    cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
