/* test_http1_chunked.c - the incremental chunked-body walker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http1_parse.h"

struct result {
	ssize_t rc; /* consumed in total, or the error */
	bool done;
	uint64_t total;
};

/* Feed buf in pieces whose sizes come from cuts[] (0-terminated; the rest
 * in one piece), stopping at done or at an error, like the proxy would. */
static struct result feed_split(const char *buf, size_t len, const size_t *cuts)
{
	http1_chunked c = {0};
	struct result r = {0, false, 0};
	size_t off = 0;

	for (size_t i = 0; off < len || i == 0; i++) {
		size_t n = cuts && cuts[i] ? cuts[i] : len - off;

		if (n > len - off)
			n = len - off;
		bool done = true;
		ssize_t rc = http1_chunked_feed(&c, buf + off, n, &done);

		if (rc < 0) {
			r.rc = rc;
			/* errors are sticky */
			assert_int_equal(http1_chunked_feed(&c, "0", 1, &done),
					 rc);
			return r;
		}
		assert_true((size_t)rc <= n);
		off += (size_t)rc;
		if (done) {
			r.done = true;
			break;
		}
		assert_int_equal((size_t)rc, n);
		if (n == 0 && off == len)
			break;
	}
	r.rc = (ssize_t)off;
	r.total = c.total;
	return r;
}

static struct result feed_all(const char *buf, size_t len)
{
	return feed_split(buf, len, NULL);
}

static struct result feed_bytewise(const char *buf, size_t len)
{
	static size_t ones[70000];

	for (size_t i = 0; i < len && i < 70000; i++)
		ones[i] = 1;
	ones[len < 70000 ? len : 69999] = 0;
	return feed_split(buf, len, ones);
}

/* Same outcome whole, byte by byte and in random splits. */
static struct result check_splits(const char *buf, size_t len)
{
	struct result a = feed_all(buf, len), b = feed_bytewise(buf, len);

	assert_int_equal(a.rc, b.rc);
	assert_int_equal(a.done, b.done);
	assert_int_equal(a.total, b.total);
	unsigned seed = 12345;

	for (int round = 0; round < 200; round++) {
		size_t cuts[64];
		int k = 0;

		for (; k < 63; k++) {
			seed = seed * 1103515245u + 12345u;
			cuts[k] = 1 + (seed >> 16) % (len / 4 + 3);
		}
		cuts[k] = 0;
		struct result c = feed_split(buf, len, cuts);

		assert_int_equal(a.rc, c.rc);
		assert_int_equal(a.done, c.done);
		assert_int_equal(a.total, c.total);
	}
	return a;
}

static void expect_ok(const char *body, const char *next, uint64_t total)
{
	char buf[8192];
	int n = snprintf(buf, sizeof(buf), "%s%s", body, next);

	assert_true(n > 0 && (size_t)n < sizeof(buf));
	struct result r = check_splits(buf, (size_t)n);

	if (!r.done || r.rc != (ssize_t)strlen(body))
		fail_msg("'%s': rc %zd done %d", body, r.rc, r.done);
	assert_int_equal(r.total, total);
}

