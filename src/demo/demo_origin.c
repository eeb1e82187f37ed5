/* demo_origin.c - the demo/test origin server; see demo_origin.h.
 *
 * Each worker thread owns an edge-triggered epoll loop and its own
 * SO_REUSEPORT listener. A connection has one fixed input and one fixed
 * output buffer and walks a small state machine per request:
 *
 *   HEAD -> BODY -> [SLEEP] -> RESPOND -> GEN -> HEAD (keep-alive) | DONE
 *                                     \-> TUNNEL (after 101)
 *   DONE: flush, then a lingering close (shutdown + drain, bounded) or an RST.
 *
 * Readiness is recorded per connection (readable/writable) and I/O is tried
 * only while it is set; a short read or write clears it (the next edge sets
 * it again). A connection that used up its work budget goes on the ready list
 * so one big transfer cannot starve the others. Timers (/sleep, lingering
 * close) are a sorted list: there are few of them.
 */
#include "demo/demo_origin.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core_sock.h"
#include "core/core_util.h"
#include "http/http1_parse.h"

#define IN_SIZE	    (32 * 1024) /* request head limit too */
#define OUT_SIZE    (64 * 1024)
#define HEAD_ROOM   1024 /* free output needed to start a response head */
#define RUN_BUDGET  64	 /* I/O rounds per connection before yielding */
#define LINGER_MS   2000 /* bound on the lingering close */
#define PAT_PERIOD  251
#define PAT_LEN	    (PAT_PERIOD * 264) /* >= OUT_SIZE + PAT_PERIOD */
#define MAX_THREADS 64
#define MAX_FREE    64 /* cached free connections per worker */

enum state {
	ST_HEAD,
	ST_BODY,
	ST_SLEEP,
	ST_RESPOND,
	ST_GEN,
	ST_TUNNEL,
	ST_DONE,
	ST_LINGER,
	ST_FREE
};
enum route {
	R_DEFAULT,
	R_HEALTHZ,
	R_ECHO,
	R_BYTES,
	R_CHUNKED,
	R_EOF,
	R_UPLOAD,
	R_STATUS,
	R_SLEEP,
	R_CLOSE,
	R_RESET,
	R_WS,
	R_COUNT,
	R_ERROR,
	R_BADARG,
	R_METHOD
};
enum gen { G_NONE, G_PATTERN, G_CHUNKED, G_MEM };
/* per-worker counters reported by /count */
enum stat { S_REQUESTS, S_ERRORS, S_CONNS, S_OPEN, S_COUNT };

/* Intrusive circular doubly linked list. */
typedef struct dlink {
	struct dlink *next, *prev;
} dlink;

static void dl_init(dlink *l)
{
	l->next = l->prev = l;
}

static bool dl_linked(const dlink *l)
{
	return l->next != l;
}

static void dl_del(dlink *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	dl_init(l);
}

static void dl_add_before(dlink *pos, dlink *l)
{
	l->prev = pos->prev;
	l->next = pos;
	pos->prev->next = l;
	pos->prev = l;
}

struct worker;

typedef struct conn {
	struct worker *w;
	dlink all, ready, timer;
	uint64_t wake_ms;
	int fd;
	uint8_t state, route, gen;
	bool readable, writable, rdhup, peer_eof, reset, counted;
	/* current request */
	bool head_only, keep_alive, http10, track, in_data;
	uint8_t body; /* http1_body */
	uint16_t status;
	uint64_t arg, body_left, body_len;
	uint32_t adler;
	http1_chunked ck;
	const char *reason; /* R_ERROR */
	/* response generator */
	uint64_t gen_left, gen_pos, gen_chunks;
	char *scratch; /* /echo text, allocated once per connection */
	uint32_t scratch_len;
	char upgrade[33], ws_accept[32];
	uint32_t in_start, in_end, out_start, out_end;
	char in[IN_SIZE];
	struct conn *dead_next; /* the worker's dead list */
	char out[OUT_SIZE];
} conn;

typedef struct worker {
	struct demo_origin *o;
	pthread_t tid;
	int epfd, lfd, evfd;
	dlink conns, ready, timers;
	conn *free_list[MAX_FREE];
	int nfree;
	/* Closed beyond the free list: freed after the event batch, since a
	 * caller up the stack (conn_run) may still look at the state. */
	conn *dead;
	_Atomic uint64_t stats[S_COUNT]; /* written by this worker only */
	http1_request req;
} worker;

struct demo_origin {
	char cloud[65], name[65];
	uint16_t port;
	int nworkers;
	atomic_bool stop;
	worker *workers[MAX_THREADS];
	/* the demo answer, prebuilt for HTTP/1.1 keep-alive */
	char fast[512];
	uint32_t fast_len, fast_head_len;
	char answer[160];
	uint32_t answer_len;
};

