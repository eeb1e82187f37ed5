/* geo.h - client IP -> country and Cloudflare region.
 *
 * A geo_db is built once per configuration snapshot from cfg_geo and is
 * read-only afterwards: geo_lookup() and geo_is_trusted() may be called from
 * every worker at once, allocate nothing and do no I/O (the MaxMind DB is
 * memory-mapped by libmaxminddb).
 *
 * geo_lookup() order:
 *   1. geo.networks CIDR overrides, longest prefix first (v4 and v6; an
 *      IPv4-mapped IPv6 client matches IPv4 networks). An override with only
 *      a country gets that country's region from the built-in table; one
 *      with only a region leaves the country "".
 *   2. The MaxMind DB of geo.database, if any: the ISO 3166-1 alpha-2 code at
 *      `country_code` (ip-location-db's geo-whois-asn-country files, see
 *      scripts/geo-data.sh), else `country/iso_code` (GeoLite2/GeoIP2
 *      Country and City), else `registered_country/iso_code`; the region
 *      from the built-in table. Special-purpose addresses (private,
 *      loopback, link-local, CGNAT, documentation, multicast, ULA, ...)
 *      are never looked up there: only an override can place them.
 *   3. Unknown: country "" and region "".
 *
 * The built-in country -> region table (geo_country_region) covers every
 * ISO 3166-1 country (and XK, Kosovo, which MaxMind uses) with one of
 * Cloudflare's 13 regions; see geo_region.c for how it was derived.
 */
#ifndef MERIDIAN_GEO_H
#define MERIDIAN_GEO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/cfg_model.h"

typedef struct geo_db geo_db;

typedef enum geo_source {
	GEO_SRC_NONE = 0, /* unknown */
	GEO_SRC_NETWORK,  /* a geo.networks override */
	GEO_SRC_DATABASE, /* the MaxMind DB */
} geo_source;

typedef struct geo_result {
	char country[3]; /* ISO 3166-1 alpha-2, "" when unknown */
	char region[5];	 /* WNAM, ENAM, ... (cfg_regions), "" when unknown */
	geo_source source;
	/* The length of the network around the address that the answer (or
	 * the lack of one) holds for, in the bits of the address as passed
	 * (an IPv4-mapped IPv6 one counts the 96 bits of ::ffff:0:0/96):
	 * the geo.networks CIDR that matched, else the MaxMind record's
	 * network (MMDB netmask, minus 96 for IPv4 in an IPv6 tree; also
	 * when nothing is found there) or the special-purpose range; 0 when
	 * not known (no database). Addresses inside it may still be placed
	 * otherwise by a longer override: see geo_split_prefix. */
	uint8_t prefix;
} geo_result;

/* Builds the lookup state for g (NULL: no overrides, no database, no
 * trusted proxies). Opens g->database when set. On failure returns NULL
 * with a message in err ("geo.database FILE: reason"). */
geo_db *geo_open(const cfg_geo *g, char *err, size_t errlen);
void geo_close(geo_db *db);

/* Whether a MaxMind DB is open. */
bool geo_has_database(const geo_db *db);

/* Locates sa (AF_INET or AF_INET6; the port is ignored). Returns 0 when the
 * country or the region is known, -ENOENT when neither is (out is then
 * zeroed with source GEO_SRC_NONE, but for out->prefix), -EINVAL for a
 * NULL argument or another address family. */
int geo_lookup(const geo_db *db, const struct sockaddr *sa, geo_result *out);

/* For the network sa/prefix (an EDNS Client Subnet): the length of the
 * longest network strictly inside it that may be placed otherwise than
 * the rest, or 0 when there is none: a geo.networks override, or, with a
 * MaxMind DB, a special-purpose range (never looked up there). In the
 * bits of sa's family. A lookup of sa alone cannot see those; an answer
 * for the whole network must be scoped to at least that length (RFC 7871
 * §7.2.1). */
uint8_t geo_split_prefix(const geo_db *db, const struct sockaddr *sa,
			 unsigned prefix);

/* The coordinates of sa (degrees) from the MaxMind DB's
 * location/latitude and location/longitude, which City databases
 * (GeoLite2-City, DB-IP City Lite) have and country databases do not.
 * Returns 0, -ENOENT when the database has none for sa (also when a
 * geo.networks override places sa, or sa is special-purpose), -EINVAL
 * for bad arguments. *prefix (when not NULL) gets the length of the
 * network the answer holds for, as geo_result.prefix. Read-only and
 * thread-safe like geo_lookup. */
int geo_lookup_point(const geo_db *db, const struct sockaddr *sa, double *lat,
		     double *lon, uint8_t *prefix);

/* Whether sa is inside one of geo.trusted_proxies (whose X-Forwarded-For
 * and PROXY protocol headers are believed). */
bool geo_is_trusted(const geo_db *db, const struct sockaddr *sa);

/* Cloudflare region of an ISO 3166-1 alpha-2 country (case-insensitive),
 * or NULL when the code is not a known country. */
const char *geo_country_region(const char *country);

/* The built-in table itself, for the Regions API: GEO_NREGIONS regions in
 * Cloudflare's order (WNAM ... NEAS), each with its countries as
 * space-separated ISO 3166-1 alpha-2 codes ("MX HT BZ ..."). i must be
 * below GEO_NREGIONS. */
#define GEO_NREGIONS 13
const char *geo_region_code(size_t i);
const char *geo_region_countries(size_t i);

/* sa itself, or for an IPv4-mapped IPv6 address (::ffff:a.b.c.d) its IPv4
 * form written to *tmp. */
const struct sockaddr *geo_unmap(const struct sockaddr *sa,
				 struct sockaddr_in *tmp);

/* The client's network: its address (IPv4-mapped IPv6 as IPv4) with the
 * host bits beyond v4_prefix / v6_prefix cleared, into addr (4 bytes used
 * for IPv4), and the prefix length into *bits. Returns AF_INET or
 * AF_INET6, 0 for another family. */
int geo_network(const struct sockaddr *client, unsigned v4_prefix,
		unsigned v6_prefix, uint8_t addr[16], unsigned *bits);

#endif
