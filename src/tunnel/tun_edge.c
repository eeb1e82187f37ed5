/* tun_edge.c - the edge's tunnel thread; see tun_edge.h and
 * docs/ARCHITECTURE.md "Tunnels" for the data structures and the life of
 * a request through a tunnel.
 *
 * Three kinds of objects live on the thread's loop:
 *   tun_entry   a tunnel some connector has joined: its links, its bridge
 *               listener (bound while a link takes streams), counters;
 *   tun_link    one connector connection: TLS, the hello, then an
 *               nghttp2 client session (the edge opens the streams);
 *   tun_bridge  one worker connection to a tunnel's bridge socket: an
 *               HTTP/1.1 server side whose requests become streams.
 * Objects closed inside a callback are freed in the loop's post hook.
 */
#include "tunnel/tun_edge.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/cfg_tunnel.h"
#include "core/core_log.h"
#include "core/core_loop.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "edge/edge.h"
#include "http/http1_parse.h"
#include "http/px_head.h"
#include "tls/tls.h"
#include "tunnel/tun_hello.h"

#define TICK_MS		    1000
#define HELLO_TIMEOUT_MS    10000
#define PING_IDLE_MS	    15000
#define DEAD_AFTER_MS	    45000
#define MAX_LINKS_PER_TUN   64
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
	tun_link *dead_next;
};

enum bridge_state { B_HEAD, B_BODY, B_WAIT };

struct tun_bridge {
	core_io io;
	tun_entry *entry;
	tun_bridge *prev, *next;
	bool can_read, can_write, closed, kicked;
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
	/* response */
	uint8_t *out;
	size_t outoff, outlen, outcap;
	size_t unconsumed; /* DATA bytes in out, not yet given back */
	int status;
	bool head_sent, chunked, has_cl, resp_done, close_after;
	size_t head_start; /* where the response head being built starts */
	tun_bridge *dead_next, *kick_next;
};

typedef struct tun_listener {
	core_io io;
	tun_edge *t;
} tun_listener;

struct tun_edge {
	edge *e;
	pthread_t thread;
	core_loop loop;
	core_io stop_io;
	core_timer tick;
	tun_listener *listeners;
	size_t nlisteners;
	pthread_mutex_t lock; /* entries list: the metrics read it */
	tun_entry *entries;
	tun_link *all; /* links before their hello is accepted */
	tun_link *dead_links;
	tun_bridge *dead_bridges;
	/* Bridges whose input had room made (nghttp2 took body bytes):
	 * read again after the batch (post hook). */
	tun_bridge *kicks;
	uint64_t generation; /* of the snapshot the links were checked on */
	bool stopping;
	atomic_uint_fast64_t hellos[TUN_HELLO_NRESULT];
	uint8_t rbuf[16384];
};

static const char *const hello_names[TUN_HELLO_NRESULT] = {
    "accepted", "unauthorized", "refused", "failed"};

const char *tun_hello_result_name(tun_hello_result r)
{
	return r < TUN_HELLO_NRESULT ? hello_names[r] : "?";
}

static void link_close(tun_link *l, const char *why);
static void link_flush(tun_link *l);
static void bridge_close(tun_bridge *b);
static void bridge_flush(tun_bridge *b);
static void bridge_process(tun_bridge *b);
static void entry_update(tun_entry *en);

/* ---- buffers ---- */

static void grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	*buf = xrealloc(*buf, n);
	*cap = n;
}

static void bput(tun_bridge *b, const void *p, size_t n)
{
	grow(&b->out, &b->outcap, b->outlen + n);
	memcpy(b->out + b->outlen, p, n);
	b->outlen += n;
}

static void bputs(tun_bridge *b, const char *s)
{
	bput(b, s, strlen(s));
}

/* ---- bridges (worker side) ---- */

static void list_unlink_bridge(tun_bridge *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else if (b->entry->bridges == b)
		b->entry->bridges = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->prev = b->next = NULL;
}

/* Give the window back for the DATA bytes that left (or were dropped). */
static void bridge_give_back(tun_bridge *b)
{
	if (!b->unconsumed)
		return;
	if (b->link && b->link->h2 && b->sid > 0) {
		nghttp2_session_consume(b->link->h2, b->sid, b->unconsumed);
		link_flush(b->link);
	}
	b->unconsumed = 0;
}

static void bridge_close(tun_bridge *b)
{
	if (b->closed)
		return;
	b->closed = true;
	tun_link *l = b->link;
	if (l && l->h2 && b->sid > 0) {
		if (b->unconsumed)
			nghttp2_session_consume(l->h2, b->sid, b->unconsumed);
		b->unconsumed = 0;
		nghttp2_session_set_stream_user_data(l->h2, b->sid, NULL);
		if (!b->resp_done)
			nghttp2_submit_rst_stream(l->h2, NGHTTP2_FLAG_NONE,
						  b->sid, NGHTTP2_CANCEL);
		link_flush(l);
	}
	b->link = NULL;
	list_unlink_bridge(b);
	if (b->io.fd >= 0)
		close(b->io.fd);
	b->io.fd = -1;
	b->dead_next = b->entry->t->dead_bridges;
	b->entry->t->dead_bridges = b;
}

/* An answer of the edge's own on the bridge (the worker relays it), then
 * the connection closes. */
static void bridge_answer(tun_bridge *b, int status, const char *msg)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, px_status_reason(status), strlen(msg) + 1);
	b->outlen = b->outoff = 0;
	bput(b, head, (size_t)n);
	bputs(b, msg);
	bputs(b, "\n");
	b->head_sent = b->resp_done = b->close_after = true;
	bridge_flush(b);
}

