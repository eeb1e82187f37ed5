/* Unit tests for the notifier: the notification_filter, the debounce state
 * machine (time passed in), the bounded queue, message formatting (RFC 5322
 * email, JSON webhook body, subject, dates, cleaning of hostile strings),
 * the retry policy, and the context's life cycle: inactive contexts, and a
 * stop that stays within its bound against a receiver that never answers. */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "config/cfg_load.h"
#include "core/core_log.h"
#include "core/core_util.h"
#include "notify/notify.h"
#include "notify/notify_debounce.h"
#include "notify/notify_msg.h"

#define T0 1727784000123ull /* 2024-10-01T12:00:00.123Z, a Tuesday */

static notify_item *origin_ev(const char *pool, const char *origin,
			      const char *old_state, const char *new_state)
{
	notify_event ev = {.kind = NOTIFY_ORIGIN,
			   .pool_id = pool,
			   .origin_name = origin,
			   .old_state = old_state,
			   .new_state = new_state,
			   .new_healthy = !strcmp(new_state, "healthy"),
			   .reason = "TCP connection failed",
			   .time_ms = T0};
	notify_item *it = notify_item_new(&ev, NULL, NULL);
	assert_non_null(it);
	return it;
}

static notify_item *pool_ev(const char *pool, const char *old_state,
			    const char *new_state)
{
	notify_event ev = {.kind = NOTIFY_POOL,
			   .pool_id = pool,
			   .old_state = old_state,
			   .new_state = new_state,
			   .new_healthy = strcmp(new_state, "critical") != 0,
			   .time_ms = T0};
	notify_item *it = notify_item_new(&ev, NULL, NULL);
	assert_non_null(it);
	return it;
}

/* ---- filter ---- */

static void test_filter(void **state)
{
	(void)state;
	cfg_notification_filter f = {.origin = {false, -1},
				     .pool = {false, -1}};
	/* null: both directions, both kinds. */
	assert_true(notify_filter_pass(&f, NOTIFY_ORIGIN, true));
	assert_true(notify_filter_pass(&f, NOTIFY_ORIGIN, false));
	assert_true(notify_filter_pass(&f, NOTIFY_POOL, true));
	assert_true(notify_filter_pass(&f, NOTIFY_POOL, false));
	/* healthy: true -> only when it becomes healthy. */
	f.origin.healthy = 1;
	assert_true(notify_filter_pass(&f, NOTIFY_ORIGIN, true));
	assert_false(notify_filter_pass(&f, NOTIFY_ORIGIN, false));
	/* The other kind is not affected. */
	assert_true(notify_filter_pass(&f, NOTIFY_POOL, false));
	/* healthy: false -> only when it becomes unhealthy. */
	f.origin.healthy = 0;
	assert_false(notify_filter_pass(&f, NOTIFY_ORIGIN, true));
	assert_true(notify_filter_pass(&f, NOTIFY_ORIGIN, false));
	/* disable wins over healthy. */
	f.pool = (cfg_notify_filter){.disable = true, .healthy = 1};
	assert_false(notify_filter_pass(&f, NOTIFY_POOL, true));
	assert_false(notify_filter_pass(&f, NOTIFY_POOL, false));
	assert_true(notify_filter_pass(&f, NOTIFY_ORIGIN, false));
}

/* ---- item and queue ---- */

static void test_item_copy(void **state)
{
	(void)state;
	char pool[] = "gcp", origin[] = "gke-1", reason[] = "timeout";
	cfg_notification_filter f = {.origin = {true, -1}, .pool = {false, 0}};
	notify_event ev = {.kind = NOTIFY_ORIGIN,
			   .pool_id = pool,
			   .origin_name = origin,
			   .old_state = NULL,
			   .new_state = "unhealthy",
			   .reason = reason,
			   .time_ms = T0};
	notify_item *it = notify_item_new(&ev, "Google", &f);
	/* The caller's strings may change afterwards. */
	pool[0] = origin[0] = reason[0] = 'X';
	assert_string_equal(it->pool_id, "gcp");
	assert_string_equal(it->pool_name, "Google");
	assert_string_equal(it->origin_name, "gke-1");
	assert_string_equal(it->old_state, "unknown");
	assert_string_equal(it->new_state, "unhealthy");
	assert_string_equal(it->reason, "timeout");
	assert_true(it->filter.origin.disable);
	assert_int_equal(it->filter.pool.healthy, 0);
	assert_int_equal(it->time_ms, T0);

	notify_item *w = notify_item_with_old(it, "healthy");
	assert_string_equal(w->old_state, "healthy");
	assert_string_equal(w->pool_name, "Google");
	assert_true(w->filter.origin.disable);
	free(w);
	free(it);

	/* A pool: no origin; no pool name -> id; no filter -> notify all. */
	it = pool_ev("aws", "healthy", "critical");
	assert_null(it->origin_name);
	assert_string_equal(it->pool_name, "aws");
	assert_string_equal(it->reason, "");
	assert_int_equal(it->filter.pool.healthy, -1);
	assert_false(it->filter.pool.disable);
	free(it);
}

static void test_queue_drops_oldest(void **state)
{
	(void)state;
	notify_queue q = {0};
	notify_item *a = pool_ev("a", "healthy", "critical");
	notify_item *b = pool_ev("b", "healthy", "critical");
	notify_item *c = pool_ev("c", "healthy", "critical");
	assert_null(notify_queue_push(&q, a, 2));
	assert_null(notify_queue_push(&q, b, 2));
	assert_ptr_equal(notify_queue_push(&q, c, 2), a);
	assert_int_equal(q.len, 2);
	free(a);
	size_t n;
	notify_item *list = notify_queue_take(&q, &n);
	assert_int_equal(n, 2);
	assert_ptr_equal(list, b);
	assert_ptr_equal(list->next, c);
	assert_null(c->next);
	assert_int_equal(q.len, 0);
	assert_null(notify_queue_take(&q, &n));
	assert_int_equal(n, 0);
	free(b);
	free(c);
}

