/* dns_answer.h - the authoritative answer to one query, pure (no I/O, no
 * allocation, no locks): query bytes in, response bytes out.
 *
 * The life of a query (dns_answer):
 *   1. dns_query_parse(): drop (return 0), or an error rcode answered with
 *      the header, the question when it parsed (not for NOTIMP nor
 *      QDCOUNT != 1) and an OPT when the query had one, whatever the rcode
 *      (BADVERS: extended rcode 1, version 0).
 *   2. The size limit: TCP min(outcap, 65535); UDP without EDNS 512; UDP
 *      with EDNS the client's payload size raised to 512 and capped at our
 *      own (dns_zoneset_udp_max, default 1232), and at outcap.
 *   3. Class other than IN, AXFR/IXFR: REFUSED. MAILA/MAILB: NOTIMP.
 *      OPT, TKEY or TSIG as the question type: FORMERR.
 *   4. dns_zoneset_lookup() of the lowercased name:
 *      - in none of our zones: REFUSED (no AA);
 *      - under a zone cut: a referral (no AA, the cut's NS in authority,
 *        their A/AAAA in additional when the zone has them); a DS query at
 *        the cut itself gets the parent's NODATA;
 *      - NXDOMAIN: AA, the zone's SOA in authority with TTL
 *        min(SOA minimum, SOA TTL) (RFC 2308);
 *      - a node (exact or the covering wildcard, whose records then take
 *        the query's name as owner):
 *        a. a load balancer node: the callback is asked (at a zone apex
 *           only for A and AAAA). DNS_LB_CNAME answers a CNAME for every
 *           type (never at an apex), followed as in c. except for CNAME
 *           and ANY queries; DNS_LB_ADDRS answers A or AAAA (NODATA
 *           when the family asked for is empty) and ANY, other types fall
 *           to the static data; DNS_LB_NONE falls to the static data
 *           (NODATA when there is none);
 *        b. ANY (RFC 8482): at a CNAME (static, or a load balancer's in
 *           a. above) that CNAME alone, not followed (no HINFO beside a
 *           CNAME, RFC 8482 4.2); else one synthesized HINFO "RFC8482" ""
 *           record, TTL DNS_ANY_TTL, when the name has data; else NODATA;
 *        c. a CNAME answers every other type; its target is followed while
 *           it stays in our zones, at most DNS_MAX_CHAIN links: the data
 *           of the name the last link reaches is answered, a CNAME there
 *           is written but not followed; a name met again (a loop, seen
 *           by its node) stops the chain, so no record is repeated; the
 *           rcode and SOA are those of the last name (RFC 6604);
 *        d. the RRset of the type asked, else NODATA (AA, SOA in authority).
 *   5. Names are written compressed; the question and every owner name
 *      that is the query's name keep the query's case (0x20 resolvers).
 *      AA on authoritative answers, RD and CD copied, RA 0.
 *   6. When the sections do not fit the limit: TC, and only the question
 *      (and the OPT) are sent. Over TCP that happens only past 65535 bytes.
 *   7. EDNS: our OPT (payload size, DO copied) with the Client Subnet option
 *      echoed when the query had one: same family, source and address,
 *      scope 0 for static data, the callback's scope whenever a load balancer
 *      callback was asked (the largest when several): its records, and
 *      the static data it left a name to, were decided for that subnet;
 *      always 0 for a source of 0.
 *
 * Minimal responses: no NS in authority of positive answers and no
 * additional section processing (MX, SRV, NS targets), as gdnsd and Knot
 * can be configured; resolvers ask for what they need.
 */
#ifndef MERIDIAN_DNS_ANSWER_H
#define MERIDIAN_DNS_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/cfg_model.h"
#include "dns/dns_wire.h"
#include "dns/dns_zone.h"

#define DNS_LB_MAX_ADDRS 16   /* addresses per family in one answer */
#define DNS_MAX_CHAIN	 8    /* CNAME links followed */
#define DNS_ANY_TTL	 3789 /* RFC 8482 HINFO (Cloudflare's choice) */

/* The client of a query as the listener knows it: the packet's source. */
typedef struct dns_client {
	const struct sockaddr *addr; /* NULL when unknown */
	socklen_t addrlen;
} dns_client;

typedef enum dns_lb_kind {
	DNS_LB_NONE = 0, /* nothing from the load balancer: static data */
	DNS_LB_ADDRS,	 /* addr4/addr6 (only the family asked for matters) */
	DNS_LB_CNAME,	 /* cname */
} dns_lb_kind;

/* What the callback is asked. */
typedef struct dns_lb_query {
	const cfg_lb *lb;
	const uint8_t *qname; /* the name answered, wire form as written */
	uint16_t qtype;
	const dns_client *client;
	const dns_ecs *ecs; /* the query's Client Subnet, or NULL */
} dns_lb_query;

/* What the callback answers. dns_answer sets kind NONE, ttl 30, ecs_scope
 * 0, n4 = n6 = 0 and cname "" before the call; the arrays are not
 * cleared. */
typedef struct dns_lb_result {
	dns_lb_kind kind;
	uint32_t ttl;
	uint8_t ecs_scope; /* SCOPE PREFIX-LENGTH to return (ECS queries),
			    * whatever the kind (NONE included) */
	uint8_t n4, n6;	   /* at most DNS_LB_MAX_ADDRS each */
	uint8_t addr4[DNS_LB_MAX_ADDRS][4];
	uint8_t addr6[DNS_LB_MAX_ADDRS][16];
	char cname[DNS_MAX_NAME + 1]; /* "origin.example.net", trailing dot
				       * optional; not a name: SERVFAIL */
} dns_lb_result;

/* Called on the answering thread; must not block. */
typedef void (*dns_lb_cb)(void *arg, const dns_lb_query *q, dns_lb_result *r);

/* What happened, for counters. */
typedef struct dns_answer_info {
	uint8_t rcode;	 /* the response's (extended) rcode */
	uint16_t qtype;	 /* 0 when no question parsed */
	bool dropped;	 /* no response (0 was returned) */
	bool edns;	 /* the query had a usable OPT */
	bool ecs;	 /* the query had a valid Client Subnet option */
	bool ecs_scoped; /* the response's scope is > 0 */
	bool lb;	 /* a load balancer callback answered */
	bool truncated;	 /* TC set */
	bool aa;	 /* authoritative answer */
	bool wildcard;	 /* the name was answered from a wildcard */
} dns_answer_info;

/* Answers query[0..qlen) from zs (NULL: no zones, everything REFUSED).
 * client is passed to lb_cb (both may be NULL; without a callback load
 * balancer nodes answer from their static data). The response is written
 * to out[0..outcap); tcp selects the size policy (the caller adds the TCP
 * length prefix). Returns the response length, or 0 to send nothing.
 * info may be NULL. */
size_t dns_answer(const dns_zoneset *zs, const uint8_t *query, size_t qlen,
		  const dns_client *client, dns_lb_cb lb_cb, void *arg,
		  uint8_t *out, size_t outcap, bool tcp, dns_answer_info *info);

#endif
