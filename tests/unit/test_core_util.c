/* Unit tests for core: durations, the timer heap, buffers, the arena, and
 * px_head (head rewriting) which is pure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "core/core_arena.h"
#include "core/core_buf.h"
#include "core/core_loop.h"
#include "core/core_sock.h"
#include "core/core_util.h"

static void test_durations(void **state)
{
	uint64_t ms;
	assert_int_equal(core_parse_duration_ms("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(core_parse_duration_ms("5s", &ms), 0);
	assert_int_equal(ms, 5000);
	assert_int_equal(core_parse_duration_ms("1m", &ms), 0);
	assert_int_equal(ms, 60000);
	assert_int_equal(core_parse_duration_ms("2h", &ms), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(core_parse_duration_ms("7", &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(core_parse_duration_ms("", &ms), -22);
	assert_int_equal(core_parse_duration_ms("5x", &ms), -22);
	assert_int_equal(core_parse_duration_ms("-5s", &ms), -22);
	assert_int_equal(core_parse_duration_ms("99999999999999999999s", &ms),
			 -22);
}

static int fired[64];
static int nfired;
static void on_timer(core_timer *t)
{
	fired[nfired++] = (int)(t->deadline);
}

static void test_timer_heap_order(void **state)
{
	core_loop l;
	assert_int_equal(core_loop_init(&l), 0);
	core_timer t[32];
	uint64_t rng = 12345;
	for (int i = 0; i < 32; i++) {
		core_timer_init(&t[i], on_timer);
		rng = rng * 6364136223846793005ULL + 1;
		core_timer_set(&l, &t[i], 1000 + (rng >> 40) % 1000);
	}
	/* Move some, cancel some. */
	core_timer_set(&l, &t[3], 5);
	core_timer_set(&l, &t[4], 99999);
	core_timer_cancel(&l, &t[5]);
	core_timer_cancel(&l, &t[5]);
	assert_false(core_timer_armed(&t[5]));
	assert_int_equal(l.nheap, 31);
	nfired = 0;
	uint64_t prev = 0;
	while (l.nheap) {
		core_timer *top = l.heap[0].t;
		assert_true(top->deadline >= prev);
		prev = top->deadline;
		core_timer_cancel(&l, top);
	}
	core_loop_destroy(&l);
}

/* Every slot names a timer that knows its place and carries the timer's
 * deadline, and no child is earlier than its parent. */
static void assert_heap_ok(const core_loop *l)
{
	for (uint32_t i = 0; i < l->nheap; i++) {
		assert_int_equal(l->heap[i].t->heap_idx, i);
		assert_true(l->heap[i].deadline == l->heap[i].t->deadline);
		if (i > 0)
			assert_true(l->heap[(i - 1) / 2].deadline <=
				    l->heap[i].deadline);
	}
}

/* Random arms, moves (earlier and later) and cancels against a model of
 * which timers are armed; then the pops come out in deadline order. */
static void test_timer_heap_random(void **state)
{
	core_loop l;
	assert_int_equal(core_loop_init(&l), 0);
	enum { N = 300 };
	static core_timer t[N];
	bool armed[N] = {0};
	uint32_t narmed = 0;
	for (int i = 0; i < N; i++)
		core_timer_init(&t[i], on_timer);
	uint64_t rng = 777;
	for (int op = 0; op < 20000; op++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		int i = (int)((rng >> 33) % N);
		uint64_t d = (rng >> 13) % 5000; /* ties are common */
		if ((rng >> 60) < 5) {
			core_timer_cancel(&l, &t[i]);
			narmed -= armed[i];
			armed[i] = false;
		} else {
			core_timer_set(&l, &t[i], d);
			narmed += !armed[i];
			armed[i] = true;
		}
		assert_int_equal(l.nheap, narmed);
		for (int j = 0; j < N; j++)
			assert_int_equal(core_timer_armed(&t[j]), armed[j]);
		if (op % 97 == 0)
			assert_heap_ok(&l);
	}
	assert_heap_ok(&l);
	uint64_t prev = 0;
	while (l.nheap) {
		core_timer *top = l.heap[0].t;
		assert_true(top->deadline >= prev);
		prev = top->deadline;
		core_timer_cancel(&l, top);
		assert_heap_ok(&l);
	}
	core_loop_destroy(&l);
}

/* A lowered soft limit is raised back to the hard one. */
static void test_raise_nofile(void **state)
{
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < 64 || rl.rlim_max == RLIM_INFINITY)
		skip();
	struct rlimit low = {.rlim_cur = 32, .rlim_max = rl.rlim_max};
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	uint64_t before = 0, after = 0, again_b = 0, again_a = 0;
	int rc1 = core_raise_nofile(&before, &after);
	struct rlimit now;
	int rc2 = getrlimit(RLIMIT_NOFILE, &now);
	/* Already at the hard limit: nothing to do. */
	int rc3 = core_raise_nofile(&again_b, &again_a);
	setrlimit(RLIMIT_NOFILE, &rl); /* before any assertion can stop us */
	assert_int_equal(rc1, 0);
	assert_int_equal(before, 32);
	assert_int_equal(after, rl.rlim_max);
	assert_int_equal(rc2, 0);
	assert_int_equal(now.rlim_cur, rl.rlim_max);
	assert_int_equal(rc3, 0);
	assert_int_equal(again_b, again_a);
}

static void test_failpoint(void **state)
{
	(void)state;
	assert_false(core_failpoint("fp_a")); /* no variable */
	setenv("MERIDIAN_FAILPOINTS", "fp_b=2:3,fp_c=0:1", 1);
	bool got[7];
	for (int i = 0; i < 7; i++)
		got[i] = core_failpoint("fp_b");
	const bool want[7] = {false, false, true, true, true, false, false};
	assert_memory_equal(got, want, sizeof(want));
	assert_true(core_failpoint("fp_c"));
	assert_false(core_failpoint("fp_c"));
	assert_false(core_failpoint("fp")); /* a prefix is not a name */
	unsetenv("MERIDIAN_FAILPOINTS");
}

