/* test_tun_config.c - the connector's configuration file: defaults, every
 * value, and every error with its file:line:col and wording. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/cfg_load.h"
#include "tunnel/tun_config.h"

#define TOKEN "0123456789abcdef0123456789abcdef"
#define HEAD                                                                   \
	"tunnel: gke-prod\n"                                                   \
	"token: " TOKEN "\n"                                                   \
	"edges: [\"127.0.0.1:7844\"]\n"
#define CATCH "ingress:\n  - service: http_status:404\n"

static tun_config *load_ok(const char *yaml)
{
	tun_config *c = NULL;
	cfg_diag d = {0};
	int rc = tun_config_load_string("t.yaml", yaml, strlen(yaml), &c, &d);
	for (size_t i = 0; i < d.n; i++)
		print_error("unexpected: %s\n", d.msgs[i]);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	assert_non_null(c);
	cfg_diag_free(&d);
	return c;
}

/* The file fails with exactly these messages, in this order. */
static void load_bad(const char *yaml, const char *const *want, size_t n)
{
	tun_config *c = NULL;
	cfg_diag d = {0};
	int rc = tun_config_load_string("t.yaml", yaml, strlen(yaml), &c, &d);
	assert_int_equal(rc, -1);
	assert_null(c);
	for (size_t i = 0; i < d.n && i < n; i++)
		if (strcmp(d.msgs[i], want[i]))
			fail_msg("message %zu:\n got: %s\nwant: %s\nin:\n%s", i,
				 d.msgs[i], want[i], yaml);
	if (d.n != n) {
		for (size_t i = 0; i < d.n; i++)
			print_error("got: %s\n", d.msgs[i]);
		fail_msg("%zu messages, want %zu", d.n, n);
	}
	cfg_diag_free(&d);
}

#define BAD1(yaml, msg)                                                        \
	do {                                                                   \
		const char *const w_[] = {msg};                                \
		load_bad(yaml, w_, 1);                                         \
	} while (0)

static void test_minimal_defaults(void **state)
{
	(void)state;
	tun_config *c = load_ok(HEAD CATCH);
	assert_string_equal(c->tunnel, "gke-prod");
	assert_string_equal(c->token, TOKEN);
	assert_null(c->name);
	assert_null(c->server_name);
	assert_null(c->ca);
	assert_int_equal(c->nedges, 1);
	assert_string_equal(c->edges[0].text, "127.0.0.1:7844");
	assert_string_equal(c->edges[0].ip, "127.0.0.1");
	assert_int_equal(c->edges[0].ss.ss_family, AF_INET);
	assert_int_equal(
	    ntohs(((struct sockaddr_in *)&c->edges[0].ss)->sin_port), 7844);
	assert_int_equal(c->conns_per_edge, 2);
	assert_int_equal(c->drain_timeout_ms, 30000);
	assert_int_equal(c->nrules, 1);
	assert_null(c->rules[0].hostname);
	assert_null(c->rules[0].path);
	assert_int_equal(c->rules[0].svc.kind, TUN_SVC_STATUS);
	assert_int_equal(c->rules[0].svc.status, 404);
	assert_int_equal(c->rules[0].line, 5);
	assert_int_equal(c->rules[0].col, 5);
	char sum[200];
	tun_config_summary(c, sum, sizeof(sum));
	assert_string_equal(sum, "ok: tunnel gke-prod, 1 edge x 2 connections, "
				 "1 ingress rule (0 services)");
	tun_config_free(c);
}

