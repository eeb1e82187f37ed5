/* tun_edge.h - the edge's tunnel endpoint (docs/ARCHITECTURE.md
 * "Tunnels"): one thread that accepts connectors on edge.listen.tunnel
 * (TLS, then the hello of tun_hello.h, then HTTP/2 with the edge as the
 * client), and bridges the workers to them. A tunnel origin's address is
 * an abstract AF_UNIX socket (cfg_tunnel_sockaddr), bound while at least
 * one connector of the tunnel can take streams; each worker connection to
 * it speaks HTTP/1.1 as to any origin, and each request becomes a stream
 * on the connector connection with the fewest streams. With no connector
 * the socket is gone, so connecting fails at once and the proxy moves on
 * to another origin, as for an origin that refuses connections. */
#ifndef MERIDIAN_TUN_EDGE_H
#define MERIDIAN_TUN_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_model.h"

struct edge;
typedef struct tun_edge tun_edge;

/* Bind edge.listen.tunnel and start the thread. 0, or -1 with err set
 * (an address in use). Nothing to do without tunnel listeners: 0 and
 * *out NULL. */
int tun_edge_start(struct edge *e, const cfg_snapshot *cfg, tun_edge **out,
		   char *err, size_t errlen);
/* GOAWAY to every connector, close, join. Call after the workers are
 * gone (their requests may be on tunnels). NULL: nothing. */
void tun_edge_stop(tun_edge *t);

/* Outcomes of connectors' hellos, for /metrics. */
typedef enum tun_hello_result {
	TUN_HELLO_ACCEPTED,
	TUN_HELLO_UNAUTHORIZED, /* 401 */
	TUN_HELLO_REFUSED,	/* 400, 404, 426, 431, 503 */
	TUN_HELLO_FAILED, /* TLS failed, closed or timed out before a hello */
	TUN_HELLO_NRESULT
} tun_hello_result;
const char *tun_hello_result_name(tun_hello_result r);

typedef struct tun_edge_tunnel_stats {
	char id[64];
	uint32_t connectors;	/* connections that take new streams */
	uint64_t streams;	/* requests sent through the tunnel */
	uint64_t stream_errors; /* streams that ended without a whole answer */
} tun_edge_tunnel_stats;

/* One connector connection, as the API shows it. */
typedef struct tun_edge_conn_info {
	uint64_t id;	    /* unique on this edge */
	char connector[64]; /* the name in its hello */
	char origin_ip[64]; /* where it connected from */
	uint64_t opened_ms; /* wall clock */
	bool draining;	    /* it sent GOAWAY */
} tun_edge_conn_info;

/* One tunnel's connections (at most cap) and when it last came up or went
 * down (wall ms; 0: never since start). Any thread. Returns the count, or
 * -1 when no connector has joined the tunnel since start. */
int tun_edge_conns(tun_edge *t, const char *id, tun_edge_conn_info *out,
		   size_t cap, uint64_t *up_since, uint64_t *down_since);

/* Every tunnel a connector has joined since start (at most cap), and the
 * hello counters. Any thread. Returns the count. */
size_t tun_edge_stats(tun_edge *t, tun_edge_tunnel_stats *out, size_t cap,
		      uint64_t hellos[TUN_HELLO_NRESULT]);

#endif
