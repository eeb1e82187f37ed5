/* test_waf.c - the managed rules (waf_rules.c, waf_tx.c) on Debian's
 * modsecurity-crs: the setup text, loading and its errors, verdicts on
 * heads and bodies in both modes, disabled rules, the ids kept for the
 * access log, and two threads running transactions on one rule set. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "waf/waf.h"

#define S(lit) ((http_str){lit, sizeof(lit) - 1})

static cfg_waf_managed managed(void)
{
	return (cfg_waf_managed){.enabled = true,
				 .mode = CFG_WAF_MODE_BLOCK,
				 .paranoia_level = 1,
				 .anomaly_threshold = 5,
				 .crs = "/usr/share/modsecurity-crs",
				 .body_limit = 16384};
}

static const waf_conn CONN = {"192.0.2.1", 40000, "0.0.0.0", 80};

static const http1_header FORM_HEAD[] = {
    {S("Host"), S("lb.example.com")},
    {S("User-Agent"), S("curl/7.88.1")},
    {S("Accept"), S("*/*")},
    {S("Content-Type"), S("application/x-www-form-urlencoded")},
};

/* One request: the head, then the body (NULL: none). */
static waf_verdict run(waf_engine *e, const waf_rules *r, const char *target,
		       const char *body, char *ids, size_t idlen)
{
	waf_tx *t = waf_tx_begin(e, r, &CONN);
	http_str tg = {target, (uint32_t)strlen(target)};
	waf_verdict v = {0};
	bool early = waf_tx_head(t, body ? &S("POST") : &S("GET"), &tg, "1.1",
				 FORM_HEAD, body ? 4 : 3, &v);
	if (!early) {
		if (body)
			waf_tx_body(t, body, strlen(body));
		waf_tx_end(t, &v);
	}
	if (ids)
		snprintf(ids, idlen, "%s", waf_tx_rules(t));
	waf_tx_free(t);
	return v;
}

static void test_setup_text(void **state)
{
	(void)state;
	cfg_waf_managed m = managed();
	m.paranoia_level = 3;
	m.anomaly_threshold = 12;
	char *s = waf_setup_text(&m);
	assert_non_null(strstr(s, "SecRuleEngine On\n"));
	assert_non_null(strstr(s, "SecRequestBodyAccess On\n"));
	assert_non_null(strstr(s, "SecRequestBodyLimit 16384\n"));
	assert_non_null(strstr(s, "setvar:tx.paranoia_level=3\""));
	assert_non_null(
	    strstr(s, "setvar:tx.inbound_anomaly_score_threshold=12,"));
	assert_non_null(strstr(s, "setvar:tx.crs_setup_version=334"));
	free(s);
	m.mode = CFG_WAF_MODE_DETECT;
	m.body_limit = 0;
	s = waf_setup_text(&m);
	assert_non_null(strstr(s, "SecRuleEngine DetectionOnly\n"));
	assert_non_null(strstr(s, "SecRequestBodyAccess Off\n"));
	free(s);
}

static void test_verdicts(void **state)
{
	(void)state;
	cfg_waf_managed m = managed();
	char err[512] = "";
	waf_rules *r = waf_rules_load(&m, err, sizeof(err));
	assert_non_null(r);
	assert_true(waf_rules_count(r) > 500);
	assert_true(waf_rules_same(r, &m));
	waf_engine *e = waf_engine_new();
	char ids[128];

	waf_verdict v =
	    run(e, r, "/search?q=hello+world", NULL, ids, sizeof(ids));
	assert_false(v.block);
	assert_false(v.detected);
	assert_string_equal(ids, "");

	v = run(e, r, "/search?id=1%27%20OR%20%271%27=%271", NULL, ids,
		sizeof(ids));
	assert_true(v.block);
	assert_int_equal(v.status, 403);
	assert_non_null(strstr(ids, "942100"));
	/* The deciding rule (the CRS's anomaly score) comes last. */
	size_t il = strlen(ids);
	assert_true(il > 7 && !strcmp(ids + il - 7, " 949110"));
	/* The request cannot name rules of its own: the library's text lines
	 * carry its bytes around the real ids (in the value, the uri). */
	v = run(e, r,
		"/x%22%5D%20%5Bid%20%22777%22%5D?q=1%27%20UNION%20SELECT%20"
		"password%20FROM%20users--%22%5D%20%5Bline%20%221%22%5D%20%5Bid"
		"%20%22949111%22%5D",
		NULL, ids, sizeof(ids));
	assert_true(v.block);
	assert_null(strstr(ids, "777"));
	assert_null(strstr(ids, "949111"));
	assert_non_null(strstr(ids, "942100"));

	v = run(e, r, "/form", "name=bob&comment=a+nice+day", ids, sizeof(ids));
	assert_false(v.block);
	v = run(e, r, "/form", "name=bob&c=%3Cscript%3Ealert(1)%3C/script%3E",
		ids, sizeof(ids));
	assert_true(v.block);
	assert_non_null(strstr(ids, "941"));
	waf_engine_free(e);
	waf_rules_unref(r);
}

