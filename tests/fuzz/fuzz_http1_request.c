/* fuzz_http1_request.c - libFuzzer harness for http1_parse_request.
 *
 * Besides crashes and sanitizer reports it checks the parser's contract:
 * the head lies inside the input, every string points into the head, a
 * prefix of the input never gives a different answer (incomplete or the same
 * error), and a chunked body found after the head walks the same whichever
 * way it is split.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/http1_parse.h"

static void check_str(http_str s, const char *lo, const char *hi)
{
	if (s.len == 0)
		return;
	CHECK(s.p >= lo && s.p + s.len <= hi);
}

static uint32_t mix(const uint8_t *d, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 16777619u;
	return h;
}

static void walk_chunked(const char *p, size_t n, uint32_t h)
{
	http1_chunked a = {0}, b = {0};
	bool da = false, db = false;
	ssize_t ra = http1_chunked_feed(&a, p, n, &da);
	size_t cut = n ? h % (n + 1) : 0;
	ssize_t rb = http1_chunked_feed(&b, p, cut, &db);

	CHECK(ra <= (ssize_t)n);
	if (rb >= 0 && !db) {
		CHECK((size_t)rb == cut);
		ssize_t r2 = http1_chunked_feed(&b, p + cut, n - cut, &db);

		rb = r2 < 0 ? r2 : rb + r2;
	}
	CHECK(ra == rb && da == db);
	if (ra >= 0)
		CHECK(a.total == b.total);
	if (ra >= 0 && !da)
		CHECK((size_t)ra == n);
}

static void one(const char *buf, size_t size, const http1_limits *lim,
		uint32_t h)
{
	static http1_request req, req2;
	int rc = http1_parse_request(buf, size, lim, &req);

	CHECK(rc <= (int)size);
	CHECK(rc > HTTP1_E_LAST);
	CHECK(http1_err_reason(rc) != NULL);
	CHECK(rc == 0 ||
	      (http1_err_status(rc) >= 400 && http1_err_status(rc) <= 505));
	if (rc > 0) {
		const char *end = buf + rc;

		CHECK(req.head_len == (uint32_t)rc);
		CHECK(req.line_len <= req.head_len);
		CHECK(req.version_minor <= 1);
		CHECK(req.nheaders <= HTTP1_MAX_HEADERS);
		CHECK(req.method.len > 0 && req.target.len > 0);
		check_str(req.method, buf, end);
		check_str(req.target, buf, end);
		check_str(req.host, buf, end);
		for (uint32_t i = 0; i < req.nheaders; i++) {
			CHECK(req.headers[i].name.len > 0);
			check_str(req.headers[i].name, buf, end);
			check_str(req.headers[i].value, buf, end);
		}
		CHECK(req.body == HTTP1_BODY_NONE ||
		      req.body == HTTP1_BODY_LENGTH ||
		      req.body == HTTP1_BODY_CHUNKED);
		if (req.body != HTTP1_BODY_LENGTH)
			CHECK(req.content_length == 0);
		if (req.version_minor == 1)
			CHECK(req.host.len > 0);
		if (req.body == HTTP1_BODY_CHUNKED)
			walk_chunked(end, size - (size_t)rc, h);
		/* the helpers the proxy runs on every parsed head */
		const http1_header *f =
		    http1_find_header(req.headers, req.nheaders, "host");
		if (req.version_minor == 1)
			CHECK(f && f->value.p == req.host.p);
		for (uint32_t i = 0; i < req.nheaders; i++)
			(void)http1_is_hop_by_hop(req.headers, req.nheaders,
						  &req.headers[i]);
	}
	/* a prefix is incomplete or gives the same answer */
	size_t k = size ? h % (size + 1) : 0;
	int rk = http1_parse_request(buf, k, lim, &req2);

	if (rc > 0)
		CHECK(k < (size_t)rc ? rk == 0 : rk == rc);
	else if (rc == 0)
		CHECK(rk == 0);
	else
		CHECK(rk == 0 || rk == rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy so ASan catches any read past the end */
	char *buf = malloc(size ? size : 1);
	uint32_t h = mix(data, size);
	http1_limits small = {512, 8, 48};

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	one(buf, size, NULL, h);
	one(buf, size, &small, h >> 7);
	free(buf);
	return 0;
}
