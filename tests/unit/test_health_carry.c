/* test_health_carry.c - health_states_carry: what a config change keeps of
 * the live state of origins and pools. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config/cfg_load.h"
#include "config/cfg_resolve.h"
#include "health/health_checker.h"

static cfg_snapshot *load(const char *yaml)
{
	cfg_snapshot *s = NULL;
	cfg_diag d = {0};
	int rc = cfg_load_string("t.yaml", yaml, strlen(yaml), &s, &d);
	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "%s\n", d.msgs[i]);
	cfg_diag_free(&d);
	assert_int_equal(rc, 0);
	return s;
}

static const char *const OLD_CFG =
    "monitors:\n"
    "  - {id: m, type: http, path: /healthz, interval: 5s}\n"
    "pools:\n"
    "  - id: a\n"
    "    monitor: m\n"
    "    origins:\n"
    "      - {name: a1, address: 127.0.0.1, port: 9001}\n"
    "      - {name: a2, address: 127.0.0.1, port: 9002}\n"
    "      - {name: t1, address: 127.0.0.1, port: 9443, tls: true}\n"
    "      - {name: t2, address: 127.0.0.1, port: 9444, tls: true}\n"
    "  - id: b\n"
    "    origins: [{name: b1, address: 127.0.0.1, port: 9101}]\n";

/* Pool b gone, pool c new and first; in a: a2 moved port, a3 new, a1 the
 * same but now second. The monitor's description changed, nothing that
 * checks. */
static const char *const NEW_CFG =
    "monitors:\n"
    "  - {id: m, type: http, path: /healthz, interval: 5s,\n"
    "     description: only the words changed}\n"
    "pools:\n"
    "  - id: c\n"
    "    monitor: m\n"
    "    origins: [{name: b1, address: 127.0.0.1, port: 9101}]\n"
    "  - id: a\n"
    "    monitor: m\n"
    "    origins:\n"
    "      - {name: a3, address: 127.0.0.1, port: 9003}\n"
    "      - {name: a1, address: 127.0.0.1, port: 9001}\n"
    "      - {name: a2, address: 127.0.0.1, port: 9999}\n"
    "      - {name: t1, address: 127.0.0.1, port: 9443, tls: true}\n"
    "      - {name: t2, address: 127.0.0.1, port: 9444}\n";

static const cfg_origin *origin(const cfg_snapshot *s, const char *pool,
				const char *name)
{
	for (size_t i = 0; i < s->npools; i++)
		if (!strcmp(s->pools[i].id, pool))
			for (size_t j = 0; j < s->pools[i].norigins; j++)
				if (!strcmp(s->pools[i].origins[j].name, name))
					return &s->pools[i].origins[j];
	fail_msg("no origin %s/%s", pool, name);
	return NULL;
}