/* The stream is over on the tunnel side before its answer was whole. */
static void bridge_stream_failed(tun_bridge *b, const char *why)
{
	atomic_fetch_add_explicit(&b->entry->stream_errors, 1,
				  memory_order_relaxed);
	if (!b->head_sent) {
		bridge_answer(b, 502, why);
	} else {
		/* Part of the answer went out: the worker must see it
		 * cut, not complete. */
		bridge_close(b);
	}
}

/* Request body bytes for nghttp2, taken from the bridge's input. */
static size_t take_body(tun_bridge *b, uint8_t *buf, size_t len, bool *eof,
			bool *bad)
{
	size_t n = 0;
	*eof = *bad = false;
	if (b->body == HTTP1_BODY_LENGTH) {
		size_t avail = b->inlen - b->inoff;
		n = len < avail ? len : avail;
		if (n > b->remaining)
			n = (size_t)b->remaining;
		memcpy(buf, b->in + b->inoff, n);
		b->inoff += n;
		b->remaining -= n;
		*eof = b->remaining == 0;
		return n;
	}
	/* chunked: payload bytes go out, framing is walked one byte at a
	 * time (a few bytes per chunk). */
	while (n < len && b->inoff < b->inlen) {
		uint64_t data = http1_chunked_data_next(&b->ch);
		size_t avail = b->inlen - b->inoff;
		size_t k = 1;
		bool payload = data > 0;
		if (payload) {
			k = len - n < avail ? len - n : avail;
			if (k > data)
				k = (size_t)data;
		}
		bool done = false;
		ssize_t r =
		    http1_chunked_feed(&b->ch, b->in + b->inoff, k, &done);
		if (r < 0) {
			*bad = true;
			return n;
		}
		if (payload) {
			memcpy(buf + n, b->in + b->inoff, (size_t)r);
			n += (size_t)r;
		}
		b->inoff += (size_t)r;
		if (done) {
			*eof = true;
			break;
		}
		if (r == 0)
			break;
	}
	return n;
}

static ssize_t body_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf,
			    size_t len, uint32_t *flags,
			    nghttp2_data_source *src, void *ud)
{
	(void)src;
	(void)ud;
	tun_bridge *b = nghttp2_session_get_stream_user_data(s, sid);
	if (!b || b->req_done) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	bool eof, bad;
	size_t n = take_body(b, buf, len, &eof, &bad);
	if (bad)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* reset */
	if (eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		b->req_done = true;
		b->state = B_WAIT;
	}
	if (!n && !eof) {
		b->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n && b->can_read && !b->kicked) {
		b->kicked = true;
		b->kick_next = b->entry->t->kicks;
		b->entry->t->kicks = b;
	}
	return (ssize_t)n;
}

/* The connector connection with the fewest streams that takes new ones;
 * the one picked goes to the back of the list, so ties take turns. */
static tun_link *pick_link(tun_entry *en)
{
	tun_link *best = NULL, *tail = NULL;
	for (tun_link *l = en->links; l; l = l->next) {
		tail = l;
		if (!l->goaway && !l->closed &&
		    (!best || l->streams < best->streams))
			best = l;
	}
	if (best && best != tail) {
		if (best->prev)
			best->prev->next = best->next;
		else
			en->links = best->next;
		best->next->prev = best->prev;
		best->prev = tail;
		best->next = NULL;
		tail->next = best;
	}
	return best;
}

static bool name_is(http_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && !strncasecmp(s.p, lit, n);
}

/* A request head is in: open its stream. */
static void bridge_start(tun_bridge *b, http1_request *req)
{
	tun_entry *en = b->entry;
	if (req->conn.upgrade) {
		bridge_answer(b, 501,
			      "Meridian tunnels do not carry Upgrade "
			      "(WebSocket) requests yet");
		return;
	}
	tun_link *l = pick_link(en);
	if (!l) {
		/* The last connector went between connect and request: close
		 * unanswered, so the proxy tries again elsewhere. */
		bridge_close(b);
		return;
	}
	nghttp2_nv nva[HTTP1_MAX_HEADERS + 4];
	size_t n = 0;
	const http1_header *xfp =
	    http1_find_header(req->headers, req->nheaders, "x-forwarded-proto");
	const char *scheme =
	    xfp && name_is(xfp->value, "https") ? "https" : "http";
#define NV(name, nlen, value, vlen)                                            \
	nva[n++] = (nghttp2_nv){(uint8_t *)(name), (uint8_t *)(value), (nlen), \
				(vlen), NGHTTP2_NV_FLAG_NONE}
	NV(":method", 7, req->method.p, req->method.len);
	NV(":scheme", 7, scheme, strlen(scheme));
	NV(":authority", 10, req->host.p, req->host.len);
	NV(":path", 5, req->target.p, req->target.len);
	for (uint32_t i = 0; i < req->nheaders; i++) {
		const http1_header *h = &req->headers[i];
		if (name_is(h->name, "host") ||
		    http1_is_hop_by_hop(req->headers, req->nheaders, h))
			continue;
		/* HTTP/2 field names are lower case; the head is ours to
		 * change (nghttp2 copies it). */
		char *p = (char *)h->name.p;
		for (size_t k = 0; k < h->name.len; k++)
			if (p[k] >= 'A' && p[k] <= 'Z')
				p[k] = (char)(p[k] + 32);
		NV(h->name.p, h->name.len, h->value.p, h->value.len);
	}
#undef NV
	b->body = req->body;
	b->remaining = req->content_length;
	memset(&b->ch, 0, sizeof(b->ch));
	b->head_req = req->method_id == HTTP_M_HEAD;
	b->keep_alive = req->conn.keep_alive;
	b->req_done = req->body == HTTP1_BODY_NONE ||
		      (req->body == HTTP1_BODY_LENGTH && !req->content_length);
	b->status = 0;
	b->head_sent = b->chunked = b->has_cl = b->resp_done = false;
	b->deferred = false;
	nghttp2_data_provider dp = {.read_callback = body_read_cb};
	int32_t sid = nghttp2_submit_request(l->h2, NULL, nva, n,
					     b->req_done ? NULL : &dp, b);
	if (sid < 0) {
		bridge_answer(b, 502, "tunnel stream could not be opened");
		return;
	}
	b->link = l;
	b->sid = sid;
	b->state = b->req_done ? B_WAIT : B_BODY;
	l->streams++;
	atomic_fetch_add_explicit(&en->streams, 1, memory_order_relaxed);
	link_flush(l);
}

