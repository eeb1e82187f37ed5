/* edge_metrics.h - /metrics: the edge's counters and gauges in the
 * Prometheus text exposition format 0.0.4.
 *
 * Rendered on the admin thread from a reference to the current snapshot:
 * request counters and latency histograms from its per-worker blocks
 * (edge_stats.h, summed with relaxed loads), health and load from its
 * live state (lb_state.h), connections from the edge, the access log's
 * counters (edge_alog.h). Nothing here touches a worker's hot path. The
 * metric names, labels and meanings are listed in docs/API.md.
 */
#ifndef MERIDIAN_EDGE_METRICS_H
#define MERIDIAN_EDGE_METRICS_H

#include <stddef.h>

#include "edge/edge.h"

#define EDGE_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The whole exposition, malloc'd (free it), *len bytes without the NUL. */
char *edge_metrics_render(edge *e, size_t *len);

/* Append v to out as a label value: backslash, double quote and newline
 * escaped (for tests). Returns the bytes written, at most 2 * strlen(v). */
size_t edge_metrics_escape(char *out, const char *v);

#endif
