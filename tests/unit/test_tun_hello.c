/* test_tun_hello.c - the tunnel hello (tun_hello.c): the one request that
 * joins a tunnel, every refusal and its status, one answer for an unknown
 * tunnel and a wrong token, the connector's name made safe for logs, and
 * the constant-time token comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config/cfg_load.h"
#include "tunnel/tun_hello.h"

#define TOKEN "0123456789abcdef0123456789abcdef"

static cfg_snapshot *cfg;

static int setup(void **state)
{
	(void)state;
	static const char yaml[] =
	    "tunnels:\n"
	    "  - { id: gke, token: " TOKEN " }\n"
	    "  - { id: eks, token: another-" TOKEN " }\n";
	cfg_diag d = {0};
	int rc = cfg_load_string("t.yaml", yaml, strlen(yaml), &cfg, &d);
	cfg_diag_free(&d);
	return rc;
}

static int teardown(void **state)
{
	(void)state;
	cfg_snapshot_free(cfg);
	return 0;
}

/* Judge a hello made of the request line and the given fields. */
static void judge(const char *line, const char *fields, tun_hello *h)
{
	char buf[2048];
	int n = snprintf(buf, sizeof(buf), "%s\r\nHost: edge\r\n%s\r\n", line,
			 fields);
	http1_request req;
	int r = http1_parse_request(buf, (size_t)n, NULL, &req);
	assert_true(r > 0);
	tun_hello_judge(&req, buf, cfg, h);
}

#define UPGRADE "Connection: Upgrade\r\nUpgrade: meridian-tunnel/1\r\n"
#define GOOD	"GET /.meridian/tunnel/v1 HTTP/1.1"

static void test_accepted(void **state)
{
	(void)state;
	tun_hello h;
	judge(GOOD,
	      UPGRADE "Authorization: Bearer " TOKEN "\r\n"
		      "Meridian-Tunnel: gke\r\n"
		      "Meridian-Connector: node-1.pod/7 \"x\"\r\n",
	      &h);
	assert_int_equal(h.status, 101);
	assert_string_equal(h.tunnel->id, "gke");
	assert_string_equal(h.connector, "node-1.pod_7__x_");
	char ans[512];
	size_t n = tun_hello_answer(&h, ans, sizeof(ans));
	assert_string_equal(ans, "HTTP/1.1 101 Switching Protocols\r\n"
				 "Connection: Upgrade\r\n"
				 "Upgrade: meridian-tunnel/1\r\n\r\n");
	assert_int_equal(n, strlen(ans));
	/* "keep-alive, Upgrade" lists it too; no name: "unnamed". */
	judge(GOOD,
	      "Connection: keep-alive, Upgrade\r\n"
	      "Upgrade: meridian-tunnel/1\r\n"
	      "Authorization: Bearer another-" TOKEN "\r\n"
	      "Meridian-Tunnel: eks\r\n",
	      &h);
	assert_int_equal(h.status, 101);
	assert_string_equal(h.tunnel->id, "eks");
	assert_string_equal(h.connector, "unnamed");
}

static void test_refusals(void **state)
{
	(void)state;
	static const struct {
		const char *line, *fields;
		int status;
	} cases[] = {
	    {GOOD,
	     UPGRADE "Authorization: Bearer x" TOKEN "\r\n"
		     "Meridian-Tunnel: gke\r\n",
	     401},
	    {GOOD,
	     UPGRADE "Authorization: Bearer " TOKEN "\r\n"
		     "Meridian-Tunnel: nope\r\n",
	     401},
	    /* the other tunnel's token */
	    {GOOD,
	     UPGRADE "Authorization: Bearer another-" TOKEN "\r\n"
		     "Meridian-Tunnel: gke\r\n",
	     401},
	    {GOOD, UPGRADE "Meridian-Tunnel: gke\r\n", 401},
	    {GOOD,
	     UPGRADE "Authorization: Basic " TOKEN "\r\n"
		     "Meridian-Tunnel: gke\r\n",
	     401},
	    {GOOD, UPGRADE "Authorization: Bearer " TOKEN "\r\n", 401},
	    {"GET /other HTTP/1.1", UPGRADE, 404},
	    {"POST /.meridian/tunnel/v1 HTTP/1.1", UPGRADE, 400},
	    {"GET /.meridian/tunnel/v1 HTTP/1.0", UPGRADE, 400},
	    {GOOD, "Authorization: Bearer " TOKEN "\r\n", 426},
	    {GOOD, "Connection: Upgrade\r\nUpgrade: websocket\r\n", 426},
	    {GOOD, "Connection: close\r\nUpgrade: meridian-tunnel/1\r\n", 426},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tun_hello h;
		judge(cases[i].line, cases[i].fields, &h);
		if (h.status != cases[i].status)
			print_error("case %zu: %d\n", i, h.status);
		assert_int_equal(h.status, cases[i].status);
		assert_null(h.tunnel);
		char ans[512];
		tun_hello_answer(&h, ans, sizeof(ans));
		/* A text body saying why, and the connection closes. */
		assert_non_null(strstr(ans, "Connection: close\r\n"));
		assert_non_null(strstr(ans, h.why));
		assert_null(strstr(ans, TOKEN));
	}
	/* One answer for an unknown tunnel and a wrong token. */
	tun_hello a, b;
	judge(GOOD,
	      UPGRADE "Authorization: Bearer " TOKEN "\r\n"
		      "Meridian-Tunnel: nope\r\n",
	      &a);
	judge(GOOD,
	      UPGRADE "Authorization: Bearer wrong\r\n"
		      "Meridian-Tunnel: gke\r\n",
	      &b);
	char x[512], y[512];
	tun_hello_answer(&a, x, sizeof(x));
	tun_hello_answer(&b, y, sizeof(y));
	assert_string_equal(x, y);
}

static void test_token_eq(void **state)
{
	(void)state;
	assert_true(tun_token_eq(TOKEN, strlen(TOKEN), TOKEN));
	assert_false(tun_token_eq(TOKEN, strlen(TOKEN) - 1, TOKEN));
	assert_false(tun_token_eq(TOKEN "x", strlen(TOKEN) + 1, TOKEN));
	assert_false(tun_token_eq("", 0, TOKEN));
	assert_false(tun_token_eq(TOKEN, strlen(TOKEN), ""));
	/* A NUL inside the presented bytes is a difference, not an end. */
	char t[] = TOKEN;
	t[5] = '\0';
	assert_false(tun_token_eq(t, sizeof(t) - 1, TOKEN));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepted),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_token_eq),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
