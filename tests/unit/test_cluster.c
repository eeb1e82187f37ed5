/* Unit tests for cluster mode's pure parts (src/cluster/): the key layout
 * and its escaping, base64, the object envelope, etcd's JSON gateway
 * messages (range, txn, lease, watch; the watch stream split into
 * messages), the mirror kept by revision (duplicates from this edge's own
 * writes, tombstones, whole-range resyncs) and the rebuild debounce. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/clu_debounce.h"
#include "cluster/clu_key.h"
#include "cluster/clu_mirror.h"
#include "cluster/clu_vote.h"
#include "cluster/clu_msg.h"

static void test_keys(void **state)
{
	(void)state;
	char *k = clu_key_object("/meridian", STORE_POOL, "abc");
	assert_string_equal(k, "/meridian/objects/pools/abc");
	clu_key_parts p;
	assert_int_equal(clu_key_parse("/meridian", k, strlen(k), &p),
			 CLU_KEY_OBJECT);
	assert_int_equal(p.kind, STORE_POOL);
	assert_string_equal(p.a, "abc");
	free(k);
	k = clu_key_object("/m", STORE_LB, "x");
	assert_string_equal(k, "/m/objects/load_balancers/x");
	free(k);
	k = clu_key_health("/m", "pop/ams", "p%1", "o 1");
	assert_string_equal(k, "/m/health/pop%2Fams/p%251/o 1");
	assert_int_equal(clu_key_parse("/m", k, strlen(k), &p), CLU_KEY_HEALTH);
	assert_string_equal(p.a, "pop/ams");
	assert_string_equal(p.pool, "p%1");
	assert_string_equal(p.origin, "o 1");
	free(k);
	k = clu_key_health("/m", "a", NULL, NULL);
	assert_string_equal(k, "/m/health/a/");
	free(k);
	k = clu_key_node("/m", "pop-ams");
	assert_string_equal(k, "/m/nodes/pop-ams");
	assert_int_equal(clu_key_parse("/m", k, strlen(k), &p), CLU_KEY_NODE);
	assert_string_equal(p.a, "pop-ams");
	/* Another prefix, unknown dirs and kinds, bad escapes. */
	assert_int_equal(clu_key_parse("/mm", k, strlen(k), &p), CLU_KEY_OTHER);
	free(k);
	const char *bad[] = {
	    "/m/objects/widgets/x", "/m/objects/pools/", "/m/nodes/a/b",
	    "/m/health/a/b",	    "/m/nodes/%zz",	 "/m/nodes/%2",
	    "/m/other/x",	    "/mx/nodes/a",	 "/m/nodes/%00"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    clu_key_parse("/m", bad[i], strlen(bad[i]), &p),
		    CLU_KEY_OTHER);
	k = clu_key_dir("/m", "objects");
	assert_string_equal(k, "/m/objects/");
	char *e = clu_key_range_end(k, strlen(k));
	assert_string_equal(e, "/m/objects0");
	free(e);
	free(k);
}

static void test_b64(void **state)
{
	(void)state;
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *out[] = {"",	 "Zg==",     "Zm8=",	"Zm9v",
			     "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		char *e = clu_b64_encode(in[i], strlen(in[i]));
		assert_string_equal(e, out[i]);
		size_t n;
		char *d = clu_b64_decode(e, strlen(e), &n);
		assert_non_null(d);
		assert_int_equal(n, strlen(in[i]));
		assert_memory_equal(d, in[i], n);
		free(d);
		free(e);
	}
	size_t n;
	assert_null(clu_b64_decode("Z", 1, &n));
	assert_null(clu_b64_decode("Zm9!", 4, &n));
	/* Binary survives. */
	unsigned char bin[256];
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	char *e = clu_b64_encode(bin, sizeof(bin));
	char *d = clu_b64_decode(e, strlen(e), &n);
	assert_int_equal(n, 256);
	assert_memory_equal(d, bin, 256);
	free(d);
	free(e);
}

