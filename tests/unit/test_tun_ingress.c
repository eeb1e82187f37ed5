/* test_tun_ingress.c - the connector's ingress matching (hostnames exact
 * and wildcard, prefix paths by segments, exact paths, first match wins,
 * the catch-all), the validation of rule hostnames and paths, service
 * values, and the reconnect backoff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_arena.h"
#include "tunnel/tun_backoff.h"
#include "tunnel/tun_config.h"
#include "tunnel/tun_ingress.h"

static tun_rule rule(const char *host, const char *path, bool exact)
{
	tun_rule r = {0};
	if (host) {
		r.hostname = host;
		r.hostname_len = strlen(host);
		r.wildcard = host[0] == '*';
	}
	if (path) {
		r.path = path;
		r.path_len = strlen(path);
	}
	r.exact = exact;
	return r;
}

static int match(const tun_rule *r, size_t n, const char *auth,
		 const char *path)
{
	return tun_ingress_match(r, n, auth, strlen(auth), path, strlen(path));
}

static void test_host_len(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t want;
	} cases[] = {
	    {"app.example.com", 15},
	    {"app.example.com:8443", 15},
	    {"APP.example.com.", 15},
	    {"app.example.com.:80", 15},
	    {"[::1]:8080", 5},
	    {"[::1]", 5},
	    {"[::1", 4},
	    {"", 0},
	    {"10.0.0.1:80", 8},
	    {".", 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(
		    tun_ingress_host_len(cases[i].in, strlen(cases[i].in)),
		    cases[i].want);
}

static void test_hostnames(void **state)
{
	(void)state;
	tun_rule r[] = {rule("app.example.com", NULL, false),
			rule("*.example.com", NULL, false),
			rule(NULL, NULL, false)};
	assert_int_equal(match(r, 3, "app.example.com", "/"), 0);
	assert_int_equal(match(r, 3, "APP.Example.COM:8443", "/x"), 0);
	assert_int_equal(match(r, 3, "app.example.com.", "/"), 0);
	assert_int_equal(match(r, 3, "b.example.com", "/"), 1);
	assert_int_equal(match(r, 3, "a.b.example.com", "/"), 1);
	assert_int_equal(match(r, 3, "B.EXAMPLE.com:80", "/"), 1);
	/* the wildcard needs at least one label */
	assert_int_equal(match(r, 3, "example.com", "/"), 2);
	assert_int_equal(match(r, 3, ".example.com", "/"), 2);
	assert_int_equal(match(r, 3, "badexample.com", "/"), 2);
	assert_int_equal(match(r, 3, "app.example.com.evil", "/"), 2);
	assert_int_equal(match(r, 3, "app.example.co", "/"), 2);
	assert_int_equal(match(r, 3, "", "/"), 2);
	assert_int_equal(match(r, 3, "[::1]:80", "/"), 2);
	/* without a catch-all, nothing */
	assert_int_equal(match(r, 2, "other.org", "/"), -1);
	/* one_label (Kubernetes Ingress hosts): "*.example.com" covers one
	 * label only (it matched a.b.example.com too) */
	r[1].one_label = true;
	assert_int_equal(match(r, 3, "b.example.com", "/"), 1);
	assert_int_equal(match(r, 3, "B.EXAMPLE.com.:80", "/"), 1);
	assert_int_equal(match(r, 3, "a.b.example.com", "/"), 2);
	assert_int_equal(match(r, 3, "example.com", "/"), 2);
	assert_int_equal(match(r, 3, ".example.com", "/"), 2);
}

static void test_prefix_paths(void **state)
{
	(void)state;
	tun_rule r[] = {rule(NULL, "/api", false), rule(NULL, "/", false)};
	assert_int_equal(match(r, 2, "h", "/api"), 0);
	assert_int_equal(match(r, 2, "h", "/api/"), 0);
	assert_int_equal(match(r, 2, "h", "/api/x/y"), 0);
	assert_int_equal(match(r, 2, "h", "/api?x=1"), 0);
	assert_int_equal(match(r, 2, "h", "/api/?x=1"), 0);
	assert_int_equal(match(r, 2, "h", "/apix"), 1);
	assert_int_equal(match(r, 2, "h", "/ap"), 1);
	assert_int_equal(match(r, 2, "h", "/API"), 1); /* case matters */
	assert_int_equal(match(r, 2, "h", "/x?/api"), 1);
	assert_int_equal(match(r, 2, "h", "*"), 1); /* OPTIONS *: the root */
	/* the root prefix takes every path */
	assert_int_equal(match(r + 1, 1, "h", "/anything/at/all"), 0);
}

