/* test_http1_parse.c - request and response head parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http1_parse.h"

static http1_request req;
static http1_response resp;

#define HOST "Host: a.example\r\n"

static int preq(const char *s)
{
	return http1_parse_request(s, strlen(s), NULL, &req);
}

static int preq_lim(const char *s, uint32_t head, uint32_t nh, uint32_t tgt)
{
	http1_limits l = {head, nh, tgt};

	return http1_parse_request(s, strlen(s), &l, &req);
}

static int presp(const char *s, http1_method m)
{
	return http1_parse_response(s, strlen(s), NULL, m, &resp);
}

static bool str_is(http_str s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

#define assert_str(s, want)                                                    \
	do {                                                                   \
		if (!str_is((s), (want)))                                      \
			fail_msg("got '%.*s', want '%s'", (int)(s).len,        \
				 (s).p ? (s).p : "", (want));                  \
	} while (0)

/* ---- requests: valid ---- */

static void test_simple_get(void **state)
{
	(void)state;
	const char *s =
	    "GET /index.html?q=1 HTTP/1.1\r\n" HOST "Accept: */*\r\n\r\n";

	assert_int_equal(preq(s), (int)strlen(s));
	assert_str(req.method, "GET");
	assert_int_equal(req.method_id, HTTP_M_GET);
	assert_str(req.target, "/index.html?q=1");
	assert_int_equal(req.version_minor, 1);
	assert_str(req.host, "a.example");
	assert_int_equal(req.nheaders, 2);
	assert_str(req.headers[0].name, "Host");
	assert_str(req.headers[0].value, "a.example");
	assert_str(req.headers[1].name, "Accept");
	assert_str(req.headers[1].value, "*/*");
	assert_int_equal(req.head_len, strlen(s));
	assert_int_equal(req.line_len,
			 strlen("GET /index.html?q=1 HTTP/1.1\r\n"));
	assert_int_equal(req.body, HTTP1_BODY_NONE);
	assert_int_equal(req.content_length, 0);
	assert_true(req.conn.keep_alive);
	assert_false(req.conn.upgrade);
	assert_false(req.conn.expect_continue);
	assert_false(req.conn.te_trailers);
}

static void test_methods(void **state)
{
	(void)state;
	static const struct {
		const char *m;
		http1_method id;
	} t[] = {
	    {"GET", HTTP_M_GET},
	    {"HEAD", HTTP_M_HEAD},
	    {"POST", HTTP_M_POST},
	    {"PUT", HTTP_M_PUT},
	    {"DELETE", HTTP_M_DELETE},
	    {"OPTIONS", HTTP_M_OPTIONS},
	    {"TRACE", HTTP_M_TRACE},
	    {"PATCH", HTTP_M_PATCH},
	    {"PROPFIND", HTTP_M_OTHER},
	    {"get", HTTP_M_OTHER},
	    {"GETS", HTTP_M_OTHER},
	    {"M-SEARCH", HTTP_M_OTHER},
	    {"!#$%&'*+-.^_`|~", HTTP_M_OTHER},
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\n" HOST "\r\n",
			 t[i].m);
		assert_true(preq(buf) > 0);
		assert_int_equal(req.method_id, t[i].id);
		assert_str(req.method, t[i].m);
	}
	assert_true(preq("CONNECT a.example:443 HTTP/1.1\r\n" HOST "\r\n") > 0);
	assert_int_equal(req.method_id, HTTP_M_CONNECT);
}

static void test_values_trimmed(void **state)
{
	(void)state;
	assert_true(preq("GET / HTTP/1.1\r\n" HOST "X-A:   a \t b \t \r\n"
			 "X-B:\r\nX-C: \t \r\nX-D:v\r\n"
			 "X-E: caf\xc3\xa9 \x80\xff\r\n\r\n") > 0);
	assert_int_equal(req.nheaders, 6);
	assert_str(req.headers[1].value, "a \t b");
	assert_str(req.headers[2].value, "");
	assert_str(req.headers[3].value, "");
	assert_str(req.headers[4].value, "v");
	assert_str(req.headers[5].value, "caf\xc3\xa9 \x80\xff");
}

/* Append n bytes to buf at *len. */
static void put(char *buf, size_t *len, const void *p, size_t n)
{
	memcpy(buf + *len, p, n);
	*len += n;
}

static void test_long_values(void **state)
{
	(void)state;
	/* exercise the word-at-a-time scanners at every length, with an
	 * invalid byte at every position */
	static const char bad[] = {'\x00', '\x01', '\x1f', '\x7f'};
	static const char tail[] = " HTTP/1.1\r\n" HOST "\r\n";
	static const char head[] = "GET / HTTP/1.1\r\n" HOST "X: ";
	char buf[512], v[80];
	size_t len;

	for (size_t n = 0; n < 40; n++) {
		memset(v, 'a', n);
		len = 0;
		put(buf, &len, "GET /", 5);
		put(buf, &len, v, n);
		put(buf, &len, tail, sizeof(tail) - 1);
		assert_int_equal(http1_parse_request(buf, len, NULL, &req),
				 (int)len);
		assert_int_equal(req.target.len, n + 1);
		len = 0;
		put(buf, &len, head, sizeof(head) - 1);
		put(buf, &len, v, n);
		put(buf, &len, "\r\n\r\n", 4);
		assert_int_equal(http1_parse_request(buf, len, NULL, &req),
				 (int)len);
		assert_int_equal(req.headers[1].value.len, n);

		for (size_t k = 0; k < n; k++) {
			for (size_t b = 0; b < sizeof(bad); b++) {
				char w[80];

				memcpy(w, v, n);
				w[k] = bad[b];
				len = 0;
				put(buf, &len, "GET /", 5);
				put(buf, &len, w, n);
				put(buf, &len, tail, sizeof(tail) - 1);
				assert_int_equal(
				    http1_parse_request(buf, len, NULL, &req),
				    HTTP1_E_BAD_TARGET);
				len = 0;
				put(buf, &len, head, sizeof(head) - 1);
				put(buf, &len, w, n);
				put(buf, &len, "\r\n\r\n", 4);
				assert_int_equal(
				    http1_parse_request(buf, len, NULL, &req),
				    HTTP1_E_BAD_HEADER_VALUE);
			}
		}
	}
}

