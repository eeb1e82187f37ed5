/* fuzz_tun_ingress.c - libFuzzer harness for the connector's ingress
 * matching, whose inputs (:authority, :path) come from the edge, and for
 * the rule validators and the service parser.
 *
 * The input is "authority\npath" (no '\n': all authority, path "/").
 * Contract: the match is an index into the rules or -1; with the
 * catch-all last it is never -1; the same input matches the same rule
 * twice; a host match is case-insensitive (the upper-cased authority
 * matches the same rule); the host part is never longer than the
 * authority. The whole input also goes through tun_ingress_check_hostname,
 * tun_ingress_check_path and tun_service_parse (errors are static
 * strings; a parsed service has a host or a status in range).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "core/core_arena.h"
#include "tunnel/tun_config.h"
#include "tunnel/tun_ingress.h"

static tun_rule mk(const char *host, const char *path, bool exact)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return 0;
	const tun_rule rules[] = {
	    mk("app.example.com", "/api", false),
	    mk("app.example.com", NULL, false),
	    mk("*.example.com", "/login", true),
	    mk(NULL, "/", false),
	    mk(NULL, NULL, false),
	};
	const size_t n = sizeof(rules) / sizeof(rules[0]);
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	size_t alen = nl ? (size_t)(nl - in) : size;
	const char *path = nl ? nl + 1 : "/";
	size_t plen = nl ? size - alen - 1 : 1;

	CHECK(tun_ingress_host_len(in, alen) <= alen);
	int m = tun_ingress_match(rules, n, in, alen, path, plen);
	CHECK(m >= 0 && (size_t)m < n);
	CHECK(tun_ingress_match(rules, n, in, alen, path, plen) == m);
	CHECK(tun_ingress_match(rules, n - 1, in, alen, path, plen) < (int)n);
	char *up = malloc(alen + 1);
	for (size_t i = 0; i < alen; i++)
		up[i] =
		    in[i] >= 'a' && in[i] <= 'z' ? (char)(in[i] - 32) : in[i];
	CHECK(tun_ingress_match(rules, n, up, alen, path, plen) == m);
	free(up);

	const char *why = tun_ingress_check_hostname(in, size);
	CHECK(!why || why[0]);
	why = tun_ingress_check_path(in, size);
	CHECK(!why || why[0]);
	char *z = malloc(size + 1);
	memcpy(z, in, size);
	z[size] = '\0';
	core_arena *a = core_arena_new(0);
	tun_service svc;
	why = tun_service_parse(a, z, size, &svc);
	if (!why) {
		if (svc.kind == TUN_SVC_STATUS)
			CHECK(svc.status >= 100 && svc.status <= 599);
		else
			CHECK(svc.host && svc.host[0] && svc.port);
	}
	core_arena_free(a);
	free(z);
	return 0;
}
