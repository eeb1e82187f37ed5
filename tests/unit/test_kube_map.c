/* test_kube_map.c - the ingress controller's pure parts: objects and watch
 * events from JSON, the store, the mapping of Ingresses to the connector's
 * rules (class, hosts, Exact/Prefix, order across Ingresses, backends by
 * port number and name, ready endpoints, defaultBackend, problems), and
 * endpoint choice in a rule set. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/kube_map.h"
#include "kube/kube_obj.h"
#include "tunnel/tun_ingress.h"
#include "tunnel/tun_rules.h"

#define NS "shop"

static void put(kube_store *s, kube_kind k, const char *json)
{
	const char *why = NULL;
	kube_obj *o = kube_obj_decode(k, json, strlen(json), &why);
	if (!o)
		fail_msg("decode: %s: %s", why, json);
	kube_store_put(s, o);
}

static void ing(kube_store *s, const char *name, const char *ts,
		const char *cls, const char *spec_rest)
{
	char buf[4096];
	snprintf(buf, sizeof(buf),
		 "{\"metadata\":{\"name\":\"%s\",\"resourceVersion\":\"1\","
		 "\"creationTimestamp\":\"%s\"},\"spec\":{%s%s%s%s}}",
		 name, ts, cls ? "\"ingressClassName\":\"" : "", cls ? cls : "",
		 cls ? "\"," : "", spec_rest);
	put(s, KUBE_INGRESS, buf);
}

static void svc(kube_store *s, const char *name, const char *ports)
{
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"ports\":[%s]}}",
		 name, ports);
	put(s, KUBE_SERVICE, buf);
}

static void slice(kube_store *s, const char *name, const char *service,
		  const char *ports, const char *eps)
{
	char buf[2048];
	snprintf(buf, sizeof(buf),
		 "{\"metadata\":{\"name\":\"%s\",\"labels\":{\"kubernetes.io/"
		 "service-name\":\"%s\"}},\"addressType\":\"IPv4\","
		 "\"ports\":[%s],\"endpoints\":[%s]}",
		 name, service, ports, eps);
	put(s, KUBE_SLICE, buf);
}

/* The rule a request matches, as "service-text" (or http_status:NNN). */
static const char *route(tun_ruleset *rs, const char *host, const char *path)
{
	int i = tun_ingress_match(rs->rules, rs->nrules, host, strlen(host),
				  path, strlen(path));
	assert_true(i >= 0);
	return rs->rules[i].svc.text;
}

static uint16_t pick_port(tun_ruleset *rs, const char *host, const char *path)
{
	int i = tun_ingress_match(rs->rules, rs->nrules, host, strlen(host),
				  path, strlen(path));
	tun_svc_addr a;
	if (tun_ruleset_pick(rs, (size_t)i, &a) < 0)
		return 0;
	return ntohs(((struct sockaddr_in *)&a.ss)->sin_port);
}

static void base(kube_store *s)
{
	svc(s, "web", "{\"name\":\"http\",\"port\":80}");
	svc(s, "api", "{\"port\":8080}");
	slice(s, "web-1", "web", "{\"name\":\"http\",\"port\":9001}",
	      "{\"addresses\":[\"127.0.0.2\"],\"conditions\":{\"ready\":true}"
	      "},{\"addresses\":[\"127.0.0.3\"],\"conditions\":{\"ready\":"
	      "false}}");
	slice(s, "api-1", "api", "{\"port\":9002}",
	      "{\"addresses\":[\"127.0.0.4\"]}");
}

#define BE(svcname, port)                                                      \
	"\"backend\":{\"service\":{\"name\":\"" svcname "\",\"port\":" port "}}"

