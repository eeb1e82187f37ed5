/* test_cfg_json.c - the config model and the API's JSON: API objects
 * merged with the file through the same tables, their errors (field paths,
 * references and duplicates across both sources), read-only fields, the
 * rendering of every key, round trips of the file's and the API's objects,
 * and PATCH. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/cfg_json.h"
#include "config/cfg_load.h"
#include "config/cfg_schema.h"
#include "core/core_util.h"

#define FIXTURE MERIDIAN_SOURCE_ROOT "/tests/unit/cfg/json_full.yaml"
/* How the API would print bodies: weights like 0.1 as 0.1. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

#define MON(id, json)                                                          \
	{                                                                      \
		CFG_JSON_MONITOR, id, json, NULL                               \
	}
#define POOL(id, json)                                                         \
	{                                                                      \
		CFG_JSON_POOL, id, json, NULL                                  \
	}
#define LB(id, json)                                                           \
	{                                                                      \
		CFG_JSON_LB, id, json, NULL                                    \
	}

/* A file with one of each kind, to merge API objects with. */
static const char file_yaml[] =
    "monitors:\n"
    "  - { id: m1, interval: 10s }\n"
    "pools:\n"
    "  - { id: p1, monitor: m1, origins: [ { name: o, address: 127.0.0.1 "
    "} ] }\n"
    "load_balancers:\n"
    "  - { name: file.example.com, default_pools: [p1] }\n";

static const char api_monitor[] =
    "{\"type\": \"https\", \"method\": \"HEAD\", \"path\": \"/health\","
    " \"header\": {\"Host\": [\"app.example.com\"]}, \"port\": 8443,"
    " \"timeout\": 3, \"retries\": 1, \"interval\": 15,"
    " \"expected_codes\": \"2xx\", \"expected_body\": \"alive\","
    " \"follow_redirects\": true, \"allow_insecure\": false,"
    " \"consecutive_up\": 2, \"consecutive_down\": 3,"
    " \"description\": \"api check\"}";

static const char api_pool[] =
    "{\"name\": \"aws-east\", \"description\": \"EKS\", \"enabled\": true,"
    " \"minimum_origins\": 1, \"monitor\": \"api-mon\","
    " \"origins\": [{\"name\": \"eks-1\", \"address\": \"127.0.0.1\","
    " \"port\": 9101, \"weight\": 0.5, \"enabled\": true},"
    " {\"name\": \"eks-2\", \"address\": \"::1\", \"port\": 9102,"
    " \"weight\": 1, \"header\": {\"Host\": [\"eks.internal\"]}}],"
    " \"latitude\": 39.0, \"longitude\": -77.5,"
    " \"check_regions\": [\"ENAM\"],"
    " \"origin_steering\": {\"policy\": \"hash\"},"
    " \"notification_filter\": {\"pool\": {\"healthy\": null}}}";

static const char api_lb[] =
    "{\"name\": \"app.example.com\", \"description\": \"app\","
    " \"proxied\": false, \"ttl\": 60,"
    " \"default_pools\": [\"api-pool\", \"p1\"],"
    " \"fallback_pool\": \"p1\","
    " \"region_pools\": {\"ENAM\": [\"api-pool\"], \"WEU\": [\"p1\"]},"
    " \"country_pools\": {}, \"pop_pools\": {},"
    " \"steering_policy\": \"geo\","
    " \"random_steering\": {\"default_weight\": 0.25,"
    " \"pool_weights\": {\"p1\": 0.1}},"
    " \"adaptive_routing\": {\"failover_across_pools\": true},"
    " \"location_strategy\": {\"mode\": \"resolver_ip\","
    " \"prefer_ecs\": \"always\"},"
    " \"session_affinity\": \"cookie\", \"session_affinity_ttl\": 1800,"
    " \"session_affinity_attributes\": {\"samesite\": \"Lax\","
    " \"secure\": \"Always\", \"drain_duration\": 30,"
    " \"zero_downtime_failover\": \"temporary\"},"
    " \"rules\": [{\"name\": \"r\", \"priority\": 1, \"disabled\": false,"
    " \"condition\": \"true\", \"overrides\": {\"ttl\": \"30\"}}]}";

static cfg_snapshot *merged_ok(const char *yaml, const cfg_json_obj *objs,
			       size_t n)
{
	cfg_snapshot *s = NULL;
	cfg_diag d = {0};
	int rc = cfg_load_merged("t.yaml", yaml, yaml ? strlen(yaml) : 0, objs,
				 n, &s, &d);
	for (size_t i = 0; i < d.n; i++)
		print_error("unexpected: %s\n", d.msgs[i]);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	assert_non_null(s);
	cfg_diag_free(&d);
	return s;
}

/* Load and expect exactly the given errors, in order (NULL ends). */
static void expect_errors(const char *yaml, const cfg_json_obj *objs, size_t n,
			  ...)
{
	cfg_snapshot *s = (cfg_snapshot *)1;
	cfg_diag d = {0};
	int rc = cfg_load_merged("t.yaml", yaml, yaml ? strlen(yaml) : 0, objs,
				 n, &s, &d);
	assert_int_equal(rc, -1);
	assert_null(s);
	va_list ap;
	va_start(ap, n);
	size_t i = 0;
	const char *want;
	bool ok = true;
	while ((want = va_arg(ap, const char *))) {
		if (i >= d.n || strcmp(d.msgs[i], want)) {
			print_error(
			    "error %zu: want '%s'\n          got  '%s'\n", i,
			    want, i < d.n ? d.msgs[i] : "(none)");
			ok = false;
		}
		i++;
	}
	va_end(ap);
	for (size_t j = i; j < d.n; j++) {
		print_error("extra error: %s\n", d.msgs[j]);
		ok = false;
	}
	cfg_diag_free(&d);
	assert_true(ok);
}

#define END (const char *)NULL

static char *dump(const json_t *j)
{
	char *s = json_dumps(j, DUMP_FLAGS | JSON_ENCODE_ANY);
	assert_non_null(s);
	return s;
}