/* ---- debounce ---- */

static void test_debounce_flap_sends_nothing(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(1000);
	assert_int_equal(notify_db_next_due(db), UINT64_MAX);
	assert_int_equal(
	    notify_db_feed(
		db, origin_ev("gcp", "gke-1", "healthy", "unhealthy"), 100),
	    NOTIFY_DB_PENDING);
	assert_int_equal(notify_db_next_due(db), 1100);
	assert_null(notify_db_pop_due(db, 1099));
	/* Back to the notified state inside the window: a flap. */
	assert_int_equal(
	    notify_db_feed(
		db, origin_ev("gcp", "gke-1", "unhealthy", "healthy"), 900),
	    NOTIFY_DB_FLAP);
	assert_int_equal(notify_db_pending(db), 0);
	assert_int_equal(notify_db_next_due(db), UINT64_MAX);
	assert_null(notify_db_pop_due(db, 100000));
	notify_db_free(db);
}

/* A new notifier with another window takes the db over: later changes
 * wait the new window, pending ones no longer than it (in due order). */
static void test_debounce_new_window(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(10000);
	notify_db_feed(db, origin_ev("gcp", "a", "healthy", "unhealthy"), 0);
	notify_db_feed(db, origin_ev("gcp", "b", "healthy", "unhealthy"), 500);
	notify_db_set_debounce(db, 1000, 2000);
	assert_int_equal(notify_db_next_due(db), 3000);
	notify_db_feed(db, origin_ev("gcp", "c", "healthy", "unhealthy"), 2100);
	assert_null(notify_db_pop_due(db, 2999));
	const char *want[] = {"a", "b", "c"};
	uint64_t at[] = {3000, 3000, 3100};
	for (size_t i = 0; i < 3; i++) {
		if (i == 2)
			assert_null(notify_db_pop_due(db, 3099));
		notify_item *c = notify_db_pop_due(db, at[i]);
		assert_non_null(c);
		assert_string_equal(c->origin_name, want[i]);
		free(c);
	}
	assert_int_equal(notify_db_pending(db), 0);
	notify_db_free(db);
}

static void test_debounce_held_change_sent_once(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(1000);
	notify_db_feed(db, origin_ev("gcp", "gke-1", "healthy", "unhealthy"),
		       0);
	notify_item *c = notify_db_pop_due(db, 1000);
	assert_non_null(c);
	assert_string_equal(c->old_state, "healthy");
	assert_string_equal(c->new_state, "unhealthy");
	assert_string_equal(c->origin_name, "gke-1");
	free(c);
	assert_null(notify_db_pop_due(db, 5000)); /* once */
	/* Reported again: not a change. */
	assert_int_equal(
	    notify_db_feed(
		db, origin_ev("gcp", "gke-1", "healthy", "unhealthy"), 1500),
	    NOTIFY_DB_SAME);
	/* Recovery is a change from the notified state. */
	assert_int_equal(
	    notify_db_feed(
		db, origin_ev("gcp", "gke-1", "unhealthy", "healthy"), 2000),
	    NOTIFY_DB_PENDING);
	c = notify_db_pop_due(db, 3000);
	assert_non_null(c);
	assert_string_equal(c->old_state, "unhealthy");
	assert_string_equal(c->new_state, "healthy");
	free(c);
	notify_db_free(db);
}

static void test_debounce_third_state_replaces(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(1000);
	assert_int_equal(
	    notify_db_feed(db, pool_ev("gcp", "healthy", "degraded"), 0),
	    NOTIFY_DB_PENDING);
	assert_int_equal(
	    notify_db_feed(db, pool_ev("gcp", "degraded", "critical"), 400),
	    NOTIFY_DB_REPLACED);
	/* The window restarts for the new state. */
	assert_null(notify_db_pop_due(db, 1000));
	assert_int_equal(notify_db_next_due(db), 1400);
	notify_item *c = notify_db_pop_due(db, 1400);
	assert_non_null(c);
	assert_string_equal(c->old_state, "healthy");
	assert_string_equal(c->new_state, "critical");
	assert_false(c->new_healthy);
	free(c);
	notify_db_free(db);
}

static void test_debounce_repeat_keeps_window(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(1000);
	notify_db_feed(db, origin_ev("p", "o", "healthy", "unhealthy"), 0);
	/* The same state reported again does not restart the window. */
	assert_int_equal(
	    notify_db_feed(db, origin_ev("p", "o", "healthy", "unhealthy"),
			   700),
	    NOTIFY_DB_SAME);
	assert_int_equal(notify_db_next_due(db), 1000);
	notify_item *c = notify_db_pop_due(db, 1000);
	assert_non_null(c);
	free(c);
	notify_db_free(db);
}

static void test_debounce_zero_is_immediate(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(0);
	notify_db_feed(db, origin_ev("p", "o", "healthy", "unhealthy"), 50);
	notify_item *c = notify_db_pop_due(db, 50);
	assert_non_null(c);
	assert_string_equal(c->old_state, "healthy");
	free(c);
	notify_db_free(db);
}