static void test_carry_matches_by_identity(void **state)
{
	(void)state;
	cfg_snapshot *a = load(OLD_CFG), *b = load(NEW_CFG);
	lb_origin_state *ao = calloc(a->norigins, sizeof(*ao));
	lb_origin_state *bo = calloc(b->norigins, sizeof(*bo));
	lb_pool_state *ap = calloc(a->npools, sizeof(*ap));
	lb_pool_state *bp = calloc(b->npools, sizeof(*bp));
	health_states_init(ao, a->norigins, ap, a->npools);
	health_states_init(bo, b->norigins, bp, b->npools);
	for (size_t i = 0; i < a->norigins; i++) {
		atomic_store(&ao[i].active, LB_HEALTH_UNHEALTHY);
		atomic_store(&ao[i].rtt_us, 1000 + (uint32_t)i);
		atomic_store(&ao[i].ejected_until, 777);
		snprintf(ao[i].reason, sizeof(ao[i].reason), "reason %zu", i);
		ao[i].since_ms = 42 + i;
		ao[i].checks = 10;
		ao[i].failures = 3;
		atomic_store(&ao[i].tls_not_after, 1900000000 + (int64_t)i);
	}
	atomic_store(&ap[0].health, LB_POOL_DEGRADED);
	ap[0].since_ms = 5;
	atomic_store(&ap[1].health, LB_POOL_CRITICAL);

	size_t kept = health_states_carry(a, ao, ap, b, bo, bp);
	/* a/a1, and t1 and t2, are the same origins */
	assert_int_equal(kept, 3);

	const cfg_origin *oa1 = origin(a, "a", "a1"),
			 *na1 = origin(b, "a", "a1");
	lb_origin_state *s = &bo[na1->index];
	assert_int_equal(atomic_load(&s->active), LB_HEALTH_UNHEALTHY);
	assert_int_equal(atomic_load(&s->rtt_us), 1000 + oa1->index);
	assert_int_equal(atomic_load(&s->ejected_until), 777);
	assert_string_equal(s->reason, ao[oa1->index].reason);
	assert_int_equal(s->since_ms, 42 + oa1->index);
	assert_int_equal(s->checks, 10);
	/* A plain origin has no certificate; t1 keeps its expiry; t2 no
	 * longer speaks TLS, so its old certificate says nothing. */
	assert_int_equal(atomic_load(&s->tls_not_after), 0);
	assert_int_equal(
	    atomic_load(&bo[origin(b, "a", "t1")->index].tls_not_after),
	    1900000000 + (int64_t)origin(a, "a", "t1")->index);
	assert_int_equal(
	    atomic_load(&bo[origin(b, "a", "t2")->index].tls_not_after), 0);
	/* New, moved and re-pooled origins start unknown. */
	const char *fresh[][2] = {{"a", "a3"}, {"a", "a2"}, {"c", "b1"}};
	for (size_t i = 0; i < 3; i++) {
		lb_origin_state *f =
		    &bo[origin(b, fresh[i][0], fresh[i][1])->index];
		assert_int_equal(atomic_load(&f->active), LB_HEALTH_UNKNOWN);
		assert_int_equal(atomic_load(&f->rtt_us), 0);
		assert_string_equal(f->reason, "");
	}
	/* Pool a keeps its health at its new index; c (new) is unknown. */
	assert_int_equal(atomic_load(&bp[1].health), LB_POOL_DEGRADED);
	assert_int_equal(bp[1].since_ms, 5);
	assert_int_equal(atomic_load(&bp[0].health), LB_POOL_UNKNOWN);

	health_states_destroy(ao, a->norigins);
	health_states_destroy(bo, b->norigins);
	free(ao);
	free(bo);
	free(ap);
	free(bp);
	cfg_snapshot_free(a);
	cfg_snapshot_free(b);
}

/* One origin, a1 of pool a, as the old config had it (checked by m) and
 * as the new one has it: what of its state survives the change. */
static const char *const ONE_OLD =
    "monitors:\n"
    "  - {id: m, type: http, path: /healthz, interval: 5s,\n"
    "     consecutive_down: 2}\n"
    "pools:\n"
    "  - id: a\n"
    "    monitor: m\n"
    "    origins: [{name: a1, address: 127.0.0.1, port: 9001}]\n";

typedef struct carried {
	uint8_t active;
	uint32_t rtt_us;
	uint64_t checks, since_ms, ejected_until, next_check_ms;
	uint32_t down_run;
	char reason[96];
	size_t kept;
} carried;

/* Carry an unhealthy, ejected a1 from ONE_OLD to new_yaml. */
static carried carry_a1(const char *new_yaml)
{
	cfg_snapshot *a = load(ONE_OLD), *b = load(new_yaml);
	lb_origin_state ao[1], bo[8];
	lb_pool_state ap[1], bp[8];
	assert_true(b->norigins <= 8 && b->npools <= 8);
	health_states_init(ao, 1, ap, 1);
	health_states_init(bo, b->norigins, bp, b->npools);
	atomic_store(&ao[0].active, LB_HEALTH_UNHEALTHY);
	atomic_store(&ao[0].rtt_us, 1234);
	atomic_store(&ao[0].ejected_until, 777);
	snprintf(ao[0].reason, sizeof(ao[0].reason), "%s",
		 "response code mismatch: HTTP 503, expected 200");
	ao[0].since_ms = 42;
	ao[0].checks = 10;
	ao[0].failures = 3;
	ao[0].down_run = 3;
	atomic_store(&ao[0].next_check_ms, 123456);
	atomic_store(&ap[0].health, LB_POOL_CRITICAL);

	carried c = {0};
	c.kept = health_states_carry(a, ao, ap, b, bo, bp);
	const lb_origin_state *s = &bo[origin(b, "a", "a1")->index];
	c.active = atomic_load(&s->active);
	c.rtt_us = atomic_load(&s->rtt_us);
	c.ejected_until = atomic_load(&s->ejected_until);
	c.checks = s->checks;
	c.since_ms = s->since_ms;
	c.down_run = s->down_run;
	c.next_check_ms = atomic_load(&s->next_check_ms);
	memcpy(c.reason, s->reason, sizeof(c.reason));

	health_states_destroy(ao, 1);
	health_states_destroy(bo, b->norigins);
	cfg_snapshot_free(a);
	cfg_snapshot_free(b);
	return c;
}

