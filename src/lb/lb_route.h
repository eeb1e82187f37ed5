/* lb_route.h - Host → load balancer, pure (no I/O).
 *
 * Exact names beat wildcards; among wildcards ("*.example.com", matching any
 * depth below example.com) the longest suffix wins. Names compare
 * case-insensitively; a port and a trailing dot in the Host are ignored.
 * Only enabled, proxied load balancers are routed.
 */
#ifndef MERIDIAN_LB_ROUTE_H
#define MERIDIAN_LB_ROUTE_H

#include <stddef.h>

#include "config/cfg_model.h"

typedef struct lb_router lb_router;

lb_router *lb_router_build(const cfg_snapshot *snap);
void lb_router_free(lb_router *r);
/* NULL when no load balancer serves this host. */
const cfg_lb *lb_route(const lb_router *r, const char *host, size_t len);

#endif
