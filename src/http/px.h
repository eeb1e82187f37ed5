/* px.h - the HTTP/1.1 reverse proxy state machine (one client connection
 * and the upstream connection serving its current request).
 *
 * Every socket event lands in px_pump(), which does all the work that the
 * current readiness allows: read, parse, route, connect, forward both ways,
 * finish, start the next pipelined request. See docs/ARCHITECTURE.md.
 */
#ifndef MERIDIAN_PX_H
#define MERIDIAN_PX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/cfg_model.h"
#include "config/cfg_ratelimit.h"
#include "core/core_buf.h"
#include "core/core_loop.h"
#include "edge/edge.h"
#include "geo/geo.h"
#include "http/http1_parse.h"
#include "http/px_stats.h"

/* What the managed rules did to a request (access log). */
enum px_waf_action {
	PX_WAF_NONE = 0, /* they did not run */
	PX_WAF_PASS,	 /* ran, nothing to say */
	PX_WAF_LOG,	 /* rules matched, no deny */
	PX_WAF_DETECT,	 /* would have denied it (mode detect) */
	PX_WAF_BLOCK,	 /* denied it */
};

enum px_state {
	PX_HEAD = 0,  /* waiting for / parsing a request head */
	PX_PROXY,     /* exchanging one request/response with an origin */
	PX_LOCAL,     /* writing a response we generated (errors) */
	PX_TUNNEL,    /* after 101: raw bytes both ways */
	PX_LINGER,    /* response sent, write side shut: discard until EOF */
	PX_HANDSHAKE, /* TLS client: handshake before the first request */
	PX_H2,	      /* an HTTP/2 connection: its streams are px_clients of
		       * their own (px_h2.c) */
	PX_WAF,	      /* a request held (head and body start in `in`) until
		       * the managed rules have seen its body */
};

struct tls_conn;

/* Longest request id kept from a client (edge.request_id_header). */
#define PX_REQ_ID_MAX 64
struct tls_server;
struct px_h2;
struct px_h2_stream;

struct px_upstream {
	core_io io;
	core_timer timer;
	edge_worker *w;
	px_client *client;	  /* NULL while idle in the pool */
	px_upstream *next, *prev; /* idle list / free list */
	/* The snapshot origin belongs to: its client's while busy, the
	 * worker's while idle (a swap closes the idle ones). */
	const edge_snapshot *snap;
	const cfg_origin *origin;
	core_buf *in;
	bool connecting, can_read, can_write, rd_eof, wr_shut;
	bool hup;	/* peer closed its side: read on until read() says 0 */
	bool reused;	/* came from the idle pool */
	bool got_bytes; /* any response byte received */
	bool idle;
	bool parse_pending; /* bytes arrived since the last head parse */
	/* TLS origins only: the handshake is not done yet; the last read
	 * stopped on TLS_WANT_WRITE / the last write on TLS_WANT_READ. */
	bool handshaking, tls_rd_wants_write, tls_wr_wants_read;
	struct tls_conn *tls; /* NULL: plain HTTP (the origin's cfg tls) */
	uint64_t last_io;     /* ms */
};