static void assert_fresh(const carried *c)
{
	assert_int_equal(c->kept, 0);
	assert_int_equal(c->active, LB_HEALTH_UNKNOWN);
	assert_int_equal(c->rtt_us, 0);
	assert_int_equal(c->checks, 0);
	assert_int_equal(c->since_ms, 0);
	assert_int_equal(c->down_run, 0);
	assert_int_equal(c->next_check_ms, 0);
	assert_string_equal(c->reason, "");
	/* Live traffic's ejection is about the origin, not the monitor. */
	assert_int_equal(c->ejected_until, 777);
}

static void test_carry_same_monitor_keeps_verdict(void **state)
{
	(void)state;
	carried c = carry_a1(ONE_OLD);
	assert_int_equal(c.kept, 1);
	assert_int_equal(c.active, LB_HEALTH_UNHEALTHY);
	assert_int_equal(c.rtt_us, 1234);
	assert_int_equal(c.checks, 10);
	assert_int_equal(c.since_ms, 42);
	/* The run towards consecutive_down, and the check grid, go on. */
	assert_int_equal(c.down_run, 3);
	assert_int_equal(c.next_check_ms, 123456);
	assert_string_equal(c.reason,
			    "response code mismatch: HTTP 503, expected 200");
}

/* Regression (r1_monitor_removed): the verdict was carried into a pool
 * that no longer has a monitor; nothing checked the origin again and it
 * stayed unhealthy, unroutable, for good. */
static void test_carry_monitor_removed_starts_unknown(void **state)
{
	(void)state;
	carried c = carry_a1(
	    "pools:\n"
	    "  - id: a\n"
	    "    origins: [{name: a1, address: 127.0.0.1, port: 9001}]\n");
	assert_fresh(&c);
}

static void test_carry_monitor_changed_starts_unknown(void **state)
{
	(void)state;
	/* Each differs from ONE_OLD's monitor in one setting, or in id. */
	static const char *const mons[] = {
	    "{id: m, type: http, path: /other, interval: 5s,"
	    " consecutive_down: 2}",
	    "{id: m, type: http, path: /healthz, interval: 5s,"
	    " consecutive_down: 2, expected_codes: 2xx}",
	    "{id: m, type: tcp, interval: 5s, consecutive_down: 2}",
	    "{id: m, type: http, path: /healthz, interval: 5s,"
	    " consecutive_down: 2, header: {Host: [x.example]}}",
	    "{id: n, type: http, path: /healthz, interval: 5s,"
	    " consecutive_down: 2}",
	};
	for (size_t i = 0; i < sizeof(mons) / sizeof(mons[0]); i++) {
		char yaml[1024];
		const char *id = strstr(mons[i], "id: n") ? "n" : "m";
		snprintf(yaml, sizeof(yaml),
			 "monitors:\n"
			 "  - %s\n"
			 "pools:\n"
			 "  - id: a\n"
			 "    monitor: %s\n"
			 "    origins: [{name: a1, address: 127.0.0.1, "
			 "port: 9001}]\n",
			 mons[i], id);
		carried c = carry_a1(yaml);
		assert_fresh(&c);
	}
}

/* Only the cadence or the tolerance changed (interval, timeout, retries,
 * consecutive_up/down): the monitor tests the same thing, so the verdict
 * stands until the next check (reset to unknown, an origin known dead
 * would take traffic until then); the check grid starts anew for the new
 * interval. */