static void test_debounce_expire_quiet_entities(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(1000);
	/* a: released at 1000; b: a flap, nothing pending; c: pending. */
	notify_db_feed(db, origin_ev("a", "o", "healthy", "unhealthy"), 0);
	notify_item *c = notify_db_pop_due(db, 1000);
	assert_non_null(c);
	free(c);
	notify_db_feed(db, origin_ev("b", "o", "healthy", "unhealthy"), 0);
	notify_db_feed(db, origin_ev("b", "o", "unhealthy", "healthy"), 10);
	notify_db_feed(db, origin_ev("c", "o", "healthy", "unhealthy"), 1005);
	assert_int_equal(notify_db_entities(db), 3);
	/* Not yet idle long enough: nothing goes. */
	assert_int_equal(notify_db_expire(db, 1009, 1000), 0);
	/* a (last 1000) and b (last 10) are quiet; c is pending: kept. */
	assert_int_equal(notify_db_expire(db, 2010, 1000), 2);
	assert_int_equal(notify_db_entities(db), 1);
	assert_int_equal(notify_db_pending(db), 1);
	/* a, forgotten, fails back: its event carries the state it was
	 * notified in, and the change reads as it would have. */
	assert_int_equal(
	    notify_db_feed(db, origin_ev("a", "o", "unhealthy", "healthy"),
			   9000),
	    NOTIFY_DB_PENDING);
	c = notify_db_pop_due(db, 10000);
	assert_non_null(c);
	assert_string_equal(c->pool_id, "c");
	free(c);
	c = notify_db_pop_due(db, 10000);
	assert_non_null(c);
	assert_string_equal(c->pool_id, "a");
	assert_string_equal(c->old_state, "unhealthy");
	assert_string_equal(c->new_state, "healthy");
	free(c);
	/* Released ones are idle from their release (10000). */
	assert_int_equal(notify_db_expire(db, 10500, 1000), 0);
	assert_int_equal(notify_db_expire(db, 11000, 1000), 2);
	assert_int_equal(notify_db_entities(db), 0);
	notify_db_free(db);
}

static void test_debounce_entities_are_distinct(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(1000);
	/* Same origin name in two pools, and a pool named like the origin's
	 * pool: three entities. */
	notify_db_feed(db, origin_ev("a", "o", "healthy", "unhealthy"), 0);
	notify_db_feed(db, origin_ev("b", "o", "healthy", "unhealthy"), 10);
	notify_db_feed(db, pool_ev("a", "healthy", "degraded"), 20);
	assert_int_equal(notify_db_entities(db), 3);
	assert_int_equal(notify_db_pending(db), 3);
	/* A flap of one leaves the others pending. */
	assert_int_equal(
	    notify_db_feed(db, origin_ev("b", "o", "unhealthy", "healthy"), 30),
	    NOTIFY_DB_FLAP);
	notify_item *c = notify_db_pop_due(db, 5000);
	assert_non_null(c);
	assert_string_equal(c->pool_id, "a");
	assert_int_equal(c->kind, NOTIFY_ORIGIN);
	free(c);
	c = notify_db_pop_due(db, 5000);
	assert_non_null(c);
	assert_int_equal(c->kind, NOTIFY_POOL);
	free(c);
	assert_null(notify_db_pop_due(db, 5000));

	/* Many entities (the table grows), released in due order. */
	char pool[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(pool, sizeof(pool), "pool-%d", i);
		notify_db_feed(db, pool_ev(pool, "healthy", "critical"),
			       10000 + (uint64_t)i);
	}
	assert_int_equal(notify_db_entities(db), 1003);
	for (int i = 0; i < 1000; i++) {
		c = notify_db_pop_due(db, 20000);
		assert_non_null(c);
		snprintf(pool, sizeof(pool), "pool-%d", i);
		assert_string_equal(c->pool_id, pool);
		free(c);
	}
	assert_null(notify_db_pop_due(db, UINT64_MAX - 1));
	notify_db_free(db);
}

static void test_debounce_drop_pending(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(1000);
	notify_db_feed(db, origin_ev("p", "o1", "healthy", "unhealthy"), 0);
	notify_db_feed(db, origin_ev("p", "o2", "healthy", "unhealthy"), 0);
	assert_int_equal(notify_db_drop_pending(db), 2);
	assert_int_equal(notify_db_pending(db), 0);
	assert_null(notify_db_pop_due(db, 5000));
	/* The notified state did not move: the same change is new again. */
	assert_int_equal(
	    notify_db_feed(db, origin_ev("p", "o1", "healthy", "unhealthy"),
			   10),
	    NOTIFY_DB_PENDING);
	notify_db_free(db); /* frees the pending item too */
}

