/* api.h - the admin REST API in Cloudflare's v4 Load Balancing shape
 * (SPEC §4.6, docs/API.md).
 *
 * Transport-free: the admin listener parses the HTTP request and hands
 * method, path, query, Authorization and body to api_handle(), which
 * answers with a status and a JSON envelope
 *   {"success":bool,"errors":[{"code":n,"message":"..."}],"messages":[],
 *    "result":...,"result_info":{...}}
 * Reads come from the current snapshot (what runs) and the store (when
 * objects were created and modified); writes go through edge_ctl_change()
 * (validate, commit, swap). Runs on the admin thread.
 */
#ifndef MERIDIAN_API_H
#define MERIDIAN_API_H

#include <stddef.h>

#include "edge/edge.h"

/* Largest request body the API accepts (413 beyond). */
#define API_MAX_BODY (1u << 20)

typedef struct api_request {
	const char *method;	   /* "GET", "POST", ... */
	const char *path;	   /* "/client/v4/...", no query, not decoded */
	const char *query;	   /* after '?', or NULL */
	const char *authorization; /* the header's value, or NULL */
	const char *body;	   /* may be NULL when body_len is 0 */
	size_t body_len;
} api_request;

typedef struct api_response {
	int status;
	char *body; /* malloc'd JSON text (free it) */
	size_t len;
	/* A 405's Allow field ("GET, POST"; a static string), else NULL. */
	const char *allow;
} api_response;

/* Whether path is one of the API's (starts with /client/v4/). */
int api_owns(const char *path);

void api_handle(edge *e, const api_request *rq, api_response *rs);

#endif