static char *read_fixture(size_t *len)
{
	FILE *f = fopen(FIXTURE, "rb");
	assert_non_null(f);
	static char buf[1 << 16];
	*len = fread(buf, 1, sizeof(buf) - 1, f);
	assert_true(*len > 0 && *len < sizeof(buf) - 1);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static cfg_snapshot *load_fixture(void)
{
	setenv("CFG_TEST_TOKEN", "tok-edit", 1);
	size_t len;
	const char *yaml = read_fixture(&len);
	cfg_snapshot *s = NULL;
	cfg_diag d = {0};
	int rc = cfg_load_string(FIXTURE, yaml, len, &s, &d);
	for (size_t i = 0; i < d.n; i++)
		print_error("%s\n", d.msgs[i]);
	assert_int_equal(rc, 0);
	cfg_diag_free(&d);
	return s;
}

/* ---- structural equality, walked from the key tables ---- */

static const cfg_table *table_of(const char *list)
{
	for (size_t i = 0; i < cfg_root_table.nkeys; i++)
		if (!strcmp(cfg_root_table.keys[i].name, list))
			return cfg_root_table.keys[i].item->sub;
	fail();
	return NULL;
}

static uint64_t get_uint(const void *p, size_t size)
{
	switch (size) {
	case 1:
		return *(const uint8_t *)p;
	case 2:
		return *(const uint16_t *)p;
	case 4:
		return *(const uint32_t *)p;
	default:
		return *(const uint64_t *)p;
	}
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool table_eq(const cfg_table *t, const void *a, const void *b,
		     const char *path);

static bool value_eq(const cfg_key *k, const void *a, const void *b,
		     const char *path)
{
	const char *fa = (const char *)a + k->off;
	const char *fb = (const char *)b + k->off;
	bool eq = true;
	switch (k->type) {
	case CFG_STRING:
		eq = str_eq(*(const char *const *)fa, *(const char *const *)fb);
		break;
	case CFG_BOOL:
		eq = *(const bool *)fa == *(const bool *)fb;
		break;
	case CFG_TRISTATE:
		eq = *(const int8_t *)fa == *(const int8_t *)fb;
		break;
	case CFG_UINT:
	case CFG_SIZE:
	case CFG_ENUM:
		eq = get_uint(fa, k->size) == get_uint(fb, k->size);
		break;
	case CFG_DOUBLE:
		eq = *(const double *)fa == *(const double *)fb;
		break;
	case CFG_DURATION:
		eq = *(const uint32_t *)fa == *(const uint32_t *)fb;
		break;
	case CFG_ADDR:
		eq = str_eq(((const cfg_addr *)fa)->text,
			    ((const cfg_addr *)fb)->text);
		break;
	case CFG_CIDR:
		eq = str_eq(((const cfg_cidr *)fa)->text,
			    ((const cfg_cidr *)fb)->text);
		break;
	case CFG_REF: {
		const void *pa = *(const void *const *)fa;
		const void *pb = *(const void *const *)fb;
		if (!pa || !pb)
			eq = pa == pb;
		else if (k->ref == CFG_REF_POOL)
			eq = str_eq(((const cfg_pool *)pa)->id,
				    ((const cfg_pool *)pb)->id);
		else
			eq = str_eq(((const cfg_monitor *)pa)->id,
				    ((const cfg_monitor *)pb)->id);
		break;
	}
	case CFG_LIST:
	case CFG_MAP: {
		size_t na = *(const size_t *)((const char *)a + k->count_off);
		size_t nb = *(const size_t *)((const char *)b + k->count_off);
		if (na != nb) {
			eq = false;
			break;
		}
		const char *arra = *(const char *const *)fa;
		const char *arrb = *(const char *const *)fb;
		for (size_t i = 0; i < na && eq; i++) {
			const char *ea = arra + i * k->elem_size;
			const char *eb = arrb + i * k->elem_size;
			if (k->type == CFG_MAP &&
			    !str_eq(*(const char *const *)(ea + k->key_off),
				    *(const char *const *)(eb + k->key_off)))
				eq = false;
			else
				eq = value_eq(k->item, ea, eb, path);
		}
		break;
	}
	case CFG_OBJECT:
		return table_eq(k->sub, fa, fb, path);
	}
	if (!eq)
		print_error("%s: '%s' differs\n", path, k->name ? k->name : "");
	return eq;
}

static bool table_eq(const cfg_table *t, const void *a, const void *b,
		     const char *path)
{
	bool eq = true;
	for (size_t i = 0; i < t->nkeys; i++) {
		const cfg_key *k = &t->keys[i];
		if (k->flags & CFG_F_HAS) {
			bool ha = *(const bool *)((const char *)a + k->has_off);
			bool hb = *(const bool *)((const char *)b + k->has_off);
			if (ha != hb) {
				print_error("%s: has '%s' differs\n", path,
					    k->name);
				eq = false;
				continue;
			}
		}
		eq = value_eq(k, a, b, path) && eq;
	}
	return eq;
}

/* Every monitor, pool and load balancer of a equals b's, in order. */
static void assert_objects_equal(const cfg_snapshot *a, const cfg_snapshot *b)
{
	assert_int_equal(a->nmonitors, b->nmonitors);
	assert_int_equal(a->npools, b->npools);
	assert_int_equal(a->nlbs, b->nlbs);
	const cfg_table *tm = table_of("monitors"), *tp = table_of("pools"),
			*tl = table_of("load_balancers");
	for (size_t i = 0; i < a->nmonitors; i++)
		assert_true(table_eq(tm, &a->monitors[i], &b->monitors[i],
				     a->monitors[i].id));
	for (size_t i = 0; i < a->npools; i++) {
		assert_true(
		    table_eq(tp, &a->pools[i], &b->pools[i], a->pools[i].id));
		for (size_t j = 0; j < a->pools[i].norigins; j++)
			assert_int_equal(a->pools[i].origins[j].sslen,
					 b->pools[i].origins[j].sslen);
	}
	for (size_t i = 0; i < a->nlbs; i++)
		assert_true(table_eq(tl, &a->lbs[i], &b->lbs[i], a->lbs[i].id));
}

/* Every object of s rendered, as API objects (text bodies). */
typedef struct rendered {
	cfg_json_obj objs[32];
	char *texts[32];
	size_t n;
} rendered;

static void render_all(const cfg_snapshot *s, rendered *r)
{
	r->n = 0;
	for (size_t i = 0; i < s->nmonitors; i++) {
		json_t *j = cfg_json_monitor(&s->monitors[i]);
		r->texts[r->n] = dump(j);
		r->objs[r->n] = (cfg_json_obj){
		    CFG_JSON_MONITOR, s->monitors[i].id, r->texts[r->n], NULL};
		r->n++;
		json_decref(j);
	}
	for (size_t i = 0; i < s->npools; i++) {
		json_t *j = cfg_json_pool(&s->pools[i]);
		r->texts[r->n] = dump(j);
		r->objs[r->n] = (cfg_json_obj){CFG_JSON_POOL, s->pools[i].id,
					       r->texts[r->n], NULL};
		r->n++;
		json_decref(j);
	}
	for (size_t i = 0; i < s->nlbs; i++) {
		json_t *j = cfg_json_lb(&s->lbs[i]);
		r->texts[r->n] = dump(j);
		r->objs[r->n] = (cfg_json_obj){CFG_JSON_LB, s->lbs[i].id,
					       r->texts[r->n], NULL};
		r->n++;
		json_decref(j);
	}
	assert_true(r->n < 32);
}

static void rendered_free(rendered *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->texts[i]);
}

/* ---- JSON in ---- */

static void test_api_only(void **state)
{
	(void)state;
	cfg_json_obj objs[] = {
	    LB("lb-123", api_lb),
	    MON("api-mon", api_monitor),
	    POOL("api-pool", api_pool),
	    POOL("p1", "{\"origins\": [{\"name\": \"x\", \"address\": "
		       "\"127.0.0.2\"}]}"),
	};
	cfg_snapshot *s = merged_ok(NULL, objs, ARRAY_LEN(objs));
	/* No file: the edge and the rest are defaults. */
	assert_string_equal(s->edge.name, "meridian");
	assert_int_equal(s->edge.nlisten_http, 0);
	assert_string_equal(s->api.account_id, "default");

	assert_int_equal(s->nmonitors, 1);
	const cfg_monitor *m = &s->monitors[0];
	assert_true(m->from_api);
	assert_string_equal(m->id, "api-mon");
	assert_int_equal(m->type, CFG_MON_HTTPS);
	assert_string_equal(m->method, "HEAD");
	assert_int_equal(m->nheaders, 1);
	assert_string_equal(m->headers[0].name, "Host");
	assert_string_equal(m->headers[0].values[0], "app.example.com");
	assert_int_equal(m->port, 8443);
	assert_int_equal(m->timeout_ms, 3000);
	assert_int_equal(m->interval_ms, 15000);
	assert_int_equal(m->retries, 1);
	assert_string_equal(m->expected_codes, "2xx");
	assert_string_equal(m->expected_body, "alive");
	assert_true(m->follow_redirects);
	assert_int_equal(m->consecutive_down, 3);

	assert_int_equal(s->npools, 2);
	const cfg_pool *p = &s->pools[0];
	assert_true(p->from_api);
	assert_string_equal(p->id, "api-pool");
	assert_string_equal(p->name, "aws-east");
	assert_ptr_equal(p->monitor, m);
	assert_int_equal(p->norigins, 2);
	assert_true(fabs(p->origins[0].weight - 0.5) < 1e-12);
	assert_int_equal(p->origins[1].port, 9102);
	assert_string_equal(p->origins[1].headers[0].values[0], "eks.internal");
	assert_true(p->has_location);
	assert_true(fabs(p->longitude + 77.5) < 1e-12);
	assert_int_equal(p->origin_steering, CFG_OSTEER_HASH);
	assert_int_equal(p->notification_filter.pool.healthy, -1);
	assert_string_equal(s->pools[1].name, "p1"); /* defaults to the id */

	assert_int_equal(s->nlbs, 1);
	const cfg_lb *lb = &s->lbs[0];
	assert_true(lb->from_api);
	assert_string_equal(lb->id, "lb-123");
	assert_string_equal(lb->name, "app.example.com");
	assert_false(lb->proxied);
	assert_int_equal(lb->ndefault_pools, 2);
	assert_ptr_equal(lb->default_pools[0], p);
	assert_ptr_equal(lb->fallback_pool, &s->pools[1]);
	assert_int_equal(lb->nregion_pools, 2);
	assert_string_equal(lb->region_pools[1].key, "WEU");
	assert_int_equal(lb->ncountry_pools, 0);
	assert_int_equal(lb->steering_policy, CFG_STEER_GEO);
	assert_true(fabs(lb->random_default_weight - 0.25) < 1e-12);
	assert_int_equal(lb->npool_weights, 1);
	assert_ptr_equal(lb->pool_weights[0].pool, &s->pools[1]);
	assert_true(lb->failover_across_pools);
	assert_int_equal(lb->location_strategy.prefer_ecs, CFG_ECS_ALWAYS);
	assert_int_equal(lb->session_affinity_ttl, 1800);
	assert_int_equal(lb->session_affinity_attributes.drain_duration, 30);
	assert_int_equal(lb->session_affinity_attributes.samesite,
			 CFG_SAMESITE_LAX);
	assert_int_equal(lb->nrules, 1);
	assert_string_equal(lb->rules[0].name, "r");
	assert_int_equal(lb->rules[0].pos.line, 0);
	assert_true(lb->rules[0].has.ttl);
	assert_int_equal(lb->rules[0].eff->ttl, 30);
	cfg_snapshot_free(s);

	/* Nothing at all is an empty configuration, not an error. */
	s = merged_ok(NULL, NULL, 0);
	assert_int_equal(s->npools, 0);
	cfg_snapshot_free(s);
	s = merged_ok("# nothing\n", NULL, 0);
	cfg_snapshot_free(s);
}

static void test_merge_with_file(void **state)
{
	(void)state;
	cfg_json_obj objs[] = {
	    POOL("p2", "{\"monitor\": \"m1\", \"origins\": [{\"name\": "
		       "\"o\", \"address\": \"127.0.0.3\"}]}"),
	    MON("m2", "{\"type\": \"tcp\"}"),
	    LB("lb-2", "{\"name\": \"api.example.com\", \"default_pools\": "
		       "[\"p2\", \"p1\"], \"fallback_pool\": \"p1\"}"),
	};
	cfg_snapshot *s = merged_ok(file_yaml, objs, ARRAY_LEN(objs));
	/* The file's objects first, the API's after them. */
	assert_int_equal(s->nmonitors, 2);
	assert_string_equal(s->monitors[0].id, "m1");
	assert_false(s->monitors[0].from_api);
	assert_int_equal(s->monitors[0].pos.line, 2);
	assert_string_equal(s->monitors[1].id, "m2");
	assert_true(s->monitors[1].from_api);
	assert_int_equal(s->monitors[1].pos.line, 0);
	assert_int_equal(s->npools, 2);
	assert_false(s->pools[0].from_api);
	assert_true(s->pools[1].from_api);
	assert_ptr_equal(s->pools[1].monitor, &s->monitors[0]);
	assert_int_equal(s->pools[1].index, 1);
	assert_int_equal(s->norigins, 2);
	assert_int_equal(s->nlbs, 2);
	assert_false(s->lbs[0].from_api);
	assert_string_equal(s->lbs[0].id, "file.example.com");
	assert_true(s->lbs[1].from_api);
	assert_ptr_equal(s->lbs[1].default_pools[0], &s->pools[1]);
	assert_ptr_equal(s->lbs[1].default_pools[1], &s->pools[0]);
	cfg_snapshot_free(s);

	/* A file without the lists, or with empty ones. */
	cfg_json_obj one[] = {MON("m9", "{}")};
	s = merged_ok("edge: { name: pop-1 }\n", one, 1);
	assert_string_equal(s->edge.name, "pop-1");
	assert_int_equal(s->nmonitors, 1);
	assert_true(s->monitors[0].from_api);
	cfg_snapshot_free(s);
	s = merged_ok("monitors:\npools: []\n", one, 1);
	assert_int_equal(s->nmonitors, 1);
	cfg_snapshot_free(s);

	/* Without objects the file loads as cfg_load_string loads it. */
	s = merged_ok(file_yaml, NULL, 0);
	assert_int_equal(s->npools, 1);
	assert_false(s->pools[0].from_api);
	cfg_snapshot_free(s);
}

static void test_api_errors(void **state)
{
	(void)state;
	cfg_json_obj objs[] = {
	    MON("mx", "{\"interval\": 0, \"timeout\": \"fast\", \"type\": "
		      "\"htp\", \"retries\": 9, \"path\": \"health\"}"),
	    POOL("px",
		 "{\"monitor\": \"m2\", \"enabled\": \"yes\", "
		 "\"minimum_origins\":"
		 " 3, \"origins\": [{\"name\": \"a\", \"address\": "
		 "\"10.0.0.1\", \"wieght\": 1}, {\"name\": \"b\", \"address\": "
		 "\"10.0.0.2:80\", \"weight\": 1.5}], \"origin_steering\": "
		 "{\"polcy\": \"hash\"}, \"latitude\": 10, \"check_regions\": "
		 "[\"MARS\"]}"),
	    POOL("py", "{\"origins\": null}"),
	    POOL("pz", "{\"name\": \"z\"}"),
	    LB("lx", "{\"name\": \"bad name\", \"default_pools\": [\"p1\", "
		     "\"nope\", \"p1\"], \"region_pools\": {\"MARS\": "
		     "[\"p1\"]}, \"session_affinity\": \"header\", "
		     "\"session_affinity_ttl\": 10, \"proxied\": null, "
		     "\"rules\": [1]}"),
	    LB("ly", "{\"name\": \"ly.example.com\", \"default_pools\": "
		     "[\"p1\"], \"session_affinity\": \"cookie\", "
		     "\"session_affinity_attributes\": {\"samesite\": "
		     "\"None\", \"secure\": \"Never\"}}"),
	};
	expect_errors(
	    file_yaml, objs, ARRAY_LEN(objs),
	    "monitors[mx].type: 'htp' is not one of http, https, tcp, smtp; "
	    "did you mean 'http'?",
	    "monitors[mx].path: expected a path starting with '/', without "
	    "spaces or control characters, got 'health'",
	    "monitors[mx].timeout: expected a duration like 500ms, 5s, 1m, "
	    "got 'fast'",
	    "monitors[mx].retries: 9 is out of range 0..5",
	    "monitors[mx].interval: 0 is out of range 1s..1h",
	    "pools[px].enabled: expected true or false, got 'yes'",
	    "pools[px].origins[0].wieght: unknown key 'wieght' in origin; did "
	    "you mean 'weight'?",
	    "pools[px].origins[1].weight: 1.5 is out of range 0..1",
	    "pools[px].origins[1].address: '10.0.0.2:80' includes a port; "
	    "write it as 'port: 80'",
	    "pools[px].check_regions[0]: 'MARS' is not one of WNAM, ENAM, WEU, "
	    "EEU, NSAM, SSAM, OC, ME, NAF, SAF, SAS, SEAS, NEAS",
	    "pools[px].origin_steering.polcy: unknown key 'polcy' in "
	    "origin_steering; did you mean 'policy'?",
	    "pools[px].latitude: latitude needs longitude too",
	    "pools[px].minimum_origins: 3 is more than the pool's 2 origins",
	    "pools[py].origins: a value is required",
	    "pools[pz]: pool is missing required key 'origins'",
	    "load_balancers[lx].name: expected a host name like "
	    "lb.example.com or *.example.com, got 'bad name'",
	    "load_balancers[lx].region_pools.MARS: 'MARS' is not one of WNAM, "
	    "ENAM, WEU, EEU, NSAM, SSAM, OC, ME, NAF, SAF, SAS, SEAS, NEAS",
	    "load_balancers[lx].session_affinity_ttl: 10 is out of range "
	    "30s..168h",
	    "load_balancers[lx].rules[0]: expected a mapping (rule), got a "
	    "string",
	    "load_balancers[lx].default_pools[2]: pool 'p1' is listed twice",
	    "load_balancers[lx].session_affinity: header needs "
	    "session_affinity_attributes.headers",
	    "load_balancers[ly].session_affinity_attributes.samesite: None "
	    "needs secure Auto or Always (browsers drop a SameSite=None "
	    "cookie that is not Secure)",
	    "pools[px].monitor: unknown monitor 'm2'; did you mean 'm1'?",
	    "load_balancers[lx].default_pools[1]: unknown pool 'nope'", END);
}

static void test_file_and_api_errors(void **state)
{
	(void)state;
	/* The file's errors keep their positions and come first; the API's
	 * follow with their fields; cfg_diag says which is which. */
	cfg_json_obj objs[] = {
	    POOL("p2", "{\"origins\": [{\"name\": \"o\", \"address\": "
		       "\"127.0.0.1\", \"port\": 0}]}"),
	};
	cfg_snapshot *s = (cfg_snapshot *)1;
	cfg_diag d = {0};
	const char *yaml = "edge: { workers: 999 }\n"
			   "monitors: [ { id: m, interval: 0 } ]\n";
	int rc = cfg_load_merged("t.yaml", yaml, strlen(yaml), objs, 1, &s, &d);
	assert_int_equal(rc, -1);
	assert_null(s);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.msgs[0],
			    "t.yaml:1:18: workers: 999 is out of range 0..256");
	assert_string_equal(d.msgs[1],
			    "t.yaml:2:32: interval: 0 is out of range 1s..1h");
	assert_string_equal(d.msgs[2],
			    "pools[p2].origins[0].port: 0 is out of range "
			    "1..65535");
	assert_null(d.fields[0]);
	assert_null(d.fields[1]);
	assert_string_equal(d.fields[2], "pools[p2].origins[0].port");
	const char *field = "x";
	assert_string_equal(cfg_json_diag_message(&d, 0, &field),
			    "t.yaml:1:18: workers: 999 is out of range 0..256");
	assert_null(field);
	assert_string_equal(cfg_json_diag_message(&d, 2, &field),
			    "0 is out of range 1..65535");
	assert_string_equal(field, "pools[p2].origins[0].port");
	cfg_diag_free(&d);

	/* A file list of the wrong shape: its error only. */
	expect_errors("pools: { id: p }\n", objs, 1,
		      "t.yaml:1:8: pools: expected a list, got a mapping", END);
	/* A file that does not parse: nothing else is judged. */
	expect_errors("pools: [\n", objs, 1,
		      "t.yaml:2:1: YAML syntax error: did not find expected "
		      "node content (while parsing a flow node)",
		      END);
}