static void test_carry_monitor_cadence_changed_keeps_verdict(void **state)
{
	(void)state;
	static const char *const mons[] = {
	    "{id: m, type: http, path: /healthz, interval: 10s,"
	    " consecutive_down: 2}",
	    "{id: m, type: http, path: /healthz, interval: 5s,"
	    " consecutive_down: 3}",
	    "{id: m, type: http, path: /healthz, interval: 5s,"
	    " consecutive_down: 2, consecutive_up: 4, retries: 0,"
	    " timeout: 1s}",
	};
	for (size_t i = 0; i < sizeof(mons) / sizeof(mons[0]); i++) {
		char yaml[1024];
		snprintf(yaml, sizeof(yaml),
			 "monitors:\n"
			 "  - %s\n"
			 "pools:\n"
			 "  - id: a\n"
			 "    monitor: m\n"
			 "    origins: [{name: a1, address: 127.0.0.1, "
			 "port: 9001}]\n",
			 mons[i]);
		carried c = carry_a1(yaml);
		assert_int_equal(c.kept, 1);
		assert_int_equal(c.active, LB_HEALTH_UNHEALTHY);
		assert_int_equal(c.checks, 10);
		assert_int_equal(c.down_run, 3);
		assert_string_equal(
		    c.reason, "response code mismatch: HTTP 503, expected 200");
		assert_int_equal(c.next_check_ms, 0); /* a new grid */
	}
}

/* The check regions' majority (lb_origin_state.cluster) outranks the
 * edge's own checks, and only pools with check_regions are voted on: a
 * majority carried into a pool that no longer has them would never be
 * voted on again and would decide the origin's health for good. */
static void test_carry_cluster_verdict_needs_check_regions(void **state)
{
	(void)state;
#define CHECKED_POOL(regions)                                                  \
	"monitors:\n"                                                          \
	"  - {id: m, type: http, path: /healthz, interval: 5s}\n"              \
	"pools:\n"                                                             \
	"  - id: a\n"                                                          \
	"    monitor: m\n" regions                                             \
	"    origins: [{name: a1, address: 127.0.0.1, port: 9001}]\n"
	static const char *const with =
	    CHECKED_POOL("    check_regions: [WNAM, WEU]\n");
	static const char *const without = CHECKED_POOL("");
#undef CHECKED_POOL
	const char *to[] = {with, without};
	for (size_t k = 0; k < 2; k++) {
		cfg_snapshot *a = load(with), *b = load(to[k]);
		lb_origin_state ao[1], bo[1];
		lb_pool_state ap[1], bp[1];
		health_states_init(ao, 1, ap, 1);
		health_states_init(bo, 1, bp, 1);
		atomic_store(&ao[0].active, LB_HEALTH_HEALTHY);
		atomic_store(&ao[0].cluster, LB_HEALTH_UNHEALTHY);
		assert_int_equal(health_states_carry(a, ao, ap, b, bo, bp), 1);
		assert_int_equal(atomic_load(&bo[0].active), LB_HEALTH_HEALTHY);
		assert_int_equal(atomic_load(&bo[0].cluster),
				 k == 0 ? LB_HEALTH_UNHEALTHY
					: LB_HEALTH_UNKNOWN);
		assert_int_equal(lb_origin_health(&bo[0]),
				 k == 0 ? LB_HEALTH_UNHEALTHY
					: LB_HEALTH_HEALTHY);
		health_states_destroy(ao, 1);
		health_states_destroy(bo, 1);
		cfg_snapshot_free(a);
		cfg_snapshot_free(b);
	}
}

/* The configs of test_carry_disabled_keeps_last_verdict: a1 (or its
 * pool) disabled, the monitor as in ONE_OLD. */
static const char *const DISABLED_A1[] = {
    /* origin disabled */
    "monitors:\n"
    "  - {id: m, type: http, path: /healthz, interval: 5s,\n"
    "     consecutive_down: 2}\n"
    "pools:\n"
    "  - id: a\n"
    "    monitor: m\n"
    "    origins: [{name: a1, address: 127.0.0.1, port: 9001,\n"
    "               enabled: false},\n"
    "              {name: a2, address: 127.0.0.1, port: 9002}]\n",
    /* pool disabled */
    "monitors:\n"
    "  - {id: m, type: http, path: /healthz, interval: 5s,\n"
    "     consecutive_down: 2}\n"
    "pools:\n"
    "  - id: a\n"
    "    monitor: m\n"
    "    enabled: false\n"
    "    origins: [{name: a1, address: 127.0.0.1, port: 9001}]\n",
};