/* One read(2) into the input, if it has room. Returns whether bytes
 * came; the worker's close closes the bridge (and cancels its stream). */
static bool bridge_read(tun_bridge *b)
{
	if (!b->can_read || b->closed)
		return false;
	if (b->inoff == b->inlen)
		b->inoff = b->inlen = 0;
	if (b->inoff && b->inlen == BRIDGE_IN) {
		memmove(b->in, b->in + b->inoff, b->inlen - b->inoff);
		b->inlen -= b->inoff;
		b->inoff = 0;
	}
	size_t room = BRIDGE_IN - b->inlen;
	if (!room)
		return false; /* nghttp2 takes body bytes first */
	ssize_t r = read(b->io.fd, b->in + b->inlen, room);
	if (r > 0) {
		b->inlen += (size_t)r;
		if ((size_t)r < room)
			b->can_read = false; /* drained */
		return true;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
		b->can_read = errno == EINTR;
		return false;
	}
	bridge_close(b);
	return false;
}

/* Whatever the input allows: a new request, more body. */
static void bridge_process(tun_bridge *b)
{
	for (int guard = 0; guard < 256 && !b->closed; guard++) {
		bool moved = bridge_read(b);
		if (b->closed)
			return;
		if (b->state == B_HEAD && b->inoff < b->inlen) {
			http1_request req;
			http1_limits lim = {.max_head_bytes = BRIDGE_IN};
			int r = http1_parse_request(
			    b->in + b->inoff, b->inlen - b->inoff, &lim, &req);
			if (r < 0) {
				bridge_answer(b, 400, http1_err_reason(r));
				return;
			}
			if (r > 0) {
				b->inoff += (size_t)r;
				bridge_start(b, &req);
				moved = true;
			}
		} else if (b->state == B_BODY && b->deferred && b->link &&
			   b->inoff < b->inlen) {
			b->deferred = false;
			nghttp2_session_resume_data(b->link->h2, b->sid);
			link_flush(b->link);
			moved = true;
		}
		if (!moved)
			return;
	}
}

/* The answer is whole and written: ready for the next request. */
static void bridge_done(tun_bridge *b)
{
	bridge_give_back(b);
	if (b->close_after || !b->keep_alive || !b->req_done) {
		bridge_close(b);
		return;
	}
	if (b->link && b->link->h2 && b->sid > 0)
		nghttp2_session_set_stream_user_data(b->link->h2, b->sid, NULL);
	b->link = NULL;
	b->sid = -1;
	b->state = B_HEAD;
	b->resp_done = false;
	entry_update(b->entry); /* an idle bridge with no link goes */
	if (!b->closed)
		bridge_process(b);
}

static void bridge_flush(tun_bridge *b)
{
	/* A response head still being built (its fields may come in more
	 * frames) is not written: a failure then answers 502 instead. */
	size_t end = b->status && !b->head_sent ? b->head_start : b->outlen;
	while (!b->closed && b->outoff < end) {
		ssize_t w =
		    write(b->io.fd, b->out + b->outoff, end - b->outoff);
		if (w > 0) {
			b->outoff += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			b->can_write = false;
			return;
		}
		bridge_close(b);
		return;
	}
	if (b->closed || end < b->outlen)
		return;
	b->outoff = b->outlen = 0;
	bridge_give_back(b);
	if (b->resp_done)
		bridge_done(b);
}

static void bridge_io_cb(core_io *io, uint32_t ev)
{
	tun_bridge *b = (tun_bridge *)io;
	if (b->closed)
		return;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		b->can_read = true;
	if (ev & EPOLLOUT) {
		b->can_write = true;
		bridge_flush(b);
	}
	if (!b->closed)
		bridge_process(b);
}