static void test_obj_envelope(void **state)
{
	(void)state;
	const char *body = "{\"name\":\"p\",\"origins\":[{\"name\":\"o\","
			   "\"address\":\"127.0.0.1\",\"weight\":0.5}]}";
	char *v = clu_obj_encode(NULL, body, "2026-01-01T00:00:00.000001Z",
				 "2026-01-02T00:00:00.000001Z");
	assert_non_null(v);
	clu_obj o;
	assert_int_equal(clu_obj_decode(v, strlen(v), &o), 0);
	assert_null(o.zone);
	assert_string_equal(o.body, body);
	assert_string_equal(o.created_on, "2026-01-01T00:00:00.000001Z");
	assert_string_equal(o.modified_on, "2026-01-02T00:00:00.000001Z");
	clu_obj_clear(&o);
	free(v);
	v = clu_obj_encode("example.com", "{\"name\":\"lb.example.com\"}", "a",
			   "b");
	assert_int_equal(clu_obj_decode(v, strlen(v), &o), 0);
	assert_string_equal(o.zone, "example.com");
	clu_obj_clear(&o);
	free(v);
	assert_null(clu_obj_encode(NULL, "{not json", "a", "b"));
	/* A zone that is not a string (one literal: clang warns of a
	 * concatenation inside an array initialiser). */
	static const char zone_num[] = "{\"zone\":1,\"body\":{},\"created_on\":"
				       "\"a\",\"modified_on\":\"b\"}";
	const char *bad[] = {"[]", "{}", "{\"body\":{},\"created_on\":1}",
			     "nope", zone_num};
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(clu_obj_decode(bad[i], strlen(bad[i]), &o),
				 -EINVAL);
}

static void test_values(void **state)
{
	(void)state;
	char *v = clu_node_encode("pop-ams", NULL, "0.1.0", "2026-01-01T00Z");
	json_t *j = json_loads(v, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "name")),
			    "pop-ams");
	assert_true(json_is_null(json_object_get(j, "region")));
	json_decref(j);
	free(v);
	clu_report r = {.healthy = -1,
			.state = "unknown",
			.rtt_ms = -1,
			.reason = NULL,
			.time_ms = 1727784000123ull};
	v = clu_report_encode(&r);
	j = json_loads(v, 0, NULL);
	assert_true(json_is_null(json_object_get(j, "healthy")));
	assert_true(json_is_null(json_object_get(j, "rtt_ms")));
	assert_string_equal(json_string_value(json_object_get(j, "time")),
			    "2024-10-01T12:00:00.123000Z");
	json_decref(j);
	free(v);
	r = (clu_report){.healthy = 1,
			 .state = "healthy",
			 .rtt_ms = 1.5,
			 .reason = "No failures"};
	v = clu_report_encode(&r);
	j = json_loads(v, 0, NULL);
	assert_true(json_is_true(json_object_get(j, "healthy")));
	assert_true(json_real_value(json_object_get(j, "rtt_ms")) == 1.5);
	json_decref(j);
	free(v);
}

/* The gateway's own spelling: snake_case, int64 as strings, base64. */
static void test_range_parse(void **state)
{
	(void)state;
	const char *body =
	    "{\"header\":{\"cluster_id\":\"1\",\"revision\":\"12\"},"
	    "\"kvs\":[{\"key\":\"L20vbm9kZXMvYQ==\",\"create_revision\":\"3\","
	    "\"mod_revision\":\"11\",\"version\":\"2\",\"value\":\"e30=\","
	    "\"lease\":\"7587\"}],\"count\":\"1\"}";
	clu_kv *kvs;
	size_t n;
	int64_t rev;
	char err[256];
	assert_int_equal(clu_msg_range_parse(body, strlen(body), &kvs, &n, &rev,
					     err, sizeof(err)),
			 0);
	assert_int_equal(rev, 12);
	assert_int_equal(n, 1);
	assert_string_equal(kvs[0].key, "/m/nodes/a");
	assert_string_equal(kvs[0].value, "{}");
	assert_int_equal(kvs[0].create_rev, 3);
	assert_int_equal(kvs[0].mod_rev, 11);
	assert_int_equal(kvs[0].lease, 7587);
	clu_kvs_free(kvs, n);
	/* Empty range: no kvs at all. */
	const char *empty = "{\"header\":{\"revision\":\"5\"}}";
	assert_int_equal(clu_msg_range_parse(empty, strlen(empty), &kvs, &n,
					     &rev, err, sizeof(err)),
			 0);
	assert_int_equal(n, 0);
	assert_null(kvs);
	assert_int_equal(rev, 5);
	/* The gateway's error shape. */
	const char *e = "{\"error\":\"etcdserver: mvcc: required revision "
			"has been compacted\",\"code\":11,\"message\":"
			"\"etcdserver: mvcc: required revision has been "
			"compacted\"}";
	assert_int_equal(
	    clu_msg_range_parse(e, strlen(e), &kvs, &n, &rev, err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "compacted"));
	assert_int_equal(
	    clu_msg_range_parse("[", 1, &kvs, &n, &rev, err, sizeof(err)),
	    -EINVAL);
}