/* Counters have a single writer (their worker): no locked instruction. */
static void stat_add(worker *w, enum stat k, int64_t d)
{
	atomic_store_explicit(
	    &w->stats[k],
	    atomic_load_explicit(&w->stats[k], memory_order_relaxed) +
		(uint64_t)d,
	    memory_order_relaxed);
}

static uint64_t stat_sum(const demo_origin *o, enum stat k)
{
	uint64_t n = 0;
	for (int i = 0; i < o->nworkers; i++)
		n += atomic_load_explicit(&o->workers[i]->stats[k],
					  memory_order_relaxed);
	return n;
}

static const http1_limits limits = {
    .max_head_bytes = IN_SIZE,
    .max_headers = HTTP1_MAX_HEADERS,
    .max_target = 0,
};

static uint8_t pattern[PAT_LEN];
static pthread_once_t pattern_once = PTHREAD_ONCE_INIT;

static void pattern_init(void)
{
	for (size_t i = 0; i < PAT_LEN; i++)
		pattern[i] = (uint8_t)(i % PAT_PERIOD);
}

/* zlib's Adler-32 (RFC 1950), so tests can check with zlib.adler32. */
static uint32_t adler32(uint32_t adler, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	uint32_t a = adler & 0xffff, b = adler >> 16;
	while (n > 0) {
		size_t k = n < 5552 ? n : 5552; /* no overflow before mod */
		n -= k;
		while (k--) {
			a += *p++;
			b += a;
		}
		a %= 65521;
		b %= 65521;
	}
	return (b << 16) | a;
}

static const char *status_reason(int s)
{
	static const struct {
		int code;
		const char *text;
	} reasons[] = {
	    {101, "Switching Protocols"},
	    {200, "OK"},
	    {201, "Created"},
	    {204, "No Content"},
	    {301, "Moved Permanently"},
	    {302, "Found"},
	    {304, "Not Modified"},
	    {400, "Bad Request"},
	    {404, "Not Found"},
	    {405, "Method Not Allowed"},
	    {426, "Upgrade Required"},
	    {431, "Request Header Fields Too Large"},
	    {500, "Internal Server Error"},
	    {501, "Not Implemented"},
	    {502, "Bad Gateway"},
	    {503, "Service Unavailable"},
	    {504, "Gateway Timeout"},
	    {505, "HTTP Version Not Supported"},
	};
	for (size_t i = 0; i < ARRAY_LEN(reasons); i++)
		if (reasons[i].code == s)
			return reasons[i].text;
	return "Status";
}

/* ---- connections, lists, timers ------------------------------------- */

static void timer_set(conn *c, uint64_t wake_ms)
{
	worker *w = c->w;
	if (dl_linked(&c->timer))
		dl_del(&c->timer);
	c->wake_ms = wake_ms;
	dlink *pos = w->timers.next;
	while (pos != &w->timers &&
	       container_of(pos, conn, timer)->wake_ms <= wake_ms)
		pos = pos->next;
	dl_add_before(pos, &c->timer);
}

static void conn_close(conn *c)
{
	worker *w = c->w;
	if (c->reset) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(c->fd);
	if (c->counted)
		stat_add(w, S_OPEN, -1);
	dl_del(&c->all);
	if (dl_linked(&c->ready))
		dl_del(&c->ready);
	if (dl_linked(&c->timer))
		dl_del(&c->timer);
	c->state = ST_FREE;
	if (w->nfree < MAX_FREE) {
		w->free_list[w->nfree++] = c;
	} else {
		c->dead_next = w->dead;
		w->dead = c;
	}
}

static void free_dead(worker *w)
{
	while (w->dead) {
		conn *c = w->dead;
		w->dead = c->dead_next;
		free(c->scratch);
		free(c);
	}
}

/* Make room at the end of the output buffer; true if `need` bytes fit. */
static bool out_reserve(conn *c, uint32_t need)
{
	if (OUT_SIZE - c->out_end >= need)
		return true;
	if (c->out_start > 0) {
		memmove(c->out, c->out + c->out_start,
			c->out_end - c->out_start);
		c->out_end -= c->out_start;
		c->out_start = 0;
	}
	return OUT_SIZE - c->out_end >= need;
}

static void out_put(conn *c, const void *p, size_t n)
{
	memcpy(c->out + c->out_end, p, n);
	c->out_end += (uint32_t)n;
}

