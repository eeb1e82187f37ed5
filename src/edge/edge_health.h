/* edge_health.h - the edge's health thread and notifier, started and
 * stopped together. */
#ifndef MERIDIAN_EDGE_HEALTH_H
#define MERIDIAN_EDGE_HEALTH_H

#include "edge/edge.h"
#include "health/health_checker.h"
#include "notify/notify.h"

typedef struct edge_health {
	health_checker *checker;
	notify_ctx *notify;
} edge_health;

/* NULL (logged) when the health thread cannot start. */
edge_health *edge_health_start(edge_snapshot *snap);
void edge_health_stop(edge_health *h);

#endif