static void test_basic_mapping(void **state)
{
	(void)state;
	kube_store s = {0};
	base(&s);
	ing(&s, "a", "2026-01-01T00:00:00Z", "meridian",
	    "\"rules\":[{\"host\":\"Shop.Example.com\",\"http\":{\"paths\":["
	    "{\"path\":\"/api\",\"pathType\":\"Prefix\"," BE(
		"api",
		"{\"number\":"
		"8080}") "},"
			 "{\"path\":\"/\",\"pathType\":\"Prefix\"," BE(
			     "web",
			     "{\"name\":\"http\"}") "}]}},"
						    "{\"host\":\"other.example."
						    "com\",\"http\":{\"paths\":"
						    "["
						    "{\"path\":\"/"
						    "exact\",\"pathType\":"
						    "\"Exact\"," BE(
							"web", "{\"number\":"
							       "80}") "}]}}]");
	kube_problems p = {0};
	tun_ruleset *rs = kube_map_build(&s, NS, "meridian", false, &p);
	assert_int_equal(p.n, 0);
	assert_string_equal(route(rs, "shop.example.com", "/api/x"),
			    "shop/api:8080");
	assert_string_equal(route(rs, "shop.example.com:443", "/apix"),
			    "shop/web:http");
	assert_string_equal(route(rs, "other.example.com", "/exact"),
			    "shop/web:80");
	/* Exact: not a prefix; the host's own catch-all is the default */
	assert_string_equal(route(rs, "other.example.com", "/exact/x"),
			    "http_status:404");
	assert_string_equal(route(rs, "nobody.example.com", "/"),
			    "http_status:404");
	/* the endpoints: only the ready one, with the slice's port */
	assert_int_equal(pick_port(rs, "shop.example.com", "/"), 9001);
	assert_int_equal(pick_port(rs, "shop.example.com", "/api"), 9002);
	const tun_rule *last = &rs->rules[rs->nrules - 1];
	assert_null(last->hostname);
	assert_null(last->path);
	tun_ruleset_unref(rs);
	kube_problems_free(&p);
	kube_store_clear(&s);
}

static void test_class_and_annotation(void **state)
{
	(void)state;
	kube_store s = {0};
	base(&s);
	ing(&s, "mine", "2026-01-01T00:00:00Z", "meridian",
	    "\"rules\":[{\"host\":\"a.example.com\",\"http\":{\"paths\":["
	    "{\"path\":\"/\",\"pathType\":\"Prefix\"," BE(
		"web", "{\"number\":80}") "}]}}]");
	ing(&s, "theirs", "2026-01-01T00:00:00Z", "nginx",
	    "\"rules\":[{\"host\":\"b.example.com\",\"http\":{\"paths\":["
	    "{\"path\":\"/\",\"pathType\":\"Prefix\"," BE(
		"web", "{\"number\":80}") "}]}}]");
	put(&s, KUBE_INGRESS,
	    "{\"metadata\":{\"name\":\"legacy\",\"annotations\":{"
	    "\"kubernetes.io/ingress.class\":\"meridian\"}},\"spec\":{"
	    "\"rules\":[{\"host\":\"c.example.com\",\"http\":{\"paths\":["
	    "{\"path\":\"/\",\"pathType\":\"Prefix\"," BE(
		"api", "{\"number\":8080}") "}]}}]}}");
	ing(&s, "classless", "2026-01-01T00:00:00Z", NULL,
	    "\"rules\":[{\"host\":\"d.example.com\",\"http\":{\"paths\":["
	    "{\"path\":\"/\",\"pathType\":\"Prefix\"," BE(
		"web", "{\"number\":80}") "}]}}]");
	tun_ruleset *rs = kube_map_build(&s, NS, "meridian", false, NULL);
	assert_string_equal(route(rs, "a.example.com", "/"), "shop/web:80");
	assert_string_equal(route(rs, "b.example.com", "/"), "http_status:404");
	assert_string_equal(route(rs, "c.example.com", "/"), "shop/api:8080");
	assert_string_equal(route(rs, "d.example.com", "/"), "http_status:404");
	tun_ruleset_unref(rs);
	/* without_class: the Ingress with no class is ours too; one of
	 * another class is still not. */
	rs = kube_map_build(&s, NS, "meridian", true, NULL);
	assert_string_equal(route(rs, "d.example.com", "/"), "shop/web:80");
	assert_string_equal(route(rs, "b.example.com", "/"), "http_status:404");
	assert_string_equal(route(rs, "c.example.com", "/"), "shop/api:8080");
	tun_ruleset_unref(rs);
	kube_store_clear(&s);
}