/* Append formatted text; callers have reserved HEAD_ROOM. */
__attribute__((format(printf, 2, 3))) static void out_fmt(conn *c,
							  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = OUT_SIZE - c->out_end;
	int n = vsnprintf(c->out + c->out_end, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->out_end += (uint32_t)MIN((size_t)n, room - 1);
}

/* ---- requests ------------------------------------------------------- */

static bool parse_u64(const char *p, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 19)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* "/prefix/NUMBER" -> true and *v when path starts with prefix. */
static bool route_num(const char *p, size_t n, const char *prefix, bool *ok,
		      uint64_t max, uint64_t *v)
{
	size_t pl = strlen(prefix);
	if (n < pl || memcmp(p, prefix, pl) != 0)
		return false;
	*ok = parse_u64(p + pl, n - pl, max, v);
	return true;
}

static bool path_is(const char *p, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

static void route_request(conn *c, const http1_request *req)
{
	const char *p = req->target.p;
	size_t n = req->target.len;
	if (n > 7 && core_strncaseeq(p, "http://", 7) == 0) {
		const char *slash = memchr(p + 7, '/', n - 7);
		size_t skip = slash ? (size_t)(slash - p) : n;
		p += skip;
		n -= skip;
	}
	const char *q = memchr(p, '?', n);
	if (q)
		n = (size_t)(q - p);

	bool ok = true;
	uint64_t v = 0;
	c->route = R_DEFAULT;
	if (path_is(p, n, "/healthz"))
		c->route = R_HEALTHZ;
	else if (path_is(p, n, "/echo"))
		c->route = R_ECHO;
	else if (path_is(p, n, "/upload"))
		c->route = R_UPLOAD;
	else if (path_is(p, n, "/close"))
		c->route = R_CLOSE;
	else if (path_is(p, n, "/reset"))
		c->route = R_RESET;
	else if (path_is(p, n, "/ws"))
		c->route = R_WS;
	else if (path_is(p, n, "/count"))
		c->route = R_COUNT;
	else if (route_num(p, n, "/bytes/", &ok, 1ull << 50, &v))
		c->route = R_BYTES;
	else if (route_num(p, n, "/chunked/", &ok, 1ull << 50, &v))
		c->route = R_CHUNKED;
	else if (route_num(p, n, "/eof/", &ok, 1ull << 50, &v))
		c->route = R_EOF;
	else if (route_num(p, n, "/status/", &ok, 599, &v))
		c->route = ok && v >= 200 ? R_STATUS : R_BADARG;
	else if (route_num(p, n, "/sleep/", &ok, 600000, &v))
		c->route = R_SLEEP;
	if (!ok)
		c->route = R_BADARG;
	c->arg = v;
	if (c->route == R_UPLOAD && req->method_id != HTTP_M_POST &&
	    req->method_id != HTTP_M_PUT)
		c->route = R_METHOD;
}

/* /echo: keep the head exactly as received (from the request line on). */
static void echo_capture(conn *c, const http1_request *req, const char *head)
{
	if (!c->scratch)
		c->scratch = xmalloc(IN_SIZE + 128);
	size_t n = (size_t)(head + req->head_len - req->method.p);
	memcpy(c->scratch, req->method.p, n);
	c->scratch_len = (uint32_t)n;
}

/* /ws: remember the Upgrade token and compute Sec-WebSocket-Accept. */
static void ws_prepare(conn *c, const http1_request *req)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	const http1_header *up =
	    http1_find_header(req->headers, req->nheaders, "upgrade");
	const http1_header *key =
	    http1_find_header(req->headers, req->nheaders, "sec-websocket-key");
	c->upgrade[0] = c->ws_accept[0] = '\0';
	if (!req->conn.upgrade || !up)
		return;
	size_t ul = MIN(up->value.len, sizeof(c->upgrade) - 1);
	memcpy(c->upgrade, up->value.p, ul);
	c->upgrade[ul] = '\0';
	if (key && key->value.len > 0 && key->value.len <= 64) {
		char buf[64 + sizeof(guid)];
		unsigned char md[SHA_DIGEST_LENGTH];
		memcpy(buf, key->value.p, key->value.len);
		memcpy(buf + key->value.len, guid, sizeof(guid) - 1);
		SHA1((unsigned char *)buf, key->value.len + sizeof(guid) - 1,
		     md);
		EVP_EncodeBlock((unsigned char *)c->ws_accept, md, sizeof(md));
	}
}

/* HEAD state: parse the next request head from the input buffer. */
static int step_head(conn *c)
{
	worker *w = c->w;
	uint32_t avail = c->in_end - c->in_start;
	if (avail == 0 || !out_reserve(c, HEAD_ROOM)) {
		if (avail == 0 && c->peer_eof) {
			c->state = ST_DONE;
			return 1;
		}
		return 0;
	}
	const char *head = c->in + c->in_start;
	http1_request *req = &w->req;
	int r = http1_parse_request(head, avail, &limits, req);
	if (r == HTTP1_INCOMPLETE) {
		if (avail >= IN_SIZE) {
			r = HTTP1_E_HEADERS_TOO_LARGE;
		} else {
			if (c->peer_eof)
				c->state = ST_DONE; /* truncated head */
			return c->peer_eof;
		}
	}
	if (r < 0) {
		stat_add(w, S_ERRORS, 1);
		c->route = R_ERROR;
		c->status = (uint16_t)http1_err_status(r);
		c->reason = http1_err_reason(r);
		c->keep_alive = false;
		c->head_only = false;
		c->http10 = false;
		c->in_start = c->in_end; /* discard the rest */
		c->state = ST_RESPOND;
		return 1;
	}

	route_request(c, req);
	if (c->route != R_COUNT) { /* /count does not count itself */
		stat_add(w, S_REQUESTS, 1);
		if (!c->counted) {
			stat_add(w, S_CONNS, 1);
			stat_add(w, S_OPEN, 1);
		}
		c->counted = true;
	}
	c->head_only = req->method_id == HTTP_M_HEAD;
	c->keep_alive = req->conn.keep_alive;
	c->http10 = req->version_minor == 0;
	c->body = (uint8_t)req->body;
	c->body_left = req->content_length;
	c->body_len = 0;
	c->adler = 1;
	c->in_data = false;
	c->track = c->route == R_UPLOAD || c->route == R_ECHO;
	memset(&c->ck, 0, sizeof(c->ck));
	if (c->route == R_ECHO)
		echo_capture(c, req, head);
	else if (c->route == R_WS)
		ws_prepare(c, req);
	if (req->conn.expect_continue && !c->http10 &&
	    c->body != HTTP1_BODY_NONE && avail == (uint32_t)r) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		out_put(c, cont, sizeof(cont) - 1);
	}
	c->in_start += (uint32_t)r;
	if (c->body == HTTP1_BODY_LENGTH && c->body_left == 0)
		c->body = HTTP1_BODY_NONE;
	c->state = ST_BODY;
	return 1;
}

