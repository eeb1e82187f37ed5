/* Unit tests for src/h2: every strict h2 -> h1 rule of h2_req (pseudo
 * headers, names, connection-specific fields, TE, content-length, CONNECT,
 * values, Host/:authority), the h1 head it writes (cookie crumbs, chunked),
 * h1 -> h2 response fields; and h2_session driven with raw client frames:
 * a request with body and explicit flow control, deferred response data and
 * trailers, malformed requests, and each attack limit (rapid reset,
 * CONTINUATION flood, HPACK bomb and table size, PING / SETTINGS floods and
 * outbound ACKs, zero-window stall, concurrent streams). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "h2/h2_req.h"
#include "h2/h2_session.h"

/* ---- h2_req ---- */

#define F(n, v)                                                                \
	{                                                                      \
		{n, sizeof(n) - 1},                                            \
		{                                                              \
			v, sizeof(v) - 1                                       \
		}                                                              \
	}
#define BASE                                                                   \
	F(":method", "GET"), F(":scheme", "https"),                            \
	    F(":authority", "example.com"), F(":path", "/x")

static int parse(const h2_field *f, size_t n, const char **why)
{
	h2_req r;
	return h2_req_parse(f, n, true, &r, why);
}
#define PARSE(expect_rc, expect_why, ...)                                      \
	do {                                                                   \
		const h2_field f_[] = {__VA_ARGS__};                           \
		const char *w_;                                                \
		assert_int_equal(parse(f_, sizeof(f_) / sizeof(f_[0]), &w_),   \
				 expect_rc);                                   \
		assert_ptr_equal(w_, expect_why);                              \
	} while (0)

static void test_req_ok(void **state)
{
	PARSE(0, NULL, BASE, F("accept", "*/*"), F("te", "trailers"));
	PARSE(0, NULL, F(":method", "GET"), F(":scheme", "http"),
	      F(":path", "/"), F("host", "a.example"));
	PARSE(0, NULL, F(":method", "OPTIONS"), F(":scheme", "http"),
	      F(":path", "*"), F(":authority", "a"));
}

static void test_req_pseudo(void **state)
{
	PARSE(-EPROTO, h2_req_err_pseudo_after, F(":method", "GET"),
	      F("accept", "*/*"), F(":scheme", "https"), F(":path", "/"),
	      F(":authority", "a"));
	PARSE(-EPROTO, h2_req_err_pseudo_dup, BASE, F(":path", "/y"));
	PARSE(-EPROTO, h2_req_err_pseudo_dup, F(":method", "GET"), BASE);
	PARSE(-EPROTO, h2_req_err_pseudo_unknown, BASE, F(":status", "200"));
	PARSE(-EPROTO, h2_req_err_pseudo_unknown, BASE,
	      F(":protocol", "websocket"));
	PARSE(-EPROTO, h2_req_err_pseudo_missing, F(":scheme", "https"),
	      F(":path", "/"), F(":authority", "a"));
	PARSE(-EPROTO, h2_req_err_pseudo_missing, F(":method", "GET"),
	      F(":scheme", "https"), F(":authority", "a"));
	PARSE(-EPROTO, h2_req_err_pseudo_missing, F(":method", "GET"),
	      F(":path", "/"), F(":authority", "a"));
	PARSE(-EPROTO, h2_req_err_scheme, F(":method", "GET"),
	      F(":scheme", "ftp"), F(":path", "/"), F(":authority", "a"));
	PARSE(-EPROTO, h2_req_err_path, F(":method", "GET"),
	      F(":scheme", "http"), F(":path", "x"), F(":authority", "a"));
	PARSE(-EPROTO, h2_req_err_path, F(":method", "GET"),
	      F(":scheme", "http"), F(":path", "/a b"), F(":authority", "a"));
	PARSE(-EPROTO, h2_req_err_path, F(":method", "GET"),
	      F(":scheme", "http"), F(":path", "*"), F(":authority", "a"));
	PARSE(-EPROTO, h2_req_err_method, F(":method", "G T"),
	      F(":scheme", "http"), F(":path", "/"), F(":authority", "a"));
	PARSE(-EPROTO, h2_req_err_authority, F(":method", "GET"),
	      F(":scheme", "http"), F(":path", "/"), F(":authority", "u@a"));
	PARSE(-EOPNOTSUPP, h2_req_err_connect, F(":method", "CONNECT"),
	      F(":authority", "a:443"));
}

