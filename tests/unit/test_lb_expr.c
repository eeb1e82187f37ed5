/* Unit tests for lb_expr: the rule condition language (fields, operators,
 * sets, functions, precedence, headers) and its error messages. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_arena.h"
#include "lb/lb_expr.h"

static core_arena *arena;
static struct sockaddr_in client4;
static http1_header hdrs[8];
static lb_expr_input in;

#define S(x) ((http_str){(x), (uint32_t)sizeof(x) - 1})

static int setup(void **state)
{
	(void)state;
	arena = core_arena_new(0);
	memset(&client4, 0, sizeof(client4));
	client4.sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.7", &client4.sin_addr);
	hdrs[0] = (http1_header){S("User-Agent"), S("curl/7.88.1")};
	hdrs[1] = (http1_header){S("X-Canary"), S("no")};
	hdrs[2] = (http1_header){S("x-canary"), S("Yes")};
	hdrs[3] = (http1_header){S("Cookie"), S("a=1")};
	hdrs[4] = (http1_header){S("cookie"), S("session=abc")};
	in = (lb_expr_input){
	    .client = (const struct sockaddr *)&client4,
	    .country = "JP",
	    .lb_name = "lb.example.com",
	    .lb_region = "WEU",
	    .host = S("lb.example.com:8080"),
	    .method = S("POST"),
	    .target = S("/api/v1/items?x=1&y=2"),
	    .headers = hdrs,
	    .nheaders = 5,
	};
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	core_arena_free(arena);
	return 0;
}

/* Compile and evaluate; a compile error fails the test with its text. */
static bool ev(const char *src)
{
	lb_expr_error err;
	lb_expr *e = lb_expr_compile(src, strlen(src), arena, &err);
	if (!e)
		fail_msg("%s: %s (at %zu)", src, err.msg, err.offset);
	return lb_expr_eval(e, &in);
}

/* Compile errors: the message must contain want. */
static void bad(const char *src, const char *want, size_t offset)
{
	lb_expr_error err;
	lb_expr *e = lb_expr_compile(src, strlen(src), arena, &err);
	if (e)
		fail_msg("'%s' compiled", src);
	if (!strstr(err.msg, want))
		fail_msg("'%s': message '%s' lacks '%s'", src, err.msg, want);
	assert_int_equal(err.offset, offset);
}

static void test_http_fields(void **state)
{
	(void)state;
	assert_true(ev("http.request.uri.path eq \"/api/v1/items\""));
	assert_true(ev("http.request.uri.query == \"x=1&y=2\""));
	assert_true(ev("http.request.uri eq \"/api/v1/items?x=1&y=2\""));
	assert_true(ev("http.host eq \"lb.example.com\"")); /* no port */
	assert_true(ev("http.request.method in {\"PUT\" \"POST\"}"));
	assert_true(ev("http.request.version eq \"HTTP/1.1\""));
	assert_true(ev("http.user_agent contains \"curl\""));
	assert_true(ev("http.referer eq \"\"")); /* absent: empty */
	assert_true(ev("http.request.full_uri eq "
		       "\"http://lb.example.com/api/v1/items?x=1&y=2\""));
	assert_true(ev("not ssl"));
	in.ssl = true;
	assert_true(ev("ssl and http.request.full_uri wildcard \"https://*\""));
	in.http2 = true;
	assert_true(ev("http.request.version eq \"HTTP/2\""));
	/* Both Cookie fields, joined as RFC 9113 says. */
	assert_true(ev("http.cookie eq \"a=1; session=abc\""));
	assert_true(ev("cf.load_balancer.name eq \"lb.example.com\" and "
		       "cf.load_balancer.region eq \"WEU\""));
}

static void test_operators(void **state)
{
	(void)state;
	assert_true(ev("starts_with(http.request.uri.path, \"/api/\")"));
	assert_false(ev("starts_with(http.request.uri.path, \"/web/\")"));
	assert_true(ev("ends_with(http.request.uri.path, \"/items\")"));
	assert_true(ev("http.request.uri.path matches \"^/api/v[0-9]+/\""));
	assert_true(ev("http.request.uri.path ~ r\"^/api/v\\d+/\""));
	/* A quoted pattern keeps its escapes, as Cloudflare's docs write
	 * them: \d, \., and \\ for a backslash; \" is a quote. */
	assert_true(ev("http.request.uri.path matches \"^/api/v\\d+/\""));
	assert_true(ev("http.host matches \"^(www|lb)\\.example\\.com$\""));
	assert_false(ev("http.host matches \"^lb\\.example\\.co$\""));
	assert_false(ev("http.request.uri.path matches \"a\\\\b\""));
	assert_false(ev("http.request.uri.path matches \"\\\"\""));
	in.target = S("/a\\b\"");
	assert_true(ev("http.request.uri.path matches \"a\\\\b\""));
	assert_true(ev("http.request.uri.path matches \"b\\\"$\""));
	in.target = S("/api/v1/items?x=1&y=2");
	assert_true(ev("http.request.uri.path matches r#\"it\"ems|items\"#"));
	assert_false(ev("http.request.uri.path matches \"^/API\""));
	assert_true(ev("lower(http.request.uri.path) matches \"^/api\""));
	assert_true(ev("upper(http.request.method) eq \"POST\""));
	assert_true(ev("http.request.uri.path wildcard \"/API/*/items\""));
	assert_false(
	    ev("http.request.uri.path strict wildcard \"/API/*/items\""));
	assert_true(ev("http.request.uri.path strict wildcard \"/a*i*s\""));
	assert_true(ev("http.request.uri.path ne \"/\""));
	assert_true(ev("http.request.uri.path gt \"/a\" && "
		       "http.request.uri.path lt \"/b\""));
	assert_true(ev("http.request.uri.path contains \"\""));
}

