/* edge_health.c - glue between the health thread and its listeners: every
 * health change is logged and handed to the notifier (which filters,
 * debounces and delivers on its own thread). Runs on the health thread:
 * nothing here may block. */
#include "edge/edge_health.h"

#include <stdlib.h>

#include "core/core_log.h"
#include "core/core_util.h"
#include "health/health_fsm.h"

static void on_health_event(void *arg, const health_event *ev)
{
	edge_health *h = arg;
	bool origin = ev->kind == HEALTH_EV_ORIGIN;
	const char *old_s = origin ? health_state_name(ev->old_state)
				   : health_pool_state_name(ev->old_state);
	const char *new_s = origin ? health_state_name(ev->new_state)
				   : health_pool_state_name(ev->new_state);
	bool healthy = origin ? ev->new_state == LB_HEALTH_HEALTHY
			      : ev->new_state == LB_POOL_HEALTHY ||
				    ev->new_state == LB_POOL_DEGRADED;
	if (origin)
		core_log(healthy ? LOG_INFO : LOG_WARN,
			 "health: origin %s of pool %s: %s -> %s%s%s",
			 ev->origin_name, ev->pool_id, old_s, new_s,
			 ev->reason && *ev->reason ? ": " : "",
			 ev->reason ? ev->reason : "");
	else
		core_log(healthy ? LOG_INFO : LOG_WARN,
			 "health: pool %s: %s -> %s (%s)", ev->pool_id, old_s,
			 new_s, ev->reason ? ev->reason : "");
	/* The first verdict after start-up is news only when it is bad. */
	if (ev->old_state == 0 /* unknown */ && healthy)
		return;
	notify_event ne = {
	    .kind = origin ? NOTIFY_ORIGIN : NOTIFY_POOL,
	    .pool_id = ev->pool_id,
	    .origin_name = ev->origin_name,
	    .old_state = old_s,
	    .new_state = new_s,
	    .new_healthy = healthy,
	    .reason = ev->reason,
	    .time_ms = ev->wall_ms,
	};
	notify_submit(h->notify, ev->pool, &ne);
}

edge_health *edge_health_start(edge_snapshot *snap)
{
	edge_health *h = xcalloc(1, sizeof(*h));
	h->notify = notify_start(snap->cfg);
	h->checker = health_start(snap->cfg, snap->ostates, snap->pstates,
				  on_health_event, h);
	if (!h->checker) {
		notify_stop(h->notify);
		free(h);
		return NULL;
	}
	return h;
}

void edge_health_stop(edge_health *h)
{
	if (!h)
		return;
	/* Checker first: it is the notifier's only producer. */
	health_stop(h->checker);
	notify_stop(h->notify);
	free(h);
}
