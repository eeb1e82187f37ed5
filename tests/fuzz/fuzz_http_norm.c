/* fuzz_http_norm.c - libFuzzer harness for http_norm_path: no read or
 * write outside its buffers, the result is no longer than the input, has
 * no backslash, no run of slashes and no dot segment, and normalizing it
 * again changes nothing. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/http_norm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *out = malloc(size + 1), *again = malloc(size + 1);
	size_t n = http_norm_path((const char *)data, size, out);
	CHECK(n <= size);
	CHECK(!memchr(out, '\\', n));
	for (size_t i = 0; i + 1 < n; i++)
		CHECK(!(out[i] == '/' && out[i + 1] == '/'));
	out[n] = '\0';
	CHECK(!strstr(out, "/./") && !strstr(out, "/../"));
	size_t m = http_norm_path(out, n, again);
	CHECK(m == n && !memcmp(out, again, n));
	free(out);
	free(again);
	return 0;
}