static void bridge_accept_cb(core_io *io, uint32_t ev)
{
	(void)ev;
	tun_entry *en = (tun_entry *)((char *)io - offsetof(tun_entry, lio));
	for (int i = 0; i < 64 && en->lio.fd >= 0; i++) {
		int fd = accept4(en->lio.fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		tun_bridge *b = xcalloc(1, sizeof(*b));
		b->io.fd = fd;
		b->io.cb = bridge_io_cb;
		b->entry = en;
		b->sid = -1;
		b->in = xmalloc(BRIDGE_IN);
		b->can_write = true;
		b->next = en->bridges;
		if (en->bridges)
			en->bridges->prev = b;
		en->bridges = b;
		if (core_loop_add(&en->t->loop, &b->io, false) < 0)
			bridge_close(b);
	}
}

/* ---- entries ---- */

static tun_entry *entry_get(tun_edge *t, const char *id)
{
	for (tun_entry *en = t->entries; en; en = en->next)
		if (!strcmp(en->id, id))
			return en;
	tun_entry *en = xcalloc(1, sizeof(*en));
	en->t = t;
	snprintf(en->id, sizeof(en->id), "%s", id);
	en->lio.fd = -1;
	en->lio.cb = bridge_accept_cb;
	pthread_mutex_lock(&t->lock);
	en->next = t->entries;
	t->entries = en;
	pthread_mutex_unlock(&t->lock);
	return en;
}

static void entry_listen(tun_entry *en)
{
	struct sockaddr_storage ss;
	socklen_t len;
	cfg_tunnel_sockaddr(en->id, &ss, &len);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, BRIDGE_BACKLOG) < 0) {
		log_warn("tunnel %s: bridge socket: %s", en->id,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	en->lio.fd = fd;
	if (core_loop_add(&en->t->loop, &en->lio, true) < 0) {
		close(fd);
		en->lio.fd = -1;
	}
}

/* Bind or drop the bridge socket as links come and go; with none left,
 * idle worker connections are closed too (their next request would find
 * no connector: closed, the proxy connects again and is refused). */
static void entry_update(tun_entry *en)
{
	uint32_t usable = 0;
	for (tun_link *l = en->links; l; l = l->next)
		usable += !l->goaway && !l->closed;
	atomic_store_explicit(&en->usable, usable, memory_order_relaxed);
	if (usable && en->lio.fd < 0 && !en->t->stopping)
		entry_listen(en);
	if (usable)
		return;
	if (en->lio.fd >= 0) {
		close(en->lio.fd);
		en->lio.fd = -1;
	}
	for (tun_bridge *b = en->bridges, *nx; b; b = nx) {
		nx = b->next;
		if (b->state == B_HEAD && b->inoff == b->inlen && !b->link &&
		    b->outoff == b->outlen)
			bridge_close(b);
	}
}

/* ---- links: HTTP/2 callbacks ---- */

static tun_bridge *stream_bridge(nghttp2_session *s, int32_t sid)
{
	tun_bridge *b = nghttp2_session_get_stream_user_data(s, sid);
	return b && !b->closed ? b : NULL;
}

static int on_header_cb(nghttp2_session *s, const nghttp2_frame *f,
			const uint8_t *name, size_t nlen, const uint8_t *value,
			size_t vlen, uint8_t flags, void *ud)
{
	(void)flags;
	(void)ud;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	tun_bridge *b = stream_bridge(s, f->hd.stream_id);
	if (!b || b->head_sent)
		return 0; /* trailers: not passed on (HTTP/1.1 side) */
	if (nlen == 7 && !memcmp(name, ":status", 7)) {
		int st = 0;
		for (size_t i = 0; i < vlen && i < 3; i++)
			st = st * 10 + (value[i] - '0');
		b->status = st;
		char line[64];
		int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", st,
				 px_status_reason(st));
		b->head_start = b->outlen;
		bput(b, line, (size_t)n);
		return 0;
	}
	if (!nlen || name[0] == ':' || !b->status)
		return 0;
	if (b->outlen - b->head_start + nlen + vlen + 4 > MAX_RESP_HEAD_BYTES)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (nlen == 14 && !memcmp(name, "content-length", 14))
		b->has_cl = true;
	bput(b, name, nlen);
	bput(b, ": ", 2);
	bput(b, value, vlen);
	bput(b, "\r\n", 2);
	return 0;
}

static void resp_end(tun_bridge *b)
{
	if (b->chunked)
		bputs(b, "0\r\n\r\n");
	b->resp_done = true;
	if (!b->req_done) {
		/* Answered before the upload was in: the rest of it cannot
		 * be told apart from a next request, so the connection ends
		 * after this answer. */
		b->close_after = true;
		if (b->link && b->link->h2)
			nghttp2_submit_rst_stream(b->link->h2,
						  NGHTTP2_FLAG_NONE, b->sid,
						  NGHTTP2_NO_ERROR);
	}
	bridge_flush(b);
}

static void head_end(tun_bridge *b, bool end_stream)
{
	if (b->status < 200) {
		/* 1xx (100 Continue, 103): relayed as they are. */
		bputs(b, "\r\n");
		b->status = 0;
		bridge_flush(b);
		return;
	}
	bool bodiless = b->head_req || b->status == 204 || b->status == 304;
	if (!b->has_cl && !bodiless) {
		if (end_stream)
			bputs(b, "content-length: 0\r\n");
		else {
			bputs(b, "transfer-encoding: chunked\r\n");
			b->chunked = true;
		}
	}
	bputs(b, "\r\n");
	b->head_sent = true;
	if (end_stream)
		resp_end(b);
	else
		bridge_flush(b);
}

static int on_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *f,
			    void *ud)
{
	tun_link *l = ud;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		if (!l->goaway)
			log_info("tunnel %s: connector %s (%s) is going away",
				 l->entry ? l->entry->id : "?", l->name,
				 l->peer);
		l->goaway = true;
		if (l->entry)
			entry_update(l->entry);
		return 0;
	}
	tun_bridge *b = stream_bridge(s, f->hd.stream_id);
	if (!b)
		return 0;
	bool es = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
	if (f->hd.type == NGHTTP2_HEADERS) {
		if (!b->head_sent && b->status)
			head_end(b, es);
		else if (b->head_sent && es && !b->resp_done)
			resp_end(b); /* trailers */
	} else if (f->hd.type == NGHTTP2_DATA && es && b->head_sent &&
		   !b->resp_done) {
		resp_end(b);
	}
	return 0;
}