static void test_valid_bodies(void **state)
{
	(void)state;
	expect_ok("0\r\n\r\n", "", 0);
	expect_ok("5\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
		  "GET / HTTP/1.1\r\n", 11);
	expect_ok("a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", "", 20);
	expect_ok("000005\r\nhello\r\n000\r\n\r\n", "", 5);
	expect_ok("0000000000000005\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", "", 2);
	/* extensions */
	expect_ok("5;a\r\nhello\r\n0;b\r\n\r\n", "", 5);
	expect_ok("5;a=b\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("5;a=b;c;d=e\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("5 ;a\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("5\t; a = b ;\tc\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("5;a=\"\"\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("5;a=\"x \\\"y\\\" ;z=\\\\\"\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("5;a=\"\x80\xff\t\"\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("5;a=\"x\";b\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("5;a=\"x\" ;b\r\nhello\r\n0\r\n\r\n", "", 5);
	expect_ok("5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n", "",
		  5);
	/* trailers */
	expect_ok("0\r\nA: b\r\n\r\n", "", 0);
	expect_ok("0\r\nA: b\r\nC:\r\nD:  \t x y \x80\r\n\r\n", "NEXT", 0);
	expect_ok("3\r\nabc\r\n0\r\nExpires: never\r\n\r\n", "\r\n", 3);
}

static void test_next_message_not_consumed(void **state)
{
	(void)state;
	const char *s = "3\r\nabc\r\n0\r\n\r\nPOST / HTTP/1.1\r\n";
	http1_chunked c = {0};
	bool done = false;

	assert_int_equal(http1_chunked_feed(&c, s, strlen(s), &done), 13);
	assert_true(done);
	assert_int_equal(c.total, 3);
	/* once done, nothing more is consumed */
	assert_int_equal(http1_chunked_feed(&c, s + 13, 5, &done), 0);
	assert_true(done);
	assert_int_equal(http1_chunked_feed(&c, s, 0, &done), 0);
	assert_true(done);

	/* empty feeds are harmless mid-body */
	http1_chunked d = {0};

	assert_int_equal(http1_chunked_feed(&d, s, 0, &done), 0);
	assert_false(done);
	assert_int_equal(http1_chunked_feed(&d, s, 4, &done), 4);
	assert_false(done);
	assert_int_equal(d.remaining, 2);
}

static void test_errors(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int err;
	} t[] = {
	    {"", 0},
	    {"x\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {" 5\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"5 \r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"5\t\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"0x5\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"-5\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"+5\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"5g\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"5 x\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"00000000000000005\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"10000000000000000\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"ffffffffffffffff\r\n", HTTP1_E_CHUNK_TOO_LARGE},
	    {"4000000000000001\r\n", HTTP1_E_CHUNK_TOO_LARGE},
	    {"5\n", HTTP1_E_BARE_LF},
	    {"\n", HTTP1_E_BARE_LF},
	    {"5\rx", HTTP1_E_BARE_CR},
	    {"5\r\r\n", HTTP1_E_BARE_CR},
	    {"5;\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;;a\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a=\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;=b\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a b\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a \r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a=b \r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a=b c\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a=b=c\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a@\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a=@\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a=\"x\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a=\"x\"y\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a=\"\x01\"\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a=\"\\\x01\"\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a=\"x\" \r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a\x7f\r\n", HTTP1_E_BAD_CHUNK_EXT},
	    {"5;a\n", HTTP1_E_BARE_LF},
	    {"5;a=b\n", HTTP1_E_BARE_LF},
	    {"5;a=\"b\"\n", HTTP1_E_BARE_LF},
	    {"5;a=\"b\n\"\r\n", HTTP1_E_BARE_LF},
	    {"5;a\rb", HTTP1_E_BARE_CR},
	    {"5\r\nhelloX", HTTP1_E_BAD_CHUNK_CRLF},
	    {"5\r\nhello\n", HTTP1_E_BAD_CHUNK_CRLF},
	    {"5\r\nhello\rX", HTTP1_E_BAD_CHUNK_CRLF},
	    {"5\r\nhello\r\n\r\n", HTTP1_E_BAD_CHUNK_SIZE},
	    {"0\r\n\n", HTTP1_E_BARE_LF},
	    {"0\r\n\rX", HTTP1_E_BARE_CR},
	    {"0\r\nA: b\n\r\n", HTTP1_E_BARE_LF},
	    {"0\r\nA: b\rX", HTTP1_E_BARE_CR},
	    {"0\r\nA b: c\r\n\r\n", HTTP1_E_BAD_TRAILER},
	    {"0\r\nA : c\r\n\r\n", HTTP1_E_BAD_TRAILER},
	    {"0\r\n: c\r\n\r\n", HTTP1_E_BAD_TRAILER},
	    {"0\r\nA\r\n\r\n", HTTP1_E_BAD_TRAILER},
	    {"0\r\nA: b\r\n c\r\n\r\n", HTTP1_E_BAD_TRAILER},
	    {"0\r\n c\r\n\r\n", HTTP1_E_BAD_TRAILER},
	    {"0\r\nA: \x01\r\n\r\n", HTTP1_E_BAD_TRAILER},
	    {"0\r\nA: \x00", 0},
	    {"0\r\nA(: b\r\n\r\n", HTTP1_E_BAD_TRAILER},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].in);
		struct result r = check_splits(t[i].in, n);

		if (t[i].err == 0) {
			/* incomplete: everything consumed, not done */
			assert_int_equal(r.rc, (ssize_t)n);
			assert_false(r.done);
		} else if (r.rc != t[i].err) {
			fail_msg("case %zu '%s': %zd, want %d", i, t[i].in,
				 r.rc, t[i].err);
		}
	}
	/* NUL in a trailer value (strlen above stops at it) */
	struct result r = check_splits("0\r\nA: \x00\r\n\r\n", 11);

	assert_int_equal(r.rc, HTTP1_E_BAD_TRAILER);
}