/* Chunked body when the data bytes themselves are needed: the walker only
 * validates and counts, so framing is fed byte by byte; when a byte ends a
 * size line (ck.total moves by the chunk size), the next ck.remaining bytes
 * are data and are fed, and checksummed, at once. */
static ssize_t chunked_tracked(conn *c, const char *p, size_t len, bool *done)
{
	size_t off = 0;
	while (off < len && !*done) {
		ssize_t r;
		if (c->in_data && c->ck.remaining > 0) {
			uint64_t rem = c->ck.remaining;
			size_t n = (size_t)MIN((uint64_t)(len - off), rem);
			r = http1_chunked_feed(&c->ck, p + off, n, done);
			if (r < 0)
				return r;
			if ((size_t)r != n || c->ck.remaining != rem - n)
				return HTTP1_E_BAD_CHUNK_SIZE; /* cannot happen
								*/
			c->adler = adler32(c->adler, p + off, n);
			off += n;
			continue;
		}
		uint64_t before = c->ck.total;
		r = http1_chunked_feed(&c->ck, p + off, 1, done);
		if (r <= 0)
			return r < 0 ? r : (ssize_t)off;
		off++;
		c->in_data = c->ck.total != before;
	}
	return (ssize_t)off;
}

/* BODY state: consume (and for /upload, /echo checksum) the request body. */
static int step_body(conn *c)
{
	uint32_t avail = c->in_end - c->in_start;
	const char *p = c->in + c->in_start;
	bool done = c->body == HTTP1_BODY_NONE;
	size_t used = 0;
	if (c->body == HTTP1_BODY_LENGTH) {
		used = (size_t)MIN((uint64_t)avail, c->body_left);
		if (c->track)
			c->adler = adler32(c->adler, p, used);
		c->body_left -= used;
		c->body_len += used;
		done = c->body_left == 0;
	} else if (c->body == HTTP1_BODY_CHUNKED) {
		ssize_t r = c->track
				? chunked_tracked(c, p, avail, &done)
				: http1_chunked_feed(&c->ck, p, avail, &done);
		if (r < 0) {
			stat_add(c->w, S_ERRORS, 1);
			c->route = R_ERROR;
			c->status = 400;
			c->reason = http1_err_reason((int)r);
			c->keep_alive = false;
			c->head_only = false;
			c->in_start = c->in_end;
			c->state = ST_RESPOND;
			return 1;
		}
		used = (size_t)r;
		c->body_len = c->ck.total;
	}
	c->in_start += (uint32_t)used;
	if (done) {
		if (c->route == R_SLEEP) {
			c->state = ST_SLEEP;
			timer_set(c, core_now_ms() + c->arg);
		} else {
			c->state = ST_RESPOND;
		}
		return 1;
	}
	if (c->in_start == c->in_end && c->peer_eof) {
		c->keep_alive = false; /* client gave up mid-body */
		c->state = ST_DONE;
		return 1;
	}
	return used > 0;
}

/* Status line, framing, Connection; clen >= 0: Content-Length, -1: chunked,
 * -2: none (close-delimited or bodiless status). */