/* Regression (r13_drain_dead): disabling an origin (or its pool) reset its
 * verdict to unknown, i.e. routable, and nothing checks a disabled
 * origin: the sessions it drains (drain_duration) went back to an origin
 * the monitor had found dead. Its last verdict now stays while it is
 * disabled under the same monitor. */
static void test_carry_disabled_keeps_last_verdict(void **state)
{
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		carried c = carry_a1(DISABLED_A1[i]);
		assert_int_equal(c.kept, 1);
		assert_int_equal(c.active, LB_HEALTH_UNHEALTHY);
		assert_int_equal(c.rtt_us, 1234);
		assert_string_equal(
		    c.reason, "response code mismatch: HTTP 503, expected 200");
	}
}

/* Enabled again (or disabled with another monitor), it starts afresh: a
 * verdict nobody checked meanwhile must not keep it out. */
static void test_carry_disabled_then_enabled_starts_unknown(void **state)
{
	(void)state;
	static const char *const other_monitor =
	    "monitors:\n"
	    "  - {id: m, type: http, path: /other, interval: 5s,\n"
	    "     consecutive_down: 2}\n"
	    "pools:\n"
	    "  - id: a\n"
	    "    monitor: m\n"
	    "    enabled: false\n"
	    "    origins: [{name: a1, address: 127.0.0.1, port: 9001}]\n";
	const char *to[] = {ONE_OLD, ONE_OLD, other_monitor};
	const char *from[] = {DISABLED_A1[0], DISABLED_A1[1], DISABLED_A1[1]};
	for (size_t i = 0; i < 3; i++) {
		cfg_snapshot *a = load(from[i]), *b = load(to[i]);
		lb_origin_state ao[2], bo[2];
		lb_pool_state ap[1], bp[1];
		health_states_init(ao, a->norigins, ap, 1);
		health_states_init(bo, b->norigins, bp, 1);
		const cfg_origin *oa = origin(a, "a", "a1");
		atomic_store(&ao[oa->index].active, LB_HEALTH_UNHEALTHY);
		atomic_store(&ao[oa->index].rtt_us, 1234);
		assert_int_equal(health_states_carry(a, ao, ap, b, bo, bp), 0);
		const lb_origin_state *s = &bo[origin(b, "a", "a1")->index];
		assert_int_equal(atomic_load(&s->active), LB_HEALTH_UNKNOWN);
		assert_int_equal(atomic_load(&s->rtt_us), 0);
		health_states_destroy(ao, a->norigins);
		health_states_destroy(bo, b->norigins);
		cfg_snapshot_free(a);
		cfg_snapshot_free(b);
	}
}

/* The cache as the resolver leaves it: host at ip. */
static void resolve_to(const char *host, const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	sin->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	cfg_resolve_forget();
	cfg_resolve_seed(host, &ss, sizeof(*sin));
}

/* An origin whose host name now resolves to another server keeps its
 * verdict until its first check, which comes at once (no carried grid);
 * live traffic's ejection and the certificate were the old server's. */
static void test_carry_moved_host_name(void **state)
{
	(void)state;
	static const char *const yaml =
	    "monitors:\n"
	    "  - {id: m, type: https, path: /healthz, interval: 5s}\n"
	    "pools:\n"
	    "  - id: a\n"
	    "    monitor: m\n"
	    "    origins: [{name: a1, address: app.carry.test, port: 9443,\n"
	    "               tls: true}]\n";
	for (int move = 0; move < 2; move++) {
		resolve_to("app.carry.test", "127.0.0.1");
		cfg_snapshot *a = load(yaml);
		resolve_to("app.carry.test", move ? "127.0.0.2" : "127.0.0.1");
		cfg_snapshot *b = load(yaml);
		lb_origin_state ao[1], bo[1];
		lb_pool_state ap[1], bp[1];
		health_states_init(ao, 1, ap, 1);
		health_states_init(bo, 1, bp, 1);
		atomic_store(&ao[0].active, LB_HEALTH_UNHEALTHY);
		atomic_store(&ao[0].ejected_until, 777);
		atomic_store(&ao[0].ejections, 4);
		atomic_store(&ao[0].next_check_ms, 123456);
		atomic_store(&ao[0].tls_not_after, 1900000000);
		assert_int_equal(health_states_carry(a, ao, ap, b, bo, bp), 1);
		assert_int_equal(atomic_load(&bo[0].active),
				 LB_HEALTH_UNHEALTHY);
		assert_int_equal(atomic_load(&bo[0].ejections), 4);
		assert_int_equal(atomic_load(&bo[0].ejected_until),
				 move ? 0 : 777);
		assert_int_equal(atomic_load(&bo[0].next_check_ms),
				 move ? 0 : 123456);
		assert_int_equal(atomic_load(&bo[0].tls_not_after),
				 move ? 0 : 1900000000);
		health_states_destroy(ao, 1);
		health_states_destroy(bo, 1);
		cfg_snapshot_free(a);
		cfg_snapshot_free(b);
	}
	cfg_resolve_forget();
}

