/* api_certs.h - /client/v4/edge/certificates: the certificates the edge
 * serves on edge.listen.https, and their reload (docs/API.md).
 *
 *   GET  /client/v4/edge/certificates         what is loaded (read scope)
 *   POST /client/v4/edge/certificates/reload  read the certificate and key
 *        files of the running config again and swap them in (edit scope)
 *
 * The reload takes the path of every change (edge_ctl_change with no
 * store operation): the running config's text and objects are built into
 * a new snapshot, whose tls_server reads the files, with the running one
 * as `prev` (session tickets survive); an unusable file rejects it and
 * changes nothing. The config file itself is not read again (SIGHUP
 * does that). Runs on the admin thread.
 */
#ifndef MERIDIAN_API_CERTS_H
#define MERIDIAN_API_CERTS_H

#include <stddef.h>

#include "api/api.h"

/* seg: the path's segments after /client/v4/ ("edge", "certificates",
 * ...); snap: the snapshot referenced for the request (auth is done). */
void api_certs(edge *e, const edge_snapshot *snap, const api_request *rq,
	       const char *const *seg, size_t nseg, api_response *rs);

#endif