static int on_data_cb(nghttp2_session *s, uint8_t flags, int32_t sid,
		      const uint8_t *data, size_t len, void *ud)
{
	(void)flags;
	(void)ud;
	tun_bridge *b = stream_bridge(s, sid);
	if (!b || !b->head_sent || b->head_req) {
		nghttp2_session_consume(s, sid, len);
		return 0;
	}
	if (b->chunked) {
		char sz[24];
		int n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
		bput(b, sz, (size_t)n);
	}
	bput(b, data, len);
	if (b->chunked)
		bput(b, "\r\n", 2);
	b->unconsumed += len;
	bridge_flush(b);
	return 0;
}

static int on_stream_close_cb(nghttp2_session *s, int32_t sid, uint32_t code,
			      void *ud)
{
	tun_link *l = ud;
	if (l->streams)
		l->streams--;
	tun_bridge *b = stream_bridge(s, sid);
	if (!b)
		return 0;
	if (!b->resp_done) {
		char why[96];
		snprintf(why, sizeof(why),
			 "the tunnel's connector reset the stream (%s)",
			 nghttp2_http2_strerror(code));
		bridge_stream_failed(b, why);
	}
	return 0;
}

/* ---- links: I/O ---- */

static void link_unlist(tun_link *l)
{
	tun_link **head = l->entry ? &l->entry->links : &l->t->all;
	if (l->prev)
		l->prev->next = l->next;
	else if (*head == l)
		*head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
}

static void link_list(tun_link *l, tun_link **head)
{
	l->prev = NULL;
	l->next = *head;
	if (*head)
		(*head)->prev = l;
	*head = l;
}

static void link_close(tun_link *l, const char *why)
{
	if (l->closed)
		return;
	if (l->busy) {
		if (!l->close_why)
			l->close_why = why;
		return;
	}
	l->closed = true;
	tun_entry *en = l->entry;
	if (en) {
		log_info("tunnel %s: connector %s (%s) disconnected: %s",
			 en->id, l->name, l->peer, why);
		for (tun_bridge *b = en->bridges, *nx; b; b = nx) {
			nx = b->next;
			if (b->link != l)
				continue;
			b->unconsumed = 0;
			bool open = !b->resp_done;
			b->link = NULL;
			b->sid = -1;
			if (open)
				bridge_stream_failed(
				    b, "the tunnel's connector connection "
				       "was lost");
		}
	}
	link_unlist(l);
	if (en)
		entry_update(en);
	if (l->h2)
		nghttp2_session_del(l->h2);
	l->h2 = NULL;
	if (l->tls.ssl) {
		if (l->state == L_H2)
			(void)tls_conn_shutdown(&l->tls);
		tls_conn_free(&l->tls);
	}
	if (l->io.fd >= 0)
		close(l->io.fd);
	l->io.fd = -1;
	l->dead_next = l->t->dead_links;
	l->t->dead_links = l;
}

/* Write what is queued: first the bytes TLS has not taken, then what
 * nghttp2 has to send. */
static void link_flush(tun_link *l)
{
	if (l->closed || !l->can_write || l->busy)
		return;
	for (int guard = 0; guard < 1024; guard++) {
		if (!l->outlen && l->h2) {
			const uint8_t *p;
			l->busy = true;
			ssize_t n = nghttp2_session_mem_send(l->h2, &p);
			l->busy = false;
			if (l->close_why) {
				link_close(l, l->close_why);
				return;
			}
			if (n < 0) {
				link_close(l, nghttp2_strerror((int)n));
				return;
			}
			if (n == 0)
				break;
			grow(&l->out, &l->outcap, (size_t)n);
			memcpy(l->out, p, (size_t)n);
			l->outlen = (size_t)n;
		}
		if (!l->outlen)
			break;
		ssize_t w = tls_conn_write(&l->tls, l->out, l->outlen);
		if (w > 0) {
			l->last_tx = l->t->loop.now;
			memmove(l->out, l->out + w, l->outlen - (size_t)w);
			l->outlen -= (size_t)w;
			if (l->outlen)
				continue;
			continue;
		}
		if (w == TLS_WANT_WRITE || w == TLS_WANT_READ) {
			l->can_write = false;
			return;
		}
		link_close(l, tls_conn_error(&l->tls) ? tls_conn_error(&l->tls)
						      : "write failed");
		return;
	}
	if (l->state == L_REFUSING && !l->outlen) {
		link_close(l, "refused");
		return;
	}
	if (l->h2 && !nghttp2_session_want_read(l->h2) &&
	    !nghttp2_session_want_write(l->h2) && !l->outlen)
		link_close(l, "the session ended (GOAWAY)");
}