static void test_buf_pool(void **state)
{
	core_buf_pool p;
	core_buf_pool_init(&p, 1024, 2);
	core_buf *a = core_buf_get(&p), *b = core_buf_get(&p),
		 *c = core_buf_get(&p);
	assert_int_equal(p.in_use, 3);
	memcpy(core_buf_tail(a), "hello", 5);
	a->end += 5;
	core_buf_consume(a, 2);
	assert_int_equal(core_buf_len(a), 3);
	core_buf_compact(a);
	assert_int_equal(a->start, 0);
	assert_memory_equal(core_buf_head(a), "llo", 3);
	core_buf_consume(a, 3);
	assert_int_equal(a->start, 0);
	assert_int_equal(a->end, 0);
	core_buf_put(&p, a);
	core_buf_put(&p, b);
	core_buf_put(&p, c); /* beyond max_free: really freed */
	assert_int_equal(p.nfree, 2);
	assert_int_equal(p.in_use, 0);
	core_buf_pool_destroy(&p);
}

static void test_arena(void **state)
{
	core_arena *a = core_arena_new(64);
	char *s = core_arena_strdup(a, "meridian");
	assert_string_equal(s, "meridian");
	for (int i = 0; i < 100; i++) {
		char *p = core_arena_alloc(a, 100);
		assert_int_equal(((uintptr_t)p) % 16, 0);
		assert_int_equal(p[99], 0);
	}
	core_arena_reset(a);
	assert_non_null(core_arena_alloc(a, 10));
	core_arena_free(a);
}

static void test_parse_addr(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char ip[64];
	assert_int_equal(core_sock_parse_addr("127.0.0.1:8080", &ss, &len), 0);
	core_sock_ip_text((struct sockaddr *)&ss, ip, sizeof(ip));
	assert_string_equal(ip, "127.0.0.1");
	assert_int_equal(core_sock_parse_addr("[::1]:53", &ss, &len), 0);
	core_sock_ip_text((struct sockaddr *)&ss, ip, sizeof(ip));
	assert_string_equal(ip, "::1");
	assert_int_equal(core_sock_parse_addr("127.0.0.1", &ss, &len), -22);
	assert_int_equal(core_sock_parse_addr("127.0.0.1:", &ss, &len), -22);
	assert_int_equal(core_sock_parse_addr("127.0.0.1:70000", &ss, &len),
			 -22);
	assert_int_equal(core_sock_parse_addr("host:80", &ss, &len), -22);
	assert_int_equal(core_sock_parse_addr("[::1:80", &ss, &len), -22);
}

/* Decimal without snprintf: widths, zero, the largest value. */
static void test_fmt_u64(void **state)
{
	(void)state;
	char b[32];
	size_t n = core_fmt_u64(b, 0, 1);
	assert_int_equal(n, 1);
	assert_memory_equal(b, "0", 1);
	n = core_fmt_u64(b, 429, 1);
	assert_int_equal(n, 3);
	assert_memory_equal(b, "429", 3);
	n = core_fmt_u64(b, 42, 6);
	assert_int_equal(n, 6);
	assert_memory_equal(b, "000042", 6);
	n = core_fmt_u64(b, UINT64_MAX, 1);
	assert_int_equal(n, 20);
	assert_memory_equal(b, "18446744073709551615", 20);
}

/* The byte queue: appends reuse the room before start, then grow. */
static void test_bq(void **state)
{
	(void)state;
	core_bq q = {0};
	core_bq_put(&q, "abcd", 4, 4);
	assert_int_equal(q.cap, 4);
	assert_int_equal(core_bq_len(&q), 4);
	q.start += 3;		     /* "d" left */
	core_bq_put(&q, "ef", 2, 4); /* moves "d" down, no growth */
	assert_int_equal(q.cap, 4);
	assert_int_equal(q.start, 0);
	assert_memory_equal(q.p, "def", 3);
	core_bq_put(&q, "ghijk", 5, 4); /* grows: 3 + 5 > 4, doubled twice */
	assert_int_equal(q.cap, 8);
	assert_memory_equal(q.p + q.start, "defghijk", 8);
	q.start = q.end; /* drained: the next put starts at 0 */
	core_bq_put(&q, "z", 1, 4);
	assert_int_equal(q.start, 0);
	assert_int_equal(core_bq_len(&q), 1);
	core_bq_free(&q);
	assert_null(q.p);
	assert_int_equal(q.cap, 0);
}

/* RFC 9110 §5.6.7 IMF-fixdate, in C whatever the locale. */
static void test_http_date(void **state)
{
	(void)state;
	char d[30];
	core_http_date_fmt(784111777, d); /* RFC 9110's example */
	assert_string_equal(d, "Sun, 06 Nov 1994 08:49:37 GMT");
	core_http_date_fmt(0, d);
	assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT");
	core_http_date_fmt(951782400, d); /* a leap day */
	assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 GMT");
	const char *now = core_http_date();
	assert_int_equal(strlen(now), 29);
	assert_memory_equal(now + 25, " GMT", 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fmt_u64),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_timer_heap_order),
	    cmocka_unit_test(test_timer_heap_random),
	    cmocka_unit_test(test_raise_nofile),
	    cmocka_unit_test(test_failpoint),
	    cmocka_unit_test(test_buf_pool),
	    cmocka_unit_test(test_arena),
	    cmocka_unit_test(test_parse_addr),
	    cmocka_unit_test(test_bq),
	    cmocka_unit_test(test_http_date),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
