/* edge_dns.h - the authoritative DNS listeners of one worker.
 *
 * Every `edge.listen.dns` address gets, in every worker, a UDP socket and a
 * TCP listener (both SO_REUSEPORT: the kernel spreads queries and
 * connections over the workers), registered in the worker's core_loop.
 * Answers come from dns_answer() over the snapshot's zone set
 * (edge_snapshot.zones); DNS-only load balancers are steered with lb_steer
 * from the live origin state, like the proxy.
 *
 *   - UDP: recvmmsg/sendmmsg in batches of EDGE_DNS_BATCH into per-worker
 *     buffers allocated once (nothing is allocated per query); the answer
 *     goes back to the packet's source (and, on a wildcard bind, from the
 *     address the query was sent to: IP_PKTINFO / IPV6_RECVPKTINFO). A
 *     batch shorter than EDGE_DNS_BATCH emptied the socket: back to
 *     epoll_wait without the call that would only say EAGAIN.
 *   - TCP (RFC 7766): 2-byte length framing, several queries per
 *     connection answered in order (one response in flight: the next query
 *     is read only once the previous answer is written), idle timeout
 *     edge.timeouts.client_idle between whole messages (partial bytes do
 *     not extend it), at most EDGE_DNS_TCP_CONNS connections per worker
 *     (beyond: the least recently active one is closed for the new one). A zero
 * length or a query dns_answer drops closes the connection.
 *   - Load balancer nodes (dns_lb_cb): disabled → static data; proxied:
 *     edge.public_addresses; DNS-only: the pool from lb_steer_pool, the
 *     client located per location_strategy (lb_locate.h: the EDNS Client
 *     Subnet when prefer_ecs prefers it for the steering policy and its
 *     lookup succeeds, else per mode the resolver's address or the edge's
 *     own location), then that pool's usable origins in order (a
 *     fallback pool without a usable origin: all its enabled origins with
 *     weight > 0, whatever their health, the proxy's rule,
 *     lb_steer_pool_any_health); an origin given as a hostname (the first
 *     one) answers a CNAME. When the subnet was consulted (the answer
 *     depends on it) the ECS scope is the longest of the query's source
 *     prefix, the network the subnet's lookup matched (geo_result.prefix: a
 *     geo.networks CIDR or the MaxMind record's netmask) and any
 *     geo.networks override inside the subnet (geo_split_prefix): a longer
 *     prefix could get another answer (RFC 7871 §7.2.1). Else 0.
 *   - Counters (edge_dns_stats): each worker writes only its own, with
 *     plain relaxed stores (no read-modify-write atomics, no shared cache
 *     line); readers on other threads sum them with relaxed loads
 *     (edge_dns_stats_sum), so a sum is a moment's view, not a snapshot.
 */
#ifndef MERIDIAN_EDGE_DNS_H
#define MERIDIAN_EDGE_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/edge.h"

#define EDGE_DNS_BATCH	   32  /* datagrams per recvmmsg/sendmmsg */
#define EDGE_DNS_TCP_CONNS 256 /* TCP connections per worker */

/* Transports, the index of edge_dns_stats.queries. */
enum { EDGE_DNS_UDP = 0, EDGE_DNS_TCP, EDGE_DNS_NTRANSPORTS };

/* Response codes counted one by one, the index of
 * edge_dns_stats.responses (NOERROR..REFUSED are the rcode values). */
enum {
	EDGE_DNS_RC_NOERROR = 0,
	EDGE_DNS_RC_FORMERR,
	EDGE_DNS_RC_SERVFAIL,
	EDGE_DNS_RC_NXDOMAIN,
	EDGE_DNS_RC_NOTIMP,
	EDGE_DNS_RC_REFUSED,
	EDGE_DNS_RC_BADVERS, /* extended rcode 16 (EDNS version) */
	EDGE_DNS_RC_OTHER,
	EDGE_DNS_NRCODES
};

/* DNS counters since start, summed over the workers (or one worker's). */
typedef struct edge_dns_stats {
	uint64_t queries[EDGE_DNS_NTRANSPORTS]; /* messages received */
	uint64_t responses[EDGE_DNS_NRCODES]; /* sent or attempted, by rcode */
	uint64_t ecs;	      /* queries with a valid Client Subnet option */
	uint64_t ecs_scoped;  /* answers whose ECS scope is > 0 */
	uint64_t truncated;   /* responses with TC (the answer did not fit) */
	uint64_t dropped;     /* no response: malformed, QR set, oversized */
	uint64_t lb;	      /* answered by a load balancer */
	uint64_t send_errors; /* UDP responses the socket did not take */
	/* UDP queries the kernel dropped, its receive buffer full (summed
	 * from the sockets by edge_dns_stats_sum only). */
	uint64_t udp_receive_dropped;
	uint64_t rrl_dropped, rrl_slipped; /* edge.dns_rate_limit */
	uint64_t tcp_accepted,
	    tcp_evicted; /* to stay within EDGE_DNS_TCP_CONNS */
	uint64_t tcp_idle_closed, tcp_bad_frame;
} edge_dns_stats;

/* "udp", "tcp"; and "NOERROR", "FORMERR", ..., "BADVERS", "other" (NULL
 * out of range): the label values of the metrics. */
const char *edge_dns_transport_name(unsigned i);
const char *edge_dns_rcode_name(unsigned i);

/* Sums the counters of every worker of e into *out (zeros without DNS
 * listeners). Any thread, while the workers exist (between edge_run's
 * worker init and destroy). */
void edge_dns_stats_sum(const edge *e, edge_dns_stats *out);

/* Whether e serves DNS (edge.listen.dns is set). */
bool edge_dns_enabled(const edge *e);

/* The counters for the admin /status: a text block (lines "dns KEY VALUE"
 * after a blank line) or a JSON object {"queries":{"udp":N,...},...}.
 * Returns the length (snprintf's rule: the text is cut when it is >= size,
 * buf may be NULL with size 0). */
int edge_dns_stats_format(const edge_dns_stats *s, char *buf, size_t size,
			  bool json);

/* Opens the worker's DNS sockets (w->dns stays NULL when there are no
 * edge.listen.dns addresses). Returns 0 or -errno (bind errors stop
 * start-up, like the HTTP listeners). */
int edge_dns_worker_init(edge_worker *w);
/* Closes every socket and connection and frees the state. Safe after a
 * failed or skipped init. */
void edge_dns_worker_destroy(edge_worker *w);

#endif