static int link_h2_start(tun_link *l)
{
	nghttp2_session_callbacks *cbs;
	if (nghttp2_session_callbacks_new(&cbs))
		return -1;
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
							     on_frame_recv_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
								  on_data_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(
	    cbs, on_stream_close_cb);
	nghttp2_option *opt;
	if (nghttp2_option_new(&opt)) {
		nghttp2_session_callbacks_del(cbs);
		return -1;
	}
	/* Windows reopen as the workers take the bytes (bridge_give_back):
	 * a slow client slows the connector's service down. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	int rc = nghttp2_session_client_new2(&l->h2, cbs, l, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rc)
		return -1;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_RESP_HEAD_BYTES},
	};
	if (nghttp2_submit_settings(l->h2, NGHTTP2_FLAG_NONE, iv,
				    sizeof(iv) / sizeof(iv[0])) ||
	    nghttp2_session_set_local_window_size(l->h2, NGHTTP2_FLAG_NONE, 0,
						  CONN_WINDOW))
		return -1;
	return 0;
}

static void hello_refuse(tun_link *l, const tun_hello *h)
{
	char ans[768];
	size_t n = tun_hello_answer(h, ans, sizeof(ans));
	grow(&l->out, &l->outcap, n);
	memcpy(l->out, ans, n);
	l->outlen = n;
	l->state = L_REFUSING;
	atomic_fetch_add_explicit(
	    &l->t->hellos[h->status == 401 ? TUN_HELLO_UNAUTHORIZED
					   : TUN_HELLO_REFUSED],
	    1, memory_order_relaxed);
	log_info("tunnel: connector at %s refused: %d %s", l->peer, h->status,
		 h->why);
	link_flush(l);
}

/* The hello is whole: judge it, answer, and start HTTP/2. */
static void hello_done(tun_link *l, http1_request *req, size_t head_len)
{
	tun_edge *t = l->t;
	const edge_snapshot *snap = edge_acquire(t->e);
	tun_hello h;
	tun_hello_judge(req, l->hello, snap->cfg, &h);
	tun_entry *en = NULL;
	if (h.status == 101) {
		en = entry_get(t, h.tunnel->id);
		if (t->stopping) {
			h.status = 503;
			h.why = "the edge is shutting down";
		} else if (en->nlinks >= MAX_LINKS_PER_TUN) {
			h.status = 503;
			h.why = "the tunnel has its 64 connections already";
		}
	}
	if (h.status != 101) {
		edge_snapshot_unref(snap);
		hello_refuse(l, &h);
		return;
	}
	l->token = xstrdup(h.tunnel->token);
	edge_snapshot_unref(snap);
	snprintf(l->name, sizeof(l->name), "%s", h.connector);
	char ans[256];
	size_t n = tun_hello_answer(&h, ans, sizeof(ans));
	if (link_h2_start(l) < 0) {
		link_close(l, "out of memory");
		return;
	}
	grow(&l->out, &l->outcap, n);
	memcpy(l->out, ans, n);
	l->outlen = n;
	link_unlist(l);
	l->entry = en;
	link_list(l, &en->links);
	en->nlinks++;
	l->state = L_H2;
	atomic_fetch_add_explicit(&t->hellos[TUN_HELLO_ACCEPTED], 1,
				  memory_order_relaxed);
	log_info("tunnel %s: connector %s (%s) connected", en->id, l->name,
		 l->peer);
	/* Bytes after the hello are already HTTP/2. */
	size_t rest = l->hello_len - head_len;
	if (rest) {
		l->busy = true;
		ssize_t r = nghttp2_session_mem_recv(
		    l->h2, (const uint8_t *)l->hello + head_len, rest);
		l->busy = false;
		if (l->close_why) {
			link_close(l, l->close_why);
			return;
		}
		if (r < 0) {
			link_close(l, nghttp2_strerror((int)r));
			return;
		}
	}
	free(l->hello);
	l->hello = NULL;
	entry_update(en);
	link_flush(l);
}

static void link_read(tun_link *l)
{
	tun_edge *t = l->t;
	while (l->can_read && !l->closed) {
		if (l->state == L_REFUSING)
			return;
		if (l->state == L_HELLO) {
			if (!l->hello)
				l->hello = xmalloc(TUN_HELLO_MAX);
			ssize_t r =
			    tls_conn_read(&l->tls, l->hello + l->hello_len,
					  TUN_HELLO_MAX - l->hello_len);
			if (r == TLS_WANT_READ || r == TLS_WANT_WRITE) {
				l->can_read = false;
				if (r == TLS_WANT_WRITE)
					l->can_write = false;
				return;
			}
			if (r <= 0) {
				atomic_fetch_add_explicit(
				    &t->hellos[TUN_HELLO_FAILED], 1,
				    memory_order_relaxed);
				link_close(l, r == TLS_CLOSED
						  ? "closed before its hello"
						  : "TLS failed");
				return;
			}
			l->hello_len += (size_t)r;
			l->last_rx = t->loop.now;
			http1_request req;
			http1_limits lim = {.max_head_bytes = TUN_HELLO_MAX};
			int pr = http1_parse_request(l->hello, l->hello_len,
						     &lim, &req);
			if (pr > 0) {
				hello_done(l, &req, (size_t)pr);
				continue;
			}
			if (pr < 0 || l->hello_len == TUN_HELLO_MAX) {
				tun_hello h = {
				    .status =
					pr < 0 ? http1_err_status(pr) : 431,
				    .why = pr < 0 ? http1_err_reason(pr)
						  : "hello too large"};
				hello_refuse(l, &h);
				return;
			}
			continue;
		}
		ssize_t r = tls_conn_read(&l->tls, t->rbuf, sizeof(t->rbuf));
		if (r == TLS_WANT_READ || r == TLS_WANT_WRITE) {
			l->can_read = false;
			if (r == TLS_WANT_WRITE)
				l->can_write = false;
			break;
		}
		if (r <= 0) {
			link_close(l, r == TLS_CLOSED
					  ? "closed by the connector"
					  : (tls_conn_error(&l->tls)
						 ? tls_conn_error(&l->tls)
						 : "TLS failed"));
			return;
		}
		l->last_rx = t->loop.now;
		l->busy = true;
		ssize_t c = nghttp2_session_mem_recv(l->h2, t->rbuf, (size_t)r);
		l->busy = false;
		if (l->close_why) {
			link_close(l, l->close_why);
			return;
		}
		if (c < 0) {
			link_close(l, nghttp2_strerror((int)c));
			return;
		}
	}
	if (!l->closed)
		link_flush(l);
}

static void link_io_cb(core_io *io, uint32_t ev)
{
	tun_link *l = (tun_link *)io;
	if (l->closed)
		return;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		l->can_read = true;
	if (ev & EPOLLOUT)
		l->can_write = true;
	/* A TLS write may wait on a read and the other way round: both
	 * directions are tried on any event. */
	link_flush(l);
	if (!l->closed)
		link_read(l);
}

static void listener_cb(core_io *io, uint32_t ev)
{
	(void)ev;
	tun_listener *ls = (tun_listener *)io;
	tun_edge *t = ls->t;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn_every(1000,
					       "tunnel listener: accept: %s",
					       strerror(errno));
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		const edge_snapshot *snap = edge_acquire(t->e);
		tun_link *l = xcalloc(1, sizeof(*l));
		l->t = t;
		l->io.fd = fd;
		l->io.cb = link_io_cb;
		l->born = l->last_rx = l->last_tx = t->loop.now;
		char ip[INET6_ADDRSTRLEN];
		core_sock_ip_text((struct sockaddr *)&ss, ip, sizeof(ip));
		snprintf(l->peer, sizeof(l->peer), "%s", ip);
		snprintf(l->name, sizeof(l->name), "-");
		int rc =
		    snap->tls ? tls_conn_init(&l->tls, snap->tls, fd) : -EINVAL;
		edge_snapshot_unref(snap);
		link_list(l, &t->all);
		if (rc < 0 || core_loop_add(&t->loop, &l->io, false) < 0) {
			link_close(l, "cannot start TLS");
			continue;
		}
	}
}