static void respond_head(conn *c, int status, const char *ctype, int64_t clen,
			 const char *extra)
{
	out_fmt(c, "HTTP/1.1 %d %s\r\n", status, status_reason(status));
	if (ctype)
		out_fmt(c, "Content-Type: %s\r\n", ctype);
	if (clen >= 0)
		out_fmt(c, "Content-Length: %lld\r\n", (long long)clen);
	else if (clen == -1)
		out_fmt(c, "Transfer-Encoding: chunked\r\n");
	if (extra)
		out_fmt(c, "%s", extra);
	if (!c->keep_alive)
		out_fmt(c, "Connection: close\r\n");
	else if (c->http10)
		out_fmt(c, "Connection: keep-alive\r\n");
	out_fmt(c, "\r\n");
}

static void respond_text(conn *c, int status, const char *extra,
			 const char *body, size_t n)
{
	respond_head(c, status, "text/plain", (int64_t)n, extra);
	if (!c->head_only)
		out_put(c, body, n);
}

/* RESPOND state: write the response head (and small bodies). */
static int step_respond(conn *c)
{
	demo_origin *o = c->w->o;
	char buf[256];
	int n;
	if (!out_reserve(c, HEAD_ROOM))
		return 0;
	c->gen = G_NONE;
	c->state = ST_GEN;
	switch (c->route) {
	case R_DEFAULT:
		if (c->keep_alive && !c->http10) {
			out_put(c, o->fast,
				c->head_only ? o->fast_head_len : o->fast_len);
		} else {
			n = snprintf(buf, sizeof(buf), "X-Origin: %s\r\n",
				     o->name);
			respond_text(c, 200, buf, o->answer, o->answer_len);
		}
		break;
	case R_HEALTHZ:
		respond_text(c, 200, NULL, "ok\n", 3);
		break;
	case R_ECHO:
		c->scratch_len += (uint32_t)snprintf(
		    c->scratch + c->scratch_len, 128,
		    "body-length: %llu\r\nbody-adler32: "
		    "%08x\r\n",
		    (unsigned long long)c->body_len, c->adler);
		respond_head(c, 200, "text/plain", c->scratch_len, NULL);
		c->gen = G_MEM;
		c->gen_pos = 0;
		c->gen_left = c->scratch_len;
		break;
	case R_CHUNKED:
		if (!c->http10) {
			respond_head(c, 200, "application/octet-stream", -1,
				     "Trailer: X-Body-Length\r\n");
			c->gen = G_CHUNKED;
			c->gen_pos = c->gen_chunks = 0;
			c->gen_left = c->arg;
			break;
		}
		/* An HTTP/1.0 client cannot take chunks (RFC 9112 6.1): the
		 * same bytes, ended by the close. */
		/* fall through */
	case R_EOF:
		c->keep_alive = false;
		/* fall through */
	case R_BYTES:
		respond_head(c, 200, "application/octet-stream",
			     c->route == R_BYTES ? (int64_t)c->arg : -2, NULL);
		c->gen = G_PATTERN;
		c->gen_pos = 0;
		c->gen_left = c->arg;
		break;
	case R_UPLOAD:
		n = snprintf(buf, sizeof(buf), "length %llu\nadler32 %08x\n",
			     (unsigned long long)c->body_len, c->adler);
		respond_text(c, 200, NULL, buf, (size_t)n);
		break;
	case R_STATUS:
		if (c->arg == 204 || c->arg == 304) {
			respond_head(c, (int)c->arg, NULL, -2, NULL);
		} else {
			n = snprintf(buf, sizeof(buf), "status %d\n",
				     (int)c->arg);
			respond_text(c, (int)c->arg, NULL, buf, (size_t)n);
		}
		break;
	case R_SLEEP:
		n = snprintf(buf, sizeof(buf), "slept %llu\n",
			     (unsigned long long)c->arg);
		respond_text(c, 200, NULL, buf, (size_t)n);
		break;
	case R_CLOSE:
		c->keep_alive = false;
		respond_text(c, 200, NULL, "closing\n", 8);
		break;
	case R_RESET:
		c->reset = true;
		c->state = ST_DONE;
		return 1;
	case R_WS:
		if (!c->upgrade[0]) {
			respond_text(c, 426, "Upgrade: websocket\r\n",
				     "upgrade required\n", 17);
			break;
		}
		out_fmt(c,
			"HTTP/1.1 101 Switching Protocols\r\n"
			"Upgrade: %s\r\nConnection: Upgrade\r\n",
			c->upgrade);
		if (c->ws_accept[0])
			out_fmt(c, "Sec-WebSocket-Accept: %s\r\n",
				c->ws_accept);
		out_fmt(c, "\r\n");
		c->state = ST_TUNNEL;
		return 1;
	case R_COUNT:
		n = snprintf(buf, sizeof(buf),
			     "requests %llu\nerrors %llu\nconnections %llu\n"
			     "open %llu\n",
			     (unsigned long long)stat_sum(o, S_REQUESTS),
			     (unsigned long long)stat_sum(o, S_ERRORS),
			     (unsigned long long)stat_sum(o, S_CONNS),
			     (unsigned long long)stat_sum(o, S_OPEN));
		respond_text(c, 200, NULL, buf, (size_t)n);
		break;
	case R_ERROR:
		n = snprintf(buf, sizeof(buf), "origin %s: %s\n", o->name,
			     c->reason ? c->reason : "bad request");
		respond_text(c, c->status ? c->status : 400, NULL, buf,
			     (size_t)n);
		break;
	case R_BADARG:
		respond_text(c, 400, NULL, "bad argument\n", 13);
		break;
	case R_METHOD:
		respond_text(c, 405, "Allow: POST, PUT\r\n",
			     "method not allowed\n", 19);
		break;
	}
	if (c->head_only)
		c->gen = G_NONE;
	return 1;
}