static void test_txn(void **state)
{
	(void)state;
	clu_cmp cmp[] = {{.key = "/m/objects/pools/a", .rev = 0},
			 {.key = "/m/nodes/x", .create = true, .rev = 0},
			 {.key = "/m/commit", .less = true, .rev = 8}};
	clu_op ops[] = {{.key = "/m/objects/pools/a",
			 .value = "{}",
			 .value_len = 2,
			 .lease = 5},
			{.del = true, .key = "/m/objects/pools/b"}};
	char *t = clu_msg_txn(cmp, 3, ops, 2, "/m/nodes/x");
	json_t *j = json_loads(t, 0, NULL);
	assert_non_null(j);
	json_t *c0 = json_array_get(json_object_get(j, "compare"), 0);
	assert_string_equal(json_string_value(json_object_get(c0, "target")),
			    "MOD");
	assert_string_equal(
	    json_string_value(json_object_get(c0, "mod_revision")), "0");
	json_t *c1 = json_array_get(json_object_get(j, "compare"), 1);
	assert_string_equal(json_string_value(json_object_get(c1, "target")),
			    "CREATE");
	assert_string_equal(json_string_value(json_object_get(c1, "result")),
			    "EQUAL");
	json_t *c2 = json_array_get(json_object_get(j, "compare"), 2);
	assert_string_equal(json_string_value(json_object_get(c2, "result")),
			    "LESS");
	assert_string_equal(
	    json_string_value(json_object_get(c2, "mod_revision")), "8");
	json_t *s0 = json_array_get(json_object_get(j, "success"), 0);
	json_t *put = json_object_get(s0, "request_put");
	assert_string_equal(json_string_value(json_object_get(put, "value")),
			    "e30=");
	assert_string_equal(json_string_value(json_object_get(put, "lease")),
			    "5");
	json_t *s1 = json_array_get(json_object_get(j, "success"), 1);
	assert_non_null(json_object_get(s1, "request_delete_range"));
	assert_int_equal(json_array_size(json_object_get(j, "failure")), 1);
	json_decref(j);
	free(t);

	bool ok;
	int64_t rev;
	char err[256];
	const char *yes = "{\"header\":{\"revision\":\"20\"},\"succeeded\":"
			  "true,\"responses\":[{\"response_put\":{}}]}";
	assert_int_equal(clu_msg_txn_parse(yes, strlen(yes), &ok, &rev, NULL,
					   NULL, err, sizeof(err)),
			 0);
	assert_true(ok);
	assert_int_equal(rev, 20);
	const char *no =
	    "{\"header\":{\"revision\":\"21\"},\"responses\":[{"
	    "\"response_range\":{\"kvs\":[{\"key\":\"L20vbm9kZXMveA==\","
	    "\"value\":\"e30=\",\"mod_revision\":\"4\"}]}}]}";
	clu_kv *kvs;
	size_t n;
	assert_int_equal(clu_msg_txn_parse(no, strlen(no), &ok, &rev, &kvs, &n,
					   err, sizeof(err)),
			 0);
	assert_false(ok);
	assert_int_equal(n, 1);
	assert_string_equal(kvs[0].key, "/m/nodes/x");
	clu_kvs_free(kvs, n);
}

