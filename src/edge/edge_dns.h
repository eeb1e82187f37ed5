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
 *     address the query was sent to: IP_PKTINFO / IPV6_RECVPKTINFO).
 *   - TCP (RFC 7766): 2-byte length framing, several queries per
 *     connection answered in order (one response in flight: the next query
 *     is read only once the previous answer is written), idle timeout
 *     edge.timeouts.client_idle, at most EDGE_DNS_TCP_CONNS connections
 *     per worker (beyond: closed at once). A zero length or a query
 *     dns_answer drops closes the connection.
 *   - Load balancer nodes (dns_lb_cb): disabled → static data; proxied:
 *     edge.public_addresses; DNS-only: the pool from lb_steer_pool (client
 *     located by its EDNS Client Subnet when the query has one with a
 *     source prefix > 0 and location_strategy.prefer_ecs is not `never`,
 *     else by the resolver's address), then that pool's usable origins in
 *     order (all its enabled origins when none is usable: a fallback pool
 *     is answered whatever its health); an origin given as a hostname (the
 *     first one) answers a CNAME. The ECS scope is the query's source
 *     prefix when the answer depended on it (geo steering), else 0.
 */
#ifndef MERIDIAN_EDGE_DNS_H
#define MERIDIAN_EDGE_DNS_H

#include <stdint.h>

#include "edge/edge.h"

#define EDGE_DNS_BATCH	   32  /* datagrams per recvmmsg/sendmmsg */
#define EDGE_DNS_TCP_CONNS 256 /* TCP connections per worker */

/* Per-worker counters (plain: only the worker writes them). */
typedef struct edge_dns_counters {
	uint64_t udp_queries, tcp_queries;
	uint64_t dropped;   /* no response (malformed, QR set, oversized) */
	uint64_t truncated; /* TC sent */
	uint64_t ecs;	    /* queries with a valid Client Subnet */
	uint64_t lb;	    /* answered by a load balancer */
	uint64_t rcode[6];  /* NOERROR .. REFUSED */
	uint64_t rcode_other;
	uint64_t send_errors;
	uint64_t tcp_accepted, tcp_refused, tcp_idle_closed, tcp_bad_frame;
} edge_dns_counters;

/* Opens the worker's DNS sockets (w->dns stays NULL when there are no
 * edge.listen.dns addresses). Returns 0 or -errno (bind errors stop
 * start-up, like the HTTP listeners). */
int edge_dns_worker_init(edge_worker *w);
/* Closes every socket and connection and frees the state. Safe after a
 * failed or skipped init. */
void edge_dns_worker_destroy(edge_worker *w);
/* The worker's counters, or NULL without DNS listeners. */
const edge_dns_counters *edge_dns_worker_counters(const edge_worker *w);

#endif