static void test_duplicates_across_sources(void **state)
{
	(void)state;
	cfg_json_obj objs[] = {
	    MON("m1", "{}"),
	    POOL("p1", "{\"origins\": [{\"name\": \"o\", \"address\": "
		       "\"127.0.0.1\"}, {\"name\": \"o\", \"address\": "
		       "\"127.0.0.2\"}]}"),
	    LB("a", "{\"name\": \"File.example.com\", \"default_pools\": "
		    "[\"p1\"]}"),
	    LB("b", "{\"name\": \"x.example.com\", \"default_pools\": "
		    "[\"p1\"]}"),
	    LB("c", "{\"name\": \"x.example.com\", \"default_pools\": "
		    "[\"p1\"]}"),
	    LB("file.example.com", "{\"name\": \"y.example.com\", "
				   "\"default_pools\": [\"p1\"]}"),
	};
	expect_errors(
	    file_yaml, objs, ARRAY_LEN(objs),
	    "pools[p1].origins[1].name: duplicate origin name 'o' (first at "
	    "pools[p1].origins[0].name)",
	    "monitors[m1].id: duplicate monitor id 'm1' (first at line 2 of "
	    "t.yaml)",
	    "pools[p1].id: duplicate pool id 'p1' (first at line 4 of t.yaml)",
	    "load_balancers[a].name: duplicate load balancer name "
	    "'File.example.com' (first at line 6 of t.yaml)",
	    "load_balancers[c].name: duplicate load balancer name "
	    "'x.example.com' (first at load_balancers[b].name)",
	    "load_balancers[file.example.com].id: duplicate load balancer id "
	    "'file.example.com' (first at line 6 of t.yaml)",
	    END);
}