/* ---- the thread ---- */

/* Links whose tunnel is gone from the config or whose token changed. */
static void check_config(tun_edge *t)
{
	const edge_snapshot *snap = edge_acquire(t->e);
	if (snap->generation == t->generation) {
		edge_snapshot_unref(snap);
		return;
	}
	t->generation = snap->generation;
	const cfg_snapshot *cfg = snap->cfg;
	for (tun_entry *en = t->entries; en; en = en->next) {
		const cfg_tunnel *ct = NULL;
		for (size_t i = 0; i < cfg->ntunnels; i++)
			if (cfg->tunnels[i].id &&
			    !strcmp(cfg->tunnels[i].id, en->id))
				ct = &cfg->tunnels[i];
		for (tun_link *l = en->links, *nx; l; l = nx) {
			nx = l->next;
			if (!ct)
				link_close(l, "the tunnel was removed from "
					      "the config");
			else if (!ct->token || strcmp(ct->token, l->token))
				link_close(l, "the tunnel's token changed");
		}
	}
	edge_snapshot_unref(snap);
}

static void tick_cb(core_timer *tm)
{
	tun_edge *t = (tun_edge *)((char *)tm - offsetof(tun_edge, tick));
	uint64_t now = t->loop.now;
	for (tun_link *l = t->all, *nx; l; l = nx) {
		nx = l->next;
		if (now - l->born >= HELLO_TIMEOUT_MS) {
			if (l->state == L_HELLO)
				atomic_fetch_add_explicit(
				    &t->hellos[TUN_HELLO_FAILED], 1,
				    memory_order_relaxed);
			link_close(l, "no hello within 10 s");
		}
	}
	for (tun_entry *en = t->entries; en; en = en->next)
		for (tun_link *l = en->links, *nx; l; l = nx) {
			nx = l->next;
			if (now - l->last_rx >= DEAD_AFTER_MS) {
				link_close(l, "nothing heard for 45 s");
				continue;
			}
			if (now - l->last_tx >= PING_IDLE_MS) {
				nghttp2_submit_ping(l->h2, NGHTTP2_FLAG_NONE,
						    NULL);
				link_flush(l);
			}
		}
	check_config(t);
	core_timer_after(&t->loop, tm, TICK_MS);
}

static void post_cb(core_loop *lp, void *arg)
{
	(void)lp;
	tun_edge *t = arg;
	for (int guard = 0; t->kicks && guard < 4096; guard++) {
		tun_bridge *b = t->kicks;
		t->kicks = b->kick_next;
		b->kicked = false;
		if (!b->closed)
			bridge_process(b);
	}
	for (tun_bridge *b = t->kicks; b; b = b->kick_next)
		b->kicked = false; /* past the guard: dropped, not dangling */
	t->kicks = NULL;
	while (t->dead_bridges) {
		tun_bridge *b = t->dead_bridges;
		t->dead_bridges = b->dead_next;
		free(b->in);
		free(b->out);
		free(b);
	}
	while (t->dead_links) {
		tun_link *l = t->dead_links;
		t->dead_links = l->dead_next;
		free(l->hello);
		free(l->out);
		free(l->token);
		free(l);
	}
}