static void test_req_fields(void **state)
{
	PARSE(-EPROTO, h2_req_err_uppercase, BASE, F("Accept", "*/*"));
	PARSE(-EPROTO, h2_req_err_name, BASE, F("a b", "1"));
	PARSE(-EPROTO, h2_req_err_name, BASE, F("", "1"));
	PARSE(-EPROTO, h2_req_err_conn_specific, BASE, F("connection", "x"));
	PARSE(-EPROTO, h2_req_err_conn_specific, BASE, F("keep-alive", "1"));
	PARSE(-EPROTO, h2_req_err_conn_specific, BASE,
	      F("proxy-connection", "x"));
	PARSE(-EPROTO, h2_req_err_conn_specific, BASE,
	      F("transfer-encoding", "chunked"));
	PARSE(-EPROTO, h2_req_err_conn_specific, BASE, F("upgrade", "h2c"));
	PARSE(-EPROTO, h2_req_err_te, BASE, F("te", "gzip"));
	PARSE(-EPROTO, h2_req_err_value, BASE, F("x", "a\r\nb: c"));
	PARSE(-EPROTO, h2_req_err_value, BASE, F("x", "a\nb"));
	PARSE(-EPROTO, h2_req_err_value, BASE, F("x", " a"));
	PARSE(-EPROTO, h2_req_err_value, F(":method", "GET"),
	      F(":scheme", "http"), F(":path", "/\r\n"), F(":authority", "a"));
	{
		const h2_field f[] = {BASE, {{"x", 1}, {"a\0b", 3}}};
		const char *w;
		assert_int_equal(parse(f, 5, &w), -EPROTO);
		assert_ptr_equal(w, h2_req_err_value);
	}
	PARSE(-EPROTO, h2_req_err_content_length, BASE,
	      F("content-length", "1x"));
	PARSE(-EPROTO, h2_req_err_content_length, BASE,
	      F("content-length", "-1"));
	PARSE(-EPROTO, h2_req_err_content_length, BASE,
	      F("content-length", "0"), F("content-length", "1"));
	/* END_STREAM on HEADERS but content-length says a body follows */
	PARSE(-EPROTO, h2_req_err_length_mismatch, BASE,
	      F("content-length", "5"));
	PARSE(-EPROTO, h2_req_err_host, BASE, F("host", "other.com"));
	PARSE(-EPROTO, h2_req_err_host, F(":method", "GET"),
	      F(":scheme", "http"), F(":path", "/"));
	PARSE(-EPROTO, h2_req_err_host, F(":method", "GET"),
	      F(":scheme", "http"), F(":path", "/"), F("host", "a"),
	      F("host", "a"));
	PARSE(0, NULL, BASE, F("host", "EXAMPLE.com"));
}

static void test_req_length(void **state)
{
	const h2_field f[] = {BASE, F("content-length", "5")};
	h2_req r;
	const char *w;
	assert_int_equal(h2_req_parse(f, 5, false, &r, &w), 0);
	assert_int_equal(r.content_length, 5);
	assert_int_equal(h2_req_check_length(&r, 3, false), 0);
	assert_int_equal(h2_req_check_length(&r, 3, true), -EPROTO);
	assert_int_equal(h2_req_check_length(&r, 6, false), -EPROTO);
	assert_int_equal(h2_req_check_length(&r, 5, true), 0);
}

static void test_req_to_h1(void **state)
{
	const h2_field f[] = {F(":method", "POST"),
			      F(":scheme", "https"),
			      F(":authority", "example.com"),
			      F(":path", "/up?a=1"),
			      F("cookie", "a=1"),
			      F("accept", "*/*"),
			      F("cookie", "b=2"),
			      F("te", "trailers"),
			      F("cookie", "c=3")};
	h2_req r;
	const char *w;
	char buf[512];
	bool chunked;
	assert_int_equal(h2_req_parse(f, 9, false, &r, &w), 0);
	int n = h2_req_to_h1(&r, buf, sizeof(buf), &chunked);
	assert_true(n > 0);
	buf[n] = 0;
	assert_string_equal(buf, "POST /up?a=1 HTTP/1.1\r\n"
				 "host: example.com\r\n"
				 "cookie: a=1; b=2; c=3\r\n"
				 "accept: */*\r\n"
				 "transfer-encoding: chunked\r\n\r\n");
	assert_true(chunked);
	assert_int_equal(h2_req_to_h1(&r, buf, 20, &chunked), -ENOSPC);

	const h2_field g[] = {BASE, F("content-length", "3")};
	assert_int_equal(h2_req_parse(g, 5, false, &r, &w), 0);
	n = h2_req_to_h1(&r, buf, sizeof(buf), &chunked);
	buf[n] = 0;
	assert_false(chunked);
	assert_string_equal(buf, "GET /x HTTP/1.1\r\nhost: example.com\r\n"
				 "content-length: 3\r\n\r\n");
}