/* As in Cloudflare's: in a wildcard pattern \* is a literal * and \\ a
 * literal \; any other backslash is an error. */
static void test_wildcard_escapes(void **state)
{
	(void)state;
	in.target = S("/a*b\\c");
	assert_true(ev("http.request.uri.path wildcard r\"/a\\*b\\\\c\""));
	assert_true(ev("http.request.uri.path strict wildcard "
		       "\"/a\\\\*B\\\\\\\\C\" or http.request.uri.path "
		       "wildcard \"/A\\\\*b\\\\\\\\c\""));
	assert_true(ev("http.request.uri.path wildcard r\"*\\**\""));
	assert_false(ev("http.request.uri.path wildcard r\"/a\\*\""));
	in.target = S("/a\\xyzb");
	assert_false(ev("http.request.uri.path wildcard r\"/a\\*b\""));
	assert_true(ev("http.request.uri.path wildcard r\"/a\\\\*b\""));
	bad("http.host wildcard r\"a\\b\"", "escapes only * and", 19);
	bad("http.host strict wildcard r\"a*\\\"", "its character 3", 26);
}

static void test_ip_and_country(void **state)
{
	(void)state;
	assert_true(ev("ip.src in {10.0.0.0/8 198.51.100.0/24}"));
	assert_true(ev("ip.src eq 198.51.100.7"));
	assert_true(ev("ip.src ne 198.51.100.8"));
	assert_false(ev("ip.src in {2001:db8::/32}"));
	assert_true(ev("ip.src.country eq \"JP\" and ip.geoip.country in "
		       "{\"JP\" \"KR\"}"));
	/* An IPv4 client in IPv6 form (X-Forwarded-For ::ffff:a.b.c.d) is
	 * that IPv4 address too. */
	struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &mapped.sin6_addr);
	in.client = (const struct sockaddr *)&mapped;
	assert_true(ev("ip.src in {198.51.100.0/24}"));
	assert_true(ev("ip.src eq 198.51.100.7"));
	assert_false(ev("ip.src ne 198.51.100.7"));
	assert_false(ev("ip.src in {10.0.0.0/8}"));
	assert_true(ev("ip.src ne 198.51.100.8"));
	assert_true(ev("ip.src in {::ffff:0:0/96}"));
	assert_false(ev("ip.src in {2001:db8::/32}"));
	in.client = NULL; /* unknown: only ne holds */
	assert_false(ev("ip.src in {0.0.0.0/0}"));
	assert_true(ev("ip.src ne 198.51.100.7"));
}

static void test_headers(void **state)
{
	(void)state;
	/* Any field of the name, case-insensitively. */
	assert_true(ev("http.request.headers[\"x-canary\"] eq \"Yes\""));
	assert_true(ev("any(http.request.headers[\"X-CANARY\"][*] eq \"no\")"));
	assert_true(ev("http.request.headers[\"x-canary\"][0] eq \"no\""));
	assert_false(ev("http.request.headers[\"x-canary\"][0] eq \"Yes\""));
	assert_true(ev("http.request.headers[\"x-canary\"][1] eq \"Yes\""));
	assert_false(ev("http.request.headers[\"x-canary\"][2] eq \"Yes\""));
	assert_true(ev("lower(http.request.headers[\"x-canary\"]) eq \"yes\""));
	/* The first 16 fields of a name are looked at, not more (a client
	 * must not decide how many regex runs a request costs). */
	http1_header many[LB_EXPR_MAX_FIELDS + 1];
	for (size_t i = 0; i < LB_EXPR_MAX_FIELDS + 1; i++)
		many[i] = (http1_header){S("X-Many"), S("no")};
	many[LB_EXPR_MAX_FIELDS - 1].value = S("yes");
	in.headers = many;
	in.nheaders = LB_EXPR_MAX_FIELDS + 1;
	assert_true(ev("http.request.headers[\"x-many\"] eq \"yes\""));
	many[LB_EXPR_MAX_FIELDS - 1].value = S("no");
	many[LB_EXPR_MAX_FIELDS].value = S("yes");
	assert_false(ev("http.request.headers[\"x-many\"] eq \"yes\""));
	assert_true(ev("http.request.headers[\"x-many\"][16] eq \"yes\""));
	in.headers = hdrs;
	in.nheaders = 5;
	/* Absent: no field passes, not even ne. */
	assert_false(ev("http.request.headers[\"x-none\"] ne \"a\""));
	assert_true(ev("not http.request.headers[\"x-none\"] eq \"a\""));
}