static void test_order_across_ingresses(void **state)
{
	(void)state;
	kube_store s = {0};
	base(&s);
	/* newer Ingress with the longer path wins on it; the older wins
	 * on an equal path */
	ing(&s, "old", "2026-01-01T00:00:00Z", "meridian",
	    "\"rules\":[{\"host\":\"x.example.com\",\"http\":{\"paths\":["
	    "{\"path\":\"/\",\"pathType\":\"Prefix\"," BE(
		"web", "{\"number\":80}") "},"
					  "{\"path\":\"/"
					  "same\",\"pathType\":\"Prefix\"," BE(
					      "web",
					      "{\"number\":80}") "}]}}]");
	ing(&s, "new", "2026-02-01T00:00:00Z", "meridian",
	    "\"rules\":[{\"host\":\"x.example.com\",\"http\":{\"paths\":["
	    "{\"path\":\"/a/b\",\"pathType\":\"Prefix\"," BE(
		"api",
		"{\"number\":8080}") "},"
				     "{\"path\":\"/"
				     "same\",\"pathType\":\"Prefix\"," BE(
					 "api",
					 "{\"number\":8080}") "},"
							      "{\"path\":\"/"
							      "same\","
							      "\"pathType\":"
							      "\"Exact\"," BE(
								  "api",
								  "{\"number\":"
								  "8080}") "}]}"
									   "},"
									   "{\""
									   "hos"
									   "t\""
									   ":\""
									   "*."
									   "exa"
									   "mpl"
									   "e."
									   "com"
									   "\","
									   "\"h"
									   "ttp"
									   "\":"
									   "{\""
									   "pat"
									   "hs"
									   "\":"
									   "["
									   "{\""
									   "pat"
									   "hTy"
									   "pe"
									   "\":"
									   "\"I"
									   "mpl"
									   "eme"
									   "nta"
									   "tio"
									   "nSp"
									   "eci"
									   "fic"
									   "\""
									   "," BE(
									       "api",
									       "{\"number\":8080}") "}]}},"
												    "{\"http\":{\"paths\":[{\"path\":\"/any\",\"pathType\":"
												    "\"Prefix\"," BE(
													"web",
													"{\"number\":80}") "}]}}]");
	tun_ruleset *rs = kube_map_build(&s, NS, "meridian", false, NULL);
	assert_string_equal(route(rs, "x.example.com", "/a/b/c"),
			    "shop/api:8080");
	assert_string_equal(route(rs, "x.example.com", "/a/x"), "shop/web:80");
	/* equal path: Exact first, then the older Ingress's Prefix */
	assert_string_equal(route(rs, "x.example.com", "/same"),
			    "shop/api:8080");
	assert_string_equal(route(rs, "x.example.com", "/same/1"),
			    "shop/web:80");
	/* exact host before the wildcard; the wildcard catches others */
	assert_string_equal(route(rs, "y.example.com", "/zzz"),
			    "shop/api:8080");
	/* a host with rules does not fall through to host-less rules */
	assert_string_equal(route(rs, "x.example.com", "/any"), "shop/web:80");
	assert_string_equal(route(rs, "y.example.com", "/any"),
			    "shop/api:8080");
	assert_string_equal(route(rs, "nohost.test", "/any/1"), "shop/web:80");
	assert_string_equal(route(rs, "nohost.test", "/"), "http_status:404");
	/* the wildcard covers one label (Ingress API): a.y.example.com is
	 * not one of its hosts */
	assert_string_equal(route(rs, "a.y.example.com", "/zzz"),
			    "http_status:404");
	assert_string_equal(route(rs, "a.y.example.com", "/any"),
			    "shop/web:80");
	tun_ruleset_unref(rs);
	kube_store_clear(&s);
}

