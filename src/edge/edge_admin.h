/* edge_admin.h - the admin listener (edge.listen.admin).
 *
 * Until the control-plane API lands this serves the operators' read-only
 * views on its own thread, off the request path:
 *   GET /status          health per pool and origin (text table)
 *   GET /status?format=json   the same as JSON
 *   GET /healthz         "ok" while the edge runs
 * One connection at a time, each bounded in size and time, closed after the
 * answer.
 */
#ifndef MERIDIAN_EDGE_ADMIN_H
#define MERIDIAN_EDGE_ADMIN_H

#include "edge/edge.h"

typedef struct edge_admin edge_admin;

/* Listen on cfg.edge.listen_admin and start the thread. Returns NULL and
 * logs why on failure. */
edge_admin *edge_admin_start(edge *e);
void edge_admin_stop(edge_admin *a);

#endif