static void test_first_verdict_healthy_is_quiet(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(1000);
	/* Bad for less than the window at start-up, then healthy. */
	notify_db_feed(db, origin_ev("p", "o", "unknown", "unhealthy"), 0);
	assert_int_equal(
	    notify_db_feed(db, origin_ev("p", "o", "unhealthy", "healthy"),
			   500),
	    NOTIFY_DB_REPLACED);
	notify_item *c = notify_db_pop_due(db, 1500);
	assert_non_null(c);
	assert_true(c->first);
	assert_string_equal(c->old_state, "unknown");
	assert_true(notify_startup_quiet(c));
	free(c);
	/* A pool's first verdict "degraded" still counts as healthy: the
	 * baseline, nothing pending. */
	assert_int_equal(
	    notify_db_feed(db, pool_ev("p", "unknown", "degraded"), 2000),
	    NOTIFY_DB_BASELINE);
	assert_null(notify_db_pop_due(db, 3000));

	/* A bad first verdict is news, and so is the recovery after it. */
	notify_db_feed(db, origin_ev("p", "o2", "unknown", "unhealthy"), 4000);
	c = notify_db_pop_due(db, 5000);
	assert_true(c->first);
	assert_false(notify_startup_quiet(c));
	free(c);
	notify_db_feed(db, origin_ev("p", "o2", "unhealthy", "healthy"), 6000);
	c = notify_db_pop_due(db, 7000);
	assert_false(c->first);
	assert_false(notify_startup_quiet(c));
	free(c);
	/* Later returns from unknown are news too. */
	notify_db_feed(db, origin_ev("p", "o2", "healthy", "unknown"), 8000);
	c = notify_db_pop_due(db, 9000);
	free(c);
	notify_db_feed(db, origin_ev("p", "o2", "unknown", "healthy"), 10000);
	c = notify_db_pop_due(db, 11000);
	assert_string_equal(c->old_state, "unknown");
	assert_false(notify_startup_quiet(c));
	free(c);
	notify_db_free(db);
}

/* An entity's first verdict, healthy, is its baseline at once: a failure
 * inside the window after start-up reads "healthy -> unhealthy" (it read
 * "unknown -> unhealthy"), and a pool degraded inside it is news (it was
 * released as "unknown -> degraded", start-up noise, and never sent). */
static void test_first_verdict_healthy_is_the_baseline(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(1000);
	assert_int_equal(
	    notify_db_feed(db, origin_ev("p", "o", "unknown", "healthy"), 0),
	    NOTIFY_DB_BASELINE);
	assert_int_equal(
	    notify_db_feed(db, pool_ev("p", "unknown", "healthy"), 0),
	    NOTIFY_DB_BASELINE);
	assert_int_equal(notify_db_pending(db), 0);

	assert_int_equal(
	    notify_db_feed(db, origin_ev("p", "o", "healthy", "unhealthy"),
			   300),
	    NOTIFY_DB_PENDING);
	assert_int_equal(
	    notify_db_feed(db, pool_ev("p", "healthy", "degraded"), 300),
	    NOTIFY_DB_PENDING);
	notify_item *c = notify_db_pop_due(db, 1300);
	assert_non_null(c);
	assert_string_equal(c->old_state, "healthy");
	assert_string_equal(c->new_state, "unhealthy");
	assert_false(c->first);
	assert_false(notify_startup_quiet(c));
	free(c);
	c = notify_db_pop_due(db, 1300);
	assert_non_null(c);
	assert_string_equal(c->old_state, "healthy");
	assert_string_equal(c->new_state, "degraded");
	assert_false(notify_startup_quiet(c));
	free(c);

	/* Known entities are not re-based: after a config change gave the
	 * unhealthy origin a fresh start (unknown), its first pass is the
	 * recovery. */
	assert_int_equal(
	    notify_db_feed(db, origin_ev("p", "o", "unknown", "healthy"), 2000),
	    NOTIFY_DB_PENDING);
	c = notify_db_pop_due(db, 3000);
	assert_non_null(c);
	assert_string_equal(c->old_state, "unhealthy");
	assert_false(notify_startup_quiet(c));
	free(c);
	notify_db_free(db);
}

/* ---- formatting ---- */

static void test_clean(void **state)
{
	(void)state;
	char out[64];
	notify_clean("a\r\nb\tc\x01"
		     "d\x7f",
		     out, sizeof(out));
	assert_string_equal(out, "a  b c?d?");
	/* Invalid UTF-8: a lone continuation, an overlong '/', a surrogate,
	 * a truncated sequence. */
	notify_clean("x\x80y\xc0\xafz\xed\xa0\x80w\xe2\x82", out, sizeof(out));
	assert_string_equal(out, "x?y??z???w??");
	/* Valid UTF-8 kept; truncation on a character boundary. */
	notify_clean("z\xc3\xbcrich", out, sizeof(out));
	assert_string_equal(out, "z\xc3\xbcrich");
	notify_clean("ab\xe2\x82\xac", out, 5); /* "ab€" needs 6 bytes */
	assert_string_equal(out, "ab");
	notify_clean(NULL, out, sizeof(out));
	assert_string_equal(out, "");
}