/* GEN state: produce the streamed part of the body into the output. */
static int step_gen(conn *c)
{
	static const uint32_t plan[] = {1, 10, 100, 1000, 4000, 16000};
	size_t room, n = 0;
	switch (c->gen) {
	case G_NONE:
		break;
	case G_PATTERN:
	case G_MEM:
		if (c->gen_left == 0)
			break;
		if (!out_reserve(c, OUT_SIZE / 4))
			return 0;
		room = OUT_SIZE - c->out_end;
		n = (size_t)MIN((uint64_t)room, c->gen_left);
		if (c->gen == G_PATTERN)
			out_put(c, pattern + c->gen_pos % PAT_PERIOD, n);
		else
			out_put(c, c->scratch + c->gen_pos, n);
		c->gen_pos += n;
		c->gen_left -= n;
		if (c->gen_left > 0)
			return 1;
		break;
	case G_CHUNKED:
		if (!out_reserve(c, 128))
			return 0;
		room = OUT_SIZE - c->out_end - 64;
		if (c->gen_left == 0) {
			out_fmt(c, "0\r\nX-Body-Length: %llu\r\n\r\n",
				(unsigned long long)c->gen_pos);
			break;
		}
		n = plan[MIN(c->gen_chunks, ARRAY_LEN(plan) - 1)];
		n = (size_t)MIN((uint64_t)MIN(n, room), c->gen_left);
		out_fmt(c, "%zx\r\n", n);
		out_put(c, pattern + c->gen_pos % PAT_PERIOD, n);
		out_put(c, "\r\n", 2);
		c->gen_chunks++;
		c->gen_pos += n;
		c->gen_left -= n;
		return 1;
	}
	c->state = c->keep_alive ? ST_HEAD : ST_DONE;
	return 1;
}

/* TUNNEL state (after 101): echo every byte back. */
static int step_tunnel(conn *c)
{
	uint32_t avail = c->in_end - c->in_start;
	if (avail == 0) {
		if (c->peer_eof) {
			c->state = ST_DONE;
			return 1;
		}
		return 0;
	}
	if (!out_reserve(c, 1))
		return 0;
	uint32_t n = MIN(avail, (uint32_t)(OUT_SIZE - c->out_end));
	out_put(c, c->in + c->in_start, n);
	c->in_start += n;
	return 1;
}

/* Advance the request state machine as far as buffers allow. */
static bool conn_process(conn *c)
{
	bool progress = false;
	for (;;) {
		int r = 0;
		switch (c->state) {
		case ST_HEAD:
			r = step_head(c);
			break;
		case ST_BODY:
			r = step_body(c);
			break;
		case ST_RESPOND:
			r = step_respond(c);
			break;
		case ST_GEN:
			r = step_gen(c);
			break;
		case ST_TUNNEL:
			r = step_tunnel(c);
			break;
		case ST_LINGER:
			c->in_start = c->in_end = 0; /* discard */
			if (c->peer_eof)
				conn_close(c);
			return progress;
		default: /* SLEEP, DONE, FREE */
			return progress;
		}
		if (!r)
			return progress;
		progress = true;
	}
}

/* DONE and flushed: reset, close, or close gracefully (FIN, then drain the
 * peer's input so unread bytes do not turn our close into an RST). */
static void conn_finish(conn *c)
{
	if (c->reset || c->peer_eof) {
		conn_close(c);
		return;
	}
	shutdown(c->fd, SHUT_WR);
	c->state = ST_LINGER;
	c->in_start = c->in_end = 0;
	timer_set(c, core_now_ms() + LINGER_MS);
}

static int conn_flush(conn *c)
{
	uint32_t len = c->out_end - c->out_start;
	if (len == 0 || !c->writable)
		return 0;
	ssize_t n = send(c->fd, c->out + c->out_start, len, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR) {
			c->writable = errno == EINTR;
			return 0;
		}
		conn_close(c);
		return -1;
	}
	c->out_start += (uint32_t)n;
	if (c->out_start == c->out_end)
		c->out_start = c->out_end = 0;
	if ((uint32_t)n < len)
		c->writable = false; /* socket buffer full: wait for the edge */
	return n > 0;
}