static void test_req_trailer_ok(void **state)
{
	(void)state;
	static const char *const ok[] = {
	    "x-checksum",
	    "grpc-status",
	    "server-timing",
	    "digest",
	    "if",
	    "x_some_rather_long_trailer_name_here"};
	static const char *const no[] = {
	    "content-length", "transfer-encoding", "host", "te", "trailer",
	    "connection", "upgrade", "authorization", "cookie", "if-none-match",
	    "if-match", "proxy-authorization", "x-forwarded-for",
	    "x-forwarded-proto", "forwarded", "x-real-ip", "content-type",
	    "expect", "range", "Content-Length", "bad name", "",
	    /* CGI, WSGI and FastCGI origins read '_' as '-' (px_head.c
	     * drops these in the head too) */
	    "x_forwarded_for", "X_Forwarded-Proto", "x_real_ip",
	    "content_length", "proxy_authorization", "if_none_match",
	    "x_forwarded_a_rather_long_name_of_forty"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_true(h2_req_trailer_ok((h2_str){ok[i], strlen(ok[i])}));
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(h2_req_trailer_ok((h2_str){no[i], strlen(no[i])}));
}

static void test_resp_fields(void **state)
{
	const h2_field in[] = {F("Content-Type", "text/plain"),
			       F("Connection", "keep-alive, X-Secret"),
			       F("Keep-Alive", "timeout=5"),
			       F("Transfer-Encoding", "chunked"),
			       F("X-Secret", "1"),
			       F("Upgrade", "h2c"),
			       F("Proxy-Connection", "x"),
			       F("TE", "trailers"),
			       F("Set-Cookie", "a=1")};
	h2_field out[9];
	char names[256];
	int n = h2_resp_fields(in, 9, out, 9, names, sizeof(names));
	assert_int_equal(n, 2);
	assert_memory_equal(out[0].name.p, "content-type", 12);
	assert_memory_equal(out[1].name.p, "set-cookie", 10);
	assert_int_equal(h2_resp_fields(in, 9, out, 1, names, sizeof(names)),
			 -ENOSPC);
}

/* ---- h2_session driven with raw frames ---- */

typedef struct frame {
	uint8_t type, flags;
	int32_t sid;
	uint32_t len;
	uint8_t payload[64];
} frame;

typedef struct app {
	h2_session *s;
	uint64_t t;
	int requests, ends, closes, ntrailers;
	uint32_t last_close;
	int refused, last_refused; /* on_refused: count, last status */
	char path[64];
	size_t body;
	char trailer[64];
	/* response body source */
	const char *resp;
	size_t resp_len, resp_off;
	bool resp_wait, resp_eof;
	/* client side */
	nghttp2_hd_deflater *def;
	nghttp2_hd_inflater *inf;
	frame out[512];
	size_t nout;
	char status[8];
} app;

static uint64_t clock_cb(void *ud)
{
	return ((app *)ud)->t;
}

static int on_request(void *ud, int32_t sid, const h2_req *r, void **sud)
{
	app *a = ud;
	a->requests++;
	snprintf(a->path, sizeof(a->path), "%.*s", (int)r->path.len, r->path.p);
	*sud = a;
	return 0;
}

static int on_data(void *ud, int32_t sid, void *sud, const uint8_t *p,
		   size_t len)
{
	((app *)ud)->body += len;
	return 0;
}

static int on_end(void *ud, int32_t sid, void *sud, const h2_field *t, size_t n)
{
	app *a = ud;
	a->ends++;
	a->ntrailers = (int)n;
	if (n)
		snprintf(a->trailer, sizeof(a->trailer), "%.*s=%.*s",
			 (int)t[0].name.len, t[0].name.p, (int)t[0].value.len,
			 t[0].value.p);
	return 0;
}

static void on_close(void *ud, int32_t sid, void *sud, uint32_t code)
{
	app *a = ud;
	a->closes++;
	a->last_close = code;
}

static void on_refused(void *ud, int status)
{
	app *a = ud;
	a->refused++;
	a->last_refused = status;
}

static ssize_t read_body(void *ud, int32_t sid, void *sud, uint8_t *buf,
			 size_t len, bool *eof)
{
	app *a = ud;
	size_t n = a->resp_len - a->resp_off;
	if (!n && a->resp_wait)
		return H2_DEFERRED;
	if (n > len)
		n = len;
	memcpy(buf, a->resp + a->resp_off, n);
	a->resp_off += n;
	*eof = a->resp_off == a->resp_len && a->resp_eof;
	if (!n && !*eof)
		return H2_DEFERRED;
	return (ssize_t)n;
}

static const h2_callbacks cbs = {.on_request = on_request,
				 .on_data = on_data,
				 .on_request_end = on_end,
				 .on_close = on_close,
				 .on_refused = on_refused,
				 .read_body = read_body,
				 .now_ms = clock_cb};

static app *app_new(const h2_settings *st)
{
	app *a = calloc(1, sizeof(*a));
	a->t = 1000;
	a->resp_eof = true;
	assert_int_equal(h2_session_new(st, &cbs, a, &a->s), 0);
	assert_int_equal(nghttp2_hd_deflate_new(&a->def, 4096), 0);
	assert_int_equal(nghttp2_hd_inflate_new(&a->inf), 0);
	return a;
}

static void app_free(app *a)
{
	h2_session_free(a->s);
	nghttp2_hd_deflate_del(a->def);
	nghttp2_hd_inflate_del(a->inf);
	free(a);
}

static ssize_t feed(app *a, const void *p, size_t len)
{
	return h2_session_recv(a->s, p, len);
}

static size_t frame_hdr(uint8_t *o, size_t len, uint8_t type, uint8_t flags,
			int32_t sid)
{
	o[0] = (uint8_t)(len >> 16);
	o[1] = (uint8_t)(len >> 8);
	o[2] = (uint8_t)len;
	o[3] = type;
	o[4] = flags;
	o[5] = (uint8_t)(sid >> 24);
	o[6] = (uint8_t)(sid >> 16);
	o[7] = (uint8_t)(sid >> 8);
	o[8] = (uint8_t)sid;
	return 9;
}

static ssize_t send_frame(app *a, uint8_t type, uint8_t flags, int32_t sid,
			  const void *pl, size_t len)
{
	uint8_t *b = malloc(9 + len);
	frame_hdr(b, len, type, flags, sid);
	if (len)
		memcpy(b + 9, pl, len);
	ssize_t rc = feed(a, b, 9 + len);
	free(b);
	return rc;
}

/* Drain the server's output into a->out (frames after its SETTINGS). */
static void drain(app *a)
{
	static uint8_t buf[1 << 20];
	size_t len = 0;
	ssize_t n;
	while ((n = h2_session_send(a->s, buf + len, 1000)) > 0)
		len += (size_t)n;
	assert_true(n >= 0);
	for (size_t off = 0; off + 9 <= len;) {
		frame *f = &a->out[a->nout++ % 512];
		f->len = (uint32_t)(buf[off] << 16 | buf[off + 1] << 8 |
				    buf[off + 2]);
		f->type = buf[off + 3];
		f->flags = buf[off + 4];
		f->sid = (int32_t)((uint32_t)(buf[off + 5] & 0x7f) << 24 |
				   (uint32_t)buf[off + 6] << 16 |
				   (uint32_t)buf[off + 7] << 8 | buf[off + 8]);
		memcpy(f->payload, buf + off + 9, f->len < 64 ? f->len : 64);
		if (f->type == NGHTTP2_HEADERS) {
			/* decode to keep the inflater in sync; keep :status */
			const uint8_t *in = buf + off + 9;
			size_t inlen = f->len;
			for (;;) {
				nghttp2_nv nv;
				int fl = 0;
				ssize_t r = nghttp2_hd_inflate_hd2(
				    a->inf, &nv, &fl, in, inlen, 1);
				assert_true(r >= 0);
				in += r;
				inlen -= (size_t)r;
				if (fl & NGHTTP2_HD_INFLATE_EMIT &&
				    nv.namelen == 7 &&
				    !memcmp(nv.name, ":status", 7))
					snprintf(a->status, sizeof(a->status),
						 "%.*s", (int)nv.valuelen,
						 nv.value);
				if (fl & NGHTTP2_HD_INFLATE_FINAL) {
					nghttp2_hd_inflate_end_headers(a->inf);
					break;
				}
				if (!r && !inlen)
					break;
			}
		}
		off += 9 + f->len;
	}
}

static frame *find(app *a, uint8_t type, int32_t sid)
{
	for (size_t i = 0; i < a->nout && i < 512; i++)
		if (a->out[i].type == type && (sid < 0 || a->out[i].sid == sid))
			return &a->out[i];
	return NULL;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint32_t goaway_code(app *a)
{
	frame *f = find(a, NGHTTP2_GOAWAY, 0);
	assert_non_null(f);
	return be32(f->payload + 4);
}

static void preface(app *a, const nghttp2_settings_entry *iv, size_t n)
{
	static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	uint8_t pl[64];
	assert_int_equal(feed(a, magic, 24), 24);
	for (size_t i = 0; i < n; i++) {
		pl[i * 6] = 0;
		pl[i * 6 + 1] = (uint8_t)iv[i].settings_id;
		pl[i * 6 + 2] = (uint8_t)(iv[i].value >> 24);
		pl[i * 6 + 3] = (uint8_t)(iv[i].value >> 16);
		pl[i * 6 + 4] = (uint8_t)(iv[i].value >> 8);
		pl[i * 6 + 5] = (uint8_t)iv[i].value;
	}
	assert_true(send_frame(a, NGHTTP2_SETTINGS, 0, 0, pl, n * 6) >= 0);
	drain(a);
	/* ACK the server's SETTINGS */
	assert_true(
	    send_frame(a, NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, NULL, 0) >= 0);
	drain(a);
	a->nout = 0;
}

#define NV(n, v)                                                               \
	{                                                                      \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,  \
		    0                                                          \
	}

static ssize_t send_headers(app *a, int32_t sid, const nghttp2_nv *nv, size_t n,
			    uint8_t flags)
{
	uint8_t blk[4096];
	ssize_t len = nghttp2_hd_deflate_hd(a->def, blk, sizeof(blk), nv, n);
	assert_true(len > 0);
	return send_frame(a, NGHTTP2_HEADERS,
			  (uint8_t)(flags | NGHTTP2_FLAG_END_HEADERS), sid, blk,
			  (size_t)len);
}

static ssize_t get_req(app *a, int32_t sid, bool end)
{
	const nghttp2_nv nv[] = {NV(":method", "GET"), NV(":scheme", "https"),
				 NV(":authority", "example.com"),
				 NV(":path", "/hello")};
	return send_headers(a, sid, nv, 4, end ? NGHTTP2_FLAG_END_STREAM : 0);
}

static void test_session_get(void **state)
{
	app *a = app_new(NULL);
	preface(a, NULL, 0);
	assert_true(get_req(a, 1, true) > 0);
	assert_int_equal(a->requests, 1);
	assert_int_equal(a->ends, 1);
	assert_string_equal(a->path, "/hello");

	/* response with a deferred body, then trailers */
	a->resp = "hello world";
	a->resp_len = 5;
	a->resp_wait = true;
	a->resp_eof = false;
	const h2_field hf[] = {F("content-type", "text/plain")};
	assert_int_equal(h2_session_respond(a->s, 1, 200, hf, 1, true), 0);
	drain(a);
	assert_string_equal(a->status, "200");
	frame *d = find(a, NGHTTP2_DATA, 1);
	assert_non_null(d);
	assert_int_equal(d->len, 5);
	assert_false(d->flags & NGHTTP2_FLAG_END_STREAM);
	size_t before = a->nout;
	drain(a);
	assert_int_equal(a->nout, before); /* deferred: nothing more */

	const h2_field tf[] = {F("x-checksum", "abc")};
	assert_int_equal(h2_session_trailers(a->s, 1, tf, 1), 0);
	a->resp_len = 11;
	a->resp_eof = true;
	a->nout = 0;
	assert_int_equal(h2_session_resume(a->s, 1), 0);
	drain(a);
	d = find(a, NGHTTP2_DATA, 1);
	assert_non_null(d);
	assert_int_equal(d->len, 6);
	assert_memory_equal(d->payload, " world", 6);
	frame *t = find(a, NGHTTP2_HEADERS, 1);
	assert_non_null(t);
	assert_true(t->flags & NGHTTP2_FLAG_END_STREAM);
	assert_int_equal(a->closes, 1);
	assert_int_equal(a->last_close, 0);
	assert_int_equal(h2_session_streams(a->s), 0);
	app_free(a);
}

/* A response head nghttp2 cannot send (its header block bound is 64 KiB;
 * an HTTP/1.1 origin may send more when edge.limits allow it) resets the
 * stream: the client is not left waiting for a head that never comes. */
static void test_session_head_too_big_resets(void **state)
{
	app *a = app_new(NULL);
	preface(a, NULL, 0);
	assert_true(get_req(a, 1, true) > 0);
	static char big[1000];
	memset(big, 'v', sizeof(big));
	h2_field hf[80];
	for (size_t i = 0; i < 80; i++)
		hf[i] = (h2_field){{"x-big", 5}, {big, sizeof(big)}};
	/* an interim head too big is skipped, not fatal */
	assert_int_equal(h2_session_interim(a->s, 1, 103, hf, 80), 0);
	drain(a);
	assert_null(find(a, NGHTTP2_RST_STREAM, 1));
	assert_int_equal(h2_session_streams(a->s), 1);
	a->resp = "ok";
	a->resp_len = 2;
	assert_int_equal(h2_session_respond(a->s, 1, 200, hf, 80, true), 0);
	drain(a);
	assert_null(find(a, NGHTTP2_HEADERS, 1));
	frame *r = find(a, NGHTTP2_RST_STREAM, 1);
	assert_non_null(r);
	assert_int_equal(be32(r->payload), NGHTTP2_INTERNAL_ERROR);
	assert_int_equal(a->closes, 1);
	assert_int_equal(a->last_close, NGHTTP2_INTERNAL_ERROR);
	assert_int_equal(h2_session_streams(a->s), 0);
	/* the connection goes on */
	assert_null(find(a, NGHTTP2_GOAWAY, 0));
	assert_true(get_req(a, 3, true) > 0);
	a->resp_off = 0;
	assert_int_equal(h2_session_respond(a->s, 3, 200, hf, 1, true), 0);
	drain(a);
	assert_non_null(find(a, NGHTTP2_HEADERS, 3));
	assert_non_null(find(a, NGHTTP2_DATA, 3));
	app_free(a);
}

static void test_session_body_flow(void **state)
{
	h2_settings st;
	h2_settings_default(&st);
	st.initial_window = 65535;
	app *a = app_new(&st);
	preface(a, NULL, 0);
	const nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "https"),
				 NV(":authority", "example.com"),
				 NV(":path", "/up")};
	assert_true(send_headers(a, 1, nv, 4, 0) > 0);
	assert_int_equal(a->requests, 1);
	static uint8_t chunk[16384];
	for (int i = 0; i < 3; i++)
		assert_true(send_frame(a, NGHTTP2_DATA, 0, 1, chunk,
				       sizeof(chunk)) > 0);
	assert_int_equal(a->body, 3 * 16384);
	drain(a);
	/* not consumed yet: no window opened */
	assert_null(find(a, NGHTTP2_WINDOW_UPDATE, -1));
	assert_int_equal(h2_session_consume(a->s, 1, 3 * 16384), 0);
	drain(a);
	/* the stream window reopened; the connection's (1 MiB) reopens
	 * once half of it is consumed */
	assert_non_null(find(a, NGHTTP2_WINDOW_UPDATE, 1));
	/* trailers end the request */
	const nghttp2_nv tr[] = {NV("x-sum", "42")};
	assert_true(send_headers(a, 1, tr, 1, NGHTTP2_FLAG_END_STREAM) > 0);
	assert_int_equal(a->ends, 1);
	assert_int_equal(a->ntrailers, 1);
	assert_string_equal(a->trailer, "x-sum=42");
	app_free(a);
}