static void test_default_backend_and_problems(void **state)
{
	(void)state;
	kube_store s = {0};
	base(&s);
	ing(&s, "b-newer", "2026-03-01T00:00:00Z", "meridian",
	    "\"defaultBackend\":{\"service\":{\"name\":\"api\",\"port\":{"
	    "\"number\":8080}}}");
	ing(&s, "a-older", "2026-01-01T00:00:00Z", "meridian",
	    "\"defaultBackend\":{\"service\":{\"name\":\"web\",\"port\":{"
	    "\"name\":\"http\"}}},"
	    "\"rules\":[{\"host\":\"m.example.com\",\"http\":{\"paths\":["
	    "{\"path\":\"/nosvc\",\"pathType\":\"Prefix\"," BE(
		"ghost",
		"{\"number\":80}") "},"
				   "{\"path\":\"/"
				   "noport\",\"pathType\":\"Prefix\"," BE(
				       "web", "{\"number\":81}") "}]}}]");
	kube_problems p = {0};
	tun_ruleset *rs = kube_map_build(&s, NS, "meridian", false, &p);
	assert_int_equal(p.n, 2);
	assert_non_null(strstr(p.msg[0], "no such Service"));
	assert_non_null(strstr(p.msg[1], "no such port"));
	assert_string_equal(route(rs, "zzz.test", "/"), "shop/web:http");
	assert_string_equal(route(rs, "m.example.com", "/other"),
			    "shop/web:http");
	/* a broken backend: no endpoints, the why for the 503 */
	int i = tun_ingress_match(rs->rules, rs->nrules, "m.example.com", 13,
				  "/nosvc", 6);
	tun_svc_addr a;
	assert_int_equal(tun_ruleset_pick(rs, (size_t)i, &a), -1);
	assert_non_null(strstr(rs->rules[i].svc.why, "no such Service"));
	kube_problems q = {0};
	tun_ruleset *rs2 = kube_map_build(&s, NS, "meridian", false, &q);
	assert_true(kube_problems_equal(&p, &q));
	tun_ruleset_unref(rs2);
	kube_problems_free(&q);
	tun_ruleset_unref(rs);
	kube_problems_free(&p);
	kube_store_clear(&s);
}

/* The catch-all of a host is the defaultBackend of the oldest Ingress with
 * a rule for that host that has one, not another Ingress's: a request to
 * t1.example.com that none of t1's paths match went to the oldest
 * Ingress's defaultBackend (here a-old's web) instead of t1's own. A rule
 * with a host and no paths sends its whole host to its Ingress's
 * default; without one of its own, a host keeps the namespace catch-all. */
static void test_default_backend_per_host(void **state)
{
	(void)state;
	kube_store s = {0};
	base(&s);
#define DEF(svcname, port)                                                     \
	"\"defaultBackend\":{\"service\":{\"name\":\"" svcname                 \
	"\",\"port\":" port "}},"
#define ONE(host, path, svcname, port)                                         \
	"\"rules\":[{\"host\":\"" host                                         \
	"\",\"http\":{\"paths\":[{\"path\":\"" path                            \
	"\",\"pathType\":\"Prefix\"," BE(svcname, port) "}]}}]"
	ing(&s, "a-old", "2026-01-01T00:00:00Z", "meridian",
	    "\"defaultBackend\":{\"service\":{\"name\":\"web\",\"port\":{"
	    "\"name\":\"http\"}}}");
	ing(&s, "t1", "2026-02-01T00:00:00Z", "meridian",
	    DEF("api", "{\"number\":8080}")
		ONE("t1.example.com", "/a", "web", "{\"number\":80}"));
	ing(&s, "t2", "2026-03-01T00:00:00Z", "meridian",
	    ONE("t2.example.com", "/a", "web", "{\"number\":80}"));
	ing(&s, "s-old", "2026-03-02T00:00:00Z", "meridian",
	    ONE("s.example.com", "/a", "web", "{\"number\":80}"));
	ing(&s, "s-new", "2026-03-03T00:00:00Z", "meridian",
	    DEF("api", "{\"number\":8080}")
		ONE("s.example.com", "/b", "web", "{\"number\":80}"));
	ing(&s, "t1-new", "2026-03-04T00:00:00Z", "meridian",
	    DEF("web", "{\"number\":80}")
		ONE("t1.example.com", "/c", "web", "{\"number\":80}"));
	ing(&s, "bare", "2026-04-01T00:00:00Z", "meridian",
	    DEF("api", "{\"number\":8080}") "\"rules\":[{\"host\":"
					    "\"bare.example.com\"}]");
	ing(&s, "nohost", "2026-05-01T00:00:00Z", "meridian",
	    "\"rules\":[{\"http\":{\"paths\":[{\"path\":\"/nohost\","
	    "\"pathType\":\"Prefix\"," BE("web", "{\"number\":80}") "}]}}]");
#undef DEF
#undef ONE
	kube_problems p = {0};
	tun_ruleset *rs = kube_map_build(&s, NS, "meridian", false, &p);
	assert_int_equal(p.n, 0);
	assert_string_equal(route(rs, "t1.example.com", "/a"), "shop/web:80");
	assert_string_equal(route(rs, "t1.example.com", "/zzz"),
			    "shop/api:8080");
	assert_string_equal(route(rs, "t2.example.com", "/zzz"),
			    "shop/web:http");
	assert_string_equal(route(rs, "s.example.com", "/zzz"),
			    "shop/api:8080");
	assert_string_equal(route(rs, "bare.example.com", "/nohost"),
			    "shop/api:8080");
	assert_string_equal(route(rs, "zzz.test", "/nohost"), "shop/web:80");
	assert_string_equal(route(rs, "zzz.test", "/other"), "shop/web:http");
	tun_ruleset_unref(rs);
	kube_problems_free(&p);
	kube_store_clear(&s);
}