static void test_detect_mode_and_disabled_rules(void **state)
{
	(void)state;
	cfg_waf_managed m = managed();
	m.mode = CFG_WAF_MODE_DETECT;
	char err[512] = "";
	waf_rules *r = waf_rules_load(&m, err, sizeof(err));
	assert_non_null(r);
	waf_engine *e = waf_engine_new();
	char ids[128];
	waf_verdict v = run(e, r, "/search?id=1%27%20OR%20%271%27=%271", NULL,
			    ids, sizeof(ids));
	assert_false(v.block);
	assert_true(v.detected);
	assert_non_null(strstr(ids, "949110"));
	waf_rules_unref(r);

	/* The SQL injection rules it trips, removed: nothing left. */
	m.mode = CFG_WAF_MODE_BLOCK;
	uint32_t off[16];
	size_t n = 0;
	for (char *p = ids; *p && n < 16;) {
		unsigned long id = strtoul(p, &p, 10);
		if (id != 949110)
			off[n++] = (uint32_t)id;
	}
	m.disabled_rules = off;
	m.ndisabled_rules = n;
	r = waf_rules_load(&m, err, sizeof(err));
	assert_non_null(r);
	cfg_waf_managed plain = managed();
	assert_false(waf_rules_same(r, &plain));
	v = run(e, r, "/search?id=1%27%20OR%20%271%27=%271", NULL, ids,
		sizeof(ids));
	assert_false(v.block);
	waf_engine_free(e);
	waf_rules_unref(r);
}

static void test_load_errors(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_waf_XXXXXX";
	assert_non_null(mkdtemp(dir));
	char bad[64];
	snprintf(bad, sizeof(bad), "%s/bad.conf", dir);
	FILE *f = fopen(bad, "w");
	assert_non_null(f);
	fputs("SecRule ARGS \"@rx a\" \"id:1,phase:2,deny\"\nSecRul bogus\n",
	      f);
	fclose(f);

	cfg_waf_managed m = managed();
	m.pos = (cfg_pos){"edge.yaml", 12, 3};
	const char *files[] = {bad};
	m.rules_files = files;
	m.nrules_files = 1;
	char err[512] = "";
	assert_null(waf_rules_load(&m, err, sizeof(err)));
	char want[256];
	snprintf(want, sizeof(want),
		 "edge.yaml:12:3: waf.managed: rules_files "
		 "%s: Rules error. File: %s. Line: 2.",
		 bad, bad);
	assert_memory_equal(err, want, strlen(want));

	m.nrules_files = 0;
	m.crs = dir; /* no rules/ *.conf in it */
	assert_null(waf_rules_load(&m, err, sizeof(err)));
	assert_non_null(strstr(err, "edge.yaml:12:3: waf.managed: crs: no "
				    "rules in /tmp/test_waf_"));

	m.crs = "/usr/share/modsecurity-crs";
	char missing[80];
	snprintf(missing, sizeof(missing), "%s/none.conf", dir);
	const char *setup[] = {missing};
	m.setup_files = setup;
	m.nsetup_files = 1;
	assert_null(waf_rules_load(&m, err, sizeof(err)));
	assert_non_null(strstr(err, "waf.managed: setup_files "));
	unlink(bad);
	rmdir(dir);
}

/* Two workers' engines on one rule set at once (the edge's layout).
 * Engines made at the same moment, and freed one after the other: two
 * msc_cleanup at once double-free libxml2's globals (seen here as "double
 * free or corruption" before engine_lock). */
