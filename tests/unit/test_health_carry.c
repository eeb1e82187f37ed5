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

#include "config/cfg_load.h"
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
    "pools:\n"
    "  - id: a\n"
    "    origins:\n"
    "      - {name: a1, address: 127.0.0.1, port: 9001}\n"
    "      - {name: a2, address: 127.0.0.1, port: 9002}\n"
    "      - {name: t1, address: 127.0.0.1, port: 9443, tls: true}\n"
    "      - {name: t2, address: 127.0.0.1, port: 9444, tls: true}\n"
    "  - id: b\n"
    "    origins: [{name: b1, address: 127.0.0.1, port: 9101}]\n";

/* Pool b gone, pool c new and first; in a: a2 moved port, a3 new, a1 the
 * same but now second. */
static const char *const NEW_CFG =
    "pools:\n"
    "  - id: c\n"
    "    origins: [{name: b1, address: 127.0.0.1, port: 9101}]\n"
    "  - id: a\n"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_carry_matches_by_identity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
