/* h2_session.h - server-side HTTP/2 session over nghttp2, driven by byte
 * buffers (no I/O of its own).
 *
 * The caller feeds bytes read from the client (after TLS) with
 * h2_session_recv() and pulls bytes to write with h2_session_send(). Valid
 * requests reach the caller through h2_callbacks; malformed ones are
 * answered here (RST_STREAM PROTOCOL_ERROR, 431 for a header list over the
 * limit, 405 for CONNECT) and never reach it.
 *
 * Flow control is explicit: DATA delivered by on_data counts against the
 * client's windows until the caller calls h2_session_consume() (when the
 * bytes left for the origin), so a slow origin slows the client down.
 *
 * Attack limits (see docs/ARCHITECTURE.md "HTTP/2"): rapid reset, PING,
 * SETTINGS and empty-frame floods are counted per window and answered with
 * GOAWAY ENHANCE_YOUR_CALM; CONTINUATION floods, HPACK bombs and oversized
 * header lists are bounded; h2_session_stalled_ms() reports a client that
 * keeps its window shut.
 *
 * A session belongs to one thread. Return convention: a count or 0 on
 * success, a negative errno-style code on failure.
 */
#ifndef MERIDIAN_H2_SESSION_H
#define MERIDIAN_H2_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "h2/h2_req.h"

typedef struct h2_session h2_session;

typedef struct h2_settings {
	uint32_t max_concurrent_streams; /* 100 */
	uint32_t initial_window;	 /* per stream, 256 KiB */
	uint32_t conn_window;		 /* connection receive window, 1 MiB */
	uint32_t max_header_list;   /* 16 KiB (edge.limits.max_header_bytes) */
	uint32_t max_frame_size;    /* 16 KiB */
	uint32_t header_table_size; /* HPACK dynamic table, 4096 */
	uint32_t max_continuations; /* per header block, 8 */
	uint32_t flood_window_ms;   /* counting window, 10 s */
	uint32_t max_resets;   /* client resets of live streams / window, 200 */
	uint32_t max_pings;    /* PING frames / window, 50 */
	uint32_t max_settings; /* SETTINGS frames / window, 50 */
	uint32_t max_empty_frames; /* empty DATA / window, 100 */
	uint32_t max_outbound_ack; /* queued PING/SETTINGS ACKs, 100 */
	/* DATA holds its stream's window until h2_session_consume(). The
	 * connection window is reopened as DATA arrives while the session
	 * holds at most conn_reopen_max bytes not consumed (3 MiB); beyond
	 * that it too waits for the consume. So a few streams whose origin
	 * does not read (each held to its stream window) do not shut the
	 * connection window for the others, and a session holds at most
	 * conn_reopen_max + conn_window bytes. 0: the connection window
	 * always waits for the consume. */
	uint32_t conn_reopen_max;
	/* true: no such bound (conn_reopen_max unused): a peer that
	 * multiplexes many clients, the tunnel's edge; memory stays bounded
	 * by the stream windows. */
	bool stream_window_only;
} h2_settings;

void h2_settings_default(h2_settings *st);

/* RST_STREAM / GOAWAY codes used by the caller. */
enum {
	H2_NO_ERROR = 0x0,
	H2_PROTOCOL_ERROR = 0x1,
	H2_INTERNAL_ERROR = 0x2,
	H2_REFUSED_STREAM = 0x7,
	H2_CANCEL = 0x8,
	H2_ENHANCE_YOUR_CALM = 0xb,
};

/* read_body return: no data now; call h2_session_resume() later. */
#define H2_DEFERRED (-EAGAIN)

typedef struct h2_callbacks {
	/* A request head, complete and valid. *sud: the caller's pointer
	 * for this stream, passed to every later callback. Non-zero return
	 * resets the stream (INTERNAL_ERROR). */
	int (*on_request)(void *ud, int32_t sid, const h2_req *req, void **sud);
	/* Request body bytes; they hold flow-control window until
	 * h2_session_consume(). */
	int (*on_data)(void *ud, int32_t sid, void *sud, const uint8_t *p,
		       size_t len);
	/* The request is complete (always called once, after on_request,
	 * also for a request without body); trailers, if any. */
	int (*on_request_end)(void *ud, int32_t sid, void *sud,
			      const h2_field *trailers, size_t n);
	/* The stream is closed (error_code 0: normally; else reset by
	 * either side). Last callback for this stream. */
	void (*on_close)(void *ud, int32_t sid, void *sud, uint32_t error_code);
	/* A stream the edge refused before on_request, now closed: status
	 * 431 (header list too large), 405 (CONNECT), 400 (malformed: reset
	 * with PROTOCOL_ERROR, by us or by nghttp2). Once per stream. */
	void (*on_refused)(void *ud, int status);
	/* RST_STREAM REFUSED_STREAM went out (a stream over
	 * max_concurrent_streams, refused by nghttp2 or by us). */
	void (*on_refused_stream)(void *ud);
	/* Response body: copy up to len bytes, set *eof at the end. Return
	 * a count, or H2_DEFERRED when the origin has sent nothing more. */
	ssize_t (*read_body)(void *ud, int32_t sid, void *sud, uint8_t *buf,
			     size_t len, bool *eof);
	/* Monotonic clock in ms; NULL: core_now_ms. */
	uint64_t (*now_ms)(void *ud);
} h2_callbacks;

