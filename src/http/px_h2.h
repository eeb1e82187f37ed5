/* px_h2.h - HTTP/2 client connections in the proxy (px_h2.c), private to
 * src/http.
 *
 * A TLS client that negotiates ALPN h2 becomes a connection in state PX_H2
 * holding an h2_session. Every request stream is a px_client of its own
 * (a "stream client": no socket, `h2s` set) that runs the ordinary HTTP/1.1
 * exchange of px_conn.c -- routing, steering, affinity, retries, upstream
 * pools, timeouts, metrics -- on bytes the stream provides:
 *   - client_read() gives the HTTP/1.1 head built by h2_req_to_h1, then
 *     the DATA received (chunk-framed when the length is unknown);
 *   - client_write2() takes the HTTP/1.1 response px_conn would send (its
 *     heads and framed body) and turns it into HEADERS, DATA and trailers.
 * So the h2 layer adds translation, never a second proxy. See
 * docs/ARCHITECTURE.md "HTTP/2 in the proxy".
 */
#ifndef MERIDIAN_PX_H2_H
#define MERIDIAN_PX_H2_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/px.h"

struct px_resp_edit;

/* --- px_h2.c, called by px_conn.c -------------------------------------- */

/* ALPN chose h2 after the handshake of connection cl: start the session
 * (state PX_H2). Returns 0 or -ENOMEM. */
int px_h2_start(px_client *cl);
/* One step of a PX_H2 connection (pump): run its streams, write, read.
 * Returns progress. May close cl. */
bool px_h2_step(px_client *cl);
/* client_read / client_write2 of a stream client (contracts of read_into
 * and write2 in px_conn.c). */
ssize_t px_h2_read(px_client *sc, core_buf *b);
ssize_t px_h2_write2(px_client *sc, core_buf *a, uint32_t alen, core_buf *b,
		     uint32_t blen);
/* The origin's response head for stream client sc, straight to HEADERS
 * (1xx: interim), with the edge's changes (ed: fields left out, lines
 * "Name: value\r\n" added as fields; NULL: none). Returns 0 or a
 * negative code. */
int px_h2_respond(px_client *sc, const http1_response *resp,
		  const struct px_resp_edit *ed);
/* The stream client sc is closing (its exchange ended or failed). */
void px_h2_stream_closed(px_client *sc);
/* The connection cl is closing: close its streams, free the session. */
void px_h2_conn_closed(px_client *cl);
/* A stream client of connection conn was pumped: the session may have
 * frames to write. */
void px_h2_poke(px_client *conn);
/* Timer of a PX_H2 connection: the deadline to arm (0: none), and what to
 * do when it passes. */
uint64_t px_h2_deadline(const px_client *cl);
void px_h2_timeout(px_client *cl);
/* Drain: GOAWAY, let the live streams finish, then close. */
void px_h2_drain(px_client *cl);
/* Worker exit: the scratch and the dirty list. */
void px_h2_worker_done(edge_worker *w);

/* --- px_conn.c, called by px_h2.c -------------------------------------- */

void px_pump(px_client *cl);
/* The connection's own (TLS) read and write. */
ssize_t px_conn_read(px_client *cl, core_buf *b);
ssize_t px_conn_write(px_client *cl, core_buf *a, uint32_t alen);
void px_client_close(px_client *cl);
/* A stream client of connection conn, in PX_HEAD with nothing buffered. */
px_client *px_stream_new(px_client *conn);
/* A response of our own (local_response). */
void px_local(px_client *cl, int status, const char *detail, bool close);

#endif
