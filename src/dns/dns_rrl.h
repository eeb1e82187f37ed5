/* dns_rrl.h - response rate limiting for UDP answers (RRL), pure: no I/O,
 * no clock (the caller passes the second).
 *
 * Why: an authoritative server answering spoofed UDP queries is an
 * amplifier aimed at whoever owns the forged source. As in BIND, Knot and
 * NSD, identical responses to one client network are counted per second,
 * and beyond `responses_per_second` most are dropped while every
 * `slip`-th goes out truncated (TC=1, no records), so a real resolver
 * behind that network retries over TCP and still gets its answer. TCP is
 * never limited (its source cannot be forged).
 *
 * What counts as "identical" (the bucket key, SipHash under a random
 * per-table key so nobody can aim collisions):
 *   - the client's network: the address cut to ipv4_prefix / ipv6_prefix
 *     bits (a resolver farm is one client);
 *   - the response class: NOERROR with data or NODATA, keyed further by the
 *     lowercased query name and type; NXDOMAIN, and answers synthesised
 *     from a wildcard, each keyed by the client network alone (random-
 *     subdomain floods spread over names); any error (REFUSED, FORMERR,
 *     ...), also by network alone.
 *
 * The table: a fixed array of 64-bit buckets, each {second, count, tag}
 * updated with compare-and-swap, shared by every worker without a lock. A
 * bucket whose tag differs, or whose second is older, starts over at 1, so
 * two keys that collide can only make each other's counts lower: limiting
 * may be missed under collisions, never applied to the wrong client beyond
 * its own count. Windows are whole seconds; a caller whose clock is one
 * second behind (another worker's cached time) counts into the newer
 * window instead of resetting it. Past 65,535 in a window the count wraps
 * back to just over the limit, so the slip cadence goes on.
 */
#ifndef MERIDIAN_DNS_RRL_H
#define MERIDIAN_DNS_RRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct dns_rrl_cfg {
	uint32_t rps;	   /* responses per second per key; 0: off */
	uint32_t slip;	   /* every slip-th limited response is sent
			    * truncated; 0: none, 1: all */
	uint8_t v4_prefix; /* bits of an IPv4 client that make its network */
	uint8_t v6_prefix; /* bits of an IPv6 client */
} dns_rrl_cfg;

typedef enum dns_rrl_action {
	DNS_RRL_SEND = 0, /* under the limit (or not limited) */
	DNS_RRL_SLIP,	  /* over: send it truncated */
	DNS_RRL_DROP,	  /* over: send nothing */
} dns_rrl_action;

typedef enum dns_rrl_class {
	DNS_RRL_ANSWER = 0, /* NOERROR: data or NODATA */
	DNS_RRL_NXDOMAIN,
	DNS_RRL_ERROR,
	DNS_RRL_WILDCARD, /* NOERROR synthesised from a wildcard (or a `*.`
			   * load balancer): per network, since every
			   * random name under it is a new name */
} dns_rrl_class;

typedef struct dns_rrl dns_rrl;

/* A table of nbuckets (a power of two, at least 64) whose bucket hash is
 * keyed with key (give it random bytes). NULL on a bad size. */
dns_rrl *dns_rrl_new(uint32_t nbuckets, const uint8_t key[16]);
void dns_rrl_free(dns_rrl *r);

/* The client's network: its address (IPv4-mapped IPv6 as IPv4) with the
 * host bits beyond the configured prefix cleared, into addr (4 bytes used
 * for IPv4), and the prefix length into *bits. Returns AF_INET or
 * AF_INET6, 0 for another family. */
int dns_rrl_network(const dns_rrl_cfg *c, const struct sockaddr *client,
		    uint8_t addr[16], unsigned *bits);

/* The class of a response with this rcode. */
dns_rrl_class dns_rrl_class_of(unsigned rcode);

/* Count one response to client (sockaddr_in or sockaddr_in6) and say what
 * to do with it. qname is the query name in wire form (len bytes, matched
 * ASCII case-insensitively), used for DNS_RRL_ANSWER only (may be NULL
 * otherwise). now_s: the current second (any monotonic count). Safe from
 * any thread. */
dns_rrl_action dns_rrl_check(dns_rrl *r, const dns_rrl_cfg *c,
			     const struct sockaddr *client, dns_rrl_class cls,
			     const uint8_t *qname, size_t qname_len,
			     uint16_t qtype, uint32_t now_s);

/* The question name (wire form, root label included) of the query in
 * q[0..len): its length, with *name pointing into q and *qtype set; 0 when
 * there is no well-formed first question. */
size_t dns_rrl_qname(const uint8_t *q, size_t len, const uint8_t **name,
		     uint16_t *qtype);

/* Turn the response in msg[0..len) into its truncated form in place: the
 * header with TC set, the question, and the response's OPT record if it
 * has one (RFC 6891: the extended rcode and ECS stay), no other record.
 * Returns the new length (0 when msg is not a well-formed response this
 * code can shorten). */
size_t dns_rrl_truncate(uint8_t *msg, size_t len);

#endif