/* Random values and targets from the bytes around every class edge, judged
 * against a byte-at-a-time reference: the word-at-a-time scanners must
 * agree with it on acceptance and on the value's extent. */
static void test_random_values(void **state)
{
	(void)state;
	static const unsigned char pool[] = {
	    0x00, 0x01, 0x08, 0x09, 0x0b, 0x1f, 0x20, 0x21, 0x22, 0x30,
	    0x3a, 0x41, 0x5c, 0x61, 0x7e, 0x7f, 0x80, 0x81, 0xc3, 0xfe,
	    0xff, 'a',	'a',  'a',  'a',  'a',	'a',  'a',  'a',  'a',
	};
	static const char vhead[] = "GET / HTTP/1.1\r\n" HOST "X:";
	static const char ttail[] = " HTTP/1.1\r\n" HOST "\r\n";
	unsigned seed = 42;
	char buf[256];

	for (int round = 0; round < 20000; round++) {
		unsigned char v[64];
		size_t n, len = 0;

		seed = seed * 1103515245u + 12345u;
		n = (seed >> 16) % sizeof(v);
		bool bad_value = false, bad_target = false;

		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			v[i] = pool[(seed >> 16) % sizeof(pool)];
			if ((v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
				bad_value = true;
			if (v[i] < 0x21 || v[i] > 0x7e)
				bad_target = true;
		}
		/* as a field value */
		put(buf, &len, vhead, sizeof(vhead) - 1);
		put(buf, &len, v, n);
		put(buf, &len, "\r\n\r\n", 4);
		int rc = http1_parse_request(buf, len, NULL, &req);

		if (bad_value) {
			assert_int_equal(rc, HTTP1_E_BAD_HEADER_VALUE);
		} else {
			size_t a = 0, b = n;

			while (a < b && (v[a] == ' ' || v[a] == '\t'))
				a++;
			while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
				b--;
			assert_int_equal(rc, (int)len);
			assert_int_equal(req.headers[1].value.len, b - a);
			assert_memory_equal(req.headers[1].value.p, v + a,
					    b - a);
		}
		/* as a request-target after "/" (SP ends it early) */
		len = 0;
		put(buf, &len, "GET /", 5);
		put(buf, &len, v, n);
		put(buf, &len, ttail, sizeof(ttail) - 1);
		rc = http1_parse_request(buf, len, NULL, &req);
		if (!bad_target) {
			assert_int_equal(rc, (int)len);
			assert_int_equal(req.target.len, n + 1);
		} else {
			assert_true(rc < 0);
		}
	}
}

static void test_leading_empty_lines(void **state)
{
	(void)state;
	const char *line = "GET / HTTP/1.1\r\n";
	char buf[256];

	for (int n = 0; n <= 9; n++) {
		buf[0] = '\0';
		for (int i = 0; i < n; i++)
			strcat(buf, "\r\n");
		strcat(buf, line);
		strcat(buf, HOST "\r\n");
		int rc = preq(buf);

		if (n <= 8) {
			assert_int_equal(rc, (int)strlen(buf));
			assert_int_equal(req.line_len, strlen(line));
			assert_int_equal(req.head_len, strlen(buf));
		} else {
			assert_int_equal(rc, HTTP1_E_BAD_REQUEST_LINE);
		}
	}
	assert_int_equal(preq("\n"), HTTP1_E_BARE_LF);
	assert_int_equal(preq("\r\n\n"), HTTP1_E_BARE_LF);
	assert_int_equal(preq("\rX"), HTTP1_E_BARE_CR);
	assert_int_equal(preq("\r"), 0);
	assert_int_equal(preq("\r\n"), 0);
}

static void test_http10(void **state)
{
	(void)state;
	assert_true(preq("GET / HTTP/1.0\r\n\r\n") > 0);
	assert_int_equal(req.version_minor, 0);
	assert_int_equal(req.host.len, 0);
	assert_non_null(req.host.p); /* safe for memchr and friends */
	assert_false(req.conn.keep_alive);
	assert_true(preq("GET / HTTP/1.0\r\nConnection: keep-alive\r\n"
			 "Host: b.example:81\r\n\r\n") > 0);
	assert_true(req.conn.keep_alive);
	assert_str(req.host, "b.example:81");
	/* Host is still validated */
	assert_int_equal(preq("GET / HTTP/1.0\r\nHost: a b\r\n\r\n"),
			 HTTP1_E_BAD_HOST);
	assert_int_equal(preq("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"),
			 HTTP1_E_DUPLICATE_HOST);
}

static void test_incomplete_prefixes(void **state)
{
	(void)state;
	const char *s = "\r\nPOST http://a.example/x HTTP/1.1\r\n" HOST
			"Content-Length: 3\r\nX-Y: z\r\n\r\n";
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		assert_int_equal(http1_parse_request(s, i, NULL, &req), 0);
	assert_int_equal(http1_parse_request(s, n, NULL, &req), (int)n);
	/* bytes after the head are not part of it */
	char buf[256];

	snprintf(buf, sizeof(buf), "%sabcGET / HTTP/1.1\r\n", s);
	assert_int_equal(preq(buf), (int)n);
	assert_int_equal(req.body, HTTP1_BODY_LENGTH);
	assert_int_equal(req.content_length, 3);

	const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

	for (size_t i = 0; i < strlen(r); i++)
		assert_int_equal(
		    http1_parse_response(r, i, NULL, HTTP_M_GET, &resp), 0);
}

static void test_early_errors(void **state)
{
	(void)state;
	/* incomplete heads whose bytes are already invalid */
	assert_int_equal(preq("G@"), HTTP1_E_BAD_METHOD);
	assert_int_equal(preq(" "), HTTP1_E_BAD_REQUEST_LINE);
	assert_int_equal(preq("GET /\x01"), HTTP1_E_BAD_TARGET);
	assert_int_equal(preq("GET / H"), 0);
	assert_int_equal(preq("GET / h"), HTTP1_E_BAD_VERSION);
	assert_int_equal(preq("GET / HTTP/1"), 0);
	assert_int_equal(preq("GET / HTTP/1,"), HTTP1_E_BAD_VERSION);
	assert_int_equal(preq("GET / HTTP/1.1"), 0);
	assert_int_equal(preq("GET / HTTP/1.1\r"), 0);
	assert_int_equal(preq("GET / HTTP/1.1\n"), HTTP1_E_BARE_LF);
	assert_int_equal(preq("GET / HTTP/1.1 "), HTTP1_E_BAD_VERSION);
	assert_int_equal(preq("GET / HTTP/1.1\rx"), HTTP1_E_BARE_CR);
	assert_int_equal(preq("GET / HTTP/1.1\r\nHo st"),
			 HTTP1_E_SPACE_BEFORE_COLON);
	assert_int_equal(preq("GET / HTTP/1.1\r\nHost: a\x01"),
			 HTTP1_E_BAD_HEADER_VALUE);
	assert_int_equal(preq("GET / HTTP/1.1\r\nHost: a\n"), HTTP1_E_BARE_LF);
	assert_int_equal(preq("GET / HTTP/1.1\r\nContent-Length: x\r\nA"),
			 HTTP1_E_BAD_CONTENT_LENGTH);
	/* a field is judged only once the next line shows no fold */
	assert_int_equal(preq("GET / HTTP/1.1\r\nContent-Length: x\r\n"), 0);
}

/* ---- requests: every error code ---- */

static void test_request_errors(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int rc;
	} t[] = {
	    {"GET\r\n\r\n", HTTP1_E_BAD_REQUEST_LINE},
	    {"GET /\r\n\r\n", HTTP1_E_BAD_REQUEST_LINE},
	    {"GET  / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_REQUEST_LINE},
	    {" GET / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_REQUEST_LINE},
	    {"GET / HTTP/1.1\r\n" HOST "\r\n", 0},
	    {"G(T / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_METHOD},
	    {"GET\t/ HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_METHOD},
	    {"GÉT / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_METHOD},
	    {"GET a HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"GET /\ta HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"GET /\x7f HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"GET /\xc3\xa9 HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"GET * HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"OPTIONS ** HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"CONNECT / HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"CONNECT a.example HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"CONNECT a.example: HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"GET a.example:80 HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"GET ftp://a.example/ HTTP/1.1\r\n" HOST "\r\n",
	     HTTP1_E_BAD_TARGET},
	    {"GET http:// HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"GET http:///x HTTP/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_TARGET},
	    {"GET http://u@a.example/ HTTP/1.1\r\n" HOST "\r\n",
	     HTTP1_E_BAD_TARGET},
	    {"GET http://a.example:99999/ HTTP/1.1\r\n" HOST "\r\n",
	     HTTP1_E_BAD_TARGET},
	    {"GET / http/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION},
	    {"GET / HTTP/1.10\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION},
	    {"GET / HTTP/01.1\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION},
	    {"GET / HTTP/1\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION},
	    {"GET / HTTP/1.1 \r\n" HOST "\r\n", HTTP1_E_BAD_VERSION},
	    {"GET / HTTP/1.x\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION},
	    {"GET / HTTPS/1.1\r\n" HOST "\r\n", HTTP1_E_BAD_VERSION},
	    {"GET / HTTP/2.0\r\n" HOST "\r\n", HTTP1_E_VERSION_UNSUPPORTED},
	    {"GET / HTTP/3.0\r\n" HOST "\r\n", HTTP1_E_VERSION_UNSUPPORTED},
	    {"GET / HTTP/0.9\r\n" HOST "\r\n", HTTP1_E_VERSION_UNSUPPORTED},
	    {"GET / HTTP/1.2\r\n" HOST "\r\n", HTTP1_E_VERSION_UNSUPPORTED},
	    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HTTP1_E_VERSION_UNSUPPORTED},
	    {"GET / HTTP/1.1\r\n" HOST "Ho(st: a\r\n\r\n",
	     HTTP1_E_BAD_HEADER_NAME},
	    {"GET / HTTP/1.1\r\n" HOST ": a\r\n\r\n", HTTP1_E_BAD_HEADER_NAME},
	    {"GET / HTTP/1.1\r\n" HOST "Foo\r\n\r\n", HTTP1_E_BAD_HEADER_NAME},
	    {"GET / HTTP/1.1\r\n" HOST "X\xc3\xa9: a\r\n\r\n",
	     HTTP1_E_BAD_HEADER_NAME},
	    {"GET / HTTP/1.1\r\n" HOST "X\x01Y: a\r\n\r\n",
	     HTTP1_E_BAD_HEADER_NAME},
	    {"GET / HTTP/1.1\r\n" HOST "X: a\x01\r\n\r\n",
	     HTTP1_E_BAD_HEADER_VALUE},
	    {"GET / HTTP/1.1\r\n" HOST "X: \x0b"
	     "a\r\n\r\n",
	     HTTP1_E_BAD_HEADER_VALUE},
	    {"GET / HTTP/1.1\r\n" HOST "X: a\x7f\r\n\r\n",
	     HTTP1_E_BAD_HEADER_VALUE},
	    {"GET / HTTP/1.1\r\n" HOST "X: a\r\n b\r\n\r\n", HTTP1_E_OBS_FOLD},
	    {"GET / HTTP/1.1\r\n" HOST "X: a\r\n\tb\r\n\r\n", HTTP1_E_OBS_FOLD},
	    {"GET / HTTP/1.1\r\n " HOST "\r\n", HTTP1_E_OBS_FOLD},
	    {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", HTTP1_E_SPACE_BEFORE_COLON},
	    {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", HTTP1_E_SPACE_BEFORE_COLON},
	    {"GET / HTTP/1.1\r\n" HOST "X: a\rb\r\n\r\n", HTTP1_E_BARE_CR},
	    {"GET / HTTP/1.1\r\n" HOST "\r\r\n", HTTP1_E_BARE_CR},
	    {"GET / HTTP/1.1\r\r\n" HOST "\r\n", HTTP1_E_BARE_CR},
	    {"GET / HTTP/1.1\n" HOST "\r\n", HTTP1_E_BARE_LF},
	    {"GET / HTTP/1.1\r\nHost: a.example\n\r\n", HTTP1_E_BARE_LF},
	    {"GET / HTTP/1.1\r\n" HOST "\n", HTTP1_E_BARE_LF},
	    {"POST / HTTP/1.1\r\n" HOST "Content-Length: 1 0\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST "Content-Length: -1\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST "Content-Length: +1\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST "Content-Length: 0x1\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST "Content-Length:\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST "Content-Length: 1,\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST "Content-Length: ,1\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST "Content-Length: 1, 2\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Content-Length: 9223372036854775808\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Content-Length: 18446744073709551621\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	     HTTP1_E_CL_AND_TE},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
	     HTTP1_E_CL_AND_TE},
	    {"POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\n\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Transfer-Encoding: chunked, gzip\r\n\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
	     "\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Transfer-Encoding: chunked;a=b\r\n\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	    {"POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked,\r\n\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Transfer-Encoding: gzip;, chunked\r\n\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Transfer-Encoding: gzip;a=\"x, chunked\r\n\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Transfer-Encoding: \"chunked\"\r\n\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Transfer-Encoding: gzip, chunked\r\n\r\n",
	     HTTP1_E_UNSUPPORTED_TRANSFER_CODING},
	    {"POST / HTTP/1.1\r\n" HOST
	     "Transfer-Encoding: x;q=\"a\\\"b\", chunked\r\n\r\n",
	     HTTP1_E_UNSUPPORTED_TRANSFER_CODING},
	    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
	     HTTP1_E_TE_IN_HTTP10},
	    {"GET / HTTP/1.1\r\n\r\n", HTTP1_E_MISSING_HOST},
	    {"GET http://a.example/ HTTP/1.1\r\n\r\n", HTTP1_E_MISSING_HOST},
	    {"GET / HTTP/1.1\r\n" HOST HOST "\r\n", HTTP1_E_DUPLICATE_HOST},
	    {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
	     HTTP1_E_DUPLICATE_HOST},
	    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HTTP1_E_BAD_HOST},
	    {"GET http://b.example/ HTTP/1.1\r\n" HOST "\r\n",
	     HTTP1_E_BAD_HOST},
	    {"GET https://a.example:80/ HTTP/1.1\r\n" HOST "\r\n",
	     HTTP1_E_BAD_HOST},
	    {"GET http://a.example:81/ HTTP/1.1\r\n" HOST "\r\n",
	     HTTP1_E_BAD_HOST},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = preq(t[i].in);

		if (t[i].rc == 0 ? rc <= 0 : rc != t[i].rc)
			fail_msg("case %zu: %s -> %d (%s), want %d", i, t[i].in,
				 rc, http1_err_reason(rc), t[i].rc);
	}
}

static void test_hosts(void **state)
{
	(void)state;
	static const char *ok[] = {
	    "a.example",
	    "a.example:8080",
	    "A-b_c~d.example",
	    "1.2.3.4",
	    "1.2.3.4:80",
	    "[::1]",
	    "[::1]:443",
	    "[2001:db8::1]",
	    "[::ffff:1.2.3.4]",
	    "a%41b",
	    "x:0",
	    "x:65535",
	    "!$&'()*+,;=",
	};
	static const char *bad[] = {
	    "",	    "a b",    "a:",	"a:123456", "a:65536",	"a:8a", ":80",
	    "[::1", "[zz::]", "[]",	"[::1]x",   "[::1]:",	"a@b",	"a/b",
	    "a%4",  "a%zz",   "[v1.x]", "a:80:80",  "\xc3\xa9",
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
			 ok[i]);
		if (preq(buf) <= 0)
			fail_msg("host '%s' rejected", ok[i]);
		assert_str(req.host, ok[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
			 bad[i]);
		if (preq(buf) != HTTP1_E_BAD_HOST)
			fail_msg("host '%s' accepted (%d)", bad[i], preq(buf));
	}
}

static void test_target_forms(void **state)
{
	(void)state;
	assert_true(preq("OPTIONS * HTTP/1.1\r\n" HOST "\r\n") > 0);
	assert_str(req.target, "*");
	assert_true(preq("OPTIONS /x HTTP/1.1\r\n" HOST "\r\n") > 0);
	assert_true(preq("CONNECT [::1]:443 HTTP/1.1\r\n" HOST "\r\n") > 0);
	assert_str(req.target, "[::1]:443");
	assert_true(preq("GET //x/../y?a=b&c=%20;d|{}\"<> HTTP/1.1\r\n" HOST
			 "\r\n") > 0);

	/* absolute-form: same origin as Host, case and default port aside */
	assert_true(preq("GET HTTP://A.EXAMPLE/p HTTP/1.1\r\n" HOST "\r\n") >
		    0);
	assert_str(req.target, "HTTP://A.EXAMPLE/p");
	assert_str(req.host, "a.example");
	assert_true(preq("GET http://a.example HTTP/1.1\r\n" HOST "\r\n") > 0);
	assert_true(preq("GET http://a.example?x HTTP/1.1\r\n" HOST "\r\n") >
		    0);
	assert_true(preq("GET http://a.example:80/ HTTP/1.1\r\n" HOST "\r\n") >
		    0);
	assert_true(preq("GET http://a.example/ HTTP/1.1\r\nHost: "
			 "a.example:80\r\n\r\n") > 0);
	assert_true(
	    preq("GET https://a.example:443/ HTTP/1.1\r\n" HOST "\r\n") > 0);
	assert_true(
	    preq("GET http://[::1]:80/ HTTP/1.1\r\nHost: [::1]\r\n\r\n") > 0);
	/* HTTP/1.0 without Host: the authority names the host */
	assert_true(preq("GET http://b.example:8080/x HTTP/1.0\r\n\r\n") > 0);
	assert_str(req.host, "b.example:8080");
}

/* ---- requests: framing and connection ---- */

static void test_request_framing(void **state)
{
	(void)state;
	assert_true(
	    preq("POST / HTTP/1.1\r\n" HOST "Content-Length: 42\r\n\r\n") > 0);
	assert_int_equal(req.body, HTTP1_BODY_LENGTH);
	assert_int_equal(req.content_length, 42);

	assert_true(
	    preq("POST / HTTP/1.1\r\n" HOST "Content-Length: 0\r\n\r\n") > 0);
	assert_int_equal(req.body, HTTP1_BODY_LENGTH);
	assert_int_equal(req.content_length, 0);

	assert_true(preq("POST / HTTP/1.1\r\n" HOST "Content-Length: 7\r\n"
			 "content-length: 7, 007 ,7\r\n\r\n") > 0);
	assert_int_equal(req.content_length, 7);

	assert_true(preq("POST / HTTP/1.1\r\n" HOST
			 "Content-Length: 9223372036854775807\r\n\r\n") > 0);
	assert_int_equal(req.content_length, INT64_MAX);

	assert_true(preq("POST / HTTP/1.1\r\n" HOST
			 "Transfer-Encoding: chunked\r\n\r\n") > 0);
	assert_int_equal(req.body, HTTP1_BODY_CHUNKED);
	assert_int_equal(req.content_length, 0);

	assert_true(preq("POST / HTTP/1.1\r\n" HOST
			 "transfer-encoding: CHUNKED \r\n\r\n") > 0);
	assert_int_equal(req.body, HTTP1_BODY_CHUNKED);

	/* a GET may have a body; framing does not depend on the method */
	assert_true(
	    preq("GET / HTTP/1.1\r\n" HOST "Content-Length: 2\r\n\r\n") > 0);
	assert_int_equal(req.body, HTTP1_BODY_LENGTH);
}

static void test_conn_info(void **state)
{
	(void)state;
	assert_true(
	    preq("GET / HTTP/1.1\r\n" HOST "Connection: close\r\n\r\n") > 0);
	assert_false(req.conn.keep_alive);
	assert_true(preq("GET / HTTP/1.1\r\n" HOST
			 "Connection: Keep-Alive, CLOSE\r\n\r\n") > 0);
	assert_false(req.conn.keep_alive);
	assert_true(preq("GET / HTTP/1.1\r\n" HOST "Connection: x\r\n"
			 "Connection: y, close\r\n\r\n") > 0);
	assert_false(req.conn.keep_alive);
	assert_true(preq("GET / HTTP/1.1\r\n" HOST
			 "Connection: closed, xclose\r\n\r\n") > 0);
	assert_true(req.conn.keep_alive);
	assert_true(preq("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") >
		    0);
	assert_true(req.conn.keep_alive);
	assert_true(preq("GET / HTTP/1.0\r\n\r\n") > 0);
	assert_false(req.conn.keep_alive);

	assert_true(preq("GET / HTTP/1.1\r\n" HOST "Connection: Upgrade\r\n"
			 "Upgrade: websocket\r\n\r\n") > 0);
	assert_true(req.conn.upgrade);
	assert_true(req.conn.keep_alive);
	assert_true(
	    preq("GET / HTTP/1.1\r\n" HOST "Connection: upgrade\r\n\r\n") > 0);
	assert_false(req.conn.upgrade);
	assert_true(
	    preq("GET / HTTP/1.1\r\n" HOST "Upgrade: websocket\r\n\r\n") > 0);
	assert_false(req.conn.upgrade);
	assert_true(preq("GET / HTTP/1.1\r\n" HOST
			 "Connection: upgrade\r\nUpgrade:\r\n\r\n") > 0);
	assert_false(req.conn.upgrade);

	assert_true(
	    preq("PUT / HTTP/1.1\r\n" HOST "Expect: 100-CONTINUE\r\n\r\n") > 0);
	assert_true(req.conn.expect_continue);
	assert_true(preq("PUT / HTTP/1.1\r\n" HOST
			 "Expect: 100-continue-x\r\n\r\n") > 0);
	assert_false(req.conn.expect_continue);

	/* HTTP/1.0 requests cannot upgrade or expect 100 */
	assert_true(preq("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n"
			 "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n") >
		    0);
	assert_false(req.conn.expect_continue);
	assert_false(req.conn.upgrade);
	assert_true(
	    preq("GET / HTTP/1.1\r\n" HOST "TE: gzip, trailers\r\n\r\n") > 0);
	assert_true(req.conn.te_trailers);
	assert_true(
	    preq("GET / HTTP/1.1\r\n" HOST "TE: trailers;q=0.5\r\n\r\n") > 0);
	assert_true(req.conn.te_trailers);
	assert_true(preq("GET / HTTP/1.1\r\n" HOST "TE: trailer\r\n\r\n") > 0);
	assert_false(req.conn.te_trailers);
}

/* ---- limits ---- */

static void test_limits(void **state)
{
	(void)state;
	char buf[40000];
	const char *s = "GET /abcdef HTTP/1.1\r\n" HOST "\r\n";
	uint32_t n = (uint32_t)strlen(s);

	/* max_head_bytes: a complete head at the limit passes, one byte
	 * less fails, complete or not */
	assert_int_equal(preq_lim(s, n, 0, 0), (int)n);
	assert_int_equal(preq_lim(s, n - 1, 0, 0), HTTP1_E_HEADERS_TOO_LARGE);
	assert_int_equal(
	    http1_parse_request(s, n - 1, &(http1_limits){n - 1, 0, 0}, &req),
	    0);
	assert_int_equal(
	    http1_parse_request(s, n - 1, &(http1_limits){n - 2, 0, 0}, &req),
	    HTTP1_E_HEADERS_TOO_LARGE);

	/* max_target: complete and still being read */
	assert_true(preq_lim(s, 0, 0, 7) > 0);
	assert_int_equal(preq_lim(s, 0, 0, 6), HTTP1_E_URI_TOO_LONG);
	assert_int_equal(preq_lim("GET /abcdef", 0, 0, 6),
			 HTTP1_E_URI_TOO_LONG);
	assert_int_equal(preq_lim("GET /abcdef", 0, 0, 7), 0);
	/* target running into the head limit is still 414 */
	assert_int_equal(preq_lim("GET /abcdefghijkl", 10, 0, 5),
			 HTTP1_E_URI_TOO_LONG);
	assert_int_equal(preq_lim("GET /abcdefghijkl", 10, 0, 100),
			 HTTP1_E_HEADERS_TOO_LARGE);

	/* max_headers */
	strcpy(buf, "GET / HTTP/1.1\r\n" HOST);
	for (int i = 1; i < 10; i++)
		strcat(buf, "X: y\r\n");
	strcat(buf, "\r\n");
	assert_true(preq_lim(buf, 0, 10, 0) > 0);
	assert_int_equal(req.nheaders, 10);
	assert_int_equal(preq_lim(buf, 0, 9, 0), HTTP1_E_TOO_MANY_HEADERS);
	/* early, while incomplete */
	buf[strlen(buf) - 2] = '\0';
	assert_int_equal(preq_lim(buf, 0, 8, 0), HTTP1_E_TOO_MANY_HEADERS);

	/* defaults: 100 fields, 16 KiB; the hard cap is HTTP1_MAX_HEADERS */
	strcpy(buf, "GET / HTTP/1.1\r\n" HOST);
	for (int i = 1; i < 100; i++)
		strcat(buf, "X: y\r\n");
	strcat(buf, "\r\n");
	assert_true(preq(buf) > 0);
	strcpy(buf + strlen(buf) - 2, "X: y\r\n\r\n");
	assert_int_equal(preq(buf), HTTP1_E_TOO_MANY_HEADERS);
	strcpy(buf, "GET / HTTP/1.1\r\n" HOST);
	for (int i = 1; i < HTTP1_MAX_HEADERS + 1; i++)
		strcat(buf, "X: y\r\n");
	strcat(buf, "\r\n");
	assert_int_equal(preq_lim(buf, 32768, 1000, 0),
			 HTTP1_E_TOO_MANY_HEADERS);
	static const char big[] = "GET / HTTP/1.1\r\n" HOST "X: ";
	size_t len = 0;

	put(buf, &len, big, sizeof(big) - 1);
	memset(buf + len, 'a', 17000);
	len += 17000;
	put(buf, &len, "\r\n\r\n", 5);
	assert_int_equal(preq(buf), HTTP1_E_HEADERS_TOO_LARGE);
	assert_true(preq_lim(buf, 20000, 0, 0) > 0);
}

static void test_pointers_inside(void **state)
{
	(void)state;
	const char *s = "\r\nPOST /x HTTP/1.1\r\n" HOST "A: 1\r\nB:\r\n"
			"Content-Length: 1\r\n\r\nZ";
	int rc = preq(s);

	assert_true(rc > 0);
	const char *end = s + rc;

	assert_true(req.method.p >= s && req.method.p + req.method.len <= end);
	assert_true(req.target.p >= s && req.target.p + req.target.len <= end);
	assert_true(req.host.p >= s && req.host.p + req.host.len <= end);
	for (uint32_t i = 0; i < req.nheaders; i++) {
		assert_true(req.headers[i].name.p >= s &&
			    req.headers[i].name.p + req.headers[i].name.len <=
				end);
		assert_true(req.headers[i].value.p >= s &&
			    req.headers[i].value.p + req.headers[i].value.len <=
				end);
	}
}

/* ---- responses ---- */

static void test_response_basic(void **state)
{
	(void)state;
	const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
			"Server: x\r\n\r\nhello";

	assert_int_equal(presp(s, HTTP_M_GET), (int)strlen(s) - 5);
	assert_int_equal(resp.status, 200);
	assert_str(resp.reason, "OK");
	assert_int_equal(resp.version_minor, 1);
	assert_int_equal(resp.nheaders, 2);
	assert_int_equal(resp.body, HTTP1_BODY_LENGTH);
	assert_int_equal(resp.content_length, 5);
	assert_true(resp.conn.keep_alive);
	assert_false(resp.conn.expect_continue);

	assert_true(presp("HTTP/1.1 404 Not  Found\t!\r\n"
			  "Content-Length: 0\r\n\r\n",
			  HTTP_M_GET) > 0);
	assert_str(resp.reason, "Not  Found\t!");
	assert_true(
	    presp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET) > 0);
	assert_str(resp.reason, "");
	assert_true(presp("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
			  HTTP_M_GET) > 0);
	assert_str(resp.reason, "");
	assert_true(presp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
			  "Content-Length: 1\r\n\r\n",
			  HTTP_M_GET) > 0);
	assert_true(resp.conn.keep_alive);
	assert_true(presp("HTTP/1.1 200 OK\r\nConnection: close\r\n"
			  "Content-Length: 1\r\n\r\n",
			  HTTP_M_GET) > 0);
	assert_false(resp.conn.keep_alive);
	/* Host rules are for requests */
	assert_true(presp("HTTP/1.1 200 OK\r\nHost: a b\r\nHost: c\r\n"
			  "Content-Length: 0\r\n\r\n",
			  HTTP_M_GET) > 0);
}

static void test_response_framing(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		http1_method m;
		http1_body body;
		bool keep_alive;
	} t[] = {
	    {"HTTP/1.1 100 Continue\r\n\r\n", HTTP_M_GET, HTTP1_BODY_NONE,
	     true},
	    {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", HTTP_M_GET,
	     HTTP1_BODY_NONE, true},
	    {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", HTTP_M_GET,
	     HTTP1_BODY_NONE, true},
	    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
	     HTTP_M_GET, HTTP1_BODY_NONE, true},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", HTTP_M_HEAD,
	     HTTP1_BODY_NONE, true},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	     HTTP_M_HEAD, HTTP1_BODY_NONE, true},
	    {"HTTP/1.1 200 OK\r\n\r\n", HTTP_M_HEAD, HTTP1_BODY_NONE, true},
	    {"HTTP/1.1 200 Connection established\r\n\r\n", HTTP_M_CONNECT,
	     HTTP1_BODY_NONE, true},
	    {"HTTP/1.1 407 Auth\r\nContent-Length: 3\r\n\r\n", HTTP_M_CONNECT,
	     HTTP1_BODY_LENGTH, true},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	     HTTP_M_GET, HTTP1_BODY_CHUNKED, true},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
	     "Transfer-Encoding: Chunked\r\n\r\n",
	     HTTP_M_GET, HTTP1_BODY_CHUNKED, true},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_M_GET,
	     HTTP1_BODY_EOF, false},
	    {"HTTP/1.1 200 OK\r\n\r\n", HTTP_M_GET, HTTP1_BODY_EOF, false},
	    {"HTTP/1.0 200 OK\r\n\r\n", HTTP_M_POST, HTTP1_BODY_EOF, false},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET,
	     HTTP1_BODY_LENGTH, true},
	    {"HTTP/1.1 500 Oops\r\nContent-Length: 2, 2\r\n\r\n", HTTP_M_GET,
	     HTTP1_BODY_LENGTH, true},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (presp(t[i].in, t[i].m) <= 0)
			fail_msg("case %zu rejected", i);
		assert_int_equal(resp.body, t[i].body);
		assert_int_equal(resp.conn.keep_alive, t[i].keep_alive);
	}
	/* te_other: a coding besides chunked, which the proxy refuses */
	static const struct {
		const char *in;
		bool other;
	} te[] = {
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", true},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	     true},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false},
	    {"HTTP/1.1 200 OK\r\n\r\n", false},
	};
	for (size_t i = 0; i < sizeof(te) / sizeof(te[0]); i++) {
		if (presp(te[i].in, HTTP_M_GET) <= 0)
			fail_msg("te case %zu rejected", i);
		assert_int_equal(resp.te_other, te[i].other);
	}
	assert_true(presp("HTTP/1.1 101 Switching Protocols\r\n"
			  "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
			  HTTP_M_GET) > 0);
	assert_true(resp.conn.upgrade);
	assert_int_equal(resp.body, HTTP1_BODY_NONE);
}