static void test_full(void **state)
{
	(void)state;
	setenv("TUN_TEST_TOKEN", TOKEN "-rotated", 1);
	tun_config *c = load_ok("tunnel: gke-prod\n"
				"token: \"${TUN_TEST_TOKEN}\"\n"
				"name: gke-prod-a\n"
				"edges: [\"127.0.0.1:7844\", \"[::1]:7845\"]\n"
				"connections_per_edge: 8\n"
				"server_name: edge.example.com\n"
				"ca: /etc/meridian/edge-ca.pem\n"
				"drain_timeout: 500ms\n"
				"ingress:\n"
				"  - hostname: App.Example.com\n"
				"    path: /api/\n"
				"    service: http://127.0.0.1:8001\n"
				"  - hostname: \"*.example.com\"\n"
				"    path: /login\n"
				"    path_type: exact\n"
				"    service: http://web.default.svc:8080\n"
				"  - path: /x\n"
				"    path_type: prefix\n"
				"    service: http://127.0.0.1:8001/\n"
				"  - service: http_status:503\n");
	assert_string_equal(c->token, TOKEN "-rotated");
	assert_string_equal(c->name, "gke-prod-a");
	assert_int_equal(c->nedges, 2);
	assert_string_equal(c->edges[1].ip, "::1");
	assert_int_equal(c->edges[1].ss.ss_family, AF_INET6);
	assert_int_equal(c->conns_per_edge, 8);
	assert_string_equal(c->server_name, "edge.example.com");
	assert_string_equal(c->ca, "/etc/meridian/edge-ca.pem");
	assert_int_equal(c->drain_timeout_ms, 500);
	assert_int_equal(c->nrules, 4);
	const tun_rule *r = c->rules;
	assert_string_equal(r[0].hostname, "app.example.com");
	assert_false(r[0].wildcard);
	assert_int_equal(r[0].path_len, 4); /* "/api/" is "/api" */
	assert_false(r[0].exact);
	assert_string_equal(r[0].svc.host, "127.0.0.1");
	assert_int_equal(r[0].svc.port, 8001);
	assert_true(r[1].wildcard);
	assert_true(r[1].exact);
	assert_int_equal(r[1].path_len, 6);
	assert_false(r[1].svc.host_is_ip);
	assert_false(r[2].exact);
	assert_int_equal(r[3].svc.status, 503);
	assert_int_equal(r[1].line, 13);
	assert_int_equal(r[1].col, 5);
	/* the matcher over the loaded rules */
	assert_int_equal(
	    tun_ingress_match(r, 4, "app.example.com:443", 19, "/api/v2?q", 9),
	    0);
	assert_int_equal(
	    tun_ingress_match(r, 4, "b.example.com", 13, "/login", 6), 1);
	assert_int_equal(tun_ingress_match(r, 4, "z", 1, "/x/y", 4), 2);
	assert_int_equal(tun_ingress_match(r, 4, "z", 1, "/", 1), 3);
	char sum[200];
	tun_config_summary(c, sum, sizeof(sum));
	assert_string_equal(sum, "ok: tunnel gke-prod, 2 edges x 8 "
				 "connections, 4 ingress rules (2 services)");
	tun_config_free(c);
	unsetenv("TUN_TEST_TOKEN");
}

static void test_structure_errors(void **state)
{
	(void)state;
	BAD1("", "t.yaml:1:1: empty configuration");
	BAD1("- a\n", "t.yaml:1:1: expected a mapping at the top, got a list");
	{
		const char *const w[] = {
		    "t.yaml:1:1: missing required key 'tunnel'",
		    "t.yaml:1:1: missing required key 'token'",
		    "t.yaml:1:1: missing required key 'edges'",
		    "t.yaml:1:1: missing required key 'ingress'",
		};
		load_bad("name: x\n", w, 4);
	}
	BAD1(HEAD CATCH "tunel: x\n",
	     "t.yaml:6:1: unknown key 'tunel' in the tunnel configuration");
	BAD1(HEAD "ingress:\n  - service: http_status:404\n    host: a\n",
	     "t.yaml:6:5: unknown key 'host' in ingress[0]");
	BAD1(HEAD CATCH "tunnel: y\n",
	     "t.yaml:6:1: duplicate key 'tunnel' (first at line 1)");
	/* a key that is not a string (found by fuzz_tun_config) */
	BAD1(HEAD CATCH "? [a]\n: 1\n",
	     "t.yaml:6:3: mapping keys must be strings, not a list");
	BAD1("tunnel: [a\n", "t.yaml:2:1: YAML syntax error: did not find "
			     "expected ',' or ']' (while parsing a flow "
			     "sequence)");
}