/* Problems are logged: an invalid host or path from the API is reported
 * without its control characters. */
static void test_problems_have_no_control_characters(void **state)
{
	(void)state;
	kube_store s = {0};
	base(&s);
	ing(&s, "evil", "2026-01-01T00:00:00Z", "meridian",
	    "\"rules\":[{\"host\":\"a.example.com\\nfake: line\","
	    "\"http\":{\"paths\":[{\"path\":\"/\"," BE(
		"web", "{\"number\":80}") "}]}},"
					  "{\"host\":\"b.example.com\","
					  "\"http\":{\"paths\":[{\"path\":"
					  "\"/x\\u001b[31m\","
					  "\"pathType\":\"Prefix\"," BE(
					      "web",
					      "{\"number\":80}") "}]}}]");
	kube_problems p = {0};
	tun_ruleset *rs = kube_map_build(&s, NS, "meridian", false, &p);
	assert_int_equal(p.n, 2);
	for (size_t i = 0; i < p.n; i++)
		for (const char *c = p.msg[i]; *c; c++)
			assert_true((unsigned char)*c >= ' ' && *c != 0x7f);
	assert_non_null(strstr(p.msg[0], "a.example.com?fake: line"));
	tun_ruleset_unref(rs);
	kube_problems_free(&p);
	kube_store_clear(&s);
}

/* Objects that would make hundreds of thousands of rules (the API is not
 * trusted): the connector gets at most KUBE_MAX_MAP_RULES paths, oldest
 * Ingresses first, and the problems are bounded too. */
