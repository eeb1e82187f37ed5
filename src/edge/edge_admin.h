/* edge_admin.h - the admin listener (edge.listen.admin).
 *
 * Until the control-plane API lands this serves the operators' read-only
 * views on its own thread, off the request path:
 *   GET /status          health per pool and origin (text table)
 *   GET /status?format=json   the same as JSON
 *   GET /healthz         "ok" while the edge runs
 * and the v4 API (src/api). Each connection has its own thread (at most
 * ADMIN_MAX_CONNS = 32; more get 503), is bounded in size and time and is
 * closed after the answer; requests are handled one at a time.
 */
#ifndef MERIDIAN_EDGE_ADMIN_H
#define MERIDIAN_EDGE_ADMIN_H

#include <stdint.h>

#include "edge/edge.h"

typedef struct edge_admin edge_admin;

/* Listen on cfg.edge.listen_admin and start the thread. Returns NULL and
 * logs why on failure. */
edge_admin *edge_admin_start(edge *e);
void edge_admin_stop(edge_admin *a);

/* Admin connections refused because ADMIN_MAX_CONNS were open (process
 * total, for /metrics). */
uint64_t edge_admin_refused_total(void);

#endif