static int conn_read(conn *c)
{
	if (!c->readable || c->state == ST_DONE)
		return 0;
	if (c->in_start == c->in_end) {
		c->in_start = c->in_end = 0;
	} else if (c->in_start > 0 && IN_SIZE - c->in_end < IN_SIZE / 4) {
		memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
		c->in_end -= c->in_start;
		c->in_start = 0;
	}
	uint32_t room = IN_SIZE - c->in_end;
	if (room == 0)
		return 0;
	ssize_t n = recv(c->fd, c->in + c->in_end, room, 0);
	if (n > 0) {
		c->in_end += (uint32_t)n;
		if ((uint32_t)n < room && !c->rdhup)
			c->readable = false; /* drained: the next edge tells */
		return 1;
	}
	if (n == 0) {
		c->peer_eof = true;
		c->readable = false;
		return 1;
	}
	if (errno == EAGAIN || errno == EINTR) {
		c->readable = errno == EINTR;
		return 0;
	}
	conn_close(c);
	return -1;
}

/* Pump one connection: process, write, read, until nothing moves. */
static void conn_run(conn *c)
{
	for (int i = 0; i < RUN_BUDGET; i++) {
		bool progress = conn_process(c);
		if (c->state == ST_FREE)
			return;
		int r = conn_flush(c);
		if (r < 0)
			return;
		progress |= r > 0;
		if (c->state == ST_DONE && c->out_start == c->out_end) {
			conn_finish(c);
			if (c->state == ST_FREE)
				return;
		}
		r = conn_read(c);
		if (r < 0)
			return;
		progress |= r > 0;
		if (!progress)
			return;
	}
	if (!dl_linked(&c->ready))
		dl_add_before(&c->w->ready, &c->ready);
}

static void accept_all(worker *w)
{
	for (int i = 0; i < 64; i++) {
		int fd =
		    accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				perror("meridian origin: accept");
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn *c;
		char *scratch = NULL;
		if (w->nfree > 0) {
			c = w->free_list[--w->nfree];
			scratch = c->scratch;
		} else {
			c = xmalloc(sizeof(*c));
		}
		/* reset the header part only; the buffers need no clearing */
		memset(c, 0, offsetof(conn, in));
		c->scratch = scratch;
		c->w = w;
		c->fd = fd;
		c->state = ST_HEAD;
		c->readable = c->writable = true;
		dl_init(&c->ready);
		dl_init(&c->timer);
		dl_add_before(&w->conns, &c->all);
		struct epoll_event ev = {
		    .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		    .data.ptr = c,
		};
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			conn_close(c);
			continue;
		}
		conn_run(c);
	}
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	struct epoll_event evs[128];
	while (!atomic_load(&w->o->stop)) {
		int timeout = -1;
		if (dl_linked(&w->ready)) {
			timeout = 0;
		} else if (dl_linked(&w->timers)) {
			uint64_t now = core_now_ms();
			uint64_t wake =
			    container_of(w->timers.next, conn, timer)->wake_ms;
			timeout = wake <= now ? 0 : (int)MIN(wake - now, 60000);
		}
		int n = epoll_wait(w->epfd, evs, ARRAY_LEN(evs), timeout);
		if (n < 0 && errno != EINTR) {
			perror("meridian origin: epoll_wait");
			break;
		}
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &w->lfd) {
				accept_all(w);
				continue;
			}
			if (p == &w->evfd)
				continue; /* stop: the loop condition sees it */
			conn *c = p;
			uint32_t e = evs[i].events;
			if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				c->readable = true;
			if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				c->rdhup = true;
			if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
				c->writable = true;
			conn_run(c);
		}
		free_dead(w);
		uint64_t now = core_now_ms();
		while (dl_linked(&w->timers)) {
			conn *c = container_of(w->timers.next, conn, timer);
			if (c->wake_ms > now)
				break;
			dl_del(&c->timer);
			if (c->state == ST_LINGER) {
				conn_close(c);
			} else {
				c->state = ST_RESPOND;
				conn_run(c);
			}
		}
		dlink batch;
		dl_init(&batch);
		if (dl_linked(&w->ready)) { /* move the list to a local head */
			batch.next = w->ready.next;
			batch.prev = w->ready.prev;
			batch.next->prev = batch.prev->next = &batch;
			dl_init(&w->ready);
		}
		while (dl_linked(&batch)) {
			conn *c = container_of(batch.next, conn, ready);
			dl_del(&c->ready);
			conn_run(c);
		}
	}
	while (dl_linked(&w->conns))
		conn_close(container_of(w->conns.next, conn, all));
	return NULL;
}