struct px_client {
	core_io io;
	core_timer timer;
	edge_worker *w;
	/* The snapshot this connection's current request routes with; holds
	 * a reference, moved to the worker's at the next request. */
	const edge_snapshot *snap;
	px_client *next, *prev; /* live list / free list */
	px_upstream *up;
	core_buf *in;	 /* bytes from the client */
	core_buf *uhead; /* rewritten request head for the origin */
	core_buf *chead; /* response head (or local response) for the client */
	uint32_t uhead_len;
	uint8_t state;
	bool can_read, can_write, rd_eof, wr_shut;
	bool hup; /* peer closed its side: read on until read() says 0 */
	/* EPOLLERR or EPOLLHUP before we shut our side: the peer reset the
	 * connection, so no answer can reach it any more. */
	bool reset;
	bool parse_pending; /* bytes arrived since the last parse */
	bool close_after;   /* close once the current response is written */
	bool counted;	    /* holds a slot in edge.nconns */
	/* Its client's key in edge.conns (max_connections_per_client),
	 * released when it closes; 0: not counted there. */
	uint64_t conn_key;
	/* TLS clients only: the last read stopped on TLS_WANT_WRITE (read
	 * again when writable) / the last write on TLS_WANT_READ. */
	bool tls_rd_wants_write, tls_wr_wants_read;
	struct tls_conn *tls; /* NULL: plain HTTP (edge.listen.http) */
	/* HTTP/2 (px_h2.c). A connection that negotiated h2 has `h2` (state
	 * PX_H2). Each of its request streams is a px_client of its own with
	 * no socket (io.fd -1) and `h2s` set: its client_read/client_write2
	 * go to the stream, which turns them into HTTP/2 frames. */
	struct px_h2 *h2;
	struct px_h2_stream *h2s;
	px_client *h2conn;  /* streams: their connection */
	px_client *h2_next; /* streams: the connection's run queue;
			     * connections: the worker's h2_dirty list */
	bool h2_queued;
	bool closed;
	bool served; /* answered a request: an idle keep-alive connection */
	uint64_t last_read, last_write; /* ms */
	uint64_t head_start;		/* ms: first byte of the current head */

	/* Current request. */
	char req_id[PX_REQ_ID_MAX + 1]; /* edge.request_id_header; NUL-ended */
	uint8_t req_id_len;		/* 0: none */
	const cfg_lb *lb; /* routed by Host: stats and logs name it */
	/* What steering reads: lb, or what its rules made of it
	 * (lb_rules.h); may point at rule_lb. */
	const cfg_lb *slb;
	/* Where two or more matching rules' overrides are merged; made on
	 * first need and kept when the client struct is recycled. */
	cfg_lb *rule_lb;
	const cfg_lb_rule *rule; /* the last rule that matched (access log) */
	/* The rate limit this request went over (access log), or NULL. */
	const cfg_rate_limit *rate_limit;
	/* The last firewall rule that matched it (access log), or NULL. */
	const cfg_waf_rule *waf_rule;
	/* The managed rules (waf.h): the transaction while they run (PX_WAF
	 * holds the request: its head, waf_head_len bytes, stays at the
	 * start of `in`), then what they made of it for the access log. */
	struct waf_tx *waf_tx;
	uint32_t waf_head_len;
	/* A held chunked body: walked on from where the last read stopped
	 * (waf_walked bytes after the head), so a body trickled in small
	 * writes is walked once, not again from its start after each. */
	http1_chunked waf_ch;
	uint32_t waf_walked;
	bool waf_done;
	uint8_t waf_action;   /* px_waf_action */
	char waf_matched[72]; /* ids of the rules that matched */
	/* Rate limits whose counting_expression decides on the response:
	 * their index and this request's key, counted (or not) when the
	 * response's status is known (px_conn.c count_response). */
	uint64_t rl_key[CFG_RL_MAX_COUNTING];
	uint8_t rl_index[CFG_RL_MAX_COUNTING];
	uint8_t nrl;
	const cfg_pool *pool;
	const cfg_origin *origin;
	const cfg_origin *busy; /* counted in its outstanding requests */
	uint32_t tried[8];
	uint8_t ntried;
	uint32_t skip_pools[4]; /* failover_across_pools */
	uint8_t nskip;
	bool aff_bound; /* this request follows its affinity cookie */
	bool aff_set;	/* answer with a Set-Cookie for the chosen origin */
	bool stale_retried;
	bool upgrade_req;
	bool http10;
	http1_method method;
	uint8_t req_body;
	bool req_framed; /* all request body bytes have been framed */
	uint64_t req_remaining;
	uint64_t req_total;
	http1_chunked req_chunk;
	uint32_t req_fwd;  /* framed bytes at the head of `in` not yet sent */
	uint32_t req_trl;  /* trailer bytes after req_fwd, held until the
			    * section is whole (then filtered) */
	uint64_t req_sent; /* body bytes sent upstream */

