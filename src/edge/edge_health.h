/* edge_health.h - the edge's health thread and notifier, started and
 * stopped together. */
#ifndef MERIDIAN_EDGE_HEALTH_H
#define MERIDIAN_EDGE_HEALTH_H

#include "edge/edge.h"
#include "health/health_checker.h"
#include "notify/notify.h"
#include "store/store.h"

typedef struct edge_health {
	health_checker *checker;
	notify_ctx *notify;
	store_events_writer *events; /* health events into the store */
	/* Totals of the notifiers a config change stopped (their targets
	 * changed), so /metrics counters only grow. */
	notify_counters notify_done;
} edge_health;

/* NULL (logged) when the health thread cannot start. events may be NULL;
 * it must outlive the edge_health. */
edge_health *edge_health_start(edge_snapshot *snap,
			       store_events_writer *events);
void edge_health_stop(edge_health *h);
/* Move the health checks from snapshot old to next: stop the old checker,
 * carry the state of unchanged origins and pools over, restart the
 * notifier if its targets changed, start a checker on next. -1 (logged)
 * when the new checker cannot start: then nothing checks until
 * edge_health_retry succeeds (the main thread calls it every few seconds
 * while there is no checker) or the next swap. */
int edge_health_swap(edge_health *h, const edge_snapshot *old,
		     edge_snapshot *next);
/* When no checker runs (a failed swap), start one on cur, the current
 * snapshot; the verdicts go on from the states it holds. 0 when a checker
 * runs (already or now), -1 when it still cannot start. Under the edge's
 * swap_lock. */
int edge_health_retry(edge_health *h, edge_snapshot *cur);
/* The check regions' majority of some origins moved (cluster mode): pool
 * health is counted again. Under the edge's swap_lock (a swap replaces the
 * checker). */
void edge_health_recount(edge_health *h);
/* Notification counters since start-up, across notifier restarts. Under
 * the edge's swap_lock (a swap may replace the notifier). */
void edge_health_notify_counters(edge_health *h, notify_counters *out);

#endif