int h2_session_new(const h2_settings *st, const h2_callbacks *cb, void *ud,
		   h2_session **out);
void h2_session_free(h2_session *s);

/* Feed received bytes. Returns len, or a negative code on a connection
 * error (a GOAWAY may be queued: h2_session_send() it, then close). */
ssize_t h2_session_recv(h2_session *s, const uint8_t *buf, size_t len);
/* Copy up to cap bytes to write to the client; 0 when nothing is pending. */
ssize_t h2_session_send(h2_session *s, uint8_t *buf, size_t cap);
bool h2_session_want_write(const h2_session *s);
/* Nothing left to read or write: the caller closes the connection. */
bool h2_session_done(const h2_session *s);

/* Response head: status and fields already HTTP/2-shaped (h2_resp_fields).
 * has_body: the body comes from read_body. */
int h2_session_respond(h2_session *s, int32_t sid, int status,
		       const h2_field *f, size_t n, bool has_body);
/* An informational (1xx) response before the final one: 100 Continue,
 * 103 Early Hints. Fields as for h2_session_respond. -ENOBUFS when the
 * peer has not taken what is queued (H2_INTERIM_QUEUE_MAX frames or
 * more): HEADERS are not flow-controlled, so a peer that does not read
 * must not make the session hold every 1xx an upstream sends. */
#define H2_INTERIM_QUEUE_MAX 256
int h2_session_interim(h2_session *s, int32_t sid, int status,
		       const h2_field *f, size_t n);
/* More body is available after read_body returned H2_DEFERRED. */
int h2_session_resume(h2_session *s, int32_t sid);
/* Response trailers: sent after the body, once read_body reports eof.
 * Call before that eof. Copied. */
int h2_session_trailers(h2_session *s, int32_t sid, const h2_field *f,
			size_t n);
int h2_session_rst(h2_session *s, int32_t sid, uint32_t code);
/* The caller is done with n request body bytes: reopen the stream's
 * window, and the connection's as far as it still waits for them (see
 * conn_reopen_max). */
int h2_session_consume(h2_session *s, int32_t sid, size_t n);
/* ... all the stream's request bytes not consumed yet (the caller drops
 * them). */
int h2_session_consume_all(h2_session *s, int32_t sid);
/* Graceful drain: GOAWAY with the last stream id; live streams finish. */
int h2_session_drain(h2_session *s);
/* Queue a PING (liveness: the tunnel connector sends one when it has
 * sent nothing else for a while; the peer's ACK is a frame received). */
int h2_session_ping(h2_session *s);

/* How long (ms) response data has been waiting on a flow-control window
 * the client keeps at zero; 0 when not stalled. */
uint64_t h2_session_stalled_ms(const h2_session *s);
/* The stream whose response data has waited longest on its own window
 * (the connection's open), in *sid, and for how long; 0 when none. */
uint64_t h2_session_stalled_stream(const h2_session *s, int32_t *sid);
/* A header block left unfinished (no END_HEADERS yet): the time (ms,
 * the session's clock) its HEADERS frame came; 0 when none. The caller
 * bounds it like an HTTP/1.1 head (client_header timeout). */
uint64_t h2_session_header_wait_since(const h2_session *s);
/* Why the session sent a GOAWAY with an error, or NULL. */
const char *h2_session_error(const h2_session *s);
/* The same, as a kind for counting (the text is for logs). */
typedef enum h2_error_kind {
	H2_ERR_NONE = 0,
	H2_ERR_PROTOCOL,    /* any other connection error */
	H2_ERR_RAPID_RESET, /* too many streams reset by the client */
	H2_ERR_FLOOD,	    /* PING, SETTINGS, empty-frame or control floods */
} h2_error_kind;
h2_error_kind h2_session_error_kind(const h2_session *s);
/* Streams in progress: not those answered whose request body is being
 * read and dropped (lingering, at most H2_LINGER_BYTES each). */
size_t h2_session_streams(const h2_session *s);
#define H2_LINGER_BYTES (1u << 20)

#endif