static void test_readonly_fields(void **state)
{
	(void)state;
	cfg_json_obj objs[] = {
	    MON("m2", "{\"id\": \"other\", \"created_on\": "
		      "\"2024-01-01T00:00:00Z\", \"modified_on\": null}"),
	    POOL("p2", "{\"id\": \"zzz\", \"healthy\": true, \"disabled_at\": "
		       "\"2024-01-01T00:00:00Z\", \"networks\": [\"x\"], "
		       "\"origins\": [{\"name\": \"o\", \"address\": "
		       "\"127.0.0.1\", \"disabled_at\": \"x\"}]}"),
	    LB("lb-2", "{\"id\": \"zzz\", \"zone_name\": \"example.com\", "
		       "\"created_on\": \"x\", \"name\": \"z.example.com\", "
		       "\"default_pools\": [\"p2\"]}"),
	};
	cfg_snapshot *s = merged_ok(file_yaml, objs, ARRAY_LEN(objs));
	assert_string_equal(s->monitors[1].id, "m2");
	assert_string_equal(s->pools[1].id, "p2");
	assert_string_equal(s->lbs[1].id, "lb-2");
	cfg_snapshot_free(s);

	/* Only where they are read-only: "healthy" is not a monitor's, and
	 * "zone_name" not a pool's. */
	cfg_json_obj bad[] = {
	    MON("m2", "{\"healthy\": true}"),
	    POOL("p2", "{\"zone_name\": \"x\", \"origins\": [{\"name\": "
		       "\"o\", \"address\": \"127.0.0.1\", \"healthy\": "
		       "true}]}"),
	};
	expect_errors(
	    file_yaml, bad, ARRAY_LEN(bad),
	    "monitors[m2].healthy: unknown key 'healthy' in monitor",
	    "pools[p2].zone_name: unknown key 'zone_name' in pool",
	    "pools[p2].origins[0].healthy: unknown key 'healthy' in origin",
	    END);

	json_t *j = json_pack("{s:s,s:s,s:b,s:[{s:s,s:s}],s:s}", "id", "x",
			      "name", "n", "healthy", 1, "origins", "name", "o",
			      "disabled_at", "t", "zone_name", "z");
	cfg_json_strip_readonly(CFG_JSON_POOL, j);
	char *t = dump(j);
	assert_string_equal(t, "{\"name\":\"n\",\"origins\":[{\"name\":\"o\"}],"
			       "\"zone_name\":\"z\"}");
	free(t);
	json_decref(j);
	assert_true(cfg_json_is_readonly(CFG_JSON_LB, "zone_name"));
	assert_true(cfg_json_is_readonly(CFG_JSON_MONITOR, "modified_on"));
	assert_false(cfg_json_is_readonly(CFG_JSON_MONITOR, "zone_name"));
	assert_false(cfg_json_is_readonly(CFG_JSON_POOL, "name"));
}