static void test_exact_paths(void **state)
{
	(void)state;
	tun_rule r[] = {rule(NULL, "/login", true), rule(NULL, "/dir/", true)};
	assert_int_equal(match(r, 2, "h", "/login"), 0);
	assert_int_equal(match(r, 2, "h", "/login?next=/"), 0);
	assert_int_equal(match(r, 2, "h", "/login/"), -1);
	assert_int_equal(match(r, 2, "h", "/login/x"), -1);
	assert_int_equal(match(r, 2, "h", "/Login"), -1);
	assert_int_equal(match(r, 2, "h", "/dir/"), 1);
	assert_int_equal(match(r, 2, "h", "/dir"), -1);
}

static void test_first_match_wins(void **state)
{
	(void)state;
	tun_rule r[] = {
	    rule("app.example.com", "/api", false),
	    rule("app.example.com", NULL, false),
	    rule("*.example.com", "/static", true),
	    rule(NULL, "/api", false),
	    rule(NULL, NULL, false),
	};
	size_t n = sizeof(r) / sizeof(r[0]);
	assert_int_equal(match(r, n, "app.example.com", "/api/v1"), 0);
	assert_int_equal(match(r, n, "app.example.com", "/static"), 1);
	assert_int_equal(match(r, n, "x.example.com", "/static"), 2);
	assert_int_equal(match(r, n, "x.example.com", "/static/a"), 4);
	assert_int_equal(match(r, n, "x.example.com", "/api"), 3);
	assert_int_equal(match(r, n, "other", "/api/x"), 3);
	assert_int_equal(match(r, n, "other", "/"), 4);
}

static void test_check_hostname(void **state)
{
	(void)state;
	static const char *const ok[] = {
	    "a",       "app.example.com", "*.example.com", "*.com",
	    "x-1.y-z", "APP.EXAMPLE.COM", "123.example"};
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"", "empty"},
	    {"*.", "a wildcard needs a domain after \"*.\""},
	    {"a..b", "empty label"},
	    {".a", "empty label"},
	    {"a.", "empty label"},
	    {"a.*.b", "'*' only as the whole first label (\"*.example.com\")"},
	    {"*", "'*' only as the whole first label (\"*.example.com\")"},
	    {"**.a", "'*' only as the whole first label (\"*.example.com\")"},
	    {"a.com:80", "no port here (the port of :authority is ignored)"},
	    {"a b", "only letters, digits, '-' and '.'"},
	    {"a/b", "only letters, digits, '-' and '.'"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (strchr(ok[i], '_'))
			continue; /* '_' is not a host name character */
		assert_null(tun_ingress_check_hostname(ok[i], strlen(ok[i])));
	}
	assert_string_equal(tun_ingress_check_hostname("x_y", 3),
			    "only letters, digits, '-' and '.'");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why =
		    tun_ingress_check_hostname(bad[i].in, strlen(bad[i].in));
		assert_non_null(why);
		assert_string_equal(why, bad[i].why);
	}
	char label[70];
	memset(label, 'a', 64);
	label[64] = 0;
	assert_string_equal(tun_ingress_check_hostname(label, 64),
			    "a label is longer than 63 characters");
	assert_null(tun_ingress_check_hostname(label, 63));
	char big[300];
	for (int i = 0; i < 300; i++)
		big[i] = i % 2 ? '.' : 'a';
	assert_string_equal(tun_ingress_check_hostname(big, 255),
			    "longer than 253 characters");
	assert_null(tun_ingress_check_hostname(big, 253));
}

static void test_check_path(void **state)
{
	(void)state;
	assert_null(tun_ingress_check_path("/", 1));
	assert_null(tun_ingress_check_path("/api/v1/", 8));
	assert_null(tun_ingress_check_path("/%7Euser", 8));
	assert_string_equal(tun_ingress_check_path("", 0),
			    "must start with \"/\"");
	assert_string_equal(tun_ingress_check_path("api", 3),
			    "must start with \"/\"");
	assert_string_equal(tun_ingress_check_path("/a?b", 4),
			    "no query or fragment ('?', '#')");
	assert_string_equal(tun_ingress_check_path("/a#b", 4),
			    "no query or fragment ('?', '#')");
	assert_string_equal(tun_ingress_check_path("/a b", 4),
			    "no spaces or control characters");
	assert_string_equal(tun_ingress_check_path("/a\x7f", 3),
			    "no spaces or control characters");
}