/* The connection's window as reopened by WINDOW_UPDATEs seen so far. */
static uint32_t conn_updates(app *a)
{
	uint32_t n = 0;
	for (size_t i = 0; i < a->nout && i < 512; i++)
		if (a->out[i].type == NGHTTP2_WINDOW_UPDATE &&
		    a->out[i].sid == 0)
			n += be32(a->out[i].payload) & 0x7fffffff;
	return n;
}

/* Two streams whose bytes are never consumed (an origin that does not
 * read) must not shut the connection window for a third: it is reopened
 * as DATA arrives, up to conn_reopen_max held bytes. */
static void fill_two_streams(app *a, const nghttp2_nv *nv)
{
	static uint8_t chunk[16384];
	for (int32_t sid = 1; sid <= 3; sid += 2) {
		assert_true(send_headers(a, sid, nv, 4, 0) > 0);
		for (size_t left = 65535; left;) {
			size_t k = left < sizeof(chunk) ? left : sizeof(chunk);
			assert_true(
			    send_frame(a, NGHTTP2_DATA, 0, sid, chunk, k) > 0);
			left -= k;
		}
	}
	drain(a);
}

static void test_session_conn_window_not_shut(void **state)
{
	static uint8_t chunk[16384];
	const nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "https"),
				 NV(":authority", "example.com"),
				 NV(":path", "/up")};
	h2_settings st;
	h2_settings_default(&st);
	st.initial_window = 65535;
	st.conn_window = 131072;
	app *a = app_new(&st);
	preface(a, NULL, 0);
	fill_two_streams(a, nv);
	/* held 131070 bytes, none consumed: the connection window is open */
	assert_int_equal(a->body, 131070);
	assert_null(find(a, NGHTTP2_WINDOW_UPDATE, 1));
	assert_true(conn_updates(a) >= 65536);
	assert_true(send_headers(a, 5, nv, 4, 0) > 0);
	assert_true(send_frame(a, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 5,
			       chunk, sizeof(chunk)) > 0);
	assert_int_equal(a->body, 131070 + 16384);
	assert_int_equal(a->ends, 1);
	app_free(a);

	/* Over the budget the connection window waits for the consume. */
	st.conn_reopen_max = 0;
	a = app_new(&st);
	preface(a, NULL, 0);
	fill_two_streams(a, nv);
	assert_int_equal(conn_updates(a), 0);
	assert_true(send_headers(a, 5, nv, 4, 0) > 0);
	(void)send_frame(a, NGHTTP2_DATA, 0, 5, chunk, sizeof(chunk));
	drain(a);
	assert_int_equal(a->body, 131070); /* over the window: refused */
	assert_int_equal(goaway_code(a), NGHTTP2_FLOW_CONTROL_ERROR);
	app_free(a);

	st.conn_reopen_max = 65536 + 16384;
	a = app_new(&st);
	preface(a, NULL, 0);
	fill_two_streams(a, nv);
	/* the bytes within the budget reopened it, the rest (the last 49151
	 * of stream 3) wait for the consume */
	assert_int_equal(conn_updates(a), 65535 + 16384);
	app_free(a);
}

