/* edge.h - the edge process: runtime snapshot, workers, drain.
 *
 * One `edge` per process. Each `edge_worker` is a thread with its own loop,
 * listeners, buffers, connection free lists and upstream idle pools; see
 * docs/ARCHITECTURE.md.
 */
#ifndef MERIDIAN_EDGE_H
#define MERIDIAN_EDGE_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/cfg_model.h"
#include "core/core_buf.h"
#include "core/core_loop.h"
#include "dns/dns_zone.h"
#include "http/http1_parse.h"
#include "geo/geo.h"
#include "lb/lb_affinity.h"
#include "lb/lb_passive.h"
#include "lb/lb_route.h"
#include "lb/lb_state.h"

typedef struct px_client px_client;
typedef struct px_upstream px_upstream;
typedef struct edge edge;
typedef struct edge_worker edge_worker;
typedef struct edge_dns edge_dns; /* edge_dns.c: a worker's DNS state */

/* What the data plane derives from one config snapshot. Immutable, and
 * reference counted: the edge holds one reference to the current snapshot,
 * each worker one to the snapshot it serves new requests with, and each
 * client connection one to the snapshot its current request started on.
 * Whoever drops the last reference frees it (see "Live changes" in
 * docs/ARCHITECTURE.md). */
typedef struct edge_snapshot {
	atomic_uint refs;
	uint64_t generation; /* 1 for the first snapshot, +1 per swap */
	cfg_snapshot *cfg;
	lb_router *router;
	http1_limits req_limits;  /* from edge.limits */
	http1_limits resp_limits; /* origin heads: bounded by the buffer */
	/* Live state by cfg_origin.index / cfg_pool.index. Mutable (atomics):
	 * the one part of a snapshot that is not read-only. */
	lb_origin_state *ostates;
	lb_pool_state *pstates;
	geo_db *geo;		       /* client location (NULL: none) */
	lb_affinity_secret aff_secret; /* keys session affinity cookies */
	dns_zoneset *zones; /* DNS data, built once per snapshot (issue 4) */
	struct edge_stats *stats; /* request counters per worker (/metrics) */
	/* edge.tls for the https listeners (NULL: none). Built with the
	 * previous snapshot's as `prev`, so session tickets survive reloads;
	 * each TLS connection holds its own reference (tls.h). */
	struct tls_server *tls;
	/* By cfg_origin.index: the TLS client of an origin reached over TLS
	 * (cfg_origin.tls), NULL for plain ones. */
	struct tls_client **otls;
	/* By cfg_rate_limit.index: the rule's counts (sec_ratelimit.h),
	 * handed on from the previous snapshot while the rule keeps its name
	 * and what it counts (edge_snapshot.c). */
	struct sec_rl **rl;
	/* By cfg_rate_limit.index: its rate, worked out once (a division a
	 * request need not do). */
	struct sec_rl_rate *rl_rate;
	/* waf.managed's rule set (waf.h), NULL when off: shared by the
	 * workers, handed on from the previous snapshot by an API write that
	 * leaves waf.managed as it was (a reload reads the files again). */
	struct waf_rules *waf;
	/* Set when a swap replaces this snapshot: requests that finish on it
	 * afterwards are still counted, and its last unref carries them into
	 * the edge's current snapshot (edge_stats_carry). */
	struct edge *retire_into;
} edge_snapshot;

typedef struct edge_listener {
	core_io io;
	edge_worker *w;
	bool tls; /* edge.listen.https */
} edge_listener;

/* Per-origin idle upstream connections of one worker (LIFO list). */
typedef struct edge_idle_list {
	px_upstream *head;
	uint32_t count;
	/* TLS origins: the last session to resume new connections with. */
	struct ssl_session_st *sess;
} edge_idle_list;

struct edge_worker {
	edge *e;
	uint32_t id;
	pthread_t thread;
	core_loop loop;
	core_buf_pool bufs;
	const edge_snapshot *snap;
	edge_listener *listeners;
	size_t nlisteners;
	core_io wake_io; /* eventfd: drain requests from the main thread */
	core_timer drain_timer;
	core_timer accept_retry; /* after EMFILE and friends */
	core_timer tls_rotate;	 /* worker 0: session ticket key rotation */
	bool draining;
	uint64_t rng;
	lb_retry_budget retry_budget;
	/* Request ids (edge.request_id_header): a count (unique in the
	 * worker) masked by a random value, and SipHash of the count under a
	 * random key (not guessable from other ids); no random draw per
	 * request. */
	uint64_t req_id_seq;
	struct {
		uint8_t key[16];
		uint64_t mask;
	} req_id;

	px_client *clients; /* live clients, doubly linked (drain walks it) */
	uint32_t nclients;
	px_client *free_clients, *dead_clients;
	px_upstream *free_upstreams, *dead_upstreams;
	edge_idle_list *idle; /* [snap->cfg->norigins] */

	/* Scratch for the head being parsed: valid only inside one call. */
	http1_request req;
	http1_response resp;
	char overload[512]; /* canned 503 beyond max_connections */
	int overload_len;
	int start_err; /* set when the thread failed to start */
	/* A snapshot handed over by edge_swap_publish with a reference for
	 * this worker; taken (exchanged with NULL) by the worker when woken. */
	edge_snapshot *_Atomic pending;
	edge_dns *dns; /* DNS listeners (edge_dns.c), NULL without */
	/* This worker's ModSecurity engine (waf.h), made on the first
	 * request the managed rules see. */
	struct waf_engine *waf;
	_Atomic uint32_t idle_upstreams; /* gauge for /metrics (this worker) */
	/* HTTP/2 connections with work to do after this batch (px_h2.c),
	 * and the worker's scratch for translating response heads. */
	px_client *h2_dirty;
	struct px_h2_scratch *h2_scratch;
	/* What conditions (rules, rate limits) read of the current request:
	 * its path normalized (http_norm.h) with the query, and its host in
	 * lower case (px_conn.c expr_input). */
	char norm_target[8192];
	char norm_host[256];
};