static void test_service_parse(void **state)
{
	(void)state;
	core_arena *a = core_arena_new(0);
	tun_service s;
#define OK(txt)                                                                \
	assert_null(tun_service_parse(a, txt, strlen(txt), &s));               \
	assert_string_equal(s.text, txt)
	OK("http://127.0.0.1:8001");
	assert_int_equal(s.kind, TUN_SVC_HTTP);
	assert_string_equal(s.host, "127.0.0.1");
	assert_int_equal(s.port, 8001);
	assert_true(s.host_is_ip);
	OK("http://[::1]:9000/");
	assert_string_equal(s.host, "::1");
	assert_int_equal(s.port, 9000);
	assert_true(s.host_is_ip);
	OK("http://web.default.svc:80");
	assert_string_equal(s.host, "web.default.svc");
	assert_false(s.host_is_ip);
	OK("http://web");
	assert_int_equal(s.port, 80);
	OK("http_status:404");
	assert_int_equal(s.kind, TUN_SVC_STATUS);
	assert_int_equal(s.status, 404);
	OK("http_status:100");
	OK("http_status:599");
#undef OK
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"http_status:600", "the status must be from 100 to 599"},
	    {"http_status:099", "the status must be from 100 to 599"},
	    {"http_status:40", "expected http_status:NNN (three digits)"},
	    {"http_status:4044", "expected http_status:NNN (three digits)"},
	    {"http_status:4x4", "expected http_status:NNN (three digits)"},
	    {"https://a:1", "https services are not supported (use http://)"},
	    {"ftp://a:1", "expected http://HOST:PORT or http_status:NNN"},
	    {"127.0.0.1:80", "expected http://HOST:PORT or http_status:NNN"},
	    {"http://", "expected http://HOST:PORT or http_status:NNN"},
	    {"http://:80", "no host"},
	    {"http://a:0", "the port must be from 1 to 65535"},
	    {"http://a:65536", "the port must be from 1 to 65535"},
	    {"http://a:", "the port must be from 1 to 65535"},
	    {"http://a:80/x", "no path, query or user part (only "
			      "http://HOST:PORT)"},
	    {"http://u@a:80", "the host is neither an IP address nor a DNS "
			      "name"},
	    {"http://[::1:80", "an IPv6 address needs its closing ']'"},
	    {"http://[zz]:80", "not an IPv6 address between '[' and ']'"},
	    {"http://*.a:80", "the host is neither an IP address nor a DNS "
			      "name"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why =
		    tun_service_parse(a, bad[i].in, strlen(bad[i].in), &s);
		if (!why)
			fail_msg("accepted: %s", bad[i].in);
		assert_string_equal(why, bad[i].why);
	}
	core_arena_free(a);
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(tun_backoff_max_ms(0), 1000);
	assert_int_equal(tun_backoff_max_ms(1), 2000);
	assert_int_equal(tun_backoff_max_ms(4), 16000);
	assert_int_equal(tun_backoff_max_ms(5), 30000);
	assert_int_equal(tun_backoff_max_ms(64), 30000);
	assert_int_equal(tun_backoff_max_ms(UINT32_MAX), 30000);

	tun_backoff b = {0};
	/* the delay is rnd modulo (bound + 1): full jitter, 0 included */
	assert_int_equal(tun_backoff_lost(&b, 0, 1000), 1000);
	assert_int_equal(b.failures, 1);
	assert_int_equal(tun_backoff_lost(&b, 0, 2001), 0);
	assert_int_equal(tun_backoff_lost(&b, 0, UINT64_MAX),
			 UINT64_MAX % 4001);
	for (int i = 0; i < 100; i++)
		assert_true(tun_backoff_lost(&b, 29999, UINT64_MAX - i) <=
			    30000);
	assert_int_equal(b.failures, 103);
	/* up 30 s: the count starts over */
	assert_int_equal(tun_backoff_lost(&b, 30000, 5000), 5000 % 1001);
	assert_int_equal(b.failures, 1);
	b.failures = UINT32_MAX;
	(void)tun_backoff_lost(&b, 0, 7);
	assert_int_equal(b.failures, UINT32_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host_len),
	    cmocka_unit_test(test_hostnames),
	    cmocka_unit_test(test_prefix_paths),
	    cmocka_unit_test(test_exact_paths),
	    cmocka_unit_test(test_first_match_wins),
	    cmocka_unit_test(test_check_hostname),
	    cmocka_unit_test(test_check_path),
	    cmocka_unit_test(test_service_parse),
	    cmocka_unit_test(test_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
