/* px_stats.h - what the proxy counts per request, for /metrics
 * (edge_stats.h) and the access log (edge_alog.h).
 *
 * px_conn.c calls these hooks, one line each, at fixed points of a
 * request's life:
 *   px_stats_start   the head parsed, the request starts (start_request)
 *   px_stats_head    the origin's final response head (parse_response)
 *   px_stats_local   a response of our own (local_response)
 *   px_stats_retry   another origin will be tried (next_origin)
 *   px_stats_sent    bytes written to the client (write_client)
 *   px_stats_end     the exchange is complete (finish_exchange, step_local)
 *   px_stats_close   the connection closes: a request still open ends with
 *                    the status sent, or 499 when no response head went out
 *   px_stats_origin_failed  a failure on live traffic (origin_failed)
 *   px_stats_idle    an upstream connection enters/leaves the idle pool
 * A request is counted once, when it ends, in the counter block of its
 * worker in the snapshot it started on (cl->snap). Times come from
 * CLOCK_MONOTONIC: duration from the parsed head to the end of the
 * response, upstream time from the parsed head to the origin's response
 * head (connects and retries included).
 */
#ifndef MERIDIAN_PX_STATS_H
#define MERIDIAN_PX_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct px_client;
struct edge_worker;
struct cfg_origin;
struct http1_request;

typedef struct px_req_stats {
	uint64_t t0;	/* ns: the request started (0: no request open) */
	uint64_t up_ns; /* to the origin's response head; 0: none yet */
	uint64_t bytes; /* sent to the client */
	char *line;	/* access log line being built, NULL: none */
	uint16_t len;	/* bytes in line */
	uint16_t status;
	uint8_t retries, failovers;
} px_req_stats;

/* The request's client as text: the peer (or the one a PROXY header
 * named), or the X-Forwarded-For address a trusted proxy gave, written in
 * buf (INET6_ADDRSTRLEN bytes) when it is the latter. */
const char *px_client_ip(const struct px_client *cl, char *buf, size_t len);
void px_stats_start(struct px_client *cl, const struct http1_request *req);
void px_stats_head(struct px_client *cl, int status);
void px_stats_local(struct px_client *cl, int status);
void px_stats_retry(struct px_client *cl);
void px_stats_end(struct px_client *cl);
void px_stats_close(struct px_client *cl);
void px_stats_origin_failed(struct px_client *cl, const struct cfg_origin *o,
			    bool ejected);
void px_stats_idle(struct edge_worker *w, int delta);
/* A request refused before it became one (an HTTP/2 stream the h2 layer
 * answered or reset itself) on connection cl: the edge's own answer
 * before routing, as an HTTP/1.1 400 or 431. */
void px_stats_refused(struct px_client *cl, int status);

static inline void px_stats_sent(px_req_stats *st, size_t n)
{
	st->bytes += n;
}

#endif