static void test_logic(void **state)
{
	(void)state;
	/* not > and > xor > or */
	assert_true(ev("http.request.method eq \"GET\" or "
		       "http.request.method eq \"POST\" and ip.src.country "
		       "eq \"JP\""));
	assert_false(ev("(http.request.method eq \"GET\" or "
			"http.request.method eq \"POST\") and "
			"ip.src.country eq \"US\""));
	assert_true(ev("ssl xor http.request.method eq \"POST\""));
	assert_false(ev("not ssl ^^ http.request.method eq \"POST\""));
	assert_true(ev("!(ssl) && !(http.request.method eq \"GET\")"));
	assert_true(ev("not not http.request.method eq \"POST\""));
	assert_true(ev("true and not false"));
}

static void test_dns_fields(void **state)
{
	(void)state;
	lb_expr_input q = {.qname = "dns.example.com",
			   .qname_len = 15,
			   .qtype = 28,
			   .client = in.client};
	lb_expr_error err;
	const char *src = "dns.qry.type eq 28 and dns.qry.name.len in {1..20} "
			  "and dns.qry.name eq \"dns.example.com\" and "
			  "http.request.uri.path eq \"\"";
	lb_expr *e = lb_expr_compile(src, strlen(src), arena, &err);
	assert_non_null(e);
	assert_true(lb_expr_eval(e, &q));
	uint32_t f = lb_expr_fields(e);
	assert_true(f & (1u << LB_F_DNS_TYPE));
	assert_true(f & LB_EXPR_PROXIED_FIELDS);
	assert_false(f & (1u << LB_F_COUNTRY));
	q.qtype = 1;
	assert_false(lb_expr_eval(e, &q));
	/* Every HTTP field is empty for a DNS query, full_uri included. */
	src = "http.request.full_uri eq \"\" and http.request.version eq "
	      "\"\" and http.host eq \"\" and http.cookie eq \"\"";
	e = lb_expr_compile(src, strlen(src), arena, &err);
	assert_non_null(e);
	assert_true(lb_expr_eval(e, &q));
}

static void test_errors(void **state)
{
	(void)state;
	bad("", "empty condition", 0);
	bad("http.request.path eq \"/\"", "unknown field 'http.request.path'",
	    0);
	bad("http.request.uri.path equals \"/\"", "expected an operator", 22);
	bad("http.request.uri.path eq /", "expected a string", 25);
	bad("http.request.uri.path eq \"/", "string not closed", 25);
	bad("http.request.uri.path eq \"\\d\"", "unknown escape", 26);
	bad("dns.qry.type contains \"A\"", "does not apply to an integer", 13);
	bad("ip.src eq 300.1.1.1", "not an IP address", 10);
	bad("ip.src in {}", "empty set", 10);
	bad("http.request.uri.path matches \"(\"", "bad regular expression",
	    30);
	bad("(ssl", "expected ')'", 4);
	bad("ssl ssl", "expected 'and', 'or' or the end", 4);
	bad("any(http.user_agent eq \"x\")", "any() takes one test", 0);
	bad("any(any(http.request.headers[\"a\"][*] eq \"x\"))",
	    "any() inside any()", 4);
	bad("dns.qry.type in {5..1}", "is empty", 21);
	bad("lower(dns.qry.type) eq 1", "take a text field", 0);
	char deep[201];
	memset(deep, '(', 150);
	memcpy(deep + 150, "ssl", 3);
	memset(deep + 153, ')', 47);
	deep[200] = '\0';
	bad(deep, "nested too deeply", 64);
	lb_expr_error err;
	assert_null(lb_expr_compile("ssl\0or ssl", 10, arena, &err));
	assert_non_null(strstr(err.msg, "NUL"));
	assert_null(
	    lb_expr_compile("http.request.pth eq \"\"", 22, arena, &err));
	assert_string_equal(err.unknown, "http.request.pth");
}

/* A pathological regex hits the match limit: false, quickly. */
static void test_regex_limit(void **state)
{
	(void)state;
	char path[64];
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	in.target = (http_str){path, (uint32_t)strlen(path)};
	/* PCRE2 fails this one at once (no 'b' in the subject): no limit
	 * needed. */
	assert_false(ev("http.request.uri matches \"^(a+)+b$\""));
	assert_true(ev("http.request.uri matches \"^(a+)+$\""));
	/* The first branch backtracks 2^n ways before the second matches:
	 * fine for n = 14, past the limit (200000 steps, not PCRE2's default
	 * of 10 million, under which it matches) for n = 20: false. */
	const char *re = "http.request.uri matches \"^(a+)+$|^a\"";
	in.target = (http_str){"aaaaaaaaaaaaaa!", 15};
	assert_true(ev(re));
	in.target = (http_str){"aaaaaaaaaaaaaaaaaaaa!", 21};
	assert_false(ev(re));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_http_fields),      T(test_operators), T(test_ip_and_country),
	    T(test_headers),	      T(test_logic),	 T(test_dns_fields),
	    T(test_wildcard_escapes), T(test_errors),	 T(test_regex_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