static void test_value_errors(void **state)
{
	(void)state;
	static const char *const rest = "token: " TOKEN "\n"
					"edges: [\"127.0.0.1:7844\"]\n" CATCH;
	char buf[1024];
	static const struct {
		const char *line, *msg;
	} cases[] = {
	    {"tunnel: a/b",
	     "t.yaml:1:9: tunnel: expected 1 to 63 of letters, digits, '.', "
	     "'_', '-', got 'a/b'"},
	    {"tunnel: [a]",
	     "t.yaml:1:9: tunnel: expected 1 to 63 of letters, digits, '.', "
	     "'_', '-', got a list"},
	    {"tunnel:",
	     "t.yaml:1:8: tunnel: expected 1 to 63 of letters, digits, '.', "
	     "'_', '-', got nothing"},
	    {"tunnel: "
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	     "t.yaml:1:9: tunnel: expected 1 to 63 of letters, digits, '.', "
	     "'_', '-', got "
	     "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "a'"},
	    {"tunnel: t\nname: \"a b\"",
	     "t.yaml:2:7: name: expected 1 to 63 of letters, digits, '.', "
	     "'_', '-', got 'a b'"},
	    {"tunnel: t\nconnections_per_edge: 0",
	     "t.yaml:2:23: connections_per_edge: expected an integer from 1 "
	     "to 8, got '0'"},
	    {"tunnel: t\nconnections_per_edge: 9",
	     "t.yaml:2:23: connections_per_edge: expected an integer from 1 "
	     "to 8, got '9'"},
	    {"tunnel: t\nconnections_per_edge: -1",
	     "t.yaml:2:23: connections_per_edge: expected an integer from 1 "
	     "to 8, got '-1'"},
	    {"tunnel: t\nconnections_per_edge: 2x",
	     "t.yaml:2:23: connections_per_edge: expected an integer from 1 "
	     "to 8, got '2x'"},
	    {"tunnel: t\nserver_name: \"edge example\"",
	     "t.yaml:2:14: server_name: only letters, digits, '-' and '.', "
	     "got 'edge example'"},
	    {"tunnel: t\nserver_name: \"*.example.com\"",
	     "t.yaml:2:14: server_name: no wildcard, got '*.example.com'"},
	    {"tunnel: t\nca: \"\"",
	     "t.yaml:2:5: ca: expected a PEM file name, got ''"},
	    {"tunnel: t\nca: {a: 1}",
	     "t.yaml:2:5: ca: expected a PEM file name, got a mapping"},
	    {"tunnel: t\ndrain_timeout: soon",
	     "t.yaml:2:16: drain_timeout: expected a duration up to 1h "
	     "(\"30s\", \"500ms\", \"2m\"), got 'soon'"},
	    {"tunnel: t\ndrain_timeout: 2h",
	     "t.yaml:2:16: drain_timeout: expected a duration up to 1h "
	     "(\"30s\", \"500ms\", \"2m\"), got '2h'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(buf, sizeof(buf), "%s\n%s", cases[i].line, rest);
		BAD1(buf, cases[i].msg);
	}
}

static void test_token_errors(void **state)
{
	(void)state;
	static const char *const rest = "edges: [\"127.0.0.1:7844\"]\n" CATCH;
	char buf[512];
	snprintf(buf, sizeof(buf), "tunnel: t\ntoken: short\n%s", rest);
	BAD1(buf, "t.yaml:2:8: token: expected at least 32 characters, got 5");
	snprintf(buf, sizeof(buf), "tunnel: t\ntoken: \"%s x\"\n%s", TOKEN,
		 rest);
	BAD1(buf, "t.yaml:2:8: token: only printable ASCII, no spaces");
	unsetenv("TUN_TEST_UNSET");
	snprintf(buf, sizeof(buf),
		 "tunnel: t\ntoken: \"${TUN_TEST_UNSET}\"\n%s", rest);
	BAD1(buf, "t.yaml:2:8: environment variable 'TUN_TEST_UNSET' is not "
		  "set");
	/* never the token itself in a message */
	setenv("TUN_TEST_SHORT", "secret-but-short", 1);
	snprintf(buf, sizeof(buf),
		 "tunnel: t\ntoken: \"${TUN_TEST_SHORT}\"\n%s", rest);
	BAD1(buf, "t.yaml:2:8: token: expected at least 32 characters, got 16");
	unsetenv("TUN_TEST_SHORT");
}

static void test_edge_errors(void **state)
{
	(void)state;
	static const char *const head = "tunnel: t\ntoken: " TOKEN "\n";
	char buf[1024];
	static const struct {
		const char *edges;
		const char *msgs[3];
	} cases[] = {
	    {"edges: []",
	     {"t.yaml:3:8: edges: expected 1 to 16 addresses, "
	      "got 0"}},
	    {"edges: 127.0.0.1:7844",
	     {"t.yaml:3:8: edges: expected a list of addresses, got a "
	      "string"}},
	    {"edges: [\"localhost:7844\", \"1.2.3.4\"]",
	     {"t.yaml:3:9: edges[0]: expected IP:port (IPv6 as [::1]:7844), "
	      "got 'localhost:7844'",
	      "t.yaml:3:27: edges[1]: expected IP:port (IPv6 as [::1]:7844), "
	      "got '1.2.3.4'"}},
	    {"edges: [\"1.2.3.4:1\", \"1.2.3.4:1\"]",
	     {"t.yaml:3:22: edges[1]: '1.2.3.4:1' is listed twice"}},
	    {"edges: [[a]]",
	     {"t.yaml:3:9: edges[0]: expected IP:port, got a list"}},
	    {"edges: [\"1.2.3.4:0\", \"[::1]:0\"]",
	     {"t.yaml:3:9: edges[0]: the port must be from 1 to 65535, got "
	      "'1.2.3.4:0'",
	      "t.yaml:3:22: edges[1]: the port must be from 1 to 65535, got "
	      "'[::1]:0'"}},
	    {"edges: [1.1.1.1:1, 1.1.1.1:2, 1.1.1.1:3, 1.1.1.1:4, 1.1.1.1:5, "
	     "1.1.1.1:6, 1.1.1.1:7, 1.1.1.1:8, 1.1.1.1:9, 1.1.1.1:10, "
	     "1.1.1.1:11, 1.1.1.1:12, 1.1.1.1:13, 1.1.1.1:14, 1.1.1.1:15, "
	     "1.1.1.1:16, 1.1.1.1:17]",
	     {"t.yaml:3:8: edges: expected 1 to 16 addresses, got 17"}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s\n" CATCH, head,
			 cases[i].edges);
		size_t n = 0;
		while (n < 3 && cases[i].msgs[n])
			n++;
		load_bad(buf, cases[i].msgs, n);
	}
}

static void test_ingress_errors(void **state)
{
	(void)state;
	char buf[1024];
	static const struct {
		const char *rules;
		const char *msgs[3];
	} cases[] = {
	    {"ingress: []",
	     {"t.yaml:4:10: ingress: expected 1 to 1024 rules, got 0"}},
	    {"ingress: {a: 1}",
	     {"t.yaml:4:10: ingress: expected a list of rules, got a "
	      "mapping"}},
	    {"ingress:\n  - x\n  - service: http_status:404",
	     {"t.yaml:5:5: ingress[0]: expected a mapping, got a string"}},
	    {"ingress:\n  - hostname: a.com\n  - service: http_status:404",
	     {"t.yaml:5:5: ingress[0]: missing required key 'service'"}},
	    {"ingress:\n  - hostname: a.com\n    service: http://127.0.0.1:80",
	     {"t.yaml:5:5: ingress[0]: the last rule must match every request "
	      "(no hostname, no path); add a catch-all such as '- service: "
	      "http_status:404'"}},
	    {"ingress:\n  - path: /\n    service: http://127.0.0.1:80",
	     {"t.yaml:5:5: ingress[0]: the last rule must match every request "
	      "(no hostname, no path); add a catch-all such as '- service: "
	      "http_status:404'"}},
	    {"ingress:\n  - hostname: a.*.com\n    service: http_status:200\n"
	     "  - service: http_status:404",
	     {"t.yaml:5:15: ingress[0].hostname: '*' only as the whole first "
	      "label (\"*.example.com\"), got 'a.*.com'"}},
	    {"ingress:\n  - hostname: [a]\n    service: http_status:200\n"
	     "  - service: http_status:404",
	     {"t.yaml:5:15: ingress[0].hostname: expected a host name, got a "
	      "list"}},
	    {"ingress:\n  - path: api\n    service: http_status:200\n"
	     "  - service: http_status:404",
	     {"t.yaml:5:11: ingress[0].path: must start with \"/\", got "
	      "'api'"}},
	    {"ingress:\n  - path: /a\n    path_type: regex\n"
	     "    service: http_status:200\n  - service: http_status:404",
	     {"t.yaml:6:16: ingress[0].path_type: expected prefix or exact, "
	      "got 'regex'"}},
	    {"ingress:\n  - hostname: a.com\n    path_type: exact\n"
	     "    service: http_status:200\n  - service: http_status:404",
	     {"t.yaml:6:16: ingress[0].path_type: only with a path"}},
	    {"ingress:\n  - hostname: a.com\n    service: http_status:200\n"
	     "  - service: http://10.0.0.1:99999",
	     {"t.yaml:7:14: ingress[1].service: the port must be from 1 to "
	      "65535, got 'http://10.0.0.1:99999'"}},
	    /* a catch-all before the end hides the rules after it (cloudflared
	     * refuses it too); it was accepted without a word */
	    {"ingress:\n  - service: http_status:200\n"
	     "  - hostname: a.com\n    service: http_status:201\n"
	     "  - service: http_status:404",
	     {"t.yaml:5:5: ingress[0]: matches every request (no hostname, "
	      "no path), so the rules after it would never be used; only the "
	      "last rule may"}},
	    {"ingress:\n  - service: https://10.0.0.1:8443",
	     {"t.yaml:5:14: ingress[0].service: https services are not "
	      "supported (use http://), got 'https://10.0.0.1:8443'"}},
	    {"ingress:\n  - service: ~",
	     {"t.yaml:5:14: ingress[0].service: expected http://HOST:PORT or "
	      "http_status:NNN, got nothing"}},
	    {"ingress:\n  - service: http_status:700",
	     {"t.yaml:5:14: ingress[0].service: the status must be from 100 "
	      "to 599, got 'http_status:700'"}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(buf, sizeof(buf), HEAD "%s\n", cases[i].rules);
		size_t n = 0;
		while (n < 3 && cases[i].msgs[n])
			n++;
		load_bad(buf, cases[i].msgs, n);
	}
}

static void test_many_errors_in_order(void **state)
{
	(void)state;
	const char *const w[] = {
	    "t.yaml:1:9: tunnel: expected 1 to 63 of letters, digits, '.', "
	    "'_', '-', got 'a b'",
	    "t.yaml:2:8: token: expected at least 32 characters, got 1",
	    "t.yaml:3:9: edges[0]: expected IP:port (IPv6 as [::1]:7844), got "
	    "'x'",
	    "t.yaml:4:1: unknown key 'extra' in the tunnel configuration",
	    "t.yaml:6:14: ingress[0].service: expected http://HOST:PORT or "
	    "http_status:NNN, got 'x'",
	};
	load_bad("tunnel: a b\ntoken: x\nedges: [x]\nextra: 1\ningress:\n"
		 "  - service: x\n",
		 w, 5);
}

static void test_file(void **state)
{
	(void)state;
	tun_config *c = NULL;
	cfg_diag d = {0};
	assert_int_equal(
	    tun_config_load_file("/nonexistent/tunnel.yaml", &c, &d), -1);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.msgs[0], "/nonexistent/tunnel.yaml"));
	cfg_diag_free(&d);
	char path[] = "/tmp/test_tun_config.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs(HEAD "ingress:\n  - service: http_status:4O4\n", f);
	fclose(f);
	assert_int_equal(tun_config_load_file(path, &c, &d), -1);
	assert_int_equal(d.n, 1);
	char want[256];
	snprintf(want, sizeof(want),
		 "%s:5:14: ingress[0].service: expected http_status:NNN "
		 "(three digits), got 'http_status:4O4'",
		 path);
	assert_string_equal(d.msgs[0], want);
	cfg_diag_free(&d);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal_defaults),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_structure_errors),
	    cmocka_unit_test(test_value_errors),
	    cmocka_unit_test(test_token_errors),
	    cmocka_unit_test(test_edge_errors),
	    cmocka_unit_test(test_ingress_errors),
	    cmocka_unit_test(test_many_errors_in_order),
	    cmocka_unit_test(test_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