static void test_rules_and_problems_bounded(void **state)
{
	(void)state;
	kube_store s = {0};
	base(&s);
	ing(&s, "old", "2026-01-01T00:00:00Z", "meridian",
	    "\"rules\":[{\"host\":\"old.example.com\",\"http\":{\"paths\":[{"
	    "\"path\":\"/\"," BE("web", "{\"number\":80}") "}]}}]");
	/* 256 rules of 256 paths each, none with a backend (a problem each) */
	size_t cap = 256 * 256 * 16 + 65536, n = 0;
	char *spec = malloc(cap);
	assert_non_null(spec);
	n += (size_t)snprintf(spec + n, cap - n, "\"rules\":[");
	for (int r = 0; r < 256; r++) {
		n += (size_t)snprintf(spec + n, cap - n,
				      "%s{\"host\":\"h%d.example.com\","
				      "\"http\":{\"paths\":[",
				      r ? "," : "", r);
		for (int k = 0; k < 256; k++)
			n += (size_t)snprintf(spec + n, cap - n,
					      "%s{\"path\":\"/p%d\"}",
					      k ? "," : "", k);
		n += (size_t)snprintf(spec + n, cap - n, "]}}");
	}
	snprintf(spec + n, cap - n, "]");
	char *obj = malloc(n + 256);
	assert_non_null(obj);
	snprintf(obj, n + 256,
		 "{\"metadata\":{\"name\":\"big\",\"creationTimestamp\":"
		 "\"2026-02-01T00:00:00Z\"},\"spec\":{\"ingressClassName\":"
		 "\"meridian\",%s}}",
		 spec);
	put(&s, KUBE_INGRESS, obj);
	free(obj);
	free(spec);
	kube_problems p = {0};
	tun_ruleset *rs = kube_map_build(&s, NS, "meridian", false, &p);
	assert_true(rs->nrules <= 2 * KUBE_MAX_MAP_RULES + 1);
	assert_true(p.n <= KUBE_MAX_PROBLEMS + 2);
	assert_non_null(strstr(p.msg[p.n - 1], "are left out"));
	assert_non_null(strstr(p.msg[p.n - 2], "more problems"));
	/* the older Ingress keeps its place */
	assert_string_equal(route(rs, "old.example.com", "/"), "shop/web:80");
	tun_ruleset_unref(rs);
	kube_problems_free(&p);
	kube_store_clear(&s);
}

static void test_endpoints_round_robin(void **state)
{
	(void)state;
	kube_store s = {0};
	svc(&s, "web", "{\"name\":\"http\",\"port\":80}");
	slice(&s, "web-1", "web", "{\"name\":\"http\",\"port\":9001}",
	      "{\"addresses\":[\"127.0.0.2\"]},{\"addresses\":[\"127.0.0.3\"]"
	      ",\"conditions\":{\"ready\":null}}");
	slice(&s, "web-2", "web", "{\"name\":\"http\",\"port\":9001}",
	      "{\"addresses\":[\"127.0.0.2\"]}"); /* the same: once */
	ing(&s, "a", "2026-01-01T00:00:00Z", "meridian",
	    "\"defaultBackend\":{\"service\":{\"name\":\"web\",\"port\":{"
	    "\"number\":80}}}");
	tun_ruleset *rs = kube_map_build(&s, NS, "meridian", false, NULL);
	assert_int_equal(rs->nrules, 1);
	assert_int_equal(rs->rules[0].svc.neps, 2);
	uint32_t seen = 0;
	for (int k = 0; k < 4; k++) {
		tun_svc_addr a;
		assert_int_equal(tun_ruleset_pick(rs, 0, &a), 0);
		struct sockaddr_in *v4 = (struct sockaddr_in *)&a.ss;
		seen |= 1u << (ntohl(v4->sin_addr.s_addr) & 0xff);
	}
	assert_int_equal(seen, (1u << 2) | (1u << 3));
	tun_ruleset_unref(rs);
	/* no slice ready: 503 */
	kube_store_del(&s, KUBE_SLICE, "web-1");
	kube_store_del(&s, KUBE_SLICE, "web-2");
	rs = kube_map_build(&s, NS, "meridian", false, NULL);
	tun_svc_addr a;
	assert_int_equal(tun_ruleset_pick(rs, 0, &a), -1);
	assert_null(rs->rules[0].svc.why);
	tun_ruleset_unref(rs);
	kube_store_clear(&s);
}

