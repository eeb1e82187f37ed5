/* health_probe.h - one active check of one origin, non-blocking, on a
 * core_loop.
 *
 * Monitor types:
 *   tcp    connect, then close. RTT = connect time.
 *   http   connect, send one request with "Connection: close", read the
 *   https  head and at most HEALTH_BODY_MAX bytes of body, close. https
 *          adds an OpenSSL client handshake before the request. Started
 *          with health_probe_start_idle, both use keep-alive instead (see
 *          below).
 *   smtp   banner 220, EHLO -> 250 (HELO when EHLO gets a 5xx), QUIT -> 221.
 * RTT runs from the probe start (the first connect(), or the request on a
 * reused connection, which so excludes connection setup) to the complete
 * answer (redirects included), in microseconds, and is reported for passed
 * probes only.
 *
 * HTTP details: the request is `<method> <path> HTTP/1.1` with Host (the
 * origin's Host header, else the monitor's Host header, else the origin
 * address, with ":port" when it is not the scheme's default), User-Agent
 * "Meridian-Health-Check/1" (monitor headers cannot replace it, as with
 * Cloudflare), the other monitor headers, "Connection: close", and
 * "Content-Length: 0" for POST, PUT and PATCH. Interim 1xx answers are
 * skipped. With follow_redirects a 301/302/303/307/308 with a Location is
 * followed up to HEALTH_MAX_REDIRECTS times, always to the same origin
 * address and port: only the path (and query) of the Location is used, so
 * a check never connects anywhere else. 303 (and 301/302 after POST) turn
 * the method into GET. The final status must match expected_codes; then
 * expected_body must occur, ASCII case-insensitively, in the first
 * HEALTH_BODY_MAX bytes of the (de-chunked) body.
 *
 * TLS: SNI is the Host override (without port) or the origin address when
 * it is a host name; an IP literal sends no SNI (RFC 6066). Unless
 * allow_insecure, the chain is verified against the system CA store and the
 * name against the SNI name, or the origin IP when there is none. Any TLS
 * failure is HEALTH_TLS_ERROR with OpenSSL's reason as the detail.
 *
 * Keep-alive (http and https with a health_idle slot): the request has no
 * "Connection: close". When the final answer was read exactly (framed by
 * Content-Length or chunked, no byte after it, not cut at HEALTH_BODY_MAX)
 * and the origin allows keep-alive, the connection is parked in the slot
 * (at most ctx->idle_max of them: a quarter of RLIMIT_NOFILE). A parked
 * connection stays registered on the loop, so parking and taking it cost no
 * syscall: while parked, readability, hang-up or an error means the origin
 * closed it (or sent bytes nobody asked for), and it is closed at once; the
 * next check then opens a fresh one. The next check of the origin sends the
 * request on the parked connection at once, so a check on a kept connection
 * is one send and one recv (plus its share of epoll_wait). If the reused
 * connection fails before the first response byte (EOF, RST, EPIPE: the
 * close crossed the request), the probe goes on with a fresh connection, so
 * the result is what a fresh check gives; monitor.timeout covers both.
 * Redirect hops use fresh connections. The slot also keeps the request
 * head of the monitor's method and path, built at the first check (the
 * monitor and origin of a slot never change), so a check formats nothing.
 *
 * https keep-alive: a kept TLS connection stays on epoll (never on the
 * ring: OpenSSL reads the socket). While parked, a readable socket may be
 * a TLS 1.3 session ticket, which is taken in; any application data, a
 * close_notify or an error closes the connection. When a TLS connection
 * closes, its session (if resumable) stays in the slot and the next
 * handshake offers it, so a reconnect costs a resumption, not a full
 * handshake with certificate verification. A resumption verifies no
 * certificate, so neither a kept connection nor a session is used more
 * than HEALTH_TLS_REVERIFY_MS after the last full handshake, nor (unless
 * allow_insecure) once a certificate of the chain it verified has
 * expired: the next check then makes a full handshake and reports what is
 * wrong with the certificate now (expired, replaced by an untrusted one),
 * as a new data-plane connection would see it. A handshake that fails or
 * times out forgets the session. Idle TLS connections release OpenSSL's record
 * buffers.
 *
 * io_uring: when the loop has a ring (core_ring.h), a connection is moved
 * off epoll onto the ring when it is first parked. From then on it always
 * has a multishot receive armed (into the ring's provided buffers), and a
 * check is one send queued on the ring: both the send and the answer's
 * arrival share the loop's one io_uring_enter per batch with every other
 * check of that batch, where epoll costs a send, a recv and a share of
 * epoll_wait each. The answer's bytes are copied into the probe's buffer
 * and parsed as on the epoll path. A receive that completes while the
 * connection is parked (bytes, EOF, error) closes it, as an epoll event
 * does. The ring's bookkeeping (health_rconn) belongs to the ctx and
 * outlives the idle slot until the kernel has finished with it: closing
 * a ring connection cancels its receive and submits the cancel before
 * the close, so no queued entry ever meets a reused descriptor number.
 *
 * A check that has read its answer closes with an RST (SO_LINGER 0) unless
 * the peer closed first: at 10,000 checks a second the checker would
 * otherwise hold tens of thousands of TIME_WAIT sockets (HAProxy does the
 * same for its checks).
 *
 * Threading: a health_probe_ctx and its probes belong to the thread that
 * runs the loop.
 */