typedef struct worker_arg {
	const waf_rules *r;
	waf_engine *e; /* freed after the join, as the edge does */
	int wrong;
} worker_arg;

static void *worker(void *p)
{
	worker_arg *a = p;
	waf_engine *e = a->e = waf_engine_new();
	for (int i = 0; i < 60; i++) {
		bool attack = i % 2;
		waf_verdict v =
		    run(e, a->r,
			attack ? "/s?id=1%27%20OR%20%271%27=%271" : "/s?q=sea",
			i % 3 ? NULL : "a=1&b=two", NULL, 0);
		if (v.block != attack)
			a->wrong++;
	}
	return NULL;
}

static void test_threads_share_a_rule_set(void **state)
{
	(void)state;
	cfg_waf_managed m = managed();
	char err[512] = "";
	waf_rules *r = waf_rules_load(&m, err, sizeof(err));
	assert_non_null(r);
	pthread_t t[2];
	worker_arg a[2] = {{r, NULL, 0}, {r, NULL, 0}};
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, &a[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	waf_engine_free(a[0].e);
	waf_engine_free(a[1].e);
	assert_int_equal(a[0].wrong + a[1].wrong, 0);
	waf_rules_unref(r);
	waf_counters c;
	waf_counters_get(&c);
	assert_true(c.inspected >= 120);
}

/* More rules match than the access log keeps: the deciding rule is still
 * named, last, and a 949xxx beyond the first 8 still counts. */
static void test_many_matches_keep_the_deciding_rule(void **state)
{
	(void)state;
	char path[] = "/tmp/test_waf_many_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	for (int i = 0; i < 12; i++)
		fprintf(f,
			"SecRule ARGS:zz \"@streq hit\" "
			"\"id:%d,phase:1,pass,log,t:none\"\n",
			10100 + i);
	fputs("SecRule ARGS:zz \"@streq hit\" "
	      "\"id:949555,phase:2,deny,status:403,log,t:none\"\n",
	      f);
	fclose(f);
	cfg_waf_managed m = managed();
	const char *files[] = {path};
	m.rules_files = files;
	m.nrules_files = 1;
	char err[512] = "";
	waf_rules *r = waf_rules_load(&m, err, sizeof(err));
	assert_non_null(r);
	waf_engine *e = waf_engine_new();
	char ids[128];
	waf_verdict v = run(e, r, "/s?zz=hit", NULL, ids, sizeof(ids));
	assert_true(v.block);
	assert_true(v.detected);
	assert_non_null(strstr(ids, "10100 "));
	size_t il = strlen(ids);
	assert_true(il > 7 && !strcmp(ids + il - 7, " 949555"));
	size_t words = 1;
	for (const char *q = ids; *q; q++)
		words += *q == ' ';
	assert_int_equal(words, 8);
	waf_engine_free(e);
	waf_rules_unref(r);
	unlink(path);
}

/* Engines made and freed by many threads at the same moment (workers
 * start at once): without engine_lock two msc_cleanup calls double-free
 * libxml2's globals (about one round in two crashed with 8 threads). */
static pthread_barrier_t at_once;

static void *engine_churn(void *p)
{
	(void)p;
	pthread_barrier_wait(&at_once);
	waf_engine *e = waf_engine_new();
	pthread_barrier_wait(&at_once);
	waf_engine_free(e);
	return NULL;
}

static void test_engines_made_and_freed_at_once(void **state)
{
	(void)state;
	enum { N = 8 };
	for (int round = 0; round < 6; round++) {
		pthread_t t[N];
		assert_int_equal(pthread_barrier_init(&at_once, NULL, N), 0);
		for (int i = 0; i < N; i++)
			assert_int_equal(
			    pthread_create(&t[i], NULL, engine_churn, NULL), 0);
		for (int i = 0; i < N; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&at_once);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_setup_text),
	    cmocka_unit_test(test_verdicts),
	    cmocka_unit_test(test_detect_mode_and_disabled_rules),
	    cmocka_unit_test(test_load_errors),
	    cmocka_unit_test(test_threads_share_a_rule_set),
	    cmocka_unit_test(test_many_matches_keep_the_deciding_rule),
	    cmocka_unit_test(test_engines_made_and_freed_at_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