/* ---- start / stop --------------------------------------------------- */

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] >= 127)
			return false;
	return true;
}

static void prebuild(demo_origin *o)
{
	o->answer_len = (uint32_t)snprintf(o->answer, sizeof(o->answer),
					   "%s %s\n", o->cloud, o->name);
	o->fast_head_len =
	    (uint32_t)snprintf(o->fast, sizeof(o->fast),
			       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			       "Content-Length: %u\r\nX-Origin: %s\r\n\r\n",
			       o->answer_len, o->name);
	memcpy(o->fast + o->fast_head_len, o->answer, o->answer_len);
	o->fast_len = o->fast_head_len + o->answer_len;
}

static int worker_new(demo_origin *o, int lfd, worker **out)
{
	worker *w = xcalloc(1, sizeof(*w));
	w->o = o;
	w->lfd = lfd;
	dl_init(&w->conns);
	dl_init(&w->ready);
	dl_init(&w->timers);
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->lfd};
	struct epoll_event ev2 = {.events = EPOLLIN, .data.ptr = &w->evfd};
	if (w->epfd < 0 || w->evfd < 0 ||
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, lfd, &ev) < 0 ||
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev2) < 0) {
		int err = -errno;
		if (w->epfd >= 0)
			close(w->epfd);
		if (w->evfd >= 0)
			close(w->evfd);
		free(w);
		return err;
	}
	*out = w;
	return 0;
}

static void worker_free(worker *w)
{
	close(w->lfd);
	close(w->epfd);
	close(w->evfd);
	for (int i = 0; i < w->nfree; i++) {
		free(w->free_list[i]->scratch);
		free(w->free_list[i]);
	}
	free_dead(w);
	free(w);
}

int demo_origin_start_n(const char *listen_addr, const char *cloud,
			const char *name, int nthreads, demo_origin **out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int err = core_sock_parse_addr(listen_addr, &ss, &len);
	if (err < 0 || !name_ok(cloud) || !name_ok(name) || nthreads < 1 ||
	    nthreads > MAX_THREADS)
		return -EINVAL;
	pthread_once(&pattern_once, pattern_init);

	demo_origin *o = xcalloc(1, sizeof(*o));
	snprintf(o->cloud, sizeof(o->cloud), "%s", cloud);
	snprintf(o->name, sizeof(o->name), "%s", name);
	prebuild(o);
	for (int i = 0; i < nthreads; i++) {
		int fd =
		    core_sock_listen((struct sockaddr *)&ss, len, true, 4096);
		if (fd < 0) {
			err = fd;
			goto fail;
		}
		if (i == 0) { /* later listeners share the (ephemeral) port */
			int port = core_sock_local_port(fd);
			if (port < 0) {
				close(fd);
				err = port;
				goto fail;
			}
			o->port = (uint16_t)port;
			if (ss.ss_family == AF_INET6)
				((struct sockaddr_in6 *)&ss)->sin6_port =
				    htons(o->port);
			else
				((struct sockaddr_in *)&ss)->sin_port =
				    htons(o->port);
		}
		err = worker_new(o, fd, &o->workers[i]);
		if (err < 0) {
			close(fd);
			goto fail;
		}
		o->nworkers = i + 1;
	}
	/* Workers block every signal (they inherit the mask): process signals
	 * such as SIGTERM belong to whoever embeds the origin. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < o->nworkers; i++) {
		err = -pthread_create(&o->workers[i]->tid, NULL, worker_main,
				      o->workers[i]);
		if (err < 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			o->nworkers = i; /* stop those started, free the rest */
			for (int j = i; j < nthreads && o->workers[j]; j++)
				worker_free(o->workers[j]);
			demo_origin_stop(o);
			return err;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	*out = o;
	return 0;
fail:
	for (int i = 0; i < o->nworkers; i++)
		worker_free(o->workers[i]);
	free(o);
	return err;
}

int demo_origin_start(const char *listen_addr, const char *cloud,
		      const char *name, demo_origin **out)
{
	return demo_origin_start_n(listen_addr, cloud, name, 1, out);
}

uint16_t demo_origin_port(const demo_origin *o)
{
	return o->port;
}

uint64_t demo_origin_requests(const demo_origin *o)
{
	return stat_sum(o, S_REQUESTS);
}

void demo_origin_stop(demo_origin *o)
{
	if (!o)
		return;
	atomic_store(&o->stop, true);
	for (int i = 0; i < o->nworkers; i++) {
		uint64_t one = 1;
		if (write(o->workers[i]->evfd, &one, sizeof(one)) < 0)
			perror("meridian origin: eventfd");
	}
	for (int i = 0; i < o->nworkers; i++) {
		pthread_join(o->workers[i]->tid, NULL);
		worker_free(o->workers[i]);
	}
	free(o);
}