static void test_response_errors(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int rc;
	} t[] = {
	    {"HTTP/1.1 099 X\r\n\r\n", HTTP1_E_BAD_STATUS_LINE},
	    {"HTTP/1.1 600 X\r\n\r\n", HTTP1_E_BAD_STATUS_LINE},
	    {"HTTP/1.1 20 X\r\n\r\n", HTTP1_E_BAD_STATUS_LINE},
	    {"HTTP/1.1 2000 X\r\n\r\n", HTTP1_E_BAD_STATUS_LINE},
	    {"HTTP/1.1 abc X\r\n\r\n", HTTP1_E_BAD_STATUS_LINE},
	    {"HTTP/1.1  200 X\r\n\r\n", HTTP1_E_BAD_STATUS_LINE},
	    {"HTTP/1.1 200 X\x01\r\n\r\n", HTTP1_E_BAD_STATUS_LINE},
	    {"HTTX/1.1 200 OK\r\n\r\n", HTTP1_E_BAD_STATUS_LINE},
	    {"HTTP/1.1\r\n\r\n", HTTP1_E_BAD_STATUS_LINE},
	    {"HTTP/2.0 200 OK\r\n\r\n", HTTP1_E_VERSION_UNSUPPORTED},
	    {"HTTP/1.1 200 OK\n\r\n", HTTP1_E_BARE_LF},
	    {"HTTP/1.1 200 OK\r\r\n", HTTP1_E_BARE_CR},
	    {"HTTP/1.1 200\n", HTTP1_E_BARE_LF},
	    {"HTTP/1.1 200 OK\r\nX : y\r\n\r\n", HTTP1_E_SPACE_BEFORE_COLON},
	    {"HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", HTTP1_E_OBS_FOLD},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
	     HTTP1_E_BAD_CONTENT_LENGTH},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n",
	     HTTP1_E_CL_AND_TE},
	    {"HTTP/1.1 304 OK\r\nContent-Length: 5\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n",
	     HTTP1_E_CL_AND_TE},
	    {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	     HTTP1_E_TE_IN_HTTP10},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n",
	     HTTP1_E_BAD_TRANSFER_ENCODING},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = presp(t[i].in, HTTP_M_GET);

		if (rc != t[i].rc)
			fail_msg("case %zu: %s -> %d, want %d", i, t[i].in, rc,
				 t[i].rc);
	}
	/* early rejection and limits */
	assert_int_equal(presp("HTTP/1.1 2x", HTTP_M_GET),
			 HTTP1_E_BAD_STATUS_LINE);
	assert_int_equal(presp("HTTP/1.1 200 OK\r\nX", HTTP_M_GET), 0);
	http1_limits l = {20, 0, 0};
	const char *big = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

	assert_int_equal(
	    http1_parse_response(big, strlen(big), &l, HTTP_M_GET, &resp),
	    HTTP1_E_HEADERS_TOO_LARGE);
	assert_int_equal(http1_parse_response(big, 20, &l, HTTP_M_GET, &resp),
			 0);
}