static void test_lease(void **state)
{
	(void)state;
	int64_t id, ttl;
	char err[256];
	const char *g = "{\"header\":{},\"ID\":\"7587862\",\"TTL\":\"10\"}";
	assert_int_equal(
	    clu_msg_lease_parse(g, strlen(g), &id, &ttl, err, sizeof(err)), 0);
	assert_int_equal(id, 7587862);
	assert_int_equal(ttl, 10);
	const char *k = "{\"result\":{\"header\":{},\"ID\":\"7587862\","
			"\"TTL\":\"9\"}}";
	assert_int_equal(
	    clu_msg_lease_parse(k, strlen(k), &id, &ttl, err, sizeof(err)), 0);
	assert_int_equal(ttl, 9);
	/* An expired lease: no TTL. */
	const char *x = "{\"result\":{\"header\":{},\"ID\":\"7587862\"}}";
	assert_int_equal(
	    clu_msg_lease_parse(x, strlen(x), &id, &ttl, err, sizeof(err)), 0);
	assert_int_equal(ttl, 0);
	char *s = clu_msg_lease_grant(10);
	assert_string_equal(s, "{\"TTL\":\"10\",\"ID\":\"0\"}");
	free(s);
}

static void test_watch(void **state)
{
	(void)state;
	char *w = clu_msg_watch("/m/", "/m0", 13);
	json_t *j = json_loads(w, 0, NULL);
	json_t *c = json_object_get(j, "create_request");
	assert_string_equal(
	    json_string_value(json_object_get(c, "start_revision")), "13");
	json_decref(j);
	free(w);
	/* A stream: created, then two events, then a cancellation, in
	 * arbitrary chunks. */
	const char *stream =
	    "{\"result\":{\"header\":{\"revision\":\"12\"},\"created\":true}}\n"
	    "{\"result\":{\"header\":{\"revision\":\"14\"},\"events\":[{"
	    "\"kv\":{\"key\":\"L20vYQ==\",\"create_revision\":\"13\","
	    "\"mod_revision\":\"13\",\"value\":\"eyJ9Ijoie30ifQ==\"}},{"
	    "\"type\":\"DELETE\",\"kv\":{\"key\":\"L20vYg==\","
	    "\"mod_revision\":\"14\"}}]}}\n"
	    "{\"result\":{\"header\":{\"revision\":\"15\"},\"canceled\":true,"
	    "\"compact_revision\":\"9\"}}";
	size_t len = strlen(stream), off = 0, skip;
	clu_watch_msg m[3];
	int nm = 0;
	char err[256];
	/* Incomplete prefixes are not a message. */
	assert_int_equal(clu_msg_split(stream, 10, &skip), 0);
	while (off < len) {
		size_t n = clu_msg_split(stream + off, len - off, &skip);
		if (!n)
			break;
		assert_int_equal(clu_msg_watch_parse(stream + off + skip, n,
						     &m[nm], err, sizeof(err)),
				 0);
		nm++;
		off += skip + n;
	}
	assert_int_equal(nm, 3);
	assert_true(m[0].created);
	assert_int_equal(m[0].revision, 12);
	assert_int_equal(m[1].nev, 2);
	assert_false(m[1].ev[0].del);
	assert_string_equal(m[1].ev[0].kv.key, "/m/a");
	/* A '}' inside a string does not end the message. */
	assert_string_equal(m[1].ev[0].kv.value, "{\"}\":\"{}\"}");
	assert_true(m[1].ev[1].del);
	assert_int_equal(m[1].ev[1].kv.mod_rev, 14);
	assert_true(m[2].canceled);
	assert_int_equal(m[2].compact_rev, 9);
	for (int i = 0; i < nm; i++)
		clu_watch_msg_clear(&m[i]);
	const char *e =
	    "{\"error\":{\"grpc_code\":14,\"message\":\"no leader\"}}";
	assert_int_equal(
	    clu_msg_watch_parse(e, strlen(e), &m[0], err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "no leader"));
	/* A string with an escaped quote. */
	const char *q = " {\"a\":\"x\\\"}\"} rest";
	assert_int_equal(clu_msg_split(q, strlen(q), &skip), 12);
	assert_int_equal(skip, 1);
}

typedef struct seen {
	int puts, dels;
	char last[64];
} seen;

static void count(void *arg, const clu_entry *e)
{
	seen *s = arg;
	if (e->value)
		s->puts++;
	else
		s->dels++;
	snprintf(s->last, sizeof(s->last), "%s", e->key);
}

static clu_kv kv(const char *key, const char *val, int64_t mod)
{
	return (clu_kv){.key = (char *)key,
			.key_len = strlen(key),
			.value = (char *)val,
			.value_len = strlen(val),
			.create_rev = mod,
			.mod_rev = mod};
}