/* Cloudflare fields Meridian has no use for: an object as Cloudflare's
 * GET gives it (empty values) is taken; a value is refused, with why. */
static void test_cloudflare_fields_unused(void **state)
{
	(void)state;
	cfg_json_obj objs[] = {
	    MON("m2", "{\"probe_zone\": \"\", \"type\": \"http\"}"),
	    POOL("p2", "{\"notification_email\": \"\", \"origins\": "
		       "[{\"name\": \"o\", \"address\": \"127.0.0.1\", "
		       "\"virtual_network_id\": null}]}"),
	    LB("lb-2", "{\"name\": \"z.example.com\", \"networks\": "
		       "[\"cloudflare\"], \"default_pools\": [\"p2\"]}"),
	};
	cfg_snapshot *s = merged_ok(file_yaml, objs, ARRAY_LEN(objs));
	assert_string_equal(s->monitors[1].id, "m2");
	assert_string_equal(s->pools[1].id, "p2");
	cfg_snapshot_free(s);

	cfg_json_obj bad[] = {
	    MON("m2", "{\"probe_zone\": \"example.com\"}"),
	    POOL("p2",
		 "{\"notification_email\": \"ops@example.com\", "
		 "\"origins\": [{\"name\": \"o\", \"address\": "
		 "\"127.0.0.1\", \"virtual_network_id\": \"a5624d4e\"}]}"),
	};
	expect_errors(
	    file_yaml, bad, ARRAY_LEN(bad),
	    "monitors[m2].probe_zone: not supported by Meridian (Meridian "
	    "checks from each edge; set the Host header in `header`); leave "
	    "it out or empty",
	    "pools[p2].notification_email: not supported by Meridian "
	    "(notifications are set in the edge's file "
	    "(notifications.email), per pool filtered by "
	    "notification_filter); leave it out or empty",
	    "pools[p2].origins[0].virtual_network_id: not supported by "
	    "Meridian (Meridian reaches origins on the edge's own networks); "
	    "leave it out or empty",
	    END);
}

