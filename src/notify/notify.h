/* notify.h - health change notifications: email (SMTP) and webhooks (JSON
 * POST), filtered per pool, debounced against flapping, retried with
 * backoff, never blocking the caller (SPEC §4.5).
 *
 * The health thread calls notify_submit() on every origin or pool state
 * change; a config change that enables or disables an origin or pool
 * submits that too (notify_event.enablement). submit copies the event into a
 * bounded queue (drop-oldest, counted) and returns; the notifier thread does
 * everything else:
 *
 *   queue -> debounce (per origin/pool) -> notification_filter -> deliveries
 *
 * A change is notified once it has held for notifications.debounce; if the
 * origin or pool returns to its last notified state inside that window,
 * nothing is sent. An origin's or pool's first change from "unknown" to a
 * healthy state is not news either (start-up): it sets the state later
 * changes are told against. Each notified change gives
 * one email (to every recipient) and one POST per webhook. Transfers run
 * concurrently (libcurl multi; each target runs at most its share of them)
 * with a 5 s connect and 15 s total timeout; a failed delivery is retried
 * after 1, 2, 4 and 8 s (5 attempts) from a queue of due times, so one slow
 * or dead receiver never holds back the others.
 *
 * Thread safety: notify_submit() and notify_counters_get() may be called from
 * any thread between notify_start() and notify_stop(). notify_stop() must not
 * race with submit (stop the health thread first).
 */
#ifndef MERIDIAN_NOTIFY_H
#define MERIDIAN_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "config/cfg_model.h"

enum { NOTIFY_ORIGIN = 0, NOTIFY_POOL = 1 };

/* One state change as seen by the caller. Only read during notify_submit(). */
typedef struct notify_event {
	int kind;		 /* NOTIFY_ORIGIN or NOTIFY_POOL */
	const char *pool_id;	 /* required */
	const char *origin_name; /* NULL for NOTIFY_POOL */
	/* "healthy", "unhealthy", "unknown", "degraded", "critical" */
	const char *old_state, *new_state;
	bool new_healthy; /* what notification_filter.*.healthy matches */
	/* Not a health change: the origin or pool was enabled or disabled
	 * (old_state/new_state "enabled" or "disabled", new_healthy true when
	 * enabled). Debounced apart from the health changes of the same
	 * origin or pool, filtered by the same notification_filter. */
	bool enablement;
	const char *reason; /* NULL or "" when none */
	uint64_t time_ms;   /* wall clock of the change, ms since the epoch */
} notify_event;

typedef struct notify_ctx notify_ctx;

/* Counters for metrics; every field only grows except `pending`.
 *   submitted  events accepted by notify_submit
 *   sent       deliveries done (one per email, one per webhook)
 *   failed     deliveries given up (after the retries, or at stop)
 *   retried    delivery attempts that were retries
 *   dropped    events lost: queue full, or still inside their debounce
 *              window at stop
 *   debounced  changes not sent: flapped back (or superseded) inside the
 *              debounce window
 *   filtered   changes not sent because of notification_filter, or
 *              because they are a first verdict that is healthy
 *   rcpt_refused  email recipients the SMTP server refused in a
 *              delivery that reached the others (logged with the reply)
 *   pending    events, changes and deliveries not finished yet */
typedef struct notify_counters {
	uint64_t submitted, sent, failed, retried;
	uint64_t dropped, debounced, filtered, rcpt_refused;
	uint64_t pending;
} notify_counters;

/* Start the notifier for cfg's `notifications` (targets and debounce are
 * copied: cfg may be freed afterwards). Never fails: with cfg NULL, nothing
 * configured, or a start-up error (logged) it returns a context that drops
 * every event. */
notify_ctx *notify_start(const cfg_snapshot *cfg);

/* Queue one event. pool (may be NULL: no filter) supplies the
 * notification_filter and the pool's display name; both are copied, as is
 * everything in ev. O(1), never blocks on I/O: when the queue is full the
 * oldest queued event is dropped (counted, logged). n may be NULL. */
void notify_submit(notify_ctx *n, const cfg_pool *pool, const notify_event *ev);

/* dst += src, field by field (pending too). */
void notify_counters_add(notify_counters *dst, const notify_counters *src);

/* Counters at this instant; all zero for NULL or an inactive context. */
void notify_counters_get(notify_ctx *n, notify_counters *out);

/* Whether this context delivers anything (false: it drops events). */
bool notify_active(const notify_ctx *n);

/* Stop: deliver what is due within a bound (NOTIFY_STOP_MS), drop changes
 * still inside their debounce window (counted in dropped), join the thread
 * and free everything. n may be NULL. */
void notify_stop(notify_ctx *n);

/* notify_stop, with the counters as they stood at the end (pending 0),
 * for a caller that keeps totals across notifiers. out may be NULL. */
void notify_stop_counted(notify_ctx *n, notify_counters *out);

/* A config change with other targets (or debounce, edge name, account):
 * stop n as notify_stop_counted does (its deliveries get the same bound)
 * but hand what its debounce knows to the notifier started for cfg,
 * which is returned: the last notified state of every origin and pool,
 * and the changes still inside their window, which the new targets get
 * when the window ends (a failure just before the change is not lost).
 * With nothing configured in cfg they are dropped as at a stop. */
notify_ctx *notify_restart(notify_ctx *n, const cfg_snapshot *cfg,
			   notify_counters *out);

#define NOTIFY_STOP_MS 2000u

#endif
