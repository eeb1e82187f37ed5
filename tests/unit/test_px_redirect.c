/* Unit tests for a load balancer's https_redirect (issue 6): the Location
 * built from the request (px_https_location), the ACME http-01 exception,
 * 301 or 308, the complete response (px_head_redirect), and the option in
 * the config (needs an https listener, whose port is computed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config/cfg_load.h"
#include "http/px_head.h"

static char out[4096];

static http_str S(const char *s)
{
	return (http_str){s, strlen(s)};
}

static const char *loc(const char *host, const char *target, uint16_t port)
{
	int n = px_https_location(S(host), S(target), port, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(out));
	return out;
}

static void test_location(void **state)
{
	(void)state;
	/* Path and query kept; the port of the Host dropped. */
	assert_string_equal(loc("lb.example.com", "/a/b?x=1&y=%20", 443),
			    "https://lb.example.com/a/b?x=1&y=%20");
	assert_string_equal(loc("lb.example.com:8080", "/", 443),
			    "https://lb.example.com/");
	/* The https listener's port when not 443. */
	assert_string_equal(loc("lb.example.com:80", "/p", 8443),
			    "https://lb.example.com:8443/p");
	assert_string_equal(loc("127.0.0.1:9000", "/p", 8443),
			    "https://127.0.0.1:8443/p");
	/* IPv6 literals keep their brackets. */
	assert_string_equal(loc("[::1]:8080", "/p", 443), "https://[::1]/p");
	assert_string_equal(loc("[2001:db8::1]", "/", 4443),
			    "https://[2001:db8::1]:4443/");
	/* OPTIONS *, and absolute-form targets. */
	assert_string_equal(loc("h.example", "*", 443), "https://h.example/");
	assert_string_equal(loc("h.example", "http://h.example:80/p?q", 443),
			    "https://h.example/p?q");
	assert_string_equal(loc("h.example", "http://h.example?q", 443),
			    "https://h.example/?q");
	assert_string_equal(loc("h.example", "HTTP://h.example", 443),
			    "https://h.example/");
}

static void test_location_errors(void **state)
{
	(void)state;
	assert_int_equal(px_https_location(S(""), S("/"), 443, out, 64),
			 -EINVAL);
	/* "https://h/" is 10 bytes: 11 with the NUL fit, 10 do not. */
	assert_int_equal(px_https_location(S("h"), S("/"), 443, out, 11), 10);
	assert_int_equal(px_https_location(S("h"), S("/"), 443, out, 10),
			 -ENOSPC);
	assert_int_equal(px_https_location(S("h"), S("/"), 443, out, 0),
			 -ENOSPC);
}

static void test_acme_challenge(void **state)
{
	(void)state;
	assert_true(px_is_acme_challenge(S("/.well-known/acme-challenge/t0k")));
	assert_true(px_is_acme_challenge(S("/.well-known/acme-challenge/")));
	assert_true(px_is_acme_challenge(
	    S("http://h.example/.well-known/acme-challenge/t?x")));
	assert_false(px_is_acme_challenge(S("/.well-known/acme-challenge")));
	assert_false(px_is_acme_challenge(S("/.well-known/other/")));
	assert_false(px_is_acme_challenge(S("/x/.well-known/acme-challenge/")));
	assert_false(px_is_acme_challenge(S("/.WELL-KNOWN/acme-challenge/t")));
	assert_false(px_is_acme_challenge(S("*")));
	assert_false(px_is_acme_challenge(S("")));
}

static void test_status(void **state)
{
	(void)state;
	assert_int_equal(px_redirect_status(HTTP_M_GET), 301);
	assert_int_equal(px_redirect_status(HTTP_M_HEAD), 301);
	assert_int_equal(px_redirect_status(HTTP_M_POST), 308);
	assert_int_equal(px_redirect_status(HTTP_M_PUT), 308);
	assert_int_equal(px_redirect_status(HTTP_M_DELETE), 308);
	assert_int_equal(px_redirect_status(HTTP_M_OPTIONS), 308);
	assert_int_equal(px_redirect_status(HTTP_M_OTHER), 308);
	assert_string_equal(px_status_reason(301), "Moved Permanently");
	assert_string_equal(px_status_reason(308), "Permanent Redirect");
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static void test_response(void **state)
{
	(void)state;
	int n = px_head_redirect(308, S("lb.example.com:80"), S("/f?x=1"), 8443,
				 "pop-1", false, false, out, sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	assert_true(starts(out,
			   "HTTP/1.1 308 Permanent Redirect\r\n"
			   "Location: https://lb.example.com:8443/f?x=1\r\n"));
	assert_null(strstr(out, "Connection: close"));
	const char *body = strstr(out, "\r\n\r\n") + 4;
	assert_string_equal(body,
			    "308 Permanent Redirect: moved to https (edge "
			    "pop-1)\n");
	char cl[64];
	snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(body));
	assert_non_null(strstr(out, cl));

	/* HEAD: no body; close: Connection: close. */
	n = px_head_redirect(301, S("h"), S("/"), 443, "e", true, true, out,
			     sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	assert_true(starts(out, "HTTP/1.1 301 Moved Permanently\r\n"
				"Location: https://h/\r\n"));
	assert_non_null(strstr(out, "Connection: close\r\n"));
	assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n");

	/* Too small a buffer, and no host. */
	assert_int_equal(px_head_redirect(301, S("h"), S("/"), 443, "e", false,
					  false, out, 40),
			 -ENOSPC);
	assert_int_equal(px_head_redirect(301, S(""), S("/"), 443, "e", false,
					  false, out, sizeof(out)),
			 -EINVAL);
}

/* ---- the option in the config ---- */

#define LB_YAML                                                                \
	"pools: [ { id: p, origins: [ { name: o, address: 127.0.0.1 } ] } ]\n" \
	"load_balancers:\n"                                                    \
	"  - { name: a.example.com, default_pools: [p] }\n"                    \
	"  - { name: b.example.com, default_pools: [p], https_redirect: "      \
	"true }\n"

static void test_config(void **state)
{
	(void)state;
	const char *ok = "edge:\n"
			 "  listen: { http: [\"127.0.0.1:8080\"],\n"
			 "            https: [\"127.0.0.1:8443\", "
			 "\"127.0.0.1:443\"] }\n" LB_YAML;
	cfg_snapshot *s = NULL;
	cfg_diag d = {0};
	assert_int_equal(cfg_load_string("t.yaml", ok, strlen(ok), &s, &d), 0);
	assert_int_equal(s->edge.https_port, 8443);
	assert_false(s->lbs[0].https_redirect); /* the default */
	assert_true(s->lbs[1].https_redirect);
	cfg_snapshot_free(s);
	cfg_diag_free(&d);

	/* No https listener: an error at the option. */
	const char *bad =
	    "edge: { listen: { http: [\"127.0.0.1:8080\"] } }\n" LB_YAML;
	s = (cfg_snapshot *)1;
	d = (cfg_diag){0};
	assert_int_equal(cfg_load_string("t.yaml", bad, strlen(bad), &s, &d),
			 -1);
	assert_null(s);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.msgs[0],
			    "t.yaml:5:64: https_redirect: needs an https "
			    "listener (edge.listen.https)");
	cfg_diag_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_location),
	    cmocka_unit_test(test_location_errors),
	    cmocka_unit_test(test_acme_challenge),
	    cmocka_unit_test(test_status),
	    cmocka_unit_test(test_response),
	    cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
