/* demo_origin.h - the demo/test origin server.
 *
 * A small, fast HTTP/1.1 origin used by `meridian origin`, by `meridian demo`
 * (in-process, on its own threads) and by the integration tests and the
 * benchmark. One epoll loop per thread, each with its own SO_REUSEPORT
 * listener; keep-alive and pipelining; no allocation per request.
 *
 * Endpoints (any method unless noted; HEAD gets the same head, no body):
 *   /healthz        200 "ok\n"
 *   /echo           200, the request head exactly as received (request line,
 *                   header lines, empty line) then "body-length: N\r\n" and
 *                   "body-adler32: HEX\r\n" for the body it received
 *   /bytes/N        N pattern bytes with Content-Length
 *   /chunked/N      N pattern bytes, chunked, several chunks, one trailer
 *   /eof/N          N pattern bytes, no framing, connection closed after
 *   /upload         POST/PUT: reads the body (CL or chunked), answers
 *                   "length N\nadler32 HEX\n" (zlib's Adler-32)
 *   /status/CODE    that status (200..599) with a short body
 *   /sleep/MS       answers 200 after MS milliseconds (timer, not blocking)
 *   /close          answers with Connection: close, then closes
 *   /reset          closes with an RST, without answering
 *   /ws             with Upgrade: answers 101 (Sec-WebSocket-Accept when a
 *                   Sec-WebSocket-Key is given), then echoes raw bytes
 *   /count          "requests N\nerrors M\nconnections C\nopen K\n":
 *                   requests answered and heads rejected so far,
 *                   connections that carried a request, and how many of
 *                   those are open now (/count itself is never counted)
 *   anything else   200 text/plain "<cloud> <name>\n", X-Origin: <name>
 * Pattern byte i of a body is (i % 251). "Expect: 100-continue" gets a
 * "100 Continue" before the body is read.
 */
#ifndef MERIDIAN_DEMO_ORIGIN_H
#define MERIDIAN_DEMO_ORIGIN_H

#include <stdint.h>

typedef struct demo_origin demo_origin;

/* Start an origin listening on listen_addr ("127.0.0.1:0", "[::1]:9001";
 * port 0 picks an ephemeral port) with one thread. cloud and name appear in
 * the demo answer (at most 64 bytes each, token characters). Returns 0 and
 * *out, or a negative errno. */
int demo_origin_start(const char *listen_addr, const char *cloud,
		      const char *name, demo_origin **out);

/* Same with nthreads event loops (1..64). */
int demo_origin_start_n(const char *listen_addr, const char *cloud,
			const char *name, int nthreads, demo_origin **out);

/* The bound port (useful after port 0). */
uint16_t demo_origin_port(const demo_origin *o);

/* Requests answered so far (all threads). */
uint64_t demo_origin_requests(const demo_origin *o);

/* Stop every thread, close every connection, free. NULL is a no-op. */
void demo_origin_stop(demo_origin *o);

#endif