static void test_bad_json(void **state)
{
	(void)state;
	cfg_json_obj objs[] = {
	    MON("a", "{\"type\": "),
	    MON("b", "[1, 2]"),
	    MON("c", "{\"type\": \"tcp\", \"type\": \"http\"}"),
	    MON("d", "{\"description\": \"x\\u0000y\"}"),
	    MON("e", NULL),
	};
	expect_errors(
	    NULL, objs, ARRAY_LEN(objs),
	    "monitors[a]: invalid JSON: unexpected token near end of file "
	    "(line 1, column 9)",
	    "monitors[b]: expected a JSON object (a monitor), got an array",
	    "monitors[c]: invalid JSON: duplicate object key near '\"type\"' "
	    "(line 1, column 22)",
	    "monitors[d]: invalid JSON: \\u0000 is not allowed without "
	    "JSON_ALLOW_NUL near '\"x\\u0000y\"' (line 1, column 26)",
	    "monitors[e]: invalid JSON: '[' or '{' expected near end of file "
	    "(line 1, column 0)",
	    END);

	/* Parsed bodies are taken as they are, NULs included. */
	json_t *v = json_pack("{s:s#}", "description", "x\0y", (size_t)3);
	cfg_json_obj parsed[] = {{CFG_JSON_MONITOR, "f", NULL, v}};
	expect_errors(NULL, parsed, 1,
		      "monitors[f].description: value contains a NUL character",
		      END);
	json_decref(v);

	/* A monitor and a pool without an id. */
	cfg_json_obj noid[] = {
	    MON(NULL, "{}"),
	    POOL(NULL, "{\"origins\": [{\"name\": \"o\", \"address\": "
		       "\"127.0.0.1\"}]}"),
	};
	expect_errors(NULL, noid, ARRAY_LEN(noid),
		      "monitors[]: monitor is missing required key 'id'",
		      "pools[]: pool is missing required key 'id'", END);
}

static void test_no_env_in_api(void **state)
{
	(void)state;
	setenv("CFG_JSON_SECRET", "s3cret", 1);
	cfg_json_obj objs[] = {
	    MON("m", "{\"description\": \"${CFG_JSON_SECRET}\"}")};
	cfg_snapshot *s = merged_ok(NULL, objs, 1);
	assert_string_equal(s->monitors[0].description, "${CFG_JSON_SECRET}");
	cfg_snapshot_free(s);
}

/* ---- JSON out ---- */

static void test_render_defaults(void **state)
{
	(void)state;
	cfg_json_obj objs[] = {
	    MON("m", "{}"),
	    POOL("p", "{\"origins\": [{\"name\": \"o\", \"address\": "
		      "\"127.0.0.1\"}]}"),
	    LB(NULL, "{\"name\": \"lb.example.com\", \"default_pools\": "
		     "[\"p\"]}"),
	};
	cfg_snapshot *s = merged_ok(NULL, objs, ARRAY_LEN(objs));
	json_t *j = cfg_json_monitor(&s->monitors[0]);
	char *t = dump(j);
	assert_string_equal(
	    t, "{\"id\":\"m\",\"description\":null,\"type\":\"http\","
	       "\"method\":\"GET\",\"path\":\"/\",\"header\":{},\"port\":0,"
	       "\"timeout\":5,\"retries\":2,\"interval\":60,"
	       "\"expected_codes\":\"200\",\"expected_body\":null,"
	       "\"follow_redirects\":false,\"allow_insecure\":false,"
	       "\"consecutive_up\":1,\"consecutive_down\":1}");
	free(t);
	json_decref(j);

	j = cfg_json_pool(&s->pools[0]);
	t = dump(j);
	assert_string_equal(
	    t, "{\"id\":\"p\",\"name\":\"p\",\"description\":null,"
	       "\"enabled\":true,\"origins\":[{\"name\":\"o\",\"address\":"
	       "\"127.0.0.1\",\"port\":80,\"weight\":1.0,\"enabled\":true,"
	       "\"header\":{},\"tls\":false}],\"minimum_origins\":1,"
	       "\"monitor\":null,"
	       "\"check_regions\":[],\"origin_steering\":{\"policy\":"
	       "\"random\"},\"load_shedding\":{\"default_percent\":0.0,"
	       "\"default_policy\":\"random\",\"session_percent\":0.0,"
	       "\"session_policy\":\"hash\"},\"notification_filter\":{"
	       "\"origin\":{\"disable\":false,\"healthy\":null},\"pool\":{"
	       "\"disable\":false,\"healthy\":null}},\"origin_tls\":{"
	       "\"enabled\":false,\"ca\":null,\"allow_insecure\":false,"
	       "\"sni\":null}}");
	free(t);
	json_decref(j);

	j = cfg_json_lb(&s->lbs[0]);
	t = dump(j);
	assert_string_equal(
	    t, "{\"id\":\"lb.example.com\",\"name\":\"lb.example.com\","
	       "\"description\":null,\"enabled\":true,\"proxied\":true,"
	       "\"ttl\":30,\"default_pools\":[\"p\"],\"fallback_pool\":null,"
	       "\"region_pools\":{},\"country_pools\":{},\"pop_pools\":{},"
	       "\"steering_policy\":\"\",\"random_steering\":{"
	       "\"default_weight\":1.0,\"pool_weights\":{}},"
	       "\"adaptive_routing\":{\"failover_across_pools\":false},"
	       "\"location_strategy\":{\"mode\":\"pop\",\"prefer_ecs\":"
	       "\"proximity\"},\"session_affinity\":\"none\","
	       "\"session_affinity_ttl\":82800,"
	       "\"session_affinity_attributes\":{\"samesite\":\"Auto\","
	       "\"secure\":\"Auto\",\"drain_duration\":0,\"headers\":[],"
	       "\"require_all_headers\":false,\"zero_downtime_failover\":"
	       "\"none\"},\"rules\":[],\"hsts\":{\"enabled\":false,"
	       "\"max_age\":15552000,\"include_subdomains\":false,"
	       "\"preload\":false},\"https_redirect\":false}");
	free(t);
	json_decref(j);
	cfg_snapshot_free(s);
}