/* ---- errors and helpers ---- */

static void test_err_status_reason(void **state)
{
	(void)state;
	for (int e = -1; e > HTTP1_E_LAST; e--) {
		const char *r = http1_err_reason(e);
		int st = http1_err_status(e);

		assert_non_null(r);
		assert_true(strlen(r) > 0);
		assert_true(st >= 400 && st <= 505);
		for (int f = e - 1; f > HTTP1_E_LAST; f--)
			assert_string_not_equal(r, http1_err_reason(f));
	}
	assert_int_equal(http1_err_status(HTTP1_E_BAD_CONTENT_LENGTH), 400);
	assert_int_equal(http1_err_status(HTTP1_E_URI_TOO_LONG), 414);
	assert_int_equal(http1_err_status(HTTP1_E_HEADERS_TOO_LARGE), 431);
	assert_int_equal(http1_err_status(HTTP1_E_TOO_MANY_HEADERS), 431);
	assert_int_equal(http1_err_status(HTTP1_E_UNSUPPORTED_TRANSFER_CODING),
			 501);
	assert_int_equal(http1_err_status(HTTP1_E_VERSION_UNSUPPORTED), 505);
	assert_int_equal(http1_err_status(HTTP1_E_BAD_STATUS_LINE), 502);
	assert_int_equal(http1_err_status(-1000), 400);
	assert_int_equal(http1_err_status(HTTP1_E_LAST), 400);
	assert_non_null(http1_err_reason(-1000));
	assert_non_null(http1_err_reason(0));
	assert_non_null(http1_err_reason(5));
}