static void test_session_malformed(void **state)
{
	app *a = app_new(NULL);
	preface(a, NULL, 0);
	/* content-length 10 but 4 bytes then END_STREAM */
	const nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "https"),
				 NV(":authority", "example.com"),
				 NV(":path", "/"), NV("content-length", "10")};
	assert_true(send_headers(a, 1, nv, 5, 0) > 0);
	assert_true(send_frame(a, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 1,
			       "abcd", 4) >= 0);
	drain(a);
	frame *r = find(a, NGHTTP2_RST_STREAM, 1);
	assert_non_null(r);
	assert_int_equal(be32(r->payload), NGHTTP2_PROTOCOL_ERROR);
	assert_int_equal(a->ends, 0);
	/* delivered, then reset: the caller's on_close, not a refusal */
	assert_int_equal(a->refused, 0);
	/* CONNECT -> 405 */
	const nghttp2_nv c[] = {NV(":method", "CONNECT"),
				NV(":authority", "example.com:443")};
	assert_true(send_headers(a, 3, c, 2, NGHTTP2_FLAG_END_STREAM) > 0);
	drain(a);
	assert_string_equal(a->status, "405");
	assert_int_equal(a->refused, 1);
	assert_int_equal(a->last_refused, 405);
	/* connection-specific field: never reaches the caller */
	const nghttp2_nv t[] = {NV(":method", "GET"), NV(":scheme", "https"),
				NV(":authority", "example.com"),
				NV(":path", "/"),
				NV("transfer-encoding", "chunked")};
	assert_true(send_headers(a, 5, t, 5, NGHTTP2_FLAG_END_STREAM) > 0);
	drain(a);
	assert_non_null(find(a, NGHTTP2_RST_STREAM, 5));
	assert_int_equal(a->requests, 1);
	assert_int_equal(a->refused, 2); /* refused by nghttp2: a 400 */
	assert_int_equal(a->last_refused, 400);
	app_free(a);
}

