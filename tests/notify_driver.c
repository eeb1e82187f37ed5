/* notify_driver - drives the notifier for the integration tests
 * (tests/integration/test_notify_module.py).
 *
 *   notify_driver CONFIG STEP...
 *
 * Loads CONFIG (only `edge.name`, `api`, `pools` and `notifications`
 * matter), starts the notifier, runs the steps in order, prints the counters
 * as one line on stdout and stops the notifier (whose last log line on
 * stderr, "notify: stopped: ...", has the final counts):
 *   counters submitted=N sent=N failed=N retried=N dropped=N debounced=N
 *            filtered=N pending=N
 *
 * Steps (one argument each; REASON is the rest of the argument, commas
 * included):
 *   origin,POOL,ORIGIN,OLD,NEW[,REASON]  submit an origin change
 *   pool,POOL,OLD,NEW[,REASON]           submit a pool change
 *   sleep,MS                             sleep
 *   idle,MS                              wait until nothing is pending
 *                                        (exit 3 after MS)
 *   sent,N,MS                            wait until N deliveries are done
 *                                        (exit 3 after MS)
 *   counters                             print the counters line now
 * NEW "healthy" or "degraded" counts as healthy for notification_filter.
 * Exit: 0, 2 on usage or config errors, 3 when an idle wait timed out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cfg_load.h"
#include "core/core_log.h"
#include "core/core_util.h"
#include "notify/notify.h"

static void print_counters(notify_ctx *n)
{
	notify_counters c;
	notify_counters_get(n, &c);
	printf("counters submitted=%llu sent=%llu failed=%llu retried=%llu "
	       "dropped=%llu debounced=%llu filtered=%llu pending=%llu "
	       "rcpt_refused=%llu\n",
	       (unsigned long long)c.submitted, (unsigned long long)c.sent,
	       (unsigned long long)c.failed, (unsigned long long)c.retried,
	       (unsigned long long)c.dropped, (unsigned long long)c.debounced,
	       (unsigned long long)c.filtered, (unsigned long long)c.pending,
	       (unsigned long long)c.rcpt_refused);
	fflush(stdout);
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Split s at the first n-1 commas into f[0..n-1]; the last field keeps any
 * further commas. Returns the number of fields found. */
static int split(char *s, char **f, int n)
{
	int k = 0;
	f[k++] = s;
	while (k < n) {
		char *c = strchr(f[k - 1], ',');
		if (!c)
			break;
		*c = '\0';
		f[k++] = c + 1;
	}
	return k;
}

static const cfg_pool *find_pool(const cfg_snapshot *cfg, const char *id)
{
	for (size_t i = 0; i < cfg->npools; i++)
		if (!strcmp(cfg->pools[i].id, id))
			return &cfg->pools[i];
	return NULL;
}

static int submit(notify_ctx *n, const cfg_snapshot *cfg, char *arg)
{
	char *f[6] = {0};
	notify_event ev = {.time_ms = core_wall_ms()};
	const char *pool_id, *old_state, *new_state, *reason;
	if (!strncmp(arg, "origin,", 7)) {
		int k = split(arg, f, 6);
		if (k < 5)
			return -1;
		ev.kind = NOTIFY_ORIGIN;
		pool_id = f[1];
		ev.origin_name = f[2];
		old_state = f[3];
		new_state = f[4];
		reason = k > 5 ? f[5] : NULL;
	} else {
		int k = split(arg, f, 5);
		if (k < 4)
			return -1;
		ev.kind = NOTIFY_POOL;
		pool_id = f[1];
		old_state = f[2];
		new_state = f[3];
		reason = k > 4 ? f[4] : NULL;
	}
	ev.pool_id = pool_id;
	ev.old_state = old_state;
	ev.new_state = new_state;
	ev.reason = reason;
	ev.new_healthy =
	    !strcmp(new_state, "healthy") || !strcmp(new_state, "degraded");
	notify_submit(n, find_pool(cfg, pool_id), &ev);
	return 0;
}

/* Wait until nothing is pending (sent == UINT64_MAX) or until `sent`
 * deliveries are done. */
static int wait_for(notify_ctx *n, uint64_t sent, uint64_t ms)
{
	uint64_t deadline = core_now_ms() + ms;
	for (;;) {
		notify_counters c;
		notify_counters_get(n, &c);
		if (sent == UINT64_MAX ? c.pending == 0 : c.sent >= sent)
			return 0;
		if (core_now_ms() >= deadline)
			return -1;
		sleep_ms(10);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: notify_driver CONFIG STEP...\n");
		return 2;
	}
	core_log_set_thread_name("driver");
	cfg_snapshot *cfg = NULL;
	cfg_diag d = {0};
	if (cfg_load_file(argv[1], &cfg, &d) != 0) {
		for (size_t i = 0; i < d.n; i++)
			fprintf(stderr, "%s\n", d.msgs[i]);
		cfg_diag_free(&d);
		return 2;
	}
	cfg_diag_free(&d);
	notify_ctx *n = notify_start(cfg);
	int rc = 0;
	for (int i = 2; i < argc && rc == 0; i++) {
		char *arg = argv[i];
		if (!strncmp(arg, "origin,", 7) || !strncmp(arg, "pool,", 5)) {
			if (submit(n, cfg, arg) < 0) {
				fprintf(stderr, "bad step: %s\n", argv[i]);
				rc = 2;
			}
		} else if (!strncmp(arg, "sleep,", 6)) {
			sleep_ms(strtoull(arg + 6, NULL, 10));
		} else if (!strncmp(arg, "idle,", 5)) {
			if (wait_for(n, UINT64_MAX,
				     strtoull(arg + 5, NULL, 10)) < 0) {
				fprintf(stderr, "idle: timed out\n");
				rc = 3;
			}
		} else if (!strncmp(arg, "sent,", 5)) {
			char *end;
			uint64_t want = strtoull(arg + 5, &end, 10);
			if (*end != ',' ||
			    wait_for(n, want, strtoull(end + 1, NULL, 10)) <
				0) {
				fprintf(stderr, "%s: timed out\n", arg);
				rc = 3;
			}
		} else if (!strcmp(arg, "counters")) {
			print_counters(n);
		} else {
			fprintf(stderr, "bad step: %s\n", arg);
			rc = 2;
		}
	}
	print_counters(n);
	notify_stop(n); /* logs the final counters ("notify: stopped: ...") */
	cfg_snapshot_free(cfg);
	return rc;
}