static void test_size_limits(void **state)
{
	(void)state;
	http1_chunked c = {0};
	bool done;
	const char *s = "4000000000000000\r\n";

	/* 2^62 is the largest chunk */
	assert_int_equal(http1_chunked_feed(&c, s, strlen(s), &done),
			 (ssize_t)strlen(s));
	assert_false(done);
	assert_int_equal(c.remaining, 1ULL << 62);
	assert_int_equal(c.total, 1ULL << 62);
	char data[1000];

	memset(data, 'x', sizeof(data));
	assert_int_equal(http1_chunked_feed(&c, data, sizeof(data), &done),
			 1000);
	assert_int_equal(c.remaining, (1ULL << 62) - 1000);

	/* several maximal chunks do not wrap the total */
	http1_chunked d = {0};

	d.total = UINT64_MAX - 5;
	assert_int_equal(http1_chunked_feed(&d, s, strlen(s), &done),
			 (ssize_t)strlen(s));
	assert_int_equal(d.total, UINT64_MAX);
}

static void test_ext_limit(void **state)
{
	(void)state;
	static char buf[10000];
	size_t n;

	/* 4096 bytes of extension (after the digits, up to CR) pass */
	n = 0;
	buf[n++] = '5';
	buf[n++] = ';';
	memset(buf + n, 'a', 4095);
	n += 4095;
	memcpy(buf + n, "\r\nhello\r\n0\r\n\r\n", 14);
	n += 14;
	struct result r = check_splits(buf, n);

	assert_true(r.done);
	assert_int_equal(r.rc, (ssize_t)n);
	/* one more fails */
	n = 0;
	buf[n++] = '5';
	buf[n++] = ';';
	memset(buf + n, 'a', 4096);
	n += 4096;
	memcpy(buf + n, "\r\nhello\r\n0\r\n\r\n", 14);
	n += 14;
	r = check_splits(buf, n);
	assert_int_equal(r.rc, HTTP1_E_BAD_CHUNK_EXT);
	/* the limit is per size line */
	n = 0;
	for (int i = 0; i < 3; i++) {
		buf[n++] = '1';
		buf[n++] = ';';
		memset(buf + n, 'a', 3000);
		n += 3000;
		memcpy(buf + n, "\r\nx\r\n", 5);
		n += 5;
	}
	memcpy(buf + n, "0\r\n\r\n", 5);
	n += 5;
	r = check_splits(buf, n);
	assert_true(r.done);
	assert_int_equal(r.total, 3);
	/* whitespace counts too: BWS cannot be used to stall */
	n = 0;
	buf[n++] = '5';
	memset(buf + n, ' ', 5000);
	n += 5000;
	r = check_splits(buf, n);
	assert_int_equal(r.rc, HTTP1_E_BAD_CHUNK_EXT);
}

static void test_trailer_limit(void **state)
{
	(void)state;
	static char buf[40000];
	size_t n = 0;

	memcpy(buf, "0\r\n", 3);
	n = 3;
	for (int i = 0; i < 15; i++) { /* 15 * 1000 bytes */
		memcpy(buf + n, "X: ", 3);
		memset(buf + n + 3, 'v', 995);
		memcpy(buf + n + 998, "\r\n", 2);
		n += 1000;
	}
	memcpy(buf + n, "\r\n", 2);
	n += 2;
	struct result r = check_splits(buf, n);

	assert_true(r.done);
	assert_int_equal(r.rc, (ssize_t)n);
	n -= 2;
	for (int i = 0; i < 2; i++) { /* 17 KB */
		memcpy(buf + n, "X: ", 3);
		memset(buf + n + 3, 'v', 995);
		memcpy(buf + n + 998, "\r\n", 2);
		n += 1000;
	}
	memcpy(buf + n, "\r\n", 2);
	n += 2;
	r = check_splits(buf, n);
	assert_int_equal(r.rc, HTTP1_E_BAD_TRAILER);
}

static void test_large_chunk_streaming(void **state)
{
	(void)state;
	/* a 1 MB chunk fed in 4 KB pieces: data is skipped in bulk */
	static char buf[(1 << 20) + 64];
	size_t n = (size_t)snprintf(buf, 64, "100000\r\n");

	memset(buf + n, 'd', 1 << 20);
	n += 1 << 20;
	memcpy(buf + n, "\r\n0\r\n\r\n", 7);
	n += 7;
	http1_chunked c = {0};
	bool done = false;
	size_t off = 0;

	while (off < n && !done) {
		size_t k = n - off < 4096 ? n - off : 4096;
		ssize_t rc = http1_chunked_feed(&c, buf + off, k, &done);

		assert_true(rc >= 0);
		off += (size_t)rc;
	}
	assert_true(done);
	assert_int_equal(off, n);
	assert_int_equal(c.total, 1 << 20);
}

/* http1_body_peek: a held body, read without consuming. */
struct peeked {
	char buf[256];
	size_t len;
};