static void test_dates(void **state)
{
	(void)state;
	char buf[64];
	assert_int_equal(notify_iso8601(T0, buf, sizeof(buf)), 24);
	assert_string_equal(buf, "2024-10-01T12:00:00.123Z");
	notify_iso8601(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	notify_rfc5322_date(T0, buf, sizeof(buf));
	assert_string_equal(buf, "Tue, 01 Oct 2024 12:00:00 +0000");
	notify_rfc5322_date(951782400000ull, buf, sizeof(buf)); /* leap day */
	assert_string_equal(buf, "Tue, 29 Feb 2000 00:00:00 +0000");
}

static void test_subject(void **state)
{
	(void)state;
	char buf[256];
	notify_item *it = origin_ev("gcp", "gke-1", "healthy", "unhealthy");
	notify_subject(it, buf, sizeof(buf));
	assert_string_equal(buf,
			    "[Meridian] origin gke-1 in pool gcp is unhealthy");
	free(it);
	it = pool_ev("gcp", "degraded", "critical");
	notify_subject(it, buf, sizeof(buf));
	assert_string_equal(buf, "[Meridian] pool gcp is critical");
	free(it);
	/* Truncated, still terminated. */
	it = pool_ev("gcp", "degraded", "critical");
	assert_int_equal(notify_subject(it, buf, 11), 10);
	assert_string_equal(buf, "[Meridian]");
	free(it);
}

static const char *const rcpts[] = {"ops@example.com", "oncall@example.com"};
static const notify_site site = {.edge = "pop-ams",
				 .account_id = "acme",
				 .from = "meridian@example.com",
				 .to = rcpts,
				 .nto = 2};

/* A pool made through the API (a generated id) is called by its name in
 * texts; one of the file by the id its operator wrote. */
static void test_texts_name_api_pools(void **state)
{
	(void)state;
	char buf[256];
	static const char api_id[] = "3c70092788912a4d130e059bde2fc407";
	notify_event ev = {.kind = NOTIFY_ORIGIN,
			   .pool_id = api_id,
			   .origin_name = "gke-1",
			   .old_state = "healthy",
			   .new_state = "unhealthy",
			   .time_ms = T0};
	notify_item *it = notify_item_new(&ev, "web-eu", NULL);
	assert_non_null(it);
	notify_subject(it, buf, sizeof(buf));
	assert_string_equal(
	    buf, "[Meridian] origin gke-1 in pool web-eu is unhealthy");
	size_t len;
	char *j = notify_json_build(it, &site, &len);
	assert_non_null(j);
	assert_non_null(
	    strstr(j, "\"text\":\"Origin gke-1 in pool web-eu is "));
	assert_non_null(
	    strstr(j, "\"pool_id\":\"3c70092788912a4d130e059bde2fc407\""));
	free(j);
	free(it);
	ev.pool_id = "gcp";
	it = notify_item_new(&ev, "Google Cloud", NULL);
	assert_non_null(it);
	notify_subject(it, buf, sizeof(buf));
	assert_string_equal(buf,
			    "[Meridian] origin gke-1 in pool gcp is unhealthy");
	free(it);
}

static void assert_crlf_only(const char *msg, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (msg[i] == '\n')
			assert_true(i > 0 && msg[i - 1] == '\r');
		if (msg[i] == '\r')
			assert_true(i + 1 < len && msg[i + 1] == '\n');
	}
}

static void test_email_message(void **state)
{
	(void)state;
	notify_event ev = {.kind = NOTIFY_ORIGIN,
			   .pool_id = "gcp",
			   .origin_name = "gke-1",
			   .old_state = "healthy",
			   .new_state = "unhealthy",
			   .reason = "TCP connection failed",
			   .time_ms = T0};
	notify_item *it = notify_item_new(&ev, "Google", NULL);
	size_t len = 0;
	char *m = notify_email_build(it, &site, T0 + 5000, 7, 42, &len);
	assert_int_equal(strlen(m), len);
	assert_crlf_only(m, len);
	assert_memory_equal(m, "Date: Tue, 01 Oct 2024 12:00:05 +0000\r\n", 39);
	const char *want[] = {
	    "\r\nFrom: Meridian <meridian@example.com>\r\n",
	    "\r\nTo: ops@example.com,\r\n oncall@example.com\r\n",
	    "\r\nSubject: [Meridian] origin gke-1 in pool gcp is unhealthy\r\n",
	    "\r\nMessage-ID: <1727784005123.7.42@example.com>\r\n",
	    "\r\nMIME-Version: 1.0\r\n",
	    "\r\nContent-Type: text/plain; charset=utf-8\r\n",
	    "\r\nAuto-Submitted: auto-generated\r\n",
	    "\r\nX-Meridian-Edge: pop-ams\r\n\r\n",
	    "\r\n\r\nOrigin gke-1 in pool gcp is now unhealthy.\r\n",
	    "\r\nOrigin:  gke-1\r\n",
	    "\r\nPool:    gcp (Google)\r\n",
	    "\r\nState:   healthy -> unhealthy\r\n",
	    "\r\nReason:  TCP connection failed\r\n",
	    "\r\nTime:    2024-10-01T12:00:00.123Z\r\n",
	    "\r\nEdge:    pop-ams\r\n",
	};
	for (size_t i = 0; i < ARRAY_LEN(want); i++)
		if (!strstr(m, want[i]))
			fail_msg("missing %s in\n%s", want[i], m);
	free(m);
	free(it);
}

static void test_email_hostile_strings(void **state)
{
	(void)state;
	/* CR/LF in any field cannot add a header or end the headers. */
	notify_event ev = {.kind = NOTIFY_POOL,
			   .pool_id = "p\r\nBcc: evil@example.com",
			   .old_state = "healthy",
			   .new_state = "critical\r\n\r\nbody",
			   .reason = "x\nSubject: spoof",
			   .time_ms = T0};
	notify_item *it = notify_item_new(&ev, NULL, NULL);
	size_t len = 0;
	char *m = notify_email_build(it, &site, T0, 1, 1, &len);
	assert_crlf_only(m, len);
	assert_null(strstr(m, "\r\nBcc:"));
	assert_non_null(strstr(m, "\r\nSubject: [Meridian] pool p  Bcc: "
				  "evil@example.com is critical    body\r\n"));
	/* The reason stays on its body line. */
	assert_non_null(strstr(m, "\r\nReason:  x Subject: spoof\r\n"));
	const char *body = strstr(m, "\r\n\r\n");
	assert_non_null(body);
	assert_null(strstr(body, "\r\nSubject:"));
	assert_null(strstr(m, "Origin:")); /* a pool event */
	free(m);
	free(it);
}

