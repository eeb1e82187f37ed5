/* fuzz_proxy_proto.c - libFuzzer harness for proxy_proto_parse.
 *
 * Besides crashes and sanitizer reports it checks the parser's contract:
 * a header lies inside the input and parses the same alone; a prefix of a
 * header needs more; a prefix of anything never gives a header; addresses
 * are given exactly when the header is not "local", with the family's
 * length; an error leaves the result zeroed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/proxy_proto.h"

static uint32_t mix(const uint8_t *d, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 16777619u;
	return h;
}

static void check_result(const proxy_proto_result *r)
{
	CHECK(r->version == 1 || r->version == 2);
	if (r->local) {
		CHECK(r->srclen == 0 && r->dstlen == 0);
		return;
	}
	CHECK(r->src.ss_family == r->dst.ss_family);
	CHECK(r->src.ss_family == AF_INET || r->src.ss_family == AF_INET6);
	socklen_t want = r->src.ss_family == AF_INET
			     ? sizeof(struct sockaddr_in)
			     : sizeof(struct sockaddr_in6);
	CHECK(r->srclen == want && r->dstlen == want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy so ASan catches any read past the end */
	uint8_t *buf = malloc(size ? size : 1);
	proxy_proto_result r, r2;
	static const proxy_proto_result zero;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	int rc = proxy_proto_parse(buf, size, &r);

	CHECK(rc <= (int)size);
	if (rc > 0) {
		check_result(&r);
		CHECK(rc <= PROXY_PROTO_MAX_HEADER);
		if (r.version == 1)
			CHECK(rc <= PROXY_PROTO_V1_MAX);
		/* the header alone parses the same */
		CHECK(proxy_proto_parse(buf, (size_t)rc, &r2) == rc);
		CHECK(memcmp(&r, &r2, sizeof(r)) == 0);
	} else if (rc < 0) {
		CHECK(rc == -EINVAL || rc == -EPROTONOSUPPORT ||
		      rc == -EMSGSIZE);
		CHECK(memcmp(&r, &zero, sizeof(r)) == 0);
	} else {
		CHECK(size < PROXY_PROTO_MAX_HEADER);
		CHECK(memcmp(&r, &zero, sizeof(r)) == 0);
	}
	/* a prefix: need more, or the same kind of answer */
	size_t k = size ? mix(data, size) % (size + 1) : 0;
	int rk = proxy_proto_parse(buf, k, &r2);
	if (rc > 0)
		CHECK(k < (size_t)rc ? rk == 0 : rk == rc);
	else if (rc == 0)
		CHECK(rk == 0);
	else
		CHECK(rk <= 0);
	free(buf);
	return 0;
}
