/* fuzz_http1_response.c - libFuzzer harness for http1_parse_response.
 *
 * The first input byte picks the request method the response answers (HEAD
 * and CONNECT change the framing); the rest is the response. Checks the
 * head bounds, string bounds, the framing rules and prefix consistency.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static http1_response resp, resp2;

	if (size < 1)
		return 0;
	http1_method m = (http1_method)(data[0] % (HTTP_M_PATCH + 1));

	size--;
	char *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data + 1, size);
	int rc = http1_parse_response(buf, size, NULL, m, &resp);

	CHECK(rc <= (int)size);
	CHECK(rc > HTTP1_E_LAST);
	if (rc > 0) {
		const char *end = buf + rc;
		unsigned st = resp.status;

		CHECK(resp.head_len == (uint32_t)rc);
		CHECK(st >= 100 && st <= 599);
		CHECK(resp.version_minor <= 1);
		check_str(resp.reason, buf, end);
		for (uint32_t i = 0; i < resp.nheaders; i++) {
			CHECK(resp.headers[i].name.len > 0);
			check_str(resp.headers[i].name, buf, end);
			check_str(resp.headers[i].value, buf, end);
		}
		if (st < 200 || st == 204 || st == 304 || m == HTTP_M_HEAD)
			CHECK(resp.body == HTTP1_BODY_NONE);
		if (resp.body == HTTP1_BODY_EOF)
			CHECK(!resp.conn.keep_alive);
		CHECK(!resp.conn.expect_continue);
	}
	/* small limits reach the 431 paths */
	http1_limits small = {256, 6, 0};
	int rs = http1_parse_response(buf, size, &small, m, &resp2);

	CHECK(rs <= (int)size && rs <= 256);
	if (rc > 0 && rc <= 256 && resp.nheaders <= 6)
		CHECK(rs == rc);
	size_t k = size ? (size_t)(data[size] * 2654435761u) % (size + 1) : 0;
	int rk = http1_parse_response(buf, k, NULL, m, &resp2);

	if (rc > 0)
		CHECK(k < (size_t)rc ? rk == 0 : rk == rc);
	else if (rc == 0)
		CHECK(rk == 0);
	else
		CHECK(rk == 0 || rk == rc);
	free(buf);
	return 0;
}