static void collect(void *arg, const char *p, size_t n)
{
	struct peeked *o = arg;
	assert_true(o->len + n <= sizeof(o->buf));
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void test_body_peek(void **state)
{
	(void)state;
	static const char ch[] = "5;x=1\r\nhello\r\n6\r\n world\r\n0\r\n"
				 "T: v\r\n\r\nGET /next";
	size_t body_len = sizeof(ch) - 1 - strlen("GET /next");
	struct peeked o = {0};
	bool complete;
	uint64_t data;
	/* Whole: complete, 11 payload bytes, the limit cuts what is seen. */
	assert_int_equal(http1_body_peek(HTTP1_BODY_CHUNKED, 0, ch,
					 sizeof(ch) - 1, 8, collect, &o,
					 &complete, &data),
			 0);
	assert_true(complete);
	assert_int_equal(data, 11);
	assert_int_equal(o.len, 8);
	assert_memory_equal(o.buf, "hello wo", 8);
	/* Every prefix: complete only with the last byte of the body, and
	 * the payload seen so far. */
	for (size_t n = 0; n <= body_len; n++) {
		o.len = 0;
		assert_int_equal(http1_body_peek(HTTP1_BODY_CHUNKED, 0, ch, n,
						 100, collect, &o, &complete,
						 &data),
				 0);
		assert_int_equal(complete, n == body_len);
		assert_int_equal(o.len, data);
		assert_true(data <= 11);
	}
	/* Malformed: the walker's error. */
	assert_true(http1_body_peek(HTTP1_BODY_CHUNKED, 0, "zz\r\n", 4, 10,
				    NULL, NULL, &complete, &data) < 0);
	/* Content-Length: what is in, up to the length. */
	o.len = 0;
	assert_int_equal(http1_body_peek(HTTP1_BODY_LENGTH, 5, "abcdefg", 7, 3,
					 collect, &o, &complete, &data),
			 0);
	assert_true(complete);
	assert_int_equal(data, 5);
	assert_int_equal(o.len, 3);
	o.len = 0;
	assert_int_equal(http1_body_peek(HTTP1_BODY_LENGTH, 50, "abcd", 4, 10,
					 collect, &o, &complete, &data),
			 0);
	assert_false(complete);
	assert_int_equal(data, 4);
	assert_int_equal(o.len, 4);
}

static bool keep_not_x(const char *name, size_t len)
{
	return !(len && (name[0] == 'x' || name[0] == 'X'));
}

/* The trailer section: counted as it is fed, then filtered in place. */
static void test_trailers_filter(void **state)
{
	(void)state;
	static const char msg[] = "3\r\nabc\r\n0\r\nX-A: 1\r\nok: 2\r\n"
				  "x-b:3\r\nlast: 4\r\n\r\nNEXT";
	size_t body = sizeof("3\r\nabc\r\n0\r\n") - 1;
	size_t end = sizeof(msg) - 1 - 4;
	http1_chunked c = {0};
	bool done;

	/* One byte at a time: the count grows by one per trailer byte. */
	for (size_t i = 0; i < end; i++) {
		assert_int_equal(http1_chunked_trailer_bytes(&c),
				 i < body ? 0 : i - body);
		assert_int_equal(http1_chunked_feed(&c, msg + i, 1, &done), 1);
		assert_int_equal(done, i == end - 1);
	}
	assert_int_equal(http1_chunked_trailer_bytes(&c), end - body);

	char sec[64];
	size_t t = end - body;
	memcpy(sec, msg + body, t);
	size_t kept = http1_trailers_filter(sec, t, keep_not_x);
	assert_int_equal(kept, sizeof("ok: 2\r\nlast: 4\r\n\r\n") - 1);
	assert_memory_equal(sec, "ok: 2\r\nlast: 4\r\n\r\n", kept);
	/* Again: nothing more goes. */
	assert_int_equal(http1_trailers_filter(sec, kept, keep_not_x), kept);

	/* No trailers: the empty line alone, kept. */
	http1_chunked z = {0};
	assert_int_equal(http1_chunked_feed(&z, "0\r\n\r\n", 5, &done), 5);
	assert_true(done);
	assert_int_equal(http1_chunked_trailer_bytes(&z), 2);
	memcpy(sec, "\r\n", 2);
	assert_int_equal(http1_trailers_filter(sec, 2, keep_not_x), 2);

	/* All dropped. */
	memcpy(sec, "x: 1\r\nX-y: 2\r\n\r\n", 16);
	assert_int_equal(http1_trailers_filter(sec, 16, keep_not_x), 2);
	assert_memory_equal(sec, "\r\n", 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_bodies),
	    cmocka_unit_test(test_next_message_not_consumed),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_size_limits),
	    cmocka_unit_test(test_ext_limit),
	    cmocka_unit_test(test_trailer_limit),
	    cmocka_unit_test(test_large_chunk_streaming),
	    cmocka_unit_test(test_body_peek),
	    cmocka_unit_test(test_trailers_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
