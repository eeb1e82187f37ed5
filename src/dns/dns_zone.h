/* dns_zone.h - the authoritative data of one configuration snapshot, pure.
 *
 * dns_zoneset_build() runs once per cfg_snapshot (start-up and reload, never
 * per query) and turns `zones` into one read-only structure that any number
 * of threads may query without locks:
 *
 *   - every name that owns data, every empty non-terminal between a name and
 *     its zone's apex, every zone apex and every load balancer name inside a
 *     zone is a dns_node, found by one open-addressing hash table over all
 *     zones, keyed by the lowercased wire name;
 *   - a node holds its RRsets, each record's rdata already in wire form
 *     (names in full, lowercased), parsed from `content` at build time
 *     (dns_rdata.h) so that a query only copies bytes;
 *   - a name belongs to the deepest configured zone that contains it; a
 *     record listed under a parent zone but inside a configured child zone
 *     is an error, except NS records at the child's apex (the parent's
 *     delegation, ignored: the child is served here);
 *   - apex SOA and NS are generated when not configured: SOA "ns1.<zone>
 *     hostmaster.<zone> <serial> 3600 600 604800 60" with TTL 3600, NS
 *     "ns1.<zone>" with TTL 3600, and, when ns1.<zone> has no data of its
 *     own and edge.public_addresses is set, A/AAAA records for ns1.<zone>
 *     from those addresses (TTL 3600) so the generated NS resolves;
 *   - a load balancer whose name lies inside a zone marks its node (also a
 *     `*.` name, which then acts as a wildcard node); the answer logic asks
 *     a callback about such nodes (dns_answer.h) whatever the load
 *     balancer's `enabled` and `proxied` (the callback decides). Static
 *     records at the same name are kept: they answer when the load balancer
 *     gives nothing. Nodes point at the snapshot's cfg_lb, so a zone set
 *     must not outlive its snapshot;
 *   - NS records below an apex are zone cuts (delegations); every node at or
 *     under a cut points at it.
 *
 * Checks at build time (each reported with the record's position, in file
 * order): content that does not parse, CNAME beside other data or twice at
 * a name, a CNAME at an apex, an SOA below one, two SOAs, a record of a
 * parent zone inside a configured child zone, zone names too long for the
 * generated SOA; then, at the load balancer's position, a load balancer
 * name that owns a CNAME (its answers would sit beside it), and an enabled
 * DNS-only (proxied: false) load balancer at or below a zone cut (the
 * referral always answers instead; a proxied one there still serves HTTP
 * and the delegation decides its DNS, so it is accepted). Identical records are
 * merged; records of one RRset with different TTLs get the lowest (RFC
 * 2181 5.2).
 *
 * Lookup (dns_zoneset_lookup) for a lowercased wire name:
 *   the exact node if it exists (empty non-terminals included: NODATA);
 *   else the closest encloser (the longest existing ancestor); none: the
 *   name is in none of our zones (REFUSED); a cut at or above the name wins
 *   (referral); else the wildcard "*.<closest encloser>" if it exists
 *   (RFC 4592); else NXDOMAIN.
 */
#ifndef MERIDIAN_DNS_ZONE_H
#define MERIDIAN_DNS_ZONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_load.h"
#include "config/cfg_model.h"
#include "dns/dns_wire.h"

/* Generated SOA fields. */
#define DNS_SOA_REFRESH 3600
#define DNS_SOA_RETRY	600
#define DNS_SOA_EXPIRE	604800
#define DNS_SOA_MINIMUM 60 /* the negative TTL */
#define DNS_GEN_TTL	3600
#define DNS_PUBLIC_MAX	16 /* edge.public_addresses per family kept */

typedef struct dns_rr {
	const uint8_t *rdata;
	uint16_t rdlen;
} dns_rr;

typedef struct dns_rrset {
	uint16_t type;
	uint16_t n;
	uint32_t ttl;
	const dns_rr *rr;
} dns_rrset;

typedef struct dns_zone dns_zone;