/* The number of keys of a table, for "every key is rendered". */
static size_t nkeys(const char *list)
{
	return table_of(list)->nkeys;
}

static void test_render_full(void **state)
{
	(void)state;
	cfg_snapshot *s = load_fixture();
	json_t *m = cfg_json_monitor(&s->monitors[0]);
	assert_int_equal(json_object_size(m), nkeys("monitors"));
	assert_string_equal(json_string_value(json_object_get(m, "type")),
			    "https");
	assert_int_equal(json_integer_value(json_object_get(m, "interval")), 5);
	assert_int_equal(json_integer_value(json_object_get(m, "timeout")), 2);
	char *t = dump(json_object_get(m, "header"));
	assert_string_equal(
	    t, "{\"Host\":[\"app.example.com\"],\"X-Check\":[\"a\",\"b\"]}");
	free(t);
	json_decref(m);
	/* Below a second: the duration text the loader reads. */
	m = cfg_json_monitor(&s->monitors[2]);
	assert_string_equal(json_string_value(json_object_get(m, "timeout")),
			    "1500ms");
	assert_int_equal(json_integer_value(json_object_get(m, "interval")), 1);
	json_decref(m);

	json_t *p = cfg_json_pool(&s->pools[0]);
	assert_int_equal(json_object_size(p), nkeys("pools"));
	t = dump(p);
	assert_non_null(strstr(t, "\"latitude\":50.1,\"longitude\":8.6"));
	assert_non_null(strstr(t, "\"monitor\":\"http-ok\""));
	assert_non_null(strstr(t, "\"check_regions\":[\"WEU\",\"ENAM\"]"));
	assert_non_null(strstr(t, "\"weight\":0.25,\"enabled\":false,"
				  "\"header\":{\"Host\":[\"gke.internal\"]}"));
	assert_non_null(strstr(t, "\"notification_filter\":{\"origin\":{"
				  "\"disable\":true,\"healthy\":null},"
				  "\"pool\":{\"disable\":false,\"healthy\":"
				  "false}}"));
	assert_non_null(strstr(t, "\"default_percent\":12.5"));
	free(t);
	json_decref(p);
	/* Without a location: no latitude, no longitude. */
	p = cfg_json_pool(&s->pools[2]);
	assert_null(json_object_get(p, "latitude"));
	assert_null(json_object_get(p, "longitude"));
	assert_int_equal(json_object_size(p), nkeys("pools") - 2);
	t = dump(json_object_get(p, "notification_filter"));
	assert_string_equal(t, "{\"origin\":{\"disable\":false,\"healthy\":"
			       "true},\"pool\":{\"disable\":false,"
			       "\"healthy\":null}}");
	free(t);
	json_decref(p);

	json_t *lb = cfg_json_lb(&s->lbs[0]);
	assert_int_equal(json_object_size(lb), nkeys("load_balancers"));
	/* The id first, though the table names the name first. */
	assert_string_equal(json_object_iter_key(json_object_iter(lb)), "id");
	t = dump(lb);
	assert_non_null(strstr(t, "{\"id\":\"lb-1\",\"name\":"
				  "\"lb.example.com\""));
	assert_non_null(strstr(t, "\"default_pools\":[\"gcp\",\"aws\"],"
				  "\"fallback_pool\":\"aws\","
				  "\"region_pools\":{\"ENAM\":[\"aws\","
				  "\"gcp\"],\"WEU\":[\"gcp\"]},"
				  "\"country_pools\":{\"JP\":[\"aws\"]},"
				  "\"pop_pools\":{\"pop-ams\":[\"gcp\"]},"
				  "\"steering_policy\":\"random\","
				  "\"random_steering\":{\"default_weight\":"
				  "0.5,\"pool_weights\":{\"gcp\":0.75,"
				  "\"aws\":0.25}}"));
	assert_non_null(strstr(t, "\"session_affinity\":\"header\","
				  "\"session_affinity_ttl\":3600,"));
	assert_non_null(strstr(t, "\"drain_duration\":120,\"headers\":["
				  "\"X-Session\"],\"require_all_headers\":"
				  "true,\"zero_downtime_failover\":"
				  "\"sticky\""));
	assert_non_null(
	    strstr(t, "\"rules\":[{\"name\":\"maintenance\",\"condition\":"
		      "\"http.request.uri.path contains \\\"/admin\\\"\","
		      "\"disabled\":false,\"terminates\":false,\"overrides\":{"
		      "\"default_pools\":[\"aws\"]}},{\"name\":\"typed\","
		      "\"condition\":null,\"disabled\":false,\"priority\":2,"
		      "\"terminates\":true,\"fixed_response\":{\"status_code\":"
		      "503,\"message_body\":\"down\",\"content_type\":null,"
		      "\"location\":null}}]"));
	free(t);
	json_decref(lb);
	cfg_snapshot_free(s);
}

static void test_round_trip_file(void **state)
{
	(void)state;
	/* The file's objects, rendered and loaded back as API objects, are
	 * the same objects. */
	cfg_snapshot *a = load_fixture();
	rendered r;
	render_all(a, &r);
	cfg_snapshot *b = merged_ok(NULL, r.objs, r.n);
	assert_objects_equal(a, b);
	for (size_t i = 0; i < b->nlbs; i++)
		assert_true(b->lbs[i].from_api && !a->lbs[i].from_api);
	/* And render the same. */
	rendered r2;
	render_all(b, &r2);
	assert_int_equal(r.n, r2.n);
	for (size_t i = 0; i < r.n; i++)
		assert_string_equal(r.texts[i], r2.texts[i]);
	rendered_free(&r2);
	cfg_snapshot_free(b);

	/* Rendered with full precision, parsed bodies: the same too. */
	json_t *bodies[32];
	cfg_json_obj objs[32];
	for (size_t i = 0; i < r.n; i++) {
		bodies[i] = json_loads(r.texts[i], 0, NULL);
		assert_non_null(bodies[i]);
		objs[i] = (cfg_json_obj){r.objs[i].kind, r.objs[i].id, NULL,
					 bodies[i]};
	}
	b = merged_ok(NULL, objs, r.n);
	assert_objects_equal(a, b);
	cfg_snapshot_free(b);
	for (size_t i = 0; i < r.n; i++)
		json_decref(bodies[i]);
	rendered_free(&r);
	cfg_snapshot_free(a);
}