#ifndef MERIDIAN_HEALTH_PROBE_H
#define MERIDIAN_HEALTH_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/cfg_model.h"
#include "core/core_buf.h"
#include "core/core_loop.h"
#include "health/health_fsm.h"
#include "http/http1_parse.h"

#define HEALTH_BODY_MAX	     10240 /* body bytes read and searched */
#define HEALTH_MAX_REDIRECTS 5
#define HEALTH_PATH_MAX	     1024 /* request target, after redirects */
#define HEALTH_USER_AGENT    "Meridian-Health-Check/1"
/* A kept TLS connection or session is used for at most this long after
 * the full handshake that verified the origin's certificates. */
#define HEALTH_TLS_REVERIFY_MS (3600 * 1000)

struct ssl_st;	   /* OpenSSL's SSL, kept out of this header */
struct tls_client; /* tls/tls.h: the client settings of an SSL_CTX */

/* Per-thread state shared by the probes of one loop. */
typedef struct health_probe_ctx {
	core_loop *loop;
	core_buf_pool bufs; /* one buffer per running probe */
	/* Created on the first https probe: verifying, and allow_insecure. */
	struct tls_client *tls_verify, *tls_insecure;
	/* Verifying against a pool's origin_tls.ca: one per CA file. */
	struct health_ca_ctx *tls_cas;
	http1_response resp;	   /* scratch: heads are parsed one at a time */
	char ehlo_name[64];	   /* this host's name for EHLO/HELO */
	uint32_t nidle, idle_max;  /* parked keep-alive connections */
	uint64_t nconnect, nreuse; /* connections opened, checks on kept ones */
	uint64_t nring;		   /* of nreuse: checks sent through the ring */
	/* Kept connections on the loop's io_uring (see below): every one
	 * made (freed with the ctx), and the unused ones. */
	struct health_rconn *rc_all, *rc_free;
} health_probe_ctx;

/* What a plain http check of one origin keeps between checks: its
 * keep-alive connection (io.fd -1 when there is none) and its request head.
 * Owned by the caller (one per origin, for one monitor and one origin that
 * never change: the request is built once), initialised with
 * HEALTH_IDLE_INIT, released with health_idle_destroy. The connection is on
 * the loop while open, parked or not. */
typedef struct health_idle {
	core_io io;
	struct health_probe *user; /* the probe using io, NULL while parked */
	struct health_probe_ctx *ctx; /* set at the first use */
	char *req; /* the request head, built at the first use */
	uint32_t req_len;
	/* Set while the connection is served by the loop's io_uring
	 * rather than epoll. */
	struct health_rconn *rc;
	/* https: the parked connection's TLS state (the probe holds it
	 * while a check runs), and the session to resume after a close. */
	struct ssl_st *ssl;
	struct ssl_session_st *sess;
	/* Limits of the last full handshake: ssl and sess serve checks
	 * until tls_reverify_at (loop time, HEALTH_TLS_REVERIFY_MS after it)
	 * and, when verifying, until tls_trust_until (wall-clock ms: the
	 * first notAfter of the chain it verified). */
	uint64_t tls_reverify_at;
	uint64_t tls_trust_until;
	int64_t tls_not_after; /* health_result.tls_not_after, carried on */
} health_idle;
#define HEALTH_IDLE_INIT                                                       \
	{                                                                      \
		.io = {.fd = -1 }                                              \
	}

typedef struct health_probe health_probe;
typedef void (*health_probe_cb)(health_probe *p, const health_result *r);

/* One probe. The owner allocates it (arrays of them are fine) and keeps it
 * in place while it runs. Fields other than `arg` are private. */