static void test_attack_rapid_reset(void **state)
{
	h2_settings st;
	h2_settings_default(&st);
	st.max_resets = 10;
	app *a = app_new(&st);
	preface(a, NULL, 0);
	uint8_t cancel[4] = {0, 0, 0, NGHTTP2_CANCEL};
	int32_t sid = 1;
	for (int i = 0; i < 10; i++, sid += 2) {
		assert_true(get_req(a, sid, true) > 0);
		assert_true(
		    send_frame(a, NGHTTP2_RST_STREAM, 0, sid, cancel, 4) > 0);
	}
	drain(a);
	assert_null(find(a, NGHTTP2_GOAWAY, 0));
	/* a new window starts the count again */
	a->t += st.flood_window_ms;
	for (int i = 0; i < 11; i++, sid += 2) {
		get_req(a, sid, true);
		send_frame(a, NGHTTP2_RST_STREAM, 0, sid, cancel, 4);
	}
	drain(a);
	assert_int_equal(goaway_code(a), NGHTTP2_ENHANCE_YOUR_CALM);
	assert_string_equal(h2_session_error(a->s), "rapid reset");
	assert_int_equal(h2_session_error_kind(a->s), H2_ERR_RAPID_RESET);
	app_free(a);
}

/* MadeYouReset (CVE-2025-8671): streams the client makes us reset after
 * their request was delivered count with its own resets; the caller's
 * resets (an origin that failed) do not. */
