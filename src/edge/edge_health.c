/* edge_health.c - glue between the health thread and its listeners: every
 * health change is logged and handed to the notifier (which filters,
 * debounces and delivers on its own thread). Runs on the health thread:
 * nothing here may block. */
#include "edge/edge_health.h"

#include <stdlib.h>
#include <string.h>

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
	/* Every change is kept for the events API (first verdicts too: they
	 * say when checking began and what it found). Queued, never
	 * blocking. */
	store_event se = {
	    .kind = origin ? STORE_EV_ORIGIN : STORE_EV_POOL,
	    .pool_id = ev->pool_id,
	    .pool_name = ev->pool ? ev->pool->name : NULL,
	    .origin_name = ev->origin_name,
	    .old_state = old_s,
	    .new_state = new_s,
	    .reason = ev->reason,
	    .healthy = healthy,
	    .time_ms = ev->wall_ms,
	};
	store_events_submit(h->events, &se);
	/* A pool goes back to unknown only when a config change leaves it
	 * without a verdict (origins new or moved): no news, and what its
	 * origins are found to be will be. Everything else goes to the
	 * notifier, first verdicts too: its debounce knows the last state
	 * it notified (a fixed origin's "unhealthy -> healthy" is a
	 * recovery) and drops an entity's first "unknown -> healthy" as
	 * start-up noise (notify_startup_quiet). */
	if (!origin && ev->new_state == LB_POOL_UNKNOWN)
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

edge_health *edge_health_start(edge_snapshot *snap, store_events_writer *events)
{
	edge_health *h = xcalloc(1, sizeof(*h));
	h->events = events;
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

/* Whether two configs notify the same way (targets and debounce). */
static bool same_notifications(const cfg_notifications *a,
			       const cfg_notifications *b)
{
	if (a->has_email != b->has_email || a->debounce_ms != b->debounce_ms ||
	    a->nwebhooks != b->nwebhooks)
		return false;
	if (a->has_email) {
		if (!core_same_str(a->email.smtp_url, b->email.smtp_url) ||
		    !core_same_str(a->email.from, b->email.from) ||
		    a->email.nto != b->email.nto)
			return false;
		for (size_t i = 0; i < a->email.nto; i++)
			if (!core_same_str(a->email.to[i], b->email.to[i]))
				return false;
	}
	for (size_t i = 0; i < a->nwebhooks; i++)
		if (!core_same_str(a->webhooks[i].url, b->webhooks[i].url) ||
		    !core_same_str(a->webhooks[i].secret,
				   b->webhooks[i].secret))
			return false;
	return true;
}

/* A pool or origin enabled or disabled by the change: logged and sent
 * through the notifier like a health change (the pool's
 * notification_filter applies; "disabled" counts as not healthy). */
static void on_enablement(void *arg, const health_enablement *e)
{
	edge_health *h = arg;
	const char *now = e->enabled ? "enabled" : "disabled";
	if (e->origin)
		log_info("health: origin %s of pool %s %s", e->origin->name,
			 e->pool->id, now);
	else
		log_info("health: pool %s %s", e->pool->id, now);
	notify_event ne = {
	    .kind = e->origin ? NOTIFY_ORIGIN : NOTIFY_POOL,
	    .pool_id = e->pool->id,
	    .origin_name = e->origin ? e->origin->name : NULL,
	    .old_state = e->enabled ? "disabled" : "enabled",
	    .new_state = now,
	    .new_healthy = e->enabled,
	    .enablement = true,
	    .time_ms = core_wall_ms(),
	};
	notify_submit(h->notify, e->pool, &ne);
}

int edge_health_swap(edge_health *h, const edge_snapshot *old,
		     edge_snapshot *next)
{
	/* The old checker must stop writing the old states before they are
	 * copied and before the old snapshot can be freed. */
	health_stop(h->checker);
	h->checker = NULL;
	size_t kept =
	    health_states_carry(old->cfg, old->ostates, old->pstates, next->cfg,
				next->ostates, next->pstates);
	log_debug("health: %zu origins keep their state across the change",
		  kept);
	/* The notifier copied the edge's name and account too (they are in
	 * every message). */
	if (!same_notifications(&old->cfg->notifications,
				&next->cfg->notifications) ||
	    !core_same_str(old->cfg->edge.name, next->cfg->edge.name) ||
	    !core_same_str(old->cfg->api.account_id,
			   next->cfg->api.account_id)) {
		/* Changes still inside their debounce window go to the new
		 * targets (notify_restart hands them over). */
		notify_counters c;
		h->notify = notify_restart(h->notify, next->cfg, &c);
		notify_counters_add(&h->notify_done, &c); /* pending 0 */
	}
	health_enablement_diff(old->cfg, next->cfg, on_enablement, h);
	h->checker = health_start(next->cfg, next->ostates, next->pstates,
				  on_health_event, h);
	return h->checker ? 0 : -1;
}

int edge_health_retry(edge_health *h, edge_snapshot *cur)
{
	if (h->checker)
		return 0;
	h->checker = health_start(cur->cfg, cur->ostates, cur->pstates,
				  on_health_event, h);
	if (!h->checker)
		return -1;
	log_info("health checks restarted");
	return 0;
}

void edge_health_notify_counters(edge_health *h, notify_counters *out)
{
	notify_counters_get(h->notify, out);
	notify_counters_add(out, &h->notify_done);
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

void edge_health_recount(edge_health *h)
{
	if (h)
		health_recount(h->checker);
}