struct health_probe {
	void *arg;	  /* the owner's; set by health_probe_start */
	core_io io;	  /* the connection when there is no idle slot */
	core_io *conn;	  /* the connection: &io or &idle->io */
	core_timer timer; /* the monitor's timeout; also defers early errors */
	health_probe_ctx *ctx;
	const cfg_monitor *mon;
	const cfg_origin *origin;
	health_probe_cb cb;
	struct ssl_st *ssl;
	health_idle *idle; /* where to park the connection, or NULL */
	core_buf *buf;
	struct sockaddr_storage ss; /* the origin, with monitor.port applied */
	socklen_t sslen;
	uint64_t t0_us;
	uint64_t body_left; /* Content-Length bytes still to come */
	http1_chunked chunk;
	const char *method;
	const char *wbuf; /* bytes being sent: [wpos, wlen) */
	uint32_t wpos, wlen;
	uint32_t body_len; /* de-chunked body bytes kept at buf->data */
	uint8_t phase;
	uint8_t framing; /* http1_body */
	uint8_t redirects;
	uint8_t smtp_step;
	bool in_chunk_data;
	bool eof; /* the peer closed: a plain close leaves no TIME_WAIT */
	bool running;
	bool reused;   /* the connection came from idle: retry on early fail */
	bool parkable; /* the answer was read exactly and may be parked */
	bool peer_ka;  /* the final head allows keep-alive */
	health_result res;
	char path[HEALTH_PATH_MAX];
	char smtp_out[96];
};

/* Returns 0 (cannot fail today; the TLS contexts are made lazily). */
int health_probe_ctx_init(health_probe_ctx *c, core_loop *loop);
/* Only once no probe of this ctx is running. */
void health_probe_ctx_destroy(health_probe_ctx *c);

/* Start a probe of origin o with monitor m (both must outlive it). The
 * result comes exactly once through cb, always from a loop callback and
 * never from inside this call, at the latest monitor.timeout after the
 * start. After cb the probe is idle and may be started again, but only
 * from a timer or the loop's post hook (not from inside cb). */
void health_probe_start(health_probe *p, health_probe_ctx *c,
			const cfg_monitor *m, const cfg_origin *o,
			health_probe_cb cb, void *arg);
/* The same, with keep-alive for http and https monitors: a connection parked
 * in *idle by the previous check is reused, and the connection is parked
 * there again when the answer was read completely and the origin keeps it
 * open. idle may be NULL (no keep-alive); one idle slot serves one probe at
 * a time, always with the same m and o. */
void health_probe_start_idle(health_probe *p, health_probe_ctx *c,
			     const cfg_monitor *m, const cfg_origin *o,
			     health_idle *idle, health_probe_cb cb, void *arg);
/* Close a parked connection (no-op when there is none). No probe may be
 * running on k. */
void health_idle_close(health_probe_ctx *c, health_idle *k);
/* health_idle_close, and free the cached request and TLS session: k is
 * back to HEALTH_IDLE_INIT. */
void health_idle_destroy(health_probe_ctx *c, health_idle *k);
/* Stop a running probe without calling cb (shutdown); no-op when idle. */
void health_probe_cancel(health_probe *p);

/* TLS handshakes made by https checks in this process: full ones and
 * resumed ones (a session kept from the previous connection). */
void health_probe_tls_counts(uint64_t *full, uint64_t *resumed);

static inline bool health_probe_running(const health_probe *p)
{
	return p->running;
}

/* ---- pure helpers, exported for the unit tests ---- */

/* The Host header value a check sends. Returns its length, or -ENOSPC. */
int health_http_host(const cfg_monitor *m, const cfg_origin *o, char *buf,
		     size_t size);
/* The TLS server name: Host override without port (nor trailing dot), or
 * the origin address if it is a host name. Returns false when there is
 * none (an IP). */
bool health_tls_name(const cfg_monitor *m, const cfg_origin *o, char *buf,
		     size_t size);
/* The request head. Returns its length, or -ENOSPC. */
int health_http_request(const cfg_monitor *m, const cfg_origin *o,
			const char *method, const char *path, char *out,
			size_t size);
/* The path to request after a redirect to `loc` (len bytes) from cur:
 * absolute URLs and "//host/..." keep only their path and query, relative
 * references resolve against cur's directory, fragments are dropped.
 * Returns the length, -EINVAL (not http(s), bad characters) or -ENOSPC. */
int health_redirect_path(const char *loc, size_t len, const char *cur,
			 char *out, size_t size);
/* ASCII case-insensitive substring search; an empty needle matches. */
bool health_body_contains(const char *hay, size_t n, const char *needle);
/* A complete SMTP reply (one or more "ddd-" lines and a final "ddd " line,
 * CRLF or LF) at the start of buf: returns its length and the code of its
 * final line, 0 when incomplete, -1 when malformed. */
int health_smtp_reply(const char *buf, size_t len, int *code);

#endif