struct edge {
	/* The current snapshot. Written by edge_swap() (under swap_lock),
	 * read by workers when woken (acquire). */
	edge_snapshot *_Atomic snap;
	pthread_mutex_t swap_lock;
	/* Serialises every counter carry into a snapshot's base and the
	 * publication of a new current snapshot (edge_swap_publish, and the
	 * last unref of a replaced snapshot), so no count lands in a base
	 * that was already carried on. Never held while taking swap_lock. */
	pthread_mutex_t carry_lock;
	struct edge_health *health; /* health thread + notifier */
	struct edge_ctl *ctl;	    /* config sources, store (edge_ctl.h) */
	uint32_t nworkers;
	edge_worker *workers;
	uint32_t buf_size;
	atomic_uint nconns; /* edge-wide client connections */
	atomic_bool draining;
	atomic_bool drain_now;	/* a second SIGINT: close everything now */
	struct edge_alog *alog; /* JSON access log (edge_alog.h), NULL: off */
	/* DNS response rate limiting, shared by the workers (dns_rrl.h);
	 * made when DNS listeners exist, used while
	 * edge.dns_rate_limit.responses_per_second > 0. */
	struct dns_rrl *dns_rrl;
	/* Open connections per client network (sec_conns.h), for
	 * edge.limits.max_connections_per_client; sized at start from
	 * max_connections. */
	struct sec_conns *conns;
	/* The tunnel endpoint (tun_edge.h); NULL without edge.listen.tunnel. */
	struct tun_edge *tunnels;
	/* Connections refused at accept: over max_connections, over
	 * max_connections_per_client; and connections let through untracked
	 * because the per-client table had no room. */
	atomic_uint_fast64_t refused_max, refused_per_client, untracked;
};

/* Build the data plane's view of a config snapshot (takes ownership of cfg
 * on success), with counter blocks for nworkers workers (edge_stats.h).
 * prev is the snapshot this one replaces (NULL: the first): its TLS session
 * ticket keys carry over. keep_certs: when edge.tls is the same as prev's,
 * serve prev's certificates (a reference to its tls_server) instead of
 * reading the files again; API object writes and the resolver's rebuilds
 * do, so a renewal half-written on disk cannot fail them, and only SIGHUP
 * and the certificate reload read certificates. NULL with err set when e.g.
 * the geo database or a certificate cannot be opened. */
edge_snapshot *edge_snapshot_new(cfg_snapshot *cfg, const edge_snapshot *prev,
				 bool keep_certs, uint32_t buf_size,
				 uint32_t nworkers, char *err, size_t errlen);
void edge_snapshot_ref(const edge_snapshot *s);
/* Drop a reference; the last one frees the snapshot. */
void edge_snapshot_unref(const edge_snapshot *s);
/* The current snapshot, for threads other than the workers. The caller
 * must hold e->swap_lock or be the only thread that swaps. */
static inline edge_snapshot *edge_current(edge *e)
{
	return atomic_load_explicit(&e->snap, memory_order_acquire);
}

/* A reference to the current snapshot, for threads other than the workers
 * (admin, API): release it with edge_snapshot_unref. */
const edge_snapshot *edge_acquire(edge *e);

/* A swap in two steps, so a caller can commit elsewhere in between (the
 * API commits to the store only what will run): prepare refuses what needs
 * a restart or breaks the API's token rule, and builds the snapshot (takes
 * cfg in every case; NULL with err set on failure, nothing changed);
 * publish cannot fail: it carries the health state and counters over,
 * restarts the health checks, publishes, and hands each worker its
 * reference. Callers serialise swaps (edge_ctl's lock). */
edge_snapshot *edge_swap_prepare(edge *e, cfg_snapshot *cfg, bool keep_certs,
				 char *err, size_t errlen);
void edge_swap_publish(edge *e, edge_snapshot *next);

/* The API's rule, checked at start-up (edge_admin_start, and by `meridian
 * check`) and on every change: true when the admin listener is not on
 * loopback and no token is configured (api.tokens, MERIDIAN_API_TOKEN). */
bool edge_api_unguarded(const cfg_snapshot *cfg);

/* Swap in a new configuration (SIGHUP, API): builds its snapshot, keeps the
 * health and counters of unchanged origins, restarts the health checks on
 * it, publishes it and wakes the workers. Takes ownership of cfg in every
 * case. Returns 0, or -1 with err set (the running config stays) when cfg
 * needs what only a restart gives (other listeners, workers, buffers). */
int edge_swap(edge *e, cfg_snapshot *cfg, bool keep_certs, char *err,
	      size_t errlen);

/* Block the signals the edge handles through its signalfd (SIGTERM,
 * SIGINT, SIGHUP, SIGUSR1) in the calling thread, and give their set.
 * Threads created afterwards inherit the mask. */
void edge_signals_block(sigset_t *sigs);

/* Run an edge until SIGTERM/SIGINT has drained it. Returns the exit status.
 * cfg is the config ctl built (edge_ctl_open); both are owned from here.
 * When ready_cb is set it is called once every worker listens. SIGTERM,
 * SIGINT, SIGHUP and SIGUSR1 are blocked in the calling thread from the
 * start and stay blocked after it returns (whatever came late stays
 * pending instead of killing the process): exit soon after. */
int edge_run(struct edge_ctl *ctl, cfg_snapshot *cfg, void (*ready_cb)(void *),
	     void *arg);

/* Worker internals used by the proxy. */
void edge_worker_close_listeners(edge_worker *w);

#endif