static void stop_cb(core_io *io, uint32_t ev)
{
	(void)ev;
	tun_edge *t = (tun_edge *)((char *)io - offsetof(tun_edge, stop_io));
	uint64_t v;
	if (read(io->fd, &v, sizeof(v)) < 0 && errno == EAGAIN)
		return;
	t->stopping = true;
	/* The workers are gone: no stream is in flight. Tell each
	 * connector (GOAWAY, so it reconnects elsewhere at once) and
	 * close. */
	for (tun_entry *en = t->entries; en; en = en->next)
		for (tun_link *l = en->links, *nx; l; l = nx) {
			nx = l->next;
			nghttp2_submit_goaway(l->h2, NGHTTP2_FLAG_NONE, 0,
					      NGHTTP2_NO_ERROR, NULL, 0);
			link_flush(l);
			link_close(l, "the edge is stopping");
		}
	for (tun_link *l = t->all, *nx; l; l = nx) {
		nx = l->next;
		link_close(l, "the edge is stopping");
	}
	t->loop.stop = true;
}

static void *tun_main(void *arg)
{
	tun_edge *t = arg;
	core_log_set_thread_name("tunnel");
	core_loop_run(&t->loop);
	return NULL;
}

static void tun_free(tun_edge *t)
{
	for (size_t i = 0; i < t->nlisteners; i++)
		if (t->listeners[i].io.fd >= 0)
			close(t->listeners[i].io.fd);
	free(t->listeners);
	post_cb(&t->loop, t);
	while (t->entries) {
		tun_entry *en = t->entries;
		t->entries = en->next;
		while (en->bridges)
			bridge_close(en->bridges);
		if (en->lio.fd >= 0)
			close(en->lio.fd);
		free(en);
	}
	post_cb(&t->loop, t);
	if (t->stop_io.fd >= 0)
		close(t->stop_io.fd);
	core_loop_destroy(&t->loop);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int tun_edge_start(edge *e, const cfg_snapshot *cfg, tun_edge **out, char *err,
		   size_t errlen)
{
	*out = NULL;
	const cfg_edge *ce = &cfg->edge;
	if (!ce->nlisten_tunnel)
		return 0;
	tun_edge *t = xcalloc(1, sizeof(*t));
	t->e = e;
	t->stop_io.fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	if (core_loop_init(&t->loop) < 0) {
		snprintf(err, errlen, "tunnel thread: no event loop");
		pthread_mutex_destroy(&t->lock);
		free(t);
		return -1;
	}
	t->loop.post = post_cb;
	t->loop.post_arg = t;
	t->listeners = xcalloc(ce->nlisten_tunnel, sizeof(*t->listeners));
	for (size_t i = 0; i < ce->nlisten_tunnel; i++) {
		const cfg_addr *a = &ce->listen_tunnel[i];
		tun_listener *ls = &t->listeners[t->nlisteners];
		ls->t = t;
		ls->io.cb = listener_cb;
		ls->io.fd = core_sock_listen((const struct sockaddr *)&a->ss,
					     a->len, false, 1024);
		if (ls->io.fd < 0) {
			snprintf(err, errlen, "edge.listen.tunnel: %s: %s",
				 a->text, strerror(-ls->io.fd));
			tun_free(t);
			return -1;
		}
		t->nlisteners++;
		if (core_loop_add(&t->loop, &ls->io, true) < 0) {
			snprintf(err, errlen, "edge.listen.tunnel: %s: epoll",
				 a->text);
			tun_free(t);
			return -1;
		}
	}
	t->stop_io.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->stop_io.cb = stop_cb;
	if (t->stop_io.fd < 0 || core_loop_add(&t->loop, &t->stop_io, true)) {
		snprintf(err, errlen, "tunnel thread: eventfd: %s",
			 strerror(errno));
		tun_free(t);
		return -1;
	}
	core_timer_init(&t->tick, tick_cb);
	core_timer_after(&t->loop, &t->tick, TICK_MS);
	int rc = pthread_create(&t->thread, NULL, tun_main, t);
	if (rc) {
		snprintf(err, errlen, "tunnel thread: %s", strerror(rc));
		tun_free(t);
		return -1;
	}
	for (size_t i = 0; i < ce->nlisten_tunnel; i++)
		log_info("edge %s: tunnel connectors dial in on %s (TLS)",
			 ce->name, ce->listen_tunnel[i].text);
	*out = t;
	return 0;
}

void tun_edge_stop(tun_edge *t)
{
	if (!t)
		return;
	uint64_t one = 1;
	if (write(t->stop_io.fd, &one, sizeof(one)) < 0)
		log_warn("tunnel thread: cannot wake it: %s", strerror(errno));
	pthread_join(t->thread, NULL);
	tun_free(t);
}

size_t tun_edge_stats(tun_edge *t, tun_edge_tunnel_stats *out, size_t cap,
		      uint64_t hellos[TUN_HELLO_NRESULT])
{
	for (int i = 0; i < TUN_HELLO_NRESULT; i++)
		hellos[i] = t ? atomic_load_explicit(&t->hellos[i],
						     memory_order_relaxed)
			      : 0;
	if (!t)
		return 0;
	size_t n = 0;
	pthread_mutex_lock(&t->lock);
	for (tun_entry *en = t->entries; en && n < cap; en = en->next) {
		tun_edge_tunnel_stats *s = &out[n++];
		memcpy(s->id, en->id, sizeof(s->id));
		s->connectors =
		    atomic_load_explicit(&en->usable, memory_order_relaxed);
		s->streams =
		    atomic_load_explicit(&en->streams, memory_order_relaxed);
		s->stream_errors = atomic_load_explicit(&en->stream_errors,
							memory_order_relaxed);
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}
