/* fuzz_http1_chunked.c - libFuzzer harness for http1_chunked_feed.
 *
 * Feeds the input whole, split at a point derived from the input, and one
 * byte at a time (short inputs): the outcome (bytes consumed, done, data
 * total, or the error) must not depend on the split. http1_body_peek on
 * the same bytes must agree with the walker, and hand on exactly the
 * payload (checked against a decode of its own), up to its limit.
 * A whole message's trailer section, as the proxy cuts it out and
 * filters it, leaves a message that walks to the same payload.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/http1_parse.h"

struct out {
	ssize_t rc;
	bool done;
	uint64_t total;
	uint64_t present; /* payload bytes in: total - data_next */
};

/* Feed in pieces of at most step bytes, first piece first bytes. */
static struct out feed(const char *p, size_t n, size_t first, size_t step)
{
	http1_chunked c = {0};
	struct out o = {0, false, 0, 0};
	size_t off = 0;

	for (bool start = true; off < n; start = false) {
		size_t k = start ? first : step;

		if (k > n - off)
			k = n - off;
		ssize_t rc = http1_chunked_feed(&c, p + off, k, &o.done);

		if (rc < 0) {
			bool d;

			o.rc = rc;
			/* sticky */
			CHECK(http1_chunked_feed(&c, p, n, &d) == rc);
			return o;
		}
		CHECK((size_t)rc <= k);
		off += (size_t)rc;
		if (o.done)
			break;
		CHECK((size_t)rc == k);
	}
	o.rc = (ssize_t)off;
	o.total = c.total;
	o.present = c.total - http1_chunked_data_next(&c);
	return o;
}

struct sink {
	char *p;
	size_t len;
};

static void sink_put(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;
	memcpy(s->p + s->len, p, n);
	s->len += n;
}

/* The payload of a chunked body, decoded a byte at a time with the
 * walker's data_next (a different path from peek's runs). */
static size_t decode(const char *p, size_t n, char *out)
{
	http1_chunked c = {0};
	size_t len = 0;
	bool done = false;
	for (size_t i = 0; i < n && !done; i++) {
		bool data = http1_chunked_data_next(&c) > 0;
		if (http1_chunked_feed(&c, p + i, 1, &done) != 1)
			break;
		if (data)
			out[len++] = p[i];
	}
	return len;
}

static void peek_agrees(const char *p, size_t n, const struct out *a,
			uint64_t limit)
{
	struct sink s = {malloc(n ? n : 1), 0};
	char *want = malloc(n ? n : 1);
	bool complete;
	uint64_t data;
	int rc = http1_body_peek(HTTP1_BODY_CHUNKED, 0, p, n, limit, sink_put,
				 &s, &complete, &data);
	if (a->rc < 0) {
		CHECK(rc == a->rc);
	} else {
		/* total counts a chunk's declared size once its size line
		 * is in; data only the payload bytes present. */
		CHECK(rc == 0 && complete == a->done && data <= a->total);
		/* What the proxy's WAF hold reads from the walker's state. */
		CHECK(data == a->present);
		CHECK(!complete || data == a->total);
		size_t wl = decode(p, n, want);
		CHECK(wl == data);
		CHECK(s.len == (data < limit ? data : limit));
		CHECK(memcmp(s.p, want, s.len) == 0);
	}
	free(s.p);
	free(want);
}

static bool keep_odd(const char *name, size_t len)
{
	return len && ((unsigned char)name[0] ^ len) & 1;
}

static void filter_agrees(const char *p, const struct out *a)
{
	size_t n = (size_t)a->rc;
	http1_chunked c = {0};
	bool d;
	CHECK(http1_chunked_feed(&c, p, n, &d) == (ssize_t)n && d);
	uint32_t t = http1_chunked_trailer_bytes(&c);
	CHECK(t >= 2 && t <= n && memcmp(p + n - 2, "\r\n", 2) == 0);
	char *m = malloc(n);
	memcpy(m, p, n);
	size_t kept = http1_trailers_filter(m + n - t, t, keep_odd);
	CHECK(kept >= 2 && kept <= t);
	CHECK(memcmp(m + n - t + kept - 2, "\r\n", 2) == 0);
	CHECK(http1_trailers_filter(m + n - t, kept, keep_odd) == kept);
	http1_chunked c2 = {0};
	size_t n2 = n - t + kept;
	CHECK(http1_chunked_feed(&c2, m, n2, &d) == (ssize_t)n2 && d);
	CHECK(c2.total == a->total);
	CHECK(http1_chunked_trailer_bytes(&c2) == kept);
	free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct out a = feed(buf, size, size, size);
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 16777619u;
	size_t cut = size ? h % (size + 1) : 0;
	struct out b = feed(buf, size, cut, size);

	CHECK(a.rc == b.rc && a.done == b.done && a.total == b.total);
	if (size <= 4096) {
		struct out c = feed(buf, size, 1, 1);

		CHECK(a.rc == c.rc && a.done == c.done && a.total == c.total);
	}
	if (a.rc >= 0 && !a.done)
		CHECK((size_t)a.rc == size);
	if (a.rc >= 0 && a.done)
		filter_agrees(buf, &a);
	peek_agrees(buf, size, &a, h % 64);
	peek_agrees(buf, size, &a, UINT64_MAX);
	free(buf);
	return 0;
}