static void test_email_utf8_subject(void **state)
{
	(void)state;
	notify_item *it = pool_ev("z\xc3\xbcrich", "healthy", "critical");
	size_t len = 0;
	char *m = notify_email_build(it, &site, T0, 1, 1, &len);
	assert_non_null(strstr(m,
			       "\r\nSubject: =?UTF-8?B?W01lcmlkaWFuXSBwb29sIH"
			       "rDvHJpY2ggaXMgY3JpdGljYWw=?=\r\n"));
	free(m);
	free(it);
	/* A long non-ASCII subject is folded into encoded words of at most
	 * 75 characters. */
	char pool[200];
	for (size_t i = 0; i + 2 < 120; i += 2)
		memcpy(pool + i, "\xc3\xa9", 2);
	pool[118] = '\0';
	it = pool_ev(pool, "healthy", "critical");
	m = notify_email_build(it, &site, T0, 1, 1, &len);
	const char *s = strstr(m, "\r\nSubject: ") + 2;
	const char *end = strstr(s, "\r\nMessage-ID:");
	assert_non_null(end);
	int words = 0;
	for (const char *w = strstr(s, "=?UTF-8?B?"); w && w < end;
	     w = strstr(w + 1, "=?UTF-8?B?")) {
		const char *e = strstr(w + 10, "?=");
		assert_non_null(e);
		assert_true(e + 2 - w <= 75);
		words++;
	}
	assert_true(words >= 3);
	free(m);
	free(it);
}

static void test_json_body(void **state)
{
	(void)state;
	notify_event ev = {.kind = NOTIFY_ORIGIN,
			   .pool_id = "gcp",
			   .origin_name = "gke-1",
			   .old_state = "healthy",
			   .new_state = "unhealthy",
			   .new_healthy = false,
			   .reason = "bad \xff byte",
			   .time_ms = T0};
	notify_item *it = notify_item_new(&ev, "Google", NULL);
	size_t len = 0;
	char *s = notify_json_build(it, &site, &len);
	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	json_error_t err;
	json_t *j = json_loads(s, 0, &err);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "name")),
			    "Meridian health alert");
	assert_string_equal(json_string_value(json_object_get(j, "text")),
			    "Origin gke-1 in pool gcp is unhealthy (was "
			    "healthy): bad ? byte");
	assert_int_equal(json_integer_value(json_object_get(j, "ts")),
			 1727784000);
	assert_string_equal(json_string_value(json_object_get(j, "alert_type")),
			    "load_balancing_health_alert");
	assert_string_equal(
	    json_string_value(json_object_get(j, "alert_event")),
	    "ALERT_STATE_EVENT_START");
	assert_string_equal(json_string_value(json_object_get(j, "account_id")),
			    "acme");
	json_t *d = json_object_get(j, "data");
	assert_true(json_is_object(d));
	struct {
		const char *key, *value;
	} want[] = {
	    {"event_source", "origin"}, {"pool_id", "gcp"},
	    {"pool_name", "Google"},	{"origin_name", "gke-1"},
	    {"old_health", "healthy"},	{"new_health", "unhealthy"},
	    {"reason", "bad ? byte"},	{"time", "2024-10-01T12:00:00.123Z"},
	    {"edge", "pop-ams"},
	};
	for (size_t i = 0; i < ARRAY_LEN(want); i++)
		assert_string_equal(
		    json_string_value(json_object_get(d, want[i].key)),
		    want[i].value);
	assert_true(json_is_false(json_object_get(d, "healthy")));
	json_decref(j);
	free(s);
	free(it);

	/* A pool recovering: origin_name null, event end. */
	it = pool_ev("gcp", "critical", "healthy");
	s = notify_json_build(it, &site, &len);
	j = json_loads(s, 0, &err);
	assert_non_null(j);
	d = json_object_get(j, "data");
	assert_true(json_is_null(json_object_get(d, "origin_name")));
	assert_string_equal(
	    json_string_value(json_object_get(d, "event_source")), "pool");
	assert_true(json_is_true(json_object_get(d, "healthy")));
	assert_string_equal(
	    json_string_value(json_object_get(j, "alert_event")),
	    "ALERT_STATE_EVENT_END");
	assert_string_equal(json_string_value(json_object_get(j, "text")),
			    "Pool gcp is healthy (was critical)");
	json_decref(j);
	free(s);
	free(it);
}

/* ---- retry policy ---- */

