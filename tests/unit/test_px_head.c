/* Unit tests for px_head: the request and response heads the proxy
 * forwards (hop-by-hop removal, X-Forwarded-*, framing kept) and the
 * local error responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/px_head.h"

static const http1_limits lim = {16384, 100, 8192};
static http1_request req;
static http1_response resp;
static char out[4096];

static const char *rewrite_req(const char *raw, const char *ip, bool http10)
{
	int r = http1_parse_request(raw, strlen(raw), &lim, &req);
	assert_int_equal(r, (int)strlen(raw));
	px_req_ctx ctx = {
	    .client_ip = ip, .proto = "http", .upstream_http10 = http10};
	int n = px_head_request(&req, &ctx, out, sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	return out;
}

static void test_request_basic(void **state)
{
	const char *h =
	    rewrite_req("GET /a?b=1 HTTP/1.1\r\nHost: lb.example.com\r\n"
			"Accept: */*\r\n\r\n",
			"10.0.0.1", false);
	assert_string_equal(h, "GET /a?b=1 HTTP/1.1\r\nHost: lb.example.com\r\n"
			       "Accept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n"
			       "X-Forwarded-Proto: http\r\n"
			       "X-Forwarded-Host: lb.example.com\r\n\r\n");
}

/* RFC 9112 §3.2.1, §3.2.4: an origin gets origin-form (or "*"). */
static void test_request_absolute_form(void **state)
{
	static const struct {
		const char *line, *want;
	} t[] = {
	    {"GET http://lb.example.com/a?b=1 HTTP/1.1", "GET /a?b=1 HTTP/1.1"},
	    {"GET HTTP://lb.example.com:80/a HTTP/1.1", "GET /a HTTP/1.1"},
	    {"GET https://lb.example.com/ HTTP/1.1", "GET / HTTP/1.1"},
	    {"GET http://lb.example.com HTTP/1.1", "GET / HTTP/1.1"},
	    {"GET http://lb.example.com?q=1 HTTP/1.1", "GET /?q=1 HTTP/1.1"},
	    {"OPTIONS http://lb.example.com HTTP/1.1", "OPTIONS * HTTP/1.1"},
	    {"OPTIONS http://lb.example.com?x HTTP/1.1",
	     "OPTIONS /?x HTTP/1.1"},
	    {"OPTIONS http://lb.example.com/p HTTP/1.1", "OPTIONS /p HTTP/1.1"},
	    {"OPTIONS * HTTP/1.1", "OPTIONS * HTTP/1.1"},
	    {"GET /x:y//z HTTP/1.1", "GET /x:y//z HTTP/1.1"},
	};
	char raw[256];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(raw, sizeof(raw), "%s\r\nHost: lb.example.com\r\n\r\n",
			 t[i].line);
		const char *h = rewrite_req(raw, "10.0.0.1", false);
		size_t n = strlen(t[i].want);

		if (strncmp(h, t[i].want, n) || strncmp(h + n, "\r\n", 2))
			fail_msg("%s -> %.60s", t[i].line, h);
	}
	/* HTTP/1.0 without Host: the authority names it */
	const char *want = "GET /a HTTP/1.0\r\nHost: lb.example.com\r\n";
	const char *h = rewrite_req(
	    "GET http://lb.example.com/a HTTP/1.0\r\n\r\n", "10.0.0.1", true);
	assert_memory_equal(h, want, strlen(want));
}

static void test_request_id(void **state)
{
	const char *raw = "GET / HTTP/1.1\r\nHost: a\r\nx-request-id: old\r\n"
			  "X-Forwarded-For: 9.9.9.9\r\n"
			  "X-Kept: yes\r\nX-REQUEST-ID: old2\r\n\r\n";
	assert_int_equal(http1_parse_request(raw, strlen(raw), &lim, &req),
			 (int)strlen(raw));
	const http1_header id = {{"X-Request-Id", 12}, {"abc", 3}};
	px_req_ctx ctx = {
	    .client_ip = "10.0.0.1", .proto = "http", .req_id = &id};
	int n = px_head_request(&req, &ctx, out, sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out, "GET / HTTP/1.1\r\nHost: a\r\nX-Kept: yes\r\n"
				 "X-Request-Id: abc\r\n"
				 "X-Forwarded-For: 9.9.9.9, 10.0.0.1\r\n"
				 "X-Forwarded-Proto: http\r\n"
				 "X-Forwarded-Host: a\r\n\r\n");
}