typedef struct seen {
	char what[8][64];
	size_t n;
} seen;

static void note(void *arg, const health_enablement *e)
{
	seen *s = arg;
	assert_true(s->n < 8);
	snprintf(s->what[s->n++], sizeof(s->what[0]), "%s/%s %s", e->pool->id,
		 e->origin ? e->origin->name : "-",
		 e->enabled ? "enabled" : "disabled");
}

/* SPEC 4.5: enabling and disabling is notified; edge_health_swap learns
 * what changed from health_enablement_diff. */
static void test_enablement_diff(void **state)
{
	(void)state;
	cfg_snapshot *a =
	    load("pools:\n"
		 "  - id: a\n"
		 "    origins:\n"
		 "      - {name: a1, address: 127.0.0.1, port: 1}\n"
		 "      - {name: a2, address: 127.0.0.1, port: 2}\n"
		 "  - id: b\n"
		 "    origins:\n"
		 "      - {name: b1, address: 127.0.0.1, port: 3,\n"
		 "         enabled: false}\n");
	/* a2 disabled (and moved), a3 new and disabled, b disabled and b1
	 * enabled, c new and disabled. */
	cfg_snapshot *b =
	    load("pools:\n"
		 "  - id: c\n"
		 "    enabled: false\n"
		 "    origins: [{name: c1, address: 127.0.0.1}]\n"
		 "  - id: b\n"
		 "    enabled: false\n"
		 "    origins: [{name: b1, address: 127.0.0.1, "
		 "port: 3}]\n"
		 "  - id: a\n"
		 "    origins:\n"
		 "      - {name: a3, address: 127.0.0.1, port: 4,\n"
		 "         enabled: false}\n"
		 "      - {name: a2, address: 127.0.0.1, port: 9,\n"
		 "         enabled: false}\n"
		 "      - {name: a1, address: 127.0.0.1, port: 1}\n");
	seen s = {0};
	assert_int_equal(health_enablement_diff(a, b, note, &s), 3);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.what[0], "b/- disabled");
	assert_string_equal(s.what[1], "b/b1 enabled");
	assert_string_equal(s.what[2], "a/a2 disabled");
	/* Nothing changed: nothing to say. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(health_enablement_diff(b, b, note, &s), 0);
	/* And back. */
	assert_int_equal(health_enablement_diff(b, a, note, &s), 3);
	assert_string_equal(s.what[0], "a/a2 enabled");
	assert_string_equal(s.what[1], "b/- enabled");
	assert_string_equal(s.what[2], "b/b1 disabled");
	cfg_snapshot_free(a);
	cfg_snapshot_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_carry_matches_by_identity),
	    cmocka_unit_test(test_carry_same_monitor_keeps_verdict),
	    cmocka_unit_test(test_carry_monitor_removed_starts_unknown),
	    cmocka_unit_test(test_carry_monitor_changed_starts_unknown),
	    cmocka_unit_test(test_carry_monitor_cadence_changed_keeps_verdict),
	    cmocka_unit_test(test_carry_disabled_keeps_last_verdict),
	    cmocka_unit_test(test_carry_disabled_then_enabled_starts_unknown),
	    cmocka_unit_test(test_carry_cluster_verdict_needs_check_regions),
	    cmocka_unit_test(test_carry_moved_host_name),
	    cmocka_unit_test(test_enablement_diff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
