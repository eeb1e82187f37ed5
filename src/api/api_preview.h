/* api_preview.h - Cloudflare's monitor preview (docs/API.md, "Monitor
 * preview"): try a monitor configuration against real origins before
 * saving it.
 *
 *   POST …/monitors/{id}/preview   a monitor body, probed against every
 *                                  origin of the pools that use monitor id
 *   POST …/pools/{id}/preview      a monitor body, probed against the
 *                                  origins of that pool
 *   GET  …/preview/{preview_id}    the results so far
 *
 * The body is validated exactly like a monitor create (cfg_load_merged on
 * a configuration holding only that monitor); errors name the fields. The
 * POST answers at once with a preview id: the probes run on the preview
 * runner, a thread with its own core_loop started on the first preview.
 * Each enabled origin is probed once, with the monitor's retries (like
 * one attempt of the health checker), each probe bounded by the monitor's
 * timeout; at most PREVIEW_MAX_INFLIGHT probes run at a time. Only the
 * configured origins are contacted.
 *
 * Results live in a table of the last API_PREVIEW_MAX previews, guarded by
 * a mutex; a preview expires API_PREVIEW_TTL_MS after it finished (then
 * 404; a running one never does). A new preview evicts the oldest
 * finished one when the table is full; when all are running it is refused
 * with 429.
 *
 * Threading: api_preview_start and api_preview_get run on the admin
 * thread; api_preview_stop once no request can come any more (after the
 * admin thread is joined).
 */
#ifndef MERIDIAN_API_PREVIEW_H
#define MERIDIAN_API_PREVIEW_H

#include "api/api.h"
#include "config/cfg_model.h"
#include "edge/edge.h"

#define API_PREVIEW_MAX	     64
#define API_PREVIEW_TTL_MS   (10u * 60u * 1000u)
#define PREVIEW_MAX_INFLIGHT 256

/* POST …/monitors/{mon->id}/preview (pool NULL) or …/pools/{pool->id}/
 * preview (mon NULL). mon or pool belongs to snap->cfg; the preview takes
 * its own reference to snap while its probes run. Answers 200 with
 * {"preview_id": "<32 hex>", "pools": {"<pool id>": "<pool name>"}}, 400
 * naming every bad field, 405 for another method, 429 when the table is
 * full of running previews. */
void api_preview_start(const edge_snapshot *snap, const api_request *rq,
		       const cfg_monitor *mon, const cfg_pool *pool,
		       api_response *rs);

/* GET …/preview/{id}: {"<pool id>": {"healthy": bool, "origins":
 * [{"<address>": {"healthy", "rtt", "failure_reason", "response_code",
 * "name", "port"}}]}}. While probes run, origins not done yet read
 * {"pending": true, ...}, their pool has no "healthy", and the envelope's
 * messages say how many are left. 404 for an unknown or expired id. */
void api_preview_get(const api_request *rq, const char *id, api_response *rs);

/* Stop the runner (cancelling running probes), join it and free every
 * preview. No-op when it never started; a later preview starts it again. */
void api_preview_stop(void);

#endif