static void test_attack_provoked_reset(void **state)
{
	h2_settings st;
	h2_settings_default(&st);
	st.max_resets = 10;
	app *a = app_new(&st);
	preface(a, NULL, 0);
	uint8_t inc[4] = {0x7f, 0xff, 0xff, 0xff}; /* overflows the window */
	int32_t sid = 1;
	for (int i = 0; i < 20; i++, sid += 2) {
		assert_true(get_req(a, sid, true) > 0);
		assert_int_equal(h2_session_rst(a->s, sid, H2_INTERNAL_ERROR),
				 0);
		drain(a);
	}
	for (int i = 0; i < 10; i++, sid += 2) {
		assert_true(get_req(a, sid, true) > 0);
		assert_true(
		    send_frame(a, NGHTTP2_WINDOW_UPDATE, 0, sid, inc, 4) > 0);
		drain(a);
	}
	assert_int_equal(a->closes, 30);
	assert_int_equal(a->last_close, NGHTTP2_FLOW_CONTROL_ERROR);
	assert_null(find(a, NGHTTP2_GOAWAY, 0));
	assert_true(get_req(a, sid, true) > 0);
	send_frame(a, NGHTTP2_WINDOW_UPDATE, 0, sid, inc, 4);
	drain(a);
	assert_int_equal(goaway_code(a), NGHTTP2_ENHANCE_YOUR_CALM);
	assert_int_equal(h2_session_error_kind(a->s), H2_ERR_RAPID_RESET);
	app_free(a);
}

static void test_attack_continuation(void **state)
{
	app *a = app_new(NULL);
	preface(a, NULL, 0);
	/* HEADERS without END_HEADERS, then many small CONTINUATIONs */
	uint8_t blk[8] = {0x82, 0x87, 0x84}; /* GET https / */
	assert_true(send_frame(a, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1,
			       blk, 3) > 0);
	uint8_t lit[8] = {0x00, 0x01, 'a', 0x01, 'b'};
	ssize_t rc = 0;
	for (int i = 0; i < 20 && rc >= 0; i++)
		rc = send_frame(a, NGHTTP2_CONTINUATION, 0, 1, lit, 5);
	assert_true(rc < 0);
	drain(a);
	assert_int_equal(goaway_code(a), NGHTTP2_ENHANCE_YOUR_CALM);
	assert_int_equal(a->requests, 0);
	app_free(a);
}

/* Append an HPACK integer with an n-bit prefix. */
static size_t hpack_int(uint8_t *o, uint8_t first, int nbits, size_t v)
{
	size_t max = (1u << nbits) - 1, k = 0;
	if (v < max) {
		o[0] = (uint8_t)(first | v);
		return 1;
	}
	o[k++] = (uint8_t)(first | max);
	v -= max;
	while (v >= 128) {
		o[k++] = (uint8_t)(v % 128 + 128);
		v /= 128;
	}
	o[k++] = (uint8_t)v;
	return k;
}

static void test_attack_hpack_bomb(void **state)
{
	app *a = app_new(NULL);
	preface(a, NULL, 0);
	/* one 4000-byte field into the dynamic table, then 1000 one-byte
	 * references to it: 4 MB decoded from 5 KB */
	static uint8_t blk[8192];
	size_t n = 0;
	blk[n++] = 0x82; /* :method GET */
	blk[n++] = 0x87; /* :scheme https */
	blk[n++] = 0x84; /* :path / */
	blk[n++] = 0x41; /* :authority, literal value */
	blk[n++] = 1;
	blk[n++] = 'a';
	blk[n++] = 0x40; /* literal with incremental indexing, new name */
	blk[n++] = 1;
	blk[n++] = 'x';
	n += hpack_int(blk + n, 0, 7, 4000);
	memset(blk + n, 'y', 4000);
	n += 4000;
	for (int i = 0; i < 1000; i++)
		blk[n++] = 0x80 | 62; /* indexed: the field above */
	assert_true(
	    send_frame(a, NGHTTP2_HEADERS,
		       NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1,
		       blk, n) > 0);
	drain(a);
	assert_int_equal(a->requests, 0);
	assert_string_equal(a->status, "431");
	assert_int_equal(a->refused, 1);
	assert_int_equal(a->last_refused, 431);
	/* the connection survives: a normal request still works, as the
	 * dynamic table stayed in sync */
	uint8_t ok[] = {0x82, 0x87, 0x84, 0x41, 1, 'a'};
	assert_true(
	    send_frame(a, NGHTTP2_HEADERS,
		       NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 3,
		       ok, sizeof(ok)) > 0);
	assert_int_equal(a->requests, 1);

	/* a table size update above our SETTINGS_HEADER_TABLE_SIZE is a
	 * COMPRESSION_ERROR */
	uint8_t big[16];
	size_t k = hpack_int(big, 0x20, 5, 1u << 20);
	big[k++] = 0x82;
	big[k++] = 0x87;
	big[k++] = 0x84;
	a->nout = 0;
	send_frame(a, NGHTTP2_HEADERS,
		   NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 5, big,
		   k);
	drain(a);
	assert_int_equal(goaway_code(a), NGHTTP2_COMPRESSION_ERROR);
	app_free(a);
}

