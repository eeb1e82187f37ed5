/* tun_int.h - what the edge's tunnel files (tun_edge.c, tun_link.c,
 * tun_bridge.c) share: their objects and the calls between them. All of
 * it lives on the tunnel thread, apart from the counters the metrics
 * read. Not for other modules: they use tun_edge.h. */
#ifndef MERIDIAN_TUN_INT_H
#define MERIDIAN_TUN_INT_H

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

#include "core/core_loop.h"
#include "http/http1_parse.h"
#include "tls/tls.h"
#include "tunnel/tun_edge.h"

struct edge;
#define TICK_MS		  1000
#define HELLO_TIMEOUT_MS  10000
#define PING_IDLE_MS	  15000
#define DEAD_AFTER_MS	  45000
#define MAX_LINKS_PER_TUN 64
/* Connections before their hello is accepted (anyone may open them): past
 * this many the oldest is cut, so unauthenticated peers cannot take the
 * process's descriptors (the workers' too). */
#define MAX_PENDING_HELLOS  256
#define STREAM_WINDOW	    (256u << 10)
#define CONN_WINDOW	    (16u << 20)
#define BRIDGE_IN	    (64u << 10)
#define BRIDGE_BACKLOG	    1024
#define MAX_RESP_HEAD_BYTES (64u << 10)

typedef struct tun_link tun_link;
typedef struct tun_bridge tun_bridge;

typedef struct tun_entry {
	struct tun_entry *next;
	tun_edge *t;
	char id[64];
	core_io lio; /* bridge listener; fd -1 while no link takes streams */
	tun_link *links;
	uint32_t nlinks; /* links in the list (HTTP/2 up) */
	/* What the API shows of the links (tun_edge_conns), kept under
	 * tun_edge.lock as they come and go, so listing them takes no lock
	 * on the request path. */
	tun_edge_conn_info conns[MAX_LINKS_PER_TUN];
	uint32_t nconns;
	uint64_t up_since_ms, down_since_ms; /* wall clock; 0: never */
	tun_bridge *bridges;
	_Atomic uint32_t usable; /* links that take new streams */
	atomic_uint_fast64_t streams, stream_errors;
} tun_entry;

enum link_state { L_HELLO, L_REFUSING, L_H2 };

struct tun_link {
	core_io io;
	tun_edge *t;
	tun_link *prev, *next; /* t->all, or entry->links once up */
	tun_entry *entry;      /* NULL before the hello is accepted */
	tls_conn tls;
	enum link_state state;
	bool can_read, can_write, goaway, closed;
	/* Inside nghttp2 (mem_recv / mem_send): its callbacks must not
	 * send or free the session, so a flush waits for the outer call and
	 * a close is kept in close_why until then. */
	bool busy;
	const char *close_why;
	nghttp2_session *h2;
	char *token; /* the token it joined with: a change closes it */
	char peer[64], name[64];
	char *hello; /* L_HELLO: the request read so far */
	size_t hello_len;
	uint8_t *out; /* bytes not yet taken by TLS */
	size_t outlen, outcap;
	uint32_t streams;
	uint64_t born, last_rx, last_tx;
	uint64_t conn_id; /* this edge's count of accepted connections */
	tun_link *dead_next;
};

enum bridge_state { B_HEAD, B_BODY, B_WAIT };

struct tun_bridge {
	core_io io;
	tun_entry *entry;
	tun_bridge *prev, *next;
	bool can_read, can_write, closed, kicked, flush_queued;
	enum bridge_state state;
	tun_link *link; /* the stream's link (kept after it closes, for
			   the window updates of what is still buffered) */
	int32_t sid;	/* -1: none open */
	/* request */
	char *in;
	size_t inoff, inlen;
	http1_body body;
	uint64_t remaining; /* LENGTH */
	http1_chunked ch;
	bool req_done, deferred, head_req, keep_alive;
	/* A copy of a body-less request's head, to send it again on another
	 * link when a connector refuses the stream unprocessed. */
	char *head;
	size_t head_len;
	uint8_t retries;
	/* response */
	uint8_t *out;
	size_t outoff, outlen, outcap;
	size_t unconsumed; /* DATA bytes in out, not yet given back */
	int status;
	bool head_sent, chunked, has_cl, resp_done, close_after;
	size_t head_start; /* where the response head being built starts */
	tun_bridge *dead_next, *kick_next, *flush_next;
};

typedef struct tun_listener {
	core_io io;
	tun_edge *t;
} tun_listener;

struct tun_edge {
	struct edge *e;
	pthread_t thread;
	core_loop loop;
	core_io stop_io;
	core_timer tick;
	tun_listener *listeners;
	size_t nlisteners;
	pthread_mutex_t lock; /* entries list: the metrics read it */
	tun_entry *entries;
	tun_link *all;	   /* links before their hello is accepted */
	uint32_t npending; /* in `all` */
	tun_link *dead_links;
	tun_bridge *dead_bridges;
	/* Bridges whose input had room made (nghttp2 took body bytes):
	 * read again after the batch (post hook). */
	tun_bridge *kicks;
	/* Bridges with response bytes to write: written once per batch of
	 * frames (tun_bridges_flush), not once per DATA frame. */
	tun_bridge *flushq;
	uint64_t generation; /* of the snapshot the links were checked on */
	bool stopping;
	atomic_uint_fast64_t hellos[TUN_HELLO_NRESULT];
	uint64_t nconn_ids; /* tun_link.conn_id: the thread's count */
	uint8_t rbuf[16384];
};

/* tun_edge.c */
tun_entry *tun_entry_get(tun_edge *t, const char *id);
void tun_entry_update(tun_entry *en);
/* The connection with the fewest streams that takes new ones, other than
 * avoid (NULL: any); the one picked goes to the back of the list, so ties
 * take turns. NULL: none. */
tun_link *tun_pick_link(tun_entry *en, const tun_link *avoid);
void tun_grow(uint8_t **buf, size_t *cap, size_t need);

/* The API's view of the links (tun_edge.c; under tun_edge.lock). */
void tun_conns_add(tun_entry *en, const tun_link *l);
void tun_conns_del(tun_entry *en, const tun_link *l);
void tun_conns_goaway(tun_entry *en, const tun_link *l);

/* tun_link.c */
void tun_link_close(tun_link *l, const char *why);
void tun_link_flush(tun_link *l);
void tun_listener_cb(core_io *io, uint32_t ev);

/* tun_bridge.c */
void tun_bridge_close(tun_bridge *b);
void tun_bridge_flush(tun_bridge *b);
void tun_bridge_process(tun_bridge *b);
void tun_bridge_stream_failed(tun_bridge *b, const char *why);
void tun_bridge_accept_cb(core_io *io, uint32_t ev);
/* Write what the queued bridges hold (after a link's reads, and after
 * every batch). */
void tun_bridges_flush(tun_edge *t);
int tun_h2_on_header(nghttp2_session *s, const nghttp2_frame *f,
		     const uint8_t *name, size_t nlen, const uint8_t *value,
		     size_t vlen, uint8_t flags, void *ud);
int tun_h2_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud);
int tun_h2_on_data(nghttp2_session *s, uint8_t flags, int32_t sid,
		   const uint8_t *data, size_t len, void *ud);
int tun_h2_on_stream_close(nghttp2_session *s, int32_t sid, uint32_t code,
			   void *ud);

#endif