static void test_round_trip_api(void **state)
{
	(void)state;
	cfg_json_obj objs[] = {
	    MON("api-mon", api_monitor),
	    MON("ms", "{\"type\": \"tcp\", \"timeout\": \"250ms\"}"),
	    POOL("api-pool", api_pool),
	    POOL("p1", "{\"origins\": [{\"name\": \"x\", \"address\": "
		       "\"localhost\", \"weight\": 0.1}]}"),
	    LB("lb-123", api_lb),
	};
	cfg_snapshot *a = merged_ok(NULL, objs, ARRAY_LEN(objs));
	rendered r;
	render_all(a, &r);
	cfg_snapshot *b = merged_ok(NULL, r.objs, r.n);
	assert_objects_equal(a, b);
	assert_non_null(strstr(r.texts[3], "\"weight\":0.1,"));
	assert_non_null(strstr(r.texts[1], "\"timeout\":\"250ms\""));
	/* A rule renders its given fields in the table's order. */
	assert_non_null(strstr(r.texts[4],
			       "\"rules\":[{\"name\":\"r\",\"condition\":"
			       "\"true\",\"disabled\":false,\"priority\":1,"
			       "\"terminates\":false,\"overrides\":{\"ttl\":"
			       "30}}]"));
	rendered_free(&r);
	cfg_snapshot_free(b);
	cfg_snapshot_free(a);
}

/* ---- PATCH ---- */

static void test_patch(void **state)
{
	(void)state;
	json_t *stored =
	    json_loads("{\"a\": 1, \"b\": {\"x\": 1, \"y\": 2}, \"c\": [1, 2], "
		       "\"e\": \"keep\"}",
		       0, NULL);
	json_t *patch =
	    json_loads("{\"b\": {\"x\": 5}, \"c\": null, \"d\": true, "
		       "\"a\": [3]}",
		       0, NULL);
	json_t *out = cfg_json_patch(stored, patch);
	char *t = dump(out);
	/* Top-level fields replaced whole, in place; new ones appended. */
	assert_string_equal(t, "{\"a\":[3],\"b\":{\"x\":5},\"c\":null,"
			       "\"e\":\"keep\",\"d\":true}");
	free(t);
	/* Neither input changed, and the result shares nothing with them. */
	t = dump(stored);
	assert_string_equal(
	    t, "{\"a\":1,\"b\":{\"x\":1,\"y\":2},\"c\":[1,2],\"e\":\"keep\"}");
	free(t);
	json_object_set_new(json_object_get(out, "b"), "z", json_true());
	assert_null(json_object_get(json_object_get(patch, "b"), "z"));
	json_decref(out);

	json_t *arr = json_array();
	assert_null(cfg_json_patch(stored, arr));
	assert_null(cfg_json_patch(arr, patch));
	json_decref(arr);
	out = cfg_json_patch(stored, json_object_get(patch, "b"));
	assert_non_null(out);
	json_decref(out);
	json_decref(stored);
	json_decref(patch);

	/* Through the loader: a pool's origins are replaced by the patch's,
	 * a null description goes back to its default. */
	stored = json_loads(api_pool, 0, NULL);
	patch = json_loads("{\"description\": null, \"origins\": [{\"name\": "
			   "\"new\", \"address\": \"127.0.0.9\"}], "
			   "\"modified_on\": \"2024-01-01T00:00:00Z\"}",
			   0, NULL);
	out = cfg_json_patch(stored, patch);
	cfg_json_obj objs[] = {MON("api-mon", "{}"),
			       {CFG_JSON_POOL, "api-pool", NULL, out}};
	cfg_snapshot *s = merged_ok(NULL, objs, ARRAY_LEN(objs));
	assert_null(s->pools[0].description);
	assert_string_equal(s->pools[0].name, "aws-east");
	assert_int_equal(s->pools[0].norigins, 1);
	assert_string_equal(s->pools[0].origins[0].name, "new");
	assert_true(fabs(s->pools[0].origins[0].weight - 1) < 1e-12);
	assert_true(s->pools[0].has_location);
	cfg_snapshot_free(s);
	json_decref(out);
	json_decref(patch);
	json_decref(stored);
}

/* Error messages quote clients' bytes and are cut to buffers: as JSON they
 * must still be strings (json_string() refuses bad UTF-8 with NULL). */
static void test_string_of_any_bytes(void **state)
{
	(void)state;
	json_t *j = cfg_json_string("caf\xc3\xa9 \xff end");
	assert_non_null(j);
	assert_string_equal(json_string_value(j), "caf\xc3\xa9 ? end");
	json_decref(j);
	j = cfg_json_string("\xc3");
	assert_string_equal(json_string_value(j), "?");
	json_decref(j);
	assert_true(json_is_null(j = cfg_json_string(NULL)));
	json_decref(j);

	/* A cut sequence at the end goes; a whole one stays. */
	struct {
		const char *in, *out;
	} cut[] = {
	    {"ab\xc3", "ab"},
	    {"ab\xc3\xa9", "ab\xc3\xa9"},
	    {"ab\xe2\x82", "ab"},
	    {"ab\xe2\x82\xac", "ab\xe2\x82\xac"},
	    {"ab\xf0\x9f\x98", "ab"},
	    {"ab\xf0\x9f\x98\x80", "ab\xf0\x9f\x98\x80"},
	    {"\xa9\xa9\xa9\xa9", "\xa9\xa9\xa9\xa9"}, /* not ours to fix */
	    {"", ""},
	};
	for (size_t i = 0; i < ARRAY_LEN(cut); i++) {
		char buf[16];
		snprintf(buf, sizeof(buf), "%s", cut[i].in);
		cfg_json_utf8_cut(buf);
		assert_string_equal(buf, cut[i].out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_api_only),
	    cmocka_unit_test(test_merge_with_file),
	    cmocka_unit_test(test_api_errors),
	    cmocka_unit_test(test_file_and_api_errors),
	    cmocka_unit_test(test_duplicates_across_sources),
	    cmocka_unit_test(test_readonly_fields),
	    cmocka_unit_test(test_cloudflare_fields_unused),
	    cmocka_unit_test(test_bad_json),
	    cmocka_unit_test(test_no_env_in_api),
	    cmocka_unit_test(test_render_defaults),
	    cmocka_unit_test(test_render_full),
	    cmocka_unit_test(test_round_trip_file),
	    cmocka_unit_test(test_round_trip_api),
	    cmocka_unit_test(test_patch),
	    cmocka_unit_test(test_string_of_any_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