static void test_find_header(void **state)
{
	(void)state;
	assert_true(preq("GET / HTTP/1.1\r\n" HOST "X-Foo: 1\r\nx-foo: 2\r\n"
			 "X-Foobar: 3\r\n\r\n") > 0);
	const http1_header *h =
	    http1_find_header(req.headers, req.nheaders, "x-FOO");

	assert_non_null(h);
	assert_str(h->value, "1");
	assert_null(http1_find_header(req.headers, req.nheaders, "X-Fo"));
	assert_null(http1_find_header(req.headers, req.nheaders, "Nope"));
	assert_null(http1_find_header(req.headers, 0, "Host"));
}

static void test_hop_by_hop(void **state)
{
	(void)state;
	assert_true(
	    preq("GET / HTTP/1.1\r\n" HOST "Connection: X-Secret, close\r\n"
		 "connection: x-other\r\n"
		 "Keep-Alive: 5\r\nProxy-Connection: x\r\nTE: trailers\r\n"
		 "Trailer: a\r\nUpgrade: h2c\r\nX-Secret: 1\r\n"
		 "X-Other: 2\r\nX-Public: 3\r\nTransfer-Encoding: "
		 "chunked\r\n\r\n") > 0);
	static const char *hop[] = {
	    "Connection", "connection",	       "Keep-Alive", "Proxy-Connection",
	    "TE",	  "Trailer",	       "Upgrade",    "X-Secret",
	    "X-Other",	  "Transfer-Encoding",
	};
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
		bool found = false;

		for (uint32_t k = 0; k < req.nheaders; k++) {
			if (!str_is(req.headers[k].name, hop[i]))
				continue;
			found = true;
			if (!http1_is_hop_by_hop(req.headers, req.nheaders,
						 &req.headers[k]))
				fail_msg("%s is hop-by-hop", hop[i]);
		}
		assert_true(found);
	}
	const http1_header *h =
	    http1_find_header(req.headers, req.nheaders, "X-Public");
	assert_false(http1_is_hop_by_hop(req.headers, req.nheaders, h));
	h = http1_find_header(req.headers, req.nheaders, "Host");
	assert_false(http1_is_hop_by_hop(req.headers, req.nheaders, h));
	/* a name listed in Connection, looked up among other headers */
	http1_header lone = {{"x-secret", 8}, {"v", 1}};

	assert_true(http1_is_hop_by_hop(req.headers, req.nheaders, &lone));
	assert_false(http1_is_hop_by_hop(NULL, 0, &lone));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple_get),
	    cmocka_unit_test(test_methods),
	    cmocka_unit_test(test_values_trimmed),
	    cmocka_unit_test(test_long_values),
	    cmocka_unit_test(test_random_values),
	    cmocka_unit_test(test_leading_empty_lines),
	    cmocka_unit_test(test_http10),
	    cmocka_unit_test(test_incomplete_prefixes),
	    cmocka_unit_test(test_early_errors),
	    cmocka_unit_test(test_request_errors),
	    cmocka_unit_test(test_hosts),
	    cmocka_unit_test(test_target_forms),
	    cmocka_unit_test(test_request_framing),
	    cmocka_unit_test(test_conn_info),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_pointers_inside),
	    cmocka_unit_test(test_response_basic),
	    cmocka_unit_test(test_response_framing),
	    cmocka_unit_test(test_response_errors),
	    cmocka_unit_test(test_err_status_reason),
	    cmocka_unit_test(test_find_header),
	    cmocka_unit_test(test_hop_by_hop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