static void test_backoff_and_classify(void **state)
{
	(void)state;
	assert_int_equal(notify_backoff_ms(1), 1000);
	assert_int_equal(notify_backoff_ms(2), 2000);
	assert_int_equal(notify_backoff_ms(3), 4000);
	assert_int_equal(notify_backoff_ms(4), 8000);
	assert_int_equal(notify_backoff_ms(9), 8000);
	assert_int_equal(NOTIFY_MAX_ATTEMPTS, 5);

	assert_int_equal(notify_classify(CURLE_OK, true, 200),
			 NOTIFY_DELIVERED);
	assert_int_equal(notify_classify(CURLE_OK, true, 204),
			 NOTIFY_DELIVERED);
	assert_int_equal(notify_classify(CURLE_OK, true, 500), NOTIFY_RETRY);
	assert_int_equal(notify_classify(CURLE_OK, true, 503), NOTIFY_RETRY);
	assert_int_equal(notify_classify(CURLE_OK, true, 429), NOTIFY_RETRY);
	assert_int_equal(notify_classify(CURLE_OK, true, 408), NOTIFY_RETRY);
	assert_int_equal(notify_classify(CURLE_OK, true, 404),
			 NOTIFY_PERMANENT);
	assert_int_equal(notify_classify(CURLE_OK, true, 301),
			 NOTIFY_PERMANENT);
	assert_int_equal(notify_classify(CURLE_OK, false, 250),
			 NOTIFY_DELIVERED);
	assert_int_equal(notify_classify(CURLE_USE_SSL_FAILED, false, 0),
			 NOTIFY_PERMANENT);
	assert_int_equal(notify_classify(CURLE_COULDNT_CONNECT, false, 0),
			 NOTIFY_RETRY);
	assert_int_equal(notify_classify(CURLE_OPERATION_TIMEDOUT, true, 0),
			 NOTIFY_RETRY);
	assert_int_equal(notify_classify(CURLE_URL_MALFORMAT, true, 0),
			 NOTIFY_PERMANENT);
	assert_int_equal(notify_classify(CURLE_UNSUPPORTED_PROTOCOL, true, 0),
			 NOTIFY_PERMANENT);
	/* SMTP: the last reply code. 4yz is transient (RFC 5321 4.2.1),
	 * 5yz permanent: the same message will be refused again. */
	assert_int_equal(notify_classify(CURLE_WEIRD_SERVER_REPLY, false, 451),
			 NOTIFY_RETRY);
	assert_int_equal(notify_classify(CURLE_WEIRD_SERVER_REPLY, false, 554),
			 NOTIFY_PERMANENT);
	assert_int_equal(notify_classify(CURLE_SEND_ERROR, false, 550),
			 NOTIFY_PERMANENT);
	/* A timeout after a good reply is still transient. */
	assert_int_equal(notify_classify(CURLE_OPERATION_TIMEDOUT, false, 250),
			 NOTIFY_RETRY);
}

/* ---- context life cycle ---- */

static void test_inactive_context(void **state)
{
	(void)state;
	notify_event ev = {.kind = NOTIFY_POOL,
			   .pool_id = "p",
			   .old_state = "healthy",
			   .new_state = "critical"};
	notify_counters c;
	/* NULL everywhere. */
	notify_submit(NULL, NULL, &ev);
	notify_counters_get(NULL, &c);
	assert_int_equal(c.submitted, 0);
	assert_false(notify_active(NULL));
	notify_stop(NULL);

	/* No config, and a config without targets: events are dropped. */
	notify_ctx *n = notify_start(NULL);
	assert_non_null(n);
	assert_false(notify_active(n));
	notify_submit(n, NULL, &ev);
	notify_submit(n, NULL, NULL);
	notify_counters_get(n, &c);
	assert_int_equal(c.submitted, 0);
	assert_int_equal(c.pending, 0);
	notify_stop(n);

	cfg_snapshot snap = {0};
	snap.notifications.debounce_ms = 10000;
	n = notify_start(&snap);
	assert_false(notify_active(n));
	notify_submit(n, NULL, &ev);
	notify_stop(n);
}

static cfg_snapshot *load(const char *yaml)
{
	cfg_snapshot *snap = NULL;
	cfg_diag d = {0};
	int rc = cfg_load_string("t.yaml", yaml, strlen(yaml), &snap, &d);
	for (size_t i = 0; i < d.n; i++)
		print_error("config: %s\n", d.msgs[i]);
	cfg_diag_free(&d);
	assert_int_equal(rc, 0);
	return snap;
}

static void wait_pending(notify_ctx *n, uint64_t want_submitted,
			 uint64_t want_pending)
{
	uint64_t deadline = core_now_ms() + 10000;
	notify_counters c;
	for (;;) {
		notify_counters_get(n, &c);
		if (c.submitted == want_submitted && c.pending == want_pending)
			return;
		assert_true(core_now_ms() < deadline);
		usleep(5000);
	}
}

/* A change still inside its debounce window at stop is not sent; stop is
 * quick. */
static void test_stop_drops_debouncing(void **state)
{
	(void)state;
	cfg_snapshot *snap =
	    load("pools:\n"
		 "  - id: p\n"
		 "    origins: [ { name: o, address: 127.0.0.1 } ]\n"
		 "notifications:\n"
		 "  webhooks: [ { url: 'http://127.0.0.1:1/x' } ]\n"
		 "  debounce: 1h\n");
	notify_ctx *n = notify_start(snap);
	assert_true(notify_active(n));
	notify_event ev = {.kind = NOTIFY_ORIGIN,
			   .pool_id = "p",
			   .origin_name = "o",
			   .old_state = "healthy",
			   .new_state = "unhealthy",
			   .time_ms = T0};
	notify_submit(n, &snap->pools[0], &ev);
	wait_pending(n, 1, 1); /* one change in its window */
	uint64_t t = core_now_ms();
	notify_stop(n);
	assert_true(core_now_ms() - t < NOTIFY_STOP_MS + 3000); /* not 1 h */
	cfg_snapshot_free(snap);
}

/* A receiver that accepts connections but never answers: the delivery is
 * running when stop is called, and stop still returns within its bound. */
