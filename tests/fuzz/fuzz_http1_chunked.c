/* fuzz_http1_chunked.c - libFuzzer harness for http1_chunked_feed.
 *
 * Feeds the input whole, split at a point derived from the input, and one
 * byte at a time (short inputs): the outcome (bytes consumed, done, data
 * total, or the error) must not depend on the split.
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
};

/* Feed in pieces of at most step bytes, first piece first bytes. */
static struct out feed(const char *p, size_t n, size_t first, size_t step)
{
	http1_chunked c = {0};
	struct out o = {0, false, 0};
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
	return o;
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
	free(buf);
	return 0;
}
