/* test_http_norm.c - URL path normalization (http_norm.c): RFC 3986's
 * examples, Cloudflare's extra steps, percent-encodings, and that a result
 * normalizes to itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_norm.h"

static void expect(const char *in, const char *want)
{
	char out[256], again[256];
	size_t n = http_norm_path(in, strlen(in), out);
	out[n] = '\0';
	if (strcmp(out, want))
		print_error("norm(%s) = %s, want %s\n", in, out, want);
	assert_string_equal(out, want);
	assert_true(n <= strlen(in));
	size_t m = http_norm_path(out, n, again);
	assert_int_equal(m, n);
	assert_memory_equal(again, out, n);
}

static void test_dot_segments(void **state)
{
	(void)state;
	/* RFC 3986 5.2.4's examples, and the edges of the root. */
	expect("/a/b/c/./../../g", "/a/g");
	expect("mid/content=5/../6", "mid/6");
	expect("/a/b/../c", "/a/c");
	expect("/a/..", "/");
	expect("/a/.", "/a/");
	expect("/..", "/");
	expect("/../../x", "/x");
	expect("/./x/./", "/x/");
	expect("/a/b/", "/a/b/");
	expect("/", "/");
	expect("", "");
	expect("/a..b/.c/..d", "/a..b/.c/..d");
}

static void test_percent(void **state)
{
	(void)state;
	expect("/%61dmin", "/admin");
	expect("/%41%5a%7E%2d%2E%5f", "/AZ~-._");
	expect("/a%2fb", "/a%2Fb"); /* reserved: stays encoded */
	expect("/%3f%23", "/%3F%23");
	expect("/%2e%2e/admin", "/admin"); /* decoded dots are dots */
	expect("/x/%2E/y", "/x/y");
	expect("/100%", "/100%");
	expect("/%zz/%4", "/%zz/%4");
	expect("/%00", "/%00");
	/* A lone '%' and decoded hex digits make no new escape. */
	expect("/%%61dmin", "/%%61dmin");
	expect("/%6%31", "/%6%31");
	expect("/%%7a", "/%z");
}

static void test_cloudflare_steps(void **state)
{
	(void)state;
	expect("//admin", "/admin");
	expect("/a///b//", "/a/b/");
	expect("\\admin", "/admin");
	expect("/a\\..\\b", "/b");
	expect("/api//v1/./items", "/api/v1/items");
	/* Case is kept: paths are case-sensitive. */
	expect("/Admin", "/Admin");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dot_segments),
	    cmocka_unit_test(test_percent),
	    cmocka_unit_test(test_cloudflare_steps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