	/* Current response. */
	bool resp_head_done;
	/* chead was compacted while part of its first head was out: its
	 * bytes may start inside a head the client has begun to read, so
	 * they cannot be replaced (chead_started). Cleared when it empties. */
	bool chead_cut;
	bool resp_keepalive;
	bool resp_framed;
	bool resp_cut; /* a close-delimited body ended by a reset */
	/* A chunked body to an HTTP/1.0 client: sent decoded, ended by the
	 * close (RFC 9112 §6.1: no Transfer-Encoding to HTTP/1.0). */
	bool resp_unchunk;
	uint8_t resp_body;
	uint64_t resp_remaining;
	http1_chunked resp_chunk;
	uint32_t resp_fwd; /* framed bytes at the head of up->in not yet sent */

	char ip[46];		  /* client address text, for X-Forwarded-For */
	struct sockaddr_in6 peer; /* holds a sockaddr_in too; after a PROXY
				   * header, the client it names */
	geo_result geo;		  /* the peer's country and region */
	/* This request's client when a trusted proxy named it in
	 * X-Forwarded-For (use_client), for steering and affinity. */
	struct sockaddr_in6 client;
	geo_result cgeo;
	bool use_client;
	bool trusted_peer;   /* peer in geo.trusted_proxies */
	bool want_proxy_hdr; /* a PROXY header must come first */
	px_req_stats st;     /* metrics and access log (px_stats.h) */
};

/* A new client connection accepted by worker w. Takes ownership of fd.
 * tls: the server of an https listener (the connection takes a reference
 * and starts with the handshake), NULL for plain HTTP. conn_key: what it
 * took in edge.conns (released at close), 0 for nothing. */
void px_client_accept(edge_worker *w, int fd, const struct sockaddr *peer,
		      struct tls_server *tls, uint64_t conn_key);
/* Whether a client at peer may open one more connection
 * (edge.limits.max_connections_per_client; sec_conns.h): *key is what
 * the connection releases when it ends, 0 for none (no limit, a trusted
 * proxy, or no room to count it). */
bool px_client_may_connect(edge_worker *w, const struct sockaddr *peer,
			   uint64_t *key);
/* Drain: close idle clients, make the others close after their response. */
void px_drain(edge_worker *w);
/* Close every connection (end of drain, worker exit). */
void px_close_all(edge_worker *w);
/* HTTP/2 counters, process-wide (px_h2.c), for /metrics. */
typedef enum px_h2_err {
	PX_H2_E_RAPID_RESET = 0, /* too many streams reset by the client */
	PX_H2_E_FLOOD,		 /* PING, SETTINGS, empty-frame floods */
	PX_H2_E_PROTOCOL,	 /* any other connection error */
	PX_H2_E_HEADER_TIMEOUT,	 /* a header block left unfinished */
	PX_H2_E_STALLED,	 /* the client stopped reading */
	PX_H2_NERR,
} px_h2_err;

/* Streams the edge reset while their connection went on. */
typedef enum px_h2_sreset {
	PX_H2_SR_REFUSED = 0, /* REFUSED_STREAM: over max_concurrent_streams */
	PX_H2_SR_STALLED,     /* its window kept shut past client_idle */
	PX_H2_NSRESET,
} px_h2_sreset;

typedef struct px_h2_stats {
	uint64_t connections, streams;
	uint64_t errors[PX_H2_NERR];
	uint64_t stream_resets[PX_H2_NSRESET];
} px_h2_stats;

void px_h2_stats_get(px_h2_stats *out);
const char *px_h2_err_name(px_h2_err e);
const char *px_h2_sreset_name(px_h2_sreset r);

/* After each loop batch, before px_reap: HTTP/2 connections whose streams
 * made progress write what their sessions now hold. */
void px_flush(edge_worker *w);
/* Deferred frees, after each loop batch. */
void px_reap(edge_worker *w);
/* Serve new requests with snapshot next (the worker takes a reference and
 * drops the one on its previous snapshot): idle upstream connections of the
 * old snapshot are closed, clients move over at their next request. */
void px_adopt_snapshot(edge_worker *w, const edge_snapshot *next);

#endif