static void test_stop_is_bounded(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	socklen_t sl = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	char yaml[512];
	snprintf(yaml, sizeof(yaml),
		 "pools: [ { id: p, origins: [ { name: o, address: "
		 "127.0.0.1 } ] } ]\n"
		 "notifications:\n"
		 "  webhooks: [ { url: 'http://127.0.0.1:%d/hook' } ]\n"
		 "  debounce: 0s\n",
		 ntohs(sa.sin_port));
	cfg_snapshot *snap = load(yaml);
	notify_ctx *n = notify_start(snap);
	cfg_snapshot_free(snap); /* the notifier copied what it needs */
	notify_event ev = {.kind = NOTIFY_POOL,
			   .pool_id = "p",
			   .old_state = "healthy",
			   .new_state = "critical",
			   .time_ms = T0};
	notify_submit(n, NULL, &ev);
	/* Wait for the connection to reach the listener's queue. */
	uint64_t deadline = core_now_ms() + 10000;
	for (;;) {
		notify_counters c;
		notify_counters_get(n, &c);
		assert_int_equal(c.sent, 0);
		assert_int_equal(c.pending, 1);
		struct timeval tv = {0, 20000};
		fd_set rd;
		FD_ZERO(&rd);
		FD_SET(fd, &rd);
		if (select(fd + 1, &rd, NULL, NULL, &tv) == 1)
			break;
		assert_true(core_now_ms() < deadline);
	}
	uint64_t t = core_now_ms();
	notify_stop(n);
	uint64_t took = core_now_ms() - t;
	assert_true(took >= NOTIFY_STOP_MS - 100);
	assert_true(took < NOTIFY_STOP_MS + 3000);
	close(fd);
}

/* Enabled and disabled (a config change): debounced apart from the health
 * of the same origin, sent as Cloudflare's pool enablement alert. */
static void test_enablement(void **state)
{
	(void)state;
	notify_db *db = notify_db_new(1000);
	notify_event ev = {.kind = NOTIFY_ORIGIN,
			   .pool_id = "p1",
			   .origin_name = "a2",
			   .old_state = "enabled",
			   .new_state = "disabled",
			   .new_healthy = false,
			   .enablement = true,
			   .time_ms = T0};
	/* The origin is healthy (its baseline), then disabled. */
	assert_int_equal(
	    notify_db_feed(db, origin_ev("p1", "a2", "unknown", "healthy"), 0),
	    NOTIFY_DB_BASELINE);
	assert_int_equal(
	    notify_db_feed(db, notify_item_new(&ev, NULL, NULL), 10),
	    NOTIFY_DB_PENDING);
	assert_int_equal(notify_db_entities(db), 2);
	notify_item *c = notify_db_pop_due(db, 1010);
	assert_non_null(c);
	assert_true(c->enablement);
	assert_string_equal(c->old_state, "enabled");
	assert_string_equal(c->new_state, "disabled");
	assert_false(notify_startup_quiet(c));
	char subject[128];
	notify_subject(c, subject, sizeof(subject));
	assert_string_equal(subject,
			    "[Meridian] origin a2 in pool p1 is disabled");

	size_t len = 0;
	char *s = notify_json_build(c, &site, &len);
	json_error_t err;
	json_t *j = json_loads(s, 0, &err);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "text")),
			    "Origin a2 in pool p1 is disabled (was enabled)");
	assert_string_equal(json_string_value(json_object_get(j, "alert_type")),
			    "load_balancing_pool_enablement_alert");
	assert_string_equal(
	    json_string_value(json_object_get(j, "alert_event")),
	    "ALERT_STATE_EVENT_START");
	json_t *d = json_object_get(j, "data");
	assert_true(json_is_false(json_object_get(d, "enabled")));
	assert_null(json_object_get(d, "new_health"));
	json_decref(j);
	free(s);
	free(c);

	/* Its health entity is untouched: healthy again is no change. */
	assert_int_equal(
	    notify_db_feed(db, origin_ev("p1", "a2", "unknown", "healthy"),
			   2000),
	    NOTIFY_DB_SAME);
	/* Enabled and disabled again inside the window: a flap. */
	ev.old_state = "disabled";
	ev.new_state = "enabled";
	ev.new_healthy = true;
	assert_int_equal(
	    notify_db_feed(db, notify_item_new(&ev, NULL, NULL), 3000),
	    NOTIFY_DB_PENDING);
	ev.old_state = "enabled";
	ev.new_state = "disabled";
	ev.new_healthy = false;
	assert_int_equal(
	    notify_db_feed(db, notify_item_new(&ev, NULL, NULL), 3100),
	    NOTIFY_DB_FLAP);
	assert_null(notify_db_pop_due(db, 5000));
	notify_db_free(db);
}

int main(void)
{
	core_log_level = LOG_ERROR;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_filter),
	    cmocka_unit_test(test_item_copy),
	    cmocka_unit_test(test_queue_drops_oldest),
	    cmocka_unit_test(test_debounce_flap_sends_nothing),
	    cmocka_unit_test(test_debounce_expire_quiet_entities),
	    cmocka_unit_test(test_debounce_new_window),
	    cmocka_unit_test(test_debounce_held_change_sent_once),
	    cmocka_unit_test(test_debounce_third_state_replaces),
	    cmocka_unit_test(test_debounce_repeat_keeps_window),
	    cmocka_unit_test(test_debounce_zero_is_immediate),
	    cmocka_unit_test(test_debounce_entities_are_distinct),
	    cmocka_unit_test(test_debounce_drop_pending),
	    cmocka_unit_test(test_first_verdict_healthy_is_quiet),
	    cmocka_unit_test(test_first_verdict_healthy_is_the_baseline),
	    cmocka_unit_test(test_enablement),
	    cmocka_unit_test(test_clean),
	    cmocka_unit_test(test_dates),
	    cmocka_unit_test(test_subject),
	    cmocka_unit_test(test_texts_name_api_pools),
	    cmocka_unit_test(test_email_message),
	    cmocka_unit_test(test_email_hostile_strings),
	    cmocka_unit_test(test_email_utf8_subject),
	    cmocka_unit_test(test_json_body),
	    cmocka_unit_test(test_backoff_and_classify),
	    cmocka_unit_test(test_inactive_context),
	    cmocka_unit_test(test_stop_drops_debouncing),
	    cmocka_unit_test(test_stop_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