static void test_mirror(void **state)
{
	(void)state;
	clu_mirror m;
	clu_mirror_init(&m);
	seen s = {0};
	clu_kv a = kv("/m/a", "1", 5), b = kv("/m/b", "2", 6);
	assert_int_equal(clu_mirror_put(&m, &b, count, &s), 1);
	assert_int_equal(clu_mirror_put(&m, &a, count, &s), 1);
	assert_int_equal(m.live, 2);
	assert_string_equal(m.e[0].key, "/m/a"); /* sorted */
	/* Our own write seen again on the watch: a duplicate. */
	assert_int_equal(clu_mirror_put(&m, &a, count, &s), 0);
	clu_kv old = kv("/m/a", "0", 4);
	assert_int_equal(clu_mirror_put(&m, &old, count, &s), 0);
	assert_string_equal(clu_mirror_get(&m, "/m/a")->value, "1");
	clu_kv a2 = kv("/m/a", "3", 7);
	assert_int_equal(clu_mirror_put(&m, &a2, count, &s), 1);
	assert_int_equal(clu_mirror_rev(&m, "/m/a"), 7);
	assert_int_equal(s.puts, 3);
	/* Delete at 8; the put at 7 arriving again cannot revive it. */
	assert_int_equal(clu_mirror_del(&m, "/m/a", 8, count, &s), 1);
	assert_null(clu_mirror_get(&m, "/m/a"));
	assert_int_equal(clu_mirror_rev(&m, "/m/a"), 0);
	assert_int_equal(clu_mirror_put(&m, &a2, count, &s), 0);
	assert_int_equal(clu_mirror_del(&m, "/m/a", 8, count, &s), 0);
	assert_int_equal(m.live, 1);
	/* Re-created later. */
	clu_kv a3 = kv("/m/a", "4", 9);
	clu_event ev = {.kv = a3};
	assert_int_equal(clu_mirror_event(&m, &ev, count, &s), 1);
	assert_int_equal(m.live, 2);
	assert_int_equal(m.revision, 9);
	/* A delete of an unknown key changes nothing visible. */
	assert_int_equal(clu_mirror_del(&m, "/m/z", 10, count, &s), 0);
	assert_int_equal(s.dels, 1);
	/* Resync: b unchanged, a changed, c new, the rest gone. */
	clu_kv r[] = {kv("/m/c", "5", 12), kv("/m/b", "2", 6),
		      kv("/m/a", "6", 11)};
	memset(&s, 0, sizeof(s));
	assert_int_equal(clu_mirror_reset(&m, r, 3, 15, count, &s), 2);
	assert_int_equal(s.puts, 2);
	assert_int_equal(s.dels, 0);
	assert_int_equal(m.n, 3); /* the tombstone of /m/z went */
	assert_int_equal(m.revision, 15);
	memset(&s, 0, sizeof(s));
	assert_int_equal(clu_mirror_reset(&m, r + 1, 1, 16, count, &s), 2);
	assert_int_equal(s.dels, 2);
	assert_int_equal(m.live, 1);
	assert_string_equal(clu_mirror_get(&m, "/m/b")->value, "2");
	/* A deleted key that the next range has again comes back. */
	assert_int_equal(clu_mirror_del(&m, "/m/b", 17, count, &s), 1);
	assert_int_equal(clu_mirror_reset(&m, r + 1, 1, 18, NULL, NULL), 1);
	assert_non_null(clu_mirror_get(&m, "/m/b"));
	/* A watch that lags behind the range (the API's read after a failed
	 * compare) delivers events the range already has: a put of a key
	 * deleted by revision 18 must not bring it back, nor a delete
	 * before 18 take a key the range has. */
	clu_kv late = kv("/m/a", "6", 11);
	assert_int_equal(clu_mirror_put(&m, &late, count, &s), 0);
	assert_null(clu_mirror_get(&m, "/m/a"));
	assert_int_equal(clu_mirror_del(&m, "/m/b", 17, count, &s), 0);
	assert_non_null(clu_mirror_get(&m, "/m/b"));
	/* Later ones apply. */
	late.mod_rev = 19;
	assert_int_equal(clu_mirror_put(&m, &late, count, &s), 1);
	clu_mirror_free(&m);
}

