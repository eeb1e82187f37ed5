/* lb_locate.h - where a DNS-only answer locates its client: Cloudflare's
 * location_strategy, pure (no I/O, no allocation).
 *
 * A query for a DNS-only (proxied: false) load balancer comes from a
 * resolver, possibly with an EDNS Client Subnet option (RFC 7871) naming
 * the subnet of the client it asks for. location_strategy picks the
 * location that steering uses:
 *
 *   prefer_ecs  whether the subnet's location is preferred:
 *                 always     yes;
 *                 never      no;
 *                 proximity  only when the steering policy actually
 *                            applied (lb_steer_policy) is proximity;
 *                 geo        only when it is geo (country level: the
 *                            subnet's country and that country's region).
 *   mode        the location when the subnet is not preferred, is absent
 *               (no option, or a source prefix of 0) or its lookup is
 *               unsuccessful:
 *                 pop          the edge's own location (the PoP):
 *                              edge.region for geo (pop_pools[edge.name]
 *                              comes first anyway), edge.latitude/longitude
 *                              for proximity;
 *                 resolver_ip  the resolver address's location, and when
 *                              that lookup is unsuccessful the PoP's.
 *
 * A lookup is successful when it gives what the policy needs: a country
 * or a region for geo, coordinates for proximity (a database with
 * `location`, such as GeoLite2-City or DB-IP City Lite; a country database
 * and geo.networks have none, so proximity then falls back). Policies that
 * do not steer by location (off, random, dynamic_latency, least_*) need
 * nothing: no lookup is made and the answer does not depend on the client.
 *
 * The caller does the lookups (lb_loc_lookup_fn, e.g. geo_lookup and
 * geo_lookup_point), only those needed, in this order: subnet, resolver.
 */
#ifndef MERIDIAN_LB_LOCATE_H
#define MERIDIAN_LB_LOCATE_H

#include <stdbool.h>

#include "config/cfg_model.h"
#include "lb/lb_steer.h"

typedef enum lb_loc_source {
	LB_LOC_POP = 0,	 /* the edge's own location (nothing looked up) */
	LB_LOC_RESOLVER, /* the address the query came from */
	LB_LOC_ECS,	 /* the query's EDNS Client Subnet */
} lb_loc_source;

/* What steering needs from a location (bits). */
#define LB_LOC_NEED_AREA  1u /* country or region: geo */
#define LB_LOC_NEED_POINT 2u /* coordinates: proximity */

typedef struct lb_loc {
	char country[3]; /* ISO 3166-1 alpha-2, "" unknown */
	char region[5];	 /* Cloudflare region, "" unknown */
	bool has_point;
	double lat, lon; /* degrees, when has_point */
} lb_loc;

/* Fills *out (zeroed by the caller) with the location of src
 * (LB_LOC_RESOLVER or LB_LOC_ECS), at least what `need` asks for. */
typedef void (*lb_loc_lookup_fn)(void *arg, lb_loc_source src, unsigned need,
				 lb_loc *out);

/* What the load balancer's steering policy needs (0: no location). */
unsigned lb_locate_needs(const cfg_lb *lb);

/* Whether prefer_ecs prefers the subnet for this load balancer's policy. */
bool lb_locate_prefers_ecs(const cfg_lb *lb);

/* Whether a location has what `need` asks for. */
bool lb_locate_usable(const lb_loc *l, unsigned need);

/* The location to steer by (see the top of the file). has_ecs: the query
 * has a Client Subnet with a source prefix > 0. *out is the location found
 * (zeroed for LB_LOC_POP). *ecs_consulted is set when the subnet was looked
 * up: the answer then depends on it, whatever the lookup gave, and its ECS
 * scope is at least the source prefix (longer when the geo data is finer
 * there: the caller's lookups know, see edge_dns.h). */
lb_loc_source lb_locate(const cfg_lb *lb, bool has_ecs, lb_loc_lookup_fn fn,
			void *arg, lb_loc *out, bool *ecs_consulted);

/* Points ctx at the location: country and region (NULL when unknown, so
 * geo falls back to the edge's region), and for proximity the client's
 * coordinates (unset: the edge's). l must outlive ctx's use. */
void lb_locate_apply(const lb_loc *l, lb_steer_ctx *ctx);

#endif