static void test_request_hop_by_hop_removed(void **state)
{
	const char *h = rewrite_req(
	    "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\n"
	    "Keep-Alive: timeout=5\r\nX-Secret: 1\r\nTE: trailers\r\n"
	    "Proxy-Connection: keep-alive\r\nTrailer: X\r\nUpgrade: h2c\r\n"
	    "X-Kept: yes\r\n\r\n",
	    "10.0.0.1", false);
	assert_null(strstr(h, "Connection:"));
	assert_null(strstr(h, "Keep-Alive"));
	assert_null(strstr(h, "X-Secret"));
	assert_null(strstr(h, "TE:"));
	assert_null(strstr(h, "Trailer"));
	assert_null(strstr(h, "Upgrade"));
	assert_non_null(strstr(h, "X-Kept: yes\r\n"));
}

static void test_connection_cannot_strip_framing(void **state)
{
	const char *h = rewrite_req("POST / HTTP/1.1\r\nHost: a\r\n"
				    "Connection: Content-Length, Host, "
				    "X-Forwarded-For\r\nContent-Length: 5\r\n"
				    "X-Forwarded-For: 1.1.1.1\r\n\r\n",
				    "10.0.0.1", false);
	assert_non_null(strstr(h, "\r\nContent-Length: 5\r\n"));
	assert_non_null(strstr(h, "\r\nHost: a\r\n"));
	assert_non_null(strstr(h, "X-Forwarded-For: 1.1.1.1, 10.0.0.1\r\n"));
	const char *raw = "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\n"
			  "Content-Length: 5\r\n\r\n";
	assert_true(http1_parse_response(raw, strlen(raw), &lim, HTTP_M_GET,
					 &resp) > 0);
	int n =
	    px_head_response(&resp, false, false, NULL, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_non_null(strstr(out, "\r\nContent-Length: 5\r\n"));
}

static const char *rewrite_resp(const char *raw)
{
	assert_true(http1_parse_response(raw, strlen(raw), &lim, HTTP_M_GET,
					 &resp) > 0);
	int n =
	    px_head_response(&resp, false, false, NULL, out, sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	return out;
}

/* RFC 9110 §8.6: a Content-Length list of one value goes on as that
 * value, once; none in a 1xx or 204. */
static void test_content_length_normalised(void **state)
{
	const char *h = rewrite_req("POST / HTTP/1.1\r\nHost: a\r\n"
				    "Content-Length: 5, 5\r\nX-A: 1\r\n"
				    "Content-Length: 5\r\n\r\n",
				    "10.0.0.1", false);
	assert_true(req.cl_list);
	assert_non_null(strstr(h, "\r\nContent-Length: 5\r\nX-A: 1\r\n"));
	assert_null(strstr(strstr(h, "Content-Length") + 1, "Content-Length"));
	h = rewrite_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			"\r\n",
			"10.0.0.1", false);
	assert_false(req.cl_list);

	assert_string_equal(rewrite_resp("HTTP/1.1 200 OK\r\nContent-Length: "
					 "2 , 2\r\nContent-Length: 2\r\n"
					 "X-A: 1\r\n\r\n"),
			    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n"
			    "\r\n");
	assert_string_equal(rewrite_resp("HTTP/1.1 200 OK\r\nX-A: 1\r\n"
					 "Content-Length: 2\r\n\r\n"),
			    "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n"
			    "\r\n");
	assert_string_equal(rewrite_resp("HTTP/1.1 204 No Content\r\n"
					 "Content-Length: 0\r\nX-A: 1\r\n\r\n"),
			    "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
	assert_string_equal(rewrite_resp("HTTP/1.1 103 Early Hints\r\n"
					 "Content-Length: 7\r\nLink: <a>\r\n"
					 "\r\n"),
			    "HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n");
	/* 304 keeps it: the length of the representation (RFC 9110 8.6). */
	assert_non_null(strstr(rewrite_resp("HTTP/1.1 304 Not Modified\r\n"
					    "Content-Length: 9\r\n\r\n"),
			       "\r\nContent-Length: 9\r\n"));
}

static void test_request_xff_appended_and_spoofs_replaced(void **state)
{
	const char *h = rewrite_req(
	    "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n"
	    "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n"
	    "X-Forwarded-For: 2.2.2.2\r\n\r\n",
	    "127.0.0.9", false);
	assert_non_null(
	    strstr(h, "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 127.0.0.9\r\n"));
	assert_non_null(strstr(h, "X-Forwarded-Proto: http\r\n"));
	assert_null(strstr(h, "https"));
	assert_null(strstr(h, "evil"));
	assert_non_null(strstr(h, "X-Forwarded-Host: a\r\n"));
	/* Spellings with '_' (one variable to a CGI origin) are dropped;
	 * other fields with '_' pass. */
	h = rewrite_req(
	    "GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_Proto: https\r\n"
	    "x-forwarded_host: evil\r\nX_FORWARDED_FOR: 6.6.6.6\r\n"
	    "X_Other: kept\r\nX-Forwarded_Port: 1\r\n\r\n",
	    "127.0.0.9", false);
	assert_null(strstr(h, "https"));
	assert_null(strstr(h, "evil"));
	assert_null(strstr(h, "6.6.6.6"));
	assert_non_null(strstr(h, "X_Other: kept\r\n"));
	assert_non_null(strstr(h, "X-Forwarded_Port: 1\r\n"));
	assert_non_null(strstr(h, "X-Forwarded-For: 127.0.0.9\r\n"));
	/* X-Real-IP is the edge's: the client's (either spelling) goes,
	 * ours is real_ip, and none without one. */
	h = rewrite_req("GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 6.6.6.6\r\n"
			"x_real_ip: 6.6.6.7\r\nX-Real_Ip: 6.6.6.8\r\n\r\n",
			"127.0.0.9", false);
	assert_null(strstr(h, "6.6.6"));
	assert_null(strstr(h, "X-Real-IP"));
	{
		const char *raw = "GET / HTTP/1.1\r\nHost: a\r\n"
				  "X-Real-IP: 6.6.6.6\r\n\r\n";
		assert_int_equal(
		    http1_parse_request(raw, strlen(raw), &lim, &req),
		    (int)strlen(raw));
		px_req_ctx ctx = {.client_ip = "127.0.0.9",
				  .real_ip = "192.0.2.7",
				  .proto = "http"};
		int n = px_head_request(&req, &ctx, out, sizeof(out) - 1);
		assert_true(n > 0);
		out[n] = '\0';
		assert_null(strstr(out, "6.6.6.6"));
		assert_non_null(strstr(out, "X-Forwarded-Host: a\r\n"
					    "X-Real-IP: 192.0.2.7\r\n\r\n"));
	}
	/* Fields after a client's X-Forwarded-For keep their own lines. */
	h = rewrite_req("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1"
			"\r\nAccept: */*\r\nX-Forwarded-For: 2.2.2.2\r\n"
			"X-Last: z\r\n\r\n",
			"127.0.0.9", false);
	assert_string_equal(h,
			    "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n"
			    "X-Last: z\r\n"
			    "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 127.0.0.9\r\n"
			    "X-Forwarded-Proto: http\r\n"
			    "X-Forwarded-Host: a\r\n\r\n");
}

static void test_request_chunked_and_upgrade_kept(void **state)
{
	const char *h = rewrite_req("POST /u HTTP/1.1\r\nHost: a\r\n"
				    "Transfer-Encoding: chunked\r\n\r\n",
				    "1.2.3.4", false);
	assert_non_null(strstr(h, "Transfer-Encoding: chunked\r\n"));
	h = rewrite_req("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
			"Upgrade: websocket\r\n\r\n",
			"1.2.3.4", false);
	assert_non_null(strstr(h, "Upgrade: websocket\r\n"));
	assert_non_null(strstr(h, "Connection: upgrade\r\n"));
}

static void test_request_http10(void **state)
{
	const char *h = rewrite_req("GET / HTTP/1.0\r\n\r\n", "1.2.3.4", true);
	assert_true(strncmp(h, "GET / HTTP/1.0\r\n", 16) == 0);
	assert_non_null(strstr(h, "Connection: close\r\n"));
	assert_null(strstr(h, "X-Forwarded-Host"));
}

static void test_request_overflow(void **state)
{
	const char *raw =
	    "GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
	assert_true(http1_parse_request(raw, strlen(raw), &lim, &req) > 0);
	px_req_ctx ctx = {.client_ip = "1.2.3.4", .proto = "http"};
	assert_int_equal(px_head_request(&req, &ctx, out, 40), -ENOSPC);
}

static void test_request_host_override_and_swap(void **state)
{
	const char *vals[] = {"origin.internal"};
	cfg_header hdr = {.name = "host", .values = vals, .nvalues = 1};
	cfg_origin o = {.headers = &hdr, .nheaders = 1};
	const char *raw =
	    "GET / HTTP/1.1\r\nAccept: x\r\nHost: public.example\r\n\r\n";
	assert_true(http1_parse_request(raw, strlen(raw), &lim, &req) > 0);
	px_req_ctx ctx = {
	    .client_ip = "1.2.3.4", .proto = "http", .origin = &o};
	int n = px_head_request(&req, &ctx, out, sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	assert_true(
	    strncmp(out,
		    "GET / HTTP/1.1\r\nHost: origin.internal\r\nAccept: x\r\n",
		    49) == 0);
	assert_non_null(strstr(out, "X-Forwarded-Host: public.example\r\n"));
	assert_null(strstr(out, "\r\nHost: public.example"));
	/* Swap to another origin's Host, longer and shorter. */
	n = px_head_set_host(out, (size_t)n, sizeof(out) - 1,
			     "a-much-longer-host.internal", 27);
	assert_true(n > 0);
	out[n] = '\0';
	assert_true(strncmp(out,
			    "GET / HTTP/1.1\r\nHost: "
			    "a-much-longer-host.internal\r\nAccept: x\r\n",
			    61) == 0);
	n = px_head_set_host(out, (size_t)n, sizeof(out) - 1, "b", 1);
	out[n] = '\0';
	assert_true(strncmp(out, "GET / HTTP/1.1\r\nHost: b\r\nAccept: x\r\n",
			    35) == 0);
	assert_int_equal(px_head_set_host(out, (size_t)n, (size_t)n, "bbbb", 4),
			 -ENOSPC);
	assert_int_equal(px_head_set_host("GET / HTTP/1.1\r\nAccept: x\r\n\r\n",
					  31, 64, "b", 1),
			 -EINVAL);
}

static void test_response(void **state)
{
	const char *raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
			  "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
			  "Server: o\r\n\r\n";
	assert_true(http1_parse_response(raw, strlen(raw), &lim, HTTP_M_GET,
					 &resp) > 0);
	int n =
	    px_head_response(&resp, false, false, NULL, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(
	    out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: o\r\n\r\n");
	n = px_head_response(&resp, false, true, NULL, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(
	    out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: o\r\n"
		 "Connection: close\r\n\r\n");
	px_resp_edit ed = {.add = {{{"Set-Cookie", 10}, {"a=b", 3}}},
			   .nadd = 1};
	n = px_head_response(&resp, false, false, &ed, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(
	    out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: o\r\n"
		 "Set-Cookie: a=b\r\n\r\n");
	/* The edge's Strict-Transport-Security and request id replace the
	 * origin's (any case of the names). */
	raw = "HTTP/1.1 200 OK\r\nstrict-transport-security: max-age=1\r\n"
	      "x-request-id: theirs\r\nContent-Length: 0\r\n\r\n";
	assert_true(http1_parse_response(raw, strlen(raw), &lim, HTTP_M_GET,
					 &resp) > 0);
	px_resp_edit sts = {
	    .add = {{{"Strict-Transport-Security", 25}, {"max-age=9", 9}},
		    {{"X-Request-Id", 12}, {"ours", 4}}},
	    .nadd = 2,
	    .drop_sts = true,
	    .drop = {"X-Request-Id", 12}};
	n = px_head_response(&resp, false, false, &sts, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
				 "Strict-Transport-Security: max-age=9\r\n"
				 "X-Request-Id: ours\r\n\r\n");
	/* A line after the status line of a local answer. */
	char h[64] = "HTTP/1.1 502 Bad Gateway\r\nA: b\r\n\r\n";
	n = px_head_insert_line(h, strlen(h), sizeof(h) - 1, "X: 1\r\n", 6);
	h[n] = '\0';
	assert_string_equal(h,
			    "HTTP/1.1 502 Bad Gateway\r\nX: 1\r\nA: b\r\n\r\n");
	assert_int_equal(
	    px_head_insert_line(h, strlen(h), strlen(h) + 3, "X: 1\r\n", 6),
	    -ENOSPC);
	raw = "HTTP/1.1 404 Not Here\r\nTransfer-Encoding: chunked\r\n\r\n";
	assert_true(http1_parse_response(raw, strlen(raw), &lim, HTTP_M_GET,
					 &resp) > 0);
	n = px_head_response(&resp, false, false, NULL, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(
	    out, "HTTP/1.1 404 Not Here\r\nTransfer-Encoding: chunked\r\n\r\n");
	/* decoded for an HTTP/1.0 client: no Transfer-Encoding */
	px_resp_edit un = {.unchunk = true};
	n = px_head_response(&resp, false, true, &un, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(
	    out, "HTTP/1.1 404 Not Here\r\nConnection: close\r\n\r\n");
}

static void test_local(void **state)
{
	int n = px_head_local(404, "no load balancer for this host", "pop-1",
			      false, false, out, sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	assert_true(strncmp(out, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
	assert_non_null(strstr(out, "(edge pop-1)\n"));
	assert_null(strstr(out, "Connection: close"));
	const char *body = strstr(out, "\r\n\r\n") + 4;
	char cl[64];
	snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(body));
	assert_non_null(strstr(out, cl));
	n = px_head_local(502, "x", "e", true, true, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_non_null(strstr(out, "Connection: close\r\n"));
	assert_string_equal(strstr(out, "\r\n\r\n"),
			    "\r\n\r\n"); /* HEAD: no body */
	assert_int_equal(px_head_local(502, "x", "e", true, false, out, 20),
			 -ENOSPC);
}

/* A rule's fixed_response: the operator's fields and body, framed like
 * the edge's own answers; no content for 204/205/304 (and HEAD). */
static void test_fixed(void **state)
{
	int n = px_head_fixed(503, NULL, NULL, "back soon", false, false, out,
			      sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(out, "HTTP/1.1 503 Service Unavailable\r\n"
				 "Content-Type: text/plain\r\n"
				 "Content-Length: 9\r\n"
				 "Cache-Control: no-store\r\n\r\n"
				 "back soon");
	n = px_head_fixed(301, "text/html", "https://x.example/", NULL, true,
			  false, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(out, "HTTP/1.1 301 Moved Permanently\r\n"
				 "Content-Type: text/html\r\n"
				 "Location: https://x.example/\r\n"
				 "Content-Length: 0\r\n"
				 "Cache-Control: no-store\r\n"
				 "Connection: close\r\n\r\n");
	/* HEAD: the length of the body not sent. */
	n = px_head_fixed(200, NULL, NULL, "abc", false, true, out,
			  sizeof(out) - 1);
	out[n] = '\0';
	assert_non_null(strstr(out, "Content-Length: 3\r\n"));
	assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n");
	n = px_head_fixed(204, NULL, NULL, "abc", false, false, out,
			  sizeof(out) - 1);
	out[n] = '\0';
	assert_null(strstr(out, "Content-Length"));
	assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n");
	n = px_head_fixed(304, NULL, NULL, "abc", false, false, out,
			  sizeof(out) - 1);
	out[n] = '\0';
	assert_true(!strncmp(out, "HTTP/1.1 304 Not Modified\r\n", 27));
	assert_null(strstr(out, "Content-Length"));
	n = px_head_fixed(205, NULL, NULL, "abc", false, false, out,
			  sizeof(out) - 1);
	out[n] = '\0';
	assert_non_null(strstr(out, "Content-Length: 0\r\n"));
	assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n");
	assert_int_equal(
	    px_head_fixed(200, NULL, NULL, "abc", false, false, out, 40),
	    -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_basic),
	    cmocka_unit_test(test_request_absolute_form),
	    cmocka_unit_test(test_request_hop_by_hop_removed),
	    cmocka_unit_test(test_request_id),
	    cmocka_unit_test(test_request_xff_appended_and_spoofs_replaced),
	    cmocka_unit_test(test_connection_cannot_strip_framing),
	    cmocka_unit_test(test_content_length_normalised),
	    cmocka_unit_test(test_request_chunked_and_upgrade_kept),
	    cmocka_unit_test(test_request_http10),
	    cmocka_unit_test(test_request_overflow),
	    cmocka_unit_test(test_request_host_override_and_swap),
	    cmocka_unit_test(test_response),
	    cmocka_unit_test(test_local),
	    cmocka_unit_test(test_fixed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