static void test_debounce(void **state)
{
	(void)state;
	clu_debounce d;
	clu_debounce_init(&d, 10, 100);
	assert_int_equal(clu_debounce_wait(&d, 0), -1);
	assert_int_equal(clu_debounce_take(&d, 0), 0);
	clu_debounce_note(&d, 1000, 1);
	assert_int_equal(clu_debounce_wait(&d, 1000), 10);
	assert_int_equal(clu_debounce_take(&d, 1005), 0);
	clu_debounce_note(&d, 1008, 2);
	assert_int_equal(clu_debounce_wait(&d, 1010), 8);
	assert_int_equal(clu_debounce_take(&d, 1018), 3);
	assert_int_equal(clu_debounce_wait(&d, 1018), -1);
	/* A steady trickle: due max_ms after the first change. */
	for (uint64_t t = 2000; t < 2100; t += 5)
		clu_debounce_note(&d, t, 1);
	assert_int_equal(clu_debounce_wait(&d, 2095), 5);
	assert_int_equal(clu_debounce_take(&d, 2100), 20);
	clu_debounce_note(&d, 3000, 0); /* nothing */
	assert_int_equal(clu_debounce_wait(&d, 3000), -1);
}

static void test_vote(void **state)
{
	(void)state;
	int weu = clu_vote_region_index("WEU"),
	    enam = clu_vote_region_index("ENAM"),
	    eeu = clu_vote_region_index("EEU"),
	    seas = clu_vote_region_index("SEAS");
	assert_true(weu >= 0 && enam >= 0 && eeu >= 0 && seas >= 0);
	assert_int_equal(clu_vote_region_index("MARS"), -1);
	assert_int_equal(clu_vote_region_index(NULL), -1);
	const char *names[] = {"WEU", "ENAM", "EEU"};
	uint32_t check = clu_vote_regions(names, 3);
	assert_int_equal(check, (1u << weu) | (1u << enam) | (1u << eeu));

	/* Two regions of three say unhealthy: unhealthy, whatever WEU's
	 * own edge sees. */
	clu_vote_report a[] = {{weu, 1}, {enam, 0}, {eeu, 0}};
	assert_int_equal(clu_vote(a, 3, check), LB_HEALTH_UNHEALTHY);
	/* One region each way: no majority, each edge its own. */
	assert_int_equal(clu_vote(a, 2, check), LB_HEALTH_UNKNOWN);
	/* Regions, not edges: three WEU edges saying healthy are one
	 * region against two. */
	clu_vote_report b[] = {
	    {weu, 1}, {weu, 1}, {weu, 1}, {enam, 0}, {eeu, 0}};
	assert_int_equal(clu_vote(b, 5, check), LB_HEALTH_UNHEALTHY);
	/* Inside a region, its edges' majority; a tie there is no verdict
	 * from it. */
	clu_vote_report c[] = {{weu, 1}, {weu, 0}, {enam, 1}};
	assert_int_equal(clu_vote(c, 3, check), LB_HEALTH_HEALTHY);
	clu_vote_report d[] = {
	    {weu, 1}, {weu, 0}, {weu, 0}, {enam, 1}, {eeu, 1}};
	assert_int_equal(clu_vote(d, 5, check), LB_HEALTH_HEALTHY);
	/* Outside the check regions, no region, no verdict: not counted. */
	clu_vote_report e[] = {
	    {seas, 0}, {seas, 0}, {-1, 0}, {weu, -1}, {enam, 1}};
	assert_int_equal(clu_vote(e, 5, check), LB_HEALTH_HEALTHY);
	assert_int_equal(clu_vote(e, 4, check), LB_HEALTH_UNKNOWN);
	assert_int_equal(clu_vote(NULL, 0, check), LB_HEALTH_UNKNOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_b64),
	    cmocka_unit_test(test_obj_envelope),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_range_parse),
	    cmocka_unit_test(test_txn),
	    cmocka_unit_test(test_lease),
	    cmocka_unit_test(test_watch),
	    cmocka_unit_test(test_mirror),
	    cmocka_unit_test(test_debounce),
	    cmocka_unit_test(test_vote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