static void test_attack_ping_settings_flood(void **state)
{
	h2_settings st;
	h2_settings_default(&st);
	st.max_pings = 5;
	st.max_settings = 5;
	app *a = app_new(&st);
	preface(a, NULL, 0);
	uint8_t op[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	for (int i = 0; i < 5; i++)
		assert_true(send_frame(a, NGHTTP2_PING, 0, 0, op, 8) > 0);
	drain(a);
	assert_non_null(find(a, NGHTTP2_PING, 0));
	assert_null(find(a, NGHTTP2_GOAWAY, 0));
	assert_true(send_frame(a, NGHTTP2_PING, 0, 0, op, 8) < 0);
	drain(a);
	assert_int_equal(goaway_code(a), NGHTTP2_ENHANCE_YOUR_CALM);
	assert_string_equal(h2_session_error(a->s), "PING flood");
	assert_int_equal(h2_session_error_kind(a->s), H2_ERR_FLOOD);
	app_free(a);

	a = app_new(&st);
	preface(a, NULL, 0); /* the preface SETTINGS counts as one */
	for (int i = 0; i < 4; i++)
		assert_true(send_frame(a, NGHTTP2_SETTINGS, 0, 0, NULL, 0) >=
			    0);
	assert_true(send_frame(a, NGHTTP2_SETTINGS, 0, 0, NULL, 0) < 0);
	drain(a);
	assert_int_equal(goaway_code(a), NGHTTP2_ENHANCE_YOUR_CALM);
	app_free(a);

	/* a client that never reads its ACKs: max_outbound_ack */
	h2_settings_default(&st);
	st.max_pings = 100000;
	st.max_outbound_ack = 10;
	a = app_new(&st);
	preface(a, NULL, 0);
	ssize_t rc = 0;
	for (int i = 0; i < 20 && rc >= 0; i++)
		rc = send_frame(a, NGHTTP2_PING, 0, 0, op, 8);
	assert_true(rc < 0);
	app_free(a);
}

static void test_attack_zero_window(void **state)
{
	app *a = app_new(NULL);
	const nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0}};
	preface(a, iv, 1);
	assert_true(get_req(a, 1, true) > 0);
	a->resp = "0123456789";
	a->resp_len = 10;
	assert_int_equal(h2_session_respond(a->s, 1, 200, NULL, 0, true), 0);
	drain(a);
	assert_null(find(a, NGHTTP2_DATA, 1));
	int32_t sid = -1;
	/* stalled from now: at least 1 ms, so a deadline is armed at once */
	assert_int_equal(h2_session_stalled_stream(a->s, &sid), 1);
	a->t += 5000;
	/* the stream's window is shut, the connection's open: the stream
	 * stalls, not the connection */
	assert_int_equal(h2_session_stalled_stream(a->s, &sid), 5000);
	assert_int_equal(sid, 1);
	assert_int_equal(h2_session_stalled_ms(a->s), 0);
	/* the client opens its window: data flows, the stall ends */
	uint8_t inc[4] = {0, 0, 0, 100};
	assert_true(send_frame(a, NGHTTP2_WINDOW_UPDATE, 0, 1, inc, 4) > 0);
	drain(a);
	assert_non_null(find(a, NGHTTP2_DATA, 1));
	assert_int_equal(h2_session_stalled_stream(a->s, &sid), 0);
	assert_int_equal(h2_session_stalled_ms(a->s), 0);
	app_free(a);
}

static void test_attack_concurrent_streams(void **state)
{
	static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	h2_settings st;
	h2_settings_default(&st);
	st.max_concurrent_streams = 3;
	/* before the client ACKed our SETTINGS: REFUSED_STREAM (it may not
	 * have seen the limit yet), the connection lives on */
	app *a = app_new(&st);
	assert_int_equal(feed(a, magic, 24), 24);
	assert_true(send_frame(a, NGHTTP2_SETTINGS, 0, 0, NULL, 0) >= 0);
	for (int32_t sid = 1; sid <= 5; sid += 2)
		assert_true(get_req(a, sid, false) > 0);
	assert_int_equal(a->requests, 3);
	assert_true(get_req(a, 7, false) > 0);
	drain(a);
	frame *r = find(a, NGHTTP2_RST_STREAM, 7);
	assert_non_null(r);
	assert_int_equal(be32(r->payload), NGHTTP2_REFUSED_STREAM);
	assert_null(find(a, NGHTTP2_GOAWAY, 0));
	assert_int_equal(a->requests, 3);
	app_free(a);

	/* after the ACK the client knowingly broke the limit: nghttp2 makes
	 * it a connection error (GOAWAY PROTOCOL_ERROR) */
	a = app_new(&st);
	preface(a, NULL, 0);
	for (int32_t sid = 1; sid <= 5; sid += 2)
		assert_true(get_req(a, sid, false) > 0);
	get_req(a, 7, false);
	drain(a);
	assert_int_equal(a->requests, 3);
	assert_int_equal(goaway_code(a), NGHTTP2_PROTOCOL_ERROR);
	app_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_req_ok),
	    cmocka_unit_test(test_req_pseudo),
	    cmocka_unit_test(test_req_fields),
	    cmocka_unit_test(test_req_length),
	    cmocka_unit_test(test_req_to_h1),
	    cmocka_unit_test(test_resp_fields),
	    cmocka_unit_test(test_req_trailer_ok),
	    cmocka_unit_test(test_session_get),
	    cmocka_unit_test(test_session_head_too_big_resets),
	    cmocka_unit_test(test_session_body_flow),
	    cmocka_unit_test(test_session_conn_window_not_shut),
	    cmocka_unit_test(test_session_malformed),
	    cmocka_unit_test(test_attack_rapid_reset),
	    cmocka_unit_test(test_attack_provoked_reset),
	    cmocka_unit_test(test_attack_continuation),
	    cmocka_unit_test(test_attack_hpack_bomb),
	    cmocka_unit_test(test_attack_ping_settings_flood),
	    cmocka_unit_test(test_attack_zero_window),
	    cmocka_unit_test(test_attack_concurrent_streams),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