typedef struct dns_node {
	const uint8_t *name; /* lowercased wire form */
	uint8_t namelen;
	uint8_t nlabels;
	bool apex;
	uint16_t nrrsets;
	const dns_rrset *rrsets;
	const dns_zone *zone;
	const struct dns_node *cut; /* delegation at or above, or NULL */
	const cfg_lb *lb;	    /* load balancer at this name, or NULL */
} dns_node;

struct dns_zone {
	const char *name; /* as configured: lowercase, no trailing dot */
	const uint8_t *wire;
	uint8_t wirelen;
	uint8_t nlabels;
	const dns_node *apex;
	const dns_rrset *soa; /* always present */
	uint32_t neg_ttl;     /* min(SOA minimum, SOA TTL), RFC 2308 */
	bool has_cuts;
};

typedef struct dns_zoneset dns_zoneset;

typedef struct dns_zoneset_opts {
	uint32_t serial;  /* of generated SOAs, e.g. the snapshot's time */
	uint16_t udp_max; /* EDNS payload size we advertise and use at most;
			   * clamped to [512, 4096]; 0: DNS_UDP_DEFAULT */
} dns_zoneset_opts;

typedef enum dns_match {
	DNS_MATCH_NONE = 0,   /* in none of our zones */
	DNS_MATCH_EXACT,      /* node: the name's own node */
	DNS_MATCH_WILDCARD,   /* node: the wildcard covering the name */
	DNS_MATCH_NXDOMAIN,   /* node: the closest encloser */
	DNS_MATCH_DELEGATION, /* node: the zone cut at or above the name */
} dns_match;

typedef struct dns_lookup {
	dns_match match;
	const dns_zone *zone; /* NULL for DNS_MATCH_NONE */
	const dns_node *node;
	bool at_cut; /* DELEGATION and the name is the cut itself */
} dns_lookup;

/* Builds the zone set of snap (opts may be NULL). Returns 0 with *out set
 * (an empty set when snap has no zones), or -EINVAL with every problem
 * appended to diag (when not NULL) as "file:line:col: message". */
int dns_zoneset_build(const cfg_snapshot *snap, const dns_zoneset_opts *opts,
		      dns_zoneset **out, cfg_diag *diag);
void dns_zoneset_free(dns_zoneset *zs);

uint16_t dns_zoneset_udp_max(const dns_zoneset *zs);
size_t dns_zoneset_nzones(const dns_zoneset *zs);
const dns_zone *dns_zoneset_zone(const dns_zoneset *zs, size_t i);
size_t dns_zoneset_nnodes(const dns_zoneset *zs);

/* The node named exactly lname (lowercased wire form), or NULL. */
const dns_node *dns_zoneset_find(const dns_zoneset *zs, const uint8_t *lname);
/* See the top of the file. zs may be NULL (no zones: DNS_MATCH_NONE). */
void dns_zoneset_lookup(const dns_zoneset *zs, const uint8_t *lname,
			dns_lookup *out);
/* The RRset of that type at n, or NULL. */
const dns_rrset *dns_node_rrset(const dns_node *n, uint16_t type);

/* A number unique to this zone set among the builds of this process (never
 * 0 for a set): what per-worker caches of per-snapshot data compare, since
 * a new set may reuse a freed one's address. */
uint64_t dns_zoneset_id(const dns_zoneset *zs);

/* Per-snapshot facts for load balancer answers, computed at build time so
 * that a query parses no text:
 * 4 or 6 when the origin with that cfg_origin.index is an IPv4 / IPv6
 * literal, 0 when it is a host name (answered as a CNAME) or unknown. */
int dns_zoneset_origin_family(const dns_zoneset *zs, uint32_t index);
/* edge.public_addresses of one family (4 or 6) in wire form: *n addresses
 * of 4 (resp. 16) bytes each, at most DNS_PUBLIC_MAX; NULL when none. */
const uint8_t *dns_zoneset_public(const dns_zoneset *zs, int family, size_t *n);

/* FNV-1a of a lowercased wire name (the table's hash). */
uint32_t dns_name_hash(const uint8_t *lname, size_t len);

#endif