static void test_events(void **state)
{
	(void)state;
	kube_event ev;
	const char *why;
	const char *add = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{"
			  "\"name\":\"web\",\"resourceVersion\":\"42\"},"
			  "\"spec\":{\"ports\":[{\"port\":80}]}}}";
	assert_int_equal(
	    kube_event_decode(KUBE_SERVICE, add, strlen(add), &ev, &why), 0);
	assert_int_equal(ev.type, KUBE_EV_ADDED);
	assert_string_equal(ev.rv, "42");
	assert_string_equal(ev.obj->name, "web");
	assert_int_equal(ev.obj->u.svc.nports, 1);
	kube_store s = {0};
	kube_store_put(&s, ev.obj);
	const char *bm = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":"
			 "\"Service\",\"metadata\":{\"resourceVersion\":"
			 "\"77\"}}}";
	assert_int_equal(
	    kube_event_decode(KUBE_SERVICE, bm, strlen(bm), &ev, &why), 0);
	assert_int_equal(ev.type, KUBE_EV_BOOKMARK);
	assert_string_equal(ev.rv, "77");
	assert_null(ev.obj);
	const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":"
			   "\"Status\",\"code\":410,\"message\":\"too old "
			   "resource version\"}}";
	assert_int_equal(
	    kube_event_decode(KUBE_SERVICE, gone, strlen(gone), &ev, &why), 0);
	assert_int_equal(ev.type, KUBE_EV_ERROR);
	assert_int_equal(ev.code, 410);
	assert_string_equal(ev.message, "too old resource version");
	const char *del = "{\"type\":\"DELETED\",\"object\":{\"metadata\":{"
			  "\"name\":\"web\",\"resourceVersion\":\"43\"}}}";
	assert_int_equal(
	    kube_event_decode(KUBE_SERVICE, del, strlen(del), &ev, &why), 0);
	assert_true(kube_store_del(&s, KUBE_SERVICE, ev.obj->name));
	kube_obj_free(ev.obj);
	assert_int_equal(s.n[KUBE_SERVICE], 0);
	/* garbage */
	assert_int_equal(kube_event_decode(KUBE_SERVICE, "{", 1, &ev, &why),
			 -1);
	const char *noname = "{\"type\":\"ADDED\",\"object\":{}}";
	assert_int_equal(
	    kube_event_decode(KUBE_INGRESS, noname, strlen(noname), &ev, &why),
	    -1);
	const char *odd = "{\"type\":\"SOMETHING\",\"object\":{}}";
	assert_int_equal(
	    kube_event_decode(KUBE_INGRESS, odd, strlen(odd), &ev, &why), -1);
	/* What is logged carries no control characters from the API. */
	const char *inj = "{\"type\":\"ERROR\",\"object\":{\"code\":500,"
			  "\"message\":\"a\\nfake line\\u001b[31m\"}}";
	assert_int_equal(
	    kube_event_decode(KUBE_SERVICE, inj, strlen(inj), &ev, &why), 0);
	assert_string_equal(ev.message, "a fake line [31m");
	const char *badname = "{\"type\":\"ADDED\",\"object\":{"
			      "\"metadata\":{\"name\":\"web\\nx\"}}}";
	assert_int_equal(kube_event_decode(KUBE_SERVICE, badname,
					   strlen(badname), &ev, &why),
			 -1);
	assert_non_null(why);
	assert_string_equal(ev.name, "");
	/* an object past the caps: -1, but its type and name (a watch then
	 * leaves out the version it held) */
	char big[2048];
	size_t n = (size_t)snprintf(big, sizeof(big),
				    "{\"type\":\"MODIFIED\",\"object\":{"
				    "\"metadata\":{\"name\":\"many\","
				    "\"resourceVersion\":\"50\"},\"spec\":{"
				    "\"ports\":[");
	for (int i = 0; i <= KUBE_MAX_PORTS; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n,
				      "%s{\"port\":%d}", i ? "," : "", i + 1);
	snprintf(big + n, sizeof(big) - n, "]}}}");
	assert_int_equal(
	    kube_event_decode(KUBE_SERVICE, big, strlen(big), &ev, &why), -1);
	assert_int_equal(ev.type, KUBE_EV_MODIFIED);
	assert_string_equal(ev.name, "many");
	assert_string_equal(ev.rv, "50");
	assert_null(ev.obj);
	kube_store_clear(&s);
}

static void test_list_and_store(void **state)
{
	(void)state;
	const char *l = "{\"kind\":\"ServiceList\",\"metadata\":{"
			"\"resourceVersion\":\"100\"},\"items\":["
			"{\"metadata\":{\"name\":\"b\"}},"
			"{\"metadata\":{\"name\":\"a\"}},"
			"{\"nometa\":1}]}";
	kube_list list;
	const char *why;
	assert_int_equal(
	    kube_list_decode(KUBE_SERVICE, l, strlen(l), &list, &why), 0);
	assert_string_equal(list.rv, "100");
	assert_int_equal(list.n, 2);
	kube_store s = {0};
	put(&s, KUBE_SERVICE, "{\"metadata\":{\"name\":\"stale\"}}");
	kube_store_replace(&s, KUBE_SERVICE, &list);
	kube_list_free(&list);
	assert_int_equal(s.n[KUBE_SERVICE], 2);
	assert_string_equal(s.objs[KUBE_SERVICE][0]->name, "a");
	assert_null(kube_store_get(&s, KUBE_SERVICE, "stale"));
	assert_false(kube_store_del(&s, KUBE_SERVICE, "zzz"));
	kube_store_clear(&s);
	assert_int_equal(kube_list_decode(KUBE_SERVICE, "[]", 2, &list, &why),
			 -1);
	kube_list_free(&list);
	/* Pages: the continue token is kept; appended pages move their
	 * items, and the last page's rv and token are the list's. */
	const char *p1 = "{\"metadata\":{\"resourceVersion\":\"7\","
			 "\"continue\":\"eyJ2Ijoi-_0=\"},\"items\":["
			 "{\"metadata\":{\"name\":\"a\"}}]}";
	const char *p2 = "{\"metadata\":{\"resourceVersion\":\"7\"},"
			 "\"items\":[{\"metadata\":{\"name\":\"b\"}}]}";
	kube_list all = {0}, page;
	assert_int_equal(
	    kube_list_decode(KUBE_SERVICE, p1, strlen(p1), &page, &why), 0);
	assert_string_equal(page.cont, "eyJ2Ijoi-_0=");
	assert_int_equal(kube_list_append(&all, &page, &why), 0);
	assert_int_equal(page.n, 0);
	assert_null(page.cont);
	kube_list_free(&page);
	assert_string_equal(all.cont, "eyJ2Ijoi-_0=");
	assert_int_equal(
	    kube_list_decode(KUBE_SERVICE, p2, strlen(p2), &page, &why), 0);
	assert_null(page.cont);
	assert_int_equal(kube_list_append(&all, &page, &why), 0);
	kube_list_free(&page);
	assert_int_equal(all.n, 2);
	assert_null(all.cont);
	assert_string_equal(all.rv, "7");
	assert_string_equal(all.items[1]->name, "b");
	kube_list_free(&all);
	/* A token that could not be one (it would go into a URL) */
	const char *bad = "{\"metadata\":{\"continue\":\"a&watch=1\"},"
			  "\"items\":[]}";
	assert_int_equal(
	    kube_list_decode(KUBE_SERVICE, bad, strlen(bad), &page, &why), -1);
	assert_non_null(strstr(why, "continue token"));
	kube_list_free(&page);
	assert_true(kube_parse_time("1970-01-02T00:00:00Z") == 86400);
	assert_true(kube_parse_time("nope") == -1);
}

static void test_ingress_status_decoded(void **state)
{
	(void)state;
	const char *j =
	    "{\"metadata\":{\"name\":\"a\"},\"status\":{\"loadBalancer\":{"
	    "\"ingress\":[{\"hostname\":\"shop.example.com\"}]}}}";
	kube_obj *o = kube_obj_decode(KUBE_INGRESS, j, strlen(j), NULL);
	assert_non_null(o);
	assert_int_equal(o->u.ing.nstatus, 1);
	assert_string_equal(o->u.ing.status[0].hostname, "shop.example.com");
	assert_null(o->u.ing.status[0].ip);
	kube_obj_free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic_mapping),
	    cmocka_unit_test(test_class_and_annotation),
	    cmocka_unit_test(test_order_across_ingresses),
	    cmocka_unit_test(test_default_backend_and_problems),
	    cmocka_unit_test(test_default_backend_per_host),
	    cmocka_unit_test(test_problems_have_no_control_characters),
	    cmocka_unit_test(test_rules_and_problems_bounded),
	    cmocka_unit_test(test_endpoints_round_robin),
	    cmocka_unit_test(test_events),
	    cmocka_unit_test(test_list_and_store),
	    cmocka_unit_test(test_ingress_status_decoded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
